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
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
//
// The answer, with where the repository's git data lives, is kept for a
// few seconds: `agentwatch run` asks for the root twice (policy lookup,
// supervisor) and then Takes it, all before the agent may start, and each
// answer is otherwise a git process.
func Root(dir string) string {
	key := filepath.Clean(dir)
	a, ok := roots.get(key, false)
	if !ok {
		a.loc, a.absent = findRepo(dir)
		roots.put(key, a)
		if a.absent == "" {
			roots.put(a.loc.top, a) // Take is called with the top level
		}
	}
	if a.absent != "" || a.loc.top == "" {
		return key
	}
	return a.loc.top
}

// rootTTL bounds how old an answer of Root may be when Take uses it: long
// enough for one `agentwatch run` to reach its snapshot, too short for the
// repository to plausibly move in between.
const rootTTL = 5 * time.Second

type rootAnswer struct {
	loc    repoLoc
	absent string
	at     time.Time
}

// roots holds Root's recent answers by directory. Only Root adds to it;
// Take uses an answer once; TakeEvidence never looks (the run may have
// changed the repository).
var roots rootCache

type rootCache struct {
	mu sync.Mutex
	m  map[string]rootAnswer
}

func (c *rootCache) get(key string, consume bool) (rootAnswer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[key]
	if ok && consume {
		delete(c.m, key)
	}
	if !ok || time.Since(a.at) > rootTTL {
		return rootAnswer{}, false
	}
	return a, true
}

func (c *rootCache) put(key string, a rootAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]rootAnswer{}
	}
	for k, old := range c.m { // stay small in a long-lived process
		if time.Since(old.at) > rootTTL {
			delete(c.m, k)
		}
	}
	a.at = time.Now()
	c.m[key] = a
}

// Take snapshots the workspace at dir. It never fails: missing evidence is
// reported in Absent. The snapshot holds temporary objects outside the
// repository until TakeEvidence (or Close) is called with it.
//
// It runs before the agent may start, so every git call is latency: the
// location comes from Root when it was just asked, and the rest is one
// status, one config, one listing of ignored entries and the add +
// write-tree of the worktree tree, run side by side where their inputs
// allow (survey).
func Take(dir string) *Snapshot {
	s := &Snapshot{Root: filepath.Clean(dir), Time: time.Now()}
	loc, ok := s.locate(dir, true)
	if !ok {
		return s
	}
	b := &baseline{loc: loc}
	s.base = b
	if err := b.mkTemp(); err != nil {
		b.err = err.Error()
		s.survey(loc, nil, false, 0)
		return s
	}
	sv := s.survey(loc, b, true, DefaultLimits().MaxFileBytes)
	b.tree, b.big, b.ignored = sv.tree, sv.big, sv.ignored
	if sv.treeErr != nil {
		b.err = "worktree at start: " + absentReason(sv.treeErr)
	}
	return s
}

// repoLoc is where a work tree's git data lives.
type repoLoc struct {
	top     string // work tree top level
	gitDir  string // per-worktree git directory (state files live here)
	objects string // the object directory (shared by linked worktrees)
	index   string // the per-worktree index file
}

// locate fills Root, IsGit and State, or Absent. fromRoot lets it use
// what Root just learnt about dir.
func (s *Snapshot) locate(dir string, fromRoot bool) (repoLoc, bool) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		s.Absent = AbsentNoDir
		return repoLoc{}, false
	}
	var a rootAnswer
	ok := false
	if fromRoot {
		a, ok = roots.get(filepath.Clean(dir), true)
	}
	if !ok {
		a.loc, a.absent = findRepo(dir)
	}
	if a.absent != "" {
		s.Absent = a.absent
		return repoLoc{}, false
	}
	s.Root, s.IsGit = a.loc.top, true
	s.State = operationState(a.loc.gitDir)
	return a.loc, true
}

// relocate is locate for the end of a run: the repository found at the
// start, when its work tree and git directory are still there, spares a git
// process (and compares the same repository at both ends, even if the run
// created a nested one). Otherwise git is asked again.
func (s *Snapshot) relocate(before *Snapshot, dir string) (repoLoc, bool) {
	if before == nil || !before.IsGit || before.base == nil || filepath.Clean(dir) != before.Root {
		return s.locate(dir, false)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return s.locate(dir, false) // says why: git is gone
	}
	loc := before.base.loc
	for _, p := range []string{loc.top, loc.gitDir, loc.objects} {
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			return s.locate(dir, false)
		}
	}
	s.Root, s.IsGit = loc.top, true
	s.State = operationState(loc.gitDir)
	return loc, true
}

// findRepo asks git where the work tree containing dir and its git data
// are, or why there is none. --is-bare-repository comes first because it
// is answered before --show-toplevel fails in a bare repository (exit 128
// as outside any repository), so one call tells the two apart.
func findRepo(dir string) (repoLoc, string) {
	out, err := git(dir, "rev-parse", "--is-bare-repository", "--show-toplevel", "--absolute-git-dir", "--git-path", "objects", "--git-path", "index")
	lines := strings.Split(out, "\n")
	if err != nil {
		absent := absentReason(err)
		if absent == AbsentNotGit && lines[0] == "true" {
			absent = AbsentBare
		}
		return repoLoc{}, absent
	}
	if len(lines) != 5 {
		return repoLoc{}, AbsentGitFailure + ": unexpected rev-parse output"
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p) // --git-path answers relative to the cwd
	}
	return repoLoc{top: lines[1], gitDir: lines[2], objects: abs(lines[3]), index: abs(lines[4])}, ""
}

// surveyed is what survey learnt besides the snapshot's own fields.
type surveyed struct {
	tree    string          // the worktree as a tree object in b's temporary objects; empty without b
	big     map[string]bool // untracked files over maxFile, left out of tree
	treeErr error
	ignored map[string]bool // nil unless asked for
}

// survey fills Branch, Head, Dirty, Untracked and RemoteURL and, with b,
// records the worktree as a tree in b's temporary index and objects. The
// git calls start as soon as their inputs are known: status, config and
// the ignored listing side by side; add and write-tree once status (the
// untracked files to size) and config (the filters to switch off) are in,
// while the ignored listing may still run.
func (s *Snapshot) survey(loc repoLoc, b *baseline, wantIgnored bool, maxFile int64) surveyed {
	var sv surveyed
	var all, inputs sync.WaitGroup
	if wantIgnored {
		all.Go(func() { sv.ignored = ignoredEntries(loc.top, maxIgnoredEntries) })
	}
	var untracked []string
	var untrackedKnown bool
	var filters []string
	inputs.Go(func() { untracked, untrackedKnown = s.status(loc) })
	inputs.Go(func() {
		var remote string
		remote, filters = readConfig(loc.top)
		s.RemoteURL = StripCredentials(remote)
	})
	inputs.Wait()
	if b != nil {
		sv.tree, sv.big, sv.treeErr = b.writeTree(maxFile, filters, untracked, untrackedKnown)
	}
	all.Wait()
	return sv
}

// status fills Branch, Head, Dirty and Untracked from one
// `git status --porcelain=v2 --branch`, and returns the untracked entries
// (an untracked directory once, "dir/"); ok is false when status failed.
func (s *Snapshot) status(loc repoLoc) (untracked []string, ok bool) {
	st, err := gitRaw(loc.top, "status", "--porcelain=v2", "-z", "--branch", "--no-ahead-behind",
		"--untracked-files=normal", "--ignore-submodules=none")
	if err != nil {
		// The repository is there but its status is not: say so rather
		// than report a clean tree.
		s.Absent = "git status: " + absentReason(err)
		return nil, false
	}
	recs := bytes.Split(st, []byte{0})
	for i := 0; i < len(recs); i++ {
		rec := string(recs[i])
		if len(rec) < 2 {
			continue // the trailing empty record
		}
		switch rec[0] {
		case '#':
			if v, ok := strings.CutPrefix(rec, "# branch.oid "); ok && v != "(initial)" {
				s.Head = v // "(initial)": an unborn branch has no commit
			} else if v, ok := strings.CutPrefix(rec, "# branch.head "); ok && v != "(detached)" {
				s.Branch = v
			}
		case '?':
			s.Dirty = true
			s.Untracked++
			untracked = append(untracked, rec[2:])
		case '2':
			s.Dirty = true
			i++ // with -z the rename/copy source is the next record
		case '1', 'u':
			s.Dirty = true
		}
	}
	return untracked, true
}

// readConfig reads remote.origin.url (no origin is normal: empty) and the
// filter drivers to switch off (noFilters) in one git call.
func readConfig(top string) (remote string, filters []string) {
	out, err := gitRaw(top, "config", "-z", "--get-regexp", `^(remote\.origin\.url|filter\..*\.(clean|process))$`)
	if err != nil {
		return "", nil // exit 1: none of them is set
	}
	var keys []string
	for _, rec := range splitNUL(out) {
		key, value, _ := strings.Cut(rec, "\n")
		if key == "remote.origin.url" {
			remote = value // the last one wins, as with config --get
			continue
		}
		keys = append(keys, key)
	}
	return remote, noFilters(keys)
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
	if c := gitCredential(dir); c != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
	}
	// A grandchild (credential helper, fsmonitor) holding the pipe open
	// must not outlive the timeout either.
	cmd.WaitDelay = time.Second
	return cmd
}

// gitCredential is who git runs as in dir: its owner, when agentwatch is
// root and the owner is not. The repository's configuration and
// attributes are the agent's to write, and git runs what they name — a
// clean filter or textconv driver on `git status` and `git diff` — so it
// must run with no more privilege than the user who could write them
// (under root, `filter.x.clean` in .git/config was a root shell). nil:
// as agentwatch.
func gitCredential(dir string) *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	// The owner's own group, never a group the file merely has (a
	// checkout made by root keeps gid 0).
	gid := uint32(65534)
	if u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10)); err == nil {
		if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(g)
		}
	} else if st.Gid != 0 {
		gid = st.Gid
	}
	return &syscall.Credential{Uid: st.Uid, Gid: gid, Groups: []uint32{}}
}

// gitFreeEnv is the environment without variables that would point git at
// another repository (agentwatch itself may run inside a git hook).
func gitFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
			"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CEILING_DIRECTORIES", "GIT_COMMON_DIR",
			"GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "HOME", "XDG_CONFIG_HOME":
			continue
		}
		env = append(env, kv)
	}
	// No global or system configuration: ~/.gitconfig is the agent's to
	// write too, and evidence must not depend on the operator's.
	return append(env, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent", "XDG_CONFIG_HOME=/nonexistent")
}
