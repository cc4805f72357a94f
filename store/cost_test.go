package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// The root's model spend lands in the run's summary: a run with priced
// calls has its cost and tokens, one without has neither (not zero), and
// a store from before the cost columns keeps its runs, costless.
func TestRunCost(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	old := runTrace("20260301-110000-aaaaaa", base, 0)
	if err := s.Save(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Make it a version-3 store: before the cost columns.
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE run_costs; UPDATE schema_version SET version = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	checkRunCost(t, open(t, dir))
}

// Both backends: a run saved without spend has none (not zero).
func TestRunCostBackends(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		s := newStore(t)
		if err := s.Save(context.Background(), runTrace("20260301-110000-aaaaaa", base, 0)); err != nil {
			t.Fatal(err)
		}
		checkRunCost(t, s)
	})
}

// checkRunCost saves two runs with spend into s, which holds run
// 20260301-110000-aaaaaa without any, and checks the three summaries.
func checkRunCost(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	priced := runTrace("20260301-120000-bbbbbb", base.Add(time.Hour), 0,
		telemetry.CostUSD.Float64(0.012345), telemetry.GenAIUsageInputTokens.Int64(4208), telemetry.GenAIUsageOutputTokens.Int64(77))
	tokensOnly := runTrace("20260301-130000-cccccc", base.Add(2*time.Hour), 0,
		telemetry.GenAIUsageInputTokens.Int64(10), telemetry.GenAIUsageOutputTokens.Int64(2))
	for _, tr := range []*telemetry.Trace{priced, tokensOnly} {
		if err := s.Save(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := s.List(ctx, 0)
	if err != nil || len(runs) != 3 {
		t.Fatalf("List: %d runs, %v", len(runs), err)
	}
	want := map[string]store.Run{
		"20260301-130000-cccccc": {InputTokens: 10, OutputTokens: 2, HasTokens: true},
		"20260301-120000-bbbbbb": {CostUSD: 0.012345, HasCost: true, InputTokens: 4208, OutputTokens: 77, HasTokens: true},
		"20260301-110000-aaaaaa": {},
	}
	for _, r := range runs {
		w := want[r.ID]
		if r.CostUSD != w.CostUSD || r.HasCost != w.HasCost || r.InputTokens != w.InputTokens ||
			r.OutputTokens != w.OutputTokens || r.HasTokens != w.HasTokens {
			t.Errorf("%s: cost %v/%v tokens %d/%d/%v, want %+v", r.ID, r.CostUSD, r.HasCost, r.InputTokens, r.OutputTokens, r.HasTokens, w)
		}
	}
	// Load resolves through the same summary.
	if _, r, err := s.Load(ctx, "20260301-12"); err != nil || !r.HasCost || r.CostUSD != 0.012345 {
		t.Errorf("Load: %+v, %v", r, err)
	}
}
