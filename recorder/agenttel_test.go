package recorder

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

var agTrace = trace.TraceID{0xa9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

func agSID(b byte) trace.SpanID { return trace.SpanID{0xc1, 0, 0, 0, 0, 0, 0, b} }

func kvStr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func kvInt(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func otlpSpan(id, parent trace.SpanID, tid trace.TraceID, name string, from, to int, attrs ...*commonpb.KeyValue) *tracepb.Span {
	sp := &tracepb.Span{
		TraceId: tid[:], SpanId: id[:], Name: name,
		StartTimeUnixNano: uint64(at(from).UnixNano()), EndTimeUnixNano: uint64(at(to).UnixNano()),
		Kind: tracepb.Span_SPAN_KIND_INTERNAL, Attributes: attrs,
	}
	if parent.IsValid() {
		sp.ParentSpanId = parent[:]
	}
	return sp
}

func tracesEvent(n int, spans ...*tracepb.Span) event.AgentTelemetry {
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kvStr("service.name", "claude-code")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
	b, _ := proto.Marshal(req)
	return event.AgentTelemetry{Header: hdr(n, 0), Signal: event.SignalTraces, Payload: b}
}

func logsEvent(n int, recs ...*logspb.LogRecord) event.AgentTelemetry {
	req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{LogRecords: recs}}}}}
	b, _ := proto.Marshal(req)
	// As the receiver emits them: the request, and its records decoded.
	return event.AgentTelemetry{Header: hdr(n, 0), Signal: event.SignalLogs, Payload: b, Logs: agentotel.LogsToEvents(req)}
}

// apiRequest is a claude_code.api_request record as the pinned CLI sends it
// (token counts as strings, input without cached tokens).
func apiRequest(n int, model string, in, out, cacheRead int64, span trace.SpanID) *logspb.LogRecord {
	lr := &logspb.LogRecord{
		TimeUnixNano: uint64(at(n).UnixNano()),
		Body:         &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: event.ClaudeAPIRequest}},
		Attributes: []*commonpb.KeyValue{
			kvStr("event.name", "api_request"), kvStr("session.id", "sess-1"), kvStr("model", model),
			kvStr("input_tokens", itoa(in)), kvStr("output_tokens", itoa(out)),
			kvStr("cache_read_tokens", itoa(cacheRead)), kvStr("cache_creation_tokens", "0"),
			kvStr("cost_usd", "0.0125"), kvStr("duration_ms", "40"),
		},
	}
	if span.IsValid() {
		lr.SpanId = span[:]
		lr.TraceId = agTrace[:]
	}
	return lr
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func agInfo() RunInfo {
	info := runInfo()
	info.TraceID = agTrace
	return info
}

func agSpanByID(tr *telemetry.Trace, id trace.SpanID) *telemetry.Span {
	for i := range tr.Spans {
		if tr.Spans[i].SpanID == id {
			return &tr.Spans[i]
		}
	}
	return nil
}

func agSpanNamed(tr *telemetry.Trace, name string) *telemetry.Span {
	for i := range tr.Spans {
		if tr.Spans[i].Name == name || tr.Spans[i].Type() == name { // "chat <model>", or a type
			return &tr.Spans[i]
		}
	}
	return nil
}

func agAttr(s *telemetry.Span, k attribute.Key) string {
	if s == nil {
		return "<no span>"
	}
	v, ok := s.Attr(k)
	if !ok {
		return ""
	}
	return v.Emit()
}

func agAlerts(s *telemetry.Span, rule string) int {
	n := 0
	for _, e := range s.Events {
		if e.Name != telemetry.EventAlert {
			continue
		}
		for _, a := range e.Attrs {
			if a.Key == telemetry.AlertRule && a.Value.AsString() == rule {
				n++
			}
		}
	}
	return n
}

// TestAgentSpansReparented: received spans join the run's trace under
// agent_run or their own parents, keep what the agent said, are marked as
// the agent's, and a span whose parent never arrived raises
// missing_nested_spans on itself.
func TestAgentSpansReparented(t *testing.T) {
	rec := New(agInfo())
	root := rec.RootSpanID()
	interaction, tool, exec1, orphan, foreign := agSID(1), agSID(2), agSID(3), agSID(4), agSID(5)
	otherTrace := trace.TraceID{0xee, 1}

	failed := otlpSpan(exec1, tool, agTrace, "claude_code.tool.execution", 20, 30, kvStr("tool_name", "Bash"))
	failed.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "exit 1"}
	failed.Events = []*tracepb.Span_Event{{Name: "retry", TimeUnixNano: uint64(at(25).UnixNano())}}
	llmReq := otlpSpan(agSID(6), interaction, agTrace, "claude_code.llm_request", 5, 9, kvStr("gen_ai.request.model", "claude-sonnet-4-5"))
	llmReq.Kind = tracepb.Span_SPAN_KIND_CLIENT

	// Children arrive before their parents (SDKs export a span when it
	// ends); the parent of the interaction is the run's root.
	rec.Add(tracesEvent(31, failed, llmReq))
	rec.Add(tracesEvent(40,
		otlpSpan(tool, interaction, agTrace, "claude_code.tool", 15, 35, kvStr("prompt", "secret plan")),
		otlpSpan(interaction, root, agTrace, "claude_code.interaction", 1, 50),
		otlpSpan(orphan, agSID(99), agTrace, "claude_code.tool", 36, 38),
		otlpSpan(foreign, trace.SpanID{}, otherTrace, "some.tool.root", 2, 3),
	))
	tr := rec.Finish(End{Time: at(60)})

	for _, c := range []struct {
		id     trace.SpanID
		parent trace.SpanID
	}{{interaction, root}, {tool, interaction}, {exec1, tool}, {orphan, root}, {foreign, root}, {agSID(6), interaction}} {
		s := agSpanByID(tr, c.id)
		if s == nil {
			t.Fatalf("span %s missing from the trace", c.id)
		}
		if s.ParentID != c.parent || s.TraceID != agTrace {
			t.Errorf("%s %s: parent %s trace %s, want parent %s trace %s", s.Name, c.id, s.ParentID, s.TraceID, c.parent, agTrace)
		}
		if got := agAttr(s, telemetry.SpanSource); got != telemetry.SourceAgent {
			t.Errorf("%s: span source %q", s.Name, got)
		}
		if got := agAttr(s, telemetry.AgentServiceName); got != "claude-code" {
			t.Errorf("%s: agent service %q", s.Name, got)
		}
	}
	ex := agSpanByID(tr, exec1)
	if ex.Status != codes.Error || ex.StatusMessage != "exit 1" || len(ex.Events) != 1 || agAttr(ex, "tool_name") != "Bash" {
		t.Errorf("tool.execution lost what the agent said: status %v %q events %v attrs %v", ex.Status, ex.StatusMessage, ex.Events, ex.Attrs)
	}
	if got := agAttr(ex, telemetry.OpenInferenceKind); got != telemetry.OITool {
		t.Errorf("tool.execution openinference kind %q", got)
	}
	lr := agSpanByID(tr, agSID(6))
	if lr.Kind != trace.SpanKindClient {
		t.Errorf("llm_request kind %v, want client", lr.Kind)
	}
	if _, ok := lr.Attr(telemetry.GenAIRequestModel); ok {
		t.Errorf("the agent's llm_request keeps gen_ai.request.model: Langfuse would count the call twice")
	}
	if got := agAttr(agSpanByID(tr, tool), "prompt"); got != "" {
		t.Errorf("metadata capture kept the agent's prompt attribute %q", got)
	}
	if got := agAttr(agSpanByID(tr, foreign), telemetry.AgentTraceID); got != otherTrace.String() {
		t.Errorf("moved span's original trace id %q", got)
	}
	if n := agAlerts(agSpanByID(tr, orphan), telemetry.AlertMissingSpans); n != 1 {
		t.Errorf("orphan has %d missing_nested_spans alerts, want 1", n)
	}
	for _, id := range []trace.SpanID{interaction, tool, exec1, foreign} {
		if n := agAlerts(agSpanByID(tr, id), telemetry.AlertMissingSpans); n != 0 {
			t.Errorf("span %s has a missing_nested_spans alert; its parent arrived (or it has none)", id)
		}
	}
	if got := agAttr(&tr.Spans[0], telemetry.AgentSpans); got != "6" {
		t.Errorf("root agentwatch.agent.spans = %s, want 6", got)
	}
	for i := 2; i < len(tr.Spans); i++ {
		if tr.Spans[i].Start.Before(tr.Spans[i-1].Start) {
			t.Fatalf("spans out of start order at %d: %s before %s", i, tr.Spans[i-1].Name, tr.Spans[i].Name)
		}
	}
}

// TestAgentLogs: records land as span events on the span they name, else
// on agent_run; an api_request the proxy also saw makes no span, one it
// did not see becomes a chat span of its own; metrics are only counted.
func TestAgentLogs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		proxied   bool
		wantSpans int
	}{
		{"proxy saw the call: no second span", true, 1},
		{"proxy did not see it: the agent's record becomes the span", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := New(agInfo())
			root := rec.RootSpanID()
			tool := agSID(2)
			rec.Add(exec(1, 100, 1, "/usr/bin/claude", ws, "claude", "-p", "x"))
			rec.Add(tracesEvent(5, otlpSpan(tool, root, agTrace, "claude_code.tool", 2, 4)))
			if tc.proxied {
				rec.Add(event.LLMCall{
					Header: hdr(9, 100), Start: at(8), End: at(9), Provider: "anthropic", API: "messages",
					Method: "POST", Path: "/v1/messages", Status: 200, RequestModel: "claude-sonnet-4-5",
					InputTokens: 1334, OutputTokens: 56, CacheReadTokens: 100, UsageKnown: true,
				})
			}
			toolResult := &logspb.LogRecord{
				TimeUnixNano: uint64(at(4).UnixNano()), SpanId: tool[:], TraceId: agTrace[:],
				Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: event.ClaudeToolResult}},
				Attributes: []*commonpb.KeyValue{kvStr("tool_name", "Bash"), kvStr("success", "true"),
					kvStr("tool_parameters", `{"command":"echo `+planted[0]+`"}`)},
			}
			rec.Add(logsEvent(10, apiRequest(10, "claude-sonnet-4-5", 1234, 56, 100, trace.SpanID{}), toolResult))
			mreq := &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{
				{Name: "claude_code.token.usage", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{DataPoints: []*metricspb.NumberDataPoint{{}, {}, {}}}}},
			}}}}}}
			mb, _ := proto.Marshal(mreq)
			rec.Add(event.AgentTelemetry{Header: hdr(11, 0), Signal: event.SignalMetrics, Payload: mb})
			tr := rec.Finish(End{Time: at(20)})

			var chats []*telemetry.Span
			for i := range tr.Spans {
				if agAttr(&tr.Spans[i], telemetry.SpanType) == telemetry.SpanLLMCall {
					chats = append(chats, &tr.Spans[i])
				}
			}
			if len(chats) != tc.wantSpans {
				t.Fatalf("%d llm_call spans, want %d", len(chats), tc.wantSpans)
			}
			src := agAttr(chats[0], telemetry.SpanSource)
			if tc.proxied && src == telemetry.SourceAgentTelemetry || !tc.proxied && src != telemetry.SourceAgentTelemetry {
				t.Errorf("llm span source %q (proxied=%v)", src, tc.proxied)
			}
			if !tc.proxied {
				c := chats[0]
				if c.Name != "chat claude-sonnet-4-5" || c.Kind != trace.SpanKindClient ||
					agAttr(c, telemetry.GenAIUsageInputTokens) != "1334" || agAttr(c, telemetry.GenAIUsageOutputTokens) != "56" ||
					agAttr(c, telemetry.GenAIUsageCacheReadTokens) != "100" || agAttr(c, telemetry.CostUSD) != "0.0125" {
					t.Errorf("agent-reported llm span: %s %v %v", c.Name, c.Kind, c.Attrs)
				}
				// The call the agent reported started before the process
				// span it hangs under: moved inside it, with the times it
				// claimed kept.
				claimed := func(k attribute.Key) string { return agAttr(c, k) }
				if claimed(telemetry.ClaimedStart) != at(10).Add(-40*time.Millisecond).UTC().Format(time.RFC3339Nano) ||
					claimed(telemetry.ClaimedEnd) != at(10).UTC().Format(time.RFC3339Nano) {
					t.Errorf("agent-reported llm span times %v..%v, claimed %s..%s", c.Start, c.End, claimed(telemetry.ClaimedStart), claimed(telemetry.ClaimedEnd))
				}
				if p := agSpanByID(tr, c.ParentID); p == nil || c.Start.Before(p.Start) || c.End.After(p.End) {
					t.Errorf("agent-reported llm span %v..%v outside its parent", c.Start, c.End)
				}
				if got := agAttr(&tr.Spans[0], telemetry.LLMCalls); got != "1" {
					t.Errorf("root llm.calls = %q, want 1 (the agent-reported call counts once)", got)
				}
			}
			root0 := &tr.Spans[0]
			var onRoot, onTool bool
			for _, e := range root0.Events {
				onRoot = onRoot || e.Name == event.ClaudeAPIRequest
			}
			ts := agSpanByID(tr, tool)
			for _, e := range ts.Events {
				if e.Name == event.ClaudeToolResult {
					onTool = true
					for _, a := range e.Attrs {
						if a.Key == "tool_parameters" {
							t.Errorf("metadata capture kept tool_parameters on the event: %s", a.Value.Emit())
						}
					}
				}
			}
			if !onRoot || !onTool {
				t.Errorf("api_request on root: %v, tool_result on its span: %v", onRoot, onTool)
			}
			if got := agAttr(root0, telemetry.AgentMetrics); got != "3" {
				t.Errorf("root agentwatch.agent.metrics = %q, want 3", got)
			}
			if got := agAttr(root0, telemetry.AgentLogs); got != "2" {
				t.Errorf("root agentwatch.agent.logs = %q, want 2", got)
			}
		})
	}
}

// TestToolCallLinks: the process span of a command the agent ran links to
// the agent's tool span named by the TRACEPARENT in its environment; its
// children (same TRACEPARENT inherited) and the agent itself (the run's
// own TRACEPARENT) do not; CODEX_TOOL_CALL_ID lands as an attribute.
func TestToolCallLinks(t *testing.T) {
	rec := New(agInfo())
	root := rec.RootSpanID()
	toolExec := agSID(3)
	agentTP := agentotel.TraceParent(agTrace, root)
	toolTP := agentotel.TraceParent(agTrace, toolExec)

	claude := exec(1, 100, 1, "/usr/bin/claude", ws, "claude", "-p", "x")
	claude.TraceParent = agentTP
	shell := exec(11, 101, 100, "/bin/bash", ws, "bash", "-c", "go test ./...")
	shell.TraceParent = toolTP
	goTest := exec(12, 102, 101, "/usr/bin/go", ws, "go", "test", "./...")
	goTest.TraceParent = toolTP
	codex := exec(13, 103, 100, "/bin/sh", ws, "sh", "-c", "ls")
	codex.ToolCallID = "call_abc123"
	rec.Add(tracesEvent(2, otlpSpan(toolExec, root, agTrace, "claude_code.tool.execution", 10, 20)))
	for _, e := range []event.Event{claude, fork(10, 101, 100), shell, fork(12, 102, 101), goTest, fork(13, 103, 100), codex} {
		rec.Add(e)
	}
	tr := rec.Finish(End{Time: at(30)})

	byPID := map[int64]*telemetry.Span{}
	for i := range tr.Spans {
		if v, ok := tr.Spans[i].Attr(telemetry.ProcessPID); ok {
			byPID[v.AsInt64()] = &tr.Spans[i]
		}
	}
	sh := byPID[101]
	if len(sh.Links) != 1 || sh.Links[0].SpanID != toolExec || sh.Links[0].TraceID != agTrace {
		t.Fatalf("bash span links %+v, want one to the agent's tool span %s", sh.Links, toolExec)
	}
	if got := agAttr(sh, telemetry.AgentSpanID); got != toolExec.String() || agAttr(sh, telemetry.AgentLinkedBy) != "environ" {
		t.Errorf("bash agentwatch.agent.span_id = %q, linked_by %q", got, agAttr(sh, telemetry.AgentLinkedBy))
	}
	for _, pid := range []int64{100, 102} {
		if s := byPID[pid]; len(s.Links) != 0 || agAttr(s, telemetry.AgentSpanID) != "" {
			t.Errorf("pid %d (%s) links %+v: only the tool's topmost process links", pid, s.Name, s.Links)
		}
	}
	if got := agAttr(byPID[103], telemetry.AgentToolCallID); got != "call_abc123" {
		t.Errorf("codex tool call id %q", got)
	}
	if agSpanByID(tr, toolExec) == nil {
		t.Errorf("the linked tool span is not in the trace")
	}
}

// TestFullCapture: the tier and expiry on the root; the root process's
// output (redacted, bounded) on its span; the agent's content kept only
// in full mode and redacted; dropped env values, API keys, AWS keys,
// bearer tokens, private keys and URL passwords nowhere.
func TestFullCapture(t *testing.T) {
	dropped := "dropped-env-value-7781"
	pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQAAACDx\n-----END OPENSSH PRIVATE KEY-----"
	secrets := []string{planted[0], "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", dropped,
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "hunter2secretpw"}
	output := "running\nexport AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nkey " + planted[0] + "\n" + dropped +
		"\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\n" + pem +
		"\ngit clone https://bob:hunter2secretpw@git.example/x\nAKIAIOSFODNN7EXAMPLE\n" + strings.Repeat("x", 100)

	for _, full := range []bool{true, false} {
		info := agInfo()
		info.RedactValues = []string{dropped}
		until := at(0).Add(30 * time.Minute)
		if full {
			info.Capture = Capture{Full: true, Until: until, OutputBytes: 1 << 10}
		}
		rec := New(info)
		rec.Add(exec(1, 100, 1, "/usr/bin/claude", ws, "claude", "-p", "x"))
		rec.Add(tracesEvent(3, otlpSpan(agSID(7), rec.RootSpanID(), agTrace, "claude_code.interaction", 1, 3,
			kvStr("user_prompt", "use key "+planted[0]+" and "+dropped))))
		tr := rec.Finish(End{Time: at(40), Output: []byte(output), OutputTotal: int64(len(output))})

		rootSpan := &tr.Spans[0]
		claude := agSpanNamed(tr, "bash_command")
		gotOut := agAttr(claude, telemetry.CommandOutput)
		prompt := agAttr(agSpanByID(tr, agSID(7)), "user_prompt")
		if !full {
			if agAttr(rootSpan, telemetry.CaptureContent) != "metadata" || gotOut != "" || prompt != "" ||
				agAttr(rootSpan, telemetry.CaptureExpires) != "" {
				t.Errorf("metadata capture: content %q expires %q output %q prompt %q",
					agAttr(rootSpan, telemetry.CaptureContent), agAttr(rootSpan, telemetry.CaptureExpires), gotOut, prompt)
			}
			continue
		}
		if agAttr(rootSpan, telemetry.CaptureContent) != "full" || agAttr(rootSpan, telemetry.CaptureExpires) != until.UTC().Format(time.RFC3339) {
			t.Errorf("root capture %q expires %q", agAttr(rootSpan, telemetry.CaptureContent), agAttr(rootSpan, telemetry.CaptureExpires))
		}
		if !strings.Contains(gotOut, "running") || !strings.Contains(gotOut, "git.example") {
			t.Errorf("output not kept on the root process span: %q", gotOut)
		}
		if !strings.Contains(prompt, "use key") {
			t.Errorf("full capture dropped the agent's prompt attribute: %q", prompt)
		}
		if agAttr(claude, telemetry.CommandOutputBytes) != itoa(int64(len(output))) {
			t.Errorf("output bytes %s, want %d", agAttr(claude, telemetry.CommandOutputBytes), len(output))
		}
		for _, s := range secrets {
			if strings.Contains(gotOut, s) || strings.Contains(prompt, s) {
				t.Errorf("secret %q survived full capture:\noutput %q\nprompt %q", s, gotOut, prompt)
			}
		}
	}
}

func TestContentRedactor(t *testing.T) {
	redact := ContentRedactor([]string{"value-of-DROPPED-var-1234"})
	for _, tc := range []struct{ in, gone, kept string }{
		{`{"model":"claude","max_tokens":1024,"api_key":"sk-proj-abcdefghijklmnopqrstuvwx"}`, "sk-proj-abcdefghijklmnopqrstuvwx", `"max_tokens":1024`},
		{`x-api-key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0`, "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "x-api-key"},
		{`curl -H "Authorization: Bearer abcdef0123456789abcdef" https://api.example`, "abcdef0123456789abcdef", "https://api.example"},
		{`postgres://app:Pa55w0rd-x9@db.internal:5432/app`, "Pa55w0rd-x9", "db.internal"},
		{`token is ghp_0123456789abcdefghijABCDEFGHIJ012345 ok`, "ghp_0123456789abcdefghijABCDEFGHIJ012345", "token is"},
		{`echo value-of-DROPPED-var-1234`, "value-of-DROPPED-var-1234", "echo"},
		{`aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key"},
		{`"input_tokens": 1234, "password": "correct horse battery"`, "correct horse battery", `"input_tokens": 1234`},
		{`basic authentication is described in RFC 7617`, "", "basic authentication is described in RFC 7617"},
	} {
		got := redact(tc.in)
		if tc.gone != "" && strings.Contains(got, tc.gone) {
			t.Errorf("redact(%q) = %q: still has %q", tc.in, got, tc.gone)
		}
		if !strings.Contains(got, tc.kept) {
			t.Errorf("redact(%q) = %q: lost %q", tc.in, got, tc.kept)
		}
	}
}

func TestCaptureActive(t *testing.T) {
	until := at(0).Add(time.Minute)
	for _, tc := range []struct {
		c    Capture
		at   time.Time
		want bool
	}{
		{Capture{}, at(0), false},
		{Capture{Full: true, Until: until}, at(0), true},
		{Capture{Full: true, Until: until}, until, true},
		{Capture{Full: true, Until: until}, until.Add(time.Nanosecond), false},
		{Capture{Full: true}, at(0).Add(time.Hour), true},
	} {
		if got := tc.c.Active(tc.at); got != tc.want {
			t.Errorf("%+v.Active(%v) = %v, want %v", tc.c, tc.at, got, tc.want)
		}
	}
}

// TestToolCallLinksByTime: a tool command gone before its environment
// could be read is linked to the tool span whose window alone holds its
// start, when it is the agent's only child there; overlapping tool windows
// (parallel calls) link nothing.
func TestToolCallLinksByTime(t *testing.T) {
	for _, tc := range []struct {
		name     string
		windows  [][2]int // tool.execution spans, ms
		wantLink bool
	}{
		{"one tool window", [][2]int{{10, 20}}, true},
		{"parallel tool calls", [][2]int{{10, 20}, {9, 25}}, false},
		{"outside every window", [][2]int{{30, 40}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := New(agInfo())
			root := rec.RootSpanID()
			var spans []*tracepb.Span
			for i, w := range tc.windows {
				spans = append(spans, otlpSpan(agSID(byte(10+i)), root, agTrace, "claude_code.tool.execution", w[0], w[1]))
			}
			rec.Add(tracesEvent(2, spans...))
			// claude is a script: the pid execs node, whose child is the tool.
			rec.Add(exec(1, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x"))
			rec.Add(exec(2, 100, 1, "/usr/bin/node", ws, "node", "/usr/local/bin/claude", "-p", "x"))
			rec.Add(fork(11, 101, 100))
			rec.Add(exec(12, 101, 100, "/bin/bash", ws, "bash", "-c", "printf hello > note.txt"))
			rec.Add(exit(13, 101, 0, 0))
			tr := rec.Finish(End{Time: at(50)})
			var sh *telemetry.Span
			for i := range tr.Spans {
				if v, ok := tr.Spans[i].Attr(telemetry.ProcessPID); ok && v.AsInt64() == 101 {
					sh = &tr.Spans[i]
				}
			}
			got := len(sh.Links) == 1 && sh.Links[0].SpanID == agSID(10) && agAttr(sh, telemetry.AgentLinkedBy) == "time"
			if got != tc.wantLink || !tc.wantLink && len(sh.Links) > 0 {
				t.Errorf("links %+v linked_by %q, want link %v", sh.Links, agAttr(sh, telemetry.AgentLinkedBy), tc.wantLink)
			}
		})
	}
}
