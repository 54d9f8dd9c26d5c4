//! pg_flink: PostgreSQL as the control plane and the query surface for Apache Flink.
//!
//! Layout:
//! - [`core`]: pure logic (REST clients, SQL script handling, URL hygiene). No pgrx; unit-tested
//!   with plain `cargo test --lib`.
//! - [`datasource`]: the datasource kinds, one file each (option schema, client, type mapping,
//!   Flink connector), and the catalog's validation. No pgrx.
//! - [`pipeline`]: rendering stored pipelines into Flink SQL scripts, one file per template.
//!   No pgrx.
//! - [`gucs`]: every `pg_flink.*` setting, registered in `_PG_init`.
//! - [`errors`]: how core errors become Postgres `ErrorReport`s (SQLSTATE, message, detail, hint).
//! - [`interruptible`]: runs async network work from a backend, honouring query cancel and
//!   `statement_timeout`.
//! - [`api`]: the SQL-callable functions of schema `flink`.
use pgrx::prelude::*;

pub mod api;
pub mod control;
pub mod core;
pub mod datasource;
pub mod errors;
pub mod fdw;
pub mod flink;
pub mod gucs;
pub mod interruptible;
pub mod pipeline;
pub mod stored;

::pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    if gucs::preloaded() {
        control::launcher::register();
    }
    control::launcher::install_hook();
}

pgrx::extension_sql_file!("../sql/.install.sql", name = "install", finalize);
