//! IMPORT FOREIGN SCHEMA: asks the wrapper for the remote tables (topics, indexes) and
//! returns one `CREATE FOREIGN TABLE` statement per table, which Postgres then runs in the
//! target schema.
use super::table_def::server_def;
use super::util::{cstr, list_ptrs};
use crate::fdw::{import_ddl, Wrapper};
use crate::interruptible::ReportError;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use std::ffi::{c_void, CString};
use std::ptr;

/// ImportForeignSchema: the DDL of the remote tables `stmt` selects (LIMIT TO / EXCEPT), as a
/// `List` of C strings palloc'd in the current memory context.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ImportForeignSchema_function`: `stmt` is
/// the parsed statement (its `table_list` a list of `RangeVar`).
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn import_foreign_schema<W: Wrapper>(
    stmt: *mut pg_sys::ImportForeignSchemaStmt,
    server_oid: Oid,
) -> *mut pg_sys::List {
    let server = server_def(server_oid);
    let remote = cstr((*stmt).remote_schema);
    let names: Vec<String> = list_ptrs((*stmt).table_list)
        .into_iter()
        .map(|rv| cstr((*(rv as *mut pg_sys::RangeVar)).relname))
        .collect();
    let mode = (*stmt).list_type;
    let keep = |t: &str| match mode {
        pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_LIMIT_TO => names.iter().any(|n| n == t),
        pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_EXCEPT => !names.iter().any(|n| n == t),
        _ => true,
    };
    let tables = match W::import(&server, &remote, &keep) {
        Ok(t) => t,
        Err(e) => e.report_error(),
    };
    let mut out: *mut pg_sys::List = ptr::null_mut();
    for t in tables {
        let ddl = CString::new(import_ddl(&server.server, &t)).unwrap_or_default();
        out = pg_sys::lappend(out, pg_sys::pstrdup(ddl.as_ptr()) as *mut c_void);
    }
    out
}
