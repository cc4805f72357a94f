package export

import (
	"bytes"
	"context"
	"io"
	"log"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/stdr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"golang.org/x/sys/unix"
)

// captureStderr runs f with file descriptor 2 on a pipe, where the SDK's
// default logger and grpclog would write, and returns what arrived.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup2(int(w.Fd()), 2); err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	f()
	unix.Dup2(saved, 2)
	unix.Close(saved)
	w.Close()
	return <-done
}

// TestSDKSilent: the exporter clients log a setting they cannot parse —
// with the value, a secret for a header — and carry on; with the loggers
// agentwatch installs, nothing reaches stderr. The control shows the same
// calls do log when a logger is there.
func TestSDKSilent(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "::bad")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer s3cr3t%zz,novalue")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")
	sdkCalls := func() {
		for _, c := range []interface {
			Start(context.Context) error
			Stop(context.Context) error
		}{otlptracegrpc.NewClient(), otlptracehttp.NewClient()} {
			c.Start(context.Background())
			c.Stop(context.Background())
		}
		otel.Handle(io.ErrUnexpectedEOF)
	}

	var buf bytes.Buffer
	otel.SetLogger(stdr.New(log.New(&buf, "", 0)))
	sdkCalls()
	otel.SetLogger(quietLogger)
	if !strings.Contains(buf.String(), "s3cr3t") || !strings.Contains(buf.String(), "parse url") {
		t.Fatalf("control: the SDK did not log the bad settings:\n%s", buf.String())
	}

	if out := captureStderr(t, func() {
		sdkCalls()
		// A refused gRPC connection: grpc-go's own logger has nothing to
		// say on stderr either.
		t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "")
		t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "")
		if err := Upload(context.Background(), Config{Endpoint: "grpc://127.0.0.1:1"}, &coltracepb.ExportTraceServiceRequest{}); err == nil {
			t.Error("upload to port 1 succeeded")
		}
	}); out != "" {
		t.Errorf("stderr got SDK output:\n%s", out)
	}
}
