package prices

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// The vendored data uses nothing this code does not implement: every match
// clause kind, price key and constraint is known (a refreshed database that
// brings a new one fails here, not silently at run time).
func TestVendoredDataKnown(t *testing.T) {
	db, err := builtinDB()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range db.problems {
		t.Error(p)
	}

	// The same, independently of the parser: walk the raw JSON.
	var doc struct {
		Providers []map[string]json.RawMessage `json:"providers"`
	}
	if err := json.Unmarshal(builtinDatabase, &doc); err != nil {
		t.Fatal(err)
	}
	used := map[string]int{}
	var clause func(where string, raw json.RawMessage)
	clause = func(where string, raw json.RawMessage) {
		var c map[string]json.RawMessage
		if err := json.Unmarshal(raw, &c); err != nil || len(c) != 1 {
			t.Errorf("%s: clause %s", where, raw)
			return
		}
		for k, v := range c {
			used[k]++
			switch {
			case k == "or" || k == "and":
				var list []json.RawMessage
				json.Unmarshal(v, &list)
				for _, s := range list {
					clause(where, s)
				}
			case !slices.Contains(matchKinds, k):
				t.Errorf("%s: unknown match clause kind %q", where, k)
			}
		}
	}
	constraints := map[string]int{}
	for _, p := range doc.Providers {
		var id string
		json.Unmarshal(p["id"], &id)
		for _, k := range []string{"model_match", "provider_match"} {
			if p[k] != nil {
				clause(id+" "+k, p[k])
			}
		}
		var models []struct {
			ID     string          `json:"id"`
			Match  json.RawMessage `json:"match"`
			Prices json.RawMessage `json:"prices"`
		}
		json.Unmarshal(p["models"], &models)
		for _, m := range models {
			clause(id+"/"+m.ID, m.Match)
			var list []struct {
				Constraint map[string]string          `json:"constraint"`
				Prices     map[string]json.RawMessage `json:"prices"`
			}
			if json.Unmarshal(m.Prices, &list) != nil {
				var one map[string]json.RawMessage
				json.Unmarshal(m.Prices, &one)
				list = append(list, struct {
					Constraint map[string]string          `json:"constraint"`
					Prices     map[string]json.RawMessage `json:"prices"`
				}{Prices: one})
			}
			for _, c := range list {
				if c.Constraint != nil {
					constraints[c.Constraint["type"]]++
					if typ := c.Constraint["type"]; typ != "start_date" && typ != "time_of_date" {
						t.Errorf("%s/%s: constraint %v", id, m.ID, c.Constraint)
					}
				}
				for k := range c.Prices {
					if !knownPriceKeys[k] {
						t.Errorf("%s/%s: unknown price key %q", id, m.ID, k)
					}
				}
			}
		}
	}
	t.Logf("match clauses used: %v; constraints: %v", used, constraints)
	// The synthetic database below covers each kind the data uses.
	for k := range used {
		if !slices.Contains(matchKinds, k) {
			t.Errorf("clause kind %q", k)
		}
	}
}

// testDB is a small synthetic database exercising every rule.
const testDB = `{
 "package": "test", "version": "0.0.1", "fetched": "2026-12-01",
 "providers": [
  {"id": "acme", "name": "Acme", "api_pattern": "https://api\\.acme\\.test",
   "model_match": {"starts_with": "acme-"}, "provider_match": {"contains": "acme"},
   "fallback_model_providers": ["base"],
   "models": [
    {"id": "eq", "match": {"equals": "Model-EQ"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "sw", "match": {"starts_with": "SW-"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "ew", "match": {"ends_with": "-EW"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "ct", "match": {"contains": "-ct-"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "rx", "match": {"regex": "^rx-\\d{8}$"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "la", "match": {"regex": "^(?!.*-tts(?:$|-))(?![a-z]+/)la-(x|y)"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "or", "match": {"or": [{"equals": "or-a"}, {"starts_with": "or-b"}]}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "and", "match": {"and": [{"starts_with": "and-"}, {"ends_with": "-x"}, {"or": [{"contains": "-1-"}, {"contains": "-2-"}]}]}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "iso", "match": {"equals": "iso-2026-01-02"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "tiered", "match": {"equals": "tiered"}, "prices": {
      "input_mtok": {"base": 1, "tiers": [{"start": 1000, "price": 3}, {"start": 100, "price": 2}]},
      "output_mtok": {"base": 10, "tiers": [{"start": 100, "price": 20}]},
      "cache_read_mtok": 0.1}},
    {"id": "dated", "match": {"equals": "dated"}, "prices": [
      {"prices": {"input_mtok": 1, "output_mtok": 2}},
      {"constraint": {"start_date": "2026-01-01", "type": "start_date"}, "prices": {"input_mtok": 3, "output_mtok": 4}},
      {"constraint": {"start_date": "2026-06-01"}, "prices": {"input_mtok": 5, "output_mtok": 6}}]},
    {"id": "tod", "match": {"equals": "tod"}, "prices": [
      {"prices": {"input_mtok": 1, "output_mtok": 1}},
      {"constraint": {"type": "time_of_date", "start_time": "22:00:00Z", "end_time": "02:00:00Z"}, "prices": {"input_mtok": 0.5, "output_mtok": 0.5}},
      {"constraint": {"start_time": "10:00:00+02:00", "end_time": "12:00:00.5+02:00"}, "prices": {"input_mtok": 0.25, "output_mtok": 0.25}}]},
    {"id": "reason", "match": {"equals": "reason"}, "prices": {"input_mtok": 1, "cache_write_mtok": 2, "output_mtok": 10, "output_reasoning_mtok": 5, "cache_write_1h_mtok": 99, "web_searches_kcount": 99}},
    {"id": "fee", "match": {"equals": "fee"}, "prices": {"input_mtok": 1, "output_mtok": 1, "requests_kcount": 12}},
    {"id": "inonly", "match": {"equals": "inonly"}, "prices": {"input_mtok": 1}},
    {"id": "empty", "match": {"equals": "empty"}, "prices": {}},
    {"id": "first", "match": {"starts_with": "dup"}, "prices": {"input_mtok": 1, "output_mtok": 1}},
    {"id": "second", "match": {"equals": "dup"}, "prices": {"input_mtok": 2, "output_mtok": 2}}
   ]},
  {"id": "base", "api_pattern": "https://(www\\.)?base\\.test", "fallback_model_providers": ["deep"],
   "models": [{"id": "shared", "match": {"equals": "shared"}, "prices": {"input_mtok": 7, "output_mtok": 7}}]},
  {"id": "deep", "model_match": {"contains": "deep"},
   "models": [{"id": "deeper", "match": {"equals": "deeper"}, "prices": {"input_mtok": 1, "output_mtok": 1}}]}
 ]}`

func testTable(t *testing.T) *Table {
	t.Helper()
	db, err := parseDatabase([]byte(testDB))
	if err != nil {
		t.Fatal(err)
	}
	if len(db.problems) > 0 {
		t.Fatalf("problems: %v", db.problems)
	}
	return newTable(db)
}

func TestMatchClauses(t *testing.T) {
	tab := testTable(t)
	for model, want := range map[string]string{
		"model-eq": "eq", "MODEL-EQ": "eq", "model-eq-2": "",
		"sw-1": "sw", "x-sw-1": "",
		"a-ew": "ew", "a-ew-b": "",
		"a-ct-b": "ct", "act-b": "",
		"rx-20260101": "rx", "rx-2026010": "", "xrx-20260101": "",
		"la-x": "la", "la-y-2": "la", "la-x-tts": "", "la-x-tts-1": "", "la-x-ttsy": "la", "la/la-x": "",
		"or-a": "or", "or-b-1": "or", "or-c": "",
		"and-1-x": "and", "and-2-x": "and", "and-3-x": "", "and-1-y": "",
		"iso-20260102": "iso", "iso-20260102-x": "", "iso-2026-01-02": "iso", "iso-20260231": "",
		"dup":      "first",  // the first model that matches, in data order
		"shared":   "shared", // the fallback provider's model
		"deeper":   "",       // fallbacks are one level deep
		"acme-foo": "",
	} {
		r, ok := tab.resolve("acme", model)
		if ok != (want != "") || r.id != want {
			t.Errorf("%q: %q (%v), want %q", model, r.id, ok, want)
		}
	}
	for in, want := range map[string]string{
		"x-20260102":            "x-2026-01-02",
		"x-20260102-y":          "x-2026-01-02-y",
		"x-20260102:0":          "x-2026-01-02:0",
		"x-20260102y":           "x-20260102y",
		"x-20260230":            "x-20260230",
		"a-20250101-b-20251231": "a-2025-01-01-b-2025-12-31",
		"x-19990101":            "x-19990101",
	} {
		if got := isoSnapshotDate(in); got != want {
			t.Errorf("isoSnapshotDate(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnknownClauses(t *testing.T) {
	db, err := parseDatabase([]byte(`{"package":"t","version":"1","fetched":"2026-12-01","providers":[{"id":"p","models":[
		{"id":"glob","match":{"glob":"x*"},"prices":{"input_mtok":1}},
		{"id":"two","match":{"equals":"y","starts_with":"z"},"prices":{"input_mtok":1}},
		{"id":"look","match":{"regex":"a(?=b)"},"prices":{"input_mtok":1}},
		{"id":"keys","match":{"equals":"k"},"prices":{"input_mtok":1,"output_grunts_mtok":1}},
		{"id":"when","match":{"equals":"w"},"prices":[{"prices":{"input_mtok":1}},{"constraint":{"weekday":"mon"},"prices":{"input_mtok":2}}]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(db.problems) != 5 {
		t.Errorf("problems: %q", db.problems)
	}
	p := db.providers[0]
	for _, name := range []string{"x", "xy", "ab"} {
		if m := db.findModel(p, name); m != nil {
			t.Errorf("%q matched %s", name, m.id)
		}
	}
	if m := db.findModel(p, "y"); m == nil || m.id != "two" { // upstream's precedence: equals before starts_with
		t.Errorf("y: %v", m)
	}
	if m := db.findModel(p, "w"); m == nil || m.priceAt(time.Now())[keyInput].base != 1 {
		t.Error("an unknown constraint applied")
	}
	for _, bad := range []string{
		`{"package":"t","version":"1","fetched":"2026-12-01","providers":[{"id":"p","models":[{"id":"m","match":{"equals":"m"},"prices":{"input_mtok":-1}}]}]}`,
		`{"package":"t","version":"1","fetched":"2026-12-01","providers":[{"id":"p","models":[{"id":"m","match":{"equals":"m"},"prices":{"input_mtok":{"base":1}}}]}]}`,
		`{"package":"t","version":"1","fetched":"2026-12-01","providers":[{"id":"p","models":[{"id":"m","match":{"equals":"m"},"prices":{"input_mtok":{"base":1,"tiers":[{"start":1.5,"price":1}]}}}]}]}`,
		`{"package":"t","version":"1","fetched":"2026-12-01","providers":[{"id":"p","models":[{"id":"m","match":{"equals":"m"}}]}]}`,
		`{"package":"t","version":"1","fetched":"2026-12-01","providers":[{"id":"p","models":[{"id":"m","prices":{}}]}]}`,
		`{"package":"t","version":"1","fetched":"2026-12-01","providers":[]}`,
		`{"package":"t","version":"1","fetched":"yesterday","providers":[{"id":"p","models":[]}]}`,
	} {
		if _, err := parseDatabase([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestCompileJSRegexp(t *testing.T) {
	for _, tc := range []struct {
		re      string
		matches []string
		not     []string
	}{
		{`^(?!.*-[tT][tT][sS](?:$|-))`, []string{"gemini-2.5-pro", "x-ttsy"}, []string{"gemini-tts", "a-tts-b"}},
		{`^(?![^/]+/)(?:labs-)?(?:mi|code)stral`, []string{"mistral-large", "labs-codestral"}, []string{"mistralai/mistral", "xmistral"}},
		{`^(?![(\)]x)a[)]`, []string{"a)"}, []string{"(xa)"}},
		{`^composer-2\.5\[fast=true\]$`, []string{"composer-2.5[fast=true]"}, []string{"composer-2x5[fast=true]"}},
		{`o[134]`, []string{"o3", "gpt-o1"}, []string{"o2"}}, // unanchored, as RegExp.test
	} {
		re, err := compileJSRegexp(tc.re)
		if err != nil {
			t.Errorf("%s: %v", tc.re, err)
			continue
		}
		for _, s := range tc.matches {
			if !re.MatchString(s) {
				t.Errorf("%s does not match %q", tc.re, s)
			}
		}
		for _, s := range tc.not {
			if re.MatchString(s) {
				t.Errorf("%s matches %q", tc.re, s)
			}
		}
	}
	for _, bad := range []string{`a(?=b)`, `a(?!b)`, `(?<=a)b`, `^(?!a`} {
		if _, err := compileJSRegexp(bad); err == nil {
			t.Errorf("%s compiled", bad)
		}
	}
}

func TestFindProvider(t *testing.T) {
	db := testTable(t).db
	for _, tc := range []struct{ id, url, model, want string }{
		{"acme", "", "", "acme"},
		{" ACME ", "", "", "acme"},
		{"my-acme-gateway", "", "", "acme"}, // provider_match
		{"nobody", "", "acme-1", ""},        // an id that matches nothing: no guessing from the model
		{"", "https://api.acme.test/v1", "", "acme"},
		{"", "https://base.test", "", "base"},
		{"", "http://api.acme.test", "", ""},
		{"", "x https://api.acme.test", "", ""}, // anchored at the start
		{"", "", "acme-1", "acme"},              // model_match
		{"", "", "deepest", "deep"},
		{"", "", "zzz", ""},
	} {
		p := db.findProvider(tc.id, tc.url, tc.model)
		if got := ""; p != nil {
			got = p.id
			if got != tc.want {
				t.Errorf("%+v: %s", tc, got)
			}
		} else if tc.want != "" {
			t.Errorf("%+v: none", tc)
		}
	}
}

func TestTiersAndParts(t *testing.T) {
	tab := testTable(t)
	call := func(model string, in, cacheRead, cacheWrite, out, reasoning int64) event.LLMCall {
		return event.LLMCall{Provider: "acme", ResponseModel: model, UsageKnown: true, InputTokens: in, CacheReadTokens: cacheRead,
			CacheCreationTokens: cacheWrite, OutputTokens: out, ReasoningTokens: reasoning}
	}
	for _, tc := range []struct {
		call               event.LLMCall
		prompt, completion float64
	}{
		// The tier is chosen by all input tokens, strictly past its start,
		// and applies to every token of the key (output too).
		{call("tiered", 100, 0, 0, 10, 0), 100 * 1, 10 * 10},
		{call("tiered", 101, 0, 0, 10, 0), 101 * 2, 10 * 20},
		{call("tiered", 1000, 0, 0, 10, 0), 1000 * 2, 10 * 20},
		{call("tiered", 1001, 500, 300, 10, 4), (1001-500)*3 + 500*0.1, 10 * 20}, // no cache_write_mtok: writes stay input; reasoning stays output
		// Reasoning taken out of output where it has its own rate; cache
		// writes at cache_write_mtok, never at the 1-hour rate or with a
		// web search fee (the call reports neither).
		{call("reason", 1000, 0, 400, 100, 30), 600*1 + 400*2, 70*10 + 30*5},
		// A per-request fee (requests_kcount per 1000 requests) is prompt side.
		{call("fee", 1000, 0, 0, 100, 0), 1000*1 + 12.0/1e3*1e6, 100 * 1},
		// Only input tokens: fine for an input-only model.
		{call("inonly", 1000, 0, 0, 0, 0), 1000, 0},
		// More cache than input: no negative tokens.
		{call("tiered", 50, 80, 0, 0, 0), 80 * 0.1, 0},
	} {
		p, ok := tab.CostParts(tc.call)
		if !ok || !near(p.Prompt, tc.prompt/1e6) || !near(p.Completion, tc.completion/1e6) || !near(p.Total, (tc.prompt+tc.completion)/1e6) ||
			p.Model != tc.call.ResponseModel {
			t.Errorf("%s %d/%d/%d/%d/%d: %+v (%v), want %v + %v", tc.call.ResponseModel, tc.call.InputTokens, tc.call.CacheReadTokens,
				tc.call.CacheCreationTokens, tc.call.OutputTokens, tc.call.ReasoningTokens, p, ok, tc.prompt/1e6, tc.completion/1e6)
		}
	}
	for _, c := range []event.LLMCall{call("inonly", 10, 0, 0, 1, 0), call("empty", 0, 0, 0, 0, 0), call("empty", 10, 0, 0, 0, 0)} {
		if p, ok := tab.CostParts(c); ok {
			t.Errorf("%s with %d out: priced %+v", c.ResponseModel, c.OutputTokens, p)
		}
	}
	if _, ok := tab.Lookup("acme", "empty"); ok {
		t.Error("a model without token prices has a Lookup price")
	}
	if p, ok := tab.Lookup("acme", "tiered"); !ok || p.Input != 1 || p.Output != 10 || p.CacheRead == nil || *p.CacheRead != 0.1 || p.CacheWrite != nil {
		t.Errorf("Lookup of a tiered price is its base: %+v", p)
	}
}

func TestConditionalPrices(t *testing.T) {
	tab := testTable(t)
	at := func(model string, start, end time.Time) float64 {
		usd, ok := tab.Cost(event.LLMCall{Provider: "acme", ResponseModel: model, UsageKnown: true, InputTokens: 1e6, Start: start, End: end})
		if !ok {
			t.Fatalf("%s unpriced", model)
		}
		return usd
	}
	day := func(y int, m time.Month, d, h, min, s, ms int) time.Time {
		return time.Date(y, m, d, h, min, s, ms*1e6, time.UTC)
	}
	var zero time.Time
	for _, tc := range []struct {
		start, end time.Time
		want       float64
	}{
		{day(2025, 12, 31, 23, 59, 59, 999), zero, 1},
		{day(2026, 1, 1, 0, 0, 0, 0), zero, 3}, // from the start date's UTC midnight
		{day(2026, 1, 1, 0, 0, 0, 0).In(time.FixedZone("UTC+2", 7200)), zero, 3},
		{day(2026, 5, 31, 23, 0, 0, 0), zero, 3},
		{day(2026, 6, 1, 0, 0, 0, 0), zero, 5},                        // the untyped form of older data.json files
		{zero, day(2025, 1, 1, 0, 0, 0, 0), 1},                        // no start: the end
		{day(2025, 1, 1, 0, 0, 0, 0), day(2026, 7, 1, 0, 0, 0, 0), 1}, // the start wins
		{zero, zero, 5}, // neither: now (after 2026-06-01)
	} {
		if got := at("dated", tc.start, tc.end); got != tc.want {
			t.Errorf("dated at %v/%v: %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
	for _, tc := range []struct {
		at   time.Time
		want float64
	}{
		{day(2026, 3, 1, 21, 59, 59, 999), 1},
		{day(2026, 3, 1, 22, 0, 0, 0), 0.5}, // [22:00, 02:00) wraps past midnight
		{day(2026, 3, 1, 23, 30, 0, 0), 0.5},
		{day(2026, 3, 1, 1, 59, 59, 999), 0.5},
		{day(2026, 3, 1, 2, 0, 0, 0), 1},
		{day(2026, 3, 1, 7, 59, 59, 0), 1},
		{day(2026, 3, 1, 8, 0, 0, 0), 0.25}, // 10:00+02:00
		{day(2026, 3, 1, 10, 0, 0, 400), 0.25},
		{day(2026, 3, 1, 10, 0, 0, 500), 1}, // 12:00:00.5+02:00, exclusive
		{day(2026, 3, 1, 12, 0, 0, 0), 1},
	} {
		if got := at("tod", tc.at, zero); got != tc.want {
			t.Errorf("tod at %v: %v, want %v", tc.at, got, tc.want)
		}
	}
	for in, want := range map[string]float64{"00:00:00Z": 0, "01:30:00+02:00": 84600, "23:00:00-01:00": 0, "12:00:00.25Z": 43200.25} {
		if got, err := secondOfDay(in); err != nil || got != want {
			t.Errorf("secondOfDay(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"24:00:00Z", "12:00:00", "12:60:00Z", "12:00:00+24:00", "1:00:00Z"} {
		if _, err := secondOfDay(bad); err == nil {
			t.Errorf("secondOfDay(%q) accepted", bad)
		}
	}
}

// upstreamCase is one line of testdata/genai-prices-upstream.json: what the
// vendored package's calcPrice() said (scripts/update-prices.sh).
type upstreamCase struct {
	Usage    string  `json:"usage"`
	At       string  `json:"at"`
	Provider string  `json:"provider"`
	APIURL   string  `json:"api_url"`
	Model    string  `json:"model"`
	Match    *string `json:"match"`
	Input    float64 `json:"input"`
	Output   float64 `json:"output"`
	Total    float64 `json:"total"`
	Error    string  `json:"error"`
}

// The Go rules give what the npm package itself gives, for every model of
// the vendored data and for names as agents send them: the same model (or
// none) and the same input, output and total prices, whenever agentwatch
// prices the call at all.
func TestUpstreamAgreement(t *testing.T) {
	b, err := os.ReadFile("testdata/genai-prices-upstream.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Package string `json:"package"`
		Version string `json:"version"`
		Usages  map[string]struct {
			Input      int64 `json:"input_tokens"`
			CacheRead  int64 `json:"cache_read_tokens"`
			CacheWrite int64 `json:"cache_write_tokens"`
			Output     int64 `json:"output_tokens"`
			Reasoning  int64 `json:"output_reasoning_tokens"`
		} `json:"usages"`
		Cases []upstreamCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	db, _ := builtinDB()
	if golden.Package != db.meta.Package || golden.Version != db.meta.Version {
		t.Fatalf("the reference results are of %s %s, the data of %s %s: run scripts/update-prices.sh",
			golden.Package, golden.Version, db.meta.Package, db.meta.Version)
	}
	if len(golden.Cases) < 1000 {
		t.Fatalf("%d cases", len(golden.Cases))
	}
	var priced, unpriced, none, failed int
	for _, c := range golden.Cases {
		where := c.Provider + c.APIURL + " " + c.Model + " " + c.Usage + " " + c.At
		if c.Error != "" {
			failed++
			t.Logf("%s: upstream failed: %s", where, c.Error)
			continue
		}
		name := strings.ToLower(strings.TrimSpace(c.Model))
		var m *dbModel
		if p := db.findProvider(c.Provider, c.APIURL, name); p != nil {
			m = db.findModel(p, name)
		}
		if (m == nil) != (c.Match == nil) || (m != nil && m.id != *c.Match) {
			id := "<none>"
			if m != nil {
				id = m.id
			}
			t.Errorf("%s: model %s, upstream %v", where, id, c.Match)
			continue
		}
		if m == nil {
			none++
			continue
		}
		at, err := time.Parse(time.RFC3339, c.At)
		if err != nil {
			t.Fatal(err)
		}
		u := golden.Usages[c.Usage]
		mp := m.priceAt(at)
		parts, ok := mp.cost(event.LLMCall{UsageKnown: true, InputTokens: u.Input, CacheReadTokens: u.CacheRead,
			CacheCreationTokens: u.CacheWrite, OutputTokens: u.Output, ReasoningTokens: u.Reasoning})
		if !ok {
			// Stricter than upstream: tokens of a kind the model has no
			// rate for make the cost unknown, not zero.
			if _, in := mp[keyInput]; in {
				if _, out := mp[keyOutput]; out {
					t.Errorf("%s: unpriced, upstream %v", where, c.Total)
				}
			}
			unpriced++
			continue
		}
		fee := c.Total - c.Input - c.Output // upstream counts a per-request fee in neither
		if !near(parts.Prompt, c.Input+fee) || !near(parts.Completion, c.Output) || !near(parts.Total, c.Total) {
			t.Errorf("%s (%s): %+v, upstream input %v output %v total %v", where, m.id, parts, c.Input, c.Output, c.Total)
		}
		priced++
	}
	t.Logf("%d cases: %d priced alike, %d matched but left unpriced here, %d unmatched by both, %d failed upstream",
		len(golden.Cases), priced, unpriced, none, failed)
	if priced < 1000 {
		t.Errorf("only %d cases priced", priced)
	}
}
