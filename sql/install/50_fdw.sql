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

-- Results tables made by expose_results (foreign tables, and the views made with
-- with_view => true), dropped with their pipeline (drop_pipeline).
CREATE TABLE flink.result_table (
  pipeline text NOT NULL,
  relid    oid NOT NULL,
  PRIMARY KEY (pipeline, relid)
);
COMMENT ON TABLE flink.result_table IS 'Foreign tables and views made by flink.expose_results, dropped with their pipeline.';
SELECT pg_catalog.pg_extension_config_dump('flink.result_table', '');

COMMENT ON FUNCTION flink.kafka_fdw_handler() IS 'Handler of the pg_flink_kafka foreign-data wrapper.';
COMMENT ON FUNCTION flink.kafka_fdw_validator(text[], oid) IS 'Validates options of the pg_flink_kafka wrapper, its servers, user mappings, tables and columns.';
COMMENT ON FUNCTION flink.elasticsearch_fdw_handler() IS 'Handler of the pg_flink_elasticsearch foreign-data wrapper.';
COMMENT ON FUNCTION flink.elasticsearch_fdw_validator(text[], oid) IS 'Validates options of the pg_flink_elasticsearch wrapper, its servers, user mappings, tables and columns.';
