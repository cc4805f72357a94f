package store

// Every SQL text of the facts tables is in this file, written to run on
// SQLite and PostgreSQL alike: TEXT, INTEGER, BIGINT and DOUBLE PRECISION
// columns (SQLite gives DOUBLE PRECISION REAL affinity; PostgreSQL's REAL
// would be single precision), CREATE … IF NOT EXISTS, INSERT … ON CONFLICT
// (…) DO UPDATE / DO NOTHING, EXISTS and IN subqueries, LIMIT. The one
// difference left is the placeholder: the texts use ?, and the store's
// connection rewrites them to $1, $2, … on PostgreSQL (dialect.go).

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// factsSchema is migration 6: the facts tables (one row per run in
// run_facts; alerts, changed paths, missing fields and labels in their own
// tables; the repo, team and failure indexes carry start_ns too, so "the
// newest N of a repository" reads N rows), and the queue of runs whose facts are still to be computed:
// every run already stored, which backfillFacts works through when the
// store is opened. Applying it again (a test rewinding schema_version) is
// harmless: it queues only runs without facts.
//
// Size, measured by TestFactsSize (page_count × page_size of the same
// 10,000 synthetic runs stored without and with their facts; each run with
// 3 labels, 2 alerts, 4 changed paths, 2-6 missing fields, a 60-byte
// command line): about 2.8 KB per run, a third of it the packed column,
// the rest the columns, the child rows and their primary-key indexes.
// On PostgreSQL (BenchmarkFactsPostgres100k, pg_total_relation_size of
// 100,000 such runs): 3.3 KB per run, run_facts 1.6 KB of it.
const factsSchema = `
CREATE TABLE IF NOT EXISTS run_facts (
	run_id               TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
	start_ns             BIGINT NOT NULL,
	end_ns               BIGINT NOT NULL,
	status               TEXT NOT NULL,
	agent                TEXT NOT NULL DEFAULT '',
	command              TEXT NOT NULL DEFAULT '',
	run_user             TEXT NOT NULL DEFAULT '',
	host                 TEXT NOT NULL DEFAULT '',
	exit_code            INTEGER,
	repo                 TEXT NOT NULL DEFAULT '',
	repo_url             TEXT NOT NULL DEFAULT '',
	branch               TEXT NOT NULL DEFAULT '',
	base_sha             TEXT NOT NULL DEFAULT '',
	session_id           TEXT NOT NULL DEFAULT '',
	task                 TEXT NOT NULL DEFAULT '',
	team                 TEXT NOT NULL DEFAULT '',
	org                  TEXT NOT NULL DEFAULT '',
	ci_run_url           TEXT NOT NULL DEFAULT '',
	ci_run_id            TEXT NOT NULL DEFAULT '',
	pr_url               TEXT NOT NULL DEFAULT '',
	environment          TEXT NOT NULL DEFAULT '',
	model                TEXT NOT NULL DEFAULT '',
	provider             TEXT NOT NULL DEFAULT '',
	cost_usd             DOUBLE PRECISION,
	input_tokens         BIGINT,
	output_tokens        BIGINT,
	cache_read_tokens    BIGINT NOT NULL DEFAULT 0,
	cache_write_tokens   BIGINT NOT NULL DEFAULT 0,
	reasoning_tokens     BIGINT NOT NULL DEFAULT 0,
	llm_calls            INTEGER NOT NULL DEFAULT 0,
	llm_calls_unpriced   INTEGER NOT NULL DEFAULT 0,
	retry_calls          INTEGER NOT NULL DEFAULT 0,
	retry_waste_tokens   BIGINT NOT NULL DEFAULT 0,
	retry_waste_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
	retry_commands       INTEGER NOT NULL DEFAULT 0,
	failure_class        TEXT NOT NULL DEFAULT '',
	review_failure_class TEXT NOT NULL DEFAULT '',
	test_runs            INTEGER NOT NULL DEFAULT 0,
	test_runs_passed     INTEGER NOT NULL DEFAULT 0,
	test_runs_failed     INTEGER NOT NULL DEFAULT 0,
	secret_scan          TEXT NOT NULL DEFAULT '',
	secret_findings      INTEGER NOT NULL DEFAULT 0,
	review               TEXT NOT NULL DEFAULT '',
	reviewer             TEXT NOT NULL DEFAULT '',
	changed_code         INTEGER NOT NULL DEFAULT 0,
	changed_tests        INTEGER NOT NULL DEFAULT 0,
	changed_deps         INTEGER NOT NULL DEFAULT 0,
	changed_workflows    INTEGER NOT NULL DEFAULT 0,
	changed_secrets      INTEGER NOT NULL DEFAULT 0,
	changed_config       INTEGER NOT NULL DEFAULT 0,
	changed_docs         INTEGER NOT NULL DEFAULT 0,
	diff_files           INTEGER NOT NULL DEFAULT 0,
	lines_added          INTEGER NOT NULL DEFAULT 0,
	lines_removed        INTEGER NOT NULL DEFAULT 0,
	gaps                 TEXT NOT NULL DEFAULT '',
	span_count           INTEGER NOT NULL DEFAULT 0,
	packed               TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS run_facts_start ON run_facts (start_ns);
CREATE INDEX IF NOT EXISTS run_facts_repo ON run_facts (repo, start_ns);
CREATE INDEX IF NOT EXISTS run_facts_team ON run_facts (team, start_ns);
CREATE INDEX IF NOT EXISTS run_facts_failure ON run_facts (failure_class, start_ns);
CREATE TABLE IF NOT EXISTS run_alerts (
	run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	rule     TEXT NOT NULL,
	severity TEXT NOT NULL DEFAULT '',
	count    INTEGER NOT NULL,
	PRIMARY KEY (run_id, rule)
);
CREATE TABLE IF NOT EXISTS run_changes (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	path   TEXT NOT NULL,
	class  TEXT NOT NULL,
	PRIMARY KEY (run_id, path)
);
CREATE TABLE IF NOT EXISTS run_missing (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	field  TEXT NOT NULL,
	PRIMARY KEY (run_id, field)
);
CREATE TABLE IF NOT EXISTS run_labels (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  TEXT NOT NULL,
	PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS run_facts_pending (
	run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE
);
INSERT INTO run_facts_pending (run_id)
	SELECT id FROM runs WHERE NOT EXISTS (SELECT 1 FROM run_facts WHERE run_facts.run_id = runs.id)
	ON CONFLICT (run_id) DO NOTHING;
`

// factsColumns are run_facts' columns in the order factsValues writes and
// scanFacts reads them; packed (facts_codec.go) is written after them.
var factsColumns = []string{
	"run_id", "start_ns", "end_ns", "status", "agent", "command", "run_user", "host", "exit_code",
	"repo", "repo_url", "branch", "base_sha", "session_id", "task", "team", "org",
	"ci_run_url", "ci_run_id", "pr_url", "environment", "model", "provider",
	"cost_usd", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
	"llm_calls", "llm_calls_unpriced", "retry_calls", "retry_waste_tokens", "retry_waste_usd", "retry_commands",
	"failure_class", "review_failure_class", "test_runs", "test_runs_passed", "test_runs_failed",
	"secret_scan", "secret_findings", "review", "reviewer",
	"changed_code", "changed_tests", "changed_deps", "changed_workflows", "changed_secrets", "changed_config", "changed_docs",
	"diff_files", "lines_added", "lines_removed", "gaps", "span_count",
}

// changedColumn is the run_facts column counting each change class.
var changedColumn = map[string]string{
	ChangeCode: "changed_code", ChangeTests: "changed_tests", ChangeDeps: "changed_deps",
	ChangeWorkflows: "changed_workflows", ChangeSecrets: "changed_secrets", ChangeConfig: "changed_config", ChangeDocs: "changed_docs",
}

// factsSQL holds the texts built from factsColumns once.
type factsSQL struct {
	upsertFacts string
	selectFacts string // SELECT columns FROM run_facts (WHERE … is added)
}

var factsQueries = newFactsSQL()

func newFactsSQL() *factsSQL {
	cols := append(slices.Clone(factsColumns), "packed")
	set := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		set = append(set, c+" = excluded."+c)
	}
	return &factsSQL{
		upsertFacts: `INSERT INTO run_facts (` + strings.Join(cols, ", ") + `) VALUES (` +
			strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `)
			ON CONFLICT (run_id) DO UPDATE SET ` + strings.Join(set, ", "),
		selectFacts: `SELECT ` + strings.Join(factsColumns, ", ") + ` FROM run_facts`,
	}
}

// factsChildren are the child tables, each written as multi-row inserts.
var factsChildren = []struct{ table, columns string }{
	{"run_alerts", "run_id, rule, severity, count"},
	{"run_changes", "run_id, path, class"},
	{"run_missing", "run_id, field"},
	{"run_labels", "run_id, key, value"},
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// writeFacts replaces the facts of f.RunID, in the caller's transaction.
func (d *factsSQL) writeFacts(ctx context.Context, tx execer, f Facts) error {
	if _, err := tx.ExecContext(ctx, d.upsertFacts, append(factsValues(f), packFacts(f))...); err != nil {
		return fmt.Errorf("saving facts: %w", err)
	}
	rows := [][][]any{nil, nil, nil, nil}
	for _, a := range f.Alerts {
		rows[0] = append(rows[0], []any{f.RunID, a.Rule, a.Severity, a.Count})
	}
	for _, c := range f.ChangedPaths {
		rows[1] = append(rows[1], []any{f.RunID, c.Path, c.Class})
	}
	for _, m := range f.Missing {
		rows[2] = append(rows[2], []any{f.RunID, m})
	}
	for _, k := range sortedLabelKeys(f.Labels) {
		rows[3] = append(rows[3], []any{f.RunID, k, f.Labels[k]})
	}
	for i, ch := range factsChildren {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+ch.table+` WHERE run_id = ?`, f.RunID); err != nil {
			return fmt.Errorf("saving facts: %w", err)
		}
		for len(rows[i]) > 0 {
			batch := rows[i][:min(len(rows[i]), 100)]
			rows[i] = rows[i][len(batch):]
			one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(batch[0])), ", ") + ")"
			var args []any
			for _, r := range batch {
				args = append(args, r...)
			}
			q := `INSERT INTO ` + ch.table + ` (` + ch.columns + `) VALUES ` + strings.TrimSuffix(strings.Repeat(one+", ", len(batch)), ", ") +
				` ON CONFLICT DO NOTHING`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("saving facts: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM run_facts_pending WHERE run_id = ?`, f.RunID); err != nil {
		return fmt.Errorf("saving facts: %w", err)
	}
	return nil
}

func sortedLabelKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func factsValues(f Facts) []any {
	status := string(f.Status)
	if status == "" {
		status = string(StatusComplete)
	}
	return []any{
		f.RunID, nanos(f.Start), nanos(f.End), status, f.Agent, f.Command, f.User, f.Host, nullableExit(f.ExitCode),
		f.Repo, f.RepoURL, f.Branch, f.BaseSHA, f.SessionID, f.Task, f.Team, f.Org,
		f.CIRunURL, f.CIRunID, f.PRURL, f.Environment, f.Model, f.Provider,
		nullable(f.CostUSD, f.HasCost), nullable(f.InputTokens, f.HasTokens), nullable(f.OutputTokens, f.HasTokens),
		f.CacheReadTokens, f.CacheWriteTokens, f.ReasoningTokens,
		f.LLMCalls, f.LLMCallsUnpriced, f.RetryCalls, f.RetryWasteTokens, f.RetryWasteUSD, f.RetryCommands,
		f.FailureClass, f.ReviewFailureClass, f.TestRuns, f.TestRunsPassed, f.TestRunsFailed,
		f.SecretScan, f.SecretFindings, f.Review, f.Reviewer,
		f.ChangedCode, f.ChangedTests, f.ChangedDeps, f.ChangedWorkflows, f.ChangedSecrets, f.ChangedConfig, f.ChangedDocs,
		f.DiffFiles, f.LinesAdded, f.LinesRemoved, strings.Join(f.Gaps, "\n"), f.Spans,
	}
}

// scanFacts reads one row of factsColumns. Integers are scanned as int64
// (database/sql's fast path) and narrowed here.
func scanFacts(sc scanner, f *Facts) error {
	var (
		start, end, exit, in, out           int64
		exitNull, inNull, outNull, costNull bool
		cost                                float64
		status, gaps                        string
		ints                                [22]int64
		nExit, nIn, nOut                    sql.NullInt64
		nCost                               sql.NullFloat64
	)
	err := sc.Scan(&f.RunID, &start, &end, &status, &f.Agent, &f.Command, &f.User, &f.Host, &nExit,
		&f.Repo, &f.RepoURL, &f.Branch, &f.BaseSHA, &f.SessionID, &f.Task, &f.Team, &f.Org,
		&f.CIRunURL, &f.CIRunID, &f.PRURL, &f.Environment, &f.Model, &f.Provider,
		&nCost, &nIn, &nOut, &f.CacheReadTokens, &f.CacheWriteTokens, &f.ReasoningTokens,
		&ints[0], &ints[1], &ints[2], &f.RetryWasteTokens, &f.RetryWasteUSD, &ints[3],
		&f.FailureClass, &f.ReviewFailureClass, &ints[4], &ints[5], &ints[6],
		&f.SecretScan, &ints[7], &f.Review, &f.Reviewer,
		&ints[8], &ints[9], &ints[10], &ints[11], &ints[12], &ints[13], &ints[14],
		&ints[15], &ints[16], &ints[17], &gaps, &ints[18])
	if err != nil {
		return err
	}
	exit, exitNull = nExit.Int64, !nExit.Valid
	in, inNull = nIn.Int64, !nIn.Valid
	out, outNull = nOut.Int64, !nOut.Valid
	cost, costNull = nCost.Float64, !nCost.Valid
	f.Start, f.End, f.Status = fromNanos(start), fromNanos(end), Status(status)
	f.ExitCode = -1
	if !exitNull {
		f.ExitCode = int(exit)
	}
	f.CostUSD, f.HasCost = cost, !costNull
	f.InputTokens, f.OutputTokens, f.HasTokens = in, out, !inNull && !outNull
	f.LLMCalls, f.LLMCallsUnpriced, f.RetryCalls, f.RetryCommands = int(ints[0]), int(ints[1]), int(ints[2]), int(ints[3])
	f.TestRuns, f.TestRunsPassed, f.TestRunsFailed, f.SecretFindings = int(ints[4]), int(ints[5]), int(ints[6]), int(ints[7])
	f.ChangedCode, f.ChangedTests, f.ChangedDeps, f.ChangedWorkflows = int(ints[8]), int(ints[9]), int(ints[10]), int(ints[11])
	f.ChangedSecrets, f.ChangedConfig, f.ChangedDocs = int(ints[12]), int(ints[13]), int(ints[14])
	f.DiffFiles, f.LinesAdded, f.LinesRemoved, f.Spans = int(ints[15]), int(ints[16]), int(ints[17]), int(ints[18])
	if gaps != "" {
		f.Gaps = strings.Split(gaps, "\n")
	}
	return nil
}

// where is the WHERE clause (without the keyword; "" for none) selecting
// the runs of filter f, and its arguments.
func (d *factsSQL) where(f FactsFilter) (string, []any, error) {
	var (
		conds []string
		args  []any
	)
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "start_ns >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds = append(conds, "start_ns < ?")
		args = append(args, f.Until.UnixNano())
	}
	if f.Repo != "" {
		eq("repo", NormalizeRepo(f.Repo))
	}
	eq("team", f.Team)
	eq("org", f.Org)
	eq("agent", f.Agent)
	eq("model", f.Model)
	eq("failure_class", f.Failure)
	if pr := strings.TrimRight(f.PR, "/"); pr != "" { // with or without the trailing slash
		conds = append(conds, "(pr_url = ? OR pr_url = ?)")
		args = append(args, pr, pr+"/")
	}
	eq("session_id", f.Session)
	if f.Changed != "" {
		col, ok := changedColumn[f.Changed]
		if !ok {
			return "", nil, fmt.Errorf("unknown change class %q: want one of %s", f.Changed, strings.Join(ChangeClasses, ", "))
		}
		conds = append(conds, col+" > 0")
	}
	if f.Alert != "" {
		conds = append(conds, "EXISTS (SELECT 1 FROM run_alerts WHERE run_alerts.run_id = run_facts.run_id AND run_alerts.rule = ?)")
		args = append(args, f.Alert)
	}
	if f.Label != "" {
		k, v, ok := strings.Cut(f.Label, "=")
		if !ok || k == "" {
			return "", nil, fmt.Errorf("label %q: want KEY=VALUE", f.Label)
		}
		conds = append(conds, "EXISTS (SELECT 1 FROM run_labels WHERE run_labels.run_id = run_facts.run_id AND run_labels.key = ? AND run_labels.value = ?)")
		args = append(args, k, v)
	}
	return strings.Join(conds, " AND "), args, nil
}

// Facts returns the facts of the runs filter f selects, newest first (by
// start time, then id). The filter is SQL over the columns and child
// tables; the facts themselves are read from each run's packed column
// (facts_codec.go says why) and decoded here, on every core.
//
// Measured (BenchmarkFacts100k, the 2-core VM, other work running):
// all of 100,000 runs in 0.28-0.33 s (0.24-0.27 s WithoutPaths); the 20,000
// of one team in 0.1 s; the newest 100 of a repository since a date in
// 0.5 ms. On PostgreSQL (BenchmarkFactsPostgres100k, a private server on
// the same VM): 0.31 s, 0.12 s and 1.1 ms.
func (s *Store) Facts(ctx context.Context, f FactsFilter) ([]Facts, error) {
	if !s.readOnly {
		_ = s.backfillFacts(ctx) // what Open left (openBackfill); a failure leaves those runs out
	}
	d := factsQueries
	where, args, err := d.where(f)
	if err != nil {
		return nil, err
	}
	q := `SELECT start_ns, run_id, packed FROM run_facts`
	if where != "" {
		q += ` WHERE ` + where
	}
	if f.Limit > 0 {
		// The newest, through the start_ns index. Without a limit the
		// table is read in its own order and sorted here: faster than
		// visiting every row in index order.
		q += ` ORDER BY start_ns DESC, ` + s.d.byText("run_id") + ` DESC LIMIT ` + strconv.Itoa(f.Limit)
	}
	type row struct {
		start      int64
		id, packed string
	}
	var read []row
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading run facts: %w", s.corrupt(err))
	}
	for rows.Next() {
		var (
			r     row
			start any // *any: database/sql's cheapest Scan
		)
		if err := rows.Scan(&start, &r.id, &r.packed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading run facts: %w", s.corrupt(err))
		}
		r.start, _ = start.(int64)
		read = append(read, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading run facts: %w", s.corrupt(err))
	}
	if f.Limit <= 0 {
		slices.SortFunc(read, func(a, b row) int {
			if a.start != b.start {
				return cmp.Compare(b.start, a.start)
			}
			return strings.Compare(b.id, a.id)
		})
	}
	list := make([]Facts, len(read))
	stale := make([]bool, len(read)) // packed by another version, or damaged: read from the columns
	var wg sync.WaitGroup
	workers := max(1, min(runtime.GOMAXPROCS(0), len(read)/1024))
	for w := range workers {
		wg.Go(func() {
			for i := w * len(read) / workers; i < (w+1)*len(read)/workers; i++ {
				if unpackFactsLean(read[i].packed, &list[i], f.WithoutPaths) != nil || list[i].RunID != read[i].id {
					stale[i] = true
				}
				if f.WithoutPaths {
					list[i].ChangedPaths = nil
				}
			}
		})
	}
	wg.Wait()
	for i := range list {
		if !stale[i] {
			continue
		}
		if list[i], err = s.columnFacts(ctx, read[i].id); err != nil {
			return nil, err
		}
		if f.WithoutPaths {
			list[i].ChangedPaths, list[i].Labels = nil, nil
		}
	}
	return list, nil
}

// queryChildren reads a child table's rows (run id first) into lists per
// run.
func queryChildren[T any](ctx context.Context, q querier, query string, args []any, scan func(scanner, *[3]sql.RawBytes) (T, error)) (map[string][]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]T{}
	var raw [3]sql.RawBytes
	for rows.Next() {
		v, err := scan(rows, &raw)
		if err != nil {
			return nil, err
		}
		out[string(raw[0])] = append(out[string(raw[0])], v)
	}
	return out, rows.Err()
}

// RunFacts returns the facts of one run: id is an exact id, a unique
// prefix, a trace id or Latest, as for Load. A run whose facts are not
// computed yet (an old store's backfill was interrupted) has them computed
// from its trace now.
func (s *Store) RunFacts(ctx context.Context, id string) (Facts, error) {
	r, err := s.resolve(ctx, id)
	if err != nil {
		return Facts{}, err
	}
	f, err := s.columnFacts(ctx, r.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return s.computeFacts(ctx, s.db, r)
	}
	return f, err
}

// columnFacts reads the facts of run id (an exact id) from the columns
// and child tables; sql.ErrNoRows (wrapped) when it has none.
func (s *Store) columnFacts(ctx context.Context, id string) (Facts, error) {
	d := factsQueries
	var f Facts
	err := scanFacts(s.db.QueryRowContext(ctx, d.selectFacts+` WHERE run_id = ?`, id), &f)
	if err != nil {
		return Facts{}, fmt.Errorf("reading facts of run %s: %w", id, s.corrupt(err))
	}
	r := Run{ID: id}
	one := []any{r.ID}
	alerts, e1 := queryChildren(ctx, s.db, `SELECT run_id, rule, severity, count FROM run_alerts WHERE run_id = ? ORDER BY `+s.d.byText("rule"), one,
		func(sc scanner, raw *[3]sql.RawBytes) (Alert, error) {
			var a Alert
			var n int64
			err := sc.Scan(&raw[0], &a.Rule, &a.Severity, &n)
			a.Count = int(n)
			return a, err
		})
	changes, e2 := queryChildren(ctx, s.db, `SELECT run_id, path, class FROM run_changes WHERE run_id = ? ORDER BY `+s.d.byText("path"), one,
		func(sc scanner, raw *[3]sql.RawBytes) (Change, error) {
			var c Change
			err := sc.Scan(&raw[0], &c.Path, &c.Class)
			return c, err
		})
	missing, e3 := queryChildren(ctx, s.db, `SELECT run_id, field FROM run_missing WHERE run_id = ?`, one,
		func(sc scanner, raw *[3]sql.RawBytes) (string, error) {
			var m string
			err := sc.Scan(&raw[0], &m)
			return m, err
		})
	labels, e4 := queryChildren(ctx, s.db, `SELECT run_id, key, value FROM run_labels WHERE run_id = ?`, one,
		func(sc scanner, raw *[3]sql.RawBytes) ([2]string, error) {
			var p [2]string
			err := sc.Scan(&raw[0], &p[0], &p[1])
			return p, err
		})
	if err := errors.Join(e1, e2, e3, e4); err != nil {
		return Facts{}, fmt.Errorf("reading facts of run %s: %w", r.ID, s.corrupt(err))
	}
	f.Alerts, f.ChangedPaths = alerts[r.ID], changes[r.ID]
	if m := missing[r.ID]; len(m) > 0 {
		sortMissing(m)
		f.Missing = m
	}
	for _, p := range labels[r.ID] {
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		f.Labels[p[0]] = p[1]
	}
	return f, nil
}

// computeFacts computes the facts of stored run r from its trace and
// annotations (q: the store, or the transaction writing them). A trace
// that cannot be decoded gives the facts the runs table knows, with
// "trace" missing.
func (s *Store) computeFacts(ctx context.Context, q querier, r Run) (Facts, error) {
	anns, err := annotationsOf(ctx, q, r.ID)
	if err != nil {
		return Facts{}, err
	}
	var blob []byte
	if err := q.QueryRowContext(ctx, `SELECT trace FROM runs WHERE id = ?`, r.ID).Scan(&blob); err != nil {
		return Facts{}, fmt.Errorf("reading run %s: %w", r.ID, s.corrupt(err))
	}
	return factsOf(r, blob, anns), nil
}

// factsOf computes the facts of run r from its stored trace and its
// annotations.
func factsOf(r Run, blob []byte, anns []Annotation) Facts {
	tr, err := decodeTrace(r.ID, blob)
	if err != nil {
		return runFacts(r, anns)
	}
	st := r.Status
	if st == "" {
		st = StatusComplete
	}
	return ExtractFacts(tr, st, anns)
}

// refreshFacts recomputes and writes the facts of run id in tx (after an
// annotation).
func (s *Store) refreshFacts(ctx context.Context, tx *tx, id string) error {
	r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+summaryColumns+` FROM `+runsWithCosts+` WHERE id = ?`, id))
	if err != nil {
		return fmt.Errorf("reading run %s: %w", id, err)
	}
	f, err := s.computeFacts(ctx, tx, r)
	if err != nil {
		return err
	}
	return factsQueries.writeFacts(ctx, tx, f)
}

// factsBatch is how many runs the backfill computes per transaction: the
// write lock is let go between batches, so a run being saved meanwhile
// waits for one batch at most.
const factsBatch = 64

// openBackfill bounds the backfill Open does: `agentwatch run` opens the
// store before it starts the agent, which must not wait for a large old
// store's every trace to be decoded; Facts finishes the rest when a
// reader needs them.
var openBackfill = 250 * time.Millisecond

// backfillFacts computes the facts of the runs queued in run_facts_pending
// (every run of a store that predates the facts tables), a batch per
// transaction, so an old store gains its facts on first open. It is
// cheap when nothing is queued (one read, no lock). An error stops it; the
// runs left stay queued for the next open. budget > 0 stops it after that
// long (between batches); 0 works through the whole queue.
func (s *Store) backfillFacts(ctx context.Context, budget ...time.Duration) error {
	var deadline time.Time
	if len(budget) > 0 && budget[0] > 0 {
		deadline = time.Now().Add(budget[0])
	}
	var one string
	err := s.db.QueryRowContext(ctx, `SELECT run_id FROM run_facts_pending LIMIT 1`).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	for {
		n, err := s.backfillBatch(ctx)
		if err != nil || n == 0 {
			return err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return nil
		}
	}
}

func (s *Store) backfillBatch(ctx context.Context) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT run_id FROM run_facts_pending ORDER BY run_id LIMIT ?`+s.d.skipLocked, factsBatch)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, id := range ids {
		r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+summaryColumns+` FROM `+runsWithCosts+` WHERE id = ?`, id))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// gone: nothing to compute
		case err != nil:
			// The summary itself is unreadable (damage): leave the run
			// out rather than fail the batch; `store repair` copies
			// what can be read.
		default:
			f, err := s.computeFacts(ctx, tx, r)
			if err != nil {
				f = runFacts(r, nil)
			}
			if err := factsQueries.writeFacts(ctx, tx, f); err != nil {
				return 0, err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM run_facts_pending WHERE run_id = ?`, id); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// FactsFilter selects runs for Facts; zero values match everything.
type FactsFilter struct {
	Since, Until time.Time // start time in [Since, Until)
	Repo         string    // owner/name, or any URL NormalizeRepo reads
	Team, Org    string
	Agent        string
	Model        string
	Failure      string // agentwatch.failure.class
	Alert        string // a rule that raised at least one alert
	Changed      string // one of ChangeClasses: at least one such file changed
	PR           string // the PR URL (a trailing slash ignored)
	Session      string
	Label        string // key=value
	Limit        int    // at most this many runs (the newest); <= 0: all

	// WithoutPaths leaves ChangedPaths and Labels empty (the per-class
	// counts, Team and Org are still set): a fleet question over many runs
	// rarely needs them, and they are most of what is decoded.
	WithoutPaths bool
}
