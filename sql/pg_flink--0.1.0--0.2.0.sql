-- pg_flink 0.1.0 -> 0.2.0. Complain if sourced in psql rather than via ALTER EXTENSION.
\echo Use "ALTER EXTENSION pg_flink UPDATE TO '0.2.0'" to load this file. \quit

-- pg_flink install script, part: added in 0.2.0 (the same statements are in
-- sql/pg_flink--0.1.0--0.2.0.sql; the upgrade test compares a fresh install with an upgraded one).
--
-- 1. Change log for the worker. The worker keeps the catalog it reconciles in memory and re-reads
--    only what changed: every write to a table it looks at leaves a row here (the pipeline's name,
--    or NULL for "re-read everything": clusters, drops, pipelines created or dropped). The worker
--    deletes the rows it has seen; a row of a transaction that has not committed yet stays
--    invisible, and so undeleted, until it commits. Unlogged: after a crash the worker starts
--    from a full read anyway, and a standby never needs it.
-- 2. Manual savepoints: flink.savepoint(pipeline) asks the worker for one (the job keeps running).

CREATE UNLOGGED TABLE flink_internal.change (pipeline text);
COMMENT ON TABLE flink_internal.change IS
  'Pipelines whose catalog rows changed since the worker last looked (NULL: everything); the worker deletes what it has read.';

CREATE FUNCTION flink_internal.note_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF TG_ARGV[0] = '*' THEN
    INSERT INTO flink_internal.change VALUES (NULL);
  ELSE
    IF TG_OP <> 'INSERT' THEN
      INSERT INTO flink_internal.change VALUES (to_jsonb(OLD) ->> TG_ARGV[0]);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      INSERT INTO flink_internal.change VALUES (to_jsonb(NEW) ->> TG_ARGV[0]);
    END IF;
  END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER worker_change AFTER INSERT OR DELETE ON flink.pipeline
  FOR EACH STATEMENT EXECUTE FUNCTION flink_internal.note_change('*');
CREATE TRIGGER worker_change_row AFTER UPDATE ON flink.pipeline
  FOR EACH ROW EXECUTE FUNCTION flink_internal.note_change('name');
CREATE TRIGGER worker_change AFTER INSERT OR UPDATE OR DELETE ON flink.cluster
  FOR EACH STATEMENT EXECUTE FUNCTION flink_internal.note_change('*');
CREATE TRIGGER worker_change AFTER INSERT OR UPDATE OR DELETE ON flink.pipeline_drop
  FOR EACH STATEMENT EXECUTE FUNCTION flink_internal.note_change('*');
CREATE TRIGGER worker_change AFTER INSERT OR UPDATE OR DELETE ON flink.pipeline_state
  FOR EACH ROW EXECUTE FUNCTION flink_internal.note_change('pipeline');
CREATE TRIGGER worker_change AFTER INSERT OR DELETE ON flink.job
  FOR EACH ROW EXECUTE FUNCTION flink_internal.note_change('pipeline');
-- The job details the worker re-reads on a timer (restart count, last checkpoint) are written
-- by the worker alone, which keeps its own copy up to date: an update of only those columns
-- is not a change to read again. Any other column (also one added later) is.
CREATE TRIGGER worker_change_update AFTER UPDATE ON flink.job
  FOR EACH ROW
  WHEN ((to_jsonb(OLD) - '{flink_restarts,last_restart_at,flink_modified_ms,details_checked_at,last_checkpoint_at}'::text[])
        IS DISTINCT FROM (to_jsonb(NEW) - '{flink_restarts,last_restart_at,flink_modified_ms,details_checked_at,last_checkpoint_at}'::text[]))
  EXECUTE FUNCTION flink_internal.note_change('pipeline');
CREATE TRIGGER worker_change AFTER INSERT OR UPDATE OR DELETE ON flink.savepoint
  FOR EACH ROW EXECUTE FUNCTION flink_internal.note_change('pipeline');

-- A state change is recorded as an event (and NOTIFY) when the state or the error is new (0.1.0
-- recorded every error again, so a crash loop with one cause filled flink.job_events).
CREATE OR REPLACE FUNCTION flink_internal.job_transition(job_id bigint, to_state text, flink_job_id text DEFAULT NULL, detail text DEFAULT NULL, error text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  j flink.job;
BEGIN
  SELECT * INTO j FROM flink.job x WHERE x.id = job_transition.job_id FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE flink.job x
     SET state = to_state,
         flink_job_id = COALESCE(job_transition.flink_job_id, x.flink_job_id),
         started_at = CASE WHEN to_state = 'RUNNING' AND x.started_at IS NULL THEN now() ELSE x.started_at END,
         ended_at = CASE WHEN to_state IN ('STOPPED', 'CANCELED', 'FINISHED', 'FAILED', 'LOST', 'SUBMIT_FAILED', 'DETACHED') THEN now() ELSE x.ended_at END,
         -- A stop's bookkeeping ends with the stop (or a new state that is not a stop).
         stop_trigger = CASE WHEN to_state = 'STOPPING' THEN x.stop_trigger END,
         stop_attempts = CASE WHEN to_state IN ('STOPPING', 'STOP_FAILED') THEN x.stop_attempts ELSE 0 END,
         stop_next_at = CASE WHEN to_state = 'STOPPING' THEN x.stop_next_at END,
         last_error = COALESCE(error, x.last_error),
         updated_at = now()
   WHERE x.id = j.id;
  -- A restart whose savepoint could not be taken is given up (the job keeps running).
  IF to_state = 'STOP_FAILED' THEN
    UPDATE flink.pipeline_state ps SET restart_requested = false WHERE ps.pipeline = j.pipeline;
  END IF;
  -- An event for a new state, or a new error; the same error again (a job Flink keeps
  -- restarting for the same cause) is not news.
  IF j.state IS DISTINCT FROM to_state OR (error IS NOT NULL AND error IS DISTINCT FROM j.last_error) THEN
    INSERT INTO flink.job_event (job_id, pipeline, from_state, to_state, detail)
    VALUES (j.id, j.pipeline, j.state, to_state, COALESCE(detail, error));
    PERFORM pg_notify('flink_job_state', jsonb_build_object(
      'pipeline', j.pipeline, 'job', j.id, 'flink_job_id', COALESCE(job_transition.flink_job_id, j.flink_job_id),
      'from', j.state, 'to', to_state, 'detail', left(COALESCE(detail, error), 1000), 'at', clock_timestamp())::text);
  END IF;
END
$fn$;

-- 0.1.0's whole-catalog snapshot is replaced by worker_head() + worker_pipelines() (a database
-- still on 0.1.0 keeps its own, which the library reads there).
DROP FUNCTION IF EXISTS flink_internal.worker_snapshot();

-- What changed since the last call (and forget it): NULL in the array means everything.
CREATE FUNCTION flink_internal.worker_changes() RETURNS text[]
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  WITH d AS (DELETE FROM flink_internal.change RETURNING pipeline)
  SELECT array_agg(DISTINCT pipeline) FROM d
$fn$;

-- Everything but the pipelines: the database's identity, clusters, pending drops, pipeline names.
CREATE FUNCTION flink_internal.worker_head() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT jsonb_build_object(
    'database', (SELECT jsonb_build_object('system_identifier', s.system_identifier::text, 'oid', d.oid::bigint, 'name', d.datname)
                 FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()),
    'clusters', (SELECT COALESCE(jsonb_agg(jsonb_build_object('name', c.name, 'rest_url', c.rest_url, 'dropping', c.dropping)
                                           ORDER BY c.name), '[]') FROM flink.cluster c),
    'drops', (SELECT COALESCE(jsonb_agg(jsonb_build_object('id', d.id, 'pipeline', d.pipeline, 'with_savepoint', d.with_savepoint,
                                                           'stop_trigger', d.stop_trigger,
                                                           'recreated', EXISTS (SELECT 1 FROM flink.pipeline p WHERE p.name = d.pipeline))
                                        ORDER BY d.id), '[]') FROM flink.pipeline_drop d WHERE d.stopped_at IS NULL),
    'all_pipelines', (SELECT COALESCE(jsonb_agg(p.name ORDER BY p.name), '[]') FROM flink.pipeline p),
    'pipelines', '[]'::jsonb)
$fn$;

-- The worker's rows of the named pipelines (NULL: all of them). Times are relative to now()
-- (the worker ages them itself between reads): updated_ago_ms, details_ago_ms, stop_due_in_ms.
-- A few names (the usual tick) are looked up by index; NULL reads everything in one pass.
CREATE FUNCTION flink_internal.worker_pipeline_row(p flink.pipeline) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT jsonb_build_object(
           'pipeline', p.name,
           -- Never started: desired stopped (a job with its identity, e.g. submitted by a primary
           -- whose flink.start was lost in a failover, is stopped: the catalog is the truth).
           'desired', COALESCE(ps.desired, 'stopped'), 'started', ps.pipeline IS NOT NULL,
           'from_savepoint', ps.from_savepoint,
           'stop_with_savepoint', COALESCE(ps.stop_with_savepoint, true), 'drain', COALESCE(ps.drain, false),
           'savepoint_required', COALESCE(ps.savepoint_required, false),
           'restart_requested', COALESCE(ps.restart_requested, false),
           'savepoint_requested', ps.savepoint_requested_at IS NOT NULL,
           'cluster', c.name, 'gateway_url', c.gateway_url, 'rest_url', c.rest_url,
           'job', (SELECT jsonb_build_object('id', j.id, 'job_name', j.job_name, 'flink_job_id', j.flink_job_id, 'state', j.state,
                                             'attempts', j.attempts,
                                             'updated_ago_ms', (extract(epoch FROM now() - j.updated_at) * 1000)::bigint,
                                             'flink_modified_ms', j.flink_modified_ms,
                                             'details_ago_ms', (extract(epoch FROM now() - j.details_checked_at) * 1000)::bigint,
                                             'stop_trigger', j.stop_trigger, 'stop_attempts', j.stop_attempts,
                                             'stop_due', j.stop_next_at IS NULL OR j.stop_next_at <= now(),
                                             'stop_due_in_ms', COALESCE((extract(epoch FROM j.stop_next_at - now()) * 1000)::bigint, 0),
                                             'details', jsonb_build_object('restarts', j.flink_restarts,
                                                                           'checkpoint_ms', round(extract(epoch FROM j.last_checkpoint_at) * 1000)::bigint),
                                             'savepoint_trigger', j.savepoint_trigger,
                                             'savepoint_trigger_ago_ms', (extract(epoch FROM now() - j.savepoint_triggered_at) * 1000)::bigint,
                                             'savepoint', (SELECT s.path FROM flink.savepoint s WHERE s.job_id = j.id ORDER BY s.id DESC LIMIT 1))
                   FROM flink.job j WHERE j.pipeline = p.name ORDER BY j.id DESC LIMIT 1))
  FROM (SELECT 1) one
  LEFT JOIN flink.pipeline_state ps ON ps.pipeline = p.name
  LEFT JOIN LATERAL (SELECT c.name, c.gateway_url, c.rest_url FROM flink.cluster c
                     WHERE c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default)
                     ORDER BY c.name = p.options->>'cluster' DESC LIMIT 1) c ON true
$fn$;

CREATE FUNCTION flink_internal.worker_pipelines(names text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF names IS NULL THEN
    RETURN (SELECT COALESCE(jsonb_agg(flink_internal.worker_pipeline_row(p) ORDER BY p.name), '[]')
            FROM flink.pipeline p);
  END IF;
  RETURN (SELECT COALESCE(jsonb_agg(flink_internal.worker_pipeline_row(p) ORDER BY p.name), '[]')
          FROM (SELECT DISTINCT n FROM unnest(names) n) u
          JOIN flink.pipeline p ON p.name = u.n);
END
$fn$;

CREATE INDEX savepoint_by_job ON flink.savepoint (job_id, id DESC);

-- Manual savepoints: requested here, taken by the worker (the job keeps running), recorded in
-- flink.savepoint with trigger 'manual' and as an event of the job.
ALTER TABLE flink.pipeline_state ADD COLUMN savepoint_requested_at timestamptz;
ALTER TABLE flink.job ADD COLUMN savepoint_trigger text;
ALTER TABLE flink.job ADD COLUMN savepoint_triggered_at timestamptz;

CREATE FUNCTION flink.savepoint(pipeline text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st flink.pipeline_state;
  cur flink.job;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM flink.pipeline p WHERE p.name = savepoint.pipeline) THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', savepoint.pipeline),
      HINT = 'See SELECT name FROM flink.pipelines.';
  END IF;
  SELECT * INTO st FROM flink.pipeline_state ps WHERE ps.pipeline = savepoint.pipeline FOR UPDATE;
  SELECT * INTO cur FROM flink.job j WHERE j.pipeline = savepoint.pipeline ORDER BY j.id DESC LIMIT 1;
  IF st.desired IS DISTINCT FROM 'running' OR cur.state IS NULL
     OR cur.state IN ('STOPPED', 'CANCELED', 'FINISHED', 'FAILED', 'LOST', 'SUBMIT_FAILED', 'DETACHED', 'STOPPING') THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('pipeline "%s" has no running job to take a savepoint of (desired %s, job %s)',
                       savepoint.pipeline, COALESCE(st.desired, 'stopped'), COALESCE(cur.state, 'none')),
      HINT = 'flink.start() it first; flink.stop(pipeline, with_savepoint => true) takes one when stopping.';
  END IF;
  IF st.savepoint_requested_at IS NOT NULL THEN
    RETURN 'already requested';  -- idempotent: one savepoint per request in flight
  END IF;
  UPDATE flink.pipeline_state ps SET savepoint_requested_at = now() WHERE ps.pipeline = savepoint.pipeline;
  PERFORM flink_internal.wake_worker_on_commit();
  RETURN 'requested';
END
$fn$;
COMMENT ON FUNCTION flink.savepoint(text) IS
  'Asks the worker for a savepoint of the pipeline''s running job (taken after commit; the job keeps running). It shows in flink.savepoints with trigger ''manual'' and in flink.job_events.';
REVOKE ALL ON FUNCTION flink.savepoint(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flink.savepoint(text) TO flink_admin;

-- The worker records a manual savepoint's trigger and its end.
CREATE FUNCTION flink_internal.savepoint_progress(job_id bigint, trigger text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  UPDATE flink.job j SET savepoint_trigger = trigger,
                         savepoint_triggered_at = CASE WHEN trigger IS NULL THEN NULL ELSE now() END
   WHERE j.id = job_id
$fn$;

CREATE FUNCTION flink_internal.savepoint_done(job_id bigint, path text, error text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  j flink.job;
BEGIN
  SELECT * INTO j FROM flink.job x WHERE x.id = savepoint_done.job_id;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE flink.job x SET savepoint_trigger = NULL, savepoint_triggered_at = NULL WHERE x.id = j.id;
  UPDATE flink.pipeline_state ps SET savepoint_requested_at = NULL WHERE ps.pipeline = j.pipeline;
  IF path IS NOT NULL THEN
    INSERT INTO flink.savepoint (pipeline, job_id, pipeline_version, path, trigger)
    VALUES (j.pipeline, j.id, j.pipeline_version, path, 'manual');
  END IF;
  INSERT INTO flink.job_event (job_id, pipeline, from_state, to_state, detail)
  VALUES (j.id, j.pipeline, j.state, j.state,
          CASE WHEN path IS NOT NULL THEN 'manual savepoint taken: ' || path
               ELSE 'manual savepoint failed: ' || COALESCE(error, 'no error text') END);
  PERFORM pg_notify('flink_job_state', jsonb_build_object(
    'pipeline', j.pipeline, 'job', j.id, 'flink_job_id', j.flink_job_id, 'from', j.state, 'to', j.state,
    'detail', left(CASE WHEN path IS NOT NULL THEN 'manual savepoint taken: ' || path
                        ELSE 'manual savepoint failed: ' || COALESCE(error, '') END, 1000),
    'at', clock_timestamp())::text);
END
$fn$;
REVOKE ALL ON FUNCTION flink_internal.note_change(), flink_internal.worker_changes(), flink_internal.worker_head(),
  flink_internal.worker_pipelines(text[]), flink_internal.worker_pipeline_row(flink.pipeline),
  flink_internal.savepoint_progress(bigint, text),
  flink_internal.savepoint_done(bigint, text, text) FROM PUBLIC;
