//! The background worker: one per database in `pg_flink.worker_databases`, started after
//! recovery (so only on a primary). Each tick it reads the desired states, asks every cluster
//! for `/jobs/overview` once, decides per pipeline with `core::control::decide`, and carries
//! out the action. Every state change is written in its own transaction through SQL helpers
//! (flink._job_begin / flink._job_transition), which record the event and NOTIFY. Network
//! calls happen outside transactions and are bounded by timeouts. Errors are recorded on the
//! job and logged; the loop goes on.
use crate::core::control::{decide, Action, Desired, OverviewJob, Tracked};
use crate::core::rest::{Gateway, HttpLimits, JobManager, RestError};
use crate::core::script::split_statements;
use crate::datasource::scrub;
use crate::gucs;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const WORKER_TYPE: &str = "pg_flink worker";

/// SIGTERM arrived (pgrx's handler sets ShutdownRequestPending; unlike
/// `BackgroundWorker::sigterm_received()` reading it does not consume it).
fn stopping() -> bool {
    // SAFETY: a sig_atomic_t written by the signal handler; volatile read.
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
    loop {
        if stopping() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to reload its configuration.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let w = Worker { rt: &rt };
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.tick())) {
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
    // SAFETY: proc_exit is how a Postgres process ends.
    unsafe { pg_sys::proc_exit(1) };
}

/// Runs `f` in its own transaction; a Postgres error aborts it and comes back as Err.
fn in_txn<R>(
    f: impl FnOnce() -> R + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
) -> Result<R, String> {
    // SAFETY: the transaction protocol of a background worker, as in pgrx's own helper, plus
    // an abort on error so the loop can go on.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let r = PgTryBuilder::new(|| Ok(f()))
        .catch_others(|e| {
            Err(match e {
                pg_sys::panic::CaughtError::PostgresError(r)
                | pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
                pg_sys::panic::CaughtError::RustPanic { ereport, .. } => {
                    ereport.message().to_string()
                }
            })
        })
        .execute();
    unsafe {
        match r {
            Ok(_) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Err(_) => pg_sys::AbortCurrentTransaction(),
        }
    }
    r
}

fn sql_json(
    query: &'static str,
    args: Vec<DatumWithOid<'static>>,
) -> Result<Option<Value>, String> {
    in_txn(move || {
        Spi::get_one_with_args::<JsonB>(query, &args)
            .ok()
            .flatten()
            .map(|j| j.0)
    })
    .map_err(|e| format!("{query}: {e}"))
}

fn sql_run(query: &'static str, args: Vec<DatumWithOid<'static>>) -> Result<(), String> {
    in_txn(move || Spi::run_with_args(query, &args).map_err(|e| e.to_string()))
        .and_then(|r| r)
        .map_err(|e| format!("{query}: {e}"))
}

struct Worker<'a> {
    rt: &'a tokio::runtime::Runtime,
}

/// One pipeline's entry of flink._worker_snapshot().
struct Item {
    pipeline: String,
    desired: Desired,
    from_savepoint: Option<String>,
    stop_with_savepoint: bool,
    drain: bool,
    restart: bool,
    gateway_url: Option<String>,
    rest_url: Option<String>,
    identity: String,
    job_id: Option<i64>,
    tracked: Option<Tracked>,
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn parse_item(v: &Value) -> Option<Item> {
    let job = v.get("job").filter(|j| !j.is_null());
    Some(Item {
        pipeline: s(v, "pipeline")?,
        desired: Desired::parse(v.get("desired")?.as_str()?)?,
        from_savepoint: s(v, "from_savepoint"),
        stop_with_savepoint: v
            .get("stop_with_savepoint")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        drain: v.get("drain").and_then(Value::as_bool).unwrap_or(false),
        restart: v
            .get("restart_requested")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        gateway_url: s(v, "gateway_url"),
        rest_url: s(v, "rest_url"),
        identity: s(v, "identity")?,
        job_id: job.and_then(|j| j.get("id")).and_then(Value::as_i64),
        tracked: job.map(|j| Tracked {
            flink_job_id: s(j, "flink_job_id"),
            state: s(j, "state").unwrap_or_default(),
            failed_ago_ms: (s(j, "state").as_deref() == Some("SUBMIT_FAILED")).then(|| {
                j.get("failed_ago_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .max(0) as u64
            }),
            attempts: j.get("attempts").and_then(Value::as_i64).unwrap_or(1) as u32,
        }),
    })
}

impl Worker<'_> {
    fn limits(&self) -> HttpLimits {
        gucs::http_limits()
    }

    /// One reconcile pass; true when it changed something (submitted, stopped, recorded).
    fn tick(&self) -> bool {
        let installed = in_txn(|| {
            Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_flink')",
            )
            .ok()
            .flatten()
            .unwrap_or(false)
        });
        if installed != Ok(true) {
            return false;
        }
        let snap = match sql_json("SELECT flink._worker_snapshot()", vec![]) {
            Ok(Some(v)) => v,
            Ok(None) => return false,
            Err(e) => {
                warning!("pg_flink worker: {e}");
                return false;
            }
        };
        let items: Vec<Item> = snap
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(parse_item)
            .collect();
        // One /jobs/overview per cluster per tick.
        let mut overviews: BTreeMap<String, Result<Vec<OverviewJob>, RestError>> = BTreeMap::new();
        for it in &items {
            if let Some(rest) = &it.rest_url {
                if !overviews.contains_key(rest) {
                    let r = JobManager::new(rest, self.limits());
                    let o = match r {
                        Ok(jm) => self.rt.block_on(jm.jobs_overview()),
                        Err(e) => Err(e),
                    };
                    overviews.insert(rest.clone(), o);
                }
            }
        }
        let mut acted = false;
        for it in &items {
            if stopping() {
                return acted;
            }
            let (Some(rest), Some(_gw)) = (&it.rest_url, &it.gateway_url) else {
                self.record_error(it, "no cluster: register one with flink.register_cluster() (or set options.cluster)");
                continue;
            };
            let cluster = match overviews.get(rest) {
                Some(Ok(jobs)) => jobs.as_slice(),
                Some(Err(e)) => {
                    // JobManager down: nothing can be decided safely; record and retry.
                    self.record_error(it, &format!("cannot track jobs: {e}"));
                    continue;
                }
                None => continue,
            };
            let action = decide(
                it.desired,
                it.tracked.as_ref(),
                cluster,
                &it.identity,
                it.restart,
                it.stop_with_savepoint,
            );
            acted |= action != Action::Nothing;
            if let Err(e) = self.act(it, action) {
                warning!("pg_flink worker: pipeline \"{}\": {e}", it.pipeline);
            }
        }
        acted
    }

    /// Records an error on the pipeline's current job (if any) without changing its state.
    fn record_error(&self, it: &Item, error: &str) {
        if let (Some(id), Some(t)) = (it.job_id, &it.tracked) {
            let _ = sql_run(
                "SELECT flink._job_transition($1, $2, NULL, NULL, $3)",
                vec![id.into(), t.state.clone().into(), error.to_string().into()],
            );
        }
    }

    fn transition(
        &self,
        job: i64,
        state: &str,
        jid: Option<&str>,
        detail: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), String> {
        sql_run(
            "SELECT flink._job_transition($1, $2, $3, $4, $5)",
            vec![
                job.into(),
                state.to_string().into(),
                jid.map(str::to_string).into(),
                detail.map(str::to_string).into(),
                error.map(str::to_string).into(),
            ],
        )
    }

    fn begin(
        &self,
        pipeline: &str,
        state: &str,
        jid: Option<&str>,
        savepoint: Option<&str>,
    ) -> Result<i64, String> {
        let args: Vec<DatumWithOid<'static>> = vec![
            pipeline.to_string().into(),
            state.to_string().into(),
            jid.map(str::to_string).into(),
            savepoint.map(str::to_string).into(),
        ];
        in_txn(move || {
            Spi::get_one_with_args::<i64>("SELECT flink._job_begin($1, $2, $3, $4)", &args)
                .ok()
                .flatten()
        })
        .map_err(|e| format!("_job_begin: {e}"))?
        .ok_or_else(|| "_job_begin returned nothing".to_string())
    }

    fn act(&self, it: &Item, action: Action) -> Result<(), String> {
        match action {
            Action::Nothing => Ok(()),
            Action::Submit => self.submit(it, it.from_savepoint.as_deref()),
            Action::Adopt { jid, state } => match (&it.tracked, it.job_id) {
                (Some(t), Some(id)) if t.flink_job_id.is_none() && t.state == "SUBMITTING" => self
                    .transition(
                        id,
                        &state,
                        Some(&jid),
                        Some(&format!("adopted running Flink job {jid}")),
                        None,
                    ),
                _ => self
                    .begin(&it.pipeline, &state, Some(&jid), None)
                    .map(|_| ()),
            },
            Action::Observe { jid, state } => {
                let id = it.job_id.ok_or("no job row")?;
                self.record_checkpoint(it, id, &jid);
                // Why a job failed or is restarting: Flink's root exception, fetched on change.
                let error = if state == "FAILED" || state == "RESTARTING" {
                    self.root_exception(it, &jid)
                } else {
                    None
                };
                self.transition(id, &state, Some(&jid), None, error.as_deref())
            }
            Action::Lost => {
                let id = it.job_id.ok_or("no job row")?;
                self.transition(
                    id,
                    "LOST",
                    None,
                    Some("the job is no longer known to the JobManager"),
                    None,
                )
            }
            Action::Stop { jid, savepoint } => self.stop(it, &jid, savepoint).map(|_| ()),
            Action::Upgrade { jid } => {
                let path = self.stop(it, &jid, true)?;
                self.submit(it, path.as_deref())
            }
        }
    }

    /// Details are fetched on change only: the latest completed checkpoint when a job changes
    /// state (and before it is stopped).
    fn record_checkpoint(&self, it: &Item, id: i64, jid: &str) {
        let Some(rest) = it.rest_url.as_deref() else {
            return;
        };
        let Ok(jm) = JobManager::new(rest, self.limits()) else {
            return;
        };
        if let Ok(Some(ms)) = self.rt.block_on(jm.latest_checkpoint_ms(jid)) {
            let _ = sql_run(
                "SELECT flink._job_checkpoint($1, $2)",
                vec![id.into(), ms.into()],
            );
        }
    }

    fn root_exception(&self, it: &Item, jid: &str) -> Option<String> {
        let jm = JobManager::new(it.rest_url.as_deref()?, self.limits()).ok()?;
        self.rt.block_on(jm.root_exception(jid)).ok().flatten()
    }

    /// Stops a job; returns the savepoint path when one was taken.
    fn stop(&self, it: &Item, jid: &str, savepoint: bool) -> Result<Option<String>, String> {
        let rest = it.rest_url.as_deref().ok_or("no cluster")?;
        let jm = JobManager::new(rest, self.limits()).map_err(|e| e.to_string())?;
        // The job row to update: ours, or a fresh one for an untracked (adopted) job.
        let id = match (&it.tracked, it.job_id) {
            (Some(t), Some(id)) if t.flink_job_id.as_deref() == Some(jid) => id,
            _ => self.begin(&it.pipeline, "RUNNING", Some(jid), None)?,
        };
        self.record_checkpoint(it, id, jid);
        self.transition(
            id,
            "STOPPING",
            Some(jid),
            Some(if savepoint {
                "stop with savepoint"
            } else {
                "cancel"
            }),
            None,
        )?;
        if !savepoint {
            return match self.rt.block_on(jm.cancel(jid)) {
                Ok(()) => self
                    .transition(id, "STOPPED", None, Some("cancelled"), None)
                    .map(|_| None),
                Err(e) => {
                    self.stop_failed(id, &format!("cancel failed: {e}"))?;
                    Err(e.to_string())
                }
            };
        }
        let trigger = match self.rt.block_on(jm.stop_with_savepoint(jid, it.drain)) {
            Ok(t) => t,
            Err(e) => {
                self.stop_failed(id, &format!("stop with savepoint failed: {e}"))?;
                return Err(e.to_string());
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if stopping() {
                return Err("worker stopping; the job is reconciled again on restart".into());
            }
            match self.rt.block_on(jm.savepoint_status(jid, &trigger)) {
                Ok(Some(path)) => {
                    sql_run(
                        "INSERT INTO flink.savepoint (pipeline, job_id, pipeline_version, path, trigger) SELECT $1, $2, j.pipeline_version, $3, 'stop' FROM flink.job j WHERE j.id = $2",
                        vec![it.pipeline.clone().into(), id.into(), path.clone().into()],
                    )?;
                    self.transition(
                        id,
                        "STOPPED",
                        None,
                        Some(&format!("savepoint {path}")),
                        None,
                    )?;
                    return Ok(Some(path));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(300))
                }
                Ok(None) => {
                    self.stop_failed(id, "stop with savepoint did not complete within 60 s")?;
                    return Err("savepoint timeout".into());
                }
                Err(e) => {
                    self.stop_failed(id, &format!("savepoint failed: {e}"))?;
                    return Err(e.to_string());
                }
            }
        }
    }

    /// A stop that did not happen: the job runs on, with the reason recorded.
    fn stop_failed(&self, id: i64, why: &str) -> Result<(), String> {
        self.transition(id, "RUNNING", None, None, Some(why))
    }

    fn submit(&self, it: &Item, savepoint: Option<&str>) -> Result<(), String> {
        let gw_url = it.gateway_url.as_deref().ok_or("no cluster")?;
        let id = self.begin(&it.pipeline, "SUBMITTING", None, savepoint)?;
        let script = match in_txn({
            let p = it.pipeline.clone();
            move || {
                Spi::get_one_with_args::<String>("SELECT flink._pipeline_script($1)", &[p.into()])
                    .ok()
                    .flatten()
            }
        }) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return self.transition(
                    id,
                    "SUBMIT_FAILED",
                    None,
                    None,
                    Some("the pipeline cannot be rendered"),
                )
            }
            Err(e) => return self.transition(id, "SUBMIT_FAILED", None, None, Some(&e)),
        };
        let secrets = self.secrets();
        let mut statements = split_statements(&script);
        if let Some(sp) = savepoint {
            statements.insert(
                0,
                format!(
                    "SET 'execution.savepoint.path' = {}",
                    crate::core::quote::literal(sp)
                ),
            );
        }
        let limits = self.limits();
        let wait = gucs::statement_wait();
        let result: Result<Option<String>, RestError> = self.rt.block_on(async {
            let gw = Gateway::new(gw_url, limits)?;
            let session = gw
                .open_session(&format!("pg_flink submit {}", it.pipeline), &Map::new())
                .await?;
            let mut job = None;
            let mut res = Ok(());
            for st in &statements {
                match gw.run_statement(&session, st, 10, wait).await {
                    Ok(r) => {
                        if r.job_id.is_some() {
                            job = r.job_id;
                        }
                    }
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            let _ = gw.close_session(&session).await;
            res.map(|_| job)
        });
        match result {
            Ok(Some(jid)) => self.transition(
                id,
                "CREATED",
                Some(&jid),
                Some(&format!("submitted as Flink job {jid}")),
                None,
            ),
            Ok(None) => self.transition(
                id,
                "SUBMIT_FAILED",
                None,
                None,
                Some("the gateway returned no job id"),
            ),
            Err(e) => self.transition(
                id,
                "SUBMIT_FAILED",
                None,
                None,
                Some(&scrub(&e.to_string(), &secrets)),
            ),
        }
    }

    /// Every secret value of the catalog, to scrub error texts.
    fn secrets(&self) -> Map<String, Value> {
        let cat = sql_json("SELECT flink._catalog_json(true)", vec![])
            .ok()
            .flatten()
            .unwrap_or(Value::Null);
        let mut out = Map::new();
        for (name, d) in cat.as_object().into_iter().flatten() {
            for (k, v) in d
                .get("secrets")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                out.insert(format!("{name}.{k}"), v.clone());
            }
        }
        out
    }
}

#[pg_schema]
mod flink {
    use super::*;

    /// Raises a clear error when the control plane cannot act in this database.
    #[pg_extern(volatile, name = "_require_worker")]
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
                "flink._require_worker",
            );
        }
    }

    /// Wakes this database's worker when the current transaction commits (never on abort).
    #[pg_extern(volatile, name = "_wake_worker_on_commit")]
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
                // SAFETY: kill(2) with a pid read from pg_stat_activity.
                unsafe {
                    libc::kill(pid, libc::SIGUSR1);
                }
            }
        });
    }
}
