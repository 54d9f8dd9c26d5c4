#!/usr/bin/env bash
# The main job, from a fresh machine: install, bring the stack up, then run demo/demo.sql in a
# freshly created demo database (pg_flink_demo) and print what it shows.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${PG_FLINK_STACK:-/opt/pg_flink-stack}/target}
scripts/install-deps.sh
scripts/stack.sh up
echo
echo "=== fresh database pg_flink_demo (cancelling Flink jobs of an earlier demo run)"
for jid in $(curl -fsS --max-time 5 http://127.0.0.1:8081/jobs/overview | python3 -c '
import json, sys
for j in json.load(sys.stdin)["jobs"]:
    parts = j["name"].split("/")  # pg_flink/<sysid>/<db oid>/<db name>/<pipeline>/v<n>
    if len(parts) == 6 and parts[0] == "pg_flink" and parts[3] == "pg_flink_demo" and j["state"] not in ("FINISHED", "FAILED", "CANCELED"):
        print(j["jid"])'); do
  curl -fsS --max-time 5 -X PATCH "http://127.0.0.1:8081/jobs/$jid?mode=cancel" >/dev/null || true
done
psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS pg_flink_demo WITH (FORCE)" -c "CREATE DATABASE pg_flink_demo"
echo "=== demo/demo.sql in database pg_flink_demo"
psql -h 127.0.0.1 -p 5432 -U postgres -d pg_flink_demo -X -v ON_ERROR_STOP=1 -f demo/demo.sql
