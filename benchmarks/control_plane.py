#!/usr/bin/env python3
"""Control-plane benchmark (run against the local stack: scripts/stack.sh up).

Part 1, latency: for N transitions of real Flink jobs (RUNNING after a submission, CANCELED
after a cancel sent straight to the JobManager), the time from the state change in Flink (the
JobManager's own per-state timestamp, GET /jobs/{id} "timestamps") to the row in
flink.job_events (its `at`). Target: p95 <= poll interval + 0.5 s.

Part 2, scale: P pipelines whose desired state is running, tracked against a JobManager stand-in
on loopback that replays a recorded /jobs/overview answer listing P RUNNING jobs with the
pipelines' identities (the only place a stand-in is used: the stack holds 4 real jobs). Measures
requests per poll (must be 1 per cluster) and the worker's CPU time per second.

Usage: benchmarks/control_plane.py [--transitions 50] [--pipelines 1000] [--seconds 30]
Writes benchmarks/results/control_plane.json and prints a summary.
"""
import argparse
import http.server
import json
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


def connect():
    return psycopg.connect(f"host={ENV['PGHOST']} port={ENV['PGPORT']} user={ENV['PGUSER']} dbname={DB}", autocommit=True)


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    f = int(k)
    return xs[f] if f == len(xs) - 1 else xs[f] + (xs[f + 1] - xs[f]) * (k - f)


def event_at(c, pipeline, state, after_id):
    deadline = time.time() + 60
    while time.time() < deadline:
        r = c.execute("SELECT id, extract(epoch FROM at)::float8 FROM flink.job_events WHERE pipeline = %s AND to_state = %s AND id > %s ORDER BY id LIMIT 1",
                      (pipeline, state, after_id)).fetchone()
        if r:
            return r
        time.sleep(0.05)
    raise RuntimeError(f"{pipeline}: no {state} event within 60 s")


def flink_ts(jid, state):
    deadline = time.time() + 30
    while time.time() < deadline:
        ts = requests.get(f"{REST}/jobs/{jid}", timeout=5).json().get("timestamps", {}).get(state, 0)
        if ts:
            return ts / 1000.0
        time.sleep(0.05)
    raise RuntimeError(f"job {jid}: Flink has no {state} timestamp")


def latency(transitions):
    c = connect()
    c.execute("DROP EXTENSION IF EXISTS pg_flink CASCADE")
    c.execute("CREATE EXTENSION pg_flink")
    c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)", (ENV["PG_FLINK_GATEWAY_URL"], REST))
    c.execute("SELECT * FROM flink.register_datasource('k', 'kafka', %s)", (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"]}),))
    from confluent_kafka import Producer
    name = "bench_" + uuid.uuid4().hex[:8]
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    p.produce(f"{name}_in", b'{"n": 1}')
    p.flush(10)
    c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)", (name, json.dumps({
        "source": {"datasource": "k", "object": f"{name}_in", "columns": [{"name": "n", "type": "BIGINT"}]},
        "conditions": [{"column": "n", "op": ">", "value": 0}], "sink": {"datasource": "k", "object": f"{name}_out"}})))
    samples = {"RUNNING": [], "CANCELED": []}
    last_event = 0
    c.execute("SELECT flink.start(%s)", (name,))
    while sum(len(v) for v in samples.values()) < transitions:
        eid, at = event_at(c, name, "RUNNING", last_event)
        jid = c.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()[0]
        samples["RUNNING"].append(at - flink_ts(jid, "RUNNING"))
        last_event = eid
        requests.patch(f"{REST}/jobs/{jid}?mode=cancel", timeout=5)
        eid, at = event_at(c, name, "CANCELED", last_event)
        samples["CANCELED"].append(at - flink_ts(jid, "CANCELED"))
        last_event = eid
        c.execute("SELECT flink.start(%s)", (name,))  # a start after the job ended submits anew
    c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
    poll = float(c.execute("SHOW pg_flink.poll_interval_ms").fetchone()[0].rstrip("ms")) / 1000.0
    c.close()
    allx = samples["RUNNING"] + samples["CANCELED"]
    return {
        "transitions": len(allx), "poll_interval_s": poll,
        "p50_s": round(pct(allx, 50), 3), "p95_s": round(pct(allx, 95), 3), "max_s": round(max(allx), 3),
        "mean_s": round(statistics.mean(allx), 3),
        "by_state": {k: {"n": len(v), "p50_s": round(pct(v, 50), 3), "p95_s": round(pct(v, 95), 3)} for k, v in samples.items()},
        "target_p95_s": poll + 0.5, "meets_target": pct(allx, 95) <= poll + 0.5,
    }


class Replay(http.server.BaseHTTPRequestHandler):
    body = b"{}"
    requests = 0

    def do_GET(self):  # noqa: N802
        if self.path == "/jobs/overview":
            Replay.requests += 1
            data = Replay.body
        elif self.path == "/overview":
            data = b'{"flink-version": "1.20.3", "taskmanagers": 1, "slots-total": 4, "slots-available": 0, "jobs-running": 0}'
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def worker_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scale(pipelines, seconds):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    c = connect()
    c.execute("DROP EXTENSION IF EXISTS pg_flink CASCADE")
    c.execute("CREATE EXTENSION pg_flink")
    c.execute("SELECT * FROM flink.register_cluster('replay', %s, %s)", (url, url))
    c.execute("SELECT * FROM flink.register_datasource('k', 'kafka', %s)", (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"]}),))
    params = lambda i: json.dumps({"source": {"datasource": "k", "object": f"t{i}", "columns": [{"name": "n", "type": "BIGINT"}]},  # noqa: E731
                                   "conditions": [{"column": "n", "op": ">", "value": 0}], "sink": {"datasource": "k", "object": f"o{i}"}})
    t0 = time.time()
    with c.transaction():
        for i in range(pipelines):
            c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)", (f"p{i:04d}", params(i)))
    create_s = time.time() - t0
    jobs = [{"jid": uuid.uuid4().hex, "name": f"pg_flink/{DB}/p{i:04d}/v1", "state": "RUNNING", "start-time": 0, "end-time": -1,
             "duration": 1, "last-modification": 0, "tasks": {}} for i in range(pipelines)]
    Replay.body = json.dumps({"jobs": jobs}).encode()
    with c.transaction():
        for i in range(pipelines):
            c.execute("SELECT flink.start(%s)", (f"p{i:04d}",))
    # Adoption of every job (first ticks).
    t0 = time.time()
    while c.execute("SELECT count(*) FROM flink.jobs WHERE state = 'RUNNING'").fetchone()[0] < pipelines:
        if time.time() - t0 > 300:
            raise RuntimeError("adoption did not finish in 300 s")
        time.sleep(0.5)
    adopt_s = time.time() - t0
    pid = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker' AND datname = %s", (DB,)).fetchone()[0]
    poll = float(c.execute("SHOW pg_flink.poll_interval_ms").fetchone()[0].rstrip("ms")) / 1000.0
    r0, cpu0, t0 = Replay.requests, worker_cpu_seconds(pid), time.time()
    time.sleep(seconds)
    r1, cpu1, t1 = Replay.requests, worker_cpu_seconds(pid), time.time()
    dup = c.execute("SELECT count(*) FROM (SELECT pipeline FROM flink.jobs GROUP BY pipeline HAVING count(*) > 1) x").fetchone()[0]
    c.execute("DROP EXTENSION pg_flink CASCADE")
    c.close()
    srv.shutdown()
    polls_expected = (t1 - t0) / poll
    return {
        "pipelines": pipelines, "create_pipelines_s": round(create_s, 2), "adopt_all_s": round(adopt_s, 2),
        "steady_seconds": round(t1 - t0, 1), "overview_requests": r1 - r0,
        "requests_per_second": round((r1 - r0) / (t1 - t0), 2), "poll_interval_s": poll,
        "requests_per_poll_cluster": round((r1 - r0) / polls_expected, 2) if polls_expected else None,
        "worker_cpu_s_per_s": round((cpu1 - cpu0) / (t1 - t0), 3), "pipelines_with_duplicate_rows": dup,
    }


def real_jobs(n, seconds):
    """n real pipelines running at once (the stack's 4 slots): worker CPU while tracking them."""
    c = connect()
    c.execute("DROP EXTENSION IF EXISTS pg_flink CASCADE")
    c.execute("CREATE EXTENSION pg_flink")
    c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)", (ENV["PG_FLINK_GATEWAY_URL"], REST))
    c.execute("SELECT * FROM flink.register_datasource('k', 'kafka', %s)", (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"]}),))
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    names = ["real_" + uuid.uuid4().hex[:8] for _ in range(n)]
    for name in names:
        p.produce(f"{name}_in", b'{"n": 1}')
    p.flush(10)
    for name in names:
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)", (name, json.dumps({
            "source": {"datasource": "k", "object": f"{name}_in", "columns": [{"name": "n", "type": "BIGINT"}]},
            "conditions": [{"column": "n", "op": ">", "value": 0}], "sink": {"datasource": "k", "object": f"{name}_out"}})))
        c.execute("SELECT flink.start(%s)", (name,))
    for name in names:
        c.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (name,))
    pid = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker' AND datname = %s", (DB,)).fetchone()[0]
    cpu0, t0 = worker_cpu_seconds(pid), time.time()
    time.sleep(seconds)
    cpu1, t1 = worker_cpu_seconds(pid), time.time()
    for name in names:
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
    for name in names:
        c.execute("SELECT flink.wait(%s, 'stopped', '120 seconds')", (name,))
    c.close()
    return {"real_jobs": n, "seconds": round(t1 - t0, 1), "worker_cpu_s_per_s": round((cpu1 - cpu0) / (t1 - t0), 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transitions", type=int, default=50)
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=30)
    a = ap.parse_args()
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{os.cpu_count()} cores",
           "latency": latency(a.transitions), "real_jobs": real_jobs(4, a.seconds), "scale": scale(a.pipelines, a.seconds)}
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "control_plane.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
