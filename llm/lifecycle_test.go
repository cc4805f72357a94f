package llm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldStream sends message_start, then waits for release (or the client
// leaving) before finishing the stream.
func heldStream(t *testing.T, release <-chan struct{}) string {
	return newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, messageStart)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	})
}

// TestCloseWaitsForStreams: Close lets an open stream finish, and its
// event is emitted before Close returns.
func TestCloseWaitsForStreams(t *testing.T) {
	release := make(chan struct{})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: heldStream(t, release)}})
	resp, err := client.Post(p.URL(Anthropic)+"/v1/messages", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a stream was open")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.HasSuffix(string(body), "message_stop\"}\n\n") {
		t.Fatalf("stream did not finish through Close: %v %q", err, body)
	}
	<-closed
	select {
	case c := <-calls.ch:
		if c.ErrorType != "" || !c.UsageKnown {
			t.Errorf("event %+v", c)
		}
	default:
		t.Error("no event emitted before Close returned")
	}
}

// TestCloseIsBounded: a stream that never ends is cut after CloseTimeout.
func TestCloseIsBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: heldStream(t, release)}, CloseTimeout: 200 * time.Millisecond})
	resp, err := client.Post(p.URL(Anthropic)+"/v1/messages", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	p.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with CloseTimeout 200ms", d)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the client saw a clean end of a stream that was cut")
	}
	select {
	case c := <-calls.ch:
		if c.ErrorType == "" {
			t.Errorf("cut stream recorded without an error type: %+v", c)
		}
	default:
		t.Error("no event emitted for the cut stream before Close returned")
	}
}

// TestPIDOf: the caller's resolver gets the client's socket address.
func TestPIDOf(t *testing.T) {
	var seen netip.AddrPort
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	p, calls := startProxy(t, Config{
		Upstreams: map[string]string{Anthropic: up},
		PIDOf:     func(a netip.AddrPort) uint32 { seen = a; return 4242 },
	})
	do(t, "GET", p.URL(Anthropic)+"/v1/models", "", nil)
	c := calls.next(t)
	if c.PID != 4242 || !seen.Addr().IsLoopback() || seen.Port() == 0 || c.API != "models" {
		t.Errorf("PID %d from %v, API %q", c.PID, seen, c.API)
	}
}

func TestStartRejects(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unknown provider": {Upstreams: map[string]string{"gemini": "https://example.invalid"}},
		"not http":         {Upstreams: map[string]string{Anthropic: "unix:///tmp/x"}},
	} {
		if p, err := Start(cfg); err == nil {
			p.Close()
			t.Errorf("%s: Start accepted %+v", name, cfg.Upstreams)
		}
	}
}

// TestUpgradePassesThrough: a WebSocket-style upgrade (Codex opens one to
// /v1/responses before falling back to SSE) is spliced, not broken.
func TestUpgradePassesThrough(t *testing.T) {
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			w.WriteHeader(400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		line, _ := brw.ReadString('\n')
		io.WriteString(conn, "echo "+line)
	})
	p, calls := startProxy(t, Config{Upstreams: map[string]string{OpenAI: up + "/v1"}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL(OpenAI), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /responses HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade through the proxy: %v %v", resp, err)
	}
	io.WriteString(conn, "hello\n")
	if got, _ := br.ReadString('\n'); got != "echo hello\n" {
		t.Errorf("spliced connection echoed %q", got)
	}
	conn.Close()
	if c := calls.next(t); c.Status != 101 || c.API != "responses" || c.UsageKnown {
		t.Errorf("event %+v", c)
	}
}

// TestPIDOfOncePerConnection: the socket lookup runs once per client
// connection; every request on it carries that pid, and a new connection
// is looked up again.
func TestPIDOfOncePerConnection(t *testing.T) {
	var mu sync.Mutex
	lookups := map[netip.AddrPort]int{}
	up := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	p, calls := startProxy(t, Config{
		Upstreams: map[string]string{Anthropic: up},
		PIDOf: func(a netip.AddrPort) uint32 {
			mu.Lock()
			defer mu.Unlock()
			lookups[a]++
			return uint32(len(lookups))
		},
	})
	get := func(c *http.Client) {
		t.Helper()
		resp, err := c.Get(p.URL(Anthropic) + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Each call's event is taken before the next request: the proxy emits
	// it when the response ends, which can race the client's next request.
	var pids []uint32
	keepAlive := &http.Client{Transport: &http.Transport{}}
	for range 3 {
		get(keepAlive)
		pids = append(pids, calls.next(t).PID)
	}
	fresh := &http.Client{Transport: &http.Transport{}}
	get(fresh)
	pids = append(pids, calls.next(t).PID)
	if pids[0] != 1 || pids[1] != 1 || pids[2] != 1 || pids[3] != 2 {
		t.Errorf("pids %v, want [1 1 1 2] (one lookup per connection)", pids)
	}
	mu.Lock()
	defer mu.Unlock()
	for a, n := range lookups {
		if n != 1 {
			t.Errorf("%v looked up %d times", a, n)
		}
	}
}
