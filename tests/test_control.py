"""Control plane: desired state written in transactions, reconciled by the background worker
against the real Flink cluster."""
import json
import os
import select
import signal
import subprocess
import threading
import time

import psycopg
import pytest
import requests
from confluent_kafka import Producer

from conftest import ENV, FLINK_SERVICE, GATEWAY_SERVICE, connect, unique

DB = "pg_flink_test"  # served by its worker (the launcher starts one for every database)


def identity_of(c, name):
    """The prefix of the pipeline's Flink job names: instance, database (oid and name), pipeline."""
    return c.execute(
        "SELECT format('pg_flink/%%s/%%s/%%s/%%s', s.system_identifier, d.oid, d.datname, %s::text) "
        "FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()", (name,)).fetchone()[0]


def live_jobs(identity):
    jobs = requests.get(ENV["PG_FLINK_REST_URL"] + "/jobs/overview", timeout=5).json()["jobs"]
    return [j for j in jobs if j["name"].startswith(identity + "/v") and j["state"] not in ("FAILED", "CANCELED", "FINISHED")]


def make_topic(topic):
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    p.produce(topic, json.dumps({"n": 1}).encode())
    assert p.flush(10) == 0


@pytest.fixture(scope="module")
def ctl(test_db):
    with connect(DB) as c:
        c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)", (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
        c.execute("SELECT * FROM flink.register_datasource('ctl_kafka', 'kafka', %s)", (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"]}),))
    yield DB


@pytest.fixture
def db(ctl):
    with connect(ctl) as c:
        yield c


def new_pipeline(c, flink_options=None):
    name = unique("ctl")
    topic_in = f"{name}_in"
    make_topic(topic_in)
    params = {"source": {"datasource": "ctl_kafka", "object": topic_in, "columns": [{"name": "n", "type": "BIGINT"}]},
              "conditions": [{"column": "n", "op": ">", "value": 0}],
              "sink": {"datasource": "ctl_kafka", "object": f"{name}_out"}}
    c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
              (name, json.dumps(params), json.dumps({"flink": flink_options or {}})))
    return name, identity_of(c, name)


def cleanup(c, name):
    c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
    try:
        c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (name,))
    except psycopg.Error:
        pass


def test_rolled_back_start_submits_nothing(db):
    name, identity = new_pipeline(db)
    with pytest.raises(psycopg.errors.DivisionByZero):
        with db.transaction():
            db.execute("SELECT flink.start(%s)", (name,))
            db.execute("SELECT 1/0")
    time.sleep(3)  # six poll intervals
    assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM flink.pipeline_state WHERE pipeline = %s", (name,)).fetchone()[0] == 0
    assert live_jobs(identity) == []


def test_start_reaches_running_records_transitions_and_notifies(db, ctl):
    name, identity = new_pipeline(db)
    events = []
    with connect(ctl) as listener:
        listener.execute("LISTEN flink_job_state")
        t = time.monotonic()
        db.execute("SELECT flink.start(%s)", (name,))
        assert db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,)).fetchone()[0] == "RUNNING"
        elapsed = time.monotonic() - t
        for n in listener.notifies(timeout=1):
            events.append(json.loads(n.payload))
    try:
        row = db.execute("SELECT flink_job_id, state, job_name, pipeline_version FROM flink.jobs WHERE pipeline = %s", (name,)).fetchall()
        assert len(row) == 1
        jid, state, job_name, version = row[0]
        assert state == "RUNNING" and job_name == f"{identity}/v1" and version == 1
        live = live_jobs(identity)
        assert [j["jid"] for j in live] == [jid]
        transitions = [r[0] for r in db.execute("SELECT to_state FROM flink.job_events WHERE pipeline = %s ORDER BY id", (name,))]
        assert transitions[0] == "SUBMITTING" and transitions[-1] == "RUNNING"
        mine = [e for e in events if e["pipeline"] == name]
        assert [e["to"] for e in mine][:2] == ["SUBMITTING", "CREATED"] and mine[-1]["to"] == "RUNNING"
        assert mine[1]["flink_job_id"] == jid
        status = db.execute("SELECT desired, actual, healthy FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()
        assert status == ("running", "RUNNING", True)
        assert elapsed < 60
    finally:
        cleanup(db, name)


def test_concurrent_starts_yield_one_job(db, ctl):
    name, identity = new_pipeline(db)
    barrier = threading.Barrier(2)
    errors = []

    def start():
        try:
            with connect(ctl) as c:
                with c.transaction():
                    barrier.wait()
                    c.execute("SELECT flink.start(%s)", (name,))
                    time.sleep(0.3)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    try:
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
        time.sleep(2)  # more ticks: still exactly one job
        assert len(live_jobs(identity)) == 1
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s AND flink_job_id IS NOT NULL", (name,)).fetchone()[0] == 1
    finally:
        cleanup(db, name)


def test_stop_with_savepoint_then_resume_from_latest(db):
    name, identity = new_pipeline(db)
    db.execute("SELECT flink.start(%s)", (name,))
    db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    first = db.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0]
    db.execute("SELECT flink.stop(%s)", (name,))
    assert db.execute("SELECT flink.wait(%s, 'stopped', '90 seconds')", (name,)).fetchone()[0] == "STOPPED"
    sp = db.execute("SELECT path, trigger, pipeline_version FROM flink.savepoints WHERE pipeline = %s", (name,)).fetchall()
    assert len(sp) == 1 and sp[0][1] == "stop" and sp[0][2] == 1
    path = sp[0][0].replace("file:", "")
    assert os.path.isdir(path), path
    assert live_jobs(identity) == []
    db.execute("SELECT flink.start(%s, from_savepoint => 'latest')", (name,))
    try:
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
        row = db.execute("SELECT flink_job_id, savepoint_used FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()
        assert row[0] != first
        assert row[1] == sp[0][0]
        assert len(live_jobs(identity)) == 1
    finally:
        cleanup(db, name)


def test_start_from_latest_without_savepoint_is_refused(db):
    name, _ = new_pipeline(db)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        db.execute("SELECT flink.start(%s, from_savepoint => 'latest')", (name,))
    assert "has no savepoint" in str(e.value)


def test_a_job_that_fails_at_runtime_is_failed_with_flinks_exception(db):
    name = unique("ctl_fail")
    params = {"source": {"datasource": "ctl_kafka", "object": f"{name}_never_created", "columns": [{"name": "n", "type": "BIGINT"}]},
              "conditions": [{"column": "n", "op": ">", "value": 0}],
              "sink": {"datasource": "ctl_kafka", "object": f"{name}_out"}}
    db.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
               (name, json.dumps(params), json.dumps({"flink": {"restart-strategy.type": "none"}})))
    db.execute("SELECT flink.start(%s)", (name,))
    with pytest.raises(psycopg.errors.ExternalRoutineException) as e:
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    assert "is FAILED" in str(e.value)
    err = db.execute("SELECT state, last_error FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()
    assert err[0] == "FAILED"
    assert "topic" in err[1].lower(), err[1]
    # Not resubmitted in a loop.
    time.sleep(2)
    assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 1


def test_a_live_job_with_the_pipelines_identity_is_adopted_not_duplicated(db):
    name, identity = new_pipeline(db)
    db.execute("SELECT flink.start(%s)", (name,))
    try:
        db.execute("SELECT flink.wait(%s, 'running', '60 seconds')", (name,))
        jid = db.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0]
        # As if a crash lost the job row after Flink accepted the job: the pipeline wants to run,
        # its job runs, and pg_flink has no row of it.
        db.execute("DELETE FROM flink.job WHERE pipeline = %s", (name,))
        deadline = time.time() + 30
        while not db.execute("SELECT 1 FROM flink.jobs WHERE pipeline = %s AND state = 'RUNNING'", (name,)).fetchone():
            assert time.time() < deadline, "the live job was not adopted within 30 s"
            time.sleep(0.2)
        assert db.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s", (name,)).fetchall() == [(jid,)]
        detail = db.execute("SELECT detail FROM flink.job_events WHERE pipeline = %s ORDER BY id LIMIT 1", (name,)).fetchone()[0]
        assert "adopted" in detail
        assert [j["jid"] for j in live_jobs(identity)] == [jid]
    finally:
        cleanup(db, name)


def test_a_job_of_a_pipeline_never_started_is_stopped(db):
    """The catalog is the truth: a pipeline that exists but was never started is desired
    stopped, so a job carrying its identity (e.g. submitted by a primary whose flink.start was
    lost in a failover) is stopped, not adopted."""
    name, identity = new_pipeline(db)
    script = db.execute("SELECT flink.render(%s, reveal_secrets => true)", (name,)).fetchone()[0]
    rows = db.execute("SELECT job_id FROM flink.execute_sql(%s, gateway_url => %s)",
                      (script, ENV["PG_FLINK_GATEWAY_URL"])).fetchall()
    jid = [r[0] for r in rows if r[0]][0]
    state = lambda: requests.get(f"{ENV['PG_FLINK_REST_URL']}/jobs/{jid}", timeout=5).json().get("state")  # noqa: E731
    deadline = time.time() + 60
    while state() not in ("CANCELED", "FINISHED"):
        assert time.time() < deadline, f"job {jid} of never-started {name} is still {state()}"
        time.sleep(0.5)
    assert live_jobs(identity) == []
    status = lambda: db.execute("SELECT desired, actual FROM flink.pipeline_status WHERE pipeline = %s",  # noqa: E731
                                (name,)).fetchone()
    while status()[1] not in (None, "STOPPED", "CANCELED"):  # the stop is recorded the next tick
        assert time.time() < deadline, f"{name}: {status()}"
        time.sleep(0.2)
    assert status()[0] == "stopped", status()


def worker_pid(c):
    r = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker' AND datname = %s", (DB,)).fetchone()
    return r and r[0]


def test_worker_sigterm_is_restarted_and_reconciles_without_duplicates(db):
    name, identity = new_pipeline(db)
    db.execute("SELECT flink.start(%s)", (name,))
    db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    try:
        old = worker_pid(db)
        assert old
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        deadline = time.time() + 30
        new = None
        while time.time() < deadline:
            new = worker_pid(db)
            if new and new != old:
                break
            time.sleep(0.5)
        assert new and new != old, "the postmaster restarted the worker"
        time.sleep(2)
        assert len(live_jobs(identity)) == 1
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 1
        # The restarted worker acts on new requests.
        db.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
        assert db.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (name,)).fetchone()[0] == "STOPPED"
    finally:
        cleanup(db, name)


def test_control_functions_refuse_a_database_outside_the_allow_list(fresh_db):
    # pg_flink.worker_databases is an optional allow-list (empty: every database is served).
    with connect("postgres") as admin:
        admin.execute("ALTER SYSTEM SET pg_flink.worker_databases = 'pg_flink_test,pg_flink_demo'")
        admin.execute("SELECT pg_reload_conf()")
    try:
        time.sleep(0.5)
        with connect(fresh_db) as c:
            c.execute("CREATE EXTENSION pg_flink")
            c.execute("SELECT * FROM flink.register_datasource('k', 'kafka', '{\"bootstrap_servers\": \"127.0.0.1:9092\"}')")
            c.execute("SELECT * FROM flink.create_pipeline('p', 'filter_alert', %s)", (json.dumps(
                {"source": {"datasource": "k", "object": "t", "columns": [{"name": "n", "type": "BIGINT"}]},
                 "conditions": [{"column": "n", "op": ">", "value": 0}], "sink": {"datasource": "k", "object": "o"}}),))
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
                c.execute("SELECT flink.start('p')")
            assert "no pg_flink worker serves database" in str(e.value)
            assert "pg_flink.worker_databases" in e.value.diag.message_hint
    finally:
        with connect("postgres") as admin:
            admin.execute("ALTER SYSTEM RESET pg_flink.worker_databases")
            admin.execute("SELECT pg_reload_conf()")


def test_gateway_down_during_submit_is_recorded_retried_and_recovers(db):
    from conftest import stack
    name, identity = new_pipeline(db)
    assert stack("stop", GATEWAY_SERVICE).returncode == 0
    try:
        db.execute("SELECT flink.start(%s)", (name,))
        deadline = time.time() + 30
        row = None
        while time.time() < deadline:
            row = db.execute("SELECT state, last_error, attempts FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()
            if row and row[0] == "SUBMIT_FAILED":
                break
            time.sleep(0.3)
        assert row and row[0] == "SUBMIT_FAILED", row
        assert "Flink SQL Gateway" in row[1] and "unreachable" in row[1]
        time.sleep(5)  # backoff: 2 s, 4 s, ... attempts keep being recorded
        attempts = db.execute("SELECT max(attempts) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0]
        assert attempts >= 2
        assert live_jobs(identity) == []
    finally:
        r = stack("start", GATEWAY_SERVICE)
        assert r.returncode == 0, r.stderr
    try:
        assert db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,)).fetchone()[0] == "RUNNING"
        assert len(live_jobs(identity)) == 1
    finally:
        cleanup(db, name)


def test_postmaster_kill_9_with_two_running_pipelines_leaves_one_job_each(db):
    from conftest import stack
    names = [new_pipeline(db) for _ in range(2)]
    for name, _ in names:
        db.execute("SELECT flink.start(%s)", (name,))
    for name, _ in names:
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    jids = {name: db.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] for name, _ in names}
    db.close()
    pid = int(open(f"{ENV['PG_FLINK_STACK']}/run/pgdata/postmaster.pid").readline())
    os.kill(pid, signal.SIGKILL)
    time.sleep(2)
    # Crash recovery: start the cluster again (the stack script restarts what is down).
    r = subprocess.run([str(__import__("conftest").STACK_SH), "up"], env={**os.environ, "PG_FLINK_SKIP_BUILD": "1"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    with connect(DB) as c:
        time.sleep(3)  # several worker ticks after restart
        try:
            for name, identity in names:
                assert [j["jid"] for j in live_jobs(identity)] == [jids[name]], "no duplicate after the crash"
                rows = c.execute("SELECT flink_job_id, state FROM flink.jobs WHERE pipeline = %s", (name,)).fetchall()
                assert rows == [(jids[name], "RUNNING")]
        finally:
            for name, _ in names:
                cleanup(c, name)


def test_jobmanager_restart_is_reconciled_without_ghost_running_rows(db):
    from conftest import stack
    name, identity = new_pipeline(db)
    db.execute("SELECT flink.start(%s)", (name,))
    db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    first = db.execute("SELECT id, flink_job_id FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()
    assert stack("stop", FLINK_SERVICE).returncode == 0
    try:
        time.sleep(2)
        err = db.execute("SELECT last_error FROM flink.jobs WHERE id = %s", (first[0],)).fetchone()[0]
        assert err and "cannot track jobs" in err and "Flink JobManager" in err
    finally:
        r = stack("start", FLINK_SERVICE, timeout=600)
        assert r.returncode == 0, r.stderr
    try:
        # The standalone JobManager has no HA: the job is gone. pg_flink records LOST and
        # submits a new job; no row claims RUNNING for the vanished job.
        assert db.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (name,)).fetchone()[0] == "RUNNING"
        rows = db.execute("SELECT id, flink_job_id, state FROM flink.jobs WHERE pipeline = %s ORDER BY id", (name,)).fetchall()
        assert rows[0][0] == first[0] and rows[0][2] == "LOST"
        assert rows[-1][2] == "RUNNING" and rows[-1][1] != first[1]
        assert [r for r in rows if r[2] == "RUNNING"] == [rows[-1]]
        assert [j["jid"] for j in live_jobs(identity)] == [rows[-1][1]]
    finally:
        cleanup(db, name)


MIGRATIONS = __import__("pathlib").Path(__file__).parent / "migrations"


def sqitch(*args, pipeline, registry):
    return subprocess.run(
        ["sqitch", *args, "--target", f"db:pg://{ENV['PGUSER']}@{ENV['PGHOST']}:{ENV['PGPORT']}/{DB}",
         "--registry", registry, "--set", f"pipeline={pipeline}",
         "--set", f"gateway_url={ENV['PG_FLINK_GATEWAY_URL']}", "--set", f"rest_url={ENV['PG_FLINK_REST_URL']}"],
        cwd=MIGRATIONS, capture_output=True, text=True, timeout=120)


def test_migrations_with_sqitch_apply_reapply_and_roll_back(db):
    name = unique("mig")
    registry = unique("sqitch")
    make_topic(f"{name}_in")
    identity = identity_of(db, name)
    try:
        r = sqitch("deploy", "--to", "orders_pipeline", pipeline=name, registry=registry)
        assert r.returncode == 0, r.stdout + r.stderr
        assert db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,)).fetchone()[0] == "RUNNING"
        # Re-applying: sqitch has nothing to do, and re-running the script itself is a no-op too.
        r = sqitch("deploy", "--to", "orders_pipeline", pipeline=name, registry=registry)
        assert r.returncode == 0 and "Nothing to deploy" in r.stdout, r.stdout + r.stderr
        before = db.execute("SELECT p.version, d.version FROM flink.pipelines p, flink.datasources d WHERE p.name = %s AND d.name = 'mig_kafka'", (name,)).fetchone()
        r = subprocess.run(["psql", "-h", ENV["PGHOST"], "-U", ENV["PGUSER"], "-d", DB, "-X", "-q", "-v", "ON_ERROR_STOP=1",
                            "-v", f"pipeline={name}", "-v", f"gateway_url={ENV['PG_FLINK_GATEWAY_URL']}",
                            "-v", f"rest_url={ENV['PG_FLINK_REST_URL']}", "-f", str(MIGRATIONS / "deploy" / "orders_pipeline.sql")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        after = db.execute("SELECT p.version, d.version FROM flink.pipelines p, flink.datasources d WHERE p.name = %s AND d.name = 'mig_kafka'", (name,)).fetchone()
        assert before == after == (1, 1)
        time.sleep(2)
        assert len(live_jobs(identity)) == 1
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 1
        # A failing migration rolls back: no pipeline, no desired state, no job in Flink.
        r = sqitch("deploy", pipeline=name, registry=registry)
        assert r.returncode != 0
        assert "division by zero" in r.stdout + r.stderr
        time.sleep(3)
        assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = %s", (name + "_broken",)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name + "_broken",)).fetchone()[0] == 0
        assert live_jobs(identity_of(db, f"{name}_broken")) == []
    finally:
        cleanup(db, name)
        db.execute(f'DROP SCHEMA IF EXISTS "{registry}" CASCADE')


def test_changed_definition_needs_restart_and_restart_deploys_it(db):
    name, identity = new_pipeline(db)
    db.execute("SELECT flink.start(%s)", (name,))
    db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    try:
        params = db.execute("SELECT params FROM flink.pipelines WHERE name = %s", (name,)).fetchone()[0]
        params["conditions"][0]["value"] = 100
        assert db.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)", (name, json.dumps(params))).fetchone() == (name, 2, True)
        assert db.execute("SELECT needs_restart FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()[0] is True
        old = db.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()[0]
        db.execute("SELECT flink.restart(%s)", (name,))
        deadline = time.time() + 120
        row = None
        while time.time() < deadline:
            row = db.execute("SELECT pipeline_version, state, savepoint_used, flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()
            if row[0] == 2 and row[1] == "RUNNING":
                break
            time.sleep(0.3)
        assert row[0] == 2 and row[1] == "RUNNING", row
        assert row[2] and row[3] != old, "resubmitted from the stop savepoint"
        assert [j["name"] for j in live_jobs(identity)] == [f"{identity}/v2"]
        assert db.execute("SELECT needs_restart, running_version FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone() == (False, 2)
    finally:
        cleanup(db, name)


def test_resume_from_savepoint_continues_the_jobs_state(db):
    from confluent_kafka import Consumer, TopicPartition
    name = unique("ctl_state")
    src, out = f"{name}_events", f"{name}_counts"
    prod = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})

    def produce(n):
        for i in range(n):
            prod.produce(src, json.dumps({"k": "all", "n": i}).encode())
        assert prod.flush(10) == 0

    def last_count(timeout=60):
        c = Consumer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "group.id": unique("g"), "enable.auto.commit": False})
        c.assign([TopicPartition(out, 0, 0)])
        last, deadline = None, time.time() + timeout
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None and m.value():
                last = json.loads(m.value())["total"]
            elif m is None and last is not None:
                break
        c.close()
        return last

    produce(1)  # creates the topic
    # A running count. The source starts at the *latest* offset, so only restored state (offsets
    # and the count) can make the total continue across a stop/start.
    params = {"sql": f"INSERT INTO {{{{ctl_kafka.{out}}}}} SELECT k, COUNT(*) AS total FROM {{{{ctl_kafka.{src}}}}} GROUP BY k",
              "tables": {f"ctl_kafka.{src}": {"columns": [{"name": "k", "type": "STRING"}, {"name": "n", "type": "BIGINT"}],
                                              "connector_options": {"scan.startup.mode": "latest-offset"}},
                         f"ctl_kafka.{out}": {"columns": [{"name": "k", "type": "STRING"}, {"name": "total", "type": "BIGINT"}],
                                             "primary_key": ["k"]}}}
    db.execute("SELECT * FROM flink.create_pipeline(%s, 'sql', %s, %s)", (name, json.dumps(params), json.dumps({"checkpoint_interval": "2 seconds"})))
    db.execute("SELECT flink.start(%s)", (name,))
    db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    try:
        time.sleep(5)  # the source has picked its starting offsets
        produce(5)
        deadline = time.time() + 60
        while last_count(10) != 5 and time.time() < deadline:
            time.sleep(1)
        assert last_count(10) == 5
        db.execute("SELECT flink.stop(%s)", (name,))
        db.execute("SELECT flink.wait(%s, 'stopped', '90 seconds')", (name,))
        # Checkpoints every 2 s: the stopped job's last completed checkpoint was recorded.
        ck = db.execute("SELECT last_checkpoint_at, started_at FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()
        assert ck[0] is not None and ck[0] > ck[1]
        produce(3)  # arrive while the pipeline is stopped
        db.execute("SELECT flink.start(%s, from_savepoint => 'latest')", (name,))
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
        deadline = time.time() + 60
        total = None
        while time.time() < deadline:
            total = last_count(10)
            if total == 8:
                break
            time.sleep(1)
        assert total == 8, f"the count continued from the savepoint (5 + 3), got {total}"
    finally:
        cleanup(db, name)


def test_a_restarting_job_shows_why(db):
    name = unique("ctl_restart")
    params = {"source": {"datasource": "ctl_kafka", "object": f"{name}_never_created", "columns": [{"name": "n", "type": "BIGINT"}]},
              "conditions": [{"column": "n", "op": ">", "value": 0}],
              "sink": {"datasource": "ctl_kafka", "object": f"{name}_out"}}
    db.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)", (name, json.dumps(params), json.dumps(
        {"flink": {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": "1000",
                   "restart-strategy.fixed-delay.delay": "2 s"}})))
    db.execute("SELECT flink.start(%s)", (name,))
    try:
        deadline = time.time() + 90
        row = None
        while time.time() < deadline:
            row = db.execute("SELECT state, last_error FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()
            if row and row[0] == "RESTARTING" and row[1]:
                break
            time.sleep(0.5)
        assert row and row[0] == "RESTARTING" and "topic" in row[1].lower(), row
        status = db.execute("SELECT healthy, last_error FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()
        assert status[0] is False and status[1]
    finally:
        cleanup(db, name)
