package netwatch

// The DNS proxy is the run's only resolver: the connect/sendmsg hooks send
// every UDP and TCP destination on port 53 here, whatever the child's
// resolv.conf says. It is where names become addresses the run may reach:
// answers to allowed names fill the kernel's allowed-address map (with the
// answer's TTL), and in enforce mode a name that is not allowed never
// leaves the machine — not as an A query, and not as TXT/ANY/NULL, the
// record types DNS exfiltration prefers — so the upstream resolver (and
// whoever watches it) never sees it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/agentwatch/agentwatch/event"
)

// Rules the DNS proxy records for names network.allow does not cover.
const (
	RuleUnknownDomain = "unknown_domain" // the name matches no network.allow entry
	// RuleBadQuery, followed by ": " and the reason, is the rule of a
	// message that is not one plain query (see parseQuery): refused, never
	// forwarded.
	RuleBadQuery = "malformed_query"
)

const (
	// MinAllowTTL is the least time an answer's address stays allowed.
	// Answers with TTL 0 (or a few seconds) are common behind CDNs, and
	// the connect follows the lookup only after the resolver returns;
	// clients also keep using an address a little past its TTL (Java and
	// browsers cache for 30-60 s regardless). A floor keeps those working
	// without making stale addresses allowed for long.
	MinAllowTTL = 60 * time.Second

	upstreamTimeout = 4 * time.Second
	tcpIdleTimeout  = 10 * time.Second
	maxUDPMessage   = 65535
)

// dnsConfig configures a dnsProxy.
type dnsConfig struct {
	Upstream string // host:port
	Enforce  bool
	// Allow reports whether a name may be resolved, the rule that allows
	// it and the ports it is allowed on (0: any).
	Allow func(name string) (rule string, ports []int, ok bool)
	// Learn is called for every address of an allowed name's answer.
	Learn func(name, rule string, addr netip.Addr, ports []int, ttl time.Duration)
	Emit  func(event.Event)
}

// dnsProxy serves UDP and TCP on 127.0.0.1 and (when the host has it) ::1.
type dnsProxy struct {
	cfg  dnsConfig
	udp4 *net.UDPConn
	udp6 *net.UDPConn
	tcp4 *net.TCPListener
	tcp6 *net.TCPListener

	upstreamUDP chan net.Conn // idle connected UDP sockets to the upstream, reused

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startDNS(cfg dnsConfig) (*dnsProxy, error) {
	p := &dnsProxy{cfg: cfg, conns: map[net.Conn]struct{}{}, upstreamUDP: make(chan net.Conn, 16)}
	var err error
	if p.udp4, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, fmt.Errorf("starting DNS proxy: %w", err)
	}
	if p.tcp4, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		p.udp4.Close()
		return nil, fmt.Errorf("starting DNS proxy: %w", err)
	}
	// IPv6 loopback may be absent (ipv6.disable=1): v6 DNS is then refused
	// by the hook, which is the best that can be done without it.
	if u, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		if t, err := net.ListenTCP("tcp6", &net.TCPAddr{IP: net.IPv6loopback}); err == nil {
			p.udp6, p.tcp6 = u, t
		} else {
			u.Close()
		}
	}
	for _, u := range []*net.UDPConn{p.udp4, p.udp6} {
		if u != nil {
			p.wg.Add(1)
			go p.serveUDP(u)
		}
	}
	for _, l := range []*net.TCPListener{p.tcp4, p.tcp6} {
		if l != nil {
			p.wg.Add(1)
			go p.serveTCP(l)
		}
	}
	return p, nil
}

func port(a net.Addr) uint16 {
	switch a := a.(type) {
	case *net.UDPAddr:
		return uint16(a.Port)
	case *net.TCPAddr:
		return uint16(a.Port)
	}
	return 0
}

// ports returns the UDP and TCP ports on 127.0.0.1 and ::1 (0: absent).
func (p *dnsProxy) ports() (udp4, tcp4, udp6, tcp6 uint16) {
	udp4, tcp4 = port(p.udp4.LocalAddr()), port(p.tcp4.Addr())
	if p.udp6 != nil {
		udp6, tcp6 = port(p.udp6.LocalAddr()), port(p.tcp6.Addr())
	}
	return
}

// endpoints lists every address the proxy listens on.
func (p *dnsProxy) endpoints() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range []net.Addr{p.udp4.LocalAddr(), p.tcp4.Addr()} {
		out = append(out, netip.MustParseAddrPort(a.String()))
	}
	if p.udp6 != nil {
		out = append(out, netip.MustParseAddrPort(p.udp6.LocalAddr().String()), netip.MustParseAddrPort(p.tcp6.Addr().String()))
	}
	return out
}

func (p *dnsProxy) close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	var errs []error
	for _, c := range []io.Closer{p.udp4, p.tcp4} {
		errs = append(errs, c.Close())
	}
	if p.udp6 != nil {
		errs = append(errs, p.udp6.Close(), p.tcp6.Close())
	}
	p.wg.Wait()
	for c := p.idleUpstream(); c != nil; c = p.idleUpstream() {
		c.Close()
	}
	return errors.Join(errs...)
}

func (p *dnsProxy) serveUDP(u *net.UDPConn) {
	defer p.wg.Done()
	for {
		buf := make([]byte, maxUDPMessage)
		n, from, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			resp, q := p.decide(buf[:n], event.UDP, from)
			// The reply first, the record after: the child's lookup does
			// not wait for the recorder.
			if resp != nil {
				_, _ = u.WriteToUDPAddrPort(resp, from)
			}
			p.emit(q)
		}()
	}
}

func (p *dnsProxy) serveTCP(l *net.TCPListener) {
	defer p.wg.Done()
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			defer func() {
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
				c.Close()
			}()
			from := netip.MustParseAddrPort(c.RemoteAddr().String())
			r := bufio.NewReader(c)
			for {
				_ = c.SetReadDeadline(time.Now().Add(tcpIdleTimeout))
				msg, err := readTCPMessage(r)
				if err != nil {
					return
				}
				resp, q := p.decide(msg, event.TCP, from)
				if resp == nil {
					p.emit(q)
					return
				}
				err = writeTCPMessage(c, resp)
				p.emit(q)
				if err != nil {
					return
				}
			}
		}()
	}
}

func readTCPMessage(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func writeTCPMessage(w io.Writer, msg []byte) error {
	b := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(b, uint16(len(msg)))
	copy(b[2:], msg)
	_, err := w.Write(b)
	return err
}

// answer decides about one query, records it and returns the response to
// send (nil: send nothing, for a message too short to carry an id).
func (p *dnsProxy) answer(msg []byte, tr event.Transport, from netip.AddrPort) []byte {
	resp, q := p.decide(msg, tr, from)
	p.emit(q)
	return resp
}

// decide answers one query: the response (nil: none can be sent) and its
// record. Addresses of an allowed answer are in the kernel map before it
// returns, so the child's connect never races the update.
func (p *dnsProxy) decide(msg []byte, tr event.Transport, from netip.AddrPort) (resp []byte, q event.DNSQuery) {
	q = event.DNSQuery{Header: event.Header{Time: time.Now()}, Transport: tr, Client: from}
	pq, qerr := parseQuery(msg)
	if qerr != nil {
		// Refused in observe mode too: observe mode reports what policy
		// would refuse, it does not pass on bytes the proxy cannot vouch
		// for.
		q.Verdict, q.Rule, q.RCode = event.Deny, RuleBadQuery+": "+qerr.why, rcodeName(qerr.rcode)
		if qerr.question {
			q.Name, q.QType = pq.name, qtypeName(pq.question.Type)
		}
		if !qerr.header {
			return nil, q
		}
		return refusal(pq, qerr.question, qerr.rcode), q
	}
	q.Name, q.QType = pq.name, qtypeName(pq.question.Type)

	rule, ports, allowed := p.cfg.Allow(q.Name)
	switch {
	case allowed:
		q.Verdict, q.Rule = event.Allow, rule
	case p.cfg.Enforce:
		q.Verdict, q.Rule, q.RCode = event.Deny, RuleUnknownDomain, "NXDOMAIN"
		return refusal(pq, true, dnsmessage.RCodeNameError), q
	default:
		q.Verdict, q.Rule = event.Audit, RuleUnknownDomain
	}

	resp, err := p.forward(pq, tr)
	if err != nil {
		q.RCode = "SERVFAIL"
		return refusal(pq, true, dnsmessage.RCodeServerFailure), q
	}
	q.Forwarded = true
	var answers []answer
	q.RCode, answers = parseAnswers(resp)
	for _, a := range answers {
		q.Answers = append(q.Answers, a.addr)
		// Only an allowed name's addresses become reachable; an audited
		// name's stay unresolved, so observe mode still reports the
		// connect that enforce mode would refuse.
		if allowed && p.cfg.Learn != nil {
			p.cfg.Learn(q.Name, rule, a.addr, ports, a.ttl)
		}
	}
	return resp, q
}

func (p *dnsProxy) emit(q event.DNSQuery) {
	if p.cfg.Emit != nil {
		p.cfg.Emit(q)
	}
}

// forward sends the query rebuilt from pq (under a fresh random id: the
// client's would be 16 bits of its choosing on the wire) to the upstream
// over the same transport, and returns the upstream's answer to it as the
// client's answer (the client's id and question case restored).
func (p *dnsProxy) forward(pq parsedQuery, tr event.Transport) ([]byte, error) {
	id := uint16(rand.Uint32())
	msg := pq.forwardMessage(id)
	ctx, cancel := context.WithTimeout(context.Background(), upstreamTimeout)
	defer cancel()
	network := "udp"
	if tr == event.TCP {
		network = "tcp"
	} else if c := p.idleUpstream(); c != nil {
		// A connected socket per lookup costs a socket, a connect and a
		// close each time; reused ones keep a lookup well under a
		// millisecond (make bench). A late answer to an earlier query on
		// a reused socket is dropped by the check in exchangeUDP.
		resp, err := exchangeUDP(c, msg, pq, id, time.Now().Add(upstreamTimeout))
		if err != nil {
			c.Close()
			return nil, err
		}
		p.keepUpstream(c)
		return pq.restore(resp), nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, p.cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("dialing upstream %s: %w", p.cfg.Upstream, err)
	}
	deadline, _ := ctx.Deadline()
	if tr == event.TCP {
		defer c.Close()
		_ = c.SetDeadline(deadline)
		if err := writeTCPMessage(c, msg); err != nil {
			return nil, err
		}
		resp, err := readTCPMessage(c)
		if err != nil {
			return nil, err
		}
		// One query per connection: anything else is not our answer.
		if why := pq.checkResponse(resp, id); why != "" {
			return nil, fmt.Errorf("upstream %s: response dropped: %s", p.cfg.Upstream, why)
		}
		return pq.restore(resp), nil
	}
	resp, err := exchangeUDP(c, msg, pq, id, deadline)
	if err != nil {
		c.Close()
		return nil, err
	}
	p.keepUpstream(c)
	return pq.restore(resp), nil
}

func (p *dnsProxy) idleUpstream() net.Conn {
	select {
	case c := <-p.upstreamUDP:
		return c
	default:
		return nil
	}
}

func (p *dnsProxy) keepUpstream(c net.Conn) {
	select {
	case p.upstreamUDP <- c:
	default:
		c.Close()
	}
}

// exchangeUDP sends msg on a connected UDP socket and returns the first
// response that answers it: same id, same question. A connected UDP socket
// only hears the upstream's address, but a late answer to an earlier query
// on a reused socket, or a spoofed one, is not this query's answer.
func exchangeUDP(c net.Conn, msg []byte, pq parsedQuery, id uint16, deadline time.Time) ([]byte, error) {
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, maxUDPMessage)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if pq.checkResponse(buf[:n], id) == "" {
			return bytes.Clone(buf[:n]), nil
		}
	}
}

type answer struct {
	addr netip.Addr
	ttl  time.Duration
}

// parseAnswers returns the response code and the A/AAAA addresses of the
// answer section (CNAME chains included: the question was what was
// allowed).
func parseAnswers(resp []byte) (string, []answer) {
	var parser dnsmessage.Parser
	hdr, err := parser.Start(resp)
	if err != nil {
		return "SERVFAIL", nil
	}
	rcode := rcodeName(hdr.RCode)
	if err := parser.SkipAllQuestions(); err != nil {
		return rcode, nil
	}
	var out []answer
	for {
		h, err := parser.AnswerHeader()
		if err != nil {
			break
		}
		ttl := time.Duration(h.TTL) * time.Second
		switch h.Type {
		case dnsmessage.TypeA:
			r, err := parser.AResource()
			if err != nil {
				return rcode, out
			}
			out = append(out, answer{netip.AddrFrom4(r.A), ttl})
		case dnsmessage.TypeAAAA:
			r, err := parser.AAAAResource()
			if err != nil {
				return rcode, out
			}
			out = append(out, answer{netip.AddrFrom16(r.AAAA), ttl})
		default:
			if err := parser.SkipAnswer(); err != nil {
				return rcode, out
			}
		}
	}
	return rcode, out
}

func normalize(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

func qtypeName(t dnsmessage.Type) string {
	return strings.TrimPrefix(t.String(), "Type")
}

func rcodeName(r dnsmessage.RCode) string {
	switch r {
	case dnsmessage.RCodeSuccess:
		return "NOERROR"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	}
	return strings.TrimPrefix(r.String(), "RCode")
}

// SystemResolver returns the first nameserver of resolv.conf as host:53
// (what network.dns.upstream "system" means).
func SystemResolver(resolvConf string) (string, error) {
	ns, err := Nameservers(resolvConf)
	if err != nil {
		return "", fmt.Errorf("reading the system resolver: %w", err)
	}
	if len(ns) == 0 {
		return "", fmt.Errorf("reading the system resolver: no nameserver in %s", resolvConf)
	}
	return netip.AddrPortFrom(ns[0], 53).String(), nil
}

// Nameservers lists the nameserver addresses of resolv.conf: where the
// child's DNS goes when nothing bypasses its configuration (the recorder
// flags DNS redirected from anywhere else).
func Nameservers(resolvConf string) ([]netip.Addr, error) {
	f, err := os.Open(resolvConf)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				out = append(out, a.WithZone("").Unmap())
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", resolvConf, err)
	}
	return out, nil
}
