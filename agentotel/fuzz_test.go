package agentotel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agentwatch/agentwatch/event"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
)

// sdkPayloads are export requests as the OTel Go SDK's own HTTP exporters
// send them (a span tree like an agent's and a Claude Code api_request log
// event), captured by a real receiver, plus a metrics request of the
// shape Claude Code sends (the Go SDK's metric exporter is not a
// dependency). Keyed by signal index.
func sdkPayloads(tb testing.TB) map[int][][]byte {
	tb.Helper()
	col := &collector{}
	r, err := Start(Config{Emit: col.emit})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	texp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr()), otlptracehttp.WithInsecure())
	if err != nil {
		tb.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(texp))
	tr := tp.Tracer("com.anthropic.claude_code")
	ctx1, root := tr.Start(ctx, "claude_code.interaction")
	_, child := tr.Start(ctx1, "claude_code.tool")
	child.SetAttributes(attribute.String("tool_name", "Bash"), attribute.StringSlice("argv", []string{"go", "test", "./..."}),
		attribute.Int64("duration_ms", 1234), attribute.Bool("success", true), attribute.Float64("cost_usd", 0.0123))
	child.AddEvent("output")
	child.End()
	root.End()
	lexp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(r.HTTPAddr()), otlploghttp.WithInsecure())
	if err != nil {
		tb.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(lexp)))
	var rec otellog.Record
	rec.SetEventName(event.ClaudeAPIRequest)
	rec.SetTimestamp(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	rec.SetBody(attribute.StringValue("claude_code.api_request"))
	rec.AddAttributes(attribute.String("model", "claude-sonnet-4-5"), attribute.String("input_tokens", "1234"),
		attribute.Float64("cost_usd", 0.006326), attribute.Int64Slice("ids", []int64{1, 2}), attribute.BoolSlice("b", []bool{true}))
	lp.Logger("com.anthropic.claude_code.events").Emit(ctx, rec)
	if err := tp.Shutdown(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := lp.Shutdown(ctx); err != nil {
		tb.Fatal(err)
	}
	r.Close()
	metrics, _ := proto.Marshal(&colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{
			{Name: "claude_code.token.usage", Unit: "tokens", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
				AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA,
				DataPoints: []*metricspb.NumberDataPoint{{Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: 56},
					Attributes: []*commonpb.KeyValue{{Key: "type", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "output"}}}}}}}}},
			{Name: "latency", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{DataPoints: []*metricspb.HistogramDataPoint{{
				Count: 3, BucketCounts: []uint64{1, 2, 0}, ExplicitBounds: []float64{10, 100}}}}}},
		}}}}}})
	out := map[int][][]byte{0: col.payloads(SignalTraces), 1: col.payloads(SignalLogs), 2: {metrics}}
	if len(out[0]) == 0 || len(out[1]) == 0 {
		tb.Fatalf("the SDK exported %d trace and %d log requests", len(out[0]), len(out[1]))
	}
	return out
}

// otlpJSON is m in OTLP/JSON: protojson with the ids in hex.
func otlpJSON(tb testing.TB, m proto.Message) []byte {
	b, err := protojson.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	var doc any
	json.Unmarshal(b, &doc)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && idFields[k] {
					raw, _ := base64.StdEncoding.DecodeString(s)
					v[k] = hex.EncodeToString(raw)
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	out, _ := json.Marshal(doc)
	return out
}

// messageCount counts the messages set in m, itself excluded: what the
// element budget must have counted at least.
func messageCount(m protoreflect.Message) int {
	n := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				n += 1 + messageCount(l.Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			n += 1 + messageCount(v.Message())
		}
		return true
	})
	return n
}

// FuzzReceiverHTTP: no OTLP/HTTP request — any signal, protobuf or JSON,
// gzip or not, any bytes — makes the handler panic or answer outside the
// OTLP statuses; what it accepts is within the element budget and is
// emitted as protobuf that decodes to the signal's request type.
func FuzzReceiverHTTP(f *testing.F) {
	const maxElems = 64
	for sig, ps := range sdkPayloads(f) {
		for _, p := range ps {
			msg := signals[sig].newRequest()
			if err := proto.Unmarshal(p, msg); err != nil {
				f.Fatal(err)
			}
			// The real requests are accepted under the fuzz budget, so
			// the fuzzer starts from the accepting path.
			if err := checkProtoBudget(p, msg.ProtoReflect().Descriptor(), maxElems); err != nil {
				f.Fatalf("%s seed: %v", signals[sig].name, err)
			}
			f.Add(uint8(sig), false, uint8(0), p)
			f.Add(uint8(sig), false, uint8(1), p)
			f.Add(uint8(sig), true, uint8(0), otlpJSON(f, msg))
			f.Add(uint8(sig), true, uint8(1), otlpJSON(f, msg))
		}
	}
	f.Add(uint8(0), true, uint8(0), []byte(jsonTraces))
	f.Add(uint8(0), true, uint8(2), gzipped([]byte(jsonTraces))[:20]) // a cut gzip stream
	f.Add(uint8(0), false, uint8(0), bytes.Repeat([]byte{0x0a, 0x02, 0x12, 0x00}, 40))
	f.Add(uint8(0), true, uint8(0), []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{},{},{}]}]}]}`))
	f.Add(uint8(1), true, uint8(0), []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":"9"}]}}}]}}}]}]}]}`))

	f.Fuzz(func(t *testing.T, sig uint8, isJSON bool, enc uint8, body []byte) {
		r := newReceiver(Config{MaxRequestBytes: 1 << 16, MaxRequestElements: maxElems})
		var emitted []byte
		r.cfg.Emit = func(e event.Event) { emitted = e.(event.AgentTelemetry).Payload }
		s := signals[int(sig)%len(signals)]
		ct := contentProtobuf
		if isJSON {
			ct = contentJSON
		}
		wire := body
		if enc%3 == 1 {
			wire = gzipped(body)
		}
		req := httptest.NewRequest(http.MethodPost, s.path, bytes.NewReader(wire))
		req.Header.Set("Content-Type", ct)
		if enc%3 != 0 {
			req.Header.Set("Content-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		r.httpHandler(s).ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			if emitted == nil {
				t.Fatal("200 without an emitted payload")
			}
			msg := s.newRequest()
			if err := proto.Unmarshal(emitted, msg); err != nil {
				t.Fatalf("emitted payload does not decode as %s: %v", s.name, err)
			}
			// Spans are trimmed after the check; the count can only drop.
			if n := messageCount(msg.ProtoReflect()); n > maxElems {
				t.Fatalf("accepted a request of %d messages, over the budget of %d", n, maxElems)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if emitted != nil {
				t.Fatalf("status %d but a payload was emitted", w.Code)
			}
			var st spb.Status
			var err error
			if isJSON {
				err = protojson.Unmarshal(w.Body.Bytes(), &st)
			} else {
				err = proto.Unmarshal(w.Body.Bytes(), &st)
			}
			if err != nil || st.Message == "" {
				t.Fatalf("status %d with body %q: not a google.rpc.Status (%v)", w.Code, w.Body.Bytes(), err)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
		}
	})
}

// TestRequestElementBudget: requests of many tiny elements, which decode
// to ~160 times their size, are refused before decoding on both
// transports, with little memory; a large real SDK batch is not.
func TestRequestElementBudget(t *testing.T) {
	// 8M empty spans in one ScopeSpans: 16 MB on the wire.
	spans := bytes.Repeat([]byte{0x12, 0x00}, 8<<20)
	ss := protoLen(0x12, spans)
	emptySpans := protoLen(0x0a, ss)
	jsonSpans := []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[` + strings.Repeat("{},", 4<<20) + `{}]}]}]}`)
	deep := []byte(strings.Repeat(`{"arrayValue":{"values":[`, 200))

	r, col := startReceiver(t, Config{})
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{
		{"protobuf empty spans", contentProtobuf, emptySpans},
		{"json empty spans", contentJSON, jsonSpans},
		{"json nested values", contentJSON, deep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			resp, out := post(t, r.HTTPEndpoint()+"/v1/traces", tc.ct, "", tc.body)
			runtime.ReadMemStats(&m1)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(out, []byte("request refused")) {
				t.Errorf("status %d: %.200s", resp.StatusCode, out)
			}
			// Reading the body is most of it (ReadAll doubles as it grows).
			if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 6*uint64(len(tc.body))+(8<<20) {
				t.Errorf("refusing %d bytes allocated %d MB", len(tc.body), alloc>>20)
			}
		})
	}
	t.Run("grpc empty spans", func(t *testing.T) {
		conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{
			Spans: make([]*tracepb.Span, DefaultMaxRequestElements+1)}}}}}
		for i := range req.ResourceSpans[0].ScopeSpans[0].Spans {
			req.ResourceSpans[0].ScopeSpans[0].Spans[i] = &tracepb.Span{}
		}
		if _, err := coltracepb.NewTraceServiceClient(conn).Export(context.Background(), req); err == nil ||
			!strings.Contains(err.Error(), "too many elements") {
			t.Errorf("gRPC export of %d empty spans: %v", DefaultMaxRequestElements+1, err)
		}
	})
	if n := len(col.payloads(SignalTraces)); n != 0 {
		t.Errorf("%d refused requests were emitted", n)
	}

	// 512 spans (the SDK's batch) with 20 attributes and 2 events each.
	big := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{}}}}}
	for i := range 512 {
		sp := &tracepb.Span{TraceId: runTraceID[:], SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i) | 1}, Name: "claude_code.tool"}
		for j := range 20 {
			sp.Attributes = append(sp.Attributes, &commonpb.KeyValue{Key: "k" + string(rune('a'+j)), Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "v"}}})
		}
		sp.Events = []*tracepb.Span_Event{{Name: "a"}, {Name: "b"}}
		big.ResourceSpans[0].ScopeSpans[0].Spans = append(big.ResourceSpans[0].ScopeSpans[0].Spans, sp)
	}
	pb, _ := proto.Marshal(big)
	for _, tc := range []struct {
		ct   string
		body []byte
	}{{contentProtobuf, pb}, {contentJSON, otlpJSON(t, big)}} {
		if resp, out := post(t, r.HTTPEndpoint()+"/v1/traces", tc.ct, "", tc.body); resp.StatusCode != http.StatusOK {
			t.Errorf("%s batch of 512 spans: status %d: %.200s", tc.ct, resp.StatusCode, out)
		}
	}
}

func protoLen(tag byte, b []byte) []byte {
	out := []byte{tag}
	for x := len(b); ; x >>= 7 {
		if x < 0x80 {
			out = append(out, byte(x))
			break
		}
		out = append(out, byte(x)|0x80)
	}
	return append(out, b...)
}
