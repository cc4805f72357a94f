package recorder

import (
	"path"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/redact"
)

// Redacted replaces a secret value in command lines.
const Redacted = redact.Marker

// RedactString replaces credentials inside one string (an argument or a
// whole shell script): the credential table's shapes and the context
// rules of package redact (no dropped values: those are the run's, see
// Recorder.Redactor).
func RedactString(s string) string {
	return (*redact.Redactor)(nil).String(s)
}

func isSecretName(name string, loose bool) bool { return redact.IsSecretName(name, loose) }

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

// Redactor is the run's redactor: the dropped values the supervisor chose
// (RunInfo.RedactValues, redact.Secrets), the credential table and the
// context rules. The supervisor redacts the stored diff with it, so the
// diff and the trace agree.
func (r *Recorder) Redactor() *redact.Redactor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.redactor()
}

// redactor is Redactor for code that holds r.mu (Finish and what it
// calls: a list of paths kept beside the trace must be redacted exactly
// like file.path).
func (r *Recorder) redactor() *redact.Redactor {
	if r.red == nil {
		r.red = redact.New(r.info.RedactValues)
	}
	return r.red
}

// RedactAlso adds values to redact wherever they appear (the secrets the
// end-of-run scan found, which may also sit in an argument or a path
// without the context that found them). Values shorter than
// redact.MinValue bytes are ignored. Call it before Finish.
func (r *Recorder) RedactAlso(values []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.redactAlso(values)
}

func (r *Recorder) redactAlso(values []string) {
	for _, v := range values {
		if len(v) >= redact.MinValue {
			r.info.RedactValues = append(r.info.RedactValues, v)
		}
	}
	r.red, r.redactPath = nil, nil // built again with the new values
}

// commandArgs is argv as a span keeps it: credentials redacted and, unless
// full capture is on at t, the prompt given on an agent's command line
// replaced by its length and digest (PromptArgs).
func (r *Recorder) commandArgs(argv []string, t time.Time) []string {
	return PromptArgs(RedactArgs(argv), r.info.Capture.Active(t))
}
