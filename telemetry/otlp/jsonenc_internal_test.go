package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestEncoderMatchesProtojson holds the hand-written encoder to protojson's
// output (ids turned to hex), value for value, over every field and value
// kind, zero values, escapes and invalid UTF-8-free edge cases.
func TestEncoderMatchesProtojson(t *testing.T) {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	kv := func(k string, v *commonpb.AnyValue) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: v} }
	attrs := []*commonpb.KeyValue{
		kv("s", str("bash -c 'echo <a> & \"b\"\\ \n\t\r\x01 é ✓'")),
		kv("empty", str("")),
		kv("b", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: false}}),
		kv("i", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -1 << 62}}),
		kv("zero", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{}}),
		kv("d", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1e21}}),
		kv("d2", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.1}}),
		kv("nan", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: math.NaN()}}),
		kv("inf", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: math.Inf(-1)}}),
		kv("bytes", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1, 255}}}),
		kv("arr", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{str("x"), str("y")}}}}),
		kv("emptyarr", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{}}}),
		kv("kvl", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{kv("k", str("v"))}}}}),
		kv("nil", nil),
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:  &resourcepb.Resource{Attributes: attrs[:2], DroppedAttributesCount: 3},
		SchemaUrl: "https://opentelemetry.io/schemas/1.41.0",
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: ScopeName, Version: "1.2.3"},
			Spans: []*tracepb.Span{
				{
					TraceId: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8},
					Name: "agent_run", Kind: tracepb.Span_SPAN_KIND_INTERNAL, StartTimeUnixNano: 1767225600123456789, EndTimeUnixNano: 1767225601123456789,
					Attributes: attrs, Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "exit 1"},
				},
				{
					TraceId: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanId: []byte{8, 7, 6, 5, 4, 3, 2, 1},
					ParentSpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "network_call", Kind: tracepb.Span_SPAN_KIND_CLIENT,
					Flags: 0x100, TraceState: "a=b", DroppedAttributesCount: 1, DroppedEventsCount: 2, DroppedLinksCount: 3,
					Events: []*tracepb.Span_Event{{TimeUnixNano: 5, Name: "agentwatch.alert", Attributes: attrs[:1]}, {Name: "bare"}},
					Links:  []*tracepb.Span_Link{{TraceId: make([]byte, 16), SpanId: []byte{9, 9, 9, 9, 9, 9, 9, 9}, Flags: 1, Attributes: attrs[2:3]}},
					Status: &tracepb.Status{},
				},
			},
		}},
	}}}
	want, err := protojson.MarshalOptions{UseEnumNumbers: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want, err = rewriteIDs(want, base64ToHex)
	if err != nil {
		t.Fatal(err)
	}
	got, err := MarshalJSON(req)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("our output is not JSON: %v\n%s", err, got)
	}
	json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("encoder differs from protojson\n got %s\nwant %s", got, want)
	}
}

func TestEncoderReplacesInvalidUTF8(t *testing.T) {
	got := string(appendString(nil, "a\xffb"))
	if got != "\"a\ufffdb\"" {
		t.Errorf("appendString = %q", got)
	}
}

// base64ToHex turns protojson's ids into the OTLP JSON encoding's, for the
// comparison above.
func base64ToHex(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
