package recorder

import (
	"fmt"
	"strings"
	"testing"
)

// TestUnwrapArgv: what the one walker says a wrapper runs, how, and where
// in the outer argv the inner command line starts.
func TestUnwrapArgv(t *testing.T) {
	tests := []struct {
		argv []string
		want string // "kind offset argv…" per inner command line, "; "-separated; "-" for not a wrapper
	}{
		{[]string{"claude", "-p", "x"}, "-"},
		{[]string{"env"}, ""},
		{[]string{"env", "FOO=1", "claude", "-p", "x"}, "command 2 claude -p x"},
		{[]string{"env", "-S", "FOO=1 claude -p x"}, "command -1 claude -p x"},
		{[]string{"sudo", "-Hu", "dev", "OPENAI_API_KEY=x", "codex"}, "command 4 codex"},
		{[]string{"doas", "-u", "dev", "claude"}, "command 3 claude"},
		{[]string{"timeout", "-s", "KILL", "30m", "codex", "exec", "x"}, "command 4 codex exec x"},
		{[]string{"time", "-f", "%e", "go", "test"}, "command 3 go test"},
		{[]string{"npx", "-y", "@anthropic-ai/claude-code@latest", "-p", "x"}, "package 2 @anthropic-ai/claude-code@latest -p x"},
		{[]string{"npx", "-p", "@google/gemini-cli", "gemini"}, "package 3 gemini pkg=@google/gemini-cli"},
		{[]string{"npx", "--package=@openai/codex"}, "package -1 pkg=@openai/codex"},
		{[]string{"npx", "-c", "eslint ."}, "command -1 eslint ."},
		{[]string{"pnpm", "-C", "web", "dlx", "@anthropic-ai/claude-code", "-p", "x"}, "package 4 @anthropic-ai/claude-code -p x"},
		{[]string{"npm", "exec", "--", "jest"}, "package 3 jest"},
		{[]string{"npm", "ci"}, ""},
		{[]string{"yarn", "jest", "--ci"}, "bin 1 jest --ci"},
		{[]string{"uvx", "--from", "aider-chat", "aider"}, "package 3 aider"},
		{[]string{"uv", "tool", "run", "ruff", "check"}, "package 3 ruff check"},
		{[]string{"uv", "run", "--with", "x", "pytest", "-q"}, "command 4 pytest -q"},
		{[]string{"pipx", "run", "aider-chat"}, "package 2 aider-chat"},
		{[]string{"poetry", "run", "pytest"}, "command 2 pytest"},
		{[]string{"node", "-r", "/tmp/hook.js", "/x/node_modules/@google/gemini-cli/dist/index.js", "-p"}, "script 3 /x/node_modules/@google/gemini-cli/dist/index.js -p"},
		{[]string{"node", "-e", "require('x')"}, ""},
		{[]string{"nodejs", "cli.js"}, "script 1 cli.js"},
		{[]string{"bun", "run", "vitest"}, "script 2 vitest"},
		{[]string{"bun", "x", "vitest"}, "package 2 vitest"},
		{[]string{"deno", "run", "-A", "npm:@anthropic-ai/claude-code"}, "script 3 npm:@anthropic-ai/claude-code"},
		{[]string{"python3", "-m", "pytest", "-q"}, "module 2 pytest -q"},
		{[]string{"python3.12", "/usr/local/bin/pytest"}, "script 1 /usr/local/bin/pytest"},
		{[]string{"python3", "-c", "print(1)"}, ""},
		{[]string{"bash", "run-agent.sh"}, "script 1 run-agent.sh"},
		{[]string{"sh", "-c", "cd x && if go test ./...; then FOO=1 exec claude -p hi; fi"}, "shell 2 cd x; shell 2 go test ./...; shell 2 FOO=1 exec claude -p hi; shell 2 fi"},
		{[]string{"bash", "-o", "pipefail", "-e", "-c", "-x", "make test"}, "shell 6 make test"},
		{[]string{"bash", "-c"}, ""},
		{nil, "-"},
	}
	kinds := map[argvKind]string{runsCommand: "command", runsPackage: "package", runsBin: "bin", runsScript: "script", runsModule: "module", runsShell: "shell"}
	for _, tt := range tests {
		inner, ok := unwrapArgv(tt.argv)
		got := "-"
		if ok {
			var parts []string
			for _, in := range inner {
				p := fmt.Sprintf("%s %d", kinds[in.kind], in.offset)
				if len(in.argv) > 0 {
					p += " " + strings.Join(in.argv, " ")
				}
				if in.pkg != "" {
					p += " pkg=" + in.pkg
				}
				parts = append(parts, p)
				if in.offset >= 0 && in.kind != runsShell && strings.Join(tt.argv[in.offset:], "\x00") != strings.Join(in.argv, "\x00") {
					t.Errorf("unwrapArgv(%q): offset %d is not where %q starts", tt.argv, in.offset, in.argv)
				}
			}
			got = strings.Join(parts, "; ")
		}
		if got != tt.want {
			t.Errorf("unwrapArgv(%q)\n got %s\nwant %s", tt.argv, got, tt.want)
		}
	}
}
