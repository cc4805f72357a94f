// Package termtext makes text that came from a run (file names, argv, DNS
// names, span names from the agent's own telemetry, error messages that
// quote any of these) safe to print on a terminal. A wrapped agent picks
// those strings; printed raw, an ESC sequence in a file name could set the
// operator's clipboard (OSC 52), retitle or clear the screen, and a CR, a
// newline or a bidi override could make a line of `agentwatch show` say
// something the record does not.
//
// It owns Escape, and JSON for encoded JSON that goes to a terminal (the
// same runes as \u escapes, which decode to the run's strings), and
// depends on nothing but the standard library, so every package that
// prints can use it. Escape must not be applied to formats that are not a
// terminal's (JSON, the trace, the store): they keep the run's strings as
// they were.
package termtext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// Escape returns s with everything that could drive or disguise a terminal
// written as a visible escape, in Go's notation:
//
//   - \n, \r, \t for newline, carriage return and tab (a tab is escaped
//     too: it moves the cursor, shifts table columns and hides how much
//     space a name really holds);
//   - \xHH for the other C0 controls (ESC is \x1b) and DEL, and for each
//     byte that is not valid UTF-8 (\xff);
//   - \uHHHH (\UHHHHHHHH above U+FFFF) for C1 controls (U+0080–U+009F,
//     the 8-bit CSI U+009B among them), every Unicode format character
//     (category Cf: bidi embeddings, overrides, isolates and marks, U+061C,
//     zero-width space and joiners, U+FEFF, soft hyphen, tag characters),
//     the line and paragraph separators U+2028/U+2029, the Hangul fillers
//     that render as nothing, and the variation selectors U+E0100–U+E01EF.
//
// A backslash is shown doubled (\\) when what follows it could be read as
// an escape — a backslash, one of x u U n r t, an escaped character — or
// when it ends s (so a concatenation cannot pair it with the next text);
// elsewhere (C:\Users is C:\\Users, but grep 'a\.b' stays as is) it is
// shown as it is. So the output can always be read back to the exact bytes
// of s, and text that holds none of the above comes back unchanged.
func Escape(s string) string {
	if plain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			writeHex(&b, 'x', uint32(s[i]), 2)
		case r == '\\':
			b.WriteByte('\\')
			if backslashNeedsDouble(s[i+1:]) {
				b.WriteByte('\\')
			}
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			writeHex(&b, 'x', uint32(r), 2)
		case hidden(r):
			if r > 0xffff {
				writeHex(&b, 'U', uint32(r), 8)
			} else {
				writeHex(&b, 'u', uint32(r), 4)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// plain is the fast path: printable ASCII without a backslash, or
// non-ASCII runes none of which is hidden.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
		if c >= 0x80 {
			return plainRunes(s[i:])
		}
	}
	return true
}

func plainRunes(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 || r < 0x20 || r == 0x7f || r == '\\' || hidden(r) {
			return false
		}
		i += size
	}
	return true
}

// hidden reports a non-ASCII rune that a terminal acts on or draws as
// nothing, so that the text would not show what it holds.
func hidden(r rune) bool {
	switch {
	case r < 0x80:
		return false
	case r <= 0x9f: // C1 controls: 0x9b is CSI, 0x9d OSC
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	case r == 0x115f || r == 0x1160 || r == 0x3164 || r == 0xffa0: // Hangul fillers
		return true
	case r >= 0xe0100 && r <= 0xe01ef: // variation selectors 17–256: no use in text but to hide data
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// backslashNeedsDouble reports whether a backslash followed by rest would
// read as the start of an escape.
func backslashNeedsDouble(rest string) bool {
	if rest == "" {
		return true
	}
	switch rest[0] {
	case '\\', 'x', 'u', 'U', 'n', 'r', 't':
		return true
	}
	r, size := utf8.DecodeRuneInString(rest)
	return r == utf8.RuneError && size <= 1 || r < 0x20 || r == 0x7f || hidden(r)
}

func writeHex(b *strings.Builder, kind byte, v uint32, digits int) {
	b.WriteByte('\\')
	b.WriteByte(kind)
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b.WriteByte(hex[v>>uint(shift)&0xf])
	}
}
