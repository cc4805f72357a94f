package recorder

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"
)

// Bounds that keep one span small however many events hit it.
const (
	maxFileOps       = 16   // agentwatch.file.operations entries (runs of one op count once)
	maxFailedEvents  = 8    // agentwatch.file.failed span events per file span
	maxOutsideDirs   = 1024 // distinct directories tracked for the outside-workspace summary
	topOutsideDirs   = 5    // directories reported in agentwatch.files.outside_workspace.top_dirs
	outsideDirDepth  = 3    // /root/.cache/go-build, /tmp/go-build1234/b001
	otherOutsideDirs = "(other)"
)

// procSpan is one exec'd image (or the agent_run root).
type procSpan struct {
	id, parent trace.SpanID
	seq        uint64
	isRoot     bool

	name           string
	pid, ppid, uid uint32
	exe, cwd       string
	interp         string   // a script's interpreter: process.executable.* (exe stays the script, for names and classes)
	args           []string // redacted
	truncated      bool
	cls            *commandClass // test_run, commit, … (commands.go); nil: bash_command

	start, end             time.Time
	ended, exited          bool
	replaced, stillRunning bool
	exitCode, signal       int

	files     map[fileKey]*fileSpan
	fileOrder []*fileSpan
	nets      map[netKey]*netSpan
	netOrder  []*netSpan

	ioURing string // io_uring_setup seen: used | refused | failed (containment.go)

	// Tool calls and MCP (tools.go, mcp.go): the digest of the command
	// an agent's tool shell eval'd (Claude Code's Bash tool) or of the
	// argv of a direct child of the agent, from the exec's argv before
	// redaction; the MCP server this process is, or that it is under one.
	evalSHA, argvSHA string
	mcpServer        string
	underMCP         bool

	written     map[uint64]struct{} // hashes of distinct paths changed successfully
	outside     map[uint64]struct{} // the subset summarised instead of spanned
	outsideDirs map[string]int

	// Spans charged to this process's budgets, and what went past them
	// (aggregate.go).
	nFileSpans, nNetSpans, nDNSSpans int
	nChildren                        int // process spans directly under this one
	fileAgg, netAgg, dnsAgg          *aggregate
	procAgg                          *aggregate // execs past the process budget, under this span
}

func (s *procSpan) noteWritten(h uint64) {
	if s.written == nil {
		s.written = make(map[uint64]struct{})
	}
	s.written[h] = struct{}{}
}

func (s *procSpan) noteOutside(h uint64, dir string) {
	if s.outside == nil {
		s.outside = make(map[uint64]struct{})
		s.outsideDirs = make(map[string]int)
	}
	if _, seen := s.outside[h]; seen {
		return
	}
	s.outside[h] = struct{}{}
	s.noteWritten(h)
	if _, ok := s.outsideDirs[dir]; !ok && len(s.outsideDirs) >= maxOutsideDirs {
		dir = otherOutsideDirs
	}
	s.outsideDirs[dir]++
}

type fileKey struct {
	path string
	read bool
}

// fileSpan is every operation of one process on one path.
type fileSpan struct {
	id  trace.SpanID
	seq uint64

	path, renamedTo   string
	read, inWS        bool
	secret, protected bool
	source            string
	start, end        time.Time
	ops               []event.FileOp // in order, runs collapsed, capped
	seen              uint32         // bit per op seen
	nOps              int
	failures          int
	failed            []telemetry.SpanEvent
	firstErr          string
	failedOp          event.FileOp
	persist           string   // persistence pattern matched (containment.go)
	symlinkTarget     string   // symlink: target as written
	linkedTo          string   // hard link: the new name
	xattrs            []string // setxattr/removexattr names, capped
}

func (fs *fileSpan) add(e event.File, newPath string) {
	if e.Time.Before(fs.start) {
		fs.start = e.Time
	}
	if e.Time.After(fs.end) {
		fs.end = e.Time
	}
	if e.Errno != 0 {
		// A refused attempt (EROFS on a protected path, EACCES) is
		// evidence, but not a change: an event, never an operation.
		fs.failures++
		name := errnoName(e.Errno)
		if fs.firstErr == "" {
			fs.firstErr, fs.failedOp = name, e.Op
		}
		if len(fs.failed) < maxFailedEvents {
			fs.failed = append(fs.failed, telemetry.SpanEvent{
				Name: telemetry.EventFileFailed,
				Time: e.Time,
				Attrs: []attribute.KeyValue{
					telemetry.FileOperation.String(e.Op.String()),
					telemetry.ErrorType.String(name),
				},
			})
		}
		return
	}
	fs.nOps++
	fs.seen |= 1 << e.Op
	fs.noteDetail(e)
	switch n := len(fs.ops); {
	case n > 0 && fs.ops[n-1] == e.Op:
	case n < maxFileOps:
		fs.ops = append(fs.ops, e.Op)
	default:
		fs.ops[n-1] = e.Op // keep the latest op visible at the end of a capped list
	}
	if e.Op == event.FileRename && newPath != "" {
		fs.renamedTo = newPath
	}
}

// opPrecedence orders operations by significance for
// agentwatch.file.operation: what happened to the path in the end matters
// most (deleted, moved away), then whether the file is new, then how its
// content changed, then metadata. The full story is in
// agentwatch.file.operations.
var opPrecedence = []event.FileOp{
	event.FileDelete, event.FileRename, event.FileCreate, event.FileSymlink, event.FileLink, event.FileMknod,
	event.FileTruncate, event.FileWrite, event.FileMkdir, event.FileChmod, event.FileChown,
	event.FileSetxattr, event.FileRemovexattr, event.FileUtimes, event.FileRead,
}

func (fs *fileSpan) mainOp() string {
	for _, op := range opPrecedence {
		if fs.seen&(1<<op) != 0 {
			return op.String()
		}
	}
	if fs.failures > 0 {
		return fs.failedOp.String()
	}
	return ""
}

type netKey struct {
	transport event.Transport
	addr      netip.AddrPort
	unixPath  string // Transport Unix: the socket path; addr is zero
}

// netSpan is every connect / send of one process to one destination.
type netSpan struct {
	id         trace.SpanID
	seq        uint64
	key        netKey
	name       string
	start, end time.Time
	bySource   [8]int // attempts per sensor: two sensors seeing one connect count it once
	failures   int
	ok         bool
	lastErr    string
	decided    int      // address / dns-redirect decisions: one per attempt
	dec        decision // enforcers' verdicts (policy.go)
	peerPID    uint32   // unix sockets: the listener, 0 when unknown
	outside    bool     // unix sockets: the listener is not a process of the run
}

func (ns *netSpan) add(e event.Connect) {
	if e.Time.Before(ns.start) {
		ns.start = e.Time
	}
	if e.Time.After(ns.end) {
		ns.end = e.Time
	}
	if e.Name != "" {
		ns.name = e.Name
	}
	ns.bySource[int(e.Source)%len(ns.bySource)]++
	if e.Errno != 0 && syscall.Errno(abs32(e.Errno)) != syscall.EINPROGRESS {
		ns.failures++
		ns.lastErr = errnoName(e.Errno)
		return
	}
	ns.ok = true
}

func (ns *netSpan) count() int {
	n := 0
	for _, c := range ns.bySource {
		n = max(n, c)
	}
	return max(n, ns.decided)
}

// Finish closes every open span at end.Time and returns the trace, root
// span first. The recorder must not be used afterwards; a second call
// returns the same trace.
func (r *Recorder) Finish(end End) *telemetry.Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.result != nil {
		return r.result
	}
	for _, s := range r.spans {
		if !s.isRoot && !s.ended {
			s.end, s.ended, s.stillRunning = end.Time, true, true
		}
	}
	r.root.end = end.Time
	r.fileSize = end.FileSize
	if end.SecretScan == nil && end.ReadFile != nil {
		// First: what it finds is redacted everywhere, and the diff it
		// redacts is the one git_diff describes.
		end.SecretScan = r.scanSecrets(end.Evidence, end.ReadFile)
	}
	r.resolveClasses(end)
	r.gitConfigAlerts(end)

	// fswatch-only workspace paths: the whole file evidence when eBPF
	// is missing, and what it lost otherwise.
	r.fswatchOnly()
	r.buildFileList()

	t := &telemetry.Trace{RunID: r.info.RunID}
	t.Resource = []attribute.KeyValue{telemetry.ServiceName.String("agentwatch")}
	if r.info.ServiceVersion != "" {
		t.Resource = append(t.Resource, telemetry.ServiceVersion.String(r.info.ServiceVersion))
	}
	// Each run is an instance of the service; the rest of the resource
	// (the agent, the repository, the labels) is copied from the root
	// once it is made (resourceFromRoot).
	t.Resource = append(t.Resource, telemetry.ServiceInstanceID.String(r.info.RunID))
	if r.info.Host != "" {
		t.Resource = append(t.Resource, telemetry.HostName.String(r.info.Host))
	}
	type ordered struct {
		span telemetry.Span
		seq  uint64
	}
	n := 0
	for _, s := range r.spans {
		n += 1 + len(s.fileOrder) + len(s.netOrder)
	}
	rest := make([]ordered, 0, n) // a run can hold tens of thousands of spans
	for _, s := range r.spans {
		if !s.isRoot {
			rest = append(rest, ordered{r.processSpan(s), s.seq})
		}
		for _, fs := range s.fileOrder {
			rest = append(rest, ordered{r.fileTelemetry(fs, s.id), fs.seq})
		}
		for _, ns := range s.netOrder {
			rest = append(rest, ordered{r.netTelemetry(ns, s.id), ns.seq})
		}
		for _, a := range []*aggregate{s.procAgg, s.fileAgg, s.netAgg, s.dnsAgg} {
			if a != nil {
				rest = append(rest, ordered{r.aggregateTelemetry(a, s.id), a.seq})
			}
		}
	}
	if r.pstate != nil {
		for _, ds := range r.pstate.dnsOrder {
			rest = append(rest, ordered{r.dnsTelemetry(ds), ds.seq})
		}
	}
	r.fileListHash = nil // the aggregates' digests are made
	sort.SliceStable(rest, func(i, j int) bool {
		a, b := rest[i], rest[j]
		if !a.span.Start.Equal(b.span.Start) {
			return a.span.Start.Before(b.span.Start)
		}
		return a.seq < b.seq
	})
	t.Spans = make([]telemetry.Span, 0, len(rest)+1)
	t.Spans = append(t.Spans, r.rootSpan(end))
	for _, o := range rest {
		t.Spans = append(t.Spans, o.span)
	}
	// The phases, in the order they must run: each may add spans or
	// alerts that the ones after it read.
	for _, phase := range []struct {
		name string
		run  func()
	}{
		{"evidence", func() { r.finishEvidence(t, end) }}, // git_diff, secret_scan, the root's workspace attributes
		{"classes", func() { r.finishClasses(t, end) }},   // test_run, commit, … outcomes on the root
		{"pull request", func() { r.finishPR(t) }},        // the run's PR and pushed branches, from the root's repository
		{"llm", func() { r.finishLLM(t) }},                // model-call spans: before policy, whose alerts land on them
		{"agent", func() { r.finishAgent(t, end) }},       // the agent's claims: before policy, whose alerts land on them
		{"tools", func() { r.finishTools(t, end) }},       // tool_call spans: after the chat spans and the agent's, which they link and join
		{"rules", func() { r.finishRules(end) }},          // built-in alert rules
		{"policy", func() { r.finishPolicy(t, end) }},     // alerts on every span made above
		{"failure", func() { r.finishFailure(t, end) }},   // the failure class, from everything above
		{"intervals", func() { fitIntervals(t) }},         // every span inside its parent, none of zero length
		{"resource", func() { resourceFromRoot(t) }},      // what the run is, where a backend's search list shows it
		{"self cost", func() { selfCost(t, end) }},        // what observing cost, as late as possible
		{"redact", func() { r.redactor().Trace(t) }},      // last: every string before any sink
	} {
		phase.run()
	}
	r.result = t
	return t
}

// resourceFromRoot describes the run on the resource, which backends show
// in their search lists and filter by: the agent, the repository and the
// labels (team, org), as on the root.
func resourceFromRoot(t *telemetry.Trace) {
	root := t.Root()
	if root == nil {
		return
	}
	for _, kv := range root.Attrs {
		switch {
		case kv.Key == telemetry.GenAIAgentName, kv.Key == telemetry.VCSRepositoryURLFull, kv.Key == telemetry.VCSRepositoryName,
			strings.HasPrefix(string(kv.Key), telemetry.LabelPrefix):
			t.Resource = append(t.Resource, kv)
		}
	}
}

// repositoryName is a repository URL's last path segment (without .git):
// vcs.repository.name.
func repositoryName(url string) string {
	url = strings.TrimRight(strings.TrimSuffix(url, ".git"), "/")
	if i := strings.LastIndexAny(url, "/:"); i >= 0 {
		url = url[i+1:]
	}
	return url
}

// selfCost records on the root what observing the run cost the
// supervisor (End.SelfCost: CPU time and peak RSS), measured when Finish
// is nearly done so that its own work counts.
func selfCost(t *telemetry.Trace, end End) {
	root := t.Root()
	if end.SelfCost == nil || root == nil {
		return
	}
	cpu, maxRSS, ok := end.SelfCost()
	if !ok {
		return
	}
	root.SetAttr(telemetry.SupervisorCPUSeconds.Float64(cpu.Seconds()))
	root.SetAttr(telemetry.SupervisorMaxRSS.Int64(maxRSS))
}

func (r *Recorder) span(id, parent trace.SpanID, name, spanType, oiKind string, kind trace.SpanKind, start, end time.Time) telemetry.Span {
	if end.Before(start) {
		end = start // sensors on different CPUs can deliver slightly out of order
	}
	return telemetry.Span{
		TraceID:  r.traceID,
		SpanID:   id,
		ParentID: parent,
		Name:     name,
		Kind:     kind,
		Start:    start,
		End:      end,
		Attrs: []attribute.KeyValue{
			telemetry.SpanType.String(spanType),
			telemetry.OpenInferenceKind.String(oiKind),
		},
	}
}

// labels are the run's labels: the policy's attributes, with the
// command line's (--label, RunInfo.Attributes) over them on the same key.
func (r *Recorder) labels() map[string]string {
	out := make(map[string]string, len(r.pol.Attributes)+len(r.info.Attributes))
	for k, v := range r.pol.Attributes {
		out[k] = v
	}
	for k, v := range r.info.Attributes {
		out[k] = v
	}
	return out
}

func (r *Recorder) rootSpan(end End) telemetry.Span {
	info := r.info
	// The GenAI agent-span name: invoke_agent {gen_ai.agent.name}.
	sp := r.span(r.root.id, trace.SpanID{}, "invoke_agent "+nameText(AgentName(info.Argv)), telemetry.SpanAgentRun, telemetry.OIAgent,
		trace.SpanKindInternal, info.Start, end.Time)
	args := r.commandArgs(info.Argv, info.Start)
	a := []attribute.KeyValue{
		telemetry.GenAIOperationName.String("invoke_agent"),
		telemetry.RunID.String(info.RunID),
		telemetry.SessionID.String(info.RunID),
		telemetry.GenAIAgentName.String(AgentName(info.Argv)),
		telemetry.CommandLine.String(CommandLine(args)),
		telemetry.ProcessCommandArgs.StringSlice(args),
		telemetry.ProcessExitCode.Int(end.ExitCode),
		telemetry.ProcessUserID.Int(int(info.UID)),
		telemetry.CaptureContent.String("metadata"),
		telemetry.PolicyVersion.String(r.pol.Version),
		telemetry.PolicyMode.String(string(r.pol.Mode)),
	}
	if end.Signal != 0 {
		a = append(a, telemetry.ProcessSignal.String(signalName(end.Signal)))
	}
	if info.User != "" {
		a = append(a, telemetry.RunUser.String(info.User), telemetry.ProcessUserName.String(info.User))
	}
	if info.Workspace != "" {
		a = append(a, telemetry.Workspace.String(info.Workspace))
	}
	if len(info.Sensors) > 0 {
		a = append(a, telemetry.Sensors.StringSlice(info.Sensors))
	}
	if url, fromGit := RunRepository(info); fromGit {
		a = append(a, telemetry.VCSRepositoryURLFull.String(url), telemetry.VCSRepositoryName.String(repositoryName(url)))
	} else {
		// No git remote: the CI job's repository, when it names one.
		a = appendNonEmpty(a, telemetry.VCSRepositoryURLFull, url)
		a = appendNonEmpty(a, telemetry.VCSRepositoryName, info.CI[string(telemetry.VCSRepositoryName)])
	}
	if b := info.Before; b != nil && b.IsGit {
		a = appendNonEmpty(a, telemetry.VCSRefHeadName, b.Branch)
		if b.Branch != "" {
			a = append(a, telemetry.VCSRefHeadType.String("branch"))
		}
		a = appendNonEmpty(a, telemetry.VCSRefHeadRevision, b.Head)
		a = append(a, telemetry.WorktreeDirtyBefore.Bool(b.Dirty))
	}
	if af := end.After; af != nil && af.IsGit {
		a = append(a, telemetry.WorktreeDirtyAfter.Bool(af.Dirty))
		a = appendNonEmpty(a, telemetry.HeadAfter, af.Head)
	}
	a = appendNonEmpty(a, telemetry.TaskID, info.TaskID)
	a = appendNonEmpty(a, telemetry.TaskURL, info.TaskURL)
	for _, k := range sortedKeys(info.CI) {
		switch attribute.Key(k) {
		case telemetry.VCSRepositoryURLFull, telemetry.VCSRepositoryName, telemetry.PRURL, telemetry.VCSChangeID:
			continue // above, and finishPR
		}
		a = append(a, attribute.String(k, info.CI[k]))
	}
	labels := r.labels()
	for _, k := range sortedKeys(labels) {
		a = append(a, attribute.String(telemetry.LabelPrefix+k, labels[k]))
	}

	for _, g := range end.Gaps {
		r.addGap(g.String())
	}
	dropped := r.dropped + end.Dropped
	gaps := append([]string(nil), r.gaps...)
	if dropped > 0 {
		gaps = append(gaps, fmt.Sprintf("events dropped: %d", dropped))
	}
	a = append(a, telemetry.EventsDropped.Int64(int64(min(dropped, 1<<63-1))))
	// Always present: an empty list is the evidence that nothing was missing.
	a = append(a, telemetry.TelemetryGaps.StringSlice(gaps))
	a = append(a, r.activityAttrs(r.root)...)
	a = append(a, r.aggregatedAttrs()...)
	sp.Attrs = append(sp.Attrs, a...)

	switch {
	case end.Signal != 0:
		sp.Status, sp.StatusMessage = codes.Error, "killed by "+signalName(end.Signal)
		sp.SetAttr(telemetry.ErrorType.String(signalName(end.Signal)))
	case end.ExitCode != 0:
		sp.Status, sp.StatusMessage = codes.Error, "exit code "+strconv.Itoa(end.ExitCode)
		sp.SetAttr(telemetry.ErrorType.String(strconv.Itoa(end.ExitCode)))
	}
	return sp
}

// activityAttrs are the counts every process span (and the root, for
// activity of unknown processes) carries.
func (r *Recorder) activityAttrs(s *procSpan) []attribute.KeyValue {
	var a []attribute.KeyValue
	if n := len(s.written); n > 0 || !s.isRoot {
		a = append(a, telemetry.FilesWritten.Int(n))
	}
	conns := 0
	for _, ns := range s.netOrder {
		conns += ns.count()
	}
	if conns > 0 || !s.isRoot {
		a = append(a, telemetry.ConnectionsCount.Int(conns))
	}
	if dests, n := r.destinations(s); n > 0 {
		a = append(a, telemetry.NetworkDestinations.StringSlice(dests), telemetry.NetworkDestinationsCount.Int(n))
	}
	if n := len(s.outside); n > 0 {
		a = append(a,
			telemetry.FilesOutsideWorkspace.Int(n),
			telemetry.FilesOutsideTopDirs.StringSlice(topDirs(s.outsideDirs)),
		)
	}
	return a
}

// maxDestinations bounds agentwatch.network.destinations per process.
const maxDestinations = 16

// destinations summarises where a process connected: its distinct
// destinations by name when the run resolved one, first seen first
// (capped at maxDestinations), and how many there were.
func (r *Recorder) destinations(s *procSpan) ([]string, int) {
	if len(s.netOrder) == 0 {
		return nil, 0
	}
	var out []string
	seen := map[string]bool{}
	for _, ns := range s.netOrder {
		var d string
		if ns.key.transport == event.Unix {
			d = "unix:" + ns.key.unixPath
		} else {
			ip := ns.key.addr.Addr()
			host := ns.name
			if host == "" && r.pstate != nil {
				host = r.pstate.nameOf[ip]
			}
			if host == "" {
				host = ip.String()
			}
			d = net.JoinHostPort(host, strconv.Itoa(int(ns.key.addr.Port())))
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		if len(out) < maxDestinations {
			out = append(out, d)
		}
	}
	return out, len(seen)
}

// shellOf is the nearest shell among s's parent processes ("" when none:
// the agent exec'd it directly). A parent that is not a process (a tool
// call span) ends the walk.
func (r *Recorder) shellOf(s *procSpan) string {
	if len(r.procIndex) != len(r.spans) {
		r.procIndex = make(map[trace.SpanID]*procSpan, len(r.spans))
		for _, p := range r.spans {
			r.procIndex[p.id] = p
		}
	}
	for p, n := r.procIndex[s.parent], 0; p != nil && n < 64; p, n = r.procIndex[p.parent], n+1 {
		if name := path.Base(cmp.Or(p.interp, p.exe)); slices.Contains(shells, name) { // argv.go
			return name
		}
	}
	return ""
}

// executableName is process.executable.name: what /proc/PID/exe names,
// the interpreter for a script.
func executableName(exeName, interp string) string {
	if interp != "" {
		return path.Base(interp)
	}
	return exeName
}

func (r *Recorder) processSpan(s *procSpan) telemetry.Span {
	sp := r.span(s.id, s.parent, processSpanName(s.exe, s.args), s.name, telemetry.OITool, trace.SpanKindInternal, s.start, s.end)
	exeName := path.Base(s.exe)
	if s.exe == "" && len(s.args) > 0 {
		exeName = path.Base(s.args[0])
	}
	a := []attribute.KeyValue{
		telemetry.ProcessPID.Int(int(s.pid)),
		telemetry.ProcessParentPID.Int(int(s.ppid)),
		telemetry.ProcessExecutableName.String(executableName(exeName, s.interp)),
		telemetry.OIToolName.String(exeName), // OpenInference: the TOOL span's tool
		telemetry.ProcessExecutablePath.String(cmp.Or(s.interp, s.exe)),
		telemetry.ProcessCommandArgs.StringSlice(s.args),
		telemetry.CommandLine.String(CommandLine(s.args)),
		telemetry.ProcessWorkingDirectory.String(s.cwd),
		telemetry.ProcessUserID.Int(int(s.uid)),
		telemetry.CommandArgsTruncated.Bool(s.truncated),
	}
	if r.info.User != "" && s.uid == r.info.UID { // the run's account; other uids stay numbers
		a = append(a, telemetry.ProcessUserName.String(r.info.User))
	}
	switch {
	case s.exited && s.signal != 0:
		// Shells report a killed child as 128+signal; so does the root.
		a = append(a,
			telemetry.ProcessExitCode.Int(128+s.signal),
			telemetry.ProcessSignal.String(signalName(s.signal)),
			telemetry.ErrorType.String(signalName(s.signal)))
		sp.Status, sp.StatusMessage = codes.Error, "killed by "+signalName(s.signal)
	case s.exited:
		a = append(a, telemetry.ProcessExitCode.Int(s.exitCode))
		if s.exitCode != 0 {
			a = append(a, telemetry.ErrorType.String(strconv.Itoa(s.exitCode)))
			sp.Status, sp.StatusMessage = codes.Error, "exit code "+strconv.Itoa(s.exitCode)
		}
	case s.replaced:
		a = append(a, telemetry.ProcessReplaced.Bool(true))
	case s.stillRunning:
		a = append(a, telemetry.ProcessStillRunning.Bool(true))
	}
	if s.ioURing != "" {
		a = append(a, telemetry.ProcessIOURing.String(s.ioURing))
	}
	if s.mcpServer != "" {
		a = append(a, telemetry.MCPServerName.String(s.mcpServer))
	}
	if sh := r.shellOf(s); sh != "" {
		a = append(a, telemetry.CommandShell.String(sh))
	}
	a = append(a, r.classAttrs(s)...)
	a = append(a, r.activityAttrs(s)...)
	sp.Attrs = append(sp.Attrs, a...)
	return sp
}

func (r *Recorder) fileTelemetry(fs *fileSpan, parent trace.SpanID) telemetry.Span {
	name := telemetry.SpanFileWrite
	if fs.read {
		name = telemetry.SpanFileRead
	}
	rel := ""
	if fs.inWS {
		rel = strings.TrimPrefix(strings.TrimPrefix(fs.path, r.ws), "/")
	}
	class := classifyFile(fs.path, rel, fs.secret)
	sp := r.span(fs.id, parent, fileSpanName(fs.mainOp(), class), name, telemetry.OITool, trace.SpanKindInternal, fs.start, fs.end)
	sp.Attrs = append(sp.Attrs, telemetry.OIToolName.String(name)) // OpenInference: an action of the agent's tools
	ops := make([]string, len(fs.ops))
	for i, op := range fs.ops {
		ops[i] = op.String()
	}
	a := []attribute.KeyValue{
		telemetry.FilePath.String(fs.path),
		telemetry.FileOperation.String(fs.mainOp()),
		telemetry.FileOperations.StringSlice(ops),
		telemetry.FileOperationsCount.Int(fs.nOps),
		telemetry.FileClass.String(class),
		telemetry.FileInWorkspace.Bool(fs.inWS),
		telemetry.FileSource.String(fs.source),
	}
	if fs.renamedTo != "" {
		a = append(a, telemetry.FileRenamedTo.String(fs.renamedTo))
	}
	if fs.symlinkTarget != "" {
		a = append(a, telemetry.FileSymlinkTarget.String(fs.symlinkTarget))
	}
	if fs.linkedTo != "" {
		a = append(a, telemetry.FileLinkedTo.String(fs.linkedTo))
	}
	if len(fs.xattrs) > 0 {
		a = append(a, telemetry.FileXattrs.StringSlice(fs.xattrs))
	}
	if fs.persist != "" {
		a = append(a, telemetry.FilePersistence.String(fs.persist))
	}
	if r.fileSize != nil && !fs.read {
		// The size after the run, of the path or of where it was renamed to.
		if n, ok := r.fileSize(fs.path); ok {
			a = append(a, telemetry.FileSize.Int64(n))
		} else if fs.renamedTo != "" {
			if n, ok := r.fileSize(fs.renamedTo); ok {
				a = append(a, telemetry.FileSize.Int64(n))
			}
		}
	}
	if fs.failures > 0 {
		a = append(a, telemetry.FileFailures.Int(fs.failures))
		sp.Events = fs.failed
		if fs.nOps == 0 {
			// Nothing changed: the attempt itself is the finding.
			a = append(a, telemetry.ErrorType.String(fs.firstErr))
			sp.Status, sp.StatusMessage = codes.Error, fs.failedOp.String()+" failed: "+fs.firstErr
		}
	}
	sp.Attrs = append(sp.Attrs, a...)
	return sp
}

func (r *Recorder) netTelemetry(ns *netSpan, parent trace.SpanID) telemetry.Span {
	sp := r.span(ns.id, parent, telemetry.SpanNetworkCall, telemetry.SpanNetworkCall, telemetry.OITool,
		trace.SpanKindClient, ns.start, ns.end)
	sp.Attrs = append(sp.Attrs, telemetry.OIToolName.String(telemetry.SpanNetworkCall))
	if ns.key.transport == event.Unix {
		sp.Name = "connect unix"
		return r.unixTelemetry(sp, ns)
	}
	ip := ns.key.addr.Addr()
	server := ns.name
	if server == "" && r.pstate != nil {
		server = r.pstate.nameOf[ip] // resolved through the run's proxy
	}
	// Named by the host when there is one (few per run, the same across
	// runs); a bare address is only "an address", which is in the
	// attributes: names stay low-cardinality.
	sp.Name = "connect " + nameText(server)
	if server == "" {
		server = ip.String()
		sp.Name = "connect address"
	}
	netType := "ipv4"
	if ip.Is6() {
		netType = "ipv6"
	}
	a := []attribute.KeyValue{
		telemetry.ServerAddress.String(server),
		telemetry.ServerPort.Int(int(ns.key.addr.Port())),
		telemetry.NetworkPeerAddress.String(ip.String()),
		telemetry.NetworkPeerPort.Int(int(ns.key.addr.Port())),
		telemetry.NetworkTransport.String(ns.key.transport.String()),
		telemetry.NetworkType.String(netType),
		telemetry.ConnectionsCount.Int(ns.count()),
	}
	if ns.failures > 0 {
		a = append(a, telemetry.ConnectionFailures.Int(ns.failures), telemetry.ErrorType.String(ns.lastErr))
		if !ns.ok {
			sp.Status, sp.StatusMessage = codes.Error, ns.lastErr
		}
	}
	if ns.dec.verdict == event.Deny && !ns.ok && sp.StatusMessage == "" {
		sp.Status, sp.StatusMessage = codes.Error, "denied by policy ("+ns.dec.rule+")"
	}
	a = append(a, ns.dec.attrs()...)
	sp.Events = append(sp.Events, ns.dec.events...)
	sp.Attrs = append(sp.Attrs, a...)
	return sp
}

// unixTelemetry is a unix-socket network_call: the socket path is the
// peer (and server) address, per the OTel conventions for unix sockets.
func (r *Recorder) unixTelemetry(sp telemetry.Span, ns *netSpan) telemetry.Span {
	a := []attribute.KeyValue{
		telemetry.ServerAddress.String(ns.key.unixPath),
		telemetry.NetworkPeerAddress.String(ns.key.unixPath),
		telemetry.NetworkTransport.String(event.Unix.String()),
		telemetry.ConnectionsCount.Int(ns.count()),
	}
	if ns.peerPID != 0 {
		a = append(a, telemetry.UnixPeerPID.Int(int(ns.peerPID)), telemetry.UnixPeerOutsideRun.Bool(ns.outside))
	}
	if ns.failures > 0 {
		a = append(a, telemetry.ConnectionFailures.Int(ns.failures), telemetry.ErrorType.String(ns.lastErr))
		if !ns.ok {
			sp.Status, sp.StatusMessage = codes.Error, ns.lastErr
		}
	}
	sp.Attrs = append(sp.Attrs, a...)
	return sp
}

// topDirs returns the most written directories as "dir (count)", most
// first, ties by name.
func topDirs(dirs map[string]int) []string { return counted(dirs, topOutsideDirs) }

// summaryDir is the directory an outside write is counted under: its
// first few components, so /tmp/go-build1/b001/x.o and …/b002/y.o add up.
func summaryDir(p string) string {
	dir := path.Dir(p)
	n := 0
	for i := 1; i < len(dir); i++ {
		if dir[i] == '/' {
			n++
			if n == outsideDirDepth {
				return dir[:i]
			}
		}
	}
	return dir
}

func appendNonEmpty(a []attribute.KeyValue, k attribute.Key, v string) []attribute.KeyValue {
	if v == "" {
		return a
	}
	return append(a, k.String(v))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func abs32(n int32) int32 {
	if n < 0 {
		return -n
	}
	return n
}

// errnoName gives ECONNREFUSED rather than "connection refused": the
// stable, greppable form (sensors may deliver -errno or errno).
func errnoName(n int32) string {
	e := syscall.Errno(abs32(n))
	if name := unix.ErrnoName(e); name != "" {
		return name
	}
	return "errno " + strconv.Itoa(int(e))
}

func signalName(n int) string {
	if name := unix.SignalName(syscall.Signal(n)); name != "" {
		return name
	}
	return "SIG" + strconv.Itoa(n)
}

func cleanPath(p string) string {
	if p == "" {
		return p
	}
	return path.Clean(p)
}

func hasPathPrefix(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir) && len(p) > len(dir) && p[len(dir)] == '/'
}

// isPseudo reports kernel pseudo-files (/dev/null, /dev/tty, /proc, /sys):
// writing them changes no file.
func isPseudo(p string) bool {
	return hasPathPrefix(p, "/dev") || hasPathPrefix(p, "/proc") || hasPathPrefix(p, "/sys")
}
