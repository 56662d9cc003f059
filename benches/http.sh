#!/usr/bin/env bash
# examples/http_server.rs under wrk: the rows of docs/benchmarks.md's
# "Latency isolation" table, interleaved, in ROUNDS rounds (default 3). Per
# row: a /work flood (wrk -t1 -c32 for FLOOD s, default 10) and, from its
# 3rd second, a /health probe (wrk -t1 -c1 --latency, one request per ms,
# for PROBE s, default 8). The first row has no flood: the floor. Every
# row does the same work per /work: the hash rounds the first server
# calibrated to 2 ms (or HASH_ROUNDS).
#
#   bash benches/http.sh             # about 3 rounds x 6 rows x 13 s
#
# Prints one line per round and row: /work requests per second, and the
# /health probe's p50 and p99 as wrk reports them. Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
rounds=${ROUNDS:-3} flood=${FLOOD:-10} probe=${PROBE:-8} port=${PORT:-18090}
cargo build -q --release --example http_server
server="${CARGO_TARGET_DIR:-target}/release/examples/http_server"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo 'function delay() return 1 end' >"$out/probe.lua"

if [ -z "${HASH_ROUNDS:-}" ]; then
    "$server" --addr "127.0.0.1:$port" --max-secs 1 >"$out/calibrate" 2>&1 || true
    HASH_ROUNDS=$(grep -o '[0-9]* hash rounds' "$out/calibrate" | cut -d' ' -f1)
fi
echo "$HASH_ROUNDS hash rounds per /work; core count $(nproc)"

rows=(
    "no flood (floor)|--pool priopool|no"
    "priopool|--pool priopool|yes"
    "priopool --reserved 1|--pool priopool --reserved 1|yes"
    "priopool --reserved 1 --nice 0|--pool priopool --reserved 1 --nice 0|yes"
    "textbook|--pool textbook|yes"
    "textbook-reserved|--pool textbook-reserved|yes"
)
printf '%-6s %-32s %12s %12s %12s\n' round row "/work req/s" "/health p50" "/health p99"
for round in $(seq 1 "$rounds"); do
    for row in "${rows[@]}"; do
        IFS='|' read -r name options with_flood <<<"$row"
        # shellcheck disable=SC2086 # the options are words
        "$server" --addr "127.0.0.1:$port" --max-secs $((flood + 4)) --rounds "$HASH_ROUNDS" $options \
            >"$out/server" 2>&1 &
        pid=$!
        sleep 1
        rate=-
        if [ "$with_flood" = yes ]; then
            wrk -t1 -c32 -d"${flood}s" "http://127.0.0.1:$port/work" >"$out/flood" 2>&1 &
            flooding=$!
        fi
        sleep 3
        wrk -t1 -c1 -d"${probe}s" --latency -s "$out/probe.lua" "http://127.0.0.1:$port/health" >"$out/health" 2>&1
        if [ "$with_flood" = yes ]; then
            wait "$flooding" || true
            rate=$(awk '/Requests\/sec/ { print $2 }' "$out/flood")
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        p50=$(awk '$1 == "50%" { print $2 }' "$out/health")
        p99=$(awk '$1 == "99%" { print $2 }' "$out/health")
        printf '%-6s %-32s %12s %12s %12s\n' "$round" "$name" "$rate" "$p50" "$p99"
        # Let the port's connections close before the next server binds it.
        sleep 1
    done
done
