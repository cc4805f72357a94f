package fakemodel

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

var (
	u1 = Usage{InputTokens: 1234, CacheReadInputTokens: 100, CacheCreationInputTokens: 50, OutputTokens: 56}
	u2 = Usage{InputTokens: 1500, CacheReadInputTokens: 1200, CacheCreationInputTokens: 70, OutputTokens: 21}
)

func start(t *testing.T, script ...Turn) (*Server, *[]string) {
	t.Helper()
	s := New(script...)
	var mu sync.Mutex
	var logged []string
	s.Logf = func(format string, args ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &logged
}

// bashTools is the tool list as Claude Code's agent loop offers it (cut
// down: the server looks only at the names).
var bashTools = []map[string]any{{"name": "Bash"}, {"name": "Read"}, {"name": "Edit"}}

func firstRequest(stream bool) map[string]any {
	return map[string]any{
		"model":      "claude-test-1",
		"max_tokens": 32000,
		"stream":     stream,
		"system":     []map[string]any{{"type": "text", "text": "You are Claude Code."}},
		"tools":      bashTools,
		"messages": []map[string]any{
			{"role": "user", "content": "write hello to note.txt"},
		},
	}
}

func secondRequest(stream bool, toolUseID string) map[string]any {
	r := firstRequest(stream)
	r["messages"] = []map[string]any{
		{"role": "user", "content": []map[string]any{{"type": "text", "text": "write hello to note.txt"}}},
		{"role": "assistant", "content": []map[string]any{{"type": "tool_use", "id": toolUseID, "name": "Bash", "input": map[string]any{"command": "printf hello > note.txt"}}}},
		{"role": "user", "content": []map[string]any{{
			"type": "tool_result", "tool_use_id": toolUseID,
			"content": []map[string]any{{"type": "text", "text": "(no output)"}},
		}}},
	}
	return r
}

func post(t *testing.T, s *Server, path string, body any) *http.Response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", "sk-ant-test-secret")
	req.Header.Set("Authorization", "Bearer sk-ant-test-secret")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("anthropic-beta", "claude-code-20250219")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sseEvent is one server-sent event with its decoded data.
type sseEvent struct {
	Name string
	Data map[string]any
}

// readSSE parses a stream strictly: every event is an "event:" line, one
// "data:" line of JSON whose type equals the event name, and a blank line.
func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	sc := bufio.NewScanner(r)
	var events []sseEvent
	for sc.Scan() {
		line := sc.Text()
		name, ok := strings.CutPrefix(line, "event: ")
		if !ok {
			t.Fatalf("expected an event: line, got %q", line)
		}
		if !sc.Scan() {
			t.Fatalf("event %s: stream ended before its data line", name)
		}
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			t.Fatalf("event %s: expected a data: line, got %q", name, sc.Text())
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			t.Fatalf("event %s: data is not JSON: %v", name, err)
		}
		if d["type"] != name {
			t.Fatalf("event %s carries data of type %v", name, d["type"])
		}
		if !sc.Scan() || sc.Text() != "" {
			t.Fatalf("event %s: not terminated by a blank line", name)
		}
		events = append(events, sseEvent{name, d})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

// message is a streamed reply put back together the way a client does.
type message struct {
	Events     []string
	Model      string
	StopReason string
	Text       string
	ToolName   string
	ToolID     string
	ToolInput  map[string]any
	StartUsage map[string]any
	FinalUsage map[string]any
}

func assemble(t *testing.T, events []sseEvent) message {
	t.Helper()
	var m message
	partial := map[int]*strings.Builder{}
	for _, e := range events {
		m.Events = append(m.Events, e.Name)
		switch e.Name {
		case "message_start":
			msg := e.Data["message"].(map[string]any)
			m.Model = msg["model"].(string)
			m.StartUsage = msg["usage"].(map[string]any)
		case "content_block_start":
			cb := e.Data["content_block"].(map[string]any)
			if cb["type"] == "tool_use" {
				m.ToolName, m.ToolID = cb["name"].(string), cb["id"].(string)
			}
			partial[int(e.Data["index"].(float64))] = &strings.Builder{}
		case "content_block_delta":
			d := e.Data["delta"].(map[string]any)
			b := partial[int(e.Data["index"].(float64))]
			if b == nil {
				t.Fatalf("delta for a block that was not started: %v", e.Data)
			}
			switch d["type"] {
			case "text_delta":
				m.Text += d["text"].(string)
			case "input_json_delta":
				b.WriteString(d["partial_json"].(string))
			default:
				t.Fatalf("unknown delta type %v", d["type"])
			}
		case "content_block_stop":
			b := partial[int(e.Data["index"].(float64))]
			if m.ToolName != "" && b.Len() > 0 {
				if err := json.Unmarshal([]byte(b.String()), &m.ToolInput); err != nil {
					t.Fatalf("tool input %q is not JSON: %v", b.String(), err)
				}
			}
		case "message_delta":
			m.StopReason = e.Data["delta"].(map[string]any)["stop_reason"].(string)
			m.FinalUsage = e.Data["usage"].(map[string]any)
		}
	}
	return m
}

func usageOf(u map[string]any) Usage {
	n := func(k string) int { f, _ := u[k].(float64); return int(f) }
	return Usage{
		InputTokens:              n("input_tokens"),
		CacheReadInputTokens:     n("cache_read_input_tokens"),
		CacheCreationInputTokens: n("cache_creation_input_tokens"),
		OutputTokens:             n("output_tokens"),
	}
}

func TestStreamingConversation(t *testing.T) {
	s, _ := start(t, BashTurn("printf hello > note.txt", u1), TextTurn("Done: note.txt holds hello.", u2))

	resp := post(t, s, "/v1/messages", firstRequest(true))
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q, want text/event-stream", ct)
	}
	m1 := assemble(t, readSSE(t, resp.Body))
	wantEvents := []string{"message_start", "ping", "content_block_start",
		"content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta",
		"content_block_stop", "message_delta", "message_stop"}
	if strings.Join(m1.Events, ",") != strings.Join(wantEvents, ",") {
		t.Errorf("events = %v, want %v", m1.Events, wantEvents)
	}
	if m1.Model != "claude-test-1" || m1.StopReason != "tool_use" || m1.ToolName != "Bash" {
		t.Errorf("turn 1: model %q stop %q tool %q, want claude-test-1 tool_use Bash", m1.Model, m1.StopReason, m1.ToolName)
	}
	if m1.ToolInput["command"] != "printf hello > note.txt" {
		t.Errorf("tool input = %v, want the scripted command", m1.ToolInput)
	}
	// message_start carries input and cache counts; output is only final
	// in message_delta, whose usage is cumulative (the full counts again).
	if got, want := usageOf(m1.StartUsage), (Usage{1234, 100, 50, 1}); got != want {
		t.Errorf("message_start usage = %+v, want %+v", got, want)
	}
	if got := usageOf(m1.FinalUsage); got != u1 {
		t.Errorf("message_delta usage = %+v, want %+v", got, u1)
	}

	resp = post(t, s, "/v1/messages", secondRequest(true, m1.ToolID))
	m2 := assemble(t, readSSE(t, resp.Body))
	if m2.Text != "Done: note.txt holds hello." || m2.StopReason != "end_turn" || m2.ToolName != "" {
		t.Errorf("turn 2: text %q stop %q tool %q", m2.Text, m2.StopReason, m2.ToolName)
	}
	if got := usageOf(m2.FinalUsage); got != u2 {
		t.Errorf("turn 2 usage = %+v, want %+v", got, u2)
	}

	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("recorded %d requests, want 2", len(reqs))
	}
	if reqs[0].Turn != 0 || reqs[1].Turn != 1 || !reqs[0].Stream || reqs[0].Model != "claude-test-1" {
		t.Errorf("recorded %+v", reqs)
	}
	want := []ToolResult{{ToolUseID: m1.ToolID, Content: "(no output)"}}
	if fmt.Sprint(reqs[1].ToolResults) != fmt.Sprint(want) {
		t.Errorf("tool results = %+v, want %+v", reqs[1].ToolResults, want)
	}
	for _, r := range reqs {
		if r.Header.Get("X-Api-Key") != "" || r.Header.Get("Authorization") != "" || !r.HasAPIKey {
			t.Errorf("API key kept in recorded headers, or its presence not noted: %v %v", r.Header, r.HasAPIKey)
		}
		if r.Header.Get("Anthropic-Beta") != "claude-code-20250219" {
			t.Errorf("anthropic-beta not recorded: %v", r.Header)
		}
	}
}

func TestNonStreaming(t *testing.T) {
	s, _ := start(t, BashTurn("ls", u1))
	resp := post(t, s, "/v1/messages", firstRequest(false))
	var msg struct {
		Type       string `json:"type"`
		Role       string `json:"role"`
		Model      string `json:"model"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type  string         `json:"type"`
			Name  string         `json:"name"`
			ID    string         `json:"id"`
			Input map[string]any `json:"input"`
		} `json:"content"`
		Usage map[string]any `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if msg.Type != "message" || msg.Role != "assistant" || msg.StopReason != "tool_use" || len(msg.Content) != 1 {
		t.Fatalf("reply = %+v", msg)
	}
	if c := msg.Content[0]; c.Type != "tool_use" || c.Name != "Bash" || c.Input["command"] != "ls" || c.ID == "" {
		t.Errorf("tool_use block = %+v", c)
	}
	if got := usageOf(msg.Usage); got != u1 {
		t.Errorf("usage = %+v, want %+v", got, u1)
	}
}

// TestToolTurn: any tool, with its input, streamed and not.
func TestToolTurn(t *testing.T) {
	in := map[string]any{"file_path": "/w/a.go", "old_string": "a", "new_string": "b"}
	for _, stream := range []bool{false, true} {
		s, _ := start(t, ToolTurn("Edit", in, u1), ToolTurn("mcp__notes__add_note", nil, u2))
		resp := post(t, s, "/v1/messages", firstRequest(stream))
		body, _ := io.ReadAll(resp.Body)
		if !stream {
			var msg struct {
				StopReason string `json:"stop_reason"`
				Content    []struct {
					Type, Name string
					Input      map[string]any
				} `json:"content"`
			}
			if err := json.Unmarshal(body, &msg); err != nil {
				t.Fatal(err)
			}
			if c := msg.Content; msg.StopReason != "tool_use" || len(c) != 1 || c[0].Name != "Edit" || c[0].Input["file_path"] != "/w/a.go" || c[0].Input["new_string"] != "b" {
				t.Errorf("reply %s", body)
			}
			continue
		}
		for _, want := range []string{`"name":"Edit"`, `file_path`, `"stop_reason":"tool_use"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("stream lacks %s: %s", want, body)
			}
		}
	}
}

// Side requests must not consume the script, and a retried request gets
// the same turn again.
func TestSideRequestsAndRetries(t *testing.T) {
	s, _ := start(t, BashTurn("true", u1), TextTurn("done", u2))

	probe := firstRequest(false)
	probe["max_tokens"] = 1 // quota probe, even with tools offered
	title := firstRequest(true)
	delete(title, "tools") // title / topic generation: no tools
	title["max_tokens"] = 512

	tests := []struct {
		name     string
		body     map[string]any
		wantTurn int
	}{
		{"quota probe", probe, -1},
		{"title", title, -1},
		{"first turn", firstRequest(true), 0},
		{"retry of first turn", firstRequest(true), 0},
		{"second turn", secondRequest(true, "toolu_x"), 1},
	}
	for _, tt := range tests {
		resp := post(t, s, "/v1/messages", tt.body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", tt.name, resp.StatusCode)
		}
		io.Copy(io.Discard, resp.Body)
	}
	reqs := s.Requests()
	for i, tt := range tests {
		if reqs[i].Turn != tt.wantTurn {
			t.Errorf("%s: turn %d, want %d", tt.name, reqs[i].Turn, tt.wantTurn)
		}
	}

	// The side reply is usable text with its own usage.
	resp := post(t, s, "/v1/messages", title)
	m := assemble(t, readSSE(t, resp.Body))
	if m.Text == "" || m.StopReason != "end_turn" || usageOf(m.FinalUsage) != SideUsage {
		t.Errorf("side reply = %+v", m)
	}

	// Past the end of the script: a text reply, flagged.
	third := secondRequest(true, "toolu_x")
	third["messages"] = append(third["messages"].([]map[string]any),
		map[string]any{"role": "assistant", "content": "done"},
		map[string]any{"role": "user", "content": "more"})
	resp = post(t, s, "/v1/messages", third)
	io.Copy(io.Discard, resp.Body)
	last := s.Requests()[len(s.Requests())-1]
	if !last.Exhausted || last.Turn != -1 {
		t.Errorf("request past the script: %+v, want Exhausted", last)
	}
}

func TestOtherEndpoints(t *testing.T) {
	s, logged := start(t)
	tests := []struct {
		method, path string
		body         string
		wantStatus   int
		wantBody     string // substring
	}{
		{"HEAD", "/api/hello", "", 200, ""},
		{"GET", "/api/hello", "", 200, "hello"},
		{"POST", "/v1/messages/count_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 200, `"input_tokens":17`},
		{"GET", "/api/oauth/profile", "", 404, "not_found_error"},
		{"POST", "/v1/messages", `{not json`, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, s.URL()+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, resp.StatusCode, b, tt.wantStatus, tt.wantBody)
		}
	}
	if len(*logged) != 1 || !strings.Contains((*logged)[0], "/api/oauth/profile") {
		t.Errorf("logged %q, want only the unknown path", *logged)
	}
	if n := len(s.Requests()); n != len(tests) {
		t.Errorf("recorded %d requests, want %d", n, len(tests))
	}
}

func TestListensOnLoopbackOnly(t *testing.T) {
	s, _ := start(t)
	if !s.Addr().IP.IsLoopback() || s.Addr().Port == 0 {
		t.Errorf("listening on %v", s.Addr())
	}
}
