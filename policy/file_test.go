package policy

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseSpecExample(t *testing.T) {
	p, err := Load("testdata/spec-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != Enforce || p.Source != "testdata/spec-example.yaml" {
		t.Errorf("mode %q source %q", p.Mode, p.Source)
	}
	if _, ok := p.AllowsHost("raw.githubusercontent.com", 443); !ok {
		t.Error("wildcard rule not compiled")
	}
	if _, ok := p.AllowsHost("github.com", 22); ok {
		t.Error("port rule not compiled")
	}
	if _, ok := p.AllowsHost("example.com", 443); ok {
		t.Error("unlisted name allowed")
	}
	if _, ok := p.AllowsAddr(netip.MustParseAddr("1.1.1.1")); ok {
		t.Error("allow_cidrs [] allowed an address")
	}
	if _, ok := p.AllowsAddr(netip.MustParseAddr("127.0.0.1")); !ok {
		t.Error("loopback denied")
	}
	if !slices.Equal(p.Network.InspectPorts, []int{80, 443}) || p.Network.DNSUpstream != "system" {
		t.Errorf("network %+v", p.Network)
	}
	if p.Env.Set["CI"] != "true" || p.Attributes["team"] != "platform" || p.Attributes["org"] != "acme" {
		t.Errorf("env.set %v attributes %v", p.Env.Set, p.Attributes)
	}
	if p.Capture != (CapturePolicy{Content: "metadata", OutputBytes: 4096}) {
		t.Errorf("capture %+v", p.Capture)
	}
	if p.Alerts != (AlertPolicy{SpendUSD: 5, RetriesWithoutProgress: 3, UnknownDomain: true, DependencyInstall: true, WorkflowEdit: true}) {
		t.Errorf("alerts %+v", p.Alerts)
	}
	if !p.IsSecret("/home/dev/.ssh/id_ed25519", "/home/dev") || !p.IsProtected(ws+"/.github/workflows/ci.yml", ws, home) {
		t.Error("files section not compiled")
	}
}

func TestParseDefaultsOfAbsentParts(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, p *Policy)
	}{
		{"only version: observe, unrestricted, built-in files", "version: 1\n", func(t *testing.T, p *Policy) {
			if p.Mode != Observe {
				t.Errorf("mode %q", p.Mode)
			}
			if _, ok := p.AllowsHost("anything.example", 443); !ok {
				t.Error("absent network section restricts names")
			}
			if _, ok := p.AllowsAddr(netip.MustParseAddr("203.0.113.9")); !ok {
				t.Error("absent network section restricts addresses")
			}
			if _, ok := p.AllowsAddr(netip.MustParseAddr("2001:db8::1")); !ok {
				t.Error("absent network section restricts IPv6 addresses")
			}
			if !p.AllowsEnv("AWS_SECRET_ACCESS_KEY") {
				t.Error("absent env section filters")
			}
			if len(p.Protect) != len(DefaultProtect) || len(p.Secrets) != len(DefaultSecrets) {
				t.Error("absent files section is not the built-in lists")
			}
			if p.Version != Default().Version {
				t.Error("a file with only version: 1 differs from the built-in")
			}
		}},
		{"present network section starts from nothing", "version: 1\nnetwork:\n  allow: [example.com]\n", func(t *testing.T, p *Policy) {
			if _, ok := p.AllowsHost("other.example", 443); ok {
				t.Error("unlisted name allowed")
			}
			if _, ok := p.AllowsAddr(netip.MustParseAddr("203.0.113.9")); ok {
				t.Error("address allowed without allow_cidrs")
			}
			if _, ok := p.AllowsAddr(netip.MustParseAddr("::1")); !ok || !p.Network.AllowLoopback {
				t.Error("allow_loopback does not default to true")
			}
			if !slices.Equal(p.Network.InspectPorts, []int{80, 443}) || p.Network.DNSUpstream != "system" {
				t.Errorf("network defaults %+v", p.Network)
			}
		}},
		{"empty network section", "version: 1\nnetwork:\n", func(t *testing.T, p *Policy) {
			if _, ok := p.AllowsHost("example.com", 443); ok {
				t.Error("empty network section allows names")
			}
		}},
		{"explicit loopback off", "version: 1\nnetwork:\n  allow: [example.com]\n  allow_loopback: false\n", func(t *testing.T, p *Policy) {
			if _, ok := p.AllowsAddr(netip.MustParseAddr("127.0.0.1")); ok {
				t.Error("allow_loopback: false allowed loopback")
			}
		}},
		{"empty lists mean none", "version: 1\nfiles:\n  protect: []\n", func(t *testing.T, p *Policy) {
			if len(p.Protect) != 0 || len(p.Secrets) != len(DefaultSecrets) {
				t.Errorf("protect %v secrets %v", p.Protect, p.Secrets)
			}
		}},
		{"env allowlist", "version: 1\nenv:\n  allow: [PATH, LC_*]\n", func(t *testing.T, p *Policy) {
			if !p.AllowsEnv("PATH") || !p.AllowsEnv("LC_ALL") || p.AllowsEnv("PATHX") || p.AllowsEnv("GITHUB_TOKEN") {
				t.Error("env.allow not applied")
			}
		}},
		{"upstream forms", "version: 1\nnetwork:\n  dns: {upstream: '[::1]:5353'}\n", func(t *testing.T, p *Policy) {
			if p.Network.DNSUpstream != "[::1]:5353" {
				t.Errorf("upstream %q", p.Network.DNSUpstream)
			}
		}},
		{"upstream default port", "version: 1\nnetwork:\n  dns: {upstream: 127.0.0.53}\n", func(t *testing.T, p *Policy) {
			if p.Network.DNSUpstream != "127.0.0.53:53" {
				t.Errorf("upstream %q", p.Network.DNSUpstream)
			}
		}},
		{"single address CIDR", "version: 1\nnetwork:\n  allow_cidrs: [10.1.2.3, '10.9.0.0/16', 'fd00::1/8']\n", func(t *testing.T, p *Policy) {
			if r, ok := p.AllowsAddr(netip.MustParseAddr("10.1.2.3")); !ok || r != "10.1.2.3/32" {
				t.Errorf("AllowsAddr = %q, %v", r, ok)
			}
			if _, ok := p.AllowsAddr(netip.MustParseAddr("10.1.2.4")); ok {
				t.Error("/32 allowed its neighbour")
			}
			if r, _ := p.AllowsAddr(netip.MustParseAddr("fd12::5")); r != "fd00::/8" {
				t.Errorf("v6 prefix not masked: %q", r)
			}
		}},
		{"anchors and aliases", "version: 1\nfiles:\n  protect: &p [a/**]\n  secrets: *p\n", func(t *testing.T, p *Policy) {
			if len(p.Secrets) != 1 || p.Secrets[0].String() != "a/**" {
				t.Errorf("secrets %v", p.Secrets)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		yaml string
		want string // the whole message's prefix: file:line: key: reason
	}{
		{"", "p.yaml: empty policy file"},
		{"mode: enforce\n", "p.yaml:1: version: missing"},
		{"version: 2\n", "p.yaml:1: version: unsupported version \"2\""},
		{"version: '1.0'\n", "p.yaml:1: version: unsupported version"},
		{"version: 1\nmode: block\n", "p.yaml:2: mode: unknown mode \"block\""},
		{"version: 1\nmode: [enforce]\n", "p.yaml:2: mode: want a string, got a list"},
		{"version: 1\nmodes: enforce\n", "p.yaml:2: modes: unknown key (want one of alerts, attributes, capture, env, files, mode, network, version)"},
		{"version: 1\nversion: 1\n", "p.yaml:2: version: repeated key"},
		{"- a\n", "p.yaml:1: want a mapping at the top, got a list"},
		{"version: 1\nmode: [\n", "p.yaml:2: invalid YAML"},
		{"version: 1\nenv:\n  allow: [PATH, 'BAD-NAME']\n", "p.yaml:3: env.allow[1]: bad pattern \"BAD-NAME\""},
		{"version: 1\nenv:\n  allow: [PA*TH]\n", "p.yaml:3: env.allow[0]: bad pattern"},
		{"version: 1\nenv:\n  set: {1X: a}\n", "p.yaml:3: env.set.1X: bad variable name"},
		{"version: 1\nenv:\n  set: {X: [a]}\n", "p.yaml:3: env.set.X: want a value, got a list"},
		{"version: 1\nenv:\n  deny: [X]\n", "p.yaml:3: env.deny: unknown key (want one of allow, set)"},
		{"version: 1\nnetwork:\n  allow:\n    - a.com\n    - b.com\n    - \"*.\"\n", "p.yaml:6: network.allow[2]: bad pattern \"*.\""},
		{"version: 1\nnetwork:\n  allow: [a.*.com]\n", "p.yaml:3: network.allow[0]: bad pattern \"a.*.com\": * is only allowed"},
		{"version: 1\nnetwork:\n  allow: [github.com:99999]\n", "p.yaml:3: network.allow[0]: bad pattern \"github.com:99999\": port must be 1-65535"},
		{"version: 1\nnetwork:\n  allow: [1.2.3.4]\n", "p.yaml:3: network.allow[0]: bad pattern \"1.2.3.4\": an IP address is not a name"},
		{"version: 1\nnetwork:\n  allow: example.com\n", "p.yaml:3: network.allow: want a list, got \"example.com\""},
		{"version: 1\nnetwork:\n  allow_cidrs: [10.0.0.0/33]\n", "p.yaml:3: network.allow_cidrs[0]: bad CIDR \"10.0.0.0/33\""},
		{"version: 1\nnetwork:\n  allow_cidrs: [example.com]\n", "p.yaml:3: network.allow_cidrs[0]: bad CIDR"},
		{"version: 1\nnetwork:\n  allow_loopback: yes please\n", "p.yaml:3: network.allow_loopback: want true or false"},
		{"version: 1\nnetwork:\n  inspect_ports: [443, 0]\n", "p.yaml:3: network.inspect_ports[1]: 0 out of range 1-65535"},
		{"version: 1\nnetwork:\n  inspect_ports: [https]\n", "p.yaml:3: network.inspect_ports[0]: want an integer"},
		{"version: 1\nnetwork:\n  dns:\n    upstream: dns.google:53\n", "p.yaml:4: network.dns.upstream: bad upstream \"dns.google:53\""},
		{"version: 1\nnetwork:\n  dns:\n    upstream: 1.1.1.1:0\n", "p.yaml:4: network.dns.upstream: bad upstream"},
		{"version: 1\nnetwork:\n  dns:\n    resolver: 1.1.1.1\n", "p.yaml:4: network.dns.resolver: unknown key (want one of upstream)"},
		{"version: 1\nfiles:\n  protect: ['x/a**']\n", "p.yaml:3: files.protect[0]: pattern \"x/a**\": ** must be a whole path segment"},
		{"version: 1\nfiles:\n  secrets: ['~bob/.ssh']\n", "p.yaml:3: files.secrets[0]: pattern \"~bob/.ssh\""},
		{"version: 1\nfiles:\n  secrets: ['[']\n", "p.yaml:3: files.secrets[0]: pattern \"[\""},
		{"version: 1\ncapture:\n  content: everything\n", "p.yaml:3: capture.content: unknown content tier \"everything\""},
		{"version: 1\ncapture:\n  output_bytes: -1\n", "p.yaml:3: capture.output_bytes: -1 out of range"},
		{"version: 1\nalerts:\n  spend_usd: lots\n", "p.yaml:3: alerts.spend_usd: want an amount in USD"},
		{"version: 1\nalerts:\n  spend_usd: -1\n", "p.yaml:3: alerts.spend_usd: want an amount in USD"},
		{"version: 1\nalerts:\n  unknown_domain: 1\n", "p.yaml:3: alerts.unknown_domain: want true or false"},
		{"version: 1\nalerts:\n  spend: 1\n", "p.yaml:3: alerts.spend: unknown key"},
		{"version: 1\nattributes:\n  agentwatch.run.id: x\n", "p.yaml:3: attributes.agentwatch.run.id: attribute \"agentwatch.run.id\" is in the reserved"},
		{"version: 1\nattributes:\n  Team: x\n", "p.yaml:3: attributes.Team: bad attribute name"},
		{"version: 1\nenv: [PATH]\n", "p.yaml:2: env: want a mapping, got a list"},
	}
	for _, tt := range tests {
		_, err := Parse("p.yaml", []byte(tt.yaml))
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q): error %v is not a *policy.Error", tt.yaml, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%q):\n got  %s\n want %s...", tt.yaml, err, tt.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): error spans lines: %q", tt.yaml, err)
		}
	}
}

func TestVersionCanonical(t *testing.T) {
	base := `version: 1
mode: enforce
network:
  allow: [a.example.com, "*.b.example.com", c.example.com:443]
  allow_cidrs: [10.0.0.0/8]
env:
  allow: [PATH, HOME]
  set: {CI: "true", X: y}
attributes: {team: platform, org: acme}
`
	same := []string{
		// keys reordered, lists reordered, block style, comments, case and a trailing dot
		`# reformatted
attributes:
  org: acme
  team: platform
env:
  set:
    X: y
    CI: "true"
  allow:
    - HOME
    - PATH
network:
  allow_cidrs: ["10.0.0.0/8"]
  allow:
    - C.Example.com:443
    - "*.b.example.com"
    - a.example.com.
mode: enforce
version: 1
`,
		// explicit defaults
		base + "capture: {content: metadata, output_bytes: 4096}\n",
		// duplicates
		strings.Replace(base, "[PATH, HOME]", "[PATH, HOME, PATH]", 1),
		// 10.1.2.3/8 masks to 10.0.0.0/8
		strings.Replace(base, "10.0.0.0/8", "10.1.2.3/8", 1),
	}
	different := []string{
		strings.Replace(base, "enforce", "observe", 1),
		strings.Replace(base, "c.example.com:443", "c.example.com", 1),
		strings.Replace(base, "[a.example.com", `["*.a.example.com"`, 1),
		strings.Replace(base, `CI: "true"`, `CI: "false"`, 1),
		strings.Replace(base, "org: acme", "org: other", 1),
		base + "network2: x\n"[:0] + "files: {protect: []}\n",
		base + "alerts: {spend_usd: 5.01}\n",
	}
	p0, err := Parse("base", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range same {
		p, err := Parse("same", []byte(s))
		if err != nil {
			t.Fatalf("same[%d]: %v", i, err)
		}
		if p.Version != p0.Version {
			t.Errorf("same[%d] has another version", i)
		}
	}
	for i, s := range different {
		p, err := Parse("different", []byte(s))
		if err != nil {
			t.Fatalf("different[%d]: %v", i, err)
		}
		if p.Version == p0.Version {
			t.Errorf("different[%d] has the same version", i)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	spec, err := Load("testdata/spec-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Policy{Default(), spec} {
		out := p.Marshal()
		back, err := Parse("marshalled", out)
		if err != nil {
			t.Fatalf("%s: marshalled form does not parse: %v\n%s", p.Source, err, out)
		}
		if back.Version != p.Version {
			t.Errorf("%s: version changed through Marshal:\n%s", p.Source, out)
		}
		if !strings.Contains(string(out), "# policy version: "+p.Version+"\n") {
			t.Errorf("%s: version comment missing:\n%s", p.Source, out)
		}
	}
	if Default().Source != SourceBuiltIn {
		t.Errorf("default source %q", Default().Source)
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "repo")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	flagFile := filepath.Join(dir, "flag.yaml")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(flagFile, "version: 1\nmode: enforce\n")

	p, err := Lookup("", root) // no file at the root
	if err != nil || p.Source != SourceBuiltIn {
		t.Fatalf("no file: %v, %v", p, err)
	}
	write(filepath.Join(root, FileName), "version: 1\nattributes: {team: x}\n")
	if p, err = Lookup("", root); err != nil || p.Source != filepath.Join(root, FileName) {
		t.Fatalf("root file: source %v, %v", p.Source, err)
	}
	if p, err = Lookup(flagFile, root); err != nil || p.Source != flagFile || p.Mode != Enforce {
		t.Fatalf("--policy: %v, %v", p, err)
	}
	if p, err = Lookup("", ""); err != nil || p.Source != SourceBuiltIn {
		t.Fatalf("no root: %v, %v", p, err)
	}
	write(filepath.Join(root, FileName), "version: 1\nmode: loud\n")
	if _, err = Lookup("", root); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(root, FileName)+":2: mode:") {
		t.Fatalf("malformed root file: %v", err)
	}
	if _, err = Lookup(filepath.Join(dir, "missing.yaml"), root); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing --policy file: %v", err)
	}
}

func TestFilterEnv(t *testing.T) {
	p, err := Parse("p", []byte("version: 1\nenv:\n  allow: [PATH, HOME, LC_*, GIT_*]\n  set: {CI: 'true', GIT_PAGER: cat}\n"))
	if err != nil {
		t.Fatal(err)
	}
	environ := []string{"PATH=/usr/bin", "AWS_SECRET_ACCESS_KEY=s3cr3t-value", "HOME=/home/dev", "LC_ALL=C",
		"GIT_PAGER=less", "CI=false", "GITHUB_TOKEN=ghp_abcdefgh", "garbage", "LC_=x"}
	out, kept, dropped, set := p.FilterEnv(environ)
	wantOut := []string{"PATH=/usr/bin", "HOME=/home/dev", "LC_ALL=C", "LC_=x", "CI=true", "GIT_PAGER=cat"}
	if !slices.Equal(out, wantOut) {
		t.Errorf("out = %q\nwant  %q", out, wantOut)
	}
	if want := []string{"HOME", "LC_", "LC_ALL", "PATH"}; !slices.Equal(kept, want) {
		t.Errorf("kept = %q, want %q", kept, want)
	}
	if want := []string{"AWS_SECRET_ACCESS_KEY", "CI", "GITHUB_TOKEN", "garbage"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped = %q, want %q", dropped, want)
	}
	if want := []string{"CI", "GIT_PAGER"}; !slices.Equal(set, want) {
		t.Errorf("set = %q, want %q", set, want)
	}
	for _, name := range append(append(kept, dropped...), set...) {
		if strings.Contains(name, "=") || strings.Contains(name, "s3cr3t") {
			t.Errorf("a value leaked into the names: %q", name)
		}
	}
	if want := []string{"ghp_abcdefgh", "s3cr3t-value"}; !slices.Equal(p.DroppedValues(environ), want) {
		t.Errorf("DroppedValues = %q, want %q", p.DroppedValues(environ), want)
	}
	// Paths, short values and values the child has anyway are not redacted.
	env2 := []string{"HOME=/home/dev", "OLDPWD=/home/dev/src/app", "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1", "MANPATH=/usr/share/man:/usr/man",
		"SHLVL=1", "NODE_ENV=dev", "OTHER_HOME=/home/dev", "SUDO_COMMAND=/usr/bin/env X=longsecretvalue", "COPY=/usr/bin-x x"}
	if want := []string{"/usr/bin-x x", "/usr/bin/env X=longsecretvalue"}; !slices.Equal(p.DroppedValues(env2), want) {
		t.Errorf("DroppedValues = %q, want %q", p.DroppedValues(env2), want)
	}
	// The built-in keeps everything.
	out, _, dropped, _ = Default().FilterEnv(environ[:3])
	if !slices.Equal(out, environ[:3]) || len(dropped) != 0 {
		t.Errorf("default FilterEnv = %q, dropped %q", out, dropped)
	}
}

func TestWithMode(t *testing.T) {
	p, err := Load("testdata/spec-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o, err := p.WithMode(Observe)
	if err != nil {
		t.Fatal(err)
	}
	if o.Mode != Observe || p.Mode != Enforce || o.Version == p.Version || o.Source != p.Source {
		t.Errorf("WithMode: mode %q (original %q), versions %s %s", o.Mode, p.Mode, o.Version, p.Version)
	}
	// The same as writing mode: observe in the file.
	data, _ := os.ReadFile("testdata/spec-example.yaml")
	f, err := Parse("x", []byte(strings.Replace(string(data), "mode: enforce", "mode: observe", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != o.Version {
		t.Error("--mode observe and mode: observe give different versions")
	}
	if back, _ := o.WithMode(Enforce); back.Version != p.Version {
		t.Error("mode round trip changed the version")
	}
	if _, err := p.WithMode("block"); err == nil {
		t.Error("bad mode accepted")
	}
}
