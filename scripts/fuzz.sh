#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs every Fuzz* target in the module for FUZZTIME each (default 30s),
# one after another: `go test -fuzz` takes one target per invocation, with
# its package as the argument. Targets are discovered with
# `go test -list`, so a new one is included without editing this file.
#
#   scripts/fuzz.sh                 # every target, 30s each
#   FUZZTIME=2s scripts/fuzz.sh     # what `make test` runs
#   scripts/fuzz.sh ./llm ./policy  # only these packages
#
# A failing input is written to the package's testdata/fuzz/<Target>/ and
# the script exits 1 after the other targets have run; commit the input
# with the fix (plain `go test` then replays it).
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
# The fuzzer's own parallelism; the default is every CPU.
FUZZPARALLEL=${FUZZPARALLEL:-$(nproc)}

cd "$(dirname "$0")/.."
pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(./...)
fi

# "go test -list" prints the matching names of each package, then
# "ok  <import path> <time>"; a package without targets prints only that.
list=$("$GO" test -list '^Fuzz' "${pkgs[@]}") # a package that does not build fails here
targets=()
names=()
while read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for n in "${names[@]}"; do
			targets+=("$pkg $n")
		done
		names=()
		;;
	esac
done <<<"$list"

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no Fuzz targets in ${pkgs[*]}" >&2
	exit 1
fi

mod=$("$GO" list -m)
failed=()
flaked=()
start=$SECONDS
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	dir=.${pkg#"$mod"} # ./llm; . for the module's root package
	echo "fuzz: $pkg $name for $FUZZTIME"
	corpus="$dir/testdata/fuzz/$name"
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	out=$(mktemp)
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZPARALLEL" "$dir" 2>&1 | tee "$out"; then
		after=$(ls "$corpus" 2>/dev/null | sort || true)
		# Go's fuzz coordinator can report "context deadline exceeded" at
		# the -fuzztime boundary with no failing input (golang/go#75804,
		# fixed in Go 1.27): a failure only when an input was written.
		if [ "$before" = "$after" ] && grep -q 'context deadline exceeded' "$out"; then
			echo "fuzz: $pkg $name: stopped by the Go fuzzer's deadline race (golang/go#75804), no failing input: not a failure"
			flaked+=("$pkg $name")
		else
			failed+=("$pkg $name")
		fi
	fi
	rm -f "$out"
done
echo "fuzz: ${#targets[@]} targets in $((SECONDS - start))s (${#flaked[@]} stopped by the deadline race)"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
	exit 1
fi
