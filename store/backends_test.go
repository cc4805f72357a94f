package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// newStoreFunc makes a fresh, empty store of one backend.
type newStoreFunc func(t *testing.T) *store.Store

// eachBackend runs test against each backend: a SQLite directory, and a
// database of the test binary's private PostgreSQL server (privileged:
// that half is skipped without root, and fails under CI=true). The tests
// that define the store's API run through it, so both backends answer
// them alike.
func eachBackend(t *testing.T, test func(t *testing.T, newStore newStoreFunc)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, func(t *testing.T) *store.Store { return open(t, t.TempDir()) })
	})
	t.Run("postgres", func(t *testing.T) {
		test(t, func(t *testing.T) *store.Store { return open(t, store.NewTestDatabase(t)) })
	})
}

// Text PostgreSQL's TEXT refuses (NUL, invalid UTF-8) in what a store is
// given — a label, an annotation's note, a collector's reply in an export
// error — is stored all the same: each such byte as 0x1A on PostgreSQL,
// as given on SQLite; the facts read back whole.
func TestOddText(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		ctx := context.Background()
		s := newStore(t)
		id := "20260301-120000-oddtxt"
		if err := s.Save(ctx, runTrace(id, base, 0, attribute.String(telemetry.LabelPrefix+"team", "a\x00b"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Annotate(ctx, store.Annotation{RunID: id, Review: "approved", Reviewer: "r\xffx", Note: "n\x00\xfe"}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkExported(ctx, id, errors.New("collector said \x00\xff")); err != nil {
			t.Fatal(err)
		}
		want := map[bool][2]string{false: {"a\x00b", "r\xffx"}, true: {"a\x1ab", "r\x1ax"}}[s.IsPostgres()]
		list, err := s.Facts(ctx, store.FactsFilter{})
		if err != nil || len(list) != 1 {
			t.Fatalf("Facts: %v, %v", list, err)
		}
		one, err := s.RunFacts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(list[0], one) {
			t.Errorf("packed and column facts differ:\n%+v\n%+v", list[0], one)
		}
		if one.Team != want[0] || one.Reviewer != want[1] {
			t.Errorf("team %q reviewer %q, want %q", one.Team, one.Reviewer, want)
		}
	})
}
