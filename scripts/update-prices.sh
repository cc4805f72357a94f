#!/bin/sh
# SPDX-License-Identifier: MIT
# Refreshes the vendored model price database from npm:
#   prices/genai-prices.json    - the provider/model price data bundled in
#                                 @pydantic/genai-prices (MIT), with the
#                                 package name, version, publish date, the
#                                 date it was fetched and the tarball's
#                                 integrity hash as metadata fields
#   prices/LICENSE-genai-prices - the package's licence notice
#
#   scripts/update-prices.sh [VERSION]   (default: latest)
#
# Needs npm, node (>= 18) and tar; FETCHED=YYYY-MM-DD overrides the fetch
# date recorded (default: today, UTC). Afterwards run `go test ./prices` (it
# fails on a match clause, price key or constraint the Go code does not
# know) and commit both files. See docs/prices.md.
set -eu

cd "$(dirname "$0")/.."
pkg=@pydantic/genai-prices
spec="$pkg@${1:-latest}"
dst=prices

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

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
FETCHED=${FETCHED:-$(date -u +%Y-%m-%d)} node --input-type=module - "$tmp" "$dst/genai-prices.json.tmp" <<'EOF'
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [dir, out] = process.argv.slice(2);
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
console.log(`${doc.package} ${doc.version} (published ${doc.published || '?'}, fetched ${doc.fetched}): ` +
  `${providers.length} providers, ${providers.reduce((n, p) => n + p.models.length, 0)} models`);
EOF
mv "$dst/genai-prices.json.tmp" "$dst/genai-prices.json"

version=$(node -e 'console.log(require(process.argv[1]).version)' "$tmp/package/package.json")
{
	echo "prices/genai-prices.json is the price data of the npm package $pkg $version"
	echo "(https://github.com/pydantic/genai-prices), distributed under this licence:"
	echo
	cat "$tmp/package/LICENSE"
} >"$dst/LICENSE-genai-prices"
