// Package store is the embedded local run store (SQLite, pure Go): every
// run's trace is kept here, whether or not a collector received it, so
// `runs`, `show` and `export` work with no collector at all. It stores what
// it is given; it never redacts.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
)

// Run summarises one stored run.
type Run struct {
	ID          string
	TraceID     string
	Start       time.Time
	End         time.Time
	Command     string
	Agent       string
	ExitCode    int
	Spans       int
	Exported    bool   // an OTLP collector acknowledged the trace
	ExportError string // last export failure, empty when none
}

// Store is an open run store.
type Store struct{}

// DefaultDir is $XDG_STATE_HOME/agentwatch, or ~/.local/state/agentwatch.
func DefaultDir() string { return "" }

// Open opens (creating when needed) the store in dir. It fails at once when
// dir is not writable.
func Open(dir string) (*Store, error) { return nil, errors.New("not implemented") }

// Close closes the database.
func (s *Store) Close() error { return nil }

// Save stores a finished run's trace.
func (s *Store) Save(ctx context.Context, tr *telemetry.Trace) error {
	return errors.New("not implemented")
}

// List returns the most recent runs first.
func (s *Store) List(ctx context.Context, limit int) ([]Run, error) {
	return nil, errors.New("not implemented")
}

// Load returns a run by id or unique id prefix.
func (s *Store) Load(ctx context.Context, id string) (*telemetry.Trace, Run, error) {
	return nil, Run{}, errors.New("not implemented")
}

// MarkExported records the outcome of an OTLP export of run id.
func (s *Store) MarkExported(ctx context.Context, id string, exportErr error) error {
	return errors.New("not implemented")
}
