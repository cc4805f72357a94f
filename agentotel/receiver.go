// Package agentotel owns the run's receiver for the agent's own telemetry:
// an OTLP endpoint (gRPC and HTTP, protobuf and JSON, gzip) on loopback
// that the supervised agent exports to, the environment that points an
// instrumented agent at it and into the run's trace, and the decoding of
// the agent's log records into event.AgentLogRecord (LogsToEvents, for
// Claude Code's claude_code.* log events). Re-parenting the agent's spans
// into the run's trace is the recorder's job, not this package's.
//
// It is a sensor: it turns each export request into an
// event.AgentTelemetry and never builds the run's spans, decides policy,
// redacts, or forwards anything to a collector. It listens on 127.0.0.1
// only; anything that can reach it can already run code as the user.
package agentotel

import (
	"context"
	"errors"
	"fmt"
	"github.com/agentwatch/agentwatch/telemetry/otlpvalue"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP/gRPC exporters may compress with gzip
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/agentwatch/agentwatch/event"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// Signal names, as in event.AgentTelemetry.Signal.
const (
	SignalTraces  = event.SignalTraces
	SignalLogs    = event.SignalLogs
	SignalMetrics = event.SignalMetrics
)

// DefaultMaxRequestBytes bounds one export request after decompression.
// The OTel SDKs batch 512 spans or log records per request; even with
// large attributes that stays well under this, so a bigger body is a
// runaway or hostile client, not telemetry worth keeping.
const DefaultMaxRequestBytes = 32 << 20

// drainTimeout bounds Close: in-flight requests get this long to finish
// before their connections are cut.
const drainTimeout = 5 * time.Second

// Config configures a Receiver.
type Config struct {
	// Emit receives one event.AgentTelemetry per accepted export request.
	// Calls are serialized (never concurrent) and never happen after
	// Close returns. Nil discards (the receiver still answers, so the
	// agent's exporter does not retry or log errors).
	Emit func(event.Event)
	// MaxRequestBytes bounds one request after decompression; 0 means
	// DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// MaxRequestElements bounds the messages and values of one request,
	// checked before it is decoded; 0 means DefaultMaxRequestElements.
	MaxRequestElements int
}

// httpDecodeSlots bounds the OTLP/HTTP requests read and decoded at once,
// so the request bounds above bound the receiver's memory too (an agent
// can open any number of connections). Exporters wait, they do not fail.
const httpDecodeSlots = 4

// Stats counts what the receiver saw, for the run's telemetry-gap record.
type Stats struct {
	Requests      map[string]int64 // accepted export requests by signal
	Spans         int64            // spans accepted
	LogRecords    int64
	DataPoints    int64 // metric data points accepted
	RejectedSpans int64 // spans dropped for invalid ids (partial success)
	BadRequests   int64 // requests refused: undecodable, too large, wrong type
	AfterClose    int64 // requests refused because the receiver was closing
}

// Receiver is a running OTLP receiver. Its methods are safe for concurrent
// use.
type Receiver struct {
	cfg      Config
	grpcLn   net.Listener
	httpLn   net.Listener
	grpcSrv  *grpc.Server
	httpSrv  *http.Server
	serveErr chan error
	slots    chan struct{} // httpDecodeSlots

	emitMu sync.Mutex // serializes Emit and guards closed
	closed bool

	closeOnce sync.Once
	closeErr  error

	requests                               [3]atomic.Int64 // traces, logs, metrics
	spans, logRecords, dataPoints          atomic.Int64
	rejectedSpans, badRequests, afterClose atomic.Int64
}

// Start listens on two random loopback ports (gRPC and HTTP) and serves
// until Close.
func Start(cfg Config) (*Receiver, error) {
	r := newReceiver(cfg)
	var err error
	if r.grpcLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("listening for OTLP/gRPC: %w", err)
	}
	if r.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		r.grpcLn.Close()
		return nil, fmt.Errorf("listening for OTLP/HTTP: %w", err)
	}

	r.grpcSrv = grpc.NewServer(grpc.MaxRecvMsgSize(int(r.cfg.MaxRequestBytes)),
		grpc.ForceServerCodecV2(newBudgetCodec(r.cfg.MaxRequestElements)))
	coltracepb.RegisterTraceServiceServer(r.grpcSrv, traceService{r: r})
	collogspb.RegisterLogsServiceServer(r.grpcSrv, logsService{r: r})
	colmetricspb.RegisterMetricsServiceServer(r.grpcSrv, metricsService{r: r})

	mux := http.NewServeMux()
	for _, s := range signals {
		mux.Handle(s.path, r.httpHandler(s))
	}
	r.httpSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// No write or idle timeouts that would cut a slow exporter's
		// keep-alive connection mid-run: the peer is a local process.
	}

	go func() { r.serveErr <- r.grpcSrv.Serve(r.grpcLn) }()
	go func() {
		err := r.httpSrv.Serve(r.httpLn)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		r.serveErr <- err
	}()
	return r, nil
}

// newReceiver is a Receiver with cfg's defaults filled in and no
// listeners: what the handlers need (tests drive them directly).
func newReceiver(cfg Config) *Receiver {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxRequestElements <= 0 {
		cfg.MaxRequestElements = DefaultMaxRequestElements
	}
	return &Receiver{cfg: cfg, serveErr: make(chan error, 2), slots: make(chan struct{}, httpDecodeSlots)}
}

// GRPCAddr is the gRPC listener's address (127.0.0.1:port).
func (r *Receiver) GRPCAddr() string { return r.grpcLn.Addr().String() }

// HTTPAddr is the HTTP listener's address (127.0.0.1:port).
func (r *Receiver) HTTPAddr() string { return r.httpLn.Addr().String() }

// HTTPEndpoint is the OTLP/HTTP base URL; the signal paths (/v1/traces,
// /v1/logs, /v1/metrics) go under it.
func (r *Receiver) HTTPEndpoint() string { return "http://" + r.HTTPAddr() }

// GRPCEndpoint is the OTLP/gRPC endpoint URL (plaintext).
func (r *Receiver) GRPCEndpoint() string { return "http://" + r.GRPCAddr() }

// Stats returns the counts so far.
func (r *Receiver) Stats() Stats {
	req := map[string]int64{}
	for i, s := range signals {
		req[s.name] = r.requests[i].Load()
	}
	return Stats{
		Requests:      req,
		Spans:         r.spans.Load(),
		LogRecords:    r.logRecords.Load(),
		DataPoints:    r.dataPoints.Load(),
		RejectedSpans: r.rejectedSpans.Load(),
		BadRequests:   r.badRequests.Load(),
		AfterClose:    r.afterClose.Load(),
	}
}

// Close stops accepting connections, lets in-flight requests finish (up to
// a few seconds), and returns once no Emit call can happen any more. Call
// it after the agent exited: its exporters flush at shutdown, and those
// last requests are exactly the ones a run must not lose.
func (r *Receiver) Close() error {
	r.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()

		grpcDone := make(chan struct{})
		go func() { r.grpcSrv.GracefulStop(); close(grpcDone) }()
		httpErr := r.httpSrv.Shutdown(ctx)
		if httpErr != nil {
			r.httpSrv.Close()
			httpErr = fmt.Errorf("draining OTLP/HTTP: %w", httpErr)
		}
		select {
		case <-grpcDone:
		case <-ctx.Done():
			r.grpcSrv.Stop()
			<-grpcDone
		}

		// A handler cut off by the timeout may still be running; after
		// this no Emit happens.
		r.emitMu.Lock()
		r.closed = true
		r.emitMu.Unlock()

		var serveErrs []error
		for range 2 {
			if err := <-r.serveErr; err != nil {
				serveErrs = append(serveErrs, fmt.Errorf("serving OTLP: %w", err))
			}
		}
		r.closeErr = errors.Join(append([]error{httpErr}, serveErrs...)...)
	})
	return r.closeErr
}

// errClosed refuses a request that arrived while closing; both transports
// map it to a retryable status (503 / Unavailable), per the OTLP spec.
var errClosed = errors.New("receiver closing")

// accept emits one decoded request. The payload is re-marshalled from the
// (possibly trimmed) message so the recorder always reads protobuf,
// whatever the wire encoding was; log records are also handed over
// decoded (event.AgentLogRecord), which is what the recorder reads.
func (r *Receiver) accept(s *signalKind, msg proto.Message) error {
	payload, err := proto.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encoding %s payload: %w", s.name, err)
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	if r.closed {
		r.afterClose.Add(1)
		return errClosed
	}
	r.requests[s.index].Add(1)
	if r.cfg.Emit != nil {
		e := event.AgentTelemetry{
			Header:  event.Header{Time: time.Now()},
			Signal:  s.name,
			Payload: payload,
		}
		if logs, ok := msg.(*collogspb.ExportLogsServiceRequest); ok {
			e.Logs = LogsToEvents(logs)
		}
		r.cfg.Emit(e)
	}
	return nil
}

// signalKind is what differs between traces, logs and metrics.
type signalKind struct {
	index int
	name  string
	path  string
	// newRequest returns an empty Export*ServiceRequest.
	newRequest func() proto.Message
	// check validates and trims a decoded request in place, counts it,
	// and returns the response (with partial success when something was
	// dropped).
	check func(r *Receiver, msg proto.Message) proto.Message
}

var signals = []*signalKind{
	{index: 0, name: SignalTraces, path: "/v1/traces",
		newRequest: func() proto.Message { return new(coltracepb.ExportTraceServiceRequest) },
		check: func(r *Receiver, m proto.Message) proto.Message {
			return r.checkTraces(m.(*coltracepb.ExportTraceServiceRequest))
		}},
	{index: 1, name: SignalLogs, path: "/v1/logs",
		newRequest: func() proto.Message { return new(collogspb.ExportLogsServiceRequest) },
		check: func(r *Receiver, m proto.Message) proto.Message {
			return r.checkLogs(m.(*collogspb.ExportLogsServiceRequest))
		}},
	{index: 2, name: SignalMetrics, path: "/v1/metrics",
		newRequest: func() proto.Message { return new(colmetricspb.ExportMetricsServiceRequest) },
		check: func(r *Receiver, m proto.Message) proto.Message {
			return r.checkMetrics(m.(*colmetricspb.ExportMetricsServiceRequest))
		}},
}

// checkTraces drops spans whose trace or span id has the wrong length (or
// is all zero): they cannot be placed in any trace, and the OTLP spec's
// partial success is how a receiver says so without making the exporter
// retry the rest.
func (r *Receiver) checkTraces(req *coltracepb.ExportTraceServiceRequest) proto.Message {
	var kept, rejected int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			spans := ss.Spans[:0]
			for _, sp := range ss.GetSpans() {
				if otlpvalue.ValidTraceID(sp.GetTraceId()) && otlpvalue.ValidSpanID(sp.GetSpanId()) &&
					(len(sp.GetParentSpanId()) == 0 || len(sp.GetParentSpanId()) == 8) {
					spans = append(spans, sp)
					kept++
				} else {
					rejected++
				}
			}
			clear(ss.Spans[len(spans):])
			ss.Spans = spans
		}
	}
	r.spans.Add(kept)
	resp := &coltracepb.ExportTraceServiceResponse{}
	if rejected > 0 {
		r.rejectedSpans.Add(rejected)
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{
			RejectedSpans: rejected,
			ErrorMessage:  strconv.FormatInt(rejected, 10) + " spans with an invalid trace or span id dropped",
		}
	}
	return resp
}

func (r *Receiver) checkLogs(req *collogspb.ExportLogsServiceRequest) proto.Message {
	var n int64
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			n += int64(len(sl.GetLogRecords()))
		}
	}
	r.logRecords.Add(n)
	return &collogspb.ExportLogsServiceResponse{}
}

func (r *Receiver) checkMetrics(req *colmetricspb.ExportMetricsServiceRequest) proto.Message {
	r.dataPoints.Add(CountDataPoints(req))
	return &colmetricspb.ExportMetricsServiceResponse{}
}

// CountDataPoints counts the data points of every metric kind in req (the
// receiver's stats and the recorder's agentwatch.agent.metrics).
func CountDataPoints(req *colmetricspb.ExportMetricsServiceRequest) int64 {
	return otlpvalue.DataPoints(req.GetResourceMetrics())
}

// handle is the transport-independent part of one export.
func (r *Receiver) handle(s *signalKind, msg proto.Message) (proto.Message, error) {
	resp := s.check(r, msg)
	if err := r.accept(s, msg); err != nil {
		return nil, err
	}
	return resp, nil
}

// gRPC services.

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	resp, err := s.r.handle(signals[0], req)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp.(*coltracepb.ExportTraceServiceResponse), nil
}

type logsService struct {
	collogspb.UnimplementedLogsServiceServer
	r *Receiver
}

func (s logsService) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	resp, err := s.r.handle(signals[1], req)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp.(*collogspb.ExportLogsServiceResponse), nil
}

type metricsService struct {
	colmetricspb.UnimplementedMetricsServiceServer
	r *Receiver
}

func (s metricsService) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	resp, err := s.r.handle(signals[2], req)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp.(*colmetricspb.ExportMetricsServiceResponse), nil
}

func grpcError(err error) error {
	if errors.Is(err, errClosed) {
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
