-- pg_flink install script, part: catalog
-- Clusters and datasources: tables, masked views and the SQL API that manages them.

-- ------------------------------------------------------------------------------------------
-- Catalog tables
-- ------------------------------------------------------------------------------------------
CREATE TABLE flink.cluster (
  name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
  gateway_url text NOT NULL,
  rest_url    text NOT NULL,
  options     jsonb NOT NULL DEFAULT '{}',
  is_default  boolean NOT NULL DEFAULT false,
  -- drop_cluster(cascade => true): dropped by the worker once its pipelines' jobs have stopped.
  dropping    boolean NOT NULL DEFAULT false,
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cluster_one_default ON flink.cluster ((true)) WHERE is_default;
COMMENT ON TABLE flink.cluster IS 'Flink clusters (SQL Gateway + JobManager REST endpoints). Use flink.register_cluster().';

CREATE TABLE flink.datasource (
  name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
  kind       text NOT NULL CHECK (kind IN ('kafka', 'elasticsearch', 'postgres', 'mysql', 'blackhole')),
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
  SELECT c.name, c.gateway_url, c.rest_url, c.options, c.is_default, c.version, c.created_at, c.updated_at,
         c.dropping
  FROM flink.cluster c;
COMMENT ON VIEW flink.clusters IS 'Registered Flink clusters; dropping: removed by drop_cluster(cascade => true) once its pipelines'' jobs have stopped.';

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
  v jsonb := flink_internal.validate_cluster(register_cluster.name, register_cluster.gateway_url,
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
  -- Registering a cluster that drop_cluster(cascade) is removing keeps it (it is not dropped).
  IF cur.gateway_url = v->>'gateway_url' AND cur.rest_url = v->>'rest_url'
     AND cur.options = opts AND cur.is_default = make_default AND NOT cur.dropping THEN
    RETURN QUERY SELECT cur.name, cur.version, false;
    RETURN;
  END IF;
  IF make_default AND NOT cur.is_default THEN
    UPDATE flink.cluster c SET is_default = false WHERE c.is_default;
  END IF;
  UPDATE flink.cluster c
     SET gateway_url = v->>'gateway_url', rest_url = v->>'rest_url', options = opts,
         is_default = make_default, dropping = false, version = c.version + 1, updated_at = now()
   WHERE c.name = cur.name;
  RETURN QUERY SELECT cur.name, cur.version + 1, true;
END
$fn$;
COMMENT ON FUNCTION flink.register_cluster(text, text, text, jsonb) IS
  'Registers or updates a Flink cluster (idempotent: an identical call changes nothing). The first cluster, or one with options {"default": true}, is the default.';

CREATE FUNCTION flink.drop_cluster(name text, if_exists boolean DEFAULT false, cascade boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  c flink.cluster;
  users text[];
BEGIN
  SELECT * INTO c FROM flink.cluster x WHERE x.name = drop_cluster.name AND NOT x.dropping FOR UPDATE;
  IF NOT FOUND THEN
    IF drop_cluster.if_exists THEN RETURN false; END IF;
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('cluster "%s" does not exist', drop_cluster.name),
      HINT = 'See SELECT name FROM flink.clusters; pass if_exists => true to ignore a missing cluster.';
  END IF;
  -- Pipelines that run, or want to run, on it: removing it would leave their jobs unreachable.
  SELECT array_agg(p.name ORDER BY p.name) INTO users
    FROM flink.pipeline p LEFT JOIN flink.pipeline_state ps ON ps.pipeline = p.name
   WHERE (p.options->>'cluster' = c.name OR (p.options->>'cluster' IS NULL AND c.is_default))
     AND (ps.desired = 'running' OR flink_internal.is_deployed(p.name));
  IF users IS NOT NULL THEN
    IF NOT drop_cluster.cascade THEN
      RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
        MESSAGE = format('cannot drop cluster "%s": pipelines %s run on it', c.name, array_to_string(users, ', ')),
        HINT = 'Stop them first (flink.stop), or pass cascade => true to stop them and drop the cluster once their jobs have stopped.';
    END IF;
    UPDATE flink.pipeline_state ps SET desired = 'stopped', restart_requested = false, requested_at = now(),
           requested_by = session_user, requested_xid = txid_current()
     WHERE ps.pipeline = ANY (users);
    UPDATE flink.cluster x SET dropping = true, updated_at = now() WHERE x.name = c.name;
    PERFORM flink_internal.wake_worker_on_commit();
    RETURN true;
  END IF;
  DELETE FROM flink.cluster x WHERE x.name = c.name;
  RETURN true;
END
$fn$;
COMMENT ON FUNCTION flink.drop_cluster(text, boolean, boolean) IS
  'Removes a cluster from the catalog; refused (2BP01) while pipelines run on it, unless cascade => true, which stops them and removes the cluster once their jobs have stopped.';

CREATE FUNCTION flink.register_datasource(name text, kind text, options jsonb, secrets jsonb DEFAULT NULL)
RETURNS TABLE (datasource text, version integer, changed boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $fn$
DECLARE
  v jsonb := flink_internal.validate_datasource(register_datasource.name, register_datasource.kind,
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
  dependents := flink_internal.datasource_dependents(drop_datasource.name);
  IF cardinality(dependents) > 0 AND NOT drop_datasource.cascade THEN
    RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
      MESSAGE = format('cannot drop datasource "%s": pipelines %s use it', drop_datasource.name, array_to_string(dependents, ', ')),
      HINT = 'Drop those pipelines first, or pass cascade => true to drop them too.';
  END IF;
  PERFORM flink_internal.drop_dependents(drop_datasource.name);
  DELETE FROM flink.datasource d WHERE d.name = drop_datasource.name;
  RETURN true;
END
$fn$;
COMMENT ON FUNCTION flink.drop_datasource(text, boolean, boolean) IS
  'Removes a datasource (and its secrets); refuses while pipelines use it unless cascade => true.';

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
  RETURN QUERY SELECT * FROM flink_internal.test_datasource(d.name, d.kind, d.options, COALESCE(s, '{}'));
END
$fn$;
COMMENT ON FUNCTION flink.test_datasource(text) IS
  'Connects to a datasource for real (Kafka metadata, Elasticsearch health, Postgres/MySQL select 1); bounded by its timeout_ms option; ok = false with the reason on failure.';

CREATE FUNCTION flink.test_cluster(name text DEFAULT NULL)
RETURNS TABLE (cluster text, ok boolean, flink_version text, latency_ms double precision, detail text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  c flink.cluster;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM flink.cluster x WHERE test_cluster.name IS NULL OR x.name = test_cluster.name) THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = CASE WHEN test_cluster.name IS NULL THEN 'no cluster is registered'
                     ELSE format('cluster "%s" does not exist', test_cluster.name) END,
      HINT = 'Register one with flink.register_cluster(); see SELECT name FROM flink.clusters.';
  END IF;
  -- Every cluster (the default first) when no name is given; one row each, never an error for an
  -- unreachable one (ok = false, detail says why).
  FOR c IN SELECT * FROM flink.cluster x WHERE test_cluster.name IS NULL OR x.name = test_cluster.name
            ORDER BY x.is_default DESC, x.name LOOP
    RETURN QUERY SELECT c.name, t.ok, t.flink_version, t.latency_ms, t.detail
      FROM flink_internal.test_cluster(c.name, c.gateway_url, c.rest_url, (c.options->>'timeout_ms')::integer) t;
  END LOOP;
END
$fn$;
COMMENT ON FUNCTION flink.test_cluster(text) IS
  'Checks every registered cluster (the default first), or the one named: JobManager overview and SQL Gateway info, with the Flink version the JobManager reports. Never raises for an unreachable cluster: ok = false and detail says why.';

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
  RETURN QUERY SELECT * FROM flink_internal.describe_datasource(d.name, d.kind, d.options, COALESCE(s, '{}'),
                                                        describe_datasource.object, describe_datasource.sample_size);
END
$fn$;
COMMENT ON FUNCTION flink.describe_datasource(text, text, integer) IS
  'Columns of a table (postgres/mysql), index (elasticsearch) or topic (kafka, inferred from a sample of JSON messages) with their Flink SQL types.';

COMMENT ON FUNCTION flink.health(text, text) IS
  'Checks the Flink JobManager REST API and the SQL Gateway (with a session round trip); one row per service, or an error naming the service that is down.';
COMMENT ON FUNCTION flink.execute_sql(text, text, integer) IS
  'Runs a Flink SQL script through the SQL Gateway in one session; returns one row per statement (result kind, job id, rows as JSON).';
