package store

// Sync: copying a store's runs into another (a laptop's or a runner's
// SQLite store into the fleet's PostgreSQL database; `agentwatch sync`).
//
// Each run goes over in one transaction of the target: the runs row with
// its trace, status, costs and export state, its annotations in order,
// its artifacts, and its facts, which the target computes from that trace
// and those annotations in the same transaction (the facts are always the
// target's code's, never copied). The source records what each target has
// in sync_state (keyed by the target's Key: its URL without password),
// with the trace's size and sha256, the number of annotations and
// artifacts and the export state, so a second sync sends nothing, an
// interrupted one resumes, and a run annotated (or exported) after it was
// sent is sent again with what changed.
//
// The first copy of a run id wins: a run already on the target with the
// same trace (sha256) is merged (annotations it lacks are appended in
// order, artifacts it lacks added, an export the source made recorded); a
// run with a different trace is a conflict, reported every time and never
// overwritten.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// syncSchema is migration 7, for both databases: what sync sent each
// target, per run.
const syncSchema = `
CREATE TABLE IF NOT EXISTS sync_state (
	target       TEXT NOT NULL,
	run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	trace_sha256 TEXT NOT NULL,
	trace_size   BIGINT NOT NULL,
	annotations  INTEGER NOT NULL,
	artifacts    INTEGER NOT NULL,
	artifacts_ns BIGINT NOT NULL,
	exported     INTEGER NOT NULL,
	export_error TEXT NOT NULL DEFAULT '',
	synced_ns    BIGINT NOT NULL,
	PRIMARY KEY (target, run_id)
);
`

// SyncOutcome is what became of one run.
type SyncOutcome string

const (
	SyncCopied   SyncOutcome = "copied"   // the target did not have it
	SyncUpdated  SyncOutcome = "updated"  // the target had it; annotations, artifacts or the export state were added
	SyncPresent  SyncOutcome = "present"  // the target had all of it
	SyncConflict SyncOutcome = "conflict" // the target has another trace under this run id: kept the target's
)

// SyncOptions tune Sync.
type SyncOptions struct {
	// DryRun changes nothing, in the target or the source: the report
	// says what a sync would do.
	DryRun bool
	// Progress, when set, is called after each run sent (or looked at,
	// with DryRun).
	Progress func(SyncProgress)
}

// SyncProgress is one run done.
type SyncProgress struct {
	Done, Total int // runs looked at so far, of those the source had to send
	RunID       string
	Outcome     SyncOutcome
}

// SyncReport says what Sync did.
type SyncReport struct {
	Runs      int // runs in the source
	Unchanged int // sent before and unchanged since (sync_state): not looked at
	Copied    int
	Updated   int
	Present   int // looked at: the target had all of it already
	Conflicts []SyncConflictInfo
}

// AlreadyThere is the runs the target had in full: unchanged since the
// last sync, or found complete on the target.
func (r SyncReport) AlreadyThere() int { return r.Unchanged + r.Present }

// SyncConflictInfo is a run id whose trace differs between the stores.
type SyncConflictInfo struct {
	RunID        string
	SourceSHA256 string
	TargetSHA256 string
}

// Key is the name this store goes by in another store's sync_state: the
// URL without its password, or the directory.
func (s *Store) Key() string { return s.key }

// Sync copies every run of src that dst lacks (or lacks part of) into dst,
// one transaction per run, and records in src what dst has. A server
// error or ctx's end stops it; what was sent by then stays sent and
// recorded, so the next Sync resumes. The report counts what was done
// before an error.
func Sync(ctx context.Context, src, dst *Store, o SyncOptions) (SyncReport, error) {
	var rep SyncReport
	if src.key == dst.key {
		return rep, fmt.Errorf("syncing %s into itself", src.path)
	}
	target := dst.key
	if err := src.db.QueryRowContext(ctx, `SELECT count(*) FROM runs`).Scan(&rep.Runs); err != nil {
		return rep, fmt.Errorf("counting runs of %s: %w", src.path, src.corrupt(err))
	}
	ids, err := src.syncCandidates(ctx, target)
	if err != nil {
		return rep, err
	}
	rep.Unchanged = rep.Runs - len(ids)
	var errs []error
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		in, err := src.readSyncRun(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // gone since listed
		}
		if err != nil {
			if errors.Is(err, ErrServer) {
				return rep, errors.Join(append(errs, err)...)
			}
			errs = append(errs, err)
			continue
		}
		var out SyncOutcome
		var targetSHA string
		if o.DryRun {
			out, targetSHA, err = dst.planRun(ctx, in)
		} else {
			out, targetSHA, err = dst.importRun(ctx, in)
		}
		if err != nil {
			err = fmt.Errorf("sending run %s to %s: %w", id, dst.path, err)
			if errors.Is(err, ErrServer) || ctx.Err() != nil {
				return rep, errors.Join(append(errs, err)...)
			}
			errs = append(errs, err)
			continue
		}
		switch out {
		case SyncCopied:
			rep.Copied++
		case SyncUpdated:
			rep.Updated++
		case SyncPresent:
			rep.Present++
		case SyncConflict:
			rep.Conflicts = append(rep.Conflicts, SyncConflictInfo{RunID: id, SourceSHA256: in.sha, TargetSHA256: targetSHA})
		}
		if !o.DryRun && out != SyncConflict {
			if err := src.recordSynced(ctx, target, in); err != nil {
				// Sent, not recorded: the next sync finds it on the
				// target and records it then.
				errs = append(errs, err)
			}
		}
		if o.Progress != nil {
			o.Progress(SyncProgress{Done: i + 1, Total: len(ids), RunID: id, Outcome: out})
		}
	}
	return rep, errors.Join(errs...)
}

// syncCandidates lists the runs target may lack: never sent there, or
// changed since (trace size, annotations, artifacts, export state),
// oldest first.
func (s *Store) syncCandidates(ctx context.Context, target string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT runs.id FROM runs LEFT JOIN sync_state ss ON ss.target = ? AND ss.run_id = runs.id
		WHERE ss.run_id IS NULL
			OR ss.trace_size <> length(runs.trace)
			OR ss.exported <> runs.exported OR ss.export_error <> runs.export_error
			OR ss.annotations <> (SELECT count(*) FROM annotations a WHERE a.run_id = runs.id)
			OR ss.artifacts <> (SELECT count(*) FROM artifacts x WHERE x.run_id = runs.id)
			OR ss.artifacts_ns <> (SELECT coalesce(max(created_ns), 0) FROM artifacts x WHERE x.run_id = runs.id)
		ORDER BY runs.start_ns, `+s.d.byText("runs.id"), target)
	if err != nil {
		return nil, fmt.Errorf("listing runs to sync: %w", s.corrupt(err))
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("listing runs to sync: %w", s.corrupt(err))
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing runs to sync: %w", s.corrupt(err))
	}
	return ids, nil
}

// syncRun is everything of one run that goes to the target.
type syncRun struct {
	run         Run // summary, status, costs, export state
	createdNS   int64
	trace       []byte
	sha         string // hex sha256 of trace
	annotations []Annotation
	artifacts   []Artifact // with content
	artifactsNS int64      // the newest artifact's created_ns (0: none)
}

func (s *Store) readSyncRun(ctx context.Context, id string) (syncRun, error) {
	var in syncRun
	r, err := scanRun(s.db.QueryRowContext(ctx, `SELECT `+summaryColumns+` FROM `+runsWithCosts+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("reading run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return in, fmt.Errorf("reading run %s: %w", id, s.corrupt(err))
	}
	in.run = r
	if err := s.db.QueryRowContext(ctx, `SELECT created_ns, trace FROM runs WHERE id = ?`, id).Scan(&in.createdNS, &in.trace); err != nil {
		return in, fmt.Errorf("reading run %s: %w", id, s.corrupt(err))
	}
	sum := sha256.Sum256(in.trace)
	in.sha = hex.EncodeToString(sum[:])
	if in.annotations, err = annotationsOf(ctx, s.db, id); err != nil {
		return in, s.corrupt(err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, sha256, size, created_ns, content FROM artifacts WHERE run_id = ? ORDER BY `+s.d.byText("name"), id)
	if err != nil {
		return in, fmt.Errorf("reading artifacts of run %s: %w", id, s.corrupt(err))
	}
	defer rows.Close()
	for rows.Next() {
		a := Artifact{RunID: id}
		var created int64
		if err := rows.Scan(&a.Name, &a.SHA256, &a.Size, &created, &a.Content); err != nil {
			return in, fmt.Errorf("reading artifacts of run %s: %w", id, s.corrupt(err))
		}
		a.Created = fromNanos(created)
		in.artifactsNS = max(in.artifactsNS, created)
		in.artifacts = append(in.artifacts, a)
	}
	if err := rows.Err(); err != nil {
		return in, fmt.Errorf("reading artifacts of run %s: %w", id, s.corrupt(err))
	}
	return in, nil
}

// recordSynced notes in sync_state that target has run in as read.
func (s *Store) recordSynced(ctx context.Context, target string, in syncRun) error {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO sync_state (target, run_id, trace_sha256, trace_size, annotations, artifacts, artifacts_ns, exported, export_error, synced_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (target, run_id) DO UPDATE SET
			trace_sha256 = excluded.trace_sha256, trace_size = excluded.trace_size, annotations = excluded.annotations,
			artifacts = excluded.artifacts, artifacts_ns = excluded.artifacts_ns, exported = excluded.exported,
			export_error = excluded.export_error, synced_ns = excluded.synced_ns`,
		target, in.run.ID, in.sha, len(in.trace), len(in.annotations), len(in.artifacts), in.artifactsNS,
		boolInt(in.run.Exported), in.run.ExportError, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("recording run %s as synced: %w", in.run.ID, s.corrupt(err))
	}
	return nil
}

// importRun stores in, in one transaction of s: a new run whole, with
// the facts s computes; a run s has with the same trace merged.
func (s *Store) importRun(ctx context.Context, in syncRun) (SyncOutcome, string, error) {
	out, sha, err := s.importTx(ctx, in)
	return out, sha, s.corrupt(err)
}

func (s *Store) importTx(ctx context.Context, in syncRun) (SyncOutcome, string, error) {
	r := in.run
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", "", err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `
		INSERT INTO runs (id, trace_id, start_ns, end_ns, command, agent, exit_code, span_count, exported, export_error, created_ns, trace)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		r.ID, r.TraceID, nanos(r.Start), nanos(r.End), r.Command, r.Agent, nullableExit(r.ExitCode), r.Spans,
		boolInt(r.Exported), r.ExportError, in.createdNS, in.trace)
	if err != nil {
		return "", "", err
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", "", err
	} else if n == 1 {
		status := r.Status
		if status == "" {
			status = StatusComplete
		}
		if err := writeSideRows(ctx, tx, r, status, r.StatusReason); err != nil {
			return "", "", err
		}
		for _, a := range in.annotations {
			if err := insertAnnotation(ctx, tx, a.Seq, a); err != nil {
				return "", "", err
			}
		}
		for _, a := range in.artifacts {
			if _, err := insertArtifact(ctx, tx, a); err != nil {
				return "", "", err
			}
		}
		r.Status = status
		if err := factsQueries.writeFacts(ctx, tx, factsOf(r, in.trace, in.annotations)); err != nil {
			return "", "", err
		}
		if err := tx.Commit(); err != nil {
			return "", "", err
		}
		return SyncCopied, in.sha, nil
	}

	// The target has this run id: the same trace is merged, another one
	// is a conflict. The row stays locked until the end (PostgreSQL), so
	// two syncs of one run merge one after the other.
	t, err := s.targetState(ctx, tx, r.ID, true)
	if err != nil {
		return "", "", err
	}
	if t.sha != in.sha {
		return SyncConflict, t.sha, nil
	}
	p := planMerge(in, t)
	if p.empty() {
		return SyncPresent, t.sha, nil
	}
	seq := t.maxSeq
	for _, a := range p.annotations {
		seq++
		if err := insertAnnotation(ctx, tx, seq, a); err != nil {
			return "", "", err
		}
	}
	for _, seq := range p.annotationsExported {
		if _, err := tx.ExecContext(ctx, `UPDATE annotations SET exported = 1, export_error = '' WHERE run_id = ? AND seq = ?`, r.ID, seq); err != nil {
			return "", "", err
		}
	}
	for _, a := range p.artifacts {
		if _, err := insertArtifact(ctx, tx, a); err != nil {
			return "", "", err
		}
	}
	if p.export != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET exported = ?, export_error = ? WHERE id = ?`,
			boolInt(p.export.exported), p.export.err, r.ID); err != nil {
			return "", "", err
		}
	}
	if len(p.annotations) > 0 {
		// Facts from the target's own row (its status) and annotations.
		tr, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+summaryColumns+` FROM `+runsWithCosts+` WHERE id = ?`, r.ID))
		if err != nil {
			return "", "", err
		}
		anns, err := annotationsOf(ctx, tx, r.ID)
		if err != nil {
			return "", "", err
		}
		if err := factsQueries.writeFacts(ctx, tx, factsOf(tr, in.trace, anns)); err != nil {
			return "", "", err
		}
	}
	if err := tx.Commit(); err != nil {
		return "", "", err
	}
	return SyncUpdated, t.sha, nil
}

// planRun is importRun's answer without changing anything.
func (s *Store) planRun(ctx context.Context, in syncRun) (SyncOutcome, string, error) {
	if s.fresh {
		return SyncCopied, "", nil
	}
	t, err := s.targetState(ctx, s.db, in.run.ID, false)
	if errors.Is(err, sql.ErrNoRows) {
		return SyncCopied, "", nil
	}
	if err != nil {
		return "", "", s.corrupt(err)
	}
	switch {
	case t.sha != in.sha:
		return SyncConflict, t.sha, nil
	case planMerge(in, t).empty():
		return SyncPresent, t.sha, nil
	}
	return SyncUpdated, t.sha, nil
}

// targetRun is what the target has of a run.
type targetRun struct {
	sha         string
	exported    bool
	exportError string
	annotations []Annotation
	maxSeq      int
	artifacts   map[string]bool
}

// targetState reads what s has of run id (sql.ErrNoRows: nothing), in q;
// lock takes its row until q's transaction ends.
func (s *Store) targetState(ctx context.Context, q querier, id string, lock bool) (targetRun, error) {
	var t targetRun
	var exported int
	var err error
	forUpdate := ""
	if lock {
		forUpdate = s.d.forUpdate
	}
	if s.d == pgDialect {
		// The server hashes the trace: it does not cross the network.
		err = q.QueryRowContext(ctx, `SELECT encode(sha256(trace), 'hex'), exported, export_error FROM runs WHERE id = ?`+forUpdate,
			id).Scan(&t.sha, &exported, &t.exportError)
	} else {
		var blob []byte
		err = q.QueryRowContext(ctx, `SELECT trace, exported, export_error FROM runs WHERE id = ?`, id).Scan(&blob, &exported, &t.exportError)
		sum := sha256.Sum256(blob)
		t.sha = hex.EncodeToString(sum[:])
	}
	if err != nil {
		return t, err
	}
	t.exported = exported != 0
	if t.annotations, err = annotationsOf(ctx, q, id); err != nil {
		return t, err
	}
	for _, a := range t.annotations {
		t.maxSeq = max(t.maxSeq, a.Seq)
	}
	rows, err := q.QueryContext(ctx, `SELECT name FROM artifacts WHERE run_id = ?`, id)
	if err != nil {
		return t, err
	}
	defer rows.Close()
	t.artifacts = map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return t, err
		}
		t.artifacts[name] = true
	}
	return t, rows.Err()
}

// mergePlan is what a target holding the same trace lacks.
type mergePlan struct {
	annotations         []Annotation // to append, in the source's order
	annotationsExported []int        // seqs (the target's) the source exported
	artifacts           []Artifact
	export              *struct {
		exported bool
		err      string
	}
}

func (p mergePlan) empty() bool {
	return len(p.annotations) == 0 && len(p.annotationsExported) == 0 && len(p.artifacts) == 0 && p.export == nil
}

// sameAnnotation: the same decision, recorded at the same time (the seq
// may differ: the target numbers its own).
func sameAnnotation(a, b Annotation) bool {
	return a.Time.Equal(b.Time) && a.Review == b.Review && a.Reviewer == b.Reviewer && a.FailureClass == b.FailureClass &&
		a.PRURL == b.PRURL && a.CIRunURL == b.CIRunURL && a.Note == b.Note
}

func planMerge(in syncRun, t targetRun) mergePlan {
	var p mergePlan
	used := make([]bool, len(t.annotations))
	for _, a := range in.annotations {
		found := false
		for j, b := range t.annotations {
			if !used[j] && sameAnnotation(a, b) {
				used[j], found = true, true
				if a.Exported && !b.Exported {
					p.annotationsExported = append(p.annotationsExported, b.Seq)
				}
				break
			}
		}
		if !found {
			p.annotations = append(p.annotations, a)
		}
	}
	for _, a := range in.artifacts {
		if !t.artifacts[a.Name] {
			p.artifacts = append(p.artifacts, a)
		}
	}
	// An export the source made counts on the target; a failed one is
	// noted only where the target knows of no attempt.
	switch r := in.run; {
	case r.Exported && !t.exported:
		p.export = &struct {
			exported bool
			err      string
		}{true, ""}
	case !r.Exported && !t.exported && r.ExportError != "" && t.exportError == "":
		p.export = &struct {
			exported bool
			err      string
		}{false, r.ExportError}
	}
	return p
}

// insertAnnotation stores a as annotation seq of its run, with its time
// and export state.
func insertAnnotation(ctx context.Context, tx execer, seq int, a Annotation) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO annotations (run_id, seq, created_ns, review, reviewer, failure_class, pr_url, ci_run_url, note, exported, export_error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.RunID, seq, a.Time.UnixNano(), a.Review, a.Reviewer, a.FailureClass, a.PRURL, a.CIRunURL, a.Note, boolInt(a.Exported), a.ExportError)
	return err
}

// insertArtifact stores a unless its run has one of that name.
func insertArtifact(ctx context.Context, tx execer, a Artifact) (bool, error) {
	content := a.Content
	if content == nil {
		content = []byte{}
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO artifacts (run_id, name, sha256, size, created_ns, content) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, name) DO NOTHING`,
		a.RunID, a.Name, a.SHA256, a.Size, nanos(a.Created), content)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
