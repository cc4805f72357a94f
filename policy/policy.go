// Package policy parses, validates and compiles the policy file
// (.agentwatch.yaml) and answers questions about it. Enforcers and the
// recorder read the compiled form only; nothing here performs I/O after
// compilation.
package policy

// Mode is observe (record and alert) or enforce (also block).
type Mode string

const (
	Observe Mode = "observe"
	Enforce Mode = "enforce"
)

// Policy is a compiled policy.
type Policy struct {
	Mode    Mode
	Version string // sha256 of the canonical compiled form
}

// Default is the built-in policy: observe mode, nothing denied, the default
// secret, workflow and lockfile patterns.
func Default() *Policy { return &Policy{Mode: Observe} }

// IsSecret reports whether path (absolute) matches files.secrets. home is
// the child's home directory, for "~/" patterns.
func (p *Policy) IsSecret(path, home string) bool { return false }

// IsProtected reports whether path (absolute) matches files.protect;
// workspace anchors relative patterns.
func (p *Policy) IsProtected(path, workspace, home string) bool { return false }
