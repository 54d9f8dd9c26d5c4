"""Fixtures for integration tests against the real local stack (scripts/stack.sh up).

Every test talks to the real PostgreSQL (with pg_flink installed), Flink
JobManager + SQL Gateway, Kafka, Elasticsearch and MariaDB. A missing service makes tests fail,
never skip.
"""
import os
import pathlib
import subprocess
import uuid

import psycopg
import pytest
import requests
from confluent_kafka.admin import AdminClient

REPO = pathlib.Path(__file__).resolve().parent.parent
STACK_SH = REPO / "scripts" / "stack.sh"


def _stack_env():
    out = subprocess.run([str(STACK_SH), "env"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


ENV = _stack_env()
# PG_FLINK_TEST_FLINK=2 (scripts/test-flink2.sh): the tests' cluster is the Flink 2.x one — what
# they register as cluster `local`, and where they look for jobs.
# FLINK_SERVICE / GATEWAY_SERVICE name its processes for `stack.sh stop|start` (fault tests).
FLINK2 = os.environ.get("PG_FLINK_TEST_FLINK") == "2"
if FLINK2:
    ENV["PG_FLINK_GATEWAY_URL"] = ENV["PG_FLINK2_GATEWAY_URL"]
    ENV["PG_FLINK_REST_URL"] = ENV["PG_FLINK2_REST_URL"]
FLINK_SERVICE = "flink2" if FLINK2 else "flink"
GATEWAY_SERVICE = "flink2-sql-gateway" if FLINK2 else "sql-gateway"
PG_DSN = f"host={ENV['PGHOST']} port={ENV['PGPORT']} user={ENV['PGUSER']}"


def connect(dbname="pg_flink_test", **kw):
    kw.setdefault("autocommit", True)
    return psycopg.connect(f"{PG_DSN} dbname={dbname}", **kw)


def _es_indices():
    r = requests.get(ENV["PG_FLINK_ES_URL"] + "/_cat/indices", params={"h": "index", "format": "json"}, timeout=10)
    r.raise_for_status()
    return {i["index"] for i in r.json()}


@pytest.fixture(scope="session", autouse=True)
def _drop_the_sessions_topics_and_indices():
    """Kafka topics and Elasticsearch indices created while the tests ran are deleted at the end:
    left behind, every later run pays for them (a warm run on a broker holding ~2,600 earlier
    topics took 27 min for what took 21 on a fresh one). What existed before is left alone."""
    admin = AdminClient({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    try:
        topics = set(admin.list_topics(timeout=10).topics)
    except Exception:  # noqa: BLE001 - Kafka down: the tests that need it fail on their own
        topics = None
    try:
        indices = _es_indices()
    except Exception:  # noqa: BLE001 - Elasticsearch down: likewise
        indices = None
    yield
    if topics is not None:
        made = [t for t in admin.list_topics(timeout=10).topics if t not in topics and not t.startswith("__")]
        for i in range(0, len(made), 200):
            for f in admin.delete_topics(made[i:i + 200], operation_timeout=60).values():
                try:
                    f.result()
                except Exception:  # noqa: BLE001 - already gone, or the broker is slow: next run's
                    pass
    if indices is not None:
        for index in sorted(_es_indices() - indices):
            if not index.startswith("."):
                requests.delete(f"{ENV['PG_FLINK_ES_URL']}/{index}", timeout=30)


@pytest.fixture(scope="session")
def env():
    return ENV


@pytest.fixture(scope="session")
def test_db():
    """The shared test database, with the extension created."""
    with connect("postgres") as c:
        pass  # fails loudly if Postgres is down
    with connect() as c:
        # The extension as built now (a previous run may have left an older one).
        c.execute("DROP EXTENSION IF EXISTS pg_flink CASCADE")
        c.execute("CREATE EXTENSION pg_flink")
    return "pg_flink_test"


@pytest.fixture
def conn(test_db):
    with connect(test_db) as c:
        yield c


@pytest.fixture
def fresh_db():
    """A throwaway database, dropped afterwards."""
    name = f"pgflink_it_{uuid.uuid4().hex[:10]}"
    with connect("postgres") as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with connect("postgres") as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stack(*args, timeout=300):
    return subprocess.run([str(STACK_SH), *args], capture_output=True, text=True, timeout=timeout)


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def explain(c, sql, params=None, analyze=True):
    """EXPLAIN (ANALYZE, VERBOSE) output of `sql` as one string (VERBOSE only without analyze)."""
    opts = "ANALYZE, VERBOSE" if analyze else "VERBOSE"
    return "\n".join(r[0] for r in c.execute(f"EXPLAIN ({opts}) {sql}", params).fetchall())
