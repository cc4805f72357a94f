package supervisor

import (
	"context"
	"fmt"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/workspace"
)

// saveDiff keeps the run's final workspace diff as the store artifact
// "diff", always — even empty, so "no change" is recorded, not missing.
// The trace carries only its sha256 and size (the content in full-capture
// mode only): the store is local and the user's own, a collector is not.
// Outside git, or when the diff failed, there is nothing to keep; the trace
// says why.
func saveDiff(ctx context.Context, st *store.Store, runID string, ev *workspace.Evidence) error {
	if ev == nil || ev.Absent != "" || ev.DiffSHA256 == "" {
		return nil
	}
	if err := st.SaveArtifact(ctx, runID, store.ArtifactDiff, ev.Diff); err != nil {
		return fmt.Errorf("keeping the workspace diff: %w", err)
	}
	return nil
}
