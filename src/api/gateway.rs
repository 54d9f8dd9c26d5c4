//! `flink.execute_sql()`: runs a Flink SQL script through the SQL Gateway in one session.
//! Superuser-only by default (it can do anything the Flink cluster can); see docs/sql.md.
use crate::core::script::split_statements;
use crate::errors::{raise, raise_rest};
use crate::flink::{Gateway, ScriptError};
use crate::gucs;
use crate::interruptible::{self, ReportError};
use pgrx::prelude::*;
use pgrx::JsonB;

type Row = (
    i32,
    String,
    String,
    Option<String>,
    Vec<String>,
    JsonB,
    bool,
);

/// Splits `script` into statements and runs them in order in one gateway session; stops at the
/// first failing statement (its error names the statement number).
#[pg_schema]
mod flink {
    use super::*;

    // pgrx needs the named columns spelled out in the signature.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn execute_sql(
        script: &str,
        gateway_url: default!(Option<&str>, "NULL"),
        max_rows: default!(i32, 100),
    ) -> TableIterator<
        'static,
        (
            name!(statement_no, i32),
            name!(statement, String),
            name!(result_kind, String),
            name!(job_id, Option<String>),
            name!(columns, Vec<String>),
            name!(rows, JsonB),
            name!(truncated, bool),
        ),
    > {
        let statements = split_statements(script);
        if statements.is_empty() {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "flink.execute_sql: argument script holds no statement",
                "Pass one or more Flink SQL statements separated by semicolons.",
                "flink.execute_sql",
            );
        }
        if max_rows < 0 {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("flink.execute_sql: argument max_rows must be >= 0, got {max_rows}"),
                "Use 0 to discard rows, or a positive row limit per statement.",
                "flink.execute_sql",
            );
        }
        let url = gateway_url
            .map(str::to_string)
            .unwrap_or_else(gucs::gateway_url);
        let limits = gucs::http_limits();
        let wait = gucs::statement_wait();
        let out = interruptible::run(async move {
            let gw = Gateway::new(&url, limits).map_err(|error| ScriptError {
                statement: None,
                error,
            })?;
            gw.run_script("pg_flink execute_sql", &statements, max_rows as usize, wait)
                .await
                .map(|results| {
                    results
                        .into_iter()
                        .zip(statements.iter())
                        .enumerate()
                        .map(|(i, (r, stmt))| -> Row {
                            (
                                (i + 1) as i32,
                                stmt.clone(),
                                r.result_kind,
                                r.job_id,
                                r.columns,
                                JsonB(serde_json::Value::Array(r.rows)),
                                r.truncated,
                            )
                        })
                        .collect::<Vec<Row>>()
                })
        });
        match out {
            Ok(rows) => TableIterator::new(rows),
            Err(ScriptError {
                statement: None,
                error,
            }) => raise_rest(&error, "flink.execute_sql"),
            Err(ScriptError {
                statement: Some(n),
                error,
            }) => crate::errors::rest_error_report_in(
                &error,
                &format!("statement {n} of the script failed: "),
                "flink.execute_sql",
            )
            .report_error(),
        }
    }
}
