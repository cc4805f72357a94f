package recorder

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
)

// ForgedClaims are what a hostile agent POSTs to its own OTLP endpoint to
// fake an approval and a passing test run: spans typed and named like
// agentwatch's, and an alert-looking log record.
func forgedClaims(rec *Recorder) {
	root := rec.RootSpanID()
	rec.Add(tracesEvent(10,
		otlpSpan(agSID(1), root, agTrace, "review", 5, 6,
			kvStr("agentwatch.span.type", "review"),
			kvStr("agentwatch.review.decision", "approved"),
			kvStr("agentwatch.review.reviewer", "alice"),
			kvInt("agentwatch.review.seq", 1)),
		otlpSpan(agSID(2), root, agTrace, "test_run", 6, 8,
			kvStr("agentwatch.span.type", "test_run"),
			kvStr("process.command_line", "go test ./..."),
			kvInt("process.exit.code", 0),
			kvStr("agentwatch.test.result", "passed")),
		otlpSpan(agSID(3), root, agTrace, "commit", 8, 9,
			kvStr("vcs.ref.head.revision", "cccccccccccccccccccccccccccccccccccccccc")),
		otlpSpan(agSID(4), root, agTrace, "pull_request", 8, 9,
			kvStr("agentwatch.span.type", "pull_request"),
			kvStr("vcs.change.url", "https://github.com/acme/app/pull/1")),
	))
	rec.Add(logsEvent(11, &logspb.LogRecord{
		TimeUnixNano: uint64(at(9).UnixNano()),
		EventName:    telemetry.EventAlert,
		Attributes: []*commonpb.KeyValue{
			kvStr("event.name", telemetry.EventAlert),
			kvStr("agentwatch.alert.rule", "all_clear"),
		},
	}))
}

func TestAgentClaimsAreNotEvidence(t *testing.T) {
	rec := New(agInfo())
	forgedClaims(rec)
	tr := rec.Finish(End{Time: at(60)})

	claims := 0
	for i := range tr.Spans {
		s := &tr.Spans[i]
		typ := agAttr(s, telemetry.SpanType)
		if agAttr(s, telemetry.SpanSource) != telemetry.SourceAgent {
			if s.Type() == telemetry.SpanReview || typ == telemetry.SpanReview || typ == telemetry.SpanTestRun || typ == telemetry.SpanCommit || typ == telemetry.SpanPullRequest {
				t.Errorf("agentwatch span %q (type %s) made from the agent's claim", s.Name, typ)
			}
			for _, e := range s.Events {
				if e.Name == telemetry.EventAlert && agAlerts(s, "all_clear") > 0 {
					t.Errorf("the agent's log record became an alert on %s", s.Name)
				}
			}
			continue
		}
		claims++
		if typ != telemetry.SpanAgent {
			t.Errorf("agent span %q has type %q, want %s", s.Name, typ, telemetry.SpanAgent)
		}
		if !strings.HasPrefix(s.Name, telemetry.AgentClaimPrefix) {
			t.Errorf("agent span named %q: not namespaced", s.Name)
		}
		for _, kv := range s.Attrs {
			k := string(kv.Key)
			if strings.HasPrefix(k, "agentwatch.") && kv.Key != telemetry.SpanType && kv.Key != telemetry.SpanSource && !strings.HasPrefix(k, "agentwatch.agent.") {
				t.Errorf("agent span %q keeps %s=%s in agentwatch's namespace", s.Name, k, kv.Value.Emit())
			}
		}
	}
	if claims != 4 {
		t.Fatalf("%d agent spans kept, want the 4 claims", claims)
	}
	rv := agSpanNamed(tr, telemetry.AgentClaimPrefix+"review")
	if got := agAttr(rv, attribute.Key(telemetry.AgentClaimPrefix+"agentwatch.review.reviewer")); got != "alice" {
		t.Errorf("the claim itself is lost: reviewer %q", got)
	}
	root := tr.Root()
	if _, ok := root.Attr(telemetry.EvalTestsPassed); ok {
		t.Errorf("the agent's test_run set %s on the root", telemetry.EvalTestsPassed)
	}
	ev := root.Events
	for _, e := range ev {
		if e.Name == telemetry.AgentClaimPrefix+telemetry.EventAlert {
			return
		}
	}
	t.Errorf("the agent's alert-named log record is not kept as a claim on the root: %v", ev)
}

// What the operator reads: `show` and `show --json` list no review and no
// pull request of the agent's, and mark its spans as its claims.
func TestAgentClaimsNotInAuditTrail(t *testing.T) {
	rec := New(agInfo())
	forgedClaims(rec)
	tr := rec.Finish(End{Time: at(60)})

	var tree bytes.Buffer
	if err := report.Tree(&tree, tr); err != nil {
		t.Fatal(err)
	}
	out := tree.String()
	if strings.Contains(out, "alice") || strings.Contains(out, "pull/1") || strings.Contains(out, "all_clear") {
		t.Errorf("show reads the agent's claims as evidence:\n%s", out)
	}
	if n := strings.Count(out, "[agent's claim]"); n != 4 {
		t.Errorf("%d spans marked as the agent's claim in show, want 4:\n%s", n, out)
	}
	var js bytes.Buffer
	if err := report.JSON(&js, tr); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Run struct {
			Audit struct {
				Reviews      []json.RawMessage `json:"reviews"`
				PullRequests []string          `json:"pull_requests"`
			} `json:"audit"`
		} `json:"run"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Run.Audit.Reviews) != 0 || len(doc.Run.Audit.PullRequests) != 0 {
		t.Errorf("show --json audit lists the agent's claims: %s", js.String())
	}
}

// The supervisor's own cost reaches the root through End.SelfCost, read
// near the end of Finish: the supervisor never edits the finished trace.
func TestSelfCostThroughEnd(t *testing.T) {
	r := New(agInfo())
	calls := 0
	tr := r.Finish(End{Time: at(10), SelfCost: func() (time.Duration, int64, bool) {
		calls++
		return 1500 * time.Millisecond, 80 << 20, true
	}})
	root := tr.Root()
	if calls != 1 || agAttr(root, telemetry.SupervisorCPUSeconds) != "1.5" || agAttr(root, telemetry.SupervisorMaxRSS) != "83886080" {
		t.Errorf("calls %d, cpu %s, rss %s", calls, agAttr(root, telemetry.SupervisorCPUSeconds), agAttr(root, telemetry.SupervisorMaxRSS))
	}
}

// Add takes values; anything else is a gap, never silently dropped.
func TestAddPointerIsAGap(t *testing.T) {
	r := New(agInfo())
	r.Add(&event.Gap{Sensor: "x"})
	g, _ := r.Finish(End{Time: at(5)}).Root().Attr(telemetry.TelemetryGaps)
	if !strings.Contains(g.Emit(), "unhandled type *event.Gap") {
		t.Errorf("gaps %s", g.Emit())
	}
}
