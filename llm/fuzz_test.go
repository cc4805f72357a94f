package llm

import (
	"testing"

	"github.com/agentwatch/agentwatch/event"
)

// FuzzMeter: no response body, in any API and framing, makes the meter
// panic (the proxy would survive it, but the call would lose its metering).
func FuzzMeter(f *testing.F) {
	f.Add(uint8(0), true, []byte(messageStart+"event: message_delta\ndata: {\"usage\":{\"output_tokens\":null}}\n\n"))
	f.Add(uint8(1), true, []byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":3}]}}],\"usage\":{}}\n\ndata: [DONE]\n\n"))
	f.Add(uint8(2), true, []byte("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"function_call\"}],\"usage\":null}}\n\n"))
	f.Add(uint8(0), false, []byte(`{"content":[{"type":"tool_use","input":null}],"usage":{"input_tokens":-1}}`))
	f.Add(uint8(1), false, []byte(`{"choices":[{"message":{"content":[1,2]}}]}`))
	f.Add(uint8(2), false, []byte(`{"output":[{"type":"message","content":null}],"incomplete_details":{}}`))
	apis := []string{apiMessages, apiChatCompletions, apiResponses}
	f.Fuzz(func(t *testing.T, api uint8, stream bool, body []byte) {
		c := &event.LLMCall{API: apis[int(api)%len(apis)]}
		m := meter{call: c, max: 1 << 16, capture: Capture{Full: true, Limit: 64, Redact: func(s string) string { return s }}}
		ct := "application/json"
		if stream {
			ct = "text/event-stream"
		}
		m.begin(200, ct, "")
		for len(body) > 0 { // in uneven pieces, as reads deliver them
			n := min(len(body), 1+int(body[0])%17)
			m.feed(body[:n])
			body = body[n:]
		}
		m.finish(true)
		if len(c.Response) > 64 {
			t.Fatalf("captured response %d bytes over the 64-byte limit", len(c.Response))
		}
	})
}
