package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo that matters here.
type Mount struct {
	Point  string // where it is mounted
	FSType string
}

// ParseMountinfo reads /proc/<pid>/mountinfo lines (proc(5)).
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		out = append(out, Mount{Point: unescapeMount(fields[4]), FSType: fields[sep+1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted, and
// whether the host is hybrid (v2 beside v1 controllers, typically at
// /sys/fs/cgroup/unified).
func Cgroup2Mount() (mount string, hybrid bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	mounts, err := ParseMountinfo(f)
	if err != nil {
		return "", false, err
	}
	return findCgroup2(mounts)
}

func findCgroup2(mounts []Mount) (string, bool, error) {
	mount, v1 := "", false
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			// The shortest path wins: a container may show nested
			// bind mounts of the same hierarchy.
			if mount == "" || len(m.Point) < len(mount) {
				mount = m.Point
			}
		case "cgroup":
			v1 = true
		}
	}
	if mount == "" {
		return "", v1, errors.New("no cgroup2 file system mounted")
	}
	return mount, v1, nil
}

// Cgroup is the run's own cgroup v2: everything the child starts is born
// in it, which is what the eBPF programs filter on and what is killed at
// the end.
type Cgroup struct {
	Path  string
	ID    uint64 // cgroup id: the inode number of its directory
	Level int    // depth below the hierarchy root (root = 0)
	dir   *os.File
}

// NewCgroup creates <mount>/agentwatch/run-<runID>.
func NewCgroup(mount, runID string) (*Cgroup, error) {
	path := filepath.Join(mount, "agentwatch", "run-"+runID)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup: %w", err)
	}
	dir, err := os.Open(path)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("opening cgroup: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		dir.Close()
		os.Remove(path)
		return nil, fmt.Errorf("reading cgroup id: %w", err)
	}
	rel, _ := filepath.Rel(mount, path)
	return &Cgroup{
		Path:  path,
		ID:    st.Ino,
		Level: len(strings.Split(filepath.ToSlash(rel), "/")),
		dir:   dir,
	}, nil
}

// FD is the directory descriptor for SysProcAttr.CgroupFD.
func (c *Cgroup) FD() int { return int(c.dir.Fd()) }

// Procs lists the pids still in the cgroup.
func (c *Cgroup) Procs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.Path, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("reading cgroup.procs: %w", err)
	}
	var pids []int
	for _, f := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(f)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Kill kills every process left in the cgroup and waits (bounded) until it
// is empty, so their exits reach the sensors before those are closed.
func (c *Cgroup) Kill(timeout time.Duration) error {
	if err := os.WriteFile(filepath.Join(c.Path, "cgroup.kill"), []byte("1"), 0); err != nil {
		// Kernels before 5.14 have no cgroup.kill: SIGKILL each pid.
		// A fork racing this loop is caught by the next round.
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("writing cgroup.kill: %w", err)
		}
		c.killEach()
	}
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(wait*2, 50*time.Millisecond) {
		pids, err := c.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("killing cgroup: %d processes left", len(pids))
		}
		c.killEach()
		time.Sleep(wait)
	}
}

func (c *Cgroup) killEach() {
	pids, _ := c.Procs()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Remove removes the (empty) cgroup directory.
func (c *Cgroup) Remove() error {
	c.dir.Close()
	if err := os.Remove(c.Path); err != nil {
		return fmt.Errorf("removing cgroup: %w", err)
	}
	// The shared parent <mount>/agentwatch stays: removing it would race
	// with a concurrent run creating its own cgroup there.
	return nil
}
