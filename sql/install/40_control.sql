-- pg_flink install script, part: control plane
-- Desired state (start/stop/restart/wait), jobs, transitions, savepoints, and the worker's helpers.

-- ------------------------------------------------------------------------------------------
-- Control plane: desired state (written by start/stop/restart), jobs, transitions, savepoints.
-- The background worker reconciles Flink to the desired state after commit.
-- ------------------------------------------------------------------------------------------
CREATE TABLE flink.pipeline_state (
  pipeline            text PRIMARY KEY REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  desired             text NOT NULL CHECK (desired IN ('running', 'stopped')),
  from_savepoint      text,
  stop_with_savepoint boolean NOT NULL DEFAULT true,
  drain               boolean NOT NULL DEFAULT false,
  restart_requested   boolean NOT NULL DEFAULT false,
  savepoint_required  boolean NOT NULL DEFAULT false,
  requested_at        timestamptz NOT NULL DEFAULT now(),
  requested_by        text NOT NULL DEFAULT current_user,
  -- The transaction that wrote the request (flink.wait refuses to wait for its own change).
  requested_xid       bigint
);

COMMENT ON TABLE flink.pipeline_state IS 'Desired state of each pipeline (written by flink.start/stop/restart).';

CREATE TABLE flink.job (
  id               bigserial PRIMARY KEY,
  pipeline         text NOT NULL REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  pipeline_version integer NOT NULL,
  script_hash      text NOT NULL,
  cluster          text,
  job_name         text NOT NULL,
  flink_job_id     text,
  state            text NOT NULL CHECK (state IN ('SUBMITTING', 'SUBMIT_FAILED', 'STOPPING', 'STOP_FAILED', 'STOPPED', 'LOST', 'DETACHED', 'INITIALIZING', 'CREATED', 'RUNNING', 'FAILING', 'FAILED', 'CANCELLING', 'CANCELED', 'FINISHED', 'RESTARTING', 'SUSPENDED', 'RECONCILING')),
  attempts         integer NOT NULL DEFAULT 1,
  submitted_at     timestamptz,
  started_at       timestamptz,
  ended_at         timestamptz,
  savepoint_used   text,
  last_error       text,
  last_checkpoint_at timestamptz,
  -- Flink's own restart count of the job (numRestarts) and when it last grew.
  flink_restarts   integer NOT NULL DEFAULT 0,
  last_restart_at  timestamptz,
  -- Flink's last-modification time of the job (from /jobs/overview): details are re-read when it moves.
  flink_modified_ms bigint,
  details_checked_at timestamptz,
  -- A stop in progress: the savepoint trigger ('cancel' for a cancel), attempts, next retry.
  stop_trigger     text,
  stop_attempts    integer NOT NULL DEFAULT 0,
  stop_next_at     timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_by_pipeline ON flink.job (pipeline, id DESC);
COMMENT ON TABLE flink.job IS 'Jobs of pipelines (written by the background worker); read flink.jobs.';

CREATE TABLE flink.job_event (
  id         bigserial PRIMARY KEY,
  job_id     bigint NOT NULL REFERENCES flink.job (id) ON DELETE CASCADE,
  pipeline   text NOT NULL,
  at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  from_state text,
  to_state   text NOT NULL,
  detail     text
);
CREATE INDEX job_event_by_job ON flink.job_event (job_id, id);
COMMENT ON TABLE flink.job_event IS 'Job state transitions (written by the background worker); read flink.job_events.';

CREATE TABLE flink.savepoint (
  id               bigserial PRIMARY KEY,
  pipeline         text NOT NULL REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  job_id           bigint REFERENCES flink.job (id) ON DELETE SET NULL,
  pipeline_version integer NOT NULL,
  path             text NOT NULL,
  trigger          text NOT NULL CHECK (trigger IN ('stop', 'manual')),
  taken_at         timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE flink.savepoint IS 'Savepoints taken by pg_flink; read flink.savepoints.';

SELECT pg_catalog.pg_extension_config_dump('flink.pipeline_state', '');
SELECT pg_catalog.pg_extension_config_dump('flink.job', '');
SELECT pg_catalog.pg_extension_config_dump('flink.job_event', '');
SELECT pg_catalog.pg_extension_config_dump('flink.savepoint', '');
SELECT pg_catalog.pg_extension_config_dump('flink.job_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('flink.job_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('flink.savepoint_id_seq', '');

CREATE VIEW flink.jobs AS
  SELECT j.id, j.pipeline, j.pipeline_version, j.script_hash, j.cluster, j.job_name, j.flink_job_id, j.state,
         j.attempts, j.submitted_at, j.started_at, j.ended_at, j.savepoint_used, j.last_error,
         j.last_checkpoint_at, j.updated_at
  FROM flink.job j;
COMMENT ON VIEW flink.jobs IS 'Every Flink job pg_flink submitted or adopted, newest per pipeline last: state, Flink job id, savepoint used, last error, last checkpoint.';
CREATE VIEW flink.job_events AS
  SELECT e.id, e.job_id, e.pipeline, e.at, e.from_state, e.to_state, e.detail FROM flink.job_event e;
COMMENT ON VIEW flink.job_events IS 'Every recorded job state transition (also sent by NOTIFY on channel flink_job_state).';
CREATE VIEW flink.savepoints AS
  SELECT s.id, s.pipeline, s.job_id, s.pipeline_version, s.path, s.trigger, s.taken_at FROM flink.savepoint s;
COMMENT ON VIEW flink.savepoints IS 'Savepoints taken by pg_flink (when stopping with a savepoint), newest last.';
CREATE VIEW flink.pipeline_status AS
  SELECT p.name AS pipeline, COALESCE(ps.desired, 'stopped') AS desired, j.state AS actual,
         CASE WHEN COALESCE(ps.desired, 'stopped') = 'running' THEN
                j.state = 'RUNNING'
                AND NOT COALESCE(j.last_restart_at > now() - h.window, false)
                AND (h.checkpoint_every IS NULL
                     OR COALESCE(j.last_checkpoint_at, j.started_at) > now() - GREATEST(3 * h.checkpoint_every, h.window))
              ELSE j.state IS NULL OR j.state IN ('STOPPED', 'CANCELED', 'FINISHED', 'LOST', 'DETACHED', 'SUBMIT_FAILED', 'FAILED')
         END AS healthy,
         j.flink_job_id, j.pipeline_version AS running_version, p.version AS defined_version,
         CASE WHEN j.state = 'RUNNING' THEN now() - j.started_at END AS uptime,
         COALESCE(j.flink_restarts, 0) AS restarts,
         j.last_checkpoint_at,
         (SELECT max(s.taken_at) FROM flink.savepoint s WHERE s.pipeline = p.name) AS last_savepoint_at,
         j.last_error, p.needs_restart, j.updated_at,
         COALESCE(j.last_restart_at > now() - h.window, false) AS restarting,
         j.last_restart_at
  FROM flink.pipeline p
  LEFT JOIN flink.pipeline_state ps ON ps.pipeline = p.name
  LEFT JOIN LATERAL (SELECT * FROM flink.job x WHERE x.pipeline = p.name ORDER BY x.id DESC LIMIT 1) j ON true
  -- The setting shows with its unit ("1min", "1500ms"): both are interval input.
  CROSS JOIN LATERAL (SELECT COALESCE(NULLIF(current_setting('pg_flink.health_window_ms', true), '')::interval, interval '1 minute') AS window,
                             (p.options->>'checkpoint_interval')::interval AS checkpoint_every) h;
COMMENT ON VIEW flink.pipeline_status IS 'Desired vs actual state of every pipeline. healthy: desired running, the job RUNNING, no Flink restart within pg_flink.health_window_ms and, with checkpoint_interval set, a checkpoint within 3 intervals; desired stopped and nothing running. restarts: Flink''s own restart count of the job.';

-- Whether a pipeline has a live job (create_pipeline then marks a changed definition needs_restart).
CREATE FUNCTION flink_internal.is_deployed(pipeline text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT COALESCE((SELECT j.state NOT IN ('STOPPED', 'CANCELED', 'FINISHED', 'FAILED', 'LOST', 'SUBMIT_FAILED', 'DETACHED')
                   FROM flink.job j WHERE j.pipeline = $1 ORDER BY j.id DESC LIMIT 1), false)
$fn$;

CREATE FUNCTION flink_internal.set_desired(pipeline text, desired text, from_savepoint text, with_savepoint boolean, drain boolean, restart boolean, savepoint_required boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  sp text := from_savepoint;
BEGIN
  PERFORM flink_internal.require_worker();
  PERFORM 1 FROM flink.pipeline p WHERE p.name = set_desired.pipeline FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', set_desired.pipeline),
      HINT = 'Create it with flink.create_pipeline(); see SELECT name FROM flink.pipelines.';
  END IF;
  IF sp = 'latest' THEN
    SELECT s.path INTO sp FROM flink.savepoint s WHERE s.pipeline = set_desired.pipeline ORDER BY s.id DESC LIMIT 1;
    IF sp IS NULL THEN
      RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
        MESSAGE = format('pipeline "%s" has no savepoint to resume from', set_desired.pipeline),
        HINT = 'Stop it with a savepoint first (flink.stop(name)), or start without from_savepoint.';
    END IF;
  END IF;
  -- Starting a pipeline whose last job ended (failed, finished, cancelled) asks for a new job.
  IF set_desired.desired = 'running' AND (SELECT j.state FROM flink.job j WHERE j.pipeline = set_desired.pipeline ORDER BY j.id DESC LIMIT 1)
       IN ('FAILED', 'FINISHED', 'CANCELED') THEN
    restart := true;
  END IF;
  -- One row per pipeline, locked: concurrent start() calls serialise here and the worker sees
  -- one desired state, so they yield one job.
  INSERT INTO flink.pipeline_state AS ps (pipeline, desired, from_savepoint, stop_with_savepoint, drain, restart_requested,
                                          savepoint_required, requested_xid)
  VALUES (set_desired.pipeline, set_desired.desired, sp, with_savepoint, set_desired.drain, restart,
          set_desired.savepoint_required, txid_current())
  ON CONFLICT ON CONSTRAINT pipeline_state_pkey DO UPDATE
     SET desired = excluded.desired,
         from_savepoint = CASE WHEN excluded.desired = 'running' THEN excluded.from_savepoint ELSE ps.from_savepoint END,
         stop_with_savepoint = excluded.stop_with_savepoint, drain = excluded.drain,
         savepoint_required = excluded.savepoint_required,
         restart_requested = excluded.restart_requested OR (ps.restart_requested AND excluded.desired = 'running'),
         requested_at = now(), requested_by = session_user, requested_xid = excluded.requested_xid;
  -- Wake the worker when (and only if) this transaction commits.
  PERFORM flink_internal.wake_worker_on_commit();
  RETURN set_desired.desired;
END
$fn$;

CREATE FUNCTION flink.start(pipeline text, from_savepoint text DEFAULT NULL)
RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT flink_internal.set_desired(pipeline, 'running', from_savepoint, true, false, false) $fn$;
COMMENT ON FUNCTION flink.start(text, text) IS
  'Desired state: running. Nothing reaches Flink unless the transaction commits; the worker then submits (or adopts) exactly one job. from_savepoint: a path, or ''latest''.';

CREATE FUNCTION flink.stop(pipeline text, with_savepoint boolean DEFAULT true, drain boolean DEFAULT false,
                           savepoint_required boolean DEFAULT false)
RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT flink_internal.set_desired(pipeline, 'stopped', NULL, with_savepoint, drain, false, savepoint_required) $fn$;
COMMENT ON FUNCTION flink.stop(text, boolean, boolean, boolean) IS
  'Desired state: stopped. After commit the worker stops the job with a savepoint (recorded in flink.savepoints) unless with_savepoint => false. A failing savepoint is retried pg_flink.savepoint_retries times with backoff, then the job is cancelled, or left running as STOP_FAILED when savepoint_required => true.';

CREATE FUNCTION flink.restart(pipeline text)
RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT flink_internal.set_desired(pipeline, 'running', NULL, true, false, true) $fn$;
COMMENT ON FUNCTION flink.restart(text) IS
  'Stateful upgrade: stop with a savepoint and resubmit the current definition from it.';

CREATE FUNCTION flink.wait(pipeline text, state text, timeout interval DEFAULT '60 seconds')
RETURNS text
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  deadline timestamptz := clock_timestamp() + timeout;
  cur flink.job;
BEGIN
  IF upper(state) NOT IN ('RUNNING', 'STOPPED', 'FAILED', 'FINISHED', 'CANCELED') THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
      MESSAGE = format('flink.wait: state "%s" is not one to wait for', state),
      HINT = 'Wait for RUNNING, STOPPED, FAILED, FINISHED or CANCELED.';
  END IF;
  -- The worker acts on committed requests only: waiting for our own uncommitted one would
  -- wait out the whole timeout.
  IF EXISTS (SELECT 1 FROM flink.pipeline_state ps WHERE ps.pipeline = wait.pipeline
              AND ps.requested_xid = txid_current_if_assigned()) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('flink.wait: pipeline "%s" was started or stopped in this transaction, which has not committed', wait.pipeline),
      HINT = 'COMMIT first: the worker acts only on committed changes. Then call flink.wait in a new transaction.';
  END IF;
  LOOP
    SELECT * INTO cur FROM flink.job j WHERE j.pipeline = wait.pipeline ORDER BY j.id DESC LIMIT 1;
    IF cur.state = upper(wait.state) THEN
      RETURN cur.state;
    END IF;
    -- Stopped: a job that had already ended (a bounded job FINISHED, or CANCELED/FAILED) stays
    -- as it ended when its pipeline is stopped; that is stopped too.
    IF upper(wait.state) = 'STOPPED' AND cur.state IN ('FINISHED', 'CANCELED', 'FAILED')
       AND EXISTS (SELECT 1 FROM flink.pipeline_state ps WHERE ps.pipeline = wait.pipeline AND ps.desired = 'stopped') THEN
      RETURN cur.state;
    END IF;
    -- A failed job is final; a failed submission is retried by the worker, so keep waiting.
    IF upper(wait.state) = 'RUNNING' AND cur.state = 'FAILED' THEN
      RAISE EXCEPTION USING ERRCODE = 'external_routine_exception',
        MESSAGE = format('pipeline "%s" is %s: %s', wait.pipeline, cur.state, COALESCE(cur.last_error, 'no error text')),
        HINT = 'See flink.job_events for the transitions; fix the cause and call flink.restart().';
    END IF;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION USING ERRCODE = 'query_canceled',
        MESSAGE = format('pipeline "%s" did not reach %s within %s (now %s%s)', wait.pipeline, upper(wait.state), timeout,
                         COALESCE(cur.state, 'no job'), COALESCE(': ' || cur.last_error, '')),
        HINT = 'Check flink.pipeline_status and flink.job_events; is the worker running (SELECT * FROM pg_stat_activity WHERE backend_type = ''pg_flink worker'')?';
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$fn$;
COMMENT ON FUNCTION flink.wait(text, text, interval) IS
  'Blocks (cancellably) until the pipeline''s job reaches the state (for STOPPED also: the pipeline is stopped and its job ended otherwise, returned as it ended); fails with the last error if it fails.';

-- Worker helpers: one call per state change, each in the worker's own transaction.
-- flink_internal.job_transition: see 45_worker_changes.sql (replaced in 0.2.0).

CREATE FUNCTION flink_internal.job_checkpoint(job_id bigint, completed_ms bigint) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$ UPDATE flink.job j SET last_checkpoint_at = to_timestamp(completed_ms / 1000.0) WHERE j.id = job_id $fn$;

CREATE FUNCTION flink_internal.job_begin(pipeline text, job_name text, state text, flink_job_id text, savepoint text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
  prev flink.job;
  c text;
  new_id bigint;
BEGIN
  SELECT * INTO p FROM flink.pipeline x WHERE x.name = job_begin.pipeline;
  SELECT * INTO prev FROM flink.job j WHERE j.pipeline = p.name ORDER BY j.id DESC LIMIT 1;
  SELECT cl.name INTO c FROM flink.cluster cl WHERE cl.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND cl.is_default);
  INSERT INTO flink.job (pipeline, pipeline_version, script_hash, cluster, job_name, flink_job_id, state, attempts, submitted_at, savepoint_used)
  VALUES (p.name, p.version, p.script_hash, c, job_begin.job_name,
          flink_job_id, state,
          CASE WHEN prev.state = 'SUBMIT_FAILED' THEN prev.attempts + 1 ELSE 1 END, now(), savepoint)
  RETURNING id INTO new_id;
  INSERT INTO flink.job_event (job_id, pipeline, from_state, to_state, detail)
  VALUES (new_id, p.name, NULL, state, CASE WHEN flink_job_id IS NOT NULL THEN 'adopted running Flink job ' || flink_job_id END);
  PERFORM pg_notify('flink_job_state', jsonb_build_object('pipeline', p.name, 'job', new_id, 'flink_job_id', flink_job_id,
    'from', NULL, 'to', state, 'at', clock_timestamp())::text);
  -- The request is being acted on: a pending restart and savepoint are consumed.
  UPDATE flink.pipeline_state ps SET restart_requested = false, from_savepoint = NULL WHERE ps.pipeline = p.name;
  UPDATE flink.pipeline x SET needs_restart = false WHERE x.name = p.name;
  RETURN new_id;
END
$fn$;

-- A stop in progress: the savepoint trigger (or 'cancel'), one more attempt, the next retry.
CREATE FUNCTION flink_internal.job_stop_progress(job_id bigint, trigger text, attempts integer, retry_in_ms bigint)
RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  -- Parameters qualified: flink.job has an "attempts" column (submission attempts) too.
  UPDATE flink.job j SET stop_trigger = job_stop_progress.trigger, stop_attempts = job_stop_progress.attempts,
         stop_next_at = CASE WHEN job_stop_progress.retry_in_ms IS NULL THEN NULL
                             ELSE now() + make_interval(secs => job_stop_progress.retry_in_ms / 1000.0) END,
         updated_at = now()
   WHERE j.id = job_stop_progress.job_id
$fn$;

-- Details read from Flink when a job changed: its restart count and last-modification time.
CREATE FUNCTION flink_internal.job_details(job_id bigint, flink_modified_ms bigint, restarts integer)
RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  UPDATE flink.job j SET flink_modified_ms = COALESCE(job_details.flink_modified_ms, j.flink_modified_ms),
         last_restart_at = CASE WHEN restarts > j.flink_restarts THEN now() ELSE j.last_restart_at END,
         flink_restarts = GREATEST(j.flink_restarts, COALESCE(restarts, 0)),
         details_checked_at = now()
   WHERE j.id = job_id
$fn$;

-- A copy of another database's job rows (restored under another name, or another instance):
-- the job is not ours. Record it DETACHED with a hint and stop wanting it to run.
CREATE FUNCTION flink_internal.job_detach(job_id bigint, detail text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  j flink.job;
BEGIN
  SELECT * INTO j FROM flink.job x WHERE x.id = job_detach.job_id FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  PERFORM flink_internal.job_transition(j.id, 'DETACHED', NULL, detail, detail);
  UPDATE flink.pipeline_state ps SET desired = 'stopped', restart_requested = false, from_savepoint = NULL,
         requested_at = now(), requested_by = 'pg_flink (detached copy)', requested_xid = NULL
   WHERE ps.pipeline = j.pipeline;
END
$fn$;

-- Pipelines dropped while (possibly) running: the worker stops their jobs after commit and
-- records it here. A rolled-back drop leaves no row and stops nothing.
CREATE TABLE flink.pipeline_drop (
  id             bigserial PRIMARY KEY,
  pipeline       text NOT NULL,
  job_name       text,
  flink_job_id   text,
  with_savepoint boolean NOT NULL DEFAULT false,
  dropped_at     timestamptz NOT NULL DEFAULT now(),
  dropped_by     text NOT NULL DEFAULT session_user,
  stopped_at     timestamptz,
  savepoint_path text,
  -- A stop with savepoint in progress: Flink's trigger id.
  stop_trigger   text,
  detail         text
);
COMMENT ON TABLE flink.pipeline_drop IS 'Pipelines dropped with flink.drop_pipeline and what the worker did with their jobs; read flink.dropped_pipelines.';
SELECT pg_catalog.pg_extension_config_dump('flink.pipeline_drop', '');
SELECT pg_catalog.pg_extension_config_dump('flink.pipeline_drop_id_seq', '');
CREATE VIEW flink.dropped_pipelines AS
  SELECT d.id, d.pipeline, d.job_name, d.flink_job_id, d.with_savepoint, d.dropped_at, d.dropped_by,
         d.stopped_at, d.savepoint_path, d.detail
  FROM flink.pipeline_drop d;
COMMENT ON VIEW flink.dropped_pipelines IS 'Dropped pipelines: the job that was running (if any), when the worker stopped it, and the savepoint taken.';

CREATE FUNCTION flink_internal.drop_done(drop_id bigint, savepoint_path text, detail text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  UPDATE flink.pipeline_drop d SET stopped_at = now(), savepoint_path = drop_done.savepoint_path, detail = drop_done.detail
   WHERE d.id = drop_id;
  SELECT pg_notify('flink_job_state', jsonb_build_object('pipeline', d.pipeline, 'dropped', true, 'to', 'STOPPED',
                   'detail', left(drop_done.detail, 1000), 'at', clock_timestamp())::text)
    FROM flink.pipeline_drop d WHERE d.id = drop_id;
$fn$;

CREATE FUNCTION flink_internal.drop_progress(drop_id bigint, trigger text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$ UPDATE flink.pipeline_drop d SET stop_trigger = trigger WHERE d.id = drop_id $fn$;

-- An orphan job (its pipeline is gone) that no drop recorded: record it when stopped.
CREATE FUNCTION flink_internal.orphan_stopped(pipeline text, job_name text, flink_job_id text, detail text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  INSERT INTO flink.pipeline_drop (pipeline, job_name, flink_job_id, stopped_at, detail, dropped_by)
  VALUES (pipeline, job_name, flink_job_id, now(), detail, 'pg_flink worker (orphan)');
$fn$;

-- Clusters whose drop waits for their pipelines' jobs to stop (drop_cluster(..., cascade => true)).
CREATE FUNCTION flink_internal.cluster_dropped(cluster text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$ DELETE FROM flink.cluster c WHERE c.name = cluster AND c.dropping $fn$;
