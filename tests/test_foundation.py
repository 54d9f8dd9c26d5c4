"""Foundation: the stack, the extension's life cycle, GUCs, flink.health(), gateway round trips,
and the Kafka / Elasticsearch / JDBC connectors reached through the SQL Gateway."""
import json
import socket
import threading
import time

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import connect, stack, unique

SERVICES = [
    "postgres",
    "flink-jobmanager",
    "flink-taskmanager",
    "flink-sql-gateway",
    "kafka",
    "elasticsearch",
    "mariadb",
]


def sqlstate_of(excinfo):
    return excinfo.value.diag.sqlstate


# --------------------------------------------------------------------------------------------
# stack + extension
# --------------------------------------------------------------------------------------------


def test_stack_status_reports_every_service_healthy():
    r = stack("status")
    assert r.returncode == 0, r.stdout + r.stderr
    for svc in SERVICES:
        line = next(l for l in r.stdout.splitlines() if l.split()[0] == svc)
        assert line.split()[1] == "healthy", line
        assert "127.0.0.1:" in line


def test_server_is_configured_for_pg_flink(conn):
    assert "pg_flink" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    assert conn.execute("SHOW wal_level").fetchone()[0] == "logical"
    assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"


def test_create_and_drop_extension_in_a_new_database(fresh_db):
    with connect(fresh_db) as c:
        c.execute("CREATE EXTENSION pg_flink")
        ext = c.execute(
            "SELECT extversion, extrelocatable, extnamespace::regnamespace::text FROM pg_extension WHERE extname='pg_flink'"
        ).fetchone()
        # Not relocatable; its objects live in schema flink, which the extension owns.
        assert ext[1] is False and ext[2] == "pg_catalog"
        owned = c.execute(
            "SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid "
            "WHERE e.extname = 'pg_flink' AND d.classid = 'pg_namespace'::regclass "
            "AND d.objid = 'flink'::regnamespace AND d.deptype = 'e'"
        ).fetchone()[0]
        assert owned == 1
        funcs = {r[0] for r in c.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid=p.pronamespace WHERE n.nspname='flink'"
        )}
        assert {"health", "execute_sql"} <= funcs
        # Re-running CREATE EXTENSION IF NOT EXISTS is a no-op (migrations re-run it).
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_flink")
        c.execute("DROP EXTENSION pg_flink")
        assert c.execute("SELECT count(*) FROM pg_namespace WHERE nspname='flink'").fetchone()[0] == 0
        c.execute("CREATE EXTENSION pg_flink")
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname='pg_flink'").fetchone()[0] == 1


def test_gucs_are_registered_with_their_defaults(conn):
    expected = {
        "pg_flink.rest_url": "http://127.0.0.1:8081",
        "pg_flink.gateway_url": "http://127.0.0.1:8083",
        "pg_flink.http_timeout_ms": "10000",
        "pg_flink.connect_timeout_ms": "2000",
        "pg_flink.statement_wait_ms": "60000",
        "pg_flink.poll_interval_ms": "1000",
        "pg_flink.worker_databases": None,
        "pg_flink.savepoint_retries": "3",
        "pg_flink.health_window_ms": "60000",
        "pg_flink.details_interval_ms": "10000",
        "pg_flink.details_per_tick": "8",
        "pg_flink.launcher_interval_ms": "2000",
        "pg_flink.metrics_interval_ms": "10000",
        "pg_flink.metrics_retention_min": "1440",
        "pg_flink.webhook_attempts": "5",
        "pg_flink.restore_across_versions": "off",
    }
    rows = dict(conn.execute(
        "SELECT name, boot_val FROM pg_settings WHERE name LIKE 'pg_flink.%'"
    ).fetchall())
    assert rows == expected
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SET pg_flink.http_timeout_ms = 5")  # below the minimum of 100
    # The stack's settings: no allow-list (every database with pg_flink is served), a short poll.
    assert conn.execute("SHOW pg_flink.worker_databases").fetchone()[0] == ""
    with pytest.raises(psycopg.errors.CantChangeRuntimeParam):
        conn.execute("SET pg_flink.worker_databases = 'x'")


def test_network_functions_are_not_granted_to_public(conn):
    role = unique("it_nobody")
    conn.execute(f"CREATE ROLE {role}")
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM flink.health()")
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM flink.execute_sql('SHOW CATALOGS')")
    finally:
        conn.execute(f"DROP ROLE {role}")


# --------------------------------------------------------------------------------------------
# flink.health()
# --------------------------------------------------------------------------------------------


def test_health_returns_the_real_versions(conn, env):
    jm = requests.get(env["PG_FLINK_REST_URL"] + "/overview", timeout=5).json()
    gw = requests.get(env["PG_FLINK_GATEWAY_URL"] + "/v3/info", timeout=5).json()
    rows = {r[0]: r for r in conn.execute("SELECT service, url, version, latency_ms, detail FROM flink.health()")}
    assert set(rows) == {"jobmanager", "sql_gateway", "sql_gateway_session"}
    assert rows["jobmanager"][2] == jm["flink-version"]
    assert rows["jobmanager"][1] == env["PG_FLINK_REST_URL"]
    assert f"slots_total={jm['slots-total']}" in rows["jobmanager"][4]
    assert rows["sql_gateway"][2] == gw["version"]
    assert rows["sql_gateway_session"][4] == "SHOW CURRENT CATALOG returned 'default_catalog'"
    assert all(r[3] > 0 for r in rows.values())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_health_with_a_closed_port_fails_fast_and_backend_survives(conn):
    port = free_port()
    t = time.monotonic()
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM flink.health(rest_url => %s)", (f"http://127.0.0.1:{port}",))
    assert time.monotonic() - t < 3
    assert sqlstate_of(e) == "08001"
    assert f"Flink JobManager at http://127.0.0.1:{port} is unreachable" in e.value.diag.message_primary
    assert "stack.sh status" in e.value.diag.message_hint
    assert conn.execute("SELECT 42").fetchone()[0] == 42


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8081", "", "127.0.0.1:8081", "http://u:hunter2@h:1/?x=1"])
def test_health_rejects_malformed_urls_without_echoing_secrets(conn, url):
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM flink.health(gateway_url => %s)", (url,))
    assert sqlstate_of(e) == "22023"
    assert "Flink SQL Gateway URL" in e.value.diag.message_primary
    assert "hunter2" not in str(e.value)


class SilentServer:
    """A loopback TCP server that accepts connections and never answers: a stuck service."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent():
    s = SilentServer()
    yield f"http://127.0.0.1:{s.port}"
    s.close()


def test_http_timeout_bounds_a_stuck_service(conn, silent):
    conn.execute("SET pg_flink.http_timeout_ms = 800")
    t = time.monotonic()
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM flink.health(rest_url => %s)", (silent,))
    elapsed = time.monotonic() - t
    assert 0.7 < elapsed < 2.0, elapsed
    assert sqlstate_of(e) == "08006"
    assert "did not answer within 800 ms" in e.value.diag.message_primary
    assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_statement_timeout_interrupts_a_request(conn, silent):
    conn.execute("SET pg_flink.http_timeout_ms = 60000")
    conn.execute("SET statement_timeout = 500")
    t = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT * FROM flink.health(rest_url => %s)", (silent,))
    assert time.monotonic() - t < 1.5
    conn.execute("RESET statement_timeout")
    assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_query_cancel_interrupts_a_request(conn, silent):
    conn.execute("SET pg_flink.http_timeout_ms = 60000")
    pid = conn.info.backend_pid

    def cancel_soon():
        time.sleep(0.5)
        with connect() as other:
            other.execute("SELECT pg_cancel_backend(%s)", (pid,))

    threading.Thread(target=cancel_soon).start()
    t = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT * FROM flink.health(rest_url => %s)", (silent,))
    assert time.monotonic() - t < 2.0
    assert conn.execute("SELECT 1").fetchone()[0] == 1


# --------------------------------------------------------------------------------------------
# SQL Gateway round trips
# --------------------------------------------------------------------------------------------


def test_gateway_round_trip_runs_statements_in_one_session(conn):
    rows = conn.execute(
        "SELECT statement_no, result_kind, job_id, columns, rows FROM flink.execute_sql(%s)",
        ("SET 'pipeline.name' = 'pg_flink it'; SHOW CATALOGS; CREATE TEMPORARY VIEW v AS SELECT 1 AS x; SHOW VIEWS",),
    ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert ["default_catalog"] in rows[1][4]
    # The temporary view of statement 3 is visible to statement 4: same session.
    assert ["v"] in rows[3][4]
    assert all(r[2] is None for r in rows)


def test_execute_sql_error_names_the_statement_and_flinks_cause(conn):
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM flink.execute_sql('SHOW CATALOGS; SELECT broken FROM nowhere')")
    assert sqlstate_of(e) == "42000"
    msg = e.value.diag.message_primary
    assert msg.startswith("statement 2 of the script failed")
    assert "Object 'nowhere' not found" in msg
    assert "\tat " not in (e.value.diag.message_detail or "")
    assert "ValidationException" in e.value.diag.message_detail


@pytest.mark.parametrize("script", ["", "  ;; ", "-- only a comment"])
def test_execute_sql_refuses_empty_scripts(conn, script):
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM flink.execute_sql(%s)", (script,))
    assert sqlstate_of(e) == "22023"
    assert "holds no statement" in e.value.diag.message_primary


def test_execute_sql_refuses_negative_max_rows(conn):
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM flink.execute_sql('SHOW CATALOGS', max_rows => -1)")
    assert sqlstate_of(e) == "22023"


def wait_job_finished(env, job_id, timeout=90):
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = requests.get(f"{env['PG_FLINK_REST_URL']}/jobs/{job_id}", timeout=5).json().get("state")
        if state in ("FINISHED", "FAILED", "CANCELED"):
            break
        time.sleep(0.5)
    assert state == "FINISHED", f"job {job_id} ended as {state}"


def run_insert(conn, script):
    rows = conn.execute("SELECT statement_no, job_id FROM flink.execute_sql(%s)", (script,)).fetchall()
    job_ids = [r[1] for r in rows if r[1]]
    assert len(job_ids) == 1, rows
    return job_ids[0]


def test_kafka_connector_insert_is_read_back_from_the_broker(conn, env):
    topic = unique("it_kafka")
    marker = unique("hello")
    job = run_insert(conn, f"""
        CREATE TEMPORARY TABLE k (id INT, msg STRING) WITH (
          'connector' = 'kafka', 'topic' = '{topic}',
          'properties.bootstrap.servers' = '{env['PG_FLINK_KAFKA']}', 'format' = 'json');
        INSERT INTO k VALUES (7, '{marker}');
    """)
    wait_job_finished(env, job)
    consumer = Consumer({
        "bootstrap.servers": env["PG_FLINK_KAFKA"],
        "group.id": unique("it_group"),
        "enable.auto.commit": False,
    })
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None, msg and msg.error()
        assert json.loads(msg.value()) == {"id": 7, "msg": marker}
    finally:
        consumer.close()


def test_elasticsearch_connector_insert_is_found_by_search(conn, env):
    index = unique("it_es")
    marker = unique("doc")
    job = run_insert(conn, f"""
        CREATE TEMPORARY TABLE e (id STRING, msg STRING, n BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH (
          'connector' = 'elasticsearch-7', 'hosts' = '{env['PG_FLINK_ES_URL']}', 'index' = '{index}');
        INSERT INTO e VALUES ('{marker}', 'written by flink', 42);
    """)
    wait_job_finished(env, job)
    es = env["PG_FLINK_ES_URL"]
    requests.post(f"{es}/{index}/_refresh", timeout=10).raise_for_status()
    r = requests.post(f"{es}/{index}/_search", json={"query": {"term": {"id.keyword": marker}}}, timeout=10)
    r.raise_for_status()
    hits = r.json()["hits"]["hits"]
    assert len(hits) == 1
    assert hits[0]["_id"] == marker
    assert hits[0]["_source"] == {"id": marker, "msg": "written by flink", "n": 42}
    requests.delete(f"{es}/{index}", timeout=10)


def test_jdbc_postgres_connector_insert_lands_in_postgres(conn, env):
    table = unique("it_jdbc")
    conn.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY, msg text)")
    try:
        job = run_insert(conn, f"""
            CREATE TEMPORARY TABLE j (id INT, msg STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
              'connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:{env['PGPORT']}/pg_flink_test',
              'table-name' = 'public.{table}', 'username' = 'postgres', 'password' = 'unused-trust-auth');
            INSERT INTO j VALUES (1, 'via flink jdbc'), (2, 'second');
        """)
        wait_job_finished(env, job)
        assert conn.execute(f"SELECT id, msg FROM public.{table} ORDER BY id").fetchall() == [
            (1, "via flink jdbc"), (2, "second")]
    finally:
        conn.execute(f"DROP TABLE public.{table}")


# --------------------------------------------------------------------------------------------
# a stopped service (runs last in this file: it restarts the gateway)
# --------------------------------------------------------------------------------------------


def test_health_with_the_gateway_stopped_fails_within_timeout(conn, env):
    r = stack("stop", "sql-gateway")
    assert r.returncode == 0, r.stderr
    try:
        conn.execute("SET pg_flink.connect_timeout_ms = 1000")
        t = time.monotonic()
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT * FROM flink.health()")
        assert time.monotonic() - t < 2.0
        assert sqlstate_of(e) == "08001"
        assert "Flink SQL Gateway at http://127.0.0.1:8083 is unreachable" in e.value.diag.message_primary
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        r = stack("start", "sql-gateway")
        assert r.returncode == 0, r.stderr
    assert len(conn.execute("SELECT * FROM flink.health()").fetchall()) == 3
