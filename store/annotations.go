package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Annotation is one reviewer decision about a run, recorded after it by
// `agentwatch annotate`. A run may have several (a rejection, then an
// approval of the fix); Seq orders them from 1. The store keeps what it is
// given: the caller validates the values.
type Annotation struct {
	RunID        string
	Seq          int       // assigned by Annotate
	Time         time.Time // zero: now, at Annotate
	Review       string    // approved, rejected
	Reviewer     string
	FailureClass string // from the taxonomy, or empty
	PRURL        string
	CIRunURL     string
	Note         string
	Exported     bool   // an OTLP collector acknowledged the review span
	ExportError  string // last export failure, empty when none
}

// Annotate stores a as the run's next annotation and returns it with Seq
// and Time set. a.RunID must be an exact id of a stored run.
func (s *Store) Annotate(ctx context.Context, a Annotation) (Annotation, error) {
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Annotation{}, fmt.Errorf("annotating run %s: %w", a.RunID, err)
	}
	defer tx.Rollback()
	// The run's row is locked until the end of the transaction (SQLite:
	// the write lock is held from BEGIN, _txlock=immediate; PostgreSQL:
	// FOR UPDATE), so two annotators never get the same seq.
	var id string
	err = tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE id = ?`+s.d.forUpdate, a.RunID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Annotation{}, fmt.Errorf("annotating run %s: %w", a.RunID, ErrNotFound)
	}
	if err != nil {
		return Annotation{}, fmt.Errorf("annotating run %s: %w", a.RunID, s.corrupt(err))
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM annotations WHERE run_id = ?`, a.RunID).Scan(&a.Seq); err != nil {
		return Annotation{}, fmt.Errorf("annotating run %s: %w", a.RunID, err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO annotations (run_id, seq, created_ns, review, reviewer, failure_class, pr_url, ci_run_url, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.RunID, a.Seq, a.Time.UnixNano(), a.Review, a.Reviewer, a.FailureClass, a.PRURL, a.CIRunURL, a.Note)
	if err != nil {
		return Annotation{}, fmt.Errorf("annotating run %s: %w", a.RunID, err)
	}
	// The review, and a PR or CI run the trace does not name, are facts
	// of the run (facts.go): recomputed with the new annotation.
	if err := s.refreshFacts(ctx, tx, a.RunID); err != nil {
		return Annotation{}, fmt.Errorf("annotating run %s: %w", a.RunID, err)
	}
	if err := tx.Commit(); err != nil {
		return Annotation{}, fmt.Errorf("annotating run %s: %w", a.RunID, err)
	}
	a.Exported, a.ExportError = false, ""
	return a, nil
}

// Annotations returns the run's annotations (an exact id), oldest first;
// none is an empty list, not an error.
func (s *Store) Annotations(ctx context.Context, runID string) ([]Annotation, error) {
	return annotationsOf(ctx, s.db, runID)
}

// annotationsOf is Annotations in q: the store, or a transaction.
func annotationsOf(ctx context.Context, q querier, runID string) ([]Annotation, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT run_id, seq, created_ns, review, reviewer, failure_class, pr_url, ci_run_url, note, exported, export_error
		FROM annotations WHERE run_id = ? ORDER BY seq`, runID)
	if err != nil {
		return nil, fmt.Errorf("reading annotations of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []Annotation
	for rows.Next() {
		var (
			a        Annotation
			ns       int64
			exported int
		)
		if err := rows.Scan(&a.RunID, &a.Seq, &ns, &a.Review, &a.Reviewer, &a.FailureClass, &a.PRURL, &a.CIRunURL, &a.Note, &exported, &a.ExportError); err != nil {
			return nil, fmt.Errorf("reading annotations of run %s: %w", runID, err)
		}
		a.Time = time.Unix(0, ns)
		a.Exported = exported != 0
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading annotations of run %s: %w", runID, err)
	}
	return out, nil
}

// MarkAnnotationExported records the outcome of sending annotation seq of
// run runID: exportErr nil marks it exported.
func (s *Store) MarkAnnotationExported(ctx context.Context, runID string, seq int, exportErr error) error {
	exported, msg := 1, ""
	if exportErr != nil {
		exported, msg = 0, exportErr.Error()
	}
	res, err := s.db.ExecContext(ctx, `UPDATE annotations SET exported = ?, export_error = ? WHERE run_id = ? AND seq = ?`,
		exported, msg, runID, seq)
	if err != nil {
		return fmt.Errorf("recording export of annotation %d of run %s: %w", seq, runID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("recording export of annotation %d of run %s: %w", seq, runID, ErrNotFound)
	}
	return nil
}
