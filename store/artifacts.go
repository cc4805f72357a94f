package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ArtifactDiff is the run's final workspace diff against its base commit.
// It is stored always, while the trace carries only its sha256 and size
// (the content only in full-capture mode): the store is local and the
// user's own, a collector is not.
const ArtifactDiff = "diff"

// Artifact is a named blob kept with a run.
type Artifact struct {
	RunID   string
	Name    string
	SHA256  string // hex, of Content
	Size    int64
	Created time.Time
	Content []byte // nil from Artifacts (the listing)
}

// ErrNoArtifact is returned (wrapped) by Artifact for a run that has no
// artifact of that name.
var ErrNoArtifact = errors.New("no such artifact")

// SaveArtifact stores data as the run's artifact name, replacing an earlier
// one. The run (an exact id) must have been saved first.
func (s *Store) SaveArtifact(ctx context.Context, runID, name string, data []byte) error {
	if name == "" {
		return fmt.Errorf("saving artifact of run %s: empty name", runID)
	}
	var exists int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE id = ?`, runID).Scan(&exists); err != nil {
		return fmt.Errorf("saving artifact %s of run %s: %w", name, runID, err)
	}
	if exists == 0 {
		return fmt.Errorf("saving artifact %s of run %s: %w", name, runID, ErrNotFound)
	}
	if data == nil {
		data = []byte{} // NOT NULL: an empty diff is still a diff
	}
	sum := sha256.Sum256(data)
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO artifacts (run_id, name, sha256, size, created_ns, content) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(run_id, name) DO UPDATE SET
			sha256 = excluded.sha256, size = excluded.size, created_ns = excluded.created_ns, content = excluded.content`,
		runID, name, hex.EncodeToString(sum[:]), len(data), time.Now().UnixNano(), data)
	if err != nil {
		return fmt.Errorf("saving artifact %s of run %s: %w", name, runID, err)
	}
	return nil
}

// Artifact returns a run's artifact with its content. runID is resolved
// like Load's (exact id, unique prefix, trace id, Latest).
func (s *Store) Artifact(ctx context.Context, runID, name string) (Artifact, error) {
	r, err := s.resolve(ctx, runID)
	if err != nil {
		return Artifact{}, err
	}
	a := Artifact{RunID: r.ID, Name: name}
	var created int64
	err = s.db.QueryRowContext(ctx, `SELECT sha256, size, created_ns, content FROM artifacts WHERE run_id = ? AND name = ?`,
		r.ID, name).Scan(&a.SHA256, &a.Size, &created, &a.Content)
	if errors.Is(err, sql.ErrNoRows) {
		return Artifact{}, fmt.Errorf("reading artifact %s of run %s: %w", name, r.ID, ErrNoArtifact)
	}
	if err != nil {
		return Artifact{}, fmt.Errorf("reading artifact %s of run %s: %w", name, r.ID, err)
	}
	a.Created = fromNanos(created)
	return a, nil
}

// Artifacts lists a run's artifacts by name, without content.
func (s *Store) Artifacts(ctx context.Context, runID string) ([]Artifact, error) {
	r, err := s.resolve(ctx, runID)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, sha256, size, created_ns FROM artifacts WHERE run_id = ? ORDER BY `+s.d.byText("name"), r.ID)
	if err != nil {
		return nil, fmt.Errorf("listing artifacts of run %s: %w", r.ID, err)
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		a := Artifact{RunID: r.ID}
		var created int64
		if err := rows.Scan(&a.Name, &a.SHA256, &a.Size, &created); err != nil {
			return nil, fmt.Errorf("listing artifacts of run %s: %w", r.ID, err)
		}
		a.Created = fromNanos(created)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing artifacts of run %s: %w", r.ID, err)
	}
	return out, nil
}
