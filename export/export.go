// Package export converts a run's trace to OTLP and sends it: the OTLP/JSON
// trace file (one ExportTraceServiceRequest per line, the collector file
// exporter's format) and OTLP over gRPC or HTTP to any collector. It never
// redacts or filters: it sends what the recorder built.
package export

import (
	"context"
	"errors"

	"github.com/agentwatch/agentwatch/telemetry"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// Request converts a trace to one OTLP ExportTraceServiceRequest.
func Request(tr *telemetry.Trace) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{}
}

// FromRequest converts back; Request(FromRequest(r)) == r for requests
// that Request made.
func FromRequest(req *coltracepb.ExportTraceServiceRequest) (*telemetry.Trace, error) {
	return nil, errors.New("not implemented")
}

// FileWriter appends requests to an OTLP/JSON file, one per line.
type FileWriter struct{}

// OpenFile creates or appends to path; it fails at once when the file
// cannot be written, so a run never starts with an unwritable trace file.
func OpenFile(path string) (*FileWriter, error) { return nil, errors.New("not implemented") }

// Write appends one request as a line of OTLP/JSON.
func (w *FileWriter) Write(req *coltracepb.ExportTraceServiceRequest) error {
	return errors.New("not implemented")
}

// Close flushes and closes the file.
func (w *FileWriter) Close() error { return nil }

// Config selects the OTLP destination. Empty Endpoint and no
// OTEL_EXPORTER_OTLP_* variables: no OTLP export.
type Config struct {
	Endpoint string // --otlp-endpoint: grpc://host:port, http(s)://host:port[/v1/traces], or host:port (gRPC)
	Protocol string // grpc | http/protobuf | "" (OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)
}

// Enabled reports whether an OTLP destination is configured by cfg or by
// the environment.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// Upload sends one request to the configured collector.
func Upload(ctx context.Context, cfg Config, req *coltracepb.ExportTraceServiceRequest) error {
	return errors.New("not implemented")
}
