package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

// TestClaudeRunsAgainstFakeModel proves the harness without agentwatch:
// the real CLI, as the test user, talks to the scripted model, runs the
// Bash tool and finishes. When this fails, TestAgentwatchWrapsClaude's
// failure says nothing about agentwatch.
func TestClaudeRunsAgainstFakeModel(t *testing.T) {
	privtest.Require(t)
	a := ensureUser(t)
	claude := ensureClaude(t)
	srv := startModel(t)
	ws := newWorkspace(t, a)

	cmd := exec.Command(claude, claudeArgs(prompt)...)
	cmd.Dir = ws
	cmd.Env = claudeEnv(a, claude, srv.URL())
	cmd.SysProcAttr = asUser(a)
	res := run(t, cmd, claudeTimeout)
	t.Logf("claude stdout:\n%s\nclaude stderr:\n%s", res.Stdout, res.Stderr)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("claude exited %d", res.ExitCode)
	}
	checkModelSaw(t, srv)
	checkNote(t, ws)
}

// TestAgentwatchWrapsClaude runs the same task under `agentwatch run` (as
// root; the supervisor drops to the test user) and checks the trace shows
// what happened: claude as the user, the Bash tool's shell command nested
// under it, the file write under that, and the connection to the model.
func TestAgentwatchWrapsClaude(t *testing.T) {
	privtest.Require(t)
	a := ensureUser(t)
	claude := ensureClaude(t)
	aw := buildAgentwatch(t)
	srv := startModel(t)
	ws := newWorkspace(t, a)
	out := t.TempDir()
	store := filepath.Join(out, "store")
	traceFile := filepath.Join(out, "run.json")

	// The pinned CLI's default model is newer than the built-in price
	// table: --prices adds it, so every call must get a cost.
	prices := writePrices(t, out)
	args := append([]string{"run", "--user", a.Name, "--store", store, "--trace-file", traceFile, "--prices", prices, "--", "claude"}, claudeArgs(prompt)...)
	cmd := exec.Command(aw, args...)
	cmd.Dir = ws
	cmd.Env = claudeEnv(a, claude, srv.URL())
	res := run(t, cmd, claudeTimeout)
	t.Logf("agentwatch run stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("agentwatch run exited %d", res.ExitCode)
	}
	// The agent really did its work; otherwise the trace checks below
	// would be about a different run.
	checkModelSaw(t, srv)
	checkNote(t, ws)

	tr, err := readTraceFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(traceFile); strings.Contains(string(raw), prompt) {
		t.Errorf("the prompt's text is in the trace file in metadata mode")
	}
	logTree(t, tr)
	runID := checkTrace(t, tr, a, ws, srv.Addr().Port)
	checkLLM(t, tr, srv, prices, traceFile, store)

	// The store holds the same run: `show --json` must agree with the file.
	show := exec.Command(aw, "show", runID, "--json", "--store", store)
	sres := run(t, show, 30*time.Second)
	if sres.Err != nil || sres.ExitCode != 0 {
		t.Fatalf("agentwatch show %s --json: exit %d, %v: %s", runID, sres.ExitCode, sres.Err, sres.Stderr)
	}
	checkShowAgrees(t, tr, runID, sres.Stdout)
}
