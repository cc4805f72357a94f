package export_test

// Export to a real OTLP receiver: the OpenTelemetry Collector's own
// otlpreceiver, over gRPC and HTTP on loopback. The collector libraries are
// heavy, so they are imported only here, in a test file.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startReceiver runs the collector's OTLP receiver with only the given
// protocol enabled, on a fresh loopback port, feeding a TracesSink.
func startReceiver(t *testing.T, protocol string) (string, *consumertest.TracesSink) {
	t.Helper()
	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)
	addr := freePort(t)
	switch protocol {
	case export.ProtocolGRPC:
		g := cfg.Protocols.GRPC.GetOrInsertDefault()
		g.NetAddr.Endpoint = addr
		g.IncludeMetadata = true
	case export.ProtocolHTTP:
		h := cfg.Protocols.HTTP.GetOrInsertDefault()
		h.ServerConfig.NetAddr.Endpoint = addr
		h.ServerConfig.IncludeMetadata = true
	}
	sink := new(consumertest.TracesSink)
	rcv, err := factory.CreateTraces(context.Background(), receivertest.NewNopSettings(component.MustNewType("otlp")), cfg, sink)
	if err != nil {
		t.Fatalf("creating OTLP receiver: %v", err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatalf("starting OTLP receiver on %s: %v", addr, err)
	}
	t.Cleanup(func() { rcv.Shutdown(context.Background()) })
	return addr, sink
}

func TestUploadToCollector(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol string
		endpoint func(addr string) string
		envProto string
	}{
		{"grpc scheme", export.ProtocolGRPC, func(a string) string { return "grpc://" + a }, ""},
		{"bare host:port is grpc", export.ProtocolGRPC, func(a string) string { return a }, ""},
		{"http scheme", export.ProtocolHTTP, func(a string) string { return "http://" + a }, ""},
		{"http with explicit path", export.ProtocolHTTP, func(a string) string { return "http://" + a + "/v1/traces" }, ""},
		{"http scheme with OTEL protocol grpc", export.ProtocolGRPC, func(a string) string { return "http://" + a }, "grpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, sink := startReceiver(t, tc.protocol)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.envProto)
			// Headers come from the standard variable, read by the exporter
			// client, not by us.
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-agentwatch-test=h3")

			tr := sampleTrace()
			req := otlp.Request(tr)
			cfg := export.Config{Endpoint: tc.endpoint(addr)}
			if !cfg.Enabled() {
				t.Fatal("Config with an endpoint reports not enabled")
			}
			if err := export.Upload(context.Background(), cfg, req); err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if got := sink.SpanCount(); got != len(tr.Spans) {
				t.Fatalf("receiver got %d spans, want %d", got, len(tr.Spans))
			}
			if md := client.FromContext(sink.Contexts()[0]).Metadata.Get("x-agentwatch-test"); len(md) != 1 || md[0] != "h3" {
				t.Errorf("header from OTEL_EXPORTER_OTLP_HEADERS: got %q, want [h3]", md)
			}

			// What arrived, back in our types: every span, parent ids and
			// attributes exactly as sent.
			var received coltracepb.ExportTraceServiceRequest
			for _, td := range sink.AllTraces() {
				raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
				if err != nil {
					t.Fatal(err)
				}
				var part coltracepb.ExportTraceServiceRequest
				if err := proto.Unmarshal(raw, &part); err != nil {
					t.Fatal(err)
				}
				received.ResourceSpans = append(received.ResourceSpans, part.ResourceSpans...)
			}
			if !proto.Equal(&received, req) {
				t.Errorf("received request differs from the one sent:\n got %v\nwant %v", &received, req)
			}
			got, err := otlp.FromRequest(&received)
			if err != nil {
				t.Fatal(err)
			}
			parents := map[string]string{}
			for _, s := range got.Spans {
				parents[s.Name] = s.ParentID.String()
			}
			want := map[string]string{
				"agent_run":    "0000000000000000",
				"bash_command": rootID.String(),
				"test_run":     bashID.String(),
				"file_write":   bashID.String(),
				"network_call": rootID.String(),
			}
			if fmt.Sprint(parents) != fmt.Sprint(want) {
				t.Errorf("parents = %v, want %v", parents, want)
			}
			if v, _ := got.Root().Attr("process.command_line"); v.AsString() != `claude -p "fix the flaky test"` {
				t.Errorf("root command line = %q", v.AsString())
			}
			if got.RunID != tr.RunID {
				t.Errorf("run id = %q, want %q", got.RunID, tr.RunID)
			}
		})
	}
}

func TestUploadFromEnvironment(t *testing.T) {
	addr, sink := startReceiver(t, export.ProtocolHTTP)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	cfg := export.Config{}
	if !cfg.Enabled() {
		t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT set but Config not enabled")
	}
	if err := export.Upload(context.Background(), cfg, otlp.Request(sampleTrace())); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if got := sink.SpanCount(); got != 5 {
		t.Errorf("receiver got %d spans, want 5", got)
	}
}

func TestUploadUnreachable(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	addr := freePort(t) // nothing listens there
	for _, endpoint := range []string{"grpc://" + addr, addr, "http://" + addr} {
		t.Run(endpoint, func(t *testing.T) {
			start := time.Now()
			err := export.Upload(context.Background(), export.Config{Endpoint: endpoint}, otlp.Request(sampleTrace()))
			took := time.Since(start)
			if err == nil {
				t.Fatal("Upload to a closed port succeeded")
			}
			want := "exporting to " + addr + ": connection refused"
			if err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if took > 5*time.Second {
				t.Errorf("Upload took %v to fail, want a few seconds at most", took)
			}
		})
	}
}

func TestUploadBadConfig(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	for _, tc := range []struct {
		cfg  export.Config
		want string
	}{
		{export.Config{Endpoint: "ftp://localhost:21"}, "scheme must be http, https, grpc or grpcs"},
		{export.Config{Endpoint: "localhost"}, "want host:port or a URL"},
		{export.Config{Endpoint: "grpc://localhost:4317", Protocol: "http/protobuf"}, "conflicts with protocol"},
		{export.Config{Endpoint: "localhost:4317", Protocol: "thrift"}, `"thrift": unknown OTLP protocol`},
	} {
		err := export.Upload(context.Background(), tc.cfg, otlp.Request(sampleTrace()))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "exporting to ") {
			t.Errorf("Upload(%+v) error = %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}
