package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/spf13/cobra"
)

// Review decisions `agentwatch annotate --review` accepts.
var reviewDecisions = []string{"approved", "rejected"}

// annotateOptions are the flags of `agentwatch annotate`.
type annotateOptions struct {
	run          string
	storeDir     string
	review       string
	reviewer     string
	failureClass string
	pr           string
	ciRun        string
	note         string
	otlpEndpoint string
}

// validate checks the flags before anything is opened: every mistake here
// is a usage error naming the flag.
func (o *annotateOptions) validate() error {
	o.review = strings.ToLower(strings.TrimSpace(o.review))
	o.reviewer = strings.TrimSpace(o.reviewer)
	o.failureClass = strings.TrimSpace(o.failureClass)
	switch {
	case o.review == "":
		return errors.New("annotate: --review is required (approved or rejected)")
	case !slices.Contains(reviewDecisions, o.review):
		return fmt.Errorf("annotate: --review %q: want approved or rejected", o.review)
	case o.reviewer == "":
		return errors.New("annotate: --reviewer is required (who decided)")
	case o.failureClass != "" && !slices.Contains(telemetry.FailureClasses, o.failureClass):
		return fmt.Errorf("annotate: --failure-class %q is not in the taxonomy: %s", o.failureClass, strings.Join(telemetry.FailureClasses, ", "))
	}
	for _, u := range []struct{ flag, value string }{{"--pr", o.pr}, {"--ci-run", o.ciRun}} {
		if u.value == "" {
			continue
		}
		p, err := url.Parse(u.value)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("annotate: %s %q: want an http(s) URL", u.flag, u.value)
		}
	}
	return nil
}

func (a *app) annotateCommand() *cobra.Command {
	var o annotateOptions
	cmd := &cobra.Command{
		Use:   "annotate RUN --review approved|rejected --reviewer NAME [flags]",
		Short: "Record a reviewer's decision about a run (stored, and sent as a review span in the run's trace)",
		Long: `annotate records a reviewer's decision about a finished run: in the run store
(several per run, in order; "agentwatch show RUN" prints them in the audit
trail) and, when a collector is configured (--otlp-endpoint or
OTEL_EXPORTER_OTLP_*), as a "review" span in the run's own trace, under its
agent_run root and linked to it.

If sending fails, the annotation is still stored; "agentwatch export RUN"
sends the run again with all its review spans.`,
		Example: `  agentwatch annotate latest --review rejected --reviewer ana --failure-class test_failure \
      --pr https://github.com/acme/app/pull/7 --note "flaky test still flaky"`,
		Args: cobra.ExactArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			o.run = args[0]
			if err := o.validate(); err != nil {
				return usageError{err}
			}
			// Before anything is stored: a bad collector setting is the
			// caller's to fix, not a review span lost later.
			if cfg := (export.Config{Endpoint: o.otlpEndpoint}); cfg.Enabled() {
				if err := cfg.Validate(); err != nil {
					return configError{err}
				}
			}
			return a.annotate(cmd.Context(), o)
		}),
	}
	storeFlag(cmd, &o.storeDir)
	f := cmd.Flags()
	f.StringVar(&o.review, "review", "", "the decision: approved or rejected")
	f.StringVar(&o.reviewer, "reviewer", "", "who decided (`NAME`)")
	f.StringVar(&o.failureClass, "failure-class", "", "the failure `CLASS` as the reviewer sees it: "+strings.Join(telemetry.FailureClasses, ", "))
	f.StringVar(&o.pr, "pr", "", "the pull request `URL`")
	f.StringVar(&o.ciRun, "ci-run", "", "the CI run `URL`")
	f.StringVar(&o.note, "note", "", "free `TEXT` (redacted like command lines before it is sent)")
	f.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "also send the review span to the collector at `URL`; default: OTEL_EXPORTER_OTLP_* variables")
	return cmd
}

func (a *app) annotate(ctx context.Context, o annotateOptions) error {
	st, err := a.openStore(o.storeDir)
	if err != nil {
		return err
	}
	defer st.Close()
	tr, run, err := st.Load(ctx, o.run)
	if err != nil {
		return fmt.Errorf("loading run %s: %w", o.run, err)
	}
	root := tr.Root()
	if root == nil {
		return fmt.Errorf("annotating run %s: its trace has no root span", run.ID)
	}
	an, err := st.Annotate(ctx, store.Annotation{
		RunID: run.ID, Review: o.review, Reviewer: o.reviewer, FailureClass: o.failureClass,
		PRURL: o.pr, CIRunURL: o.ciRun, Note: o.note,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stderr, "agentwatch: run %s annotated: review %d, %s by %s\n",
		termtext.Escape(run.ID), an.Seq, termtext.Escape(an.Review), termtext.Escape(an.Reviewer))

	cfg := export.Config{Endpoint: o.otlpEndpoint}
	if !cfg.Enabled() {
		return nil
	}
	sp := recorder.ReviewSpan(root, reviewOf(an))
	upErr := export.Upload(ctx, cfg, otlp.Request(&telemetry.Trace{RunID: run.ID, Resource: tr.Resource, Spans: []telemetry.Span{sp}}))
	if err := st.MarkAnnotationExported(ctx, run.ID, an.Seq, upErr); err != nil {
		return err
	}
	if upErr != nil {
		// The decision is kept; a collector being down must not lose it
		// or fail a review script.
		fmt.Fprintf(a.env.Stderr, "agentwatch: the annotation is stored, but sending the review span failed: %s\n"+
			"agentwatch: retry with: agentwatch export %s\n", termtext.Escape(upErr.Error()), termtext.Escape(run.ID))
		return nil
	}
	fmt.Fprintf(a.env.Stderr, "agentwatch: review span %s sent in trace %s\n", sp.SpanID, sp.TraceID)
	return nil
}

func reviewOf(an store.Annotation) recorder.Review {
	return recorder.Review{
		Seq: an.Seq, Time: an.Time, Decision: an.Review, Reviewer: an.Reviewer,
		FailureClass: an.FailureClass, PRURL: an.PRURL, CIRunURL: an.CIRunURL, Note: an.Note,
	}
}

// loadWithReviews loads a run and adds its review spans, so that show and
// export see the run record as annotated.
func loadWithReviews(ctx context.Context, st *store.Store, id string) (*telemetry.Trace, store.Run, []store.Annotation, error) {
	tr, run, err := st.Load(ctx, id)
	if err != nil {
		return nil, store.Run{}, nil, err
	}
	ans, err := st.Annotations(ctx, run.ID)
	if err != nil {
		return nil, store.Run{}, nil, err
	}
	if root := tr.Root(); root != nil {
		for _, an := range ans {
			tr.Spans = append(tr.Spans, recorder.ReviewSpan(root, reviewOf(an)))
		}
	}
	return tr, run, ans, nil
}
