#!/usr/bin/env bash
# Front-end benchmark (release build): GET /_ping throughput with wrk at 32 connections
# over loopback TCP, and round-trip latency of GET /containers/json (trivial backend)
# on one keep-alive connection. Prints one JSON object.
#
#   docker-api/bench.sh            # DURATION=10 CONNECTIONS=32 THREADS=2 PORT=23750
#
# Needs wrk (apt-get install -y wrk). Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-23750}
ADDR=127.0.0.1:$PORT

if ! command -v wrk >/dev/null; then
  echo "bench.sh: wrk not found (apt-get install -y wrk)" >&2
  exit 1
fi

cargo build --release -q -p docker-api --example bench_server
BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_server

"$BIN" serve "$ADDR" 2>/dev/null &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://$ADDR/_ping" >/dev/null 2>&1 && break
  sleep 0.05
done

# Warm-up, then the measured run.
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://$ADDR/_ping" >/dev/null
WRK=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://$ADDR/_ping")
RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$WRK")
WRK_P50=$(awk '$1=="50%" {print $2}' <<<"$WRK")
NON2XX=$(awk '/Non-2xx/ {print $NF}' <<<"$WRK")

LAT_LIST=$("$BIN" latency "$ADDR" 20000 /v1.50/containers/json)
LAT_PING=$("$BIN" latency "$ADDR" 20000 /_ping)

printf '{"ping_rps":%s,"ping_connections":%s,"wrk_threads":%s,"duration_s":%s,"ping_wrk_p50":"%s","ping_non_2xx":%s,"containers_json":%s,"ping_sequential":%s,"cores":%s}\n' \
  "$RPS" "$CONNECTIONS" "$THREADS" "$DURATION" "$WRK_P50" "${NON2XX:-0}" "$LAT_LIST" "$LAT_PING" "$(nproc)"
