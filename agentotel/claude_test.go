package agentotel

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/recorder"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
)

// The helpers below are the few bits of e2e/harness_test.go this test
// needs (the pinned CLI, a clean environment), copied rather than
// imported: e2e is a test-only package. The test user is privtest's.

const claudeUser = "agentwatch-e2e"

type account struct {
	Name     string
	UID, GID uint32
	Home     string
}

func ensureUser(t *testing.T) account {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real Claude Code CLI: skipped with -short")
	}
	u := privtest.User(t, claudeUser, "")
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
}

// ensureClaude installs the pinned CLI (scripts/install-claude.sh is
// idempotent) and returns its path. An unreachable npm registry skips,
// except in CI.
func ensureClaude(t *testing.T) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "install-claude.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if strings.Contains(msg, "ENOTFOUND") || strings.Contains(msg, "EAI_AGAIN") || strings.Contains(msg, "ECONNREFUSED") {
			if privtest.Strict() {
				t.Fatalf("cannot install claude (CI forbids skipping): %s", msg)
			}
			t.Skip("npm registry unreachable")
		}
		t.Fatalf("install-claude.sh: %v: %s", err, msg)
	}
	return strings.TrimSpace(stdout.String())
}

// baseEnv is the whole environment claude gets, as in e2e: nothing from
// the test process, the model pointed at the fake server, background
// traffic to Anthropic off. Unlike e2e it does not set DISABLE_TELEMETRY:
// that switch is about Anthropic's own product telemetry, and leaving it
// out shows the OTel export needs nothing but Env.
func baseEnv(a account, claude, baseURL string) []string {
	key := make([]byte, 12)
	rand.Read(key)
	path := filepath.Dir(claude) + ":/usr/local/bin:/usr/bin:/bin"
	if node, err := exec.LookPath("node"); err == nil {
		path = filepath.Dir(node) + ":" + path
	}
	return []string{
		"HOME=" + a.Home, "USER=" + a.Name, "LOGNAME=" + a.Name, "SHELL=/bin/bash",
		"PATH=" + path, "TERM=dumb", "LANG=C.UTF-8",
		"ANTHROPIC_BASE_URL=" + baseURL,
		"ANTHROPIC_API_KEY=sk-ant-test-" + hex.EncodeToString(key),
		"DISABLE_AUTOUPDATER=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_ERROR_REPORTING=1",
	}
}

func newWorkspace(t *testing.T, a account) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentotel-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, int(a.UID), int(a.GID)); err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	claudeTurn1 = fakemodel.Usage{InputTokens: 1234, CacheReadInputTokens: 100, CacheCreationInputTokens: 50, OutputTokens: 56}
	claudeTurn2 = fakemodel.Usage{InputTokens: 1500, CacheReadInputTokens: 1200, CacheCreationInputTokens: 70, OutputTokens: 21}
)

// TestClaudeCodeExportsToReceiver runs the real Claude Code CLI, as an
// unprivileged user, against the scripted model with only Env() added for
// telemetry, and checks its own telemetry reaches the receiver: the
// claude_code.api_request events carry exactly the usage the model sent,
// and its spans (traces beta) join the run's trace and re-parent cleanly.
func TestClaudeCodeExportsToReceiver(t *testing.T) {
	privtest.Require(t)
	a := ensureUser(t)
	claude := ensureClaude(t)

	srv := fakemodel.New(
		fakemodel.BashTurn("printf hello > note.txt; printenv TRACEPARENT > traceparent.txt", claudeTurn1),
		fakemodel.TextTurn("I wrote hello to note.txt.", claudeTurn2),
	)
	srv.Logf = t.Logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	col := &collector{}
	r, err := Start(Config{Emit: col.emit})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	runTrace := trace.TraceID{0x4a, 0x57, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	runRoot := trace.SpanID{0x52, 0x4f, 0x4f, 0x54, 1, 2, 3, 4}
	ws := newWorkspace(t, a)
	cmd := exec.Command(claude, "-p", "write hello to note.txt", "--dangerously-skip-permissions")
	cmd.Dir = ws
	cmd.Env = append(baseEnv(a, claude, srv.URL()), r.Env(TraceParent(runTrace, runRoot))...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.UID, Gid: a.GID}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := runWithTimeout(cmd, 90*time.Second); err != nil {
		t.Fatalf("claude: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	took := time.Since(start)
	// Close drains: whatever the CLI flushed at exit is in col now.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("claude took %v; receiver stats %+v", took, r.Stats())
	if b, err := os.ReadFile(filepath.Join(ws, "note.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("note.txt = %q, %v: the agent did not do its task; stderr:\n%s", b, err, stderr.String())
	}

	var logs []event.AgentLogRecord
	for _, p := range col.payloads(SignalLogs) {
		var req collogspb.ExportLogsServiceRequest
		if err := proto.Unmarshal(p, &req); err != nil {
			t.Fatalf("logs payload: %v", err)
		}
		logs = append(logs, LogsToEvents(&req)...)
	}
	if len(logs) == 0 {
		t.Fatalf("no log records arrived (stats %+v)", r.Stats())
	}
	var apiReqs []event.AgentLogRecord
	for _, l := range logs {
		t.Logf("log %s model=%s in=%d out=%d cr=%d cc=%d cost=%v dur=%v tool=%s ok=%v session=%s prompt=%s trace=%s span=%s attrs=%v content-keys=%d",
			l.Name, l.Model, l.InputTokens, l.OutputTokens, l.CacheReadTokens, l.CacheCreationTokens, l.CostUSD, l.Duration,
			l.ToolName, l.Success, l.SessionID, l.PromptID, l.TraceID, l.SpanID, l.Attrs, len(l.Content))
		if l.Name == event.ClaudeAPIRequest {
			apiReqs = append(apiReqs, l)
		}
	}
	for _, want := range []fakemodel.Usage{claudeTurn1, claudeTurn2} {
		if !hasUsage(apiReqs, want) {
			t.Errorf("no %s event with the usage the model sent %+v", event.ClaudeAPIRequest, want)
		}
	}
	for _, l := range apiReqs {
		if l.Model == "" || l.SessionID == "" || l.Time.IsZero() || !l.CostKnown {
			t.Errorf("%s lacks model, session, time or cost: %+v", event.ClaudeAPIRequest, l)
		}
		if l.Time.Before(start.Add(-time.Second)) || l.Time.After(start.Add(took+time.Second)) {
			t.Errorf("%s time %v outside the run [%v, +%v]", event.ClaudeAPIRequest, l.Time, start, took)
		}
	}
	// Each event matches the proxy's form of exactly one scripted turn
	// (inclusive input tokens), so the recorder would not count it twice.
	for _, l := range apiReqs {
		var n int
		for _, u := range []fakemodel.Usage{claudeTurn1, claudeTurn2} {
			call := event.LLMCall{
				End: l.Time, RequestModel: l.Model, UsageKnown: true,
				InputTokens:     int64(u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens),
				OutputTokens:    int64(u.OutputTokens),
				CacheReadTokens: int64(u.CacheReadInputTokens), CacheCreationTokens: int64(u.CacheCreationInputTokens),
			}
			if l.Matches(call) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s event %+v matches %d scripted calls, want 1", event.ClaudeAPIRequest, l, n)
		}
	}
	if !hasEvent(logs, event.ClaudeToolResult, "Bash") {
		t.Errorf("no %s event for the Bash tool", event.ClaudeToolResult)
	}
	for _, l := range logs {
		if len(l.Content) > 0 {
			t.Errorf("%s carried content attributes %v though Env asks for none", l.Name, keys(l.Content))
		}
	}

	// Traces: the beta flag makes the CLI export spans; they must be in
	// the run's trace (TRACEPARENT honoured) and hang together.
	traces := col.payloads(SignalTraces)
	t.Logf("%d trace exports", len(traces))
	if len(traces) == 0 {
		t.Fatalf("no spans arrived with CLAUDE_CODE_ENHANCED_TELEMETRY_BETA=1")
	}
	merged, err := recorder.MergeTraces(traces...)
	if err != nil {
		t.Fatal(err)
	}
	var foreign int
	for _, rs := range merged.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				t.Logf("span %s trace=%x span=%x parent=%x", sp.Name, sp.TraceId, sp.SpanId, sp.ParentSpanId)
				if trace.TraceID(sp.TraceId) != runTrace {
					foreign++
				}
			}
		}
	}
	if foreign > 0 {
		t.Errorf("%d spans are not in the run's trace: TRACEPARENT was not honoured", foreign)
	}
	spans, orphans := recorder.Reparent(merged, runTrace, runRoot)
	if len(orphans) > 0 {
		t.Errorf("orphans %v: a parent span never arrived", orphans)
	}
	// The Bash tool's shell got a TRACEPARENT naming the received
	// claude_code.tool.execution span: the hook that links the
	// kernel-observed process span to the agent's own tool span.
	tp, err := os.ReadFile(filepath.Join(ws, "traceparent.txt"))
	if err != nil {
		t.Fatalf("the Bash tool's TRACEPARENT: %v", err)
	}
	t.Logf("Bash tool TRACEPARENT=%s", strings.TrimSpace(string(tp)))
	parts := strings.Split(strings.TrimSpace(string(tp)), "-")
	if len(parts) != 4 || parts[1] != runTrace.String() {
		t.Fatalf("Bash tool TRACEPARENT %q is not in the run's trace", tp)
	}
	var toolSpan string
	for _, sp := range spans {
		if hex.EncodeToString(sp.SpanId) == parts[2] {
			toolSpan = sp.Name
		}
	}
	if toolSpan != "claude_code.tool.execution" {
		t.Errorf("Bash tool TRACEPARENT names span %s (%q), want a received claude_code.tool.execution", parts[2], toolSpan)
	}

	var underRoot int
	for _, sp := range spans {
		if trace.SpanID(sp.ParentSpanId) == runRoot {
			underRoot++
		}
	}
	if underRoot == 0 {
		t.Errorf("no received span sits directly under the run's root span")
	}
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return errors.New("timed out")
	}
}

func hasUsage(recs []event.AgentLogRecord, u fakemodel.Usage) bool {
	for _, l := range recs {
		if l.InputTokens == int64(u.InputTokens) && l.OutputTokens == int64(u.OutputTokens) &&
			l.CacheReadTokens == int64(u.CacheReadInputTokens) && l.CacheCreationTokens == int64(u.CacheCreationInputTokens) {
			return true
		}
	}
	return false
}

func hasEvent(recs []event.AgentLogRecord, name, tool string) bool {
	for _, l := range recs {
		if l.Name == name && l.ToolName == tool {
			return true
		}
	}
	return false
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
