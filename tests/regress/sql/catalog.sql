-- The catalog API with Postgres alone: clusters and datasources are validated and stored without
-- contacting any service (connection tests are the full-stack tier's).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_flink;
RESET client_min_messages;
\set VERBOSITY default
SELECT extversion, extrelocatable, extnamespace::regnamespace AS ext_schema FROM pg_extension WHERE extname = 'pg_flink';
-- Clusters: the first one is the default; re-registering the same definition changes nothing.
SELECT * FROM flink.register_cluster('local', 'http://127.0.0.1:1', 'http://127.0.0.1:2');
SELECT * FROM flink.register_cluster('local', 'http://127.0.0.1:1', 'http://127.0.0.1:2');
SELECT * FROM flink.register_cluster('other', 'http://127.0.0.1:3/', 'http://127.0.0.1:4', '{"default": true}');
SELECT name, gateway_url, rest_url, is_default, version FROM flink.clusters ORDER BY name;
SELECT * FROM flink.register_cluster('bad', 'ftp://x', 'http://127.0.0.1:2');
SELECT * FROM flink.register_cluster('bad name', 'http://127.0.0.1:1', 'http://127.0.0.1:2');
SELECT * FROM flink.register_cluster('bad', 'http://127.0.0.1:1', 'http://127.0.0.1:2', '{"timeout": 5}');
SELECT flink.drop_cluster('other');
SELECT flink.drop_cluster('other');
SELECT flink.drop_cluster('other', if_exists => true);
-- Datasources of every kind; secrets are stored apart and masked in the view.
SELECT * FROM flink.register_datasource('k', 'kafka', '{"bootstrap_servers": "127.0.0.1:9092"}');
SELECT * FROM flink.register_datasource('e', 'elasticsearch', '{"url": "http://127.0.0.1:9200"}', '{"password": "es-secret-1"}');
SELECT * FROM flink.register_datasource('p', 'postgres', '{"host": "127.0.0.1", "database": "app", "user": "u"}', '{"password": "pg-secret-1"}');
SELECT * FROM flink.register_datasource('m', 'mysql', '{"host": "127.0.0.1", "database": "app", "user": "u"}', '{"password": "my-secret-1"}');
SELECT * FROM flink.register_datasource('b', 'blackhole', '{}');
SELECT ok, detail FROM flink.test_datasource('b');
SELECT * FROM flink.register_datasource('b2', 'blackhole', '{"topic": "x"}');
SELECT * FROM flink.register_datasource('p', 'postgres', '{"host": "127.0.0.1", "database": "app", "user": "u"}');
SELECT * FROM flink.register_datasource('p', 'postgres', '{"host": "127.0.0.1", "database": "app", "user": "u2"}');
SELECT name, kind, options, version FROM flink.datasources ORDER BY name;
SELECT datasource, secrets FROM flink.datasource_secret ORDER BY datasource;
-- Validation errors name the datasource and the option, with a hint.
SELECT * FROM flink.register_datasource('x', 'kafak', '{}');
SELECT * FROM flink.register_datasource('x', 'kafka', NULL);
SELECT * FROM flink.register_datasource('x', 'kafka', '{}');
SELECT * FROM flink.register_datasource('x', 'kafka', '{"bootstrap_server": "h:1"}');
SELECT * FROM flink.register_datasource('x', 'postgres', '{"host": "h", "database": "d", "port": "many"}');
SELECT * FROM flink.register_datasource('x', 'elasticsearch', '{"url": "http://h:9200"}', '{"pasword": "s"}');
SELECT * FROM flink.register_datasource('p', 'mysql', '{"host": "127.0.0.1", "database": "app"}');
SELECT count(*) AS rows_after_errors FROM flink.datasources WHERE name = 'x';
SELECT flink.drop_datasource('m');
SELECT flink.drop_datasource('m');
-- Dumped with pg_dump: the catalog tables are extension configuration.
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS t(oid) JOIN pg_class c ON c.oid = t.oid
 WHERE e.extname = 'pg_flink' ORDER BY 1;
-- The job state is typed: the CHECK constraint refuses unknown states.
INSERT INTO flink.pipeline (name, template, params, script_hash) VALUES ('p0', 'sql', '{}', 'h');
INSERT INTO flink.job (pipeline, pipeline_version, script_hash, job_name, state, updated_at) VALUES ('p0', 1, 'h', 'j', 'RUNNNING', '2000-01-01');
DELETE FROM flink.pipeline WHERE name = 'p0';
