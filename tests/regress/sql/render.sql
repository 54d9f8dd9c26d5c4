-- Rendering through the SQL API: create_pipeline validates, resolves and renders once; render()
-- shows the script (secrets masked unless revealed by flink_admin); the stored hash and version.
-- Pipelines from tests/pipelines/examples.json (their scripts are also golden files for cargo test).
-- Job names carry this instance's system identifier and the database oid: shown as <sysid>/<oid>.
CREATE FUNCTION pg_temp.shown(script text) RETURNS text LANGUAGE sql
AS $$ SELECT regexp_replace(script, 'pg_flink/[0-9]+/[0-9]+/', 'pg_flink/<sysid>/<oid>/', 'g') $$;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_flink;
RESET client_min_messages;
\set VERBOSITY default

SELECT * FROM flink.register_datasource('kafka_local', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}', NULL);
SELECT * FROM flink.register_datasource('es_local', 'elasticsearch', '{"url": "http://127.0.0.1:9200"}', NULL);
SELECT * FROM flink.register_datasource('pg_local', 'postgres', '{"host": "127.0.0.1", "database": "pg_flink_test"}', '{"password": "example-pw"}');
SELECT * FROM flink.register_datasource('mysql_local', 'mysql', '{"host": "127.0.0.1", "database": "pg_flink_test", "user": "pgflink"}', '{"password": "pgflink"}');
SELECT * FROM flink.create_pipeline('big_orders', 'filter_alert', $json${"source": {"datasource": "kafka_local", "object": "orders", "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "country", "type": "STRING"}, {"name": "amount", "type": "DECIMAL(10, 2)"}, {"name": "ts", "type": "TIMESTAMP(3)"}]}, "match": "any", "conditions": [{"column": "amount", "op": ">", "value": 1000}, {"column": "country", "op": "in", "value": ["KP", "IR"]}], "select": ["order_id", "country", "amount", "ts"], "enrich": [{"as": "rule", "value": "big_or_watched"}], "sink": {"datasource": "kafka_local", "object": "alerts"}}$json$, '{}');
SELECT * FROM flink.create_pipeline('orders_per_minute', 'window_aggregate', $json${"source": {"datasource": "kafka_local", "object": "orders", "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "user_id", "type": "BIGINT"}, {"name": "city", "type": "STRING"}, {"name": "amount", "type": "DECIMAL(10, 2)"}, {"name": "ts", "type": "TIMESTAMP(3)"}], "event_time": "ts", "watermark_delay": "5 seconds"}, "window": {"type": "tumble", "size": "1 minute"}, "group_by": ["city"], "aggregates": [{"fn": "count", "as": "orders"}, {"fn": "sum", "column": "amount", "as": "revenue"}, {"fn": "count_distinct", "column": "user_id", "as": "buyers"}], "sink": {"datasource": "es_local", "object": "orders_per_minute"}}$json$, '{"parallelism": 1, "checkpoint_interval": "10 seconds", "checkpoint_mode": "EXACTLY_ONCE", "state_ttl": "1 hour"}');
SELECT * FROM flink.create_pipeline('login_brute_force', 'cep', $json${"source": {"datasource": "kafka_local", "object": "logins", "columns": [{"name": "user_id", "type": "STRING"}, {"name": "status", "type": "STRING"}, {"name": "ip", "type": "STRING"}, {"name": "ts", "type": "TIMESTAMP(3)"}], "event_time": "ts", "watermark_delay": "1 second"}, "partition_by": ["user_id"], "pattern": [{"var": "FAIL", "quantifier": "{3,}", "conditions": [{"column": "status", "op": "=", "value": "fail"}]}, {"var": "OK", "conditions": [{"column": "status", "op": "=", "value": "success"}]}], "within": "1 minute", "measures": [{"as": "failures", "var": "FAIL", "fn": "count"}, {"as": "first_failure", "var": "FAIL", "column": "ts", "fn": "first"}, {"as": "success_at", "var": "OK", "column": "ts", "fn": "last"}, {"as": "ip", "var": "OK", "column": "ip"}], "sink": {"datasource": "kafka_local", "object": "security_alerts"}}$json$, '{}');
SELECT * FROM flink.create_pipeline('orders_to_es', 'sync', $json${"source": {"datasource": "kafka_local", "object": "orders", "columns": [{"name": "order_id", "type": "BIGINT"}, {"name": "city", "type": "STRING"}, {"name": "amount", "type": "DOUBLE"}]}, "sink": {"datasource": "es_local", "object": "orders", "primary_key": ["order_id"]}}$json$, '{}');
SELECT * FROM flink.create_pipeline('raw_top_cities', 'sql', $json${"sql": "INSERT INTO {{kafka_local.city_totals}} SELECT city, SUM(amount) AS total FROM {{kafka_local.orders}} WHERE amount > 0 GROUP BY city", "tables": {"kafka_local.orders": {"columns": [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DOUBLE"}]}, "kafka_local.city_totals": {"columns": [{"name": "city", "type": "STRING"}, {"name": "total", "type": "DOUBLE"}], "primary_key": ["city"]}}}$json$, '{}');
-- Re-running an identical definition changes nothing (migrations re-run).
SELECT * FROM flink.create_pipeline('big_orders', 'filter_alert', (SELECT params FROM flink.pipelines WHERE name = 'big_orders'));
SELECT name, template, version, length(script_hash) AS hash_len, datasources FROM flink.pipelines ORDER BY name;
SELECT pg_temp.shown(flink.render('big_orders'));
SELECT pg_temp.shown(flink.render('orders_per_minute'));
SELECT pg_temp.shown(flink.render('login_brute_force'));
SELECT pg_temp.shown(flink.render('orders_to_es'));
SELECT pg_temp.shown(flink.render('raw_top_cities'));
-- The stored hash is the hash of the masked script of the stored version.
SELECT script_hash = encode(sha256(convert_to(flink.render(name), 'UTF8')), 'hex') AS hash_matches FROM flink.pipelines ORDER BY name;
-- A changed definition bumps the version, and the job name in the script follows.
SELECT * FROM flink.create_pipeline('big_orders', 'filter_alert', jsonb_set((SELECT params FROM flink.pipelines WHERE name = 'big_orders'), '{conditions,0,value}', '2000'));
SELECT line FROM regexp_split_to_table(pg_temp.shown(flink.render('big_orders')), E'\n') AS line WHERE line LIKE 'SET ''pipeline.name''%' OR line LIKE '%2000%';
-- The sink, as expose_results sees it.
SELECT jsonb_pretty(flink.pipeline_sink('orders_per_minute'));
-- A raw SQL pipeline's sink is the first table its INSERTs write (its columns declared).
SELECT flink.pipeline_sink('raw_top_cities')->>'object' AS raw_sql_sink, jsonb_array_length(flink.pipeline_sink('raw_top_cities')->'columns') AS columns;
-- Errors name the pipeline and the field at fault, with a hint.
SELECT * FROM flink.create_pipeline('bad', 'filter_alerts', '{}');
SELECT * FROM flink.create_pipeline('bad', 'filter_alert', $json${"source": {"datasource": "nope", "object": "t", "columns": [{"name": "a", "type": "INT"}]}, "conditions": [], "select": ["a"], "sink": {"datasource": "kafka_local", "object": "x"}}$json$);
SELECT * FROM flink.create_pipeline('bad', 'filter_alert', $json${"source": {"datasource": "kafka_local", "object": "t", "columns": [{"name": "a", "type": "INTEGR"}]}, "conditions": [], "select": ["a"], "sink": {"datasource": "kafka_local", "object": "x"}}$json$);
SELECT * FROM flink.create_pipeline('bad', 'filter_alert', '{}', '{"cluster": "nope"}');
SELECT pg_temp.shown(flink.render('nope'));
SELECT count(*) AS stored_after_errors FROM flink.pipelines WHERE name = 'bad';
SELECT flink.drop_pipeline('raw_top_cities');
SELECT flink.drop_pipeline('raw_top_cities');
SELECT flink.drop_pipeline('raw_top_cities', if_exists => true);
