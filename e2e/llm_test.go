package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/llm"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// checkLLM asserts the model calls of a Claude Code run made through the
// run's proxy: one chat span per POST /v1/messages the model served,
// under the claude process span, with exactly the usage the model sent
// (input inclusive of cache tokens), the cost from the price table
// (built-in plus pricesFile, as `run --prices` merged them), the totals on the root, and — metadata capture — no prompt or
// response text anywhere in the given files (trace file, store).
func checkLLM(t *testing.T, tr *traceTree, srv *fakemodel.Server, pricesFile string, files ...string) {
	t.Helper()
	prices, err := prices.Load(pricesFile)
	if err != nil {
		t.Fatal(err)
	}
	root := tr.roots()[0]
	claudes := tr.filter(isClaude)
	sort.SliceStable(claudes, func(i, j int) bool { return tr.depth(claudes[i]) < tr.depth(claudes[j]) })
	claude := claudes[0]

	// What the model sent, as the meter must have read it.
	type usage struct{ in, out, cacheRead, cacheCreate int64 }
	var want []string
	session := ""
	for _, r := range srv.Requests() {
		if r.Method != "POST" || r.Path != "/v1/messages" || r.Status != 200 {
			continue
		}
		u := fakemodel.SideUsage
		if r.Turn == 0 {
			u = turn1Usage
		} else if r.Turn == 1 {
			u = turn2Usage
		}
		in := int64(u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens)
		want = append(want, fmt.Sprint(usage{in, int64(u.OutputTokens), int64(u.CacheReadInputTokens), int64(u.CacheCreationInputTokens)}))
		if id := r.Header.Get("X-Claude-Code-Session-Id"); id != "" && session == "" {
			session = id
		}
	}

	calls := tr.filter(func(s *span) bool { return s.str(telemetry.SpanType) == telemetry.SpanLLMCall })
	var got []string
	var total float64
	for _, s := range calls {
		n := func(k attribute.Key) int64 { v, _ := s.int(k); return v }
		u := usage{n(telemetry.GenAIUsageInputTokens), n(telemetry.GenAIUsageOutputTokens),
			n(telemetry.GenAIUsageCacheReadTokens), n(telemetry.GenAIUsageCacheCreateTokens)}
		got = append(got, fmt.Sprint(u))
		model := s.str(telemetry.GenAIRequestModel)
		if s.Name != "chat "+model || model == "" {
			t.Errorf("llm span %q, request model %q", s.Name, model)
		}
		if !tr.under(s, claude) {
			t.Errorf("%s is not under the claude process: %s", s.Name, tr.path(s))
		}
		if by := s.str(telemetry.LLMAttributedBy); by != "pid" {
			t.Errorf("%s attributed by %q, want pid", s.Name, by)
		}
		wantCost, ok := prices.Cost(event.LLMCall{Provider: llm.Anthropic, RequestModel: model, ResponseModel: s.str(telemetry.GenAIResponseModel),
			UsageKnown: true, InputTokens: u.in, OutputTokens: u.out, CacheReadTokens: u.cacheRead, CacheCreationTokens: u.cacheCreate})
		cost, set := s.Attrs[string(telemetry.CostUSD)].(float64)
		if !ok || !set || cost != wantCost {
			t.Errorf("%s: cost %v (set %v), want %v from the price table (priced %v)", s.Name, cost, set, wantCost, ok)
		}
		total += cost
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("llm span usage (input, output, cache read, cache creation):\n got  %v\n want %v (what the model sent)", got, want)
	}
	if n, _ := root.int(telemetry.LLMCalls); n != int64(len(want)) {
		t.Errorf("root %s = %d, want %d", telemetry.LLMCalls, n, len(want))
	}
	if c, _ := root.Attrs[string(telemetry.CostUSD)].(float64); c < total*(1-1e-9) || c > total*(1+1e-9) {
		t.Errorf("root cost %v, want the spans' sum %v", c, total)
	}
	if session != "" && root.str(telemetry.GenAIConversationID) != session {
		t.Errorf("root %s = %q, want claude's session id %q", telemetry.GenAIConversationID, root.str(telemetry.GenAIConversationID), session)
	}
	for _, s := range tr.Spans {
		if _, model := s.Attrs[string(telemetry.GenAIRequestModel)]; model && s.str(telemetry.SpanType) != telemetry.SpanLLMCall {
			t.Errorf("%s carries %s (Langfuse would make it a generation)", s.Name, telemetry.GenAIRequestModel)
		}
	}

	// Metadata capture: neither Claude Code's system prompt nor the
	// model's answer is kept (the user's prompt is in claude's argv,
	// which is recorded as its command line).
	for _, text := range []string{"You are Claude Code", "I wrote hello to note.txt"} {
		for _, f := range files {
			if found := fileContains(t, f, text); found != "" {
				t.Errorf("%q is in %s", text, found)
			}
		}
	}
}

// fileContains searches a file, or every file under a directory.
func fileContains(t *testing.T, path, text string) string {
	t.Helper()
	found := ""
	filepath.Walk(path, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || found != "" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), text) {
			found = p
		}
		return nil
	})
	return found
}

// writePrices writes a --prices file over the built-in database for the
// models the pinned Claude Code CLI uses by default (made-up prices: the
// test checks that an override wins and the arithmetic, not the market).
func writePrices(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "prices.json")
	body := `{"version": "e2e-1", "providers": {"anthropic": {
		"claude-opus-5-5":  {"input": 7, "output": 35, "cache_read": 0.7, "cache_write": 8.75},
		"claude-haiku-5-5": {"input": 1.5, "output": 7.5, "cache_read": 0.15, "cache_write": 1.875}}}}`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
