// Package redact is agentwatch's one redactor: every string of a run
// passes through it before any sink (the trace and its span names,
// attributes and events; the store's rows and artifacts such as the diff;
// file paths; the end-of-run summary, which is printed from the trace).
//
// It removes three things:
//   - given values: those of the environment variables the policy
//     dropped, when they are secrets (Secrets decides which), and the
//     secrets the end-of-run scan found by their context;
//   - every match of the credential table of package secretscan (the one
//     definition of a token's shape the secret scan reports from too),
//     as [REDACTED:rule];
//   - credentials found by their context: passwords in URLs, bearer and
//     basic credentials, NAME=value for a secret NAME, --password x.
//
// A replacement is made in place, so the rest of the string keeps its
// shape: dir-ghp_… becomes dir-[REDACTED:github-token], a repository URL
// keeps its host and path. Redacting is idempotent: a redacted string
// passes through unchanged. It owns no I/O and no sink: sinks never
// redact, they are handed redacted data.
package redact

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/agentwatch/agentwatch/secretscan"
)

// Marker replaces a secret found by its value or its context.
// secretscan's table replaces with "[REDACTED:rule]".
const Marker = "[REDACTED]"

// markerRE is what a redaction leaves: never redacted again. Only the
// markers a redaction writes count — [REDACTED] and [REDACTED:rule] for a
// rule of the table — so the agent cannot shield a token by wrapping it
// in a marker of its own ("[REDACTED:xoxb-…]"). Compiled on first use
// (with secretscan's table): the run's init process needs neither.
var markerRE = sync.OnceValue(func() *regexp.Regexp {
	names := secretscan.RuleNames()
	for i, n := range names {
		names[i] = regexp.QuoteMeta(n)
	}
	return regexp.MustCompile(`\[REDACTED(?::(?:` + strings.Join(names, "|") + `))?\]`)
})

// Redactor redacts strings for one run. The zero value and nil redact
// shapes and contexts only (no dropped values). It is safe for concurrent
// use.
type Redactor struct {
	values *strings.Replacer // nil: no values
}

// New returns a redactor for the given secret values (Secrets' result),
// replaced wherever they appear, longer values first so that a value
// containing another is replaced whole. Empty values and values that
// contain a marker are ignored.
func New(values []string) *Redactor {
	vals := slices.Clone(values)
	sort.SliceStable(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	var pairs []string
	for i, v := range vals {
		if v == "" || markerRE().MatchString(v) || i > 0 && v == vals[i-1] {
			continue
		}
		pairs = append(pairs, v, Marker)
	}
	r := &Redactor{}
	if len(pairs) > 0 {
		r.values = strings.NewReplacer(pairs...)
	}
	return r
}

// maxPasses bounds the fixpoint loop of String: one pass almost always
// suffices; a second catches a context rule that a replacement exposed.
const maxPasses = 4

// String returns s with every secret replaced.
func (r *Redactor) String(s string) string {
	return r.apply(s, false)
}

// Content is String plus "name": "value" and name: value pairs whose name
// says secret (JSON bodies, YAML, an x-api-key header): for captured
// content (prompts, responses, tool arguments, command output). Metadata
// does not get this rule: "fix token: handle expiry" in a commit message
// is prose.
func (r *Redactor) Content(s string) string {
	return r.apply(s, true)
}

func (r *Redactor) apply(s string, content bool) string {
	if s == "" {
		return s
	}
	for range maxPasses {
		out := r.pass(s, content)
		if out == s {
			break
		}
		s = out
	}
	return s
}

// pass is one round of the three steps, each on the text between the
// markers the steps before left, so a rule never reads into a marker
// (https://[REDACTED:github-token]@host is not a URL password).
func (r *Redactor) pass(s string, content bool) string {
	s = outsideMarkers(s, func(t string) string { out, _ := secretscan.RedactString(t); return out })
	if r != nil && r.values != nil {
		s = outsideMarkers(s, r.values.Replace)
	}
	s = outsideMarkers(s, contextRules)
	if content {
		s = outsideMarkers(s, keyedRule)
	}
	return s
}

// outsideMarkers applies f to the text between markers.
func outsideMarkers(s string, f func(string) string) string {
	if s == "" {
		return s
	}
	if !strings.Contains(s, "[REDACTED") { // every marker starts so; the regexp is the slow part
		return f(s)
	}
	locs := markerRE().FindAllStringIndex(s, -1)
	if locs == nil {
		return f(s)
	}
	var b strings.Builder
	last := 0
	for _, l := range locs {
		if l[0] > last {
			b.WriteString(f(s[last:l[0]]))
		}
		b.WriteString(s[l[0]:l[1]])
		last = l[1]
	}
	if last < len(s) {
		b.WriteString(f(s[last:]))
	}
	return b.String()
}

// Bytes redacts a file or a diff (the stored diff artifact): the table
// line by line (PEM bodies across lines), dropped values, and the context
// rules on each line. Lines keep their count and order.
func (r *Redactor) Bytes(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	out, _ := secretscan.Redact(b)
	var buf strings.Builder
	buf.Grow(len(out))
	rest := string(out)
	for rest != "" {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		buf.WriteString(r.String(line))
	}
	return []byte(buf.String())
}

// Strings redacts each element; the input is not modified.
func (r *Redactor) Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.String(s)
	}
	return out
}
