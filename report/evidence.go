package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/agentwatch/agentwatch/telemetry"
)

// listShown is how many paths an Evidence line names before "… and N more".
const listShown = 8

// JSONEvidence is the "evidence" object of `show --json`: what the run did
// to the repository, from the root's workspace attributes and the git_diff
// span. Absent (with the reason) outside git. Field names are part of the
// CLI's interface; add, never rename.
type JSONEvidence struct {
	Absent      string    `json:"absent,omitempty"`
	Base        string    `json:"base,omitempty"` // empty for an unborn branch
	Head        string    `json:"head,omitempty"`
	State       string    `json:"state,omitempty"` // merging, rebasing, … at the end
	DirtyBefore *bool     `json:"dirty_before,omitempty"`
	DirtyAfter  *bool     `json:"dirty_after,omitempty"`
	Diff        *JSONDiff `json:"diff,omitempty"`
	Touched     []string  `json:"touched"`
	Deleted     []string  `json:"deleted"`
	Lockfiles   []string  `json:"lockfiles"`
	Workflows   []string  `json:"workflows"`
	Generated   int64     `json:"generated"`
	Commits     []string  `json:"commits"`
	Abandoned   []string  `json:"abandoned,omitempty"`
	TooLarge    []string  `json:"too_large,omitempty"`
	ListsCapped bool      `json:"lists_capped,omitempty"`
	Errors      []string  `json:"errors,omitempty"`
}

// JSONDiff is the final diff's summary; the content is the store artifact
// named Artifact.
type JSONDiff struct {
	SHA256       string `json:"sha256,omitempty"`
	Bytes        int64  `json:"bytes"`
	Files        int64  `json:"files"`
	LinesAdded   int64  `json:"lines_added"`
	LinesRemoved int64  `json:"lines_removed"`
	Truncated    bool   `json:"truncated"`
	Artifact     string `json:"artifact"`
	Error        string `json:"error,omitempty"` // the diff was not taken
}

// evidenceOf reads the evidence from tr, nil when the run has none (a run
// recorded before workspace evidence existed, or one that ended before it
// was taken).
func evidenceOf(tr *telemetry.Trace) *JSONEvidence {
	root := tr.Root()
	if root == nil {
		return nil
	}
	if a := str(root, telemetry.EvidenceAbsent); a != "" {
		return &JSONEvidence{Absent: a}
	}
	if _, ok := root.Attr(telemetry.FilesTouched); !ok {
		return nil
	}
	ev := &JSONEvidence{
		Base:      str(root, telemetry.VCSRefHeadRevision),
		Head:      str(root, telemetry.HeadAfter),
		State:     str(root, telemetry.WorktreeState),
		Touched:   nonNilList(strs(root, telemetry.FilesTouched)),
		Deleted:   nonNilList(strs(root, telemetry.FilesDeleted)),
		Lockfiles: nonNilList(strs(root, telemetry.LockfilesChanged)),
		Workflows: nonNilList(strs(root, telemetry.WorkflowsChanged)),
		Commits:   nonNilList(strs(root, telemetry.Commits)),
		Abandoned: strs(root, telemetry.CommitsAbandoned),
		TooLarge:  strs(root, telemetry.FilesTooLarge),
		Errors:    strs(root, telemetry.EvidenceErrors),
	}
	if v, ok := root.Attr(telemetry.FilesGenerated); ok {
		ev.Generated = v.AsInt64()
	}
	if v, ok := root.Attr(telemetry.EvidenceListCapped); ok {
		ev.ListsCapped = v.AsBool()
	}
	if v, ok := root.Attr(telemetry.WorktreeDirtyBefore); ok {
		b := v.AsBool()
		ev.DirtyBefore = &b
	}
	if v, ok := root.Attr(telemetry.WorktreeDirtyAfter); ok {
		b := v.AsBool()
		ev.DirtyAfter = &b
	}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Type() != telemetry.SpanGitDiff || s.ParentID != root.SpanID {
			continue
		}
		d := &JSONDiff{SHA256: str(s, telemetry.DiffSHA256), Artifact: "diff"}
		if v, ok := s.Attr(telemetry.DiffBytes); ok {
			d.Bytes = v.AsInt64()
		}
		if v, ok := s.Attr(telemetry.DiffFiles); ok {
			d.Files = v.AsInt64()
		}
		if v, ok := s.Attr(telemetry.DiffLinesAdded); ok {
			d.LinesAdded = v.AsInt64()
		}
		if v, ok := s.Attr(telemetry.DiffLinesRemoved); ok {
			d.LinesRemoved = v.AsInt64()
		}
		if v, ok := s.Attr(telemetry.DiffTruncated); ok {
			d.Truncated = v.AsBool()
		}
		if d.SHA256 == "" {
			d.Error, d.Artifact = "not taken: "+strings.Join(strs(s, telemetry.EvidenceErrors), "; "), ""
		}
		ev.Diff = d
		break
	}
	return ev
}

// writeEvidence prints the Evidence block of `show`: nothing for a run
// without evidence, one line when it is absent.
func writeEvidence(w *errWriter, tr *telemetry.Trace) {
	ev := evidenceOf(tr)
	if ev == nil {
		return
	}
	if ev.Absent != "" {
		w.printf("%-10s absent: %s\n", "Evidence", ev.Absent)
		return
	}
	w.printf("\nEvidence\n")
	row := func(label, value string) {
		if value != "" {
			w.printf("  %-11s %s\n", label, value)
		}
	}
	base := short(ev.Base)
	if base == "" {
		base = "(unborn)"
	}
	head := short(ev.Head)
	if head == "" {
		head = "(unborn)"
	}
	moved := base + " → " + head
	if ev.Base == ev.Head {
		moved = base + " (HEAD unchanged)"
	}
	if ev.DirtyAfter != nil && *ev.DirtyAfter {
		moved += ", uncommitted changes at the end"
	}
	row("base→head", moved)
	row("state", ev.State)
	if d := ev.Diff; d != nil {
		if d.Error != "" {
			row("diff", d.Error)
		} else {
			text := fmt.Sprintf("%s, +%d −%d, %s, sha256 %s", plural(d.Files, "file", "files"), d.LinesAdded, d.LinesRemoved, byteSize(d.Bytes), short(d.SHA256))
			if d.Truncated {
				text += " (truncated)"
			}
			row("diff", text+" — stored as artifact \""+d.Artifact+"\"")
		}
	}
	row("touched", pathList(ev.Touched, ev.ListsCapped))
	row("deleted", pathList(ev.Deleted, ev.ListsCapped))
	row("lockfiles", pathList(ev.Lockfiles, ev.ListsCapped))
	row("workflows", pathList(ev.Workflows, ev.ListsCapped))
	if ev.Generated > 0 {
		row("generated", strconv.FormatInt(ev.Generated, 10))
	}
	row("commits", shaList(ev.Commits))
	row("abandoned", shaList(ev.Abandoned))
	row("too large", pathList(ev.TooLarge, false))
	row("errors", strings.Join(ev.Errors, "; "))
}

// gitDiffLabel is the git_diff span's line in the tree.
func gitDiffLabel(s *telemetry.Span) string {
	if str(s, telemetry.DiffSHA256) == "" {
		return "not taken"
	}
	var files int64
	if v, ok := s.Attr(telemetry.DiffFiles); ok {
		files = v.AsInt64()
	}
	text := fmt.Sprintf("%s +%s −%s, %s", plural(files, "file", "files"), str(s, telemetry.DiffLinesAdded),
		str(s, telemetry.DiffLinesRemoved), str(s, telemetry.DiffBytes)+" bytes")
	if v, ok := s.Attr(telemetry.DiffTruncated); ok && v.AsBool() {
		text += " (truncated)"
	}
	return text
}

func pathList(paths []string, capped bool) string {
	if len(paths) == 0 {
		return ""
	}
	n := strconv.Itoa(len(paths))
	if capped {
		n += "+"
	}
	shown := paths
	if len(shown) > listShown {
		shown = shown[:listShown]
	}
	quoted := make([]string, len(shown))
	for i, p := range shown {
		// A name with a space, a comma or a quote is quoted, its quotes
		// doubled, so one name cannot pass for two or split the list;
		// controls are escaped where the line is printed (errWriter).
		quoted[i] = p
		if strings.ContainsAny(p, ` ,"`) {
			quoted[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
		}
	}
	text := "(" + n + ") " + strings.Join(quoted, ", ")
	if more := len(paths) - len(shown); more > 0 {
		text += fmt.Sprintf(", … and %d more", more)
	}
	return text
}

func shaList(shas []string) string {
	out := make([]string, len(shas))
	for i, s := range shas {
		out[i] = short(s)
	}
	return strings.Join(out, ", ")
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

func nonNilList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
