package agentotel

import (
	"go.opentelemetry.io/otel/trace"
)

// Protocol is the OTLP protocol Env asks the agent to use. http/protobuf
// because it is the OTel spec's default for SDKs, every SDK implements it
// (gRPC is optional in several, and Claude Code needs the protocol named
// explicitly: it has no default and exports nothing without one), and it
// needs no HTTP/2 in the client.
const Protocol = "http/protobuf"

// ExportInterval (milliseconds) is what Env sets for the periodic log,
// metric and span batch exports. The SDK defaults (5 s logs and spans,
// 60 s metrics) would leave a short `claude -p` run's telemetry to the
// final flush at exit alone; one second keeps what the agent reported
// arriving while the run is still live, at the cost of a few more small
// loopback requests.
const ExportInterval = "1000"

// Env returns the variables (KEY=value) to add to the child's environment
// so an OTel-instrumented agent exports its traces, logs and metrics to
// this receiver, inside the run's trace. Append them after the inherited
// environment: os/exec keeps the last value of a duplicated key, and these
// must win over a user's own OTEL_* settings for the run (per-signal
// endpoint and protocol variables are set too, since they override the
// general ones in every SDK).
//
// runTraceParent is the W3C traceparent of the run's root span (see
// TraceParent); empty leaves TRACEPARENT unset.
//
// The OTEL_* variables are read by any OTel SDK in the tree, not only the
// agent: an instrumented program the agent runs will export here too and
// join the run's trace, which is what a run record wants. The CLAUDE_CODE_*
// flags are read by Claude Code only and inert for everything else. No
// content flag (OTEL_LOG_USER_PROMPTS, OTEL_LOG_TOOL_DETAILS) is set: the
// agent's events carry metadata only unless content capture is asked for.
func (r *Receiver) Env(runTraceParent string) []string {
	base := r.HTTPEndpoint()
	env := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + base,
		"OTEL_EXPORTER_OTLP_PROTOCOL=" + Protocol,
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + base + "/v1/traces",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=" + base + "/v1/logs",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=" + base + "/v1/metrics",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=" + Protocol,
		"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=" + Protocol,
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=" + Protocol,
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_LOGS_EXPORTER=otlp",
		"OTEL_METRICS_EXPORTER=otlp",
		"OTEL_LOGS_EXPORT_INTERVAL=" + ExportInterval,
		"OTEL_METRIC_EXPORT_INTERVAL=" + ExportInterval,
		"OTEL_BSP_SCHEDULE_DELAY=" + ExportInterval,
		// Claude Code: turn its telemetry on (events as OTLP logs,
		// metrics), the traces beta (claude_code.interaction →
		// llm_request / tool spans), and traceparent propagation to its
		// tools' environment and to a custom ANTHROPIC_BASE_URL.
		"CLAUDE_CODE_ENABLE_TELEMETRY=1",
		"CLAUDE_CODE_ENHANCED_TELEMETRY_BETA=1",
		"CLAUDE_CODE_PROPAGATE_TRACEPARENT=1",
	}
	if runTraceParent != "" {
		env = append(env, "TRACEPARENT="+runTraceParent)
	}
	return env
}

// TraceParent formats the W3C traceparent for a span of the run, sampled,
// so that an agent honouring it records and exports its spans as children
// of that span.
func TraceParent(traceID trace.TraceID, spanID trace.SpanID) string {
	return "00-" + traceID.String() + "-" + spanID.String() + "-01"
}
