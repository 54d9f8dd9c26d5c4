-- Privileges: readers see masked views; admins manage; internals are granted to nobody.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_flink;
RESET client_min_messages;
\set VERBOSITY default
DROP ROLE IF EXISTS regress_reader;
DROP ROLE IF EXISTS regress_admin;
CREATE ROLE regress_reader IN ROLE flink_reader;
CREATE ROLE regress_admin IN ROLE flink_admin;
SELECT * FROM flink.register_datasource('gp', 'postgres', '{"host": "127.0.0.1", "database": "app"}', '{"password": "grant-secret-1"}');
SELECT * FROM flink.create_pipeline('gp_copy', 'sync', $json${"source": {"datasource": "gp", "object": "public.a", "columns": [{"name": "id", "type": "BIGINT"}]}, "sink": {"datasource": "gp", "object": "public.b", "columns": [{"name": "id", "type": "BIGINT"}]}}$json$);
-- The API surface: every function of schema flink, and who may call it.
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       has_function_privilege('regress_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('regress_admin', p.oid, 'EXECUTE') AS admin
  FROM pg_proc p WHERE p.pronamespace = 'flink'::regnamespace ORDER BY 1, 2;
-- Nobody but superusers reaches the internals.
SELECT has_schema_privilege('regress_admin', 'flink_internal', 'USAGE') AS admin_usage,
       has_schema_privilege('regress_reader', 'flink_internal', 'USAGE') AS reader_usage,
       has_schema_privilege('public', 'flink_internal', 'USAGE') AS public_usage;
SELECT count(*) AS internal_functions_executable_by_public FROM pg_proc p
 WHERE p.pronamespace = 'flink_internal'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE');
-- Every public function, view and table of schema flink says what it is.
SELECT p.proname AS undocumented_function FROM pg_proc p
 WHERE p.pronamespace = 'flink'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT c.relname AS undocumented_relation FROM pg_class c
 WHERE c.relnamespace = 'flink'::regnamespace AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL;
-- A reader: masked views, masked scripts, no secrets, no management.
SET ROLE regress_reader;
SELECT name, options FROM flink.datasources ORDER BY name;
SELECT position('grant-secret-1' IN flink.render('gp_copy')) AS secret_shown;
SELECT flink.render('gp_copy', reveal_secrets => true);
SELECT * FROM flink.datasource_secret;
SELECT * FROM flink.register_datasource('x', 'kafka', '{"bootstrap_servers": "h:1"}');
SELECT flink.start('gp_copy');
SELECT * FROM flink_internal.test_datasource('gp', 'postgres', '{}', '{}');
SELECT count(*) FROM flink.pipeline_status;
RESET ROLE;
-- An admin reveals secrets.
SET ROLE regress_admin;
SELECT position('grant-secret-1' IN flink.render('gp_copy', reveal_secrets => true)) > 0 AS secret_shown;
SELECT flink.drop_pipeline('gp_copy');
RESET ROLE;
SELECT flink.drop_datasource('gp');
DROP ROLE regress_reader;
DROP ROLE regress_admin;
