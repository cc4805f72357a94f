package prices

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// The providers' names as event.LLMCall.Provider carries them (llm.Anthropic,
// llm.OpenAI; this package does not import the proxy).
const (
	anthropic = "anthropic"
	openai    = "openai"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12+1e-9*math.Abs(b) }

// The vendored database says where it came from; a file without that
// metadata is refused.
func TestBuiltinMetadata(t *testing.T) {
	tab := Builtin()
	src := tab.Source
	if src.Package != "@pydantic/genai-prices" || src.Version == "" || src.License != "MIT" {
		t.Fatalf("metadata %+v", src)
	}
	for name, d := range map[string]string{"fetched": src.Fetched, "published": src.Published} {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			t.Errorf("%s date %q: %v", name, d, err)
		}
	}
	if want := "genai-prices " + src.Version + " (" + src.Fetched + ")"; tab.Version != want || tab.AsOf != src.Fetched {
		t.Errorf("Version %q, AsOf %q; want %q, %q", tab.Version, tab.AsOf, want, src.Fetched)
	}
	if !strings.HasPrefix(src.TarballIntegrity, "sha512-") {
		t.Errorf("tarball integrity %q", src.TarballIntegrity)
	}
	lic, err := os.ReadFile(src.LicenseFile)
	if err != nil || !strings.Contains(string(lic), "MIT License") || !strings.Contains(string(lic), "Pydantic") ||
		!strings.Contains(string(lic), src.Version) {
		t.Errorf("licence notice %s: %v\n%s", src.LicenseFile, err, lic)
	}

	for _, field := range []string{"package", "version", "fetched"} {
		var doc map[string]any
		if err := json.Unmarshal(builtinDatabase, &doc); err != nil {
			t.Fatal(err)
		}
		delete(doc, field)
		b, _ := json.Marshal(doc)
		if _, err := parseDatabase(b); err == nil {
			t.Errorf("database without %q accepted", field)
		}
	}
}

// rawModel is a model of the vendored file as plain JSON, to read the
// expected numbers independently of the parser.
func rawModel(t *testing.T, provider, id string) map[string]any {
	t.Helper()
	var doc struct {
		Providers []struct {
			ID     string           `json:"id"`
			Models []map[string]any `json:"models"`
		} `json:"providers"`
	}
	if err := json.Unmarshal(builtinDatabase, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Providers {
		for _, m := range p.Models {
			if p.ID == provider && m["id"] == id {
				return m
			}
		}
	}
	t.Fatalf("no %s/%s in the vendored data", provider, id)
	return nil
}

// rawPrice is a flat price of a model with a single price object.
func rawPrice(t *testing.T, provider, id, key string) float64 {
	t.Helper()
	v, ok := rawModel(t, provider, id)["prices"].(map[string]any)[key].(float64)
	if !ok {
		t.Fatalf("%s/%s has no flat %s", provider, id, key)
	}
	return v
}

func TestLookupVendored(t *testing.T) {
	tab := Builtin()
	for _, tc := range []struct {
		provider, model string
		want            string // database model id; "" unpriced
	}{
		{anthropic, "claude-opus-5-5", "claude-opus-5-5"},
		{anthropic, "claude-opus-5-5-20261101", "claude-opus-5-5"},     // upstream's regex
		{anthropic, "claude-opus-5-5[1m]", "claude-opus-5-5"},          // only after NormalizeModel
		{anthropic, "claude-opus-5-5-20261101[1m]", "claude-opus-5-5"}, // ditto
		{anthropic, "Claude-Opus-5-5", "claude-opus-5-5"},              // case-insensitive
		{anthropic, "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"}, // starts_with
		{anthropic, "claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"},
		{anthropic, "claude-haiku-4-5", "claude-haiku-4-5"},
		{anthropic, "claude-haiku-4-5-20251001", "claude-haiku-4-5"},
		{anthropic, "anthropic/claude-haiku-4-5", "claude-haiku-4-5"}, // only after NormalizeModel
		{anthropic, "claude-opus-4-1-20250805", "claude-opus-4-1"},
		{openai, "gpt-4o", "gpt-4o"},
		{openai, "gpt-4o-2024-08-06", "gpt-4o"},
		{openai, "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"}, // its own price, not gpt-4o's
		{openai, "gpt-4o-mini", "gpt-4o-mini"},
		{openai, "gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
		{openai, "gpt-5.4-20260305", "gpt-5.4"}, // upstream's -YYYYMMDD → -YYYY-MM-DD retry
		{openai, "o3", "o3"},
		{openai, "gpt-99", ""},
		{anthropic, "claude-nonexistent-9", ""},
		{openai, "claude-haiku-4-5", ""}, // a model of another provider
		{"", "claude-haiku-4-5", ""},     // no provider: not guessed
		{anthropic, "", ""},
	} {
		r, ok := tab.resolve(tc.provider, tc.model)
		if ok != (tc.want != "") || r.id != tc.want {
			t.Errorf("%s/%q: resolved %q (%v), want %q", tc.provider, tc.model, r.id, ok, tc.want)
		}
		if _, ok := tab.Lookup(tc.provider, tc.model); ok != (tc.want != "") {
			t.Errorf("Lookup(%s, %q) ok %v", tc.provider, tc.model, ok)
		}
	}

	opus, _ := tab.Lookup(anthropic, "claude-opus-5-5[1m]")
	if opus.Input != rawPrice(t, anthropic, "claude-opus-5-5", "input_mtok") ||
		opus.Output != rawPrice(t, anthropic, "claude-opus-5-5", "output_mtok") ||
		opus.CacheRead == nil || *opus.CacheRead != rawPrice(t, anthropic, "claude-opus-5-5", "cache_read_mtok") ||
		opus.CacheWrite == nil || *opus.CacheWrite != rawPrice(t, anthropic, "claude-opus-5-5", "cache_write_mtok") ||
		opus.Reasoning != nil {
		t.Errorf("claude-opus-5-5: %+v", opus)
	}
	// Verified by reading genai-prices.json 0.1.8: claude-opus-5-5 is
	// input 4, output 20, cache read 0.2, cache write 5 USD/MTok.
	if opus.Input != 4 || opus.Output != 20 || *opus.CacheRead != 0.2 || *opus.CacheWrite != 5 {
		t.Errorf("claude-opus-5-5 in 0.1.8: %+v", opus)
	}
	mini, _ := tab.Lookup(openai, "gpt-4o-mini")
	full, _ := tab.Lookup(openai, "gpt-4o")
	if mini.Input != rawPrice(t, openai, "gpt-4o-mini", "input_mtok") || mini.Input == full.Input {
		t.Errorf("gpt-4o-mini %+v priced like gpt-4o %+v", mini, full)
	}
}

func TestCostVendored(t *testing.T) {
	tab := Builtin()
	p := func(prov, model, key string) float64 { return rawPrice(t, prov, model, key) }
	noon := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

	// Anthropic: cache read and write, thinking tokens (inside output,
	// billed as output: claude-opus-5-5 has no output_reasoning_mtok).
	opus := event.LLMCall{Provider: anthropic, RequestModel: "claude-opus-5-5[1m]", ResponseModel: "claude-opus-5-5", UsageKnown: true, Start: noon,
		InputTokens: 1000 + 20000 + 4000, CacheReadTokens: 20000, CacheCreationTokens: 4000, OutputTokens: 500, ReasoningTokens: 120}
	const m = "claude-opus-5-5"
	wantPrompt := (1000*p(anthropic, m, "input_mtok") + 20000*p(anthropic, m, "cache_read_mtok") + 4000*p(anthropic, m, "cache_write_mtok")) / 1e6
	wantCompletion := 500 * p(anthropic, m, "output_mtok") / 1e6
	parts, ok := tab.CostParts(opus)
	if !ok || !near(parts.Prompt, wantPrompt) || !near(parts.Completion, wantCompletion) ||
		!near(parts.Total, wantPrompt+wantCompletion) || parts.Model != m {
		t.Errorf("opus: %+v (%v), want prompt %v completion %v", parts, ok, wantPrompt, wantCompletion)
	}
	// (1000×4 + 20000×0.2 + 4000×5 + 500×20) / 1e6, from the 0.1.8 numbers.
	if !near(parts.Total, 0.038) {
		t.Errorf("opus total %v, want 0.038", parts.Total)
	}
	if usd, ok2 := tab.Cost(opus); usd != parts.Total || ok2 != ok {
		t.Errorf("Cost %v, CostParts.Total %v", usd, parts.Total)
	}
	if usd, _ := Cost(opus); usd != parts.Total {
		t.Errorf("prices.Cost %v, want %v", usd, parts.Total)
	}

	// OpenAI: cached input, reasoning inside output (gpt-4o has no
	// cache_write_mtok: nothing to take out for it).
	gpt := event.LLMCall{Provider: openai, RequestModel: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06", UsageKnown: true, Start: noon,
		InputTokens: 1234, CacheReadTokens: 1000, OutputTokens: 210, ReasoningTokens: 64}
	want := (234*p(openai, "gpt-4o", "input_mtok") + 1000*p(openai, "gpt-4o", "cache_read_mtok") + 210*p(openai, "gpt-4o", "output_mtok")) / 1e6
	if parts, ok := tab.CostParts(gpt); !ok || !near(parts.Total, want) || parts.Model != "gpt-4o" {
		t.Errorf("gpt-4o: %+v (%v), want %v", parts, ok, want)
	}

	// Tiered (claude-sonnet-4-5): over 200K input tokens every token of
	// every key is at the tier's rate.
	tiers := func(key string) (base, tier float64) {
		v := rawModel(t, anthropic, "claude-sonnet-4-5")["prices"].(map[string]any)[key].(map[string]any)
		ts := v["tiers"].([]any)
		if len(ts) != 1 || ts[0].(map[string]any)["start"].(float64) != 200000 {
			t.Fatalf("claude-sonnet-4-5 %s tiers changed: %v", key, v)
		}
		return v["base"].(float64), ts[0].(map[string]any)["price"].(float64)
	}
	for _, in := range []int64{200000, 200001} {
		call := event.LLMCall{Provider: anthropic, ResponseModel: "claude-sonnet-4-5-20250929", UsageKnown: true, Start: noon,
			InputTokens: in, CacheReadTokens: 100000, CacheCreationTokens: 50000, OutputTokens: 1000}
		rate := func(key string) float64 {
			base, tier := tiers(key)
			if in > 200000 {
				return tier
			}
			return base
		}
		want := (float64(in-150000)*rate("input_mtok") + 100000*rate("cache_read_mtok") + 50000*rate("cache_write_mtok") + 1000*rate("output_mtok")) / 1e6
		if usd, ok := tab.Cost(call); !ok || !near(usd, want) {
			t.Errorf("sonnet with %d input tokens: %v (%v), want %v", in, usd, ok, want)
		}
	}

	// Dated (o3 changed price on 2025-06-10): the call's start decides.
	o3 := rawModel(t, openai, "o3")["prices"].([]any)
	for _, tc := range []struct {
		at    time.Time
		entry int
	}{{time.Date(2025, 6, 9, 23, 59, 59, 0, time.UTC), 0}, {time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC), 1}, {noon, 1}} {
		ps := o3[tc.entry].(map[string]any)["prices"].(map[string]any)
		call := event.LLMCall{Provider: openai, ResponseModel: "o3-2025-04-16", UsageKnown: true, Start: tc.at, InputTokens: 1e6, OutputTokens: 1e6}
		if usd, ok := tab.Cost(call); !ok || !near(usd, ps["input_mtok"].(float64)+ps["output_mtok"].(float64)) {
			t.Errorf("o3 at %v: %v (%v), want entry %d %v", tc.at, usd, ok, tc.entry, ps)
		}
	}

	for name, call := range map[string]event.LLMCall{
		"unknown model":               {Provider: openai, ResponseModel: "gpt-99", UsageKnown: true, InputTokens: 10},
		"model of another provider":   {Provider: openai, ResponseModel: "claude-haiku-4-5", UsageKnown: true, InputTokens: 10},
		"no usage":                    {Provider: anthropic, ResponseModel: "claude-haiku-4-5"},
		"no model":                    {Provider: anthropic, UsageKnown: true, InputTokens: 10},
		"embedding model with output": {Provider: openai, ResponseModel: "text-embedding-3-small", UsageKnown: true, InputTokens: 10, OutputTokens: 1},
	} {
		if parts, ok := tab.CostParts(call); ok || parts.Total != 0 {
			t.Errorf("%s: priced %+v", name, parts)
		}
	}
	// The request's model prices a call whose response names an unknown one.
	call := event.LLMCall{Provider: anthropic, RequestModel: "claude-haiku-4-5", ResponseModel: "claude-haiku-9", UsageKnown: true, InputTokens: 1e6}
	if parts, ok := tab.CostParts(call); !ok || parts.Model != "claude-haiku-4-5" || !near(parts.Total, p(anthropic, "claude-haiku-4-5", "input_mtok")) {
		t.Errorf("request model fallback: %+v (%v)", parts, ok)
	}
}

func TestNormalizeModel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"claude-3-5-haiku-20241022", "claude-3-5-haiku"},
		{"claude-3-5-sonnet-latest", "claude-3-5-sonnet"},
		{"Claude-Opus-4-1-20250805", "claude-opus-4-1"},
		{"claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"},
		{"claude-opus-5-5[1m]", "claude-opus-5-5"},
		{"anthropic/claude-haiku-4-5", "claude-haiku-4-5"},
		{"gpt-4o-2024-08-06", "gpt-4o"},
		{"gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"},
		{"o3-2025-04-16", "o3"},
		{"gpt-4o-mini", "gpt-4o-mini"}, // never folded into gpt-4o
		{"gpt-5-codex", "gpt-5-codex"},
	} {
		if got := NormalizeModel(tc.in); got != tc.want {
			t.Errorf("NormalizeModel(%q) = %q, want %q", tc.in, got, tc.want)
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
	if tab.Version != Builtin().Version+"+acme-2026-11" || tab.AsOf != "2026-11-01" {
		t.Errorf("version %q as of %q", tab.Version, tab.AsOf)
	}
	// The file's entry wins whole over the database's claude-haiku-4-5,
	// for every name that normalises to it.
	for _, name := range []string{"claude-haiku-4-5", "claude-haiku-4-5-20251001", "claude-haiku-4-5[1m]"} {
		haiku, ok := tab.Lookup(anthropic, name)
		if !ok || haiku.Input != 0.5 || haiku.CacheRead != nil {
			t.Errorf("%s: override not applied whole: %+v", name, haiku)
		}
	}
	parts, ok := tab.CostParts(event.LLMCall{Provider: anthropic, ResponseModel: "claude-haiku-4-5-20251001", UsageKnown: true,
		InputTokens: 300, CacheReadTokens: 100, CacheCreationTokens: 100, OutputTokens: 10})
	if !ok || !near(parts.Total, (300*0.5+10*2)/1e6) || parts.Model != "claude-haiku-4-5" {
		t.Errorf("haiku with the file's price (cache at input): %+v (%v)", parts, ok)
	}
	if _, ok := tab.Lookup(anthropic, "claude-opus-5-5"); !ok {
		t.Error("database entries lost by the merge")
	}
	if _, ok := Builtin().Lookup(openai, "gpt-99"); ok {
		t.Error("Load changed the built-in table")
	}
	// A price without cache_write charges cache writes at the input price.
	usd, ok := tab.Cost(event.LLMCall{Provider: openai, ResponseModel: "gpt-99", UsageKnown: true, InputTokens: 300, CacheReadTokens: 100, CacheCreationTokens: 100, OutputTokens: 10})
	if !ok || !near(usd, (100*1+100*0.1+100*1+10*2)/1e6) {
		t.Errorf("Cost = %v, %v", usd, ok)
	}
	for name, bad := range map[string]string{
		"unknown field":   `{"version":"x","providers":{"openai":{"m":{"input":1,"output":1,"cache_reads":1}}}}`,
		"no version":      `{"providers":{}}`,
		"no prices":       `{"version":"x","providers":{"openai":{"m":{}}}}`,
		"negative":        `{"version":"x","providers":{"openai":{"m":{"input":1,"output":1,"cache_read":-1}}}}`,
		"not USD":         `{"version":"x","currency":"EUR","providers":{}}`,
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

// prices.json is the example of the --prices format the CLI's help points
// to: it loads, and its gpt-4o wins over the database's.
func TestExamplePriceFile(t *testing.T) {
	tab, err := Load("prices.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(tab.Version, "+example-2026-12") {
		t.Errorf("version %q", tab.Version)
	}
	if p, ok := tab.Lookup(openai, "gpt-4o-2024-08-06"); !ok || p.Input != 2 {
		t.Errorf("gpt-4o from the example: %+v %v", p, ok)
	}
	if _, ok := tab.Lookup(anthropic, "claude-inhouse-1"); !ok {
		t.Error("claude-inhouse-1 missing")
	}
}
