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
	// Its own trace, linked to the run's root: a late review neither
	// stretches the run's trace nor turns it red.
	if sp.TraceID == root.TraceID || !sp.TraceID.IsValid() || sp.ParentID.IsValid() || !sp.SpanID.IsValid() || sp.SpanID == root.SpanID {
		t.Errorf("review span ids: trace %s parent %s span %s; root trace %s span %s", sp.TraceID, sp.ParentID, sp.SpanID, root.TraceID, root.SpanID)
	}
	if len(sp.Links) != 1 || sp.Links[0].TraceID != root.TraceID || sp.Links[0].SpanID != root.SpanID || sp.Links[0].Attr(telemetry.LinkRelation) != telemetry.LinkReviews {
		t.Errorf("links %+v, want one to the root", sp.Links)
	}
	if sp.Type() != telemetry.SpanReview || sp.Name != "review rejected" || !sp.Start.Equal(when) || !sp.End.After(sp.Start) || sp.Status == codes.Error {
		t.Errorf("name %q type %q %v..%v status %v", sp.Name, sp.Type(), sp.Start, sp.End, sp.Status)
	}
	withReview := &telemetry.Trace{Spans: append([]telemetry.Span{sp}, tr.Spans...)}
	if withReview.Root().SpanID != root.SpanID || withReview.Reviewed(&withReview.Spans[0]).SpanID != root.SpanID {
		t.Error("a review span listed first is taken for the run's root, or does not find what it reviews")
	}
	wantAttrs(t, &sp, map[attribute.Key]string{
		telemetry.SpanType:          "review",
		telemetry.OpenInferenceKind: "EVALUATOR",
		telemetry.ReviewDecision:    "rejected",
		telemetry.ReviewReviewer:    "ana",
		telemetry.ReviewSeq:         "2",
		telemetry.FailureClass:      "test_failure",
		telemetry.PRURL:             "https://github.com/acme/app/pull/7",
		telemetry.PRSource:          "annotate",
		telemetry.ReviewNote:        "tests fail on CI",
		telemetry.RunID:             "run-7f3a",
	})
	if v, _ := sp.Attr(telemetry.CICDRunURL); strings.Contains(v.AsString(), planted[1]) {
		t.Errorf("token in the CI run URL kept: %s", v.AsString())
	}
	// The same review gives the same span; the next review another.
	if again := ReviewSpan(root, rv); again.SpanID != sp.SpanID || again.TraceID != sp.TraceID {
		t.Error("review span id not stable")
	}
	rv.Seq = 3
	rv.Decision = "approved"
	next := ReviewSpan(root, rv)
	if next.SpanID == sp.SpanID || next.TraceID == sp.TraceID || next.Status == codes.Error {
		t.Errorf("next review: id %s (first %s), status %v", next.SpanID, sp.SpanID, next.Status)
	}
}
