//! Transaction callbacks: the wrappers' writes follow the Postgres transaction.
//!
//! A wrapper that writes in a transaction calls [`enlist`] with a hook. The first call in a
//! backend registers one `XactCallback` and one `SubXactCallback` with Postgres
//! (`RegisterXactCallback`, permanent for the backend, as postgres_fdw does); they forward
//! [`XactEvent`]s to every enlisted hook. Hooks stay enlisted (a hook with nothing pending
//! returns at once), so a backend pays for the registration once.
//!
//! Why not `pgrx::register_xact_callback`: its closures are one-shot per transaction, but the
//! subtransaction hooks it offers stay registered across transactions and panic on unknown
//! events; here the state lives with each wrapper (thread-locals of `kafka/txn.rs` and
//! `elasticsearch/txn.rs`) and the glue only forwards events.
//!
//! Order at pre-commit: hooks run by their `order` (Elasticsearch's bulk requests, which can be
//! rejected per document, before Kafka's commit, which is atomic), so a rejected document
//! stops the commit before Kafka's messages become visible.
use crate::fdw::txn::{SubId, XactEvent};
use crate::interruptible::ReportError;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;

/// A wrapper's transaction hook.
pub type Hook = fn(XactEvent) -> Result<(), ErrorReport>;

#[derive(Clone, Copy)]
struct Enlisted {
    name: &'static str,
    order: u8,
    hook: Hook,
}

thread_local! {
    static HOOKS: RefCell<Vec<Enlisted>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Makes sure `hook` (named `name`, run in ascending `order`) hears about every transaction
/// event of this backend from now on.
pub fn enlist(name: &'static str, order: u8, hook: Hook) {
    if !REGISTERED.get() {
        // SAFETY: registering a static callback with a NULL argument; Postgres keeps it in a
        // backend-local list for the life of the backend. REGISTERED makes it happen once.
        unsafe {
            pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
        }
        REGISTERED.set(true);
    }
    HOOKS.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            if !h.iter().any(|e| e.name == name) {
                h.push(Enlisted { name, order, hook });
                h.sort_by_key(|e| e.order);
            }
        }
    });
}

/// The current subtransaction's id ([`TOP_SUB`](crate::fdw::txn::TOP_SUB) outside any).
pub fn current_sub() -> SubId {
    // SAFETY: reads a field of the backend's current transaction state; always valid in a
    // backend executing a statement.
    unsafe { pg_sys::GetCurrentSubTransactionId() }
}

/// The backend's process id (for Kafka's `transactional.id`).
pub fn backend_pid() -> i32 {
    // SAFETY: MyProcPid is a plain int set at backend start and never changed.
    unsafe { pg_sys::MyProcPid }
}

/// The cluster's system identifier (for Kafka's `transactional.id`).
pub fn system_identifier() -> u64 {
    // SAFETY: reads the control file's system identifier, loaded at startup.
    unsafe { pg_sys::GetSystemIdentifier() }
}

/// The current database's oid and the current user's oid.
pub fn database_and_user() -> (u32, u32) {
    // SAFETY: MyDatabaseId is set once the backend is connected to a database (always, for a
    // statement on a foreign table); GetUserId reads the current user of the backend.
    unsafe { (pg_sys::MyDatabaseId.to_u32(), pg_sys::GetUserId().to_u32()) }
}

fn hooks() -> Vec<Enlisted> {
    HOOKS.with(|h| h.try_borrow().map(|h| h.clone()).unwrap_or_default())
}

/// Forwards `ev` to every hook. At pre-commit/pre-prepare the first error is raised (aborting
/// the transaction); otherwise errors are only logged: nothing may raise after the abort or
/// commit point.
fn dispatch(ev: XactEvent) {
    let may_raise = matches!(ev, XactEvent::PreCommit | XactEvent::PrePrepare);
    for e in hooks() {
        if let Err(err) = (e.hook)(ev) {
            if may_raise {
                err.report_error();
            }
            pgrx::warning!("pg_flink {}: {}", e.name, err.message());
        }
    }
}

/// Postgres' transaction callback.
///
/// # Safety
/// Called by Postgres only, as an `XactCallback` (registered in [`enlist`]).
#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    let ev = match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT => XactEvent::PreCommit,
        pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => XactEvent::PrePrepare,
        pg_sys::XactEvent::XACT_EVENT_ABORT => XactEvent::Abort,
        // After a successful pre-commit nothing is pending; a PREPARE was refused if
        // anything was. Parallel workers never write to foreign tables.
        _ => return,
    };
    dispatch(ev);
}

/// Postgres' subtransaction callback.
///
/// # Safety
/// Called by Postgres only, as a `SubXactCallback` (registered in [`enlist`]).
#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    let ev = match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => XactEvent::SubCommit { sub, parent },
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => XactEvent::SubAbort { sub, parent },
        _ => return,
    };
    dispatch(ev);
}

/// A hook's error for `PREPARE TRANSACTION` with pending writes.
pub fn prepare_refused(what: &str) -> ErrorReport {
    crate::fdw::fdw_error(
        pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("cannot PREPARE a transaction that wrote to {what}"),
        "Foreign-table writes commit with the Postgres transaction but not in two phases; COMMIT instead of PREPARE TRANSACTION.",
    )
}
