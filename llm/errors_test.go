package llm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawServer answers every connection with exactly resp (after reading the
// request) and closes it: for what net/http will not send, such as a body
// shorter than its Content-Length or a chunked stream without its end.
func rawServer(t *testing.T, resp string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(conn, resp)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

const messageStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_t\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n"

// TestUpstreamFailures: whatever the upstream does, the client sees through
// the proxy what it sees directly, and the event names the error class.
func TestUpstreamFailures(t *testing.T) {
	big := strings.Repeat("x", 50<<20)
	for _, tc := range []struct {
		name     string
		upstream func(t *testing.T) string
		body     string
		errType  string
		usage    bool
	}{
		{"500", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(500)
				io.WriteString(w, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`)
			})
		}, `{"model":"claude-haiku-4-5"}`, "http_500", false},
		{"429 with body and retry-after", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "17")
				w.Header().Set("Anthropic-Ratelimit-Tokens-Remaining", "0")
				w.WriteHeader(429)
				io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`)
			})
		}, `{"model":"claude-haiku-4-5"}`, "http_429", false},
		{"529 overloaded, streamed", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(529)
				io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
			})
		}, `{"model":"claude-haiku-4-5","stream":true}`, "http_529", false},
		{"error event inside a 200 stream", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, messageStart+"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
			})
		}, `{"model":"claude-haiku-4-5","stream":true}`, "overloaded_error", true},
		{"stream cut mid-chunk stream", func(t *testing.T) string {
			return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk(messageStart)+"40\r\nevent: content_block")
		}, `{"model":"claude-haiku-4-5","stream":true}`, "truncated_stream", true},
		{"stream ends cleanly before message_stop", func(t *testing.T) string {
			return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk(messageStart)+"0\r\n\r\n")
		}, `{"model":"claude-haiku-4-5","stream":true}`, "truncated_stream", true},
		{"JSON shorter than its Content-Length", func(t *testing.T) string {
			return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\":\"msg_t\",\"type\":\"message\"")
		}, `{"model":"claude-haiku-4-5"}`, "truncated_stream", false},
		{"malformed SSE", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, messageStart+"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
			})
		}, `{"model":"claude-haiku-4-5","stream":true}`, "malformed_response", true},
		{"malformed JSON", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"id":"msg_t","usage":{"input_tokens":3,`)
			})
		}, `{"model":"claude-haiku-4-5"}`, "malformed_response", false},
		{"no Content-Type (not sniffed)", func(t *testing.T) string {
			return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 21\r\nConnection: close\r\n\r\n<html>not json</html>")
		}, `{"model":"claude-haiku-4-5"}`, "malformed_response", false},
		{"50 MB response (not metered past the cap)", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"id":"msg_big","type":"message","model":"claude-haiku-4-5","content":[{"type":"text","text":"%s"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":9}}`, big)
			})
		}, `{"model":"claude-haiku-4-5"}`, "", false},
		{"50 MB request (hashed whole, forwarded whole)", func(t *testing.T) string {
			return newServer(t, func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				n, _ := io.Copy(h, r.Body)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"received":%d,"sha256":%q}`, n, hex.EncodeToString(h.Sum(nil)))
			})
		}, `{"model":"claude-haiku-4-5","pad":"` + big + `"}`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct, behind := tc.upstream(t), tc.upstream(t)
			p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: behind}})
			dv := do(t, "POST", direct+"/v1/messages", tc.body, claudeHeaders)
			pv := do(t, "POST", p.URL(Anthropic)+"/v1/messages", tc.body, claudeHeaders)
			sameView(t, dv, pv)
			c := calls.next(t)
			if c.ErrorType != tc.errType || c.UsageKnown != tc.usage || c.Status != dv.Status {
				t.Errorf("ErrorType %q UsageKnown %v Status %d; want %q, %v, %d", c.ErrorType, c.UsageKnown, c.Status, tc.errType, tc.usage, dv.Status)
			}
			if c.RequestBytes != int64(len(tc.body)) || c.PromptSHA256 != hexSHA(tc.body) {
				t.Errorf("request %d bytes sha %s; want %d, the body's", c.RequestBytes, c.PromptSHA256, len(tc.body))
			}
			if c.ResponseBytes != int64(len(pv.Body)) {
				t.Errorf("ResponseBytes %d, client got %d", c.ResponseBytes, len(pv.Body))
			}
		})
	}
}

// TestUpstreamUnreachable: the one case the client cannot see unchanged —
// its connection to the proxy succeeded, so instead of a connection error
// it gets a 502 in the provider's error shape (retried by the SDKs like
// any 5xx).
func TestUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	closing := rawServer(t, "") // accepts, reads the request, closes without answering
	for _, tc := range []struct{ name, upstream, errType string }{
		{"refused", down, "upstream_unreachable"},
		{"closed without a response", closing, "upstream_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: tc.upstream}})
			if dv := do(t, "POST", tc.upstream+"/v1/messages", `{}`, nil); dv.Err == "" {
				t.Fatalf("direct request did not fail: %+v", dv)
			}
			pv := do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{}`, nil)
			if pv.Status != 502 || !strings.Contains(string(pv.Body), `"type":"error"`) {
				t.Errorf("proxied: status %d body %s; want a 502 Anthropic error", pv.Status, pv.Body)
			}
			if c := calls.next(t); c.ErrorType != tc.errType || c.Status != 502 {
				t.Errorf("event ErrorType %q Status %d; want %s, 502", c.ErrorType, c.Status, tc.errType)
			}
		})
	}
}

// TestSlowUpstream: a client that gives up sees its own timeout either way;
// the proxy's optional header timeout answers 504.
func TestSlowUpstream(t *testing.T) {
	slow := func(t *testing.T) string {
		return newServer(t, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // net/http notices a client leaving only once the body is read
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		})
	}
	t.Run("client timeout", func(t *testing.T) {
		up := slow(t)
		p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}})
		impatient := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableCompression: true}}
		_, derr := impatient.Post(up+"/v1/messages", "application/json", strings.NewReader(`{}`))
		_, perr := impatient.Post(p.URL(Anthropic)+"/v1/messages", "application/json", strings.NewReader(`{}`))
		if derr == nil || perr == nil || !strings.Contains(perr.Error(), "Client.Timeout exceeded") {
			t.Fatalf("direct %v, proxied %v; want the client's own timeout both ways", derr, perr)
		}
		if c := calls.next(t); c.ErrorType != "canceled" {
			t.Errorf("ErrorType %q, want canceled", c.ErrorType)
		}
	})
	t.Run("proxy header timeout", func(t *testing.T) {
		p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: slow(t)}, ResponseHeaderTimeout: 100 * time.Millisecond})
		pv := do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{}`, nil)
		if c := calls.next(t); pv.Status != 504 || c.ErrorType != "timeout" {
			t.Errorf("status %d ErrorType %q; want 504, timeout", pv.Status, c.ErrorType)
		}
	})
}

// TestCompressedBodyRelayedAsSent: the client asked for gzip; it gets the
// upstream's compressed bytes untouched (Go's transport must not decode
// them), and the proxy meters a decoded copy.
func TestCompressedBodyRelayedAsSent(t *testing.T) {
	const msg = `{"id":"msg_gz","type":"message","model":"claude-opus-4-5-20251101","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":40,"cache_read_input_tokens":2,"cache_creation_input_tokens":0,"output_tokens":7}}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, msg)
	zw.Close()
	var sawEncoding string
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sawEncoding = r.Header.Get("Accept-Encoding")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}})
	pv := do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{"model":"claude-opus-4-5"}`, map[string]string{"Accept-Encoding": "gzip, deflate"})
	if sawEncoding != "gzip, deflate" {
		t.Errorf("upstream saw Accept-Encoding %q, want the client's", sawEncoding)
	}
	if !bytes.Equal(pv.Body, gz.Bytes()) || pv.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("client did not get the compressed bytes as sent")
	}
	c := calls.next(t)
	if !c.UsageKnown || c.InputTokens != 42 || c.OutputTokens != 7 || c.ResponseID != "msg_gz" {
		t.Errorf("metered usage in %d out %d id %q known %v", c.InputTokens, c.OutputTokens, c.ResponseID, c.UsageKnown)
	}
}

// TestCompressedStream: a gzip-encoded event stream is relayed compressed,
// as sent, and metered from a copy decoded on the side.
func TestCompressedStream(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, messageStart+"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":33}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	zw.Close()
	z := gz.Bytes()
	up := func(t *testing.T) string {
		return newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Encoding", "gzip")
			for i := 0; i < len(z); i += 7 { // small pieces, flushed: a stream
				w.Write(z[i:min(i+7, len(z))])
				w.(http.Flusher).Flush()
			}
		})
	}
	direct, behind := up(t), up(t)
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: behind}})
	hdr := map[string]string{"Accept-Encoding": "gzip"}
	dv := do(t, "POST", direct+"/v1/messages", `{"stream":true}`, hdr)
	pv := do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{"stream":true}`, hdr)
	sameView(t, dv, pv)
	c := calls.next(t)
	if !c.UsageKnown || c.InputTokens != 11 || c.OutputTokens != 33 || c.ErrorType != "" || !c.Stream {
		t.Errorf("usage in %d out %d known %v error %q", c.InputTokens, c.OutputTokens, c.UsageKnown, c.ErrorType)
	}
}
