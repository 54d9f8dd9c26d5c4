#!/usr/bin/env bash
# pg_flink local stack: PostgreSQL 15 (+ this extension), Flink 1.20 session cluster + SQL Gateway
# with Kafka/JDBC/Elasticsearch connectors, a KRaft Kafka broker, Elasticsearch 7 and MariaDB.
# Everything listens on 127.0.0.1 only.
#
#   scripts/stack.sh up       install what is missing (cached), build + install the extension, start all
#   scripts/stack.sh up postgres   build + install the extension and start PostgreSQL only (the
#                                  Postgres-only test tier needs nothing else)
#   scripts/stack.sh down     stop what this script started (by pid)
#   scripts/stack.sh status   health of every service (exit 1 if any is unhealthy)
#   scripts/stack.sh logs [service]   tail the logs (all, or one service)
#   scripts/stack.sh env      print the environment variables tests use
#   scripts/stack.sh standby up|down|status   a streaming replica of the stack's primary on port
#                                  5433 (pg_basebackup -R; scripts/pg-pair.sh). Once made, `up`
#                                  starts it and `down` stops it too; `standby down` stops it
#                                  and deletes its data (the next `standby up` makes a new one)
#   scripts/stack.sh flink2 up|down|status   a Flink 2.x session cluster + SQL Gateway with its own
#                                  connectors, beside the 1.20 one (REST 8091, gateway 8093). Once
#                                  started, `up` starts it and `down` stops it too; `flink2 down`
#                                  stops it and leaves it out of `up` until the next `flink2 up`
#
# State lives in $PG_FLINK_STACK (default /opt/pg_flink-stack): cache/ (downloads, reused by every
# later `up`), the unpacked distributions, and run/ (data, logs/, pids/).
set -euo pipefail
# A command that ends the script says so (set -e alone exits silently); a function's `return N`
# (status: unhealthy) is a result, not a failure.
set -E
trap 'rc=$?; case $BASH_COMMAND in return*) ;; *) echo "[stack] ERROR: scripts/stack.sh line $LINENO failed (exit $rc): $BASH_COMMAND" >&2 ;; esac' ERR

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=${PG_FLINK_STACK:-/opt/pg_flink-stack}
CACHE=$STACK/cache
RUN=$STACK/run
LOGS=$RUN/logs
PIDS=$RUN/pids

FLINK_VERSION=1.20.3
KAFKA_VERSION=4.1.1
ES_VERSION=7.17.29
PG_BIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BIN/pg_config
JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
export JAVA_HOME

FLINK_HOME=$STACK/flink-$FLINK_VERSION
ES_HOME=$STACK/elasticsearch-$ES_VERSION
KAFKA_LIBS=$CACHE/kafka-libs-$KAFKA_VERSION
FLINK_EXTRAS=$CACHE/flink-extras-$FLINK_VERSION
# Flink 2.x beside 1.20 (`flink2 up`): the newest 2.x on which the connectors shipped here load and
# run (docs/stack.md, "Version matrix"); connector versions are pinned in stack/maven-flink2/pom.xml.
# PG_FLINK2_VERSION=2.x.y tries another 2.x release with the same connector set (`flink2 down` the
# running one first: both use the same ports and pid files); only the default is verified.
FLINK2_VERSION=${PG_FLINK2_VERSION:-2.3.0}
FLINK2_HOME=$STACK/flink-$FLINK2_VERSION
FLINK2_EXTRAS=$CACHE/flink2-extras-$FLINK2_VERSION
SERVICE_USER=pgflink      # unprivileged user for Elasticsearch

PG_PORT=5432 STANDBY_PORT=5433 JM_PORT=8081 GW_PORT=8083 KAFKA_PORT=9092 KAFKA_CTRL_PORT=9093 ES_PORT=9200 MARIADB_PORT=3306
DBS=(pg_flink_demo pg_flink_test)
# Flink 2.x ports: its own REST/gateway ports and fixed rpc/blob/data ports (the 1.20 cluster uses
# 6123 for rpc and ephemeral ports above 32768 for the others).
JM2_PORT=8091 GW2_PORT=8093 JM2_RPC_PORT=6130 BLOB2_PORT=6131 TM2_RPC_PORT=6132 TM2_DATA_PORT=6133 JM2_QUERY_PORT=6134 TM2_QUERY_PORT=6135

# Heaps: keep the idle stack well under 8 GiB RSS on a 24 GiB machine.
JM_PROCESS_MB=1024 TM_PROCESS_MB=2048 TM_SLOTS=4 GW_HEAP=384m KAFKA_HEAP=512m ES_HEAP=512m
# Flink 2.x: leaner (hashmap state needs no managed memory, so its fraction is small).
JM2_PROCESS_MB=768 TM2_PROCESS_MB=1280 TM2_MANAGED_FRACTION=0.1 GW2_HEAP=256m

# The primary's settings and the standby's pg_basebackup (shared with tests/test_failover.py).
# shellcheck source=scripts/pg-pair.sh
source "$REPO/scripts/pg-pair.sh"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A pid file names a live process of ours only if that process started before the file was last
# written: after a reboot (or a crash) its pid may have been given to another process, which must
# neither be taken for the service nor be stopped by `down` (seen: Flink's TaskManager pid file
# naming the Kafka broker after a reboot, so the TaskManager was never started).
pid_alive() { # pidfile
  local pid age
  [ -f "$1" ] || return 1
  pid=$(head -n1 "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  age=$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ')
  [ -n "$age" ] && [ $(($(date +%s) - age)) -le $(($(stat -c %Y "$1") + 5)) ]
}

# The first of the given paths (globs expanded by the caller) that is a file, or nothing. Not `ls |
# head`: under `set -o pipefail` a pattern matching nothing made that fail and end the script (a
# cold `flink2 up` died right after its download).
first_file() { local f; for f in "$@"; do [ -f "$f" ] && { echo "$f"; return 0; }; done; return 0; }

# Refuse to start a service whose port is taken by something we did not start.
require_free_port() { # service port logfile
  if port_open "$2"; then
    die "$1: port $2 on 127.0.0.1 is already in use by another process; stop it or free the port (log: $3)"
  fi
}

wait_until() { # service timeout_s logfile command...
  local svc=$1 t=$2 logf=$3; shift 3
  local deadline=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$svc: last lines of $logf:"; tail -n 30 "$logf" >&2 2>/dev/null || true
      die "$svc did not become healthy within ${t}s (log: $logf)"
    fi
    sleep 1
  done
}

http_ok() { curl -fsS --max-time 3 "$1" >/dev/null; }

mvn_fetch() { # pom_dir outdir extra-args...
  local pom=$1 out=$2; shift 2
  [ -f "$out/.complete" ] && return 0
  log "downloading $(basename "$out") from Maven Central"
  rm -rf "$out.tmp"
  if ! (cd "$pom" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$out.tmp" "$@") >"$LOGS/download.log" 2>&1; then
    die "download of $(basename "$out") (pom: $pom) failed (log: $LOGS/download.log)"
  fi
  mv "$out.tmp" "$out" && touch "$out/.complete"
}

# ------------------------------------------------------------------------------------------------
# installs (idempotent, cached)
# ------------------------------------------------------------------------------------------------
ensure_user() {
  id "$SERVICE_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
}

install_flink() {
  [ -f "$FLINK_HOME/.complete" ] && return 0
  mkdir -p "$CACHE/dl"
  local libs=$CACHE/dl/apache-flink-libraries-$FLINK_VERSION.tar.gz
  if [ ! -f "$libs" ]; then
    log "downloading apache-flink-libraries $FLINK_VERSION (PyPI sdist, ~230 MB)"
    pip download --no-deps --no-binary apache-flink-libraries -d "$CACHE/dl" "apache-flink-libraries==$FLINK_VERSION" \
      >"$LOGS/download.log" 2>&1 || die "flink: download of apache-flink-libraries==$FLINK_VERSION failed (log: $LOGS/download.log)"
  fi
  local whl; whl=$(first_file "$CACHE"/dl/apache_flink-"$FLINK_VERSION"-*.whl)
  if [ -z "$whl" ]; then
    log "downloading apache-flink $FLINK_VERSION wheel (bin/ and conf/)"
    pip download --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
      -d "$CACHE/dl" "apache-flink==$FLINK_VERSION" >"$LOGS/download.log" 2>&1 \
      || die "flink: download of apache-flink==$FLINK_VERSION failed (log: $LOGS/download.log)"
    whl=$(first_file "$CACHE"/dl/apache_flink-"$FLINK_VERSION"-*.whl)
    [ -n "$whl" ] || die "flink: pip saved no apache-flink $FLINK_VERSION wheel in $CACHE/dl (log: $LOGS/download.log)"
  fi
  log "assembling FLINK_HOME at $FLINK_HOME"
  local tmp=$STACK/flink.tmp; rm -rf "$tmp" "$FLINK_HOME"; mkdir -p "$tmp"
  tar xzf "$libs" -C "$tmp" "apache-flink-libraries-$FLINK_VERSION/deps"
  (cd "$tmp" && unzip -q "$whl" 'pyflink/bin/*' 'pyflink/conf/*')
  mv "$tmp/apache-flink-libraries-$FLINK_VERSION/deps" "$FLINK_HOME"
  cp -r "$tmp/pyflink/bin/." "$FLINK_HOME/bin/"
  cp -r "$tmp/pyflink/conf" "$FLINK_HOME/conf"
  chmod +x "$FLINK_HOME"/bin/*.sh "$FLINK_HOME/bin/flink"
  rm -rf "$tmp"
  touch "$FLINK_HOME/.complete"
}

install_flink_extras() {
  mvn_fetch "$REPO/stack/maven-flink" "$FLINK_EXTRAS" -DexcludeTransitive=true
  # Gateway into opt/ (where sql-gateway.sh looks), connectors + drivers into lib/ so the cluster
  # and the gateway both see them.
  local j
  for j in "$FLINK_EXTRAS"/*.jar; do
    case "$(basename "$j")" in
      flink-sql-gateway-*) cp -u "$j" "$FLINK_HOME/opt/" ;;
      *) cp -u "$j" "$FLINK_HOME/lib/" ;;
    esac
  done
}

# Flink 2.x: `apache-flink-libraries` is a wheel from 2.2.0 on (pyflink/{lib,opt,plugins},
# pyflink/bin/bash-java-utils.jar), an sdist with deps/ (as 1.20) before; bin/ and conf/ come from
# the `apache-flink` wheel, as for 1.20.
install_flink2() {
  [ -f "$FLINK2_HOME/.complete" ] && return 0
  mkdir -p "$CACHE/dl"
  local libs whl
  libs=$(first_file "$CACHE"/dl/apache_flink_libraries-"$FLINK2_VERSION"-*.whl "$CACHE/dl/apache-flink-libraries-$FLINK2_VERSION.tar.gz")
  if [ -z "$libs" ]; then
    log "downloading apache-flink-libraries $FLINK2_VERSION (PyPI, ~330 MB)"
    pip download --no-deps --only-binary=:all: -d "$CACHE/dl" "apache-flink-libraries==$FLINK2_VERSION" \
      >"$LOGS/download.log" 2>&1 \
      || pip download --no-deps --no-binary apache-flink-libraries -d "$CACHE/dl" "apache-flink-libraries==$FLINK2_VERSION" \
      >>"$LOGS/download.log" 2>&1 \
      || die "flink2: download of apache-flink-libraries==$FLINK2_VERSION failed (log: $LOGS/download.log)"
    libs=$(first_file "$CACHE"/dl/apache_flink_libraries-"$FLINK2_VERSION"-*.whl "$CACHE/dl/apache-flink-libraries-$FLINK2_VERSION.tar.gz")
    [ -n "$libs" ] || die "flink2: pip saved no apache-flink-libraries $FLINK2_VERSION in $CACHE/dl (log: $LOGS/download.log)"
  fi
  whl=$(first_file "$CACHE"/dl/apache_flink-"$FLINK2_VERSION"-*.whl)
  if [ -z "$whl" ]; then
    log "downloading apache-flink $FLINK2_VERSION wheel (bin/ and conf/)"
    pip download --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
      -d "$CACHE/dl" "apache-flink==$FLINK2_VERSION" >"$LOGS/download.log" 2>&1 \
      || die "flink2: download of apache-flink==$FLINK2_VERSION failed (log: $LOGS/download.log)"
    whl=$(first_file "$CACHE"/dl/apache_flink-"$FLINK2_VERSION"-*.whl)
    [ -n "$whl" ] || die "flink2: pip saved no apache-flink $FLINK2_VERSION wheel in $CACHE/dl (log: $LOGS/download.log)"
  fi
  log "assembling Flink $FLINK2_VERSION at $FLINK2_HOME"
  local tmp=$STACK/flink2.tmp; rm -rf "$tmp" "$FLINK2_HOME"; mkdir -p "$tmp"
  case "$libs" in
    *.whl)
      (cd "$tmp" && unzip -q "$libs" 'pyflink/bin/*' 'pyflink/lib/*' 'pyflink/opt/*' 'pyflink/plugins/*') \
        || die "flink2: unpacking $libs failed"
      mv "$tmp/pyflink" "$FLINK2_HOME" ;;
    *)
      tar xzf "$libs" -C "$tmp" "apache-flink-libraries-$FLINK2_VERSION/deps" || die "flink2: unpacking $libs failed"
      mv "$tmp/apache-flink-libraries-$FLINK2_VERSION/deps" "$FLINK2_HOME" ;;
  esac
  (cd "$tmp" && unzip -q -o "$whl" 'pyflink/bin/*' 'pyflink/conf/*') || die "flink2: unpacking $whl failed"
  cp -r "$tmp/pyflink/bin/." "$FLINK2_HOME/bin/"
  cp -r "$tmp/pyflink/conf" "$FLINK2_HOME/conf"
  chmod +x "$FLINK2_HOME"/bin/*.sh "$FLINK2_HOME/bin/flink"
  rm -rf "$tmp"
  touch "$FLINK2_HOME/.complete"
}

# The extras are cached per Flink version and pom content; the jars a previous pom put into lib/
# and opt/ (listed in .extras) are removed first, so lib/ holds exactly the pom's connector set.
install_flink2_extras() {
  local pom=$REPO/stack/maven-flink2 sum
  sum=$(md5sum "$pom/pom.xml" | head -c 8)
  local extras=$FLINK2_EXTRAS-$sum
  mvn_fetch "$pom" "$extras" -DexcludeTransitive=true -Dflink.version="$FLINK2_VERSION"
  local old
  for old in "$FLINK2_EXTRAS"-*; do [ "$old" = "$extras" ] || rm -rf "$old"; done
  [ "$(cat "$FLINK2_HOME/.extras-from" 2>/dev/null)" = "$extras" ] && return 0
  local j
  if [ -f "$FLINK2_HOME/.extras" ]; then
    while read -r j; do rm -f "$FLINK2_HOME/$j"; done <"$FLINK2_HOME/.extras"
  fi
  : >"$FLINK2_HOME/.extras"
  for j in "$extras"/*.jar; do
    case "$(basename "$j")" in
      flink-sql-gateway-*) cp "$j" "$FLINK2_HOME/opt/"; echo "opt/$(basename "$j")" >>"$FLINK2_HOME/.extras" ;;
      *) cp "$j" "$FLINK2_HOME/lib/"; echo "lib/$(basename "$j")" >>"$FLINK2_HOME/.extras" ;;
    esac
  done
  echo "$extras" >"$FLINK2_HOME/.extras-from"
}

install_kafka() { mvn_fetch "$REPO/stack/maven-kafka" "$KAFKA_LIBS" -DincludeScope=runtime; }

install_es() {
  [ -f "$ES_HOME/.complete" ] && return 0
  local zip=$CACHE/dl/elasticsearch-$ES_VERSION.zip
  if [ ! -f "$zip" ]; then
    log "downloading Elasticsearch $ES_VERSION (Maven Central integ-test-zip)"
    (cd /tmp && mvn -q -B dependency:copy \
      "-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      -DoutputDirectory="$CACHE/dl") >"$LOGS/download.log" 2>&1 \
      || die "elasticsearch: download of integ-test-zip $ES_VERSION failed (log: $LOGS/download.log)"
  fi
  rm -rf "$ES_HOME" "$STACK/es.tmp"; mkdir -p "$STACK/es.tmp"
  unzip -q "$zip" -d "$STACK/es.tmp"
  mv "$STACK/es.tmp/elasticsearch-$ES_VERSION" "$ES_HOME"; rm -rf "$STACK/es.tmp"
  touch "$ES_HOME/.complete"
}

build_extension() {
  # Shared target dir: a fresh clone (CI) reuses the compiled dependencies of earlier runs.
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STACK/target}
  local so=/usr/lib/postgresql/15/lib/pg_flink.so before after
  before=$(md5sum "$so" 2>/dev/null | cut -d' ' -f1 || true)
  log "building and installing the pg_flink extension (cargo pgrx install)"
  # PG_FLINK_PROFILE=release builds an optimised library (benchmarks); the default debug build
  # keeps test iterations fast.
  local profile_flag=""
  [ "${PG_FLINK_PROFILE:-debug}" = release ] && profile_flag="--release"
  (cd "$REPO" && cargo pgrx install $profile_flag --pg-config "$PG_CONFIG") >"$LOGS/build.log" 2>&1 \
    || { tail -n 40 "$LOGS/build.log" >&2; die "extension build failed (log: $LOGS/build.log)"; }
  after=$(md5sum "$so" | cut -d' ' -f1)
  [ "$before" = "$after" ] || EXTENSION_CHANGED=1
  # Frozen install scripts of released versions (sql/pg_flink--X.Y.Z.sql): `cargo pgrx install`
  # writes only the current version's script and copies the upgrade scripts (--a--b.sql), but
  # `CREATE EXTENSION pg_flink VERSION '0.1.0'` (the upgrade test, a restore of an old dump)
  # needs the old version's own script too.
  local f
  for f in "$REPO"/sql/pg_flink--*.sql; do
    case "$(basename "$f")" in *--*--*) continue ;; esac
    install -m 644 "$f" "$($PG_CONFIG --sharedir)/extension/"
  done
}

# ------------------------------------------------------------------------------------------------
# services
# ------------------------------------------------------------------------------------------------
PGDATA=$RUN/pgdata
pg() { runuser -u postgres -- "$@"; }
pg_healthy() { runuser -u postgres -- "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p $PG_PORT; }

start_postgres() {
  local logf=$LOGS/postgres.log
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    log "postgres: initdb $PGDATA"
    mkdir -p "$PGDATA"; chown postgres:postgres "$PGDATA"; chmod 700 "$PGDATA"
    pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log" 2>&1 \
      || die "postgres: initdb failed (log: $LOGS/initdb.log)"
    pgpair_conf $PG_PORT /var/run/postgresql >>"$PGDATA/postgresql.conf"
    echo "include_if_exists = 'pg_flink_stack.conf'" >>"$PGDATA/postgresql.conf"
    # Development stack on loopback only: trust local connections.
    pgpair_hba >"$PGDATA/pg_hba.conf"
  fi
  mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
  # Settings owned by this script (rewritten on every up; a change restarts Postgres).
  grep -q "pg_flink_stack.conf" "$PGDATA/postgresql.conf" || echo "include_if_exists = 'pg_flink_stack.conf'" >>"$PGDATA/postgresql.conf"
  local conf_new
  conf_new=$(pgpair_flink_conf)
  if [ "$(cat "$PGDATA/pg_flink_stack.conf" 2>/dev/null)" != "$conf_new" ]; then
    echo "$conf_new" >"$PGDATA/pg_flink_stack.conf"; chown postgres:postgres "$PGDATA/pg_flink_stack.conf"
    EXTENSION_CHANGED=1
  fi
  # The library Postgres has loaded (preloaded by the postmaster) vs the installed one: a
  # manual `cargo pgrx install` between two `up`s is noticed too.
  local so_now; so_now=$(md5sum /usr/lib/postgresql/15/lib/pg_flink.so 2>/dev/null | cut -d' ' -f1 || true)
  [ "$(cat "$RUN/pg_flink.so.loaded" 2>/dev/null)" = "$so_now" ] || EXTENSION_CHANGED=1
  if pid_alive "$PGDATA/postmaster.pid"; then
    if [ "${EXTENSION_CHANGED:-0}" = 1 ]; then
      log "postgres: restarting to load the rebuilt extension / new settings"
      pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$logf" -w -t 60 restart -m fast >/dev/null
    fi
  else
    require_free_port postgres $PG_PORT "$logf"
    touch "$logf"; chown postgres:postgres "$logf"
    pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$logf" -w -t 60 start >/dev/null || die "postgres failed to start (log: $logf)"
  fi
  echo "$so_now" >"$RUN/pg_flink.so.loaded"
  wait_until postgres 60 "$logf" pg_healthy
  head -n1 "$PGDATA/postmaster.pid" >"$PIDS/postgres.pid"
  local db
  for db in "${DBS[@]}"; do
    if [ "$(pg psql -h 127.0.0.1 -p $PG_PORT -XtAc "select 1 from pg_database where datname='$db'" postgres)" != 1 ]; then
      pg psql -h 127.0.0.1 -p $PG_PORT -Xq -c "create database $db" postgres
    fi
  done
}

# The streaming standby of the primary (optional; made by `standby up`). Its data is a copy:
# `standby down` deletes it, the next `standby up` makes a new one with pg_basebackup.
STANDBY_DATA=$RUN/pgdata-standby
STANDBY_LOG=$LOGS/postgres-standby.log
standby_healthy() { pgpair_is_standby $STANDBY_PORT && pgpair_streaming $STANDBY_PORT; }

start_standby() {
  pg_healthy || die "postgres-standby: the primary (127.0.0.1:$PG_PORT) is not running; run \`$0 up postgres\` first"
  if [ -f "$STANDBY_DATA/PG_VERSION" ] && [ ! -f "$STANDBY_DATA/standby.signal" ]; then
    die "postgres-standby: $STANDBY_DATA was promoted (it is a primary of its own now); \`$0 standby down\` deletes it, \`$0 standby up\` then makes a new standby"
  fi
  if pgpair_running "$STANDBY_DATA"; then
    if [ "${EXTENSION_CHANGED:-0}" = 1 ]; then
      log "postgres-standby: restarting to load the rebuilt extension"
      pg "$PG_BIN/pg_ctl" -D "$STANDBY_DATA" -l "$STANDBY_LOG" -w -t 60 restart -m fast >/dev/null
    fi
  else
    require_free_port postgres-standby $STANDBY_PORT "$STANDBY_LOG"
    [ -f "$STANDBY_DATA/PG_VERSION" ] || log "postgres-standby: pg_basebackup of 127.0.0.1:$PG_PORT into $STANDBY_DATA"
    log "postgres-standby: starting (:$STANDBY_PORT)"
  fi
  pgpair_standby $PG_PORT "$STANDBY_DATA" $STANDBY_PORT "$STANDBY_LOG" \
    || die "postgres-standby did not come up as a streaming standby (log: $STANDBY_LOG)"
  head -n1 "$STANDBY_DATA/postmaster.pid" >"$PIDS/postgres-standby.pid"
}

stop_standby() { # [delete]
  if pgpair_running "$STANDBY_DATA"; then
    log "postgres-standby: stopping"
    pgpair_stop "$STANDBY_DATA" fast || true
  fi
  rm -f "$PIDS/postgres-standby.pid"
  if [ "${1:-}" = delete ] && [ -e "$STANDBY_DATA" ]; then
    log "postgres-standby: deleting $STANDBY_DATA"
    rm -rf "$STANDBY_DATA"
  fi
}

write_flink_conf() {
  mkdir -p "$RUN/flink/checkpoints" "$RUN/flink/savepoints" "$LOGS/flink" "$RUN/flink/tmp"
  cat >"$FLINK_HOME/conf/config.yaml" <<EOF
# Written by scripts/stack.sh; edit there.
env:
  java:
    opts:
      all: --add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
      sql-gateway: -Xmx$GW_HEAP -Xms128m
  log:
    dir: $LOGS/flink
  pid:
    dir: $PIDS
io:
  tmp:
    dirs: $RUN/flink/tmp
jobmanager:
  bind-host: 127.0.0.1
  rpc:
    address: 127.0.0.1
    port: 6123
  memory:
    process:
      size: ${JM_PROCESS_MB}m
  execution:
    failover-strategy: region
taskmanager:
  bind-host: 127.0.0.1
  host: 127.0.0.1
  numberOfTaskSlots: $TM_SLOTS
  memory:
    process:
      size: ${TM_PROCESS_MB}m
parallelism:
  default: 1
rest:
  address: 127.0.0.1
  bind-address: 127.0.0.1
  port: $JM_PORT
state:
  checkpoints:
    dir: file://$RUN/flink/checkpoints
  savepoints:
    dir: file://$RUN/flink/savepoints
execution:
  checkpointing:
    interval: 10s
sql-gateway:
  endpoint:
    rest:
      address: 127.0.0.1
      bind-address: 127.0.0.1
      port: $GW_PORT
  session:
    idle-timeout: 10min
EOF
}

# Flink's daemon scripts name pid and log files after FLINK_IDENT_STRING (default: $USER, often unset).
export FLINK_IDENT_STRING=pgflink
flink_pid() { echo "$PIDS/flink-$FLINK_IDENT_STRING-$1.pid"; }

jm_healthy() { http_ok "http://127.0.0.1:$JM_PORT/overview"; }
tm_healthy() { curl -fsS --max-time 3 "http://127.0.0.1:$JM_PORT/overview" | grep -q '"taskmanagers":[1-9]'; }
gw_healthy() { http_ok "http://127.0.0.1:$GW_PORT/v3/info"; }

start_flink() {
  write_flink_conf
  local jlog=$LOGS/flink/flink-jobmanager.log
  if ! pid_alive "$(flink_pid standalonesession)"; then
    rm -f "$(flink_pid standalonesession)"
    require_free_port flink-jobmanager $JM_PORT "$LOGS/flink"
    log "flink: starting JobManager (REST :$JM_PORT)"
    FLINK_CONF_DIR=$FLINK_HOME/conf "$FLINK_HOME/bin/jobmanager.sh" start >>"$LOGS/flink/start.log" 2>&1
  fi
  wait_until flink-jobmanager 120 "$LOGS/flink/start.log" jm_healthy
  if ! pid_alive "$(flink_pid taskexecutor)"; then
    rm -f "$(flink_pid taskexecutor)"
    log "flink: starting TaskManager ($TM_SLOTS slots)"
    FLINK_CONF_DIR=$FLINK_HOME/conf "$FLINK_HOME/bin/taskmanager.sh" start >>"$LOGS/flink/start.log" 2>&1
  fi
  wait_until flink-taskmanager 120 "$LOGS/flink/start.log" tm_healthy
  if ! pid_alive "$(flink_pid sql-gateway)"; then
    rm -f "$(flink_pid sql-gateway)"
    require_free_port flink-sql-gateway $GW_PORT "$LOGS/flink"
    log "flink: starting SQL Gateway (REST :$GW_PORT)"
    FLINK_CONF_DIR=$FLINK_HOME/conf "$FLINK_HOME/bin/sql-gateway.sh" start \
      -Dsql-gateway.endpoint.rest.address=127.0.0.1 >>"$LOGS/flink/start.log" 2>&1
  fi
  wait_until flink-sql-gateway 120 "$LOGS/flink/start.log" gw_healthy
}

# ------------------------------------------------------------------------------------------------
# Flink 2.x beside 1.20: own home, ports, config.yaml (2.x reads no flink-conf.yaml), logs in
# run/logs/flink2/, pid files run/pids/flink-pgflink2-*.pid, data in run/flink2/.
# ------------------------------------------------------------------------------------------------
FLINK2_IDENT=pgflink2
FLINK2_ENABLED=$RUN/flink2.enabled   # written by `flink2 up`, removed by `flink2 down`
flink2_pid() { echo "$PIDS/flink-$FLINK2_IDENT-$1.pid"; }
flink2_daemon() { # script args...
  local script=$1; shift
  env -u FLINK_LIB_DIR -u FLINK_OPT_DIR -u FLINK_PLUGINS_DIR -u _FLINK_HOME_DETERMINED -u FLINK_ENV_JAVA_OPTS \
    FLINK_HOME="$FLINK2_HOME" FLINK_IDENT_STRING=$FLINK2_IDENT FLINK_CONF_DIR="$FLINK2_HOME/conf" \
    "$FLINK2_HOME/bin/$script" "$@" \
    >>"$LOGS/flink2/start.log" 2>&1
}
jm2_healthy() { http_ok "http://127.0.0.1:$JM2_PORT/overview"; }
tm2_healthy() { curl -fsS --max-time 3 "http://127.0.0.1:$JM2_PORT/overview" | grep -q '"taskmanagers":[1-9]'; }
gw2_healthy() { http_ok "http://127.0.0.1:$GW2_PORT/v4/info"; }

write_flink2_conf() {
  mkdir -p "$RUN/flink2/checkpoints" "$RUN/flink2/savepoints" "$RUN/flink2/tmp" "$LOGS/flink2"
  cat >"$FLINK2_HOME/conf/config.yaml" <<EOF
# Written by scripts/stack.sh (flink2); edit there. Flink 2.x reads only this file (standard YAML).
env:
  java:
    opts:
      all: --add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
      sql-gateway: -Xmx$GW2_HEAP -Xms64m
  log:
    dir: $LOGS/flink2
  pid:
    dir: $PIDS
io:
  tmp:
    dirs: $RUN/flink2/tmp
jobmanager:
  bind-host: 127.0.0.1
  rpc:
    address: 127.0.0.1
    port: $JM2_RPC_PORT
  memory:
    process:
      size: ${JM2_PROCESS_MB}m
  execution:
    failover-strategy: region
taskmanager:
  bind-host: 127.0.0.1
  host: 127.0.0.1
  rpc:
    port: $TM2_RPC_PORT
  data:
    port: $TM2_DATA_PORT
  numberOfTaskSlots: $TM_SLOTS
  memory:
    process:
      size: ${TM2_PROCESS_MB}m
    managed:
      fraction: $TM2_MANAGED_FRACTION
blob:
  server:
    port: $BLOB2_PORT
metrics:
  internal:
    query-service:
      port: $JM2_QUERY_PORT
parallelism:
  default: 1
rest:
  address: 127.0.0.1
  bind-address: 127.0.0.1
  port: $JM2_PORT
execution:
  checkpointing:
    interval: 10s
    dir: file://$RUN/flink2/checkpoints
    savepoint-dir: file://$RUN/flink2/savepoints
sql-gateway:
  endpoint:
    rest:
      address: 127.0.0.1
      bind-address: 127.0.0.1
      port: $GW2_PORT
  session:
    idle-timeout: 10min
EOF
}

start_flink2() {
  [ -f "$FLINK2_HOME/.complete" ] || die "flink2: Flink $FLINK2_VERSION is not installed (run \`$0 flink2 up\`)"
  write_flink2_conf
  if ! pid_alive "$(flink2_pid standalonesession)"; then
    rm -f "$(flink2_pid standalonesession)"
    local p
    for p in $JM2_PORT $JM2_RPC_PORT $BLOB2_PORT; do require_free_port flink2-jobmanager "$p" "$LOGS/flink2"; done
    log "flink2: starting JobManager $FLINK2_VERSION (REST :$JM2_PORT)"
    flink2_daemon jobmanager.sh start
  fi
  wait_until flink2-jobmanager 120 "$LOGS/flink2/start.log" jm2_healthy
  if ! pid_alive "$(flink2_pid taskexecutor)"; then
    rm -f "$(flink2_pid taskexecutor)"
    require_free_port flink2-taskmanager $TM2_RPC_PORT "$LOGS/flink2"
    require_free_port flink2-taskmanager $TM2_DATA_PORT "$LOGS/flink2"
    require_free_port flink2-taskmanager $TM2_QUERY_PORT "$LOGS/flink2"
    log "flink2: starting TaskManager ($TM_SLOTS slots)"
    flink2_daemon taskmanager.sh start -Dmetrics.internal.query-service.port=$TM2_QUERY_PORT
  fi
  wait_until flink2-taskmanager 120 "$LOGS/flink2/start.log" tm2_healthy
  if ! pid_alive "$(flink2_pid sql-gateway)"; then
    rm -f "$(flink2_pid sql-gateway)"
    require_free_port flink2-sql-gateway $GW2_PORT "$LOGS/flink2"
    log "flink2: starting SQL Gateway (REST :$GW2_PORT)"
    flink2_daemon sql-gateway.sh start -Dsql-gateway.endpoint.rest.address=127.0.0.1
  fi
  wait_until flink2-sql-gateway 120 "$LOGS/flink2/start.log" gw2_healthy
}

stop_flink2() {
  stop_pidfile flink2-sql-gateway "$(flink2_pid sql-gateway)"
  stop_pidfile flink2-taskmanager "$(flink2_pid taskexecutor)"
  stop_pidfile flink2-jobmanager "$(flink2_pid standalonesession)"
}

flink2_status_rows() { # prints the three rows; returns 1 if any is not healthy
  local bad=0 name pidf port probe pid state row
  for row in "flink2-jobmanager standalonesession $JM2_PORT jm2_healthy" \
             "flink2-taskmanager taskexecutor $JM2_PORT tm2_healthy" \
             "flink2-sql-gateway sql-gateway $GW2_PORT gw2_healthy"; do
    read -r name pidf port probe <<<"$row"
    pidf=$(flink2_pid "$pidf"); pid=-; state=down
    [ -f "$pidf" ] && pid=$(head -n1 "$pidf")
    if pid_alive "$pidf" && $probe >/dev/null 2>&1; then state=healthy; elif pid_alive "$pidf"; then state=unhealthy; fi
    printf '%-20s %-10s pid=%-8s 127.0.0.1:%s\n' "$name" "$state" "$pid" "$port"
    [ "$state" = healthy ] || bad=1
  done
  return $bad
}

KAFKA_DIR=$RUN/kafka
kafka_healthy() { port_open $KAFKA_PORT && grep -q "Kafka Server started" "$LOGS/kafka.log"; }

start_kafka() {
  local logf=$LOGS/kafka.log
  pid_alive "$PIDS/kafka.pid" && { wait_until kafka 60 "$logf" kafka_healthy; return 0; }
  require_free_port kafka $KAFKA_PORT "$logf"
  require_free_port kafka-controller $KAFKA_CTRL_PORT "$logf"
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
EOF
  cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = org.apache.kafka
logger.kafka.level = warn
logger.k.name = kafka
logger.k.level = info
EOF
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "kafka: formatting KRaft storage"
    "$JAVA_HOME/bin/java" -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
      kafka.tools.StorageTool format -t "$(cat /proc/sys/kernel/random/uuid | tr -d - | head -c 22)" \
      -c "$KAFKA_DIR/server.properties" >"$LOGS/kafka-format.log" 2>&1 \
      || die "kafka: storage format failed (log: $LOGS/kafka-format.log)"
  fi
  log "kafka: starting KRaft broker $KAFKA_VERSION (:$KAFKA_PORT)"
  : >"$logf"
  nohup "$JAVA_HOME/bin/java" -Xmx$KAFKA_HEAP -Xms256m -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$KAFKA_DIR/server.properties" >>"$logf" 2>&1 </dev/null &
  echo $! >"$PIDS/kafka.pid"
  wait_until kafka 90 "$logf" kafka_healthy
}

es_healthy() { curl -fsS --max-time 3 "http://127.0.0.1:$ES_PORT/_cluster/health" | grep -qE '"status":"(green|yellow)"'; }

start_es() {
  local logf=$LOGS/elasticsearch.log
  pid_alive "$PIDS/elasticsearch.pid" && { wait_until elasticsearch 120 "$logf" es_healthy; return 0; }
  require_free_port elasticsearch $ES_PORT "$logf"
  ensure_user
  mkdir -p "$RUN/es/data" "$RUN/es/logs" "$RUN/es/tmp"
  chown -R "$SERVICE_USER" "$RUN/es" "$ES_HOME"
  : >"$logf"; chown "$SERVICE_USER" "$logf" "$PIDS"
  log "elasticsearch: starting $ES_VERSION (:$ES_PORT) as user $SERVICE_USER"
  runuser -u "$SERVICE_USER" -- env ES_JAVA_HOME="$JAVA_HOME" ES_TMPDIR="$RUN/es/tmp" \
    ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
    "$ES_HOME/bin/elasticsearch" -d -p "$PIDS/elasticsearch.pid" \
    -Ediscovery.type=single-node -Enetwork.host=127.0.0.1 -Ehttp.port=$ES_PORT \
    -Epath.data="$RUN/es/data" -Epath.logs="$RUN/es/logs" -Ecluster.name=pg-flink \
    -Ecluster.routing.allocation.disk.threshold_enabled=false \
    >>"$logf" 2>&1 || die "elasticsearch failed to start (log: $logf, $RUN/es/logs/pg-flink.log)"
  wait_until elasticsearch 180 "$RUN/es/logs/pg-flink.log" es_healthy
}

MARIADB_DIR=$RUN/mariadb
MARIADB_SOCK=$MARIADB_DIR/mysqld.sock
mariadb_healthy() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P $MARIADB_PORT -uroot ping; }

start_mariadb() {
  local logf=$LOGS/mariadb.log
  pid_alive "$PIDS/mariadb.pid" && { wait_until mariadb 60 "$logf" mariadb_healthy; return 0; }
  require_free_port mariadb $MARIADB_PORT "$logf"
  mkdir -p "$MARIADB_DIR"; chown mysql:mysql "$MARIADB_DIR"; touch "$logf"; chown mysql "$logf"
  if [ ! -d "$MARIADB_DIR/data/mysql" ]; then
    log "mariadb: initialising data directory"
    mariadb-install-db --user=mysql --datadir="$MARIADB_DIR/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$LOGS/mariadb-install.log" 2>&1 || die "mariadb: install-db failed (log: $LOGS/mariadb-install.log)"
  fi
  log "mariadb: starting (:$MARIADB_PORT)"
  nohup mariadbd --no-defaults --user=mysql --datadir="$MARIADB_DIR/data" --port=$MARIADB_PORT \
    --bind-address=127.0.0.1 --socket="$MARIADB_SOCK" --pid-file="$MARIADB_DIR/mariadbd.pid" \
    --log-error="$logf" --innodb-buffer-pool-size=64M --performance-schema=OFF </dev/null >/dev/null 2>&1 &
  echo $! >"$PIDS/mariadb.pid"
  wait_until mariadb 60 "$logf" mariadb_healthy
  mariadb --protocol=tcp -h 127.0.0.1 -P $MARIADB_PORT -uroot -e \
    "CREATE DATABASE IF NOT EXISTS pg_flink_test; CREATE USER IF NOT EXISTS 'pgflink'@'127.0.0.1' IDENTIFIED BY 'pgflink'; GRANT ALL ON pg_flink_test.* TO 'pgflink'@'127.0.0.1';"
}

# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------
cmd_up() {
  mkdir -p "$CACHE" "$LOGS" "$PIDS"
  chmod 755 "$STACK" "$RUN" "$LOGS"
  [ -x "$JAVA_HOME/bin/java" ] || die "java 17 not found at $JAVA_HOME (run scripts/install-deps.sh)"
  install_flink; install_flink_extras; install_kafka; install_es
  if [ "${PG_FLINK_SKIP_BUILD:-0}" != 1 ]; then build_extension; fi
  start_postgres
  if [ -f "$STANDBY_DATA/PG_VERSION" ]; then start_standby; fi
  start_kafka
  start_es
  start_mariadb
  start_flink
  if [ -f "$FLINK2_ENABLED" ]; then install_flink2; install_flink2_extras; start_flink2; fi
  cmd_status
}

cmd_up_postgres() {
  mkdir -p "$CACHE" "$LOGS" "$PIDS"
  chmod 755 "$STACK" "$RUN" "$LOGS"
  if [ "${PG_FLINK_SKIP_BUILD:-0}" != 1 ]; then build_extension; fi
  start_postgres
}

stop_pidfile() { # service pidfile
  local f=$2 p
  [ -f "$f" ] || return 0
  p=$(head -n1 "$f")
  if pid_alive "$f"; then
    log "$1: stopping pid $p"
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
    if kill -0 "$p" 2>/dev/null; then log "$1: pid $p did not stop in 30s, killing"; kill -9 "$p" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

cmd_down() {
  stop_flink2
  stop_pidfile flink-sql-gateway "$(flink_pid sql-gateway)"
  stop_pidfile flink-taskmanager "$(flink_pid taskexecutor)"
  stop_pidfile flink-jobmanager "$(flink_pid standalonesession)"
  stop_pidfile kafka "$PIDS/kafka.pid"
  stop_pidfile elasticsearch "$PIDS/elasticsearch.pid"
  stop_pidfile mariadb "$PIDS/mariadb.pid"
  if [ -f "$PGDATA/postmaster.pid" ] && pid_alive "$PGDATA/postmaster.pid"; then
    log "postgres: stopping"
    pg "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t 60 stop -m fast >/dev/null || true
  fi
  rm -f "$PIDS/postgres.pid"
  stop_standby
}

cmd_status() {
  local bad=0
  check() { # name pidfile port probe...
    local name=$1 pidf=$2 port=$3; shift 3
    local pid=- state=down
    [ -f "$pidf" ] && pid=$(head -n1 "$pidf")
    if pid_alive "$pidf" && "$@" >/dev/null 2>&1; then state=healthy; elif pid_alive "$pidf"; then state=unhealthy; fi
    printf '%-20s %-10s pid=%-8s 127.0.0.1:%s\n' "$name" "$state" "$pid" "$port"
    [ "$state" = healthy ] || bad=1
  }
  check postgres "$PGDATA/postmaster.pid" $PG_PORT pg_healthy
  if [ -f "$STANDBY_DATA/PG_VERSION" ]; then
    check postgres-standby "$STANDBY_DATA/postmaster.pid" $STANDBY_PORT standby_healthy
  fi
  check flink-jobmanager "$(flink_pid standalonesession)" $JM_PORT jm_healthy
  check flink-taskmanager "$(flink_pid taskexecutor)" $JM_PORT tm_healthy
  check flink-sql-gateway "$(flink_pid sql-gateway)" $GW_PORT gw_healthy
  check kafka "$PIDS/kafka.pid" $KAFKA_PORT kafka_healthy
  check elasticsearch "$PIDS/elasticsearch.pid" $ES_PORT es_healthy
  check mariadb "$PIDS/mariadb.pid" $MARIADB_PORT mariadb_healthy
  if [ -f "$FLINK2_ENABLED" ]; then flink2_status_rows || bad=1; fi
  local rss=0 f p
  for f in "$PIDS"/*.pid; do
    [ -f "$f" ] || continue
    p=$(head -n1 "$f")
    kill -0 "$p" 2>/dev/null || continue
    # the process and its children (postgres backends, ES controller)
    rss=$((rss + $(ps -o rss= -p "$p" --ppid "$p" 2>/dev/null | awk '{s+=$1} END{print s+0}')))
  done
  echo "resident memory of the stack: $((rss / 1024)) MiB"
  echo "logs: $LOGS"
  return $bad
}

cmd_logs() {
  case "${1:-all}" in
    postgres) tail -n 100 "$LOGS/postgres.log" ;;
    postgres-standby|standby) tail -n 100 "$STANDBY_LOG" ;;
    kafka) tail -n 100 "$LOGS/kafka.log" ;;
    elasticsearch) tail -n 100 "$RUN/es/logs/pg-flink.log" ;;
    mariadb) tail -n 100 "$LOGS/mariadb.log" ;;
    flink|jobmanager|taskmanager|sql-gateway) tail -n 100 "$LOGS"/flink/*"${1#flink}"*.log ;;
    flink2|flink2-jobmanager|flink2-taskmanager|flink2-sql-gateway)
      local part=${1#flink2}; part=${part#-}
      case "$part" in jobmanager) part=standalonesession ;; taskmanager) part=taskexecutor ;; esac
      tail -n 100 "$LOGS"/flink2/*"$part"*.log ;;
    all) for f in "$LOGS"/*.log "$LOGS"/flink/*.log "$LOGS"/flink2/*.log "$RUN/es/logs/pg-flink.log"; do [ -f "$f" ] && { echo "==> $f"; tail -n 20 "$f"; }; done ;;
    *) die "unknown service '$1' (postgres, postgres-standby, flink, jobmanager, taskmanager, sql-gateway, flink2, flink2-jobmanager, flink2-taskmanager, flink2-sql-gateway, kafka, elasticsearch, mariadb)" ;;
  esac
}

cmd_env() {
  cat <<EOF
PG_FLINK_STACK=$STACK
PGHOST=127.0.0.1
PGPORT=$PG_PORT
PG_FLINK_STANDBY_PORT=$STANDBY_PORT
PGUSER=postgres
PG_FLINK_REST_URL=http://127.0.0.1:$JM_PORT
PG_FLINK_GATEWAY_URL=http://127.0.0.1:$GW_PORT
PG_FLINK_KAFKA=127.0.0.1:$KAFKA_PORT
PG_FLINK_ES_URL=http://127.0.0.1:$ES_PORT
PG_FLINK_MARIADB=127.0.0.1:$MARIADB_PORT
PG_FLINK_FLINK_HOME=$FLINK_HOME
PG_FLINK_LOGS=$LOGS
EOF
  if [ -f "$FLINK2_HOME/.complete" ]; then
    cat <<EOF
PG_FLINK2_REST_URL=http://127.0.0.1:$JM2_PORT
PG_FLINK2_GATEWAY_URL=http://127.0.0.1:$GW2_PORT
PG_FLINK2_FLINK_HOME=$FLINK2_HOME
EOF
  fi
}

# Start or stop one service (used by fault tests): scripts/stack.sh start|stop <service>
cmd_service() {
  local action=$1 svc=${2:-}
  case "$action:$svc" in
    stop:sql-gateway) stop_pidfile flink-sql-gateway "$(flink_pid sql-gateway)" ;;
    start:sql-gateway|start:flink) start_flink ;;
    stop:flink)
      stop_pidfile flink-sql-gateway "$(flink_pid sql-gateway)"
      stop_pidfile flink-taskmanager "$(flink_pid taskexecutor)"
      stop_pidfile flink-jobmanager "$(flink_pid standalonesession)" ;;
    stop:kafka) stop_pidfile kafka "$PIDS/kafka.pid" ;;
    start:kafka) start_kafka ;;
    stop:elasticsearch) stop_pidfile elasticsearch "$PIDS/elasticsearch.pid" ;;
    start:elasticsearch) start_es ;;
    stop:mariadb) stop_pidfile mariadb "$PIDS/mariadb.pid" ;;
    start:mariadb) start_mariadb ;;
    stop:flink2) stop_flink2 ;;
    start:flink2) start_flink2 ;;
    stop:flink2-sql-gateway) stop_pidfile flink2-sql-gateway "$(flink2_pid sql-gateway)" ;;
    start:flink2-sql-gateway) start_flink2 ;;
    *) die "usage: stack.sh start|stop flink|sql-gateway|flink2|flink2-sql-gateway|kafka|elasticsearch|mariadb" ;;
  esac
}

# scripts/stack.sh standby up|down|status
cmd_standby() {
  case "${1:-}" in
    up) start_standby; cmd_standby status ;;
    down) stop_standby delete ;;
    status)
      local pid=- state=down role lag=""
      [ -f "$STANDBY_DATA/postmaster.pid" ] && pid=$(head -n1 "$STANDBY_DATA/postmaster.pid")
      if pgpair_running "$STANDBY_DATA"; then
        role=$(pgpair_role $STANDBY_PORT)
        if [ "$role" = standby ] && pgpair_streaming $STANDBY_PORT; then
          state=healthy
          lag=$(pgpair_psql $STANDBY_PORT "SELECT 'replay lag ' || pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) || ' bytes'" 2>/dev/null || true)
        elif [ "$role" = primary ]; then state=promoted
        else state=unhealthy
        fi
      fi
      [ -e "$STANDBY_DATA" ] || state=absent
      printf '%-20s %-10s pid=%-8s 127.0.0.1:%s %s\n' postgres-standby "$state" "$pid" $STANDBY_PORT "$lag"
      [ "$state" = healthy ] ;;
    *) die "usage: stack.sh standby up|down|status" ;;
  esac
}

# scripts/stack.sh flink2 up|down|status
cmd_flink2() {
  case "${1:-}" in
    up)
      mkdir -p "$CACHE" "$LOGS/flink2" "$PIDS"
      [ -x "$JAVA_HOME/bin/java" ] || die "java 17 not found at $JAVA_HOME (run scripts/install-deps.sh)"
      install_flink2; install_flink2_extras
      touch "$FLINK2_ENABLED"
      start_flink2
      cmd_flink2 status ;;
    down) stop_flink2; rm -f "$FLINK2_ENABLED" ;;
    status)
      local bad=0 rss=0 f p version=""
      flink2_status_rows || bad=1
      for f in "$(flink2_pid standalonesession)" "$(flink2_pid taskexecutor)" "$(flink2_pid sql-gateway)"; do
        pid_alive "$f" || continue
        p=$(head -n1 "$f")
        rss=$((rss + $(ps -o rss= -p "$p" 2>/dev/null | awk '{s+=$1} END{print s+0}')))
      done
      version=$(curl -fsS --max-time 3 "http://127.0.0.1:$JM2_PORT/overview" 2>/dev/null \
        | sed -n 's/.*"flink-version":"\([^"]*\)".*/\1/p' || true)
      echo "flink2: Flink ${version:-$FLINK2_VERSION (not running)} at $FLINK2_HOME; resident memory $((rss / 1024)) MiB"
      echo "logs: $LOGS/flink2"
      return $bad ;;
    *) die "usage: stack.sh flink2 up|down|status" ;;
  esac
}

mkdir -p "$LOGS" "$PIDS"
case "${1:-}" in
  up) if [ "${2:-}" = postgres ]; then cmd_up_postgres; else cmd_up; fi ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) cmd_logs "${2:-all}" ;;
  env) cmd_env ;;
  start|stop) cmd_service "$1" "${2:-}" ;;
  standby) cmd_standby "${2:-}" ;;
  flink2) cmd_flink2 "${2:-}" ;;
  *) echo "usage: $0 up [postgres]|down|status|logs [service]|env|start <svc>|stop <svc>|standby up|down|status|flink2 up|down|status" >&2; exit 2 ;;
esac
