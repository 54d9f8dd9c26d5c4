"""Failover (issue #17): a streaming standby (pg_basebackup -R) takes over from a primary killed
with -9.

Each test builds a pair of its own with scripts/pg-pair.sh: a primary initdb'd with the stack's
settings on 127.0.0.1:55432 and a standby of it on 55433, both in a temporary directory, so the
stack's Postgres is never touched. Both run pg_flink against the stack's real Flink cluster. The
standby is made before the test database exists: the catalog reaches it by streaming only.

Each test runs at most two Flink jobs at a time, stops its pipelines through the SQL API, and a
finalizer stops both instances and cancels whatever job of the pair's instance (job names carry
its system identifier) is still live in Flink, also when the test fails.
"""
import contextlib
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import psycopg
import pytest
import requests

from lifecycle_invariants import (
    FLINK_TERMINAL, cancel_flink_job, create_filter_pipeline, flink_jobs, holds_for, register, wait_for,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
PG_PAIR = REPO / "scripts" / "pg-pair.sh"
PRIMARY_PORT, STANDBY_PORT = 55432, 55433
CLUSTER, KAFKA_DS = "local", "fo_kafka"
# The worker must run on the promoted standby, and have recorded what happened while there was
# no primary, within this many seconds of `pg_ctl promote`.
TAKEOVER_BOUND_S = 15
# A short poll interval: the stack's 500 ms would do, this keeps the measured times honest.
SETTINGS = ["pg_flink.poll_interval_ms=200", "pg_flink.launcher_interval_ms=500"]


# ------------------------------------------------------------------------------------------------
# the pair
# ------------------------------------------------------------------------------------------------
def pg_pair(*args, timeout=120):
    r = subprocess.run([str(PG_PAIR), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"pg-pair.sh {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}{r.stderr}"
    return r.stdout.strip()


def pg(port, dbname="postgres", autocommit=True):
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=autocommit,
                           connect_timeout=5)


def try_query(port, dbname, sql, params=None):
    """Rows of a query, or the error text when the server does not answer (yet)."""
    try:
        with pg(port, dbname) as c:
            return c.execute(sql, params).fetchall()
    except psycopg.Error as e:
        return f"error: {e}".strip()


def children(pid):
    """(pid, command line) of the processes whose parent is `pid` (a postmaster's backends)."""
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == pid:
                out.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()))
        except (OSError, ValueError):
            continue
    return out


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        if (pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z":
            return False
    return True


class Instance:
    def __init__(self, root, name, port):
        self.name, self.port = name, port
        self.data, self.log = root / name, root / f"{name}.log"

    def postmaster_pid(self):
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None

    def pg_flink_processes(self):
        """pg_flink's background workers, as pg_stat_activity and the process list show them."""
        rows = try_query(self.port, "postgres",
                         "SELECT backend_type, coalesce(datname, '') FROM pg_stat_activity "
                         "WHERE backend_type LIKE 'pg_flink%' ORDER BY 1, 2")
        pm = self.postmaster_pid()
        ps = sorted(cmd for _, cmd in children(pm)
                    if "pg_flink launcher" in cmd or "pg_flink worker" in cmd) if pm else []
        return {"pg_stat_activity": [tuple(r) for r in rows] if isinstance(rows, list) else rows, "ps": ps}

    def kill_9(self):
        """SIGKILL to the postmaster and every one of its processes at once (the machine is
        gone: no backend outlives it), then waits until none is left."""
        pm = self.postmaster_pid()
        assert pm and alive(pm), f"{self.name}: no running postmaster to kill"
        pids = [pm] + [p for p, _ in children(pm)]
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        wait_for(f"{self.name}: processes {pids} gone after SIGKILL", lambda: [p for p in pids if alive(p)],
                 until=lambda left: left == [], timeout=30)

    def tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


class Pair:
    def __init__(self):
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="pg_flink_failover_"))
        pw = pwd.getpwnam("postgres")
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.primary = Instance(self.root, "primary", PRIMARY_PORT)
        self.standby = Instance(self.root, "standby", STANDBY_PORT)
        self.sysid = None
        self.timings = {}

    def start_primary(self):
        pg_pair("primary", self.primary.data, self.primary.port, self.primary.log,
                f"unix_socket_directories={self.root}", *SETTINGS)
        with pg(self.primary.port) as c:
            self.sysid = str(c.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])

    def start_standby(self):
        pg_pair("standby", self.primary.port, self.standby.data, self.standby.port, self.standby.log)

    def wait_replayed(self, timeout=30):
        """Until the standby has replayed everything the primary has written so far."""
        with pg(self.primary.port) as c:
            lsn = c.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        wait_for(f"standby replays up to {lsn}",
                 lambda: try_query(self.standby.port, "postgres",
                                   "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn, pg_last_wal_replay_lsn()::text", (lsn,)),
                 until=lambda r: isinstance(r, list) and r[0][0], timeout=timeout)

    def live_jobs(self):
        """Live Flink jobs of this pair's instance (any database, any pipeline)."""
        return [j for j in flink_jobs()
                if j["state"] not in FLINK_TERMINAL and j["name"].startswith(f"pg_flink/{self.sysid}/")]

    def close(self):
        for inst in (self.primary, self.standby):
            with contextlib.suppress(Exception):
                if inst.postmaster_pid() and alive(inst.postmaster_pid()):
                    pg_pair("stop", inst.data, "immediate", timeout=60)
            pm = inst.postmaster_pid()
            if pm and alive(pm):  # pg_ctl could not stop it: take it down by its pids
                with contextlib.suppress(Exception):
                    inst.kill_9()
        # Nothing can resubmit now: cancel whatever job of this instance is still live.
        if self.sysid:
            with contextlib.suppress(requests.RequestException):
                for j in self.live_jobs():
                    print(f"finalizer: cancelling live Flink job {j['jid']} {j['name']} ({j['state']})")
                    cancel_flink_job(j["jid"])
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pair(request):
    p = Pair()
    failed_before = request.session.testsfailed
    try:
        yield p
    finally:
        if request.session.testsfailed != failed_before:  # the call failed: show both servers' logs
            for inst in (p.primary, p.standby):
                print(f"--- last lines of {inst.log}\n{inst.tail()}")
        print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in p.timings.items()))
        p.close()


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def new_database(pair):
    """A database on the pair's primary with pg_flink, the stack's Flink cluster and a Kafka
    datasource."""
    name = f"failover_{uuid.uuid4().hex[:8]}"
    with pg(pair.primary.port) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    with pg(pair.primary.port, name) as c:
        c.execute("CREATE EXTENSION pg_flink")
        register(c, CLUSTER, KAFKA_DS)
    return name


def new_pipeline(c, prefix):
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    create_filter_pipeline(c, name, KAFKA_DS)
    return name


def identity(c, pipeline):
    """The prefix of the pipeline's Flink job names (instance, database oid and name, pipeline)."""
    return c.execute("SELECT format('pg_flink/%%s/%%s/%%s/%%s/v', s.system_identifier, d.oid, d.datname, %s::text) "
                     "FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()",
                     (pipeline,)).fetchone()[0]


def flink_jobs_named(prefix, live_only=False):
    """(jid, state) of every job the JobManager lists under this name prefix."""
    return sorted((j["jid"], j["state"]) for j in flink_jobs()
                  if j["name"].startswith(prefix) and not (live_only and j["state"] in FLINK_TERMINAL))


def start_and_wait(c, pipeline, timeout=90):
    c.execute("SELECT flink.start(%s)", (pipeline,))
    assert c.execute("SELECT flink.wait(%s, 'running', %s)", (pipeline, f"{timeout} seconds")).fetchone()[0] == "RUNNING"
    return c.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (pipeline,)).fetchone()[0]


def jobs_rows(c, pipeline):
    return [tuple(r) for r in c.execute(
        "SELECT flink_job_id, state FROM flink.jobs WHERE pipeline = %s ORDER BY id", (pipeline,))]


def events(c, pipeline):
    return [tuple(r) for r in c.execute(
        "SELECT from_state, to_state FROM flink.job_events WHERE pipeline = %s ORDER BY id", (pipeline,))]


def status(c, pipeline):
    return tuple(c.execute("SELECT desired, actual, healthy, flink_job_id FROM flink.pipeline_status WHERE pipeline = %s",
                           (pipeline,)).fetchone())


def stop_pipelines(c, pair, *pipelines):
    """flink.stop (cancel) through the SQL API, then until Flink has no live job of the pair."""
    for p in pipelines:
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (p,))
    for p in pipelines:
        c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (p,))
    wait_for("no live Flink job of the pair's instance", lambda: [(j["jid"], j["name"], j["state"]) for j in pair.live_jobs()],
             until=lambda v: v == [], timeout=60)


def wait_worker(inst, db, timeout):
    return wait_for(f"a pg_flink worker for {db} on {inst.name} (port {inst.port})",
                    lambda: try_query(inst.port, "postgres",
                                      "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker' AND datname = %s",
                                      (db,)),
                    until=lambda r: isinstance(r, list) and len(r) == 1, timeout=timeout, interval=0.1)


def promote(pair):
    """pg_ctl promote of the standby; returns the monotonic time the promotion was asked for."""
    t0 = time.monotonic()
    pg_pair("promote", pair.standby.data)
    pair.timings["promote"] = time.monotonic() - t0
    return t0


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------
def test_promoted_standby_adopts_the_running_jobs_and_records_what_happened_during_failover(pair):
    t = time.monotonic()
    pair.start_primary()
    pair.start_standby()
    pair.timings["primary + standby up"] = time.monotonic() - t
    db = new_database(pair)

    with pg(pair.primary.port, db) as c:
        kept, cancelled = new_pipeline(c, "fo_kept"), new_pipeline(c, "fo_cancelled")
        ids = {p: identity(c, p) for p in (kept, cancelled)}
        t = time.monotonic()
        jid = {p: start_and_wait(c, p) for p in (kept, cancelled)}
        pair.timings["two jobs RUNNING"] = time.monotonic() - t
        for p in (kept, cancelled):
            assert flink_jobs_named(ids[p], live_only=True) == [(jid[p], "RUNNING")]
        # Every job Flink lists under each pipeline's name (a submission the gateway refused,
        # retried by the worker, leaves a SUBMIT_FAILED row but no job).
        in_flink = {p: flink_jobs_named(ids[p]) for p in (kept, cancelled)}
    # Positive control of the process check below: the primary runs the launcher and the worker.
    on_primary = pair.primary.pg_flink_processes()
    assert ("pg_flink worker", db) in on_primary["pg_stat_activity"], on_primary
    assert ("pg_flink launcher", "") in on_primary["pg_stat_activity"], on_primary
    assert len(on_primary["ps"]) >= 2, on_primary

    # The standby: the catalog is readable there, and no pg_flink worker or launcher runs.
    pair.wait_replayed()
    with pg(pair.standby.port, db) as s:
        assert s.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        for p in (kept, cancelled):
            assert status(s, p) == ("running", "RUNNING", True, jid[p]), f"{p} on the standby: {status(s, p)}"
        events_before = {p: events(s, p) for p in (kept, cancelled)}
        rows_before = {p: jobs_rows(s, p) for p in (kept, cancelled)}
        for p in (kept, cancelled):
            assert rows_before[p][-1] == (jid[p], "RUNNING"), rows_before[p]
        # Changing a desired state there is refused with a clear reason.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as e:
            s.execute("SELECT flink.stop(%s)", (kept,))
        assert "standby" in str(e.value) and "primary" in e.value.diag.message_hint, str(e.value)
    holds_for("no pg_flink process on the standby", pair.standby.pg_flink_processes,
              must=lambda v: v == {"pg_stat_activity": [], "ps": []}, duration=2)

    # The primary is gone; meanwhile a job changes state in Flink (cancelled from outside).
    pair.primary.kill_9()
    cancel_flink_job(jid[cancelled])
    in_flink[cancelled] = [(j, "CANCELED" if j == jid[cancelled] else st) for j, st in in_flink[cancelled]]
    wait_for(f"Flink reports {jid[cancelled]} CANCELED", lambda: flink_jobs_named(ids[cancelled]),
             until=lambda v: v == in_flink[cancelled], timeout=30)

    t0 = promote(pair)
    wait_worker(pair.standby, db, TAKEOVER_BOUND_S)
    pair.timings["promote -> worker running"] = time.monotonic() - t0
    with pg(pair.standby.port, db) as c:
        # Same instance identity: the jobs are this database's.
        assert str(c.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]) == pair.sysid
        wait_for(f"the cancellation of {cancelled} recorded on the new primary", lambda: events(c, cancelled),
                 until=lambda ev: ev[-1:] == [("RUNNING", "CANCELED")], timeout=TAKEOVER_BOUND_S, interval=0.1)
        pair.timings["promote -> CANCELED recorded"] = time.monotonic() - t0

        # Adopted, not resubmitted: the job rows as replicated (the same Flink job id), the
        # cancelled job's row now CANCELED, nothing new in Flink, and so it stays over many ticks.
        def seen():
            return {"kept jobs": jobs_rows(c, kept), "kept in Flink": flink_jobs_named(ids[kept]),
                    "cancelled jobs": jobs_rows(c, cancelled), "cancelled in Flink": flink_jobs_named(ids[cancelled])}
        expected = {"kept jobs": rows_before[kept], "kept in Flink": in_flink[kept],
                    "cancelled jobs": rows_before[cancelled][:-1] + [(jid[cancelled], "CANCELED")],
                    "cancelled in Flink": in_flink[cancelled]}
        assert [st for _, st in in_flink[kept] if st not in FLINK_TERMINAL] == ["RUNNING"], in_flink
        holds_for("one job per pipeline after the takeover", seen, must=lambda v: v == expected, duration=3)
        assert events(c, kept) == events_before[kept], "the running job was adopted without a transition"
        assert events(c, cancelled) == events_before[cancelled] + [("RUNNING", "CANCELED")]
        assert status(c, kept) == ("running", "RUNNING", True, jid[kept])
        # A job cancelled outside pg_flink is recorded, not resubmitted (as on a primary that never
        # failed over): the pipeline still wants to run and is reported unhealthy until started.
        assert status(c, cancelled) == ("running", "CANCELED", False, jid[cancelled])

        # The new primary serves new requests: starting the pipeline again submits a new job.
        new = start_and_wait(c, cancelled)
        assert new != jid[cancelled]
        assert flink_jobs_named(ids[cancelled], live_only=True) == [(new, "RUNNING")]
        assert flink_jobs_named(ids[kept], live_only=True) == [(jid[kept], "RUNNING")]

        t = time.monotonic()
        stop_pipelines(c, pair, kept, cancelled)
        pair.timings["stop both"] = time.monotonic() - t


def test_changes_the_standby_never_received_are_lost_and_its_desired_state_wins(pair):
    """Asynchronous replication: the standby is stopped (replication cut) while the old primary
    commits a stop and a start and its worker carries both out in Flink; after the failover the
    new primary's catalog is the truth, reconciled with what Flink now runs."""
    pair.start_primary()
    pair.start_standby()
    db = new_database(pair)
    with pg(pair.primary.port, db) as c:
        stop_lost, start_lost = new_pipeline(c, "fo_stop_lost"), new_pipeline(c, "fo_start_lost")
        ids = {p: identity(c, p) for p in (stop_lost, start_lost)}
        jid_stop_lost = start_and_wait(c, stop_lost)
        stop_lost_rows = jobs_rows(c, stop_lost)  # failed submission attempts included
        # Desired stopped (a stop without savepoint) before the cut: never ran yet.
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (start_lost,))
    pair.wait_replayed()
    with pg(pair.standby.port, db) as s:
        events_replicated = events(s, stop_lost)
        assert events_replicated[-1] == ("CREATED", "RUNNING"), events_replicated
    pg_pair("stop", pair.standby.data, "fast")

    with pg(pair.primary.port, db) as c:
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (stop_lost,))
        assert c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (stop_lost,)).fetchone()[0] == "STOPPED"
        jid_start_lost = start_and_wait(c, start_lost)
    assert flink_jobs_named(ids[stop_lost], live_only=True) == []
    stop_lost_in_flink = flink_jobs_named(ids[stop_lost])
    assert (jid_stop_lost, "CANCELED") in stop_lost_in_flink
    pair.primary.kill_9()

    pg_pair("start", pair.standby.data, pair.standby.log)
    t0 = promote(pair)
    wait_worker(pair.standby, db, TAKEOVER_BOUND_S)
    pair.timings["promote -> worker running"] = time.monotonic() - t0
    with pg(pair.standby.port, db) as c:
        # The lost stop: desired is still running. The job the old primary cancelled is recorded
        # CANCELED, and is not submitted again.
        wait_for(f"{stop_lost}: the cancellation recorded", lambda: status(c, stop_lost),
                 until=lambda s: s == ("running", "CANCELED", False, jid_stop_lost), timeout=TAKEOVER_BOUND_S)
        assert events(c, stop_lost) == events_replicated + [("RUNNING", "CANCELED")], \
            "the old primary's STOPPING/STOPPED events were never replicated"
        # The lost start: desired is stopped here, so the job the old primary submitted is stopped
        # (as an untracked live job of a pipeline that should not run), and recorded.
        wait_for(f"{start_lost}: the old primary's job stopped by the new primary",
                 lambda: (status(c, start_lost), flink_jobs_named(ids[start_lost], live_only=True)),
                 until=lambda v: v[0][:2] == ("stopped", "STOPPED") and v[1] == [], timeout=TAKEOVER_BOUND_S)
        pair.timings["promote -> both reconciled"] = time.monotonic() - t0
        # The one row the new primary has of it: the old primary's job, adopted to be stopped.
        assert jobs_rows(c, start_lost) == [(jid_start_lost, "STOPPED")]
        start_lost_in_flink = flink_jobs_named(ids[start_lost])
        assert (jid_start_lost, "CANCELED") in start_lost_in_flink
        holds_for("nothing resubmitted", lambda: (flink_jobs_named(ids[stop_lost]), flink_jobs_named(ids[start_lost]),
                                                  jobs_rows(c, stop_lost)),
                  must=lambda v: v == (stop_lost_in_flink, start_lost_in_flink,
                                       stop_lost_rows[:-1] + [(jid_stop_lost, "CANCELED")]), duration=3)
        assert pair.live_jobs() == []


def test_a_first_start_the_standby_never_received_leaves_no_untracked_job(pair):
    pair.start_primary()
    pair.start_standby()
    db = new_database(pair)
    with pg(pair.primary.port, db) as c:
        never = new_pipeline(c, "fo_first_start_lost")
        prefix = identity(c, never)
    pair.wait_replayed()
    pg_pair("stop", pair.standby.data, "fast")
    with pg(pair.primary.port, db) as c:
        jid = start_and_wait(c, never)
    pair.primary.kill_9()
    pg_pair("start", pair.standby.data, pair.standby.log)
    promote(pair)
    wait_worker(pair.standby, db, TAKEOVER_BOUND_S)
    with pg(pair.standby.port, db) as c:
        # The start never reached the standby: desired stopped. The worker may already be
        # stopping the job it found (a job row it opened for the stop), or have stopped it.
        desired, actual, _, row_jid = status(c, never)
        assert desired == "stopped", status(c, never)
        assert actual in (None, "STOPPING", "STOPPED", "CANCELED") and row_jid in (None, jid), status(c, never)
        wait_for(f"the old primary's job {jid} of {never} (never started on the new primary) stopped",
                 lambda: flink_jobs_named(prefix, live_only=True), until=lambda v: v == [], timeout=20)
        wait_for(f"{never}: the stop recorded", lambda: status(c, never)[1],
                 until=lambda v: v in ("STOPPED", "CANCELED"), timeout=20)
