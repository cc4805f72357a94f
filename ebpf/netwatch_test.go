package ebpf

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/privtest"
)

func TestCheckNetLoadsEveryProgram(t *testing.T) {
	privtest.Require(t)
	if err := CheckNet(); err != nil {
		t.Fatalf("%+v", err)
	}
}

// The decoder's offsets must match the C layout bpf2go saw.
func TestNetRecLayout(t *testing.T) {
	var r netwatchNwRec
	if got := int(unsafe.Sizeof(r)); got != netRecSize {
		t.Fatalf("nw_rec is %d bytes, decoder expects %d", got, netRecSize)
	}
	for name, off := range map[string]uintptr{
		"verdict": unsafe.Offsetof(r.Verdict), "reason": unsafe.Offsetof(r.Reason),
		"op": unsafe.Offsetof(r.Op), "proto": unsafe.Offsetof(r.Proto), "port": unsafe.Offsetof(r.Port),
		"tgid": unsafe.Offsetof(r.Tgid), "ts": unsafe.Offsetof(r.TsNs), "addr": unsafe.Offsetof(r.Addr),
	} {
		want := map[string]uintptr{"verdict": 1, "reason": 2, "op": 3, "proto": 4, "port": 6, "tgid": 8, "ts": 16, "addr": 32}[name]
		if off != want {
			t.Errorf("nw_rec.%s at %d, decoder reads %d", name, off, want)
		}
	}
}

func netRec(verdict, reason, op, proto uint8, port uint16, pid uint32, addr netip.Addr) []byte {
	b := make([]byte, netRecSize)
	b[0], b[1], b[2], b[3], b[4] = 1, verdict, reason, op, proto
	binary.NativeEndian.PutUint16(b[6:], port)
	binary.NativeEndian.PutUint32(b[8:], pid)
	binary.NativeEndian.PutUint64(b[16:], 1000)
	k := key16(addr)
	for i, w := range k {
		binary.NativeEndian.PutUint32(b[32+4*i:], w)
	}
	return b
}

func TestDecodeNetRec(t *testing.T) {
	v4 := netip.MustParseAddr("93.184.216.34")
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name string
		rec  []byte
		want event.NetDecision
	}{
		{"tcp allow by name", netRec(1, 1, 1, 1, 443, 42, v4), event.NetDecision{Op: event.NetConnect, Transport: event.TCP,
			Addr: netip.AddrPortFrom(v4, 443), Verdict: event.Allow, Rule: RuleAllowedName, Check: CheckAddress}},
		{"udp deny unresolved v6", netRec(2, 3, 2, 2, 9999, 7, v6), event.NetDecision{Op: event.NetSendTo, Transport: event.UDP,
			Addr: netip.AddrPortFrom(v6, 9999), Verdict: event.Deny, Rule: RuleUnresolved, Check: CheckAddress}},
		{"dns redirect", netRec(1, 5, 2, 2, 53, 7, v4), event.NetDecision{Op: event.NetSendTo, Transport: event.UDP,
			Addr: netip.AddrPortFrom(v4, 53), Verdict: event.Allow, Rule: RuleDNSRedirect, Check: CheckDNSRedirect}},
		{"audit loopback", netRec(3, 4, 1, 1, 8080, 7, netip.MustParseAddr("127.0.0.5")), event.NetDecision{Op: event.NetConnect, Transport: event.TCP,
			Addr: netip.MustParseAddrPort("127.0.0.5:8080"), Verdict: event.Audit, Rule: RuleLoopback, Check: CheckAddress}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeNetRec(tc.rec, 5)
			if err != nil {
				t.Fatal(err)
			}
			if got.Time.UnixNano() != 1005 || got.PID == 0 {
				t.Errorf("header %+v", got.Header)
			}
			got.Header = event.Header{}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for _, bad := range [][]byte{nil, make([]byte, 10), netRec(9, 1, 1, 1, 1, 1, v4), netRec(1, 9, 1, 1, 1, 1, v4)} {
		if _, err := decodeNetRec(bad, 0); err == nil {
			t.Errorf("decoded a bad record %x", bad)
		}
	}
}
