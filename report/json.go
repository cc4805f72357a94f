package report

import (
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/termtext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// JSONRun is the "run" object of `show --json`: the run's summary from its
// root span. Field names are part of the CLI's interface; add, never rename.
type JSONRun struct {
	ID            string        `json:"id"`
	TraceID       string        `json:"trace_id,omitempty"`
	Command       string        `json:"command,omitempty"`
	Agent         string        `json:"agent,omitempty"`
	User          string        `json:"user,omitempty"`
	Workspace     string        `json:"workspace,omitempty"`
	BaseRevision  string        `json:"base_revision,omitempty"`
	Branch        string        `json:"branch,omitempty"`
	ExitCode      *int64        `json:"exit_code,omitempty"` // absent when unknown
	Signal        string        `json:"signal,omitempty"`
	Start         string        `json:"start,omitempty"` // RFC 3339, UTC, nanoseconds
	End           string        `json:"end,omitempty"`
	DurationMS    float64       `json:"duration_ms"`
	SpanCount     int           `json:"span_count"`
	Sensors       []string      `json:"sensors"`
	TelemetryGaps []string      `json:"telemetry_gaps"`
	EventsDropped int64         `json:"events_dropped"`
	Evidence      *JSONEvidence `json:"evidence,omitempty"` // workspace evidence; absent for runs without any
	Audit         *JSONAudit    `json:"audit,omitempty"`    // audit.go: task, commits, PR, CI, reviews, failure class
}

// JSONSpan is one span of `show --json`, with its children nested, in
// start order.
type JSONSpan struct {
	Name          string         `json:"name"`
	Type          string         `json:"type"` // agentwatch.span.type, else the name
	SpanID        string         `json:"span_id"`
	ParentSpanID  string         `json:"parent_span_id,omitempty"` // absent for the root
	Kind          string         `json:"kind"`                     // internal, client, …
	Start         string         `json:"start"`
	End           string         `json:"end"`
	DurationMS    float64        `json:"duration_ms"`
	Status        string         `json:"status"` // unset, ok, error
	StatusMessage string         `json:"status_message,omitempty"`
	Attributes    map[string]any `json:"attributes"`
	Events        []JSONEvent    `json:"events"`
	Links         []JSONLink     `json:"links,omitempty"`
	ParentMissing bool           `json:"parent_missing,omitempty"` // its parent is not in the trace
	Children      []*JSONSpan    `json:"children"`
}

// JSONEvent is a span event.
type JSONEvent struct {
	Name       string         `json:"name"`
	Time       string         `json:"time"`
	Attributes map[string]any `json:"attributes"`
}

// JSONLink is a span link.
type JSONLink struct {
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	Attributes map[string]any `json:"attributes"`
}

// JSONDocument is the whole `show --json` output: the run and its span
// tree (the root first, then any spans whose parent is missing).
type JSONDocument struct {
	Run   JSONRun     `json:"run"`
	Spans []*JSONSpan `json:"spans"`
}

// Document builds the JSON document for tr.
func Document(tr *telemetry.Trace) JSONDocument {
	doc := JSONDocument{Run: jsonRun(tr), Spans: []*JSONSpan{}}
	for _, top := range buildTree(tr) {
		doc.Spans = append(doc.Spans, jsonSpan(top))
	}
	return doc
}

// JSON writes the run as one JSON document: the summary and nested spans
// (see JSONDocument for the field names). Attribute values keep their JSON
// types: strings, booleans, numbers and arrays of them.
//
// The strings are the run's, faithfully: a decoder gets every character
// back. But the bytes are safe on a terminal too (`show --json` is often
// read there): encoding/json escapes C0 controls and U+2028/U+2029, and
// what it leaves raw — DEL, C1 controls, bidi and other format
// characters, everything termtext.Escape would show escaped — is written
// as a JSON \u escape.
func JSON(w io.Writer, tr *telemetry.Trace) error {
	return WriteJSON(w, Document(tr))
}

// WriteJSON writes v as indented JSON whose bytes are safe on a terminal
// (termtext.JSON), like show --json: every agentwatch command that prints
// JSON writes it through here.
func WriteJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // command lines with < > & stay readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(termtext.JSON(buf.Bytes()))
	return err
}

func jsonRun(tr *telemetry.Trace) JSONRun {
	r := JSONRun{ID: tr.RunID, SpanCount: len(tr.Spans), Sensors: []string{}, TelemetryGaps: []string{}}
	root := tr.Root()
	if root == nil {
		return r
	}
	r.TraceID = root.TraceID.String()
	r.Command = root.CommandLine()
	r.Agent = str(root, telemetry.GenAIAgentName)
	r.User = str(root, telemetry.RunUser)
	r.Workspace = str(root, telemetry.Workspace)
	r.BaseRevision = str(root, telemetry.VCSRefHeadRevision)
	r.Branch = str(root, telemetry.VCSRefHeadName)
	if v, ok := root.Attr(telemetry.ProcessExitCode); ok {
		code := v.AsInt64()
		r.ExitCode = &code
	}
	r.Signal = str(root, telemetry.ProcessSignal)
	r.Start, r.End = timestamp(root.Start), timestamp(root.End)
	r.DurationMS = millis(root.End.Sub(root.Start))
	if v := strs(root, telemetry.Sensors); v != nil {
		r.Sensors = v
	}
	if v := strs(root, telemetry.TelemetryGaps); v != nil {
		r.TelemetryGaps = v
	}
	if v, ok := root.Attr(telemetry.EventsDropped); ok {
		r.EventsDropped = v.AsInt64()
	}
	r.Evidence = evidenceOf(tr)
	r.Audit = auditOf(tr)
	return r
}

func jsonSpan(n *node) *JSONSpan {
	s := n.span
	typ := str(s, telemetry.SpanType)
	if typ == "" {
		typ = s.Name
	}
	js := &JSONSpan{
		Name:          s.Name,
		Type:          typ,
		SpanID:        s.SpanID.String(),
		Kind:          s.Kind.String(),
		Start:         timestamp(s.Start),
		End:           timestamp(s.End),
		DurationMS:    millis(s.End.Sub(s.Start)),
		Status:        statusName(s.Status),
		StatusMessage: s.StatusMessage,
		Attributes:    attrMap(s.Attrs),
		Events:        []JSONEvent{},
		ParentMissing: n.orphan,
		Children:      []*JSONSpan{},
	}
	if s.ParentID.IsValid() {
		js.ParentSpanID = s.ParentID.String()
	}
	for _, e := range s.Events {
		js.Events = append(js.Events, JSONEvent{Name: e.Name, Time: timestamp(e.Time), Attributes: attrMap(e.Attrs)})
	}
	for _, l := range s.Links {
		js.Links = append(js.Links, JSONLink{TraceID: l.TraceID.String(), SpanID: l.SpanID.String(), Attributes: attrMap(l.Attrs)})
	}
	for _, c := range n.children {
		js.Children = append(js.Children, jsonSpan(c))
	}
	return js
}

func attrMap(attrs []attribute.KeyValue) map[string]any {
	m := make(map[string]any, len(attrs))
	for _, kv := range attrs {
		if kv.Value.Type() == attribute.INVALID {
			continue
		}
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

func statusName(c codes.Code) string {
	switch c {
	case codes.Ok:
		return "ok"
	case codes.Error:
		return "error"
	}
	return "unset"
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// millis keeps microsecond precision: kernel-timed spans are often well
// under a millisecond.
func millis(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return float64(d.Microseconds()) / 1000
}
