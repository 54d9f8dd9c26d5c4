#!/usr/bin/env bash
# Installs everything pg_flink's build, stack and tests need on a fresh Debian 12 machine, from the
# package registries only. Idempotent: a second run only checks.
#   - Debian: PostgreSQL 15 (+ server headers), clang/libclang (pgrx bindgen), cmake, MariaDB, unzip, curl
#   - crates.io: cargo-pgrx 0.16.1 (matches the pinned pgrx), then `cargo pgrx init` against PG 15
#   - PyPI: the integration-test environment (tests/requirements.txt) in $PG_FLINK_STACK/venv
# Java 17 and Maven are expected on the machine (they are on this project's machine image);
# if missing they are installed from Debian too.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=${PG_FLINK_STACK:-/opt/pg_flink-stack}
PGRX_VERSION=0.16.1
log() { printf '[deps] %s\n' "$*" >&2; }

pkgs=(postgresql-15 postgresql-server-dev-15 libclang-dev clang pkg-config cmake mariadb-server mariadb-client unzip curl libcurl4-openssl-dev sqitch libdbd-pg-perl)
command -v java >/dev/null 2>&1 || pkgs+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  # Debian's postinst would start a default cluster/server; the stack runs its own instead.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The stack runs its own PostgreSQL and MariaDB on 5432/3306: stop Debian's default instances.
for svc in postgresql mariadb; do
  if command -v service >/dev/null 2>&1 && service "$svc" status >/dev/null 2>&1; then
    log "stopping Debian's default $svc service (the stack runs its own)"
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  log "cargo install cargo-pgrx $PGRX_VERSION (about 9 minutes on 2 cores, once per machine)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
fi
if ! grep -q '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
  log "cargo pgrx init --pg15 (system PostgreSQL 15)"
  cargo pgrx init --pg15 /usr/lib/postgresql/15/bin/pg_config >/dev/null
fi

mkdir -p "$STACK"
VENV=$STACK/venv
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the test virtualenv $VENV"
  python3 -m venv "$VENV"
fi
req=$REPO/tests/requirements.txt
stamp=$VENV/.requirements.sha
if [ "$(sha256sum "$req" | cut -d' ' -f1)" != "$(cat "$stamp" 2>/dev/null)" ]; then
  log "pip install -r tests/requirements.txt"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  sha256sum "$req" | cut -d' ' -f1 >"$stamp"
fi
log "dependencies ready"
