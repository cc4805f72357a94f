// Package fakemodel is a scripted model provider speaking the Anthropic
// Messages API the way Claude Code uses it (POST /v1/messages with and
// without streaming, /v1/messages/count_tokens, /api/hello), so the
// end-to-end tests can run the real Claude Code CLI with no real model
// provider. It is the one mock the project allows.
//
// It owns the wire format only: it records what it received and answers
// from a script. It must not be used outside tests, never listens on
// anything but loopback, and never stores API keys.
package fakemodel

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Usage is the token accounting one reply reports. The script gives each
// turn distinctive numbers so tests downstream can assert exactly what an
// LLM proxy or span recorded.
type Usage struct {
	InputTokens              int
	CacheReadInputTokens     int
	CacheCreationInputTokens int
	OutputTokens             int
}

// Turn is one scripted assistant reply to the main conversation: a tool
// call (Bash, or Tool with its Input) or a final text answer.
type Turn struct {
	Text  string // text block; with a tool call it precedes it
	Bash  string // command for a tool_use of Claude Code's Bash tool
	Usage Usage
	// Tool names any other tool to call (Read, Edit, mcp__server__tool),
	// with Input as its arguments; ignored when Bash is set.
	Tool  string
	Input map[string]any
}

// BashTurn asks the client to run command with its Bash tool.
func BashTurn(command string, u Usage) Turn { return Turn{Bash: command, Usage: u} }

// ToolTurn asks the client to call the tool name with input (Claude
// Code's Read: {"file_path": …}; Edit: file_path, old_string, new_string;
// an MCP tool: mcp__<server>__<tool>).
func ToolTurn(name string, input map[string]any, u Usage) Turn {
	return Turn{Tool: name, Input: input, Usage: u}
}

// TextTurn ends the conversation with text.
func TextTurn(text string, u Usage) Turn { return Turn{Text: text, Usage: u} }

// SideUsage is what replies outside the script (title generation, quota
// probes, count_tokens) report, distinct from any scripted turn.
var SideUsage = Usage{InputTokens: 17, OutputTokens: 3}

// ToolResult is a tool_result block the client sent back.
type ToolResult struct {
	ToolUseID string
	Content   string // text of the result, blocks joined
	IsError   bool
}

// Request is what the server received. The API key headers (x-api-key,
// Authorization) are removed before it is kept.
type Request struct {
	Method      string
	Path        string // URL path, without the query
	Query       string
	Header      http.Header
	HasAPIKey   bool // an x-api-key or Authorization header was sent (its value is not kept)
	Model       string
	Stream      bool
	MaxTokens   int
	Tools       []string // names of the tools offered
	ToolResults []ToolResult
	// Turn is the index of the scripted turn this request was answered
	// with, or -1 when it was not part of the main conversation (or the
	// script was exhausted, see Exhausted).
	Turn      int
	Exhausted bool
	Status    int // HTTP status answered
}

// Server is a scripted Anthropic Messages API on 127.0.0.1.
type Server struct {
	script []Turn
	// Logf reports requests the server does not know (and nothing else);
	// nil means the standard logger. Set before Start.
	Logf func(format string, args ...any)

	mu       sync.Mutex
	requests []Request
	nextID   int

	ln  net.Listener
	srv *http.Server
}

// New returns a server that answers the main conversation with script, in
// order. It does not listen until Start.
func New(script ...Turn) *Server {
	return &Server{script: script}
}

// Start listens on 127.0.0.1 on a free port and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening on loopback: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return nil
}

// URL is the base URL to give the client (ANTHROPIC_BASE_URL).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Addr is the listening address (127.0.0.1:port).
func (s *Server) Addr() *net.TCPAddr { return s.ln.Addr().(*net.TCPAddr) }

// Requests returns a copy of everything received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Close stops the server and drops open connections.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
}

func (s *Server) id(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return fmt.Sprintf("%s_fake%04d", prefix, s.nextID)
}

func keptHeaders(h http.Header) http.Header {
	out := h.Clone()
	out.Del("X-Api-Key")
	out.Del("Authorization")
	return out
}

// ServeHTTP routes the few endpoints Claude Code calls.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.RawQuery,
		Header:    keptHeaders(r.Header),
		HasAPIKey: r.Header.Get("X-Api-Key") != "" || r.Header.Get("Authorization") != "",
		Turn:      -1,
	}
	switch {
	case r.URL.Path == "/v1/messages" && r.Method == http.MethodPost:
		s.messages(w, r, &rec)
	case r.URL.Path == "/v1/messages/count_tokens" && r.Method == http.MethodPost:
		s.countTokens(w, r, &rec)
	case r.URL.Path == "/api/hello" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		// Claude Code's connectivity check: any 200 will do.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		rec.Status = http.StatusOK
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"message":"hello"}`)
		}
	default:
		// Everything else (OAuth profile, feature flags, …) is not part of
		// the API-key flow; a 404 in Anthropic's error shape is harmless.
		s.logf("fakemodel: unknown request %s %s", r.Method, r.URL.RequestURI())
		rec.Status = http.StatusNotFound
		writeError(w, http.StatusNotFound, "not_found_error", "fakemodel: no such endpoint")
	}
	s.record(rec)
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type":  "error",
		"error": map[string]string{"type": typ, "message": msg},
	})
}

// messagesRequest is the part of a Messages API request the server reads.
type messagesRequest struct {
	Model     string          `json:"model"`
	MaxTokens int             `json:"max_tokens"`
	Stream    bool            `json:"stream"`
	System    json.RawMessage `json:"system"`
	Tools     []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

type contentBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, rec *Request) (*messagesRequest, bool) {
	var req messagesRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		rec.Status = http.StatusBadRequest
		writeError(w, http.StatusBadRequest, "invalid_request_error", "fakemodel: decoding body: "+err.Error())
		return nil, false
	}
	rec.Model = req.Model
	rec.Stream = req.Stream
	rec.MaxTokens = req.MaxTokens
	for _, t := range req.Tools {
		rec.Tools = append(rec.Tools, t.Name)
	}
	for _, m := range req.Messages {
		rec.ToolResults = append(rec.ToolResults, toolResults(m.Content)...)
	}
	return &req, true
}

func toolResults(content json.RawMessage) []ToolResult {
	var blocks []contentBlock
	if json.Unmarshal(content, &blocks) != nil {
		return nil // a plain string: no tool results
	}
	var out []ToolResult
	for _, b := range blocks {
		if b.Type != "tool_result" {
			continue
		}
		tr := ToolResult{ToolUseID: b.ToolUseID, IsError: b.IsError}
		var text string
		var parts []contentBlock
		switch {
		case json.Unmarshal(b.Content, &text) == nil:
			tr.Content = text
		case json.Unmarshal(b.Content, &parts) == nil:
			var texts []string
			for _, p := range parts {
				if p.Type == "text" {
					texts = append(texts, p.Text)
				}
			}
			tr.Content = strings.Join(texts, "\n")
		}
		out = append(out, tr)
	}
	return out
}

// isMain tells the scripted conversation from Claude Code's side requests.
// Only the agent loop offers the Bash tool; title generation, topic
// detection and quota probes (max_tokens 1) offer no tools.
func isMain(req *messagesRequest) bool {
	if req.MaxTokens <= 1 {
		return false
	}
	for _, t := range req.Tools {
		if t.Name == "Bash" {
			return true
		}
	}
	return false
}

// turnIndex derives the turn from the conversation itself rather than from
// a counter, so a client retry of a request gets the same answer again
// instead of skipping ahead: each scripted turn adds one assistant message.
func turnIndex(req *messagesRequest) int {
	n := 0
	for _, m := range req.Messages {
		if m.Role == "assistant" {
			n++
		}
	}
	return n
}

func (s *Server) countTokens(w http.ResponseWriter, r *http.Request, rec *Request) {
	if _, ok := s.decode(w, r, rec); !ok {
		return
	}
	rec.Status = http.StatusOK
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"input_tokens": SideUsage.InputTokens})
}

// reply is one assistant message, built before it is written in either
// wire form.
type reply struct {
	id         string
	model      string
	blocks     []map[string]any // complete content blocks
	stopReason string
	usage      Usage
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, rec *Request) {
	req, ok := s.decode(w, r, rec)
	if !ok {
		return
	}
	rp := reply{id: s.id("msg"), model: req.Model, stopReason: "end_turn", usage: SideUsage}
	if isMain(req) {
		i := turnIndex(req)
		if i < len(s.script) {
			rec.Turn = i
			t := s.script[i]
			rp.usage = t.Usage
			if t.Text != "" {
				rp.blocks = append(rp.blocks, map[string]any{"type": "text", "text": t.Text})
			}
			switch {
			case t.Bash != "":
				rp.blocks = append(rp.blocks, map[string]any{
					"type":  "tool_use",
					"id":    s.id("toolu"),
					"name":  "Bash",
					"input": map[string]any{"command": t.Bash, "description": "Run the scripted command"},
				})
				rp.stopReason = "tool_use"
			case t.Tool != "":
				input := t.Input
				if input == nil {
					input = map[string]any{}
				}
				rp.blocks = append(rp.blocks, map[string]any{"type": "tool_use", "id": s.id("toolu"), "name": t.Tool, "input": input})
				rp.stopReason = "tool_use"
			}
		} else {
			rec.Exhausted = true
			rp.blocks = append(rp.blocks, map[string]any{"type": "text", "text": "fakemodel: script exhausted"})
		}
	} else {
		text := "OK"
		if req.MaxTokens > 1 {
			text = "Scripted session"
		}
		rp.blocks = append(rp.blocks, map[string]any{"type": "text", "text": text})
	}
	rec.Status = http.StatusOK
	w.Header().Set("request-id", s.id("req"))
	if req.Stream {
		writeStream(w, rp)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id":            rp.id,
		"type":          "message",
		"role":          "assistant",
		"model":         rp.model,
		"content":       rp.blocks,
		"stop_reason":   rp.stopReason,
		"stop_sequence": nil,
		"usage":         usageJSON(rp.usage, rp.usage.OutputTokens),
	})
}

func usageJSON(u Usage, output int) map[string]int {
	return map[string]int{
		"input_tokens":                u.InputTokens,
		"cache_creation_input_tokens": u.CacheCreationInputTokens,
		"cache_read_input_tokens":     u.CacheReadInputTokens,
		"output_tokens":               output,
	}
}

// writeStream writes rp as Anthropic's server-sent events: message_start
// (input and cache counts, output 1 as the API reports it before
// generation), a ping, each block as start/delta…/stop, message_delta with
// the stop reason and cumulative usage, message_stop. Deltas are split in
// several events so clients must accumulate them.
func writeStream(w http.ResponseWriter, rp reply) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(event string, data any) {
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	send("message_start", map[string]any{
		"type": "message_start",
		"message": map[string]any{
			"id":            rp.id,
			"type":          "message",
			"role":          "assistant",
			"model":         rp.model,
			"content":       []any{},
			"stop_reason":   nil,
			"stop_sequence": nil,
			"usage":         usageJSON(rp.usage, 1),
		},
	})
	send("ping", map[string]string{"type": "ping"})
	for i, b := range rp.blocks {
		switch b["type"] {
		case "text":
			send("content_block_start", map[string]any{
				"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "text", "text": ""},
			})
			for _, part := range split(b["text"].(string), 3) {
				send("content_block_delta", map[string]any{
					"type": "content_block_delta", "index": i,
					"delta": map[string]any{"type": "text_delta", "text": part},
				})
			}
		case "tool_use":
			send("content_block_start", map[string]any{
				"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "tool_use", "id": b["id"], "name": b["name"], "input": map[string]any{}},
			})
			input, _ := json.Marshal(b["input"])
			// The API opens a tool call with an empty partial_json.
			parts := append([]string{""}, split(string(input), 3)...)
			for _, part := range parts {
				send("content_block_delta", map[string]any{
					"type": "content_block_delta", "index": i,
					"delta": map[string]any{"type": "input_json_delta", "partial_json": part},
				})
			}
		}
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
	}
	send("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": rp.stopReason, "stop_sequence": nil},
		"usage": usageJSON(rp.usage, rp.usage.OutputTokens),
	})
	send("message_stop", map[string]string{"type": "message_stop"})
}

// split cuts s into at most n non-empty pieces on rune boundaries.
func split(s string, n int) []string {
	r := []rune(s)
	if len(r) == 0 {
		return []string{""}
	}
	size := (len(r) + n - 1) / n
	var out []string
	for len(r) > 0 {
		k := min(size, len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}
