//! pg_flink's foreign-data wrappers: Kafka topics and Elasticsearch indexes as tables.
//!
//! Why our own planner/executor glue instead of supabase-wrappers' `ForeignDataWrapper` scan
//! path: the only release that builds with rustc 1.95 (0.1.28) keeps its scan state as a raw
//! pointer inside the plan and frees it at the end of the first execution, so a cached plan
//! (a prepared statement run a sixth time, a plpgsql query) reads freed memory (upstream
//! supabase/wrappers#645, fixed in 0.2.x, which needs rustc 1.97). It also pushes LIMIT below
//! joins and unshipped filters, and its EXPLAIN cannot show the remote request. Here the plan
//! carries a JSON [`cond::Request`] plus the parameter expressions (`fdw_exprs`), so every
//! execution rebuilds its own state; the only supabase-wrappers type used is `FdwRoutine`
//! (the `fdw_handler` SQL type).
//!
//! Layout:
//!
//! - [`value`] and [`cond`] are pure (no pgrx): the values that cross the planner/executor
//!   boundary and the conditions/request a scan carries in its plan. [`txn`] (pure too) is
//!   the subtransaction bookkeeping of writes that follow the Postgres transaction.
//! - [`pg`] is the Postgres side, one file per phase (planning, scans, modifications,
//!   IMPORT FOREIGN SCHEMA, the FdwRoutine and validators, datum conversion, catalog reads,
//!   and the datasource-credentials security switch alone in `pg/credentials.rs`). It holds
//!   all of the wrappers' Postgres `unsafe`.
//! - Each wrapper lives in its own folder and implements [`Wrapper`]: `mod.rs` (errors,
//!   options, connection, IMPORT), pure planning (`kafka/plan.rs` partition/offset bounds,
//!   `elasticsearch/dsl/` query DSL) with unit tests, the message/document codec
//!   (`kafka/codec.rs`; Elasticsearch documents go through [`value::JsonFields`] and `dsl`),
//!   the remote client where there is one (`elasticsearch/client.rs`, `mapping.rs`;
//!   `kafka/batch.rs` for librdkafka's batch API), `scan.rs` (reads) and `write.rs` (writes).
//!
//! Adding an option: list it in the wrapper's `*_OPTS` table in `<wrapper>/mod.rs` (an
//! [`OptSpec`] of the catalog's option schema, `datasource::schema`: the validator then accepts
//! and checks it), then read it where it is used with
//! [`TableDef::opt`] (table, else server), `table_opts`/`server_opts`/`user_opts`, or
//! [`int_opt`] for positive integers.
// Errors here are `ErrorReport`s (SQLSTATE, message, detail, hint), built once per failing
// statement and raised as they are; boxing them would only add noise to every signature.
#![allow(clippy::result_large_err)]

pub mod agg;
pub mod cond;
pub mod elasticsearch;
pub mod kafka;
pub mod pg;
pub mod sqlstate;
pub mod txn;
pub mod value;

use crate::datasource::schema::{check_value, OptSpec, OptType};
use cond::{Cond, Request};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;
use serde_json::Value;
use std::collections::BTreeMap;
use value::{PgType, Val};

pub type Opts = BTreeMap<String, String>;

/// A column of a foreign table.
#[derive(Debug, Clone)]
pub struct ColDef {
    pub name: String,
    pub attnum: i16,
    /// None: a type the wrappers do not fill (an error if the query reads the column).
    pub ty: Option<PgType>,
    pub type_name: String,
    pub type_oid: u32,
    /// The column's `atttypmod` (-1: none), e.g. `numeric(10,2)`, `timestamp(3)`.
    pub typmod: i32,
    pub opts: Opts,
}

/// Everything a wrapper needs to know about a foreign table (or a server, for IMPORT).
#[derive(Debug, Clone, Default)]
pub struct TableDef {
    /// `schema.table` as users wrote it (for messages).
    pub name: String,
    pub server: String,
    pub server_oid: u32,
    pub server_owner: u32,
    pub server_opts: Opts,
    pub table_opts: Opts,
    pub user_opts: Opts,
    pub columns: Vec<ColDef>,
}

impl TableDef {
    pub fn col(&self, attnum: i16) -> Option<&ColDef> {
        self.columns.iter().find(|c| c.attnum == attnum)
    }
    pub fn col_named(&self, name: &str) -> Option<&ColDef> {
        self.columns.iter().find(|c| c.name == name)
    }
    /// A table option, else the server option of the same name.
    pub fn opt(&self, key: &str) -> Option<&str> {
        self.table_opts
            .get(key)
            .or_else(|| self.server_opts.get(key))
            .map(String::as_str)
    }
}

/// How well a wrapper can evaluate a condition remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ship {
    /// Not at all: Postgres filters.
    No,
    /// Remotely, as a superset of the matching rows (Postgres rechecks).
    Superset,
    /// Remotely and exactly as Postgres would: LIMIT may be shipped too.
    Exact,
}

/// Which option list a validator call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptClass {
    Wrapper,
    Server,
    UserMapping,
    Table,
    Column,
}

/// A table IMPORT FOREIGN SCHEMA creates.
#[derive(Debug, Clone)]
pub struct ImportTable {
    pub name: String,
    pub columns: Vec<ImportColumn>,
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ImportColumn {
    pub name: String,
    pub sql_type: String,
    pub options: Vec<(String, String)>,
}

/// A scan of one execution. [`Wrapper::begin_scan`] prepares it without contacting the remote
/// side; `start` opens (or reopens) the remote scan with the parameter values, and `next` fills
/// `row` (one slot per wanted column, in `Request::wanted` order).
///
/// The Postgres glue calls `start` at the first row of an execution and again at the first row
/// after every rescan: only then are the values of initplans and of a nested loop's outer row
/// set. `next` is only called after a successful `start`; EXPLAIN without ANALYZE calls
/// neither.
pub trait Scan {
    /// Opens the remote scan for `req`, which is resolved (no parameters left), closing the
    /// previous one if any (a rescan: new parameter values, and a new snapshot).
    fn start(&mut self, req: &Request) -> Result<(), ErrorReport>;
    fn next(&mut self, row: &mut [Val]) -> Result<bool, ErrorReport>;
    /// EXPLAIN lines (label, value): the request of the last `start`, or the planned one
    /// (parameters as placeholders) if the scan never started.
    fn explain(&mut self, verbose: bool, analyze: bool) -> Vec<(String, String)>;

    // Parallel scans (wrappers with `Wrapper::PARALLEL`; see `pg/parallel.rs`). The leader
    // calls `units` once per parallel execution; then every participant (leader and workers,
    // each with its own `Scan`) claims units one at a time and reads each with `start_unit`
    // and `next` (false at the unit's end). `start` is not called in a parallel execution.

    /// Resolves the (resolved: no parameters) `req` into work units, the snapshot all
    /// participants share; `participants` (workers planned + the leader) is a hint for how
    /// finely to split.
    fn units(&mut self, _req: &Request, _participants: usize) -> Result<Vec<Unit>, ErrorReport> {
        Err(fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            "this foreign table cannot be scanned in parallel",
            "Plan the query without parallel workers (SET max_parallel_workers_per_gather = 0).",
        ))
    }
    /// Opens the remote read of exactly `unit` (replacing the one open, if any) for `req`,
    /// the same request `units` resolved.
    fn start_unit(&mut self, _req: &Request, _unit: &Unit) -> Result<(), ErrorReport> {
        Err(fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            "this foreign table cannot be scanned in parallel",
            "Plan the query without parallel workers (SET max_parallel_workers_per_gather = 0).",
        ))
    }
    /// Remote items this participant fetched so far in parallel mode (summed over units).
    fn fetched(&self) -> u64 {
        0
    }
    /// The leader's scan learns what every participant did, once the workers are done
    /// (shown by EXPLAIN ANALYZE).
    fn parallel_stats(&mut self, _stats: ParallelStats) {}
}

/// A piece of a parallel scan one participant reads at a time: the items of shard `part`
/// (a Kafka partition) with positions (offsets) in `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub part: i32,
    pub start: i64,
    pub end: i64,
}

/// What the participants of a parallel scan did (summed over its rescans).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParallelStats {
    /// Work units of the snapshot.
    pub units: u32,
    /// Units read and items fetched by the leader.
    pub leader_units: u64,
    pub leader_fetched: u64,
    /// Per worker (by worker number): units read, items fetched.
    pub workers: Vec<(u64, u64)>,
}

/// An open INSERT/UPDATE/DELETE; rows are buffered and sent in batches, `finish` flushes.
/// Writes that follow the Postgres transaction also enlist a hook with
/// [`pg::xact::enlist`] (Kafka: one Kafka transaction per Postgres transaction; Elasticsearch:
/// actions buffered until COMMIT), fed by the pure bookkeeping of [`txn`].
pub trait Modify {
    fn insert(&mut self, row: &[(i16, Val)]) -> Result<(), ErrorReport>;
    fn update(&mut self, _id: &Val, _row: &[(i16, Val)]) -> Result<(), ErrorReport> {
        Err(fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION,
            "UPDATE is not supported by this foreign table",
            "Only INSERT is supported.",
        ))
    }
    fn delete(&mut self, _id: &Val) -> Result<(), ErrorReport> {
        Err(fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION,
            "DELETE is not supported by this foreign table",
            "Only INSERT is supported.",
        ))
    }
    fn finish(&mut self) -> Result<(), ErrorReport>;
}

/// Plan-time questions about one foreign table.
pub trait Planner {
    /// How well a condition goes remote.
    fn ship(&self, cond: &Cond) -> Ship;
    /// Can the remote side sort by this column exactly like Postgres?
    fn sort_exact(&self, col: &ColDef) -> bool;
    /// Can the remote side compute this aggregation exactly like Postgres (given that every
    /// WHERE clause is shipped exactly)? None of them can by default.
    fn aggregate(&self, _agg: &agg::AggRequest) -> bool {
        false
    }
    /// Rows a scan of `req` (parameters unresolved) will fetch, if the remote side can tell
    /// quickly; None keeps the generic guess. Must neither fail nor wait long.
    fn estimate_rows(&self, _req: &Request) -> Option<f64> {
        None
    }
}

/// A foreign-data wrapper of pg_flink.
pub trait Wrapper: 'static {
    /// Wrapper name in messages ("Kafka", "Elasticsearch").
    const LABEL: &'static str;
    /// Can UPDATE and DELETE (by `_id`) run?
    const UPDATABLE: bool;
    /// Can a scan be shared by parallel workers (the [`Scan`] parallel methods)? Without it
    /// the wrapper's scans never run in a parallel worker.
    const PARALLEL: bool = false;
    /// What the remote side can do for this table; built once per planned relation (it may
    /// read the catalog or the remote schema).
    fn planner(table: &TableDef) -> Box<dyn Planner>;
    /// Prepares a scan of `table` for the planned `req` (which may hold parameters, see
    /// [`cond::Operand::Param`]) without contacting the remote side; see [`Scan`].
    fn begin_scan(table: TableDef, req: Request) -> Result<Box<dyn Scan>, ErrorReport>;
    fn begin_modify(table: TableDef) -> Result<Box<dyn Modify>, ErrorReport>;
    /// Planner costs of a scan fetching `rows` rows and decoding `cols` columns of each:
    /// (startup, per row). The default is a flat guess.
    fn costs(_rows: f64, _cols: usize) -> (f64, f64) {
        (100.0, 0.05)
    }
    /// Tables of `remote_schema` (filtered by `keep`), for IMPORT FOREIGN SCHEMA.
    fn import(
        server: &TableDef,
        remote_schema: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ImportTable>, ErrorReport>;
    fn validate(class: OptClass, opts: &[(String, String)]) -> Result<(), ErrorReport>;
}

/// An ERROR for a wrapper failure.
pub fn fdw_error(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> ErrorReport {
    ErrorReport::new(code, message, "pg_flink fdw").set_hint(hint)
}

/// Checks option names and values against an option table (the option schema the catalog uses:
/// [`OptSpec`]). Unknown names and invalid values are HV00D errors naming the object and option.
pub fn check_options(
    rules: &OptionRules,
    what: &str,
    opts: &[(String, String)],
    allowed: &[OptSpec],
) -> Result<(), ErrorReport> {
    for (k, v) in opts {
        let Some(spec) = allowed.iter().find(|s| s.key == k) else {
            let names: Vec<&str> = allowed.iter().map(|s| s.key).collect();
            return Err(fdw_error(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                format!("invalid {what} option \"{k}\""),
                if names.is_empty() {
                    format!("{what} takes no options.")
                } else {
                    format!("Valid {what} options: {}.", names.join(", "))
                },
            ));
        };
        // Option values are text; the schema checks them as JSON strings (booleans as such).
        let value = match (spec.ty, v.as_str()) {
            (OptType::Bool, "true" | "on") => Value::Bool(true),
            (OptType::Bool, "false" | "off") => Value::Bool(false),
            _ => Value::String(v.clone()),
        };
        if let Err(e) = check_value(&format!("{} {what}", rules.wrapper), spec, &value) {
            return Err(fdw_error(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                e.message,
                e.hint,
            ));
        }
    }
    Ok(())
}

/// The options a wrapper accepts, per object, and the ones it requires.
pub struct OptionRules {
    pub wrapper: &'static str,
    pub server: &'static [OptSpec],
    pub user: &'static [OptSpec],
    pub table: &'static [OptSpec],
    pub column: &'static [OptSpec],
    /// A server takes exactly one of these (a catalog datasource, or a direct address).
    pub server_one_of: (&'static str, &'static str),
    /// A table needs this one.
    pub table_requires: &'static str,
}

/// Validates one option list (CREATE/ALTER of a server, user mapping, table or column).
pub fn validate_options(
    rules: &OptionRules,
    class: OptClass,
    opts: &[(String, String)],
) -> Result<(), ErrorReport> {
    let (what, allowed) = match class {
        OptClass::Wrapper => ("foreign-data wrapper", &[][..]),
        OptClass::Server => ("server", rules.server),
        OptClass::UserMapping => ("user mapping", rules.user),
        OptClass::Table => ("foreign table", rules.table),
        OptClass::Column => ("column", rules.column),
    };
    check_options(rules, what, opts, allowed)?;
    let has = |k: &str| opts.iter().any(|(n, _)| n == k);
    let missing = |msg: String, hint: String| {
        Err(fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_OPTION_NAME_NOT_FOUND,
            msg,
            hint,
        ))
    };
    let (a, b) = rules.server_one_of;
    match class {
        OptClass::Server if !has(a) && !has(b) => missing(
            format!("a {} server needs option {a} or {b}", rules.wrapper),
            format!("Name a catalog datasource ({a} 'name') or give {b} directly."),
        ),
        OptClass::Server if has(a) && has(b) => Err(fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
            format!(
                "a {} server takes either {a} or {b}, not both",
                rules.wrapper
            ),
            format!("With {a}, the connection comes from the catalog; drop {b}."),
        )),
        OptClass::Table if !has(rules.table_requires) => missing(
            format!(
                "a {} foreign table needs option {}",
                rules.wrapper, rules.table_requires
            ),
            format!("Add OPTIONS ({} '…').", rules.table_requires),
        ),
        _ => Ok(()),
    }
}

/// Parses a positive integer option (already validated) with a default.
pub fn int_opt(table: &TableDef, key: &str, default: i64) -> i64 {
    table
        .opt(key)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// Postgres identifier quoting for generated DDL (IMPORT FOREIGN SCHEMA).
pub fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Postgres literal quoting (standard_conforming_strings is on since 9.1).
pub fn pg_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The CREATE FOREIGN TABLE statement for an imported table.
pub fn import_ddl(server: &str, t: &ImportTable) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let mut s = format!("{} {}", pg_ident(&c.name), c.sql_type);
            if !c.options.is_empty() {
                let o: Vec<String> = c
                    .options
                    .iter()
                    .map(|(k, v)| format!("{} {}", pg_ident(k), pg_literal(v)))
                    .collect();
                s.push_str(&format!(" OPTIONS ({})", o.join(", ")));
            }
            s
        })
        .collect();
    let opts: Vec<String> = t
        .options
        .iter()
        .map(|(k, v)| format!("{} {}", pg_ident(k), pg_literal(v)))
        .collect();
    format!(
        "CREATE FOREIGN TABLE {} (\n  {}\n) SERVER {} OPTIONS ({})",
        pg_ident(&t.name),
        cols.join(",\n  "),
        pg_ident(server),
        opts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ddl_quotes_everything() {
        let t = ImportTable {
            name: "we\"ird".into(),
            columns: vec![ImportColumn {
                name: "a.b".into(),
                sql_type: "text".into(),
                options: vec![("path".into(), "it's".into())],
            }],
            options: vec![("topic".into(), "t'1".into())],
        };
        assert_eq!(
            import_ddl("srv", &t),
            "CREATE FOREIGN TABLE \"we\"\"ird\" (\n  \"a.b\" text OPTIONS (\"path\" 'it''s')\n) SERVER \"srv\" OPTIONS (\"topic\" 't''1')"
        );
    }

    #[test]
    fn option_checks_name_the_option() {
        use crate::datasource::schema::{opt, POSITIVE};
        let allowed = [
            opt("batch_size", POSITIVE, "rows per request"),
            opt(
                "format",
                OptType::Exact(&["json", "text"]),
                "the message format",
            ),
        ];
        let rules = OptionRules {
            wrapper: "w",
            server: &[],
            user: &[],
            table: &[],
            column: &[],
            server_one_of: ("a", "b"),
            table_requires: "t",
        };
        let check =
            |k: &str, v: &str| check_options(&rules, "table", &[(k.into(), v.into())], &allowed);
        assert!(check("batch_size", "10").is_ok());
        let e = check("format", "xml").unwrap_err();
        assert!(
            e.message()
                .contains("w table: option \"format\" must be one of json, text"),
            "{}",
            e.message()
        );
        for bad in [
            ("batch_size", "0"),
            ("batch_size", "x"),
            ("format", "xml"),
            ("format", "JSON"),
            ("nope", "1"),
        ] {
            assert!(check(bad.0, bad.1).is_err(), "{bad:?}");
        }
    }
}
