-- The control plane's SQL surface without Flink: clear refusals, typed states, drop semantics.
-- (The worker of this database runs, but no cluster is reachable: nothing here waits for it.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_flink;
RESET client_min_messages;
\set VERBOSITY default
SELECT * FROM flink.register_cluster('ccl', 'http://127.0.0.1:1', 'http://127.0.0.1:2', '{"timeout_ms": 200}');
SELECT * FROM flink.register_datasource('ck', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}');
SELECT * FROM flink.create_pipeline('cp', 'filter_alert', $json${"source": {"datasource": "ck", "object": "t", "columns": [{"name": "a", "type": "INT"}]}, "conditions": [{"column": "a", "op": ">", "value": 1}], "select": ["a"], "sink": {"datasource": "ck", "object": "u"}}$json$);
SELECT flink.start('nope');
SELECT flink.wait('cp', 'exploded');
-- Waiting for a change this transaction has not committed fails at once.
BEGIN;
SELECT flink.start('cp');
SELECT flink.wait('cp', 'RUNNING', '30 seconds');
ROLLBACK;
SELECT pipeline, desired, actual FROM flink.pipeline_status;
-- A cluster a pipeline wants to run on cannot be dropped (cascade stops the pipelines first).
SELECT flink.start('cp');
SELECT flink.drop_cluster('ccl');
SELECT flink.drop_cluster('ccl', cascade => true);
SELECT pipeline, desired FROM flink.pipeline_status;
SELECT name FROM flink.clusters;
SELECT count(*) AS clusters_waiting_to_be_dropped FROM flink.cluster WHERE dropping;
-- Registering it again keeps it: it is no longer being dropped.
SELECT * FROM flink.register_cluster('ccl', 'http://127.0.0.1:1', 'http://127.0.0.1:2', '{"timeout_ms": 200}');
SELECT name, dropping FROM flink.clusters ORDER BY name;
-- A dropped pipeline is recorded for the worker to stop its job; a rolled-back drop is not.
BEGIN;
SELECT flink.drop_pipeline('cp');
ROLLBACK;
SELECT count(*) AS drops_after_rollback FROM flink.dropped_pipelines;
SELECT flink.drop_pipeline('cp', with_savepoint => true);
SELECT pipeline, with_savepoint FROM flink.dropped_pipelines;
SELECT flink.drop_datasource('ck');
-- The job state is typed: the CHECK constraint lists exactly the states of the Rust enum.
SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.conname = 'job_state_check';
