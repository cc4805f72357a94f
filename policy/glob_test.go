package policy

import (
	"path"
	"strings"
	"testing"
)

// The segment forms compared without path.Match agree with it.
func TestSegmentFormsAgreeWithPathMatch(t *testing.T) {
	pats := []string{"*", "*.pem", "id_*", ".env.*", "a*b", "ab*ab", "*ab", "ab*", ".env", "x", "[ab]*", "?x", `\*x`, "a*b*c"}
	names := []string{"", "a", "ab", "abab", "aab", "ab.pem", ".pem", "pem", "id_", "id_rsa", "xid_rsa", ".env", ".env.local", ".envx",
		"b", "x", "*x", "axb", "abc", "ab.ab", "aXbYc", "ac"}
	for _, p := range pats {
		f := compileSeg(p)
		for _, n := range names {
			want, _ := path.Match(p, n)
			if got := segMatch(p, f, n); got != want {
				t.Errorf("segMatch(%q, %q) = %v, path.Match says %v", p, n, got, want)
			}
		}
	}
	if compileSeg("*.pem").kind != formStar || compileSeg(".env").kind != formLiteral || compileSeg("[ab]*").kind != formMatch {
		t.Error("segment forms not compiled as expected")
	}
}

// FuzzGlobSegment: the compiled forms agree with path.Match on any
// pattern and name.
func FuzzGlobSegment(f *testing.F) {
	f.Add("*.pem", "key.pem")
	f.Add("id_*", "id_rsa")
	f.Add("a*b", "ab")
	f.Fuzz(func(t *testing.T, pat, name string) {
		if _, err := path.Match(pat, ""); err != nil {
			return
		}
		want, _ := path.Match(pat, name)
		if got := segMatch(pat, compileSeg(pat), name); got != want && !strings.Contains(pat+name, "/") {
			t.Fatalf("segMatch(%q, %q) = %v, path.Match says %v", pat, name, got, want)
		}
	})
}
