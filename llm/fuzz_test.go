package llm

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fakemodel"
)

// recordedResponse is one response body as a fake upstream sent it.
type recordedResponse struct {
	api    string
	stream bool
	body   []byte
}

// recordedResponses are the bodies the fake upstreams of the proxy tests
// send (fakemodel for the Anthropic Messages API as Claude Code sees it,
// openaiFake for Chat Completions and Responses), streamed and not, so
// both usage shapes are seeded as real traffic carries them.
func recordedResponses(tb testing.TB) []recordedResponse {
	tb.Helper()
	anthropic := fakemodel.New(fakemodel.BashTurn("go test ./...", fakemodel.Usage{InputTokens: 1234, CacheReadInputTokens: 100, CacheCreationInputTokens: 50, OutputTokens: 56}))
	var out []recordedResponse
	record := func(h http.Handler, api, path, body string, stream bool) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		if w.Code != http.StatusOK {
			tb.Fatalf("%s %s: status %d: %s", api, body, w.Code, w.Body.Bytes())
		}
		out = append(out, recordedResponse{api, stream, w.Body.Bytes()})
	}
	for _, stream := range []bool{true, false} {
		s := "false"
		if stream {
			s = "true"
		}
		record(anthropic, apiMessages, "/v1/messages",
			`{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":`+s+`,"tools":[{"name":"Bash"}],"messages":[{"role":"user","content":"run the tests"}]}`, stream)
		record(http.HandlerFunc(openaiFake), apiChatCompletions, "/v1/chat/completions",
			`{"model":"gpt-4.1","stream":`+s+`,"stream_options":{"include_usage":true}}`, stream)
		record(http.HandlerFunc(openaiFake), apiResponses, "/v1/responses", `{"model":"gpt-4.1","stream":`+s+`}`, stream)
	}
	return out
}

// Encodings FuzzMeter applies to the body (the response's
// Content-Encoding); encRawGzip claims gzip but sends the bytes as they are.
const (
	encNone = iota
	encGzip
	encDeflate
	encRawGzip
	encCount
)

func encodeBody(enc int, b []byte) (wire []byte, header string) {
	var buf bytes.Buffer
	switch enc {
	case encGzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes(), "gzip"
	case encDeflate:
		zw := zlib.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes(), "deflate"
	case encRawGzip:
		return b, "gzip"
	}
	return b, ""
}

// meterBody meters one response body fed in pieces (sizes from split; nil
// feeds it whole) and returns the call.
func meterBody(api string, stream bool, enc int, body []byte, split []byte) *event.LLMCall {
	c := &event.LLMCall{API: api}
	m := meter{call: c, max: 1 << 16, capture: Capture{Full: true, Limit: 64}}
	ct := "application/json"
	if stream {
		ct = "text/event-stream"
	}
	wire, header := encodeBody(enc, body)
	m.begin(200, ct, header)
	for i := 0; len(wire) > 0; i++ {
		n := len(wire)
		if len(split) > 0 {
			n = min(n, 1+int(split[i%len(split)])%17)
		}
		m.feed(wire[:n])
		wire = wire[n:]
	}
	m.finish(true)
	return c
}

// FuzzMeter: no response body, in any API, framing and encoding, makes the
// meter panic (the proxy would survive it, but the call would lose its
// metering); what it records does not depend on how the body was cut into
// reads (SSE framing across reads: a \r\n split in two, an event split
// anywhere), and the captured text keeps to its limit.
func FuzzMeter(f *testing.F) {
	apis := []string{apiMessages, apiChatCompletions, apiResponses}
	apiIndex := map[string]uint8{apiMessages: 0, apiChatCompletions: 1, apiResponses: 2}
	for _, r := range recordedResponses(f) {
		// The real bodies carry usage in each shape: Anthropic's
		// input/output/cache tokens, Chat Completions' prompt/completion
		// tokens, Responses' input/output tokens with details.
		if c := meterBody(r.api, r.stream, encNone, r.body, nil); !c.UsageKnown || c.InputTokens == 0 || c.OutputTokens == 0 {
			f.Fatalf("%s stream=%v: recorded body metered no usage: %+v\n%s", r.api, r.stream, c, r.body)
		}
		for enc := range encCount {
			f.Add(apiIndex[r.api], r.stream, uint8(enc), []byte{3, 250, 7}, r.body)
		}
	}
	f.Add(uint8(0), true, uint8(0), []byte{1}, []byte(messageStart+"event: message_delta\ndata: {\"usage\":{\"output_tokens\":null}}\n\n"))
	f.Add(uint8(1), true, uint8(0), []byte{0}, []byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":3}]}}],\"usage\":{}}\n\ndata: [DONE]\n\n"))
	f.Add(uint8(2), true, uint8(0), []byte{5}, []byte("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"function_call\"}],\"usage\":null}}\n\n"))
	f.Add(uint8(0), true, uint8(0), []byte{0, 1}, []byte("event: message_start\r\ndata: {\"message\":{\"usage\":{\"input_tokens\":3}}}\r\r\n\n"))
	f.Add(uint8(0), false, uint8(0), []byte{2}, []byte(`{"content":[{"type":"tool_use","input":null}],"usage":{"input_tokens":-1}}`))
	f.Add(uint8(1), false, uint8(1), []byte{9}, []byte(`{"choices":[{"message":{"content":[1,2]}}]}`))
	f.Add(uint8(2), false, uint8(2), []byte{4}, []byte(`{"output":[{"type":"message","content":null}],"incomplete_details":{}}`))
	f.Fuzz(func(t *testing.T, api uint8, stream bool, enc uint8, split []byte, body []byte) {
		a, e := apis[int(api)%len(apis)], int(enc)%encCount
		whole := meterBody(a, stream, e, body, nil)
		cut := meterBody(a, stream, e, body, split)
		if len(cut.Response) > 64+ContentMargin {
			t.Fatalf("captured response %d bytes over the 64-byte limit and its margin", len(cut.Response))
		}
		if !reflect.DeepEqual(whole, cut) {
			t.Fatalf("metered differently when read in pieces:\nwhole %+v\npieces %+v", whole, cut)
		}
	})
}

// FuzzSSE: the event-stream parser gives the same events however the
// stream is cut into reads, never an event longer than its bound, and
// holds no more than the bound (plus the read in hand) between reads.
func FuzzSSE(f *testing.F) {
	for _, r := range recordedResponses(f) {
		if r.stream {
			f.Add([]byte{1, 5, 200}, r.body)
		}
	}
	f.Add([]byte{0}, []byte(": keep-alive\r\nevent: a\r\ndata: 1\r\n\r\ndata:x\ndata: y\n\nevent: lone-cr\rdata: z\r\r"))
	f.Add([]byte{3}, []byte("data: "+strings.Repeat("v", 300)+"\n\ndata: cut"))
	const max = 256
	f.Fuzz(func(t *testing.T, split []byte, stream []byte) {
		parse := func(pieces [][]byte) (events []string, overflow bool) {
			p := &sseParser{max: max, onEvent: func(name string, data []byte) {
				if len(data) > max {
					t.Fatalf("event of %d bytes past the %d-byte bound", len(data), max)
				}
				events = append(events, name+"\x00"+string(data))
			}}
			for _, b := range pieces {
				p.feed(b)
				if held := len(p.buf) + len(p.data); held > 2*max+len(b) {
					t.Fatalf("holds %d bytes between reads", held)
				}
			}
			return events, p.overflow
		}
		whole, wholeOver := parse([][]byte{stream})
		var pieces [][]byte
		for i, rest := 0, stream; len(rest) > 0; i++ {
			n := len(rest)
			if len(split) > 0 {
				n = min(n, 1+int(split[i%len(split)])%(2*max))
			}
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		cut, cutOver := parse(pieces)
		// Giving up depends on how much is buffered, which depends on the
		// reads; the events before it do not.
		if wholeOver || cutOver {
			n := min(len(whole), len(cut))
			whole, cut = whole[:n], cut[:n]
		}
		if !slices.Equal(whole, cut) {
			t.Fatalf("events differ when the stream is read in pieces:\nwhole  %q\npieces %q", whole, cut)
		}
	})
}

// FuzzMeterRequest: no request body makes the request side of the meter
// panic, and what it keeps is bounded by the body.
func FuzzMeterRequest(f *testing.F) {
	f.Add(uint8(0), []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":[{"type":"text","text":"You are Claude Code"}],"tools":[{"name":"Bash","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"run the tests"}]}`))
	f.Add(uint8(1), []byte(`{"model":"gpt-4.1","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"developer","content":[{"type":"text","text":"x"}]},{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"run_tests"}}]}`))
	f.Add(uint8(2), []byte(`{"model":"gpt-4.1","instructions":"be brief","input":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search"}]}`))
	f.Add(uint8(3), []byte(`{"model":"claude-haiku-4-5","messages":[]}`))
	apis := []string{apiMessages, apiChatCompletions, apiResponses, apiCountTokens}
	f.Fuzz(func(t *testing.T, api uint8, body []byte) {
		c := &event.LLMCall{API: apis[int(api)%len(apis)]}
		m := meter{call: c, max: 1 << 16, capture: Capture{Full: true, Limit: 64}}
		m.request(body, true)
		if len(c.Prompt) > 64+ContentMargin {
			t.Fatalf("captured prompt %d bytes over the limit and its margin", len(c.Prompt))
		}
		n := len(c.RequestModel)
		for _, s := range c.ToolsOffered {
			n += len(s)
		}
		// Invalid UTF-8 is decoded as U+FFFD, 3 bytes for each bad byte.
		if n > 3*len(body) {
			t.Fatalf("kept %d bytes of names from a %d-byte request", n, len(body))
		}
	})
}
