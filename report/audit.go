package report

import (
	"strconv"
	"strings"

	"github.com/agentwatch/agentwatch/telemetry"
)

// JSONAudit is the "audit" object of `show --json`: what connects the run
// to the delivery system — task, trace, base commit, commits, pull
// requests, CI run, reviewer decisions, failure class (derived and
// annotated), policy and capture settings. Field names are part of the
// CLI's interface; add, never rename.
type JSONAudit struct {
	TaskID        string       `json:"task_id,omitempty"`
	TaskURL       string       `json:"task_url,omitempty"`
	RunID         string       `json:"run_id"`
	TraceID       string       `json:"trace_id,omitempty"`
	Repository    string       `json:"repository,omitempty"`
	BaseCommit    string       `json:"base_commit,omitempty"`
	Commits       []string     `json:"commits"`
	PullRequests  []string     `json:"pull_requests"`
	CIRun         string       `json:"ci_run,omitempty"` // cicd.pipeline.run.id of the run itself
	CIRunURLs     []string     `json:"ci_run_urls"`      // from reviews
	FailureClass  string       `json:"failure_class,omitempty"`
	FailureReason string       `json:"failure_reason,omitempty"`
	Annotated     string       `json:"annotated_failure_class,omitempty"` // the latest review that set one
	TestsPassed   *bool        `json:"tests_passed,omitempty"`
	DiffRisk      *int64       `json:"diff_risk,omitempty"`
	SecurityScan  string       `json:"security_scan,omitempty"`
	PolicyVersion string       `json:"policy_version,omitempty"`
	PolicyMode    string       `json:"policy_mode,omitempty"`
	PolicySource  string       `json:"policy_source,omitempty"`
	Capture       string       `json:"capture,omitempty"`
	CaptureExpiry string       `json:"capture_expires,omitempty"`
	Reviews       []JSONReview `json:"reviews"`
}

// JSONReview is one `agentwatch annotate` decision, oldest first.
type JSONReview struct {
	Seq          int64  `json:"seq"`
	Time         string `json:"time"`
	Decision     string `json:"decision"`
	Reviewer     string `json:"reviewer"`
	FailureClass string `json:"failure_class,omitempty"`
	PRURL        string `json:"pr_url,omitempty"`
	CIRunURL     string `json:"ci_run_url,omitempty"`
	Note         string `json:"note,omitempty"`
}

// auditOf reads the audit trail from the root and the review and
// pull_request spans; nil for a trace without a root.
func auditOf(tr *telemetry.Trace) *JSONAudit {
	root := tr.Root()
	if root == nil {
		return nil
	}
	a := &JSONAudit{
		TaskID:        str(root, telemetry.TaskID),
		TaskURL:       str(root, telemetry.TaskURL),
		RunID:         tr.RunID,
		TraceID:       root.TraceID.String(),
		Repository:    str(root, telemetry.VCSRepositoryURLFull),
		BaseCommit:    str(root, telemetry.VCSRefHeadRevision),
		Commits:       nonNilList(strs(root, telemetry.Commits)),
		PullRequests:  []string{},
		CIRun:         str(root, telemetry.CICDPipelineRunID),
		CIRunURLs:     []string{},
		FailureClass:  str(root, telemetry.FailureClass),
		FailureReason: str(root, telemetry.FailureReason),
		SecurityScan:  str(root, telemetry.EvalSecurityScan),
		PolicyVersion: str(root, telemetry.PolicyVersion),
		PolicyMode:    str(root, telemetry.PolicyMode),
		PolicySource:  str(root, telemetry.PolicySource),
		Capture:       str(root, telemetry.CaptureContent),
		CaptureExpiry: str(root, telemetry.CaptureExpires),
		Reviews:       []JSONReview{},
	}
	if a.RunID == "" {
		a.RunID = str(root, telemetry.RunID)
	}
	if v, ok := root.Attr(telemetry.EvalTestsPassed); ok {
		b := v.AsBool()
		a.TestsPassed = &b
	}
	if v, ok := root.Attr(telemetry.EvalDiffRisk); ok {
		n := v.AsInt64()
		a.DiffRisk = &n
	}
	addOnce := func(list *[]string, v string) {
		if v != "" && !contains(*list, v) {
			*list = append(*list, v)
		}
	}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if fromAgent(s) {
			continue // the agent's claim, never the audit trail
		}
		typ := str(s, telemetry.SpanType)
		switch {
		case typ == telemetry.SpanPullRequest || s.Type() == telemetry.SpanPullRequest:
			addOnce(&a.PullRequests, str(s, telemetry.PRURL))
		case typ == telemetry.SpanReview && (tr.Reviewed(s) == root || s.TraceID == root.TraceID):
			rv := JSONReview{
				Time:         timestamp(s.Start),
				Decision:     str(s, telemetry.ReviewDecision),
				Reviewer:     str(s, telemetry.ReviewReviewer),
				FailureClass: str(s, telemetry.FailureClass),
				PRURL:        str(s, telemetry.PRURL),
				CIRunURL:     str(s, telemetry.CICDRunURL),
				Note:         str(s, telemetry.ReviewNote),
			}
			if v, ok := s.Attr(telemetry.ReviewSeq); ok {
				rv.Seq = v.AsInt64()
			}
			a.Reviews = append(a.Reviews, rv)
		}
	}
	// Reviews in the order they were made, whatever order the spans came in.
	for i := 1; i < len(a.Reviews); i++ {
		for j := i; j > 0 && a.Reviews[j].Seq < a.Reviews[j-1].Seq; j-- {
			a.Reviews[j], a.Reviews[j-1] = a.Reviews[j-1], a.Reviews[j]
		}
	}
	for _, rv := range a.Reviews {
		addOnce(&a.PullRequests, rv.PRURL)
		addOnce(&a.CIRunURLs, rv.CIRunURL)
		if rv.FailureClass != "" {
			a.Annotated = rv.FailureClass
		}
	}
	return a
}

// fromAgent reports whether the agent exported s itself: its claim, which
// no evidence, audit or alert is read from, whatever it says it is.
func fromAgent(s *telemetry.Span) bool {
	return str(s, telemetry.SpanSource) == telemetry.SourceAgent || str(s, telemetry.SpanType) == telemetry.SpanAgent
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// writeAudit prints the audit trail block of `show`.
func writeAudit(w *errWriter, tr *telemetry.Trace) {
	a := auditOf(tr)
	if a == nil || (a.FailureClass == "" && a.TaskID == "" && len(a.Reviews) == 0) {
		return // recorded before the audit trail existed: nothing to add to the header
	}
	row := func(label, value string) {
		if value == "" {
			value = "-"
		}
		w.printf("  %-14s %s\n", label, value)
	}
	w.printf("\nAudit trail\n")
	task := a.TaskID
	if a.TaskURL != "" {
		task = strings.TrimSpace(task + " " + a.TaskURL)
	}
	row("Task", task) // the run and trace ids are in the header above
	row("Base commit", a.BaseCommit)
	row("Commits", strings.Join(a.Commits, ", "))
	row("Pull request", strings.Join(a.PullRequests, ", "))
	ci := a.CIRun
	for _, u := range a.CIRunURLs {
		ci = strings.TrimSpace(strings.TrimPrefix(ci+", "+u, ", "))
	}
	row("CI run", ci)
	failure := a.FailureClass
	if a.FailureReason != "" {
		failure += " (" + a.FailureReason + ")"
	}
	row("Failure", failure)
	if a.Annotated != "" {
		row("Annotated as", a.Annotated)
	}
	var evals []string
	if a.TestsPassed != nil {
		evals = append(evals, "tests passed: "+boolWord(*a.TestsPassed))
	}
	if a.DiffRisk != nil {
		evals = append(evals, "diff risk: "+itoa(*a.DiffRisk)+"/100")
	}
	if a.SecurityScan != "" {
		evals = append(evals, "security scan: "+a.SecurityScan)
	}
	row("Evals", strings.Join(evals, "; "))
	pol := a.PolicyMode
	if a.PolicyVersion != "" {
		pol = strings.TrimSpace(pol + ", version " + a.PolicyVersion)
	}
	if a.PolicySource != "" {
		pol += " (" + a.PolicySource + ")"
	}
	row("Policy", pol)
	capture := a.Capture
	if a.CaptureExpiry != "" {
		capture += " until " + a.CaptureExpiry
	}
	row("Capture", capture)
	if len(a.Reviews) == 0 {
		row("Review", "none (agentwatch annotate RUN --review approved|rejected --reviewer NAME)")
		return
	}
	for _, rv := range a.Reviews {
		line := rv.Decision + " by " + rv.Reviewer + " at " + rv.Time
		if rv.FailureClass != "" {
			line += ", failure class " + rv.FailureClass
		}
		if rv.Note != "" {
			line += `: "` + shorten(rv.Note, CommandWidth) + `"`
		}
		row("Review "+itoa(rv.Seq), line)
	}
}

func boolWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
