package netwatch

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/agentwatch/agentwatch/event"
)

func TestSystemResolver(t *testing.T) {
	for _, tc := range []struct {
		conf, want string
		all        []string
	}{
		{"nameserver 10.0.0.2\nnameserver 10.0.0.3\n", "10.0.0.2:53", []string{"10.0.0.2", "10.0.0.3"}},
		{"# comment\nsearch x\nnameserver fe80::1%eth0\n", "[fe80::1]:53", []string{"fe80::1"}},
		{"nameserver bogus\nnameserver ::ffff:1.2.3.4\n", "1.2.3.4:53", []string{"1.2.3.4"}},
		{"search x\n", "", nil},
	} {
		p := filepath.Join(t.TempDir(), "resolv.conf")
		os.WriteFile(p, []byte(tc.conf), 0o644)
		got, err := SystemResolver(p)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.conf, got, err, tc.want)
		}
		ns, _ := Nameservers(p)
		var s []string
		for _, a := range ns {
			s = append(s, a.String())
		}
		if !slices.Equal(s, tc.all) {
			t.Errorf("%q: nameservers %v, want %v", tc.conf, s, tc.all)
		}
	}
}

func query(t *testing.T, name string, qt dnsmessage.Type, questions int) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 77, RecursionDesired: true})
	b.StartQuestions()
	for range questions {
		b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qt, Class: dnsmessage.ClassINET})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// The answer path without sockets: a disallowed name gets NXDOMAIN without
// the upstream being asked, for every record type; several questions in
// one message are refused as a whole.
func TestAnswerRefusesWithoutForwarding(t *testing.T) {
	var got []event.DNSQuery
	p := &dnsProxy{cfg: dnsConfig{
		Upstream: "192.0.2.1:53", // never dialled: every case here is refused before
		Enforce:  true,
		Allow: func(name string) (string, []int, bool) {
			return "ok.test", []int{0}, name == "ok.test"
		},
		Emit: func(ev event.Event) { got = append(got, ev.(event.DNSQuery)) },
	}}
	for _, tc := range []struct {
		name      string
		qt        dnsmessage.Type
		questions int
		rcode     dnsmessage.RCode
		rule      string
	}{
		{"Exfil.Other.Test.", dnsmessage.TypeTXT, 1, dnsmessage.RCodeNameError, RuleUnknownDomain},
		{"x.other.test.", dnsmessage.TypeA, 1, dnsmessage.RCodeNameError, RuleUnknownDomain},
		{"x.other.test.", dnsmessage.TypeALL, 1, dnsmessage.RCodeNameError, RuleUnknownDomain},
		{"x.other.test.", dnsmessage.TypeAAAA, 1, dnsmessage.RCodeNameError, RuleUnknownDomain},
		{"ok.test.", dnsmessage.TypeA, 2, dnsmessage.RCodeFormatError, RuleBadQuery + ": 2 questions (exactly one is forwarded)"},
	} {
		got = nil
		resp := p.answer(query(t, tc.name, tc.qt, tc.questions), event.UDP, netip.MustParseAddrPort("127.0.0.1:5555"))
		var parser dnsmessage.Parser
		h, err := parser.Start(resp)
		if err != nil {
			t.Fatalf("%s: bad response: %v", tc.name, err)
		}
		if h.ID != 77 || !h.Response || h.RCode != tc.rcode {
			t.Errorf("%s %v: header %+v, want rcode %v", tc.name, tc.qt, h, tc.rcode)
		}
		if len(got) != 1 || got[0].Verdict != event.Deny || got[0].Forwarded || got[0].Rule != tc.rule {
			t.Errorf("%s %v: events %+v", tc.name, tc.qt, got)
		}
	}
	// Too short to carry an id: no answer, but on the record.
	got = nil
	if resp := p.answer([]byte{1, 2, 3}, event.UDP, netip.AddrPort{}); resp != nil {
		t.Errorf("garbage answered: %x", resp)
	}
	if len(got) != 1 || got[0].Verdict != event.Deny || got[0].Rule != RuleBadQuery+": short header (3 bytes)" {
		t.Errorf("garbage: events %+v", got)
	}
}
