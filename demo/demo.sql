-- pg_flink demo: what works today. Re-runnable.
\echo '--- the extension'
CREATE EXTENSION IF NOT EXISTS pg_flink;
SELECT extname, extversion, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'pg_flink';

\echo '--- flink.health(): JobManager and SQL Gateway reached over HTTP from this backend'
SELECT service, url, version, round(latency_ms::numeric, 1) AS latency_ms, detail FROM flink.health();

\echo '--- a Flink SQL script run through the SQL Gateway: write two orders to Kafka'
SELECT statement_no, result_kind, job_id
FROM flink.execute_sql($$
  CREATE TEMPORARY TABLE orders (order_id BIGINT, amount DECIMAL(10, 2), city STRING) WITH (
    'connector' = 'kafka', 'topic' = 'demo_orders',
    'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json');
  INSERT INTO orders VALUES (1, 19.90, 'Lisbon'), (2, 5.00, 'Porto');
$$);
