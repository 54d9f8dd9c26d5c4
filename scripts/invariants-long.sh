#!/usr/bin/env bash
# Long run of the lifecycle invariant checker (tests/lifecycle_invariants.py) against the running
# stack (scripts/stack.sh up): seeded random lifecycle steps, the invariants checked after each.
#
#   scripts/invariants-long.sh [seed] [steps] [deadline_s]
#
# seed defaults to the current time (printed first: a failing seed replays the same steps),
# steps to 300 (at least 300 for a long run), deadline_s to 4 hours. Prints the violation with
# the step history if one is found, and always a summary line:
#   summary: seed=S steps_run=N/300 violations=V ... wall=Ts
# Exit status: 0 all steps ran without a violation, 1 a violation, 2 the deadline cut the run short.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=${PG_FLINK_STACK:-/opt/pg_flink-stack}
PYTHON=${PYTHON:-$STACK/venv/bin/python}

SEED=${1:-$(date +%s)}
STEPS=${2:-300}
DEADLINE=${3:-14400}

case "$SEED$STEPS$DEADLINE" in
  *[!0-9]*) echo "usage: $0 [seed] [steps] [deadline_s]  (non-negative integers)" >&2; exit 2 ;;
esac
if [ "$STEPS" -lt 300 ]; then
  echo "[invariants] note: $STEPS steps; a long run is at least 300" >&2
fi

cd "$REPO/tests"
exec "$PYTHON" -u -m lifecycle_invariants --seed "$SEED" --steps "$STEPS" --deadline "$DEADLINE"
