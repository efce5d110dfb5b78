#!/usr/bin/env bash
# /health/live while 50 password hashes are running: p99 of /health/live
# unloaded, then while oha keeps 50 concurrent POST /v1/auth/passwords/hash
# (the probe runs at a fixed 1,000 requests/s, as a health checker or light
# traffic would, so it measures latency rather than how much CPU oha can take)
# in flight (argon2id, OWASP parameters), on the embedded defaults.
# Goal (issue 6): the loaded p99 is no worse than 2x the unloaded p99.
# Usage: loadtest/password_load.sh [seconds per run]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections=10
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
port=18096
(cd "$work" && exec env PALISADE_BOOTSTRAP_ADMIN_KEY="$key" PALISADE_SERVER__LISTEN="127.0.0.1:$port" \
  PALISADE_LOG__LEVEL=warn "$bin/palisade" serve >"$work/out" 2>"$work/log") &
pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready" && break; sleep 0.1; done

oha_run unloaded "http://127.0.0.1:$port/health/live" -q 1000
# 50 hashes in flight for the whole loaded run.
oha -z "$((duration + 4))s" -c 50 --no-tui --output-format json -m POST \
  -H "Authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"password":"correct horse battery staple"}' \
  "http://127.0.0.1:$port/v1/auth/passwords/hash" >"$work/hashing.json" &
hashing=$!
sleep 1
oha_run loaded "http://127.0.0.1:$port/health/live" -q 1000
wait "$hashing"

oha_table "unloaded=GET /health/live, idle server" "loaded=GET /health/live, 50 hashes in flight"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
p99 = lambda n: json.load(open(f"{work}/{n}.json"))["latencyPercentiles"]["p99"]
h = json.load(open(f"{work}/hashing.json"))
print(f"hashes: {h['summary']['requestsPerSec']:.1f}/s, status codes {h.get('statusCodeDistribution')}")
print(f"loaded p99 / unloaded p99 = {p99('loaded') / p99('unloaded'):.2f} (goal: at most 2)")
PY
