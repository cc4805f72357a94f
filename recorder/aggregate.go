package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Budgets: a process gets its own span per file, destination and DNS name
// up to the first N; the run up to M in all. Past either budget the
// activity goes to one aggregate span per process and kind (counts by
// operation, top directories or destinations, the first paths, a digest
// of the full list), so a run that creates a million files is still a
// trace a collector accepts. Never dropped: every workspace path is also
// in the run's file list (Files, the store's "files" artifact).
//
// A path or destination that is evidence keeps its own span whatever the
// budget: a secret or protected path, a persistence location, a denied or
// audited connection or lookup. Only past alertingSpansPerRun (an agent
// writing 100,000 *.pem files) are those aggregated too, and then the
// aggregate itself carries the alert.
//
// Processes the same way: past procSpansPerParent children of one span or
// procSpansPerRun process spans in all, a plain command (no class such as
// test_run or commit, no tool call of the agent) is counted on its
// parent's process aggregate, and what it does is its parent's activity.
//
// The budgets are sized so that the worst run, every budget spent with
// 8 KiB command lines (TestTraceSizeWorstCase), is a trace of under 10 MB
// of OTLP/JSON.
const (
	fileSpansPerProc    = 256
	fileSpansPerRun     = 1024
	netSpansPerProc     = 64
	netSpansPerRun      = 512
	dnsSpansPerProc     = 64
	dnsSpansPerRun      = 512
	procSpansPerParent  = 1024
	procSpansPerRun     = 2048
	alertingSpansPerRun = 1024
	maxCommandKey       = 256 // bytes of a command line kept as an aggregate's key
	maxAggregateSpans   = 256 // aggregate spans per run; past it, the root's
	argvBytesPerRun     = 1 << 20
	argvBytesPastBudget = 512

	// keptExited is how many exited pids stay known for late events (a
	// file event delivered after the exit by another CPU); older ones are
	// forgotten, so a run of a million short processes does not keep a
	// million entries.
	keptExited = 8192

	aggFirst   = 20   // paths / destinations / names listed on an aggregate
	aggTopDirs = 10   // directories (destinations) reported with counts
	aggMaxDirs = 1024 // distinct directories counted before "(other)"
	// maxAggKeys bounds the distinct keys the run's aggregates remember
	// together (for their distinct counts and digests); past it counts are
	// lower bounds and digests are marked partial. maxListedPaths bounds
	// the run's file list the same way (past it, paths are counted, not
	// named). Each costs about 100 bytes a key: together some 200 MB at
	// most, reached only by a run that writes a million distinct files.
	maxAggKeys     = 1 << 20
	maxListedPaths = 1 << 20
)

// pathState is one workspace path in the run's file list.
type pathState struct {
	ops    uint32 // operations seen by eBPF-side sensors (bit per op)
	fswOps uint32 // operations fswatch reported
	flags  uint8
}

const (
	pathCovered = 1 << iota // a non-fswatch sensor saw it
	pathFSW                 // fswatch saw it
	pathFailed              // an attempt failed
)

// notePath adds a workspace path to the run's file list.
func (r *Recorder) notePath(p string, op event.FileOp, errno int32, flags uint8) {
	st, ok := r.paths[p]
	if !ok && len(r.paths) >= maxListedPaths {
		r.unlisted++
		return
	}
	st.flags |= flags
	switch {
	case errno != 0:
		st.flags |= pathFailed
	case flags&pathFSW != 0:
		st.fswOps |= 1 << op
	default:
		st.ops |= 1 << op
	}
	r.paths[p] = st
}

// aggregate is what one process did past its budget, for one kind.
type aggregate struct {
	id         trace.SpanID
	seq        uint64
	kind       string // telemetry.SpanFileAggregate, …
	start, end time.Time
	keys       map[string]struct{} // distinct destinations / names / command lines
	paths      map[uint64]struct{} // files: hashes of the distinct paths (the strings are the file list's)
	overflow   bool                // the run's aggregates reached maxAggKeys
	runKeys    *int                // keys of all the run's aggregates
	first      []string
	events     int
	byOp       map[string]int
	failures   int
	dirs       map[string]int // directory / destination → distinct keys or attempts
	alerting   int            // keys that would have been evidence spans
	bySource   [8]int         // network: attempts per sensor, as netSpan
	decided    int
	denied     int
}

func (r *Recorder) newAggregate(kind string, t time.Time) *aggregate {
	id, seq := r.nextSpanID()
	r.aggSpans++
	return &aggregate{id: id, seq: seq, kind: kind, start: t, end: t, runKeys: &r.aggKeys,
		keys: make(map[string]struct{}), byOp: make(map[string]int), dirs: make(map[string]int)}
}

// note folds one occurrence of key; it reports whether key is new here.
func (a *aggregate) note(key string, t time.Time) bool {
	a.start, a.end = minTime(a.start, t), maxTime(a.end, t)
	a.events++
	if _, ok := a.keys[key]; ok {
		return false
	}
	if *a.runKeys >= maxAggKeys {
		a.overflow = true
		return false
	}
	a.keys[key] = struct{}{}
	*a.runKeys++
	if len(a.first) < aggFirst {
		a.first = append(a.first, key)
	}
	return true
}

// notePath is note for a file aggregate: it keeps the path's hash, not
// the path, whose one copy is the run's file list (a second per path was
// a fifth of the supervisor's heap at 300,000 files).
func (a *aggregate) notePath(r *Recorder, p string, t time.Time) bool {
	a.start, a.end = minTime(a.start, t), maxTime(a.end, t)
	a.events++
	h := r.hash(p)
	if _, ok := a.paths[h]; ok {
		return false
	}
	if *a.runKeys >= maxAggKeys {
		a.overflow = true
		return false
	}
	if a.paths == nil {
		a.paths = make(map[uint64]struct{})
	}
	a.paths[h] = struct{}{}
	*a.runKeys++
	if len(a.first) < aggFirst {
		a.first = append(a.first, p)
	}
	return true
}

// distinct is how many distinct keys the aggregate holds.
func (a *aggregate) distinct() int { return len(a.keys) + len(a.paths) }

func (a *aggregate) count(dir string, n int) {
	if _, ok := a.dirs[dir]; !ok && len(a.dirs) >= aggMaxDirs {
		dir = otherOutsideDirs
	}
	a.dirs[dir] += n
}

// fileBudget reports whether owner may have one more file span of its own.
func (r *Recorder) fileBudget(owner *procSpan, alerting bool) bool {
	if alerting {
		return r.alertingSpans < alertingSpansPerRun
	}
	return owner.nFileSpans < fileSpansPerProc && r.nFileSpans < fileSpansPerRun
}

// evidenceRule is the alert a path's own span would have raised: "" for
// a path that is no evidence.
func evidenceRule(pi pathInfo) string {
	switch {
	case pi.secret:
		return telemetry.AlertSecretAccess
	case pi.protected:
		return telemetry.AlertWorkflowEdit
	case pi.persist != "":
		return telemetry.AlertPersistence
	}
	return ""
}

// aggregateFile counts a file operation past the budget on owner's
// aggregate. A path that would have been evidence (rule, its alert) raises
// that alert there, once per rule.
func (r *Recorder) aggregateFile(owner *procSpan, p string, e event.File, rule string) {
	a := r.aggregateOf(owner, fileSlot, telemetry.SpanFileAggregate, e.Time)
	if a.notePath(r, p, e.Time) {
		a.count(r.shown(path.Dir(p)), 1)
		r.aggPaths++
		if rule != "" {
			a.alerting++
		}
	}
	if e.Errno != 0 {
		a.failures++
	} else {
		a.byOp[e.Op.String()]++
	}
	if rule != "" {
		r.aggregatedEvidence(a, e.Time, rule, r.shown(p))
	}
}

// aggregatedEvidence raises, on an aggregate, the alert of evidence that
// came past the run's ceiling of evidence spans.
func (r *Recorder) aggregatedEvidence(a *aggregate, t time.Time, rule, first string) {
	r.raise(a.id, t, rule, telemetry.SeverityHigh, "aggregated",
		fmt.Sprintf("past the run's %d evidence spans, further %s evidence is aggregated on this span (first: %s)",
			alertingSpansPerRun, rule, first))
}

// netBudget reports whether owner may have one more span per destination.
func (r *Recorder) netBudget(owner *procSpan) bool {
	return owner.nNetSpans < netSpansPerProc && r.nNetSpans < netSpansPerRun
}

func (r *Recorder) netAggregate(owner *procSpan, t time.Time) *aggregate {
	return r.aggregateOf(owner, netSlot, telemetry.SpanNetworkAggregate, t)
}

func fileSlot(s *procSpan) **aggregate { return &s.fileAgg }
func netSlot(s *procSpan) **aggregate  { return &s.netAgg }
func dnsSlot(s *procSpan) **aggregate  { return &s.dnsAgg }
func procSlot(s *procSpan) **aggregate { return &s.procAgg }

// aggregateOf is owner's aggregate of one kind, made on first use. Past
// maxAggregateSpans aggregates in the run, a process without one uses the
// root's: 2048 processes each past every budget must not be 8192
// aggregate spans.
func (r *Recorder) aggregateOf(owner *procSpan, slot func(*procSpan) **aggregate, kind string, t time.Time) *aggregate {
	if a := *slot(owner); a != nil {
		return a
	}
	if r.aggSpans >= maxAggregateSpans {
		owner = r.root
	}
	p := slot(owner)
	if *p == nil {
		*p = r.newAggregate(kind, t)
	}
	return *p
}

// alertingBudget reports whether one more evidence span (a refused or
// audited destination or name, a file that alerts) may be made; past it
// the evidence is aggregated and the aggregate carries the alert.
func (r *Recorder) alertingBudget() bool { return r.alertingSpans < alertingSpansPerRun }

// aggregateRefusal counts a refused or audited connection past the
// evidence ceiling, with an alert on the aggregate.
func (r *Recorder) aggregateRefusal(owner *procSpan, key netKey, e event.NetDecision) {
	a := r.netAggregate(owner, e.Time)
	dest := destString(key)
	if a.note(dest, e.Time) {
		r.aggDests++
		a.alerting++
	}
	a.count(dest, 1)
	if e.Check == checkAddress {
		a.decided++
	}
	if e.Verdict == event.Deny {
		a.denied++
		r.ps().denied++
	}
	r.aggregatedEvidence(a, e.Time, telemetry.AlertPolicyBypass, dest+" "+e.Verdict.String())
}

func destString(k netKey) string {
	if k.transport == event.Unix {
		return "unix " + k.unixPath
	}
	return k.transport.String() + " " + k.addr.String()
}

// aggregateConnect counts a connection attempt past the budget.
func (r *Recorder) aggregateConnect(owner *procSpan, key netKey, e event.Connect) {
	a := r.netAggregate(owner, e.Time)
	dest := destString(key)
	if a.note(dest, e.Time) {
		r.aggDests++
	}
	a.count(dest, 1)
	a.bySource[int(e.Source)%len(a.bySource)]++
	a.byOp[key.transport.String()]++
	if e.Errno != 0 && !inProgress(e.Errno) {
		a.failures++
	}
}

// aggregateDecision counts an allowing decision about a destination past
// the budget; refusals and audits always keep their span (netDecision).
func (r *Recorder) aggregateDecision(owner *procSpan, key netKey, e event.NetDecision) {
	a := r.netAggregate(owner, e.Time)
	a.start, a.end = minTime(a.start, e.Time), maxTime(a.end, e.Time)
	if e.Check == checkAddress {
		a.decided++
	}
}

// aggregatedDecision reports whether a decision may go to an aggregate:
// an allow that raises nothing.
func aggregatedDecision(e event.NetDecision) bool {
	return e.Verdict == event.Allow && (e.Check == checkAddress || e.Check == checkSNI || e.Check == checkHost)
}

func (r *Recorder) dnsBudget(owner *procSpan) bool {
	return owner.nDNSSpans < dnsSpansPerProc && r.nDNSSpans < dnsSpansPerRun
}

// aggregateDNS counts a lookup past the budget (only lookups without a
// refusing or auditing verdict come here).
func (r *Recorder) aggregateDNS(owner *procSpan, name string, e event.DNSQuery) {
	a := r.aggregateOf(owner, dnsSlot, telemetry.SpanDNSAggregate, e.Time)
	if a.note(name, e.Time) {
		r.aggNames++
	}
	qt := e.QType
	if qt == "" {
		qt = "lookup"
	}
	a.byOp[qt]++
	if e.RCode != "" && e.RCode != "NOERROR" {
		a.failures++
	}
	switch e.Verdict {
	case event.Allow:
		a.decided++
	case event.Deny, event.Audit:
		a.alerting++
		if e.Verdict == event.Deny {
			a.denied++
			r.ps().denied++
		}
		r.aggregatedEvidence(a, e.Time, telemetry.AlertUnknownDomain, name+" "+e.Verdict.String())
	}
}

// aggregateTelemetry builds one aggregate span under parent.
func (r *Recorder) aggregateTelemetry(a *aggregate, parent trace.SpanID) telemetry.Span {
	kind := trace.SpanKindInternal
	if a.kind != telemetry.SpanFileAggregate {
		kind = trace.SpanKindClient
	}
	sp := r.span(a.id, parent, a.kind, a.kind, telemetry.OIChain, kind, a.start, a.end)
	var sum string
	if a.kind == telemetry.SpanFileAggregate {
		sum = r.pathsDigest(a)
	} else {
		keys := make([]string, 0, len(a.keys))
		for k := range a.keys {
			keys = append(keys, k)
		}
		sum = r.listDigest(keys)
	}
	attrs := []attribute.KeyValue{
		telemetry.AggregatedCount.Int(a.distinct()),
		telemetry.AggregatedEvents.Int(a.events),
		telemetry.AggregatedOperations.StringSlice(counted(a.byOp, len(a.byOp))),
		telemetry.AggregatedFirst.StringSlice(r.shownAll(a.first, a.kind)),
		telemetry.AggregatedSHA256.String(sum),
		telemetry.AggregatedPartial.Bool(a.overflow),
	}
	switch a.kind {
	case telemetry.SpanProcessAggregate:
		attrs = append(attrs, telemetry.AggregatedTopExecutables.StringSlice(counted(a.dirs, aggTopDirs)))
	case telemetry.SpanFileAggregate:
		attrs = append(attrs, telemetry.AggregatedTopDirs.StringSlice(counted(a.dirs, aggTopDirs)))
		if a.alerting > 0 {
			attrs = append(attrs, telemetry.AggregatedAlerting.Int(a.alerting))
		}
	case telemetry.SpanNetworkAggregate:
		n := 0
		for _, c := range a.bySource {
			n = max(n, c)
		}
		attrs = append(attrs,
			telemetry.AggregatedTopDestinations.StringSlice(counted(a.dirs, aggTopDirs)),
			telemetry.ConnectionsCount.Int(max(n, a.decided)))
	case telemetry.SpanDNSAggregate:
		attrs = append(attrs, telemetry.DNSLookups.Int(a.events))
	}
	if a.failures > 0 {
		attrs = append(attrs, telemetry.AggregatedFailures.Int(a.failures))
	}
	if a.kind != telemetry.SpanFileAggregate && a.alerting > 0 {
		attrs = append(attrs, telemetry.AggregatedAlerting.Int(a.alerting))
	}
	if a.denied > 0 {
		attrs = append(attrs, telemetry.AggregatedDenied.Int(a.denied))
	}
	sp.Attrs = append(sp.Attrs, attrs...)
	return sp
}

// shownAll is the first keys as the trace shows them: files relative to
// the workspace (their directory is counted the same way).
func (r *Recorder) shownAll(keys []string, kind string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if kind == telemetry.SpanFileAggregate {
			k = r.shown(k)
		}
		out[i] = k
	}
	return out
}

// counted renders a count map as "key (n)", most first, ties by key, at
// most limit entries.
func counted(m map[string]int, limit int) []string {
	type kc struct {
		k string
		n int
	}
	all := make([]kc, 0, len(m))
	for k, n := range m {
		all = append(all, kc{k, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].k < all[j].k
	})
	out := make([]string, 0, min(limit, len(all)))
	for i := 0; i < len(all) && i < limit; i++ {
		out = append(out, fmt.Sprintf("%s (%d)", all[i].k, all[i].n))
	}
	return out
}

// listDigest redacts keys as every sink sees them (modifying keys), sorts
// them and returns the sha256 (hex) of the sorted list, each entry ended
// by a NUL byte (no path contains one).
func (r *Recorder) listDigest(keys []string) string {
	for i, k := range keys {
		keys[i] = r.redacted(k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// pathsDigest is listDigest of a file aggregate's paths, from the file
// list (sorted and redacted already): its entries that are the
// aggregate's, in its order. A path past maxListedPaths is in neither the
// list nor the digest, and makes the aggregate partial.
func (r *Recorder) pathsDigest(a *aggregate) string {
	h := sha256.New()
	found := 0
	for i, f := range r.fileList {
		if _, ok := a.paths[r.fileListHash[i]]; ok {
			h.Write([]byte(f.Path))
			h.Write([]byte{0})
			found++
		}
	}
	if found < len(a.paths) {
		a.overflow = true
	}
	return hex.EncodeToString(h.Sum(nil))
}

// redacted is k as the sinks see it. A path of the file list was redacted
// once by buildFileList (a build's 100,000 paths through the credential
// table twice would be most of Finish's work); anything else is redacted
// here.
func (r *Recorder) redacted(k string) string {
	if out, ok := r.redactedPaths[k]; ok {
		return out
	}
	if _, listed := r.paths[k]; listed && r.fileList != nil {
		return k // redacted to itself
	}
	return r.pathRedactor()(k)
}

// pathRedactor is the run's one redactor (redactor(): the dropped
// values, the credential table, the context rules), so the file list is
// redacted exactly like file.path and its digest matches. RedactAlso
// forgets it: values added later must apply too.
func (r *Recorder) pathRedactor() func(string) string {
	if r.redactPath != nil {
		return r.redactPath
	}
	red := r.redactor()
	r.redactPath = func(s string) string {
		if out := red.String(s); out != s {
			return out
		}
		return s // the caller's string, not an equal copy
	}
	return r.redactPath
}

// FileChange is one workspace path the run changed or tried to change.
type FileChange struct {
	Path   string   // absolute, redacted like file.path
	Ops    []string // operations seen, most significant first (agentwatch.file.operation order)
	Failed bool     // at least one attempt failed
	Source string   // ebpf when an eBPF-side sensor saw it, else fswatch
}

// Files returns every workspace path the run changed or tried to change,
// sorted: spanned and aggregated alike, the list behind the root's
// agentwatch.files.list.* digest. Valid after Finish; nil before.
func (r *Recorder) Files() []FileChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fileList
}

// buildFileList turns the path table into the sorted, redacted list.
func (r *Recorder) buildFileList() {
	red := r.pathRedactor()
	opsOf := map[uint32][]string{} // shared: a build has few distinct op sets
	type entry struct {
		FileChange
		hash uint64 // of the path before redaction, for the aggregates' digests
	}
	list := make([]entry, 0, len(r.paths))
	for p, st := range r.paths {
		bits := st.ops | st.fswOps
		ops, ok := opsOf[bits]
		if !ok {
			for _, op := range opPrecedence {
				if bits&(1<<op) != 0 {
					ops = append(ops, op.String())
				}
			}
			opsOf[bits] = ops
		}
		src := event.SourceEBPF.String()
		if st.flags&pathCovered == 0 {
			src = event.SourceFSWatch.String()
		}
		rp := red(p)
		if rp != p {
			if r.redactedPaths == nil {
				r.redactedPaths = make(map[string]string)
			}
			r.redactedPaths[p] = rp
		}
		var hash uint64
		if r.aggPaths > 0 {
			hash = r.hash(p)
		}
		list = append(list, entry{FileChange{Path: rp, Ops: ops, Failed: st.flags&pathFailed != 0, Source: src}, hash})
	}
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.Path, b.Path) })
	files := make([]FileChange, len(list))
	if r.aggPaths > 0 {
		r.fileListHash = make([]uint64, len(list))
	}
	h := sha256.New()
	for i, f := range list {
		files[i] = f.FileChange
		if r.aggPaths > 0 {
			r.fileListHash[i] = f.hash
		}
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
	}
	r.fileList, r.fileListSum = files, hex.EncodeToString(h.Sum(nil))
}

// aggregatedAttrs say on the root what was aggregated, the budgets and
// the run's file list (count and digest).
func (r *Recorder) aggregatedAttrs() []attribute.KeyValue {
	var a []attribute.KeyValue
	if r.ws != "" {
		a = append(a, telemetry.FilesListCount.Int(len(r.fileList)), telemetry.FilesListSHA256.String(r.fileListSum))
		if r.unlisted > 0 {
			a = append(a, telemetry.FilesListUnlisted.Int(r.unlisted))
		}
	}
	if r.aggSpans == 0 {
		return a
	}
	return append(a,
		telemetry.AggregatedSpans.Int(r.aggSpans),
		telemetry.AggregatedFiles.Int(r.aggPaths),
		telemetry.AggregatedDestinations.Int(r.aggDests),
		telemetry.AggregatedDNSNames.Int(r.aggNames),
		telemetry.AggregatedCommands.Int(r.aggProcs),
		telemetry.AggregatedBudgets.StringSlice([]string{
			fmt.Sprintf("file spans: %d per process, %d per run", fileSpansPerProc, fileSpansPerRun),
			fmt.Sprintf("network spans: %d per process, %d per run", netSpansPerProc, netSpansPerRun),
			fmt.Sprintf("dns spans: %d per process, %d per run", dnsSpansPerProc, dnsSpansPerRun),
			fmt.Sprintf("process spans: %d per parent, %d per run", procSpansPerParent, procSpansPerRun),
		}),
	)
}

// fswatchOnly places the workspace paths only fswatch reported: their own
// spans (on the root: fswatch knows no process) within the budget, an
// aggregate past it. Sorted for stable ids.
func (r *Recorder) fswatchOnly() {
	var only []string
	for p, st := range r.paths {
		if st.flags&(pathFSW|pathCovered) == pathFSW {
			only = append(only, p)
		}
	}
	sort.Strings(only)
	for _, p := range only {
		fs := r.fsw[p]
		secret := r.pol.IsSecret(p, r.home)
		protected := r.pol.IsProtected(p, r.ws, r.home)
		if fs != nil && r.fileBudget(r.root, secret || protected) {
			r.countFileSpan(r.root, secret || protected)
			fs.id, fs.seq = r.nextSpanID()
			fs.secret, fs.protected = secret, protected
			r.root.fileOrder = append(r.root.fileOrder, fs)
			continue
		}
		st := r.paths[p]
		a := r.aggregateOf(r.root, fileSlot, telemetry.SpanFileAggregate, r.fswStart)
		a.start, a.end = minTime(a.start, r.fswStart), maxTime(a.end, r.fswEnd)
		if a.notePath(r, p, r.fswStart) {
			a.count(r.shown(path.Dir(p)), 1)
			r.aggPaths++
			if rule := evidenceRule(pathInfo{secret: secret, protected: protected}); rule != "" {
				a.alerting++
				r.aggregatedEvidence(a, r.fswStart, rule, r.shown(p))
			}
		}
		for _, op := range opPrecedence {
			if st.fswOps&(1<<op) != 0 {
				a.byOp[op.String()]++
			}
		}
		if st.flags&pathFailed != 0 {
			a.failures++
		}
	}
	r.fsw = nil // spanned ones are on the root now
}

// aggregateExec decides whether an exec gets its own span; when not, it
// is counted on parent's process aggregate and p's activity goes to
// parent. It reports whether it aggregated.
func (r *Recorder) aggregateExec(p *proc, parent, s *procSpan, e event.Exec) bool {
	p.agg = nil
	if s.cls != nil || r.ownToolContext(parent, e) || e.PID == r.info.RootPID ||
		parent.nChildren < procSpansPerParent && r.nProcSpans < procSpansPerRun {
		parent.nChildren++
		r.nProcSpans++
		r.boundArgs(s)
		return false
	}
	a := r.aggregateOf(parent, procSlot, telemetry.SpanProcessAggregate, e.Time)
	line := CommandLine(s.args)
	if len(line) > maxCommandKey {
		line = cutUTF8([]byte(line), maxCommandKey) + "..."
	}
	if a.note(line, e.Time) {
		r.aggProcs++
	}
	name := path.Base(s.exe)
	if s.exe == "" && len(s.args) > 0 {
		name = path.Base(s.args[0])
	}
	a.count(name, 1)
	p.cur, p.attach, p.agg = nil, parent, a
	return true
}

// ownToolContext reports whether an exec carries an agent tool-call
// context of its own (a TRACEPARENT or tool call id its parent does not
// have): such a process is linked to the agent's tool span and keeps its
// span. Inheriting the parent's (every process of a run inherits the
// TRACEPARENT naming agent_run) is not.
func (r *Recorder) ownToolContext(parent *procSpan, e event.Exec) bool {
	if e.TraceParent == "" && e.ToolCallID == "" {
		return false
	}
	var pc toolContext
	if r.agent != nil {
		pc = r.agent.tools[parent.id]
	}
	if e.ToolCallID != "" && e.ToolCallID != pc.toolCallID {
		return true
	}
	if e.TraceParent == pc.traceParent {
		return false
	}
	_, sid, ok := parseTraceParent(e.TraceParent)
	return ok && sid != r.root.id
}

// boundArgs keeps the command lines of the run's process spans within
// argvBytesPerRun: past it a span keeps the first argvBytesPastBudget
// bytes of its arguments (after classification, which saw them all) and
// says so in agentwatch.command.args_truncated. An argv is up to 8 KiB
// and is on the span twice; 2048 of them would be 32 MiB of trace.
func (r *Recorder) boundArgs(s *procSpan) {
	n := 0
	for _, a := range s.args {
		n += len(a) + 1
	}
	r.argvBytes += n
	if r.argvBytes <= argvBytesPerRun || n <= argvBytesPastBudget {
		return
	}
	kept, left := []string(nil), argvBytesPastBudget
	for _, a := range s.args {
		if len(a) > left {
			if left > 0 {
				kept = append(kept, cutUTF8([]byte(a), left))
			}
			break
		}
		kept = append(kept, a)
		left -= len(a) + 1
	}
	s.args, s.truncated = kept, true
}

// exitedPID is one exited process, remembered for late events.
type exitedPID struct {
	pid uint32
	p   *proc
}

// exited notes an exit: an aggregated process's status is counted, and
// the oldest exited pids are forgotten past keptExited.
func (r *Recorder) exited(e event.Exit, p *proc) {
	if a := p.agg; a != nil {
		a.end = maxTime(a.end, e.Time)
		if e.Code != 0 || e.Signal != 0 {
			a.failures++
		}
	}
	if e.PID == r.info.RootPID {
		return // the run's own child stays known (model calls are attributed to it)
	}
	r.exitedPIDs = append(r.exitedPIDs, exitedPID{e.PID, p})
	if len(r.exitedPIDs) <= keptExited {
		return
	}
	old := r.exitedPIDs[0]
	r.exitedPIDs = r.exitedPIDs[1:]
	if r.procs[old.pid] == old.p && old.p.exited {
		delete(r.procs, old.pid) // not reused since: nothing will ask for it
	}
	if cap(r.exitedPIDs) > 4*keptExited {
		r.exitedPIDs = append([]exitedPID(nil), r.exitedPIDs...) // let the old backing array go
	}
}

// countFileSpan charges a new file span to the budgets.
func (r *Recorder) countFileSpan(owner *procSpan, alerting bool) {
	if alerting {
		r.alertingSpans++
		return
	}
	owner.nFileSpans++
	r.nFileSpans++
}

// inProgress: a non-blocking connect under way is not a failure.
func inProgress(errno int32) bool { return syscall.Errno(abs32(errno)) == syscall.EINPROGRESS }
