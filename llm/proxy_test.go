package llm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/prices"
)

// calls collects what a proxy emits.
type calls struct {
	mu  sync.Mutex
	all []event.LLMCall
	ch  chan event.LLMCall
}

func (c *calls) emit(e event.Event) {
	call := e.(event.LLMCall)
	c.mu.Lock()
	c.all = append(c.all, call)
	c.mu.Unlock()
	c.ch <- call
}

// next waits for the next emitted call: the event comes after the client
// has its last byte, so it may lag the client's read a little.
func (c *calls) next(t testing.TB) event.LLMCall {
	t.Helper()
	select {
	case call := <-c.ch:
		return call
	case <-time.After(10 * time.Second):
		t.Fatal("no LLMCall emitted within 10s")
	}
	return event.LLMCall{}
}

func startProxy(t testing.TB, cfg Config) (*Proxy, *calls) {
	t.Helper()
	c := &calls{ch: make(chan event.LLMCall, 1000)}
	cfg.Emit = c.emit
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p, c
}

// client is what an SDK is: it asks for compressed bodies itself and must
// see them as sent, so Go's transparent gzip is off.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// view is everything a client can observe of one response.
type view struct {
	Status  int
	Header  http.Header
	Body    []byte
	ReadErr string // how reading the body ended ("" = cleanly)
	Err     string // the request failed before a response
}

func do(t testing.TB, method, url, body string, hdr map[string]string) view {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = http.NoBody
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return view{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	v := view{Status: resp.StatusCode, Header: resp.Header.Clone(), Body: b}
	if err != nil {
		v.ReadErr = err.Error()
	}
	v.Header.Del("Date") // the one header that legitimately differs between two requests
	return v
}

func sameView(t *testing.T, direct, proxied view) {
	t.Helper()
	if direct.Status != proxied.Status || direct.ReadErr != proxied.ReadErr || direct.Err != proxied.Err {
		t.Errorf("client view differs:\n direct: status %d readErr %q err %q\nproxied: status %d readErr %q err %q",
			direct.Status, direct.ReadErr, direct.Err, proxied.Status, proxied.ReadErr, proxied.Err)
	}
	if !reflect.DeepEqual(direct.Header, proxied.Header) {
		t.Errorf("headers differ:\n direct: %v\nproxied: %v", direct.Header, proxied.Header)
	}
	if !bytes.Equal(direct.Body, proxied.Body) {
		t.Errorf("bodies differ (%d vs %d bytes):\n direct: %.300q\nproxied: %.300q", len(direct.Body), len(proxied.Body), direct.Body, proxied.Body)
	}
}

func hexSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

const apiKey = "sk-ant-api03-NEVER-RECORD-THIS-KEY"

// claudeRequest is shaped like Claude Code's main-loop request.
func claudeRequest(stream bool) string {
	return fmt.Sprintf(`{"model":"claude-sonnet-4-5-20250929","max_tokens":32000,"stream":%t,`+
		`"system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Be brief."}],`+
		`"tools":[{"name":"Bash","description":"Run a command","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}},`+
		`{"name":"Read","description":"Read a file","input_schema":{"type":"object"}}],`+
		`"messages":[{"role":"user","content":"fix the flaky test"}]}`, stream)
}

var claudeHeaders = map[string]string{
	"x-api-key":                apiKey,
	"anthropic-version":        "2023-06-01",
	"anthropic-beta":           "claude-code-20250219,interleaved-thinking-2025-05-14",
	"content-type":             "application/json",
	"x-claude-code-session-id": "5f0c1a2e-session",
	"traceparent":              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}

var turnUsage = fakemodel.Usage{InputTokens: 1203, CacheReadInputTokens: 34017, CacheCreationInputTokens: 561, OutputTokens: 78}

func startFake(t testing.TB) *fakemodel.Server {
	t.Helper()
	srv := fakemodel.New(fakemodel.BashTurn("go test ./...", turnUsage), fakemodel.TextTurn("done", turnUsage))
	srv.Logf = t.Logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestAnthropicMessages sends Claude Code's request to one scripted model
// directly and to an identical one through the proxy: the client sees the
// same bytes, and the event holds the exact usage the server sent.
func TestAnthropicMessages(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%t", stream), func(t *testing.T) {
			direct, behind := startFake(t), startFake(t)
			p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: behind.URL()}})
			body := claudeRequest(stream)

			dv := do(t, "POST", direct.URL()+"/v1/messages?beta=true", body, claudeHeaders)
			pv := do(t, "POST", p.URL(Anthropic)+"/v1/messages?beta=true", body, claudeHeaders)
			sameView(t, dv, pv)
			if pv.Status != 200 {
				t.Fatalf("status %d: %s", pv.Status, pv.Body)
			}

			got := behind.Requests()
			if len(got) != 1 || got[0].Query != "beta=true" || !got[0].HasAPIKey ||
				got[0].Header.Get("Anthropic-Version") != claudeHeaders["anthropic-version"] ||
				got[0].Header.Get("Anthropic-Beta") != claudeHeaders["anthropic-beta"] {
				t.Fatalf("upstream did not get the request as sent: %+v", got)
			}

			c := calls.next(t)
			want := turnUsage
			if c.InputTokens != int64(want.InputTokens+want.CacheReadInputTokens+want.CacheCreationInputTokens) ||
				c.CacheReadTokens != int64(want.CacheReadInputTokens) ||
				c.CacheCreationTokens != int64(want.CacheCreationInputTokens) ||
				c.OutputTokens != int64(want.OutputTokens) || !c.UsageKnown {
				t.Errorf("usage: in %d out %d cache read %d creation %d known %v; server sent %+v",
					c.InputTokens, c.OutputTokens, c.CacheReadTokens, c.CacheCreationTokens, c.UsageKnown, want)
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"Provider", c.Provider, Anthropic},
				{"API", c.API, "messages"},
				{"Path", c.Path, "/v1/messages"},
				{"Status", c.Status, 200},
				{"ErrorType", c.ErrorType, ""},
				{"Stream", c.Stream, stream},
				{"RequestModel", c.RequestModel, "claude-sonnet-4-5-20250929"},
				{"MaxTokens", c.MaxTokens, int64(32000)},
				{"upstream", net.JoinHostPort(c.ServerAddress, strconv.Itoa(c.ServerPort)), strings.TrimPrefix(behind.URL(), "http://")},
				{"ResponseModel", c.ResponseModel, "claude-sonnet-4-5-20250929"},
				{"FinishReasons", c.FinishReasons, []string{"tool_use"}},
				{"ToolsOffered", c.ToolsOffered, []string{"Bash", "Read"}},
				{"ToolCall names", len(c.ToolCalls) == 1 && c.ToolCalls[0].Name == "Bash" && strings.HasPrefix(c.ToolCalls[0].ID, "toolu_"), true},
				{"no arguments without full capture", c.ToolCalls[0].Arguments, ""},
				{"PromptSHA256", c.PromptSHA256, hexSHA(body)},
				{"SystemPromptSHA256", c.SystemPromptSHA256, hexSHA("You are Claude Code.\nBe brief.")},
				{"RequestBytes", c.RequestBytes, int64(len(body))},
				{"ResponseBytes", c.ResponseBytes, int64(len(pv.Body))},
				{"SessionID", c.SessionID, "5f0c1a2e-session"},
				{"TraceParent", c.TraceParent, claudeHeaders["traceparent"]},
				{"Prompt", c.Prompt, ""},
				{"Response", c.Response, ""},
				{"times ordered", !c.Start.After(c.FirstByte) && !c.FirstByte.After(c.End) && !c.FirstByte.IsZero(), true},
			}
			if strings.HasPrefix(string(pv.Body), "{") {
				checks = append(checks, struct {
					name      string
					got, want any
				}{"ResponseID in body", strings.Contains(string(pv.Body), `"id":"`+c.ResponseID+`"`), true})
			}
			for _, ch := range checks {
				if !reflect.DeepEqual(ch.got, ch.want) {
					t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
				}
			}
			if strings.Contains(fmt.Sprintf("%#v", c), "NEVER-RECORD") {
				t.Error("the API key reached the event")
			}
			if usd, ok := prices.Cost(c); !ok || usd <= 0 {
				t.Errorf("Cost = %v, %v; want a price for claude-sonnet-4-5", usd, ok)
			}
		})
	}
}

// TestCountTokensAndHello: non-model endpoints pass through and are
// reported by API name, without usage.
func TestCountTokensAndHello(t *testing.T) {
	direct, behind := startFake(t), startFake(t)
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: behind.URL()}})
	for _, tc := range []struct{ method, path, body, api string }{
		{"HEAD", "/api/hello", "", "hello"},
		{"POST", "/v1/messages/count_tokens", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`, "count_tokens"},
	} {
		dv := do(t, tc.method, direct.URL()+tc.path, tc.body, claudeHeaders)
		pv := do(t, tc.method, p.URL(Anthropic)+tc.path, tc.body, claudeHeaders)
		sameView(t, dv, pv)
		c := calls.next(t)
		if c.API != tc.api || c.Method != tc.method || c.Status != 200 || c.UsageKnown || c.InputTokens != 0 {
			t.Errorf("%s %s: event %+v", tc.method, tc.path, c)
		}
	}
}

// TestStreamNotBuffered: the client gets the first event while the
// upstream is still holding the rest back.
func TestStreamNotBuffered(t *testing.T) {
	release := make(chan struct{})
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n")
		fmt.Fprint(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: up}})
	resp, err := client.Post(p.URL(Anthropic)+"/v1/messages", "application/json", strings.NewReader(`{"model":"claude-haiku-4-5","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		got <- l
	}()
	select {
	case l := <-got:
		if l != "event: message_start\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("first event not relayed while the upstream held the rest: the proxy buffers")
	}
	close(release)
	io.Copy(io.Discard, br)
	c := calls.next(t)
	if c.InputTokens != 5 || c.OutputTokens != 9 || c.ErrorType != "" {
		t.Errorf("usage in %d out %d error %q; want 5, 9 (message_delta overwrites), none", c.InputTokens, c.OutputTokens, c.ErrorType)
	}
}

// TestFullCapture: content appears only in full mode, bounded and not
// redacted — the sensor never redacts (the recorder does, recorder
// TestCapturedTextRedactedThenCut) — and never the API key.
func TestFullCapture(t *testing.T) {
	behind := startFake(t)
	p, calls := startProxy(t, Config{
		Upstreams: map[string]string{Anthropic: behind.URL()},
		Capture:   Capture{Full: true},
	})
	do(t, "POST", p.URL(Anthropic)+"/v1/messages", claudeRequest(true), claudeHeaders)
	c := calls.next(t)
	if !strings.Contains(c.Prompt, "fix the flaky test") || c.ContentLimit != 1<<20 {
		t.Errorf("Prompt not captured as sent (limit %d): %q", c.ContentLimit, c.Prompt)
	}
	if len(c.ToolCalls) != 1 || !strings.Contains(c.ToolCalls[0].Arguments, `"command":"go test ./..."`) {
		t.Errorf("tool arguments not captured: %+v", c.ToolCalls)
	}
	if strings.Contains(fmt.Sprintf("%#v", c), "NEVER-RECORD") {
		t.Error("the API key reached the event in full capture")
	}
}

// TestFullCaptureExpires: a request received after Capture.Until is
// metered without content (a long run outlives --capture-full).
func TestFullCaptureExpires(t *testing.T) {
	behind := startFake(t)
	for _, tc := range []struct {
		name    string
		until   time.Time
		content bool
	}{
		{"before the expiry", time.Now().Add(time.Hour), true},
		{"after the expiry", time.Now().Add(-time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, calls := startProxy(t, Config{
				Upstreams: map[string]string{Anthropic: behind.URL()},
				Capture:   Capture{Full: true, Until: tc.until},
			})
			do(t, "POST", p.URL(Anthropic)+"/v1/messages", claudeRequest(true), claudeHeaders)
			c := calls.next(t)
			if got := c.Prompt != "" || c.Response != ""; got != tc.content {
				t.Errorf("content captured = %v (prompt %d bytes, response %d), want %v", got, len(c.Prompt), len(c.Response), tc.content)
			}
			if !c.UsageKnown {
				t.Errorf("metering stopped with content capture: %+v", c)
			}
		})
	}
}

// newServer starts an upstream on loopback and returns its URL.
func newServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCaptureBoundedWithMargin: the proxy keeps Limit + ContentMargin
// bytes of each text, so that a secret straddling the limit is whole when
// the recorder redacts (then cuts to ContentLimit); never split a
// character.
func TestCaptureBoundedWithMargin(t *testing.T) {
	long := strings.Repeat("é", ContentMargin) // 2 bytes each: past the margin
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_s","model":"claude-haiku-4-5","content":[{"type":"text","text":"token: %s"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`, long)
	})
	p, calls := startProxy(t, Config{
		Upstreams: map[string]string{Anthropic: up},
		Capture:   Capture{Full: true, Limit: 20},
	})
	do(t, "POST", p.URL(Anthropic)+"/v1/messages", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`, nil)
	c := calls.next(t)
	if c.ContentLimit != 20 || len(c.Response) > 20+ContentMargin || len(c.Response) < ContentMargin || !utf8.ValidString(c.Response) || !strings.HasPrefix(c.Response, "token: é") {
		t.Errorf("Response: %d bytes (limit %d, valid %v): want at most limit+margin, whole characters", len(c.Response), c.ContentLimit, utf8.ValidString(c.Response))
	}
}
