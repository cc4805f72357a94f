package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestParseReportsEveryError: one pass finds every error of the file, in
// line order, each naming its line and key; Error() stays one line.
func TestParseReportsEveryError(t *testing.T) {
	doc := `version: 1
mode: block
modes: enforce
env:
  allow: [PATH, BAD-NAME, HOME, 'A*B']
  set: {1X: a, OK: [b]}
network:
  allow: [github.com, "*", "a.*.com"]
  allow_cidrs: [10.0.0.0/8, 10.0.0.0/33]
  inspect_ports: [443, 0]
  dns: {upstream: dns.google}
files:
  protect: ['x/a**']
capture:
  content: everything
  content: full
alerts:
  spend_usd: lots
attributes:
  agentwatch.run.id: x
`
	want := []string{
		`p.yaml:2: mode: unknown mode "block"`,
		`p.yaml:3: modes: unknown key`,
		`p.yaml:5: env.allow[1]: bad pattern "BAD-NAME"`,
		`p.yaml:5: env.allow[3]: bad pattern "A*B"`,
		`p.yaml:6: env.set.1X: bad variable name`,
		`p.yaml:6: env.set.OK: want a value, got a list`,
		`p.yaml:8: network.allow[1]: bad pattern "*": ` + ErrAllowsTooMuch.Error(),
		`p.yaml:8: network.allow[2]: bad pattern "a.*.com"`,
		`p.yaml:9: network.allow_cidrs[1]: bad CIDR "10.0.0.0/33"`,
		`p.yaml:10: network.inspect_ports[1]: 0 out of range`,
		`p.yaml:11: network.dns.upstream: bad upstream "dns.google"`,
		`p.yaml:13: files.protect[0]: pattern "x/a**"`,
		`p.yaml:15: capture.content: unknown content tier "everything"`,
		`p.yaml:16: capture.content: repeated key`,
		`p.yaml:18: alerts.spend_usd: want an amount in USD`,
		`p.yaml:20: attributes.agentwatch.run.id: attribute "agentwatch.run.id" is in the reserved`,
	}
	_, err := Parse("p.yaml", []byte(doc))
	var es *Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not *policy.Errors", err, err)
	}
	lines := es.Lines()
	if len(lines) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i := 0; i < min(len(lines), len(want)); i++ {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("error %d:\n got  %s\n want %s...", i, lines[i], want[i])
		}
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, want[0]) ||
		!strings.HasSuffix(msg, fmt.Sprintf("(and %d more errors; agentwatch policy check lists them)", len(want)-1)) {
		t.Errorf("one-line form: %q", msg)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 2 || pe.Key != "mode" {
		t.Errorf("errors.As *Error = %+v, want the first (line 2, mode)", pe)
	}
	// A missing version is reported with the others, not instead of them.
	_, err = Parse("p.yaml", []byte("mode: loud\n"))
	if !errors.As(err, &es) || len(es.List) != 2 || es.List[0].Key != "mode" && es.List[1].Key != "mode" {
		t.Errorf("missing version and bad mode: %v", err)
	}
}

// TestParseErrorsCapped: a file of thousands of bad entries keeps
// MaxErrors and counts the rest.
func TestParseErrorsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nnetwork:\n  allow:\n")
	const n = 5000
	for i := range n {
		fmt.Fprintf(&b, "    - bad%d\n", i)
	}
	_, err := Parse("p.yaml", []byte(b.String()))
	var es *Errors
	if !errors.As(err, &es) || len(es.List) != MaxErrors || es.More != n-MaxErrors {
		t.Fatalf("kept %d, more %d; want %d, %d", len(es.List), es.More, MaxErrors, n-MaxErrors)
	}
	lines := es.Lines()
	if last := lines[len(lines)-1]; last != fmt.Sprintf("p.yaml: %d more errors not shown", n-MaxErrors) {
		t.Errorf("last line %q", last)
	}
	if !strings.HasSuffix(err.Error(), fmt.Sprintf("(and %d more errors; agentwatch policy check lists them)", n-1)) {
		t.Errorf("one-line form %q", err)
	}
}

// TestAllowsTooMuch: every entry that allows every destination is refused
// with the one message, in network.allow and network.allow_cidrs alike.
func TestAllowsTooMuch(t *testing.T) {
	for _, tc := range []struct{ key, entries string }{
		{"allow", `["*"]`},
		{"allow", `["*.*"]`},
		{"allow", `["**"]`},
		{"allow", `["*."]`},
		{"allow", `["*:443"]`},
		{"allow", `["*.com"]`},
		{"allow", `["*.*.*"]`},
		{"allow", `["*.COM."]`},
		{"allow_cidrs", `[0.0.0.0/0]`},
		{"allow_cidrs", `["::/0"]`},
		{"allow_cidrs", `[10.1.2.3/0]`},
		{"allow_cidrs", `[0.0.0.0/1, 128.0.0.0/1]`},
		{"allow_cidrs", `[128.0.0.0/2, 0.0.0.0/1, 10.0.0.0/8, 192.0.0.0/2]`},
		{"allow_cidrs", `["::/1", "8000::/1"]`},
	} {
		doc := fmt.Sprintf("version: 1\nnetwork:\n  %s: %s\n", tc.key, tc.entries)
		_, err := Parse("p.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), ErrAllowsTooMuch.Error()) {
			t.Errorf("%s: %s: error %v, want %q", tc.key, tc.entries, err, ErrAllowsTooMuch)
		}
	}
	// Wide but not everything: accepted.
	for _, ok := range []string{
		`allow: ["*.example.com", "*.co.uk", "a.b"]`,
		`allow_cidrs: [0.0.0.0/1, 192.0.0.0/2]`, // 128.0.0.0/2 missing
		`allow_cidrs: [0.0.0.0/1, "::/1", "8000::/2"]`,
		`allow_cidrs: [128.0.0.0/1, 10.0.0.0/8]`,
	} {
		if _, err := Parse("p.yaml", []byte("version: 1\nnetwork:\n  "+ok+"\n")); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	// ParseHostRule, the other place an allowlist entry is checked, says
	// the same.
	for _, s := range []string{"*", "*.*", "**", "*.com"} {
		if _, err := ParseHostRule(s); !errors.Is(err, ErrAllowsTooMuch) {
			t.Errorf("ParseHostRule(%q) = %v, want ErrAllowsTooMuch", s, err)
		}
	}
	// The unrestricted default is still what an absent section means,
	// and Marshal writes it as an absent section that parses back.
	p := Default()
	if _, ok := p.AllowsHost("any.example", 1); !ok {
		t.Error("default restricts names")
	}
	if _, ok := p.AllowsAddr(netip.MustParseAddr("203.0.113.1")); !ok {
		t.Error("default restricts addresses")
	}
	out := p.Marshal()
	if strings.Contains(string(out), "0.0.0.0/0") || strings.Contains(string(out), "\nnetwork:") {
		t.Errorf("default marshalled with a network section:\n%s", out)
	}
	if back, err := Parse("m.yaml", out); err != nil || back.Version != p.Version {
		t.Errorf("default does not round-trip: %v", err)
	}
}

// TestSizeLimit: a file over MaxFileSize is refused with one line before
// it is parsed, whether it is a regular file, a FIFO that never ends or
// bytes handed to Parse.
func TestSizeLimit(t *testing.T) {
	dir := t.TempDir()
	body := "version: 1\nattributes:\n"
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(body)
	for i := 0; f2size(f) <= 40<<20; i++ {
		fmt.Fprintf(f, "  k%07d: %s\n", i, strings.Repeat("v", 100))
	}
	f.Close()
	start := time.Now()
	_, err = Load(big)
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "over the 1048576-byte (1 MiB) limit") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Load(40 MB) = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing a 40 MB file took %v", d)
	}
	if !strings.HasPrefix(err.Error(), big+": policy file is ") {
		t.Errorf("error %q does not name the file and its size", err)
	}

	// Exactly at the limit is read (and parsed).
	exact := filepath.Join(dir, "exact.yaml")
	pad := body + "# " + strings.Repeat("x", MaxFileSize-len(body)-3) + "\n"
	if len(pad) != MaxFileSize {
		t.Fatalf("pad %d", len(pad))
	}
	os.WriteFile(exact, []byte(pad), 0o644)
	if _, err := Load(exact); err != nil {
		t.Errorf("a file of exactly MaxFileSize bytes: %v", err)
	}
	if _, err := Parse("p", []byte(pad+"#")); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Parse of MaxFileSize+1 bytes: %v", err)
	}

	// A FIFO has no size to stat: the bounded read stops it.
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		w.WriteString(body)
		line := []byte("  k: " + strings.Repeat("v", 4090) + "\n")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(line); err != nil {
				return // the reader closed
			}
		}
	}()
	done := make(chan error, 1)
	go func() { _, err := Load(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "over the 1048576-byte (1 MiB) limit") {
			t.Errorf("Load(endless FIFO) = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load of an endless FIFO did not return")
	}
}

func f2size(f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil {
		return 1 << 62
	}
	return fi.Size()
}
