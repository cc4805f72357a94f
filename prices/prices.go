// Package prices owns the model price table (prices.json, embedded, and a
// user's --prices file merged over it) and turns a model call's usage into
// USD. It is pure data and arithmetic: the recorder prices calls with it;
// it observes nothing, makes no spans and imports no sensor.
package prices

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/agentwatch/agentwatch/event"
)

// builtinPrices is the price table kept as data in the repository. Its
// "version" changes whenever a number does, so a run records which table
// priced it.
//
//go:embed prices.json
var builtinPrices []byte

// Price is what one model costs, in USD per million tokens. CacheRead and
// CacheWrite default to Input, and Reasoning to Output, when a table leaves
// them out (both providers bill reasoning tokens as output tokens).
type Price struct {
	Input      float64  `json:"input"`
	Output     float64  `json:"output"`
	CacheRead  *float64 `json:"cache_read,omitempty"`
	CacheWrite *float64 `json:"cache_write,omitempty"`
	Reasoning  *float64 `json:"reasoning,omitempty"`
}

// Table maps provider → normalised model name → price.
type Table struct {
	Version   string                      `json:"version"`
	AsOf      string                      `json:"as_of"`
	Currency  string                      `json:"currency,omitempty"`
	Unit      string                      `json:"unit,omitempty"`
	Note      string                      `json:"note,omitempty"`
	Providers map[string]map[string]Price `json:"providers"`
}

// Builtin returns a fresh copy of the embedded table.
func Builtin() *Table {
	t, err := parsePrices(builtinPrices)
	if err != nil {
		panic("prices: embedded prices.json is invalid: " + err.Error()) // caught by TestBuiltin
	}
	return t
}

func parsePrices(b []byte) (*Table, error) {
	var t Table
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields() // a misspelt "cache_reads" must not silently price at input
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("decoding price table: %w", err)
	}
	if t.Version == "" {
		return nil, fmt.Errorf("price table has no version")
	}
	for prov, models := range t.Providers {
		for m, p := range models {
			if p.Input < 0 || p.Output < 0 || (p.Input == 0 && p.Output == 0) {
				return nil, fmt.Errorf("price table: %s/%s: input and output prices must be set and not negative", prov, m)
			}
			if NormalizeModel(m) != m {
				return nil, fmt.Errorf("price table: %s/%s: model names must be normalised (%q)", prov, m, NormalizeModel(m))
			}
		}
	}
	return &t, nil
}

// Load reads a user price file (the same JSON shape as the built-in
// prices.json) and returns the built-in table with the file merged over it:
// a model in the file replaces the built-in entry for that model whole (no
// field-by-field mixing of two price lists); other models stay. The
// version becomes "<built-in>+<file version>".
func Load(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading price file: %w", err)
	}
	user, err := parsePrices(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t := Builtin()
	for prov, models := range user.Providers {
		if t.Providers[prov] == nil {
			t.Providers[prov] = map[string]Price{}
		}
		for m, p := range models {
			t.Providers[prov][m] = p
		}
	}
	t.Version += "+" + user.Version
	if user.AsOf != "" {
		t.AsOf = user.AsOf
	}
	return t, nil
}

var (
	snapshotDate = regexp.MustCompile(`-(\d{8}|\d{4}-\d{2}-\d{2})$`)
	bracketed    = regexp.MustCompile(`\[[^\]]*\]$`)
)

// NormalizeModel maps a model name as sent or returned by an API to the
// name the price table uses. The rule, in order:
//   - lower-case, surrounding space trimmed;
//   - a trailing "[...]" dropped (Claude Code's context-size marker, "[1m]");
//   - a leading "anthropic/" or "openai/" dropped (router-style names);
//   - a trailing "-latest" dropped;
//   - a trailing dated snapshot dropped: "-YYYYMMDD" (Anthropic,
//     claude-sonnet-4-5-20250929 → claude-sonnet-4-5) or "-YYYY-MM-DD"
//     (OpenAI, gpt-4o-2024-08-06 → gpt-4o).
//
// Nothing else is guessed: a family name is never matched by prefix, so
// "gpt-4o-mini" is not priced as "gpt-4o" and an unknown model stays
// unknown.
func NormalizeModel(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	m = bracketed.ReplaceAllString(m, "")
	m = strings.TrimPrefix(m, "anthropic/")
	m = strings.TrimPrefix(m, "openai/")
	m = strings.TrimSuffix(m, "-latest")
	m = snapshotDate.ReplaceAllString(m, "")
	return m
}

// Lookup finds the price of a model of a provider, after NormalizeModel.
func (t *Table) Lookup(provider, model string) (Price, bool) {
	if t == nil || model == "" {
		return Price{}, false
	}
	p, ok := t.Providers[provider][NormalizeModel(model)]
	return p, ok
}

// Cost prices one call: non-cached input at Input, cache reads at
// CacheRead, cache writes at CacheWrite, reasoning at Reasoning and the
// rest of the output at Output. ok is false when the call carried no usage
// or its model has no price: the caller must report missing cost data,
// never a zero.
func (t *Table) Cost(call event.LLMCall) (usd float64, ok bool) {
	if !call.UsageKnown {
		return 0, false
	}
	model := call.ResponseModel
	if model == "" {
		model = call.RequestModel
	}
	p, ok := t.Lookup(call.Provider, model)
	if !ok && call.RequestModel != "" && call.RequestModel != model {
		p, ok = t.Lookup(call.Provider, call.RequestModel)
	}
	if !ok {
		return 0, false
	}
	or := func(v *float64, d float64) float64 {
		if v != nil {
			return *v
		}
		return d
	}
	// InputTokens is inclusive of cached tokens and OutputTokens of
	// reasoning (the GenAI convention), so the parts are subtracted out to
	// avoid billing them twice.
	plainIn := max(call.InputTokens-call.CacheReadTokens-call.CacheCreationTokens, 0)
	plainOut := max(call.OutputTokens-call.ReasoningTokens, 0)
	usd = float64(plainIn)*p.Input +
		float64(call.CacheReadTokens)*or(p.CacheRead, p.Input) +
		float64(call.CacheCreationTokens)*or(p.CacheWrite, p.Input) +
		float64(plainOut)*p.Output +
		float64(call.ReasoningTokens)*or(p.Reasoning, p.Output)
	return usd / 1e6, true
}

// Cost prices a call with the built-in table.
func Cost(call event.LLMCall) (usd float64, ok bool) {
	return builtinTable().Cost(call)
}

// builtinTable is parsed on first use: the run's init process (the same
// binary) never prices anything.
var builtinTable = sync.OnceValue(Builtin)
