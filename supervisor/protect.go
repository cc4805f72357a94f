package supervisor

// files.protect and files.secrets at the start of a run: which existing
// paths the patterns name, and (enforce mode) the child's private mount
// namespace in which every protected path is a read-only bind mount of
// itself.
//
// Why bind mounts and not Landlock: Landlock can forbid writes beneath a
// directory but not to one named file next to writable ones without also
// covering its siblings, and its rules are per-access-right on whole
// hierarchies; a read-only bind is exactly one path, files and directories
// alike, and the kernel reports the refusal as EROFS (write, create,
// truncate, chmod) or EBUSY (unlink, rename over or away: the path is a
// mount point), which the eBPF sensor records as the failed attempt.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
)

// maxScanEntries bounds each directory walk done to expand a pattern with
// wildcards (e.g. "**/.env" over the workspace): startup must not depend on
// the size of a monorepo. Reaching it is recorded as a gap.
const maxScanEntries = 100_000

// skipDirs are never walked: huge, and nothing there is a policy path a
// user writes by hand (.git/hooks is reached by its literal prefix).
var skipDirs = []string{"node_modules", ".git/objects"}

// bindMount is one bind of a path onto itself in the child's namespace.
type bindMount struct {
	path     string // resolved: no symlinks
	readOnly bool   // false: a pin (see protectPlan.pins)
}

// protectPlan is what files.protect does at the start of a run.
type protectPlan struct {
	// binds, parents before children (a bind hides later changes beneath
	// the path it covers, so the deeper one must come last).
	binds  []bindMount
	events []event.ProtectedPath
	gaps   []event.Gap
	// placeholders are protected paths that did not exist at start
	// (enforce mode): the first missing component of each is created
	// empty, root-owned and read-only-bound, so nothing can be created
	// there during the run by any route (create, rename, link, mkdir all
	// meet a mount point), and removed at the end (materialize, cleanup).
	placeholders []placeholder
	created      []string // placeholders made, to remove
	// masks are directories of the user's servers outside the run (the
	// session bus, systemd --user, tmux, ssh and gpg agents) hidden under
	// an empty private tmpfs in enforce mode (maskUserServers).
	masks   []string
	maskUID uint32
}

// maskUserServers hides, in enforce mode, the directories where the
// user's own servers outside the run listen: a connection to one is a way
// out of the run — `systemd-run --user` or a D-Bus call starts a process
// outside it, `tmux send-keys` types into the operator's shell. The child
// gets an empty, private directory in their place (its own sockets still
// work there, for the run only).
func (p *protectPlan) maskUserServers(uid uint32) {
	p.maskUID = uid
	for _, d := range []string{
		fmt.Sprintf("/run/user/%d", uid),
		fmt.Sprintf("/tmp/tmux-%d", uid),
	} {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			p.masks = append(p.masks, d)
		}
	}
}

// placeholder is one absent protected path held by an empty node.
type placeholder struct {
	path string
	dir  bool // a directory (git ignores an empty one); else an empty file
}

// enforced reports whether the child needs its own mount namespace.
func (p *protectPlan) enforced() bool { return p != nil && (len(p.binds) > 0 || len(p.masks) > 0) }

// planProtect expands files.protect against the workspace and the child's
// home. In enforce mode every existing path becomes a read-only bind, and
// every directory between its anchor (workspace or home) and it a
// read-write bind ("pin"): a mount point cannot be renamed away (EBUSY), so
// `mv .github x && mkdir -p .github/workflows` cannot swap a fresh,
// writable directory in. In observe mode nothing is bound; the events alone
// say what existed.
//
// Symlinks are resolved, and a path that resolves outside its anchor is not
// bound (a workspace symlink to /etc/passwd must not make us remount
// /etc/passwd): it is recorded as a gap instead. A path reached through a
// symlink inside the anchor has its target bound, and a gap says the link
// itself could still be replaced.
func planProtect(pol *policy.Policy, ws, home string, enforce bool, now time.Time) *protectPlan {
	plan := &protectPlan{}
	seen := map[string]bool{}
	own := map[string]bool{}
	for _, g := range pol.Protect {
		own[g.String()] = true
	}
	for _, g := range pol.ProtectGlobs() {
		base, segs, ok := anchorOf(g.String(), ws, home)
		if !ok {
			continue
		}
		found, truncated := expandPattern(g, base, segs, ws, home)
		if truncated {
			plan.gaps = append(plan.gaps, gapf("files.protect", "%s: stopped scanning after %d entries", g, maxScanEntries))
		}
		if len(found) == 0 {
			lit := filepath.Join(append([]string{base}, literalPrefix(segs)...)...)
			ev := event.ProtectedPath{Header: event.Header{Time: now}, Pattern: g.String(), Path: lit}
			if enforce {
				if _, err := os.Stat(base); err != nil {
					// The anchor does not exist: nothing to hold.
				} else if ph, ok := placeholderFor(lit, base, ws); ok && !seen[ph.path] {
					seen[ph.path] = true
					plan.placeholders = append(plan.placeholders, ph)
					plan.binds = append(plan.binds, bindMount{path: ph.path, readOnly: true})
					ev.ReadOnly = true
				} else if !ok && own[g.String()] {
					// (A built-in persistence path that cannot be held is
					// still alerted on by the persistence rule: no gap.)
					plan.gaps = append(plan.gaps, gapf("files.protect", "%s does not exist and cannot be held (its directory %s is the anchor or outside it): creating it is recorded, not refused", g, filepath.Dir(lit)))
				}
			}
			plan.events = append(plan.events, ev)
			continue
		}
		for _, p := range found {
			ev := event.ProtectedPath{Header: event.Header{Time: now}, Pattern: g.String(), Path: p, Existed: true}
			real, inside, err := resolveWithin(p, base)
			switch {
			case err != nil:
				plan.gaps = append(plan.gaps, gapf("files.protect", "%s: %v", p, err))
			case !inside:
				plan.gaps = append(plan.gaps, gapf("files.protect", "%s resolves to %s, outside %s: not made read-only", p, real, base))
			default:
				if real != p {
					plan.gaps = append(plan.gaps, gapf("files.protect", "%s is reached through a symlink: %s is read-only, the link itself is not", p, real))
				}
				if fi, err := os.Stat(real); err == nil && fi.Mode().IsRegular() {
					if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
						plan.gaps = append(plan.gaps, gapf("files.protect", "%s has %d hard links: writes through the others are not refused", p, st.Nlink))
					}
				}
				if enforce {
					ev.ReadOnly = true
					if !seen[real] {
						seen[real] = true
						plan.binds = append(plan.binds, bindMount{path: real, readOnly: true})
					}
				}
			}
			plan.events = append(plan.events, ev)
		}
	}
	// Pins: the directories strictly between each read-only path and its
	// anchor, for workspace and home patterns (under "/" the child cannot
	// rename system directories anyway).
	var pins []bindMount
	for _, b := range plan.binds {
		for _, anchor := range []string{realOr(ws), realOr(home)} {
			if anchor == "" || anchor == "/" {
				continue
			}
			rel, ok := within(b.path, anchor)
			if !ok || rel == "" {
				continue
			}
			dir := anchor
			parts := strings.Split(rel, "/")
			for _, part := range parts[:len(parts)-1] {
				dir = filepath.Join(dir, part)
				if !seen[dir] {
					seen[dir] = true
					pins = append(pins, bindMount{path: dir})
				}
			}
			break
		}
	}
	// The anchors themselves and every directory above them that the
	// child could rename or remove (`mv ~/src/repo ~/src/old && cp -r
	// ~/src/old ~/src/repo` swaps in a writable copy of the whole tree).
	if len(plan.binds) > 0 {
		for _, anchor := range []string{realOr(ws), realOr(home)} {
			for dir := anchor; dir != "" && dir != "/"; dir = filepath.Dir(dir) {
				if !seen[dir] && renamable(dir) {
					seen[dir] = true
					pins = append(pins, bindMount{path: dir})
				}
			}
		}
	}
	plan.binds = append(plan.binds, pins...)
	slices.SortStableFunc(plan.binds, func(a, b bindMount) int {
		return strings.Count(a.path, "/") - strings.Count(b.path, "/")
	})
	return plan
}

// placeholderFor is the node that holds the absent path lit: its first
// missing component, strictly below the anchor base. Inside the workspace
// it is a directory (git does not list an empty one, so `git add -A`
// cannot commit it); elsewhere an empty file, which a shell sources as
// nothing (~/.bash_profile).
func placeholderFor(lit, base, ws string) (placeholder, bool) {
	rel, ok := within(lit, base)
	if !ok || rel == "" {
		return placeholder{}, false
	}
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		// No home at all (nobody's /nonexistent): nothing beneath it can
		// be created either, unless the anchor itself is.
		return placeholder{}, false
	}
	dir := base
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		dir = filepath.Join(dir, part)
		if _, err := os.Lstat(dir); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return placeholder{}, false
		}
		_, inWS := within(dir, ws)
		if !inWS && i < len(parts)-1 {
			// Outside the workspace only the last component is held: a
			// placeholder ~/.config would take the whole directory away.
			return placeholder{}, false
		}
		return placeholder{path: dir, dir: inWS || i < len(parts)-1}, true
	}
	return placeholder{}, false // it exists after all
}

// materialize creates the placeholders, root-owned and read-only for
// everyone, right before the child starts. One that cannot be made is a
// refusal to run (enforce never silently downgrades).
func (p *protectPlan) materialize() error {
	for _, ph := range p.placeholders {
		var err error
		if ph.dir {
			err = os.Mkdir(ph.path, 0o555)
		} else {
			var f *os.File
			if f, err = os.OpenFile(ph.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444); err == nil {
				err = f.Close()
			}
		}
		if err != nil {
			return &protectError{fmt.Errorf("holding absent protected path %s: %w", ph.path, err)}
		}
		p.created = append(p.created, ph.path)
		_ = os.Lchown(ph.path, 0, 0)
	}
	return nil
}

// cleanup removes the placeholders once nothing of the run is left. A
// placeholder that is no longer empty (a process outside the run wrote
// into it as root) is left and reported.
func (p *protectPlan) cleanup() []event.Gap {
	var gaps []event.Gap
	for i := len(p.created) - 1; i >= 0; i-- {
		if err := os.Remove(p.created[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			gaps = append(gaps, gapf("files.protect", "removing the placeholder %s: %v", p.created[i], err))
		}
	}
	p.created = nil
	return gaps
}

// renamable reports whether a user process could rename or remove dir:
// write access to its parent, where a sticky parent also needs the
// user to own one of the two. Decided conservatively from the modes
// (any write bit for group or others counts), since the child's exact
// groups do not matter for a pin, which costs nothing when not needed.
func renamable(dir string) bool {
	parent := filepath.Dir(dir)
	pfi, err := os.Stat(parent)
	if err != nil {
		return false
	}
	pst, ok := pfi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	if pfi.Mode().Perm()&0o022 == 0 && pst.Uid == 0 {
		return false // only root may write the parent
	}
	if pfi.Mode()&fs.ModeSticky != 0 && pst.Uid == 0 {
		dfi, err := os.Lstat(dir)
		if err != nil {
			return false
		}
		if dst, ok := dfi.Sys().(*syscall.Stat_t); ok && dst.Uid == 0 {
			return false // a root-owned directory in a sticky root-owned one (/tmp/.X11-unix)
		}
	}
	return true
}

// expandSecrets returns the existing files that files.secrets names, for
// the eBPF sensor's read watch. Patterns sharing a walk root (every "**/x"
// pattern starts at the workspace root) share one bounded walk.
func expandSecrets(pol *policy.Policy, ws, home string) (files []string, gaps []event.Gap) {
	type walk struct {
		root  string
		globs []policy.Glob
	}
	var walks []*walk
	byRoot := map[string]*walk{}
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	for _, g := range pol.Secrets {
		base, segs, ok := anchorOf(g.String(), ws, home)
		if !ok {
			continue
		}
		prefix := literalPrefix(segs)
		start := filepath.Join(append([]string{base}, prefix...)...)
		if len(prefix) == len(segs) {
			if fi, err := os.Stat(start); err == nil && fi.Mode().IsRegular() {
				add(start)
			}
			continue
		}
		w := byRoot[start]
		if w == nil {
			w = &walk{root: start}
			byRoot[start] = w
			walks = append(walks, w)
		}
		w.globs = append(w.globs, g)
	}
	for _, w := range walks {
		truncated := walkBounded(w.root, func(p string, d fs.DirEntry) bool {
			if d.IsDir() {
				return false
			}
			for _, g := range w.globs {
				if g.Match(p, ws, home) {
					add(p)
					break
				}
			}
			return false
		})
		if truncated {
			gaps = append(gaps, gapf("files.secrets", "stopped scanning %s after %d entries", w.root, maxScanEntries))
		}
	}
	return files, gaps
}

// expandPattern returns the existing paths a files.protect pattern names.
// "dir/**" names dir itself: binding the directory covers everything
// beneath it, files created later included. Other wildcards are walked
// from the literal prefix; a matching directory is taken whole.
func expandPattern(g policy.Glob, base string, segs []string, ws, home string) (found []string, truncated bool) {
	prefix := literalPrefix(segs)
	start := filepath.Join(append([]string{base}, prefix...)...)
	rest := segs[len(prefix):]
	if len(rest) == 0 || (len(rest) == 1 && rest[0] == "**") {
		if _, err := os.Lstat(start); err == nil {
			found = append(found, start)
		}
		return found, false
	}
	truncated = walkBounded(start, func(p string, d fs.DirEntry) bool {
		if g.Match(p, ws, home) {
			found = append(found, p)
			return true // a matched directory is bound whole
		}
		return false
	})
	return found, truncated
}

// walkBounded visits the tree under root (not following symlinks, skipping
// skipDirs) until maxScanEntries entries; visit returns true to skip a
// directory's contents. It reports whether the budget ran out.
func walkBounded(root string, visit func(p string, d fs.DirEntry) (skip bool)) (truncated bool) {
	n := 0
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable or vanished: nothing to match there
		}
		if n++; n > maxScanEntries {
			truncated = true
			return filepath.SkipAll
		}
		if p == root {
			return nil
		}
		if d.IsDir() {
			for _, s := range skipDirs {
				if strings.HasSuffix(p, "/"+s) {
					return filepath.SkipDir
				}
			}
		}
		if visit(p, d) && d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	return truncated
}

// anchorOf splits a pattern the way policy.CompileGlob anchors it: "~/"
// is the child's home, "/" the root, anything else the workspace.
func anchorOf(pattern, ws, home string) (base string, segs []string, ok bool) {
	rest := pattern
	switch {
	case strings.HasPrefix(pattern, "~/"):
		base, rest = home, pattern[2:]
	case strings.HasPrefix(pattern, "/"):
		base = "/"
	default:
		base = ws
	}
	rest = strings.Trim(rest, "/")
	if base == "" || rest == "" {
		return "", nil, false
	}
	return filepath.Clean(base), strings.Split(rest, "/"), true
}

// literalPrefix is the leading segments without glob syntax.
func literalPrefix(segs []string) []string {
	for i, s := range segs {
		if strings.ContainsAny(s, `*?[\`) {
			return segs[:i]
		}
	}
	return segs
}

// resolveWithin resolves every symlink in p and reports whether the result
// is still inside base (itself resolved).
func resolveWithin(p, base string) (string, bool, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", false, err
	}
	_, inside := within(real, realOr(base))
	return real, inside, nil
}

func realOr(p string) string {
	if p == "" {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// within returns p relative to base ("" for base itself).
func within(p, base string) (string, bool) {
	if base == "/" {
		return strings.TrimPrefix(p, "/"), true
	}
	if p == base {
		return "", true
	}
	if strings.HasPrefix(p, base+"/") {
		return p[len(base)+1:], true
	}
	return "", false
}

// enterProtectedNamespace runs on the locked OS thread that then starts the
// child, so only that thread (and the child it forks) sees the binds; the
// thread is discarded afterwards, never reused by the Go runtime.
// unshare(CLONE_NEWNS) also unshares the thread's CLONE_FS state, which is
// why it is allowed in a multi-threaded process.
func (p *protectPlan) enterProtectedNamespace() error {
	if err := p.enterNamespace(); err != nil {
		return &protectError{err}
	}
	return nil
}

func (p *protectPlan) enterNamespace() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%w: %w", errProtectNeedsRoot, err)
		}
		return fmt.Errorf("creating the child's mount namespace for files.protect: %w", err)
	}
	// The copied mounts are still peers of the supervisor's: without this,
	// every bind below would propagate back into the host namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the child's mounts private: %w", err)
	}
	for _, b := range p.binds {
		if err := bindOntoItself(b); err != nil {
			return err
		}
	}
	for _, m := range p.masks {
		opts := fmt.Sprintf("mode=0700,size=16m,uid=%d", p.maskUID)
		if err := unix.Mount("tmpfs", m, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("hiding %s from the run: %w", m, err)
		}
	}
	return nil
}

// bindOntoItself clones the mount tree at b.path and attaches it on top of
// the same path, read-only when asked. It works on file descriptors opened
// here, after unshare, with no symlink allowed anywhere in the path: what
// is mounted is what planProtect resolved, even if a path component was
// swapped for a symlink since (that fails instead). The clone is made
// read-only before it is attached, so there is no writable moment.
func bindOntoItself(b bindMount) error {
	what := "pinning"
	if b.readOnly {
		what = "making read-only"
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, b.path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, b.path, err)
	}
	defer unix.Close(fd)
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("%s %s: cloning the mount: %w", what, b.path, err)
	}
	defer unix.Close(tree)
	if b.readOnly {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("%s %s: %w", what, b.path, err)
		}
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("%s %s: attaching the bind: %w", what, b.path, err)
	}
	return nil
}

// protectError: the child's protected namespace could not be set up, so
// the run is refused before the child starts (enforce mode never silently
// downgrades to observing).
type protectError struct{ err error }

func (e *protectError) Error() string { return e.err.Error() }
func (e *protectError) Unwrap() error { return e.err }

// errProtectNeedsRoot explains the usual failure of enforce mode.
var errProtectNeedsRoot = errors.New("enforcing files.protect needs root (CAP_SYS_ADMIN); use --mode observe to record only")
