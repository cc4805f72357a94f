package store_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// damagedStore saves n runs, each with a long unique command line (so few
// rows share a leaf page of the runs table), closes the store and overwrites the
// page holding victim's row with garbage: a real corrupt page.
func damagedStore(t *testing.T, n int, victim int) string {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < n; i++ {
		tr := runTrace(fmt.Sprintf("run-%03d", i), base.Add(time.Duration(i)*time.Minute), 0)
		tr.Spans[0].Attrs[2] = telemetry.ProcessCommandLine.String(fmt.Sprintf("cmd-%03d-%s", i, strings.Repeat("x", 400)))
		if err := s.Save(ctx, tr); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := s.SaveArtifact(ctx, tr.RunID, store.ArtifactDiff, []byte("diff of "+tr.RunID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Close() // the last connection checkpoints the WAL into runs.db
	path := filepath.Join(dir, store.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The runs row is its trace_id (hex) closely followed by its command
	// line: the trace id alone is also in the index runs_trace_id, the
	// command line also in the run's facts (run_facts), on other pages.
	tid := []byte(hex.EncodeToString([]byte(fmt.Sprintf("%-16s", fmt.Sprintf("run-%03d", victim)))))
	cmd := []byte(fmt.Sprintf("cmd-%03d-", victim))
	at := -1
	for off := 0; off < len(b); {
		i := bytes.Index(b[off:], tid)
		if i < 0 {
			break
		}
		if i += off; bytes.Contains(b[i:min(len(b), i+len(tid)+64)], cmd) {
			at = i
			break
		}
		off = i + 1
	}
	if at < 0 {
		t.Fatalf("run %d's row is not in %s (WAL not checkpointed?)", victim, path)
	}
	page := at / 4096 * 4096
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 4096), int64(page)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir
}

func TestCorruptPageKeepsIntactRunsReadable(t *testing.T) {
	const n, victim = 60, 30
	dir := damagedStore(t, n, victim)
	ctx := context.Background()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatalf("a damaged runs table blocks opening the store: %v", err)
	}
	defer s.Close()
	runs, err := s.List(ctx, 0)
	if err != nil {
		t.Fatalf("listing a store with one damaged page: %v", err)
	}
	ids := map[string]bool{}
	for _, r := range runs {
		ids[r.ID] = true
	}
	if ids[fmt.Sprintf("run-%03d", victim)] || len(runs) >= n || len(runs) < n-15 {
		t.Fatalf("listed %d of %d runs (victim listed: %v): want all but the damaged page's few", len(runs), n, ids[fmt.Sprintf("run-%03d", victim)])
	}
	for i := 0; i < len(runs)-1; i++ {
		if runs[i].Start.Before(runs[i+1].Start) {
			t.Fatalf("intact runs not newest first: %s before %s", runs[i].ID, runs[i+1].ID)
		}
	}
	// Every intact run loads, by id, by prefix, and as latest.
	for _, r := range runs {
		tr, got, err := s.Load(ctx, r.ID)
		if err != nil || got.ID != r.ID || len(tr.Spans) != 2 {
			t.Fatalf("loading intact run %s: %v", r.ID, err)
		}
	}
	if _, got, err := s.Load(ctx, store.Latest); err != nil || got.ID != runs[0].ID {
		t.Fatalf("latest = %s, %v; want %s", got.ID, err, runs[0].ID)
	}
	_, _, err = s.Load(ctx, fmt.Sprintf("run-%03d", victim))
	if err == nil {
		t.Fatalf("the damaged run loaded")
	}
	s.Close()

	rep, err := store.Repair(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != len(runs) || rep.Lost == 0 {
		t.Errorf("repair kept %d lost %d; want %d kept and the damaged ones lost", rep.Kept, rep.Lost, len(runs))
	}
	if _, err := os.Stat(rep.Aside); err != nil {
		t.Errorf("the damaged file is not kept: %v", err)
	}
	s2, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again, err := s2.List(ctx, 0)
	if err != nil || len(again) != len(runs) {
		t.Fatalf("the repaired store lists %d runs (%v), want %d", len(again), err, len(runs))
	}
	for _, r := range again {
		if r.ID == "run-000" || r.ID == "run-055" {
			if a, err := s2.Artifact(ctx, r.ID, store.ArtifactDiff); err != nil || string(a.Content) != "diff of "+r.ID {
				t.Errorf("artifact of %s after repair: %q %v", r.ID, a.Content, err)
			}
		}
	}
	// The repaired store takes new runs.
	if err := s2.Save(ctx, runTrace("run-new", base.Add(time.Hour*3), 0)); err != nil {
		t.Fatalf("saving into the repaired store: %v", err)
	}
}

// A damage in the runs table makes a save fail with one line naming the
// way out.
func TestCorruptErrorNamesRepair(t *testing.T) {
	dir := damagedStore(t, 60, 59)
	s, err := store.Open(dir)
	if err != nil {
		if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "agentwatch store repair") {
			t.Fatalf("open: %v", err)
		}
		return
	}
	defer s.Close()
	err = s.Save(context.Background(), runTrace("run-999", base.Add(24*time.Hour), 0))
	if err == nil {
		t.Fatal("the save went through: the damaged page was not on the insert path, and the test proves nothing")
	}
	if !errors.Is(err, store.ErrCorrupt) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "agentwatch store repair") {
		t.Fatalf("save into a damaged store: %v", err)
	}
}

// Check counts the runs of an intact store and finds one damaged page
// that the listing would read past.
func TestCheckFindsDamage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Save(ctx, runTrace(fmt.Sprintf("run-%d", i), base.Add(time.Duration(i)*time.Minute), 0)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Check(ctx); err != nil || n != 3 {
		t.Errorf("intact store: %d runs, %v; want 3, nil", n, err)
	}
	s.Close()

	ro, err := store.OpenReadOnly(damagedStore(t, 40, 20))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Check(ctx); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "store repair") {
		t.Errorf("damaged store: %v; want ErrCorrupt naming the repair", err)
	}
}
