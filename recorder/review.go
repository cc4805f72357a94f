package recorder

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Review is one reviewer decision about a finished run (`agentwatch
// annotate`), the input of ReviewSpan.
type Review struct {
	Seq          int // 1 for the run's first review
	Time         time.Time
	Decision     string // approved, rejected
	Reviewer     string
	FailureClass string // annotated; empty: none given
	PRURL        string
	CIRunURL     string
	Note         string
}

// ReviewSpan is a run's late `review` span, the root of its own trace
// with a link to the run's agent_run span (relation "reviews"): a review
// minutes or days later must not stretch the run's trace, nor turn it
// red (a rejection is the reviewer's decision, not a failure of the run).
// It carries agentwatch.run.id, so a backend finds the reviews of a run
// by it. Its trace and span ids are derived from the run's trace id and
// Seq, so sending it again (`agentwatch export`) gives the same span, not
// a new one. The note and URLs pass through the same redaction as command
// lines: a reviewer pasting a token-bearing URL must not export it.
func ReviewSpan(root *telemetry.Span, rv Review) telemetry.Span {
	var buf [16 + 8 + 6]byte
	copy(buf[:16], root.TraceID[:])
	binary.BigEndian.PutUint64(buf[16:24], uint64(rv.Seq))
	copy(buf[24:], "review")
	sum := sha256.Sum256(buf[:])
	var id trace.SpanID
	copy(id[:], sum[:8])
	if !id.IsValid() {
		id[7] = 1
	}
	var tid trace.TraceID
	copy(tid[:], sum[8:24])
	if !tid.IsValid() {
		tid[15] = 1
	}
	sp := telemetry.Span{
		TraceID: tid,
		SpanID:  id,
		Name:    "review " + nameText(rv.Decision),
		Kind:    trace.SpanKindInternal,
		Start:   rv.Time,
		End:     rv.Time.Add(minSpan),
		Attrs: []attribute.KeyValue{
			telemetry.SpanType.String(telemetry.SpanReview),
			telemetry.OpenInferenceKind.String(telemetry.OIEvaluator),
			telemetry.ReviewDecision.String(rv.Decision),
			telemetry.ReviewReviewer.String(RedactString(rv.Reviewer)),
			telemetry.ReviewSeq.Int(rv.Seq),
		},
		Links: []telemetry.Link{{TraceID: root.TraceID, SpanID: root.SpanID,
			Attrs: []attribute.KeyValue{telemetry.LinkRelation.String(telemetry.LinkReviews)}}},
	}
	if v, ok := root.Attr(telemetry.RunID); ok {
		sp.Attrs = append(sp.Attrs, telemetry.RunID.String(v.AsString()))
	}
	sp.Attrs = appendNonEmpty(sp.Attrs, telemetry.FailureClass, rv.FailureClass)
	if rv.PRURL != "" {
		// The reviewer's word: on the review span, never the run's root
		// (whose pull request is what the CI job or the output showed).
		sp.Attrs = append(sp.Attrs, telemetry.PRURL.String(RedactString(rv.PRURL)), telemetry.PRSource.String(telemetry.PRSourceAnnotate))
	}
	sp.Attrs = appendNonEmpty(sp.Attrs, telemetry.CICDRunURL, RedactString(rv.CIRunURL))
	sp.Attrs = appendNonEmpty(sp.Attrs, telemetry.ReviewNote, RedactString(rv.Note))
	return sp
}
