package report

// Terminal layout for `show`: the width of escaped text in terminal
// cells, cutting it to fit, and colour. Everything here works on text that
// termtext.Escape already made safe: a cut never splits one of its escapes
// (\x1b, \u202e, \n, \\), so a shortened label still reads back to a
// prefix (or a prefix and a suffix) of the run's string, and the only ESC
// bytes of the output are the SGR codes below, added after escaping.

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// The SGR codes show uses, and nothing else: colour marks what needs a
// look (alerts, denies, failures) and dims what rarely does (durations).
const (
	sgrRed    = "\x1b[31m"
	sgrYellow = "\x1b[33m"
	sgrDim    = "\x1b[2m"
	sgrReset  = "\x1b[0m"
)

// ellipsis marks text that was cut.
const ellipsis = "…"

// unitLen is the length in bytes of the first display unit of escaped
// text s (not empty): one of termtext's escapes, or one rune.
func unitLen(s string) int {
	if s[0] == '\\' && len(s) > 1 {
		switch s[1] {
		case '\\', 'n', 'r', 't':
			return 2
		case 'x':
			return hexUnit(s, 2)
		case 'u':
			return hexUnit(s, 4)
		case 'U':
			return hexUnit(s, 8)
		}
		return 1
	}
	_, n := utf8.DecodeRuneInString(s)
	return n
}

// hexUnit is the length of \x, \u or \U and its digits at the start of
// s; 1 (the backslash alone) when the digits are not there.
func hexUnit(s string, digits int) int {
	if len(s) < 2+digits {
		return 1
	}
	for i := 2; i < 2+digits; i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return 1
		}
	}
	return 2 + digits
}

// unitCells is how many terminal cells a display unit takes.
func unitCells(u string) int {
	if u[0] == '\\' {
		return len(u) // ASCII
	}
	return runeCells(rune0(u))
}

func rune0(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

// runeCells is a rune's width on a terminal: 2 for East Asian wide and
// fullwidth characters, 0 for combining marks, 1 for the rest. (Escaped
// text holds no control characters; emoji presentation sequences and
// ambiguous-width characters count as their first rune and as 1, as most
// terminals draw them in a Western locale.)
func runeCells(r rune) int {
	switch {
	case r < 0x20 || r == 0x7f:
		return 0
	case r < 0x300:
		return 1
	case unicode.In(r, unicode.Mn, unicode.Me):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// cells is the width of escaped text s in terminal cells.
func cells(s string) int {
	n := 0
	for i := 0; i < len(s); {
		u := unitLen(s[i:])
		n += unitCells(s[i : i+u])
		i += u
	}
	return n
}

// cutEnd shortens escaped text to at most w cells, ending in "…" when it
// cut.
func cutEnd(s string, w int) string {
	if cells(s) <= w {
		return s
	}
	return cutEllipsis(s, w)
}

// cutEllipsis is the longest start of s that fits in w-1 cells, and "…"
// (nothing when w is 0).
func cutEllipsis(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n, i := 0, 0
	for i < len(s) {
		u := unitLen(s[i:])
		c := unitCells(s[i : i+u])
		if n+c > w-1 {
			break
		}
		n, i = n+c, i+u
	}
	return s[:i] + ellipsis
}

// cutMiddle shortens escaped text to at most w cells by replacing its
// middle with "…": the end of a path (the file name) or of an address
// (the port) stays.
func cutMiddle(s string, w int) string {
	if cells(s) <= w {
		return s
	}
	if w <= 2 {
		return cutEnd(s, w)
	}
	var units []string
	for i := 0; i < len(s); {
		u := unitLen(s[i:])
		units = append(units, s[i:i+u])
		i += u
	}
	budget := w - 1
	head, n := 0, 0
	for head < len(units) && n+unitCells(units[head]) <= budget/2 {
		n += unitCells(units[head])
		head++
	}
	tail := len(units)
	for tail > head && n+unitCells(units[tail-1]) <= budget {
		n += unitCells(units[tail-1])
		tail--
	}
	return strings.Join(units[:head], "") + ellipsis + strings.Join(units[tail:], "")
}

// wrapCells breaks escaped text into lines of at most w cells, at a space
// when there is one in the second half of the line, else anywhere between
// two units; at most rows lines, the last one cut with "…".
func wrapCells(s string, w, rows int) []string {
	var out []string
	for s != "" {
		if len(out) == rows-1 || cells(s) <= w {
			out = append(out, cutEnd(s, w))
			break
		}
		n, i, space := 0, 0, -1
		for i < len(s) {
			u := unitLen(s[i:])
			c := unitCells(s[i : i+u])
			if n+c > w {
				break
			}
			if s[i] == ' ' && n >= w/2 {
				space = i + 1
			}
			n, i = n+c, i+u
		}
		if i == 0 { // a unit wider than the line
			out = append(out, cutEnd(s, w))
			break
		}
		if space > 0 && i < len(s) {
			i = space
		}
		out = append(out, strings.TrimRight(s[:i], " "))
		s = s[i:]
	}
	return out
}

// seg is a piece of an output line: escaped text and its colour ("" for
// none).
type seg struct {
	text, color string
}

func segsCells(segs []seg) int {
	n := 0
	for _, s := range segs {
		n += cells(s.text)
	}
	return n
}

// cutSegs shortens a line to w cells at its end, the last piece kept
// ending in "…"; the guarantee under every other way of fitting a line.
func cutSegs(segs []seg, w int) []seg {
	if w <= 0 || segsCells(segs) <= w {
		return segs
	}
	var out []seg
	n := 0
	for _, sg := range segs {
		c := cells(sg.text)
		if n+c <= w-1 {
			out = append(out, sg)
			n += c
			continue
		}
		sg.text = cutEllipsis(sg.text, w-n)
		out = append(out, sg)
		return out
	}
	return out
}

// paint joins a line's pieces, with their colours when color is set.
func paint(segs []seg, color bool) string {
	var b strings.Builder
	for _, sg := range segs {
		if color && sg.color != "" && sg.text != "" {
			b.WriteString(sg.color)
			b.WriteString(sg.text)
			b.WriteString(sgrReset)
			continue
		}
		b.WriteString(sg.text)
	}
	return b.String()
}
