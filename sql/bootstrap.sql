-- pg_flink bootstrap (runs at the end of CREATE EXTENSION, after the Rust functions).
-- Never drops user data: catalog tables are registered with pg_extension_config_dump, so
-- pg_dump keeps their rows, and later upgrade scripts only ALTER them.

COMMENT ON SCHEMA flink IS 'pg_flink: Apache Flink control plane and query surface';

-- ------------------------------------------------------------------------------------------
-- Roles (cluster-wide; created once, kept by DROP EXTENSION)
--   flink_admin : manages clusters and datasources, reads secrets
--   flink_reader: reads the catalog views (secrets masked) and status
-- ------------------------------------------------------------------------------------------
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'flink_reader') THEN
    CREATE ROLE flink_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'flink_admin') THEN
    CREATE ROLE flink_admin NOLOGIN;
  END IF;
  IF NOT pg_catalog.pg_has_role('flink_admin', 'flink_reader', 'MEMBER') THEN
    GRANT flink_reader TO flink_admin;
  END IF;
END
$roles$;

-- ------------------------------------------------------------------------------------------
-- Catalog tables
-- ------------------------------------------------------------------------------------------
CREATE TABLE flink.cluster (
  name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
  gateway_url text NOT NULL,
  rest_url    text NOT NULL,
  options     jsonb NOT NULL DEFAULT '{}',
  is_default  boolean NOT NULL DEFAULT false,
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cluster_one_default ON flink.cluster ((true)) WHERE is_default;
COMMENT ON TABLE flink.cluster IS 'Flink clusters (SQL Gateway + JobManager REST endpoints). Use flink.register_cluster().';

CREATE TABLE flink.datasource (
  name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
  kind       text NOT NULL CHECK (kind IN ('kafka', 'elasticsearch', 'postgres', 'mysql')),
  options    jsonb NOT NULL,
  version    integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flink.datasource IS 'Datasources (validated, non-secret options). Use flink.register_datasource().';

-- Secret values: readable only by flink_admin and superusers.
CREATE TABLE flink.datasource_secret (
  datasource text PRIMARY KEY REFERENCES flink.datasource (name) ON DELETE CASCADE,
  secrets    jsonb NOT NULL
);
COMMENT ON TABLE flink.datasource_secret IS 'Secret options of datasources; readable by flink_admin and superusers only.';

SELECT pg_catalog.pg_extension_config_dump('flink.cluster', '');
SELECT pg_catalog.pg_extension_config_dump('flink.datasource', '');
SELECT pg_catalog.pg_extension_config_dump('flink.datasource_secret', '');

-- ------------------------------------------------------------------------------------------
-- Views (secrets masked)
-- ------------------------------------------------------------------------------------------
CREATE VIEW flink.clusters AS
  SELECT c.name, c.gateway_url, c.rest_url, c.options, c.is_default, c.version, c.created_at, c.updated_at
  FROM flink.cluster c;
COMMENT ON VIEW flink.clusters IS 'Registered Flink clusters.';

CREATE VIEW flink.datasources AS
  SELECT d.name, d.kind,
         d.options || COALESCE((SELECT pg_catalog.jsonb_object_agg(k, '***')
                                FROM flink.datasource_secret s, pg_catalog.jsonb_object_keys(s.secrets) k
                                WHERE s.datasource = d.name), '{}'::jsonb) AS options,
         d.version, d.created_at, d.updated_at
  FROM flink.datasource d;
COMMENT ON VIEW flink.datasources IS 'Registered datasources; secret options show as "***".';

-- ------------------------------------------------------------------------------------------
-- SQL API
-- Functions that take or read secrets are SECURITY DEFINER with a fixed search_path and
-- log_min_error_statement = panic, so a failing call's statement text (which may hold a
-- secret literal) is not written to the server log.
-- ------------------------------------------------------------------------------------------

CREATE FUNCTION flink.register_cluster(name text, gateway_url text, rest_url text, options jsonb DEFAULT '{}')
RETURNS TABLE (cluster text, version integer, changed boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v jsonb := flink._validate_cluster(register_cluster.name, register_cluster.gateway_url,
                                     register_cluster.rest_url, register_cluster.options);
  want_default boolean := (v->'options'->>'default')::boolean;
  opts jsonb := (v->'options') - 'default';  -- is_default is the truth, not the option
  cur flink.cluster;
  make_default boolean;
BEGIN
  -- Serialise registrations so "first cluster becomes the default" holds under concurrency.
  LOCK TABLE flink.cluster IN SHARE ROW EXCLUSIVE MODE;
  SELECT * INTO cur FROM flink.cluster c WHERE c.name = register_cluster.name FOR UPDATE;
  make_default := want_default OR NOT EXISTS (SELECT 1 FROM flink.cluster c WHERE c.is_default AND c.name <> register_cluster.name)
                  AND (cur.name IS NULL OR cur.is_default);
  IF cur.name IS NULL THEN
    IF make_default THEN UPDATE flink.cluster c SET is_default = false WHERE c.is_default; END IF;
    INSERT INTO flink.cluster (name, gateway_url, rest_url, options, is_default)
    VALUES (register_cluster.name, v->>'gateway_url', v->>'rest_url', opts, make_default);
    RETURN QUERY SELECT register_cluster.name, 1, true;
    RETURN;
  END IF;
  IF cur.gateway_url = v->>'gateway_url' AND cur.rest_url = v->>'rest_url'
     AND cur.options = opts AND cur.is_default = make_default THEN
    RETURN QUERY SELECT cur.name, cur.version, false;
    RETURN;
  END IF;
  IF make_default AND NOT cur.is_default THEN
    UPDATE flink.cluster c SET is_default = false WHERE c.is_default;
  END IF;
  UPDATE flink.cluster c
     SET gateway_url = v->>'gateway_url', rest_url = v->>'rest_url', options = opts,
         is_default = make_default, version = c.version + 1, updated_at = now()
   WHERE c.name = cur.name;
  RETURN QUERY SELECT cur.name, cur.version + 1, true;
END
$fn$;
COMMENT ON FUNCTION flink.register_cluster(text, text, text, jsonb) IS
  'Registers or updates a Flink cluster (idempotent: an identical call changes nothing). The first cluster, or one with options {"default": true}, is the default.';

CREATE FUNCTION flink.drop_cluster(name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  DELETE FROM flink.cluster c WHERE c.name = drop_cluster.name;
  IF NOT FOUND THEN
    IF drop_cluster.if_exists THEN RETURN false; END IF;
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('cluster "%s" does not exist', drop_cluster.name),
      HINT = 'See SELECT name FROM flink.clusters; pass if_exists => true to ignore a missing cluster.';
  END IF;
  RETURN true;
END
$fn$;
COMMENT ON FUNCTION flink.drop_cluster(text, boolean) IS 'Removes a cluster from the catalog.';

CREATE FUNCTION flink.register_datasource(name text, kind text, options jsonb, secrets jsonb DEFAULT NULL)
RETURNS TABLE (datasource text, version integer, changed boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $fn$
DECLARE
  v jsonb := flink._validate_datasource(register_datasource.name, register_datasource.kind,
                                        register_datasource.options, register_datasource.secrets);
  cur flink.datasource;
  cur_secrets jsonb;
  new_secrets jsonb;
BEGIN
  INSERT INTO flink.datasource AS d (name, kind, options)
  VALUES (register_datasource.name, register_datasource.kind, v->'options')
  ON CONFLICT ON CONSTRAINT datasource_pkey DO NOTHING;
  IF FOUND THEN
    IF v->'secrets' <> '{}'::jsonb THEN
      INSERT INTO flink.datasource_secret (datasource, secrets) VALUES (register_datasource.name, v->'secrets');
    END IF;
    RETURN QUERY SELECT register_datasource.name, 1, true;
    RETURN;
  END IF;

  SELECT * INTO cur FROM flink.datasource d WHERE d.name = register_datasource.name FOR UPDATE;
  IF cur.kind <> register_datasource.kind THEN
    RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
      MESSAGE = format('datasource "%s" is of kind %s, not %s', cur.name, cur.kind, register_datasource.kind),
      HINT = 'The kind of a datasource cannot change: drop it (flink.drop_datasource) and register it again, or use another name.';
  END IF;
  SELECT s.secrets INTO cur_secrets FROM flink.datasource_secret s WHERE s.datasource = cur.name;
  cur_secrets := COALESCE(cur_secrets, '{}'::jsonb);
  -- secrets => NULL keeps the stored secrets; '{}' removes them.
  new_secrets := CASE WHEN register_datasource.secrets IS NULL THEN cur_secrets ELSE v->'secrets' END;

  IF cur.options = v->'options' AND cur_secrets = new_secrets THEN
    RETURN QUERY SELECT cur.name, cur.version, false;
    RETURN;
  END IF;
  UPDATE flink.datasource d SET options = v->'options', version = d.version + 1, updated_at = now()
   WHERE d.name = cur.name;
  IF new_secrets = '{}'::jsonb THEN
    DELETE FROM flink.datasource_secret s WHERE s.datasource = cur.name;
  ELSE
    INSERT INTO flink.datasource_secret AS s (datasource, secrets) VALUES (cur.name, new_secrets)
    ON CONFLICT ON CONSTRAINT datasource_secret_pkey DO UPDATE SET secrets = excluded.secrets;
  END IF;
  RETURN QUERY SELECT cur.name, cur.version + 1, true;
END
$fn$;
COMMENT ON FUNCTION flink.register_datasource(text, text, jsonb, jsonb) IS
  'Registers or updates a datasource (idempotent: an identical call changes nothing; a change bumps version). Options are validated per kind (docs/datasources.md); secrets => NULL keeps stored secrets.';

CREATE FUNCTION flink.drop_datasource(name text, cascade boolean DEFAULT false, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  dependents text[];
BEGIN
  PERFORM 1 FROM flink.datasource d WHERE d.name = drop_datasource.name FOR UPDATE;
  IF NOT FOUND THEN
    IF drop_datasource.if_exists THEN RETURN false; END IF;
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('datasource "%s" does not exist', drop_datasource.name),
      HINT = 'See SELECT name FROM flink.datasources; pass if_exists => true to ignore a missing datasource.';
  END IF;
  dependents := flink._datasource_dependents(drop_datasource.name);
  IF cardinality(dependents) > 0 AND NOT drop_datasource.cascade THEN
    RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
      MESSAGE = format('cannot drop datasource "%s": pipelines %s use it', drop_datasource.name, array_to_string(dependents, ', ')),
      HINT = 'Drop those pipelines first, or pass cascade => true to drop them too.';
  END IF;
  PERFORM flink._drop_dependents(drop_datasource.name);
  DELETE FROM flink.datasource d WHERE d.name = drop_datasource.name;
  RETURN true;
END
$fn$;
COMMENT ON FUNCTION flink.drop_datasource(text, boolean, boolean) IS
  'Removes a datasource (and its secrets); refuses while pipelines use it unless cascade => true.';

-- ------------------------------------------------------------------------------------------
-- Pipelines
-- ------------------------------------------------------------------------------------------
CREATE TABLE flink.pipeline (
  name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
  template      text NOT NULL,
  params        jsonb NOT NULL,
  options       jsonb NOT NULL DEFAULT '{}',
  version       integer NOT NULL DEFAULT 1,
  script_hash   text NOT NULL,
  needs_restart boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flink.pipeline IS 'Stored pipelines (template + params + options). Use flink.create_pipeline().';

-- Which datasources a pipeline uses: drop_datasource refuses while rows point at it.
CREATE TABLE flink.pipeline_datasource (
  pipeline   text NOT NULL REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  datasource text NOT NULL REFERENCES flink.datasource (name) ON DELETE RESTRICT,
  PRIMARY KEY (pipeline, datasource)
);
CREATE INDEX pipeline_datasource_by_datasource ON flink.pipeline_datasource (datasource);

SELECT pg_catalog.pg_extension_config_dump('flink.pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('flink.pipeline_datasource', '');

CREATE VIEW flink.pipelines AS
  SELECT p.name, p.template, p.params, p.options, p.version, p.script_hash,
         ARRAY(SELECT pd.datasource FROM flink.pipeline_datasource pd WHERE pd.pipeline = p.name ORDER BY 1) AS datasources,
         p.needs_restart, p.created_at, p.updated_at
  FROM flink.pipeline p;
COMMENT ON VIEW flink.pipelines IS 'Stored pipelines with their version, rendered-script hash and referenced datasources.';

CREATE FUNCTION flink._datasource_dependents(datasource text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT COALESCE(array_agg(pd.pipeline ORDER BY pd.pipeline), '{}') FROM flink.pipeline_datasource pd WHERE pd.datasource = $1 $fn$;

CREATE FUNCTION flink._drop_dependents(datasource text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$ DELETE FROM flink.pipeline p USING flink.pipeline_datasource pd WHERE pd.pipeline = p.name AND pd.datasource = $1 $fn$;

-- The catalog as the Rust side takes it: {name: {kind, options, secrets}} (real secrets) or
-- {name: {kind, options}} with secret options shown as "***".
CREATE FUNCTION flink._catalog_json(reveal boolean) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF reveal THEN
    -- Needs SELECT on flink.datasource_secret: admins and superusers only.
    RETURN (SELECT COALESCE(jsonb_object_agg(d.name, jsonb_build_object('kind', d.kind, 'options', d.options,
                     'secrets', COALESCE(s.secrets, '{}'))), '{}')
            FROM flink.datasource d LEFT JOIN flink.datasource_secret s ON s.datasource = d.name);
  END IF;
  RETURN (SELECT COALESCE(jsonb_object_agg(d.name, jsonb_build_object('kind', d.kind, 'options', d.options)), '{}')
          FROM flink.datasources d);
END
$fn$;

CREATE FUNCTION flink.create_pipeline(name text, template text, params jsonb, options jsonb DEFAULT '{}')
RETURNS TABLE (pipeline text, version integer, changed boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $fn$
DECLARE
  prep jsonb;
  cur flink.pipeline;
  new_version integer;
  script text;
  opts jsonb := COALESCE(create_pipeline.options, '{}');
BEGIN
  IF opts ? 'cluster' AND NOT EXISTS (SELECT 1 FROM flink.cluster c WHERE c.name = opts->>'cluster') THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s": options.cluster: cluster "%s" does not exist', create_pipeline.name, opts->>'cluster'),
      HINT = 'Register it with flink.register_cluster(), or omit cluster to use the default one.';
  END IF;
  prep := flink._pipeline_prepare(create_pipeline.name, create_pipeline.template, create_pipeline.params,
                                  opts, flink._catalog_json(true), current_database());
  SELECT * INTO cur FROM flink.pipeline p WHERE p.name = create_pipeline.name FOR UPDATE;
  IF FOUND AND cur.template = create_pipeline.template AND cur.params = prep->'params' AND cur.options = opts THEN
    RETURN QUERY SELECT cur.name, cur.version, false;
    RETURN;
  END IF;
  new_version := CASE WHEN FOUND THEN cur.version + 1 ELSE 1 END;
  script := flink._pipeline_render(create_pipeline.name, create_pipeline.template, prep->'params', opts,
                                   flink._catalog_json(false), current_database(), new_version);
  INSERT INTO flink.pipeline AS p (name, template, params, options, version, script_hash)
  VALUES (create_pipeline.name, create_pipeline.template, prep->'params', opts, new_version,
          encode(sha256(convert_to(script, 'UTF8')), 'hex'))
  ON CONFLICT ON CONSTRAINT pipeline_pkey DO UPDATE
     SET template = excluded.template, params = excluded.params, options = excluded.options,
         version = excluded.version, script_hash = excluded.script_hash, updated_at = now(),
         -- A changed definition of a deployed pipeline needs a restart to take effect; the
         -- control plane clears the flag when it deploys the new version.
         needs_restart = p.needs_restart OR flink._is_deployed(p.name);
  DELETE FROM flink.pipeline_datasource pd WHERE pd.pipeline = create_pipeline.name;
  INSERT INTO flink.pipeline_datasource (pipeline, datasource)
  SELECT create_pipeline.name, ds FROM jsonb_array_elements_text(prep->'datasources') ds;
  RETURN QUERY SELECT create_pipeline.name, new_version, true;
END
$fn$;
COMMENT ON FUNCTION flink.create_pipeline(text, text, jsonb, jsonb) IS
  'Creates or updates a pipeline (idempotent: an identical definition changes nothing; a change bumps version). Params are validated and type-checked; missing columns are read from the datasources.';


CREATE FUNCTION flink.drop_pipeline(name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  DELETE FROM flink.pipeline p WHERE p.name = drop_pipeline.name;
  IF NOT FOUND THEN
    IF drop_pipeline.if_exists THEN RETURN false; END IF;
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', drop_pipeline.name),
      HINT = 'See SELECT name FROM flink.pipelines; pass if_exists => true to ignore a missing pipeline.';
  END IF;
  RETURN true;
END
$fn$;
COMMENT ON FUNCTION flink.drop_pipeline(text, boolean) IS 'Removes a pipeline.';

CREATE FUNCTION flink.render(name text, reveal_secrets boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
BEGIN
  SELECT * INTO p FROM flink.pipeline x WHERE x.name = render.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', render.name),
      HINT = 'See SELECT name FROM flink.pipelines.';
  END IF;
  IF reveal_secrets AND NOT has_table_privilege('flink.datasource_secret', 'SELECT') THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = format('pipeline "%s": only flink_admin may reveal secrets', render.name),
      HINT = 'Call flink.render(name) without reveal_secrets to see the script with secrets masked.';
  END IF;
  RETURN flink._pipeline_render(p.name, p.template, p.params, p.options,
                                flink._catalog_json(reveal_secrets), current_database(), p.version);
END
$fn$;
COMMENT ON FUNCTION flink.render(text, boolean) IS
  'The complete Flink SQL script of a pipeline (SETs, CREATE TEMPORARY TABLEs, INSERT). Secrets show as *** unless reveal_secrets and the caller is flink_admin.';

CREATE FUNCTION flink.validate(name text)
RETURNS TABLE (ok boolean, detail text, parameter text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
  gw text;
BEGIN
  SELECT * INTO p FROM flink.pipeline x WHERE x.name = validate.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', validate.name),
      HINT = 'See SELECT name FROM flink.pipelines.';
  END IF;
  SELECT c.gateway_url INTO gw FROM flink.cluster c
   WHERE c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default);
  -- The masked script is enough for Flink to plan; secrets never travel for validation.
  RETURN QUERY SELECT * FROM flink._pipeline_validate(
    flink._pipeline_render(p.name, p.template, p.params, p.options, flink._catalog_json(false), current_database(), p.version),
    gw, p.params);
END
$fn$;
COMMENT ON FUNCTION flink.validate(text) IS
  'Plans the pipeline on the real SQL Gateway (CREATE TABLEs + EXPLAIN INSERT): ok and the plan, or Flink''s error and the params path it points at.';

CREATE FUNCTION flink.test_datasource(name text)
RETURNS TABLE (ok boolean, latency_ms double precision, detail text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $fn$
DECLARE
  d flink.datasource;
  s jsonb;
BEGIN
  SELECT * INTO d FROM flink.datasource x WHERE x.name = test_datasource.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('datasource "%s" does not exist', test_datasource.name),
      HINT = 'Register it with flink.register_datasource() first; see SELECT name FROM flink.datasources.';
  END IF;
  SELECT x.secrets INTO s FROM flink.datasource_secret x WHERE x.datasource = d.name;
  RETURN QUERY SELECT * FROM flink._test_datasource(d.name, d.kind, d.options, COALESCE(s, '{}'));
END
$fn$;
COMMENT ON FUNCTION flink.test_datasource(text) IS
  'Connects to a datasource for real (Kafka metadata, Elasticsearch health, Postgres/MySQL select 1); bounded by its timeout_ms option; ok = false with the reason on failure.';

CREATE FUNCTION flink.test_cluster(name text DEFAULT NULL)
RETURNS TABLE (ok boolean, latency_ms double precision, detail text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  c flink.cluster;
BEGIN
  SELECT * INTO c FROM flink.cluster x
   WHERE (test_cluster.name IS NULL AND x.is_default) OR x.name = test_cluster.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = CASE WHEN test_cluster.name IS NULL THEN 'no default cluster is registered'
                     ELSE format('cluster "%s" does not exist', test_cluster.name) END,
      HINT = 'Register one with flink.register_cluster(); see SELECT name FROM flink.clusters.';
  END IF;
  RETURN QUERY SELECT * FROM flink._test_cluster(c.name, c.gateway_url, c.rest_url, (c.options->>'timeout_ms')::integer);
END
$fn$;
COMMENT ON FUNCTION flink.test_cluster(text) IS
  'Checks a cluster (the default one when no name is given): JobManager overview and SQL Gateway info.';

CREATE FUNCTION flink.describe_datasource(name text, object text, sample_size integer DEFAULT 100)
RETURNS TABLE (column_name text, source_type text, flink_type text, nullable boolean, sampled integer)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $fn$
DECLARE
  d flink.datasource;
  s jsonb;
BEGIN
  SELECT * INTO d FROM flink.datasource x WHERE x.name = describe_datasource.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('datasource "%s" does not exist', describe_datasource.name),
      HINT = 'Register it with flink.register_datasource() first; see SELECT name FROM flink.datasources.';
  END IF;
  SELECT x.secrets INTO s FROM flink.datasource_secret x WHERE x.datasource = d.name;
  RETURN QUERY SELECT * FROM flink._describe_datasource(d.name, d.kind, d.options, COALESCE(s, '{}'),
                                                        describe_datasource.object, describe_datasource.sample_size);
END
$fn$;
COMMENT ON FUNCTION flink.describe_datasource(text, text, integer) IS
  'Columns of a table (postgres/mysql), index (elasticsearch) or topic (kafka, inferred from a sample of JSON messages) with their Flink SQL types.';

COMMENT ON FUNCTION flink.health(text, text) IS
  'Checks the Flink JobManager REST API and the SQL Gateway (with a session round trip); one row per service, or an error naming the service that is down.';
COMMENT ON FUNCTION flink.execute_sql(text, text, integer) IS
  'Runs a Flink SQL script through the SQL Gateway in one session; returns one row per statement (result kind, job id, rows as JSON).';


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
  requested_at        timestamptz NOT NULL DEFAULT now(),
  requested_by        text NOT NULL DEFAULT current_user
);

CREATE TABLE flink.job (
  id               bigserial PRIMARY KEY,
  pipeline         text NOT NULL REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  pipeline_version integer NOT NULL,
  script_hash      text NOT NULL,
  cluster          text,
  job_name         text NOT NULL,
  flink_job_id     text,
  state            text NOT NULL,
  attempts         integer NOT NULL DEFAULT 1,
  submitted_at     timestamptz,
  started_at       timestamptz,
  ended_at         timestamptz,
  savepoint_used   text,
  last_error       text,
  last_checkpoint_at timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_by_pipeline ON flink.job (pipeline, id DESC);

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

CREATE TABLE flink.savepoint (
  id               bigserial PRIMARY KEY,
  pipeline         text NOT NULL REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  job_id           bigint REFERENCES flink.job (id) ON DELETE SET NULL,
  pipeline_version integer NOT NULL,
  path             text NOT NULL,
  trigger          text NOT NULL CHECK (trigger IN ('stop', 'manual')),
  taken_at         timestamptz NOT NULL DEFAULT now()
);

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
CREATE VIEW flink.job_events AS
  SELECT e.id, e.job_id, e.pipeline, e.at, e.from_state, e.to_state, e.detail FROM flink.job_event e;
CREATE VIEW flink.savepoints AS
  SELECT s.id, s.pipeline, s.job_id, s.pipeline_version, s.path, s.trigger, s.taken_at FROM flink.savepoint s;
CREATE VIEW flink.pipeline_status AS
  SELECT p.name AS pipeline, COALESCE(ps.desired, 'stopped') AS desired, j.state AS actual,
         (COALESCE(ps.desired, 'stopped') = 'running' AND j.state = 'RUNNING')
           OR (COALESCE(ps.desired, 'stopped') = 'stopped' AND (j.state IS NULL OR j.state IN ('STOPPED', 'CANCELED', 'FINISHED', 'LOST'))) AS healthy,
         j.flink_job_id, j.pipeline_version AS running_version, p.version AS defined_version,
         CASE WHEN j.state = 'RUNNING' THEN now() - j.started_at END AS uptime,
         GREATEST((SELECT count(*) FROM flink.job x WHERE x.pipeline = p.name AND x.flink_job_id IS NOT NULL) - 1, 0) AS restarts,
         j.last_checkpoint_at,
         (SELECT max(s.taken_at) FROM flink.savepoint s WHERE s.pipeline = p.name) AS last_savepoint_at,
         j.last_error, p.needs_restart, j.updated_at
  FROM flink.pipeline p
  LEFT JOIN flink.pipeline_state ps ON ps.pipeline = p.name
  LEFT JOIN LATERAL (SELECT * FROM flink.job x WHERE x.pipeline = p.name ORDER BY x.id DESC LIMIT 1) j ON true;
COMMENT ON VIEW flink.pipeline_status IS 'Desired vs actual state of every pipeline, with uptime, restarts, last savepoint and last error.';

-- Whether a pipeline has a live job (create_pipeline then marks a changed definition needs_restart).
CREATE FUNCTION flink._is_deployed(pipeline text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT COALESCE((SELECT j.state NOT IN ('STOPPED', 'CANCELED', 'FINISHED', 'FAILED', 'LOST', 'SUBMIT_FAILED')
                   FROM flink.job j WHERE j.pipeline = $1 ORDER BY j.id DESC LIMIT 1), false)
$fn$;

CREATE FUNCTION flink._set_desired(pipeline text, desired text, from_savepoint text, with_savepoint boolean, drain boolean, restart boolean)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  sp text := from_savepoint;
BEGIN
  PERFORM flink._require_worker();
  PERFORM 1 FROM flink.pipeline p WHERE p.name = _set_desired.pipeline FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', _set_desired.pipeline),
      HINT = 'Create it with flink.create_pipeline(); see SELECT name FROM flink.pipelines.';
  END IF;
  IF sp = 'latest' THEN
    SELECT s.path INTO sp FROM flink.savepoint s WHERE s.pipeline = _set_desired.pipeline ORDER BY s.id DESC LIMIT 1;
    IF sp IS NULL THEN
      RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
        MESSAGE = format('pipeline "%s" has no savepoint to resume from', _set_desired.pipeline),
        HINT = 'Stop it with a savepoint first (flink.stop(name)), or start without from_savepoint.';
    END IF;
  END IF;
  -- Starting a pipeline whose last job ended (failed, finished, cancelled) asks for a new job.
  IF _set_desired.desired = 'running' AND (SELECT j.state FROM flink.job j WHERE j.pipeline = _set_desired.pipeline ORDER BY j.id DESC LIMIT 1)
       IN ('FAILED', 'FINISHED', 'CANCELED') THEN
    restart := true;
  END IF;
  -- One row per pipeline, locked: concurrent start() calls serialise here and the worker sees
  -- one desired state, so they yield one job.
  INSERT INTO flink.pipeline_state AS ps (pipeline, desired, from_savepoint, stop_with_savepoint, drain, restart_requested)
  VALUES (_set_desired.pipeline, _set_desired.desired, sp, with_savepoint, _set_desired.drain, restart)
  ON CONFLICT ON CONSTRAINT pipeline_state_pkey DO UPDATE
     SET desired = excluded.desired,
         from_savepoint = CASE WHEN excluded.desired = 'running' THEN excluded.from_savepoint ELSE ps.from_savepoint END,
         stop_with_savepoint = excluded.stop_with_savepoint, drain = excluded.drain,
         restart_requested = excluded.restart_requested OR (ps.restart_requested AND excluded.desired = 'running'),
         requested_at = now(), requested_by = session_user;
  -- Wake the worker when (and only if) this transaction commits.
  PERFORM flink._wake_worker_on_commit();
  RETURN _set_desired.desired;
END
$fn$;

CREATE FUNCTION flink.start(pipeline text, from_savepoint text DEFAULT NULL)
RETURNS text LANGUAGE sql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT flink._set_desired(pipeline, 'running', from_savepoint, true, false, false) $fn$;
COMMENT ON FUNCTION flink.start(text, text) IS
  'Desired state: running. Nothing reaches Flink unless the transaction commits; the worker then submits (or adopts) exactly one job. from_savepoint: a path, or ''latest''.';

CREATE FUNCTION flink.stop(pipeline text, with_savepoint boolean DEFAULT true, drain boolean DEFAULT false)
RETURNS text LANGUAGE sql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT flink._set_desired(pipeline, 'stopped', NULL, with_savepoint, drain, false) $fn$;
COMMENT ON FUNCTION flink.stop(text, boolean, boolean) IS
  'Desired state: stopped. After commit the worker stops the job (with a savepoint recorded in flink.savepoints unless with_savepoint => false).';

CREATE FUNCTION flink.restart(pipeline text)
RETURNS text LANGUAGE sql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT flink._set_desired(pipeline, 'running', NULL, true, false, true) $fn$;
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
  LOOP
    SELECT * INTO cur FROM flink.job j WHERE j.pipeline = wait.pipeline ORDER BY j.id DESC LIMIT 1;
    IF cur.state = upper(wait.state) THEN
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
        HINT = 'Check flink.pipeline_status and flink.job_events; is the worker running (pg_flink.worker_databases)?';
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$fn$;
COMMENT ON FUNCTION flink.wait(text, text, interval) IS
  'Blocks (cancellably) until the pipeline''s job reaches the state; fails with the last error if it fails.';

-- Worker helpers: one call per state change, each in the worker's own transaction.
CREATE FUNCTION flink._worker_snapshot() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT COALESCE(jsonb_agg(jsonb_build_object(
           'pipeline', p.name,
           'desired', ps.desired, 'from_savepoint', ps.from_savepoint,
           'stop_with_savepoint', ps.stop_with_savepoint, 'drain', ps.drain,
           'restart_requested', ps.restart_requested,
           'cluster', c.name, 'gateway_url', c.gateway_url, 'rest_url', c.rest_url,
           'identity', 'pg_flink/' || current_database() || '/' || p.name,
           'job', (SELECT jsonb_build_object('id', j.id, 'flink_job_id', j.flink_job_id, 'state', j.state,
                                             'attempts', j.attempts,
                                             'failed_ago_ms', (extract(epoch FROM now() - j.updated_at) * 1000)::bigint)
                   FROM flink.job j WHERE j.pipeline = p.name ORDER BY j.id DESC LIMIT 1)
         ) ORDER BY p.name), '[]')
  FROM flink.pipeline_state ps
  JOIN flink.pipeline p ON p.name = ps.pipeline
  LEFT JOIN flink.cluster c ON c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default)
$fn$;

CREATE FUNCTION flink._job_transition(job_id bigint, to_state text, flink_job_id text DEFAULT NULL, detail text DEFAULT NULL, error text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  j flink.job;
BEGIN
  SELECT * INTO j FROM flink.job x WHERE x.id = _job_transition.job_id FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE flink.job x
     SET state = to_state,
         flink_job_id = COALESCE(_job_transition.flink_job_id, x.flink_job_id),
         started_at = CASE WHEN to_state = 'RUNNING' AND x.started_at IS NULL THEN now() ELSE x.started_at END,
         ended_at = CASE WHEN to_state IN ('STOPPED', 'CANCELED', 'FINISHED', 'FAILED', 'LOST', 'SUBMIT_FAILED') THEN now() ELSE x.ended_at END,
         last_error = COALESCE(error, x.last_error),
         updated_at = now()
   WHERE x.id = j.id;
  IF j.state IS DISTINCT FROM to_state OR error IS NOT NULL THEN
    INSERT INTO flink.job_event (job_id, pipeline, from_state, to_state, detail)
    VALUES (j.id, j.pipeline, j.state, to_state, COALESCE(detail, error));
    PERFORM pg_notify('flink_job_state', jsonb_build_object(
      'pipeline', j.pipeline, 'job', j.id, 'flink_job_id', COALESCE(_job_transition.flink_job_id, j.flink_job_id),
      'from', j.state, 'to', to_state, 'detail', left(COALESCE(detail, error), 1000), 'at', clock_timestamp())::text);
  END IF;
END
$fn$;

CREATE FUNCTION flink._job_checkpoint(job_id bigint, completed_ms bigint) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$ UPDATE flink.job j SET last_checkpoint_at = to_timestamp(completed_ms / 1000.0) WHERE j.id = job_id $fn$;

CREATE FUNCTION flink._job_begin(pipeline text, state text, flink_job_id text, savepoint text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
  prev flink.job;
  c text;
  new_id bigint;
BEGIN
  SELECT * INTO p FROM flink.pipeline x WHERE x.name = _job_begin.pipeline;
  SELECT * INTO prev FROM flink.job j WHERE j.pipeline = p.name ORDER BY j.id DESC LIMIT 1;
  SELECT cl.name INTO c FROM flink.cluster cl WHERE cl.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND cl.is_default);
  INSERT INTO flink.job (pipeline, pipeline_version, script_hash, cluster, job_name, flink_job_id, state, attempts, submitted_at, savepoint_used)
  VALUES (p.name, p.version, p.script_hash, c, 'pg_flink/' || current_database() || '/' || p.name || '/v' || p.version,
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

CREATE FUNCTION flink._pipeline_script(pipeline text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT flink._pipeline_render(p.name, p.template, p.params, p.options, flink._catalog_json(true), current_database(), p.version)
  FROM flink.pipeline p WHERE p.name = $1
$fn$;

-- ------------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; reader reads views; admin manages and reads secrets.
-- ------------------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA flink FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA flink FROM PUBLIC;
GRANT USAGE ON SCHEMA flink TO flink_reader, flink_admin;
GRANT SELECT ON flink.clusters, flink.datasources, flink.pipelines, flink.jobs, flink.job_events,
  flink.savepoints, flink.pipeline_status TO flink_reader;
GRANT SELECT ON flink.pipeline TO flink_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON flink.cluster, flink.datasource, flink.datasource_secret,
  flink.pipeline, flink.pipeline_datasource TO flink_admin;
GRANT EXECUTE ON FUNCTION
  flink.register_cluster(text, text, text, jsonb),
  flink.drop_cluster(text, boolean),
  flink.register_datasource(text, text, jsonb, jsonb),
  flink.drop_datasource(text, boolean, boolean),
  flink.test_datasource(text),
  flink.test_cluster(text),
  flink.describe_datasource(text, text, integer),
  flink.health(text, text),
  flink.execute_sql(text, text, integer),
  flink.create_pipeline(text, text, jsonb, jsonb),
  flink.drop_pipeline(text, boolean),
  flink.validate(text),
  flink.start(text, text),
  flink.stop(text, boolean, boolean),
  flink.restart(text),
  flink._set_desired(text, text, text, boolean, boolean, boolean),
  flink._require_worker(),
  flink._wake_worker_on_commit()
TO flink_admin;
GRANT EXECUTE ON FUNCTION flink.wait(text, text, interval) TO flink_reader;
GRANT SELECT ON flink.job TO flink_reader;
-- render() runs as the caller: readers see masked scripts; it needs these two helpers.
GRANT EXECUTE ON FUNCTION flink.render(text, boolean), flink._catalog_json(boolean),
  flink._pipeline_render(text, text, jsonb, jsonb, jsonb, text, integer) TO flink_reader;

-- ------------------------------------------------------------------------------------------
-- Foreign-data wrappers (docs/kafka-fdw.md, docs/elasticsearch-fdw.md)
-- ------------------------------------------------------------------------------------------
CREATE FOREIGN DATA WRAPPER pg_flink_kafka
  HANDLER flink.kafka_fdw_handler VALIDATOR flink.kafka_fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER pg_flink_kafka IS 'pg_flink: Kafka topics as foreign tables (bounded snapshots, INSERT produces)';
-- flink_admin members may create servers; a server naming a catalog datasource must be owned by
-- one of them (checked at use), and they grant USAGE on it to whoever should read it.
GRANT USAGE ON FOREIGN DATA WRAPPER pg_flink_kafka TO flink_admin;
CREATE FOREIGN DATA WRAPPER pg_flink_elasticsearch
  HANDLER flink.elasticsearch_fdw_handler VALIDATOR flink.elasticsearch_fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER pg_flink_elasticsearch IS 'pg_flink: Elasticsearch indexes as foreign tables (DSL pushdown, point-in-time paging, bulk writes)';
GRANT USAGE ON FOREIGN DATA WRAPPER pg_flink_elasticsearch TO flink_admin;

-- Pipeline results as tables: a foreign table over a pipeline's Kafka topic or Elasticsearch
-- index, in schema `into_schema`, named after the pipeline. Idempotent: re-running replaces the
-- table (it holds no data) and reuses the server `pg_flink_<datasource>`.
CREATE FUNCTION flink.expose_results(pipeline text, into_schema text DEFAULT 'flink_results')
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
  sink jsonb;
  fdw text;
  srv text;
  cols text;
  tbl text;
  opts text;
  cur_fdw text;
BEGIN
  SELECT * INTO p FROM flink.pipeline WHERE name = expose_results.pipeline;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pipeline "%" does not exist', expose_results.pipeline
      USING ERRCODE = 'undefined_object', HINT = 'See flink.pipelines for the stored pipelines.';
  END IF;
  sink := flink._pipeline_sink(p.name, p.template, p.params, p.options, flink._catalog_json(false),
                               current_database(), p.version);
  IF sink IS NULL OR sink->>'kind' NOT IN ('kafka', 'elasticsearch') THEN
    RAISE EXCEPTION 'pipeline "%" does not write to Kafka or Elasticsearch (sink: %)', p.name,
      COALESCE(sink->>'kind', 'inside its raw SQL')
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Results tables exist for Kafka and Elasticsearch sinks; a Postgres sink is already a table.';
  END IF;
  fdw := CASE sink->>'kind' WHEN 'kafka' THEN 'pg_flink_kafka' ELSE 'pg_flink_elasticsearch' END;
  srv := 'pg_flink_' || (sink->>'datasource');
  SELECT w.fdwname INTO cur_fdw FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
   WHERE s.srvname = srv;
  IF cur_fdw IS NULL THEN
    EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER %I OPTIONS (datasource %L)', srv, fdw, sink->>'datasource');
  ELSIF cur_fdw <> fdw THEN
    RAISE EXCEPTION 'server "%" exists but uses foreign-data wrapper %, not %', srv, cur_fdw, fdw
      USING ERRCODE = 'duplicate_object', HINT = 'Rename or drop that server.';
  END IF;
  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', into_schema);
  SELECT string_agg(format('%I %s', c->>'name', c->>'pg_type'), ', ' ORDER BY o)
    INTO cols FROM jsonb_array_elements(sink->'columns') WITH ORDINALITY AS x(c, o)
   WHERE c->>'name' NOT LIKE '\_%';
  IF sink->>'kind' = 'kafka' THEN
    cols := '_partition integer, _offset bigint, _timestamp timestamptz, _key text, _headers jsonb, '
            || COALESCE(cols || ', ', '') || '_error text';
    opts := format('topic %L', sink->>'object');
  ELSE
    cols := '_id text, ' || COALESCE(cols || ', ', '') || '_score double precision, _index text';
    opts := format('index %L', sink->>'object');
  END IF;
  tbl := format('%I.%I', into_schema, p.name);
  IF to_regclass(tbl) IS NOT NULL THEN
    EXECUTE format('DROP FOREIGN TABLE %s', tbl);
  END IF;
  EXECUTE format('CREATE FOREIGN TABLE %s (%s) SERVER %I OPTIONS (%s)', tbl, cols, srv, opts);
  EXECUTE format('COMMENT ON FOREIGN TABLE %s IS %L', tbl,
                 format('Results of pipeline %s (%s %s), created by flink.expose_results()', p.name, sink->>'kind', sink->>'object'));
  RETURN tbl::regclass;
END
$fn$;
REVOKE ALL ON FUNCTION flink.expose_results(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flink.expose_results(text, text), flink._pipeline_sink(text, text, jsonb, jsonb, jsonb, text, integer) TO flink_admin;
