"""flink.preview: a stored pipeline's query run against the data in its Kafka topic, its rows
returned as JSON objects, no job left running in Flink. Against the real stack (the Flink cluster
is shared with other tests, so jobs are told apart by id and by the preview's job name)."""
import datetime
import json
import random
import uuid
from collections import defaultdict
from decimal import Decimal

import psycopg
import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ENV, connect, unique
from test_control import ctl, db  # noqa: F401  (fixtures)

TERMINAL = ("FINISHED", "CANCELED", "FAILED")


def make_topic(name, records):
    """A one-partition topic (one watermark, rows in order) holding `records` (dicts as JSON)."""
    admin = AdminClient({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    for f in admin.create_topics([NewTopic(name, 1, 1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    for r in records:
        p.produce(name, json.dumps(r).encode())
    assert p.flush(30) == 0


def jobs():
    return requests.get(ENV["PG_FLINK_REST_URL"] + "/jobs/overview", timeout=5).json()["jobs"]


def live_ids():
    return {j["jid"] for j in jobs() if j["state"] not in TERMINAL}


def preview_jobs_of(name):
    """(jid, state) of every preview job of pipeline `name` (named pg_flink preview/<tag>/<db>/<name>)."""
    return [(j["jid"], j["state"]) for j in jobs()
            if j["name"].startswith("pg_flink preview/") and j["name"].endswith("/" + name)]


def preview(c, name, max_rows, timeout):
    """The rows and the NOTICEs of one preview; afterwards no job of it is alive and no job that
    was not alive before it is."""
    notices = []
    c.add_notice_handler(lambda d: notices.append(d.message_primary))
    before = live_ids()
    rows = [r[0] for r in c.execute("SELECT r FROM flink.preview(%s, max_rows => %s, timeout => %s::interval) r",
                                    (name, max_rows, timeout))]
    mine = preview_jobs_of(name)
    assert mine, "the preview ran a Flink job"
    assert all(state in TERMINAL for _, state in mine), mine
    new_live = live_ids() - before
    assert not new_live & {jid for jid, _ in mine}, new_live
    return rows, notices


def test_window_aggregate_preview_returns_the_closed_windows_exactly(db):
    name = unique("pv_win")
    topic = f"{name}_in"
    base = datetime.datetime(2024, 5, 1, 10, 0, 0)
    at = lambda s: base + datetime.timedelta(seconds=s)  # noqa: E731
    # (order_id, user_id, city, amount, seconds after 10:00); the last row moves the watermark
    # (5 s delay) to 10:04:55, past the end of the first two minutes' windows, not of its own.
    orders = [(1, 10, "Oslo", "10.50", 5), (2, 11, "Oslo", "20.00", 30), (3, 10, "Rome", "5.25", 59.999),
              (4, 12, "Oslo", "1.00", 60), (5, 12, "Rome", "2.00", 100), (6, 11, "Oslo", "7.75", 119),
              (7, 13, "Oslo", "3.00", 300)]
    make_topic(topic, [{"order_id": o, "user_id": u, "city": c, "amount": a,
                        "ts": at(s).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]} for o, u, c, a, s in orders])
    delay = datetime.timedelta(seconds=5)
    watermark = max(at(s) for *_, s in orders) - delay
    expected = defaultdict(lambda: [0, Decimal(0), set()])
    for _, user, city, amount, s in orders:
        t = at(s)
        start = t.replace(second=0, microsecond=0)
        end = start + datetime.timedelta(minutes=1)
        if end <= watermark:  # the window fired
            e = expected[(start, end, city)]
            e[0] += 1
            e[1] += Decimal(amount)
            e[2].add(user)
    expected = sorted((s, e, c, n, total, len(users)) for (s, e, c), (n, total, users) in expected.items())
    assert len(expected) == 4
    params = {"source": {"datasource": "ctl_kafka", "object": topic, "event_time": "ts", "watermark_delay": "5 seconds",
                         "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "user_id", "type": "BIGINT"},
                                     {"name": "city", "type": "STRING"}, {"name": "amount", "type": "DECIMAL(10, 2)"},
                                     {"name": "ts", "type": "TIMESTAMP(3)"}]},
              "window": {"type": "tumble", "size": "1 minute"}, "group_by": ["city"],
              "aggregates": [{"fn": "count", "as": "orders"}, {"fn": "sum", "column": "amount", "as": "revenue"},
                             {"fn": "count_distinct", "column": "user_id", "as": "buyers"}],
              "sink": {"datasource": "ctl_kafka", "object": f"{name}_out"}}
    db.execute("SELECT * FROM flink.create_pipeline(%s, 'window_aggregate', %s, %s)",
               (name, json.dumps(params), json.dumps({"checkpoint_interval": "2 seconds", "parallelism": 2})))
    try:
        # More rows asked for than there are: the preview runs until its time limit and says so.
        rows, notices = preview(db, name, 50, "30 seconds")
        got = sorted((datetime.datetime.fromisoformat(r["window_start"]), datetime.datetime.fromisoformat(r["window_end"]),
                      r["city"], r["orders"], Decimal(str(r["revenue"])), r["buyers"]) for r in rows)
        assert got == expected
        assert all(set(r) == {"window_start", "window_end", "city", "orders", "revenue", "buyers"} for r in rows)
        assert any("stopped at its time limit" in n and "with 4 rows" in n for n in notices), notices
        # Nothing was written to the sink and no pipeline job exists: the preview is not a start.
        assert db.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 0
    finally:
        db.execute("SELECT flink.drop_pipeline(%s)", (name,))


def filter_pipeline(c, name, records):
    topic = f"{name}_in"
    make_topic(topic, records)
    params = {"source": {"datasource": "ctl_kafka", "object": topic,
                         "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "country", "type": "STRING"},
                                     {"name": "amount", "type": "DECIMAL(10, 2)"}]},
              "match": "any",
              "conditions": [{"column": "amount", "op": ">", "value": 100}, {"column": "country", "op": "in", "value": ["KP"]}],
              "select": ["order_id", "country", "amount"],
              "enrich": [{"as": "rule", "value": "big"}],
              "sink": {"datasource": "ctl_kafka", "object": f"{name}_out"}}
    c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)", (name, json.dumps(params)))


ORDERS = [{"order_id": i, "country": c, "amount": a}
          for i, (c, a) in enumerate([("NO", "5.00"), ("NO", "150.00"), ("KP", "1.00"), ("IT", "100.00"),
                                      ("IT", "100.01"), ("SE", "99.99"), ("KP", "500.50"), ("DE", "0.10")], 1)]


def test_filter_alert_preview_returns_the_filtered_input(db):
    name = unique("pv_filter")
    filter_pipeline(db, name, ORDERS)
    expected = [{"order_id": o["order_id"], "country": o["country"], "amount": Decimal(o["amount"]), "rule": "big"}
                for o in ORDERS if Decimal(o["amount"]) > 100 or o["country"] == "KP"]
    assert len(expected) == 4
    try:
        rows, notices = preview(db, name, len(expected) + 5, "30 seconds")
        got = [dict(r, amount=Decimal(str(r["amount"]))) for r in rows]
        assert got == expected  # one partition: in topic order
        assert any("with 4 rows" in n for n in notices), notices
        # As many rows as asked for: it returns as soon as they are read, without a NOTICE.
        rows, notices = preview(db, name, 2, "60 seconds")
        assert [r["order_id"] for r in rows] == [e["order_id"] for e in expected[:2]]
        assert not any("time limit" in n for n in notices), notices
    finally:
        db.execute("SELECT flink.drop_pipeline(%s)", (name,))


@pytest.mark.parametrize("args,code,words", [
    (("nope_pipeline_x", 20, "10 seconds"), "42704", ['pipeline "nope_pipeline_x" does not exist']),
    (("{p}", 0, "10 seconds"), "22023", ["max_rows", "got 0"]),
    (("{p}", 10001, "10 seconds"), "22023", ["max_rows", "10000"]),
    (("{p}", -1, "10 seconds"), "22023", ["max_rows"]),
    (("{p}", 20, "0 seconds"), "22023", ["timeout"]),
    (("{p}", 20, "-5 seconds"), "22023", ["timeout"]),
    (("{p}", 20, "10 minutes 1 second"), "22023", ["timeout", "10 minutes"]),
    (("{p}", 20, "1 month"), "22023", ["timeout"]),
], ids=["unknown", "rows0", "rows_big", "rows_neg", "timeout0", "timeout_neg", "timeout_big", "timeout_month"])
def test_bad_arguments_are_refused_before_anything_runs(db, args, code, words):
    name = unique("pv_args")
    filter_pipeline(db, name, ORDERS[:1])
    try:
        before = live_ids()
        p, max_rows, timeout = args
        p = p.format(p=name)
        with pytest.raises(psycopg.Error) as e:
            db.execute("SELECT * FROM flink.preview(%s, max_rows => %s, timeout => %s::interval)", (p, max_rows, timeout))
        assert e.value.diag.sqlstate == code, str(e.value)
        for w in words:
            assert w in str(e.value)
        assert f'pipeline "{p}"' in str(e.value)
        assert e.value.diag.message_hint
        assert preview_jobs_of(name) == []
        assert not (live_ids() - before) & {jid for jid, _ in preview_jobs_of(p)}
    finally:
        db.execute("SELECT flink.drop_pipeline(%s)", (name,))


def test_only_who_may_read_the_secrets_previews(db, ctl):
    """flink_admin only (like flink.start): a reader cannot call it, one granted EXECUTE still
    cannot read the secrets; a pipeline of a rolled-back transaction does not exist."""
    name = unique("pv_priv")
    filter_pipeline(db, name, ORDERS)
    rolled_back = unique("pv_rb")
    with pytest.raises(psycopg.errors.DivisionByZero):
        with db.transaction():
            filter_pipeline(db, rolled_back, ORDERS[:1])
            db.execute("SELECT 1/0")
    reader, admin = unique("pv_reader"), unique("pv_admin")
    with connect("postgres") as c:
        c.execute(f"CREATE ROLE {reader} LOGIN IN ROLE flink_reader")
        c.execute(f"CREATE ROLE {admin} LOGIN IN ROLE flink_admin")
    try:
        with pytest.raises(psycopg.errors.UndefinedObject) as e:
            db.execute("SELECT * FROM flink.preview(%s)", (rolled_back,))
        assert f'pipeline "{rolled_back}" does not exist' in str(e.value)
        with connect(ctl, user=reader) as r:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute("SELECT * FROM flink.preview(%s)", (name,))
        db.execute(f"GRANT EXECUTE ON FUNCTION flink.preview(text, integer, interval) TO {reader}")
        with connect(ctl, user=reader) as r:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
                r.execute("SELECT * FROM flink.preview(%s)", (name,))
            assert "previewing needs flink_admin" in str(e.value) and e.value.diag.message_hint
        assert preview_jobs_of(name) == []
        with connect(ctl, user=admin) as a:
            rows, _ = preview(a, name, 1, "60 seconds")
            assert [r["order_id"] for r in rows] == [2]
    finally:
        db.execute(f"REVOKE EXECUTE ON FUNCTION flink.preview(text, integer, interval) FROM {reader}")
        db.execute("SELECT flink.drop_pipeline(%s)", (name,))
        with connect("postgres") as c:
            c.execute(f"DROP ROLE {reader}")
            c.execute(f"DROP ROLE {admin}")


# --- top_n and cep previews, in a database of their own (not the shared test database) ------

@pytest.fixture(scope="module")
def pv_own():
    """A throwaway database with pg_flink, cluster `local` and datasource `pv_kafka`."""
    name = f"pgflink_voc_pv_{uuid.uuid4().hex[:10]}"
    with connect("postgres") as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        with connect(name) as c:
            c.execute("CREATE EXTENSION pg_flink")
            c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)",
                      (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
            c.execute("SELECT * FROM flink.register_datasource('pv_kafka', 'kafka', %s)",
                      (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"]}),))
        with connect(name) as c:
            yield c
    finally:
        with connect("postgres") as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_top_n_preview_returns_its_changelog_up_to_the_true_top(pv_own):
    """A continuous top 3 per category updates: its preview rows are a changelog ($op -U/+U/-D)
    that, applied by (category, rank), ends as the top 3 computed here."""
    seed = 9112
    rng = random.Random(seed)
    name = unique("pv_top")
    topic = f"{name}_in"
    cats = ["books", "games", "toys"]
    rows = [{"category": rng.choice(cats), "product": f"p{i}", "sales": s}
            for i, s in enumerate(rng.sample(range(1, 100000), 40))]
    make_topic(topic, rows)
    want = {}
    for cat in cats:
        top = sorted((r for r in rows if r["category"] == cat), key=lambda r: -r["sales"])[:3]
        want.update({(cat, rank): (r["product"], r["sales"]) for rank, r in enumerate(top, 1)})
    params = {"source": {"datasource": "pv_kafka", "object": topic,
                         "columns": [{"name": "category", "type": "STRING"}, {"name": "product", "type": "STRING"},
                                     {"name": "sales", "type": "BIGINT NOT NULL"}]},
              "partition_by": ["category"], "order_by": [{"column": "sales", "desc": True}], "n": 3,
              "sink": {"datasource": "pv_kafka", "object": f"{name}_out"}}
    pv_own.execute("SELECT * FROM flink.create_pipeline(%s, 'top_n', %s, %s)",
                   (name, json.dumps(params), json.dumps({"parallelism": 1})))
    try:
        before = live_ids()
        rows_out, notices = preview(pv_own, name, 5000, "40 seconds")
        state = {}
        for r in rows_out:
            key = (r["category"], r["rank_no"])
            if r.get("$op") in ("-U", "-D"):
                assert state.pop(key, None) == (r["product"], r["sales"]), (seed, r)
            else:
                state[key] = (r["product"], r["sales"])
        assert state == want, f"seed {seed}: {sorted(state.items())} != {sorted(want.items())}"
        assert any(r.get("$op") for r in rows_out), "a continuous top changes: the preview shows updates"
        assert any("stopped at its time limit" in n for n in notices), notices
        assert all(s in TERMINAL for _, s in preview_jobs_of(name))
        assert not (live_ids() - before) & {j for j, _ in preview_jobs_of(name)}
        assert pv_own.execute("SELECT count(*) FROM flink.jobs WHERE pipeline = %s", (name,)).fetchone()[0] == 0
    finally:
        pv_own.execute("SELECT flink.drop_pipeline(%s)", (name,))


def test_cep_preview_returns_the_matches_within_its_timeout(pv_own):
    """The price_drops pattern (an undefined HIGH, DOWN{2,} falling below LAST(DOWN.price, 1),
    UP above AVG(DOWN.price), SKIP TO NEXT ROW) previewed: exactly the matches a reference
    matcher finds, returned as soon as they are read, no job left."""
    from test_vocabulary import reference_price_drops
    seed = 9113
    rng = random.Random(seed)
    name = unique("pv_cep")
    topic = f"{name}_in"
    base = datetime.datetime(2024, 5, 1, 10, 0, 0)
    t, rows, series = base, [], defaultdict(list)
    for _ in range(120):
        t += datetime.timedelta(milliseconds=rng.randrange(100, 1500))
        sym = rng.choice(["AAA", "BBB"])
        last = series[sym][-1][0] if series[sym] else 50
        price = float(max(1, last + rng.choice([-3, -2, -1, -1, 0, 1, 2, 4, 6])))
        series[sym].append((price, t))
        rows.append({"symbol": sym, "price": price, "ts": t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]})
    rows.append({"symbol": "ZZZ", "price": 1.0, "ts": (t + datetime.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")})
    make_topic(topic, rows)
    want = sorted((sym, a, b, round(c, 9), d) for sym, ps in series.items() for a, b, c, d in reference_price_drops(ps))
    assert len(want) >= 3
    params = {"source": {"datasource": "pv_kafka", "object": topic, "event_time": "ts", "watermark_delay": "1 second",
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
              "sink": {"datasource": "pv_kafka", "object": f"{name}_out"}}
    pv_own.execute("SELECT * FROM flink.create_pipeline(%s, 'cep', %s, %s)",
                   (name, json.dumps(params), json.dumps({"parallelism": 1})))
    try:
        before = live_ids()
        t0 = datetime.datetime.now()
        rows_out, notices = preview(pv_own, name, len(want), "60 seconds")
        took = (datetime.datetime.now() - t0).total_seconds()
        got = sorted((r["symbol"], r["start_price"], r["bottom"], round(r["avg_down"], 9),
                      datetime.datetime.fromisoformat(r["recovered_at"])) for r in rows_out)
        assert got == want, f"seed {seed}: missing {[w for w in want if w not in got]}, extra {[g for g in got if g not in want]}"
        assert not any("time limit" in n for n in notices), notices
        assert took < 60, took
        assert all(s in TERMINAL for _, s in preview_jobs_of(name))
        assert not (live_ids() - before) & {j for j, _ in preview_jobs_of(name)}
    finally:
        pv_own.execute("SELECT flink.drop_pipeline(%s)", (name,))
