package supervisor_test

import (
	"context"
	"github.com/agentwatch/agentwatch/privtest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
)

// TestCollectorHangsDuringRun: a collector that accepts and never answers
// costs the run a bounded wait and one line; the child's status stands and
// the store keeps the run marked not exported.
func TestCollectorHangsDuringRun(t *testing.T) {
	addr := privtest.HangingListener(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
	storeDir := t.TempDir()
	args := append(append([]string{"run", "--store", storeDir, "--otlp-endpoint", "grpc://" + addr}, asSelf()...), "--", "/bin/sh", "-c", "exit 6")
	start := time.Now()
	r := runAgentwatch(t, args...)
	took := time.Since(start)
	if r.code != 6 {
		t.Fatalf("exit %d, want the child's 6; stderr:\n%s", r.code, r.stderr)
	}
	id := runID(t, r.stderr)
	want := "agentwatch: run " + id + ": exporting to " + addr + ": timed out (kept in the store; retry with `agentwatch export " + id + "`)\n"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
	if took > 10*time.Second {
		t.Errorf("the run took %v with a 1 s request timeout", took)
	}
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, run, err := st.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Exported || !strings.Contains(run.ExportError, "timed out") {
		t.Errorf("store says exported=%v error=%q, want a recorded timeout", run.Exported, run.ExportError)
	}
}

// TestBadCollectorSettingStopsRun: OTEL_EXPORTER_OTLP_ENDPOINT=::bad stops
// the run before the command starts, with exit 2 and exactly one line: no
// SDK log, no attempt at a default endpoint.
func TestBadCollectorSettingStopsRun(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "::bad")
	marker := t.TempDir() + "/ran"
	args := append(append([]string{"run", "--store", t.TempDir()}, asSelf()...), "--", "/bin/sh", "-c", "touch "+marker)
	r := runAgentwatch(t, args...)
	want := `agentwatch: OTEL_EXPORTER_OTLP_ENDPOINT "::bad": not a URL (want http://host:port or https://host:port)` + "\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, want)
	}
	if _, err := os.Lstat(marker); err == nil {
		t.Error("the command ran")
	}
}
