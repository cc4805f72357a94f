package privtest

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The fake upstream answers Go's own resolver over UDP and TCP as its
// config says: A and AAAA from the zone, TXT for every name, NXDOMAIN for
// the rest. Pure: loopback sockets only.
func TestDNS(t *testing.T) {
	d := StartDNSWith(t, DNSConfig{
		TCP: true, TXT: "hello", NXDomain: true,
		Zone: map[string]netip.Addr{
			"four.test.": netip.MustParseAddr("127.0.0.2"),
			"six.test.":  netip.MustParseAddr("::1"),
		},
	})
	ctx := context.Background()
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, d.Addr)
		}}
		if ips, err := r.LookupNetIP(ctx, "ip4", "Four.Test"); err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("127.0.0.2") {
			t.Errorf("%s: A four.test = %v, %v", network, ips, err)
		}
		if ips, err := r.LookupNetIP(ctx, "ip6", "six.test"); err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("::1") {
			t.Errorf("%s: AAAA six.test = %v, %v", network, ips, err)
		}
		if txt, err := r.LookupTXT(ctx, "x.other.test"); err != nil || !slices.Equal(txt, []string{"hello"}) {
			t.Errorf("%s: TXT x.other.test = %v, %v", network, txt, err)
		}
		_, err := r.LookupNetIP(ctx, "ip4", "other.test")
		if dnsErr, ok := err.(*net.DNSError); !ok || !dnsErr.IsNotFound {
			t.Errorf("%s: A other.test: %v, want NXDOMAIN", network, err)
		}
	}
	asked := strings.Join(d.Asked(), " ")
	if want := "four.test. six.test. x.other.test. other.test."; !strings.HasPrefix(asked, want) {
		t.Errorf("asked %q, want it to start with %q", asked, want)
	}
	if q := d.Questions()[0]; q.Name != "four.test." || q.Type.String() != "TypeA" {
		t.Errorf("first question %+v", q)
	}
}

// StartDNS keeps its old shape: A answers from a [4]byte zone, an empty
// NOERROR answer for anything else (a lame referral to Go).
func TestStartDNS(t *testing.T) {
	d := StartDNS(t, map[string][4]byte{"allowed.test.": {127, 0, 0, 2}})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.Addr)
	}}
	ctx := context.Background()
	if ips, err := r.LookupNetIP(ctx, "ip4", "allowed.test"); err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("A allowed.test = %v, %v", ips, err)
	}
	if ips, err := r.LookupNetIP(ctx, "ip4", "other.test"); err == nil {
		t.Errorf("A other.test = %v, want an empty answer", ips)
	}
}
