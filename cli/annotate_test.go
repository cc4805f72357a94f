package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// storedRun records a small real run with the recorder and saves it.
func storedRun(t *testing.T, dir string) *telemetry.Trace {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := recorder.New(recorder.RunInfo{RunID: "20260301-120000-abcdef", Argv: []string{"claude", "-p", "fix"},
		Start: t0, RootPID: 10, Workspace: "/w", TaskID: "ENG-42"})
	r.Add(event.Exec{Header: event.Header{Time: t0, PID: 10}, Filename: "/usr/bin/claude", Argv: []string{"claude", "-p", "fix"}, Cwd: "/w"})
	r.Add(event.Exec{Header: event.Header{Time: t0.Add(time.Second), PID: 11}, PPID: 10, Filename: "/usr/bin/go", Argv: []string{"go", "test", "./..."}, Cwd: "/w"})
	r.Add(event.Exit{Header: event.Header{Time: t0.Add(2 * time.Second), PID: 11}, Code: 1})
	tr := r.Finish(recorder.End{Time: t0.Add(3 * time.Second)})
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Save(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestAnnotateFlags(t *testing.T) {
	dir := t.TempDir()
	storedRun(t, dir)
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"annotate", "latest", "--reviewer", "ana"}, ExitUsage, "--review is required"},
		{[]string{"annotate", "latest", "--review", "maybe", "--reviewer", "ana"}, ExitUsage, `--review "maybe": want approved or rejected`},
		{[]string{"annotate", "latest", "--review", "approved"}, ExitUsage, "--reviewer is required"},
		{[]string{"annotate", "latest", "--review", "approved", "--reviewer", "  "}, ExitUsage, "--reviewer is required"},
		{[]string{"annotate", "latest", "--review", "rejected", "--reviewer", "ana", "--failure-class", "bad_luck"}, ExitUsage, `--failure-class "bad_luck" is not in the taxonomy`},
		{[]string{"annotate", "latest", "--review", "rejected", "--reviewer", "ana", "--failure-class", "none"}, ExitUsage, "not in the taxonomy"},
		{[]string{"annotate", "latest", "--review", "approved", "--reviewer", "ana", "--pr", "github.com/acme/app/pull/7"}, ExitUsage, "--pr \"github.com/acme/app/pull/7\": want an http(s) URL"},
		{[]string{"annotate", "latest", "--review", "approved", "--reviewer", "ana", "--ci-run", "ftp://ci/1"}, ExitUsage, "--ci-run"},
		{[]string{"annotate", "--review", "approved", "--reviewer", "ana"}, ExitUsage, "accepts 1 arg"},
		{[]string{"annotate", "no-such-run", "--review", "approved", "--reviewer", "ana", "--store", dir}, ExitFailure, "no such run"},
		{[]string{"annotate", "latest", "--review", "Approved", "--reviewer", "ana", "--store", dir}, ExitOK, "review 1, approved by ana"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			args := tt.args
			if !strings.Contains(strings.Join(args, " "), "--store") {
				args = append(args, "--store", t.TempDir()) // never the user's store
			}
			code, _, stderr := execute(t, &fakeRun{}, args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, want %d; stderr %q, want it to contain %q", code, tt.code, stderr, tt.stderr)
			}
		})
	}
}

// startReceiver runs the OpenTelemetry Collector's OTLP receiver (gRPC) on
// a fresh loopback port, as export/receiver_test.go does.
func startReceiver(t *testing.T) (string, *consumertest.TracesSink) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = addr
	sink := new(consumertest.TracesSink)
	rcv, err := factory.CreateTraces(context.Background(), receivertest.NewNopSettings(component.MustNewType("otlp")), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Shutdown(context.Background()) })
	return addr, sink
}

// TestAnnotateRoundTrip: two annotations stored in order, shown in the
// audit trail and in show --json, one sent to a real OTLP receiver as a
// review span in the run's trace under its root; with the collector down
// the annotation is kept and export sends it later.
func TestAnnotateRoundTrip(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	dir := t.TempDir()
	tr := storedRun(t, dir)
	root := tr.Root()
	addr, sink := startReceiver(t)

	code, _, stderr := execute(t, &fakeRun{}, "annotate", "20260301", "--store", dir, "--otlp-endpoint", "grpc://"+addr,
		"--review", "rejected", "--reviewer", "ana", "--failure-class", "test_failure",
		"--pr", "https://github.com/acme/app/pull/7", "--note", "still flaky")
	if code != 0 {
		t.Fatalf("annotate: exit %d: %s", code, stderr)
	}
	if sink.SpanCount() != 1 {
		t.Fatalf("receiver got %d spans, want 1", sink.SpanCount())
	}
	got := sink.AllTraces()[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	// Its own trace (a late review must not stretch the run's), linked
	// to the run's root.
	if got.Name() != "review rejected" || got.TraceID().String() == root.TraceID.String() || !got.ParentSpanID().IsEmpty() {
		t.Errorf("review span %q trace %s parent %s; want its own trace (not %s), no parent", got.Name(), got.TraceID(), got.ParentSpanID(), root.TraceID)
	}
	if got.Links().Len() != 1 || got.Links().At(0).SpanID().String() != root.SpanID.String() || got.Links().At(0).TraceID().String() != root.TraceID.String() {
		t.Errorf("review span links: %d", got.Links().Len())
	}
	if v, ok := got.Attributes().Get("agentwatch.run.id"); !ok || v.AsString() != "20260301-120000-abcdef" {
		t.Errorf("review span run id %v: a backend finds a run's reviews by it", v.AsString())
	}
	for k, want := range map[string]string{"agentwatch.review.decision": "rejected", "agentwatch.review.reviewer": "ana",
		"agentwatch.failure.class": "test_failure", "openinference.span.kind": "EVALUATOR"} {
		if v, ok := got.Attributes().Get(k); !ok || v.AsString() != want {
			t.Errorf("review span %s = %v, want %s", k, v.AsString(), want)
		}
	}

	// Collector gone: the annotation is still stored, and the way to retry is said.
	dead := startDeadEndpoint(t)
	code, _, stderr = execute(t, &fakeRun{}, "annotate", "latest", "--store", dir, "--otlp-endpoint", "grpc://"+dead,
		"--review", "approved", "--reviewer", "bo", "--ci-run", "https://ci.example/runs/10")
	if code != 0 || !strings.Contains(stderr, "retry with: agentwatch export 20260301-120000-abcdef") {
		t.Fatalf("annotate with the collector down: exit %d, %s", code, stderr)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := st.Annotations(context.Background(), "20260301-120000-abcdef")
	st.Close()
	if err != nil || len(ans) != 2 || !ans[0].Exported || ans[1].Exported || ans[1].ExportError == "" {
		t.Fatalf("stored annotations: %+v, %v", ans, err)
	}

	code, out, stderr := execute(t, &fakeRun{}, "show", "latest", "--store", dir)
	if code != 0 {
		t.Fatalf("show: %d %s", code, stderr)
	}
	for _, want := range []string{"Audit trail", "Task           ENG-42", "Failure        test_failure (last test run failed: go test ./...)",
		"Annotated as   test_failure", "Review 1       rejected by ana", `"still flaky"`, "Review 2       approved by bo",
		"Pull request   https://github.com/acme/app/pull/7", "CI run         https://ci.example/runs/10", "review  "} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = execute(t, &fakeRun{}, "show", "latest", "--json", "--store", dir)
	if code != 0 || !strings.Contains(out, `"annotated_failure_class": "test_failure"`) || !strings.Contains(out, `"reviewer": "bo"`) {
		t.Errorf("show --json lacks the audit:\n%s", out)
	}

	// export sends the run with both review spans and marks them sent.
	before := sink.SpanCount()
	code, _, stderr = execute(t, &fakeRun{}, "export", "latest", "--store", dir, "--otlp-endpoint", "grpc://"+addr)
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	if n := sink.SpanCount() - before; n != len(tr.Spans)+2 {
		t.Errorf("export sent %d spans, want %d (the run and 2 reviews)", n, len(tr.Spans)+2)
	}
	st, _ = store.Open(dir)
	ans, _ = st.Annotations(context.Background(), "20260301-120000-abcdef")
	st.Close()
	if len(ans) != 2 || !ans[1].Exported {
		t.Errorf("after export: %+v", ans)
	}
}

// startDeadEndpoint is a loopback port that refuses connections.
func startDeadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// export --format otlp-json writes the stored run, review spans included,
// as the OTLP/JSON line --trace-file writes, to stdout or a file; it sends
// nothing and leaves the export status alone.
func TestExportOTLPJSON(t *testing.T) {
	clearOTLPEnv(t)
	dir := t.TempDir()
	tr := storedRun(t, dir)
	if code, _, stderr := execute(t, &fakeRun{}, "annotate", "latest", "--store", dir, "--review", "approved", "--reviewer", "ana"); code != 0 {
		t.Fatalf("annotate: %s", stderr)
	}
	code, stdout, stderr := execute(t, &fakeRun{}, "export", "latest", "--store", dir, "--format", "otlp-json")
	if code != 0 {
		t.Fatalf("export to stdout: exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(out, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "again.json")
	if code, _, stderr := execute(t, &fakeRun{}, "export", "latest", "--store", dir, "--format", "otlp-json", "-o", file); code != 0 {
		t.Fatalf("export to a file: exit %d: %s", code, stderr)
	}
	for _, p := range []string{out, file} {
		reqs, err := export.ReadFile(p)
		if err != nil || len(reqs) != 1 {
			t.Fatalf("%s: %d requests, %v", p, len(reqs), err)
		}
		got, err := otlp.FromRequest(reqs[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spans) != len(tr.Spans)+1 || got.Root().SpanID != tr.Root().SpanID {
			t.Errorf("%s: %d spans (want the run's %d and its review), root %s", p, len(got.Spans), len(tr.Spans), got.Root().SpanID)
		}
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := st.List(context.Background(), 1)
	st.Close()
	if err != nil || len(runs) != 1 || runs[0].Exported {
		t.Errorf("export status after writing JSON: %+v, %v", runs, err)
	}
	for _, args := range [][]string{{"--format", "jaeger"}, {"-o", file}} {
		if code, _, _ := execute(t, &fakeRun{}, append([]string{"export", "latest", "--store", dir}, args...)...); code != ExitUsage {
			t.Errorf("export %v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
