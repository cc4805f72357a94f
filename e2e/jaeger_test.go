package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

// TestJaegerShowsRunsReadably exports real runs to a real Jaeger v2
// (bin/jaeger, built by `make bin/jaeger` from tools/jaeger at a pinned
// version), one over OTLP/HTTP and one over OTLP/gRPC, and reads them back
// through Jaeger's query API the way its UI does: the traces are found by
// service, the tree is whole (no orphans), Jaeger's adjusters add no
// warnings (clock skew, negative durations), every child lies inside its
// parent, the rows are named by what they are (invoke_agent, executables,
// file and connection kinds) and a late review neither stretches nor fails
// the run's trace.
func TestJaegerShowsRunsReadably(t *testing.T) {
	privtest.Require(t)
	a := ensureUser(t)
	jaeger := os.Getenv("AGENTWATCH_JAEGER")
	if jaeger == "" {
		jaeger = filepath.Join(repoRoot(t), "bin", "jaeger")
	}
	if _, err := os.Stat(jaeger); err != nil {
		if privtest.Strict() {
			t.Fatalf("Jaeger v2 is not built (%v): run `make bin/jaeger` (make test does)", err)
		}
		t.Skipf("Jaeger v2 is not built (%v): run `make bin/jaeger`", err)
	}
	aw := buildAgentwatch(t)
	ports := freePorts(t, 4)
	query := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.Command(jaeger, "--config", "file:"+filepath.Join(repoRoot(t), "e2e", "testdata", "jaeger.yaml"))
	cmd.Env = append(os.Environ(),
		"JQ_HTTP="+strconv.Itoa(ports[0]), "JQ_GRPC="+strconv.Itoa(ports[1]),
		"J_GRPC="+strconv.Itoa(ports[2]), "J_HTTP="+strconv.Itoa(ports[3]))
	logf, err := os.Create(filepath.Join(t.TempDir(), "jaeger.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting jaeger: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("jaeger log:\n%s", b)
		}
	})
	waitFor(t, 60*time.Second, func() bool {
		resp, err := http.Get(query + "/api/services")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	ws := newWorkspace(t, a)
	store := t.TempDir()
	// Sixty alike children, a file written in the workspace, a git command
	// and a connection refused on loopback: the rows a user must tell apart.
	script := `for i in $(seq 60); do /bin/true; done; echo x > out.txt; git status --short >/dev/null; ` +
		`/usr/bin/python3 -c 'import socket; s=socket.socket(); s.settimeout(1); s.connect_ex(("127.0.0.1", 9))'; true`
	record := func() (runID, traceID string) {
		c := exec.Command(aw, "run", "--user", a.Name, "--store", store, "--", "sh", "-c", script)
		c.Dir = ws
		c.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
		if r := run(t, c, 60*time.Second); r.Err != nil || r.ExitCode != 0 {
			t.Fatalf("agentwatch run: exit %d %v\n%s%s", r.ExitCode, r.Err, r.Stdout, r.Stderr)
		}
		out := run(t, exec.Command(aw, "show", "--store", store, "--json", "latest"), 30*time.Second)
		var doc struct {
			Run struct {
				ID      string `json:"id"`
				TraceID string `json:"trace_id"`
			} `json:"run"`
		}
		if err := json.Unmarshal([]byte(out.Stdout), &doc); err != nil || doc.Run.TraceID == "" {
			t.Fatalf("show --json: %v\n%s", err, out.Stdout)
		}
		return doc.Run.ID, doc.Run.TraceID
	}
	httpRun, httpTrace := record()
	grpcRun, grpcTrace := record()
	// A rejected review minutes later would stretch the run's trace and
	// turn it red if it were a span of it.
	ann := exec.Command(aw, "annotate", "--store", store, httpRun, "--review", "rejected", "--reviewer", "ana")
	if r := run(t, ann, 30*time.Second); r.ExitCode != 0 {
		t.Fatalf("annotate: %s%s", r.Stdout, r.Stderr)
	}
	for _, e := range []struct{ run, protocol, endpoint string }{
		{httpRun, "http/protobuf", "http://127.0.0.1:" + strconv.Itoa(ports[3])},
		{grpcRun, "grpc", "http://127.0.0.1:" + strconv.Itoa(ports[2])},
	} {
		c := exec.Command(aw, "export", "--store", store, "--otlp-endpoint", e.endpoint, e.run)
		c.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_PROTOCOL="+e.protocol)
		if r := run(t, c, 60*time.Second); r.ExitCode != 0 {
			t.Fatalf("export over %s: %s%s", e.protocol, r.Stdout, r.Stderr)
		}
	}

	// The search list, as the UI's first page asks for it.
	var found jaegerResponse
	waitFor(t, 30*time.Second, func() bool {
		found = jaegerGet(t, query+"/api/traces?service=agentwatch&limit=20&lookback=1h")
		return len(found.Data) >= 3 // two runs and the review's own trace
	})
	for _, id := range []string{httpTrace, grpcTrace} {
		tr := jaegerGet(t, query+"/api/traces/"+id)
		if len(tr.Data) != 1 {
			t.Fatalf("trace %s: %d traces in Jaeger", id, len(tr.Data))
		}
		checkJaegerTrace(t, &tr.Data[0])
	}
	// The review is its own trace, one span, linked to the run it reviews.
	var review *jaegerSpan
	for i := range found.Data {
		for j := range found.Data[i].Spans {
			if s := &found.Data[i].Spans[j]; strings.HasPrefix(s.OperationName, "review") {
				review = s
			}
		}
	}
	if review == nil {
		t.Fatalf("no review span in Jaeger's search list")
	}
	if review.TraceID == httpTrace {
		t.Errorf("the review span is inside the run's trace")
	}
	linked := false
	for _, r := range review.References {
		linked = linked || r.TraceID == httpTrace
	}
	if !linked {
		t.Errorf("the review span %q is not linked to the run's trace %s: %+v", review.OperationName, httpTrace, review.References)
	}
}

type jaegerResponse struct {
	Data   []jaegerTrace `json:"data"`
	Errors []any         `json:"errors"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
	Warnings  []string                 `json:"warnings"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64       `json:"startTime"` // µs
	Duration  int64       `json:"duration"`  // µs
	Tags      []jaegerTag `json:"tags"`
	ProcessID string      `json:"processID"`
	Warnings  []string    `json:"warnings"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type jaegerProcess struct {
	ServiceName string      `json:"serviceName"`
	Tags        []jaegerTag `json:"tags"`
}

func (s *jaegerSpan) tag(k string) string {
	for _, t := range s.Tags {
		if t.Key == k {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

func checkJaegerTrace(t *testing.T, tr *jaegerTrace) {
	t.Helper()
	if len(tr.Warnings) > 0 {
		t.Errorf("trace %s: Jaeger warnings %v", tr.TraceID, tr.Warnings)
	}
	byID := map[string]*jaegerSpan{}
	for i := range tr.Spans {
		byID[tr.Spans[i].SpanID] = &tr.Spans[i]
	}
	var root *jaegerSpan
	names := map[string]int{}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		names[s.OperationName]++
		if len(s.Warnings) > 0 {
			t.Errorf("span %q: Jaeger warnings %v", s.OperationName, s.Warnings)
		}
		if s.Duration <= 0 {
			t.Errorf("span %q: duration %d µs", s.OperationName, s.Duration)
		}
		var parent *jaegerSpan
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				parent = byID[r.SpanID]
				if parent == nil {
					t.Errorf("span %q: orphan (parent %s not in the trace)", s.OperationName, r.SpanID)
				}
			}
		}
		if parent == nil {
			if root != nil {
				t.Errorf("two roots: %q and %q", root.OperationName, s.OperationName)
			}
			root = s
			continue
		}
		if s.StartTime < parent.StartTime || s.StartTime+s.Duration > parent.StartTime+parent.Duration {
			t.Errorf("span %q [%d, +%d] is not inside its parent %q [%d, +%d]", s.OperationName, s.StartTime, s.Duration,
				parent.OperationName, parent.StartTime, parent.Duration)
		}
		if s.tag("otel.status_code") == "ERROR" && s.OperationName == root.OperationName {
			t.Errorf("span %q failed", s.OperationName)
		}
	}
	if root == nil {
		t.Fatalf("trace %s has no root", tr.TraceID)
	}
	if root.OperationName != "invoke_agent sh" {
		t.Errorf("root is named %q, want invoke_agent sh", root.OperationName)
	}
	if root.tag("otel.status_code") == "ERROR" {
		t.Errorf("the run's root is ERROR (a rejected review must not fail it)")
	}
	if names["true"] < 60 {
		t.Errorf("%d process rows named true, want 60 (names: %v)", names["true"], names)
	}
	for _, want := range []string{"git status", "python3"} {
		if names[want] == 0 {
			t.Errorf("no row named %q (names: %v)", want, names)
		}
	}
	var fileRow, connRow bool
	for n := range names {
		for _, op := range []string{"create ", "write ", "truncate "} {
			fileRow = fileRow || strings.HasPrefix(n, op+"docs") // out.txt
		}
		connRow = connRow || strings.HasPrefix(n, "connect ")
		for _, typ := range []string{"bash_command", "file_write", "network_call", "agent_run"} {
			if n == typ {
				t.Errorf("a row is named by its type %q, not by what it is", n)
			}
		}
	}
	if !fileRow || !connRow {
		t.Errorf("file row %v, connection row %v (names: %v)", fileRow, connRow, names)
	}
	if n := names["create docs"] + names["truncate docs"]; n != 1 {
		t.Errorf("%d rows for out.txt (names: %v)", n, names)
	}
	// Every row keeps its queryable type, and the resource describes the run.
	for i := range tr.Spans {
		if tr.Spans[i].tag("agentwatch.span.type") == "" {
			t.Errorf("span %q has no agentwatch.span.type", tr.Spans[i].OperationName)
		}
	}
	p := tr.Processes[root.ProcessID]
	tags := map[string]string{}
	for _, tg := range p.Tags {
		tags[tg.Key] = fmt.Sprint(tg.Value)
	}
	if p.ServiceName != "agentwatch" || tags["service.instance.id"] == "" || tags["host.name"] == "" || tags["gen_ai.agent.name"] != "sh" {
		t.Errorf("resource: service %q, tags %v", p.ServiceName, tags)
	}
}

func jaegerGet(t *testing.T, url string) jaegerResponse {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r jaegerResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET %s: %v\n%.500s", url, err, b)
	}
	return r
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
