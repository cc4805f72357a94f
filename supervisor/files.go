package supervisor

import (
	"context"
	"fmt"

	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/store"
)

// saveFiles keeps the run's file list (every workspace path it changed,
// spanned or aggregated) as the store artifact "files"; the trace carries
// its count and sha256. Outside a workspace there is no list.
func saveFiles(ctx context.Context, st *store.Store, runID string, files []recorder.FileChange) error {
	if files == nil {
		return nil
	}
	entries := make([]store.FileEntry, len(files))
	for i, f := range files {
		entries[i] = store.FileEntry{Path: f.Path, Ops: f.Ops, Failed: f.Failed, Source: f.Source}
	}
	if err := st.SaveFiles(ctx, runID, entries); err != nil {
		return fmt.Errorf("keeping the file list: %w", err)
	}
	return nil
}
