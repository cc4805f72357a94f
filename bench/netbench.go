package main

// Network enforcement cost: a DNS lookup through the run's proxy and a TCP
// connect through the cgroup hooks, against the same calls unwrapped. The
// workloads time themselves per call, so agentwatch's start and drain are
// not in the figures.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

// benchDNSAddr is the bench's own authoritative server. Port 53, because
// only port 53 is redirected to the proxy; 127.0.0.153 so it does not
// clash with a local resolver on 127.0.0.1/127.0.0.53.
const benchDNSAddr = "127.0.0.153:53"

// network prints the DNS and connect ratios. n calls per sample.
func (h *harness) network(n, reps int) error {
	fmt.Printf("== network enforcement: %d DNS lookups, %d TCP connects (per call)\n", n, n)
	dns, err := privtest.ServeDNS(privtest.DNSConfig{
		Listen:        benchDNSAddr,
		Zone:          map[string]netip.Addr{"bench.test.": netip.MustParseAddr("127.0.0.1")},
		Authoritative: true,
		TTL:           300,
	})
	if err != nil {
		return fmt.Errorf("starting the bench DNS server on %s: %w", benchDNSAddr, err)
	}
	defer dns.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// Enforce mode; the connect goes through the allow_cidrs lookup and a
	// decision record (allow_loopback: false), not the loopback shortcut;
	// no inspected ports, so nothing is spliced.
	pol := filepath.Join(filepath.Dir(h.work), "bench-policy.yaml")
	err = os.WriteFile(pol, []byte(`version: 1
mode: enforce
network:
  allow: [bench.test]
  allow_cidrs: [127.0.0.0/8]
  allow_loopback: false
  inspect_ports: []
  dns:
    upstream: `+benchDNSAddr+`
`), 0o644)
	if err != nil {
		return err
	}
	for _, w := range []struct{ name, mode, target string }{
		{"DNS lookup (A, UDP)", "dnsloop", benchDNSAddr},
		{"TCP connect", "connloop", ln.Addr().String()},
	} {
		argv := []string{h.self, "gen", w.mode, w.target, strconv.Itoa(n)}
		var plain, wrapped []sample
		for range reps {
			if s, err := h.run(argv); err == nil {
				plain = append(plain, s)
			} else {
				fmt.Println("  unwrapped failed:", err)
			}
			wargv := h.wrap(h.traceFile(), argv)
			wargv = append(wargv[:2], append([]string{"--policy", pol}, wargv[2:]...)...)
			if s, err := h.run(wargv); err == nil {
				wrapped = append(wrapped, s)
			} else {
				fmt.Println("  wrapped failed:", err)
			}
		}
		if len(plain) == 0 || len(wrapped) == 0 {
			fmt.Printf("  %-22s (not enough samples)\n", w.name)
			continue
		}
		p, q := medianWork(plain)/float64(n), medianWork(wrapped)/float64(n)
		fmt.Printf("  %-22s agentwatch/unwrapped %.3f   added %+.1f µs per call (unwrapped %.1f µs)\n",
			w.name, q/p, (q-p)*1e6, p*1e6)
	}
	fmt.Println()
	return nil
}

// netGen is the network workload: dnsloop SERVER N (A lookups of
// bench.test through Go's resolver, pointed at SERVER) or connloop ADDR N
// (TCP connect and close).
func netGen(mode, target string, n int) error {
	ctx := context.Background()
	var call func() error
	switch mode {
	case "dnsloop":
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		}}
		call = func() error { _, err := r.LookupIP(ctx, "ip4", "bench.test"); return err }
	case "connloop":
		call = func() error {
			c, err := net.Dial("tcp", target)
			if err == nil {
				c.Close()
			}
			return err
		}
	default:
		return fmt.Errorf("gen: unknown network mode %q", mode)
	}
	if err := call(); err != nil { // warm up, and fail loudly
		return err
	}
	start := time.Now()
	for range n {
		if err := call(); err != nil {
			return err
		}
	}
	return report(manifest{Elapsed: time.Since(start).Seconds()})
}
