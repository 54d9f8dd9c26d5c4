-- pg_flink install script, part: pipelines
-- Stored pipelines: tables, view, create/drop. Rendering, validation and the sink are Rust (src/api/pipeline.rs).

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
CREATE FUNCTION flink_internal.datasource_dependents(datasource text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT COALESCE(array_agg(pd.pipeline ORDER BY pd.pipeline), '{}') FROM flink.pipeline_datasource pd WHERE pd.datasource = $1 $fn$;

CREATE FUNCTION flink_internal.drop_dependents(datasource text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$ DELETE FROM flink.pipeline p USING flink.pipeline_datasource pd WHERE pd.pipeline = p.name AND pd.datasource = $1 $fn$;

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
  opts jsonb := COALESCE(create_pipeline.options, '{}');
BEGIN
  IF opts ? 'cluster' AND NOT EXISTS (SELECT 1 FROM flink.cluster c WHERE c.name = opts->>'cluster') THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s": options.cluster: cluster "%s" does not exist', create_pipeline.name, opts->>'cluster'),
      HINT = 'Register it with flink.register_cluster(), or omit cluster to use the default one.';
  END IF;
  SELECT * INTO cur FROM flink.pipeline p WHERE p.name = create_pipeline.name FOR UPDATE;
  new_version := COALESCE(cur.version + 1, 1);
  -- Validates, reads missing columns from the datasources, and renders once (secrets masked)
  -- for the type check and the script hash of the version this call would create.
  prep := flink_internal.pipeline_prepare(create_pipeline.name, create_pipeline.template, create_pipeline.params,
                                          opts, new_version);
  IF cur.name IS NOT NULL AND cur.template = create_pipeline.template AND cur.params = prep->'params' AND cur.options = opts THEN
    RETURN QUERY SELECT cur.name, cur.version, false;
    RETURN;
  END IF;
  INSERT INTO flink.pipeline AS p (name, template, params, options, version, script_hash)
  VALUES (create_pipeline.name, create_pipeline.template, prep->'params', opts, new_version, prep->>'script_hash')
  ON CONFLICT ON CONSTRAINT pipeline_pkey DO UPDATE
     SET template = excluded.template, params = excluded.params, options = excluded.options,
         version = excluded.version, script_hash = excluded.script_hash, updated_at = now(),
         -- A changed definition of a deployed pipeline needs a restart to take effect; the
         -- control plane clears the flag when it deploys the new version.
         needs_restart = p.needs_restart OR flink_internal.is_deployed(p.name);
  DELETE FROM flink.pipeline_datasource pd WHERE pd.pipeline = create_pipeline.name;
  INSERT INTO flink.pipeline_datasource (pipeline, datasource)
  SELECT create_pipeline.name, ds FROM jsonb_array_elements_text(prep->'datasources') ds;
  RETURN QUERY SELECT create_pipeline.name, new_version, true;
END
$fn$;
COMMENT ON FUNCTION flink.create_pipeline(text, text, jsonb, jsonb) IS
  'Creates or updates a pipeline (idempotent: an identical definition changes nothing; a change bumps version). Params are validated and type-checked; missing columns are read from the datasources.';


CREATE FUNCTION flink.drop_pipeline(name text, if_exists boolean DEFAULT false, with_savepoint boolean DEFAULT false,
                                    keep_results boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  j flink.job;
  t record;
BEGIN
  PERFORM 1 FROM flink.pipeline p WHERE p.name = drop_pipeline.name FOR UPDATE;
  IF NOT FOUND THEN
    IF drop_pipeline.if_exists THEN RETURN false; END IF;
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', drop_pipeline.name),
      HINT = 'See SELECT name FROM flink.pipelines; pass if_exists => true to ignore a missing pipeline.';
  END IF;
  SELECT * INTO j FROM flink.job x WHERE x.pipeline = drop_pipeline.name ORDER BY x.id DESC LIMIT 1;
  IF NOT drop_pipeline.keep_results THEN
    -- Views (with_view => true) first: they depend on the foreign tables.
    FOR t IN SELECT r.relid, k.relkind FROM flink.result_table r JOIN pg_class k ON k.oid = r.relid
              WHERE r.pipeline = drop_pipeline.name AND k.relkind IN ('v', 'f')
              ORDER BY k.relkind DESC LOOP
      EXECUTE format(CASE t.relkind WHEN 'v' THEN 'DROP VIEW %s' ELSE 'DROP FOREIGN TABLE %s' END, t.relid::regclass);
    END LOOP;
  END IF;
  DELETE FROM flink.pipeline p WHERE p.name = drop_pipeline.name;
  -- After commit the worker stops whatever job of the pipeline still runs, and records it here.
  INSERT INTO flink.pipeline_drop (pipeline, job_name, flink_job_id, with_savepoint)
  VALUES (drop_pipeline.name, j.job_name, j.flink_job_id, drop_pipeline.with_savepoint);
  PERFORM flink_internal.wake_worker_on_commit();
  RETURN true;
END
$fn$;
COMMENT ON FUNCTION flink.drop_pipeline(text, boolean, boolean, boolean) IS
  'Removes a pipeline. A job still running is stopped by the worker after commit (cancelled, or with a savepoint when with_savepoint => true) and recorded in flink.dropped_pipelines; a rolled-back drop stops nothing. Results tables made by flink.expose_results (and their views made with with_view => true) are dropped too unless keep_results => true.';

COMMENT ON TABLE flink.pipeline_datasource IS 'Which datasources each pipeline uses (flink.drop_datasource refuses while a pipeline uses one).';
COMMENT ON FUNCTION flink.render(text, boolean) IS
  'The complete Flink SQL script of a pipeline (SETs, CREATE TEMPORARY TABLEs, INSERT). Secrets show as *** unless reveal_secrets and the caller is flink_admin.';
COMMENT ON FUNCTION flink.validate(text) IS
  'Plans the pipeline on the real SQL Gateway (CREATE TABLEs + EXPLAIN INSERT): ok and the plan, or Flink''s error and the params path it points at.';
COMMENT ON FUNCTION flink.preview(text, integer, interval) IS
  'Runs the pipeline''s query (not its INSERT) on its cluster against the data present and returns up to max_rows result rows as JSON objects, collected for at most timeout; the preview''s Flink job is cancelled before it returns. Needs flink_admin (it reads with the datasources'' secrets).';
COMMENT ON FUNCTION flink.pipeline_sinks(text) IS
  'Every sink of the pipeline, in order, as flink.pipeline_sink shows the first, with sink_no: each branch''s, a source''s late rows, every table a raw SQL pipeline writes. flink.expose_results(name, sink_object => object) makes any of them a table.';
COMMENT ON FUNCTION flink.pipeline_sink(text) IS
  'The sink of a pipeline as JSON: datasource, kind, object, and columns with their Flink and Postgres types (for a raw SQL pipeline the first table its INSERTs write; NULL if it writes none it declares).';
