package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// anthropicBody is a Messages request of system, tools (JSON array
// elements) and messages (JSON array elements).
func anthropicBody(system string, tools []string, messages ...string) string {
	return fmt.Sprintf(`{"model":"claude-sonnet-4-5","max_tokens":32000,"system":%q,"tools":[%s],"messages":[%s]}`,
		system, strings.Join(tools, ","), strings.Join(messages, ","))
}

const (
	bashTool  = `{"name":"Bash","description":"Run a command","input_schema":{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}}`
	readTool  = `{"name":"Read","description":"Read a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}}},"cache_control":{"type":"ephemeral"}}`
	firstTurn = `{"role":"user","content":"fix the flaky test"}`
)

// TestTemplateDigest: the template digest (system prompt and tool
// definitions) stays when only the conversation grows or the tools come
// in another order, and changes with a tool's schema or the system
// prompt; the tools digest follows the tools alone.
func TestTemplateDigest(t *testing.T) {
	behind := startFake(t)
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: behind.URL()}})
	send := func(body string) event.LLMCall {
		t.Helper()
		if v := do(t, "POST", p.URL(Anthropic)+"/v1/messages", body, claudeHeaders); v.Status != 200 {
			t.Fatalf("status %d: %s", v.Status, v.Body)
		}
		return calls.next(t)
	}
	// The same tool with its schema's keys in another order, and no
	// description or cache marker: the same definition.
	readShuffled := `{"input_schema":{"properties":{"path":{"type":"string"}},"type":"object"},"name":"Read"}`
	readChanged := `{"name":"Read","input_schema":{"type":"object","properties":{"path":{"type":"string"},"limit":{"type":"integer"}}}}`
	base := send(anthropicBody("You are Claude Code.", []string{bashTool, readTool}, firstTurn))
	if base.TemplateSHA256 == "" || base.ToolsSHA256 == "" || base.TemplateSHA256 == base.ToolsSHA256 {
		t.Fatalf("digests: template %q tools %q", base.TemplateSHA256, base.ToolsSHA256)
	}
	for _, tc := range []struct {
		name                string
		body                string
		sameTemplate, tools bool
	}{
		{"more messages", anthropicBody("You are Claude Code.", []string{bashTool, readTool}, firstTurn,
			`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"go test"}}]}`,
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"}]}`), true, true},
		{"tools reordered", anthropicBody("You are Claude Code.", []string{readTool, bashTool}, firstTurn), true, true},
		{"schema keys reordered, description dropped", anthropicBody("You are Claude Code.", []string{readShuffled, bashTool}, firstTurn), true, true},
		{"a tool's schema changed", anthropicBody("You are Claude Code.", []string{bashTool, readChanged}, firstTurn), false, false},
		{"a tool fewer", anthropicBody("You are Claude Code.", []string{bashTool}, firstTurn), false, false},
		{"system prompt changed", anthropicBody("You are Claude Code. Be brief.", []string{bashTool, readTool}, firstTurn), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := send(tc.body)
			if c.PromptSHA256 == base.PromptSHA256 {
				t.Fatal("request digest unchanged: the case sends the same body")
			}
			if got := c.TemplateSHA256 == base.TemplateSHA256; got != tc.sameTemplate {
				t.Errorf("template digest unchanged = %v, want %v", got, tc.sameTemplate)
			}
			if got := c.ToolsSHA256 == base.ToolsSHA256; got != tc.tools {
				t.Errorf("tools digest unchanged = %v, want %v", got, tc.tools)
			}
		})
	}

	// No system prompt and no tools: no template to digest.
	if c := send(`{"model":"claude-haiku-4-5","max_tokens":5,"messages":[` + firstTurn + `]}`); c.TemplateSHA256 != "" || c.ToolsSHA256 != "" {
		t.Errorf("digests of a request with no template: %q %q", c.TemplateSHA256, c.ToolsSHA256)
	}
}

// TestTemplateDigestOpenAI: Chat Completions function tools (schema under
// function.parameters) and Responses tools (parameters), the system
// prompt from system messages / instructions.
func TestTemplateDigestOpenAI(t *testing.T) {
	oai := startOpenAIFake(t)
	p, calls := startProxy(t, Config{Upstreams: map[string]string{OpenAI: oai.URL + "/v1"}})
	send := func(path, body string) event.LLMCall {
		t.Helper()
		if v := do(t, "POST", p.URL(OpenAI)+path, body, nil); v.Status != 200 {
			t.Fatalf("status %d: %s", v.Status, v.Body)
		}
		return calls.next(t)
	}
	fn := func(name, props string) string {
		return fmt.Sprintf(`{"type":"function","function":{"name":%q,"description":"d","parameters":{"type":"object","properties":%s}}}`, name, props)
	}
	chat := func(tools []string, msgs string) string {
		return fmt.Sprintf(`{"model":"gpt-4.1","messages":[{"role":"system","content":"You are Codex."},%s],"tools":[%s]}`, msgs, strings.Join(tools, ","))
	}
	a, b := fn("run_tests", `{"pkg":{"type":"string"}}`), fn("read", `{"path":{"type":"string"}}`)
	c1 := send("/chat/completions", chat([]string{a, b}, `{"role":"user","content":"hi"}`))
	c2 := send("/chat/completions", chat([]string{b, a}, `{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"go on"}`))
	c3 := send("/chat/completions", chat([]string{a, fn("read", `{"path":{"type":"integer"}}`)}, `{"role":"user","content":"hi"}`))
	if c1.TemplateSHA256 == "" || c1.TemplateSHA256 != c2.TemplateSHA256 || c1.ToolsSHA256 != c2.ToolsSHA256 {
		t.Errorf("chat: digests differ with only messages and tool order changed: %q/%q %q/%q", c1.TemplateSHA256, c2.TemplateSHA256, c1.ToolsSHA256, c2.ToolsSHA256)
	}
	if c3.TemplateSHA256 == c1.TemplateSHA256 || c3.ToolsSHA256 == c1.ToolsSHA256 {
		t.Error("chat: a changed parameter schema left the digests unchanged")
	}

	resp := func(tools, input string) string {
		return fmt.Sprintf(`{"model":"gpt-5-codex","instructions":"You are Codex.","tools":[%s],"input":%s}`, tools, input)
	}
	rfn := `{"type":"function","name":"shell","parameters":{"type":"object","properties":{"command":{"type":"array"}}},"strict":false}`
	r1 := send("/responses", resp(rfn+`,{"type":"web_search"}`, `"hi"`))
	r2 := send("/responses", resp(`{"type":"web_search"},`+rfn, `[{"type":"message","role":"user","content":"hi"}]`))
	if r1.TemplateSHA256 == "" || r1.TemplateSHA256 != r2.TemplateSHA256 || !reflect.DeepEqual(r1.ToolsOffered, []string{"shell", "web_search"}) {
		t.Errorf("responses: template %q vs %q, tools offered %v", r1.TemplateSHA256, r2.TemplateSHA256, r1.ToolsOffered)
	}
	if r1.TemplateSHA256 == c1.TemplateSHA256 {
		t.Error("different tools, same template digest")
	}
}

// TestToolResults: the tool results new in a request (after the model's
// last output) are read in each API's shape, with Anthropic's is_error.
func TestToolResults(t *testing.T) {
	anth := startFake(t)
	oai := startOpenAIFake(t)
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: anth.URL(), OpenAI: oai.URL + "/v1"}})
	many := make([]string, 70)
	manyWant := make([]event.ToolResult, 0, event.MaxToolResults)
	for i := range many {
		id := fmt.Sprintf("toolu_m%02d", i)
		many[i] = fmt.Sprintf(`{"type":"tool_result","tool_use_id":%q,"content":"x","is_error":%t}`, id, i%10 == 0)
		if i < event.MaxToolResults {
			manyWant = append(manyWant, event.ToolResult{ToolCallID: id, IsError: i%10 == 0, ContentSHA256: hexSHA("x")})
		}
	}
	for _, tc := range []struct {
		name, provider, path, body string
		want                       []event.ToolResult
		count, errs                int
	}{
		{
			name: "anthropic", provider: Anthropic, path: "/v1/messages",
			body: anthropicBody("sys", []string{bashTool}, firstTurn,
				`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}]}`,
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"old"}]}`,
				`{"role":"assistant","content":[{"type":"text","text":"two more"},{"type":"tool_use","id":"toolu_2","name":"Bash","input":{}},{"type":"tool_use","id":"toolu_3","name":"Bash","input":{}}]}`,
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_2","is_error":true,"content":[{"type":"text","text":"exit 1"}]},{"type":"tool_result","tool_use_id":"toolu_3","content":"ok"},{"type":"text","text":"go on"}]}`),
			want: []event.ToolResult{{ToolCallID: "toolu_2", IsError: true, ContentSHA256: hexSHA(`[{"type":"text","text":"exit 1"}]`)},
				{ToolCallID: "toolu_3", ContentSHA256: hexSHA("ok")}},
			count: 2, errs: 1,
		},
		{
			name: "anthropic, a new user turn after the results: none new", provider: Anthropic, path: "/v1/messages",
			body: anthropicBody("sys", []string{bashTool}, firstTurn,
				`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}]}`,
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"old"}]}`,
				`{"role":"assistant","content":"done"}`,
				`{"role":"user","content":"thanks, now the docs"}`),
		},
		{
			name: "anthropic, capped", provider: Anthropic, path: "/v1/messages",
			body: anthropicBody("sys", []string{bashTool}, firstTurn,
				`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_m00","name":"Bash","input":{}}]}`,
				`{"role":"user","content":[`+strings.Join(many, ",")+`]}`),
			want: manyWant, count: 70, errs: 7,
		},
		{
			name: "openai chat", provider: OpenAI, path: "/chat/completions",
			body: `{"model":"gpt-4.1","messages":[{"role":"system","content":"sys"},{"role":"user","content":"hi"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
				`{"role":"tool","tool_call_id":"call_1","content":"old"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"call_2","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"call_3","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
				`{"role":"tool","tool_call_id":"call_2","content":"a"},{"role":"tool","tool_call_id":"call_3","content":"b"}]}`,
			want:  []event.ToolResult{{ToolCallID: "call_2", ContentSHA256: hexSHA("a")}, {ToolCallID: "call_3", ContentSHA256: hexSHA("b")}},
			count: 2,
		},
		{
			name: "openai responses, whole history", provider: OpenAI, path: "/responses",
			body: `{"model":"gpt-5-codex","instructions":"sys","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]},` +
				`{"type":"function_call","call_id":"fc_1","name":"shell","arguments":"{}"},{"type":"function_call_output","call_id":"fc_1","output":"old"},` +
				`{"type":"reasoning","id":"rs_1","summary":[]},` +
				`{"type":"function_call","call_id":"fc_2","name":"shell","arguments":"{}"},{"type":"custom_tool_call","call_id":"fc_3","name":"apply_patch","input":"x"},` +
				`{"type":"function_call_output","call_id":"fc_2","output":"a"},{"type":"custom_tool_call_output","call_id":"fc_3","output":"b"}]}`,
			want:  []event.ToolResult{{ToolCallID: "fc_2", ContentSHA256: hexSHA("a")}, {ToolCallID: "fc_3", ContentSHA256: hexSHA("b")}},
			count: 2,
		},
		{
			name: "openai responses, continued server-side", provider: OpenAI, path: "/responses",
			body:  `{"model":"gpt-5","previous_response_id":"resp_1","input":[{"type":"function_call_output","call_id":"fc_9","output":"a"}]}`,
			want:  []event.ToolResult{{ToolCallID: "fc_9", ContentSHA256: hexSHA("a")}},
			count: 1,
		},
		{
			name: "openai responses, string input", provider: OpenAI, path: "/responses",
			body: `{"model":"gpt-5","input":"hi"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v := do(t, "POST", p.URL(tc.provider)+tc.path, tc.body, nil); v.Status != 200 {
				t.Fatalf("status %d: %s", v.Status, v.Body)
			}
			c := calls.next(t)
			if !reflect.DeepEqual(c.ToolResults, tc.want) || c.ToolResultCount != tc.count || c.ToolErrorCount != tc.errs {
				t.Errorf("tool results %+v (count %d, errors %d), want %+v (%d, %d)", c.ToolResults, c.ToolResultCount, c.ToolErrorCount, tc.want, tc.count, tc.errs)
			}
		})
	}
	// The fake saw the results the proxy counted as new among all it received.
	var seen []string
	for _, r := range anth.Requests() {
		for _, tr := range r.ToolResults {
			seen = append(seen, tr.ToolUseID)
		}
	}
	if !strings.Contains(strings.Join(seen, " "), "toolu_2 toolu_3") {
		t.Errorf("the upstream received results %v", seen)
	}
}

// TestGuardrail: refusals and content filters that end a response, in
// each API's shape, streamed and not; an ordinary stop is none.
func TestGuardrail(t *testing.T) {
	const anthMsg = `{"id":"msg_g","type":"message","model":"claude-sonnet-4-5","content":[%s],"stop_reason":%q,"usage":{"input_tokens":10,"output_tokens":2}}`
	for _, tc := range []struct {
		name, provider, path string
		status               int
		contentType, body    string
		want, errType        string
	}{
		{"anthropic refusal", Anthropic, "/v1/messages", 200, "application/json",
			fmt.Sprintf(anthMsg, ``, "refusal"), "refusal", ""},
		{"anthropic refusal, streamed", Anthropic, "/v1/messages", 200, "text/event-stream",
			messageStart +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"},\"usage\":{\"output_tokens\":0}}\n\n" +
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", "refusal", ""},
		{"anthropic end_turn", Anthropic, "/v1/messages", 200, "application/json",
			fmt.Sprintf(anthMsg, `{"type":"text","text":"ok"}`, "end_turn"), "", ""},
		{"openai chat content_filter", OpenAI, "/chat/completions", 200, "application/json",
			`{"id":"c1","model":"gpt-4.1","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":5,"completion_tokens":0}}`,
			"content_filter", ""},
		{"openai chat refusal", OpenAI, "/chat/completions", 200, "application/json",
			`{"id":"c2","model":"gpt-4.1","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}`,
			"refusal", ""},
		{"openai chat refusal, streamed", OpenAI, "/chat/completions", 200, "text/event-stream",
			"data: {\"id\":\"c3\",\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't\"},\"finish_reason\":null}]}\n\n" +
				"data: {\"id\":\"c3\",\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", "refusal", ""},
		{"openai responses content_filter", OpenAI, "/responses", 200, "application/json",
			`{"id":"r1","model":"gpt-5","status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":[],"usage":{"input_tokens":5,"output_tokens":0}}`,
			"content_filter", ""},
		{"openai responses refusal part", OpenAI, "/responses", 200, "application/json",
			`{"id":"r2","model":"gpt-5","status":"completed","output":[{"type":"message","role":"assistant","content":[{"type":"refusal","refusal":"No."}]}],"usage":{"input_tokens":5,"output_tokens":2}}`,
			"refusal", ""},
		{"azure 400 content_filter: a failed call", OpenAI, "/chat/completions", 400, "application/json",
			`{"error":{"message":"The response was filtered","type":null,"param":"prompt","code":"content_filter","status":400}}`,
			"content_filter", "http_400"},
		{"openai stop", OpenAI, "/chat/completions", 200, "application/json",
			`{"id":"c4","model":"gpt-4.1","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`,
			"", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			p, calls := startProxy(t, Config{Upstreams: map[string]string{tc.provider: up}})
			do(t, "POST", p.URL(tc.provider)+tc.path, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil)
			c := calls.next(t)
			if c.Guardrail != tc.want || c.ErrorType != tc.errType {
				t.Errorf("guardrail %q error %q, want %q %q", c.Guardrail, c.ErrorType, tc.want, tc.errType)
			}
		})
	}
}

// TestRequestParameters: sampling parameters are read whatever their
// value (0 is one); stop sequences are content, kept in full capture only.
func TestRequestParameters(t *testing.T) {
	anth := startFake(t)
	oai := startOpenAIFake(t)
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%t", full), func(t *testing.T) {
			p, calls := startProxy(t, Config{
				Upstreams: map[string]string{Anthropic: anth.URL(), OpenAI: oai.URL + "/v1"},
				Capture:   Capture{Full: full},
			})
			do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":100,"temperature":0,"top_p":0.9,"top_k":40,"stop_sequences":["\n\nHuman:","STOP"],"messages":[`+firstTurn+`]}`, nil)
			c := calls.next(t)
			want := event.LLMCall{Temperature: 0, HasTemperature: true, TopP: 0.9, HasTopP: true, TopK: 40, HasTopK: true}
			if full {
				want.StopSequences = []string{"\n\nHuman:", "STOP"}
			}
			got := event.LLMCall{Temperature: c.Temperature, HasTemperature: c.HasTemperature, TopP: c.TopP, HasTopP: c.HasTopP,
				TopK: c.TopK, HasTopK: c.HasTopK, Seed: c.Seed, HasSeed: c.HasSeed, StopSequences: c.StopSequences}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("anthropic parameters %+v, want %+v", got, want)
			}
			if c.ContentCaptured != full {
				t.Errorf("ContentCaptured %v, want %v", c.ContentCaptured, full)
			}

			do(t, "POST", p.URL(OpenAI)+"/chat/completions", `{"model":"gpt-4.1","temperature":1.2,"seed":9007199254740993,"stop":"END","messages":[{"role":"user","content":"hi"}]}`, nil)
			c = calls.next(t)
			want = event.LLMCall{Temperature: 1.2, HasTemperature: true, Seed: 9007199254740993, HasSeed: true}
			if full {
				want.StopSequences = []string{"END"}
			}
			got = event.LLMCall{Temperature: c.Temperature, HasTemperature: c.HasTemperature, TopP: c.TopP, HasTopP: c.HasTopP,
				TopK: c.TopK, HasTopK: c.HasTopK, Seed: c.Seed, HasSeed: c.HasSeed, StopSequences: c.StopSequences}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("openai parameters %+v, want %+v", got, want)
			}

			// A parameter of an unexpected type loses itself only.
			do(t, "POST", p.URL(OpenAI)+"/chat/completions", `{"model":"gpt-4.1","temperature":"hot","top_p":null,"seed":1.5,"messages":[{"role":"user","content":"hi"}]}`, nil)
			c = calls.next(t)
			if c.HasTemperature || c.HasTopP || c.HasSeed || c.RequestModel != "gpt-4.1" || !c.UsageKnown {
				t.Errorf("malformed parameters: %+v", c)
			}
		})
	}
}

// TestRetryAfter: a 429's Retry-After (seconds) reaches the event; the
// other forms are read by retryAfter.
func TestRetryAfter(t *testing.T) {
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(429)
		io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
	})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}})
	do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{"model":"claude-haiku-4-5","messages":[]}`, nil)
	c := calls.next(t)
	if !c.HasRetryAfter || c.RetryAfter != 7*time.Second || c.Status != 429 || c.ErrorType != "http_429" {
		t.Errorf("retry after %v (set %v), status %d, error %q; want 7s, 429, http_429", c.RetryAfter, c.HasRetryAfter, c.Status, c.ErrorType)
	}

	now := time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		hdr  map[string]string
		want time.Duration
		ok   bool
	}{
		{map[string]string{"Retry-After": "7"}, 7 * time.Second, true},
		{map[string]string{"Retry-After": "0"}, 0, true},
		{map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond, true},
		{map[string]string{"Retry-After": "Sat, 01 Nov 2025 12:00:30 GMT"}, 30 * time.Second, true},
		{map[string]string{"Retry-After": "Sat, 01 Nov 2025 12:00:30 GMT", "Date": "Sat, 01 Nov 2025 12:00:20 GMT"}, 10 * time.Second, true},
		{map[string]string{"Retry-After": "Sat, 01 Nov 2025 11:00:00 GMT"}, 0, true},
		{map[string]string{"Retry-After-Ms": "250", "Retry-After": "1"}, 250 * time.Millisecond, true},
		{map[string]string{"Retry-After": "soon"}, 0, false},
		{map[string]string{"Retry-After": "-3"}, 0, false},
		{map[string]string{"Retry-After": "NaN"}, 0, false},
		{nil, 0, false},
	} {
		h := http.Header{}
		for k, v := range tc.hdr {
			h.Set(k, v)
		}
		if d, ok := retryAfter(h, now); d != tc.want || ok != tc.ok {
			t.Errorf("%v: %v %v, want %v %v", tc.hdr, d, ok, tc.want, tc.ok)
		}
	}
}

// The canonical form of a tool ignores key order and whitespace, not
// values.
func TestCanonicalTool(t *testing.T) {
	read := func(s string) string {
		var tl tool
		if err := json.Unmarshal([]byte(s), &tl); err != nil {
			t.Fatal(err)
		}
		return tl.canonical()
	}
	a := read(`{"name":"X","input_schema":{"type":"object","properties":{"n":{"type":"number","maximum":1.0}}}}`)
	b := read(`{ "input_schema" : { "properties" : { "n" : { "maximum" : 1.0, "type" : "number" } }, "type" : "object" }, "name" : "X" }`)
	c := read(`{"name":"X","input_schema":{"type":"object","properties":{"n":{"type":"number","maximum":2}}}}`)
	if a != b || a == c {
		t.Errorf("canonical forms:\n%s\n%s\n%s", a, b, c)
	}
}

// TestConversationIntoSpans runs Claude Code's loop against the scripted
// model through the proxy — a turn that asks for Bash, the client's
// retry of the next request after a 529, the tool result sent back — and
// records the events: the second span links to the first by the tool
// call id the model chose, the retry to its failed attempt, and the
// template digest is the same on every turn.
func TestConversationIntoSpans(t *testing.T) {
	fake := startFake(t)
	var failOnce sync.Once
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "tool_result") {
			failed := false
			failOnce.Do(func() { failed = true })
			if failed {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(529)
				io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
				return
			}
		}
		req, _ := http.NewRequest(r.Method, fake.URL()+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}})
	send := func(body string) event.LLMCall {
		t.Helper()
		do(t, "POST", p.URL(Anthropic)+"/v1/messages", body, claudeHeaders)
		return calls.next(t)
	}
	first := send(anthropicBody("You are Claude Code.", []string{bashTool, readTool}, firstTurn))
	if len(first.ToolCalls) != 1 {
		t.Fatalf("first turn: tool calls %+v", first.ToolCalls)
	}
	id := first.ToolCalls[0].ID
	second := anthropicBody("You are Claude Code.", []string{bashTool, readTool}, firstTurn,
		fmt.Sprintf(`{"role":"assistant","content":[{"type":"tool_use","id":%q,"name":"Bash","input":{"command":"go test ./..."}}]}`, id),
		fmt.Sprintf(`{"role":"user","content":[{"type":"tool_result","tool_use_id":%q,"content":"FAIL","is_error":true}]}`, id))
	overloaded := send(second)
	retried := send(second)
	if overloaded.Status != 529 || retried.Status != 200 || retried.PromptSHA256 != overloaded.PromptSHA256 {
		t.Fatalf("statuses %d, %d; same body %v", overloaded.Status, retried.Status, retried.PromptSHA256 == overloaded.PromptSHA256)
	}

	r := recorder.New(recorder.RunInfo{RunID: "run-conv", Start: first.Start.Add(-time.Second)})
	for _, c := range []event.LLMCall{first, overloaded, retried} {
		r.Add(c)
	}
	tr := r.Finish(recorder.End{Time: retried.End.Add(time.Second)})
	var spans []*telemetry.Span
	for i := range tr.Spans {
		if tr.Spans[i].Type() == telemetry.SpanLLMCall {
			spans = append(spans, &tr.Spans[i])
		}
	}
	if len(spans) != 3 {
		t.Fatalf("%d chat spans", len(spans))
	}
	attr := func(s *telemetry.Span, k attribute.Key) string {
		v, ok := s.Attr(k)
		if !ok {
			return "<unset>"
		}
		return v.Emit()
	}
	linked := func(s *telemetry.Span, relation string, to *telemetry.Span) bool {
		for _, l := range s.Links {
			if l.SpanID == to.SpanID && l.Attr(telemetry.LinkRelation) == relation {
				return true
			}
		}
		return false
	}
	for _, s := range spans[1:] {
		if !linked(s, telemetry.LinkToolResultOf, spans[0]) {
			t.Errorf("%s: no tool_result_of link to the call that asked for %s: %+v", s.Name, id, s.Links)
		}
		if got := attr(s, telemetry.LLMContextToolResultIDs); got != fmt.Sprintf("[%q]", id) || attr(s, telemetry.LLMContextToolErrors) != "1" {
			t.Errorf("%s: tool result ids %s, errors %s", s.Name, got, attr(s, telemetry.LLMContextToolErrors))
		}
		if attr(s, telemetry.LLMTemplateSHA256) != attr(spans[0], telemetry.LLMTemplateSHA256) {
			t.Errorf("%s: the template digest changed with the conversation", s.Name)
		}
	}
	if !linked(spans[2], telemetry.LinkRetryOf, spans[1]) || attr(spans[2], telemetry.LLMRetryCount) != "1" {
		t.Errorf("the retry: links %+v, count %s", spans[2].Links, attr(spans[2], telemetry.LLMRetryCount))
	}
	for k, want := range map[attribute.Key]string{telemetry.LLMRetryAfterS: "2", telemetry.ErrorType: "http_529", telemetry.LLMGuardrail: "<unset>"} {
		if got := attr(spans[1], k); got != want {
			t.Errorf("the 529: %s = %s, want %s", k, got, want)
		}
	}
	if attr(spans[2], telemetry.LLMGuardrail) != "none" || attr(tr.Root(), telemetry.LLMRetryCalls) != "1" {
		t.Errorf("guardrail %s, root retries %s", attr(spans[2], telemetry.LLMGuardrail), attr(tr.Root(), telemetry.LLMRetryCalls))
	}
}

// arrayItems splits what json.Unmarshal would into []json.RawMessage,
// byte for byte.
func FuzzArrayItems(f *testing.F) {
	for _, s := range []string{
		`[]`, ` [ ] `, `[1]`, `[1, "a,b" ,{"x":[1,2,{"y":"]"}]}, null , true]`,
		`["\"", "\\", "\\\"]", "a\\\\"]`, `[[[]],[{}]]`, `"str"`, `{"a":1}`, `[ "unterminated`,
		"[\n\t{\"role\":\"user\",\"content\":\"hi\"}\r\n]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want []json.RawMessage
		if json.Unmarshal([]byte(s), &want) != nil || want == nil {
			return // arrayItems is only given valid JSON
		}
		got := arrayItems([]byte(s))
		if len(got) != len(want) {
			t.Fatalf("%q: %d items, want %d", s, len(got), len(want))
		}
		for i := range got {
			if string(got[i]) != string(want[i]) {
				t.Fatalf("%q: item %d %q, want %q", s, i, got[i], want[i])
			}
		}
	})
}
