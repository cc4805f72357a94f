// Package llm is the run's metering reverse proxy for model APIs: the
// child's ANTHROPIC_BASE_URL / OPENAI_BASE_URL point at it, it forwards
// every request to the upstream the user had configured and reports each
// one as an event.LLMCall (model, tokens, latency, status, digests). It
// leaves pricing to the recorder (package prices turns usage into cost).
//
// What the client receives is what the upstream sent, byte for byte:
// headers (hop-by-hop ones aside), status, bodies and streams, compressed
// or not, relayed as they arrive and flushed after every write. Metering
// reads copies of those bytes on the side and can never change them; a
// metering failure only loses metering. The one difference a client can
// see: when the upstream cannot be reached (or fails before answering),
// the client gets a 502 from the proxy instead of a connection error,
// because its own connection (to the proxy) did succeed.
//
// It must not build spans (the recorder does), record API keys or headers
// in any mode, or keep prompt and response text unless full capture is on
// (and then only through the caller's redactor).
package llm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// Provider names, as used in Config.Upstreams, URL and event.LLMCall.
const (
	Anthropic = "anthropic"
	OpenAI    = "openai"
)

// DefaultUpstreams are the providers' own base URLs, as their SDKs default
// them (the OpenAI SDKs' base includes /v1 and they append
// "/chat/completions"; Anthropic's does not and clients append
// "/v1/messages").
var DefaultUpstreams = map[string]string{
	Anthropic: "https://api.anthropic.com",
	OpenAI:    "https://api.openai.com/v1",
}

// DefaultMaxMeteredBody is how much of a request or JSON response body (or
// of one SSE event) is held for metering. Larger bodies are still
// forwarded whole; they are just not metered (usage unknown).
const DefaultMaxMeteredBody = 32 << 20

// DefaultCloseTimeout bounds how long Close waits for in-flight requests.
const DefaultCloseTimeout = 10 * time.Second

// Capture says what content the proxy may keep.
type Capture struct {
	// Full adds prompts, response text and tool-call arguments to the
	// events, bounded, never redacted: the recorder redacts them, then
	// cuts each to Limit (event.LLMCall.ContentLimit), so that a cut never
	// leaves half a secret.
	Full bool
	// Limit is the captured size of each text after redaction (0: 1 MiB);
	// the proxy keeps ContentMargin more for the redactor.
	Limit int
	// Until ends full capture: a request received after it is metered
	// without content (the --capture-full expiry of a long run). Zero:
	// no expiry.
	Until time.Time
}

// Config configures a proxy.
type Config struct {
	// Upstreams maps a provider (Anthropic, OpenAI) to the base URL the
	// user had configured — the value of their ANTHROPIC_BASE_URL /
	// OPENAI_BASE_URL before the run overrides it. A provider left out
	// gets its DefaultUpstreams entry.
	Upstreams map[string]string
	// Emit receives one event.LLMCall per request, after its response
	// ended. It is called from request goroutines, concurrently, and never
	// after Close returns.
	Emit    func(event.Event)
	Capture Capture
	// PIDOf, when set, replaces the proxy's own lookup of the client's
	// pid (sock_diag, then the fd tables of the run's processes: see
	// WatchCgroup) and is given the client's address (the socket's peer
	// as seen by the proxy); 0 means unknown.
	PIDOf func(remote netip.AddrPort) uint32
	// Transport reaches the upstreams. Nil means a clone of
	// http.DefaultTransport with DisableCompression set; a caller-provided
	// transport must disable compression too, or the Go transport would
	// add its own Accept-Encoding and decode the body before relaying it.
	Transport http.RoundTripper
	// ResponseHeaderTimeout, when set, fails a request whose upstream has
	// not answered in time (error type "timeout", a 504 to the client).
	// Zero: no limit of our own — a non-streamed model call can take
	// minutes, and the client has its own timeout.
	ResponseHeaderTimeout time.Duration
	MaxMeteredBody        int           // 0: DefaultMaxMeteredBody
	CloseTimeout          time.Duration // 0: DefaultCloseTimeout
	// Logf reports proxy-internal problems (a metering panic); nil: the
	// standard logger.
	Logf func(format string, args ...any)
}

// Proxy is a running metering proxy: one loopback listener per provider.
type Proxy struct {
	cfg       Config
	listeners map[string]*listener
	pids      *socketPIDs

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

type listener struct {
	provider string
	upstream *url.URL
	ln       net.Listener
	srv      *http.Server
	rp       *httputil.ReverseProxy
}

// Start listens on 127.0.0.1, one free port per provider, and serves until
// Close.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Capture.Limit <= 0 {
		cfg.Capture.Limit = 1 << 20
	}
	if cfg.MaxMeteredBody <= 0 {
		cfg.MaxMeteredBody = DefaultMaxMeteredBody
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableCompression = true
		t.ResponseHeaderTimeout = cfg.ResponseHeaderTimeout
		// The environment's HTTP(S)_PROXY still applies (a corporate
		// proxy); only the run's own loopback addresses bypass it.
		cfg.Transport = t
	}
	ups := map[string]string{}
	for p, u := range DefaultUpstreams {
		ups[p] = u
	}
	for p, u := range cfg.Upstreams {
		if _, known := DefaultUpstreams[p]; !known {
			return nil, fmt.Errorf("starting llm proxy: unknown provider %q", p)
		}
		if u != "" {
			ups[p] = u
		}
	}
	p := &Proxy{cfg: cfg, listeners: map[string]*listener{}, pids: &socketPIDs{cache: map[netip.AddrPort]socketOwner{}}}
	for prov, raw := range ups {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Close()
			return nil, fmt.Errorf("starting llm proxy: %s upstream %q is not an http(s) URL", prov, raw)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("starting llm proxy: listening on loopback: %w", err)
		}
		l := &listener{provider: prov, upstream: u, ln: ln}
		l.rp = &httputil.ReverseProxy{
			Rewrite:        l.rewrite,
			Transport:      cfg.Transport,
			FlushInterval:  -1, // flush after every write: streams are never held back
			ModifyResponse: modifyResponse,
			ErrorHandler:   l.upstreamError,
			ErrorLog:       log.New(io.Discard, "", 0), // failures are in the events
		}
		l.srv = &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(l, w, r) }),
			// The client's pid is resolved once per connection (a socket
			// lookup), not per request: a keep-alive connection does not
			// change owner.
			ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, connPIDKey{}, &connPID{})
			},
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		p.listeners[prov] = l
		go l.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	}
	var addrs []netip.AddrPort
	for _, prov := range []string{Anthropic, OpenAI} {
		if l, ok := p.listeners[prov]; ok {
			if ap, err := netip.ParseAddrPort(l.ln.Addr().String()); err == nil {
				addrs = append(addrs, ap)
			}
		}
	}
	p.pids.listeners.Store(&addrs)
	return p, nil
}

// WatchCgroup narrows the client pid lookup to the processes of the
// cgroup v2 directory dir and its descendants (the run's cgroup, once it
// exists); until then, and without one, every process in /proc is
// searched.
func (p *Proxy) WatchCgroup(dir string) {
	p.pids.cgroupDir.Store(&dir)
}

type connPIDKey struct{}

// connPID is the pid of one client connection, resolved at its first request.
type connPID struct {
	once sync.Once
	pid  uint32
}

func (p *Proxy) pidOf(r *http.Request) uint32 {
	resolve := func() uint32 {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return 0
		}
		if p.cfg.PIDOf != nil {
			return p.cfg.PIDOf(ap)
		}
		return p.pids.pidOf(ap)
	}
	cp, ok := r.Context().Value(connPIDKey{}).(*connPID)
	if !ok {
		return resolve()
	}
	cp.once.Do(func() { cp.pid = resolve() })
	return cp.pid
}

// URL is the base URL to give the child for provider (its
// ANTHROPIC_BASE_URL or OPENAI_BASE_URL): "http://127.0.0.1:PORT", with no
// path. A request for PATH on it is forwarded to the upstream base URL
// plus PATH, so whatever a client appends to its base (Claude Code's
// "/v1/messages", the OpenAI SDKs' "/chat/completions") lands where it
// would have without the proxy. Empty for an unknown provider.
func (p *Proxy) URL(provider string) string {
	l := p.listeners[provider]
	if l == nil {
		return ""
	}
	return "http://" + l.ln.Addr().String()
}

// Close stops accepting requests and waits for the ones in flight (open
// streams included) up to Config.CloseTimeout, then cuts them. Their events
// are emitted before Close returns; none is emitted after.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
	defer cancel()
	var errs []error
	var wg sync.WaitGroup
	for _, l := range p.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				l.srv.Close() // deadline passed: cut what is still streaming
			}
		}()
	}
	wg.Wait()
	// Handlers of cut connections (and upgraded ones, which Shutdown does
	// not track) still emit; give them a moment, bounded.
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		errs = append(errs, errors.New("closing llm proxy: requests still in flight after the timeout"))
	}
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return errors.Join(errs...)
}

func (p *Proxy) emit(c event.LLMCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.cfg.Emit == nil {
		return
	}
	p.cfg.Emit(c)
}

type ctxKey struct{}

// exchange is one request through the proxy.
type exchange struct {
	m         meter
	body      *meteredBody
	header    time.Time // response headers arrived
	upErr     error     // the upstream failed before answering
	reqHash   hash.Hash // of the request body beyond the buffered head
	reqDone   bool      // the whole request body was read (the digest is of all of it)
	reqBytes  int64
	reqHashMu sync.Mutex
}

func (l *listener) rewrite(pr *httputil.ProxyRequest) {
	u := *l.upstream
	u.Path = l.upstream.Path + pr.In.URL.Path
	u.RawPath = ""
	if pr.In.URL.RawPath != "" {
		u.RawPath = l.upstream.EscapedPath() + pr.In.URL.RawPath
	}
	u.RawQuery = pr.In.URL.RawQuery
	pr.Out.URL = &u
	pr.Out.Host = "" // the upstream's own host name (TLS SNI and Host agree)
}

// hostPort is an upstream URL's host and port (the scheme's default when
// the URL names none): server.address and server.port of its calls.
func hostPort(u *url.URL) (string, int) {
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = 443
		if u.Scheme == "http" {
			port = 80
		}
	}
	return u.Hostname(), port
}

// serve handles one request: read the request head for metering, forward,
// meter the response as it is relayed, emit.
func (p *Proxy) serve(l *listener, w http.ResponseWriter, r *http.Request) {
	p.inflight.Add(1)
	defer p.inflight.Done()
	path := l.upstream.Path + r.URL.Path
	x := &exchange{}
	c := &event.LLMCall{
		Start:       time.Now(),
		Provider:    l.provider,
		API:         apiOf(l.provider, path),
		Method:      r.Method,
		Path:        path,
		SessionID:   r.Header.Get("X-Claude-Code-Session-Id"),
		TraceParent: r.Header.Get("Traceparent"),
	}
	c.ServerAddress, c.ServerPort = hostPort(l.upstream)
	capture := p.cfg.Capture
	if capture.Full && !capture.Until.IsZero() && c.Start.After(capture.Until) {
		capture.Full = false
	}
	x.m = meter{call: c, capture: capture, max: p.cfg.MaxMeteredBody}
	c.ContentCaptured = capture.Full
	c.PID = p.pidOf(r)

	// Always emit, even when the relay aborts (a truncated upstream body
	// makes ReverseProxy panic with http.ErrAbortHandler so the client sees
	// the same cut); any other panic is ours and must not take the run down.
	defer func() {
		rec := recover()
		if rec != nil && rec != http.ErrAbortHandler {
			p.cfg.Logf("llm proxy: panic serving %s %s: %v", r.Method, path, rec)
		}
		p.finish(x, r)
		if rec == http.ErrAbortHandler {
			panic(rec)
		}
		if rec != nil {
			panic(http.ErrAbortHandler) // cut the client's connection; the server recovers it silently
		}
	}()

	x.readRequest(r, p.cfg.MaxMeteredBody)
	ctx := context.WithValue(r.Context(), ctxKey{}, x)
	l.rp.ServeHTTP(noSniff{w}, r.WithContext(ctx))
}

// noSniff keeps net/http from adding a Content-Type the upstream did not
// send (it sniffs one from the first bytes otherwise). Unwrap lets
// http.ResponseController reach the real writer's Flush and Hijack.
type noSniff struct{ http.ResponseWriter }

func (w noSniff) WriteHeader(code int) {
	if _, ok := w.Header()["Content-Type"]; !ok {
		w.Header()["Content-Type"] = nil
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w noSniff) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readRequest buffers the request body up to max for metering and gives
// the upstream the same bytes: the buffered head, then the rest streamed
// (hashed as it goes), then whatever error ended the client's upload.
func (x *exchange) readRequest(r *http.Request, max int) {
	if r.Body == nil || r.Body == http.NoBody {
		return // no body, no digest (GET, HEAD)
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	h := sha256.New()
	h.Write(head)
	x.reqHash = h
	x.reqBytes = int64(len(head))
	var rest io.Reader
	switch {
	case err != nil:
		rest = errReader{err}
	case len(head) > max:
		rest = &hashingReader{r: r.Body, x: x}
	default:
		x.reqDone = true
	}
	complete := len(head) <= max && err == nil
	x.m.request(head, complete)
	body := io.Reader(bytes.NewReader(head))
	if rest != nil {
		body = io.MultiReader(body, rest)
	}
	r.Body = readCloser{body, r.Body}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type readCloser struct {
	io.Reader
	io.Closer
}

// hashingReader passes the rest of a large request body through, adding it
// to the request digest.
type hashingReader struct {
	r io.Reader
	x *exchange
}

func (h *hashingReader) Read(b []byte) (int, error) {
	n, err := h.r.Read(b)
	h.x.reqHashMu.Lock()
	h.x.reqHash.Write(b[:n])
	h.x.reqBytes += int64(n)
	if err == io.EOF {
		h.x.reqDone = true
	}
	h.x.reqHashMu.Unlock()
	return n, err
}

func modifyResponse(resp *http.Response) error {
	x, _ := resp.Request.Context().Value(ctxKey{}).(*exchange)
	if x == nil {
		return nil
	}
	x.header = time.Now()
	x.m.begin(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"))
	if d, ok := retryAfter(resp.Header, x.header); ok {
		x.m.call.RetryAfter, x.m.call.HasRetryAfter = d, true
	}
	// A 101 (Codex tries a WebSocket to /v1/responses first) hands the
	// connection over: ReverseProxy needs the body's own ReadWriteCloser to
	// splice it, so it is not metered.
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil && resp.Body != http.NoBody {
		x.body = &meteredBody{rc: resp.Body, x: x}
		resp.Body = x.body
	}
	return nil
}

// retryAfter reads how long the upstream asked the client to wait:
// retry-after-ms (OpenAI's, milliseconds) or Retry-After, in seconds or
// an HTTP date (counted from the response's Date when it has one, else
// from now; a date in the past is 0).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 && ms <= 1e12 { // NaN fails both
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s >= 0 && s <= 1e9) { // negative, NaN, absurd
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		now = d
	}
	return max(t.Sub(now), 0), true
}

// upstreamError answers when the upstream could not be reached or failed
// before its response headers: 502 (504 for our own header timeout), in
// the provider's error shape so the agent's error message says what
// happened.
func (l *listener) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x, _ := r.Context().Value(ctxKey{}).(*exchange)
	if x != nil {
		x.upErr = err
	}
	if r.Context().Err() != nil {
		return // the client is gone; nobody reads an answer
	}
	status := http.StatusBadGateway
	if isTimeout(err) {
		status = http.StatusGatewayTimeout
	}
	msg := "agentwatch llm proxy: upstream " + l.upstream.Redacted() + ": " + err.Error()
	var body []byte
	if l.provider == Anthropic {
		body, _ = json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": "api_error", "message": msg}})
	} else {
		body, _ = json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "code": nil}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
	if x != nil {
		x.m.call.Status = status
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError: the upstream could not be reached at all (DNS, refused,
// no route).
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// meteredBody relays the upstream response body unchanged and shows each
// chunk to the meter on the way.
type meteredBody struct {
	rc     io.ReadCloser
	x      *exchange
	first  time.Time
	n      int64
	eof    bool
	err    error
	broken bool // the meter panicked: stop metering, keep relaying
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		if b.first.IsZero() {
			b.first = time.Now()
		}
		b.n += int64(n)
		b.meter(p[:n])
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = err
	}
	return n, err
}

func (b *meteredBody) meter(chunk []byte) {
	if b.broken {
		return
	}
	defer func() {
		if recover() != nil {
			b.broken = true
		}
	}()
	b.x.m.feed(chunk)
}

func (b *meteredBody) Close() error { return b.rc.Close() }

// finish completes the call's event and emits it.
func (p *Proxy) finish(x *exchange, r *http.Request) {
	c := x.m.call
	c.End = time.Now()
	x.reqHashMu.Lock()
	c.RequestBytes = x.reqBytes
	if x.reqDone && x.reqHash != nil {
		c.PromptSHA256 = hex.EncodeToString(x.reqHash.Sum(nil))
	}
	x.reqHashMu.Unlock()
	b := x.body
	if b != nil {
		c.ResponseBytes = b.n
		c.FirstByte = b.first
	}
	if c.FirstByte.IsZero() && !x.header.IsZero() {
		c.FirstByte = x.header // a response with no body: its headers are its first byte
	}
	func() {
		defer func() {
			if recover() != nil {
				x.m.malformed = true
			}
		}()
		switch {
		case b != nil && !b.broken:
			x.m.finish(b.eof && b.err == nil)
		case b != nil:
			x.m.malformed = true
		}
	}()
	if d := x.m.decoder; d != nil {
		d.close() // idempotent; ends the decoding goroutine whatever happened above
	}
	c.ErrorType = errorType(x, r, c)
	p.emit(*c)
}

// errorType classifies a failed call, most fundamental cause first.
func errorType(x *exchange, r *http.Request, c *event.LLMCall) string {
	b := x.body
	switch {
	case x.upErr != nil && r.Context().Err() != nil:
		return "canceled" // the client gave up before the upstream answered
	case x.upErr != nil && isTimeout(x.upErr):
		return "timeout"
	case x.upErr != nil && isDialError(x.upErr):
		return "upstream_unreachable"
	case x.upErr != nil:
		return "upstream_error" // connected, but it failed before answering (closed, TLS, protocol)
	case b != nil && b.err != nil && r.Context().Err() != nil:
		return "canceled" // the client went away mid-response
	case b != nil && b.err != nil && isTimeout(b.err):
		return "timeout"
	case b != nil && b.err != nil:
		return "truncated_stream"
	case b == nil && !x.header.IsZero() && r.Context().Err() != nil:
		return "canceled"
	case c.Status >= 400:
		return "http_" + strconv.Itoa(c.Status)
	case x.m.streamErr != "":
		return x.m.streamErr
	case x.m.malformed:
		return "malformed_response"
	case b != nil && !b.eof && r.Context().Err() != nil:
		return "canceled" // the client stopped reading before the end
	}
	return ""
}
