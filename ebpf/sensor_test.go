package ebpf

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/privtest"
)

// helperEnv makes the test binary act as a small program run inside the
// test cgroup: it does exactly the syscalls a test needs (openat with a
// dirfd, TCP connect, UDP sendto, a burst of files) with no shell between.
const helperEnv = "AGENTWATCH_EBPF_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := runHelper(mode, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(mode string, args []string) error {
	switch mode {
	case "openat": // openat DIR NAME: create NAME relative to an fd of DIR
		dfd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		fd, err := unix.Openat(dfd, args[1], unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, 0o640)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	case "net": // net TCPADDR UDPADDR TCP6ADDR UDP6ADDR CLOSEDADDR
		c, err := net.Dial("tcp", args[0]) // non-blocking connect: EINPROGRESS
		if err != nil {
			return err
		}
		c.Close()
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer pc.Close()
		to, err := net.ResolveUDPAddr("udp", args[1])
		if err != nil {
			return err
		}
		for range 3 { // one event per destination, not per datagram
			if _, err := pc.WriteTo([]byte("q"), to); err != nil { // sendto
				return err
			}
		}
		c6, err := net.Dial("tcp6", args[2])
		if err != nil {
			return err
		}
		c6.Close()
		pc6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			return err
		}
		defer pc6.Close()
		to6, err := net.ResolveUDPAddr("udp6", args[3])
		if err != nil {
			return err
		}
		if _, _, err := pc6.WriteMsgUDP([]byte("q"), nil, to6); err != nil { // sendmsg
			return err
		}
		// A blocking connect to a closed port fails in the syscall itself.
		closed := netip.MustParseAddrPort(args[4])
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		err = unix.Connect(fd, &unix.SockaddrInet4{Addr: closed.Addr().As4(), Port: int(closed.Port())})
		if err != unix.ECONNREFUSED {
			return fmt.Errorf("connect to closed port: %v, want ECONNREFUSED", err)
		}
		// Unix sockets are destinations too (a forwarder outside the run):
		// a refused connect is reported with its path.
		ufd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(ufd)
		unix.Connect(ufd, &unix.SockaddrUnix{Name: "/nonexistent/agentwatch.sock"})
		return nil
	case "blind": // blind DIR SOCK ABSTRACT: the syscalls that once went unrecorded
		dir := args[0]
		f := filepath.Join(dir, "f")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return err
		}
		steps := []error{
			unix.Symlinkat("target/of/link", unix.AT_FDCWD, filepath.Join(dir, "sl")),
			unix.Link(f, filepath.Join(dir, "hl")),
			unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600),
			unix.Setxattr(f, "user.agentwatch", []byte("x"), 0),
			unix.Removexattr(f, "user.agentwatch"),
			unix.UtimesNano(f, []unix.Timespec{{Sec: 1}, {Sec: 2}}),
			unix.Chown(f, 0, 0),
			setxattrat(f, "user.at"),
		}
		for i, err := range steps {
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
		}
		for _, name := range []string{args[1], "@" + args[2]} {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			if err := unix.Connect(fd, &unix.SockaddrUnix{Name: name}); err != nil {
				return fmt.Errorf("connect %s: %w", name, err)
			}
			unix.Close(fd)
		}
		var params [120]byte
		r, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params[0])), 0)
		if errno == 0 {
			unix.Close(int(r))
		}
		return nil
	case "erofs": // erofs DIR: in a private mount namespace, make DIR read-only and try to change it
		// unshare applies to this thread only; keep everything on it.
		runtime.LockOSThread()
		dir := args[0]
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return err
		}
		if _, err := unix.Open(filepath.Join(dir, "new"), unix.O_CREAT|unix.O_WRONLY, 0o644); err != unix.EROFS {
			return fmt.Errorf("create on a read-only mount: %v, want EROFS", err)
		}
		if err := unix.Unlink(filepath.Join(dir, "existing")); err != unix.EROFS {
			return fmt.Errorf("unlink on a read-only mount: %v, want EROFS", err)
		}
		// The mount point itself cannot be removed or renamed away.
		if err := unix.Rmdir(dir); err != unix.EBUSY {
			return fmt.Errorf("rmdir of a mount point: %v, want EBUSY", err)
		}
		if err := unix.Rename(dir, dir+".moved"); err != unix.EBUSY {
			return fmt.Errorf("rename of a mount point: %v, want EBUSY", err)
		}
		return nil
	case "burst": // burst DIR N: create and delete N files
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		for i := range n {
			p := filepath.Join(args[0], "f"+strconv.Itoa(i))
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			unix.Close(fd)
			if err := unix.Unlink(p); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// cgroup2Root finds the cgroup v2 mount from mountinfo: it is
// /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				return fields[4]
			}
		}
	}
	t.Fatal("no cgroup2 mount in /proc/self/mountinfo")
	return ""
}

type testCgroup struct {
	path  string
	id    uint64
	level int
	fd    int
}

// newCgroup creates a cgroup v2 directory for one test and removes it when
// the test ends (its processes have been waited for by then).
func newCgroup(t *testing.T) *testCgroup {
	t.Helper()
	root := cgroup2Root(t)
	path := filepath.Join(root, fmt.Sprintf("agentwatch-ebpf-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")))
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatalf("creating test cgroup: %v", err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		// A killed process leaves the cgroup a moment after wait returns.
		for i := 0; ; i++ {
			err := os.Remove(path)
			if err == nil || i == 50 {
				if err != nil {
					t.Errorf("removing test cgroup: %v", err)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	id, err := CgroupID(path)
	if err != nil {
		t.Fatal(err)
	}
	return &testCgroup{path: path, id: id, level: 1, fd: fd}
}

// command returns cmd set up to start inside the cgroup (clone3 with
// CLONE_INTO_CGROUP, as the supervisor starts the run).
func (c *testCgroup) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: c.fd}
	return cmd
}

type collector struct {
	mu  sync.Mutex
	evs []event.Event
}

func (c *collector) emit(ev event.Event) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
}

func (c *collector) events() []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.evs)
}

func startSensor(t *testing.T, cg *testCgroup) (*Sensor, *collector) {
	t.Helper()
	col := &collector{}
	s, err := Start(Config{CgroupID: cg.id, CgroupLevel: cg.level, Emit: col.emit})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, col
}

func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

// realDir resolves symlinks so paths compare with what the kernel reports.
func realDir(t *testing.T, dir string) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fileLine(f event.File) string {
	s := fmt.Sprintf("%s %s", f.Op, f.Path)
	if f.NewPath != "" {
		s += " -> " + f.NewPath
	}
	if f.Op == event.FileChmod || f.Op == event.FileMkdir || ((f.Op == event.FileCreate || f.Errno != 0) && f.Mode != 0) {
		s += fmt.Sprintf(" mode=%o", f.Mode)
	}
	if f.Errno != 0 {
		s += " errno=" + unix.ErrnoName(syscall.Errno(f.Errno))
	}
	return s
}

func TestSensorReportsProcessTree(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)

	w := realDir(t, t.TempDir())
	long := strings.Repeat("L", 1500)
	huge := strings.Repeat("H", 10000)
	script := strings.Join([]string{
		"cd " + w,
		"mkdir sub && cd sub",
		"/bin/true first " + long,
		"sh -c 'exit 3' || true",
		"sh -c 'kill -TERM $$' || true",
		`/bin/true "$HUGE"`, // from the environment, so the script's own argv stays short
		"exit 0",            // keeps dash from exec'ing the last command in place
	}, "\n")
	cmd := cg.command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "HUGE="+huge)
	before := time.Now()
	run(t, cmd)
	after := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	evs := col.events()
	shPID := uint32(cmd.Process.Pid)
	me := uint32(os.Getpid())
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}

	byPID := map[uint32][]event.Event{}
	for _, ev := range evs {
		byPID[ev.Process()] = append(byPID[ev.Process()], ev)
	}
	// The script itself: forked into the cgroup by the test, exec'd sh.
	want := []string{
		fmt.Sprintf("fork ppid=%d", me),
		fmt.Sprintf("exec ppid=%d /bin/sh [/bin/sh -c %s] cwd=%s", me, script, realDir(t, cwd)),
		"exit code=0 signal=0",
	}
	if got := describe(byPID[shPID]); !slices.Equal(got, want) {
		t.Errorf("script process:\n got %q\nwant %q", got, want)
	}

	// Its children, found by their argv, each fork+exec+exit under it.
	// The script's PATH lookups find what the test's PATH finds.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	mkdir, err := exec.LookPath("mkdir")
	if err != nil {
		t.Fatal(err)
	}
	wantChildren := map[string][]string{
		"mkdir sub": {
			fmt.Sprintf("fork ppid=%d", shPID),
			fmt.Sprintf("exec ppid=%d %s [mkdir sub] cwd=%s", shPID, mkdir, w),
			"exit code=0 signal=0",
		},
		"/bin/true first " + long: {
			fmt.Sprintf("fork ppid=%d", shPID),
			fmt.Sprintf("exec ppid=%d /bin/true [/bin/true first %s] cwd=%s/sub", shPID, long, w),
			"exit code=0 signal=0",
		},
		"sh -c exit 3": {
			fmt.Sprintf("fork ppid=%d", shPID),
			fmt.Sprintf("exec ppid=%d %s [sh -c exit 3] cwd=%s/sub", shPID, sh, w),
			"exit code=3 signal=0",
		},
		"sh -c kill -TERM $$": {
			fmt.Sprintf("fork ppid=%d", shPID),
			fmt.Sprintf("exec ppid=%d %s [sh -c kill -TERM $$] cwd=%s/sub", shPID, sh, w),
			"exit code=0 signal=15",
		},
	}
	seen := map[string]bool{}
	for pid, pevs := range byPID {
		if pid == shPID {
			continue
		}
		var ex *event.Exec
		for _, ev := range pevs {
			if e, ok := ev.(event.Exec); ok {
				ex = &e
			}
		}
		if ex == nil {
			t.Errorf("pid %d has no exec: %v", pid, describe(pevs))
			continue
		}
		key := strings.Join(ex.Argv, " ")
		if strings.HasPrefix(key, "/bin/true HHH") {
			if !ex.ArgvTruncated || len(key) < 4096 || len(key) > len("/bin/true ")+len(huge) {
				t.Errorf("10000-byte argv: truncated=%v, %d bytes kept", ex.ArgvTruncated, len(key))
			}
			seen["huge"] = true
			continue
		}
		w, ok := wantChildren[key]
		if !ok {
			t.Errorf("unexpected process %d: %v", pid, describe(pevs))
			continue
		}
		seen[key] = true
		if got := describe(pevs); !slices.Equal(got, w) {
			t.Errorf("process %q:\n got %q\nwant %q", key, got, w)
		}
	}
	for key := range wantChildren {
		if !seen[key] {
			t.Errorf("no events for %q", key)
		}
	}
	if !seen["huge"] {
		t.Error("no exec with the 10000-byte argument")
	}
	for _, ev := range evs {
		if f, ok := ev.(event.File); ok && fileLine(f) != "mkdir "+w+"/sub mode=777" {
			t.Errorf("unexpected file event: %v", fileLine(f))
		}
		// Kernel boot-clock times converted to wall time must fall
		// inside the run (with slack for the offset measurement).
		if ev.When().Before(before.Add(-5*time.Millisecond)) || ev.When().After(after.Add(5*time.Millisecond)) {
			t.Errorf("event time %v outside the run [%v, %v]", ev.When(), before, after)
		}
	}
	if n := s.Dropped(); n != 0 {
		t.Errorf("Dropped() = %d", n)
	}
}

func byPID(evs []event.Event) map[uint32][]event.Event {
	m := map[uint32][]event.Event{}
	for _, ev := range evs {
		m[ev.Process()] = append(m[ev.Process()], ev)
	}
	return m
}

// describe renders process events of one pid in order, without times.
func describe(evs []event.Event) []string {
	var out []string
	for _, ev := range evs {
		switch e := ev.(type) {
		case event.Fork:
			out = append(out, fmt.Sprintf("fork ppid=%d", e.PPID))
		case event.Exec:
			out = append(out, fmt.Sprintf("exec ppid=%d %s [%s] cwd=%s", e.PPID, e.Filename, strings.Join(e.Argv, " "), e.Cwd))
		case event.Exit:
			out = append(out, fmt.Sprintf("exit code=%d signal=%d", e.Code, e.Signal))
		}
	}
	return out
}

func TestSensorReportsFileChanges(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)

	w := realDir(t, t.TempDir())
	shm := fmt.Sprintf("/dev/shm/agentwatch-ebpf-test-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(shm) })
	script := strings.Join([]string{
		"set -e",
		"cd " + w,
		"mkdir sub",
		"cd sub",
		"echo hi > new.txt",       // open O_CREAT|O_TRUNC on a new file: create
		"echo more >> new.txt",    // O_APPEND on an existing file: write
		": > new.txt",             // O_TRUNC on an existing file: truncate
		"mv new.txt ../moved.txt", // rename across directories, relative
		"chmod 600 ../moved.txt",
		"truncate -s 0 ../moved.txt", // open for write, then ftruncate on the fd
		"rm ../moved.txt",
		"echo x > /sys/kernel/btf/vmlinux 2>/dev/null || true", // refused: EACCES is evidence
		"echo x > " + w + "/no/such/dir 2>/dev/null || true",   // ENOENT probe: noise, not reported
		"mkdir /sys/agentwatch-nope 2>/dev/null || true",       // refused mkdir
		"rm -f " + w + "/sub/nonexistent",                      // ENOENT: changed nothing, not reported
		"mkdir -p " + w + "/sub",                               // EEXIST: likewise
		"echo x > " + shm,                                      // path across two mounts (tmpfs on devtmpfs)
		"rm " + shm,
		"cd .. && rmdir sub",
		"mkdir fdir",
	}, "\n")
	run(t, cg.command("/bin/sh", "-c", script))
	helper := cg.command(os.Args[0], w+"/fdir", "viafd.txt")
	helper.Env = append(os.Environ(), helperEnv+"=openat")
	run(t, helper)
	if err := os.WriteFile(w+"/fdir/existing", nil, 0o644); err != nil { // by the test: not reported
		t.Fatal(err)
	}
	ro := cg.command(os.Args[0], w+"/fdir")
	ro.Env = append(os.Environ(), helperEnv+"=erofs")
	run(t, ro)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	want := []string{
		"mkdir " + w + "/sub mode=777",
		"create " + w + "/sub/new.txt mode=666",
		"write " + w + "/sub/new.txt",
		"truncate " + w + "/sub/new.txt",
		"rename " + w + "/sub/new.txt -> " + w + "/moved.txt",
		"chmod " + w + "/moved.txt mode=600",
		"write " + w + "/moved.txt",
		"truncate " + w + "/moved.txt",
		"delete " + w + "/moved.txt",
		"write /sys/kernel/btf/vmlinux mode=666 errno=EACCES",
		"mkdir /sys/agentwatch-nope mode=777 errno=EPERM",
		"create " + shm + " mode=666",
		"delete " + shm,
		"delete " + w + "/sub",
		"mkdir " + w + "/fdir mode=777",
		"create " + w + "/fdir/viafd.txt mode=640",
		// Refusals are reported: a refused create as the attempted write,
		// a refused unlink as the delete, both with the errno.
		"write " + w + "/fdir/new mode=644 errno=EROFS",
		"delete " + w + "/fdir/existing errno=EROFS",
		"delete " + w + "/fdir errno=EBUSY",
		"rename " + w + "/fdir -> " + w + "/fdir.moved errno=EBUSY",
	}
	var got []string
	for _, ev := range col.events() {
		if f, ok := ev.(event.File); ok {
			got = append(got, fileLine(f))
			if f.Source != event.SourceEBPF || f.PID == 0 {
				t.Errorf("%s: source %v pid %d", fileLine(f), f.Source, f.PID)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("file events:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// setxattrat is Linux 6.13's setxattrat(2) (not in x/sys yet): an xattr
// route beside setxattr that must not be blind.
func setxattrat(path, name string) error {
	p, _ := unix.BytePtrFromString(path)
	n, _ := unix.BytePtrFromString(name)
	value := []byte("1")
	args := struct {
		value uint64
		size  uint32
		flags uint32
	}{uint64(uintptr(unsafe.Pointer(&value[0]))), 1, 0}
	cwd := unix.AT_FDCWD
	_, _, errno := unix.Syscall6(463, uintptr(cwd), uintptr(unsafe.Pointer(p)), 0,
		uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	if errno != 0 {
		return errno
	}
	return nil
}

// TestSensorReportsBlindSyscalls: links, device nodes, xattrs, timestamps,
// Unix-socket connects (with the listener's pid) and io_uring set-up are
// recorded like the other file and network operations.
func TestSensorReportsBlindSyscalls(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "fwd.sock")
	abstract := fmt.Sprintf("agentwatch-test-%d", os.Getpid())
	for _, name := range []string{sock, "@" + abstract} {
		ln, err := net.Listen("unix", name)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	helper := cg.command(os.Args[0], dir, sock, abstract)
	helper.Env = append(os.Environ(), helperEnv+"=blind")
	run(t, helper)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "f")
	want := []string{
		"symlink " + filepath.Join(dir, "sl") + " -> target/of/link",
		"link " + f + " -> " + filepath.Join(dir, "hl"),
		"mknod " + filepath.Join(dir, "fifo") + " fifo",
		"setxattr " + f + " user.agentwatch",
		"removexattr " + f + " user.agentwatch",
		"utimes " + f,
		"chown " + f,
		"setxattr " + f + " user.at",
		fmt.Sprintf("connect unix %s peer=%d", sock, os.Getpid()),
		fmt.Sprintf("connect unix @%s peer=%d", abstract, os.Getpid()),
		"io_uring entries=4 errno=0",
	}
	var got []string
	for _, ev := range col.events() {
		switch e := ev.(type) {
		case event.File:
			switch e.Op {
			case event.FileSymlink, event.FileLink:
				got = append(got, fmt.Sprintf("%s %s -> %s", e.Op, e.Path, e.NewPath))
			case event.FileMknod:
				kind := "other"
				if e.Mode&unix.S_IFMT == unix.S_IFIFO {
					kind = "fifo"
				}
				got = append(got, fmt.Sprintf("%s %s %s", e.Op, e.Path, kind))
			case event.FileSetxattr, event.FileRemovexattr:
				got = append(got, fmt.Sprintf("%s %s %s", e.Op, e.Path, e.Detail))
			case event.FileUtimes, event.FileChown:
				got = append(got, fmt.Sprintf("%s %s", e.Op, e.Path))
			}
		case event.Connect:
			if e.Transport == event.Unix {
				got = append(got, fmt.Sprintf("%s unix %s peer=%d", e.Op, e.UnixPath, e.PeerPID))
			}
		case event.IOURing:
			got = append(got, fmt.Sprintf("io_uring entries=%d errno=%d", e.Entries, e.Errno))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

func TestSensorReportsNetworkDestinations(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln6.Close()
	go func() {
		for {
			c, err := ln6.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	udp6, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp6.Close()
	// A port nobody listens on: bind one, note it, close it.
	tmp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := tmp.Addr().String()
	tmp.Close()

	helper := cg.command(os.Args[0], ln.Addr().String(), udp.LocalAddr().String(),
		ln6.Addr().String(), udp6.LocalAddr().String(), closed)
	helper.Env = append(os.Environ(), helperEnv+"=net")
	run(t, helper)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	want := []string{
		fmt.Sprintf("connect tcp %s errno=0", ln.Addr()),
		fmt.Sprintf("sendto udp %s errno=0", udp.LocalAddr()),
		fmt.Sprintf("connect tcp %s errno=0", ln6.Addr()),
		fmt.Sprintf("sendto udp %s errno=0", udp6.LocalAddr()),
		fmt.Sprintf("connect tcp %s errno=%d", closed, unix.ECONNREFUSED),
		fmt.Sprintf("connect unix /nonexistent/agentwatch.sock errno=%d", unix.ENOENT),
	}
	var got []string
	for _, ev := range col.events() {
		if c, ok := ev.(event.Connect); ok {
			dest := c.Addr.String()
			if c.Transport == event.Unix {
				dest = c.UnixPath
			}
			got = append(got, fmt.Sprintf("%s %s %s errno=%d", c.Op, c.Transport, dest, c.Errno))
			if c.PID != uint32(helper.Process.Pid) {
				t.Errorf("connect from pid %d, want the helper %d", c.PID, helper.Process.Pid)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("network events:\n got %q\nwant %q", got, want)
	}
	// The helper is a Go program: several threads, one process. Threads
	// are neither forks nor exits.
	if got := describe(byPID(col.events())[uint32(helper.Process.Pid)]); len(got) != 3 ||
		!strings.HasPrefix(got[0], "fork ") || !strings.HasPrefix(got[1], "exec ") || got[2] != "exit code=0 signal=0" {
		t.Errorf("multi-threaded helper: got %q, want one fork, exec and exit", got)
	}
}

// Deep paths come whole (the kernel walks them in a bpf_loop, one
// component per iteration), through the fd as through a relative name,
// and across a bind mount inside the tree.
func TestSensorDeepPaths(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)

	w := realDir(t, t.TempDir())
	var parts []string
	for i := range 60 {
		parts = append(parts, fmt.Sprintf("component-%02d", i))
	}
	deep := filepath.Join(append([]string{w}, parts...)...)
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	bound := filepath.Join(deep, "bound")
	if err := os.MkdirAll(bound, 0o755); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := unix.Mount(other, bound, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bound, unix.MNT_DETACH) })
	run(t, cg.command("/bin/sh", "-c", "cd "+deep+" && echo x > f && chmod 600 f && cd bound && echo y > g && rm g"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create " + deep + "/f mode=666",
		"chmod " + deep + "/f mode=600",
		"create " + bound + "/g mode=666",
		"delete " + bound + "/g",
	}
	var got []string
	for _, ev := range col.events() {
		if f, ok := ev.(event.File); ok {
			got = append(got, fileLine(f))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("file events:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// A script's exec carries its interpreter (what /proc/PID/exe points at);
// a binary's carries none.
func TestSensorScriptInterpreter(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)
	dir := realDir(t, t.TempDir())
	script := filepath.Join(dir, "task.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, cg.command(script))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var sawScript, sawBinary bool
	for _, ev := range col.events() {
		e, ok := ev.(event.Exec)
		if !ok {
			continue
		}
		switch e.Filename {
		case script:
			sawScript = true
			if e.Interpreter != "/bin/sh" {
				t.Errorf("script exec: interpreter %q, want /bin/sh", e.Interpreter)
			}
		case "/bin/true":
			sawBinary = true
			if e.Interpreter != "" {
				t.Errorf("binary exec: interpreter %q, want none", e.Interpreter)
			}
		}
	}
	if !sawScript || !sawBinary {
		t.Errorf("execs seen: script %v, /bin/true %v", sawScript, sawBinary)
	}
}

func TestSensorIgnoresProcessesOutsideTheCgroup(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)

	w := realDir(t, t.TempDir())
	// Same kinds of work as the other tests, started outside the cgroup.
	run(t, exec.Command("/bin/sh", "-c", "cd "+w+" && echo x > a && mv a b && chmod 600 b && rm b && sh -c 'exit 3' || true"))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range col.events() {
		t.Errorf("event from outside the cgroup: %#v", ev)
	}
}

func TestSensorBurstLosesNothing(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)

	const n = 3000
	w := realDir(t, t.TempDir())
	helper := cg.command(os.Args[0], w, strconv.Itoa(n))
	helper.Env = append(os.Environ(), helperEnv+"=burst")
	run(t, helper)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	created, deleted := map[string]bool{}, map[string]bool{}
	for _, ev := range col.events() {
		f, ok := ev.(event.File)
		if !ok || filepath.Dir(f.Path) != w {
			continue
		}
		switch f.Op {
		case event.FileCreate:
			created[f.Path] = true
		case event.FileDelete:
			deleted[f.Path] = true
		}
	}
	for i := range n {
		p := filepath.Join(w, "f"+strconv.Itoa(i))
		if !created[p] || !deleted[p] {
			t.Errorf("%s: created=%v deleted=%v", p, created[p], deleted[p])
		}
	}
	if len(created) != n || len(deleted) != n {
		t.Errorf("got %d creates and %d deletes, want %d each", len(created), len(deleted), n)
	}
	if d := s.Dropped(); d != 0 {
		t.Errorf("Dropped() = %d, want 0", d)
	}
}

// Records below the wakeup threshold must still reach Emit within about
// MaxLatency while the sensor runs, not only when Close drains the ring.
func TestSensorDeliversWithoutClose(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	_, col := startSensor(t, cg)

	cmd := cg.command("/bin/true")
	run(t, cmd)
	exited := time.Now()
	pid := uint32(cmd.Process.Pid)
	for {
		for _, ev := range col.events() {
			if _, ok := ev.(event.Exit); ok && ev.Process() == pid {
				// Generous bound for a loaded 2-core machine; the
				// configured latency is 20 ms.
				if d := time.Since(exited); d > 500*time.Millisecond {
					t.Errorf("exit event arrived %v after the exit", d)
				}
				return
			}
		}
		if time.Since(exited) > 2*time.Second {
			t.Fatal("exit event not delivered within 2s without Close")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSensorExecContext: the environment of each exec'd image reaches
// the sensor's Config.ContextVars lookup at exec time — a process that
// exits at once included, its variable found at the end of an environment
// far longer than what the kernel side copies whole — and its result rides
// on that exec's event.
func TestSensorExecContext(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	col := &collector{}
	s, err := Start(Config{CgroupID: cg.id, CgroupLevel: cg.level, Emit: col.emit,
		ContextVars: []string{"TRACEPARENT", "CODEX_TOOL_CALL_ID"}})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer s.Close()

	short := cg.command("/bin/true")
	short.Env = []string{"A=1", "TRACEPARENT=00-0102-03-01", "CODEX_TOOL_CALL_ID=call_7"}
	run(t, short)
	long := cg.command("/bin/true")
	long.Env = []string{"A=1"}
	for i := range 40 { // ~40 KiB: more than head and tail together
		long.Env = append(long.Env, fmt.Sprintf("PAD%d=%s", i, strings.Repeat("x", 1000)))
	}
	long.Env = append(long.Env, "TRACEPARENT=00-tail-01")
	run(t, long)
	plain := cg.command("/bin/true")
	plain.Env = []string{"A=1"}
	run(t, plain)
	s.Close()

	want := map[int][2]string{
		short.Process.Pid: {"00-0102-03-01", "call_7"},
		long.Process.Pid:  {"00-tail-01", ""},
		plain.Process.Pid: {"", ""},
	}
	found := 0
	for _, ev := range col.events() {
		e, ok := ev.(event.Exec)
		if !ok {
			continue
		}
		if w, ok := want[int(e.PID)]; ok {
			found++
			if got := [2]string{e.TraceParent, e.ToolCallID}; got != w {
				t.Errorf("pid %d (%s): context %q, want %q", e.PID, e.Filename, got, w)
			}
		}
	}
	if found != 3 {
		t.Errorf("%d of 3 exec events", found)
	}
	if s.envRecords < 3 {
		t.Errorf("%d environment records, want one per exec", s.envRecords)
	}
}

// TestSensorSync: with a latency far longer than the test, Sync alone
// delivers what the kernel committed — a process's exec and exit are
// emitted before Sync returns — from another goroutine than the reader's,
// and it is a no-op after Close.
func TestSensorSync(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	col := &collector{}
	s, err := Start(Config{CgroupID: cg.id, CgroupLevel: cg.level, Emit: col.emit, MaxLatency: time.Hour})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer s.Close()
	for i := range 3 {
		cmd := cg.command("/bin/true")
		run(t, cmd)
		pid := uint32(cmd.Process.Pid)
		s.Sync()
		var kinds []string
		for _, ev := range col.events() {
			if ev.Process() == pid {
				kinds = append(kinds, fmt.Sprintf("%T", ev))
			}
		}
		if !slices.Contains(kinds, "event.Exec") || !slices.Contains(kinds, "event.Exit") {
			t.Fatalf("round %d: after Sync, events of pid %d: %q; want its exec and exit", i, pid, kinds)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Sync() // after Close: nothing to read, and no panic
}
