package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// syncSource is a SQLite store of n runs of some variety: rich and plain
// traces, three teams, annotations on every seventh, a diff on every
// third, an export recorded on every fifth (a failed one on every
// eleventh).
func syncSource(t *testing.T, n int) *store.Store {
	t.Helper()
	ctx := context.Background()
	s := open(t, t.TempDir())
	for i := range n {
		id := fmt.Sprintf("20260301-%06d-sync%02d", i, i)
		start := base.Add(time.Duration(i) * time.Minute)
		tr := runTrace(id, start, i%3, attribute.String(telemetry.LabelPrefix+"team", fmt.Sprint("team-", i%3)))
		if i%2 == 0 {
			tr = richTrace(id, start)
		}
		if err := s.Save(ctx, tr); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if _, err := s.Annotate(ctx, store.Annotation{RunID: id, Review: "rejected", Reviewer: "ana", PRURL: "https://github.com/acme/api/pull/" + fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Annotate(ctx, store.Annotation{RunID: id, Review: "approved", Reviewer: "bo", Note: "fixed"}); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 0 {
			if err := s.SaveArtifact(ctx, id, store.ArtifactDiff, []byte("diff --git a/x b/x\n+"+id+"\n")); err != nil {
				t.Fatal(err)
			}
		}
		switch {
		case i%5 == 0:
			if err := s.MarkExported(ctx, id, nil); err != nil {
				t.Fatal(err)
			}
		case i%11 == 0:
			if err := s.MarkExported(ctx, id, errors.New("exporting to collector:4317: connection refused")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// sameStores checks that dst holds what src holds: the same runs (with
// export state and status), annotations, artifacts, and the same facts
// (the target's own, computed from what it received).
func sameStores(t *testing.T, src, dst *store.Store) {
	t.Helper()
	ctx := context.Background()
	a, err := src.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("runs differ: %d in the source, %d in the target", len(a), len(b))
		for i := range min(len(a), len(b)) {
			if !reflect.DeepEqual(a[i], b[i]) {
				t.Errorf("first difference:\n source %+v\n target %+v", a[i], b[i])
				break
			}
		}
	}
	fa, err := src.Facts(ctx, store.FactsFilter{})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := dst.Facts(ctx, store.FactsFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fa, fb) {
		t.Errorf("facts differ (%d and %d runs)", len(fa), len(fb))
		for i := range min(len(fa), len(fb)) {
			if !reflect.DeepEqual(fa[i], fb[i]) {
				t.Errorf("first difference:\n source %+v\n target %+v", fa[i], fb[i])
				break
			}
		}
	}
	for _, r := range a {
		na, _ := src.Annotations(ctx, r.ID)
		nb, _ := dst.Annotations(ctx, r.ID)
		if !reflect.DeepEqual(na, nb) {
			t.Errorf("%s annotations:\n source %+v\n target %+v", r.ID, na, nb)
		}
		la, _ := src.Artifacts(ctx, r.ID)
		lb, _ := dst.Artifacts(ctx, r.ID)
		if !reflect.DeepEqual(la, lb) {
			t.Errorf("%s artifacts:\n source %+v\n target %+v", r.ID, la, lb)
		}
		for _, x := range la {
			ca, _ := src.Artifact(ctx, r.ID, x.Name)
			cb, _ := dst.Artifact(ctx, r.ID, x.Name)
			if !bytes.Equal(ca.Content, cb.Content) {
				t.Errorf("%s artifact %s content differs", r.ID, x.Name)
			}
		}
		ta, _, _ := src.Load(ctx, r.ID)
		tb, _, _ := dst.Load(ctx, r.ID)
		if ta == nil || tb == nil || len(ta.Spans) != len(tb.Spans) {
			t.Errorf("%s trace differs", r.ID)
		}
	}
}

// Sync copies 50 runs; stopped after 20 and started again it copies the
// other 30, each run once; a third sync sends nothing. A run annotated or
// exported after its sync is sent again, with what changed.
func TestSync(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		ctx := context.Background()
		src := syncSource(t, 50)
		dst := newStore(t)

		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var seen []string
		rep, err := store.Sync(cctx, src, dst, store.SyncOptions{Progress: func(p store.SyncProgress) {
			seen = append(seen, p.RunID)
			if p.Total != 50 || p.Outcome != store.SyncCopied {
				t.Errorf("progress %+v", p)
			}
			if p.Done == 20 {
				cancel() // interrupted: as a killed sync, between two runs
			}
		}})
		if !errors.Is(err, context.Canceled) || rep.Copied != 20 || rep.Runs != 50 {
			t.Fatalf("interrupted sync: %+v, %v", rep, err)
		}
		if got, _ := dst.List(ctx, 0); len(got) != 20 {
			t.Fatalf("after the interruption the target holds %d runs, want 20", len(got))
		}

		rep, err = store.Sync(ctx, src, dst, store.SyncOptions{Progress: func(p store.SyncProgress) { seen = append(seen, p.RunID) }})
		if err != nil || rep.Copied != 30 || rep.Unchanged != 20 || rep.AlreadyThere() != 20 || rep.Updated != 0 || len(rep.Conflicts) != 0 {
			t.Fatalf("resumed sync: %+v, %v", rep, err)
		}
		once := map[string]int{}
		for _, id := range seen {
			once[id]++
		}
		if len(once) != 50 || len(seen) != 50 {
			t.Errorf("runs sent: %d (%d distinct), want each of 50 once", len(seen), len(once))
		}
		sameStores(t, src, dst)

		rep, err = store.Sync(ctx, src, dst, store.SyncOptions{Progress: func(p store.SyncProgress) { t.Errorf("third sync sent %s", p.RunID) }})
		if err != nil || rep.Copied != 0 || rep.Updated != 0 || rep.Unchanged != 50 {
			t.Errorf("third sync: %+v, %v", rep, err)
		}

		// Sent but not recorded (killed between the target's commit and
		// the local record): found on the target, not copied again.
		db, err := sql.Open("sqlite", src.Path())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`DELETE FROM sync_state WHERE run_id IN (SELECT run_id FROM sync_state ORDER BY run_id LIMIT 3)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		rep, err = store.Sync(ctx, src, dst, store.SyncOptions{})
		if err != nil || rep.Copied != 0 || rep.Present != 3 || rep.AlreadyThere() != 50 {
			t.Errorf("sync after losing three records: %+v, %v", rep, err)
		}

		// Annotated (and exported) after its sync: sent again.
		runs, _ := src.List(ctx, 0)
		late := runs[3].ID
		if _, err := src.Annotate(ctx, store.Annotation{RunID: late, Review: "approved", Reviewer: "lead", FailureClass: telemetry.FailureTestFailure}); err != nil {
			t.Fatal(err)
		}
		unexported := runs[1] // i = 48: neither exported nor failed
		if unexported.Exported || unexported.ExportError != "" {
			t.Fatalf("run %s: %+v", unexported.ID, unexported)
		}
		if err := src.MarkExported(ctx, unexported.ID, nil); err != nil {
			t.Fatal(err)
		}
		if err := src.SaveArtifact(ctx, runs[5].ID, "extra", []byte("x")); err != nil {
			t.Fatal(err)
		}
		rep, err = store.Sync(ctx, src, dst, store.SyncOptions{DryRun: true})
		if err != nil || rep.Updated != 3 || rep.Copied != 0 {
			t.Errorf("dry run after changes: %+v, %v", rep, err)
		}
		rep, err = store.Sync(ctx, src, dst, store.SyncOptions{})
		if err != nil || rep.Updated != 3 || rep.Copied != 0 || rep.Unchanged != 47 {
			t.Errorf("sync after changes: %+v, %v", rep, err)
		}
		f, err := dst.RunFacts(ctx, late)
		if err != nil || f.Review != "approved" || f.Reviewer != "lead" || f.ReviewFailureClass != telemetry.FailureTestFailure {
			t.Errorf("the target's facts after the late annotation: %+v, %v", f, err)
		}
		sameStores(t, src, dst)
		if rep, err := store.Sync(ctx, src, dst, store.SyncOptions{}); err != nil || rep.Unchanged != 50 {
			t.Errorf("sync after the update: %+v, %v", rep, err)
		}
	})
}

// Two machines with one run id: the first copy wins. The same trace from
// a second source is merged (its annotation appended after the target's
// own); another trace is a conflict, reported each time, never copied.
func TestSyncConflicts(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		ctx := context.Background()
		dst := newStore(t)
		one, two := open(t, t.TempDir()), open(t, t.TempDir())
		shared := richTrace("20260301-120000-shared", base)
		for _, s := range []*store.Store{one, two} {
			if err := s.Save(ctx, shared); err != nil {
				t.Fatal(err)
			}
		}
		if err := one.Save(ctx, runTrace("20260301-130000-clash", base.Add(time.Hour), 0)); err != nil {
			t.Fatal(err)
		}
		if err := two.Save(ctx, runTrace("20260301-130000-clash", base.Add(time.Hour), 1)); err != nil { // another exit code: another trace
			t.Fatal(err)
		}
		if _, err := two.Annotate(ctx, store.Annotation{RunID: shared.RunID, Review: "approved", Reviewer: "bo"}); err != nil {
			t.Fatal(err)
		}
		if rep, err := store.Sync(ctx, one, dst, store.SyncOptions{}); err != nil || rep.Copied != 2 {
			t.Fatalf("first machine: %+v, %v", rep, err)
		}
		if _, err := dst.Annotate(ctx, store.Annotation{RunID: shared.RunID, Review: "rejected", Reviewer: "ana"}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			rep, err := store.Sync(ctx, two, dst, store.SyncOptions{})
			if err != nil || len(rep.Conflicts) != 1 || rep.Conflicts[0].RunID != "20260301-130000-clash" ||
				rep.Conflicts[0].SourceSHA256 == rep.Conflicts[0].TargetSHA256 || rep.Copied != 0 {
				t.Fatalf("second machine: %+v, %v", rep, err)
			}
		}
		_, r, err := dst.Load(ctx, "20260301-130000-clash")
		if err != nil || r.ExitCode != 0 {
			t.Errorf("the conflicting run on the target: exit %d, %v; want the first machine's (0)", r.ExitCode, err)
		}
		anns, _ := dst.Annotations(ctx, shared.RunID)
		if len(anns) != 2 || anns[0].Reviewer != "ana" || anns[1].Reviewer != "bo" || anns[1].Seq != 2 {
			t.Errorf("merged annotations: %+v", anns)
		}
		if f, _ := dst.RunFacts(ctx, shared.RunID); f.Review != "approved" || f.Reviewer != "bo" {
			t.Errorf("facts after the merge: review %q by %q", f.Review, f.Reviewer)
		}
		// A dry run says the same and changes nothing.
		three := open(t, t.TempDir())
		if err := three.Save(ctx, runTrace("20260301-140000-new", base.Add(2*time.Hour), 0)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			rep, err := store.Sync(ctx, three, dst, store.SyncOptions{DryRun: true})
			if err != nil || rep.Copied != 1 || rep.Runs != 1 {
				t.Fatalf("dry run: %+v, %v", rep, err)
			}
		}
		if _, _, err := dst.Load(ctx, "20260301-140000-new"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a dry run copied the run: %v", err)
		}
		if _, err := store.Sync(ctx, one, one, store.SyncOptions{}); err == nil {
			t.Error("a store synced into itself")
		}
	})
}
