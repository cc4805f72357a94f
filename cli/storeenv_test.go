package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// AGENTWATCH_STORE is the default of every --store; unset, the state
// directory; --store wins over it. The help shows the default without a
// URL's password.
func TestStoreEnv(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	t.Setenv(StoreEnv, "")
	f := &fakeRun{}
	if code, _, stderr := execute(t, f, "run", "--", "true"); code != 0 || f.opts.StoreDir != store.DefaultDir() {
		t.Errorf("unset: store %q (exit %d, %s), want %s", f.opts.StoreDir, code, stderr, store.DefaultDir())
	}
	const url = "postgres://agentwatch:s3cret-pw@db.internal/agentwatch"
	t.Setenv(StoreEnv, url)
	f = &fakeRun{}
	if code, _, stderr := execute(t, f, "run", "--", "true"); code != 0 || f.opts.StoreDir != url {
		t.Errorf("set: store %q (exit %d, %s), want the variable's", f.opts.StoreDir, code, stderr)
	}
	f = &fakeRun{}
	if execute(t, f, "run", "--store", "/s", "--", "true"); f.opts.StoreDir != "/s" {
		t.Errorf("--store over the variable: %q", f.opts.StoreDir)
	}
	for _, cmd := range []string{"run", "runs", "show", "report", "sync", "annotate", "export", "doctor"} {
		_, out, stderr := execute(t, &fakeRun{}, cmd, "--help")
		if strings.Contains(out+stderr, "s3cret") {
			t.Errorf("%s --help shows the password", cmd)
		}
		if !strings.Contains(out, `(default "postgres://agentwatch@db.internal/agentwatch")`) {
			t.Errorf("%s --help does not show the default store:\n%s", cmd, out)
		}
	}
}

// sync's own mistakes: no --to, the store itself.
func TestSyncUsage(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := execute(t, &fakeRun{}, "sync", "--store", dir)
	if code != ExitUsage || !strings.Contains(stderr, "missing --to") {
		t.Errorf("no --to: exit %d, %s", code, stderr)
	}
	code, _, stderr = execute(t, &fakeRun{}, "sync", "--store", dir, "--to", dir+"/")
	if code != ExitUsage || !strings.Contains(stderr, "is the store itself") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("into itself: exit %d, %s", code, stderr)
	}
}

// sync between two directories (no server needed): the summary line,
// nothing copied the second time, a dry run into an empty directory.
func TestSyncDirectories(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()+"/fleet"
	code, _, stderr := execute(t, &fakeRun{}, "sync", "--store", src, "--to", dst, "--dry-run")
	if code != 0 || !strings.Contains(stderr, "(dry run): 0 runs: 0 would be copied") {
		t.Errorf("dry run: exit %d, %s", code, stderr)
	}
	st, err := store.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"20260301-120000-aaaaaa", "20260301-120100-bbbbbb"} {
		tr := &telemetry.Trace{RunID: id, Spans: []telemetry.Span{{TraceID: trace.TraceID{byte(i + 1)}, SpanID: trace.SpanID{1},
			Name: telemetry.SpanAgentRun, Start: t0.Add(time.Duration(i) * time.Minute), End: t0.Add(time.Duration(i)*time.Minute + time.Second),
			Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.RunID.String(id)}}}}
		if err := st.Save(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, want := range []string{": 2 runs: 2 copied, 0 already there\n", ": 2 runs: 0 copied, 2 already there\n"} {
		code, _, stderr = execute(t, &fakeRun{}, "sync", "--store", src, "--to", dst)
		if code != 0 || !strings.HasSuffix(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("sync: exit %d, %q; want it to end %q", code, stderr, want)
		}
	}
	code, out, _ := execute(t, &fakeRun{}, "runs", "--store", dst)
	if code != 0 || !strings.Contains(out, "20260301-120000-aaaaaa") || !strings.Contains(out, "20260301-120100-bbbbbb") {
		t.Errorf("runs of the target:\n%s", out)
	}
}
