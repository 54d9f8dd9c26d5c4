"""Catalog: clusters and datasources registered from SQL, validated options, protected secrets,
connection tests and metadata discovery, all against the real stack."""
import json
import pathlib
import subprocess
import time
import uuid

import psycopg
import psycopg.sql
import pytest
import requests
from confluent_kafka import Producer

from conftest import ENV, connect, stack, unique

SECRET = "s3cr3t-" + uuid.uuid4().hex[:10]  # unique, so a grep of the log finds only this run


def register_all(c):
    """One datasource of each kind, pointing at the real stack."""
    c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)",
              (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
    c.execute("SELECT * FROM flink.register_datasource('pg', 'postgres', %s, %s)",
              (json.dumps({"host": "127.0.0.1", "port": int(ENV["PGPORT"]), "database": "pg_flink_test"}),
               json.dumps({"password": SECRET})))
    c.execute("SELECT * FROM flink.register_datasource('maria', 'mysql', %s, %s)",
              (json.dumps({"host": "127.0.0.1", "database": "pg_flink_test", "user": "pgflink"}),
               json.dumps({"password": "pgflink"})))
    c.execute("SELECT * FROM flink.register_datasource('es', 'elasticsearch', %s)",
              (json.dumps({"url": ENV["PG_FLINK_ES_URL"]}),))
    c.execute("SELECT * FROM flink.register_datasource('kafka', 'kafka', %s)",
              (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"], "timeout_ms": 5000}),))


@pytest.fixture(scope="module")
def catdb():
    name = f"pgflink_cat_{uuid.uuid4().hex[:8]}"
    with connect("postgres") as c:
        c.execute(f'CREATE DATABASE "{name}"')
    with connect(name) as c:
        c.execute("CREATE EXTENSION pg_flink")
        register_all(c)
    yield name
    with connect("postgres") as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def cat(catdb):
    with connect(catdb) as c:
        yield c


def snapshot(c):
    return (
        c.execute("SELECT name, kind, options, version, updated_at FROM flink.datasource ORDER BY name").fetchall(),
        c.execute("SELECT datasource, secrets FROM flink.datasource_secret ORDER BY datasource").fetchall(),
        c.execute("SELECT name, gateway_url, rest_url, options, is_default, version FROM flink.cluster ORDER BY name").fetchall(),
    )


# --------------------------------------------------------------------------------------------
# registration life cycle
# --------------------------------------------------------------------------------------------


def test_each_kind_is_registered_with_defaults_filled(cat):
    rows = {r[0]: r for r in cat.execute("SELECT name, kind, options, version FROM flink.datasources")}
    assert {k: rows[k][1] for k in ("pg", "maria", "es", "kafka")} == {
        "pg": "postgres", "maria": "mysql", "es": "elasticsearch", "kafka": "kafka"}
    assert rows["pg"][2]["user"] == "postgres" and rows["pg"][2]["schema"] == "public"
    assert rows["pg"][2]["password"] == "***"
    assert rows["kafka"][2]["security_protocol"] == "PLAINTEXT"
    assert all(r[3] == 1 for r in rows.values())


def test_reregistering_identically_changes_nothing(cat):
    before = snapshot(cat)
    r = cat.execute("SELECT * FROM flink.register_datasource('pg', 'postgres', %s, %s)",
                    (json.dumps({"host": "127.0.0.1", "database": "pg_flink_test", "port": int(ENV["PGPORT"]),
                                 "user": "postgres"}),  # explicit defaults are no change either
                     json.dumps({"password": SECRET}))).fetchone()
    assert r == ("pg", 1, False)
    r = cat.execute("SELECT * FROM flink.register_cluster('local', %s, %s)",
                    (ENV["PG_FLINK_GATEWAY_URL"] + "/", ENV["PG_FLINK_REST_URL"])).fetchone()
    assert r == ("local", 1, False)
    assert snapshot(cat) == before


def test_changed_definition_bumps_version_and_timestamp(cat):
    cat.execute("SELECT * FROM flink.register_datasource('tmp_es', 'elasticsearch', '{\"url\": \"http://127.0.0.1:9200\"}')")
    t0 = cat.execute("SELECT updated_at FROM flink.datasource WHERE name='tmp_es'").fetchone()[0]
    r = cat.execute("SELECT * FROM flink.register_datasource('tmp_es', 'elasticsearch', "
                    "'{\"url\": \"http://127.0.0.1:9200\", \"timeout_ms\": 3000}')").fetchone()
    assert r == ("tmp_es", 2, True)
    t1 = cat.execute("SELECT updated_at FROM flink.datasource WHERE name='tmp_es'").fetchone()[0]
    assert t1 > t0
    # A changed secret is a change too; secrets => NULL keeps them.
    assert cat.execute("SELECT * FROM flink.register_datasource('tmp_es', 'elasticsearch', "
                       "'{\"url\": \"http://127.0.0.1:9200\", \"timeout_ms\": 3000, \"username\": \"u\"}', "
                       "'{\"password\": \"p1\"}')").fetchone() == ("tmp_es", 3, True)
    assert cat.execute("SELECT * FROM flink.register_datasource('tmp_es', 'elasticsearch', "
                       "'{\"url\": \"http://127.0.0.1:9200\", \"timeout_ms\": 3000, \"username\": \"u\"}')").fetchone() == ("tmp_es", 3, False)
    assert cat.execute("SELECT secrets FROM flink.datasource_secret WHERE datasource='tmp_es'").fetchone()[0] == {"password": "p1"}
    assert cat.execute("SELECT * FROM flink.register_datasource('tmp_es', 'elasticsearch', "
                       "'{\"url\": \"http://127.0.0.1:9200\", \"timeout_ms\": 3000, \"username\": \"u\"}', '{}')").fetchone() == ("tmp_es", 4, True)
    assert cat.execute("SELECT count(*) FROM flink.datasource_secret WHERE datasource='tmp_es'").fetchone()[0] == 0
    assert cat.execute("SELECT flink.drop_datasource('tmp_es')").fetchone()[0] is True


def test_changing_kind_is_refused(cat):
    before = snapshot(cat)
    with pytest.raises(psycopg.errors.WrongObjectType) as e:
        cat.execute("SELECT * FROM flink.register_datasource('es', 'kafka', '{\"bootstrap_servers\": \"127.0.0.1:9092\"}')")
    assert 'datasource "es" is of kind elasticsearch, not kafka' in str(e.value)
    assert e.value.diag.message_hint
    assert snapshot(cat) == before


def test_drop_datasource(cat):
    cat.execute("SELECT * FROM flink.register_datasource('to_drop', 'postgres', '{\"host\": \"h\", \"database\": \"d\"}', '{\"password\": \"x12\"}')")
    assert cat.execute("SELECT flink.drop_datasource('to_drop')").fetchone()[0] is True
    assert cat.execute("SELECT count(*) FROM flink.datasource_secret WHERE datasource='to_drop'").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.UndefinedObject) as e:
        cat.execute("SELECT flink.drop_datasource('to_drop')")
    assert 'datasource "to_drop" does not exist' in str(e.value)
    # Migrations re-run drops: if_exists makes that a no-op.
    assert cat.execute("SELECT flink.drop_datasource('to_drop', if_exists => true)").fetchone()[0] is False


def test_registration_is_transactional(cat):
    before = snapshot(cat)
    with pytest.raises(psycopg.errors.DivisionByZero):
        with cat.transaction():
            cat.execute("SELECT * FROM flink.register_datasource('rolled_back', 'kafka', '{\"bootstrap_servers\": \"h:1\"}')")
            cat.execute("SELECT 1/0")
    assert snapshot(cat) == before


def test_first_cluster_is_default_and_default_can_move(cat):
    assert cat.execute("SELECT name FROM flink.clusters WHERE is_default").fetchall() == [("local",)]
    cat.execute("SELECT * FROM flink.register_cluster('other', 'http://127.0.0.1:18083', 'http://127.0.0.1:18081')")
    assert cat.execute("SELECT name FROM flink.clusters WHERE is_default").fetchall() == [("local",)]
    cat.execute("SELECT * FROM flink.register_cluster('other', 'http://127.0.0.1:18083', 'http://127.0.0.1:18081', '{\"default\": true}')")
    assert cat.execute("SELECT name FROM flink.clusters WHERE is_default").fetchall() == [("other",)]
    cat.execute("SELECT * FROM flink.register_cluster('local', %s, %s, '{\"default\": true}')",
                (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
    assert cat.execute("SELECT name FROM flink.clusters WHERE is_default").fetchall() == [("local",)]
    assert cat.execute("SELECT flink.drop_cluster('other')").fetchone()[0] is True


# --------------------------------------------------------------------------------------------
# connection tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ds,expect", [
    ("pg", "select 1 returned 1; PostgreSQL 15"),
    ("maria", "select 1 returned 1; server 10."),
    ("es", "Elasticsearch 7.17"),
    ("kafka", "1 broker(s)"),
])
def test_test_datasource_is_ok_against_the_real_services(cat, ds, expect):
    ok, ms, detail = cat.execute("SELECT * FROM flink.test_datasource(%s)", (ds,)).fetchone()
    assert ok is True, detail
    assert expect in detail
    assert ms > 0


def test_test_cluster_reaches_jobmanager_and_gateway(cat):
    real = requests.get(ENV["PG_FLINK_REST_URL"] + "/overview", timeout=5).json()["flink-version"]
    default = cat.execute("SELECT name FROM flink.clusters WHERE is_default").fetchone()[0]
    cluster, ok, version, _, detail = cat.execute("SELECT * FROM flink.test_cluster(%s)", (default,)).fetchone()
    assert (cluster, ok, version) == (default, True, real), detail
    assert f"Flink {real}" in detail and "SQL Gateway" in detail
    cat.execute("SELECT * FROM flink.register_cluster('nowhere', 'http://127.0.0.1:1', 'http://127.0.0.1:2')")
    cluster, ok, version, _, detail = cat.execute("SELECT * FROM flink.test_cluster('nowhere')").fetchone()
    assert (cluster, ok, version) == ("nowhere", False, None)
    assert 'cluster "nowhere"' in detail and "unreachable" in detail
    # No name: every registered cluster, the default first, an unreachable one included.
    rows = cat.execute("SELECT cluster, ok, flink_version FROM flink.test_cluster()").fetchall()
    names = [r[0] for r in cat.execute("SELECT name FROM flink.clusters ORDER BY is_default DESC, name").fetchall()]
    assert [r[0] for r in rows] == names and rows[0] == (default, True, real), rows
    assert ("nowhere", False, None) in rows
    cat.execute("SELECT flink.drop_cluster('nowhere')")


@pytest.mark.parametrize("kind,options", [
    ("postgres", {"host": "127.0.0.1", "port": 1, "database": "d", "timeout_ms": 2000}),
    ("mysql", {"host": "127.0.0.1", "port": 1, "database": "d", "timeout_ms": 2000}),
    ("elasticsearch", {"url": "http://127.0.0.1:1", "timeout_ms": 2000}),
    ("kafka", {"bootstrap_servers": "127.0.0.1:1", "timeout_ms": 2000}),
])
def test_test_datasource_fails_fast_on_a_wrong_port(cat, kind, options):
    name = unique("wrong")
    cat.execute("SELECT * FROM flink.register_datasource(%s, %s, %s, %s)",
                (name, kind, json.dumps(options), json.dumps({"password": SECRET} if kind in ("postgres", "mysql") else {})))
    t = time.monotonic()
    ok, _, detail = cat.execute("SELECT * FROM flink.test_datasource(%s)", (name,)).fetchone()
    elapsed = time.monotonic() - t
    assert ok is False
    assert elapsed < 2.0 + 1.0, elapsed
    assert f'datasource "{name}" ({kind})' in detail
    assert SECRET not in detail
    cat.execute("SELECT flink.drop_datasource(%s)", (name,))


def test_test_datasource_fails_fast_when_the_service_is_stopped(cat):
    cat.execute("SELECT * FROM flink.register_datasource('maria_fast', 'mysql', %s, %s)",
                (json.dumps({"host": "127.0.0.1", "database": "pg_flink_test", "user": "pgflink", "timeout_ms": 2000}),
                 json.dumps({"password": "pgflink"})))
    cat.execute("SELECT * FROM flink.register_datasource('kafka_fast', 'kafka', %s)",
                (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"], "timeout_ms": 2000}),))
    for svc, ds in (("mariadb", "maria_fast"), ("kafka", "kafka_fast")):
        assert stack("stop", svc).returncode == 0
        try:
            t = time.monotonic()
            ok, _, detail = cat.execute("SELECT * FROM flink.test_datasource(%s)", (ds,)).fetchone()
            assert time.monotonic() - t < 3.0
            assert ok is False, detail
        finally:
            r = stack("start", svc)
            assert r.returncode == 0, r.stderr
        ok, _, detail = cat.execute("SELECT * FROM flink.test_datasource(%s)", (ds,)).fetchone()
        assert ok, detail
        cat.execute("SELECT flink.drop_datasource(%s)", (ds,))


def test_test_datasource_is_cancellable(cat):
    # A Kafka broker that never answers (the TEST-NET-free trick: a listening socket we never
    # serve) keeps librdkafka waiting until timeout_ms; statement_timeout stops it earlier.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    port = s.getsockname()[1]
    try:
        cat.execute("SELECT * FROM flink.register_datasource('kafka_silent', 'kafka', %s)",
                    (json.dumps({"bootstrap_servers": f"127.0.0.1:{port}", "timeout_ms": 30000}),))
        cat.execute("SET statement_timeout = 700")
        t = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            cat.execute("SELECT * FROM flink.test_datasource('kafka_silent')")
        assert time.monotonic() - t < 2.0
        cat.execute("RESET statement_timeout")
        assert cat.execute("SELECT 1").fetchone()[0] == 1
    finally:
        s.close()
        cat.execute("SELECT flink.drop_datasource('kafka_silent', if_exists => true)")


# --------------------------------------------------------------------------------------------
# describe_datasource
# --------------------------------------------------------------------------------------------


def test_describe_postgres_table(cat):
    table = unique("desc_pg")
    with connect("pg_flink_test") as src:
        src.execute(f"""CREATE TABLE public.{table} (
            a int2 NOT NULL, b int4, c int8, d numeric(10,2), e text, f varchar(20), g bool,
            h timestamp, i timestamptz(3), j date, k jsonb, l bytea, m int4[], n text[])""")
    try:
        rows = cat.execute("SELECT column_name, source_type, flink_type, nullable FROM flink.describe_datasource('pg', %s)",
                           (table,)).fetchall()
        assert rows == [
            ("a", "int2", "SMALLINT", False), ("b", "int4", "INT", True), ("c", "int8", "BIGINT", True),
            ("d", "numeric(10,2)", "DECIMAL(10, 2)", True), ("e", "text", "STRING", True),
            ("f", "varchar(20)", "VARCHAR(20)", True), ("g", "bool", "BOOLEAN", True),
            ("h", "timestamp", "TIMESTAMP(6)", True), ("i", "timestamptz", "TIMESTAMP(3)", True),
            ("j", "date", "DATE", True), ("k", "jsonb", "STRING", True), ("l", "bytea", "BYTES", True),
            ("m", "int4[]", "ARRAY<INT>", True), ("n", "text[]", "ARRAY<STRING>", True),
        ]
        # schema-qualified names work too
        assert len(cat.execute("SELECT * FROM flink.describe_datasource('pg', %s)", (f"public.{table}",)).fetchall()) == 14
    finally:
        with connect("pg_flink_test") as src:
            src.execute(f"DROP TABLE public.{table}")
    with pytest.raises(psycopg.errors.UndefinedObject) as e:
        cat.execute("SELECT * FROM flink.describe_datasource('pg', 'no_such_table')")
    assert 'table "public"."no_such_table" does not exist' in str(e.value)


def test_describe_mysql_table(cat):
    import subprocess as sp
    table = unique("desc_my")
    sql = (f"CREATE TABLE pg_flink_test.{table} (id bigint NOT NULL PRIMARY KEY, flag tinyint(1), "
           f"amount decimal(12,4), name varchar(64), at datetime(3), doc json)")
    sp.run(["mariadb", "--protocol=tcp", "-h", "127.0.0.1", "-uroot", "-e", sql], check=True)
    try:
        rows = cat.execute("SELECT column_name, flink_type, nullable FROM flink.describe_datasource('maria', %s)",
                           (table,)).fetchall()
        assert rows == [("id", "BIGINT", False), ("flag", "BOOLEAN", True), ("amount", "DECIMAL(12, 4)", True),
                        ("name", "VARCHAR(64)", True), ("at", "TIMESTAMP(3)", True), ("doc", "STRING", True)]
    finally:
        sp.run(["mariadb", "--protocol=tcp", "-h", "127.0.0.1", "-uroot", "-e", f"DROP TABLE pg_flink_test.{table}"], check=True)


def test_describe_elasticsearch_index(cat):
    es = ENV["PG_FLINK_ES_URL"]
    index = unique("desc_es")
    mapping = {"mappings": {"properties": {
        "sku": {"type": "keyword"}, "title": {"type": "text"}, "qty": {"type": "long"},
        "price": {"type": "double"}, "at": {"type": "date"}, "active": {"type": "boolean"},
        "seller": {"properties": {"id": {"type": "integer"}, "name": {"type": "keyword"}}},
    }}}
    requests.put(f"{es}/{index}", json=mapping, timeout=10).raise_for_status()
    try:
        rows = dict((r[0], r[1:]) for r in cat.execute(
            "SELECT column_name, source_type, flink_type, nullable FROM flink.describe_datasource('es', %s)", (index,)))
        assert rows == {
            "active": ("boolean", "BOOLEAN", True), "at": ("date", "TIMESTAMP(3)", True),
            "price": ("double", "DOUBLE", True), "qty": ("long", "BIGINT", True),
            "seller": ("object", "ROW<`id` INT, `name` STRING>", True), "sku": ("keyword", "STRING", True),
            "title": ("text", "STRING", True),
        }
    finally:
        requests.delete(f"{es}/{index}", timeout=10)
    with pytest.raises(psycopg.errors.UndefinedObject):
        cat.execute("SELECT * FROM flink.describe_datasource('es', 'no_such_index_xyz')")


def test_describe_kafka_topic_from_a_json_sample(cat):
    topic = unique("desc_kafka")
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    for i in range(30):
        doc = {"order_id": i, "amount": i + 0.5, "city": "Lisbon" if i % 2 else None,
               "at": f"2024-05-01T10:00:{i:02d}Z", "paid": i % 3 == 0}
        if i % 10 == 0:
            doc["coupon"] = "X"
        p.produce(topic, json.dumps(doc).encode())
    p.produce(topic, b"not json at all")
    assert p.flush(10) == 0
    rows = cat.execute("SELECT column_name, flink_type, nullable, sampled FROM flink.describe_datasource('kafka', %s, 20)",
                       (topic,)).fetchall()
    cols = {r[0]: (r[1], r[2]) for r in rows}
    assert cols == {"order_id": ("BIGINT", False), "amount": ("DOUBLE", False), "city": ("STRING", True),
                    "at": ("TIMESTAMP(3)", False), "paid": ("BOOLEAN", False), "coupon": ("STRING", True)}
    assert {r[3] for r in rows} == {20}
    # The whole topic: 30 JSON objects are sampled, the non-JSON message is not counted.
    rows = cat.execute("SELECT sampled FROM flink.describe_datasource('kafka', %s, 1000)", (topic,)).fetchall()
    assert {r[0] for r in rows} == {30}
    with pytest.raises(psycopg.errors.UndefinedObject):
        cat.execute("SELECT * FROM flink.describe_datasource('kafka', 'no_such_topic_xyz')")


# --------------------------------------------------------------------------------------------
# secrets and privileges
# --------------------------------------------------------------------------------------------


@pytest.fixture
def login_role(catdb):
    created = []

    def make(member_of):
        name = unique("it_role")
        with connect("postgres") as c:
            c.execute(f"CREATE ROLE {name} LOGIN IN ROLE {member_of}")
        created.append(name)
        return name

    yield make
    with connect("postgres") as c:
        for r in created:
            c.execute(f"DROP ROLE IF EXISTS {r}")


def test_reader_sees_masked_catalog_and_cannot_reach_secrets(catdb, login_role):
    role = login_role("flink_reader")
    with connect(catdb, user=role) as r:
        rows = r.execute("SELECT name, options FROM flink.datasources WHERE name = 'pg'").fetchall()
        assert rows[0][1]["password"] == "***"
        assert r.execute("SELECT count(*) FROM flink.clusters").fetchone()[0] >= 1
        denied = [
            "SELECT * FROM flink.datasource_secret",
            "SELECT * FROM flink.datasource",
            "SELECT * FROM flink.cluster",
            "SELECT * FROM flink.register_datasource('x', 'kafka', '{\"bootstrap_servers\": \"h:1\"}')",
            "SELECT flink.drop_datasource('pg')",
            "SELECT * FROM flink.register_cluster('x', 'http://h:1', 'http://h:2')",
            "SELECT * FROM flink.test_datasource('pg')",
            "SELECT * FROM flink.describe_datasource('pg', 'x')",
            "SELECT * FROM flink_internal.describe_datasource('pg', 'postgres', '{}', '{}', 'x')",
            "SELECT * FROM flink_internal.test_datasource('pg', 'postgres', '{}', '{}')",
            "SELECT flink_internal.validate_datasource('x', 'kafka', '{}', '{}')",
            "SELECT * FROM flink.execute_sql('SHOW CATALOGS')",
            "SELECT * FROM flink.health()",
            "UPDATE flink.datasource SET version = 99",
        ]
        for q in denied:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute(q)
    dump = subprocess.run(["pg_dump", "-h", ENV["PGHOST"], "-p", ENV["PGPORT"], "-U", role, "-d", catdb],
                          capture_output=True, text=True)
    assert dump.returncode != 0
    assert "permission denied" in dump.stderr
    assert SECRET not in dump.stdout + dump.stderr


def test_admin_manages_the_catalog_and_reads_secrets(catdb, login_role):
    role = login_role("flink_admin")
    with connect(catdb, user=role) as a:
        a.execute("SELECT * FROM flink.register_datasource('by_admin', 'postgres', '{\"host\": \"h\", \"database\": \"d\"}', '{\"password\": \"adm1n\"}')")
        assert a.execute("SELECT secrets FROM flink.datasource_secret WHERE datasource='by_admin'").fetchone()[0] == {"password": "adm1n"}
        assert a.execute("SELECT flink.drop_datasource('by_admin')").fetchone()[0] is True


def test_pg_dump_and_restore_keep_the_catalog(catdb):
    target = f"pgflink_restore_{uuid.uuid4().hex[:8]}"
    dump = subprocess.run(["pg_dump", "-h", ENV["PGHOST"], "-p", ENV["PGPORT"], "-U", "postgres", "-Fc", "-d", catdb],
                          capture_output=True, check=True).stdout
    with connect("postgres") as c:
        c.execute(f'CREATE DATABASE "{target}"')
    try:
        r = subprocess.run(["pg_restore", "-h", ENV["PGHOST"], "-p", ENV["PGPORT"], "-U", "postgres", "-d", target],
                           input=dump, capture_output=True)
        assert r.returncode == 0, r.stderr.decode()
        with connect(catdb) as a, connect(target) as b:
            assert snapshot(a) == snapshot(b)
            assert b.execute("SELECT secrets FROM flink.datasource_secret WHERE datasource='pg'").fetchone()[0] == {"password": SECRET}
    finally:
        with connect("postgres") as c:
            c.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


# --------------------------------------------------------------------------------------------
# bad input corpus: every call fails with a SQLSTATE, the catalog is unchanged, the backend lives
# --------------------------------------------------------------------------------------------

INJ = "x'); drop table flink.datasources; --"
BIG = "h" * 100_000
BAD_CALLS = [
    ("SELECT * FROM flink.register_datasource(NULL, 'kafka', '{\"bootstrap_servers\": \"h:1\"}')", "22004"),
    ("SELECT * FROM flink.register_datasource('', 'kafka', '{\"bootstrap_servers\": \"h:1\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource(%s, 'kafka', '{\"bootstrap_servers\": \"h:1\"}')", "22023", (INJ,)),
    ("SELECT * FROM flink.register_datasource('ok_name', %s, '{}')", "22023", (INJ,)),
    ("SELECT * FROM flink.register_datasource('ok_name', NULL, '{}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafak', '{\"bootstrap_servers\": \"h:1\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'oracle', '{}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', NULL)", "22004"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '[]')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '\"str\"')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '42')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": 9092}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"nohost\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', %s)", "22023", (json.dumps({"bootstrap_servers": INJ}),)),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_server\": \"h:1\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"h:1\", \"security_protocol\": \"TLS\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"h:1\", \"security_protocol\": \"SASL_SSL\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"h:1\"}', '{\"sasl_password\": \"p\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"h:1\", \"properties\": {\"sasl.jaas.config\": \"x\"}}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"h:1\", \"timeout_ms\": -5}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'kafka', '{\"bootstrap_servers\": \"h:1\", \"timeout_ms\": \"soon\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h:5432\", \"database\": \"d\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', %s)", "22023", (json.dumps({"host": INJ, "database": "d"}),)),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\", \"database\": \"d\", \"port\": 0}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\", \"database\": \"d\", \"port\": 65536}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\", \"database\": \"d\", \"password\": \"pw\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\", \"database\": \"d\"}', '{\"password\": 5}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\", \"database\": \"d\"}', '[\"pw\"]')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\", \"database\": \"d\"}', '{\"pasword\": \"pw\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', '{\"host\": \"h\", \"database\": \"d\", \"sslmode\": \"always\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', %s)", "22023", (json.dumps({"host": BIG, "database": "d"}),)),
    ("SELECT * FROM flink.register_datasource('ok_name', 'postgres', %s)", "22023", (json.dumps({"host": "h", "database": BIG}),)),
    ("SELECT * FROM flink.register_datasource(%s, 'postgres', '{\"host\": \"h\", \"database\": \"d\"}')", "22023", (BIG,)),
    ("SELECT * FROM flink.register_datasource('ok_name', 'elasticsearch', '{\"url\": \"ftp://h\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'elasticsearch', '{\"url\": \"http://u:pw@h:9200\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'elasticsearch', %s)", "22023", (json.dumps({"url": INJ}),)),
    ("SELECT * FROM flink.register_datasource('ok_name', 'elasticsearch', '{\"url\": [\"http://h:9200\"]}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'mysql', '{\"database\": \"d\"}')", "22023"),
    ("SELECT * FROM flink.register_datasource('ok_name', 'mysql', '{\"host\": \"h\", \"database\": \"d\", \"prot\": 3306}')", "22023"),
    ("SELECT * FROM flink.register_datasource('es', 'kafka', '{\"bootstrap_servers\": \"h:1\"}')", "42809"),
    ("SELECT flink.drop_datasource(%s)", "42704", (INJ,)),
    ("SELECT flink.drop_datasource(NULL)", "42704"),
    ("SELECT * FROM flink.test_datasource(%s)", "42704", (INJ,)),
    ("SELECT * FROM flink.describe_datasource(%s, 't')", "42704", (INJ,)),
    ("SELECT * FROM flink.describe_datasource('pg', %s)", "42704", (INJ,)),
    ("SELECT * FROM flink.describe_datasource('es', %s)", "22023", (INJ,)),
    ("SELECT * FROM flink.describe_datasource('pg', NULL)", "22004"),
    ("SELECT * FROM flink.describe_datasource('kafka', 't', 0)", "22023"),
    ("SELECT * FROM flink.describe_datasource('pg', '')", "22023"),
    ("SELECT * FROM flink.register_cluster(%s, 'http://h:1', 'http://h:2')", "22023", (INJ,)),
    ("SELECT * FROM flink.register_cluster('c2', %s, 'http://h:2')", "22023", (INJ,)),
    ("SELECT * FROM flink.register_cluster('c2', 'http://h:1', NULL)", "22023"),
    ("SELECT * FROM flink.register_cluster('c2', 'http://h:1', 'http://h:2', '{\"defualt\": true}')", "22023"),
    ("SELECT * FROM flink.register_cluster('c2', 'http://h:1', 'http://h:2', '{\"default\": \"yes\"}')", "22023"),
    ("SELECT * FROM flink.register_cluster('c2', 'http://h:1', 'http://h:2', '[1]')", "22023"),
    ("SELECT flink.drop_cluster(%s)", "42704", (INJ,)),
    ("SELECT * FROM flink.test_cluster(%s)", "42704", (INJ,)),
]


def test_bad_input_corpus_is_rejected_cleanly(cat):
    assert len(BAD_CALLS) >= 40
    before = snapshot(cat)
    failures = []
    for entry in BAD_CALLS:
        sql, code = entry[0], entry[1]
        params = entry[2] if len(entry) > 2 else None
        try:
            cat.execute(sql, params)
            failures.append(f"no error: {sql} {params!r:.60}")
        except psycopg.Error as e:
            if e.diag.sqlstate != code:
                failures.append(f"{sql} {params!r:.60}: got {e.diag.sqlstate} {e.diag.message_primary!r:.200}")
            elif not e.diag.message_hint:
                failures.append(f"{sql}: no hint")
        assert cat.execute("SELECT 1").fetchone()[0] == 1  # backend alive
    assert not failures, "\n".join(failures)
    assert snapshot(cat) == before
    assert cat.execute("SELECT count(*) FROM flink.datasources").fetchone()[0] >= 4


def test_secrets_never_reach_messages_or_the_server_log(cat):
    """Exercise failures with secrets set, then grep everything the user and the log saw."""
    seen = []
    cat.add_notice_handler(lambda d: seen.append(str(d.message_primary) + str(d.message_detail)))
    calls = [
        ("SELECT * FROM flink.register_datasource('leak1', 'postgres', %s, %s)",
         (json.dumps({"host": "h", "database": "d", "password": SECRET}), None)),
        ("SELECT * FROM flink.register_datasource('leak1', 'postgres', %s, %s)",
         (json.dumps({"host": "h", "database": "d"}), json.dumps({"pasword": SECRET}))),
        ("SELECT * FROM flink.register_datasource('leak1', 'postgres', %s, %s)",
         (json.dumps({"host": "h:1", "database": "d"}), json.dumps({"password": SECRET}))),
        ("SELECT * FROM flink.register_datasource('leak1', 'elasticsearch', %s)",
         (json.dumps({"url": f"http://admin:{SECRET}@127.0.0.1:9200"}),)),
        ("SELECT * FROM flink.describe_datasource('pg', 'no_such_table_for_leak')", None),
        ("SELECT * FROM flink.health(rest_url => %s)", (f"http://admin:{SECRET}@127.0.0.1:1",)),
    ]
    for sql, params in calls:
        with pytest.raises(psycopg.Error) as e:
            cat.execute(sql, params)
        seen.append(str(e.value) + str(e.value.diag.message_hint) + str(e.value.diag.message_detail))
    # The secret as a literal in the statement text (psql users do this): the failing
    # statement is not echoed to the log (log_min_error_statement = panic inside the function).
    literal = psycopg.sql.SQL("SELECT * FROM flink.register_datasource('leak1', 'postgres', '{{\"host\": \"h\"}}', {})").format(
        psycopg.sql.Literal(json.dumps({"password": SECRET})))
    with pytest.raises(psycopg.Error) as e:
        cat.execute(literal)
    seen.append(str(e.value))
    # A wrong password is a failure with the secret set.
    cat.execute("SELECT * FROM flink.register_datasource('leak2', 'mysql', %s, %s)",
                (json.dumps({"host": "127.0.0.1", "database": "pg_flink_test", "user": "pgflink"}),
                 json.dumps({"password": SECRET})))
    ok, _, detail = cat.execute("SELECT * FROM flink.test_datasource('leak2')").fetchone()
    assert ok is False and "Access denied" in detail
    seen.append(detail)
    for r in cat.execute("SELECT * FROM flink.describe_datasource('pg', 'pg_catalog.pg_am')"):
        seen.append(str(r))
    cat.execute("SELECT flink.drop_datasource('leak2')")
    assert all(SECRET not in s for s in seen), [s for s in seen if SECRET in s]
    log = pathlib.Path(ENV["PG_FLINK_LOGS"]) / "postgres.log"
    text = log.read_text(errors="replace")
    assert SECRET not in text, "secret found in the server log"
    # The log did record the failures (so the grep above looked at the right file).
    assert "unknown secret" in text or "is a secret" in text
