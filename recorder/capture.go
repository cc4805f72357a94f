package recorder

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/redact"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Capture is the run's content-capture tier (telemetry.md "Content capture
// tiers"). The zero value is metadata: no prompt, response, tool argument
// or command output is kept.
type Capture struct {
	// Full keeps content, each text through ContentRedactor, until Until.
	Full bool
	// Until is when full capture ends (the --capture-full expiry); content
	// produced later is not kept. Zero with Full: no expiry (tests only —
	// the CLI always sets one).
	Until time.Time
	// OutputBytes bounds the root process's output kept on its span
	// (capture.output_bytes); 0: DefaultOutputBytes.
	OutputBytes int
}

// DefaultOutputBytes is capture.output_bytes when the policy sets none.
const DefaultOutputBytes = 4096

// Active reports whether content produced at t may be kept.
func (c Capture) Active(t time.Time) bool {
	return c.Full && (c.Until.IsZero() || !t.After(c.Until))
}

// Mode is the agentwatch.capture.content value.
func (c Capture) Mode() string {
	if c.Full {
		return "full"
	}
	return "metadata"
}

// ContentRedactor returns the redactor every captured text (prompts,
// responses, tool arguments, command output, the agent's content
// attributes) passes through before any sink sees it: redact.Content with
// the run's dropped values (RunInfo.RedactValues) — the credential table
// of secretscan, the values, passwords in URLs, bearer and basic
// credentials, NAME=value and "name": "value" pairs for secret names.
//
// It is safe for concurrent use.
func ContentRedactor(values []string) func(string) string {
	return redact.New(values).Content
}

// truncateText cuts s to at most n bytes on a character boundary; the cut
// happens after redaction, so it never leaves half a secret behind.
func truncateText(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

// finishCapture records the tier on the root and, in full capture, the
// root process's output on its span.
func (r *Recorder) finishCapture(t *telemetry.Trace, end End, byID map[trace.SpanID]int) {
	c := r.info.Capture
	root := &t.Spans[0]
	root.SetAttr(telemetry.CaptureContent.String(c.Mode()))
	// Every command says which output policy applied to it: none in the
	// metadata tier; in full capture the run's output (its terminal, where
	// every process writes) is kept on the top command, and the others'
	// is part of that, not kept apart.
	policy := telemetry.OutputCaptureNone
	if c.Full {
		policy = telemetry.OutputCaptureRun
	}
	for _, s := range r.spans {
		if i, ok := byID[s.id]; ok && !s.isRoot {
			t.Spans[i].SetAttr(telemetry.CommandOutputCapture.String(policy))
		}
	}
	if !c.Full {
		return
	}
	if !c.Until.IsZero() {
		root.SetAttr(telemetry.CaptureExpires.String(c.Until.UTC().Format(time.RFC3339)))
	}
	if end.OutputTotal == 0 {
		return
	}
	var target *procSpan
	for _, s := range r.spans {
		if !s.isRoot && s.pid == r.info.RootPID && s.parent == r.root.id {
			target = s
			break
		}
	}
	i, ok := 0, false
	if target != nil {
		i, ok = byID[target.id]
	}
	if !ok {
		i = 0 // no exec seen for the child: the root stands for it
	}
	limit := c.OutputBytes
	if limit <= 0 {
		limit = DefaultOutputBytes
	}
	redact := r.redactor().Content
	out, cut := truncateText(redact(strings.ToValidUTF8(string(end.Output), "\uFFFD")), limit)
	sp := &t.Spans[i]
	sp.SetAttr(telemetry.CommandOutputCapture.String(telemetry.OutputCaptureKept))
	sp.SetAttr(telemetry.CommandOutputLimit.Int(limit))
	sp.SetAttr(telemetry.CommandOutput.String(out))
	sp.SetAttr(telemetry.CommandOutputBytes.Int64(end.OutputTotal))
	sp.SetAttr(telemetry.CommandOutputTruncated.Bool(cut || end.OutputTotal > int64(len(end.Output))))
}
