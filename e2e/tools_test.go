package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/telemetry"
)

// notesServer is a minimal MCP server over stdio (newline-delimited
// JSON-RPC 2.0: initialize, tools/list, tools/call, ping): one tool,
// add_note, that appends its text to notes.txt in its working directory.
const notesServer = `#!/usr/bin/python3
import json
import os
import sys

TOOLS = [{
    "name": "add_note",
    "description": "Append a note to notes.txt",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}]


def reply(id_, result=None, error=None):
    msg = {"jsonrpc": "2.0", "id": id_}
    if error is not None:
        msg["error"] = error
    else:
        msg["result"] = result
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        req = json.loads(line)
    except ValueError:
        continue
    method, id_ = req.get("method"), req.get("id")
    if id_ is None:
        continue  # a notification (notifications/initialized, ...)
    if method == "initialize":
        version = req.get("params", {}).get("protocolVersion", "2025-06-18")
        reply(id_, {"protocolVersion": version, "capabilities": {"tools": {}},
                    "serverInfo": {"name": "notes", "version": "1.0"}})
    elif method == "tools/list":
        reply(id_, {"tools": TOOLS})
    elif method == "tools/call":
        params = req.get("params", {})
        if params.get("name") != "add_note":
            reply(id_, error={"code": -32602, "message": "no such tool"})
            continue
        with open(os.path.join(os.getcwd(), "notes.txt"), "a") as f:
            f.write(params.get("arguments", {}).get("text", "") + "\n")
        reply(id_, {"content": [{"type": "text", "text": "noted"}]})
    elif method == "ping":
        reply(id_, {})
    else:
        reply(id_, error={"code": -32601, "message": "method not found"})
`

// flakyCommand fails the first time (it leaves the flag behind) and
// passes the second: the model's retry of the same call.
const flakyCommand = `test -f flag || { touch flag; echo "no flag yet" >&2; exit 3; }`

// toolsScript: Read README.md, Edit it, the flaky Bash command twice, the
// notes server's add_note, then the answer.
func toolsScript(ws string) []fakemodel.Turn {
	readme := filepath.Join(ws, "README.md")
	u := func(n int) fakemodel.Usage {
		return fakemodel.Usage{InputTokens: 1000 + n, CacheReadInputTokens: 10 * n, OutputTokens: 30 + n}
	}
	return []fakemodel.Turn{
		fakemodel.ToolTurn("Read", map[string]any{"file_path": readme}, u(1)),
		fakemodel.ToolTurn("Edit", map[string]any{"file_path": readme, "old_string": "e2e workspace", "new_string": "e2e workspace, edited"}, u(2)),
		fakemodel.BashTurn(flakyCommand, u(3)),
		fakemodel.BashTurn(flakyCommand, u(4)),
		fakemodel.ToolTurn("mcp__notes__add_note", map[string]any{"text": "hello from the model"}, u(5)),
		fakemodel.TextTurn("Done.", u(6)),
	}
}

// setupNotes writes the MCP server where the test user can run it and
// the workspace's .mcp.json naming it; it returns the .mcp.json path.
func setupNotes(t *testing.T, a account, ws string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentwatch-e2e-mcp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "notes_mcp.py")
	if err := os.WriteFile(script, []byte(notesServer), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(ws, ".mcp.json")
	body := `{"mcpServers":{"notes":{"type":"stdio","command":"/usr/bin/python3","args":["` + script + `"]}}}`
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cfg, int(a.UID), int(a.GID)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestToolSpansTelemetryOff(t *testing.T) { runToolsScenario(t, false) }
func TestToolSpansTelemetryOn(t *testing.T)  { runToolsScenario(t, true) }

func runToolsScenario(t *testing.T, agentTelemetry bool) {
	privtest.Require(t)
	a := ensureUser(t)
	claude := ensureClaude(t)
	aw := buildAgentwatch(t)
	ws := newWorkspace(t, a)
	mcpConfig := setupNotes(t, a, ws)
	srv := fakemodel.New(toolsScript(ws)...)
	srv.Logf = t.Logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	out := t.TempDir()
	traceFile := filepath.Join(out, "run.json")

	agent := []string{"claude", "-p", "do the scripted steps", "--dangerously-skip-permissions"}
	if agentTelemetry {
		// The pinned CLI starts the workspace's .mcp.json servers by
		// itself (with permissions skipped); naming the file as well
		// covers the supervisor's reading of --mcp-config.
		agent = append(agent, "--mcp-config", mcpConfig)
	} else {
		// agentwatch turns the agent's telemetry on; env turns it off again.
		agent = append([]string{"env", "CLAUDE_CODE_ENABLE_TELEMETRY=0"}, agent...)
	}
	args := append([]string{"run", "--user", a.Name, "--store", filepath.Join(out, "store"), "--trace-file", traceFile, "--"}, agent...)
	cmd := exec.Command(aw, args...)
	cmd.Dir = ws
	cmd.Env = claudeEnv(a, claude, srv.URL())
	res := run(t, cmd, claudeTimeout)
	t.Logf("agentwatch run stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	if res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("agentwatch run: exit %d, %v", res.ExitCode, res.Err)
	}
	// The tool call ids the model handed out, in order, from the last
	// request of the conversation (it carries every result).
	var ids []string
	var results []fakemodel.ToolResult
	for _, r := range srv.Requests() {
		if r.Exhausted {
			t.Errorf("claude asked for more turns than scripted")
		}
		if r.Turn == len(toolsScript(ws))-1 {
			results = r.ToolResults
		}
	}
	for _, r := range results {
		ids = append(ids, r.ToolUseID)
	}
	if len(ids) != 5 {
		t.Fatalf("the last request carried %d tool results, want 5 (Read, Edit, Bash twice, add_note): %+v", len(ids), results)
	}
	if !results[2].IsError || results[3].IsError || results[4].IsError || results[4].Content != "noted" {
		t.Fatalf("tool results %+v: want the first Bash to fail, the retry to pass, add_note to answer noted", results)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "notes.txt")); err != nil || string(b) != "hello from the model\n" {
		t.Fatalf("notes.txt = %q, %v: the MCP server did not run the call", b, err)
	}
	// AGENTWATCH_E2E_KEEP_TRACE=FILE keeps the trace file for a look afterwards.
	if keep := os.Getenv("AGENTWATCH_E2E_KEEP_TRACE"); keep != "" {
		b, _ := os.ReadFile(traceFile)
		os.WriteFile(keep, b, 0o644)
	}
	tr, err := readTraceFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	extras := readExtras(t, traceFile)
	times := readTimes(t, traceFile)
	logTree(t, tr)
	checkToolSpans(t, tr, extras, times, ws, ids, agentTelemetry)
}

// readTimes reads each span's start and end (unix nanoseconds).
func readTimes(t *testing.T, path string) map[string][2]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var req struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []struct {
						SpanID string `json:"spanId"`
						Start  string `json:"startTimeUnixNano"`
						End    string `json:"endTimeUnixNano"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			t.Fatal(err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					start, _ := strconv.ParseInt(sp.Start, 10, 64)
					end, _ := strconv.ParseInt(sp.End, 10, 64)
					out[normID(sp.SpanID)] = [2]int64{start, end}
				}
			}
		}
	}
	return out
}

func checkToolSpans(t *testing.T, tr *traceTree, extras map[string]spanExtras, times map[string][2]int64, ws string, ids []string, agentTelemetry bool) {
	t.Helper()
	roots := tr.roots()
	if len(roots) != 1 {
		t.Fatalf("%d roots", len(roots))
	}
	root := roots[0]
	for _, s := range tr.Spans {
		if s != root && tr.ByID[s.ParentID] == nil {
			t.Errorf("span %s has a parent %s not in the trace", s.Name, s.ParentID)
		}
	}
	children := map[string][]*span{}
	for _, s := range tr.Spans {
		children[s.ParentID] = append(children[s.ParentID], s)
	}
	byCall := map[string][]*span{}
	for _, s := range tr.filter(func(s *span) bool { return s.Type() == telemetry.SpanToolCall }) {
		byCall[s.str(telemetry.GenAIToolCallID)] = append(byCall[s.str(telemetry.GenAIToolCallID)], s)
	}
	if len(byCall) != len(ids) {
		t.Errorf("tool spans for %d calls, want %d (%v)", len(byCall), len(ids), ids)
	}
	tool := map[string]*span{}
	for _, id := range ids {
		if n := len(byCall[id]); n != 1 {
			t.Fatalf("%d tool spans for call %s, want exactly 1", n, id)
		}
		tool[id] = byCall[id][0]
	}
	links := func(s *span) []string {
		var out []string
		for _, l := range extras[s.SpanID].links {
			out = append(out, l[strings.IndexByte(l, '/')+1:])
		}
		return out
	}
	claude := tr.ByID[tool[ids[0]].ParentID]
	if claude == nil || !strings.HasPrefix(claude.Name, "claude") {
		t.Fatalf("the Read tool span is under %v, want the claude process", claude)
	}
	for i, want := range []struct{ name, action, status string }{
		{"execute_tool Read", "read", "ok"},
		{"execute_tool Edit", "edit", "ok"},
		{"execute_tool Bash", "exec", "error"},
		{"execute_tool Bash", "exec", "ok"},
		{"execute_tool add_note", "mcp", "ok"},
	} {
		s := tool[ids[i]]
		t.Logf("tool span %s %s: %v", s.Name, s.SpanID, s.Attrs)
		if s.Name != want.name || s.str(telemetry.ToolAction) != want.action || s.str(telemetry.ToolStatus) != want.status {
			t.Errorf("call %s: %s action=%s status=%s, want %s %s %s", ids[i], s.Name, s.str(telemetry.ToolAction), s.str(telemetry.ToolStatus), want.name, want.action, want.status)
		}
		if s.ParentID != claude.SpanID || s.str(telemetry.GenAIAgentName) != "claude" || s.str(telemetry.GenAIOperationName) != "execute_tool" ||
			s.str(telemetry.OpenInferenceKind) != telemetry.OITool || len(s.str(telemetry.ToolArgumentsSHA256)) != 64 {
			t.Errorf("call %s: parent %s, agent %q, operation %q, kind %q, arguments digest %q", ids[i], tr.path(s),
				s.str(telemetry.GenAIAgentName), s.str(telemetry.GenAIOperationName), s.str(telemetry.OpenInferenceKind), s.str(telemetry.ToolArgumentsSHA256))
		}
		approval, source := telemetry.ApprovalAuto, "argv"
		if agentTelemetry {
			source = telemetry.SourceAgentTelemetry
			if s.str(telemetry.ToolDecision) != "accept" {
				t.Errorf("call %s: decision %q, want the agent's accept", ids[i], s.str(telemetry.ToolDecision))
			}
		}
		if s.str(telemetry.CommandApproval) != approval || s.str(telemetry.ToolApprovalSource) != source {
			t.Errorf("call %s: approval %q from %q, want %q from %q", ids[i], s.str(telemetry.CommandApproval), s.str(telemetry.ToolApprovalSource), approval, source)
		}
		// Inside its parent; its children inside it.
		st, pt := times[s.SpanID], times[s.ParentID]
		if st[0] < pt[0] || st[1] > pt[1] {
			t.Errorf("call %s [%d, %d] outside claude [%d, %d]", ids[i], st[0], st[1], pt[0], pt[1])
		}
		for _, c := range children[s.SpanID] {
			if ct := times[c.SpanID]; ct[0] < st[0] || ct[1] > st[1] {
				t.Errorf("%s [%d, %d] outside its tool span %s [%d, %d]", c.Name, ct[0], ct[1], s.Name, st[0], st[1])
			}
		}
		if agentTelemetry {
			if s.str(telemetry.AgentSpanID) == "" || s.str(telemetry.AgentLinkedBy) != "tool_call_id" {
				t.Errorf("call %s: not joined with the agent's tool span (agent span %q by %q)", ids[i], s.str(telemetry.AgentSpanID), s.str(telemetry.AgentLinkedBy))
			}
			var exec int
			for _, c := range children[s.SpanID] {
				if c.Name == "claude_code.tool.execution" {
					exec++
				}
			}
			if exec != 1 {
				t.Errorf("call %s: %d claude_code.tool.execution spans under it, want the agent's one", ids[i], exec)
			}
		}
	}
	if agentTelemetry {
		for _, s := range tr.Spans {
			if s.Name == "claude_code.tool" {
				t.Errorf("the agent's own tool span %s is still in the trace: one span per tool call, never two", s.SpanID)
			}
		}
	}

	// Read: ran nothing, wrote nothing.
	if rd := tool[ids[0]]; !hasInt(rd, telemetry.ToolProcesses, 0) || !hasInt(rd, telemetry.ToolFilesWritten, 0) {
		t.Errorf("Read: %v", rd.Attrs)
	}
	// Edit: the agent's own atomic write of README.md, linked.
	ed := tool[ids[1]]
	var edited bool
	for _, l := range links(ed) {
		if f := tr.ByID[l]; f != nil && f.Type() == telemetry.SpanFileWrite && f.str(telemetry.FileRenamedTo) == filepath.Join(ws, "README.md") {
			edited = true
		}
	}
	if !edited || !hasInt(ed, telemetry.ToolFilesWritten, 1) || !hasInt(ed, telemetry.ToolProcesses, 0) {
		t.Errorf("Edit: links %v, attributes %v: want a link to the write of README.md", links(ed), ed.Attrs)
	}
	// Bash: the tool's shell (and what it ran) under each attempt; the
	// first failed and created the flag; the second is its retry.
	for _, id := range ids[2:4] {
		b := tool[id]
		var shells []*span
		for _, c := range children[b.SpanID] {
			if isProcess(c) {
				shells = append(shells, c)
			}
		}
		if len(shells) != 1 || !strings.Contains(shells[0].str(telemetry.CommandLine), "no flag yet") || !hasInt(b, telemetry.ToolProcesses, 1) {
			t.Errorf("Bash %s: processes under it %v, want its shell", id, shells)
			continue
		}
		// Without the agent's telemetry, by the command it evals; with it,
		// by the TRACEPARENT in its environment (or by the command, when
		// the shell was gone before its environment was read).
		by := shells[0].str(telemetry.ToolMatchedBy)
		t.Logf("Bash %s: shell matched by %s", id, by)
		if by != "command" && (!agentTelemetry || by != "traceparent") {
			t.Errorf("Bash %s: shell matched by %q", id, by)
		}
	}
	first, retry := tool[ids[2]], tool[ids[3]]
	flag := tr.filter(func(s *span) bool {
		return s.Type() == telemetry.SpanFileWrite && s.str(telemetry.FilePath) == filepath.Join(ws, "flag")
	})
	if len(flag) != 1 || !tr.under(flag[0], first) || !hasInt(first, telemetry.ToolFilesWritten, 1) {
		t.Errorf("the flag's write is not under the first Bash attempt (%d spans)", len(flag))
	}
	if !hasInt(retry, telemetry.ToolRetryCount, 1) || !slices.Contains(links(retry), first.SpanID) {
		t.Errorf("the second Bash: retry count %v, links %v; want 1 and a link to %s", retry.Attrs[string(telemetry.ToolRetryCount)], links(retry), first.SpanID)
	}
	// No process of Claude Code's own (git, its shell snapshot) under a tool.
	for _, s := range tr.filter(isProcess) {
		for p := tr.ByID[s.ParentID]; p != nil; p = tr.ByID[p.ParentID] {
			if p.Type() == telemetry.SpanToolCall && !strings.Contains(s.str(telemetry.CommandLine), "no flag yet") && !strings.HasPrefix(s.Name, "touch") {
				t.Errorf("%s (%s) is under the tool span %s", s.Name, s.str(telemetry.CommandLine), p.Name)
			}
			if isProcess(p) {
				break
			}
		}
	}
	// MCP: the server's process, classed and linked; its write under it.
	mc := tool[ids[4]]
	servers := tr.filter(func(s *span) bool { return s.Type() == telemetry.SpanMCPServer })
	if len(servers) != 1 || servers[0].str(telemetry.MCPServerName) != "notes" || servers[0].Name != "python3" {
		t.Fatalf("mcp_server spans %v, want the notes server (python3)", servers)
	}
	if mc.str(telemetry.GenAIToolName) != "add_note" || mc.str(telemetry.MCPServerName) != "notes" || !slices.Contains(links(mc), servers[0].SpanID) {
		t.Errorf("add_note: tool %q, server %q, links %v; want a link to the server %s", mc.str(telemetry.GenAIToolName), mc.str(telemetry.MCPServerName), links(mc), servers[0].SpanID)
	}
	notes := tr.filter(func(s *span) bool {
		return s.Type() == telemetry.SpanFileWrite && s.str(telemetry.FilePath) == filepath.Join(ws, "notes.txt")
	})
	if len(notes) != 1 || notes[0].ParentID != servers[0].SpanID {
		t.Errorf("the server's write of notes.txt: %v, want under the server's span", notes)
	}
	if n, _ := root.int(telemetry.ToolCalls); n != 5 {
		t.Errorf("root %s = %d, want 5", telemetry.ToolCalls, n)
	}
	if n, _ := root.int(telemetry.ToolCallsFailed); n != 1 {
		t.Errorf("root %s = %d, want 1", telemetry.ToolCallsFailed, n)
	}
}

func hasInt(s *span, k attribute.Key, want int64) bool {
	v, ok := s.int(k)
	return ok && v == want
}
