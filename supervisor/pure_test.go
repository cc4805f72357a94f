package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		want      string
		hybrid    bool
		err       bool
	}{
		{
			name: "hybrid",
			mountinfo: `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`,
			want: "/sys/fs/cgroup/unified", hybrid: true,
		},
		{
			name: "unified with optional fields",
			mountinfo: `25 1 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`,
			want: "/sys/fs/cgroup",
		},
		{
			name: "escaped space, shortest wins",
			mountinfo: `50 1 0:40 / /mnt/my\040cg rw - cgroup2 cgroup2 rw
51 1 0:40 / /mnt/my\040cg/inner/bind rw - cgroup2 cgroup2 rw
`,
			want: "/mnt/my cg",
		},
		{
			name:      "v1 only",
			mountinfo: "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
			hybrid:    true, err: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := ParseMountinfo(strings.NewReader(tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			got, hybrid, err := findCgroup2(mounts)
			if (err != nil) != tt.err || got != tt.want || hybrid != tt.hybrid {
				t.Fatalf("findCgroup2 = %q, %v, %v; want %q, %v, err %v", got, hybrid, err, tt.want, tt.hybrid, tt.err)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin1, bin2 := filepath.Join(dir, "bin1"), filepath.Join(dir, "bin2")
	for _, d := range []string{bin1, bin2, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin1, "noexec"), 0o644)
	write(filepath.Join(bin2, "noexec"), 0o755) // later in PATH, but runnable
	write(filepath.Join(bin1, "onlynoexec"), 0o644)
	write(filepath.Join(bin2, "tool"), 0o755)
	write(filepath.Join(dir, "sub", "local"), 0o755)
	path := bin1 + ":" + bin2

	tests := []struct {
		name string
		want string
		err  error
	}{
		{"tool", filepath.Join(bin2, "tool"), nil},
		{"noexec", filepath.Join(bin2, "noexec"), nil},
		{"onlynoexec", "", ErrCannotExecute},
		{"nosuchcommand", "", ErrCommandNotFound},
		{"./sub/local", filepath.Join(dir, "sub", "local"), nil},
		{"./sub", "", ErrCannotExecute}, // a directory
		{"./sub/missing", "", ErrCommandNotFound},
		{filepath.Join(bin1, "onlynoexec"), "", ErrCannotExecute},
		{"", "", ErrCommandNotFound},
	}
	for _, tt := range tests {
		got, err := LookPath(tt.name, path, dir)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("LookPath(%q) = %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
	if _, err := LookPath("nosuchcommand", path, dir); err == nil || err.Error() != "command not found: nosuchcommand" {
		t.Errorf("message = %v, want exactly \"command not found: nosuchcommand\"", err)
	}
}

func TestResolveTargetUnprivileged(t *testing.T) {
	noenv := func(string) string { return "" }
	// Not root: the child stays the current user whatever sudo variables say.
	got, err := ResolveAccount("", 1234, func(k string) string {
		if k == "SUDO_UID" {
			return "0"
		}
		return ""
	}, "/")
	if err != nil || got.UID != 1234 || got.Switch {
		t.Fatalf("ResolveAccount as uid 1234 = %+v, %v; want uid 1234 without switch", got, err)
	}
	if _, err := ResolveAccount("root", 1234, noenv, "/"); err == nil {
		t.Fatal("--user root as uid 1234 succeeded; want an error (needs root)")
	}
	if got, err := ResolveAccount("1234", 1234, noenv, "/"); err != nil || got.UID != 1234 {
		t.Fatalf("--user naming oneself = %+v, %v", got, err)
	}
}

func TestResolveTargetAsRoot(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	rootOwned := t.TempDir() // created by the test's uid; used only when root
	privtest.Require(t)      // the root branch reads ownership of a root-owned directory
	nobodyOwned := t.TempDir()
	if err := os.Chown(nobodyOwned, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    string
		env     map[string]string
		dir     string
		wantUID uint32
		switch_ bool
		err     error
	}{
		{"explicit root", "root", nil, rootOwned, 0, false, nil},
		{"explicit nobody by name", "nobody", nil, rootOwned, 65534, true, nil},
		{"explicit uid", "65534", nil, rootOwned, 65534, true, nil},
		{"unknown user", "no-such-user-xyz", nil, rootOwned, 0, false, ErrUnknownUser},
		{"sudo user", "", map[string]string{"SUDO_UID": "65534", "SUDO_GID": "65534"}, rootOwned, 65534, true, nil},
		{"sudo uid unknown to passwd", "", map[string]string{"SUDO_UID": "4242", "SUDO_GID": "4343", "SUDO_USER": "ghost"}, rootOwned, 4242, true, nil},
		{"root without sudo in root's directory", "", nil, rootOwned, 0, false, ErrRootRefused},
		{"root without sudo in a user's checkout", "", nil, nobodyOwned, 65534, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveAccount(tt.spec, 0, env(tt.env), tt.dir)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got.UID != tt.wantUID || got.Switch != tt.switch_ {
				t.Fatalf("got %+v, want uid %d switch %v", got, tt.wantUID, tt.switch_)
			}
			if len(got.Groups) == 0 || got.Groups[0] != got.GID {
				t.Fatalf("groups %v must start with the primary gid %d", got.Groups, got.GID)
			}
		})
	}
	if _, err := ResolveAccount("no-such-user-xyz", 0, env(nil), rootOwned); err == nil || err.Error() != `unknown user "no-such-user-xyz"` {
		t.Errorf("message = %v", err)
	}
}

func TestChildEnv(t *testing.T) {
	env := []string{"PATH=/bin", "HOME=/root", "USER=root", "LOGNAME=root", "TERM=xterm"}
	got := childEnv(env, Account{Switch: true, Name: "alice", Home: "/home/alice"})
	want := []string{"PATH=/bin", "TERM=xterm", "HOME=/home/alice", "USER=alice", "LOGNAME=alice"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("childEnv = %q, want %q", got, want)
	}
	if got := childEnv(env, Account{}); strings.Join(got, " ") != strings.Join(env, " ") {
		t.Fatalf("childEnv without a user switch changed the environment: %q", got)
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		script string
		code   int
		sig    int
	}{
		{"exit 0", 0, 0},
		{"exit 3", 3, 0},
		{"kill -TERM $$", 143, 15},
		{"kill -KILL $$", 137, 9},
	}
	for _, tt := range tests {
		cmd := exec.Command("/bin/sh", "-c", tt.script)
		_ = cmd.Run()
		code, sig := exitStatus(cmd.ProcessState)
		if code != tt.code || sig != tt.sig {
			t.Errorf("%q: exitStatus = %d, %d; want %d, %d", tt.script, code, sig, tt.code, tt.sig)
		}
	}
}

func TestNewRunID(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 7, 10, 0, time.UTC)
	a, b := NewRunID(at), NewRunID(at)
	if !regexp.MustCompile(`^20261125-090710-[0-9a-f]{6}$`).MatchString(a) {
		t.Fatalf("run id %q does not look like yyyymmdd-hhmmss-xxxxxx", a)
	}
	if a == b {
		t.Fatalf("two ids in the same second collided: %q", a)
	}
	if later := NewRunID(at.Add(time.Second)); later <= a {
		t.Fatalf("ids do not sort by time: %q then %q", a, later)
	}
	if newTraceID() == newTraceID() || !newTraceID().IsValid() {
		t.Fatal("trace ids must be random and valid")
	}
}

// TestJoinOneLine: several sink failures are one line for the operator,
// and each cause is still found by errors.Is (a full disk stays ENOSPC).
func TestJoinOneLine(t *testing.T) {
	if joinOneLine(nil, nil) != nil {
		t.Error("no error joined into one")
	}
	one := errors.New("one")
	if got := joinOneLine(nil, one); got != one {
		t.Errorf("a single error is wrapped: %v", got)
	}
	full := fmt.Errorf("saving run r: %w", syscall.ENOSPC)
	err := joinOneLine(full, errors.New("writing trace file t: closed"))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("%v: ENOSPC lost in the join", err)
	}
	lines := err.(interface{ Lines() []string }).Lines()
	if len(lines) != 1 || lines[0] != "saving run r: no space left on device; writing trace file t: closed" {
		t.Errorf("lines %q: want the two causes on one line", lines)
	}
	wrapped := &RecordError{Err: fmt.Errorf("%w (the run is kept in j)", err)}
	if !errors.Is(wrapped, syscall.ENOSPC) {
		t.Errorf("%v: ENOSPC lost through RecordError", wrapped)
	}
}
