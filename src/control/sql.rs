//! SQL-callable helpers of the control plane, in schema `flink_internal` (not granted to users;
//! called by `flink.start/stop/restart`, which are SECURITY DEFINER).
use super::worker::WORKER_TYPE;
use crate::gucs;
use pgrx::prelude::*;

#[pg_schema]
mod flink_internal {
    use super::*;

    /// Raises a clear error when the control plane cannot act in this database.
    #[pg_extern(volatile)]
    fn require_worker() {
        gucs::require_preloaded("the control plane (flink.start/stop/restart)");
        // SAFETY: RecoveryInProgress reads shared-memory state any backend may read at any time.
        if unsafe { pg_sys::RecoveryInProgress() } {
            crate::errors::raise(
                PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
                "this server is a standby: the desired state of pipelines can only be changed on the primary".to_string(),
                "Connect to the primary and run it there; flink.pipeline_status and the other views are readable here.".to_string(),
                "flink.start",
            );
        }
        let db = Spi::get_one::<String>("SELECT current_database()::text")
            .ok()
            .flatten()
            .unwrap_or_default();
        if !gucs::database_allowed(&db) {
            crate::errors::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("no pg_flink worker serves database \"{db}\": it is not in pg_flink.worker_databases"),
                format!("Add it (ALTER SYSTEM SET pg_flink.worker_databases = '...,{db}'; SELECT pg_reload_conf()), or set the list empty to serve every database."),
                "flink.start",
            );
        }
    }

    /// Wakes this database's worker when the current transaction commits (never on abort), or
    /// starts one if none runs (a new database, CREATE EXTENSION, a restore).
    #[pg_extern(volatile)]
    fn wake_worker_on_commit() {
        if !gucs::preloaded() {
            return;
        }
        let pids: Vec<i32> = Spi::connect(|c| {
            c.select(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = $1 AND datname = current_database()",
                None,
                &[WORKER_TYPE.into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<i32>(1).ok().flatten()).collect())
            .unwrap_or_default()
        });
        if pids.is_empty() {
            // SAFETY: MyDatabaseId is set once the backend is connected and never changes.
            let oid = unsafe { pg_sys::MyDatabaseId };
            pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || {
                // Registering a dynamic worker only writes to shared memory; a full slot table
                // is reported by the launcher, which also retries.
                let _ = crate::control::worker::start(oid);
            });
            return;
        }
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || {
            for pid in pids {
                // SIGUSR1 sets the worker's latch (procsignal handler); never raise here.
                // SAFETY: kill(2) only sends a signal; the pid was read from pg_stat_activity as
                // a pg_flink worker of this database, and a stale pid at worst receives a
                // SIGUSR1 that Postgres processes ignore without a pending procsignal.
                unsafe {
                    libc::kill(pid, libc::SIGUSR1);
                }
            }
        });
    }
}
