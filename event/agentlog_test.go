package event

import (
	"testing"
	"time"
)

var eventTime = time.Date(2026, 11, 25, 9, 47, 21, 91_000_000, time.UTC)

func TestMatches(t *testing.T) {
	rec := AgentLogRecord{
		Name: ClaudeAPIRequest, Time: eventTime, Model: "claude-opus-5-5",
		InputTokens: 1234, OutputTokens: 56, CacheReadTokens: 100, CacheCreationTokens: 50,
	}
	// What the proxy records for the same call: inclusive input tokens.
	call := LLMCall{
		End: eventTime.Add(-30 * time.Millisecond), RequestModel: "claude-opus-5-5", ResponseModel: "claude-opus-5-5-20261101",
		InputTokens: 1384, OutputTokens: 56, CacheReadTokens: 100, CacheCreationTokens: 50, UsageKnown: true,
	}
	for _, tc := range []struct {
		name string
		mod  func(r *AgentLogRecord, c *LLMCall)
		want bool
	}{
		{"same call", func(*AgentLogRecord, *LLMCall) {}, true},
		{"response model named", func(r *AgentLogRecord, _ *LLMCall) { r.Model = "claude-opus-5-5-20261101" }, true},
		{"other model", func(r *AgentLogRecord, _ *LLMCall) { r.Model = "claude-haiku-4-5" }, false},
		{"raw input equals inclusive (double count risk)", func(_ *AgentLogRecord, c *LLMCall) { c.InputTokens = 1234 }, false},
		{"output differs", func(_ *AgentLogRecord, c *LLMCall) { c.OutputTokens = 57 }, false},
		{"cache read differs", func(_ *AgentLogRecord, c *LLMCall) { c.CacheReadTokens = 0; c.InputTokens = 1284 }, false},
		{"just inside the window", func(_ *AgentLogRecord, c *LLMCall) { c.End = eventTime.Add(MatchWindow) }, true},
		{"outside the window", func(_ *AgentLogRecord, c *LLMCall) { c.End = eventTime.Add(-MatchWindow - time.Millisecond) }, false},
		{"call without usage", func(_ *AgentLogRecord, c *LLMCall) { c.UsageKnown = false }, false},
		{"not an api_request", func(r *AgentLogRecord, _ *LLMCall) { r.Name = ClaudeAPIError }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c := rec, call
			tc.mod(&r, &c)
			if got := r.Matches(c); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}
