package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

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
	for i, kv := range root.Attrs {
		if kv.Key == telemetry.TelemetryGaps {
			root.Attrs[i] = telemetry.TelemetryGaps.StringSlice([]string{"netwatch: dns proxy disabled",
				"fswatch: inotify watch limit reached (fs.inotify.max_user_watches=8192), 1204 directories not watched"})
		}
	}
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
		o    report.TreeOptions
	}{
		{"representative", representativeRun, report.TreeOptions{}},
		{"representative-w120", representativeRun, report.TreeOptions{Width: 120}},
		{"representative-w60", representativeRun, report.TreeOptions{Width: 60}},
		{"representative-w60-color", representativeRun, report.TreeOptions{Width: 60, Color: true}},
		{"collapse", shellLoop, report.TreeOptions{}},
		{"collapse-w60", shellLoop, report.TreeOptions{Width: 60}},
		{"deep", deepRun, report.TreeOptions{}},
		{"deep-w60", deepRun, report.TreeOptions{Width: 60}},
		{"hostile", hostileRun, report.TreeOptions{}},
		{"hostile-w60", hostileRun, report.TreeOptions{Width: 60}},
		{"hostile-w60-color", hostileRun, report.TreeOptions{Width: 60, Color: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := report.TreeWith(&b, tt.tr(), tt.o); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if tt.o.Color {
				if !strings.Contains(out, "\x1b[") {
					t.Errorf("colour on, yet no SGR code:\n%s", out)
				}
				assertOnlyOurSGR(t, out)
			} else if strings.ContainsRune(out, 0x1b) {
				t.Errorf("colour off, yet an ESC in the output:\n%q", out)
			}
			if tt.o.Width > 0 {
				assertFits(t, plainText(out), tt.o.Width)
			}
			if strings.HasPrefix(tt.name, "hostile") {
				assertTerminalSafe(t, tt.name, plainText(out))
			}
			golden(t, tt.name, out)
		})
	}
}

// sgrCodes are the only escape sequences show may write: its own colours.
var sgrCodes = []string{"\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[0m"}

// assertOnlyOurSGR parses out: every ESC starts one of sgrCodes, each
// colour is reset on its line, and no line ends inside a colour.
func assertOnlyOurSGR(t *testing.T, out string) {
	t.Helper()
	for n, line := range strings.Split(out, "\n") {
		open := false
		for i := 0; i < len(line); i++ {
			if line[i] != 0x1b {
				continue
			}
			code := ""
			for _, c := range sgrCodes {
				if strings.HasPrefix(line[i:], c) {
					code = c
				}
			}
			if code == "" {
				t.Errorf("line %d: an ESC that is not one of our SGR codes at byte %d: %q", n+1, i, line)
				return
			}
			open = code != "\x1b[0m"
			i += len(code) - 1
		}
		if open {
			t.Errorf("line %d ends inside a colour: %q", n+1, line)
		}
	}
}

// plainText is out without our SGR codes.
func plainText(out string) string {
	for _, c := range sgrCodes {
		out = strings.ReplaceAll(out, c, "")
	}
	return out
}

// assertFits fails on a line wider than width cells: runes count 1, East
// Asian wide ones 2 (the test's own count, kept simple: the golden files'
// wide characters are CJK).
func assertFits(t *testing.T, out string, width int) {
	t.Helper()
	for n, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		c := 0
		for _, r := range line {
			c++
			if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana) {
				c++
			}
		}
		if c > width {
			t.Errorf("line %d is %d cells wide, more than %d: %q", n+1, c, width, line)
		}
	}
}

// At every width from 1 to 140, in colour or not, every line fits, the
// only ESC bytes are our SGR codes, and the hostile run stays escaped.
func TestTreeFitsEveryWidth(t *testing.T) {
	traces := map[string]*telemetry.Trace{"representative": representativeRun(), "collapse": shellLoop(), "deep": deepRun(),
		"hostile": hostileRun(), "minimal": {RunID: "r"}}
	for name, tr := range traces {
		for w := 1; w <= 140; w++ {
			for _, color := range []bool{false, true} {
				var b bytes.Buffer
				if err := report.TreeWith(&b, tr, report.TreeOptions{Width: w, Color: color}); err != nil {
					t.Fatal(err)
				}
				out := b.String()
				if !color && strings.ContainsRune(out, 0x1b) {
					t.Fatalf("%s at %d: colour off, yet an ESC:\n%q", name, w, out)
				}
				assertOnlyOurSGR(t, out)
				plain := plainText(out)
				assertFits(t, plain, w)
				if name == "hostile" {
					assertTerminalSafe(t, name, plain)
				}
				if t.Failed() {
					t.Fatalf("%s at width %d, colour %v:\n%s", name, w, color, out)
				}
			}
		}
	}
}
