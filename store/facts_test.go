package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func TestNormalizeRepo(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/acme/api":              "acme/api",
		"https://github.com/acme/api.git":          "acme/api",
		"https://github.com/acme/api/":             "acme/api",
		"https://github.com/Acme/API.git/":         "acme/api",
		"https://github.com/acme/api?x=1#readme":   "acme/api",
		"http://user:token@github.com/acme/api":    "acme/api",
		"git://github.com/acme/api":                "acme/api",
		"ssh://git@github.com/acme/api.git":        "acme/api",
		"ssh://git@github.com:22/acme/api.git":     "acme/api",
		"git@github.com:acme/api.git":              "acme/api",
		"git@github.com:acme/api":                  "acme/api",
		"git@github.com:acme/api.git/":             "acme/api",
		"github.com:acme/api.git":                  "acme/api",
		"git@host:~acme/api.git":                   "acme/api",
		"https://gitlab.com/group/sub/project.git": "group/sub/project",
		"github.com/acme/api":                      "acme/api",
		"acme/api":                                 "acme/api",
		"Acme/API":                                 "acme/api",
		"file:///srv/git/acme/api.git":             "acme/api",
		"/srv/git/acme/api":                        "acme/api",
		"/srv/git/acme/api.git/":                   "acme/api",
		"":                                         "",
		"  https://github.com/acme/api  ":          "acme/api",
	} {
		if got := store.NormalizeRepo(in); got != want {
			t.Errorf("NormalizeRepo(%q) = %q, want %q", in, got, want)
		}
	}
}

// spanOf builds a child span of the root of type typ.
func spanOf(n byte, typ string, start time.Time, attrs ...attribute.KeyValue) telemetry.Span {
	return telemetry.Span{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{0xee, n}, ParentID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		Name: typ, Start: start, End: start.Add(time.Second),
		Attrs: append([]attribute.KeyValue{telemetry.SpanType.String(typ)}, attrs...),
	}
}

func alertEvent(rule, sev string) telemetry.SpanEvent {
	return telemetry.SpanEvent{Name: telemetry.EventAlert, Attrs: []attribute.KeyValue{
		telemetry.AlertRule.String(rule), telemetry.AlertSeverity.String(sev), telemetry.AlertMessage.String("m"),
	}}
}

func fileSpan(n byte, path, class string, inWS bool, extra ...attribute.KeyValue) telemetry.Span {
	sp := spanOf(n, telemetry.SpanFileWrite, base,
		telemetry.FilePath.String(path), telemetry.FileClass.String(class), telemetry.FileInWorkspace.Bool(inWS),
		telemetry.FileOperationsCount.Int(1))
	for _, kv := range extra {
		sp.SetAttr(kv)
	}
	return sp
}

// richTrace is a run with every fact set: the trace of TestExtractFacts.
func richTrace(id string, start time.Time) *telemetry.Trace {
	tr := runTrace(id, start, 1,
		telemetry.RunUser.String("ana"),
		telemetry.HostName.String("build-7"),
		telemetry.VCSRepositoryURLFull.String("git@github.com:Acme/API.git"),
		telemetry.VCSRepositoryName.String("API"),
		telemetry.VCSRefHeadName.String("fix/flaky"),
		telemetry.VCSRefHeadRevision.String("abc123"),
		telemetry.SessionID.String(id),
		telemetry.TaskID.String("ENG-42"),
		telemetry.TaskURL.String("https://jira/ENG-42"),
		attribute.String(telemetry.LabelPrefix+"team", "payments"),
		attribute.String(telemetry.LabelPrefix+"org", "acme"),
		attribute.String(telemetry.LabelPrefix+"env", "prod"),
		telemetry.CICDPipelineRunID.String("991"),
		telemetry.CICDRunURL.String("https://ci.example/run/991"),
		telemetry.CostUSD.Float64(0.42),
		telemetry.GenAIUsageInputTokens.Int64(1000),
		telemetry.GenAIUsageOutputTokens.Int64(200),
		telemetry.FailureClass.String(telemetry.FailureTestFailure),
		telemetry.EvalSecurityScan.String("findings:2"),
		telemetry.TelemetryGaps.StringSlice([]string{}),
		telemetry.Sensors.StringSlice([]string{"ebpf", "fswatch"}),
		telemetry.Workspace.String("/w"),
		telemetry.FilesTouched.StringSlice([]string{"src/a.go", "src/a_test.go", "README.md", "config/app.yaml"}),
		telemetry.FilesDeleted.StringSlice([]string{}),
		telemetry.LockfilesChanged.StringSlice([]string{"go.sum"}),
		telemetry.WorkflowsChanged.StringSlice([]string{".github/workflows/ci.yml"}),
	)
	tr.Resource = append(tr.Resource, telemetry.HostName.String("resource-host"))
	tr.Spans[0].Events = append(tr.Spans[0].Events, alertEvent(telemetry.AlertUnattributed, telemetry.SeverityMedium))
	bash := &tr.Spans[1]
	bash.Events = append(bash.Events, alertEvent(telemetry.AlertRetries, telemetry.SeverityMedium), alertEvent(telemetry.AlertRetries, telemetry.SeverityMedium))
	at := start.Add(time.Second)
	llm := func(n byte, extra ...attribute.KeyValue) telemetry.Span {
		return spanOf(n, telemetry.SpanLLMCall, at, append([]attribute.KeyValue{telemetry.GenAIProviderName.String("anthropic")}, extra...)...)
	}
	agent := spanOf(20, telemetry.SpanAgent, at, telemetry.SpanSource.String(telemetry.SourceAgent),
		telemetry.SessionID.String("agent-session"), telemetry.PRURL.String("https://claimed/pr"))
	agent.Events = []telemetry.SpanEvent{alertEvent("claimed_rule", telemetry.SeverityHigh)}
	claimedTest := spanOf(21, telemetry.SpanTestRun, at, telemetry.SpanSource.String(telemetry.SourceAgent), telemetry.TestOutcome.String("passed"))
	net := spanOf(30, telemetry.SpanNetworkCall, at)
	net.Events = []telemetry.SpanEvent{alertEvent(telemetry.AlertDeniedLoop, telemetry.SeverityMedium)}
	scan := spanOf(31, telemetry.SpanSecretScan, at, telemetry.SecretFindings.Int(2))
	scan.Events = []telemetry.SpanEvent{alertEvent(telemetry.AlertSecretFound, telemetry.SeverityLow), alertEvent(telemetry.AlertSecretFound, telemetry.SeverityHigh)}
	tr.Spans = append(tr.Spans,
		agent, claimedTest, net, scan,
		llm(10, telemetry.GenAIResponseModel.String("claude-sonnet-4"), telemetry.GenAIRequestModel.String("claude-sonnet"),
			telemetry.GenAIConversationID.String("sess-1"), telemetry.CostUSD.Float64(0.1),
			telemetry.GenAIUsageInputTokens.Int64(300), telemetry.GenAIUsageOutputTokens.Int64(50),
			telemetry.GenAIUsageCacheReadTokens.Int64(100), telemetry.GenAIUsageCacheCreateTokens.Int64(10)),
		llm(11, telemetry.GenAIRequestModel.String("claude-sonnet-4"), telemetry.LLMRepeat.Int(1), telemetry.CostUSD.Float64(0.2),
			telemetry.GenAIConversationID.String("sess-2"),
			telemetry.GenAIUsageInputTokens.Int64(400), telemetry.GenAIUsageOutputTokens.Int64(60), telemetry.GenAIUsageCacheReadTokens.Int64(50)),
		llm(12, telemetry.GenAIResponseModel.String("claude-haiku"), telemetry.GenAIUsageReasoningTokens.Int64(7)),
		spanOf(40, telemetry.SpanTestRun, at, telemetry.TestOutcome.String("failed")),
		spanOf(41, telemetry.SpanTestRun, at, telemetry.TestOutcome.String("passed")),
		spanOf(42, telemetry.SpanTestRun, at, telemetry.TestOutcome.String("passed")),
		spanOf(43, telemetry.SpanPullRequest, at, telemetry.PRURL.String("https://github.com/acme/api/pull/7")),
		spanOf(44, telemetry.SpanGitDiff, at, telemetry.DiffFiles.Int(5), telemetry.DiffLinesAdded.Int(40), telemetry.DiffLinesRemoved.Int(3)),
		fileSpan(50, "/w/src/a.go", "source", true),
		fileSpan(51, "/w/go.mod", "config", true),
		fileSpan(52, "/w/.env", "secret", true),
		fileSpan(53, "/tmp/outside.go", "source", false),
		fileSpan(54, "/w/node_modules/x/index.js", "generated", true),
		fileSpan(55, "/w/docs/guide.md", "docs", true),
		fileSpan(56, "/w/readonly.txt", "docs", true, telemetry.FileOperationsCount.Int(0), telemetry.FileFailures.Int(1)),
		fileSpan(57, "/w/old.py", "source", true, telemetry.FileRenamedTo.String("/w/pkg/new_test.py")),
	)
	return tr
}

// utc makes the times of f comparable with reflect.DeepEqual (the store
// reads them back in local time).
func utc(f store.Facts) store.Facts {
	f.Start, f.End = f.Start.UTC(), f.End.UTC()
	return f
}

func TestExtractFacts(t *testing.T) {
	tr := richTrace("20260301-120000-rich01", base)
	got := store.ExtractFacts(tr, store.StatusComplete, nil)
	want := store.Facts{
		RunID: "20260301-120000-rich01", Start: base, End: base.Add(3 * time.Second), Status: store.StatusComplete,
		Agent: "claude", Command: `claude -p "fix the flaky test"`, User: "ana", Host: "build-7", ExitCode: 1,
		Repo: "acme/api", RepoURL: "git@github.com:Acme/API.git", Branch: "fix/flaky", BaseSHA: "abc123",
		SessionID: "sess-1", Task: "ENG-42", Team: "payments", Org: "acme",
		Labels:   map[string]string{"team": "payments", "org": "acme", "env": "prod"},
		CIRunURL: "https://ci.example/run/991", CIRunID: "991", PRURL: "https://github.com/acme/api/pull/7", Environment: "ci",
		Model: "claude-sonnet-4", Provider: "anthropic",
		CostUSD: 0.42, HasCost: true, InputTokens: 1000, OutputTokens: 200, CacheReadTokens: 150, CacheWriteTokens: 10, ReasoningTokens: 7, HasTokens: true,
		LLMCalls: 3, LLMCallsUnpriced: 1,
		RetryCalls: 1, RetryWasteTokens: 460, RetryWasteUSD: 0.2, RetryCommands: 3,
		FailureClass: telemetry.FailureTestFailure,
		TestRuns:     3, TestRunsPassed: 2, TestRunsFailed: 1,
		SecretScan: "findings:2", SecretFindings: 2,
		ChangedCode: 2, ChangedTests: 2, ChangedDeps: 2, ChangedWorkflows: 1, ChangedSecrets: 1, ChangedConfig: 1, ChangedDocs: 2,
		ChangedPaths: []store.Change{
			{".env", "secrets"}, {".github/workflows/ci.yml", "workflows"}, {"README.md", "docs"}, {"config/app.yaml", "config"},
			{"docs/guide.md", "docs"}, {"go.mod", "deps"}, {"go.sum", "deps"}, {"old.py", "code"}, {"pkg/new_test.py", "tests"},
			{"src/a.go", "code"}, {"src/a_test.go", "tests"},
		},
		DiffFiles: 5, LinesAdded: 40, LinesRemoved: 3,
		Alerts: []store.Alert{
			{telemetry.AlertDeniedLoop, "medium", 1}, {telemetry.AlertRetries, "medium", 2},
			{telemetry.AlertSecretFound, "high", 2}, {telemetry.AlertUnattributed, "medium", 1},
		},
		Missing: []string{"review"},
		Spans:   len(tr.Spans),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ExtractFacts:\n got %+v\nwant %+v", got, want)
	}

	// Annotations: the latest decision; the trace's PR and CI run win over
	// theirs; the failure class a reviewer named is kept apart.
	anns := []store.Annotation{
		{Seq: 1, Review: "rejected", Reviewer: "bob", PRURL: "https://x/pr/1", CIRunURL: "https://ci/a", FailureClass: telemetry.FailureModelReasoning},
		{Seq: 2, Review: "approved", Reviewer: "ana"},
	}
	got = store.ExtractFacts(tr, store.StatusComplete, anns)
	if got.Review != "approved" || got.Reviewer != "ana" || got.PRURL != want.PRURL || got.CIRunURL != want.CIRunURL ||
		got.ReviewFailureClass != telemetry.FailureModelReasoning || got.FailureClass != telemetry.FailureTestFailure || got.Missing != nil {
		t.Errorf("annotated: review %s/%s pr %s ci %s failure %s/%s missing %v", got.Review, got.Reviewer, got.PRURL, got.CIRunURL,
			got.FailureClass, got.ReviewFailureClass, got.Missing)
	}
}

func TestExtractFactsFallbacks(t *testing.T) {
	// Nothing but a run: every field missing, the run id as session.
	bare := &telemetry.Trace{RunID: "bare", Spans: []telemetry.Span{{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Name: "agent_run",
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.SessionID.String("bare")}}}}
	f := store.ExtractFacts(bare, store.StatusInterrupted, nil)
	if !reflect.DeepEqual(f.Missing, store.MissingFields) {
		t.Errorf("bare run: missing %v, want all of %v", f.Missing, store.MissingFields)
	}
	if f.SessionID != "bare" || f.ExitCode != -1 || f.Environment != "local" || f.Status != store.StatusInterrupted || f.Repo != "" {
		t.Errorf("bare run: %+v", f)
	}

	// A gap makes the sensors missing even with eBPF; the repository
	// name stands in for its URL; the session of the agent's own spans
	// comes before the root's; the task URL stands in for its id; a PR
	// and a CI run come from the latest annotation naming one.
	tr := runTrace("fallbacks", base, 0,
		telemetry.Sensors.StringSlice([]string{"ebpf"}), telemetry.TelemetryGaps.StringSlice([]string{"fswatch: not running"}),
		telemetry.VCSRepositoryName.String("Tools"), telemetry.TaskURL.String("https://jira/1"), telemetry.SessionID.String("fallbacks"),
		telemetry.VCSChangeID.String(""))
	tr.Resource = append(tr.Resource, telemetry.HostName.String("resource-host"))
	tr.Spans = append(tr.Spans, spanOf(20, telemetry.SpanAgent, base, telemetry.SpanSource.String(telemetry.SourceAgent),
		telemetry.GenAIConversationID.String("conv-9")))
	f = store.ExtractFacts(tr, store.StatusComplete, []store.Annotation{
		{Seq: 1, PRURL: "https://x/pr/1", CIRunURL: "https://ci/1"},
		{Seq: 2, PRURL: "https://x/pr/2"},
		{Seq: 3, Note: "no links"},
	})
	if f.Repo != "tools" || f.Task != "https://jira/1" || f.SessionID != "conv-9" || f.Host != "resource-host" ||
		f.PRURL != "https://x/pr/2" || f.CIRunURL != "https://ci/1" || f.Environment != "local" || f.Review != "" {
		t.Errorf("fallbacks: %+v", f)
	}
	want := []string{"cost", "tokens", "model", "sensors", "base_sha", "test_output", "security_scan", "review", "team"}
	if !reflect.DeepEqual(f.Missing, want) {
		t.Errorf("fallbacks: missing %v, want %v", f.Missing, want)
	}
	if !reflect.DeepEqual(f.Gaps, []string{"fswatch: not running"}) {
		t.Errorf("gaps %v", f.Gaps)
	}

	// The evidence alone: a change no sensor saw still counts.
	ev := runTrace("evidence", base, 0, telemetry.FilesTouched.StringSlice([]string{"main.go", "deploy/.env.prod", "requirements-dev.txt", "build.gradle.kts"}),
		telemetry.EvalSecurityScan.String("not_run"))
	f = store.ExtractFacts(ev, store.StatusComplete, nil)
	wantPaths := []store.Change{{"build.gradle.kts", "deps"}, {"deploy/.env.prod", "secrets"}, {"main.go", "code"}, {"requirements-dev.txt", "deps"}}
	if f.ChangedCode != 1 || f.ChangedSecrets != 1 || f.ChangedDeps != 2 || !reflect.DeepEqual(f.ChangedPaths, wantPaths) {
		t.Errorf("evidence-only changes: code %d secrets %d deps %d paths %v", f.ChangedCode, f.ChangedSecrets, f.ChangedDeps, f.ChangedPaths)
	}
	if !strings.Contains(strings.Join(f.Missing, " "), "security_scan") {
		t.Errorf("not_run scan not missing: %v", f.Missing)
	}

	// ChangedPaths is capped; the counts are not.
	var many []string
	for i := range 250 {
		many = append(many, fmt.Sprintf("src/f%03d.go", i))
	}
	f = store.ExtractFacts(runTrace("many", base, 0, telemetry.FilesTouched.StringSlice(many)), store.StatusComplete, nil)
	if f.ChangedCode != 250 || len(f.ChangedPaths) != store.MaxChangedPaths || f.ChangedPaths[0].Path != "src/f000.go" {
		t.Errorf("250 changes: code %d, %d paths", f.ChangedCode, len(f.ChangedPaths))
	}
}

// filterRuns saves the runs of TestFactsFilter, oldest first.
func filterRuns(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	r1 := richTrace("r1", base) // acme/api payments acme claude sonnet test_failure; code tests deps …; retries
	r2 := runTrace("r2", base.Add(time.Hour), 0,
		telemetry.VCSRepositoryURLFull.String("https://github.com/acme/web"),
		attribute.String(telemetry.LabelPrefix+"team", "search"), attribute.String(telemetry.LabelPrefix+"org", "acme"),
		attribute.String(telemetry.LabelPrefix+"env", "dev"),
		telemetry.FailureClass.String(telemetry.FailureNone),
		telemetry.PRURL.String("https://github.com/acme/web/pull/2"),
		telemetry.FilesTouched.StringSlice([]string{"docs/a.md"}))
	r2.Spans[0].SetAttr(telemetry.GenAIAgentName.String("codex"))
	r2.Spans = append(r2.Spans, spanOf(10, telemetry.SpanLLMCall, base, telemetry.GenAIResponseModel.String("gpt-5"),
		telemetry.GenAIConversationID.String("s2")))
	r2.Spans[1].Events = []telemetry.SpanEvent{alertEvent(telemetry.AlertSecretFound, telemetry.SeverityHigh)}
	r3 := runTrace("r3", base.Add(2*time.Hour), 0,
		telemetry.VCSRepositoryURLFull.String("https://github.com/Other/API.git"),
		attribute.String(telemetry.LabelPrefix+"org", "globex"),
		telemetry.FailureClass.String(telemetry.FailureDependency),
		telemetry.LockfilesChanged.StringSlice([]string{"package-lock.json"}),
		telemetry.WorkflowsChanged.StringSlice([]string{".github/workflows/release.yml"}))
	r4 := &telemetry.Trace{RunID: "r4", Spans: []telemetry.Span{{TraceID: trace.TraceID{4}, SpanID: trace.SpanID{4}, Name: "agent_run",
		Start: base.Add(3 * time.Hour), End: base.Add(3*time.Hour + time.Second),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.RunID.String("r4")}}}}
	for _, tr := range []*telemetry.Trace{r1, r2, r3, r4} {
		if err := s.Save(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
}

func factIDs(list []store.Facts) string {
	var ids []string
	for _, f := range list {
		ids = append(ids, f.RunID)
	}
	return strings.Join(ids, " ")
}

func TestFactsFilter(t *testing.T) { eachBackend(t, testFactsFilter) }

func testFactsFilter(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	filterRuns(t, s)
	for _, tt := range []struct {
		name string
		f    store.FactsFilter
		want string
	}{
		{"all", store.FactsFilter{}, "r4 r3 r2 r1"},
		{"since", store.FactsFilter{Since: base.Add(time.Hour)}, "r4 r3 r2"},
		{"until", store.FactsFilter{Until: base.Add(time.Hour)}, "r1"},
		{"since and until", store.FactsFilter{Since: base.Add(time.Hour), Until: base.Add(3 * time.Hour)}, "r3 r2"},
		{"repo", store.FactsFilter{Repo: "acme/api"}, "r1"},
		{"repo as URL", store.FactsFilter{Repo: "git@github.com:other/api.git"}, "r3"},
		{"team", store.FactsFilter{Team: "payments"}, "r1"},
		{"org", store.FactsFilter{Org: "acme"}, "r2 r1"},
		{"agent", store.FactsFilter{Agent: "claude"}, "r3 r1"},
		{"model", store.FactsFilter{Model: "gpt-5"}, "r2"},
		{"failure", store.FactsFilter{Failure: telemetry.FailureDependency}, "r3"},
		{"alert", store.FactsFilter{Alert: telemetry.AlertSecretFound}, "r2 r1"},
		{"alert retries", store.FactsFilter{Alert: telemetry.AlertRetries}, "r1"},
		{"changed tests", store.FactsFilter{Changed: store.ChangeTests}, "r1"},
		{"changed deps", store.FactsFilter{Changed: store.ChangeDeps}, "r3 r1"},
		{"changed workflows", store.FactsFilter{Changed: store.ChangeWorkflows}, "r3 r1"},
		{"changed docs", store.FactsFilter{Changed: store.ChangeDocs}, "r2 r1"},
		{"changed secrets", store.FactsFilter{Changed: store.ChangeSecrets}, "r1"},
		{"changed config", store.FactsFilter{Changed: store.ChangeConfig}, "r1"},
		{"changed code", store.FactsFilter{Changed: store.ChangeCode}, "r1"},
		{"pr", store.FactsFilter{PR: "https://github.com/acme/web/pull/2/"}, "r2"},
		{"session", store.FactsFilter{Session: "sess-1"}, "r1"},
		{"session of the run id", store.FactsFilter{Session: "r4"}, "r4"},
		{"label", store.FactsFilter{Label: "env=dev"}, "r2"},
		{"label team", store.FactsFilter{Label: "team=payments"}, "r1"},
		{"limit", store.FactsFilter{Limit: 2}, "r4 r3"},
		{"limit after filter", store.FactsFilter{Org: "acme", Limit: 1}, "r2"},
		{"two filters", store.FactsFilter{Agent: "claude", Since: base.Add(time.Minute)}, "r3"},
		{"nothing", store.FactsFilter{Team: "nobody"}, ""},
	} {
		got, err := s.Facts(ctx, tt.f)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if ids := factIDs(got); ids != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, ids, tt.want)
		}
	}
	if _, err := s.Facts(ctx, store.FactsFilter{Changed: "binaries"}); err == nil || !strings.Contains(err.Error(), "code, tests, deps") {
		t.Errorf("unknown change class: %v", err)
	}
	if _, err := s.Facts(ctx, store.FactsFilter{Label: "team"}); err == nil {
		t.Error("label without =: no error")
	}

	// What the store gives back is what ExtractFacts computed, children
	// and all, through Facts (limited or not) and RunFacts.
	want := utc(store.ExtractFacts(richTrace("r1", base), store.StatusComplete, nil))
	all, _ := s.Facts(ctx, store.FactsFilter{})
	limited, _ := s.Facts(ctx, store.FactsFilter{Team: "payments", Limit: 1})
	one, err := s.RunFacts(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]store.Facts{"Facts": all[3], "Facts limited": limited[0], "RunFacts": one} {
		if got = utc(got); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	noPaths, _ := s.Facts(ctx, store.FactsFilter{Team: "payments", WithoutPaths: true})
	if len(noPaths) != 1 || noPaths[0].ChangedPaths != nil || noPaths[0].Labels != nil || noPaths[0].ChangedCode != 2 || noPaths[0].Team != "payments" {
		t.Errorf("WithoutPaths: %+v", noPaths)
	}
}

// Saving a run again replaces its facts, children included.
func TestFactsResave(t *testing.T) { eachBackend(t, testFactsResave) }

func testFactsResave(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Save(ctx, richTrace("again", base)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Annotate(ctx, store.Annotation{RunID: "again", Review: "approved", Reviewer: "ana"}); err != nil {
		t.Fatal(err)
	}
	plain := runTrace("again", base.Add(time.Minute), 0, attribute.String(telemetry.LabelPrefix+"team", "infra"))
	if err := s.Save(ctx, plain); err != nil {
		t.Fatal(err)
	}
	f, err := s.RunFacts(ctx, "again")
	if err != nil {
		t.Fatal(err)
	}
	want := utc(store.ExtractFacts(plain, store.StatusComplete, []store.Annotation{{Seq: 1, Review: "approved", Reviewer: "ana"}}))
	if f = utc(f); !reflect.DeepEqual(f, want) {
		t.Errorf("after re-save:\n got %+v\nwant %+v", f, want)
	}
	if f.Team != "infra" || f.Alerts != nil || f.ChangedPaths != nil || f.Review != "approved" || len(f.Labels) != 1 {
		t.Errorf("re-saved facts kept the old ones: %+v", f)
	}
	// A recovered copy never replaces a saved run, nor its facts.
	if saved, err := s.SaveRecovered(ctx, richTrace("again", base), otlp.Request(richTrace("again", base)), "journal"); err != nil || saved {
		t.Fatalf("SaveRecovered = %v, %v", saved, err)
	}
	if g, _ := s.RunFacts(ctx, "again"); g.Team != "infra" || g.Status != store.StatusComplete {
		t.Errorf("a recovered copy replaced the facts: %+v", g)
	}
}

// An annotation updates the review, PR and CI facts of its run.
func TestFactsAnnotation(t *testing.T) { eachBackend(t, testFactsAnnotation) }

func testFactsAnnotation(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Save(ctx, runTrace("ann", base, 0)); err != nil {
		t.Fatal(err)
	}
	f, _ := s.RunFacts(ctx, "ann")
	if f.Review != "" || !strings.Contains(strings.Join(f.Missing, " "), "review") || f.PRURL != "" {
		t.Fatalf("before: %+v", f)
	}
	for _, a := range []store.Annotation{
		{RunID: "ann", Review: "rejected", Reviewer: "bob", PRURL: "https://github.com/acme/api/pull/9", CIRunURL: "https://ci/9"},
		{RunID: "ann", Review: "approved", Reviewer: "ana", FailureClass: telemetry.FailureModelReasoning},
	} {
		if _, err := s.Annotate(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	f, _ = s.RunFacts(ctx, "ann")
	if f.Review != "approved" || f.Reviewer != "ana" || f.PRURL != "https://github.com/acme/api/pull/9" || f.CIRunURL != "https://ci/9" ||
		f.ReviewFailureClass != telemetry.FailureModelReasoning {
		t.Errorf("after annotations: %+v", f)
	}
	for _, m := range f.Missing {
		if m == "review" || m == "pr_link" {
			t.Errorf("still missing %s: %v", m, f.Missing)
		}
	}
	list, _ := s.Facts(ctx, store.FactsFilter{PR: "https://github.com/acme/api/pull/9"})
	if factIDs(list) != "ann" {
		t.Errorf("PR filter after annotation: %q", factIDs(list))
	}
}

// A store from before the facts tables (schema version 5) gains them on
// its first open: every run's facts from its stored trace and
// annotations, in batches; a run whose trace cannot be decoded gets what
// the runs table knows and "trace" missing; the open never fails.
func TestFactsBackfill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	const n = 150 // more than a batch
	var traces []*telemetry.Trace
	for i := range n {
		tr := richTrace(fmt.Sprintf("old-%03d", i), base.Add(time.Duration(i)*time.Minute))
		if i%2 == 1 {
			tr = runTrace(fmt.Sprintf("old-%03d", i), base.Add(time.Duration(i)*time.Minute), i%3,
				attribute.String(telemetry.LabelPrefix+"team", fmt.Sprintf("team-%d", i%4)))
		}
		traces = append(traces, tr)
		if err := s.Save(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Annotate(ctx, store.Annotation{RunID: "old-001", Review: "rejected", Reviewer: "bob", PRURL: "https://x/pr/1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Back to version 5, as an older agentwatch left it: its tables and
	// rows (runs, run_status, run_costs, annotations), no facts. One run's
	// trace is damaged.
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE run_facts; DROP TABLE run_alerts; DROP TABLE run_changes; DROP TABLE run_missing;
		DROP TABLE run_labels; DROP TABLE run_facts_pending; UPDATE schema_version SET version = 5;
		UPDATE runs SET trace = x'ffffffff0102' WHERE id = 'old-007'`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = open(t, dir)
	list, err := s.Facts(ctx, store.FactsFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("backfilled %d runs, want %d", len(list), n)
	}
	for _, got := range list {
		var i int
		fmt.Sscanf(got.RunID, "old-%03d", &i)
		var anns []store.Annotation
		if i == 1 {
			anns = []store.Annotation{{Seq: 1, Review: "rejected", Reviewer: "bob", PRURL: "https://x/pr/1"}}
		}
		want := utc(store.ExtractFacts(traces[i], store.StatusComplete, anns))
		if i == 7 {
			// What the runs table knows: start, end, command, agent,
			// exit code, spans, cost; the rest missing, and the trace.
			if got.Command != want.Command || got.Agent != "claude" || got.ExitCode != want.ExitCode || got.Spans != want.Spans ||
				!got.Start.Equal(want.Start) || got.SessionID != "old-007" ||
				got.Missing[len(got.Missing)-1] != store.MissingTrace {
				t.Errorf("undecodable run: %+v", got)
			}
			continue
		}
		if got = utc(got); !reflect.DeepEqual(got, want) {
			t.Errorf("%s backfilled:\n got %+v\nwant %+v", got.RunID, got, want)
		}
	}
	if l, _ := s.Facts(ctx, store.FactsFilter{Team: "team-1"}); len(l) != 38 { // old-001, old-005, … old-149

		t.Errorf("team-1 after backfill: %d runs", len(l))
	}
	s.Close()
	// Nothing is left queued: the next open does no work.
	db, _ = sql.Open("sqlite", filepath.Join(dir, store.FileName))
	defer db.Close()
	var queued, facts int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM run_facts_pending), (SELECT count(*) FROM run_facts)`).Scan(&queued, &facts); err != nil || queued != 0 || facts != n {
		t.Errorf("after backfill: %d queued, %d facts rows (%v)", queued, facts, err)
	}
}

// The root's retry accounting (agentwatch.llm.retry.*) wins over the sum
// of repeated calls, which older runs fall back to.
func TestExtractFactsRetryTotals(t *testing.T) {
	repeat := spanOf(21, telemetry.SpanLLMCall, base, telemetry.LLMRepeat.Int(1),
		telemetry.GenAIUsageInputTokens.Int64(100), telemetry.GenAIUsageOutputTokens.Int64(10), telemetry.CostUSD.Float64(0.5))
	old := runTrace("old", base, 0)
	old.Spans = append(old.Spans, repeat)
	if f := store.ExtractFacts(old, store.StatusComplete, nil); f.RetryCalls != 1 || f.RetryWasteTokens != 110 || f.RetryWasteUSD != 0.5 {
		t.Errorf("older run: retry %d calls, %d tokens, $%v; want 1, 110, $0.5", f.RetryCalls, f.RetryWasteTokens, f.RetryWasteUSD)
	}
	cur := runTrace("new", base, 0, telemetry.LLMRetryCalls.Int(2), telemetry.LLMRetryWastedTokens.Int64(300), telemetry.LLMRetryWastedUSD.Float64(1.25))
	cur.Spans = append(cur.Spans, repeat)
	if f := store.ExtractFacts(cur, store.StatusComplete, nil); f.RetryCalls != 2 || f.RetryWasteTokens != 300 || f.RetryWasteUSD != 1.25 {
		t.Errorf("run with the root's totals: retry %d calls, %d tokens, $%v; want 2, 300, $1.25", f.RetryCalls, f.RetryWasteTokens, f.RetryWasteUSD)
	}
}
