# Shared by the load-test scripts: source it after setting $work, $duration
# and $connections.

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
