package privtest

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a fake upstream resolver on a loopback port: it answers the names
// in its zone and remembers every question it was asked.
type DNS struct {
	Addr string // host:port

	cfg   DNSConfig
	close func()

	mu   sync.Mutex
	seen []DNSQuestion
}

// DNSQuestion is one question the resolver was asked.
type DNSQuestion struct {
	Name string // lower-case, with the trailing dot
	Type dnsmessage.Type
}

// DNSConfig says how a fake upstream answers. The zero value (plus a
// zone) is StartDNS's resolver: UDP on 127.0.0.1, TTL 30, names outside
// the zone get an empty NOERROR answer.
type DNSConfig struct {
	// Listen is the UDP address (and TCP's, with TCP), "127.0.0.1:0"
	// when empty.
	Listen string
	// TCP also answers DNS over TCP on the same port.
	TCP bool
	// Zone maps lower-case names with the trailing dot ("allowed.test.")
	// to their address: an IPv4 one answers A questions, an IPv6 one AAAA.
	Zone map[string]netip.Addr
	// TXT, when set, is the TXT record of every name, in the zone or not
	// (what a DNS exfiltration channel reads).
	TXT string
	// NXDomain answers NXDOMAIN for names outside the zone (except their
	// TXT questions when TXT is set).
	NXDomain bool
	// Authoritative sets the AA bit on every answer.
	Authoritative bool
	// TTL of every record; 30 when zero.
	TTL uint32
}

// StartDNS starts a DNS upstream answering zone (lower-case names with the
// trailing dot, e.g. "allowed.test.") until the test ends.
func StartDNS(t testing.TB, zone map[string][4]byte) *DNS {
	t.Helper()
	z := make(map[string]netip.Addr, len(zone))
	for name, a := range zone {
		z[name] = netip.AddrFrom4(a)
	}
	return StartDNSWith(t, DNSConfig{Zone: z})
}

// StartDNSWith starts the DNS upstream cfg describes until the test ends.
func StartDNSWith(t testing.TB, cfg DNSConfig) *DNS {
	t.Helper()
	d, err := ServeDNS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// ServeDNS starts the DNS upstream cfg describes until Close; it needs no
// test, so a benchmark program can run it too.
func ServeDNS(cfg DNSConfig) (*DNS, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 30
	}
	// TCP on the same port can be taken already: with a random port, try
	// another one.
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", cfg.Listen)
		if err != nil {
			return nil, err
		}
		d := &DNS{Addr: pc.LocalAddr().String(), cfg: cfg, close: func() { pc.Close() }}
		if cfg.TCP {
			ln, err := net.Listen("tcp", d.Addr)
			if err != nil {
				pc.Close()
				if _, port, _ := net.SplitHostPort(cfg.Listen); port == "0" && try < 10 {
					continue
				}
				return nil, err
			}
			d.close = func() { pc.Close(); ln.Close() }
			go d.serveTCP(ln)
		}
		go d.serveUDP(pc)
		return d, nil
	}
}

// Close stops the resolver.
func (d *DNS) Close() { d.close() }

func (d *DNS) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n]); out != nil {
			pc.WriteTo(out, from)
		}
	}
}

// serveTCP answers one length-prefixed query per connection (RFC 7766
// framing), which is all a forwarding proxy sends.
func (d *DNS) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			msg := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, msg); err != nil {
				return
			}
			out := d.answer(msg)
			c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...))
		}()
	}
}

func (d *DNS) answer(msg []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(q.Name.String())
	d.mu.Lock()
	d.seen = append(d.seen, DNSQuestion{Name: name, Type: q.Type})
	d.mu.Unlock()
	addr, known := d.cfg.Zone[name]
	txt := d.cfg.TXT != "" && q.Type == dnsmessage.TypeTXT
	rcode := dnsmessage.RCodeSuccess
	if d.cfg.NXDomain && !known && !txt {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: d.cfg.Authoritative, RecursionDesired: h.RecursionDesired, RCode: rcode})
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: d.cfg.TTL}
	switch {
	case txt:
		b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{d.cfg.TXT}})
	case !known:
	case q.Type == dnsmessage.TypeA && addr.Is4():
		b.AResource(rh, dnsmessage.AResource{A: addr.As4()})
	case q.Type == dnsmessage.TypeAAAA && addr.Is6():
		b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: addr.As16()})
	}
	out, _ := b.Finish()
	return out
}

// Asked returns the names the resolver was asked (lower-case, with the
// trailing dot), in order.
func (d *DNS) Asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, len(d.seen))
	for i, q := range d.seen {
		names[i] = q.Name
	}
	return names
}

// Questions returns the questions the resolver was asked, in order.
func (d *DNS) Questions() []DNSQuestion {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DNSQuestion(nil), d.seen...)
}
