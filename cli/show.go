package cli

import (
	"fmt"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/store"
	"github.com/spf13/cobra"
)

type showOptions struct {
	storeDir string
	json     bool
	files    bool
}

func (a *app) showCommand() *cobra.Command {
	var o showOptions
	cmd := &cobra.Command{
		Use:   "show [RUN]",
		Short: "Show a run as a tree (or --json); RUN may be an id prefix, default latest",
		Args:  cobra.MaximumNArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			id := store.Latest
			if len(args) == 1 {
				id = args[0]
			}
			st, err := a.openStore(o.storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			if o.files {
				return showFiles(cmd.Context(), a.env.Stdout, st, id, o.json) // files.go
			}
			tr, _, _, err := loadWithReviews(cmd.Context(), st, id) // annotate.go
			if err != nil {
				return fmt.Errorf("loading run %s: %w", id, err)
			}
			if o.json {
				return report.JSON(a.env.Stdout, tr)
			}
			return report.Tree(a.env.Stdout, tr)
		}),
	}
	storeFlag(cmd, &o.storeDir)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the run as one JSON document")
	cmd.Flags().BoolVar(&o.files, "files", false, "list every workspace path the run changed (spanned or aggregated), one per line; with --json one JSON object per line")
	return cmd
}
