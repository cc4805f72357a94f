package export_test

// Collectors that fail, on loopback: one that refuses (closed port, HTTP
// 4xx/5xx, gRPC Unavailable/InvalidArgument), one that hangs, and ones
// that accept only requests of a default collector's size, fed a big run.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/agentwatch/agentwatch/privtest"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// clearOTLPEnv leaves only what a test sets.
func clearOTLPEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"ENDPOINT", "PROTOCOL", "HEADERS", "INSECURE", "COMPRESSION", "TIMEOUT", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
		t.Setenv("OTEL_EXPORTER_OTLP_"+k, "")
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_"+k, "")
	}
}

// bigTrace is a run that wrote n files: a root and n file_write spans,
// about 300 bytes each, as the recorder makes them.
func bigTrace(n int) *telemetry.Trace {
	tr := sampleTrace()
	tr.Spans = tr.Spans[:1]
	t0 := tr.Spans[0].Start
	for i := 0; i < n; i++ {
		var id trace.SpanID
		binary.BigEndian.PutUint64(id[:], uint64(i)+0x1000)
		tr.Spans = append(tr.Spans, telemetry.Span{
			TraceID: testTraceID, SpanID: id, ParentID: rootID, Name: telemetry.SpanFileWrite,
			Start: t0.Add(time.Duration(i) * time.Microsecond), End: t0.Add(time.Duration(i+1) * time.Microsecond),
			Attrs: []attribute.KeyValue{
				telemetry.SpanType.String(telemetry.SpanFileWrite),
				telemetry.FilePath.String(fmt.Sprintf("internal/generated/pkg%03d/zz_generated_%06d.deepcopy.go", i%997, i)),
				telemetry.FileOperations.StringSlice([]string{"create", "write"}),
				telemetry.FileSize.Int64(int64(4096 + i)),
				telemetry.ProcessPID.Int(100000 + i%50),
				telemetry.ProcessCommandLine.String("go generate ./internal/generated/..."),
			},
		})
	}
	return tr
}

// traceServer is a real gRPC OTLP trace service: it answers with fail
// (nil: accept) and records the span ids of what it accepted.
type traceServer struct {
	coltracepb.UnimplementedTraceServiceServer
	fail func() error

	mu       sync.Mutex
	requests int
	ids      map[string]int
}

func (s *traceServer) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.fail != nil {
		if err := s.fail(); err != nil {
			return nil, err
		}
	}
	countIDs(s.ids, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func countIDs(ids map[string]int, req *coltracepb.ExportTraceServiceRequest) {
	for _, rs := range req.GetResourceSpans() {
		if len(rs.GetResource().GetAttributes()) == 0 {
			ids["request without its resource"]++
		}
		for _, ss := range rs.GetScopeSpans() {
			if ss.GetScope().GetName() != otlp.ScopeName {
				ids["request without its scope"]++
			}
			for _, sp := range ss.GetSpans() {
				ids[fmt.Sprintf("%x", sp.GetSpanId())]++
			}
		}
	}
}

// startGRPC serves s with grpc-go's defaults (MaxRecvMsgSize 4 MiB, as
// the OpenTelemetry Collector's receiver).
func startGRPC(t *testing.T, s *traceServer, opts ...grpc.ServerOption) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ids = map[string]int{}
	srv := grpc.NewServer(opts...)
	coltracepb.RegisterTraceServiceServer(srv, s)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// httpCollector is an OTLP/HTTP receiver that refuses bodies over limit
// with 413, as a collector behind a body-size limit does, or answers with
// status when it is set.
type httpCollector struct {
	limit  int64
	status int
	body   string

	mu       sync.Mutex
	requests int
	refused  int
	ids      map[string]int
}

func (c *httpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests++
	c.mu.Unlock()
	if c.status != 0 {
		http.Error(w, c.body, c.status)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.limit))
	if err != nil {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	countIDs(c.ids, &req)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(nil)
}

func startHTTP(t *testing.T, c *httpCollector) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ids = map[string]int{}
	srv := &http.Server{Handler: c}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// checkExactlyOnce: every span of tr arrived once, nothing else did.
func checkExactlyOnce(t *testing.T, tr *telemetry.Trace, ids map[string]int) {
	t.Helper()
	if len(ids) != len(tr.Spans) {
		t.Errorf("collector holds %d distinct span ids, want %d", len(ids), len(tr.Spans))
	}
	for _, s := range tr.Spans {
		if n := ids[s.SpanID.String()]; n != 1 {
			t.Fatalf("span %s arrived %d times, want once", s.SpanID, n)
		}
	}
}

// TestBigRunToDefaultCollector: 50,000 spans (about 16 MB) reach
// collectors that take at most 4 MiB per request, in several requests,
// every span once. The control sends the same run unsplit and shows the
// collectors do refuse it.
func TestBigRunToDefaultCollector(t *testing.T) {
	clearOTLPEnv(t)
	tr := bigTrace(50000)
	req := otlp.Request(tr)
	size := proto.Size(req)
	if size < 3*export.DefaultMaxRequestBytes {
		t.Fatalf("test run is only %d bytes; it must need several requests", size)
	}
	minRequests := size/export.DefaultMaxRequestBytes + 1
	t.Run("grpc", func(t *testing.T) {
		s := &traceServer{}
		addr := startGRPC(t, s)
		err := export.Upload(context.Background(), export.Config{Endpoint: "grpc://" + addr, MaxRequestBytes: 1 << 30}, req)
		if err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
			t.Fatalf("control: an unsplit %d-byte request: %v, want the collector's ResourceExhausted", size, err)
		}
		if err := export.Upload(context.Background(), export.Config{Endpoint: "grpc://" + addr}, req); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		// The refused control never reached the service: grpc-go refuses
		// an oversized message before the handler.
		if s.requests < minRequests {
			t.Errorf("%d requests for %d bytes, want at least %d", s.requests, size, minRequests)
		}
		checkExactlyOnce(t, tr, s.ids)
		t.Logf("%d spans, %d bytes: %d requests", len(tr.Spans), size, s.requests)
	})
	t.Run("collector otlpreceiver", func(t *testing.T) {
		// The OpenTelemetry Collector's own receiver, default settings.
		addr, sink := startReceiver(t, export.ProtocolGRPC)
		if err := export.Upload(context.Background(), export.Config{Endpoint: "grpc://" + addr, MaxRequestBytes: 1 << 30}, req); err == nil {
			t.Fatal("control: the collector accepted an unsplit request")
		}
		if err := export.Upload(context.Background(), export.Config{Endpoint: "grpc://" + addr}, req); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		ids := map[string]int{}
		for _, td := range sink.AllTraces() {
			raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			if err != nil {
				t.Fatal(err)
			}
			var part coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(raw, &part); err != nil {
				t.Fatal(err)
			}
			countIDs(ids, &part)
		}
		if len(sink.AllTraces()) < minRequests {
			t.Errorf("collector got %d requests, want at least %d", len(sink.AllTraces()), minRequests)
		}
		checkExactlyOnce(t, tr, ids)
	})
	t.Run("http", func(t *testing.T) {
		c := &httpCollector{limit: export.DefaultMaxRequestBytes}
		addr := startHTTP(t, c)
		err := export.Upload(context.Background(), export.Config{Endpoint: "http://" + addr, MaxRequestBytes: 1 << 30}, req)
		if err == nil || c.refused != 1 {
			t.Fatalf("control: an unsplit request was not refused (%v, %d refused)", err, c.refused)
		}
		if want := "exporting to " + addr + `: collector answered HTTP 413 Request Entity Too Large: request body too large`; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		c.requests = 0
		if err := export.Upload(context.Background(), export.Config{Endpoint: "http://" + addr}, req); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		if c.refused != 1 || c.requests < minRequests {
			t.Errorf("%d requests, %d refused", c.requests, c.refused)
		}
		checkExactlyOnce(t, tr, c.ids)
	})
}

// TestCollectorRefuses: each refusal is one line naming the endpoint and
// the collector's answer, within the retry bound.
func TestCollectorRefuses(t *testing.T) {
	clearOTLPEnv(t)
	tr := sampleTrace()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (endpoint, addr string)
		want  string
	}{
		{"grpc InvalidArgument", func(t *testing.T) (string, string) {
			a := startGRPC(t, &traceServer{fail: func() error { return status.Error(codes.InvalidArgument, "span \x1b[31mbad\x1b[0m\nname") }})
			return "grpc://" + a, a
		}, `collector refused the request (gRPC InvalidArgument: span \x1b[31mbad\x1b[0m name)`},
		{"grpc Unavailable", func(t *testing.T) (string, string) {
			a := startGRPC(t, &traceServer{fail: func() error { return status.Error(codes.Unavailable, "overloaded") }})
			return "grpc://" + a, a
		}, "collector unavailable (gRPC Unavailable: overloaded)"},
		{"http 400", func(t *testing.T) (string, string) {
			a := startHTTP(t, &httpCollector{status: 400, body: "invalid span"})
			return "http://" + a, a
		}, "collector answered HTTP 400 Bad Request: invalid span"},
		{"http 500", func(t *testing.T) (string, string) {
			a := startHTTP(t, &httpCollector{status: 500})
			return "http://" + a, a
		}, "collector answered HTTP 500 Internal Server Error"},
		{"http 503", func(t *testing.T) (string, string) {
			a := startHTTP(t, &httpCollector{status: 503, body: "busy"})
			return "http://" + a, a
		}, "collector busy or unavailable (HTTP 429, 502, 503 or 504, retries exhausted): busy"},
		{"http 401", func(t *testing.T) (string, string) {
			a := startHTTP(t, &httpCollector{status: 401})
			return "http://" + a, a
		}, "unauthenticated (HTTP 401; check OTEL_EXPORTER_OTLP_HEADERS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endpoint, addr := tc.start(t)
			start := time.Now()
			err := export.Upload(context.Background(), export.Config{Endpoint: endpoint}, otlp.Request(tr))
			if err == nil {
				t.Fatal("Upload succeeded")
			}
			if want := "exporting to " + addr + ": " + tc.want; err.Error() != want {
				t.Errorf("error = %q\n want %q", err, want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v, want the retry bound (2s) and little more", took)
			}
		})
	}
}

// TestCollectorRefusesSomeRequests: a collector that refuses one request
// of many; the rest are delivered and the error says which one was not.
func TestCollectorRefusesSomeRequests(t *testing.T) {
	clearOTLPEnv(t)
	n := 0
	s := &traceServer{fail: func() error {
		n++
		if n == 2 {
			return status.Error(codes.InvalidArgument, "no")
		}
		return nil
	}}
	addr := startGRPC(t, s)
	tr := bigTrace(3000)
	err := export.Upload(context.Background(), export.Config{Endpoint: "grpc://" + addr, MaxRequestBytes: 256 << 10}, otlp.Request(tr))
	var ue *export.UploadError
	if !errors.As(err, &ue) {
		t.Fatalf("Upload: %v, want an *UploadError", err)
	}
	if len(ue.Failed) != 1 || ue.Failed[0] != 2 || ue.Requests != s.requests || ue.Requests < 3 {
		t.Fatalf("failed requests %v of %d (collector saw %d), want [2]", ue.Failed, ue.Requests, s.requests)
	}
	delivered := 0
	for range s.ids {
		delivered++
	}
	if delivered+ue.Lost != len(tr.Spans) || ue.Spans != len(tr.Spans) {
		t.Errorf("%d delivered + %d lost, want %d", delivered, ue.Lost, len(tr.Spans))
	}
	want := fmt.Sprintf("exporting to %s: collector refused the request (gRPC InvalidArgument: no) (requests 2 of %d not delivered: %d of %d spans)",
		addr, ue.Requests, ue.Lost, len(tr.Spans))
	if err.Error() != want {
		t.Errorf("error = %q\n want %q", err, want)
	}
	// Retrying the whole run (agentwatch export) is what fills the gap;
	// the spans already delivered come again with the same ids.
	s.fail = nil
	if err := export.Upload(context.Background(), export.Config{Endpoint: "grpc://" + addr, MaxRequestBytes: 256 << 10}, otlp.Request(tr)); err != nil {
		t.Fatal(err)
	}
	for _, sp := range tr.Spans {
		if s.ids[sp.SpanID.String()] < 1 {
			t.Fatalf("span %s missing after the retry", sp.SpanID)
		}
	}
}

// hangingCollector accepts connections and never answers.
func hangingCollector(t *testing.T) string { return privtest.HangingListener(t) }

// TestCollectorHangs: the upload gives up at Config.Timeout with one line,
// and with a big run does not spend the bound once per request.
func TestCollectorHangs(t *testing.T) {
	clearOTLPEnv(t)
	addr := hangingCollector(t)
	const bound = 1500 * time.Millisecond
	for _, endpoint := range []string{"grpc://" + addr, "http://" + addr} {
		t.Run(endpoint, func(t *testing.T) {
			start := time.Now()
			err := export.Upload(context.Background(), export.Config{Endpoint: endpoint, Timeout: bound}, otlp.Request(bigTrace(30000)))
			took := time.Since(start)
			var ue *export.UploadError
			if !errors.As(err, &ue) || ue.Cause != "timed out" {
				t.Fatalf("Upload: %v, want timed out", err)
			}
			if len(ue.Failed) != ue.Requests || ue.Requests < 2 {
				t.Errorf("failed %v of %d requests, want all of several", ue.Failed, ue.Requests)
			}
			if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "exporting to "+addr+": timed out (requests 1-") {
				t.Errorf("error = %q", err)
			}
			if took < bound-100*time.Millisecond || took > bound+1500*time.Millisecond {
				t.Errorf("gave up after %v, want about %v", took, bound)
			}
		})
	}
	// OTEL_EXPORTER_OTLP_TIMEOUT bounds each request within it.
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
	start := time.Now()
	err := export.Upload(context.Background(), export.Config{Endpoint: "http://" + addr, Timeout: time.Minute}, otlp.Request(sampleTrace()))
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Errorf("with a 300 ms request timeout: %v after %v", err, took)
	}
}

// TestFlagSchemeDecidesTLS: a TLS scheme on --otlp-endpoint is never
// downgraded to plaintext by a variable meant for another endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT=http://…, OTEL_EXPORTER_OTLP_INSECURE=true):
// against a plaintext collector the upload fails its TLS handshake.
func TestFlagSchemeDecidesTLS(t *testing.T) {
	for _, tc := range []struct {
		env, val, scheme, proto string
	}{
		{"OTEL_EXPORTER_OTLP_INSECURE", "true", "grpcs://", export.ProtocolGRPC},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "grpcs://", export.ProtocolGRPC},
		{"OTEL_EXPORTER_OTLP_INSECURE", "true", "https://", export.ProtocolHTTP},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1", "https://", export.ProtocolHTTP},
	} {
		t.Run(tc.env+" "+tc.scheme, func(t *testing.T) {
			clearOTLPEnv(t)
			t.Setenv(tc.env, tc.val)
			var addr string
			var got func() int
			if tc.proto == export.ProtocolGRPC {
				s := &traceServer{}
				addr = startGRPC(t, s)
				got = func() int { return len(s.ids) }
			} else {
				c := &httpCollector{limit: 1 << 20}
				addr = startHTTP(t, c)
				got = func() int { return len(c.ids) }
			}
			err := export.Upload(context.Background(), export.Config{Endpoint: tc.scheme + addr, Timeout: 3 * time.Second}, otlp.Request(sampleTrace()))
			if err == nil || got() != 0 {
				t.Fatalf("sent in plaintext to a %s endpoint (err %v, %d spans arrived)", tc.scheme, err, got())
			}
			if !strings.Contains(err.Error(), "TLS") {
				t.Errorf("error = %q, want a TLS failure", err)
			}
		})
	}
}
