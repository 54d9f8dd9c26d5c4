-- A migration that defines a pipeline and starts it. Every call is idempotent, so running this
-- script again (by hand or by a tool without a change log) changes nothing.
BEGIN;
SELECT * FROM flink.register_cluster('local', :'gateway_url', :'rest_url');
SELECT * FROM flink.register_datasource('mig_kafka', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}');
SELECT * FROM flink.create_pipeline(:'pipeline', 'filter_alert', format($j${
  "source": {"datasource": "mig_kafka", "object": "%s_in", "columns": [{"name": "n", "type": "BIGINT"}]},
  "conditions": [{"column": "n", "op": ">", "value": 0}],
  "sink": {"datasource": "mig_kafka", "object": "%s_out"}}$j$, :'pipeline', :'pipeline')::jsonb);
SELECT flink.start(:'pipeline');
COMMIT;
