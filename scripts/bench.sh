#!/usr/bin/env bash
# Runs every benchmark: the signature checks, the webhook path, the opt-in, the stores' sizes and the
# chats' burst (which starts its own redis-server). "scripts/bench.sh 1x" runs each once (CI does, so
# that they keep compiling and running); the default gives figures worth comparing (benchstat).
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${1:-1s}
go test -run='^$' -bench=. -benchtime="$benchtime" -benchmem ./...
