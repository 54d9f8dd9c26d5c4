#!/usr/bin/env python3
"""Control-plane benchmark (issue #17, "Scale of the worker"); run against the local stack
(scripts/stack.sh up). ONE run, ONE database (pg_flink_test), so ONE worker does all of it:

- cluster `local`: the stack's real Flink (JobManager + SQL Gateway);
- cluster `replay`: a JobManager stand-in on loopback, served by this process, listing one
  RUNNING job per replay pipeline under the exact name the worker gives it
  (`Database::job_name`: pg_flink/<system identifier>/<database oid>/<database name>/<pipeline>/v<version>).

Per size (--sizes, default --pipelines 10000): N replay pipelines are created in one
transaction and started in one transaction; the worker adopts their jobs (adoption time: until
all N rows of flink.jobs are RUNNING). Then --seconds of steady state in --rounds rounds (>= 5):
the worker's CPU (/proc/<pid>/stat, percent of one core) per round, /jobs/overview requests per
poll, a tick-time estimate from the spacing of those requests; meanwhile K real Kafka -> Kafka
filter_alert pipelines on `local` are started and cancelled (through the JobManager REST API)
over and over: state change -> row latency from Flink's own timestamps (GET /jobs/<id>
"timestamps") to flink.job_events.at. The poll interval is the default, 1000 ms (ALTER SYSTEM for
the run, reset at the end).

Usage: benchmarks/control_plane.py [--pipelines 10000 | --sizes 1000,10000] [--seconds 60]
       [--rounds 5] [--warmup 15] [--real 2] [--transitions 20]
Writes benchmarks/results/control_plane.json and prints it.
"""
import argparse
import collections
import http.server
import json
import random
import os
import pathlib
import statistics
import subprocess
import threading
import time
import uuid

import psycopg
import requests

HERE = pathlib.Path(__file__).resolve().parent
ENV = dict(line.split("=", 1) for line in subprocess.run(
    [str(HERE.parent / "scripts" / "stack.sh"), "env"], capture_output=True, text=True, check=True).stdout.splitlines())
DB = "pg_flink_test"
REST = ENV["PG_FLINK_REST_URL"]
GATEWAY = ENV["PG_FLINK_GATEWAY_URL"]
KAFKA = ENV["PG_FLINK_KAFKA"]
DEFAULT_POLL_MS = 1000  # pg_flink.poll_interval_ms's default (the stack's include file sets 500)
REPLAY = "rp_"  # name prefix of the replay pipelines
ENDED = ("STOPPED", "CANCELED", "FINISHED", "FAILED", "LOST", "SUBMIT_FAILED", "DETACHED")
FLINK_TERMINAL = ("FINISHED", "CANCELED", "FAILED")
# The figure of 2026-11-23 (benchmarks/README.md; commit ce47c90): 1000 pipelines, 37 % of one
# core at a 0.5 s poll interval, 1.23 /jobs/overview requests per second, "0.8 s per tick".
THEN = {"date": "2026-11-23", "pipelines": 1000, "cpu_core_fraction": 0.37, "poll_interval_s": 0.5,
        "overview_requests_per_s": 1.23, "tick_s": 0.8}


def connect():
    return psycopg.connect(f"host={ENV['PGHOST']} port={ENV['PGPORT']} user={ENV['PGUSER']} dbname={DB}", autocommit=True)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    f = int(k)
    return xs[f] if f == len(xs) - 1 else xs[f] + (xs[f + 1] - xs[f]) * (k - f)


def summary(xs, digits=3):
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "min": round(min(xs), digits), "p50": round(pct(xs, 50), digits),
            "p95": round(pct(xs, 95), digits), "max": round(max(xs), digits)}


# ------------------------------------------------------------------------------------------------
# Job identity, as src/control/identity.rs builds it.

def escape(name):
    return name.replace("%", "%25").replace("/", "%2F")


class Identity:
    """This instance and database (`Database` in identity.rs)."""

    def __init__(self, c):
        # bigint in SQL, u64 in Rust (GetSystemIdentifier): print it unsigned as the worker does
        self.sysid = int(c.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]) % (1 << 64)
        self.oid = int(c.execute("SELECT oid::bigint FROM pg_database WHERE datname = current_database()").fetchone()[0])
        self.name = c.execute("SELECT current_database()::text").fetchone()[0]

    def job_name(self, pipeline, version):
        return f"pg_flink/{self.sysid}/{self.oid}/{escape(self.name)}/{pipeline}/v{version}"

    def pipeline_of(self, job_name):
        """The pipeline of a job of this database (same instance and database name: `owns`), else None."""
        parts = job_name.split("/")
        if len(parts) == 6 and parts[0] == "pg_flink" and parts[1] == str(self.sysid) and parts[3] == escape(self.name):
            return parts[4]
        return None


# ------------------------------------------------------------------------------------------------
# The JobManager stand-in. It answers what src/flink/jobmanager.rs asks: GET /jobs/overview (the
# recorded listing, encoded once), GET /overview, and per job GET /jobs/<id>,
# /jobs/<id>/metrics?get=numRestarts, /jobs/<id>/checkpoints, /jobs/<id>/exceptions,
# /jobs/<id>/savepoints/<trigger>, POST /jobs/<id>/stop and /jobs/<id>/savepoints, PATCH
# /jobs/<id>?mode=cancel; anything else (e.g. a SQL Gateway call) is a quick 404. Every answer is
# counted by kind; the times of /jobs/overview requests are recorded.

EMPTY = b'{"jobs":[]}'
TASKS = {"total": 1, "created": 0, "scheduled": 0, "deploying": 0, "running": 1, "finished": 0, "canceling": 0,
         "canceled": 0, "failed": 0, "reconciling": 0, "initializing": 0}
METRICS = b'[{"id":"numRestarts","value":"0"}]'
CHECKPOINTS = (b'{"counts":{"restored":0,"total":0,"in_progress":0,"completed":0,"failed":0},'
               b'"latest":{"completed":null,"savepoint":null,"failed":null,"restored":null},"history":[]}')
EXCEPTIONS = b'{"root-exception":null,"timestamp":null,"all-exceptions":[],"truncated":false,"exceptionHistory":{"entries":[],"truncated":false}}'
NOT_FOUND = b'{"errors":["Not found."]}'
GATEWAY_PATHS = ("v1", "v2", "v3", "v4", "sessions", "info", "api_versions")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the worker's client reuses its connections
    disable_nagle_algorithm = True

    def reply(self, kind, code, data):
        self.server.standin.count(kind)
        # Head and body in one write: written apart, Nagle and the client's delayed ACK hold
        # every answer of a kept-alive connection ~40 ms.
        self.wfile.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % (code, self.responses[code][0].encode(), len(data)) + data)

    def parts(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)  # keep the connection in step
        return self.path.split("?", 1)[0].strip("/").split("/")

    def do_GET(self):  # noqa: N802
        s, p = self.server.standin, self.parts()
        if p == ["jobs", "overview"]:
            return self.reply("jobs_overview", 200, s.overview())
        if p == ["overview"]:
            return self.reply("cluster_overview", 200, s.cluster_overview())
        if p == ["config"]:
            return self.reply("config", 200, b'{"flink-version":"1.20.3","flink-revision":"replay"}')
        if len(p) >= 2 and p[0] == "jobs" and p[1] in s.names:
            jid = p[1]
            if len(p) == 2:
                return self.reply("job_detail", 200, s.detail(jid))
            if p[2:] == ["metrics"]:
                return self.reply("metrics", 200, METRICS)
            if p[2:] == ["checkpoints"]:
                return self.reply("checkpoints", 200, CHECKPOINTS)
            if p[2:] == ["exceptions"]:
                return self.reply("exceptions", 200, EXCEPTIONS)
            if len(p) == 4 and p[2] == "savepoints":
                loc = f"file:/tmp/pg_flink-replay/savepoint-{p[3][:12]}"
                return self.reply("savepoint_status", 200, json.dumps(
                    {"status": {"id": "COMPLETED"}, "operation": {"location": loc}}).encode())
        self.reply("gateway" if p[0] in GATEWAY_PATHS else "not_found", 404, NOT_FOUND)

    def do_POST(self):  # noqa: N802
        s, p = self.server.standin, self.parts()
        if len(p) == 3 and p[0] == "jobs" and p[1] in s.names and p[2] in ("stop", "savepoints"):
            kind = "stop_with_savepoint" if p[2] == "stop" else "savepoint_trigger"
            return self.reply(kind, 202, json.dumps({"request-id": uuid.uuid4().hex}).encode())
        self.reply("gateway" if p[0] in GATEWAY_PATHS else "not_found", 404, NOT_FOUND)

    def do_PATCH(self):  # noqa: N802
        s, p = self.server.standin, self.parts()
        if len(p) == 2 and p[0] == "jobs" and p[1] in s.names:
            return self.reply("cancel", 202, b"{}")
        self.reply("not_found", 404, NOT_FOUND)

    def do_DELETE(self):  # noqa: N802
        self.parts()
        self.reply("not_found", 404, NOT_FOUND)

    def log_message(self, *a):
        pass


class StandIn:
    def __init__(self):
        self.lock = threading.Lock()
        self.body, self.names, self.started_ms = EMPTY, {}, 0
        self.counts = collections.Counter()
        self.overview_at = []  # time.monotonic() of every GET /jobs/overview
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.srv.standin = self
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def publish(self, jobs):
        """Lists these (jid, job name) pairs as RUNNING from now on (encoded once)."""
        now = int(time.time() * 1000)
        body = json.dumps({"jobs": [{"jid": jid, "name": name, "start-time": now, "end-time": -1, "duration": 1000,
                                     "state": "RUNNING", "last-modification": now, "tasks": TASKS,
                                     "pending-operators": 0} for jid, name in jobs]}, separators=(",", ":")).encode()
        with self.lock:
            self.body, self.names, self.started_ms = body, dict(jobs), now
        return len(body)

    def clear(self):
        with self.lock:
            self.body, self.names = EMPTY, {}

    def overview(self):
        t = time.monotonic()
        with self.lock:
            self.overview_at.append(t)
            return self.body

    def cluster_overview(self):
        n = len(self.names)
        return json.dumps({"flink-version": "1.20.3", "flink-commit": "replay", "taskmanagers": 1, "slots-total": n,
                           "slots-available": 0, "jobs-running": n, "jobs-finished": 0, "jobs-cancelled": 0,
                           "jobs-failed": 0}).encode()

    def detail(self, jid):
        t = self.started_ms
        ts = {s: 0 for s in ("CREATED", "INITIALIZING", "RUNNING", "FAILING", "FAILED", "CANCELLING", "CANCELED",
                             "FINISHED", "RESTARTING", "SUSPENDED", "RECONCILING")}
        ts.update(CREATED=t, INITIALIZING=t, RUNNING=t)
        return json.dumps({"jid": jid, "name": self.names.get(jid, ""), "isStoppable": False, "state": "RUNNING",
                           "job-type": "STREAMING", "start-time": t, "end-time": -1, "duration": int(time.time() * 1000) - t,
                           "maxParallelism": -1, "now": int(time.time() * 1000), "timestamps": ts, "vertices": [],
                           "status-counts": {"RUNNING": 1}}).encode()

    def count(self, kind):
        with self.lock:
            self.counts[kind] += 1

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.counts)

    def shutdown(self):
        self.srv.shutdown()


# ------------------------------------------------------------------------------------------------
# Postgres side: poll interval, worker process, extension set-up and clean-up.

def poll_interval(c, expect):
    """Waits (5 s at most) for this session to see `expect` ms after a reload; what is in effect."""
    deadline = time.time() + 5
    while True:
        ms = int(c.execute("SELECT setting FROM pg_settings WHERE name = 'pg_flink.poll_interval_ms'").fetchone()[0])
        if ms == expect or time.time() > deadline:
            break
        time.sleep(0.2)
    shown = c.execute("SHOW pg_flink.poll_interval_ms").fetchone()[0]
    files = [{"file": f, "line": ln, "setting": s, "applied": a, "error": e} for f, ln, s, a, e in c.execute(
        "SELECT sourcefile, sourceline, setting, applied, error FROM pg_file_settings"
        " WHERE name = 'pg_flink.poll_interval_ms' ORDER BY seqno")]
    log(f"SHOW pg_flink.poll_interval_ms = {shown} (setting {ms} ms; configuration files: "
        + "; ".join(f"{x['file']}:{x['line']} = {x['setting']}{' (applied)' if x['applied'] else ''}" for x in files) + ")")
    if ms != expect:
        log(f"WARNING: pg_flink.poll_interval_ms = {expect} did not take effect; the run uses {ms} ms")
    return {"requested_ms": expect, "effective_ms": ms, "show": shown, "took_effect": ms == expect, "file_settings": files}


def worker_pids(c):
    return [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker'"
                                    " AND datname = current_database() ORDER BY pid")]


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_jobs_here(ident):
    """Live jobs of this database on the real cluster: [(jid, pipeline)]."""
    jobs = requests.get(f"{REST}/jobs/overview", timeout=10).json()["jobs"]
    return [(j["jid"], ident.pipeline_of(j["name"])) for j in jobs
            if j["state"] not in FLINK_TERMINAL and ident.pipeline_of(j["name"])]


def cancel_leftovers(ident, wait_s=30):
    """Cancels what still runs on the real cluster under this database's identity."""
    left = live_jobs_here(ident)
    for jid, _ in left:
        requests.patch(f"{REST}/jobs/{jid}?mode=cancel", timeout=10)
    deadline = time.time() + wait_s
    while left and live_jobs_here(ident) and time.time() < deadline:
        time.sleep(0.5)
    return len(left)


def drop_extension(c, standin, ident):
    """DROP EXTENSION (the worker then cancels this database's live jobs and exits), with the
    stand-in emptied at once so that only the real jobs are cancelled; waits for the worker to go."""
    c.execute("DROP EXTENSION IF EXISTS pg_flink CASCADE")
    standin.clear()
    deadline = time.time() + 60
    while worker_pids(c) and time.time() < deadline:
        time.sleep(0.5)
    if worker_pids(c):
        log("WARNING: the worker is still there 60 s after DROP EXTENSION")
    n = cancel_leftovers(ident)
    if n:
        log(f"cancelled {n} leftover job(s) of this database on the real cluster")


def filter_params(src, dst):
    return json.dumps({"source": {"datasource": "k", "object": src, "columns": [{"name": "n", "type": "BIGINT"}]},
                       "conditions": [{"column": "n", "op": ">", "value": 0}], "sink": {"datasource": "k", "object": dst}})


# ------------------------------------------------------------------------------------------------
# Latency on the real cluster: each real pipeline in its own thread, started, its job cancelled
# through the JobManager, started again... Every flink.start wakes the worker: its time is kept
# so that the tick estimate can leave those early ticks out.

class Latency:
    def __init__(self, ident, names, target, timeout_s, poll_s=1.0):
        self.poll_s = poll_s
        self.ident, self.names, self.target = ident, names, target
        self.deadline = time.time() + timeout_s
        self.samples = {"RUNNING": [], "CANCELED": []}
        self.errors, self.wakes, self.starts = [], [], collections.Counter()
        self.rounds_over = threading.Event()
        self.lock = threading.Lock()
        self.rng = random.Random(20261130)
        self.live_max, self.live_dup_samples, self.live_samples = 0, 0, 0
        self.threads = [threading.Thread(target=self.loop, args=(n,), daemon=True) for n in names]
        self.threads.append(threading.Thread(target=self.monitor, daemon=True))

    def total(self):
        with self.lock:
            return sum(len(v) for v in self.samples.values())

    def done(self):
        return (self.rounds_over.is_set() and self.total() >= self.target) or time.time() > self.deadline

    def start(self, c, name):
        t0 = time.monotonic()
        c.execute("SELECT flink.start(%s)", (name,))
        with self.lock:
            self.wakes.append((t0, time.monotonic()))
            self.starts[name] += 1

    def event(self, c, name, state, after, timeout=120):
        """The first event of `name` to `state` after event id `after`: (id, job_id, at epoch)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for eid, job_id, at, to in c.execute(
                    "SELECT id, job_id, extract(epoch FROM at)::float8, to_state FROM flink.job_events"
                    " WHERE id > %s AND pipeline = %s ORDER BY id", (after, name)):
                if to == state:
                    return eid, job_id, at
                if to in ("FAILED", "SUBMIT_FAILED", "LOST"):
                    err = c.execute("SELECT last_error FROM flink.jobs WHERE id = %s", (job_id,)).fetchone()[0]
                    raise RuntimeError(f"{name}: job went {to} while waiting for {state}: {err}")
            time.sleep(0.05)
        raise RuntimeError(f"{name}: no {state} event within {timeout} s")

    @staticmethod
    def flink_ts(jid, state):
        deadline = time.time() + 30
        while time.time() < deadline:
            ts = requests.get(f"{REST}/jobs/{jid}", timeout=5).json().get("timestamps", {}).get(state, 0)
            if ts:
                return ts / 1000.0
            time.sleep(0.05)
        raise RuntimeError(f"job {jid}: Flink has no {state} timestamp")

    def add(self, state, seconds):
        with self.lock:
            self.samples[state].append(seconds)

    def loop(self, name):
        try:
            c = connect()
            last = c.execute("SELECT COALESCE(max(id), 0) FROM flink.job_events").fetchone()[0]
            self.start(c, name)
            while not self.done():
                last, job_id, at = self.event(c, name, "RUNNING", last)
                jid = c.execute("SELECT flink_job_id FROM flink.jobs WHERE id = %s", (job_id,)).fetchone()[0]
                self.add("RUNNING", at - self.flink_ts(jid, "RUNNING"))
                if self.done():
                    break
                # At a random moment of the poll cycle (seeded): cancelling right after the
                # RUNNING row appeared would always land just after a tick and measure a whole
                # poll interval every time.
                time.sleep(self.rng.uniform(0.2, 0.2 + self.poll_s))
                requests.patch(f"{REST}/jobs/{jid}?mode=cancel", timeout=10).raise_for_status()
                last, _, at = self.event(c, name, "CANCELED", last)
                self.add("CANCELED", at - self.flink_ts(jid, "CANCELED"))
                if self.done():
                    break
                self.start(c, name)  # a start after the job ended submits anew
            c.close()
        except Exception as e:  # recorded; the run goes on (and reports it)
            with self.lock:
                self.errors.append(f"{name}: {e}")

    def monitor(self):
        """Samples the real cluster every second: never more than one live job per pipeline."""
        while not all(not t.is_alive() for t in self.threads[:-1]):
            try:
                per = collections.Counter(p for _, p in live_jobs_here(self.ident) if p in self.names)
                with self.lock:
                    self.live_samples += 1
                    self.live_max = max([self.live_max, *per.values()])
                    self.live_dup_samples += any(v > 1 for v in per.values())
            except Exception:  # noqa: BLE001 (a missed sample)
                pass
            time.sleep(1)

    def run(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(max(1, self.deadline - time.time() + 130))

    def result(self, poll_s):
        allx = self.samples["RUNNING"] + self.samples["CANCELED"]
        target = poll_s + 0.5
        return {
            "real_pipelines": len(self.names), "transitions": len(allx), "transitions_wanted": self.target,
            "all_s": summary(allx), "mean_s": round(statistics.mean(allx), 3) if allx else None,
            "by_state": {k: summary(v) for k, v in self.samples.items()},
            "target_p95_s": target, "meets_target": bool(allx) and pct(allx, 95) <= target,
            "starts": dict(self.starts), "errors": self.errors,
        }


# ------------------------------------------------------------------------------------------------

def tick_estimate(times, wakes, poll_s):
    """Spacing of consecutive /jobs/overview requests of the stand-in (one per tick). The worker
    sleeps one poll interval after each tick, so spacing - poll interval ~ the tick's duration.
    Intervals during which a flink.start woke the worker early are left out."""
    used, woken = [], 0
    for a, b in zip(times, times[1:]):
        if any(wb < b and wa > a for wb, wa in wakes):
            woken += 1
        else:
            used.append(b - a)
    return {"intervals": len(used), "left_out_woken": woken, "spacing_s": summary(used),
            "tick_s": summary([max(0.0, x - poll_s) for x in used])}


def run_size(c, ident, standin, n, a, poll_s):
    log(f"=== {n} replay pipelines, {a.real} real ones ===")
    drop_extension(c, standin, ident)
    c.execute("CREATE EXTENSION pg_flink")
    c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)", (GATEWAY, REST))  # the first: default
    c.execute("SELECT * FROM flink.register_cluster('replay', %s, %s)", (standin.url, standin.url))
    c.execute("SELECT * FROM flink.register_datasource('k', 'kafka', %s)", (json.dumps({"bootstrap_servers": KAFKA}),))
    # CREATE EXTENSION starts the worker at commit. Started before the big start transaction, so
    # that each flink.start there only wakes it (with none running, each would register one).
    deadline = time.time() + 30
    while not worker_pids(c) and time.time() < deadline:
        time.sleep(0.2)
    log(f"worker: {worker_pids(c) or 'none yet (WARNING)'}")

    from confluent_kafka import Producer
    real = ["lat_" + uuid.uuid4().hex[:8] for _ in range(a.real)]
    producer = Producer({"bootstrap.servers": KAFKA})
    for name in real:
        producer.produce(f"{name}_in", b'{"n": 1}')
    producer.flush(10)
    for name in real:
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
                  (name, filter_params(f"{name}_in", f"{name}_out"), json.dumps({"cluster": "local"})))

    # Created and started in one transaction; the stand-in lists the jobs just before it
    # commits. Until then they are jobs of pipelines that do not exist (yet), which the orphan
    # sweep stops only after 10 s; from the commit on they belong to pipelines that want to run,
    # and the worker adopts them. (A pipeline that exists but was never started is desired
    # stopped: a job listed for it would be stopped.)
    names = [f"{REPLAY}{i:05d}" for i in range(n)]
    opts = json.dumps({"cluster": "replay"})
    t0 = time.time()
    with c.transaction():
        c.cursor().executemany("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
                               [(name, filter_params(f"t{i}", f"o{i}"), opts) for i, name in enumerate(names)])
        create_s = time.time() - t0
        t0 = time.time()
        c.cursor().executemany("SELECT flink.start(%s)", [(name,) for name in names])
        versions = dict(c.execute("SELECT name, version FROM flink.pipelines WHERE starts_with(name, %s)",
                                  (REPLAY,)).fetchall())
        body = standin.publish([(uuid.uuid4().hex, ident.job_name(name, versions[name])) for name in names])
    committed = time.time()
    log(f"created {n} pipelines in {create_s:.1f} s; the stand-in lists {n} jobs ({body / 1e6:.2f} MB)")
    start_s = committed - t0
    shown = committed
    while (running := c.execute("SELECT count(*) FROM flink.jobs WHERE starts_with(pipeline, %s) AND state = 'RUNNING'",
                                (REPLAY,)).fetchone()[0]) < n:
        if time.time() - committed > a.adopt_timeout:
            raise RuntimeError(f"adoption: {running} of {n} jobs RUNNING after {a.adopt_timeout} s")
        if time.time() - shown > 10:
            shown = time.time()
            log(f"adoption: {running} of {n} RUNNING")
        time.sleep(0.25)
    adopt_s = time.time() - committed
    log(f"started in {start_s:.1f} s; all {n} jobs adopted {adopt_s:.2f} s after the commit")

    # Steady state in rounds, the latency part running meanwhile. First a warm-up: the ticks
    # right after adoption re-read every adopted pipeline's row (the adoption wrote them all).
    lat = Latency(ident, real, a.transitions, a.latency_timeout, poll_s)
    lat.run()
    if a.warmup > 0:
        log(f"warm-up {a.warmup:.0f} s (not measured)")
        time.sleep(a.warmup)
    round_s = a.seconds / a.rounds
    rounds, t_begin, req0 = [], time.monotonic(), standin.snapshot()
    for r in range(a.rounds):
        pids0, m0, self0, ov0 = worker_pids(c), time.monotonic(), os.times(), len(standin.overview_at)
        try:
            cpu0 = sum(cpu_seconds(x) for x in pids0)
        except FileNotFoundError:
            cpu0 = None
        time.sleep(round_s)
        pids1, m1, self1, ov1 = worker_pids(c), time.monotonic(), os.times(), len(standin.overview_at)
        try:
            cpu1 = sum(cpu_seconds(x) for x in pids1)
        except FileNotFoundError:
            cpu1 = None
        ok = pids0 == pids1 and len(pids1) == 1 and cpu0 is not None and cpu1 is not None
        rnd = {"seconds": round(m1 - m0, 2), "worker_pids": pids1,
               "cpu_percent": round(100 * (cpu1 - cpu0) / (m1 - m0), 2) if ok else None,
               "benchmark_process_cpu_percent": round(100 * ((self1.user + self1.system) - (self0.user + self0.system)) / (m1 - m0), 1),
               "overview_requests": ov1 - ov0}
        rounds.append(rnd)
        log(f"round {r + 1}/{a.rounds}: worker {rnd['cpu_percent']} % of a core, {rnd['overview_requests']} overview requests"
            f" (this process: {rnd['benchmark_process_cpu_percent']} %), {lat.total()} transitions so far")
    t_end = time.monotonic()
    req1 = standin.snapshot()
    lat.rounds_over.set()
    log(f"waiting for the latency part ({lat.total()}/{a.transitions} transitions)")
    lat.join()

    # Duplicates: a replay pipeline with more than one job row; any pipeline with more than one
    # job row that has not ended; a real pipeline seen with more than one live job in Flink.
    replay_multi = c.execute("SELECT count(*) FROM (SELECT pipeline FROM flink.jobs WHERE starts_with(pipeline, %s)"
                             " GROUP BY pipeline HAVING count(*) > 1) x", (REPLAY,)).fetchone()[0]
    open_multi = c.execute("SELECT count(*) FROM (SELECT pipeline FROM flink.jobs WHERE state <> ALL (%s)"
                           " GROUP BY pipeline HAVING count(*) > 1) x", (list(ENDED),)).fetchone()[0]
    real_rows = dict(c.execute("SELECT pipeline, count(*) FROM flink.jobs WHERE pipeline = ANY (%s) GROUP BY pipeline",
                               (real,)).fetchall())
    states = dict(c.execute("SELECT state, count(*) FROM flink.jobs WHERE starts_with(pipeline, %s) GROUP BY state",
                            (REPLAY,)).fetchall())

    # Clean-up of the size: the real pipelines stopped (no savepoint), then DROP EXTENSION.
    for name in real:
        try:
            c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
        except psycopg.Error as e:
            log(f"flink.stop({name}): {e}")
    deadline = time.time() + 60
    while time.time() < deadline and any(pl in real for _, pl in live_jobs_here(ident)):
        time.sleep(0.5)
    drop_extension(c, standin, ident)

    cpus = [r["cpu_percent"] for r in rounds if r["cpu_percent"] is not None]
    seconds = t_end - t_begin
    reqs = {k: req1[k] - req0[k] for k in sorted(set(req1) | set(req0)) if req1[k] - req0[k]}
    ov_rate = reqs.get("jobs_overview", 0) / seconds
    times = [t for t in standin.overview_at if t_begin <= t <= t_end]
    unexpected = {k: v for k, v in reqs.items() if k in ("stop_with_savepoint", "savepoint_trigger", "cancel", "gateway", "not_found")}
    return {
        "pipelines": n, "real_pipelines": len(real),
        "create_pipelines_s": round(create_s, 2), "start_transaction_s": round(start_s, 2), "adoption_s": round(adopt_s, 2),
        "replay_overview_bytes": body,
        "cpu_percent_of_one_core": {"rounds": len(cpus), "min": min(cpus, default=None),
                                    "median": round(statistics.median(cpus), 2) if cpus else None,
                                    "max": max(cpus, default=None), "per_round": rounds},
        "steady_seconds": round(seconds, 1),
        "replay_requests_per_s": {k: round(v / seconds, 2) for k, v in reqs.items()},
        "overview_requests_per_poll": round(ov_rate * poll_s, 3),
        "unexpected_replay_requests": unexpected,
        "tick": tick_estimate(times, list(lat.wakes), poll_s),
        "latency": lat.result(poll_s),
        "replay_job_states": states,
        "duplicates": {"replay_pipelines_with_more_than_one_job_row": replay_multi,
                       "pipelines_with_more_than_one_open_job_row": open_multi,
                       "real_max_live_jobs_per_pipeline": lat.live_max,
                       "real_samples_with_more_than_one_live_job": lat.live_dup_samples,
                       "real_live_samples": lat.live_samples,
                       "real_job_rows": real_rows, "real_starts": dict(lat.starts),
                       "total": replay_multi + open_multi + lat.live_dup_samples},
    }


def ratios(size):
    """Per-pipeline cost against 2026-11-23 (formulas in benchmarks/README.md); > 1: cheaper now."""
    n, cpu = size["pipelines"], size["cpu_percent_of_one_core"]["median"]
    ov = size["replay_requests_per_s"].get("jobs_overview", 0)
    tick = size["tick"]["tick_s"].get("p50")
    then_n, then_cpu = THEN["pipelines"], THEN["cpu_core_fraction"]

    def ratio(then, now):
        return {"then": round(then, 3), "now": round(now, 3) if now is not None else None,
                "then_over_now": round(then / now, 2) if now else None}

    if cpu is None:
        return {"error": "no CPU figure"}
    now_frac = cpu / 100
    then_tick_same_formula = 1 / THEN["overview_requests_per_s"] - THEN["poll_interval_s"]
    return {
        "pipelines": n, "cpu_core_fraction": round(now_frac, 4), "then_cpu_core_fraction": then_cpu,
        # core-microseconds per pipeline per second of wall time
        "cpu_us_per_pipeline_per_s": ratio(1e6 * then_cpu / then_n, 1e6 * now_frac / n),
        # core-microseconds per pipeline per tick (ticks/s = /jobs/overview requests/s of one cluster)
        "cpu_us_per_pipeline_per_tick": ratio(1e6 * then_cpu / THEN["overview_requests_per_s"] / then_n,
                                              1e6 * now_frac / ov / n if ov else None),
        # tick milliseconds per 1000 pipelines: against the 0.8 s, and against the 2026-11-23
        # run's tick estimated by this script's own formula (1 / 1.23 - 0.5 = 0.31 s)
        "tick_ms_per_1000_pipelines": ratio(1e6 * THEN["tick_s"] / then_n, 1e6 * tick / n if tick is not None else None),
        "tick_ms_per_1000_pipelines_same_formula": ratio(1e6 * then_tick_same_formula / then_n,
                                                         1e6 * tick / n if tick is not None else None),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipelines", type=int, default=10000, help="replay pipelines (one size)")
    ap.add_argument("--sizes", help="comma-separated sizes, e.g. 1000,10000 (overrides --pipelines)")
    ap.add_argument("--seconds", type=float, default=60, help="steady state per size, split into --rounds rounds")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the steady state (at least 5)")
    ap.add_argument("--warmup", type=float, default=15, help="seconds after adoption before the rounds (not measured)")
    ap.add_argument("--real", type=int, default=2, help="real pipelines on the local cluster (it has 4 slots)")
    ap.add_argument("--transitions", type=int, default=20, help="real state transitions to collect, at least")
    ap.add_argument("--adopt-timeout", type=float, default=600)
    ap.add_argument("--latency-timeout", type=float, default=600, help="from the end of adoption")
    a = ap.parse_args()
    if a.rounds < 5:
        ap.error("--rounds must be at least 5 (min / median / max over >= 5 rounds)")
    sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else [a.pipelines]

    c = connect()
    ident = Identity(c)
    standin = StandIn()
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": {"cores": os.cpu_count()}, "database": DB,
           "identity_prefix": ident.job_name("<pipeline>", 0).rsplit("/", 2)[0] + "/", "stand_in": standin.url,
           "seconds": a.seconds, "rounds": a.rounds, "warmup_s": a.warmup, "sizes": []}
    try:
        c.execute(f"ALTER SYSTEM SET pg_flink.poll_interval_ms = {DEFAULT_POLL_MS}")
        c.execute("SELECT pg_reload_conf()")
        out["poll_interval"] = poll_interval(c, DEFAULT_POLL_MS)
        poll_s = out["poll_interval"]["effective_ms"] / 1000.0
        for n in sizes:
            out["sizes"].append(run_size(c, ident, standin, n, a, poll_s))
    except BaseException:
        print(json.dumps(out, indent=2, default=str))  # what was measured before the failure
        raise
    finally:
        try:
            drop_extension(c, standin, ident)
        except Exception as e:  # noqa: BLE001 (the reset below must still happen)
            log(f"clean-up failed: {e}")
        finally:
            c.execute("ALTER SYSTEM RESET pg_flink.poll_interval_ms")
            c.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)
            log(f"pg_flink.poll_interval_ms reset: {c.execute('SHOW pg_flink.poll_interval_ms').fetchone()[0]}")
            standin.shutdown()
            c.close()

    out["ratio_vs_2026_11_23"] = {"then": THEN, **{str(s["pipelines"]): ratios(s) for s in out["sizes"]}}
    big = max(out["sizes"], key=lambda s: s["pipelines"])
    cpu, lat = big["cpu_percent_of_one_core"], big["latency"]
    out["acceptance"] = {
        "pipelines": big["pipelines"],
        "cpu_median_below_5_percent": cpu["median"] is not None and cpu["median"] < 5,
        "cpu_max_below_5_percent": cpu["max"] is not None and cpu["max"] < 5,
        "latency_p95_s": lat["all_s"].get("p95"), "latency_target_s": lat["target_p95_s"],
        "latency_meets_target": lat["meets_target"], "enough_transitions": lat["transitions"] >= a.transitions,
        "duplicates": big["duplicates"]["total"], "no_unexpected_replay_requests": not big["unexpected_replay_requests"],
    }
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "control_plane.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
