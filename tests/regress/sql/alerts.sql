-- Alert rules without Flink: every condition against planted jobs and metrics, one open alert
-- per rule and pipeline (no duplicates however often it is evaluated), resolution, rate-limit
-- suppression, webhook retries, masked headers, and create_alert's errors and idempotency.
-- Everything runs in one transaction (the worker of this database cannot see it) and is rolled back.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_flink;
RESET client_min_messages;
\set VERBOSITY default
BEGIN;
\set ON_ERROR_ROLLBACK on
SELECT * FROM flink.register_cluster('acl', 'http://127.0.0.1:1', 'http://127.0.0.1:2', '{"timeout_ms": 200}');
SELECT * FROM flink.register_datasource('ak', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}');
SELECT pipeline FROM flink.create_pipeline('ap', 'filter_alert', $json${"source": {"datasource": "ak", "object": "t", "columns": [{"name": "a", "type": "INT"}]}, "conditions": [{"column": "a", "op": ">", "value": 1}], "sink": {"datasource": "ak", "object": "u"}}$json$, '{"freshness": "5 seconds"}');
SELECT pipeline FROM flink.create_pipeline('bp', 'filter_alert', $json${"source": {"datasource": "ak", "object": "t", "columns": [{"name": "a", "type": "INT"}]}, "conditions": [{"column": "a", "op": ">", "value": 1}], "sink": {"datasource": "ak", "object": "v"}}$json$);
SELECT flink.start('ap'), flink.start('bp');
UPDATE flink.pipeline_state SET requested_at = now() - interval '1 hour';
-- ap: running for an hour; bp: its submission failed 5 minutes ago.
INSERT INTO flink.job (pipeline, pipeline_version, script_hash, job_name, flink_job_id, state, started_at)
  VALUES ('ap', 1, 'h', 'n1', 'j1', 'RUNNING', now() - interval '1 hour');
INSERT INTO flink.job (pipeline, pipeline_version, script_hash, job_name, state, last_error)
  VALUES ('bp', 1, 'h', 'n2', 'SUBMIT_FAILED', 'topic "t" does not exist');
INSERT INTO flink.job_event (job_id, pipeline, at, from_state, to_state)
  SELECT id, 'bp', now() - interval '5 minutes', 'SUBMITTING', 'SUBMIT_FAILED' FROM flink.job WHERE pipeline = 'bp';
-- Samples of ap: 0 restarts 20 minutes ago, 5 now; checkpoint 30 minutes old; 12 s behind.
INSERT INTO flink.pipeline_metric_history (pipeline, flink_job_id, sampled_at, restarts, dead_letters)
  VALUES ('ap', 'j1', now() - interval '20 minutes', 0, 0), ('ap', 'j1', now() - interval '1 minute', 5, 9);
SELECT flink_internal.record_metrics(replace(
  '[{"pipeline": "ap", "job_id": JOB, "flink_job_id": "j1", "lag_records": 1200, "lag_seconds": 12.5, "records_in": 10,
     "records_out": 9, "backpressure": 0.5, "checkpoints_completed": 3, "checkpoints_failed": 1,
     "last_checkpoint_ms": 0, "restarts": 5, "dead_letters": 9}]', 'JOB', (SELECT id::text FROM flink.job WHERE pipeline = 'ap'))::jsonb, interval '1 day');
UPDATE flink.pipeline_metric SET last_checkpoint_at = now() - interval '30 minutes';
SELECT pipeline, lag_records, lag_seconds, freshness, stale, checkpoints_failed, restarts, dead_letters FROM flink.pipeline_metrics;
SELECT pipeline, freshness, lag, fresh FROM flink.pipeline_status ORDER BY 1;
-- Rules: one per condition, and one pattern rule over every pipeline.
SELECT flink.create_alert('r_restart', 'ap', 'restarting', threshold => 2, "window" => '10 minutes');
SELECT flink.create_alert('r_ckpt', 'ap', 'no_checkpoint', "window" => '10 minutes');
SELECT flink.create_alert('r_lag', 'ap', 'lag', threshold => 10, rate_limit => '1 hour');
SELECT flink.create_alert('r_stale', 'ap', 'stale');
SELECT flink.create_alert('r_dead', 'ap', 'dead_letters', threshold => 5, "window" => '10 minutes');
SELECT flink.create_alert('r_failed', '%', 'failed', webhook_url => 'http://127.0.0.1:9/hook',
                          webhook_headers => '{"Authorization": "Bearer s3cret"}');
SELECT flink.create_alert('r_desired', '%', 'not_desired', "window" => '1 minute');
-- A restart threshold not exceeded, a window before the restarts: no alert.
SELECT flink.create_alert('r_quiet', 'ap', 'restarting', threshold => 5, "window" => '10 minutes');
SELECT flink_internal.evaluate_alerts() AS events;
SELECT rule, pipeline, condition, detail - 'error' - 'since' - 'last_checkpoint_at' - 'stale_since' AS detail FROM flink.alerts ORDER BY 1, 2;
-- Evaluated again and again: nothing new while the conditions hold.
SELECT flink_internal.evaluate_alerts() AS events, flink_internal.evaluate_alerts() AS again;
SELECT rule, pipeline, count(*) FROM flink.alert_history GROUP BY 1, 2 HAVING count(*) > 1;
-- ap catches up and checkpoints: lag, stale and no_checkpoint resolve.
SELECT flink_internal.record_metrics(replace(
  '[{"pipeline": "ap", "job_id": JOB, "flink_job_id": "j1", "lag_records": 0, "lag_seconds": 0, "restarts": 5, "dead_letters": 9}]', 'JOB', (SELECT id::text FROM flink.job WHERE pipeline = 'ap'))::jsonb,
  interval '1 day');
UPDATE flink.pipeline_metric SET last_checkpoint_at = now();
SELECT flink_internal.evaluate_alerts() AS events;
SELECT rule, event, suppressed FROM flink.alert_history WHERE event = 'resolved' ORDER BY 1;
SELECT pipeline, stale FROM flink.pipeline_metrics;
-- It falls behind again within r_lag's rate limit: recorded, not delivered.
SELECT flink_internal.record_metrics(replace(
  '[{"pipeline": "ap", "job_id": JOB, "flink_job_id": "j1", "lag_records": 10, "lag_seconds": 30, "restarts": 5, "dead_letters": 9}]', 'JOB', (SELECT id::text FROM flink.job WHERE pipeline = 'ap'))::jsonb,
  interval '1 day');
SELECT flink_internal.evaluate_alerts() AS events;
SELECT rule, event, suppressed FROM flink.alert_history WHERE rule IN ('r_lag', 'r_stale') ORDER BY id;
SELECT rule, suppressed FROM flink.alerts WHERE rule = 'r_lag';
-- Freshness transitions are job events.
SELECT from_state, to_state FROM flink.job_events WHERE pipeline = 'ap' ORDER BY id;
-- The webhook of r_failed: due now, with its headers; retried with backoff, then failed.
SELECT url, headers, payload->>'event' AS event, payload->>'rule' AS rule FROM flink_internal.webhooks_due(10);
SELECT flink_internal.webhook_result(id, false, 'HTTP 500: busy', 3) FROM flink_internal.webhooks_due(10);
SELECT webhook_status, webhook_attempts, webhook_error, webhook_next_at > now() AS backing_off FROM flink.alert_event WHERE rule = 'r_failed';
SELECT count(*) AS due_while_backing_off FROM flink_internal.webhooks_due(10);
UPDATE flink.alert_event SET webhook_next_at = now() WHERE rule = 'r_failed';
SELECT flink_internal.webhook_result(id, false, 'connection failed', 3) FROM flink_internal.webhooks_due(10);
UPDATE flink.alert_event SET webhook_next_at = now() WHERE rule = 'r_failed';
SELECT flink_internal.webhook_result(id, false, 'connection failed', 3) FROM flink_internal.webhooks_due(10);
SELECT webhook_status, webhook_attempts, webhook_error FROM flink.alert_history WHERE rule = 'r_failed';
-- Secrets: masked in the rules view, never in history or payloads.
SELECT name, webhook_headers FROM flink.alert_rules WHERE webhook_url IS NOT NULL;
SELECT count(*) AS secret_in_history FROM flink.alert_event WHERE detail::text LIKE '%s3cret%';
-- Idempotent and replaceable (a migration re-runs it); replacing ends the open alerts.
SELECT flink.create_alert('r_lag', 'ap', 'lag', threshold => 10, rate_limit => '1 hour');
SELECT flink.create_alert('r_lag', 'ap', 'lag', threshold => 20);
SELECT count(*) AS open_after_replace FROM flink.alerts WHERE rule = 'r_lag';
-- Errors name the rule and the field, with a hint.
SELECT flink.create_alert('x', 'ap', 'exploded');
SELECT flink.create_alert('x', 'ap', 'lag');
SELECT flink.create_alert('x', 'ap', 'no_checkpoint');
SELECT flink.create_alert('x', 'ap', 'restarting', threshold => -1);
SELECT flink.create_alert('x', 'ap', 'failed', webhook_url => 'ftp://example/x');
SELECT flink.create_alert('x', 'ap', 'failed', webhook_url => 'http://user:pw@example/x');
SELECT flink.create_alert('x', 'ap', 'failed', webhook_url => 'http://example/x', webhook_headers => '{"X": "a\nb"}');
SELECT flink.create_alert('1x', 'ap', 'failed');
SELECT flink.drop_alert('nope');
SELECT flink.drop_alert('nope', if_exists => true);
SELECT flink.drop_alert('r_dead');
SELECT count(*) AS open_of_dropped_rule FROM flink.alerts WHERE rule = 'r_dead';
-- Dead letters need the option.
SELECT * FROM flink.dead_letters('ap');
SELECT * FROM flink.dead_letters('nope');
SELECT flink.replay_dead_letters('ap', 0, NULL);
ROLLBACK;
