package supervisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/recorder"
	"go.opentelemetry.io/otel/trace"
)

// TestAgentTelemetryEnv: the receiver's variables reach the child whatever
// the allowlist dropped, replace the user's own OTEL settings, carry the
// run's root span as TRACEPARENT, and are reported as set, not dropped.
func TestAgentTelemetryEnv(t *testing.T) {
	tid := trace.TraceID{0xab, 1}
	rec := recorder.New(recorder.RunInfo{RunID: "r", TraceID: tid, Start: time.Now()})
	var got []event.Event
	var mu sync.Mutex
	target := &Target{TraceID: tid, RootSpan: rec.RootSpanID(), Emit: func(ev event.Event) { mu.Lock(); got = append(got, ev); mu.Unlock() }}
	stop, err := agentTelemetrySensor(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	env := []string{"PATH=/bin", "OTEL_EXPORTER_OTLP_ENDPOINT=https://collector.example", "TRACEPARENT=00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01"}
	ev := event.EnvFiltered{Dropped: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "SECRET"}, Set: []string{"HOME"}}
	childEnv, gotEv := target.childEnv(env, ev)
	exposed := target.exposedEndpoints()
	if len(exposed) != 2 {
		t.Fatalf("exposed %v: want the receiver's HTTP and gRPC endpoints", exposed)
	}
	endpoint := "http://" + exposed[0].ap.String()

	want := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":  endpoint,
		"TRACEPARENT":                  agentotel.TraceParent(tid, rec.RootSpanID()),
		"CLAUDE_CODE_ENABLE_TELEMETRY": "1",
		"PATH":                         "/bin",
	}
	for name, v := range want {
		var vals []string
		for _, kv := range childEnv {
			if n, val, _ := strings.Cut(kv, "="); n == name {
				vals = append(vals, val)
			}
		}
		if len(vals) != 1 || vals[0] != v {
			t.Errorf("%s = %q in the child's environment, want exactly [%q]", name, vals, v)
		}
	}
	if strings.Join(gotEv.Dropped, ",") != "SECRET" {
		t.Errorf("dropped %v: the supervisor's own variables are never dropped", gotEv.Dropped)
	}
	for _, n := range []string{"HOME", "TRACEPARENT", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if !strings.Contains(","+strings.Join(gotEv.Set, ",")+",", ","+n+",") {
			t.Errorf("set %v lacks %s", gotEv.Set, n)
		}
	}
}

func TestOutputCapture(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := &outputCapture{limit: 10, until: now.Add(time.Minute), now: func() time.Time { return now }}
	o.Write([]byte("hello "))
	o.Write([]byte("world, and more"))
	now = now.Add(2 * time.Minute)
	o.Write([]byte("after expiry"))
	b, total := o.bytes()
	if string(b) != "hello worl" || total != int64(len("hello world, and more")+len("after expiry")) {
		t.Errorf("kept %q of %d bytes", b, total)
	}
}

func TestPlanCapture(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	fullPolicy := policy.Default()
	fullPolicy.Capture.Content = "full"
	for _, tc := range []struct {
		name   string
		pol    *policy.Policy
		flag   time.Duration
		full   bool
		notice string
	}{
		{"default", policy.Default(), 0, false, ""},
		{"flag", policy.Default(), 30 * time.Minute, true, "FULL content capture until "},
		{"policy alone is not enough", fullPolicy, 0, false, "takes --capture-full DURATION"},
		{"policy and flag", fullPolicy, time.Hour, true, "FULL content capture until "},
	} {
		var stderr bytes.Buffer
		c := planCapture(tc.pol, tc.flag, now, &stderr)
		if c.rec.Full != tc.full || c.llm().Full != tc.full || (c.out != nil) != tc.full {
			t.Errorf("%s: full %v llm %v out %v, want %v", tc.name, c.rec.Full, c.llm().Full, c.out != nil, tc.full)
		}
		if tc.notice == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tc.notice) {
			t.Errorf("%s: notice %q, want %q", tc.name, stderr.String(), tc.notice)
		}
		if tc.full {
			if !c.rec.Until.Equal(now.Add(tc.flag)) || !c.llm().Until.Equal(c.rec.Until) {
				t.Errorf("%s: until %v / %v", tc.name, c.rec.Until, c.llm().Until)
			}
		}
	}
}

// TestRunCapturesRootOutput runs a real command with full capture: its
// output is relayed unchanged and kept, redacted, on the trace.
func TestRunCapturesRootOutputForReal(t *testing.T) {
	privtest.Require(t)
	dir := t.TempDir()
	key := "AKIAZ7QW3RT5YU8IOPLK"
	toolSpan := trace.SpanID{0x70, 0x01, 2, 3, 4, 5, 6, 7}
	toolTP := agentotel.TraceParent(trace.TraceID{0x70, 1}, toolSpan)
	var stdout, stderr bytes.Buffer
	traceFile := filepath.Join(dir, "run.json")
	code, err := Run(t.Context(), Options{
		// The sleep carries a tool-call TRACEPARENT, as a Bash tool's
		// command would: its process span links to that span.
		Argv:        []string{"sh", "-c", "echo line one; echo aws " + key + " >&2; TRACEPARENT=" + toolTP + " sleep 0.3; exit 3"},
		StoreDir:    filepath.Join(dir, "store"),
		TraceFile:   traceFile,
		Stdout:      &stdout,
		Stderr:      &stderr,
		Dir:         dir,
		Env:         []string{"PATH=/usr/bin:/bin"},
		User:        "root",
		CaptureFull: time.Minute,
	})
	if err != nil || code != 3 {
		t.Fatalf("run: code %d, %v\n%s", code, err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "line one") || !strings.Contains(stderr.String(), "aws "+key) {
		t.Errorf("the relay changed: stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "agentwatch: FULL content capture until ") {
		t.Errorf("no notice on stderr: %q", stderr.String())
	}
	b, err := os.ReadFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(key)) {
		t.Errorf("the AWS key reached the trace file")
	}
	for _, want := range []string{"agentwatch.command.output", "line one", `"agentwatch.capture.content"`, `"full"`, "agentwatch.capture.expires",
		"agentwatch.agent.span_id", toolSpan.String()} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("trace file lacks %s", want)
		}
	}
}
