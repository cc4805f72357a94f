package store

import (
	"context"
	"fmt"
	"strings"
)

// Check reads the whole file for damage (SQLite's quick_check: every page,
// every index entry) and counts the runs. A damaged store's error wraps
// ErrCorrupt and says how to repair it. doctor asks it.
func (s *Store) Check(ctx context.Context) (runs int, err error) {
	if s.pg != nil {
		return s.pgCheck(ctx)
	}
	rows, err := s.db.QueryContext(ctx, `PRAGMA quick_check`)
	if err != nil {
		return 0, fmt.Errorf("checking store %s: %w", s.path, s.corrupt(err))
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return 0, fmt.Errorf("checking store %s: %w", s.path, s.corrupt(err))
		}
		if line != "ok" && len(problems) < 3 {
			problems = append(problems, line)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("checking store %s: %w", s.path, s.corrupt(err))
	}
	if len(problems) > 0 {
		return 0, fmt.Errorf("%w: store %s: %s: `agentwatch store repair` copies the intact runs into a new store and keeps the damaged file beside it",
			ErrCorrupt, s.path, strings.Join(problems, "; "))
	}
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM runs`).Scan(&runs); err != nil {
		return 0, fmt.Errorf("checking store %s: %w", s.path, s.corrupt(err))
	}
	return runs, nil
}
