// Package policy parses, validates and compiles the policy file
// (.agentwatch.yaml) and answers questions about it. Enforcers and the
// recorder read the compiled form only; nothing here performs I/O after
// compilation.
//
// Lookup order, defaults of absent keys and the version's definition are
// documented on Lookup and Parse. Built-in persistence paths: in enforce
// mode BuiltinProtect is protected too unless files.builtin_protect is
// false (ProtectGlobs); PersistencePaths feed the recorder's persistence
// rule (Persistence). See persist.go and docs/policy.md.
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
	Protect []Glob // files.protect as written; ProtectGlobs adds the built-in list
	Secrets []Glob
	// BuiltinProtect is files.builtin_protect: in enforce mode the
	// BuiltinProtect paths are protected too (persist.go). A Policy
	// literal leaves it off; Default, New and Parse turn it on unless the
	// file says false.
	BuiltinProtect bool

	Env        EnvPolicy
	Network    NetworkPolicy
	Capture    CapturePolicy
	Alerts     AlertPolicy
	Attributes map[string]string // copied onto the root span

	doc Document // the canonical document, for Marshal and Version
	// Indexes of Protect and Secrets (globIndex), made by compile; a
	// Policy literal has none and matches the lists one by one.
	protectIdx, secretsIdx *globIndex
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
	p, err := defaults().compile()
	if err != nil {
		// The defaults are constants of this package; a bad one is a
		// programming error caught by the tests.
		panic(fmt.Sprintf("policy: bad built-in pattern: %v", err))
	}
	p.Source = SourceBuiltIn
	return p
}

// New compiles a policy from a mode and file patterns, every other section
// at its built-in default. It fails on an unknown mode or a bad glob, naming
// the pattern.
func New(mode Mode, protect, secrets []string) (*Policy, error) {
	d := defaults()
	d.Mode = mode
	d.Files.Protect, d.Files.Secrets = protect, secrets
	return d.compile()
}

// hash is the policy version: the sha256 of the canonical document's JSON
// (lists sorted, maps sorted by encoding/json, the source file left out), so
// reordering a list or reformatting the YAML does not produce a new version
// but any change to a decision does.
func (d Document) hash() string {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // strings, numbers and maps of strings: cannot fail
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
	return matchIndexed(p.secretsIdx, p.Secrets, path, "", home) >= 0
}

// IsProtected reports whether path (absolute) matches ProtectGlobs
// (files.protect, and the built-in list in enforce mode); workspace anchors
// relative patterns.
func (p *Policy) IsProtected(path, workspace, home string) bool {
	if p == nil {
		return false
	}
	// ProtectGlobs without its copy: this is asked of every file written.
	return matchIndexed(p.protectIdx, p.Protect, path, workspace, home) >= 0 ||
		p.builtinProtectApplies() && matchIndexed(builtinProtectIdx, builtinProtectGlobs, path, workspace, home) >= 0
}
