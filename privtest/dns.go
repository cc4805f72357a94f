package privtest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a fake upstream resolver on a loopback UDP port: it answers A
// queries for the names in its zone and NXDOMAIN-free empty answers for
// the rest, and remembers every question it was asked.
type DNS struct {
	Addr string // host:port

	mu   sync.Mutex
	seen []string
}

// StartDNS starts a DNS upstream answering zone (lower-case names with the
// trailing dot, e.g. "allowed.test.") until the test ends.
func StartDNS(t testing.TB, zone map[string][4]byte) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &DNS{Addr: pc.LocalAddr().String()}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.ToLower(q.Name.String())
			d.mu.Lock()
			d.seen = append(d.seen, name)
			d.mu.Unlock()
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired})
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if a, ok := zone[name]; ok && q.Type == dnsmessage.TypeA {
				b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 30}, dnsmessage.AResource{A: a})
			}
			out, _ := b.Finish()
			pc.WriteTo(out, from)
		}
	}()
	return d
}

// Asked returns the names the resolver was asked, in order.
func (d *DNS) Asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}
