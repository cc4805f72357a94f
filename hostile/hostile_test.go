// Package hostile is the hostile-agent suite: one real `agentwatch run`
// per attack a wrapped agent that knows agentwatch would try, as root with
// real namespaces, cgroups and eBPF, each asserting what the child got
// (refused, killed, not reached) and what the trace says (a rule and a
// severity), in enforce and in observe mode.
package hostile

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
	"strconv"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/cli"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// asAgentwatch makes the test binary act as the agentwatch command.
const asAgentwatch = "AGENTWATCH_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asAgentwatch) == "1" {
		os.Exit(cli.Main())
	}
	os.Exit(m.Run())
}

// agent is the unprivileged user the attacks run as (privtest.User). Its
// home is not /home/NAME, so nothing may guess it.
const (
	agent     = "agentwatch-hostile"
	agentHome = "/srv/" + agent + "-home"
)

// ws is one attack's workspace: a git repository owned by the agent, with
// a workflow, in a directory the agent owns (so it could rename it).
type ws struct {
	t    *testing.T
	u    *user.User
	root string // the agent-owned parent
	dir  string // the repository
}

func newWorkspace(t *testing.T, u *user.User) *ws {
	t.Helper()
	parent, err := os.MkdirTemp("/tmp", "aw-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	w := &ws{t: t, u: u, root: parent, dir: filepath.Join(parent, "repo")}
	w.write(".github/workflows/ci.yml", "on: push\n")
	w.write("README.md", "hello\n")
	w.git("init", "-q")
	w.git("add", "-A")
	w.git("commit", "-qm", "base")
	w.chown()
	return w
}

func (w *ws) path(rel string) string { return filepath.Join(w.dir, rel) }

func (w *ws) write(rel, content string) {
	w.t.Helper()
	p := w.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *ws) read(rel string) string {
	b, _ := os.ReadFile(w.path(rel))
	return string(b)
}

func (w *ws) git(args ...string) {
	w.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.email=a@b", "-c", "user.name=a", "-C", w.dir}, args...)...)
	cmd.Env = gitEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func (w *ws) chown() {
	w.t.Helper()
	uid, _ := strconv.Atoi(w.u.Uid)
	gid, _ := strconv.Atoi(w.u.Gid)
	filepath.Walk(w.root, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, uid, gid)
		}
		return nil
	})
}

func gitEnv() []string {
	return append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
}

// run is one finished `agentwatch run`.
type run struct {
	code   int
	stdout string
	stderr string
	trace  *telemetry.Trace
}

var recordedRe = regexp.MustCompile(`agentwatch: run (\S+) recorded`)

// agentwatchRun runs `agentwatch run --user agent --mode MODE -- bash -c
// script` in the workspace and loads the recorded trace.
func agentwatchRun(t *testing.T, w *ws, mode, script string, extra ...string) run {
	t.Helper()
	r, _ := agentwatchRunStore(t, w, mode, script, extra...)
	return r
}

// agentwatchRunStore is agentwatchRun that also returns the store.
func agentwatchRunStore(t *testing.T, w *ws, mode, script string, extra ...string) (run, string) {
	t.Helper()
	storeDir := t.TempDir()
	args := append([]string{"run", "--user", agent, "--mode", mode, "--store", storeDir}, extra...)
	args = append(args, "--", "/bin/bash", "-c", script)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(gitEnv(), asAgentwatch+"=1")
	cmd.Dir = w.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running agentwatch: %v", err)
	}
	r := run{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	m := recordedRe.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no run recorded (exit %d):\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r.trace, _, err = st.Load(context.Background(), m[1]); err != nil {
		t.Fatal(err)
	}
	return r, storeDir
}

// alert is one alert of the trace.
type alert struct{ rule, severity, message string }

func (r run) alerts() []alert {
	var out []alert
	for _, sp := range r.trace.Spans {
		for _, ev := range sp.Events {
			var a alert
			for _, kv := range ev.Attrs {
				switch kv.Key {
				case telemetry.AlertRule:
					a.rule = kv.Value.Emit()
				case telemetry.AlertSeverity:
					a.severity = kv.Value.Emit()
				case telemetry.AlertMessage:
					a.message = kv.Value.Emit()
				}
			}
			if a.rule != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// hasAlert reports whether an alert of rule at severity mentions text.
func (r run) hasAlert(rule, severity, text string) bool {
	for _, a := range r.alerts() {
		if a.rule == rule && (severity == "" || a.severity == severity) && strings.Contains(a.message, text) {
			return true
		}
	}
	return false
}

// step is one line the attack script printed: "NAME ok" or "NAME fail".
func (r run) step(name string) string {
	for _, l := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == name {
			return v
		}
	}
	return "missing"
}

// try wraps a shell command as a step the script reports.
func try(name, cmd string) string {
	return fmt.Sprintf("if ( %s ) >/dev/null 2>&1; then echo '%s ok'; else echo '%s fail'; fi\n", cmd, name, name)
}
