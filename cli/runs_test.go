package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// filterStore saves three runs, newest first c, b, a:
//
//	a  10 days ago, recorded by the recorder: claude in acme/api (git@…),
//	   labels team=payments org=acme env=prod, a failing go test (failure
//	   class test_failure), a test file written
//	b  2 days ago: codex in acme/web, team search, org acme, gpt-5 calls
//	   of session sess-b, a PR, a workflow changed, a secret_found alert,
//	   failure class dependency
//	c  an hour ago: claude, no labels, a lockfile changed, a
//	   retries_without_progress alert, failure class test_failure
func filterStore(t *testing.T, now time.Time) (dir string, ids [3]string) {
	t.Helper()
	dir = t.TempDir()
	ta, tb, tc := now.AddDate(0, 0, -10), now.AddDate(0, 0, -2), now.Add(-time.Hour)
	ids = [3]string{
		ta.UTC().Format("20060102-150405") + "-aaaaaa",
		tb.UTC().Format("20060102-150405") + "-bbbbbb",
		tc.UTC().Format("20060102-150405") + "-cccccc",
	}

	r := recorder.New(recorder.RunInfo{RunID: ids[0], Argv: []string{"claude", "-p", "fix"}, Start: ta, RootPID: 10, Workspace: "/w",
		Sensors: []string{"ebpf"}, Attributes: map[string]string{"team": "payments", "org": "acme", "env": "prod"},
		Before: &workspace.Snapshot{Root: "/w", IsGit: true, RemoteURL: "git@github.com:acme/api.git", Branch: "main", Head: "0123abc"}})
	r.Add(event.Exec{Header: event.Header{Time: ta, PID: 10}, Filename: "/usr/bin/claude", Argv: []string{"claude", "-p", "fix"}, Cwd: "/w"})
	r.Add(event.Exec{Header: event.Header{Time: ta.Add(time.Second), PID: 11}, PPID: 10, Filename: "/usr/bin/go", Argv: []string{"go", "test", "./..."}, Cwd: "/w"})
	r.Add(event.File{Header: event.Header{Time: ta.Add(1500 * time.Millisecond), PID: 10}, Source: event.SourceEBPF, Op: event.FileCreate, Path: "/w/main_test.go"})
	r.Add(event.Exit{Header: event.Header{Time: ta.Add(2 * time.Second), PID: 11}, Code: 1})
	a := r.Finish(recorder.End{Time: ta.Add(3 * time.Second), ExitCode: 1})

	root := trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	synthetic := func(id string, start time.Time, attrs []attribute.KeyValue, children ...telemetry.Span) *telemetry.Trace {
		tr := &telemetry.Trace{RunID: id, Spans: []telemetry.Span{{TraceID: trace.TraceID{byte(len(children) + 1), 9}, SpanID: root,
			Name: "agent_run", Start: start, End: start.Add(time.Minute),
			Attrs: append([]attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.RunID.String(id),
				telemetry.CommandLine.String("agent --go"), telemetry.ProcessExitCode.Int(0)}, attrs...)}}}
		for i, c := range children {
			c.TraceID, c.SpanID, c.ParentID = tr.Spans[0].TraceID, trace.SpanID{9, byte(i + 1)}, root
			c.Start, c.End = start.Add(time.Second), start.Add(2*time.Second)
			tr.Spans = append(tr.Spans, c)
		}
		return tr
	}
	alert := func(rule string) telemetry.Span {
		return telemetry.Span{Name: "bash_command", Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanBashCommand)},
			Events: []telemetry.SpanEvent{{Name: telemetry.EventAlert, Attrs: []attribute.KeyValue{
				telemetry.AlertRule.String(rule), telemetry.AlertSeverity.String(telemetry.SeverityHigh)}}}}
	}
	b := synthetic(ids[1], tb, []attribute.KeyValue{
		telemetry.GenAIAgentName.String("codex"),
		telemetry.VCSRepositoryURLFull.String("https://github.com/acme/web"),
		attribute.String(telemetry.LabelPrefix+"team", "search"), attribute.String(telemetry.LabelPrefix+"org", "acme"),
		telemetry.PRURL.String("https://github.com/acme/web/pull/12"),
		telemetry.WorkflowsChanged.StringSlice([]string{".github/workflows/ci.yml"}),
		telemetry.FailureClass.String(telemetry.FailureDependency),
	},
		telemetry.Span{Name: "chat gpt-5", Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanLLMCall),
			telemetry.GenAIResponseModel.String("gpt-5"), telemetry.GenAIConversationID.String("sess-b")}},
		alert(telemetry.AlertSecretFound))
	c := synthetic(ids[2], tc, []attribute.KeyValue{
		telemetry.GenAIAgentName.String("claude"),
		telemetry.LockfilesChanged.StringSlice([]string{"go.sum"}),
		telemetry.FailureClass.String(telemetry.FailureTestFailure),
	}, alert(telemetry.AlertRetries))

	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tr := range []*telemetry.Trace{a, b, c} {
		if err := st.Save(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ids
}

func TestRunsFilters(t *testing.T) {
	now := time.Now()
	dir, ids := filterStore(t, now)
	a, b, c := ids[0], ids[1], ids[2]
	untilDate := now.AddDate(0, 0, -5).Format("2006-01-02")
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, []string{c, b, a}},
		{[]string{"--since", "3d"}, []string{c, b}},
		{[]string{"--since", "24h"}, []string{c}},
		{[]string{"--since", "2w"}, []string{c, b, a}},
		{[]string{"--until", "1d"}, []string{b, a}},
		{[]string{"--until", untilDate}, []string{a}},
		{[]string{"--since", now.AddDate(0, 0, -3).UTC().Format(time.RFC3339), "--until", "30m"}, []string{c, b}},
		{[]string{"--repo", "acme/api"}, []string{a}},
		{[]string{"--repo", "https://github.com/acme/web.git"}, []string{b}},
		{[]string{"--team", "payments"}, []string{a}},
		{[]string{"--org", "acme"}, []string{b, a}},
		{[]string{"--agent", "claude"}, []string{c, a}},
		{[]string{"--agent", "codex"}, []string{b}},
		{[]string{"--model", "gpt-5"}, []string{b}},
		{[]string{"--failure", "dependency"}, []string{b}},
		{[]string{"--failure", "test_failure"}, []string{c, a}}, // a: its go test failed (the recorder's class)
		{[]string{"--alert", "secret_found"}, []string{b}},
		{[]string{"--alert", "retries_without_progress"}, []string{c}},
		{[]string{"--changed", "tests"}, []string{a}},
		{[]string{"--changed", "workflows"}, []string{b}},
		{[]string{"--changed", "deps"}, []string{c}},
		{[]string{"--changed", "docs"}, []string{}},
		{[]string{"--pr", "https://github.com/acme/web/pull/12"}, []string{b}},
		{[]string{"--session", "sess-b"}, []string{b}},
		{[]string{"--session", a}, []string{a}}, // no session of its own: the run id
		{[]string{"--label", "env=prod"}, []string{a}},
		{[]string{"--team", "payments", "--since", "3d"}, []string{}},
		{[]string{"--org", "acme", "--agent", "codex"}, []string{b}},
		{[]string{"--since", "30d", "-n", "2"}, []string{c, b}},
		{[]string{"--limit", "1", "--agent", "claude"}, []string{c}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"runs", "--store", dir, "--json"}, tt.args...)
			code, stdout, stderr := execute(t, &fakeRun{}, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var runs []struct {
				ID      string `json:"id"`
				Command string `json:"command"`
			}
			if err := json.Unmarshal([]byte(stdout), &runs); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			got := []string{}
			for _, r := range runs {
				got = append(got, r.ID)
				if r.Command == "" {
					t.Errorf("run %s without its command: the runs --json shape is kept", r.ID)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("selected %v, want %v", got, tt.want)
			}
		})
	}

	// The table, for a filter, and a filter matching nothing.
	code, stdout, stderr := execute(t, &fakeRun{}, "runs", "--store", dir, "--team", "payments")
	if code != 0 || !strings.Contains(stdout, a) || strings.Contains(stdout, b) || !strings.HasPrefix(stdout, "ID ") {
		t.Errorf("table: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = execute(t, &fakeRun{}, "runs", "--store", dir, "--team", "nobody")
	if code != 0 || stdout != "No runs match.\n" {
		t.Errorf("no match: exit %d %q", code, stdout)
	}

	// --facts: the facts as JSON, the user left out unless asked for.
	code, stdout, stderr = execute(t, &fakeRun{}, "runs", "--store", dir, "--facts", "--team", "payments")
	if code != 0 {
		t.Fatalf("--facts: exit %d: %s", code, stderr)
	}
	var facts []store.Facts
	if err := json.Unmarshal([]byte(stdout), &facts); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(facts) != 1 || facts[0].RunID != a || facts[0].Repo != "acme/api" || facts[0].Team != "payments" ||
		facts[0].ChangedTests != 1 || facts[0].TestRuns != 1 || facts[0].TestRunsFailed != 1 || facts[0].BaseSHA != "0123abc" {
		t.Errorf("--facts: %+v", facts)
	}
	code, stdout, _ = execute(t, &fakeRun{}, "runs", "--store", dir, "--facts", "--team", "nobody")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("--facts, no match: exit %d %q", code, stdout)
	}
}

func TestRunsFilterErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--changed", "binaries"}, `agentwatch: --changed "binaries": want one of code, tests, deps, workflows, secrets, config, docs` + "\n"},
		{[]string{"--failure", "bogus"}, `agentwatch: --failure "bogus": want one of model_reasoning, context_retrieval, tool_api, shell_environment, dependency, test_failure, merge_conflict, policy_block, permission_block, security_finding, budget_breach, telemetry_gap, review_rejected, interrupted, none, unknown` + "\n"},
		{[]string{"--since", "yesterday"}, `agentwatch: --since: "yesterday": want a duration (24h, 7d, 2w), a date (2026-12-01) or an RFC 3339 time` + "\n"},
		{[]string{"--until", "-3h"}, `agentwatch: --until: "-3h": want a positive duration (how long ago)` + "\n"},
		{[]string{"--label", "team"}, `agentwatch: --label "team": want KEY=VALUE` + "\n"},
	} {
		code, stdout, stderr := execute(t, &fakeRun{}, append([]string{"runs", "--store", dir}, tt.args...)...)
		if code != ExitUsage || stdout != "" || stderr != tt.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, stdout, stderr, ExitUsage, tt.want)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 10, 15, 30, 0, 0, time.Local)
	for in, want := range map[string]time.Time{
		"7d":                   now.AddDate(0, 0, -7),
		"2w":                   now.AddDate(0, 0, -14),
		"24h":                  now.Add(-24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-12-01":           time.Date(2026, 12, 1, 0, 0, 0, 0, time.Local),
		"2026-12-01T08:00:00Z": time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now, false)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, _ := parseWhen("2026-12-01", now, true); !got.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, time.Local)) {
		t.Errorf("--until 2026-12-01 = %v, want the end of that day", got)
	}
}
