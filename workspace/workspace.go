// Package workspace takes evidence of the repository an agent works in,
// from the real git repository: root, remote, branch, HEAD, worktree status
// at the start (Take), and at the end (Evidence) the final diff against the
// base, touched, deleted and generated files, lockfile and CI changes, and
// the commits made during the run.
//
// It reads; it never changes the repository: git runs with
// GIT_OPTIONAL_LOCKS=0 (even `git status` does not refresh the index), and
// the worktree trees it needs are built in a temporary index and a
// temporary object directory outside the repository (the repository's own
// objects are only an alternate), so neither the user's index nor .git/objects
// gets a single byte — which matters under sudo, where a root-owned object
// directory would later break the user's own commits.
//
// It never fails: what it cannot learn is an explicit Absent reason or an
// entry in Evidence.Errors.
package workspace

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Snapshot is the state of the workspace at one moment.
type Snapshot struct {
	Root      string // git top-level, or the directory when not in git
	IsGit     bool
	Absent    string // why there is no git evidence, when IsGit is false
	RemoteURL string // credentials stripped
	Branch    string // empty when detached
	Head      string // commit SHA, empty for an unborn branch
	Dirty     bool
	Untracked int    // untracked entries as git status lists them (an untracked directory counts once)
	State     string // in-progress operation: merging, rebasing, cherry-picking, reverting, bisecting, applying; empty when none
	Time      time.Time

	// base is what Evidence needs to tell what the run changed; nil when
	// the worktree tree could not be taken.
	base *baseline
}

// Close removes the temporary objects Take made for TakeEvidence, for a run that
// ends without calling Evidence. Safe to call more than once and on nil.
func (s *Snapshot) Close() {
	if s != nil && s.base != nil {
		s.base.close()
	}
}

// Timeout bounds each git call: evidence must never hang a run (a stuck
// NFS mount, a huge repository).
var Timeout = 10 * time.Second

// Absent reasons.
const (
	AbsentNotGit     = "not a git repository"
	AbsentNoGit      = "git not installed"
	AbsentTimeout    = "git timed out"
	AbsentNoDir      = "directory does not exist"
	AbsentGitFailure = "git failed"
	AbsentBare       = "bare repository (no work tree)"
	AbsentNoStart    = "no workspace snapshot at the start of the run"
)

// Root returns the git top-level containing dir, or dir itself when it is
// not inside a git work tree (or git is unavailable).
func Root(dir string) string {
	out, err := git(dir, "rev-parse", "--show-toplevel")
	if err != nil || out == "" {
		return filepath.Clean(dir)
	}
	return out
}

// Take snapshots the workspace at dir. It never fails: missing evidence is
// reported in Absent. The snapshot holds temporary objects outside the
// repository until TakeEvidence (or Close) is called with it.
func Take(dir string) *Snapshot {
	s := &Snapshot{Root: filepath.Clean(dir), Time: time.Now()}
	loc, ok := s.locate(dir)
	if !ok {
		return s
	}
	s.status(loc)
	s.base = newBaseline(loc)
	return s
}

// repoLoc is where a work tree's git data lives.
type repoLoc struct {
	top     string // work tree top level
	gitDir  string // per-worktree git directory (state files live here)
	objects string // the object directory (shared by linked worktrees)
	index   string // the per-worktree index file
}

// locate fills Root, IsGit, RemoteURL, Branch, Head and State, or Absent.
func (s *Snapshot) locate(dir string) (repoLoc, bool) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		s.Absent = AbsentNoDir
		return repoLoc{}, false
	}
	out, err := git(dir, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-path", "objects", "--git-path", "index")
	if err != nil {
		s.Absent = absentReason(err)
		if s.Absent == AbsentNotGit {
			// rev-parse --show-toplevel fails the same way in a bare
			// repository; say which it is.
			if b, err := git(dir, "rev-parse", "--is-bare-repository"); err == nil && b == "true" {
				s.Absent = AbsentBare
			}
		}
		return repoLoc{}, false
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 4 {
		s.Absent = AbsentGitFailure + ": unexpected rev-parse output"
		return repoLoc{}, false
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p) // --git-path answers relative to the cwd
	}
	loc := repoLoc{top: lines[0], gitDir: lines[1], objects: abs(lines[2]), index: abs(lines[3])}
	s.Root, s.IsGit = loc.top, true

	// No origin is normal (a fresh repo): leave the URL empty.
	if u, err := git(loc.top, "config", "--get", "remote.origin.url"); err == nil {
		s.RemoteURL = StripCredentials(u)
	}
	// symbolic-ref fails (exit 1) on a detached HEAD: branch stays empty.
	if b, err := git(loc.top, "symbolic-ref", "-q", "--short", "HEAD"); err == nil {
		s.Branch = b
	}
	// --verify -q prints nothing and fails on an unborn branch.
	if h, err := git(loc.top, "rev-parse", "-q", "--verify", "HEAD^{commit}"); err == nil {
		s.Head = h
	}
	s.State = operationState(loc.gitDir)
	return loc, true
}

// status fills Dirty and Untracked.
func (s *Snapshot) status(loc repoLoc) {
	st, err := gitRaw(loc.top, "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignore-submodules=none")
	if err != nil {
		// The repository is there but its status is not: say so rather
		// than report a clean tree.
		s.Absent = "git status: " + absentReason(err)
		return
	}
	recs := bytes.Split(st, []byte{0})
	for i := 0; i < len(recs); i++ {
		rec := recs[i]
		if len(rec) < 4 {
			continue // the trailing empty record
		}
		s.Dirty = true
		switch {
		case rec[0] == '?' && rec[1] == '?':
			s.Untracked++
		case rec[0] == 'R' || rec[0] == 'C' || rec[1] == 'R' || rec[1] == 'C':
			i++ // with -z the rename/copy source is the next record
		}
	}
}

// operationState names the operation in progress from the marker files git
// itself checks (wt-status.c), most specific first: a rebase that stopped
// on a conflicting pick also has CHERRY_PICK_HEAD.
func operationState(gitDir string) string {
	exists := func(name string) bool {
		_, err := os.Lstat(filepath.Join(gitDir, name))
		return err == nil
	}
	switch {
	case exists("rebase-merge"):
		return StateRebasing
	case exists("rebase-apply/applying"):
		return StateApplying
	case exists("rebase-apply"):
		return StateRebasing
	case exists("MERGE_HEAD"):
		return StateMerging
	case exists("CHERRY_PICK_HEAD"):
		return StateCherryPicking
	case exists("REVERT_HEAD"):
		return StateReverting
	case exists("BISECT_LOG"):
		return StateBisecting
	}
	return ""
}

// Worktree states (agentwatch.worktree.state).
const (
	StateMerging       = "merging"
	StateRebasing      = "rebasing"
	StateApplying      = "applying" // git am
	StateCherryPicking = "cherry-picking"
	StateReverting     = "reverting"
	StateBisecting     = "bisecting"
)

// StripCredentials removes a password or token from a remote URL
// (https://user:token@host/x → https://host/x). scp-style ssh remotes
// (git@host:x) and ssh://git@host carry a user name, not a secret, and are
// kept.
func StripCredentials(remote string) string {
	u, err := url.Parse(remote)
	if err != nil || u.Scheme == "" || u.User == nil {
		return remote
	}
	switch u.Scheme {
	case "ssh", "git+ssh", "ssh+git":
		if _, hasPass := u.User.Password(); hasPass {
			u.User = url.User(u.User.Username())
		}
	default:
		// In http(s) even a bare user part is usually a token
		// (https://ghp_x@github.com/...).
		u.User = nil
	}
	return u.String()
}

var errTimeout = errors.New("git timed out")

func absentReason(err error) string {
	var exitErr *exec.ExitError
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return AbsentNoGit
	case errors.Is(err, errTimeout):
		return AbsentTimeout
	case errors.As(err, &exitErr):
		// rev-parse exits 128 outside a work tree; other failures of git
		// itself have the same code, but the first call is rev-parse.
		return AbsentNotGit
	}
	return AbsentGitFailure + ": " + err.Error()
}

func git(dir string, args ...string) (string, error) {
	out, err := gitRaw(dir, args...)
	return strings.TrimSpace(string(out)), err
}

func gitRaw(dir string, args ...string) ([]byte, error) {
	return gitEnv(dir, nil, nil, args...)
}

// gitEnv runs git read-only in dir, with extra environment (the temporary
// index and object directory) and stdin. safe.directory=* because the
// workspace may belong to another user than agentwatch (root under sudo);
// we only read. core.quotepath=false so that paths come back as bytes.
func gitEnv(dir string, extra []string, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := gitCmd(ctx, dir, extra, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.Output()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, errTimeout
	}
	return out, err
}

func gitCmd(ctx context.Context, dir string, extra []string, args ...string) *exec.Cmd {
	full := append([]string{"-c", "safe.directory=*", "-c", "core.fsmonitor=false", "-c", "core.quotepath=false", "-C", dir}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(gitFreeEnv(),
		"GIT_OPTIONAL_LOCKS=0",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	)
	cmd.Env = append(cmd.Env, extra...)
	// A grandchild (credential helper, fsmonitor) holding the pipe open
	// must not outlive the timeout either.
	cmd.WaitDelay = time.Second
	return cmd
}

// gitFreeEnv is the environment without variables that would point git at
// another repository (agentwatch itself may run inside a git hook).
func gitFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
			"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CEILING_DIRECTORIES", "GIT_COMMON_DIR":
			continue
		}
		env = append(env, kv)
	}
	return env
}
