package prices

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentwatch/agentwatch/event"
)

func TestBuiltin(t *testing.T) {
	tab := Builtin()
	if tab.Version == "" || tab.AsOf == "" || tab.Note == "" {
		t.Fatalf("table lacks version/as_of/note: %q %q", tab.Version, tab.AsOf)
	}
	for _, m := range []struct{ provider, model string }{
		{anthropic, "claude-opus-4-5"}, {anthropic, "claude-sonnet-4-5"}, {anthropic, "claude-haiku-4-5"},
		{anthropic, "claude-opus-4-1"}, {anthropic, "claude-3-5-haiku"}, {anthropic, "claude-3-7-sonnet"},
		{openai, "gpt-4o"}, {openai, "gpt-4.1"}, {openai, "o3"}, {openai, "o4-mini"}, {openai, "gpt-5"}, {openai, "gpt-5-mini"},
	} {
		if _, ok := tab.Lookup(m.provider, m.model); !ok {
			t.Errorf("no price for %s/%s", m.provider, m.model)
		}
	}
}

func TestNormalizeModel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"claude-3-5-haiku-20241022", "claude-3-5-haiku"},
		{"claude-3-5-sonnet-latest", "claude-3-5-sonnet"},
		{"Claude-Opus-4-1-20250805", "claude-opus-4-1"},
		{"claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"},
		{"anthropic/claude-haiku-4-5", "claude-haiku-4-5"},
		{"gpt-4o-2024-08-06", "gpt-4o"},
		{"gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"},
		{"o3-2025-04-16", "o3"},
		{"gpt-4o-mini", "gpt-4o-mini"}, // never folded into gpt-4o
		{"gpt-5-codex", "gpt-5-codex"}, // unknown stays unknown, not priced as gpt-5
	} {
		if got := NormalizeModel(tc.in); got != tc.want {
			t.Errorf("NormalizeModel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCost(t *testing.T) {
	for _, tc := range []struct {
		name string
		call event.LLMCall
		usd  float64
		ok   bool
	}{
		// sonnet 4.5: 3 in, 15 out, 0.30 read, 3.75 write per MTok.
		{"anthropic with cache", event.LLMCall{Provider: anthropic, ResponseModel: "claude-sonnet-4-5-20250929", UsageKnown: true,
			InputTokens: 1000 + 20000 + 4000, CacheReadTokens: 20000, CacheCreationTokens: 4000, OutputTokens: 500},
			(1000*3 + 20000*0.3 + 4000*3.75 + 500*15) / 1e6, true},
		// gpt-4.1: 2 in, 0.5 cached, 8 out; reasoning billed as output.
		{"openai with cache and reasoning", event.LLMCall{Provider: openai, RequestModel: "gpt-4.1", ResponseModel: "gpt-4.1-2025-04-14", UsageKnown: true,
			InputTokens: 1234, CacheReadTokens: 1000, OutputTokens: 210, ReasoningTokens: 64},
			(234*2 + 1000*0.5 + 210*8) / 1e6, true},
		{"unknown model", event.LLMCall{Provider: openai, ResponseModel: "gpt-99", UsageKnown: true, InputTokens: 10}, 0, false},
		{"model of another provider", event.LLMCall{Provider: openai, ResponseModel: "claude-haiku-4-5", UsageKnown: true, InputTokens: 10}, 0, false},
		{"no usage", event.LLMCall{Provider: anthropic, ResponseModel: "claude-haiku-4-5"}, 0, false},
	} {
		usd, ok := Cost(tc.call)
		if ok != tc.ok || math.Abs(usd-tc.usd) > 1e-12 {
			t.Errorf("%s: Cost = %v, %v; want %v, %v", tc.name, usd, ok, tc.usd, tc.ok)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "prices.json")
	os.WriteFile(file, []byte(`{"version":"acme-2026-11","as_of":"2026-11-01","providers":{
		"anthropic":{"claude-haiku-4-5":{"input":0.5,"output":2}},
		"openai":{"gpt-99":{"input":1,"output":2,"cache_read":0.1}}}}`), 0o644)
	tab, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Version != Builtin().Version+"+acme-2026-11" {
		t.Errorf("version %q", tab.Version)
	}
	haiku, _ := tab.Lookup(anthropic, "claude-haiku-4-5-20251001")
	if haiku.Input != 0.5 || haiku.CacheRead != nil {
		t.Errorf("override not applied whole: %+v", haiku)
	}
	if _, ok := tab.Lookup(anthropic, "claude-opus-4-5"); !ok {
		t.Error("built-in entries lost by the merge")
	}
	// A price without cache_write charges cache writes at the input price.
	usd, ok := tab.Cost(event.LLMCall{Provider: openai, ResponseModel: "gpt-99", UsageKnown: true, InputTokens: 300, CacheReadTokens: 100, CacheCreationTokens: 100, OutputTokens: 10})
	if !ok || math.Abs(usd-(100*1+100*0.1+100*1+10*2)/1e6) > 1e-12 {
		t.Errorf("Cost = %v, %v", usd, ok)
	}
	for name, bad := range map[string]string{
		"unknown field":   `{"version":"x","providers":{"openai":{"m":{"input":1,"output":1,"cache_reads":1}}}}`,
		"no version":      `{"providers":{}}`,
		"no prices":       `{"version":"x","providers":{"openai":{"m":{}}}}`,
		"not normalised":  `{"version":"x","providers":{"openai":{"gpt-4o-2024-08-06":{"input":1,"output":1}}}}`,
		"not JSON at all": `version: x`,
	} {
		os.WriteFile(file, []byte(bad), 0o644)
		if _, err := Load(file); err == nil {
			t.Errorf("%s: Load accepted %s", name, bad)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("Load accepted a missing file")
	}
}

// The providers' names as event.LLMCall.Provider carries them (llm.Anthropic,
// llm.OpenAI; this package does not import the proxy).
const (
	anthropic = "anthropic"
	openai    = "openai"
)
