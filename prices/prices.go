// Package prices turns a model call's usage into USD. The prices are
// Pydantic's genai-prices database (genai-prices.json, vendored from the
// npm package @pydantic/genai-prices by scripts/update-prices.sh and
// embedded), matched the way that package matches (database.go), with a
// user's --prices file merged over it. It is pure data and arithmetic: the
// recorder prices calls with it; it observes nothing, makes no spans and
// imports no sensor. docs/prices.md describes the rules.
package prices

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// builtinDatabase is the vendored genai-prices data with its metadata
// (package, version, fetched date); LICENSE-genai-prices is its licence.
//
//go:embed genai-prices.json
var builtinDatabase []byte

// Price is what one model costs, in USD per million tokens: the shape of a
// model in a --prices file. CacheRead and CacheWrite default to Input, and
// Reasoning to Output, when left out (both providers bill reasoning tokens
// as output tokens).
type Price struct {
	Input      float64  `json:"input"`
	Output     float64  `json:"output"`
	CacheRead  *float64 `json:"cache_read,omitempty"`
	CacheWrite *float64 `json:"cache_write,omitempty"`
	Reasoning  *float64 `json:"reasoning,omitempty"`
}

// Parts is the cost of one call, in USD. Prompt is the input side (plain
// input, cache reads and cache writes, and a per-request fee where a model
// has one), Completion the output side (reasoning included); Total is
// their sum. Model is the database model id that priced the call, or the
// (normalised) model name of the --prices entry that did.
type Parts struct {
	Prompt, Completion, Total float64
	Model                     string
}

// Table is the price database and the --prices entries merged over it.
type Table struct {
	// Version names the prices a run was priced with, e.g.
	// "genai-prices 0.1.8 (2026-12-04)" (package version, fetch date),
	// "+<file version>" after Load.
	Version string
	// AsOf is the date the database was fetched, or the --prices file's
	// as_of when it has one.
	AsOf string
	// Source is where the built-in database came from.
	Source Meta
	// Overrides are the --prices entries: agentwatch provider id →
	// normalised model name → price. They win over the database.
	Overrides map[string]map[string]Price

	db *database
}

// providerIDs maps agentwatch's provider ids (event.LLMCall.Provider,
// llm.Anthropic, llm.OpenAI) to the database's. Other ids are looked up
// as given, by upstream's rule (id, then provider_match).
var providerIDs = map[string]string{
	"anthropic": "anthropic",
	"openai":    "openai",
}

// builtinDB is parsed on first use: the run's init process (the same
// binary) never prices anything. It is never modified, so every table
// shares it.
var builtinDB = sync.OnceValues(func() (*database, error) { return parseDatabase(builtinDatabase) })

// Builtin returns a fresh table over the embedded database, without
// overrides.
func Builtin() *Table {
	db, err := builtinDB()
	if err != nil {
		panic("prices: embedded genai-prices.json is invalid: " + err.Error()) // caught by TestBuiltin
	}
	return newTable(db)
}

func newTable(db *database) *Table {
	return &Table{
		Version:   fmt.Sprintf("genai-prices %s (%s)", db.meta.Version, db.meta.Fetched),
		AsOf:      db.meta.Fetched,
		Source:    db.meta,
		Overrides: map[string]map[string]Price{},
		db:        db,
	}
}

// priceFile is the --prices file: the shape of prices/prices.json.
type priceFile struct {
	Version   string                      `json:"version"`
	AsOf      string                      `json:"as_of"`
	Currency  string                      `json:"currency,omitempty"`
	Unit      string                      `json:"unit,omitempty"`
	Note      string                      `json:"note,omitempty"`
	Providers map[string]map[string]Price `json:"providers"`
}

func parsePriceFile(b []byte) (*priceFile, error) {
	var f priceFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields() // a misspelt "cache_reads" must not silently price at input
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding price table: %w", err)
	}
	if f.Version == "" {
		return nil, fmt.Errorf("price table has no version")
	}
	if f.Currency != "" && f.Currency != "USD" {
		return nil, fmt.Errorf("price table: currency %q: only USD", f.Currency)
	}
	for prov, models := range f.Providers {
		for m, p := range models {
			if p.Input < 0 || p.Output < 0 || (p.Input == 0 && p.Output == 0) {
				return nil, fmt.Errorf("price table: %s/%s: input and output prices must be set and not negative", prov, m)
			}
			for _, v := range []*float64{p.CacheRead, p.CacheWrite, p.Reasoning} {
				if v != nil && *v < 0 {
					return nil, fmt.Errorf("price table: %s/%s: negative price", prov, m)
				}
			}
			if NormalizeModel(m) != m {
				return nil, fmt.Errorf("price table: %s/%s: model names must be normalised (%q)", prov, m, NormalizeModel(m))
			}
		}
	}
	return &f, nil
}

// Load reads a user price file (--prices: {"version", "as_of",
// "providers": {provider: {model: {input, output, cache_read,
// cache_write, reasoning}}}}, USD per million tokens) and returns the
// built-in table with the file merged over it: a model named in the file
// (its name after NormalizeModel) is priced by the file alone, whatever the
// database says; other models are priced by the database. The version
// becomes "<built-in>+<file version>".
func Load(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading price file: %w", err)
	}
	f, err := parsePriceFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t := Builtin()
	for prov, models := range f.Providers {
		if t.Overrides[prov] == nil {
			t.Overrides[prov] = map[string]Price{}
		}
		for m, p := range models {
			t.Overrides[prov][m] = p
		}
	}
	t.Version += "+" + f.Version
	if f.AsOf != "" {
		t.AsOf = f.AsOf
	}
	return t, nil
}

var (
	snapshotDate = regexp.MustCompile(`-(\d{8}|\d{4}-\d{2}-\d{2})$`)
	bracketed    = regexp.MustCompile(`\[[^\]]*\]$`)
)

// NormalizeModel maps a model name as sent or returned by an API to the
// name a --prices file uses. The rule, in order:
//   - lower-case, surrounding space trimmed;
//   - a trailing "[...]" dropped (Claude Code's context-size marker, "[1m]");
//   - a leading "anthropic/" or "openai/" dropped (router-style names);
//   - a trailing "-latest" dropped;
//   - a trailing dated snapshot dropped: "-YYYYMMDD" (Anthropic,
//     claude-sonnet-4-5-20250929 → claude-sonnet-4-5) or "-YYYY-MM-DD"
//     (OpenAI, gpt-4o-2024-08-06 → gpt-4o).
//
// The database is matched with the name as sent first, by its own rules;
// the normalised name is the second try, for the names those rules miss
// ("claude-opus-5-5[1m]", "anthropic/claude-haiku-4-5").
func NormalizeModel(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	m = bracketed.ReplaceAllString(m, "")
	m = strings.TrimPrefix(m, "anthropic/")
	m = strings.TrimPrefix(m, "openai/")
	m = strings.TrimSuffix(m, "-latest")
	m = snapshotDate.ReplaceAllString(m, "")
	return m
}

// resolved is what priced a model name: a --prices entry or a database
// model.
type resolved struct {
	id       string // Parts.Model
	override *Price
	model    *dbModel
}

// resolve finds a model of a provider: the --prices entry named
// NormalizeModel(model); else the database model matching the name as
// sent (lower-cased, trimmed); else the one matching NormalizeModel(model).
func (t *Table) resolve(provider, model string) (resolved, bool) {
	if t == nil || strings.TrimSpace(model) == "" {
		return resolved{}, false
	}
	norm := NormalizeModel(model)
	if p, ok := t.Overrides[provider][norm]; ok {
		return resolved{id: norm, override: &p}, true
	}
	if t.db == nil || provider == "" {
		return resolved{}, false
	}
	id, ok := providerIDs[provider]
	if !ok {
		id = provider
	}
	p := t.db.findProvider(id, "", "")
	if p == nil {
		return resolved{}, false
	}
	name := strings.ToLower(strings.TrimSpace(model))
	m := t.db.findModel(p, name)
	if m == nil && norm != name && norm != "" {
		m = t.db.findModel(p, norm)
	}
	if m == nil {
		return resolved{}, false
	}
	return resolved{id: m.id, model: m}, true
}

// Lookup finds the price of a model of a provider (see resolve). For a
// database model it is the price in force now at the base tier (prompts
// below every tier); Cost applies the call's time and size. ok is false
// for an unknown model and for one the database prices by no token key
// agentwatch bills.
func (t *Table) Lookup(provider, model string) (Price, bool) {
	r, ok := t.resolve(provider, model)
	if !ok {
		return Price{}, false
	}
	if r.override != nil {
		return *r.override, true
	}
	mp := r.model.priceAt(time.Now())
	if !mp.billable() {
		return Price{}, false
	}
	base := func(k string) *float64 {
		if p, ok := mp[k]; ok {
			return &p.base
		}
		return nil
	}
	return Price{
		Input:      mp[keyInput].base,
		Output:     mp[keyOutput].base,
		CacheRead:  base(keyCacheRead),
		CacheWrite: base(keyCacheWrite),
		Reasoning:  base(keyReasoning),
	}, true
}

// The price keys agentwatch bills from an event.LLMCall.
const (
	keyInput      = "input_mtok"
	keyOutput     = "output_mtok"
	keyCacheRead  = "cache_read_mtok"
	keyCacheWrite = "cache_write_mtok"
	keyReasoning  = "output_reasoning_mtok"
	keyRequests   = "requests_kcount"
)

func (mp modelPrice) billable() bool {
	_, in := mp[keyInput]
	_, out := mp[keyOutput]
	return in || out
}

// modelPrice is a --prices entry as database prices.
func (p Price) modelPrice() modelPrice {
	mp := modelPrice{keyInput: {base: p.Input}, keyOutput: {base: p.Output}}
	for k, v := range map[string]*float64{keyCacheRead: p.CacheRead, keyCacheWrite: p.CacheWrite, keyReasoning: p.Reasoning} {
		if v != nil {
			mp[k] = tieredPrice{base: *v}
		}
	}
	return mp
}

// CostParts prices one call with the model named in the response (else
// the request; the request's model when the response's has no price), at
// the prices in force at the call's start (else its end, else now).
//
// InputTokens is inclusive of cached tokens and OutputTokens of reasoning
// (the GenAI convention), so, as upstream decomposes usage: cache reads
// are billed at cache_read_mtok and cache writes at cache_write_mtok and
// taken out of the input billed at input_mtok, each only where the model
// has that price (else they stay input); reasoning likewise out of output
// where the model prices output_reasoning_mtok. A tiered price takes its
// rate from the call's whole input token count. A model's requests_kcount
// adds a per-request fee to Prompt.
//
// ok is false when the call carried no usage, its model has no price, or
// the price lacks the input or output rate the call's tokens need: the
// caller must report missing cost data, never a zero.
func (t *Table) CostParts(call event.LLMCall) (Parts, bool) {
	if t == nil || !call.UsageKnown {
		return Parts{}, false
	}
	model := call.ResponseModel
	if model == "" {
		model = call.RequestModel
	}
	r, ok := t.resolve(call.Provider, model)
	if !ok && call.RequestModel != "" && call.RequestModel != model {
		r, ok = t.resolve(call.Provider, call.RequestModel)
	}
	if !ok {
		return Parts{}, false
	}
	var mp modelPrice
	if r.override != nil {
		mp = r.override.modelPrice()
	} else {
		mp = r.model.priceAt(callTime(call))
	}
	p, ok := mp.cost(call)
	p.Model = r.id
	return p, ok
}

func callTime(c event.LLMCall) time.Time {
	switch {
	case !c.Start.IsZero():
		return c.Start
	case !c.End.IsZero():
		return c.End
	}
	return time.Now()
}

func (mp modelPrice) cost(c event.LLMCall) (Parts, bool) {
	if !mp.billable() {
		return Parts{}, false
	}
	in, hasIn := mp[keyInput]
	out, hasOut := mp[keyOutput]
	cr, hasCR := mp[keyCacheRead]
	cw, hasCW := mp[keyCacheWrite]
	rs, hasRS := mp[keyReasoning]
	plainIn, plainOut := c.InputTokens, c.OutputTokens
	var cacheRead, cacheWrite, reasoning int64
	if hasCR {
		cacheRead = c.CacheReadTokens
		plainIn -= cacheRead
	}
	if hasCW {
		cacheWrite = c.CacheCreationTokens
		plainIn -= cacheWrite
	}
	if hasRS {
		reasoning = c.ReasoningTokens
		plainOut -= reasoning
	}
	plainIn, plainOut = max(plainIn, 0), max(plainOut, 0)
	if (plainIn > 0 && !hasIn) || (plainOut > 0 && !hasOut) {
		return Parts{}, false // tokens of a kind the model has no rate for: unknown, not free
	}
	n := c.InputTokens // selects the tier
	// Summed in millionths of a dollar (price per million × tokens) and
	// divided once, so that a cost reads as the figure a person computes
	// (0.0045, not 0.0045000000000000005).
	micro := func(p tieredPrice, tokens int64) float64 {
		if tokens <= 0 {
			return 0
		}
		return p.at(n) * float64(tokens)
	}
	prompt := micro(in, plainIn) + micro(cr, cacheRead) + micro(cw, cacheWrite)
	if fee, ok := mp[keyRequests]; ok {
		prompt += fee.at(n) * 1e3 // per thousand requests
	}
	completion := micro(out, plainOut) + micro(rs, reasoning)
	return Parts{Prompt: prompt / 1e6, Completion: completion / 1e6, Total: (prompt + completion) / 1e6}, true
}

// Cost prices one call: CostParts(call).Total.
func (t *Table) Cost(call event.LLMCall) (usd float64, ok bool) {
	p, ok := t.CostParts(call)
	return p.Total, ok
}

// Cost prices a call with the built-in table.
func Cost(call event.LLMCall) (usd float64, ok bool) {
	return builtinTable().Cost(call)
}

var builtinTable = sync.OnceValue(Builtin)
