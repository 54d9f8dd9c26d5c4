#!/usr/bin/env bash
# The Postgres-only test tier: pg_regress runs tests/regress/sql/*.sql against the stack's
# PostgreSQL (with pg_flink installed) in a fresh database and compares each output with
# tests/regress/expected/*.out. Needs no Flink, Kafka or Elasticsearch; runs in seconds.
#
#   scripts/test-pg.sh              run every file (scripts/stack.sh up postgres first)
#   scripts/test-pg.sh render       run some files
#   UPDATE_EXPECTED=1 scripts/test-pg.sh   accept the current output as expected (review the diff!)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=${PG_FLINK_STACK:-/opt/pg_flink-stack}
PG_BIN=/usr/lib/postgresql/15/bin
PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress
OUT=$STACK/run/regress
cd "$REPO"
[ -x "$PG_REGRESS" ] || { echo "pg_regress not found at $PG_REGRESS (postgresql-server-dev-15)" >&2; exit 1; }
if [ $# -gt 0 ]; then tests=("$@"); else
  tests=(); for f in tests/regress/sql/*.sql; do tests+=("$(basename "$f" .sql)"); done
fi
rm -rf "$OUT"; mkdir -p "$OUT"
# A fresh database each run (pg_regress --use-existing does not create it).
"$PG_BIN/psql" -h 127.0.0.1 -p "${PGPORT:-5432}" -U postgres -d postgres -Xq -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS pg_flink_regress" -c "CREATE DATABASE pg_flink_regress TEMPLATE template0"
status=0
"$PG_REGRESS" --use-existing --host=127.0.0.1 --port="${PGPORT:-5432}" --user=postgres \
  --dbname=pg_flink_regress --bindir="$PG_BIN" --inputdir=tests/regress --outputdir="$OUT" \
  "${tests[@]}" || status=$?
if [ "${UPDATE_EXPECTED:-0}" = 1 ]; then
  for t in "${tests[@]}"; do cp "$OUT/results/$t.out" "tests/regress/expected/$t.out"; done
  echo "expected output updated for: ${tests[*]}"
  exit 0
fi
if [ $status -ne 0 ]; then
  [ -f "$OUT/regression.diffs" ] && cat "$OUT/regression.diffs"
  echo "Postgres-only tier failed; outputs in $OUT/results" >&2
fi
exit $status
