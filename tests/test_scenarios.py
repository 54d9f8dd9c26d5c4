"""End-to-end scenarios on the real stack (Flink 1.20 session cluster, Kafka, Elasticsearch 7,
Postgres): pipelines built with the template vocabulary (source filter, computed columns,
FILTER/round aggregates, renamed window columns, branches with CEP `where`, sync and CDC), run by
the background worker, and their results compared exactly with a ground truth computed here from
the generated data.

Isolation: this module works in databases of its own (`pgflink_scn_<random>` with the
extension, plus a source and a target database for the ETL scenario), never in the shared
`pg_flink_test`; every topic, index and table name carries a random suffix; everything is
dropped at the end. At most two jobs run at once, each with parallelism 1.
"""
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ENV, connect

RUN = uuid.uuid4().hex[:10]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def ts_text(dt):
    """A TIMESTAMP(3) as Flink's JSON format reads it."""
    return f"{dt:%Y-%m-%d %H:%M:%S}.{dt.microsecond // 1000:03d}"


def parse_ts(s):
    """A TIMESTAMP written by Flink's JSON format ('2024-05-01 10:00:00[.fff]' or ISO 'T')."""
    s = s.replace("T", " ").rstrip("Z")
    if "." in s:
        head, frac = s.split(".")
        return datetime.strptime(head, "%Y-%m-%d %H:%M:%S").replace(microsecond=int(frac.ljust(6, "0")[:6]))
    return datetime.strptime(s, "%Y-%m-%d %H:%M:%S")


def make_topic(name, partitions=1):
    admin = AdminClient({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(30)


def produce(topic, rows):
    """Writes JSON rows in order (one partition: Kafka keeps the order) and waits for them."""
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "linger.ms": 5})
    for i, r in enumerate(rows):
        p.produce(topic, json.dumps(r).encode())
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def read_all(topic):
    """Every value of a topic (JSON-decoded), up to the end offsets at call time."""
    c = Consumer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "group.id": f"scn_read_{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return []
        parts = [TopicPartition(topic, p, 0) for p in md.partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        c.assign(parts)
        out, left = [], {p: e for p, e in ends.items() if e > 0}
        t0 = time.time()
        while left and time.time() - t0 < 30:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            out.append(json.loads(m.value()))
            if m.offset() + 1 >= ends[m.partition()]:
                left.pop(m.partition(), None)
        return out
    finally:
        c.close()


def committed_offset(group, topic):
    c = Consumer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def end_offset(topic):
    c = Consumer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "group.id": f"scn_read_{uuid.uuid4().hex[:8]}"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def wait_for(what, pred, timeout, seen=lambda: None, every=1.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s; last seen: {seen()}")


def job_diagnostics(c, name):
    """What the control plane knows of a pipeline: for failure messages."""
    st = c.execute("SELECT desired, actual, healthy, last_error FROM flink.pipeline_status WHERE pipeline = %s",
                   (name,)).fetchall()
    jobs = c.execute("SELECT id, pipeline_version, flink_job_id, state, savepoint_used, last_error FROM flink.jobs"
                     " WHERE pipeline = %s ORDER BY id", (name,)).fetchall()
    ev = c.execute("SELECT from_state, to_state, detail FROM flink.job_events WHERE pipeline = %s ORDER BY id",
                   (name,)).fetchall()
    return f"status={st}\njobs={jobs}\nevents={ev}"


def start(c, name, timeout="120 seconds"):
    c.execute("SELECT flink.start(%s)", (name,))
    try:
        c.execute("SELECT flink.wait(%s, 'running', %s)", (name, timeout))
    except psycopg.Error as e:
        raise AssertionError(f"pipeline {name} did not reach RUNNING: {e}\n{job_diagnostics(c, name)}") from e


def stop(c, name):
    """Cancels the pipeline's job and waits until nothing runs. (Not flink.wait(…, 'stopped'): a
    job that already ended, e.g. a finished sync, stays FINISHED and that wait would time out.)"""
    try:
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
    except psycopg.Error:
        return
    deadline = time.time() + 60
    while time.time() < deadline:
        row = c.execute("SELECT state FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()
        if row is None or row[0] in ("STOPPED", "FINISHED", "CANCELED", "FAILED", "SUBMIT_FAILED", "LOST"):
            return
        time.sleep(0.5)


def fdw_rows(c, sql, want, timeout):
    """Rows of a results table once it has `want` rows (the index/topic appears with the first
    result); then a few more seconds to catch rows that should not be there."""
    last = None

    def ready():
        nonlocal last
        try:
            last = c.execute(sql).fetchall()
        except psycopg.Error as e:
            last = e
            return None
        return last if len(last) >= want else None

    wait_for(f"{want} result rows", ready, timeout, lambda: last if isinstance(last, Exception) else len(last), 2)
    time.sleep(4)
    return c.execute(sql).fetchall()


class Scenario:
    """The module's own database with pg_flink, its cluster and datasources, and what to drop."""

    def __init__(self):
        self.db = f"pgflink_scn_{RUN}"
        self.extra_dbs = []
        self.topics = []
        self.indexes = []
        self.pipelines = []
        self.timings = {}

    def conn(self, db=None):
        return connect(db or self.db)


@pytest.fixture(scope="module")
def scn():
    s = Scenario()
    with connect("postgres") as c:
        c.execute(f'CREATE DATABASE "{s.db}"')
    try:
        with s.conn() as c:
            c.execute("CREATE EXTENSION pg_flink")
            c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)",
                      (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
            c.execute("SELECT * FROM flink.register_datasource('scn_kafka', 'kafka', %s)",
                      (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"]}),))
            c.execute("SELECT * FROM flink.register_datasource('scn_es', 'elasticsearch', %s)",
                      (json.dumps({"url": ENV["PG_FLINK_ES_URL"]}),))
        yield s
    finally:
        with s.conn() as c:
            for p in s.pipelines:
                stop(c, p)
        with connect("postgres") as c:
            for d in s.extra_dbs:
                # The CDC connector's replication slots would keep WAL and block DROP DATABASE.
                deadline = time.time() + 30
                while time.time() < deadline:
                    slots = c.execute("SELECT slot_name, active FROM pg_replication_slots WHERE database = %s", (d,)).fetchall()
                    for slot, active in slots:
                        if not active:
                            c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    if not slots:
                        break
                    time.sleep(1)
            for d in [s.db, *s.extra_dbs]:
                c.execute(f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE)')
        if s.topics:
            admin = AdminClient({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
            for f in admin.delete_topics(s.topics, operation_timeout=30).values():
                try:
                    f.result(30)
                except Exception:  # noqa: BLE001 - a topic the test never got to create
                    pass
        for i in s.indexes:
            requests.delete(f"{ENV['PG_FLINK_ES_URL']}/{i}", timeout=30)
        print("\nscenario timings (s):", {k: round(v, 1) for k, v in s.timings.items()})


# ---------------------------------------------------------------------------------------------
# 1. Orders per minute per region: source filter, computed column, FILTER aggregates, rounded
#    avg, renamed window columns, Kafka -> Elasticsearch, read back from Postgres.
# ---------------------------------------------------------------------------------------------

SEED_ORDERS = 20240501
REGIONS = ["north", "south", "east", "west", "central"]
STATUSES = ["paid", "pending", "cancelled", "refunded"]
T0 = datetime(2024, 5, 1, 10, 0, 0)


def gen_orders(rng, n=2000):
    rows = []
    for i in range(1, n + 1):
        ts = T0 + timedelta(milliseconds=rng.randrange(0, 5 * 60 * 1000))
        amount = Decimal(rng.randint(100, 50000)) / 100  # 1.00 .. 500.00
        if i % 97 == 0:
            amount = Decimal("100.00")  # the boundary of the FILTER (amount > 100)
        rows.append({"order_id": i, "region": rng.choice(REGIONS),
                     "status": rng.choices(STATUSES, weights=[5, 2, 2, 1])[0], "amount": amount, "ts": ts})
    rows.sort(key=lambda r: (r["ts"], r["order_id"]))  # in event-time order: nothing is late
    return rows


def orders_truth(rows):
    """Per (window start, region): what the pipeline must write.

    avg: Flink's AVG of a DECIMAL(10, 2) is SUM (DECIMAL(38, 2)) divided by COUNT, typed
    DECIMAL(38, 6): the division rounds HALF_UP to 6 decimals; ROUND(…, 2) then rounds that
    HALF_UP to 2 decimals. Both steps are reproduced (the double rounding can differ from a single
    rounding of the exact quotient)."""
    g = {}
    for r in rows:
        if r["status"] == "cancelled":  # the source filter
            continue
        ws = r["ts"].replace(second=0, microsecond=0)
        k = (ws, r["region"])
        a = g.setdefault(k, {"orders": 0, "big": 0, "paid": None, "sum": Decimal(0), "tax": Decimal(0), "max": None})
        a["orders"] += 1
        a["big"] += r["amount"] > 100
        if r["status"] == "paid":
            a["paid"] = (a["paid"] or Decimal(0)) + r["amount"]
        a["sum"] += r["amount"]
        a["tax"] += r["amount"] * Decimal("0.25")
        a["max"] = r["amount"] if a["max"] is None else max(a["max"], r["amount"])
    out = {}
    with localcontext() as ctx:
        ctx.prec = 60
        for (ws, region), a in g.items():
            avg6 = (a["sum"] / a["orders"]).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
            avg2 = avg6.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            out[(ws, region)] = (ws + timedelta(minutes=1), a["orders"], a["big"], a["paid"], avg2,
                                 a["tax"].quantize(Decimal("0.0001")), a["max"])
    return out


def test_orders_per_minute_per_region_into_elasticsearch_read_from_postgres(scn):
    t_start = time.time()
    rng = random.Random(SEED_ORDERS)
    print(f"seed {SEED_ORDERS}")
    name = f"scn_opm_{RUN}"
    topic, index = f"{name}_orders", f"{name}_per_minute"
    scn.topics.append(topic)
    scn.indexes.append(index)
    make_topic(topic)
    rows = gen_orders(rng)
    truth = orders_truth(rows)
    assert sum(r["status"] == "cancelled" for r in rows) > 100
    params = {
        "source": {"datasource": "scn_kafka", "object": topic,
                   "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "region", "type": "STRING"},
                               {"name": "status", "type": "STRING"}, {"name": "amount", "type": "DECIMAL(10, 2)"},
                               {"name": "ts", "type": "TIMESTAMP(3)"}],
                   "event_time": "ts", "watermark_delay": "2 seconds",
                   "filter": "status <> 'cancelled'",
                   "computed": [{"name": "tax", "expr": "amount * 0.25", "type": "DECIMAL(12, 4)"}]},
        "window": {"type": "tumble", "size": "1 minute", "start_as": "minute_start", "end_as": "minute_end"},
        "group_by": ["region"],
        "aggregates": [
            {"fn": "count", "as": "orders"},
            {"fn": "count", "as": "big_orders", "filter": "amount > 100"},
            {"fn": "sum", "column": "amount", "as": "paid_revenue", "filter": "status = 'paid'"},
            {"fn": "avg", "column": "amount", "as": "avg_amount", "round": 2},
            {"fn": "sum", "column": "tax", "as": "tax"},
            {"fn": "max", "column": "amount", "as": "biggest"},
        ],
        "sink": {"datasource": "scn_es", "object": index},
    }
    with scn.conn() as c:
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'window_aggregate', %s, %s)",
                  (name, json.dumps(params), json.dumps({"parallelism": 1})))
        scn.pipelines.append(name)
        table = c.execute("SELECT flink.expose_results(%s)::text", (name,)).fetchone()[0]
        assert table == f"flink_results.{name}"
        start(c, name)
        try:
            wire = [{**r, "amount": float(r["amount"]), "ts": ts_text(r["ts"])} for r in rows]
            # Far ahead in event time: the watermark passes every window's end. It is cancelled,
            # so the source filter drops it after it moved the watermark: it opens no window.
            wire.append({"order_id": 999999, "region": "flush", "status": "cancelled", "amount": 1.0,
                         "ts": ts_text(T0 + timedelta(minutes=30))})
            t_sent = time.time()
            produce(topic, wire)
            got_rows = fdw_rows(c, f"SELECT minute_start, minute_end, region, orders, big_orders, paid_revenue,"
                                   f" avg_amount, tax, biggest FROM {table} ORDER BY 1, 3", len(truth), 180)
            scn.timings["orders: results after produce"] = time.time() - t_sent
            got = {(r[0], r[2]): (r[1], *r[3:]) for r in got_rows}
            assert len(got) == len(got_rows), f"seed {SEED_ORDERS}: duplicate windows: " + str(
                [k for k, n in Counter((r[0], r[2]) for r in got_rows).items() if n > 1])
            missing = sorted(set(truth) - set(got))
            extra = sorted(set(got) - set(truth))
            differ = sorted(k for k in set(truth) & set(got) if truth[k] != got[k])
            report = "\n".join([f"seed {SEED_ORDERS}: {len(missing)} missing, {len(extra)} extra, {len(differ)} differing",
                                *(f"  missing {k}: want {truth[k]}" for k in missing[:10]),
                                *(f"  extra {k}: got {got[k]}" for k in extra[:10]),
                                *(f"  differ {k}:\n    want {truth[k]}\n    got  {got[k]}" for k in differ[:10])])
            assert not (missing or extra or differ), report
            # Types as documented: DECIMAL columns read as exact numerics.
            types = dict(c.execute("SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns"
                                   " JOIN pg_attribute ON attrelid = %s::regclass AND attname = column_name"
                                   " WHERE table_schema = 'flink_results' AND table_name = %s", (table, name)).fetchall())
            assert types["avg_amount"] == "numeric(38,2)" and types["paid_revenue"] == "numeric(38,2)", types
            assert types["minute_start"] == "timestamp without time zone", types
        finally:
            stop(c, name)
    scn.timings["orders: test"] = time.time() - t_start


# ---------------------------------------------------------------------------------------------
# 2. Risk control: branches (CEP with `where` on LAST(FAIL.ip) + a threshold filter_alert) into
#    one Kafka topic; a changed threshold deployed with flink.restart, CEP state kept.
# ---------------------------------------------------------------------------------------------

SEED_RISK = 424242
WITHIN = timedelta(minutes=5)
EVENT_COLUMNS = [{"name": "account", "type": "STRING"}, {"name": "kind", "type": "STRING"},
                 {"name": "amount", "type": "DOUBLE"}, {"name": "ip", "type": "STRING"},
                 {"name": "ts", "type": "TIMESTAMP(3)"}]
ALERT_COLUMNS = [{"name": "account", "type": "STRING"}, {"name": "rule", "type": "STRING"},
                 {"name": "amount", "type": "DOUBLE"}, {"name": "at", "type": "TIMESTAMP(3)"}]


def risk_params(topic, alerts, threshold):
    source = {"datasource": "scn_kafka", "object": topic, "columns": EVENT_COLUMNS,
              "event_time": "ts", "watermark_delay": "1 second"}
    sink = {"datasource": "scn_kafka", "object": alerts, "columns": ALERT_COLUMNS}
    return {"branches": [
        {"template": "cep", "params": {
            "source": source, "partition_by": ["account"],
            "pattern": [
                {"var": "FAIL", "quantifier": "{3,}", "conditions": [{"column": "kind", "op": "=", "value": "login_failed"}]},
                # the success must come from the ip of the last failure
                {"var": "OK", "conditions": [{"column": "kind", "op": "=", "value": "login_ok"}],
                 "where": "OK.ip = LAST(FAIL.ip, 0)"}],
            "within": "5 minutes",
            "measures": [{"as": "rule", "var": "OK", "column": "kind"}, {"as": "amount", "var": "OK", "column": "amount"},
                         {"as": "at", "var": "OK", "column": "ts"}],
            "sink": sink}},
        {"template": "filter_alert", "params": {
            "source": source,
            "conditions": [{"column": "kind", "op": "=", "value": "withdrawal"}],
            "where": f"amount >= {threshold}",
            "select": ["account", {"column": "amount"}, {"column": "ts", "as": "at"}],
            "enrich": [{"as": "rule", "value": "large_withdrawal"}],
            "sink": sink}},
    ]}


class Clock:
    """Unique event times (ms), so the order of an account's events is never a tie."""

    def __init__(self):
        self.used = set()

    def at(self, t):
        t = t.replace(microsecond=t.microsecond // 1000 * 1000)  # TIMESTAMP(3)
        while t in self.used:
            t += timedelta(milliseconds=1)
        self.used.add(t)
        return t


def ev(clock, account, kind, t, ip="10.0.0.1", amount=0.0):
    return {"account": account, "kind": kind, "amount": float(amount), "ip": ip, "ts": clock.at(t)}


def gen_noise(rng, clock, base, tag, accounts=40, span=timedelta(minutes=10)):
    out = []
    for a in range(accounts):
        acc = f"{tag}_acc{a:03d}"
        ips = [f"192.168.{a}.{k}" for k in (1, 2)]
        t = base + timedelta(seconds=rng.uniform(0, 30))
        while t < base + span:
            kind = rng.choices(["login_ok", "login_failed", "deposit", "withdrawal"], weights=[3, 4, 2, 2])[0]
            amount = 0.0
            if kind in ("deposit", "withdrawal"):
                amount = round(rng.choice([rng.uniform(10, 4000), rng.uniform(4000, 12000)]), 2)
            out.append(ev(clock, acc, kind, t, rng.choice(ips), amount))
            t += timedelta(seconds=rng.uniform(5, 60))
    return out


def cep_truth(events):
    """Alerts of FAIL{3,} OK (OK.ip = ip of the last FAIL) WITHIN 5 minutes, per account, in
    event-time order, skipping past the last row of a match: (account, 'login_ok', amount, at)."""
    by = defaultdict(list)
    for e in sorted(events, key=lambda e: e["ts"]):
        by[e["account"]].append(e)
    out = []
    for acc, evs in by.items():
        for j, e in enumerate(evs):
            if e["kind"] != "login_ok":
                continue
            k = 0
            while j - 1 - k >= 0 and evs[j - 1 - k]["kind"] == "login_failed":
                k += 1
            if k < 3 or evs[j - 1]["ip"] != e["ip"]:
                continue
            span = e["ts"] - evs[j - 3]["ts"]  # the latest possible start: three failures
            # Stay clear of the WITHIN boundary (strict or not): the data must be unambiguous.
            assert abs(span - WITHIN) > timedelta(seconds=2), f"ambiguous span {span} for {acc} at {e['ts']}"
            if span < WITHIN:
                out.append((acc, "login_ok", e["amount"], e["ts"]))
    return out


def threshold_truth(events, threshold):
    return [(e["account"], "large_withdrawal", e["amount"], e["ts"])
            for e in events if e["kind"] == "withdrawal" and e["amount"] >= threshold]


def planted_incidents(clock, base, tag):
    """Incidents that must alert, and near misses that must not (accounts of their own)."""
    ev_, must = [], []
    t = base
    for i in range(5):  # 3..7 failures, earlier ones from another ip, then a success from the last one's ip
        acc, t = f"{tag}_inc{i}", base + timedelta(seconds=40 * i)
        n = 3 + i
        for f in range(n):
            ev_.append(ev(clock, acc, "login_failed", t + timedelta(seconds=15 * f), "10.9.9.9" if f < n - 1 else f"10.1.{i}.1"))
        ok = ev(clock, acc, "login_ok", t + timedelta(seconds=15 * n + 5), f"10.1.{i}.1", 0.0)
        ev_.append(ok)
        must.append((acc, "login_ok", 0.0, ok["ts"]))
    # success from the first failures' ip, not the last one's: no alert (LAST, not FIRST)
    acc = f"{tag}_nm_ip"
    for f, ip in enumerate(["10.2.0.1", "10.2.0.1", "10.2.0.2"]):
        ev_.append(ev(clock, acc, "login_failed", base + timedelta(seconds=10 * f), ip))
    ev_.append(ev(clock, acc, "login_ok", base + timedelta(seconds=40), "10.2.0.1"))
    # two failures only
    acc = f"{tag}_nm_two"
    for f in range(2):
        ev_.append(ev(clock, acc, "login_failed", base + timedelta(seconds=10 * f), "10.3.0.1"))
    ev_.append(ev(clock, acc, "login_ok", base + timedelta(seconds=30), "10.3.0.1"))
    # too slow: three failures over 8 minutes
    acc = f"{tag}_nm_slow"
    for f in range(3):
        ev_.append(ev(clock, acc, "login_failed", base + timedelta(minutes=4 * f), "10.4.0.1"))
    ev_.append(ev(clock, acc, "login_ok", base + timedelta(minutes=8, seconds=20), "10.4.0.1"))
    # interrupted: a deposit between the failures and the success
    acc = f"{tag}_nm_break"
    for f in range(3):
        ev_.append(ev(clock, acc, "login_failed", base + timedelta(seconds=10 * f), "10.5.0.1"))
    ev_.append(ev(clock, acc, "deposit", base + timedelta(seconds=35), "10.5.0.1", 50))
    ev_.append(ev(clock, acc, "login_ok", base + timedelta(seconds=40), "10.5.0.1"))
    return ev_, must


def wire(events):
    return [{**e, "ts": ts_text(e["ts"])} for e in sorted(events, key=lambda e: e["ts"])]


def alerts_of(topic):
    return Counter((a["account"], a["rule"], a["amount"], parse_ts(a["at"])) for a in read_all(topic))


def compare_alerts(topic, want, what, timeout=150):
    want = Counter(want)
    got = None

    def enough():
        nonlocal got
        got = alerts_of(topic)
        return sum(got.values()) >= sum(want.values())

    wait_for(f"{what}: {sum(want.values())} alerts", enough, timeout,
             lambda: f"{sum(got.values()) if got else 0} alerts", 2)
    time.sleep(5)  # nothing more may come
    got = alerts_of(topic)
    missing, extra = want - got, got - want
    assert not missing and not extra, (f"seed {SEED_RISK}, {what}:\n  missing {sorted(missing.elements())}"
                                       f"\n  extra (false alerts or duplicates) {sorted(extra.elements())}")


def test_risk_rules_branches_then_restart_with_a_new_threshold_keeps_cep_state(scn):
    t_start = time.time()
    rng = random.Random(SEED_RISK)
    print(f"seed {SEED_RISK}")
    name = f"scn_risk_{RUN}"
    topic, alerts = f"{name}_events", f"{name}_alerts"
    scn.topics += [topic, alerts]
    make_topic(topic)
    make_topic(alerts)
    clock = Clock()
    old_threshold, new_threshold = 10000, 5000

    # Phase 1: noise + planted incidents + threshold cases, then a row far ahead in event time.
    noise1 = gen_noise(rng, clock, T0, "p1")
    planted1, must1 = planted_incidents(clock, T0 + timedelta(minutes=1), "p1")
    wd1 = [ev(clock, "p1_wd_at", "withdrawal", T0 + timedelta(seconds=70), amount=old_threshold),
           ev(clock, "p1_wd_above", "withdrawal", T0 + timedelta(seconds=80), amount=25000),
           ev(clock, "p1_wd_below", "withdrawal", T0 + timedelta(seconds=90), amount=old_threshold - 0.01),
           ev(clock, "p1_wd_mid", "withdrawal", T0 + timedelta(seconds=95), amount=7500)]  # alerts only at 5000
    phase1 = noise1 + planted1 + wd1
    flush1 = ev(clock, "zz_flush", "deposit", T0 + timedelta(minutes=20), amount=1)
    truth1 = cep_truth(phase1) + threshold_truth(phase1, old_threshold)
    for m in must1 + [("p1_wd_at", "large_withdrawal", float(old_threshold), wd1[0]["ts"])]:
        assert m in truth1, m
    assert not [a for a in truth1 if a[0].startswith("p1_nm_") or a[0] in ("p1_wd_below", "p1_wd_mid")]

    # Phase 2, before the restart: a CEP sequence begins (2 failures) and a withdrawal between the
    # thresholds (no alert under the old one; re-read after the restart it would alert).
    T1 = T0 + timedelta(minutes=30)
    carry_before = [ev(clock, "p2_carry", "login_failed", T1, "10.7.0.1"),
                    ev(clock, "p2_carry", "login_failed", T1 + timedelta(seconds=10), "10.7.0.1"),
                    ev(clock, "p2_wd_before", "withdrawal", T1 + timedelta(seconds=5), amount=7000)]
    # After the restart: the third failure and the success; the new threshold; more noise.
    carry_after = [ev(clock, "p2_carry", "login_failed", T1 + timedelta(seconds=20), "10.7.0.2"),
                   ev(clock, "p2_carry", "login_ok", T1 + timedelta(seconds=30), "10.7.0.2")]
    noise2 = gen_noise(rng, clock, T1 + timedelta(seconds=15), "p2")
    planted2, must2 = planted_incidents(clock, T1 + timedelta(minutes=1), "p2")
    wd2 = [ev(clock, "p2_wd_at", "withdrawal", T1 + timedelta(seconds=70), amount=new_threshold),
           ev(clock, "p2_wd_mid", "withdrawal", T1 + timedelta(seconds=80), amount=7500),
           ev(clock, "p2_wd_below", "withdrawal", T1 + timedelta(seconds=90), amount=new_threshold - 0.01)]
    after = carry_after + noise2 + planted2 + wd2
    assert min(e["ts"] for e in after) > max(e["ts"] for e in carry_before)
    flush2 = ev(clock, "zz_flush", "deposit", T1 + timedelta(minutes=20), amount=1)
    truth2 = (cep_truth(carry_before + after) + threshold_truth(carry_before, old_threshold)
              + threshold_truth(after, new_threshold))
    carry_alert = ("p2_carry", "login_ok", 0.0, carry_after[1]["ts"])
    assert carry_alert in truth2 and ("p2_wd_mid", "large_withdrawal", 7500.0, wd2[1]["ts"]) in truth2
    assert not [a for a in truth2 if a[0] in ("p2_wd_before", "p2_wd_below") or a[0].startswith("p2_nm_")]
    print(f"phase 1: {len(phase1)} events, {len(truth1)} alerts; phase 2: {len(carry_before) + len(after)} events,"
          f" {len(truth2)} alerts")

    options = {"parallelism": 1, "checkpoint_interval": "2 seconds"}
    with scn.conn() as c:
        r = c.execute("SELECT * FROM flink.create_pipeline(%s, 'branches', %s, %s)",
                      (name, json.dumps(risk_params(topic, alerts, old_threshold)), json.dumps(options))).fetchone()
        assert r == (name, 1, True)
        scn.pipelines.append(name)
        script = c.execute("SELECT flink.render(%s)", (name,)).fetchone()[0]
        assert script.count("CREATE TEMPORARY TABLE") == 2, script  # one source, one sink, shared
        assert "EXECUTE STATEMENT SET" in script and "LAST(FAIL.ip, 0)" in script.replace("`", ""), script
        start(c, name)
        try:
            t_sent = time.time()
            produce(topic, wire(phase1 + [flush1]))
            compare_alerts(alerts, truth1, "phase 1")
            scn.timings["risk: phase 1 alerts"] = time.time() - t_sent

            produce(topic, wire(carry_before))
            group = f"pg_flink.{name}"
            end = end_offset(topic)
            # The job has read them (offsets committed by a checkpoint): from now on they live
            # only in the job's state (the CEP operator buffers rows ahead of the watermark).
            wait_for("the job to commit the offsets of the pre-restart events",
                     lambda: committed_offset(group, topic) >= end, 60, lambda: (committed_offset(group, topic), end))

            r = c.execute("SELECT * FROM flink.create_pipeline(%s, 'branches', %s, %s)",
                          (name, json.dumps(risk_params(topic, alerts, new_threshold)), json.dumps(options))).fetchone()
            assert r == (name, 2, True)
            assert c.execute("SELECT needs_restart FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()[0]
            old_job = c.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                                (name,)).fetchone()[0]
            t_restart = time.time()
            c.execute("SELECT flink.restart(%s)", (name,))
            row = None

            def v2_running():
                nonlocal row
                row = c.execute("SELECT pipeline_version, state, savepoint_used, flink_job_id, last_error FROM flink.jobs"
                                " WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()
                if row[1] in ("FAILED", "SUBMIT_FAILED") and row[0] == 2:
                    raise AssertionError(f"version 2 did not start: {row}\n{job_diagnostics(c, name)}")
                return row[0] == 2 and row[1] == "RUNNING"

            wait_for("version 2 running", v2_running, 150, lambda: f"{row}\n{job_diagnostics(c, name)}", 0.5)
            scn.timings["risk: restart"] = time.time() - t_restart
            sp = c.execute("SELECT path, trigger, pipeline_version FROM flink.savepoints WHERE pipeline = %s ORDER BY 1",
                           (name,)).fetchall()
            assert row[3] != old_job
            assert [s[1:] for s in sp] == [("stop", 1)], sp
            assert row[2] == sp[0][0], f"version 2 resumed from the stop savepoint: {row} {sp}"
            assert c.execute("SELECT needs_restart, running_version FROM flink.pipeline_status WHERE pipeline = %s",
                             (name,)).fetchone() == (False, 2)

            t_sent = time.time()
            produce(topic, wire(after + [flush2]))
            compare_alerts(alerts, truth1 + truth2, "phase 1 + phase 2 (after the restart)")
            scn.timings["risk: phase 2 alerts"] = time.time() - t_sent
        except AssertionError as e:
            raise AssertionError(f"{e}\n{job_diagnostics(c, name)}") from None
        finally:
            stop(c, name)
    scn.timings["risk: test"] = time.time() - t_start


# ---------------------------------------------------------------------------------------------
# 3. ETL: a 100,000-row Postgres table with mixed types and mixed-case columns copied to another
#    Postgres database and to Elasticsearch (sync), then kept in step by CDC.
# ---------------------------------------------------------------------------------------------

ETL_ROWS = 100_000
SEED_ETL = 0.4242

DDL = """CREATE TABLE public.{table} (
  "orderId" bigint PRIMARY KEY,
  "createdAt" timestamptz NOT NULL,
  amount numeric(12,3),
  "Payload" jsonb,
  note text,
  "isPaid" boolean)"""

FILL = f"""INSERT INTO public.etl_orders
SELECT i,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 seconds' + (floor(random() * 1000000))::int * interval '1 microsecond',
       CASE WHEN random() < 0.02 THEN NULL ELSE round((random() * 2000000 - 1000000)::numeric, 3) END,
       CASE WHEN random() < 0.01 THEN NULL
            ELSE jsonb_build_object('sku', 'SKU-' || (i % 997), 'qty', (random() * 10)::int, 'price', round((random() * 100)::numeric, 2),
                                    'tags', jsonb_build_array('a', 'b', i % 7), 'nested', jsonb_build_object('ok', i % 2 = 0, 'ü', 'é"\\\\'))
       END,
       CASE WHEN random() < 0.2 THEN NULL WHEN random() < 0.05 THEN ''
            ELSE 'note ' || i || ' “quoted” ''x'' ü ' || repeat('z', (random() * 20)::int) END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END
FROM generate_series(1, {ETL_ROWS}) AS i"""


# A JDBC sink cannot write a column whose Postgres name needs quoting (Flink binds it as a named
# parameter); the targets have lower-case names and the syncs map the source's names to them.
DDL_LOWER = """CREATE TABLE public.{table} (
  order_id bigint PRIMARY KEY,
  created_at timestamptz NOT NULL,
  amount numeric(12,3),
  payload jsonb,
  note text,
  is_paid boolean)"""
LOWER = {"orderId": "order_id", "createdAt": "created_at", "amount": "amount", "Payload": "payload", "note": "note",
         "isPaid": "is_paid"}
MAPPING = [{"from": k, "to": v} for k, v in LOWER.items()]


def canonical(ts_sql, n=lambda c: f'"{c}"'):
    """One text per row, the same on every side (NULLs marked, jsonb as its canonical text)."""
    return (f"""concat_ws('|', {n("orderId")}::text, to_char({ts_sql}, 'YYYY-MM-DD HH24:MI:SS.US'),"""
            f""" coalesce({n("amount")}::text, '<null>'), coalesce({n("Payload")}::text, '<null>'), coalesce({n("note")}, '<null>'),"""
            f""" coalesce({n("isPaid")}::text, '<null>'))""")


PG_CANON = canonical('''"createdAt" AT TIME ZONE 'UTC' ''')
PG_LOWER_CANON = canonical("created_at AT TIME ZONE 'UTC' ", lambda c: LOWER[c])
ES_CANON = canonical('"createdAt"')  # exposed as a zone-less timestamp (TIMESTAMP(6), UTC on the stack)


def checksums(c, table, canon, key='"orderId"'):
    return dict(c.execute(f"SELECT {key}, md5({canon}) FROM {table}").fetchall())


def compare_tables(src, src_table, dst, dst_table, dst_canon=PG_CANON, what=""):
    """Exact row-by-row comparison by md5 of the canonical text; the differing rows on failure."""
    key = '"orderId"' if dst_canon != PG_LOWER_CANON else "order_id"
    a, b = checksums(src, src_table, PG_CANON), checksums(dst, dst_table, dst_canon, key)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    if missing or extra or differ:
        sample = differ[:5]
        left = src.execute(f'SELECT "orderId", {PG_CANON} FROM {src_table} WHERE "orderId" = ANY(%s) ORDER BY 1',
                           (sample,)).fetchall() if sample else []
        right = dst.execute(f'SELECT {key}, {dst_canon} FROM {dst_table} WHERE {key} = ANY(%s) ORDER BY 1',
                            (sample,)).fetchall() if sample else []
        raise AssertionError(
            f"{what} (seed {SEED_ETL}): {len(a)} source rows, {len(b)} target rows; {len(missing)} missing"
            f" (e.g. {missing[:10]}), {len(extra)} extra (e.g. {extra[:10]}), {len(differ)} differing\n"
            + "\n".join(f"  source {l}\n  target {r}" for l, r in zip(left, right)))
    return len(a)


@pytest.fixture(scope="module")
def etl(scn):
    src_db, dst_db = f"pgflink_scn_{RUN}_src", f"pgflink_scn_{RUN}_dst"
    with connect("postgres") as c:
        for d in (src_db, dst_db):
            c.execute(f'CREATE DATABASE "{d}"')
            scn.extra_dbs.append(d)
    t = time.time()
    with connect(src_db) as c:
        c.execute(DDL.format(table="etl_orders"))
        with c.transaction():
            c.execute("SELECT setseed(%s)", (SEED_ETL,))
            c.execute(FILL)
        c.execute("ANALYZE public.etl_orders")
        stats = c.execute("""SELECT count(*), count(*) FILTER (WHERE note IS NULL), count(*) FILTER (WHERE note = ''),
                                    count(*) FILTER (WHERE "Payload" IS NULL), count(*) FILTER (WHERE "isPaid" IS NULL)
                             FROM public.etl_orders""").fetchone()
        assert stats[0] == ETL_ROWS and all(stats[1:]), stats
    scn.timings["etl: fill source"] = time.time() - t
    with connect(dst_db) as c:
        c.execute(DDL.format(table="etl_orders_mixed"))
        c.execute(DDL_LOWER.format(table="etl_orders_copy"))
        c.execute(DDL_LOWER.format(table="etl_orders_cdc"))
    with scn.conn() as c:
        for ds, d in (("scn_pg_src", src_db), ("scn_pg_dst", dst_db)):
            # The stack's Postgres trusts 127.0.0.1; the password is required by nothing but kept
            # as a secret like a real one.
            c.execute("SELECT * FROM flink.register_datasource(%s, 'postgres', %s, %s)",
                      (ds, json.dumps({"host": ENV["PGHOST"], "port": int(ENV["PGPORT"]), "database": d, "user": "postgres"}),
                       json.dumps({"password": "postgres"})))
    return src_db, dst_db


def wait_finished(c, name, timeout):
    """A bounded job runs to FINISHED; a restart or failure on the way is an error at once."""
    row = None

    def done():
        nonlocal row
        row = c.execute("SELECT state, last_error FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                        (name,)).fetchone()
        if row and row[0] in ("FAILED", "RESTARTING", "SUBMIT_FAILED", "CANCELED"):
            raise AssertionError(f"{name}: job {row[0]}: {row[1]}\n{job_diagnostics(c, name)}")
        return row and row[0] == "FINISHED"

    wait_for(f"{name} FINISHED", done, timeout, lambda: f"{row}\n{job_diagnostics(c, name)}", 1)


def sync_pipeline(c, scn, name, sink, mapping=None):
    # Columns read from the source table (describe_datasource): mixed-case names included.
    params = {"source": {"datasource": "scn_pg_src", "object": "public.etl_orders"}, "sink": sink}
    if mapping:
        params["mapping"] = mapping
    c.execute("SELECT * FROM flink.create_pipeline(%s, 'sync', %s, %s)", (name, json.dumps(params),
                                                                         json.dumps({"parallelism": 1})))
    scn.pipelines.append(name)


def test_etl_sync_postgres_to_elasticsearch_exact(scn, etl):
    t_start = time.time()
    src_db, _ = etl
    name = f"scn_etl_es_{RUN}"
    index = f"{name}_orders"
    scn.indexes.append(index)
    with scn.conn() as c, connect(src_db) as src:
        sync_pipeline(c, scn, name, {"datasource": "scn_es", "object": index, "primary_key": ["orderId"]})
        table = c.execute("SELECT flink.expose_results(%s)::text", (name,)).fetchone()[0]
        types = dict(c.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                               " WHERE attrelid = %s::regclass AND attnum > 0", (table,)).fetchall())
        # docs/type-mapping.md: timestamptz is read as TIMESTAMP(6) (UTC on the stack), jsonb as STRING.
        assert {k: types.get(k) for k in ("orderId", "createdAt", "amount", "Payload", "note", "isPaid")} == {
            "orderId": "bigint", "createdAt": "timestamp without time zone", "amount": "numeric(12,3)",
            "Payload": "text", "note": "text", "isPaid": "boolean"}, types
        t = time.time()
        c.execute("SELECT flink.start(%s)", (name,))  # bounded: it may finish before RUNNING is seen
        try:
            wait_finished(c, name, 240)
            scn.timings["etl es: sync finished"] = time.time() - t
            requests.post(f"{ENV['PG_FLINK_ES_URL']}/{index}/_refresh", timeout=30).raise_for_status()
            es_count = requests.get(f"{ENV['PG_FLINK_ES_URL']}/{index}/_count", timeout=30).json()["count"]
            assert es_count == ETL_ROWS, es_count
            # Document ids are the primary key.
            doc = requests.get(f"{ENV['PG_FLINK_ES_URL']}/{index}/_doc/4242", timeout=30).json()
            assert doc["found"] and doc["_source"]["orderId"] == 4242, doc
            t = time.time()
            assert compare_tables(src, "public.etl_orders", c, table, ES_CANON, what="postgres -> elasticsearch") == ETL_ROWS
            scn.timings["etl es: compare via expose_results"] = time.time() - t
        finally:
            stop(c, name)
    scn.timings["etl es: test"] = time.time() - t_start


def test_etl_sync_postgres_to_postgres_exact(scn, etl):
    t_start = time.time()
    src_db, dst_db = etl
    name = f"scn_etl_pg_{RUN}"
    with scn.conn() as c, connect(src_db) as src, connect(dst_db) as dst:
        # Writing columns whose names need quoting is refused when the pipeline is created, not
        # a job failing at runtime.
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            sync_pipeline(c, scn, name, {"datasource": "scn_pg_dst", "object": "public.etl_orders_mixed",
                                         "primary_key": ["orderId"]})
        assert 'params.sink.columns: Postgres column "orderId" needs quoting' in str(e.value), str(e.value)
        assert "mapping" in e.value.diag.message_hint
        sync_pipeline(c, scn, name, {"datasource": "scn_pg_dst", "object": "public.etl_orders_copy", "primary_key": ["order_id"]},
                      MAPPING)
        t = time.time()
        c.execute("SELECT flink.start(%s)", (name,))
        try:
            wait_finished(c, name, 240)
            scn.timings["etl pg: sync finished"] = time.time() - t
            assert compare_tables(src, "public.etl_orders", dst, "public.etl_orders_copy", PG_LOWER_CANON,
                                  what="postgres -> postgres") == ETL_ROWS
        finally:
            stop(c, name)
    scn.timings["etl pg: test"] = time.time() - t_start


def test_etl_cdc_postgres_to_postgres_follows_inserts_updates_deletes(scn, etl):
    t_start = time.time()
    src_db, dst_db = etl
    with connect(src_db) as src:
        wal = src.execute("SHOW wal_level").fetchone()[0]
    assert wal == "logical", f"CDC needs wal_level = logical on the stack's Postgres, it is {wal!r}"
    name = f"scn_etl_cdc_{RUN}"
    with scn.conn() as c, connect(src_db) as src, connect(dst_db) as dst:
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'sync', %s, %s)", (name, json.dumps({
            "source": {"datasource": "scn_pg_src", "object": "public.etl_orders", "cdc": True, "primary_key": ["orderId"]},
            "sink": {"datasource": "scn_pg_dst", "object": "public.etl_orders_cdc", "primary_key": ["order_id"]},
            "mapping": MAPPING}),
            json.dumps({"parallelism": 1, "checkpoint_interval": "5 seconds"})))
        scn.pipelines.append(name)
        t = time.time()
        c.execute("SELECT flink.start(%s)", (name,))
        try:
            count = lambda: dst.execute("SELECT count(*) FROM public.etl_orders_cdc").fetchone()[0]  # noqa: E731
            failed = lambda: c.execute("SELECT state, last_error FROM flink.jobs WHERE pipeline = %s"  # noqa: E731
                                       " ORDER BY id DESC LIMIT 1", (name,)).fetchone()

            def snapshot_done():
                st = failed()
                assert st is None or st[0] not in ("FAILED", "RESTARTING", "FINISHED", "CANCELED"), \
                    f"CDC job {st}\n{job_diagnostics(c, name)}"
                return st is not None and st[0] == "RUNNING" and count() >= ETL_ROWS

            wait_for("the CDC snapshot in the target", snapshot_done, 240, lambda: (count(), failed()), 2)
            scn.timings["cdc: snapshot"] = time.time() - t
            compare_tables(src, "public.etl_orders", dst, "public.etl_orders_cdc", PG_LOWER_CANON, what="cdc snapshot")
            # Changes: 50 inserts, 50 updates (every column but the key), 50 deletes.
            with src.transaction():
                src.execute("SELECT setseed(0.77)")
                src.execute(FILL.replace(
                    f"generate_series(1, {ETL_ROWS})", f"generate_series({ETL_ROWS + 1}, {ETL_ROWS + 50})"))
            updated = src.execute("""UPDATE public.etl_orders SET amount = amount * -1 + 0.001, note = coalesce(note, '') || ' upd',
                           "Payload" = coalesce("Payload", '{}') || '{"updated": true}', "isPaid" = NOT coalesce("isPaid", false),
                           "createdAt" = "createdAt" + interval '1.5 seconds'
                           WHERE "orderId" %% 2000 = 7 AND "orderId" <= %s""", (ETL_ROWS,)).rowcount
            assert updated == ETL_ROWS // 2000
            deleted = src.execute("""DELETE FROM public.etl_orders WHERE "orderId" %% 2000 = 13 AND "orderId" <= %s""",
                                  (ETL_ROWS,)).rowcount
            assert deleted == ETL_ROWS // 2000
            t = time.time()
            deadline = t + 30
            while True:
                try:
                    compare_tables(src, "public.etl_orders", dst, "public.etl_orders_cdc", PG_LOWER_CANON, what="cdc changes")
                    break
                except AssertionError as e:
                    if time.time() > deadline:
                        raise AssertionError(f"CDC changes not in the target within 30 s: {e}\n"
                                             f"{job_diagnostics(c, name)}") from None
                    time.sleep(1)
            scn.timings["cdc: changes arrived"] = time.time() - t
            assert dst.execute("SELECT count(*) FROM public.etl_orders_cdc").fetchone()[0] == ETL_ROWS
        finally:
            stop(c, name)
    scn.timings["cdc: test"] = time.time() - t_start
