package store_test

import (
	"testing"

	"github.com/agentwatch/agentwatch/store"
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
