package cli

import (
	"context"
	"github.com/agentwatch/agentwatch/privtest"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
)

func clearOTLPEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"ENDPOINT", "PROTOCOL", "HEADERS", "INSECURE", "COMPRESSION", "TIMEOUT", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
		t.Setenv("OTEL_EXPORTER_OTLP_"+k, "")
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_"+k, "")
	}
}

// TestOTLPSettingsCheckedFirst: a bad collector setting stops `run` before
// the command starts and `export` before it sends, with exit 2 and one
// line that names the setting (never a header's value).
func TestOTLPSettingsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	storedRun(t, dir)
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "::bad"}, []string{"run", "--", "true"},
			`agentwatch: OTEL_EXPORTER_OTLP_ENDPOINT "::bad": not a URL (want http://host:port or https://host:port)` + "\n"},
		{nil, []string{"run", "--otlp-endpoint", "localhost:abc", "--", "true"},
			`agentwatch: --otlp-endpoint "localhost:abc": port "abc" is not a number from 1 to 65535` + "\n"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Bearer hunter2"}, []string{"run", "--otlp-endpoint", "grpc://127.0.0.1:4317", "--", "true"},
			"agentwatch: OTEL_EXPORTER_OTLP_HEADERS entry 1 of 1 has no '=' (want key=value[,key=value...]; values not shown)\n"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, []string{"export", "latest", "--store", dir},
			`agentwatch: OTEL_EXPORTER_OTLP_TIMEOUT "10s": want a whole number of milliseconds, e.g. 10000` + "\n"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, []string{"export", "latest", "--store", dir, "--otlp-endpoint", "127.0.0.1:4317"},
			`agentwatch: OTEL_EXPORTER_OTLP_PROTOCOL "thrift": unknown OTLP protocol (want grpc or http/protobuf)` + "\n"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "::bad"}, []string{"annotate", "latest", "--store", dir, "--review", "approved", "--reviewer", "ana"},
			`agentwatch: OTEL_EXPORTER_OTLP_ENDPOINT "::bad": not a URL (want http://host:port or https://host:port)` + "\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			clearOTLPEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.args
			if args[0] == "run" {
				args = append([]string{"run", "--store", t.TempDir()}, args[1:]...)
			}
			f := &fakeRun{}
			code, stdout, stderr := execute(t, f, args...)
			if code != ExitUsage || stderr != tc.want || stdout != "" {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, ExitUsage, tc.want)
			}
			if f.called {
				t.Error("the command was started")
			}
		})
	}
}

// hangingCollector accepts connections and never answers.
func hangingCollector(t *testing.T) string { return privtest.HangingListener(t) }

// TestExportToHangingCollector: `export` against a collector that never
// answers gives up within the bound with one line; the run stays in the
// store marked not exported, and the retry against a working collector
// sends it and clears the mark.
func TestExportToHangingCollector(t *testing.T) {
	clearOTLPEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500") // bounds each request, its retries included
	dir := t.TempDir()
	tr := storedRun(t, dir)
	hang := hangingCollector(t)

	start := time.Now()
	code, _, stderr := execute(t, &fakeRun{}, "export", "latest", "--store", dir, "--otlp-endpoint", "grpc://"+hang)
	took := time.Since(start)
	want := "agentwatch: exporting run " + tr.RunID + ": exporting to " + hang + ": timed out\n"
	if code != ExitFailure || stderr != want {
		t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, ExitFailure, want)
	}
	if took > 3*time.Second {
		t.Errorf("export gave up after %v, want about 0.5 s", took)
	}
	checkExported := func(wantExported bool) {
		t.Helper()
		st, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_, run, err := st.Load(context.Background(), tr.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if run.Exported != wantExported || (run.ExportError == "") != wantExported {
			t.Errorf("store: exported=%v error=%q, want exported=%v", run.Exported, run.ExportError, wantExported)
		}
	}
	checkExported(false)

	addr, sink := startReceiver(t)
	code, _, stderr = execute(t, &fakeRun{}, "export", "latest", "--store", dir, "--otlp-endpoint", "grpc://"+addr)
	if code != 0 || sink.SpanCount() != len(tr.Spans) {
		t.Fatalf("retry: exit %d, %d spans received (want %d): %s", code, sink.SpanCount(), len(tr.Spans), stderr)
	}
	checkExported(true)
}
