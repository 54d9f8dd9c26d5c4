#!/usr/bin/env bash
# A PostgreSQL 15 primary set up like the stack's (pg_flink preloaded, streaming replication
# allowed) and a streaming standby of it. Sourced by scripts/stack.sh (the pgpair_* functions:
# the stack's primary is written by pgpair_conf / pgpair_hba / pgpair_flink_conf, `stack.sh
# standby` uses pgpair_basebackup), and a command of its own, which tests/test_failover.py uses
# for a throwaway pair on other ports (the stack's Postgres is never touched):
#
#   pg-pair.sh primary <pgdata> <port> <log> [name=value ...]
#       initdb <pgdata> (unless it holds a cluster already) with the stack's settings on <port>,
#       plus the given settings (they win), then start it and wait until it accepts connections
#   pg-pair.sh standby <primary-port> <pgdata> <port> <log> [name=value ...]
#       pg_basebackup -R of the primary on 127.0.0.1:<primary-port> into <pgdata> (unless it
#       holds a cluster already), on <port> with a small shared_buffers, start it and wait until
#       it is in recovery and streaming from the primary
#   pg-pair.sh start <pgdata> <log>           pg_ctl start, wait until it accepts connections
#   pg-pair.sh promote <pgdata>               pg_ctl promote, wait until it is out of recovery
#   pg-pair.sh stop <pgdata> [fast|immediate] pg_ctl stop (nothing to do if it is not running)
#   pg-pair.sh role <port>                    prints primary, standby or down
#
# Postgres runs as the OS user `postgres` (through runuser when called as root); every directory
# given is created owned by it (its parents must be traversable by it). Connections go over TCP
# to 127.0.0.1 (pg_hba trusts loopback, replication included); unix sockets are in
# /var/run/postgresql unless unix_socket_directories is given. Exit status 1 with a message
# naming the log file when something does not come up in time.

PGPAIR_BIN=${PGPAIR_BIN:-/usr/lib/postgresql/15/bin}
PGPAIR_USER=${PGPAIR_USER:-postgres}
PGPAIR_TIMEOUT=${PGPAIR_TIMEOUT:-60}

pgpair_log() { printf '[pg-pair] %s\n' "$*" >&2; }
pgpair_fail() { printf '[pg-pair] ERROR: %s\n' "$*" >&2; return 1; }

# Runs a command as the Postgres OS user.
pgpair_as() {
  if [ "$(id -un)" = "$PGPAIR_USER" ]; then "$@"; else runuser -u "$PGPAIR_USER" -- "$@"; fi
}

pgpair_psql() { # port sql
  pgpair_as "$PGPAIR_BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -XtAq -v ON_ERROR_STOP=1 -c "$2"
}

# The settings of the stack's primary (appended to postgresql.conf after initdb).
pgpair_conf() { # port socket_dir
  cat <<EOF
# --- pg_flink stack ---
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$2'
shared_preload_libraries = 'pg_flink'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_worker_processes = 16
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

# Development stack on loopback only: trust local connections (replication included).
pgpair_hba() {
  printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nhost replication all 127.0.0.1/32 trust\n'
}

# The pg_flink settings of the stack (pg_flink_stack.conf, included by postgresql.conf).
pgpair_flink_conf() {
  printf "%s\n" "# Written by scripts/stack.sh (every database with pg_flink gets a worker)" \
    "pg_flink.poll_interval_ms = 500" \
    "pg_flink.launcher_interval_ms = 1000"
}

# name=value ... as postgresql.conf lines (values quoted).
pgpair_settings() {
  local kv
  for kv in "$@"; do
    case "$kv" in
      *=*) printf "%s = '%s'\n" "${kv%%=*}" "$(printf '%s' "${kv#*=}" | sed "s/'/''/g")" ;;
      *) pgpair_fail "setting '$kv' is not name=value" || return 1 ;;
    esac
  done
}

# A directory owned by the Postgres user, mode 700 (what initdb and pg_basebackup want).
pgpair_own_dir() {
  mkdir -p "$1" && chown "$PGPAIR_USER": "$1" && chmod 700 "$1"
}

pgpair_own_file() {
  mkdir -p "$(dirname "$1")" && touch "$1" && chown "$PGPAIR_USER": "$1"
}

pgpair_running() { # pgdata
  [ -f "$1/postmaster.pid" ] && kill -0 "$(head -n1 "$1/postmaster.pid")" 2>/dev/null
}

pgpair_port_of() { # pgdata: the port a running cluster listens on (line 4 of postmaster.pid)
  sed -n 4p "$1/postmaster.pid" 2>/dev/null
}

pgpair_role() { # port
  case "$(pgpair_psql "$1" "SELECT pg_is_in_recovery()" 2>/dev/null)" in
    t) echo standby ;;
    f) echo primary ;;
    *) echo down ;;
  esac
}

# Polls "$@" once a second until it succeeds; fails after $PGPAIR_TIMEOUT seconds naming `what`.
pgpair_wait() { # what log command...
  local what=$1 logf=$2 deadline=$((SECONDS + PGPAIR_TIMEOUT)); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$logf" >&2 2>/dev/null || true
      pgpair_fail "$what: not within ${PGPAIR_TIMEOUT}s (log: $logf)"
      return 1
    fi
    sleep 0.5
  done
}

pgpair_ready() { pgpair_as "$PGPAIR_BIN/pg_isready" -q -h 127.0.0.1 -p "$1"; }
pgpair_is_standby() { [ "$(pgpair_role "$1")" = standby ]; }
pgpair_is_primary() { [ "$(pgpair_role "$1")" = primary ]; }
pgpair_streaming() { # port: a standby whose WAL receiver streams from its primary
  [ "$(pgpair_psql "$1" "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null)" = streaming ]
}

pgpair_start() { # pgdata log
  local data=$1 logf=$2
  pgpair_running "$data" && return 0
  pgpair_own_file "$logf"
  pgpair_as "$PGPAIR_BIN/pg_ctl" -D "$data" -l "$logf" -w -t "$PGPAIR_TIMEOUT" start >/dev/null \
    || { tail -n 20 "$logf" >&2; pgpair_fail "postgres in $data did not start (log: $logf)"; return 1; }
  pgpair_wait "postgres in $data accepts connections" "$logf" pgpair_ready "$(pgpair_port_of "$data")"
}

pgpair_stop() { # pgdata [mode]
  pgpair_running "$1" || return 0
  pgpair_as "$PGPAIR_BIN/pg_ctl" -D "$1" -w -t "$PGPAIR_TIMEOUT" stop -m "${2:-fast}" >/dev/null
}

# initdb with the stack's settings (no-op when <pgdata> already holds a cluster).
pgpair_initdb() { # pgdata port log [name=value ...]
  local data=$1 port=$2 logf=$3; shift 3
  [ -f "$data/PG_VERSION" ] && return 0
  pgpair_own_dir "$data"
  pgpair_own_file "$logf"
  pgpair_as "$PGPAIR_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >>"$logf" 2>&1 \
    || { pgpair_fail "initdb of $data failed (log: $logf)"; return 1; }
  {
    pgpair_conf "$port" /var/run/postgresql
    echo "include_if_exists = 'pg_flink_stack.conf'"
    pgpair_settings "$@"
  } >>"$data/postgresql.conf" || return 1
  pgpair_hba >"$data/pg_hba.conf"
  pgpair_flink_conf >"$data/pg_flink_stack.conf"
  chown "$PGPAIR_USER": "$data/pg_flink_stack.conf" "$data/pg_hba.conf"
}

# A streaming standby of the primary on 127.0.0.1:<primary-port> (no-op when <pgdata> already
# holds a cluster). pg_basebackup -R writes primary_conninfo and standby.signal; WAL of the
# backup is streamed (-X stream, a temporary slot), so no permanent slot is left on the primary.
# The copied postgresql.conf is the primary's; postgresql.auto.conf (read last) gets this
# standby's port, cluster_name (the application_name it reports to the primary, usable in
# synchronous_standby_names) and a small shared_buffers.
pgpair_basebackup() { # primary_port pgdata port log [name=value ...]
  local pport=$1 data=$2 port=$3 logf=$4; shift 4
  [ -f "$data/PG_VERSION" ] && return 0
  if [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
    pgpair_fail "$data is not empty and holds no cluster; not touching it"; return 1
  fi
  pgpair_own_dir "$data"
  pgpair_own_file "$logf"
  pgpair_log "pg_basebackup of 127.0.0.1:$pport into $data"
  pgpair_as "$PGPAIR_BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$data" -R -X stream -c fast \
    >>"$logf" 2>&1 || { rm -rf "$data"; pgpair_fail "pg_basebackup from 127.0.0.1:$pport failed (log: $logf)"; return 1; }
  {
    echo "# --- streaming standby (scripts/pg-pair.sh) ---"
    pgpair_settings port="$port" cluster_name="pg_flink_standby_$port" shared_buffers=32MB "$@"
  } >>"$data/postgresql.auto.conf" || return 1
}

pgpair_standby() { # primary_port pgdata port log [name=value ...]
  local pport=$1 data=$2 port=$3 logf=$4
  pgpair_basebackup "$@" || return 1
  [ -f "$data/standby.signal" ] \
    || { pgpair_fail "$data is no standby (it was promoted); remove it to make a new standby"; return 1; }
  pgpair_start "$data" "$logf" || return 1
  pgpair_wait "postgres on port $port is in recovery" "$logf" pgpair_is_standby "$port" || return 1
  pgpair_wait "standby on port $port streams from 127.0.0.1:$pport" "$logf" pgpair_streaming "$port"
}

pgpair_promote() { # pgdata
  local data=$1 port
  port=$(pgpair_port_of "$data")
  [ -n "$port" ] || { pgpair_fail "postgres in $data is not running"; return 1; }
  pgpair_as "$PGPAIR_BIN/pg_ctl" -D "$data" -w -t "$PGPAIR_TIMEOUT" promote >/dev/null \
    || { pgpair_fail "pg_ctl promote of $data failed"; return 1; }
  pgpair_wait "postgres on port $port is out of recovery" /dev/null pgpair_is_primary "$port"
}

pgpair_main() {
  set -euo pipefail
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
    primary)
      [ $# -ge 3 ] || pgpair_fail "usage: pg-pair.sh primary <pgdata> <port> <log> [name=value ...]"
      pgpair_initdb "$@"
      pgpair_start "$1" "$3" ;;
    standby)
      [ $# -ge 4 ] || pgpair_fail "usage: pg-pair.sh standby <primary-port> <pgdata> <port> <log> [name=value ...]"
      pgpair_standby "$@" ;;
    start) [ $# -eq 2 ] || pgpair_fail "usage: pg-pair.sh start <pgdata> <log>"; pgpair_start "$@" ;;
    promote) [ $# -eq 1 ] || pgpair_fail "usage: pg-pair.sh promote <pgdata>"; pgpair_promote "$1" ;;
    stop) [ $# -ge 1 ] || pgpair_fail "usage: pg-pair.sh stop <pgdata> [fast|immediate]"; pgpair_stop "$@" ;;
    role) [ $# -eq 1 ] || pgpair_fail "usage: pg-pair.sh role <port>"; pgpair_role "$1" ;;
    *) echo "usage: $0 primary|standby|start|promote|stop|role ..." >&2; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  pgpair_main "$@"
fi
