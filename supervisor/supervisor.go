// Package supervisor runs one agent run end to end: it launches the child
// (PTY or pipes, as the invoking user, no_new_privs, born in its own cgroup
// v2), starts the sensors on that cgroup and the workspace, forwards signals
// and window sizes, waits, drains the sensors, and hands the trace to the
// sinks (store first, then the trace file, then OTLP).
//
// It wires parts together; it must not build spans (the recorder does),
// decode kernel records (ebpf does) or decide exit codes for agentwatch's
// own failures (cli maps its errors).
package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentwatch/agentwatch/ebpf"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/journal"
	"github.com/agentwatch/agentwatch/netwatch"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/redact"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/trace"
)

// Options describe one `agentwatch run`.
type Options struct {
	Argv      []string // the command and its arguments
	User      string   // --user: name or uid; empty: the sudo user (see ResolveAccount)
	TraceFile string   // --trace-file: OTLP/JSON lines; empty: none
	OTLP      export.Config
	StoreDir  string // the run store; required
	TaskID    string
	TaskURL   string
	// Labels (--label key=value, keys checked by the CLI) are
	// agentwatch.label.<key> on the root and the resource, over the
	// policy's attributes of the same key.
	Labels map[string]string

	// Stdin, Stdout, Stderr are the supervisor's streams. An *os.File is
	// handed to the child as is (no copying); a terminal stdin gets the
	// child a PTY. Stderr also receives agentwatch's own messages.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	Dir     string   // the child's working directory; empty: the current one
	Env     []string // the child's environment before HOME/USER/LOGNAME; nil: os.Environ()
	Version string   // agentwatch's version, recorded on the trace

	Policy *policy.Policy // the compiled policy; nil: policy.Default()
	// PolicyNotes say how the policy was chosen when that matters to a
	// reviewer (a worktree .agentwatch.yaml ignored for the base
	// commit's); recorded on the run as "policy: …" gaps.
	PolicyNotes []string
	Prices      *prices.Table // --prices: model prices; nil: the built-in table

	// CaptureFull turns on full content capture for this long (the
	// --capture-full expiry); 0: metadata only (capture.go).
	CaptureFull time.Duration

	// FSWatch runs the inotify watcher beside the eBPF sensor, as a live
	// cross-check of workspace changes. Off by default: the end-of-run
	// workspace evidence is the cross-check (a change it shows that no
	// sensor saw is agentwatch.files.unattributed), and inotify's cost is
	// per file change, in the kernel, paid by the child (make bench
	// measures it). Without eBPF fswatch is the file sensor and runs
	// whatever this says.
	FSWatch bool

	// Result, when set, receives what became of the record (--result-file).
	Result *Result
}

// Timeouts of the end of a run; bounded so a wedged sink cannot hang it.
const (
	cgroupKillTimeout = 2 * time.Second
	uploadTimeout     = 15 * time.Second
)

// Run runs the command under observation and records the run. It returns
// the child's exit status (128+signal when killed by one). err is non-nil
// when agentwatch itself failed; it is then one line ("doing x: cause")
// and, when the child ran, exitCode still holds its status.
//
// The phases, in order: prepare (the command, the user, the environment,
// the sinks, the journal and the recorder), observe (the cgroup, the
// protected paths, the sensors), launch, wait, and record (the end of the
// run is an input to the recorder's Finish; the trace goes to the sinks).
func Run(ctx context.Context, o Options) (exitCode int, err error) {
	if len(o.Argv) == 0 {
		return 0, errors.New("no command given")
	}
	if o.StoreDir == "" {
		return 0, errors.New("no store directory given")
	}
	defer limitMemory()()
	// A reader that went away (`agentwatch run … 2>&1 | head`) must not
	// kill agentwatch mid-run: the run would be left to recovery. Caught,
	// not ignored: an ignored SIGPIPE would be inherited by the child.
	brokenPipe := make(chan os.Signal, 1)
	signal.Notify(brokenPipe, syscall.SIGPIPE)
	defer signal.Stop(brokenPipe)
	r := &run{o: o, stderr: o.Stderr}
	if r.stderr == nil {
		r.stderr = io.Discard
	}
	defer r.cleanup() // on every return, and on panic: what the phases set up
	lap := phaseClock(r.stderr)
	defer lap("record")
	if err := r.prepare(ctx); err != nil {
		return 0, err
	}
	lap("prepare")
	if err := r.observe(ctx); err != nil {
		return 0, err
	}
	lap("observe")
	ch, err := r.launch(ctx)
	if err != nil {
		return 0, err
	}
	lap("launch")
	end, err := r.wait(ch)
	if err != nil {
		return 0, err
	}
	lap("wait")
	return r.record(ctx, end)
}

// showPhases is a development aid for `make bench` investigations: with
// AGENTWATCH_PHASES=1 each phase's wall time, and each sensor's start, go
// to stderr.
var showPhases = os.Getenv("AGENTWATCH_PHASES") == "1"

func phaseClock(w io.Writer) func(phase string) {
	if !showPhases {
		return func(string) {}
	}
	last := time.Now()
	return func(phase string) {
		now := time.Now()
		fmt.Fprintf(w, "agentwatch: phase %s %.1f ms\n", phase, ms(now.Sub(last)))
		last = now
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// run is one Run's state, phase to phase.
type run struct {
	o      Options
	stderr io.Writer
	undo   []func() // cleanup runs them, last first

	dir, path string // the child's working directory and executable
	account   Account
	pol       *policy.Policy
	callerEnv []string // the environment agentwatch was given
	env       []string // the child's
	envEvent  event.EnvFiltered
	dropped   []redact.Dropped
	capture   capturePlan

	before    chan *workspace.Snapshot // the start snapshot, taken beside the rest of prepare
	snapTaken bool

	st        *store.Store
	traceFile *export.FileWriter
	info      recorder.RunInfo
	jw        *journal.Writer // nil: no journal
	launched  bool            // the child started: the journal must outlive a crash
	mu        sync.Mutex      // orders the journal and the recorder alike
	rec       *recorder.Recorder

	target    *Target
	cgroup    *Cgroup // nil: none could be made
	obs       *observation
	protect   *protectPlan
	gitConfig *gitConfigWatch
	snapshot  *workspace.Snapshot // the start snapshot, once observe has it
	sigs      chan os.Signal
	tm        *terminal
	scans     []*prStream // the output scanner's streams (prscan.go), flushed when the relay is done
}

// deferred adds f to what cleanup undoes.
func (r *run) deferred(f func()) { r.undo = append(r.undo, f) }

func (r *run) cleanup() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
}

// emit hands an event to the journal, then the recorder, in one order for
// both: recovery replays the journal as the recorder saw it.
func (r *run) emit(ev event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jw != nil {
		r.jw.Append(ev)
	}
	r.rec.Add(ev)
}

// journal keeps a supervisor record for recovery (recover.go).
func (r *run) journal(kind string, data []byte) {
	if r.jw != nil {
		r.jw.AppendMeta(kind, data)
	}
}

// prepare resolves the command, the user and the environment, opens the
// sinks (a run that cannot be kept must not start), and creates the
// journal and the recorder.
func (r *run) prepare(ctx context.Context) error {
	o := r.o
	r.callerEnv = o.Env
	if r.callerEnv == nil {
		r.callerEnv = os.Environ()
	}
	var err error
	if r.dir, err = workingDir(o.Dir); err != nil {
		return err
	}
	// The child's PATH, not agentwatch's (they differ under sudo's
	// secure_path only when the caller passes its own environment).
	if r.path, err = LookPath(o.Argv[0], lookupEnv(r.callerEnv, "PATH"), r.dir); err != nil {
		return err
	}
	if r.account, err = ResolveAccount(o.User, os.Geteuid(), os.Getenv, r.dir); err != nil {
		return err
	}
	r.pol = o.Policy
	if r.pol == nil {
		r.pol = policy.Default()
	}
	// The allowlist (enforce) plus the supervisor's own variables; the
	// event names what was dropped, never a value (env.go).
	r.env, r.envEvent, r.dropped = policyEnv(r.pol, r.callerEnv, r.account, time.Now())
	r.capture = planCapture(r.pol, o.CaptureFull, time.Now(), r.stderr)

	// git runs while the store opens, and the kernel's BTF is decoded for
	// the eBPF loads that come next (their largest CPU cost). Released once
	// both program sets are loaded.
	if os.Geteuid() == 0 {
		ebpf.PreloadKernelTypes()
	}
	r.deferred(ebpf.ReleaseKernelTypes)
	// The start snapshot (several git processes) follows at once, beside
	// the store, the proxies and the eBPF loads; the child waits for it
	// (observe). If the run ends before observe takes it, cleanup removes
	// its temporary index.
	wsRoot := make(chan string, 1)
	r.before = make(chan *workspace.Snapshot, 1)
	go func() {
		root := workspace.Root(r.dir)
		wsRoot <- root
		r.before <- workspace.Take(root)
	}()
	r.deferred(func() {
		if !r.snapTaken {
			(<-r.before).Close()
		}
	})

	// Sinks first: a run that cannot be kept must not start.
	if r.st, err = store.Open(o.StoreDir); err != nil {
		return fmt.Errorf("opening store %s: %w", store.Redact(o.StoreDir), err)
	}
	r.deferred(func() { r.st.Close() })
	// A run whose agentwatch died is saved before this one starts.
	if ids, err := Recover(ctx, r.st, o.StoreDir); err != nil || len(ids) > 0 {
		for _, id := range ids {
			fmt.Fprintf(r.stderr, "agentwatch: %s\n", termtext.Escape(id.Message()))
		}
		if err != nil {
			fmt.Fprintf(r.stderr, "agentwatch: %s\n", termtext.Escape(oneLine(err)))
		}
	}
	if o.TraceFile != "" {
		if r.traceFile, err = export.OpenFile(o.TraceFile); err != nil {
			return fmt.Errorf("opening trace file %s: %w", o.TraceFile, err)
		}
		if n := r.traceFile.Repaired; n > 0 {
			fmt.Fprintf(r.stderr, "agentwatch: trace file %s: removed a partial last line (%d bytes) an earlier write left\n", termtext.Escape(o.TraceFile), n)
		}
		r.deferred(func() { r.traceFile.Close() })
	}

	start := time.Now()
	r.info = recorder.RunInfo{
		RunID:          NewRunID(start),
		TraceID:        newTraceID(),
		Argv:           o.Argv,
		Start:          start,
		UID:            r.account.UID,
		User:           r.account.Name,
		Home:           childHome(r.env, r.account),
		Workspace:      <-wsRoot,
		TaskID:         o.TaskID,
		TaskURL:        o.TaskURL,
		CI:             ciAttributes(r.callerEnv),
		Attributes:     withCIOrg(o.Labels, r.pol.Attributes, r.callerEnv),
		ServiceVersion: o.Version,
		Host:           hostname(),
		Policy:         r.pol,
		Prices:         o.Prices,
		// Which dropped values are secrets depends on what the run shows
		// anyway (redact.Secrets); until the start snapshot says so, the
		// wider set without it (the journal's too).
		RedactValues: redact.Secrets(r.dropped, nil),
		Capture:      r.capture.rec,
	}
	r.info.MCPServers = mcpServers(r.info.Workspace, r.dir, r.info.Home, o.Argv)
	r.rec = recorder.New(r.info)
	// The journal: what a crash, a full disk or a corrupt store would
	// otherwise lose (recover.go). Without it the run still runs.
	if jw, err := journal.Create(JournalDir(o.StoreDir), r.info.RunID, newRunHeader(r.info, r.pol)); err != nil {
		r.emit(gapEvent(gapText("journal", oneLine(err)+" (a crash of agentwatch would lose this run)")))
	} else {
		r.jw = jw
		r.deferred(func() {
			if !r.launched {
				_ = jw.Remove() // nothing ran: nothing to recover
			}
		})
	}
	for _, n := range o.PolicyNotes {
		r.emit(gapEvent(gapText("policy", n)))
	}
	return nil
}

// observe makes the run's cgroup, holds the protected paths and starts the
// sensors; on return everything the child needs is ready.
func (r *run) observe(ctx context.Context) error {
	pol := r.pol
	r.target = &Target{
		RunID: r.info.RunID, Workspace: r.info.Workspace, Home: r.info.Home, Policy: pol,
		TraceID: r.rec.TraceID(), RootSpan: r.rec.RootSpanID(),
		Journal: r.journal, emitKernel: r.emit,
	}
	r.target.Emit = r.target.emitOrdered
	cgroup, err := runCgroup(r.info.RunID)
	if err != nil {
		r.emit(gapEvent(gap("cgroup", err)))
	} else {
		r.cgroup, r.target.Cgroup = cgroup, cgroup
		r.journal(metaCgroup, []byte(cgroup.Path))
		r.deferred(func() {
			// Early returns (the normal path removes it in record).
			if r.cgroup != nil {
				_ = r.cgroup.Kill(cgroupKillTimeout)
				_ = r.cgroup.Remove()
			}
		})
	}
	stages := runSensors(r.o, r.callerEnv, r.capture.llm())
	// The supervisor's endpoints first: the environment event names their
	// variables (never their values), and the placeholders of absent
	// protected paths are made before the file sensors start, so they are
	// not mistaken for the run's changes (git does not see them either:
	// empty directories, or files outside the repository).
	obs, err := startSensors(ctx, r.target, stages[:1])
	if err != nil {
		return err
	}
	r.obs = obs
	r.deferred(r.obs.stop) // early returns; the normal path stops them in wait
	r.env, r.envEvent = r.target.childEnv(r.env, r.envEvent)
	r.emit(r.envEvent)
	r.protect = planProtect(pol, r.info.Workspace, r.info.Home, pol.Mode == policy.Enforce, time.Now())
	if pol.Mode == policy.Enforce && r.account.UID != 0 {
		r.protect.maskUserServers(r.account.UID)
	}
	for _, ev := range r.protect.events {
		r.emit(ev)
	}
	r.deferred(func() { r.protect.cleanup() }) // early returns; the normal path cleans up before the after snapshot
	for _, ph := range r.protect.placeholders {
		r.journal(metaPlaceholder, []byte(ph.path))
	}
	if err := r.protect.materialize(); err != nil {
		return err
	}
	kernel, err := startSensors(ctx, r.target, stages[1:])
	if err != nil {
		return err
	}
	r.obs.running = append(r.obs.running, kernel.running...)
	r.obs.stops = append(r.obs.stops, kernel.stops...)
	ebpf.ReleaseKernelTypes()
	r.snapshot = <-r.before
	r.snapTaken = true
	for _, g := range r.protect.gaps {
		r.emit(gapEvent(g))
	}
	var proxy []string
	for _, e := range r.target.exposedEndpoints() {
		if e.sensor == "llm" {
			proxy = append(proxy, e.ap.String())
		}
	}
	info := r.info
	info.Before = r.snapshot
	r.rec.Started(recorder.Started{
		Sensors:      r.obs.running,
		Before:       r.snapshot,
		Resolvers:    systemResolvers(),
		LLMProxy:     proxy,
		RedactValues: redact.Secrets(r.dropped, publicMetadata(info, r.dir)),
	})
	si := newRunStartInfo(r.obs.running, nil)
	si.Before = r.snapshot
	startInfo, _ := json.Marshal(si)
	r.journal(metaInfo, startInfo)
	r.gitConfig = watchGitConfig(r.info.Workspace, r.info.Home)
	return nil
}

// hostname is host.name on the run's resource ("" when unknown).
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// runCgroup is the run's own cgroup v2, where the child is born.
func runCgroup(runID string) (*Cgroup, error) {
	mount, _, err := Cgroup2Mount()
	if err != nil {
		return nil, err
	}
	return NewCgroup(mount, runID)
}

// systemResolvers are the nameservers the child's configuration points at:
// DNS the hooks redirected from any other address is flagged as a bypass.
func systemResolvers() []netip.Addr {
	ns, _ := netwatch.Nameservers("/etc/resolv.conf")
	return ns
}

// launch starts the child: in the run's cgroup, as the account, with the
// protected paths held, under a PTY when stdin is a terminal.
func (r *run) launch(ctx context.Context) (*child, error) {
	o := r.o
	var stop func()
	r.sigs, stop = catchSignals()
	r.deferred(stop)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Argv[0], err)
	}
	// The output the supervisor relays is scanned for pull request URLs,
	// judged against the run's repository (prscan.go).
	info := r.info
	info.Before = r.snapshot
	repo, _ := recorder.RunRepository(info)
	sink := newPRSink(repo, r.emit)
	outScan, errScan := sink.stream(), sink.stream()
	r.scans = []*prStream{outScan, errScan}
	spec := childSpec{
		path: r.path, argv: o.Argv, env: r.env, dir: r.dir, target: r.account,
		stdin: o.Stdin, stdout: r.capture.tee(o.Stdout), stderr: r.capture.tee(o.Stderr),
		cgroup: r.cgroup, ns: r.protect, useInit: os.Geteuid() == 0,
	}
	if r.pol.Mode == policy.Enforce {
		spec.filter = seccompPolicy{DenyIOURing: true, DenyForeignABI: true}
	}
	if f, ok := isTerminal(o.Stdin); ok {
		spec.stdinT = f
	} else {
		// Pipe mode: the child never holds the operator's terminal.
		spec.stdout = outScan.pipe(r.capture.tee(terminalOutput(o.Stdout)))
		spec.stderr = errScan.pipe(r.capture.tee(terminalOutput(o.Stderr)))
	}
	ch, err := startChild(spec)
	if err != nil {
		var pe *protectError
		if errors.As(err, &pe) {
			return nil, pe // agentwatch's failure, not the command's
		}
		return nil, startError(o.Argv[0], err)
	}
	if r.tm = ch.tm; r.tm != nil {
		out := o.Stdout
		if out == nil {
			out = io.Discard
		}
		if err := r.tm.attach(outScan.tee(r.capture.tee(out))); err != nil {
			// Not fatal: the child still has its PTY, the user's terminal
			// just stays cooked.
			fmt.Fprintf(r.stderr, "agentwatch: %s\n", termtext.Escape(err.Error()))
		}
		r.deferred(r.tm.restore) // also on panic; wait restores on the normal path
	}
	r.journal(metaLaunched, []byte(strconv.Itoa(ch.pid)))
	r.emit(event.Launched{Header: event.Header{Time: time.Now(), PID: uint32(ch.pid)}})
	r.launched = true
	return ch, nil
}

// wait forwards signals until the child is reaped, then ends the
// observation: what is left of the run is killed, the sensors drain, the
// workspace evidence is taken. It returns what Finish needs.
func (r *run) wait(ch *child) (recorder.End, error) {
	killRun := func() {
		if r.cgroup != nil {
			_ = os.WriteFile(filepath.Join(r.cgroup.Path, "cgroup.kill"), []byte("1"), 0)
			return
		}
		// The init's death ends its PID namespace; a direct child
		// leads its own session and group.
		_ = syscall.Kill(-ch.signalled(), syscall.SIGKILL)
	}
	waitErr := forwardSignals(r.sigs, ch.signalled(), ch.groupSignals(), r.tm, ch.waited, killRun)
	end := recorder.End{FileSize: fileSize}
	var known bool
	end.ExitCode, end.Signal, known = ch.status()
	endInfo, _ := json.Marshal(runEndInfo{ExitCode: end.ExitCode, Signal: end.Signal, Time: time.Now()})
	r.journal(metaEnd, endInfo)
	if r.jw != nil {
		_ = r.jw.Sync() // the exit status is kept before the slow end of the run
		if err := r.jw.Err(); err != nil {
			end.Gaps = append(end.Gaps, gapText("journal", oneLine(err)+" (a crash of agentwatch now would lose part of this run)"))
		}
	}
	if !known {
		return end, fmt.Errorf("waiting for %s: %w", r.o.Argv[0], waitErr)
	}
	// Leftovers in the cgroup are killed first so their exits are still
	// seen; then nothing in the run is left to change the workspace: the
	// sensors drain beside the after snapshot (git, the slow part).
	if r.cgroup != nil {
		if err := r.cgroup.Kill(cgroupKillTimeout); err != nil {
			end.Gaps = append(end.Gaps, gap("cgroup", err))
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		end.Evidence = workspace.TakeEvidence(r.snapshot, r.info.Workspace, workspace.Limits{})
		end.After = end.Evidence.After
	})
	r.obs.stop() // the calls still streaming end with their processes; what the agent flushed at exit is in
	wg.Wait()
	if r.cgroup != nil {
		if err := r.cgroup.Remove(); err != nil {
			end.Gaps = append(end.Gaps, gap("cgroup", err))
		}
		r.cgroup = nil
	}
	// Nothing of the run is left to hold a placeholder, and the file
	// sensors are stopped: removing them is not the run's change.
	end.Gaps = append(end.Gaps, r.protect.cleanup()...)
	var gcGaps []event.Gap
	end.GitConfig, gcGaps = r.gitConfig.check(r.pol.Mode == policy.Enforce)
	end.Gaps = append(end.Gaps, gcGaps...)
	end.ReadFile = readSecretFile // Finish scans the diff and the secret files the run wrote
	if r.tm != nil {
		r.tm.finish()
	}
	r.capture.fill(&end) // the relay is done: the pipes by Wait, the PTY by finish
	for _, s := range r.scans {
		s.Flush() // a URL the output ended on
	}
	end.Time = time.Now()
	end.SelfCost = selfCost
	return end, nil
}

// record finishes the trace and hands it to the sinks; a run the store
// cannot take stays whole in the journal for the next command to save.
func (r *run) record(ctx context.Context, end recorder.End) (int, error) {
	tr := r.rec.Finish(end)
	writeSummary(r.stderr, tr) // after the terminal is restored; nothing when nothing happened
	files := r.rec.Files()
	saved, err := record(ctx, r.o, r.st, r.traceFile, tr, end.Evidence, files, r.stderr)
	if r.jw != nil {
		if saved {
			if rerr := r.jw.Remove(); rerr != nil {
				err = joinOneLine(err, rerr) // saved; the next command finds the run stored and drops the journal
			}
		} else {
			// Kept, with the finished run: the next agentwatch command
			// saves it from there, evidence included, once the store can
			// take it (space returned, store repaired).
			r.journal(metaFinished, encodeFinished(tr, end.Evidence, files, err))
			_ = r.jw.Sync()
			_ = r.jw.Close()
			err = fmt.Errorf("%w (the run is kept in %s; the next agentwatch command saves it)", err, r.jw.Path())
		}
	}
	if o := r.o; o.Result != nil {
		*o.Result = Result{RunID: r.info.RunID, TraceID: r.info.TraceID.String(), Saved: saved}
		if err != nil {
			o.Result.Error = oneLine(err)
		}
	}
	if err != nil {
		// The command ran: its status stands beside agentwatch's failure.
		return end.ExitCode, &RecordError{RunID: r.info.RunID, Err: err}
	}
	return end.ExitCode, nil
}

// RecordError is agentwatch failing to record all of a run whose command
// ran: Run returns the command's status beside it, and the CLI exits with
// that status (the failure goes to stderr, the run and --result-file).
type RecordError struct {
	RunID string
	Err   error
}

func (e *RecordError) Error() string { return e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// Result is what Run tells its caller about the record, beside the exit
// status (Options.Result; --result-file).
type Result struct {
	RunID   string `json:"run_id"`
	TraceID string `json:"trace_id"`
	// Saved: the run is in the store. False with Error set: it is kept in
	// the store's journal and saved by the next agentwatch command.
	Saved bool   `json:"saved"`
	Error string `json:"error,omitempty"` // agentwatch's own failure, one line
}

// childHome is the home "~/" patterns mean: the child's HOME (what its
// programs expand), else the passwd database's entry; never a guess from
// the user name (homes live in /srv, /var/lib, … too).
func childHome(env []string, t Account) string {
	if h := lookupEnv(env, "HOME"); filepath.IsAbs(h) {
		return filepath.Clean(h)
	}
	return t.Home
}

// record hands the trace to the sinks, store first: it is what `export`
// retries from when the others fail.
func record(ctx context.Context, o Options, st *store.Store, tf *export.FileWriter, tr *telemetry.Trace, ev *workspace.Evidence, files []recorder.FileChange, stderr io.Writer) (saved bool, err error) {
	ctx = context.WithoutCancel(ctx) // an interrupted run is still recorded
	var errs []error
	req := otlp.Request(tr)
	if err := st.SaveRequest(ctx, tr, req); err != nil {
		errs = append(errs, err) // already "saving run <id>: …"
	} else {
		saved = true
		if err := saveDiff(ctx, st, tr.RunID, ev); err != nil {
			errs = append(errs, err)
		} else if err := saveFiles(ctx, st, tr.RunID, files); err != nil {
			errs = append(errs, err)
		}
	}
	if tf != nil {
		var tfErr error
		if err := tf.Write(req); err != nil {
			tfErr = fmt.Errorf("writing trace file %s: %w", o.TraceFile, err)
		} else if err := tf.Close(); err != nil {
			tfErr = fmt.Errorf("closing trace file %s: %w", o.TraceFile, err)
		}
		if tfErr != nil {
			errs = append(errs, tfErr)
			if saved {
				// The stored run says so too (its gaps), and so does what
				// the collector receives.
				addGap(tr, gap("trace file", tfErr))
				req = otlp.Request(tr)
				if err := st.SaveRequest(ctx, tr, req); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if o.OTLP.Enabled() {
		uctx, cancel := context.WithTimeout(ctx, uploadTimeout)
		err := export.Upload(uctx, o.OTLP, req)
		cancel()
		if saved {
			_ = st.MarkExported(ctx, tr.RunID, err)
		}
		if err != nil {
			// err already names the endpoint ("exporting to host:port: …").
			fmt.Fprintf(stderr, "agentwatch: run %s: %s (kept in the store; retry with `agentwatch export %s`)\n",
				tr.RunID, termtext.Escape(err.Error()), tr.RunID)
		}
	}
	if len(errs) > 0 {
		return saved, joinOneLine(errs...)
	}
	fmt.Fprintf(stderr, "agentwatch: run %s recorded (%d spans)\n", tr.RunID, len(tr.Spans))
	return saved, nil
}

// fileSize is the size of a regular file after the run, for file.size.
func fileSize(path string) (int64, bool) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// joinOneLine joins errors into one that errors.Is and errors.As see
// through, printed on one line ("a; b"): the one-line error promise when
// several sinks failed. nil errors are skipped; nil when none is left.
func joinOneLine(errs ...error) error {
	var list errorList
	for _, e := range errs {
		if e != nil {
			list = append(list, e)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

// errorList is joinOneLine's error.
type errorList []error

func (l errorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (l errorList) Unwrap() []error { return l }

// Lines is how the CLI prints it: one line, not one per error.
func (l errorList) Lines() []string { return []string{l.Error()} }

func workingDir(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("reading the working directory: %w", err)
		}
		dir = wd
	}
	// Kernel-reported paths are resolved; so must the workspace be, or
	// in-workspace checks would miss through a symlinked $PWD.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolving the working directory: %w", err)
	}
	return filepath.Abs(real)
}

// NewRunID returns a sortable, unique, readable run id:
// yyyymmdd-hhmmss-xxxxxx (UTC, then 24 random bits), e.g.
// 20261125-090710-a3f9c2. Sorting ids sorts runs by start time; a prefix
// is enough for `show`.
func NewRunID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// newTraceID is random, never derived from the run id, so two runs never
// share a trace even across machines.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	_, _ = rand.Read(id[:])
	return id
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// selfCost is what observing the run cost the supervisor so far (CPU and
// peak RSS), the overhead figure `make bench` reports; the recorder calls
// it near the end of Finish (End.SelfCost).
func selfCost() (time.Duration, int64, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Maxrss * 1024, true // ru_maxrss is in KiB on Linux
}

// addGap adds g to a finished trace's root gaps (a sink that failed after
// the recorder finished).
func addGap(tr *telemetry.Trace, g event.Gap) {
	root := tr.Root()
	if root == nil {
		return
	}
	var gaps []string
	if v, ok := root.Attr(telemetry.TelemetryGaps); ok {
		gaps = v.AsStringSlice()
	}
	root.SetAttr(telemetry.TelemetryGaps.StringSlice(append(gaps, g.String())))
}

// gap is a capability the run lost: the sensor (or part) and why, one line.
func gap(sensor string, err error) event.Gap { return event.Gap{Sensor: sensor, Reason: oneLine(err)} }

// gapf is gap with a formatted reason.
func gapf(sensor, format string, args ...any) event.Gap {
	return event.Gap{Sensor: sensor, Reason: fmt.Sprintf(format, args...)}
}

// gapText is gap with a reason already written.
func gapText(sensor, reason string) event.Gap { return event.Gap{Sensor: sensor, Reason: reason} }
