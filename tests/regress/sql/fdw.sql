-- Foreign tables with Postgres alone: option validation and planning (EXPLAIN without running).
CREATE EXTENSION IF NOT EXISTS pg_flink;
\set VERBOSITY default
CREATE SERVER rk FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (bootstrap_servers '127.0.0.1:1', timeout_ms '500');
CREATE FOREIGN TABLE rt (_partition integer, _offset bigint, _timestamp timestamptz, _key text, id bigint, name text, _error text)
  SERVER rk OPTIONS (topic 'regress_topic');
CREATE FOREIGN TABLE bad1 (id bigint) SERVER rk OPTIONS (topik 'x');
CREATE FOREIGN TABLE bad2 (id bigint) SERVER rk OPTIONS (topic 'x', format 'xml');
CREATE SERVER bad3 FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (timeout_ms 'soon');
CREATE SERVER bad4 FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url 'ftp://x');
EXPLAIN (COSTS OFF) SELECT id FROM rt WHERE _partition = 0 AND _offset >= 10 AND _offset < 20;
EXPLAIN (COSTS OFF) SELECT id FROM rt WHERE _partition IN (1, 2) AND name = 'x' LIMIT 5;
-- Planning needs no broker; running does, and says which broker is unreachable.
SELECT count(*) FROM rt;
DROP FOREIGN TABLE rt;
DROP SERVER rk;
