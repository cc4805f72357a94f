package workspace

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gitCalls puts a git on PATH that logs each call's subcommand and runs the
// real one; the returned function gives (and forgets) the calls so far,
// sorted (some run concurrently).
func gitCalls(t *testing.T) func() []string {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("these tests need git: %v", err)
	}
	bin := tempDir(t)
	log := filepath.Join(bin, "calls")
	write(t, filepath.Join(bin, "git"), "#!/bin/sh\necho \"$*\" >> "+log+"\nexec "+real+" \"$@\"\n")
	if err := os.Chmod(filepath.Join(bin, "git"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		var subs []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			// Global options come in pairs (-c k=v, -C dir) before the subcommand.
			for len(f) >= 2 && (f[0] == "-c" || f[0] == "-C") {
				f = f[2:]
			}
			if len(f) > 0 {
				subs = append(subs, f[0])
			}
		}
		slices.Sort(subs)
		return subs
	}
}

// TestGitCalls pins how many git processes a run costs, start and end: the
// start snapshot is pure latency before the agent may start. A new call
// here should be a deliberate choice, not an accident.
func TestGitCalls(t *testing.T) {
	d := newRepo(t)
	write(t, filepath.Join(d, "a.txt"), "a\n")
	commitAll(t, d, "one")
	write(t, filepath.Join(d, "a.txt"), "a\nb\n")
	write(t, filepath.Join(d, "u.txt"), "u\n")
	plain := tempDir(t)
	calls := gitCalls(t)

	// agentwatch run: Root for the policy, Root in the supervisor, Take.
	for _, dir := range []string{d, plain} {
		Root(dir)
		Root(dir)
	}
	before, beforePlain := Take(d), Take(plain)
	want := []string{"add", "config", "ls-files", "rev-parse", "rev-parse", "status", "write-tree"}
	if got := calls(); !slices.Equal(got, want) || !before.IsGit || !before.Dirty || before.Untracked != 1 {
		t.Errorf("Root twice and Take, in a repository and a plain directory: git %q, want %q (snapshot %+v)", got, want, *before)
	}

	write(t, filepath.Join(d, "c.txt"), "c\n")
	ev := TakeEvidence(before, d, Limits{})
	evPlain := TakeEvidence(beforePlain, plain, Limits{})
	// The repository found at the start is reused (relocate): only the
	// plain directory is asked again.
	want = []string{"add", "config", "diff", "diff", "log", "ls-files", "rev-parse", "status", "write-tree"}
	if got := calls(); !slices.Equal(got, want) || ev.FilesTotal != 3 || !slices.Equal(ev.Touched, []string{"c.txt"}) || evPlain.Absent != AbsentNotGit {
		t.Errorf("TakeEvidence: git %q, want %q (files %d, touched %q, plain %q)", got, want, ev.FilesTotal, ev.Touched, evPlain.Absent)
	}

	// An untracked directory is one status entry: its files are listed
	// (one more ls-files) to find those too large to hash.
	before = Take(d)
	calls()
	write(t, filepath.Join(d, "dumps", "big.sql"), strings.Repeat("INSERT 1;\n", 1000))
	write(t, filepath.Join(d, "dumps", "small.sql"), "INSERT 2;\n")
	ev = TakeEvidence(before, d, Limits{MaxFileBytes: 5000})
	want = []string{"add", "config", "diff", "diff", "log", "ls-files", "ls-files", "status", "write-tree"}
	if got := calls(); !slices.Equal(got, want) {
		t.Errorf("untracked directory: git %q, want %q", got, want)
	}
	if !slices.Equal(ev.TooLarge, []string{"dumps/big.sql"}) || !slices.Contains(ev.Touched, "dumps/small.sql") || !slices.Contains(ev.Touched, "dumps/big.sql") {
		t.Errorf("too large %q, touched %q", ev.TooLarge, ev.Touched)
	}
}
