package recorder

import (
	"syscall"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/secretscan"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
)

func TestFailureClassPrecedence(t *testing.T) {
	all := failureFacts{ // everything at once: interrupted wins
		signal: int(syscall.SIGINT), denied: 2, deniedWhat: "network", permission: "write x (EACCES)",
		budgetBreach: true, budgetReason: "model cost $9.00 over alerts.spend_usd $5.00", lastInstallFailed: true, worktreeState: "merging", lastTestFailed: true,
		secretFindings: 1, incomplete: true,
	}
	without := func(f failureFacts, drop func(*failureFacts)) failureFacts { drop(&f); return f }
	noSignal := without(all, func(f *failureFacts) { f.signal, f.exitCode = 0, 1 })
	tests := []struct {
		name  string
		facts failureFacts
		want  string
	}{
		{"SIGINT beats everything", all, telemetry.FailureInterrupted},
		{"SIGTERM", failureFacts{signal: int(syscall.SIGTERM)}, telemetry.FailureInterrupted},
		{"SIGHUP", failureFacts{signal: int(syscall.SIGHUP)}, telemetry.FailureInterrupted},
		{"exit 130", failureFacts{exitCode: 130}, telemetry.FailureInterrupted},
		{"exit 143", failureFacts{exitCode: 143, lastTestFailed: true}, telemetry.FailureInterrupted},
		{"SIGKILL is not an interruption", failureFacts{signal: int(syscall.SIGKILL)}, telemetry.FailureUnknown},
		{"failed run with a denial: policy_block", noSignal, telemetry.FailurePolicyBlock},
		{"a denial the agent worked around is not a failure", failureFacts{denied: 3}, telemetry.FailureNone},
		{"permission_block next", without(noSignal, func(f *failureFacts) { f.denied = 0 }), telemetry.FailurePermissionBlock},
		{"EACCES in a successful run is nothing", failureFacts{permission: "write x (EACCES)"}, telemetry.FailureNone},
		{"budget next", without(noSignal, func(f *failureFacts) { f.denied, f.permission = 0, "" }), telemetry.FailureBudgetBreach},
		{"dependency next", without(noSignal, func(f *failureFacts) { f.denied, f.permission, f.budgetBreach = 0, "", false }), telemetry.FailureDependency},
		{"failed install in a run that exited 0", failureFacts{lastInstallFailed: true}, telemetry.FailureDependency},
		{"merge conflict over a failed test", failureFacts{worktreeState: workspace.StateRebasing, lastTestFailed: true}, telemetry.FailureMergeConflict},
		{"bisecting is no conflict", failureFacts{worktreeState: workspace.StateBisecting}, telemetry.FailureNone},
		{"last test failed, agent exited 0", failureFacts{lastTestFailed: true, secretFindings: 2}, telemetry.FailureTestFailure},
		{"secret findings", failureFacts{secretFindings: 2, incomplete: true, exitCode: 1}, telemetry.FailureSecurityFinding},
		{"exit 127", failureFacts{exitCode: 127, incomplete: true}, telemetry.FailureShellEnvironment},
		{"failed with an incomplete record", failureFacts{exitCode: 2, incomplete: true}, telemetry.FailureTelemetryGap},
		{"succeeded with an incomplete record", failureFacts{incomplete: true}, telemetry.FailureNone},
		{"failed, nothing known", failureFacts{exitCode: 1}, telemetry.FailureUnknown},
		{"exit 0, nothing wrong", failureFacts{}, telemetry.FailureNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := failureClass(tt.facts)
			if got != tt.want {
				t.Errorf("class %q (%s), want %q", got, reason, tt.want)
			}
			if (got == telemetry.FailureNone) != (reason == "") {
				t.Errorf("reason %q for class %q", reason, got)
			}
		})
	}
}

func TestDiffRisk(t *testing.T) {
	tests := []struct {
		name string
		in   riskInputs
		want int
	}{
		{"nothing", riskInputs{}, 0},
		{"small source change", riskInputs{touched: 2, linesChanged: 40}, 0},
		{"101 lines", riskInputs{touched: 3, linesChanged: 101}, 5},
		{"301 lines", riskInputs{linesChanged: 301}, 10},
		{"1001 lines, 26 files", riskInputs{touched: 26, linesChanged: 1001}, 25},
		{"workflow", riskInputs{workflows: 1, touched: 1, linesChanged: 3}, 30},
		{"lockfile", riskInputs{lockfiles: 2}, 10},
		{"two deletions", riskInputs{deleted: 2}, 10},
		{"deletions capped at 15", riskInputs{deleted: 40}, 15},
		{"secret finding", riskInputs{secretFindings: 1}, 40},
		{"secret file written", riskInputs{secretWrites: 1}, 20},
		{"protected attempt", riskInputs{protectedAttempts: 1}, 15},
		{"workflow + lockfile + 2 deletions + 400 lines", riskInputs{workflows: 1, lockfiles: 1, deleted: 2, linesChanged: 400}, 60},
		{"everything: capped at 100", riskInputs{workflows: 1, secretFindings: 3, secretWrites: 1, protectedAttempts: 1, lockfiles: 1, deleted: 9, linesChanged: 5000, touched: 90}, 100},
	}
	for _, tt := range tests {
		if got := diffRisk(tt.in); got != tt.want {
			t.Errorf("%s: diffRisk = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestFailureFromRecord: the class, reason and evals the recorder puts on
// the root from real event fixtures.
func TestFailureFromRecord(t *testing.T) {
	ev := func(mod func(*workspace.Evidence)) *workspace.Evidence {
		e := &workspace.Evidence{Base: "aaaa", Head: "aaaa", Touched: []string{"main.go"}, LinesAdded: 10, DiffSHA256: "x"}
		if mod != nil {
			mod(e)
		}
		return e
	}
	scan := func(n int) *secretscan.Result { return &secretscan.Result{Total: n} }
	tests := []struct {
		name   string
		mode   string
		events []event.Event
		end    End
		want   map[attribute.Key]string
	}{
		{
			name:   "clean run",
			events: events(claude(), cmd(10, 101, 0, "go", "test", "./...")),
			end:    End{Evidence: ev(nil), SecretScan: scan(0)},
			want: map[attribute.Key]string{telemetry.FailureClass: "none", telemetry.FailureReason: "<unset>",
				telemetry.EvalTestsPassed: "true", telemetry.EvalSecurityScan: "clean", telemetry.EvalDiffRisk: "0"},
		},
		{
			name:   "last test failed though an earlier one passed; agent exited 0",
			events: events(claude(), cmd(10, 101, 0, "go", "test", "./..."), cmd(20, 102, 1, "go", "test", "-run", "TestX", ".")),
			end:    End{Evidence: ev(func(e *workspace.Evidence) { e.Workflows = []string{".github/workflows/ci.yml"} })},
			want: map[attribute.Key]string{telemetry.FailureClass: "test_failure", telemetry.FailureReason: "last test run failed: go test -run TestX .",
				telemetry.EvalTestsPassed: "false", telemetry.EvalSecurityScan: "not_run", telemetry.EvalDiffRisk: "30"},
		},
		{
			name:   "a test that passed after failing",
			events: events(claude(), cmd(10, 101, 1, "go", "test", "./..."), cmd(20, 102, 0, "go", "test", "./...")),
			want:   map[attribute.Key]string{telemetry.FailureClass: "none", telemetry.EvalTestsPassed: "true", telemetry.EvalDiffRisk: "<unset>"},
		},
		{
			name:   "no test_run: tests_passed absent",
			events: claude(),
			end:    End{ExitCode: 1},
			want:   map[attribute.Key]string{telemetry.FailureClass: "unknown", telemetry.FailureReason: "exit code 1; no evidence says why", telemetry.EvalTestsPassed: "<unset>"},
		},
		{
			name:   "failed npm install",
			events: events(claude(), cmd(10, 101, 1, "npm", "install", "left-pad")),
			end:    End{ExitCode: 1},
			want:   map[attribute.Key]string{telemetry.FailureClass: "dependency", telemetry.FailureReason: "dependency install failed: npm install left-pad"},
		},
		{
			name: "denied connection in enforce mode and a failed run",
			mode: "enforce",
			events: events(claude(), []event.Event{
				netDec(12, 100, event.TCP, "203.0.113.9:443", "evil.example", event.Deny, "network.allow", checkAddress),
			}),
			end:  End{ExitCode: 1},
			want: map[attribute.Key]string{telemetry.FailureClass: "policy_block"},
		},
		{
			name:   "refused protected write and a failed run",
			events: events(claude(), []event.Event{failedFile(10, 100, event.FileWrite, ws+"/.github/workflows/ci.yml", syscall.EROFS)}),
			end:    End{ExitCode: 1, Evidence: ev(nil)},
			want: map[attribute.Key]string{telemetry.FailureClass: "policy_block",
				telemetry.FailureReason: "1 actions denied by policy (write to .github/workflows/ci.yml)", telemetry.EvalDiffRisk: "15"},
		},
		{
			name:   "EACCES on a workspace file",
			events: events(claude(), []event.Event{failedFile(10, 100, event.FileWrite, ws+"/data/out.csv", syscall.EACCES)}),
			end:    End{ExitCode: 2},
			want:   map[attribute.Key]string{telemetry.FailureClass: "permission_block", telemetry.FailureReason: "permission denied: write data/out.csv (EACCES)"},
		},
		{
			name:   "killed by SIGTERM",
			events: claude(),
			end:    End{ExitCode: 143, Signal: int(syscall.SIGTERM)},
			want:   map[attribute.Key]string{telemetry.FailureClass: "interrupted", telemetry.FailureReason: "killed by SIGTERM"},
		},
		{
			name:   "secret findings",
			events: claude(),
			end:    End{SecretScan: scan(2), Evidence: ev(nil)},
			want: map[attribute.Key]string{telemetry.FailureClass: "security_finding", telemetry.EvalSecurityScan: "findings:2",
				telemetry.EvalDiffRisk: "40"},
		},
		{
			name:   "left mid-merge",
			events: claude(),
			end:    End{ExitCode: 1, Evidence: ev(func(e *workspace.Evidence) { e.State = workspace.StateMerging })},
			want:   map[attribute.Key]string{telemetry.FailureClass: "merge_conflict"},
		},
		{
			name:   "failed with dropped events",
			events: claude(),
			end:    End{ExitCode: 1, Dropped: 7},
			want:   map[attribute.Key]string{telemetry.FailureClass: "telemetry_gap"},
		},
		{
			name:   "outside git: no diff_risk",
			events: claude(),
			end:    End{Evidence: &workspace.Evidence{Absent: "not a git repository"}},
			want:   map[attribute.Key]string{telemetry.FailureClass: "none", telemetry.EvalDiffRisk: "<unset>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := runInfo()
			info.Gaps = nil
			mode := tt.mode
			if mode == "" {
				mode = "observe"
			}
			info.Policy = mustPolicy(t, mode, "")
			end := tt.end
			end.Time = at(100)
			tr := record(info, tt.events, end)
			wantAttrs(t, tr.Root(), tt.want)
		})
	}
}
