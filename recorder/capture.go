package recorder

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/secretscan"
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

var (
	// "api_key": "x", api-key: x, x-api-key: x, secret_key = x — secrets
	// in JSON, YAML, INI files and HTTP headers, where RedactString's
	// NAME=value rule (no spaces) does not look.
	keyedSecret = regexp.MustCompile(`(?i)("?)([A-Za-z_][A-Za-z0-9_.\-]*)("?\s*[:=]\s*)("[^"\n]*"|'[^'\n]*'|[^\s,;}\]"']+)`)
)

// ContentRedactor returns the redactor every captured text (prompts,
// responses, tool arguments, command output, the agent's content
// attributes) passes through before any sink sees it. It replaces, in this
// order:
//   - the values of the environment variables the policy dropped
//     (RunInfo.RedactValues), wherever they appear, longest first;
//   - everything secretscan's rules find (the same rules as the diff scan:
//     cloud keys, tokens, private-key bodies, generic high-entropy secrets
//     assigned to secret-looking names);
//   - RedactString's shapes: API keys (sk-…, sk-ant-…), GitHub/GitLab/Slack
//     tokens, AWS key ids, JWTs, bearer and basic credentials, passwords in
//     URLs, NAME=value for secret names;
//   - "name": "value" and name: value pairs whose name says secret
//     (JSON bodies, YAML, x-api-key headers).
//
// It is safe for concurrent use.
func ContentRedactor(values []string) func(string) string {
	vals := slices.Clone(values)
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	var pairs []string
	for _, v := range vals {
		if v != "" {
			pairs = append(pairs, v, Redacted)
		}
	}
	var rep *strings.Replacer
	if len(pairs) > 0 {
		rep = strings.NewReplacer(pairs...)
	}
	return func(s string) string {
		if s == "" {
			return s
		}
		if rep != nil {
			s = rep.Replace(s)
		}
		if b, n := secretscan.Redact([]byte(s)); n > 0 {
			s = string(b)
		}
		s = RedactString(s)
		s = keyedSecret.ReplaceAllStringFunc(s, func(m string) string {
			sub := keyedSecret.FindStringSubmatch(m)
			name, val := sub[2], strings.Trim(sub[4], `"'`)
			if val == "" || strings.HasPrefix(val, "[REDACTED") || !isSecretName(name, false) && !strings.EqualFold(name, "x-api-key") {
				return m
			}
			q := ""
			if strings.HasPrefix(sub[4], `"`) || strings.HasPrefix(sub[4], "'") {
				q = sub[4][:1]
			}
			return sub[1] + name + sub[3] + q + Redacted + q
		})
		return s
	}
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
	redact := ContentRedactor(r.info.RedactValues)
	out, cut := truncateText(redact(strings.ToValidUTF8(string(end.Output), "\uFFFD")), limit)
	sp := &t.Spans[i]
	sp.SetAttr(telemetry.CommandOutput.String(out))
	sp.SetAttr(telemetry.CommandOutputBytes.Int64(end.OutputTotal))
	sp.SetAttr(telemetry.CommandOutputTruncated.Bool(cut || end.OutputTotal > int64(len(end.Output))))
}
