package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FileName is the policy file looked up at the workspace's git root.
const FileName = ".agentwatch.yaml"

// SourceBuiltIn is Policy.Source for Default.
const SourceBuiltIn = "built-in"

// Error is a problem in a policy file, with the place it was found:
// ".agentwatch.yaml:12: network.allow[2]: bad pattern "*.": ...".
type Error struct {
	File   string
	Line   int    // 1-based; 0 when the file could not be parsed at all
	Key    string // the key path, e.g. network.allow[2]; empty for the document
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

// MaxErrors is how many errors Errors keeps; past it they are counted.
const MaxErrors = 100

// Errors is every problem Parse found in one file, in file order (a YAML
// syntax error stops the parse: it is then the only one). Error() is one
// line, the first error and a count of the others, for callers that print
// one line (run); `agentwatch policy check` prints List, one per line.
// errors.As(err, &*Error) finds the first.
type Errors struct {
	List []*Error
	More int // errors found past MaxErrors, not kept
}

func (e *Errors) Error() string {
	if len(e.List) == 0 {
		return "invalid policy"
	}
	msg := e.List[0].Error()
	if n := len(e.List) - 1 + e.More; n > 0 {
		plural := "s"
		if n == 1 {
			plural = ""
		}
		msg += fmt.Sprintf(" (and %d more error%s; agentwatch policy check lists them)", n, plural)
	}
	return msg
}

// Unwrap returns the errors kept, so errors.As finds the first *Error.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, pe := range e.List {
		out[i] = pe
	}
	return out
}

// Lines is one line per error kept, and one more counting the rest.
func (e *Errors) Lines() []string {
	out := make([]string, 0, len(e.List)+1)
	for _, pe := range e.List {
		out = append(out, pe.Error())
	}
	if e.More > 0 && len(e.List) > 0 {
		out = append(out, fmt.Sprintf("%s: %d more errors not shown", e.List[0].File, e.More))
	}
	return out
}

func single(e *Error) error { return &Errors{List: []*Error{e}} }

// MaxFileSize is the largest policy file read: a real policy is a few
// kilobytes, and a 40 MB one took 6.9 s and 1.77 GB to parse (the YAML
// node tree is ~40 times the text).
const MaxFileSize = 1 << 20

func tooLarge(name string, size int64) error {
	what := "over"
	if size > 0 {
		what = strconv.FormatInt(size, 10) + " bytes,"
	}
	return single(&Error{File: name, Reason: fmt.Sprintf("policy file is %s over the %d-byte (1 MiB) limit", what, MaxFileSize)})
}

// ReadFile reads a policy file of at most MaxFileSize bytes. The size is
// checked before reading, and the read is bounded too, so a FIFO or a
// file that grows cannot get past the limit. Too large is an *Errors (the
// file is invalid); any other failure is an I/O error.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
		return nil, tooLarge(path, fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(path, 0)
	}
	return data, nil
}

// Lookup finds the run's policy: the file given with --policy, else
// .agentwatch.yaml at the workspace's git root, else Default(). root may be
// empty (no git repository): then only --policy or the default apply. A
// file that exists but is malformed is an error, never a fallback.
func Lookup(flagPath, root string) (*Policy, error) {
	if flagPath != "" {
		return Load(flagPath)
	}
	if root != "" {
		p := filepath.Join(root, FileName)
		if _, err := os.Stat(p); err == nil {
			return Load(p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading policy %s: %w", p, err)
		}
	}
	return Default(), nil
}

// Load reads (ReadFile) and compiles a policy file.
func Load(path string) (*Policy, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse compiles the policy in data; name is used in errors and as Source.
// A file with problems gives an *Errors listing every one, each an *Error
// naming the line and the key. data over MaxFileSize is refused unread.
//
// Absent parts take these values (documented in spec/policy.md):
//   - mode: observe. A file that wants blocking says so; a typo'd or
//     forgotten mode must not turn into a surprise block, and the built-in
//     default is observe too.
//   - env: absent section keeps the whole environment (allow ["*"]);
//     filtering is opted into by writing env.allow.
//   - network: absent section means unrestricted (allow ["*"], allow_cidrs
//     0.0.0.0/0 and ::/0), so enforce mode without a network section blocks
//     no connection. When the section is present, its absent keys are:
//     allow [], allow_cidrs [], allow_loopback true, inspect_ports
//     [443, 80], dns.upstream system.
//   - files: absent protect or secrets take the built-in lists; an explicit
//     empty list means none. builtin_protect: true (in enforce mode the
//     built-in persistence paths are protected too; see ProtectGlobs).
//   - capture: content metadata, output_bytes 4096.
//   - alerts: spend_usd 5, retries_without_progress 3, the booleans true.
func Parse(name string, data []byte) (*Policy, error) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(name, int64(len(data)))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, single(yamlError(name, err))
	}
	ps := &parser{file: name}
	d := defaults()
	if len(doc.Content) == 0 {
		return nil, single(&Error{File: name, Reason: "empty policy file (want at least version: 1)"})
	}
	ps.note(ps.document(doc.Content[0], &d))
	if err := ps.result(); err != nil {
		return nil, err
	}
	p, err := d.compile()
	if err != nil {
		return nil, err
	}
	p.Source = name
	return p, nil
}

// yamlError turns yaml.v3's "yaml: line 3: ..." into the file:line form.
func yamlError(name string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &Error{File: name, Line: line, Reason: "invalid YAML: " + msg}
}

// Document is a policy in file form: what Parse reads (after defaults) and
// Marshal writes. Its field order is the order `policy default` prints.
type Document struct {
	Version    int               `yaml:"version" json:"version"`
	Mode       Mode              `yaml:"mode" json:"mode"`
	Env        EnvDoc            `yaml:"env" json:"env"`
	Network    NetworkDoc        `yaml:"network" json:"network"`
	Files      FilesDoc          `yaml:"files" json:"files"`
	Capture    CaptureDoc        `yaml:"capture" json:"capture"`
	Alerts     AlertsDoc         `yaml:"alerts" json:"alerts"`
	Attributes map[string]string `yaml:"attributes" json:"attributes"`
}

type EnvDoc struct {
	Allow []string          `yaml:"allow" json:"allow"`
	Set   map[string]string `yaml:"set" json:"set"`
}

type NetworkDoc struct {
	Allow         []string `yaml:"allow" json:"allow"`
	AllowCIDRs    []string `yaml:"allow_cidrs" json:"allow_cidrs"`
	AllowLoopback bool     `yaml:"allow_loopback" json:"allow_loopback"`
	InspectPorts  []int    `yaml:"inspect_ports,flow" json:"inspect_ports"`
	DNS           DNSDoc   `yaml:"dns" json:"dns"`
}

type DNSDoc struct {
	Upstream string `yaml:"upstream" json:"upstream"`
}

type FilesDoc struct {
	Protect []string `yaml:"protect" json:"protect"`
	Secrets []string `yaml:"secrets" json:"secrets"`
	// BuiltinProtect: in enforce mode, also protect the built-in
	// persistence paths (policy.BuiltinProtect). Default true.
	BuiltinProtect bool `yaml:"builtin_protect" json:"builtin_protect"`
}

type CaptureDoc struct {
	Content     string `yaml:"content" json:"content"`
	OutputBytes int    `yaml:"output_bytes" json:"output_bytes"`
}

type AlertsDoc struct {
	SpendUSD               float64 `yaml:"spend_usd" json:"spend_usd"`
	RetriesWithoutProgress int     `yaml:"retries_without_progress" json:"retries_without_progress"`
	UnknownDomain          bool    `yaml:"unknown_domain" json:"unknown_domain"`
	DependencyInstall      bool    `yaml:"dependency_install" json:"dependency_install"`
	WorkflowEdit           bool    `yaml:"workflow_edit" json:"workflow_edit"`
}

// Wildcards of the unrestricted defaults.
const (
	AnyName = "*" // env.allow: every variable; network.allow: every name
)

var unrestrictedCIDRs = []string{"0.0.0.0/0", "::/0"}

// defaults is the document before a file is applied: the built-in policy.
func defaults() Document {
	return Document{
		Version: 1,
		Mode:    Observe,
		Env:     EnvDoc{Allow: []string{AnyName}, Set: map[string]string{}},
		Network: NetworkDoc{
			Allow:         []string{AnyName},
			AllowCIDRs:    slices.Clone(unrestrictedCIDRs),
			AllowLoopback: true,
			InspectPorts:  []int{443, 80},
			DNS:           DNSDoc{Upstream: "system"},
		},
		Files:      FilesDoc{Protect: slices.Clone(DefaultProtect), Secrets: slices.Clone(DefaultSecrets), BuiltinProtect: true},
		Capture:    CaptureDoc{Content: "metadata", OutputBytes: 4096},
		Alerts:     AlertsDoc{SpendUSD: 5, RetriesWithoutProgress: 3, UnknownDomain: true, DependencyInstall: true, WorkflowEdit: true},
		Attributes: map[string]string{},
	}
}

// parser walks the YAML tree; every error names file, line and key.
// Containers (mappings, lists) note the errors of their entries and go on
// to the next, so one pass finds every error; a leaf returns its error to
// its container.
type parser struct {
	file string
	errs []*Error
	more int
}

// note records err (nil: nothing). The parser makes only *Error.
func (ps *parser) note(err error) {
	if err == nil {
		return
	}
	var pe *Error
	if !errors.As(err, &pe) {
		pe = &Error{File: ps.file, Reason: err.Error()}
	}
	if len(ps.errs) >= MaxErrors {
		ps.more++
		return
	}
	ps.errs = append(ps.errs, pe)
}

// result is the errors noted, in line order, or nil.
func (ps *parser) result() error {
	if len(ps.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.errs, func(a, b *Error) int { return a.Line - b.Line })
	return &Errors{List: ps.errs, More: ps.more}
}

func (ps *parser) errf(n *yaml.Node, key, format string, args ...any) error {
	return &Error{File: ps.file, Line: n.Line, Key: key, Reason: fmt.Sprintf(format, args...)}
}

// field is one key of a mapping and the function that reads its value.
type field map[string]func(key string, v *yaml.Node) error

// mapping reads a mapping node, rejecting unknown and repeated keys.
func (ps *parser) mapping(n *yaml.Node, key string, fields field) error {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // "env:" with nothing under it: the section's defaults
	}
	if n.Kind != yaml.MappingNode {
		return ps.errf(n, key, "want a mapping, got %s", kindName(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := join(key, k.Value)
		if seen[k.Value] {
			ps.note(ps.errf(k, sub, "repeated key"))
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			ps.note(ps.errf(k, sub, "unknown key (want one of %s)", strings.Join(sortedKeys(fields), ", ")))
			continue
		}
		ps.note(f(sub, resolve(v)))
	}
	return nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func join(key, sub string) string {
	if key == "" {
		return sub
	}
	return key + "." + sub
}

func sortedKeys(f field) []string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (ps *parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", ps.errf(n, key, "want a string, got %s", kindName(n))
	}
	return n.Value, nil
}

func (ps *parser) integer(n *yaml.Node, key string, lo, hi int) (int, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, ps.errf(n, key, "want an integer, got %s", kindName(n))
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		return 0, ps.errf(n, key, "%s out of range %d-%d", n.Value, lo, hi)
	}
	return int(v), nil
}

func (ps *parser) boolean(n *yaml.Node, key string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		return false, ps.errf(n, key, "want true or false, got %s", kindName(n))
	}
	return b, nil
}

// list reads a sequence, calling item for each element with its indexed
// key ("network.allow[2]"). A null value is an empty list.
func (ps *parser) list(n *yaml.Node, key string, item func(key string, v *yaml.Node) error) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return ps.errf(n, key, "want a list, got %s", kindName(n))
	}
	for i, v := range n.Content {
		ps.note(item(fmt.Sprintf("%s[%d]", key, i), resolve(v)))
	}
	return nil
}

func (ps *parser) strings(n *yaml.Node, key string, check func(string) error) ([]string, error) {
	out := []string{}
	err := ps.list(n, key, func(k string, v *yaml.Node) error {
		s, err := ps.str(v, k)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(s); err != nil {
				return ps.errf(v, k, "%v", err)
			}
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// stringMap reads a mapping of names to scalar values (numbers and booleans
// are kept as written: CI: true sets "true").
func (ps *parser) stringMap(n *yaml.Node, key string, checkKey func(string) error) (map[string]string, error) {
	out := map[string]string{}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return out, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, ps.errf(n, key, "want a mapping, got %s", kindName(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		sub := join(key, k.Value)
		if seen[k.Value] {
			ps.note(ps.errf(k, sub, "repeated key"))
			continue
		}
		seen[k.Value] = true
		keyErr := checkKey(k.Value)
		switch {
		case keyErr != nil:
			ps.note(ps.errf(k, sub, "%v", keyErr))
		case v.Kind != yaml.ScalarNode || v.Tag == "!!null":
			ps.note(ps.errf(v, sub, "want a value, got %s", kindName(v)))
		default:
			out[k.Value] = v.Value
		}
	}
	return out, nil
}

func (ps *parser) document(n *yaml.Node, d *Document) error {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return ps.errf(n, "", "want a mapping at the top, got %s", kindName(n))
	}
	var sawVersion bool
	err := ps.mapping(n, "", field{
		"version": func(k string, v *yaml.Node) error {
			if v.Kind != yaml.ScalarNode || v.Value != "1" {
				return ps.errf(v, k, "unsupported version %s (this agentwatch reads version 1)", kindName(v))
			}
			sawVersion = true
			return nil
		},
		"mode": func(k string, v *yaml.Node) error {
			s, err := ps.str(v, k)
			if err != nil {
				return err
			}
			m, err := ParseMode(s)
			if err != nil {
				return ps.errf(v, k, "%v", err)
			}
			d.Mode = m
			return nil
		},
		"env": func(k string, v *yaml.Node) error {
			return ps.mapping(v, k, field{
				"allow": func(k string, v *yaml.Node) (err error) {
					d.Env.Allow, err = ps.strings(v, k, checkEnvPattern)
					return err
				},
				"set": func(k string, v *yaml.Node) (err error) {
					d.Env.Set, err = ps.stringMap(v, k, checkEnvName)
					return err
				},
			})
		},
		"network": func(k string, v *yaml.Node) error {
			// A present section starts from nothing allowed.
			d.Network.Allow, d.Network.AllowCIDRs = []string{}, []string{}
			return ps.mapping(v, k, field{
				"allow": func(k string, v *yaml.Node) (err error) {
					// "*" is refused here, though the absent section's
					// default is exactly that: a file that lists names
					// means to restrict them (see ErrAllowsTooMuch).
					d.Network.Allow, err = ps.strings(v, k, func(s string) error {
						_, err := ParseHostRule(s)
						return err
					})
					return err
				},
				"allow_cidrs": func(k string, v *yaml.Node) (err error) {
					d.Network.AllowCIDRs, err = ps.strings(v, k, func(s string) error {
						_, err := parseAllowCIDR(s)
						return err
					})
					if err == nil {
						err = ps.coverage(v, k, d.Network.AllowCIDRs)
					}
					return err
				},
				"allow_loopback": func(k string, v *yaml.Node) (err error) {
					d.Network.AllowLoopback, err = ps.boolean(v, k)
					return err
				},
				"inspect_ports": func(k string, v *yaml.Node) error {
					d.Network.InspectPorts = []int{}
					return ps.list(v, k, func(k string, v *yaml.Node) error {
						port, err := ps.integer(v, k, 1, 65535)
						if err == nil {
							d.Network.InspectPorts = append(d.Network.InspectPorts, port)
						}
						return err
					})
				},
				"dns": func(k string, v *yaml.Node) error {
					return ps.mapping(v, k, field{
						"upstream": func(k string, v *yaml.Node) error {
							s, err := ps.str(v, k)
							if err != nil {
								return err
							}
							u, err := ParseUpstream(s)
							if err != nil {
								return ps.errf(v, k, "%v", err)
							}
							d.Network.DNS.Upstream = u
							return nil
						},
					})
				},
			})
		},
		"files": func(k string, v *yaml.Node) error {
			globs := func(k string, v *yaml.Node) ([]string, error) {
				return ps.strings(v, k, func(s string) error {
					_, err := CompileGlob(s)
					return err
				})
			}
			return ps.mapping(v, k, field{
				"protect": func(k string, v *yaml.Node) (err error) {
					d.Files.Protect, err = globs(k, v)
					return err
				},
				"secrets": func(k string, v *yaml.Node) (err error) {
					d.Files.Secrets, err = globs(k, v)
					return err
				},
				"builtin_protect": func(k string, v *yaml.Node) (err error) {
					d.Files.BuiltinProtect, err = ps.boolean(v, k)
					return err
				},
			})
		},
		"capture": func(k string, v *yaml.Node) error {
			return ps.mapping(v, k, field{
				"content": func(k string, v *yaml.Node) error {
					s, err := ps.str(v, k)
					if err != nil {
						return err
					}
					if s != "metadata" && s != "full" {
						return ps.errf(v, k, "unknown content tier %q (want metadata or full)", s)
					}
					d.Capture.Content = s
					return nil
				},
				"output_bytes": func(k string, v *yaml.Node) (err error) {
					d.Capture.OutputBytes, err = ps.integer(v, k, 0, 1<<30)
					return err
				},
			})
		},
		"alerts": func(k string, v *yaml.Node) error {
			flag := func(dst *bool) func(string, *yaml.Node) error {
				return func(k string, v *yaml.Node) (err error) {
					*dst, err = ps.boolean(v, k)
					return err
				}
			}
			return ps.mapping(v, k, field{
				"spend_usd": func(k string, v *yaml.Node) error {
					var f float64
					if v.Kind != yaml.ScalarNode || (v.Tag != "!!float" && v.Tag != "!!int") || v.Decode(&f) != nil ||
						f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
						return ps.errf(v, k, "want an amount in USD (0 or more), got %s", kindName(v))
					}
					d.Alerts.SpendUSD = f
					return nil
				},
				"retries_without_progress": func(k string, v *yaml.Node) (err error) {
					d.Alerts.RetriesWithoutProgress, err = ps.integer(v, k, 0, 1000)
					return err
				},
				"unknown_domain":     flag(&d.Alerts.UnknownDomain),
				"dependency_install": flag(&d.Alerts.DependencyInstall),
				"workflow_edit":      flag(&d.Alerts.WorkflowEdit),
			})
		},
		"attributes": func(k string, v *yaml.Node) (err error) {
			d.Attributes, err = ps.stringMap(v, k, checkAttributeKey)
			return err
		},
	})
	ps.note(err)
	if !sawVersion {
		return ps.errf(n, "version", "missing (write version: 1)")
	}
	return nil
}

// ParseMode accepts observe or enforce (the --mode flag uses it too).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Observe, Enforce:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want observe or enforce)", s)
}

// ParseUpstream accepts "system" or an IP address with an optional port
// (53 by default), returned as "system" or "ip:port". A host name is
// refused: the DNS proxy must not need DNS to find its upstream.
func ParseUpstream(s string) (string, error) {
	if s == "system" {
		return s, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return "", fmt.Errorf("bad upstream %q: port 0", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 53).String(), nil
	}
	return "", fmt.Errorf("bad upstream %q (want system, or an IP address with an optional :port)", s)
}

// coverage refuses allow_cidrs that together cover a whole address family.
func (ps *parser) coverage(n *yaml.Node, key string, cidrs []string) error {
	var pfx []netip.Prefix
	for _, s := range cidrs {
		if p, err := parseCIDR(s); err == nil {
			pfx = append(pfx, p)
		}
	}
	if fam := coversFamily(pfx); fam != "" {
		return ps.errf(n, key, "together the entries cover every %s address: %v", fam, ErrAllowsTooMuch)
	}
	return nil
}

// parseCIDR accepts a prefix or a single address (a /32 or /128).
func parseCIDR(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: write IPv4 prefixes in IPv4 form", s)
		}
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("bad CIDR %q (want e.g. 10.0.0.0/8, fd00::/8 or a single address)", s)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkEnvName(s string) error {
	if !envName.MatchString(s) {
		return fmt.Errorf("bad variable name %q", s)
	}
	return nil
}

// checkEnvPattern accepts NAME, PREFIX* (LC_*, GIT_*) or * alone.
func checkEnvPattern(s string) error {
	if s == AnyName {
		return nil
	}
	if err := checkEnvName(strings.TrimSuffix(s, "*")); err != nil {
		return fmt.Errorf("bad pattern %q (want NAME, PREFIX* or *)", s)
	}
	return nil
}

// Root-span namespaces an attribute from the file must not shadow.
var reservedAttrPrefixes = []string{"agentwatch.", "gen_ai.", "process.", "service.", "session.", "vcs.",
	"cicd.", "openinference.", "telemetry.", "otel.", "server.", "network.", "error."}

var attrKey = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// CheckAttributeKey checks a label's key as the policy's attributes keys
// are checked: `agentwatch run --label key=value` takes the same keys.
func CheckAttributeKey(s string) error { return checkAttributeKey(s) }

func checkAttributeKey(s string) error {
	if !attrKey.MatchString(s) {
		return fmt.Errorf("bad attribute name %q (lower-case words separated by . or _)", s)
	}
	for _, p := range reservedAttrPrefixes {
		if strings.HasPrefix(s, p) {
			return fmt.Errorf("attribute %q is in the reserved %s* namespace", s, p)
		}
	}
	return nil
}

// compile turns a checked document into a Policy. The checks here repeat
// none of the parser's; a Document built in Go (Default) is compiled the
// same way and its errors carry no line.
func (d Document) compile() (*Policy, error) {
	if _, err := ParseMode(string(d.Mode)); err != nil {
		return nil, fmt.Errorf("compiling policy: %w", err)
	}
	p := &Policy{Mode: d.Mode, BuiltinProtect: d.Files.BuiltinProtect}
	for _, s := range d.Files.Protect {
		g, err := CompileGlob(s)
		if err != nil {
			return nil, fmt.Errorf("compiling files.protect: %w", err)
		}
		p.Protect = append(p.Protect, g)
	}
	for _, s := range d.Files.Secrets {
		g, err := CompileGlob(s)
		if err != nil {
			return nil, fmt.Errorf("compiling files.secrets: %w", err)
		}
		p.Secrets = append(p.Secrets, g)
	}
	p.protectIdx, p.secretsIdx = newGlobIndex(p.Protect), newGlobIndex(p.Secrets)
	p.Env = EnvPolicy{Allow: slices.Clone(d.Env.Allow), Set: cloneMap(d.Env.Set)}
	for _, s := range d.Network.Allow {
		if s == AnyName {
			p.Network.Allow = append(p.Network.Allow, HostRule{Pattern: AnyName, Name: AnyName})
			continue
		}
		r, err := ParseHostRule(s)
		if err != nil {
			return nil, fmt.Errorf("compiling network.allow: %w", err)
		}
		p.Network.Allow = append(p.Network.Allow, r)
	}
	for _, s := range d.Network.AllowCIDRs {
		c, err := parseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("compiling network.allow_cidrs: %w", err)
		}
		p.Network.AllowCIDRs = append(p.Network.AllowCIDRs, c)
	}
	p.Network.AllowLoopback = d.Network.AllowLoopback
	p.Network.InspectPorts = slices.Compact(slices.Sorted(slices.Values(d.Network.InspectPorts)))
	p.Network.DNSUpstream = d.Network.DNS.Upstream
	p.Capture = CapturePolicy{Content: d.Capture.Content, OutputBytes: d.Capture.OutputBytes}
	p.Alerts = AlertPolicy(d.Alerts)
	p.Attributes = cloneMap(d.Attributes)
	p.doc = d.canonical()
	p.Version = p.doc.hash()
	return p, nil
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// canonical is the document as compiled: lists sorted and de-duplicated
// (order changes no decision), CIDRs and upstream in canonical form.
func (d Document) canonical() Document {
	sorted := func(s []string) []string {
		return slices.Compact(slices.Sorted(slices.Values(s)))
	}
	c := d
	c.Version = 1
	c.Env.Allow = sorted(d.Env.Allow)
	c.Env.Set = cloneMap(d.Env.Set)
	hosts := make([]string, 0, len(d.Network.Allow))
	for _, s := range d.Network.Allow {
		if r, err := ParseHostRule(s); err == nil {
			// "GitHub.com." and "github.com" are one rule.
			s = r.Name
			if r.Port != 0 {
				s += ":" + strconv.Itoa(r.Port)
			}
		}
		hosts = append(hosts, s)
	}
	c.Network.Allow = sorted(hosts)
	cidrs := make([]string, 0, len(d.Network.AllowCIDRs))
	for _, s := range d.Network.AllowCIDRs {
		if pfx, err := parseCIDR(s); err == nil {
			s = pfx.String()
		}
		cidrs = append(cidrs, s)
	}
	c.Network.AllowCIDRs = sorted(cidrs)
	c.Network.InspectPorts = slices.Compact(slices.Sorted(slices.Values(d.Network.InspectPorts)))
	c.Files.Protect = sorted(d.Files.Protect)
	c.Files.Secrets = sorted(d.Files.Secrets)
	c.Attributes = cloneMap(d.Attributes)
	return c
}

// Marshal writes p as a policy file that Parse reads back to the same
// version: the canonical compiled form, with the source and version as
// comments.
func (p *Policy) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# source: %s\n# policy version: %s\n", p.Source, p.Version)
	d := p.document()
	var n yaml.Node
	if err := n.Encode(d); err != nil {
		panic(fmt.Sprintf("policy: encoding a compiled policy: %v", err)) // plain strings, ints and maps
	}
	// No restriction cannot be written as a network section ("*" and /0
	// are refused: ErrAllowsTooMuch); it is the absent section.
	if d.Network.unrestricted() {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "network" {
				n.Content = slices.Delete(n.Content, i, i+2)
				if i < len(n.Content) {
					n.Content[i].HeadComment = "network: absent, so every name and address is allowed"
				}
				break
			}
		}
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		panic(fmt.Sprintf("policy: encoding a compiled policy: %v", err))
	}
	_ = enc.Close()
	return b.Bytes()
}

// unrestricted reports whether n is the absent section's network: every
// name and address, the other keys at their defaults.
func (n NetworkDoc) unrestricted() bool {
	def := defaults().canonical().Network
	return slices.Equal(n.Allow, def.Allow) && slices.Equal(n.AllowCIDRs, def.AllowCIDRs) &&
		n.AllowLoopback == def.AllowLoopback && slices.Equal(n.InspectPorts, def.InspectPorts) && n.DNS == def.DNS
}

// document is the canonical document p was compiled from; a Policy built
// as a literal (tests) gets one from its mode and file patterns.
func (p *Policy) document() Document {
	if p.doc.Version != 0 {
		return p.doc
	}
	d := defaults()
	d.Mode = p.Mode
	d.Files.Protect, d.Files.Secrets = patterns(p.Protect), patterns(p.Secrets)
	d.Files.BuiltinProtect = p.BuiltinProtect
	return d.canonical()
}

// WithMode returns a copy of p in mode m (the --mode flag overrides the
// file). The version is recomputed: it names the policy that was applied.
func (p *Policy) WithMode(m Mode) (*Policy, error) {
	if _, err := ParseMode(string(m)); err != nil {
		return nil, err
	}
	c := *p
	c.doc = p.document()
	c.doc.Mode, c.Mode = m, m
	c.Version = c.doc.hash()
	return &c, nil
}
