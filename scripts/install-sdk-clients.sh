#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# install-sdk-clients.sh — install the official `openai` and
# `@anthropic-ai/sdk` npm clients, pinned, for the llm/ proxy tests, and
# print the directory holding their node_modules.
#
# Where: <repo>/.e2e/sdk-clients (gitignored), or AGENTWATCH_SDK_DIR.
# Idempotent and quiet when the pinned versions are already there; npm's
# noise goes to stderr on failure only.
set -euo pipefail

openai_version="${OPENAI_SDK_VERSION:-7.57.0}"
anthropic_version="${ANTHROPIC_SDK_VERSION:-1.13.0}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${AGENTWATCH_SDK_DIR:-$repo_root/.e2e/sdk-clients}"

installed() { # installed PKG -> version or nothing
	node -p "require('$dir/node_modules/$1/package.json').version" 2>/dev/null || true
}

if [[ "$(installed openai)" == "$openai_version" &&
	"$(installed @anthropic-ai/sdk)" == "$anthropic_version" ]]; then
	echo "$dir"
	exit 0
fi

command -v npm >/dev/null || { echo "install-sdk-clients: npm not found" >&2; exit 1; }

mkdir -p "$dir"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
	"openai@$openai_version" "@anthropic-ai/sdk@$anthropic_version" >"$log" 2>&1; then
	cat "$log" >&2
	echo "install-sdk-clients: npm install failed" >&2
	exit 1
fi
for p in "openai:$openai_version" "@anthropic-ai/sdk:$anthropic_version"; do
	got="$(installed "${p%%:*}")"
	if [[ "$got" != "${p##*:}" ]]; then
		echo "install-sdk-clients: ${p%%:*} is '$got', want ${p##*:}" >&2
		exit 1
	fi
done
echo "$dir"
