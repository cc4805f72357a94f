package supervisor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/journal"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"
)

// A journal whose policy this agentwatch no longer accepts (an older one
// wrote network.allow: ["*"]) is still recovered: judged against the
// built-in policy, and the run says so.
func TestRecoverWithAPolicyThatNoLongerParses(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Minute)
	h, _ := json.Marshal(runHeader{
		RunID: "20261203-070000-abcdef", TraceID: "0af7651916cd43dd8448eb211c80319c",
		Argv: []string{"/bin/true"}, Start: start, Workspace: "/tmp",
		Policy: []byte("version: 1\nmode: observe\nnetwork:\n  allow: [\"*\"]\n"), PolicySource: "old.yaml",
	})
	w, err := journal.Create(JournalDir(dir), "20261203-070000-abcdef", h)
	if err != nil {
		t.Fatal(err)
	}
	w.AppendMeta(metaLaunched, []byte("4242"))
	w.Append(event.Exec{Header: event.Header{Time: start.Add(time.Second), PID: 4242}, Filename: "/bin/true", Argv: []string{"/bin/true"}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := Recover(context.Background(), st, dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("recovered %v, %v", got, err)
	}
	tr, _, err := st.Load(context.Background(), got[0].RunID)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := tr.Root().Attr(telemetry.TelemetryGaps)
	if !strings.Contains(g.Emit(), "policy does not parse now") {
		t.Errorf("gaps %s: want the policy fallback named", g.Emit())
	}
}

// A journal written before AgentTelemetry carried decoded log records:
// recovery decodes them from the payload, so the agent's log events are
// not lost across the upgrade.
func TestRecoverDecodesOldAgentLogs(t *testing.T) {
	req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{
		LogRecords: []*logspb.LogRecord{{TimeUnixNano: uint64(time.Now().UnixNano()), EventName: event.ClaudeAPIRequest}},
	}}}}}
	b, _ := proto.Marshal(req)
	got := withAgentLogs(event.AgentTelemetry{Signal: event.SignalLogs, Payload: b}).(event.AgentTelemetry)
	if len(got.Logs) != 1 {
		t.Fatalf("%d log records decoded from an old journal's payload, want 1", len(got.Logs))
	}
}
