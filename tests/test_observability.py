"""Observability (0.3.0): metrics, freshness, alerts with NOTIFY and webhooks, against the real
stack. The worker samples running pipelines every pg_flink.metrics_interval_ms (1 s here) and
evaluates the alert rules after every round.

Pipelines run in pg_flink_test (served by its worker); webhooks go to a loopback HTTP receiver
in this process; docs/examples/pager.py runs as a subprocess."""
import contextlib
import datetime
import http.server
import json
import os
import select
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg.rows import dict_row

from conftest import ENV, REPO, connect, unique
from lifecycle_invariants import CRASH_LOOP_OPTIONS, holds_for, slots_available, wait_for
from lifecycle_invariants import live_jobs as all_live_jobs
from test_control import ctl, db, identity_of, live_jobs, make_topic  # noqa: F401  (fixtures)

DB = "pg_flink_test"
PAGER = REPO / "docs" / "examples" / "pager.py"
SECRET = "s3cret"


# ------------------------------------------------------------------------------------------------
# fixtures and helpers
# ------------------------------------------------------------------------------------------------
def set_system(settings, timeout=90):
    """ALTER SYSTEM SET (None: RESET) and reload; retried while Postgres restarts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with connect("postgres") as admin:
                for name, value in settings.items():
                    if value is None:
                        admin.execute(f"ALTER SYSTEM RESET {name}")
                    else:
                        admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                admin.execute("SELECT pg_reload_conf()")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.fixture(scope="module", autouse=True)
def fast_metrics(ctl):  # noqa: F811
    """Metrics (and so alert evaluation) every second while this module runs."""
    set_system({"pg_flink.metrics_interval_ms": 1000})
    time.sleep(1.5)  # the workers have reloaded
    yield
    set_system({"pg_flink.metrics_interval_ms": None})


class Listener:
    """Collects the NOTIFY payloads of one channel in a thread: .raw (text) and .payloads (JSON)."""

    def __init__(self, channel):
        self.conn = connect(DB)
        self.conn.execute(f"LISTEN {channel}")
        self.raw, self.payloads, self.error = [], [], None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop.is_set():
                for n in self.conn.notifies(timeout=0.3):
                    self.raw.append(n.payload)
                    self.payloads.append(json.loads(n.payload))
        except psycopg.OperationalError as e:  # Postgres went away: the test will fail on its own
            self.error = e

    def mine(self, **match):
        return [p for p in list(self.payloads) if all(p.get(k) == v for k, v in match.items())]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.conn.close()


class _HookHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        srv = self.server
        with srv.lock:
            plan = srv.plans.get(self.path)
            status = plan.pop(0) if plan else 200
            srv.posts.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                              "body": body, "status": status, "at": time.time()})
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class Receiver(http.server.ThreadingHTTPServer):
    """A loopback webhook receiver: records every POST; plans[path] lists the statuses of the
    next answers on that path (then 200)."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.lock = threading.Lock()
        self.posts, self.plans = [], {}
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def posts_to(self, path):
        with self.lock:
            return [dict(p) for p in self.posts if p["path"] == path]


@pytest.fixture
def receiver():
    srv = Receiver()
    yield srv
    srv.shutdown()
    srv.server_close()


def filter_params(source_topic, sink_topic, sink_options=None):
    p = {"source": {"datasource": "ctl_kafka", "object": source_topic, "columns": [{"name": "n", "type": "BIGINT"}]},
         "conditions": [{"column": "n", "op": ">", "value": 0}],
         "sink": {"datasource": "ctl_kafka", "object": sink_topic}}
    if sink_options:
        p["sink"]["connector_options"] = sink_options
    return p


def create_pipeline(c, name, params, options):
    return c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
                     (name, json.dumps(params), json.dumps(options))).fetchone()


def create_alert(c, name, pipeline, condition, **kw):
    """flink.create_alert with named arguments (window is quoted: it is a keyword)."""
    args = ", ".join([f'"{k}" => %s' if k == "window" else f"{k} => %s" for k in kw])
    sql = f"SELECT flink.create_alert(%s, %s, %s{', ' + args if args else ''})"
    vals = [json.dumps(v) if k == "webhook_headers" and v is not None else v for k, v in kw.items()]
    return c.execute(sql, (name, pipeline, condition, *vals)).fetchone()[0]


def rows(c, sql, params=()):
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def status(c, name):
    r = rows(c, "SELECT * FROM flink.pipeline_status WHERE pipeline = %s", (name,))
    return r[0] if r else None


def metrics(c, name):
    r = rows(c, "SELECT * FROM flink.pipeline_metrics WHERE pipeline = %s", (name,))
    return r[0] if r else None


def open_alerts(c, rule, pipeline):
    return rows(c, "SELECT * FROM flink.alerts WHERE rule = %s AND pipeline = %s", (rule, pipeline))


def history(c, rule, pipeline):
    return rows(c, "SELECT * FROM flink.alert_history WHERE rule = %s AND pipeline = %s ORDER BY id", (rule, pipeline))


def rule_rows(c, rule):
    """The flink.alert_rules rows naming the rule (whatever the column is called)."""
    return [r for r in rows(c, "SELECT * FROM flink.alert_rules") if rule in r.values()]


def restarts_of(c, name):
    """Flink's restart count of the pipeline's job: the newest of the sampled metrics and the job row."""
    m, s = metrics(c, name), status(c, name)
    return max((m or {}).get("restarts") or 0, (s or {}).get("restarts") or 0)


def brief_status(c, name):
    s = status(c, name) or {}
    return {k: s.get(k) for k in ("desired", "actual", "restarts", "last_error", "fresh", "lag")}


def teardown(pipelines=(), rules=()):
    """Drops the rules, then the pipelines (the worker cancels their jobs), and waits a little for
    the jobs to be gone so the next test has its task slots. On a connection of its own (the
    test's may have died with a Postgres restart), retried while Postgres comes back; never raises."""
    deadline = time.monotonic() + 90
    while True:
        try:
            with connect(DB) as c:
                for r in rules:
                    c.execute("SELECT flink.drop_alert(%s, if_exists => true)", (r,))
                for name in pipelines:
                    c.execute("SELECT flink.drop_pipeline(%s, if_exists => true)", (name,))
                idents = [identity_of(c, name) for name in pipelines]
            break
        except psycopg.OperationalError as e:
            if time.monotonic() > deadline:
                print(f"teardown of {pipelines} {rules} gave up: {e}")
                return
            time.sleep(2)
        except psycopg.Error as e:
            print(f"teardown of {pipelines} {rules}: {e}")
            return
    deadline = time.monotonic() + 30
    for ident in idents:
        with contextlib.suppress(Exception):
            while live_jobs(ident) and time.monotonic() < deadline:
                time.sleep(0.5)


def start(c, name):
    """flink.start, once the cluster has a free task slot (another run's jobs can fill the local
    cluster's four; a job then hangs in RESTARTING "Could not acquire the minimum required resources")."""
    deadline = time.monotonic() + 90
    while not slots_available():
        if time.monotonic() > deadline:
            raise AssertionError("no free Flink task slot within 90 s; live jobs: "
                                 f"{[(j['name'], j['state']) for j in all_live_jobs()]}")
        time.sleep(1)
    c.execute("SELECT flink.start(%s)", (name,))


# ------------------------------------------------------------------------------------------------
# 1. Lag and freshness
# ------------------------------------------------------------------------------------------------
# A sink that sends one record per produce request, one request at a time: a few thousand
# records a second on the local stack (measured: 2,500 - 10,000/s), so a burst of BURST records
# keeps the pipeline far behind its 3 s freshness target for 20 - 100 s. It must last well over
# 10 s: the JobManager refreshes the metrics it serves every 10 s (metrics.fetcher.update-interval),
# so a sample can be up to 10 s old (a 100,000-record burst was once read between two refreshes).
SLOW_SINK = {"properties.batch.size": "1", "properties.linger.ms": "0",
             "properties.max.in.flight.requests.per.connection": "1", "properties.acks": "all"}
BURST = 250_000


def produce_burst(topic, n):
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "linger.ms": 20})
    for i in range(n):
        while True:
            try:
                p.produce(topic, json.dumps({"n": i + 2}).encode())
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0, "Kafka did not take the burst"


def topic_end(consumer, topic):
    """How many records the topic's partition 0 holds (its high watermark)."""
    return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1]


def test_a_lagging_pipeline_turns_stale_then_fresh_with_metrics_events_and_notify(db):
    name = unique("obs_lag")
    src, out = f"{name}_in", f"{name}_out"
    make_topic(src)
    create_pipeline(db, name, filter_params(src, out, SLOW_SINK),
                    {"freshness": "3 seconds", "parallelism": 1, "checkpoint_interval": "2 seconds"})
    kafka = Consumer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "group.id": unique("obs_watch")})
    seen = []  # one observation per poll: seconds since the burst, sink records, metrics, status
    t0 = None

    def observe():
        m, s = metrics(db, name), status(db, name)
        seen.append({"t": round(time.monotonic() - (t0 or time.monotonic()), 1), "out": topic_end(kafka, out),
                     "lag_records": m and m["lag_records"], "lag_seconds": m and m["lag_seconds"],
                     "stale": m and m["stale"], "fresh": s and s["fresh"], "sampled_at": m and m["sampled_at"]})
        return m, s

    def timeline():
        """The observations where something changed (sampled_at aside), for failure messages."""
        keep, last = [], None
        for o in seen:
            key = (o["out"] // 10_000, o["lag_records"], o["lag_seconds"], o["stale"], o["fresh"])
            if key != last:
                keep.append({k: v for k, v in o.items() if k != "sampled_at"})
            last = key
        return keep

    try:
        with Listener("flink_job_state") as states:
            start(db, name)
            db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
            job_id, jid = db.execute("SELECT id, flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                                     (name,)).fetchone()
            # Sampled while running and caught up (only the topic's first record): fresh.
            m, s = wait_for(f"{name} sampled and fresh before the burst", observe,
                            until=lambda v: v[0] is not None and v[0]["stale"] is False and v[1]["fresh"] == "fresh",
                            timeout=60)
            assert m["freshness"] == datetime.timedelta(seconds=3), m
            assert s["freshness"] == datetime.timedelta(seconds=3), s
            seen.clear()
            t0 = time.monotonic()
            produce_burst(src, BURST)
            print(f"produced {BURST} records in {time.monotonic() - t0:.1f} s")
            # Watch until the sink has every record and the metrics say caught up and fresh.
            wait_for(f"{name}'s sink to receive the burst and {name} to be caught up and fresh", observe,
                     until=lambda v: seen[-1]["out"] >= BURST + 1 and v[0] and v[0]["lag_records"] == 0
                     and v[0]["stale"] is False and v[1]["fresh"] == "fresh", timeout=180, interval=0.2)
            time.sleep(1)  # the notification of the last transition has arrived
            notes = states.mine(pipeline=name)
        took = next(o["t"] for o in seen if o["out"] >= BURST + 1)
        print(f"the sink had the whole burst {took} s after it began; fresh again at {seen[-1]['t']} s")
        # The pipeline really lagged: its sink needed far longer than the freshness target.
        assert took >= 15, f"the burst was written out in {took} s: too fast to test freshness (a test problem)"
        stale = [o for o in seen if o["stale"] is True and o["fresh"] == "stale"]
        assert stale, (f"never stale (pipeline_metrics.stale / pipeline_status.fresh) although the sink took {took} s "
                       f"for {BURST} records with a 3 s freshness target")
        print(f"stale {stale[0]['t']} s after the burst began")

        m = metrics(db, name)
        assert m["flink_job_id"] == jid, m
        assert m["lag_seconds"] == 0, f"caught up: lag_seconds is 0 ({m})"
        assert m["stale_since"] is None, m
        hist = rows(db, "SELECT * FROM flink.pipeline_metrics_history WHERE pipeline = %s ORDER BY sampled_at", (name,))
        lags = [h["lag_records"] for h in hist]
        assert len(hist) >= 10, f"one history row per round for the {took}+ s: {len(hist)} rows"
        assert max(x or 0 for x in lags) > 0, f"lag_records never above 0 while {BURST} records waited: {lags}"
        assert sum(1 for x in lags if x and x > 0) >= 2, f"several rounds saw the lag: {lags}"
        assert all(x is None or 0 <= x <= BURST + 1 for x in lags), lags
        assert max(h["lag_seconds"] or 0 for h in hist) > 3, [h["lag_seconds"] for h in hist]
        assert any((h["records_in_per_second"] or 0) > 0 for h in hist), [h["records_in_per_second"] for h in hist]
        assert all(h["flink_job_id"] == jid for h in hist), {h["flink_job_id"] for h in hist}
        assert sorted({h["sampled_at"] for h in hist}) == [h["sampled_at"] for h in hist], "one row per sample"

        events = rows(db, "SELECT id, from_state, to_state, detail FROM flink.job_events WHERE pipeline = %s "
                          "AND (from_state IN ('FRESH', 'STALE') OR to_state IN ('FRESH', 'STALE')) ORDER BY id", (name,))
        pairs = [(e["from_state"], e["to_state"]) for e in events]
        assert ("FRESH", "STALE") in pairs, f"job_events freshness transitions: {events}"
        first_stale = pairs.index(("FRESH", "STALE"))
        assert ("STALE", "FRESH") in pairs[first_stale + 1:], f"STALE->FRESH after FRESH->STALE: {events}"
        detail = events[first_stale]["detail"]
        assert "lag" in detail and "freshness" in detail, detail

        to_stale = [n for n in notes if n.get("to") == "STALE"]
        assert to_stale, f"NOTIFY flink_job_state with to STALE for {name}; got {notes}"
        assert to_stale[0]["from"] == "FRESH" and to_stale[0]["job"] in (job_id, jid), to_stale[0]
        assert to_stale[0]["lag_seconds"] > 3 and to_stale[0]["lag_records"] > 0, to_stale[0]
        back = [n for n in notes if n.get("from") == "STALE" and n.get("to") == "FRESH"]
        assert back, f"NOTIFY flink_job_state STALE->FRESH for {name}; got {notes}"
        print(f"timeline: {timeline()}")
    except AssertionError as e:
        raise AssertionError(f"{e}\ntimeline (t: s since the burst, out: records in the sink): {timeline()}\n"
                             f"status: {brief_status(db, name)}") from None
    finally:
        kafka.close()
        teardown([name])


# ------------------------------------------------------------------------------------------------
# 2. A restarting alert: one open alert, one delivery, secrets masked, resolved when fixed
# ------------------------------------------------------------------------------------------------
def create_crash_looping(c, name):
    """Its source topic is never created (until the test fixes it): Flink restarts it every second."""
    src = f"{name}_never_created"
    create_pipeline(c, name, filter_params(src, f"{name}_out"), CRASH_LOOP_OPTIONS)
    return src


def test_a_restarting_alert_fires_once_delivers_its_webhook_and_resolves_when_fixed(db, receiver):
    name = unique("obs_crash")
    rule, flaky = unique("r_restart"), unique("r_flaky")
    src = create_crash_looping(db, name)
    receiver.plans["/flaky"] = [500, 500]
    try:
        with Listener("flink_alert") as alerts:
            assert create_alert(db, rule, name, "restarting", threshold=2, window="5 minutes",
                                webhook_url=receiver.url("/hook"),
                                webhook_headers={"Authorization": f"Bearer {SECRET}"}) == "created"
            # Another rule on the same pipeline whose receiver answers 500 twice, then 200.
            assert create_alert(db, flaky, name, "restarting", threshold=0, window="5 minutes",
                                webhook_url=receiver.url("/flaky")) == "created"
            start(db, name)
            fired = wait_for(f"an open '{rule}' alert for {name}", lambda: open_alerts(db, rule, name),
                             timeout=90, interval=0.3)
            t_fired = time.monotonic()
            assert len(fired) == 1 and fired[0]["condition"] == "restarting", fired
            assert isinstance(fired[0]["detail"], dict), fired[0]
            restarts_at_fire = restarts_of(db, name)
            assert restarts_at_fire > 2, f"fired with {restarts_at_fire} restarts (threshold 2): {brief_status(db, name)}"

            # The flaky webhook: 500, 500 (retried after 1 s, 2 s), then 200.
            flaky_fire = wait_for(f"the '{flaky}' webhook delivered after two 500s",
                                  lambda: [h for h in history(db, flaky, name) if h["event"] == "fired"
                                           and h["webhook_status"] not in (None, "pending")],
                                  timeout=60, interval=0.3)
            assert len(flaky_fire) == 1, flaky_fire
            assert flaky_fire[0]["webhook_status"] == "delivered" and flaky_fire[0]["webhook_attempts"] == 3, flaky_fire
            flaky_posts = receiver.posts_to("/flaky")
            assert [p["status"] for p in flaky_posts] == [500, 500, 200], flaky_posts
            assert len({p["body"] for p in flaky_posts}) == 1, "every attempt posts the same payload"
            gaps = [b["at"] - a["at"] for a, b in zip(flaky_posts, flaky_posts[1:])]
            assert gaps[0] >= 0.8 and gaps[1] >= 1.6, f"backoff 1 s, 2 s between attempts; gaps {gaps}"

            # ~15 s more of crash looping: still one open alert, one 'fired', one POST.
            time.sleep(max(0.0, 15 - (time.monotonic() - t_fired)))
            assert restarts_of(db, name) > restarts_at_fire, \
                f"the job kept crash looping: {brief_status(db, name)}"
            assert len(open_alerts(db, rule, name)) == 1, open_alerts(db, rule, name)
            h = history(db, rule, name)
            assert [x["event"] for x in h] == ["fired"], f"one 'fired' row, not one per round: {h}"
            assert h[0]["suppressed"] is False, h[0]
            assert h[0]["condition"] == "restarting", h[0]
            assert h[0]["webhook_status"] == "delivered" and h[0]["webhook_attempts"] == 1, h[0]
            assert [x["event"] for x in history(db, flaky, name)] == ["fired"], history(db, flaky, name)
            posts = receiver.posts_to("/hook")
            assert len(posts) == 1, f"exactly one POST for the open alert; got {len(posts)}: {posts}"
            post = posts[0]
            assert post["headers"].get("authorization") == f"Bearer {SECRET}", post["headers"]
            assert post["headers"].get("content-type", "").startswith("application/json"), post["headers"]
            body = json.loads(post["body"])
            assert {k: body.get(k) for k in ("rule", "pipeline", "condition", "event")} == \
                {"rule": rule, "pipeline": name, "condition": "restarting", "event": "fired"}, body
            assert isinstance(body.get("detail"), dict) and body.get("at"), body
            notes = alerts.mine(rule=rule, pipeline=name)
            assert [n["event"] for n in notes] == ["fired"], f"one NOTIFY flink_alert 'fired': {notes}"
            assert notes[0] == body, f"the webhook posts the NOTIFY payload: {notes[0]} vs {body}"
            assert notes[0]["condition"] == "restarting", notes[0]

            # The header's value is a secret: masked in alert_rules, absent everywhere else.
            r = rule_rows(db, rule)
            assert len(r) == 1, r
            headers = [v for v in r[0].values() if isinstance(v, dict) and "Authorization" in v]
            assert headers == [{"Authorization": "***"}], r[0]
            for what, text in [("flink.alert_rules", json.dumps(rows(db, "SELECT * FROM flink.alert_rules"), default=str)),
                               ("flink.alert_history", json.dumps(rows(db, "SELECT * FROM flink.alert_history"), default=str)),
                               ("flink.alerts", json.dumps(rows(db, "SELECT * FROM flink.alerts"), default=str)),
                               ("NOTIFY flink_alert", json.dumps(alerts.raw))]:
                assert SECRET not in text, f"the webhook secret shows in {what}: {text}"

            # Fix the cause: the topic exists, restart the pipeline.
            make_topic(src)
            db.execute("SELECT flink.restart(%s)", (name,))
            resolved = wait_for(f"the '{rule}' alert resolved after the fix",
                                lambda: [x for x in history(db, rule, name) if x["event"] == "resolved"],
                                timeout=120, interval=0.3, )
            assert len(resolved) == 1, resolved
            assert open_alerts(db, rule, name) == [], open_alerts(db, rule, name)
            assert db.execute("SELECT flink.wait(%s, 'running', '60 seconds')", (name,)).fetchone()[0] == "RUNNING"
            wait_for("NOTIFY flink_alert 'resolved'", lambda: alerts.mine(rule=rule, pipeline=name, event="resolved"),
                     timeout=10)
            posts = wait_for("the second POST (resolved)", lambda: receiver.posts_to("/hook")[1:], timeout=30)
            body = json.loads(posts[0]["body"])
            assert body["event"] == "resolved" and body["rule"] == rule and body["pipeline"] == name, body
            assert posts[0]["headers"].get("authorization") == f"Bearer {SECRET}", posts[0]["headers"]
            assert body == alerts.mine(rule=rule, pipeline=name, event="resolved")[0]
            assert [x["event"] for x in history(db, rule, name)] == ["fired", "resolved"], history(db, rule, name)
            time.sleep(2)
            assert len(receiver.posts_to("/hook")) == 2, receiver.posts_to("/hook")
            assert SECRET not in json.dumps(alerts.raw), alerts.raw
    except AssertionError as e:
        raise AssertionError(f"{e}\nstatus: {brief_status(db, name)}\nhistory: {history(db, rule, name)}") from None
    finally:
        teardown([name], [rule, flaky])


# ------------------------------------------------------------------------------------------------
# 3. No checkpoint
# ------------------------------------------------------------------------------------------------
# The stack's Flink configuration checkpoints every 10 s; a pipeline without checkpoint_interval
# inherits that. A year between checkpoints is "off" for this test (0 is refused by Flink).
NO_CHECKPOINTS = {"parallelism": 1, "flink": {"execution.checkpointing.interval": "365 d"}}


def test_no_checkpoint_fires_after_its_window_and_resolves_once_checkpoints_complete(db):
    name = unique("obs_nockpt")
    rule = unique("r_nockpt")
    src = f"{name}_in"
    make_topic(src)
    params = filter_params(src, f"{name}_out")
    create_pipeline(db, name, params, NO_CHECKPOINTS)
    try:
        with Listener("flink_alert") as alerts:
            assert create_alert(db, rule, name, "no_checkpoint", window="5 seconds") == "created"
            start(db, name)
            db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
            # Submitted no later than Flink's own start time of the job.
            submitted = db.execute("SELECT COALESCE(submitted_at, started_at) FROM flink.jobs WHERE pipeline = %s "
                                   "ORDER BY id DESC LIMIT 1", (name,)).fetchone()[0]
            fired = wait_for(f"an open '{rule}' alert for {name}", lambda: open_alerts(db, rule, name),
                             timeout=60, interval=0.3)
            assert fired[0]["condition"] == "no_checkpoint", fired
            assert fired[0]["fired_at"] - submitted >= datetime.timedelta(seconds=4.5), \
                f"fired {fired[0]['fired_at'] - submitted} after the job was submitted; the window is 5 s"
            m = metrics(db, name)
            assert m and m["checkpoints_completed"] == 0 and m["last_checkpoint_at"] is None, m
            wait_for("NOTIFY flink_alert 'fired'", lambda: alerts.mine(rule=rule, pipeline=name, event="fired"), timeout=10)

            # Checkpoints every second from now on.
            assert create_pipeline(db, name, params, {"parallelism": 1, "checkpoint_interval": "1 second"})[1] == 2
            db.execute("SELECT flink.restart(%s)", (name,))
            wait_for(f"the '{rule}' alert resolved",
                     lambda: [x for x in history(db, rule, name) if x["event"] == "resolved"], timeout=90, interval=0.3)
            assert open_alerts(db, rule, name) == []
            wait_for("NOTIFY flink_alert 'resolved'", lambda: alerts.mine(rule=rule, pipeline=name, event="resolved"),
                     timeout=10)
            db.execute("SELECT flink.wait(%s, 'running', '60 seconds')", (name,))
            wait_for(f"{name} v2 sampled with completed checkpoints", lambda: metrics(db, name),
                     until=lambda m: m and (m["checkpoints_completed"] or 0) > 0 and m["last_checkpoint_at"], timeout=30)
            # Checkpointing every second, the condition stays clear.
            holds_for(f"no '{rule}' alert while checkpoints complete", lambda: open_alerts(db, rule, name),
                      must=lambda a: a == [], duration=8)
            assert [x["event"] for x in history(db, rule, name)] == ["fired", "resolved"], history(db, rule, name)
    except AssertionError as e:
        raise AssertionError(f"{e}\nstatus: {brief_status(db, name)}\nmetrics: {metrics(db, name)}\n"
                             f"history: {history(db, rule, name)}") from None
    finally:
        teardown([name], [rule])


# ------------------------------------------------------------------------------------------------
# 4. create_alert / drop_alert as SQL entry points
# ------------------------------------------------------------------------------------------------
def test_create_and_drop_alert_are_idempotent_transactional_and_refuse_bad_input(db):
    nowhere = unique("obs_no_such_pipeline")  # rules here never match a pipeline
    rule, hooked, doomed = unique("r_idem"), unique("r_hooked"), unique("r_rolled_back")
    try:
        assert create_alert(db, rule, nowhere, "lag", threshold=30) == "created"
        assert create_alert(db, rule, nowhere, "lag", threshold=30) == "unchanged"
        assert len(rule_rows(db, rule)) == 1
        assert create_alert(db, rule, nowhere, "lag", threshold=60) == "replaced"
        r = rule_rows(db, rule)
        assert len(r) == 1 and 60 in r[0].values() and "lag" in r[0].values(), r
        assert create_alert(db, rule, nowhere, "stale") == "replaced"
        assert create_alert(db, rule, nowhere, "stale") == "unchanged"

        # The same headers (masked when shown) are unchanged; another value replaces the rule.
        hdr = {"Authorization": f"Bearer {SECRET}"}
        assert create_alert(db, hooked, nowhere, "failed", webhook_url="https://127.0.0.1:9/x", webhook_headers=hdr) == "created"
        assert create_alert(db, hooked, nowhere, "failed", webhook_url="https://127.0.0.1:9/x", webhook_headers=hdr) == "unchanged"
        assert create_alert(db, hooked, nowhere, "failed", webhook_url="https://127.0.0.1:9/x",
                            webhook_headers={"Authorization": "Bearer other"}) == "replaced"
        assert SECRET not in json.dumps(rows(db, "SELECT * FROM flink.alert_rules"), default=str)

        # Transactional: a rolled-back create leaves no rule, a rolled-back drop leaves the rule.
        with pytest.raises(psycopg.errors.DivisionByZero):
            with db.transaction():
                assert create_alert(db, doomed, nowhere, "failed") == "created"
                assert len(rule_rows(db, doomed)) == 1
                db.execute("SELECT 1/0")
        assert rule_rows(db, doomed) == []
        with pytest.raises(psycopg.errors.DivisionByZero):
            with db.transaction():
                assert db.execute("SELECT flink.drop_alert(%s)", (rule,)).fetchone()[0] is True
                db.execute("SELECT 1/0")
        assert len(rule_rows(db, rule)) == 1

        # Bad input: 22023 with a hint.
        bad = [  # what, condition, other arguments, what the message must name (one of)
            ("an unknown condition", "bogus_condition", {}, ("bogus_condition",)),
            ("lag without threshold", "lag", {}, ("threshold",)),
            ("no_checkpoint without window", "no_checkpoint", {}, ("window",)),
            ("an ftp webhook_url", "failed", {"webhook_url": "ftp://127.0.0.1/x"}, ("webhook", "ftp://127.0.0.1/x")),
            ("a file webhook_url", "failed", {"webhook_url": "file:///etc/passwd"}, ("webhook", "file:///etc/passwd")),
        ]
        for what, cond, args, named in bad:
            bad_rule = unique("r_bad")
            with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
                create_alert(db, bad_rule, nowhere, cond, **args)
            assert any(n in str(e.value) for n in named), f"{what}: the message names one of {named}: {e.value}"
            assert e.value.diag.message_hint, f"{what}: no hint ({e.value})"
            assert rule_rows(db, bad_rule) == [], f"{what}: the refused rule was stored"

        # drop_alert: true, then 42704 with a hint, or false with if_exists.
        assert db.execute("SELECT flink.drop_alert(%s)", (rule,)).fetchone()[0] is True
        assert rule_rows(db, rule) == []
        with pytest.raises(psycopg.errors.UndefinedObject) as e:
            db.execute("SELECT flink.drop_alert(%s)", (rule,))
        assert rule in str(e.value) and e.value.diag.message_hint, e.value
        assert db.execute("SELECT flink.drop_alert(%s, if_exists => true)", (rule,)).fetchone()[0] is False
    finally:
        teardown([], [rule, hooked, doomed])


# ------------------------------------------------------------------------------------------------
# 5. docs/examples/pager.py
# ------------------------------------------------------------------------------------------------
def test_the_pager_example_prints_a_fired_alert(db):
    name = unique("obs_page")
    rule = unique("r_page")
    # The job fails at runtime (no such topic) and Flink does not restart it: desired running,
    # actual FAILED.
    create_pipeline(db, name, filter_params(f"{name}_never_created", f"{name}_out"),
                    {"flink": {"restart-strategy.type": "none"}})
    assert create_alert(db, rule, name, "not_desired", window="1 second") == "created"
    env = {**os.environ, "PGHOST": ENV["PGHOST"], "PGPORT": ENV["PGPORT"], "PGUSER": ENV["PGUSER"], "PGDATABASE": DB}
    proc = subprocess.Popen([sys.executable, str(PAGER), "1", "90"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        assert ready, "the pager did not say it listens within 20 s"
        line = proc.stderr.readline()
        assert "listening" in line, line
        t0 = time.monotonic()
        start(db, name)
        try:
            out, err = proc.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the pager did not exit; stdout {out!r} stderr {err!r}; "
                                 f"status {brief_status(db, name)}; history {history(db, rule, name)}") from None
        print(f"pager exited {time.monotonic() - t0:.1f} s after the start")
        assert proc.returncode == 0, f"exit {proc.returncode}; stdout {out!r} stderr {err!r}; history {history(db, rule, name)}"
        assert out.splitlines() == [f"ALERT fired {rule} {name} not_desired"], f"stdout {out!r} stderr {err!r}"
        assert [x["event"] for x in history(db, rule, name)][:1] == ["fired"], history(db, rule, name)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        teardown([name], [rule])


def test_the_pager_example_times_out_without_alerts():
    env = {**os.environ, "PGHOST": ENV["PGHOST"], "PGPORT": ENV["PGPORT"], "PGUSER": ENV["PGUSER"], "PGDATABASE": DB}
    r = subprocess.run([sys.executable, str(PAGER), "1", "2"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
