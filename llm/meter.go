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
	text       strings.Builder
	toolByIdx  map[int]int // Anthropic/OpenAI stream index → index in call.ToolCalls
	argsByTool map[int]*strings.Builder
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
	Tools []struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
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
	if s := systemPrompt(c.API, &req); s != "" {
		c.SystemPromptSHA256 = sha256Hex([]byte(s))
	}
	for _, t := range req.Tools {
		switch {
		case t.Function != nil && t.Function.Name != "":
			c.ToolsOffered = append(c.ToolsOffered, t.Function.Name)
		case t.Name != "":
			c.ToolsOffered = append(c.ToolsOffered, t.Name)
		case t.Type != "":
			c.ToolsOffered = append(c.ToolsOffered, t.Type) // a built-in tool (web_search, ...)
		}
	}
	if m.capture.Full {
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
	if !isModelAPI(c.API) || c.Status < 200 || c.Status > 299 {
		return
	}
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
	if m.capture.Full {
		for i, b := range m.argsByTool {
			if i < len(c.ToolCalls) {
				c.ToolCalls[i].Arguments = m.bound(b.String())
			}
		}
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

func (m *meter) addArgs(tool int, s string) {
	if !m.capture.Full || s == "" {
		return
	}
	if m.argsByTool == nil {
		m.argsByTool = map[int]*strings.Builder{}
	}
	b := m.argsByTool[tool]
	if b == nil {
		b = &strings.Builder{}
		m.argsByTool[tool] = b
	}
	if b.Len() < m.capture.Limit+ContentMargin {
		b.WriteString(s)
	}
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
			ToolCalls []chatToolCall  `json:"tool_calls"`
		} `json:"message"`
		Delta *struct {
			Content   *string        `json:"content"`
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
				if p.Type == "output_text" {
					m.addText(p.Text)
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
