-- pg_flink install script, part: added in 0.3.0 (the same statements are in
-- sql/pg_flink--0.2.0--0.3.0.sql, after 46_observability.sql).
--
-- Flink versions: the worker records each cluster's Flink version (GET /overview); every
-- savepoint records the version that wrote it; resuming a pipeline from a savepoint of another
-- major version is refused unless the session sets pg_flink.restore_across_versions.

ALTER TABLE flink.cluster ADD COLUMN flink_version text;
ALTER TABLE flink.savepoint ADD COLUMN flink_version text;
COMMENT ON COLUMN flink.cluster.flink_version IS 'The Flink version the cluster reports (GET /overview), recorded by the worker.';
COMMENT ON COLUMN flink.savepoint.flink_version IS 'The Flink version of the cluster whose job wrote the savepoint.';

CREATE OR REPLACE VIEW flink.clusters AS
  SELECT c.name, c.gateway_url, c.rest_url, c.options, c.is_default, c.version, c.created_at, c.updated_at,
         c.dropping, c.flink_version
  FROM flink.cluster c;
COMMENT ON VIEW flink.clusters IS 'Registered Flink clusters; dropping: removed by drop_cluster(cascade => true) once its pipelines'' jobs have stopped; flink_version: what the cluster reports (recorded by the worker).';

CREATE OR REPLACE VIEW flink.savepoints AS
  SELECT s.id, s.pipeline, s.job_id, s.pipeline_version, s.path, s.trigger, s.taken_at, s.flink_version
  FROM flink.savepoint s;
COMMENT ON VIEW flink.savepoints IS 'Savepoints taken by pg_flink (when stopping with a savepoint, or flink.savepoint()), newest last, with the Flink version that wrote them.';

-- The worker reports a cluster's version (a no-op when unchanged).
CREATE FUNCTION flink_internal.cluster_version(rest_url text, flink_version text)
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  UPDATE flink.cluster c SET flink_version = cluster_version.flink_version
   WHERE c.rest_url = cluster_version.rest_url AND c.flink_version IS DISTINCT FROM cluster_version.flink_version
$fn$;

-- A savepoint records the Flink version of the cluster its job ran on.
CREATE FUNCTION flink_internal.savepoint_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF NEW.flink_version IS NULL THEN
    NEW.flink_version := (SELECT c.flink_version FROM flink.job j JOIN flink.cluster c ON c.name = j.cluster
                           WHERE j.id = NEW.job_id);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER savepoint_version BEFORE INSERT ON flink.savepoint
  FOR EACH ROW EXECUTE FUNCTION flink_internal.savepoint_version();

-- Refuses a savepoint written by another Flink major version than the pipeline's cluster runs
-- (state compatibility across major versions is not guaranteed), unless
-- pg_flink.restore_across_versions is on. Unknown versions (an external path, a cluster not
-- reached yet) are not refused.
CREATE FUNCTION flink_internal.check_savepoint_version(pipeline text, path text)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  sv text;
  cname text;
  cv text;
BEGIN
  IF COALESCE(current_setting('pg_flink.restore_across_versions', true), 'off') IN ('on', 'true', '1', 'yes') THEN
    RETURN;
  END IF;
  SELECT s.flink_version INTO sv FROM flink.savepoint s
   WHERE s.pipeline = check_savepoint_version.pipeline AND s.path = check_savepoint_version.path
   ORDER BY s.id DESC LIMIT 1;
  SELECT c.name, c.flink_version INTO cname, cv FROM flink.pipeline p
    JOIN flink.cluster c ON c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default)
   WHERE p.name = check_savepoint_version.pipeline
   ORDER BY c.name = p.options->>'cluster' DESC LIMIT 1;
  IF sv IS NOT NULL AND cv IS NOT NULL AND split_part(sv, '.', 1) <> split_part(cv, '.', 1) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('pipeline "%s": savepoint %s was written by Flink %s, but cluster "%s" runs Flink %s',
                       check_savepoint_version.pipeline, check_savepoint_version.path, sv, cname, cv),
      HINT = 'Flink does not guarantee state compatibility across major versions: start without from_savepoint (fresh state), or SET LOCAL pg_flink.restore_across_versions = on to try it anyway.';
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION flink_internal.set_desired(pipeline text, desired text, from_savepoint text, with_savepoint boolean, drain boolean, restart boolean, savepoint_required boolean DEFAULT false)
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
  -- A savepoint of another Flink major version is refused unless the session allows it.
  IF sp IS NOT NULL AND set_desired.desired = 'running' THEN
    PERFORM flink_internal.check_savepoint_version(set_desired.pipeline, sp);
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

-- A pipeline moved to another cluster (options.cluster changed, then flink.restart) is stopped
-- where its job runs, then started on the new cluster: the worker reads the pipeline's cluster
-- as the one of its newest job while that job is not over.
CREATE OR REPLACE FUNCTION flink_internal.worker_pipeline_row(p flink.pipeline) RETURNS jsonb
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
  -- The cluster where the pipeline's newest job lives while that job is not over (a pipeline
  -- moved to another cluster is stopped there first), else the one its options name (or the
  -- default).
  LEFT JOIN LATERAL (SELECT j.cluster FROM flink.job j WHERE j.pipeline = p.name ORDER BY j.id DESC LIMIT 1) lj ON true
  LEFT JOIN LATERAL (SELECT c.name, c.gateway_url, c.rest_url FROM flink.cluster c
                     WHERE c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default)
                        OR (c.name = lj.cluster AND flink_internal.is_deployed(p.name))
                     ORDER BY c.name = lj.cluster AND flink_internal.is_deployed(p.name) DESC,
                              c.name = p.options->>'cluster' DESC LIMIT 1) c ON true
$fn$;

-- Why the worker must not resume a restart from its stop's savepoint (written by another Flink
-- major version than the cluster it starts on), or NULL.
CREATE FUNCTION flink_internal.savepoint_mismatch(pipeline text, path text, rest_url text)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT format('savepoint %s was written by Flink %s, cluster "%s" runs Flink %s: started without it (Flink does not guarantee state compatibility across major versions)',
                s.path, s.flink_version, c.name, c.flink_version)
  FROM flink.savepoint s, flink.cluster c
  WHERE s.pipeline = savepoint_mismatch.pipeline AND s.path = savepoint_mismatch.path
    AND c.rest_url = savepoint_mismatch.rest_url
    AND split_part(s.flink_version, '.', 1) <> split_part(c.flink_version, '.', 1)
  ORDER BY s.id DESC LIMIT 1
$fn$;

-- A job event that is not a state change (e.g. why a savepoint was not used).
CREATE FUNCTION flink_internal.job_note(job_id bigint, detail text)
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  INSERT INTO flink.job_event (job_id, pipeline, from_state, to_state, detail)
  SELECT j.id, j.pipeline, j.state, j.state, job_note.detail FROM flink.job j WHERE j.id = job_note.job_id
$fn$;

REVOKE ALL ON FUNCTION flink_internal.savepoint_mismatch(text, text, text), flink_internal.job_note(bigint, text),
  flink_internal.cluster_version(text, text), flink_internal.savepoint_version(),
  flink_internal.check_savepoint_version(text, text) FROM PUBLIC;
