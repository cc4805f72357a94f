package export_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

var (
	testTraceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	rootID      = trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	bashID      = trace.SpanID{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}
	testID      = trace.SpanID{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18}
	writeID     = trace.SpanID{0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28}
	netID       = trace.SpanID{0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38}
)

// sampleTrace is a small but complete run: a root with every attribute
// type, a bash_command with a test_run child, a file_write, a
// network_call, span events, a link and statuses.
func sampleTrace() *telemetry.Trace {
	t0 := time.Unix(1767225600, 123456789)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	return &telemetry.Trace{
		RunID: "01JABCDEF0123456789XYZ",
		Resource: []attribute.KeyValue{
			telemetry.ServiceName.String("agentwatch"),
			telemetry.ServiceVersion.String("0.1.0-test"),
		},
		Spans: []telemetry.Span{
			{
				TraceID: testTraceID, SpanID: rootID, Name: telemetry.SpanAgentRun, Kind: trace.SpanKindInternal,
				Start: at(0), End: at(5000),
				Attrs: []attribute.KeyValue{
					telemetry.SpanType.String(telemetry.SpanAgentRun),
					telemetry.OpenInferenceKind.String(telemetry.OIAgent),
					telemetry.RunID.String("01JABCDEF0123456789XYZ"),
					telemetry.GenAIAgentName.String("claude"),
					telemetry.ProcessCommandLine.String(`claude -p "fix the flaky test"`),
					telemetry.ProcessExitCode.Int(1),
					telemetry.WorktreeDirtyBefore.Bool(false),
					attribute.Float64("agentwatch.cost.usd", 0.0375),
					telemetry.TelemetryGaps.StringSlice([]string{"ebpf: not root", "netwatch: no cgroup v2"}),
					attribute.BoolSlice("test.bools", []bool{true, false, true}),
					attribute.Int64Slice("test.ints", []int64{-1, 0, 1 << 40}),
					attribute.Float64Slice("test.floats", []float64{0.5, -2.25}),
					telemetry.EventsDropped.Int64(0),
				},
				Events: []telemetry.SpanEvent{{
					Name: telemetry.EventAlert, Time: at(4000),
					Attrs: []attribute.KeyValue{
						telemetry.AlertRule.String("workflow_edit"),
						telemetry.AlertSeverity.String("high"),
					},
				}},
				Status: codes.Error, StatusMessage: "exit code 1",
			},
			{
				TraceID: testTraceID, SpanID: bashID, ParentID: rootID, Name: telemetry.SpanBashCommand, Kind: trace.SpanKindInternal,
				Start: at(100), End: at(4500),
				Attrs: []attribute.KeyValue{
					telemetry.SpanType.String(telemetry.SpanBashCommand),
					telemetry.ProcessPID.Int(4242),
					telemetry.ProcessCommandLine.String(`bash -c "go test ./... && echo <done> & true"`),
					telemetry.ProcessCommandArgs.StringSlice([]string{"bash", "-c", "go test ./... && echo <done> & true"}),
					telemetry.ProcessExitCode.Int(0),
				},
				Links: []telemetry.Link{{
					TraceID: trace.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
					SpanID:  trace.SpanID{0xbb, 1, 2, 3, 4, 5, 6, 7},
					Attrs:   []attribute.KeyValue{attribute.String("link.reason", "TRACEPARENT")},
				}},
			},
			{
				TraceID: testTraceID, SpanID: testID, ParentID: bashID, Name: telemetry.SpanTestRun, Kind: trace.SpanKindInternal,
				Start: at(200), End: at(4400),
				Attrs: []attribute.KeyValue{
					telemetry.SpanType.String(telemetry.SpanTestRun),
					telemetry.ProcessCommandLine.String("go test ./..."),
					telemetry.ProcessExitCode.Int(1),
				},
				Status: codes.Ok,
			},
			{
				TraceID: testTraceID, SpanID: writeID, ParentID: bashID, Name: telemetry.SpanFileWrite, Kind: trace.SpanKindInternal,
				Start: at(300), End: at(300),
				Attrs: []attribute.KeyValue{
					telemetry.FilePath.String("src/main.go"),
					telemetry.FileOperations.StringSlice([]string{"create", "write"}),
					telemetry.FileSize.Int64(1234),
				},
			},
			{
				TraceID: testTraceID, SpanID: netID, ParentID: rootID, Name: telemetry.SpanNetworkCall, Kind: trace.SpanKindClient,
				Start: at(50), End: at(60),
				Attrs: []attribute.KeyValue{
					telemetry.ServerAddress.String("api.anthropic.com"),
					telemetry.ServerPort.Int(443),
				},
			},
		},
	}
}

// normalize makes times comparable with reflect.DeepEqual: the same
// instant, UTC, no monotonic reading.
func normalize(tr *telemetry.Trace) *telemetry.Trace {
	n := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return time.Unix(0, t.UnixNano()).UTC()
	}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		s.Start, s.End = n(s.Start), n(s.End)
		for j := range s.Events {
			s.Events[j].Time = n(s.Events[j].Time)
		}
	}
	return tr
}

func TestRoundTrip(t *testing.T) {
	want := sampleTrace()
	req := otlp.Request(want)

	rs := req.GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 {
		t.Fatalf("want one ResourceSpans with one ScopeSpans, got %v", req)
	}
	scope := rs[0].GetScopeSpans()[0]
	if scope.GetScope().GetName() != otlp.ScopeName || scope.GetScope().GetVersion() != "0.1.0-test" {
		t.Errorf("scope = %v, want name %s version 0.1.0-test", scope.GetScope(), otlp.ScopeName)
	}
	if scope.GetSchemaUrl() != telemetry.SemconvSchemaURL {
		t.Errorf("schema url = %q, want %q", scope.GetSchemaUrl(), telemetry.SemconvSchemaURL)
	}
	if got := scope.GetSpans()[0].GetParentSpanId(); len(got) != 0 {
		t.Errorf("root parent span id = %x, want empty", got)
	}
	if got := scope.GetSpans()[0].GetStatus().GetCode(); got != 2 { // OTLP STATUS_CODE_ERROR
		t.Errorf("root status code = %d, want 2 (OTLP ERROR)", got)
	}
	if got := scope.GetSpans()[4].GetKind(); got != 3 { // OTLP SPAN_KIND_CLIENT
		t.Errorf("network_call kind = %d, want 3 (CLIENT)", got)
	}

	got, err := otlp.FromRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(sampleTrace())) {
		t.Errorf("FromRequest(Request(tr)) differs from tr\n got: %+v\nwant: %+v", got, want)
	}
	if again := otlp.Request(got); !proto.Equal(again, req) {
		t.Errorf("Request(FromRequest(r)) != r")
	}
}

func TestFromRequestRejectsBadIDs(t *testing.T) {
	req := otlp.Request(sampleTrace())
	req.ResourceSpans[0].ScopeSpans[0].Spans[1].SpanId = []byte{1, 2, 3}
	if _, err := otlp.FromRequest(req); err == nil || !strings.Contains(err.Error(), "span id has 3 bytes") {
		t.Errorf("FromRequest with a 3-byte span id: err = %v, want a span id error", err)
	}
}

func TestTraceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.json")
	w, err := export.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := sampleTrace()
	for range 2 {
		if err := w.Write(otlp.Request(tr)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(otlp.Request(tr)); err == nil {
		t.Error("Write after Close succeeded")
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("file has %d lines, want 2 (one request per line)", len(lines))
	}
	// The OTLP JSON encoding: hex ids, integer enums, lowerCamelCase keys,
	// 64-bit integers as strings.
	var doc struct {
		ResourceSpans []struct {
			ScopeSpans []struct {
				Spans []struct {
					TraceID           string `json:"traceId"`
					SpanID            string `json:"spanId"`
					ParentSpanID      string `json:"parentSpanId"`
					Kind              *int   `json:"kind"`
					StartTimeUnixNano string `json:"startTimeUnixNano"`
					Links             []struct {
						TraceID string `json:"traceId"`
						SpanID  string `json:"spanId"`
					} `json:"links"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &doc); err != nil {
		t.Fatalf("line 1 is not JSON: %v", err)
	}
	spans := doc.ResourceSpans[0].ScopeSpans[0].Spans
	if spans[0].TraceID != hex.EncodeToString(testTraceID[:]) {
		t.Errorf("traceId = %q, want hex %x", spans[0].TraceID, testTraceID)
	}
	if spans[1].SpanID != "0102030405060708" || spans[1].ParentSpanID != hex.EncodeToString(rootID[:]) {
		t.Errorf("bash span ids = %q parent %q, want hex", spans[1].SpanID, spans[1].ParentSpanID)
	}
	if spans[0].ParentSpanID != "" {
		t.Errorf("root parentSpanId = %q, want absent", spans[0].ParentSpanID)
	}
	if l := spans[1].Links; len(l) != 1 || l[0].SpanID != "bb01020304050607" {
		t.Errorf("link = %+v, want hex span id bb01020304050607", l)
	}
	if spans[4].Kind == nil || *spans[4].Kind != 3 {
		t.Errorf("kind = %v, want the integer 3", spans[4].Kind)
	}
	if spans[0].StartTimeUnixNano != "1767225600123456789" {
		t.Errorf("startTimeUnixNano = %q", spans[0].StartTimeUnixNano)
	}
	if !strings.Contains(lines[0], `echo <done> & true`) {
		t.Error("command line was HTML-escaped; want it verbatim")
	}

	reqs, err := export.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || !proto.Equal(reqs[1], otlp.Request(tr)) {
		t.Errorf("ReadFile returned %d requests, or they differ from what was written", len(reqs))
	}
}

// TestTraceFileJQ reads the file with jq, as a user would.
func TestTraceFileJQ(t *testing.T) {
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq not installed")
	}
	path := filepath.Join(t.TempDir(), "run.json")
	w, err := export.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(otlp.Request(sampleTrace())); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out, err := exec.Command(jq, "-r",
		`.resourceSpans[].scopeSpans[].spans[] | select(.parentSpanId == "0102030405060708") | .name`, path).Output()
	if err != nil {
		t.Fatalf("jq: %v", err)
	}
	if got := strings.Fields(string(out)); !reflect.DeepEqual(got, []string{"test_run", "file_write"}) {
		t.Errorf("children of bash_command via jq = %q, want [test_run file_write]", got)
	}
}

func TestOpenFileFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plainfile")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing directory": filepath.Join(dir, "no", "such", "run.json"),
		"path is directory": dir,
		"parent is a file":  filepath.Join(notDir, "run.json"),
	} {
		t.Run(name, func(t *testing.T) {
			w, err := export.OpenFile(path)
			if err == nil {
				w.Close()
				t.Fatalf("OpenFile(%s) succeeded", path)
			}
			if !strings.HasPrefix(err.Error(), "opening trace file: ") {
				t.Errorf("error %q lacks the cause prefix", err)
			}
		})
	}
}

func TestReadFileBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	good, err := otlp.MarshalJSON(otlp.Request(sampleTrace()))
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Join([][]byte{good, []byte("{not json"), nil}, []byte("\n"))
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := export.ReadFile(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadFile of a bad second line: err = %v, want one naming line 2", err)
	}
}

// TestInvalidUTF8Survives: a file name that is not UTF-8 must not make the
// store's proto marshal fail and lose the run.
func TestInvalidUTF8Survives(t *testing.T) {
	tr := sampleTrace()
	tr.Spans[1].Attrs = append(tr.Spans[1].Attrs, telemetry.FilePath.String("/ws/caf\xe9.txt"),
		telemetry.ProcessCommandArgs.StringSlice([]string{"touch", "caf\xe9.txt"}))
	b, err := proto.Marshal(otlp.Request(tr))
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if !strings.Contains(string(b), "/ws/caf\ufffd.txt") {
		t.Error("invalid byte not replaced by U+FFFD")
	}
}
