package report_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func auditRun() *telemetry.Trace {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	rootID := trace.SpanID{0, 0, 0, 0, 0, 0, 0, 1}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	span := func(id byte, parent trace.SpanID, name string, at time.Time, attrs ...attribute.KeyValue) telemetry.Span {
		return telemetry.Span{TraceID: tid, SpanID: trace.SpanID{0, 0, 0, 0, 0, 0, 0, id}, ParentID: parent, Name: name,
			Start: at, End: at, Attrs: append([]attribute.KeyValue{telemetry.SpanType.String(name)}, attrs...)}
	}
	review := func(id byte, seq int, decision, who, class, note string, at time.Time, extra ...attribute.KeyValue) telemetry.Span {
		a := []attribute.KeyValue{telemetry.ReviewDecision.String(decision), telemetry.ReviewReviewer.String(who), telemetry.ReviewSeq.Int(seq)}
		if class != "" {
			a = append(a, telemetry.FailureClass.String(class))
		}
		if note != "" {
			a = append(a, telemetry.ReviewNote.String(note))
		}
		return span(id, rootID, telemetry.SpanReview, at, append(a, extra...)...)
	}
	return &telemetry.Trace{RunID: "r-audit", Spans: []telemetry.Span{
		span(1, trace.SpanID{}, telemetry.SpanAgentRun, t0,
			telemetry.ProcessCommandLine.String("claude -p fix"),
			telemetry.TaskID.String("ENG-42"), telemetry.TaskURL.String("https://tracker.example/ENG-42"),
			telemetry.VCSRefHeadRevision.String("0123456789abcdef0123456789abcdef01234567"),
			telemetry.Commits.StringSlice([]string{"cccccccccccccccccccccccccccccccccccccccc"}),
			telemetry.CICDPipelineRunID.String("9876"),
			telemetry.FailureClass.String("test_failure"), telemetry.FailureReason.String("last test run failed: go test ./..."),
			telemetry.EvalTestsPassed.Bool(false), telemetry.EvalDiffRisk.Int(35), telemetry.EvalSecurityScan.String("clean"),
			telemetry.PolicyVersion.String("v1-abc"), telemetry.PolicyMode.String("enforce"), telemetry.PolicySource.String(".agentwatch.yaml"),
			telemetry.CaptureContent.String("metadata")),
		span(2, rootID, telemetry.SpanPullRequest, t0.Add(time.Second), telemetry.PRURL.String("https://github.com/acme/app/pull/7")),
		// out of order on purpose: the audit lists reviews by seq
		review(4, 2, "approved", "bo", "", "", t0.Add(48*time.Hour), telemetry.CICDRunURL.String("https://ci.example/runs/10")),
		review(3, 1, "rejected", "ana", "model_reasoning", "wrong fix", t0.Add(24*time.Hour),
			telemetry.PRURL.String("https://github.com/acme/app/pull/7")),
	}}
}

func TestAuditTrail(t *testing.T) {
	var buf bytes.Buffer
	if err := report.Tree(&buf, auditRun()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"\nAudit trail\n",
		"  Task           ENG-42 https://tracker.example/ENG-42\n",
		"  Base commit    0123456789abcdef0123456789abcdef01234567\n",
		"  Commits        cccccccccccccccccccccccccccccccccccccccc\n",
		"  Pull request   https://github.com/acme/app/pull/7\n",
		"  CI run         9876, https://ci.example/runs/10\n",
		"  Failure        test_failure (last test run failed: go test ./...)\n",
		"  Annotated as   model_reasoning\n",
		"  Evals          tests passed: no; diff risk: 35/100; security scan: clean\n",
		"  Policy         enforce, version v1-abc (.agentwatch.yaml)\n",
		"  Capture        metadata\n",
		"  Review 1       rejected by ana at 2026-03-02T12:00:00Z, failure class model_reasoning: \"wrong fix\"\n",
		"  Review 2       approved by bo at 2026-03-03T12:00:00Z\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Review 1") > strings.Index(out, "Review 2") {
		t.Error("reviews not in seq order")
	}
	if strings.Count(out, "4bf92f3577b34da6a3ce929d0e0e4736") != 1 {
		t.Errorf("the trace id is printed %d times, want once (the header):\n%s", strings.Count(out, "4bf92f3577b34da6a3ce929d0e0e4736"), out)
	}

	buf.Reset()
	if err := report.JSON(&buf, auditRun()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Run struct {
			Audit report.JSONAudit `json:"audit"`
		} `json:"run"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	a := doc.Run.Audit
	if a.TaskID != "ENG-42" || a.FailureClass != "test_failure" || a.Annotated != "model_reasoning" ||
		len(a.Reviews) != 2 || a.Reviews[0].Reviewer != "ana" || a.Reviews[1].Decision != "approved" ||
		len(a.PullRequests) != 1 || a.DiffRisk == nil || *a.DiffRisk != 35 || a.TestsPassed == nil || *a.TestsPassed ||
		a.PolicyMode != "enforce" || a.CIRun != "9876" || len(a.CIRunURLs) != 1 {
		t.Errorf("audit JSON: %+v", a)
	}
}
