package workspace

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits bound the work and the output of Evidence. Zero fields take the
// defaults.
type Limits struct {
	MaxDiffBytes int64 // diff bytes kept (default 8 MiB); git is stopped beyond
	MaxFileBytes int64 // untracked files larger than this stay out of the diff (default 64 MiB)
	MaxFiles     int   // entries kept per file list (default 5000); totals still count all
	MaxCommits   int   // commits listed (default 1000)
}

// DefaultLimits are the limits Evidence uses for zero fields.
func DefaultLimits() Limits {
	return Limits{MaxDiffBytes: 8 << 20, MaxFileBytes: 64 << 20, MaxFiles: 5000, MaxCommits: 1000}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDiffBytes <= 0 {
		l.MaxDiffBytes = d.MaxDiffBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxCommits <= 0 {
		l.MaxCommits = d.MaxCommits
	}
	return l
}

// FileStat is one file of the final diff (git diff --numstat).
type FileStat struct {
	Path    string
	Added   int
	Removed int
	Binary  bool // numstat "-": no line counts, no content in the diff
}

// Commit is a commit made during the run.
type Commit struct {
	SHA     string
	Subject string
	Time    time.Time // author time
}

// Evidence is what the run did to the repository, taken at the end.
//
// Two comparisons, on purpose:
//   - the final diff (Diff, Files, lines) is from the base commit to the
//     worktree at the end, uncommitted and untracked files included: what a
//     reviewer would merge. Changes already in the worktree at the start
//     are part of it (dirty_before says so).
//   - Touched, Deleted, Lockfiles, Workflows are from the worktree at the
//     start to the worktree at the end: what the run itself changed.
//
// Renames are not detected: a rename is a deletion plus a new file, so
// both paths are named.
type Evidence struct {
	Absent string // why there is no evidence (not a git repository, …); the rest is then empty
	Start  time.Time
	End    time.Time // when taking the evidence finished
	Root   string
	Base   string // the base commit (HEAD at the start); empty for an unborn branch
	Head   string // HEAD at the end
	State  string // in-progress operation at the end (merging, rebasing, …)
	After  *Snapshot

	Diff          []byte // base → final worktree; truncated at Limits.MaxDiffBytes with a marker line
	DiffSHA256    string // of Diff as kept
	DiffTruncated bool
	Files         []FileStat // numstat, capped at MaxFiles
	FilesTotal    int
	LinesAdded    int
	LinesRemoved  int

	Touched   []string // created, modified or deleted during the run
	Deleted   []string
	Generated []string // new ignored entries (a directory once, "dist/") and new files under build directories
	Lockfiles []string // touched lockfiles
	Workflows []string // touched CI/workflow files
	TooLarge  []string // untracked files over MaxFileBytes: named, not hashed or diffed
	Commits   []Commit // base..HEAD, newest first
	Abandoned []Commit // made during the run (reflog) but no longer reachable from HEAD: reset or amended away

	// Errors names steps that failed ("diff: git timed out"); what they
	// would have filled is empty or partial, the rest stands.
	Errors []string
}

// DiffTruncatedMarker ends a diff cut at Limits.MaxDiffBytes.
const DiffTruncatedMarker = "\n[agentwatch: diff truncated at %d bytes]\n"

// emptyTree is the tree an unborn branch is compared against (SHA-1 repos;
// SHA-256 repositories ask git for theirs).
const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// TakeEvidence compares the workspace at dir now with before (from Take at the
// start of the run) and removes before's temporary objects. It never
// fails: outside git it returns Absent with the reason, and a failing step
// is named in Errors.
//
// Its git calls run side by side where their inputs allow: status, config
// and the ignored listing, then add + write-tree, then the diff (patch and
// numstat in one call), the changed files and the commits.
func TakeEvidence(before *Snapshot, dir string, limits Limits) *Evidence {
	limits = limits.withDefaults()
	ev := &Evidence{Start: time.Now()}
	defer func() { ev.End = time.Now() }()
	if before != nil {
		defer before.Close()
	}
	after := &Snapshot{Root: filepath.Clean(dir), Time: time.Now()}
	loc, isGit := after.relocate(before, dir)
	ev.After, ev.Root = after, after.Root
	switch {
	case before == nil:
		ev.Absent = AbsentNoStart
	case !before.IsGit:
		ev.Absent = before.Absent
	case !isGit:
		ev.Absent = "at the end: " + after.Absent
	}
	if ev.Absent != "" {
		if isGit {
			after.survey(loc, nil, false, 0)
		}
		return ev
	}
	top := after.Root

	// The end tree goes into the start snapshot's object directory, so
	// both trees can be compared; without one, a fresh directory still
	// gives the diff against the base.
	sb := before.base
	var startTree string
	if sb != nil && sb.tree != "" {
		startTree = sb.tree
	} else {
		if sb != nil {
			ev.Errors = append(ev.Errors, sb.err)
		}
		sb = &baseline{loc: loc}
		defer sb.close()
		if err := sb.mkTemp(); err != nil {
			ev.Errors = append(ev.Errors, err.Error())
			after.survey(loc, nil, false, 0)
			ev.Base, ev.Head, ev.State = before.Head, after.Head, after.State
			return ev
		}
	}
	sb.loc = loc // the same repository; paths as found now
	sv := after.survey(loc, sb, true, limits.MaxFileBytes)
	ev.Base, ev.Head, ev.State = before.Head, after.Head, after.State
	if sv.treeErr != nil {
		ev.Errors = append(ev.Errors, "worktree at end: "+absentReason(sv.treeErr))
		return ev
	}
	endTree := sv.tree
	env := sb.env()
	for p := range sv.big {
		ev.TooLarge = append(ev.TooLarge, p)
	}
	slices.Sort(ev.TooLarge)

	base := ev.Base
	if base == "" {
		out, err := gitEnv(top, env, []byte{}, "hash-object", "-t", "tree", "--stdin")
		if t := strings.TrimSpace(string(out)); err == nil && t != "" {
			base = t
		} else {
			base = emptyTree
		}
	}

	// Each step fills its own fields and names its own failures; the
	// failures are joined in a fixed order.
	var diffErrs, touchedErrs, commitErrs []string
	failInto := func(errs *[]string) func(string, error) {
		return func(step string, err error) { *errs = append(*errs, step+": "+absentReason(err)) }
	}
	from := base
	if startTree != "" {
		from = startTree
	} // else no start tree: what differs from the base is the best answer
	var wg sync.WaitGroup
	wg.Go(func() { ev.diff(top, env, base, endTree, limits, failInto(&diffErrs)) })
	wg.Go(func() { ev.touched(top, env, from, endTree, limits, failInto(&touchedErrs)) })
	wg.Go(func() { ev.commits(top, before, limits, failInto(&commitErrs)) })
	wg.Wait()
	ev.Errors = slices.Concat(ev.Errors, diffErrs, touchedErrs, commitErrs)

	// Too large to hash: new since the start is all that can be said.
	for _, p := range ev.TooLarge {
		if before.base == nil || !before.base.big[p] {
			ev.Touched = appendCapped(ev.Touched, p, limits.MaxFiles)
		}
	}
	ev.generated(before, sv.ignored, limits)
	return ev
}

// diffOpts make git diff's output independent of the user's configuration
// (prefixes, renames, external and textconv drivers, colour).
var diffOpts = []string{"--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--no-relative",
	"--src-prefix=a/", "--dst-prefix=b/", "--ignore-submodules=none"}

// diff fills the final diff and its numstat from one git diff: with
// --numstat -z -p git writes every numstat record ("added\tremoved\tpath\0"),
// an empty record, then the patch, byte for byte what a plain git diff
// prints. A path is never empty, so the first empty record is where the
// patch starts.
func (ev *Evidence) diff(top string, env []string, base, tree string, limits Limits, fail func(string, error)) {
	args := append([]string{"diff", "--numstat", "-z", "-p"}, diffOpts...)
	args = append(args, base, tree, "--")
	var stats []string
	out, truncated, err := gitBounded(top, env, limits.MaxDiffBytes, func(r *bufio.Reader) error {
		for {
			rec, err := r.ReadString(0)
			if err == io.EOF && rec == "" {
				return nil // no change at all: no numstat, no patch
			}
			if err != nil {
				return err
			}
			if rec = rec[:len(rec)-1]; rec == "" {
				return nil
			}
			stats = append(stats, rec)
		}
	}, args...)
	if err != nil {
		fail("diff", err)
		return
	}
	for _, rec := range stats {
		// -z without renames: "added\tremoved\tpath".
		f := strings.SplitN(rec, "\t", 3)
		if len(f) != 3 {
			continue
		}
		st := FileStat{Path: f[2]}
		if f[0] == "-" {
			st.Binary = true
		} else {
			st.Added, _ = strconv.Atoi(f[0])
			st.Removed, _ = strconv.Atoi(f[1])
		}
		ev.FilesTotal++
		ev.LinesAdded += st.Added
		ev.LinesRemoved += st.Removed
		if len(ev.Files) < limits.MaxFiles {
			ev.Files = append(ev.Files, st)
		}
	}
	if truncated {
		// Cut at a line boundary so the kept part is still a readable diff.
		if i := bytes.LastIndexByte(out, '\n'); i > 0 {
			out = out[:i+1]
		}
		out = append(out, fmt.Sprintf(DiffTruncatedMarker, limits.MaxDiffBytes)...)
	}
	sum := sha256.Sum256(out)
	ev.Diff, ev.DiffTruncated, ev.DiffSHA256 = out, truncated, hex.EncodeToString(sum[:])
}

func (ev *Evidence) touched(top string, env []string, from, to string, limits Limits, fail func(string, error)) {
	args := append([]string{"diff", "--name-status", "-z"}, diffOpts...)
	out, err := gitEnv(top, env, nil, append(args, from, to, "--")...)
	if err != nil {
		fail("changed files", err)
		return
	}
	// "-z --name-status": "X\0path\0" pairs.
	recs := splitNUL(out)
	for i := 0; i+1 < len(recs); i += 2 {
		status, p := recs[i], recs[i+1]
		ev.Touched = appendCapped(ev.Touched, p, limits.MaxFiles)
		if status == "D" {
			ev.Deleted = appendCapped(ev.Deleted, p, limits.MaxFiles)
			continue
		}
		switch {
		case IsLockfile(p):
			ev.Lockfiles = appendCapped(ev.Lockfiles, p, limits.MaxFiles)
		case IsWorkflow(p):
			ev.Workflows = appendCapped(ev.Workflows, p, limits.MaxFiles)
		}
		if status == "A" && IsBuildOutput(p) {
			ev.Generated = appendCapped(ev.Generated, p, limits.MaxFiles)
		}
	}
	// A deleted lockfile or workflow is a change to it too.
	for _, p := range ev.Deleted {
		switch {
		case IsLockfile(p):
			ev.Lockfiles = appendCapped(ev.Lockfiles, p, limits.MaxFiles)
		case IsWorkflow(p):
			ev.Workflows = appendCapped(ev.Workflows, p, limits.MaxFiles)
		}
	}
}

// generated adds ignored entries that were not there at the start. An
// ignored directory that already existed (node_modules/) is not looked
// into: listing every file under it would cost more than the run.
func (ev *Evidence) generated(before *Snapshot, ignoredNow map[string]bool, limits Limits) {
	if before.base == nil || before.base.ignored == nil {
		return
	}
	var fresh []string
	for p := range ignoredNow {
		if !before.base.ignored[p] && !coveredBy(p, before.base.ignored) {
			fresh = append(fresh, p)
		}
	}
	slices.Sort(fresh)
	for _, p := range fresh {
		ev.Generated = appendCapped(ev.Generated, p, limits.MaxFiles)
	}
	slices.Sort(ev.Generated)
}

// coveredBy: p is inside an ignored directory listed at the start (the
// directory was collapsed then, and a file in it shows on its own now
// only if the directory stopped being wholly ignored).
func coveredBy(p string, dirs map[string]bool) bool {
	for i := strings.IndexByte(p, '/'); i >= 0 && i < len(p)-1; {
		if dirs[p[:i+1]] {
			return true
		}
		j := strings.IndexByte(p[i+1:], '/')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

// commits lists base..HEAD, and from the HEAD reflog the commits made
// during the run that HEAD no longer reaches (reset or amended away).
func (ev *Evidence) commits(top string, before *Snapshot, limits Limits, fail func(string, error)) {
	if ev.Head != "" && ev.Head != ev.Base {
		args := []string{"log", "-z", "--no-show-signature", "--format=%H%x00%at%x00%s", "-n", strconv.Itoa(limits.MaxCommits)}
		if ev.Base != "" {
			args = append(args, "^"+ev.Base)
		}
		out, err := gitRaw(top, append(args, ev.Head, "--")...)
		if err != nil {
			fail("commits", err)
		} else {
			ev.Commits = parseCommits(out)
		}
	}
	if ev.Head == "" {
		return
	}
	// %gd with --date=unix is HEAD@{<unix time>}: the reflog entry's own
	// time, written by this machine's clock (commit dates can be anything).
	out, err := gitRaw(top, "log", "-g", "-z", "--date=unix", "--format=%H%x00%gd%x00%gs", "-n", "500", "HEAD", "--")
	if err != nil {
		return // no reflog (core.logAllRefUpdates=false): nothing to add
	}
	known := map[string]bool{ev.Base: true, ev.Head: true}
	for _, c := range ev.Commits {
		known[c.SHA] = true
	}
	f := splitFields(out)
	since := before.Time.Unix()
	var lost []string
	for i := 0; i+2 < len(f); i += 3 {
		sha, sel, subj := f[i], f[i+1], f[i+2]
		ts, ok := reflogTime(sel)
		if !ok || ts < since {
			break // newest first: everything further is older
		}
		if known[sha] || !madeCommit(subj) {
			continue
		}
		known[sha] = true
		lost = append(lost, sha)
	}
	if len(lost) == 0 {
		return
	}
	args := []string{"log", "-z", "--no-walk=unsorted", "--no-show-signature", "--format=%H%x00%at%x00%s"}
	out, err = gitRaw(top, append(args, append(lost, "--")...)...)
	if err != nil {
		fail("reflog commits", err)
		return
	}
	ev.Abandoned = parseCommits(out)
}

// madeCommit: reflog subjects of operations that create a commit.
func madeCommit(subject string) bool {
	for _, p := range []string{"commit", "cherry-pick", "revert", "merge "} {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

func reflogTime(sel string) (int64, bool) {
	i, j := strings.LastIndexByte(sel, '{'), strings.LastIndexByte(sel, '}')
	if i < 0 || j <= i {
		return 0, false
	}
	n, err := strconv.ParseInt(sel[i+1:j], 10, 64)
	return n, err == nil
}

// splitFields splits NUL-separated output keeping empty fields (an empty
// subject), dropping only the trailing terminator.
func splitFields(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	f := strings.Split(string(b), "\x00")
	if len(f)%3 == 1 && f[len(f)-1] == "" {
		f = f[:len(f)-1] // a terminator after the last record
	}
	return f
}

func parseCommits(out []byte) []Commit {
	var cs []Commit
	f := splitFields(out)
	for i := 0; i+2 < len(f); i += 3 {
		c := Commit{SHA: strings.TrimSpace(f[i]), Subject: f[i+2]}
		if n, err := strconv.ParseInt(f[i+1], 10, 64); err == nil {
			c.Time = time.Unix(n, 0)
		}
		cs = append(cs, c)
	}
	return cs
}

func appendCapped(list []string, p string, max int) []string {
	if len(list) >= max {
		return list
	}
	return append(list, p)
}

// gitBounded runs git, hands the start of its output to head (which reads
// what it needs, unbounded), and keeps at most max bytes of the rest;
// beyond that git is killed (bounded work) and truncated is true.
func gitBounded(dir string, env []string, max int64, head func(*bufio.Reader) error, args ...string) (out []byte, truncated bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := gitCmd(ctx, dir, env, args...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, false, err
	}
	if err := cmd.Start(); err != nil {
		return nil, false, err
	}
	r := bufio.NewReaderSize(pipe, 64<<10)
	rerr := head(r)
	if rerr == nil {
		out, rerr = io.ReadAll(io.LimitReader(r, max+1))
	}
	if int64(len(out)) > max {
		out, truncated = out[:max], true
		cmd.Process.Kill()
	} else if rerr != nil {
		cmd.Process.Kill()
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, false, errTimeout
	case truncated:
		return out, true, nil // killed on purpose
	case rerr != nil:
		return nil, false, rerr
	case werr != nil:
		return nil, false, werr
	}
	return out, false, nil
}

// IsLockfile: a dependency lock file, by name, in any directory.
func IsLockfile(p string) bool {
	switch filepath.Base(p) {
	case "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "bun.lock",
		"go.sum", "go.work.sum", "Cargo.lock", "poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock",
		"Gemfile.lock", "composer.lock", "mix.lock", "packages.lock.json", "flake.lock",
		"Package.resolved", "Podfile.lock", "pubspec.lock", "gradle.lockfile", "conan.lock", "deno.lock":
		return true
	}
	return false
}

// workflowFiles are CI definitions at the repository root; workflowDirs
// hold CI definitions anywhere below them.
var (
	workflowFiles = []string{".gitlab-ci.yml", "azure-pipelines.yml", "bitbucket-pipelines.yml", ".travis.yml",
		".drone.yml", ".woodpecker.yml", "appveyor.yml", ".appveyor.yml", "cloudbuild.yaml", "cloudbuild.yml"}
	workflowDirs = []string{".github/workflows/", ".github/actions/", ".circleci/", ".buildkite/", ".gitlab/ci/",
		".woodpecker/", ".azure-pipelines/", ".tekton/"}
)

// IsWorkflow: a CI/CD definition (repository-relative path). Jenkinsfile
// counts in any directory: monorepos keep one per service.
func IsWorkflow(p string) bool {
	p = filepath.ToSlash(strings.TrimPrefix(p, "./"))
	if base := filepath.Base(p); base == "Jenkinsfile" || strings.HasPrefix(base, "Jenkinsfile.") {
		return true
	}
	if slices.Contains(workflowFiles, p) {
		return true
	}
	for _, d := range workflowDirs {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

// buildDirs are directory names whose content is build output or installed
// dependencies. vendor/ is not among them: Go and PHP projects commit it
// as source on purpose.
var buildDirs = map[string]bool{
	"node_modules": true, "dist": true, "build": true, "target": true, "__pycache__": true,
	".venv": true, "venv": true, "bin": true, "obj": true, "out": true, ".next": true, ".nuxt": true,
	".gradle": true, ".pytest_cache": true, ".mypy_cache": true, ".ruff_cache": true, ".tox": true,
	"coverage": true, ".turbo": true, ".parcel-cache": true,
}

// IsBuildOutput: a path under a known build or dependency directory
// (any component), or a compiled Python file.
func IsBuildOutput(p string) bool {
	p = filepath.ToSlash(p)
	if strings.HasSuffix(p, ".pyc") || strings.Contains(p, ".egg-info/") {
		return true
	}
	parts := strings.Split(p, "/")
	for _, c := range parts[:len(parts)-1] {
		if buildDirs[c] {
			return true
		}
	}
	return false
}
