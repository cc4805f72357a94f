package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/telemetry"
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
	line := s.str(telemetry.ProcessCommandLine)
	named := strings.HasPrefix(exe, "claude") || strings.HasPrefix(name, "claude") ||
		(strings.HasPrefix(name, "node") && strings.Contains(line, "claude"))
	return named && strings.Contains(line, prompt)
}

// checkTrace asserts the run record and returns the run id.
func checkTrace(t *testing.T, tr *traceTree, a account, ws string, modelPort int) string {
	t.Helper()
	roots := tr.roots()
	if len(roots) != 1 {
		t.Fatalf("trace has %d root spans, want 1: %v", len(roots), roots)
	}
	root := roots[0]
	if root.Name != telemetry.SpanAgentRun {
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
		t.Fatalf("no process span for claude (executable claude*, command line with the prompt)")
	}
	sort.SliceStable(claudes, func(i, j int) bool { return tr.depth(claudes[i]) < tr.depth(claudes[j]) })
	claude := claudes[0]
	if uid, ok := claude.int(telemetry.ProcessUserID); !ok || uid != int64(a.UID) {
		t.Errorf("claude span %s = %d (set %v), want the test user's uid %d", telemetry.ProcessUserID, uid, ok, a.UID)
	}

	// The Bash tool's shell: Claude Code wraps the model's command in a
	// longer bash -c line, so match the command inside it.
	shells := tr.filter(func(s *span) bool {
		return isProcess(s) && strings.Contains(s.str(telemetry.ProcessCommandLine), scriptedCommand)
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
		return s.Name == telemetry.SpanFileWrite && s.str(telemetry.FilePath) == note
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

	// The connection to the model server, under claude.
	conns := tr.filter(func(s *span) bool {
		if s.Name != telemetry.SpanNetworkCall {
			return false
		}
		port, _ := s.int(telemetry.ServerPort)
		addr := s.str(telemetry.NetworkPeerAddress)
		if addr == "" {
			addr = s.str(telemetry.ServerAddress)
		}
		return port == int64(modelPort) && addr == "127.0.0.1"
	})
	if len(conns) == 0 {
		t.Errorf("no %s span to 127.0.0.1:%d", telemetry.SpanNetworkCall, modelPort)
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
			string(telemetry.ProcessCommandLine), string(telemetry.ProcessExitCode), string(telemetry.FilePath),
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

// checkShowAgrees asserts `agentwatch show RUN --json` describes the same
// run as the trace file: every span id of the file appears in it. The
// show format is the CLI's own; ids are the one thing both must share.
func checkShowAgrees(t *testing.T, tr *traceTree, out string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("show --json output is not JSON: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			seen[normID(v)] = true
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	var missing []string
	for _, s := range tr.Spans {
		if !seen[s.SpanID] {
			missing = append(missing, s.Name+" "+s.SpanID)
		}
	}
	if len(missing) > 0 {
		t.Errorf("show --json lacks %d of the trace file's %d spans: %v", len(missing), len(tr.Spans), missing)
	}
}
