package netwatch

// The splice proxy closes the CDN-shared-address hole of resolve-then-allow:
// an address that an allowed name resolved to often also serves names that
// are not allowed (one CDN edge, many customers), so "the address is
// allowed" says nothing about which site the bytes reach. The connect hook
// steers TCP connections to allowed addresses on the inspected ports here;
// the proxy reads the name the client itself asks the server for (TLS SNI,
// HTTP Host), checks it, and then splices the bytes to the original
// destination untouched. It never terminates TLS, holds no keys and rewrites
// nothing: the client still verifies the real server's certificate.
//
// On plain HTTP every request on a keep-alive connection is checked, not
// only the first: a CDN routes each request by its own Host.
//
// What it cannot see, on purpose (no MITM): names inside TLS (domain
// fronting, an HTTP Host inside the tunnel that differs from the SNI, the
// inner ClientHello of ECH — only the outer public name is checked), and
// plain HTTP after an Upgrade or CONNECT request (its host was checked;
// the tunnel is the server's). QUIC (UDP 443) never reaches it; the
// connect hook has to decide about UDP on the inspected ports by itself.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// Checks recorded in event.NetDecision.Check by the splice proxy.
const (
	CheckSNI  = "sni"  // the first bytes were a TLS record
	CheckHost = "host" // anything else: HTTP/1.x, or an unknown protocol
)

// Rules recorded when no name could be checked, or the name is not allowed.
// Each is a deny in enforce mode and an audit (splice anyway) in observe
// mode, except RuleNoOrigin and RuleLoop, which are always denies: there is
// nowhere to splice to.
const (
	RuleNotAllowed      = "not-allowed"             // Allow said no and gave no rule
	RuleNoSNI           = "no-sni"                  // a ClientHello without server_name: nothing to check against the allowlist
	RuleMalformedTLS    = "malformed-tls"           // not a parseable ClientHello (or an ambiguous one: duplicate extensions, two host names)
	RuleNoHost          = "no-host"                 // an HTTP/1.x request without a Host (HTTP/1.0)
	RuleMalformedHTTP   = "malformed-http"          // duplicate Host, a Host that disagrees with an absolute URI, obs-fold, "Host :"
	RuleUnknownProtocol = "unknown-protocol"        // neither TLS nor HTTP/1.x on an inspected port
	RuleTooLarge        = "too-large"               // no name within the first 16 KiB
	RuleTruncated       = "truncated"               // the client half-closed before a name was complete
	RuleTimeout         = "first-bytes-timeout"     // the client sent no name within SpliceConfig.Timeout
	RuleNoOrigin        = "no-original-destination" // OrigDst failed: a connection not steered by the hook
	RuleLoop            = "loop"                    // the original destination is the proxy itself
)

const (
	// helloLimit bounds a ClientHello and an HTTP request head. Real
	// ClientHellos are 0.3–2 KiB (about 1.3 KiB with a post-quantum key
	// share); request heads are smaller still.
	helloLimit = 16 << 10
	// peekLimit backstops the bytes held per connection before a decision:
	// the hello limit plus room for record headers of a fragmented hello.
	peekLimit = 32 << 10

	defaultTimeout     = 5 * time.Second
	defaultDialTimeout = 10 * time.Second
)

// SpliceConfig configures StartSplice.
type SpliceConfig struct {
	// Listen is the TCP address to listen on, e.g. "127.0.0.1:0". One proxy
	// serves one address family's steered connections; start one per
	// family ("127.0.0.1:0", "[::1]:0") when both are steered.
	Listen string
	// OrigDst returns the destination the client asked for before the
	// connect hook steered it here (the hook records it in a BPF map).
	// Required. An error closes the connection with RuleNoOrigin.
	OrigDst func(c *net.TCPConn) (netip.AddrPort, error)
	// PID optionally names the process that owns the client end, for the
	// event header; 0 (or a nil PID) means unknown. Per connection, PID is
	// called once, before OrigDst and from the same goroutine, so OrigDst
	// may consume a lookup that PID cached.
	PID func(c *net.TCPConn) uint32
	// Allow checks a name (lower-case, no trailing dot; an IP literal when
	// the client sent one) and the original destination port. It returns
	// the network.allow rule that matched, or ok=false with an optional
	// reason (RuleNotAllowed when empty). Required; called concurrently.
	Allow func(name string, port int) (rule string, ok bool)
	// Enforce refuses (RST) connections whose name is missing or not
	// allowed; otherwise they are recorded as audits and spliced anyway.
	Enforce bool
	// Emit receives one event.NetDecision per decided connection (Check
	// CheckSNI or CheckHost; allows too, so a network_call span learns the
	// real server name). Called concurrently from connection goroutines,
	// never after Close returns. Optional.
	Emit func(event.Event)
	// Timeout bounds the wait for the first bytes to carry a name
	// (default 5 s). A client that says nothing is denied in enforce mode
	// with RuleTimeout; in observe mode the connection is spliced anyway,
	// so a server-speaks-first protocol still works.
	Timeout time.Duration
	// Dial connects to the original destination. Default: a net.Dialer
	// with a 10 s timeout. The proxy runs in the supervisor, outside the
	// run's cgroup, so the run's connect hooks do not apply to this dial
	// and it cannot be steered back into the proxy; a custom Dial must
	// keep it that way (never dial from inside the run's cgroup).
	Dial func(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
}

// SpliceProxy is a running splice proxy. Its methods are safe for
// concurrent use.
type SpliceProxy struct {
	cfg    SpliceConfig
	ln     *net.TCPListener
	addr   netip.AddrPort
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// StartSplice listens on cfg.Listen and serves connections until Close.
func StartSplice(cfg SpliceConfig) (*SpliceProxy, error) {
	if cfg.OrigDst == nil || cfg.Allow == nil {
		return nil, errors.New("starting splice proxy: OrigDst and Allow are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: defaultDialTimeout}
		cfg.Dial = func(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", dst.String())
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("starting splice proxy: %w", err)
	}
	tl := ln.(*net.TCPListener)
	ctx, cancel := context.WithCancel(context.Background())
	p := &SpliceProxy{
		cfg:    cfg,
		ln:     tl,
		addr:   tl.Addr().(*net.TCPAddr).AddrPort(),
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address the proxy listens on: where the connect hook steers.
func (p *SpliceProxy) Addr() netip.AddrPort { return p.addr }

// Close stops accepting, closes every live connection (both ends) and waits
// for the connection goroutines, so Emit is not called after it returns.
func (p *SpliceProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("closing splice proxy: %w", err)
	}
	return nil
}

// track registers a live connection so Close can end it; false when the
// proxy is already closing (the caller then closes c itself).
func (p *SpliceProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *SpliceProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *SpliceProxy) serve() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait instead of spinning, like net/http.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

// handle decides about one steered connection and splices it when allowed.
func (p *SpliceProxy) handle(c *net.TCPConn) {
	dec := event.NetDecision{
		Op:        event.NetConnect,
		Transport: event.TCP,
		Check:     CheckHost,
	}
	if p.cfg.PID != nil {
		dec.PID = p.cfg.PID(c)
	}
	dst, err := p.cfg.OrigDst(c)
	if err != nil || !dst.IsValid() {
		dec.Verdict, dec.Rule = event.Deny, RuleNoOrigin
		p.emit(dec)
		reset(c)
		return
	}
	dec.Addr = dst
	if dst.Port() == p.addr.Port() && (dst.Addr().Unmap() == p.addr.Addr().Unmap() || dst.Addr().IsUnspecified()) {
		dec.Verdict, dec.Rule = event.Deny, RuleLoop
		p.emit(dec)
		reset(c)
		return
	}

	head, in := p.inspect(c)
	if in.abort {
		c.Close()
		return
	}
	dec.Check, dec.Name = in.check, in.name
	switch {
	case in.rule != "":
		dec.Rule = in.rule
	default:
		rule, ok := p.cfg.Allow(in.name, int(dst.Port()))
		if ok {
			dec.Verdict, dec.Rule = event.Allow, rule
		} else if rule == "" {
			dec.Rule = RuleNotAllowed
		} else {
			dec.Rule = rule
		}
	}
	if in.silent {
		// The client connected and half-closed without a byte: happy
		// eyeballs losing a race, a port probe. Nothing was asked for and
		// nothing would reach the server; a record per lost race would be
		// noise, in either mode.
		c.Close()
		return
	}
	if dec.Verdict != event.Allow {
		if p.cfg.Enforce {
			dec.Verdict = event.Deny
			p.emit(dec)
			reset(c)
			return
		}
		dec.Verdict = event.Audit
	}
	p.emit(dec)

	ctx, cancel := context.WithTimeout(p.ctx, defaultDialTimeout)
	up, err := p.cfg.Dial(ctx, dst)
	cancel()
	if err != nil {
		// The client's connect already succeeded (to us): a reset is the
		// closest thing to the refusal or timeout it would have seen.
		reset(c)
		return
	}
	if !p.track(up) {
		up.Close()
		c.Close()
		return
	}
	defer p.untrack(up)
	upload := func() error {
		if len(head) > 0 {
			if _, err := up.Write(head); err != nil {
				return err
			}
		}
		_, err := io.Copy(up, c)
		return err
	}
	if in.check == CheckHost && in.name != "" {
		// Plain HTTP: every request on the connection names its host, and
		// a CDN routes each one by it, so a keep-alive connection opened
		// for an allowed name could carry the next request to another.
		// Uploads on this path pass through user space; responses still
		// splice.
		rs := &requestStream{w: up, check: p.laterRequest(dec, in.name)}
		upload = func() error {
			if _, err := rs.Write(head); err != nil {
				return err
			}
			_, err := io.Copy(rs, c)
			return err
		}
	}
	splice(c, up, upload)
}

// errRefused ends a connection whose later request was denied.
var errRefused = errors.New("request refused by the splice proxy")

// laterRequest checks the requests after the first on a plain-HTTP
// connection: a host other than the last one checked is decided and
// recorded like the first; a head that cannot be framed is denied
// (enforce) or audited, and the rest of the connection passes unread.
func (p *SpliceProxy) laterRequest(first event.NetDecision, firstHost string) func(string, error) error {
	last := firstHost
	return func(host string, err error) error {
		if err == nil && host == last {
			return nil
		}
		d := first
		d.Name, d.Verdict = host, event.Allow
		if err != nil {
			d.Rule, d.Verdict = ruleFor(err), event.Deny
		} else {
			last = host
			rule, ok := p.cfg.Allow(host, int(first.Addr.Port()))
			switch {
			case ok:
				d.Rule = rule
			case rule == "":
				d.Rule, d.Verdict = RuleNotAllowed, event.Deny
			default:
				d.Rule, d.Verdict = rule, event.Deny
			}
		}
		if d.Verdict == event.Deny && !p.cfg.Enforce {
			d.Verdict = event.Audit
		}
		p.emit(d)
		if d.Verdict == event.Deny {
			return errRefused
		}
		if err != nil {
			return errStopInspecting
		}
		return nil
	}
}

// inspection is what the first bytes of a connection said.
type inspection struct {
	check string // CheckSNI or CheckHost
	name  string // the name to check, when rule is empty
	rule  string // why there is no name to check
	// silent: the client half-closed without sending a byte.
	silent bool
	// abort: the client end failed (reset); nothing to decide.
	abort bool
}

// inspect reads from c until the bytes carry a name, prove they cannot, or
// the timeout passes. It returns the bytes read (to be forwarded first) and
// what they said.
func (p *SpliceProxy) inspect(c *net.TCPConn) ([]byte, inspection) {
	c.SetReadDeadline(time.Now().Add(p.cfg.Timeout))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) > 0 {
			check, name, err := classify(buf)
			if !errors.Is(err, errNeedMore) {
				in := inspection{check: check, name: name}
				if err != nil {
					in.rule = ruleFor(err)
				}
				return buf, in
			}
		}
		if len(buf) >= peekLimit {
			check, _, _ := classify(buf)
			return buf, inspection{check: check, rule: RuleTooLarge}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), peekLimit-len(buf)))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == nil {
			continue
		}
		check, _, _ := classify(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return buf, inspection{check: check, rule: RuleTimeout}
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return buf, inspection{check: check, rule: RuleTruncated, silent: true}
			}
			return buf, inspection{check: check, rule: RuleTruncated}
		default:
			return buf, inspection{abort: true}
		}
	}
}

// classify picks the parser by the first byte: 22 is a TLS handshake
// record; everything else is judged as HTTP/1.x.
func classify(b []byte) (check, name string, err error) {
	if len(b) > 0 && b[0] == recordTypeHandshake {
		name, err = parseSNI(b)
		return CheckSNI, name, err
	}
	name, err = parseHost(b)
	return CheckHost, name, err
}

func ruleFor(err error) string {
	switch {
	case errors.Is(err, errNoSNI):
		return RuleNoSNI
	case errors.Is(err, errNoHost):
		return RuleNoHost
	case errors.Is(err, errNotHTTP):
		return RuleUnknownProtocol
	case errors.Is(err, errTooLarge):
		return RuleTooLarge
	case errors.Is(err, errMalformedTLS):
		return RuleMalformedTLS
	case errors.Is(err, errMalformedHTTP):
		return RuleMalformedHTTP
	}
	return RuleUnknownProtocol
}

func (p *SpliceProxy) emit(d event.NetDecision) {
	if p.cfg.Emit == nil {
		return
	}
	d.Time = time.Now()
	p.cfg.Emit(d)
}

// reset closes c with a RST (SO_LINGER 0), so a refused client sees
// ECONNRESET at once instead of a clean EOF it might retry differently.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// splice runs upload (the client-to-server direction, starting with the
// bytes already read) and copies the other direction until both finished.
// Between two *net.TCPConn, io.Copy uses splice(2): the bytes do not pass
// through user space. An EOF on one side becomes a half-close (FIN) on the
// other; an error on either side resets both.
func splice(c *net.TCPConn, up net.Conn, upload func() error) {
	defer c.Close()
	defer up.Close()
	var once sync.Once
	abort := func() {
		once.Do(func() {
			c.SetLinger(0)
			if t, ok := up.(*net.TCPConn); ok {
				t.SetLinger(0)
			}
			c.Close()
			up.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := upload(); err != nil {
			abort()
			return
		}
		closeWrite(up)
	}()
	if _, err := io.Copy(c, up); err != nil {
		abort()
	} else {
		c.CloseWrite()
	}
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// What the parsers (parseSNI, parseHost, requestStream) report; ruleFor
// maps each to the rule recorded.
var (
	errNeedMore      = errors.New("need more bytes")
	errNoSNI         = errors.New("client hello without server_name")
	errMalformedTLS  = errors.New("malformed client hello")
	errNotHTTP       = errors.New("not an HTTP/1.x request")
	errNoHost        = errors.New("request without host")
	errMalformedHTTP = errors.New("malformed request head")
	errTooLarge      = errors.New("client hello or request head over 16 KiB")
)

// normalizeName lower-cases a DNS name and drops one trailing dot. It
// accepts letters, digits, '-', '_' and '.' in non-empty labels (and the
// characters of IP literals, ':' included, for HTTP Host), nothing else:
// the name ends up in the trace and in pattern matching.
func normalizeName(s string) (string, bool) {
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), a.Zone() == ""
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_') {
				return "", false
			}
		}
	}
	return s, true
}
