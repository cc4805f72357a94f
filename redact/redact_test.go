package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// Tokens are built from pieces at run time, so this file holds nothing a
// secret scanner would flag.
func tok(prefix, seed string, n int) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; b.Len() < len(prefix)+n; i++ {
		sum := sha256.Sum256([]byte(seed + string(rune(i))))
		for _, c := range sum {
			if b.Len() == len(prefix)+n {
				break
			}
			b.WriteByte(alnum[int(c)%len(alnum)])
		}
	}
	return b.String()
}

var (
	ghToken   = tok("gh"+"p_", "gh", 36)
	antKey    = tok("sk-"+"ant-api03-", "ant", 40)
	awsID     = "AK" + "IA" + strings.ToUpper(hex.EncodeToString([]byte("redactor"))) // 16 hex, upper
	droppedV  = "pl41n-dr0pped-v4lue"
	npmToken  = tok("np"+"m_", "npm", 36)
	googleKey = tok("AI"+"za", "g", 35)
)

func TestString(t *testing.T) {
	r := New([]string{droppedV})
	tests := []struct{ in, want string }{
		// paths keep their shape
		{"/ws/dir-" + ghToken + "/f.txt", "/ws/dir-[REDACTED:github-token]/f.txt"},
		{"/ws/dir_" + ghToken, "/ws/dir_[REDACTED:github-token]"},
		{"/ws/" + ghToken + "_suffix.txt", "/ws/[REDACTED:github-token]_suffix.txt"},
		{"/ws/out-" + droppedV + ".log", "/ws/out-[REDACTED].log"},
		// argv and scripts
		{"echo " + antKey, "echo [REDACTED:anthropic-api-key]"},
		{"curl -H 'x-key: " + googleKey + "'", "curl -H 'x-key: [REDACTED:google-api-key]'"},
		{"npm config set //registry/:_authToken=" + npmToken, "npm config set //registry/:_authToken=[REDACTED:npm-token]"},
		{"AWS_ACCESS_KEY_ID=" + awsID + " aws s3 ls", "AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key-id] aws s3 ls"},
		{"git push https://x:" + ghToken + "@github.com/org/repo.git", "git push https://x:[REDACTED:github-token]@github.com/org/repo.git"},
		{"psql postgres://app:hunter2@db/app", "psql postgres://app:[REDACTED:url-password]@db/app"},
		{"GH_TOKEN=abc gh pr create", "GH_TOKEN=[REDACTED] gh pr create"},
		{"tool --password hunter2 -v", "tool --password [REDACTED] -v"},
		// a DNS name
		{strings.ToLower(ghToken) + ".exfil.test", "[REDACTED:github-token].exfil.test"},
		// structure without secrets stays
		{"https://github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"/tmp/aw-hostile-123/repo/src/main.go", "/tmp/aw-hostile-123/repo/src/main.go"},
		{"feature/fix-flaky-test-1234", "feature/fix-flaky-test-1234"},
		{"go test -run TestX ./...", "go test -run TestX ./..."},
		{"llm --max-tokens 500", "llm --max-tokens 500"},
		{"add basic authentication to the token refresh", "add basic authentication to the token refresh"},
		{"/ws/risk-assessment-for-q3-2024-final-report.md", "/ws/risk-assessment-for-q3-2024-final-report.md"},
		{"tokenizer_path=models/tokenizer.model", "tokenizer_path=models/tokenizer.model"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		if got := r.String(r.String(tt.in)); got != r.String(tt.in) {
			t.Errorf("not idempotent on %q: %q", tt.in, got)
		}
	}
	// nil and zero redactors redact shapes, not values.
	var nilR *Redactor
	if got := nilR.String("a " + ghToken + " " + droppedV); got != "a [REDACTED:github-token] "+droppedV {
		t.Errorf("nil redactor: %q", got)
	}
}

func TestContent(t *testing.T) {
	r := New(nil)
	in := `{"model":"m","max_tokens":1024,"api_key":"abc-def-123"} password: hunter2`
	got := r.Content(in)
	if strings.Contains(got, "abc-def-123") || strings.Contains(got, "hunter2") || !strings.Contains(got, `"max_tokens":1024`) {
		t.Errorf("Content = %q", got)
	}
	// metadata keeps prose with a colon
	if got := r.String("fix token: handle expiry"); got != "fix token: handle expiry" {
		t.Errorf("String changed prose: %q", got)
	}
}

func TestSecrets(t *testing.T) {
	head := hex.EncodeToString(sha256.New().Sum(nil))[:40]
	public := []string{"/tmp/aw-x/repo", "https://github.com/acme/widgets.git", "feature/login-flow", head}
	random := tok("", "random", 24)
	tests := []struct {
		name, value string
		want        bool
	}{
		{"GITHUB_TOKEN", ghToken, true},
		{"ANYTHING", antKey, true},                          // a token shape: always
		{"DATABASE_URL", "postgres://u:hunter2@db/x", true}, // a password in a URL
		{"GITHUB_REPOSITORY", "acme/widgets", false},        // public: in the repository URL
		{"GITHUB_HEAD_REF", "feature/login-flow", false},    // public: the branch
		{"GITHUB_SHA", head, false},                         // public: the base commit
		{"RUNNER_WORKSPACE_NAME", "aw-x", false},            // < MinValue anyway
		{"WORKSPACE_DIR_NAME", "repo-checkout", false},      // not a secret by name or shape
		{"CI", "true", false},
		{"NODE_ENV", "production", false},
		{"GITHUB_WORKSPACE", "/home/runner/work/x/x", false}, // a path
		{"DB_PASSWORD", "correct-horse-battery", true},       // by name
		{"SESSION_NONCE", random, true},                      // by shape: random
		{"API_TOKEN", "widgets-x", false},                    // by name, but public (in the repository URL)
		{"SHORT_TOKEN", "abc", false},                        // < MinValue
	}
	var dropped []Dropped
	for _, tt := range tests {
		dropped = append(dropped, Dropped{tt.name, tt.value})
	}
	// "widgets-x" is not public; make it so for the API_TOKEN case.
	public = append(public, "acme/widgets-x")
	got := map[string]bool{}
	for _, v := range Secrets(dropped, public) {
		got[v] = true
	}
	for _, tt := range tests {
		if got[tt.value] != tt.want {
			t.Errorf("%s=%q: redacted %v, want %v", tt.name, tt.value, got[tt.value], tt.want)
		}
	}
}

func TestBytes(t *testing.T) {
	r := New([]string{droppedV})
	diff := "diff --git a/.env b/.env\n--- a/.env\n+++ b/.env\n@@ -0,0 +1,3 @@\n+LEAK=" + droppedV + "\n+GH=" + ghToken + "\n+ok=1\n"
	got := string(r.Bytes([]byte(diff)))
	if strings.Contains(got, droppedV) || strings.Contains(got, ghToken) {
		t.Errorf("a secret survived:\n%s", got)
	}
	if strings.Count(got, "\n") != strings.Count(diff, "\n") || !strings.Contains(got, "+ok=1\n") || !strings.Contains(got, "+++ b/.env\n") {
		t.Errorf("diff structure changed:\n%s", got)
	}
}

func TestTrace(t *testing.T) {
	r := New([]string{droppedV})
	tr := &telemetry.Trace{
		RunID:    "r1",
		Resource: []attribute.KeyValue{attribute.String("host.name", "h-"+droppedV)},
		Spans: []telemetry.Span{{
			Name:          "agent span " + ghToken,
			StatusMessage: "failed with " + antKey,
			Attrs: []attribute.KeyValue{
				attribute.String("file.path", "/ws/dir-"+ghToken+"/a.txt"),
				attribute.StringSlice("process.command_args", []string{"echo", droppedV}),
				attribute.String("vcs.repository.url.full", "https://github.com/acme/widgets.git"),
				attribute.Int("n", 3),
				attribute.Bool("agent."+droppedV, true), // the agent chose this key
			},
			Events: []telemetry.SpanEvent{{Name: "ev " + droppedV, Attrs: []attribute.KeyValue{attribute.String("m", awsID)}}},
			Links:  []telemetry.Link{{Attrs: []attribute.KeyValue{attribute.String("l", npmToken)}}},
		}},
	}
	r.Trace(tr)
	var all strings.Builder
	dump := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			all.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	dump(tr.Resource)
	sp := tr.Spans[0]
	all.WriteString(sp.Name + "\n" + sp.StatusMessage + "\n" + sp.Events[0].Name + "\n")
	dump(sp.Attrs)
	dump(sp.Events[0].Attrs)
	dump(sp.Links[0].Attrs)
	for _, s := range []string{ghToken, antKey, droppedV, awsID, npmToken} {
		if strings.Contains(all.String(), s) {
			t.Errorf("%q survived:\n%s", s[:6], all.String())
		}
	}
	for _, want := range []string{"/ws/dir-[REDACTED:github-token]/a.txt", "https://github.com/acme/widgets.git", "n=3\n", "agent.[REDACTED]=true\n"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("lost %q:\n%s", want, all.String())
		}
	}
}

// The agent cannot shield a token by wrapping it in a marker of its own:
// only the markers a redaction writes are left alone.
func TestForgedMarkerShieldsNothing(t *testing.T) {
	tok := "xoxb-" + "123456789012-abcdefghijklmnop"
	for _, s := range []string{"[REDACTED:" + tok + "]", "[REDACTED:" + tok + "-x]", "dir-[REDACTED:" + tok + "]/f"} {
		if got := New(nil).String(s); strings.Contains(got, tok) {
			t.Errorf("String(%q) = %q: the token survived inside a forged marker", s, got)
		}
	}
	if got := New(nil).String("[REDACTED:slack-token] and [REDACTED]"); got != "[REDACTED:slack-token] and [REDACTED]" {
		t.Errorf("real markers changed: %q", got)
	}
}
