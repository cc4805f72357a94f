package export

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// fileSpan is shaped like the recorder's file_write spans.
func fileSpan(i int) *tracepb.Span {
	id := make([]byte, 8)
	binary.BigEndian.PutUint64(id, uint64(i)+1)
	return &tracepb.Span{
		TraceId: []byte("0123456789abcdef"), SpanId: id, ParentSpanId: []byte("parent01"),
		Name: "file_write", StartTimeUnixNano: uint64(i), EndTimeUnixNano: uint64(i) + 1,
		Attributes: []*commonpb.KeyValue{
			strAttr("agentwatch.span.type", "file_write"),
			strAttr("file.path", fmt.Sprintf("src/generated/dir%03d/file-%06d.go", i%1000, i)),
			strAttr("agentwatch.file.operations", "create,write"),
		},
		Status: &tracepb.Status{},
	}
}

func requestOf(resources ...[]*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	for i, spans := range resources {
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
			Resource:  &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", fmt.Sprintf("svc%d", i))}},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
			ScopeSpans: []*tracepb.ScopeSpans{
				{Scope: &commonpb.InstrumentationScope{Name: "a", Version: "1"}, Spans: spans[:len(spans)/2]},
				{Scope: &commonpb.InstrumentationScope{Name: "b"}, Spans: spans[len(spans)/2:]},
			},
		})
	}
	return req
}

// flatten lists every span with the resource and scope it sits under.
func flatten(reqs ...*coltracepb.ExportTraceServiceRequest) []string {
	var out []string
	for _, r := range reqs {
		for _, rs := range r.GetResourceSpans() {
			res := rs.GetResource().GetAttributes()[0].GetValue().GetStringValue() + "|" + rs.GetSchemaUrl()
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					out = append(out, fmt.Sprintf("%s|%s@%s|%x", res, ss.GetScope().GetName(), ss.GetScope().GetVersion(), sp.GetSpanId()))
				}
			}
		}
	}
	return out
}

func TestBatchesSplitBySize(t *testing.T) {
	var a, b []*tracepb.Span
	for i := 0; i < 60000; i++ {
		a = append(a, fileSpan(i))
	}
	for i := 60000; i < 61000; i++ {
		b = append(b, fileSpan(i))
	}
	req := requestOf(a, b)
	total := proto.Size(req)
	for _, limit := range []int{DefaultMaxRequestBytes, 1 << 20, 64 << 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			batches, truncated := Batches(req, limit)
			if truncated != 0 {
				t.Errorf("%d spans truncated, want none", truncated)
			}
			if min := total/limit + 1; len(batches) < min {
				t.Errorf("%d requests for %d bytes at %d per request, want at least %d", len(batches), total, limit, min)
			}
			filled := 0
			for i, bt := range batches {
				n := proto.Size(bt)
				if n > limit {
					t.Fatalf("request %d is %d bytes, over the %d limit", i, n, limit)
				}
				if i < len(batches)-1 {
					filled += n
				}
			}
			// Not wastefully small either: full requests are nearly full.
			if len(batches) > 2 && filled/(len(batches)-1) < limit*9/10 {
				t.Errorf("requests average %d bytes, want close to %d", filled/(len(batches)-1), limit)
			}
			// Every span once, in order, under its own resource and scope.
			got, want := flatten(batches...), flatten(req)
			if len(got) != len(want) {
				t.Fatalf("%d spans in the batches, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("span %d: got %s, want %s", i, got[i], want[i])
				}
			}
		})
	}
	if batches, _ := Batches(req, total); len(batches) != 1 || batches[0] != req {
		t.Errorf("a request at the limit was split into %d", len(batches))
	}
}

func TestBatchesCutOversizedSpan(t *testing.T) {
	const limit = 1 << 20
	big := fileSpan(7)
	big.Name = "bash_command"
	big.Attributes = append(big.Attributes,
		strAttr("process.command_line", strings.Repeat("x", 3<<20)), // a 3 MiB argv
		&commonpb.KeyValue{Key: "process.command_args", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{}}}},
		&commonpb.KeyValue{Key: "process.pid", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 4242}}},
	)
	args := big.Attributes[4].Value.GetArrayValue()
	for i := 0; i < 200000; i++ { // 200,000 short arguments, ~1.8 MB
		args.Values = append(args.Values, &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("arg%05d", i)}})
	}
	for i := 0; i < 3000; i++ {
		big.Events = append(big.Events, &tracepb.Span_Event{Name: "output", Attributes: []*commonpb.KeyValue{strAttr("chunk", strings.Repeat("é", 100))}})
	}
	before := proto.Clone(big)
	req := requestOf([]*tracepb.Span{fileSpan(1), big, fileSpan(2)})
	batches, truncated := Batches(req, limit)
	if truncated != 1 {
		t.Fatalf("%d spans truncated, want 1", truncated)
	}
	if !proto.Equal(big, before) {
		t.Error("cutting changed the caller's span")
	}
	var cut *tracepb.Span
	for _, bt := range batches {
		if n := proto.Size(bt); n > limit {
			t.Errorf("request of %d bytes, over %d", n, limit)
		}
		for _, rs := range bt.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					if sp.Name == "bash_command" {
						cut = sp
					}
				}
			}
		}
	}
	if got := len(flatten(batches...)); got != 3 {
		t.Fatalf("%d spans delivered, want 3", got)
	}
	if cut == nil {
		t.Fatal("the oversized span is missing")
	}
	attrs := map[string]*commonpb.AnyValue{}
	for _, kv := range cut.Attributes {
		attrs[kv.Key] = kv.Value
	}
	if !attrs[AttrTruncated].GetBoolValue() || attrs[AttrOriginalBytes].GetIntValue() != int64(proto.Size(before)) {
		t.Errorf("marker: truncated=%v original_bytes=%d, want true and %d", attrs[AttrTruncated], attrs[AttrOriginalBytes].GetIntValue(), proto.Size(before))
	}
	if string(cut.SpanId) != string(before.(*tracepb.Span).SpanId) || string(cut.ParentSpanId) != "parent01" {
		t.Error("the cut span lost its place in the tree")
	}
	// Small attributes survive whole; the large ones are cut, not lost,
	// when something useful fits.
	if attrs["process.pid"].GetIntValue() != 4242 || attrs["file.path"].GetStringValue() != "src/generated/dir007/file-000007.go" {
		t.Errorf("small attributes changed: %v", attrs)
	}
	cl := attrs["process.command_line"].GetStringValue()
	if cl != "" && !strings.HasSuffix(cl, truncSuffix) {
		t.Errorf("command line kept without the truncation suffix (%d bytes)", len(cl))
	}
	dropped := int(cut.DroppedAttributesCount) + int(cut.DroppedEventsCount)
	if cl == "" && dropped == 0 {
		t.Error("the command line vanished without a dropped count")
	}
	if len(cut.Events)+int(cut.DroppedEventsCount) != 3000 {
		t.Errorf("%d events kept + %d dropped, want 3000", len(cut.Events), cut.DroppedEventsCount)
	}
	for _, e := range cut.Events {
		if !strings.HasPrefix(e.Attributes[0].Value.GetStringValue(), "éé") {
			t.Fatal("an event kept a broken value")
		}
	}
	if n := proto.Size(cut); n < limit/2 {
		t.Errorf("cut span is %d bytes: more was thrown away than needed for %d", n, limit)
	}
}

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("a", 40), 20, "aaaaaa" + truncSuffix},
		{"ééééééééééé", 17, "é" + truncSuffix}, // never half a rune
	} {
		if got := shorten(tc.in, tc.n); got != tc.want || len(got) > max(tc.n, len(tc.in)) && len(tc.in) > tc.n {
			t.Errorf("shorten(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestDescribeRequests(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{[]int{3}, "3"},
		{[]int{3, 5}, "3, 5"},
		{[]int{3, 4, 5, 6, 7, 9}, "3-7, 9"},
		{[]int{1, 2, 4, 5}, "1-2, 4-5"},
	} {
		if got := describeRequests(tc.in); got != tc.want {
			t.Errorf("describeRequests(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
