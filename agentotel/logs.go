package agentotel

import (
	"encoding/hex"
	"github.com/agentwatch/agentwatch/telemetry/otlpvalue"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/event"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
)

// redactedByAgent is the value Claude Code puts in a content attribute
// when content logging is off: metadata, not content.
const redactedByAgent = "<REDACTED>"

// contentAttributes are attributes that carry what the user or the model
// wrote, not metadata. Claude Code sends them only when asked
// (OTEL_LOG_USER_PROMPTS, OTEL_LOG_TOOL_DETAILS), which Env never does,
// but a user's own settings may; they go to AgentLogRecord.Content so the
// recorder keeps them only in full capture, after redaction.
var contentAttributes = map[string]bool{
	"prompt":          true,
	"prompt_text":     true,
	"tool_parameters": true,
	"tool_input":      true,
	"tool_output":     true,
	"response":        true,
	"body":            true,
}

// LogsToEvents flattens an export request into event.AgentLogRecords, one
// per log record, in order. Every record is returned (the recorder attaches them
// as span events); the typed fields are filled for Claude Code's events.
func LogsToEvents(req *collogspb.ExportLogsServiceRequest) []event.AgentLogRecord {
	var out []event.AgentLogRecord
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			for _, lr := range sl.GetLogRecords() {
				out = append(out, toLogRecord(lr))
			}
		}
	}
	return out
}

func toLogRecord(lr *logspb.LogRecord) event.AgentLogRecord {
	rec := event.AgentLogRecord{Name: lr.GetEventName()}
	attrs := map[string]string{}
	for _, kv := range lr.GetAttributes() {
		attrs[kv.GetKey()] = ValueString(kv.GetValue())
	}
	if rec.Name == "" {
		rec.Name = attrs["event.name"]
	}
	if rec.Name == "" {
		rec.Name = lr.GetBody().GetStringValue()
	}
	// Claude Code's event.name attribute is the short name (api_request)
	// while the body is the full one; prefer the namespaced form.
	if body := lr.GetBody().GetStringValue(); strings.HasPrefix(body, "claude_code.") && !strings.HasPrefix(rec.Name, "claude_code.") {
		rec.Name = body
	}

	switch {
	case lr.GetTimeUnixNano() != 0:
		rec.Time = time.Unix(0, int64(lr.GetTimeUnixNano()))
	case attrs["event.timestamp"] != "":
		rec.Time, _ = time.Parse(time.RFC3339Nano, attrs["event.timestamp"])
	case lr.GetObservedTimeUnixNano() != 0:
		rec.Time = time.Unix(0, int64(lr.GetObservedTimeUnixNano()))
	}
	if otlpvalue.ValidTraceID(lr.GetTraceId()) {
		rec.TraceID = hex.EncodeToString(lr.GetTraceId())
	}
	if otlpvalue.ValidSpanID(lr.GetSpanId()) {
		rec.SpanID = hex.EncodeToString(lr.GetSpanId())
	}

	take := func(k string) string { v := attrs[k]; delete(attrs, k); return v }
	rec.SessionID = take("session.id")
	rec.PromptID = take("prompt.id")
	rec.Model = take("model")
	rec.InputTokens = parseInt(take("input_tokens"))
	rec.OutputTokens = parseInt(take("output_tokens"))
	rec.CacheReadTokens = parseInt(take("cache_read_tokens"))
	rec.CacheCreationTokens = parseInt(take("cache_creation_tokens"))
	if v := take("cost_usd"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			rec.CostUSD, rec.CostKnown = f, true
		}
	}
	if v := take("duration_ms"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1e12 {
			rec.Duration = time.Duration(f * float64(time.Millisecond))
		}
	}
	rec.StatusCode = int(parseInt(take("status_code")))
	rec.Error = take("error")
	rec.Attempt = int(parseInt(take("attempt")))
	if v := take("ttft_ms"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1e12 {
			rec.TimeToFirstToken = time.Duration(f * float64(time.Millisecond))
		}
	}
	rec.RequestID = take("request_id")
	rec.ToolUseID = take("tool_use_id")
	rec.ToolName = take("tool_name")
	rec.Success = take("success") == "true"
	rec.Decision = take("decision")
	rec.Source = take("source")
	rec.PromptLength = int(parseInt(take("prompt_length")))

	for k, v := range attrs {
		if contentAttributes[k] && v != redactedByAgent {
			if rec.Content == nil {
				rec.Content = map[string]string{}
			}
			rec.Content[k] = v
			delete(attrs, k)
		}
	}
	if len(attrs) > 0 {
		rec.Attrs = attrs
	}
	return rec
}

// parseInt reads a count that may have been sent as an int, a double or a
// string of either (Claude Code sends token counts as strings).
func parseInt(s string) int64 {
	if s == "" {
		return 0
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= math.MinInt64 && f <= math.MaxInt64 {
		return int64(f)
	}
	return 0
}

// ValueString flattens an OTLP value to text (otlpvalue.String).
func ValueString(v *commonpb.AnyValue) string { return otlpvalue.String(v) }
