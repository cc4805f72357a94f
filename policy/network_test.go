package policy

import (
	"net/netip"
	"testing"
)

func mustHostRules(t *testing.T, patterns ...string) []HostRule {
	t.Helper()
	var out []HostRule
	for _, s := range patterns {
		r, err := ParseHostRule(s)
		if err != nil {
			t.Fatalf("ParseHostRule(%q): %v", s, err)
		}
		out = append(out, r)
	}
	return out
}

func TestAllowsHost(t *testing.T) {
	p := &Policy{Network: NetworkPolicy{Allow: mustHostRules(t,
		"api.anthropic.com", "*.githubusercontent.com", "github.com:443", "Registry.NPMjs.org.")}}
	tests := []struct {
		name     string
		port     int
		wantRule string
		wantOK   bool
	}{
		{"api.anthropic.com", 443, "api.anthropic.com", true},
		{"API.Anthropic.COM.", 443, "api.anthropic.com", true}, // case and trailing dot
		{"api.anthropic.com", 0, "api.anthropic.com", true},
		{"anthropic.com", 443, "", false},
		{"evil-api.anthropic.com", 443, "", false},
		{"api.anthropic.com.evil.com", 443, "", false},
		{"raw.githubusercontent.com", 443, "*.githubusercontent.com", true},
		{"a.b.githubusercontent.com", 80, "*.githubusercontent.com", true},
		{"githubusercontent.com", 443, "", false}, // apex not matched by *.
		{"xgithubusercontent.com", 443, "", false},
		{"github.com", 443, "github.com:443", true},
		{"github.com", 22, "", false},             // port restricts
		{"github.com", 0, "github.com:443", true}, // DNS: port unknown
		{"registry.npmjs.org", 443, "Registry.NPMjs.org.", true},
		{"", 443, "", false},
	}
	for _, tt := range tests {
		rule, ok := p.AllowsHost(tt.name, tt.port)
		if rule != tt.wantRule || ok != tt.wantOK {
			t.Errorf("AllowsHost(%q, %d) = %q, %v; want %q, %v", tt.name, tt.port, rule, ok, tt.wantRule, tt.wantOK)
		}
	}
	var nilPolicy *Policy
	if _, ok := nilPolicy.AllowsHost("github.com", 443); ok {
		t.Error("nil policy allowed a host")
	}
}

func TestParseHostRuleErrors(t *testing.T) {
	for _, s := range []string{"", "*", "*.", "*.com", "com", "a.*.com", "exa mple.com", "example.com:0",
		"example.com:65536", "example.com:https", "-a.example.com", "a..b", "http://x.com", "1.2.3.4:80x", "1.2.3.4", "10.0.0.1:443", "[::1]:443"} {
		if r, err := ParseHostRule(s); err == nil {
			t.Errorf("ParseHostRule(%q) = %+v, want an error", s, r)
		}
	}
}

func TestAllowsAddr(t *testing.T) {
	p := &Policy{Network: NetworkPolicy{
		AllowLoopback: true,
		AllowCIDRs:    []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("fd00::/8")},
	}}
	noLoop := &Policy{Network: NetworkPolicy{AllowCIDRs: p.Network.AllowCIDRs}}
	tests := []struct {
		p        *Policy
		addr     string
		wantRule string
		wantOK   bool
	}{
		{p, "127.0.0.1", RuleLoopback, true},
		{p, "127.0.0.53", RuleLoopback, true},
		{p, "::1", RuleLoopback, true},
		{p, "::ffff:127.0.0.1", RuleLoopback, true},
		{p, "10.20.3.4", "10.20.0.0/16", true},
		{p, "::ffff:10.20.3.4", "10.20.0.0/16", true}, // mapped v4 is unmapped
		{p, "10.21.0.1", "", false},
		{p, "fd12::1", "fd00::/8", true},
		{p, "2001:db8::1", "", false},
		{p, "93.184.216.34", "", false},
		{noLoop, "127.0.0.1", "", false},
		{noLoop, "::1", "", false},
		{noLoop, "10.20.0.1", "10.20.0.0/16", true},
	}
	for _, tt := range tests {
		rule, ok := tt.p.AllowsAddr(netip.MustParseAddr(tt.addr))
		if rule != tt.wantRule || ok != tt.wantOK {
			t.Errorf("AllowsAddr(%s, loopback=%v) = %q, %v; want %q, %v", tt.addr, tt.p.Network.AllowLoopback, rule, ok, tt.wantRule, tt.wantOK)
		}
	}
	if _, ok := p.AllowsAddr(netip.Addr{}); ok {
		t.Error("zero address allowed")
	}
}
