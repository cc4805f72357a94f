package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ErrAllowsTooMuch is the one reason given wherever an allowlist entry
// would allow every destination ("*", "*.*", "**", "*.com", "0.0.0.0/0",
// "::/0", or CIDRs that together cover a whole address family): an
// allowlist that allows everything is a typo or a misunderstanding, and
// no restriction is written by leaving the network section out.
var ErrAllowsTooMuch = errors.New("allows too much: list the names (or *.example.com) and addresses the run needs; leave out the network section for no restriction")

// ParseHostRule checks and compiles one network.allow entry: "name",
// "*.suffix", optionally followed by ":port". Names are lower-cased and a
// trailing dot is dropped, so "GitHub.com." and "github.com" are one rule.
func ParseHostRule(pattern string) (HostRule, error) {
	r := HostRule{Pattern: pattern}
	host := pattern
	if i := strings.LastIndexByte(pattern, ':'); i >= 0 {
		port, err := strconv.Atoi(pattern[i+1:])
		if err != nil || port < 1 || port > 65535 {
			return r, fmt.Errorf("bad pattern %q: port must be 1-65535", pattern)
		}
		host, r.Port = pattern[:i], port
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	name := host
	if strings.HasPrefix(host, "*.") {
		name = host[2:]
	}
	// Every name, or every name under a top-level domain: "*", "**",
	// "*.*", "*.com", "*.*.*".
	if strings.Contains(host, "*") && !strings.Contains(strings.Trim(name, "*."), ".") {
		return r, fmt.Errorf("bad pattern %q: %w", pattern, ErrAllowsTooMuch)
	}
	if err := checkDNSName(name); err != nil {
		return r, fmt.Errorf("bad pattern %q: %w", pattern, err)
	}
	r.Name = host
	return r, nil
}

// checkDNSName accepts a name of at least two labels made of letters,
// digits, '-' and '_' (the latter appears in SRV-style and some CDN names).
// A wildcard anywhere but the leftmost label is not supported: DNS has no
// such thing, and "*" alone would allow every name.
func checkDNSName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > 253:
		return errors.New("name longer than 253 bytes")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return errors.New("want a domain with at least two labels")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("empty or over-long label in %q", name)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				if c == '*' {
					return errors.New("* is only allowed as the whole leftmost label (*.example.com)")
				}
				return fmt.Errorf("character %q not allowed in a host name", c)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
	}
	// No TLD is all digits: this is an IP literal, which belongs in
	// allow_cidrs (an address allowed by name would never be resolved).
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return errors.New("an IP address is not a name: list it in network.allow_cidrs")
	}
	return nil
}

// parseAllowCIDR is parseCIDR for network.allow_cidrs: a /0 is refused.
func parseAllowCIDR(s string) (netip.Prefix, error) {
	p, err := parseCIDR(s)
	if err == nil && p.Bits() == 0 {
		return p, fmt.Errorf("bad CIDR %q: %w", s, ErrAllowsTooMuch)
	}
	return p, err
}

// coversFamily reports which address family ("IPv4", "IPv6") the prefixes
// cover whole, together ("0.0.0.0/1" and "128.0.0.0/1"), or "".
func coversFamily(prefixes []netip.Prefix) string {
	for _, fam := range []struct {
		name string
		zero netip.Addr
	}{{"IPv4", netip.IPv4Unspecified()}, {"IPv6", netip.IPv6Unspecified()}} {
		var ps []netip.Prefix
		for _, p := range prefixes {
			if p.Addr().BitLen() == fam.zero.BitLen() {
				ps = append(ps, p.Masked())
			}
		}
		// Sorted by first address, the prefixes cover the family when each
		// starts at or before the address after the furthest end so far,
		// and the furthest end reaches the last address.
		slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		next := fam.zero // the first address not yet covered
		for _, p := range ps {
			if p.Addr().Compare(next) > 0 {
				break
			}
			last := lastAddr(p)
			if !last.Next().IsValid() { // the family's last address
				return fam.name
			}
			if last.Next().Compare(next) > 0 {
				next = last.Next()
			}
		}
	}
	return ""
}

// lastAddr is the last address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Matches reports whether the rule allows name on port. name is compared
// case-insensitively without a trailing dot. "*.suffix" matches proper
// subdomains only, not the apex: "*.example.com" allows a.example.com and
// a.b.example.com but not example.com (as in TLS certificates and most
// egress allowlists; write both entries to allow both). port 0 means the
// caller does not know it yet (a DNS lookup): a rule with a port still
// matches, since the port is checked at connect time.
func (r HostRule) Matches(name string, port int) bool {
	if r.Port != 0 && port != 0 && port != r.Port {
		return false
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if suffix, ok := strings.CutPrefix(r.Name, "*"); ok { // suffix is ".example.com"
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
	}
	return name == r.Name
}

// AllowsHost reports whether network.allow allows name on port, and the
// pattern (as written in the file) that did. Port 0 asks about the name
// alone (the DNS proxy does not know the port).
func (p *Policy) AllowsHost(name string, port int) (rule string, ok bool) {
	if p == nil {
		return "", false
	}
	for _, r := range p.Network.Allow {
		if r.Matches(name, port) {
			return r.Pattern, true
		}
	}
	return "", false
}

// Rule names returned by AllowsAddr for addresses no CIDR lists.
const (
	RuleLoopback = "allow_loopback"
)

// AllowsAddr reports whether a connection to addr is allowed by address
// alone: network.allow_cidrs, or loopback when network.allow_loopback is
// set. The rule is the CIDR as written in canonical form ("10.0.0.0/8") or
// RuleLoopback. IPv4-mapped IPv6 addresses are unmapped first, so
// ::ffff:10.1.2.3 cannot slip past a v4 rule or around a v4 deny.
func (p *Policy) AllowsAddr(addr netip.Addr) (rule string, ok bool) {
	if p == nil || !addr.IsValid() {
		return "", false
	}
	addr = addr.Unmap()
	if p.Network.AllowLoopback && addr.IsLoopback() {
		return RuleLoopback, true
	}
	for _, c := range p.Network.AllowCIDRs {
		if c.Contains(addr) {
			return c.String(), true
		}
	}
	return "", false
}
