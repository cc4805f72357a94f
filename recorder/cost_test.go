package recorder

import (
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
)

// agentCost is Claude Code's api_request record of a call, with its cost.
func agentCost(n int, model string, in, out int64, cost string) *logspb.LogRecord {
	lr := apiRequest(n, model, in, out, 0, trace.SpanID{})
	for _, kv := range lr.Attributes {
		if kv.Key == "cost_usd" {
			kv.Value.Value = kvStr("", cost).Value.Value
		}
	}
	return lr
}

// TestCostSource: a call the price table cannot price takes the agent's
// own figure for the same call (same model and tokens, in the window, each
// record once); the spans and the root say where each cost came from.
func TestCostSource(t *testing.T) {
	const future = "claude-from-the-future-9" // no price
	known := call(10, "claude-sonnet-4-5", 1000, 100, "k1")
	unknown := call(20, future, 500, 50, "u1")
	unknown2 := call(30, future, 500, 50, "u2") // same model and tokens as unknown
	unset := "<unset>"
	type span struct{ cost, source string }
	tests := []struct {
		name  string
		calls []event.LLMCall
		logs  []*logspb.LogRecord
		spans []span // per proxied call, in order
		root  map[attribute.Key]string
		// missing_cost_data alerts on the proxied calls' spans
		alerts int
	}{
		{
			name:  "price table only",
			calls: []event.LLMCall{known},
			spans: []span{{"0.0045", "price_table"}},
			root:  map[attribute.Key]string{telemetry.CostUSD: "0.0045", telemetry.CostSource: "price_table", telemetry.LLMCallsUnpriced: "0", telemetry.LLMCalls: "1"},
		},
		{
			name:  "unknown model, the agent's figure",
			calls: []event.LLMCall{unknown},
			logs:  []*logspb.LogRecord{agentCost(21, future, 500, 50, "0.25")},
			spans: []span{{"0.25", "agent_reported"}},
			root:  map[attribute.Key]string{telemetry.CostUSD: "0.25", telemetry.CostSource: "agent_reported", telemetry.LLMCallsUnpriced: "0", telemetry.LLMCalls: "1"},
		},
		{
			name:  "both: mixed on the root",
			calls: []event.LLMCall{known, unknown},
			logs:  []*logspb.LogRecord{agentCost(11, "claude-sonnet-4-5", 1000, 100, "9.99"), agentCost(21, future, 500, 50, "0.25")},
			spans: []span{{"0.0045", "price_table"}, {"0.25", "agent_reported"}}, // the table's price stands where it has one
			root:  map[attribute.Key]string{telemetry.CostUSD: "0.2545", telemetry.CostSource: "mixed", telemetry.LLMCallsUnpriced: "0", telemetry.LLMCalls: "2"},
		},
		{
			name:   "unknown model, no agent figure: unpriced",
			calls:  []event.LLMCall{known, unknown},
			spans:  []span{{"0.0045", "price_table"}, {unset, unset}},
			root:   map[attribute.Key]string{telemetry.CostUSD: "0.0045", telemetry.CostSource: "price_table", telemetry.LLMCallsUnpriced: "1"},
			alerts: 1,
		},
		{
			name:   "one record prices one call",
			calls:  []event.LLMCall{unknown, unknown2},
			logs:   []*logspb.LogRecord{agentCost(31, future, 500, 50, "0.25")},
			spans:  []span{{unset, unset}, {"0.25", "agent_reported"}}, // the nearer call
			root:   map[attribute.Key]string{telemetry.CostUSD: "0.25", telemetry.CostSource: "agent_reported", telemetry.LLMCallsUnpriced: "1", telemetry.LLMCalls: "2"},
			alerts: 1,
		},
		{
			name:   "other token counts: not the same call",
			calls:  []event.LLMCall{unknown},
			logs:   []*logspb.LogRecord{agentCost(21, future, 501, 50, "0.25")},
			spans:  []span{{unset, unset}},
			root:   map[attribute.Key]string{telemetry.LLMCallsUnpriced: "1", telemetry.LLMCalls: "2", telemetry.CostUSD: "0.25", telemetry.CostSource: "agent_reported"}, // the record is a call of its own
			alerts: 1,
		},
		{
			name:   "outside the window: not the same call",
			calls:  []event.LLMCall{unknown},
			logs:   []*logspb.LogRecord{agentCost(20+int(event.MatchWindow.Milliseconds())+500, future, 500, 50, "0.25")},
			spans:  []span{{unset, unset}},
			alerts: 1,
		},
		{
			name:   "a negative figure is no cost",
			calls:  []event.LLMCall{unknown},
			logs:   []*logspb.LogRecord{agentCost(21, future, 500, 50, "-3")},
			spans:  []span{{unset, unset}},
			root:   map[attribute.Key]string{telemetry.CostUSD: unset, telemetry.CostSource: unset, telemetry.LLMCallsUnpriced: "1", telemetry.LLMCalls: "1"},
			alerts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := claude()
			for _, c := range tt.calls {
				evs = append(evs, c)
			}
			if len(tt.logs) > 0 {
				evs = append(evs, logsEvent(90, tt.logs...))
			}
			tr := record(agInfo(), evs, End{Time: at(20000)})
			var proxied []*telemetry.Span
			for _, s := range llmSpans(tr) {
				if attrString(s, telemetry.SpanSource) == "" {
					proxied = append(proxied, s)
				} else if _, priced := s.Attr(telemetry.CostUSD); priced && attrString(s, telemetry.CostSource) != "agent_reported" {
					t.Errorf("the agent's own call %s priced with source %q", s.Name, attrString(s, telemetry.CostSource))
				}
			}
			if len(proxied) != len(tt.spans) {
				t.Fatalf("%d proxied model-call spans, want %d", len(proxied), len(tt.spans))
			}
			alerts := 0
			for i, s := range proxied {
				wantAttrs(t, s, map[attribute.Key]string{telemetry.CostUSD: tt.spans[i].cost, telemetry.CostSource: tt.spans[i].source})
				alerts += agAlerts(s, telemetry.AlertMissingCostData)
			}
			if alerts != tt.alerts {
				t.Errorf("%d missing_cost_data alerts, want %d", alerts, tt.alerts)
			}
			wantAttrs(t, tr.Root(), tt.root)
		})
	}
}

// TestAgentFigureTakesSpendOverTheLimit: runaway_spend counts the agent's
// figures too, on the call whose cost crossed alerts.spend_usd.
func TestAgentFigureTakesSpendOverTheLimit(t *testing.T) {
	info := agInfo()
	info.Policy = mustPolicy(t, "observe", "alerts:\n  spend_usd: 1\n")
	const future = "claude-from-the-future-9"
	evs := append(claude(), call(10, "claude-sonnet-4-5", 1000, 100, "k1"), call(20, future, 500, 50, "u1"), call(30, future, 600, 50, "u2"),
		logsEvent(90, agentCost(21, future, 500, 50, "0.5"), agentCost(31, future, 600, 50, "0.75")))
	tr := record(info, evs, End{Time: at(200)})
	var got []int
	for _, s := range llmSpans(tr) {
		got = append(got, agAlerts(s, telemetry.AlertRunawaySpend))
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 0 || got[2] != 1 {
		t.Errorf("runaway_spend alerts per call %v, want on the third only", got)
	}
}
