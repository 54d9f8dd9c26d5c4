#!/usr/bin/env bash
# The long differential run of the foreign-data wrappers (tests/difftest.py) against the
# running stack: QUERIES seeded queries per wrapper over ROWS rows, compared with a heap table.
#   scripts/differential-long.sh [seed] [queries] [rows]
# Exit status 1 when any query differs; each difference is printed with its seed and number.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
seed="${1:-20261201}"; queries="${2:-20000}"; rows="${3:-5000}"
stack="${PG_FLINK_STACK:-/opt/pg_flink-stack}"
exec "$stack/venv/bin/python" "$here/tests/difftest.py" --seed "$seed" --queries "$queries" --rows "$rows"
