// Package workspace takes evidence of the repository an agent works in,
// from the real git repository: root, remote, branch, HEAD, worktree status.
// It reads; it never changes the repository (git runs with
// GIT_OPTIONAL_LOCKS=0 so even `git status` does not refresh the index).
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
	Untracked int // untracked entries as git status lists them (an untracked directory counts once)
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
// reported in Absent.
func Take(dir string) *Snapshot {
	s := &Snapshot{Root: filepath.Clean(dir)}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		s.Absent = AbsentNoDir
		return s
	}
	top, err := git(dir, "rev-parse", "--show-toplevel")
	if err != nil {
		s.Absent = absentReason(err)
		return s
	}
	s.Root, s.IsGit = top, true

	// No origin is normal (a fresh repo): leave the URL empty.
	if u, err := git(top, "config", "--get", "remote.origin.url"); err == nil {
		s.RemoteURL = StripCredentials(u)
	}
	// symbolic-ref fails (exit 1) on a detached HEAD: branch stays empty.
	if b, err := git(top, "symbolic-ref", "-q", "--short", "HEAD"); err == nil {
		s.Branch = b
	}
	// --verify -q prints nothing and fails on an unborn branch.
	if h, err := git(top, "rev-parse", "-q", "--verify", "HEAD^{commit}"); err == nil {
		s.Head = h
	}
	st, err := gitRaw(top, "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignore-submodules=none")
	if err != nil {
		// The repository is there but its status is not: say so rather
		// than report a clean tree.
		s.Absent = "git status: " + absentReason(err)
		return s
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
	return s
}

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

// gitRaw runs git read-only in dir. safe.directory=* because the workspace
// may belong to another user than agentwatch (root under sudo); we only read.
func gitRaw(dir string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	full := append([]string{"-c", "safe.directory=*", "-c", "core.fsmonitor=false", "-C", dir}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(gitFreeEnv(),
		"GIT_OPTIONAL_LOCKS=0",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	)
	// A grandchild (credential helper, fsmonitor) holding the pipe open
	// must not outlive the timeout either.
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, errTimeout
	}
	return out, err
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
