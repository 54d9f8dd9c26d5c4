#!/usr/bin/env bash
# The long differential run of the foreign-data wrappers (tests/difftest.py) against the
# running stack: QUERIES seeded queries per wrapper over ROWS rows, compared with a heap table.
# The two wrappers run at once, each in its own schema.
#   scripts/differential-long.sh [seed] [queries] [rows]
# Exit status 1 when any query differs; each difference is printed with its seed and number
# (reproduce with: python tests/difftest.py --seed S --rows R --wrapper W --only N).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
seed="${1:-20261201}"; queries="${2:-20000}"; rows="${3:-2000}"
py="${PG_FLINK_STACK:-/opt/pg_flink-stack}/venv/bin/python"
"$py" "$here/tests/difftest.py" --seed "$seed" --queries "$queries" --rows "$rows" --wrapper es --schema difflong_es &
es=$!
"$py" "$here/tests/difftest.py" --seed "$seed" --queries "$queries" --rows "$rows" --wrapper kafka --schema difflong_k &
k=$!
rc=0
wait $es || rc=1
wait $k || rc=1
exit $rc
