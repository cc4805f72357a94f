package recorder

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxEvidenceList bounds each path list on the root span; the workspace
// keeps longer lists and the diff artifact names every file.
const maxEvidenceList = 200

// finishEvidence turns End.Evidence into the git_diff span and the root's
// workspace attributes.
//
// The trace carries the diff's sha256 and size, never its content, unless
// the policy's capture tier is full — then the redacted diff, cut at
// capture.output_bytes. The full diff is the store's artifact "diff".
func (r *Recorder) finishEvidence(t *telemetry.Trace, end End) {
	ev := end.Evidence
	if ev == nil || len(t.Spans) == 0 {
		return
	}
	root := &t.Spans[0]
	if ev.Absent != "" {
		root.SetAttr(telemetry.EvidenceAbsent.String(ev.Absent))
		return
	}
	capped := false
	list := func(k attribute.Key, paths []string) {
		if len(paths) > maxEvidenceList {
			paths, capped = paths[:maxEvidenceList], true
		}
		root.SetAttr(k.StringSlice(nonNilStrings(paths)))
	}
	// Always present, even empty: an empty list is the evidence that
	// nothing of the kind changed.
	list(telemetry.FilesTouched, ev.Touched)
	list(telemetry.FilesDeleted, ev.Deleted)
	list(telemetry.LockfilesChanged, ev.Lockfiles)
	list(telemetry.WorkflowsChanged, ev.Workflows)
	root.SetAttr(telemetry.FilesGenerated.Int(len(ev.Generated)))
	list(telemetry.Commits, shas(ev.Commits))
	if len(ev.Abandoned) > 0 {
		list(telemetry.CommitsAbandoned, shas(ev.Abandoned))
	}
	if len(ev.TooLarge) > 0 {
		list(telemetry.FilesTooLarge, ev.TooLarge)
	}
	if un, ok := r.unattributed(ev); ok {
		list(telemetry.FilesUnattributed, un)
		if len(un) > 0 {
			r.raise(root.SpanID, end.Time, telemetry.AlertUnattributed, telemetry.SeverityMedium, "",
				unattributedMessage(un))
		}
	}
	if capped {
		root.SetAttr(telemetry.EvidenceListCapped.Bool(true))
	}
	if ev.State != "" {
		root.SetAttr(telemetry.WorktreeState.String(ev.State))
	}
	if len(ev.Errors) > 0 {
		root.SetAttr(telemetry.EvidenceErrors.StringSlice(ev.Errors))
	}
	if _, ok := root.Attr(telemetry.HeadAfter); !ok && ev.Head != "" {
		root.SetAttr(telemetry.HeadAfter.String(ev.Head))
	}

	start, stop := ev.Start, ev.End
	if start.IsZero() || stop.IsZero() {
		start, stop = end.Time, end.Time
	}
	id, _ := r.nextSpanID()
	sp := r.span(id, root.SpanID, telemetry.SpanGitDiff, telemetry.SpanGitDiff, telemetry.OIEvaluator, // agentwatch's evidence on the run's result
		trace.SpanKindInternal, start, stop)
	if ev.DiffSHA256 == "" {
		// The diff itself failed (a timeout): the span says so rather
		// than claim an empty diff.
		sp.Status, sp.StatusMessage = codes.Error, "workspace diff not taken"
		sp.Attrs = append(sp.Attrs, telemetry.EvidenceErrors.StringSlice(ev.Errors))
	} else {
		sp.Attrs = append(sp.Attrs,
			telemetry.DiffSHA256.String(ev.DiffSHA256),
			telemetry.DiffBytes.Int(len(ev.Diff)),
			telemetry.DiffFiles.Int(ev.FilesTotal),
			telemetry.DiffLinesAdded.Int(ev.LinesAdded),
			telemetry.DiffLinesRemoved.Int(ev.LinesRemoved),
			telemetry.DiffTruncated.Bool(ev.DiffTruncated),
		)
		if r.pol.Capture.Content == "full" {
			sp.Attrs = append(sp.Attrs, telemetry.DiffContent.String(RedactString(cutUTF8(ev.Diff, r.pol.Capture.OutputBytes))))
		}
	}
	sp.Attrs = appendNonEmpty(sp.Attrs, telemetry.DiffBase, ev.Base)
	sp.Attrs = appendNonEmpty(sp.Attrs, telemetry.HeadAfter, ev.Head)
	t.Spans = append(t.Spans, sp)
}

// unattributed returns the paths the evidence shows touched that no file
// sensor reported: changed by a process outside the run (a daemon the
// agent asked, a second terminal), or by an operation the sensors do not
// see. ok is false when that cannot be judged: the evidence is of another
// directory than the workspace the sensors filtered on, or the run's file
// list overflowed (a path past it may have been seen).
func (r *Recorder) unattributed(ev *workspace.Evidence) (paths []string, ok bool) {
	if r.ws == "" || cleanPath(ev.Root) != r.ws || r.unlisted > 0 {
		return nil, false
	}
	for _, p := range ev.Touched {
		if _, seen := r.paths[path.Join(r.ws, p)]; !seen {
			paths = append(paths, p)
		}
	}
	return paths, true
}

// maxNamedInMessage bounds the paths an alert message names.
const maxNamedInMessage = 5

func unattributedMessage(paths []string) string {
	named := paths
	if len(named) > maxNamedInMessage {
		named = named[:maxNamedInMessage]
	}
	msg := fmt.Sprintf("%d workspace change(s) no sensor saw (made outside the run, or by an operation the sensors miss): %s",
		len(paths), strings.Join(named, ", "))
	if len(paths) > len(named) {
		msg += fmt.Sprintf(", and %d more", len(paths)-len(named))
	}
	return msg
}

func shas(cs []workspace.Commit) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.SHA
	}
	return out
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// cutUTF8 keeps at most n bytes of b (n <= 0: all), not splitting a rune.
func cutUTF8(b []byte, n int) string {
	if n <= 0 || len(b) <= n {
		return string(b)
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n])
}
