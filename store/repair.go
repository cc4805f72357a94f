package store

// Reading a store that cannot take a write (full disk) or whose file is
// damaged (a corrupt page), and repairing it. A damaged store never
// blocks reading the runs the damage spared: List and Load fall back to
// reading run by run (by rowid), skipping what cannot be read, and
// Repair copies every readable run into a new store, keeping the damaged
// file beside it.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/telemetry/otlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OpenReadOnly opens an existing store for reading only: for the reading
// commands when Open fails with ErrNotWritable. Nothing is created or
// migrated; saving fails.
//
// A PostgreSQL URL is connected to without migrating: a database without
// the schema yet reads as empty.
func OpenReadOnly(location string) (*Store, error) {
	if IsURL(location) {
		return openPostgres(location, false)
	}
	dir := location
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	uriPath := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", "file:"+uriPath+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s := &Store{db: conn{db, sqliteDialect}, d: sqliteDialect, path: path, readOnly: true, key: dirKey(dir)}
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		db.Close()
		if c := s.corrupt(err); c != err {
			return nil, c
		}
		return nil, fmt.Errorf("opening %s read-only: %w", path, err)
	}
	if v != len(migrations) {
		db.Close()
		return nil, fmt.Errorf("opening %s read-only: schema version %d, this agentwatch reads %d (open it writable once to migrate)", path, v, len(migrations))
	}
	return s, nil
}

// ReadOnly reports whether the store was opened with OpenReadOnly.
func (s *Store) ReadOnly() bool { return s.readOnly }

// intactRuns reads the runs one rowid at a time, newest rowid first, and
// returns those that could be read and how many rowids could not.
func (s *Store) intactRuns(ctx context.Context) ([]Run, int, error) {
	// The highest rowid: from the table when its last page reads, else
	// from the side tables (one row per run; rowids are never reused, as
	// runs are never deleted) with some slack.
	var max sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(rowid) FROM runs`).Scan(&max); err != nil {
		var n1, n2 int64
		e1 := s.db.QueryRowContext(ctx, `SELECT count(*) FROM run_status`).Scan(&n1)
		e2 := s.db.QueryRowContext(ctx, `SELECT count(*) FROM run_costs`).Scan(&n2)
		if e1 != nil && e2 != nil {
			return nil, 0, fmt.Errorf("listing runs: %w", s.corrupt(err))
		}
		max = sql.NullInt64{Int64: n1 + n2 + 64, Valid: true}
	}
	var runs []Run
	lost := 0
	const one = `SELECT ` + summaryColumns + ` FROM ` + runsWithCosts + ` WHERE runs.rowid = ?`
	const bare = `SELECT id, trace_id, start_ns, end_ns, command, agent, exit_code, span_count, exported, export_error,
		NULL, NULL, NULL, 'complete', '' FROM runs WHERE rowid = ?`
	for id := max.Int64; id >= 1; id-- {
		r, err := scanRun(s.db.QueryRowContext(ctx, one, id))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			// The side tables may be what is damaged: the run itself.
			r, err = scanRun(s.db.QueryRowContext(ctx, bare, id))
		}
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			lost++
			continue
		}
		r.rowid = id
		runs = append(runs, r)
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if !runs[i].Start.Equal(runs[j].Start) {
			return runs[i].Start.After(runs[j].Start)
		}
		return runs[i].ID > runs[j].ID
	})
	return runs, lost, nil
}

func (s *Store) listIntact(ctx context.Context, limit int) ([]Run, error) {
	runs, _, err := s.intactRuns(ctx)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(runs) > limit {
		runs = runs[:limit]
	}
	return runs, nil
}

func (s *Store) resolveIntact(ctx context.Context, id string) (Run, error) {
	runs, _, err := s.intactRuns(ctx)
	if err != nil {
		return Run{}, err
	}
	var found []Run
	for _, r := range runs {
		if r.ID == id {
			return r, nil
		}
		if strings.HasPrefix(r.ID, id) || r.TraceID == strings.ToLower(id) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return Run{}, fmt.Errorf("%w: %q (the store is damaged; `agentwatch store repair` keeps what is readable)", ErrNotFound, id)
	case 1:
		return found[0], nil
	}
	return Run{}, fmt.Errorf("run id prefix %q is ambiguous: %d runs match; give more characters", id, len(found))
}

// RepairReport says what Repair did.
type RepairReport struct {
	Kept  int    // runs copied into the new store
	Lost  int    // runs (rowids) that could not be read
	Aside string // where the damaged file now is
}

// Repair copies every readable run of the store in dir (trace, status,
// cost, artifacts, annotations) into a new store in its place and keeps
// the old file as runs.db.damaged-<time> beside it. The journal
// directory is untouched: its runs are saved by the next command.
func Repair(ctx context.Context, dir string) (RepairReport, error) {
	var rep RepairReport
	if IsURL(dir) {
		return rep, fmt.Errorf("store repair %w: %s is a PostgreSQL database (its server keeps its own pages; ask its administrator)", ErrNotSQLite, Redact(dir))
	}
	path := filepath.Join(dir, FileName)
	old, err := sql.Open("sqlite", "file:"+strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return rep, fmt.Errorf("opening %s: %w", path, err)
	}
	src := &Store{db: conn{old, sqliteDialect}, d: sqliteDialect, path: path}
	runs, lost, err := src.intactRuns(ctx)
	rep.Lost = lost
	if err != nil {
		old.Close()
		return rep, fmt.Errorf("repairing %s: the runs table cannot be read at all: %w", path, err)
	}
	type saved struct {
		run         Run
		req         *coltracepb.ExportTraceServiceRequest
		artifacts   []Artifact
		annotations []Annotation
	}
	var keep []saved
	for _, r := range runs {
		var blob []byte
		if err := old.QueryRowContext(ctx, `SELECT trace FROM runs WHERE rowid = ?`, r.rowid).Scan(&blob); err != nil {
			rep.Lost++
			continue
		}
		var req coltracepb.ExportTraceServiceRequest
		if proto.Unmarshal(blob, &req) != nil {
			rep.Lost++
			continue
		}
		sv := saved{run: r, req: &req}
		list, _ := src.Artifacts(ctx, r.ID)
		for _, a := range list {
			if full, err := src.Artifact(ctx, r.ID, a.Name); err == nil {
				sv.artifacts = append(sv.artifacts, full)
			}
		}
		sv.annotations, _ = src.Annotations(ctx, r.ID)
		keep = append(keep, sv)
	}
	old.Close()

	rep.Aside = path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(path, rep.Aside); err != nil {
		return rep, fmt.Errorf("moving the damaged store aside: %w", err)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + sfx); err == nil {
			_ = os.Rename(path+sfx, rep.Aside+sfx)
		}
	}
	dst, err := Open(dir)
	if err != nil {
		return rep, fmt.Errorf("creating the new store: %w", err)
	}
	defer dst.Close()
	for _, sv := range keep {
		tr, err := otlp.FromRequest(sv.req)
		if err != nil {
			rep.Lost++
			continue
		}
		tr.RunID = sv.run.ID
		status := sv.run.Status
		if status == "" {
			status = StatusComplete
		}
		if _, err := dst.saveTx(ctx, tr, sv.req, status, sv.run.StatusReason); err != nil {
			return rep, fmt.Errorf("copying run %s: %w", sv.run.ID, err)
		}
		if sv.run.Exported {
			_ = dst.MarkExported(ctx, sv.run.ID, nil)
		} else if sv.run.ExportError != "" {
			_ = dst.MarkExported(ctx, sv.run.ID, errors.New(sv.run.ExportError))
		}
		for _, a := range sv.artifacts {
			if err := dst.SaveArtifact(ctx, sv.run.ID, a.Name, a.Content); err != nil {
				return rep, fmt.Errorf("copying run %s: %w", sv.run.ID, err)
			}
		}
		for _, a := range sv.annotations {
			if _, err := dst.Annotate(ctx, a); err != nil {
				return rep, fmt.Errorf("copying run %s: %w", sv.run.ID, err)
			}
		}
		rep.Kept++
	}
	return rep, nil
}
