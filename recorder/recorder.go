// Package recorder turns the event stream of one run into its trace: a
// process tree of exec spans, file_write spans under the process that wrote,
// network_call spans under the process that connected, and the agent_run
// root. It is a pure function of the events plus workspace snapshots — no
// I/O, no clock, no privileges — so it is tested from recorded fixtures.
//
// It must not export, store or print anything; sinks do that.
package recorder

import (
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
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
	Workspace      string // absolute: git root of the cwd, or the cwd
	TaskID         string
	TaskURL        string
	Policy         *policy.Policy      // nil: policy.Default()
	Before         *workspace.Snapshot // nil when no evidence could be taken
	Sensors        []string            // sensors that ran, e.g. ["ebpf", "fswatch"]
	Gaps           []string            // capabilities missing from the start, "sensor: reason"
	CI             map[string]string   // e.g. cicd.pipeline.run.id when in CI
	Attributes     map[string]string   // extra root attributes (team, org)
	ServiceVersion string
}

// End is what the supervisor knows when the run is over.
type End struct {
	Time     time.Time
	ExitCode int // the child's exit status; 128+signal when killed
	Signal   int // signal that killed the child, 0 otherwise
	Dropped  uint64
	Gaps     []string // capabilities lost during the run
	After    *workspace.Snapshot
}

// Recorder accumulates events. Add is safe for concurrent use by several
// sensors.
type Recorder struct {
	mu   sync.Mutex
	info RunInfo
}

// New starts the record of one run.
func New(info RunInfo) *Recorder {
	return &Recorder{info: info}
}

// Add folds one event into the record.
func (r *Recorder) Add(ev event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = ev // TODO(recorder helper): implement
}

// Finish closes every open span at end.Time and returns the trace, root
// span first. The recorder must not be used afterwards.
func (r *Recorder) Finish(end End) *telemetry.Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &telemetry.Trace{RunID: r.info.RunID}
}
