-- pg_flink demo: what works today. Re-runnable (every call is idempotent).
\set ON_ERROR_STOP 1
\echo '--- the extension'
CREATE EXTENSION IF NOT EXISTS pg_flink;
SELECT extname, extversion FROM pg_extension WHERE extname = 'pg_flink';

\echo '--- flink.health(): JobManager and SQL Gateway reached over HTTP from this backend'
SELECT service, url, version, round(latency_ms::numeric, 1) AS latency_ms, detail FROM flink.health();

\echo '--- the catalog: a cluster and one datasource of each kind (re-running changes nothing)'
SELECT * FROM flink.register_cluster('local', 'http://127.0.0.1:8083', 'http://127.0.0.1:8081');
SELECT * FROM flink.register_datasource('demo_kafka', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}');
SELECT * FROM flink.register_datasource('demo_es', 'elasticsearch', '{"url": "http://127.0.0.1:9200"}');
SELECT * FROM flink.register_datasource('demo_pg', 'postgres', '{"host": "127.0.0.1", "database": "pg_flink_demo"}');
SELECT * FROM flink.register_datasource('demo_mysql', 'mysql',
  '{"host": "127.0.0.1", "database": "pg_flink_test", "user": "pgflink"}', secrets => '{"password": "pgflink"}');
SELECT name, kind, options, version FROM flink.datasources ORDER BY name;

\echo '--- connection tests against the real services'
SELECT d.name, t.ok, round(t.latency_ms::numeric, 1) AS latency_ms, t.detail
FROM flink.datasources d, flink.test_datasource(d.name) t ORDER BY d.name;
SELECT * FROM flink.test_cluster();

\echo '--- a Flink SQL script run through the SQL Gateway: write three orders to Kafka'
SELECT statement_no, result_kind, job_id
FROM flink.execute_sql($$
  CREATE TEMPORARY TABLE orders (order_id BIGINT, amount DECIMAL(10, 2), city STRING, ts STRING) WITH (
    'connector' = 'kafka', 'topic' = 'demo_orders',
    'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json');
  INSERT INTO orders VALUES (1, 19.90, 'Lisbon', '2024-05-01T10:00:00Z'),
                            (2, 5.00, 'Porto', '2024-05-01T10:00:05Z'),
                            (3, 7.50, 'Lisbon', '2024-05-01T10:00:09Z');
$$);
SELECT pg_sleep(5);  -- let the job finish writing

\echo '--- metadata discovery: the topic''s columns inferred from its JSON messages'
SELECT * FROM flink.describe_datasource('demo_kafka', 'demo_orders');
\echo '--- ... and a Postgres table''s columns with their Flink types'
SELECT column_name, source_type, flink_type FROM flink.describe_datasource('demo_pg', 'pg_catalog.pg_database') LIMIT 6;

\echo '--- a pipeline: orders per city per minute, Kafka -> Elasticsearch (re-running changes nothing)'
SELECT * FROM flink.create_pipeline('orders_per_minute', 'window_aggregate', $${
  "source": {"datasource": "demo_kafka", "object": "demo_orders",
             "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "amount", "type": "DECIMAL(10, 2)"},
                         {"name": "city", "type": "STRING"}, {"name": "ts", "type": "TIMESTAMP_LTZ(3)"}],
             "event_time": "ts", "watermark_delay": "5 seconds",
             "connector_options": {"json.timestamp-format.standard": "ISO-8601"}},
  "window": {"type": "tumble", "size": "1 minute"},
  "group_by": ["city"],
  "aggregates": [{"fn": "count", "as": "orders"}, {"fn": "sum", "column": "amount", "as": "revenue"}],
  "sink": {"datasource": "demo_es", "object": "orders_per_minute"}
}$$, '{"parallelism": 1, "checkpoint_interval": "10 seconds"}');
SELECT name, template, version, datasources, left(script_hash, 12) AS script_hash FROM flink.pipelines;
\echo '--- the Flink SQL script pg_flink generated'
\pset tuples_only on
\pset format unaligned
SELECT flink.render('orders_per_minute');
\pset format aligned
\pset tuples_only off
\echo '--- validated by the real SQL Gateway (first lines of the plan)'
SELECT ok, parameter, split_part(detail, E'\n', 1) || ' ... ' || split_part(detail, E'\n', 2) AS plan
FROM flink.validate('orders_per_minute');

\echo '--- the control plane: start it (the worker submits after COMMIT) and wait for RUNNING'
BEGIN;
SELECT flink.start('orders_per_minute');
COMMIT;
SELECT flink.wait('orders_per_minute', 'running', '120 seconds');
SELECT pipeline, desired, actual, healthy, flink_job_id FROM flink.pipeline_status;

\echo '--- a later order closes the 10:00 window: per-city results land in Elasticsearch'
SELECT count(*) AS statements FROM flink.execute_sql($$
  CREATE TEMPORARY TABLE orders (order_id BIGINT, amount DECIMAL(10, 2), city STRING, ts STRING) WITH (
    'connector' = 'kafka', 'topic' = 'demo_orders',
    'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json');
  INSERT INTO orders VALUES (4, 12.00, 'Porto', '2024-05-01T10:02:00Z');
$$);
\echo '--- the results as a table: an Elasticsearch foreign table named after the pipeline'
SELECT flink.expose_results('orders_per_minute');
DO $$
DECLARE deadline timestamptz := clock_timestamp() + interval '90 seconds';
BEGIN
  LOOP
    BEGIN
      EXIT WHEN (SELECT count(*) FROM flink_results.orders_per_minute) >= 2;
    EXCEPTION WHEN fdw_table_not_found THEN  -- the index appears with the first result
      NULL;
    END;
    IF clock_timestamp() > deadline THEN RAISE EXCEPTION 'no results after 90 s'; END IF;
    PERFORM pg_sleep(1);
  END LOOP;
END $$;
SELECT city, window_start, window_end, orders, revenue FROM flink_results.orders_per_minute ORDER BY city;
\echo '--- the exact Elasticsearch query behind a SQL filter'
EXPLAIN (VERBOSE, COSTS OFF) SELECT city, orders FROM flink_results.orders_per_minute WHERE city = 'Lisbon';

\echo '--- the raw input: the Kafka topic as a table (a bounded snapshot; no offsets committed)'
CREATE SERVER IF NOT EXISTS demo_kafka FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (datasource 'demo_kafka');
CREATE FOREIGN TABLE IF NOT EXISTS demo_orders (
  _partition int, _offset bigint, _timestamp timestamptz,
  order_id bigint, amount numeric(10, 2), city text, ts timestamptz, _error text
) SERVER demo_kafka OPTIONS (topic 'demo_orders');
SELECT _partition, _offset, order_id, amount, city, ts FROM demo_orders ORDER BY _offset;
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT order_id FROM demo_orders WHERE _offset >= 3;

\echo '--- stop with a savepoint; every transition is recorded'
SELECT flink.stop('orders_per_minute');
SELECT flink.wait('orders_per_minute', 'stopped', '120 seconds');
SELECT pipeline, trigger, path FROM flink.savepoints;
SELECT at::time(0) AS at, from_state, to_state, left(detail, 60) AS detail FROM flink.job_events ORDER BY id;
