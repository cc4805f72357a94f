#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# install-claude.sh — install a pinned Claude Code CLI for the end-to-end
# tests (e2e/) and print the path of a working `claude` executable.
#
# Where: <repo>/.e2e/claude (gitignored), so a checkout carries its own copy
# and nothing global changes. The e2e test runs claude as an unprivileged
# user, so every directory from / down to the install must be traversable by
# others; when the checkout lives somewhere that is not (a 0700 home, say),
# the script installs to /opt/agentwatch-e2e/claude instead. Override with
# AGENTWATCH_CLAUDE_DIR.
#
# The npm package is a thin wrapper: its postinstall (install.cjs) copies the
# platform's native binary (an optional dependency) over bin/claude.exe. When
# scripts were skipped (npm config ignore-scripts), `claude --version` says
# "native binary not installed" and we run install.cjs ourselves.
#
# Idempotent and quiet when the pinned version is already there. Only the
# path is printed on stdout; npm's noise goes to stderr on failure.
set -euo pipefail

version="${CLAUDE_CODE_VERSION:-2.1.331}"
pkg="@anthropic-ai/claude-code"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# others_can_traverse DIR: every existing directory from / to DIR has o+x.
others_can_traverse() {
	local d="$1"
	while [[ -n "$d" && "$d" != "/" ]]; do
		if [[ -e "$d" ]]; then
			local mode
			mode="$(stat -c %A "$d")"
			[[ "${mode:9:1}" == "x" || "${mode:9:1}" == "t" ]] || return 1
		fi
		d="$(dirname "$d")"
	done
}

if [[ -n "${AGENTWATCH_CLAUDE_DIR:-}" ]]; then
	dir="$AGENTWATCH_CLAUDE_DIR"
elif others_can_traverse "$repo_root"; then
	dir="$repo_root/.e2e/claude"
else
	dir="/opt/agentwatch-e2e/claude"
fi

bin="$dir/node_modules/.bin/claude"
pkgdir="$dir/node_modules/$pkg"

installed_version() {
	"$bin" --version 2>/dev/null | awk '{print $1}'
}

if [[ -x "$bin" && "$(installed_version)" == "$version" ]]; then
	echo "$bin"
	exit 0
fi

command -v npm >/dev/null || { echo "install-claude: npm not found" >&2; exit 1; }

mkdir -p "$dir"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
	"$pkg@$version" >"$log" 2>&1; then
	cat "$log" >&2
	echo "install-claude: npm install $pkg@$version failed" >&2
	exit 1
fi

# The stub exits 1, so capture first (pipefail would hide grep's match).
stub_says="$("$bin" --version 2>&1 || true)"
if [[ "$stub_says" == *"native binary not installed"* ]]; then
	if ! (cd "$dir" && node "$pkgdir/install.cjs") >"$log" 2>&1; then
		cat "$log" >&2
		echo "install-claude: $pkgdir/install.cjs failed" >&2
		exit 1
	fi
fi

got="$(installed_version || true)"
if [[ "$got" != "$version" ]]; then
	"$bin" --version >&2 || true
	echo "install-claude: $bin --version says '$got', want $version" >&2
	exit 1
fi

# npm honours the umask; make sure the unprivileged test user can read and
# run everything regardless of the installing user's umask.
chmod -R a+rX "$dir"
echo "$bin"
