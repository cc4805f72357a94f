package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
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

// copySynthetic stores n synthetic runs (a minimal runs row each, a
// one-byte trace) and their facts on PostgreSQL with COPY, the way
// insertSynthetic does on SQLite, and analyzes the tables.
func copySynthetic(t testing.TB, s *Store, n int) {
	t.Helper()
	ctx := context.Background()
	c, err := s.db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var runs, facts, alerts, changes, missing, labels [][]any
	for i := range n {
		f := syntheticFacts(i, t0.Add(time.Duration(i)*time.Minute))
		runs = append(runs, []any{f.RunID, fmt.Sprintf("%032x", i), nanos(f.Start), nanos(f.End), f.Command, f.Agent, f.ExitCode, f.Spans, nanos(f.End), []byte{0}})
		facts = append(facts, append(factsValues(f), packFacts(f)))
		for _, a := range f.Alerts {
			alerts = append(alerts, []any{f.RunID, a.Rule, a.Severity, a.Count})
		}
		for _, ch := range f.ChangedPaths {
			changes = append(changes, []any{f.RunID, ch.Path, ch.Class})
		}
		for _, m := range f.Missing {
			missing = append(missing, []any{f.RunID, m})
		}
		for _, k := range sortedLabelKeys(f.Labels) {
			labels = append(labels, []any{f.RunID, k, f.Labels[k]})
		}
	}
	err = c.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		for _, tb := range []struct {
			name string
			cols []string
			rows [][]any
		}{
			{"runs", []string{"id", "trace_id", "start_ns", "end_ns", "command", "agent", "exit_code", "span_count", "created_ns", "trace"}, runs},
			{"run_facts", append(slices.Clone(factsColumns), "packed"), facts},
			{"run_alerts", []string{"run_id", "rule", "severity", "count"}, alerts},
			{"run_changes", []string{"run_id", "path", "class"}, changes},
			{"run_missing", []string{"run_id", "field"}, missing},
			{"run_labels", []string{"run_id", "key", "value"}, labels},
		} {
			if _, err := pc.CopyFrom(ctx, pgx.Identifier{tb.name}, tb.cols, pgx.CopyFromRows(tb.rows)); err != nil {
				return fmt.Errorf("COPY %s: %w", tb.name, err)
			}
		}
		_, err := pc.Exec(ctx, `VACUUM ANALYZE`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pgBytes is pg_total_relation_size (table, indexes, TOAST) summed over
// tables.
func pgBytes(t testing.TB, s *Store, tables ...string) int64 {
	t.Helper()
	var sum int64
	for _, tb := range tables {
		var n int64
		if err := s.db.QueryRow(`SELECT pg_total_relation_size(?::regclass)`, tb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

var factsTables = []string{"run_facts", "run_alerts", "run_changes", "run_missing", "run_labels", "run_facts_pending"}

// BenchmarkFactsPostgres100k is BenchmarkFacts100k on PostgreSQL: the
// facts of all of 100,000 runs (COPYed in once), and of filtered and
// limited selections; it reports the bytes per run of the facts tables.
func BenchmarkFactsPostgres100k(b *testing.B) {
	const n = 100000
	dsn := NewTestDatabase(b)
	s, err := Open(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	copySynthetic(b, s, n)
	b.Logf("100,000 runs and their facts COPYed in %v", time.Since(start).Round(time.Millisecond))
	facts := pgBytes(b, s, factsTables...)
	all := pgBytes(b, s, append([]string{"runs"}, factsTables...)...)
	b.Logf("bytes per run: facts tables %.0f (run_facts %.0f), with the runs rows (1-byte traces) %.0f",
		float64(facts)/n, float64(pgBytes(b, s, "run_facts"))/n, float64(all)/n)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		f    FactsFilter
		want int
	}{
		{"all", FactsFilter{}, n},
		{"all-without-paths", FactsFilter{WithoutPaths: true}, n},
		{"team", FactsFilter{Team: "payments"}, 20000},
		{"repo-since-limit", FactsFilter{Repo: "acme/api", Since: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Limit: 100}, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				list, err := s.Facts(ctx, bc.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(list) != bc.want {
					b.Fatalf("%d runs, want %d", len(list), bc.want)
				}
			}
		})
	}
	// The whole command as a user runs it over the fleet store: W2.6 asks
	// ≤ 1 s for report over 100,000 runs.
	b.Run("report-cli", func(b *testing.B) {
		bin := filepath.Join(b.TempDir(), "agentwatch")
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/agentwatch").CombinedOutput(); err != nil {
			b.Fatalf("building agentwatch: %v\n%s", err, out)
		}
		for b.Loop() {
			cmd := exec.Command(bin, "report", "--store", dsn, "--since", "", "--json")
			cmd.Env = append(os.Environ(), "AGENTWATCH_STORE=")
			out, err := cmd.Output()
			if err != nil || !bytes.Contains(out, []byte(`"runs": 100000`)) {
				b.Fatalf("report: %v\n%.300s", err, out)
			}
		}
	})
}
