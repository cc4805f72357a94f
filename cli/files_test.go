package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/store"
)

// show --files prints the stored list, one path a line, a hostile name
// quoted (no raw escape sequence or newline reaches the terminal); a run
// without a list says so.
func TestShowFiles(t *testing.T) {
	dir := t.TempDir()
	tr := storedRun(t, dir)
	show := func() (int, string, string) {
		var out, errb bytes.Buffer
		code := Execute(context.Background(), []string{"show", "--files", "--store", dir, tr.RunID}, Env{Stdout: &out, Stderr: &errb})
		return code, out.String(), errb.String()
	}
	if code, _, stderr := show(); code != ExitFailure || !strings.Contains(stderr, "has no file list") {
		t.Errorf("without a list: exit %d, stderr %q", code, stderr)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = st.SaveFiles(context.Background(), tr.RunID, []store.FileEntry{
		{Path: "/w/a.go", Ops: []string{"create", "write"}, Source: "ebpf"},
		{Path: "/w/\x1b]52;c;aGk=\x07\nx", Ops: []string{"create"}, Source: "ebpf"},
		{Path: "/w/.github/workflows/ci.yml", Failed: true, Source: "ebpf"},
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := show()
	want := "create,write   /w/a.go\n" +
		`create         "/w/\x1b]52;c;aGk=\a\nx"` + "\n" +
		"failed         /w/.github/workflows/ci.yml\n"
	if code != ExitOK || out != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, stderr)
	}
}
