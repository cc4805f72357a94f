package cli

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentwatch/agentwatch/fleet"
)

type reportOptions struct {
	storeDir string
	factsFlags
	groupBy     []string
	byUser      bool
	json        bool
	format      string
	maxRuns     int
	spikeFactor float64
}

// reportCommand is `agentwatch report`: the fleet questions over the
// runs of a window (docs/fleet.md).
func (a *app) reportCommand() *cobra.Command {
	o := reportOptions{factsFlags: factsFlags{since: "7d"}}
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Answer the fleet questions over recent runs: changes, retries, pull requests, cost, failures, missing telemetry",
		Long: `report answers six questions over the runs of a window (default: the last 7 days):
which runs changed code, dependencies, workflows or secrets-related files; which
sessions retried without progress, and the waste; which pull requests lack test
output, a security scan or an approval; where cost spikes (p50/p95/p99 per run
and per session, by team and repository); which failure classes repeat across
agents, models and environments; which telemetry fields the traces miss.

Cost is grouped by team and repository by default. --group-by user (the
person who ran the agent) is refused unless --by-user is given: that view is
for security and incident work, not for ranking people (docs/fleet.md).`,
		Args: cobra.NoArgs,
		RunE: a.wrap(func(cmd *cobra.Command, _ []string) error {
			format := o.format
			if o.json {
				if format != "" && format != "json" {
					return configError{fmt.Errorf("--json and --format %s disagree", format)}
				}
				format = "json"
			}
			if format == "" {
				format = "text"
			}
			if !slices.Contains([]string{"text", "json", "markdown"}, format) {
				return configError{fmt.Errorf("--format %q: want text, json or markdown", format)}
			}
			var groups []string
			for _, g := range o.groupBy {
				for _, x := range strings.Split(g, ",") {
					x = strings.TrimSpace(x)
					if x == "" {
						continue
					}
					if !slices.Contains(fleet.GroupBys, x) {
						return configError{fmt.Errorf("--group-by %q: want one of %s", x, strings.Join(fleet.GroupBys, ", "))}
					}
					if x == fleet.ByUser && !o.byUser {
						return configError{fmt.Errorf("--group-by user names people: add --by-user (for security and incident work; docs/fleet.md)")}
					}
					groups = append(groups, x)
				}
			}
			f, _, err := o.filter(time.Now()) // runs.go
			if err != nil {
				return configError{err}
			}
			f.WithoutPaths = true // the report counts classes; it lists no paths or labels
			st, err := a.openStore(o.storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			// A one-shot batch over every run's facts, most of it garbage
			// once counted: collect less often (measured over 100,000 runs
			// on PostgreSQL: ~1.0 s → ~0.9 s median), within a ceiling.
			defer debug.SetGCPercent(debug.SetGCPercent(300))
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
			facts, err := st.Facts(cmd.Context(), f)
			if err != nil {
				return fmt.Errorf("reading run facts: %w", err)
			}
			r := fleet.Build(facts, fleet.Options{Since: f.Since, Until: f.Until, GroupBy: groups, ByUser: o.byUser,
				MaxRuns: o.maxRuns, SpikeFactor: o.spikeFactor})
			switch format {
			case "json":
				return fleet.WriteJSON(a.env.Stdout, r)
			case "markdown":
				return fleet.WriteMarkdown(a.env.Stdout, r)
			}
			return fleet.WriteText(a.env.Stdout, r)
		}),
	}
	storeFlag(cmd, &o.storeDir)
	fl := cmd.Flags()
	o.factsFlags.register(fl, o.since)
	fl.StringSliceVar(&o.groupBy, "group-by", nil, "cost groups: team, repo, org, session, pr, model, agent (default team,repo); user needs --by-user")
	fl.BoolVar(&o.byUser, "by-user", false, "allow --group-by user: cost per person, for security and incident work")
	fl.BoolVar(&o.json, "json", false, "print the report as JSON (same as --format json)")
	fl.StringVar(&o.format, "format", "", "`FORMAT`: text, json or markdown")
	fl.IntVar(&o.maxRuns, "max-runs", 20, "run ids listed per finding")
	fl.Float64Var(&o.spikeFactor, "spike-factor", 3, "a group spikes when its p99 run cost is `X` times its median")
	return cmd
}
