package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// go test ./report -update rewrites testdata/*.golden from the current
// renderer; review the diff before committing it.
var update = flag.Bool("update", false, "rewrite report/testdata/*.golden")

// golden compares got with testdata/name.golden (or writes it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if got == string(want) {
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("%s differs from line %d:\n got %q\nwant %q\n(go test ./report -update rewrites it)\n--- got\n%s", path, i+1, g, w, got)
			return
		}
	}
}

// representativeRun is claudeRun with what a real run also holds: model
// calls, a denied connection with alerts, a long path, a failed tool span
// of the agent's with a long message, and a wide-character file name.
func representativeRun() *telemetry.Trace {
	tr := claudeRun()
	root := &tr.Spans[0]
	root.Attrs = append(root.Attrs,
		telemetry.LLMCalls.Int(14), telemetry.GenAIUsageInputTokens.Int(184_220),
		telemetry.GenAIUsageOutputTokens.Int(6_310), telemetry.CostUSD.Float64(0.8421))
	alert := func(rule, sev string) telemetry.SpanEvent {
		return telemetry.SpanEvent{Name: telemetry.EventAlert, Time: at(33_000), Attrs: []attribute.KeyValue{
			telemetry.AlertRule.String(rule), telemetry.AlertSeverity.String(sev),
			telemetry.AlertMessage.String("connection to a destination the policy denies")}}
	}
	deny := span(11, 3, telemetry.SpanNetworkCall, 33_000, 33_004,
		telemetry.ServerAddress.String("exfil.attacker-controlled-domain.example.com"), telemetry.ServerPort.Int(8443),
		telemetry.PolicyDecision.String("deny"), telemetry.ConnectionsCount.Int(4), telemetry.ConnectionFailures.Int(4))
	deny.Events = []telemetry.SpanEvent{alert("policy_denied_egress", telemetry.SeverityHigh), alert("denied_loop", telemetry.SeverityMedium)}
	deep := span(12, 2, telemetry.SpanFileWrite, 16_000, 16_002,
		telemetry.FilePath.String("/home/dev/proj/internal/platform/storage/migrations/versions/20260301_add_index_on_runs_started_at.sql"),
		telemetry.FileOperations.StringSlice([]string{"create", "write"}))
	wide := span(13, 2, telemetry.SpanFileWrite, 17_000, 17_001,
		telemetry.FilePath.String("/home/dev/proj/docs/設計メモ/テスト計画と結果の一覧表.md"),
		telemetry.FileOperations.StringSlice([]string{"write"}))
	tool := span(14, 2, "claude_code.tool Bash", 19_000, 62_600, telemetry.SpanSource.String("agent"),
		telemetry.SpanType.String(telemetry.SpanAgent))
	tool.Status, tool.StatusMessage = codes.Error, "tool call failed: the command exited with status 1 after 42 seconds; see the output above for details"
	tr.Spans = append(tr.Spans, deny, deep, wide, tool)
	return tr
}

// shellLoop is a shell that ran /bin/true 60 times (one of them failed):
// alike siblings collapse into a count.
func shellLoop() *telemetry.Trace {
	root := telemetry.Span{TraceID: tid, SpanID: trace.SpanID{1}, Name: "invoke_agent sh", Start: t0, End: t0.Add(100 * time.Second),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.ProcessCommandLine.String("sh -c 'for i in $(seq 60); do /bin/true; done'")}}
	shell := telemetry.Span{TraceID: tid, SpanID: trace.SpanID{2}, ParentID: root.SpanID, Name: "sh", Start: t0.Add(time.Second), End: t0.Add(99 * time.Second),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanBashCommand), telemetry.ProcessCommandLine.String("sh -c 'for i in $(seq 60); do /bin/true; done'")}}
	spans := []telemetry.Span{root, shell}
	for i := range 60 {
		code := 0
		if i == 30 {
			code = 1
		}
		spans = append(spans, telemetry.Span{TraceID: tid, SpanID: trace.SpanID{3, byte(i)}, ParentID: shell.SpanID, Name: "true",
			Start: t0.Add(time.Duration(2+i) * time.Second), End: t0.Add(time.Duration(2+i)*time.Second + 1500*time.Microsecond),
			Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanBashCommand),
				telemetry.ProcessCommandLine.String("/bin/true"), telemetry.ProcessExitCode.Int(code)}})
	}
	return &telemetry.Trace{RunID: "r-loop", Spans: spans}
}

// deepRun nests 30 shells, each running the next, with a long command at
// the bottom.
func deepRun() *telemetry.Trace {
	spans := []telemetry.Span{span(1, 0, telemetry.SpanAgentRun, 0, 10_000, telemetry.ProcessCommandLine.String("make deep"))}
	for i := 2; i <= 31; i++ {
		spans = append(spans, span(byte(i), byte(i-1), telemetry.SpanBashCommand, i, 10_000-i,
			telemetry.ProcessCommandLine.String("sh -c ./level"+strings.Repeat("x", i%7)+".sh")))
	}
	spans = append(spans, span(32, 31, telemetry.SpanTestRun, 100, 9_000,
		telemetry.ProcessCommandLine.String("go test -run TestEverythingThatIsDeeplyNested ./internal/..."), telemetry.ProcessExitCode.Int(2)))
	return &telemetry.Trace{RunID: "r-deep", Spans: spans}
}

// hostileRun is hostileTrace with every kind of hostile string in a
// command line and an alert on it too.
func hostileRun() *telemetry.Trace {
	tr := hostileTrace()
	cmd := span(6, 1, telemetry.SpanBashCommand, 60, 70,
		telemetry.ProcessCommandLine.String("sh -c '"+osc52+clear+crOver+forged+rlo+csi8+badUTF8+tabbed+"'"),
		telemetry.ProcessExitCode.Int(3))
	cmd.Events = []telemetry.SpanEvent{{Name: telemetry.EventAlert, Time: at(65), Attrs: []attribute.KeyValue{
		telemetry.AlertRule.String("secret_read" + osc52), telemetry.AlertSeverity.String(telemetry.SeverityMedium)}}}
	tr.Spans = append(tr.Spans, cmd)
	return tr
}

func TestTreeGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		tr   func() *telemetry.Trace
	}{
		{"representative", representativeRun},
		{"collapse", shellLoop},
		{"deep", deepRun},
		{"hostile", hostileRun},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := report.Tree(&b, tt.tr()); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if strings.HasPrefix(tt.name, "hostile") {
				assertTerminalSafe(t, tt.name, out)
			}
			golden(t, tt.name, out)
		})
	}
}
