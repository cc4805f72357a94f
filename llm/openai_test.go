package llm

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/prices"
)

// TestOpenAI: Chat Completions and Responses, JSON and SSE, through the
// proxy against the local fake: the client's bytes are the fake's, and the
// usage is the fake's — except a chat stream that did not ask for usage,
// which has none to report (the proxy must not inject include_usage).
func TestOpenAI(t *testing.T) {
	fake := startOpenAIFake(t)
	p, calls := startProxy(t, Config{
		Upstreams: map[string]string{OpenAI: fake.URL + "/v1"},
		Capture:   Capture{Full: true},
	})
	hdr := map[string]string{"Authorization": "Bearer sk-proj-NEVER-RECORD-THIS-KEY", "Content-Type": "application/json"}
	chatMsgs := `"messages":[{"role":"developer","content":"You run tests."},{"role":"user","content":"run them"}],` +
		`"tools":[{"type":"function","function":{"name":"run_tests","parameters":{"type":"object"}}}]`
	for _, tc := range []struct {
		name, path, body string
		stream, usage    bool
		finish           []string
		toolID, text     string
	}{
		{"chat json", "/chat/completions", `{"model":"gpt-4.1",` + chatMsgs + `}`, false, true, []string{"tool_calls"}, "call_fake1", ""},
		{"chat sse with usage", "/chat/completions", `{"model":"gpt-4.1","stream":true,"stream_options":{"include_usage":true},` + chatMsgs + `}`, true, true, []string{"tool_calls"}, "call_fake2", "Running tests."},
		{"chat sse without usage", "/chat/completions", `{"model":"gpt-4.1","stream":true,` + chatMsgs + `}`, true, false, []string{"tool_calls"}, "call_fake2", "Running tests."},
		{"responses json", "/responses", `{"model":"gpt-4.1","instructions":"You run tests.","input":"run them","tools":[{"type":"function","name":"run_tests","parameters":{}}]}`, false, true, []string{"completed"}, "call_fake3", "Running tests."},
		{"responses sse", "/responses", `{"model":"gpt-4.1","stream":true,"instructions":"You run tests.","input":"run them","tools":[{"type":"function","name":"run_tests","parameters":{}}]}`, true, true, []string{"completed"}, "call_fake3", "Running tests."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dv := do(t, "POST", fake.URL+"/v1"+tc.path, tc.body, hdr)
			pv := do(t, "POST", p.URL(OpenAI)+tc.path, tc.body, hdr)
			sameView(t, dv, pv)
			c := calls.next(t)
			if c.UsageKnown != tc.usage {
				t.Fatalf("UsageKnown = %v, want %v", c.UsageKnown, tc.usage)
			}
			if tc.usage && (c.InputTokens != fakePrompt || c.CacheReadTokens != fakeCached ||
				c.OutputTokens != fakeOutput || c.ReasoningTokens != fakeReasoning || c.CacheCreationTokens != 0) {
				t.Errorf("usage in %d cached %d out %d reasoning %d; want %d %d %d %d",
					c.InputTokens, c.CacheReadTokens, c.OutputTokens, c.ReasoningTokens, fakePrompt, fakeCached, fakeOutput, fakeReasoning)
			}
			if c.Stream != tc.stream || c.ResponseModel != fakeModel || c.RequestModel != "gpt-4.1" || c.Status != 200 || c.ErrorType != "" {
				t.Errorf("stream %v model %q/%q status %d error %q", c.Stream, c.RequestModel, c.ResponseModel, c.Status, c.ErrorType)
			}
			if !reflect.DeepEqual(c.FinishReasons, tc.finish) {
				t.Errorf("FinishReasons = %v, want %v", c.FinishReasons, tc.finish)
			}
			if len(c.ToolCalls) != 1 || c.ToolCalls[0].ID != tc.toolID || c.ToolCalls[0].Name != "run_tests" ||
				c.ToolCalls[0].Arguments != `{"pkg":"./..."}` {
				t.Errorf("ToolCalls = %+v", c.ToolCalls)
			}
			if c.Response != tc.text {
				t.Errorf("Response = %q, want %q", c.Response, tc.text)
			}
			if !reflect.DeepEqual(c.ToolsOffered, []string{"run_tests"}) || c.SystemPromptSHA256 != hexSHA("You run tests.") {
				t.Errorf("tools %v system sha %s", c.ToolsOffered, c.SystemPromptSHA256)
			}
			if strings.Contains(fmt.Sprintf("%#v", c), "NEVER-RECORD") {
				t.Error("the API key reached the event")
			}
			if usd, ok := prices.Cost(c); ok != tc.usage || (ok && usd <= 0) {
				t.Errorf("Cost = %v, %v", usd, ok)
			}
		})
	}
}
