#!/usr/bin/env bash
# Shared rate-limit checks per second on Redis, against redis-benchmark on the
# same server in the same run:
#   - the ceiling the issue names: a trivial script (`return 1`) by EVALSHA,
#     pipelined 16 deep over 50 connections;
#   - the same load running Palisade's own GCRA script, which reads the clock,
#     reads the key and writes it back: the ceiling of any limiter that keeps
#     its state in Redis;
#   - Palisade's RateLimiter (one multiplexed connection; concurrent checks are
#     pipelined on it) at several concurrencies, over 100,000 keys.
# Usage: loadtest/ratelimit_redis.sh [redis url] [seconds per run]
set -euo pipefail
cd "$(dirname "$0")/.."
url="${1:-redis://127.0.0.1:6379}"
seconds="${2:-10}"
hostport="${url#redis://}"; host="${hostport%%:*}"; port="${hostport##*:}"; port="${port%%/*}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palisade-target}"
cargo build --release -q -p palisade-guard --example redis_throughput
bin="$CARGO_TARGET_DIR/release/examples/redis_throughput"

gcra_script="$("$bin" --print-script gcra)"
rps() { tr '\r' '\n' | grep 'requests per second' | tail -1 | sed 's/.*: \([0-9.]*\) requests per second.*/\1/'; }
trivial_sha="$(redis-cli -h "$host" -p "$port" SCRIPT LOAD 'return 1')"
gcra_sha="$(redis-cli -h "$host" -p "$port" SCRIPT LOAD "$gcra_script")"
trivial="$(redis-benchmark -h "$host" -p "$port" -q -n 1000000 -c 50 -P 16 EVALSHA "$trivial_sha" 0 2>&1 | rps)"
gcra="$(redis-benchmark -h "$host" -p "$port" -q -n 500000 -r 100000 -c 50 -P 16 \
  EVALSHA "$gcra_sha" 1 'palisade-bench:{rl:__rand_int__}' 60000000 1000000000 1000000000 1 2>&1 | rps)"
echo "| load | checks/s | vs trivial EVALSHA | vs the GCRA script |"
echo "|---|---|---|---|"
printf '| redis-benchmark, trivial EVALSHA, -c 50 -P 16 (ceiling) | %.0f | 100%% | |\n' "$trivial"
printf '| redis-benchmark, GCRA script, -c 50 -P 16 | %.0f | %.1f%% | 100%% |\n' "$gcra" "$(echo "100*$gcra/$trivial" | bc -l)"
for algorithm in gcra sliding_window fixed_window; do
  for concurrency in 64 256; do
    line="$("$bin" "$url" "$seconds" "$concurrency" "$algorithm")"
    value="${line##*checks_per_sec=}"
    printf '| RateLimiter %s, %s concurrent checks | %.0f | %.1f%% | %.1f%% |\n' "$algorithm" "$concurrency" \
      "$value" "$(echo "100*$value/$trivial" | bc -l)" "$(echo "100*$value/$gcra" | bc -l)"
  done
done
redis-cli -h "$host" -p "$port" --scan --pattern 'palisade-bench:*' | xargs -r -n 1000 redis-cli -h "$host" -p "$port" DEL >/dev/null
redis-cli -h "$host" -p "$port" --scan --pattern 'bench:*' | xargs -r -n 1000 redis-cli -h "$host" -p "$port" DEL >/dev/null
