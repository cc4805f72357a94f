// Package telemetry holds the run record's data model — spans of one trace,
// with OpenTelemetry attribute values — and every attribute name and span
// type agentwatch uses, so that a convention rename is one edit here.
//
// It does no I/O: the recorder builds a Trace, sinks (export, store) read it.
package telemetry

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Span is one finished span of the run's trace. The recorder fills it from
// kernel-observed events, so timestamps come from the events, not from the
// clock at construction time.
type Span struct {
	TraceID       trace.TraceID
	SpanID        trace.SpanID
	ParentID      trace.SpanID // zero for the root
	Name          string
	Kind          trace.SpanKind
	Start         time.Time
	End           time.Time
	Attrs         []attribute.KeyValue
	Events        []SpanEvent
	Links         []Link
	Status        codes.Code
	StatusMessage string
}

// SpanEvent is a timestamped annotation on a span (alerts, policy decisions).
type SpanEvent struct {
	Name  string
	Time  time.Time
	Attrs []attribute.KeyValue
}

// Link points at a span in this or another trace.
type Link struct {
	TraceID trace.TraceID
	SpanID  trace.SpanID
	Attrs   []attribute.KeyValue
}

// LinkReviews is the agentwatch.link.relation of a review span's link to
// the run it reviews.
const LinkReviews = "reviews"

// Attr returns the string value of key on the link ("" when unset).
func (l Link) Attr(key attribute.Key) string {
	for _, kv := range l.Attrs {
		if kv.Key == key {
			return kv.Value.AsString()
		}
	}
	return ""
}

// Trace is the whole run record: the root span first, then the rest in
// start order.
type Trace struct {
	RunID    string
	Resource []attribute.KeyValue
	Spans    []Span
}

// Root returns the agent_run span, or nil for an empty trace. A review
// span (its own trace's root, linked to the run) is never the run's root.
func (t *Trace) Root() *Span {
	var first *Span
	for i := range t.Spans {
		if s := &t.Spans[i]; !s.ParentID.IsValid() {
			if s.Type() != SpanReview {
				return s
			}
			if first == nil {
				first = s
			}
		}
	}
	return first
}

// Reviewed returns the span a review span reviews (its "reviews" link)
// when that span is in t.
func (t *Trace) Reviewed(s *Span) *Span {
	for _, l := range s.Links {
		if l.Attr(LinkRelation) != LinkReviews {
			continue
		}
		for i := range t.Spans {
			if t.Spans[i].SpanID == l.SpanID && t.Spans[i].TraceID == l.TraceID {
				return &t.Spans[i]
			}
		}
	}
	return nil
}

// Attr returns the value of key on s, and whether it was set.
func (s *Span) Attr(key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attrs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// SetAttr replaces key's value on s, or appends it.
func (s *Span) SetAttr(kv attribute.KeyValue) {
	for i := range s.Attrs {
		if s.Attrs[i].Key == kv.Key {
			s.Attrs[i] = kv
			return
		}
	}
	s.Attrs = append(s.Attrs, kv)
}

// CommandLine is the span's command line as recorded: CommandLine, or
// process.command_line in runs recorded before it.
func (s *Span) CommandLine() string {
	if v, ok := s.Attr(CommandLine); ok {
		return v.AsString()
	}
	if v, ok := s.Attr(ProcessCommandLine); ok {
		return v.AsString()
	}
	return ""
}

// Type is what the span records (agentwatch.span.type: agent_run,
// bash_command, file_write, …): the key to ask a span by, since its name
// is for people (docs/telemetry.md, "Span names"). A span without the
// attribute (a trace stored before names and types parted) answers its
// name.
func (s *Span) Type() string {
	if v, ok := s.Attr(SpanType); ok && v.AsString() != "" {
		return v.AsString()
	}
	return s.Name
}
