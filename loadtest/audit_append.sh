#!/usr/bin/env bash
# Single-event HTTP appends: POST /v1/audit/events, one event per request, each
# answered 201 only once the event is committed and sequenced (the answer carries
# its index, so sequencing lag is zero by construction). Embedded SQLite and
# PostgreSQL in the same run, loaded by oha on loopback.
# Usage: loadtest/audit_append.sh [seconds per run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-50}"
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palisade-target}"
cargo build --release -q -p palisade --bin palisade
bin="$CARGO_TARGET_DIR/release/palisade"
pg_url="${PALISADE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
schema="bench_$(date +%s)"

work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if curl -s -o /dev/null http://127.0.0.1:18082/; then
  echo "port 18082 is already serving: stop that process first" >&2
  exit 1
fi
key="bench-admin-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
event='{"action":"auth.login","actor":{"id":"user-42","ip":"203.0.113.7"},"resource":{"type":"session","id":"s-1"},"outcome":"success","metadata":{"mfa":true}}'

run() { # name [extra env...]
  local name="$1"; shift
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec env "$@" PALISADE_BOOTSTRAP_ADMIN_KEY="$key" PALISADE_SERVER__LISTEN=127.0.0.1:18082 \
    PALISADE_LOG__LEVEL=warn "$bin" serve >/dev/null 2>"$work/$name.log") &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18082/health/ready && break; sleep 0.1; done
  oha -z 2s -c "$connections" --no-tui -m POST -T application/json -d "$event" \
    -H "Authorization: Bearer $key" http://127.0.0.1:18082/v1/audit/events >/dev/null
  oha -z "${duration}s" -c "$connections" --no-tui --output-format json -m POST -T application/json -d "$event" \
    -H "Authorization: Bearer $key" http://127.0.0.1:18082/v1/audit/events >"$work/$name.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}
run sqlite
psql -q "$pg_url" -c "CREATE SCHEMA $schema" >/dev/null
run postgres PALISADE_DATABASE__URL="$pg_url?options=-c%20search_path%3D$schema"

python3 - "$work" "$duration" "$connections" <<'PY'
import json, sys
work, duration, connections = sys.argv[1:4]
print(f"oha -z {duration}s -c {connections}, POST one event per request, loopback")
print("| backend | appends/s | p50 ms | p99 ms | status codes |")
print("|---|---|---|---|---|")
for name in ("sqlite", "postgres"):
    with open(f"{work}/{name}.json") as f:
        d = json.load(f)
    codes = d.get("statusCodeDistribution", {})
    if set(codes) != {"201"}:
        raise SystemExit(f"{name} answered {codes}: not a valid measurement")
    s, p = d["summary"], d["latencyPercentiles"]
    print(f"| {name} | {s['requestsPerSec']:.0f} | {p['p50']*1e3:.2f} | {p['p99']*1e3:.2f} | {codes} |")
PY
