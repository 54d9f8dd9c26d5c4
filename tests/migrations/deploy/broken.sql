-- A migration that fails after flink.start(): the transaction rolls back and Flink never sees
-- the pipeline.
BEGIN;
SELECT * FROM flink.create_pipeline(:'pipeline' || '_broken', 'filter_alert', format($j${
  "source": {"datasource": "mig_kafka", "object": "%s_in", "columns": [{"name": "n", "type": "BIGINT"}]},
  "conditions": [{"column": "n", "op": ">", "value": 0}],
  "sink": {"datasource": "mig_kafka", "object": "%s_out"}}$j$, :'pipeline', :'pipeline')::jsonb);
SELECT flink.start(:'pipeline' || '_broken');
SELECT 1 / 0;  -- the migration's own mistake
COMMIT;
