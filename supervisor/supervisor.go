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
	"github.com/agentwatch/agentwatch/fswatch"
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
	User      string   // --user: name or uid; empty: the sudo user (see ResolveTarget)
	TraceFile string   // --trace-file: OTLP/JSON lines; empty: none
	OTLP      export.Config
	StoreDir  string // the run store; required
	TaskID    string
	TaskURL   string

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

	// NoFSWatch skips the inotify watcher, the cross-check of workspace
	// changes, while the eBPF sensor runs; without eBPF it still runs as
	// the file sensor. Its cost is per file change, in the kernel, paid by
	// the child (make bench measures it).
	NoFSWatch bool

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
func Run(ctx context.Context, o Options) (exitCode int, err error) {
	if len(o.Argv) == 0 {
		return 0, errors.New("no command given")
	}
	if o.StoreDir == "" {
		return 0, errors.New("no store directory given")
	}
	defer limitMemory()()
	stderr := o.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	// A reader that went away (`agentwatch run … 2>&1 | head`) must not
	// kill agentwatch mid-run: the run would be left to recovery. Caught,
	// not ignored: an ignored SIGPIPE would be inherited by the child.
	brokenPipe := make(chan os.Signal, 1)
	signal.Notify(brokenPipe, syscall.SIGPIPE)
	defer signal.Stop(brokenPipe)
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	dir, err := workingDir(o.Dir)
	if err != nil {
		return 0, err
	}
	// The child's PATH, not agentwatch's (they differ under sudo's
	// secure_path only when the caller passes its own environment).
	path, err := LookPath(o.Argv[0], lookupEnv(env, "PATH"), dir)
	if err != nil {
		return 0, err
	}
	target, err := ResolveTarget(o.User, os.Geteuid(), os.Getenv, dir)
	if err != nil {
		return 0, err
	}
	pol := o.Policy
	if pol == nil {
		pol = policy.Default()
	}
	// The allowlist (enforce) plus the supervisor's own variables; the
	// event names what was dropped, never a value (env.go).
	callerEnv := env
	env, envFiltered, dropped := policyEnv(pol, env, target, time.Now())
	// Which dropped values are secrets depends on what the run shows
	// anyway (redact.Secrets); until the start snapshot says so, the
	// wider set without it (the journal's, the proxy's until launch).
	redactValues := redact.Secrets(dropped, nil)
	capture := planCapture(pol, o.CaptureFull, time.Now(), stderr)

	// git runs while the store opens, and the kernel's BTF is decoded for
	// the eBPF loads that come next (their largest CPU cost). Released once
	// both program sets are loaded.
	if os.Geteuid() == 0 {
		ebpf.PreloadKernelTypes()
	}
	defer ebpf.ReleaseKernelTypes()
	// The start snapshot (several git processes) follows at once, beside
	// the store, the proxies and the eBPF loads; the child waits for it
	// (startSensors). If the run ends before startSensors takes it, the
	// deferred close removes its temporary index.
	wsRoot := make(chan string, 1)
	beforeSnap := make(chan *workspace.Snapshot, 1)
	go func() {
		root := workspace.Root(dir)
		wsRoot <- root
		beforeSnap <- workspace.Take(root)
	}()
	snapTaken := false
	defer func() {
		if !snapTaken {
			(<-beforeSnap).Close()
		}
	}()

	// Sinks first: a run that cannot be kept must not start.
	st, err := store.Open(o.StoreDir)
	if err != nil {
		return 0, fmt.Errorf("opening store %s: %w", o.StoreDir, err)
	}
	defer st.Close()
	// A run whose agentwatch died is saved before this one starts.
	if ids, err := Recover(ctx, st, o.StoreDir); err != nil || len(ids) > 0 {
		for _, id := range ids {
			fmt.Fprintf(stderr, "agentwatch: %s\n", termtext.Escape(id.Message()))
		}
		if err != nil {
			fmt.Fprintf(stderr, "agentwatch: %s\n", termtext.Escape(oneLine(err)))
		}
	}
	var traceFile *export.FileWriter
	if o.TraceFile != "" {
		if traceFile, err = export.OpenFile(o.TraceFile); err != nil {
			return 0, fmt.Errorf("opening trace file %s: %w", o.TraceFile, err)
		}
		if n := traceFile.Repaired; n > 0 {
			fmt.Fprintf(stderr, "agentwatch: trace file %s: removed a partial last line (%d bytes) an earlier write left\n", termtext.Escape(o.TraceFile), n)
		}
		defer traceFile.Close()
	}

	start := time.Now()
	runID := NewRunID(start)
	info := recorder.RunInfo{
		RunID:          runID,
		TraceID:        newTraceID(),
		Argv:           o.Argv,
		Start:          start,
		UID:            target.UID,
		User:           target.Name,
		Home:           childHome(env, target),
		Workspace:      <-wsRoot,
		TaskID:         o.TaskID,
		TaskURL:        o.TaskURL,
		CI:             ciAttributes(callerEnv),
		ServiceVersion: o.Version,
		Policy:         pol,
		RedactValues:   redactValues,
		Capture:        capture.rec,
	}
	sink := &sink{}
	// The journal: what a crash, a full disk or a corrupt store would
	// otherwise lose (recover.go). Without it the run still runs.
	var journalGap *event.Gap
	if jw, err := journal.Create(JournalDir(o.StoreDir), runID, newRunHeader(info, pol)); err != nil {
		g := gapText("journal", oneLine(err)+" (a crash of agentwatch would lose this run)")
		journalGap = &g
	} else {
		sink.jw = jw
		launched := false
		defer func() {
			if !launched {
				_ = jw.Remove() // nothing ran: nothing to recover
			}
		}()
		sink.launched = func() { launched = true }
	}
	// The agent's telemetry receiver before the env event, like the proxy.
	agentTel := startAgentTelemetry(sink.add)
	defer agentTel.close(nil) // early returns; the normal path closes it before Finish
	env, envFiltered = agentTel.childEnv(env, envFiltered, info.TraceID)
	// The model proxy before the env event: its variables are in the set list.
	llmp := startRunLLM(o, callerEnv, sink, &env, &envFiltered, &info, capture.llm())
	defer llmp.close() // early returns; the normal path closes it before Finish
	sink.add(envFiltered)
	secrets := func() ([]string, []event.Gap) { return expandSecrets(pol, info.Workspace, target.Home) }
	// Protected paths: what exists now is what the child finds. The
	// placeholders of absent ones are made before the file sensors start,
	// so they are not mistaken for the run's changes (git does not see
	// them either: empty directories, or files outside the repository).
	protect := planProtect(pol, info.Workspace, info.Home, pol.Mode == policy.Enforce, time.Now())
	if pol.Mode == policy.Enforce && target.UID != 0 {
		protect.maskUserServers(target.UID)
	}
	for _, ev := range protect.events {
		sink.add(ev)
	}
	defer protect.cleanup() // early returns; the normal path cleans up before the after snapshot
	for _, ph := range protect.placeholders {
		sink.meta(metaPlaceholder, []byte(ph.path))
	}
	if err := protect.materialize(); err != nil {
		return 0, err
	}
	sensors := startSensors(runID, info.Workspace, beforeSnap, !o.NoFSWatch, sink, secrets, func(s *sensors) (event.Gap, error) { return startNetwork(pol, s, sink) })
	snapTaken = true
	ebpf.ReleaseKernelTypes()
	if gap, err := sensors.netGap, sensors.netErr; err != nil {
		if pol.Mode == policy.Enforce {
			// Never a silent downgrade to observe: the child does not start.
			sensors.stop(&recorder.End{})
			return 0, fmt.Errorf("%w (enforce mode refuses to run without it; use --mode observe)", err)
		}
		sensors.gaps = append(sensors.gaps, gap)
	}
	info.Resolvers = systemResolvers()
	info.Before = sensors.before
	info.RedactValues = redact.Secrets(dropped, publicMetadata(info, dir))
	info.Sensors = sensors.running
	info.Gaps = sensors.gaps
	if journalGap != nil {
		info.Gaps = append(info.Gaps, *journalGap)
	}
	info.Gaps = append(info.Gaps, protect.gaps...)
	if sensors.cgroup != nil {
		sink.meta(metaCgroup, []byte(sensors.cgroup.Path))
	}
	for _, n := range o.PolicyNotes {
		info.Gaps = append(info.Gaps, gapText("policy", ""+n))
	}
	info.Gaps = append(info.Gaps, llmp.watch(sensors)...)
	info.Gaps = append(info.Gaps, agentTel.allow(sensors.net)...)
	if agentTel.gap != nil {
		info.Gaps = append(info.Gaps, *agentTel.gap)
	}
	startInfo, _ := json.Marshal(newRunStartInfo(info.Sensors, info.Gaps))
	sink.meta(metaInfo, startInfo)

	gitConfig := watchGitConfig(info.Workspace, info.Home)

	sigs, stopSignals := catchSignals()
	defer stopSignals()
	if err := ctx.Err(); err != nil {
		sensors.stop(&recorder.End{})
		return 0, fmt.Errorf("starting %s: %w", o.Argv[0], err)
	}

	spec := childSpec{
		path: path, argv: o.Argv, env: env, dir: dir, target: target,
		stdin: o.Stdin, stdout: capture.tee(o.Stdout), stderr: capture.tee(o.Stderr),
		cgroup: sensors.cgroup, ns: protect, useInit: os.Geteuid() == 0,
	}
	if pol.Mode == policy.Enforce {
		spec.filter = seccompPolicy{DenyIOURing: true, DenyForeignABI: true}
	}
	if f, ok := isTerminal(o.Stdin); ok {
		spec.stdinT = f
	} else {
		// Pipe mode: the child never holds the operator's terminal.
		spec.stdout = capture.tee(terminalOutput(o.Stdout))
		spec.stderr = capture.tee(terminalOutput(o.Stderr))
	}
	ch, err := startChild(spec)
	if err != nil {
		sensors.stop(&recorder.End{})
		var pe *protectError
		if errors.As(err, &pe) {
			return 0, pe // agentwatch's failure, not the command's
		}
		return 0, startError(o.Argv[0], err)
	}
	tm := ch.tm
	if tm != nil {
		out := o.Stdout
		if out == nil {
			out = io.Discard
		}
		if err := tm.attach(capture.tee(out)); err != nil {
			// Not fatal: the child still has its PTY, the user's terminal
			// just stays cooked.
			fmt.Fprintf(stderr, "agentwatch: %s\n", termtext.Escape(err.Error()))
		}
		defer tm.restore() // also on panic; finish restores on the normal path
	}
	info.RootPID = uint32(ch.pid)
	sink.meta(metaLaunched, []byte(strconv.Itoa(ch.pid)))
	if sink.launched != nil {
		sink.launched()
	}
	rec := recorder.New(info)
	sink.attach(rec)

	killRun := func() {
		if sensors.cgroup != nil {
			_ = os.WriteFile(filepath.Join(sensors.cgroup.Path, "cgroup.kill"), []byte("1"), 0)
			return
		}
		// The init's death ends its PID namespace; a direct child
		// leads its own session and group.
		_ = syscall.Kill(-ch.signalled(), syscall.SIGKILL)
	}
	waitErr := forwardSignals(sigs, ch.signalled(), ch.groupSignals(), tm, ch.waited, killRun)
	end := recorder.End{FileSize: fileSize}
	var known bool
	end.ExitCode, end.Signal, known = ch.status()
	endInfo, _ := json.Marshal(runEndInfo{ExitCode: end.ExitCode, Signal: end.Signal, Time: time.Now()})
	sink.meta(metaEnd, endInfo)
	if sink.jw != nil {
		_ = sink.jw.Sync() // the exit status is kept before the slow end of the run
		if err := sink.jw.Err(); err != nil {
			end.Gaps = append(end.Gaps, gapText("journal", ""+oneLine(err)+" (a crash of agentwatch now would lose part of this run)"))
		}
	}

	if !known {
		sensors.stop(&end)
		return 0, fmt.Errorf("waiting for %s: %w", o.Argv[0], waitErr)
	}
	sensors.stop(&end) // kills what is left, drains, snapshots after
	// Nothing of the run is left to hold a placeholder, and the file
	// sensors are stopped: removing them is not the run's change.
	end.Gaps = append(end.Gaps, protect.cleanup()...)
	var gcGaps []event.Gap
	end.GitConfig, gcGaps = gitConfig.check(pol.Mode == policy.Enforce)
	end.Gaps = append(end.Gaps, gcGaps...)
	llmp.stop(&end) // the calls still streaming end with their processes
	// What the agent flushed at exit is in once its processes are gone.
	agentTel.close(&end)
	end.ReadFile = readSecretFile // Finish scans the diff and the secret files the run wrote
	if tm != nil {
		tm.finish()
	}
	capture.fill(&end) // the relay is done: the pipes by Wait, the PTY by finish
	end.Time = time.Now()

	end.SelfCost = selfCost
	tr := rec.Finish(end)
	writeSummary(stderr, tr) // after the terminal is restored; nothing when nothing happened
	saved, err := record(ctx, o, st, traceFile, tr, end.Evidence, rec.Files(), stderr)
	if sink.jw != nil {
		if saved {
			if rerr := sink.jw.Remove(); rerr != nil {
				err = errors.Join(err, rerr) // saved; the next command finds the run stored and drops the journal
			}
		} else {
			// Kept, with the finished run: the next agentwatch command
			// saves it from there, evidence included, once the store can
			// take it (space returned, store repaired).
			sink.meta(metaFinished, encodeFinished(tr, end.Evidence, rec.Files(), err))
			_ = sink.jw.Sync()
			_ = sink.jw.Close()
			err = fmt.Errorf("%w (the run is kept in %s; the next agentwatch command saves it)", err, sink.jw.Path())
		}
	}
	if o.Result != nil {
		*o.Result = Result{RunID: runID, TraceID: info.TraceID.String(), Saved: saved}
		if err != nil {
			o.Result.Error = oneLine(err)
		}
	}
	if err != nil {
		// The command ran: its status stands beside agentwatch's failure.
		return end.ExitCode, &RecordError{RunID: runID, Err: err}
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
func childHome(env []string, t Target) string {
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
		return saved, joinOneLine(errs)
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

// joinOneLine keeps the one-line error promise when several sinks failed.
func joinOneLine(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

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

// ciAttributes recognises the common CI systems' run ids.
func ciAttributes(env []string) map[string]string {
	for _, name := range []string{"GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILDKITE_BUILD_ID", "CIRCLE_WORKFLOW_ID", "BUILD_ID"} {
		if v := lookupEnv(env, name); v != "" {
			return map[string]string{string(telemetry.CICDPipelineRunID): v}
		}
	}
	return nil
}

// sink buffers events until the recorder exists (it needs the child's pid,
// known only after launch), then feeds it in arrival order.
type sink struct {
	mu       sync.Mutex
	rec      *recorder.Recorder
	pending  []event.Event
	jw       *journal.Writer // nil: no journal
	launched func()          // the child started: the journal must outlive a crash
}

// meta journals a supervisor record for recovery (recover.go).
func (s *sink) meta(kind string, data []byte) {
	if s.jw != nil {
		s.jw.AppendMeta(kind, data)
	}
}

func (s *sink) add(ev event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jw != nil {
		s.jw.Append(ev)
	}
	if s.rec == nil {
		s.pending = append(s.pending, ev)
		return
	}
	s.rec.Add(ev)
}

func (s *sink) attach(rec *recorder.Recorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.pending {
		rec.Add(ev)
	}
	s.pending, s.rec = nil, rec
}

// sensors is what observes one run.
type sensors struct {
	workspace string
	cgroup    *Cgroup
	ebpf      *ebpf.Sensor
	fswatch   *fswatch.Watcher
	net       *netwatch.Netwatch // network enforcement; see network.go
	netGap    event.Gap          // why net is nil
	netErr    error
	before    *workspace.Snapshot
	running   []string
	gaps      []event.Gap
}

// startSensors sets up the cgroup, eBPF, fswatch and the workspace
// snapshot concurrently: loading BPF dominates startup, the rest hides
// behind it. Every failure becomes a gap; none is fatal.
//
// secrets expands files.secrets (a bounded walk) while BPF loads; its files
// are handed to the sensor's read watch before the child starts.
//
// startNet (netwatch: another set of BPF programs) loads beside the eBPF
// sensor as soon as the cgroup exists; its error is left in netGap/netErr
// for the caller, who decides whether the run may go on without it.
func startSensors(runID, ws string, before <-chan *workspace.Snapshot, crossCheck bool, sink *sink, secrets func() (files []string, gaps []event.Gap), startNet func(*sensors) (event.Gap, error)) *sensors {
	s := &sensors{workspace: ws}
	var wg sync.WaitGroup
	var cgErr, bpfErr, fsErr, watchErr error
	var secretFiles []string
	var secretGaps []event.Gap
	expanded := make(chan struct{})
	go func() {
		defer close(expanded)
		secretFiles, secretGaps = secrets()
	}()
	wg.Go(func() { s.before = <-before })
	if crossCheck {
		wg.Go(func() { s.fswatch, fsErr = fswatch.Start(ws, sink.add) })
	}
	wg.Go(func() {
		mount, _, err := Cgroup2Mount()
		if err == nil {
			s.cgroup, err = NewCgroup(mount, runID)
		}
		if err != nil {
			cgErr = err
			bpfErr = errors.New("no run cgroup to filter on")
			s.netGap, s.netErr = startNet(s)
			return
		}
		var netDone sync.WaitGroup
		netDone.Go(func() { s.netGap, s.netErr = startNet(s) })
		defer netDone.Wait()
		// Read every 2 ms, not the sensor's 20 ms default (agenttel.go);
		// the tool-call context of each exec comes with its record.
		s.ebpf, bpfErr = ebpf.Start(ebpf.Config{CgroupID: s.cgroup.ID, CgroupLevel: s.cgroup.Level, Emit: sink.add, MaxLatency: execContextLatency, ContextVars: contextVars})
		if bpfErr == nil && s.ebpf == nil {
			bpfErr = errors.New("sensor did not start")
		}
		if bpfErr == nil {
			<-expanded
			_, watchErr = s.ebpf.WatchReads(secretFiles)
		}
	})
	wg.Wait()
	<-expanded
	s.gaps = append(s.gaps, secretGaps...)
	if watchErr != nil {
		s.gaps = append(s.gaps, gap("files.secrets", watchErr))
	}
	if cgErr != nil {
		s.gaps = append(s.gaps, gap("cgroup", cgErr))
	}
	if bpfErr != nil {
		s.ebpf = nil
		s.gaps = append(s.gaps, gap("ebpf", bpfErr))
	} else {
		s.running = append(s.running, "ebpf")
	}
	if !crossCheck && s.ebpf == nil {
		// Asked to skip the cross-check, but it is the only file sensor
		// left: run it all the same.
		s.fswatch, fsErr = fswatch.Start(ws, sink.add)
		crossCheck = true
	}
	switch {
	case !crossCheck:
		// Turned off by --no-fswatch: not a gap, eBPF sees the changes.
	case fsErr != nil:
		s.gaps = append(s.gaps, gap("fswatch", fsErr))
	default:
		s.running = append(s.running, "fswatch")
	}
	if s.net != nil {
		s.running = append(s.running, "netwatch")
	}
	return s
}

// stop ends the observation: leftovers in the cgroup are killed first so
// their exits are still seen, then eBPF drains its ring buffer and fswatch
// its inotify queue, the workspace is snapshotted and the cgroup removed.
func (s *sensors) stop(end *recorder.End) {
	if s.cgroup != nil {
		if err := s.cgroup.Kill(cgroupKillTimeout); err != nil {
			end.Gaps = append(end.Gaps, gap("cgroup", err))
		}
	}
	s.stopNetwork(end) // before the cgroup is removed: its hooks are attached there
	// Nothing in the run is left to change the workspace: the drains and
	// the after snapshot (git, the slow part) run side by side.
	var wg sync.WaitGroup
	var bpfErr, fsErr error
	if s.ebpf != nil {
		wg.Go(func() {
			dropped := s.ebpf.Dropped()
			bpfErr = s.ebpf.Close()
			end.Dropped += max(dropped, s.ebpf.Dropped())
		})
	}
	if s.fswatch != nil {
		wg.Go(func() { fsErr = s.fswatch.Close() })
	}
	wg.Go(func() {
		end.Evidence = workspace.TakeEvidence(s.before, s.workspace, workspace.Limits{})
		end.After = end.Evidence.After
	})
	wg.Wait()
	if bpfErr != nil {
		end.Gaps = append(end.Gaps, gap("ebpf", bpfErr))
	}
	if fsErr != nil {
		end.Gaps = append(end.Gaps, gap("fswatch", fsErr))
	}
	if s.cgroup != nil {
		if err := s.cgroup.Remove(); err != nil {
			end.Gaps = append(end.Gaps, gap("cgroup", err))
		}
	}
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
