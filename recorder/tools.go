package recorder

// Tool calls without the agent's help: every tool_use block a model call
// returned (event.LLMCall.ToolCalls, as the proxy read it) becomes a
// tool_call span of agentwatch's own, named execute_tool <tool>, with the
// processes it ran nested under it.
//
// Decisions a reader of the trace should know:
//   - The parent is the process span of the agent that made the model call
//     (the chat span's parent), not the chat span: the tool runs after the
//     response ended, outside the chat span's interval. A tool_call_of link
//     goes to the chat span that asked for it, a tool_result_in link to the
//     one whose request carried its result.
//   - Interval: from the end of the model call that asked for it to the
//     start of the first later request that carried its tool_result; a call
//     never answered (agentwatch.tool.status=no_result) ends with its parent
//     process (the run's end if that is still running). It is widened over
//     the processes nested under it, so that they lie inside it (an agent
//     may start a tool while the response still streams; a background
//     command outlives its result).
//   - Status: error when the tool_result was marked is_error (the span's
//     status is then Error), ok when answered otherwise, no_result when no
//     request of the run carried it (at most event.MaxToolResults results of
//     one request are known by id: one past them counts as unanswered).
//   - Retries: a call with the same tool name and argument digest as the
//     previous such call, when that one ended in error, links retry_of to it
//     and carries agentwatch.tool.retry.count (that one's count plus one).
//   - The processes a tool ran: the topmost process of each is re-parented
//     from the agent's process span to the tool span (its subtree follows),
//     matched, in this order, by (1) the tool call id in its environment
//     (CODEX_TOOL_CALL_ID), or its TRACEPARENT naming an agent span that
//     carries the call's id (gen_ai.tool.call.id / tool_use_id); (2) the
//     command: Claude Code runs a Bash tool's command as
//     `bash -c "… eval '<command>' < /dev/null …"`, and the command eval
//     runs, unquoted as the shell would (single, double quotes or
//     backslashes), must equal the model's input.command (sha256 of both,
//     spaces trimmed; event.ToolCall.CommandSHA256); a direct child of the
//     agent's process may instead match an argv command (Codex's
//     ["bash","-lc","…"]) word for word; (3) time, for an exec tool still
//     without a process: the one tool shell (a shell with an eval) that
//     started inside its window, when it lies in no other exec tool's
//     window. The process must start after the asking request began and
//     before the result arrived (plus toolSlack), and be a descendant of the
//     tool's parent. agentwatch.tool.matched_by on the process says which.
//   - A tool that ran no process (Read, Edit, Write) links (tool_file) to
//     the agent process's own file spans of the path it names that overlap
//     its interval: one file span covers every operation of a process on a
//     path, so two edits of one file share it, and a link, not a child, is
//     what is true. Reads are spans only for secrets.
//   - Side effects: agentwatch.tool.files_written, .connections and
//     .installs count the file_write, network_call and dependency_install
//     spans under the tool span (aggregates by their counts), plus the file
//     spans it links.
//   - Approval: agentwatch.command.approval from the agent's own
//     tool_decision record for the call when agent telemetry is on (its
//     claim: agentwatch.tool.approval.source=agent_telemetry), else auto when
//     the agent's command line bypasses permissions
//     (--dangerously-skip-permissions, --permission-mode bypassPermissions,
//     Codex's --dangerously-bypass-approvals-and-sandbox or -a never;
//     source argv), else unknown.
//   - The agent's own span for the same call (Claude Code's
//     claude_code.tool, found by its gen_ai.tool.call.id / tool_use_id, else
//     by tool name when it is the only one in the window) joins ours: its
//     attributes go on the tool span under agent.claim., its times as
//     agentwatch.claimed.start/end, its events move over, its children
//     (tool.execution, blocked_on_user) are re-parented to the tool span,
//     whatever pointed at it (links, parents) points at ours, and it is
//     dropped: one span per tool call, never two.

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// toolSlack is how far past a tool's window its process may start, for
// the sensors' and the proxy's timestamps (taken on different threads).
const toolSlack = 10 * time.Millisecond

// toolActions maps a tool name to its agentwatch.tool.action: Claude
// Code's tools, Codex's and OpenAI's function tools, Gemini CLI's, the
// Anthropic text editor. Names are looked up as given, then lower-cased.
var toolActions = map[string]string{
	// Claude Code
	"Read": telemetry.ToolActionRead, "NotebookRead": telemetry.ToolActionRead,
	"Write": telemetry.ToolActionWrite,
	"Edit":  telemetry.ToolActionEdit, "MultiEdit": telemetry.ToolActionEdit, "NotebookEdit": telemetry.ToolActionEdit,
	"Bash": telemetry.ToolActionExec, "BashOutput": telemetry.ToolActionExec, "KillShell": telemetry.ToolActionExec,
	"KillBash": telemetry.ToolActionExec, "PowerShell": telemetry.ToolActionExec,
	"Grep": telemetry.ToolActionSearch, "Glob": telemetry.ToolActionSearch, "LS": telemetry.ToolActionSearch,
	"WebFetch": telemetry.ToolActionNetwork, "WebSearch": telemetry.ToolActionNetwork,
	// Codex, OpenAI function and built-in tools
	"shell": telemetry.ToolActionExec, "local_shell": telemetry.ToolActionExec, "exec_command": telemetry.ToolActionExec,
	"container.exec": telemetry.ToolActionExec, "unified_exec": telemetry.ToolActionExec, "write_stdin": telemetry.ToolActionExec,
	"apply_patch": telemetry.ToolActionEdit, "view_image": telemetry.ToolActionRead,
	"web_search": telemetry.ToolActionNetwork, "web_fetch": telemetry.ToolActionNetwork, "fetch": telemetry.ToolActionNetwork,
	// Gemini CLI, Cursor and friends, the Anthropic text editor
	"read_file": telemetry.ToolActionRead, "read_many_files": telemetry.ToolActionRead, "view": telemetry.ToolActionRead,
	"write_file": telemetry.ToolActionWrite, "create_file": telemetry.ToolActionWrite,
	"replace": telemetry.ToolActionEdit, "edit_file": telemetry.ToolActionEdit, "str_replace_editor": telemetry.ToolActionEdit,
	"str_replace_based_edit_tool": telemetry.ToolActionEdit, "search_replace": telemetry.ToolActionEdit,
	"run_shell_command": telemetry.ToolActionExec, "run_terminal_cmd": telemetry.ToolActionExec, "bash": telemetry.ToolActionExec,
	"grep": telemetry.ToolActionSearch, "glob": telemetry.ToolActionSearch, "search_file_content": telemetry.ToolActionSearch,
	"list_directory": telemetry.ToolActionSearch, "list_dir": telemetry.ToolActionSearch, "grep_search": telemetry.ToolActionSearch,
	"file_search": telemetry.ToolActionSearch, "codebase_search": telemetry.ToolActionSearch,
	"google_web_search": telemetry.ToolActionNetwork, "web_fetch_tool": telemetry.ToolActionNetwork,
}

// ToolAction is the normalised action of a tool by its name (the
// agentwatch.tool.action values): mcp__<server>__<tool> is mcp, a name no
// table row knows is other (Task, TodoWrite, Skill, update_plan, …).
func ToolAction(name string) string {
	if _, _, ok := splitMCPTool(name); ok {
		return telemetry.ToolActionMCP
	}
	if a, ok := toolActions[name]; ok {
		return a
	}
	if a, ok := toolActions[strings.ToLower(name)]; ok {
		return a
	}
	return telemetry.ToolActionOther
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// noteToolCommand keeps, at exec, what a tool call's command is matched
// against (the argv before redaction: the model's command is not
// redacted either): the command a tool shell eval'd, and the argv of a
// direct child of the agent's process.
func (r *Recorder) noteToolCommand(s, parent *procSpan, e event.Exec) {
	if c, ok := evalCommand(e.Argv); ok {
		s.evalSHA = sha256Hex(c)
	}
	if parent != nil && !parent.isRoot && parent.pid == r.info.RootPID && !e.ArgvTruncated && len(e.Argv) > 0 {
		s.argvSHA = sha256Hex(strings.Join(e.Argv, "\x00"))
	}
}

// evalCommand is the command Claude Code's Bash tool runs in its shell,
// `bash -c "… && eval '<command>' < /dev/null && pwd -P >| …"`: the
// words after an unquoted eval, unquoted and joined with spaces as eval
// joins them, up to the end of that simple command, its redirections left
// out; spaces trimmed.
func evalCommand(argv []string) (string, bool) {
	if len(argv) < 3 || !isShell(path.Base(argv[0])) {
		return "", false
	}
	idx, _ := shellScript(argv[1:])
	if idx < 0 || !strings.Contains(argv[1+idx], "eval") {
		return "", false
	}
	for _, cmd := range shellCommandWords(argv[1+idx]) {
		if len(cmd) < 2 || cmd[0].text != "eval" || cmd[0].quoted {
			continue
		}
		var parts []string
		for i := 1; i < len(cmd); i++ {
			w := cmd[i]
			if !w.quoted {
				if target, ok := redirection(w.text); ok {
					if target == "" {
						i++ // `< /dev/null`: the target is the next word
					}
					continue
				}
			}
			parts = append(parts, w.text)
		}
		if c := strings.TrimSpace(strings.Join(parts, " ")); c != "" {
			return c, true
		}
	}
	return "", false
}

// redirection reads an unquoted word as a redirection operator
// ([n]<, >, >>, >|, <<, >&, <&, &>), returning what follows the operator
// in the word.
func redirection(w string) (target string, ok bool) {
	i := 0
	for i < len(w) && w[i] >= '0' && w[i] <= '9' {
		i++
	}
	for _, op := range []string{"&>>", "&>", ">>", ">|", ">&", "<&", "<<<", "<<", "<>", ">", "<"} {
		if strings.HasPrefix(w[i:], op) {
			return w[i+len(op):], true
		}
	}
	return "", false
}

// shellWord is one word of a shell command, unquoted; quoted says a quote
// or a backslash was part of it (so `'<'` is no redirection).
type shellWord struct {
	text   string
	quoted bool
}

// shellCommandWords splits a script into simple commands (at unquoted
// ; & | && || newlines and parentheses) of unquoted words, keeping
// whether each word was quoted; `>&` and `>|` stay in their word, a
// backslash-newline continues the line. splitShell (argv.go) is the same
// without the marks.
func shellCommandWords(s string) [][]shellWord {
	var (
		cmds  [][]shellWord
		cur   []shellWord
		word  strings.Builder
		inW   bool
		q     bool
		quote byte
	)
	flushWord := func() {
		if inW {
			cur = append(cur, shellWord{word.String(), q})
			word.Reset()
			inW, q = false, false
		}
	}
	flushCmd := func() {
		flushWord()
		if len(cur) > 0 {
			cmds = append(cmds, cur)
			cur = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case quote == '"':
			if c == '"' {
				quote = 0
			} else if c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
				i++
				if s[i] != '\n' {
					word.WriteByte(s[i])
				}
			} else {
				word.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inW, q = c, true, true
		case c == '\\' && i+1 < len(s):
			i++
			if s[i] != '\n' { // a line continuation
				word.WriteByte(s[i])
				inW, q = true, true
			}
		case c == ' ' || c == '\t':
			flushWord()
		case (c == '&' || c == '|') && inW && !q && strings.HasSuffix(word.String(), ">"):
			word.WriteByte(c) // >& and >|
		case c == ';' || c == '&' || c == '|' || c == '\n' || c == '(' || c == ')':
			flushCmd()
		default:
			word.WriteByte(c)
			inW = true
		}
	}
	flushCmd()
	return cmds
}

// toolCall is one tool call the model asked for, as finishTools builds
// its span.
type toolCall struct {
	tc            event.ToolCall
	asked, answer *llmSpan
	result        event.ToolResult
	parent        trace.SpanID // the asking call's parent: the agent's process span
	start, end    time.Time
	status        string
	action        string
	name          string // gen_ai.tool.name: for MCP the tool's own name
	server        string // MCP: the server part of the name
	retryOf       *toolCall
	retries       int
	procs         []*procSpan
	mcpProc       *procSpan
	files         []*fileSpan
	agentIdx      int    // the agent's own span for the call, index in t.Spans; -1 none
	linkedBy      string // how that span was found: tool_call_id, time
	id            trace.SpanID
}

// finishTools adds the tool_call spans, after finishLLM (the chat spans
// they link) and finishAgent (the agent's spans they join, the tool
// contexts they match processes by), before the rules, the policy and the
// intervals.
func (r *Recorder) finishTools(t *telemetry.Trace, end End) {
	st := r.llm
	if st == nil {
		return
	}
	var tools []*toolCall
	byID := map[string]*toolCall{}
	for _, s := range st.calls {
		asked := s.call.End
		if asked.IsZero() {
			asked = s.call.Start
		}
		for _, tc := range s.call.ToolCalls {
			if tc.ID != "" && byID[tc.ID] != nil {
				continue // the same call again (a replayed response): asked once
			}
			tl := &toolCall{tc: tc, asked: s, parent: s.parent, start: asked, agentIdx: -1, action: ToolAction(tc.Name), name: tc.Name}
			if srv, tool, ok := splitMCPTool(tc.Name); ok {
				tl.server, tl.name = srv, tool
			}
			tools = append(tools, tl)
			if tc.ID != "" {
				byID[tc.ID] = tl
			}
		}
	}
	if len(tools) == 0 {
		return
	}
	for _, s := range st.calls {
		for _, tr := range s.call.ToolResults {
			tl := byID[tr.ToolCallID]
			if tl == nil || tl.answer != nil || s == tl.asked || s.call.Start.Before(tl.asked.call.Start) {
				continue
			}
			tl.answer, tl.result = s, tr
		}
	}
	idx := spanIndex(t)
	for _, tl := range tools {
		switch {
		case tl.answer == nil:
			tl.status = telemetry.ToolStatusNoResult
			tl.end = end.Time
			if i, ok := idx[tl.parent]; ok && tl.parent != r.root.id {
				tl.end = t.Spans[i].End // ended with the agent's process
			}
		case tl.result.IsError:
			tl.status, tl.end = telemetry.ToolStatusError, tl.answer.call.Start
		default:
			tl.status, tl.end = telemetry.ToolStatusOK, tl.answer.call.Start
		}
		if tl.end.Before(tl.start) {
			tl.end = tl.start
		}
	}
	// Retries: the same name and arguments after an error.
	last := map[string]*toolCall{}
	for _, tl := range tools {
		if tl.tc.ArgumentsSHA256 == "" {
			continue
		}
		key := tl.tc.Name + "\x00" + tl.tc.ArgumentsSHA256
		if prev := last[key]; prev != nil && prev.status == telemetry.ToolStatusError {
			tl.retryOf, tl.retries = prev, prev.retries+1
		}
		last[key] = tl
	}

	agentIDs := r.agentToolIDs(t, idx)
	matchedBy := r.matchToolProcesses(tools, byID, agentIDs, idx)
	r.linkToolFiles(tools)
	r.linkMCPServers(tools)
	r.joinAgentToolSpans(t, tools, agentIDs, idx)
	approvals := r.toolApprovals()

	// The spans: ids first, so links and re-parenting can name them.
	for _, tl := range tools {
		tl.id, _ = r.nextSpanID()
	}
	for _, tl := range tools {
		for _, p := range tl.procs {
			if i, ok := idx[p.id]; ok {
				sp := &t.Spans[i]
				sp.ParentID = tl.id
				sp.SetAttr(telemetry.ToolMatchedBy.String(matchedBy[p]))
			}
		}
	}
	var failed, unanswered int
	agents := r.callerAgents(tools)
	for _, tl := range tools {
		t.Spans = append(t.Spans, r.toolTelemetry(tl, approvals, agents))
		switch tl.status {
		case telemetry.ToolStatusError:
			failed++
		case telemetry.ToolStatusNoResult:
			unanswered++
		}
	}
	r.moveAgentToolSpans(t, tools)
	r.toolSubtrees(t, tools)
	root := &t.Spans[0]
	root.SetAttr(telemetry.ToolCalls.Int(len(tools)))
	root.SetAttr(telemetry.ToolCallsFailed.Int(failed))
	root.SetAttr(telemetry.ToolCallsNoResult.Int(unanswered))
	rest := t.Spans[1:]
	slices.SortStableFunc(rest, func(a, b telemetry.Span) int { return a.Start.Compare(b.Start) })
}

// agentToolIDs maps each of the agent's spans to the tool call id it
// carries (gen_ai.tool.call.id, Claude Code's tool_use_id), or that its
// nearest agent ancestor carries (tool.execution under tool).
func (r *Recorder) agentToolIDs(t *telemetry.Trace, idx map[trace.SpanID]int) map[trace.SpanID]string {
	own := map[trace.SpanID]string{}
	for i := range t.Spans {
		sp := &t.Spans[i]
		if sp.Type() != telemetry.SpanAgent {
			continue
		}
		if id := agentToolCallID(sp); id != "" {
			own[sp.SpanID] = id
		}
	}
	out := map[trace.SpanID]string{}
	for i := range t.Spans {
		sp := &t.Spans[i]
		if sp.Type() != telemetry.SpanAgent {
			continue
		}
		cur := sp
		for steps := 0; cur != nil && steps < 8; steps++ {
			if id := own[cur.SpanID]; id != "" {
				out[sp.SpanID] = id
				break
			}
			j, ok := idx[cur.ParentID]
			if !ok || t.Spans[j].Type() != telemetry.SpanAgent {
				break
			}
			cur = &t.Spans[j]
		}
	}
	return out
}

func agentToolCallID(sp *telemetry.Span) string {
	for _, k := range []attribute.Key{telemetry.GenAIToolCallID, "tool_use_id"} {
		if v, ok := sp.Attr(k); ok && v.AsString() != "" {
			return v.AsString()
		}
	}
	return ""
}

// agentToolName is the tool an agent span says it is, when it is the
// span of a tool call itself (gen_ai.operation.name execute_tool, or a
// tool name on it).
func agentToolName(sp *telemetry.Span) (string, bool) {
	for _, k := range []attribute.Key{telemetry.GenAIToolName, "tool_name"} {
		if v, ok := sp.Attr(k); ok && v.AsString() != "" {
			return v.AsString(), true
		}
	}
	if v, ok := sp.Attr(telemetry.GenAIOperationName); ok && v.AsString() == "execute_tool" {
		return "", true
	}
	return "", false
}

// matchToolProcesses finds the processes each tool ran (the rules above)
// and returns how each was matched.
func (r *Recorder) matchToolProcesses(tools []*toolCall, byID map[string]*toolCall, agentIDs map[trace.SpanID]string, idx map[trace.SpanID]int) map[*procSpan]string {
	procByID := make(map[trace.SpanID]*procSpan, len(r.spans))
	for _, s := range r.spans {
		procByID[s.id] = s
	}
	matched := map[*procSpan]*toolCall{}
	how := map[*procSpan]string{}
	// under reports whether s lies below anc in the process tree as the
	// sensors saw it (bounded: parents come before children).
	under := func(s *procSpan, anc trace.SpanID) bool {
		for p, n := s.parent, 0; n <= len(r.spans); n++ {
			if p == anc {
				return true
			}
			ps := procByID[p]
			if ps == nil || ps.isRoot {
				return anc == r.root.id
			}
			p = ps.parent
		}
		return false
	}
	// taken: s or a process above it already belongs to a tool.
	taken := func(s *procSpan) bool {
		for p, n := s, 0; p != nil && !p.isRoot && n <= len(r.spans); n++ {
			if matched[p] != nil {
				return true
			}
			p = procByID[p.parent]
		}
		return false
	}
	inWindow := func(s *procSpan, tl *toolCall) bool {
		return !s.start.Before(tl.asked.call.Start) && !s.start.After(tl.end.Add(toolSlack))
	}
	eligible := func(s *procSpan, tl *toolCall) bool {
		_, inTrace := idx[s.id]
		return inTrace && !s.isRoot && s.id != tl.parent && under(s, tl.parent) && !taken(s)
	}
	take := func(s *procSpan, tl *toolCall, by string) {
		matched[s], how[s] = tl, by
		tl.procs = append(tl.procs, s)
	}
	// 1. The call's id, from the process's environment.
	if as := r.agent; as != nil {
		for _, s := range r.spans {
			tc, ok := as.tools[s.id]
			if !ok {
				continue
			}
			var tl *toolCall
			by := ""
			switch {
			case tc.toolCallID != "":
				tl, by = byID[tc.toolCallID], "tool_call_id"
			case tc.traceParent != "":
				if _, sid, ok := parseTraceParent(tc.traceParent); ok && agentIDs[sid] != "" {
					tl, by = byID[agentIDs[sid]], "traceparent"
				}
			}
			if tl != nil && eligible(s, tl) {
				take(s, tl, by)
			}
		}
	}
	// 2. The command.
	byCmd := map[string][]*toolCall{}
	for _, tl := range tools {
		if d := tl.tc.CommandSHA256; d != "" {
			byCmd[d] = append(byCmd[d], tl)
		}
	}
	if len(byCmd) > 0 {
		for _, s := range r.spans {
			for _, d := range []string{s.evalSHA, s.argvSHA} {
				if d == "" || matched[s] != nil {
					continue
				}
				var best *toolCall
				for _, tl := range byCmd[d] {
					if !inWindow(s, tl) || !eligible(s, tl) {
						continue
					}
					if best == nil || len(tl.procs) < len(best.procs) {
						best = tl // earliest asked, unless it has its process already
					}
				}
				if best != nil {
					take(s, best, "command")
				}
			}
		}
	}
	// 3. Time: the one tool shell in an exec tool's window.
	var open []*toolCall
	for _, tl := range tools {
		if tl.action == telemetry.ToolActionExec && len(tl.procs) == 0 {
			open = append(open, tl)
		}
	}
	shells := func(tl *toolCall) []*procSpan {
		var out []*procSpan
		for _, s := range r.spans {
			if s.evalSHA != "" && matched[s] == nil && inWindow(s, tl) && eligible(s, tl) {
				out = append(out, s)
			}
		}
		return out
	}
	for _, tl := range open {
		c := shells(tl)
		if len(c) != 1 {
			continue
		}
		n := 0
		for _, other := range open {
			if len(other.procs) == 0 && inWindow(c[0], other) {
				n++
			}
		}
		if n == 1 {
			take(c[0], tl, "time")
		}
	}
	return how
}

// linkToolFiles links a tool that ran no process to the agent process's
// file spans of the path it names, within its interval.
func (r *Recorder) linkToolFiles(tools []*toolCall) {
	owners := map[trace.SpanID]*procSpan{r.root.id: r.root}
	for _, s := range r.spans {
		owners[s.id] = s
	}
	for _, tl := range tools {
		p := tl.tc.FilePath
		owner := owners[tl.parent]
		if p == "" || len(tl.procs) > 0 || owner == nil || !strings.HasPrefix(p, "/") {
			continue
		}
		p = cleanPath(p)
		from, to := tl.asked.call.Start, tl.end.Add(toolSlack)
		for _, fs := range owner.fileOrder {
			if fs.path != p && fs.renamedTo != p {
				continue
			}
			if fs.end.Before(from) || fs.start.After(to) {
				continue
			}
			tl.files = append(tl.files, fs)
		}
	}
}

// linkMCPServers finds the process span of each MCP tool call's server:
// of those of its name, the latest started before the call.
func (r *Recorder) linkMCPServers(tools []*toolCall) {
	var servers []*procSpan
	for _, s := range r.spans {
		if s.mcpServer != "" {
			servers = append(servers, s)
		}
	}
	for _, tl := range tools {
		if tl.server == "" {
			continue
		}
		var before, after *procSpan // the latest started before the call, else the first after
		for _, s := range servers {
			if mcpName(s.mcpServer) != mcpName(tl.server) {
				continue
			}
			switch {
			case !s.start.After(tl.start):
				if before == nil || s.start.After(before.start) {
					before = s
				}
			case after == nil:
				after = s
			}
		}
		tl.mcpProc = cmp.Or(before, after)
	}
}

// joinAgentToolSpans finds the agent's own span of each tool call: by its
// call id, else by tool name when it is the only one in the call's window
// and the call the only one around it.
func (r *Recorder) joinAgentToolSpans(t *telemetry.Trace, tools []*toolCall, agentIDs map[trace.SpanID]string, idx map[trace.SpanID]int) {
	byCall := map[string][]int{}
	var unnamed []int // tool spans of the agent's without a call id
	for i := range t.Spans {
		sp := &t.Spans[i]
		if sp.Type() != telemetry.SpanAgent {
			continue
		}
		if _, isTool := agentToolName(sp); !isTool {
			continue
		}
		if id := agentToolCallID(sp); id != "" {
			byCall[id] = append(byCall[id], i)
		} else {
			unnamed = append(unnamed, i)
		}
	}
	used := map[int]bool{}
	for _, tl := range tools {
		cands := byCall[tl.tc.ID]
		if tl.tc.ID == "" || len(cands) == 0 {
			continue
		}
		// The topmost: a tool span under another of the same call is a
		// part of it.
		best := cands[0]
		for _, i := range cands {
			if p, ok := idx[t.Spans[i].ParentID]; !ok || agentIDs[t.Spans[p].SpanID] != tl.tc.ID {
				best = i
				break
			}
		}
		tl.agentIdx, tl.linkedBy = best, "tool_call_id"
		used[best] = true
	}
	window := func(sp *telemetry.Span, tl *toolCall) bool {
		return !sp.Start.Before(tl.asked.call.Start) && !sp.Start.After(tl.end.Add(toolSlack))
	}
	for _, tl := range tools {
		if tl.agentIdx >= 0 {
			continue
		}
		var match []int
		for _, i := range unnamed {
			if n, _ := agentToolName(&t.Spans[i]); !used[i] && n == tl.tc.Name && window(&t.Spans[i], tl) {
				match = append(match, i)
			}
		}
		if len(match) != 1 {
			continue
		}
		others := 0
		for _, o := range tools {
			if o.agentIdx < 0 && o.tc.Name == tl.tc.Name && window(&t.Spans[match[0]], o) {
				others++
			}
		}
		if others == 1 {
			tl.agentIdx, tl.linkedBy = match[0], "time"
			used[match[0]] = true
		}
	}
}

// toolApproval is what is known of how a tool call was allowed.
type toolApproval struct{ approval, decision, source string }

// toolApprovals reads the agent's tool_decision records by call id, and
// the approval its command line implies for the rest ("" key).
func (r *Recorder) toolApprovals() map[string]toolApproval {
	out := map[string]toolApproval{"": {approval: argvApproval(r.info.Argv), source: "argv"}}
	if out[""].approval == telemetry.ApprovalUnknown {
		out[""] = toolApproval{approval: telemetry.ApprovalUnknown}
	}
	if r.agent == nil {
		return out
	}
	for _, rec := range r.agent.logs {
		if rec.Name != event.ClaudeToolDecision || rec.ToolUseID == "" {
			continue
		}
		if _, seen := out[rec.ToolUseID]; seen {
			continue
		}
		a := toolApproval{decision: strings.ToLower(rec.Decision), source: telemetry.SourceAgentTelemetry}
		src := strings.ToLower(rec.Source)
		switch {
		case rec.Attrs["permission_mode"] == "bypassPermissions":
			a.approval = telemetry.ApprovalAuto
		case src == "config":
			a.approval = telemetry.ApprovalPolicy
		case strings.HasPrefix(src, "user"):
			a.approval = telemetry.ApprovalUser
		case strings.HasPrefix(src, "hook"):
			a.approval = telemetry.ApprovalHook
		default:
			a.approval = telemetry.ApprovalUnknown
		}
		out[rec.ToolUseID] = a
	}
	return out
}

// argvApproval is agentwatch.command.approval as the agent's command line
// says it: auto when it bypasses permissions.
func argvApproval(argv []string) string {
	for i, a := range argv {
		next := ""
		if i+1 < len(argv) {
			next = argv[i+1]
		}
		switch {
		case a == "--dangerously-skip-permissions", a == "--dangerously-bypass-approvals-and-sandbox", a == "--yolo",
			a == "--permission-mode" && next == "bypassPermissions", a == "--permission-mode=bypassPermissions",
			(a == "-a" || a == "--ask-for-approval") && next == "never", a == "--ask-for-approval=never":
			return telemetry.ApprovalAuto
		}
	}
	return telemetry.ApprovalUnknown
}

// callerAgents names, for each tool's parent, gen_ai.agent.name of the
// agent that asked for it: the process that made the model call, else
// the run's agent.
func (r *Recorder) callerAgents(tools []*toolCall) map[trace.SpanID]string {
	out := map[trace.SpanID]string{}
	for _, tl := range tools {
		out[tl.parent] = AgentName(r.info.Argv)
	}
	for _, s := range r.spans {
		if _, ok := out[s.id]; ok && !s.isRoot && len(s.args) > 0 {
			out[s.id] = AgentName(s.args)
		}
	}
	return out
}

func (r *Recorder) toolTelemetry(tl *toolCall, approvals map[string]toolApproval, agents map[trace.SpanID]string) telemetry.Span {
	sp := r.span(tl.id, tl.parent, "execute_tool "+nameText(tl.name), telemetry.SpanToolCall, telemetry.OITool,
		trace.SpanKindInternal, tl.start, tl.end)
	c := tl.asked.call
	a := []attribute.KeyValue{
		telemetry.GenAIOperationName.String("execute_tool"),
		telemetry.GenAIToolName.String(tl.name),
		telemetry.OIToolName.String(tl.tc.Name), // as the model called it
		telemetry.ToolAction.String(tl.action),
		telemetry.ToolStatus.String(tl.status),
		telemetry.GenAIAgentName.String(agents[tl.parent]),
		telemetry.ToolProcesses.Int(len(tl.procs)),
	}
	a = appendNonEmpty(a, telemetry.GenAIToolCallID, tl.tc.ID)
	a = appendNonEmpty(a, telemetry.GenAIConversationID, c.SessionID)
	a = appendNonEmpty(a, telemetry.ToolArgumentsSHA256, tl.tc.ArgumentsSHA256)
	if tl.tc.Arguments != "" { // full capture only
		a = append(a, telemetry.GenAIToolCallArguments.String(r.capturedText(tl.tc.Arguments, c.ContentLimit)))
	}
	a = appendNonEmpty(a, telemetry.ToolResultSHA256, tl.result.ContentSHA256)
	if tl.tc.FilePath != "" {
		a = append(a, telemetry.FilePath.String(tl.tc.FilePath))
	}
	if tl.server != "" {
		name := tl.server
		if tl.mcpProc != nil {
			name = tl.mcpProc.mcpServer
		}
		a = append(a, telemetry.MCPServerName.String(name))
	}
	ap, ok := approvals[tl.tc.ID]
	if !ok || tl.tc.ID == "" {
		ap = approvals[""]
	}
	a = append(a, telemetry.CommandApproval.String(ap.approval))
	a = appendNonEmpty(a, telemetry.ToolApprovalSource, ap.source)
	a = appendNonEmpty(a, telemetry.ToolDecision, ap.decision)
	if tl.retryOf != nil {
		a = append(a, telemetry.ToolRetryCount.Int(tl.retries))
		sp.Links = append(sp.Links, r.link(tl.retryOf.id, telemetry.LinkRetryOf))
	}
	sp.Links = append(sp.Links, r.link(tl.asked.id, telemetry.LinkToolCallOf))
	if tl.answer != nil {
		sp.Links = append(sp.Links, r.link(tl.answer.id, telemetry.LinkToolResultIn))
	}
	if tl.mcpProc != nil {
		sp.Links = append(sp.Links, r.link(tl.mcpProc.id, telemetry.LinkMCPServer))
	}
	for _, fs := range tl.files {
		sp.Links = append(sp.Links, r.link(fs.id, telemetry.LinkToolFile))
	}
	if tl.status == telemetry.ToolStatusError {
		a = append(a, telemetry.ErrorType.String("tool_error"))
		sp.Status, sp.StatusMessage = codes.Error, "tool_result is_error"
	}
	sp.Attrs = append(sp.Attrs, a...)
	return sp
}

func (r *Recorder) link(to trace.SpanID, relation string) telemetry.Link {
	return telemetry.Link{TraceID: r.traceID, SpanID: to, Attrs: []attribute.KeyValue{telemetry.LinkRelation.String(relation)}}
}

// recorderKeys are the attributes the recorder puts on every agent span:
// not the agent's claims, left out when a tool span takes them over.
var recorderKeys = map[attribute.Key]bool{
	telemetry.SpanType: true, telemetry.SpanSource: true, telemetry.OpenInferenceKind: true,
	telemetry.AgentServiceName: true, telemetry.ClaimedStart: true, telemetry.ClaimedEnd: true,
}

// moveAgentToolSpans folds each joined agent span into its tool span (see
// the decisions above) and drops it from t.
func (r *Recorder) moveAgentToolSpans(t *telemetry.Trace, tools []*toolCall) {
	into := map[trace.SpanID]trace.SpanID{} // agent span → tool span
	ours := map[trace.SpanID]int{}
	for i := range t.Spans {
		if t.Spans[i].Type() == telemetry.SpanToolCall {
			ours[t.Spans[i].SpanID] = i
		}
	}
	drop := map[int]bool{}
	for _, tl := range tools {
		if tl.agentIdx < 0 {
			continue
		}
		ag := &t.Spans[tl.agentIdx]
		sp := &t.Spans[ours[tl.id]]
		for _, kv := range ag.Attrs {
			if recorderKeys[kv.Key] {
				continue
			}
			k := string(kv.Key)
			if !strings.HasPrefix(k, telemetry.AgentClaimPrefix) {
				k = telemetry.AgentClaimPrefix + k
			}
			sp.SetAttr(attribute.KeyValue{Key: attribute.Key(k), Value: kv.Value})
		}
		if ag.Status == codes.Error {
			sp.SetAttr(attribute.String(telemetry.AgentClaimPrefix+"status", "error"))
			if ag.StatusMessage != "" {
				sp.SetAttr(attribute.String(telemetry.AgentClaimPrefix+"status_message", ag.StatusMessage))
			}
		}
		sp.SetAttr(telemetry.ClaimedStart.String(ag.Start.UTC().Format(time.RFC3339Nano)))
		sp.SetAttr(telemetry.ClaimedEnd.String(ag.End.UTC().Format(time.RFC3339Nano)))
		sp.SetAttr(telemetry.AgentSpanID.String(ag.SpanID.String()))
		sp.SetAttr(telemetry.AgentLinkedBy.String(tl.linkedBy))
		sp.Events = append(sp.Events, ag.Events...)
		sp.Links = append(sp.Links, ag.Links...)
		into[ag.SpanID] = tl.id
		drop[tl.agentIdx] = true
	}
	if len(into) == 0 {
		return
	}
	for i := range t.Spans {
		sp := &t.Spans[i]
		if to, ok := into[sp.ParentID]; ok {
			sp.ParentID = to
		}
		for j := range sp.Links {
			if to, ok := into[sp.Links[j].SpanID]; ok && sp.Links[j].TraceID == r.traceID {
				sp.Links[j].SpanID = to
			}
		}
	}
	kept := t.Spans[:0]
	for i := range t.Spans {
		if !drop[i] {
			kept = append(kept, t.Spans[i])
		}
	}
	t.Spans = kept
}

// toolSubtrees counts each tool span's side effects over what is under it
// and widens it over its observed descendants.
func (r *Recorder) toolSubtrees(t *telemetry.Trace, tools []*toolCall) {
	children := map[trace.SpanID][]int{}
	ours := map[trace.SpanID]int{}
	for i := range t.Spans {
		sp := &t.Spans[i]
		children[sp.ParentID] = append(children[sp.ParentID], i)
		if sp.Type() == telemetry.SpanToolCall {
			ours[sp.SpanID] = i
		}
	}
	for _, tl := range tools {
		i, ok := ours[tl.id]
		if !ok {
			continue
		}
		var files, conns, installs int64
		start, end := t.Spans[i].Start, t.Spans[i].End
		stack := slices.Clone(children[tl.id])
		for steps := 0; len(stack) > 0 && steps <= len(t.Spans); steps++ {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			sp := &t.Spans[j]
			if isClaim(sp) {
				continue // the agent's: fitted inside later, counted never
			}
			if sp.Start.Before(start) {
				start = sp.Start
			}
			if sp.End.After(end) {
				end = sp.End
			}
			agg := func() int64 { v, _ := sp.Attr(telemetry.AggregatedCount); return v.AsInt64() }
			switch sp.Type() {
			case telemetry.SpanFileWrite:
				files++
			case telemetry.SpanFileAggregate:
				files += agg()
			case telemetry.SpanNetworkCall:
				conns++
			case telemetry.SpanNetworkAggregate:
				conns += agg()
			case telemetry.SpanDependencyInstall:
				installs++
			}
			stack = append(stack, children[sp.SpanID]...)
		}
		for _, fs := range tl.files {
			if !fs.read {
				files++
			}
		}
		sp := &t.Spans[i]
		sp.Start, sp.End = start, end
		sp.SetAttr(telemetry.ToolFilesWritten.Int64(files))
		sp.SetAttr(telemetry.ToolConnections.Int64(conns))
		sp.SetAttr(telemetry.ToolInstalls.Int64(installs))
	}
}
