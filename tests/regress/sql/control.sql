-- The control plane's SQL surface without a worker or Flink: clear refusals, typed states.
CREATE EXTENSION IF NOT EXISTS pg_flink;
\set VERBOSITY default
SELECT * FROM flink.register_datasource('ck', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}');
SELECT * FROM flink.create_pipeline('cp', 'filter_alert', $json${"source": {"datasource": "ck", "object": "t", "columns": [{"name": "a", "type": "INT"}]}, "conditions": [{"column": "a", "op": ">", "value": 1}], "select": ["a"], "sink": {"datasource": "ck", "object": "u"}}$json$);
-- No worker serves this database: start refuses at once, in the caller's transaction.
SELECT flink.start('cp');
SELECT flink.start('nope');
SELECT flink.wait('cp', 'exploded');
SELECT pipeline, desired, actual, healthy FROM flink.pipeline_status;
SELECT flink.drop_pipeline('cp');
SELECT flink.drop_datasource('ck');
