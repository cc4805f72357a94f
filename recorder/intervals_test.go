package recorder

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwatch/agentwatch/telemetry"
)

func TestFitIntervals(t *testing.T) {
	id := func(n byte) trace.SpanID { return trace.SpanID{n} }
	sp := func(n, parent byte, typ string, start, end int) telemetry.Span {
		s := telemetry.Span{SpanID: id(n), Name: typ, Start: at(start), End: at(end),
			Attrs: []attribute.KeyValue{telemetry.SpanType.String(typ)}}
		if parent != 0 {
			s.ParentID = id(parent)
		}
		return s
	}
	tr := &telemetry.Trace{Spans: []telemetry.Span{
		sp(1, 0, telemetry.SpanAgentRun, 0, 100),
		sp(2, 1, telemetry.SpanBashCommand, 10, 50),
		sp(3, 2, telemetry.SpanBashCommand, 20, 80), // an orphan that outlived its parent
		sp(4, 2, telemetry.SpanFileWrite, 30, 30),   // one instant
		sp(5, 1, telemetry.SpanSecretScan, 100, 120),
		sp(6, 2, telemetry.SpanAgent, 5, 15), // the agent's claim, partly before its parent
	}}
	fitIntervals(tr)
	s := tr.Spans
	if !s[0].End.Equal(at(120)) {
		t.Errorf("root ends %v, want the secret scan's end %v", s[0].End, at(120))
	}
	if !s[2].End.Equal(at(80)) || !s[1].End.Equal(at(50)) {
		t.Errorf("orphan %v..%v, parent ends %v: observed times must stand", s[2].Start, s[2].End, s[1].End)
	}
	if s[3].End.Sub(s[3].Start) != minSpan {
		t.Errorf("instant span lasts %v, want %v", s[3].End.Sub(s[3].Start), minSpan)
	}
	if !s[5].Start.Equal(at(10)) || !s[5].End.Equal(at(20)) {
		t.Errorf("claim moved to %v..%v, want %v..%v", s[5].Start, s[5].End, at(10), at(20))
	}
	if v, _ := s[5].Attr(telemetry.ClaimedStart); v.AsString() != at(5).UTC().Format(time.RFC3339Nano) {
		t.Errorf("claimed start %q", v.AsString())
	}
}

// Spans the agent sent can name each other as parents: fitting them ends.
func TestFitIntervalsParentCycle(t *testing.T) {
	a := telemetry.Span{SpanID: trace.SpanID{1}, ParentID: trace.SpanID{2}, Start: at(0), End: at(5),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgent)}}
	b := telemetry.Span{SpanID: trace.SpanID{2}, ParentID: trace.SpanID{1}, Start: at(3), End: at(9),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgent)}}
	tr := &telemetry.Trace{Spans: []telemetry.Span{a, b}}
	fitIntervals(tr)
	for _, s := range tr.Spans {
		if !s.End.After(s.Start) {
			t.Errorf("span %s %v..%v", s.SpanID, s.Start, s.End)
		}
	}
}

// Backends keep microseconds: times rounded outwards to whole
// microseconds keep a child that ended with its parent inside it there
// (truncating each nanosecond time put it one microsecond past).
func TestFitIntervalsWholeMicroseconds(t *testing.T) {
	base := time.Unix(1767225600, 700) // 700 ns past a microsecond
	root := telemetry.Span{SpanID: trace.SpanID{1}, Start: base, End: base.Add(105_722_600 * time.Nanosecond),
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun)}}
	scan := telemetry.Span{SpanID: trace.SpanID{2}, ParentID: trace.SpanID{1}, Start: root.End, End: root.End,
		Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanSecretScan)}}
	tr := &telemetry.Trace{Spans: []telemetry.Span{root, scan}}
	fitIntervals(tr)
	us := func(t time.Time) int64 { return t.UnixNano() / 1000 }
	r, s := tr.Spans[0], tr.Spans[1]
	for _, x := range []time.Time{r.Start, r.End, s.Start, s.End} {
		if x.UnixNano()%1000 != 0 {
			t.Errorf("%v is not a whole microsecond", x)
		}
	}
	if us(s.Start) < us(r.Start) || us(s.End) > us(r.End) || us(s.End)-us(s.Start) < 1 {
		t.Errorf("in microseconds the scan [%d, %d] is not inside the root [%d, %d]", us(s.Start), us(s.End), us(r.Start), us(r.End))
	}
}
