package agentotel

import (
	"encoding/hex"
	"fmt"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Reparent places the agent's received spans in the run's trace.
//
// Give it every span received during the run in one request (MergeTraces
// builds it from the AgentTelemetry payloads), at the end of the run:
// a parent may arrive in a later export than its child, since the SDKs
// export a span when it ends and parents end last.
//
//   - Trace ids: an agent that honoured TRACEPARENT already uses the run's
//     trace id, and nothing changes. Spans in any other trace (the agent
//     ignored TRACEPARENT, or some program in the tree started its own
//     trace) are moved into the run's trace; links pointing into such a
//     moved trace are moved with it so they still resolve.
//   - Parents: a parent link to a span that arrived, or to rootSpanID, is
//     kept. A span with no parent (the agent's own root, when it ignored
//     TRACEPARENT) is put under rootSpanID; that is expected, not a loss.
//     A span whose parent id is set but never arrived is put under
//     rootSpanID and its span id (hex) is returned in orphans: that is
//     the missing-nested-spans alert.
//   - A span id seen twice (an exporter retry after a lost reply) is kept
//     once, the first time; a parent chain that loops is cut and reported
//     as an orphan.
//
// The request is not modified; the returned spans are copies, in arrival
// order.
func Reparent(req *coltracepb.ExportTraceServiceRequest, traceID trace.TraceID, rootSpanID trace.SpanID) (spans []*tracepb.Span, orphans []string) {
	known := map[trace.SpanID]bool{rootSpanID: true}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if !validTraceID(sp.GetTraceId()) || !validSpanID(sp.GetSpanId()) {
					continue
				}
				// A repeat, or a span claiming the root's own id.
				id := trace.SpanID(sp.GetSpanId())
				if known[id] {
					continue
				}
				known[id] = true
				spans = append(spans, proto.Clone(sp).(*tracepb.Span))
			}
		}
	}

	moved := map[trace.TraceID]bool{}
	for _, sp := range spans {
		if tid := trace.TraceID(sp.TraceId); tid != traceID {
			moved[tid] = true
			sp.TraceId = traceID[:]
		}
		switch parent := sp.GetParentSpanId(); {
		case len(parent) == 0 || allZero(parent):
			sp.ParentSpanId = rootSpanID[:]
		case len(parent) != 8 || !known[trace.SpanID(parent)]:
			sp.ParentSpanId = rootSpanID[:]
			orphans = append(orphans, hex.EncodeToString(sp.SpanId))
		}
	}
	// A parent chain that loops (a span its own ancestor) never reaches
	// the root; cut it at the span where the loop is found.
	parentOf := make(map[trace.SpanID]*tracepb.Span, len(spans))
	for _, sp := range spans {
		parentOf[trace.SpanID(sp.SpanId)] = sp
	}
	for _, sp := range spans {
		cur := sp
		for steps := 0; ; steps++ {
			p := trace.SpanID(cur.ParentSpanId)
			if p == rootSpanID {
				break
			}
			if steps > len(spans) {
				sp.ParentSpanId = rootSpanID[:]
				orphans = append(orphans, hex.EncodeToString(sp.SpanId))
				break
			}
			cur = parentOf[p]
		}
	}
	for _, sp := range spans {
		for _, l := range sp.Links {
			if len(l.TraceId) == 16 && moved[trace.TraceID(l.TraceId)] {
				l.TraceId = traceID[:]
			}
		}
	}
	return spans, orphans
}

// MergeTraces decodes the payloads of AgentTelemetry events of the traces
// signal into one request, for Reparent.
func MergeTraces(payloads ...[]byte) (*coltracepb.ExportTraceServiceRequest, error) {
	out := &coltracepb.ExportTraceServiceRequest{}
	for i, p := range payloads {
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(p, &req); err != nil {
			return nil, fmt.Errorf("decoding traces payload %d: %w", i, err)
		}
		out.ResourceSpans = append(out.ResourceSpans, req.ResourceSpans...)
	}
	return out, nil
}
