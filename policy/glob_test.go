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

// The base-name index gives the same first match as the list one by one,
// on the built-in lists and on paths made to hit and miss them; a list
// that changed after indexing is matched one by one.
func TestGlobIndexAgreesWithTheList(t *testing.T) {
	ws, home := "/w/repo", "/home/dev"
	lists := [][]Glob{persistenceGlobs, builtinProtectGlobs, Default().Secrets, Default().Protect,
		mustGlobs([]string{"**/a", "b/*", "**/a", "x/**", "*.pem", "a", "**"})}
	var paths []string
	for _, base := range []string{ws, home, "/", "/etc", ws + "/sub", home + "/.config/git"} {
		for _, name := range []string{"a", ".env", "id_rsa", "key.pem", ".bashrc", "config", "hooks/pre-commit", ".git/hooks/x", "x/y", ".", "..", ""} {
			paths = append(paths, base+"/"+name, base+"//"+name+"/", base+"/./"+name)
		}
	}
	matched := 0
	for li, globs := range lists {
		x := newGlobIndex(globs)
		for _, p := range paths {
			got, want := matchIndexed(x, globs, p, ws, home), matchAny(globs, p, ws, home)
			if got != want {
				t.Errorf("list %d, %q: indexed %d, one by one %d", li, p, got, want)
			}
			if want >= 0 {
				matched++
			}
		}
	}
	if matched < 20 {
		t.Errorf("only %d of the paths matched: the test does not exercise matching", matched)
	}
	globs := mustGlobs([]string{"**/a"})
	x := newGlobIndex(globs)
	grown := append(globs[:1:1], MustGlob("**/b"))
	if matchIndexed(x, grown, "/w/b", "/w", "") != 1 {
		t.Error("a stale index was used")
	}
}
