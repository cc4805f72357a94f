package export_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "collector.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	const secret = "s3cr3t-t0ken"
	const ep = "OTEL_EXPORTER_OTLP_ENDPOINT"
	for _, tc := range []struct {
		name    string
		cfg     export.Config
		env     map[string]string
		setting string // "" when valid
		want    string
	}{
		{"grpc URL", export.Config{Endpoint: "grpc://127.0.0.1:4317"}, nil, "", ""},
		{"http URL with path", export.Config{Endpoint: "https://otel.example.com/otlp/v1/traces"}, nil, "", ""},
		{"everything set and right", export.Config{}, map[string]string{ep: "https://otel.example.com:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:4318/v1/traces",
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20" + secret + ",x-team = agents ,", "OTEL_EXPORTER_OTLP_INSECURE": "FALSE",
			"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TIMEOUT": "5000", "OTEL_EXPORTER_OTLP_CERTIFICATE": cert,
			"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cert, "OTEL_EXPORTER_OTLP_CLIENT_KEY": key}, "", ""},
		{"nothing configured: nothing to check", export.Config{}, map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "junk"}, "", ""},
		{"flag replaces a bad endpoint variable", export.Config{Endpoint: "localhost:4317"}, map[string]string{ep: "::bad"}, "", ""},

		{"::bad flag", export.Config{Endpoint: "::bad"}, nil, "--otlp-endpoint", `"::bad": want host:port or a URL such as http://localhost:4318`},
		{"::bad variable", export.Config{}, map[string]string{ep: "::bad"}, ep, `"::bad": not a URL (want http://host:port or https://host:port)`},
		{"http:// flag", export.Config{Endpoint: "http://"}, nil, "--otlp-endpoint", `"http://": no host`},
		{"http:// variable", export.Config{}, map[string]string{ep: "http://"}, ep, `"http://": no host`},
		{"ftp flag", export.Config{Endpoint: "ftp://x"}, nil, "--otlp-endpoint", `"ftp://x": scheme must be http, https, grpc or grpcs`},
		{"ftp variable", export.Config{}, map[string]string{ep: "ftp://x"}, ep, `"ftp://x": scheme ftp is not supported (want http://host:port or https://host:port)`},
		{"grpc scheme in the variable", export.Config{}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "grpc://c:4317"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "scheme grpc is not supported"},
		{"port not a number", export.Config{Endpoint: "localhost:abc"}, nil, "--otlp-endpoint", `"localhost:abc": port "abc" is not a number from 1 to 65535`},
		{"port out of range", export.Config{Endpoint: "grpc://localhost:70000"}, nil, "--otlp-endpoint", `port "70000" is not a number from 1 to 65535`},
		{"URL port not a number", export.Config{Endpoint: "http://localhost:abc"}, nil, "--otlp-endpoint", `"http://localhost:abc": invalid port ":abc" after host`},
		{"variable port not a number", export.Config{}, map[string]string{ep: "http://localhost:abc"}, ep, `"http://localhost:abc": not a URL`},
		{"empty host", export.Config{Endpoint: ":4317"}, nil, "--otlp-endpoint", `":4317": no host`},
		{"empty host in URL", export.Config{Endpoint: "http://:4318"}, nil, "--otlp-endpoint", `"http://:4318": no host`},
		{"empty host variable", export.Config{}, map[string]string{ep: "https://:4318"}, ep, "no host"},
		{"bare host:port variable", export.Config{}, map[string]string{ep: "collector:4317"}, ep, `"collector:4317": not a URL`},
		{"no scheme variable", export.Config{}, map[string]string{ep: "//collector:4318"}, ep, "no scheme"},
		{"credentials masked", export.Config{Endpoint: "http://ana:" + secret + "@collector:4318"}, nil, "--otlp-endpoint", `"http://***@collector:4318": credentials in the URL are not sent`},
		{"credentials masked in the variable", export.Config{}, map[string]string{ep: "https://ana:" + secret + "@c"}, ep, `"https://***@c": credentials`},
		{"header without =", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-team=a,Bearer " + secret},
			"OTEL_EXPORTER_OTLP_HEADERS", "entry 2 of 2 has no '=' (want key=value[,key=value...]; values not shown)"},
		{"header name not a token", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Authorization: Bearer " + secret + "=x"},
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "entry 1 of 1: the name is not a valid HTTP header name (values not shown)"},
		{"header value bad escape", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization=" + secret + "%zz"},
			"OTEL_EXPORTER_OTLP_HEADERS", "entry 1 of 1: the value has a bad %-escape (values not shown)"},
		{"bad protocol variable", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL", `"thrift": unknown OTLP protocol (want grpc or http/protobuf)`},
		{"protocol is case-sensitive", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "GRPC"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", `"GRPC": unknown OTLP protocol`},
		{"http/json", export.Config{}, map[string]string{ep: "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL", `"http/json": not supported`},
		{"bad protocol in Config", export.Config{Endpoint: "localhost:4317", Protocol: "thrift"}, nil, "OTLP protocol", `"thrift": unknown OTLP protocol`},
		{"scheme conflicts with protocol", export.Config{Endpoint: "grpc://localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			"--otlp-endpoint", `"grpc://localhost:4317": scheme grpc:// conflicts with protocol http/protobuf (from OTEL_EXPORTER_OTLP_PROTOCOL)`},
		{"timeout with a unit", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT", `"10s": want a whole number of milliseconds, e.g. 10000`},
		{"negative timeout", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "-1"}, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", `"-1": want a whole number`},
		{"negative Config timeout", export.Config{Endpoint: "localhost:4317", Timeout: -time.Second}, nil, "export timeout", "-1s: want a positive duration"},
		{"insecure yes", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_INSECURE": "yes"}, "OTEL_EXPORTER_OTLP_INSECURE", `"yes": want true or false`},
		{"compression", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", `"zstd": want gzip or none`},
		{"certificate missing", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE", `"/nonexistent/ca.pem": no such file or directory`},
		{"certificate not PEM", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": junk}, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "no PEM certificate in the file"},
		{"client certificate without key", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cert}, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "is set without OTEL_EXPORTER_OTLP_CLIENT_KEY"},
		{"client key not a key", export.Config{Endpoint: "localhost:4317"}, map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cert, "OTEL_EXPORTER_OTLP_CLIENT_KEY": junk}, "OTEL_EXPORTER_OTLP_CLIENT_KEY", "not a key for the certificate in OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearOTLPEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := tc.cfg.Validate()
			if tc.setting == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			var ce *export.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate: %v, want a *ConfigError", err)
			}
			msg := err.Error()
			if ce.Setting != tc.setting || !strings.HasPrefix(msg, tc.setting+" ") || !strings.Contains(msg, tc.want) {
				t.Errorf("Validate: %q (setting %q)\nwant %s ...%s...", msg, ce.Setting, tc.setting, tc.want)
			}
			if strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, secret) {
				t.Errorf("error is not one secret-free line: %q", msg)
			}
			// Upload refuses the same way, before any connection.
			uerr := export.Upload(context.Background(), tc.cfg, otlp.Request(sampleTrace()))
			if uerr == nil || !strings.HasSuffix(uerr.Error(), msg) {
				t.Errorf("Upload: %v, want it to end in %q", uerr, msg)
			}
		})
	}
}
