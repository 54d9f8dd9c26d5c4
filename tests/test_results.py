"""Pipeline results as tables: flink.expose_results() over Kafka and Elasticsearch sinks, with
the pipelines really running in Flink."""
import json
import time

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
                        ("amount", "numeric"), ("ts", "timestamp with time zone"), ("rule", "text"), ("_error", "text")]
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
