package supervisor

import (
	"bytes"
	"testing"
)

func TestTTYFilter(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"text", "hello\tworld\r\n", "hello\tworld\r\n"},
		{"utf-8", "héllo — ✓\n", "héllo — ✓\n"},
		{"sgr colour kept", "\x1b[1;31mred\x1b[0m\n", "\x1b[1;31mred\x1b[0m\n"},
		{"osc 52 clipboard (BEL)", "a\x1b]52;c;cm0gLXJmIH4K\x07b", "ab"},
		{"osc title (ST)", "a\x1b]0;owned\x1b\\b", "ab"},
		{"dcs", "a\x1bPq#0;2;0;0;0\x1b\\b", "ab"},
		{"apc", "a\x1b_payload\x1b\\b", "ab"},
		{"title report query", "a\x1b[21tb", "ab"},
		{"device attributes query", "a\x1b[cb", "ab"},
		{"screen clear", "a\x1b[2J\x1b[Hb", "ab"},
		{"private mode", "a\x1b[?1049hb", "ab"},
		{"sgr with private marker dropped", "a\x1b[>4;2mb", "ab"},
		{"reset terminal", "a\x1bcb", "ab"},
		{"bell and other C0", "a\x07\x0e\x0f\x00b", "ab"},
		{"C1 CSI as UTF-8", "a\u009b2Jb", "a2Jb"},
		{"C1 OSC as UTF-8 then text", "a\u009d0;x\u009cb", "a0;xb"},
		{"lead byte C2 kept for Latin-1", "caf\u00e9 \u00a9", "caf\u00e9 \u00a9"},
		{"unterminated osc swallows", "a\x1b]52;c;AAAA", "a"},
		{"over-long csi dropped", "a\x1b[" + string(bytes.Repeat([]byte("1;"), 40)) + "mb", "ab"},
		{"DEL", "a\x7fb", "ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and one byte per Write: the state crosses writes.
			for _, chunk := range []int{len(tc.in), 1} {
				var out bytes.Buffer
				f := &ttyFilter{w: &out}
				in := []byte(tc.in)
				for len(in) > 0 {
					n := min(chunk, len(in))
					if m, err := f.Write(in[:n]); err != nil || m != n {
						t.Fatalf("Write = %d, %v", m, err)
					}
					in = in[n:]
				}
				if out.String() != tc.want {
					t.Errorf("chunk %d: got %q, want %q", chunk, out.String(), tc.want)
				}
			}
		})
	}
}
