package redact

import (
	"slices"
	"strings"

	"github.com/agentwatch/agentwatch/secretscan"
)

// Dropped is one environment variable the policy kept from the child.
type Dropped struct{ Name, Value string }

// MinValue is the shortest dropped value that is ever redacted: replacing
// every "true" or "dev" in every path and command line protects nothing,
// and tokens are far longer.
const MinValue = 8

// Secrets returns the dropped values to redact wherever they appear. A
// dropped variable is not necessarily a secret (CI=true,
// GITHUB_REPOSITORY=org/repo, GITHUB_HEAD_REF=fix/flaky-test,
// GITHUB_SHA=…), and blanking such a value would blank the repository
// URL, the branch or a path the user groups runs by. So a value of at
// least MinValue bytes is redacted when
//   - it holds a credential by its shape (secretscan's table, a password
//     in a URL): always, even when it also appears in public;
//   - otherwise, only when it is not public — not a substring of one of
//     public (the workspace path, the repository URL, the branch and
//     commit taken before the child started, which the child could not
//     choose) and not an absolute path or path list — and either its name
//     says secret (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD) or
//     it looks random (a run of 16+ letters and digits mixing both, with
//     the entropy of a key).
//
// Everything else is an identifier and stays readable.
func Secrets(dropped []Dropped, public []string) []string {
	var out []string
	for _, d := range dropped {
		v := d.Value
		if len(v) < MinValue || markerRE().MatchString(v) {
			continue
		}
		if _, n := secretscan.RedactString(v); n > 0 || contextRules(v) != v {
			out = append(out, v)
			continue
		}
		if isPathList(v) || isPublic(v, public) {
			continue
		}
		if IsSecretName(d.Name, true) || looksRandom(v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func isPublic(v string, public []string) bool {
	for _, p := range public {
		if p != "" && strings.Contains(p, v) {
			return true
		}
	}
	return false
}

// isPathList reports whether v is an absolute path or a ':'-separated list
// of them, with no blanks (a command line with arguments is not a path).
func isPathList(v string) bool {
	for _, part := range strings.Split(v, ":") {
		if !strings.HasPrefix(part, "/") || strings.ContainsAny(part, " \t\n") {
			return false
		}
	}
	return true
}

// minRandomRun and minRandomEntropy say when a value looks like a key: a
// run of letters and digits at least this long, mixing both, at least
// this many bits per character (random base62 of 16 characters measures
// about 3.8; words and slugs are cut into short runs by their dashes).
const (
	minRandomRun     = 16
	minRandomEntropy = 3.3
)

func looksRandom(v string) bool {
	longest := ""
	for _, run := range strings.FieldsFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		if len(run) > len(longest) {
			longest = run
		}
	}
	if len(longest) < minRandomRun || !strings.ContainsAny(longest, "0123456789") ||
		strings.IndexFunc(longest, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) < 0 {
		return false
	}
	return secretscan.Entropy(longest) >= minRandomEntropy
}
