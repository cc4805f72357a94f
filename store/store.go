// Package store is the run store: every run's trace is kept here,
// whether or not a collector received it, so `runs`, `show` and `export`
// work with no collector at all. It stores what it is given; it never
// redacts. A store is a directory (the embedded SQLite database, pure Go,
// below) or a PostgreSQL URL (postgres.go: the fleet's store, same schema,
// same API).
//
// One file, runs.db, in WAL mode so that `agentwatch runs` can read while
// a run is being saved, with a busy timeout so that two agentwatch processes
// saving at once wait for each other instead of failing. The trace itself is
// kept as the proto-marshalled OTLP ExportTraceServiceRequest (otlp.Request),
// the same bytes `agentwatch export` sends later; the summary columns exist
// so that listing runs never decodes a trace.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// FileName is the database file inside the store directory.
const FileName = "runs.db"

// ErrNotWritable is wrapped by Open's error for a store directory that
// cannot take a write now (full disk, read-only mount): OpenReadOnly
// still reads it.
var ErrNotWritable = errors.New("store directory not writable")

// ErrNotFound is returned (wrapped) by Load and MarkExported for an id that
// matches no run.
var ErrNotFound = errors.New("no such run")

// Run summarises one stored run.
type Run struct {
	ID          string
	TraceID     string
	Start       time.Time
	End         time.Time
	Command     string
	Agent       string
	ExitCode    int // -1 when the root span has no process.exit.code
	Spans       int
	Exported    bool   // an OTLP collector acknowledged the trace
	ExportError string // last export failure, empty when none
	// Model spend from the root (agentwatch.cost.usd, gen_ai.usage.*);
	// HasCost / HasTokens false when the run recorded none.
	CostUSD                   float64
	HasCost                   bool
	InputTokens, OutputTokens int64
	HasTokens                 bool
	// Status is complete or interrupted; StatusReason says why a run is
	// interrupted (e.g. "supervisor killed — recovered from journal").
	Status       Status
	StatusReason string

	rowid int64 // set when read past damage (repair.go)
}

// Store is an open run store. It is safe for concurrent use, and several
// processes may open the same directory (or PostgreSQL database).
type Store struct {
	db       conn // rebinds placeholders for d
	d        *dialect
	path     string // the database file, or the URL without its password
	readOnly bool   // OpenReadOnly
	pg       *pgServer
	fresh    bool   // OpenReadOnly of a PostgreSQL database without the schema: nothing stored yet
	key      string // Key: the name sync_state gives this store
}

// DefaultDir is $XDG_STATE_HOME/agentwatch, or ~/.local/state/agentwatch.
// Under sudo, HOME is root's, so runs started with sudo land in root's
// store; `sudo agentwatch runs` (or --store) finds them. Without any home
// directory it is agentwatch-<uid> under the temporary directory.
func DefaultDir() string {
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "agentwatch")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "state", "agentwatch")
	}
	return filepath.Join(os.TempDir(), "agentwatch-"+strconv.Itoa(os.Getuid()))
}

// migrations are applied in order; schema_version holds how many ran. Later
// issues append, never edit. pgMigrations (postgres.go) is the same list
// for PostgreSQL: a migration appended here is appended there too
// (TestSchemasMatch fails otherwise).
var migrations = []string{
	`CREATE TABLE runs (
		id           TEXT PRIMARY KEY,
		trace_id     TEXT NOT NULL,
		start_ns     INTEGER NOT NULL,
		end_ns       INTEGER NOT NULL,
		command      TEXT NOT NULL,
		agent        TEXT NOT NULL,
		exit_code    INTEGER,
		span_count   INTEGER NOT NULL,
		exported     INTEGER NOT NULL DEFAULT 0,
		export_error TEXT NOT NULL DEFAULT '',
		created_ns   INTEGER NOT NULL,
		trace        BLOB NOT NULL
	);
	CREATE INDEX runs_start ON runs(start_ns DESC);
	CREATE INDEX runs_trace_id ON runs(trace_id);`,
	// 2: artifacts — content too large or too sensitive for the trace
	// (the final diff), kept with the run in the user's own store.
	`CREATE TABLE artifacts (
		run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		name       TEXT NOT NULL,
		sha256     TEXT NOT NULL,
		size       INTEGER NOT NULL,
		created_ns INTEGER NOT NULL,
		content    BLOB NOT NULL,
		PRIMARY KEY (run_id, name)
	);`,
	// 3: annotations — reviewer decisions recorded after the run
	// (`agentwatch annotate`), several per run, in order (annotations.go).
	`CREATE TABLE annotations (
		run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		seq           INTEGER NOT NULL,
		created_ns    INTEGER NOT NULL,
		review        TEXT NOT NULL,
		reviewer      TEXT NOT NULL,
		failure_class TEXT NOT NULL DEFAULT '',
		pr_url        TEXT NOT NULL DEFAULT '',
		ci_run_url    TEXT NOT NULL DEFAULT '',
		note          TEXT NOT NULL DEFAULT '',
		exported      INTEGER NOT NULL DEFAULT 0,
		export_error  TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (run_id, seq)
	);`,
	// 4: model spend per run, from the root's totals (NULL: no model
	// call was priced; no row: the run predates the proxy). A table of its
	// own rather than new columns of runs: CREATE … IF NOT EXISTS is safe
	// to apply again, ALTER TABLE ADD COLUMN is not.
	`CREATE TABLE IF NOT EXISTS run_costs (
		run_id        TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		cost_usd      REAL,
		input_tokens  INTEGER,
		output_tokens INTEGER
	);`,
	// 5: how the run was saved: complete (the supervisor finished it) or
	// interrupted (rebuilt from its journal after the supervisor died or
	// could not save it), with a reason; existing runs are backfilled as
	// complete. A table of its own like run_costs, so that applying it
	// again is harmless.
	`CREATE TABLE IF NOT EXISTS run_status (
		run_id  TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		status  TEXT NOT NULL,
		reason  TEXT NOT NULL DEFAULT ''
	);
	INSERT OR IGNORE INTO run_status (run_id, status) SELECT id, 'complete' FROM runs;`,
	// 6: the facts of each run, the columns the fleet questions read
	// (facts.go, facts_sql.go), and the queue of stored runs whose facts
	// Open computes from their traces (backfillFacts).
	factsSchema,
	// 7: what `agentwatch sync` sent each target (sync.go).
	syncSchema,
}

// Status is how a run was saved.
type Status string

const (
	StatusComplete    Status = "complete"    // saved by the supervisor at the end of the run
	StatusInterrupted Status = "interrupted" // recovered from the run journal (see JournalDir)
	StatusLate        Status = "saved_late"  // ended under agentwatch, saved from the journal later (the store could not take it then)
	StatusUnsaved     Status = "unsaved"     // not in the store: kept in its journal (listed by `runs`, never stored as such)
)

// JournalDir is where the supervisor keeps the journals of runs not yet
// saved in the store at location (a directory or a PostgreSQL URL):
// journal.Pending(JournalDir(location)) lists the unsaved runs
// (supervisor dead, or the store could not take them). A directory keeps
// them in its journal subdirectory; a URL's journal is local, in
// DefaultDir()/journal-<the first 12 hex digits of the sha256 of Key(url)>,
// so a run survives the server it could not reach.
func JournalDir(location string) string {
	if IsURL(location) {
		sum := sha256.Sum256([]byte(Key(location)))
		return filepath.Join(DefaultDir(), "journal-"+hex.EncodeToString(sum[:6]))
	}
	return filepath.Join(location, "journal")
}

// Open opens (creating when needed) the store at location: a postgres://
// or postgresql:// URL opens that PostgreSQL database (postgres.go),
// anything else is a directory. It fails at once when the store cannot
// take a write (a directory that is not writable; a server that cannot be
// reached, refuses the credentials or lacks the database), so a run never
// starts that could not be kept.
func Open(location string) (*Store, error) {
	if IsURL(location) {
		return openPostgres(location, true)
	}
	dir := location
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	// Probe with a real file: root passes every permission check, but not
	// a read-only mount or a full disk, and SQLite would only notice at the
	// first write.
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotWritable, err)
	}
	_, werr := probe.Write([]byte("x"))
	probe.Close()
	os.Remove(probe.Name())
	if werr != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotWritable, werr)
	}

	path := filepath.Join(dir, FileName)
	if err := privateFiles(dir, path); err != nil {
		return nil, err
	}
	// _txlock=immediate: every transaction takes the write lock at BEGIN,
	// so two processes never both read-then-upgrade and deadlock (SQLite
	// would answer SQLITE_BUSY at once, ignoring the busy timeout).
	// A URI filename: %, ? and # in the path must be escaped or SQLite
	// would read them as escapes, the query or a fragment.
	uriPath := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + uriPath + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s := &Store{db: conn{db, sqliteDialect}, d: sqliteDialect, path: path, key: dirKey(dir)}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		if c := s.corrupt(err); c != err {
			return nil, c
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// A store from before the facts tables gains them here, from its
	// traces. Never a reason to refuse the store: what is not done now
	// stays queued for the next open, and RunFacts computes a queued
	// run's facts when asked.
	_ = s.backfillFacts(context.Background(), openBackfill)
	return s, nil
}

// dirKey is a store directory's Key: its absolute path.
func dirKey(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// privateFiles makes the store directory 0700 and the database 0600
// before SQLite opens it: SQLite creates runs.db-wal and -shm with the
// database file's mode, so they are private too.
func privateFiles(dir, path string) error {
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("making store directory %s private: %w", dir, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("making %s private: %w", p, err)
			}
		}
	}
	return nil
}

// migrate applies the migrations the store lacks, in one transaction.
// On PostgreSQL it first takes a transaction-scoped advisory lock, so
// that runners opening a fresh database at once migrate it one after the
// other (the others then find it done); SQLite's BEGIN IMMEDIATE is that
// lock already.
func (s *Store) migrate(ctx context.Context) error {
	list := migrations
	if s.d == pgDialect {
		list = pgMigrations
		// Up to date (the common case): no lock taken.
		var v int
		if s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v) == nil && v == len(list) {
			return nil
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting migration: %w", err)
	}
	defer tx.Rollback()
	if s.d == pgDialect {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLock); err != nil {
			return fmt.Errorf("locking the schema for migration: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_version: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("initialising schema_version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading schema version: %w", err)
	}
	if version > len(list) {
		return fmt.Errorf("store schema version %d is newer than this agentwatch understands (%d): upgrade agentwatch", version, len(list))
	}
	for i := version; i < len(list); i++ {
		if _, err := tx.ExecContext(ctx, list[i]); err != nil {
			return fmt.Errorf("applying migration %d: %w", i+1, err)
		}
	}
	if version < len(list) {
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(list)); err != nil {
			return fmt.Errorf("recording schema version: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing migration: %w", err)
	}
	return nil
}

// Path is the database file, or the PostgreSQL URL without its password.
func (s *Store) Path() string { return s.path }

// IsPostgres reports whether the store is a PostgreSQL database.
func (s *Store) IsPostgres() bool { return s.d == pgDialect }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Summarize computes the stored summary of a trace from its root span:
// run id, trace id, start and end, command line, agent name, exit code and
// span count. The export columns are left zero.
func Summarize(tr *telemetry.Trace) (Run, error) {
	root := tr.Root()
	if root == nil {
		return Run{}, errors.New("trace has no root span")
	}
	r := Run{
		ID:       tr.RunID,
		TraceID:  root.TraceID.String(),
		Start:    root.Start,
		End:      root.End,
		ExitCode: -1,
		Spans:    len(tr.Spans),
	}
	if v, ok := root.Attr(telemetry.RunID); ok && r.ID == "" {
		r.ID = v.AsString()
	}
	if r.ID == "" {
		return Run{}, errors.New("trace has no run id")
	}
	r.Command = root.CommandLine()
	if v, ok := root.Attr(telemetry.GenAIAgentName); ok {
		r.Agent = v.AsString()
	}
	if v, ok := root.Attr(telemetry.ProcessExitCode); ok {
		r.ExitCode = int(v.AsInt64())
	}
	if v, ok := root.Attr(telemetry.CostUSD); ok {
		r.CostUSD, r.HasCost = v.AsFloat64(), true
	}
	in, okIn := root.Attr(telemetry.GenAIUsageInputTokens)
	out, okOut := root.Attr(telemetry.GenAIUsageOutputTokens)
	if okIn && okOut {
		r.InputTokens, r.OutputTokens, r.HasTokens = in.AsInt64(), out.AsInt64(), true
	}
	return r, nil
}

// Save stores a finished run's trace, summary and trace in one
// transaction. Saving a run id again replaces it and clears its export
// state: the trace that was exported is no longer the one stored.
func (s *Store) Save(ctx context.Context, tr *telemetry.Trace) error {
	return s.SaveRequest(ctx, tr, otlp.Request(tr))
}

// SaveRequest is Save for a caller that already converted tr to OTLP (the
// supervisor also writes and uploads it): a large run is converted once.
func (s *Store) SaveRequest(ctx context.Context, tr *telemetry.Trace, req *coltracepb.ExportTraceServiceRequest) error {
	_, err := s.save(ctx, tr, req, StatusComplete, "")
	return err
}

// SaveRecovered stores a run rebuilt from its journal as interrupted,
// with reason. It never replaces a run already stored (the supervisor
// saved it before its journal was removed): saved is false then.
func (s *Store) SaveRecovered(ctx context.Context, tr *telemetry.Trace, req *coltracepb.ExportTraceServiceRequest, reason string) (saved bool, err error) {
	return s.save(ctx, tr, req, StatusInterrupted, reason)
}

// SaveLate stores a run that ended under agentwatch but that the store
// could not take then (full disk, corrupt store), from its journal. Like
// SaveRecovered it never replaces a stored run.
func (s *Store) SaveLate(ctx context.Context, tr *telemetry.Trace, req *coltracepb.ExportTraceServiceRequest, reason string) (saved bool, err error) {
	return s.save(ctx, tr, req, StatusLate, reason)
}

func (s *Store) save(ctx context.Context, tr *telemetry.Trace, req *coltracepb.ExportTraceServiceRequest, status Status, reason string) (bool, error) {
	saved, err := s.saveTx(ctx, tr, req, status, reason)
	err = s.corrupt(err)
	if errors.Is(err, ErrServer) && ctx.Err() == nil {
		// The connection the pool gave was dead (the server restarted
		// since it was opened, hours ago at the start of the run): once
		// more, over a new one. Saving is idempotent, even when the lost
		// reply was to a COMMIT that went through.
		saved, err = s.saveTx(ctx, tr, req, status, reason)
		err = s.corrupt(err)
	}
	return saved, err
}

func (s *Store) saveTx(ctx context.Context, tr *telemetry.Trace, req *coltracepb.ExportTraceServiceRequest, status Status, reason string) (bool, error) {
	r, err := Summarize(tr)
	if err != nil {
		return false, fmt.Errorf("saving run: %w", err)
	}
	blob, err := proto.Marshal(req)
	if err != nil {
		return false, fmt.Errorf("saving run %s: encoding trace: %w", r.ID, err)
	}
	facts := traceFacts(tr, status) // before the write lock: it reads the whole trace
	facts.RunID = r.ID
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("saving run %s: %w", r.ID, err)
	}
	defer tx.Rollback()
	conflict := `ON CONFLICT(id) DO UPDATE SET
			trace_id = excluded.trace_id, start_ns = excluded.start_ns, end_ns = excluded.end_ns,
			command = excluded.command, agent = excluded.agent, exit_code = excluded.exit_code,
			span_count = excluded.span_count, exported = 0, export_error = '', trace = excluded.trace`
	if status != StatusComplete {
		conflict = `ON CONFLICT(id) DO NOTHING` // a recovered run never replaces a saved one
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO runs (id, trace_id, start_ns, end_ns, command, agent, exit_code, span_count, exported, export_error, created_ns, trace)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?) `+conflict,
		r.ID, r.TraceID, nanos(r.Start), nanos(r.End), r.Command, r.Agent, nullableExit(r.ExitCode), r.Spans,
		time.Now().UnixNano(), blob)
	if err != nil {
		return false, fmt.Errorf("saving run %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return false, nil
	}
	if err := writeSideRows(ctx, tx, r, status, reason); err != nil {
		return false, fmt.Errorf("saving run %s: %w", r.ID, err)
	}
	// The facts, replaced with the run; a run saved again keeps its
	// annotations, which some facts come from.
	anns, err := annotationsOf(ctx, tx, r.ID)
	if err != nil {
		return false, fmt.Errorf("saving run %s: %w", r.ID, err)
	}
	if err := factsQueries.writeFacts(ctx, tx, facts.finish(anns)); err != nil {
		return false, fmt.Errorf("saving run %s: %w", r.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("saving run %s: %w", r.ID, err)
	}
	return true, nil
}

// writeSideRows writes run r's status and cost rows, replacing earlier
// ones.
func writeSideRows(ctx context.Context, tx execer, r Run, status Status, reason string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO run_status (run_id, status, reason) VALUES (?, ?, ?)
		ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, reason = excluded.reason`, r.ID, string(status), reason)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO run_costs (run_id, cost_usd, input_tokens, output_tokens) VALUES (?, ?, ?, ?)
		ON CONFLICT (run_id) DO UPDATE SET cost_usd = excluded.cost_usd, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens`,
		r.ID, nullable(r.CostUSD, r.HasCost), nullable(r.InputTokens, r.HasTokens), nullable(r.OutputTokens, r.HasTokens))
	return err
}

const summaryColumns = `id, trace_id, start_ns, end_ns, command, agent, exit_code, span_count, exported, export_error, cost_usd, input_tokens, output_tokens, coalesce(run_status.status, 'complete'), coalesce(run_status.reason, '')`

// runsWithCosts is the table summaries are read from.
const runsWithCosts = `runs LEFT JOIN run_costs ON run_costs.run_id = runs.id LEFT JOIN run_status ON run_status.run_id = runs.id`

// List returns the most recent runs first (by start time); limit <= 0
// means all.
func (s *Store) List(ctx context.Context, limit int) ([]Run, error) {
	q := `SELECT ` + summaryColumns + ` FROM ` + runsWithCosts + ` ORDER BY start_ns DESC, ` + s.d.byText("id") + ` DESC`
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		if errors.Is(s.corrupt(err), ErrCorrupt) {
			return s.listIntact(ctx, limit) // repair.go: the runs the damage spared
		}
		return nil, fmt.Errorf("listing runs: %w", s.corrupt(err))
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("listing runs: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		if errors.Is(s.corrupt(err), ErrCorrupt) {
			return s.listIntact(ctx, limit)
		}
		return nil, fmt.Errorf("listing runs: %w", s.corrupt(err))
	}
	return runs, nil
}

// RunsByID returns the summaries of the runs with these exact ids, in the
// order given (an id that matches no run is left out): the rows of
// `runs` for what Facts selected.
func (s *Store) RunsByID(ctx context.Context, ids []string) ([]Run, error) {
	byID := make(map[string]Run, len(ids))
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(len(ids), start+500)]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.db.QueryContext(ctx, `SELECT `+summaryColumns+` FROM `+runsWithCosts+
			` WHERE id IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("listing runs: %w", s.corrupt(err))
		}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("listing runs: %w", err)
			}
			byID[r.ID] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("listing runs: %w", s.corrupt(err))
		}
	}
	out := make([]Run, 0, len(ids))
	for _, id := range ids {
		if r, ok := byID[id]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// Latest names the most recent run wherever a run id is accepted.
const Latest = "latest"

// Load returns a run by id, unique id prefix, full trace id (the id a
// collector's UI shows), or Latest. An ambiguous prefix is an error saying
// how many runs match.
func (s *Store) Load(ctx context.Context, id string) (*telemetry.Trace, Run, error) {
	r, err := s.resolve(ctx, id)
	if err != nil {
		return nil, Run{}, err
	}
	var blob []byte
	if err := s.db.QueryRowContext(ctx, `SELECT trace FROM runs WHERE id = ?`, r.ID).Scan(&blob); err != nil {
		if r.rowid == 0 || s.db.QueryRowContext(ctx, `SELECT trace FROM runs WHERE rowid = ?`, r.rowid).Scan(&blob) != nil {
			return nil, Run{}, fmt.Errorf("reading run %s: %w", r.ID, s.corrupt(err))
		}
	}
	tr, err := decodeTrace(r.ID, blob)
	if err != nil {
		return nil, Run{}, err
	}
	return tr, r, nil
}

// decodeTrace decodes run id's stored trace.
func decodeTrace(id string, blob []byte) (*telemetry.Trace, error) {
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(blob, &req); err != nil {
		return nil, fmt.Errorf("decoding run %s: %w", id, err)
	}
	tr, err := otlp.FromRequest(&req)
	if err != nil {
		return nil, fmt.Errorf("decoding run %s: %w", id, err)
	}
	tr.RunID = id
	return tr, nil
}

func (s *Store) resolve(ctx context.Context, id string) (Run, error) {
	if strings.TrimSpace(id) == "" {
		return Run{}, errors.New("empty run id")
	}
	if id == Latest {
		runs, err := s.List(ctx, 1)
		if err != nil {
			return Run{}, err
		}
		if len(runs) == 0 {
			return Run{}, fmt.Errorf("%w: the store has no runs yet", ErrNotFound)
		}
		return runs[0], nil
	}
	// The prefix is compared with substr, not LIKE, so '%' and '_' in what
	// the user typed are literal.
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+summaryColumns+` FROM `+runsWithCosts+` WHERE substr(id, 1, ?) = ? OR trace_id = ? ORDER BY `+s.d.byText("id")+` LIMIT 2`,
		len(id), id, strings.ToLower(id))
	if err != nil {
		if errors.Is(s.corrupt(err), ErrCorrupt) {
			return s.resolveIntact(ctx, id)
		}
		return Run{}, fmt.Errorf("finding run %s: %w", id, err)
	}
	defer rows.Close()
	var found []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return Run{}, fmt.Errorf("finding run %s: %w", id, err)
		}
		if r.ID == id {
			// An exact id wins over longer ids it prefixes; it sorts
			// before them, so it is always among the first rows.
			return r, nil
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		if errors.Is(s.corrupt(err), ErrCorrupt) {
			return s.resolveIntact(ctx, id)
		}
		return Run{}, fmt.Errorf("finding run %s: %w", id, err)
	}
	switch len(found) {
	case 0:
		return Run{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	case 1:
		return found[0], nil
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE substr(id, 1, ?) = ?`, len(id), id).Scan(&n); err != nil {
		return Run{}, fmt.Errorf("finding run %s: %w", id, err)
	}
	return Run{}, fmt.Errorf("run id prefix %q is ambiguous: %d runs match; give more characters", id, n)
}

// MarkExported records the outcome of an OTLP export of run id (an exact
// id): exportErr nil marks it exported, otherwise not exported with the
// error's text.
func (s *Store) MarkExported(ctx context.Context, id string, exportErr error) error {
	exported, msg := 1, ""
	if exportErr != nil {
		exported, msg = 0, exportErr.Error()
	}
	res, err := s.db.ExecContext(ctx, `UPDATE runs SET exported = ?, export_error = ? WHERE id = ?`, exported, msg, id)
	if err != nil {
		return fmt.Errorf("recording export of run %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("recording export of run %s: %w", id, ErrNotFound)
	}
	return nil
}

// ErrCorrupt is wrapped by the errors of a store whose file is damaged.
var ErrCorrupt = errors.New("store is corrupt")

// corrupt turns SQLite's corruption errors into one line naming the file
// and the way out, and a PostgreSQL server's connection trouble into one
// line naming the server (pgServer.explain); other errors pass unchanged.
func (s *Store) corrupt(err error) error {
	if s.pg != nil {
		return s.pg.explain(err)
	}
	var se interface{ Code() int }
	if err == nil || !errors.As(err, &se) {
		return err
	}
	if c := se.Code() & 0xff; c != 11 && c != 26 { // SQLITE_CORRUPT, SQLITE_NOTADB
		return err
	}
	return fmt.Errorf("%w: store %s (%v): `agentwatch store repair` copies the intact runs into a new store and keeps the damaged file beside it; the journal (%s) keeps unsaved runs",
		ErrCorrupt, s.path, err, JournalDir(filepath.Dir(s.path)))
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var (
		r              Run
		startNS, endNS int64
		exit           sql.NullInt64
		exported       int
		cost           sql.NullFloat64
		in, out        sql.NullInt64
	)
	if err := sc.Scan(&r.ID, &r.TraceID, &startNS, &endNS, &r.Command, &r.Agent, &exit, &r.Spans, &exported, &r.ExportError,
		&cost, &in, &out, &r.Status, &r.StatusReason); err != nil {
		return Run{}, err
	}
	r.CostUSD, r.HasCost = cost.Float64, cost.Valid
	r.InputTokens, r.OutputTokens, r.HasTokens = in.Int64, out.Int64, in.Valid && out.Valid
	r.Start, r.End = fromNanos(startNS), fromNanos(endNS)
	r.ExitCode = -1
	if exit.Valid {
		r.ExitCode = int(exit.Int64)
	}
	r.Exported = exported != 0
	return r, nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func nullableExit(code int) any {
	if code < 0 {
		return nil
	}
	return code
}

// nullable is v, or NULL when it is not known.
func nullable[T any](v T, known bool) any {
	if !known {
		return nil
	}
	return v
}
