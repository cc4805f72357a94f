package recorder

// Alert rules over the whole run (telemetry.md "Built-in alert rules"),
// besides the ones raised where their evidence arrives (policy.go:
// unknown_domain, policy_bypass, workflow_edit, secret_access; classes.go:
// secret_found). Each is an agentwatch.alert event on the span that
// triggered it, counted on the root by finishPolicy.
//
// Decisions a reader of the trace should know:
//   - dependency_install (medium, when alerts.dependency_install): the
//     policy has no list of expected packages yet, so every
//     dependency_install span is unexpected; the message names the
//     manager and the packages from the command line ("from the
//     manifest" when none are named). One alert per span.
//   - retries_without_progress (medium, when alerts.retries_without_progress
//     = N > 0): N executions of the same command — the redacted command
//     line, whitespace-normalised, in the same working directory — with no
//     workspace change between one and the next. A change is a successful
//     write (create, write, truncate, rename, delete, chmod) of a workspace
//     path outside .git/, generated directories (node_modules/, dist/,
//     __pycache__/, …) and tool caches (.pytest_cache/, .mypy_cache/, …):
//     those change on every run of a tool without changing the diff. Writes
//     arrive in time order from the one eBPF ring buffer, so "a change
//     since the previous execution" is "the latest write is newer than
//     that execution". Only attempts alert: a classified command (test_run,
//     dependency_install, …) or one that failed; `git status` run five
//     times is not a retry. A command under a span that already raised
//     this alert does not raise it again (`bash -c 'go test'` alerts on
//     bash, not also on go test). One alert per streak, on the execution
//     that reaches N; a streak broken by a change starts again.
//   - denied_loop (medium, threshold alerts.retries_without_progress, the
//     policy's one repetition count): the same denied destination (by
//     name, else address:port, across processes), the same refused DNS
//     name, or the same protected path refused N times or more. A lookup
//     asks for A and AAAA, so DNS attempts are the refusals divided by the
//     record types asked. The alert is on the first span of the
//     destination.
//   - pull_request_without_tests (medium, always): a pull_request span that
//     did not fail, with no passing test_run that started after the last
//     workspace change (as above) before the pull request and ended before
//     it.
//   - missing_telemetry (medium, always): telemetry gaps (a sensor missing
//     or degraded) or events dropped; on the root.

import (
	"fmt"
	"github.com/agentwatch/agentwatch/fileclass"
	"sort"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/trace"
)

const maxRetryKeys = 4096 // distinct command lines remembered for retries_without_progress

// cacheDirs are workspace directories tools rewrite on every run.
var cacheDirs = fileclass.NewSegmentSet(".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".cache/", ".tox/", ".nox/", ".gradle/", ".eslintcache", ".turbo/", ".parcel-cache/")

// ruleState is what the whole-run rules need from the live stream.
type ruleState struct {
	lastWrite     time.Time // latest workspace change (see isProgressWrite)
	lastWritePath string
	retries       map[string]*retryState
	rep           map[*procSpan]int       // consecutive executions without a change, this one included
	prBefore      map[*procSpan]time.Time // pull_request spans: the last change before them
	prBeforePath  map[*procSpan]string
	byID          map[trace.SpanID]*procSpan // every exec'd span, for ancestor walks
}

type retryState struct {
	count int
	last  time.Time
}

func (r *Recorder) rs() *ruleState {
	if r.rules == nil {
		r.rules = &ruleState{
			retries:      make(map[string]*retryState),
			rep:          make(map[*procSpan]int),
			prBefore:     make(map[*procSpan]time.Time),
			prBeforePath: make(map[*procSpan]string),
			byID:         make(map[trace.SpanID]*procSpan),
		}
	}
	return r.rules
}

// noteExec runs for every exec'd span, after classification.
func (r *Recorder) noteExec(s *procSpan) {
	st := r.rs()
	st.byID[s.id] = s
	key := s.cwd + "\x00" + strings.Join(strings.Fields(CommandLine(s.args)), " ")
	rt := st.retries[key]
	if rt == nil {
		if len(st.retries) >= maxRetryKeys {
			clear(st.retries) // forgetting only delays an alert
		}
		rt = &retryState{}
		st.retries[key] = rt
	}
	if rt.count > 0 && !st.lastWrite.After(rt.last) {
		rt.count++
	} else {
		rt.count = 1
	}
	rt.last = s.start
	st.rep[s] = rt.count
	if s.cls != nil && s.cls.class == telemetry.SpanPullRequest {
		st.prBefore[s] = st.lastWrite
		st.prBeforePath[s] = st.lastWritePath
	}
}

// noteWrite runs for every successful write an eBPF-side sensor saw.
func (r *Recorder) noteWrite(p, newPath string, t time.Time) {
	if !r.classifyPath(p).progress && (newPath == "" || !r.classifyPath(newPath).progress) {
		return
	}
	st := r.rs()
	if t.After(st.lastWrite) {
		st.lastWrite, st.lastWritePath = t, r.shown(p)
	}
}

// isProgressWrite: a workspace path whose change can change the diff.
func (r *Recorder) isProgressWrite(p string) bool {
	if !r.inWorkspace(p) || p == r.ws {
		return false
	}
	rel := strings.TrimPrefix(p[len(r.ws):], "/") // inWorkspace: p is r.ws + "/" + rel
	if rel == ".git" || strings.HasPrefix(rel, ".git/") || classifyFile(p, rel, false) == ClassGenerated {
		return false
	}
	return !cacheDirs.In(rel)
}

// finishRules raises the whole-run alerts. It runs after resolveClasses
// (classes are final) and before finishPolicy (which places the alerts).
func (r *Recorder) finishRules(end End) {
	st := r.rs()
	n := r.pol.Alerts.RetriesWithoutProgress

	for _, s := range r.spans {
		if s.isRoot || s.cls == nil || s.cls.class != telemetry.SpanDependencyInstall || !r.pol.Alerts.DependencyInstall {
			continue
		}
		what := "from the manifest"
		if len(s.cls.packages) > 0 {
			what = strings.Join(s.cls.packages, " ")
		}
		r.raise(s.id, s.start, telemetry.AlertDependencyInstall, telemetry.SeverityMedium, "",
			fmt.Sprintf("unexpected dependency install (%s): %s; the policy expects none (alerts.dependency_install)", s.cls.manager, what))
	}

	if n > 0 {
		alerted := make(map[*procSpan]bool)
		for _, s := range r.spans {
			// Once per streak, when it reaches N: a loop of 100 retries is
			// one finding, not 98.
			if s.isRoot || st.rep[s] != n || !retryWorthy(s) || r.underAlerted(s, alerted) {
				continue
			}
			alerted[s] = true
			r.raise(s.id, s.start, telemetry.AlertRetries, telemetry.SeverityMedium, "",
				fmt.Sprintf("%q run %d times in a row with no change to the workspace in between", shortLine(s.args), st.rep[s]))
		}
		r.deniedLoops(n)
	}

	for s, before := range st.prBefore {
		if s.cls == nil || s.cls.class != telemetry.SpanPullRequest || (s.exited && (s.exitCode != 0 || s.signal != 0)) {
			continue // demoted to its inner gh, or the PR was not opened
		}
		if r.passingTestBetween(before, s.start) {
			continue
		}
		msg := "pull request opened with no passing test_run"
		if !before.IsZero() {
			msg += " after the last workspace change (" + st.prBeforePath[s] + ")"
		}
		r.raise(s.id, s.start, telemetry.AlertPRWithoutTests, telemetry.SeverityMedium, "", msg)
	}

	var missing []string
	all := append([]string(nil), r.gaps...)
	for _, g := range end.Gaps {
		all = append(all, g.String())
	}
	for _, g := range all {
		if g != "" && g != gapNoHome && !contains(missing, g) {
			missing = append(missing, g)
		}
	}
	if d := r.dropped + end.Dropped; d > 0 {
		missing = append(missing, fmt.Sprintf("%d events dropped", d))
	}
	if len(missing) > 0 {
		r.raise(r.root.id, end.Time, telemetry.AlertMissingTelemetry, telemetry.SeverityMedium, "",
			"the run record is incomplete: "+strings.Join(missing, "; "))
	}
}

// retryWorthy: an attempt at something, not a look around.
func retryWorthy(s *procSpan) bool {
	return s.cls != nil || (s.exited && (s.exitCode != 0 || s.signal != 0))
}

func (r *Recorder) underAlerted(s *procSpan, alerted map[*procSpan]bool) bool {
	st := r.rs()
	for p := st.byID[s.parent]; p != nil; p = st.byID[p.parent] {
		if alerted[p] {
			return true
		}
	}
	return false
}

func (r *Recorder) passingTestBetween(after, before time.Time) bool {
	for _, s := range r.spans {
		if s.cls == nil || s.cls.class != telemetry.SpanTestRun || !s.exited || s.exitCode != 0 || s.signal != 0 {
			continue
		}
		if !s.start.Before(after) && !s.end.After(before) {
			return true
		}
	}
	return false
}

// deniedLoops counts refusals per destination across the run.
func (r *Recorder) deniedLoops(n int) {
	type loop struct {
		what  string
		count int
		span  trace.SpanID
		first time.Time
	}
	loops := make(map[string]*loop)
	var order []string
	add := func(key, what string, count int, id trace.SpanID, t time.Time) {
		if count <= 0 {
			return
		}
		l := loops[key]
		if l == nil {
			l = &loop{what: what, span: id, first: t}
			loops[key] = l
			order = append(order, key)
		}
		if t.Before(l.first) {
			l.span, l.first = id, t
		}
		l.count += count
	}
	for _, s := range r.spans {
		for _, ns := range s.netOrder {
			dest := ns.key.addr.String()
			name := ns.name
			if name == "" && r.pstate != nil {
				name = r.pstate.nameOf[ns.key.addr.Addr()]
			}
			if name != "" {
				dest = fmt.Sprintf("%s:%d", name, ns.key.addr.Port())
			}
			add("net\x00"+dest, "connection to "+dest, ns.dec.denied, ns.id, ns.start)
		}
		for _, fs := range s.fileOrder {
			if fs.protected && !fs.read {
				add("file\x00"+fs.path, "write to protected path "+r.shown(fs.path), fs.failures, fs.id, fs.start)
			}
		}
	}
	if r.pstate != nil {
		for _, ds := range r.pstate.dnsOrder {
			attempts := ds.dec.denied
			if q := len(ds.qtypes); q > 1 {
				attempts = (attempts + q - 1) / q
			}
			add("dns\x00"+ds.name, "lookup of "+ds.name, attempts, ds.id, ds.start)
		}
	}
	sort.Strings(order)
	for _, k := range order {
		l := loops[k]
		if l.count >= n {
			r.raise(l.span, l.first, telemetry.AlertDeniedLoop, telemetry.SeverityMedium, k,
				fmt.Sprintf("%s refused %d times: the run kept trying what the policy denies", l.what, l.count))
		}
	}
}

func shortLine(args []string) string {
	line := strings.Join(strings.Fields(CommandLine(args)), " ")
	if len(line) > 120 {
		line = cutUTF8([]byte(line), 117) + "..."
	}
	return line
}
