package redact

import (
	"regexp"
	"strings"
)

// Credentials found by their context rather than their shape: a password
// in a URL, the credential after Bearer, the value of a secret-named
// variable or flag. They are replaced by Marker.
var (
	// scheme://user:password@host → scheme://user:[REDACTED]@host
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@'"]*):([^@\s/'"]+)@`)
	// Authorization: Bearer x, Basic x, token x
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=\-]+)`)
	authHeader = regexp.MustCompile(`(?i)(authorization:\s*[A-Za-z]+\s+)(\S+)`)
	// NAME=value where NAME says it is a secret (ANTHROPIC_API_KEY=…).
	secretAssign = regexp.MustCompile(`\b([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|[^\s'";&|]+)`)
	// --password=x or --token x inside one string (bash -c scripts).
	secretFlag = regexp.MustCompile(`(--?[A-Za-z][A-Za-z0-9_\-]*)(=|[ \t]+)("[^"]*"|'[^']*'|[^\s'"\-][^\s'"]*)`)
	// "api_key": "x", api-key: x, x-api-key: x, secret_key = x — secrets
	// in JSON, YAML, INI files and HTTP headers, where the NAME=value
	// rule (no spaces) does not look. Content only.
	keyedSecret = regexp.MustCompile(`(?i)("?)([A-Za-z_][A-Za-z0-9_.\-]*)("?\s*[:=]\s*)("[^"\n]*"|'[^'\n]*'|[^\s,;}\]"']+)`)
)

// secretWords name a secret when they appear as a word of a flag or
// variable name (split at - and _).
var secretWords = map[string]bool{
	"password": true, "passwd": true, "passphrase": true, "pass": true, "pw": true,
	"token": true, "secret": true, "apikey": true, "credential": true, "credentials": true,
	"pat": true, "auth": false,
}

// notValueWords end a flag or variable name whose value is not the secret
// itself but where to find it (--password-file, GITHUB_TOKEN_PATH).
var notValueWords = map[string]bool{
	"file": true, "path": true, "stdin": true, "env": true, "cmd": true, "command": true,
	"helper": true, "type": true, "dir": true, "name": true, "id": true, "length": true,
	"limit": true, "count": true, "url": true, "var": true, "prompt": true,
}

// IsSecretName reports whether a flag or variable name announces a secret
// value: --api-key, --password, GH_TOKEN, AWS_SECRET_ACCESS_KEY,
// PGPASSWORD. Variables (loose) match on substrings, as people glue words
// together there; flags match on whole words, so --max-tokens 500 stays.
func IsSecretName(name string, loose bool) bool {
	name = strings.ToLower(strings.TrimLeft(name, "-"))
	words := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	if len(words) == 0 || notValueWords[words[len(words)-1]] {
		return false
	}
	for _, sub := range []string{"password", "passwd", "passphrase", "secret"} {
		if strings.Contains(name, sub) {
			return true
		}
	}
	if loose {
		for _, sub := range []string{"token", "apikey", "api_key", "credential", "private_key", "access_key"} {
			if strings.Contains(name, sub) {
				return true
			}
		}
	}
	for i, w := range words {
		if secretWords[w] {
			return true
		}
		if w == "key" && i > 0 {
			switch words[i-1] {
			case "api", "access", "private", "secret", "signing", "encryption", "master", "license":
				return true
			}
		}
	}
	return false
}

func isMarker(s string) bool { return strings.HasPrefix(s, "[REDACTED") }

// contextRules applies the context rules to one string. Each regexp runs
// only when the byte it needs is there: most strings (paths, names) have
// none of them.
func contextRules(s string) string {
	if strings.Contains(s, "://") {
		s = urlPassword.ReplaceAllStringFunc(s, func(m string) string {
			sub := urlPassword.FindStringSubmatch(m)
			if isMarker(sub[2]) {
				return m
			}
			return sub[1] + ":" + Marker + "@"
		})
	}
	if l := strings.ToLower(s); strings.Contains(l, "bearer") || strings.Contains(l, "basic") || strings.Contains(l, "authorization") {
		s = authHeader.ReplaceAllStringFunc(s, func(m string) string {
			sub := authHeader.FindStringSubmatch(m)
			if isMarker(sub[2]) {
				return m
			}
			return sub[1] + Marker
		})
		s = authScheme.ReplaceAllStringFunc(s, func(m string) string {
			sub := authScheme.FindStringSubmatch(m)
			// "basic authentication" in a prompt is prose, not a
			// credential: real tokens are long and carry digits.
			if len(sub[3]) < 12 || !strings.ContainsAny(sub[3], "0123456789") {
				return m
			}
			return sub[1] + sub[2] + Marker
		})
	}
	if strings.IndexByte(s, '=') >= 0 {
		s = secretAssign.ReplaceAllStringFunc(s, func(m string) string {
			sub := secretAssign.FindStringSubmatch(m)
			if !IsSecretName(sub[1], true) || isMarker(strings.Trim(sub[2], `"'`)) {
				return m
			}
			return sub[1] + "=" + Marker
		})
	}
	if strings.IndexByte(s, '-') >= 0 {
		s = secretFlag.ReplaceAllStringFunc(s, func(m string) string {
			sub := secretFlag.FindStringSubmatch(m)
			if !IsSecretName(sub[1], false) || isMarker(strings.Trim(sub[3], `"'`)) {
				return m
			}
			return sub[1] + sub[2] + Marker
		})
	}
	return s
}

// keyedRule replaces the value of name: value pairs whose name says
// secret.
func keyedRule(s string) string {
	if strings.IndexByte(s, ':') < 0 && strings.IndexByte(s, '=') < 0 {
		return s
	}
	return keyedSecret.ReplaceAllStringFunc(s, func(m string) string {
		sub := keyedSecret.FindStringSubmatch(m)
		name, val := sub[2], strings.Trim(sub[4], `"'`)
		if val == "" || isMarker(val) || !IsSecretName(name, false) && !strings.EqualFold(name, "x-api-key") {
			return m
		}
		q := ""
		if strings.HasPrefix(sub[4], `"`) || strings.HasPrefix(sub[4], "'") {
			q = sub[4][:1]
		}
		return sub[1] + name + sub[3] + q + Marker + q
	})
}
