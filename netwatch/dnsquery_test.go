package netwatch

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/agentwatch/agentwatch/event"
)

// Wire-format pieces for hand-made messages: a hostile client writes
// bytes, not dnsmessage values.

func hdr(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	for i, v := range []uint16{id, flags, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(b[2*i:], v)
	}
	return b
}

func wireName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func u16(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint16(b, x)
	}
	return b
}

// opt is an OPT record: payload size, ext rcode, version, flags, options.
func opt(size uint16, ext, version byte, flags uint16, options ...[]byte) []byte {
	data := bytes.Join(options, nil)
	b := []byte{0}
	b = append(b, u16(41, size)...)
	b = append(b, ext, version)
	b = append(b, u16(flags, uint16(len(data)))...)
	return append(b, data...)
}

func option(code uint16, data []byte) []byte {
	return append(u16(code, uint16(len(data))), data...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

const rd = 0x0100

var (
	qAllowed = cat(wireName("allowed", "test"), u16(1, 1)) // allowed.test A IN
	cookie8  = option(10, []byte("c00k1e!!"))
)

// Real queries, as resolvers send them: what must keep working.
var realQueries = map[string][]byte{
	// glibc, musl: no EDNS.
	"glibc": cat(hdr(0x1111, rd, 1, 0, 0, 0), qAllowed),
	// Go's resolver: EDNS, payload 1232, no options.
	"go": cat(hdr(0x2222, rd, 1, 0, 0, 1), cat(wireName("allowed", "test"), u16(28, 1)), opt(1232, 0, 0, 0)),
	// dig: AD bit, EDNS 1232, a client cookie.
	"dig": cat(hdr(0x3333, rd|0x0020, 1, 0, 0, 1), cat(wireName("allowed", "test"), u16(1, 1)), opt(1232, 0, 0, 0, cookie8)),
	// A validating stub: DO and CD, payload 4096, the name in mixed case (0x20).
	"validating": cat(hdr(0x4444, rd|0x0010, 1, 0, 0, 1), cat(wireName("AlLoWeD", "TeSt"), u16(1, 1)), opt(4096, 0, 0, 0x8000)),
	// No recursion asked, SRV-style underscores.
	"srv": cat(hdr(0x5555, 0, 1, 0, 0, 0), cat(wireName("_https", "_tcp", "allowed", "test"), u16(33, 1))),
}

func TestParseQueryAcceptsRealQueries(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []byte // what goes upstream, under id 0xbeef
	}{
		{"glibc", cat(hdr(0xbeef, rd, 1, 0, 0, 0), qAllowed)},
		{"go", cat(hdr(0xbeef, rd, 1, 0, 0, 1), cat(wireName("allowed", "test"), u16(28, 1)), opt(1232, 0, 0, 0))},
		// The cookie and the AD bit stay behind.
		{"dig", cat(hdr(0xbeef, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0))},
		// Lower-cased; CD dropped, DO kept.
		{"validating", cat(hdr(0xbeef, rd, 1, 0, 0, 1), qAllowed, opt(4096, 0, 0, 0x8000))},
		{"srv", cat(hdr(0xbeef, 0, 1, 0, 0, 0), cat(wireName("_https", "_tcp", "allowed", "test"), u16(33, 1)))},
	} {
		pq, err := parseQuery(realQueries[tc.name])
		if err != nil {
			t.Errorf("%s: refused: %s", tc.name, err.why)
			continue
		}
		if got := pq.forwardMessage(0xbeef); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: forwards\n %x\nwant\n %x", tc.name, got, tc.want)
		}
		if pq.id != binary.BigEndian.Uint16(realQueries[tc.name]) {
			t.Errorf("%s: client id %#x lost", tc.name, pq.id)
		}
	}
}

// Every message here is refused and never forwarded, with the reason the
// trace records.
func TestParseQueryRefusesHostileMessages(t *testing.T) {
	const F, R = dnsmessage.RCodeFormatError, dnsmessage.RCodeRefused
	long := make([]string, 5)
	for i := range long {
		long[i] = strings.Repeat("a", 60)
	}
	for _, tc := range []struct {
		name   string
		msg    []byte
		why    string // prefix of the reason
		rcode  dnsmessage.RCode
		header bool // a refusal can be sent
	}{
		{"empty", nil, "short header", F, false},
		{"short header", []byte{1, 2, 3, 4, 5}, "short header", F, false},
		{"trailing bytes", cat(hdr(1, rd, 1, 0, 0, 0), qAllowed, []byte("secret")), "trailing bytes (6 after", F, true},
		{"trailing bytes after OPT", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0), []byte{0}), "trailing bytes (1 after", F, true},
		{"over-long", cat(hdr(1, rd, 1, 0, 0, 0), qAllowed, make([]byte, 600)), "over-long message", F, true},
		{"no question", hdr(1, rd, 0, 0, 0, 0), "0 questions", F, true},
		{"two questions", cat(hdr(1, rd, 2, 0, 0, 0), qAllowed, qAllowed), "2 questions", F, true},
		{"answer in a query", cat(hdr(1, rd, 1, 1, 0, 0), qAllowed, wireName("x"), u16(1, 1, 0, 0, 4), []byte{1, 2, 3, 4}), "1 answer records", F, true},
		{"authority in a query", cat(hdr(1, rd, 1, 0, 1, 0), qAllowed), "1 authority records", F, true},
		{"two additional", cat(hdr(1, rd, 1, 0, 0, 2), qAllowed, opt(1232, 0, 0, 0), opt(1232, 0, 0, 0)), "2 additional records", F, true},
		{"additional not OPT", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, wireName("exfil"), u16(16, 1, 0, 0, 3), []byte{2, 'h', 'i'}), "additional record that is not OPT", F, true},
		{"additional of another type at the root", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, []byte{0}, u16(16, 1, 0, 0, 0)), "additional record of type 16", F, true},
		{"EDNS option", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, option(65001, []byte("payload")))), "EDNS option 65001", F, true},
		{"EDNS padding", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, option(12, make([]byte, 20)))), "EDNS option 12", F, true},
		{"EDNS client subnet", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, option(8, []byte{0, 1, 24, 0, 10, 0, 0}))), "EDNS option 8", F, true},
		{"two cookies", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, cookie8, cookie8)), "EDNS option 10", F, true},
		{"cookie of a bad size", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, option(10, []byte("abc")))), "EDNS option 10 (3 bytes)", F, true},
		{"option cut short", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, []byte{0, 10, 0})), "EDNS option cut short", F, true},
		{"option longer than OPT", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, []byte{0, 10, 0, 99})), "EDNS option cut short", F, true},
		{"OPT data past the end", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, []byte{0}, u16(41, 1232, 0, 0, 50)), "OPT data cut short", F, true},
		{"EDNS version 1", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 1, 0)), "EDNS version 1", F, true},
		{"EDNS extended rcode", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 7, 0, 0)), "EDNS extended rcode", F, true},
		{"EDNS Z flags", cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0x0001)), "EDNS reserved flags", F, true},
		{"QR set", cat(hdr(1, 0x8000|rd, 1, 0, 0, 0), qAllowed), "QR bit set", F, true},
		{"opcode NOTIFY", cat(hdr(1, 4<<11, 1, 0, 0, 0), qAllowed), "opcode 4", R, true},
		{"opcode UPDATE", cat(hdr(1, 5<<11, 1, 0, 0, 0), qAllowed), "opcode 5", R, true},
		{"opcode IQUERY", cat(hdr(1, 1<<11, 1, 0, 0, 0), qAllowed), "opcode 1", R, true},
		{"AA set", cat(hdr(1, 0x0400, 1, 0, 0, 0), qAllowed), "AA bit", F, true},
		{"TC set", cat(hdr(1, 0x0200, 1, 0, 0, 0), qAllowed), "TC bit", F, true},
		{"RA set", cat(hdr(1, 0x0080, 1, 0, 0, 0), qAllowed), "RA bit", F, true},
		{"Z set", cat(hdr(1, 0x0040, 1, 0, 0, 0), qAllowed), "reserved Z bit", F, true},
		{"rcode in a query", cat(hdr(1, 3, 1, 0, 0, 0), qAllowed), "rcode 3", F, true},
		{"compression pointer", cat(hdr(1, rd, 1, 0, 0, 0), []byte{0xc0, 0x00}, u16(1, 1)), "compression pointer", F, true},
		{"extended label type", cat(hdr(1, rd, 1, 0, 0, 0), []byte{0x41, 0}, u16(1, 1)), "label type 0x40", F, true},
		// One label "x.allowed" under test.: reads as x.allowed.test, is not.
		{"dot inside a label", cat(hdr(1, rd, 1, 0, 0, 0), wireName("x.allowed", "test"), u16(1, 1)), "byte 0x2e in a label", F, true},
		{"NUL inside a label", cat(hdr(1, rd, 1, 0, 0, 0), wireName("allowed\x00x", "test"), u16(1, 1)), "byte 0x00 in a label", F, true},
		{"binary label", cat(hdr(1, rd, 1, 0, 0, 0), wireName("\xff\xfe", "allowed", "test"), u16(1, 1)), "byte 0xff in a label", F, true},
		{"space in a label", cat(hdr(1, rd, 1, 0, 0, 0), wireName("a b", "test"), u16(1, 1)), "byte 0x20 in a label", F, true},
		{"name over 255 bytes", cat(hdr(1, rd, 1, 0, 0, 0), wireName(long...), u16(1, 1)), "name longer than 255", F, true},
		{"label past the end", cat(hdr(1, rd, 1, 0, 0, 0), []byte{9, 'a', 'b'}), "label cut short", F, true},
		{"name without its end", cat(hdr(1, rd, 1, 0, 0, 0), []byte{1, 'a'}), "name cut short", F, true},
		{"question without type", cat(hdr(1, rd, 1, 0, 0, 0), wireName("allowed", "test"), []byte{0}), "question cut short", F, true},
		{"class CHAOS", cat(hdr(1, rd, 1, 0, 0, 0), wireName("version", "bind"), u16(16, 3)), "class 3", R, true},
		{"AXFR", cat(hdr(1, rd, 1, 0, 0, 0), wireName("allowed", "test"), u16(252, 1)), "query type 252", R, true},
		{"OPT as the question type", cat(hdr(1, rd, 1, 0, 0, 0), wireName("allowed", "test"), u16(41, 1)), "query type 41", R, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseQuery(tc.msg)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.why, tc.why) || err.rcode != tc.rcode || err.header != tc.header {
				t.Errorf("refused with %q rcode %v header %v; want %q %v %v", err.why, err.rcode, err.header, tc.why, tc.rcode, tc.header)
			}
		})
	}
}

// A response is the client's answer only when it answers the forwarded
// question under the forwarded id.
func TestCheckResponse(t *testing.T) {
	pq, qerr := parseQuery(realQueries["validating"]) // AlLoWeD.TeSt A
	if qerr != nil {
		t.Fatal(qerr)
	}
	const id = 0x7777
	resp := func(id uint16, flags uint16, qd uint16, q []byte) []byte {
		return cat(hdr(id, flags, qd, 1, 0, 0), q, wireName(), u16(1, 1, 0, 60, 4), []byte{127, 0, 0, 2})
	}
	good := resp(id, 0x8180, 1, qAllowed)
	for _, tc := range []struct {
		name, why string
		msg       []byte
	}{
		{"the answer", "", good},
		{"the answer, name in another case", "", resp(id, 0x8180, 1, cat(wireName("ALLOWED", "test"), u16(1, 1)))},
		{"another id", "another id", resp(id+1, 0x8180, 1, qAllowed)},
		{"a query", "not a response", resp(id, 0x0100, 1, qAllowed)},
		{"another opcode", "another opcode", resp(id, 0x8180|2<<11, 1, qAllowed)},
		{"no question", "not one question", cat(hdr(id, 0x8180, 0, 0, 0, 0))},
		{"another name", "another question", resp(id, 0x8180, 1, cat(wireName("evil", "test"), u16(1, 1)))},
		{"a longer name", "another question", resp(id, 0x8180, 1, cat(wireName("allowed", "test", "x"), u16(1, 1)))},
		{"another type", "another question", resp(id, 0x8180, 1, cat(wireName("allowed", "test"), u16(16, 1)))},
		{"another class", "another question", resp(id, 0x8180, 1, cat(wireName("allowed", "test"), u16(1, 3)))},
		{"cut short", "another question", good[:20]},
		{"short", "short response", good[:5]},
	} {
		if got := pq.checkResponse(tc.msg, id); got != tc.why {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.why)
		}
	}
	// The client gets its id and its letter case back, the rest untouched.
	out := pq.restore(good)
	if binary.BigEndian.Uint16(out) != 0x4444 || !bytes.Equal(out[12:12+len(pq.wire)], wireName("AlLoWeD", "TeSt")) ||
		!bytes.Equal(out[12+len(pq.wire):], good[12+len(pq.wire):]) {
		t.Errorf("restored %x", out)
	}
}

func FuzzDNSQuery(f *testing.F) {
	for _, q := range realQueries {
		f.Add(q)
	}
	f.Add(cat(hdr(1, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, option(65001, []byte("x")))))
	f.Add(cat(hdr(1, rd, 2, 0, 0, 0), qAllowed, qAllowed))
	f.Add(cat(hdr(1, rd, 1, 0, 0, 0), wireName("x.allowed", "test"), u16(1, 1)))
	f.Add(cat(hdr(1, rd, 1, 0, 0, 0), qAllowed, []byte("trailer")))
	f.Fuzz(func(t *testing.T, msg []byte) {
		pq, qerr := parseQuery(msg)
		if qerr != nil {
			if qerr.header {
				// A refusal is a well-formed response with the client's id.
				var p dnsmessage.Parser
				h, err := p.Start(refusal(pq, qerr.question, qerr.rcode))
				if err != nil || !h.Response || h.ID != binary.BigEndian.Uint16(msg) || h.RCode != qerr.rcode {
					t.Fatalf("refusal %+v %v", h, err)
				}
			}
			return
		}
		// What is forwarded is the canonical shape and nothing else.
		const id = 0xabcd
		fwd := pq.forwardMessage(id)
		want := 12 + len(pq.wire) + 4
		if pq.edns {
			want += 11
		}
		if len(fwd) != want || len(fwd) > len(msg) {
			t.Fatalf("forwards %d bytes for a %d-byte query: %x", len(fwd), len(msg), fwd)
		}
		var p dnsmessage.Parser
		h, err := p.Start(fwd)
		if err != nil || h.ID != id || h.Response || h.OpCode != 0 || h.Authoritative || h.Truncated ||
			h.RecursionAvailable || h.AuthenticData || h.CheckingDisabled || h.RCode != 0 || h.RecursionDesired != pq.rd {
			t.Fatalf("forwarded header %+v %v", h, err)
		}
		qs, err := p.AllQuestions()
		if err != nil || len(qs) != 1 || normalize(qs[0].Name.String()) != pq.name || qs[0].Name.String() != strings.ToLower(qs[0].Name.String()) {
			t.Fatalf("forwarded questions %v %v (name %q)", qs, err, pq.name)
		}
		if err := p.SkipAllAnswers(); err != nil {
			t.Fatal(err)
		}
		if err := p.SkipAllAuthorities(); err != nil {
			t.Fatal(err)
		}
		extra, err := p.AllAdditionals()
		if err != nil || len(extra) != boolInt(pq.edns) {
			t.Fatalf("forwarded additionals %v %v", extra, err)
		}
		for _, r := range extra {
			o, ok := r.Body.(*dnsmessage.OPTResource)
			if r.Header.Type != dnsmessage.TypeOPT || !ok || len(o.Options) != 0 {
				t.Fatalf("forwarded additional %+v", r)
			}
		}
		// A fixed point: the rebuilt query is accepted and rebuilt the same.
		again, qerr := parseQuery(fwd)
		if qerr != nil || !bytes.Equal(again.forwardMessage(id), fwd) {
			t.Fatalf("rebuilt query not stable: %v", qerr)
		}
		// The upstream's answer to it passes, and reaches the client under
		// the client's id with the client's question.
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RecursionDesired: pq.rd})
		_ = b.StartQuestions()
		_ = b.Question(qs[0])
		resp, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if why := pq.checkResponse(resp, id); why != "" {
			t.Fatalf("answer dropped: %s", why)
		}
		out := pq.restore(resp)
		if binary.BigEndian.Uint16(out) != pq.id || !bytes.Equal(out[12:12+len(pq.wire)], msg[12:12+len(pq.wire)]) {
			t.Fatalf("restored %x", out)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rawUpstream records the exact bytes that reach it and answers every
// query with one A record; lie makes it first send an answer to another
// question under the same id (a spoofed or confused response).
// It is not privtest's resolver on purpose: these tests are about the
// bytes on the wire (what the proxy rebuilds, a spoofed answer), not
// about names and records.
type rawUpstream struct {
	addr string
	lie  bool
	mu   sync.Mutex
	got  [][]byte
}

func startRawUpstream(t *testing.T, lie bool) *rawUpstream {
	u := &rawUpstream{lie: lie}
	var pc net.PacketConn
	var ln net.Listener
	// The random UDP port's TCP twin can be taken: try another (as
	// privtest.ServeDNS does).
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 10 {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	u.addr = pc.LocalAddr().String()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, r := range u.respond(buf[:n]) {
				pc.WriteTo(r, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if msg, err := readTCPMessage(c); err == nil {
					writeTCPMessage(c, u.respond(msg)[0])
				}
			}()
		}
	}()
	return u
}

func (u *rawUpstream) respond(msg []byte) [][]byte {
	u.mu.Lock()
	u.got = append(u.got, bytes.Clone(msg))
	u.mu.Unlock()
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	build := func(q dnsmessage.Question, ip [4]byte) []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired})
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip})
		out, _ := b.Finish()
		return out
	}
	right := build(q, [4]byte{127, 0, 0, 2})
	if !u.lie {
		return [][]byte{right}
	}
	other := q
	other.Name = dnsmessage.MustNewName("evil.test.")
	return [][]byte{build(other, [4]byte{127, 6, 6, 6}), right}
}

func (u *rawUpstream) received() [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slicesClone(u.got)
}

func slicesClone(b [][]byte) [][]byte { return append([][]byte(nil), b...) }

// exchange sends msg to the proxy over tr and returns its response (nil:
// none within a second).
func exchange(t *testing.T, p *dnsProxy, tr event.Transport, msg []byte) []byte {
	t.Helper()
	udp4, tcp4, _, _ := p.ports()
	if tr == event.UDP {
		c, err := net.Dial("udp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), udp4).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(msg)
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		return buf[:n]
	}
	c, err := net.Dial("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tcp4).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	writeTCPMessage(c, msg)
	resp, err := readTCPMessage(c)
	if err != nil {
		return nil
	}
	return resp
}

// The proxy on real loopback sockets: the upstream receives the rebuilt
// query only — never the client's bytes — the client gets the upstream's
// answer under its own id and case, and a hostile message reaches nobody.
func TestProxyForwardsOnlyRebuiltQueries(t *testing.T) {
	for _, tr := range []event.Transport{event.UDP, event.TCP} {
		t.Run(string(tr), func(t *testing.T) {
			up := startRawUpstream(t, false)
			var mu sync.Mutex
			var evs []event.DNSQuery
			p, err := startDNS(dnsConfig{
				Upstream: up.addr,
				Enforce:  true,
				Allow:    func(name string) (string, []int, bool) { return "allowed.test", []int{0}, name == "allowed.test" },
				Emit: func(ev event.Event) {
					mu.Lock()
					evs = append(evs, ev.(event.DNSQuery))
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			last := func() event.DNSQuery {
				for range 100 {
					mu.Lock()
					n := len(evs)
					mu.Unlock()
					if n > 0 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(evs) == 0 {
					return event.DNSQuery{}
				}
				e := evs[len(evs)-1]
				evs = nil
				return e
			}

			for _, name := range []string{"glibc", "dig", "validating"} {
				msg := realQueries[name]
				before := len(up.received())
				resp := exchange(t, p, tr, msg)
				pq, _ := parseQuery(msg)
				got := up.received()[before:]
				if len(got) != 1 {
					t.Fatalf("%s: upstream got %d messages", name, len(got))
				}
				fid := binary.BigEndian.Uint16(got[0])
				if !bytes.Equal(got[0], pq.forwardMessage(fid)) {
					t.Errorf("%s: upstream got\n %x\nnot the rebuilt\n %x", name, got[0], pq.forwardMessage(fid))
				}
				if len(resp) < 12 || binary.BigEndian.Uint16(resp) != pq.id || !bytes.Equal(resp[12:12+len(pq.wire)], msg[12:12+len(pq.wire)]) {
					t.Errorf("%s: client got %x", name, resp)
				}
				if _, as := parseAnswers(resp); len(as) != 1 || as[0].addr != netip.MustParseAddr("127.0.0.2") {
					t.Errorf("%s: answers %v", name, as)
				}
				if e := last(); e.Verdict != event.Allow || !e.Forwarded || e.Name != "allowed.test" {
					t.Errorf("%s: event %+v", name, e)
				}
			}

			for _, tc := range []struct {
				name, rule string
				msg        []byte
				rcode      dnsmessage.RCode
			}{
				{"trailing bytes", "malformed_query: trailing bytes (6 after the message)", cat(hdr(9, rd, 1, 0, 0, 0), qAllowed, []byte("secret")), dnsmessage.RCodeFormatError},
				{"EDNS option", "malformed_query: EDNS option 65001 (7 bytes)", cat(hdr(9, rd, 1, 0, 0, 1), qAllowed, opt(1232, 0, 0, 0, option(65001, []byte("payload")))), dnsmessage.RCodeFormatError},
				{"opcode UPDATE", "malformed_query: opcode 5 (only QUERY is forwarded)", cat(hdr(9, 5<<11, 1, 0, 0, 0), qAllowed), dnsmessage.RCodeRefused},
				{"dot inside a label", "malformed_query: byte 0x2e in a label", cat(hdr(9, rd, 1, 0, 0, 0), wireName("x.allowed", "test"), u16(1, 1)), dnsmessage.RCodeFormatError},
			} {
				before := len(up.received())
				resp := exchange(t, p, tr, tc.msg)
				var ps dnsmessage.Parser
				h, err := ps.Start(resp)
				if err != nil || h.ID != 9 || !h.Response || h.RCode != tc.rcode {
					t.Errorf("%s: client got %+v %v", tc.name, h, err)
				}
				if e := last(); e.Verdict != event.Deny || e.Forwarded || e.Rule != tc.rule || e.RCode != rcodeName(tc.rcode) {
					t.Errorf("%s: event %+v", tc.name, e)
				}
				if n := len(up.received()) - before; n != 0 {
					t.Errorf("%s: reached the upstream (%d messages)", tc.name, n)
				}
			}
		})
	}
}

// An answer to another question is never the client's answer: over UDP it
// is dropped and the real answer taken; over TCP (one query, one answer)
// the lookup fails.
func TestProxyDropsResponsesToAnotherQuestion(t *testing.T) {
	up := startRawUpstream(t, true)
	p, err := startDNS(dnsConfig{
		Upstream: up.addr,
		Enforce:  true,
		Allow:    func(name string) (string, []int, bool) { return "allowed.test", []int{0}, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for _, tc := range []struct {
		tr    event.Transport
		rcode string
		addrs []netip.Addr
	}{
		{event.UDP, "NOERROR", []netip.Addr{netip.MustParseAddr("127.0.0.2")}},
		{event.TCP, "SERVFAIL", nil},
	} {
		resp := exchange(t, p, tc.tr, realQueries["glibc"])
		rcode, as := parseAnswers(resp)
		var addrs []netip.Addr
		for _, a := range as {
			addrs = append(addrs, a.addr)
		}
		if rcode != tc.rcode || len(addrs) != len(tc.addrs) || (len(addrs) > 0 && addrs[0] != tc.addrs[0]) {
			t.Errorf("%s: %s %v, want %s %v", tc.tr, rcode, addrs, tc.rcode, tc.addrs)
		}
	}
}
