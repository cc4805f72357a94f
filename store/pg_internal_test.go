package store

import (
	"fmt"
	"sync"
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
)

// One private PostgreSQL server for the whole test binary (initdb and a
// start cost seconds): each test takes a database of its own on it
// (NewTestDatabase). TestMain stops it.
var sharedPG struct {
	sync.Mutex
	pg       *privtest.Postgres
	cleanups []func()
	n        int
}

// binaryTB is the first caller's TB, except that cleanups wait for the
// end of the test binary.
type binaryTB struct{ testing.TB }

func (b binaryTB) Cleanup(f func()) { sharedPG.cleanups = append(sharedPG.cleanups, f) }

// SharedPostgres is the test binary's server, started on first use
// (privileged: skipped without root, failed under CI=true).
func SharedPostgres(t testing.TB) *privtest.Postgres {
	t.Helper()
	privtest.Require(t)
	sharedPG.Lock()
	defer sharedPG.Unlock()
	if sharedPG.pg == nil {
		sharedPG.pg = privtest.StartPostgres(binaryTB{t})
	}
	return sharedPG.pg
}

// NewTestDatabase makes a fresh database on the shared server and returns
// its DSN.
func NewTestDatabase(t testing.TB) string {
	t.Helper()
	pg := SharedPostgres(t)
	sharedPG.Lock()
	sharedPG.n++
	name := fmt.Sprintf("t%03d", sharedPG.n)
	sharedPG.Unlock()
	return pg.CreateDatabase(t, name)
}

func stopSharedPostgres() {
	sharedPG.Lock()
	defer sharedPG.Unlock()
	for i := len(sharedPG.cleanups) - 1; i >= 0; i-- {
		sharedPG.cleanups[i]()
	}
	sharedPG.cleanups, sharedPG.pg = nil, nil
}
