package netwatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/ebpf"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/privtest"
)

// The test binary doubles as the child (a small Go client run inside the
// run's cgroup) when NETWATCH_CHILD is set.
func TestMain(m *testing.M) {
	if args := os.Getenv("NETWATCH_CHILD"); args != "" {
		os.Exit(child(strings.Fields(args)))
	}
	if args := os.Getenv("NETWATCH_SUPERVISOR"); args != "" {
		os.Exit(pinnedSupervisor(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

// child runs one network action and exits 0 when it succeeded. Its
// resolver is Go's own; the server it is pointed at does not matter, the
// hooks send port 53 to the proxy anyway.
func child(args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resolver := func(server, network string) *net.Resolver {
		return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	switch args[0] {
	case "lookup": // lookup NAME SERVER udp|tcp
		addrs, err := resolver(args[2], args[3]).LookupHost(ctx, args[1])
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println(addrs)
	case "txt": // txt NAME SERVER
		txt, err := resolver(args[2], "udp").LookupTXT(ctx, args[1])
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println(txt)
	case "connect": // connect ADDR:PORT
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", args[1])
		if err != nil {
			fmt.Println(err)
			if errors.Is(err, syscall.EPERM) {
				return 3
			}
			return 1
		}
		c.Close()
	case "udp": // udp ADDR:PORT: one datagram (QUIC's first flight)
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return 1
		}
		defer c.Close()
		if _, err := c.WriteToUDPAddrPort([]byte("quic?"), netip.MustParseAddrPort(args[1])); err != nil {
			fmt.Println(err)
			if errors.Is(err, syscall.EPERM) {
				return 3
			}
			return 1
		}
	default:
		return 2
	}
	return 0
}

// upstream is a tiny authoritative DNS server (privtest's) that counts
// what reaches it.
type upstream struct {
	*privtest.DNS
	addr string

	mu     sync.Mutex
	forgot map[string]int // "name TYPE": questions asked before forget
}

// Every name has a TXT record (what an exfiltration channel reads); only
// the zone's names have addresses, the others are NXDOMAIN.
var zone = map[string]netip.Addr{
	"allowed.test.":  netip.MustParseAddr("127.0.0.2"),
	"other.test.":    netip.MustParseAddr("127.0.0.3"),
	"sub.wild.test.": netip.MustParseAddr("127.0.0.4"),
	"six.test.":      netip.MustParseAddr("::1"),
}

func startUpstream(t *testing.T) *upstream { return startUpstreamAt(t, "127.0.0.1:0") }

// startUpstreamAt starts the upstream on listen (UDP and TCP, same port).
func startUpstreamAt(t *testing.T, listen string) *upstream {
	d := privtest.StartDNSWith(t, privtest.DNSConfig{
		Listen: listen, TCP: true, Zone: zone, TXT: "exfil-ok", NXDomain: true, Authoritative: true, TTL: 5,
	})
	return &upstream{DNS: d, addr: d.Addr, forgot: map[string]int{}}
}

// count is how many name (no trailing dot) qtype ("A", "TXT") questions
// reached the upstream since the last forget.
func (u *upstream) count(name, qtype string) int {
	n := 0
	for _, q := range u.Questions() {
		if normalize(q.Name) == name && qtypeName(q.Type) == qtype {
			n++
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return n - u.forgot[name+" "+qtype]
}

// forget makes count start again from zero for name and qtype.
func (u *upstream) forget(name, qtype string) {
	n := u.count(name, qtype)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.forgot[name+" "+qtype] += n
}

// testCgroup makes a cgroup v2 directory for the test's children.
func testCgroup(t *testing.T) (string, int) {
	mount := ""
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if pre, post, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(post, "cgroup2 ") {
			mount = strings.Fields(pre)[4]
			break
		}
	}
	if mount == "" {
		t.Fatal("no cgroup v2 mount")
	}
	dir := filepath.Join(mount, fmt.Sprintf("agentwatch-netwatch-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		for range 50 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir, fd
}

// recorded collects what netwatch emits.
type recorded struct {
	mu  sync.Mutex
	all []event.Event
}

func (e *recorded) add(ev event.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

// wait returns the first event since index from that matches, waiting for
// the ring buffer reader.
func (e *recorded) wait(from int, match func(event.Event) bool) event.Event {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		e.mu.Lock()
		for _, ev := range e.all[min(from, len(e.all)):] {
			if match(ev) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
	}
	return nil
}

func (e *recorded) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.all)
}

func (e *recorded) dump(from int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, ev := range e.all[min(from, len(e.all)):] {
		fmt.Fprintf(&b, "  %T %+v\n", ev, ev)
	}
	return b.String()
}

// serve starts an HTTP (or HTTPS) server on ip and returns its port.
func serve(t *testing.T, ip string, tls bool) int {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", ip)
	}))
	s.Listener.Close()
	s.Listener = ln
	if tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return ln.Addr().(*net.TCPAddr).Port
}

// expect is what one row must leave on the record.
type expect struct {
	skip     bool          // the row does not run in this mode
	dns      string        // DNSQuery name ("" : none expected)
	dnsType  string        // its type
	dnsV     event.Verdict // its verdict
	dnsRule  string
	addr     string // NetDecision original destination ("": none expected)
	check    string // its check
	decision event.Verdict
	rule     string
}

func TestBypassTable(t *testing.T) {
	privtest.Require(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed (apt-get install -y curl)")
	}
	up := startUpstream(t)
	pAllowed := serve(t, "127.0.0.2", false)
	pOther := serve(t, "127.0.0.3", false)
	pWild := serve(t, "127.0.0.4", false)
	pTLS := serve(t, "127.0.0.2", true) // shared by allowed.test and (for the SNI row) other.test
	pSix := serve(t, "::1", false)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	curl := func(args ...string) []string {
		return append([]string{"curl", "-sS", "-k", "--max-time", "5", "-o", "/dev/null"}, args...)
	}
	goChild := func(args ...string) []string { return append([]string{self}, args...) }
	url := func(host string, port int) string { return fmt.Sprintf("http://%s:%d/", host, port) }

	rows := []struct {
		name string
		argv []string
		// exit status wanted in enforce mode (observe: always 0)
		enforceExit int
		enforce     expect
		observe     expect
	}{
		{"allowed name", curl(url("allowed.test", pAllowed)), 0,
			expect{dns: "allowed.test", dnsType: "A", dnsV: event.Allow, dnsRule: "allowed.test",
				addr: fmt.Sprintf("127.0.0.2:%d", pAllowed), check: "host", decision: event.Allow, rule: "allowed.test"},
			expect{dns: "allowed.test", dnsType: "A", dnsV: event.Allow, dnsRule: "allowed.test",
				addr: fmt.Sprintf("127.0.0.2:%d", pAllowed), check: "host", decision: event.Allow, rule: "allowed.test"}},
		{"wildcard name", curl(url("sub.wild.test", pWild)), 0,
			expect{dns: "sub.wild.test", dnsType: "A", dnsV: event.Allow, dnsRule: "*.wild.test",
				addr: fmt.Sprintf("127.0.0.4:%d", pWild), check: "host", decision: event.Allow, rule: "*.wild.test"},
			expect{dns: "sub.wild.test", dnsType: "A", dnsV: event.Allow, dnsRule: "*.wild.test",
				addr: fmt.Sprintf("127.0.0.4:%d", pWild), check: "host", decision: event.Allow, rule: "*.wild.test"}},
		{"unknown name", curl(url("other.test", pOther)), 6, // curl: could not resolve
			expect{dns: "other.test", dnsType: "A", dnsV: event.Deny, dnsRule: RuleUnknownDomain},
			expect{dns: "other.test", dnsType: "A", dnsV: event.Audit, dnsRule: RuleUnknownDomain,
				addr: fmt.Sprintf("127.0.0.3:%d", pOther), check: "address", decision: event.Audit, rule: "loopback-denied"}},
		{"IP literal", curl(url("127.0.0.3", pOther)), 7, // curl: could not connect
			expect{addr: fmt.Sprintf("127.0.0.3:%d", pOther), check: "address", decision: event.Deny, rule: "loopback-denied"},
			expect{addr: fmt.Sprintf("127.0.0.3:%d", pOther), check: "address", decision: event.Audit, rule: "loopback-denied"}},
		// Enforce only: in observe mode the connect would leave the machine.
		{"IP literal, not loopback", goChild("connect", "192.0.2.1:80"), 3, // EPERM
			expect{addr: "192.0.2.1:80", check: "address", decision: event.Deny, rule: "unresolved-address"},
			expect{skip: true}},
		{"curl --resolve", curl("--resolve", fmt.Sprintf("other.test:%d:127.0.0.3", pOther), url("other.test", pOther)), 7,
			expect{addr: fmt.Sprintf("127.0.0.3:%d", pOther), check: "address", decision: event.Deny, rule: "loopback-denied"},
			expect{addr: fmt.Sprintf("127.0.0.3:%d", pOther), check: "address", decision: event.Audit, rule: "loopback-denied"}},
		{"TLS to an allowed address with a disallowed SNI",
			// allowed.test's address was learned by the first row; the
			// name asked for in the ClientHello is other.test.
			curl("--resolve", fmt.Sprintf("other.test:%d:127.0.0.2", pTLS), fmt.Sprintf("https://other.test:%d/", pTLS)), 35,
			expect{addr: fmt.Sprintf("127.0.0.2:%d", pTLS), check: "sni", decision: event.Deny, rule: RuleNotAllowed},
			expect{addr: fmt.Sprintf("127.0.0.2:%d", pTLS), check: "sni", decision: event.Audit, rule: RuleNotAllowed}},
		{"DNS to another resolver", goChild("lookup", "allowed.test", "192.0.2.53:53", "udp"), 0,
			expect{dns: "allowed.test", dnsType: "A", dnsV: event.Allow, addr: "192.0.2.53:53", check: "dns-redirect", decision: event.Allow, rule: "dns-redirect"},
			expect{dns: "allowed.test", dnsType: "A", dnsV: event.Allow, addr: "192.0.2.53:53", check: "dns-redirect", decision: event.Allow, rule: "dns-redirect"}},
		{"DNS to an IPv6 resolver", goChild("lookup", "allowed.test", "[2001:db8::53]:53", "udp"), 0,
			expect{dns: "allowed.test", dnsType: "A", dnsV: event.Allow, addr: "[2001:db8::53]:53", check: "dns-redirect", decision: event.Allow, rule: "dns-redirect"},
			expect{dns: "allowed.test", dnsType: "A", dnsV: event.Allow, addr: "[2001:db8::53]:53", check: "dns-redirect", decision: event.Allow, rule: "dns-redirect"}},
		{"DNS over TCP", goChild("lookup", "sub.wild.test", "192.0.2.54:53", "tcp"), 0,
			expect{dns: "sub.wild.test", dnsType: "A", dnsV: event.Allow, addr: "192.0.2.54:53", check: "dns-redirect", decision: event.Allow, rule: "dns-redirect"},
			expect{dns: "sub.wild.test", dnsType: "A", dnsV: event.Allow, addr: "192.0.2.54:53", check: "dns-redirect", decision: event.Allow, rule: "dns-redirect"}},
		{"TXT of a disallowed name", goChild("txt", "secret-data.other.test", "192.0.2.53:53"), 1,
			expect{dns: "secret-data.other.test", dnsType: "TXT", dnsV: event.Deny, dnsRule: RuleUnknownDomain},
			expect{dns: "secret-data.other.test", dnsType: "TXT", dnsV: event.Audit, dnsRule: RuleUnknownDomain}},
		// allowed.test's address on an inspected port, over UDP: QUIC
		// would carry the name past the splice proxy.
		{"UDP to an allowed address on an inspected port", goChild("udp", fmt.Sprintf("127.0.0.2:%d", pTLS)), 3,
			expect{addr: fmt.Sprintf("127.0.0.2:%d", pTLS), check: "address", decision: event.Deny, rule: "udp-on-inspected-port"},
			expect{addr: fmt.Sprintf("127.0.0.2:%d", pTLS), check: "address", decision: event.Audit, rule: "udp-on-inspected-port"}},
		{"IPv6 literal", goChild("connect", fmt.Sprintf("[::1]:%d", pSix)), 3, // EPERM
			expect{addr: fmt.Sprintf("[::1]:%d", pSix), check: "address", decision: event.Deny, rule: "loopback-denied"},
			expect{addr: fmt.Sprintf("[::1]:%d", pSix), check: "address", decision: event.Audit, rule: "loopback-denied"}},
	}

	for _, mode := range []policy.Mode{policy.Enforce, policy.Observe} {
		t.Run(string(mode), func(t *testing.T) {
			pol, err := policy.Parse("test.yaml", fmt.Appendf(nil, `version: 1
mode: %s
network:
  allow: [allowed.test, "*.wild.test"]
  allow_loopback: false
  inspect_ports: [%d, %d, %d, %d, %d]
  dns:
    upstream: %s
`, mode, pAllowed, pOther, pWild, pTLS, pSix, up.addr))
			if err != nil {
				t.Fatal(err)
			}
			cg, cgfd := testCgroup(t)
			var evs recorded
			nw, err := Start(Config{Policy: pol, CgroupPath: cg, Emit: evs.add})
			if err != nil {
				t.Fatalf("%+v", err)
			}
			defer nw.Close()
			defer func() {
				if t.Failed() {
					t.Logf("events:\n%s", evs.dump(0))
				}
			}()
			for _, row := range rows {
				want, exp := row.enforceExit, row.enforce
				if mode == policy.Observe {
					want, exp = 0, row.observe
				}
				if exp.skip {
					continue
				}
				from := evs.len()
				cmd := exec.Command(row.argv[0], row.argv[1:]...)
				if cmd.Path == self {
					cmd.Args = row.argv[:1]
					cmd.Env = append(os.Environ(), "NETWATCH_CHILD="+strings.Join(row.argv[1:], " "))
				}
				cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
				out, _ := cmd.CombinedOutput()
				code := cmd.ProcessState.ExitCode()
				if code != want {
					t.Errorf("%s: exit %d, want %d; output:\n%s", row.name, code, want, out)
				}
				if exp.dns != "" {
					ev := evs.wait(from, func(ev event.Event) bool {
						q, ok := ev.(event.DNSQuery)
						return ok && q.Name == exp.dns && q.QType == exp.dnsType
					})
					q, _ := ev.(event.DNSQuery)
					switch {
					case ev == nil:
						t.Errorf("%s: no DNS query %s %s recorded; got:\n%s", row.name, exp.dns, exp.dnsType, evs.dump(from))
					case q.Verdict != exp.dnsV || (exp.dnsRule != "" && q.Rule != exp.dnsRule):
						t.Errorf("%s: DNS %s: verdict %v rule %q, want %v %q", row.name, q.Name, q.Verdict, q.Rule, exp.dnsV, exp.dnsRule)
					case q.Verdict == event.Deny && q.Forwarded:
						t.Errorf("%s: denied query was forwarded", row.name)
					}
				}
				if exp.addr != "" {
					ev := evs.wait(from, func(ev event.Event) bool {
						d, ok := ev.(event.NetDecision)
						return ok && d.Addr.String() == exp.addr && d.Check == exp.check
					})
					d, _ := ev.(event.NetDecision)
					switch {
					case ev == nil:
						t.Errorf("%s: no %s decision for %s recorded; got:\n%s", row.name, exp.check, exp.addr, evs.dump(from))
					case d.Verdict != exp.decision || d.Rule != exp.rule:
						t.Errorf("%s: decision %v rule %q, want %v %q (%+v)", row.name, d.Verdict, d.Rule, exp.decision, exp.rule, d)
					case d.PID == 0 && d.Check != CheckSNI && d.Check != CheckHost:
						t.Errorf("%s: decision without a pid: %+v", row.name, d)
					}
				}
			}
			// DNS exfiltration: in enforce mode the disallowed names never
			// reached the upstream, whatever the record type.
			for _, q := range []string{"other.test A", "secret-data.other.test TXT"} {
				name, qt, _ := strings.Cut(q, " ")
				n := up.count(name, qt)
				if mode == policy.Enforce && n != 0 {
					t.Errorf("upstream saw %d %s queries in enforce mode", n, q)
				}
				if mode == policy.Observe && n == 0 {
					t.Errorf("upstream saw no %s query in observe mode", q)
				}
				up.forget(name, qt)
			}
		})
	}
}

// The upstream the DNS proxy forwards to is never reachable from the run,
// with allow_loopback: true too: a child that sends its query straight to
// the upstream's loopback address and port (not 53) gets the proxy's
// answer, and the upstream never sees a disallowed name.
func TestUpstreamOnlyThroughTheProxy(t *testing.T) {
	privtest.Require(t)
	for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(listen, func(t *testing.T) { testUpstreamOnlyThroughTheProxy(t, listen) })
	}
}

func testUpstreamOnlyThroughTheProxy(t *testing.T, listen string) {
	up := startUpstreamAt(t, listen) // a random port, never 53
	upHost, upPort, _ := net.SplitHostPort(up.addr)
	unspec := "0.0.0.0"
	if strings.Contains(upHost, ":") {
		unspec = "::"
	}
	unspecAddr := net.JoinHostPort(unspec, upPort)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("test.yaml", fmt.Appendf(nil, `version: 1
mode: enforce
network:
  allow: [allowed.test]
  allow_loopback: true
  dns:
    upstream: "%s"
`, up.addr))
	if err != nil {
		t.Fatal(err)
	}
	cg, cgfd := testCgroup(t)
	var evs recorded
	nw, err := Start(Config{Policy: pol, CgroupPath: cg, Emit: evs.add})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer nw.Close()
	for _, row := range []struct {
		name string
		args []string
		exit int
		// the DNS query the proxy must record
		qname, qtype string
		verdict      event.Verdict
		redirected   string // the destination the hook redirected
	}{
		{"disallowed name, UDP", []string{"lookup", "other.test", up.addr, "udp"}, 1, "other.test", "A", event.Deny, up.addr},
		{"disallowed name, TCP", []string{"lookup", "other.test", up.addr, "tcp"}, 1, "other.test", "A", event.Deny, up.addr},
		// The upstream answers every TXT: exit 0 would mean it was reached.
		{"TXT exfiltration", []string{"txt", "secret-data.other.test", up.addr}, 1, "secret-data.other.test", "TXT", event.Deny, up.addr},
		// connect/sendto 0.0.0.0 reaches loopback.
		{"unspecified address", []string{"txt", "secret2.other.test", unspecAddr}, 1, "secret2.other.test", "TXT", event.Deny, unspecAddr},
		{"allowed name still resolves", []string{"lookup", "allowed.test", up.addr, "udp"}, 0, "allowed.test", "A", event.Allow, up.addr},
	} {
		from := evs.len()
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "NETWATCH_CHILD="+strings.Join(row.args, " "))
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != row.exit {
			t.Errorf("%s: exit %d, want %d; output:\n%s", row.name, code, row.exit, out)
		}
		ev := evs.wait(from, func(ev event.Event) bool {
			q, ok := ev.(event.DNSQuery)
			return ok && q.Name == row.qname && q.QType == row.qtype
		})
		if q, ok := ev.(event.DNSQuery); !ok || q.Verdict != row.verdict {
			t.Errorf("%s: proxy recorded %+v; events:\n%s", row.name, ev, evs.dump(from))
		}
		ev = evs.wait(from, func(ev event.Event) bool {
			d, ok := ev.(event.NetDecision)
			return ok && d.Addr.String() == row.redirected && d.Check == "dns-redirect" && d.Verdict == event.Allow
		})
		if ev == nil {
			t.Errorf("%s: no dns-redirect decision for %s; events:\n%s", row.name, row.redirected, evs.dump(from))
		}
	}
	for _, q := range []string{"other.test A", "secret-data.other.test TXT", "secret2.other.test TXT"} {
		name, qt, _ := strings.Cut(q, " ")
		if n := up.count(name, qt); n != 0 {
			t.Errorf("upstream saw %d %s queries", n, q)
		}
	}
	if up.count("allowed.test", "A") == 0 {
		t.Error("the allowed name never reached the upstream through the proxy")
	}
}

// pinnedSupervisor is the test binary as a supervisor (NETWATCH_SUPERVISOR
// = "CGROUP PINDIR UPSTREAM"): it starts netwatch in enforce mode with
// allow_loopback: false, pins the hooks, says "pinned" and waits to be
// killed.
func pinnedSupervisor(args []string) int {
	pol, err := policy.Parse("test.yaml", fmt.Appendf(nil, "version: 1\nmode: enforce\nnetwork:\n  allow: [allowed.test]\n  allow_loopback: false\n  dns:\n    upstream: %s\n", args[2]))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	nw, err := Start(Config{Policy: pol, CgroupPath: args[0], Emit: func(event.Event) {}})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if err := nw.Pin(args[1]); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("pinned")
	select {}
}

func pinDir(t *testing.T) string {
	dir := filepath.Join(ebpf.BPFFS, fmt.Sprintf("agentwatch-netwatch-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { UnpinNetwork(dir) })
	return dir
}

// runIn runs the test binary as a child in the cgroup and returns its exit
// status.
func runIn(t *testing.T, cgfd int, args ...string) int {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "NETWATCH_CHILD="+strings.Join(args, " "))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	out, _ := cmd.CombinedOutput()
	t.Logf("%v: exit %d %s", args, cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out)))
	return cmd.ProcessState.ExitCode()
}

func loopbackServer(t *testing.T) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// Fail closed: a supervisor killed with SIGKILL leaves its pinned hooks on
// the run's cgroup, so a process of the run that survives is still refused
// (and its DNS, redirected to the dead proxy, fails); UnpinNetwork, the
// recovery, lifts them.
func TestPinnedHooksOutliveTheSupervisor(t *testing.T) {
	privtest.Require(t)
	up := startUpstream(t)
	srv := loopbackServer(t)
	cg, cgfd := testCgroup(t)
	dir := pinDir(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sup := exec.Command(self)
	sup.Env = append(os.Environ(), fmt.Sprintf("NETWATCH_SUPERVISOR=%s %s %s", cg, dir, up.addr))
	stdout, err := sup.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	defer sup.Process.Kill()
	line := make([]byte, 64)
	n, _ := stdout.Read(line)
	if got := strings.TrimSpace(string(line[:n])); got != "pinned" {
		t.Fatalf("supervisor said %q", got)
	}
	// Hooked while the supervisor lives: loopback is refused.
	if code := runIn(t, cgfd, "connect", srv); code != 3 {
		t.Fatalf("connect to %s with the supervisor alive: exit %d, want 3 (EPERM)", srv, code)
	}
	if err := sup.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sup.Wait()

	for _, row := range []struct {
		name string
		args []string
		exit int
	}{
		{"loopback connect", []string{"connect", srv}, 3},
		// Redirected to the dead proxy's port: the lookup fails, and the
		// upstream (answering every TXT) never hears it.
		{"DNS straight to the upstream", []string{"txt", "after-death.other.test", up.addr}, 1},
	} {
		if code := runIn(t, cgfd, row.args...); code != row.exit {
			t.Errorf("supervisor dead, %s: exit %d, want %d", row.name, code, row.exit)
		}
	}
	if n := up.count("after-death.other.test", "TXT"); n != 0 {
		t.Errorf("upstream saw %d queries after the supervisor died", n)
	}

	for range 2 { // idempotent
		if err := UnpinNetwork(dir); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin dir still there: %v", err)
	}
	if code := connectOnceUnhooked(t, cgfd, srv); code != 0 {
		t.Errorf("after UnpinNetwork: connect exit %d, want 0 (no hooks left)", code)
	}
}

// The normal end of a run: Close removes the pins and the hooks with them.
func TestCloseUnpins(t *testing.T) {
	privtest.Require(t)
	up := startUpstream(t)
	srv := loopbackServer(t)
	cg, cgfd := testCgroup(t)
	dir := pinDir(t)
	pol, err := policy.Parse("test.yaml", fmt.Appendf(nil, "version: 1\nmode: enforce\nnetwork:\n  allow_loopback: false\n  dns:\n    upstream: %s\n", up.addr))
	if err != nil {
		t.Fatal(err)
	}
	nw, err := Start(Config{Policy: pol, CgroupPath: cg, Emit: func(event.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the same dir again is a no-op
		if err := nw.Pin(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Pin(dir + "-other"); err == nil {
		t.Error("pinned to a second dir")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 9 {
		t.Errorf("%d pins, want one per hook (9)", len(entries))
	}
	if code := runIn(t, cgfd, "connect", srv); code != 3 {
		t.Errorf("pinned: connect exit %d, want 3", code)
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin dir left by Close: %v", err)
	}
	if code := connectOnceUnhooked(t, cgfd, srv); code != 0 {
		t.Errorf("closed: connect exit %d, want 0", code)
	}
}

// connectOnceUnhooked retries a connect until the hooks are gone: the
// kernel releases an unpinned link after an RCU grace period (a deferred
// put), so on a busy machine they go a moment after the unpin.
func connectOnceUnhooked(t *testing.T, cgfd int, srv string) int {
	code := -1
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code = runIn(t, cgfd, "connect", srv); code == 0 {
			break
		}
	}
	return code
}

// UnpinNetwork empties nothing but a bpffs directory, and a missing one is
// already unpinned.
func TestUnpinNetworkOutsideBPFFS(t *testing.T) {
	if err := UnpinNetwork(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
	dir := t.TempDir()
	keep := filepath.Join(dir, "connect4")
	os.WriteFile(keep, []byte("not a pin"), 0o600)
	if err := UnpinNetwork(dir); err == nil {
		t.Error("unpinned a directory outside bpffs")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("file outside bpffs removed: %v", err)
	}
}
