package supervisor_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/supervisor"
	"github.com/agentwatch/agentwatch/telemetry"
)

// testDNS answers allowed.test → 127.0.0.2 and other.test → 127.0.0.3.
func testDNS(t *testing.T) string {
	return privtest.StartDNS(t, map[string][4]byte{"allowed.test.": {127, 0, 0, 2}, "other.test.": {127, 0, 0, 3}}).Addr
}

func httpOn(t *testing.T, ip string) int {
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }))
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return ln.Addr().(*net.TCPAddr).Port
}

// TestNetworkEnforcementOnTheTrace runs a real shell script under an
// enforce policy and reads the decisions back from the stored trace: an
// allowed name works and is named on its network_call, an unknown name is
// not resolved, an IP literal is refused with a policy_bypass alert.
func TestNetworkEnforcementOnTheTrace(t *testing.T) {
	privtest.Require(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed (apt-get install -y curl)")
	}
	upstream := testDNS(t)
	pA, pO := httpOn(t, "127.0.0.2"), httpOn(t, "127.0.0.3")
	pol, err := policy.Parse("net.yaml", fmt.Appendf(nil, `version: 1
mode: enforce
network:
  allow: [allowed.test]
  allow_loopback: false
  inspect_ports: [%d]
  dns:
    upstream: %s
`, pA, upstream))
	if err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	script := fmt.Sprintf(`c="curl -sS --max-time 5 -o /dev/null"
$c http://allowed.test:%[1]d/ || exit 10
$c http://other.test:%[2]d/ && exit 11
$c http://127.0.0.3:%[2]d/ && exit 12
exit 0
`, pA, pO)
	storeDir := t.TempDir()
	var stderr bytes.Buffer
	code, err := supervisor.Run(context.Background(), supervisor.Options{
		Argv:     []string{"/bin/sh", "-c", script},
		User:     "root",
		StoreDir: storeDir,
		Dir:      ws,
		Stderr:   &stderr,
		Policy:   pol,
	})
	if err != nil || code != 0 {
		t.Fatalf("run: exit %d, %v\n%s", code, err, stderr.String())
	}
	id := strings.Fields(stderr.String()[strings.Index(stderr.String(), "agentwatch: run ")+len("agentwatch: run "):])[0]
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, _, err := st.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	attr := func(s *telemetry.Span, k string) string {
		for _, kv := range s.Attrs {
			if string(kv.Key) == k {
				return kv.Value.Emit()
			}
		}
		return ""
	}
	var lines []string
	find := func(match func(s *telemetry.Span) bool) *telemetry.Span {
		for i := range tr.Spans {
			if s := &tr.Spans[i]; s.Type() == telemetry.SpanNetworkCall && match(s) {
				return s
			}
		}
		return nil
	}
	for i := range tr.Spans {
		if s := &tr.Spans[i]; s.Type() == telemetry.SpanNetworkCall {
			lines = append(lines, fmt.Sprint(s.Attrs))
		}
	}
	dump := strings.Join(lines, "\n")
	peer := func(ip string, port int) func(s *telemetry.Span) bool {
		return func(s *telemetry.Span) bool {
			return attr(s, string(telemetry.NetworkPeerAddress)) == ip && attr(s, string(telemetry.ServerPort)) == fmt.Sprint(port)
		}
	}
	if s := find(peer("127.0.0.2", pA)); s == nil {
		t.Errorf("no network_call to allowed.test's address:\n%s", dump)
	} else if attr(s, string(telemetry.ServerAddress)) != "allowed.test" || attr(s, string(telemetry.PolicyDecision)) != "allow" ||
		attr(s, string(telemetry.PolicyRule)) != "allowed.test" {
		t.Errorf("allowed connection recorded as %v", s.Attrs)
	}
	if s := find(func(s *telemetry.Span) bool { return attr(s, string(telemetry.DNSQuestionName)) == "other.test" }); s == nil {
		t.Errorf("no DNS network_call for other.test:\n%s", dump)
	} else if attr(s, string(telemetry.PolicyDecision)) != "deny" {
		t.Errorf("other.test lookup recorded as %v", s.Attrs)
	}
	s := find(peer("127.0.0.3", pO))
	if s == nil {
		t.Fatalf("no network_call for the IP literal:\n%s", dump)
	}
	if attr(s, string(telemetry.PolicyDecision)) != "deny" {
		t.Errorf("IP literal recorded as %v", s.Attrs)
	}
	alerted := false
	for _, ev := range s.Events {
		for _, kv := range ev.Attrs {
			if kv.Key == telemetry.AlertRule && strings.Contains(kv.Value.Emit(), "policy_bypass") {
				alerted = true
			}
		}
	}
	if !alerted {
		t.Errorf("IP literal without a policy_bypass alert: %+v", s.Events)
	}
}
