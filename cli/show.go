package cli

import (
	"bytes"
	"fmt"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/store"
	"github.com/spf13/cobra"
)

type showOptions struct {
	storeDir string
	json     bool
	files    bool
	width    int
	color    string
	noPager  bool
}

func (a *app) showCommand() *cobra.Command {
	var o showOptions
	cmd := &cobra.Command{
		Use:   "show [RUN]",
		Short: "Show a run as a tree (or --json); RUN may be an id prefix, default latest",
		Long: `show prints a stored run as a tree: a header with the run's facts, then one
line per span (its label, duration, exit code, counts and alerts).
RUN may be an id prefix; without it, the latest run.

On a terminal the tree fits its width (labels are shortened with "…",
then the marks after them), colour marks failures, denies and alerts, and
output longer than the screen goes through $PAGER (default less; LESS=FRX
when LESS is unset; PAGER= or PAGER=cat for none). Piped or redirected,
the output has whole lines (whatever COLUMNS says), no colour and no pager,
unless --width or --color say otherwise. NO_COLOR (set and not empty) or
TERM=dumb turn colour off for --color auto. Everything the run recorded
is escaped before it reaches the terminal or the pager.`,
		Args: cobra.MaximumNArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			if o.width < 0 {
				return usageError{fmt.Errorf("--width must be 0 (no limit) or more, got %d", o.width)}
			}
			t := stdoutTerminal(a.env.Stdout)
			color, err := useColor(o.color, t)
			if err != nil {
				return usageError{err}
			}
			width := outputWidth(o.width, cmd.Flags().Changed("width"), t)
			id := store.Latest
			if len(args) == 1 {
				id = args[0]
			}
			st, err := a.openStore(o.storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			// Rendered (and escaped) whole first: the pager is chosen by
			// the output's length, and only ever gets rendered text.
			var out bytes.Buffer
			switch {
			case o.files:
				err = showFiles(cmd.Context(), &out, st, id, o.json) // files.go
			default:
				tr, _, _, lerr := loadWithReviews(cmd.Context(), st, id) // annotate.go
				if lerr != nil {
					return fmt.Errorf("loading run %s: %w", id, lerr)
				}
				if o.json {
					err = report.JSON(&out, tr)
				} else {
					err = report.TreeWith(&out, tr, report.TreeOptions{Width: width, Color: color})
				}
			}
			if perr := page(out.Bytes(), t, width, color && !o.json && !o.files, o.noPager, a.env.Stdout, a.env.Stderr); err == nil {
				err = perr
			}
			return err
		}),
	}
	storeFlag(cmd, &o.storeDir)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the run as one JSON document")
	cmd.Flags().BoolVar(&o.files, "files", false, "list every workspace path the run changed (spanned or aggregated), one per line; with --json one JSON object per line")
	cmd.Flags().IntVar(&o.width, "width", 0, "fit the tree in `N` columns (0: no limit); default: the terminal's width (COLUMNS when it cannot be read), no limit when piped")
	cmd.Flags().StringVar(&o.color, "color", "auto", "colour alerts, denies and failures: `WHEN` is auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always or never")
	cmd.Flags().BoolVar(&o.noPager, "no-pager", false, "never page the output (default: $PAGER, or less, on a terminal when the output is longer than the screen)")
	return cmd
}
