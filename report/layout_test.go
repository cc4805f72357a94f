package report

import (
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/termtext"
)

func TestCells(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{`\x1b]52`, 7},      // an escape is as wide as it is written
		{"設計メモ", 8},         // East Asian wide: 2 each
		{"ｱｲｳ", 3},          // halfwidth katakana: 1 each
		{"e\u0301", 1},      // a combining accent takes no cell
		{"├── … → ✗ ⚠", 11}, // the tree's glyphs: 1 each
		{`C:\dir`, 6},       // a backslash that is no escape
		{termtext.Escape("\\"), 2},
	} {
		if got := cells(tt.s); got != tt.want {
			t.Errorf("cells(%q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}

// units splits escaped text into its display units.
func units(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		u := unitLen(s[i:])
		out = append(out, s[i:i+u])
		i += u
	}
	return out
}

// A cut fits, ends in "…" when it cut, and never splits an escape: what
// it keeps is whole units of the input, from its start (and, in the
// middle cut, from its end).
func TestCutsKeepEscapesWhole(t *testing.T) {
	raw := "pwn\x1b]52;c;ZWNo\x07 \r\n\u202e\u009b 設計メモ \xff\\x end"
	s := termtext.Escape(raw)
	in := units(s)
	for w := 0; w <= cells(s)+1; w++ {
		for name, cut := range map[string]func(string, int) string{"end": cutEnd, "middle": cutMiddle} {
			got := cut(s, w)
			if c := cells(got); c > w {
				t.Errorf("%s(%d) = %q: %d cells", name, w, got, c)
			}
			if w >= cells(s) {
				if got != s {
					t.Errorf("%s(%d) = %q, want it whole", name, w, got)
				}
				continue
			}
			if w > 0 && !strings.Contains(got, ellipsis) {
				t.Errorf("%s(%d) = %q: cut without …", name, w, got)
			}
			head, tail, _ := strings.Cut(got, ellipsis)
			hu, tu := units(head), units(tail)
			if len(hu) > len(in) || strings.Join(in[:len(hu)], "") != head {
				t.Errorf("%s(%d) = %q: the start is not whole units of %q", name, w, got, s)
			}
			if len(tu) > len(in) || strings.Join(in[len(in)-len(tu):], "") != tail {
				t.Errorf("%s(%d) = %q: the end is not whole units of %q", name, w, got, s)
			}
		}
	}
}

func TestWrapCells(t *testing.T) {
	got := wrapCells("netwatch: dns proxy disabled; fswatch: inotify limit", 20, 4)
	want := []string{"netwatch: dns proxy", "disabled; fswatch:", "inotify limit"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("wrap = %q, want %q", got, want)
	}
	// No space: a hard break between units, never inside \x1b; at most
	// rows lines, the last cut.
	s := termtext.Escape(strings.Repeat("\x1b", 30))
	got = wrapCells(s, 10, 3)
	if len(got) != 3 || got[0] != `\x1b\x1b` || !strings.HasSuffix(got[2], ellipsis) {
		t.Errorf("wrap = %q", got)
	}
	for _, l := range got {
		if cells(l) > 10 {
			t.Errorf("line %q wider than 10", l)
		}
	}
}

func TestCutSegs(t *testing.T) {
	segs := []seg{{text: "├── "}, {text: "name"}, {text: "  "}, {text: "exit 1 ✗", color: sgrRed}}
	for w := 1; w < 20; w++ {
		got := cutSegs(segs, w)
		if c := segsCells(got); c > w {
			t.Errorf("cutSegs(%d) = %q: %d cells", w, got, c)
		}
		if w < segsCells(segs) && !strings.HasSuffix(got[len(got)-1].text, ellipsis) {
			t.Errorf("cutSegs(%d) = %q: cut without …", w, got)
		}
	}
	if got := paint(cutSegs(segs, 14), true); got != "├── name  \x1b[31mexi…\x1b[0m" {
		t.Errorf("painted cut = %q", got)
	}
}
