package supervisor_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/cli"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the agentwatch binary: with this variable set
// it runs cli.Main, so these tests drive the real command line, the real
// signal handling and the real exit codes without a separate build.
const asAgentwatch = "AGENTWATCH_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asAgentwatch) == "1" {
		os.Exit(cli.Main())
	}
	os.Exit(m.Run())
}

// agentwatch returns a command running `agentwatch args...`.
func agentwatch(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asAgentwatch+"=1")
	return cmd
}

type result struct {
	code           int
	stdout, stderr string
}

func runAgentwatch(t *testing.T, args ...string) result {
	t.Helper()
	cmd := agentwatch(t, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running agentwatch: %v", err)
	}
	return result{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

var recordedRe = regexp.MustCompile(`agentwatch: run (\S+) recorded \((\d+) spans\)`)

// runID returns the id the run reported on stderr.
func runID(t *testing.T, stderr string) string {
	t.Helper()
	m := recordedRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no \"run X recorded\" line on stderr:\n%s", stderr)
	}
	return m[1]
}

// loadRun opens the store and loads the run the output (stderr) reported.
func loadRun(t *testing.T, storeDir, out string) *telemetry.Trace {
	t.Helper()
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, _, err := st.Load(context.Background(), runID(t, out))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// recordRun runs `agentwatch run --user root --store (fresh) args...` in
// dir, fails the test unless it exits 0, and returns the recorded trace.
func recordRun(t *testing.T, dir string, args ...string) *telemetry.Trace {
	t.Helper()
	storeDir := t.TempDir()
	cmd := agentwatch(t, append([]string{"run", "--user", "root", "--store", storeDir}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("agentwatch run %q: %v\n%s", args, err, out)
	}
	return loadRun(t, storeDir, string(out))
}

func TestErrorsBeforeTheChildStarts(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "child-ran")
	unwritable := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(unwritable, 0o500); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noexec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	touch := []string{"/bin/sh", "-c", "touch " + marker}
	// --user root is what root must say to run as itself; a user names
	// itself (anyone else needs root).
	self := "root"
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		self = u.Username
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing binary", []string{"run", "--user", self, "--store", store, "--", "no-such-command-xyz"}, 127,
			"agentwatch: command not found: no-such-command-xyz\n"},
		{"not executable", []string{"run", "--user", self, "--store", store, "--", noexec}, 126,
			"agentwatch: cannot execute " + noexec + ": permission denied\n"},
		{"unknown user", append([]string{"run", "--user", "no-such-user-xyz", "--store", store, "--"}, touch...), 125,
			"agentwatch: unknown user \"no-such-user-xyz\"\n"},
		{"store is a file", append([]string{"run", "--user", self, "--store", notDir, "--"}, touch...), 125,
			"agentwatch: opening store " + notDir + ": "},
		{"trace file is a directory", append([]string{"run", "--user", self, "--store", store, "--trace-file", store, "--"}, touch...), 125,
			"agentwatch: opening trace file " + store + ": "},
		{"missing command", []string{"run", "--store", store}, 2, "agentwatch: run: missing command"},
		{"unknown flag", []string{"run", "--bogus", "--", "true"}, 2, "agentwatch: unknown flag: --bogus\n"},
	}
	if os.Geteuid() != 0 {
		// As root, 0500 does not stop writes; as a user it does.
		tests = append(tests, struct {
			name string
			args []string
			code int
			msg  string
		}{"unwritable store", append([]string{"run", "--store", unwritable, "--"}, touch...), 125, "agentwatch: opening store " + unwritable + ": "})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAgentwatch(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, tt.msg) {
				t.Errorf("stderr = %q, want it to start with %q", r.stderr, tt.msg)
			}
			if tt.code != 2 && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want exactly one line on stderr, got %q", r.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the child ran although agentwatch failed first")
			}
		})
	}
}

func TestPipeModeExitCodes(t *testing.T) {
	store := t.TempDir()
	tests := []struct {
		script string
		code   int
		stdout string
	}{
		{"echo out; echo err >&2; exit 0", 0, "out\n"},
		{"read line; echo \"got $line\"; exit 7", 7, "got from-stdin\n"},
		{"kill -TERM $$", 143, ""},
	}
	for _, tt := range tests {
		args := append(append([]string{"run", "--store", store}, asSelf()...), "--", "/bin/sh", "-c", tt.script)
		cmd := agentwatch(t, args...)
		cmd.Stdin = strings.NewReader("from-stdin\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		_ = cmd.Run()
		if got := cmd.ProcessState.ExitCode(); got != tt.code || out.String() != tt.stdout {
			t.Errorf("%q: exit %d stdout %q, want %d %q; stderr:\n%s", tt.script, got, out.String(), tt.code, tt.stdout, errb.String())
		}
		runID(t, errb.String())
	}
}

// TestChildIdentity launches the child as nobody and reads back what the
// kernel says about it: uid, no_new_privs, no capabilities, its cgroup.
func TestChildIdentity(t *testing.T) {
	privtest.Require(t)
	mount := cgroup2Mount(t)
	r := runAgentwatch(t, "run", "--user", "nobody", "--store", t.TempDir(), "--",
		"/bin/sh", "-c", "id -u; id -G; grep -E '^(NoNewPrivs|CapEff|CapPrm|CapAmb):' /proc/self/status; cat /proc/self/cgroup; echo HOME=$HOME USER=$USER")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	id := runID(t, r.stderr)
	for _, want := range []string{
		"65534\n",
		"NoNewPrivs:\t1\n",
		"CapEff:\t0000000000000000\n",
		"CapPrm:\t0000000000000000\n",
		"CapAmb:\t0000000000000000\n",
		"0::/agentwatch/run-" + id + "\n",
		"HOME=/nonexistent USER=nobody\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("child output lacks %q:\n%s", want, r.stdout)
		}
	}
	if groups := strings.Split(r.stdout, "\n")[1]; groups != "65534" {
		t.Errorf("supplementary groups %q, want only nobody's (root's groups must not leak)", groups)
	}
	if _, err := os.Stat(filepath.Join(mount, "agentwatch", "run-"+id)); !os.IsNotExist(err) {
		t.Errorf("run cgroup still exists after the run (stat: %v)", err)
	}
}

func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 8 && strings.Contains(line, " - cgroup2 ") {
			return f[4]
		}
	}
	t.Fatal("no cgroup2 mount")
	return ""
}

// TestLeftoversKilledAndCgroupRemoved: a background process the child
// leaves behind must not outlive the run.
func TestLeftoversKilledAndCgroupRemoved(t *testing.T) {
	privtest.Require(t)
	mount := cgroup2Mount(t)
	start := time.Now()
	// A duration no other process uses: the leftover is found by its
	// argv, since the pid the child sees is its PID namespace's.
	marker := fmt.Sprintf("300.%d", time.Now().UnixNano()%1000000)
	storeDir := t.TempDir()
	r := runAgentwatch(t, "run", "--user", "root", "--store", storeDir, "--",
		"/bin/sh", "-c", "setsid sleep "+marker+" </dev/null >/dev/null 2>&1 & sleep 0.2; exit 5")
	if r.code != 5 {
		t.Fatalf("exit %d, want 5; stderr:\n%s", r.code, r.stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %v: it waited for the leftover instead of killing it", d)
	}
	id := runID(t, r.stderr)
	// The premise: the leftover did run (the trace has it).
	tr := loadRun(t, storeDir, r.stderr)
	seen := false
	for _, sp := range tr.Spans {
		seen = seen || strings.Contains(sp.Name, marker)
		for _, kv := range sp.Attrs {
			seen = seen || strings.Contains(kv.Value.Emit(), "sleep "+marker)
		}
	}
	if !seen {
		t.Fatalf("the leftover sleep %s never ran: nothing to check", marker)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), marker) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat")); err == nil {
			// A zombie is dead.
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] != "Z" {
				t.Errorf("leftover %s still running (state %s)", p, f[2])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(mount, "agentwatch", "run-"+id)); !os.IsNotExist(err) {
		t.Errorf("run cgroup still exists (stat: %v)", err)
	}
}

// startAndWaitReady starts agentwatch on script and returns once the
// child printed "ready".
func startAndWaitReady(t *testing.T, script string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := agentwatch(t, "run", "--user", "root", "--store", t.TempDir(), "--", "/bin/sh", "-c", script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not get ready: %q, %v; stderr:\n%s", line, err, errb.String())
	}
	go io.Copy(io.Discard, stdout)
	return cmd, &errb
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		t.Fatalf("agentwatch did not exit within %v", within)
		return -1
	}
}

func TestSignalForwarding(t *testing.T) {
	privtest.Require(t)
	tests := []struct {
		name   string
		script string
		send   []syscall.Signal
		code   int
	}{
		// The child dies of the forwarded SIGTERM: 128+15.
		{"sigterm", "echo ready; exec sleep 30", []syscall.Signal{syscall.SIGTERM}, 143},
		{"sighup", "echo ready; exec sleep 30", []syscall.Signal{syscall.SIGHUP}, 129},
		// The child handles the signal itself and chooses its status.
		{"sigint handled", "trap 'exit 42' INT; echo ready; while :; do sleep 0.05; done", []syscall.Signal{syscall.SIGINT}, 42},
		// A child ignoring SIGINT: the second one kills the whole run.
		{"second sigint kills", "trap '' INT; echo ready; while :; do sleep 0.05; done", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, errb := startAndWaitReady(t, tt.script)
			for _, s := range tt.send {
				if err := cmd.Process.Signal(s); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond) // two distinct deliveries, not one coalesced
			}
			if code := waitExit(t, cmd, 10*time.Second); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errb)
			}
			// Interrupted or not, the run is recorded.
			runID(t, errb.String())
		})
	}
}

// asSelf is the --user that keeps the test's own identity: root must say
// so explicitly, anyone else is the default.
func asSelf() []string {
	if os.Geteuid() == 0 {
		return []string{"--user", "root"}
	}
	return nil
}

// syncBuffer collects the terminal's output while the test polls it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t *testing.T, want string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; got:\n%q", want, s.String())
		}
		if poke != nil {
			poke()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPTY runs agentwatch on a real terminal (a PTY the test owns, as a
// terminal emulator would) and checks what a user would see: the child
// gets its own terminal of the same size, the user's terminal is raw while
// the child runs (one echo, from the child's side), resizes reach the
// child, and the terminal is restored afterwards.
func TestPTY(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 37, Cols: 101}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}

	script := `stty size; [ -t 0 ] && echo ready; while read x; do [ "$x" = quit ] && exit 3; echo "got:$x"; stty size; done`
	args := append(append([]string{"run", "--store", t.TempDir()}, asSelf()...), "--", "/bin/sh", "-c", script)
	cmd := agentwatch(t, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	go io.Copy(&out, ptmx)
	defer cmd.Process.Kill()

	out.waitFor(t, "ready", nil)
	if !strings.Contains(out.String(), "37 101") {
		t.Errorf("child terminal size: want 37 101 in %q", out.String())
	}
	raw, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Errorf("user's terminal not raw while the child runs: lflag %#x", raw.Lflag)
	}

	io.WriteString(ptmx, "hello\r")
	out.waitFor(t, "got:hello", nil)
	// The child's PTY echoes "hello" once; a cooked outer terminal would
	// echo it a second time.
	if n := strings.Count(out.String(), "hello"); n != 2 {
		t.Errorf("\"hello\" appears %d times, want 2 (one echo + got:hello): %q", n, out.String())
	}

	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "50 120", func() { io.WriteString(ptmx, "size\r") })

	io.WriteString(ptmx, "quit\r")
	if code := waitExit(t, cmd, 10*time.Second); code != 3 {
		t.Fatalf("exit %d, want 3; output:\n%s", code, out.String())
	}
	after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal not restored: lflag %#x→%#x iflag %#x→%#x oflag %#x→%#x",
			before.Lflag, after.Lflag, before.Iflag, after.Iflag, before.Oflag, after.Oflag)
	}
	// The closing message comes after the restore, on a sane terminal.
	out.waitFor(t, "recorded (", nil)
}

// TestCollectorDown: an unreachable collector costs a one-line warning,
// not the run: the child's status stands and the store keeps the trace
// marked as not exported.
func TestCollectorDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // nothing listens there any more
	storeDir := t.TempDir()
	args := append(append([]string{"run", "--store", storeDir, "--otlp-endpoint", endpoint}, asSelf()...), "--", "/bin/sh", "-c", "exit 6")
	r := runAgentwatch(t, args...)
	if r.code != 6 {
		t.Fatalf("exit %d, want the child's 6; stderr:\n%s", r.code, r.stderr)
	}
	id := runID(t, r.stderr)
	want := "agentwatch: run " + id + ": exporting to " + l.Addr().String() + ": connection refused"
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "(kept in the store; retry with `agentwatch export "+id+"`)\n") {
		t.Errorf("stderr lacks the export warning %q...:\n%s", want, r.stderr)
	}
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, run, err := st.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Exported || run.ExportError == "" {
		t.Errorf("store says exported=%v error=%q, want a recorded failure", run.Exported, run.ExportError)
	}
}
