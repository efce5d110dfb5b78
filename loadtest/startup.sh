#!/usr/bin/env bash
# `palisade serve` on embedded defaults: time from spawn to /health/ready = 200, and
# resident memory once idle. Runs N starts on an initialised data directory, plus
# the very first start (which also generates secrets and migrates).
# Usage: loadtest/startup.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palisade-target}"
cargo build --release -q -p palisade --bin palisade
bin="$CARGO_TARGET_DIR/release/palisade"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if curl -s -o /dev/null http://127.0.0.1:18090/; then
  echo "port 18090 is already serving: stop that process first" >&2
  exit 1
fi
python3 - "$bin" "$work" "$runs" <<'PY'
import os, subprocess, sys, time, urllib.request, statistics
binary, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def start():
    env = dict(os.environ, PALISADE_SERVER__LISTEN="127.0.0.1:18090", PALISADE_LOG__LEVEL="warn")
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "serve"], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if urllib.request.urlopen("http://127.0.0.1:18090/health/ready", timeout=1).status == 200:
                break
        except Exception:
            time.sleep(0.001)
        if time.perf_counter() - t0 > 20:
            p.kill(); raise SystemExit("never ready")
    ready = (time.perf_counter() - t0) * 1e3
    time.sleep(1.0)
    with open(f"/proc/{p.pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
    p.terminate(); p.wait(10)
    return ready, rss
first = start()
rest = [start() for _ in range(runs)]
print(f"first start (init + migrate + ready): {first[0]:.0f} ms, idle RSS {first[1]:.1f} MiB")
r = sorted(x[0] for x in rest); m = [x[1] for x in rest]
print(f"restart, {runs} runs: time to ready median {statistics.median(r):.0f} ms, max {r[-1]:.0f} ms; idle RSS median {statistics.median(m):.1f} MiB, max {max(m):.1f} MiB")
PY
