package report_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// evidenceRun is a run with the workspace evidence the recorder adds.
func evidenceRun(rootAttrs []attribute.KeyValue, diff *telemetry.Span) *telemetry.Trace {
	root := span(1, 0, telemetry.SpanAgentRun, 0, 10_000, append([]attribute.KeyValue{
		telemetry.RunID.String("20260301-120000-e1e2e3"),
		telemetry.ProcessCommandLine.String("claude -p fix"),
		telemetry.ProcessExitCode.Int(0),
	}, rootAttrs...)...)
	tr := &telemetry.Trace{RunID: "20260301-120000-e1e2e3", Spans: []telemetry.Span{root}}
	if diff != nil {
		tr.Spans = append(tr.Spans, *diff)
	}
	return tr
}

func fullEvidence() *telemetry.Trace {
	touched := []string{".github/workflows/ci.yml", "go.sum", "main.go", "old.go", "dir with space/ünï\ncode.txt",
		"a", "b", "c", "d", "e"}
	gd := span(2, 1, telemetry.SpanGitDiff, 9_000, 9_500,
		telemetry.DiffSHA256.String("5f0c1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344"),
		telemetry.DiffBytes.Int(3<<20), telemetry.DiffFiles.Int(10),
		telemetry.DiffLinesAdded.Int(120), telemetry.DiffLinesRemoved.Int(7), telemetry.DiffTruncated.Bool(true))
	return evidenceRun([]attribute.KeyValue{
		telemetry.VCSRefHeadRevision.String("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
		telemetry.VCSRefHeadName.String("main"),
		telemetry.HeadAfter.String("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
		telemetry.WorktreeDirtyBefore.Bool(false),
		telemetry.WorktreeDirtyAfter.Bool(true),
		telemetry.WorktreeState.String("rebasing"),
		telemetry.FilesTouched.StringSlice(touched),
		telemetry.FilesDeleted.StringSlice([]string{"old.go"}),
		telemetry.LockfilesChanged.StringSlice([]string{"go.sum"}),
		telemetry.WorkflowsChanged.StringSlice([]string{".github/workflows/ci.yml"}),
		telemetry.FilesGenerated.Int(3),
		telemetry.Commits.StringSlice([]string{"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccccccccccccc"}),
		telemetry.CommitsAbandoned.StringSlice([]string{"dddddddddddddddddddddddddddddddddddddddd"}),
	}, &gd)
}

func TestTreeEvidence(t *testing.T) {
	tests := []struct {
		name string
		tr   *telemetry.Trace
		want []string // lines that must appear
		not  []string
	}{
		{"full", fullEvidence(), []string{
			"\nEvidence\n",
			"  base→head   aaaaaaaaaaaa → bbbbbbbbbbbb, uncommitted changes at the end\n",
			"  state       rebasing\n",
			"  diff        10 files, +120 −7, 3.0 MiB, sha256 5f0c1d2e3f4a (truncated) — stored as artifact \"diff\"\n",
			"  touched     (10) .github/workflows/ci.yml, go.sum, main.go, old.go, \"dir with space/ünï\\ncode.txt\", a, b, c, … and 2 more\n",
			"  deleted     (1) old.go\n",
			"  lockfiles   (1) go.sum\n",
			"  workflows   (1) .github/workflows/ci.yml\n",
			"  generated   3\n",
			"  commits     bbbbbbbbbbbb, cccccccccccc\n",
			"  abandoned   dddddddddddd\n",
			"└── git_diff  10 files +120 −7, 3145728 bytes (truncated)  500ms\n",
		}, nil},
		{"not git", evidenceRun([]attribute.KeyValue{telemetry.EvidenceAbsent.String("not a git repository")}, nil),
			[]string{"Evidence   absent: not a git repository\n"}, []string{"base→head"}},
		{"diff failed", func() *telemetry.Trace {
			gd := span(2, 1, telemetry.SpanGitDiff, 9_000, 9_500, telemetry.EvidenceErrors.StringSlice([]string{"diff: git timed out"}))
			gd.Status = codes.Error
			return evidenceRun([]attribute.KeyValue{
				telemetry.VCSRefHeadRevision.String("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
				telemetry.HeadAfter.String("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
				telemetry.FilesTouched.StringSlice([]string{}),
				telemetry.EvidenceErrors.StringSlice([]string{"diff: git timed out"}),
			}, &gd)
		}(), []string{
			"  base→head   aaaaaaaaaaaa (HEAD unchanged)\n",
			"  diff        not taken: diff: git timed out\n",
			"  errors      diff: git timed out\n",
			"git_diff  not taken",
		}, []string{"touched", "commits"}},
		{"run without evidence", evidenceRun(nil, nil), nil, []string{"Evidence"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := report.Tree(&buf, tt.tr); err != nil {
				t.Fatal(err)
			}
			got := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("unexpected %q in:\n%s", n, got)
				}
			}
		})
	}
}

func TestJSONEvidence(t *testing.T) {
	var buf bytes.Buffer
	if err := report.JSON(&buf, fullEvidence()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Run struct {
			Evidence map[string]any `json:"evidence"`
		} `json:"run"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	ev := doc.Run.Evidence
	diff, _ := ev["diff"].(map[string]any)
	if ev["base"] != "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" || ev["state"] != "rebasing" || ev["dirty_after"] != true ||
		ev["generated"] != 3.0 || len(ev["touched"].([]any)) != 10 || len(ev["commits"].([]any)) != 2 ||
		diff["artifact"] != "diff" || diff["files"] != 10.0 || diff["truncated"] != true || diff["bytes"] != float64(3<<20) {
		t.Errorf("evidence = %v", ev)
	}

	buf.Reset()
	if err := report.JSON(&buf, evidenceRun([]attribute.KeyValue{telemetry.EvidenceAbsent.String("bare repository (no work tree)")}, nil)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"evidence": {`) || !strings.Contains(buf.String(), `"absent": "bare repository (no work tree)"`) {
		t.Errorf("absent evidence:\n%s", buf.String())
	}
	buf.Reset()
	report.JSON(&buf, evidenceRun(nil, nil))
	if strings.Contains(buf.String(), `"evidence"`) {
		t.Errorf("a run without evidence has an evidence object:\n%s", buf.String())
	}
}
