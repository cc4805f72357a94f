package supervisor

// The run's sensors. Each is started through one shape (a sensor's start
// takes the Target and returns how to stop it) and listed once, in
// runSensors; what it sees goes out through Target.Emit and nowhere else.
// Adding a sensor is its package, one entry here and the recorder's
// handler for its events (docs/architecture.md).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/ebpf"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fswatch"
	"github.com/agentwatch/agentwatch/llm"
	"github.com/agentwatch/agentwatch/netwatch"
	"github.com/agentwatch/agentwatch/policy"
	"go.opentelemetry.io/otel/trace"
)

// Target is the run a sensor observes.
type Target struct {
	RunID     string
	Workspace string // the git root of the working directory, or it
	Home      string // the child's home, for "~/" patterns
	Policy    *policy.Policy
	TraceID   trace.TraceID
	RootSpan  trace.SpanID // the run's agent_run span
	Cgroup    *Cgroup      // nil: the run has none (cgroup-bound sensors fail)

	// Emit hands an event to the journal, then the recorder; safe for
	// concurrent use. Set by the run to emitOrdered.
	Emit func(event.Event)
	// Journal keeps a record recovery needs to undo what the sensor left
	// behind should agentwatch die (recover.go's meta kinds).
	Journal func(kind string, data []byte)

	// emitKernel is Emit without the ordering (the eBPF sensor's own
	// records); kernel is that sensor while it runs.
	emitKernel func(event.Event)
	kernel     atomic.Pointer[ebpf.Sensor]

	mu      sync.Mutex
	env     []envVar          // the child's variables set by sensors
	exposed []exposedEndpoint // the supervisor's endpoints the child must reach
}

// emitOrdered emits ev after whatever the eBPF ring holds: an event from
// another source (a model call, a network decision, a DNS query, the
// agent's telemetry) names a process whose exec is then on the record
// already. The ring is read on demand here, so the eBPF reader can sleep
// its default 20 ms: polling it every 2 ms for the same ordering cost
// half the supervisor's CPU on an exec loop (make bench).
func (t *Target) emitOrdered(ev event.Event) {
	if k := t.kernel.Load(); k != nil {
		k.Sync()
	}
	t.emitKernel(ev)
}

type envVar struct{ name, value string }

type exposedEndpoint struct {
	sensor string
	ap     netip.AddrPort
}

// SetEnv sets name=value in the child's environment whatever the policy's
// allowlist says: it is the supervisor's own variable (reported as set,
// never as dropped).
func (t *Target) SetEnv(name, value string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.env = append(t.env, envVar{name, value})
}

// Expose names an endpoint of the supervisor's (a loopback listener) that
// the child must reach whatever the network policy says: netwatch lets it
// through, allow_loopback: false included.
func (t *Target) Expose(sensor string, ap netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exposed = append(t.exposed, exposedEndpoint{sensor, ap})
}

func (t *Target) exposedEndpoints() []exposedEndpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.exposed)
}

// childEnv applies the sensors' variables to the child's environment and
// to the event that reports it.
func (t *Target) childEnv(env []string, ev event.EnvFiltered) ([]string, event.EnvFiltered) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.env) == 0 {
		return env, ev
	}
	names := make([]string, 0, len(t.env))
	for _, v := range t.env {
		env = overrideEnv(env, v.name, v.value)
		names = append(names, v.name)
	}
	ev.Dropped = slices.DeleteFunc(slices.Clone(ev.Dropped), func(n string) bool { return slices.Contains(names, n) })
	ev.Set = append(slices.Clone(ev.Set), names...)
	slices.Sort(ev.Set)
	ev.Set = slices.Compact(ev.Set)
	return env, ev
}

// overrideEnv sets name=value in env, replacing every earlier entry of
// name (a duplicate would leave which one wins to the child's libc).
func overrideEnv(env []string, name, value string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, name+"=")
	})
	return append(out, name+"="+value)
}

// A sensor observes one run. start begins observing t; the returned stop
// ends it once the run's processes are gone: it drains what is queued and
// emits, through t.Emit, what it still has to say (gaps, events it lost).
// A start error is recorded as the sensor's gap.
type sensor struct {
	name  string
	start func(ctx context.Context, t *Target) (stop func(), err error)
	// required names what the sensor does when the child must not start
	// without it (netwatch in enforce mode: a policy that cannot be
	// enforced never silently becomes observe).
	required string
	// off: not wanted for this run (fswatch without --fswatch); not a gap.
	off bool
	// fallbackFor names a sensor this one replaces: when that one fails,
	// this one runs even if off.
	fallbackFor string
}

// runSensors are the run's sensors, in stages: a stage starts once the one
// before it is up, its sensors side by side.
func runSensors(o Options, callerEnv []string, capture llm.Capture) [][]sensor {
	return [][]sensor{
		// The supervisor's endpoints: their variables go in the child's
		// environment, and netwatch (next stage) lets the child reach them.
		{
			{name: "agent telemetry", start: agentTelemetrySensor},
			{name: "llm", start: llmSensor(callerEnv, capture)},
		},
		// The kernel side: loading BPF dominates startup, so the two
		// program sets load together, and the inotify tree is set up
		// beside them.
		{
			{name: "ebpf", start: ebpfSensor},
			{name: "fswatch", start: fswatchSensor, off: !o.FSWatch, fallbackFor: "ebpf"},
			{name: "netwatch", start: netwatchSensor, required: "network enforcement"},
		},
	}
}

// observation is the run's started sensors.
type observation struct {
	running []string   // in registration order
	stops   [][]func() // by stage
}

// startSensors starts the stages in order. It fails only when a required
// sensor does not start in enforce mode; every other failure is a gap,
// emitted through t.Emit. On failure the sensors started are stopped.
func startSensors(ctx context.Context, t *Target, stages [][]sensor) (*observation, error) {
	obs := &observation{}
	failed := map[string]bool{}
	var fatal error
	run := func(list []sensor) {
		stops := make([]func(), len(list))
		errs := make([]error, len(list))
		var wg sync.WaitGroup
		for i, s := range list {
			wg.Go(func() {
				start := time.Now()
				stops[i], errs[i] = s.start(ctx, t)
				if showPhases {
					fmt.Fprintf(os.Stderr, "agentwatch: sensor %s started in %.1f ms\n", s.name, ms(time.Since(start)))
				}
			})
		}
		wg.Wait()
		var stage []func()
		for i, s := range list {
			if errs[i] == nil {
				obs.running = append(obs.running, s.name)
				if stops[i] != nil {
					stage = append(stage, stops[i])
				}
				continue
			}
			failed[s.name] = true
			if s.required != "" && t.Policy.Mode == policy.Enforce {
				if fatal == nil {
					fatal = fmt.Errorf("starting %s: %w (enforce mode refuses to run without it; use --mode observe)", s.required, errs[i])
				}
				continue
			}
			t.Emit(gapEvent(gap(s.name, errs[i])))
		}
		obs.stops = append(obs.stops, stage)
	}
	var fallbacks []sensor
	for _, stage := range stages {
		var list []sensor
		for _, s := range stage {
			if s.off {
				if s.fallbackFor != "" {
					fallbacks = append(fallbacks, s)
				}
				continue
			}
			list = append(list, s)
		}
		run(list)
		if fatal != nil {
			obs.stop()
			return nil, fatal
		}
	}
	// Turned off, but it is what is left of the sensor it stands in for.
	var list []sensor
	for _, s := range fallbacks {
		if failed[s.fallbackFor] {
			list = append(list, s)
		}
	}
	run(list)
	return obs, nil
}

// stop stops the sensors, the last stage first (the kernel side drains
// before the model calls still streaming are flushed, so a call finds its
// process on the record), the sensors of a stage side by side. The run's
// processes are gone by then. Idempotent.
func (obs *observation) stop() {
	for i := len(obs.stops) - 1; i >= 0; i-- {
		var wg sync.WaitGroup
		for _, s := range obs.stops[i] {
			wg.Go(s)
		}
		wg.Wait()
	}
	obs.stops = nil
}

// gapEvent is g as an event, stamped now.
func gapEvent(g event.Gap) event.Gap {
	g.Time = time.Now()
	return g
}

// agentTelemetrySensor is the receiver for the agent's own telemetry
// (agenttel.go): its endpoint, TRACEPARENT naming agent_run and the Claude
// Code telemetry switches go in the child's environment.
func agentTelemetrySensor(_ context.Context, t *Target) (func(), error) {
	r, err := agentotel.Start(agentotel.Config{Emit: t.Emit})
	if err != nil {
		return nil, err
	}
	for _, kv := range r.Env(agentotel.TraceParent(t.TraceID, t.RootSpan)) {
		name, value, _ := strings.Cut(kv, "=")
		t.SetEnv(name, value)
	}
	for _, addr := range []string{r.HTTPAddr(), r.GRPCAddr()} {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			t.Expose("agent telemetry", ap)
		}
	}
	return func() { closeAgentTelemetry(r, t.Emit) }, nil
}

// llmSensor is the run's model-call proxy (llm.go), with upstreams from
// the environment agentwatch was given.
func llmSensor(callerEnv []string, capture llm.Capture) func(context.Context, *Target) (func(), error) {
	return func(_ context.Context, t *Target) (func(), error) {
		lp, err := startLLM(callerEnv, t.Emit, capture)
		if err != nil {
			return nil, err
		}
		if t.Cgroup != nil {
			lp.proxy.WatchCgroup(t.Cgroup.Path)
		}
		for _, prov := range []string{llm.Anthropic, llm.OpenAI} {
			for _, name := range llmBaseVars[prov] {
				t.SetEnv(name, lp.proxy.URL(prov))
			}
		}
		for _, ap := range lp.endpoints {
			t.Expose("llm", ap)
		}
		return func() {
			if err := lp.close(); err != nil {
				t.Emit(gapEvent(gap("llm", err)))
			}
		}, nil
	}
}

// ebpfSensor is the kernel sensor on the run's cgroup, with the read watch
// on the files.secrets files (expanded while the programs load).
func ebpfSensor(_ context.Context, t *Target) (func(), error) {
	type expansion struct {
		files []string
		gaps  []event.Gap
	}
	expanded := make(chan expansion, 1)
	go func() {
		files, gaps := expandSecrets(t.Policy, t.Workspace, t.Home)
		expanded <- expansion{files, gaps}
	}()
	secrets := func() []string {
		x := <-expanded
		for _, g := range x.gaps {
			t.Emit(gapEvent(g))
		}
		return x.files
	}
	if t.Cgroup == nil {
		secrets()
		return nil, errors.New("no run cgroup to filter on")
	}
	// The tool-call context of each exec comes with its record; the
	// other sensors' events are ordered after the ring (emitOrdered).
	emit := t.Emit
	if t.emitKernel != nil {
		emit = t.emitKernel
	}
	s, err := ebpf.Start(ebpf.Config{CgroupID: t.Cgroup.ID, CgroupLevel: t.Cgroup.Level, Emit: emit, ContextVars: contextVars})
	if err == nil && s == nil {
		err = errors.New("sensor did not start")
	}
	files := secrets()
	if err != nil {
		return nil, err
	}
	if _, err := s.WatchReads(files); err != nil {
		t.Emit(gapEvent(gap("files.secrets", err)))
	}
	t.kernel.Store(s)
	return func() {
		t.kernel.Store(nil)
		if showPhases {
			for _, p := range s.ProgramStats() {
				if p.Runs > 0 {
					fmt.Fprintf(os.Stderr, "agentwatch: ebpf %s: %d runs, %.1f ms in the kernel (%.0f ns each)\n",
						p.Name, p.Runs, ms(p.Runtime), float64(p.Runtime.Nanoseconds())/float64(p.Runs))
				}
			}
		}
		dropped := s.Dropped()
		err := s.Close()
		if n := max(dropped, s.Dropped()); n > 0 {
			t.Emit(event.Dropped{Header: event.Header{Time: time.Now()}, Source: event.SourceEBPF, Count: n})
		}
		if err != nil {
			t.Emit(gapEvent(gap("ebpf", err)))
		}
	}, nil
}

// fswatchSensor is the inotify watcher on the workspace: the cross-check
// of eBPF's file events, or the file sensor when eBPF cannot run.
func fswatchSensor(_ context.Context, t *Target) (func(), error) {
	w, err := fswatch.Start(t.Workspace, t.Emit)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := w.Close(); err != nil {
			t.Emit(gapEvent(gap("fswatch", err)))
		}
	}, nil
}

// netwatchSensor is the run's network enforcement (DNS proxy, splice
// proxy, cgroup hooks) on the run's cgroup. The child needs nothing for
// it: the hooks redirect its DNS whatever its resolver configuration says.
// The endpoints the earlier sensors exposed are let through.
func netwatchSensor(_ context.Context, t *Target) (func(), error) {
	if t.Cgroup == nil {
		return nil, errors.New("no run cgroup to attach to")
	}
	n, err := netwatch.Start(netwatch.Config{Policy: t.Policy, CgroupPath: t.Cgroup.Path, Emit: t.Emit})
	if err != nil {
		return nil, err
	}
	// Pinned, the hooks outlive agentwatch: if it dies, no process of the
	// run ever connects with the policy lifted (the init takes the
	// processes down; recovery unpins).
	dir := filepath.Join(ebpf.BPFFS, "agentwatch", filepath.Base(t.Cgroup.Path))
	t.Journal(metaNetPin, []byte(dir))
	if err := n.Pin(dir); err != nil {
		n.Close()
		return nil, fmt.Errorf("pinning the network hooks: %w", err)
	}
	for _, e := range t.exposedEndpoints() {
		if err := n.AllowEndpoint(e.ap); err != nil {
			t.Emit(gapEvent(gapf(e.sensor, "allowing %s through netwatch: %s", e.ap, oneLine(err))))
		}
	}
	return func() {
		// The decisions still queued reach the recorder; the run's
		// processes are gone by then.
		dropped := n.Dropped()
		if err := n.Close(); err != nil {
			t.Emit(gapEvent(gap("netwatch", err)))
		}
		if dropped > 0 {
			t.Emit(event.Dropped{Header: event.Header{Time: time.Now()}, Source: event.SourceNetwatch, Count: dropped})
		}
	}, nil
}
