#!/usr/bin/env bash
# Runs every fuzz target for a while (default 5s each) and keeps what it found: the new corpus entries
# are copied into the package's testdata/fuzz, where `go test` replays them as regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
cache=$(go env GOCACHE)/fuzz
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func \(Fuzz[A-Za-z0-9_]*\)' "$dir"/*_test.go 2>/dev/null | awk '{print $2}'); do
    echo "== $pkg $target (${seconds}s)"
    # Minimizing each new interesting input may take up to a minute by default, during which the target
    # executes nothing (0 execs/s), and a minimization the -fuzztime deadline interrupts fails the run
    # ("context deadline exceeded"): these short runs do not minimize, so the time goes to fuzzing.
    # To minimize a crasher, rerun it alone with go test -fuzz and the default -fuzzminimizetime.
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="${seconds}s" -fuzzminimizetime=0 "$pkg"
    found="$cache/$pkg/$target"
    if [ -d "$found" ]; then
      mkdir -p "$dir/testdata/fuzz/$target"
      cp -n "$found"/* "$dir/testdata/fuzz/$target/" 2>/dev/null || true
    fi
  done
done
