#!/usr/bin/env bash
# perf.sh: the open-loop sweeps of docs/PERFORMANCE.md, in memory and with Redis, and their plots.
# Loopback only; starts its own redis-server on a spare port and stops everything it started. Each point
# runs RUNS times (default 3) on a fresh service with the manifests' GOGC and GOMEMLIMIT; the plots go
# through the medians.
#   scripts/perf.sh [out-dir]     (default docs/img; the CSV rows stay in a temporary directory it prints)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/img}
tmp=$(mktemp -d)
go build -o "$tmp/optin-server" ./cmd/server
go build -o "$tmp/loadgen" ./cmd/loadgen
token=loadtoken000000000000000000000001
redis_port=16399
redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --logfile "$tmp/redis.log"
trap 'redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT

# one LABEL RATE LATENCY CSV: a fresh service, one open-loop run of four seconds, one CSV row.
one() {
  local label=$1 rate=$2 latency=$3 csv=$4 redis=""
  if [ "$label" = redis ]; then
    redis-cli -p $redis_port flushall >/dev/null
    redis="redis://127.0.0.1:$redis_port/0"
  fi
  TWILIO_ACCOUNT_SID=AC00000000000000000000000000000001 TWILIO_AUTH_TOKEN=$token OPTIN_ADDR=127.0.0.1:18380 \
    OPTIN_TWILIO_API_URL=http://127.0.0.1:19390 OPTIN_LOG_LEVEL=warn OPTIN_REDIS_URL=$redis OPTIN_WORKERS=${OPTIN_WORKERS:-1000} \
    GOGC=${GOGC:-400} GOMEMLIMIT=${GOMEMLIMIT:-200MiB} "$tmp/optin-server" >>"$tmp/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18380/readyz >/dev/null && break; sleep 0.05; done
  "$tmp/loadgen" -target http://127.0.0.1:18380/webhooks/conversations -token $token -pid $pid -mode accept \
    -rate "$rate" -n $((rate * 4)) -twilio 127.0.0.1:19390 -latency "${latency}ms" -bare=false -csv "$csv" -label "$label" | sed "s/^/[$label $rate\/s ${latency}ms] /"
  kill $pid; wait $pid 2>/dev/null || true
}

for _ in $(seq "${RUNS:-3}"); do
  for label in memory redis; do
    for rate in 250 500 750 1000 1500; do one $label $rate 200 "$tmp/rate.csv"; done
    for latency in 50 100 200 400; do one $label 1000 "$latency" "$tmp/latency.csv"; done
  done
done
go run ./scripts/perfplot -rate "$tmp/rate.csv" -latency "$tmp/latency.csv" -out "$out"
echo "rows: $tmp/rate.csv $tmp/latency.csv; plots in $out"
