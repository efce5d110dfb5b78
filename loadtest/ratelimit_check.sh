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

run() { # name url [oha args]
  local name="$1" url="$2"; shift 2
  oha -z 2s -c "$connections" --no-tui "$@" "$url" >/dev/null # warm-up
  oha -z "${duration}s" -c "$connections" --no-tui --output-format json "$@" "$url" >"$work/$name.json"
}
check=(-m POST -H "Authorization: Bearer $key" -H 'content-type: application/json' -d '{"rule": "bench", "key": "203.0.113.7"}')
run whoami http://127.0.0.1:18090/v1/whoami -H "Authorization: Bearer $key"
run check_embedded http://127.0.0.1:18090/v1/ratelimit/check "${check[@]}"
run check_redis http://127.0.0.1:18091/v1/ratelimit/check "${check[@]}"

python3 - "$work" "$duration" "$connections" <<'PY'
import json, sys
work, duration, connections = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"oha -z {duration}s -c {connections}, loopback, request logs at warn, same run")
print("| request | requests/s | p50 ms | p99 ms | status codes |")
print("|---|---|---|---|---|")
for name, label in (("whoami", "GET /v1/whoami (authentication only)"),
                    ("check_embedded", "POST /v1/ratelimit/check, in-process limiter"),
                    ("check_redis", "POST /v1/ratelimit/check, Redis limiter")):
    with open(f"{work}/{name}.json") as f:
        d = json.load(f)
    s, p = d["summary"], d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    if set(codes) != {"200"}:
        raise SystemExit(f"{label} answered {codes}: not a valid measurement")
    print(f"| {label} | {s['requestsPerSec']:,.0f} | {p['p50']*1e3:.3f} | {p['p99']*1e3:.3f} | {codes} |")
PY
redis-cli -u "$redis_url" --scan --pattern "palisade-bench-$$:*" | xargs -r -n 1000 redis-cli -u "$redis_url" DEL >/dev/null
