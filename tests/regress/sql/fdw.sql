-- Foreign tables with Postgres alone: option validation and planning (EXPLAIN without running).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_flink;
RESET client_min_messages;
\set VERBOSITY default
CREATE SERVER rk FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (brokers '127.0.0.1:1', timeout_ms '500');
CREATE SERVER bad0 FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (bootstrap_servers '127.0.0.1:1');
CREATE SERVER bad5 FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (brokers '127.0.0.1');
CREATE SERVER bad6 FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (brokers 'h:1', datasource 'k');
CREATE FOREIGN TABLE rt (_partition integer, _offset bigint, _timestamp timestamptz, _key text, id bigint, name text, _error text)
  SERVER rk OPTIONS (topic 'regress_topic');
CREATE FOREIGN TABLE bad1 (id bigint) SERVER rk OPTIONS (topik 'x');
CREATE FOREIGN TABLE bad2 (id bigint) SERVER rk OPTIONS (topic 'x', format 'xml');
CREATE FOREIGN TABLE csv_ok (id bigint) SERVER rk OPTIONS (topic 'x', format 'csv', delimiter ';');
CREATE FOREIGN TABLE bad_delimiter (id bigint) SERVER rk OPTIONS (topic 'x', format 'csv', delimiter '#');
CREATE SERVER bad3 FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (timeout_ms 'soon');
CREATE SERVER bad4 FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url 'ftp://x');
EXPLAIN (COSTS OFF) SELECT id FROM rt WHERE _partition = 0 AND _offset >= 10 AND _offset < 20;
EXPLAIN (COSTS OFF) SELECT id FROM rt WHERE _partition IN (1, 2) AND name = 'x' LIMIT 5;
-- Planning needs no broker; running does, and says which broker is unreachable.
SELECT count(*) FROM rt;
DROP FOREIGN TABLE rt;
DROP FOREIGN TABLE csv_ok;
DROP SERVER rk;
-- Elasticsearch plans with the index mapping: an unreachable cluster is a clear error.
CREATE SERVER re FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url 'http://127.0.0.1:1', timeout_ms '500');
CREATE FOREIGN TABLE ret (_id text, kw text) SERVER re OPTIONS (index 'regress_index', on_error 'null');
CREATE FOREIGN TABLE bad7 (_id text) SERVER re OPTIONS (index 'i', on_error 'NULL');
EXPLAIN (COSTS OFF) SELECT * FROM ret WHERE kw = 'x';
DROP SERVER re CASCADE;
