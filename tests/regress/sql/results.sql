-- Results tables without Flink: flink.expose_results builds a foreign table (and, with
-- with_view => true, a view) from a stored pipeline's sink; re-running alters it in place.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_flink;
\set VERBOSITY default
SELECT * FROM flink.register_datasource('res_kafka', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}', NULL);
SELECT * FROM flink.create_pipeline('res_opm', 'window_aggregate', $json${"source": {"datasource": "res_kafka", "object": "orders", "columns": [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DECIMAL(10, 2)"}, {"name": "ts", "type": "TIMESTAMP(3)"}], "event_time": "ts", "watermark_delay": "5 seconds"}, "window": {"type": "tumble", "size": "1 minute"}, "group_by": ["city"], "aggregates": [{"fn": "count", "as": "orders"}], "sink": {"datasource": "res_kafka", "object": "res_opm"}}$json$);
SELECT flink.expose_results('res_opm', 'res_schema', with_view => true);
-- Zone-less TIMESTAMP(3) is timestamp; the view has the same columns.
SELECT table_name, column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'res_schema' ORDER BY table_name, ordinal_position;
SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'res_schema' ORDER BY 1;
-- Grants, a comment and a view of the user's on the table.
DROP ROLE IF EXISTS regress_res_bi;
CREATE ROLE regress_res_bi;
GRANT SELECT ON res_schema.res_opm, res_schema.res_opm_v TO regress_res_bi;
COMMENT ON COLUMN res_schema.res_opm.city IS 'where';
CREATE VIEW public.res_by_city AS SELECT city, orders FROM res_schema.res_opm;
CREATE TEMP TABLE res_before AS SELECT 'res_schema.res_opm'::regclass::oid AS t, 'res_schema.res_opm_v'::regclass::oid AS v;
-- Unchanged: nothing is done (same view oid).
SELECT flink.expose_results('res_opm', 'res_schema');
SELECT 'res_schema.res_opm_v'::regclass::oid = v AS same_view FROM res_before;
-- A new version with one more column: added in place, the user's view untouched.
SELECT * FROM flink.create_pipeline('res_opm', 'window_aggregate', jsonb_set((SELECT params FROM flink.pipelines WHERE name = 'res_opm'), '{aggregates}', '[{"fn": "count", "as": "orders"}, {"fn": "sum", "column": "amount", "as": "revenue"}]'));
SELECT flink.expose_results('res_opm', 'res_schema');
SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
 WHERE table_schema = 'res_schema' AND table_name = 'res_opm_v' AND column_name IN ('window_start', 'orders', 'revenue') ORDER BY ordinal_position;
SELECT 'res_schema.res_opm'::regclass::oid = t AS same_table,
       has_table_privilege('regress_res_bi', 'res_schema.res_opm', 'SELECT') AS table_grant_kept,
       has_table_privilege('regress_res_bi', 'res_schema.res_opm_v', 'SELECT') AS view_grant_kept,
       col_description('res_schema.res_opm'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'res_schema.res_opm'::regclass AND attname = 'city')) AS comment_kept,
       to_regclass('public.res_by_city') IS NOT NULL AS user_view_kept
  FROM res_before;
-- A type change under a column a view uses: refused, naming the view and the column; nothing changed.
SELECT * FROM flink.create_pipeline('res_opm', 'window_aggregate', jsonb_set((SELECT params FROM flink.pipelines WHERE name = 'res_opm'), '{aggregates,0}', '{"fn": "sum", "column": "amount", "as": "orders"}'));
SELECT flink.expose_results('res_opm', 'res_schema');
SELECT format_type(atttypid, atttypmod) AS orders_type FROM pg_attribute WHERE attrelid = 'res_schema.res_opm'::regclass AND attname = 'orders';
-- Without the user's view it goes through; the pipeline's own view is re-created with its grants.
DROP VIEW public.res_by_city;
SELECT flink.expose_results('res_opm', 'res_schema');
SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
 WHERE table_schema = 'res_schema' AND table_name = 'res_opm_v' AND column_name = 'orders';
SELECT 'res_schema.res_opm'::regclass::oid = t AS same_table,
       has_table_privilege('regress_res_bi', 'res_schema.res_opm_v', 'SELECT') AS view_grant_kept
  FROM res_before;
-- A relation in the way of the view is not taken over.
SELECT * FROM flink.create_pipeline('res_two', 'window_aggregate', jsonb_set((SELECT params FROM flink.pipelines WHERE name = 'res_opm'), '{sink,object}', '"res_two"'));
CREATE VIEW res_schema.res_two_v AS SELECT 1 AS one;
SELECT flink.expose_results('res_two', 'res_schema', with_view => true);
DROP VIEW res_schema.res_two_v;
SELECT flink.expose_results('res_two', 'res_schema', with_view => true);
-- drop_pipeline drops the table and its view; keep_results => true keeps both.
SELECT flink.drop_pipeline('res_two');
SELECT to_regclass('res_schema.res_two') AS table_left, to_regclass('res_schema.res_two_v') AS view_left;
SELECT flink.drop_pipeline('res_opm', keep_results => true);
SELECT to_regclass('res_schema.res_opm') AS table_kept, to_regclass('res_schema.res_opm_v') AS view_kept;
DROP SCHEMA res_schema CASCADE;
DROP ROLE regress_res_bi;
DELETE FROM flink.result_table WHERE pipeline IN ('res_opm', 'res_two');
DROP SERVER pg_flink_res_kafka;
SELECT flink.drop_datasource('res_kafka');
RESET client_min_messages;
