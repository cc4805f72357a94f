package supervisor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// W2.2's size target, for real: a child that creates 100,000 files in the
// workspace, under the real sensors (eBPF and fswatch). The supervisor's
// peak RSS stays at or under 150 MB, the trace file at or under 10 MB,
// and the store's file list names every one of the 100,000 paths, its
// digest the one on the root span.
func TestHundredThousandFiles(t *testing.T) {
	privtest.Require(t)
	const n = 100_000
	const maxRSS, maxTrace = 150 << 20, 10 << 20
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "init", "-q", ws).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	gen := fmt.Sprintf(`
import os
for d in range(100):
    os.makedirs("gen/%%03d" %% d)
for i in range(%d):
    with open("gen/%%03d/f%%06d.txt" %% (i %% 100, i), "w") as f:
        f.write("x")
`, n)
	storeDir, traceFile := t.TempDir(), filepath.Join(t.TempDir(), "run.json")
	cmd := agentwatch(t, "run", "--user", "root", "--store", storeDir, "--trace-file", traceFile, "--", "/usr/bin/python3", "-c", gen)
	cmd.Dir = ws
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("agentwatch run: %v\n%s", err, out)
	}
	// wait4's maximum is the largest of the supervisor and what it
	// waited for; the python child is far smaller than the supervisor.
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
	fi, err := os.Stat(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files: run took %v, supervisor peak RSS %.1f MB, trace %.1f MB", n, elapsed.Round(time.Millisecond),
		float64(rss)/(1<<20), float64(fi.Size())/(1<<20))
	if rss > maxRSS {
		t.Errorf("peak RSS %d bytes, want <= %d", rss, maxRSS)
	}
	if fi.Size() > maxTrace {
		t.Errorf("trace file %d bytes, want <= %d", fi.Size(), maxTrace)
	}

	tr := loadRun(t, storeDir, string(out))
	root := tr.Root()
	if v, ok := root.Attr(telemetry.SupervisorMaxRSS); !ok || v.AsInt64() > maxRSS {
		t.Errorf("%s = %v, want <= %d", telemetry.SupervisorMaxRSS, v.Emit(), maxRSS)
	}
	if v, _ := root.Attr(telemetry.AggregatedFiles); v.AsInt64() < n-2048 {
		t.Errorf("%s = %s: the files were not aggregated", telemetry.AggregatedFiles, v.Emit())
	}

	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	files, err := st.Files(context.Background(), tr.RunID)
	if err != nil {
		t.Fatal(err)
	}
	listed := make(map[string]bool, len(files))
	h := sha256.New()
	for _, f := range files {
		listed[f.Path] = true
		h.Write([]byte(f.Path + "\x00"))
	}
	missing := 0
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s/gen/%03d/f%06d.txt", ws, i%100, i)
		if !listed[p] {
			if missing < 3 {
				t.Errorf("%s is not in the store's file list", p)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d paths missing from the file list (%d entries)", missing, n, len(files))
	}
	if v, _ := root.Attr(telemetry.FilesListSHA256); v.AsString() != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("root %s = %s, not the digest of the stored list", telemetry.FilesListSHA256, v.Emit())
	}
	if v, _ := root.Attr(telemetry.FilesListCount); v.AsInt64() != int64(len(files)) {
		t.Errorf("root %s = %s, the store lists %d", telemetry.FilesListCount, v.Emit(), len(files))
	}
}
