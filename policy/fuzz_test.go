package policy

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: no policy file makes Parse panic; every failure is an
// *Errors of one-line *Error entries in line order, at most MaxErrors of
// them; every success marshals to a file that parses back to the same
// version, and never allows everything by name from a written list.
func FuzzParse(f *testing.F) {
	spec, err := os.ReadFile("testdata/spec-example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(spec)
	f.Add(Default().Marshal())
	for _, s := range []string{
		"version: 1\n",
		"version: 1\nmode: enforce\nnetwork:\n  allow: [api.anthropic.com, \"*.githubusercontent.com\", github.com:443]\n  allow_cidrs: [10.0.0.0/8, \"fd00::/8\", 10.1.2.3]\n  allow_loopback: false\n  inspect_ports: [443]\n  dns: {upstream: \"[::1]:5353\"}\n",
		"version: 1\nenv:\n  allow: [PATH, LC_*]\n  set: {CI: true}\nfiles:\n  protect: &p [a/**]\n  secrets: *p\n  builtin_protect: false\n",
		"version: 1\ncapture: {content: full, output_bytes: 0}\nalerts: {spend_usd: 0.5, retries_without_progress: 0}\nattributes: {team: x}\n",
		"version: 1\nmode: block\nmodes: x\nnetwork:\n  allow: ['*', a.*.com]\n  allow_cidrs: [0.0.0.0/1, 128.0.0.0/1]\n",
		"version: 1\nversion: 1\nenv: [PATH]\n",
		"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
		"version: 1\nmode: [\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("p.yaml", data)
		if err != nil {
			var es *Errors
			if !errors.As(err, &es) || len(es.List) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *policy.Errors", err, err)
			}
			if len(es.List) > MaxErrors {
				t.Fatalf("%d errors kept, over %d", len(es.List), MaxErrors)
			}
			for i, e := range es.List {
				if i > 0 && e.Line < es.List[i-1].Line {
					t.Fatalf("errors out of line order: %v", es.Lines())
				}
				if e.File != "p.yaml" || e.Reason == "" {
					t.Fatalf("error without file or reason: %+v", e)
				}
			}
			if strings.Contains(err.Error(), "\n") && !strings.Contains(string(data), "\n") {
				t.Fatalf("one-line form spans lines: %q", err)
			}
			return
		}
		out := p.Marshal()
		back, err := Parse("m.yaml", out)
		if err != nil {
			t.Fatalf("the marshalled form does not parse: %v\n%s", err, out)
		}
		if back.Version != p.Version {
			t.Fatalf("version changed through Marshal:\n%s", out)
		}
		if len(p.Network.Allow) > 0 && p.Network.Allow[0].Pattern == AnyName && !p.doc.Network.unrestricted() {
			t.Fatalf("a written network section allows every name: %+v", p.Network)
		}
	})
}
