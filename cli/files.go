package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/agentwatch/agentwatch/store"
)

// showFiles prints a run's file list (the store's "files" artifact): the
// operations, then the path, one path a line. Paths come from the run:
// one with a control, format (bidi) or other non-graphic character is
// printed quoted, never raw.
func showFiles(ctx context.Context, w io.Writer, st *store.Store, id string, asJSON bool) error {
	files, err := st.Files(ctx, id)
	if errors.Is(err, store.ErrNoArtifact) {
		return fmt.Errorf("run %s has no file list (recorded outside a workspace, or by an agentwatch before the list existed)", id)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for _, f := range files {
		if asJSON {
			if err := enc.Encode(f); err != nil {
				return err
			}
			continue
		}
		ops := strings.Join(f.Ops, ",")
		if f.Failed {
			ops += ",failed"
		}
		ops = strings.TrimPrefix(ops, ",")
		if _, err := fmt.Fprintf(w, "%-14s %s\n", ops, shownPath(f.Path)); err != nil {
			return err
		}
	}
	return nil
}

func shownPath(p string) string {
	for _, r := range p {
		if !unicode.IsGraphic(r) || r == unicode.ReplacementChar {
			return strconv.QuoteToGraphic(p)
		}
	}
	return p
}
