package export

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Protocols accepted in Config.Protocol and OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// DefaultTimeout bounds one Upload, retries included, when Config.Timeout
// is zero: a run must finish promptly even when its collector is gone (the
// store keeps the trace for `agentwatch export` later).
const DefaultTimeout = 10 * time.Second

// Config selects the OTLP destination. Empty Endpoint and no
// OTEL_EXPORTER_OTLP_* variables: no OTLP export.
//
// Everything Config does not set — headers, certificates, compression, a
// traces-specific endpoint or timeout — comes from the standard
// OTEL_EXPORTER_OTLP_* / OTEL_EXPORTER_OTLP_TRACES_* variables, read by the
// OTel exporter clients themselves after Validate has checked them.
// Endpoint overrides the variables' endpoint.
type Config struct {
	// Endpoint is --otlp-endpoint:
	//   http://host:port[/path]  HTTP, plaintext (path defaults to /v1/traces)
	//   https://host:port[/path] HTTP, TLS
	//   grpc://host:port         gRPC, plaintext
	//   grpcs://host:port        gRPC, TLS
	//   host:port                gRPC; plaintext for a loopback host, else TLS
	//                            unless OTEL_EXPORTER_OTLP_INSECURE=true
	// With Protocol grpc, http:// and https:// select plaintext or TLS gRPC,
	// as the OTLP exporter specification defines.
	Endpoint string
	// Protocol is grpc | http/protobuf | "". Empty: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
	// else OTEL_EXPORTER_OTLP_PROTOCOL, else the Endpoint's scheme, else
	// http/protobuf (the specification's default, for an endpoint set only
	// through the environment).
	Protocol string
	// Timeout bounds one Upload, every request and retry included; zero is
	// DefaultTimeout. OTEL_EXPORTER_OTLP_TIMEOUT, when set, bounds each
	// request within it.
	Timeout time.Duration
	// MaxRequestBytes bounds one request, serialized; zero is
	// DefaultMaxRequestBytes. Larger runs are sent in several requests.
	MaxRequestBytes int
}

// Enabled reports whether an OTLP destination is configured by cfg or by
// the environment.
func (c Config) Enabled() bool {
	return c.Endpoint != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Target names the destination for messages: the endpoint as given, or the
// environment's endpoint (user info masked).
func (c Config) Target() string {
	for _, s := range []string{c.Endpoint, os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")} {
		if s != "" {
			return showEndpoint(s)
		}
	}
	return "the default OTLP endpoint"
}

// UploadError is an Upload that did not deliver every request. Re-sending
// the whole run is safe: span and trace ids are the recorder's and stable,
// so a collector sees the same spans again, not new ones.
type UploadError struct {
	Target   string // the endpoint, as in "exporting to <target>"
	Requests int    // the requests the run was split into
	Failed   []int  // 1-based numbers of the requests not delivered (failed or not attempted)
	Spans    int    // spans in the run
	Lost     int    // spans in the requests not delivered
	Cause    string // the first failure's cause, one line
}

func (e *UploadError) Error() string {
	if e.Requests <= 1 {
		return fmt.Sprintf("exporting to %s: %s", e.Target, e.Cause)
	}
	return fmt.Sprintf("exporting to %s: %s (requests %s of %d not delivered: %d of %d spans)",
		e.Target, e.Cause, describeRequests(e.Failed), e.Requests, e.Lost, e.Spans)
}

// Upload sends req to the configured collector, split into requests of at
// most cfg.MaxRequestBytes, one after the other, within cfg.Timeout (and
// ctx). A failure is one line naming the endpoint and the cause, e.g.
// "exporting to localhost:4317: connection refused"; when some requests
// were delivered and others not, an *UploadError says which. After a
// failure that will not pass by itself (refused, unreachable, timed out,
// rejected credentials) the remaining requests are not attempted.
func Upload(ctx context.Context, cfg Config, req *coltracepb.ExportTraceServiceRequest) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("exporting to %s: %w", cfg.Target(), err)
	}
	s, err := resolve(cfg)
	if err != nil {
		return fmt.Errorf("exporting to %s: %w", cfg.Target(), err)
	}
	batches, _ := Batches(req, cfg.MaxRequestBytes)
	ue := &UploadError{Target: s.target, Requests: len(batches), Spans: spanCount(req)}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := s.client()
	if err := client.Start(ctx); err != nil {
		c, _ := cause(err)
		return &UploadError{Target: s.target, Cause: c}
	}
	stop := false
	for i, b := range batches {
		if !stop {
			err := client.UploadTraces(ctx, b.GetResourceSpans())
			if err == nil {
				continue
			}
			c, fatal := cause(err)
			if ue.Cause == "" {
				ue.Cause = c
			}
			stop = fatal || ctx.Err() != nil
		}
		ue.Failed = append(ue.Failed, i+1)
		ue.Lost += spanCount(b)
	}
	// Stop with its own short deadline: after a timeout ctx is already done,
	// and Stop must still release the connection.
	stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer stopCancel()
	stopErr := client.Stop(stopCtx)
	if len(ue.Failed) > 0 {
		return ue
	}
	if stopErr != nil {
		c, _ := cause(stopErr)
		return &UploadError{Target: s.target, Cause: c}
	}
	return nil
}

// Probe uploads one export request that carries a resource and no span
// (address, protocol, TLS and headers as for a run's trace):
// doctor's proof that a run's trace will get through. nil when the
// collector accepted it; an *UploadError naming the cause otherwise.
func Probe(ctx context.Context, cfg Config) error {
	return Upload(ctx, cfg, &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{Resource: &resourcepb.Resource{}}}})
}

// retry is bounded well inside DefaultTimeout: a collector that is briefly
// busy gets a few attempts, one that is down fails the upload in about two
// seconds.
var (
	grpcRetry = otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 2 * time.Second}
	httpRetry = otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 2 * time.Second}
)

// settings is a Config resolved against the environment.
type settings struct {
	proto  string
	target string
	cfg    Config
	ep     endpoint
}

// resolve picks the protocol and the target; the clients read the
// OTEL_EXPORTER_OTLP_* variables first and our options override them.
func resolve(cfg Config) (settings, error) {
	s := settings{cfg: cfg, proto: cfg.Protocol}
	source := "OTLP protocol"
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if s.proto == "" {
			s.proto, source = strings.TrimSpace(os.Getenv(k)), k
		}
	}
	ep, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return s, err
	}
	s.ep = ep
	if s.proto == "" {
		switch {
		case cfg.Endpoint == "":
			s.proto = ProtocolHTTP
		case ep.scheme == "http" || ep.scheme == "https":
			s.proto = ProtocolHTTP
		default:
			s.proto = ProtocolGRPC
		}
	} else if err := checkProtocol(source, s.proto); err != nil {
		return s, err
	}
	s.target = cfg.Target()
	if cfg.Endpoint != "" {
		s.target = ep.hostport
	}
	if s.proto == ProtocolHTTP && (ep.scheme == "grpc" || ep.scheme == "grpcs") {
		return s, settingErr("--otlp-endpoint", "%q: scheme %s:// conflicts with protocol %s (from %s)", showEndpoint(cfg.Endpoint), ep.scheme, s.proto, source)
	}
	return s, nil
}

// client makes the exporter client; it connects on Start. The endpoint
// is given as a URL, which sets host, path and plaintext-or-TLS at once:
// the clients apply the variables first, and a separate WithEndpoint would
// leave an OTEL_EXPORTER_OTLP_INSECURE=true or an http:// variable in
// force — plaintext to a grpcs:// or https:// endpoint.
func (s settings) client() otlptrace.Client {
	scheme := "https"
	if s.ep.insecure {
		scheme = "http"
	}
	if s.proto == ProtocolGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithRetry(grpcRetry)}
		if s.cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(scheme+"://"+s.ep.hostport))
		}
		return otlptracegrpc.NewClient(opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithRetry(httpRetry)}
	if s.cfg.Endpoint != "" {
		path := s.ep.path
		if path == "" || path == "/" {
			path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(scheme+"://"+s.ep.hostport+path))
	}
	return otlptracehttp.NewClient(opts...)
}

type endpoint struct {
	scheme   string // http, https, grpc, grpcs, or "" for bare host:port
	hostport string
	path     string
	insecure bool
}

// parseEndpoint reads --otlp-endpoint (see Config.Endpoint).
func parseEndpoint(s string) (endpoint, error) {
	if s == "" {
		return endpoint{}, nil
	}
	const flag = "--otlp-endpoint"
	shown := showEndpoint(s)
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || port == "" {
			return endpoint{}, settingErr(flag, "%q: want host:port or a URL such as http://localhost:4318", shown)
		}
		if err := checkHostPort(host, port, false); err != nil {
			return endpoint{}, settingErr(flag, "%q: %v", shown, err)
		}
		return endpoint{hostport: s, insecure: isLoopback(host) || envInsecure()}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		reason := "not a URL"
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = strings.TrimPrefix(ue.Err.Error(), "parse ")
		}
		return endpoint{}, settingErr(flag, "%q: %s (want a URL such as http://localhost:4318)", shown, reason)
	}
	ep := endpoint{scheme: strings.ToLower(u.Scheme), hostport: u.Host, path: u.Path}
	switch ep.scheme {
	case "http", "grpc":
		ep.insecure = true
	case "https", "grpcs":
	default:
		return endpoint{}, settingErr(flag, "%q: scheme must be http, https, grpc or grpcs", shown)
	}
	if err := checkHostPort(u.Hostname(), u.Port(), strings.HasSuffix(u.Host, ":")); err != nil {
		return endpoint{}, settingErr(flag, "%q: %v", shown, err)
	}
	if u.User != nil {
		return endpoint{}, settingErr(flag, "%q: credentials in the URL are not sent; use OTEL_EXPORTER_OTLP_HEADERS", shown)
	}
	if u.Port() == "" {
		// The clients need a port; use the OTLP defaults.
		port := "4317"
		if ep.scheme == "http" || ep.scheme == "https" {
			port = "4318"
		}
		ep.hostport = net.JoinHostPort(u.Hostname(), port)
	}
	return ep, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func envInsecure() bool {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"} {
		if strings.EqualFold(os.Getenv(k), "true") {
			return true
		}
	}
	return false
}

// cause reduces an exporter error — gRPC status text wrapped in retry and
// deadline messages, several lines long — to the one cause a person acts
// on. fatal says the next request would fail the same way (the collector
// is unreachable, refuses us, or asked us to back off and the retries ran
// out), so the rest of an upload is not attempted. Text from the collector
// is quoted: it is not ours, and must not reach a terminal raw.
func cause(err error) (msg string, fatal bool) {
	text := err.Error()
	known := []struct {
		needle, say string
	}{
		{"connection refused", "connection refused"},
		{"no such host", "no such host"},
		{"network is unreachable", "network is unreachable"},
		{"no route to host", "no route to host"},
		{"certificate", "TLS certificate error"},
		{"first record does not look like a TLS handshake", "TLS handshake failed (the endpoint speaks plaintext; use http:// or grpc://)"},
		{"server gave HTTP response to HTTPS client", "TLS handshake failed (the endpoint speaks plaintext; use http://)"},
		{"authentication handshake failed", "TLS handshake failed"},
		{"401 Unauthorized", "unauthenticated (HTTP 401; check OTEL_EXPORTER_OTLP_HEADERS)"},
		{"403 Forbidden", "forbidden (HTTP 403)"},
		{"404 Not Found", "not found (HTTP 404; check the endpoint path)"},
	}
	for _, k := range known {
		if strings.Contains(text, k.needle) {
			return k.say, true
		}
	}
	if st, ok := status.FromError(unwrapStatus(err)); ok && st.Code() != grpccodes.OK && st.Code() != grpccodes.Unknown {
		desc := quoted(st.Message())
		switch st.Code() {
		case grpccodes.DeadlineExceeded, grpccodes.Canceled:
			return "timed out", true
		case grpccodes.Unauthenticated:
			return "unauthenticated (gRPC Unauthenticated; check OTEL_EXPORTER_OTLP_HEADERS)", true
		case grpccodes.PermissionDenied:
			return "permission denied by the collector (gRPC PermissionDenied)", true
		case grpccodes.Unavailable:
			return "collector unavailable (gRPC Unavailable: " + desc + ")", true
		case grpccodes.ResourceExhausted:
			// grpc-go says so when a message is over MaxRecvMsgSize.
			return "collector refused the request (gRPC ResourceExhausted: " + desc + ")", false
		case grpccodes.Unimplemented:
			return "the endpoint has no OTLP trace service (gRPC Unimplemented)", true
		}
		return "collector refused the request (gRPC " + st.Code().String() + ": " + desc + ")", false
	}
	switch {
	case strings.Contains(text, "deadline exceeded"), strings.Contains(text, "Client.Timeout"),
		strings.Contains(text, "exporter export timeout"), errors.Is(err, context.DeadlineExceeded):
		return "timed out", true
	case errors.Is(err, context.Canceled):
		return "canceled", true
	}
	if i := strings.Index(text, "OTLP partial success: "); i >= 0 {
		return "collector rejected part of the request: " + quoted(strings.TrimPrefix(text[i:], "OTLP partial success: ")), false
	}
	// otlptracehttp: "failed to send to URL: 400 Bad Request (body: …)"
	// for a final status; "retry-able request failure: body: …" once the
	// retries of a 429, 502, 503 or 504 ran out.
	if i := strings.Index(text, "failed to send to "); i >= 0 {
		rest := text[i+len("failed to send to "):]
		if j := strings.Index(rest, ": "); j >= 0 {
			rest = rest[j+2:]
		}
		st, body, _ := strings.Cut(rest, " (body: ")
		body = strings.TrimSuffix(body, ")")
		return "collector answered HTTP " + quoted(st) + bodyNote(body), false
	}
	if i := strings.Index(text, "retry-able request failure"); i >= 0 {
		body := strings.TrimPrefix(text[i+len("retry-able request failure"):], ": body: ")
		return "collector busy or unavailable (HTTP 429, 502, 503 or 504, retries exhausted)" + bodyNote(body), true
	}
	return quoted(strings.Join(strings.Fields(text), " ")), false
}

// unwrapStatus finds the gRPC status error in a chain (retry and
// errors.Join wrappers around it).
func unwrapStatus(err error) error {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.(error)
	}
	return err
}

func bodyNote(body string) string {
	body = strings.TrimSpace(body)
	if body == "" || body == "(empty)" {
		return ""
	}
	return ": " + quoted(body)
}

// quoted is text from the other side, made one short printable line:
// control characters escaped, at most 200 bytes.
func quoted(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = shorten(s, 200)
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
