package redact

import (
	"strings"
	"testing"
)

// cleanAlphabet cannot spell any keyword of the credential table, a
// secret name, a URL with a password or a bearer credential, nor the
// fuzz redactor's values: a string made of it has no secret, and must
// come out unchanged.
const cleanAlphabet = "abcdefg0123456789/._ -:="

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(cleanAlphabet, r) {
			return r
		}
		return -1
	}, s)
}

// FuzzRedact: the redactor never panics, is idempotent, leaves no planted
// token of any shape in its output, and leaves strings without secrets
// unchanged. Seeds are real strings of runs: paths, command lines, DNS
// names, diffs.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"/tmp/aw-hostile-1/repo/dir-x/a.txt",
		"bash -c 'GH_TOKEN=x gh pr create && curl --token abc https://u:p@h/x'",
		"claude -p 'fix the flaky test' --model sonnet",
		"diff --git a/.env b/.env\n+KEY=value\n-----BEGIN PRIVATE KEY-----\nabc\n",
		"[REDACTED:github-token] [REDACTED] [REDACTED",
		"Authorization: Bearer abc123def456ghi789",
		"https://github.com/org/repo.git",
		"x.exfil.test",
		"",
	} {
		f.Add(s, s)
	}
	r := New([]string{droppedV, "Zq-dropped-Zq"})
	planted := []string{ghToken, antKey, awsID, npmToken, googleKey, droppedV,
		tok("gl"+"pat-", "gl", 20), tok("github"+"_pat_", "pat", 60), tok("hf"+"_", "hf", 34),
		"eyJ" + tok("", "j1", 20) + ".eyJ" + tok("", "j2", 30) + "." + tok("", "j3", 30)}
	f.Fuzz(func(t *testing.T, a, b string) {
		out := r.String(a)
		if again := r.String(out); again != out {
			t.Fatalf("not idempotent:\n in  %q\n out %q\n out²%q", a, out, again)
		}
		if c := clean(a); r.String(c) != c {
			t.Fatalf("a string without secrets changed: %q → %q", c, r.String(c))
		}
		for _, p := range planted {
			// A token is recognised at a boundary that is not a letter
			// or a digit (a dropped value anywhere).
			in := a + " " + p + "\n" + b
			if got := r.String(in); strings.Contains(got, p) {
				t.Fatalf("planted %q… survived in %q", p[:5], got)
			}
			if got := r.Content(in); strings.Contains(got, p) {
				t.Fatalf("planted %q… survived Content in %q", p[:5], got)
			}
			if got := r.Bytes([]byte(in)); strings.Contains(string(got), p) {
				t.Fatalf("planted %q… survived Bytes in %q", p[:5], got)
			}
		}
	})
}
