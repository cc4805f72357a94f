package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentwatch/agentwatch/termtext"
)

// WriteJSON writes the report as one indented JSON document (stable keys,
// docs/fleet.md).
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a terminal. Every value that came from
// a run (repository, team, URL, session) is escaped: a label is whatever
// the operator, the git remote or CI said, and a remote can be set by an
// earlier agent.
func WriteText(w io.Writer, r Report) error {
	return write(w, r, textStyle)
}

// WriteMarkdown writes the report as GitHub-flavoured Markdown (for a PR
// comment or a wiki page): the same sections as text, tables for lists.
func WriteMarkdown(w io.Writer, r Report) error {
	return write(w, r, markdownStyle)
}

type style int

const (
	textStyle style = iota
	markdownStyle
)

type printer struct {
	w     io.Writer
	style style
	err   error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// esc makes a run's value safe to print: terminal escapes and control
// characters shown as text, and in Markdown the characters that would
// make a table cell or a link of it.
func (p *printer) esc(s string) string {
	s = termtext.Escape(s)
	if p.style == markdownStyle {
		r := strings.NewReplacer("|", `\|`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "<", "&lt;", ">", "&gt;")
		s = r.Replace(s)
	}
	return s
}

func (p *printer) heading(n int, title string) {
	if p.style == markdownStyle {
		p.printf("\n## %d. %s\n\n", n, title)
		return
	}
	p.printf("\n%d. %s\n", n, title)
}

// table prints rows under a header: aligned columns in text, a pipe table
// in Markdown.
func (p *printer) table(header []string, rows [][]string) {
	if len(rows) == 0 {
		if p.style == markdownStyle {
			p.printf("_none_\n")
		} else {
			p.printf("   none\n")
		}
		return
	}
	for i, row := range rows {
		for j := range row {
			rows[i][j] = p.esc(row[j])
		}
	}
	if p.style == markdownStyle {
		p.printf("| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat(" --- |", len(header)))
		for _, row := range rows {
			p.printf("| %s |\n", strings.Join(row, " | "))
		}
		return
	}
	width := make([]int, len(header))
	for j, h := range header {
		width[j] = len([]rune(h))
	}
	for _, row := range rows {
		for j, c := range row {
			width[j] = max(width[j], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("   ")
		for j, c := range cells {
			b.WriteString(c)
			if j < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", width[j]-len([]rune(c))+2))
			}
		}
		p.printf("%s\n", b.String())
	}
	line(header)
	for _, row := range rows {
		line(row)
	}
}

func (p *printer) para(format string, args ...any) {
	if p.style == markdownStyle {
		p.printf(format+"\n\n", args...)
		return
	}
	p.printf("   "+format+"\n", args...)
}

func write(w io.Writer, r Report, st style) error {
	p := &printer{w: w, style: st}
	window := "all runs"
	switch {
	case r.Since != nil && r.Until != nil:
		window = "runs from " + r.Since.Format("2006-01-02 15:04") + " to " + r.Until.Format("2006-01-02 15:04") + " UTC"
	case r.Since != nil:
		window = "runs since " + r.Since.Format("2006-01-02 15:04") + " UTC"
	case r.Until != nil:
		window = "runs until " + r.Until.Format("2006-01-02 15:04") + " UTC"
	}
	if st == markdownStyle {
		p.printf("# agentwatch report\n\n%s: %d runs, %d sessions\n", window, r.Runs, r.Sessions)
	} else {
		p.printf("agentwatch report — %s: %d runs, %d sessions\n", window, r.Runs, r.Sessions)
	}

	p.heading(1, "Runs that changed code, dependencies, workflows or secrets")
	c := r.Changes
	var rows [][]string
	for _, x := range []struct {
		what string
		set  RunSet
	}{{"code", c.Code}, {"tests", c.Tests}, {"dependencies", c.Deps}, {"workflows/CI", c.Workflows}, {"secrets-related", c.Secrets}, {"config", c.Config}} {
		rows = append(rows, []string{x.what, strconv.Itoa(x.set.Runs), strconv.Itoa(x.set.Files), ids(x.set.IDs, x.set.Runs)})
	}
	p.table([]string{"CHANGED", "RUNS", "FILES", "RUN IDS"}, rows)

	p.heading(2, "Sessions that retried without progress")
	rt := r.Retries
	p.para("%d runs in %d sessions; waste %s tokens, %s", rt.Runs, rt.Sessions, tokens(rt.WasteTokens), usd(rt.WasteUSD))
	rows = nil
	for _, g := range rt.BySession {
		rows = append(rows, []string{g.Session, strconv.Itoa(g.Runs), tokens(g.WasteTokens), usd(g.WasteUSD)})
	}
	if len(rows) > 0 {
		p.table([]string{"SESSION", "RUNS", "WASTE TOKENS", "WASTE COST"}, rows)
	}
	rows = nil
	for _, it := range rt.Items {
		rows = append(rows, []string{it.RunID, strconv.Itoa(it.Commands), strconv.Itoa(it.Calls), tokens(it.WasteTokens), usd(it.WasteUSD)})
	}
	if len(rows) > 0 {
		p.table([]string{"RUN", "REPEATED COMMANDS", "REPEATED MODEL CALLS", "WASTE TOKENS", "WASTE COST"}, rows)
	}

	p.heading(3, "Pull requests lacking test output, a security scan or an approval")
	pr := r.PRs
	p.para("%d pull requests: %d without test output, %d without a security scan, %d without an approval; %d runs have no pull-request link",
		pr.Total, pr.WithoutTestsCount, pr.WithoutScanCount, pr.WithoutApprovalCount, pr.RunsWithoutPRLink)
	rows = nil
	for _, x := range []struct {
		what string
		l    []PRInfo
	}{{"no test output", pr.WithoutTests}, {"no security scan", pr.WithoutScan}, {"no approval", pr.WithoutApproval}} {
		for _, i := range x.l {
			rows = append(rows, []string{x.what, i.URL, ids(i.RunIDs, len(i.RunIDs))})
		}
	}
	p.table([]string{"LACKS", "PULL REQUEST", "RUNS"}, rows)

	p.heading(4, "Cost: percentiles, roll-ups and spikes")
	co := r.Cost
	t := co.Total
	p.para("total %s over %d runs (%d with model calls and no cost); tokens in %s, out %s, cache read %s, cache write %s, reasoning %s; retry waste %s",
		usd(t.CostUSD), t.Runs, co.Unpriced, tokens(t.InputTokens), tokens(t.OutputTokens), tokens(t.CacheReadTokens),
		tokens(t.CacheWriteTokens), tokens(t.ReasoningTokens), usd(t.RetryWasteUSD))
	p.para("per run: %s; per session: %s", pct(co.PerRun), pct(co.Session))
	for _, g := range co.Groups {
		rows = nil
		for _, x := range g.Groups {
			rows = append(rows, []string{x.Key, strconv.Itoa(x.Totals.Runs), usd(x.Totals.CostUSD),
				usd(x.PerRun.P50), usd(x.PerRun.P95), usd(x.PerRun.P99), usd(x.Session.P99),
				tokens(x.Totals.InputTokens), tokens(x.Totals.OutputTokens), usd(x.Totals.RetryWasteUSD)})
		}
		p.table([]string{strings.ToUpper(g.By), "RUNS", "COST", "P50", "P95", "P99", "SESSION P99", "IN", "OUT", "RETRY WASTE"}, rows)
	}
	rows = nil
	for _, x := range co.Models {
		rows = append(rows, []string{x.Key, strconv.Itoa(x.Totals.ModelCalls), usd(x.Totals.CostUSD),
			tokens(x.Totals.InputTokens), tokens(x.Totals.OutputTokens), tokens(x.Totals.CacheReadTokens), tokens(x.Totals.ReasoningTokens)})
	}
	p.table([]string{"MODEL", "CALLS", "COST", "IN", "OUT", "CACHE READ", "REASONING"}, rows)
	if len(co.Spikes) == 0 {
		p.para("no spikes (a group of at least 5 priced runs spikes when its p99 run cost is at least %s× its median)", strconv.FormatFloat(co.SpikeFactor, 'g', -1, 64))
	} else {
		rows = nil
		for _, s := range co.Spikes {
			rows = append(rows, []string{s.By + " " + s.Key, usd(s.P50), usd(s.P99), strconv.FormatFloat(s.Factor, 'f', 1, 64) + "×", ids(s.RunIDs, len(s.RunIDs))})
		}
		p.table([]string{"SPIKE", "P50", "P99", "FACTOR", "RUNS BEHIND IT"}, rows)
	}

	p.heading(5, "Failure classes that repeat")
	rows = nil
	for _, f := range r.Failures {
		rows = append(rows, []string{f.Class, strconv.Itoa(f.Runs), counts(f.Agents), counts(f.Models), counts(f.Environments), counts(f.Repos)})
	}
	p.table([]string{"FAILURE", "RUNS", "AGENTS", "MODELS", "ENVIRONMENTS", "REPOS"}, rows)

	p.heading(6, "Telemetry fields missing from the traces")
	rows = nil
	for _, m := range r.Missing {
		rows = append(rows, []string{m.Field, strconv.Itoa(m.Runs), strconv.FormatFloat(100*m.Share, 'f', 0, 64) + "%", dash(m.Example)})
	}
	p.table([]string{"FIELD", "RUNS MISSING", "SHARE", "EXAMPLE"}, rows)
	return p.err
}

func ids(l []string, total int) string {
	if len(l) == 0 {
		return "-"
	}
	s := strings.Join(l, " ")
	if total > len(l) {
		s += " … " + strconv.Itoa(total-len(l)) + " more"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func usd(v float64) string {
	switch {
	case v == 0:
		return "$0"
	case v < 0.01:
		return "$" + strconv.FormatFloat(v, 'f', 4, 64)
	}
	return "$" + strconv.FormatFloat(v, 'f', 2, 64)
}

func tokens(n int64) string {
	switch {
	case n >= 10_000_000:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n >= 10_000:
		return strconv.FormatInt(n/1000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

func pct(p Percentiles) string {
	if p.N == 0 {
		return "no priced runs"
	}
	return fmt.Sprintf("p50 %s, p95 %s, p99 %s, max %s (n=%d)", usd(p.P50), usd(p.P95), usd(p.P99), usd(p.Max), p.N)
}

func counts(cs []Count) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Value+" ("+strconv.Itoa(c.Runs)+")")
	}
	return strings.Join(parts, ", ")
}
