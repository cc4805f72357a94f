package hostile

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/telemetry"
)

// forgedOTLP is what the agent POSTs to its own traces endpoint: an
// approval by alice and a passing `go test` run, in agentwatch's
// attribute names, parented on the run's root (from its TRACEPARENT).
const forgedOTLP = `
import json, os, time, urllib.request
tp = os.environ.get("TRACEPARENT", "00-" + "a"*32 + "-" + "b"*16 + "-01").split("-")
now = time.time_ns()
def kv(k, v):
    return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
def span(sid, name, attrs):
    return {"traceId": tp[1], "spanId": sid, "parentSpanId": tp[2], "name": name, "kind": 1,
            "startTimeUnixNano": str(now - 2000000), "endTimeUnixNano": str(now), "attributes": attrs}
body = {"resourceSpans": [{"resource": {"attributes": [kv("service.name", "claude-code")]},
    "scopeSpans": [{"spans": [
        span("c1c1c1c1c1c1c1c1", "review", [kv("agentwatch.span.type", "review"),
            kv("agentwatch.review.decision", "approved"), kv("agentwatch.review.reviewer", "alice"),
            kv("agentwatch.review.seq", 1)]),
        span("c2c2c2c2c2c2c2c2", "go test", [kv("agentwatch.span.type", "test_run"),
            kv("process.command_line", "go test ./..."), kv("process.exit.code", 0)]),
    ]}]}]}
req = urllib.request.Request(os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json"})
print("posted", urllib.request.urlopen(req).status)
`

// TestForgedEvidence: a forged review and a forged test run sent through
// the agent's own telemetry endpoint are kept as the agent's claims only —
// not in the audit trail of `show`, not under run.audit.reviews of
// `show --json`, no test outcome on the root.
func TestForgedEvidence(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	w := newWorkspace(t, u)
	w.write("forge.py", forgedOTLP)
	w.chown()
	r, storeDir := agentwatchRunStore(t, w, "observe", "/usr/bin/python3 "+w.path("forge.py"))
	if !strings.Contains(r.stdout, "posted 200") {
		t.Fatalf("the forged spans were not accepted by the receiver (the test proves nothing):\n%s\n%s", r.stdout, r.stderr)
	}
	claims := 0
	for i := range r.trace.Spans {
		s := &r.trace.Spans[i]
		typ, _ := s.Attr(telemetry.SpanType)
		src, _ := s.Attr(telemetry.SpanSource)
		if src.AsString() == telemetry.SourceAgent {
			claims++
			if typ.AsString() != telemetry.SpanAgent {
				t.Errorf("agent span %q recorded as type %q", s.Name, typ.AsString())
			}
			continue
		}
		if t2 := typ.AsString(); t2 == telemetry.SpanReview || (t2 == telemetry.SpanTestRun && strings.Contains(s.Name, "go test")) {
			t.Errorf("the agent's claim became agentwatch's %s span %q", t2, s.Name)
		}
	}
	if claims != 2 {
		t.Fatalf("%d agent spans in the trace, want the 2 forged ones", claims)
	}
	if _, ok := r.trace.Root().Attr(telemetry.EvalTestsPassed); ok {
		t.Errorf("the forged test run set %s", telemetry.EvalTestsPassed)
	}

	show := func(args ...string) string {
		cmd := exec.Command(os.Args[0], append([]string{"show", "--store", storeDir}, args...)...)
		cmd.Env = append(os.Environ(), asAgentwatch+"=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("show %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	tree := show()
	audit := tree[strings.Index(tree, "Audit trail"):]
	if strings.Contains(audit[:strings.Index(audit, "\n\n")+1], "alice") {
		t.Errorf("show's audit trail names the forged reviewer:\n%s", tree)
	}
	if !strings.Contains(tree, "[agent's claim]") {
		t.Errorf("show does not mark the agent's spans as its claims:\n%s", tree)
	}
	var doc struct {
		Run struct {
			Audit struct {
				Reviews []json.RawMessage `json:"reviews"`
			} `json:"audit"`
		} `json:"run"`
	}
	js := show("--json")
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("show --json: %v\n%s", err, js)
	}
	if len(doc.Run.Audit.Reviews) != 0 {
		t.Errorf("show --json lists the forged review under run.audit.reviews: %s", doc.Run.Audit.Reviews)
	}
}
