package store

import (
	"errors"
	"strconv"
	"strings"
)

// The packed form of Facts: the whole value, children included, as one
// TEXT (run_facts.packed), which is what Facts reads for many runs. The
// columns and child tables hold the same facts, for SQL (filters, a
// PostgreSQL report) and for RunFacts; writeFacts writes both in one
// statement set, and the tests hold Facts, RunFacts and ExtractFacts
// equal.
//
// Why: the SQLite driver costs about 100 ns per column fetched, so the
// 56 columns and four child tables of 100,000 runs took 1.2-1.4 s to read
// even through the raw driver interface and on both cores; two columns
// (start_ns, packed) take under 0.1 s, and decoding here as much again.
//
// Format: packedVersion, then every field in a fixed order: a string as
// its byte length, ':' and its bytes (any content, no escaping); a number
// as decimal and ';' (floats in the shortest form that reads back the
// same); a list as its length and ';', then its elements. Strings decoded
// share the packed text's memory: one allocation per run.
const packedVersion = "F1;"

type packer struct{ b strings.Builder }

func (p *packer) str(s string) {
	p.b.WriteString(strconv.Itoa(len(s)))
	p.b.WriteByte(':')
	p.b.WriteString(s)
}

func (p *packer) int(n int64) {
	var buf [20]byte
	p.b.Write(strconv.AppendInt(buf[:0], n, 10))
	p.b.WriteByte(';')
}

func (p *packer) float(f float64) {
	var buf [32]byte
	p.b.Write(strconv.AppendFloat(buf[:0], f, 'g', -1, 64))
	p.b.WriteByte(';')
}

func (p *packer) bool(v bool) {
	if v {
		p.b.WriteString("1;")
	} else {
		p.b.WriteString("0;")
	}
}

// packFacts encodes f (see packedVersion).
func packFacts(f Facts) string {
	var p packer
	p.b.Grow(512 + len(f.Command) + 48*len(f.ChangedPaths))
	p.b.WriteString(packedVersion)
	for _, s := range []string{f.RunID, string(f.Status), f.Agent, f.Command, f.User, f.Host, f.Repo, f.RepoURL, f.Branch,
		f.BaseSHA, f.SessionID, f.Task, f.Team, f.Org, f.CIRunURL, f.CIRunID, f.PRURL, f.Environment, f.Model, f.Provider,
		f.FailureClass, f.ReviewFailureClass, f.SecretScan, f.Review, f.Reviewer} {
		p.str(s)
	}
	for _, n := range []int64{nanos(f.Start), nanos(f.End), int64(f.ExitCode), f.InputTokens, f.OutputTokens, f.CacheReadTokens,
		f.CacheWriteTokens, f.ReasoningTokens, int64(f.LLMCalls), int64(f.LLMCallsUnpriced), int64(f.RetryCalls),
		f.RetryWasteTokens, int64(f.RetryCommands), int64(f.TestRuns), int64(f.TestRunsPassed), int64(f.TestRunsFailed),
		int64(f.SecretFindings), int64(f.ChangedCode), int64(f.ChangedTests), int64(f.ChangedDeps), int64(f.ChangedWorkflows),
		int64(f.ChangedSecrets), int64(f.ChangedConfig), int64(f.ChangedDocs), int64(f.DiffFiles), int64(f.LinesAdded),
		int64(f.LinesRemoved), int64(f.Spans)} {
		p.int(n)
	}
	p.float(f.CostUSD)
	p.float(f.RetryWasteUSD)
	p.bool(f.HasCost)
	p.bool(f.HasTokens)
	keys := sortedLabelKeys(f.Labels)
	p.int(int64(len(keys)))
	for _, k := range keys {
		p.str(k)
		p.str(f.Labels[k])
	}
	p.int(int64(len(f.ChangedPaths)))
	for _, c := range f.ChangedPaths {
		p.str(c.Path)
		p.str(c.Class)
	}
	p.int(int64(len(f.Alerts)))
	for _, a := range f.Alerts {
		p.str(a.Rule)
		p.str(a.Severity)
		p.int(int64(a.Count))
	}
	for _, list := range [][]string{f.Gaps, f.Missing} {
		p.int(int64(len(list)))
		for _, s := range list {
			p.str(s)
		}
	}
	return p.b.String()
}

var errPacked = errors.New("malformed packed facts")

type unpacker struct {
	s   string
	err error
}

func (u *unpacker) num(end byte) int64 {
	if u.err != nil {
		return 0
	}
	var (
		n   int64
		neg bool
		i   int
	)
	if i < len(u.s) && u.s[i] == '-' {
		neg, i = true, 1
	}
	start := i
	for i < len(u.s) && u.s[i] >= '0' && u.s[i] <= '9' {
		n = n*10 + int64(u.s[i]-'0')
		i++
	}
	if i == start || i >= len(u.s) || u.s[i] != end || i-start > 19 {
		u.err = errPacked
		return 0
	}
	u.s = u.s[i+1:]
	if neg {
		return -n
	}
	return n
}

func (u *unpacker) int() int64 { return u.num(';') }

func (u *unpacker) str() string {
	n := u.num(':')
	if u.err != nil || n < 0 || n > int64(len(u.s)) {
		u.err = errPacked
		return ""
	}
	v := u.s[:n]
	u.s = u.s[n:]
	return v
}

func (u *unpacker) float() float64 {
	if u.err != nil {
		return 0
	}
	i := strings.IndexByte(u.s, ';')
	if i < 0 {
		u.err = errPacked
		return 0
	}
	f, err := strconv.ParseFloat(u.s[:i], 64)
	if err != nil {
		u.err = errPacked
		return 0
	}
	u.s = u.s[i+1:]
	return f
}

func (u *unpacker) count() int {
	n := u.int()
	if n < 0 || n > int64(len(u.s)) { // every element takes at least a byte
		u.err = errPacked
		return 0
	}
	return int(n)
}

// unpackFacts decodes what packFacts encoded; an error for anything else
// (another version included: the caller reads the columns instead).
func unpackFacts(s string, f *Facts) error { return unpackFactsLean(s, f, false) }

// unpackFactsLean is unpackFacts that, when lean, reads past the labels
// and the changed paths without keeping them (FactsFilter.WithoutPaths):
// building a map and a slice per run is most of the decoding.
func unpackFactsLean(s string, f *Facts, lean bool) error {
	*f = Facts{}
	rest, ok := strings.CutPrefix(s, packedVersion)
	if !ok {
		return errPacked
	}
	u := unpacker{s: rest}
	var status string
	for _, p := range []*string{&f.RunID, &status, &f.Agent, &f.Command, &f.User, &f.Host, &f.Repo, &f.RepoURL, &f.Branch,
		&f.BaseSHA, &f.SessionID, &f.Task, &f.Team, &f.Org, &f.CIRunURL, &f.CIRunID, &f.PRURL, &f.Environment, &f.Model, &f.Provider,
		&f.FailureClass, &f.ReviewFailureClass, &f.SecretScan, &f.Review, &f.Reviewer} {
		*p = u.str()
	}
	f.Status = Status(status)
	f.Start, f.End = fromNanos(u.int()), fromNanos(u.int())
	f.ExitCode = int(u.int())
	f.InputTokens, f.OutputTokens = u.int(), u.int()
	f.CacheReadTokens, f.CacheWriteTokens, f.ReasoningTokens = u.int(), u.int(), u.int()
	for _, p := range []*int{&f.LLMCalls, &f.LLMCallsUnpriced, &f.RetryCalls} {
		*p = int(u.int())
	}
	f.RetryWasteTokens = u.int()
	for _, p := range []*int{&f.RetryCommands, &f.TestRuns, &f.TestRunsPassed, &f.TestRunsFailed, &f.SecretFindings,
		&f.ChangedCode, &f.ChangedTests, &f.ChangedDeps, &f.ChangedWorkflows, &f.ChangedSecrets, &f.ChangedConfig, &f.ChangedDocs,
		&f.DiffFiles, &f.LinesAdded, &f.LinesRemoved, &f.Spans} {
		*p = int(u.int())
	}
	f.CostUSD, f.RetryWasteUSD = u.float(), u.float()
	f.HasCost, f.HasTokens = u.int() == 1, u.int() == 1
	if n := u.count(); n > 0 && lean {
		for range 2 * n {
			u.str()
		}
	} else if n > 0 {
		f.Labels = make(map[string]string, n)
		for range n {
			k := u.str()
			f.Labels[k] = u.str()
		}
	}
	if n := u.count(); n > 0 && lean {
		for range 2 * n {
			u.str()
		}
	} else if n > 0 {
		f.ChangedPaths = make([]Change, n)
		for i := range f.ChangedPaths {
			f.ChangedPaths[i] = Change{Path: u.str(), Class: u.str()}
		}
	}
	if n := u.count(); n > 0 {
		f.Alerts = make([]Alert, n)
		for i := range f.Alerts {
			f.Alerts[i] = Alert{Rule: u.str(), Severity: u.str(), Count: int(u.int())}
		}
	}
	for _, p := range []*[]string{&f.Gaps, &f.Missing} {
		if n := u.count(); n > 0 {
			*p = make([]string, n)
			for i := range *p {
				(*p)[i] = u.str()
			}
		}
	}
	if u.err == nil && u.s != "" {
		u.err = errPacked
	}
	return u.err
}
