package recorder

import (
	"path"
	"regexp"
	"strings"
)

// Redacted replaces a secret value in command lines.
const Redacted = "[REDACTED]"

// Known credential shapes, replaced wherever they appear in an argument
// (also inside `bash -c "…"` scripts, where they sit mid-string).
var tokenPatterns = []*regexp.Regexp{
	regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`),
	regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{16,}`),                                        // OpenAI, Anthropic (sk-ant-…), Stripe
	regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`),   // GitHub
	regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`),                                   // AWS access key ids
	regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9\-]{10,}`),                                // Slack
	regexp.MustCompile(`\bglpat-[A-Za-z0-9_\-]{20,}`),                                     // GitLab
	regexp.MustCompile(`\bAIza[0-9A-Za-z_\-]{35}`),                                        // Google API keys
	regexp.MustCompile(`\bnpm_[A-Za-z0-9]{36}\b`),                                         // npm
	regexp.MustCompile(`\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}`), // JWTs
}

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

// isSecretName reports whether a flag or variable name announces a secret
// value: --api-key, --password, GH_TOKEN, AWS_SECRET_ACCESS_KEY,
// PGPASSWORD. Variables (loose) match on substrings, as people glue words
// together there; flags match on whole words, so --max-tokens 500 stays.
func isSecretName(name string, loose bool) bool {
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

// RedactString replaces credentials inside one string (an argument or a
// whole shell script).
func RedactString(s string) string {
	for _, re := range tokenPatterns {
		s = re.ReplaceAllString(s, Redacted)
	}
	s = urlPassword.ReplaceAllString(s, "${1}:"+Redacted+"@")
	s = authHeader.ReplaceAllString(s, "${1}"+Redacted)
	s = authScheme.ReplaceAllStringFunc(s, func(m string) string {
		sub := authScheme.FindStringSubmatch(m)
		// "basic authentication" in a prompt is prose, not a credential:
		// real tokens are long and carry digits.
		if len(sub[3]) < 12 || !strings.ContainsAny(sub[3], "0123456789") {
			return m
		}
		return sub[1] + sub[2] + Redacted
	})
	s = secretAssign.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretAssign.FindStringSubmatch(m)
		if !isSecretName(sub[1], true) || sub[2] == Redacted {
			return m
		}
		return sub[1] + "=" + Redacted
	})
	s = secretFlag.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretFlag.FindStringSubmatch(m)
		if !isSecretName(sub[1], false) || sub[3] == Redacted {
			return m
		}
		return sub[1] + sub[2] + Redacted
	})
	return s
}

// passwordOptions are short options that take a password for one
// command; elsewhere the same letter means something else (mkdir -p,
// claude -p "prompt", docker run -p 80:80).
var passwordOptions = map[string]string{
	"mysql":      "-p",
	"mysqldump":  "-p",
	"mysqladmin": "-p",
	"mariadb":    "-p",
	"sshpass":    "-p",
	"redis-cli":  "-a",
}

// loginCommands take -p PASSWORD after their "login" subcommand only
// (docker login -p x, but docker run -p 80:80).
var loginCommands = map[string]bool{"docker": true, "podman": true, "helm": true, "nerdctl": true, "buildah": true, "skopeo": true, "oras": true}

// promptsOnBareP: "mysql -p db" prompts for the password and db is a
// database name, not a secret; only the attached form carries one.
var promptsOnBareP = map[string]bool{"mysql": true, "mysqldump": true, "mysqladmin": true, "mariadb": true}

// RedactArgs returns argv with credentials replaced by [REDACTED]: known
// token shapes anywhere, passwords in URLs, NAME=value for secret names,
// the value of --password/--token-style flags (attached or next), the
// argument after "Bearer", and per-command password options (mysql -pX,
// sshpass -p X, docker login -p X, curl -u user:X). The input is not
// modified.
func RedactArgs(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = RedactString(a)
	}
	if len(argv) == 0 {
		return out
	}
	cmd := path.Base(argv[0])
	pwOpt := passwordOptions[cmd]
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		hasNext := i+1 < len(argv)
		if loginCommands[cmd] && a == "login" {
			pwOpt = "-p"
			continue
		}
		switch {
		case hasNext && strings.HasPrefix(a, "-") && !strings.Contains(a, "=") && isSecretName(a, false) && !strings.HasPrefix(argv[i+1], "-"):
			out[i+1] = Redacted
			i++
		case hasNext && (strings.EqualFold(a, "bearer") || strings.EqualFold(a, "basic")):
			out[i+1] = Redacted
			i++
		case pwOpt != "" && a == pwOpt && hasNext && !promptsOnBareP[cmd]:
			out[i+1] = Redacted
			i++
		case pwOpt != "" && strings.HasPrefix(a, pwOpt) && len(a) > len(pwOpt) && !strings.HasPrefix(a, "--"):
			out[i] = pwOpt + Redacted
		case (cmd == "curl" || cmd == "wget") && (a == "-u" || a == "--user" || a == "--proxy-user") && hasNext:
			if user, _, ok := strings.Cut(argv[i+1], ":"); ok {
				out[i+1] = user + ":" + Redacted
			}
			i++
		case cmd == "curl" && strings.HasPrefix(a, "-u") && len(a) > 2 && strings.Contains(a, ":"):
			user, _, _ := strings.Cut(a[2:], ":")
			out[i] = "-u" + user + ":" + Redacted
		}
	}
	return out
}

// CommandLine joins args into one line a shell would split back the same
// way (single quotes where needed).
func CommandLine(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_@%+=:,./-[]", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
