package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"golang.org/x/sys/unix"
)

// tree creates files (content "x") and symlinks ("link -> target") under
// root.
func tree(t *testing.T, root string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		p, target, isLink := strings.Cut(e, " -> ")
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case isLink:
			err = os.Symlink(target, p)
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(p, 0o755)
		default:
			err = os.WriteFile(p, []byte("x\n"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mustParse(t *testing.T, doc string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanProtect(t *testing.T) {
	dir := realDir(t, t.TempDir())
	ws, home := dir+"/ws", dir+"/home"
	tree(t, ws,
		".github/workflows/ci.yml",
		".gitlab-ci.yml",
		".git/hooks/",
		"ci/real.yml",
		"ci-link -> ci/real.yml",    // resolves inside: its target is bound
		"escape -> /etc/hostname",   // resolves outside: never bound
		"deploy/prod/Makefile",      // wildcard pattern, walked
		"deploy/dev/Makefile",       //
		"node_modules/pkg/Makefile", // never walked
		"docs/README.md",            // matches nothing
	)
	tree(t, home, ".bashrc")
	pol := mustParse(t, `version: 1
mode: enforce
files:
  builtin_protect: false
  protect: [".github/workflows/**", ".gitlab-ci.yml", ".agentwatch.yaml", ".git/hooks/**",
            "ci-link", "escape", "**/Makefile", "~/.bashrc", "~/.profile"]
`)
	type row struct {
		pattern, path     string
		existed, readOnly bool
	}
	rows := func(evs []event.ProtectedPath) []row {
		var out []row
		for _, e := range evs {
			out = append(out, row{e.Pattern, e.Path, e.Existed, e.ReadOnly})
		}
		return out
	}
	now := time.Now()

	plan := planProtect(pol, ws, home, true, now)
	wantEvents := []row{
		{".github/workflows/**", ws + "/.github/workflows", true, true},
		{".gitlab-ci.yml", ws + "/.gitlab-ci.yml", true, true},
		{".agentwatch.yaml", ws + "/.agentwatch.yaml", false, true}, // held by a placeholder
		{".git/hooks/**", ws + "/.git/hooks", true, true},
		{"ci-link", ws + "/ci-link", true, true},
		{"escape", ws + "/escape", true, false},
		{"**/Makefile", ws + "/deploy/dev/Makefile", true, true},
		{"**/Makefile", ws + "/deploy/prod/Makefile", true, true},
		{"~/.bashrc", home + "/.bashrc", true, true},
		{"~/.profile", home + "/.profile", false, true},
	}
	if got := rows(plan.events); !slices.Equal(got, wantEvents) {
		t.Errorf("events:\n got %v\nwant %v", got, wantEvents)
	}
	var binds []string
	for _, b := range plan.binds {
		mode := "pin"
		if b.readOnly {
			mode = "ro"
		}
		binds = append(binds, mode+" "+strings.TrimPrefix(b.path, dir))
	}
	// Parents first; every directory between the anchor and a read-only
	// path is pinned so it cannot be renamed away.
	wantBinds := []string{
		"ro /ws/.gitlab-ci.yml",
		"ro /ws/.agentwatch.yaml",
		"ro /home/.bashrc",
		"ro /home/.profile",
		"pin /ws/.github",
		"pin /ws/.git",
		"pin /ws/ci",
		"pin /ws/deploy",
		"ro /ws/.github/workflows",
		"ro /ws/.git/hooks",
		"ro /ws/ci/real.yml",
		"pin /ws/deploy/dev",
		"pin /ws/deploy/prod",
		"ro /ws/deploy/dev/Makefile",
		"ro /ws/deploy/prod/Makefile",
	}
	if os.Geteuid() != 0 {
		// As a user the test's own directories are the user's: the
		// anchors and the temporary directories above them can be
		// renamed by the child, so they are pinned too (as root they are
		// root's, 0700: nothing to pin). /tmp itself is root's and sticky.
		wantBinds = append([]string{"pin " + filepath.Dir(dir), "pin ", "pin /ws", "pin /home"}, wantBinds...)
	}
	if !slices.Equal(binds, wantBinds) {
		t.Errorf("binds:\n got %s\nwant %s", strings.Join(binds, "\n     "), strings.Join(wantBinds, "\n     "))
	}
	wantGaps := []string{
		"files.protect: " + ws + "/ci-link is reached through a symlink: " + ws + "/ci/real.yml is read-only, the link itself is not",
		"files.protect: " + ws + "/escape resolves to /etc/hostname, outside " + ws + ": not made read-only",
	}
	if !slices.Equal(gapStrings(plan.gaps), wantGaps) {
		t.Errorf("gaps:\n got %q\nwant %q", gapStrings(plan.gaps), wantGaps)
	}

	// Absent paths are held: a directory in the workspace (git does not
	// list it), an empty file in the home.
	wantHeld := []placeholder{{ws + "/.agentwatch.yaml", true}, {home + "/.profile", false}}
	if !slices.Equal(plan.placeholders, wantHeld) {
		t.Errorf("placeholders %v, want %v", plan.placeholders, wantHeld)
	}

	// The built-in persistence paths join in enforce mode by default: an
	// existing one is bound, an absent one in an existing directory held;
	// none that cannot be held is a gap (the persistence rule alerts).
	withBuiltin := planProtect(mustParse(t, "version: 1\nmode: enforce\n"), ws, home, true, now)
	var roBuiltin []string
	for _, b := range withBuiltin.binds {
		if b.readOnly {
			roBuiltin = append(roBuiltin, strings.TrimPrefix(b.path, dir))
		}
	}
	for _, want := range []string{"/home/.bashrc", "/home/.gitconfig", "/home/.zshrc", "/ws/.git/hooks"} {
		if !slices.Contains(roBuiltin, want) {
			t.Errorf("built-in protect: %s not read-only (got %v)", want, roBuiltin)
		}
	}
	for _, g := range withBuiltin.gaps {
		if strings.Contains(g.String(), "cannot be held") {
			t.Errorf("built-in path reported as a gap: %s", g)
		}
	}

	// Observe mode: the same events, nothing read-only, no namespace.
	obs := planProtect(pol, ws, home, false, now)
	for i := range wantEvents {
		wantEvents[i].readOnly = false
	}
	if got := rows(obs.events); !slices.Equal(got, wantEvents) {
		t.Errorf("observe events:\n got %v\nwant %v", got, wantEvents)
	}
	if obs.enforced() {
		t.Errorf("observe mode plans binds: %v", obs.binds)
	}
}

func TestExpandSecrets(t *testing.T) {
	dir := realDir(t, t.TempDir())
	ws, home := dir+"/ws", dir+"/home"
	tree(t, ws,
		".env",
		"svc/.env.local",
		"svc/tls/server.pem",
		"node_modules/pkg/.env", // never walked
		".git/objects/ab/.env",  // never walked
		"README.md",
		".envrc", // not .env, not .env.*
	)
	tree(t, home, ".aws/credentials", ".aws/config", ".ssh/id_ed25519", ".config/gh/hosts.yml", ".bashrc")
	got, gaps := expandSecrets(policy.Default(), ws, home)
	slices.Sort(got)
	want := []string{
		home + "/.aws/config",
		home + "/.aws/credentials",
		home + "/.config/gh/hosts.yml",
		home + "/.ssh/id_ed25519",
		ws + "/.env",
		ws + "/svc/.env.local",
		ws + "/svc/tls/server.pem",
	}
	if !slices.Equal(got, want) || len(gaps) != 0 {
		t.Errorf("expandSecrets = %s, gaps %q\nwant %s", strings.Join(got, "\n  "), gaps, strings.Join(want, "\n  "))
	}
}

func realDir(t *testing.T, d string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// childUser is the unprivileged account the privileged tests run the child
// as (the e2e tests' account), so ~/.aws/credentials and ~/.bashrc are a
// real user's.
const childUser = "agentwatch-e2e"

// inHome creates rel (content "x") in u's home, owned by u, unless it
// exists, and removes what it created when the test ends.
func inHome(t *testing.T, u *user.User, rel string) string {
	t.Helper()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	p := filepath.Join(u.HomeDir, rel)
	if _, err := os.Lstat(p); err == nil {
		return p
	}
	// Remove the topmost directory this creates, or the file alone.
	first := p
	for d := filepath.Dir(p); d != u.HomeDir; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err != nil {
			first = d
		}
	}
	t.Cleanup(func() { os.RemoveAll(first) })
	for d := filepath.Dir(p); d != u.HomeDir; d = filepath.Dir(d) {
		defer os.Chown(d, uid, gid)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	return p
}

// mountState is what must not change in the supervisor: its threads'
// mount namespaces and its mount table.
func mountState(t *testing.T) (ns []string, mounts string) {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tasks {
		if l, err := os.Readlink(p); err == nil {
			ns = append(ns, l)
		}
	}
	slices.Sort(ns)
	ns = slices.Compact(ns)
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return ns, string(b)
}

var recordedLine = regexp.MustCompile(`agentwatch: run (\S+) recorded`)

// TestProtectAndSecrets runs a real child as an unprivileged user through
// Run, in enforce and in observe mode, and checks each attempt twice: what
// the child got from the kernel, and what the stored trace says about it.
func TestProtectAndSecrets(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, childUser, "")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	creds := inHome(t, u, ".aws/credentials")
	bashrc := inHome(t, u, ".bashrc")
	bashrcBefore, err := os.ReadFile(bashrc)
	if err != nil {
		t.Fatal(err)
	}

	// Each step prints "name: ok" or "name: <strerror>" (LC_ALL=C), so
	// the errno the kernel gave is asserted, not just a failure.
	script := `export LC_ALL=C
step() { name=$1; shift; if out=$("$@" 2>&1); then echo "$name: ok"; else echo "$name: ${out##*: }"; fi; }
step write sh -c 'echo x >> .gitlab-ci.yml'
step truncate truncate -s 0 .gitlab-ci.yml
step new-in-dir sh -c 'echo x > .github/workflows/new.yml'
step edit-in-dir sh -c 'echo x >> .github/workflows/ci.yml'
step rename-over mv -T notes.txt .gitlab-ci.yml
step delete rm -f .github/workflows/ci.yml
step rename-dir-away mv -T .github gh-moved
step home-rc sh -c 'echo x >> ~/.bashrc'
step read-creds cat ~/.aws/credentials
step read-env cat .env
step read-plain cat README.md
step unlink-protected rm -f .gitlab-ci.yml
readlink /proc/self/ns/mnt
`
	doc := `version: 1
mode: %s
files:
  protect: [".github/workflows/**", ".gitlab-ci.yml", "~/.bashrc"]
  secrets: ["~/.aws/**", "**/.env"]
`
	enforced := map[string]string{
		"write":            "Read-only file system",
		"truncate":         "Read-only file system",
		"new-in-dir":       "Read-only file system",
		"edit-in-dir":      "Read-only file system",
		"rename-over":      "Device or resource busy",
		"delete":           "Read-only file system",
		"rename-dir-away":  "Device or resource busy", // the pin on .github
		"home-rc":          "Read-only file system",
		"read-creds":       "ok", // reads are observed, never blocked
		"read-env":         "ok",
		"read-plain":       "ok",
		"unlink-protected": "Device or resource busy",
	}
	for _, mode := range []string{"enforce", "observe"} {
		t.Run(mode, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "agentwatch-protect-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, 0o755); err != nil { // MkdirTemp's 0700 is closed to the child
				t.Fatal(err)
			}
			ws := realDir(t, dir) + "/ws"
			tree(t, ws, ".github/workflows/ci.yml", ".gitlab-ci.yml", ".env", "README.md", "notes.txt")
			if err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), ws).Run(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.WriteFile(bashrc, bashrcBefore, 0o644) })

			nsBefore, mountsBefore := mountState(t)
			var out, errb bytes.Buffer
			storeDir := t.TempDir()
			code, err := Run(context.Background(), Options{
				Argv:     []string{"/bin/bash", "-c", script},
				User:     u.Username,
				StoreDir: storeDir,
				Dir:      ws,
				Stdout:   &out,
				Stderr:   &errb,
				Policy:   mustParse(t, fmt.Sprintf(doc, mode)),
			})
			if err != nil || code != 0 {
				t.Fatalf("Run = %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, out.String(), errb.String())
			}
			// The thread that made the child's namespace is discarded when
			// its goroutine returns, which the runtime does asynchronously
			// to Run returning: give it a moment, but no other thread may
			// ever be in that namespace.
			nsAfter, mountsAfter := mountState(t)
			for deadline := time.Now().Add(2 * time.Second); !slices.Equal(nsBefore, nsAfter) && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				nsAfter, mountsAfter = mountState(t)
			}
			if !slices.Equal(nsBefore, nsAfter) || mountsBefore != mountsAfter {
				t.Errorf("the supervisor's mount namespace changed:\n ns %v -> %v\nmounts before:\n%s\nafter:\n%s", nsBefore, nsAfter, mountsBefore, mountsAfter)
			}

			// The child's side.
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			got := map[string]string{}
			for _, l := range lines[:len(lines)-1] {
				k, v, _ := strings.Cut(l, ": ")
				got[k] = v
			}
			childNS := lines[len(lines)-1]
			for step, want := range enforced {
				if mode == "observe" {
					want = "ok"
				}
				if got[step] != want {
					t.Errorf("%s: child got %q, want %q", step, got[step], want)
				}
			}
			// Both modes: the run's init mounts the run's own /proc there.
			if slices.Contains(nsBefore, childNS) {
				t.Errorf("child's mount namespace %s is the supervisor's %v; want a private one", childNS, nsBefore)
			}

			// The trace's side.
			m := recordedLine.FindStringSubmatch(errb.String())
			if m == nil {
				t.Fatalf("no run id on stderr:\n%s", errb.String())
			}
			st, err := store.Open(storeDir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tr, _, err := st.Load(context.Background(), m[1])
			if err != nil {
				t.Fatal(err)
			}
			checkProtectTrace(t, tr, mode, ws, creds, bashrc)
		})
	}
}

// checkProtectTrace: each attempt is a file span under the process that
// made it (a bash_command, not the root), refused ones carrying the
// errno as failure events; secret reads are file_read spans, a plain read
// is nothing.
func checkProtectTrace(t *testing.T, tr *telemetry.Trace, mode, ws, creds, bashrc string) {
	t.Helper()
	byID := map[string]*telemetry.Span{}
	for i := range tr.Spans {
		byID[tr.Spans[i].SpanID.String()] = &tr.Spans[i]
	}
	attr := func(s *telemetry.Span, k string) string {
		for _, a := range s.Attrs {
			if string(a.Key) == k {
				return a.Value.Emit()
			}
		}
		return ""
	}
	// path -> "ops | failed op:errno ..." of its spans (several processes
	// may touch one path; their spans are joined).
	files := map[string][]string{}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Type() != telemetry.SpanFileWrite && s.Type() != telemetry.SpanFileRead {
			continue
		}
		p := byID[s.ParentID.String()]
		if p == nil || p.Type() == telemetry.SpanAgentRun {
			t.Errorf("%s %s is not under the process that did it", s.Name, attr(s, string(telemetry.FilePath)))
		}
		var failed []string
		for _, e := range s.Events {
			if e.Name != telemetry.EventFileFailed {
				continue
			}
			var op, typ string
			for _, a := range e.Attrs {
				switch a.Key {
				case telemetry.FileOperation:
					op = a.Value.Emit()
				case telemetry.ErrorType:
					typ = a.Value.Emit()
				}
			}
			failed = append(failed, op+":"+typ)
		}
		d := s.Type()
		if ops := attr(s, string(telemetry.FileOperation)); ops != "" {
			d += " " + ops
		}
		if len(failed) > 0 {
			d += " refused " + strings.Join(failed, ",")
		}
		files[attr(s, string(telemetry.FilePath))] = append(files[attr(s, string(telemetry.FilePath))], d)
	}
	has := func(path, want string) {
		t.Helper()
		for _, d := range files[path] {
			if strings.Contains(d, want) {
				return
			}
		}
		t.Errorf("%s: no span with %q; spans: %q", path, want, files[path])
	}
	if mode == "enforce" {
		has(ws+"/.gitlab-ci.yml", "write:EROFS")
		// A refused open names no operation beyond the attempt to write
		// (the truncate step opens with O_CREAT before ftruncate).
		has(ws+"/.gitlab-ci.yml", "delete:EBUSY")
		has(ws+"/.github/workflows/new.yml", "write:EROFS")
		has(ws+"/.github/workflows/ci.yml", "write:EROFS")
		has(ws+"/.github/workflows/ci.yml", "delete:EROFS")
		has(ws+"/notes.txt", "rename:EBUSY")
		has(ws+"/.github", "rename:EBUSY")
		has(bashrc, "write:EROFS")
	} else {
		has(ws+"/.gitlab-ci.yml", "file_write")
		has(ws+"/.github/workflows/new.yml", "create")
		has(ws+"/.github/workflows/ci.yml", "delete")
		has(ws+"/notes.txt", "rename")
		has(bashrc, "write")
		for p, ds := range files {
			if strings.Contains(strings.Join(ds, " "), "refused") {
				t.Errorf("observe mode: %s refused: %q", p, ds)
			}
		}
	}
	has(creds, telemetry.SpanFileRead)
	has(ws+"/.env", telemetry.SpanFileRead)
	if ds, ok := files[ws+"/README.md"]; ok {
		t.Errorf("a plain read was recorded: %q", ds)
	}
}

// TestProtectWithoutPrivilegeRefuses: where the namespace cannot be made
// (no CAP_SYS_ADMIN), enforce mode fails with a reason instead of running
// the child unprotected.
func TestProtectWithoutPrivilegeRefuses(t *testing.T) {
	privtest.Require(t) // root is needed to become nobody on one thread
	ws := realDir(t, t.TempDir())
	tree(t, ws, ".gitlab-ci.yml")
	plan := planProtect(mustParse(t, "version: 1\nmode: enforce\nfiles:\n  protect: [.gitlab-ci.yml]\n"), ws, "", true, time.Now())
	if !plan.enforced() {
		t.Fatal("nothing to bind")
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with its changed ids. The raw
		// syscall changes this thread only (Go's Setresuid changes all).
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 65534); e != 0 {
			errc <- fmt.Errorf("setresuid: %w", e)
			return
		}
		errc <- plan.enterProtectedNamespace()
	}()
	err := <-errc
	var pe *protectError
	if !errors.Is(err, errProtectNeedsRoot) || !errors.As(err, &pe) {
		t.Fatalf("enterProtectedNamespace without privilege = %v, want errProtectNeedsRoot", err)
	}
}

func gapStrings(gaps []event.Gap) []string {
	out := make([]string, len(gaps))
	for i, g := range gaps {
		out[i] = g.String()
	}
	return out
}
