package cli

import (
	"errors"
	"fmt"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/spf13/cobra"
)

func (a *app) storeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Maintain the run store",
		Args:  cobra.NoArgs,
		RunE: a.wrap(func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("store: missing subcommand: agentwatch store repair")}
		}),
	}
	var dir string
	repair := &cobra.Command{
		Use:   "repair",
		Short: "Copy every readable run of a damaged store into a new one (the damaged file is kept beside it)",
		Args:  cobra.NoArgs,
		RunE: a.wrap(func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("finding the run store: no default directory (pass --store)")
			}
			rep, err := store.Repair(cmd.Context(), dir)
			if errors.Is(err, store.ErrNotSQLite) {
				return configError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stderr, "agentwatch: store %s repaired: %d runs kept, %d unreadable; the damaged file is %s\n", termtext.Escape(dir), rep.Kept, rep.Lost, termtext.Escape(rep.Aside))
			// The runs its journal kept while the store was damaged.
			st, err := a.openStore(dir)
			if err != nil {
				return err
			}
			return st.Close()
		}),
	}
	storeFlag(repair, &dir)
	cmd.AddCommand(repair)
	return cmd
}
