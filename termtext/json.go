package termtext

import (
	"unicode/utf16"
	"unicode/utf8"
)

// JSON rewrites the runes of encoded JSON that a terminal would act on or
// not show (what Escape would escape) as \u escapes, so that JSON printed
// to a terminal is safe there and still decodes to the run's strings.
// Outside strings JSON is ASCII, so every such rune is inside a string,
// where the escape means the same character. encoding/json already
// escapes C0 controls; what it leaves raw — DEL, C1 controls, bidi and
// other format characters — is escaped here.
func JSON(b []byte) []byte {
	var out []byte // nil until the first rewrite
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x7f {
			if out != nil {
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		raw := b[i : i+size]
		// encoding/json wrote valid UTF-8 (it replaces invalid bytes with
		// U+FFFD), so a rune is safe exactly when Escape keeps it.
		if r == utf8.RuneError && size <= 1 || Escape(string(raw)) != string(raw) {
			if out == nil {
				out = append(make([]byte, 0, len(b)+64), b[:i]...)
			}
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				out = appendU(appendU(out, r1), r2)
			} else {
				out = appendU(out, r)
			}
		} else if out != nil {
			out = append(out, raw...)
		}
		i += size
	}
	if out == nil {
		return b
	}
	return out
}

func appendU(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
