package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/policy"
)

// TestPolicyFromBaseCommit: the workspace's policy is HEAD's, never what a
// previous run left in the worktree.
func TestPolicyFromBaseCommit(t *testing.T) {
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=a@b", "-c", "user.name=a"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	committed := "version: 1\nmode: enforce\nnetwork:\n  allow: [api.anthropic.com]\n"
	planted := "version: 1\nmode: observe\nnetwork:\n  allow: ['*.evil.example']\n"
	for _, tc := range []struct {
		name     string
		commit   bool   // .agentwatch.yaml committed (the committed content)
		worktree string // what the worktree holds afterwards; "" none
		mode     policy.Mode
		warn     string
	}{
		{"committed, untouched", true, committed, policy.Enforce, ""},
		{"committed, changed in the worktree", true, planted, policy.Enforce, "differs from the base commit's"},
		{"committed, deleted in the worktree", true, "", policy.Enforce, ""},
		{"planted, not committed", false, planted, policy.Observe, "not in the base commit"},
		{"none", false, "", policy.Observe, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			git(dir, "init", "-q")
			f := filepath.Join(dir, policy.FileName)
			if tc.commit {
				os.WriteFile(f, []byte(committed), 0o644)
				git(dir, "add", policy.FileName)
			}
			git(dir, "commit", "-q", "--allow-empty", "-m", "base")
			os.Remove(f)
			if tc.worktree != "" {
				os.WriteFile(f, []byte(tc.worktree), 0o644)
			}
			var warns []string
			p, err := resolvePolicy("", "", dir, func(w string) { warns = append(warns, w) })
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode != tc.mode {
				t.Errorf("mode %s, want %s (source %s)", p.Mode, tc.mode, p.Source)
			}
			wantSource := policy.SourceBuiltIn
			if tc.commit {
				wantSource = "HEAD:" + policy.FileName
			}
			if p.Source != wantSource {
				t.Errorf("policy from %q, want %q", p.Source, wantSource)
			}
			got := strings.Join(warns, "\n")
			if (tc.warn == "") != (got == "") || !strings.Contains(got, tc.warn) {
				t.Errorf("warnings %q, want %q", got, tc.warn)
			}
		})
	}
}
