package event

import "time"

// Signal names of AgentTelemetry.Signal.
const (
	SignalTraces  = "traces"
	SignalLogs    = "logs"
	SignalMetrics = "metrics"
)

// Claude Code's event names (its OTLP log records), from its monitoring
// documentation and what the pinned CLI sends.
const (
	ClaudeUserPrompt   = "claude_code.user_prompt"
	ClaudeAPIRequest   = "claude_code.api_request"
	ClaudeAPIError     = "claude_code.api_error"
	ClaudeToolResult   = "claude_code.tool_result"
	ClaudeToolDecision = "claude_code.tool_decision"
	// ClaudeAssistantResponse ends a prompt's turn: response_length, and
	// the response text only with content logging on.
	ClaudeAssistantResponse = "claude_code.assistant_response"
)

// AgentLogRecord is one log record the agent exported, in the typed form
// the recorder needs (agentotel decodes it from OTLP). Fields that do not
// apply to the event are zero.
type AgentLogRecord struct {
	Name      string    // event name: claude_code.api_request, ...; else the body when it is a string
	Time      time.Time // when the event happened (for api_request: when the response finished)
	SessionID string    // session.id
	PromptID  string    // prompt.id: groups the events of one user prompt
	TraceID   string    // hex, when the record carries span context
	SpanID    string

	// api_request / api_error
	Model               string
	InputTokens         int64 // as Claude Code reports it: NOT including cached tokens
	OutputTokens        int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	CostUSD             float64
	CostKnown           bool
	Duration            time.Duration // duration_ms: the API call, or the tool run
	StatusCode          int           // api_error
	Error               string        // api_error / failed tool_result message
	Attempt             int           // api_error
	TimeToFirstToken    time.Duration // ttft_ms, streams
	RequestID           string        // request_id: the API's request-id response header

	// tool_result / tool_decision
	ToolName  string
	ToolUseID string // tool_use_id: the model's tool call id (event.ToolCall.ID)
	Success   bool
	Decision  string // accept / reject
	Source    string // what decided: config, user_permanent, ...

	// user_prompt
	PromptLength int

	// Attrs holds every other metadata attribute, stringified; Content
	// holds the content-bearing ones (prompt text, tool parameters) when
	// the agent sent them at all.
	Attrs   map[string]string
	Content map[string]string
}

// InclusiveInputTokens is the GenAI convention's gen_ai.usage.input_tokens
// (cached tokens included), which is what an LLMCall carries.
func (l AgentLogRecord) InclusiveInputTokens() int64 {
	return l.InputTokens + l.CacheReadTokens + l.CacheCreationTokens
}

// Start is when the API call (or tool run) began, from Time and Duration.
func (l AgentLogRecord) Start() time.Time { return l.Time.Add(-l.Duration) }

// MatchWindow is how far apart a claude_code.api_request event and the
// proxy's record of the same call may be in time. Both clocks are this
// machine's; the slack covers Claude Code taking the timestamp after
// parsing the stream, and retries of one logical request.
const MatchWindow = 10 * time.Second

// Matches reports whether an api_request event describes the same model
// call the proxy recorded, so the recorder makes an LLM span from the event
// only when no proxy call matches it (never double counting). The rule:
//
//   - the model is the call's request or response model;
//   - the usage agrees exactly: output tokens, cache read and cache
//     creation tokens, and input tokens once the proxy's inclusive count
//     has the cached ones taken out (Claude Code reports Anthropic's raw
//     input_tokens);
//   - the event's time is within MatchWindow of the call's end.
//
// A call without usage (an error, a cut stream) matches nothing. When
// several calls match one event, the recorder takes the one whose end is
// nearest the event's time, and uses each call at most once.
func (l AgentLogRecord) Matches(c LLMCall) bool {
	if l.Name != ClaudeAPIRequest || !c.UsageKnown {
		return false
	}
	if l.Model != c.RequestModel && l.Model != c.ResponseModel {
		return false
	}
	if l.OutputTokens != c.OutputTokens || l.CacheReadTokens != c.CacheReadTokens ||
		l.CacheCreationTokens != c.CacheCreationTokens || l.InclusiveInputTokens() != c.InputTokens {
		return false
	}
	d := l.Time.Sub(c.End)
	return d.Abs() <= MatchWindow
}
