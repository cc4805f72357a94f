package agentotel

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/recorder"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
)

func startReceiver(t *testing.T, cfg Config) (*Receiver, *collector) {
	t.Helper()
	col := &collector{}
	if cfg.Emit == nil {
		cfg.Emit = col.emit
	}
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, col
}

var (
	runTraceID = trace.TraceID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0}
	runRootID  = trace.SpanID{0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8}
)

// The OTel Go SDK's own exporters are the clients: if the receiver speaks
// OTLP as they do, so does any SDK-instrumented agent.
func TestSDKTraceExporters(t *testing.T) {
	for _, tc := range []struct {
		name string
		exp  func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error)
	}{
		{"grpc", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.GRPCAddr()), otlptracegrpc.WithInsecure())
		}},
		{"grpc gzip", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.GRPCAddr()), otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithCompressor("gzip"))
		}},
		{"http", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr()), otlptracehttp.WithInsecure())
		}},
		{"http gzip", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr()), otlptracehttp.WithInsecure(),
				otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, col := startReceiver(t, Config{})
			ctx := context.Background()
			exp, err := tc.exp(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			// The agent's context is the run's root, as TRACEPARENT gives it.
			parent := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: runTraceID, SpanID: runRootID, TraceFlags: trace.FlagsSampled, Remote: true}))
			tr := tp.Tracer("agent")
			ictx, interaction := tr.Start(parent, "claude_code.interaction")
			_, llm := tr.Start(ictx, "claude_code.llm_request")
			llm.End()
			interaction.End()
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("exporting: %v", err)
			}
			r.Close()

			payloads := col.payloads(SignalTraces)
			if len(payloads) != 2 {
				t.Fatalf("%d traces payloads, want 2 (one per span with a syncer)", len(payloads))
			}
			merged, err := recorder.MergeTraces(payloads...)
			if err != nil {
				t.Fatal(err)
			}
			spans, orphans := recorder.Reparent(merged, runTraceID, runRootID)
			if len(spans) != 2 || len(orphans) != 0 {
				t.Fatalf("got %d spans, orphans %v; want 2 and none", len(spans), orphans)
			}
			byName := map[string]*tracepb.Span{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			in, llmSpan := byName["claude_code.interaction"], byName["claude_code.llm_request"]
			if trace.SpanID(in.ParentSpanId) != runRootID {
				t.Errorf("interaction parent %x, want the run root", in.ParentSpanId)
			}
			if !bytes.Equal(llmSpan.ParentSpanId, in.SpanId) {
				t.Errorf("llm_request parent %x, want interaction %x", llmSpan.ParentSpanId, in.SpanId)
			}
			if st := r.Stats(); st.Spans != 2 || st.Requests[SignalTraces] != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestSDKLogExporter(t *testing.T) {
	r, col := startReceiver(t, Config{})
	ctx := context.Background()
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(r.HTTPAddr()), otlploghttp.WithInsecure(),
		otlploghttp.WithCompression(otlploghttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var rec otellog.Record
	rec.SetEventName(event.ClaudeAPIRequest)
	rec.SetTimestamp(at)
	rec.SetBody(attribute.StringValue(event.ClaudeAPIRequest))
	// Claude Code sends counts as strings; a double cost; an int duration.
	rec.AddAttributes(
		attribute.String("model", "claude-sonnet-4-5"),
		attribute.String("input_tokens", "1234"),
		attribute.String("output_tokens", "56"),
		attribute.String("cache_read_tokens", "100"),
		attribute.String("cache_creation_tokens", "50"),
		attribute.Float64("cost_usd", 0.0123),
		attribute.Int("duration_ms", 1500),
		attribute.String("session.id", "sess-1"),
	)
	lp.Logger("claude_code").Emit(ctx, rec)
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatalf("exporting: %v", err)
	}
	r.Close()

	var recs []event.AgentLogRecord
	for _, p := range col.payloads(SignalLogs) {
		var req collogspb.ExportLogsServiceRequest
		if err := proto.Unmarshal(p, &req); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, LogsToEvents(&req)...)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	got := recs[0]
	if got.Name != event.ClaudeAPIRequest || got.Model != "claude-sonnet-4-5" || got.InputTokens != 1234 ||
		got.OutputTokens != 56 || got.CacheReadTokens != 100 || got.CacheCreationTokens != 50 ||
		!got.CostKnown || got.CostUSD != 0.0123 || got.Duration != 1500*time.Millisecond ||
		got.SessionID != "sess-1" || !got.Time.Equal(at) {
		t.Errorf("record = %+v", got)
	}
}

// post sends one OTLP/HTTP request the way a hand-written client would.
func post(t *testing.T, url, contentType, encoding string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// A minimal OTLP/JSON export as the spec writes it: hex ids, lowerCamel
// keys, enums as numbers, int64 as strings, and a field this receiver does
// not know (which it must ignore).
const jsonTraces = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"claude-code"}}]},
 "scopeSpans":[{"scope":{"name":"com.anthropic.claude_code"},"spans":[
  {"traceId":"a1a2a3a4a5a6a7a8a9aaabacadaeafb0","spanId":"0102030405060708","parentSpanId":"c1c2c3c4c5c6c7c8",
   "name":"claude_code.interaction","kind":1,"startTimeUnixNano":"1714560000000000000","endTimeUnixNano":"1714560001000000000",
   "attributes":[{"key":"traceId","value":{"stringValue":"not an id"}}],
   "links":[{"traceId":"a1a2a3a4a5a6a7a8a9aaabacadaeafb0","spanId":"c1c2c3c4c5c6c7c8"}],
   "futureField":{"x":1}}]}]}]}`

func TestHTTPJSONAndGzip(t *testing.T) {
	r, col := startReceiver(t, Config{})
	url := r.HTTPEndpoint() + "/v1/traces"
	for _, tc := range []struct {
		name, ct, enc string
		body          []byte
	}{
		{"json", "application/json", "", []byte(jsonTraces)},
		{"json gzip", "application/json; charset=utf-8", "gzip", gzipped([]byte(jsonTraces))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := post(t, url, tc.ct, tc.enc, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, out)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("response content type %q, want the request's", ct)
			}
			var er coltracepb.ExportTraceServiceResponse
			if err := protojson.Unmarshal(out, &er); err != nil {
				t.Fatalf("response %q is not an ExportTraceServiceResponse: %v", out, err)
			}
			if er.PartialSuccess != nil {
				t.Errorf("partial success %v for a valid request", er.PartialSuccess)
			}
		})
	}
	payloads := col.payloads(SignalTraces)
	if len(payloads) != 2 {
		t.Fatalf("%d payloads, want 2", len(payloads))
	}
	for _, p := range payloads {
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(p, &req); err != nil {
			t.Fatal(err)
		}
		sp := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
		if hex.EncodeToString(sp.TraceId) != "a1a2a3a4a5a6a7a8a9aaabacadaeafb0" || hex.EncodeToString(sp.SpanId) != "0102030405060708" ||
			trace.SpanID(sp.ParentSpanId) != runRootID || hex.EncodeToString(sp.Links[0].SpanId) != "c1c2c3c4c5c6c7c8" {
			t.Errorf("ids not decoded from hex: trace %x span %x parent %x link %x", sp.TraceId, sp.SpanId, sp.ParentSpanId, sp.Links[0].SpanId)
		}
		if v := sp.Attributes[0].Value.GetStringValue(); v != "not an id" {
			t.Errorf("an attribute named traceId was rewritten to %q", v)
		}
		if sp.Kind != tracepb.Span_SPAN_KIND_INTERNAL || sp.EndTimeUnixNano != 1714560001000000000 {
			t.Errorf("kind %v end %d", sp.Kind, sp.EndTimeUnixNano)
		}
	}
}

// Spans with unusable ids are dropped and reported as a partial success,
// so the exporter keeps the rest and does not retry.
func TestPartialSuccess(t *testing.T) {
	r, col := startReceiver(t, Config{})
	good := &tracepb.Span{TraceId: runTraceID[:], SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "good"}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
		good,
		{TraceId: runTraceID[:8], SpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1}, Name: "short trace id"},
		{TraceId: make([]byte, 16), SpanId: []byte{2, 2, 2, 2, 2, 2, 2, 2}, Name: "zero trace id"},
		{TraceId: runTraceID[:], SpanId: nil, Name: "no span id"},
	}}}}}}
	body, _ := proto.Marshal(req)

	t.Run("http", func(t *testing.T) {
		resp, out := post(t, r.HTTPEndpoint()+"/v1/traces", "application/x-protobuf", "", body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var er coltracepb.ExportTraceServiceResponse
		if err := proto.Unmarshal(out, &er); err != nil {
			t.Fatal(err)
		}
		if er.GetPartialSuccess().GetRejectedSpans() != 3 || er.GetPartialSuccess().GetErrorMessage() == "" {
			t.Errorf("partial success %v, want 3 rejected with a message", er.PartialSuccess)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := coltracepb.NewTraceServiceClient(conn).Export(context.Background(), proto.Clone(req).(*coltracepb.ExportTraceServiceRequest))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetPartialSuccess().GetRejectedSpans() != 3 {
			t.Errorf("partial success %v, want 3 rejected", resp.PartialSuccess)
		}
	})
	for _, p := range col.payloads(SignalTraces) {
		merged, _ := recorder.MergeTraces(p)
		spans, _ := recorder.Reparent(merged, runTraceID, runRootID)
		if len(spans) != 1 || spans[0].Name != "good" {
			t.Errorf("emitted spans %v, want only the good one", spans)
		}
	}
	if st := r.Stats(); st.RejectedSpans != 6 || st.Spans != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestHTTPBadRequests(t *testing.T) {
	r, col := startReceiver(t, Config{MaxRequestBytes: 1 << 20})
	valid, _ := proto.Marshal(&collogspb.ExportLogsServiceRequest{})
	bomb := gzipped(make([]byte, 4<<20)) // 4 MiB of zeros, a few KiB on the wire
	for _, tc := range []struct {
		name, method, path, ct, enc string
		body                        []byte
		want                        int
	}{
		{"GET", http.MethodGet, "/v1/logs", "application/x-protobuf", "", nil, http.StatusMethodNotAllowed},
		{"text/plain", http.MethodPost, "/v1/logs", "text/plain", "", valid, http.StatusUnsupportedMediaType},
		{"br encoding", http.MethodPost, "/v1/logs", "application/x-protobuf", "br", valid, http.StatusUnsupportedMediaType},
		{"not protobuf", http.MethodPost, "/v1/logs", "application/x-protobuf", "", []byte{0xff, 0xff, 0xff}, http.StatusBadRequest},
		{"not json", http.MethodPost, "/v1/logs", "application/json", "", []byte(`{"resourceLogs":[`), http.StatusBadRequest},
		{"id not hex", http.MethodPost, "/v1/traces", "application/json", "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`), http.StatusBadRequest},
		{"not gzip", http.MethodPost, "/v1/logs", "application/x-protobuf", "gzip", valid, http.StatusBadRequest},
		{"gzip bomb", http.MethodPost, "/v1/logs", "application/x-protobuf", "gzip", bomb, http.StatusRequestEntityTooLarge},
		{"too large", http.MethodPost, "/v1/logs", "application/x-protobuf", "", make([]byte, 2<<20), http.StatusRequestEntityTooLarge},
		{"unknown path", http.MethodPost, "/v1/profiles", "application/x-protobuf", "", valid, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, r.HTTPEndpoint()+tc.path, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			if tc.enc != "" {
				req.Header.Set("Content-Encoding", tc.enc)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, out)
			}
			// Errors after the content type is known carry a Status in
			// the request's encoding, as the OTLP spec asks.
			if tc.want == http.StatusBadRequest || tc.want == http.StatusRequestEntityTooLarge {
				var st spb.Status
				var err error
				if strings.HasPrefix(tc.ct, "application/json") {
					err = protojson.Unmarshal(out, &st)
				} else {
					err = proto.Unmarshal(out, &st)
				}
				if err != nil || st.Message == "" {
					t.Errorf("error body %q is not a Status with a message: %v", out, err)
				}
			}
		})
	}
	if n := len(col.payloads(SignalLogs)) + len(col.payloads(SignalTraces)); n != 0 {
		t.Errorf("%d bad requests were emitted", n)
	}
	if st := r.Stats(); st.BadRequests != 9 { // the unknown path never reaches a handler
		t.Errorf("bad requests counted %d, want 9", st.BadRequests)
	}
}

// Close waits for a request in flight, and nothing is emitted after it
// returns.
func TestCloseDrains(t *testing.T) {
	inEmit := make(chan struct{})
	release := make(chan struct{})
	var emitted []event.Event
	r, _ := startReceiver(t, Config{Emit: func(e event.Event) {
		close(inEmit)
		<-release
		emitted = append(emitted, e)
	}})
	body, _ := proto.Marshal(&collogspb.ExportLogsServiceRequest{})
	got := make(chan int, 1)
	go func() {
		resp, err := http.Post(r.HTTPEndpoint()+"/v1/logs", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-inEmit
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a request was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := <-got; s != http.StatusOK {
		t.Errorf("in-flight request got %d, want 200", s)
	}
	if len(emitted) != 1 {
		t.Errorf("%d events emitted, want 1", len(emitted))
	}
	// After Close the ports are gone: an exporter gets a connection error
	// (and retries or drops), never a silent success.
	if _, err := http.Post(r.HTTPEndpoint()+"/v1/logs", "application/x-protobuf", bytes.NewReader(body)); err == nil {
		t.Error("HTTP request after Close succeeded")
	}
	conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = collogspb.NewLogsServiceClient(conn).Export(ctx, &collogspb.ExportLogsServiceRequest{})
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Errorf("gRPC export after Close: %v, want Unavailable", err)
	}
}

func TestEnv(t *testing.T) {
	r, _ := startReceiver(t, Config{})
	tp := TraceParent(runTraceID, runRootID)
	if tp != "00-a1a2a3a4a5a6a7a8a9aaabacadaeafb0-c1c2c3c4c5c6c7c8-01" {
		t.Errorf("TraceParent = %q", tp)
	}
	env := map[string]string{}
	for _, kv := range r.Env(tp) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("%q is not KEY=value", kv)
		}
		if _, dup := env[k]; dup {
			t.Errorf("%s set twice", k)
		}
		env[k] = v
	}
	for k, want := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":         r.HTTPEndpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL":         "http/protobuf",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT":    r.HTTPEndpoint() + "/v1/logs",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL":  "http/protobuf",
		"OTEL_TRACES_EXPORTER":                "otlp",
		"OTEL_LOGS_EXPORTER":                  "otlp",
		"OTEL_METRICS_EXPORTER":               "otlp",
		"TRACEPARENT":                         tp,
		"CLAUDE_CODE_ENABLE_TELEMETRY":        "1",
		"CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
		"CLAUDE_CODE_PROPAGATE_TRACEPARENT":   "1",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	for _, k := range []string{"OTEL_LOG_USER_PROMPTS", "OTEL_LOG_TOOL_DETAILS"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s set: content logging is not Env's to turn on", k)
		}
	}
	for _, kv := range r.Env("") {
		if strings.HasPrefix(kv, "TRACEPARENT=") {
			t.Errorf("TRACEPARENT set without a run context: %q", kv)
		}
	}
}
