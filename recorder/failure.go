package recorder

// The failure class and the evals on the root span.
//
// agentwatch.failure.class is the first of these that holds (and
// agentwatch.failure.reason says which evidence made it):
//
//  1. interrupted      SIGINT, SIGTERM or SIGHUP killed the root, or it
//                      exited 130, 143 or 129 (a shell reporting one).
//  2. policy_block     the run failed (exit ≠ 0) and it hit a denial: a
//                      connection or lookup refused in enforce mode, or a
//                      refused write to a protected path.
//  3. permission_block the run failed and a file operation in the record
//                      failed with EACCES or EPERM outside the policy.
//  4. budget_breach    the run's model cost (agentwatch.cost.usd on the
//                      root) over alerts.spend_usd.
//  5. dependency       the last dependency_install failed (a failed install
//                      redone successfully is not the failure).
//  6. merge_conflict   the worktree was left merging, rebasing, applying,
//                      cherry-picking or reverting.
//  7. test_failure     the last test_run to finish failed.
//  8. security_finding the secret scan found something.
//  9. shell_environment the run failed with 126 or 127 (cannot execute,
//                      not found).
//  10. telemetry_gap   the run failed, nothing above explains it, and the
//                      record is incomplete (gaps or dropped events).
//  11. unknown         the run failed and the evidence says nothing more —
//                      not in telemetry.md's taxonomy on purpose: a reviewer
//                      sets the real class with `agentwatch annotate`.
//  12. none            exit 0 and nothing above.
//
// 5–8 hold whatever the exit status: an agent that exits 0 after its last
// test run failed, or after committing a key, did not succeed. 2, 3 and 10
// need a failed run: a denial the agent worked around is not a failure.
//
// Evals:
//   - agentwatch.eval.tests_passed: the outcome of the last test_run to
//     finish; absent when no test_run finished.
//   - agentwatch.eval.security_scan: "clean", "findings:N", or "not_run"
//     (no scan at the end of the run).
//   - agentwatch.eval.diff_risk: 0–100, the sum of
//       workflow/CI files changed              +30
//       secret scan findings                   +40
//       secret files (files.secrets) written   +20
//       protected paths written or attempted   +15
//       lockfiles changed                      +10
//       deleted files                          +5 each, at most +15
//       lines changed (added + removed)        >100: +5, >300: +10, >1000: +20
//       files touched                          >25: +5
//     capped at 100. Absent without workspace evidence (outside git): a
//     score over nothing would read as "safe".

import (
	"fmt"
	"strconv"
	"syscall"

	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
)

// riskInputs are what diff_risk is computed from.
type riskInputs struct {
	workflows, lockfiles, deleted, touched int
	linesChanged                           int
	secretFindings, secretWrites           int
	protectedAttempts                      int
}

// diffRisk is the documented score (see the file comment).
func diffRisk(in riskInputs) int {
	risk := 0
	if in.workflows > 0 {
		risk += 30
	}
	if in.secretFindings > 0 {
		risk += 40
	}
	if in.secretWrites > 0 {
		risk += 20
	}
	if in.protectedAttempts > 0 {
		risk += 15
	}
	if in.lockfiles > 0 {
		risk += 10
	}
	risk += min(5*in.deleted, 15)
	switch {
	case in.linesChanged > 1000:
		risk += 20
	case in.linesChanged > 300:
		risk += 10
	case in.linesChanged > 100:
		risk += 5
	}
	if in.touched > 25 {
		risk += 5
	}
	return min(risk, 100)
}

// failureFacts is the evidence the failure class is chosen from.
type failureFacts struct {
	exitCode, signal  int
	denied            int    // network/DNS refusals and refused protected writes
	deniedWhat        string // one of them, for the reason
	permission        string // a path whose operation failed with EACCES/EPERM
	lastInstallFailed bool
	lastInstall       string
	worktreeState     string
	lastTestFailed    bool
	lastTest          string
	secretFindings    int
	incomplete        bool
	budgetBreach      bool
	budgetReason      string
}

// failureClass applies the precedence of the file comment.
func failureClass(f failureFacts) (class, reason string) {
	failed := f.exitCode != 0 || f.signal != 0
	switch {
	case f.signal == int(syscall.SIGINT) || f.signal == int(syscall.SIGTERM) || f.signal == int(syscall.SIGHUP):
		return telemetry.FailureInterrupted, "killed by " + signalName(f.signal)
	case f.signal == 0 && (f.exitCode == 130 || f.exitCode == 143 || f.exitCode == 129):
		return telemetry.FailureInterrupted, "exit code " + strconv.Itoa(f.exitCode) + " (interrupted)"
	case failed && f.denied > 0:
		return telemetry.FailurePolicyBlock, fmt.Sprintf("%d actions denied by policy (%s)", f.denied, f.deniedWhat)
	case failed && f.permission != "":
		return telemetry.FailurePermissionBlock, "permission denied: " + f.permission
	case f.budgetBreach:
		return telemetry.FailureBudgetBreach, f.budgetReason
	case f.lastInstallFailed:
		return telemetry.FailureDependency, "dependency install failed: " + f.lastInstall
	case isConflictState(f.worktreeState):
		return telemetry.FailureMergeConflict, "worktree left " + f.worktreeState
	case f.lastTestFailed:
		return telemetry.FailureTestFailure, "last test run failed: " + f.lastTest
	case f.secretFindings > 0:
		return telemetry.FailureSecurityFinding, fmt.Sprintf("secret scan: %d findings", f.secretFindings)
	case failed && (f.exitCode == 126 || f.exitCode == 127):
		return telemetry.FailureShellEnvironment, "exit code " + strconv.Itoa(f.exitCode) + " (cannot execute or not found)"
	case failed && f.incomplete:
		return telemetry.FailureTelemetryGap, "the run failed and its record is incomplete"
	case failed:
		if f.signal != 0 {
			return telemetry.FailureUnknown, "killed by " + signalName(f.signal) + "; no evidence says why"
		}
		return telemetry.FailureUnknown, "exit code " + strconv.Itoa(f.exitCode) + "; no evidence says why"
	}
	return telemetry.FailureNone, ""
}

func isConflictState(s string) bool {
	switch s {
	case workspace.StateMerging, workspace.StateRebasing, workspace.StateApplying,
		workspace.StateCherryPicking, workspace.StateReverting:
		return true
	}
	return false
}

// budgetBreach: the run's model cost on the root (agentwatch.cost.usd,
// from the model-call spans) over alerts.spend_usd; 0 disables it.
func (r *Recorder) budgetBreach(root *telemetry.Span) (bool, string) {
	limit := r.pol.Alerts.SpendUSD
	v, ok := root.Attr(telemetry.CostUSD)
	if limit <= 0 || !ok || v.AsFloat64() <= limit {
		return false, ""
	}
	return true, fmt.Sprintf("model cost $%.2f over alerts.spend_usd $%.2f", v.AsFloat64(), limit)
}

// lastClassed is the span of class that finished last (by end time, so a
// test_run nested in another yields the outer one), among those that exited.
func (r *Recorder) lastClassed(class string) *procSpan {
	var last *procSpan
	for _, s := range r.spans {
		if s.isRoot || s.cls == nil || s.cls.class != class || !s.exited {
			continue
		}
		if last == nil || !s.end.Before(last.end) {
			last = s
		}
	}
	return last
}

// finishFailure sets the failure class, its reason and the evals on the
// root. It runs last, when every alert and attribute is in place.
func (r *Recorder) finishFailure(t *telemetry.Trace, end End) {
	if len(t.Spans) == 0 {
		return
	}
	root := &t.Spans[0]
	f := failureFacts{exitCode: end.ExitCode, signal: end.Signal}
	if r.pstate != nil {
		f.denied = r.pstate.denied
		if f.denied > 0 {
			f.deniedWhat = "network"
		}
	}
	secretWrites, protected := 0, 0
	for _, s := range r.spans {
		for _, fs := range s.fileOrder {
			if fs.protected && !fs.read {
				protected++
				if fs.failures > 0 && (fs.firstErr == "EROFS" || fs.firstErr == "EACCES" || fs.firstErr == "EPERM") {
					if f.denied == 0 {
						f.deniedWhat = "write to " + r.shown(fs.path)
					}
					f.denied += fs.failures
				}
				continue
			}
			if fs.secret && !fs.read && fs.nOps > 0 {
				secretWrites++
			}
			if fs.failures > 0 && f.permission == "" && (fs.firstErr == "EACCES" || fs.firstErr == "EPERM") {
				f.permission = fs.failedOp.String() + " " + r.shown(fs.path) + " (" + fs.firstErr + ")"
			}
		}
	}
	if s := r.lastClassed(telemetry.SpanDependencyInstall); s != nil {
		f.lastInstallFailed = s.exitCode != 0 || s.signal != 0
		f.lastInstall = shortLine(s.args)
	}
	last := r.lastClassed(telemetry.SpanTestRun)
	if last != nil {
		f.lastTestFailed = last.exitCode != 0 || last.signal != 0
		f.lastTest = shortLine(last.args)
		root.SetAttr(telemetry.EvalTestsPassed.Bool(!f.lastTestFailed))
	}
	if ev := end.Evidence; ev != nil {
		f.worktreeState = ev.State
	}
	if sc := end.SecretScan; sc != nil {
		f.secretFindings = sc.Total
		scan := "clean"
		if sc.Total > 0 {
			scan = "findings:" + strconv.Itoa(sc.Total)
		}
		root.SetAttr(telemetry.EvalSecurityScan.String(scan))
	} else {
		root.SetAttr(telemetry.EvalSecurityScan.String("not_run"))
	}
	f.incomplete = len(r.gaps) > 0 || r.dropped+end.Dropped > 0
	f.budgetBreach, f.budgetReason = r.budgetBreach(root)

	class, reason := failureClass(f)
	root.SetAttr(telemetry.FailureClass.String(class))
	if reason != "" {
		root.SetAttr(telemetry.FailureReason.String(reason))
	}

	if ev := end.Evidence; ev != nil && ev.Absent == "" {
		root.SetAttr(telemetry.EvalDiffRisk.Int(diffRisk(riskInputs{
			workflows:         len(ev.Workflows),
			lockfiles:         len(ev.Lockfiles),
			deleted:           len(ev.Deleted),
			touched:           len(ev.Touched),
			linesChanged:      ev.LinesAdded + ev.LinesRemoved,
			secretFindings:    f.secretFindings,
			secretWrites:      secretWrites,
			protectedAttempts: protected,
		})))
	}
}
