package store

import (
	"cmp"
	"github.com/agentwatch/agentwatch/fileclass"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// Facts is what the fleet questions need of one run, as columns beside its
// trace (table run_facts and its children, facts_sql.go): computed once when
// the run is saved (or annotated, or backfilled when an old store is first
// opened), so that questions over thousands of runs never decode a trace.
type Facts struct {
	RunID       string            `json:"run_id"`
	Start       time.Time         `json:"start"`
	End         time.Time         `json:"end"`
	Status      Status            `json:"status"`               // complete, interrupted, saved_late
	Agent       string            `json:"agent,omitempty"`      // gen_ai.agent.name
	Command     string            `json:"command,omitempty"`    // the root's command line
	User        string            `json:"user,omitempty"`       // agentwatch.run.user (show it only behind an explicit flag)
	Host        string            `json:"host,omitempty"`       // host.name on the root, else on the resource
	ExitCode    int               `json:"exit_code"`            // -1 when unknown
	Repo        string            `json:"repo,omitempty"`       // NormalizeRepo of the repository URL ("acme/api"), else vcs.repository.name
	RepoURL     string            `json:"repo_url,omitempty"`   // vcs.repository.url.full as recorded
	Branch      string            `json:"branch,omitempty"`     // vcs.ref.head.name
	BaseSHA     string            `json:"base_sha,omitempty"`   // vcs.ref.head.revision: the commit the run started from
	SessionID   string            `json:"session_id,omitempty"` // the agent's session; the run id when nothing better is known
	Task        string            `json:"task,omitempty"`       // agentwatch.task.id, else agentwatch.task.url
	Team        string            `json:"team,omitempty"`       // label "team"
	Org         string            `json:"org,omitempty"`        // label "org"
	Labels      map[string]string `json:"labels,omitempty"`     // every agentwatch.label.* of the root, prefix stripped
	CIRunURL    string            `json:"ci_run_url,omitempty"` // cicd.pipeline.run.url.full of the root, else the latest annotation's
	CIRunID     string            `json:"ci_run_id,omitempty"`  // cicd.pipeline.run.id
	PRURL       string            `json:"pr_url,omitempty"`     // agentwatch.pr.url / vcs.change.id of the root or a pull_request span, else the latest annotation's
	Environment string            `json:"environment"`          // "ci" when the root carries a CI run id or URL, else "local"

	Model    string `json:"model,omitempty"`    // the model of most model calls ("" without any)
	Provider string `json:"provider,omitempty"` // gen_ai.provider.name of those calls

	CostUSD          float64 `json:"cost_usd"`
	HasCost          bool    `json:"has_cost"` // the root carries agentwatch.cost.usd
	InputTokens      int64   `json:"input_tokens"`
	OutputTokens     int64   `json:"output_tokens"`
	CacheReadTokens  int64   `json:"cache_read_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	ReasoningTokens  int64   `json:"reasoning_tokens"`
	HasTokens        bool    `json:"has_tokens"` // the root carries input and output totals
	LLMCalls         int     `json:"llm_calls"`
	LLMCallsUnpriced int     `json:"llm_calls_unpriced"`

	RetryCalls       int     `json:"retry_calls"`        // the root's agentwatch.llm.retry.calls (older runs: model calls with agentwatch.llm.repeat > 0)
	RetryWasteTokens int64   `json:"retry_waste_tokens"` // agentwatch.llm.retry.wasted_tokens (older runs: the repeats' input+output tokens)
	RetryWasteUSD    float64 `json:"retry_waste_usd"`    // agentwatch.llm.retry.wasted_usd (older runs: the repeats' cost)
	RetryCommands    int     `json:"retry_commands"`     // alerts retries_without_progress and denied_loop

	FailureClass       string `json:"failure_class,omitempty"`        // agentwatch.failure.class of the root
	ReviewFailureClass string `json:"review_failure_class,omitempty"` // the latest annotation that named one (not in FailureClass)

	TestRuns       int    `json:"test_runs"` // test_run spans
	TestRunsPassed int    `json:"test_runs_passed"`
	TestRunsFailed int    `json:"test_runs_failed"`
	SecretScan     string `json:"secret_scan,omitempty"` // agentwatch.eval.security_scan: clean, findings:N, not_run
	SecretFindings int    `json:"secret_findings"`
	Review         string `json:"review,omitempty"` // the latest annotation's decision
	Reviewer       string `json:"reviewer,omitempty"`

	// Workspace files changed, per class (ChangeClasses): file spans in
	// the workspace and the root's workspace evidence, each path once.
	ChangedCode      int      `json:"changed_code"`
	ChangedTests     int      `json:"changed_tests"`
	ChangedDeps      int      `json:"changed_deps"`
	ChangedWorkflows int      `json:"changed_workflows"`
	ChangedSecrets   int      `json:"changed_secrets"`
	ChangedConfig    int      `json:"changed_config"`
	ChangedDocs      int      `json:"changed_docs"`
	ChangedPaths     []Change `json:"changed_paths,omitempty"` // sorted by path, at most MaxChangedPaths

	DiffFiles    int `json:"diff_files"` // the git_diff span
	LinesAdded   int `json:"lines_added"`
	LinesRemoved int `json:"lines_removed"`

	Alerts  []Alert  `json:"alerts,omitempty"`  // per rule, by rule
	Gaps    []string `json:"gaps,omitempty"`    // agentwatch.telemetry.gaps
	Missing []string `json:"missing,omitempty"` // of MissingFields (in that order), then "trace" when the trace could not be read
	Spans   int      `json:"spans"`
}

// Change is one workspace path a run changed, with its class: one of
// ChangeClasses, or "other".
type Change struct {
	Path  string `json:"path"`
	Class string `json:"class"`
}

// Alert is the alerts one rule raised in a run: how many, and the highest
// severity among them.
type Alert struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Count    int    `json:"count"`
}

// ChangeClasses are the classes of changed files Facts counts, the values
// of FactsFilter.Changed and of `runs --changed`. A Change's class is one of
// them or ChangeOther.
var ChangeClasses = []string{ChangeCode, ChangeTests, ChangeDeps, ChangeWorkflows, ChangeSecrets, ChangeConfig, ChangeDocs}

// Change classes.
const (
	ChangeCode      = "code"      // agentwatch.file.class source
	ChangeTests     = "tests"     // test
	ChangeDeps      = "deps"      // lockfile, and dependency manifests (package.json, go.mod, …)
	ChangeWorkflows = "workflows" // workflow
	ChangeSecrets   = "secrets"   // secret
	ChangeConfig    = "config"    // config
	ChangeDocs      = "docs"      // docs
	ChangeOther     = "other"     // other (generated files are not counted as changes)
)

// MaxChangedPaths bounds Facts.ChangedPaths; the per-class counts are not
// bounded.
const MaxChangedPaths = 200

// MissingFields is the fixed, ordered list of fields the fleet report
// checks each run for; Facts.Missing lists those a run lacks:
//
//	cost           no agentwatch.cost.usd on the root
//	tokens         no token totals on the root
//	model          no model call named a model
//	agent_spans    no span of type agent_span (the agent exported no spans of its own)
//	sensors        no ebpf among agentwatch.sensors, or a telemetry gap
//	base_sha       no vcs.ref.head.revision
//	repository     no repository URL or name
//	pr_link        no pull request, in the trace or an annotation
//	session_id     no session id: only the run id fell back
//	test_output    no test_run span
//	security_scan  the secret scan did not run (or says nothing)
//	review         no annotation with a decision
//	team           no "team" label
var MissingFields = []string{
	"cost", "tokens", "model", "agent_spans", "sensors", "base_sha", "repository",
	"pr_link", "session_id", "test_output", "security_scan", "review", "team",
}

// MissingTrace is added to Facts.Missing of a run whose stored trace could
// not be decoded: its facts are what the runs table knows.
const MissingTrace = "trace"

// ExtractFacts computes a run's facts from its trace, the status it was
// saved with and its annotations (oldest first, as Annotations returns
// them). It is pure: no I/O.
func ExtractFacts(tr *telemetry.Trace, st Status, anns []Annotation) Facts {
	p := traceFacts(tr, st)
	return p.finish(anns)
}

// partialFacts are a run's facts before its annotations are read: what the
// trace says, and what Missing needs that Facts does not keep.
type partialFacts struct {
	Facts
	hasAgentSpans  bool // a span of type agent_span
	sensorsMissing bool // no ebpf sensor, or a gap
	missingTrace   bool // the trace could not be read
}

// traceFacts is everything of Facts that the trace says; finish adds the
// annotations and computes Missing.
func traceFacts(tr *telemetry.Trace, st Status) partialFacts {
	p := partialFacts{Facts: Facts{RunID: tr.RunID, Status: st, ExitCode: -1, Spans: len(tr.Spans), Environment: "local"}}
	f := &p.Facts
	root := tr.Root()
	if root == nil {
		p.missingTrace, p.sensorsMissing = true, true
		if f.SessionID == "" {
			f.SessionID = f.RunID
		}
		return p
	}
	str := func(s *telemetry.Span, k attribute.Key) string {
		if v, ok := s.Attr(k); ok {
			return v.Emit()
		}
		return ""
	}
	resource := func(k attribute.Key) string {
		for _, kv := range tr.Resource {
			if kv.Key == k {
				return kv.Value.Emit()
			}
		}
		return ""
	}
	if f.RunID == "" {
		f.RunID = str(root, telemetry.RunID)
	}
	f.Start, f.End = root.Start, root.End
	f.Agent = str(root, telemetry.GenAIAgentName)
	f.Command = root.CommandLine()
	f.User = str(root, telemetry.RunUser)
	if f.Host = str(root, telemetry.HostName); f.Host == "" {
		f.Host = resource(telemetry.HostName)
	}
	if v, ok := root.Attr(telemetry.ProcessExitCode); ok {
		f.ExitCode = int(v.AsInt64())
	}
	if f.RepoURL = str(root, telemetry.VCSRepositoryURLFull); f.RepoURL == "" {
		f.RepoURL = resource(telemetry.VCSRepositoryURLFull)
	}
	if f.Repo = NormalizeRepo(f.RepoURL); f.Repo == "" {
		name := str(root, telemetry.VCSRepositoryName)
		if name == "" {
			name = resource(telemetry.VCSRepositoryName)
		}
		f.Repo = strings.ToLower(strings.TrimSpace(name))
	}
	f.Branch = str(root, telemetry.VCSRefHeadName)
	f.BaseSHA = str(root, telemetry.VCSRefHeadRevision)
	if f.Task = str(root, telemetry.TaskID); f.Task == "" {
		f.Task = str(root, telemetry.TaskURL)
	}
	for _, kv := range root.Attrs {
		if k, ok := strings.CutPrefix(string(kv.Key), telemetry.LabelPrefix); ok && k != "" {
			if f.Labels == nil {
				f.Labels = map[string]string{}
			}
			f.Labels[k] = kv.Value.Emit()
		}
	}
	f.Team, f.Org = f.Labels["team"], f.Labels["org"]
	f.CIRunURL = str(root, telemetry.CICDRunURL)
	f.CIRunID = str(root, telemetry.CICDPipelineRunID)
	if f.CIRunURL != "" || f.CIRunID != "" {
		f.Environment = "ci"
	}
	if f.PRURL = str(root, telemetry.PRURL); f.PRURL == "" {
		f.PRURL = str(root, telemetry.VCSChangeID)
	}
	if v, ok := root.Attr(telemetry.CostUSD); ok {
		f.CostUSD, f.HasCost = v.AsFloat64(), true
	}
	in, okIn := root.Attr(telemetry.GenAIUsageInputTokens)
	out, okOut := root.Attr(telemetry.GenAIUsageOutputTokens)
	if okIn && okOut {
		f.InputTokens, f.OutputTokens, f.HasTokens = in.AsInt64(), out.AsInt64(), true
	}
	f.FailureClass = str(root, telemetry.FailureClass)
	f.SecretScan = str(root, telemetry.EvalSecurityScan)
	if n, ok := strings.CutPrefix(f.SecretScan, "findings:"); ok {
		f.SecretFindings, _ = strconv.Atoi(n)
	}
	if v, ok := root.Attr(telemetry.TelemetryGaps); ok {
		f.Gaps = nonEmpty(v.AsStringSlice())
		for i, g := range f.Gaps {
			f.Gaps[i] = strings.ReplaceAll(g, "\n", " ") // one line each: run_facts.gaps is newline-separated
		}
	}
	ebpf := false
	if v, ok := root.Attr(telemetry.Sensors); ok {
		ebpf = slices.Contains(v.AsStringSlice(), "ebpf")
	}
	p.sensorsMissing = !ebpf || len(f.Gaps) > 0

	ws := strings.TrimRight(str(root, telemetry.Workspace), "/")
	changes := map[string]string{} // path -> class
	var (
		models                     = map[string]int{}
		modelOrder                 []string
		providerOf                 = map[string]string{}
		cacheRead, cacheWrite, rsn int64
		agentSession, llmSession   string
		alerts                           = map[string]*Alert{}
		secretSpanFindings               = -1
		reviewSeq                  int64 = -1
	)
	for i := range tr.Spans {
		s := &tr.Spans[i]
		for _, e := range s.Events {
			if e.Name == telemetry.EventAlert && !fromAgent(s) {
				addAlert(alerts, eventStr(e.Attrs, telemetry.AlertRule), eventStr(e.Attrs, telemetry.AlertSeverity))
			}
		}
		if s == root {
			continue
		}
		typ := s.Type()
		if fromAgent(s) {
			p.hasAgentSpans = true
			if agentSession == "" {
				if agentSession = str(s, telemetry.SessionID); agentSession == "" {
					agentSession = str(s, telemetry.GenAIConversationID)
				}
			}
			continue // the agent's claim: never evidence
		}
		if rule := str(s, telemetry.AlertRule); rule != "" {
			addAlert(alerts, rule, str(s, telemetry.AlertSeverity))
		}
		switch typ {
		case telemetry.SpanLLMCall:
			f.LLMCalls++
			model := str(s, telemetry.GenAIResponseModel)
			if model == "" {
				model = str(s, telemetry.GenAIRequestModel)
			}
			if model != "" {
				if models[model] == 0 {
					modelOrder = append(modelOrder, model)
				}
				models[model]++
				if providerOf[model] == "" {
					providerOf[model] = str(s, telemetry.GenAIProviderName)
				}
			}
			if llmSession == "" {
				llmSession = str(s, telemetry.GenAIConversationID)
			}
			cost, priced := s.Attr(telemetry.CostUSD)
			if !priced {
				f.LLMCallsUnpriced++
			}
			cacheRead += intAttr(s, telemetry.GenAIUsageCacheReadTokens)
			cacheWrite += intAttr(s, telemetry.GenAIUsageCacheCreateTokens)
			rsn += intAttr(s, telemetry.GenAIUsageReasoningTokens)
			if intAttr(s, telemetry.LLMRepeat) > 0 {
				f.RetryCalls++
				f.RetryWasteTokens += intAttr(s, telemetry.GenAIUsageInputTokens) + intAttr(s, telemetry.GenAIUsageOutputTokens)
				if priced {
					f.RetryWasteUSD += cost.AsFloat64()
				}
			}
		case telemetry.SpanTestRun:
			f.TestRuns++
			switch str(s, telemetry.TestOutcome) {
			case "passed":
				f.TestRunsPassed++
			case "failed":
				f.TestRunsFailed++
			}
		case telemetry.SpanPullRequest:
			if f.PRURL == "" {
				if f.PRURL = str(s, telemetry.PRURL); f.PRURL == "" {
					f.PRURL = str(s, telemetry.VCSChangeID)
				}
			}
		case telemetry.SpanSecretScan:
			if v, ok := s.Attr(telemetry.SecretFindings); ok {
				secretSpanFindings = int(v.AsInt64())
			}
		case telemetry.SpanGitDiff:
			f.DiffFiles = int(intAttr(s, telemetry.DiffFiles))
			f.LinesAdded = int(intAttr(s, telemetry.DiffLinesAdded))
			f.LinesRemoved = int(intAttr(s, telemetry.DiffLinesRemoved))
		case telemetry.SpanFileWrite:
			if v, ok := s.Attr(telemetry.FileInWorkspace); !ok || !v.AsBool() {
				continue
			}
			if _, ok := s.Attr(telemetry.FileOperationsCount); ok && intAttr(s, telemetry.FileOperationsCount) == 0 {
				continue // only refused attempts: nothing changed
			}
			for _, p := range []string{str(s, telemetry.FilePath), str(s, telemetry.FileRenamedTo)} {
				rel, ok := workspaceRel(p, ws)
				if !ok {
					continue
				}
				cls := str(s, telemetry.FileClass)
				if p != str(s, telemetry.FilePath) || cls == "" {
					cls = classifyRel(rel) // a rename's target is classed by its own name
				}
				addChange(changes, rel, changeClass(rel, cls))
			}
		case telemetry.SpanReview:
			if d := str(s, telemetry.ReviewDecision); d != "" && intAttr(s, telemetry.ReviewSeq) > reviewSeq {
				reviewSeq = intAttr(s, telemetry.ReviewSeq)
				f.Review, f.Reviewer = d, str(s, telemetry.ReviewReviewer)
			}
		}
	}
	// Workspace evidence: what git shows changed, whether or not a sensor
	// saw it (a change made outside the run still counts).
	for _, k := range []attribute.Key{telemetry.FilesTouched, telemetry.FilesDeleted, telemetry.LockfilesChanged, telemetry.WorkflowsChanged} {
		v, ok := root.Attr(k)
		if !ok {
			continue
		}
		for _, p := range v.AsStringSlice() {
			rel := strings.TrimPrefix(path.Clean("/"+p), "/")
			if rel == "" || rel == "." {
				continue
			}
			cls := classifyRel(rel)
			switch k {
			case telemetry.LockfilesChanged:
				cls = fileclass.Lockfile
			case telemetry.WorkflowsChanged:
				cls = fileclass.Workflow
			}
			addChange(changes, rel, changeClass(rel, cls))
		}
	}
	for p, cls := range changes {
		switch cls {
		case ChangeCode:
			f.ChangedCode++
		case ChangeTests:
			f.ChangedTests++
		case ChangeDeps:
			f.ChangedDeps++
		case ChangeWorkflows:
			f.ChangedWorkflows++
		case ChangeSecrets:
			f.ChangedSecrets++
		case ChangeConfig:
			f.ChangedConfig++
		case ChangeDocs:
			f.ChangedDocs++
		case "":
			continue // generated: not a change anyone reviews
		}
		f.ChangedPaths = append(f.ChangedPaths, Change{Path: p, Class: cls})
	}
	slices.SortFunc(f.ChangedPaths, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	if len(f.ChangedPaths) > MaxChangedPaths {
		f.ChangedPaths = f.ChangedPaths[:MaxChangedPaths:MaxChangedPaths]
	}

	best := 0
	for _, m := range modelOrder { // most calls; the first seen on a tie
		if models[m] > best {
			f.Model, best = m, models[m]
		}
	}
	f.Provider = providerOf[f.Model]
	f.CacheReadTokens = rootOr(root, telemetry.GenAIUsageCacheReadTokens, cacheRead)
	f.CacheWriteTokens = rootOr(root, telemetry.GenAIUsageCacheCreateTokens, cacheWrite)
	f.ReasoningTokens = rootOr(root, telemetry.GenAIUsageReasoningTokens, rsn)
	// The recorder's own retry accounting, where the run has it (runs
	// recorded since it): every retried attempt's waste counted once,
	// failed attempts included; older runs keep the sum over repeats.
	if _, ok := root.Attr(telemetry.LLMRetryCalls); ok {
		f.RetryCalls = int(intAttr(root, telemetry.LLMRetryCalls))
		f.RetryWasteTokens = intAttr(root, telemetry.LLMRetryWastedTokens)
		if v, ok := root.Attr(telemetry.LLMRetryWastedUSD); ok {
			f.RetryWasteUSD = v.AsFloat64()
		}
	}
	if f.SecretFindings == 0 && secretSpanFindings > 0 {
		f.SecretFindings = secretSpanFindings
	}

	for _, a := range alerts {
		f.Alerts = append(f.Alerts, *a)
		if a.Rule == telemetry.AlertRetries || a.Rule == telemetry.AlertDeniedLoop {
			f.RetryCommands += a.Count
		}
	}
	slices.SortFunc(f.Alerts, func(a, b Alert) int { return strings.Compare(a.Rule, b.Rule) })

	switch {
	case llmSession != "":
		f.SessionID = llmSession
	case agentSession != "":
		f.SessionID = agentSession
	default:
		if f.SessionID = str(root, telemetry.GenAIConversationID); f.SessionID == "" {
			f.SessionID = str(root, telemetry.SessionID)
		}
	}
	if f.SessionID == "" {
		f.SessionID = f.RunID
	}
	return p
}

// finish adds what the annotations say (review, and the PR and CI run
// when the trace names none) and computes Missing.
func (p partialFacts) finish(anns []Annotation) Facts {
	f := p.Facts
	f.Labels = maps.Clone(f.Labels)
	f.ChangedPaths = slices.Clone(f.ChangedPaths)
	f.Alerts = slices.Clone(f.Alerts)
	f.Gaps = slices.Clone(f.Gaps)
	latest := func(get func(Annotation) string) string {
		best, seq := "", -1
		for _, a := range anns {
			if v := get(a); v != "" && a.Seq >= seq {
				best, seq = v, a.Seq
			}
		}
		return best
	}
	var last *Annotation
	for i := range anns {
		if anns[i].Review != "" && (last == nil || anns[i].Seq >= last.Seq) {
			last = &anns[i]
		}
	}
	if last != nil {
		f.Review, f.Reviewer = last.Review, last.Reviewer
	}
	if f.PRURL == "" {
		f.PRURL = latest(func(a Annotation) string { return a.PRURL })
	}
	if f.CIRunURL == "" {
		f.CIRunURL = latest(func(a Annotation) string { return a.CIRunURL })
	}
	f.ReviewFailureClass = latest(func(a Annotation) string { return a.FailureClass })

	f.Missing = nil
	for _, m := range MissingFields {
		var missing bool
		switch m {
		case "cost":
			missing = !f.HasCost
		case "tokens":
			missing = !f.HasTokens
		case "model":
			missing = f.Model == ""
		case "agent_spans":
			missing = !p.hasAgentSpans
		case "sensors":
			missing = p.sensorsMissing
		case "base_sha":
			missing = f.BaseSHA == ""
		case "repository":
			missing = f.Repo == ""
		case "pr_link":
			missing = f.PRURL == ""
		case "session_id":
			missing = f.SessionID == "" || f.SessionID == f.RunID
		case "test_output":
			missing = f.TestRuns == 0
		case "security_scan":
			missing = f.SecretScan == "" || f.SecretScan == "not_run"
		case "review":
			missing = f.Review == ""
		case "team":
			missing = f.Team == ""
		}
		if missing {
			f.Missing = append(f.Missing, m)
		}
	}
	if p.missingTrace {
		f.Missing = append(f.Missing, MissingTrace)
	}
	return f
}

// runFacts are the facts of a run whose trace cannot be read: what the
// runs table knows, with "trace" missing.
func runFacts(r Run, anns []Annotation) Facts {
	p := partialFacts{Facts: Facts{
		RunID: r.ID, Start: r.Start, End: r.End, Status: r.Status, Agent: r.Agent, Command: r.Command,
		ExitCode: r.ExitCode, Spans: r.Spans, Environment: "local", SessionID: r.ID,
		CostUSD: r.CostUSD, HasCost: r.HasCost, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens, HasTokens: r.HasTokens,
	}, sensorsMissing: true, missingTrace: true}
	if p.Status == "" {
		p.Status = StatusComplete
	}
	return p.finish(anns)
}

// NormalizeRepo turns a repository URL into its owner/name path, lower
// case: https://github.com/Acme/API.git, ssh://git@github.com:22/acme/api,
// git@github.com:acme/api.git and github.com/acme/api/ are all "acme/api";
// a GitLab subgroup keeps its groups ("group/sub/project"). A local path
// (/srv/git/acme/api, file:///srv/git/acme/api) keeps its last two
// segments. A bare owner/name is returned as is, lower case.
func NormalizeRepo(url string) string {
	u := strings.TrimSpace(url)
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	hosted := false
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		if strings.HasPrefix(u, "/") { // file:///path: no host
			return lastTwo(u)
		}
		hosted = true
	}
	if hosted {
		host, rest, _ := strings.Cut(u, "/")
		_ = host // user@host:port
		u = rest
	} else if !strings.HasPrefix(u, "/") {
		first, _, _ := strings.Cut(u, "/")
		if i := strings.Index(first, ":"); i >= 0 { // scp-like: [user@]host:path
			u = u[i+1:]
			u = strings.TrimPrefix(u, "~")
		} else if strings.Contains(first, ".") && strings.Count(u, "/") >= 2 { // host/owner/name
			_, u, _ = strings.Cut(u, "/")
		} else if at := strings.LastIndex(first, "@"); at >= 0 {
			u = u[at+1:]
		}
	} else {
		return lastTwo(u)
	}
	u = trimRepo(u)
	return strings.ToLower(u)
}

func trimRepo(u string) string {
	for {
		n := len(u)
		u = strings.Trim(u, "/")
		u = strings.TrimSuffix(u, ".git")
		if len(u) == n {
			return u
		}
	}
}

func lastTwo(p string) string {
	p = trimRepo(p)
	parts := strings.Split(p, "/")
	if len(parts) > 2 {
		parts = parts[len(parts)-2:]
	}
	return strings.ToLower(strings.Join(parts, "/"))
}

func addAlert(m map[string]*Alert, rule, sev string) {
	if rule == "" {
		return
	}
	a := m[rule]
	if a == nil {
		a = &Alert{Rule: rule}
		m[rule] = a
	}
	a.Count++
	if a.Severity == "" || telemetry.SeverityRank(sev) < telemetry.SeverityRank(a.Severity) {
		a.Severity = sev
	}
}

// addChange records rel's class; a path seen twice keeps the class that
// says most (a file span's secret over the evidence's config).
func addChange(m map[string]string, rel, cls string) {
	old, seen := m[rel]
	if !seen || changeRank(cls) < changeRank(old) {
		m[rel] = cls
	}
}

func changeRank(c string) int {
	if i := slices.Index(ChangeClasses, c); i >= 0 {
		// secrets and workflows say most, then deps, tests, code, config, docs
		return []int{4, 3, 2, 1, 0, 5, 6}[i]
	}
	if c == ChangeOther {
		return 7
	}
	return 8 // generated
}

func workspaceRel(p, ws string) (string, bool) {
	if p == "" {
		return "", false
	}
	if ws == "" {
		return strings.TrimPrefix(path.Clean(p), "/"), true
	}
	rel, ok := strings.CutPrefix(path.Clean(p), ws+"/")
	return rel, ok && rel != ""
}

func fromAgent(s *telemetry.Span) bool {
	if v, ok := s.Attr(telemetry.SpanSource); ok && v.AsString() == telemetry.SourceAgent {
		return true
	}
	return s.Type() == telemetry.SpanAgent
}

func eventStr(attrs []attribute.KeyValue, k attribute.Key) string {
	for _, kv := range attrs {
		if kv.Key == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

func intAttr(s *telemetry.Span, k attribute.Key) int64 {
	v, ok := s.Attr(k)
	if !ok {
		return 0
	}
	switch v.Type() {
	case attribute.INT64:
		return v.AsInt64()
	case attribute.FLOAT64:
		return int64(v.AsFloat64())
	case attribute.STRING:
		n, _ := strconv.ParseInt(v.AsString(), 10, 64)
		return n
	}
	return 0
}

func rootOr(root *telemetry.Span, k attribute.Key, sum int64) int64 {
	if _, ok := root.Attr(k); ok {
		return intAttr(root, k)
	}
	return sum
}

func nonEmpty(list []string) []string {
	out := list[:0:0]
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// sortMissing orders fields as MissingFields, "trace" and unknown ones
// after.
func sortMissing(fields []string) {
	rank := func(f string) int {
		if i := slices.Index(MissingFields, f); i >= 0 {
			return i
		}
		return len(MissingFields)
	}
	slices.SortStableFunc(fields, func(a, b string) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}
