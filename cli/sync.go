package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/spf13/cobra"
)

type syncOptions struct {
	storeDir string
	to       string
	dryRun   bool
}

// syncProgressEvery is how often sync says how far it got.
const syncProgressEvery = 2 * time.Second

func (a *app) syncCommand() *cobra.Command {
	var o syncOptions
	cmd := &cobra.Command{
		Use:   "sync --to URL",
		Short: "Copy this store's runs into another store (the fleet's PostgreSQL database); again: only what it lacks",
		Long: `sync copies every run of the store (--store) into the target (--to, a
PostgreSQL URL such as postgres://agentwatch@db/agentwatch, or a store
directory): the trace, status, cost, annotations in order, artifacts and
export state, one run per transaction. The target computes each run's facts
itself, in that transaction.

It is idempotent and resumable: the store records what each target has
(keyed by its URL without the password), so a second sync copies nothing, an
interrupted one picks up where it stopped, and a run annotated or exported
after it was sent is sent again with what changed. A run id the target
already holds with another trace is a conflict: the target's copy is kept,
the conflict is reported (exit 125).`,
		Example: `  agentwatch sync --to postgres://agentwatch@db.internal/agentwatch
  PGPASSFILE=~/.pgpass agentwatch sync --to postgres://agentwatch@db.internal/agentwatch --dry-run`,
		Args: cobra.NoArgs,
		RunE: a.wrap(func(cmd *cobra.Command, _ []string) error {
			if o.to == "" {
				return usageError{errors.New("sync: missing --to URL (the target store)")}
			}
			return a.sync(cmd, o)
		}),
	}
	storeFlag(cmd, &o.storeDir)
	cmd.Flags().StringVar(&o.to, "to", "", "the target store: a PostgreSQL `URL` (postgres://user@host/db) or a store directory")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "say what would be copied; send and record nothing (the target is opened read-only)")
	return cmd
}

func (a *app) sync(cmd *cobra.Command, o syncOptions) error {
	ctx := cmd.Context()
	target := store.Redact(o.to)
	if store.Key(o.to) == store.Key(o.storeDir) || (!store.IsURL(o.to) && !store.IsURL(o.storeDir) && sameDir(o.to, o.storeDir)) {
		return configError{fmt.Errorf("sync: --to %s is the store itself", termtext.Escape(target))}
	}
	src, err := a.openStore(o.storeDir)
	if err != nil {
		return err
	}
	defer src.Close()
	var dst *store.Store
	if o.dryRun {
		if !store.IsURL(o.to) {
			if _, err := os.Stat(filepath.Join(o.to, store.FileName)); errors.Is(err, os.ErrNotExist) {
				runs, err := src.List(ctx, 0)
				if err != nil {
					return fmt.Errorf("listing runs: %w", err)
				}
				fmt.Fprintf(a.env.Stderr, "agentwatch: sync to %s (dry run): %d runs: %d would be copied (the target is empty)\n",
					termtext.Escape(target), len(runs), len(runs))
				return nil
			}
		}
		dst, err = store.OpenReadOnly(o.to)
	} else {
		dst, err = store.Open(o.to)
	}
	if err != nil {
		return fmt.Errorf("opening sync target %s: %w", target, err)
	}
	defer dst.Close()

	last := time.Now()
	progress := func(p store.SyncProgress) {
		if time.Since(last) < syncProgressEvery || p.Done == p.Total {
			return
		}
		last = time.Now()
		fmt.Fprintf(a.env.Stderr, "agentwatch: sync to %s: %d of %d runs looked at\n", termtext.Escape(target), p.Done, p.Total)
	}
	rep, err := store.Sync(ctx, src, dst, store.SyncOptions{DryRun: o.dryRun, Progress: progress})
	for _, c := range rep.Conflicts {
		fmt.Fprintf(a.env.Stderr, "agentwatch: run %s conflicts: its trace here (sha256 %s) differs from the target's (sha256 %s); the target's is kept\n",
			c.RunID, short(c.SourceSHA256), short(c.TargetSHA256))
	}
	writeSyncSummary(a.env.Stderr, target, o.dryRun, rep)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sync to %s interrupted: %w (run it again to resume)", target, err)
		}
		return fmt.Errorf("sync to %s: %w", target, err)
	}
	if n := len(rep.Conflicts); n > 0 {
		return fmt.Errorf("sync to %s: %d %s the target holds with another trace (kept the target's)", target, n, plural(n, "run id", "run ids"))
	}
	return nil
}

// writeSyncSummary is sync's last line: N runs: M copied, K already there.
func writeSyncSummary(w io.Writer, target string, dryRun bool, rep store.SyncReport) {
	verb, head := "copied", ""
	if dryRun {
		verb, head = "would be copied", " (dry run)"
	}
	parts := []string{fmt.Sprintf("%d %s", rep.Copied, verb), fmt.Sprintf("%d already there", rep.AlreadyThere())}
	if rep.Updated > 0 {
		v := "updated"
		if dryRun {
			v = "would be updated"
		}
		parts = append(parts, fmt.Sprintf("%d %s (annotations, artifacts or export state)", rep.Updated, v))
	}
	if n := len(rep.Conflicts); n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", n, plural(n, "conflict", "conflicts")))
	}
	fmt.Fprintf(w, "agentwatch: sync to %s%s: %d runs: %s\n", termtext.Escape(target), head, rep.Runs, strings.Join(parts, ", "))
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func sameDir(a, b string) bool {
	x, e1 := filepath.Abs(a)
	y, e2 := filepath.Abs(b)
	return e1 == nil && e2 == nil && filepath.Clean(x) == filepath.Clean(y)
}
