package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
)

func TestAnnotations(t *testing.T) { eachBackend(t, testAnnotations) }

func testAnnotations(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	start := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	if err := s.Save(ctx, runTrace("run-a", start, 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Annotations(ctx, "run-a"); err != nil || len(got) != 0 {
		t.Fatalf("Annotations of an unannotated run = %v, %v; want none", got, err)
	}
	first, err := s.Annotate(ctx, store.Annotation{RunID: "run-a", Review: "rejected", Reviewer: "ana",
		FailureClass: "test_failure", PRURL: "https://github.com/acme/app/pull/7", Note: "flaky test still flaky"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Seq != 1 || first.Time.IsZero() {
		t.Errorf("first annotation: seq %d, time %v", first.Seq, first.Time)
	}
	at := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	second, err := s.Annotate(ctx, store.Annotation{RunID: "run-a", Review: "approved", Reviewer: "bo",
		CIRunURL: "https://ci.example/runs/9", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	if second.Seq != 2 {
		t.Errorf("second annotation seq %d, want 2", second.Seq)
	}
	if err := s.MarkAnnotationExported(ctx, "run-a", 2, errors.New("exporting to 127.0.0.1:1: connection refused")); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAnnotationExported(ctx, "run-a", 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAnnotationExported(ctx, "run-a", 3, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("marking a missing annotation: %v, want ErrNotFound", err)
	}
	// Saving the run again (a re-export rewrites it) keeps its annotations.
	if err := s.Save(ctx, runTrace("run-a", start, 1)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Annotations(ctx, "run-a")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Annotation{
		{RunID: "run-a", Seq: 1, Time: first.Time, Review: "rejected", Reviewer: "ana", FailureClass: "test_failure",
			PRURL: "https://github.com/acme/app/pull/7", Note: "flaky test still flaky", Exported: true},
		{RunID: "run-a", Seq: 2, Time: at, Review: "approved", Reviewer: "bo", CIRunURL: "https://ci.example/runs/9",
			ExportError: "exporting to 127.0.0.1:1: connection refused"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d annotations, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if !g.Time.Equal(want[i].Time) {
			t.Errorf("annotation %d time %v, want %v", i+1, g.Time, want[i].Time)
		}
		g.Time = want[i].Time
		if g != want[i] {
			t.Errorf("annotation %d:\n got %+v\nwant %+v", i+1, g, want[i])
		}
	}
	if _, err := s.Annotate(ctx, store.Annotation{RunID: "no-such-run", Review: "approved", Reviewer: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("annotating a missing run: %v, want ErrNotFound", err)
	}
}

// A store made before annotations existed (schema version 2) gains the
// table on Open and keeps its runs.
func TestAnnotationsMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Save(ctx, runTrace("old-run", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE annotations; UPDATE schema_version SET version = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = open(t, dir)
	if _, err := s.Annotate(ctx, store.Annotation{RunID: "old-run", Review: "approved", Reviewer: "ana"}); err != nil {
		t.Fatalf("annotating after migration: %v", err)
	}
}
