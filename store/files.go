package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// ArtifactFiles is the run's file list: every workspace path it changed or
// tried to change, one JSON object per line, sorted by path. The trace
// names the first paths past its span budget and carries the list's count
// and sha256 (agentwatch.files.list.*); the list itself is kept here, so
// a run that created 100,000 files still names each one.
const ArtifactFiles = "files"

// FileEntry is one line of the file list.
type FileEntry struct {
	Path   string   `json:"path"`
	Ops    []string `json:"ops,omitempty"` // operations seen, most significant first
	Failed bool     `json:"failed,omitempty"`
	Source string   `json:"source,omitempty"` // ebpf, fswatch
}

// SaveFiles stores the run's file list (already redacted: the recorder
// redacts it like the trace), replacing an earlier one.
func (s *Store) SaveFiles(ctx context.Context, runID string, files []FileEntry) error {
	var buf bytes.Buffer
	n := 0
	for _, f := range files {
		n += len(f.Path) + len(f.Source) + 48 // {"path":"…","ops":[…],"failed":true,"source":"…"}
		for _, op := range f.Ops {
			n += len(op) + 3
		}
	}
	buf.Grow(n) // one allocation, not a doubling series, for a 100,000-path list
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range files {
		if err := enc.Encode(&files[i]); err != nil {
			return fmt.Errorf("saving the file list of run %s: %w", runID, err)
		}
	}
	return s.SaveArtifact(ctx, runID, ArtifactFiles, buf.Bytes())
}

// Files returns a run's file list. A run saved before the list existed
// has none: the error wraps ErrNoArtifact.
func (s *Store) Files(ctx context.Context, runID string) ([]FileEntry, error) {
	a, err := s.Artifact(ctx, runID, ArtifactFiles)
	if err != nil {
		return nil, err
	}
	var out []FileEntry
	sc := bufio.NewScanner(bytes.NewReader(a.Content))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20) // PATH_MAX is 4 KiB; JSON escaping at most sextuples it
	for n := 1; sc.Scan(); n++ {
		var f FileEntry
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return nil, fmt.Errorf("reading the file list of run %s: line %d: %w", a.RunID, n, err)
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the file list of run %s: %w", a.RunID, err)
	}
	return out, nil
}
