package workspace

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

func commitAll(t *testing.T, d, msg string) string {
	t.Helper()
	run(t, d, "add", "-A")
	run(t, d, "commit", "-q", "-m", msg)
	return run(t, d, "rev-parse", "HEAD")
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// loose lists the repository's object files, to prove TakeEvidence adds
// none.
func loose(t *testing.T, d string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	filepath.Walk(filepath.Join(d, ".git", "objects"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			m[p] = true
		}
		return nil
	})
	return m
}

// TestEvidenceRun plays a whole run in a real repository: a file dirty
// before the run, edits, a new untracked file, a deletion, a commit that is
// amended, a lockfile, a workflow, ignored and build output, a binary file
// and a path with spaces, a newline and non-ASCII letters.
func TestEvidenceRun(t *testing.T) {
	d := newRepo(t)
	write(t, filepath.Join(d, ".gitignore"), "dist/\n*.log\n")
	write(t, filepath.Join(d, "main.go"), "package main\n\nfunc main() {}\n")
	write(t, filepath.Join(d, "gone.txt"), "bye\n")
	write(t, filepath.Join(d, "old.txt"), "one\n")
	write(t, filepath.Join(d, "web", "package-lock.json"), "{}\n")
	write(t, filepath.Join(d, "keep.txt"), "same\n")
	base := commitAll(t, d, "base")
	write(t, filepath.Join(d, "old.txt"), "one\ntwo (dirty before the run)\n")
	write(t, filepath.Join(d, "pre.txt"), "untracked before the run\n")
	write(t, filepath.Join(d, "dist", "old.js"), "ignored before\n")

	before := Take(d)
	if !before.IsGit || before.Head != base || !before.Dirty || before.base == nil || before.base.tree == "" {
		t.Fatalf("before: %+v (base %+v)", *before, before.base)
	}

	// The run.
	write(t, filepath.Join(d, "main.go"), "package main\n\nfunc main() { println(1) }\n")
	run(t, d, "add", "main.go")
	run(t, d, "commit", "-q", "-m", "first try")
	first := run(t, d, "rev-parse", "HEAD")
	time.Sleep(1100 * time.Millisecond) // a different committer second, so the amend is a new commit
	run(t, d, "commit", "-q", "--amend", "-m", "print one")
	head := run(t, d, "rev-parse", "HEAD")
	if err := os.Remove(filepath.Join(d, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(d, "new file.go"), "package main\n// new content\n")
	write(t, filepath.Join(d, "web", "package-lock.json"), "{\"lockfileVersion\": 3}\n")
	write(t, filepath.Join(d, ".github", "workflows", "ci.yml"), "on: push\n")
	write(t, filepath.Join(d, "dist", "app.js"), "built\n")
	write(t, filepath.Join(d, "out", "dist2", "x.o"), "o\n") // not ignored, under a build directory
	write(t, filepath.Join(d, "run.log"), "log\n")
	write(t, filepath.Join(d, "img.bin"), "\x00\x01\x02binary\x00")
	odd := "dir with space/ünï\ncode.txt"
	write(t, filepath.Join(d, odd), "odd path\n")
	objsBefore := loose(t, d)

	ev := TakeEvidence(before, d, Limits{})
	if ev.Absent != "" || len(ev.Errors) > 0 {
		t.Fatalf("absent %q, errors %q", ev.Absent, ev.Errors)
	}
	if ev.Base != base || ev.Head != head || ev.State != "" || ev.Root != d {
		t.Errorf("base %s head %s state %q root %s; want %s %s", ev.Base, ev.Head, ev.State, ev.Root, base, head)
	}
	if !ev.After.Dirty || ev.After.Head != head || ev.After.Branch != "main" {
		t.Errorf("after: %+v", *ev.After)
	}
	if len(ev.Commits) != 1 || ev.Commits[0].SHA != head || ev.Commits[0].Subject != "print one" || ev.Commits[0].Time.IsZero() {
		t.Errorf("commits: %+v", ev.Commits)
	}
	if len(ev.Abandoned) != 1 || ev.Abandoned[0].SHA != first || ev.Abandoned[0].Subject != "first try" {
		t.Errorf("abandoned (amended away): %+v, want %s", ev.Abandoned, first)
	}

	wantTouched := []string{".github/workflows/ci.yml", odd, "gone.txt", "img.bin", "main.go", "new file.go", "out/dist2/x.o", "web/package-lock.json"}
	if got := sorted(ev.Touched); !slices.Equal(got, wantTouched) {
		t.Errorf("touched:\n got %q\nwant %q", got, wantTouched)
	}
	checks := []struct {
		name      string
		got, want []string
	}{
		{"deleted", ev.Deleted, []string{"gone.txt"}},
		{"lockfiles", ev.Lockfiles, []string{"web/package-lock.json"}},
		{"workflows", ev.Workflows, []string{".github/workflows/ci.yml"}},
		// dist/ was ignored before the run (a directory counts once), the
		// log is new.
		{"generated", ev.Generated, []string{"out/dist2/x.o", "run.log"}},
	}
	for _, c := range checks {
		if !slices.Equal(sorted(c.got), c.want) {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}

	// The diff is base → end, so the change made before the run and the
	// file untracked before it are in it too.
	sum := sha256.Sum256(ev.Diff)
	if ev.DiffSHA256 != hex.EncodeToString(sum[:]) || ev.DiffTruncated {
		t.Errorf("sha256 %s truncated %v", ev.DiffSHA256, ev.DiffTruncated)
	}
	for _, want := range []string{"+two (dirty before the run)", "+untracked before the run", "+// new content",
		"deleted file mode", "-bye", "Binary files /dev/null and b/img.bin differ", "+odd path",
		// a newline forces C quoting of the header; core.quotepath=false
		// keeps the letters as they are
		`"b/dir with space/ünï\ncode.txt"`} {
		if !bytes.Contains(ev.Diff, []byte(want)) {
			t.Errorf("diff lacks %q:\n%s", want, ev.Diff)
		}
	}
	if bytes.Contains(ev.Diff, []byte("binary\x00")) || bytes.Contains(ev.Diff, []byte("built")) || bytes.Contains(ev.Diff, []byte("x.o")) == false {
		t.Errorf("diff has binary or ignored content, or lacks unignored build output:\n%s", ev.Diff)
	}
	stats := map[string]FileStat{}
	for _, f := range ev.Files {
		stats[f.Path] = f
	}
	if f := stats["img.bin"]; !f.Binary || f.Added != 0 {
		t.Errorf("img.bin numstat %+v, want binary", f)
	}
	if f := stats["old.txt"]; f.Added != 1 || f.Removed != 0 {
		t.Errorf("old.txt numstat %+v", f)
	}
	if f := stats["main.go"]; f.Added != 1 || f.Removed != 1 {
		t.Errorf("main.go numstat %+v", f)
	}
	if _, ok := stats[odd]; !ok || ev.FilesTotal != len(ev.Files) || ev.FilesTotal != 10 {
		t.Errorf("files %d (%d listed): %+v", ev.FilesTotal, len(ev.Files), ev.Files)
	}
	if ev.LinesAdded == 0 || ev.LinesRemoved != 3 { // main.go's old line, gone.txt, the lockfile's line
		t.Errorf("lines +%d -%d", ev.LinesAdded, ev.LinesRemoved)
	}

	// Nothing was written into the repository: not the index, not one
	// object (the untracked file's blob exists only in the temporary
	// directory, which is gone).
	if objsAfter := loose(t, d); len(objsAfter) != len(objsBefore) {
		t.Errorf("TakeEvidence added %d object files to the repository", len(objsAfter)-len(objsBefore))
	}
	blob := run(t, d, "hash-object", "pre.txt")
	if err := exec.Command("git", "-C", d, "cat-file", "-e", blob).Run(); err == nil {
		t.Errorf("the untracked file's blob %s landed in the repository", blob)
	}
	if st := run(t, d, "status", "--porcelain"); !strings.Contains(st, "?? pre.txt") || !strings.Contains(st, " M old.txt") {
		t.Errorf("status changed:\n%s", st)
	}
	if _, err := os.Stat(before.base.tmp); !os.IsNotExist(err) {
		t.Errorf("temporary objects %s left behind: %v", before.base.tmp, err)
	}
}

// TestEvidenceIndexUntouched: staged-but-uncommitted work stays exactly as
// staged (the user's index file is byte-for-byte the same).
func TestEvidenceIndexUntouched(t *testing.T) {
	d := newRepo(t)
	write(t, filepath.Join(d, "a.txt"), "a\n")
	commitAll(t, d, "one")
	before := Take(d)
	write(t, filepath.Join(d, "a.txt"), "a\nstaged\n")
	run(t, d, "add", "a.txt")
	write(t, filepath.Join(d, "a.txt"), "a\nstaged\nunstaged\n")
	write(t, filepath.Join(d, "u.txt"), "u\n")
	index, _ := os.ReadFile(filepath.Join(d, ".git", "index"))
	ev := TakeEvidence(before, d, Limits{})
	after, _ := os.ReadFile(filepath.Join(d, ".git", "index"))
	if !bytes.Equal(index, after) {
		t.Error("the user's index changed")
	}
	if !bytes.Contains(ev.Diff, []byte("+unstaged")) || !bytes.Contains(ev.Diff, []byte("+u")) {
		t.Errorf("diff misses worktree content:\n%s", ev.Diff)
	}
	if got := run(t, d, "diff", "--cached", "--name-only"); got != "a.txt" {
		t.Errorf("staged = %q", got)
	}
}

// TestEvidenceStates: each awkward repository gives a correct record or
// an explicit absence, never a panic or an empty success.
func TestEvidenceStates(t *testing.T) {
	conflict := func(t *testing.T) (string, string) {
		d := newRepo(t)
		write(t, filepath.Join(d, "f.txt"), "base\n")
		commitAll(t, d, "base")
		run(t, d, "checkout", "-q", "-b", "other")
		write(t, filepath.Join(d, "f.txt"), "other\n")
		commitAll(t, d, "other")
		run(t, d, "checkout", "-q", "main")
		write(t, filepath.Join(d, "f.txt"), "main\n")
		return d, commitAll(t, d, "main")
	}
	tests := []struct {
		name      string
		setup     func(t *testing.T) (dir, head string) // head "" : unborn
		wantState string
		wantAbsnt string
		inDiff    string
	}{
		{"merge in progress", func(t *testing.T) (string, string) {
			d, h := conflict(t)
			exec.Command("git", "-C", d, "-c", "user.name=t", "-c", "user.email=t@e", "merge", "-q", "other").Run()
			return d, h
		}, StateMerging, "", "+>>>>>>> other"},
		{"rebase in progress", func(t *testing.T) (string, string) {
			d, _ := conflict(t)
			exec.Command("git", "-C", d, "-c", "user.name=t", "-c", "user.email=t@e", "rebase", "other").Run()
			return d, run(t, d, "rev-parse", "HEAD")
		}, StateRebasing, "", "<<<<<<<"},
		{"cherry-pick in progress", func(t *testing.T) (string, string) {
			d, h := conflict(t)
			exec.Command("git", "-C", d, "-c", "user.name=t", "-c", "user.email=t@e", "cherry-pick", "other").Run()
			return d, h
		}, StateCherryPicking, "", "<<<<<<<"},
		{"bisecting", func(t *testing.T) (string, string) {
			d, h := conflict(t)
			run(t, d, "bisect", "start")
			return d, h
		}, StateBisecting, "", "+x"},
		{"detached HEAD", func(t *testing.T) (string, string) {
			d, _ := conflict(t)
			run(t, d, "checkout", "-q", "--detach", "HEAD~1")
			return d, run(t, d, "rev-parse", "HEAD")
		}, "", "", "+x"},
		{"unborn branch", func(t *testing.T) (string, string) {
			d := newRepo(t)
			write(t, filepath.Join(d, "first.txt"), "first\n")
			return d, ""
		}, "", "", "+first"},
		{"bare repository", func(t *testing.T) (string, string) {
			d := tempDir(t)
			run(t, d, "init", "-q", "--bare")
			return d, ""
		}, "", AbsentBare, ""},
		{"not a repository", func(t *testing.T) (string, string) { return tempDir(t), "" }, "", AbsentNotGit, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, head := tt.setup(t)
			before := Take(d)
			if before.State != tt.wantState || before.Head != head {
				t.Errorf("before: state %q head %q, want %q %q", before.State, before.Head, tt.wantState, head)
			}
			if tt.wantAbsnt == "" {
				write(t, filepath.Join(d, "x.txt"), "x\n")
			}
			ev := TakeEvidence(before, d, Limits{})
			if ev.Absent != tt.wantAbsnt {
				t.Fatalf("absent %q, want %q", ev.Absent, tt.wantAbsnt)
			}
			if tt.wantAbsnt != "" {
				if ev.Diff != nil || ev.After == nil {
					t.Errorf("absent evidence has content: %+v", ev)
				}
				return
			}
			if len(ev.Errors) > 0 || ev.State != tt.wantState || ev.Base != head || ev.Head != head {
				t.Errorf("errors %q, state %q, base %q head %q", ev.Errors, ev.State, ev.Base, ev.Head)
			}
			if !bytes.Contains(ev.Diff, []byte(tt.inDiff)) || !slices.Contains(ev.Touched, "x.txt") {
				t.Errorf("touched %q; diff lacks %q:\n%s", ev.Touched, tt.inDiff, ev.Diff)
			}
		})
	}
}

func TestEvidenceNoGit(t *testing.T) {
	d := newRepo(t)
	if ev := TakeEvidence(nil, d, Limits{}); ev.Absent != AbsentNoStart || !ev.After.IsGit {
		t.Errorf("nil before: absent %q, after %+v", ev.Absent, ev.After)
	}
	t.Setenv("PATH", tempDir(t))
	before := Take(d)
	ev := TakeEvidence(before, d, Limits{})
	if ev.Absent != AbsentNoGit || ev.After == nil || ev.After.Absent != AbsentNoGit {
		t.Errorf("absent %q, want %q", ev.Absent, AbsentNoGit)
	}
}

func TestEvidenceGitGoneAtEnd(t *testing.T) {
	d := newRepo(t)
	before := Take(d)
	t.Setenv("PATH", tempDir(t))
	ev := TakeEvidence(before, d, Limits{})
	if ev.Absent != "at the end: "+AbsentNoGit {
		t.Errorf("absent %q", ev.Absent)
	}
	if _, err := os.Stat(before.base.tmp); !os.IsNotExist(err) {
		t.Errorf("temporary objects left: %v", err)
	}
}

// TestEvidenceHugeDiff: a 20 MB generated file gives a bounded diff, in
// bounded time, still with its sha256, numstat and the marker.
func TestEvidenceHugeDiff(t *testing.T) {
	d := newRepo(t)
	write(t, filepath.Join(d, "a.txt"), "a\n")
	commitAll(t, d, "one")
	before := Take(d)
	var b strings.Builder
	line := strings.Repeat("x", 99) + "\n"
	for b.Len() < 20<<20 {
		b.WriteString(line)
	}
	write(t, filepath.Join(d, "generated.txt"), b.String())
	const limit = 1 << 20
	start := time.Now()
	ev := TakeEvidence(before, d, Limits{MaxDiffBytes: limit})
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %v", el)
	}
	marker := []byte("[agentwatch: diff truncated at 1048576 bytes]\n")
	if !ev.DiffTruncated || len(ev.Diff) > limit+len(marker)+1 || !bytes.HasSuffix(ev.Diff, marker) {
		t.Errorf("truncated %v, %d bytes, ends %q", ev.DiffTruncated, len(ev.Diff), ev.Diff[max(0, len(ev.Diff)-60):])
	}
	sum := sha256.Sum256(ev.Diff)
	if ev.DiffSHA256 != hex.EncodeToString(sum[:]) {
		t.Error("sha256 is not of the kept diff")
	}
	if ev.FilesTotal != 1 || ev.LinesAdded != 20<<20/100+1 || len(ev.Errors) > 0 {
		t.Errorf("files %d, +%d, errors %q", ev.FilesTotal, ev.LinesAdded, ev.Errors)
	}
}

// TestEvidenceTooLarge: an untracked file over MaxFileBytes is named but
// never hashed into the temporary objects or the diff.
func TestEvidenceTooLarge(t *testing.T) {
	d := newRepo(t)
	write(t, filepath.Join(d, "a.txt"), "a\n")
	commitAll(t, d, "one")
	before := Take(d)
	write(t, filepath.Join(d, "dump.sql"), strings.Repeat("INSERT 1;\n", 1000))
	write(t, filepath.Join(d, "small.txt"), "small\n")
	ev := TakeEvidence(before, d, Limits{MaxFileBytes: 5000})
	if !slices.Equal(ev.TooLarge, []string{"dump.sql"}) || !slices.Contains(ev.Touched, "dump.sql") {
		t.Errorf("too large %q, touched %q", ev.TooLarge, ev.Touched)
	}
	if bytes.Contains(ev.Diff, []byte("INSERT")) || !bytes.Contains(ev.Diff, []byte("+small")) {
		t.Errorf("diff:\n%s", ev.Diff)
	}
}

func TestClassifiers(t *testing.T) {
	tests := []struct {
		path                      string
		lock, workflow, generated bool
	}{
		{"package-lock.json", true, false, false},
		{"web/yarn.lock", true, false, false},
		{"pnpm-lock.yaml", true, false, false},
		{"go.sum", true, false, false},
		{"crates/x/Cargo.lock", true, false, false},
		{"poetry.lock", true, false, false},
		{"uv.lock", true, false, false},
		{"Gemfile.lock", true, false, false},
		{"composer.lock", true, false, false},
		{"go.mod", false, false, false},
		{"package.json", false, false, false},
		{".github/workflows/ci.yml", false, true, false},
		{".github/actions/setup/action.yml", false, true, false},
		{".gitlab-ci.yml", false, true, false},
		{"sub/.gitlab-ci.yml", false, false, false},
		{"Jenkinsfile", false, true, false},
		{"services/api/Jenkinsfile", false, true, false},
		{".circleci/config.yml", false, true, false},
		{"azure-pipelines.yml", false, true, false},
		{".buildkite/pipeline.yml", false, true, false},
		{"bitbucket-pipelines.yml", false, true, false},
		{".travis.yml", false, true, false},
		{".github/CODEOWNERS", false, false, false},
		{"node_modules/left-pad/index.js", false, false, true},
		{"web/dist/app.js", false, false, true},
		{"target/debug/app", false, false, true},
		{"pkg/__pycache__/m.cpython-312.pyc", false, false, true},
		{".venv/bin/python", false, false, true},
		{"vendor/github.com/x/y.go", false, false, false},
		{"cmd/build.go", false, false, false},
		{"build", false, false, false},
	}
	for _, tt := range tests {
		if got := IsLockfile(tt.path); got != tt.lock {
			t.Errorf("IsLockfile(%q) = %v", tt.path, got)
		}
		if got := IsWorkflow(tt.path); got != tt.workflow {
			t.Errorf("IsWorkflow(%q) = %v", tt.path, got)
		}
		if got := IsBuildOutput(tt.path); got != tt.generated {
			t.Errorf("IsBuildOutput(%q) = %v", tt.path, got)
		}
	}
}

// TestEvidenceOtherOwner: under sudo the repository belongs to the
// developer. Evidence must work and leave no root-owned file in it (a
// root-owned .git/objects/xx/ would break the developer's next commit).
func TestEvidenceOtherOwner(t *testing.T) {
	privtest.Require(t)
	d := newRepo(t)
	write(t, filepath.Join(d, "a.txt"), "a\n")
	commitAll(t, d, "one")
	chown := func() {
		err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	chown()
	reachable(t, d)
	before := Take(d)
	write(t, filepath.Join(d, "b.txt"), "new\n")
	write(t, filepath.Join(d, "a.txt"), "a\nchanged\n")
	chown()
	ev := TakeEvidence(before, d, Limits{})
	if ev.Absent != "" || len(ev.Errors) > 0 || !slices.Equal(sorted(ev.Touched), []string{"a.txt", "b.txt"}) {
		t.Fatalf("absent %q errors %q touched %q", ev.Absent, ev.Errors, ev.Touched)
	}
	filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Sys().(*syscall.Stat_t).Uid != 65534 {
			t.Errorf("%s is owned by uid %d after TakeEvidence", p, fi.Sys().(*syscall.Stat_t).Uid)
		}
		return nil
	})
}

// TestEvidenceRepoRemovedDuringRun: the start's repository is reused at the
// end only while it is still there; a run that deletes .git gets "not a
// repository at the end", not errors from a vanished index.
func TestEvidenceRepoRemovedDuringRun(t *testing.T) {
	d := newRepo(t)
	write(t, filepath.Join(d, "a.txt"), "a\n")
	commitAll(t, d, "one")
	before := Take(d)
	if err := os.RemoveAll(filepath.Join(d, ".git")); err != nil {
		t.Fatal(err)
	}
	ev := TakeEvidence(before, d, Limits{})
	if !strings.HasPrefix(ev.Absent, "at the end: ") || ev.After.IsGit {
		t.Errorf("absent %q, after is git %v; errors %q", ev.Absent, ev.After.IsGit, ev.Errors)
	}
}
