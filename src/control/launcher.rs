//! The launcher: one static background worker per instance (started after recovery, so only on a
//! primary) that gives every database where pg_flink is installed a worker of its own, without
//! a server restart — the pattern of TimescaleDB's per-database schedulers.
//!
//! Connected to no database, it scans the shared catalog `pg_database` every
//! `pg_flink.launcher_interval_ms` and:
//! - starts a worker for a database it has not seen yet (the worker exits at once where pg_flink
//!   is not installed), and again for a database whose worker is gone while the registry says it
//!   is served (a crashed worker);
//! - stops the jobs of a database that was dropped (its registry entry names its clusters), unless
//!   a database of the same name exists again (a restore under the same name adopts them).
//!
//! `CREATE EXTENSION` and `flink.start` start their database's worker at commit, so a new
//! database is served at once; `DROP DATABASE` terminates the database's worker first (a
//! `ProcessUtility` hook), since a connected worker would make the drop fail.
use super::cleanup::stop_all_jobs;
use super::registry;
use super::store;
use super::worker::{self, stopping, system_identifier};
use crate::gucs;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub const LAUNCHER_TYPE: &str = "pg_flink launcher";

/// Registers the launcher (from `_PG_init` while preloading).
pub fn register() {
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_library("pg_flink")
        .set_function("pg_flink_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// A row of `pg_database`.
struct Db {
    oid: u32,
    name: String,
    allow: bool,
}

/// Every database, from a catalog scan of `pg_database` (a shared catalog, readable without a
/// database connection).
fn databases() -> Vec<Db> {
    store::in_txn(|| {
        let mut out = Vec::new();
        // SAFETY: inside a transaction (in_txn); the relation is opened and closed with the same
        // lock mode, the scan is ended before the relation is closed, and each tuple returned by
        // heap_getnext is a valid pg_database heap tuple whose fixed-size part is
        // FormData_pg_database (GETSTRUCT), read before the next call invalidates it.
        unsafe {
            let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
            let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, lock);
            let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
            loop {
                let tup = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tup.is_null() {
                    break;
                }
                let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tup);
                let name = std::ffi::CStr::from_ptr((*form).datname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                out.push(Db {
                    oid: (*form).oid.to_u32(),
                    name,
                    allow: (*form).datallowconn && !(*form).datistemplate,
                });
            }
            pg_sys::table_endscan(scan);
            pg_sys::table_close(rel, lock);
        }
        out
    })
    .unwrap_or_default()
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_flink_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warning!("pg_flink launcher: cannot start its network runtime: {e}");
            return;
        }
    };
    log!("pg_flink launcher started");
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut started: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut dropping_since: BTreeMap<u32, Instant> = BTreeMap::new();
    loop {
        if stopping() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: called from the launcher's loop, outside any transaction: the documented
            // way for a background worker to reload its configuration on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scan(&rt, &mut seen, &mut started, &mut dropping_since)
        }));
        if pass.is_err() {
            warning!("pg_flink launcher: a pass failed, continuing");
        }
        if stopping() || !BackgroundWorker::wait_latch(Some(gucs::launcher_interval())) {
            break;
        }
    }
    log!("pg_flink launcher exiting");
}

/// One pass over the databases.
fn scan(
    rt: &tokio::runtime::Runtime,
    seen: &mut BTreeSet<u32>,
    started: &mut BTreeMap<u32, Instant>,
    dropping_since: &mut BTreeMap<u32, Instant>,
) {
    let dbs = databases();
    if dbs.is_empty() {
        return;
    }
    let entries = registry::all();
    let grace = Duration::from_secs(10);
    for db in dbs
        .iter()
        .filter(|d| d.allow && gucs::database_allowed(&d.name))
    {
        let entry = entries.iter().find(|(e, _)| e.oid == db.oid);
        if let Some((_, true)) = entry {
            // DROP DATABASE is under way; if the database is still there after a while, the
            // drop failed: serve it again.
            let since = dropping_since.entry(db.oid).or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(30) {
                registry::unmark_dropping(db.oid);
                dropping_since.remove(&db.oid);
            }
            continue;
        }
        let served = entry.is_some_and(|(e, _)| registry::alive(e.pid));
        let recently = started.get(&db.oid).is_some_and(|t| t.elapsed() < grace);
        let wanted = !seen.contains(&db.oid) || (entry.is_some() && !served);
        if wanted && !recently {
            if worker::start(pg_sys::Oid::from(db.oid)) {
                started.insert(db.oid, Instant::now());
                seen.insert(db.oid);
            } else {
                warning!(
                    "pg_flink launcher: no background worker slot for database \"{}\"; raise max_worker_processes",
                    db.name
                );
            }
        }
    }
    // Dropped databases: stop their jobs, unless a database of the same name exists again.
    let sysid = system_identifier();
    for (e, _) in entries {
        if dbs.iter().any(|d| d.oid == e.oid) {
            continue;
        }
        if !dbs.iter().any(|d| d.name == e.name) {
            // Any oid: a job the database adopted from an earlier one of the same name (restored
            // in place) still carries that one's oid. None of a database that exists (renamed).
            let n = stop_all_jobs(rt, &e, |j| {
                j.system_identifier == sysid
                    && j.database == e.name
                    && !dbs.iter().any(|d| d.oid == j.database_oid)
            });
            log!(
                "pg_flink launcher: database \"{}\" (oid {}) was dropped; cancelled {n} of its jobs",
                e.name,
                e.oid
            );
        }
        registry::remove(e.oid);
        seen.remove(&e.oid);
        dropping_since.remove(&e.oid);
    }
}

// ------------------------------------------------------------------------------- DROP DATABASE

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

/// Installs the `ProcessUtility` hook (from `_PG_init`, once per process).
pub fn install_hook() {
    // SAFETY: _PG_init runs once per process before any query, single-threaded; saving the
    // previous hook and installing ours is the standard chaining protocol.
    unsafe {
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// Before `DROP DATABASE`, the database's worker is terminated (a connected worker makes the
/// drop fail) and its registry entry marked, so the launcher does not restart it; once the
/// database is gone the launcher stops its jobs.
///
/// # Safety
/// Called by Postgres as its `ProcessUtility_hook`, with the arguments of `ProcessUtility`.
#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: pstmt is the statement being executed (valid for the call); utilityStmt is a Node.
    let stmt = unsafe { (*pstmt).utilityStmt };
    // SAFETY: stmt is a valid Node pointer (or NULL, checked by is_a).
    if !stmt.is_null() && unsafe { pgrx::is_a(stmt, pg_sys::NodeTag::T_DropdbStmt) } {
        // SAFETY: the node tag says it is a DropdbStmt; dbname is a NUL-terminated string.
        let name = unsafe {
            let drop = stmt as *mut pg_sys::DropdbStmt;
            std::ffi::CStr::from_ptr((*drop).dbname)
                .to_string_lossy()
                .into_owned()
        };
        before_drop_database(&name);
    }
    // SAFETY: chaining to the previous hook or the standard implementation with the same
    // arguments is the hook protocol.
    unsafe {
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

fn before_drop_database(name: &str) {
    let Ok(Some(oid)) = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT oid FROM pg_catalog.pg_database WHERE datname = $1",
        &[name.into()],
    ) else {
        return;
    };
    if registry::mark_dropping(oid.to_u32()).is_none() {
        return;
    }
    let _ = Spi::run_with_args(
        "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity \
         WHERE backend_type = $1 AND datid = $2",
        &[worker::WORKER_TYPE.into(), oid.into()],
    );
}
