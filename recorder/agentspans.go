package recorder

// The agent's spans placed in the run's trace: decoding the payloads of
// event.AgentTelemetry (traces and metrics) and re-parenting the spans
// under agent_run. Pure functions of the payloads; the receiver that
// produced them (agentotel) is a sensor the recorder does not import.

import (
	"encoding/hex"
	"fmt"
	"github.com/agentwatch/agentwatch/telemetry/otlpvalue"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
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
func Reparent(req *tracepb.TracesData, traceID trace.TraceID, rootSpanID trace.SpanID) (spans []*tracepb.Span, orphans []string) {
	known := map[trace.SpanID]bool{rootSpanID: true}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if !otlpvalue.ValidTraceID(sp.GetTraceId()) || !otlpvalue.ValidSpanID(sp.GetSpanId()) {
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
		case len(parent) == 0 || len(parent) == 8 && !otlpvalue.ValidSpanID(parent):
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
// signal into one request, for Reparent. A payload is a marshalled
// ExportTraceServiceRequest; it is read as a TracesData, which has the
// same wire form (field 1, repeated ResourceSpans) and lives outside the
// OTLP collector packages, so the recorder does not link gRPC.
func MergeTraces(payloads ...[]byte) (*tracepb.TracesData, error) {
	out := &tracepb.TracesData{}
	for i, p := range payloads {
		var req tracepb.TracesData
		if err := proto.Unmarshal(p, &req); err != nil {
			return nil, fmt.Errorf("decoding traces payload %d: %w", i, err)
		}
		out.ResourceSpans = append(out.ResourceSpans, req.ResourceSpans...)
	}
	return out, nil
}

// countDataPoints counts the data points of every metric kind in a
// metrics payload (a marshalled ExportMetricsServiceRequest, read as the
// wire-identical MetricsData), for agentwatch.agent.metrics.
func countDataPoints(payload []byte) (int64, error) {
	var req metricspb.MetricsData
	if err := proto.Unmarshal(payload, &req); err != nil {
		return 0, err
	}
	return otlpvalue.DataPoints(req.GetResourceMetrics()), nil
}
