//! `pg_flink_elasticsearch`: Elasticsearch indexes as foreign tables.
//!
//! Scans page with a point in time + `search_after` (bounded memory whatever the result size,
//! no deep from/size, no scroll); WHERE / ORDER BY / LIMIT become query DSL ([`dsl`]);
//! INSERT / UPDATE / DELETE go through the bulk API, buffered until COMMIT (or batched per
//! statement with `transactional 'false'`).
//!
//! | file | holds |
//! | --- | --- |
//! | `mod.rs` | errors and their SQLSTATEs, options, the connection, IMPORT FOREIGN SCHEMA |
//! | [`dsl`] | pure: columns as fields, WHERE / ORDER BY → query DSL, document paths |
//! | `client.rs` | the HTTP client, request errors, reading index mappings |
//! | `mapping.rs` | flattened mappings, their per-backend cache, fields for planning |
//! | `scan.rs` | point-in-time + `search_after` scans |
//! | `write.rs` | INSERT / UPDATE / DELETE through the bulk API |
//! | `txn.rs` | the transaction's buffered bulk actions, sent at COMMIT |
mod agg;
mod client;
pub mod dsl;
mod mapping;
mod scan;
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

pub use scan::EsScan;
pub use write::EsModify;

/// Errors of the Elasticsearch wrapper; each becomes an ErrorReport with a SQLSTATE and hint.
#[derive(Debug, thiserror::Error)]
pub enum EsFdwError {
    #[error("{0}")]
    Unreachable(String),
    #[error("foreign table {table}: index \"{index}\" does not exist")]
    IndexMissing { table: String, index: String },
    #[error("{0}")]
    Timeout(String),
    #[error("foreign table {table}: index \"{index}\" document _id \"{id}\" field \"{field}\": {message}")]
    Conversion {
        table: String,
        index: String,
        id: String,
        field: String,
        message: String,
    },
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Remote(String),
    #[error("{0}")]
    Config(String),
}

impl From<EsFdwError> for ErrorReport {
    fn from(e: EsFdwError) -> ErrorReport {
        let (code, hint) = match &e {
            EsFdwError::Unreachable(_) => (
                PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
                "Check that Elasticsearch is up (scripts/stack.sh status) and the server's url/datasource option.",
            ),
            EsFdwError::IndexMissing { .. } => (
                PgSqlErrorCode::ERRCODE_FDW_TABLE_NOT_FOUND,
                "Check the table's index option; IMPORT FOREIGN SCHEMA lists the indexes that exist.",
            ),
            EsFdwError::Timeout(_) => (
                PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
                "Elasticsearch did not answer in time; check its health, or raise the timeout_ms option.",
            ),
            EsFdwError::Conversion { message, .. } => (
                crate::fdw::sqlstate::of_conversion(message),
                "Declare the column with a type that fits (text or jsonb take anything), or set the table option on_error 'null' to read such values as NULL.",
            ),
            EsFdwError::Rejected(_) => (
                PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                "Elasticsearch rejected these documents (often a mapping conflict); the other documents of the statement were written.",
            ),
            EsFdwError::Remote(_) => (PgSqlErrorCode::ERRCODE_FDW_ERROR, "See the Elasticsearch log for details."),
            EsFdwError::Config(_) => (
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                "Fix the server, user mapping or table options (see docs/elasticsearch-fdw.md).",
            ),
        };
        fdw_error(code, e.to_string(), hint)
    }
}

pub struct EsFdw;

/// The table's columns as Elasticsearch fields (with the cached index mapping).
struct EsPlanner(Vec<(i16, dsl::Field)>);

impl Planner for EsPlanner {
    fn ship(&self, cond: &Cond) -> Ship {
        dsl::ship_with(&self.0, cond)
    }
    fn sort_exact(&self, col: &ColDef) -> bool {
        dsl::sort_exact(&self.0, col.attnum)
    }
    fn aggregate(&self, a: &crate::fdw::agg::AggRequest) -> bool {
        agg::exact(&self.0, a)
    }
}

const SERVER_OPTS: &[OptSpec] = &[
    opt(
        "datasource",
        OptType::Str,
        "a catalog datasource of kind elasticsearch",
    ),
    opt(
        "url",
        OptType::Url,
        "the cluster URL, e.g. http://127.0.0.1:9200",
    ),
    opt(
        "timeout_ms",
        POSITIVE,
        "the bound of requests in milliseconds",
    ),
    opt("batch_size", POSITIVE, "documents per page"),
    opt(
        "transactional",
        OptType::Bool,
        "writes are buffered and sent at COMMIT (default true); false: sent during the statement",
    ),
    opt(
        "max_buffered_bytes",
        POSITIVE,
        "the bound of a transaction's buffered writes in bytes (default 64 MB)",
    ),
];
const USER_OPTS: &[OptSpec] = &[
    opt("username", OptType::Str, "the user name (basic auth)"),
    opt("password", OptType::Str, "the password (basic auth)"),
    opt("api_key", OptType::Str, "an API key"),
];
const TABLE_OPTS: &[OptSpec] = &[
    opt("index", OptType::Str, "an index, alias or pattern"),
    opt(
        "query",
        OptType::Str,
        "a base query (JSON DSL) ANDed with every WHERE",
    ),
    opt("batch_size", POSITIVE, "documents per page"),
    opt(
        "timeout_ms",
        POSITIVE,
        "the bound of requests in milliseconds",
    ),
    opt(
        "on_error",
        OptType::Exact(&["error", "null"]),
        "what a value that does not fit its column does",
    ),
    opt(
        "refresh",
        OptType::Exact(&["true", "false", "wait_for"]),
        "the refresh policy of writes",
    ),
    opt(
        "transactional",
        OptType::Bool,
        "writes are buffered and sent at COMMIT (default true); false: sent during the statement",
    ),
    opt(
        "max_buffered_bytes",
        POSITIVE,
        "the bound of a transaction's buffered writes in bytes (default 64 MB)",
    ),
];
const COLUMN_OPTS: &[OptSpec] = &[
    opt("field", OptType::Str, "the document field (dotted path)"),
    opt("es_type", OptType::Str, "the Elasticsearch field type"),
];
const RULES: OptionRules = OptionRules {
    wrapper: "pg_flink_elasticsearch",
    server: SERVER_OPTS,
    user: USER_OPTS,
    table: TABLE_OPTS,
    column: COLUMN_OPTS,
    server_one_of: ("datasource", "url"),
    table_requires: "index",
};

/// The Elasticsearch connection of a table's server: a catalog datasource, or a URL with
/// credentials in the user mapping.
pub(crate) fn source(t: &TableDef) -> Result<Source, ErrorReport> {
    pg::server_source(t, &RULES, Kind::Elasticsearch, |url| {
        let mut options = serde_json::Map::new();
        options.insert("url".into(), Value::from(url));
        if let Some(u) = t.user_opts.get("username") {
            options.insert("username".into(), Value::from(u.as_str()));
        }
        let mut secrets = serde_json::Map::new();
        for k in ["password", "api_key"] {
            if let Some(v) = t.user_opts.get(k) {
                secrets.insert(k.into(), Value::from(v.as_str()));
            }
        }
        Source {
            name: t.server.clone(),
            kind: Kind::Elasticsearch,
            options,
            secrets,
        }
    })
}

pub(crate) fn index(t: &TableDef) -> Result<String, ErrorReport> {
    t.table_opts.get("index").cloned().ok_or_else(|| {
        EsFdwError::Config(format!("foreign table {} needs option index", t.name)).into()
    })
}

/// The table's base `query` option, parsed.
pub(crate) fn base_query(t: &TableDef) -> Result<Option<Value>, ErrorReport> {
    match t.table_opts.get("query") {
        None => Ok(None),
        Some(q) => serde_json::from_str::<Value>(q)
            .ok()
            .filter(Value::is_object)
            .map(Some)
            .ok_or_else(|| {
                EsFdwError::Config(format!(
                    "foreign table {}: option query is not a JSON object (query DSL)",
                    t.name
                ))
                .into()
            }),
    }
}

impl Wrapper for EsFdw {
    const LABEL: &'static str = "Elasticsearch";
    const UPDATABLE: bool = true;

    fn planner(table: &TableDef) -> Box<dyn Planner> {
        Box::new(EsPlanner(mapping::plan_fields(table)))
    }

    fn begin_scan(table: TableDef, req: Request) -> Result<Box<dyn Scan>, ErrorReport> {
        if let Some(a) = req.agg.clone() {
            return Ok(Box::new(agg::EsAggScan::new(table, req, a)?));
        }
        Ok(Box::new(EsScan::new(table, req)?))
    }

    fn begin_modify(table: TableDef) -> Result<Box<dyn Modify>, ErrorReport> {
        Ok(Box::new(EsModify::new(table)?))
    }

    fn import(
        server: &TableDef,
        remote_schema: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ImportTable>, ErrorReport> {
        let src = source(server)?;
        let pattern = match remote_schema {
            "" | "_all" | "*" | "public" => "*",
            p => p,
        };
        let mappings = client::mappings(&src, pattern)?;
        let mut out = vec![];
        for (index, props) in mappings {
            if index.starts_with('.') || !keep(&index) {
                continue;
            }
            let mut columns = vec![ImportColumn {
                name: "_id".into(),
                sql_type: "text".into(),
                options: vec![],
            }];
            let mut names: Vec<&String> = props.keys().collect();
            names.sort();
            for name in names {
                if name.starts_with('_') {
                    continue;
                }
                let f = &props[name.as_str()];
                let es_type = match f.get("type").and_then(Value::as_str) {
                    Some(t) => t,
                    None if f.get("properties").is_some() => "object",
                    None => "object",
                };
                let sql_type = dsl::pg_type_for_es(es_type).to_string();
                let mut options = vec![("es_type".to_string(), es_type.to_string())];
                if sql_type == "jsonb" {
                    options.clear();
                }
                columns.push(ImportColumn {
                    name: name.clone(),
                    sql_type,
                    options,
                });
            }
            columns.push(ImportColumn {
                name: "_score".into(),
                sql_type: "double precision".into(),
                options: vec![],
            });
            columns.push(ImportColumn {
                name: "_index".into(),
                sql_type: "text".into(),
                options: vec![],
            });
            out.push(ImportTable {
                name: index.clone(),
                columns,
                options: vec![("index".into(), index)],
            });
        }
        Ok(out)
    }

    fn validate(class: OptClass, opts: &[(String, String)]) -> Result<(), ErrorReport> {
        validate_options(&RULES, class, opts)?;
        for (k, v) in opts {
            if k == "url" {
                crate::core::urls::parse_base_url(v)
                    .map_err(|e| EsFdwError::Config(format!("option url: {e}")))?;
            }
            if k == "query" && !serde_json::from_str::<Value>(v).is_ok_and(|q| q.is_object()) {
                return Err(
                    EsFdwError::Config(format!("option query is not a JSON object: {v}")).into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let o = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(EsFdw::validate(OptClass::Server, &o(&[("url", "http://127.0.0.1:9200")])).is_ok());
        assert!(EsFdw::validate(OptClass::Server, &o(&[("url", "ftp://x")])).is_err());
        assert!(EsFdw::validate(
            OptClass::Table,
            &o(&[("index", "i"), ("query", "{\"term\": {}}")])
        )
        .is_ok());
        assert!(EsFdw::validate(OptClass::Table, &o(&[("index", "i"), ("query", "[1]")])).is_err());
        assert!(EsFdw::validate(OptClass::Table, &o(&[("query", "{}")])).is_err());
        assert!(EsFdw::validate(
            OptClass::Column,
            &o(&[("field", "a.b"), ("es_type", "keyword")])
        )
        .is_ok());
    }
}
