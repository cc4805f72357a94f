package recorder

// Model calls: each event.LLMCall from the run's metering proxy becomes a
// `chat <model>` span (kind CLIENT, llm_call, OpenInference LLM) under the
// process that made the call, with its usage, cost and digests; the root
// gets the totals.
//
// Decisions a reader of the trace should know:
//   - Only model APIs (Anthropic messages, OpenAI chat.completions and
//     responses) get a span. The other requests an agent sends to the
//     same base URL (HEAD /api/hello, /v1/messages/count_tokens, model
//     lists) are counted on the root (agentwatch.llm.other_requests):
//     they bill nothing and carry no usage, and a span with a model on it
//     would show up as a generation in Langfuse.
//   - The parent is the process span of the pid the proxy resolved
//     (agentwatch.llm.attributed_by=pid); when the pid is unknown, the
//     process agentwatch launched (root_process: it is the agent in the
//     usual `agentwatch run -- claude …`); else agent_run (run).
//   - agentwatch.cost.usd is set only when the call carried usage and its
//     model has a price, or — a model the price table does not know — the
//     agent reported its own cost for that very call (a claude_code.
//     api_request record matched as in event.AgentLogRecord.Matches: same
//     model, same token counts, within MatchWindow, each record once);
//     agentwatch.cost.source says which (price_table, agent_reported).
//     Otherwise the span has no cost (never a zero) and, for a call that
//     succeeded, a missing_cost_data alert. A failed call (429,
//     unreachable upstream, cut before any usage) gets neither: its
//     error.type already says why there is nothing to price.
//   - The root's agentwatch.cost.usd is the sum of the priced calls;
//     agentwatch.llm.calls.unpriced says how many calls it leaves out, so
//     a total with gaps is visibly a floor; its agentwatch.cost.source is
//     mixed when both sources were used.
//   - runaway_spend fires once, on the call whose cost takes the running
//     total over alerts.spend_usd (in the order calls finished).
//   - A model request whose whole body is byte-identical to an earlier
//     one carries no new context (a tool result or a new turn would change
//     it): the alerts.retries_without_progress-th identical request raises
//     retries_without_progress on its span.
//   - Such a request is a retry, whether the earlier attempt failed (a
//     429, a cut stream: the client's own retry) or succeeded (the answer
//     was thrown away): its span links to the previous attempt (retry_of)
//     and carries the tokens and cost of all the earlier attempts of that
//     body as wasted; the root's waste counts every attempt that was
//     retried once. Judged at Finish, when the agent's own costs are in.
//   - The tool results a request carries link its span to the model
//     call(s) that asked for them (tool_result_of), by tool call id.
//   - Every proxied call is recorded (agentwatch.llm.sampled=true, no
//     sampling); agentwatch.capture.content on the span says whether its
//     content could be kept.

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Values of agentwatch.llm.attributed_by.
const (
	attributedPID         = "pid"
	attributedRootProcess = "root_process"
	attributedRun         = "run"
)

// maxPromptDigests bounds the repeated-request table: an agent making
// more distinct requests than this in one run only loses repeat detection
// for the oldest ones.
const maxPromptDigests = 4096

// llmState is the model-call part of the record, created on first use.
type llmState struct {
	calls    []*llmSpan
	other    int            // non-model requests: counted, no span
	repeats  map[string]int // request-body sha256 → times seen
	session  string         // the agent's session id, first seen
	cost     float64        // priced calls only
	in, out  int64
	unpriced int
	table    int  // calls priced from the price table
	agent    int  // calls priced with the agent's figure (applyAgentCosts)
	spent    bool // runaway_spend raised
	prices   *prices.Table
	// toolUses maps a tool call id to the call whose response asked for
	// it, for the tool_result_of links (bounded like repeats).
	toolUses map[string]*llmSpan
}

// llmSpan is one model call, placed when its event arrived.
type llmSpan struct {
	id     trace.SpanID
	seq    uint64
	parent trace.SpanID
	by     string
	call   event.LLMCall
	cost   float64
	priced bool
	source string // agentwatch.cost.source when priced
	// parts splits a table-priced cost into its input and output sides
	// (llm.cost.prompt / llm.cost.completion); the agent's own figure
	// comes as one number, so hasParts is false for it.
	parts    prices.Parts
	hasParts bool
	repeat   int // earlier identical requests
	// from are the earlier calls whose tool calls this request answers,
	// each with the ids it answers, in the order the results came.
	from []toolLink
	// Retries (finishRetries): the previous attempt of this request body,
	// how many came before, and what they cost.
	retryOf   *llmSpan
	retries   int
	wastedTok int64
	wastedUSD float64
}

// toolLink: the call that asked for tool calls ids.
type toolLink struct {
	span *llmSpan
	ids  []string
}

func (r *Recorder) ls() *llmState {
	if r.llm == nil {
		r.llm = &llmState{repeats: make(map[string]int), toolUses: make(map[string]*llmSpan), prices: r.info.Prices}
		if r.llm.prices == nil {
			r.llm.prices = prices.Builtin()
		}
	}
	return r.llm
}

// isModelCall: the APIs whose responses carry usage (llm's apiOf names).
func isModelCall(api string) bool {
	switch api {
	case "messages", "chat.completions", "responses":
		return true
	}
	return false
}

// llmCall folds one proxied request into the record.
func (r *Recorder) llmCall(e event.LLMCall) {
	st := r.ls()
	if st.session == "" && e.SessionID != "" {
		st.session = e.SessionID
	}
	if !isModelCall(e.API) {
		st.other++
		return
	}
	parent, by := r.llmParent(e.PID)
	id, seq := r.nextSpanID()
	s := &llmSpan{id: id, seq: seq, parent: parent.id, by: by, call: e}
	if e.UsageKnown {
		st.in += e.InputTokens
		st.out += e.OutputTokens
	}
	s.parts, s.priced = st.prices.CostParts(e)
	s.cost, s.hasParts = s.parts.Total, s.priced
	if s.priced {
		st.cost += s.cost
		st.table++
		s.source = telemetry.CostSourcePriceTable
	} else {
		st.unpriced++
	}
	st.calls = append(st.calls, s)
	st.linkToolResults(s)
	r.llmAlerts(s)
}

// linkToolResults finds the calls that asked for the tool results s
// carries, then remembers the tool calls s's response asked for.
func (st *llmState) linkToolResults(s *llmSpan) {
	for _, tr := range s.call.ToolResults {
		from := st.toolUses[tr.ToolCallID]
		if tr.ToolCallID == "" || from == nil {
			continue
		}
		i := slices.IndexFunc(s.from, func(l toolLink) bool { return l.span == from })
		if i < 0 {
			s.from = append(s.from, toolLink{span: from})
			i = len(s.from) - 1
		}
		s.from[i].ids = append(s.from[i].ids, tr.ToolCallID)
	}
	for _, tc := range s.call.ToolCalls {
		if tc.ID == "" {
			continue
		}
		if len(st.toolUses) >= maxPromptDigests {
			clear(st.toolUses)
		}
		st.toolUses[tc.ID] = s
	}
}

// llmTokens is what a call's usage says it used, input and output.
func llmTokens(c event.LLMCall) int64 {
	if !c.UsageKnown {
		return 0
	}
	return c.InputTokens + c.OutputTokens
}

// finishRetries marks each call whose request body repeats an earlier
// call's as a retry of the latest of them, with the earlier attempts'
// tokens and cost as its waste, and returns the run's retry totals: retry
// calls, and the tokens and cost of every attempt that was retried (each
// once).
func (st *llmState) finishRetries() (calls int, tokens int64, usd float64) {
	attempts := map[string][]*llmSpan{}
	for _, s := range st.calls {
		d := s.call.PromptSHA256
		if d == "" {
			continue
		}
		earlier := attempts[d]
		if n := len(earlier); n > 0 {
			s.retryOf, s.retries = earlier[n-1], n
			for _, e := range earlier {
				s.wastedTok += llmTokens(e.call)
				if e.priced {
					s.wastedUSD += e.cost
				}
			}
			prev := earlier[n-1]
			calls++
			tokens += llmTokens(prev.call)
			if prev.priced {
				usd += prev.cost
			}
		}
		attempts[d] = append(earlier, s)
	}
	return calls, tokens, usd
}

// llmFailed: the call did not get a whole successful response.
func llmFailed(c event.LLMCall) bool {
	return c.ErrorType != "" || c.Status >= 400 || c.Status == 0
}

// spendAlert raises runaway_spend on s when total, the spend up to and
// including s, crosses alerts.spend_usd for the first time.
func (r *Recorder) spendAlert(s *llmSpan, total float64) {
	st := r.ls()
	if limit := r.pol.Alerts.SpendUSD; limit > 0 && !st.spent && total > limit {
		st.spent = true
		r.raise(s.id, s.call.End, telemetry.AlertRunawaySpend, telemetry.SeverityHigh, "",
			fmt.Sprintf("model spend reached $%.4f, over alerts.spend_usd $%.2f", total, limit))
	}
}

// applyAgentCosts prices the calls the price table could not with the
// agent's own figure for the same call (agentPairs), then raises what is
// still unpriced, and runaway_spend if the agent's figures took the spend
// over the limit (on the call that did, in the order calls finished).
func (r *Recorder) applyAgentCosts() {
	st := r.llm
	added := false
	if as := r.agent; st != nil && as != nil {
		for i, ci := range r.agentPairs() {
			rec := as.logs[i]
			if ci < 0 || !rec.CostKnown || rec.CostUSD < 0 {
				continue
			}
			if s := st.calls[ci]; !s.priced {
				s.cost, s.priced, s.source = rec.CostUSD, true, telemetry.CostSourceAgentReported
				st.cost += s.cost
				st.unpriced--
				st.agent++
				added = true
			}
		}
	}
	if st == nil {
		return
	}
	var total float64
	for _, s := range st.calls {
		c := s.call
		if !s.priced && c.UsageKnown {
			r.raise(s.id, c.End, telemetry.AlertMissingCostData, telemetry.SeverityLow, "price",
				fmt.Sprintf("no price for %s model %q: its cost is unknown (add it with --prices FILE)", c.Provider, modelOf(c)))
		}
		if s.priced {
			total += s.cost
		}
		if added {
			r.spendAlert(s, total)
		}
	}
}

// costSource is agentwatch.cost.source for calls priced table and agent
// ways: "" when none was priced.
func costSource(table, agent int) string {
	switch {
	case table > 0 && agent > 0:
		return telemetry.CostSourceMixed
	case table > 0:
		return telemetry.CostSourcePriceTable
	case agent > 0:
		return telemetry.CostSourceAgentReported
	}
	return ""
}

// llmParent is the span a call hangs under (see the decisions above).
func (r *Recorder) llmParent(pid uint32) (*procSpan, string) {
	if p := r.procs[pid]; pid != 0 && p != nil {
		return p.active(), attributedPID
	}
	if p := r.procs[r.info.RootPID]; r.info.RootPID != 0 && p != nil && p.cur != nil {
		return p.cur, attributedRootProcess
	}
	return r.root, attributedRun
}

func (r *Recorder) llmAlerts(s *llmSpan) {
	st, c := r.ls(), s.call
	failed := llmFailed(c)
	// A call without a price is judged at Finish, when the agent's
	// figure for it is known (unpricedAlerts).
	if !s.priced && !failed && !c.UsageKnown {
		r.raise(s.id, c.End, telemetry.AlertMissingCostData, telemetry.SeverityLow, "usage",
			fmt.Sprintf("model call %s %s returned no token usage: its cost is unknown", c.Method, c.Path))
	}
	r.spendAlert(s, st.cost)
	if d := c.PromptSHA256; d != "" {
		s.repeat = st.repeats[d]
		if len(st.repeats) >= maxPromptDigests && s.repeat == 0 {
			clear(st.repeats)
		}
		st.repeats[d] = s.repeat + 1
		if n := r.pol.Alerts.RetriesWithoutProgress; n > 0 && s.repeat+1 == n {
			r.raise(s.id, c.End, telemetry.AlertRetries, telemetry.SeverityMedium, "llm",
				fmt.Sprintf("the same model request (sha256 %.12s) was sent %d times", d, n))
		}
	}
}

func modelOf(c event.LLMCall) string {
	if c.RequestModel != "" {
		return c.RequestModel
	}
	return c.ResponseModel
}

// invocationParameters is OpenInference's llm.invocation_parameters: the
// request's parameters the proxy read, as a JSON object ("" when none).
func invocationParameters(c event.LLMCall) string {
	var parts []string
	if c.MaxTokens > 0 {
		parts = append(parts, `"max_tokens":`+strconv.FormatInt(c.MaxTokens, 10))
	}
	if c.Stream {
		parts = append(parts, `"stream":true`)
	}
	if c.HasTemperature {
		parts = append(parts, `"temperature":`+jsonNumber(c.Temperature))
	}
	if c.HasTopP {
		parts = append(parts, `"top_p":`+jsonNumber(c.TopP))
	}
	if c.HasTopK {
		parts = append(parts, `"top_k":`+strconv.FormatInt(c.TopK, 10))
	}
	if c.HasSeed {
		parts = append(parts, `"seed":`+strconv.FormatInt(c.Seed, 10))
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// jsonNumber writes f as a JSON number (shortest form; never NaN or
// infinite: it was read from JSON).
func jsonNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// llmSpanName follows the GenAI convention "{operation} {request model}".
func llmSpanName(c event.LLMCall) string {
	if m := modelOf(c); m != "" {
		return "chat " + m
	}
	return "chat"
}

func (r *Recorder) llmTelemetry(s *llmSpan) telemetry.Span {
	c := s.call
	end := c.End
	if end.IsZero() {
		end = c.Start
	}
	sp := r.span(s.id, s.parent, llmSpanName(c), telemetry.SpanLLMCall, telemetry.OILLM, trace.SpanKindClient, c.Start, end)
	a := []attribute.KeyValue{
		telemetry.GenAIOperationName.String("chat"),
		telemetry.GenAIProviderName.String(c.Provider),
		telemetry.OILLMProvider.String(c.Provider),
		telemetry.OILLMSystem.String(c.Provider),
		telemetry.LLMAPI.String(c.API),
		telemetry.HTTPRequestMethod.String(c.Method),
		telemetry.URLPath.String(c.Path),
		telemetry.GenAIRequestStream.Bool(c.Stream),
		telemetry.LLMRequestBytes.Int64(c.RequestBytes),
		telemetry.LLMResponseBytes.Int64(c.ResponseBytes),
		telemetry.LLMUsageKnown.Bool(c.UsageKnown),
		telemetry.LLMAttributedBy.String(s.by),
	}
	if c.PID != 0 {
		a = append(a, telemetry.ProcessPID.Int(int(c.PID)))
	}
	if c.ServerAddress != "" { // the provider's API host the proxy forwarded to
		a = append(a, telemetry.ServerAddress.String(c.ServerAddress), telemetry.ServerPort.Int(c.ServerPort))
	}
	if c.MaxTokens > 0 {
		a = append(a, telemetry.GenAIRequestMaxTokens.Int64(c.MaxTokens))
	}
	if c.HasTemperature {
		a = append(a, telemetry.GenAIRequestTemperature.Float64(c.Temperature))
	}
	if c.HasTopP {
		a = append(a, telemetry.GenAIRequestTopP.Float64(c.TopP))
	}
	if c.HasTopK {
		a = append(a, telemetry.GenAIRequestTopK.Float64(float64(c.TopK))) // a double in the convention
	}
	if c.HasSeed {
		a = append(a, telemetry.GenAIRequestSeed.Int64(c.Seed))
	}
	if len(c.StopSequences) > 0 { // full capture only: content
		stops := make([]string, len(c.StopSequences))
		for i, v := range c.StopSequences {
			stops[i] = r.capturedText(v, c.ContentLimit)
		}
		a = append(a, telemetry.GenAIRequestStopSequences.StringSlice(stops))
	}
	// Every call is recorded: the sampling decision is always yes, and
	// the tier says what of it was kept.
	a = append(a, telemetry.LLMSampled.Bool(true), telemetry.CaptureContent.String(llmCaptureTier(c)))
	a = appendNonEmpty(a, telemetry.GenAIRequestModel, c.RequestModel)
	a = appendNonEmpty(a, telemetry.GenAIResponseModel, c.ResponseModel)
	a = appendNonEmpty(a, telemetry.OILLMModelName, modelOf(c))
	a = appendNonEmpty(a, telemetry.GenAIResponseID, c.ResponseID)
	a = appendNonEmpty(a, telemetry.GenAIConversationID, c.SessionID)
	if len(c.FinishReasons) > 0 {
		a = append(a, telemetry.GenAIResponseFinishReasons.StringSlice(c.FinishReasons), telemetry.OILLMFinishReason.String(c.FinishReasons[0]))
	}
	if p := invocationParameters(c); p != "" {
		a = append(a, telemetry.OILLMInvocationParameters.String(p))
	}
	if c.Status != 0 {
		a = append(a, telemetry.HTTPResponseStatusCode.Int(c.Status))
	}
	failed := llmFailed(c)
	if failed && c.HasRetryAfter {
		a = append(a, telemetry.LLMRetryAfterS.Float64(c.RetryAfter.Seconds()))
	}
	switch {
	case c.Guardrail != "":
		a = append(a, telemetry.LLMGuardrail.String(c.Guardrail))
	case !failed:
		a = append(a, telemetry.LLMGuardrail.String(telemetry.GuardrailNone))
	}
	if c.Stream && !c.FirstByte.IsZero() { // a first chunk only streams have
		ttft := max(c.FirstByte.Sub(c.Start), 0)
		a = append(a,
			telemetry.LLMTTFTMillis.Float64(float64(ttft)/float64(time.Millisecond)),
			telemetry.GenAIResponseTimeToFirst.Float64(ttft.Seconds()))
	}
	if c.UsageKnown {
		a = append(a,
			telemetry.GenAIUsageInputTokens.Int64(c.InputTokens),
			telemetry.GenAIUsageOutputTokens.Int64(c.OutputTokens),
			telemetry.GenAIUsageCacheReadTokens.Int64(c.CacheReadTokens),
			telemetry.GenAIUsageCacheCreateTokens.Int64(c.CacheCreationTokens),
			telemetry.OILLMTokensPrompt.Int64(c.InputTokens),
			telemetry.OILLMTokensCompletion.Int64(c.OutputTokens),
			telemetry.OILLMTokensTotal.Int64(c.InputTokens+c.OutputTokens),
			telemetry.OILLMTokensCacheRead.Int64(c.CacheReadTokens),
			telemetry.OILLMTokensCacheWrite.Int64(c.CacheCreationTokens),
		)
		if c.ReasoningTokens > 0 { // only what the provider reported
			a = append(a, telemetry.GenAIUsageReasoningTokens.Int64(c.ReasoningTokens), telemetry.OILLMTokensReasoning.Int64(c.ReasoningTokens))
		}
	}
	if s.priced {
		a = append(a, telemetry.CostUSD.Float64(s.cost), telemetry.OILLMCostTotal.Float64(s.cost), telemetry.CostSource.String(s.source))
		if s.hasParts {
			a = append(a, telemetry.OILLMCostPrompt.Float64(s.parts.Prompt), telemetry.OILLMCostCompletion.Float64(s.parts.Completion))
		}
	}
	a = appendNonEmpty(a, telemetry.PromptSHA256, c.PromptSHA256)
	a = appendNonEmpty(a, telemetry.SystemPromptSHA256, c.SystemPromptSHA256)
	a = appendNonEmpty(a, telemetry.LLMTemplateSHA256, c.TemplateSHA256)
	a = appendNonEmpty(a, telemetry.LLMToolsSHA256, c.ToolsSHA256)
	if c.ToolResultCount > 0 {
		ids := make([]string, 0, len(c.ToolResults))
		for _, tr := range c.ToolResults {
			ids = append(ids, tr.ToolCallID)
		}
		a = append(a,
			telemetry.LLMContextToolResultIDs.StringSlice(ids),
			telemetry.LLMContextToolResults.Int(c.ToolResultCount),
			telemetry.LLMContextToolErrors.Int(c.ToolErrorCount))
	}
	for _, l := range s.from {
		sp.Links = append(sp.Links, telemetry.Link{TraceID: r.traceID, SpanID: l.span.id, Attrs: []attribute.KeyValue{
			telemetry.LinkRelation.String(telemetry.LinkToolResultOf),
			telemetry.LLMContextToolResultIDs.StringSlice(l.ids),
		}})
	}
	if s.retryOf != nil {
		sp.Links = append(sp.Links, telemetry.Link{TraceID: r.traceID, SpanID: s.retryOf.id, Attrs: []attribute.KeyValue{
			telemetry.LinkRelation.String(telemetry.LinkRetryOf),
		}})
		a = append(a,
			telemetry.LLMRetryCount.Int(s.retries),
			telemetry.LLMRetryWastedTokens.Int64(s.wastedTok),
			telemetry.LLMRetryWastedUSD.Float64(s.wastedUSD))
	}
	if len(c.ToolsOffered) > 0 {
		a = append(a, telemetry.LLMToolsOffered.StringSlice(c.ToolsOffered))
	}
	if len(c.ToolCalls) > 0 {
		names := make([]string, len(c.ToolCalls))
		ids := make([]string, len(c.ToolCalls))
		args := make([]string, len(c.ToolCalls)) // full capture only: parallel to names
		captured := false
		for i, tc := range c.ToolCalls {
			names[i], ids[i], args[i] = tc.Name, tc.ID, r.capturedText(tc.Arguments, c.ContentLimit)
			captured = captured || tc.Arguments != ""
		}
		a = append(a, telemetry.LLMToolCallNames.StringSlice(names), telemetry.LLMToolCallIDs.StringSlice(ids))
		if captured {
			a = append(a, telemetry.LLMToolCallArgs.StringSlice(args))
		}
	}
	if s.repeat > 0 {
		a = append(a, telemetry.LLMRepeat.Int(s.repeat))
	}
	// Content exists only in full capture, bounded by the proxy, which
	// never redacts: redacted here, then cut to its limit.
	a = appendNonEmpty(a, telemetry.LLMPrompt, r.capturedText(c.Prompt, c.ContentLimit))
	a = appendNonEmpty(a, telemetry.LLMResponse, r.capturedText(c.Response, c.ContentLimit))
	if c.ErrorType != "" {
		a = append(a, telemetry.ErrorType.String(c.ErrorType))
		sp.Status, sp.StatusMessage = codes.Error, c.ErrorType
	}
	sp.Attrs = append(sp.Attrs, a...)
	return sp
}

// finishLLM adds the model-call spans (before finishPolicy, which places
// their alerts) and the root's totals.
func (r *Recorder) finishLLM(t *telemetry.Trace) {
	root := &t.Spans[0]
	if len(r.info.LLMProxy) > 0 {
		root.SetAttr(telemetry.LLMProxyEndpoints.StringSlice(r.info.LLMProxy))
	}
	st := r.llm
	if st == nil {
		if len(r.info.LLMProxy) > 0 {
			root.SetAttr(telemetry.LLMCalls.Int(0)) // the proxy ran and saw nothing: evidence, not a gap
		}
		return
	}
	r.applyAgentCosts()
	retries, wastedTok, wastedUSD := st.finishRetries()
	for _, s := range st.calls {
		t.Spans = append(t.Spans, r.llmTelemetry(s))
	}
	root = &t.Spans[0]
	root.SetAttr(telemetry.LLMCalls.Int(len(st.calls)))
	if st.other > 0 {
		root.SetAttr(telemetry.LLMOtherRequests.Int(st.other))
	}
	if st.session != "" {
		root.SetAttr(telemetry.GenAIConversationID.String(st.session))
	}
	if len(st.calls) == 0 {
		return
	}
	root.SetAttr(telemetry.GenAIUsageInputTokens.Int64(st.in))
	root.SetAttr(telemetry.GenAIUsageOutputTokens.Int64(st.out))
	if st.unpriced < len(st.calls) {
		root.SetAttr(telemetry.CostUSD.Float64(st.cost))
		root.SetAttr(telemetry.CostSource.String(costSource(st.table, st.agent)))
	}
	root.SetAttr(telemetry.LLMCallsUnpriced.Int(st.unpriced))
	root.SetAttr(telemetry.LLMRetryCalls.Int(retries))
	root.SetAttr(telemetry.LLMRetryWastedTokens.Int64(wastedTok))
	root.SetAttr(telemetry.LLMRetryWastedUSD.Float64(wastedUSD))
	if v := st.prices.Version; v != "" {
		root.SetAttr(telemetry.CostPriceTable.String(strings.TrimSpace(v)))
	}
}

// llmCaptureTier is the agentwatch.capture.content of one call: full
// when the proxy metered it in full capture (or content came with it).
func llmCaptureTier(c event.LLMCall) string {
	full := c.ContentCaptured || c.Prompt != "" || c.Response != "" || len(c.StopSequences) > 0
	for _, tc := range c.ToolCalls {
		full = full || tc.Arguments != ""
	}
	return Capture{Full: full}.Mode()
}

// capturedText is a text the model-call sensor captured (full capture):
// through the content redactor first, then cut to limit bytes (0: no cut)
// without splitting a character — the cut after the redaction, so no half
// of a secret survives it.
func (r *Recorder) capturedText(s string, limit int) string {
	if s == "" {
		return s
	}
	s = r.redactor().Content(s)
	if limit > 0 && len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
