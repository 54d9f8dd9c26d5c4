//! The background worker's loop: one per database in `pg_flink.worker_databases`, started after
//! recovery (so only on a primary). Each tick it reads the desired states, asks every cluster
//! for `/jobs/overview` once, decides per pipeline with [`decide`], and carries out the action
//! ([`super::actions`]). Errors are recorded on the job and logged; the loop goes on.
use super::decide::{decide, Action, ClusterIndex, Input, Tracked};
use super::identity::Database;
use super::registry;
use super::state::JobState;
use super::store::{self, PipelineRow};
use crate::flink::{JobManager, OverviewJob, RestError};
use crate::gucs;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::collections::BTreeMap;

pub const WORKER_TYPE: &str = "pg_flink worker";

/// SIGTERM arrived (pgrx's handler sets ShutdownRequestPending; unlike
/// `BackgroundWorker::sigterm_received()` reading it does not consume it).
pub fn stopping() -> bool {
    // SAFETY: ShutdownRequestPending is a sig_atomic_t that only the signal handler writes; a
    // volatile read of it is what Postgres' own code does.
    unsafe { std::ptr::read_volatile(&raw const pg_sys::ShutdownRequestPending) != 0 }
}

/// How long pg_flink must stay uninstalled before its jobs are stopped.
const EXTENSION_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Session advisory lock key held by a database's worker: at most one worker per database.
const WORKER_LOCK: i64 = 0x7067_666c_696e_6b01;

/// Starts a worker for database `oid` (a dynamic background worker; the launcher and
/// `flink_internal.start_worker_on_commit` call this). A second worker for the same database
/// exits at once. Returns false when no background worker slot is free.
pub fn start(oid: pg_sys::Oid) -> bool {
    BackgroundWorkerBuilder::new(&format!("pg_flink worker for database {}", oid.to_u32()))
        .set_type(WORKER_TYPE)
        .set_library("pg_flink")
        .set_function("pg_flink_worker_main")
        .set_argument(Some(pg_sys::Datum::from(oid.to_u32())))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .load_dynamic()
        .is_ok()
}

/// Ends the worker process; never returns.
fn exit(code: i32) -> ! {
    // SAFETY: proc_exit is how a Postgres process ends; nothing of ours is left to unwind.
    unsafe { pg_sys::proc_exit(code) }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_flink_worker_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let oid = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(oid), None);
    let held = store::in_txn(|| {
        Spi::get_one_with_args::<bool>("SELECT pg_try_advisory_lock($1)", &[WORKER_LOCK.into()])
            .ok()
            .flatten()
    });
    if held != Ok(Some(true)) {
        exit(0); // another worker serves this database
    }
    let name = store::in_txn(|| {
        Spi::get_one::<String>("SELECT current_database()::text")
            .ok()
            .flatten()
    })
    .ok()
    .flatten()
    .unwrap_or_default();
    if !gucs::database_allowed(&name) {
        exit(0);
    }
    // The worker never waits long for a lock: DDL in progress (DROP EXTENSION, ALTER EXTENSION
    // UPDATE) wins, and the worker retries on its next poll instead of deadlocking with it.
    let _ = store::in_txn(|| Spi::run("SET SESSION lock_timeout = '500ms'"));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warning!("pg_flink worker: cannot start its network runtime: {e}");
            exit(1);
        }
    };
    let me = pid();
    let mut memory = Memory::new();
    let mut served = registry::read(oid.to_u32());
    if served.is_some() || store::installed() {
        log!("pg_flink worker started for database \"{name}\"");
    }
    // When pg_flink went missing here (a restore that is not one transaction drops and creates
    // it again within moments): only a drop that lasts is one.
    let mut missing_since: Option<std::time::Instant> = None;
    let mut cluster_gone: std::collections::BTreeMap<String, std::time::Instant> =
        std::collections::BTreeMap::new();
    loop {
        if stopping() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: called from the worker's main loop, outside any transaction: the
            // documented way for a background worker to reload its configuration on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let sysid = system_identifier();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tick(&rt, &mut memory))) {
            // Nothing can be concluded from a catalog that could not be read (it is logged).
            Ok(Tick::Unreadable) => {}
            Ok(Tick::Served(clusters)) => {
                missing_since = None;
                // Jobs left on clusters this database no longer has (for longer than a restore
                // takes) are nobody's: stop them. Until then the registry keeps those URLs.
                let mut kept = clusters.clone();
                if let Some(old) = &served {
                    let mut gone = Vec::new();
                    for u in old.clusters.iter().filter(|u| !clusters.contains(u)) {
                        let since = *cluster_gone
                            .entry(u.clone())
                            .or_insert_with(std::time::Instant::now);
                        if since.elapsed() >= EXTENSION_GRACE * 2 {
                            gone.push(u.clone());
                        } else {
                            kept.push(u.clone());
                        }
                    }
                    if !gone.is_empty() {
                        let left = registry::Entry {
                            clusters: gone,
                            ..old.clone()
                        };
                        super::cleanup::stop_all_jobs(&rt, &left, |j| {
                            j.system_identifier == sysid && j.database == name
                        });
                    }
                }
                cluster_gone.retain(|u, _| kept.contains(u) && !clusters.contains(u));
                let entry = registry::Entry {
                    oid: oid.to_u32(),
                    name: name.clone(),
                    pid: me,
                    clusters: kept,
                };
                if served.as_ref() != Some(&entry) {
                    registry::write(&entry);
                    served = Some(entry);
                }
            }
            Ok(Tick::NotInstalled) => {
                let since = *missing_since.get_or_insert_with(std::time::Instant::now);
                if served.is_some() && since.elapsed() < EXTENSION_GRACE {
                    // Not yet: look again next poll.
                } else {
                    // pg_flink is not (or no longer) installed here. After DROP EXTENSION, the
                    // database's jobs have nobody left to want them: stop them, then go.
                    if let Some(entry) = served.take() {
                        super::cleanup::stop_all_jobs(&rt, &entry, |j| {
                            j.system_identifier == sysid && j.database == entry.name
                        });
                        registry::remove(oid.to_u32());
                        log!("pg_flink worker for database \"{name}\": extension dropped, its jobs were stopped");
                    }
                    exit(0);
                }
            }
            Err(e) => {
                memory.forget();
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                warning!("pg_flink worker: tick failed, continuing: {msg}");
            }
        }
        if stopping() || !BackgroundWorker::wait_latch(Some(gucs::poll_interval())) {
            break;
        }
    }
    log!("pg_flink worker for database \"{name}\" exiting");
    // The launcher starts a new worker for a database that is still served.
    exit(1);
}

/// This process's pid.
fn pid() -> i32 {
    // SAFETY: MyProcPid is set once at process start and only read afterwards.
    unsafe { pg_sys::MyProcPid }
}

/// This instance's system identifier (pg_control).
pub fn system_identifier() -> u64 {
    // SAFETY: reads the identifier from the control file data in shared memory, set at startup.
    unsafe { pg_sys::GetSystemIdentifier() }
}

/// The worker of one database: its network runtime, the database it serves (as of this tick),
/// this tick's `/jobs/overview` of every cluster (indexed), and what it keeps between ticks.
pub struct Worker<'a> {
    pub(super) rt: &'a tokio::runtime::Runtime,
    pub(super) database: &'a Database,
    /// One JobManager client per cluster for the whole tick (a client owns a connection pool).
    pub(super) clients: BTreeMap<String, JobManager>,
    pub(super) overviews: &'a BTreeMap<String, Result<Vec<OverviewJob>, RestError>>,
    pub(super) index: BTreeMap<String, ClusterIndex<'a>>,
    pub(super) memory: &'a Memory,
    /// Detail reads (restart count, checkpoint) left for this tick.
    details_left: std::cell::Cell<u32>,
    /// Never-started pipelines with a live job this tick (see [`Memory::unstarted`]).
    unstarted_seen: std::cell::RefCell<std::collections::BTreeSet<String>>,
    /// The schema has 0.3.0's objects (Flink versions, job notes).
    pub(super) observes: bool,
}

/// What the worker keeps from one tick to the next.
pub struct Memory {
    /// The catalog as last read; only what changed is read again (None: read it whole).
    catalog: Option<store::Snapshot>,
    /// The installation `catalog` was read from (a new one after DROP/CREATE EXTENSION or an
    /// ALTER EXTENSION UPDATE).
    installation: Option<store::Installation>,
    /// Gateway submissions in progress, by pipeline: they run on `background` and are
    /// recorded by a later tick, so a slow submission never holds up other pipelines.
    pub(super) submissions: std::cell::RefCell<BTreeMap<String, Submission>>,
    /// Threads for slow network calls. They never call into Postgres: their results are
    /// recorded by the worker's own thread.
    pub(super) background: Option<tokio::runtime::Runtime>,
    /// Since when a pipeline that was never started has had a live job. That job is stopped
    /// only after the orphan grace: a restore that is not one transaction (pg_restore) brings
    /// back a pipeline's row moments before its desired state.
    unstarted: std::cell::RefCell<BTreeMap<String, std::time::Instant>>,
    /// Metrics rounds and webhook deliveries in progress (0.3.0 schema).
    pub(super) observer: std::cell::RefCell<super::observe::Observer>,
}

/// A submission running in the background.
pub struct Submission {
    pub(super) job_id: i64,
    pub(super) handle: tokio::task::JoinHandle<Result<Option<String>, RestError>>,
    pub(super) secrets: serde_json::Map<String, serde_json::Value>,
}

impl Memory {
    fn new() -> Self {
        let background = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("pg_flink submit")
            .on_thread_start(block_signals)
            .enable_all()
            .build()
            .map_err(|e| warning!("pg_flink worker: no background thread for submissions ({e}); submitting inline"))
            .ok();
        Memory {
            catalog: None,
            installation: None,
            submissions: Default::default(),
            background,
            unstarted: Default::default(),
            observer: Default::default(),
        }
    }

    /// Forget the catalog (read it whole next tick).
    fn forget(&mut self) {
        self.catalog = None;
    }
}

/// Background threads block every signal: Postgres' handlers (SIGTERM, SIGHUP, latch wakeups)
/// must run on the worker's own thread.
fn block_signals() {
    // SAFETY: sigfillset initialises the set it is given; pthread_sigmask changes only the
    // calling thread's mask (a thread just started by tokio, before it runs any task).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// What pg_flink recorded, as [`decide`] takes it.
fn tracked<'a>(row: &'a PipelineRow, cluster: &ClusterIndex) -> Option<Tracked<'a>> {
    row.job.as_ref().map(|j| Tracked {
        flink_job_id: j.flink_job_id.as_deref(),
        job_name: Some(j.job_name.as_str()),
        foreign: !*j.owned.get_or_init(|| cluster.owns(&j.job_name)),
        state: j.state,
        failed_ago_ms: (j.state == JobState::SubmitFailed)
            .then(|| j.updated_ago_ms().max(0) as u64),
        attempts: j.attempts.max(0) as u32,
        modified_ms: j.flink_modified_ms(),
        details_due: j.state == JobState::Running
            && j.details_ago_ms()
                .is_none_or(|ms| ms >= gucs::details_interval_ms()),
    })
}

thread_local! {
    static LAST_ERROR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A JobManager client and one `/jobs/overview` per cluster.
type Clusters = (
    BTreeMap<String, JobManager>,
    BTreeMap<String, Result<Vec<OverviewJob>, RestError>>,
);

/// Every cluster's `/jobs/overview`, asked at the same time: a slow or unreachable JobManager
/// costs the tick its own timeout, not the sum over clusters.
fn overviews(rt: &tokio::runtime::Runtime, urls: impl Iterator<Item = String>) -> Clusters {
    let (mut clients, mut out) = (BTreeMap::new(), BTreeMap::new());
    let mut asks = tokio::task::JoinSet::new();
    let limits = gucs::http_limits();
    for rest in urls {
        if out.contains_key(&rest) || clients.contains_key(&rest) {
            continue;
        }
        match JobManager::new(&rest, limits) {
            Ok(jm) => {
                clients.insert(rest.clone(), jm.clone());
                asks.spawn_on(async move { (rest, jm.jobs_overview().await) }, rt.handle());
            }
            Err(e) => {
                out.insert(rest, Err(e));
            }
        }
    }
    rt.block_on(async {
        while let Some(done) = asks.join_next().await {
            if let Ok((rest, jobs)) = done {
                out.insert(rest, jobs);
            }
        }
    });
    (clients, out)
}

/// What one reconcile pass saw.
pub(super) enum Tick {
    /// pg_flink is installed; these are the REST URLs of the database's clusters (remembered
    /// for the cleanup after DROP EXTENSION / DROP DATABASE).
    Served(Vec<String>),
    /// The catalog could not be read this time: nothing is known, nothing may be concluded.
    Unreadable,
    /// pg_flink is not installed in this database.
    NotInstalled,
}

/// One reconcile pass.
pub(super) fn tick(rt: &tokio::runtime::Runtime, memory: &mut Memory) -> Tick {
    let Some(installation) = store::installation() else {
        memory.forget();
        memory.installation = None;
        return Tick::NotInstalled;
    };
    if memory.installation.as_ref() != Some(&installation) {
        memory.forget();
        if installation.legacy() {
            log!(
                "pg_flink worker: this database's pg_flink schema is version {}, older than the library ({}); it is served in compatibility mode (the whole catalog is read every poll, flink.savepoint() is missing, no metrics or alerts) until you run ALTER EXTENSION pg_flink UPDATE",
                installation.version,
                env!("CARGO_PKG_VERSION")
            );
        } else if !installation.observes() {
            log!(
                "pg_flink worker: this database's pg_flink schema is version {}, older than the library ({}); metrics, freshness and alerts are off until you run ALTER EXTENSION pg_flink UPDATE",
                installation.version,
                env!("CARGO_PKG_VERSION")
            );
        }
        memory.installation = Some(installation.clone());
    }
    super::actions::finish_submissions(rt, memory);
    if let Err(e) = store::refresh(&mut memory.catalog, installation.legacy()) {
        memory.forget();
        if store::briefly_busy() {
            // DDL holds the catalog (ALTER EXTENSION UPDATE): step aside quietly, retry next poll.
            debug1!("pg_flink worker: {e}; DDL in progress, retrying next poll");
            return Tick::Unreadable;
        }
        // Logged once per distinct error (e.g. a schema older than the library): no spam.
        LAST_ERROR.with(|last| {
            if last.borrow().as_deref() != Some(e.as_str()) {
                warning!(
                    "pg_flink worker: {e}; retrying every poll, logged again only if it changes"
                );
                *last.borrow_mut() = Some(e);
            }
        });
        return Tick::Unreadable;
    }
    LAST_ERROR.with(|last| last.borrow_mut().take());
    let memory = &*memory;
    let Some(snap) = memory.catalog.as_ref() else {
        return Tick::Unreadable;
    };
    let urls: Vec<String> = snap.clusters.iter().map(|c| c.rest_url.clone()).collect();
    let (clients, overviews) = overviews(
        rt,
        urls.iter()
            .cloned()
            .chain(snap.pipelines.values().filter_map(|p| p.rest_url.clone())),
    );
    let index = overviews
        .iter()
        .filter_map(|(url, jobs)| {
            let jobs = jobs.as_ref().ok()?;
            Some((url.clone(), ClusterIndex::new(jobs, &snap.database)))
        })
        .collect();
    let worker = Worker {
        rt,
        database: &snap.database,
        clients,
        overviews: &overviews,
        index,
        memory,
        details_left: std::cell::Cell::new(gucs::details_per_tick()),
        unstarted_seen: Default::default(),
        observes: installation.observes(),
    };
    for row in snap.pipelines.values() {
        if stopping() {
            return Tick::Served(urls);
        }
        // In flight (one that ended after this tick began is recorded next tick).
        if worker.submitting(&row.pipeline) {
            continue;
        }
        worker.reconcile(row);
    }
    let seen = worker.unstarted_seen.take();
    memory
        .unstarted
        .borrow_mut()
        .retain(|p, _| seen.contains(p));
    if !stopping() {
        worker.cleanup(snap);
    }
    if !stopping() && installation.observes() {
        super::observe::Observer::step(memory, rt, snap);
    }
    Tick::Served(urls)
}

impl Worker<'_> {
    /// This tick's client of the JobManager at `rest`.
    pub(super) fn jm(&self, rest: &str) -> Result<&JobManager, String> {
        self.clients
            .get(rest)
            .ok_or_else(|| format!("the JobManager URL {rest} is not usable"))
    }

    /// A job as this tick's `/jobs/overview` of its cluster lists it.
    pub(super) fn overview_job(&self, rest: Option<&str>, jid: &str) -> Option<&OverviewJob> {
        self.index.get(rest?)?.job(jid)
    }

    /// Whether a submission of the pipeline is still running in the background.
    fn submitting(&self, pipeline: &str) -> bool {
        self.memory.submissions.borrow().contains_key(pipeline)
    }

    fn reconcile(&self, row: &PipelineRow) {
        let (Some(rest), Some(_)) = (&row.rest_url, &row.gateway_url) else {
            self.record_error(
                row,
                "no cluster: register one with flink.register_cluster() (or set options.cluster)",
            );
            return;
        };
        let cluster = match self.overviews.get(rest) {
            Some(Ok(_)) => match self.index.get(rest) {
                Some(i) => i,
                None => return,
            },
            Some(Err(e)) => {
                // JobManager down: nothing can be decided safely; record and retry.
                self.record_error(row, &format!("cannot track jobs: {e}"));
                return;
            }
            None => return,
        };
        let tracked = tracked(row, cluster);
        let action = decide(Input {
            desired: row.desired,
            tracked: tracked.as_ref(),
            cluster,
            pipeline: &row.pipeline,
            upgrade: row.restart_requested,
            stop_with_savepoint: row.stop_with_savepoint,
        });
        // A job of a pipeline that was never started is stopped once that has lasted the
        // orphan grace (a restore in progress brings the desired state back moments later).
        if !row.started && matches!(action, Action::Stop { .. }) {
            self.unstarted_seen
                .borrow_mut()
                .insert(row.pipeline.clone());
            let mut unstarted = self.memory.unstarted.borrow_mut();
            let since = unstarted
                .entry(row.pipeline.clone())
                .or_insert_with(std::time::Instant::now);
            if since.elapsed() < super::cleanup::ORPHAN_GRACE {
                return;
            }
        }
        // Detail reads because the timer passed are bounded per tick
        // (pg_flink.details_per_tick); a job left out now is read in a later tick. Reads for a
        // change Flink reported (last-modification moved) are not.
        if let Action::Refresh { changed: false, .. } = action {
            if self.details_left.get() == 0 {
                return self.manual_savepoint(row, tracked.as_ref());
            }
            self.details_left.set(self.details_left.get() - 1);
        }
        if let Err(e) = self.act(row, tracked.as_ref(), action) {
            warning!("pg_flink worker: pipeline \"{}\": {e}", row.pipeline);
        }
        self.manual_savepoint(row, tracked.as_ref());
    }

    /// Records an error on the pipeline's current job (if any) without changing its state.
    fn record_error(&self, row: &PipelineRow, error: &str) {
        if let Some(job) = &row.job {
            if job.state.is_ended() {
                return;
            }
            let _ = store::transition(job.id, job.state, None, None, Some(error));
        }
    }
}
