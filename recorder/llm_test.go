package recorder

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// llmFixture: claude (pid 100) makes a streamed Anthropic call with cache
// tokens, its Bash tool runs a python script (pid 101) that calls OpenAI,
// and a call whose pid the proxy could not resolve arrives at the end.
func llmFixture() []event.Event {
	return []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "fix the flaky test"),
		event.LLMCall{
			Header: hdr(10, 100), Start: at(10), FirstByte: at(35), End: at(90),
			Provider: "anthropic", API: "messages", Method: "POST", Path: "/v1/messages", Status: 200, Stream: true,
			RequestModel: "claude-sonnet-4-5", ResponseModel: "claude-sonnet-4-5-20250929", ResponseID: "msg_01",
			FinishReasons: []string{"tool_use"},
			InputTokens:   1234 + 100 + 50, OutputTokens: 56, CacheReadTokens: 100, CacheCreationTokens: 50, UsageKnown: true,
			RequestBytes: 5120, ResponseBytes: 2048, PromptSHA256: "aa11", SystemPromptSHA256: "bb22",
			ToolsOffered: []string{"Bash", "Read"}, ToolCalls: []event.ToolCall{{ID: "toolu_1", Name: "Bash"}},
			SessionID: "sess-42", ServerAddress: "api.anthropic.com", ServerPort: 443, MaxTokens: 32000,
		},
		event.LLMCall{Header: hdr(11, 100), Start: at(11), End: at(12), Provider: "anthropic", API: "count_tokens",
			Method: "POST", Path: "/v1/messages/count_tokens", Status: 200},
		event.LLMCall{Header: hdr(12, 100), Start: at(12), End: at(13), Provider: "anthropic", API: "hello",
			Method: "HEAD", Path: "/api/hello", Status: 200},
		fork(20, 101, 100),
		exec(21, 101, 100, "/usr/bin/python3", ws, "python3", "ask.py"),
		event.LLMCall{
			Header: hdr(30, 101), Start: at(30), FirstByte: at(70), End: at(70),
			Provider: "openai", API: "chat.completions", Method: "POST", Path: "/v1/chat/completions", Status: 200,
			RequestModel: "gpt-4o-mini", ResponseModel: "gpt-4o-mini-2024-07-18", ResponseID: "chatcmpl-9",
			FinishReasons: []string{"stop"}, InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 200,
			ReasoningTokens: 0, UsageKnown: true, PromptSHA256: "cc33",
		},
		exit(80, 101, 0, 0),
		event.LLMCall{ // pid unknown: under the process agentwatch launched
			Start: at(91), FirstByte: at(92), End: at(95), Provider: "anthropic", API: "messages", Method: "POST",
			Path: "/v1/messages", Status: 200, RequestModel: "claude-haiku-4-5", InputTokens: 17, OutputTokens: 3,
			UsageKnown: true, PromptSHA256: "dd44",
		},
		exit(99, 100, 0, 0),
	}
}

func llmSpans(tr *telemetry.Trace) []*telemetry.Span {
	var out []*telemetry.Span
	for i := range tr.Spans {
		if v, _ := tr.Spans[i].Attr(telemetry.SpanType); v.AsString() == telemetry.SpanLLMCall {
			out = append(out, &tr.Spans[i])
		}
	}
	return out
}

func spanByID(tr *telemetry.Trace, id trace.SpanID) *telemetry.Span {
	for i := range tr.Spans {
		if tr.Spans[i].SpanID == id {
			return &tr.Spans[i]
		}
	}
	return nil
}

func alertRules(s *telemetry.Span) []string {
	var out []string
	for _, e := range s.Events {
		if e.Name != telemetry.EventAlert {
			continue
		}
		for _, a := range e.Attrs {
			if a.Key == telemetry.AlertRule {
				out = append(out, a.Value.AsString())
			}
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestLLMSpans(t *testing.T) {
	info := runInfo()
	info.LLMProxy = []string{"127.0.0.1:4001", "127.0.0.1:4002"}
	tr := record(info, llmFixture(), End{Time: at(100)})
	tree(t, tr) // every parent exists, one root
	spans := llmSpans(tr)
	if len(spans) != 3 {
		t.Fatalf("%d llm spans, want 3 (count_tokens and /api/hello get none)", len(spans))
	}
	wantCost := []float64{
		(1234*3 + 100*0.3 + 50*3.75 + 56*15) / 1e6,
		(800*0.15 + 200*0.075 + 500*0.6) / 1e6,
		(17*1 + 3*5) / 1e6,
	}
	// The input side (cache reads and writes included) and the output side.
	wantPrompt := []float64{(1234*3 + 100*0.3 + 50*3.75) / 1e6, (800*0.15 + 200*0.075) / 1e6, 17 * 1 / 1e6}
	wantCompletion := []float64{56 * 15 / 1e6, 500 * 0.6 / 1e6, 3 * 5 / 1e6}
	parents := []string{"bash_command claude", "bash_command python3", "bash_command claude"}
	by := []string{"pid", "pid", "root_process"}
	for i, s := range spans {
		if s.Kind != trace.SpanKindClient {
			t.Errorf("%s: kind %v, want client", s.Name, s.Kind)
		}
		if p := spanByID(tr, s.ParentID); p == nil || label(p) != parents[i] {
			t.Errorf("%s #%d: parent %v, want %s", s.Name, i, p, parents[i])
		}
		v, ok := s.Attr(telemetry.CostUSD)
		if !ok || !near(v.AsFloat64(), wantCost[i]) {
			t.Errorf("%s: cost %v (set %v), want %v", s.Name, v.AsFloat64(), ok, wantCost[i])
		}
		if v, _ := s.Attr(telemetry.OILLMCostTotal); !near(v.AsFloat64(), wantCost[i]) {
			t.Errorf("%s: llm.cost.total %v, want %v", s.Name, v.AsFloat64(), wantCost[i])
		}
		if v, ok := s.Attr(telemetry.OILLMCostPrompt); !ok || !near(v.AsFloat64(), wantPrompt[i]) {
			t.Errorf("%s: llm.cost.prompt %v (set %v), want %v", s.Name, v.AsFloat64(), ok, wantPrompt[i])
		}
		if v, ok := s.Attr(telemetry.OILLMCostCompletion); !ok || !near(v.AsFloat64(), wantCompletion[i]) {
			t.Errorf("%s: llm.cost.completion %v (set %v), want %v", s.Name, v.AsFloat64(), ok, wantCompletion[i])
		}
		wantAttrs(t, s, map[attribute.Key]string{telemetry.LLMAttributedBy: by[i]})
		if len(s.Events) != 0 {
			t.Errorf("%s: unexpected events %v", s.Name, s.Events)
		}
	}
	wantAttrs(t, spans[0], map[attribute.Key]string{
		telemetry.SpanType:                    "llm_call",
		telemetry.OpenInferenceKind:           "LLM",
		telemetry.GenAIOperationName:          "chat",
		telemetry.GenAIProviderName:           "anthropic",
		telemetry.GenAIRequestModel:           "claude-sonnet-4-5",
		telemetry.GenAIResponseModel:          "claude-sonnet-4-5-20250929",
		telemetry.GenAIResponseID:             "msg_01",
		telemetry.GenAIResponseFinishReasons:  `["tool_use"]`,
		telemetry.GenAIUsageInputTokens:       "1384",
		telemetry.GenAIUsageOutputTokens:      "56",
		telemetry.GenAIUsageCacheReadTokens:   "100",
		telemetry.GenAIUsageCacheCreateTokens: "50",
		telemetry.GenAIUsageReasoningTokens:   "<unset>", // the provider reported none
		telemetry.GenAIConversationID:         "sess-42",
		telemetry.ServerAddress:               "api.anthropic.com",
		telemetry.ServerPort:                  "443",
		telemetry.GenAIRequestMaxTokens:       "32000",
		telemetry.OILLMModelName:              "claude-sonnet-4-5",
		telemetry.OILLMFinishReason:           "tool_use",
		telemetry.OILLMInvocationParameters:   `{"max_tokens":32000,"stream":true}`,
		telemetry.OILLMProvider:               "anthropic",
		telemetry.OILLMSystem:                 "anthropic",
		telemetry.OILLMTokensPrompt:           "1384",
		telemetry.OILLMTokensCompletion:       "56",
		telemetry.OILLMTokensTotal:            "1440",
		telemetry.OILLMTokensCacheRead:        "100",
		telemetry.OILLMTokensCacheWrite:       "50",
		telemetry.HTTPResponseStatusCode:      "200",
		telemetry.PromptSHA256:                "aa11",
		telemetry.SystemPromptSHA256:          "bb22",
		telemetry.LLMRequestBytes:             "5120",
		telemetry.LLMResponseBytes:            "2048",
		telemetry.LLMToolsOffered:             `["Bash","Read"]`,
		telemetry.LLMToolCallNames:            `["Bash"]`,
		telemetry.LLMToolCallIDs:              `["toolu_1"]`,
		telemetry.LLMTTFTMillis:               "25",
		telemetry.GenAIRequestStream:          "true",
		telemetry.ProcessPID:                  "100",
		telemetry.ErrorType:                   "<unset>",
		telemetry.LLMToolCallArgs:             "<unset>", // metadata capture
		telemetry.LLMPrompt:                   "<unset>",
		telemetry.LLMGuardrail:                "none",
		telemetry.LLMSampled:                  "true",
		telemetry.CaptureContent:              "metadata",
		telemetry.LLMRetryCount:               "<unset>",
		telemetry.LLMTemplateSHA256:           "<unset>", // the fixture has none
	})
	if spans[0].Name != "chat claude-sonnet-4-5" || spans[1].Name != "chat gpt-4o-mini" {
		t.Errorf("names %q, %q", spans[0].Name, spans[1].Name)
	}
	if d := spans[0].End.Sub(spans[0].Start); d != 80e6 {
		t.Errorf("duration %v, want 80ms", d)
	}
	wantAttrs(t, spans[1], map[attribute.Key]string{
		telemetry.GenAIProviderName:         "openai",
		telemetry.GenAIUsageInputTokens:     "1000",
		telemetry.OILLMTokensTotal:          "1500",
		telemetry.LLMToolCallNames:          "<unset>",
		telemetry.GenAIResponseTimeToFirst:  "<unset>", // not streamed: no first chunk
		telemetry.LLMTTFTMillis:             "<unset>",
		telemetry.GenAIRequestMaxTokens:     "<unset>",
		telemetry.OILLMFinishReason:         "stop",
		telemetry.OILLMInvocationParameters: "<unset>", // neither max_tokens nor a stream
	})

	root := &tr.Spans[0]
	wantAttrs(t, root, map[attribute.Key]string{
		telemetry.LLMCalls:               "3",
		telemetry.LLMOtherRequests:       "2",
		telemetry.LLMCallsUnpriced:       "0",
		telemetry.GenAIUsageInputTokens:  "2401",
		telemetry.GenAIUsageOutputTokens: "559",
		telemetry.GenAIConversationID:    "sess-42",
		telemetry.LLMProxyEndpoints:      `["127.0.0.1:4001","127.0.0.1:4002"]`,
		telemetry.CostPriceTable:         prices.Builtin().Version,
		telemetry.GenAIRequestModel:      "<unset>", // Langfuse: the root is not a generation
		telemetry.LLMRetryCalls:          "0",
		telemetry.LLMRetryWastedTokens:   "0",
		telemetry.LLMRetryWastedUSD:      "0",
	})
	if v, _ := root.Attr(telemetry.CostUSD); !near(v.AsFloat64(), wantCost[0]+wantCost[1]+wantCost[2]) {
		t.Errorf("root cost %v, want %v", v.AsFloat64(), wantCost[0]+wantCost[1]+wantCost[2])
	}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		_, model := s.Attr(telemetry.GenAIRequestModel)
		if model && !strings.HasPrefix(s.Name, "chat") {
			t.Errorf("%s carries %s", label(s), telemetry.GenAIRequestModel)
		}
	}
}

// call is a successful streamed Anthropic call of claude (pid 100).
func call(n int, model string, in, out int64, sha string) event.LLMCall {
	return event.LLMCall{
		Header: hdr(n, 100), Start: at(n), FirstByte: at(n + 1), End: at(n + 2),
		Provider: "anthropic", API: "messages", Method: "POST", Path: "/v1/messages", Status: 200, Stream: true,
		RequestModel: model, InputTokens: in, OutputTokens: out, UsageKnown: in+out > 0, PromptSHA256: sha,
	}
}

func TestLLMAlertsAndErrors(t *testing.T) {
	withEnd := func(c event.LLMCall, status int, errType string) event.LLMCall {
		c.Status, c.ErrorType = status, errType
		return c
	}
	noUsage := call(40, "claude-sonnet-4-5", 0, 0, "n1")
	noModelPrice := call(50, "claude-from-the-future-9", 100, 10, "u1")
	tests := []struct {
		name      string
		spend     float64
		retries   int
		calls     []event.LLMCall
		wantRules [][]string // per llm span
		wantCost  []bool
		rootCost  string // agentwatch.cost.usd on the root, Emit form; "<unset>" when no call was priced
		unpriced  string
	}{
		{
			name:      "unknown model: no cost, missing_cost_data",
			calls:     []event.LLMCall{noModelPrice},
			wantRules: [][]string{{telemetry.AlertMissingCostData}},
			wantCost:  []bool{false}, rootCost: "<unset>", unpriced: "1",
		},
		{
			name:      "success without usage: missing_cost_data",
			calls:     []event.LLMCall{noUsage, call(45, "claude-haiku-4-5", 1e6, 0, "h1")},
			wantRules: [][]string{{telemetry.AlertMissingCostData}, nil},
			wantCost:  []bool{false, true}, rootCost: "1", unpriced: "1",
		},
		{
			name: "upstream errors: error.type, no cost, no alert",
			calls: []event.LLMCall{
				withEnd(call(10, "claude-sonnet-4-5", 0, 0, "e1"), 429, "http_429"),
				withEnd(call(20, "claude-sonnet-4-5", 0, 0, "e2"), 0, "upstream_unreachable"),
			},
			wantRules: [][]string{nil, nil},
			wantCost:  []bool{false, false}, rootCost: "<unset>", unpriced: "2",
		},
		{
			name:  "runaway spend fires once, on the call that crossed",
			spend: 4,
			calls: []event.LLMCall{
				call(10, "claude-haiku-4-5", 3e6, 0, "s1"), // $3
				call(20, "claude-haiku-4-5", 2e6, 0, "s2"), // $5: over
				call(30, "claude-haiku-4-5", 1e6, 0, "s3"), // $6
			},
			wantRules: [][]string{nil, {telemetry.AlertRunawaySpend}, nil},
			wantCost:  []bool{true, true, true}, rootCost: "6", unpriced: "0",
		},
		{
			name:    "identical requests: retries_without_progress at the threshold",
			retries: 3,
			calls: []event.LLMCall{
				call(10, "claude-haiku-4-5", 10, 1, "same"),
				call(20, "claude-haiku-4-5", 10, 1, "other"),
				call(30, "claude-haiku-4-5", 10, 1, "same"),
				call(40, "claude-haiku-4-5", 10, 1, "same"),
				call(50, "claude-haiku-4-5", 10, 1, "same"),
			},
			wantRules: [][]string{nil, nil, nil, {telemetry.AlertRetries}, nil},
			wantCost:  []bool{true, true, true, true, true}, rootCost: fmt.Sprint(5 * (10*1 + 1*5) / 1e6), unpriced: "0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := runInfo()
			info.Policy = policy.Default()
			info.Policy.Alerts.SpendUSD = tc.spend
			info.Policy.Alerts.RetriesWithoutProgress = tc.retries
			evs := []event.Event{fork(1, 100, 1), exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x")}
			for _, c := range tc.calls {
				evs = append(evs, c)
			}
			tr := record(info, evs, End{Time: at(100)})
			spans := llmSpans(tr)
			if len(spans) != len(tc.calls) {
				t.Fatalf("%d llm spans, want %d", len(spans), len(tc.calls))
			}
			for i, s := range spans {
				if got := alertRules(s); fmt.Sprint(got) != fmt.Sprint(tc.wantRules[i]) && !(len(got) == 0 && len(tc.wantRules[i]) == 0) {
					t.Errorf("span %d alerts %v, want %v", i, got, tc.wantRules[i])
				}
				if _, ok := s.Attr(telemetry.CostUSD); ok != tc.wantCost[i] {
					t.Errorf("span %d cost set = %v, want %v", i, ok, tc.wantCost[i])
				}
				c := tc.calls[i]
				if c.ErrorType != "" {
					wantAttrs(t, s, map[attribute.Key]string{telemetry.ErrorType: c.ErrorType})
					if s.Status != codes.Error {
						t.Errorf("span %d status %v, want error", i, s.Status)
					}
				}
				if !c.UsageKnown {
					wantAttrs(t, s, map[attribute.Key]string{
						telemetry.GenAIUsageInputTokens: "<unset>", telemetry.LLMUsageKnown: "false",
					})
				}
			}
			wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{telemetry.LLMCallsUnpriced: tc.unpriced})
			if tc.spend > 0 { // failure.go reads the root's cost
				wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{telemetry.FailureClass: telemetry.FailureBudgetBreach})
			}
			v, ok := tr.Spans[0].Attr(telemetry.CostUSD)
			switch want, err := strconv.ParseFloat(tc.rootCost, 64); {
			case err != nil && ok:
				t.Errorf("root cost %v, want none", v.AsFloat64())
			case err == nil && (!ok || !near(v.AsFloat64(), want)):
				t.Errorf("root cost %v (set %v), want %v", v.AsFloat64(), ok, want)
			}
		})
	}
}

// Full capture: content the proxy passed (already redacted) lands on the
// span; a dropped environment value inside it is still replaced.
func TestLLMFullCaptureContent(t *testing.T) {
	info := runInfo()
	info.RedactValues = []string{"s3cr3t-db-pass"}
	c := call(10, "claude-haiku-4-5", 10, 1, "p1")
	c.Prompt = "connect with s3cr3t-db-pass please"
	c.Response = "ok"
	c.ToolCalls = []event.ToolCall{{ID: "t1", Name: "Bash", Arguments: `{"command":"ls"}`}, {ID: "t2", Name: "Read"}}
	tr := record(info, []event.Event{fork(1, 100, 1), exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude"), c}, End{Time: at(100)})
	s := llmSpans(tr)[0]
	wantAttrs(t, s, map[attribute.Key]string{
		telemetry.LLMPrompt:        "connect with [REDACTED] please",
		telemetry.LLMResponse:      "ok",
		telemetry.LLMToolCallArgs:  `["{\"command\":\"ls\"}",""]`,
		telemetry.LLMToolCallNames: `["Bash","Read"]`,
	})
}

// No model call at all: the root says the proxy saw none, and has no cost.
func TestLLMNoCalls(t *testing.T) {
	info := runInfo()
	info.LLMProxy = []string{"127.0.0.1:4001"}
	tr := record(info, []event.Event{fork(1, 100, 1), exec(2, 100, 1, "/bin/true", ws, "true")}, End{Time: at(10)})
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{
		telemetry.LLMCalls: "0", telemetry.CostUSD: "<unset>", telemetry.GenAIUsageInputTokens: "<unset>",
	})
}

// TestCapturedTextRedactedThenCut: the model-call sensor hands over
// captured text bounded but not redacted; the recorder redacts each text
// (dropped values, token shapes) and only then cuts it to ContentLimit,
// so no half of a secret straddling the limit survives.
func TestCapturedTextRedactedThenCut(t *testing.T) {
	const secret = "sk-ant-api03-PLANTED-SECRET-0123456789abcdef"
	const dropped = "value-of-DROPPED-var-1234"
	info := runInfo()
	info.RedactValues = []string{dropped}
	info.Capture = Capture{Full: true, Until: at(1000)}
	r := New(info)
	r.Add(fork(1, 100, 1))
	r.Add(exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude"))
	r.Add(event.LLMCall{
		Header: hdr(10, 100), Start: at(10), End: at(20), Provider: "anthropic", API: "messages", Status: 200,
		RequestModel: "claude-haiku-4-5", ContentLimit: 20,
		Prompt:    "my key is " + secret,
		Response:  "token: " + secret + " é",
		ToolCalls: []event.ToolCall{{ID: "t1", Name: "Bash", Arguments: `{"command":"echo ` + dropped + `"}`}},
	})
	tr := r.Finish(End{Time: at(30)})
	var chat *telemetry.Span
	for i := range tr.Spans {
		if agAttr(&tr.Spans[i], telemetry.SpanType) == telemetry.SpanLLMCall {
			chat = &tr.Spans[i]
		}
	}
	if chat == nil {
		t.Fatal("no llm_call span")
	}
	for _, k := range []attribute.Key{telemetry.LLMPrompt, telemetry.LLMResponse, telemetry.LLMToolCallArgs} {
		v := agAttr(chat, k)
		if v == "" || len(v) > 20 && k != telemetry.LLMToolCallArgs || strings.Contains(v, "PLANTED") || strings.Contains(v, "sk-ant") || strings.Contains(v, dropped) || !utf8.ValidString(v) {
			t.Errorf("%s = %q: over the limit, not whole characters, or a piece of a secret survived", k, v)
		}
	}
	if got := agAttr(chat, telemetry.LLMResponse); !strings.HasPrefix(got, "token: [REDACTED") {
		t.Errorf("response %q: want the secret redacted before the cut", got)
	}
}
