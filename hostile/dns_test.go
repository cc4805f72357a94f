package hostile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
)

// dnsProbe sends raw queries straight to the upstream's own address (not
// port 53): a disallowed name, and an allowed one carrying extra bytes (a
// covert channel). It prints what came back.
const dnsProbe = `
import socket, struct, sys
up = sys.argv[1].rsplit(":", 1)
def q(name, extra=b""):
    msg = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        msg += bytes([len(l)]) + l.encode()
    msg += b"\x00" + struct.pack(">HH", 1, 1) + extra
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(msg, (up[0], int(up[1])))
    try:
        r = s.recv(1500)
        an = struct.unpack(">H", r[6:8])[0]
        print(name, "rcode%d" % (r[3] & 15), "answers%d" % an)
    except OSError as e:
        print(name, "noanswer")
q("evil.test")
q("allowed.test", b"EXFILTRATED-BYTES")
`

func TestDNSOnlyThroughTheProxy(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	up := privtest.StartDNS(t, map[string][4]byte{"allowed.test.": {127, 0, 0, 2}, "evil.test.": {127, 0, 0, 66}})
	for _, mode := range []string{"enforce", "observe"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorkspace(t, u)
			pol := filepath.Join(t.TempDir(), "p.yaml")
			// allow_loopback stays at its default (true): the upstream is
			// on loopback, and must still not be reachable directly.
			os.WriteFile(pol, []byte("version: 1\nmode: "+mode+"\nnetwork:\n  allow: [allowed.test]\n  dns:\n    upstream: "+up.Addr+"\n"), 0o644)
			before := len(up.Asked())
			r := agentwatchRun(t, w, mode, "/usr/bin/python3 -c '"+strings.ReplaceAll(dnsProbe, "'", `'\''`)+"' "+up.Addr, "--policy", pol)
			asked := up.Asked()[before:]
			t.Logf("upstream asked %v; child got:\n%s", asked, r.stdout)
			if mode == "enforce" {
				if slices.Contains(asked, "evil.test.") {
					t.Error("the upstream was asked a disallowed name directly")
				}
				if strings.Contains(r.stdout, "evil.test rcode0 answers1") {
					t.Error("the child got the upstream's answer for a disallowed name")
				}
			}
			if !strings.Contains(traceText(r), "evil.test") {
				t.Error("the direct query for evil.test is not on the trace")
			}
			if strings.Contains(r.stdout, "allowed.test rcode0") {
				t.Error("a query with trailing bytes was answered (forwarded)")
			}
			if !r.hasAlertAny("malformed_query") && !strings.Contains(traceText(r), "malformed_query") {
				t.Errorf("the malformed query is not on the trace")
			}
		})
	}
}

// traceText is every attribute and event value of the trace, for a
// search by text.
func traceText(r run) string {
	var b strings.Builder
	for _, sp := range r.trace.Spans {
		b.WriteString(sp.Name + "\n")
		for _, kv := range sp.Attrs {
			b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
		for _, ev := range sp.Events {
			b.WriteString(ev.Name + "\n")
			for _, kv := range ev.Attrs {
				b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
			}
		}
	}
	return b.String()
}
