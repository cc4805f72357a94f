// Package policy parses, validates and compiles the policy file
// (.agentwatch.yaml) and answers questions about it. Enforcers and the
// recorder read the compiled form only; nothing here performs I/O after
// compilation.
//
// For now it holds the built-in default (files.protect and files.secrets
// from spec/policy.md) and the glob matcher; the YAML file arrives with
// issue 3.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
)

// Mode is observe (record and alert) or enforce (also block).
type Mode string

const (
	Observe Mode = "observe"
	Enforce Mode = "enforce"
)

// DefaultProtect are the built-in files.protect patterns: writes to them
// alert, and are refused in enforce mode.
var DefaultProtect = []string{
	".github/workflows/**",
	".gitlab-ci.yml",
	".agentwatch.yaml",
	".git/hooks/**", // a hook runs later, outside the run: persistence
	"~/.bashrc",
	"~/.profile",
}

// DefaultSecrets are the built-in files.secrets patterns: reads and writes
// alert with high severity.
var DefaultSecrets = []string{
	"~/.ssh/**",
	"~/.aws/**",
	"~/.config/gh/hosts.yml",
	"**/.env",
	"**/.env.*",
	"**/*.pem",
	"**/id_rsa*",
}

// Policy is a compiled policy.
type Policy struct {
	Mode    Mode
	Version string // sha256 of the canonical compiled form
	Source  string // the file it came from, "built-in" for Default
	Protect []Glob
	Secrets []Glob

	Env        EnvPolicy
	Network    NetworkPolicy
	Capture    CapturePolicy
	Alerts     AlertPolicy
	Attributes map[string]string // copied onto the root span
}

// EnvPolicy builds the child's environment: only names matching Allow
// (exact, or PREFIX_* / LC_* style trailing-star patterns) are kept, then
// Set is applied.
type EnvPolicy struct {
	Allow []string
	Set   map[string]string
}

// HostRule is one network.allow entry: an exact name or "*.suffix", and an
// optional port (0: any).
type HostRule struct {
	Pattern string // as written, e.g. "*.githubusercontent.com" or "github.com:443"
	Name    string // lower-case, without the port; "*.x.com" kept as is
	Port    int
}

// NetworkPolicy is the compiled network section.
type NetworkPolicy struct {
	Allow         []HostRule
	AllowCIDRs    []netip.Prefix
	AllowLoopback bool
	InspectPorts  []int  // default [443, 80]
	DNSUpstream   string // "system" or host:port
}

// CapturePolicy is the content-capture tier.
type CapturePolicy struct {
	Content     string // metadata | full
	OutputBytes int
}

// AlertPolicy holds the thresholds of the built-in alert rules.
type AlertPolicy struct {
	SpendUSD               float64
	RetriesWithoutProgress int
	UnknownDomain          bool
	DependencyInstall      bool
	WorkflowEdit           bool
}

// Default is the built-in policy: observe mode, nothing denied, the default
// secret, workflow and lockfile patterns.
func Default() *Policy {
	p, err := New(Observe, DefaultProtect, DefaultSecrets)
	if err != nil {
		// The defaults are constants of this package; a bad one is a
		// programming error caught by the tests.
		panic(fmt.Sprintf("policy: bad built-in pattern: %v", err))
	}
	return p
}

// New compiles a policy from its parts. It fails on an unknown mode or a bad
// glob, naming the pattern.
func New(mode Mode, protect, secrets []string) (*Policy, error) {
	if mode != Observe && mode != Enforce {
		return nil, fmt.Errorf("compiling policy: unknown mode %q (want observe or enforce)", mode)
	}
	p := &Policy{Mode: mode}
	for _, s := range protect {
		g, err := CompileGlob(s)
		if err != nil {
			return nil, fmt.Errorf("compiling files.protect: %w", err)
		}
		p.Protect = append(p.Protect, g)
	}
	for _, s := range secrets {
		g, err := CompileGlob(s)
		if err != nil {
			return nil, fmt.Errorf("compiling files.secrets: %w", err)
		}
		p.Secrets = append(p.Secrets, g)
	}
	p.Version = p.canonicalHash()
	return p, nil
}

// canonicalHash is the sha256 of the compiled form with pattern order
// removed (order does not change any decision), so reordering a list in the
// file does not produce a new version.
func (p *Policy) canonicalHash() string {
	type canonical struct {
		Version int      `json:"version"`
		Mode    Mode     `json:"mode"`
		Protect []string `json:"files.protect"`
		Secrets []string `json:"files.secrets"`
	}
	c := canonical{Version: 1, Mode: p.Mode, Protect: patterns(p.Protect), Secrets: patterns(p.Secrets)}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // strings and ints only: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func patterns(gs []Glob) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.String())
	}
	sort.Strings(out)
	return out
}

// IsSecret reports whether path (absolute) matches files.secrets. home is
// the child's home directory, for "~/" patterns. Relative patterns have no
// workspace to anchor to here, so they are matched against the whole path:
// "**/.env" matches an .env file anywhere.
func (p *Policy) IsSecret(path, home string) bool {
	if p == nil {
		return false
	}
	for _, g := range p.Secrets {
		if g.Match(path, "", home) {
			return true
		}
	}
	return false
}

// IsProtected reports whether path (absolute) matches files.protect;
// workspace anchors relative patterns.
func (p *Policy) IsProtected(path, workspace, home string) bool {
	if p == nil {
		return false
	}
	for _, g := range p.Protect {
		if g.Match(path, workspace, home) {
			return true
		}
	}
	return false
}
