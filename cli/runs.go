package cli

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type runsOptions struct {
	storeDir string
	limit    int
	json     bool

	factsFlags      // any filter selects through the runs' facts
	facts      bool // print the facts as JSON instead of the table
	showUser   bool // with --facts: keep agentwatch.run.user
}

// factsFlags are the run filters `runs` and `report` share
// (store.FactsFilter).
type factsFlags struct {
	since, until                  string
	repo, team, org, agent, model string
	failure, alert, changed       string
	pr, session, label            string
}

// register adds the filter flags; since is --since's default.
func (o *factsFlags) register(f *pflag.FlagSet, since string) {
	f.StringVar(&o.since, "since", since, "runs started at or after `WHEN`: a duration back from now (24h, 7d, 2w), a date (2026-12-01) or an RFC 3339 time; empty: no bound")
	f.StringVar(&o.until, "until", "", "runs started before `WHEN` (as --since; a date includes that day)")
	f.StringVar(&o.repo, "repo", "", "runs in repository `OWNER/NAME` (or its URL)")
	f.StringVar(&o.team, "team", "", "runs labelled team=`TEAM`")
	f.StringVar(&o.org, "org", "", "runs labelled org=`ORG`")
	f.StringVar(&o.agent, "agent", "", "runs of agent `NAME` (gen_ai.agent.name: claude, codex, …)")
	f.StringVar(&o.model, "model", "", "runs whose model calls were mostly to `MODEL`")
	f.StringVar(&o.failure, "failure", "", "runs of failure class `CLASS` ("+strings.Join(failureClasses(), ", ")+")")
	f.StringVar(&o.alert, "alert", "", "runs that raised an alert of rule `RULE` (retries_without_progress, secret_found, …)")
	f.StringVar(&o.changed, "changed", "", "runs that changed files of `CLASS`: "+strings.Join(store.ChangeClasses, "|"))
	f.StringVar(&o.pr, "pr", "", "runs of pull request `URL`")
	f.StringVar(&o.session, "session", "", "runs of the agent's session `ID`")
	f.StringVar(&o.label, "label", "", "runs with label `KEY=VALUE`")
}

func (a *app) runsCommand() *cobra.Command {
	var o runsOptions
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List recent runs, newest first; filter them by repository, team, agent, model, failure, alert, change, PR, session or label",
		Long: `runs lists the stored runs, newest first, with the runs still waiting in
the journal (unsaved) at the top.

Any filter selects through the runs' facts (what the fleet report reads:
repository, team, model, failure class, alerts, changed files, …); the
unsaved runs are then not listed. Filters combine with AND.

--since and --until take a duration back from now (90m, 24h, 7d, 2w), a
date (2026-12-01, local time) or an RFC 3339 time. A date given to --until
includes that whole day.`,
		Example: `  agentwatch runs --since 7d --team payments
  agentwatch runs --repo acme/api --failure test_failure
  agentwatch runs --changed workflows --json
  agentwatch runs --label env=prod --facts`,
		Args: cobra.NoArgs,
		RunE: a.wrap(func(cmd *cobra.Command, _ []string) error {
			if o.limit <= 0 {
				return usageError{fmt.Errorf("-n must be positive, got %d", o.limit)}
			}
			filter, filtered, err := o.filter(time.Now())
			if err != nil {
				return configError{err} // one line: the usage text would bury the valid values
			}
			st, err := a.openStore(o.storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			if !filtered && !o.facts {
				runs, err := st.List(ctx, o.limit)
				if err != nil {
					return fmt.Errorf("listing runs: %w", err)
				}
				runs = append(a.unsaved(o.storeDir), runs...)
				if o.json {
					return report.RunsJSON(a.env.Stdout, runs)
				}
				return report.Runs(a.env.Stdout, runs)
			}
			filter.Limit = o.limit
			facts, err := st.Facts(ctx, filter)
			if err != nil {
				return fmt.Errorf("selecting runs: %w", err)
			}
			if o.facts {
				if !o.showUser {
					for i := range facts {
						facts[i].User = ""
					}
				}
				if facts == nil {
					facts = []store.Facts{}
				}
				return report.WriteJSON(a.env.Stdout, facts)
			}
			ids := make([]string, len(facts))
			for i, f := range facts {
				ids[i] = f.RunID
			}
			runs, err := st.RunsByID(ctx, ids)
			if err != nil {
				return fmt.Errorf("listing runs: %w", err)
			}
			if o.json {
				return report.RunsJSON(a.env.Stdout, runs)
			}
			if len(runs) == 0 {
				_, err := fmt.Fprintln(a.env.Stdout, "No runs match.")
				return err
			}
			return report.Runs(a.env.Stdout, runs)
		}),
	}
	storeFlag(cmd, &o.storeDir)
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "print the runs as a JSON array")
	f.IntVarP(&o.limit, "limit", "n", 20, "show at most `N` runs")
	o.factsFlags.register(f, "")
	f.BoolVar(&o.facts, "facts", false, "print the selected runs' facts (what the fleet report reads) as a JSON array")
	f.BoolVar(&o.showUser, "show-user", false, "with --facts: include the user each run ran as (left out by default)")
	return cmd
}

// failureClasses are the values of --failure: the taxonomy, and the two
// the recorder derives (none, unknown).
func failureClasses() []string {
	return append(slices.Clone(telemetry.FailureClasses), telemetry.FailureNone, telemetry.FailureUnknown)
}

// filter turns the flags into a store.FactsFilter; filtered is false when
// no filter flag is set.
func (o factsFlags) filter(now time.Time) (f store.FactsFilter, filtered bool, err error) {
	if strings.TrimSpace(o.since) != "" {
		if f.Since, err = parseWhen(o.since, now, false); err != nil {
			return f, false, fmt.Errorf("--since: %w", err)
		}
	}
	if o.until != "" {
		if f.Until, err = parseWhen(o.until, now, true); err != nil {
			return f, false, fmt.Errorf("--until: %w", err)
		}
	}
	if o.changed != "" && !slices.Contains(store.ChangeClasses, o.changed) {
		return f, false, fmt.Errorf("--changed %q: want one of %s", o.changed, strings.Join(store.ChangeClasses, ", "))
	}
	if o.failure != "" && !slices.Contains(failureClasses(), o.failure) {
		return f, false, fmt.Errorf("--failure %q: want one of %s", o.failure, strings.Join(failureClasses(), ", "))
	}
	if o.label != "" {
		if k, _, ok := strings.Cut(o.label, "="); !ok || k == "" {
			return f, false, fmt.Errorf("--label %q: want KEY=VALUE", o.label)
		}
	}
	f.Repo, f.Team, f.Org, f.Agent, f.Model = o.repo, o.team, o.org, o.agent, o.model
	f.Failure, f.Alert, f.Changed = o.failure, o.alert, o.changed
	f.PR, f.Session, f.Label = o.pr, o.session, o.label
	filtered = !f.Since.IsZero() || !f.Until.IsZero() || f.Repo != "" || f.Team != "" || f.Org != "" || f.Agent != "" ||
		f.Model != "" || f.Failure != "" || f.Alert != "" || f.Changed != "" || f.PR != "" || f.Session != "" || f.Label != ""
	return f, filtered, nil
}

var daysWeeks = regexp.MustCompile(`^(\d+)([dw])$`)

// parseWhen reads --since/--until: a duration back from now (Go's units,
// and d and w), a date in local time (for --until, the end of that day),
// or an RFC 3339 time.
func parseWhen(s string, now time.Time, until bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if m := daysWeeks.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			return time.Time{}, fmt.Errorf("%q: too far back", s)
		}
		days := n
		if m[2] == "w" {
			days *= 7
		}
		return now.AddDate(0, 0, -days), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive duration (how long ago)", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		if until {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New(strconv.Quote(s) + ": want a duration (24h, 7d, 2w), a date (2026-12-01) or an RFC 3339 time")
}
