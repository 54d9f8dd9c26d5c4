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
        let db = Spi::get_one::<String>("SELECT current_database()::text")
            .ok()
            .flatten()
            .unwrap_or_default();
        if !gucs::worker_databases().iter().any(|d| d == &db) {
            crate::errors::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("no pg_flink worker serves database \"{db}\""),
                format!("Add it to pg_flink.worker_databases (ALTER SYSTEM SET pg_flink.worker_databases = '...,{db}') and restart PostgreSQL."),
                "flink.start",
            );
        }
    }

    /// Wakes this database's worker when the current transaction commits (never on abort).
    #[pg_extern(volatile)]
    fn wake_worker_on_commit() {
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
