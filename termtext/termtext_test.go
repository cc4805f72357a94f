package termtext

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEscapeHostile(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain ASCII", "src/main.go", "src/main.go"},
		{"plain UTF-8", "données/résumé-日本語.txt", "données/résumé-日本語.txt"},
		{"emoji with presentation selector", "❤️ ok", "❤️ ok"},
		{"OSC 52 clipboard write", "f\x1b]52;c;ZWNobyBwd25lZA==\x07", `f\x1b]52;c;ZWNobyBwd25lZA==\x07`},
		{"OSC 0 title set, ST-terminated", "\x1b]0;sudo rm -rf /\x1b\\x", `\x1b]0;sudo rm -rf /\x1b\\x`},
		{"CSI 2J screen clear", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"8-bit CSI (C1, UTF-8 encoded)", "a\u009b2Jb", `a\u009b2Jb`},
		{"8-bit CSI as a raw byte", "a\x9b2Jb", `a\x9b2Jb`},
		{"8-bit OSC", "\u009d52;c;eA==\u009c", `\u009d52;c;eA==\u009c`},
		{"CR overwrite", "evil.sh\rREADME.md", `evil.sh\rREADME.md`},
		{"newline forging a second line", "x\nagentwatch: run 20260101 recorded (3 spans)", `x\nagentwatch: run 20260101 recorded (3 spans)`},
		{"tab", "a\tb", `a\tb`},
		{"NUL, BEL, backspace, DEL", "\x00\a\b\x7f", `\x00\x07\x08\x7f`},
		{"RLO file name", "invoice\u202Egpj.sh", `invoice\u202egpj.sh`},
		{"bidi isolates and marks", "\u2066a\u2069\u200e\u200f\u061c", `\u2066a\u2069\u200e\u200f\u061c`},
		{"zero-width and BOM", "pay\u200bpal\u200d\ufeff", `pay\u200bpal\u200d\ufeff`},
		{"tag characters (hidden ASCII)", "ok\U000E0041\U000E0042", `ok\U000e0041\U000e0042`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"Hangul filler", "a\u3164b", `a\u3164b`},
		{"invalid UTF-8", "bad\xff\xfe\xc3", `bad\xff\xfe\xc3`},
		{"replacement character is text", "a\ufffdb", "a\ufffdb"},
		{"backslash before a letter stays", `grep 'a\.b' \s`, `grep 'a\.b' \s`},
		{"backslash that would read as an escape", `C:\Users\new\x1b`, `C:\\Users\\new\\x1b`},
		{"backslash before an escaped byte", "\\\x1b", `\\\x1b`},
		{"trailing backslash", `dir\`, `dir\\`},
		{"double backslash", `a\\b`, `a\\\b`},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Escape(tc.in)
			if got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
			assertSafe(t, tc.in, got)
			if back, err := unescape(got); err != nil || back != tc.in {
				t.Errorf("reading %q back gives %q (%v), want %q", got, back, err, tc.in)
			}
		})
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{
		"", "plain", "\x1b]52;c;eA==\x07", "\x1b[2J", "a\rb\nc\td", "\u202egpj.exe", "\x9b\xff",
		`\`, `\\x1b`, `\u202e`, "❤️", "日本", "\U000E0041", "\u2028", "a\\\x1b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Escape(in)
		assertSafe(t, in, out)
		if back, err := unescape(out); err != nil || back != in {
			t.Fatalf("Escape(%q) = %q reads back as %q (%v)", in, out, back, err)
		}
		if utf8.ValidString(in) && !strings.ContainsFunc(in, unsafeRune) && !strings.Contains(in, `\`) && out != in {
			t.Fatalf("printable %q changed to %q", in, out)
		}
	})
}

// unsafeRune is the test's own list of what must never reach a terminal:
// controls, bidi, format characters, separators.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

func assertSafe(t *testing.T, in, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("Escape(%q) = %q is not valid UTF-8", in, out)
	}
	if i := strings.IndexFunc(out, unsafeRune); i >= 0 {
		t.Fatalf("Escape(%q) = %q keeps %U at %d", in, out, []rune(out[i:])[0], i)
	}
}

// unescape reads Escape's notation back; a test-only proof that the
// output is unambiguous.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", strconv.ErrSyntax // Escape never ends on a lone backslash
		}
		i++
		n := 0
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
			continue
		case 'n':
			b.WriteByte('\n')
			continue
		case 'r':
			b.WriteByte('\r')
			continue
		case 't':
			b.WriteByte('\t')
			continue
		case 'x':
			n = 2
		case 'u':
			n = 4
		case 'U':
			n = 8
		default:
			b.WriteByte('\\') // a backslash shown as is
			i--
			continue
		}
		if i+n >= len(s) {
			return "", strconv.ErrSyntax
		}
		v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
		if err != nil {
			return "", err
		}
		if n == 2 {
			b.WriteByte(byte(v))
		} else {
			b.WriteRune(rune(v))
		}
		i += n
	}
	return b.String(), nil
}

func BenchmarkEscape(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"plain path", "/home/dev/proj/internal/server/handler_test.go"},
		{"hostile", "f\x1b]52;c;ZWNobyBwd25lZA==\x07\r\ninvoice\u202egpj.sh"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Escape(bc.in)
			}
		})
	}
}
