// Package fleet answers the platform team's questions across runs: which
// runs changed what, which retried without progress, which pull requests
// lack evidence, where cost spikes, which failures repeat, and which
// telemetry is missing. It is pure computation over the run facts that
// the store keeps beside each trace (store.Facts): it reads no trace, no
// database and no sensor, so SQLite and PostgreSQL give the same answers.
package fleet

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// Dimensions a report groups by. User is only allowed behind an explicit
// option (Options.ByUser): the report is about teams and repositories,
// not people.
const (
	ByTeam    = "team"
	ByRepo    = "repo"
	ByOrg     = "org"
	BySession = "session"
	ByPR      = "pr"
	ByModel   = "model"
	ByAgent   = "agent"
	ByUser    = "user"
)

// GroupBys are the dimensions --group-by accepts (ByUser needs ByUser set).
var GroupBys = []string{ByTeam, ByRepo, ByOrg, BySession, ByPR, ByModel, ByAgent, ByUser}

// Unlabelled is the group of runs without a value for the dimension.
const Unlabelled = "(none)"

// Options shape a report.
type Options struct {
	Since, Until time.Time // the window the facts were selected for (echoed)
	GroupBy      []string  // cost groups; default team and repo
	ByUser       bool      // allow grouping by the person who ran the agent
	MaxRuns      int       // run ids listed per finding (default 20)
	SpikeFactor  float64   // a group spikes when p99 ≥ SpikeFactor × p50 (default 3)
	MinSpikeRuns int       // groups with fewer priced runs are not judged (default 5)
}

func (o *Options) defaults() {
	if len(o.GroupBy) == 0 {
		o.GroupBy = []string{ByTeam, ByRepo}
	}
	if o.MaxRuns <= 0 {
		o.MaxRuns = 20
	}
	if o.SpikeFactor <= 0 {
		o.SpikeFactor = 3
	}
	if o.MinSpikeRuns <= 0 {
		o.MinSpikeRuns = 5
	}
}

// Report is every answer, with stable JSON keys (docs/fleet.md).
type Report struct {
	Since    *time.Time `json:"since,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
	Runs     int        `json:"runs"`
	Sessions int        `json:"sessions"`

	Changes   Changes         `json:"changes"`
	Retries   Retries         `json:"retries"`
	PRs       PRs             `json:"pull_requests"`
	Cost      Cost            `json:"cost"`
	Failures  []FailureRepeat `json:"failures"`
	Missing   []MissingField  `json:"missing_fields"`
	Truncated bool            `json:"truncated,omitempty"` // run lists capped at Options.MaxRuns
}

// Changes answers question 1: which runs changed code, dependencies,
// workflow/CI files or secrets-related files.
type Changes struct {
	Code      RunSet `json:"code"`
	Tests     RunSet `json:"tests"`
	Deps      RunSet `json:"dependencies"`
	Workflows RunSet `json:"workflows"`
	Secrets   RunSet `json:"secrets"`
	Config    RunSet `json:"config"`
}

// RunSet is a count of runs and the newest of them.
type RunSet struct {
	Runs  int      `json:"runs"`
	Files int      `json:"files"`
	IDs   []string `json:"run_ids"`
}

func (s *RunSet) add(f *run, files, max int) {
	if files <= 0 {
		return
	}
	s.Runs++
	s.Files += files
	if len(s.IDs) < max {
		s.IDs = append(s.IDs, f.RunID)
	}
}

// Retries answers question 2: sessions that retried without progress,
// with the waste.
type Retries struct {
	Runs        int          `json:"runs"`
	Sessions    int          `json:"sessions"`
	WasteTokens int64        `json:"waste_tokens"`
	WasteUSD    float64      `json:"waste_usd"`
	Items       []RetryRun   `json:"items"`
	BySession   []RetryGroup `json:"by_session"`
}

// RetryRun is one run that retried.
type RetryRun struct {
	RunID       string  `json:"run_id"`
	Session     string  `json:"session"`
	Commands    int     `json:"repeated_commands"`
	Calls       int     `json:"repeated_model_calls"`
	WasteTokens int64   `json:"waste_tokens"`
	WasteUSD    float64 `json:"waste_usd"`
}

// RetryGroup is the waste of one session.
type RetryGroup struct {
	Session     string  `json:"session"`
	Runs        int     `json:"runs"`
	WasteTokens int64   `json:"waste_tokens"`
	WasteUSD    float64 `json:"waste_usd"`
}

// PRs answers question 3: pull requests lacking test output, a security
// scan status or a reviewer's approval.
type PRs struct {
	Total int `json:"total"`
	// The lists hold the newest Options.MaxRuns pull requests lacking
	// each; the counts are never capped.
	WithoutTests         []PRInfo `json:"without_tests"`
	WithoutScan          []PRInfo `json:"without_security_scan"`
	WithoutApproval      []PRInfo `json:"without_approval"`
	WithoutTestsCount    int      `json:"without_tests_count"`
	WithoutScanCount     int      `json:"without_security_scan_count"`
	WithoutApprovalCount int      `json:"without_approval_count"`
	RunsWithoutPRLink    int      `json:"runs_without_pr_link"`
}

// PRInfo is one pull request and the runs behind it.
type PRInfo struct {
	URL    string   `json:"url"`
	Repo   string   `json:"repo,omitempty"`
	RunIDs []string `json:"run_ids"`
}

// Cost answers question 4 and carries the roll-ups.
type Cost struct {
	Total   Totals       `json:"total"`
	PerRun  Percentiles  `json:"per_run"`
	Session Percentiles  `json:"per_session"`
	Groups  []CostGroups `json:"groups"`
	Models  []Rollup     `json:"by_model"`
	Spikes  []Spike      `json:"spikes"`
	// SpikeFactor is the rule the spikes were found by: p99 ≥ factor × p50.
	SpikeFactor float64 `json:"spike_factor"`
	Unpriced    int     `json:"runs_unpriced"` // runs with model calls and no cost
}

// Totals are summed spend and tokens.
type Totals struct {
	Runs             int     `json:"runs"`
	CostUSD          float64 `json:"cost_usd"`
	InputTokens      int64   `json:"input_tokens"`
	OutputTokens     int64   `json:"output_tokens"`
	CacheReadTokens  int64   `json:"cache_read_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	ReasoningTokens  int64   `json:"reasoning_tokens"`
	ModelCalls       int     `json:"model_calls"`
	RetryWasteTokens int64   `json:"retry_waste_tokens"`
	RetryWasteUSD    float64 `json:"retry_waste_usd"`
}

func (t *Totals) add(f *store.Facts) {
	t.Runs++
	if f.HasCost {
		t.CostUSD += f.CostUSD
	}
	t.InputTokens += f.InputTokens
	t.OutputTokens += f.OutputTokens
	t.CacheReadTokens += f.CacheReadTokens
	t.CacheWriteTokens += f.CacheWriteTokens
	t.ReasoningTokens += f.ReasoningTokens
	t.ModelCalls += f.LLMCalls
	t.RetryWasteTokens += f.RetryWasteTokens
	t.RetryWasteUSD += f.RetryWasteUSD
}

// Percentiles of cost in USD (nearest rank), over the priced units.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// CostGroups is the roll-up by one dimension.
type CostGroups struct {
	By     string   `json:"by"`
	Groups []Rollup `json:"groups"`
}

// Rollup is the spend of one group.
type Rollup struct {
	Key     string      `json:"key"`
	Totals  Totals      `json:"totals"`
	PerRun  Percentiles `json:"per_run"`
	Session Percentiles `json:"per_session"`
}

// Spike is a group whose p99 run cost is SpikeFactor times its median,
// with the runs at or above its p99.
type Spike struct {
	By     string   `json:"by"`
	Key    string   `json:"key"`
	P50    float64  `json:"p50"`
	P99    float64  `json:"p99"`
	Factor float64  `json:"factor"`
	RunIDs []string `json:"run_ids"`
}

// FailureRepeat answers question 5: a failure class seen in more than
// one run, and across which tools (agents), models and environments.
type FailureRepeat struct {
	Class        string   `json:"class"`
	Runs         int      `json:"runs"`
	Agents       []Count  `json:"agents"`
	Models       []Count  `json:"models"`
	Environments []Count  `json:"environments"`
	Repos        []Count  `json:"repos"`
	RunIDs       []string `json:"run_ids"`
}

// Count is a value and how many runs had it.
type Count struct {
	Value string `json:"value"`
	Runs  int    `json:"runs"`
}

// MissingField answers question 6: the share of runs missing a field.
type MissingField struct {
	Field   string  `json:"field"`
	Runs    int     `json:"runs"`
	Share   float64 `json:"share"` // 0..1
	Example string  `json:"example_run_id,omitempty"`
}

// Build computes the report over the selected runs' facts.
func Build(facts []store.Facts, o Options) Report {
	o.defaults()
	r := Report{Runs: len(facts)}
	if !o.Since.IsZero() {
		s := o.Since.UTC()
		r.Since = &s
	}
	if !o.Until.IsZero() {
		u := o.Until.UTC()
		r.Until = &u
	}
	// Newest first, whatever order the store gave; each run's session
	// interned once (costs sums per session many times over).
	fs := make([]*run, len(facts))
	runs := make([]run, len(facts))
	sessions := map[string]int{}
	for i := range facts {
		s := session(&facts[i])
		n, ok := sessions[s]
		if !ok {
			n = len(sessions)
			sessions[s] = n
		}
		runs[i] = run{Facts: &facts[i], sess: n}
		fs[i] = &runs[i]
	}
	slices.SortStableFunc(fs, func(a, b *run) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(a.RunID, b.RunID)
	})
	r.Sessions = len(sessions)
	sums := &sessionSums{sum: make([]float64, len(sessions)), seen: make([]bool, len(sessions))}

	r.Changes = changes(fs, o.MaxRuns)
	r.Retries = retries(fs, o.MaxRuns)
	r.PRs = prs(fs, o.MaxRuns)
	r.Cost = cost(fs, o, sums)
	r.Failures = failures(fs, o.MaxRuns)
	r.Missing = missing(fs)
	r.Truncated = len(fs) > o.MaxRuns
	return r
}

// run is one run's facts with its session's index (Build).
type run struct {
	*store.Facts
	sess int
}

func session(f *store.Facts) string {
	if f.SessionID != "" {
		return f.SessionID
	}
	return f.RunID
}

func changes(fs []*run, max int) Changes {
	var c Changes
	for _, f := range fs {
		c.Code.add(f, f.ChangedCode, max)
		c.Tests.add(f, f.ChangedTests, max)
		c.Deps.add(f, f.ChangedDeps, max)
		c.Workflows.add(f, f.ChangedWorkflows, max)
		c.Secrets.add(f, f.ChangedSecrets, max)
		c.Config.add(f, f.ChangedConfig, max)
	}
	return c
}

// retryRules are the recorder's rules for repeating without progress
// (recorder/rules.go): a repeated command line with no file change
// between, and a denied action tried again.
func retryRule(rule string) bool { return rule == "retries_without_progress" || rule == "denied_loop" }

func retries(fs []*run, max int) Retries {
	var r Retries
	bySession := map[int]*RetryGroup{} // by session index: few runs retry, so a map
	for _, f := range fs {
		cmds := f.RetryCommands
		if cmds == 0 {
			for _, a := range f.Alerts {
				if retryRule(a.Rule) {
					cmds += a.Count
				}
			}
		}
		if cmds == 0 && f.RetryCalls == 0 {
			continue
		}
		r.Runs++
		r.WasteTokens += f.RetryWasteTokens
		r.WasteUSD += f.RetryWasteUSD
		s := session(f.Facts)
		g := bySession[f.sess]
		if g == nil {
			g = &RetryGroup{Session: s}
			bySession[f.sess] = g
		}
		g.Runs++
		g.WasteTokens += f.RetryWasteTokens
		g.WasteUSD += f.RetryWasteUSD
		if len(r.Items) < max {
			r.Items = append(r.Items, RetryRun{RunID: f.RunID, Session: s, Commands: cmds, Calls: f.RetryCalls,
				WasteTokens: f.RetryWasteTokens, WasteUSD: f.RetryWasteUSD})
		}
	}
	r.Sessions = len(bySession)
	for _, g := range bySession {
		r.BySession = append(r.BySession, *g)
	}
	slices.SortFunc(r.BySession, func(a, b RetryGroup) int {
		if c := cmp.Compare(b.WasteTokens, a.WasteTokens); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Runs, a.Runs); c != 0 {
			return c
		}
		return strings.Compare(a.Session, b.Session)
	})
	if len(r.BySession) > max {
		r.BySession = r.BySession[:max]
	}
	return r
}

// prs groups runs by their pull request. A pull request has test output
// when any of its runs ran tests, a security-scan status when any run's
// scan is clean or reported findings, and approval when the latest
// review of any of its runs is "approved".
func prs(fs []*run, max int) PRs {
	type pr struct {
		info                  PRInfo
		tests, scan, approved bool
		newest                time.Time
	}
	byURL := map[string]*pr{}
	var order []*pr
	var out PRs
	for _, f := range fs {
		if f.PRURL == "" {
			out.RunsWithoutPRLink++
			continue
		}
		p := byURL[f.PRURL]
		if p == nil {
			p = &pr{info: PRInfo{URL: f.PRURL, Repo: f.Repo}, newest: f.Start}
			byURL[f.PRURL] = p
			order = append(order, p)
		}
		if len(p.info.RunIDs) < max {
			p.info.RunIDs = append(p.info.RunIDs, f.RunID)
		}
		p.tests = p.tests || f.TestRuns > 0
		p.scan = p.scan || scanned(f.SecretScan)
		p.approved = p.approved || f.Review == "approved"
	}
	out.Total = len(order)
	out.WithoutTests, out.WithoutScan, out.WithoutApproval = []PRInfo{}, []PRInfo{}, []PRInfo{}
	lacks := func(l *[]PRInfo, n *int, p *pr) {
		*n++
		if len(*l) < max {
			*l = append(*l, p.info)
		}
	}
	for _, p := range order {
		if !p.tests {
			lacks(&out.WithoutTests, &out.WithoutTestsCount, p)
		}
		if !p.scan {
			lacks(&out.WithoutScan, &out.WithoutScanCount, p)
		}
		if !p.approved {
			lacks(&out.WithoutApproval, &out.WithoutApprovalCount, p)
		}
	}
	return out
}

func scanned(s string) bool {
	return s == "clean" || strings.HasPrefix(s, "findings")
}

func groupKey(f *run, by string) string {
	var v string
	switch by {
	case ByTeam:
		v = f.Team
	case ByRepo:
		v = f.Repo
	case ByOrg:
		v = f.Org
	case BySession:
		v = session(f.Facts)
	case ByPR:
		v = f.PRURL
	case ByModel:
		v = f.Model
	case ByAgent:
		v = f.Agent
	case ByUser:
		v = f.User
	}
	if v == "" {
		return Unlabelled
	}
	return v
}

// percentiles uses the nearest-rank method: the p-th percentile of n
// sorted values is the value at rank ceil(p/100 × n).
func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(v)))) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	return Percentiles{N: len(v), P50: rank(50), P95: rank(95), P99: rank(99), Max: v[len(v)-1]}
}

// sessionSums adds up cost per session without hashing session ids:
// every run carries its session's index (Build).
type sessionSums struct {
	sum     []float64
	seen    []bool
	touched []int
}

// costs are the priced runs' costs and the sessions' summed costs.
func costs(fs []*run, ss *sessionSums) (perRun, perSession []float64) {
	for _, f := range fs {
		if !f.HasCost {
			continue
		}
		perRun = append(perRun, f.CostUSD)
		if !ss.seen[f.sess] {
			ss.seen[f.sess] = true
			ss.touched = append(ss.touched, f.sess)
		}
		ss.sum[f.sess] += f.CostUSD
	}
	for _, i := range ss.touched {
		perSession = append(perSession, ss.sum[i])
		ss.sum[i], ss.seen[i] = 0, false
	}
	ss.touched = ss.touched[:0]
	return perRun, perSession
}

func rollup(key string, fs []*run, ss *sessionSums) (Rollup, []float64) {
	r := Rollup{Key: key}
	for _, f := range fs {
		r.Totals.add(f.Facts)
	}
	perRun, sess := costs(fs, ss)
	r.PerRun, r.Session = percentiles(perRun), percentiles(sess)
	return r, perRun
}

func groupFacts(fs []*run, by string) (keys []string, groups map[string][]*run) {
	groups = map[string][]*run{}
	for _, f := range fs {
		k := groupKey(f, by)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], f)
	}
	return keys, groups
}

func cost(fs []*run, o Options, ss *sessionSums) Cost {
	c := Cost{SpikeFactor: o.SpikeFactor}
	for _, f := range fs {
		c.Total.add(f.Facts)
		if !f.HasCost && f.LLMCalls > 0 {
			c.Unpriced++
		}
	}
	perRun, sess := costs(fs, ss)
	c.PerRun, c.Session = percentiles(perRun), percentiles(sess)
	byCost := func(a, b Rollup) int {
		if x := cmp.Compare(b.Totals.CostUSD, a.Totals.CostUSD); x != 0 {
			return x
		}
		return strings.Compare(a.Key, b.Key)
	}
	c.Groups = []CostGroups{}
	c.Spikes = []Spike{}
	for _, by := range o.GroupBy {
		if by == ByUser && !o.ByUser {
			continue // refused by the caller already; never silently shown
		}
		keys, groups := groupFacts(fs, by)
		g := CostGroups{By: by}
		for _, k := range keys {
			ru, perRun := rollup(k, groups[k], ss)
			g.Groups = append(g.Groups, ru)
			if sp, ok := spike(by, k, groups[k], ru.PerRun, perRun, o); ok {
				c.Spikes = append(c.Spikes, sp)
			}
		}
		slices.SortFunc(g.Groups, byCost)
		c.Groups = append(c.Groups, g)
	}
	slices.SortFunc(c.Spikes, func(a, b Spike) int {
		if x := cmp.Compare(b.Factor, a.Factor); x != 0 {
			return x
		}
		if x := strings.Compare(a.By, b.By); x != 0 {
			return x
		}
		return strings.Compare(a.Key, b.Key)
	})
	keys, groups := groupFacts(fs, ByModel)
	for _, k := range keys {
		ru, _ := rollup(k, groups[k], ss)
		c.Models = append(c.Models, ru)
	}
	slices.SortFunc(c.Models, byCost)
	return c
}

// spike: a group with at least MinSpikeRuns priced runs whose p99 run
// cost is at least SpikeFactor times its median; the runs behind it are
// those at or above the p99, most expensive first.
func spike(by, key string, fs []*run, p Percentiles, perRun []float64, o Options) (Spike, bool) {
	if len(perRun) < o.MinSpikeRuns {
		return Spike{}, false
	}
	if p.P50 <= 0 || p.P99 < o.SpikeFactor*p.P50 {
		return Spike{}, false
	}
	sp := Spike{By: by, Key: key, P50: p.P50, P99: p.P99, Factor: p.P99 / p.P50}
	var behind []*run
	for _, f := range fs {
		if f.HasCost && f.CostUSD >= p.P99 {
			behind = append(behind, f)
		}
	}
	slices.SortStableFunc(behind, func(a, b *run) int { return cmp.Compare(b.CostUSD, a.CostUSD) })
	for _, f := range behind[:min(len(behind), o.MaxRuns)] {
		sp.RunIDs = append(sp.RunIDs, f.RunID)
	}
	return sp, true
}

// failures lists the failure classes of two or more runs, most runs
// first, with the spread across agents, models and environments.
func failures(fs []*run, max int) []FailureRepeat {
	byClass := map[string][]*run{}
	for _, f := range fs {
		c := f.FailureClass
		if c == "" || c == telemetry.FailureNone {
			continue
		}
		byClass[c] = append(byClass[c], f)
	}
	out := []FailureRepeat{}
	for c, runs := range byClass {
		if len(runs) < 2 {
			continue
		}
		fr := FailureRepeat{Class: c, Runs: len(runs)}
		fr.Agents = countBy(runs, func(f *run) string { return f.Agent })
		fr.Models = countBy(runs, func(f *run) string { return f.Model })
		fr.Environments = countBy(runs, func(f *run) string { return f.Environment })
		fr.Repos = countBy(runs, func(f *run) string { return f.Repo })
		for _, f := range runs[:min(len(runs), max)] {
			fr.RunIDs = append(fr.RunIDs, f.RunID)
		}
		out = append(out, fr)
	}
	slices.SortFunc(out, func(a, b FailureRepeat) int {
		if x := cmp.Compare(b.Runs, a.Runs); x != 0 {
			return x
		}
		return strings.Compare(a.Class, b.Class)
	})
	return out
}

func countBy(fs []*run, key func(*run) string) []Count {
	n := map[string]int{}
	for _, f := range fs {
		k := key(f)
		if k == "" {
			k = Unlabelled
		}
		n[k]++
	}
	out := make([]Count, 0, len(n))
	for k, v := range n {
		out = append(out, Count{Value: k, Runs: v})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if x := cmp.Compare(b.Runs, a.Runs); x != 0 {
			return x
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// missing reports every field of store.MissingFields, in that order,
// even at 0%: a zero is the evidence that the field is there.
func missing(fs []*run) []MissingField {
	idx := map[string]int{}
	out := make([]MissingField, len(store.MissingFields))
	for i, f := range store.MissingFields {
		idx[f] = i
		out[i].Field = f
	}
	for _, f := range fs {
		for _, m := range f.Missing {
			i, ok := idx[m]
			if !ok {
				idx[m] = len(out)
				i = len(out)
				out = append(out, MissingField{Field: m})
			}
			out[i].Runs++
			if out[i].Example == "" {
				out[i].Example = f.RunID
			}
		}
	}
	for i := range out {
		if len(fs) > 0 {
			out[i].Share = float64(out[i].Runs) / float64(len(fs))
		}
	}
	return out
}
