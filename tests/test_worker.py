"""The worker at work (0.2.0): manual savepoints, slow calls that must not hold up other
pipelines, and the change log that lets the worker re-read only what changed."""
import http.server
import json
import threading
import time

import psycopg
import pytest
import requests

from conftest import ENV, connect
from test_control import cleanup, ctl, db, live_jobs, new_pipeline  # noqa: F401  (fixtures)


def wait_for(what, pred, timeout, seen=lambda: None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s; last seen: {seen()}")


def test_manual_savepoint_is_taken_recorded_and_the_job_keeps_running(db):
    name, identity = new_pipeline(db)
    try:
        db.execute("SELECT flink.start(%s)", (name,))
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
        jid = db.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                         (name,)).fetchone()[0]
        # Transactional: a rolled-back request asks for nothing.
        with pytest.raises(psycopg.errors.DivisionByZero):
            with db.transaction():
                assert db.execute("SELECT flink.savepoint(%s)", (name,)).fetchone()[0] == "requested"
                db.execute("SELECT 1/0")
        time.sleep(2)
        assert db.execute("SELECT count(*) FROM flink.savepoints WHERE pipeline = %s", (name,)).fetchone()[0] == 0
        # Idempotent while one is pending (a migration that runs twice asks once).
        with db.transaction():
            assert db.execute("SELECT flink.savepoint(%s)", (name,)).fetchone()[0] == "requested"
            assert db.execute("SELECT flink.savepoint(%s)", (name,)).fetchone()[0] == "already requested"
        row = wait_for("manual savepoint row",
                       lambda: db.execute("SELECT path, trigger, job_id FROM flink.savepoints WHERE pipeline = %s",
                                          (name,)).fetchone(), 90,
                       lambda: db.execute("SELECT to_state, detail FROM flink.job_events WHERE pipeline = %s "
                                          "ORDER BY id DESC LIMIT 3", (name,)).fetchall())
        assert row[1] == "manual" and row[0].startswith("file:"), row
        assert db.execute("SELECT count(*) FROM flink.savepoints WHERE pipeline = %s", (name,)).fetchone()[0] == 1
        ev = db.execute("SELECT detail FROM flink.job_events WHERE pipeline = %s AND detail LIKE 'manual savepoint%%'",
                        (name,)).fetchall()
        assert ev == [(f"manual savepoint taken: {row[0]}",)], ev
        # The job was not stopped: same Flink job, still running, one live job.
        state = db.execute("SELECT state, flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                           (name,)).fetchone()
        assert state == ("RUNNING", jid), state
        assert [j["jid"] for j in live_jobs(identity)] == [jid]
        # The request was consumed: a new one can be made, and resuming from it works.
        assert db.execute("SELECT savepoint_requested_at FROM flink.pipeline_state WHERE pipeline = %s",
                          (name,)).fetchone()[0] is None
    finally:
        cleanup(db, name)


def test_manual_savepoint_errors_name_the_pipeline_and_say_what_to_do(db):
    with pytest.raises(psycopg.errors.UndefinedObject) as e:
        db.execute("SELECT flink.savepoint('no_such_pipeline')")
    assert "no_such_pipeline" in str(e.value) and e.value.diag.message_hint
    name, _ = new_pipeline(db)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        db.execute("SELECT flink.savepoint(%s)", (name,))
    assert name in str(e.value) and "flink.start" in e.value.diag.message_hint


class SlowGateway(http.server.BaseHTTPRequestHandler):
    """A SQL Gateway that takes `delay` seconds to open a session, then fails."""
    delay = 20.0
    requests = 0

    def do_POST(self):  # noqa: N802
        SlowGateway.requests += 1
        time.sleep(SlowGateway.delay)
        body = b'{"errors": ["the slow stand-in gateway refuses"]}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST  # noqa: N815

    def log_message(self, *a):
        pass


def test_a_slow_submission_does_not_hold_up_other_pipelines(db):
    """A pipeline whose gateway takes 20 s per call is submitted in the background: another
    pipeline, started after it, runs within seconds, and the slow one ends SUBMIT_FAILED."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowGateway)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    slow_url = f"http://127.0.0.1:{srv.server_address[1]}"
    cluster = "slow_gw"
    db.execute("SELECT * FROM flink.register_cluster(%s, %s, %s)", (cluster, slow_url, ENV["PG_FLINK_REST_URL"]))
    slow, _ = new_pipeline(db)
    fast, _ = new_pipeline(db)
    try:
        db.execute("UPDATE flink.pipeline SET options = options || %s WHERE name = %s",
                   (json.dumps({"cluster": cluster}), slow))
        db.execute("SELECT flink.start(%s)", (slow,))
        wait_for("the slow submission to begin", lambda: SlowGateway.requests > 0, 15)
        t0 = time.time()
        db.execute("SELECT flink.start(%s)", (fast,))
        db.execute("SELECT flink.wait(%s, 'running', '60 seconds')", (fast,))
        took = time.time() - t0
        slow_state = db.execute("SELECT state FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                                (slow,)).fetchone()[0]
        print(f"fast pipeline RUNNING {took:.1f} s after start while the slow one is {slow_state}")
        assert slow_state == "SUBMITTING", "the slow submission should still be in flight"
        assert took < SlowGateway.delay, f"the fast pipeline waited for the slow gateway ({took:.1f} s)"
        wait_for("the slow submission to fail",
                 lambda: db.execute("SELECT state FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                                    (slow,)).fetchone()[0] == "SUBMIT_FAILED", 3 * SlowGateway.delay + 30)
        err = db.execute("SELECT last_error FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                         (slow,)).fetchone()[0]
        # The stand-in answers after 20 s; the HTTP client gives up at its 10 s timeout first.
        assert slow_url in err and ("did not answer" in err or "refuses" in err), err
    finally:
        db.execute("SELECT flink.stop(%s, with_savepoint => false)", (slow,))
        cleanup(db, fast)
        wait_for("the slow pipeline to settle",
                 lambda: db.execute("SELECT state FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                                    (slow,)).fetchone()[0] in ("SUBMIT_FAILED", "STOPPED"), 3 * SlowGateway.delay + 30)
        db.execute("SELECT flink.drop_pipeline(%s)", (slow,))
        db.execute("SELECT flink.drop_cluster(%s)", (cluster,))
        srv.shutdown()


def test_the_change_log_is_consumed_and_rolled_back_changes_leave_nothing(db):
    """Every write the worker must see leaves a row in the change log, which the worker empties;
    a rolled-back transaction leaves nothing behind."""
    name, _ = new_pipeline(db)
    mine = lambda: db.execute("SELECT count(*) FROM flink_internal.change WHERE pipeline = %s",  # noqa: E731
                              (name,)).fetchone()[0]
    wait_for("the change log to be read", lambda: mine() == 0, 10)
    with pytest.raises(psycopg.errors.DivisionByZero):
        with db.transaction():
            db.execute("SELECT flink.start(%s)", (name,))
            assert mine() >= 1
            db.execute("SELECT 1/0")
    assert mine() == 0
    # An uncommitted change is not consumed before it commits, then it is acted on.
    with connect("pg_flink_test", autocommit=False) as other:
        other.execute("SELECT flink.start(%s)", (name,))
        time.sleep(2)  # several polls while it is uncommitted
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 0
        other.commit()
    try:
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
    finally:
        cleanup(db, name)


def test_ddl_holding_the_catalog_briefly_is_waited_out_quietly(db):
    """ALTER EXTENSION UPDATE or a migration's DDL may hold the catalog for seconds. The worker's
    lock timeout makes it step aside (never deadlock); that is expected, not worth a WARNING, and
    it reconciles as soon as the lock is gone."""
    import pathlib
    import re
    log = pathlib.Path(ENV["PG_FLINK_LOGS"]) / "postgres.log"
    start = log.stat().st_size
    worker = db.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker' "
                        "AND datname = current_database()").fetchone()
    assert worker, "the database has no pg_flink worker"
    name, identity = new_pipeline(db)
    try:
        with connect(db.info.dbname) as ddl:
            with ddl.transaction():
                ddl.execute("LOCK TABLE flink.pipeline, flink.cluster, flink_internal.change IN ACCESS EXCLUSIVE MODE")
                # For several polls, the worker's reads wait and time out (500 ms each).
                t0, waited = time.time(), 0
                while time.time() - t0 < 4:
                    waited += db.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted",
                                         (worker[0],)).fetchone()[0]
                    time.sleep(0.1)
                assert waited > 0, "the worker never waited for the lock: this test tests nothing"
        db.execute("SELECT flink.start(%s)", (name,))
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
        assert len(live_jobs(identity)) == 1
    finally:
        cleanup(db, name)
    with open(log, "rb") as f:
        f.seek(start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    noisy = [line for line in lines if f"[{worker[0]}]" in line and re.search(r" (WARNING|ERROR): ", line)]
    assert noisy == [], "the worker complained while DDL held the catalog:\n" + "\n".join(noisy[:10])


def test_waiting_for_stopped_returns_when_the_job_had_already_finished(db):
    """A bounded job (datagen with number_of_rows) FINISHES by itself; stopping its pipeline
    leaves it FINISHED, and flink.wait(p, 'stopped') says so at once instead of timing out."""
    name = f"wait_fin_{int(time.time() * 1000) % 10**9}"
    db.execute("SELECT * FROM flink.register_datasource('wait_gen', 'datagen', '{\"rows_per_second\": 100, \"number_of_rows\": 10}')")
    db.execute("SELECT * FROM flink.register_datasource('wait_nowhere', 'blackhole', '{}')")
    params = {"source": {"datasource": "wait_gen", "object": "g", "columns": [{"name": "n", "type": "BIGINT"}]},
              "conditions": [{"column": "n", "op": "is_not_null"}],
              "sink": {"datasource": "wait_nowhere", "object": "x"}}
    db.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)", (name, json.dumps(params)))
    try:
        db.execute("SELECT flink.start(%s)", (name,))
        assert db.execute("SELECT flink.wait(%s, 'finished', '120 seconds')", (name,)).fetchone()[0] == "FINISHED"
        # Not stopped yet: waiting for STOPPED while the pipeline is desired running times out.
        with pytest.raises(psycopg.errors.QueryCanceled):
            db.execute("SELECT flink.wait(%s, 'stopped', '1 second')", (name,))
        db.execute("SELECT flink.stop(%s)", (name,))
        t0 = time.time()
        assert db.execute("SELECT flink.wait(%s, 'stopped', '30 seconds')", (name,)).fetchone()[0] == "FINISHED"
        assert time.time() - t0 < 5
    finally:
        db.execute("SELECT flink.drop_pipeline(%s)", (name,))
        db.execute("SELECT flink.drop_datasource('wait_gen', if_exists => true)")
        db.execute("SELECT flink.drop_datasource('wait_nowhere', if_exists => true)")
