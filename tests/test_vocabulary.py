"""The pipeline vocabulary end to end: source filters and computed columns, aggregate FILTERs,
rounded and cast outputs, renamed window columns, late rows to a sink of their own, top_n
(continuous and per window), lookup_join, temporal_join, interval_join with strict and zero
bounds, CEP with undefined variables, `where` over earlier rows and SKIP TO NEXT ROW, NOT NULL
column types, raw SQL with several INSERTs as one job, datagen and print kinds, and expressions
refused at create time. Real jobs on the shared Flink 1.20 cluster (parallelism 1, one job of
this module at a time), real Kafka, Elasticsearch and Postgres; every expected result is
computed here from the input (fixed seeds, printed on failure).

The module runs in a database of its own (created and dropped here), served by its own worker.
"""
import contextlib
import datetime as dt
import json
import random
import time
import uuid
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ENV, connect

PAR = {"parallelism": 1}
TERMINAL = ("FINISHED", "CANCELED", "FAILED")
KAFKA = ENV["PG_FLINK_KAFKA"]
ES = ENV["PG_FLINK_ES_URL"]


def uid(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --- the module's database ----------------------------------------------------------------

@pytest.fixture(scope="module")
def vdb():
    name = f"pgflink_voc_{uuid.uuid4().hex[:10]}"
    with connect("postgres") as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        with connect(name) as c:
            c.execute("CREATE EXTENSION pg_flink")
            c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)",
                      (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
            c.execute("SELECT * FROM flink.register_datasource('voc_kafka', 'kafka', %s)",
                      (json.dumps({"bootstrap_servers": KAFKA}),))
            c.execute("SELECT * FROM flink.register_datasource('voc_es', 'elasticsearch', %s)",
                      (json.dumps({"url": ES}),))
            c.execute("SELECT * FROM flink.register_datasource('voc_pg', 'postgres', %s, %s)",
                      (json.dumps({"host": ENV["PGHOST"], "port": int(ENV["PGPORT"]), "database": name,
                                   "user": "postgres"}), None))
            c.execute("SELECT * FROM flink.register_datasource('voc_gen', 'datagen', %s)",
                      (json.dumps({"rows_per_second": 5}),))
            c.execute("SELECT * FROM flink.register_datasource('voc_print', 'print', '{}')")
        yield name
    finally:
        try:
            with connect(name) as c:
                names = [r[0] for r in c.execute("SELECT pipeline FROM flink.pipeline_status WHERE desired = 'running'")]
                for n in names:
                    c.execute("SELECT flink.stop(%s, with_savepoint => false)", (n,))
                for n in names:
                    with contextlib.suppress(psycopg.Error):
                        c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (n,))
        finally:
            with connect("postgres") as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(vdb):
    with connect(vdb) as c:
        yield c


# --- Kafka, Flink and pipeline helpers -----------------------------------------------------

def make_topic(name, partitions=1):
    admin = AdminClient({"bootstrap.servers": KAFKA})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(30)


def produce(topic, records, key=None):
    p = Producer({"bootstrap.servers": KAFKA, "linger.ms": 5})
    for r in records:
        p.produce(topic, json.dumps(r).encode(), key=None if key is None else json.dumps(key(r)).encode())
    assert p.flush(30) == 0


def read_topic(topic):
    """Every message of `topic` up to its current end: [(key bytes, value dict or None)]."""
    c = Consumer({"bootstrap.servers": KAFKA, "group.id": uid("voc_reader"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            return []
        parts = [TopicPartition(topic, p, 0) for p in md.partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        c.assign(parts)
        out, left = [], {p for p, e in ends.items() if e > 0}
        t0 = time.time()
        while left and time.time() - t0 < 30:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            out.append((m.key(), None if m.value() is None else json.loads(m.value())))
            if m.offset() + 1 >= ends[m.partition()]:
                left.discard(m.partition())
        return out
    finally:
        c.close()


def values(topic):
    return [v for _, v in read_topic(topic)]


def ts(t):
    """A timestamp as Flink's JSON format reads it (SQL form, milliseconds)."""
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def parse_ts(s):
    return None if s is None else dt.datetime.fromisoformat(s.replace("T", " "))


def jobs_overview():
    return requests.get(ENV["PG_FLINK_REST_URL"] + "/jobs/overview", timeout=10).json()["jobs"]


def identity_of(c, name):
    return c.execute(
        "SELECT format('pg_flink/%%s/%%s/%%s/%%s', s.system_identifier, d.oid, d.datname, %s::text) "
        "FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()", (name,)).fetchone()[0]


def live_jobs_of(c, name):
    ident = identity_of(c, name) + "/v"
    return [j for j in jobs_overview() if j["name"].startswith(ident) and j["state"] not in TERMINAL]


def diagnosis(c, name):
    st = c.execute("SELECT desired, actual, restarts, last_error FROM flink.pipeline_status WHERE pipeline = %s",
                   (name,)).fetchone()
    ev = c.execute("SELECT from_state, to_state, left(detail, 2000) FROM flink.job_events WHERE pipeline = %s ORDER BY id",
                   (name,)).fetchall()
    return f"pipeline_status={st}\njob_events={ev}"


def create(c, name, template, params, options=PAR):
    c.execute("SELECT * FROM flink.create_pipeline(%s, %s, %s, %s)",
              (name, template, json.dumps(params), json.dumps(options)))


@contextlib.contextmanager
def running(c, name):
    """Starts pipeline `name`, waits for RUNNING; stops it (no savepoint) when the block ends."""
    try:
        c.execute("SELECT flink.start(%s)", (name,))
        try:
            c.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (name,))
        except psycopg.Error as e:
            raise AssertionError(f"{name} did not reach RUNNING: {e}\n{diagnosis(c, name)}") from e
        yield
    finally:
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
        with contextlib.suppress(psycopg.Error):
            c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (name,))


def wait_until(c, name, what, probe, timeout=120, required=True):
    """Polls probe() until it returns a true value; fails at once (with Flink's error) if the job
    fails or restarts. On timeout: fails if `required`, else returns None (the caller then
    compares what is there, showing the differing rows)."""
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        last = probe()
        if last:
            return last
        st = c.execute("SELECT actual, restarts FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()
        if st and (st[0] in ("FAILED", "RESTARTING") or (st[1] or 0) > 0):
            raise AssertionError(f"{name}: job {st} while waiting for {what}\n{diagnosis(c, name)}")
        time.sleep(1)
    if required:
        raise AssertionError(f"{name}: {what} not within {timeout} s; last seen: {last}\n{diagnosis(c, name)}")
    return None


def settle(c, name, read, want_len, timeout=120, quiet=3):
    """Waits until read() has at least want_len items, then `quiet` more seconds, and returns a
    fresh read (so that extra or duplicate rows show up)."""
    wait_until(c, name, f"{want_len} result rows", lambda: len(read()) >= want_len or None, timeout, required=False)
    time.sleep(quiet)
    return read()


def diff(seed, got, want):
    got_s, want_s = sorted(got, key=repr), sorted(want, key=repr)
    missing = [w for w in want_s if w not in got_s]
    extra = [g for g in got_s if g not in want_s]
    return f"seed {seed}: {len(missing)} missing {missing[:20]}, {len(extra)} unexpected {extra[:20]}"


def norm(v):
    """Decimals compared by value (45.9 == 45.90), in rows and lists of rows."""
    if isinstance(v, Decimal):
        return v.normalize()
    if isinstance(v, (tuple, list)):
        return tuple(norm(x) for x in v)
    return v


def assert_same(seed, got, want):
    got, want = [norm(g) for g in got], [norm(w) for w in want]
    assert sorted(got, key=repr) == sorted(want, key=repr), diff(seed, got, want)


def half_up(x, places):
    return x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


# --- 1. window_aggregate: filter, computed keys, FILTER, count_distinct, round, type, renames ---

def test_window_aggregate_with_source_filter_computed_keys_and_aggregate_options(db):
    seed = 9101
    rng = random.Random(seed)
    name = uid("voc_win")
    src, out = f"{name}_in", f"{name}_out"
    make_topic(src)
    urls = ["/api/a", "/api/b", "/api/c", "/home"]
    t = dt.datetime(2024, 12, 31, 23, 57, 0)
    rows = []
    for i in range(160):
        t += dt.timedelta(milliseconds=rng.randrange(200, 2600))
        rows.append({"status": rng.choice([200, 200, 403, 403, 404, 500]), "url": rng.choice(urls),
                     "bytes": rng.randrange(0, 5000), "auction": rng.randrange(1, 40),
                     "price": f"{rng.randrange(1, 100000) / 100:.2f}", "ts": t})
    # Moves the watermark (2 s delay) past every window but its own.
    rows.append({"status": 500, "url": "/api/z", "bytes": 1, "auction": 1, "price": "1.00",
                 "ts": t + dt.timedelta(minutes=10)})
    watermark = rows[-1]["ts"] - dt.timedelta(seconds=2)
    groups = defaultdict(list)
    for r in rows:
        if r["status"] >= 400:  # the source filter
            start = r["ts"].replace(second=0, microsecond=0)
            end = start + dt.timedelta(minutes=1)
            if end <= watermark:
                groups[(start, end, r["auction"] % 3, r["ts"].strftime("%Y-%m-%d"))].append(r)
    want = []
    for (start, end, bucket, day), rs in groups.items():
        not404 = [r["bytes"] for r in rs if r["status"] != 404]
        avg = half_up(sum(Decimal(r["price"]) for r in rs) / len(rs), 6)
        want.append((start, end, bucket, day, len(rs), sum(1 for r in rs if r["status"] == 403),
                     len({r["url"] for r in rs}), len({r["url"] for r in rs if r["status"] == 403}),
                     half_up(avg, 2), float(sum(not404)) if not404 else None))
    assert len({k[3] for k in groups}) == 2 and len(want) > 10  # windows on both days
    produce(src, [dict(r, ts=ts(r["ts"])) for r in rows])
    params = {
        "source": {"datasource": "voc_kafka", "object": src, "event_time": "ts", "watermark_delay": "2 seconds",
                   "columns": [{"name": "status", "type": "INT"}, {"name": "url", "type": "STRING"},
                               {"name": "bytes", "type": "BIGINT"}, {"name": "auction", "type": "BIGINT"},
                               {"name": "price", "type": "DECIMAL(10, 2)"}, {"name": "ts", "type": "TIMESTAMP(3)"}],
                   "filter": "status >= 400",
                   "computed": [{"name": "bucket", "expr": "MOD(auction, 3)", "type": "BIGINT"},
                                {"name": "day", "expr": "DATE_FORMAT(ts, 'yyyy-MM-dd')", "type": "STRING"}]},
        "window": {"type": "tumble", "size": "1 minute", "start_as": "starttime", "end_as": "endtime"},
        "group_by": ["bucket", "day"],
        "aggregates": [{"fn": "count", "as": "errors"},
                       {"fn": "count", "as": "forbidden", "filter": "status = 403"},
                       {"fn": "count_distinct", "column": "url", "as": "urls"},
                       {"fn": "count_distinct", "column": "url", "as": "forbidden_urls", "filter": "status = 403"},
                       {"fn": "avg", "column": "price", "as": "avg_price", "round": 2},
                       {"fn": "sum", "column": "bytes", "as": "bytes_not_404", "filter": "status <> 404", "type": "DOUBLE"}],
        # Declared sink columns, in another order than the query's.
        "sink": {"datasource": "voc_kafka", "object": out,
                 "columns": [{"name": "day", "type": "STRING"}, {"name": "bucket", "type": "BIGINT"},
                             {"name": "starttime", "type": "TIMESTAMP(3)"}, {"name": "endtime", "type": "TIMESTAMP(3)"},
                             {"name": "errors", "type": "BIGINT"}, {"name": "forbidden", "type": "BIGINT"},
                             {"name": "urls", "type": "BIGINT"}, {"name": "forbidden_urls", "type": "BIGINT"},
                             {"name": "avg_price", "type": "DECIMAL(38, 2)"},
                             {"name": "bytes_not_404", "type": "DOUBLE"}]},
    }
    create(db, name, "window_aggregate", params)
    sink = db.execute("SELECT flink.pipeline_sink(%s)", (name,)).fetchone()[0]
    assert [c["name"] for c in sink["columns"]] == [c["name"] for c in params["sink"]["columns"]]
    ok, detail, _ = db.execute("SELECT * FROM flink.validate(%s)", (name,)).fetchone()
    assert ok, detail
    with running(db, name):
        got = settle(db, name, lambda: values(out), len(want))
    got = [(parse_ts(v["starttime"]), parse_ts(v["endtime"]), v["bucket"], v["day"], v["errors"], v["forbidden"],
            v["urls"], v["forbidden_urls"], Decimal(str(v["avg_price"])), v["bytes_not_404"]) for v in got]
    print(f"seed {seed}: {len(want)} windows")
    assert_same(seed, got, want)


# --- 2. late rows ---------------------------------------------------------------------------

def test_late_rows_go_to_their_topic_and_on_time_rows_are_aggregated_exactly(db):
    seed = 9102
    rng = random.Random(seed)
    name = uid("voc_late")
    src, out, late = f"{name}_in", f"{name}_out", f"{name}_late"
    make_topic(src)
    cities = ["Oslo", "Rome", "Lima"]
    base = dt.datetime(2024, 5, 1, 10, 0, 0)
    at = lambda s: base + dt.timedelta(milliseconds=round(s * 1000))  # noqa: E731

    def row(s):
        return {"city": rng.choice(cities), "amount": f"{rng.randrange(1, 10000) / 100:.2f}", "ts": at(s)}

    # Phase 1, on time (ascending): 10:00:00 - 10:02:59.
    phase1 = [row(s) for s in sorted(rng.uniform(0, 179.9) for _ in range(40))]
    # Phase 2: one row at 10:10:00 moves the watermark (5 s delay) to 10:09:55.
    adv1 = [{"city": "Oslo", "amount": "1.00", "ts": at(600)}]
    # Phase 3, late: older than the watermark, in fired windows and in the unfired 10:09 window.
    phase3 = [row(s) for s in [5, 65.5, 130, 300, 570, 590.25]]
    phase3 += [row(rng.uniform(0, 594.9)) for _ in range(10)]
    # Phase 4: on time again (10:10:30 > watermark), then 10:20:00 fires the 10:10 window.
    phase4 = [row(630)]
    adv2 = [{"city": "Rome", "amount": "2.00", "ts": at(1200)}]
    on_time = phase1 + adv1 + phase4
    # The source filter leaves Lima out of both (it is not the pipeline's input); the late rows
    # carry the computed column too.
    kept = lambda rs: [r for r in rs if r["city"] != "Lima"]  # noqa: E731
    want = defaultdict(lambda: [0, Decimal(0)])
    for r in kept(on_time):
        start = r["ts"].replace(second=0, microsecond=0)
        e = want[(start, start + dt.timedelta(minutes=1), r["city"].upper())]
        e[0] += 1
        e[1] += Decimal(r["amount"])
    want = [(s, e, c, n, total) for (s, e, c), (n, total) in want.items()]
    want_late = [(r["city"], Decimal(r["amount"]), r["ts"], r["city"].upper()) for r in kept(phase3)]
    assert len(kept(phase3)) < len(phase3) and len(kept(phase1)) < len(phase1)
    params = {
        "source": {"datasource": "voc_kafka", "object": src, "event_time": "ts", "watermark_delay": "5 seconds",
                   "columns": [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DECIMAL(10, 2)"},
                               {"name": "ts", "type": "TIMESTAMP(3)"}],
                   "filter": "city <> 'Lima'",
                   "computed": [{"name": "city_uc", "expr": "UPPER(city)", "type": "STRING"}],
                   "late": {"datasource": "voc_kafka", "object": late}},
        "window": {"type": "tumble", "size": "1 minute"},
        "group_by": ["city_uc"],
        "aggregates": [{"fn": "count", "as": "orders"}, {"fn": "sum", "column": "amount", "as": "revenue"}],
        "sink": {"datasource": "voc_kafka", "object": out},
    }
    create(db, name, "window_aggregate", params)

    def windows():
        return [(parse_ts(v["window_start"]), parse_ts(v["window_end"]), v["city_uc"], v["orders"],
                 Decimal(str(v["revenue"]))) for v in values(out)]

    def late_rows():
        return [(v["city"], Decimal(str(v["amount"])), parse_ts(v["ts"]), v["city_uc"]) for v in values(late)]

    enc = lambda rs: [dict(r, ts=ts(r["ts"])) for r in rs]  # noqa: E731
    with running(db, name):
        produce(src, enc(phase1))
        time.sleep(2)
        produce(src, enc(adv1))
        # The windows of phase 1 fired: the watermark is at 10:09:55.
        fired = [w for w in want if w[1] <= at(595)]
        assert fired and len(fired) < len(want)
        got = settle(db, name, windows, len(fired), quiet=2)
        assert_same(seed, got, fired)
        produce(src, enc(phase3))
        settle(db, name, late_rows, len(want_late), quiet=2)
        produce(src, enc(phase4))
        time.sleep(2)
        produce(src, enc(adv2))
        got = settle(db, name, windows, len(want))
        got_late = late_rows()
    print(f"seed {seed}: {len(kept(on_time))} on time, {len(kept(phase3))} late")
    assert_same(seed, got_late, want_late)
    assert_same(seed, got, want)
    # Together exactly the (filtered) input but the last row (its window has not fired): none
    # lost, none twice.
    assert sum(w[3] for w in got) + len(got_late) == len(kept(phase1 + adv1 + phase3 + phase4))


# --- 3. top_n -------------------------------------------------------------------------------

def test_continuous_top_n_into_elasticsearch_ends_as_the_true_top_3(db):
    seed = 9103
    rng = random.Random(seed)
    name = uid("voc_top")
    src, index = f"{name}_in", f"{name}_idx"
    make_topic(src)
    cats = ["books", "games", "tools", "toys"]
    sales = rng.sample(range(1, 100000), 150)  # distinct: no ties in the ranking
    rows = [{"category": rng.choice(cats), "product": f"p{i}", "sales": s} for i, s in enumerate(sales)]
    want = []
    for cat in cats:
        top = sorted((r for r in rows if r["category"] == cat), key=lambda r: -r["sales"])[:3]
        want += [(cat, rank, r["product"], r["sales"]) for rank, r in enumerate(top, 1)]
    params = {"source": {"datasource": "voc_kafka", "object": src,
                         "columns": [{"name": "category", "type": "STRING"}, {"name": "product", "type": "STRING"},
                                     {"name": "sales", "type": "BIGINT NOT NULL"}]},
              "partition_by": ["category"], "order_by": [{"column": "sales", "desc": True}], "n": 3,
              "sink": {"datasource": "voc_es", "object": index}}
    create(db, name, "top_n", params)
    t = db.execute("SELECT flink.expose_results(%s, 'voc_results')::text", (name,)).fetchone()[0]
    q = f"SELECT category, rank_no, product, sales FROM {t}"
    try:
        with running(db, name):
            # In two halves: the top changes while the job runs.
            produce(src, rows[:75])
            time.sleep(3)
            produce(src, rows[75:])

            def current():
                with contextlib.suppress(psycopg.Error):
                    got = db.execute(q).fetchall()
                    return got if sorted(got) == sorted(want) else None
            wait_until(db, name, "the final top 3", current, timeout=90, required=False)
            time.sleep(3)
            got = db.execute(q).fetchall()
        print(f"seed {seed}")
        assert_same(seed, got, want)
    finally:
        requests.delete(f"{ES}/{index}", timeout=30)


def test_top_n_per_tumbling_window_is_exact_with_its_rank_column(db):
    seed = 9104
    rng = random.Random(seed)
    name = uid("voc_wtop")
    src, out = f"{name}_in", f"{name}_out"
    make_topic(src)
    base = dt.datetime(2024, 5, 1, 10, 0, 0)
    prices = rng.sample(range(1, 10000), 120)
    t = base
    rows = []
    for i, price in enumerate(prices):
        t += dt.timedelta(milliseconds=rng.randrange(100, 900))
        rows.append({"auction": rng.choice([1, 2]), "bidder": 100 + i, "price": price, "ts": t})
    rows.append({"auction": 1, "bidder": 1, "price": 1, "ts": t + dt.timedelta(minutes=2)})
    watermark = rows[-1]["ts"] - dt.timedelta(seconds=1)
    per = defaultdict(list)
    for r in rows:
        start = r["ts"].replace(second=r["ts"].second // 10 * 10, microsecond=0)
        end = start + dt.timedelta(seconds=10)
        if end <= watermark:
            per[(start, end, r["auction"])].append(r)
    want = []
    for (start, end, auction), rs in per.items():
        for rank, r in enumerate(sorted(rs, key=lambda r: -r["price"])[:3], 1):
            want.append((start, end, auction, r["bidder"], r["price"], r["ts"], rank))
    produce(src, [dict(r, ts=ts(r["ts"])) for r in rows])
    params = {"source": {"datasource": "voc_kafka", "object": src, "event_time": "ts", "watermark_delay": "1 second",
                         "columns": [{"name": "auction", "type": "BIGINT"}, {"name": "bidder", "type": "BIGINT"},
                                     {"name": "price", "type": "BIGINT"}, {"name": "ts", "type": "TIMESTAMP(3)"}]},
              "partition_by": ["auction"], "order_by": [{"column": "price", "desc": True}], "n": 3,
              "window": {"type": "tumble", "size": "10 seconds"}, "rank_as": "place",
              "sink": {"datasource": "voc_kafka", "object": out}}
    create(db, name, "top_n", params)
    with running(db, name):
        got = settle(db, name, lambda: values(out), len(want))
    got = [(parse_ts(v["window_start"]), parse_ts(v["window_end"]), v["auction"], v["bidder"], v["price"],
            parse_ts(v["ts"]), v["place"]) for v in got]
    print(f"seed {seed}: {len(per)} windows x auctions")
    assert_same(seed, got, want)


# --- 4. lookup_join -------------------------------------------------------------------------

def test_lookup_join_enriches_from_postgres_and_left_keeps_orders_without_customer(db):
    seed = 9105
    rng = random.Random(seed)
    name = uid("voc_look")
    src, out = f"{name}_in", f"{name}_out"
    table = f"public.{name}_customers"
    make_topic(src)
    customers = {i: (f"cust-{i}", rng.choice(["gold", "silver", None])) for i in range(1, 21)}
    db.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, name text, tier text)")
    with db.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)", [(k, n, t) for k, (n, t) in customers.items()])
    orders = [{"order_id": i, "customer_id": rng.randrange(1, 31), "amount": f"{rng.randrange(1, 99999) / 100:.2f}"}
              for i in range(1, 61)]
    want = [(o["order_id"], Decimal(o["amount"]), *customers.get(o["customer_id"], (None, None))) for o in orders]
    assert any(o["customer_id"] > 20 for o in orders) and any(o["customer_id"] <= 20 for o in orders)
    produce(src, orders)
    params = {"source": {"datasource": "voc_kafka", "object": src,
                         "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "customer_id", "type": "BIGINT"},
                                     {"name": "amount", "type": "DECIMAL(10, 2)"}]},
              "lookup": {"datasource": "voc_pg", "object": table,
                         "columns": [{"name": "id", "type": "BIGINT"}, {"name": "name", "type": "STRING"},
                                     {"name": "tier", "type": "STRING"}]},
              "on": [{"left": "customer_id", "right": "id"}],
              "select": [{"side": "left", "column": "order_id"}, {"side": "left", "column": "amount"},
                         {"side": "right", "column": "name", "as": "customer"}, {"side": "right", "column": "tier"}],
              "join": "left", "cache": {"max_rows": 1000, "ttl": "10 minutes"},
              "sink": {"datasource": "voc_kafka", "object": out}}
    create(db, name, "lookup_join", params)
    assert "'lookup.cache' = 'PARTIAL'" in db.execute("SELECT flink.render(%s)", (name,)).fetchone()[0]
    t = db.execute("SELECT flink.expose_results(%s, 'voc_results')::text", (name,)).fetchone()[0]
    q = f"SELECT order_id, amount, customer, tier FROM {t}"

    def read():
        with contextlib.suppress(psycopg.Error):
            return db.execute(q).fetchall()
        return []
    with running(db, name):
        got = settle(db, name, read, len(want))
    print(f"seed {seed}")
    assert_same(seed, got, want)


# --- 5. temporal_join -----------------------------------------------------------------------

@pytest.mark.parametrize("join", ["inner", "left"])
def test_temporal_join_uses_the_rate_valid_at_each_orders_event_time(db, join):
    seed = 9106
    rng = random.Random(seed)
    name = uid("voc_temp")
    orders_t, rates_t, out = f"{name}_orders", f"{name}_rates", f"{name}_out"
    make_topic(orders_t)
    make_topic(rates_t)
    base = dt.datetime(2024, 5, 1, 10, 0, 0)
    at = lambda s: base + dt.timedelta(milliseconds=round(s * 1000))  # noqa: E731
    # Rate changes per currency at known times (the first at 10:00:10: earlier orders have no rate).
    rates = []
    for cur in ["USD", "GBP", "JPY"]:
        for s in sorted(rng.sample(range(10, 300), 6)):
            rates.append({"currency": cur, "rate": f"{rng.randrange(5000, 20000) / 10000:.4f}", "updated_at": at(s)})
    rates.sort(key=lambda r: r["updated_at"])
    orders = []
    for i in range(1, 61):
        orders.append({"order_id": i, "currency": rng.choice(["USD", "GBP", "JPY"]),
                       "amount": f"{rng.randrange(100, 100000) / 100:.2f}", "ts": at(rng.uniform(0, 320))})
    # Boundary: an order at exactly a rate change's time gets the new rate.
    r0 = rates[len(rates) // 2]
    orders.append({"order_id": 61, "currency": r0["currency"], "amount": "1.00", "ts": r0["updated_at"]})
    orders.sort(key=lambda o: o["ts"])
    want = []
    for o in orders:
        valid = [r for r in rates if r["currency"] == o["currency"] and r["updated_at"] <= o["ts"]]
        if valid:
            r = max(valid, key=lambda r: r["updated_at"])
            want.append((o["order_id"], Decimal(o["amount"]), Decimal(r["rate"]), o["ts"], r["updated_at"]))
        elif join == "left":  # kept, without a rate
            want.append((o["order_id"], Decimal(o["amount"]), None, o["ts"], None))
    # Some orders precede their currency's first rate.
    assert sum(1 for w in want if w[2] is not None) < len(orders)
    # Both streams' watermarks move past every order.
    orders.append({"order_id": 9999, "currency": "ADV", "amount": "1.00", "ts": at(1000)})
    rates.append({"currency": "ADV", "rate": "1.0000", "updated_at": at(1000)})
    produce(rates_t, [dict(r, updated_at=ts(r["updated_at"])) for r in rates])
    produce(orders_t, [dict(o, ts=ts(o["ts"])) for o in orders])
    params = {"source": {"datasource": "voc_kafka", "object": orders_t, "event_time": "ts", "watermark_delay": "5 seconds",
                         "columns": [{"name": "order_id", "type": "BIGINT NOT NULL"}, {"name": "currency", "type": "STRING"},
                                     {"name": "amount", "type": "DECIMAL(10, 2)"}, {"name": "ts", "type": "TIMESTAMP(3)"}]},
              "versions": {"datasource": "voc_kafka", "object": rates_t, "event_time": "updated_at",
                           "watermark_delay": "5 seconds",
                           "columns": [{"name": "currency", "type": "STRING"}, {"name": "rate", "type": "DECIMAL(10, 4)"},
                                       {"name": "updated_at", "type": "TIMESTAMP(3)"}]},
              "on": [{"left": "currency", "right": "currency"}],
              "select": [{"side": "left", "column": "order_id"}, {"side": "left", "column": "amount"},
                         {"side": "right", "column": "rate"}, {"side": "left", "column": "ts"},
                         {"side": "right", "column": "updated_at", "as": "rate_time"}],
              "join": join,
              "sink": {"datasource": "voc_kafka", "object": out}}
    create(db, name, "temporal_join", params)
    with running(db, name):
        got = settle(db, name, lambda: values(out), len(want))
    got = [(v["order_id"], Decimal(str(v["amount"])), None if v["rate"] is None else Decimal(str(v["rate"])),
            parse_ts(v["ts"]), parse_ts(v["rate_time"])) for v in got]
    print(f"seed {seed}: {join} join, {len(want)} rows for {len(orders) - 1} orders")
    assert_same(seed, got, want)


# --- 6. interval_join -----------------------------------------------------------------------

def test_interval_join_with_zero_before_and_strict_after_keeps_exactly_the_bounded_pairs(db):
    seed = 9107
    rng = random.Random(seed)
    name = uid("voc_ij")
    left_t, right_t, out = f"{name}_orders", f"{name}_payments", f"{name}_out"
    make_topic(left_t)
    make_topic(right_t)
    base = dt.datetime(2024, 5, 1, 10, 0, 0)
    ms = lambda m: base + dt.timedelta(milliseconds=m)  # noqa: E731
    orders = [{"order_id": i, "amount": f"{rng.randrange(100, 9999) / 100:.2f}", "ts": ms(i * 20000)} for i in range(1, 31)]
    payments = []
    for o in orders:
        t0 = o["ts"]
        for off in rng.sample([-1, 0, 1, 30000, 59999, 60000, 60001, -5000], 3):
            payments.append({"order_id": o["order_id"], "method": f"m{off}", "paid_at": t0 + dt.timedelta(milliseconds=off)})
    # The boundaries at least once each: at the order time (in), 1 ms before (out),
    # exactly one minute after (out: strict), 1 ms less (in).
    for oid, off in [(1, 0), (2, -1), (3, 60000), (4, 59999)]:
        o = orders[oid - 1]
        payments.append({"order_id": oid, "method": f"b{off}", "paid_at": o["ts"] + dt.timedelta(milliseconds=off)})
    payments.sort(key=lambda p: p["paid_at"])
    by_id = {o["order_id"]: o for o in orders}
    want = [(p["order_id"], by_id[p["order_id"]]["ts"], p["paid_at"], p["method"]) for p in payments
            if by_id[p["order_id"]]["ts"] <= p["paid_at"] < by_id[p["order_id"]]["ts"] + dt.timedelta(minutes=1)]
    produce(left_t, [dict(o, ts=ts(o["ts"])) for o in orders])
    produce(right_t, [dict(p, paid_at=ts(p["paid_at"])) for p in payments])
    params = {"left": {"datasource": "voc_kafka", "object": left_t, "event_time": "ts", "watermark_delay": "5 seconds",
                       "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "amount", "type": "DECIMAL(10, 2)"},
                                   {"name": "ts", "type": "TIMESTAMP(3)"}]},
              "right": {"datasource": "voc_kafka", "object": right_t, "event_time": "paid_at", "watermark_delay": "5 seconds",
                        "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "method", "type": "STRING"},
                                    {"name": "paid_at", "type": "TIMESTAMP(3)"}]},
              "on": [{"left": "order_id", "right": "order_id"}],
              "within": {"before": "0 seconds", "after": "1 minute", "strict_after": True},
              "select": [{"side": "left", "column": "order_id"}, {"side": "left", "column": "ts", "as": "ordered_at"},
                         {"side": "right", "column": "paid_at"}, {"side": "right", "column": "method"}],
              "sink": {"datasource": "voc_kafka", "object": out}}
    create(db, name, "interval_join", params)
    with running(db, name):
        got = settle(db, name, lambda: values(out), len(want), quiet=5)
    got = [(v["order_id"], parse_ts(v["ordered_at"]), parse_ts(v["paid_at"]), v["method"]) for v in got]
    print(f"seed {seed}: {len(want)} of {len(payments)} payments in bounds")
    assert {w[3] for w in want} >= {"b0", "b59999"} and not {w[3] for w in want} & {"b-1", "b60000"}
    assert_same(seed, got, want)


# --- 7. CEP ---------------------------------------------------------------------------------

def reference_price_drops(prices):
    """Matches of HIGH DOWN{2,} UP, SKIP TO NEXT ROW, over one partition's (price, ts) list.
    HIGH is any row; DOWN rows fall strictly (the first below HIGH, each below the previous
    DOWN); UP is above the average of the DOWN rows. A falling row can never be UP (it is below
    the last DOWN, hence below their average), so from each start there is one path."""
    out = []
    for i in range(len(prices)):
        downs, j = [], i + 1
        while j < len(prices) and prices[j][0] < (downs[-1] if downs else prices[i][0]):
            downs.append(prices[j][0])
            j += 1
        if len(downs) >= 2 and j < len(prices) and prices[j][0] > sum(downs) / len(downs):
            out.append((prices[i][0], min(downs), sum(downs) / len(downs), prices[j][1]))
    return out


def test_cep_with_an_undefined_variable_where_over_earlier_rows_and_skip_to_next_row(db):
    seed = 9108
    rng = random.Random(seed)
    name = uid("voc_cep")
    src, out = f"{name}_in", f"{name}_out"
    make_topic(src)
    base = dt.datetime(2024, 5, 1, 10, 0, 0)
    rows, t = [], base
    series = defaultdict(list)
    for i in range(240):
        t += dt.timedelta(milliseconds=rng.randrange(100, 1500))
        sym = rng.choice(["AAA", "BBB"])
        last = series[sym][-1][0] if series[sym] else 50
        # Mostly falling runs with recoveries: many matches, some overlapping.
        price = float(max(1, last + rng.choice([-3, -2, -1, -1, 0, 1, 2, 4, 6])))
        series[sym].append((price, t))
        rows.append({"symbol": sym, "price": price, "ts": t})
    rows.append({"symbol": "ZZZ", "price": 1.0, "ts": t + dt.timedelta(minutes=5)})
    want = [(sym, *m) for sym, ps in series.items() for m in reference_price_drops(ps)]
    assert len(want) >= 5
    produce(src, [dict(r, ts=ts(r["ts"])) for r in rows])
    params = {"source": {"datasource": "voc_kafka", "object": src, "event_time": "ts", "watermark_delay": "1 second",
                         "columns": [{"name": "symbol", "type": "STRING"}, {"name": "price", "type": "DOUBLE"},
                                     {"name": "ts", "type": "TIMESTAMP(3)"}]},
              "partition_by": ["symbol"],
              "pattern": [{"var": "HIGH"},
                          {"var": "DOWN", "quantifier": "{2,}",
                           "where": "(LAST(DOWN.price, 1) IS NULL AND DOWN.price < HIGH.price) OR DOWN.price < LAST(DOWN.price, 1)"},
                          {"var": "UP", "where": "UP.price > AVG(DOWN.price)"}],
              "within": "1 hour", "after_match": "to_next_row",
              "measures": [{"as": "start_price", "var": "HIGH", "column": "price", "fn": "first"},
                           {"as": "bottom", "var": "DOWN", "column": "price", "fn": "min"},
                           {"as": "avg_down", "var": "DOWN", "column": "price", "fn": "avg"},
                           {"as": "recovered_at", "var": "UP", "column": "ts", "fn": "last"}],
              "sink": {"datasource": "voc_kafka", "object": out}}
    create(db, name, "cep", params)
    with running(db, name):
        got = settle(db, name, lambda: values(out), len(want))
    got = [(v["symbol"], v["start_price"], v["bottom"], round(v["avg_down"], 9), parse_ts(v["recovered_at"])) for v in got]
    want = [(s, a, b, round(c, 9), d) for s, a, b, c, d in want]
    print(f"seed {seed}: {len(want)} matches")
    assert_same(seed, got, want)


# --- 8. NOT NULL types ----------------------------------------------------------------------

def test_not_null_column_types_are_accepted_and_the_job_runs(db):
    name = uid("voc_nn")
    src, out = f"{name}_in", f"{name}_out"
    make_topic(src)
    rows = [{"id": i, "tag": f"t{i % 3}", "n": i * 7} for i in range(1, 21)]
    produce(src, rows)
    params = {"source": {"datasource": "voc_kafka", "object": src,
                         "columns": [{"name": "id", "type": "BIGINT NOT NULL"}, {"name": "tag", "type": "STRING NOT NULL"},
                                     {"name": "n", "type": "INT NOT NULL"}]},
              "conditions": [{"column": "n", "op": ">", "value": 50}],
              "sink": {"datasource": "voc_kafka", "object": out,
                       "columns": [{"name": "id", "type": "BIGINT NOT NULL"}, {"name": "tag", "type": "STRING"},
                                   {"name": "n", "type": "BIGINT"}]}}
    create(db, name, "filter_alert", params)
    script = db.execute("SELECT flink.render(%s)", (name,)).fetchone()[0]
    assert "`id` BIGINT NOT NULL" in script and "`tag` STRING NOT NULL" in script, script
    ok, detail, _ = db.execute("SELECT * FROM flink.validate(%s)", (name,)).fetchone()
    assert ok, detail
    want = [r for r in rows if r["n"] > 50]
    with running(db, name):
        got = settle(db, name, lambda: values(out), len(want))
    assert_same(0, got, want)


# --- 9. raw SQL with two INSERTs ------------------------------------------------------------

def test_raw_sql_with_two_inserts_is_one_job_and_its_first_table_is_exposed(db):
    seed = 9109
    rng = random.Random(seed)
    name = uid("voc_raw")
    src, totals, big = f"{name}_orders", f"{name}_totals", f"{name}_big"
    make_topic(src)
    orders = [{"city": rng.choice(["Oslo", "Rome", "Lima", "Kyiv"]), "amount": float(rng.randrange(1, 2000))}
              for _ in range(80)]
    want_totals = defaultdict(float)
    for o in orders:
        want_totals[o["city"]] += o["amount"]
    want_big = [(o["city"], o["amount"]) for o in orders if o["amount"] > 1000]
    produce(src, orders)
    refs = {"o": f"voc_kafka.{src}", "t": f"voc_kafka.{totals}", "b": f"voc_kafka.{big}"}
    params = {"sql": (f"INSERT INTO {{{{{refs['t']}}}}} SELECT city, SUM(amount) AS total FROM {{{{{refs['o']}}}}} GROUP BY city;\n"
                      f"INSERT INTO {{{{{refs['b']}}}}} SELECT city, amount FROM {{{{{refs['o']}}}}} WHERE amount > 1000"),
              "tables": {refs["o"]: {"columns": [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DOUBLE"}]},
                         refs["t"]: {"columns": [{"name": "city", "type": "STRING"}, {"name": "total", "type": "DOUBLE"}],
                                     "primary_key": ["city"]},
                         refs["b"]: {"columns": [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DOUBLE"}]}}}
    create(db, name, "sql", params)
    sink = db.execute("SELECT flink.pipeline_sink(%s)", (name,)).fetchone()[0]
    assert sink is not None, "pipeline_sink of a raw SQL pipeline with declared written tables"
    assert (sink["datasource"], sink["kind"], sink["object"]) == ("voc_kafka", "kafka", totals), sink
    assert [(c["name"], c["flink_type"]) for c in sink["columns"]] == [("city", "STRING"), ("total", "DOUBLE")], sink
    t = db.execute("SELECT flink.expose_results(%s, 'voc_results')::text", (name,)).fetchone()[0]
    cols = [r[0] for r in db.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'voc_results'"
                                     " AND table_name = %s ORDER BY ordinal_position", (name,))]
    assert "city" in cols and "total" in cols, cols

    def latest_totals():
        with contextlib.suppress(psycopg.Error):
            rows = db.execute(f"SELECT DISTINCT ON (_key) city, total FROM {t} ORDER BY _key, _offset DESC").fetchall()
            return rows if dict(rows) == dict(want_totals) else None
        return None
    with running(db, name):
        jobs = live_jobs_of(db, name)
        assert len(jobs) == 1, jobs
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 1
        plan = requests.get(f"{ENV['PG_FLINK_REST_URL']}/jobs/{jobs[0]['jid']}/plan", timeout=10).json()
        got_big = settle(db, name, lambda: values(big), len(want_big))
        wait_until(db, name, "the final totals", latest_totals, timeout=60, required=False)
        time.sleep(2)
        got_totals = dict(db.execute(f"SELECT DISTINCT ON (_key) city, total FROM {t} ORDER BY _key, _offset DESC").fetchall())
        assert len(live_jobs_of(db, name)) == 1
    # Both INSERTs are in that one job: a writer of each table.
    desc = " ".join(n["description"] for n in plan["plan"]["nodes"])
    assert f"voc_kafka_{totals}[" in desc and f"voc_kafka_{big}[" in desc, desc
    assert_same(seed, [(v["city"], v["amount"]) for v in got_big], want_big)
    assert got_totals == dict(want_totals), diff(seed, got_totals.items(), want_totals.items())


# --- 10. datagen and print ------------------------------------------------------------------

def test_datagen_source_and_print_sink_run_and_stop_cleanly(db):
    name = uid("voc_gen")
    params = {"source": {"datasource": "voc_gen", "object": "orders",
                         "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "amount", "type": "INT"}],
                         "connector_options": {"fields.order_id.kind": "sequence", "fields.order_id.start": "1",
                                               "fields.order_id.end": "1000000", "fields.amount.min": "1",
                                               "fields.amount.max": "2000"}},
              "conditions": [{"column": "amount", "op": ">", "value": 1000}],
              "sink": {"datasource": "voc_print", "object": name}}
    create(db, name, "filter_alert", params)
    script = db.execute("SELECT flink.render(%s)", (name,)).fetchone()[0]
    assert "'connector' = 'datagen'" in script and "'rows-per-second' = '5'" in script, script
    assert "'connector' = 'print'" in script, script
    ok, detail, _ = db.execute("SELECT * FROM flink.validate(%s)", (name,)).fetchone()
    assert ok, detail
    db.execute("SELECT flink.start(%s)", (name,))
    try:
        db.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (name,))
        jid = db.execute("SELECT flink_job_id FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0]
        time.sleep(4)
        st = db.execute("SELECT actual, restarts FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()
        assert st == ("RUNNING", 0), f"{st}\n{diagnosis(db, name)}"
        # It really produces: the print sink has received rows.
        vertices = requests.get(f"{ENV['PG_FLINK_REST_URL']}/jobs/{jid}", timeout=10).json()["vertices"]
        assert vertices and all(v["status"] == "RUNNING" for v in vertices), vertices
    finally:
        db.execute("SELECT flink.stop(%s)", (name,))  # with a savepoint
        try:
            assert db.execute("SELECT flink.wait(%s, 'stopped', '90 seconds')", (name,)).fetchone()[0] == "STOPPED"
        except psycopg.Error as e:
            db.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
            raise AssertionError(f"{e}\n{diagnosis(db, name)}") from e
    state = [j["state"] for j in jobs_overview() if j["jid"] == jid]
    assert state and state[0] in ("FINISHED", "CANCELED"), state
    assert live_jobs_of(db, name) == []
    assert db.execute("SELECT count(*) FROM flink.savepoints WHERE pipeline = %s", (name,)).fetchone()[0] == 1


@pytest.mark.parametrize("role", ["sink", "source"])
def test_datagen_as_a_sink_and_print_as_a_source_are_refused_naming_the_parameter(db, role):
    name = uid("voc_kind")
    params = {"source": {"datasource": "voc_kafka", "object": "x_in", "columns": [{"name": "n", "type": "BIGINT"}]},
              "conditions": [{"column": "n", "op": ">", "value": 0}],
              "sink": {"datasource": "voc_kafka", "object": "x_out", "columns": [{"name": "n", "type": "BIGINT"}]}}
    if role == "sink":
        params["sink"]["datasource"] = "voc_gen"
        words = ["params.sink.datasource", '"voc_gen"', "datagen", "only be a source"]
    else:
        params["source"]["datasource"] = "voc_print"
        words = ["params.source.datasource", '"voc_print"', "print", "only be a sink"]
    with pytest.raises(psycopg.Error) as e:
        create(db, name, "filter_alert", params)
    assert e.value.diag.sqlstate == "42809", (e.value.diag.sqlstate, str(e.value))
    for w in words:
        assert w in str(e.value), str(e.value)
    assert name in str(e.value) and e.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = %s", (name,)).fetchone() == (0,)


# --- 11. expressions refused at create time -------------------------------------------------

def expr_params(filter_=None, computed=None, agg_filter=None):
    source = {"datasource": "voc_kafka", "object": "x_in", "event_time": "ts",
              "columns": [{"name": "status", "type": "INT"}, {"name": "url", "type": "STRING"},
                          {"name": "ts", "type": "TIMESTAMP(3)"}]}
    if filter_ is not None:
        source["filter"] = filter_
    if computed is not None:
        source["computed"] = computed
    agg = {"fn": "count", "as": "n"}
    if agg_filter is not None:
        agg["filter"] = agg_filter
    return {"source": source, "window": {"type": "tumble", "size": "1 minute"}, "group_by": ["url"],
            "aggregates": [{"fn": "count", "as": "all_rows"}, agg],
            "sink": {"datasource": "voc_kafka", "object": "x_out"}}


BREAKOUTS = ["1); DROP TABLE x; --", "a) OR (1=1", "x FROM t", "(SELECT 1)"]


def cep_params(where):
    return {"source": {"datasource": "voc_kafka", "object": "x_in", "event_time": "ts",
                       "columns": [{"name": "status", "type": "INT"}, {"name": "url", "type": "STRING"},
                                   {"name": "ts", "type": "TIMESTAMP(3)"}]},
            "pattern": [{"var": "A"}, {"var": "B", "where": where}],
            "measures": [{"as": "n", "var": "B", "fn": "count"}],
            "sink": {"datasource": "voc_kafka", "object": "x_out"}}


@pytest.mark.parametrize("where,text", [(w, t) for w in ("filter", "computed", "aggregate", "cep") for t in BREAKOUTS] + [
    ("filter", "status = 403 -- ignore the rest"), ("filter", "status = 403 /* x */"),
    ("computed", "status, url"), ("aggregate", "status = 1; SELECT 1"), ("cep", "B.status > 1) DEFINE C AS (TRUE"),
], ids=lambda v: v if v in ("filter", "computed", "aggregate", "cep") else None)
def test_expressions_that_would_break_out_are_refused_at_create_time(db, where, text):
    name = uid("voc_expr")
    path = {"filter": "params.source.filter", "computed": "params.source.computed[0].expr",
            "aggregate": "params.aggregates[1].filter", "cep": "params.pattern[1].where"}[where]
    params = {"filter": lambda: expr_params(filter_=text),
              "computed": lambda: expr_params(computed=[{"name": "c", "expr": text, "type": "STRING"}]),
              "aggregate": lambda: expr_params(agg_filter=text),
              "cep": lambda: cep_params(text)}[where]()
    with pytest.raises(psycopg.Error) as e:
        create(db, name, "cep" if where == "cep" else "window_aggregate", params)
    assert e.value.diag.sqlstate == "22023", (e.value.diag.sqlstate, str(e.value))
    msg = str(e.value)
    assert f'pipeline "{name}": {path}: the expression' in msg, msg
    assert e.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = %s", (name,)).fetchone() == (0,)


@pytest.mark.parametrize("where", ["filter", "computed", "aggregate", "cep"])
def test_an_unknown_column_in_an_expression_is_named_with_the_path_and_the_columns(db, where):
    name = uid("voc_col")
    if where == "cep":
        template = "cep"
        path = "params.pattern[1].where"
        params = cep_params("B.stauts > A.status")
    else:
        template = "window_aggregate"
        path = {"filter": "params.source.filter", "computed": "params.source.computed[0].expr",
                "aggregate": "params.aggregates[1].filter"}[where]
        text = "stauts = 403"
        params = {"filter": lambda: expr_params(filter_=text),
                  "computed": lambda: expr_params(computed=[{"name": "c", "expr": text, "type": "BOOLEAN"}]),
                  "aggregate": lambda: expr_params(agg_filter=text)}[where]()
    with pytest.raises(psycopg.Error) as e:
        create(db, name, template, params)
    assert e.value.diag.sqlstate == "22023", (e.value.diag.sqlstate, str(e.value))
    msg, hint = str(e.value), e.value.diag.message_hint or ""
    assert f'pipeline "{name}": {path}:' in msg and '"stauts"' in msg, msg
    assert "status" in hint and "url" in hint and "ts" in hint, hint
    assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = %s", (name,)).fetchone() == (0,)


def test_a_computed_column_without_a_type_is_refused_naming_its_path(db):
    name = uid("voc_ctype")
    params = expr_params(computed=[{"name": "bucket", "expr": "MOD(status, 3)"}])
    with pytest.raises(psycopg.Error) as e:
        create(db, name, "window_aggregate", params)
    assert e.value.diag.sqlstate == "22023", (e.value.diag.sqlstate, str(e.value))
    msg = str(e.value)
    assert f'pipeline "{name}": params.source.computed[0].type: is required' in msg, msg
    assert '"type": "BIGINT"' in e.value.diag.message_hint and '"bucket"' in e.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = %s", (name,)).fetchone() == (0,)
