package recorder

import (
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentwatch/agentwatch/telemetry"
)

// minSpan is the duration of a span that is one instant (a single file
// operation, a connect): backends warn about spans of zero length.
const minSpan = time.Microsecond

// fitIntervals makes every span last at least minSpan, keeps the agent's
// claims inside their parents, and widens the root over everything under
// it, as trace backends expect (they warn about zero-length spans and
// adjust, as clock skew, children outside their parent):
//
//   - the root (agent_run) ends when agentwatch is done with the run: the
//     end-of-run evidence (git_diff, secret_scan) is taken after the
//     command exits, and lies inside it;
//   - the agent's own spans and the model calls it reported are claims on
//     its clock: moved inside their parent, they keep the times they
//     claimed in agentwatch.claimed.start / .end;
//   - agentwatch's observations keep their times: a process that outlives
//     its parent really did (an orphan), and its span says so.
func fitIntervals(t *telemetry.Trace) {
	idx := make(map[trace.SpanID]int, len(t.Spans))
	for i := range t.Spans {
		idx[t.Spans[i].SpanID] = i
	}
	// Each span's depth once (memoized: a deep process chain must not
	// cost a walk to the root per span); -2 marks a span being resolved,
	// so a parent cycle ends at depth 0 instead of recursing forever.
	depth := make([]int, len(t.Spans))
	for i := range depth {
		depth[i] = -1
	}
	var depthOf func(i int) int
	depthOf = func(i int) int {
		switch depth[i] {
		case -1:
		case -2:
			return 0
		default:
			return depth[i]
		}
		depth[i] = -2
		d := 0
		if p, ok := idx[t.Spans[i].ParentID]; ok && t.Spans[i].ParentID.IsValid() {
			d = depthOf(p) + 1
		}
		depth[i] = d
		return d
	}
	byDepth := [][]int{}
	for i := range t.Spans {
		d := depthOf(i)
		for len(byDepth) <= d {
			byDepth = append(byDepth, nil)
		}
		byDepth[d] = append(byDepth[d], i)
	}
	// Whole microseconds, start rounded down and end up: Jaeger (and
	// Zipkin) keep microseconds, and truncating nanosecond times there put a
	// child that ends where its parent ends one microsecond past it (a
	// clock-skew warning). Rounding outwards keeps every containment that
	// held in nanoseconds.
	for i := range t.Spans {
		s := &t.Spans[i]
		s.Start = s.Start.Truncate(minSpan)
		if e := s.End.Truncate(minSpan); e.Before(s.End) {
			s.End = e.Add(minSpan)
		}
		if !s.End.After(s.Start) {
			s.End = s.Start.Add(minSpan)
		}
	}
	// Deepest first: a claim's parent claim is fitted after it.
	for d := len(byDepth) - 1; d > 0; d-- {
		for _, i := range byDepth[d] {
			if s := &t.Spans[i]; isClaim(s) {
				claimIn(s, &t.Spans[idx[s.ParentID]])
			}
		}
	}
	if root := t.Root(); root != nil {
		for i := range t.Spans {
			if t.Spans[i].End.After(root.End) {
				root.End = t.Spans[i].End
			}
		}
	}
}

// isClaim: a span whose times the agent reported (its own exporter, or
// its logs' model calls), not agentwatch's observation.
func isClaim(s *telemetry.Span) bool {
	if s.Type() == telemetry.SpanAgent {
		return true
	}
	v, ok := s.Attr(telemetry.SpanSource)
	return ok && v.AsString() == telemetry.SourceAgentTelemetry
}

// claimIn moves an agent-claimed span inside its parent p, recording the
// times it claimed when they change.
func claimIn(s, p *telemetry.Span) {
	if !s.Start.Before(p.Start) && !s.End.After(p.End) {
		return
	}
	s.SetAttr(telemetry.ClaimedStart.String(s.Start.UTC().Format(time.RFC3339Nano)))
	s.SetAttr(telemetry.ClaimedEnd.String(s.End.UTC().Format(time.RFC3339Nano)))
	d := s.End.Sub(s.Start)
	if span := p.End.Sub(p.Start); d > span {
		d = span
	}
	start := s.Start
	if start.Before(p.Start) {
		start = p.Start
	}
	if start.Add(d).After(p.End) {
		start = p.End.Add(-d)
	}
	s.Start, s.End = start, start.Add(d)
	if !s.End.After(s.Start) {
		s.Start, s.End = p.Start, p.Start.Add(min(minSpan, p.End.Sub(p.Start)))
	}
}
