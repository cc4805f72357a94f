package recorder

import (
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/secretscan"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
)

// TestClassTree: the process that is the tool carries the class; the
// wrappers around it (a shell, npm test, env, sudo) go back to
// bash_command, and a runner whose tool is not seen keeps it.
func TestClassTree(t *testing.T) {
	events := []event.Event{
		exec(1, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "fix it"),

		// bash -c 'go test ./...' execs go in the same pid
		fork(10, 101, 100),
		exec(11, 101, 100, "/usr/bin/bash", ws, "bash", "-c", "go test ./..."),
		exec(12, 101, 100, "/usr/local/go/bin/go", ws, "go", "test", "./..."),
		fork(13, 120, 101),
		exec(14, 120, 101, "/tmp/go-build1/b001/app.test", ws, "/tmp/go-build1/b001/app.test", "-test.paniconexit0"),
		exit(15, 120, 1, 0),
		exit(16, 101, 1, 0),

		// npm test → sh -c jest → node …/.bin/jest
		fork(20, 102, 100),
		exec(21, 102, 100, "/usr/bin/node", ws, "node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "test"),
		fork(22, 103, 102),
		exec(23, 103, 102, "/bin/sh", ws, "sh", "-c", "jest --ci"),
		exec(24, 103, 102, "/usr/bin/node", ws, "node", ws+"/node_modules/.bin/jest", "--ci"),
		exit(25, 103, 0, 0),
		exit(26, 102, 0, 0),

		// npm test → sh -c "node test.js": the runner is all we have
		fork(30, 104, 100),
		exec(31, 104, 100, "/usr/bin/npm", ws, "npm", "test"),
		fork(32, 105, 104),
		exec(33, 105, 104, "/bin/sh", ws, "sh", "-c", "node test.js"),
		exec(34, 105, 104, "/usr/bin/node", ws, "node", "test.js"),
		exit(35, 105, 0, 0),
		exit(36, 104, 0, 0),

		// sudo forks apt-get
		fork(40, 106, 100),
		exec(41, 106, 100, "/usr/bin/sudo", ws, "sudo", "apt-get", "install", "-y", "curl", "jq"),
		fork(42, 107, 106),
		exec(43, 107, 106, "/usr/bin/apt-get", ws, "apt-get", "install", "-y", "curl", "jq"),
		exit(44, 107, 100, 0),
		exit(45, 106, 100, 0),

		// killed by the agent; and one still running at the end
		fork(50, 108, 100),
		exec(51, 108, 100, "/usr/bin/python3", ws, "/usr/bin/python3", "/usr/local/bin/pytest", "-q"),
		exit(52, 108, 0, 9),
		fork(53, 109, 100),
		exec(54, 109, 100, "/usr/local/go/bin/go", ws, "go", "vet", "./..."),

		// a plain command and a passing lint
		fork(60, 110, 100),
		exec(61, 110, 100, "/usr/bin/golangci-lint", ws, "golangci-lint", "run"),
		exit(62, 110, 0, 0),
		fork(63, 111, 100),
		exec(64, 111, 100, "/usr/bin/ls", ws, "ls"),
		exit(65, 111, 0, 0),
		exit(90, 100, 0, 0),
	}
	tr := record(runInfo(), events, End{Time: at(100)})
	want := `agent_run
  bash_command claude
    bash_command bash
      test_run go
        bash_command app.test
    bash_command node
      bash_command sh
        test_run node
    test_run npm
      bash_command sh
        bash_command node
    bash_command sudo
      dependency_install apt-get
    test_run python3
    lint_run go
    lint_run golangci-lint
    bash_command ls
`
	if got := tree(t, tr); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	byCmd := func(line string) *telemetry.Span {
		t.Helper()
		for i := range tr.Spans {
			if v, ok := tr.Spans[i].Attr(telemetry.CommandLine); ok && v.AsString() == line && tr.Spans[i].Type() != telemetry.SpanAgentRun {
				return &tr.Spans[i]
			}
		}
		t.Fatalf("no span for %q", line)
		return nil
	}
	unset := "<unset>"
	for _, tt := range []struct {
		line string
		want map[attribute.Key]string
	}{
		{"go test ./...", map[attribute.Key]string{
			telemetry.SpanType: "test_run", telemetry.CommandClass: "test_run", telemetry.CommandTool: "go test",
			telemetry.TestOutcome: "failed", telemetry.ProcessExitCode: "1", telemetry.OpenInferenceKind: "TOOL",
		}},
		{"bash -c 'go test ./...'", map[attribute.Key]string{
			telemetry.SpanType: "bash_command", telemetry.CommandClass: unset, telemetry.TestOutcome: unset,
		}},
		{"node " + ws + "/node_modules/.bin/jest --ci", map[attribute.Key]string{
			telemetry.CommandClass: "test_run", telemetry.CommandTool: "jest", telemetry.TestOutcome: "passed",
		}},
		{"node /usr/lib/node_modules/npm/bin/npm-cli.js test", map[attribute.Key]string{
			telemetry.SpanType: "bash_command", telemetry.CommandClass: unset,
		}},
		{"npm test", map[attribute.Key]string{
			telemetry.CommandClass: "test_run", telemetry.CommandTool: "npm test", telemetry.TestOutcome: "passed",
		}},
		{"sudo apt-get install -y curl jq", map[attribute.Key]string{
			telemetry.SpanType: "bash_command", telemetry.DependencyPackages: unset,
		}},
		{"apt-get install -y curl jq", map[attribute.Key]string{
			telemetry.CommandClass: "dependency_install", telemetry.DependencyManager: "apt",
			telemetry.DependencyPackages: `["curl","jq"]`, telemetry.ProcessExitCode: "100",
		}},
		{"/usr/bin/python3 /usr/local/bin/pytest -q", map[attribute.Key]string{
			telemetry.CommandTool: "pytest", telemetry.TestOutcome: "failed", telemetry.ProcessSignal: "SIGKILL",
		}},
		{"go vet ./...", map[attribute.Key]string{
			telemetry.CommandClass: "lint_run", telemetry.ProcessStillRunning: "true", telemetry.TestOutcome: unset,
		}},
		{"ls", map[attribute.Key]string{telemetry.CommandClass: unset, telemetry.CommandTool: unset}},
	} {
		wantAttrs(t, byCmd(tt.line), tt.want)
	}
}

// TestCommitSHAs pairs commit spans with End.Evidence's commits by time:
// oldest first, one commit per span, a failed commit gets none, and an
// amended-away commit still belongs to the process that made it.
func TestCommitSHAs(t *testing.T) {
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	commitAt := func(pid uint32, argv string, start, end time.Time, code int) []event.Event {
		return []event.Event{
			event.Fork{Header: event.Header{Time: start, PID: pid}, PPID: 100},
			event.Exec{Header: event.Header{Time: start, PID: pid}, PPID: 100, Filename: "/usr/bin/git", Argv: sh(argv), Cwd: ws},
			event.Exit{Header: event.Header{Time: end, PID: pid}, Code: code},
		}
	}
	var events []event.Event
	events = append(events, exec(0, 100, 1, "/usr/local/bin/claude", ws, "claude"))
	// two commits in the same second, then a failed one, then an amend
	events = append(events, commitAt(201, "git commit -m one", sec(10).Add(100*time.Millisecond), sec(10).Add(300*time.Millisecond), 0)...)
	events = append(events, commitAt(202, "git commit -m two", sec(10).Add(400*time.Millisecond), sec(10).Add(900*time.Millisecond), 0)...)
	events = append(events, commitAt(203, "git commit -m nothing", sec(20), sec(20).Add(50*time.Millisecond), 1)...)
	events = append(events, commitAt(204, "git commit -am three", sec(30).Add(800*time.Millisecond), sec(31).Add(200*time.Millisecond), 0)...)
	events = append(events, commitAt(205, "git commit --amend -m four", sec(40).Add(500*time.Millisecond), sec(40).Add(700*time.Millisecond), 0)...)
	events = append(events, commitAt(206, "bash -c 'git commit -m five'", sec(50), sec(50).Add(10*time.Millisecond), 0)...)
	ev := &workspace.Evidence{
		// newest first, as git log prints them; "one" and "two" share a second
		Commits: []workspace.Commit{
			{SHA: "4444", Time: sec(40)},
			{SHA: "2222", Time: sec(10)},
			{SHA: "1111", Time: sec(10)},
		},
		Abandoned: []workspace.Commit{{SHA: "3333", Time: sec(31)}},
	}
	tr := record(runInfo(), events, End{Time: sec(60), Evidence: ev})
	got := map[string]string{}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Type() != telemetry.SpanCommit && !strings.HasPrefix(s.Type(), "bash") {
			continue
		}
		line, _ := s.Attr(telemetry.CommandLine)
		sha, ok := s.Attr(telemetry.CommitSHA)
		if ok {
			got[line.AsString()] = s.Type() + " " + sha.AsString()
		} else {
			got[line.AsString()] = s.Type()
		}
	}
	want := map[string]string{
		"claude":                       "bash_command",
		"git commit -m one":            "commit 1111",
		"git commit -m two":            "commit 2222",
		"git commit -m nothing":        "commit",
		"git commit -am three":         "commit 3333",
		"git commit --amend -m four":   "commit 4444",
		"bash -c 'git commit -m five'": "commit", // its git was not seen; no commit listed at 50s
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("commit spans:\n got %v\nwant %v", got, want)
	}
}

// TestSecretScanSpan: the secret_scan span, its alerts counted on the
// root, and no secret anywhere in the trace.
func TestSecretScanSpan(t *testing.T) {
	gh := "gh" + "p_" + "Zx81Qp0LmN4vB7cT2yR5wK9sJ3hG6fD1aE0u"
	aws := "AK" + "IA" + "Q3ZK7M2XW4PLN5RT"
	var diff strings.Builder
	diff.WriteString("diff --git a/.env b/.env\n--- /dev/null\n+++ b/.env\n@@ -0,0 +1,2 @@\n+GITHUB_TOKEN=" + gh + "\n+AWS_ACCESS_KEY_ID=" + aws + "\n")
	diff.WriteString("diff --git a/big.txt b/big.txt\n--- /dev/null\n+++ b/big.txt\n")
	n := maxSecretLocations + 10
	fmt.Fprintf(&diff, "@@ -0,0 +1,%d @@\n", n)
	for i := range n {
		fmt.Fprintf(&diff, "+t%d = %s%02d\n", i, gh[:len(gh)-2], i)
	}
	res := secretscan.Scan([]byte(diff.String()))
	info := runInfo()
	info.Gaps = nil // a complete record: missing_telemetry is rules_test.go's
	tr := record(info, []event.Event{exec(1, 100, 1, "/usr/local/bin/claude", ws, "claude")},
		End{Time: at(50), SecretScan: &res})
	var span *telemetry.Span
	for i := range tr.Spans {
		if tr.Spans[i].Type() == telemetry.SpanSecretScan {
			span = &tr.Spans[i]
		}
	}
	if span == nil {
		t.Fatal("no secret_scan span")
	}
	if span.ParentID != tr.Spans[0].SpanID {
		t.Errorf("secret_scan is not under agent_run")
	}
	wantAttrs(t, span, map[attribute.Key]string{
		telemetry.SpanType:           "secret_scan",
		telemetry.OpenInferenceKind:  "GUARDRAIL",
		telemetry.SecretFindings:     fmt.Sprint(n + 2),
		telemetry.SecretRules:        fmt.Sprintf(`["aws-access-key-id:1","github-token:%d"]`, n+1),
		telemetry.SecretFilesScanned: "2",
		telemetry.SecretTruncated:    "true",
	})
	locs, _ := span.Attr(telemetry.SecretLocations)
	if l := locs.AsStringSlice(); len(l) != maxSecretLocations || l[0] != ".env:1 (github-token)" || l[1] != ".env:2 (aws-access-key-id)" || l[2] != "big.txt:1 (github-token)" {
		t.Errorf("locations %d: %q…", len(l), l[:min(3, len(l))])
	}
	alerts := 0
	for _, e := range span.Events {
		if e.Name == telemetry.EventAlert {
			alerts++
			if e.Attrs[0].Key != telemetry.AlertRule || e.Attrs[0].Value.AsString() != telemetry.AlertSecretFound {
				t.Errorf("alert %v", e.Attrs)
			}
		}
	}
	if alerts != maxSecretLocations+1 {
		t.Errorf("%d secret_found alerts, want %d (one per listed location and one for the rest)", alerts, maxSecretLocations+1)
	}
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{
		telemetry.AlertsCount: fmt.Sprint(maxSecretLocations + 1),
		telemetry.AlertsRules: `["secret_found"]`,
		attribute.Key(telemetry.AlertsRulePrefix + "secret_found"): fmt.Sprint(maxSecretLocations + 1),
	})
	noSecretIn(t, tr, gh, aws, gh[:len(gh)-2])
}

// noSecretIn fails when any secret, or its first 12 characters, appears
// in any string of the trace.
func noSecretIn(t *testing.T, tr *telemetry.Trace, secrets ...string) {
	t.Helper()
	dump, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("%s %+v", dump, tr)
	for _, s := range secrets {
		if strings.Contains(text, s[:12]) {
			t.Fatalf("trace holds a secret (%q…)", s[:4])
		}
	}
}

// TestRealGoTestAndCommit runs real `go test` (passing, then failing) in a
// tiny module and real `git commit`s in a real repository, feeds the
// recorder exec/exit events with the real times and exit codes, and checks
// the test outcomes and that each commit span got the SHA git made. The
// uncommitted diff carries a planted token that the secret_scan span
// counts and the trace never holds.
func TestRealGoTestAndCommit(t *testing.T) {
	for _, tool := range []string{"git", "go"} {
		if _, err := osexec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	env := append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=agent", "GIT_AUTHOR_EMAIL=agent@example.com",
		"GIT_COMMITTER_NAME=agent", "GIT_COMMITTER_EMAIL=agent@example.com", "GOFLAGS=-mod=mod", "GOWORK=off")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var events []event.Event
	pid := uint32(200)
	run := func(argv ...string) (string, int) {
		t.Helper()
		pid++
		cmd := osexec.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = dir, env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		end := time.Now()
		code := cmd.ProcessState.ExitCode()
		if err != nil && code < 0 {
			t.Fatalf("%v: %v", argv, err)
		}
		events = append(events,
			event.Fork{Header: event.Header{Time: start, PID: pid}, PPID: 100},
			event.Exec{Header: event.Header{Time: start, PID: pid}, PPID: 100, Filename: "/usr/bin/" + argv[0], Argv: argv, Cwd: dir},
			event.Exit{Header: event.Header{Time: end, PID: pid}, Code: code})
		return strings.TrimSpace(string(out)), code
	}
	must := func(argv ...string) string {
		t.Helper()
		out, code := run(argv...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", argv, code, out)
		}
		return out
	}

	// The base, before the run.
	for _, argv := range [][]string{{"git", "init", "-q", "-b", "main"}} {
		cmd := osexec.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	write("go.mod", "module example.com/tiny\n\ngo 1.21\n")
	write("tiny.go", "package tiny\n\nfunc Add(a, b int) int { return a + b }\n")
	write("tiny_test.go", "package tiny\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 2) != 4 {\n\t\tt.Fatal(\"bad\")\n\t}\n}\n")
	setup := osexec.Command("sh", "-c", "git add -A && git -c commit.gpgsign=false commit -q -m base")
	setup.Dir, setup.Env = dir, env
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("base commit: %v\n%s", err, out)
	}
	start := time.Now()
	before := workspace.Take(dir)
	events = append(events, event.Exec{Header: event.Header{Time: start, PID: 100}, PPID: 1, Filename: "/usr/bin/agent", Argv: []string{"agent"}, Cwd: dir})

	// The run: a passing test, a commit, a failing test, a fix, a commit.
	must("go", "test", "./...")
	write("tiny.go", "package tiny\n\n// Add adds.\nfunc Add(a, b int) int { return a + b }\n")
	must("git", "-c", "commit.gpgsign=false", "commit", "-q", "-am", "doc")
	write("tiny.go", "package tiny\n\nfunc Add(a, b int) int { return a - b }\n")
	if out, code := run("go", "test", "./..."); code == 0 {
		t.Fatalf("the broken test passed:\n%s", out)
	}
	write("tiny.go", "package tiny\n\nfunc Add(a, b int) int { return b + a }\n")
	must("git", "-c", "commit.gpgsign=false", "commit", "-q", "-am", "fix")
	if _, code := run("git", "commit", "-q", "-m", "nothing to commit"); code == 0 {
		t.Fatal("an empty commit succeeded")
	}
	token := "gh" + "p_" + "Rk2PzL9vQ4mX7nB1cW8yT5sH3jF6dG0aE2uV"
	write("notes.env", "TOKEN="+token+"\n")
	shas := strings.Fields(must("git", "log", "--format=%H", "-2"))

	ev := workspace.TakeEvidence(before, dir, workspace.Limits{})
	if ev.Absent != "" || len(ev.Commits) != 2 {
		t.Fatalf("evidence: absent %q, commits %+v, errors %v", ev.Absent, ev.Commits, ev.Errors)
	}
	res := secretscan.Scan(ev.Diff)
	info := runInfo()
	info.Workspace, info.Start, info.Before, info.RootPID = dir, start, before, 100
	tr := record(info, events, End{Time: time.Now(), Evidence: ev, SecretScan: &res})

	var outcomes, commits []string
	for i := range tr.Spans {
		s := &tr.Spans[i]
		switch s.Type() {
		case telemetry.SpanTestRun:
			v, _ := s.Attr(telemetry.TestOutcome)
			outcomes = append(outcomes, v.AsString())
		case telemetry.SpanCommit:
			v, _ := s.Attr(telemetry.CommitSHA)
			commits = append(commits, v.AsString())
		}
	}
	if strings.Join(outcomes, " ") != "passed failed" {
		t.Errorf("test outcomes %v, want passed failed", outcomes)
	}
	// git log is newest first; the spans are in start order.
	if want := []string{shas[1], shas[0], ""}; fmt.Sprint(commits) != fmt.Sprint(want) {
		t.Errorf("commit SHAs %v, want %v", commits, want)
	}
	for i := range tr.Spans {
		if tr.Spans[i].Type() == telemetry.SpanSecretScan {
			wantAttrs(t, &tr.Spans[i], map[attribute.Key]string{
				telemetry.SecretFindings:  "1",
				telemetry.SecretLocations: `["notes.env:1 (github-token)"]`,
			})
		}
	}
	noSecretIn(t, tr, token)
}
