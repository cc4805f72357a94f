package export

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
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
// OTel exporter clients themselves. Endpoint overrides the variables'
// endpoint.
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
	// Timeout bounds one Upload, retries included; zero is DefaultTimeout.
	Timeout time.Duration
}

// Enabled reports whether an OTLP destination is configured by cfg or by
// the environment.
func (c Config) Enabled() bool {
	return c.Endpoint != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Target names the destination for messages: the endpoint as given, or the
// environment's endpoint.
func (c Config) Target() string {
	for _, s := range []string{c.Endpoint, os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")} {
		if s != "" {
			return s
		}
	}
	return "the default OTLP endpoint"
}

// Upload sends one request to the configured collector, within cfg.Timeout
// (and ctx). A failure is one line naming the endpoint and the cause, e.g.
// "exporting to localhost:4317: connection refused".
func Upload(ctx context.Context, cfg Config, req *coltracepb.ExportTraceServiceRequest) error {
	client, target, err := newClient(cfg)
	if err != nil {
		return fmt.Errorf("exporting to %s: %w", cfg.Target(), err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("exporting to %s: %s", target, cause(err))
	}
	upErr := client.UploadTraces(ctx, req.GetResourceSpans())
	// Stop with its own short deadline: after a timeout ctx is already done,
	// and Stop must still release the connection.
	stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer stopCancel()
	stopErr := client.Stop(stopCtx)
	if upErr != nil {
		return fmt.Errorf("exporting to %s: %s", target, cause(upErr))
	}
	if stopErr != nil {
		return fmt.Errorf("exporting to %s: %s", target, cause(stopErr))
	}
	return nil
}

// retry is bounded well inside DefaultTimeout: a collector that is briefly
// busy gets a few attempts, one that is down fails the upload in about two
// seconds.
var (
	grpcRetry = otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 2 * time.Second}
	httpRetry = otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 2 * time.Second}
)

// newClient maps Config onto exporter-client options; the clients read the
// OTEL_EXPORTER_OTLP_* variables first and our options override them.
func newClient(cfg Config) (otlptrace.Client, string, error) {
	proto := cfg.Protocol
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	}
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	ep, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, "", err
	}
	if proto == "" {
		switch {
		case cfg.Endpoint == "":
			proto = ProtocolHTTP
		case ep.scheme == "http" || ep.scheme == "https":
			proto = ProtocolHTTP
		default:
			proto = ProtocolGRPC
		}
	}
	target := cfg.Target()
	if cfg.Endpoint != "" {
		target = ep.hostport
	}
	switch proto {
	case ProtocolGRPC:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithRetry(grpcRetry)}
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(ep.hostport))
			if ep.insecure {
				opts = append(opts, otlptracegrpc.WithInsecure())
			}
		}
		return otlptracegrpc.NewClient(opts...), target, nil
	case ProtocolHTTP, "http/json":
		if proto == "http/json" {
			// The Go exporter client speaks only protobuf over HTTP; saying
			// so beats sending a format the collector did not ask for.
			return nil, "", errors.New("protocol http/json is not supported by the OTLP exporter client; use http/protobuf or grpc")
		}
		if ep.scheme == "grpc" || ep.scheme == "grpcs" {
			return nil, "", fmt.Errorf("endpoint scheme %s:// conflicts with protocol %s", ep.scheme, proto)
		}
		opts := []otlptracehttp.Option{otlptracehttp.WithRetry(httpRetry)}
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpoint(ep.hostport))
			path := ep.path
			if path == "" || path == "/" {
				path = "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithURLPath(path))
			if ep.insecure {
				opts = append(opts, otlptracehttp.WithInsecure())
			}
		}
		return otlptracehttp.NewClient(opts...), target, nil
	}
	return nil, "", fmt.Errorf("unknown OTLP protocol %q (want grpc or http/protobuf)", proto)
}

type endpoint struct {
	scheme   string // http, https, grpc, grpcs, or "" for bare host:port
	hostport string
	path     string
	insecure bool
}

func parseEndpoint(s string) (endpoint, error) {
	if s == "" {
		return endpoint{}, nil
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || port == "" {
			return endpoint{}, fmt.Errorf("invalid endpoint %q: want host:port or a URL such as http://localhost:4318", s)
		}
		return endpoint{hostport: s, insecure: isLoopback(host) || envInsecure()}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("invalid endpoint %q: %w", s, err)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("invalid endpoint %q: no host", s)
	}
	ep := endpoint{scheme: strings.ToLower(u.Scheme), hostport: u.Host, path: u.Path}
	switch ep.scheme {
	case "http", "grpc":
		ep.insecure = true
	case "https", "grpcs":
	default:
		return endpoint{}, fmt.Errorf("invalid endpoint %q: scheme must be http, https, grpc or grpcs", s)
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
// deadline messages, several lines long — to the one cause a person acts on.
func cause(err error) string {
	msg := err.Error()
	known := []struct{ needle, say string }{
		{"connection refused", "connection refused"},
		{"no such host", "no such host"},
		{"network is unreachable", "network is unreachable"},
		{"no route to host", "no route to host"},
		{"certificate", "TLS certificate error"},
		{"first record does not look like a TLS handshake", "TLS handshake failed (the endpoint speaks plaintext; use http:// or grpc://)"},
		{"authentication handshake failed", "TLS handshake failed"},
		{"Unauthenticated", "unauthenticated (check OTEL_EXPORTER_OTLP_HEADERS)"},
		{"PermissionDenied", "permission denied by the collector"},
		{"401 Unauthorized", "unauthenticated (HTTP 401; check OTEL_EXPORTER_OTLP_HEADERS)"},
		{"403 Forbidden", "forbidden (HTTP 403)"},
		{"404 Not Found", "not found (HTTP 404; check the endpoint path)"},
		{"deadline exceeded", "timed out"},
		{"Client.Timeout", "timed out"},
	}
	for _, k := range known {
		if strings.Contains(msg, k.needle) {
			return k.say
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	return strings.Join(strings.Fields(msg), " ")
}
