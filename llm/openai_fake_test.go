package llm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// openaiFake speaks just enough of OpenAI's Chat Completions and Responses
// APIs (JSON and SSE, with the usage shapes the real API sends) for the
// proxy tests and the official SDK clients. Its numbers are distinctive so
// a test can tell each one apart.
const (
	fakePrompt    = 1234
	fakeCached    = 1000
	fakeOutput    = 210
	fakeReasoning = 64
	fakeModel     = "gpt-4.1-2025-04-14"
)

func startOpenAIFake(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(openaiFake))
	t.Cleanup(srv.Close)
	return srv
}

func openaiFake(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error","code":null}}`, err.Error())
		return
	}
	w.Header().Set("x-request-id", "req_fake")
	switch r.URL.Path {
	case "/v1/chat/completions":
		if req.Stream {
			chatStream(w, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-fake1","object":"chat.completion","created":1764000000,"model":%q,`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[`+
			`{"id":"call_fake1","type":"function","function":{"name":"run_tests","arguments":"{\"pkg\":\"./...\"}"}}],"refusal":null},`+
			`"logprobs":null,"finish_reason":"tool_calls"}],"usage":%s,"system_fingerprint":"fp_fake"}`, fakeModel, chatUsage)
	case "/v1/responses":
		if req.Stream {
			responsesStream(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, responseObjectJSON("completed"))
	default:
		w.WriteHeader(404)
		fmt.Fprint(w, `{"error":{"message":"no such endpoint","type":"invalid_request_error","code":"unknown_url"}}`)
	}
}

var chatUsage = fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,`+
	`"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},`+
	`"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`,
	fakePrompt, fakeOutput, fakePrompt+fakeOutput, fakeCached, fakeReasoning)

func sse(w http.ResponseWriter, event, data string) {
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	fmt.Fprintf(w, "data: %s\n\n", data)
	w.(http.Flusher).Flush()
}

func chatStream(w http.ResponseWriter, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(200)
	usage := ""
	if includeUsage {
		usage = `,"usage":null` // chunks carry a null usage when it was asked for
	}
	chunk := func(choices string) {
		sse(w, "", fmt.Sprintf(`{"id":"chatcmpl-fake2","object":"chat.completion.chunk","created":1764000000,"model":%q,"choices":[%s]%s}`, fakeModel, choices, usage))
	}
	chunk(`{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}`)
	chunk(`{"index":0,"delta":{"content":"Running "},"finish_reason":null}`)
	chunk(`{"index":0,"delta":{"content":"tests."},"finish_reason":null}`)
	chunk(`{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_fake2","type":"function","function":{"name":"run_tests","arguments":""}}]},"finish_reason":null}`)
	chunk(`{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"pkg\":"}}]},"finish_reason":null}`)
	chunk(`{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"./...\"}"}}]},"finish_reason":null}`)
	chunk(`{"index":0,"delta":{},"finish_reason":"tool_calls"}`)
	if includeUsage {
		sse(w, "", fmt.Sprintf(`{"id":"chatcmpl-fake2","object":"chat.completion.chunk","created":1764000000,"model":%q,"choices":[],"usage":%s}`, fakeModel, chatUsage))
	}
	sse(w, "", "[DONE]")
}

func responseObjectJSON(status string) string {
	usage := "null"
	if status == "completed" {
		usage = fmt.Sprintf(`{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,`+
			`"output_tokens_details":{"reasoning_tokens":%d},"total_tokens":%d}`,
			fakePrompt, fakeCached, fakeOutput, fakeReasoning, fakePrompt+fakeOutput)
	}
	output := `[]`
	if status == "completed" {
		output = `[{"id":"rs_fake","type":"reasoning","summary":[]},` +
			`{"id":"msg_fake","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Running tests.","annotations":[]}]},` +
			`{"id":"fc_fake","type":"function_call","status":"completed","call_id":"call_fake3","name":"run_tests","arguments":"{\"pkg\":\"./...\"}"}]`
	}
	return fmt.Sprintf(`{"id":"resp_fake1","object":"response","created_at":1764000000,"status":%q,"error":null,`+
		`"incomplete_details":null,"instructions":null,"model":%q,"output":%s,"parallel_tool_calls":true,`+
		`"tool_choice":"auto","tools":[],"usage":%s}`, status, fakeModel, output, usage)
}

func responsesStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(200)
	seq := 0
	ev := func(typ, rest string) {
		sse(w, typ, fmt.Sprintf(`{"type":%q,"sequence_number":%d,%s}`, typ, seq, rest))
		seq++
	}
	ev("response.created", `"response":`+responseObjectJSON("in_progress"))
	ev("response.in_progress", `"response":`+responseObjectJSON("in_progress"))
	ev("response.output_item.added", `"output_index":0,"item":{"id":"msg_fake","type":"message","status":"in_progress","role":"assistant","content":[]}`)
	ev("response.output_text.delta", `"item_id":"msg_fake","output_index":0,"content_index":0,"delta":"Running "`)
	ev("response.output_text.delta", `"item_id":"msg_fake","output_index":0,"content_index":0,"delta":"tests."`)
	ev("response.output_text.done", `"item_id":"msg_fake","output_index":0,"content_index":0,"text":"Running tests."`)
	ev("response.completed", `"response":`+responseObjectJSON("completed"))
}
