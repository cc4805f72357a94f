package llm

import (
	"bytes"
	"cmp"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/event"
)

// API names recorded in event.LLMCall.API. Only the model APIs carry usage.
const (
	apiMessages        = "messages"
	apiCountTokens     = "count_tokens"
	apiChatCompletions = "chat.completions"
	apiResponses       = "responses"
	apiModels          = "models"
	apiEmbeddings      = "embeddings"
	apiHello           = "hello"
	apiOther           = "other"
)

// apiOf names the API a request is for, from the upstream path (base path
// included, so a gateway prefix does not matter).
func apiOf(provider, path string) string {
	p := strings.TrimSuffix(path, "/")
	switch {
	case strings.HasSuffix(p, "/messages/count_tokens"):
		return apiCountTokens
	case strings.HasSuffix(p, "/messages"):
		return apiMessages
	case strings.HasSuffix(p, "/chat/completions"):
		return apiChatCompletions
	case strings.HasSuffix(p, "/responses"):
		return apiResponses
	case strings.HasSuffix(p, "/embeddings"):
		return apiEmbeddings
	case strings.HasSuffix(p, "/models") || strings.Contains(p, "/models/"):
		return apiModels
	case strings.HasSuffix(p, "/api/hello"):
		return apiHello
	}
	return apiOther
}

// isModelAPI: an API whose response carries token usage.
func isModelAPI(api string) bool {
	return api == apiMessages || api == apiChatCompletions || api == apiResponses
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// meter accumulates what one request and its response say into an
// event.LLMCall. It only ever reads copies of the bytes the proxy forwards;
// nothing it does changes what the client receives.
type meter struct {
	call    *event.LLMCall
	capture Capture
	max     int

	// response side
	stream     bool
	sse        *sseParser
	decoder    *streamDecoder // a compressed stream, decoded on the side
	body       bytes.Buffer   // a JSON response, up to max
	bodyOver   bool
	encoding   string // Content-Encoding of the response
	done       bool   // the stream reached its terminal event
	malformed  bool
	streamErr  string // error type carried inside a 200 stream
	refused    bool   // an OpenAI refusal (message.refusal, a refusal content part)
	text       strings.Builder
	toolByIdx  map[int]int // Anthropic/OpenAI stream index → index in call.ToolCalls
	argsByTool map[int]*toolArgs
	usage      anthropicUsage
}

// --- requests ---

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// contentText reads a string or an array of text blocks.
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []textBlock
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var parts []string
	for _, b := range blocks {
		if b.Text != "" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

type requestBody struct {
	Model         string          `json:"model"`
	Stream        bool            `json:"stream"`
	MaxTokens     int64           `json:"max_tokens"`            // anthropic, openai chat (older)
	MaxCompletion int64           `json:"max_completion_tokens"` // openai chat
	MaxOutput     int64           `json:"max_output_tokens"`     // openai responses
	System        json.RawMessage `json:"system"`                // anthropic
	Instructions  json.RawMessage `json:"instructions"`          // openai responses
	Messages      json.RawMessage `json:"messages"`
	Input         json.RawMessage `json:"input"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	// Each tool and parameter is read on its own (tool, number), so that
	// one of an unexpected shape loses only itself, not the request's
	// metering.
	Tools []json.RawMessage `json:"tools"`
	// Sampling parameters: temperature and top_p everywhere, top_k
	// (Anthropic), seed (OpenAI chat); stop sequences are content.
	Temperature   json.RawMessage `json:"temperature"`
	TopP          json.RawMessage `json:"top_p"`
	TopK          json.RawMessage `json:"top_k"`
	Seed          json.RawMessage `json:"seed"`
	StopSequences json.RawMessage `json:"stop_sequences"` // anthropic: array of strings
	Stop          json.RawMessage `json:"stop"`           // openai chat: a string or an array of strings
}

// tool is one entry of a request's tools: Anthropic {name, input_schema}
// (a built-in: {type, name}), OpenAI Chat {type: function, function:
// {name, parameters}}, Responses {type: function, name, parameters} (a
// built-in: {type}).
type tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	InputSchema json.RawMessage `json:"input_schema"`
	Parameters  json.RawMessage `json:"parameters"`
	Function    *struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// name is what ToolsOffered lists: the tool's name, or a built-in's type.
func (t *tool) name() string {
	switch {
	case t.Function != nil && t.Function.Name != "":
		return t.Function.Name
	case t.Name != "":
		return t.Name
	}
	return t.Type // a built-in tool (web_search, ...)
}

// canonical is the tool's definition as the template digest sees it: its
// type, name and input schema, as JSON with sorted keys and numbers as
// written. The description and cache-control markers are left out.
func (t *tool) canonical() string {
	schema := cmp.Or(string(t.InputSchema), string(t.Parameters))
	if t.Function != nil && schema == "" {
		schema = string(t.Function.Parameters)
	}
	name := t.Name
	if t.Function != nil && t.Function.Name != "" {
		name = t.Function.Name
	}
	b, _ := json.Marshal(struct {
		Type   string `json:"type,omitempty"`
		Name   string `json:"name,omitempty"`
		Schema any    `json:"schema,omitempty"`
	}{t.Type, name, canonicalJSON(schema)})
	return string(b)
}

// canonicalJSON decodes a JSON text so that marshalling it again sorts
// object keys (numbers stay as written); nil for none or invalid JSON.
func canonicalJSON(s string) any {
	if s == "" || s == "null" {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

// toolsDigest is ToolsSHA256: the sha256 of the canonical definitions,
// sorted, as a JSON array (the order tools are offered in does not count);
// defs is that array ("[]" for no tools).
func toolsDigest(tools []tool) (digest, defs string) {
	if len(tools) == 0 {
		return "", "[]"
	}
	c := make([]string, len(tools))
	for i := range tools {
		c[i] = tools[i].canonical()
	}
	slices.Sort(c)
	defs = "[" + strings.Join(c, ",") + "]"
	return sha256Hex([]byte(defs)), defs
}

// templateDigest is TemplateSHA256: of the system prompt and the tool
// definitions together, {"system": …, "tools": […]}; "" when the request
// has neither.
func templateDigest(system, defs string) string {
	if system == "" && defs == "[]" {
		return ""
	}
	b, _ := json.Marshal(struct {
		System string          `json:"system"`
		Tools  json.RawMessage `json:"tools"`
	}{system, json.RawMessage(defs)})
	return sha256Hex(b)
}

// jsonFloat reads a JSON number.
func jsonFloat(raw json.RawMessage) (float64, bool) {
	var f float64
	if len(raw) == 0 || string(raw) == "null" || json.Unmarshal(raw, &f) != nil {
		return 0, false // absent, null or not a number
	}
	return f, true
}

// jsonInt reads a JSON integer (an integral number written as 40.0 too).
func jsonInt(raw json.RawMessage) (int64, bool) {
	if n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64); err == nil {
		return n, true
	}
	if f, ok := jsonFloat(raw); ok && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return int64(f), true
	}
	return 0, false
}

// maxStopSequences bounds LLMCall.StopSequences.
const maxStopSequences = 16

// stopSequences reads Anthropic's stop_sequences or OpenAI's stop (one
// string or several).
func stopSequences(req *requestBody) []string {
	var list []string
	for _, raw := range []json.RawMessage{req.StopSequences, req.Stop} {
		var one string
		var many []string
		switch {
		case len(raw) == 0:
		case json.Unmarshal(raw, &one) == nil:
			list = append(list, one)
		case json.Unmarshal(raw, &many) == nil:
			list = append(list, many...)
		}
	}
	return list
}

// contextItem is one message or input item of a request, as much as the
// tool-result extraction reads: Anthropic messages (role; their content
// blocks are read apart), OpenAI Chat messages (role tool, tool_call_id),
// Responses input items (type *_call_output, call_id).
type contextItem struct {
	Type       string          `json:"type"`
	Role       string          `json:"role"`
	ToolCallID string          `json:"tool_call_id"`
	CallID     string          `json:"call_id"`
	Content    json.RawMessage `json:"content"` // a Chat tool message's result
	Output     json.RawMessage `json:"output"`  // a Responses *_call_output's result
}

type toolResultBlock struct {
	Type      string          `json:"type"`
	ToolUseID string          `json:"tool_use_id"`
	IsError   bool            `json:"is_error"`
	Content   json.RawMessage `json:"content"`
}

// contentDigest is event.ToolResult.ContentSHA256 of a result's content:
// of the text when it is a JSON string, else of its compacted JSON; ""
// when there is none.
func contentDigest(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return sha256Hex([]byte(s))
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return sha256Hex(raw)
	}
	return sha256Hex(b.Bytes())
}

// isModelOutput: a conversation item the model produced (its message,
// reasoning, or a tool call of any kind).
func (it *contextItem) isModelOutput() bool {
	return it.Role == "assistant" || it.Type == "reasoning" || strings.HasSuffix(it.Type, "_call")
}

// arrayItems splits a JSON array into its elements without decoding
// them (raw is valid JSON: json.Unmarshal produced it); nil when raw is not
// an array. A history of megabytes is only scanned, never copied.
func arrayItems(raw []byte) [][]byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '[' {
		return nil
	}
	var items [][]byte
	depth, start := 0, -1
	for i := 1; i < len(raw); i++ {
		ch := raw[i]
		switch ch {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			if start < 0 {
				start = i
			}
			// Skip the string: to the next quote not escaped (preceded
			// by an even run of backslashes).
			for {
				j := bytes.IndexByte(raw[i+1:], '"')
				if j < 0 {
					return nil
				}
				i += 1 + j
				n := 0
				for k := i - 1; raw[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the array's own end
				if start >= 0 {
					items = append(items, bytes.TrimSpace(raw[start:i]))
				}
				return items
			}
			depth--
		case ',':
			if depth == 0 {
				items = append(items, bytes.TrimSpace(raw[start:i]))
				start = -1
				continue
			}
		}
		if start < 0 {
			start = i
		}
	}
	return nil // not terminated: not JSON
}

// toolResults reads the tool results that are new in this request: those
// after the model's last output in the conversation (an agent sends the
// whole history every turn; what follows the model's last message is what
// the client adds to it). A conversation continued server-side
// (previous_response_id) sends only new items: all of its results count.
// Only that tail is decoded: the request waits for its metering.
func (m *meter) toolResults(req *requestBody) {
	c := m.call
	raw := req.Messages
	if c.API == apiResponses {
		raw = req.Input
	}
	items := arrayItems(raw) // nil: absent, or a plain string input
	start := len(items)
	var list []contextItem
	for ; start > 0; start-- {
		var it contextItem
		if json.Unmarshal(items[start-1], &it) != nil {
			it = contextItem{}
		}
		if it.isModelOutput() {
			break
		}
		list = append(list, it)
	}
	slices.Reverse(list)
	items = items[start:]
	add := func(id string, isErr bool, content json.RawMessage) {
		c.ToolResultCount++
		if isErr {
			c.ToolErrorCount++
		}
		if len(c.ToolResults) < event.MaxToolResults {
			c.ToolResults = append(c.ToolResults, event.ToolResult{ToolCallID: id, IsError: isErr, ContentSHA256: contentDigest(content)})
		}
	}
	for i, it := range list {
		switch {
		case c.API == apiMessages && it.Role == "user":
			var msg struct {
				Content json.RawMessage `json:"content"`
			}
			if json.Unmarshal(items[i], &msg) != nil {
				continue
			}
			for _, raw := range arrayItems(msg.Content) { // none for a plain string
				var b toolResultBlock
				if json.Unmarshal(raw, &b) == nil && b.Type == "tool_result" {
					add(b.ToolUseID, b.IsError, b.Content)
				}
			}
		case c.API == apiChatCompletions && it.Role == "tool":
			add(it.ToolCallID, false, it.Content)
		case c.API == apiResponses && strings.HasSuffix(it.Type, "_call_output"):
			add(it.CallID, false, it.Output)
		}
	}
}

type roleMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// systemPrompt is the text the provider treats as the system prompt:
// Anthropic's "system" (a string, or its text blocks joined with "\n");
// OpenAI's system and developer messages (Chat) or "instructions" plus
// system/developer input items (Responses), joined with "\n". Cache-control
// markers and block boundaries do not change the fingerprint.
func systemPrompt(api string, req *requestBody) string {
	var parts []string
	if s := contentText(req.System); s != "" {
		parts = append(parts, s)
	}
	if s := contentText(req.Instructions); s != "" {
		parts = append(parts, s)
	}
	msgs := req.Messages
	if api == apiResponses {
		msgs = req.Input
	}
	var list []roleMessage
	if api != apiMessages && json.Unmarshal(msgs, &list) == nil {
		for _, m := range list {
			if m.Role == "system" || m.Role == "developer" {
				if s := contentText(m.Content); s != "" {
					parts = append(parts, s)
				}
			}
		}
	}
	return strings.Join(parts, "\n")
}

// request meters the request body. complete is false when the body was
// larger than the metering cap (the fields are then not read; the digest
// is still of the whole body, computed as it streams).
func (m *meter) request(body []byte, complete bool) {
	c := m.call
	c.RequestBytes = int64(len(body))
	if !complete || !isModelAPI(c.API) && c.API != apiCountTokens {
		return
	}
	var req requestBody
	if json.Unmarshal(body, &req) != nil {
		return // the upstream will say what is wrong with it
	}
	c.RequestModel = req.Model
	c.Stream = req.Stream
	c.MaxTokens = cmp.Or(req.MaxTokens, req.MaxCompletion, req.MaxOutput)
	c.Temperature, c.HasTemperature = jsonFloat(req.Temperature)
	c.TopP, c.HasTopP = jsonFloat(req.TopP)
	c.TopK, c.HasTopK = jsonInt(req.TopK)
	c.Seed, c.HasSeed = jsonInt(req.Seed)
	system := systemPrompt(c.API, &req)
	if system != "" {
		c.SystemPromptSHA256 = sha256Hex([]byte(system))
	}
	var tools []tool
	for _, raw := range req.Tools {
		var t tool
		if json.Unmarshal(raw, &t) != nil {
			continue
		}
		tools = append(tools, t)
		if n := t.name(); n != "" {
			c.ToolsOffered = append(c.ToolsOffered, n)
		}
	}
	var defs string
	c.ToolsSHA256, defs = toolsDigest(tools)
	c.TemplateSHA256 = templateDigest(system, defs)
	if c.API != apiCountTokens {
		m.toolResults(&req)
	}
	if m.capture.Full {
		for _, s := range stopSequences(&req) {
			if len(c.StopSequences) < maxStopSequences {
				c.StopSequences = append(c.StopSequences, m.bound(s))
			}
		}
		prompt := map[string]json.RawMessage{}
		for k, v := range map[string]json.RawMessage{
			"system": req.System, "instructions": req.Instructions,
			"messages": req.Messages, "input": req.Input,
		} {
			if len(v) > 0 && string(v) != "null" {
				prompt[k] = v
			}
		}
		b, _ := json.Marshal(prompt)
		c.Prompt = m.bound(string(b))
	}
}

// ContentMargin is how much text is kept past the capture limit, so that
// a secret straddling the limit is still whole when the recorder's
// redactor sees it (a PEM private key is a few KiB); the recorder cuts to
// the limit after redacting (event.LLMCall.ContentLimit).
const ContentMargin = 16 << 10

// bound keeps at most Limit+ContentMargin bytes of a captured text, never
// splitting a character. The proxy bounds content; it never redacts.
func (m *meter) bound(s string) string {
	m.call.ContentLimit = m.capture.Limit
	if n := m.capture.Limit + ContentMargin; len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// --- responses ---

// begin is called with the response headers. It decides how the body will
// be metered: incrementally as SSE (through a streaming decoder when the
// stream is gzip- or deflate-encoded), buffered (to a cap) as JSON, or not
// at all (a br- or zstd-encoded stream: the standard library has no
// decoder for them).
func (m *meter) begin(status int, contentType, encoding string) {
	m.call.Status = status
	if !isModelAPI(m.call.API) {
		return
	}
	m.encoding = strings.ToLower(strings.TrimSpace(encoding))
	if strings.HasPrefix(strings.ToLower(contentType), "text/event-stream") {
		m.stream = true
		m.call.Stream = true
		m.sse = &sseParser{onEvent: m.event, max: m.max}
		switch m.encoding {
		case "", "identity":
		case "gzip", "x-gzip", "deflate":
			m.decoder = startStreamDecoder(m.encoding, m.sse.feed)
		default:
			m.sse = nil // br, zstd: not metered (usage stays unknown)
		}
	}
}

// feed sees each chunk of the response body as it is forwarded.
func (m *meter) feed(b []byte) {
	switch {
	case m.decoder != nil:
		m.decoder.write(b)
	case m.sse != nil:
		m.sse.feed(b)
	case m.stream || !isModelAPI(m.call.API) || m.bodyOver:
	case m.body.Len()+len(b) > m.max:
		m.bodyOver = true
		m.body = bytes.Buffer{}
	default:
		m.body.Write(b)
	}
}

// finish reads what was buffered once the body ended (eof: it ended
// cleanly).
func (m *meter) finish(eof bool) {
	c := m.call
	if m.decoder != nil && m.decoder.close() != nil {
		m.malformed = true
	}
	if !isModelAPI(c.API) {
		return
	}
	if c.Status < 200 || c.Status > 299 {
		if eof && !m.stream && !m.bodyOver {
			m.errorBody()
		}
		return
	}
	defer m.guardrail()
	switch {
	case m.sse != nil:
		if m.sse.overflow {
			m.malformed = true
		}
		if eof && !m.done && !m.malformed {
			// A clean EOF before the terminal event: the upstream cut the
			// stream short.
			m.streamErr = "truncated_stream"
		}
	case m.stream, m.bodyOver:
	case eof:
		body, err := decode(m.body.Bytes(), m.encoding, m.max)
		if err != nil {
			return // an encoding we cannot read (br): usage stays unknown
		}
		m.json(body)
	}
	if m.capture.Full && m.text.Len() > 0 {
		c.Response = m.bound(m.text.String())
	}
	for i := range c.ToolCalls {
		a := m.argsByTool[i]
		if a == nil {
			a = &toolArgs{}
		}
		if m.capture.Full && a.b.Len() > 0 {
			c.ToolCalls[i].Arguments = m.bound(a.b.String())
		}
		if !a.over {
			readToolArgs(&c.ToolCalls[i], a.b.String())
		}
	}
}

// toolArgs accumulates one tool call's arguments, up to
// event.MaxToolArguments.
type toolArgs struct {
	b    strings.Builder
	over bool
}

// readToolArgs sets the digests and the path of event.ToolCall from its
// arguments (JSON; other text, a custom tool's input, is digested as it
// is).
func readToolArgs(tc *event.ToolCall, args string) {
	args = strings.TrimSpace(args)
	if args == "" {
		args = "{}"
	}
	dec := json.NewDecoder(strings.NewReader(args))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		tc.ArgumentsSHA256 = sha256Hex([]byte(args))
		return
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return
	}
	tc.ArgumentsSHA256 = sha256Hex(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	obj, _ := v.(map[string]any)
	switch cmd := cmp.Or(obj["command"], obj["cmd"]).(type) {
	case string:
		if cmd = strings.TrimSpace(cmd); cmd != "" {
			tc.CommandSHA256 = sha256Hex([]byte(cmd))
		}
	case []any:
		words := make([]string, 0, len(cmd))
		for _, w := range cmd {
			s, ok := w.(string)
			if !ok {
				words = nil
				break
			}
			words = append(words, s)
		}
		if len(words) > 0 {
			tc.CommandSHA256 = sha256Hex([]byte(strings.Join(words, "\x00")))
		}
	}
	for _, k := range []string{"file_path", "notebook_path"} {
		if p, ok := obj[k].(string); ok && p != "" {
			tc.FilePath = p
			break
		}
	}
}

// Values of event.LLMCall.Guardrail.
const (
	guardrailRefusal       = "refusal"
	guardrailContentFilter = "content_filter"
)

// guardrail names the provider guardrail that ended a response, from
// what the response said: Anthropic's stop_reason refusal, OpenAI's
// finish_reason (or Responses incomplete_details.reason) content_filter,
// an OpenAI refusal (message.refusal, a refusal output part).
func (m *meter) guardrail() {
	c := m.call
	switch {
	case slices.Contains(c.FinishReasons, guardrailContentFilter):
		c.Guardrail = guardrailContentFilter
	case slices.Contains(c.FinishReasons, guardrailRefusal) || m.refused:
		c.Guardrail = guardrailRefusal
	}
}

// errorBody reads a JSON error response for a content filter that
// refused the request itself (Azure OpenAI's 400 content_filter, OpenAI's
// content_policy_violation); the call stays failed (error.type http_400).
func (m *meter) errorBody() {
	body, err := decode(m.body.Bytes(), m.encoding, m.max)
	if err != nil {
		return
	}
	var e apiError
	if json.Unmarshal(body, &e) != nil {
		return
	}
	switch e.errorType() {
	case "content_filter", "content_policy_violation":
		m.call.Guardrail = guardrailContentFilter
	}
}

// decode undoes a Content-Encoding on a copy of the body, up to max bytes.
func decode(b []byte, encoding string, max int) ([]byte, error) {
	var r io.Reader
	switch encoding {
	case "", "identity":
		return b, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r = zr
	case "deflate":
		// HTTP's deflate is zlib-wrapped; some servers send raw deflate.
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			r = flate.NewReader(bytes.NewReader(b))
		} else {
			r = zr
		}
	default:
		return nil, fmt.Errorf("content encoding %q not metered", encoding)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > max {
		return nil, fmt.Errorf("decoded body over %d bytes", max)
	}
	return out, nil
}

// streamDecoder decompresses a copy of a compressed event stream as it
// flows, on its own goroutine, handing decoded bytes to feed. write returns
// once the decoder has taken the bytes; the relay never waits for more
// than that, and a corrupt stream only stops the decoding.
type streamDecoder struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error
}

func startStreamDecoder(encoding string, feed func([]byte)) *streamDecoder {
	pr, pw := io.Pipe()
	d := &streamDecoder{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		defer func() {
			if r := recover(); r != nil {
				d.err = fmt.Errorf("metering panic: %v", r)
				pr.CloseWithError(d.err)
			}
		}()
		var r io.Reader
		var err error
		if encoding == "deflate" {
			r, err = zlib.NewReader(pr)
		} else {
			r, err = gzip.NewReader(pr)
		}
		if err != nil {
			d.err = err
			pr.CloseWithError(err)
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				feed(buf[:n])
			}
			if err == io.EOF {
				io.Copy(io.Discard, pr) // trailing bytes after the compressed stream
				return
			}
			if err != nil {
				d.err = err
				pr.CloseWithError(err)
				return
			}
		}
	}()
	return d
}

func (d *streamDecoder) write(b []byte) {
	d.pw.Write(b) // an error means the decoder already stopped; d.err says why
}

// close ends the input and waits for the decoder to finish what it has.
// Calling it again returns the same result.
func (d *streamDecoder) close() error {
	d.pw.Close()
	<-d.done
	return d.err
}

// anthropicUsage has pointers so that a field absent (or null) in a
// message_delta leaves the earlier value: message_delta usage is
// cumulative, so present fields overwrite and nothing is ever added.
type anthropicUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
}

func (u *anthropicUsage) merge(n *anthropicUsage) {
	if n == nil {
		return
	}
	for _, f := range []struct{ dst, src **int64 }{
		{&u.InputTokens, &n.InputTokens}, {&u.OutputTokens, &n.OutputTokens},
		{&u.CacheReadInputTokens, &n.CacheReadInputTokens},
		{&u.CacheCreationInputTokens, &n.CacheCreationInputTokens},
	} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func (m *meter) setAnthropicUsage() {
	u := m.usage
	if u.InputTokens == nil && u.OutputTokens == nil {
		return
	}
	c := m.call
	c.UsageKnown = true
	c.CacheReadTokens = deref(u.CacheReadInputTokens)
	c.CacheCreationTokens = deref(u.CacheCreationInputTokens)
	c.InputTokens = deref(u.InputTokens) + c.CacheReadTokens + c.CacheCreationTokens
	c.OutputTokens = deref(u.OutputTokens)
}

type apiError struct {
	Type  string `json:"type"`
	Code  any    `json:"code"`
	Error *struct {
		Type string `json:"type"`
		Code any    `json:"code"`
	} `json:"error"`
}

// errorType names the error an error object carries (Anthropic
// error.type, OpenAI error.code or error.type).
func (e *apiError) errorType() string {
	if e.Error == nil {
		return ""
	}
	if s, ok := e.Error.Code.(string); ok && s != "" {
		return s
	}
	if e.Error.Type != "" {
		return e.Error.Type
	}
	return "stream_error"
}

func (m *meter) addToolCall(id, name string) int {
	m.call.ToolCalls = append(m.call.ToolCalls, event.ToolCall{ID: id, Name: name})
	return len(m.call.ToolCalls) - 1
}

// addArgs adds text to a tool call's arguments: kept whole up to
// event.MaxToolArguments for their digests (any capture mode), and as
// content in full capture only (finish).
func (m *meter) addArgs(tool int, s string) {
	if s == "" {
		return
	}
	if m.argsByTool == nil {
		m.argsByTool = map[int]*toolArgs{}
	}
	a := m.argsByTool[tool]
	if a == nil {
		a = &toolArgs{}
		m.argsByTool[tool] = a
	}
	if a.over || a.b.Len()+len(s) > event.MaxToolArguments {
		a.over = true
		a.b.Reset()
		return
	}
	a.b.WriteString(s)
}

func (m *meter) addText(s string) {
	if m.capture.Full && m.text.Len() < m.capture.Limit+ContentMargin {
		m.text.WriteString(s)
	}
}

// --- JSON responses ---

type anthropicMessage struct {
	ID         string          `json:"id"`
	Model      string          `json:"model"`
	StopReason *string         `json:"stop_reason"`
	Usage      *anthropicUsage `json:"usage"`
	Content    []struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content"`
}

type openaiUsage struct {
	// Chat Completions
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	// Responses
	InputTokens        *int64 `json:"input_tokens"`
	OutputTokens       *int64 `json:"output_tokens"`
	InputTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

// set records OpenAI usage. Both APIs report input inclusive of cached
// tokens and output inclusive of reasoning, as the GenAI convention wants.
func (u *openaiUsage) set(c *event.LLMCall) {
	if u == nil {
		return
	}
	switch {
	case u.PromptTokens != nil || u.CompletionTokens != nil:
		c.InputTokens, c.OutputTokens = deref(u.PromptTokens), deref(u.CompletionTokens)
		if d := u.PromptTokensDetails; d != nil {
			c.CacheReadTokens = d.CachedTokens
		}
		if d := u.CompletionTokensDetails; d != nil {
			c.ReasoningTokens = d.ReasoningTokens
		}
	case u.InputTokens != nil || u.OutputTokens != nil:
		c.InputTokens, c.OutputTokens = deref(u.InputTokens), deref(u.OutputTokens)
		if d := u.InputTokensDetails; d != nil {
			c.CacheReadTokens = d.CachedTokens
		}
		if d := u.OutputTokensDetails; d != nil {
			c.ReasoningTokens = d.ReasoningTokens
		}
	default:
		return
	}
	c.UsageKnown = true
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Usage   *openaiUsage `json:"usage"`
	Choices []struct {
		Index        int     `json:"index"`
		FinishReason *string `json:"finish_reason"`
		Message      *struct {
			Content   json.RawMessage `json:"content"`
			Refusal   *string         `json:"refusal"`
			ToolCalls []chatToolCall  `json:"tool_calls"`
		} `json:"message"`
		Delta *struct {
			Content   *string        `json:"content"`
			Refusal   *string        `json:"refusal"`
			ToolCalls []chatToolCall `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
}

type chatToolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type responseObject struct {
	ID                string       `json:"id"`
	Model             string       `json:"model"`
	Status            string       `json:"status"`
	Usage             *openaiUsage `json:"usage"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
	Output []struct {
		Type      string `json:"type"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
		Content   []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
}

func (m *meter) json(body []byte) {
	c := m.call
	switch c.API {
	case apiMessages:
		var r anthropicMessage
		if json.Unmarshal(body, &r) != nil {
			m.malformed = true
			return
		}
		c.ResponseID, c.ResponseModel = r.ID, r.Model
		if r.StopReason != nil {
			c.FinishReasons = []string{*r.StopReason}
		}
		m.usage.merge(r.Usage)
		m.setAnthropicUsage()
		for _, b := range r.Content {
			switch b.Type {
			case "text":
				m.addText(b.Text)
			case "tool_use", "server_tool_use":
				m.addArgs(m.addToolCall(b.ID, b.Name), string(b.Input))
			}
		}
	case apiChatCompletions:
		var r chatCompletion
		if json.Unmarshal(body, &r) != nil {
			m.malformed = true
			return
		}
		c.ResponseID, c.ResponseModel = r.ID, r.Model
		r.Usage.set(c)
		for _, ch := range r.Choices {
			if ch.FinishReason != nil {
				c.FinishReasons = append(c.FinishReasons, *ch.FinishReason)
			}
			if ch.Message == nil {
				continue
			}
			if r := ch.Message.Refusal; r != nil && *r != "" {
				m.refused = true
			}
			m.addText(contentText(ch.Message.Content))
			for _, tc := range ch.Message.ToolCalls {
				m.addArgs(m.addToolCall(tc.ID, tc.Function.Name), tc.Function.Arguments)
			}
		}
	case apiResponses:
		var r responseObject
		if json.Unmarshal(body, &r) != nil {
			m.malformed = true
			return
		}
		m.response(&r)
	}
}

// response reads a Responses API response object (a JSON body, or the
// "response" of a stream's terminal event).
func (m *meter) response(r *responseObject) {
	c := m.call
	c.ResponseID, c.ResponseModel = r.ID, r.Model
	r.Usage.set(c)
	switch {
	case r.IncompleteDetails != nil && r.IncompleteDetails.Reason != "":
		c.FinishReasons = []string{r.IncompleteDetails.Reason}
	case r.Status != "":
		c.FinishReasons = []string{r.Status}
	}
	if r.Error != nil && r.Error.Code != "" {
		m.streamErr = r.Error.Code
	}
	for _, o := range r.Output {
		switch o.Type {
		case "function_call", "custom_tool_call":
			m.addArgs(m.addToolCall(o.CallID, o.Name), o.Arguments)
		case "message":
			for _, p := range o.Content {
				switch p.Type {
				case "output_text":
					m.addText(p.Text)
				case "refusal":
					m.refused = true
				}
			}
		}
	}
}

// --- streams ---

// event handles one server-sent event. data is only valid during the call.
func (m *meter) event(name string, data []byte) {
	switch m.call.API {
	case apiMessages:
		m.anthropicEvent(name, data)
	case apiChatCompletions:
		m.chatEvent(data)
	case apiResponses:
		m.responsesEvent(name, data)
	}
}

type anthropicEvent struct {
	Type    string            `json:"type"`
	Index   int               `json:"index"`
	Message *anthropicMessage `json:"message"`
	Usage   *anthropicUsage   `json:"usage"`
	Delta   *struct {
		Type        string  `json:"type"`
		Text        string  `json:"text"`
		PartialJSON string  `json:"partial_json"`
		StopReason  *string `json:"stop_reason"`
	} `json:"delta"`
	ContentBlock *struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"content_block"`
	Error *struct {
		Type string `json:"type"`
	} `json:"error"`
}

func (m *meter) anthropicEvent(name string, data []byte) {
	if name == "ping" {
		return
	}
	var e anthropicEvent
	if json.Unmarshal(data, &e) != nil {
		m.malformed = true
		return
	}
	c := m.call
	switch e.Type {
	case "message_start":
		if e.Message != nil {
			c.ResponseID, c.ResponseModel = e.Message.ID, e.Message.Model
			m.usage.merge(e.Message.Usage)
		}
	case "content_block_start":
		if b := e.ContentBlock; b != nil && (b.Type == "tool_use" || b.Type == "server_tool_use") {
			if m.toolByIdx == nil {
				m.toolByIdx = map[int]int{}
			}
			m.toolByIdx[e.Index] = m.addToolCall(b.ID, b.Name)
		}
	case "content_block_delta":
		if d := e.Delta; d != nil {
			switch d.Type {
			case "text_delta":
				m.addText(d.Text)
			case "input_json_delta":
				if i, ok := m.toolByIdx[e.Index]; ok {
					m.addArgs(i, d.PartialJSON)
				}
			}
		}
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != nil {
			c.FinishReasons = []string{*e.Delta.StopReason}
		}
		m.usage.merge(e.Usage)
	case "message_stop":
		m.done = true
	case "error":
		m.streamErr = "stream_error"
		if e.Error != nil && e.Error.Type != "" {
			m.streamErr = e.Error.Type
		}
		m.done = true
	}
	m.setAnthropicUsage()
}

func (m *meter) chatEvent(data []byte) {
	if bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
		m.done = true
		return
	}
	var e apiError
	if bytes.Contains(data, []byte(`"error"`)) && json.Unmarshal(data, &e) == nil && e.Error != nil {
		m.streamErr = e.errorType()
		return
	}
	var ch chatCompletion
	if json.Unmarshal(data, &ch) != nil {
		m.malformed = true
		return
	}
	c := m.call
	if ch.ID != "" {
		c.ResponseID = ch.ID
	}
	if ch.Model != "" {
		c.ResponseModel = ch.Model
	}
	ch.Usage.set(c)
	for _, choice := range ch.Choices {
		if choice.FinishReason != nil && *choice.FinishReason != "" {
			c.FinishReasons = append(c.FinishReasons, *choice.FinishReason)
		}
		d := choice.Delta
		if d == nil {
			continue
		}
		if d.Content != nil {
			m.addText(*d.Content)
		}
		if d.Refusal != nil && *d.Refusal != "" {
			m.refused = true
		}
		for _, tc := range d.ToolCalls {
			// The first delta of a tool call carries its id and name; later
			// ones only the index and more argument text.
			key := choice.Index<<16 | tc.Index
			i, ok := m.toolByIdx[key]
			if !ok {
				if m.toolByIdx == nil {
					m.toolByIdx = map[int]int{}
				}
				i = m.addToolCall(tc.ID, tc.Function.Name)
				m.toolByIdx[key] = i
			}
			m.addArgs(i, tc.Function.Arguments)
		}
	}
}

type responsesEvent struct {
	Type     string          `json:"type"`
	Response *responseObject `json:"response"`
	Code     string          `json:"code"`
}

func (m *meter) responsesEvent(name string, data []byte) {
	var e responsesEvent
	if json.Unmarshal(data, &e) != nil {
		m.malformed = true
		return
	}
	if e.Type == "" {
		e.Type = name
	}
	switch e.Type {
	case "response.created", "response.in_progress":
		if e.Response != nil {
			m.call.ResponseID, m.call.ResponseModel = e.Response.ID, e.Response.Model
		}
	case "response.completed", "response.incomplete", "response.failed":
		if e.Response != nil {
			m.response(e.Response)
		}
		if e.Type == "response.failed" && m.streamErr == "" {
			m.streamErr = "response_failed"
		}
		m.done = true
	case "error":
		m.streamErr = "stream_error"
		if e.Code != "" {
			m.streamErr = e.Code
		}
		m.done = true
	}
}
