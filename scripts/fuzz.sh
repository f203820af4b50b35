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

# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" as -fuzztime ends, when a busy machine keeps a worker
# from stopping in time (go.dev/issue/75804, fixed in Go 1.27). A real
# finding always writes its input ("Failing input written to"): a failure
# without one and with that message runs the target once more; any other
# failure, or that one twice, fails the run.
fuzz_one() {
	local pkg=$1 name=$2 out rc=0
	out=$(mktemp)
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out" || rc=$?
	if [ "$rc" -ne 0 ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
		rc=3 # the deadline race, not a finding
	fi
	rm -f "$out"
	return "$rc"
}

for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $name ($pkg) for $fuzztime" >&2
	rc=0
	fuzz_one "$pkg" "$name" || rc=$?
	if [ "$rc" -eq 3 ]; then
		echo "fuzz: $name stopped on Go's -fuzztime deadline race (go.dev/issue/75804), no input written: once more" >&2
		rc=0
		fuzz_one "$pkg" "$name" || rc=$?
	fi
	[ "$rc" -eq 0 ] || exit 1
done
