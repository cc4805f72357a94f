package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
)

type resultFile struct {
	ExitCode int    `json:"exit_code"`
	RunID    string `json:"run_id"`
	Saved    bool   `json:"saved"`
	Error    string `json:"error"`
}

func readResult(t *testing.T, path string) resultFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no result file: %v", err)
	}
	var r resultFile
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("result file %s: %v", b, err)
	}
	return r
}

func mountSmall(t *testing.T, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "aw-small-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if exec.Command("umount", dir).Run() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
		os.Remove(dir)
	})
	return dir
}

// workspaceOn is a workspace (newWorkspace) moved onto the file system at
// mnt, under mnt/work: the agent can fill the disk it shares.
func workspaceOn(t *testing.T, u *user.User, mnt string) *ws {
	t.Helper()
	w := newWorkspace(t, u)
	parent := filepath.Join(mnt, "work")
	if out, err := exec.Command("cp", "-a", w.root, parent).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	w.root, w.dir = parent, filepath.Join(parent, "repo")
	w.chown()
	return w
}

func loadRun(t *testing.T, storeDir, id string) (*telemetry.Trace, store.Run) {
	t.Helper()
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, r, err := st.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("loading run %s: %v", id, err)
	}
	return tr, r
}

func hasSpan(tr *telemetry.Trace, typ, attrSub string) bool {
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Type() != typ {
			continue
		}
		for _, kv := range s.Attrs {
			if strings.Contains(kv.Value.Emit(), attrSub) {
				return true
			}
		}
	}
	return false
}

// TestAgentFillsTheDisk: the agent fills the file system its workspace
// shares with the store. Its exit status passes through, the run is kept
// in the journal (what it did after the disk filled too), `runs` lists it
// as unsaved with the cause while the disk is full, and the next command
// saves it once space returns — with its evidence.
func TestAgentFillsTheDisk(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	mnt := mountSmall(t, "24m")
	w := workspaceOn(t, u, mnt)
	storeDir := filepath.Join(mnt, "store")
	result := filepath.Join(t.TempDir(), "result.json")

	script := "echo change >> README.md; echo new > new.txt; " +
		"dd if=/dev/zero of=../fill bs=1M >/dev/null 2>&1; " +
		"/bin/true after-the-disk-filled; mkdir -p after; exit 7"
	_, stderr, code := aw(t, w.dir, "run", "--user", agent, "--store", storeDir, "--result-file", result, "--", "/bin/bash", "-c", script)
	if code != 7 {
		t.Fatalf("exit %d, want the command's 7\n%s", code, stderr)
	}
	res := readResult(t, result)
	if res.Saved || res.ExitCode != 7 || !strings.Contains(res.Error, "full") || res.RunID == "" {
		t.Fatalf("result file %+v: want saved=false, exit 7 and the cause", res)
	}
	if !strings.Contains(stderr, "agentwatch: saving run "+res.RunID) || !strings.Contains(stderr, "kept in") {
		t.Errorf("stderr does not say the run is kept:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(mnt, "work", "fill")); err != nil {
		t.Fatalf("the disk was not filled (the test proves nothing): %v", err)
	}

	// While the disk is full: runs reads the store and lists the run as unsaved.
	out, errs, code := aw(t, "/", "runs", "--store", storeDir)
	if code != 0 || !strings.Contains(out, res.RunID) || !strings.Contains(out, "unsaved") || !strings.Contains(out, "full") {
		t.Fatalf("runs on a full disk: exit %d\n%s\n%s", code, out, errs)
	}

	// Space returns: the next command saves the run, whole.
	if err := os.Remove(filepath.Join(mnt, "work", "fill")); err != nil {
		t.Fatal(err)
	}
	out, errs, code = aw(t, "/", "runs", "--store", storeDir)
	if code != 0 || !strings.Contains(errs, res.RunID+", not saved when it ended, is saved now") {
		t.Fatalf("runs after space returned: exit %d\n%s\n%s", code, out, errs)
	}
	tr, r := loadRun(t, storeDir, res.RunID)
	if r.Status != store.StatusLate || r.ExitCode != 7 || !strings.Contains(r.StatusReason, "full") {
		t.Errorf("saved run: status %s exit %d reason %q", r.Status, r.ExitCode, r.StatusReason)
	}
	if g, _ := tr.Root().Attr(telemetry.TelemetryGaps); !strings.Contains(g.Emit(), "saved late") || !strings.Contains(g.Emit(), "full") {
		t.Errorf("the saved run does not say it was saved late, and why: gaps %s", g.Emit())
	}
	if !hasSpan(tr, telemetry.SpanBashCommand, "after-the-disk-filled") {
		t.Errorf("the command run after the disk filled is missing from the saved run")
	}
	if !hasSpan(tr, telemetry.SpanGitDiff, "") {
		t.Errorf("the saved run lost its end-of-run evidence (no git_diff span)")
	}
	if files, _ := tr.Root().Attr(telemetry.FilesTouched); !strings.Contains(files.Emit(), "new.txt") {
		t.Errorf("files touched = %s, want new.txt", files.Emit())
	}
}

// TestCorruptStore: the store has a damaged page where the next run's row
// goes. The command runs and its status passes through; the run waits in
// the journal; `runs` still lists the intact runs; `store repair` moves
// the damage aside and the run is saved.
func TestCorruptStore(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	w := newWorkspace(t, u)
	storeDir := t.TempDir()
	const runs = 12
	for i := 0; i < runs; i++ {
		if _, errs, code := aw(t, w.dir, "run", "--user", agent, "--store", storeDir, "--", "/bin/echo",
			fmt.Sprintf("intact-%d-%s", i, strings.Repeat("x", 1500))); code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i, code, errs)
		}
	}
	// Damage the page holding the newest row: the next insert goes there.
	path := filepath.Join(storeDir, store.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte(fmt.Sprintf("intact-%d-", runs-1))
	if !bytes.Contains(b, marker) {
		t.Fatal("the newest run's row is not in runs.db (WAL not checkpointed)")
	}
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	for off := 0; off < len(b); off += 4096 {
		if bytes.Contains(b[off:min(off+4096, len(b))], marker) {
			f.WriteAt(bytes.Repeat([]byte{0xa5}, 4096), int64(off))
		}
	}
	f.Close()

	result := filepath.Join(t.TempDir(), "result.json")
	_, stderr, code := aw(t, w.dir, "run", "--user", agent, "--store", storeDir, "--result-file", result, "--", "/bin/bash", "-c", "echo work > out.txt; exit 5")
	if code != 5 {
		t.Fatalf("exit %d, want the command's 5\n%s", code, stderr)
	}
	res := readResult(t, result)
	if res.Saved || !strings.Contains(stderr, "agentwatch store repair") {
		t.Fatalf("result %+v; stderr does not name the way out:\n%s", res, stderr)
	}
	out, errs, code := aw(t, "/", "runs", "--store", storeDir)
	if code != 0 || !strings.Contains(out, "intact-0") || !strings.Contains(out, res.RunID) {
		t.Fatalf("runs on a damaged store: exit %d\n%s\n%s", code, out, errs)
	}
	_, errs, code = aw(t, "/", "store", "repair", "--store", storeDir)
	if code != 0 || !strings.Contains(errs, "repaired") || !strings.Contains(errs, res.RunID+", not saved when it ended, is saved now") {
		t.Fatalf("store repair: exit %d\n%s", code, errs)
	}
	_, r := loadRun(t, storeDir, res.RunID)
	if r.ExitCode != 5 || r.Status != store.StatusLate {
		t.Errorf("after repair: %+v", r)
	}
	st, _ := store.Open(storeDir)
	defer st.Close()
	list, _ := st.List(context.Background(), 0)
	// Every run `runs` listed on the damaged store survives the repair
	// (the damaged page's runs do not), and the saved one joins them.
	intact := strings.Count(out, "/bin/echo intact-")
	if intact == 0 || intact >= runs || len(list) != intact+1 {
		t.Errorf("listed %d intact runs of %d on the damaged store; %d runs after repair, want %d", intact, runs, len(list), intact+1)
	}
}

// TestAgentFillsTheTraceFileDisk: --trace-file is on the file system the
// agent fills. The command's status passes through, the file holds only
// whole lines (here: none), the run is in the store and says the trace
// file failed, and the next run appends a readable line.
func TestAgentFillsTheTraceFileDisk(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	mnt := mountSmall(t, "8m")
	w := workspaceOn(t, u, mnt)
	traceFile := filepath.Join(mnt, "trace.jsonl")
	storeDir := t.TempDir()
	result := filepath.Join(t.TempDir(), "result.json")
	script := "dd if=/dev/zero of=../fill bs=1M >/dev/null 2>&1; echo done; exit 3"
	_, stderr, code := aw(t, w.dir, "run", "--user", agent, "--store", storeDir, "--trace-file", traceFile, "--result-file", result, "--", "/bin/bash", "-c", script)
	if code != 3 || !strings.Contains(stderr, "writing trace file "+traceFile) {
		t.Fatalf("exit %d, want the command's 3 and the trace file's failure named:\n%s", code, stderr)
	}
	res := readResult(t, result)
	if !res.Saved {
		t.Fatalf("the run is not in the store: %+v", res)
	}
	if b, _ := os.ReadFile(traceFile); len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("the trace file ends in a partial line (%d bytes)", len(b))
	}
	tr, _ := loadRun(t, storeDir, res.RunID)
	if g, _ := tr.Root().Attr(telemetry.TelemetryGaps); !strings.Contains(g.Emit(), "trace file: writing trace file") {
		t.Errorf("the stored run does not say the trace file failed: gaps %s", g.Emit())
	}
	os.Remove(filepath.Join(mnt, "work", "fill"))
	if _, errs, code := aw(t, w.dir, "run", "--user", agent, "--store", storeDir, "--trace-file", traceFile, "--", "/bin/true"); code != 0 {
		t.Fatalf("next run: exit %d\n%s", code, errs)
	}
	b, _ := os.ReadFile(traceFile)
	if n := strings.Count(string(b), "\n"); n < 1 || b[len(b)-1] != '\n' {
		t.Fatalf("after the next run the trace file holds %d lines, last byte %q", n, b[len(b)-1:])
	}
	if _, err := otlp.UnmarshalJSON(b[:len(b)-1][strings.LastIndex(string(b[:len(b)-1]), "\n")+1:]); err != nil {
		t.Errorf("the next run's line does not read: %v", err)
	}
}
