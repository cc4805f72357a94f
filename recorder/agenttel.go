package recorder

import (
	"encoding/hex"
	"fmt"
	"github.com/agentwatch/agentwatch/telemetry/otlpvalue"
	"sort"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// The agent's own telemetry (agentotel's event.AgentTelemetry) folded into
// the run's trace at Finish:
//   - spans: merged, re-parented under agent_run (or their own parents),
//     kept with their names, kinds, status, events and links, marked
//     agentwatch.span.source=agent; a span whose parent never arrived
//     raises missing_nested_spans;
//   - logs: each record becomes a span event on the span it names (by span
//     id), else on agent_run; an api_request record that no proxy call
//     matched becomes a chat <model> span of its own (source
//     agent_telemetry), so a call is never counted twice;
//   - metrics: counted on the root (agentwatch.agent.metrics), not kept;
//   - tool-call context: a process whose environment carried the agent's
//     TRACEPARENT (or CODEX_TOOL_CALL_ID) gets a link to that tool span.
//
// Everything the agent sent is passed through the content redactor, and
// content attributes are kept only in full capture.

// Bounds on what one run's agent may add to the trace.
const (
	maxAgentSpans      = 20000
	maxAgentLogEvents  = 5000
	maxAgentTraceBytes = 256 << 20
)

// agentContentKeys carry what a person or a model wrote, not metadata:
// dropped from the agent's spans outside full capture.
var agentContentKeys = map[string]bool{
	"prompt": true, "user_prompt": true, "prompt_text": true, "tool_input": true,
	"tool_parameters": true, "tool_output": true, "response": true, "body": true,
	"input": true, "output": true, "new_context": true, "system_prompt": true,
	string(telemetry.GenAIInputMessages): true, string(telemetry.GenAIOutputMessages): true,
	string(telemetry.GenAISystemInstructions): true,
	"gen_ai.tool.call.arguments":              true, "gen_ai.tool.call.result": true,
	"gen_ai.prompt": true, "gen_ai.completion": true,
}

type agentState struct {
	pairs      []int // agentPairs, once made
	traces     [][]byte
	traceBytes int
	logs       []event.AgentLogRecord
	dataPoints int64
	lost       int // payloads that could not be decoded or were over a bound
	tools      map[trace.SpanID]toolContext
}

// toolContext is an exec's TRACEPARENT / CODEX_TOOL_CALL_ID.
type toolContext struct{ traceParent, toolCallID string }

func (r *Recorder) as() *agentState {
	if r.agent == nil {
		r.agent = &agentState{tools: map[trace.SpanID]toolContext{}}
	}
	return r.agent
}

// RootSpanID is this run's agent_run span id.
func (r *Recorder) RootSpanID() trace.SpanID { return r.root.id }

// TraceID is this run's trace id.
func (r *Recorder) TraceID() trace.TraceID { return r.traceID }

func (r *Recorder) noteToolContext(s *procSpan, e event.Exec) {
	if e.TraceParent == "" && e.ToolCallID == "" {
		return
	}
	r.as().tools[s.id] = toolContext{traceParent: e.TraceParent, toolCallID: e.ToolCallID}
}

func (r *Recorder) agentTelemetry(e event.AgentTelemetry) {
	as := r.as()
	switch e.Signal {
	case event.SignalTraces:
		if as.traceBytes+len(e.Payload) > maxAgentTraceBytes {
			as.lost++
			return
		}
		as.traceBytes += len(e.Payload)
		as.traces = append(as.traces, e.Payload)
	case event.SignalLogs:
		for _, rec := range e.Logs {
			if len(as.logs) >= maxAgentLogEvents {
				as.lost++
				return
			}
			as.logs = append(as.logs, rec)
		}
	case event.SignalMetrics:
		n, err := countDataPoints(e.Payload)
		if err != nil {
			as.lost++
			return
		}
		as.dataPoints += n
	}
}

// parseTraceParent reads a W3C traceparent (version 00 layout; later
// versions keep it as a prefix).
func parseTraceParent(tp string) (trace.TraceID, trace.SpanID, bool) {
	parts := strings.Split(strings.TrimSpace(tp), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" {
		return trace.TraceID{}, trace.SpanID{}, false
	}
	tid, err1 := trace.TraceIDFromHex(parts[1])
	sid, err2 := trace.SpanIDFromHex(parts[2])
	if err1 != nil || err2 != nil {
		return trace.TraceID{}, trace.SpanID{}, false
	}
	return tid, sid, true
}

// finishAgent adds what the agent reported to t. It runs before
// finishPolicy, which turns the alerts raised here into span events.
func (r *Recorder) finishAgent(t *telemetry.Trace, end End) {
	as := r.agent
	if as == nil && !r.info.Capture.Full {
		r.finishCapture(t, end, spanIndex(t))
		return
	}
	if as == nil {
		as = r.as()
	}
	redact := r.redactor().Content

	received, orphans, moved := r.agentSpans(as, redact)
	t.Spans = append(t.Spans, received...)
	byID := spanIndex(t)
	for _, id := range orphans {
		if i, ok := byID[id]; ok {
			r.raise(id, t.Spans[i].Start, telemetry.AlertMissingSpans, telemetry.SeverityLow, "",
				fmt.Sprintf("the agent's span %s (%s) names a parent span that never arrived", id, t.Spans[i].Name))
		}
	}

	// Tool-call links: only the topmost process of a tool's subtree
	// carries one (its descendants inherit the same TRACEPARENT), and not
	// the agent itself, whose TRACEPARENT is the run's own root.
	parentCtx := map[trace.SpanID]toolContext{}
	for _, s := range r.spans {
		parentCtx[s.id] = as.tools[s.id]
	}
	for _, s := range r.spans {
		tc, ok := as.tools[s.id]
		if !ok || s.isRoot {
			continue
		}
		i, ok := byID[s.id]
		if !ok {
			continue
		}
		sp := &t.Spans[i]
		pc := parentCtx[s.parent]
		if tc.toolCallID != "" && tc.toolCallID != pc.toolCallID {
			sp.SetAttr(telemetry.AgentToolCallID.String(tc.toolCallID))
		}
		tid, sid, ok := parseTraceParent(tc.traceParent)
		if !ok || sid == r.root.id || tc.traceParent == pc.traceParent {
			continue
		}
		if moved[tid] {
			tid = r.traceID // the agent's spans were moved into the run's trace
		}
		sp.Links = append(sp.Links, telemetry.Link{TraceID: tid, SpanID: sid})
		sp.SetAttr(telemetry.AgentSpanID.String(sid.String()))
		sp.SetAttr(telemetry.AgentLinkedBy.String("environ"))
	}
	r.linkByTime(t, byID, received)

	llmSpans := r.agentLogs(t, byID, as.logs, redact)
	t.Spans = append(t.Spans, llmSpans...)
	r.addAgentLLMTotals(&t.Spans[0], llmSpans)

	// Root first, the rest in start order (the trace's promise), now that
	// received spans are in.
	rest := t.Spans[1:]
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].Start.Before(rest[j].Start) })

	root := &t.Spans[0]
	if _, ok := root.Attr(telemetry.GenAIConversationID); !ok {
		// The agent's session id, when no proxied call carried one: a
		// resumed session (the same id) joins its runs.
		for _, rec := range as.logs {
			if rec.SessionID != "" {
				root.SetAttr(telemetry.GenAIConversationID.String(rec.SessionID))
				break
			}
		}
	}
	if r.agent != nil {
		root.SetAttr(telemetry.AgentSpans.Int(len(received)))
		root.SetAttr(telemetry.AgentLogs.Int(len(as.logs)))
		root.SetAttr(telemetry.AgentMetrics.Int64(as.dataPoints))
		if as.lost > 0 {
			// rootSpan has written the gaps already: add to its list.
			v, _ := root.Attr(telemetry.TelemetryGaps)
			gaps := append(v.AsStringSlice(), fmt.Sprintf("agent telemetry: %d export requests or records lost (undecodable or over the run's bound)", as.lost))
			root.SetAttr(telemetry.TelemetryGaps.StringSlice(gaps))
		}
	}
	r.finishCapture(t, end, spanIndex(t))
}

func spanIndex(t *telemetry.Trace) map[trace.SpanID]int {
	m := make(map[trace.SpanID]int, len(t.Spans))
	for i := range t.Spans {
		m[t.Spans[i].SpanID] = i
	}
	return m
}

// agentSpans converts the received spans. moved holds the trace ids the
// agent used that Reparent moved into the run's trace.
func (r *Recorder) agentSpans(as *agentState, redact func(string) string) (out []telemetry.Span, orphans []trace.SpanID, moved map[trace.TraceID]bool) {
	moved = map[trace.TraceID]bool{}
	if len(as.traces) == 0 {
		return nil, nil, moved
	}
	merged, err := MergeTraces(as.traces...)
	if err != nil {
		// One bad payload must not lose the others: decode one by one.
		merged = nil
		var ok [][]byte
		for _, p := range as.traces {
			if _, err := MergeTraces(p); err == nil {
				ok = append(ok, p)
			} else {
				as.lost++
			}
		}
		if merged, err = MergeTraces(ok...); err != nil {
			return nil, nil, moved
		}
	}
	service := map[trace.SpanID]string{}
	origTrace := map[trace.SpanID]trace.TraceID{}
	for _, rs := range merged.GetResourceSpans() {
		name := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == string(telemetry.ServiceName) {
				name = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if len(sp.GetSpanId()) == 8 && len(sp.GetTraceId()) == 16 {
					id := trace.SpanID(sp.GetSpanId())
					if _, seen := origTrace[id]; !seen {
						service[id] = name
						origTrace[id] = trace.TraceID(sp.GetTraceId())
					}
				}
			}
		}
	}
	spans, orph := Reparent(merged, r.traceID, r.root.id)
	if len(spans) > maxAgentSpans {
		as.lost += len(spans) - maxAgentSpans
		spans = spans[:maxAgentSpans]
	}
	for _, h := range orph {
		if b, err := hex.DecodeString(h); err == nil && len(b) == 8 {
			orphans = append(orphans, trace.SpanID(b))
		}
	}
	for _, sp := range spans {
		id := trace.SpanID(sp.SpanId)
		if tid := origTrace[id]; tid != r.traceID {
			moved[tid] = true
		}
		out = append(out, r.convertAgentSpan(sp, service[id], origTrace[id], redact))
	}
	return out, orphans, moved
}

func (r *Recorder) convertAgentSpan(sp *tracepb.Span, service string, orig trace.TraceID, redact func(string) string) telemetry.Span {
	start := time.Unix(0, int64(sp.GetStartTimeUnixNano()))
	full := r.info.Capture.Active(start)
	end := time.Unix(0, int64(sp.GetEndTimeUnixNano()))
	if end.Before(start) {
		end = start
	}
	out := telemetry.Span{
		TraceID:  r.traceID,
		SpanID:   trace.SpanID(sp.SpanId),
		ParentID: trace.SpanID(sp.ParentSpanId),
		Name:     claimName(redact(sp.GetName())),
		Kind:     spanKind(sp.GetKind()),
		Start:    start,
		End:      end,
	}
	switch sp.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		out.Status, out.StatusMessage = codes.Error, redact(sp.GetStatus().GetMessage())
	case tracepb.Status_STATUS_CODE_OK:
		out.Status = codes.Ok
	}
	out.Attrs = agentAttrs(sp.GetAttributes(), redact, full)
	// Whatever type the agent claimed (kept as agent.claim.agentwatch.span.type),
	// its span is an agent_span: never a review, a test run or a commit.
	out.Attrs = append(out.Attrs, telemetry.SpanType.String(telemetry.SpanAgent))
	if _, ok := out.Attr(telemetry.OpenInferenceKind); !ok {
		out.Attrs = append(out.Attrs, telemetry.OpenInferenceKind.String(oiKindOf(sp.GetName())))
	}
	// Langfuse makes any span carrying gen_ai.request.model a generation:
	// the agent's own llm_request span would double the proxy's chat span.
	out.Attrs = dropAttr(out.Attrs, telemetry.GenAIRequestModel)
	out.Attrs = append(out.Attrs, telemetry.SpanSource.String(telemetry.SourceAgent))
	if service != "" {
		out.Attrs = append(out.Attrs, telemetry.AgentServiceName.String(service))
	}
	if orig.IsValid() && orig != r.traceID {
		out.Attrs = append(out.Attrs, telemetry.AgentTraceID.String(orig.String()))
	}
	for _, ev := range sp.GetEvents() {
		out.Events = append(out.Events, telemetry.SpanEvent{
			Name:  claimName(redact(ev.GetName())),
			Time:  time.Unix(0, int64(ev.GetTimeUnixNano())),
			Attrs: agentAttrs(ev.GetAttributes(), redact, full),
		})
	}
	for _, l := range sp.GetLinks() {
		if len(l.GetTraceId()) != 16 || len(l.GetSpanId()) != 8 {
			continue
		}
		out.Links = append(out.Links, telemetry.Link{
			TraceID: trace.TraceID(l.GetTraceId()),
			SpanID:  trace.SpanID(l.GetSpanId()),
			Attrs:   agentAttrs(l.GetAttributes(), redact, full),
		})
	}
	return out
}

func spanKind(k tracepb.Span_SpanKind) trace.SpanKind {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return trace.SpanKindServer
	case tracepb.Span_SPAN_KIND_CLIENT:
		return trace.SpanKindClient
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return trace.SpanKindProducer
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return trace.SpanKindConsumer
	}
	return trace.SpanKindInternal
}

// oiKindOf guesses the OpenInference kind from the agent's span name
// (Claude Code: claude_code.interaction, .llm_request, .tool,
// .tool.execution) for spans that do not say.
func oiKindOf(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "tool"):
		return telemetry.OITool
	case strings.Contains(n, "llm") || strings.HasPrefix(n, "chat "):
		return telemetry.OILLM
	case strings.Contains(n, "interaction") || strings.Contains(n, "agent"):
		return telemetry.OIAgent
	}
	return telemetry.OIChain
}

func dropAttr(a []attribute.KeyValue, k attribute.Key) []attribute.KeyValue {
	out := a[:0]
	for _, kv := range a {
		if kv.Key != k {
			out = append(out, kv)
		}
	}
	return out
}

// agentAttrs converts OTLP attributes, redacting every string (the agent
// is not trusted to have kept credentials out) and dropping content keys
// outside full capture.
func agentAttrs(kvs []*commonpb.KeyValue, redact func(string) string, full bool) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		k := kv.GetKey()
		if k == "" || !full && agentContentKeys[k] {
			continue
		}
		out = append(out, anyValue(attribute.Key(claimKey(k)), kv.GetValue(), redact))
	}
	return out
}

// claimKey moves an attribute the agent sent in agentwatch's namespace
// under telemetry.AgentClaimPrefix: agentwatch.span.type=review from the
// agent is agent.claim.agentwatch.span.type=review, read by nothing.
func claimKey(k string) string {
	if strings.HasPrefix(k, "agentwatch.") || strings.HasPrefix(k, telemetry.AgentClaimPrefix) {
		return telemetry.AgentClaimPrefix + k
	}
	return k
}

// reservedNames are span and event names agentwatch's own records carry.
var reservedNames = map[string]bool{
	telemetry.SpanAgentRun: true, telemetry.SpanBashCommand: true, telemetry.SpanTestRun: true,
	telemetry.SpanLintRun: true, telemetry.SpanDependencyInstall: true, telemetry.SpanCommit: true,
	telemetry.SpanPullRequest: true, telemetry.SpanPatchApply: true, telemetry.SpanGitDiff: true,
	telemetry.SpanSecretScan: true, telemetry.SpanCodeScan: true, telemetry.SpanFileWrite: true,
	telemetry.SpanFileRead: true, telemetry.SpanNetworkCall: true, telemetry.SpanLLMCall: true,
	telemetry.SpanReview: true, telemetry.SpanAgent: true, telemetry.EventPolicyDecision: true,
}

// claimName namespaces a span or event name of the agent's that reads as
// one of agentwatch's (review, test_run, chat <model>, agentwatch.alert):
// in `show` and in a backend it is agent.claim.review.
func claimName(n string) string {
	if reservedNames[n] || strings.HasPrefix(n, "agentwatch") || strings.HasPrefix(n, telemetry.AgentClaimPrefix) || strings.HasPrefix(n, "chat ") {
		return telemetry.AgentClaimPrefix + n
	}
	return n
}

func anyValue(k attribute.Key, v *commonpb.AnyValue, redact func(string) string) attribute.KeyValue {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return k.String(redact(x.StringValue))
	case *commonpb.AnyValue_IntValue:
		return k.Int64(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return k.Float64(x.DoubleValue)
	case *commonpb.AnyValue_BoolValue:
		return k.Bool(x.BoolValue)
	case *commonpb.AnyValue_ArrayValue:
		vals := x.ArrayValue.GetValues()
		strs := make([]string, 0, len(vals))
		ints := make([]int64, 0, len(vals))
		allInt := len(vals) > 0
		for _, e := range vals {
			if iv, ok := e.GetValue().(*commonpb.AnyValue_IntValue); ok {
				ints = append(ints, iv.IntValue)
			} else {
				allInt = false
			}
			strs = append(strs, redact(otlpvalue.String(e)))
		}
		if allInt {
			return k.Int64Slice(ints)
		}
		return k.StringSlice(strs)
	}
	return k.String(redact(otlpvalue.String(v)))
}

// agentLogs attaches the agent's log records as span events and returns
// the LLM spans made from api_request records no proxy call matched.
func (r *Recorder) agentLogs(t *telemetry.Trace, byID map[trace.SpanID]int, logs []event.AgentLogRecord, redact func(string) string) []telemetry.Span {
	pairs := r.agentPairs()
	var llm []telemetry.Span
	for k, rec := range logs {
		i := 0
		if sid, err := trace.SpanIDFromHex(rec.SpanID); err == nil {
			if j, ok := byID[sid]; ok {
				i = j
			}
		}
		t.Spans[i].Events = append(t.Spans[i].Events, logEvent(rec, redact, r.info.Capture.Active(rec.Time)))
		if rec.Name != event.ClaudeAPIRequest {
			continue
		}
		if k < len(pairs) && pairs[k] >= 0 {
			continue // the proxy's call: its span is made (llm.go)
		}
		llm = append(llm, r.apiRequestSpan(rec, t.Spans[i].SpanID))
	}
	return llm
}

// agentPairs pairs the agent's api_request records with the proxy's calls,
// once per run: pairs[i] is the index in the proxy's calls of the call
// log record i describes, -1 for none. Both the model-call spans (the
// agent's cost for a call without a price) and the agent's own
// chat spans (only for records no call matched) read it.
func (r *Recorder) agentPairs() []int {
	as := r.agent
	if as == nil {
		return nil
	}
	if as.pairs == nil {
		calls := r.proxyCalls()
		used := make([]bool, len(calls))
		as.pairs = make([]int, len(as.logs))
		for i, rec := range as.logs {
			as.pairs[i] = -1
			if rec.Name == event.ClaudeAPIRequest {
				as.pairs[i] = matchCall(rec, calls, used)
			}
		}
	}
	return as.pairs
}

// matchCall finds the proxy call rec describes: the unused match whose
// end is nearest rec's time (event.AgentLogRecord.Matches); -1 for none.
func matchCall(rec event.AgentLogRecord, calls []event.LLMCall, used []bool) int {
	best := -1
	for j, c := range calls {
		if used[j] || !rec.Matches(c) {
			continue
		}
		if best < 0 || rec.Time.Sub(c.End).Abs() < rec.Time.Sub(calls[best].End).Abs() {
			best = j
		}
	}
	if best >= 0 {
		used[best] = true
	}
	return best
}

func logEvent(rec event.AgentLogRecord, redact func(string) string, content bool) telemetry.SpanEvent {
	var a []attribute.KeyValue
	str := func(k, v string) {
		if v != "" {
			a = append(a, attribute.String(k, redact(v)))
		}
	}
	num := func(k string, v int64) {
		if v != 0 {
			a = append(a, attribute.Int64(k, v))
		}
	}
	str("session.id", rec.SessionID)
	str("prompt.id", rec.PromptID)
	str("model", rec.Model)
	num("input_tokens", rec.InputTokens)
	num("output_tokens", rec.OutputTokens)
	num("cache_read_tokens", rec.CacheReadTokens)
	num("cache_creation_tokens", rec.CacheCreationTokens)
	if rec.CostKnown {
		a = append(a, attribute.Float64("cost_usd", rec.CostUSD))
	}
	num("duration_ms", rec.Duration.Milliseconds())
	num("ttft_ms", rec.TimeToFirstToken.Milliseconds())
	num("status_code", int64(rec.StatusCode))
	str("error", rec.Error)
	num("attempt", int64(rec.Attempt))
	str("request_id", rec.RequestID)
	str("tool_name", rec.ToolName)
	str("tool_use_id", rec.ToolUseID)
	if rec.Name == event.ClaudeToolResult {
		a = append(a, attribute.Bool("success", rec.Success))
	}
	str("decision", rec.Decision)
	str("source", rec.Source)
	num("prompt_length", int64(rec.PromptLength))
	for _, k := range sortedKeys(rec.Attrs) {
		str(claimKey(k), rec.Attrs[k])
	}
	if content {
		for _, k := range sortedKeys(rec.Content) {
			str(claimKey(k), rec.Content[k])
		}
	}
	return telemetry.SpanEvent{Name: claimName(rec.Name), Time: rec.Time, Attrs: a}
}

// apiRequestSpan is the chat <model> span for a model call only the
// agent reported (the proxy did not see it: the agent bypassed
// ANTHROPIC_BASE_URL, or the call went around the proxy another way).
// Claude Code reports input tokens without the cached ones; the span
// carries the convention's inclusive count.
func (r *Recorder) apiRequestSpan(rec event.AgentLogRecord, parent trace.SpanID) telemetry.Span {
	id, _ := r.nextSpanID()
	sp := r.span(id, parent, "chat "+rec.Model, telemetry.SpanLLMCall, telemetry.OILLM, trace.SpanKindClient, rec.Start(), rec.Time)
	in, out := rec.InclusiveInputTokens(), rec.OutputTokens
	sp.Attrs = append(sp.Attrs,
		telemetry.SpanSource.String(telemetry.SourceAgentTelemetry),
		telemetry.GenAIOperationName.String("chat"),
		telemetry.GenAIProviderName.String("anthropic"),
		telemetry.GenAIRequestModel.String(rec.Model),
		telemetry.GenAIUsageInputTokens.Int64(in),
		telemetry.GenAIUsageOutputTokens.Int64(out),
		telemetry.GenAIUsageCacheReadTokens.Int64(rec.CacheReadTokens),
		telemetry.GenAIUsageCacheCreateTokens.Int64(rec.CacheCreationTokens),
		telemetry.OILLMModelName.String(rec.Model),
		telemetry.OILLMProvider.String("anthropic"),
		telemetry.OILLMTokensPrompt.Int64(in),
		telemetry.OILLMTokensCompletion.Int64(out),
		telemetry.OILLMTokensTotal.Int64(in+out),
		telemetry.OILLMTokensCacheRead.Int64(rec.CacheReadTokens),
		telemetry.OILLMTokensCacheWrite.Int64(rec.CacheCreationTokens),
	)
	if rec.TimeToFirstToken > 0 {
		sp.Attrs = append(sp.Attrs, telemetry.LLMTTFTMillis.Int64(rec.TimeToFirstToken.Milliseconds()))
	}
	if rec.CostKnown {
		// The agent's own price: ours needs the provider's model id,
		// which is what the agent reports too, but the agent's figure is
		// what its user was shown.
		sp.Attrs = append(sp.Attrs, telemetry.CostUSD.Float64(rec.CostUSD), telemetry.OILLMCostTotal.Float64(rec.CostUSD),
			telemetry.CostSource.String(telemetry.CostSourceAgentReported))
	}
	if rec.SessionID != "" {
		sp.Attrs = append(sp.Attrs, telemetry.GenAIConversationID.String(rec.SessionID))
	}
	return sp
}

// proxyCalls are the model calls the proxy recorded (llm.go).
func (r *Recorder) proxyCalls() []event.LLMCall {
	if r.llm == nil {
		return nil
	}
	out := make([]event.LLMCall, len(r.llm.calls))
	for i, s := range r.llm.calls {
		out[i] = s.call
	}
	return out
}

// addAgentLLMTotals adds the calls only the agent reported to the root's
// model-call totals (finishLLM wrote the proxy's).
func (r *Recorder) addAgentLLMTotals(root *telemetry.Span, spans []telemetry.Span) {
	if len(spans) == 0 {
		return
	}
	var in, out int64
	var cost float64
	var priced, unpriced int
	for i := range spans {
		v, _ := spans[i].Attr(telemetry.GenAIUsageInputTokens)
		in += v.AsInt64()
		v, _ = spans[i].Attr(telemetry.GenAIUsageOutputTokens)
		out += v.AsInt64()
		if v, ok := spans[i].Attr(telemetry.CostUSD); ok {
			cost += v.AsFloat64()
			priced++
		} else {
			unpriced++
		}
	}
	add := func(k attribute.Key, n int64) {
		v, _ := root.Attr(k)
		root.SetAttr(k.Int64(v.AsInt64() + n))
	}
	add(telemetry.LLMCalls, int64(len(spans)))
	add(telemetry.GenAIUsageInputTokens, in)
	add(telemetry.GenAIUsageOutputTokens, out)
	add(telemetry.LLMCallsUnpriced, int64(unpriced))
	if priced > 0 {
		v, _ := root.Attr(telemetry.CostUSD)
		root.SetAttr(telemetry.CostUSD.Float64(v.AsFloat64() + cost))
		table, agent := 0, priced
		if st := r.llm; st != nil {
			table, agent = st.table, st.agent+priced
		}
		root.SetAttr(telemetry.CostSource.String(costSource(table, agent)))
	}
}

// linkByTime links the agent's tool-execution spans that no process named
// through its environment. The environment is read when the exec event
// reaches the supervisor (tens of milliseconds later); a tool command
// that finished by then (Claude Code's `bash -c 'printf …'` often does)
// left nothing to read. The fallback is deliberately narrow: a direct
// child of the agent's process that started inside the tool span's time
// window, when it is the only such child in that window and the window is
// the only tool window it falls in. Parallel tool calls stay unlinked
// rather than linked wrongly. agentwatch.agent.linked_by=time says which
// evidence made the link.
func (r *Recorder) linkByTime(t *telemetry.Trace, byID map[trace.SpanID]int, received []telemetry.Span) {
	// The agent's process: the launched pid's last image (`claude` is a
	// script that execs node; the tools are children of node).
	var agentProc *procSpan
	for _, s := range r.spans {
		if !s.isRoot && s.pid == r.info.RootPID {
			agentProc = s
		}
	}
	if agentProc == nil {
		return
	}
	linked := map[trace.SpanID]bool{}
	var candidates []*telemetry.Span
	for _, s := range r.spans {
		i, ok := byID[s.id]
		if !ok || s.parent != agentProc.id {
			continue
		}
		sp := &t.Spans[i]
		if v, ok := sp.Attr(telemetry.AgentSpanID); ok {
			if sid, err := trace.SpanIDFromHex(v.AsString()); err == nil {
				linked[sid] = true
			}
			continue
		}
		if _, ok := r.as().tools[s.id]; ok {
			continue // it had a context; whatever it said stands
		}
		candidates = append(candidates, sp)
	}
	var windows []telemetry.Span
	for _, sp := range received {
		if strings.HasSuffix(sp.Name, "tool.execution") && !linked[sp.SpanID] {
			windows = append(windows, sp)
		}
	}
	inWindow := func(p *telemetry.Span, w telemetry.Span) bool {
		return !p.Start.Before(w.Start) && !p.Start.After(w.End)
	}
	for _, w := range windows {
		var match *telemetry.Span
		n := 0
		for _, p := range candidates {
			if inWindow(p, w) {
				match, n = p, n+1
			}
		}
		if n != 1 {
			continue
		}
		others := 0
		for _, w2 := range windows {
			if inWindow(match, w2) {
				others++
			}
		}
		if others != 1 {
			continue
		}
		match.Links = append(match.Links, telemetry.Link{TraceID: r.traceID, SpanID: w.SpanID})
		match.SetAttr(telemetry.AgentSpanID.String(w.SpanID.String()))
		match.SetAttr(telemetry.AgentLinkedBy.String("time"))
	}
}
