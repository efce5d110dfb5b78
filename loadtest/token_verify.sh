#!/usr/bin/env bash
# POST /v1/auth/tokens/verify under oha on loopback, on the embedded defaults:
# the same valid token over and over (served from the cache of verified
# tokens after the first), an invalid one (bad signature: checked every time,
# and a failed verification is an audit event), and GET /v1/whoami as the
# floor of an authenticated request on the same server, all in the same run.
# Usage: loadtest/token_verify.sh [seconds per run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-50}"
. loadtest/lib.sh
port=18096
start_palisade server "$port"

post=(-m POST -H "Authorization: Bearer $key" -H 'content-type: application/json')
# The token service opens once the schema and keyring are ready.
for _ in $(seq 100); do
  if curl -sf -o "$work/pair.json" -X POST "http://127.0.0.1:$port/v1/auth/tokens" \
    -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"subject":"user-1","audience":"default","claims":{"roles":["editor"]}}'; then
    break
  fi
  sleep 0.1
done
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$work/pair.json")
# The same token with its signature's first character changed.
forged=$(python3 -c 'import sys; h,p,s=sys.argv[1].split("."); print(h+"."+p+"."+("A" if s[0]!="A" else "B")+s[1:])' "$token")

oha_run whoami "http://127.0.0.1:$port/v1/whoami" -H "Authorization: Bearer $key"
oha_run valid "http://127.0.0.1:$port/v1/auth/tokens/verify" "${post[@]}" -d "{\"token\":\"$token\",\"audience\":\"default\"}"
oha_run forged "http://127.0.0.1:$port/v1/auth/tokens/verify" "${post[@]}" -d "{\"token\":\"$forged\",\"audience\":\"default\"}"

oha_table "whoami=GET /v1/whoami (authentication only)" \
  "valid=POST /v1/auth/tokens/verify, valid EdDSA token (verified-token cache)" \
  "forged=POST /v1/auth/tokens/verify, bad signature (full check + audit event)"
