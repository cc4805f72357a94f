// Package recorder turns the event stream of one run into its trace: a
// process tree of exec spans, file_write spans under the process that wrote,
// network_call spans under the process that connected, and the agent_run
// root. It is a pure function of the events plus workspace snapshots — no
// I/O, no clock, no privileges — so it is tested from recorded fixtures.
// Redaction of command lines happens here, before any sink sees them.
//
// It must not export, store or print anything; sinks do that.
//
// Memory is bounded per process, per (process, path) and per (process,
// destination), never per event: repeated operations become counts and
// capped lists on one span, and writes outside the workspace become a
// summary on the process span. Spans themselves are budgeted per process
// and per run: past the budgets, files, destinations, DNS names and plain
// commands are aggregate spans (aggregate.go); evidence keeps its span.
//
// Decisions a reader of the trace should know:
//   - openinference.span.kind: AGENT for agent_run, TOOL for process spans
//     (each is a tool the agent ran), CHAIN for file and network spans
//     (steps inside a tool). network_call has span kind CLIENT, the rest
//     INTERNAL.
//   - agentwatch.file.operation is the most significant operation seen, by
//     delete > rename > create > truncate > write > mkdir > chmod: where the
//     path ended up first, then whether it is new, then how it changed.
//     agentwatch.file.operations has the order (runs of one op once, capped
//     at 16, the latest kept last); agentwatch.file.operations.count the
//     total.
//   - A killed process gets process.exit.code 128+signal, as shells report
//     it, plus agentwatch.process.signal and error.type = the signal name.
//   - Writes outside the workspace, and into .git/objects, are counted per
//     distinct path (agentwatch.files.outside_workspace) with the top five
//     directories (first three components) as "dir (count)".
//   - agentwatch.events.dropped is the sum of event.Dropped counts and
//     End.Dropped.
package recorder

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/redact"
	"github.com/agentwatch/agentwatch/secretscan"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/trace"
)

// RunInfo is what the supervisor knows when the run starts.
type RunInfo struct {
	RunID          string
	TraceID        trace.TraceID // zero: derived from RunID
	Argv           []string      // the command as given to `agentwatch run`
	Start          time.Time
	RootPID        uint32 // pid of the launched child
	UID            uint32 // user the child runs as
	User           string
	Home           string // the child's home (passwd entry / the child's HOME), for "~/" policy patterns; empty: they match nothing and the run records gapNoHome
	Workspace      string // absolute: git root of the cwd, or the cwd
	TaskID         string
	TaskURL        string
	Policy         *policy.Policy      // nil: policy.Default()
	Before         *workspace.Snapshot // nil when no evidence could be taken
	Sensors        []string            // sensors that ran, e.g. ["ebpf", "fswatch"]
	Gaps           []event.Gap         // capabilities missing from the start
	Attributes     map[string]string   // labels of the run (--label team=x): agentwatch.label.<key> on the root and the resource, merged over the policy's attributes (these win on the same key)
	Host           string              // host.name on the resource (the supervisor's hostname)
	ServiceVersion string
	// CI is what the CI job's variables say (the supervisor reads the
	// environment agentwatch was started with, never the child's):
	// cicd.pipeline.*, agentwatch.ci.system and the like go on the root as
	// they are; vcs.repository.url.full and vcs.repository.name only when
	// the workspace has no git remote; agentwatch.pr.url and vcs.change.id
	// are the job's pull request (pr.go).
	CI map[string]string
	// RedactValues are the values of the environment variables the policy
	// drops that are secrets (redact.Secrets): replaced by [REDACTED]
	// wherever they appear in the trace. Never stored in the trace.
	RedactValues []string
	// Resolvers are the system's DNS servers (resolv.conf): DNS redirected
	// from any other address is a policy_bypass alert. Empty: not judged.
	Resolvers []netip.Addr
	// Prices turns model-call usage into agentwatch.cost.usd (llm.go);
	// nil: the built-in table.
	Prices *prices.Table
	// LLMProxy are the run's model proxy listeners (host:port), recorded
	// on the root so a reader can tell the agent's loopback connections to
	// them from others.
	LLMProxy []string
	// Capture is the content-capture tier (capture.go); zero: metadata.
	Capture Capture
	// MCPServers are the MCP servers of the agent's configuration the
	// supervisor read at run start (mcp.go): the exec of one is classed
	// mcp_server.
	MCPServers []MCPServer
}

// Started is what the supervisor learns once the sensors are up, just
// before the child starts (Recorder.Started); it replaces the same fields
// of RunInfo.
type Started struct {
	Sensors   []string            // sensors that run, e.g. ["ebpf", "fswatch"]
	Before    *workspace.Snapshot // nil when no evidence could be taken
	Resolvers []netip.Addr
	LLMProxy  []string
	// RedactValues: the dropped values that are secrets, judged now that
	// the start snapshot says what the run shows anyway (redact.Secrets).
	RedactValues []string
}

// Started records what the supervisor learned once the sensors were up.
// Call it before the child starts: what is redacted from then on depends
// on it.
func (r *Recorder) Started(s Started) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.info.Sensors, r.info.Before, r.info.Resolvers, r.info.LLMProxy = s.Sensors, s.Before, s.Resolvers, s.LLMProxy
	r.info.RedactValues = slices.Clone(s.RedactValues)
	r.red, r.redactPath = nil, nil // built again with these values
}

// End is what the supervisor knows when the run is over.
type End struct {
	Time     time.Time
	ExitCode int         // the child's exit status; 128+signal when killed
	Signal   int         // signal that killed the child, 0 otherwise
	Dropped  uint64      // events lost that no event.Dropped reported; added to those that did
	Gaps     []event.Gap // capabilities lost during the run
	After    *workspace.Snapshot
	Evidence *workspace.Evidence // the git_diff span and the root's workspace attributes; nil: none taken
	// SecretScan is the scan of the diff's added lines and of SecretWrites
	// (the secret_scan span); nil: Finish runs it (ScanSecrets) when
	// ReadFile is set, else no scan.
	SecretScan *secretscan.Result
	// ReadFile reads a file the run wrote, for the secret scan; injected
	// so the recorder itself does no I/O.
	ReadFile func(path string) ([]byte, error)
	// FileSize reports a path's size after the run (file.size on
	// file_write); nil leaves sizes out. Injected so the recorder itself
	// does no I/O.
	FileSize func(path string) (int64, bool)
	// Output is the root process's stdout and stderr as the supervisor
	// relayed them, in full capture only, not yet redacted (capture.go
	// redacts and bounds it); OutputTotal counts every byte relayed.
	Output      []byte
	OutputTotal int64
	// GitConfig are the code-executing git configuration entries the run
	// added or changed (the supervisor compares the files before and
	// after): each is a persistence alert.
	GitConfig []GitConfigChange
	// SelfCost reports the supervisor's own CPU time and peak RSS in
	// bytes (agentwatch.supervisor.*); called near the end of Finish, so
	// Finish's work counts. nil leaves them out.
	SelfCost func() (cpu time.Duration, maxRSS int64, ok bool)
}

// Recorder accumulates events. Add is safe for concurrent use by several
// sensors.
type Recorder struct {
	mu   sync.Mutex
	info RunInfo
	pol  *policy.Policy
	home string
	ws   string // cleaned workspace root, "" when unknown

	fileSize func(string) (int64, bool) // End.FileSize, during Finish

	traceID trace.TraceID
	seq     uint64 // span creation counter: span ids and stable ordering

	root      *procSpan
	procs     map[uint32]*proc
	spans     []*procSpan                // every process span, creation order
	procIndex map[trace.SpanID]*procSpan // spans by id (shellOf), rebuilt when spans grew

	// paths is the run's file list: every workspace path changed or
	// attempted, with the sensors that saw it, so that fswatch adds only
	// what eBPF missed (aggregate.go).
	paths    map[string]pathState
	unlisted int                  // paths past maxListedPaths
	fsw      map[string]*fileSpan // fswatch-only candidates, by path, within the budget
	fswStart time.Time            // first and last fswatch report, for its aggregate
	fswEnd   time.Time

	// Budgets and what went past them (aggregate.go).
	nFileSpans, nNetSpans, nDNSSpans, alertingSpans  int
	nProcSpans, argvBytes, aggKeys                   int
	exitedPIDs                                       []exitedPID // oldest first, bounded (aggregate.go)
	aggSpans, aggPaths, aggDests, aggNames, aggProcs int
	fileList                                         []FileChange
	fileListSum                                      string
	redactPath                                       func(string) string
	red                                              *redact.Redactor  // redactor(): built once, again after RedactAlso
	redactedPaths                                    map[string]string // listed paths whose redaction differs
	fileListHash                                     []uint64          // the file list's path hashes (before redaction), during Finish

	gaps    []string
	gapSeen map[string]bool
	dropped uint64

	seed      maphash.Seed
	pathCache map[string]pathInfo

	pstate *policyState // see policy.go; created on first use
	llm    *llmState    // see llm.go; created on first use
	agent  *agentState  // see agenttel.go; created on first use
	rules  *ruleState   // see rules.go; created on first use
	pr     *prState     // see pr.go; created on first use

	result *telemetry.Trace
}

// proc is one live (or recently exited) pid.
type proc struct {
	cur    *procSpan // current image; nil when forked but not exec'd
	attach *procSpan // nearest exec'd ancestor's span (root when none)
	ppid   uint32
	exited bool
	agg    *aggregate // the process aggregate its exec went to (aggregate.go)
}

// active is the span that owns this process's activity.
func (p *proc) active() *procSpan {
	if p.cur != nil {
		return p.cur
	}
	return p.attach
}

// New starts the record of one run.
func New(info RunInfo) *Recorder {
	r := &Recorder{
		info:      info,
		pol:       info.Policy,
		procs:     make(map[uint32]*proc),
		paths:     make(map[string]pathState),
		fsw:       make(map[string]*fileSpan),
		gapSeen:   make(map[string]bool),
		seed:      maphash.MakeSeed(),
		pathCache: make(map[string]pathInfo),
	}
	if r.pol == nil {
		r.pol = policy.Default()
	}
	// No guess (/home/<user> is wrong for CI runners, containers, LDAP
	// homes): without the supervisor's answer the ~/ patterns match
	// nothing, and the record says so.
	r.home = cleanPath(info.Home)
	if r.home == "" {
		r.addGap(gapNoHome)
	}
	if info.Workspace != "" {
		r.ws = cleanPath(info.Workspace)
	}
	r.traceID = info.TraceID
	if !r.traceID.IsValid() {
		sum := sha256.Sum256([]byte("agentwatch run " + info.RunID))
		copy(r.traceID[:], sum[:16])
	}
	r.root = r.newProcSpan(trace.SpanID{}, info.Start)
	r.root.isRoot = true
	for _, g := range info.Gaps {
		r.addGap(g.String())
	}
	return r
}

// nextSpanID derives span ids from the trace id and a counter, so the
// same event stream always gives the same ids (fixture tests compare
// them) and two runs never share one.
func (r *Recorder) nextSpanID() (trace.SpanID, uint64) {
	for {
		r.seq++
		var buf [24]byte
		copy(buf[:16], r.traceID[:])
		binary.BigEndian.PutUint64(buf[16:], r.seq)
		sum := sha256.Sum256(buf[:])
		var id trace.SpanID
		copy(id[:], sum[:8])
		if id.IsValid() {
			return id, r.seq
		}
	}
}

func (r *Recorder) newProcSpan(parent trace.SpanID, start time.Time) *procSpan {
	id, seq := r.nextSpanID()
	s := &procSpan{id: id, parent: parent, seq: seq, start: start}
	r.spans = append(r.spans, s)
	return s
}

// Add folds one event into the record. Events after Finish are ignored.
func (r *Recorder) Add(ev event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.result != nil {
		return
	}
	switch e := ev.(type) {
	case event.Fork:
		r.fork(e)
	case event.Launched:
		r.launched(e)
	case event.Exec:
		r.exec(e)
	case event.Exit:
		r.exit(e)
	case event.File:
		r.file(e)
	case event.Connect:
		r.connect(e)
	case event.Dropped:
		r.dropped += e.Count
	case event.Gap:
		r.addGap(gapString(e))
	case event.DNSQuery:
		r.dnsQuery(e)
	case event.NetDecision:
		r.netDecision(e)
	case event.EnvFiltered:
		r.envFiltered(e)
	case event.ProtectedPath:
		r.protectedPath(e)
	case event.LLMCall:
		r.llmCall(e)
	case event.IOURing:
		r.ioURing(e)
	case event.AgentTelemetry:
		r.agentTelemetry(e)
	case event.OutputURL:
		r.outputURL(e)
	default:
		// Sensors send values (a pointer is a bug): never silently.
		r.addGap(fmt.Sprintf("recorder: event of unhandled type %T", ev))
	}
}

func gapString(g event.Gap) string { return g.String() }

func (r *Recorder) addGap(g string) {
	if g == "" || r.gapSeen[g] {
		return
	}
	r.gapSeen[g] = true
	r.gaps = append(r.gaps, g)
}

// activeSpan is where activity of pid goes: its current exec span, the
// nearest exec'd ancestor's span, or the root when the pid is unknown
// (e.g. a connect seen before its exec).
func (r *Recorder) activeSpan(pid uint32) *procSpan {
	if p := r.procs[pid]; p != nil {
		return p.active()
	}
	return r.root
}

// launched names the run's command. Its first events may have come
// first (the sensors read while the start call returns): they are already
// under the root, since the command's parent is outside the run, and its
// pid must not be forgotten as an exited one.
func (r *Recorder) launched(e event.Launched) {
	r.info.RootPID = e.PID
	r.exitedPIDs = slices.DeleteFunc(r.exitedPIDs, func(x exitedPID) bool { return x.pid == e.PID })
}

func (r *Recorder) fork(e event.Fork) {
	// A fork always makes a new process: an old entry with this pid is a
	// reused pid whose owner exited.
	r.procs[e.PID] = &proc{ppid: e.PPID, attach: r.parentFor(e.PID, e.PPID)}
}

// parentFor is the span a new process hangs under: the run's root child
// under agent_run, otherwise its parent's active span (agent_run when the
// parent is unknown).
func (r *Recorder) parentFor(pid, ppid uint32) *procSpan {
	if pid == r.info.RootPID {
		return r.root
	}
	return r.activeSpan(ppid)
}

func (r *Recorder) exec(e event.Exec) {
	p := r.procs[e.PID]
	if p == nil || p.exited {
		// No fork seen (it happened before the sensor attached, or the
		// pid was reused without one): place it by the exec's ppid.
		p = &proc{ppid: e.PPID, attach: r.parentFor(e.PID, e.PPID)}
		r.procs[e.PID] = p
	}
	parent := p.attach
	if p.cur != nil {
		// A second exec in the same pid (`exec foo`, a wrapper that
		// re-execs): the old image ends here and the new one is its child.
		p.cur.end = e.Time
		p.cur.ended = true
		p.cur.replaced = true
		parent = p.cur
	}
	ppid := e.PPID
	if ppid == 0 {
		ppid = p.ppid
	}
	s := &procSpan{parent: parent.id, start: e.Time} // registered below, unless aggregated
	s.pid, s.ppid = e.PID, ppid
	s.exe, s.interp = e.Filename, e.Interpreter
	s.args = r.commandArgs(e.Argv, e.Time)
	s.truncated = e.ArgvTruncated
	s.cwd = e.Cwd
	s.uid = e.UID
	r.classifyExec(s)
	r.classifyMCP(s, parent, e.Filename, e.Argv)
	r.noteToolCommand(s, parent, e)
	if r.aggregateExec(p, parent, s, e) {
		return
	}
	s.id, s.seq = r.nextSpanID()
	r.spans = append(r.spans, s)
	r.noteToolContext(s, e)
	r.noteExec(s)
	r.notePush(s)
	p.cur = s
}

func (r *Recorder) exit(e event.Exit) {
	p := r.procs[e.PID]
	if p == nil {
		return
	}
	p.exited = true
	r.exited(e, p)
	if s := p.cur; s != nil && !s.ended {
		s.end = e.Time
		s.ended, s.exited = true, true
		s.exitCode, s.signal = e.Code, e.Signal
	}
}

// pathInfo is the policy's view of one path, cached because a build
// writes the same paths many times and glob matching is the hot spot.
type pathInfo struct {
	inWS, secret, protected, gitObject bool
	progress                           bool   // a change that can change the diff (isProgressWrite)
	persist                            string // the persistence pattern matched, "" for none
}

func (r *Recorder) classifyPath(p string) pathInfo {
	if pi, ok := r.pathCache[p]; ok {
		return pi
	}
	pi := pathInfo{
		inWS:      r.inWorkspace(p),
		secret:    r.pol.IsSecret(p, r.home),
		protected: r.pol.IsProtected(p, r.ws, r.home),
	}
	pi.gitObject = pi.inWS && hasPathPrefix(p, r.ws+"/.git/objects")
	pi.progress = pi.inWS && r.isProgressWrite(p)
	pi.persist, _, _ = policy.Persistence(p, r.ws, r.home)
	// Bounded: a build writing a million distinct paths must not grow
	// the cache without limit; dropping it only costs recomputation.
	if len(r.pathCache) >= 4096 {
		clear(r.pathCache)
	}
	r.pathCache[p] = pi
	return pi
}

func (r *Recorder) inWorkspace(p string) bool {
	return r.ws != "" && hasPathPrefix(p, r.ws)
}

func (r *Recorder) file(e event.File) {
	if e.Source == event.SourceFSWatch {
		r.fswatch(e)
		return
	}
	p := cleanPath(e.Path)
	np := ""
	if e.NewPath != "" {
		np = cleanPath(e.NewPath)
		if e.Op == event.FileSymlink && !strings.HasPrefix(np, "/") {
			np = path.Join(path.Dir(p), np) // a target as written is relative to the link's directory
		}
	}
	p, np = r.resolveFDPaths(e.PID, p, np)
	if isPseudo(p) && (np == "" || isPseudo(np)) {
		return // /dev/null, /dev/tty, /proc/self/..., /sys/...
	}
	pi := r.classifyPath(p)
	persist := ""
	if persistsAt(e.Op, false) {
		persist = pi.persist
	}
	if np != "" {
		npi := r.classifyPath(np)
		pi.inWS = pi.inWS || npi.inWS
		pi.secret = pi.secret || npi.secret
		pi.protected = pi.protected || npi.protected
		pi.gitObject = pi.gitObject && (npi.gitObject || !npi.inWS)
		if npi.inWS && !npi.gitObject && e.Op != event.FileRead && e.Op != event.FileSymlink {
			r.notePath(np, event.FileCreate, e.Errno, pathCovered) // the new name appeared
		}
		if persist == "" && persistsAt(e.Op, true) {
			persist = npi.persist
		}
	}
	owner := r.activeSpan(e.PID)
	if persist != "" {
		pi.persist = persist // evidence: the span budget does not apply (aggregate.go)
	}

	if e.Op == event.FileRead {
		if !pi.secret {
			return // only sensitive reads are recorded (metadata capture)
		}
		if owner.files[fileKey{path: p, read: true}] == nil && !r.fileBudget(owner, true) {
			r.aggregateFile(owner, p, e, telemetry.AlertSecretAccess)
			return
		}
		fs := r.fileSpan(owner, fileKey{path: p, read: true}, e, pi)
		fs.add(e, np)
		r.fileAlerts(fs, e)
		return
	}
	if pi.inWS && !pi.gitObject {
		r.notePath(p, e.Op, e.Errno, pathCovered)
	}
	if !pi.secret && !pi.protected && persist == "" && (!pi.inWS || pi.gitObject) {
		// Outside the workspace (build caches, /tmp) or git's object
		// store: a count and top directories on the process span, so a
		// build cannot flood the trace. Failed attempts there are noise.
		if e.Errno == 0 {
			dir := summaryDir(p)
			if pi.gitObject {
				dir = r.ws + "/.git/objects"
			}
			owner.noteOutside(r.hash(p), dir)
		}
		return
	}
	rule := evidenceRule(pi)
	if owner.files[fileKey{path: p}] == nil && !r.fileBudget(owner, rule != "") {
		r.aggregateFile(owner, p, e, rule)
		if e.Errno == 0 {
			owner.noteWritten(r.hash(p))
			r.noteWrite(p, np, e.Time)
		}
		return
	}
	fs := r.fileSpan(owner, fileKey{path: p}, e, pi)
	fs.add(e, np)
	if persist != "" && fs.persist == "" {
		fs.persist = persist
	}
	if pi.protected || pi.secret {
		r.fileAlerts(fs, e)
	}
	if persist != "" {
		r.persistenceAlert(fs, e, np, persist)
	}
	if e.Errno == 0 {
		owner.noteWritten(r.hash(p))
		r.noteWrite(p, np, e.Time)
	}
}

func (r *Recorder) hash(p string) uint64 { return maphash.String(r.seed, p) }

func (r *Recorder) fileSpan(owner *procSpan, key fileKey, e event.File, pi pathInfo) *fileSpan {
	if fs := owner.files[key]; fs != nil {
		return fs
	}
	r.countFileSpan(owner, pi.secret || pi.protected || pi.persist != "")
	id, seq := r.nextSpanID()
	fs := &fileSpan{
		id: id, seq: seq, path: key.path, read: key.read,
		start: e.Time, end: e.Time,
		inWS: pi.inWS, secret: pi.secret, protected: pi.protected,
		source: e.Source.String(),
	}
	if owner.files == nil {
		owner.files = make(map[fileKey]*fileSpan)
	}
	owner.files[key] = fs
	owner.fileOrder = append(owner.fileOrder, fs)
	return fs
}

// fswatch keeps workspace paths the inotify watcher reported; Finish emits those no
// other sensor covered.
func (r *Recorder) fswatch(e event.File) {
	for _, raw := range []string{e.Path, e.NewPath} {
		if raw == "" {
			continue
		}
		p := cleanPath(raw)
		if r.ws != "" && !r.inWorkspace(p) || hasPathPrefix(p, r.ws+"/.git/objects") {
			continue // eBPF summarises git's object store; fswatch has no process to summarise on
		}
		op := e
		if raw == e.NewPath {
			op.Op = event.FileCreate // the rename's target appeared
			op.NewPath = ""
		}
		if r.fswStart.IsZero() || e.Time.Before(r.fswStart) {
			r.fswStart = e.Time
		}
		r.fswEnd = maxTime(r.fswEnd, e.Time)
		r.notePath(p, op.Op, op.Errno, pathFSW) // in the workspace, or what fswatch watches when it is unknown
		fs := r.fsw[p]
		if fs == nil {
			// Within the budget a candidate span; past it the path table
			// is enough (the aggregate counts its operations), unless
			// the path is evidence.
			if len(r.fsw) >= fileSpansPerRun {
				if pi := r.classifyPath(p); !pi.secret && !pi.protected {
					continue
				}
			}
			fs = &fileSpan{path: p, start: e.Time, end: e.Time, inWS: r.inWorkspace(p), source: event.SourceFSWatch.String()}
			r.fsw[p] = fs
		}
		fs.add(op, "")
	}
}

func (r *Recorder) connect(e event.Connect) {
	if e.Transport == event.Unix {
		r.unixConnect(e)
		return
	}
	if !e.Addr.IsValid() {
		return // no network destination
	}
	addr := netip.AddrPortFrom(e.Addr.Addr().Unmap(), e.Addr.Port())
	owner := r.activeSpan(e.PID)
	key := netKey{transport: e.Transport, addr: addr}
	ns := owner.nets[key]
	if ns == nil && !r.netBudget(owner) {
		r.aggregateConnect(owner, key, e)
		return
	}
	if ns == nil {
		owner.nNetSpans++
		r.nNetSpans++
		id, seq := r.nextSpanID()
		ns = &netSpan{id: id, seq: seq, key: key, start: e.Time, end: e.Time}
		if owner.nets == nil {
			owner.nets = make(map[netKey]*netSpan)
		}
		owner.nets[key] = ns
		owner.netOrder = append(owner.netOrder, ns)
		r.ps().lastNet[key] = ns
	}
	ns.add(e)
}

// resolveFDPaths reads a path named through a directory descriptor,
// /proc/self/fd/N/name (Claude Code's native binary renames its atomic
// writes so: rename("/proc/self/fd/16/x.tmp.1", "/proc/self/fd/16/x")),
// which the sensors report as written: the directory is the one of the
// file of that name the same process made last, and a second path through
// the same descriptor is in it too. Unresolved paths stay as they are
// (pseudo-files, dropped).
func (r *Recorder) resolveFDPaths(pid uint32, p, np string) (string, string) {
	fd, name, ok := fdPath(p)
	if !ok {
		return p, np
	}
	owner := r.activeSpan(pid)
	for i := len(owner.fileOrder) - 1; i >= 0; i-- {
		fs := owner.fileOrder[i]
		if path.Base(fs.path) != name || isPseudo(fs.path) {
			continue
		}
		dir := path.Dir(fs.path)
		if fd2, name2, ok := fdPath(np); ok && fd2 == fd {
			np = path.Join(dir, name2)
		}
		return path.Join(dir, name), np
	}
	return p, np
}

// fdPath splits /proc/self/fd/N/name (or /proc/PID/fd/N/name) into the
// descriptor's path and the name; ok only for a single name below it.
func fdPath(p string) (fd, name string, ok bool) {
	rest, found := strings.CutPrefix(p, "/proc/")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[1] != "fd" || parts[3] == "" {
		return "", "", false
	}
	return "/proc/" + parts[0] + "/fd/" + parts[2], parts[3], true
}
