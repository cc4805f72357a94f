package recorder

import (
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/telemetry"
)

func TestPromptArgs(t *testing.T) {
	const p = "fix the flaky test in pkg/x"
	m := PromptMarker(p)
	tests := []struct {
		argv []string
		want []string
	}{
		{[]string{"claude", "-p", p}, []string{"claude", "-p", m}},
		{[]string{"claude", "--print", "--model", "sonnet", p}, []string{"claude", "--print", "--model", "sonnet", m}},
		{[]string{"claude", p}, []string{"claude", m}},
		{[]string{"claude", "--append-system-prompt", "be terse", "-p", p}, []string{"claude", "--append-system-prompt", PromptMarker("be terse"), "-p", m}},
		{[]string{"claude", "mcp", "add", "srv", "cmd"}, []string{"claude", "mcp", "add", "srv", "cmd"}},
		{[]string{"claude", "--version"}, []string{"claude", "--version"}},
		{[]string{"codex", "exec", "--model", "o3", p}, []string{"codex", "exec", "--model", "o3", m}},
		{[]string{"codex", p}, []string{"codex", m}},
		{[]string{"codex", "login"}, []string{"codex", "login"}},
		{[]string{"aider", "--message", p, "main.go"}, []string{"aider", "--message", m, "main.go"}},
		{[]string{"aider", "-m", p}, []string{"aider", "-m", m}},
		{[]string{"aider", "--message=" + p}, []string{"aider", "--message=" + m}},
		{[]string{"gemini", "-p", p, "-m", "gemini-2.5-pro"}, []string{"gemini", "-p", m, "-m", "gemini-2.5-pro"}},
		{[]string{"cursor-agent", "-p", p}, []string{"cursor-agent", "-p", m}},
		{[]string{"opencode", "run", p}, []string{"opencode", "run", m}},
		{[]string{"opencode", "auth", "login"}, []string{"opencode", "auth", "login"}},
		{[]string{"amp", "-x", p}, []string{"amp", "-x", m}},
		{[]string{"goose", "run", "-t", p}, []string{"goose", "run", "-t", m}},
		{[]string{"copilot", "-p", p}, []string{"copilot", "-p", m}},
		// through wrappers and interpreters
		{[]string{"env", "FOO=1", "timeout", "600", "claude", "-p", p}, []string{"env", "FOO=1", "timeout", "600", "claude", "-p", m}},
		{[]string{"npx", "@anthropic-ai/claude-code", "-p", p}, []string{"npx", "@anthropic-ai/claude-code", "-p", m}},
		{[]string{"sudo", "-u", "dev", "claude", "-p", p}, []string{"sudo", "-u", "dev", "claude", "-p", m}},
		{[]string{"timeout", "-s", "KILL", "10m", "nice", "-n", "5", "codex", "exec", p}, []string{"timeout", "-s", "KILL", "10m", "nice", "-n", "5", "codex", "exec", m}},
		{[]string{"env", "-u", "HOME", "-C", "/ws", "aider", "-m", p}, []string{"env", "-u", "HOME", "-C", "/ws", "aider", "-m", m}},
		{[]string{"node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p", p}, []string{"node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p", m}},
		{[]string{"/bin/sh", "/home/dev/.local/bin/claude", "-p", p}, []string{"/bin/sh", "/home/dev/.local/bin/claude", "-p", m}},
		{[]string{"bash", "-c", "cd /ws && claude -p '" + p + "' --model sonnet"}, []string{"bash", "-c", "cd /ws && claude -p '" + m + "' --model sonnet"}},
		// not agents, or no prompt
		{[]string{"git", "commit", "-m", "claude"}, []string{"git", "commit", "-m", "claude"}},
		{[]string{"grep", "-r", "codex", "src/"}, []string{"grep", "-r", "codex", "src/"}},
		{[]string{"bash", "-c", "echo hi"}, []string{"bash", "-c", "echo hi"}},
	}
	for _, tt := range tests {
		in := append([]string(nil), tt.argv...)
		got := PromptArgs(tt.argv, false)
		if strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
			t.Errorf("PromptArgs(%q)\n got %q\nwant %q", tt.argv, got, tt.want)
		}
		if strings.Join(in, "\x00") != strings.Join(tt.argv, "\x00") {
			t.Errorf("PromptArgs modified its input %q", in)
		}
		if full := PromptArgs(tt.argv, true); strings.Join(full, "\x00") != strings.Join(tt.argv, "\x00") {
			t.Errorf("full capture changed %q: %q", tt.argv, full)
		}
	}
	// A prompt the script holds with escapes: the script goes whole.
	got := PromptArgs([]string{"sh", "-c", `claude -p "say \"hi\" to ` + p + `"`}, false)
	if strings.Contains(got[2], p) || !strings.HasPrefix(got[2], "[script: ") {
		t.Errorf("escaped prompt in a script: %q", got[2])
	}
	if m != PromptMarker(p) || !strings.HasPrefix(m, "[prompt: 27 chars sha256:") || len(m) != len("[prompt: 27 chars sha256:]")+16 {
		t.Errorf("marker %q", m)
	}
}

// TestPromptInTrace: metadata mode keeps the prompt's length and digest on
// the root and on the agent's process span; full capture keeps the text,
// redacted; a command after the capture expired is metadata again.
func TestPromptInTrace(t *testing.T) {
	const p = "fix the flaky test"
	tok := "gh" + "p_" + strings.Repeat("Ab3d", 9)
	for _, full := range []bool{false, true} {
		info := runInfo()
		info.Argv = []string{"claude", "-p", p + " with " + tok}
		if full {
			info.Capture = Capture{Full: true, Until: at(500)}
		}
		r := New(info)
		r.Add(exec(2, 100, 1, "/usr/local/bin/claude", ws, info.Argv...))
		r.Add(exec(600, 101, 100, "/usr/local/bin/claude", ws, "claude", "-p", "later "+p))
		tr := r.Finish(End{Time: at(1000)})
		var lines []string
		for _, sp := range tr.Spans {
			if v, ok := sp.Attr(telemetry.CommandLine); ok {
				lines = append(lines, v.AsString())
			}
		}
		text := strings.Join(lines, "\n")
		if strings.Contains(text, tok) {
			t.Errorf("full=%v: the token reached a command line:\n%s", full, text)
		}
		if strings.Contains(text, "later "+p) {
			t.Errorf("full=%v: a prompt past the capture's expiry was kept:\n%s", full, text)
		}
		if got := strings.Contains(text, p+" with [REDACTED:github-token]"); got != full {
			t.Errorf("full=%v: prompt text kept %v:\n%s", full, got, text)
		}
		if !strings.Contains(text, "[prompt: ") {
			t.Errorf("full=%v: no prompt marker:\n%s", full, text)
		}
	}
}
