#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh machine:
#   1. installs dependencies (scripts/install-deps.sh)
#   2. cargo fmt --check, cargo clippy -D warnings, unit tests of the pure core (cargo test --lib)
#   3. the Postgres-only tier: builds + installs the extension, starts PostgreSQL alone
#      (scripts/stack.sh up postgres) and runs pg_regress (scripts/test-pg.sh)
#   4. brings the rest of the real stack up (scripts/stack.sh up), and the Flink 2.x cluster beside
#      the 1.20 one (scripts/stack.sh flink2 up)
#   5. integration tests against the real services (pytest tests/), on Flink 1.20 (and
#      tests/test_flink2.py across both clusters)
#   6. the stated Flink 2.x subset (scripts/test-flink2.sh --ci: fault tests and the lifecycle
#      invariants against the 2.x cluster); scripts/test-flink2.sh alone runs the full 2.x suite
# Extra arguments go to pytest (e.g. scripts/test.sh -k health).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
STACK=${PG_FLINK_STACK:-/opt/pg_flink-stack}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STACK/target}
step() { printf '\n=== %s\n' "$*"; }

step "dependencies"; scripts/install-deps.sh
step "cargo fmt --check"; cargo fmt --check
step "cargo clippy"; cargo clippy --all-targets -- -D warnings
step "unit tests (cargo test --lib)"; cargo test --lib
step "Postgres-only tier (pg_regress)"; scripts/stack.sh up postgres; scripts/test-pg.sh
step "stack up"; PG_FLINK_SKIP_BUILD=1 scripts/stack.sh up
step "Flink 2.x cluster beside 1.20 (tests/test_flink2.py)"; scripts/stack.sh flink2 up
step "integration tests (pytest)"
"$STACK/venv/bin/python" -m pytest tests -v -p no:cacheprovider "$@"
if [ $# -eq 0 ]; then
  step "integration tests on Flink 2.x (scripts/test-flink2.sh --ci)"; scripts/test-flink2.sh --ci
fi
