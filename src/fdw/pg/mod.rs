//! The Postgres side of the wrappers: the FdwRoutine callbacks shared by every
//! [`Wrapper`](crate::fdw::Wrapper), one file per phase of a foreign table's life.
//!
//! Why `pg`: this folder is the boundary between Postgres internals and the pure Rust of the
//! rest of `src/fdw/`. Everything that dereferences a `pg_sys` pointer, calls into the
//! backend or owns Rust state on behalf of an executor node lives here, and nowhere else in
//! the wrappers (the only other `unsafe` is librdkafka's batch API, in `kafka/batch.rs`).
//! The wrappers themselves see [`TableDef`](crate::fdw::TableDef), [`Request`] and
//! [`Val`](crate::fdw::value::Val) only.
//!
//! | file | holds |
//! | --- | --- |
//! | [`routine`] | the FdwRoutine of a wrapper and its option validator (the SQL entry points) |
//! | [`plan`] | GetForeignRelSize/Paths/Plan: WHERE → [`Cond`](crate::fdw::cond::Cond), ORDER BY, LIMIT |
//! | [`cost`] | row estimates, costs, the complete and partial (parallel) paths |
//! | [`scan`] | Begin/Iterate/ReScan/End/ExplainForeignScan |
//! | [`parallel`] | IsForeignScanParallelSafe and the DSM callbacks of parallel scans |
//! | [`modify`] | INSERT/UPDATE/DELETE callbacks |
//! | [`upper`] | aggregate pushdown (GetForeignUpperPaths, the grouped relation's plan) |
//! | [`import`] | IMPORT FOREIGN SCHEMA |
//! | [`datum`] | Postgres datums ↔ [`Val`](crate::fdw::value::Val), supported column types |
//! | [`table_def`] | catalog → [`TableDef`](crate::fdw::TableDef) (server, user mapping, table, columns) |
//! | [`credentials`] | datasource secrets for a server (the security-context switch; see its doc) |
//! | [`util`] | `List`/C-string/option helpers, the memory-context reset callback |
//! | [`xact`] | transaction and subtransaction callbacks forwarded to the wrappers' hooks |
//!
//! Planning stores a JSON [`Request`] in `fdw_private` and the parameter expressions in
//! `fdw_exprs`; every clause also stays a local recheck, so results are always what Postgres
//! would compute. Execution builds fresh state per run, evaluates `fdw_exprs` at the first row
//! of each (re)scan (never in BeginForeignScan: see [`scan`]), and frees its state through a
//! reset callback on the query's memory context if the scan ends in an error.
//!
//! Conventions for the `unsafe` here: every `unsafe fn` has a `# Safety` section; the
//! callbacks' contract is "called by Postgres only, with the arguments of the matching
//! `*_function` typedef of `fdwapi.h`". Bodies of `unsafe fn`s are not split into smaller
//! `unsafe` blocks (edition 2021); every explicit `unsafe` block has a `// SAFETY:` comment.
//!
//! [`Request`]: crate::fdw::cond::Request
mod cost;
pub mod credentials;
mod datum;
mod import;
pub mod input;
mod modify;
mod parallel;
mod plan;
pub mod routine;
mod scan;
mod table_def;
mod upper;
mod util;
pub mod xact;

pub use credentials::{datasource, server_source};
pub use routine::{routine, validate};
