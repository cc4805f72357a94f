package otlp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The W2.5 decision (item 6): the collector's pdata could replace the
// hand-written encoder if it marshalled OTLP/JSON as fast. Our requests are
// protobuf structs (go.opentelemetry.io/proto/otlp), so using pdata means
// proto bytes → pdata → JSON; these benchmarks price both paths on a run of
// n spans shaped like a real one (processes with argv and executable
// attributes, file spans, events), and the test checks they agree.

func benchRequest(n int) *coltracepb.ExportTraceServiceRequest {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
	}
	tid := bytes.Repeat([]byte{7}, 16)
	spans := make([]*tracepb.Span, n)
	for i := range spans {
		sid := []byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 1, 2, 3, 4}
		sp := &tracepb.Span{
			TraceId: tid, SpanId: sid, ParentSpanId: []byte{0, 0, 0, 0, 1, 2, 3, 4},
			Name: "gcc", Kind: tracepb.Span_SPAN_KIND_INTERNAL,
			StartTimeUnixNano: 1767225600123456789 + uint64(i)*1000, EndTimeUnixNano: 1767225600123456789 + uint64(i)*1000 + 500,
			Attributes: []*commonpb.KeyValue{
				str("agentwatch.span.type", "bash_command"),
				str("process.command_line", fmt.Sprintf("gcc -O2 -c src/file_%d.c -o build/file_%d.o", i, i)),
				str("process.executable.path", "/usr/bin/x86_64-linux-gnu-gcc-14"),
				str("process.executable.name", "gcc"),
				num("process.pid", int64(1000+i)),
				num("process.parent_pid", 999),
				num("process.exit.code", 0),
				str("openinference.span.kind", "TOOL"),
			},
			Status: &tracepb.Status{},
		}
		if i%10 == 0 {
			sp.Events = []*tracepb.Span_Event{{TimeUnixNano: sp.StartTimeUnixNano + 10, Name: "agentwatch.alert", Attributes: sp.Attributes[:2]}}
		}
		spans[i] = sp
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "agentwatch"), str("host.name", "runner-1")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: ScopeName}, Spans: spans}},
	}}}
}

func viaPdata(req *coltracepb.ExportTraceServiceRequest) ([]byte, error) {
	raw, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	pr := ptraceotlp.NewExportRequest()
	if err := pr.UnmarshalProto(raw); err != nil {
		return nil, err
	}
	return pr.MarshalJSON()
}

func TestPdataAgreesWithEncoder(t *testing.T) {
	req := benchRequest(50)
	ours, err := MarshalJSON(req)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := viaPdata(req)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(ours, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(theirs, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("pdata and the encoder disagree\n ours %.600s\npdata %.600s", ours, theirs)
	}
}

func BenchmarkJSONEncoder(b *testing.B) {
	req := benchRequest(20000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalJSON(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONPdata(b *testing.B) {
	req := benchRequest(20000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := viaPdata(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONPdataOnly is pdata's JSON marshalling alone, as if the
// recorder built pdata directly instead of protobuf structs.
func BenchmarkJSONPdataOnly(b *testing.B) {
	raw, err := proto.Marshal(benchRequest(20000))
	if err != nil {
		b.Fatal(err)
	}
	pr := ptraceotlp.NewExportRequest()
	if err := pr.UnmarshalProto(raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pr.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}
