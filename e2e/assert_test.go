package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// isProcess tells process spans (bash_command and its classes) from the
// others: they carry the process id.
func isProcess(s *span) bool {
	_, ok := s.int(telemetry.ProcessPID)
	return ok
}

// isClaude recognises the claude process by its executable or its command
// line: the npm bin symlink execs the native binary (claude.exe), an older
// package ran it under node.
func isClaude(s *span) bool {
	if !isProcess(s) {
		return false
	}
	exe := filepath.Base(s.str(telemetry.ProcessExecutablePath))
	name := s.str(telemetry.ProcessExecutableName)
	line := s.str(telemetry.CommandLine)
	named := strings.HasPrefix(exe, "claude") || strings.HasPrefix(name, "claude") ||
		(strings.HasPrefix(name, "node") && strings.Contains(line, "claude"))
	// Metadata mode: the prompt is content, kept as its length and
	// digest only (recorder.PromptMarker), never as text.
	return named && strings.Contains(line, recorder.PromptMarker(prompt)) && !strings.Contains(line, prompt)
}

// checkTrace asserts the run record and returns the run id.
func checkTrace(t *testing.T, tr *traceTree, a account, ws string, modelPort int) string {
	t.Helper()
	roots := tr.roots()
	if len(roots) != 1 {
		t.Fatalf("trace has %d root spans, want 1: %v", len(roots), roots)
	}
	root := roots[0]
	if root.Type() != telemetry.SpanAgentRun {
		t.Errorf("root span is %q, want %q", root.Name, telemetry.SpanAgentRun)
	}
	if got := root.str(telemetry.GenAIAgentName); got != "claude" {
		t.Errorf("root %s = %q, want claude", telemetry.GenAIAgentName, got)
	}
	if code, ok := root.int(telemetry.ProcessExitCode); !ok || code != 0 {
		t.Errorf("root %s = %d (set %v), want 0", telemetry.ProcessExitCode, code, ok)
	}
	for _, s := range tr.Spans {
		if s.TraceID != root.TraceID {
			t.Errorf("span %s is in trace %s, the root in %s", s.Name, s.TraceID, root.TraceID)
		}
	}
	runID := root.str(telemetry.RunID)
	if runID == "" {
		t.Fatalf("root has no %s", telemetry.RunID)
	}

	// The claude process: the outermost one, as the user.
	claudes := tr.filter(isClaude)
	if len(claudes) == 0 {
		t.Fatalf("no process span for claude (executable claude*, command line with the prompt as its digest, not its text)")
	}
	sort.SliceStable(claudes, func(i, j int) bool { return tr.depth(claudes[i]) < tr.depth(claudes[j]) })
	claude := claudes[0]
	if uid, ok := claude.int(telemetry.ProcessUserID); !ok || uid != int64(a.UID) {
		t.Errorf("claude span %s = %d (set %v), want the test user's uid %d", telemetry.ProcessUserID, uid, ok, a.UID)
	}

	// The Bash tool's shell: Claude Code wraps the model's command in a
	// longer bash -c line, so match the command inside it.
	shells := tr.filter(func(s *span) bool {
		return isProcess(s) && strings.Contains(s.str(telemetry.CommandLine), scriptedCommand)
	})
	if len(shells) == 0 {
		t.Fatalf("no process span whose command line contains %q", scriptedCommand)
	}
	for _, s := range shells {
		if !tr.under(s, claude) {
			t.Errorf("shell span is not nested under claude: %s", tr.path(s))
		}
		if uid, ok := s.int(telemetry.ProcessUserID); !ok || uid != int64(a.UID) {
			t.Errorf("shell span %s = %d (set %v), want %d", telemetry.ProcessUserID, uid, ok, a.UID)
		}
	}

	// The write of note.txt, under (one of) those shells.
	note := filepath.Join(ws, "note.txt")
	writes := tr.filter(func(s *span) bool {
		return s.Type() == telemetry.SpanFileWrite && s.str(telemetry.FilePath) == note
	})
	if len(writes) == 0 {
		t.Errorf("no %s span for %s", telemetry.SpanFileWrite, note)
	}
	for _, w := range writes {
		nested := false
		for _, s := range shells {
			nested = nested || tr.under(w, s)
		}
		if !nested {
			t.Errorf("%s of note.txt is not under the shell command: %s", telemetry.SpanFileWrite, tr.path(w))
		}
	}

	// The connection to the model server, under claude: to the run's
	// model proxy (agentwatch.llm.proxy.endpoints) when it ran, since
	// only the supervisor's proxy then connects to the server itself.
	ports := map[int64]bool{int64(modelPort): true}
	if eps, ok := root.Attrs[string(telemetry.LLMProxyEndpoints)].([]any); ok {
		ports = map[int64]bool{}
		for _, ep := range eps {
			s, _ := ep.(string)
			if i := strings.LastIndexByte(s, ':'); i >= 0 {
				p, _ := strconv.ParseInt(s[i+1:], 10, 64)
				ports[p] = true
			}
		}
	}
	conns := tr.filter(func(s *span) bool {
		if s.Type() != telemetry.SpanNetworkCall {
			return false
		}
		port, _ := s.int(telemetry.ServerPort)
		addr := s.str(telemetry.NetworkPeerAddress)
		if addr == "" {
			addr = s.str(telemetry.ServerAddress)
		}
		return ports[port] && addr == "127.0.0.1"
	})
	if len(conns) == 0 {
		t.Errorf("no %s span to 127.0.0.1 on the model's or the proxy's port %v", telemetry.SpanNetworkCall, ports)
	}
	for _, c := range conns {
		if !tr.under(c, claude) {
			t.Errorf("%s to the model is not under claude: %s", telemetry.SpanNetworkCall, tr.path(c))
		}
	}
	return runID
}

// logTree prints the trace as an indented tree, so a failure can be
// diagnosed from the test log alone.
func logTree(t *testing.T, tr *traceTree) {
	t.Helper()
	children := map[string][]*span{}
	for _, s := range tr.Spans {
		if _, ok := tr.ByID[s.ParentID]; ok {
			children[s.ParentID] = append(children[s.ParentID], s)
		}
	}
	var b strings.Builder
	var walk func(s *span, depth int)
	walk = func(s *span, depth int) {
		fmt.Fprintf(&b, "%s%s", strings.Repeat("  ", depth), s.Name)
		for _, k := range []string{
			string(telemetry.ProcessPID), string(telemetry.ProcessUserID), string(telemetry.ProcessExecutablePath),
			string(telemetry.CommandLine), string(telemetry.ProcessExitCode), string(telemetry.FilePath),
			string(telemetry.FileOperation), string(telemetry.NetworkPeerAddress), string(telemetry.ServerAddress),
			string(telemetry.ServerPort), string(telemetry.GenAIAgentName), string(telemetry.TelemetryGaps),
		} {
			if v, ok := s.Attrs[k]; ok {
				vs := fmt.Sprint(v)
				if len(vs) > 160 {
					vs = vs[:160] + "…"
				}
				fmt.Fprintf(&b, " %s=%s", k, vs)
			}
		}
		b.WriteByte('\n')
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, s := range tr.Spans {
		if _, ok := tr.ByID[s.ParentID]; !ok {
			walk(s, 0)
		}
	}
	t.Logf("trace (%d spans):\n%s", len(tr.Spans), b.String())
}

// showDocument is the part of `agentwatch show RUN --json` compared here
// (report.JSONDocument's field names, decoded independently so a change of
// the CLI's output format fails this test).
type showDocument struct {
	Run struct {
		ID        string `json:"id"`
		TraceID   string `json:"trace_id"`
		Agent     string `json:"agent"`
		ExitCode  *int64 `json:"exit_code"`
		SpanCount int    `json:"span_count"`
	} `json:"run"`
	Spans []*showSpan `json:"spans"`
}

type showSpan struct {
	Name         string         `json:"name"`
	SpanID       string         `json:"span_id"`
	ParentSpanID string         `json:"parent_span_id"`
	Attributes   map[string]any `json:"attributes"`
	Children     []*showSpan    `json:"children"`
}

// checkShowAgrees asserts `agentwatch show RUN --json`, read from the
// store, describes the same run as the trace file: same run summary, the
// same spans with the same names and nesting, and the same values for the
// attributes this test asserts on.
func checkShowAgrees(t *testing.T, tr *traceTree, runID, out string) {
	t.Helper()
	var doc showDocument
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("show --json output is not JSON: %v\n%s", err, out)
	}
	root := tr.roots()[0]
	if doc.Run.ID != runID || normID(doc.Run.TraceID) != root.TraceID || doc.Run.Agent != "claude" ||
		doc.Run.ExitCode == nil || *doc.Run.ExitCode != 0 || doc.Run.SpanCount != len(tr.Spans) {
		t.Errorf("show --json run = %+v, want id %s, trace %s, agent claude, exit 0, %d spans",
			doc.Run, runID, root.TraceID, len(tr.Spans))
	}
	compared := []attribute.Key{
		telemetry.CommandLine, telemetry.ProcessUserID, telemetry.ProcessPID,
		telemetry.FilePath, telemetry.ServerPort, telemetry.NetworkPeerAddress,
	}
	seen := map[string]bool{}
	var walk func(s *showSpan, parent string)
	walk = func(s *showSpan, parent string) {
		id := normID(s.SpanID)
		seen[id] = true
		want, ok := tr.ByID[id]
		switch {
		case !ok:
			t.Errorf("show --json has span %s %s, not in the trace file", s.Name, s.SpanID)
		case want.Name != s.Name || want.ParentID != normID(s.ParentSpanID) || want.ParentID != parent:
			t.Errorf("show --json span %s: name %q parent %q (nested under %q), trace file: %q parent %q",
				id, s.Name, normID(s.ParentSpanID), parent, want.Name, want.ParentID)
		default:
			for _, k := range compared {
				fv, fok := want.Attrs[string(k)]
				sv, sok := s.Attributes[string(k)]
				if fok != sok || plain(fv) != plain(sv) {
					t.Errorf("span %s %s: %s = %v in show --json, %v in the trace file", s.Name, id, k, sv, fv)
				}
			}
		}
		for _, c := range s.Children {
			walk(c, id)
		}
	}
	for _, s := range doc.Spans {
		walk(s, normID(s.ParentSpanID))
	}
	for _, s := range tr.Spans {
		if !seen[s.SpanID] {
			t.Errorf("show --json lacks span %s %s of the trace file", s.Name, s.SpanID)
		}
	}
}

// plain renders an attribute value for comparison: JSON numbers decode as
// float64 and the file's integers as int64, and a pid printed as a float
// would read 4.194304e+06.
func plain(v any) string {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return fmt.Sprint(int64(f))
	}
	return fmt.Sprint(v)
}
