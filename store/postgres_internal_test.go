package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

type column struct {
	name, typ string
	notNull   bool
}

type schema struct {
	tables  map[string][]column // in declaration order
	keys    map[string][]string // primary key columns, in order
	indexes map[string]string   // index -> table
	version int
}

func sqliteSchema(t *testing.T, s *Store) schema {
	t.Helper()
	sc := schema{tables: map[string][]column{}, keys: map[string][]string{}, indexes: map[string]string{}}
	rows, err := s.db.Query(`SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, tbl string
		if err := rows.Scan(&typ, &name, &tbl); err != nil {
			t.Fatal(err)
		}
		if typ == "table" {
			tables = append(tables, name)
		} else {
			sc.indexes[name] = tbl
		}
	}
	rows.Close()
	for _, tbl := range tables {
		rows, err := s.db.Query(`SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, tbl)
		if err != nil {
			t.Fatal(err)
		}
		pk := map[int]string{}
		for rows.Next() {
			var c column
			var nn, k int
			if err := rows.Scan(&c.name, &c.typ, &nn, &k); err != nil {
				t.Fatal(err)
			}
			// SQLite lets a PRIMARY KEY column be NULL unless declared
			// NOT NULL; PostgreSQL's never is: compare as PostgreSQL.
			c.notNull = nn != 0 || k > 0
			sc.tables[tbl] = append(sc.tables[tbl], c)
			if k > 0 {
				pk[k] = c.name
			}
		}
		rows.Close()
		for k := 1; k <= len(pk); k++ {
			sc.keys[tbl] = append(sc.keys[tbl], pk[k])
		}
	}
	if err := s.db.QueryRow(`SELECT version FROM schema_version`).Scan(&sc.version); err != nil {
		t.Fatal(err)
	}
	return sc
}

func pgSchema(t *testing.T, s *Store) schema {
	t.Helper()
	sc := schema{tables: map[string][]column{}, keys: map[string][]string{}, indexes: map[string]string{}}
	rows, err := s.db.Query(`SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
		WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tbl, nullable string
		var c column
		if err := rows.Scan(&tbl, &c.name, &c.typ, &nullable); err != nil {
			t.Fatal(err)
		}
		c.notNull = nullable == "NO"
		sc.tables[tbl] = append(sc.tables[tbl], c)
	}
	rows.Close()
	rows, err = s.db.Query(`SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc
		JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
		WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema() ORDER BY tc.table_name, kcu.ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		sc.keys[tbl] = append(sc.keys[tbl], col)
	}
	rows.Close()
	rows, err = s.db.Query(`SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var idx, tbl string
		if err := rows.Scan(&idx, &tbl); err != nil {
			t.Fatal(err)
		}
		sc.indexes[idx] = tbl
	}
	rows.Close()
	if err := s.db.QueryRow(`SELECT version FROM schema_version`).Scan(&sc.version); err != nil {
		t.Fatal(err)
	}
	return sc
}

// pgTypes are the PostgreSQL types a SQLite declared type may become.
var pgTypes = map[string][]string{
	"TEXT":             {"text"},
	"INTEGER":          {"integer", "bigint"},
	"BIGINT":           {"bigint"},
	"BLOB":             {"bytea"},
	"REAL":             {"double precision"},
	"DOUBLE PRECISION": {"double precision"},
}

// wide reports whether a column holds values that can pass 2^31: times
// in nanoseconds, token counts, byte sizes.
func wide(col string) bool {
	return strings.HasSuffix(col, "_ns") || strings.HasSuffix(col, "_tokens") || col == "size" || col == "trace_size"
}

// The two migration lists reach the same schema: the same tables, with
// the same columns in the same order, NOT NULL alike, the same primary
// keys and indexes, the same version, and types that correspond (BIGINT
// for every time and count that can pass 2^31). A migration appended to
// one list only fails here.
func TestSchemasMatch(t *testing.T) {
	if len(pgMigrations) != len(migrations) {
		t.Fatalf("%d PostgreSQL migrations, %d SQLite ones: append a migration to both lists", len(pgMigrations), len(migrations))
	}
	lite, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := Open(NewTestDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	a, b := sqliteSchema(t, lite), pgSchema(t, pg)
	if a.version != b.version || a.version != len(migrations) {
		t.Errorf("schema versions: SQLite %d, PostgreSQL %d, migrations %d", a.version, b.version, len(migrations))
	}
	names := func(m map[string][]column) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(names(a.tables), names(b.tables)) {
		t.Fatalf("tables: SQLite %v, PostgreSQL %v", names(a.tables), names(b.tables))
	}
	for _, tbl := range names(a.tables) {
		ca, cb := a.tables[tbl], b.tables[tbl]
		if len(ca) != len(cb) {
			t.Errorf("%s: SQLite has %d columns, PostgreSQL %d", tbl, len(ca), len(cb))
			continue
		}
		for i := range ca {
			x, y := ca[i], cb[i]
			if x.name != y.name {
				t.Errorf("%s column %d: SQLite %s, PostgreSQL %s", tbl, i+1, x.name, y.name)
				continue
			}
			if !slices.Contains(pgTypes[strings.ToUpper(x.typ)], y.typ) {
				t.Errorf("%s.%s: SQLite %s, PostgreSQL %s (want one of %v)", tbl, x.name, x.typ, y.typ, pgTypes[strings.ToUpper(x.typ)])
			}
			if wide(x.name) && y.typ != "bigint" {
				t.Errorf("%s.%s is %s on PostgreSQL: want bigint", tbl, x.name, y.typ)
			}
			if x.notNull != y.notNull {
				t.Errorf("%s.%s: NOT NULL %v on SQLite, %v on PostgreSQL", tbl, x.name, x.notNull, y.notNull)
			}
		}
		if !slices.Equal(a.keys[tbl], b.keys[tbl]) {
			t.Errorf("%s primary key: SQLite %v, PostgreSQL %v", tbl, a.keys[tbl], b.keys[tbl])
		}
	}
	if fmt.Sprint(a.indexes) != fmt.Sprint(b.indexes) {
		t.Errorf("indexes: SQLite %v, PostgreSQL %v", a.indexes, b.indexes)
	}
}

func TestDollarPlaceholders(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:              `SELECT 1`,
		`a = ? AND b IN (?, ?)`: `a = $1 AND b IN ($2, $3)`,
		`x = '?' OR "col?" = ? OR y = 'it''s ?' AND ?`: `x = '?' OR "col?" = $1 OR y = 'it''s ?' AND $2`,
		`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`:  `VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
	} {
		if got := dollarPlaceholders(in); got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://agentwatch:s3cret@db:5432/agentwatch?sslmode=require": "postgres://agentwatch@db:5432/agentwatch?sslmode=require",
		"postgresql://u@db/fleet":                             "postgresql://u@db/fleet",
		"postgres://db/fleet?password=s3cret&sslmode=disable": "postgres://db/fleet?sslmode=disable",
		"postgres://u:p%40ss@db/fleet?sslpassword=s3cret":     "postgres://u@db/fleet",
		"postgres://u:s3cret@db:bad-port/fleet%zz":            "postgres://u@db:bad-port/fleet%zz",
		"/var/lib/agentwatch":                                 "/var/lib/agentwatch",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%s) = %s, want %s", in, got, want)
		}
		if strings.Contains(Redact(in), "s3cret") || strings.Contains(Redact(in), "p%40ss") {
			t.Errorf("Redact(%s) keeps the password: %s", in, Redact(in))
		}
	}
	if k := Key("PostgreSQL://u:pw@db/fleet"); k != "postgres://u@db/fleet" {
		t.Errorf("Key = %s", k)
	}
	if !IsURL("postgres://x") || !IsURL("POSTGRESQL://x") || IsURL("/srv/postgres://x") || IsURL("pg") {
		t.Error("IsURL")
	}
	// A URL's journal is local, one per database, whatever the password.
	t.Setenv("XDG_STATE_HOME", "/state")
	j1, j2, j3 := JournalDir("postgres://u:one@db/fleet"), JournalDir("postgresql://u:two@db/fleet"), JournalDir("postgres://u@db/other")
	if j1 != j2 || j1 == j3 || filepath.Dir(j1) != "/state/agentwatch" || !strings.HasPrefix(filepath.Base(j1), "journal-") || len(filepath.Base(j1)) != len("journal-")+12 {
		t.Errorf("journal dirs %s %s %s", j1, j2, j3)
	}
	if JournalDir("/srv/store") != "/srv/store/journal" {
		t.Errorf("a directory's journal: %s", JournalDir("/srv/store"))
	}
}

// An unreachable server, refused credentials and a missing database each
// fail Open with one line naming the server and the cause, never the
// password.
func TestPostgresOpenFaults(t *testing.T) {
	pg := SharedPostgres(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	const pw = "s3cr3t-Passw0rd"
	for _, tc := range []struct {
		name, dsn, host, cause string
	}{
		{"unreachable", fmt.Sprintf("postgres://agentwatch:%s@127.0.0.1:%d/agentwatch?sslmode=disable", pw, closed),
			fmt.Sprintf("127.0.0.1:%d", closed), "connection refused"},
		{"unknown role", fmt.Sprintf("postgres://intruder:%s@127.0.0.1:%d/agentwatch?sslmode=disable", pw, pg.Port),
			fmt.Sprintf("127.0.0.1:%d", pg.Port), `role "intruder" does not exist (SQLSTATE 28000)`},
		{"missing database", fmt.Sprintf("postgres://agentwatch:%s@127.0.0.1:%d/nosuchdb?sslmode=disable", pw, pg.Port),
			fmt.Sprintf("127.0.0.1:%d", pg.Port), `database "nosuchdb" does not exist (SQLSTATE 3D000)`},
		{"password parameter", fmt.Sprintf("postgres://agentwatch@127.0.0.1:%d/nosuchdb?sslmode=disable&password=%s", pg.Port, pw),
			fmt.Sprintf("127.0.0.1:%d", pg.Port), `database "nosuchdb" does not exist`},
		{"no such host", fmt.Sprintf("postgres://agentwatch:%s@no-such-host.invalid/agentwatch?connect_timeout=5", pw),
			"no-such-host.invalid:5432", "cannot resolve host"},
		{"malformed", fmt.Sprintf("postgres://agentwatch:%s@127.0.0.1:notaport/agentwatch", pw), "", "store URL postgres://agentwatch@127.0.0.1:notaport/agentwatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, pw) {
				t.Errorf("the error shows the password: %s", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("more than one line: %q", msg)
			}
			if tc.host != "" && !strings.Contains(msg, "PostgreSQL server "+tc.host+": ") {
				t.Errorf("%q does not name the server %s", msg, tc.host)
			}
			if !strings.Contains(msg, tc.cause) {
				t.Errorf("%q does not say %q", msg, tc.cause)
			}
		})
	}
}

// Four writers, each with a store of its own, save 25 runs each into one
// fresh database while two more open it: all race the migrations; none
// fails, and the database holds the 100 runs once each.
func TestPostgresConcurrentWriters(t *testing.T) {
	dsn := NewTestDatabase(t)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	t0 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for w := range 4 {
		wg.Go(func() {
			<-start
			s, err := Open(dsn)
			if err != nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
				return
			}
			defer s.Close()
			for i := range 25 {
				id := fmt.Sprintf("w%d-%03d", w, i)
				tr := &telemetry.Trace{RunID: id, Spans: []telemetry.Span{{TraceID: trace.TraceID{byte(w), byte(i)}, SpanID: trace.SpanID{1},
					Name: telemetry.SpanAgentRun, Start: t0.Add(time.Duration(w*100+i) * time.Second), End: t0.Add(time.Duration(w*100+i+1) * time.Second),
					Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.RunID.String(id),
						attribute.String(telemetry.LabelPrefix+"team", fmt.Sprint("team-", w))}}}}
				if err := s.Save(context.Background(), tr); err != nil {
					errs <- fmt.Errorf("writer %d run %d: %w", w, i, err)
					return
				}
			}
		})
	}
	for o := range 2 {
		wg.Go(func() {
			<-start
			s, err := Open(dsn)
			if err != nil {
				errs <- fmt.Errorf("opener %d: %w", o, err)
				return
			}
			s.Close()
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.List(context.Background(), 0)
	if err != nil || len(runs) != 100 {
		t.Fatalf("%d runs, %v; want 100", len(runs), err)
	}
	facts, err := s.Facts(context.Background(), FactsFilter{Team: "team-2"})
	if err != nil || len(facts) != 25 {
		t.Errorf("team-2: %d runs' facts, %v; want 25", len(facts), err)
	}
	var v, rows int
	if err := s.db.QueryRow(`SELECT max(version), count(*) FROM schema_version`).Scan(&v, &rows); err != nil || v != len(pgMigrations) || rows != 1 {
		t.Errorf("schema_version: %d in %d rows (%v)", v, rows, err)
	}
}

// The backfill works on PostgreSQL too: runs queued without facts (as a
// store upgraded in place would have them) gain them on the next Open.
func TestPostgresBackfill(t *testing.T) {
	ctx := context.Background()
	dsn := NewTestDatabase(t)
	s, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	var want []Facts
	for i := range 70 { // more than a batch
		id := fmt.Sprintf("old-%03d", i)
		tr := &telemetry.Trace{RunID: id, Spans: []telemetry.Span{{TraceID: trace.TraceID{byte(i)}, SpanID: trace.SpanID{1},
			Name: telemetry.SpanAgentRun, Start: t0.Add(time.Duration(i) * time.Minute), End: t0.Add(time.Duration(i)*time.Minute + time.Second),
			Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.RunID.String(id),
				attribute.String(telemetry.LabelPrefix+"team", fmt.Sprint("team-", i%3))}}}}
		if err := s.Save(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if want, err = s.Facts(ctx, FactsFilter{}); err != nil || len(want) != 70 {
		t.Fatalf("Facts: %d, %v", len(want), err)
	}
	if _, err := s.db.Exec(`DELETE FROM run_alerts; DELETE FROM run_changes; DELETE FROM run_missing; DELETE FROM run_labels; DELETE FROM run_facts;
		INSERT INTO run_facts_pending (run_id) SELECT id FROM runs`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dsn); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Facts(ctx, FactsFilter{})
	if err != nil || len(got) != 70 {
		t.Fatalf("after backfill: %d, %v", len(got), err)
	}
	for i := range got {
		if d := factsDiff(got[i], want[i]); d != "" {
			t.Errorf("%s: %s", got[i].RunID, d)
		}
	}
	var queued int
	if err := s.db.QueryRow(`SELECT count(*) FROM run_facts_pending`).Scan(&queued); err != nil || queued != 0 {
		t.Errorf("%d still queued (%v)", queued, err)
	}
}

// A server that goes away under an open store: saving fails with one
// line naming the server (the supervisor then keeps the run in its
// journal), never the password; once the server is back the same store
// saves again.
func TestPostgresServerGoesAway(t *testing.T) {
	pg := privtest.StartPostgres(t)
	const pw = "hunter2-hunter2"
	dsn := strings.Replace(pg.DSN, "agentwatch@", "agentwatch:"+pw+"@", 1)
	s, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	mk := func(id string) *telemetry.Trace {
		return &telemetry.Trace{RunID: id, Spans: []telemetry.Span{{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1},
			Name: telemetry.SpanAgentRun, Start: t0, End: t0.Add(time.Second),
			Attrs: []attribute.KeyValue{telemetry.SpanType.String(telemetry.SpanAgentRun), telemetry.RunID.String(id)}}}}
	}
	if err := s.Save(ctx, mk("before")); err != nil {
		t.Fatal(err)
	}
	// Restarted between two saves (the pool's connection is dead): the
	// next save goes through all the same.
	pg.Stop()
	pg.Start(t)
	if err := s.Save(ctx, mk("restart")); err != nil {
		t.Fatalf("saving after a restart: %v", err)
	}
	pg.Kill()
	for _, op := range []struct {
		name string
		f    func() error
	}{
		{"save", func() error { return s.Save(ctx, mk("during")) }},
		{"list", func() error { _, err := s.List(ctx, 0); return err }},
		{"facts", func() error { _, err := s.Facts(ctx, FactsFilter{}); return err }},
	} {
		err := op.f()
		if err == nil {
			t.Fatalf("%s with the server gone succeeded", op.name)
		}
		msg := err.Error()
		t.Logf("%s: %s", op.name, msg)
		if !errors.Is(err, ErrServer) || !strings.Contains(msg, fmt.Sprintf("PostgreSQL server 127.0.0.1:%d: ", pg.Port)) ||
			strings.Contains(msg, "\n") || strings.Contains(msg, pw) {
			t.Errorf("%s: %q: want one line naming the server, without the password", op.name, msg)
		}
	}
	pg.Start(t)
	if err := s.Save(ctx, mk("after")); err != nil {
		t.Fatalf("saving once the server is back: %v", err)
	}
	if runs, err := s.List(ctx, 0); err != nil || len(runs) != 3 {
		t.Errorf("%d runs, %v; want before, restart and after", len(runs), err)
	}
}

// A role the server asks for a password: the right one opens the store,
// a wrong one fails in one line saying so, and neither shows up.
func TestPostgresPassword(t *testing.T) {
	pg := SharedPostgres(t)
	const right, wrong = "right-horse-battery", "wrong-staple-42"
	name := fmt.Sprintf("vault%d", time.Now().UnixNano()%1000000)
	dsn := pg.AddPasswordUser(t, name, right)
	with := func(pw string) string { return strings.Replace(dsn, name+"@", name+":"+pw+"@", 1) }
	s, err := Open(with(right))
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	if strings.Contains(s.Path(), right) || s.Key() != dsn {
		t.Errorf("path %s, key %s: want the URL without the password", s.Path(), s.Key())
	}
	s.Close()
	_, err = Open(with(wrong))
	t.Log(err)
	want := fmt.Sprintf(`PostgreSQL server 127.0.0.1:%d: password authentication failed for user "%s" (SQLSTATE 28P01)`, pg.Port, name)
	if err == nil || err.Error() != want {
		t.Errorf("a wrong password: %v; want %s", err, want)
	}
	if err != nil && (strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), right)) {
		t.Errorf("the error shows a password: %v", err)
	}
}
