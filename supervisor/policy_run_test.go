package supervisor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// TestEnvPolicyRun runs a real child under an env allowlist, as root with
// the real sensors, in both modes: the child's environment, the names on
// the root span, the end-of-run summary, and that the planted secret value
// (which also appears in a later command's argv) is nowhere in the trace
// file or the store's files.
func TestEnvPolicyRun(t *testing.T) {
	privtest.Require(t)
	const secret = "plain-value-no-token-shape-9f3a7c"
	tests := []struct {
		mode          string
		childHas      bool
		filtered      string
		summaryLine   string
		wantAlertRule string
	}{
		{"enforce", false, "true", "env dropped: ", ""},
		{"observe", true, "false", "env not in env.allow (observe mode, passed on): ", "env_secret_exposed"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			ws, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			pol := filepath.Join(ws, "policy.yaml")
			if err := os.WriteFile(pol, []byte("version: 1\nmode: "+tt.mode+"\nenv:\n  allow: [PATH, LANG]\n  set: {CI: \"true\"}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			envOut := filepath.Join(ws, "child.env")
			storeDir, traceFile := t.TempDir(), filepath.Join(t.TempDir(), "run.json")
			// The secret in a later command's argv: echo prints it.
			script := "env > " + envOut + "; /bin/echo " + secret + " >/dev/null"
			cmd := agentwatch(t, "run", "--user", "root", "--store", storeDir, "--trace-file", traceFile,
				"--policy", pol, "--", "/bin/sh", "-c", script)
			cmd.Dir = ws
			// A small, known environment, so the summary lists it whole.
			cmd.Env = []string{asAgentwatch + "=1", "PATH=" + os.Getenv("PATH"), "HOME=/root", "MY_API_TOKEN=" + secret, "LANG=C.UTF-8"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("agentwatch: %v\n%s", err, out)
			}
			childEnv, err := os.ReadFile(envOut)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(childEnv), secret) != tt.childHas {
				t.Errorf("child has the secret: %v, want %v\n%s", !tt.childHas, tt.childHas, childEnv)
			}
			for _, want := range []string{"PATH=", "LANG=C.UTF-8", "CI=true", "HOME=/root"} {
				if !strings.Contains(string(childEnv), want) {
					t.Errorf("child environment lacks %s:\n%s", want, childEnv)
				}
			}
			if !strings.Contains(string(out), tt.summaryLine) || !strings.Contains(string(out), "MY_API_TOKEN") {
				t.Errorf("no env summary on stderr:\n%s", out)
			}

			st, err := store.Open(storeDir)
			if err != nil {
				t.Fatal(err)
			}
			tr, _, err := st.Load(context.Background(), runID(t, string(out)))
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			root := tr.Root()
			dropped, _ := root.Attr(telemetry.EnvDropped)
			filtered, _ := root.Attr(telemetry.EnvFiltered)
			mode, _ := root.Attr(telemetry.PolicyMode)
			if !strings.Contains(dropped.Emit(), "MY_API_TOKEN") || filtered.Emit() != tt.filtered || mode.AsString() != tt.mode {
				t.Errorf("root: env.dropped %s, env.filtered %s, mode %s", dropped.Emit(), filtered.Emit(), mode.Emit())
			}
			var echoLine string
			var rules []string
			for i := range tr.Spans {
				s := &tr.Spans[i]
				if v, _ := s.Attr(telemetry.ProcessExecutableName); v.AsString() == "echo" {
					l, _ := s.Attr(telemetry.CommandLine)
					echoLine = l.AsString()
				}
				for _, e := range s.Events {
					for _, kv := range e.Attrs {
						if kv.Key == telemetry.AlertRule {
							rules = append(rules, kv.Value.AsString())
						}
					}
				}
			}
			if echoLine != "/bin/echo [REDACTED]" {
				t.Errorf("echo's command line %q", echoLine)
			}
			if tt.wantAlertRule != "" && !strings.Contains(strings.Join(rules, " "), tt.wantAlertRule) {
				t.Errorf("alerts %q, want %s", rules, tt.wantAlertRule)
			}
			// Nowhere on disk: the trace file and every file of the store.
			for _, dir := range []string{filepath.Dir(traceFile), storeDir} {
				filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					if b, _ := os.ReadFile(p); strings.Contains(string(b), secret) {
						t.Errorf("the dropped value is in %s", p)
					}
					return nil
				})
			}
		})
	}
}
