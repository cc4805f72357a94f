package secretscan

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The planted secrets are built at run time from pieces and a seeded
// generator, so this file holds nothing a secret scanner (ours, or the
// forge's) would flag.
var rng = rand.New(rand.NewChaCha8([32]byte{'a', 'g', 'e', 'n', 't', 'w', 'a', 't', 'c', 'h'}))

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64         = alnum + "+/"
	b64url      = alnum + "-_"
)

func rnd(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

type planted struct {
	rule   string
	secret string // what must never appear in a result
	line   string // the added line that carries it
}

// plantedSecrets returns one or more added lines per rule.
func plantedSecrets() []planted {
	awsID := "AK" + "IA" + rnd(upperDigits, 16)
	awsSecret := rnd(b64, 40)
	gh := "gh" + "p_" + rnd(alnum, 36)
	ghPAT := "github" + "_pat_" + rnd(alnum, 22) + "_" + rnd(alnum, 59)
	gl := "gl" + "pat-" + rnd(alnum, 20)
	slack := "xo" + "xb-" + "1234567890" + "-" + "9876543210" + "-" + rnd(alnum, 24)
	hook := "https://hooks." + "slack.com/services/T" + rnd(upperDigits, 8) + "/B" + rnd(upperDigits, 8) + "/" + rnd(alnum, 24)
	stripe := "sk" + "_live_" + rnd(alnum, 24)
	ant := "sk" + "-ant-api03-" + rnd(b64url, 93) + "AA"
	oai := "sk" + "-proj-" + rnd(alnum, 48)
	jwt := "ey" + "J" + rnd(b64url, 30) + ".ey" + "J" + rnd(b64url, 60) + "." + rnd(b64url, 43)
	urlPass := rnd(alnum, 14)
	generic := rnd(alnum, 32)
	azure := rnd(b64, 86) + "=="
	pemBody := []string{rnd(b64, 64), rnd(b64, 64), rnd(b64, 40) + "=="}
	gcpBody := rnd(b64, 64) + `\n` + rnd(b64, 64)
	begin := "-----BEGIN " + "RSA PRIVATE" + " KEY-----"
	end := "-----END " + "RSA PRIVATE" + " KEY-----"
	return []planted{
		{RuleAWSAccessKey, awsID, `aws_access_key_id = ` + awsID},
		{RuleAWSSecretKey, awsSecret, `aws_secret_access_key = ` + awsSecret},
		{RuleGitHubToken, gh, `  token: "` + gh + `"`},
		{RuleGitHubToken, ghPAT, `export GH=` + ghPAT},
		{RuleGitLabToken, gl, `CI_TOKEN_FOR_GL := "` + gl + `"`},
		{RuleSlackToken, slack, `slack(` + slack + `)`},
		{RuleSlackWebhook, hook, `webhook: ` + hook},
		{RuleStripeKey, stripe, `stripe.api_key = '` + stripe + `'`},
		{RuleAnthropicKey, ant, `client = Anthropic(api_key="` + ant + `")`},
		{RuleOpenAIKey, oai, `OPENAI=` + oai},
		{RuleJWT, jwt, `Authorization: Bearer ` + jwt},
		{RuleURLPassword, urlPass, `DATABASE_URL=postgres://app:` + urlPass + `@db.internal:5432/app`},
		{RuleGenericAssignKey, generic, `const clientSecret = "` + generic + `";`},
		{RuleAzureStorageKey, azure, `DefaultEndpointsProtocol=https;AccountName=x;AccountKey=` + azure + `;EndpointSuffix=core.windows.net`},
		{RulePrivateKey, strings.Join(pemBody, ""), begin + "\n" + strings.Join(pemBody, "\n") + "\n" + end},
		{RuleGCPServiceKey, gcpBody, `  "private_key": "-----BEGIN ` + `PRIVATE KEY-----\n` + gcpBody + `\n-----END PRIVATE KEY-----\n",`},
	}
}

// diffOf makes a one-file unified diff adding lines after some context.
func diffOf(file string, added []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "diff --git a/%s b/%s\nindex 1111111..2222222 100644\n--- a/%s\n+++ b/%s\n", file, file, file, file)
	fmt.Fprintf(&b, "@@ -10,3 +10,%d @@ func x() {\n", 3+len(added))
	b.WriteString(" context one\n-removed line\n context two\n")
	for _, a := range added {
		b.WriteString("+" + a + "\n")
	}
	b.WriteString(" context three\n")
	return b.String()
}

func TestScanPlanted(t *testing.T) {
	ps := plantedSecrets()
	var added []string
	wantLine := map[string]int{} // rule+secret → line
	line := 12                   // after "context one" (10) and "context two" (11)
	for _, p := range ps {
		wantLine[p.rule+p.secret] = line
		for l := range strings.SplitSeq(p.line, "\n") {
			added = append(added, l)
			line++
		}
	}
	res := Scan([]byte(diffOf("config/app.env", added)))
	if res.Total != len(ps) || len(res.Findings) != len(ps) {
		t.Errorf("found %d (%d kept), want %d: %+v", res.Total, len(res.Findings), len(ps), res.Findings)
	}
	got := map[string]Finding{}
	for _, f := range res.Findings {
		got[f.Rule+"@"+fmt.Sprint(f.Line)] = f
	}
	for _, p := range ps {
		key := p.rule + "@" + fmt.Sprint(wantLine[p.rule+p.secret])
		f, ok := got[key]
		if !ok {
			t.Errorf("%s not found at line %d", p.rule, wantLine[p.rule+p.secret])
			continue
		}
		if f.File != "config/app.env" {
			t.Errorf("%s: file %q", p.rule, f.File)
		}
		if f.Fingerprint != fingerprint(strings.ReplaceAll(p.secret, `\n`, "")) {
			t.Errorf("%s: fingerprint is not of the secret", p.rule)
		}
	}
	if res.Counts[RuleGitHubToken] != 2 || res.Files != 1 || res.Lines != len(added) {
		t.Errorf("counts %v files %d lines %d (want %d)", res.Counts, res.Files, res.Lines, len(added))
	}
	assertNoSecret(t, res, ps)
}

// assertNoSecret is the property: nothing in a result holds a secret or
// any 8-character piece of one.
func assertNoSecret(t *testing.T, res Result, ps []planted) {
	t.Helper()
	dump := fmt.Sprintf("%+v %v %v", res, res.RuleCounts(), func() []string {
		var l []string
		for _, f := range res.Findings {
			l = append(l, f.Location())
		}
		return l
	}())
	for _, p := range ps {
		s := strings.ReplaceAll(p.secret, `\n`, "")
		for i := 0; i+8 <= len(s); i++ {
			if strings.Contains(dump, s[i:i+8]) {
				t.Fatalf("result holds a piece of the %s secret (%q…)", p.rule, s[i:i+2])
			}
		}
	}
}

func TestScanFalsePositives(t *testing.T) {
	notSecrets := []string{
		// lockfiles and hashes
		`golang.org/x/sys v0.30.0 h1:QT4AP3P8cA5wVxL4gQhMN9ZxGaIGcuCm2dSwe8+2Rk5I=`,
		`golang.org/x/sys v0.30.0/go.mod h1:/VUhepiaJMQUp4+oa/7Zr1D23ma6VTLIYjOOTFZPUcA=`,
		`      "integrity": "sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs17LhbZVGedAJv8XZ1tvj5FvSg==",`,
		`      "resolved": "https://registry.npmjs.org/js-tokens/-/js-tokens-4.0.0.tgz",`,
		`checksum = "a3f1e2b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2"`,
		`commit 2d3f4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e`,
		// identifiers
		`tenant_id = "123e4567-e89b-12d3-a456-426614174000"`,
		`api_token = "123e4567-e89b-12d3-a456-426614174000"`,
		`request-id: 9f8e7d6c-5b4a-4321-8765-0fedcba98765`,
		// documentation stand-ins
		`aws_access_key_id = AKIAIOSFODNN7EXAMPLE`,
		`aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`,
		`password = "changeme-changeme-changeme"`,
		`API_KEY=your_api_key_goes_here_please`,
		`token: "` + "gh" + `p_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"`,
		`token: "` + "gh" + `p_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"`,
		`OPENAI_API_KEY=sk-` + `this-is-not-a-real-key-just-some-words`,
		`-----BEGIN ` + `PRIVATE KEY-----`,
		`...`,
		`-----END ` + `PRIVATE KEY-----`,
		// references, not values
		`api_key = os.environ["OPENAI_API_KEY_FOR_THE_SERVICE"]`,
		`GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN_WITH_WRITE_ACCESS }}`,
		`password: ${DATABASE_PASSWORD_FROM_VAULT_X}`,
		`const token = process.env.SLACK_BOT_TOKEN_VALUE;`,
		`DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app`,
		`url = "https://user:<password>@example.com/repo.git"`,
		// names that are not the secret
		`tokenizer_path = "models/llama-3/tokenizer.model.v2"`,
		`password_file: /run/secrets/db_password_file_x`,
		`secret_name = "projects/acme/secrets/db-password"`,
		`max_tokens: 4096`,
		`primary_key = "customer_orders_by_region_2024"`,
		// prose and low entropy
		`# set the password to something long like aaaaaaaaaaaaaaaaaaaa`,
		`password = "aaaaaaaaaaaaaaaaaaaaaaaa"`,
		`echo "token=abcabcabcabcabcabcabc"`,
	}
	res := Scan([]byte(diffOf("go.sum", notSecrets)))
	if res.Total != 0 {
		t.Errorf("false positives: %+v", res.Findings)
	}
	if res.Lines != len(notSecrets) {
		t.Errorf("lines %d, want %d", res.Lines, len(notSecrets))
	}
}

// Removed and context lines are not what the run added.
func TestScanOnlyAddedLines(t *testing.T) {
	gh := "gh" + "p_" + rnd(alnum, 36)
	diff := "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,2 @@\n token = '" + gh + "'\n-old = '" + gh + "'\n+new = 1\n"
	if res := Scan([]byte(diff)); res.Total != 0 {
		t.Errorf("context/removed lines scanned: %+v", res.Findings)
	}
}

func TestScanDiffStructure(t *testing.T) {
	gh := func() string { return "gh" + "p_" + rnd(alnum, 36) }
	diff := strings.Join([]string{
		"diff --git a/a.go b/a.go",
		"index 1..2 100644",
		"--- a/a.go",
		"+++ b/a.go",
		"@@ -1,2 +1,3 @@",
		" package a",
		"+var t = \"" + gh() + "\"", // a.go:2
		" ",
		"@@ -40 +41,2 @@ func f() {",
		"-\treturn",
		"+\tx := \"" + gh() + "\"", // a.go:41
		"+\treturn",
		"\\ No newline at end of file",
		"diff --git a/img.png b/img.png",
		"new file mode 100644",
		"index 0000000..3333333",
		"Binary files /dev/null and b/img.png differ",
		"diff --git a/gone.txt b/gone.txt",
		"deleted file mode 100644",
		"--- a/gone.txt",
		"+++ /dev/null",
		"@@ -1 +0,0 @@",
		"-" + gh(),
		`diff --git "a/dir/sp ace.txt" "b/dir/sp ace.txt"`,
		"new file mode 100644",
		"--- /dev/null",
		`+++ "b/dir/sp ace.txt"`,
		"@@ -0,0 +1,2 @@",
		"+++" + gh(), // an added line that starts with "++"
		"+--- not a header",
		"diff --git a/new.txt b/new.txt",
		"--- /dev/null",
		"+++ b/new.txt",
		"@@ -0,0 +1 @@",
		"+" + gh(),
		"",
	}, "\n")
	res := Scan([]byte(diff))
	var got []string
	for _, f := range res.Findings {
		got = append(got, fmt.Sprintf("%s:%d", f.File, f.Line))
	}
	want := []string{"a.go:2", "a.go:41", "dir/sp ace.txt:1", "new.txt:1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("locations %q, want %q", got, want)
	}
	if res.BinaryFiles != 1 || res.Files != 3 {
		t.Errorf("binary %d files %d", res.BinaryFiles, res.Files)
	}
}

func TestScanFile(t *testing.T) {
	ps := plantedSecrets()
	var lines []string
	for _, p := range ps {
		lines = append(lines, p.line)
	}
	res := ScanFile("/home/dev/.config/app/credentials", []byte(strings.Join(lines, "\n")))
	if res.Total != len(ps) {
		t.Errorf("found %d, want %d: %v", res.Total, len(ps), res.RuleCounts())
	}
	for _, f := range res.Findings {
		if f.File != "/home/dev/.config/app/credentials" || f.Line < 1 {
			t.Errorf("finding %+v", f)
		}
	}
	if res.Findings[0].Line != 1 || res.Findings[1].Line != 2 {
		t.Errorf("lines %d %d", res.Findings[0].Line, res.Findings[1].Line)
	}
	assertNoSecret(t, res, ps)
}

func TestBounds(t *testing.T) {
	var added []string
	for range MaxFindings + 500 {
		added = append(added, "tok = "+"gh"+"p_"+rnd(alnum, 36))
	}
	// A minified line far past MaxLineLen: scanned in its first part only.
	added = append(added, strings.Repeat("x=1;", MaxLineLen))
	res := Scan([]byte(diffOf("big.js", added)))
	if len(res.Findings) != MaxFindings || res.Total != MaxFindings+500 || res.Counts[RuleGitHubToken] != MaxFindings+500 || !res.Truncated {
		t.Errorf("kept %d total %d counts %v truncated %v", len(res.Findings), res.Total, res.Counts, res.Truncated)
	}
	var merged Result
	merged.Merge(res)
	merged.Merge(ScanFile("f", []byte("k = "+"gl"+"pat-"+rnd(alnum, 24))))
	if merged.Total != MaxFindings+501 || len(merged.Findings) != MaxFindings || merged.Counts[RuleGitLabToken] != 1 {
		t.Errorf("merged: total %d kept %d counts %v", merged.Total, len(merged.Findings), merged.Counts)
	}
	if got := merged.RuleCounts(); strings.Join(got, ",") != fmt.Sprintf("github-token:%d,gitlab-token:1", MaxFindings+500) {
		t.Errorf("rule counts %v", got)
	}
}

// TestEntropyThreshold pins values on both sides of MinGenericEntropy.
func TestEntropyThreshold(t *testing.T) {
	for _, tt := range []struct {
		value  string
		secret bool
	}{
		{rnd(alnum, 16), true},
		{rnd(alnum, 24), true},
		{rnd(b64, 40), true},
		{rnd("0123456789abcdef", 32), true},
		{"correcthorsebatterystaple", false},
		{"password12345678", true}, // a hard-coded password: the name decides
		{"aaaaaaaaaaaaaaaa", false},
		{"abcabcabcabcabcabc", false},
		{"changeme-changeme-changeme", false},
		{"1111222233334444", false},
	} {
		if got := Entropy(tt.value) >= MinGenericEntropy; got != tt.secret {
			t.Errorf("entropy(%d chars) = %.2f: secret %v, want %v", len(tt.value), Entropy(tt.value), got, tt.secret)
		}
	}
}

// TestScanRealGitDiff plants secrets in a real repository and scans what
// `git diff` prints, the way the supervisor does at the end of a run.
func TestScanRealGitDiff(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "-b", "main")
	write("app/config.py", "DEBUG = False\nNAME = 'app'\n")
	write("README.md", "# app\n")
	git("add", ".")
	git("commit", "-q", "-m", "base")

	ps := plantedSecrets()
	byRule := map[string]planted{}
	for _, p := range ps {
		byRule[p.rule] = p
	}
	write("app/config.py", "DEBUG = False\n"+byRule[RuleAWSAccessKey].line+"\nNAME = 'app'\n"+byRule[RuleStripeKey].line+"\n")
	write("deploy/key.pem", byRule[RulePrivateKey].line+"\n")
	write("README.md", "# app\n\nexample: AKIAIOSFODNN7EXAMPLE\n")
	write("logo.bin", "\x00\x01\x02"+byRule[RuleGitHubToken].secret)
	git("add", "-A")
	diff := git("diff", "--cached", "--no-color", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/")
	res := Scan([]byte(diff))
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Location())
	}
	want := []string{
		"app/config.py:2 (aws-access-key-id)",
		"app/config.py:4 (stripe-live-key)",
		"deploy/key.pem:1 (private-key)",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("findings %q, want %q", got, want)
	}
	if res.BinaryFiles != 1 {
		t.Errorf("binary files %d, want 1", res.BinaryFiles)
	}
	assertNoSecret(t, res, ps)
}

// TestScanRun: the diff plus written secret files that are not diff
// entries (an ignored .env, a file outside the repository); a file in
// the diff is not counted twice; unreadable, binary and oversized files
// are skipped.
func TestScanRun(t *testing.T) {
	root := t.TempDir()
	home := t.TempDir()
	tok := func() string { return "gh" + "p_" + rnd(alnum, 36) }
	inDiff := "TOKEN=" + tok()
	files := map[string]string{
		root + "/.env":               "A=1\nGH=" + tok() + "\n", // ignored by git: not in the diff
		root + "/config/secrets.yml": inDiff + "\n",             // untracked, in the diff
		home + "/.aws/credentials":   "[default]\naws_access_key_id = " + "AK" + "IA" + rnd(upperDigits, 16) + "\n",
		home + "/keystore.bin":       "\x00\x01" + tok(),
		home + "/huge.txt":           strings.Repeat("x", maxFileBytes+1) + tok(),
	}
	read := func(p string) ([]byte, error) {
		if c, ok := files[p]; ok {
			return []byte(c), nil
		}
		return nil, os.ErrNotExist
	}
	diff := diffOf("config/secrets.yml", []string{inDiff})
	written := []string{root + "/.env", root + "/config/secrets.yml", home + "/.aws/credentials", home + "/keystore.bin", home + "/huge.txt", home + "/gone"}
	res := ScanRun([]byte(diff), root, written, read)
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Location())
	}
	want := []string{
		"config/secrets.yml:12 (github-token)",
		root + "/.env:2 (github-token)",
		home + "/.aws/credentials:2 (aws-access-key-id)",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("findings %q, want %q", got, want)
	}
	if res.BinaryFiles != 1 || res.Files != 3 {
		t.Errorf("binary %d files %d", res.BinaryFiles, res.Files)
	}
	if res := ScanRun(nil, "", nil, read); res.Total != 0 || res.Counts == nil {
		t.Errorf("empty scan: %+v", res)
	}
}

// TestRedact: every planted secret is replaced, on added, removed and
// context lines alike; what is left scans clean and keeps its lines.
func TestRedact(t *testing.T) {
	ps := plantedSecrets()
	var lines []string
	for _, p := range ps {
		lines = append(lines, p.line)
	}
	text := strings.Join(lines, "\n") + "\n"
	// the same secrets as removed and context lines of a diff
	diff := diffOf("a.env", lines) + "@@ -50,2 +60,1 @@\n-" + ps[2].line + "\n " + ps[3].line + "\n"
	for _, in := range []string{text, diff} {
		out, n := Redact([]byte(in))
		want := len(ps)
		if in == diff {
			want += 2
		}
		if n != want {
			t.Errorf("redacted %d, want %d", n, want)
		}
		if strings.Count(string(out), "\n") != strings.Count(in, "\n") {
			t.Errorf("line count changed")
		}
		for _, p := range ps {
			s := strings.ReplaceAll(p.secret, `\n`, "\n")
			for piece := range strings.SplitSeq(s, "\n") {
				for i := 0; i+8 <= len(piece); i++ {
					if strings.Contains(string(out), piece[i:i+8]) {
						t.Fatalf("%s survives redaction:\n%s", p.rule, out)
					}
				}
			}
		}
		if res := ScanFile("x", out); res.Total != 0 {
			t.Errorf("redacted text still scans dirty: %v", res.RuleCounts())
		}
		if !strings.Contains(string(out), "[REDACTED:github-token]") || !strings.Contains(string(out), "-----END ") {
			t.Errorf("markers or armour missing:\n%s", out)
		}
	}
	if out, n := Redact([]byte("nothing here\n")); n != 0 || string(out) != "nothing here\n" {
		t.Errorf("clean text changed: %q %d", out, n)
	}
}

// TestOneTableTwoStrengths: the scan and the redactor read one table; the
// scan also wants entropy and no stand-in, redaction removes every shape.
func TestOneTableTwoStrengths(t *testing.T) {
	google := "AI" + "za" + rnd(b64url, 35)
	npm := "np" + "m_" + rnd(alnum, 36)
	hf := "hf" + "_" + rnd(alnum, 34)
	gh := "gh" + "p_" + rnd(alnum, 36)
	for _, c := range []struct{ rule, token, line string }{
		{RuleGoogleAPIKey, google, "key: " + google},
		{RuleNPMToken, npm, "//registry/:_authToken=" + npm},
		{RuleHuggingFaceToken, hf, "HF=" + hf},
		{RuleGitHubToken, gh, "mkdir dir_" + gh + "_x"}, // glued by underscores
	} {
		if res := ScanFile("f", []byte(c.line)); res.Counts[c.rule] != 1 {
			t.Errorf("%s: scan found %v in %q", c.rule, res.RuleCounts(), c.line)
		}
		out, n := RedactString(c.line)
		if n == 0 || strings.Contains(out, c.token) || !strings.Contains(out, "[REDACTED:"+c.rule+"]") {
			t.Errorf("%s: redacted %q", c.rule, out)
		}
	}
	// Stand-ins: not findings, still redacted.
	for _, s := range []string{"AK" + "IAIOSFODNN7EXAMPLE", "gh" + "p_" + strings.Repeat("x", 36)} {
		if res := ScanFile("f", []byte("id = "+s)); res.Total != 0 {
			t.Errorf("scan reports the stand-in %q", s)
		}
		if out, _ := RedactString("id = " + s); strings.Contains(out, s) {
			t.Errorf("redaction kept %q", s)
		}
	}
	// Glued to a letter on the left: not a token (risk-assessment-…).
	if out, n := RedactString("/ws/risk-assessment-for-q3-2024-final-report-v2.md"); n != 0 {
		t.Errorf("a file name redacted: %q", out)
	}
}

// TestValues: the secrets themselves, for the redactor — each planted one
// but the PEM bodies (redacted by their block), once each.
func TestValues(t *testing.T) {
	ps := plantedSecrets()
	var lines []string
	for _, p := range ps {
		lines = append(lines, p.line, p.line)
	}
	got := map[string]int{}
	for _, v := range Values([]byte(strings.Join(lines, "\n"))) {
		got[v]++
	}
	for _, p := range ps {
		if p.rule == RulePrivateKey || p.rule == RuleGCPServiceKey {
			continue
		}
		if got[p.secret] != 1 {
			t.Errorf("%s: %d times in Values", p.rule, got[p.secret])
		}
	}
	if v := Values([]byte("nothing here\npassword = \"changeme-changeme-changeme\"\n")); len(v) != 0 {
		t.Errorf("Values of clean text: %q", v)
	}
}
