#!/usr/bin/env python3
"""Metrics-sampling benchmark (issue #16: "metrics sampling for 4 real jobs and for 1000 replayed
pipelines costs < 5% of a core at the default interval"); run against the local stack
(scripts/stack.sh up).

ONE run, ONE dedicated database (--db, created and dropped by this script), so ONE
`pg_flink worker` backend does everything measured here. Two clusters:
- `local`: the stack's real Flink (JobManager + SQL Gateway), running --real Kafka -> Kafka
  filter_alert pipelines;
- `replay`: a JobManager stand-in on loopback, served by this process (control_plane.py's, plus
  the metric endpoints the sampler asks for: src/flink/metrics.rs), listing one RUNNING job per
  replay pipeline.

Scenario B: only the real pipelines. Scenario A: the real ones plus --pipelines replay pipelines.
For each, --rounds rounds of two windows of --window seconds, metrics sampling ON
(pg_flink.metrics_interval_ms = 10000, the default) then OFF (= 0), switched with ALTER SYSTEM +
pg_reload_conf(); per window the worker's CPU (/proc/<pid>/stat utime + stime, all threads) over
wall time = its percent of one core. The cost of sampling is ON - OFF. The poll interval is the
default, 1000 ms, for the whole run.

Usage: benchmarks/metrics.py [--pipelines 1000] [--rounds 5] [--window 30] [--db NAME]
       [--real 4] [--warmup 25] [--settle 3] [--force]
Writes benchmarks/results/metrics.json and prints a table. Cleans up (pipelines stopped, jobs
cancelled, settings reset, database and Kafka topics dropped) on success, failure and Ctrl-C.
"""
import argparse
import collections
import hashlib
import http.server
import json
import os
import pathlib
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import psycopg
import requests

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import control_plane as cp  # noqa: E402  (stack env, stand-in, identity, worker CPU helpers)
from control_plane import ENV, GATEWAY, KAFKA, REST, log  # noqa: E402

DEFAULT_DB = "pg_flink_bench_metrics"
DB_COMMENT = "scratch database of pg_flink benchmarks/metrics.py (dropped when it ends)"
DEFAULT_POLL_MS = 1000      # pg_flink.poll_interval_ms's default (the stack's include file sets 500)
DEFAULT_METRICS_MS = 10000  # pg_flink.metrics_interval_ms's default
SETTINGS = ("pg_flink.poll_interval_ms", "pg_flink.metrics_interval_ms")
REPLAY = "mrp_"   # name prefix of the replay pipelines
REAL = "mreal_"   # name prefix of the real pipelines
CHECKPOINT_EVERY_MS = 10000

# ------------------------------------------------------------------------------------------------
# A vertex's metric listing, as Flink 1.20 gives it (GET /jobs/<jid>/vertices/<vid>/subtasks/metrics)
# for the single chained vertex of a filter_alert job
# ("Source: source[1] -> Calc[2] -> sink[3]: Writer -> sink[3]: Committer"): 299 ids, ~18 KB,
# taken from a real job of the stack ({topic}: the job's input topic).

TASK = """
Shuffle.Netty.Input.Buffers.inPoolUsage Shuffle.Netty.Input.Buffers.inputExclusiveBuffersUsage
Shuffle.Netty.Input.Buffers.inputFloatingBuffersUsage Shuffle.Netty.Input.Buffers.inputQueueLength
Shuffle.Netty.Input.Buffers.inputQueueSize Shuffle.Netty.Input.numBuffersInLocal
Shuffle.Netty.Input.numBuffersInLocalPerSecond Shuffle.Netty.Input.numBuffersInRemote
Shuffle.Netty.Input.numBuffersInRemotePerSecond Shuffle.Netty.Input.numBytesInLocal
Shuffle.Netty.Input.numBytesInLocalPerSecond Shuffle.Netty.Input.numBytesInRemote
Shuffle.Netty.Input.numBytesInRemotePerSecond Shuffle.Netty.Output.Buffers.outPoolUsage
Shuffle.Netty.Output.Buffers.outputQueueLength Shuffle.Netty.Output.Buffers.outputQueueSize
accumulateBackPressuredTimeMs accumulateBusyTimeMs accumulateIdleTimeMs backPressuredTimeMsPerSecond
buffers.inPoolUsage buffers.inputExclusiveBuffersUsage buffers.inputFloatingBuffersUsage
buffers.inputQueueLength buffers.inputQueueSize buffers.outPoolUsage buffers.outputQueueLength
buffers.outputQueueSize busyTimeMsPerSecond changelogBusyTimeMsPerSecond checkpointStartDelayNanos
hardBackPressuredTimeMsPerSecond idleTimeMsPerSecond initializationTime isBackPressured mailboxLatencyMs_max
mailboxLatencyMs_mean mailboxLatencyMs_median mailboxLatencyMs_min mailboxLatencyMs_p75 mailboxLatencyMs_p90
mailboxLatencyMs_p95 mailboxLatencyMs_p98 mailboxLatencyMs_p99 mailboxLatencyMs_p999 mailboxLatencyMs_stddev
mailboxMailsPerSecond mailboxQueueSize maxHardBackPressureTimeMs maxSoftBackPressureTimeMs numBuffersInLocal
numBuffersInLocalPerSecond numBuffersInRemote numBuffersInRemotePerSecond numBuffersOut numBuffersOutPerSecond
numBytesIn numBytesInLocal numBytesInLocalPerSecond numBytesInPerSecond numBytesInRemote
numBytesInRemotePerSecond numBytesOut numBytesOutPerSecond numFiredTimers numFiredTimersPerSecond numRecordsIn
numRecordsInPerSecond numRecordsOut numRecordsOutPerSecond softBackPressuredTimeMsPerSecond
""".split()
SRC = """
currentEmitEventTimeLag currentOutputWatermark numBytesIn numBytesInPerSecond numBytesOut numBytesOutPerSecond
numRecordsIn numRecordsInErrors numRecordsInPerSecond numRecordsOut numRecordsOutPerSecond pendingRecords
sourceIdleTime
""".split()
SRC_READER = """
commitsFailed commitsSucceeded topic.{topic}.partition.0.committedOffset
topic.{topic}.partition.0.currentOffset
""".split()
SRC_CONSUMER = """
assigned-partitions bytes-consumed-rate bytes-consumed-total commit-id commit-latency-avg commit-latency-max
commit-rate commit-sync-time-ns-total commit-total committed-time-ns-total connection-close-rate
connection-close-total connection-count connection-creation-rate connection-creation-total count
failed-authentication-rate failed-authentication-total failed-reauthentication-rate
failed-reauthentication-total failed-rebalance-rate-per-hour failed-rebalance-total fetch-latency-avg
fetch-latency-max fetch-rate fetch-size-avg fetch-size-max fetch-throttle-time-avg fetch-throttle-time-max
fetch-total heartbeat-rate heartbeat-response-time-max heartbeat-total incoming-byte-rate incoming-byte-total
io-ratio io-time-ns-avg io-time-ns-total io-wait-ratio io-wait-time-ns-avg io-wait-time-ns-total
io-waittime-total iotime-total join-rate join-time-avg join-time-max join-total last-heartbeat-seconds-ago
last-poll-seconds-ago last-rebalance-seconds-ago network-io-rate network-io-total outgoing-byte-rate
outgoing-byte-total partition-assigned-latency-avg partition-assigned-latency-max partition-lost-latency-avg
partition-lost-latency-max partition-revoked-latency-avg partition-revoked-latency-max poll-idle-ratio-avg
reauthentication-latency-avg reauthentication-latency-max rebalance-latency-avg rebalance-latency-max
rebalance-latency-total rebalance-rate-per-hour rebalance-total records-consumed-rate records-consumed-total
records-lag-max records-lead-min records-per-request-avg request-rate request-size-avg request-size-max
request-total response-rate response-total select-rate select-total start-time-ms
successful-authentication-no-reauth-total successful-authentication-rate successful-authentication-total
successful-reauthentication-rate successful-reauthentication-total sync-rate sync-time-avg sync-time-max
sync-total time-between-poll-avg time-between-poll-max version
""".split()
CALC = """
currentInputWatermark currentOutputWatermark numBytesIn numBytesInPerSecond numBytesOut numBytesOutPerSecond
numRecordsIn numRecordsInPerSecond numRecordsOut numRecordsOutPerSecond
""".split()
WRITER = """
currentInputWatermark currentOutputWatermark currentSendTime numBytesIn numBytesInPerSecond
numBytesOutPerSecond numBytesSend numRecordsIn numRecordsInPerSecond numRecordsOutPerSecond numRecordsSend
numRecordsSendErrors
""".split()
PRODUCER = """
batch-size-avg batch-size-max batch-split-rate batch-split-total buffer-available-bytes buffer-exhausted-rate
buffer-exhausted-total buffer-total-bytes bufferpool-wait-ratio bufferpool-wait-time-ns-total
bufferpool-wait-time-total commit-id compression-rate-avg connection-close-rate connection-close-total
connection-count connection-creation-rate connection-creation-total count failed-authentication-rate
failed-authentication-total failed-reauthentication-rate failed-reauthentication-total flush-time-ns-total
incoming-byte-rate incoming-byte-total io-ratio io-time-ns-avg io-time-ns-total io-wait-ratio
io-wait-time-ns-avg io-wait-time-ns-total io-waittime-total iotime-total metadata-age
metadata-wait-time-ns-total network-io-rate network-io-total outgoing-byte-rate outgoing-byte-total
produce-throttle-time-avg produce-throttle-time-max reauthentication-latency-avg reauthentication-latency-max
record-error-rate record-error-total record-queue-time-avg record-queue-time-max record-retry-rate
record-retry-total record-send-rate record-send-total record-size-avg record-size-max records-per-request-avg
request-latency-avg request-latency-max request-rate request-size-avg request-size-max request-total
requests-in-flight response-rate response-total select-rate select-total start-time-ms
successful-authentication-no-reauth-total successful-authentication-rate successful-authentication-total
successful-reauthentication-rate successful-reauthentication-total txn-abort-time-ns-total
txn-begin-time-ns-total txn-commit-time-ns-total txn-init-time-ns-total txn-send-offsets-time-ns-total version
waiting-threads
""".split()
COMMITTER = """
alreadyCommittedCommittables currentInputWatermark currentOutputWatermark failedCommittables numBytesIn
numBytesInPerSecond numBytesOut numBytesOutPerSecond numRecordsIn numRecordsInPerSecond numRecordsOut
numRecordsOutPerSecond pendingCommittables retriedCommittables successfulCommittables totalCommittables
""".split()


def listing_template():
    ids = (TASK + [f"Source__source[1].{x}" for x in SRC]
           + [f"Source__source[1].KafkaSourceReader.{x}" for x in SRC_READER]
           + [f"Source__source[1].KafkaSourceReader.KafkaConsumer.{x}" for x in SRC_CONSUMER]
           + [f"Calc[2].{x}" for x in CALC] + [f"sink[3]__Writer.{x}" for x in WRITER]
           + [f"sink[3]__Writer.KafkaProducer.{x}" for x in PRODUCER] + [f"sink[3]__Committer.{x}" for x in COMMITTER])
    random.Random(16).shuffle(ids)  # Flink lists them in hash order
    return ids


LISTING = listing_template()
KNOWN_IDS = frozenset(i for i in LISTING if "{topic}" not in i)
VERTEX_NAME = "Source: source[1] -> Calc[2] -> sink[3]: Writer -> sink[3]: Committer"


def metric_value(rng, metric_id):
    """A plausible value of one metric of a parallelism-1 vertex (so sum == max)."""
    name = metric_id.rsplit(".", 1)[-1]
    if name == "pendingRecords":
        return float(rng.choice((0, 0, rng.randint(1, 5000))))
    if name == "currentEmitEventTimeLag":
        return float(rng.randint(5, 3000))
    if name in ("backPressuredTimeMsPerSecond", "hardBackPressuredTimeMsPerSecond", "softBackPressuredTimeMsPerSecond"):
        return rng.choice((0.0, 0.0, 0.0, round(rng.uniform(0, 400), 1)))
    if name.endswith("PerSecond"):
        return round(rng.uniform(0, 2000), 3)
    return float(rng.randint(0, 100000))


# ------------------------------------------------------------------------------------------------
# The stand-in: control_plane's (GET /jobs/overview, /overview, per job /jobs/<id>,
# /jobs/<id>/metrics?get=numRestarts, /jobs/<id>/exceptions, savepoints, stop, cancel) with what the
# metrics sampler asks besides:
#   GET /jobs/<jid>                                     one vertex (its id: md5 of the jid)
#   GET /jobs/<jid>/vertices/<vid>/subtasks/metrics     the listing above       (kind vertex_metric_listing)
#   GET …/subtasks/metrics?get=<ids>&agg=sum,max        [{id, max, sum}]         (kind vertex_metrics)
#   GET /jobs/<jid>/checkpoints                         counts, summary, latest, 10 history entries
# Every answer is counted by kind; the times of the vertex_metrics answers are kept (rounds).

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the sampler opens 8 connections at once every round


class MetricsHandler(cp.Handler):
    def do_GET(self):  # noqa: N802
        s = self.server.standin
        path, _, query = self.path.partition("?")
        p = path.strip("/").split("/")
        if len(p) >= 3 and p[0] == "jobs" and p[1] in s.names:
            jid = p[1]
            if len(p) == 6 and p[2] == "vertices" and p[4:] == ["subtasks", "metrics"]:
                self.parts()
                if p[3] != s.vertex_of(jid):
                    return self.reply("not_found", 404, cp.NOT_FOUND)
                q = urllib.parse.parse_qs(query)
                if "get" not in q:
                    return self.reply("vertex_metric_listing", 200, s.listing(jid))
                ids = [i for g in q["get"] for i in g.split(",") if i]
                return self.reply("vertex_metrics", 200, s.aggregates(ids))
            if p[2:] == ["checkpoints"]:
                self.parts()
                return self.reply("checkpoints", 200, s.checkpoints(jid))
        return super().do_GET()

    def reply(self, kind, code, data):
        if kind == "vertex_metrics":
            self.server.standin.sampled_at.append(time.monotonic())
        return super().reply(kind, code, data)


class MetricsStandIn(cp.StandIn):
    def __init__(self):  # cp.StandIn.__init__, with this handler and a deeper accept queue
        self.lock = threading.Lock()
        self.body, self.names, self.started_ms = cp.EMPTY, {}, 0
        self.counts = collections.Counter()
        self.overview_at = []
        self.sampled_at = []  # time.monotonic() of every vertex_metrics answer
        self.topics = {}      # jid -> input topic of the job
        self.listings_at_publish = 0
        self.srv = Server(("127.0.0.1", 0), MetricsHandler)
        self.srv.standin = self
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def publish_jobs(self, jobs):
        """jobs: [(jid, job name, input topic)], listed RUNNING from now on."""
        self.topics = {jid: topic for jid, _, topic in jobs}
        self.listings_at_publish = self.snapshot()["vertex_metric_listing"]
        return self.publish([(jid, name) for jid, name, _ in jobs])

    @staticmethod
    def vertex_of(jid):
        return hashlib.md5(jid.encode()).hexdigest()

    def detail(self, jid):
        d = json.loads(super().detail(jid))
        now = int(time.time() * 1000)
        d["vertices"] = [{
            "id": self.vertex_of(jid), "slotSharingGroupId": self.vertex_of("ssg" + jid), "name": VERTEX_NAME,
            "maxParallelism": 128, "parallelism": 1, "status": "RUNNING", "start-time": self.started_ms,
            "end-time": -1, "duration": now - self.started_ms,
            "tasks": {"CANCELED": 0, "INITIALIZING": 0, "CANCELING": 0, "FINISHED": 0, "DEPLOYING": 0,
                      "SCHEDULED": 0, "RUNNING": 1, "RECONCILING": 0, "CREATED": 0, "FAILED": 0},
            "metrics": {"read-bytes": 0, "read-bytes-complete": True, "write-bytes": 0, "write-bytes-complete": True,
                        "read-records": 0, "read-records-complete": True, "write-records": 0,
                        "write-records-complete": True, "accumulated-backpressured-time": 0,
                        "accumulated-idle-time": now - self.started_ms, "accumulated-busy-time": 589.0}}]
        return json.dumps(d).encode()

    def listing(self, jid):
        topic = self.topics.get(jid, "topic")
        return json.dumps([{"id": i.replace("{topic}", topic)} for i in LISTING], separators=(",", ":")).encode()

    @staticmethod
    def aggregates(ids):
        rng = random.Random()
        out = []
        for i in ids:
            if i in KNOWN_IDS:  # unknown ids are left out, as Flink does
                v = metric_value(rng, i)
                out.append({"id": i, "max": v, "sum": v})
        return json.dumps(out, separators=(",", ":")).encode()

    def checkpoints(self, jid):
        now = int(time.time() * 1000)
        # As if the job had been checkpointing for 10 minutes before the stand-in listed it.
        base = self.started_ms - 600_000 - int(jid[:4], 16) % CHECKPOINT_EVERY_MS
        done = (now - base) // CHECKPOINT_EVERY_MS + 1

        def entry(k, discarded):
            t = base + (k - 1) * CHECKPOINT_EVERY_MS
            return {"className": "completed", "id": k, "status": "COMPLETED", "is_savepoint": False,
                    "savepointFormat": None, "trigger_timestamp": t, "latest_ack_timestamp": t + 6,
                    "checkpointed_size": 857, "state_size": 857, "end_to_end_duration": 6, "alignment_buffered": 0,
                    "processed_data": 0, "persisted_data": 0, "num_subtasks": 1, "num_acknowledged_subtasks": 1,
                    "checkpoint_type": "CHECKPOINT", "tasks": {},
                    "external_path": f"file:/tmp/pg_flink-replay/checkpoints/{jid}/chk-{k}", "discarded": discarded}

        def stats(v):
            return {"min": v, "max": v, "avg": v, "p50": float(v), "p90": float(v), "p95": float(v), "p99": float(v),
                    "p999": float(v)}

        body = {"counts": {"restored": 0, "total": done, "in_progress": 0, "completed": done, "failed": 0},
                "summary": {"checkpointed_size": stats(857), "state_size": stats(857), "end_to_end_duration": stats(6),
                            "alignment_buffered": stats(0), "processed_data": stats(0), "persisted_data": stats(0)},
                "latest": {"completed": entry(done, False), "savepoint": None, "failed": None, "restored": None},
                "history": [entry(k, k != done) for k in range(done, max(0, done - 10), -1)]}
        return json.dumps(body, separators=(",", ":")).encode()

    def rounds_between(self, t0, t1, gap=2.0):
        """Bursts of vertex_metrics answers in [t0, t1) (a gap > `gap` s splits): their durations."""
        ts = [t for t in list(self.sampled_at) if t0 <= t < t1]
        bursts, start, last = [], None, None
        for t in ts:
            if start is None:
                start = last = t
            elif t - last > gap:
                bursts.append(last - start)
                start = last = t
            else:
                last = t
        if start is not None:
            bursts.append(last - start)
        return bursts


# ------------------------------------------------------------------------------------------------
# Postgres: connections that survive one restart, settings, the database.

def dsn(db):
    return f"host={ENV['PGHOST']} port={ENV['PGPORT']} user={ENV['PGUSER']} dbname={db}"


def wait_postgres(timeout=180):
    deadline = time.time() + timeout
    while True:
        try:
            with psycopg.connect(dsn("postgres"), autocommit=True, connect_timeout=5) as c:
                c.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(2)


class Pg:
    """An autocommit connection to one database; a statement that fails because the connection
    broke (Postgres restarting) is retried once on a new connection."""

    def __init__(self, db):
        self.db, self.c = db, None

    def conn(self):
        if self.c is None or self.c.closed or self.c.broken:
            self.c = psycopg.connect(dsn(self.db), autocommit=True, connect_timeout=10)
        return self.c

    def q(self, sql, params=None):
        try:
            return self.conn().execute(sql, params)
        except psycopg.OperationalError as e:
            if self.c is not None and not self.c.broken and not self.c.closed:
                raise  # an error of the statement, not of the connection
            log(f"connection to {self.db} lost ({str(e).strip()[:120]}); waiting for Postgres, then retrying once")
            self.close()
            wait_postgres()
            return self.conn().execute(sql, params)

    def one(self, sql, params=None):
        return self.q(sql, params).fetchone()

    def close(self):
        try:
            if self.c is not None:
                self.c.close()
        except Exception:  # noqa: BLE001
            pass
        self.c = None


def set_system(admin, values):
    """ALTER SYSTEM SET (None: RESET) + pg_reload_conf()."""
    for name, value in values.items():
        if value is None:
            admin.q(f"ALTER SYSTEM RESET {name}")
        else:
            admin.q(f"ALTER SYSTEM SET {name} = {int(value)}")
    admin.q("SELECT pg_reload_conf()")


def auto_conf(admin):
    """Our settings as postgresql.auto.conf has them now (None: not set there)."""
    rows = admin.q("SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%postgresql.auto.conf'"
                   " AND name = ANY (%s)", (list(SETTINGS),)).fetchall()
    got = dict(rows)
    return {n: got.get(n) for n in SETTINGS}


def wait_setting(pg, name, expect, timeout=10):
    """Waits for this session to see `expect` after a reload; the value in effect (raw ms)."""
    deadline = time.time() + timeout
    while True:
        v = int(pg.one("SELECT setting FROM pg_settings WHERE name = %s", (name,))[0])
        if v == expect or time.time() > deadline:
            return v
        time.sleep(0.2)


def git_info():
    def git(*a):
        return subprocess.run(["git", "-C", str(HERE.parent), *a], capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s")[:120],
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine_info():
    model = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = int(next(x for x in open("/proc/meminfo") if x.startswith("MemTotal")).split()[1]) // 1024
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "memory_mib": mem, "loadavg_at_start": os.getloadavg()}


def library_info():
    so = pathlib.Path("/usr/lib/postgresql/15/lib/pg_flink.so")
    try:
        st = so.stat()
        h = hashlib.md5()
        with open(so, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return {"path": str(so), "bytes": st.st_size, "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)),
                "md5": h.hexdigest(), "note": "the stack does not record the build profile (debug or release)"}
    except OSError as e:
        return {"error": str(e)}


def drop_database(admin, name):
    """Drops a database this script created (its comment says so); refuses any other."""
    row = admin.one("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,))
    if row is None:
        return False
    if row[0] != DB_COMMENT:
        raise SystemExit(f"database {name!r} exists and was not created by this script; pick another --db")
    admin.q(f'DROP DATABASE "{name}" WITH (FORCE)')
    return True


def delete_topics(topics):
    if not topics:
        return
    try:
        from confluent_kafka.admin import AdminClient
        client = AdminClient({"bootstrap.servers": KAFKA})  # kept: the futures fail once it is gone
        fs = client.delete_topics(sorted(topics), operation_timeout=30)
        gone, errors = 0, []
        for t, f in fs.items():
            try:
                f.result(timeout=30)
                gone += 1
            except Exception as e:  # noqa: BLE001 (e.g. a topic that was never created)
                errors.append(f"{t}: {e}")
        log(f"deleted {gone} of {len(topics)} Kafka topic(s)" + (f"; not deleted: {'; '.join(errors)}" if errors else ""))
    except Exception as e:  # noqa: BLE001
        log(f"WARNING: deleting Kafka topics failed: {e}")


# ------------------------------------------------------------------------------------------------
# Measurement

def worker_pid(pg):
    """The pid of this database's worker (None unless exactly one), and all of them."""
    pids = [r[0] for r in pg.q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker'"
                               " AND datname = current_database() ORDER BY pid").fetchall()]
    return pids[0] if len(pids) == 1 else None, pids


def sampling_quiet(standin, quiet_s=1.5, timeout=30):
    """Waits until the stand-in got no vertex_metrics request for `quiet_s` (a round started before
    OFF finishes in the background); the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        last = standin.sampled_at[-1] if standin.sampled_at else 0
        if time.monotonic() - last >= quiet_s:
            break
        time.sleep(0.2)
    return round(time.monotonic() - t0, 2)


def window(pg, admin, standin, mode, expect_ms, seconds):
    """One measured window. Returns its record; 'valid' False (with 'invalid') when the worker's pid
    changed, the connection broke, or the setting in postgresql.auto.conf was not ours."""
    rec = {"mode": mode, "metrics_interval_ms": expect_ms, "valid": True}
    try:
        pid0, pids0 = worker_pid(pg)
        conf0 = auto_conf(admin)["pg_flink.metrics_interval_ms"]
        w0, m0, self0, req0 = time.time(), time.monotonic(), os.times(), standin.snapshot()
        cpu0 = cp.cpu_seconds(pid0) if pid0 else None
        time.sleep(seconds)
        cpu1 = cp.cpu_seconds(pid0) if pid0 else None
        w1, m1, self1, req1 = time.time(), time.monotonic(), os.times(), standin.snapshot()
        pid1, pids1 = worker_pid(pg)
        conf1 = auto_conf(admin)["pg_flink.metrics_interval_ms"]
        rounds, samples = pg.one(
            "SELECT count(DISTINCT sampled_at), count(*) FROM flink.pipeline_metric_history"
            " WHERE sampled_at >= to_timestamp(%s) AND sampled_at < to_timestamp(%s)", (w0, w1))
    except (psycopg.OperationalError, FileNotFoundError, ProcessLookupError) as e:
        rec.update(valid=False, invalid=f"{type(e).__name__}: {str(e).strip()[:160]}")
        return rec
    dt = m1 - m0
    reqs = {k: req1[k] - req0[k] for k in sorted(set(req1) | set(req0)) if req1[k] - req0[k]}
    bursts = standin.rounds_between(m0, m1)
    rec.update({
        "start": time.strftime("%H:%M:%S", time.localtime(w0)), "seconds": round(dt, 2), "worker_pid": pid0,
        "cpu_percent": round(100 * (cpu1 - cpu0) / dt, 3) if pid0 and cpu1 is not None else None,
        "benchmark_process_cpu_percent": round(100 * ((self1.user + self1.system) - (self0.user + self0.system)) / dt, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "rounds_recorded": rounds, "samples_recorded": samples,
        "stand_in_requests": reqs, "stand_in_requests_per_s": round(sum(reqs.values()) / dt, 2),
        "stand_in_round_bursts": len(bursts), "stand_in_round_seconds_max": round(max(bursts), 3) if bursts else None,
    })
    expect_conf = str(expect_ms)
    if pid0 is None or pid0 != pid1:
        rec.update(valid=False, invalid=f"worker pid changed or not unique: {pids0} -> {pids1}")
    elif conf0 != expect_conf or conf1 != expect_conf:
        rec.update(valid=False, invalid=f"pg_flink.metrics_interval_ms in postgresql.auto.conf was {conf0} / {conf1},"
                                        f" not {expect_conf} (another run changed it?)")
    elif mode == "off" and (rounds or reqs.get("vertex_metrics")):
        rec.update(valid=False, invalid=f"sampling seen while OFF ({rounds} rounds recorded, "
                                        f"{reqs.get('vertex_metrics', 0)} vertex metric requests)")
    return rec


def stats(xs, digits=3):
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"n": 0, "min": None, "median": None, "max": None}
    return {"n": len(xs), "min": round(min(xs), digits), "median": round(statistics.median(xs), digits),
            "max": round(max(xs), digits)}


def switch(pg, admin, standin, on, a):
    """Sampling on (the default interval) or off; waits for it to apply; returns the interval."""
    ms = a.metrics_interval_ms if on else 0
    set_system(admin, {"pg_flink.metrics_interval_ms": ms})
    seen = wait_setting(pg, "pg_flink.metrics_interval_ms", ms)
    if seen != ms:
        log(f"WARNING: pg_flink.metrics_interval_ms is {seen} in a new session, not {ms}")
    waited = 0.0 if on else sampling_quiet(standin)
    time.sleep(a.settle)
    return ms, waited


def scenario(name, label, pg, admin, standin, a, jobs):
    """Warm-up with sampling ON, then rounds of (ON window, OFF window)."""
    log(f"=== scenario {name}: {label} ===")
    switch(pg, admin, standin, True, a)
    log(f"warm-up {a.warmup:.0f} s, sampling ON (first rounds fetch every job's metric listing; not measured)")
    pid, _ = worker_pid(pg)
    m0 = time.monotonic()
    c0 = cp.cpu_seconds(pid) if pid else None
    time.sleep(a.warmup)
    # Replay jobs: wait (bounded) for every job's listing to have been fetched (once per job).
    want = jobs["replay"]

    def listed_now():
        return standin.snapshot()["vertex_metric_listing"] - standin.listings_at_publish
    deadline = time.monotonic() + max(60, a.warmup)
    while want and listed_now() < want and time.monotonic() < deadline:
        time.sleep(1)
    listed = listed_now()
    warm = {"seconds": round(time.monotonic() - m0, 1), "replay_listings_fetched": listed}
    try:
        pid1, _ = worker_pid(pg)
        if pid and pid1 == pid:
            warm["cpu_percent"] = round(100 * (cp.cpu_seconds(pid) - c0) / (time.monotonic() - m0), 3)
    except (psycopg.OperationalError, FileNotFoundError):
        pass
    log(f"warm-up: worker {warm.get('cpu_percent')} % of a core" + (f"; {listed} of {want} replay jobs' metric listings"
                                                                     f" fetched" if want else ""))
    if want and listed < want:
        log(f"WARNING: only {listed} of {want} replay jobs had their metric listing fetched during the warm-up")

    windows, invalid, r = [], 0, 0
    while r < a.rounds:
        pair = []
        for mode in ("on", "off"):
            ms, waited = switch(pg, admin, standin, mode == "on", a)
            w = window(pg, admin, standin, mode, ms, a.window)
            w["round"], w["quiet_wait_s"] = r + 1, waited
            pair.append(w)
            if w["valid"]:
                log(f"{name} round {r + 1}/{a.rounds} {mode.upper():3}: worker {w['cpu_percent']} % of a core,"
                    f" {w['rounds_recorded']} sampling round(s) recorded ({w['samples_recorded']} samples),"
                    f" stand-in {w['stand_in_requests_per_s']} req/s, this process {w['benchmark_process_cpu_percent']} %,"
                    f" load {w['loadavg_1m']}")
            else:
                log(f"{name} round {r + 1}/{a.rounds} {mode.upper()}: INVALID window ({w['invalid']})")
        windows.extend(pair)
        if all(w["valid"] for w in pair):
            r += 1
        else:
            invalid += 1
            if invalid > max(2, a.rounds):
                raise RuntimeError(f"scenario {name}: {invalid} invalid rounds; giving up")
            log(f"{name}: round {r + 1} is measured again")
            if any("pid" in w.get("invalid", "") or "Error" in w.get("invalid", "") for w in pair):
                # A new worker (Postgres restarted?) fetches every job's metric listing again.
                switch(pg, admin, standin, True, a)
                log(f"{name}: warm-up {a.warmup:.0f} s again (new worker)")
                time.sleep(a.warmup)
    return summarize(name, label, jobs, a, warm, windows)


def summarize(name, label, jobs, a, warm, windows):
    ok = [w for w in windows if w["valid"]]
    on = [w for w in ok if w["mode"] == "on"]
    off = [w for w in ok if w["mode"] == "off"]
    on_cpu, off_cpu = [w["cpu_percent"] for w in on], [w["cpu_percent"] for w in off]
    pairs = collections.defaultdict(dict)
    for w in ok:
        pairs[w["round"]][w["mode"]] = w["cpu_percent"]
    paired = [p["on"] - p["off"] for p in pairs.values() if "on" in p and "off" in p
              and p["on"] is not None and p["off"] is not None]
    on_s, off_s = stats(on_cpu), stats(off_cpu)
    cost = round(on_s["median"] - off_s["median"], 3) if on_s["n"] and off_s["n"] else None
    n_jobs = jobs["real_running"] + jobs["replay"]
    rounds_per_window = stats([w["rounds_recorded"] for w in on], 2)
    kinds = sorted({k for w in on + off for k in w["stand_in_requests"]})

    def per_s(ws, k):
        return stats([w["stand_in_requests"].get(k, 0) / w["seconds"] for w in ws], 2)["median"]

    # CPU of one sampling round: the cost per second times the seconds per round.
    round_ms = (cost / 100 * a.metrics_interval_ms) if cost is not None else None
    return {
        "scenario": name, "label": label, "jobs": jobs,
        "warmup": warm, "rounds": len(paired), "invalid_windows": len(windows) - len(ok),
        "cpu_percent_of_one_core": {"on": on_s, "off": off_s},
        "sampling_cost_percent": {"median_on_minus_median_off": cost, "paired_on_minus_off": stats(paired)},
        "sampling_cpu_ms_per_round": round(round_ms, 2) if round_ms is not None else None,
        "sampling_cpu_us_per_job_per_round": round(1000 * round_ms / n_jobs, 1) if round_ms is not None and n_jobs else None,
        "rounds_recorded_per_on_window": rounds_per_window,
        "samples_recorded_per_on_window": stats([w["samples_recorded"] for w in on], 1),
        "stand_in_requests_per_s": {"on": stats([w["stand_in_requests_per_s"] for w in on], 2),
                                    "off": stats([w["stand_in_requests_per_s"] for w in off], 2),
                                    "on_by_kind_median": {k: per_s(on, k) for k in kinds},
                                    "off_by_kind_median": {k: per_s(off, k) for k in kinds}},
        "stand_in_round_seconds_max": stats([w["stand_in_round_seconds_max"] for w in on]),
        "benchmark_process_cpu_percent": {"on": stats([w["benchmark_process_cpu_percent"] for w in on], 2),
                                          "off": stats([w["benchmark_process_cpu_percent"] for w in off], 2)},
        "meets_target": cost is not None and cost < 5,
        "windows": windows,
    }


# ------------------------------------------------------------------------------------------------
# Set-up

def start_real(pg, ident, a, topics):
    """--real filter_alert pipelines on `local`, started and waited for (all tasks running)."""
    from confluent_kafka import Producer
    names = [REAL + uuid.uuid4().hex[:8] for _ in range(a.real)]
    producer = Producer({"bootstrap.servers": KAFKA})
    for n in names:
        topics.update((f"{n}_in", f"{n}_out"))
        producer.produce(f"{n}_in", b'{"n": 1}')
    producer.flush(10)
    free = requests.get(f"{REST}/overview", timeout=10).json().get("slots-available")
    if free is not None and free < a.real:
        log(f"WARNING: the real cluster has {free} free slot(s) for {a.real} real pipeline(s); "
            f"the others will wait for slots (their jobs stay RUNNING with SCHEDULED tasks)")
    for n in names:
        pg.q("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
             (n, cp.filter_params(f"{n}_in", f"{n}_out"), json.dumps({"cluster": "local"})))
        pg.q("SELECT flink.start(%s)", (n,))
    log(f"started {len(names)} real pipeline(s): {', '.join(names)}; waiting for their jobs (at most {a.real_timeout:.0f} s)")
    deadline, shown = time.time() + a.real_timeout, time.time()
    running = []
    while True:
        rows = dict(pg.q("SELECT pipeline, flink_job_id FROM flink.jobs WHERE pipeline = ANY (%s) AND state = 'RUNNING'",
                         (names,)).fetchall())
        overview = {j["jid"]: j for j in requests.get(f"{REST}/jobs/overview", timeout=10).json()["jobs"]}
        running = [n for n, jid in rows.items()
                   if jid in overview and overview[jid]["tasks"]["running"] == overview[jid]["tasks"]["total"]]
        if len(running) == len(names) or time.time() > deadline:
            break
        if time.time() - shown > 15:
            shown = time.time()
            log(f"real jobs: {len(rows)} RUNNING in flink.jobs, {len(running)} with all tasks running")
        time.sleep(1)
    if len(running) < len(names):
        log(f"WARNING: only {len(running)} of {len(names)} real job(s) have all tasks running; going on")
    else:
        log(f"all {len(names)} real job(s) running")
    return names, running


def start_replay(pg, ident, standin, n):
    """n replay pipelines created and started in one transaction; the stand-in lists their jobs
    just before it commits (control_plane.py's adoption); waits until all are RUNNING rows."""
    names = [f"{REPLAY}{i:05d}" for i in range(n)]
    opts = json.dumps({"cluster": "replay"})
    c = pg.conn()
    t0 = time.time()
    with c.transaction():
        c.cursor().executemany("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
                               [(name, cp.filter_params(f"{name}_in", f"{name}_out"), opts) for name in names])
        c.cursor().executemany("SELECT flink.start(%s)", [(name,) for name in names])
        versions = dict(c.execute("SELECT name, version FROM flink.pipelines WHERE starts_with(name, %s)",
                                  (REPLAY,)).fetchall())
        body = standin.publish_jobs([(uuid.uuid4().hex, ident.job_name(name, versions[name]), f"{name}_in")
                                     for name in names])
    committed = time.time()
    log(f"created and started {n} replay pipelines in {committed - t0:.1f} s; the stand-in lists {n} jobs"
        f" ({body / 1e6:.2f} MB)")
    shown = committed
    while (running := pg.one("SELECT count(*) FROM flink.jobs WHERE starts_with(pipeline, %s) AND state = 'RUNNING'",
                             (REPLAY,))[0]) < n:
        if time.time() - committed > 600:
            raise RuntimeError(f"adoption: {running} of {n} replay jobs RUNNING after 600 s")
        if time.time() - shown > 10:
            shown = time.time()
            log(f"adoption: {running} of {n} RUNNING")
        time.sleep(0.5)
    adopt = time.time() - committed
    log(f"all {n} replay jobs adopted {adopt:.2f} s after the commit")
    return round(adopt, 2)


# ------------------------------------------------------------------------------------------------

def print_table(out):
    print()
    print(f"Metrics sampling cost, {out['settings']['window_s']:.0f} s windows, pg_flink.metrics_interval_ms "
          f"{out['settings']['metrics_interval_ms']} (ON) vs 0 (OFF), poll interval "
          f"{out['settings']['poll_interval_ms_effective']} ms, {out['machine']['cores']} cores,"
          f" commit {out['git']['commit'][:10]}{' (dirty)' if out['git']['dirty'] else ''}")
    head = ("scenario", "jobs (real+replay)", "ON % min/med/max", "OFF % min/med/max", "cost % (med-med)",
            "paired ON-OFF % min/med/max", "rounds/win", "stand-in req/s ON (OFF)", "< 5 %")
    rows = []
    for s in out["scenarios"]:
        on, off = s["cpu_percent_of_one_core"]["on"], s["cpu_percent_of_one_core"]["off"]
        pd = s["sampling_cost_percent"]["paired_on_minus_off"]
        f = lambda d: "/".join("-" if d[k] is None else f"{d[k]:.2f}" for k in ("min", "median", "max"))  # noqa: E731
        rq = s["stand_in_requests_per_s"]
        rows.append((f"{s['scenario']}: {s['label']}",
                     f"{s['jobs']['real_running']}+{s['jobs']['replay']} ({s['jobs']['real']} real started)",
                     f(on), f(off), "-" if s["sampling_cost_percent"]["median_on_minus_median_off"] is None
                     else f"{s['sampling_cost_percent']['median_on_minus_median_off']:.2f}", f(pd),
                     "-" if s["rounds_recorded_per_on_window"]["median"] is None
                     else f"{s['rounds_recorded_per_on_window']['median']:g}",
                     f"{rq['on']['median']} ({rq['off']['median']})", "yes" if s["meets_target"] else "NO"))
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
    for s in out["scenarios"]:
        print(f"{s['scenario']}: sampling CPU per round {s['sampling_cpu_ms_per_round']} ms"
              f" ({s['sampling_cpu_us_per_job_per_round']} µs per job); stand-in requests/s ON by kind "
              f"{s['stand_in_requests_per_s']['on_by_kind_median']}; benchmark process CPU ON "
              f"{s['benchmark_process_cpu_percent']['on']['median']} %; invalid windows {s['invalid_windows']}")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipelines", type=int, default=1000, help="replay pipelines of scenario A (default 1000)")
    ap.add_argument("--rounds", type=int, default=5, help="ON/OFF window pairs per scenario (default 5)")
    ap.add_argument("--window", type=float, default=30, help="seconds per measured window (default 30)")
    ap.add_argument("--db", default=DEFAULT_DB, help=f"database to create and drop (default {DEFAULT_DB})")
    ap.add_argument("--real", type=int, default=4, help="real pipelines on the local cluster (default 4; it has 4 slots)")
    ap.add_argument("--real-timeout", type=float, default=180, help="seconds to wait for the real jobs' tasks to run")
    ap.add_argument("--warmup", type=float, default=25, help="seconds with sampling ON before each scenario's windows")
    ap.add_argument("--settle", type=float, default=3, help="seconds after each switch before a window starts")
    ap.add_argument("--metrics-interval-ms", type=int, default=DEFAULT_METRICS_MS,
                    help=f"sampling interval while ON (default {DEFAULT_METRICS_MS}, the setting's default)")
    ap.add_argument("--force", action="store_true",
                    help="run even if postgresql.auto.conf already sets the poll or metrics interval (a leftover)")
    a = ap.parse_args()
    if a.rounds < 5:
        log(f"note: --rounds {a.rounds} (< 5): fine for a try, not for the record")

    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "git": git_info(), "machine": machine_info(),
           "library": library_info(), "database": a.db,
           "settings": {"pipelines": a.pipelines, "real": a.real, "rounds": a.rounds, "window_s": a.window,
                        "warmup_s": a.warmup, "settle_s": a.settle, "metrics_interval_ms": a.metrics_interval_ms,
                        "poll_interval_ms": DEFAULT_POLL_MS},
           "scenarios": []}
    admin = Pg("postgres")
    version = admin.one("SELECT default_version FROM pg_available_extensions WHERE name = 'pg_flink'")
    if version is None:
        raise SystemExit("pg_flink is not installed in this Postgres")
    log(f"pg_flink {version[0]} available; database {a.db}; {os.cpu_count()} cores; commit {out['git']['commit'][:10]}")
    before = auto_conf(admin)
    if any(v is not None for v in before.values()):
        # Most likely a test run (tests/test_observability.py sets the interval for its module):
        # switching the interval under it would break it, and its RESET would spoil these windows.
        if not a.force:
            raise SystemExit(f"postgresql.auto.conf already sets {before}: another run (a test module?) is using"
                             f" these settings; wait for it, or pass --force if it is a leftover")
        log(f"WARNING (--force): postgresql.auto.conf already sets {before}: this run overrides it and RESETs"
            f" it at the end; if something changes it meanwhile, the windows concerned are left out")
    out["auto_conf_before"] = before

    standin = MetricsStandIn()
    pg, ident, topics, real = None, None, set(), []
    created = touched = False

    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, on_term)
    try:
        if drop_database(admin, a.db):
            log(f"dropped database {a.db} left by an earlier run")
        admin.q(f'CREATE DATABASE "{a.db}"')
        created = True
        admin.q(f"COMMENT ON DATABASE \"{a.db}\" IS '{DB_COMMENT}'")
        pg = Pg(a.db)
        ident = cp.Identity(pg.conn())
        n = cp.cancel_leftovers(ident)  # of an earlier run's database of the same name
        if n:
            log(f"cancelled {n} job(s) left on the real cluster by an earlier run")
        pg.q("CREATE EXTENSION pg_flink")
        out["extension_version"] = pg.one("SELECT extversion FROM pg_extension WHERE extname = 'pg_flink'")[0]
        out["postgres_version"] = pg.one("SHOW server_version")[0]
        pg.q("SELECT * FROM flink.register_cluster('local', %s, %s)", (GATEWAY, REST))
        pg.q("SELECT * FROM flink.register_datasource('k', 'kafka', %s)", (json.dumps({"bootstrap_servers": KAFKA}),))
        touched = True
        set_system(admin, {"pg_flink.poll_interval_ms": DEFAULT_POLL_MS, "pg_flink.metrics_interval_ms": a.metrics_interval_ms})
        poll = wait_setting(pg, "pg_flink.poll_interval_ms", DEFAULT_POLL_MS)
        out["settings"]["poll_interval_ms_effective"] = poll
        if poll != DEFAULT_POLL_MS:
            log(f"WARNING: pg_flink.poll_interval_ms = {DEFAULT_POLL_MS} did not take effect; the run uses {poll} ms")
        deadline = time.time() + 30
        while worker_pid(pg)[0] is None and time.time() < deadline:
            time.sleep(0.2)
        log(f"worker of {a.db}: pid {worker_pid(pg)[1] or 'none (WARNING)'}")
        out["settings"]["pg_flink"] = dict(pg.q("SELECT name, setting FROM pg_settings WHERE name LIKE 'pg_flink.%%'"
                                                " ORDER BY name").fetchall())

        real, running = start_real(pg, ident, a, topics)
        jobs = {"real": len(real), "real_running": len(running), "replay": 0}
        out["scenarios"].append(scenario("B", f"{len(running)} real pipelines only", pg, admin, standin, a, dict(jobs)))

        if a.pipelines > 0:
            pg.q("SELECT * FROM flink.register_cluster('replay', %s, %s)", (standin.url, standin.url))
            switch(pg, admin, standin, False, a)  # adoption without sampling; the scenario's warm-up turns it on
            adopt = start_replay(pg, ident, standin, a.pipelines)
            jobs["replay"] = a.pipelines
            s = scenario("A", f"{len(running)} real + {a.pipelines} replay pipelines", pg, admin, standin, a, dict(jobs))
            s["adoption_s"] = adopt
            out["scenarios"].insert(0, s)
            replay_rows = pg.one("SELECT count(*) FROM flink.pipeline_metrics WHERE starts_with(pipeline, %s)"
                                 " AND lag_records IS NOT NULL AND checkpoints_completed IS NOT NULL", (REPLAY,))[0]
            s["replay_pipelines_with_metrics"] = replay_rows
            log(f"flink.pipeline_metrics: {replay_rows} of {a.pipelines} replay pipelines have lag and checkpoints")
        real_rows = pg.one("SELECT count(*) FROM flink.pipeline_metrics WHERE pipeline = ANY (%s)", (real,))[0]
        out["real_pipelines_with_metrics"] = real_rows
        log(f"flink.pipeline_metrics: {real_rows} of {len(real)} real pipelines sampled")
        out["machine"]["loadavg_at_end"] = os.getloadavg()
    except BaseException:
        print(json.dumps(out, indent=2, default=str))  # what was measured before the failure
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # clean-up is bounded; let it finish
        log("clean-up (Ctrl-C is ignored until it is done)")
        try:
            if pg is not None and created:
                for name in real:
                    try:
                        pg.q("SELECT flink.stop(%s, with_savepoint => false)", (name,))
                    except psycopg.Error as e:
                        log(f"flink.stop({name}): {str(e).strip()[:160]}")
                deadline = time.time() + 60
                while real and time.time() < deadline and any(p in real for _, p in cp.live_jobs_here(ident)):
                    time.sleep(0.5)
                cp.drop_extension(pg.conn(), standin, ident)  # cancels what is left and waits for the worker
        except Exception as e:  # noqa: BLE001 (the steps below must still run)
            log(f"clean-up: stopping pipelines / DROP EXTENSION failed: {e}")
        try:
            if ident is not None:
                n = cp.cancel_leftovers(ident)
                if n:
                    log(f"cancelled {n} leftover job(s) on the real cluster")
        except Exception as e:  # noqa: BLE001
            log(f"clean-up: cancelling leftovers failed: {e}")
        if pg is not None:
            pg.close()
        try:
            if created:
                wait_postgres()
                drop_database(admin, a.db)
                log(f"dropped database {a.db}")
        except BaseException as e:  # noqa: BLE001
            log(f"clean-up: DROP DATABASE {a.db} failed: {e}")
        delete_topics(topics)
        try:
            if touched:
                wait_postgres()
                set_system(admin, {k: None for k in SETTINGS})
                time.sleep(0.5)
                log("ALTER SYSTEM RESET: " + ", ".join(
                    f"{k} = {admin.one('SELECT setting FROM pg_settings WHERE name = %s', (k,))[0]}" for k in SETTINGS))
        except Exception as e:  # noqa: BLE001
            log(f"clean-up: ALTER SYSTEM RESET failed: {e}")
        standin.shutdown()
        admin.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    out["acceptance"] = {
        "target": "sampling cost (median ON - median OFF) < 5 % of one core, each scenario",
        **{s["scenario"]: {"jobs": s["jobs"], "cost_percent": s["sampling_cost_percent"]["median_on_minus_median_off"],
                           "paired_max_percent": s["sampling_cost_percent"]["paired_on_minus_off"]["max"],
                           "meets_target": s["meets_target"]} for s in out["scenarios"]},
    }
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "metrics.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print_table(out)
    log(f"written {res / 'metrics.json'}")


if __name__ == "__main__":
    main()
