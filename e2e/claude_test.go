package e2e

import (
	"os/exec"
	"testing"

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
