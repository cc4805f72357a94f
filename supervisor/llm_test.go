package supervisor_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// TestModelCallsThroughTheProxy runs curl, as the agent, against the
// user's ANTHROPIC_BASE_URL (the scripted model) under agentwatch: the
// child's base URL is the run's proxy even under an env allowlist and
// with loopback denied, the calls reach the model, and the trace has one
// LLM span per model request under the curl that made it, with the exact
// usage the model sent and the cost from the price table; count_tokens is
// counted, not spanned; the prompt text is nowhere in the record.
func TestModelCallsThroughTheProxy(t *testing.T) {
	privtest.Require(t)
	const phrase = "zebra-quartz-marmalade prompt phrase"
	u1 := fakemodel.Usage{InputTokens: 1234, CacheReadInputTokens: 100, CacheCreationInputTokens: 50, OutputTokens: 56}
	u2 := fakemodel.Usage{InputTokens: 1500, CacheReadInputTokens: 1200, CacheCreationInputTokens: 70, OutputTokens: 21}
	tests := []struct {
		name, policy string
		direct       string // curl's status for the model's own port, bypassing the proxy
	}{
		{"observe", "version: 1\nmode: observe\n", "200"},
		{"enforce, env allowlist, no loopback", "version: 1\nmode: enforce\nenv:\n  allow: [PATH, LANG]\nnetwork:\n  allow_loopback: false\n", "000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakemodel.New(fakemodel.BashTurn("true", u1), fakemodel.TextTurn("done", u2))
			srv.Logf = t.Logf
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ws, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			write := func(name, s string) {
				if err := os.WriteFile(filepath.Join(ws, name), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tools := `"tools":[{"name":"Bash","input_schema":{"type":"object"}}]`
			write("req1.json", `{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,`+tools+`,"system":"be brief","messages":[{"role":"user","content":"`+phrase+`"}]}`)
			write("req2.json", `{"model":"claude-sonnet-4-5","max_tokens":100,`+tools+`,"messages":[{"role":"user","content":"`+phrase+`"},{"role":"assistant","content":"ok"},{"role":"user","content":"go on"}]}`)
			write("count.json", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"`+phrase+`"}]}`)
			write("policy.yaml", tc.policy)
			// The key from a file: on the command line it would be in argv.
			write("headers", "x-api-key: sk-ant-test-key\n")
			curl := `curl -sS -H @headers -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -H 'x-claude-code-session-id: sess-e2e-1'`
			script := `echo "$ANTHROPIC_BASE_URL" > base
` + curl + ` -N -d @req1.json "$ANTHROPIC_BASE_URL/v1/messages" > s1
` + curl + ` -d @req2.json "$ANTHROPIC_BASE_URL/v1/messages" > s2
` + curl + ` -d @count.json "$ANTHROPIC_BASE_URL/v1/messages/count_tokens" > c1
curl -s -o /dev/null -m 5 -w '%{http_code}' -I ` + srv.URL() + `/api/hello > direct
exit 0`
			storeDir, traceFile := t.TempDir(), filepath.Join(t.TempDir(), "run.json")
			cmd := agentwatch(t, "run", "--user", "root", "--store", storeDir, "--trace-file", traceFile,
				"--policy", filepath.Join(ws, "policy.yaml"), "--", "/bin/sh", "-c", script)
			cmd.Dir = ws
			cmd.Env = []string{asAgentwatch + "=1", "PATH=" + os.Getenv("PATH"), "HOME=/root", "LANG=C.UTF-8",
				"ANTHROPIC_BASE_URL=" + srv.URL()}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("agentwatch: %v\n%s", err, out)
			}
			read := func(name string) string {
				b, _ := os.ReadFile(filepath.Join(ws, name))
				return string(b)
			}
			if s := read("s1"); !strings.Contains(s, "message_stop") {
				t.Errorf("streamed reply through the proxy: %q", s)
			}
			if s := read("s2"); !strings.Contains(s, `"usage"`) {
				t.Errorf("JSON reply through the proxy: %q", s)
			}
			if got := read("direct"); got != tc.direct {
				t.Errorf("direct call to the model's port: status %q, want %q", got, tc.direct)
			}
			var served []int
			for _, r := range srv.Requests() {
				served = append(served, r.Turn)
			}
			want := 3 // two scripted turns, count_tokens; plus the direct HEAD when loopback is allowed
			if tc.direct == "200" {
				want = 4
			}
			if len(served) != want || served[0] != 0 || served[1] != 1 {
				t.Errorf("model served turns %v, want %d requests, turns 0 and 1 first", served, want)
			}

			tr := loadRun(t, storeDir, string(out))
			root := tr.Root()
			str := func(s *telemetry.Span, k attribute.Key) string { v, _ := s.Attr(k); return v.Emit() }
			eps, _ := root.Attr(telemetry.LLMProxyEndpoints)
			if got := strings.TrimSpace(read("base")); len(eps.AsStringSlice()) == 0 || got != "http://"+eps.AsStringSlice()[0] {
				t.Errorf("child's ANTHROPIC_BASE_URL %q, want the proxy (%v)", got, eps.AsStringSlice())
			}
			byID := map[string]*telemetry.Span{}
			for i := range tr.Spans {
				byID[tr.Spans[i].SpanID.String()] = &tr.Spans[i]
			}
			var calls []*telemetry.Span
			for i := range tr.Spans {
				if str(&tr.Spans[i], telemetry.SpanType) == telemetry.SpanLLMCall {
					calls = append(calls, &tr.Spans[i])
				}
			}
			if len(calls) != 2 {
				t.Fatalf("%d llm spans, want 2", len(calls))
			}
			var cost float64
			for i, u := range []fakemodel.Usage{u1, u2} {
				s := calls[i]
				p := byID[s.ParentID.String()]
				if p == nil || str(p, telemetry.ProcessExecutableName) != "curl" || !strings.Contains(str(p, telemetry.CommandLine), "req"+string(rune('1'+i))) {
					t.Errorf("%s #%d: parent %v, want the curl that sent it", s.Name, i, p)
				}
				in := int64(u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens)
				want := map[attribute.Key]string{
					telemetry.GenAIRequestModel:           "claude-sonnet-4-5",
					telemetry.GenAIUsageInputTokens:       itoa(in),
					telemetry.GenAIUsageOutputTokens:      itoa(int64(u.OutputTokens)),
					telemetry.GenAIUsageCacheReadTokens:   itoa(int64(u.CacheReadInputTokens)),
					telemetry.GenAIUsageCacheCreateTokens: itoa(int64(u.CacheCreationInputTokens)),
					telemetry.GenAIRequestStream:          []string{"true", "false"}[i],
					telemetry.HTTPResponseStatusCode:      "200",
					telemetry.LLMAttributedBy:             "pid",
					telemetry.GenAIConversationID:         "sess-e2e-1",
				}
				for k, v := range want {
					if got := str(s, k); got != v {
						t.Errorf("%s #%d: %s = %q, want %q", s.Name, i, k, got, v)
					}
				}
				wantCost, ok := prices.Cost(event.LLMCall{Provider: "anthropic", RequestModel: "claude-sonnet-4-5", UsageKnown: true,
					InputTokens: in, OutputTokens: int64(u.OutputTokens),
					CacheReadTokens: int64(u.CacheReadInputTokens), CacheCreationTokens: int64(u.CacheCreationInputTokens)})
				if v, set := s.Attr(telemetry.CostUSD); !ok || !set || v.AsFloat64() != wantCost {
					t.Errorf("%s #%d: cost %v (set %v), want %v", s.Name, i, v.AsFloat64(), set, wantCost)
				}
				cost += wantCost
			}
			if v, _ := root.Attr(telemetry.CostUSD); v.AsFloat64() != cost {
				t.Errorf("root cost %v, want %v", v.AsFloat64(), cost)
			}
			for k, v := range map[attribute.Key]string{telemetry.LLMCalls: "2", telemetry.LLMOtherRequests: "1", telemetry.GenAIConversationID: "sess-e2e-1"} {
				if got := str(root, k); got != v {
					t.Errorf("root %s = %q, want %q", k, got, v)
				}
			}
			if gaps := str(root, telemetry.TelemetryGaps); strings.Contains(gaps, "llm") {
				t.Errorf("llm gap on the root: %s", gaps)
			}
			// Metadata capture: the prompt never reaches the trace file or the store.
			for _, f := range []string{traceFile, filepath.Join(storeDir, store.FileName)} {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, secret := range []string{"zebra-quartz", "sk-ant-test-key", "be brief"} {
					if strings.Contains(string(b), secret) {
						t.Errorf("%s holds %q (prompt text or API key)", f, secret)
					}
				}
			}
		})
	}
}

func itoa(n int64) string { return attribute.Int64Value(n).Emit() }
