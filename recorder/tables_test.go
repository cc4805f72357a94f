package recorder

import (
	"github.com/agentwatch/agentwatch/fileclass"
	"strings"
	"testing"
)

func TestAgentName(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"claude", "-p", "fix the flaky test"}, "claude"},
		{[]string{"bash", "-c", "mkdir -p src; echo hi > src/a.go; make test"}, "bash"},
		{[]string{"sh", "-c", "./ci/agent-task.sh --fast"}, "agent-task.sh"},
		{[]string{"bash", "-c", "cd repo && claude -p 'fix it'"}, "claude"},
		{[]string{"/home/u/.local/bin/claude", "--dangerously-skip-permissions"}, "claude"},
		{[]string{"/usr/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe", "-p", "hi"}, "claude"}, // npm's packaged binary
		{[]string{"/home/u/.local/share/claude/versions/2.0.31", "-p", "hi"}, "claude"},
		{[]string{"npx", "@anthropic-ai/claude-code", "-p", "hi"}, "claude"},
		{[]string{"npx", "-y", "@anthropic-ai/claude-code@latest", "-p", "hi"}, "claude"},
		{[]string{"npx", "--package=@openai/codex", "codex", "exec", "x"}, "codex"},
		{[]string{"npx", "-p", "@google/gemini-cli", "gemini"}, "gemini"},
		{[]string{"pnpm", "dlx", "@anthropic-ai/claude-code", "-p", "hi"}, "claude"},
		{[]string{"bunx", "opencode-ai@0.5.1", "run", "x"}, "opencode"},
		{[]string{"npm", "exec", "--", "@sourcegraph/amp", "-x", "hi"}, "amp"},
		{[]string{"node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p", "hi"}, "claude"},
		{[]string{"/usr/bin/node", "--max-old-space-size=4096", "/home/u/.npm-global/lib/node_modules/@openai/codex/bin/codex.js", "exec", "fix"}, "codex"},
		{[]string{"node", "-r", "/tmp/hook.js", "/x/node_modules/@google/gemini-cli/dist/index.js"}, "gemini"},
		{[]string{"node", "/x/node_modules/.bin/claude"}, "claude"},
		{[]string{"bun", "/x/node_modules/@anthropic-ai/claude-code/cli.js"}, "claude"},
		{[]string{"deno", "run", "-A", "npm:@anthropic-ai/claude-code"}, "claude"},
		{[]string{"env", "FOO=1", "codex", "exec", "fix it"}, "codex"},
		{[]string{"env", "-i", "PATH=/usr/bin", "HOME=/home/u", "aider", "--yes"}, "aider"},
		{[]string{"/usr/bin/env", "-u", "OPENAI_API_KEY", "-C", "/src", "goose", "run"}, "goose"},
		{[]string{"env", "-S", "ANTHROPIC_BASE_URL=http://127.0.0.1:9 claude -p hi"}, "claude"},
		{[]string{"sudo", "-u", "dev", "aider", "--model", "x"}, "aider"},
		{[]string{"sudo", "-E", "-H", "-u", "dev", "--", "/usr/local/bin/cursor-agent", "-p"}, "cursor-agent"},
		{[]string{"sudo", "-Hu", "dev", "OPENAI_API_KEY=x", "codex"}, "codex"},
		{[]string{"sudo", "--user=dev", "copilot"}, "copilot"},
		{[]string{"nice", "-n", "10", "claude"}, "claude"},
		{[]string{"nice", "-5", "aider"}, "aider"},
		{[]string{"timeout", "-s", "KILL", "30m", "codex", "exec", "x"}, "codex"},
		{[]string{"timeout", "--preserve-status", "1h", "claude", "-p", "x"}, "claude"},
		{[]string{"stdbuf", "-oL", "-e", "L", "gemini", "-p", "x"}, "gemini"},
		{[]string{"nohup", "goose", "session"}, "goose"},
		{[]string{"bash", "-c", `claude -p "fix the test"`}, "claude"},
		{[]string{"/bin/sh", "-c", "cd /src && ANTHROPIC_API_KEY=$KEY exec claude -p 'hi there'"}, "claude"},
		{[]string{"bash", "-lc", "source ~/.nvm/nvm.sh; npx @openai/codex exec fix"}, "codex"},
		{[]string{"bash", "--login", "-c", "opencode run x"}, "opencode"},
		{[]string{"bash", "-c", "make test"}, "make"},
		{[]string{"bash", "-o", "pipefail", "-c", "aider --yes | tee log"}, "aider"},
		{[]string{"bash", "-e", "-c", "-x", "gemini -p hi"}, "gemini"},
		{[]string{"bash", "run-agent.sh"}, "run-agent.sh"},
		{[]string{"python3", "-m", "aider", "--yes"}, "aider"},
		{[]string{"python3", "/home/u/.local/bin/aider"}, "aider"},
		{[]string{"uvx", "aider-chat", "--yes"}, "aider"},
		{[]string{"pipx", "run", "aider-chat"}, "aider"},
		{[]string{"sudo", "-u", "dev", "env", "FOO=1", "nice", "timeout", "5m", "npx", "-y", "@anthropic-ai/claude-code", "-p", "x"}, "claude"},
		{[]string{"make", "test"}, "make"},
		{[]string{"/usr/bin/python3", "train.py"}, "train"},
		{[]string{"env"}, "env"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := AgentName(tt.argv); got != tt.want {
			t.Errorf("AgentName(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	tests := []struct {
		argv []string
		want string // CommandLine of the result
	}{
		{[]string{"claude", "-p", "fix the flaky test"}, "claude -p 'fix the flaky test'"},
		{[]string{"mkdir", "-p", "a/b"}, "mkdir -p a/b"},
		{[]string{"curl", "-H", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "https://api.example.com"},
			"curl -H 'Authorization: Bearer [REDACTED:jwt]' https://api.example.com"},
		{[]string{"curl", "-H", "Authorization: Bearer abc123def456ghi789", "https://x"}, "curl -H 'Authorization: Bearer [REDACTED]' https://x"},
		{[]string{"curl", "-H", "Bearer", "abc123def456"}, "curl -H Bearer [REDACTED]"},
		{[]string{"curl", "-u", "admin:s3cr3tpw", "https://x"}, "curl -u admin:[REDACTED] https://x"},
		{[]string{"curl", "-uadmin:s3cr3tpw", "https://x"}, "curl -uadmin:[REDACTED] https://x"},
		{[]string{"export", "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx"}, "export OPENAI_API_KEY=[REDACTED]"},
		{[]string{"git", "clone", "https://oauth2:glpat-abcdefghijklmnopqrst@gitlab.com/a/b.git"}, "git clone https://oauth2:[REDACTED:gitlab-token]@gitlab.com/a/b.git"},
		{[]string{"git", "clone", "https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/a/b.git"}, "git clone https://[REDACTED:github-token]@github.com/a/b.git"},
		{[]string{"psql", "postgres://app:hunter2@db:5432/app"}, "psql postgres://app:[REDACTED:url-password]@db:5432/app"},
		{[]string{"tool", "--password=hunter2"}, "tool --password=[REDACTED]"},
		{[]string{"sh", "-c", "PGPASSWORD=hunter2 psql -h db"}, "sh -c 'PGPASSWORD=[REDACTED] psql -h db'"},
		{[]string{"env", "MY_SERVICE_TOKEN=abc", "GOFLAGS=-mod=mod", "go", "build"}, "env MY_SERVICE_TOKEN=[REDACTED] GOFLAGS=-mod=mod go build"},
		{[]string{"tool", "--dbpassword", "hunter2"}, "tool --dbpassword [REDACTED]"},
		{[]string{"tool", "--token", "abc"}, "tool --token [REDACTED]"},
		{[]string{"tool", "--api-key", "xyz", "--verbose"}, "tool --api-key [REDACTED] --verbose"},
		{[]string{"tool", "--client-secret=xyz"}, "tool --client-secret=[REDACTED]"},
		{[]string{"tool", "--password-file", "/run/secrets/pw"}, "tool --password-file /run/secrets/pw"},
		{[]string{"docker", "login", "--password-stdin", "-u", "me", "ghcr.io"}, "docker login --password-stdin -u me ghcr.io"},
		{[]string{"docker", "login", "-u", "me", "-p", "pa55word", "ghcr.io"}, "docker login -u me -p [REDACTED] ghcr.io"},
		{[]string{"docker", "run", "-p", "8080:80", "nginx"}, "docker run -p 8080:80 nginx"},
		{[]string{"mysql", "-uroot", "-pS3cret!", "app"}, "mysql -uroot -p[REDACTED] app"},
		{[]string{"mysql", "-u", "root", "-p", "app"}, "mysql -u root -p app"},
		{[]string{"sshpass", "-p", "hunter2", "ssh", "host"}, "sshpass -p [REDACTED] ssh host"},
		{[]string{"redis-cli", "-a", "hunter2", "ping"}, "redis-cli -a [REDACTED] ping"},
		{[]string{"aws", "configure", "set", "aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"}, "aws configure set aws_access_key_id [REDACTED:aws-access-key-id]"},
		{[]string{"bash", "-c", "GH_TOKEN=ghp_x1 gh pr create && curl --token abc123 x"}, "bash -c 'GH_TOKEN=[REDACTED] gh pr create && curl --token [REDACTED] x'"},
		{[]string{"slack", "xoxb-1234567890-abcdefghij"}, "slack [REDACTED:slack-token]"},
		{[]string{"claude", "-p", "add basic authentication to the token refresh"}, "claude -p 'add basic authentication to the token refresh'"},
		{[]string{"llm", "--max-tokens", "500"}, "llm --max-tokens 500"},
		{[]string{"echo", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"}, "echo '-----BEGIN OPENSSH PRIVATE KEY-----\n[REDACTED]\n-----END OPENSSH PRIVATE KEY-----'"},
		{[]string{"printf", "it's"}, `printf 'it'\''s'`},
		{[]string{"true", ""}, "true ''"},
	}
	for _, tt := range tests {
		in := append([]string(nil), tt.argv...)
		got := CommandLine(RedactArgs(tt.argv))
		if got != tt.want {
			t.Errorf("redact %q:\n got %s\nwant %s", tt.argv, got, tt.want)
		}
		if strings.Join(in, "\x00") != strings.Join(tt.argv, "\x00") {
			t.Errorf("RedactArgs modified its input %q", tt.argv)
		}
	}
}

func TestClassifyFile(t *testing.T) {
	tests := []struct {
		rel    string
		secret bool
		want   string
	}{
		{"main.go", false, ClassSource},
		{"internal/x/y.py", false, ClassSource},
		{"pkg/a_test.go", false, ClassTest},
		{"tests/test_api.py", false, ClassTest},
		{"web/src/App.spec.tsx", false, ClassTest},
		{"src/__tests__/x.js", false, ClassTest},
		{"go.sum", false, ClassLockfile},
		{"web/package-lock.json", false, ClassLockfile},
		{"Cargo.lock", false, ClassLockfile},
		{".github/workflows/ci.yml", false, ClassWorkflow},
		{".gitlab-ci.yml", false, ClassWorkflow},
		{".env", true, ClassSecret},
		{"go.mod", false, ClassConfig},
		{"package.json", false, ClassConfig},
		{"config/app.yaml", false, ClassConfig},
		{"Makefile", false, ClassConfig},
		{"api/v1/api.pb.go", false, ClassGenerated},
		{"node_modules/left-pad/index.js", false, ClassGenerated},
		{"dist/app.min.js", false, ClassGenerated},
		{"ebpf/agentwatch_bpfel.go", false, ClassGenerated},
		{"README.md", false, ClassDocs},
		{"docs/guide/intro.html", false, ClassSource}, // source extension wins over docs/
		{"docs/diagram.svg", false, ClassDocs},
		{"LICENSE", false, ClassDocs},
		{"assets/logo.png", false, ClassOther},
	}
	for _, tt := range tests {
		if got := classifyFile(ws+"/"+tt.rel, tt.rel, tt.secret); got != tt.want {
			t.Errorf("classifyFile(%q, secret=%v) = %q, want %q", tt.rel, tt.secret, got, tt.want)
		}
	}
	if got := classifyFile("/home/dev/.bashrc", "", false); got != ClassOther {
		t.Errorf("outside workspace .bashrc = %q", got)
	}
}

func TestSegmentSet(t *testing.T) {
	for _, tc := range []struct {
		rel, seg string
		want     bool
	}{
		{"node_modules/x/y.js", "node_modules/", true},
		{"web/node_modules/x.js", "node_modules/", true},
		{"web/my_node_modules/x.js", "node_modules/", false},
		{"xnode_modules/a", "node_modules/", false},
		{"a/xbuild/b/build/c", "build/", true},
		{"a/build", "build/", false}, // a file named build, not a directory
		{"a/.eslintcache", ".eslintcache", true},
		{".eslintcache-x/y", ".eslintcache", true},
		{"a/x.eslintcache", ".eslintcache", false},
		{"src/main.go", "dist/", false},
		{"", "dist/", false},
	} {
		// The expression the set replaced: seg at the start of a segment.
		old := strings.HasPrefix(tc.rel, tc.seg) || strings.Contains(tc.rel, "/"+tc.seg)
		if got := fileclass.NewSegmentSet("other/", tc.seg, ".x").In(tc.rel); got != tc.want || got != old {
			t.Errorf("segment %q in %q = %v, want %v (the old expression: %v)", tc.seg, tc.rel, got, tc.want, old)
		}
	}
}
