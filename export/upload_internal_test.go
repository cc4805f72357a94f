package export

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "")
	for _, tc := range []struct {
		in   string
		want endpoint
	}{
		{"http://localhost:4318", endpoint{scheme: "http", hostport: "localhost:4318", insecure: true}},
		{"http://collector", endpoint{scheme: "http", hostport: "collector:4318", insecure: true}},
		{"https://otel.example.com/otlp/v1/traces", endpoint{scheme: "https", hostport: "otel.example.com:4318", path: "/otlp/v1/traces"}},
		{"grpc://10.0.0.5:4317", endpoint{scheme: "grpc", hostport: "10.0.0.5:4317", insecure: true}},
		{"grpcs://otel.example.com", endpoint{scheme: "grpcs", hostport: "otel.example.com:4317"}},
		{"localhost:4317", endpoint{hostport: "localhost:4317", insecure: true}},
		{"[::1]:4317", endpoint{hostport: "[::1]:4317", insecure: true}},
		{"otel.example.com:4317", endpoint{hostport: "otel.example.com:4317"}},
	} {
		got, err := parseEndpoint(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseEndpoint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	if got, _ := parseEndpoint("otel.example.com:4317"); !got.insecure {
		t.Error("OTEL_EXPORTER_OTLP_INSECURE=true not honoured for a bare host:port")
	}
}

func TestCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New(`traces export: context deadline exceeded: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:4317: connect: connection refused"`), "connection refused"},
		{fmt.Errorf("failed to send to http://127.0.0.1:40113/v1/traces: 404 Not Found"), "not found (HTTP 404; check the endpoint path)"},
		{errors.New("dial tcp: lookup nosuch.invalid: no such host"), "no such host"},
		{errors.New("something\nodd   happened"), "something odd happened"},
	} {
		if got, _ := cause(tc.err); got != tc.want {
			t.Errorf("cause(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
