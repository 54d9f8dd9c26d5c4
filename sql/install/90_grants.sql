-- pg_flink install script, part: privileges
-- Nothing for PUBLIC; flink_reader reads views and status; flink_admin manages and reads secrets; flink_internal is granted to nobody.

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA flink FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA flink_internal FROM PUBLIC;
REVOKE ALL ON SCHEMA flink_internal FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA flink FROM PUBLIC;
GRANT USAGE ON SCHEMA flink TO flink_reader, flink_admin;
GRANT SELECT ON flink.clusters, flink.datasources, flink.pipelines, flink.jobs, flink.job_events,
  flink.savepoints, flink.pipeline_status, flink.dropped_pipelines TO flink_reader;
GRANT SELECT ON flink.pipeline TO flink_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON flink.cluster, flink.datasource, flink.datasource_secret,
  flink.pipeline, flink.pipeline_datasource, flink.result_table TO flink_admin;
GRANT EXECUTE ON FUNCTION
  flink.register_cluster(text, text, text, jsonb),
  flink.drop_cluster(text, boolean, boolean),
  flink.register_datasource(text, text, jsonb, jsonb),
  flink.drop_datasource(text, boolean, boolean),
  flink.test_datasource(text),
  flink.test_cluster(text),
  flink.describe_datasource(text, text, integer),
  flink.health(text, text),
  flink.execute_sql(text, text, integer),
  flink.create_pipeline(text, text, jsonb, jsonb),
  flink.drop_pipeline(text, boolean, boolean, boolean),
  flink.validate(text),
  flink.preview(text, integer, interval),
  flink.start(text, text),
  flink.stop(text, boolean, boolean, boolean),
  flink.restart(text),
  flink.expose_results(text, text, boolean, text)
TO flink_admin;
GRANT EXECUTE ON FUNCTION flink.wait(text, text, interval) TO flink_reader;
GRANT SELECT ON flink.job TO flink_reader;
-- render() and pipeline_sink() run as the caller: readers see masked scripts.
GRANT EXECUTE ON FUNCTION flink.render(text, boolean), flink.pipeline_sink(text), flink.pipeline_sinks(text)
  TO flink_reader;

-- A new install (CREATE EXTENSION, pg_restore) gets its worker when this transaction commits.
SELECT flink_internal.wake_worker_on_commit();
