package supervisor

// The run's receiver for the agent's own telemetry (agentotel): started
// before the child, its OTLP endpoint, TRACEPARENT and the Claude Code
// telemetry switches given to the child whatever the env allowlist says
// (they are the supervisor's own variables), reachable through netwatch
// with allow_loopback: false, closed after the run's processes are gone
// and before the recorder finishes. What it receives goes to the recorder
// as event.AgentTelemetry.
//
// Also here: the exec's tool-call context. The agent tells the commands
// it runs which tool call they belong to through their environment
// (Claude Code: TRACEPARENT naming its tool span; Codex:
// CODEX_TOOL_CALL_ID). The eBPF sensor reads those two variables
// (contextVars), and only those, from the environment the kernel side
// copies at exec, so the recorder can link the process span to the
// agent's span.

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/netwatch"
	"github.com/agentwatch/agentwatch/recorder"
	"go.opentelemetry.io/otel/trace"
)

// agentTelemetry is the run's receiver; a nil receiver (it failed to
// start: recorded as a gap) makes every method a no-op.
type agentTelemetry struct {
	r   *agentotel.Receiver
	gap *event.Gap // why there is no receiver
}

func startAgentTelemetry(emit func(event.Event)) *agentTelemetry {
	r, err := agentotel.Start(agentotel.Config{Emit: emit})
	if err != nil {
		g := gap("agent telemetry", err)
		return &agentTelemetry{gap: &g}
	}
	return &agentTelemetry{r: r}
}

// childEnv adds the receiver's variables to the child's environment,
// replacing any the user had (for the run, the agent exports here), with a
// TRACEPARENT naming the run's agent_run span, and reports their names as
// set by the supervisor.
func (a *agentTelemetry) childEnv(env []string, ev event.EnvFiltered, traceID trace.TraceID) ([]string, event.EnvFiltered) {
	if a.r == nil {
		return env, ev
	}
	vars := a.r.Env(agentotel.TraceParent(traceID, recorder.RootSpanID(traceID)))
	names := make([]string, 0, len(vars))
	for _, kv := range vars {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
	env = append(env, vars...)
	// Not dropped, whatever the allowlist said about the user's own.
	ev.Dropped = slices.DeleteFunc(slices.Clone(ev.Dropped), func(n string) bool { return slices.Contains(names, n) })
	ev.Set = append(slices.Clone(ev.Set), names...)
	slices.Sort(ev.Set)
	ev.Set = slices.Compact(ev.Set)
	return env, ev
}

// allow keeps the receiver reachable with allow_loopback: false.
func (a *agentTelemetry) allow(n *netwatch.Netwatch) []event.Gap {
	if a.r == nil || n == nil {
		return nil
	}
	var gaps []event.Gap
	for _, addr := range []string{a.r.HTTPAddr(), a.r.GRPCAddr()} {
		ap, err := netip.ParseAddrPort(addr)
		if err == nil {
			err = n.AllowEndpoint(ap)
		}
		if err != nil {
			gaps = append(gaps, gapText("agent telemetry", "allowing "+addr+" through netwatch: "+oneLine(err)))
		}
	}
	return gaps
}

// close drains the receiver (what the agent flushed at exit reaches the
// recorder) and records what it had to refuse. end may be nil on the
// early-exit paths. Idempotent.
func (a *agentTelemetry) close(end *recorder.End) {
	if a.r == nil {
		return
	}
	err := a.r.Close()
	st := a.r.Stats()
	a.r = nil
	if end == nil {
		return
	}
	if err != nil {
		end.Gaps = append(end.Gaps, gap("agent telemetry", err))
	}
	if n := st.BadRequests + st.AfterClose; n > 0 {
		end.Gaps = append(end.Gaps, gapf("agent telemetry", "%d export requests refused (malformed, too large, or after the run)", n))
	}
	if st.RejectedSpans > 0 {
		end.Gaps = append(end.Gaps, gapf("agent telemetry", "%d spans with invalid ids dropped", st.RejectedSpans))
	}
}

// contextVars are the variables of the tool-call context, the only ones
// the eBPF sensor reads from an exec'd image's environment.
var contextVars = []string{"TRACEPARENT", "CODEX_TOOL_CALL_ID"}

// execContextLatency is how long a record may wait in the eBPF ring before
// the sink sees it. Short, so that an exec is on the record before events
// from the other sources (model proxy, network decisions, agent telemetry)
// that name its process arrive; an idle poll every 2 ms costs a few µs.
const execContextLatency = 2 * time.Millisecond
