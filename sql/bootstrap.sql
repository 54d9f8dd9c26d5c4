-- pg_flink bootstrap (runs at the end of CREATE EXTENSION).
-- Never drops user data: catalog tables added here later are created IF NOT EXISTS and
-- registered with pg_extension_config_dump.

COMMENT ON SCHEMA flink IS 'pg_flink: Apache Flink control plane and query surface';

-- Network-reaching functions are not for everyone: they let the server make HTTP requests.
REVOKE ALL ON FUNCTION flink.health(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flink.execute_sql(text, text, integer) FROM PUBLIC;

COMMENT ON FUNCTION flink.health(text, text) IS
  'Checks the Flink JobManager REST API and the SQL Gateway (with a session round trip); one row per service, or an error naming the service that is down.';
COMMENT ON FUNCTION flink.execute_sql(text, text, integer) IS
  'Runs a Flink SQL script through the SQL Gateway in one session; returns one row per statement (result kind, job id, rows as JSON).';
