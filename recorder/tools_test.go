package recorder

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
)

// claudeShell is the argv Claude Code's Bash tool execs for a command,
// quoted as it quotes it.
func claudeShell(quoted string) []string {
	return []string{"/bin/bash", "-c", "source /home/dev/.claude/shell-snapshots/snapshot-bash-1-x.sh 2>/dev/null || true && " +
		`\builtin shopt -u extglob 2>/dev/null || true && { \builtin unalias -- 'which'; } >/dev/null 2>&1 || true && ` +
		"eval " + quoted + " < /dev/null && pwd -P >| /tmp/claude-ab12-cwd"}
}

// toolUse is a tool call as the proxy reports it in metadata mode: its
// digests and path, no arguments.
func toolUse(id, name, canonicalArgs, command, filePath string) event.ToolCall {
	tc := event.ToolCall{ID: id, Name: name, ArgumentsSHA256: sha256Hex(canonicalArgs), FilePath: filePath}
	if command != "" {
		tc.CommandSHA256 = sha256Hex(command)
	}
	return tc
}

// model is a model call of the fixture's agent (pid 100) from ms from to
// ms to, asking for calls and carrying results.
func model(from, to int, results []event.ToolResult, calls ...event.ToolCall) event.LLMCall {
	return event.LLMCall{
		Header: hdr(to, 100), Start: at(from), End: at(to), Provider: "anthropic", API: "messages", Method: "POST",
		Path: "/v1/messages", Status: 200, RequestModel: "claude-sonnet-4-5", InputTokens: 10, OutputTokens: 5, UsageKnown: true,
		PromptSHA256: fmt.Sprintf("p%d", from), SessionID: "sess-7", ToolCalls: calls, ToolResults: results,
		ToolResultCount: len(results),
	}
}

func ok(id string) event.ToolResult {
	return event.ToolResult{ToolCallID: id, ContentSHA256: sha256Hex("out " + id)}
}
func bad(id string) event.ToolResult { return event.ToolResult{ToolCallID: id, IsError: true} }

const (
	flakyCmd = `test -f flag || { touch flag; echo "it's missing" >&2; exit 1; }`
	// As Claude Code quotes it for eval: single quotes, each ' as '\''.
	flakyQuoted = `'test -f flag || { touch flag; echo "it'\''s missing" >&2; exit 1; }'`
	flakyArgs   = `{"command":"test -f flag || { touch flag; echo \"it's missing\" >&2; exit 1; }","description":"Check the flag"}`
	echoCmd     = `echo "it's" > out.txt`
	echoQuoted  = `"echo \"it's\" > out.txt"` // double quotes, as shell-quote writes a string with a '
)

// toolsFixture: claude reads README.md, edits main.go (its own write),
// runs a Bash command that fails (its shell and the touch under it; a git
// status of Claude Code's own runs beside it), runs it again (a retry: it
// passes), calls the notes MCP server's add_note (the server, started at
// launch, connects out), runs a quoted echo, and asks for a TodoWrite
// never answered.
func toolsFixture() []event.Event {
	readArgs := fmt.Sprintf(`{"file_path":%q}`, ws+"/README.md")
	editArgs := fmt.Sprintf(`{"file_path":%q,"new_string":"b","old_string":"a"}`, ws+"/main.go")
	return []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "fix it", "--dangerously-skip-permissions"),
		fork(4, 110, 100),
		exec(5, 110, 100, "/usr/bin/python3", ws, "python3", "/srv/notes.py"),
		model(10, 20, nil, toolUse("toolu_read", "Read", readArgs, "", ws+"/README.md")),
		file(25, 100, event.FileRead, ws+"/README.md"), // not a secret: no span
		model(30, 40, []event.ToolResult{ok("toolu_read")}, toolUse("toolu_edit", "Edit", editArgs, "", ws+"/main.go")),
		// Claude Code's atomic write: the temporary file by its path, the
		// rename through a directory descriptor.
		file(44, 100, event.FileCreate, ws+"/main.go.tmp.10.ab"),
		event.File{Header: hdr(45, 100), Source: event.SourceEBPF, Op: event.FileRename,
			Path: "/proc/self/fd/16/main.go.tmp.10.ab", NewPath: "/proc/self/fd/16/main.go"},
		model(50, 60, []event.ToolResult{ok("toolu_edit")}, toolUse("toolu_b1", "Bash", flakyArgs, flakyCmd, "")),
		fork(61, 103, 100),
		exec(62, 103, 100, "/usr/bin/git", ws, "git", "status", "--porcelain"),
		fork(62, 101, 100),
		exec(63, 101, 100, "/bin/bash", ws, claudeShell(flakyQuoted)...),
		exit(63, 103, 0, 0),
		fork(64, 102, 101),
		exec(64, 102, 101, "/usr/bin/touch", ws, "touch", "flag"),
		file(65, 102, event.FileCreate, ws+"/flag"),
		exit(66, 102, 0, 0),
		exit(67, 101, 1, 0),
		model(70, 80, []event.ToolResult{bad("toolu_b1")}, toolUse("toolu_b2", "Bash", flakyArgs, flakyCmd, "")),
		fork(81, 104, 100),
		exec(82, 104, 100, "/bin/bash", ws, claudeShell(flakyQuoted)...),
		exit(84, 104, 0, 0),
		model(90, 100, []event.ToolResult{ok("toolu_b2")}, toolUse("toolu_mcp", "mcp__notes__add_note", `{"text":"hi"}`, "", "")),
		conn(103, 110, event.TCP, "93.184.216.34:443", 0, "notes.example"),
		model(110, 120, []event.ToolResult{ok("toolu_mcp")}, toolUse("toolu_echo", "Bash", `{"command":"echo \"it's\" > out.txt"}`, echoCmd, "")),
		fork(121, 105, 100),
		exec(122, 105, 100, "/bin/bash", ws, claudeShell(echoQuoted)...),
		file(123, 105, event.FileCreate, ws+"/out.txt"),
		exit(124, 105, 0, 0),
		model(130, 140, []event.ToolResult{ok("toolu_echo")}, toolUse("toolu_todo", "TodoWrite", `{"todos":[]}`, "", "")),
		exit(150, 110, 0, 0),
		exit(150, 100, 0, 0),
	}
}

func toolsInfo() RunInfo {
	info := runInfo()
	info.Argv = []string{"claude", "-p", "fix it", "--dangerously-skip-permissions"}
	info.MCPServers = []MCPServer{{Name: "notes", Command: "python3", Args: []string{"/srv/notes.py"}, Source: ".mcp.json"}}
	return info
}

func toolSpans(tr *telemetry.Trace) map[string]*telemetry.Span {
	out := map[string]*telemetry.Span{}
	for i := range tr.Spans {
		if s := &tr.Spans[i]; s.Type() == telemetry.SpanToolCall {
			v, _ := s.Attr(telemetry.GenAIToolCallID)
			out[v.AsString()] = s
		}
	}
	return out
}

func byPID(tr *telemetry.Trace) map[int64]*telemetry.Span {
	out := map[int64]*telemetry.Span{}
	for i := range tr.Spans {
		if v, ok := tr.Spans[i].Attr(telemetry.ProcessPID); ok && tr.Spans[i].Type() != telemetry.SpanLLMCall {
			out[v.AsInt64()] = &tr.Spans[i]
		}
	}
	return out
}

func linksOf(s *telemetry.Span, relation string) []trace.SpanID {
	var out []trace.SpanID
	for _, l := range s.Links {
		for _, a := range l.Attrs {
			if a.Key == telemetry.LinkRelation && a.Value.AsString() == relation {
				out = append(out, l.SpanID)
			}
		}
	}
	return out
}

// checkInvariants: one root, every parent in the trace, every span inside
// its parent's interval except the observed processes (and what is under
// them) that outlive theirs, root first and the rest in start order.
func checkInvariants(t *testing.T, tr *telemetry.Trace) {
	t.Helper()
	tree(t, tr)
	idx := spanIndex(tr)
	for i := range tr.Spans[1:] {
		s := &tr.Spans[i+1]
		p := &tr.Spans[idx[s.ParentID]]
		if s.Start.Before(p.Start) || s.End.After(p.End) {
			if _, proc := s.Attr(telemetry.ProcessPID); !proc || p.Type() == telemetry.SpanToolCall {
				t.Errorf("%s [%v, %v] outside its parent %s [%v, %v]", label(s), s.Start, s.End, label(p), p.Start, p.End)
			}
		}
		if i > 0 && s.Start.Before(tr.Spans[i].Start) {
			t.Errorf("%s starts before the span ahead of it", label(s))
		}
	}
}

func TestToolSpans(t *testing.T) {
	tr := record(toolsInfo(), toolsFixture(), End{Time: at(200)})
	checkInvariants(t, tr)
	tools := toolSpans(tr)
	if len(tools) != 7 {
		t.Fatalf("%d tool spans, want 7: %v", len(tools), tools)
	}
	procs := byPID(tr)
	claude := procs[100]
	chats := llmSpans(tr)

	for id, want := range map[string]struct {
		name, action, status string
		from, to             int
		parent               *telemetry.Span
	}{
		"toolu_read": {"execute_tool Read", "read", "ok", 20, 30, claude},
		"toolu_edit": {"execute_tool Edit", "edit", "ok", 40, 50, claude},
		"toolu_b1":   {"execute_tool Bash", "exec", "error", 60, 70, claude},
		"toolu_b2":   {"execute_tool Bash", "exec", "ok", 80, 90, claude},
		"toolu_mcp":  {"execute_tool add_note", "mcp", "ok", 100, 110, claude},
		"toolu_echo": {"execute_tool Bash", "exec", "ok", 120, 130, claude},
		"toolu_todo": {"execute_tool TodoWrite", "other", "no_result", 140, 150, claude},
	} {
		s := tools[id]
		if s == nil {
			t.Errorf("no tool span for %s", id)
			continue
		}
		if s.Name != want.name || s.ParentID != want.parent.SpanID || !s.Start.Equal(at(want.from)) || !s.End.Equal(at(want.to)) {
			t.Errorf("%s: %q under %s, %v..%v; want %q under claude, %v..%v", id, s.Name, label(spanByID(tr, s.ParentID)),
				s.Start.Sub(t0), s.End.Sub(t0), want.name, at(want.from).Sub(t0), at(want.to).Sub(t0))
		}
		wantAttrs(t, s, map[attribute.Key]string{
			telemetry.SpanType:            "tool_call",
			telemetry.OpenInferenceKind:   "TOOL",
			telemetry.GenAIOperationName:  "execute_tool",
			telemetry.ToolAction:          want.action,
			telemetry.ToolStatus:          want.status,
			telemetry.GenAIAgentName:      "claude",
			telemetry.GenAIConversationID: "sess-7",
			telemetry.CommandApproval:     "auto", // --dangerously-skip-permissions
			telemetry.ToolApprovalSource:  "argv",
		})
		if s.Kind != trace.SpanKindInternal {
			t.Errorf("%s: kind %v", id, s.Kind)
		}
		// Linked to the call that asked, and to the one that answered.
		if asked := linksOf(s, telemetry.LinkToolCallOf); len(asked) != 1 || spanByID(tr, asked[0]).Type() != telemetry.SpanLLMCall {
			t.Errorf("%s: tool_call_of links %v", id, asked)
		}
		if res := linksOf(s, telemetry.LinkToolResultIn); (want.status == "no_result") != (len(res) == 0) {
			t.Errorf("%s: tool_result_in links %v with status %s", id, res, want.status)
		}
	}
	wantAttrs(t, tools["toolu_b1"], map[attribute.Key]string{
		telemetry.GenAIToolName:       "Bash",
		telemetry.OIToolName:          "Bash",
		telemetry.ToolArgumentsSHA256: sha256Hex(flakyArgs),
		telemetry.ToolResultSHA256:    "<unset>", // the error result had no content
		telemetry.ToolRetryCount:      "<unset>",
		telemetry.ToolProcesses:       "1",
		telemetry.ToolFilesWritten:    "1", // the touch under its shell
		telemetry.ToolConnections:     "0",
		telemetry.ToolInstalls:        "0",
		telemetry.ErrorType:           "tool_error",
	})
	if tools["toolu_b1"].Status != codes.Error || tools["toolu_b2"].Status == codes.Error {
		t.Errorf("statuses %v / %v: an is_error result is the span's error", tools["toolu_b1"].Status, tools["toolu_b2"].Status)
	}
	// The retry: same name and arguments after an error.
	wantAttrs(t, tools["toolu_b2"], map[attribute.Key]string{
		telemetry.ToolRetryCount:   "1",
		telemetry.ToolResultSHA256: sha256Hex("out toolu_b2"),
		telemetry.ToolProcesses:    "1",
	})
	if r := linksOf(tools["toolu_b2"], telemetry.LinkRetryOf); len(r) != 1 || r[0] != tools["toolu_b1"].SpanID {
		t.Errorf("retry_of links %v, want the failed attempt %s", r, tools["toolu_b1"].SpanID)
	}
	// The processes: each tool shell under its tool span, matched by its
	// eval'd command (quotes and all); what it ran under it; Claude Code's
	// own git status stays under claude.
	for pid, id := range map[int64]string{101: "toolu_b1", 104: "toolu_b2", 105: "toolu_echo"} {
		if p := procs[pid]; p.ParentID != tools[id].SpanID || agAttr(p, telemetry.ToolMatchedBy) != "command" {
			t.Errorf("pid %d under %s (matched_by %q), want under %s by command", pid, label(spanByID(tr, p.ParentID)), agAttr(p, telemetry.ToolMatchedBy), id)
		}
	}
	if procs[102].ParentID != procs[101].SpanID || procs[103].ParentID != claude.SpanID || procs[110].ParentID != claude.SpanID {
		t.Errorf("touch under %s, git status under %s, the MCP server under %s", label(spanByID(tr, procs[102].ParentID)),
			label(spanByID(tr, procs[103].ParentID)), label(spanByID(tr, procs[110].ParentID)))
	}
	// Read ran nothing and wrote nothing: no links (a plain read has no span).
	if l := linksOf(tools["toolu_read"], telemetry.LinkToolFile); len(l) != 0 || agAttr(tools["toolu_read"], telemetry.ToolFilesWritten) != "0" {
		t.Errorf("Read: tool_file links %v", l)
	}
	// Edit: the agent's own write of main.go, linked.
	edit := tools["toolu_edit"]
	if l := linksOf(edit, telemetry.LinkToolFile); len(l) != 1 || agAttr(spanByID(tr, l[0]), telemetry.FileRenamedTo) != ws+"/main.go" {
		t.Errorf("Edit: tool_file links %v", l)
	}
	wantAttrs(t, edit, map[attribute.Key]string{telemetry.ToolFilesWritten: "1", telemetry.FilePath: ws + "/main.go", telemetry.ToolProcesses: "0"})
	// MCP: the server's process span, classed and linked.
	srv := procs[110]
	if srv.Type() != telemetry.SpanMCPServer || srv.Name != "python3" || agAttr(srv, telemetry.MCPServerName) != "notes" {
		t.Errorf("MCP server span: type %s, name %q, server %q", srv.Type(), srv.Name, agAttr(srv, telemetry.MCPServerName))
	}
	mcp := tools["toolu_mcp"]
	wantAttrs(t, mcp, map[attribute.Key]string{
		telemetry.GenAIToolName: "add_note", telemetry.OIToolName: "mcp__notes__add_note", telemetry.MCPServerName: "notes",
		telemetry.ToolConnections: "0", // the server's connections are the server's
	})
	if l := linksOf(mcp, telemetry.LinkMCPServer); len(l) != 1 || l[0] != srv.SpanID {
		t.Errorf("MCP tool links %v, want the server %s", l, srv.SpanID)
	}
	if n := 0; true {
		for i := range tr.Spans {
			if s := &tr.Spans[i]; s.Type() == telemetry.SpanNetworkCall && s.ParentID == srv.SpanID {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d network_call spans under the MCP server, want its one", n)
		}
	}
	// Root totals.
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{telemetry.ToolCalls: "7", telemetry.ToolCallsFailed: "1", telemetry.ToolCallsNoResult: "1"})
	if len(chats) != 7 {
		t.Errorf("%d chat spans", len(chats))
	}
}

// TestToolActions: the action table, by the names the agents use.
func TestToolActions(t *testing.T) {
	for name, want := range map[string]string{
		"Read": "read", "NotebookRead": "read", "read_file": "read", "view_image": "read",
		"Write": "write", "write_file": "write", "create_file": "write",
		"Edit": "edit", "MultiEdit": "edit", "NotebookEdit": "edit", "apply_patch": "edit", "str_replace_based_edit_tool": "edit",
		"Bash": "exec", "BashOutput": "exec", "KillShell": "exec", "shell": "exec", "local_shell": "exec", "exec_command": "exec",
		"run_shell_command": "exec", "SHELL": "exec",
		"Grep": "search", "Glob": "search", "LS": "search", "grep_search": "search",
		"WebFetch": "network", "WebSearch": "network", "web_search": "network",
		"mcp__notes__add_note": "mcp", "mcp__github__create_issue": "mcp", "mcp__a-b__c__d": "mcp",
		"Task": "other", "Agent": "other", "TodoWrite": "other", "Skill": "other", "update_plan": "other", "mcp__": "other",
		"mcp__x": "other", "": "other",
	} {
		if got := ToolAction(name); got != want {
			t.Errorf("ToolAction(%q) = %q, want %q", name, got, want)
		}
	}
	if srv, tool, ok := splitMCPTool("mcp__my_server__do__it"); !ok || srv != "my_server" || tool != "do__it" {
		t.Errorf("split: %q %q %v", srv, tool, ok)
	}
}

// TestEvalCommand: the command Claude Code's shell evals, whatever the
// quoting, and nothing from other shells.
func TestEvalCommand(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
		ok   bool
	}{
		{claudeShell(`'printf hello > note.txt'`), "printf hello > note.txt", true},
		{claudeShell(flakyQuoted), flakyCmd, true},
		{claudeShell(echoQuoted), echoCmd, true},
		{claudeShell(`git\ status\ --short`), "git status --short", true},
		{claudeShell(`'a && b | c; d'`), "a && b | c; d", true},
		{claudeShell(`'  spaced  '`), "spaced", true},
		{claudeShell(`'python3 -c "import sys; sys.exit(3)"'`), `python3 -c "import sys; sys.exit(3)"`, true},
		{claudeShell(`"multi
line"`), "multi\nline", true},
		// As the pinned Claude Code wrote them (e2e): ' as '"'"', a heredoc
		// without the /dev/null redirection.
		{claudeShell(`'echo '"'"'it'"'"'"'"'"'"'"'"'s'"'"' | tr a-z A-Z > q.txt'`), `echo 'it'"'"'s' | tr a-z A-Z > q.txt`, true},
		{[]string{"/bin/bash", "-c", "x && eval 'cat > s.txt <<'\"'\"'EOF'\"'\"'\nline one\nEOF' && pwd -P >| /tmp/claude-5086-cwd"},
			"cat > s.txt <<'EOF'\nline one\nEOF", true},
		{[]string{"/bin/bash", "-c", "eval 'ls' </dev/null"}, "ls", true},
		{[]string{"/bin/bash", "-c", "eval ls -la 2>&1"}, "ls -la", true},
		{[]string{"/bin/bash", "-c", "x=1; eval \"$x\" '<' y"}, "$x < y", true},
		{[]string{"/bin/bash", "-c", "echo eval"}, "", false},
		{[]string{"/bin/bash", "-c", "'eval' ls"}, "", false},
		{[]string{"/usr/bin/python3", "-c", "eval('1')"}, "", false},
		{[]string{"/bin/bash", "script.sh"}, "", false},
		{[]string{"/bin/bash", "-c", "-l", "source x && eval 'make test' < /dev/null"}, "make test", true},
	} {
		got, ok := evalCommand(tc.argv)
		if got != tc.want || ok != tc.ok {
			t.Errorf("evalCommand(%q) = %q, %v; want %q, %v", tc.argv[len(tc.argv)-1], got, ok, tc.want, tc.ok)
		}
	}
}

// TestToolMatchByTime: a shell whose eval'd command is not the model's
// (an agent rewrote it) still lands under the one Bash tool whose window
// it started in; two tools open at once get neither.
func TestToolMatchByTime(t *testing.T) {
	b1 := toolUse("toolu_1", "Bash", `{"command":"make"}`, "make", "")
	p1 := toolUse("toolu_p1", "Bash", `{"command":"ls a"}`, "ls a", "")
	p2 := toolUse("toolu_p2", "Bash", `{"command":"ls b"}`, "ls b", "")
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x"),
		model(10, 20, nil, b1),
		fork(21, 101, 100),
		exec(22, 101, 100, "/bin/bash", ws, claudeShell(`'make < /dev/null'`)...),
		exit(25, 101, 0, 0),
		model(30, 40, []event.ToolResult{ok("toolu_1")}, p1, p2), // parallel calls
		fork(41, 102, 100),
		exec(42, 102, 100, "/bin/bash", ws, claudeShell(`'ls  a'`)...),
		fork(41, 103, 100),
		exec(42, 103, 100, "/bin/bash", ws, claudeShell(`'ls b'`)...),
		exit(45, 102, 0, 0),
		exit(45, 103, 0, 0),
		model(50, 60, []event.ToolResult{ok("toolu_p1"), ok("toolu_p2")}),
		exit(70, 100, 0, 0),
	}
	tr := record(runInfo(), events, End{Time: at(80)})
	checkInvariants(t, tr)
	tools, procs := toolSpans(tr), byPID(tr)
	if p := procs[101]; p.ParentID != tools["toolu_1"].SpanID || agAttr(p, telemetry.ToolMatchedBy) != "time" {
		t.Errorf("rewritten command: under %s by %q, want toolu_1 by time", label(spanByID(tr, p.ParentID)), agAttr(p, telemetry.ToolMatchedBy))
	}
	// ls b matches by its command; "ls  a" does not, and its window is
	// shared with toolu_p2 only until that one has its process: time then
	// finds it the one shell left.
	if p := procs[103]; p.ParentID != tools["toolu_p2"].SpanID || agAttr(p, telemetry.ToolMatchedBy) != "command" {
		t.Errorf("ls b under %s by %q", label(spanByID(tr, p.ParentID)), agAttr(p, telemetry.ToolMatchedBy))
	}
	if p := procs[102]; p.ParentID != tools["toolu_p1"].SpanID || agAttr(p, telemetry.ToolMatchedBy) != "time" {
		t.Errorf("ls  a under %s by %q", label(spanByID(tr, p.ParentID)), agAttr(p, telemetry.ToolMatchedBy))
	}
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{telemetry.ToolCalls: "3"})
	wantAttrs(t, tools["toolu_1"], map[attribute.Key]string{telemetry.CommandApproval: "unknown", telemetry.ToolApprovalSource: "<unset>"})
}

// TestToolAmbiguousTime: two shells in two open windows are left where
// they are rather than guessed.
func TestToolAmbiguousTime(t *testing.T) {
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x"),
		model(10, 20, nil, toolUse("toolu_a", "Bash", `{}`, "x", ""), toolUse("toolu_b", "Bash", `{}`, "y", "")),
		fork(21, 101, 100),
		exec(22, 101, 100, "/bin/bash", ws, claudeShell(`'x1'`)...),
		fork(21, 102, 100),
		exec(22, 102, 100, "/bin/bash", ws, claudeShell(`'y1'`)...),
		model(30, 40, []event.ToolResult{ok("toolu_a"), ok("toolu_b")}),
	}
	tr := record(runInfo(), events, End{Time: at(50)})
	checkInvariants(t, tr)
	procs := byPID(tr)
	for _, pid := range []int64{101, 102} {
		if p := procs[pid]; p.ParentID != procs[100].SpanID {
			t.Errorf("pid %d under %s: an ambiguous match must not be made", pid, label(spanByID(tr, p.ParentID)))
		}
	}
	// Still running at the end: the shells outlive the tools' windows, and
	// the tools keep theirs.
	if s := toolSpans(tr)["toolu_a"]; !s.End.Equal(at(30)) {
		t.Errorf("tool end %v", s.End.Sub(t0))
	}
}

// TestToolNoResultAndWidening: a tool never answered ends with its
// agent's process; one whose process started while the response still
// streamed, and outlived its result, is widened over it.
func TestToolNoResultAndWidening(t *testing.T) {
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x"),
		model(10, 20, nil, toolUse("toolu_bg", "Bash", `{}`, "sleep 5 &", "")),
		fork(18, 101, 100),
		exec(19, 101, 100, "/bin/bash", ws, claudeShell(`'sleep 5 &'`)...),
		model(30, 40, []event.ToolResult{ok("toolu_bg")}, toolUse("toolu_never", "Bash", `{}`, "true", "")),
		exit(60, 101, 0, 0),
		exit(70, 100, 0, 0),
	}
	tr := record(runInfo(), events, End{Time: at(90)})
	checkInvariants(t, tr)
	tools := toolSpans(tr)
	bg, never := tools["toolu_bg"], tools["toolu_never"]
	if !bg.Start.Equal(at(19)) || !bg.End.Equal(at(60)) {
		t.Errorf("background tool %v..%v, want widened to its process 19..60 ms", bg.Start.Sub(t0), bg.End.Sub(t0))
	}
	if agAttr(never, telemetry.ToolStatus) != "no_result" || !never.End.Equal(at(70)) || never.Status == codes.Error {
		t.Errorf("unanswered tool: status %s, ends %v (span status %v); want no_result at the agent's exit 70 ms", agAttr(never, telemetry.ToolStatus), never.End.Sub(t0), never.Status)
	}
}

// TestToolJoinsAgentTelemetry: with the agent's own telemetry on, its
// claude_code.tool span for the call is folded into ours (one span per
// call): its attributes as claims, its children under ours, its
// tool_decision approval on ours; the shell, which names the agent's
// tool.execution span in its TRACEPARENT, matches by it.
func TestToolJoinsAgentTelemetry(t *testing.T) {
	info := agInfo()
	info.Argv = []string{"claude", "-p", "x"}
	rec := New(info)
	root := rec.RootSpanID()
	interaction, toolSpan, execSpan, other := agSID(1), agSID(2), agSID(3), agSID(4)
	claude := exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x")
	claude.TraceParent = agentotel.TraceParent(agTrace, root)
	shell := exec(63, 101, 100, "/bin/bash", ws, claudeShell(`'rewritten by the agent'`)...)
	shell.TraceParent = agentotel.TraceParent(agTrace, execSpan)
	decision := &logspb.LogRecord{
		TimeUnixNano: uint64(at(61).UnixNano()),
		Body:         &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: event.ClaudeToolDecision}},
		Attributes: []*commonpb.KeyValue{kvStr("tool_name", "Bash"), kvStr("tool_use_id", "toolu_b1"),
			kvStr("decision", "accept"), kvStr("source", "config"), kvStr("permission_mode", "default")},
	}
	for _, e := range []event.Event{
		fork(1, 100, 1), claude,
		model(50, 60, nil, toolUse("toolu_b1", "Bash", `{}`, "make", ""), toolUse("toolu_g", "Grep", `{}`, "", "")),
		fork(62, 101, 100), shell, exit(66, 101, 0, 0),
		model(70, 80, []event.ToolResult{ok("toolu_b1"), ok("toolu_g")}),
		tracesEvent(85,
			otlpSpan(interaction, root, agTrace, "claude_code.interaction", 40, 90),
			otlpSpan(toolSpan, interaction, agTrace, "claude_code.tool", 61, 69,
				kvStr("tool_name", "Bash"), kvStr("gen_ai.tool.name", "Bash"), kvStr("gen_ai.operation.name", "execute_tool"),
				kvStr("gen_ai.tool.call.id", "toolu_b1"), kvStr("tool_use_id", "toolu_b1"), kvInt("duration_ms", 8),
				kvStr("agentwatch.tool.status", "ok")),
			otlpSpan(execSpan, toolSpan, agTrace, "claude_code.tool.execution", 62, 68, kvStr("gen_ai.tool.call.id", "toolu_b1")),
			// No call id: joined by name, the one Grep span in the window.
			otlpSpan(other, interaction, agTrace, "claude_code.tool", 61, 62, kvStr("tool_name", "Grep")),
		),
		logsEvent(86, decision),
		exit(95, 100, 0, 0),
	} {
		rec.Add(e)
	}
	tr := rec.Finish(End{Time: at(100)})
	checkInvariants(t, tr)
	tools := toolSpans(tr)
	if len(tools) != 2 {
		t.Fatalf("%d tool spans", len(tools))
	}
	for i := range tr.Spans {
		if n := tr.Spans[i].Name; n == "claude_code.tool" {
			t.Errorf("the agent's tool span %s is still in the trace: one span per call, never two", tr.Spans[i].SpanID)
		}
	}
	b := tools["toolu_b1"]
	wantAttrs(t, b, map[attribute.Key]string{
		telemetry.SpanType:                                         "tool_call",
		telemetry.ToolStatus:                                       "ok",
		telemetry.AgentSpanID:                                      toolSpan.String(),
		telemetry.AgentLinkedBy:                                    "tool_call_id",
		telemetry.ClaimedStart:                                     at(61).UTC().Format(time.RFC3339Nano),
		telemetry.ClaimedEnd:                                       at(69).UTC().Format(time.RFC3339Nano),
		"agent.claim.tool_name":                                    "Bash",
		"agent.claim.duration_ms":                                  "8",
		"agent.claim.agentwatch.tool.status":                       "ok", // the agent's word, in the claim namespace
		telemetry.CommandApproval:                                  "policy",
		telemetry.ToolDecision:                                     "accept",
		telemetry.ToolApprovalSource:                               "agent_telemetry",
		attribute.Key("agent.claim." + string(telemetry.SpanType)): "<unset>",
	})
	exe := agSpanByID(tr, execSpan)
	if exe == nil || exe.ParentID != b.SpanID || exe.Start.Before(b.Start) || exe.End.After(b.End) {
		t.Errorf("the agent's tool.execution span: %+v, want under the tool span, inside it", exe)
	}
	procs := byPID(tr)
	if p := procs[101]; p.ParentID != b.SpanID || agAttr(p, telemetry.ToolMatchedBy) != "traceparent" {
		t.Errorf("shell under %s by %q, want the tool span by traceparent", label(spanByID(tr, p.ParentID)), agAttr(p, telemetry.ToolMatchedBy))
	}
	// The shell's link to the agent's tool.execution span still resolves.
	if len(procs[101].Links) != 1 || agSpanByID(tr, procs[101].Links[0].SpanID) == nil {
		t.Errorf("shell links %+v", procs[101].Links)
	}
	g := tools["toolu_g"]
	wantAttrs(t, g, map[attribute.Key]string{
		telemetry.AgentSpanID: other.String(), telemetry.AgentLinkedBy: "time", "agent.claim.tool_name": "Grep",
		telemetry.CommandApproval: "unknown", telemetry.ToolAction: "search",
	})
	if agSpanByID(tr, toolSpan) != nil || agSpanByID(tr, other) != nil {
		t.Error("joined agent spans kept")
	}
	for i := range tr.Spans {
		for _, l := range tr.Spans[i].Links {
			if l.SpanID == toolSpan || l.SpanID == other {
				t.Errorf("%s links to a dropped span", label(&tr.Spans[i]))
			}
		}
	}
	if agAttr(&tr.Spans[0], telemetry.AgentSpans) == "" {
		t.Error("root lost its agent span count")
	}
}

// TestToolByCodexID: a process whose environment names the call
// (CODEX_TOOL_CALL_ID) is the tool's; one with an argv command matches a
// Codex shell call word for word.
func TestToolByCodexID(t *testing.T) {
	info := runInfo()
	info.Argv = []string{"codex", "exec", "--dangerously-bypass-approvals-and-sandbox", "fix it"}
	argv := []string{"bash", "-lc", "go test ./..."}
	byEnv := exec(22, 101, 100, "/usr/bin/codex-linux-sandbox", ws, "codex-linux-sandbox", "--", "bash", "-lc", "ls")
	byEnv.ToolCallID = "call_1"
	call := func(id string, cmd ...string) event.ToolCall {
		return event.ToolCall{ID: id, Name: "shell", ArgumentsSHA256: sha256Hex(id), CommandSHA256: sha256Hex(strings.Join(cmd, "\x00"))}
	}
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/codex", ws, "codex", "exec", "--dangerously-bypass-approvals-and-sandbox", "fix it"),
		event.LLMCall{Header: hdr(20, 100), Start: at(10), End: at(20), Provider: "openai", API: "responses", Status: 200,
			ToolCalls: []event.ToolCall{call("call_1", "bash", "-lc", "ls"), call("call_2", argv...)}},
		fork(21, 101, 100), byEnv, exit(24, 101, 0, 0),
		fork(25, 102, 100), exec(26, 102, 100, "/bin/bash", ws, argv...), exit(29, 102, 0, 0),
		event.LLMCall{Header: hdr(40, 100), Start: at(30), End: at(40), Provider: "openai", API: "responses", Status: 200,
			ToolResults: []event.ToolResult{{ToolCallID: "call_1"}, {ToolCallID: "call_2"}}},
	}
	tr := record(info, events, End{Time: at(50)})
	checkInvariants(t, tr)
	tools, procs := toolSpans(tr), byPID(tr)
	if p := procs[101]; p.ParentID != tools["call_1"].SpanID || agAttr(p, telemetry.ToolMatchedBy) != "tool_call_id" {
		t.Errorf("sandboxed shell under %s by %q", label(spanByID(tr, p.ParentID)), agAttr(p, telemetry.ToolMatchedBy))
	}
	if p := procs[102]; p.ParentID != tools["call_2"].SpanID || agAttr(p, telemetry.ToolMatchedBy) != "command" {
		t.Errorf("argv shell under %s by %q", label(spanByID(tr, p.ParentID)), agAttr(p, telemetry.ToolMatchedBy))
	}
	wantAttrs(t, tools["call_1"], map[attribute.Key]string{telemetry.GenAIAgentName: "codex", telemetry.CommandApproval: "auto", telemetry.ToolAction: "exec"})
}

// TestParseMCPConfig: the servers of .mcp.json and of ~/.claude.json (the
// user's and this project's), an http server with no command.
func TestParseMCPConfig(t *testing.T) {
	mcp := []byte(`{"mcpServers":{"notes":{"command":"python3","args":["/srv/notes.py","--db","x"]},"web":{"type":"http","url":"https://x.example/mcp","command":"ignored"}}}`)
	got := ParseMCPConfig(mcp, ws, ".mcp.json")
	if len(got) != 2 || got[0].Name != "notes" || got[0].Command != "python3" || !slices.Equal(got[0].Args, []string{"/srv/notes.py", "--db", "x"}) ||
		got[1].Name != "web" || got[1].Command != "" || got[0].Source != ".mcp.json" {
		t.Errorf(".mcp.json: %+v", got)
	}
	user := []byte(`{"numStartups":3,"mcpServers":{"gh":{"command":"npx","args":["-y","@mcp/github"]}},"projects":{"` + ws + `":{"mcpServers":{"db":{"command":"/usr/bin/db-mcp"}}},"/other":{"mcpServers":{"no":{"command":"x"}}}}}`)
	got = ParseMCPConfig(user, ws, "~/.claude.json")
	if len(got) != 2 || got[0].Name != "gh" || got[1].Name != "db" {
		t.Errorf("~/.claude.json: %+v", got)
	}
	if ParseMCPConfig([]byte("not json"), ws, "x") != nil {
		t.Error("a file that is not JSON gives servers")
	}
}

// TestMCPServerMatch: by the command's base name and the configured
// arguments at the end of argv; a launcher's children are not servers
// again.
func TestMCPServerMatch(t *testing.T) {
	info := runInfo()
	info.MCPServers = []MCPServer{
		{Name: "gh", Command: "npx", Args: []string{"-y", "@mcp/github"}},
		{Name: "db", Command: "/usr/bin/db-mcp"},
		{Name: "web"}, // http: never a process
	}
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x"),
		fork(3, 101, 100), exec(4, 101, 100, "/usr/bin/npx", ws, "npx", "-y", "@mcp/github"),
		fork(5, 102, 101), exec(6, 102, 101, "/usr/bin/npx", ws, "npx", "-y", "@mcp/github"), // npx re-running itself
		fork(7, 103, 100), exec(8, 103, 100, "/usr/bin/db-mcp", ws, "db-mcp"),
		fork(9, 104, 100), exec(10, 104, 100, "/usr/bin/db-mcp", ws, "db-mcp", "--other"),
		model(20, 30, nil, toolUse("t1", "mcp__gh__create_issue", `{}`, "", ""), toolUse("t2", "mcp__unknown__x", `{}`, "", "")),
	}
	tr := record(info, events, End{Time: at(50)})
	checkInvariants(t, tr)
	procs := byPID(tr)
	for pid, want := range map[int64]string{101: "gh", 102: "", 103: "db", 104: ""} {
		if got := agAttr(procs[pid], telemetry.MCPServerName); got != want {
			t.Errorf("pid %d: server %q, want %q", pid, got, want)
		}
		if isSrv := procs[pid].Type() == telemetry.SpanMCPServer; isSrv != (want != "") {
			t.Errorf("pid %d: type %s", pid, procs[pid].Type())
		}
	}
	tools := toolSpans(tr)
	if l := linksOf(tools["t1"], telemetry.LinkMCPServer); len(l) != 1 || l[0] != procs[101].SpanID {
		t.Errorf("gh tool links %v", l)
	}
	wantAttrs(t, tools["t2"], map[attribute.Key]string{telemetry.MCPServerName: "unknown", telemetry.ToolStatus: "no_result", telemetry.GenAIToolName: "x"})
	if l := linksOf(tools["t2"], telemetry.LinkMCPServer); len(l) != 0 {
		t.Errorf("a server nobody started: links %v", l)
	}
}

// TestToolFullCapture: the arguments, redacted, only in full capture.
func TestToolFullCapture(t *testing.T) {
	tc := toolUse("toolu_1", "Bash", `{}`, "x", "")
	tc.Arguments = `{"command":"curl -H 'Authorization: Bearer ` + planted[1] + `' x"}`
	c := model(10, 20, nil, tc)
	c.ContentCaptured = true
	info := runInfo()
	info.Capture = Capture{Full: true}
	tr := record(info, []event.Event{fork(1, 100, 1), exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude"), c}, End{Time: at(30)})
	s := toolSpans(tr)["toolu_1"]
	args := agAttr(s, telemetry.GenAIToolCallArguments)
	if !strings.Contains(args, "curl") || strings.Contains(args, planted[1]) {
		t.Errorf("arguments %q: want them, redacted", args)
	}
	tr = record(runInfo(), []event.Event{fork(1, 100, 1), exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude"), model(10, 20, nil, toolUse("toolu_1", "Bash", `{}`, "x", ""))}, End{Time: at(30)})
	if got := agAttr(toolSpans(tr)["toolu_1"], telemetry.GenAIToolCallArguments); got != "" {
		t.Errorf("metadata mode kept arguments %q", got)
	}
}

// TestFDPaths: a rename through /proc/self/fd/N/ lands in the directory of
// the file of that name the process made; an unknown one stays a pseudo
// path (dropped).
func TestFDPaths(t *testing.T) {
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude"),
		file(10, 100, event.FileCreate, ws+"/src/a.go.tmp.1"),
		event.File{Header: hdr(11, 100), Source: event.SourceEBPF, Op: event.FileRename,
			Path: "/proc/self/fd/16/a.go.tmp.1", NewPath: "/proc/self/fd/16/a.go"},
		event.File{Header: hdr(12, 100), Source: event.SourceEBPF, Op: event.FileRename,
			Path: "/proc/self/fd/17/unknown.tmp", NewPath: "/proc/self/fd/17/unknown"},
	}
	tr := record(runInfo(), events, End{Time: at(20)})
	var paths []string
	for i := range tr.Spans {
		if s := &tr.Spans[i]; s.Type() == telemetry.SpanFileWrite {
			paths = append(paths, agAttr(s, telemetry.FilePath)+" -> "+agAttr(s, telemetry.FileRenamedTo))
		}
	}
	if want := []string{ws + "/src/a.go.tmp.1 -> " + ws + "/src/a.go"}; !slices.Equal(paths, want) {
		t.Errorf("file spans %q, want %q", paths, want)
	}
	for _, tc := range []struct{ in, fd, name string }{
		{"/proc/self/fd/16/x", "/proc/self/fd/16", "x"},
		{"/proc/123/fd/3/y.tmp", "/proc/123/fd/3", "y.tmp"},
		{"/proc/self/fd/16", "", ""},
		{"/proc/self/fd/16/a/b", "", ""},
		{"/tmp/x", "", ""},
	} {
		if fd, name, _ := fdPath(tc.in); fd != tc.fd || name != tc.name {
			t.Errorf("fdPath(%q) = %q, %q", tc.in, fd, name)
		}
	}
}

// TestReadToolLinksSecretRead: a Read of a secret links the agent's
// file_read span of it (reads are spans only for secrets), and writes
// nothing.
func TestReadToolLinksSecretRead(t *testing.T) {
	creds := home + "/.aws/credentials"
	events := []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x"),
		model(10, 20, nil, toolUse("toolu_r", "Read", `{}`, "", creds)),
		file(22, 100, event.FileRead, creds),
		model(30, 40, []event.ToolResult{ok("toolu_r")}),
		file(50, 100, event.FileRead, creds), // a later read, still the same span
	}
	tr := record(runInfo(), events, End{Time: at(60)})
	checkInvariants(t, tr)
	s := toolSpans(tr)["toolu_r"]
	l := linksOf(s, telemetry.LinkToolFile)
	if len(l) != 1 || spanByID(tr, l[0]).Type() != telemetry.SpanFileRead {
		t.Fatalf("Read of a secret: tool_file links %v", l)
	}
	wantAttrs(t, s, map[attribute.Key]string{telemetry.ToolFilesWritten: "0", telemetry.ToolAction: "read", telemetry.FilePath: creds})
}
