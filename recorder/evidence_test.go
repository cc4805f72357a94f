package recorder

import (
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const diffWithToken = "diff --git a/cfg.env b/cfg.env\n+TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345\n"

func fixtureEvidence() *workspace.Evidence {
	return &workspace.Evidence{
		Start: at(97), End: at(99), Root: ws,
		Base: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Head: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		State:         workspace.StateMerging,
		Diff:          []byte(diffWithToken),
		DiffSHA256:    "5f0c",
		DiffTruncated: true,
		FilesTotal:    4, LinesAdded: 10, LinesRemoved: 3,
		Touched:   []string{".github/workflows/ci.yml", "go.sum", "main.go", "old.go"},
		Deleted:   []string{"old.go"},
		Generated: []string{"dist/", "build/app"},
		Lockfiles: []string{"go.sum"},
		Workflows: []string{".github/workflows/ci.yml"},
		Commits:   []workspace.Commit{{SHA: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Subject: "fix"}, {SHA: "cccccccccccccccccccccccccccccccccccccccc"}},
		Abandoned: []workspace.Commit{{SHA: "dddddddddddddddddddddddddddddddddddddddd"}},
	}
}

func gitDiffSpan(t *testing.T, tr *telemetry.Trace) *telemetry.Span {
	t.Helper()
	var found *telemetry.Span
	for i := range tr.Spans {
		if tr.Spans[i].Type() == telemetry.SpanGitDiff {
			if found != nil {
				t.Fatal("two git_diff spans")
			}
			found = &tr.Spans[i]
		}
	}
	return found
}

func TestEvidenceSpanAndRoot(t *testing.T) {
	end := fixtureEnd()
	end.Evidence = fixtureEvidence()
	tr := record(runInfo(), fixture(), end)
	root := tr.Root()
	wantAttrs(t, root, map[attribute.Key]string{
		telemetry.FilesTouched:        `[".github/workflows/ci.yml","go.sum","main.go","old.go"]`,
		telemetry.FilesDeleted:        `["old.go"]`,
		telemetry.FilesGenerated:      "2",
		telemetry.LockfilesChanged:    `["go.sum"]`,
		telemetry.WorkflowsChanged:    `[".github/workflows/ci.yml"]`,
		telemetry.Commits:             `["bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","cccccccccccccccccccccccccccccccccccccccc"]`,
		telemetry.CommitsAbandoned:    `["dddddddddddddddddddddddddddddddddddddddd"]`,
		telemetry.WorktreeState:       "merging",
		telemetry.VCSRefHeadRevision:  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		telemetry.HeadAfter:           "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		telemetry.WorktreeDirtyBefore: "false",
		telemetry.WorktreeDirtyAfter:  "true",
		telemetry.EvidenceAbsent:      "<unset>",
		telemetry.EvidenceListCapped:  "<unset>",
	})
	gd := gitDiffSpan(t, tr)
	if gd == nil {
		t.Fatal("no git_diff span")
	}
	if gd.ParentID != root.SpanID || gd.TraceID != root.TraceID || gd.Kind != trace.SpanKindInternal ||
		!gd.Start.Equal(at(97)) || !gd.End.Equal(at(99)) || gd.Status != codes.Unset {
		t.Errorf("git_diff: parent %s kind %v %v..%v status %v", gd.ParentID, gd.Kind, gd.Start, gd.End, gd.Status)
	}
	wantAttrs(t, gd, map[attribute.Key]string{
		telemetry.SpanType:          telemetry.SpanGitDiff,
		telemetry.OpenInferenceKind: telemetry.OIEvaluator,
		telemetry.DiffSHA256:        "5f0c",
		telemetry.DiffBytes:         "79",
		telemetry.DiffFiles:         "4",
		telemetry.DiffLinesAdded:    "10",
		telemetry.DiffLinesRemoved:  "3",
		telemetry.DiffTruncated:     "true",
		telemetry.DiffBase:          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		telemetry.DiffContent:       "<unset>", // metadata capture: never the content
	})
	ids := map[trace.SpanID]bool{}
	for _, s := range tr.Spans {
		if ids[s.SpanID] {
			t.Errorf("duplicate span id %s (%s)", s.SpanID, s.Name)
		}
		ids[s.SpanID] = true
	}
	for _, s := range tr.Spans {
		for _, kv := range s.Attrs {
			if strings.Contains(kv.Value.Emit(), "ghp_") {
				t.Errorf("%s carries the diff content in %s", s.Name, kv.Key)
			}
		}
	}
}

// TestEvidenceFullCapture: with capture full the diff content rides on the
// span, redacted and cut at capture.output_bytes.
func TestEvidenceFullCapture(t *testing.T) {
	info := runInfo()
	pol := *policy.Default()
	pol.Capture = policy.CapturePolicy{Content: "full", OutputBytes: 70}
	info.Policy = &pol
	end := fixtureEnd()
	end.Evidence = fixtureEvidence()
	gd := gitDiffSpan(t, record(info, nil, end))
	v, ok := gd.Attr(telemetry.DiffContent)
	if !ok || !strings.HasPrefix(v.AsString(), "diff --git a/cfg.env") || strings.Contains(v.AsString(), "0123456789abcdefghij") || len(v.AsString()) > 70+len(Redacted) {
		t.Errorf("content %q (set %v)", v.AsString(), ok)
	}
}

func TestEvidenceAbsentAndFailed(t *testing.T) {
	tests := []struct {
		name       string
		ev         *workspace.Evidence
		wantAbsent string
		wantSpan   bool
		wantStatus codes.Code
	}{
		{"no evidence taken", nil, "<unset>", false, codes.Unset},
		{"not git", &workspace.Evidence{Absent: workspace.AbsentNotGit}, workspace.AbsentNotGit, false, codes.Unset},
		{"bare", &workspace.Evidence{Absent: workspace.AbsentBare}, workspace.AbsentBare, false, codes.Unset},
		{"diff timed out", &workspace.Evidence{Base: "aaaa", Head: "aaaa", Errors: []string{"diff: git timed out"}}, "<unset>", true, codes.Error},
		{"clean run", &workspace.Evidence{Base: "aaaa", Head: "aaaa", DiffSHA256: "e3b0"}, "<unset>", true, codes.Unset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end := fixtureEnd()
			end.Evidence = tt.ev
			tr := record(runInfo(), nil, end)
			if got := attrs(tr.Root(), telemetry.EvidenceAbsent)[telemetry.EvidenceAbsent]; got != tt.wantAbsent {
				t.Errorf("absent = %q, want %q", got, tt.wantAbsent)
			}
			gd := gitDiffSpan(t, tr)
			if (gd != nil) != tt.wantSpan {
				t.Fatalf("git_diff span present %v, want %v", gd != nil, tt.wantSpan)
			}
			if gd != nil && gd.Status != tt.wantStatus {
				t.Errorf("status %v, want %v", gd.Status, tt.wantStatus)
			}
			if tt.wantSpan && tt.wantStatus == codes.Unset {
				// Empty lists are present: nothing changed, said explicitly.
				if got := attrs(tr.Root(), telemetry.FilesTouched)[telemetry.FilesTouched]; got != "[]" {
					t.Errorf("files.touched = %s", got)
				}
			}
		})
	}
}

func TestEvidenceListsCapped(t *testing.T) {
	ev := fixtureEvidence()
	ev.Touched = nil
	for i := range maxEvidenceList + 50 {
		ev.Touched = append(ev.Touched, "f"+strings.Repeat("x", i%7))
	}
	end := fixtureEnd()
	end.Evidence = ev
	root := record(runInfo(), nil, end).Root()
	v, _ := root.Attr(telemetry.FilesTouched)
	if n := len(v.AsStringSlice()); n != maxEvidenceList {
		t.Errorf("%d touched listed", n)
	}
	if c, _ := root.Attr(telemetry.EvidenceListCapped); !c.AsBool() {
		t.Error("capped not flagged")
	}
}

// TestUnattributedChanges: a path the evidence shows touched that no file
// sensor reported is named on the root and raises unattributed_change; what
// eBPF saw (either name of a rename) or fswatch saw is not; an evidence of
// another directory, or a file list that overflowed, is not judged.
func TestUnattributedChanges(t *testing.T) {
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/bin/sh", ws, "sh", "-c", "edit"),
		file(3, 100, event.FileWrite, ws+"/seen.go"),
		event.File{Header: hdr(4, 100), Source: event.SourceEBPF, Op: event.FileRename, Path: ws + "/a.tmp", NewPath: ws + "/renamed.go"},
		file(5, 100, event.FileDelete, ws+"/gone.go"),
		event.File{Header: hdr(6, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: ws + "/fswatch_saw.txt"},
		exit(7, 100, 0, 0),
	}
	touched := []string{"seen.go", "renamed.go", "gone.go", "fswatch_saw.txt", "outside/wrote.txt", "daemon.log"}
	ev := func() *workspace.Evidence {
		return &workspace.Evidence{Start: at(97), End: at(99), Root: ws, DiffSHA256: "00", Touched: touched}
	}
	end := fixtureEnd()
	end.Evidence = ev()
	tr := record(runInfo(), events, end)
	root := tr.Root()
	if got := attrString(root, telemetry.FilesUnattributed); got != `["outside/wrote.txt","daemon.log"]` {
		t.Errorf("unattributed %s", got)
	}
	var found []wantAlert
	for _, a := range alertsOf(tr) {
		if a.rule == telemetry.AlertUnattributed {
			found = append(found, a)
		}
	}
	if len(found) != 1 || found[0].span != label(root) || found[0].severity != telemetry.SeverityMedium ||
		!strings.Contains(found[0].message, "2 workspace change(s) no sensor saw") || !strings.Contains(found[0].message, "outside/wrote.txt, daemon.log") {
		t.Errorf("alerts %+v", found)
	}

	// Everything seen: the list is there, empty, and nothing is raised.
	end = fixtureEnd()
	end.Evidence = ev()
	end.Evidence.Touched = touched[:4]
	tr = record(runInfo(), events, end)
	if got := attrString(tr.Root(), telemetry.FilesUnattributed); got != `[]` {
		t.Errorf("all seen: unattributed %s", got)
	}
	for _, a := range alertsOf(tr) {
		if a.rule == telemetry.AlertUnattributed {
			t.Errorf("all seen: alert %+v", a)
		}
	}

	// Evidence of another directory: not judged.
	end = fixtureEnd()
	end.Evidence = ev()
	end.Evidence.Root = "/elsewhere"
	tr = record(runInfo(), events, end)
	if v, ok := tr.Root().Attr(telemetry.FilesUnattributed); ok {
		t.Errorf("other root: unattributed %s", v.Emit())
	}
}

func TestUnattributedMessageNamesFive(t *testing.T) {
	msg := unattributedMessage([]string{"a", "b", "c", "d", "e", "f", "g"})
	if !strings.HasSuffix(msg, ": a, b, c, d, e, and 2 more") || !strings.HasPrefix(msg, "7 workspace") {
		t.Errorf("%q", msg)
	}
}
