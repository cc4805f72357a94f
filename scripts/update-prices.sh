#!/bin/sh
# SPDX-License-Identifier: MIT
# Refreshes the vendored model price database from npm:
#   prices/genai-prices.json    - the provider/model price data bundled in
#                                 @pydantic/genai-prices (MIT), with the
#                                 package name, version, publish date, the
#                                 date it was fetched and the tarball's
#                                 integrity hash as metadata fields
#   prices/LICENSE-genai-prices - the package's licence notice
#   prices/testdata/genai-prices-upstream.json
#                               - what the package's own calcPrice() says for
#                                 every model of the data (and some names as
#                                 agents send them), which `go test ./prices`
#                                 checks the Go implementation against
#
#   scripts/update-prices.sh [VERSION]   (default: latest)
#
# Needs npm, node (>= 18) and tar; FETCHED=YYYY-MM-DD overrides the fetch
# date recorded (default: today, UTC). Afterwards run `go test ./prices` (it
# fails on a match clause, price key or constraint the Go code does not
# know) and commit the three files. See docs/prices.md.
set -eu

cd "$(dirname "$0")/.."
pkg=@pydantic/genai-prices
spec="$pkg@${1:-latest}"
dst=prices

tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$dst/genai-prices.json.tmp" "$dst/testdata/genai-prices-upstream.json.tmp"' EXIT INT TERM

(cd "$tmp" && npm pack --silent --json "$spec" >pack.json)
# The package's publish dates; the one of the packed version goes into the
# metadata (empty when the registry does not answer).
npm view --json "$pkg" time >"$tmp/time.json" 2>/dev/null || echo '{}' >"$tmp/time.json"

file=$(node -e 'console.log(require(process.argv[1])[0].filename)' "$tmp/pack.json")
tar -xzf "$tmp/$file" -C "$tmp"
test -f "$tmp/package/LICENSE" || { echo "update-prices: $spec has no LICENSE" >&2; exit 1; }

# The data is the literal Provider[] bundled into dist/index.js; before any
# updatePrices() call, waitForUpdate() resolves to exactly that array, so it
# is read through the package's own API instead of by parsing its JS.
mkdir -p "$dst/testdata"
FETCHED=${FETCHED:-$(date -u +%Y-%m-%d)} node --input-type=module - "$tmp" "$dst/genai-prices.json.tmp" "$dst/testdata/genai-prices-upstream.json.tmp" <<'EOF'
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [dir, out, goldenOut] = process.argv.slice(2);
const pack = JSON.parse(readFileSync(`${dir}/pack.json`, 'utf8'))[0];
const manifest = JSON.parse(readFileSync(`${dir}/package/package.json`, 'utf8'));
const times = JSON.parse(readFileSync(`${dir}/time.json`, 'utf8'));
const lib = await import(pathToFileURL(`${dir}/package/dist/index.js`).href);
if (typeof lib.waitForUpdate !== 'function') {
  throw new Error(`${manifest.name}@${manifest.version}: no waitForUpdate() export; the extraction needs updating`);
}
const providers = await lib.waitForUpdate();
if (!Array.isArray(providers) || providers.length === 0 ||
    !providers.every((p) => typeof p.id === 'string' && Array.isArray(p.models))) {
  throw new Error(`${manifest.name}@${manifest.version}: waitForUpdate() did not return the bundled Provider[]`);
}
const doc = {
  package: manifest.name,
  version: manifest.version,
  published: (times[manifest.version] ?? '').slice(0, 10),
  fetched: process.env.FETCHED,
  license: manifest.license,
  license_file: 'LICENSE-genai-prices',
  homepage: manifest.homepage,
  tarball_integrity: pack.integrity,
  extracted_from: 'dist/index.js: the bundled provider data (waitForUpdate() before any update)',
  providers,
};
writeFileSync(out, JSON.stringify(doc, null, 2) + '\n');

// The reference results: calcPrice() of this very package for each model id
// of each provider (at a fixed time, with every usage kind agentwatch
// reports), with a prompt past the tiers for tiered prices and at several
// times for conditional ones, and for names as agents send them.
const usages = {
  small: { input_tokens: 10000, cache_read_tokens: 3000, cache_write_tokens: 1000, output_tokens: 2000, output_reasoning_tokens: 500 },
  large: { input_tokens: 300000, cache_read_tokens: 100000, cache_write_tokens: 20000, output_tokens: 4000, output_reasoning_tokens: 1000 },
};
const noon = '2026-12-01T12:00:00Z';
const atTimes = ['2025-01-01T00:00:00Z', '2026-12-01T00:45:00Z', '2026-12-01T02:00:00Z', '2026-12-01T07:00:00Z', noon, '2026-12-01T20:00:00Z'];
const cases = [];
const add = (c) => cases.push({ usage: 'small', at: noon, ...c });
for (const p of providers) {
  for (const m of p.models) {
    const conditional = Array.isArray(m.prices);
    const tiered = (conditional ? m.prices.map((c) => c.prices) : [m.prices])
      .some((mp) => Object.values(mp).some((v) => typeof v === 'object' && v !== null));
    for (const at of conditional ? atTimes : [noon]) {
      add({ provider: p.id, model: m.id, at });
      if (tiered) add({ provider: p.id, model: m.id, at, usage: 'large' });
    }
  }
}
for (const [provider, model] of [
  ['anthropic', 'claude-opus-5-5'], ['anthropic', 'claude-opus-5-5-20261101'], ['anthropic', 'claude-opus-5-5[1m]'],
  ['anthropic', 'claude-sonnet-4-5-20250929'], ['anthropic', 'claude-sonnet-4-5[1m]'], ['anthropic', 'claude-haiku-4-5-20251001'],
  ['anthropic', 'anthropic/claude-haiku-4-5'], ['anthropic', 'Claude-Opus-4-1-20250805'], ['anthropic', ' claude-haiku-4-5 '],
  ['anthropic', 'gpt-4o'], ['Anthropic', 'claude-haiku-4-5'], ['my-anthropic-proxy', 'claude-haiku-4-5'],
  ['openai', 'gpt-4o'], ['openai', 'gpt-4o-2024-08-06'], ['openai', 'gpt-4o-2024-05-13'], ['openai', 'gpt-4o-mini'],
  ['openai', 'gpt-4o-mini-2024-07-18'], ['openai', 'gpt-5.4-20260305'], ['openai', 'gpt-5-mini-2025-08-07'],
  ['openai', 'o3-2025-04-16'], ['openai', 'gpt-99'], ['openai', 'openai/gpt-4o'], ['openai', 'claude-haiku-4-5'],
  ['azure', 'gpt-4o'], ['azure', 'claude-sonnet-4-5'], ['google', 'claude-sonnet-4-5'],
  ['google', 'gemini-2.5-pro'], ['google', 'gemini-2.5-pro-preview-tts'], ['google', 'gemini-2.5-flash-lite-preview-tts'],
  ['', 'mistral-large-latest'], ['', 'mistralai/mistral-large'], ['', 'gpt-4o'], ['', 'claude-haiku-4-5'], ['', 'o3'], ['', 'nothing-known'],
]) {
  add({ provider, model });
  add({ provider, model, usage: 'large' });
}
for (const [api_url, model] of [
  ['https://api.anthropic.com/v1/messages', 'claude-haiku-4-5'], ['https://api.openai.com/v1/responses', 'gpt-4o'],
  ['https://example.com/v1', 'gpt-4o'],
]) add({ api_url, model });
const results = cases.map((c) => {
  const opts = { timestamp: new Date(c.at) };
  if (c.provider) opts.providerId = c.provider;
  else if (c.api_url) opts.providerApiUrl = c.api_url;
  try {
    const r = lib.calcPrice(usages[c.usage], c.model, opts);
    if (!r) return { ...c, match: null };
    return { ...c, match: r.model.id, via: r.provider.id, input: r.input_price, output: r.output_price, total: r.total_price };
  } catch (e) {
    return { ...c, error: String(e.message ?? e) };
  }
});
writeFileSync(goldenOut, '{\n' +
  `"package": ${JSON.stringify(doc.package)},\n"version": ${JSON.stringify(doc.version)},\n` +
  `"usages": ${JSON.stringify(usages)},\n"cases": [\n` +
  results.map((r) => JSON.stringify(r)).join(',\n') + '\n]}\n');
console.log(`${doc.package} ${doc.version} (published ${doc.published || '?'}, fetched ${doc.fetched}): ` +
  `${providers.length} providers, ${providers.reduce((n, p) => n + p.models.length, 0)} models`);
EOF
mv "$dst/genai-prices.json.tmp" "$dst/genai-prices.json"
mv "$dst/testdata/genai-prices-upstream.json.tmp" "$dst/testdata/genai-prices-upstream.json"

version=$(node -e 'console.log(require(process.argv[1]).version)' "$tmp/package/package.json")
{
	echo "prices/genai-prices.json is the price data of the npm package $pkg $version"
	echo "(https://github.com/pydantic/genai-prices), distributed under this licence:"
	echo
	cat "$tmp/package/LICENSE"
} >"$dst/LICENSE-genai-prices"
