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
. loadtest/lib.sh
start() { # name port [env...]: a server with a rule that allows every check
  start_palisade "$@"
  curl -sf -o /dev/null -X PUT "http://127.0.0.1:$2/v1/ratelimit/rules/bench" -H "Authorization: Bearer $key" \
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
