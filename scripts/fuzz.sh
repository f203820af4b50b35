#!/usr/bin/env bash
# Runs every native Go fuzz target of the module (func FuzzXxx), one at a
# time (go test fuzzes one target per run), each for FUZZTIME (default
# 30s). A crash fails the run and leaves its input in the package's
# testdata/fuzz/<target>/: commit it with the fix, and every go test
# runs it from then on. The targets are found, not listed, so a new one
# is fuzzed without touching this file.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}

# "./pkg FuzzName" for each func FuzzName in a test file.
targets=()
while IFS=: read -r file decl; do
	targets+=("./$(dirname "${file#./}") ${decl#func }")
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sort)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }

for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $name ($pkg) for $fuzztime" >&2
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
