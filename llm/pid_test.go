package llm

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// A real client in another process (bash's /dev/tcp) connects to a
// loopback listener: the socket's owner is found from the address the
// listener sees, from the whole of /proc and from a pid list, and a
// second connection from our own process resolves to us, not to bash.
func TestSocketPIDs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lnAddr := netip.MustParseAddrPort(ln.Addr().String())
	sh := exec.Command("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+strconv.Itoa(int(lnAddr.Port()))+"; echo ready; read _")
	stdin, _ := sh.StdinPipe()
	stdout, _ := sh.StdoutPipe()
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); sh.Wait() }()
	if l, _ := bufio.NewReader(stdout).ReadString('\n'); l != "ready\n" {
		t.Fatalf("bash said %q", l)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := netip.MustParseAddrPort(conn.RemoteAddr().String())

	own, err := net.Dial("tcp", lnAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	ownConn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer ownConn.Close()
	ownClient := netip.MustParseAddrPort(ownConn.RemoteAddr().String())

	ino, uid, err := socketInode(client, lnAddr)
	if err != nil || ino == 0 {
		t.Fatalf("socketInode: %d, %v", ino, err)
	}
	if uid != uint32(os.Getuid()) {
		t.Errorf("socket uid %d, want %d", uid, os.Getuid())
	}
	if _, _, err := socketInode(netip.MustParseAddrPort("127.0.0.1:1"), lnAddr); err == nil {
		t.Errorf("socketInode of a socket that does not exist: no error")
	}

	s := &socketPIDs{cache: map[netip.AddrPort]socketOwner{}}
	lns := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1"), lnAddr} // the proxy has two listeners
	if got := s.pidOf(client); got != 0 {
		t.Errorf("pidOf before the listeners are known = %d, want 0", got)
	}
	s.listeners.Store(&lns)
	bash := uint32(sh.Process.Pid)
	for i := 0; i < 2; i++ { // the second answer comes from the cache
		if got := s.pidOf(client); got != bash {
			t.Errorf("pidOf(bash's connection) #%d = %d, want %d", i, got, bash)
		}
	}
	if got := s.pidOf(ownClient); got != uint32(os.Getpid()) {
		t.Errorf("pidOf(our connection) = %d, want %d", got, os.Getpid())
	}
	if got := socketOwnerPID(ino, []uint32{uint32(os.Getpid())}); got != 0 {
		t.Errorf("socketOwnerPID among pids without it = %d, want 0", got)
	}
	if got := socketOwnerPID(ino, []uint32{uint32(os.Getpid()), bash}); got != bash {
		t.Errorf("socketOwnerPID among pids = %d, want %d", got, bash)
	}

	// A cached address whose socket changed (port reused) is looked up
	// again, not answered from the cache.
	s.cache[ownClient] = socketOwner{inode: 1, pid: 4242}
	if got := s.pidOf(ownClient); got != uint32(os.Getpid()) {
		t.Errorf("pidOf after a stale cache entry = %d, want %d", got, os.Getpid())
	}
}

// TestProxyFindsPID: without Config.PIDOf the proxy finds its client's
// pid itself — our own process here — and, once pointed at a cgroup,
// searches only its processes (an empty one: unknown).
func TestProxyFindsPID(t *testing.T) {
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}})
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() uint32 {
		resp, err := fresh.Get(p.URL(Anthropic) + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return calls.next(t).PID
	}
	if got := get(); got != uint32(os.Getpid()) {
		t.Errorf("PID %d, want ours (%d)", got, os.Getpid())
	}
	p.WatchCgroup(t.TempDir())
	if got := get(); got != 0 {
		t.Errorf("PID %d with an empty cgroup, want 0", got)
	}
}
