package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/telemetry"
)

// The trace file again, with the links and event names the shared reader
// (trace_test.go) leaves out.
type linkedFile struct {
	ResourceSpans []struct {
		ScopeSpans []struct {
			Spans []struct {
				SpanID string `json:"spanId"`
				Events []struct {
					Name string `json:"name"`
				} `json:"events"`
				Links []struct {
					TraceID string `json:"traceId"`
					SpanID  string `json:"spanId"`
				} `json:"links"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type spanExtras struct {
	links  []string // "traceid/spanid", hex
	events []string
}

func readExtras(t *testing.T, path string) map[string]spanExtras {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]spanExtras{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		var req linkedFile
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			t.Fatalf("trace file: %v", err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					var x spanExtras
					for _, l := range s.Links {
						x.links = append(x.links, normID(l.TraceID)+"/"+normID(l.SpanID))
					}
					for _, e := range s.Events {
						x.events = append(x.events, e.Name)
					}
					out[normID(s.SpanID)] = x
				}
			}
		}
	}
	return out
}

// TestClaudeTelemetryJoinsRun: the real Claude Code CLI under agentwatch,
// with nothing but what agentwatch sets turning its telemetry on: its
// spans land in the run's trace (same trace id, under agent_run), its
// claude_code.* log records are span events, the proxy's two model calls
// are not counted again from its api_request records, and the process
// span of the Bash tool's shell links to the agent's tool span.
func TestClaudeTelemetryJoinsRun(t *testing.T) {
	privtest.Require(t)
	a := ensureUser(t)
	claude := ensureClaude(t)
	aw := buildAgentwatch(t)
	srv := startModel(t)
	ws := newWorkspace(t, a)
	out := t.TempDir()
	traceFile := filepath.Join(out, "run.json")

	args := append([]string{"run", "--user", a.Name, "--store", filepath.Join(out, "store"), "--trace-file", traceFile, "--", "claude"}, claudeArgs(prompt)...)
	cmd := exec.Command(aw, args...)
	cmd.Dir = ws
	cmd.Env = claudeEnv(a, claude, srv.URL())
	res := run(t, cmd, claudeTimeout)
	t.Logf("agentwatch run stderr:\n%s", res.Stderr)
	if res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("agentwatch run: exit %d, %v", res.ExitCode, res.Err)
	}
	checkModelSaw(t, srv)
	checkNote(t, ws)

	tr, err := readTraceFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	extras := readExtras(t, traceFile)
	root := tr.roots()[0]

	agentSpans := tr.filter(func(s *span) bool { return s.str(telemetry.SpanSource) == telemetry.SourceAgent })
	if len(agentSpans) == 0 {
		t.Fatalf("no span from the agent's own telemetry in the trace; root: %v", root)
	}
	byName := map[string]*span{}
	for _, s := range agentSpans {
		t.Logf("agent span %s %s parent=%s service=%s", s.Name, s.SpanID, s.ParentID, s.str(telemetry.AgentServiceName))
		if s.TraceID != root.TraceID {
			t.Errorf("agent span %s in trace %s, the run's is %s", s.Name, s.TraceID, root.TraceID)
		}
		if !tr.under(s, root) {
			t.Errorf("agent span %s is not under agent_run", s.Name)
		}
		if len(extras[s.SpanID].events) > 0 {
			t.Logf("  events %v", extras[s.SpanID].events)
		}
		byName[s.Name] = s
	}
	toolExec := byName["claude_code.tool.execution"]
	if toolExec == nil {
		t.Fatalf("no claude_code.tool.execution span among %d agent spans", len(agentSpans))
	}

	// The join: the process span whose environment named the tool span.
	var linked []*span
	for _, s := range tr.filter(isProcess) {
		for _, l := range extras[s.SpanID].links {
			if l == root.TraceID+"/"+toolExec.SpanID {
				linked = append(linked, s)
			}
		}
	}
	if len(linked) != 1 {
		logTree(t, tr)
		t.Fatalf("%d process spans link to the Bash tool span %s, want 1 (the tool's shell)", len(linked), toolExec.SpanID)
	}
	sh := linked[0]
	// linked_by says whether the shell's TRACEPARENT was read from its
	// environment or (the shell ended before the read) the time fallback.
	t.Logf("linked process span (linked_by=%s): %s %v", sh.str(telemetry.AgentLinkedBy), sh.Name, sh.Attrs[string(telemetry.CommandLine)])
	if sh.str(telemetry.AgentSpanID) != toolExec.SpanID || !strings.Contains(sh.str(telemetry.CommandLine), scriptedCommand) {
		t.Errorf("linked span %s: agent span id %q, command %q; want %s running %q",
			sh.Name, sh.str(telemetry.AgentSpanID), sh.str(telemetry.CommandLine), toolExec.SpanID, scriptedCommand)
	}

	// Logs: events on spans, counted on the root; api_request matched
	// the proxy's calls, so every llm_call span is the proxy's.
	if n, _ := root.int(telemetry.AgentLogs); n == 0 {
		t.Errorf("root %s = %d: no log records arrived", telemetry.AgentLogs, n)
	}
	var apiEvents int
	for _, x := range extras {
		for _, e := range x.events {
			if e == event.ClaudeAPIRequest {
				apiEvents++
			}
		}
	}
	if apiEvents < 2 {
		t.Errorf("%d %s events in the trace, want one per model call (2)", apiEvents, event.ClaudeAPIRequest)
	}
	for _, s := range tr.filter(func(s *span) bool { return s.str(telemetry.SpanType) == telemetry.SpanLLMCall }) {
		if s.str(telemetry.SpanSource) == telemetry.SourceAgentTelemetry && s.str(telemetry.GenAIRequestModel) != "" {
			if u, _ := s.int(telemetry.GenAIUsageOutputTokens); u == int64(turn1Usage.OutputTokens) || u == int64(turn2Usage.OutputTokens) {
				t.Errorf("scripted call counted twice: an llm span from the agent's api_request %v besides the proxy's", s)
			}
		}
	}
}

// TestFullCaptureRedaction: a full-capture run with keys planted in the
// prompt, in the model's reply (which Claude prints) and in a tool's
// output (which goes back to the model in the next request): content is
// recorded, the keys are not — not in the trace file, not in the store's
// files, not in what an OTLP collector receives.
func TestFullCaptureRedaction(t *testing.T) {
	privtest.Require(t)
	a := ensureUser(t)
	claude := ensureClaude(t)
	aw := buildAgentwatch(t)

	const (
		anthropicKey = "sk-ant-api03-Pl4nt3dK3yZq8xV2mN4pL7rT1wY6uB3cD9eF0gH"
		awsKey       = "AKIAZ7QW3RT5YU8IOPLK"
		replyKey     = "sk-ant-api03-R3plyK3yHj6kL9mN2bV5cX8zQ1wE4rT7yU0iOp"
	)
	srv := fakemodel.New(
		fakemodel.BashTurn("echo deploy key "+awsKey+"; "+scriptedCommand, turn1Usage),
		fakemodel.TextTurn("Done. The key you gave me was "+replyKey+".", turn2Usage),
	)
	srv.Logf = t.Logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	// The OTLP collector: agentotel's receiver serves OTLP/HTTP and keeps
	// the raw request bytes.
	var mu sync.Mutex
	var exported [][]byte
	col, err := agentotel.Start(agentotel.Config{Emit: func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		exported = append(exported, e.(event.AgentTelemetry).Payload)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()

	ws := newWorkspace(t, a)
	out := t.TempDir()
	store := filepath.Join(out, "store")
	traceFile := filepath.Join(out, "run.json")
	userPrompt := prompt + ". Use the API key " + anthropicKey + " if you need one."
	args := append([]string{"run", "--user", a.Name, "--store", store, "--trace-file", traceFile,
		"--otlp-endpoint", col.HTTPEndpoint(), "--capture-full", "10m", "--", "claude"}, claudeArgs(userPrompt)...)
	cmd := exec.Command(aw, args...)
	cmd.Dir = ws
	cmd.Env = claudeEnv(a, claude, srv.URL())
	res := run(t, cmd, claudeTimeout)
	t.Logf("agentwatch run stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	if res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("agentwatch run: exit %d, %v", res.ExitCode, res.Err)
	}
	checkNote(t, ws)
	if !strings.Contains(res.Stderr, "agentwatch: FULL content capture until ") {
		t.Errorf("no full-capture notice on stderr")
	}
	if !strings.Contains(res.Stdout, replyKey) {
		t.Errorf("claude's output did not reach the user unchanged: %q", res.Stdout)
	}
	if err := col.Close(); err != nil {
		t.Fatal(err)
	}

	traceBytes, err := os.ReadFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	// Content is there (the test would pass vacuously otherwise).
	for _, want := range []string{"write hello to note.txt", "deploy key", `"full"`, "agentwatch.command.output", "The key you gave me was"} {
		if !bytes.Contains(traceBytes, []byte(want)) {
			t.Errorf("full capture did not record %q", want)
		}
	}
	sinks := map[string][]byte{"trace file": traceBytes}
	filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			sinks["store "+filepath.Base(p)] = b
		}
		return nil
	})
	mu.Lock()
	if len(exported) == 0 {
		t.Errorf("the OTLP collector received nothing")
	}
	sinks["OTLP collector"] = bytes.Join(exported, nil)
	mu.Unlock()
	for where, b := range sinks {
		for _, key := range []string{anthropicKey, awsKey, replyKey, "sk-ant-test-"} {
			if bytes.Contains(b, []byte(key)) {
				t.Errorf("%s holds %s", where, key)
			}
		}
	}
}
