package llm

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
)

// TestToolCallDigests: in metadata mode (no arguments kept) every tool call
// still carries the digest of its arguments as canonical JSON — the same
// for a streamed call (input_json_delta pieces) and a JSON one whose keys
// come in another order with other spacing — the digest of the command a
// shell tool was asked to run, and the file path it names.
func TestToolCallDigests(t *testing.T) {
	const (
		cmd  = `printf 'it''s' > "a b.txt"`
		path = "/work/app/main.go"
	)
	bash := fmt.Sprintf(`{"command":%q,"description":"Write it"}`, cmd)
	bashShuffled := fmt.Sprintf(`{ "description" : "Write it",  "command" : %q }`, "  "+cmd+"\n")
	edit := fmt.Sprintf(`{"file_path":%q,"old_string":"a <b>","new_string":"c & d"}`, path)
	codex := `{"command":["bash","-lc","go test ./..."],"workdir":"/w"}`

	stream := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(name, data string) { fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data) }
		ev("message_start", `{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-4-5","usage":{"input_tokens":5,"output_tokens":1}}}`)
		for i, tc := range []struct{ id, name, args string }{{"toolu_1", "Bash", bash}, {"toolu_2", "Edit", edit}, {"toolu_3", "TodoWrite", ""}} {
			ev("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":%q,"name":%q,"input":{}}}`, i, tc.id, tc.name))
			for _, part := range []string{"", tc.args[:len(tc.args)/2], tc.args[len(tc.args)/2:]} {
				ev("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%q}}`, i, part))
			}
			ev("content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i))
		}
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}`)
		ev("message_stop", `{"type":"message_stop"}`)
	}
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/chat/completions"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"c1","model":"gpt-5","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"shell","arguments":%q}}]}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`, codex)
		case r.URL.Query().Get("json") == "1":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"msg_2","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_9","name":"Bash","input":%s}],"stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":9}}`, bashShuffled)
		default:
			stream(w)
		}
	})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up, OpenAI: up + "/v1"}})
	body := `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`

	do(t, "POST", p.URL(Anthropic)+"/v1/messages", body, nil)
	streamed := calls.next(t)
	do(t, "POST", p.URL(Anthropic)+"/v1/messages?json=1", body, nil)
	plain := calls.next(t)
	do(t, "POST", p.URL(OpenAI)+"/chat/completions", `{"model":"gpt-5","messages":[{"role":"user","content":"hi"}]}`, nil)
	chat := calls.next(t)

	if len(streamed.ToolCalls) != 3 || len(plain.ToolCalls) != 1 || len(chat.ToolCalls) != 1 {
		t.Fatalf("tool calls: %+v / %+v / %+v", streamed.ToolCalls, plain.ToolCalls, chat.ToolCalls)
	}
	b, e, todo := streamed.ToolCalls[0], streamed.ToolCalls[1], streamed.ToolCalls[2]
	for _, tc := range []event.ToolCall{b, e, todo, plain.ToolCalls[0], chat.ToolCalls[0]} {
		if tc.Arguments != "" {
			t.Errorf("%s: arguments kept in metadata mode: %q", tc.Name, tc.Arguments)
		}
		if len(tc.ArgumentsSHA256) != 64 {
			t.Errorf("%s: no arguments digest: %+v", tc.Name, tc)
		}
	}
	// Canonical: sorted keys, no spaces, no HTML escaping.
	if want := hexSHA(fmt.Sprintf(`{"command":%q,"description":"Write it"}`, cmd)); b.ArgumentsSHA256 != want {
		t.Errorf("Bash arguments digest %s, want %s", b.ArgumentsSHA256, want)
	}
	if want := hexSHA(fmt.Sprintf(`{"file_path":%q,"new_string":"c & d","old_string":"a <b>"}`, path)); e.ArgumentsSHA256 != want {
		t.Errorf("Edit arguments digest %s, want %s", e.ArgumentsSHA256, want)
	}
	if want := hexSHA("{}"); todo.ArgumentsSHA256 != want {
		t.Errorf("a call without arguments: digest %s, want that of {}", todo.ArgumentsSHA256)
	}
	// The command, trimmed, whatever the JSON around it.
	if want := hexSHA(cmd); b.CommandSHA256 != want || plain.ToolCalls[0].CommandSHA256 != want {
		t.Errorf("command digests %s, %s, want %s", b.CommandSHA256, plain.ToolCalls[0].CommandSHA256, want)
	}
	if plain.ToolCalls[0].ArgumentsSHA256 == b.ArgumentsSHA256 {
		t.Error("arguments that differ (the command's spaces) have one digest")
	}
	if want := hexSHA("bash\x00-lc\x00go test ./..."); chat.ToolCalls[0].CommandSHA256 != want {
		t.Errorf("an argv command: digest %s, want %s", chat.ToolCalls[0].CommandSHA256, want)
	}
	if e.FilePath != path || e.CommandSHA256 != "" || b.FilePath != "" {
		t.Errorf("file paths: Edit %q (command %q), Bash %q", e.FilePath, e.CommandSHA256, b.FilePath)
	}
}

// TestToolCallDigestsFullCapture: the digests do not change with the
// capture tier, which adds the arguments themselves.
func TestToolCallDigestsFullCapture(t *testing.T) {
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"m","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/w/a.go"}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}`)
	})
	for _, full := range []bool{false, true} {
		p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}, Capture: Capture{Full: full, Limit: 1000}})
		do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, nil)
		tc := calls.next(t).ToolCalls[0]
		if tc.ArgumentsSHA256 != hexSHA(`{"file_path":"/w/a.go"}`) || tc.FilePath != "/w/a.go" || (tc.Arguments != "") != full {
			t.Errorf("full=%v: %+v", full, tc)
		}
	}
}

// TestToolCallDigestsBounded: arguments past event.MaxToolArguments get no
// digests (the proxy does not hold them whole), and metering goes on.
func TestToolCallDigestsBounded(t *testing.T) {
	big := strings.Repeat("x", event.MaxToolArguments)
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"m","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"t1","name":"Write","input":{"file_path":"/w/a","content":%q}},{"type":"tool_use","id":"t2","name":"Read","input":{"file_path":"/w/b"}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}`, big)
	})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}})
	do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, nil)
	c := calls.next(t)
	if len(c.ToolCalls) != 2 || !c.UsageKnown {
		t.Fatalf("call: %+v", c)
	}
	if tc := c.ToolCalls[0]; tc.ArgumentsSHA256 != "" || tc.FilePath != "" {
		t.Errorf("oversized arguments digested: %+v", tc)
	}
	if tc := c.ToolCalls[1]; tc.FilePath != "/w/b" || tc.ArgumentsSHA256 == "" {
		t.Errorf("the next call lost its digests: %+v", tc)
	}
}
