//! `pg_flink_elasticsearch`: Elasticsearch indexes as foreign tables (work in progress).
