package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/redact"
	"github.com/agentwatch/agentwatch/workspace"
)

// TestReadSecretFile: a regular file is read; a symlink the agent planted
// (to /etc/shadow, say) and a FIFO (which would block) are refused.
func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, ".env")
	if err := os.WriteFile(reg, []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "credentials")
	if err := os.Symlink(reg, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := readSecretFile(reg); err != nil || string(data) != "A=1\n" {
		t.Errorf("regular file: %q, %v", data, err)
	}
	for _, p := range []string{link, fifo, filepath.Join(dir, "missing")} {
		done := make(chan error, 1)
		go func() { _, err := readSecretFile(p); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: read", filepath.Base(p))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: blocked", filepath.Base(p))
		}
	}
}

// TestScanSecrets: an ignored .env the run wrote is scanned besides the
// diff, with no git evidence at all too.
func TestScanSecrets(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, ".env")
	tok := "gl" + "pat-" + "Xk29VbQm7LpR4tYw8NcZ"
	if err := os.WriteFile(env, []byte("GL="+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rec := recorder.New(recorder.RunInfo{RunID: "r", Start: start, RootPID: 10, Workspace: dir, Policy: policy.Default()})
	rec.Add(event.Exec{Header: event.Header{Time: start, PID: 10}, Filename: "/bin/sh", Argv: []string{"sh"}, Cwd: dir})
	rec.Add(event.File{Header: event.Header{Time: start, PID: 10}, Source: event.SourceEBPF, Op: event.FileCreate, Path: env})
	for _, ev := range []*workspace.Evidence{nil, {Absent: workspace.AbsentNotGit}} {
		res := rec.ScanSecrets(ev, readSecretFile)
		if res.Total != 1 || len(res.Findings) != 1 || res.Findings[0].Location() != env+":1 (gitlab-token)" {
			t.Errorf("evidence %+v: %+v", ev, res)
		}
		if strings.Contains(res.Findings[0].Fingerprint, tok[:8]) {
			t.Error("fingerprint holds the token")
		}
	}
}

// TestScanSecretsRedactsStoredDiff: the diff kept in the store (and hashed
// on the git_diff span) holds no secret the scan found.
func TestScanSecretsRedactsStoredDiff(t *testing.T) {
	tok := "gh" + "p_" + "R8fK2mQx7VbN4tLw9ZpC3sHy6JdA1eUo5GiT"
	diff := []byte("diff --git a/config.py b/config.py\n--- a/config.py\n+++ b/config.py\n@@ -0,0 +1,2 @@\n+TOKEN = \"" + tok + "\"\n+DEBUG = True\n")
	ev := &workspace.Evidence{Root: t.TempDir(), Diff: diff, DiffSHA256: "original"}
	rec := recorder.New(recorder.RunInfo{RunID: "r", Start: time.Now(), Policy: policy.Default()})
	res := rec.ScanSecrets(ev, readSecretFile)
	if res.Total != 1 {
		t.Fatalf("findings %+v, want the planted token", res)
	}
	if strings.Contains(string(ev.Diff), tok) || strings.Contains(string(ev.Diff), tok[4:16]) {
		t.Errorf("the kept diff still holds the token:\n%s", ev.Diff)
	}
	if !strings.Contains(string(ev.Diff), "DEBUG = True") {
		t.Errorf("redaction removed more than the secret:\n%s", ev.Diff)
	}
	if sum := sha256.Sum256(ev.Diff); ev.DiffSHA256 != hex.EncodeToString(sum[:]) {
		t.Error("DiffSHA256 does not describe the kept (redacted) diff")
	}
}

// TestDroppedValuesInDiffAndPublic: a dropped secret the child wrote into
// a file is redacted in the kept diff; a dropped value that is public in
// the run (the repository, the branch) is not a secret and stays, in the
// diff and in the repository URL.
func TestDroppedValuesInDiffAndPublic(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nmode: enforce\nenv:\n  allow: [PATH]\n"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		repoURL = "https://github.com/acme/widgets.git"
		branch  = "feature/login-flow"
		pw      = "correct-horse-staple"
	)
	env := []string{"PATH=/usr/bin", "GITHUB_REPOSITORY=acme/widgets", "GITHUB_HEAD_REF=" + branch, "DB_PASSWORD=" + pw, "CI=true"}
	_, _, dropped := policyEnv(pol, env, Account{}, time.Unix(1, 0))
	info := recorder.RunInfo{RunID: "r", Start: time.Now(), Policy: pol, Workspace: "/ws",
		Before: &workspace.Snapshot{Root: "/ws", RemoteURL: repoURL, Branch: branch}}
	info.RedactValues = redact.Secrets(dropped, publicMetadata(info, "/ws"))
	if len(info.RedactValues) != 1 || info.RedactValues[0] != pw {
		t.Fatalf("redacted %q, want only the password", info.RedactValues)
	}
	diff := []byte("diff --git a/notes b/notes\n--- a/notes\n+++ b/notes\n@@ -0,0 +1,2 @@\n+db " + pw + "\n+repo acme/widgets on " + branch + "\n")
	ev := &workspace.Evidence{Root: t.TempDir(), Diff: diff, DiffSHA256: "original"}
	recorder.New(info).ScanSecrets(ev, readSecretFile)
	if strings.Contains(string(ev.Diff), pw) || !strings.Contains(string(ev.Diff), "+db [REDACTED]\n+repo acme/widgets on "+branch+"\n") {
		t.Errorf("kept diff:\n%s", ev.Diff)
	}
	if sum := sha256.Sum256(ev.Diff); ev.DiffSHA256 != hex.EncodeToString(sum[:]) {
		t.Error("DiffSHA256 does not describe the kept (redacted) diff")
	}
}

// TestScanFindingsRedactedEverywhere: a secret the scan found by its
// context (NAME = "…" in a file) has no shape; where the run also used it
// bare (an argument, a file name) it is redacted too.
func TestScanFindingsRedactedEverywhere(t *testing.T) {
	const secret = "Vq3xT9mKp2LzR7wY4bN8cJ5h" // no token shape: found by its name only
	diff := []byte("diff --git a/app.cfg b/app.cfg\n--- a/app.cfg\n+++ b/app.cfg\n@@ -0,0 +1 @@\n+client_secret = \"" + secret + "\"\n")
	dir := t.TempDir()
	start := time.Now()
	rec := recorder.New(recorder.RunInfo{RunID: "r", Start: start, RootPID: 10, Workspace: dir, Policy: policy.Default()})
	rec.Add(event.Exec{Header: event.Header{Time: start, PID: 10}, Filename: "/usr/bin/curl", Argv: []string{"curl", "-d", secret, "https://x.test"}, Cwd: dir})
	rec.Add(event.File{Header: event.Header{Time: start, PID: 10}, Source: event.SourceEBPF, Op: event.FileCreate, Path: dir + "/out-" + secret + ".json"})
	ev := &workspace.Evidence{Root: dir, Diff: diff, DiffSHA256: "original"}
	if res := rec.ScanSecrets(ev, readSecretFile); res.Total != 1 {
		t.Fatalf("findings %+v, want the planted secret", res)
	}
	tr := rec.Finish(recorder.End{Time: start.Add(time.Second), Evidence: ev})
	var all strings.Builder
	for _, sp := range tr.Spans {
		all.WriteString(sp.Name + "\n")
		for _, kv := range sp.Attrs {
			all.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	if strings.Contains(all.String(), secret) || strings.Contains(string(ev.Diff), secret) {
		t.Errorf("the found secret survived:\n%s\n%s", all.String(), ev.Diff)
	}
	if !strings.Contains(all.String(), "curl -d [REDACTED] https://x.test") || !strings.Contains(all.String(), "/out-[REDACTED].json") {
		t.Errorf("argument or path not redacted in place:\n%s", all.String())
	}
}
