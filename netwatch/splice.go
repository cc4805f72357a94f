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
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
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

var (
	errNeedMore      = errors.New("need more bytes")
	errNoSNI         = errors.New("client hello without server_name")
	errMalformedTLS  = errors.New("malformed client hello")
	errNotHTTP       = errors.New("not an HTTP/1.x request")
	errNoHost        = errors.New("request without host")
	errMalformedHTTP = errors.New("malformed request head")
	errTooLarge      = errors.New("client hello or request head over 16 KiB")
)

const (
	recordTypeHandshake  = 22
	handshakeClientHello = 1
	extServerName        = 0
	sniHostName          = 0
)

// parseSNI returns the server_name of the TLS ClientHello at the start of
// b, lower-case without a trailing dot. errNeedMore: b is a valid prefix;
// errNoSNI: a complete hello without the extension. A hello fragmented over
// several records is reassembled; records after the hello (0-RTT data) are
// ignored. Ambiguity is malformed: a duplicated extension or two host names
// could make the proxy check one name while the server serves another.
func parseSNI(b []byte) (string, error) {
	var hs []byte
	for pos := 0; ; {
		if len(b)-pos < 5 {
			if pos == 0 && len(b) >= 2 && b[1] != 3 {
				return "", errMalformedTLS
			}
			return "", errNeedMore
		}
		typ, major, minor := b[pos], b[pos+1], b[pos+2]
		n := int(b[pos+3])<<8 | int(b[pos+4])
		if typ != recordTypeHandshake || major != 3 || minor > 4 || n == 0 || n > 1<<14 {
			return "", errMalformedTLS
		}
		frag := b[pos+5:]
		if len(frag) > n {
			frag = frag[:n]
		}
		hs = append(hs, frag...)
		if len(hs) >= 4 {
			if hs[0] != handshakeClientHello {
				return "", errMalformedTLS
			}
			msgLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if msgLen > helloLimit {
				return "", errTooLarge
			}
			if len(hs) >= 4+msgLen {
				return parseClientHello(hs[4 : 4+msgLen])
			}
		}
		if len(frag) < n {
			return "", errNeedMore
		}
		pos += 5 + n
	}
}

// reader walks a byte string; any read past the end marks it bad, so the
// parse checks once at the end of each step instead of at every field.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

func parseClientHello(body []byte) (string, error) {
	r := &reader{b: body}
	r.bytes(2 + 32) // legacy_version, random
	if sid := r.u8(); sid > 32 {
		return "", errMalformedTLS
	} else {
		r.bytes(sid)
	}
	if cs := r.u16(); cs < 2 || cs%2 != 0 {
		return "", errMalformedTLS
	} else {
		r.bytes(cs)
	}
	if cm := r.u8(); cm < 1 {
		return "", errMalformedTLS
	} else {
		r.bytes(cm)
	}
	if r.bad {
		return "", errMalformedTLS
	}
	if len(r.b) == 0 {
		return "", errNoSNI // no extensions at all (SSL 3.0 style)
	}
	if r.u16() != len(r.b) {
		return "", errMalformedTLS
	}
	seen := make(map[int]bool)
	name := ""
	for len(r.b) > 0 {
		typ, n := r.u16(), r.u16()
		data := r.bytes(n)
		if r.bad || seen[typ] {
			return "", errMalformedTLS
		}
		seen[typ] = true
		if typ != extServerName {
			continue
		}
		var err error
		if name, err = parseServerNameExt(data); err != nil {
			return "", err
		}
	}
	if !seen[extServerName] {
		return "", errNoSNI
	}
	return name, nil
}

func parseServerNameExt(data []byte) (string, error) {
	r := &reader{b: data}
	if r.u16() != len(r.b) || len(r.b) == 0 {
		return "", errMalformedTLS
	}
	name := ""
	for len(r.b) > 0 {
		typ := r.u8()
		v := r.bytes(r.u16())
		if r.bad {
			return "", errMalformedTLS
		}
		if typ != sniHostName {
			continue // other name types are undefined; servers ignore them
		}
		if name != "" {
			return "", errMalformedTLS
		}
		var ok bool
		if name, ok = normalizeName(string(v)); !ok {
			return "", errMalformedTLS
		}
	}
	if name == "" {
		return "", errNoSNI
	}
	return name, nil
}

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

// parseHost returns the host an HTTP/1.x request at the start of b is for:
// the Host header, or the authority of an absolute-form (proxy style) or
// authority-form (CONNECT) target, without port. It waits for the whole
// request head, because a second Host later in the head would be read by
// some servers and not others. errNotHTTP comes as early as the bytes
// prove it, so a non-HTTP client is not kept waiting for the timeout.
func parseHost(b []byte) (string, error) {
	line, rest, complete := cutLine(b)
	if err := checkRequestLinePrefix(line, complete); err != nil {
		return "", err
	}
	if !complete {
		if len(b) > helloLimit {
			return "", errTooLarge
		}
		return "", errNeedMore
	}
	end := headEnd(rest)
	if end < 0 {
		if len(b) > helloLimit {
			return "", errTooLarge
		}
		return "", errNeedMore
	}
	if len(line)+end > helloLimit {
		return "", errTooLarge
	}
	_, target, _ := strings.Cut(string(line), " ")
	target, _, _ = strings.Cut(target, " ")

	var targetHost string
	switch {
	case strings.Contains(target, "://"):
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			return "", errMalformedHTTP
		}
		h, ok := splitHostPort(u.Host)
		if !ok {
			return "", errMalformedHTTP
		}
		targetHost = h
	case !strings.HasPrefix(target, "/") && target != "*":
		h, ok := splitHostPort(target) // CONNECT host:port
		if !ok {
			return "", errMalformedHTTP
		}
		targetHost = h
	}

	var host string
	seen := false
	head := rest[:end]
	for len(head) > 0 {
		var l []byte
		l, head, _ = cutLine(head)
		if len(l) == 0 {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			return "", errMalformedHTTP // obs-fold: servers disagree on it
		}
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(k) == 0 || !isToken(k) {
			return "", errMalformedHTTP // includes "Host :" (RFC 9112 §5.1)
		}
		if !strings.EqualFold(string(k), "host") {
			continue
		}
		if seen {
			return "", errMalformedHTTP
		}
		seen = true
		hv := strings.TrimSpace(string(v))
		if hv == "" {
			continue // HTTP/1.1 allows an empty Host with an absolute target
		}
		h, ok := splitHostPort(hv)
		if !ok {
			return "", errMalformedHTTP
		}
		host = h
	}
	switch {
	case targetHost != "" && host != "" && host != targetHost:
		return "", errMalformedHTTP
	case targetHost != "":
		return targetHost, nil
	case host != "":
		return host, nil
	}
	return "", errNoHost
}

// cutLine splits b at the first LF, dropping a CR before it.
func cutLine(b []byte) (line, rest []byte, complete bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil, false
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:], true
}

// headEnd is the offset in b (the bytes after the request line) of the
// empty line ending the head, or -1. b may start with it: no headers.
func headEnd(b []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		if line := b[off : off+i]; len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return off
		}
		off += i + 1
	}
}

// checkRequestLinePrefix says whether line can be (complete: is) an
// HTTP/1.x request line "METHOD SP target SP HTTP/1.x".
func checkRequestLinePrefix(line []byte, complete bool) error {
	sp := bytes.IndexByte(line, ' ')
	method := line
	if sp >= 0 {
		method = line[:sp]
	}
	if len(method) > 32 || !isToken(method) || (sp == 0) {
		return errNotHTTP
	}
	if !complete {
		if sp < 0 {
			return nil
		}
		// A CR may be the last byte so far: its LF is still in flight.
		if hasControl(bytes.TrimSuffix(line[sp+1:], []byte("\r"))) {
			return errNotHTTP
		}
		return nil
	}
	if sp < 0 {
		return errNotHTTP
	}
	target, version, ok := bytes.Cut(line[sp+1:], []byte(" "))
	if !ok || len(target) == 0 || hasControl(target) || bytes.IndexByte(target, ' ') >= 0 {
		return errNotHTTP
	}
	if string(version) != "HTTP/1.1" && string(version) != "HTTP/1.0" {
		return errNotHTTP // HTTP/0.9, the HTTP/2 preface "PRI * HTTP/2.0"
	}
	return nil
}

func hasControl(b []byte) bool {
	for _, ch := range b {
		if ch < 0x20 || ch == 0x7f {
			return true
		}
	}
	return false
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

// splitHostPort takes "host", "host:port", "[v6]" or "[v6]:port" and
// returns the normalized host.
func splitHostPort(s string) (string, bool) {
	host := s
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return "", false
		}
		host = s[1:i]
		if rest := s[i+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") || !validPort(rest[1:]) {
				return "", false
			}
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", false
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host = s[:i]
		if !validPort(s[i+1:]) || strings.IndexByte(host, ':') >= 0 {
			return "", false
		}
	}
	return normalizeName(host)
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535 && s != "" && s[0] != '+' && s[0] != '-'
}

// errStopInspecting: the check accepted a head it could not frame
// (observe mode); the rest of the connection is forwarded unread.
var errStopInspecting = errors.New("stop inspecting")

type streamState uint8

const (
	stHead streamState = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
	stOpaque
)

// requestStream forwards the client side of a plain-HTTP connection to w,
// following HTTP/1.x request framing (Content-Length, chunked) so that
// every request head is seen — and bytes inside bodies are never taken for
// one. A head is held back until check approved its host, so a refused
// request never reaches the server complete.
type requestStream struct {
	w     io.Writer
	check func(host string, err error) error

	state   streamState
	pending []byte // an incomplete request head
	remain  int64  // body or chunk bytes left
	line    []byte // the chunk-size or trailer line being read
}

func (s *requestStream) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		var err error
		switch s.state {
		case stOpaque:
			_, err = s.w.Write(b)
			b = nil
		case stHead:
			b, err = s.head(b)
		case stBody, stChunkData:
			k := int(min(s.remain, int64(len(b))))
			_, err = s.w.Write(b[:k])
			b, s.remain = b[k:], s.remain-int64(k)
			if s.remain == 0 {
				if s.state == stBody {
					s.state = stHead
				} else {
					s.state = stChunkEnd
				}
			}
		case stChunkSize, stChunkEnd, stTrailer:
			b, err = s.framingLine(b)
		}
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// head collects a request head; once complete it is checked, forwarded,
// and the body framing taken from it. It returns the bytes after the head.
func (s *requestStream) head(b []byte) ([]byte, error) {
	s.pending = append(s.pending, b...)
	// Empty lines between requests are ignored by servers (RFC 9112 §2.2).
	for {
		k := 0
		switch {
		case bytes.HasPrefix(s.pending, []byte("\n")):
			k = 1
		case bytes.HasPrefix(s.pending, []byte("\r\n")):
			k = 2
		}
		if k == 0 {
			break
		}
		if _, err := s.w.Write(s.pending[:k]); err != nil {
			return nil, err
		}
		s.pending = s.pending[k:]
	}
	hl := headLen(s.pending)
	if hl < 0 {
		if len(s.pending) > helloLimit {
			return nil, s.stop(errTooLarge)
		}
		if len(s.pending) > 0 && !bytes.Equal(s.pending, []byte("\r")) {
			// Say "not HTTP" as soon as the bytes do, not at 16 KiB.
			if line, _, complete := cutLine(s.pending); checkRequestLinePrefix(line, complete) != nil {
				return nil, s.stop(errNotHTTP)
			}
		}
		return nil, nil
	}
	head := s.pending[:hl]
	host, err := parseHost(head)
	var st streamState
	var length int64
	if err == nil {
		st, length, err = requestFraming(head)
	}
	if err != nil {
		return nil, s.stop(err)
	}
	if err := s.check(host, nil); err != nil {
		return nil, err
	}
	if _, err := s.w.Write(head); err != nil {
		return nil, err
	}
	rest := s.pending[hl:]
	s.pending = nil
	s.state, s.remain = st, length
	if st == stBody && length == 0 {
		s.state = stHead
	}
	return rest, nil
}

// stop records a head that cannot be framed; in observe mode the rest,
// held-back bytes included, passes unread.
func (s *requestStream) stop(cause error) error {
	err := s.check("", cause)
	if !errors.Is(err, errStopInspecting) {
		if err == nil {
			err = errRefused
		}
		return err
	}
	s.state = stOpaque
	_, err = s.w.Write(s.pending)
	s.pending = nil
	return err
}

// framingLine reads, and forwards, one line of chunked framing.
func (s *requestStream) framingLine(b []byte) ([]byte, error) {
	i := bytes.IndexByte(b, '\n')
	part := b
	if i >= 0 {
		part = b[:i+1]
	}
	if _, err := s.w.Write(part); err != nil {
		return nil, err
	}
	s.line = append(s.line, part...)
	rest := b[len(part):]
	if len(s.line) > 4096 {
		return rest, s.stop(errMalformedHTTP)
	}
	if i < 0 {
		return nil, nil
	}
	line := bytes.TrimSuffix(bytes.TrimSuffix(s.line, []byte("\n")), []byte("\r"))
	s.line = s.line[:0]
	switch s.state {
	case stChunkSize:
		sz, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(sz)), 16, 64)
		if err != nil || n < 0 {
			return rest, s.stop(errMalformedHTTP)
		}
		if n == 0 {
			s.state = stTrailer
		} else {
			s.state, s.remain = stChunkData, n
		}
	case stChunkEnd:
		if len(line) != 0 {
			return rest, s.stop(errMalformedHTTP)
		}
		s.state = stChunkSize
	case stTrailer:
		if len(line) == 0 {
			s.state = stHead
		}
	}
	return rest, nil
}

// headLen is the length of the request head at the start of b, through
// the empty line that ends it, or -1 when incomplete.
func headLen(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return -1
	}
	end := headEnd(b[i+1:])
	if end < 0 {
		return -1
	}
	off := i + 1 + end
	return off + bytes.IndexByte(b[off:], '\n') + 1
}

// requestFraming says how the body after a complete, valid head is
// delimited. Content-Length with Transfer-Encoding, or two different
// lengths, are refused: servers and this proxy could split the stream
// differently (request smuggling), and a request hidden in a body would
// go unchecked.
func requestFraming(head []byte) (streamState, int64, error) {
	line, rest, _ := cutLine(head)
	if bytes.HasPrefix(line, []byte("CONNECT ")) {
		return stOpaque, 0, nil // a tunnel: what follows is not HTTP
	}
	length, chunked, te := int64(-1), false, false
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = cutLine(rest)
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch strings.ToLower(string(k)) {
		case "content-length":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 || v[0] == '+' || (length >= 0 && n != length) {
				return 0, 0, errMalformedHTTP
			}
			length = n
		case "transfer-encoding":
			te = true
			codings := strings.Split(strings.ToLower(string(v)), ",")
			chunked = strings.TrimSpace(codings[len(codings)-1]) == "chunked"
		case "upgrade":
			// After a 101 the connection is another protocol; the proxy
			// does not read responses, so it stops at the first upgrade
			// request. Its host was checked; the tunnel stays with it.
			return stOpaque, 0, nil
		}
	}
	switch {
	case te && (!chunked || length >= 0):
		return 0, 0, errMalformedHTTP
	case te:
		return stChunkSize, 0, nil
	case length > 0:
		return stBody, length, nil
	}
	return stBody, 0, nil
}
