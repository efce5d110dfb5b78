# Shared by the load-test scripts. Source it from the repository root after
# setting $duration and $connections: it checks for oha, builds the release
# binary ($bin), makes a scratch directory ($work) removed on exit with every
# server started by start_palisade, and picks an admin key ($key).

command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palisade-target}"
cargo build --release -q -p palisade --bin palisade
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
key="bench-admin-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# start_palisade NAME PORT [ENV=VALUE...]: `palisade serve` on the embedded
# defaults in $work/NAME with $key as its admin key and request logs at warn;
# returns once it is ready.
start_palisade() {
  local name="$1" port="$2"; shift 2
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec env PALISADE_BOOTSTRAP_ADMIN_KEY="$key" PALISADE_SERVER__LISTEN="127.0.0.1:$port" \
    PALISADE_LOG__LEVEL=warn "$@" "$bin/palisade" serve >"$work/$name.out" 2>"$work/$name.log") &
  pids+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready" && break; sleep 0.1; done
}

# oha_run NAME URL [oha args...]: a 2 s warm-up, then the measured run, its
# JSON summary written to $work/NAME.json.
oha_run() {
  local name="$1" url="$2"; shift 2
  oha -z 2s -c "$connections" --no-tui "$@" "$url" >/dev/null
  oha -z "${duration}s" -c "$connections" --no-tui --output-format json "$@" "$url" >"$work/$name.json"
}

# oha_table NAME=LABEL...: one Markdown row per run; fails unless every answer was 200.
oha_table() {
  python3 - "$work" "$duration" "$connections" "$@" <<'PY'
import json, sys
work, duration, connections, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
print(f"oha -z {duration}s -c {connections}, loopback, request logs at warn, same run")
print("| request | requests/s | p50 ms | p99 ms | status codes |")
print("|---|---|---|---|---|")
for run in runs:
    name, label = run.split("=", 1)
    with open(f"{work}/{name}.json") as f:
        d = json.load(f)
    s, p = d["summary"], d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    if set(codes) != {"200"}:
        raise SystemExit(f"{label} answered {codes}: not a valid measurement")
    print(f"| {label} | {s['requestsPerSec']:,.0f} | {p['p50']*1e3:.3f} | {p['p99']*1e3:.3f} | {codes} |")
PY
}
