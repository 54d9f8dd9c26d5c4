-- pg_flink install script, part: foreign-data wrappers
-- Kafka and Elasticsearch wrappers (docs/kafka-fdw.md, docs/elasticsearch-fdw.md) and pipeline results as tables.

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

-- Results tables made by expose_results, dropped with their pipeline (drop_pipeline).
CREATE TABLE flink.result_table (
  pipeline text NOT NULL,
  relid    oid NOT NULL,
  PRIMARY KEY (pipeline, relid)
);
COMMENT ON TABLE flink.result_table IS 'Foreign tables made by flink.expose_results, dropped with their pipeline.';
SELECT pg_catalog.pg_extension_config_dump('flink.result_table', '');

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
  sink := flink.pipeline_sink(p.name);
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
  DELETE FROM flink.result_table r WHERE r.pipeline = p.name AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = r.relid);
  INSERT INTO flink.result_table (pipeline, relid) VALUES (p.name, tbl::regclass) ON CONFLICT DO NOTHING;
  EXECUTE format('COMMENT ON FOREIGN TABLE %s IS %L', tbl,
                 format('Results of pipeline %s (%s %s), created by flink.expose_results()', p.name, sink->>'kind', sink->>'object'));
  RETURN tbl::regclass;
END
$fn$;
COMMENT ON FUNCTION flink.expose_results(text, text) IS
  'Creates (or replaces) a foreign table named after the pipeline in into_schema over its Kafka topic or Elasticsearch index, with the pipeline''s output columns and the metadata columns.';
COMMENT ON FUNCTION flink.kafka_fdw_handler() IS 'Handler of the pg_flink_kafka foreign-data wrapper.';
COMMENT ON FUNCTION flink.kafka_fdw_validator(text[], oid) IS 'Validates options of the pg_flink_kafka wrapper, its servers, user mappings, tables and columns.';
COMMENT ON FUNCTION flink.elasticsearch_fdw_handler() IS 'Handler of the pg_flink_elasticsearch foreign-data wrapper.';
COMMENT ON FUNCTION flink.elasticsearch_fdw_validator(text[], oid) IS 'Validates options of the pg_flink_elasticsearch wrapper, its servers, user mappings, tables and columns.';
