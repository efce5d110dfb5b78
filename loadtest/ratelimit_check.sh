#!/usr/bin/env bash
# POST /v1/ratelimit/check under oha on loopback: Palisade on its embedded
# defaults (in-process limiter) and with Redis (shared limiter), same run.
# GET /v1/whoami (authentication only) is measured too, as the floor of an
# authenticated request on the same server.
# Usage: loadtest/ratelimit_check.sh [seconds per run] [connections] [redis url]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-50}"
redis_url="${3:-redis://127.0.0.1:6379}"
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palisade-target}"
cargo build --release -q -p palisade --bin palisade
bin="$CARGO_TARGET_DIR/release"

work="$(mktemp -d)"
. loadtest/lib.sh
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

key="bench-admin-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start() { # name port [env...]
  local name="$1" port="$2"; shift 2
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec env PALISADE_BOOTSTRAP_ADMIN_KEY="$key" PALISADE_SERVER__LISTEN="127.0.0.1:$port" \
    PALISADE_LOG__LEVEL=warn "$@" "$bin/palisade" serve >"$work/$name.out" 2>"$work/$name.log") &
  pids+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready" && break; sleep 0.1; done
  curl -sf -o /dev/null -X PUT "http://127.0.0.1:$port/v1/ratelimit/rules/bench" -H "Authorization: Bearer $key" \
    -H 'content-type: application/json' -d '{"limit": 1000000000, "period_ms": 1000, "key": "custom"}'
}
start embedded 18090
start redis 18091 PALISADE_REDIS__URL="$redis_url" PALISADE_REDIS__KEY_PREFIX="palisade-bench-$$:"

check=(-m POST -H "Authorization: Bearer $key" -H 'content-type: application/json' -d '{"rule": "bench", "key": "203.0.113.7"}')
oha_run whoami http://127.0.0.1:18090/v1/whoami -H "Authorization: Bearer $key"
oha_run check_embedded http://127.0.0.1:18090/v1/ratelimit/check "${check[@]}"
oha_run check_redis http://127.0.0.1:18091/v1/ratelimit/check "${check[@]}"

oha_table "whoami=GET /v1/whoami (authentication only)" \
  "check_embedded=POST /v1/ratelimit/check, in-process limiter" \
  "check_redis=POST /v1/ratelimit/check, Redis limiter"
redis-cli -u "$redis_url" --scan --pattern "palisade-bench-$$:*" | xargs -r -n 1000 redis-cli -u "$redis_url" DEL >/dev/null
