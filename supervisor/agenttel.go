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
	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
)

// closeAgentTelemetry drains the receiver (what the agent flushed at exit
// reaches the recorder) and records what it had to refuse.
func closeAgentTelemetry(r *agentotel.Receiver, emit func(event.Event)) {
	err := r.Close()
	st := r.Stats()
	var gaps []event.Gap
	if err != nil {
		gaps = append(gaps, gap("agent telemetry", err))
	}
	if n := st.BadRequests + st.AfterClose; n > 0 {
		gaps = append(gaps, gapf("agent telemetry", "%d export requests refused (malformed, too large, or after the run)", n))
	}
	if st.RejectedSpans > 0 {
		gaps = append(gaps, gapf("agent telemetry", "%d spans with invalid ids dropped", st.RejectedSpans))
	}
	for _, g := range gaps {
		emit(gapEvent(g))
	}
}

// contextVars are the variables of the tool-call context, the only ones
// the eBPF sensor reads from an exec'd image's environment.
var contextVars = []string{"TRACEPARENT", "CODEX_TOOL_CALL_ID"}
