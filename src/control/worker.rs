//! The background worker's loop: one per database in `pg_flink.worker_databases`, started after
//! recovery (so only on a primary). Each tick it reads the desired states, asks every cluster
//! for `/jobs/overview` once, decides per pipeline with [`decide`], and carries out the action
//! ([`super::actions`]). Errors are recorded on the job and logged; the loop goes on.
use super::decide::{decide, Action, Tracked};
use super::identity::identity;
use super::state::JobState;
use super::store::{self, PipelineRow};
use crate::flink::{JobManager, OverviewJob, RestError};
use crate::gucs;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

pub const WORKER_TYPE: &str = "pg_flink worker";

/// SIGTERM arrived (pgrx's handler sets ShutdownRequestPending; unlike
/// `BackgroundWorker::sigterm_received()` reading it does not consume it).
pub fn stopping() -> bool {
    // SAFETY: ShutdownRequestPending is a sig_atomic_t that only the signal handler writes; a
    // volatile read of it is what Postgres' own code does.
    unsafe { std::ptr::read_volatile(&raw const pg_sys::ShutdownRequestPending) != 0 }
}

/// Registers one static worker per configured database (called from `_PG_init` while
/// preloading).
pub fn register() {
    for db in gucs::worker_databases() {
        BackgroundWorkerBuilder::new(&format!("pg_flink worker for database {db}"))
            .set_type(WORKER_TYPE)
            .set_library("pg_flink")
            .set_function("pg_flink_worker_main")
            .set_extra(&db)
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(5)))
            .load();
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_flink_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    log!("pg_flink worker started for database \"{db}\"");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warning!("pg_flink worker: cannot start its network runtime: {e}");
            return;
        }
    };
    let worker = Worker {
        rt: &rt,
        database: &db,
    };
    loop {
        if stopping() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: called from the worker's main loop, outside any transaction: the
            // documented way for a background worker to reload its configuration on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.tick())) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            warning!("pg_flink worker: tick failed, continuing: {msg}");
        }
        if stopping() || !BackgroundWorker::wait_latch(Some(gucs::poll_interval())) {
            break;
        }
    }
    log!("pg_flink worker for database \"{db}\" exiting");
    // Exit code 1: the postmaster restarts the worker after its restart interval (exit 0 would
    // unregister it). At server shutdown the code does not matter.
    // SAFETY: proc_exit is how a Postgres process ends; nothing of ours is left to unwind.
    unsafe { pg_sys::proc_exit(1) };
}

/// The worker of one database: its network runtime and the database it serves.
pub struct Worker<'a> {
    pub(super) rt: &'a tokio::runtime::Runtime,
    pub(super) database: &'a str,
}

/// What pg_flink recorded, as [`decide`] takes it.
fn tracked(row: &PipelineRow) -> Option<Tracked> {
    row.job.as_ref().map(|j| Tracked {
        flink_job_id: j.flink_job_id.clone(),
        state: j.state,
        failed_ago_ms: (j.state == JobState::SubmitFailed).then(|| j.updated_ago_ms.max(0) as u64),
        attempts: j.attempts.max(0) as u32,
    })
}

impl Worker<'_> {
    /// One reconcile pass; true when it changed something (submitted, stopped, recorded).
    fn tick(&self) -> bool {
        if !store::installed() {
            return false;
        }
        let rows = match store::snapshot() {
            Ok(rows) => rows,
            Err(e) => {
                warning!("pg_flink worker: {e}");
                return false;
            }
        };
        // One /jobs/overview per cluster per tick.
        let mut overviews: BTreeMap<String, Result<Vec<OverviewJob>, RestError>> = BTreeMap::new();
        for row in &rows {
            if let Some(rest) = &row.rest_url {
                if !overviews.contains_key(rest) {
                    let jobs = match JobManager::new(rest, gucs::http_limits()) {
                        Ok(jm) => self.rt.block_on(jm.jobs_overview()),
                        Err(e) => Err(e),
                    };
                    overviews.insert(rest.clone(), jobs);
                }
            }
        }
        let mut acted = false;
        for row in &rows {
            if stopping() {
                return acted;
            }
            let (Some(rest), Some(_)) = (&row.rest_url, &row.gateway_url) else {
                self.record_error(row, "no cluster: register one with flink.register_cluster() (or set options.cluster)");
                continue;
            };
            let cluster = match overviews.get(rest) {
                Some(Ok(jobs)) => jobs.as_slice(),
                Some(Err(e)) => {
                    // JobManager down: nothing can be decided safely; record and retry.
                    self.record_error(row, &format!("cannot track jobs: {e}"));
                    continue;
                }
                None => continue,
            };
            let tracked = tracked(row);
            let action = decide(
                row.desired,
                tracked.as_ref(),
                cluster,
                &identity(self.database, &row.pipeline),
                row.restart_requested,
                row.stop_with_savepoint,
            );
            acted |= action != Action::Nothing;
            if let Err(e) = self.act(row, tracked.as_ref(), action) {
                warning!("pg_flink worker: pipeline \"{}\": {e}", row.pipeline);
            }
        }
        acted
    }

    /// Records an error on the pipeline's current job (if any) without changing its state.
    fn record_error(&self, row: &PipelineRow, error: &str) {
        if let Some(job) = &row.job {
            let _ = store::transition(job.id, job.state, None, None, Some(error));
        }
    }
}
