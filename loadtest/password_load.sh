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
. loadtest/lib.sh
port=18096
start_palisade server "$port"

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
