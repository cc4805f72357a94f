package llm

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// socketPIDs resolves which of the run's processes owns the client end
// of a connection to the proxy: the proxy's own lookup, unless
// Config.PIDOf replaces it.
//
// How: the proxy sees the client's address (127.0.0.1:port). One
// sock_diag (NETLINK_INET_DIAG) request for that exact 4-tuple returns
// the client socket's inode, then the fd tables (/proc/PID/fd) of the
// processes in the run's cgroup are searched for "socket:[inode]".
//
// Cost: the netlink round trip (tens of microseconds) once per client
// connection (the proxy asks at its first request); the fd scan (one readlink per open fd of each process in the run,
// about a millisecond for a Claude Code run) only once per client
// connection, since the result is cached by client address and checked
// against the inode, so a reused port never gets a stale pid. A socket
// shared by several processes (inherited across fork) is attributed to
// the one listed first in cgroup.procs. Without a run cgroup (degraded
// mode) every process in /proc is searched; without privileges over the
// child the fd tables are unreadable and the pid stays unknown (0), and
// the recorder falls back to the root process.
type socketPIDs struct {
	cgroupDir atomic.Pointer[string]           // the run's cgroup (Proxy.WatchCgroup)
	listeners atomic.Pointer[[]netip.AddrPort] // the proxy's own addresses

	mu    sync.Mutex
	cache map[netip.AddrPort]socketOwner
}

type socketOwner struct {
	inode uint32
	pid   uint32
}

// maxSocketCache bounds the cache; forgetting only costs a rescan.
const maxSocketCache = 1024

func (s *socketPIDs) pidOf(client netip.AddrPort) uint32 {
	lns := s.listeners.Load()
	if lns == nil {
		return 0
	}
	var inode uint32
	for _, ln := range *lns {
		if ino, _, err := socketInode(client, ln); err == nil && ino != 0 {
			inode = ino
			break
		}
	}
	if inode == 0 {
		return 0
	}
	s.mu.Lock()
	if o, ok := s.cache[client]; ok && o.inode == inode {
		s.mu.Unlock()
		return o.pid
	}
	s.mu.Unlock()
	pid := socketOwnerPID(inode, s.runPIDs())
	s.mu.Lock()
	if len(s.cache) >= maxSocketCache {
		clear(s.cache)
	}
	s.cache[client] = socketOwner{inode: inode, pid: pid}
	s.mu.Unlock()
	return pid
}

// runPIDs lists the processes of the run's cgroup and its descendants;
// nil without a cgroup (search all of /proc).
func (s *socketPIDs) runPIDs() []uint32 {
	dir := s.cgroupDir.Load()
	if dir == nil {
		return nil
	}
	var pids []uint32
	filepath.WalkDir(*dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if n, err := strconv.ParseUint(strings.TrimSpace(sc.Text()), 10, 32); err == nil {
				pids = append(pids, uint32(n))
			}
		}
		return nil
	})
	if pids == nil {
		pids = []uint32{} // an empty cgroup: nothing to search, not everything
	}
	return pids
}

// socketOwnerPID finds the process holding socket inode among pids (nil:
// every process).
func socketOwnerPID(inode uint32, pids []uint32) uint32 {
	if pids == nil {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return 0
		}
		for _, e := range ents {
			if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
				pids = append(pids, uint32(n))
			}
		}
	}
	want := fmt.Sprintf("socket:[%d]", inode)
	for _, pid := range pids {
		fdDir := "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/fd"
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			continue // exited, or not ours to read
		}
		for _, e := range ents {
			if l, err := os.Readlink(fdDir + "/" + e.Name()); err == nil && l == want {
				return pid
			}
		}
	}
	return 0
}
