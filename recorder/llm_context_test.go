package recorder

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

func claudeStart() []event.Event {
	return []event.Event{fork(1, 100, 1), exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x")}
}

// links lists a span's links as "relation→span name#index" for the
// spans given, with the link's tool result ids when it has them.
func links(s *telemetry.Span, spans []*telemetry.Span) []string {
	var out []string
	for _, l := range s.Links {
		to := "?"
		for i, o := range spans {
			if o.SpanID == l.SpanID && o.TraceID == l.TraceID {
				to = fmt.Sprint(i)
			}
		}
		d := l.Attr(telemetry.LinkRelation) + "→" + to
		for _, kv := range l.Attrs {
			if kv.Key == telemetry.LLMContextToolResultIDs {
				d += " " + kv.Value.Emit()
			}
		}
		out = append(out, d)
	}
	return out
}

// TestLLMToolResultLinks: a request carrying tool results links to the
// call(s) whose response asked for those tool calls, and says how many
// results and errors it carried.
func TestLLMToolResultLinks(t *testing.T) {
	a := call(10, "claude-haiku-4-5", 10, 1, "a")
	a.ToolCalls = []event.ToolCall{{ID: "toolu_1", Name: "Bash"}, {ID: "toolu_2", Name: "Read"}}
	b := call(20, "claude-haiku-4-5", 10, 1, "b")
	b.ToolResults = []event.ToolResult{{ToolCallID: "toolu_1", IsError: true}, {ToolCallID: "toolu_2"}}
	b.ToolResultCount, b.ToolErrorCount = 2, 1
	b.ToolCalls = []event.ToolCall{{ID: "toolu_3", Name: "Bash"}}
	// Side work (a subagent) answering its own call, between the two.
	side := call(25, "claude-haiku-4-5", 10, 1, "s")
	side.ToolCalls = []event.ToolCall{{ID: "toolu_s", Name: "Grep"}}
	c := call(30, "claude-haiku-4-5", 10, 1, "c")
	// toolu_x: a call the proxy never saw (before the run, or past the bound).
	c.ToolResults = []event.ToolResult{{ToolCallID: "toolu_3"}, {ToolCallID: "toolu_s"}, {ToolCallID: "toolu_x"}}
	c.ToolResultCount = 3
	d := call(40, "claude-haiku-4-5", 10, 1, "d") // a new user turn: no results
	tr := record(runInfo(), append(claudeStart(), a, b, side, c, d), End{Time: at(100)})
	spans := llmSpans(tr)
	if len(spans) != 5 {
		t.Fatalf("%d llm spans", len(spans))
	}
	want := [][]string{
		nil,
		{`tool_result_of→0 ["toolu_1","toolu_2"]`},
		nil,
		{`tool_result_of→1 ["toolu_3"]`, `tool_result_of→2 ["toolu_s"]`},
		nil,
	}
	for i, s := range spans {
		if got := links(s, spans); fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Errorf("span %d links %v, want %v", i, got, want[i])
		}
	}
	wantAttrs(t, spans[1], map[attribute.Key]string{
		telemetry.LLMContextToolResultIDs: `["toolu_1","toolu_2"]`,
		telemetry.LLMContextToolResults:   "2",
		telemetry.LLMContextToolErrors:    "1",
	})
	wantAttrs(t, spans[3], map[attribute.Key]string{
		telemetry.LLMContextToolResultIDs: `["toolu_3","toolu_s","toolu_x"]`,
		telemetry.LLMContextToolResults:   "3",
		telemetry.LLMContextToolErrors:    "0",
	})
	wantAttrs(t, spans[4], map[attribute.Key]string{
		telemetry.LLMContextToolResultIDs: "<unset>",
		telemetry.LLMContextToolResults:   "<unset>",
		telemetry.LLMContextToolErrors:    "<unset>",
	})
}

// TestLLMRetries: a request body sent again is a retry of the previous
// attempt, after a failure or a success; its span links to that attempt
// and carries the earlier attempts' tokens and cost as waste; the root
// counts retries and every retried attempt's waste once.
func TestLLMRetries(t *testing.T) {
	failed := call(10, "claude-haiku-4-5", 0, 0, "X")
	failed.Status, failed.ErrorType, failed.Stream, failed.FirstByte = 429, "http_429", false, time.Time{}
	failed.RetryAfter, failed.HasRetryAfter = 7*time.Second, true
	ok := call(20, "claude-haiku-4-5", 100, 10, "X") // $(100·1 + 10·5)/1e6
	again := call(30, "claude-haiku-4-5", 100, 10, "X")
	third := call(40, "claude-haiku-4-5", 100, 10, "X")
	other := call(50, "claude-haiku-4-5", 100, 10, "Y")
	tr := record(runInfo(), append(claudeStart(), failed, ok, again, third, other), End{Time: at(100)})
	spans := llmSpans(tr)
	if len(spans) != 5 {
		t.Fatalf("%d llm spans", len(spans))
	}
	const cost = (100*1 + 10*5) / 1e6
	want := []struct {
		links              []string
		count, tok, usd    string
		retryAfter, repeat string
	}{
		{nil, "<unset>", "<unset>", "<unset>", "7", "<unset>"},
		{[]string{"retry_of→0"}, "1", "0", "0", "<unset>", "1"},
		{[]string{"retry_of→1"}, "2", "110", fmt.Sprint(cost), "<unset>", "2"},
		{[]string{"retry_of→2"}, "3", "220", fmt.Sprint(2 * cost), "<unset>", "3"},
		{nil, "<unset>", "<unset>", "<unset>", "<unset>", "<unset>"},
	}
	for i, s := range spans {
		w := want[i]
		if got := links(s, spans); fmt.Sprint(got) != fmt.Sprint(w.links) {
			t.Errorf("span %d links %v, want %v", i, got, w.links)
		}
		wantAttrs(t, s, map[attribute.Key]string{
			telemetry.LLMRetryCount:        w.count,
			telemetry.LLMRetryWastedTokens: w.tok,
			telemetry.LLMRetryWastedUSD:    w.usd,
			telemetry.LLMRetryAfterS:       w.retryAfter,
			telemetry.LLMRepeat:            w.repeat,
		})
	}
	if spans[0].Status != codes.Error {
		t.Errorf("the 429 span's status %v", spans[0].Status)
	}
	wantAttrs(t, spans[0], map[attribute.Key]string{telemetry.HTTPResponseStatusCode: "429", telemetry.ErrorType: "http_429"})
	// Each attempt that was retried once: 0 + 110 + 110 tokens, not the
	// sum of the spans' cumulative waste.
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{
		telemetry.LLMRetryCalls:        "3",
		telemetry.LLMRetryWastedTokens: "220",
		telemetry.LLMRetryWastedUSD:    fmt.Sprint(2 * cost),
	})

	// No retries: the root says so.
	tr = record(runInfo(), append(claudeStart(), ok, other), End{Time: at(100)})
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{
		telemetry.LLMRetryCalls: "0", telemetry.LLMRetryWastedTokens: "0", telemetry.LLMRetryWastedUSD: "0",
	})
	for _, s := range llmSpans(tr) {
		if len(s.Links) != 0 {
			t.Errorf("%s: links %v", s.Name, s.Links)
		}
	}
}

// A Retry-After on a successful call is not reported (nothing to retry).
func TestLLMRetryAfterOnlyOnFailures(t *testing.T) {
	c := call(10, "claude-haiku-4-5", 10, 1, "r")
	c.RetryAfter, c.HasRetryAfter = time.Second, true
	tr := record(runInfo(), append(claudeStart(), c), End{Time: at(100)})
	wantAttrs(t, llmSpans(tr)[0], map[attribute.Key]string{telemetry.LLMRetryAfterS: "<unset>"})
}

// TestLLMGuardrailAndSampling: every successful call says its guardrail
// (none unless the provider refused or filtered), the span stays OK; a
// failed call carries one only when its error was a filter. Every call is
// sampled, with its capture tier.
func TestLLMGuardrailAndSampling(t *testing.T) {
	plain := call(10, "claude-haiku-4-5", 10, 1, "g1")
	refused := call(20, "claude-haiku-4-5", 10, 0, "g2")
	refused.FinishReasons, refused.Guardrail = []string{"refusal"}, telemetry.GuardrailRefusal
	filtered := call(30, "gpt-4.1", 10, 0, "g3")
	filtered.Provider, filtered.API, filtered.Guardrail = "openai", "chat.completions", telemetry.GuardrailContentFilter
	failed := call(40, "claude-haiku-4-5", 0, 0, "g4")
	failed.Status, failed.ErrorType = 529, "http_529"
	blocked := call(50, "gpt-4.1", 0, 0, "g5")
	blocked.Provider, blocked.API, blocked.Status, blocked.ErrorType, blocked.Guardrail = "openai", "chat.completions", 400, "http_400", telemetry.GuardrailContentFilter
	full := call(60, "claude-haiku-4-5", 10, 1, "g6")
	full.ContentCaptured = true
	tr := record(runInfo(), append(claudeStart(), plain, refused, filtered, failed, blocked, full), End{Time: at(100)})
	spans := llmSpans(tr)
	want := []struct {
		guardrail, tier string
		status          codes.Code
	}{
		{"none", "metadata", codes.Unset},
		{"refusal", "metadata", codes.Unset},
		{"content_filter", "metadata", codes.Unset},
		{"<unset>", "metadata", codes.Error},
		{"content_filter", "metadata", codes.Error},
		{"none", "full", codes.Unset},
	}
	for i, s := range spans {
		wantAttrs(t, s, map[attribute.Key]string{
			telemetry.LLMGuardrail:   want[i].guardrail,
			telemetry.LLMSampled:     "true",
			telemetry.CaptureContent: want[i].tier,
		})
		if s.Status != want[i].status {
			t.Errorf("span %d status %v, want %v", i, s.Status, want[i].status)
		}
	}
}

// TestLLMRequestParameters: sampling parameters as GenAI attributes and
// in llm.invocation_parameters; stop sequences only when the proxy kept
// them (full capture), redacted.
func TestLLMRequestParameters(t *testing.T) {
	const secret = "sk-ant-api03-PLANTED-SECRET-0123456789abcdef"
	c := call(10, "claude-haiku-4-5", 10, 1, "p")
	c.MaxTokens = 100
	c.Temperature, c.HasTemperature = 0, true
	c.TopP, c.HasTopP = 0.9, true
	c.TopK, c.HasTopK = 40, true
	c.Seed, c.HasSeed = 7, true
	c.TemplateSHA256, c.ToolsSHA256, c.SystemPromptSHA256 = "t1", "t2", "t3"
	full := call(20, "claude-haiku-4-5", 10, 1, "q")
	full.ContentCaptured, full.StopSequences = true, []string{"STOP", secret}
	tr := record(runInfo(), append(claudeStart(), c, full), End{Time: at(100)})
	spans := llmSpans(tr)
	wantAttrs(t, spans[0], map[attribute.Key]string{
		telemetry.GenAIRequestTemperature:   "0",
		telemetry.GenAIRequestTopP:          "0.9",
		telemetry.GenAIRequestTopK:          "40",
		telemetry.GenAIRequestSeed:          "7",
		telemetry.GenAIRequestMaxTokens:     "100",
		telemetry.GenAIRequestStopSequences: "<unset>", // metadata: nothing
		telemetry.OILLMInvocationParameters: `{"max_tokens":100,"stream":true,"temperature":0,"top_p":0.9,"top_k":40,"seed":7}`,
		telemetry.LLMTemplateSHA256:         "t1",
		telemetry.LLMToolsSHA256:            "t2",
		telemetry.SystemPromptSHA256:        "t3",
	})
	wantAttrs(t, spans[1], map[attribute.Key]string{
		telemetry.GenAIRequestTemperature:   "<unset>",
		telemetry.OILLMInvocationParameters: `{"stream":true}`,
		telemetry.CaptureContent:            "full",
	})
	v, _ := spans[1].Attr(telemetry.GenAIRequestStopSequences)
	if got := v.AsStringSlice(); len(got) != 2 || got[0] != "STOP" || strings.Contains(got[1], "PLANTED") {
		t.Errorf("stop sequences %q: want both, the secret redacted", got)
	}
}
