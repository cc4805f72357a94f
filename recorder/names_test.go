package recorder

import (
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
)

// Span names say what each row is, for a person scanning a backend's
// list; the type stays queryable in agentwatch.span.type.
func TestSpanNames(t *testing.T) {
	hostile := "/tmp/\x1b[31mevil" + strings.Repeat("x", 100)
	tr := record(runInfo(), []event.Event{
		exec(1, 100, 1, "/usr/bin/claude", ws, "claude", "-p", "fix"),
		exec(2, 101, 100, "/usr/bin/git", ws, "git", "-C", ws, "status", "--short"),
		exit(3, 101, 0, 0),
		exec(4, 102, 100, "/usr/bin/go", ws, "go", "test", "./..."),
		exit(5, 102, 0, 0),
		exec(6, 103, 100, "/usr/bin/git", ws, "git", "commit", "-m", "ghp_notasubcommand0000000000000000000000"),
		exit(7, 103, 0, 0),
		exec(8, 104, 100, "/usr/bin/python3", ws, "python3", "x.py"),
		file(9, 104, event.FileCreate, ws+"/src/main.go"),
		file(10, 104, event.FileWrite, ws+"/main_test.go"),
		conn(11, 104, event.TCP, "203.0.113.7:443", 0, "api.example.com"),
		conn(12, 104, event.TCP, "198.51.100.9:8080", 0, ""),
		exit(13, 104, 0, 0),
		exec(14, 105, 100, hostile, ws, hostile),
		exit(15, 105, 0, 0),
		exit(16, 100, 0, 0),
	}, End{Time: at(20)})
	var names []string
	byType := map[string][]string{}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		names = append(names, s.Name)
		byType[s.Type()] = append(byType[s.Type()], s.Name)
	}
	for _, want := range []string{"invoke_agent claude", "claude", "git status", "go test", "git commit", "python3",
		"create source", "write test", "connect api.example.com", "connect address"} {
		if !slices.Contains(names, want) {
			t.Errorf("no span named %q in %q", want, names)
		}
	}
	if got := byType[telemetry.SpanAgentRun]; len(got) != 1 || got[0] != "invoke_agent claude" {
		t.Errorf("agent_run spans %q", got)
	}
	if got := byType[telemetry.SpanTestRun]; len(got) != 1 || got[0] != "go test" {
		t.Errorf("test_run spans %q: the type stays what it was", got)
	}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if exe, ok := s.Attr(telemetry.ProcessExecutableName); ok && s.Type() != telemetry.SpanAgentRun {
			if v, _ := s.Attr(telemetry.OIToolName); v.AsString() != exe.AsString() {
				t.Errorf("%s: tool.name %q, want the executable %q", s.Name, v.AsString(), exe.AsString())
			}
		}
	}
	for _, typ := range []string{telemetry.SpanAgentRun, telemetry.SpanTestRun} {
		for i := range tr.Spans {
			if s := &tr.Spans[i]; s.Type() == typ {
				if v, _ := s.Attr(telemetry.ProcessUserName); v.AsString() != "dev" {
					t.Errorf("%s: process.user.name %q, want the run's account dev", typ, v.AsString())
				}
			}
		}
	}
	for _, n := range names {
		if strings.ContainsAny(n, "\x1b\x00\n") || len(n) > maxNameBytes+len("invoke_agent ") {
			t.Errorf("span name %q: control characters or unbounded", n)
		}
		if strings.Contains(n, "ghp_") {
			t.Errorf("span name %q carries an argument that is no subcommand", n)
		}
	}
}

func TestProcessSpanName(t *testing.T) {
	for _, tt := range []struct {
		exe  string
		args []string
		want string
	}{
		{"/usr/bin/git", []string{"git", "-C", "/w", "-c", "x=y", "log", "-p"}, "git log"},
		{"/usr/bin/git", []string{"git"}, "git"},
		{"/usr/local/go/bin/go", []string{"go", "-C", "sub", "build", "./..."}, "go build"},
		{"/usr/bin/npm", []string{"npm", "--prefix", "web", "install"}, "npm install"},
		{"/usr/bin/npm", []string{"npm", "run", "Build:Prod"}, "npm run"},
		{"/usr/bin/pip3", []string{"pip3", "install", "-r", "req.txt"}, "pip3 install"},
		{"/usr/bin/git", []string{"git", "./not-a-word"}, "git"},
		{"/usr/bin/curl", []string{"curl", "https://x"}, "curl"},
		{"/usr/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude", "-p", "fix"}, "claude"},
		{"", []string{"/opt/tool/bin/thing", "run"}, "thing"},
		{"", nil, "process"},
	} {
		if got := processSpanName(tt.exe, tt.args); got != tt.want {
			t.Errorf("processSpanName(%q, %q) = %q, want %q", tt.exe, tt.args, got, tt.want)
		}
	}
}

// A script's span is named by the script; process.executable.* is the
// interpreter, as /proc/PID/exe would say.
func TestScriptExecutable(t *testing.T) {
	e := exec(2, 101, 100, ws+"/ci/task.sh", ws, "./ci/task.sh", "--fast")
	e.Interpreter = "/bin/bash"
	tr := record(runInfo(), []event.Event{
		exec(1, 100, 1, "/usr/bin/claude", ws, "claude"),
		e, exit(3, 101, 0, 0), exit(4, 100, 0, 0),
	}, End{Time: at(5)})
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Name != "task.sh" {
			continue
		}
		wantAttrs(t, s, map[attribute.Key]string{
			telemetry.ProcessExecutablePath: "/bin/bash",
			telemetry.ProcessExecutableName: "bash",
			telemetry.CommandLine:           "./ci/task.sh --fast",
		})
		return
	}
	t.Errorf("no span named task.sh")
}
