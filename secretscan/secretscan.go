// Package secretscan finds credentials in what a run added: the added
// lines of a unified diff (Scan) and files written outside git (ScanFile),
// with a table of built-in rules. The table is agentwatch's one definition
// of a credential's shape: the redactor (package redact) removes what it
// matches from every sink (Redact, RedactString), the scan reports it.
//
// A finding names the rule, the file and the line, and a fingerprint (a
// truncated sha256 of the secret, to dedupe the same secret seen twice).
// It never holds the secret, nor any prefix or part of it: nothing this
// package returns can leak what it found. It does no I/O and keeps no
// state between calls.
//
// The fingerprint is unkeyed, so it is stable across runs; the price is
// that a short, guessable password (passwords in URLs may be three
// characters) could be confirmed by hashing guesses. Every other rule
// requires a long, high-entropy or structured value.
package secretscan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Bounds on the work and the result, so a huge diff still gives a result.
const (
	MaxFindings = 1000      // findings kept in Result.Findings; Counts counts all
	MaxLineLen  = 64 << 10  // bytes of one line scanned (minified bundles)
	MaxScanned  = 256 << 20 // bytes of input scanned; the rest is skipped and Truncated set
	// MinGenericEntropy is the Shannon entropy, in bits per character,
	// a value assigned to a secret-named key must reach (with at least
	// MinGenericLen characters) to count as a secret. Random base62,
	// base64 or hex strings of 16+ characters measure 3.6–5; repeated
	// and patterned values (aaaa…, abcabc…, changeme-changeme) stay
	// below. It filters stand-ins, it does not prove randomness: a
	// hard-coded "password12345678" passes, and is meant to. The key-name
	// and value-shape checks carry the rest (the tests pin both sides).
	MinGenericEntropy = 3.5
	MinGenericLen     = 16
	// minTokenEntropy rejects structured tokens made of one repeated
	// character or a short pattern (ghp_aaaa…, documentation stand-ins).
	minTokenEntropy = 3.0
	fingerprintHex  = 16 // 64 bits of sha256, hex
)

// Finding is one secret found. It never contains the secret.
type Finding struct {
	Rule        string
	File        string // repository-relative for a diff; the path given to ScanFile
	Line        int    // 1-based, in the new version of the file
	Fingerprint string // first 16 hex digits of sha256(secret)
}

// Location is "file:line (rule)", the form span attributes use.
func (f Finding) Location() string {
	return fmt.Sprintf("%s:%d (%s)", f.File, f.Line, f.Rule)
}

// Result is what one or more scans found.
type Result struct {
	Findings    []Finding      // in input order, at most MaxFindings
	Counts      map[string]int // findings per rule, including those past MaxFindings
	Total       int            // all findings
	Files       int            // files scanned (diff entries with added lines, plus ScanFile calls)
	Lines       int            // lines scanned
	BinaryFiles int            // diff entries skipped as binary
	Truncated   bool           // MaxScanned or MaxFindings was reached
}

// RuleCounts is Counts as sorted "rule:count" strings.
func (r *Result) RuleCounts() []string {
	out := make([]string, 0, len(r.Counts))
	for rule, n := range r.Counts {
		out = append(out, rule+":"+strconv.Itoa(n))
	}
	sort.Strings(out)
	return out
}

// Unique counts distinct fingerprints among the kept findings.
func (r *Result) Unique() int {
	seen := make(map[string]bool, len(r.Findings))
	for _, f := range r.Findings {
		seen[f.Fingerprint] = true
	}
	return len(seen)
}

// Merge adds o's findings and counts to r.
func (r *Result) Merge(o Result) {
	for _, f := range o.Findings {
		if len(r.Findings) >= MaxFindings {
			r.Truncated = true
			break
		}
		r.Findings = append(r.Findings, f)
	}
	for rule, n := range o.Counts {
		if r.Counts == nil {
			r.Counts = make(map[string]int)
		}
		r.Counts[rule] += n
	}
	r.Total += o.Total
	r.Files += o.Files
	r.Lines += o.Lines
	r.BinaryFiles += o.BinaryFiles
	r.Truncated = r.Truncated || o.Truncated
}

// Rule names.
const (
	RuleAWSAccessKey     = "aws-access-key-id"
	RuleAWSSecretKey     = "aws-secret-access-key"
	RuleGCPServiceKey    = "gcp-service-account-key"
	RuleAzureStorageKey  = "azure-storage-key"
	RuleGitHubToken      = "github-token"
	RuleGitLabToken      = "gitlab-token"
	RuleSlackToken       = "slack-token"
	RuleSlackWebhook     = "slack-webhook"
	RuleStripeKey        = "stripe-live-key"
	RuleAnthropicKey     = "anthropic-api-key"
	RuleOpenAIKey        = "openai-api-key"
	RulePrivateKey       = "private-key"
	RuleJWT              = "jwt"
	RuleURLPassword      = "url-password"
	RuleGenericAssignKey = "generic-secret-assignment"
	RuleGoogleAPIKey     = "google-api-key"
	RuleNPMToken         = "npm-token"
	RuleHuggingFaceToken = "huggingface-token"
)

// Token boundaries. A token glued to a word by an underscore or a dash
// (dir_ghp_…, FOO-AKIA…, a file name) is still a token: \b would miss
// the underscore case, so the boundary is "not a letter or digit". The
// boundary character is matched outside the secret's group.
const (
	pre  = `(?:^|[^A-Za-z0-9])`
	post = `(?:[^A-Za-z0-9]|$)`
)

// rule is one row of the table. The secret is the regexp's first group
// (or group, when set; the whole match when there is none).
type rule struct {
	name     string
	keywords []string // lower-case; the line must contain one before the regexp runs
	re       *regexp.Regexp
	// minEntropy of the secret, bits per character (0: no check).
	minEntropy float64
	// check, when set, accepts or rejects a match: the full submatches.
	check func(m []string) bool
	// block: the match opens a PEM block; the secret is the block's body,
	// read from the following lines.
	block bool
	// group holding the secret when it is not the first.
	group int
	// normalize, when set, turns the matched secret into the form that is
	// fingerprinted (a PEM body without its armour, so the same key in a
	// .pem file and in a service-account JSON dedupes).
	normalize func(string) string
}

// RuleNames lists the name of every rule of the table (what
// "[REDACTED:rule]" may name).
func RuleNames() []string {
	names := make([]string, len(rules()))
	for i, r := range rules() {
		names[i] = r.name
	}
	return names
}

// rules is the table, tried in order on each line (compiled on first
// use: the run's init process, the same binary, never needs it). A later rule does not
// report a match that overlaps an earlier rule's (a GCP key's PEM block
// is one finding, not two; sk-ant-… is Anthropic, not OpenAI).
var rules = sync.OnceValue(func() []rule {
	return []rule{
		{name: RuleGCPServiceKey, keywords: []string{"private_key"},
			re:        regexp.MustCompile(`"private_key"\s*:\s*"(-----BEGIN [A-Z ]*PRIVATE KEY-----[^"]{40,})"`),
			normalize: pemBody},
		{name: RulePrivateKey, keywords: []string{"private key"}, block: true,
			re: regexp.MustCompile(`-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----`)},
		{name: RuleAWSAccessKey, keywords: []string{"akia", "asia", "abia", "acca"}, minEntropy: minTokenEntropy,
			// The ids are base32 (A-Z, 2-7); the class is wider so that a
			// redaction never hangs on it, the entropy keeps the scan quiet.
			re: regexp.MustCompile(pre + `((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})` + post)},
		{name: RuleAWSSecretKey, keywords: []string{"aws"}, minEntropy: MinGenericEntropy,
			re: regexp.MustCompile(`(?i)aws.{0,24}(?:secret|sk)[a-z_\-]{0,16}["']?\s*(?::=|=>|=|:)\s*["']?([A-Za-z0-9/+]{40})(?:["'\s]|$)`)},
		{name: RuleAzureStorageKey, keywords: []string{"accountkey"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(`(?i)AccountKey=([A-Za-z0-9+/]{86}==)`)},
		{name: RuleGitHubToken, keywords: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})`)},
		{name: RuleGitLabToken, keywords: []string{"glpat-"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `(glpat-[A-Za-z0-9_\-]{20,})`)},
		{name: RuleSlackWebhook, keywords: []string{"hooks.slack.com"},
			re: regexp.MustCompile(`(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_]{8,}/[A-Za-z0-9_]{8,}/[A-Za-z0-9_]{16,})`)},
		{name: RuleSlackToken, keywords: []string{"xox"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `(xox[abprse]-[0-9]{6,}-[A-Za-z0-9\-]{10,})`)},
		{name: RuleStripeKey, keywords: []string{"_live_"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `((?:sk|rk)_live_[A-Za-z0-9]{20,})`)},
		{name: RuleAnthropicKey, keywords: []string{"sk-ant-"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `(sk-ant-[A-Za-z0-9_\-]{16,})`)},
		{name: RuleOpenAIKey, keywords: []string{"sk-"}, minEntropy: MinGenericEntropy,
			re: regexp.MustCompile(pre + `(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,})`),
			// sk-this-is-not-a-real-key-just-text: words joined by dashes.
			check: func(m []string) bool { return hasDigit(m[1]) }},
		{name: RuleJWT, keywords: []string{"eyj"},
			re: regexp.MustCompile(pre + `(eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{16,})`)},
		{name: RuleGoogleAPIKey, keywords: []string{"aiza"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `(AIza[0-9A-Za-z_\-]{35})`)},
		{name: RuleNPMToken, keywords: []string{"npm_"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `(npm_[A-Za-z0-9]{36})` + post)},
		{name: RuleHuggingFaceToken, keywords: []string{"hf_"}, minEntropy: minTokenEntropy,
			re: regexp.MustCompile(pre + `(hf_[A-Za-z0-9]{34,})`)},
		{name: RuleURLPassword, keywords: []string{"://"},
			re: regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^:/\s@'"<>]{1,64}:([^@/\s'"<>]{3,128})@[A-Za-z0-9.\-]+`)},
		{name: RuleGenericAssignKey, keywords: []string{"secret", "token", "passw", "pwd", "key", "credential"}, minEntropy: MinGenericEntropy,
			re:    regexp.MustCompile(`([A-Za-z][A-Za-z0-9_.\-]{1,63})["']?\s*(?::=|=>|=|:)\s*["'` + "`" + `]?([^\s"'` + "`" + `,;)(\]\[{}]{16,256})`),
			group: 2, check: genericCheck},
	}
})

// secretName matches key names whose value is the secret itself: the
// name ends in one of these words (DB_PASSWORD, apiKey, client_secret),
// so tokenizer_path, password_file and secret_name do not.
var secretName = regexp.MustCompile(`(?i)(?:secret|token|passw(?:or)?d|pwd|api[_\-.]?key|access[_\-.]?key|private[_\-.]?key|secret[_\-.]?key|signing[_\-.]?key|encryption[_\-.]?key|master[_\-.]?key|credentials?)$`)

// wordsRE is an identifier or slug made of lower-case words
// (sk-this-is-not-a-key, feature_flag_name): prose, not a secret. A
// dash-joined passphrase is missed by this; the price of quiet reviews.
var wordsRE = regexp.MustCompile(`^[a-z]+(?:[\-_.][a-z]+)+$`)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// genericCheck accepts NAME = value only for a secret name and a value
// that is not a reference, a path, an identifier or an obvious stand-in.
// A bare UUID is taken as an identifier (tenant, client, resource ids
// far outnumber UUID-shaped secrets).
func genericCheck(m []string) bool {
	name, value := m[1], m[2]
	if !secretName.MatchString(name) {
		return false
	}
	switch {
	case uuidRE.MatchString(value), wordsRE.MatchString(value),
		strings.HasPrefix(value, "/"), strings.HasPrefix(value, "./"), strings.HasPrefix(value, "~/"),
		strings.Contains(value, "://"),
		strings.HasPrefix(value, "$"), strings.HasPrefix(value, "%"),
		strings.HasPrefix(value, "env."), strings.HasPrefix(value, "process.env"),
		strings.HasPrefix(value, "os.environ"), strings.HasPrefix(value, "secrets."):
		return false
	}
	return true
}

// placeholders mark documentation stand-ins; a secret containing one is
// not reported (AWS's own example key ends in EXAMPLE).
var placeholders = []string{"example", "placeholder", "changeme", "xxxxxx", "your_", "your-", "yourkey", "redacted", "dummy", "sample", "<", ">", "${", "{{", "$(", "*****", "...."}

func isPlaceholder(s string) bool {
	l := strings.ToLower(s)
	for _, p := range placeholders {
		if strings.Contains(l, p) {
			return true
		}
	}
	return false
}

// Entropy is the Shannon entropy of s in bits per character.
func Entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h := 0.0
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// pemArmour is a PEM header or footer line.
var pemArmour = regexp.MustCompile(`-----(?:BEGIN|END) [A-Z ]*-----`)

// pemBody is the base64 body of a PEM block written with literal or
// escaped newlines: armour, "\n" escapes and whitespace removed.
func pemBody(s string) string {
	s = pemArmour.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, `\n`, "")
	return strings.Join(strings.Fields(s), "")
}

func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])[:fingerprintHex]
}

// scanner holds the state of one scan.
type scanner struct {
	res     Result
	scanned int
	// open PEM block: the finding waits for its body to fingerprint it.
	block     *Finding
	blockFile string
	blockBody strings.Builder
	blockEnd  bool
}

func newScanner() *scanner { return &scanner{res: Result{Counts: map[string]int{}}} }

// ScanFile scans every line of a file written outside git (one that
// matches the policy's files.secrets, say). A binary file is counted and
// skipped.
func ScanFile(path string, data []byte) Result {
	s := newScanner()
	if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
		// Binary, as git decides it (a NUL in the first 8000 bytes).
		s.res.BinaryFiles = 1
		return s.res
	}
	s.res.Files = 1
	line := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		line++
		if !s.line(path, line, l) {
			break
		}
	}
	s.closeBlock()
	return s.res
}

// maxFileBytes bounds one ScanRun file read: credentials files are small,
// and a huge file written to a secret path is not worth the time.
const maxFileBytes = 4 << 20

// ScanRun is the end-of-run scan: the diff's added lines, plus each path
// in written (absolute; the paths matching files.secrets that the run
// wrote) that is not already an entry of the diff — such files (.env,
// ~/.aws/credentials) are usually ignored by git or outside the
// workspace. root is the repository root the diff's paths are relative
// to. read is injected (os.ReadFile, or a bounded reader) so this package
// stays free of I/O; a path it cannot read, or one over 4 MiB, is
// skipped. diff may be nil (no git evidence).
func ScanRun(diff []byte, root string, written []string, read func(path string) ([]byte, error)) Result {
	res, inDiff := scanDiff(diff)
	root = strings.TrimSuffix(root, "/")
	for _, p := range written {
		if root != "" && strings.HasPrefix(p, root+"/") && inDiff[strings.TrimPrefix(p, root+"/")] {
			continue
		}
		data, err := read(p)
		if err != nil || len(data) > maxFileBytes {
			continue
		}
		res.Merge(ScanFile(p, data))
	}
	return res
}

// Scan scans the added lines of a unified diff (git diff output, with a/
// and b/ prefixes). Removed and context lines are not scanned: a secret
// the run deleted is not one it added. Binary entries are counted and
// skipped.
func Scan(diff []byte) Result {
	res, _ := scanDiff(diff)
	return res
}

// scanDiff is Scan, also returning the paths of the diff's entries.
func scanDiff(diff []byte) (Result, map[string]bool) {
	s := newScanner()
	paths := make(map[string]bool)
	var (
		file            string
		newLine         int
		remOld, remNew  int
		inHunk, counted bool
		skipBin         bool
	)
	for len(diff) > 0 {
		i := bytes.IndexByte(diff, '\n')
		var l []byte
		if i < 0 {
			l, diff = diff, nil
		} else {
			l, diff = diff[:i], diff[i+1:]
		}
		l = bytes.TrimSuffix(l, []byte{'\r'})
		if inHunk {
			handled := true
			switch {
			case len(l) == 0:
				// A context line whose single space was stripped
				// (some tools do): count it as context.
				remOld, remNew, newLine = remOld-1, remNew-1, newLine+1
			case l[0] == '+':
				if !counted {
					s.res.Files++
					counted = true
				}
				if !s.line(file, newLine, l[1:]) {
					s.closeBlock()
					return s.res, paths
				}
				remNew, newLine = remNew-1, newLine+1
			case l[0] == '-':
				remOld--
			case l[0] == ' ':
				remOld, remNew, newLine = remOld-1, remNew-1, newLine+1
			case l[0] == '\\': // \ No newline at end of file
			default:
				handled = false // a malformed hunk: read it as a header
			}
			if !handled || remOld <= 0 && remNew <= 0 {
				inHunk = false
				s.closeBlock()
			}
			if handled {
				continue
			}
		}
		switch {
		case bytes.HasPrefix(l, []byte("diff --git ")):
			s.closeBlock()
			file, counted, skipBin = diffGitPath(string(l)), false, false
			paths[file] = true
		case bytes.HasPrefix(l, []byte("+++ ")):
			p := strings.TrimSpace(string(l[4:]))
			if p != "/dev/null" {
				file = trimPrefixPath(unquote(p), "b/")
				paths[file] = true
			}
		case bytes.HasPrefix(l, []byte("Binary files ")), bytes.HasPrefix(l, []byte("GIT binary patch")):
			if !skipBin {
				s.res.BinaryFiles++
				skipBin = true
			}
		case bytes.HasPrefix(l, []byte("@@ ")) && !skipBin:
			o, n, start, ok := hunkHeader(string(l))
			if ok {
				inHunk, remOld, remNew, newLine = true, o, n, start
			}
		}
	}
	s.closeBlock()
	return s.res, paths
}

// hunkHeader parses "@@ -a,b +c,d @@": old and new line counts and the
// new start line. A missing count is 1.
func hunkHeader(h string) (oldN, newN, newStart int, ok bool) {
	f := strings.Fields(h)
	if len(f) < 3 || !strings.HasPrefix(f[1], "-") || !strings.HasPrefix(f[2], "+") {
		return 0, 0, 0, false
	}
	_, oldN, ok1 := rangeOf(f[1][1:])
	newStart, newN, ok2 := rangeOf(f[2][1:])
	return oldN, newN, newStart, ok1 && ok2
}

func rangeOf(s string) (start, n int, ok bool) {
	a, b, has := strings.Cut(s, ",")
	start, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	n = 1
	if has {
		if n, err = strconv.Atoi(b); err != nil {
			return 0, 0, false
		}
	}
	return start, n, true
}

// diffGitPath takes the b/ path from "diff --git a/x b/x", for entries
// with no +++ line (binary, mode-only). Paths with spaces are ambiguous
// there; the +++ line, when present, overrides.
func diffGitPath(l string) string {
	rest := strings.TrimPrefix(l, "diff --git ")
	if strings.HasPrefix(rest, `"`) {
		if i := strings.Index(rest, `" `); i > 0 {
			return trimPrefixPath(unquote(rest[i+2:]), "b/")
		}
	}
	if i := strings.LastIndex(rest, " b/"); i >= 0 {
		return rest[i+3:]
	}
	return rest
}

func trimPrefixPath(p, prefix string) string { return strings.TrimPrefix(p, prefix) }

// unquote undoes git's C-style quoting of unusual paths.
func unquote(p string) string {
	if len(p) >= 2 && p[0] == '"' && p[len(p)-1] == '"' {
		if u, err := strconv.Unquote(p); err == nil {
			return u
		}
	}
	return p
}

// line scans one added line; false when the scan must stop.
func (s *scanner) line(file string, n int, l []byte) bool {
	s.res.Lines++
	s.scanned += len(l)
	if s.scanned > MaxScanned {
		s.res.Truncated = true
		return false
	}
	if len(l) > MaxLineLen {
		l = l[:MaxLineLen]
	}
	text := string(l)
	if s.block != nil {
		if strings.Contains(text, "-----END ") {
			s.blockEnd = true
			s.closeBlock()
			return true
		}
		s.blockBody.WriteString(strings.TrimSpace(text))
		if s.blockBody.Len() > 64<<10 {
			s.closeBlock()
		}
		return true
	}
	for _, m := range findLine(text, true) {
		f := Finding{Rule: m.r.name, File: file, Line: n}
		if m.r.block {
			// The body follows on the next lines; an inline body (a
			// one-line PEM in a string) is the rest of this one.
			s.block, s.blockFile, s.blockEnd = &f, file, false
			s.blockBody.Reset()
			rest := text[m.end:]
			if end := strings.Index(rest, "-----END "); end >= 0 {
				s.blockBody.WriteString(rest[:end])
				s.blockEnd = true
				s.closeBlock()
			} else {
				s.blockBody.WriteString(strings.TrimSpace(rest))
			}
			return true
		}
		secret := text[m.lo:m.hi]
		if m.r.normalize != nil {
			secret = m.r.normalize(secret)
		}
		f.Fingerprint = fingerprint(secret)
		s.add(f)
	}
	return true
}

// lineMatch is one accepted match on a line: the secret's byte range and
// the end of the whole match.
type lineMatch struct {
	r      *rule
	lo, hi int
	end    int
}

// findLine applies the rule table to one line. A PEM block opener is the
// last match returned: what follows it is the block's body.
//
// strict is the scan: a finding is an alarm a reviewer reads, so a match
// must also pass the rule's entropy threshold and must not be a
// documentation stand-in (AKIA…EXAMPLE, ghp_xxxx…). Redaction is not
// strict: removing a stand-in costs nothing, leaving a real token of a
// low-entropy look leaks it. Both read the same table: one definition of
// what a credential looks like.
func findLine(text string, strict bool) []lineMatch {
	lower := strings.ToLower(text)
	var out []lineMatch
	var taken [][2]int // byte ranges matched on this line
	rs := rules()
	for i := range rs {
		r := &rs[i]
		if !containsAny(lower, r.keywords) {
			continue
		}
		for _, idx := range r.re.FindAllStringSubmatchIndex(text, -1) {
			if overlaps(taken, idx[0], idx[1]) {
				continue
			}
			lo, hi := idx[0], idx[1]
			if g := max(r.group, 1); len(idx) >= 2*g+2 && idx[2*g] >= 0 {
				lo, hi = idx[2*g], idx[2*g+1]
			}
			secret := text[lo:hi]
			if r.check != nil {
				m := make([]string, len(idx)/2)
				for j := range m {
					if idx[2*j] >= 0 {
						m[j] = text[idx[2*j]:idx[2*j+1]]
					}
				}
				if !r.check(m) {
					continue
				}
			}
			if r.name == RuleGenericAssignKey && len(secret) < MinGenericLen {
				continue
			}
			if strict && r.minEntropy > 0 && Entropy(secret) < r.minEntropy {
				continue
			}
			// A generic NAME = value is matched by its context, not its
			// shape: stand-ins (your_api_key_here) are common there, and
			// redacting them would blank documentation.
			if !r.block && (strict || r.name == RuleGenericAssignKey) && isPlaceholder(secret) {
				continue
			}
			taken = append(taken, [2]int{idx[0], idx[1]})
			out = append(out, lineMatch{r: r, lo: lo, hi: hi, end: idx[1]})
			if r.block {
				return out
			}
		}
	}
	return out
}

// Redact returns data with every secret the rules find replaced by
// "[REDACTED:rule]" — on every line, removed and context lines of a diff
// included — and PEM block bodies replaced line by line; and how many
// secrets it replaced. It matches the table's shapes without the scan's
// entropy and stand-in checks (findLine): what the scan reports is always
// redacted, and a token that looks too regular to report is redacted too. It is for keeping a diff or file (the store's diff
// artifact) without the credentials in it; lines are not length-capped
// here, so nothing past MaxLineLen survives.
func Redact(data []byte) ([]byte, int) {
	var out bytes.Buffer
	out.Grow(len(data))
	n, inBlock := 0, false
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i+1], data[i+1:]
		}
		text := string(l)
		if inBlock {
			if strings.Contains(text, "-----END ") {
				inBlock = false
				out.WriteString(text)
			} else {
				out.WriteString(redactBody(text))
			}
			continue
		}
		ms := findLine(text, false)
		sort.Slice(ms, func(a, b int) bool { return ms[a].lo < ms[b].lo })
		last := 0
		for _, m := range ms {
			if m.lo < last {
				continue
			}
			if m.r.block {
				out.WriteString(text[last:m.end])
				rest := text[m.end:]
				if end := strings.Index(rest, "-----END "); end >= 0 {
					out.WriteString(redactBody(rest[:end]))
					last = m.end + end
				} else {
					out.WriteString(redactBody(rest))
					last = len(text)
					inBlock = true
				}
				n++
				continue
			}
			out.WriteString(text[last:m.lo])
			out.WriteString("[REDACTED:" + m.r.name + "]")
			last = m.hi
			n++
		}
		out.WriteString(text[last:])
	}
	return out.Bytes(), n
}

// Values returns the distinct secrets the scan's rules find in data (a
// diff, on every line, or a file), for the redactor to replace wherever
// else they appear: a value found by its context (DB_PASSWORD = "…") has
// no shape to be found by in an argument or a path. PEM bodies are not
// returned (their lines are redacted by their block). Unlike a Result,
// this holds secrets: it is for the redactor only, never for a sink.
func Values(data []byte) []string {
	seen := map[string]bool{}
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		if len(l) > MaxLineLen {
			l = l[:MaxLineLen]
		}
		text := string(l)
		for _, m := range findLine(text, true) {
			if m.r.block {
				continue
			}
			if v := text[m.lo:m.hi]; !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// RedactString is Redact for one string (an argument, a path, a span
// name): every match of the table replaced by "[REDACTED:rule]".
func RedactString(s string) (string, int) {
	if !mayMatch(s) {
		return s, 0
	}
	b, n := Redact([]byte(s))
	if n == 0 {
		return s, 0
	}
	return string(b), n
}

// mayMatch reports whether any rule's keyword is in s: the cheap test
// that spares most strings (paths, names) the regexps.
func mayMatch(s string) bool {
	lower := strings.ToLower(s)
	rs := rules()
	for i := range rs {
		if containsAny(lower, rs[i].keywords) {
			return true
		}
	}
	return false
}

// redactBody replaces the key material of a PEM body line, keeping a
// diff marker, indentation and the line end so the diff still applies
// shape-wise.
func redactBody(text string) string {
	trail := text[len(strings.TrimRight(text, "\r\n")):]
	core := strings.TrimRight(text, "\r\n")
	lead := len(core) - len(strings.TrimLeft(core, "+- \t\"'"))
	if strings.TrimSpace(core[lead:]) == "" {
		return text
	}
	return core[:lead] + "[REDACTED]" + trail
}

// closeBlock reports an open PEM block when its body looks like key
// material: at least 64 base64 characters. A header alone, or a body of
// dots ("-----BEGIN PRIVATE KEY-----\n...\n"), is documentation.
func (s *scanner) closeBlock() {
	if s.block == nil {
		return
	}
	f := *s.block
	body := s.blockBody.String()
	s.block = nil
	s.blockBody.Reset()
	b64 := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
			b64++
		}
	}
	if b64 < 64 || isPlaceholder(body) {
		return
	}
	f.Fingerprint = fingerprint(pemBody(body))
	s.add(f)
}

func (s *scanner) add(f Finding) {
	s.res.Total++
	s.res.Counts[f.Rule]++
	if len(s.res.Findings) >= MaxFindings {
		s.res.Truncated = true
		return
	}
	s.res.Findings = append(s.res.Findings, f)
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func overlaps(taken [][2]int, lo, hi int) bool {
	for _, t := range taken {
		if lo < t[1] && t[0] < hi {
			return true
		}
	}
	return false
}
