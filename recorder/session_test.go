package recorder

import (
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// TestSessionOnTheRoot: the agent's session id is the root's
// gen_ai.conversation.id, from the proxied calls' header or else from the
// agent's own telemetry; session.id stays the run's id.
func TestSessionOnTheRoot(t *testing.T) {
	proxied := call(50, "claude-sonnet-4-5", 100, 10, "d1")
	proxied.SessionID = "sess-proxy"
	tests := []struct {
		name   string
		events []event.Event
		want   string
	}{
		{"from the proxied calls", events(claude(), []event.Event{proxied}), "sess-proxy"},
		{"from the agent's telemetry", events(claude(), []event.Event{logsEvent(60, apiRequest(60, "claude-sonnet-4-5", 5, 5, 0, trace.SpanID{}))}), "sess-1"},
		{"the proxy's first when both", events(claude(), []event.Event{proxied, logsEvent(60, apiRequest(60, "claude-sonnet-4-5", 5, 5, 0, trace.SpanID{}))}), "sess-proxy"},
		{"neither", claude(), "<unset>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := record(agInfo(), tt.events, End{Time: at(100)})
			wantAttrs(t, tr.Root(), map[attribute.Key]string{
				telemetry.GenAIConversationID: tt.want,
				telemetry.SessionID:           "run-7f3a",
			})
		})
	}
}
