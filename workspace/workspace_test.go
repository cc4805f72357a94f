package workspace

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

// tempDir is t.TempDir with symlinks resolved, because git reports the
// real top-level path.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// reachable lets another owner of d reach it, as a developer reaches their
// checkout (git runs as the repository's owner: its configuration is
// theirs to write, so what it runs runs as them).
func reachable(t *testing.T, d string) {
	t.Helper()
	for p := filepath.Dir(d); p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("these tests need git: %v", err)
	}
	d := tempDir(t)
	run(t, d, "init", "-q", "-b", "main")
	return d
}

func TestTakeNotGit(t *testing.T) {
	d := tempDir(t)
	s := take(t, d)
	if s.IsGit || s.Absent != AbsentNotGit || s.Root != d {
		t.Errorf("Take(plain dir) = %+v", s)
	}
	if got := Root(d); got != d {
		t.Errorf("Root(plain dir) = %q, want %q", got, d)
	}
	s = take(t, filepath.Join(d, "missing"))
	if s.IsGit || s.Absent != AbsentNoDir {
		t.Errorf("Take(missing dir) = %+v", s)
	}
}

func TestTakeUnbornBranch(t *testing.T) {
	d := newRepo(t)
	s := take(t, d)
	want := Snapshot{Root: d, IsGit: true, Branch: "main"}
	if pub(s) != want {
		t.Errorf("fresh repo: got %+v, want %+v", *s, want)
	}
	write(t, filepath.Join(d, "a.txt"), "a")
	write(t, filepath.Join(d, "newdir", "b.txt"), "b")
	write(t, filepath.Join(d, "newdir", "c.txt"), "c")
	s = take(t, d)
	if !s.Dirty || s.Untracked != 2 || s.Head != "" {
		t.Errorf("untracked file and dir: got %+v, want dirty, 2 untracked, no head", *s)
	}
}

func TestTakeCommitsBranchesDetached(t *testing.T) {
	d := newRepo(t)
	write(t, filepath.Join(d, "a.go"), "package a\n")
	run(t, d, "add", "a.go")
	run(t, d, "commit", "-q", "-m", "one")
	head := run(t, d, "rev-parse", "HEAD")

	sub := filepath.Join(d, "pkg", "deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Root(sub); got != d {
		t.Errorf("Root(subdir) = %q, want %q", got, d)
	}
	s := take(t, sub)
	want := Snapshot{Root: d, IsGit: true, Branch: "main", Head: head}
	if pub(s) != want {
		t.Errorf("clean repo from a subdirectory: got %+v, want %+v", *s, want)
	}

	// A staged rename is dirty, and its source record is not counted.
	run(t, d, "mv", "a.go", "b.go")
	s = take(t, d)
	if !s.Dirty || s.Untracked != 0 {
		t.Errorf("staged rename: got %+v, want dirty, 0 untracked", *s)
	}
	run(t, d, "commit", "-q", "-m", "two")
	head2 := run(t, d, "rev-parse", "HEAD")

	// Modified tracked file.
	write(t, filepath.Join(d, "b.go"), "package b\n")
	if s = take(t, d); !s.Dirty || s.Untracked != 0 || s.Head != head2 {
		t.Errorf("modified file: got %+v", *s)
	}
	run(t, d, "checkout", "-q", "--", "b.go")

	run(t, d, "checkout", "-q", "-b", "feature/x")
	if s = take(t, d); s.Branch != "feature/x" {
		t.Errorf("branch = %q, want feature/x", s.Branch)
	}
	run(t, d, "checkout", "-q", "--detach", head)
	if s = take(t, d); s.Branch != "" || s.Head != head || s.Dirty {
		t.Errorf("detached: got %+v, want no branch, head %s, clean", *s, head)
	}
}

func TestTakeRemoteCredentialsStripped(t *testing.T) {
	d := newRepo(t)
	run(t, d, "remote", "add", "origin", "https://x-access-token:ghs_abcdefSECRET123@github.com/acme/app.git")
	run(t, d, "remote", "add", "upstream", "https://example.com/other.git")
	s := take(t, d)
	if s.RemoteURL != "https://github.com/acme/app.git" {
		t.Errorf("RemoteURL = %q", s.RemoteURL)
	}
}

func TestStripCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:token@github.com/a/b.git", "https://github.com/a/b.git"},
		{"https://ghp_0123456789abcdef0123456789abcdef0123@github.com/a/b", "https://github.com/a/b"},
		{"http://u:p@10.0.0.1:8080/r.git", "http://10.0.0.1:8080/r.git"},
		{"https://github.com/a/b.git", "https://github.com/a/b.git"},
		{"git@github.com:a/b.git", "git@github.com:a/b.git"},
		{"ssh://git@github.com/a/b.git", "ssh://git@github.com/a/b.git"},
		{"ssh://git:hunter2@host/a/b.git", "ssh://git@host/a/b.git"},
		{"/srv/git/b.git", "/srv/git/b.git"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := StripCredentials(tt.in); got != tt.want {
			t.Errorf("StripCredentials(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTakeGitNotInstalled(t *testing.T) {
	d := newRepo(t)
	t.Setenv("PATH", tempDir(t))
	s := take(t, d)
	if s.IsGit || s.Absent != AbsentNoGit {
		t.Errorf("without git: got %+v", *s)
	}
	if got := Root(d); got != d {
		t.Errorf("Root without git = %q", got)
	}
}

func TestTakeTimeout(t *testing.T) {
	d := newRepo(t)
	bin := tempDir(t)
	write(t, filepath.Join(bin, "git"), "#!/bin/sh\nexec /bin/sleep 30\n")
	if err := os.Chmod(filepath.Join(bin, "git"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	old := Timeout
	Timeout = 200 * time.Millisecond
	t.Cleanup(func() { Timeout = old })
	start := time.Now()
	s := take(t, d)
	if s.IsGit || s.Absent != AbsentTimeout {
		t.Errorf("hanging git: got %+v", *s)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Take took %v with a 200ms timeout", el)
	}
}

// A workspace owned by another user than the one running agentwatch (root
// under sudo, the agent's files belong to the developer): git refuses it
// unless safe.directory allows it.
func TestTakeOtherOwner(t *testing.T) {
	privtest.Require(t)
	d := newRepo(t)
	write(t, filepath.Join(d, "a.txt"), "a")
	run(t, d, "add", "a.txt")
	run(t, d, "commit", "-q", "-m", "one")
	err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	})
	if err != nil {
		t.Fatal(err)
	}
	reachable(t, d)
	// Prove the premise: plain git refuses this repository.
	if out, err := exec.Command("git", "-C", d, "status").CombinedOutput(); err == nil {
		t.Fatalf("plain git accepted a repository owned by another user:\n%s", out)
	}
	s := take(t, d)
	if !s.IsGit || s.Head == "" || s.Branch != "main" || s.Dirty {
		t.Errorf("other owner: got %+v", *s)
	}
}

// pub is the snapshot's comparable facts: without the time and the
// temporary objects kept for TakeEvidence (which it releases).
func pub(s *Snapshot) Snapshot {
	s.Close()
	c := *s
	c.Time, c.base = time.Time{}, nil
	return c
}

// take is Take with the temporary objects released when the test ends.
func take(t *testing.T, dir string) *Snapshot {
	s := Take(dir)
	t.Cleanup(s.Close)
	return s
}
