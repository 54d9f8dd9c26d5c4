#!/usr/bin/env bash
# Compares what the pg_flink extension owns in two databases of the stack's Postgres (tables,
# columns, functions, grants, comments, ...: the description tests/test_upgrade.py checks after
# ALTER EXTENSION pg_flink UPDATE) and prints a unified diff. Exit status 0: equal, 1: different.
#   scripts/schema-diff.sh upgraded_db fresh_db
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PG_FLINK_STACK:-/opt/pg_flink-stack}/venv/bin/python
exec "$PY" "$REPO/tests/test_upgrade.py" "$@"
