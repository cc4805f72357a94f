package recorder

import (
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

func TestReviewSpan(t *testing.T) {
	info := runInfo()
	info.Gaps = nil
	tr := record(info, claude(), End{Time: at(100)})
	root := tr.Root()
	when := time.Date(2026, 3, 20, 8, 0, 0, 0, time.UTC)
	rv := Review{Seq: 2, Time: when, Decision: "rejected", Reviewer: "ana", FailureClass: telemetry.FailureTestFailure,
		PRURL: "https://github.com/acme/app/pull/7", CIRunURL: "https://ci.example/runs/9?token=" + planted[1],
		Note: "tests fail on CI"}
	sp := ReviewSpan(root, rv)
	if sp.TraceID != root.TraceID || sp.ParentID != root.SpanID || !sp.SpanID.IsValid() || sp.SpanID == root.SpanID {
		t.Errorf("review span ids: trace %s parent %s span %s; root trace %s span %s", sp.TraceID, sp.ParentID, sp.SpanID, root.TraceID, root.SpanID)
	}
	if len(sp.Links) != 1 || sp.Links[0].TraceID != root.TraceID || sp.Links[0].SpanID != root.SpanID {
		t.Errorf("links %+v, want one to the root", sp.Links)
	}
	if sp.Type() != telemetry.SpanReview || !sp.Start.Equal(when) || sp.Status != codes.Error {
		t.Errorf("name %q start %v status %v", sp.Name, sp.Start, sp.Status)
	}
	wantAttrs(t, &sp, map[attribute.Key]string{
		telemetry.SpanType:          "review",
		telemetry.OpenInferenceKind: "EVALUATOR",
		telemetry.ReviewDecision:    "rejected",
		telemetry.ReviewReviewer:    "ana",
		telemetry.ReviewSeq:         "2",
		telemetry.FailureClass:      "test_failure",
		telemetry.PRURL:             "https://github.com/acme/app/pull/7",
		telemetry.ReviewNote:        "tests fail on CI",
		telemetry.RunID:             "run-7f3a",
	})
	if v, _ := sp.Attr(telemetry.CICDRunURL); strings.Contains(v.AsString(), planted[1]) {
		t.Errorf("token in the CI run URL kept: %s", v.AsString())
	}
	// The same review gives the same span; the next review another.
	if again := ReviewSpan(root, rv); again.SpanID != sp.SpanID {
		t.Error("review span id not stable")
	}
	rv.Seq = 3
	rv.Decision = "approved"
	next := ReviewSpan(root, rv)
	if next.SpanID == sp.SpanID || next.Status == codes.Error {
		t.Errorf("next review: id %s (first %s), status %v", next.SpanID, sp.SpanID, next.Status)
	}
}
