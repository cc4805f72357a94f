package recorder

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Command classes on process spans (the rules are in commands.go), the
// commit SHA of each `git commit`, and the secret_scan span.
//
// Decisions a reader of the trace should know:
//   - A process span's name is its class when it has one, bash_command
//     otherwise; agentwatch.command.class repeats it and
//     agentwatch.command.tool names the rule ("go test", "npm install").
//   - test_run's agentwatch.test.outcome is "passed" for exit status 0 and
//     "failed" for any other status or a kill; absent while the process
//     was still running at the end. Test counts need the command's
//     output, which metadata capture does not keep.
//   - commit: agentwatch.commit.sha is the commit (from End.Evidence, both
//     those still reachable and those reset or amended away) whose time
//     falls within the process's start..end, at git's one-second
//     resolution plus commitSlack for clock skew; commits and spans are
//     paired oldest first, so two commits in the same second go to the
//     two processes in start order. A failed `git commit` gets none.
//   - secret_scan: one span under agent_run at the end of the run, with
//     counts per rule and at most maxSecretLocations "file:line (rule)"
//     locations, and one secret_found alert (high) per listed location.
//     Never the secret itself.

const (
	commitSlack        = time.Second // clock skew between the sensors' timestamps and git's
	maxSecretLocations = 50          // agentwatch.secret.locations and secret_found alerts
)

// classifyExec names a new process span by its command's class, from the
// redacted argv (so packages and patterns never carry a credential).
func (r *Recorder) classifyExec(s *procSpan) {
	s.cls = classifyCommand(s.args)
	s.name = telemetry.SpanBashCommand
	if s.cls != nil {
		s.name = s.cls.class
	}
}

// resolveClasses runs at Finish, before spans are built: an indirect
// class gives way to a descendant of the same class (the process that is
// the tool), and commit spans get their SHAs.
func (r *Recorder) resolveClasses(end End) {
	byID := make(map[trace.SpanID]*procSpan, len(r.spans))
	for _, s := range r.spans {
		byID[s.id] = s
	}
	demoted := make(map[*procSpan]bool)
	for _, s := range r.spans {
		if s.cls == nil {
			continue
		}
		// Parents are always created before their children, so the walk
		// ends at the root.
		for p := byID[s.parent]; p != nil && !p.isRoot; p = byID[p.parent] {
			if p.cls != nil && p.cls.indirect && p.cls.class == s.cls.class {
				demoted[p] = true
			}
		}
	}
	for s := range demoted {
		s.cls = nil
		s.name = telemetry.SpanBashCommand
	}
	if end.Evidence != nil {
		r.matchCommits(append(slices.Clone(end.Evidence.Commits), end.Evidence.Abandoned...))
	}
}

// matchCommits pairs commit spans with the commits made during the run.
func (r *Recorder) matchCommits(commits []workspace.Commit) {
	if len(commits) == 0 {
		return
	}
	// Evidence lists newest first; equal times keep git's order reversed,
	// which is oldest first.
	slices.Reverse(commits)
	sort.SliceStable(commits, func(i, j int) bool { return commits[i].Time.Before(commits[j].Time) })
	var spans []*procSpan
	for _, s := range r.spans {
		if s.cls != nil && s.cls.class == telemetry.SpanCommit && s.exited && s.exitCode == 0 && s.signal == 0 {
			spans = append(spans, s)
		}
	}
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	used := make([]bool, len(commits))
	for _, s := range spans {
		lo := s.start.Truncate(time.Second).Add(-commitSlack)
		hi := s.end.Add(commitSlack)
		for i, c := range commits {
			if !used[i] && c.SHA != "" && !c.Time.Before(lo) && !c.Time.After(hi) {
				s.cls.sha, used[i] = c.SHA, true
				break
			}
		}
	}
}

// classAttrs are the class attributes of a process span.
func (r *Recorder) classAttrs(s *procSpan) []attribute.KeyValue {
	c := s.cls
	if c == nil {
		return nil
	}
	a := []attribute.KeyValue{
		telemetry.CommandClass.String(c.class),
		telemetry.CommandTool.String(c.tool),
	}
	switch c.class {
	case telemetry.SpanTestRun:
		if s.exited {
			outcome := "passed"
			if s.exitCode != 0 || s.signal != 0 {
				outcome = "failed"
			}
			a = append(a, telemetry.TestOutcome.String(outcome))
		}
		// TODO(full capture): agentwatch.test.passed/failed/skipped from
		// the command's output (go test -json, pytest's summary line, …)
		// once output is captured; metadata capture has none.
	case telemetry.SpanDependencyInstall:
		a = append(a, telemetry.DependencyManager.String(c.manager))
		if len(c.packages) > 0 {
			a = append(a, telemetry.DependencyPackages.StringSlice(c.packages))
		}
	case telemetry.SpanCommit:
		if c.sha != "" {
			a = append(a, telemetry.CommitSHA.String(c.sha))
		}
	case telemetry.SpanPullRequest:
		// agentwatch.pr.url: finishPR, from the output the supervisor
		// relays (gh's stdout itself goes to the agent, unseen).
	}
	return a
}

// finishClasses adds the secret_scan span and its alerts to the trace.
// It runs before finishPolicy, which places and counts the alerts.
func (r *Recorder) finishClasses(t *telemetry.Trace, end End) {
	res := end.SecretScan
	if res == nil {
		return
	}
	id, _ := r.nextSpanID()
	sp := r.span(id, r.root.id, telemetry.SpanSecretScan, telemetry.SpanSecretScan, telemetry.OIGuardrail,
		trace.SpanKindInternal, end.Time, end.Time)
	var locs, fps []string
	for _, f := range res.Findings {
		if len(locs) == maxSecretLocations {
			break
		}
		locs = append(locs, f.Location())
		fps = append(fps, f.Fingerprint)
		r.raise(id, end.Time, telemetry.AlertSecretFound, telemetry.SeverityHigh, f.Location()+" "+f.Fingerprint,
			"secret found: "+f.Location())
	}
	if more := res.Total - len(locs); more > 0 && len(locs) > 0 {
		r.raise(id, end.Time, telemetry.AlertSecretFound, telemetry.SeverityHigh, "more",
			fmt.Sprintf("%d more secret findings than listed", more))
	}
	sp.Attrs = append(sp.Attrs,
		telemetry.SecretFindings.Int(res.Total),
		telemetry.SecretUnique.Int(res.Unique()),
		telemetry.SecretRules.StringSlice(res.RuleCounts()),
		telemetry.SecretLocations.StringSlice(locs),
		telemetry.SecretFingerprints.StringSlice(fps),
		telemetry.SecretFilesScanned.Int(res.Files),
		telemetry.SecretLinesScanned.Int(res.Lines),
		telemetry.SecretBinarySkipped.Int(res.BinaryFiles),
		telemetry.SecretTruncated.Bool(res.Truncated || len(locs) < res.Total),
	)
	t.Spans = append(t.Spans, sp)
}

// SecretWrites lists the paths matching files.secrets that processes of
// the run wrote (created, changed, renamed) — what the supervisor scans
// with secretscan.ScanFile besides the diff, since such files (.env,
// credentials) are usually ignored by git or outside the workspace.
func (r *Recorder) SecretWrites() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.secretWrites()
}

func (r *Recorder) secretWrites() []string {
	seen := make(map[string]bool)
	var out []string
	note := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, s := range r.spans {
		for _, fs := range s.fileOrder {
			if fs.secret && !fs.read && fs.nOps > 0 {
				note(fs.path)
				if fs.renamedTo != "" && r.pol.IsSecret(fs.renamedTo, r.home) {
					note(fs.renamedTo)
				}
			}
		}
	}
	for p, fs := range r.fsw {
		if fs.nOps > 0 && r.pol.IsSecret(p, r.home) {
			note(p)
		}
	}
	sort.Strings(out)
	return out
}
