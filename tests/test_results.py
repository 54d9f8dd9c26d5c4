"""Pipeline results as tables: flink.expose_results() over Kafka and Elasticsearch sinks, with
the pipelines really running in Flink."""
import json
import time
from datetime import datetime
from decimal import Decimal

import psycopg
import pytest
import requests
from confluent_kafka import Producer

from conftest import ENV, connect, unique

DB = "pg_flink_test"  # served by the worker (pg_flink.worker_databases)


@pytest.fixture(scope="module")
def rdb(test_db):
    with connect(DB) as c:
        c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)", (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
        c.execute("SELECT * FROM flink.register_datasource('res_kafka', 'kafka', %s)", (json.dumps({"bootstrap_servers": ENV["PG_FLINK_KAFKA"]}),))
        c.execute("SELECT * FROM flink.register_datasource('res_es', 'elasticsearch', %s)", (json.dumps({"url": ENV["PG_FLINK_ES_URL"]}),))
    yield DB


def alert_params(topic_in, sink):
    return {
        "source": {"datasource": "res_kafka", "object": topic_in,
                   "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "country", "type": "STRING"},
                               {"name": "amount", "type": "DECIMAL(10, 2)"}, {"name": "ts", "type": "TIMESTAMP(3)"}]},
        "match": "any",
        "conditions": [{"column": "amount", "op": ">", "value": 1000}],
        "select": ["order_id", "country", "amount", "ts"],
        "enrich": [{"as": "rule", "value": "big"}],
        "sink": sink,
    }


def wait_rows(c, sql, want, timeout=120):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = c.execute(sql).fetchall()
            if len(last) >= want:
                return last
        except psycopg.Error as e:  # the sink topic/index appears with the first result
            last = e
        time.sleep(1)
    raise AssertionError(f"timed out; last result: {last}")


def test_results_of_kafka_and_elasticsearch_pipelines_are_tables(rdb):
    name = unique("res")
    topic_in = f"{name}_orders"
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    p.produce(topic_in, json.dumps({"order_id": 0, "country": "NO", "amount": 1, "ts": "2024-05-01 10:00:00"}).encode())
    assert p.flush(10) == 0
    kafka_p, es_p = f"{name}_k", f"{name}_e"
    with connect(rdb) as c:
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)",
                  (kafka_p, json.dumps(alert_params(topic_in, {"datasource": "res_kafka", "object": f"{name}_alerts"}))))
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)",
                  (es_p, json.dumps(alert_params(topic_in, {"datasource": "res_es", "object": f"{name}_alerts"}))))
        kt = c.execute("SELECT flink.expose_results(%s)", (kafka_p,)).fetchone()[0]
        et = c.execute("SELECT flink.expose_results(%s, 'pipeline_results')", (es_p,)).fetchone()[0]
        assert kt == f"flink_results.{kafka_p}" and et == f"pipeline_results.{es_p}"
        # Idempotent: a migration may run it again.
        assert c.execute("SELECT flink.expose_results(%s)", (kafka_p,)).fetchone()[0] == kt
        cols = c.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'flink_results'"
                         " AND table_name = %s ORDER BY ordinal_position", (kafka_p,)).fetchall()
        assert cols == [("_partition", "integer"), ("_offset", "bigint"), ("_timestamp", "timestamp with time zone"),
                        ("_key", "text"), ("_headers", "jsonb"), ("order_id", "bigint"), ("country", "text"),
                        ("amount", "numeric"), ("ts", "timestamp without time zone"), ("rule", "text"), ("_error", "text")]
        cols = c.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'pipeline_results'"
                         " AND table_name = %s ORDER BY ordinal_position", (es_p,)).fetchall()
        assert [x[0] for x in cols] == ["_id", "order_id", "country", "amount", "ts", "rule", "_score", "_index"]
        try:
            c.execute("SELECT flink.start(%s), flink.start(%s)", (kafka_p, es_p))
            c.execute("SELECT flink.wait(%s, 'running', '120 seconds'), flink.wait(%s, 'running', '120 seconds')", (kafka_p, es_p))
            for i in range(1, 11):
                p.produce(topic_in, json.dumps({"order_id": i, "country": "NO", "amount": 500 * i,
                                                "ts": f"2024-05-01 10:00:{i:02d}"}).encode())
            assert p.flush(10) == 0
            # 500 * i > 1000 for i = 3..10: 8 alerts, read with plain SQL.
            rows = wait_rows(c, f'SELECT order_id, amount, rule, ts FROM {kt} ORDER BY order_id', 8)
            assert [(r[0], float(r[1]), r[2]) for r in rows] == [(i, 500.0 * i, "big") for i in range(3, 11)]
            assert rows[0][3].isoformat().startswith("2024-05-01T10:00:03")
            rows = wait_rows(c, f'SELECT order_id, country FROM {et} WHERE amount > 2000 ORDER BY order_id', 6)
            assert rows == [(i, "NO") for i in range(5, 11)]
        finally:
            for n in (kafka_p, es_p):
                c.execute("SELECT flink.stop(%s, with_savepoint => false)", (n,))
            for n in (kafka_p, es_p):
                try:
                    c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (n,))
                except psycopg.Error:
                    pass
        requests.delete(f"{ENV['PG_FLINK_ES_URL']}/{name}_alerts", timeout=30)


def test_expose_results_refuses_what_it_cannot_expose(rdb):
    with connect(rdb) as c:
        with pytest.raises(psycopg.errors.UndefinedObject):
            c.execute("SELECT flink.expose_results('no_such_pipeline')")
        c.execute("SELECT * FROM flink.register_datasource('res_pg', 'postgres', %s, %s)",
                  (json.dumps({"host": "127.0.0.1", "database": DB, "user": "postgres"}), None))
        c.execute("CREATE TABLE IF NOT EXISTS public.res_landing (order_id bigint, amount numeric(10,2))")
        name = unique("res_pg")
        params = alert_params(unique("res_in"), {"datasource": "res_pg", "object": "public.res_landing"})
        params["select"] = ["order_id", "amount"]
        params["enrich"] = []
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)", (name, json.dumps(params)))
        with pytest.raises(psycopg.errors.WrongObjectType) as e:
            c.execute("SELECT flink.expose_results(%s)", (name,))
        assert "does not write to Kafka or Elasticsearch" in str(e.value) and e.value.diag.message_hint
        c.execute("SELECT flink.drop_pipeline(%s)", (name,))


def stop_and_wait(c, name):
    c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
    try:
        c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (name,))
    except psycopg.Error:
        pass


def column_types(c, schema, table):
    return c.execute("SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns"
                     " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", (schema, table)).fetchall()


def window_params(topic_in, topic_out, aggregates):
    return {
        "source": {"datasource": "res_kafka", "object": topic_in,
                   "columns": [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DECIMAL(10, 2)"},
                               {"name": "ts", "type": "TIMESTAMP(3)"}],
                   "event_time": "ts", "watermark_delay": "1 second"},
        "window": {"type": "tumble", "size": "1 minute"},
        "group_by": ["city"],
        "aggregates": aggregates,
        "sink": {"datasource": "res_kafka", "object": topic_out},
    }


def test_window_start_reads_as_flink_computed_it_and_the_table_follows_the_pipeline(rdb):
    """(a) a zone-less TIMESTAMP(3) is a timestamp: no TimeZone shifts it, WHERE finds it;
    (c) re-running expose_results with a dependent view alters in place (view, grants kept);
    (d) with_view => true: a plain view listed as VIEW, same rows, dropped with the pipeline."""
    name = unique("res_win")
    topic_in, topic_out = f"{name}_orders", f"{name}_per_minute"
    role = unique("res_bi")
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    p.produce(topic_in, json.dumps({"city": "Warmup", "amount": 0, "ts": "2024-05-01 09:58:00"}).encode())
    assert p.flush(10) == 0
    aggs = [{"fn": "count", "as": "orders"}, {"fn": "sum", "column": "amount", "as": "revenue"}]
    with connect(rdb) as c:
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'window_aggregate', %s, %s)",
                  (name, json.dumps(window_params(topic_in, topic_out, aggs)), json.dumps({"parallelism": 1})))
        t = c.execute("SELECT flink.expose_results(%s, with_view => true)::text", (name,)).fetchone()[0]
        assert t == f"flink_results.{name}"
        v = f"flink_results.{name}_v"
        types = column_types(c, "flink_results", name)
        assert ("window_start", "timestamp without time zone", None, None) in types
        assert ("window_end", "timestamp without time zone", None, None) in types
        assert ("revenue", "numeric", 38, 2) in types
        assert column_types(c, "flink_results", f"{name}_v") == types
        kinds = dict(c.execute("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'flink_results'"
                               " AND table_name IN (%s, %s)", (name, f"{name}_v")).fetchall())
        assert kinds == {name: "FOREIGN", f"{name}_v": "VIEW"}
        relid = c.execute("SELECT %s::regclass::oid", (t,)).fetchone()[0]
        try:
            c.execute("SELECT flink.start(%s)", (name,))
            c.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (name,))
            for city, amount, ts in [("Oslo", "10.50", "2024-05-01 10:00:05"), ("Oslo", "4.25", "2024-05-01 10:00:40"),
                                     ("Bergen", "1.00", "2024-05-01 10:00:59"),
                                     # closes the 10:00 window (watermark = ts - 1 s)
                                     ("Later", "1.00", "2024-05-01 10:02:00")]:
                p.produce(topic_in, json.dumps({"city": city, "amount": float(amount), "ts": ts}).encode())
            assert p.flush(10) == 0
            # Read under a zone far from UTC: the wall-clock time Flink computed, unshifted.
            c.execute("SET TimeZone = 'America/New_York'")
            want = [("Bergen", datetime(2024, 5, 1, 10, 0), datetime(2024, 5, 1, 10, 1), 1, Decimal("1.00")),
                    ("Oslo", datetime(2024, 5, 1, 10, 0), datetime(2024, 5, 1, 10, 1), 2, Decimal("14.75"))]
            q = "SELECT city, window_start, window_end, orders, revenue FROM {} WHERE city IN ('Oslo', 'Bergen') ORDER BY city"
            assert wait_rows(c, q.format(t), 2) == want
            assert c.execute(q.format(v)).fetchall() == want
            assert c.execute(f"SELECT count(*) FROM {t} WHERE window_start >= '2024-05-01 10:00:00'"
                             " AND window_start < '2024-05-01 10:01:00'").fetchone()[0] == 2
            assert c.execute(f"SELECT count(*) FROM {t} WHERE window_start = %s",
                             (datetime(2024, 5, 1, 10, 0),)).fetchone()[0] == 2
            assert c.execute(f"SELECT count(*) FROM {v} WHERE window_start >= '2024-05-01 10:00:00'").fetchone()[0] == 2
        finally:
            stop_and_wait(c, name)
            c.execute("RESET TimeZone")
        # (c) A view and a grant on the table, then a new pipeline version with one more column.
        c.execute(f'CREATE ROLE "{role}"')
        dep = f"public.{name}_cities"
        try:
            c.execute(f'GRANT SELECT ON {t}, {v} TO "{role}"')
            c.execute(f"CREATE VIEW {dep} AS SELECT city, orders FROM {t}")
            aggs.append({"fn": "max", "column": "amount", "as": "biggest"})
            c.execute("SELECT * FROM flink.create_pipeline(%s, 'window_aggregate', %s, %s)",
                      (name, json.dumps(window_params(topic_in, topic_out, aggs)), json.dumps({"parallelism": 1})))
            assert c.execute("SELECT flink.expose_results(%s)::text", (name,)).fetchone()[0] == t
            assert c.execute("SELECT %s::regclass::oid", (t,)).fetchone()[0] == relid
            assert ("biggest", "numeric", 10, 2) in column_types(c, "flink_results", name)
            assert ("biggest", "numeric", 10, 2) in column_types(c, "flink_results", f"{name}_v")
            assert c.execute(f"SELECT city, orders FROM {dep} WHERE city IN ('Oslo', 'Bergen') ORDER BY city").fetchall() == \
                [("Bergen", 1), ("Oslo", 2)]
            # Messages written before the new column read it as NULL.
            assert c.execute(f"SELECT count(*) FROM {v} WHERE biggest IS NULL AND city = 'Oslo'").fetchone()[0] == 1
            for rel in (t, v):
                assert c.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (role, rel)).fetchone()[0], rel
            # Idempotent: nothing to do, nothing done (the table keeps its oid, the view too).
            view_oid = c.execute("SELECT %s::regclass::oid", (v,)).fetchone()[0]
            assert c.execute("SELECT flink.expose_results(%s, with_view => true)::text", (name,)).fetchone()[0] == t
            assert c.execute("SELECT %s::regclass::oid", (v,)).fetchone()[0] == view_oid
            # A type change under a column the view uses is refused, naming the view and column.
            params = window_params(topic_in, topic_out, aggs)
            params["aggregates"][0] = {"fn": "sum", "column": "amount", "as": "orders"}
            c.execute("SELECT * FROM flink.create_pipeline(%s, 'window_aggregate', %s, %s)",
                      (name, json.dumps(params), json.dumps({"parallelism": 1})))
            with pytest.raises(psycopg.errors.DependentObjectsStillExist) as e:
                c.execute("SELECT flink.expose_results(%s)", (name,))
            assert f"{name}_cities" in str(e.value) and '"orders"' in str(e.value) and e.value.diag.message_hint
            assert ("orders", "bigint", 64, 0) in column_types(c, "flink_results", name)  # nothing changed
            c.execute(f"DROP VIEW {dep}")
            assert c.execute("SELECT flink.expose_results(%s)::text", (name,)).fetchone()[0] == t
            assert ("orders", "numeric", 38, 2) in column_types(c, "flink_results", f"{name}_v")
            assert c.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (role, v)).fetchone()[0]
        finally:
            c.execute(f"DROP VIEW IF EXISTS {dep}")
            # (d) drop_pipeline drops the view with the table.
            c.execute("SELECT flink.drop_pipeline(%s)", (name,))
            c.execute(f'DROP ROLE "{role}"')
        assert c.execute("SELECT to_regclass(%s), to_regclass(%s)", (t, v)).fetchone() == (None, None)
        assert c.execute("SELECT count(*) FROM flink.result_table WHERE pipeline = %s AND relid IN"
                         " (SELECT oid FROM pg_class)", (name,)).fetchone()[0] == 0


def test_decimal_and_timestamp_columns_keep_their_precision(rdb):
    """(b) DECIMAL(10, 2) is numeric(10,2) with the exact value, TIMESTAMP(3) a timestamp;
    (d) keep_results => true keeps the table and its view."""
    name = unique("res_dec")
    topic_in = f"{name}_orders"
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    p.produce(topic_in, json.dumps({"order_id": 0, "country": "NO", "amount": 1, "ts": "2024-05-01 10:00:00"}).encode())
    assert p.flush(10) == 0
    with connect(rdb) as c:
        c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)",
                  (name, json.dumps(alert_params(topic_in, {"datasource": "res_kafka", "object": f"{name}_alerts"}))))
        t = c.execute("SELECT flink.expose_results(%s, 'res_exact', true)::text", (name,)).fetchone()[0]
        v = f"res_exact.{name}_v"
        assert t == f"res_exact.{name}"
        types = column_types(c, "res_exact", name)
        assert ("amount", "numeric", 10, 2) in types
        assert ("ts", "timestamp without time zone", None, None) in types
        try:
            c.execute("SELECT flink.start(%s)", (name,))
            c.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (name,))
            p.produce(topic_in, json.dumps({"order_id": 1, "country": "NO", "amount": 12345678.91,
                                            "ts": "2024-05-01 10:00:00.123"}).encode())
            assert p.flush(10) == 0
            c.execute("SET TimeZone = 'Asia/Tokyo'")
            rows = wait_rows(c, f"SELECT amount, ts, amount::text FROM {t} WHERE order_id = 1", 1)
            assert rows == [(Decimal("12345678.91"), datetime(2024, 5, 1, 10, 0, 0, 123000), "12345678.91")]
            assert c.execute(f"SELECT amount, ts FROM {v} WHERE order_id = 1").fetchall() == [rows[0][:2]]
            assert c.execute(f"SELECT count(*) FROM {t} WHERE ts = '2024-05-01 10:00:00.123'").fetchone()[0] == 1
        finally:
            stop_and_wait(c, name)
            c.execute("RESET TimeZone")
        c.execute("SELECT flink.drop_pipeline(%s, keep_results => true)", (name,))
        assert c.execute("SELECT to_regclass(%s)::text, to_regclass(%s)::text", (t, v)).fetchone() == (t, v)
        c.execute(f"DROP VIEW {v}")
        c.execute(f"DROP FOREIGN TABLE {t}")


def test_every_sink_of_a_pipeline_can_be_exposed(rdb):
    """A raw SQL pipeline with two INSERTs (one job) and a source's late rows: flink.pipeline_sinks
    lists every sink, and expose_results(sink_object => …) makes each a table of its own."""
    name = unique("sinks")
    t_in, t_a, t_b, t_late = f"{name}_in", f"{name}_a", f"{name}_b", f"{name}_late"
    cols = [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DOUBLE"}]
    params = {"sql": f"INSERT INTO {{{{res_kafka.{t_a}}}}} SELECT city, amount FROM {{{{res_kafka.{t_in}}}}};\n"
                     f"INSERT INTO {{{{res_kafka.{t_b}}}}} SELECT city, amount * 2 AS amount FROM {{{{res_kafka.{t_in}}}}}",
              "tables": {f"res_kafka.{t_in}": {"columns": cols}, f"res_kafka.{t_a}": {"columns": cols},
                         f"res_kafka.{t_b}": {"columns": cols}}}
    late = {"source": {"datasource": "res_kafka", "object": t_in, "columns": cols + [{"name": "ts", "type": "TIMESTAMP(3)"}],
                       "event_time": "ts", "late": {"datasource": "res_kafka", "object": t_late}},
            "window": {"type": "tumble", "size": "1 minute"}, "aggregates": [{"fn": "count", "as": "n"}],
            "sink": {"datasource": "res_kafka", "object": f"{name}_counts"}}
    with connect(rdb) as c:
        try:
            c.execute("SELECT * FROM flink.create_pipeline(%s, 'sql', %s)", (name, json.dumps(params)))
            c.execute("SELECT * FROM flink.create_pipeline(%s, 'window_aggregate', %s)", (f"{name}_w", json.dumps(late)))
            sinks = [r[0] for r in c.execute("SELECT s->>'object' FROM flink.pipeline_sinks(%s) s ORDER BY (s->>'sink_no')::int", (name,))]
            assert sinks == [t_a, t_b]
            w = [r[0] for r in c.execute("SELECT s->>'object' FROM flink.pipeline_sinks(%s) s ORDER BY (s->>'sink_no')::int", (f"{name}_w",))]
            assert w == [f"{name}_counts", t_late]
            p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
            for topic, city in [(t_a, "Oslo"), (t_b, "Bergen"), (t_late, "Late")]:
                p.produce(topic, json.dumps({"city": city, "amount": 1.5, "ts": "2024-05-01 10:00:00"}).encode())
            assert p.flush(10) == 0
            assert str(c.execute("SELECT flink.expose_results(%s)", (name,)).fetchone()[0]) == f"flink_results.{name}"
            rel_b = str(c.execute("SELECT flink.expose_results(%s, sink_object => %s)", (name, t_b)).fetchone()[0])
            assert rel_b == f"flink_results.{name}_{t_b}"
            assert c.execute(f"SELECT city, amount FROM flink_results.{name}").fetchall() == [("Oslo", 1.5)]
            assert c.execute(f"SELECT city, amount FROM {rel_b}").fetchall() == [("Bergen", 1.5)]
            rel_l = str(c.execute("SELECT flink.expose_results(%s, sink_object => %s)", (f"{name}_w", t_late)).fetchone()[0])
            assert c.execute(f"SELECT city, amount, ts FROM {rel_l}").fetchall() == [("Late", 1.5, datetime(2024, 5, 1, 10))]
            # Idempotent, and an unknown sink is named with the ones there are.
            assert str(c.execute("SELECT flink.expose_results(%s, sink_object => %s)", (name, t_b)).fetchone()[0]) == rel_b
            with pytest.raises(psycopg.errors.UndefinedObject) as e:
                c.execute("SELECT flink.expose_results(%s, sink_object => 'nope')", (name,))
            assert f'writes no sink with object "nope"' in str(e.value) and t_b in e.value.diag.message_hint
            # Dropping the pipeline drops every results table it made.
            c.execute("SELECT flink.drop_pipeline(%s)", (name,))
            assert c.execute("SELECT to_regclass(%s), to_regclass(%s)", (f"flink_results.{name}", rel_b)).fetchone() == (None, None)
        finally:
            c.execute("SELECT flink.drop_pipeline(%s, if_exists => true)", (name,))
            c.execute("SELECT flink.drop_pipeline(%s, if_exists => true)", (f"{name}_w",))
