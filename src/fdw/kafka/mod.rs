//! `pg_flink_kafka`: Kafka topics as foreign tables.
//!
//! A scan is a bounded snapshot: every partition is read from its lower bound to the high
//! watermark taken when the scan starts, by assignment (no consumer-group join, no offset
//! commits). `_partition`, `_offset` and `_timestamp` conditions narrow the ranges (timestamps
//! through offsets-for-times). INSERT produces messages and waits for their delivery, inside a
//! Kafka transaction committed with the Postgres transaction (unless `transactional 'false'`).
//!
//! | file | holds |
//! | --- | --- |
//! | `mod.rs` | errors and their SQLSTATEs, options, the connection, IMPORT FOREIGN SCHEMA |
//! | [`plan`] | pure: partition/offset/timestamp bounds of a WHERE clause, EXPLAIN text |
//! | [`codec`] | pure: column roles, message → row decoding, row → message value encoding |
//! | `scan.rs` | the bounded-snapshot scan (serial, or one participant of a parallel scan) |
//! | [`sizing`] | row estimates from the watermarks (plan time), work units of parallel scans |
//! | `batch.rs` | batch consumption through librdkafka's C API (the wrapper's only `unsafe`) |
//! | `write.rs` | INSERT: produce and confirm delivery |
//! | `txn.rs` | the transactional producers: one Kafka transaction per Postgres transaction |
mod batch;
pub mod codec;
pub mod plan;
mod pool;
mod scan;
pub mod sizing;
mod txn;
mod write;

use crate::datasource::schema::{opt, OptSpec, OptType, POSITIVE};
use crate::datasource::Kind;
use crate::datasource::Source;
use crate::fdw::cond::{Cond, Request};
use crate::fdw::{
    fdw_error, pg, validate_options, ColDef, ImportColumn, ImportTable, Modify, OptClass,
    OptionRules, Planner, Scan, Ship, TableDef, Wrapper,
};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;
use serde_json::Value;

pub use scan::KafkaScan;
pub use write::KafkaModify;

/// Errors of the Kafka wrapper; each becomes an ErrorReport with its SQLSTATE and a hint.
#[derive(Debug, thiserror::Error)]
pub enum KafkaFdwError {
    #[error("{0}")]
    Unreachable(String),
    #[error("foreign table {table}: topic \"{topic}\" does not exist")]
    TopicMissing { table: String, topic: String },
    #[error("{0}")]
    Timeout(String),
    #[error(
        "foreign table {table}: topic \"{topic}\" partition {partition} offset {offset}: {message}"
    )]
    Decode {
        table: String,
        topic: String,
        partition: i32,
        offset: i64,
        message: String,
    },
    #[error("{0}")]
    Delivery(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Remote(String),
}

impl From<KafkaFdwError> for ErrorReport {
    fn from(e: KafkaFdwError) -> ErrorReport {
        let (code, hint) = match &e {
            KafkaFdwError::Unreachable(_) => (
                PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
                "Check that the brokers are up (scripts/stack.sh status) and the server's brokers/datasource option.",
            ),
            KafkaFdwError::TopicMissing { .. } => (
                PgSqlErrorCode::ERRCODE_FDW_TABLE_NOT_FOUND,
                "Check the table's topic option; IMPORT FOREIGN SCHEMA lists the topics that exist.",
            ),
            KafkaFdwError::Timeout(_) => (
                PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
                "The brokers stopped answering; check them, or raise the timeout_ms option.",
            ),
            KafkaFdwError::Decode { message, .. } => (
                crate::fdw::sqlstate::of_conversion(message),
                "The table has on_error 'error'; use on_error 'null' (default) to read such messages with _error set, or 'skip' to leave them out.",
            ),
            KafkaFdwError::Delivery(_) => (
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                "Kafka refused or did not confirm the messages; nothing was retried. Check the topic and the brokers.",
            ),
            KafkaFdwError::Config(_) => (
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                "Fix the server, user mapping or table options (see docs/kafka-fdw.md).",
            ),
            KafkaFdwError::Remote(_) => (PgSqlErrorCode::ERRCODE_FDW_ERROR, "See the Kafka broker logs."),
        };
        fdw_error(code, e.to_string(), hint)
    }
}

pub struct KafkaFdw;

/// Only `_partition`, `_offset` and `_timestamp` conditions go to Kafka; nothing sorts there.
struct KafkaPlanner {
    meta: plan::MetaCols,
    table: TableDef,
}

impl Planner for KafkaPlanner {
    fn ship(&self, cond: &Cond) -> Ship {
        plan::ship(&self.meta, cond)
    }
    fn sort_exact(&self, _col: &ColDef) -> bool {
        false
    }
    /// From the partitions' watermarks (see [`sizing`]); None if the brokers do not answer
    /// within a second.
    fn estimate_rows(&self, req: &Request) -> Option<f64> {
        let marks = sizing::watermarks(&self.table)?;
        Some(sizing::estimate(&self.meta, &req.conds, &marks))
    }
}

const SERVER_OPTS: &[OptSpec] = &[
    opt(
        "datasource",
        OptType::Str,
        "a catalog datasource of kind kafka",
    ),
    opt(
        "brokers",
        OptType::HostPorts,
        "the bootstrap brokers, host:port[,host:port]",
    ),
    opt(
        "security_protocol",
        OptType::Exact(&[
            "PLAINTEXT",
            "SSL",
            "SASL_PLAINTEXT",
            "SASL_SSL",
            "plaintext",
            "ssl",
            "sasl_plaintext",
            "sasl_ssl",
        ]),
        "the security protocol",
    ),
    opt(
        "sasl_mechanism",
        OptType::Exact(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        "the SASL mechanism",
    ),
    opt(
        "timeout_ms",
        POSITIVE,
        "the bound of broker calls in milliseconds",
    ),
    opt("batch_size", POSITIVE, "messages per batch"),
    opt(
        "transactional",
        OptType::Bool,
        "INSERTs go into a Kafka transaction committed with the Postgres transaction (default true)",
    ),
];
const USER_OPTS: &[OptSpec] = &[
    opt("sasl_username", OptType::Str, "the SASL user name"),
    opt("sasl_password", OptType::Str, "the SASL password"),
];
const TABLE_OPTS: &[OptSpec] = &[
    opt("topic", OptType::Str, "the topic name"),
    opt(
        "format",
        OptType::Exact(&["json", "text", "csv"]),
        "the message format",
    ),
    opt(
        "delimiter",
        OptType::Exact(&[",", ";", "|", "\t", ":"]),
        "the CSV field delimiter",
    ),
    opt("batch_size", POSITIVE, "messages per batch"),
    opt(
        "timeout_ms",
        POSITIVE,
        "the bound of broker calls in milliseconds",
    ),
    opt(
        "on_error",
        OptType::Exact(&["null", "error", "skip"]),
        "what a message that cannot be decoded does",
    ),
    opt(
        "transactional",
        OptType::Bool,
        "INSERTs go into a Kafka transaction committed with the Postgres transaction (default true)",
    ),
];
const COLUMN_OPTS: &[OptSpec] = &[
    opt("path", OptType::Str, "the JSON path of the column's value"),
    opt("index", POSITIVE, "the CSV field number (from 1)"),
];
const RULES: OptionRules = OptionRules {
    wrapper: "pg_flink_kafka",
    server: SERVER_OPTS,
    user: USER_OPTS,
    table: TABLE_OPTS,
    column: COLUMN_OPTS,
    server_one_of: ("datasource", "brokers"),
    table_requires: "topic",
};

/// The Kafka connection of a table's server: a catalog datasource, or explicit brokers.
pub(crate) fn source(t: &TableDef) -> Result<Source, ErrorReport> {
    pg::server_source(t, &RULES, Kind::Kafka, |brokers| {
        let mut options = serde_json::Map::new();
        options.insert("bootstrap_servers".into(), Value::from(brokers));
        options.insert(
            "security_protocol".into(),
            Value::from(
                t.server_opts
                    .get("security_protocol")
                    .map(String::as_str)
                    .unwrap_or("PLAINTEXT"),
            ),
        );
        if let Some(m) = t.server_opts.get("sasl_mechanism") {
            options.insert("sasl_mechanism".into(), Value::from(m.as_str()));
        }
        if let Some(u) = t.user_opts.get("sasl_username") {
            options.insert("sasl_username".into(), Value::from(u.as_str()));
        }
        let mut secrets = serde_json::Map::new();
        if let Some(p) = t.user_opts.get("sasl_password") {
            secrets.insert("sasl_password".into(), Value::from(p.as_str()));
        }
        Source {
            name: t.server.clone(),
            kind: Kind::Kafka,
            options,
            secrets,
        }
    })
}

pub(crate) fn topic(t: &TableDef) -> Result<String, ErrorReport> {
    t.table_opts.get("topic").cloned().ok_or_else(|| {
        KafkaFdwError::Config(format!("foreign table {} needs option topic", t.name)).into()
    })
}

impl Wrapper for KafkaFdw {
    const LABEL: &'static str = "Kafka";
    const UPDATABLE: bool = false;
    const PARALLEL: bool = true;

    fn planner(table: &TableDef) -> Box<dyn Planner> {
        Box::new(KafkaPlanner {
            meta: plan::MetaCols::of(table),
            table: table.clone(),
        })
    }

    fn begin_scan(table: TableDef, req: Request) -> Result<Box<dyn Scan>, ErrorReport> {
        Ok(Box::new(KafkaScan::new(table, req)?))
    }

    fn begin_modify(table: TableDef) -> Result<Box<dyn Modify>, ErrorReport> {
        Ok(Box::new(KafkaModify::new(table)?))
    }

    /// Startup: a consumer (pooled, or a new client), metadata, watermarks and offset lookups,
    /// a few round trips. Per message: fetching it (about cpu_tuple_cost), forming the row
    /// (cpu_tuple_cost) and decoding each column (twice cpu_operator_cost: JSON is parsed).
    fn costs(_rows: f64, cols: usize) -> (f64, f64) {
        (100.0, 0.01 + 0.01 + 0.005 * cols as f64)
    }

    fn import(
        server: &TableDef,
        _remote_schema: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ImportTable>, ErrorReport> {
        let src = source(server)?;
        let sample = server
            .table_opts
            .get("sample_size")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(100)
            .clamp(1, 100_000);
        let topics = scan::list_topics(&src)?;
        let mut out = vec![];
        for t in topics.into_iter().filter(|t| keep(t)) {
            let described = crate::interruptible::run(src.describe(&t, sample));
            let mut columns = vec![
                ImportColumn {
                    name: "_partition".into(),
                    sql_type: "integer".into(),
                    options: vec![],
                },
                ImportColumn {
                    name: "_offset".into(),
                    sql_type: "bigint".into(),
                    options: vec![],
                },
                ImportColumn {
                    name: "_timestamp".into(),
                    sql_type: "timestamptz".into(),
                    options: vec![],
                },
                ImportColumn {
                    name: "_key".into(),
                    sql_type: "text".into(),
                    options: vec![],
                },
                ImportColumn {
                    name: "_headers".into(),
                    sql_type: "jsonb".into(),
                    options: vec![],
                },
            ];
            match described {
                Ok(d) => {
                    for c in d.columns {
                        // Objects, arrays and mixed values stay JSON (Flink keeps them as text).
                        let ty = match c.source_type.as_str() {
                            "json object" | "json array" | "json mixed" => "jsonb".to_string(),
                            _ => crate::fdw::value::pg_type_for_flink(
                                c.flink_type.as_deref().unwrap_or("STRING"),
                            ),
                        };
                        let (name, options) = if c.name.starts_with('_') {
                            (
                                format!("value{}", c.name),
                                vec![(
                                    "path".to_string(),
                                    format!("/{}", c.name.replace('~', "~0").replace('/', "~1")),
                                )],
                            )
                        } else {
                            (c.name.clone(), vec![])
                        };
                        columns.push(ImportColumn {
                            name,
                            sql_type: ty,
                            options,
                        });
                    }
                }
                // No JSON sample (empty topic, text payloads): the whole value as text.
                Err(_) => columns.push(ImportColumn {
                    name: "_value".into(),
                    sql_type: "text".into(),
                    options: vec![],
                }),
            }
            columns.push(ImportColumn {
                name: "_error".into(),
                sql_type: "text".into(),
                options: vec![],
            });
            out.push(ImportTable {
                name: t.clone(),
                columns,
                options: vec![("topic".into(), t)],
            });
        }
        Ok(out)
    }

    fn validate(class: OptClass, opts: &[(String, String)]) -> Result<(), ErrorReport> {
        validate_options(&RULES, class, opts)
    }
}

pub(crate) fn decode_error(
    t: &TableDef,
    topic: &str,
    partition: i32,
    offset: i64,
    message: String,
) -> ErrorReport {
    KafkaFdwError::Decode {
        table: t.name.clone(),
        topic: topic.to_string(),
        partition,
        offset,
        message,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_options_are_checked() {
        let o = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(KafkaFdw::validate(OptClass::Server, &o(&[("brokers", "127.0.0.1:9092")])).is_ok());
        assert!(KafkaFdw::validate(OptClass::Server, &o(&[])).is_err());
        assert!(KafkaFdw::validate(
            OptClass::Server,
            &o(&[("brokers", "x"), ("datasource", "y")])
        )
        .is_err());
        assert!(KafkaFdw::validate(OptClass::Table, &o(&[("format", "json")])).is_err());
        assert!(KafkaFdw::validate(
            OptClass::Table,
            &o(&[("topic", "t"), ("on_error", "maybe")])
        )
        .is_err());
        assert!(KafkaFdw::validate(OptClass::Column, &o(&[("path", "/a/b")])).is_ok());
    }
}
