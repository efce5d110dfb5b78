#!/usr/bin/env bash
# HTTP overhead: Palisade's full stack (API-key auth, request id, JSON logs, metrics,
# problem mapping, timeout, body limit) on GET /v1/whoami, against a bare axum
# handler returning the same JSON, both loaded by oha on loopback in the same run.
# A third server, bare axum with only Palisade's per-request observability (request
# id, span, JSON log line, metrics: `bare_axum --observe`), shows what that required
# share costs on its own.
# Usage: loadtest/http_overhead.sh [seconds per run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-50}"
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palisade-target}"
cargo build --release -q -p palisade --bin palisade
cargo build --release -q -p palisade-http --example bare_axum
bin="$CARGO_TARGET_DIR/release"

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for port in 18080 18081 18082; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "port $port is already serving: stop that process first (it would be measured instead)" >&2
    exit 1
  fi
done

key="bench-admin-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
(cd "$work" && exec env PALISADE_BOOTSTRAP_ADMIN_KEY="$key" PALISADE_SERVER__LISTEN=127.0.0.1:18080 \
  "$bin/palisade" serve >"$work/palisade.out" 2>"$work/palisade.log") &
pids+=($!)
"$bin/examples/bare_axum" 127.0.0.1:18081 &
pids+=($!)
"$bin/examples/bare_axum" 127.0.0.1:18082 --observe 2>"$work/observe.log" &
pids+=($!)
for url in http://127.0.0.1:18080/health/ready http://127.0.0.1:18081/v1/whoami http://127.0.0.1:18082/v1/whoami; do
  for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done
done

run() { # name url [header]
  local name="$1" url="$2"; shift 2
  oha -z 2s -c "$connections" --no-tui "$@" "$url" >/dev/null # warm-up
  oha -z "${duration}s" -c "$connections" --no-tui --output-format json "$@" "$url" >"$work/$name.json"
}
# Other work on the two cores moves both numbers: say how busy the machine was.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
run bare http://127.0.0.1:18081/v1/whoami
run observe http://127.0.0.1:18082/v1/whoami
run palisade http://127.0.0.1:18080/v1/whoami -H "Authorization: Bearer $key"

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average (1, 5, 15 min): before $load_before, after $load_after"
python3 - "$work" "$duration" "$connections" <<'PY'
import json, sys
work, duration, connections = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    with open(f"{work}/{name}.json") as f:
        d = json.load(f)
    s, p = d["summary"], d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    return s["requestsPerSec"], p["p50"] * 1e3, p["p99"] * 1e3, codes
bare, obs, pal = load("bare"), load("observe"), load("palisade")
for name, result in (("bare axum", bare), ("bare axum + observability", obs), ("palisade", pal)):
    if set(result[3]) != {"200"}:
        raise SystemExit(f"{name} answered {result[3]}: not a valid measurement")
print(f"oha -z {duration}s -c {connections}, loopback, same run")
print("| server | requests/s | p50 ms | p99 ms | status codes |")
print("|---|---|---|---|---|")
print(f"| bare axum | {bare[0]:.0f} | {bare[1]:.3f} | {bare[2]:.3f} | {bare[3]} |")
print(f"| bare axum + Palisade's observability only | {obs[0]:.0f} | {obs[1]:.3f} | {obs[2]:.3f} | {obs[3]} |")
print(f"| Palisade full stack | {pal[0]:.0f} | {pal[1]:.3f} | {pal[2]:.3f} | {pal[3]} |")
print(f"bare axum + observability / bare axum: {100 * obs[0] / bare[0]:.1f}% of requests/s")
print(f"Palisade / bare axum: {100 * pal[0] / bare[0]:.1f}% of requests/s")
PY
