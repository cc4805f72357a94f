package supervisor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// TestWorkspaceEvidence runs a real agent script in a real repository: the
// git_diff span's sha256 is the stored "diff" artifact's, the root names
// what was touched, deleted and committed, and the trace never carries the
// diff's content.
func TestWorkspaceEvidence(t *testing.T) {
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", ws, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	for name, content := range map[string]string{"main.go": "package main\n", "old.txt": "old\n", "go.sum": "x v1\n"} {
		if err := os.WriteFile(filepath.Join(ws, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "-A")
	git("commit", "-q", "-m", "base")
	base := git("rev-parse", "HEAD")

	script := `set -e
echo 'func main() { println("secret-free change") }' >> main.go
rm old.txt
echo 'y v2' >> go.sum
mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml
git -c user.name=agent -c user.email=a@example.com commit -q -am 'agent commit'
printf 'untracked %s line\n' content > new.txt
`
	storeDir := t.TempDir()
	args := append(append([]string{"run", "--store", storeDir}, asSelf()...), "--", "/bin/sh", "-c", script)
	cmd := agentwatch(t, args...)
	cmd.Dir = ws
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	id := runID(t, string(out))
	head := git("rev-parse", "HEAD")

	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	tr, _, err := st.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	art, err := st.Artifact(ctx, id, store.ArtifactDiff)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(art.Content)
	for _, want := range []string{"+untracked content line", "-old", "+y v2", "secret-free change", "b/.github/workflows/ci.yml"} {
		if !bytes.Contains(art.Content, []byte(want)) {
			t.Errorf("stored diff lacks %q:\n%s", want, art.Content)
		}
	}
	root := tr.Root()
	var gd *telemetry.Span
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Type() == telemetry.SpanGitDiff {
			gd = s
		}
		for _, kv := range s.Attrs {
			if strings.Contains(kv.Value.Emit(), "untracked content line") {
				t.Errorf("%s.%s carries diff content", s.Name, kv.Key)
			}
		}
	}
	if gd == nil || gd.ParentID != root.SpanID {
		t.Fatalf("no git_diff span under the root")
	}
	checks := []struct {
		span *telemetry.Span
		key  string
		want string
	}{
		{gd, string(telemetry.DiffSHA256), hex.EncodeToString(sum[:])},
		{gd, string(telemetry.DiffBytes), strconv.Itoa(len(art.Content))},
		{gd, string(telemetry.DiffFiles), "5"},
		{root, string(telemetry.VCSRefHeadRevision), base},
		{root, string(telemetry.HeadAfter), head},
		{root, string(telemetry.Commits), `["` + head + `"]`},
		{root, string(telemetry.FilesTouched), `[".github/workflows/ci.yml","go.sum","main.go","new.txt","old.txt"]`},
		{root, string(telemetry.FilesDeleted), `["old.txt"]`},
		{root, string(telemetry.LockfilesChanged), `["go.sum"]`},
		{root, string(telemetry.WorkflowsChanged), `[".github/workflows/ci.yml"]`},
		{root, string(telemetry.WorktreeDirtyAfter), "true"},
	}
	for _, c := range checks {
		got := "<unset>"
		for _, kv := range c.span.Attrs {
			if string(kv.Key) == c.key {
				got = kv.Value.Emit()
			}
		}
		if got != c.want {
			t.Errorf("%s %s = %s, want %s", c.span.Name, c.key, got, c.want)
		}
	}
}
