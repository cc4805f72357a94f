package prices

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file reads the genai-prices database (genai-prices.json, vendored
// from the npm package @pydantic/genai-prices by scripts/update-prices.sh)
// and implements its matching and price-selection rules the way the
// package's own calcPrice does (dist/index.js of the vendored version; the
// Python package follows the same rules):
//
//   - provider: by id (case-insensitive), else the first provider whose
//     provider_match matches the id; without an id, the first whose
//     api_pattern matches the API URL from its start, else the first whose
//     model_match matches the model;
//   - model: the name lower-cased and trimmed; the first model of the
//     provider whose match clause matches, else the first match among the
//     models of its fallback_model_providers (one level), else the same
//     again with a "-YYYYMMDD" date in the name rewritten "-YYYY-MM-DD";
//   - match clauses: equals, starts_with, ends_with, contains (all
//     case-insensitive), regex (an unanchored search, case-sensitive, on the
//     lower-cased name) and or/and lists of clauses;
//   - conditional prices: the entries are tried from the last to the first
//     and the first whose constraint holds at the call's time is in force
//     (no constraint always holds; start_date: at or after that UTC
//     midnight; time_of_date: within [start_time, end_time) of the UTC day,
//     wrapping past midnight when end < start); none: the first entry;
//   - tiered prices: the rate of the last tier whose start is strictly below
//     the call's input token count (cached tokens included), else base,
//     applies to all the tokens of that price key (not marginally).

// Meta records where the vendored price database came from: the fields
// scripts/update-prices.sh writes next to the data.
type Meta struct {
	Package          string `json:"package"`           // @pydantic/genai-prices
	Version          string `json:"version"`           // the package version, e.g. 0.1.8
	Published        string `json:"published"`         // when that version was published on npm, YYYY-MM-DD
	Fetched          string `json:"fetched"`           // when the data was fetched, YYYY-MM-DD
	License          string `json:"license"`           // MIT
	LicenseFile      string `json:"license_file"`      // the notice next to the data
	Homepage         string `json:"homepage"`          //
	TarballIntegrity string `json:"tarball_integrity"` // npm's integrity hash of the tarball read
	ExtractedFrom    string `json:"extracted_from"`    // how the data was read out of the package
}

// database is a parsed genai-prices data set; it is not modified after
// parseDatabase, so tables share it.
type database struct {
	meta      Meta
	providers []*dbProvider
	// problems lists what the data uses that this code does not implement
	// (an unknown match clause kind, price key or constraint, a regex Go
	// cannot run). Such a clause never matches and such a price or
	// constraint is ignored, as upstream ignores unknown keys; the tests
	// require the vendored data to have none.
	problems []string
}

type dbProvider struct {
	id, name      string
	apiPattern    *regexp.Regexp // anchored at the start; nil: none (or not compilable: a problem)
	modelMatch    *matcher       // nil: none
	providerMatch *matcher
	fallbacks     []string // fallback_model_providers
	models        []*dbModel
}

type dbModel struct {
	id, name string
	match    *matcher
	prices   []conditionalPrice // a single price object is one entry without constraint
}

type conditionalPrice struct {
	constraint *constraint // nil: always holds
	prices     modelPrice
}

// modelPrice maps a price key (input_mtok, cache_read_mtok, ...) to its
// price. A key that is absent is not priced, which is not the same as
// priced at zero.
type modelPrice map[string]tieredPrice

// tieredPrice is a price in USD per the key's unit; a plain number in the
// data is a base without tiers.
type tieredPrice struct {
	base  float64
	tiers []tier // by start, ascending
}

type tier struct {
	start int64
	price float64
}

// at is the rate in force for a call with inputTokens input tokens.
func (p tieredPrice) at(inputTokens int64) float64 {
	r := p.base
	for _, t := range p.tiers {
		if inputTokens > t.start {
			r = t.price
		}
	}
	return r
}

type constraintKind int

const (
	unknownConstraint constraintKind = iota
	startDate
	timeOfDay
)

type constraint struct {
	kind     constraintKind
	start    time.Time // startDate
	from, to float64   // timeOfDay: seconds into the UTC day
}

func (c *constraint) holds(at time.Time) bool {
	switch c.kind {
	case startDate:
		return !at.Before(c.start)
	case timeOfDay:
		u := at.UTC()
		s := float64(u.Hour()*3600+u.Minute()*60+u.Second()) + float64(u.Nanosecond()/1e6)/1e3
		if c.to < c.from {
			return s >= c.from || s < c.to
		}
		return s >= c.from && s < c.to
	}
	return false
}

// priceAt is the model's price in force at a time.
func (m *dbModel) priceAt(at time.Time) modelPrice {
	for i := len(m.prices) - 1; i >= 0; i-- {
		if c := m.prices[i]; c.constraint == nil || c.constraint.holds(at) {
			return c.prices
		}
	}
	return m.prices[0].prices
}

// findProvider resolves a provider as upstream does for a providerId, else
// a providerApiUrl, else a model name (lower-cased).
func (db *database) findProvider(id, apiURL, model string) *dbProvider {
	if id = strings.ToLower(strings.TrimSpace(id)); id != "" {
		for _, p := range db.providers {
			if p.id == id {
				return p
			}
		}
		for _, p := range db.providers {
			if p.providerMatch != nil && p.providerMatch.match(id) {
				return p
			}
		}
		return nil
	}
	if apiURL != "" {
		for _, p := range db.providers {
			if p.apiPattern != nil && p.apiPattern.MatchString(apiURL) {
				return p
			}
		}
		return nil
	}
	for _, p := range db.providers {
		if p.modelMatch != nil && p.modelMatch.match(model) {
			return p
		}
	}
	return nil
}

func (db *database) provider(id string) *dbProvider {
	for _, p := range db.providers {
		if p.id == id {
			return p
		}
	}
	return nil
}

// findModel is upstream's model lookup within a provider; name must be
// lower-cased and trimmed.
func (db *database) findModel(p *dbProvider, name string) *dbModel {
	if m := db.findModelIn(p, name, true); m != nil {
		return m
	}
	if alt := isoSnapshotDate(name); alt != name {
		return db.findModelIn(p, alt, true)
	}
	return nil
}

func (db *database) findModelIn(p *dbProvider, name string, fallbacks bool) *dbModel {
	for _, m := range p.models {
		if m.match.match(name) {
			return m
		}
	}
	if fallbacks {
		for _, id := range p.fallbacks {
			if fp := db.provider(id); fp != nil {
				if m := db.findModelIn(fp, name, false); m != nil {
					return m
				}
			}
		}
	}
	return nil
}

var compactDate = regexp.MustCompile(`-(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])`)

// isoSnapshotDate rewrites each "-YYYYMMDD" (a real date, followed by "-",
// ":" or the end) as "-YYYY-MM-DD": upstream's second try for Anthropic-style
// snapshot names against OpenAI-style match clauses.
func isoSnapshotDate(name string) string {
	var b strings.Builder
	last := 0
	for _, ix := range compactDate.FindAllStringSubmatchIndex(name, -1) {
		if end := ix[1]; end < len(name) && name[end] != '-' && name[end] != ':' {
			continue
		}
		y, m, d := name[ix[2]:ix[3]], name[ix[4]:ix[5]], name[ix[6]:ix[7]]
		if _, err := time.Parse("20060102", y+m+d); err != nil { // 20250231
			continue
		}
		b.WriteString(name[last:ix[0]])
		b.WriteString("-" + y + "-" + m + "-" + d)
		last = ix[1]
	}
	if last == 0 {
		return name
	}
	b.WriteString(name[last:])
	return b.String()
}

// matcher is one match clause.
type matcher struct {
	kind  string // equals, starts_with, ends_with, contains, regex, or, and; "" unknown (never matches)
	value string // lower-cased, for the string kinds
	re    *jsRegexp
	subs  []*matcher
}

// matchKinds are the clause kinds, in the order upstream tests for them
// when a clause has more than one key.
var matchKinds = []string{"or", "and", "equals", "starts_with", "ends_with", "contains", "regex"}

// match reports whether the clause matches s (already lower-cased).
func (m *matcher) match(s string) bool {
	switch m.kind {
	case "or":
		return slices.ContainsFunc(m.subs, func(c *matcher) bool { return c.match(s) })
	case "and":
		return !slices.ContainsFunc(m.subs, func(c *matcher) bool { return !c.match(s) })
	case "equals":
		return s == m.value
	case "starts_with":
		return strings.HasPrefix(s, m.value)
	case "ends_with":
		return strings.HasSuffix(s, m.value)
	case "contains":
		return strings.Contains(s, m.value)
	case "regex":
		return m.re != nil && m.re.MatchString(s)
	}
	return false
}

// jsRegexp runs a JavaScript regular expression with Go's regexp: the data
// is written for JS, whose syntax is a superset of RE2's in ways the data
// uses. The one extension handled is a negative lookahead at the start,
// "^(?!A)(?!B)R", run as "^R" matching and neither "^(?:A)" nor "^(?:B)";
// any other lookaround fails to compile (a problem: the clause never
// matches).
type jsRegexp struct {
	re  *regexp.Regexp
	not []*regexp.Regexp
}

func compileJSRegexp(src string) (*jsRegexp, error) {
	r := &jsRegexp{}
	rest := src
	for strings.HasPrefix(rest, "^(?!") {
		end := closingParen(rest, len("^"))
		if end < 0 {
			return nil, fmt.Errorf("regex %q: unbalanced lookahead", src)
		}
		n, err := regexp.Compile("^(?:" + rest[len("^(?!"):end] + ")")
		if err != nil {
			return nil, fmt.Errorf("regex %q: %w", src, err)
		}
		r.not = append(r.not, n)
		rest = "^" + rest[end+1:]
	}
	re, err := regexp.Compile(rest)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", src, err)
	}
	r.re = re
	return r, nil
}

// closingParen is the index of the ")" closing the group opened at
// s[open], skipping escapes and character classes; -1 if none.
func closingParen(s string, open int) int {
	depth, class := 0, false
	for i := open; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case class:
			class = c != ']'
		case c == '[':
			class = true
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

func (r *jsRegexp) MatchString(s string) bool {
	for _, n := range r.not {
		if n.MatchString(s) {
			return false
		}
	}
	return r.re.MatchString(s)
}

// knownPriceKeys are the price keys of upstream's unit registry (its
// units.yml, bundled in the package): every key a valid data set may use.
// Only some can be billed from what an event.LLMCall carries (see
// modelPrice.cost); the others price usage a call does not report (audio,
// images, tool calls, 1-hour cache writes separately, ...) and so cost
// nothing here, as they would upstream for the same usage. A key outside
// this list is a problem: a new unit upstream that must be looked at.
var knownPriceKeys = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`
		input_mtok output_mtok cache_read_mtok cache_write_mtok
		cache_write_5m_mtok cache_write_1h_mtok
		cache_text_read_mtok cache_text_write_mtok cache_text_write_5m_mtok cache_text_write_1h_mtok
		cache_audio_read_mtok cache_audio_write_mtok cache_audio_write_5m_mtok cache_audio_write_1h_mtok
		cache_image_read_mtok cache_image_write_mtok cache_image_write_5m_mtok cache_image_write_1h_mtok
		cache_video_read_mtok cache_video_write_mtok cache_video_write_5m_mtok cache_video_write_1h_mtok
		input_text_mtok input_audio_mtok input_image_mtok input_video_mtok
		input_tool_mtok input_text_tool_mtok input_audio_tool_mtok input_image_tool_mtok input_video_tool_mtok
		input_mchars input_gpixels input_document_kpages input_annotated_document_kpages
		input_audio_hours input_text_messages_kcount audio_hours
		output_text_mtok output_audio_mtok output_image_mtok output_video_mtok
		output_reasoning_mtok output_text_reasoning_mtok output_audio_reasoning_mtok
		output_image_reasoning_mtok output_video_reasoning_mtok
		output_citation_mtok output_text_citation_mtok output_audio_citation_mtok
		output_image_citation_mtok output_video_citation_mtok output_audio_hours
		requests_kcount web_searches_kcount storage_searches_kcount social_searches_kcount
		rerank_searches_kcount code_executions_kcount`) {
		knownPriceKeys[k] = true
	}
}

// The JSON of the data set, as far as it is read.
type (
	jsonDatabase struct {
		Meta
		Providers []jsonProvider `json:"providers"`
	}
	jsonProvider struct {
		ID            string          `json:"id"`
		Name          string          `json:"name"`
		APIPattern    string          `json:"api_pattern"`
		ModelMatch    json.RawMessage `json:"model_match"`
		ProviderMatch json.RawMessage `json:"provider_match"`
		Fallbacks     []string        `json:"fallback_model_providers"`
		Models        []jsonModel     `json:"models"`
	}
	jsonModel struct {
		ID     string          `json:"id"`
		Name   string          `json:"name"`
		Match  json.RawMessage `json:"match"`
		Prices json.RawMessage `json:"prices"`
	}
	jsonConditional struct {
		Constraint map[string]string          `json:"constraint"`
		Prices     map[string]json.RawMessage `json:"prices"`
	}
	jsonTiered struct {
		Base  *float64 `json:"base"`
		Tiers []struct {
			Start *float64 `json:"start"`
			Price *float64 `json:"price"`
		} `json:"tiers"`
	}
)

// parseDatabase reads a data set. Malformed data is an error; what is
// well-formed but unknown to this code is recorded in problems.
func parseDatabase(b []byte) (*database, error) {
	var j jsonDatabase
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("decoding price database: %w", err)
	}
	if j.Package == "" || j.Version == "" || j.Fetched == "" {
		return nil, fmt.Errorf("price database lacks its package, version or fetched date")
	}
	if _, err := time.Parse(time.DateOnly, j.Fetched); err != nil {
		return nil, fmt.Errorf("price database: fetched date: %w", err)
	}
	if len(j.Providers) == 0 {
		return nil, fmt.Errorf("price database has no providers")
	}
	db := &database{meta: j.Meta}
	for _, jp := range j.Providers {
		p, err := db.parseProvider(jp)
		if err != nil {
			return nil, fmt.Errorf("price database: provider %q: %w", jp.ID, err)
		}
		db.providers = append(db.providers, p)
	}
	return db, nil
}

func (db *database) problem(format string, a ...any) {
	db.problems = append(db.problems, fmt.Sprintf(format, a...))
}

func (db *database) parseProvider(jp jsonProvider) (*dbProvider, error) {
	if jp.ID == "" {
		return nil, fmt.Errorf("no id")
	}
	p := &dbProvider{id: jp.ID, name: jp.Name, fallbacks: jp.Fallbacks}
	if jp.APIPattern != "" {
		// upstream: new RegExp(`^(?:${api_pattern})`).test(url)
		if re, err := compileJSRegexp("^(?:" + jp.APIPattern + ")"); err != nil {
			db.problem("provider %s: api_pattern: %v", jp.ID, err)
		} else {
			p.apiPattern = re.re
			if len(re.not) > 0 {
				db.problem("provider %s: api_pattern %q: lookahead not supported there", jp.ID, jp.APIPattern)
				p.apiPattern = nil
			}
		}
	}
	var err error
	if p.modelMatch, err = db.parseMatch(jp.ModelMatch, jp.ID+" model_match", true); err != nil {
		return nil, err
	}
	if p.providerMatch, err = db.parseMatch(jp.ProviderMatch, jp.ID+" provider_match", true); err != nil {
		return nil, err
	}
	for _, jm := range jp.Models {
		m, err := db.parseModel(jp.ID, jm)
		if err != nil {
			return nil, fmt.Errorf("model %q: %w", jm.ID, err)
		}
		p.models = append(p.models, m)
	}
	return p, nil
}

func (db *database) parseModel(prov string, jm jsonModel) (*dbModel, error) {
	where := prov + "/" + jm.ID
	m := &dbModel{id: jm.ID, name: jm.Name}
	if jm.ID == "" {
		return nil, fmt.Errorf("no id")
	}
	var err error
	if m.match, err = db.parseMatch(jm.Match, where+" match", false); err != nil {
		return nil, err
	}
	raw := strings.TrimSpace(string(jm.Prices))
	switch {
	case strings.HasPrefix(raw, "["):
		var list []jsonConditional
		if err := json.Unmarshal(jm.Prices, &list); err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("prices: empty list")
		}
		for i, jc := range list {
			c := conditionalPrice{}
			if jc.Constraint != nil {
				c.constraint = db.parseConstraint(jc.Constraint, fmt.Sprintf("%s prices[%d]", where, i))
			}
			if c.prices, err = db.parsePrice(jc.Prices, where); err != nil {
				return nil, fmt.Errorf("prices[%d]: %w", i, err)
			}
			m.prices = append(m.prices, c)
		}
	case strings.HasPrefix(raw, "{"):
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(jm.Prices, &obj); err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		mp, err := db.parsePrice(obj, where)
		if err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		m.prices = []conditionalPrice{{prices: mp}}
	default:
		return nil, fmt.Errorf("prices: neither an object nor a list")
	}
	return m, nil
}

// parseMatch reads a match clause; a missing one is nil when optional.
func (db *database) parseMatch(raw json.RawMessage, where string, optional bool) (*matcher, error) {
	if len(raw) == 0 || string(raw) == "null" {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: missing", where)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	m := &matcher{}
	for _, k := range matchKinds {
		if _, ok := obj[k]; ok {
			m.kind = k
			break
		}
	}
	if len(obj) != 1 || m.kind == "" {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		db.problem("%s: clause with keys %v (want exactly one of %v)", where, keys, matchKinds)
		if m.kind == "" {
			return m, nil
		}
	}
	v := obj[m.kind]
	switch m.kind {
	case "or", "and":
		var list []json.RawMessage
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, m.kind, err)
		}
		for _, c := range list {
			s, err := db.parseMatch(c, where, false)
			if err != nil {
				return nil, err
			}
			m.subs = append(m.subs, s)
		}
	default:
		if err := json.Unmarshal(v, &m.value); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, m.kind, err)
		}
		if m.kind == "regex" {
			re, err := compileJSRegexp(m.value)
			if err != nil {
				db.problem("%s: %v", where, err)
			}
			m.re = re
		} else {
			m.value = strings.ToLower(m.value)
		}
	}
	return m, nil
}

func (db *database) parsePrice(obj map[string]json.RawMessage, where string) (modelPrice, error) {
	mp := modelPrice{}
	for k, raw := range obj {
		if !knownPriceKeys[k] {
			db.problem("%s: unknown price key %q", where, k)
			continue
		}
		if string(raw) == "null" {
			continue
		}
		p, err := parseTiered(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		mp[k] = p
	}
	return mp, nil
}

func parseTiered(raw json.RawMessage) (tieredPrice, error) {
	valid := func(f float64) bool { return f >= 0 && !math.IsInf(f, 0) && !math.IsNaN(f) }
	var n float64
	if err := json.Unmarshal(raw, &n); err == nil {
		if !valid(n) {
			return tieredPrice{}, fmt.Errorf("negative price %v", n)
		}
		return tieredPrice{base: n}, nil
	}
	var jt jsonTiered
	if err := json.Unmarshal(raw, &jt); err != nil || jt.Base == nil || jt.Tiers == nil {
		return tieredPrice{}, fmt.Errorf("neither a number nor {base, tiers}: %s", raw)
	}
	p := tieredPrice{base: *jt.Base}
	if !valid(p.base) {
		return tieredPrice{}, fmt.Errorf("negative price %v", p.base)
	}
	for _, t := range jt.Tiers {
		if t.Start == nil || t.Price == nil || *t.Start < 0 || *t.Start != math.Trunc(*t.Start) || *t.Start > 1<<53 || !valid(*t.Price) {
			return tieredPrice{}, fmt.Errorf("invalid tier in %s", raw)
		}
		p.tiers = append(p.tiers, tier{start: int64(*t.Start), price: *t.Price})
	}
	slices.SortStableFunc(p.tiers, func(a, b tier) int { return cmp.Compare(a.start, b.start) })
	return p, nil
}

// parseConstraint reads a price constraint, in the typed form of the npm
// data or the untyped one of older data.json files.
func (db *database) parseConstraint(c map[string]string, where string) *constraint {
	keys := make([]string, 0, len(c))
	for k := range c {
		if k != "type" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	typ := c["type"]
	switch {
	case (typ == "" || typ == "start_date") && slices.Equal(keys, []string{"start_date"}):
		if t, err := time.Parse(time.DateOnly, c["start_date"]); err == nil {
			return &constraint{kind: startDate, start: t}
		}
	case (typ == "" || typ == "time_of_date") && slices.Equal(keys, []string{"end_time", "start_time"}):
		from, err1 := secondOfDay(c["start_time"])
		to, err2 := secondOfDay(c["end_time"])
		if err1 == nil && err2 == nil {
			return &constraint{kind: timeOfDay, from: from, to: to}
		}
	}
	db.problem("%s: unknown or invalid constraint %v", where, c)
	return &constraint{kind: unknownConstraint}
}

var timeOfDayRE = regexp.MustCompile(`^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$`)

// secondOfDay turns "HH:MM:SS[.frac](Z|±HH:MM)" into seconds into the UTC day.
func secondOfDay(s string) (float64, error) {
	m := timeOfDayRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid time of day %q", s)
	}
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	h, mi, sec, oh, om := num(m[1]), num(m[2]), num(m[3]), num(m[7]), num(m[8])
	if h > 23 || mi > 59 || sec > 59 || oh > 23 || om > 59 {
		return 0, fmt.Errorf("invalid time of day %q", s)
	}
	v := float64(h*3600 + mi*60 + sec)
	if m[4] != "" {
		f, _ := strconv.ParseFloat("0."+m[4], 64)
		v += f
	}
	off := float64((oh*60 + om) * 60)
	if m[6] == "-" {
		off = -off
	}
	return math.Mod(v-off+86400, 86400), nil
}
