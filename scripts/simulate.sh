#!/usr/bin/env bash
# Runs the chat simulation long: RUNS runs of STEPS steps each (default 500 × 2,000 = 1,000,000 steps,
# three replicas each), from seed FIRST (default 1) on: scripts/simulate.sh RUNS STEPS FIRST. A failure prints its seed; replay it with
#   go test ./internal/chat -run 'TestSimulation$' -sim.seed=SEED -sim.steps=STEPS
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-500}
steps=${2:-2000}
first=${3:-1}
bin=$(mktemp -d)/chat.test
go test -c -o "$bin" ./internal/chat
"$bin" -test.run 'TestSimulation$' -test.v -test.timeout 0 -sim.runs="$runs" -sim.steps="$steps" -sim.first="$first" | grep -v '^{'
