// Package netwatch enforces and observes the network side of one run: the
// run's DNS proxy, the kernel hooks on the run's cgroup that redirect DNS
// to it and refuse addresses no allowed name resolved to (ebpf loads them),
// and the SNI/Host splice proxy for connections to allowed addresses on
// inspected ports. It emits event.DNSQuery and event.NetDecision values; it
// never builds spans and never decides what to alert on (the recorder
// does).
//
// Data flow, all per run:
//
//	child: connect/sendmsg ──> cgroup hooks ──┬─ port 53 ──> DNS proxy ──> upstream
//	                                          │                 │ allowed answers
//	                                          │                 v
//	                                          ├─ allowed map (addr, port, expiry) / allow_cidrs / loopback
//	                                          └─ TCP to an allowed address on an inspected port
//	                                                 ──> splice proxy (SNI / Host) ──> original destination
//
// The proxies run in the supervisor, outside the run's cgroup, so their own
// upstream traffic is never hooked (no loop).
package netwatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/ebpf"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
)

// Config selects what one run's network enforcement does.
type Config struct {
	Policy     *policy.Policy // its Mode and Network section; nil: policy.Default()
	CgroupPath string         // the run's cgroup v2 directory
	// Emit receives DNSQuery and NetDecision events, from several
	// goroutines (serialize in the receiver).
	Emit func(event.Event)
	// ResolvConf is read for upstream "system"; empty: /etc/resolv.conf.
	ResolvConf string
}

// Netwatch is one run's running network enforcement.
type Netwatch struct {
	enforce bool
	pol     *policy.Policy
	emit    func(event.Event)
	dns     *dnsProxy
	splice  []*SpliceProxy
	kern    *ebpf.NetEnforcer

	mu    sync.Mutex
	names map[netip.Addr]learned // what the DNS proxy learned, to name kernel decisions
	// steered holds the kernel's answer for an accepted splice connection
	// between the proxy's PID and OrigDst calls (the map entry is consumed
	// by the first).
	steered map[*net.TCPConn]steer

	stopSweep chan struct{}
	sweepDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type learned struct {
	name, rule string
}

type steer struct {
	dst netip.AddrPort
	pid uint32
	ok  bool
}

// sweepEvery is how often expired allowed addresses are removed from the
// kernel map.
const sweepEvery = time.Minute

// Start starts the DNS proxy and the splice proxies, then loads and
// attaches the kernel hooks to the run's cgroup. Call it before the child
// starts; nothing in the cgroup is hooked before it returns. An error means
// no part is running: the caller records a gap (observe) or refuses to
// start the child (enforce).
func Start(cfg Config) (*Netwatch, error) {
	if cfg.Emit == nil {
		return nil, errors.New("starting netwatch: Config.Emit is nil")
	}
	p := cfg.Policy
	if p == nil {
		p = policy.Default()
	}
	n := &Netwatch{
		enforce:   p.Mode == policy.Enforce,
		pol:       p,
		emit:      cfg.Emit,
		names:     map[netip.Addr]learned{},
		steered:   map[*net.TCPConn]steer{},
		stopSweep: make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	upstream := p.Network.DNSUpstream
	if upstream == "" || upstream == "system" {
		rc := cfg.ResolvConf
		if rc == "" {
			rc = "/etc/resolv.conf"
		}
		var err error
		if upstream, err = SystemResolver(rc); err != nil {
			return nil, fmt.Errorf("starting netwatch: %w", err)
		}
	}
	var err error
	n.dns, err = startDNS(dnsConfig{
		Upstream: upstream,
		Enforce:  n.enforce,
		Allow:    n.allowName,
		Learn:    n.learn,
		Emit:     cfg.Emit,
	})
	if err != nil {
		return nil, fmt.Errorf("starting netwatch: %w", err)
	}
	fail := func(err error) (*Netwatch, error) {
		for _, s := range n.splice {
			s.Close()
		}
		n.dns.close()
		return nil, fmt.Errorf("starting netwatch: %w", err)
	}
	udp4, tcp4, udp6, tcp6 := n.dns.ports()
	kcfg := ebpf.NetConfig{
		CgroupPath:    cfg.CgroupPath,
		Enforce:       n.enforce,
		AllowLoopback: p.Network.AllowLoopback,
		DNS4UDP:       udp4, DNS4TCP: tcp4, DNS6UDP: udp6, DNS6TCP: tcp6,
		InspectPorts: p.Network.InspectPorts,
		Emit:         n.kernelDecision,
	}
	if kcfg.DNSUpstreams, kcfg.DNSUpstreamLocalPorts, err = upstreamEndpoints(upstream); err != nil {
		return fail(err)
	}
	if len(p.Network.InspectPorts) > 0 {
		for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
			if listen == "[::1]:0" && udp6 == 0 {
				break // no IPv6 loopback on this host
			}
			s, err := StartSplice(SpliceConfig{
				Listen:  listen,
				OrigDst: n.origDst,
				PID:     n.pid,
				Allow:   n.pol.AllowsHost,
				Enforce: n.enforce,
				Emit:    cfg.Emit,
			})
			if err != nil {
				return fail(err)
			}
			n.splice = append(n.splice, s)
			if s.Addr().Addr().Is4() {
				kcfg.Splice4 = s.Addr().Port()
			} else {
				kcfg.Splice6 = s.Addr().Port()
			}
		}
	}
	if n.kern, err = ebpf.StartNetEnforcer(kcfg); err != nil {
		return fail(err)
	}
	for _, c := range p.Network.AllowCIDRs {
		if err := n.kern.AllowCIDR(c); err != nil {
			n.kern.Close()
			return fail(err)
		}
	}
	for _, ep := range n.Endpoints() {
		if err := n.kern.AllowEndpoint(ep); err != nil {
			n.kern.Close()
			return fail(err)
		}
	}
	go n.sweep()
	return n, nil
}

// upstreamEndpoints lists what the hooks must redirect to the DNS proxy
// besides port 53: every address of the upstream (a name is resolved here,
// by the supervisor, outside the run) on its port, and when it is on this
// host, the port on every local address (a resolver bound to 0.0.0.0 is
// reachable through any of them; connect to 0.0.0.0 reaches loopback).
// Interface addresses are read once, at start: one added later is not
// covered.
func upstreamEndpoints(upstream string) ([]netip.AddrPort, []uint16, error) {
	host, portStr, err := net.SplitHostPort(upstream)
	if err != nil {
		return nil, nil, fmt.Errorf("DNS upstream %q: %w", upstream, err)
	}
	port, err := net.LookupPort("udp", portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, nil, fmt.Errorf("DNS upstream %q: bad port", upstream)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.WithZone("").Unmap()}
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		if err != nil {
			return nil, nil, fmt.Errorf("DNS upstream %q: %w", upstream, err)
		}
		for _, a := range ips {
			addrs = append(addrs, a.WithZone("").Unmap())
		}
	}
	var own []netip.Addr
	if ifas, err := net.InterfaceAddrs(); err == nil {
		for _, ifa := range ifas {
			if p, err := netip.ParsePrefix(ifa.String()); err == nil {
				own = append(own, p.Addr().WithZone("").Unmap())
			}
		}
	}
	var eps []netip.AddrPort
	local := false
	for _, a := range addrs {
		eps = append(eps, netip.AddrPortFrom(a, uint16(port)))
		if a.IsLoopback() || a.IsUnspecified() || slices.Contains(own, a) {
			local = true
		}
	}
	if !local {
		return eps, nil, nil
	}
	for _, a := range own {
		if ap := netip.AddrPortFrom(a, uint16(port)); !slices.Contains(eps, ap) {
			eps = append(eps, ap)
		}
	}
	return eps, []uint16{uint16(port)}, nil
}

// Endpoints are netwatch's own proxies' addresses; they stay reachable for
// the child with allow_loopback: false.
func (n *Netwatch) Endpoints() []netip.AddrPort {
	out := n.dns.endpoints()
	for _, s := range n.splice {
		out = append(out, s.Addr())
	}
	return out
}

// AllowEndpoint keeps another of the supervisor's loopback endpoints (LLM
// proxy, OTLP receiver) reachable with allow_loopback: false.
func (n *Netwatch) AllowEndpoint(ap netip.AddrPort) error {
	return n.kern.AllowEndpoint(ap)
}

// Pin keeps the run's kernel hooks attached if this process dies: pins
// under dir in bpffs (e.g. /sys/fs/bpf/agentwatch/<run>), mounting bpffs at
// /sys/fs/bpf if needed. Call it right after Start, before the child runs.
// Close removes the pins; after a crash, UnpinNetwork(dir) does.
func (n *Netwatch) Pin(dir string) error { return n.kern.Pin(dir) }

// UnpinNetwork removes the pins a (dead) run's Pin left under dir,
// detaching its hooks. Idempotent; a missing dir is not an error.
func UnpinNetwork(dir string) error { return ebpf.UnpinNetwork(dir) }

// Dropped is how many kernel decisions were lost (ring buffer full).
func (n *Netwatch) Dropped() uint64 { return n.kern.Dropped() }

// Close detaches the hooks (emitting the decisions still queued), then
// stops the proxies. Call it after the run's processes are gone.
func (n *Netwatch) Close() error {
	n.closeOnce.Do(func() {
		close(n.stopSweep)
		<-n.sweepDone
		errs := []error{n.kern.Close()}
		for _, s := range n.splice {
			errs = append(errs, s.Close())
		}
		errs = append(errs, n.dns.close())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// allowName is the DNS proxy's question: may this name be resolved, and
// on which ports may its addresses then be reached (0: any)?
func (n *Netwatch) allowName(name string) (rule string, ports []int, ok bool) {
	rule, ok = n.pol.AllowsHost(name, 0)
	if !ok {
		return "", nil, false
	}
	any := false
	for _, r := range n.pol.Network.Allow {
		if !r.Matches(name, 0) {
			continue
		}
		if r.Port == 0 {
			any = true
			break
		}
		ports = append(ports, r.Port)
	}
	if any || len(ports) == 0 {
		ports = []int{0}
	}
	return rule, ports, true
}

// learn makes an allowed name's answer reachable for its TTL (at least
// MinAllowTTL).
func (n *Netwatch) learn(name, rule string, addr netip.Addr, ports []int, ttl time.Duration) {
	ttl = max(ttl, MinAllowTTL)
	until := time.Now().Add(ttl)
	n.mu.Lock()
	n.names[addr.Unmap()] = learned{name: name, rule: rule}
	n.mu.Unlock()
	for _, p := range ports {
		if err := n.kern.AllowAddr(addr, p, until); err != nil {
			// The map is full: the connect will be refused and show as a
			// deny with this name's address on the trace.
			continue
		}
	}
}

// kernelDecision names a decision from the hooks and passes it on.
func (n *Netwatch) kernelDecision(d event.NetDecision) {
	a := d.Addr.Addr().Unmap()
	n.mu.Lock()
	l, known := n.names[a]
	n.mu.Unlock()
	if known {
		d.Name = l.name
	}
	switch d.Rule {
	case ebpf.RuleAllowedName:
		if known {
			d.Rule = l.rule
		}
	case ebpf.RuleAllowedCIDR:
		if rule, ok := n.pol.AllowsAddr(a); ok {
			d.Rule = rule
		}
	}
	n.emit(d)
}

// pid and origDst answer the splice proxy from the kernel's record of a
// steered connection; whichever the proxy calls first consumes the map
// entry.
func (n *Netwatch) lookupSteer(c *net.TCPConn, keep bool) steer {
	n.mu.Lock()
	s, ok := n.steered[c]
	if ok && !keep {
		delete(n.steered, c)
	}
	n.mu.Unlock()
	if ok {
		return s
	}
	client, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err == nil {
		s.dst, s.pid, s.ok = n.kern.SpliceOrigDst(client)
	}
	if keep {
		n.mu.Lock()
		n.steered[c] = s
		n.mu.Unlock()
	}
	return s
}

func (n *Netwatch) pid(c *net.TCPConn) uint32 { return n.lookupSteer(c, true).pid }

func (n *Netwatch) origDst(c *net.TCPConn) (netip.AddrPort, error) {
	s := n.lookupSteer(c, false)
	if !s.ok {
		return netip.AddrPort{}, errors.New("no original destination recorded for this connection")
	}
	return s.dst, nil
}

func (n *Netwatch) sweep() {
	defer close(n.sweepDone)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-n.stopSweep:
			return
		case now := <-t.C:
			n.kern.SweepExpired(now)
		}
	}
}
