#!/usr/bin/env bash
# POST /v1/authz/check under oha on loopback, on the embedded defaults:
# a policy of 1,000 roles (depth-5 chains) and 10,000 bindings in one tenant,
# an allowed and a denied question, and GET /v1/whoami as the floor of an
# authenticated request on the same server, all in the same run.
# Usage: loadtest/authz_check.sh [seconds per run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-50}"
. loadtest/lib.sh
port=18095
start_palisade server "$port"

# The policy, written as a Casbin import (1,000 roles in chains of 5, 10,000 users).
python3 - >"$work/import.json" <<'PY'
import json
model = """[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
lines = []
for r in range(1000):
    for a in range(10):
        lines.append(f"p, role{r}, doc{r}_{a}, read")
    if r % 5:
        lines.append(f"g, role{r}, role{r-1}")
for u in range(10000):
    lines.append(f"g, user{u}, role{(u * 7) % 1000}")
print(json.dumps({"model": model, "policy": "\n".join(lines)}))
PY
curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/v1/authz/import/casbin" -H "Authorization: Bearer $key" \
  -H 'content-type: application/json' --data-binary @"$work/import.json"

post=(-m POST -H "Authorization: Bearer $key" -H 'content-type: application/json')
oha_run whoami "http://127.0.0.1:$port/v1/whoami" -H "Authorization: Bearer $key"
# user7 has role49 (7*7), which inherits role48..role45: doc45_3 is granted through the chain.
oha_run allow "http://127.0.0.1:$port/v1/authz/check" "${post[@]}" -d '{"subject":"user7","action":"read","resource":"doc45_3"}'
oha_run deny "http://127.0.0.1:$port/v1/authz/check" "${post[@]}" -d '{"subject":"user7","action":"read","resource":"doc500_3"}'
curl -sf "http://127.0.0.1:$port/metrics" | grep '^palisade_authz_decisions_total' >"$work/cache" || true

oha_table "whoami=GET /v1/whoami (authentication only)" \
  "allow=POST /v1/authz/check, allowed through a 5-role chain" \
  "deny=POST /v1/authz/check, denied (audited in the background)"
cat "$work/cache"
