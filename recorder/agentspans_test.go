package recorder

import (
	"encoding/hex"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// sid makes a span id from one distinguishing byte.
func sid(b byte) []byte { return []byte{0x5a, 0, 0, 0, 0, 0, 0, b} }

// The run's trace and root span, as the agent's TRACEPARENT names them.
var (
	runTraceID = trace.TraceID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0}
	runRootID  = trace.SpanID{0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8}
)

var foreignTrace = trace.TraceID{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff}

func span(name string, tid trace.TraceID, id, parent []byte) *tracepb.Span {
	return &tracepb.Span{Name: name, TraceId: tid[:], SpanId: id, ParentSpanId: parent}
}

// requests splits spans over several exports, as the SDKs do (a child is
// exported before its parent, which ends later).
func request(batches ...[]*tracepb.Span) *tracepb.TracesData {
	req := &tracepb.TracesData{}
	for _, b := range batches {
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{{Spans: b}}})
	}
	return req
}

func TestReparent(t *testing.T) {
	root := runRootID[:]
	type want struct {
		parent  map[string]string // span name → parent span name ("root" for the run's root)
		orphans []string          // names
	}
	for _, tc := range []struct {
		name string
		req  *tracepb.TracesData
		want want
	}{
		{
			name: "honoured traceparent, child exported before parent",
			req: request(
				[]*tracepb.Span{span("llm_request", runTraceID, sid(2), sid(1))},
				[]*tracepb.Span{span("interaction", runTraceID, sid(1), root)},
			),
			want: want{parent: map[string]string{"interaction": "root", "llm_request": "interaction"}},
		},
		{
			name: "foreign trace id: agent ignored TRACEPARENT",
			req: request([]*tracepb.Span{
				span("interaction", foreignTrace, sid(1), nil),
				span("tool", foreignTrace, sid(3), sid(1)),
				span("tool.execution", foreignTrace, sid(4), sid(3)),
			}),
			want: want{parent: map[string]string{"interaction": "root", "tool": "interaction", "tool.execution": "tool"}},
		},
		{
			name: "parent never arrived",
			req: request([]*tracepb.Span{
				span("interaction", runTraceID, sid(1), root),
				span("tool.execution", runTraceID, sid(4), sid(3)), // tool (3) lost
				span("grandchild", runTraceID, sid(5), sid(4)),
			}),
			want: want{
				parent:  map[string]string{"interaction": "root", "tool.execution": "root", "grandchild": "tool.execution"},
				orphans: []string{"tool.execution"},
			},
		},
		{
			name: "all-zero parent id is no parent",
			req:  request([]*tracepb.Span{span("interaction", foreignTrace, sid(1), make([]byte, 8))}),
			want: want{parent: map[string]string{"interaction": "root"}},
		},
		{
			name: "retried export: duplicates kept once",
			req: request(
				[]*tracepb.Span{span("interaction", runTraceID, sid(1), root)},
				[]*tracepb.Span{span("interaction", runTraceID, sid(1), root)},
			),
			want: want{parent: map[string]string{"interaction": "root"}},
		},
		{
			name: "parent loop is cut",
			req: request([]*tracepb.Span{
				span("a", runTraceID, sid(1), sid(2)),
				span("b", runTraceID, sid(2), sid(1)),
			}),
			want: want{parent: map[string]string{"a": "root", "b": "a"}, orphans: []string{"a"}},
		},
		{
			name: "invalid ids and a span claiming the root's id are dropped",
			req: request([]*tracepb.Span{
				span("interaction", runTraceID, sid(1), root),
				{Name: "short", TraceId: runTraceID[:4], SpanId: sid(9)},
				span("impostor", runTraceID, root, nil),
			}),
			want: want{parent: map[string]string{"interaction": "root"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := proto.Clone(tc.req)
			spans, orphans := Reparent(tc.req, runTraceID, runRootID)
			if !proto.Equal(before, tc.req) {
				t.Error("Reparent modified its input")
			}
			nameOf := map[string]string{hex.EncodeToString(root): "root"}
			for _, s := range spans {
				nameOf[hex.EncodeToString(s.SpanId)] = s.Name
			}
			got := map[string]string{}
			for _, s := range spans {
				if trace.TraceID(s.TraceId) != runTraceID {
					t.Errorf("%s trace id %x, want the run's", s.Name, s.TraceId)
				}
				got[s.Name] = nameOf[hex.EncodeToString(s.ParentSpanId)]
			}
			if len(got) != len(spans) || len(got) != len(tc.want.parent) {
				t.Errorf("got %d spans %v, want %v", len(spans), got, tc.want.parent)
			}
			for n, p := range tc.want.parent {
				if got[n] != p {
					t.Errorf("%s parent = %q, want %q", n, got[n], p)
				}
			}
			var gotOrphans []string
			for _, o := range orphans {
				gotOrphans = append(gotOrphans, nameOf[o])
			}
			if !slices.Equal(gotOrphans, tc.want.orphans) {
				t.Errorf("orphans %v, want %v", gotOrphans, tc.want.orphans)
			}
		})
	}
}

// A link into a trace that Reparent moves is moved with it; a link to
// some other trace is left alone.
func TestReparentLinks(t *testing.T) {
	other := trace.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}
	s := span("tool", foreignTrace, sid(3), nil)
	s.Links = []*tracepb.Span_Link{
		{TraceId: foreignTrace[:], SpanId: sid(1)},
		{TraceId: other[:], SpanId: sid(7)},
	}
	spans, _ := Reparent(request([]*tracepb.Span{s, span("interaction", foreignTrace, sid(1), nil)}), runTraceID, runRootID)
	links := spans[0].Links
	if trace.TraceID(links[0].TraceId) != runTraceID {
		t.Errorf("link into the moved trace points at %x", links[0].TraceId)
	}
	if trace.TraceID(links[1].TraceId) != other {
		t.Errorf("link to an unrelated trace rewritten to %x", links[1].TraceId)
	}
}

func TestMergeTraces(t *testing.T) {
	// The payloads are what the receiver emits: ExportTraceServiceRequests,
	// read back as the wire-identical TracesData.
	a, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: request([]*tracepb.Span{span("a", runTraceID, sid(1), nil)}).ResourceSpans})
	b, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: request([]*tracepb.Span{span("b", runTraceID, sid(2), nil)}).ResourceSpans})
	m, err := MergeTraces(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ResourceSpans) != 2 || m.ResourceSpans[1].ScopeSpans[0].Spans[0].Name != "b" {
		t.Errorf("merged %v", m)
	}
	if _, err := MergeTraces(a, []byte{0xff, 0xff}); err == nil {
		t.Error("a corrupt payload merged without error")
	}
}
