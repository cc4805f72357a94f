package report_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// Strings a hostile agent would give a file, an argv, a DNS name, a span:
// each tries to drive the terminal or to forge a line of `show`.
const (
	osc52   = "pwn\x1b]52;c;ZWNobyBwd25lZA==\x07"
	title   = "\x1b]0;all good\x1b\\"
	clear   = "\x1b[2J\x1b[H"
	forged  = "x\nFORGED Exit 0"
	crOver  = "evil.sh\rREADME.md"
	rlo     = "invoice\u202egpj.sh"
	csi8    = "a\u009b2Jb"
	badUTF8 = "bad\xff\xfe"
	tabbed  = "col\tshift"
)

// hostileTrace puts those strings in every field the tree, the audit
// trail, the alerts and the evidence print.
func hostileTrace() *telemetry.Trace {
	ws := "/ws/" + rlo
	root := span(1, 0, telemetry.SpanAgentRun, 0, 1000,
		telemetry.RunID.String("r-"+title),
		telemetry.ProcessCommandLine.String("bash -c '"+osc52+"'"),
		telemetry.GenAIAgentName.String(clear),
		telemetry.RunUser.String(crOver),
		telemetry.Workspace.String(ws),
		telemetry.VCSRefHeadName.String(forged),
		telemetry.VCSRefHeadRevision.String("0123456789abcdef"),
		telemetry.HeadAfter.String("fedcba9876543210"),
		telemetry.TelemetryGaps.StringSlice([]string{csi8}),
		telemetry.TaskID.String(tabbed),
		telemetry.FailureClass.String(forged),
		telemetry.PolicySource.String(badUTF8),
		telemetry.FilesTouched.StringSlice([]string{osc52, crOver, `a", "b`}), // relative, as the recorder keeps them
		telemetry.EvidenceErrors.StringSlice([]string{forged}),
	)
	file := span(2, 1, telemetry.SpanFileWrite, 10, 20,
		telemetry.FilePath.String(ws+"/"+osc52),
		telemetry.FileOperations.StringSlice([]string{"create"}),
		telemetry.FileRenamedTo.String(ws+"/"+rlo))
	file.Events = []telemetry.SpanEvent{{Name: telemetry.EventAlert, Time: at(15), Attrs: []attribute.KeyValue{
		telemetry.AlertRule.String("rule" + clear), telemetry.AlertSeverity.String(telemetry.SeverityHigh),
		telemetry.AlertMessage.String(forged)}}}
	dns := span(3, 1, telemetry.SpanNetworkCall, 20, 30,
		telemetry.ServerAddress.String(title+".example"), telemetry.ServerPort.Int(53),
		telemetry.PolicyDecision.String("deny"))
	agentSpan := span(4, 1, "tool "+osc52, 30, 40, telemetry.SpanSource.String("agent"))
	agentSpan.Status, agentSpan.StatusMessage = codes.Error, forged
	review := span(5, 1, telemetry.SpanReview, 50, 50,
		telemetry.ReviewDecision.String("approved"), telemetry.ReviewReviewer.String(crOver),
		telemetry.ReviewNote.String(osc52), telemetry.ReviewSeq.Int(1))
	return &telemetry.Trace{RunID: "r-" + title, Spans: []telemetry.Span{root, file, dns, agentSpan, review}}
}

// assertTerminalSafe fails when out holds a byte or rune a terminal would
// act on or hide, or a line the run forged.
func assertTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s is not valid UTF-8:\n%q", what, out)
	}
	for i, r := range out {
		if r == '\n' {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			t.Errorf("%s holds %U at byte %d:\n%q", what, r, i, out)
			return
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, " │├└─"), "FORGED") {
			t.Errorf("%s has a line the run forged: %q", what, l)
		}
	}
}

func TestTreeEscapesRunText(t *testing.T) {
	var b bytes.Buffer
	if err := report.Tree(&b, hostileTrace()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	assertTerminalSafe(t, "show", out)
	for _, want := range []string{
		`Run        r-\x1b]0;all good\x1b\\` + "\n",
		`Command    bash -c 'pwn\x1b]52;c;ZWNobyBwd25lZA==\x07'` + "\n",
		`Agent      \x1b[2J\x1b[H` + "\n",
		`User       evil.sh\rREADME.md` + "\n",
		`Workspace  /ws/invoice\u202egpj.sh` + "\n",
		`(x\nFORGED Exit 0)` + "\n", // the branch, on the Base line
		`Gaps       a\u009b2Jb` + "\n",
		`  Task           col\tshift` + "\n",
		`  Policy          (bad\xff\xfe)` + "\n",
		`  Review 1       approved by evil.sh\rREADME.md at `,
		`: "pwn\x1b]52;c;ZWNobyBwd25lZA==\x07"` + "\n",
		`  touched     (3) pwn\x1b]52;c;ZWNobyBwd25lZA==\x07, evil.sh\rREADME.md, "a"", ""b"` + "\n",
		`  errors      x\nFORGED Exit 0` + "\n",
		`  high   rule\x1b[2J\x1b[H: x\nFORGED Exit 0  [file_write pwn\x1b]52;c;ZWNobyBwd25lZA==\x07 (create) → invoice\u202egpj.sh]` + "\n",
		`file_write  pwn\x1b]52;c;ZWNobyBwd25lZA==\x07 (create) → invoice\u202egpj.sh  10ms  ⚠ rule\x1b[2J\x1b[H` + "\n",
		`network_call  \x1b]0;all good\x1b\.example:53  10ms  policy deny` + "\n", // \. is no escape: the backslash stays single
		`tool pwn\x1b]52;c;ZWNobyBwd25lZA==\x07  10ms  failed: x\nFORGED Exit 0 ✗` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
}

func TestRunsEscapesRunText(t *testing.T) {
	var b bytes.Buffer
	err := report.Runs(&b, []store.Run{
		{ID: "r\x1b[2J", Start: t0, Command: forged + " " + osc52, Agent: tabbed, ExitCode: 0, Spans: 3},
		{ID: "r2", Start: t0, Command: "plain", Agent: "claude", ExitCode: 0, Spans: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	assertTerminalSafe(t, "runs", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("runs has %d lines, want a header and one per run:\n%s", len(lines), out)
	}
	for _, want := range []string{`r\x1b[2J `, ` col\tshift `, ` x\nFORGED Exit 0 pwn\x1b]52;c;ZWNobyBwd25lZA==\x07`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("runs line lacks %q: %q", want, lines[1])
		}
	}
	// Columns still line up: the agent column starts at the same place.
	if a, b := strings.Index(lines[1], "col"), strings.Index(lines[2], "claude"); a != b {
		t.Errorf("agent column at %d and %d:\n%s", a, b, out)
	}
}

// TestJSONIsTerminalSafeAndFaithful: `show --json` escapes what a
// terminal would act on, as JSON escapes, so a decoder still gets the
// run's exact strings.
func TestJSONIsTerminalSafeAndFaithful(t *testing.T) {
	tr := hostileTrace()
	var b bytes.Buffer
	if err := report.JSON(&b, tr); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	assertTerminalSafe(t, "show --json", out)
	for _, want := range []string{`\u202e`, `\u009b`} {
		if !strings.Contains(out, want) {
			t.Errorf("json lacks %s", want)
		}
	}
	var doc report.JSONDocument
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Run.Command != "bash -c '"+osc52+"'" || doc.Run.Workspace != "/ws/"+rlo || doc.Run.TelemetryGaps[0] != csi8 {
		t.Errorf("json changed the run's strings: %q %q %q", doc.Run.Command, doc.Run.Workspace, doc.Run.TelemetryGaps)
	}
	if got := doc.Spans[0].Children[2].Name; got != "tool "+osc52 {
		t.Errorf("agent span name = %q", got)
	}

	// DEL, C1, tags (above U+FFFF: a surrogate pair) and a zero-width
	// joiner, each read back exactly.
	odd := "d\x7fe\u0085f\U000E0041g\u200dh❤️"
	for i, kv := range tr.Spans[0].Attrs {
		if kv.Key == telemetry.ProcessCommandLine {
			tr.Spans[0].Attrs[i] = telemetry.ProcessCommandLine.String(odd)
		}
	}
	b.Reset()
	if err := report.JSON(&b, tr); err != nil {
		t.Fatal(err)
	}
	assertTerminalSafe(t, "show --json", b.String())
	if !strings.Contains(b.String(), `d\u007fe\u0085f\udb40\udc41g\u200dh❤️`) {
		t.Errorf("json escapes differ:\n%s", b.String())
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Run.Command != odd {
		t.Errorf("json command = %q, want %q", doc.Run.Command, odd)
	}
}
