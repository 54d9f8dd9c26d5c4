"""Pipeline lifecycle: job identity, drops that never orphan a job, new and restored databases,
drop_cluster, stopping a crash-looping job, waiting inside the starting transaction, and the
lifecycle invariants over seeded random steps (tests/lifecycle_invariants.py).

Jobs are looked at in the real Flink cluster (GET /jobs/overview). Tests that drop the extension
or a database, or need a database of their own, use scratch databases."""
import json
import os
import pathlib
import re
import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import unique
from lifecycle_invariants import (
    FLINK_TERMINAL, GATEWAY_URL, REST_URL, cancel_flink_job, cancel_jobs, create_crash_looping_pipeline,
    create_filter_pipeline, database_identity, drop_database, drop_database_surely, encode_database_name,
    expected_job_name, flink_job_state, holds_for, live_jobs_of_pipeline, pg_connect, pipeline_status, register,
    restore_copy, restore_in_place, run, scratch_database, wait_for,
)

CLUSTER = "local"
KAFKA_DS = "lc_kafka"


@pytest.fixture
def db(test_db):
    """The shared test database with this module's cluster and Kafka datasource (registered per
    test: idempotent, and another session may have re-created the extension meanwhile)."""
    with pg_connect(test_db) as c:
        register(c, CLUSTER, KAFKA_DS)
        yield c


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def new_pipeline(c, prefix="lc", **kw):
    name = unique(prefix)
    create_filter_pipeline(c, name, KAFKA_DS, **kw)
    return name


def start_committed(c, name):
    with c.transaction():
        c.execute("SELECT flink.start(%s)", (name,))


def start_and_wait_running(c, name, timeout=90):
    start_committed(c, name)
    assert c.execute("SELECT flink.wait(%s, 'running', %s)", (name, f"{timeout} seconds")).fetchone()[0] == "RUNNING"
    return c.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()[0]


def wait_status(c, name, until, what, timeout=30):
    return wait_for(f"{name}: {what}", lambda: pipeline_status(c, name), until=lambda s: s is not None and until(s), timeout=timeout)


def wait_running(c, name, timeout=30):
    return wait_status(c, name, lambda s: s["actual"] == "RUNNING", "actual RUNNING", timeout)


def wait_not_live(name, jid=None, timeout=30):
    """Until the pipeline (or the one job) has no live job in Flink."""
    wait_for(f"no live Flink job of {name}" + (f" ({jid})" if jid else ""),
             lambda: [(j["jid"], j["name"], j["state"]) for j in live_jobs_of_pipeline(name) if jid in (None, j["jid"])],
             until=lambda v: v == [], timeout=timeout)


def cleanup(c, *names):
    """Stops the pipelines and makes sure nothing of them is left running in Flink."""
    for name in names:
        try:
            c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
        except psycopg.Error:
            pass
    for name in names:
        try:
            wait_not_live(name, timeout=30)
        except AssertionError:
            pass
        cancel_jobs(live_jobs_of_pipeline(name))


def event_count(c, name):
    return c.execute("SELECT count(*) FROM flink.job_events WHERE pipeline = %s", (name,)).fetchone()[0]


def assert_compact(text, where):
    """An error text fit for a status row: bounded, no Java cycle markers, no base64 blobs."""
    if text is None:
        return
    assert len(text) < 2100, f"{where}: {len(text)} characters: {text[:300]}..."
    assert "[CIRCULAR REFERENCE" not in text, f"{where}: Java's circular-reference marker: {text[:300]}..."
    blob = re.search(r"\S{200,}", text)
    assert blob is None, f"{where}: a run of {len(blob.group(0))} characters without whitespace: {blob.group(0)[:120]}..."


def flink_savepoint_dir(path):
    return pathlib.Path(path.replace("file:", "", 1))


# ------------------------------------------------------------------------------------------------
# 1. Job identity
# ------------------------------------------------------------------------------------------------
def test_job_is_named_by_instance_database_oid_database_name_pipeline_and_version(db):
    name = new_pipeline(db)
    sysid, oid, dbname = database_identity(db)
    expected = f"pg_flink/{sysid}/{oid}/{dbname}/{name}/v1"
    try:
        jid = start_and_wait_running(db, name)
        assert db.execute("SELECT job_name FROM flink.jobs WHERE flink_job_id = %s", (jid,)).fetchone()[0] == expected
        assert [(j["jid"], j["name"]) for j in live_jobs_of_pipeline(name)] == [(jid, expected)]
    finally:
        cleanup(db, name)


def test_job_name_percent_encodes_slash_and_percent_in_the_database_name():
    name = f"pgflink_lc/odd%name_{unique('x')[-8:]}"
    with scratch_database(name=name) as dbname, pg_connect(dbname) as c:
        p = new_pipeline(c)
        sysid, oid, _ = database_identity(c)
        expected = f"pg_flink/{sysid}/{oid}/{encode_database_name(dbname)}/{p}/v1"
        assert "%2F" in expected and "%25" in expected
        try:
            start_committed(c, p)
            wait_running(c, p)
            assert c.execute("SELECT job_name FROM flink.jobs WHERE pipeline = %s", (p,)).fetchone()[0] == expected
            assert [j["name"] for j in live_jobs_of_pipeline(p)] == [expected]
        finally:
            cleanup(c, p)


def test_jobs_of_another_postgres_instance_are_neither_adopted_nor_stopped(db):
    """A job with this database's name and pipeline but another instance's system identifier
    (a second Postgres sharing the Flink cluster) is not ours: not adopted, not stopped."""
    name = new_pipeline(db)
    sysid, oid, dbname = database_identity(db)
    foreign = f"pg_flink/{int(sysid) + 1}/{oid}/{dbname}/{name}/v1"
    script = db.execute("SELECT flink.render(%s, reveal_secrets => true)", (name,)).fetchone()[0]
    script, n = re.subn(r"SET 'pipeline.name' = '[^']*'", f"SET 'pipeline.name' = '{foreign}'", script)
    assert n == 1, script
    foreign_jid = [r[0] for r in db.execute("SELECT job_id FROM flink.execute_sql(%s, gateway_url => %s)",
                                            (script, GATEWAY_URL)).fetchall() if r[0]][0]
    try:
        wait_for("the other instance's job runs", lambda: flink_job_state(foreign_jid), until=lambda s: s == "RUNNING", timeout=60)
        jid = start_and_wait_running(db, name)
        assert jid != foreign_jid, "the worker adopted another instance's job"
        assert db.execute("SELECT job_name FROM flink.jobs WHERE flink_job_id = %s", (jid,)).fetchone()[0] == expected_job_name(db, name, 1)
        db.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
        wait_not_live(name, jid)
        holds_for("the other instance's job keeps running after our stop", lambda: flink_job_state(foreign_jid),
                  must=lambda s: s == "RUNNING", duration=3)
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE flink_job_id = %s", (foreign_jid,)).fetchone()[0] == 0
    finally:
        cancel_flink_job(foreign_jid)
        cleanup(db, name)


# ------------------------------------------------------------------------------------------------
# 2. Drops never orphan a job
# ------------------------------------------------------------------------------------------------
def dropped_row(c, name):
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM flink.dropped_pipelines WHERE pipeline = %s", (name,)).fetchone()


@pytest.mark.parametrize("with_savepoint", [False, True], ids=["cancel", "savepoint"])
def test_drop_pipeline_stops_its_running_job_and_records_it(db, with_savepoint):
    name = new_pipeline(db)
    try:
        jid = start_and_wait_running(db, name)
        job_name = db.execute("SELECT job_name FROM flink.jobs WHERE flink_job_id = %s", (jid,)).fetchone()[0]
        with db.transaction():
            assert db.execute("SELECT flink.drop_pipeline(%s, with_savepoint => %s)", (name, with_savepoint)).fetchone()[0] is True
        wait_not_live(name, jid, timeout=30)
        row = wait_for(f"{name} recorded as stopped in flink.dropped_pipelines", lambda: dropped_row(db, name),
                       until=lambda r: r is not None and r["stopped_at"] is not None, timeout=30)
        assert row["job_name"] == job_name and row["flink_job_id"] == jid, f"{row}"
        assert row["dropped_at"] <= row["stopped_at"], f"{row}"
        assert "detail" in row
        state = flink_job_state(jid)
        if with_savepoint:
            assert row["savepoint_path"], f"no savepoint recorded (Flink says the job is {state}): {row}"
            assert flink_savepoint_dir(row["savepoint_path"]).is_dir(), row["savepoint_path"]
            assert state == "FINISHED", f"stopped with a savepoint, the job is {state}"
        else:
            assert row["savepoint_path"] is None, f"{row}"
            assert state == "CANCELED", f"cancelled, the job is {state}"
        assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = %s", (name,)).fetchone()[0] == 0
    finally:
        cancel_jobs(live_jobs_of_pipeline(name))


def test_rolled_back_drop_pipeline_stops_nothing(db):
    name = new_pipeline(db)
    try:
        jid = start_and_wait_running(db, name)
        with pytest.raises(psycopg.errors.DivisionByZero):
            with db.transaction():
                assert db.execute("SELECT flink.drop_pipeline(%s)", (name,)).fetchone()[0] is True
                db.execute("SELECT 1/0")
        holds_for(f"{name}'s job keeps running after a rolled-back drop", lambda: flink_job_state(jid),
                  must=lambda s: s == "RUNNING", duration=5)
        assert pipeline_status(db, name)["actual"] == "RUNNING"
        assert dropped_row(db, name) is None
    finally:
        cleanup(db, name)


def test_down_migration_stop_then_drop_in_one_transaction_leaves_no_live_job(db):
    name = new_pipeline(db)
    try:
        start_and_wait_running(db, name)
        with db.transaction():
            db.execute("SELECT flink.stop(%s)", (name,))
            assert db.execute("SELECT flink.drop_pipeline(%s)", (name,)).fetchone()[0] is True
        wait_not_live(name, timeout=30)
        wait_for(f"{name} recorded as stopped in flink.dropped_pipelines", lambda: dropped_row(db, name),
                 until=lambda r: r is not None and r["stopped_at"] is not None, timeout=30)
    finally:
        cancel_jobs(live_jobs_of_pipeline(name))


def test_drop_pipeline_drops_its_results_table_unless_keep_results(db):
    dropped, kept = new_pipeline(db), new_pipeline(db)
    schema = unique("lc_results")
    try:
        for name in (dropped, kept):
            assert db.execute("SELECT flink.expose_results(%s, %s)::text", (name, schema)).fetchone()[0]
        db.execute("SELECT flink.drop_pipeline(%s)", (dropped,))
        db.execute("SELECT flink.drop_pipeline(%s, keep_results => true)", (kept,))
        assert db.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))", (schema, dropped)).fetchone()[0] is None
        assert db.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))", (schema, kept)).fetchone()[0] is not None
    finally:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_drop_extension_cascade_cancels_running_jobs():
    with scratch_database() as dbname, pg_connect(dbname) as c:
        names = [new_pipeline(c) for _ in range(2)]
        for name in names:
            start_committed(c, name)
        for name in names:
            wait_running(c, name)
        c.execute("DROP EXTENSION pg_flink CASCADE")
        for name in names:
            wait_not_live(name, timeout=30)


def test_drop_database_cancels_running_jobs():
    with scratch_database() as dbname:
        with pg_connect(dbname) as c:
            name = new_pipeline(c)
            start_committed(c, name)
            jid = wait_running(c, name)["flink_job_id"]
        # No FORCE: the worker serving the database must let go of it.
        drop_database(dbname, force=False, if_exists=False)
        wait_not_live(name, jid, timeout=30)
        assert flink_job_state(jid) in FLINK_TERMINAL


# ------------------------------------------------------------------------------------------------
# 3. New databases are served without a restart
# ------------------------------------------------------------------------------------------------
def test_a_new_database_is_served_without_a_restart():
    with scratch_database() as dbname, pg_connect(dbname) as c:
        name = new_pipeline(c)
        try:
            start_committed(c, name)  # 55000 "no pg_flink worker serves database" before
            status = wait_running(c, name, timeout=30)
            assert status["desired"] == "running"
            assert [j["name"] for j in live_jobs_of_pipeline(name)] == [expected_job_name(c, name, 1)]
        finally:
            cleanup(c, name)


# ------------------------------------------------------------------------------------------------
# 4. A restored copy does not steal the original's job
# ------------------------------------------------------------------------------------------------
def test_a_copy_restored_under_a_new_name_is_detached_and_leaves_the_original_job_alone():
    with scratch_database() as original, pg_connect(original) as c:
        name = new_pipeline(c)
        start_committed(c, name)
        jid = wait_running(c, name)["flink_job_id"]
        original_job_name = expected_job_name(c, name, 1)
        copy = f"{original}_copy"
        try:
            restore_copy(original, copy)
            with pg_connect(copy) as cc:
                status = wait_status(cc, name, lambda s: s["actual"] == "DETACHED", "the copy's pipeline is DETACHED", timeout=15)
                assert status["desired"] == "stopped", status
                assert [(j["jid"], j["name"]) for j in live_jobs_of_pipeline(name)] == [(jid, original_job_name)]
                with cc.transaction():
                    cc.execute("SELECT flink.stop(%s)", (name,))
                holds_for("the original's job keeps running, alone, after flink.stop in the copy",
                          lambda: [(j["jid"], j["state"]) for j in live_jobs_of_pipeline(name)],
                          must=lambda v: v == [(jid, "RUNNING")], duration=5)
            status = pipeline_status(c, name)
            assert (status["desired"], status["actual"], status["flink_job_id"]) == ("running", "RUNNING", jid)
        finally:
            drop_database_surely(copy)
            cleanup(c, name)


def test_restoring_a_database_over_itself_adopts_its_running_job():
    with scratch_database() as dbname:
        with pg_connect(dbname) as c:
            name = new_pipeline(c)
            start_committed(c, name)
            jid = wait_running(c, name)["flink_job_id"]
        seen = []
        stop = threading.Event()

        def watch():  # every live job of the pipeline while the restore runs
            while not stop.is_set():
                seen.append(tuple(sorted(j["jid"] for j in live_jobs_of_pipeline(name))))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            restore_in_place(dbname)
            with pg_connect(dbname) as c:
                status = wait_status(c, name, lambda s: s["actual"] == "RUNNING" and s["flink_job_id"] == jid,
                                     "adopts its job again", timeout=30)
                assert status["desired"] == "running"
                holds_for("exactly the original job stays live", lambda: [j["jid"] for j in live_jobs_of_pipeline(name)],
                          must=lambda v: v == [jid], duration=5)
        finally:
            stop.set()
            watcher.join()
            with pg_connect(dbname) as c:
                cleanup(c, name)
        assert set(seen) == {(jid,)}, f"live jobs of {name} during the restore: {sorted(set(seen))}"


def test_dropping_a_database_restored_over_itself_cancels_the_job_it_adopted():
    """The adopted job still carries the oid of the database it was submitted from; dropping the
    restored one must stop it all the same (found by hand: it was left running)."""
    with scratch_database() as dbname:
        with pg_connect(dbname) as c:
            name = new_pipeline(c)
            start_committed(c, name)
            jid = wait_running(c, name)["flink_job_id"]
        restore_in_place(dbname)
        with pg_connect(dbname) as c:
            wait_status(c, name, lambda s: s["actual"] == "RUNNING" and s["flink_job_id"] == jid,
                        "adopts its job again", timeout=30)
        drop_database(dbname, force=False, if_exists=False)
        wait_not_live(name, jid, timeout=30)
        assert flink_job_state(jid) in FLINK_TERMINAL


# ------------------------------------------------------------------------------------------------
# 5. drop_cluster while pipelines use the cluster
# ------------------------------------------------------------------------------------------------
def new_cluster(c):
    name = unique("lc_cluster")
    c.execute("SELECT * FROM flink.register_cluster(%s, %s, %s)", (name, GATEWAY_URL, REST_URL))
    return name


def test_drop_cluster_in_use_is_refused_with_the_pipelines_named_and_no_event_churn(db):
    cluster = new_cluster(db)
    name = new_pipeline(db, options={"cluster": cluster})
    try:
        start_and_wait_running(db, name)
        before = event_count(db, name)
        with pytest.raises(psycopg.errors.DependentObjectsStillExist) as e:
            db.execute("SELECT flink.drop_cluster(%s)", (cluster,))
        assert name in e.value.diag.message_primary, e.value.diag.message_primary
        assert db.execute("SELECT count(*) FROM flink.clusters WHERE name = %s", (cluster,)).fetchone()[0] == 1
        holds_for(f"{name}'s events do not grow after the refused drop", lambda: event_count(db, name),
                  must=lambda n: n == before, duration=5)
        assert pipeline_status(db, name)["actual"] == "RUNNING"
        # The default cluster, used by a pipeline that only wants to run (in this transaction,
        # always rolled back: the shared database keeps its default cluster whatever happens).
        default = db.execute("SELECT name FROM flink.clusters WHERE is_default").fetchone()[0]
        other = new_pipeline(db)
        with pytest.raises(psycopg.errors.DependentObjectsStillExist) as e:
            with db.transaction():
                db.execute("SELECT flink.start(%s)", (other,))
                db.execute("SELECT flink.drop_cluster(%s)", (default,))
                raise psycopg.Rollback()
        assert other in e.value.diag.message_primary, e.value.diag.message_primary
        assert db.execute("SELECT count(*) FROM flink.clusters WHERE name = %s", (default,)).fetchone()[0] == 1
    finally:
        cleanup(db, name)


def test_drop_cluster_cascade_stops_the_pipelines_before_the_cluster_disappears(db):
    cluster = new_cluster(db)
    name = new_pipeline(db, options={"cluster": cluster})
    try:
        jid = start_and_wait_running(db, name)
        assert db.execute("SELECT flink.drop_cluster(%s, cascade => true)", (cluster,)).fetchone()[0] is True
        assert pipeline_status(db, name)["desired"] == "stopped"

        def probe():
            listed = db.execute("SELECT count(*) FROM flink.clusters WHERE name = %s", (cluster,)).fetchone()[0]
            state = flink_job_state(jid)
            assert listed == 1 or state in FLINK_TERMINAL, f"cluster {cluster} left flink.clusters while its job is {state}"
            return listed, state
        wait_for(f"cluster {cluster} dropped once {name}'s job stopped", probe,
                 until=lambda v: v[0] == 0 and v[1] in FLINK_TERMINAL, timeout=60)
    finally:
        cleanup(db, name)


# ------------------------------------------------------------------------------------------------
# 6. Stopping a job in a restart loop terminates
# ------------------------------------------------------------------------------------------------
def start_crash_loop(c):
    name = unique("lc_crash")
    create_crash_looping_pipeline(c, name, KAFKA_DS)
    start_committed(c, name)
    status = wait_status(c, name, lambda s: (s["restarts"] or 0) > 0, "Flink restarts the failing job", timeout=90)
    holds_for(f"{name} is unhealthy while it crash-loops", lambda: pipeline_status(c, name),
              must=lambda s: s["healthy"] is False and s["restarts"] > 0, duration=2)
    return name, status["flink_job_id"]


def assert_compact_texts(c, name):
    for job_id, err in c.execute("SELECT id, last_error FROM flink.jobs WHERE pipeline = %s", (name,)).fetchall():
        assert_compact(err, f"flink.jobs {job_id} last_error")
    for event_id, detail in c.execute("SELECT id, detail FROM flink.job_events WHERE pipeline = %s", (name,)).fetchall():
        assert_compact(detail, f"flink.job_events {event_id} detail")


def test_stopping_a_crash_looping_job_terminates_with_few_compact_events(db):
    name, jid = start_crash_loop(db)
    try:
        with db.transaction():
            db.execute("SELECT flink.stop(%s)", (name,))  # with a savepoint, which a restarting job cannot take
        wait_for(f"{name} STOPPED and its job gone from Flink",
                 lambda: (pipeline_status(db, name)["actual"], [j["state"] for j in live_jobs_of_pipeline(name)]),
                 until=lambda v: v == ("STOPPED", []), timeout=60)
        n = holds_for(f"{name}'s events stop growing", lambda: event_count(db, name), must=lambda n: n < 15, duration=5)
        assert n < 15, f"{n} events"
        assert_compact_texts(db, name)
    finally:
        cleanup(db, name)


@pytest.mark.parametrize("kind", ["crash_looping", "healthy"])
def test_stop_without_savepoint_records_stopped_only_once_flink_cancelled_the_job(db, kind):
    if kind == "crash_looping":
        name, jid = start_crash_loop(db)
    else:
        name = new_pipeline(db)
        jid = start_and_wait_running(db, name)
    try:
        with db.transaction():
            db.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))

        def probe():  # the status first, then Flink: Flink must already agree when STOPPED is read
            actual = pipeline_status(db, name)["actual"]
            return actual, flink_job_state(jid)
        actual, state = wait_for(f"{name} STOPPED", probe, until=lambda v: v[0] == "STOPPED", timeout=60, interval=0.05)
        assert state == "CANCELED", f"STOPPED recorded while /jobs/overview shows the job {state}"
        assert_compact_texts(db, name)
    finally:
        cleanup(db, name)


# ------------------------------------------------------------------------------------------------
# 7. Waiting inside the starting transaction
# ------------------------------------------------------------------------------------------------
def test_wait_for_an_uncommitted_start_fails_at_once_with_a_hint_to_commit(db):
    name = new_pipeline(db)
    t = time.monotonic()
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        with db.transaction():
            db.execute("SELECT flink.start(%s)", (name,))
            db.execute("SELECT flink.wait(%s, 'RUNNING', '30 seconds')", (name,))
    elapsed = time.monotonic() - t
    assert elapsed < 5, f"flink.wait took {elapsed:.1f} s to refuse"
    assert "COMMIT" in (e.value.diag.message_hint or ""), e.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 0


# ------------------------------------------------------------------------------------------------
# The invariants over seeded random steps
# ------------------------------------------------------------------------------------------------
def test_invariants_hold_over_random_steps():
    seed = int(os.environ.get("PG_FLINK_INVARIANT_SEED", "20261130"))
    print(f"lifecycle invariants: seed {seed} (replay with PG_FLINK_INVARIANT_SEED={seed})")
    summary = run(seed=seed, steps=30, deadline_s=900)
    print(f"lifecycle invariants: {json.dumps(summary)}")
    assert summary["steps_run"] == 30, f"the 900 s deadline stopped the run after {summary['steps_run']} steps (seed {seed})"
