package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func fact(id string, min int, mut func(*store.Facts)) store.Facts {
	f := store.Facts{RunID: id, Start: t0.Add(time.Duration(min) * time.Minute), End: t0.Add(time.Duration(min+1) * time.Minute),
		Status: store.StatusComplete, Agent: "claude", Environment: "local", ExitCode: 0}
	if mut != nil {
		mut(&f)
	}
	return f
}

func priced(usd float64) func(*store.Facts) {
	return func(f *store.Facts) { f.CostUSD, f.HasCost, f.LLMCalls = usd, true, 1 }
}

func TestPercentilesNearestRank(t *testing.T) {
	var v []float64
	for i := 1; i <= 100; i++ {
		v = append(v, float64(i))
	}
	got := percentiles(v)
	want := Percentiles{N: 100, P50: 50, P95: 95, P99: 99, Max: 100}
	if got != want {
		t.Fatalf("percentiles 1..100 = %+v, want %+v", got, want)
	}
	if got := percentiles([]float64{7}); got != (Percentiles{N: 1, P50: 7, P95: 7, P99: 7, Max: 7}) {
		t.Fatalf("one value: %+v", got)
	}
	if got := percentiles(nil); got != (Percentiles{}) {
		t.Fatalf("no values: %+v", got)
	}
	// Ten values: p95 and p99 are the tenth (ceil(9.5) = ceil(9.9) = 10).
	if got := percentiles([]float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}); got.P50 != 5 || got.P95 != 10 || got.P99 != 10 {
		t.Fatalf("ten values: %+v", got)
	}
}

func TestChangesAndRetries(t *testing.T) {
	facts := []store.Facts{
		fact("r1", 1, func(f *store.Facts) { f.ChangedCode, f.ChangedDeps = 3, 1 }),
		fact("r2", 2, func(f *store.Facts) { f.ChangedWorkflows, f.ChangedSecrets = 1, 2 }),
		fact("r3", 3, func(f *store.Facts) {
			f.SessionID = "s-1"
			f.RetryCalls, f.RetryWasteTokens, f.RetryWasteUSD = 2, 3000, 0.25
		}),
		fact("r4", 4, func(f *store.Facts) {
			f.SessionID = "s-1"
			f.Alerts = []store.Alert{{Rule: "retries_without_progress", Severity: "medium", Count: 2}, {Rule: "workflow_edit", Severity: "high", Count: 1}}
		}),
		fact("r5", 5, func(f *store.Facts) { f.ChangedCode = 1 }),
	}
	r := Build(facts, Options{})
	if r.Runs != 5 || r.Sessions != 4 {
		t.Fatalf("runs %d sessions %d, want 5 and 4", r.Runs, r.Sessions)
	}
	c := r.Changes
	if !reflect.DeepEqual(c.Code, RunSet{Runs: 2, Files: 4, IDs: []string{"r5", "r1"}}) {
		t.Errorf("code: %+v", c.Code)
	}
	if !reflect.DeepEqual(c.Deps, RunSet{Runs: 1, Files: 1, IDs: []string{"r1"}}) ||
		!reflect.DeepEqual(c.Workflows, RunSet{Runs: 1, Files: 1, IDs: []string{"r2"}}) ||
		!reflect.DeepEqual(c.Secrets, RunSet{Runs: 1, Files: 2, IDs: []string{"r2"}}) {
		t.Errorf("deps %+v workflows %+v secrets %+v", c.Deps, c.Workflows, c.Secrets)
	}
	rt := r.Retries
	if rt.Runs != 2 || rt.Sessions != 1 || rt.WasteTokens != 3000 || rt.WasteUSD != 0.25 {
		t.Errorf("retries: %+v", rt)
	}
	wantItems := []RetryRun{
		{RunID: "r4", Session: "s-1", Commands: 2},
		{RunID: "r3", Session: "s-1", Calls: 2, WasteTokens: 3000, WasteUSD: 0.25},
	}
	if !reflect.DeepEqual(rt.Items, wantItems) {
		t.Errorf("retry items %+v, want %+v", rt.Items, wantItems)
	}
	if !reflect.DeepEqual(rt.BySession, []RetryGroup{{Session: "s-1", Runs: 2, WasteTokens: 3000, WasteUSD: 0.25}}) {
		t.Errorf("by session %+v", rt.BySession)
	}
}

func TestPullRequests(t *testing.T) {
	const a, b, c = "https://github.com/acme/api/pull/1", "https://github.com/acme/api/pull/2", "https://github.com/acme/web/pull/3"
	facts := []store.Facts{
		fact("a1", 1, func(f *store.Facts) { f.PRURL, f.Repo, f.TestRuns, f.SecretScan = a, "acme/api", 2, "clean" }),
		fact("a2", 2, func(f *store.Facts) { f.PRURL, f.Repo, f.Review = a, "acme/api", "approved" }),
		fact("b1", 3, func(f *store.Facts) { f.PRURL, f.Repo, f.SecretScan = b, "acme/api", "findings:2" }),
		fact("c1", 4, func(f *store.Facts) {
			f.PRURL, f.Repo, f.TestRuns, f.SecretScan, f.Review = c, "acme/web", 1, "not_run", "rejected"
		}),
		fact("n1", 5, nil),
	}
	p := Build(facts, Options{}).PRs
	if p.Total != 3 || p.RunsWithoutPRLink != 1 {
		t.Fatalf("total %d without link %d", p.Total, p.RunsWithoutPRLink)
	}
	urls := func(l []PRInfo) []string {
		var out []string
		for _, i := range l {
			out = append(out, i.URL)
		}
		return out
	}
	// Newest run first: c (4), b (3), a (2).
	if got := urls(p.WithoutTests); !reflect.DeepEqual(got, []string{b}) {
		t.Errorf("without tests %v", got)
	}
	if got := urls(p.WithoutScan); !reflect.DeepEqual(got, []string{c}) {
		t.Errorf("without scan %v", got)
	}
	if got := urls(p.WithoutApproval); !reflect.DeepEqual(got, []string{c, b}) {
		t.Errorf("without approval %v", got)
	}
	if got := p.WithoutApproval[1]; !reflect.DeepEqual(got.RunIDs, []string{"b1"}) || got.Repo != "acme/api" {
		t.Errorf("pr b: %+v", got)
	}
	if p.WithoutTestsCount != 1 || p.WithoutScanCount != 1 || p.WithoutApprovalCount != 2 {
		t.Errorf("counts: tests %d scan %d approval %d", p.WithoutTestsCount, p.WithoutScanCount, p.WithoutApprovalCount)
	}
	// Capped lists, uncapped counts.
	capped := Build(facts, Options{MaxRuns: 1}).PRs
	if got := urls(capped.WithoutApproval); !reflect.DeepEqual(got, []string{c}) || capped.WithoutApprovalCount != 2 {
		t.Errorf("capped: %v, count %d", got, capped.WithoutApprovalCount)
	}
}

func TestCostGroupsAndSpikes(t *testing.T) {
	var facts []store.Facts
	// Team a: 9 runs at $1 and one at $10 (p50 1, p99 10: a spike of 10×).
	for i := range 10 {
		usd := 1.0
		if i == 7 {
			usd = 10
		}
		facts = append(facts, fact(fmt.Sprintf("a%02d", i), i, func(f *store.Facts) {
			priced(usd)(f)
			f.Team, f.Repo, f.SessionID = "a", "acme/api", fmt.Sprintf("sa%d", i/2) // sessions of two runs
			f.InputTokens, f.OutputTokens, f.CacheReadTokens, f.ReasoningTokens = 100, 10, 50, 5
			f.Model = "claude-opus-5-5"
		}))
	}
	// Team b: five runs at $2, steady; one unpriced run with calls.
	for i := range 5 {
		facts = append(facts, fact(fmt.Sprintf("b%02d", i), 20+i, func(f *store.Facts) {
			priced(2)(f)
			f.Team, f.Repo = "b", "acme/web"
			f.Model = "gpt-4o"
		}))
	}
	facts = append(facts, fact("u1", 30, func(f *store.Facts) { f.LLMCalls, f.Team = 3, "b" }))
	r := Build(facts, Options{})
	c := r.Cost
	if c.Total.Runs != 16 || c.Total.CostUSD != 29 || c.Unpriced != 1 || c.Total.ModelCalls != 18 {
		t.Fatalf("total %+v unpriced %d", c.Total, c.Unpriced)
	}
	if c.Total.InputTokens != 1000 || c.Total.CacheReadTokens != 500 || c.Total.ReasoningTokens != 50 {
		t.Errorf("tokens %+v", c.Total)
	}
	if c.PerRun.N != 15 || c.PerRun.P50 != 1 || c.PerRun.P99 != 10 || c.PerRun.Max != 10 {
		t.Errorf("per run %+v", c.PerRun)
	}
	// Sessions: sa0..sa4 ($2, $2, $2, $11, $2) and b00..b04 ($2 each).
	if c.Session.N != 10 || c.Session.P50 != 2 || c.Session.P99 != 11 {
		t.Errorf("per session %+v", c.Session)
	}
	if len(c.Groups) != 2 || c.Groups[0].By != "team" || c.Groups[1].By != "repo" {
		t.Fatalf("groups %+v", c.Groups)
	}
	team := c.Groups[0].Groups
	if len(team) != 2 || team[0].Key != "a" || team[0].Totals.CostUSD != 19 || team[1].Key != "b" || team[1].Totals.Runs != 6 {
		t.Errorf("team groups %+v", team)
	}
	if team[0].PerRun.P50 != 1 || team[0].PerRun.P95 != 10 || team[0].Session.P99 != 11 {
		t.Errorf("team a percentiles %+v %+v", team[0].PerRun, team[0].Session)
	}
	want := []Spike{
		{By: "repo", Key: "acme/api", P50: 1, P99: 10, Factor: 10, RunIDs: []string{"a07"}},
		{By: "team", Key: "a", P50: 1, P99: 10, Factor: 10, RunIDs: []string{"a07"}},
	}
	if !reflect.DeepEqual(c.Spikes, want) {
		t.Errorf("spikes %+v, want %+v", c.Spikes, want)
	}
	if len(c.Models) != 3 || c.Models[0].Key != "claude-opus-5-5" || c.Models[0].Totals.CostUSD != 19 || c.Models[2].Key != Unlabelled {
		t.Errorf("models %+v", c.Models)
	}
	// By user is never computed without the flag.
	r = Build(facts, Options{GroupBy: []string{ByUser}})
	if len(r.Cost.Groups) != 0 {
		t.Errorf("user groups without ByUser: %+v", r.Cost.Groups)
	}
}

func TestFailuresAndMissing(t *testing.T) {
	facts := []store.Facts{
		fact("f1", 1, func(f *store.Facts) {
			f.FailureClass, f.Model, f.Missing = "test_failure", "m1", []string{"cost", "review"}
		}),
		fact("f2", 2, func(f *store.Facts) {
			f.FailureClass, f.Model, f.Agent, f.Environment, f.Missing = "test_failure", "m2", "aider", "ci", []string{"review"}
		}),
		fact("f3", 3, func(f *store.Facts) { f.FailureClass, f.Missing = "dependency", []string{"review", "pr_link"} }),
		fact("f4", 4, func(f *store.Facts) { f.FailureClass = "none" }),
	}
	r := Build(facts, Options{})
	want := []FailureRepeat{{
		Class: "test_failure", Runs: 2,
		Agents:       []Count{{"aider", 1}, {"claude", 1}},
		Models:       []Count{{"m1", 1}, {"m2", 1}},
		Environments: []Count{{"ci", 1}, {"local", 1}},
		Repos:        []Count{{Unlabelled, 2}},
		RunIDs:       []string{"f2", "f1"},
	}}
	if !reflect.DeepEqual(r.Failures, want) {
		t.Errorf("failures %+v, want %+v", r.Failures, want)
	}
	if len(r.Missing) != len(store.MissingFields) {
		t.Fatalf("missing lists %d fields, want every one of %d", len(r.Missing), len(store.MissingFields))
	}
	got := map[string]MissingField{}
	for _, m := range r.Missing {
		got[m.Field] = m
	}
	if m := got["review"]; m.Runs != 3 || m.Share != 0.75 || m.Example != "f3" {
		t.Errorf("review missing %+v", m)
	}
	if m := got["cost"]; m.Runs != 1 || m.Share != 0.25 || m.Example != "f1" {
		t.Errorf("cost missing %+v", m)
	}
	if m := got["tokens"]; m.Runs != 0 || m.Share != 0 {
		t.Errorf("tokens missing %+v", m)
	}
}

// TestFormats: every format carries the same answers; hostile values from
// labels reach neither the terminal nor the Markdown raw.
func TestFormats(t *testing.T) {
	hostile := "evil\x1b]52;c;aGk=\x07|team\n[x](http://e)"
	facts := []store.Facts{
		fact("h1", 1, func(f *store.Facts) {
			priced(1.5)(f)
			f.Team, f.Repo, f.ChangedCode, f.PRURL, f.FailureClass = hostile, "acme/api", 1, "https://github.com/acme/api/pull/9", "test_failure"
		}),
		fact("h2", 2, func(f *store.Facts) { priced(0.5)(f); f.FailureClass = "test_failure" }),
	}
	r := Build(facts, Options{})
	var text, md, js bytes.Buffer
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "markdown": md.String()} {
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s output carries a raw escape:\n%q", name, out)
		}
		plain := strings.ReplaceAll(out, `\_`, "_") // Markdown escapes the underscore
		for _, want := range []string{"h1", "https://github.com/acme/api/pull/9", "test_failure", "$2.00", "acme/api"} {
			if !strings.Contains(plain, want) {
				t.Errorf("%s output lacks %q:\n%s", name, want, out)
			}
		}
		for i := 1; i <= 6; i++ {
			if !strings.Contains(out, fmt.Sprintf("%d. ", i)) {
				t.Errorf("%s output lacks section %d", name, i)
			}
		}
	}
	for _, line := range strings.Split(md.String(), "\n") {
		if strings.Contains(line, "evil") && strings.Count(line, "|")-strings.Count(line, `\|`) != 11 {
			t.Errorf("a label broke the Markdown table row: %q", line)
		}
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Cost.Total.CostUSD != 2 || back.Changes.Code.IDs[0] != "h1" || back.Failures[0].Runs != 2 {
		t.Errorf("json round trip: %+v", back)
	}
	var keys map[string]any
	_ = json.Unmarshal(js.Bytes(), &keys)
	for _, k := range []string{"runs", "sessions", "changes", "retries", "pull_requests", "cost", "failures", "missing_fields"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("json lacks key %q", k)
		}
	}
}
