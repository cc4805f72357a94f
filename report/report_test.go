package report_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

func TestMain(m *testing.M) {
	// Local-time columns must not depend on the machine running the test.
	time.Local = time.UTC
	os.Exit(m.Run())
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func sid(b byte) trace.SpanID { return trace.SpanID{0, 0, 0, 0, 0, 0, 0, b} }

var tid = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

func span(id, parent byte, name string, start, end int, attrs ...attribute.KeyValue) telemetry.Span {
	s := telemetry.Span{TraceID: tid, SpanID: sid(id), Name: name, Start: at(start), End: at(end),
		Attrs: append([]attribute.KeyValue{telemetry.SpanType.String(name)}, attrs...)}
	if parent != 0 {
		s.ParentID = sid(parent)
	}
	return s
}

// claudeRun is what the recorder makes of a Claude Code run that ran the
// tests, wrote a file and called the model API. Spans are deliberately not
// in start order: the tree must sort them.
func claudeRun() *telemetry.Trace {
	longCmd := `bash -c 'source /home/dev/.claude/shell-snapshots/snapshot-bash-1767225600000-abc123.sh && eval "go test ./... -run TestFlaky -count=20" < /dev/null && pwd -P >| /tmp/claude-1a2b-cwd'`
	root := span(1, 0, telemetry.SpanAgentRun, 0, 65_400,
		telemetry.RunID.String("20260301-120000-a1b2c3"),
		telemetry.GenAIAgentName.String("claude"),
		telemetry.CommandLine.String(`claude -p "fix the flaky test"`),
		telemetry.ProcessExitCode.Int(1),
		telemetry.ProcessUserID.Int(1000),
		telemetry.RunUser.String("dev"),
		telemetry.Workspace.String("/home/dev/proj"),
		telemetry.VCSRefHeadName.String("main"),
		telemetry.VCSRefHeadRevision.String("0123456789abcdef0123456789abcdef01234567"),
		telemetry.WorktreeDirtyBefore.Bool(false),
		telemetry.Sensors.StringSlice([]string{"ebpf", "fswatch"}),
		telemetry.EventsDropped.Int64(0),
		telemetry.TelemetryGaps.StringSlice([]string{"netwatch: dns proxy disabled"}),
	)
	root.Status, root.StatusMessage = codes.Error, "exit code 1"
	claude := span(2, 1, telemetry.SpanBashCommand, 5, 65_000,
		telemetry.CommandLine.String(`claude -p "fix the flaky test"`),
		telemetry.ProcessExitCode.Int(1), telemetry.FilesWritten.Int(1), telemetry.ConnectionsCount.Int(3))
	shell := span(3, 2, telemetry.SpanBashCommand, 20_000, 62_500,
		telemetry.ProcessCommandLine.String(longCmd), telemetry.ProcessExitCode.Int(0),
		telemetry.FilesWritten.Int(0), telemetry.ConnectionsCount.Int(0))
	test := span(4, 3, telemetry.SpanTestRun, 20_010, 62_400,
		telemetry.ProcessCommandLine.String("go test ./... -run TestFlaky -count=20"),
		telemetry.ProcessExitCode.Int(1), telemetry.FilesWritten.Int(0), telemetry.ConnectionsCount.Int(0),
		telemetry.FilesOutsideWorkspace.Int(212))
	test.Status = codes.Error
	write := span(5, 2, telemetry.SpanFileWrite, 15_000, 15_000,
		telemetry.FilePath.String("/home/dev/proj/flaky_test.go"),
		telemetry.FileOperations.StringSlice([]string{"truncate", "write"}))
	rename := span(6, 2, telemetry.SpanFileWrite, 15_100, 15_101,
		telemetry.FilePath.String("/home/dev/proj/.tmp123"),
		telemetry.FileOperations.StringSlice([]string{"create", "write", "rename"}),
		telemetry.FileRenamedTo.String("/home/dev/proj/go.sum"))
	net := span(7, 2, telemetry.SpanNetworkCall, 800, 801,
		telemetry.ServerAddress.String("api.anthropic.com"), telemetry.ServerPort.Int(443),
		telemetry.NetworkTransport.String("tcp"), telemetry.ConnectionsCount.Int(3))
	net.Kind = trace.SpanKindClient
	killed := span(8, 1, telemetry.SpanBashCommand, 65_001, 65_300,
		telemetry.ProcessCommandLine.String("sleep 100"),
		telemetry.ProcessExitCode.Int(137), telemetry.ProcessSignal.String("SIGKILL"))
	v6 := span(9, 3, telemetry.SpanNetworkCall, 30_000, 30_000,
		telemetry.ServerAddress.String("::1"), telemetry.ServerPort.Int(53), telemetry.NetworkTransport.String("udp"))
	orphan := span(10, 99, "claude_code.tool", 40_000, 40_250)
	orphan.Events = []telemetry.SpanEvent{{Name: telemetry.EventAlert, Time: at(40_100),
		Attrs: []attribute.KeyValue{telemetry.AlertRule.String("missing_parent")}}}
	return &telemetry.Trace{
		RunID: "20260301-120000-a1b2c3",
		Spans: []telemetry.Span{root, killed, claude, test, shell, rename, write, net, v6, orphan},
	}
}

const wantTree = `Run        20260301-120000-a1b2c3
Trace      4bf92f3577b34da6a3ce929d0e0e4736
Command    claude -p "fix the flaky test"
Agent      claude
User       dev (uid 1000)
Workspace  /home/dev/proj
Base       0123456789ab (main)
Exit       1
Duration   1m05s (started 2026-03-01 12:00:00 UTC)
Models     none
Alerts     1
Spans      10
Sensors    ebpf, fswatch
Gaps       netwatch: dns proxy disabled
Dropped    0

Alerts (1)
  -      missing_parent  [claude_code.tool]

agent_run  claude -p "fix the flaky test"  1m05s  exit 1 ✗
├── bash_command  claude -p "fix the flaky test"  1m04s  exit 1 ✗  1 file written  3 connections
│   ├── network_call  api.anthropic.com:443  1ms  3 connections
│   ├── file_write  flaky_test.go (truncate, write)  0ms
│   ├── file_write  .tmp123 (create, write, rename) → go.sum  1ms
│   └── bash_command  bash -c 'source /home/dev/.claude/shell-snapshots/snapshot-bash-1767225600000-a…  42.5s
│       ├── test_run  go test ./... -run TestFlaky -count=20  42.4s  exit 1 ✗  212 files outside workspace
│       └── network_call  [::1]:53 udp  0ms
└── bash_command  sleep 100  299ms  exit 137 SIGKILL ✗
claude_code.tool  250ms  ⚠ missing_parent  (parent 0000000000000063 not in trace)
`

func TestTree(t *testing.T) {
	var buf bytes.Buffer
	if err := report.Tree(&buf, claudeRun()); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != wantTree {
		t.Errorf("Tree output differs.\n--- got\n%s--- want\n%s", got, wantTree)
	}
}

func TestTreeMinimal(t *testing.T) {
	// A degraded run: no user, no git, no sensors, still running at the end.
	tr := &telemetry.Trace{RunID: "r1", Spans: []telemetry.Span{
		span(1, 0, telemetry.SpanAgentRun, 0, 1500, telemetry.ProcessCommandLine.String("make test")),
		span(2, 1, telemetry.SpanBashCommand, 10, 1400,
			telemetry.ProcessCommandLine.String("make test"), telemetry.ProcessStillRunning.Bool(true)),
	}}
	var buf bytes.Buffer
	if err := report.Tree(&buf, tr); err != nil {
		t.Fatal(err)
	}
	want := `Run        r1
Trace      4bf92f3577b34da6a3ce929d0e0e4736
Command    make test
Agent      -
User       -
Workspace  -
Base       -
Exit       -
Duration   1.50s (started 2026-03-01 12:00:00 UTC)
Models     none
Alerts     none
Spans      2
Sensors    -
Gaps       none
Dropped    -

agent_run  make test  1.50s
└── bash_command  make test  1.39s  still running
`
	if got := buf.String(); got != want {
		t.Errorf("Tree output differs.\n--- got\n%s--- want\n%s", got, want)
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := report.JSON(&buf, claudeRun()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `>| /tmp/claude-1a2b-cwd`) {
		t.Error("command line HTML-escaped in JSON output")
	}
	var doc struct {
		Run struct {
			ID            string   `json:"id"`
			TraceID       string   `json:"trace_id"`
			Agent         string   `json:"agent"`
			ExitCode      *int     `json:"exit_code"`
			DurationMS    float64  `json:"duration_ms"`
			Sensors       []string `json:"sensors"`
			TelemetryGaps []string `json:"telemetry_gaps"`
			EventsDropped *int     `json:"events_dropped"`
			Start         string   `json:"start"`
		} `json:"run"`
		Spans []map[string]any `json:"spans"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, buf.String())
	}
	r := doc.Run
	if r.ID != "20260301-120000-a1b2c3" || r.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || r.Agent != "claude" ||
		r.ExitCode == nil || *r.ExitCode != 1 || r.DurationMS != 65400 || len(r.Sensors) != 2 ||
		len(r.TelemetryGaps) != 1 || r.EventsDropped == nil || *r.EventsDropped != 0 || r.Start != "2026-03-01T12:00:00Z" {
		t.Errorf("run = %+v", r)
	}
	if len(doc.Spans) != 2 {
		t.Fatalf("top-level spans = %d, want the root and one orphan", len(doc.Spans))
	}
	root := doc.Spans[0]
	if root["name"] != "agent_run" || root["parent_span_id"] != nil || root["status"] != "error" || root["kind"] != "unspecified" {
		t.Errorf("root = %v", root)
	}
	if doc.Spans[1]["parent_missing"] != true || len(doc.Spans[1]["events"].([]any)) != 1 {
		t.Errorf("orphan = %v", doc.Spans[1])
	}

	// Walk down agent_run → claude → shell → test_run.
	child := func(s map[string]any, i int) map[string]any { return s["children"].([]any)[i].(map[string]any) }
	claude := child(root, 0)
	shell := child(claude, 3)
	test := child(shell, 0)
	if test["type"] != "test_run" || test["parent_span_id"] != "0000000000000003" || test["duration_ms"] != 42390.0 {
		t.Errorf("test_run = %v", test)
	}
	attrs := test["attributes"].(map[string]any)
	if attrs["process.exit.code"] != 1.0 || attrs["agentwatch.files.outside_workspace"] != 212.0 {
		t.Errorf("test_run attributes = %v (want numbers as JSON numbers)", attrs)
	}
	ops := child(claude, 2)["attributes"].(map[string]any)["agentwatch.file.operations"]
	if got, _ := json.Marshal(ops); string(got) != `["create","write","rename"]` {
		t.Errorf("string slice attribute = %s", got)
	}
	if net := child(claude, 0); net["kind"] != "client" || net["duration_ms"] != 1.0 {
		t.Errorf("network_call = %v", net)
	}
	if kids := test["children"].([]any); kids == nil || len(kids) != 0 {
		t.Errorf("leaf children = %#v, want an empty array, not null", test["children"])
	}

	// Deterministic: the same trace renders byte-identically.
	var again bytes.Buffer
	report.JSON(&again, claudeRun())
	if again.String() != buf.String() {
		t.Error("JSON output is not deterministic")
	}
}

func TestRuns(t *testing.T) {
	runs := []store.Run{
		{ID: "20260301-120000-a1b2c3", Start: t0, End: t0.Add(65400 * time.Millisecond), Command: `claude -p "fix the flaky test"`,
			Agent: "claude", ExitCode: 1, Spans: 10, Exported: true,
			CostUSD: 0.0234567, HasCost: true, InputTokens: 42080, OutputTokens: 77, HasTokens: true},
		{ID: "20260301-110000-ffffff", Start: t0.Add(-time.Hour), End: t0.Add(-time.Hour + 840*time.Millisecond),
			Command: "make test", ExitCode: 0, Spans: 31, ExportError: "exporting to localhost:4317: connection refused",
			CostUSD: 12.5, HasCost: true, InputTokens: 1234567, OutputTokens: 999, HasTokens: true},
		{ID: "a-run-id-longer-than-twenty-two-characters", Start: t0.Add(-2 * time.Hour), ExitCode: -1, Spans: 1,
			Command: "bash -c 'for i in $(seq 1 1000); do touch f$i; done && rm -f f* && echo all done and more text here'"},
	}
	var buf bytes.Buffer
	if err := report.Runs(&buf, runs); err != nil {
		t.Fatal(err)
	}
	want := `ID                      START                DURATION  EXIT  AGENT   COST     TOKENS    SPANS  EXPORTED  COMMAND
20260301-120000-a1b2c3  2026-03-01 12:00:00  1m05s     1     claude  $0.0235  42.1k/77  10     yes       claude -p "fix the flaky test"
20260301-110000-ffffff  2026-03-01 11:00:00  840ms     0     -       $12.50   1.2M/999  31     failed    make test
a-run-id-longer-than-t  2026-03-01 10:00:00  -         -     -       -        -         1      no        bash -c 'for i in $(seq 1 1000); do touch f$i; done && rm -…
`
	if got := buf.String(); got != want {
		t.Errorf("Runs output differs.\n--- got\n%s--- want\n%s", got, want)
	}

	buf.Reset()
	report.Runs(&buf, nil)
	if !strings.HasPrefix(buf.String(), "No runs recorded yet.") {
		t.Errorf("empty list = %q", buf.String())
	}
}

// TestTreeMarksPolicyAndAlerts: a denied connection says so, alerts are
// named once per rule, and only paths inside the workspace are shortened.
func TestTreeMarksPolicyAndAlerts(t *testing.T) {
	tid := trace.TraceID{9}
	alert := func(rule string) telemetry.SpanEvent {
		return telemetry.SpanEvent{Name: telemetry.EventAlert, Time: at(2), Attrs: []attribute.KeyValue{telemetry.AlertRule.String(rule)}}
	}
	tr := &telemetry.Trace{RunID: "r", Spans: []telemetry.Span{
		{TraceID: tid, SpanID: sid(1), Name: telemetry.SpanAgentRun, Start: at(0), End: at(10),
			Attrs: []attribute.KeyValue{telemetry.Workspace.String("/ws"), telemetry.ProcessCommandLine.String("sh x")}},
		{TraceID: tid, SpanID: sid(2), ParentID: sid(1), Name: telemetry.SpanNetworkCall, Start: at(1), End: at(2),
			Attrs:  []attribute.KeyValue{telemetry.ServerAddress.String("203.0.113.9"), telemetry.ServerPort.Int(443), telemetry.PolicyDecision.String("deny")},
			Events: []telemetry.SpanEvent{alert("policy_bypass"), alert("policy_bypass"), alert("denied_loop")}},
		{TraceID: tid, SpanID: sid(3), ParentID: sid(1), Name: telemetry.SpanFileWrite, Start: at(3), End: at(3),
			Attrs: []attribute.KeyValue{telemetry.FilePath.String("/wsx/a.go"), telemetry.FileOperations.StringSlice([]string{"create"})}},
		{TraceID: tid, SpanID: sid(4), ParentID: sid(1), Name: telemetry.SpanFileWrite, Start: at(4), End: at(4),
			Attrs: []attribute.KeyValue{telemetry.FilePath.String("/ws/src/b.go"), telemetry.FileOperations.StringSlice([]string{"write"})}},
	}}
	var b bytes.Buffer
	if err := report.Tree(&b, tr); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"network_call  203.0.113.9:443  1ms  policy deny  ⚠ policy_bypass  ⚠ denied_loop\n",
		"file_write  /wsx/a.go (create)", // a sibling directory, not inside /ws
		"file_write  src/b.go (write)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q:\n%s", want, out)
		}
	}
}

// The header sums the run up: model calls, tokens and cost; alerts by
// severity.
func TestHeaderSummary(t *testing.T) {
	root := telemetry.Span{SpanID: trace.SpanID{1}, Name: "invoke_agent claude", Start: time.Unix(0, 0), End: time.Unix(2, 0),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.LLMCalls.Int(3),
			telemetry.GenAIUsageInputTokens.Int(12345), telemetry.GenAIUsageOutputTokens.Int(56), telemetry.CostUSD.Float64(0.0125)},
		Events: []telemetry.SpanEvent{
			{Name: telemetry.EventAlert, Attrs: []attribute.KeyValue{telemetry.AlertSeverity.String(telemetry.SeverityHigh)}},
			{Name: telemetry.EventAlert, Attrs: []attribute.KeyValue{telemetry.AlertSeverity.String(telemetry.SeverityLow)}},
			{Name: telemetry.EventAlert, Attrs: []attribute.KeyValue{telemetry.AlertSeverity.String(telemetry.SeverityHigh)}},
		}}
	var b bytes.Buffer
	if err := report.Tree(&b, &telemetry.Trace{RunID: "r", Spans: []telemetry.Span{root}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Models     3 calls, 12.3k tokens in, 56 out, $0.0125\n", "Alerts     3 (2 high, 1 low)\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("header lacks %q:\n%s", want, b.String())
		}
	}
}

// The agent's own `git diff` is a command (its line is the command line),
// not agentwatch's evidence "not taken"; one file is "1 file".
func TestGitDiffLabels(t *testing.T) {
	root := telemetry.Span{SpanID: trace.SpanID{1}, Name: "invoke_agent claude", Start: time.Unix(0, 0), End: time.Unix(9, 0),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun)}}
	cmd := telemetry.Span{SpanID: trace.SpanID{2}, ParentID: root.SpanID, Name: "git diff", Start: time.Unix(1, 0), End: time.Unix(2, 0),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanGitDiff), telemetry.ProcessCommandLine.String("git diff --stat")}}
	ev := telemetry.Span{SpanID: trace.SpanID{3}, ParentID: root.SpanID, Name: telemetry.SpanGitDiff, Start: time.Unix(8, 0), End: time.Unix(9, 0),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanGitDiff), telemetry.DiffSHA256.String("ab12"),
			telemetry.DiffFiles.Int(1), telemetry.DiffLinesAdded.Int(2), telemetry.DiffLinesRemoved.Int(0), telemetry.DiffBytes.Int(40)}}
	var b bytes.Buffer
	if err := report.Tree(&b, &telemetry.Trace{RunID: "r", Spans: []telemetry.Span{root, cmd, ev}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"git_diff  git diff --stat  1.00s", "git_diff  1 file +2 −0, 40 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not taken") {
		t.Errorf("a diff reads as not taken:\n%s", out)
	}
}

// 60 alike children of one shell are three lines and a count; a child
// that failed or raised an alert is always shown.
func TestTreeCollapsesAlikeSiblings(t *testing.T) {
	root := telemetry.Span{SpanID: trace.SpanID{1}, Name: "invoke_agent sh", Start: time.Unix(0, 0), End: time.Unix(100, 0),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun)}}
	shell := telemetry.Span{SpanID: trace.SpanID{2}, ParentID: root.SpanID, Name: "sh", Start: time.Unix(1, 0), End: time.Unix(99, 0),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanBashCommand), telemetry.ProcessCommandLine.String("sh -c loop")}}
	spans := []telemetry.Span{root, shell}
	for i := range 60 {
		code := 0
		if i == 30 {
			code = 1
		}
		spans = append(spans, telemetry.Span{SpanID: trace.SpanID{3, byte(i)}, ParentID: shell.SpanID, Name: "true",
			Start: time.Unix(int64(2+i), 0), End: time.Unix(int64(2+i), 1000),
			Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanBashCommand),
				telemetry.ProcessCommandLine.String("/bin/true"), telemetry.ProcessExitCode.Int(code)}})
	}
	var b bytes.Buffer
	if err := report.Tree(&b, &telemetry.Trace{RunID: "r", Spans: spans}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"├── … 27 more bash_command  /bin/true\n", "exit 1", "└── … 26 more bash_command  /bin/true\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "bash_command  /bin/true  "); n != 2*collapseShown+1 {
		t.Errorf("%d /bin/true lines shown, want %d:\n%s", n, 2*collapseShown+1, out)
	}
}

const collapseShown = 3 // report.collapseAfter
