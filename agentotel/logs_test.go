package agentotel

import (
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}
func i64(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}
func f64(k string, v float64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
}
func boolean(k string, v bool) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}}
}
func body(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func logsRequest(recs ...*logspb.LogRecord) *collogspb.ExportLogsServiceRequest {
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{LogRecords: recs}}}}}
}

var eventTime = time.Date(2026, 11, 25, 9, 47, 21, 91_000_000, time.UTC)

func TestLogsToEvents(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    *logspb.LogRecord
		check func(t *testing.T, r event.AgentLogRecord)
	}{
		{
			// As the pinned Claude Code CLI sends it: body is the full
			// name, event.name the short one, counts as strings, no
			// TimeUnixNano but event.timestamp.
			name: "claude code api_request",
			in: &logspb.LogRecord{
				Body:    body("claude_code.api_request"),
				TraceId: runTraceID[:], SpanId: runRootID[:],
				Attributes: []*commonpb.KeyValue{
					str("event.name", "api_request"), str("event.timestamp", "2026-11-25T09:47:21.091Z"),
					str("session.id", "s1"), str("prompt.id", "p1"), str("model", "claude-opus-5-5"),
					str("input_tokens", "1234"), str("output_tokens", "56"), str("cache_read_tokens", "100"),
					str("cache_creation_tokens", "50"), str("cost_usd", "0.006326"), str("duration_ms", "202"),
					str("ttft_ms", "45"), str("request_id", "req_1"), str("speed", "normal"),
				},
			},
			check: func(t *testing.T, r event.AgentLogRecord) {
				if r.Name != event.ClaudeAPIRequest || !r.Time.Equal(eventTime) || r.SessionID != "s1" || r.PromptID != "p1" ||
					r.Model != "claude-opus-5-5" || r.InputTokens != 1234 || r.OutputTokens != 56 ||
					r.CacheReadTokens != 100 || r.CacheCreationTokens != 50 || r.InclusiveInputTokens() != 1384 ||
					!r.CostKnown || r.CostUSD != 0.006326 || r.Duration != 202*time.Millisecond ||
					r.TimeToFirstToken != 45*time.Millisecond || r.RequestID != "req_1" ||
					r.TraceID != runTraceID.String() || r.SpanID != runRootID.String() ||
					r.Attrs["speed"] != "normal" || !r.Start().Equal(eventTime.Add(-202*time.Millisecond)) {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "typed values and EventName field",
			in: &logspb.LogRecord{
				EventName: event.ClaudeToolResult, TimeUnixNano: uint64(eventTime.UnixNano()),
				Attributes: []*commonpb.KeyValue{
					str("tool_name", "Bash"), boolean("success", true), i64("duration_ms", 426),
					str("tool_use_id", "toolu_1"), f64("cost_usd", 0.5), i64("tool_result_size_bytes", 0),
				},
			},
			check: func(t *testing.T, r event.AgentLogRecord) {
				if r.Name != event.ClaudeToolResult || !r.Time.Equal(eventTime) || r.ToolName != "Bash" || !r.Success ||
					r.Duration != 426*time.Millisecond || r.ToolUseID != "toolu_1" || r.CostUSD != 0.5 ||
					r.Attrs["tool_result_size_bytes"] != "0" {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "content the agent redacted is metadata; real content is kept apart",
			in: &logspb.LogRecord{
				Body: body("claude_code.user_prompt"),
				Attributes: []*commonpb.KeyValue{
					str("prompt", "<REDACTED>"), str("prompt_text", "fix the test, key sk-ant-123"),
					str("prompt_length", "26"),
				},
			},
			check: func(t *testing.T, r event.AgentLogRecord) {
				if r.Name != event.ClaudeUserPrompt || r.PromptLength != 26 || r.Attrs["prompt"] != "<REDACTED>" ||
					r.Content["prompt_text"] != "fix the test, key sk-ant-123" || r.Attrs["prompt_text"] != "" {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "api_error",
			in: &logspb.LogRecord{
				Body: body("claude_code.api_error"), ObservedTimeUnixNano: uint64(eventTime.UnixNano()),
				Attributes: []*commonpb.KeyValue{str("model", "m"), str("error", "overloaded"), str("status_code", "529"), str("attempt", "2")},
			},
			check: func(t *testing.T, r event.AgentLogRecord) {
				if r.Name != event.ClaudeAPIError || r.StatusCode != 529 || r.Error != "overloaded" || r.Attempt != 2 ||
					!r.Time.Equal(eventTime) || r.CostKnown {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "not claude code: name from body, garbage numbers are zero",
			in: &logspb.LogRecord{
				Body:       body("GET /health 200"),
				Attributes: []*commonpb.KeyValue{str("input_tokens", "lots"), str("duration_ms", "-5"), str("cost_usd", "NaN")},
			},
			check: func(t *testing.T, r event.AgentLogRecord) {
				if r.Name != "GET /health 200" || r.InputTokens != 0 || r.Duration != 0 || r.CostKnown || !r.Time.IsZero() {
					t.Errorf("%+v", r)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := LogsToEvents(logsRequest(tc.in))
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			tc.check(t, recs[0])
		})
	}
}
