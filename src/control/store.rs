//! The worker's side of the catalog: typed rows read with SPI and the state changes it writes,
//! each in its own transaction (so a Postgres error in one aborts only that change). The SQL
//! helpers live in schema `flink_internal` (sql/install/40_control.sql); every argument is a
//! bind parameter.
use super::identity::Database;
use super::state::{Desired, JobState};
use crate::stored::PipelineDef;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::JsonB;
use pgrx::PgSqlErrorCode;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

/// Everything one tick looks at: `flink_internal.worker_head()` plus the pipelines' rows
/// (`worker_pipelines`), or 0.1.0's `flink_internal.worker_snapshot()`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub database: Database,
    pub clusters: Vec<ClusterRow>,
    pub drops: Vec<DropRow>,
    /// Every pipeline of the database (with or without a desired state).
    pub all_pipelines: Vec<String>,
    /// The pipelines, by name (0.1.0: only those with a desired state).
    pub pipelines: BTreeMap<String, PipelineRow>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawSnapshot {
    database: DatabaseRow,
    clusters: Vec<ClusterRow>,
    drops: Vec<DropRow>,
    all_pipelines: Vec<String>,
    pipelines: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct DatabaseRow {
    /// Text: the identifier is an unsigned 64-bit number.
    system_identifier: String,
    oid: i64,
    name: String,
}

/// A registered cluster (all of them are searched for orphaned jobs).
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterRow {
    pub name: String,
    pub rest_url: String,
    /// drop_cluster(cascade): remove it once none of this database's jobs runs there.
    pub dropping: bool,
}

/// A dropped pipeline whose job has not been seen stopped yet.
#[derive(Debug, Clone, Deserialize)]
pub struct DropRow {
    pub id: i64,
    pub pipeline: String,
    pub with_savepoint: bool,
    pub stop_trigger: Option<String>,
    /// A pipeline of the same name exists again: its job is that pipeline's business.
    pub recreated: bool,
}

fn yes() -> bool {
    true
}

/// One pipeline and its desired state.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineRow {
    pub pipeline: String,
    pub desired: Desired,
    /// The pipeline has a desired state (flink.start or flink.stop was called); a pipeline never
    /// started is desired stopped. 0.1.0 reads only pipelines that have one.
    #[serde(default = "yes")]
    pub started: bool,
    pub from_savepoint: Option<String>,
    pub stop_with_savepoint: bool,
    pub savepoint_required: bool,
    pub drain: bool,
    pub restart_requested: bool,
    /// flink.savepoint() asked for a manual savepoint (0.2.0 schema; false on 0.1.0).
    #[serde(default)]
    pub savepoint_requested: bool,
    pub gateway_url: Option<String>,
    pub rest_url: Option<String>,
    /// The pipeline's newest job row, if any.
    pub job: Option<JobRow>,
}

/// The newest `flink.job` row of a pipeline.
#[derive(Debug, Clone, Deserialize)]
pub struct JobRow {
    pub id: i64,
    pub job_name: String,
    pub flink_job_id: Option<String>,
    pub state: JobState,
    pub attempts: i32,
    /// Milliseconds since the row last changed, when it was read.
    updated_ago_ms: i64,
    flink_modified_ms: Option<i64>,
    /// Milliseconds since the job's details were last read (None: never), when it was read.
    details_ago_ms: Option<i64>,
    pub stop_trigger: Option<String>,
    pub stop_attempts: i32,
    /// The next step of a stop (a retry) was due when the row was read.
    stop_due: bool,
    /// Milliseconds until the next step of a stop is due (0.2.0 schema: rows are kept between
    /// ticks, so the worker ages them itself).
    #[serde(default)]
    stop_due_in_ms: Option<i64>,
    /// The newest savepoint this job's stop took.
    pub savepoint: Option<String>,
    /// A manual savepoint in progress: Flink's trigger id, and since when (ms, when read).
    #[serde(default)]
    pub savepoint_trigger: Option<String>,
    #[serde(default)]
    savepoint_trigger_ago_ms: Option<i64>,
    /// When the row was read: the relative times above are as of then.
    #[serde(skip, default = "Instant::now")]
    read_at: Instant,
    /// Whether `job_name` names a job of this database (worked out once per read row).
    #[serde(skip)]
    pub owned: std::cell::OnceCell<bool>,
    /// The job's details as stored (0.2.0 schema; None on 0.1.0: unknown).
    #[serde(default)]
    details: Option<Details>,
    /// Details the worker read since the row was read (when, Flink's last-modification time,
    /// the details): a write of details alone is not in the change log, so the worker keeps
    /// its copy up to date itself.
    #[serde(skip)]
    details_written: std::cell::Cell<Option<(Instant, Option<i64>, Details)>>,
}

/// A job's details as Flink reported them: restart count and latest completed checkpoint (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Details {
    pub restarts: Option<i64>,
    pub checkpoint_ms: Option<i64>,
}

/// Milliseconds since `at`.
fn ms_since(at: Instant) -> i64 {
    at.elapsed().as_millis().min(i64::MAX as u128) as i64
}

impl JobRow {
    fn aged(&self) -> i64 {
        ms_since(self.read_at)
    }

    /// Milliseconds since the row last changed.
    pub fn updated_ago_ms(&self) -> i64 {
        self.updated_ago_ms.saturating_add(self.aged())
    }

    /// Milliseconds since the job's details were last read (None: never).
    pub fn details_ago_ms(&self) -> Option<i64> {
        if let Some((at, _, _)) = self.details_written.get() {
            return Some(ms_since(at));
        }
        self.details_ago_ms.map(|ms| ms.saturating_add(self.aged()))
    }

    /// Flink's last-modification time of the job when its details were last read.
    pub fn flink_modified_ms(&self) -> Option<i64> {
        match self.details_written.get() {
            Some((_, modified, _)) => modified,
            None => self.flink_modified_ms,
        }
    }

    /// What is stored of the job's details (None: not known, write them).
    fn stored_details(&self) -> Option<(Option<i64>, Details)> {
        match self.details_written.get() {
            Some((_, m, d)) => Some((m, d)),
            None => self.details.map(|d| (self.flink_modified_ms, d)),
        }
    }

    /// Whether storing these details would change nothing (a value Flink did not report
    /// keeps the stored one, as `flink_internal.job_details` does).
    pub fn details_unchanged(&self, modified_ms: Option<i64>, new: Details) -> bool {
        self.stored_details().is_some_and(|(m, d)| {
            modified_ms.is_none_or(|x| Some(x) == m)
                && new.restarts.is_none_or(|x| Some(x) == d.restarts)
                && new.checkpoint_ms.is_none_or(|x| Some(x) == d.checkpoint_ms)
        })
    }

    /// The worker just read (and, if they changed, stored) the job's details.
    pub fn details_read(&self, modified_ms: Option<i64>, new: Details) {
        let (m, d) = self.stored_details().unwrap_or_default();
        let merged = Details {
            restarts: new.restarts.or(d.restarts),
            checkpoint_ms: new.checkpoint_ms.or(d.checkpoint_ms),
        };
        self.details_written
            .set(Some((Instant::now(), modified_ms.or(m), merged)));
    }

    /// Milliseconds since the manual savepoint in progress was triggered.
    pub fn savepoint_trigger_ago_ms(&self) -> Option<i64> {
        self.savepoint_trigger_ago_ms
            .map(|ms| ms.saturating_add(self.aged()))
    }

    /// The next step of a stop (a retry) is due.
    pub fn stop_due(&self) -> bool {
        match self.stop_due_in_ms {
            Some(ms) => ms <= self.aged(),
            None => self.stop_due,
        }
    }
}

thread_local! {
    /// Since when the worker's transactions keep failing on its lock timeout: DDL (ALTER
    /// EXTENSION UPDATE, DROP EXTENSION) holds the catalog, and the worker steps aside.
    static BUSY_SINCE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// How long the worker may step aside for DDL before that is worth a WARNING.
const BUSY_QUIET: std::time::Duration = std::time::Duration::from_secs(60);

/// The last transaction failed only because a lock was held by someone else (its lock timeout),
/// and that has not lasted longer than a minute: expected while DDL runs, not worth a WARNING.
pub fn briefly_busy() -> bool {
    BUSY_SINCE.with(|b| b.get().is_some_and(|since| since.elapsed() < BUSY_QUIET))
}

/// Runs `f` in its own transaction; a Postgres error aborts it and comes back as Err.
pub fn in_txn<R>(
    f: impl FnOnce() -> R + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
) -> Result<R, String> {
    // SAFETY: a background worker connected to a database and outside any transaction (the
    // loop calls this between transactions only) may start one; this is the sequence pgrx's
    // own `BackgroundWorker::transaction` uses.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let r = PgTryBuilder::new(|| Ok(f()))
        .catch_others(|e| {
            let report = match &e {
                pg_sys::panic::CaughtError::PostgresError(r)
                | pg_sys::panic::CaughtError::ErrorReport(r) => r,
                pg_sys::panic::CaughtError::RustPanic { ereport, .. } => ereport,
            };
            let lock = report.sql_error_code() == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE;
            BUSY_SINCE.with(|b| {
                b.set(match (lock, b.get()) {
                    (true, Some(since)) => Some(since),
                    (true, None) => Some(std::time::Instant::now()),
                    (false, _) => None,
                })
            });
            Err(report.message().to_string())
        })
        .execute();
    if r.is_ok() {
        BUSY_SINCE.with(|b| b.set(None));
    }
    // SAFETY: the transaction started above is still the current one: on success its snapshot
    // is popped and it commits; on error (the error state was caught and flushed by
    // PgTryBuilder) it is aborted, which also releases the snapshot.
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

fn one_json(
    query: &'static str,
    args: Vec<DatumWithOid<'static>>,
) -> Result<Option<Value>, String> {
    in_txn(move || {
        Spi::get_one_with_args::<JsonB>(query, &args)
            .map(|j| j.map(|j| j.0))
            .map_err(|e| e.to_string())
    })
    .and_then(|r| r)
    .map_err(|e| format!("{query}: {e}"))
}

/// Runs a statement in its own transaction.
pub fn run(query: &'static str, args: Vec<DatumWithOid<'static>>) -> Result<(), String> {
    in_txn(move || Spi::run_with_args(query, &args).map_err(|e| e.to_string()))
        .and_then(|r| r)
        .map_err(|e| format!("{query}: {e}"))
}

/// Whether pg_flink is installed in the worker's database (it may be dropped at any time).
pub fn installed() -> bool {
    installation().is_some()
}

/// pg_flink as installed in this database: the extension's oid (a new one after DROP and
/// CREATE EXTENSION, e.g. a restore) and the version of its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub oid: u32,
    pub version: String,
}

impl Installation {
    /// A schema older than the library (0.1.0: no change log, no manual savepoints): the
    /// worker reads the whole catalog every tick until `ALTER EXTENSION pg_flink UPDATE`.
    pub fn legacy(&self) -> bool {
        self.version == "0.1.0"
    }

    /// The schema has metrics, alerts and dead letters (0.3.0 and later).
    pub fn observes(&self) -> bool {
        !matches!(self.version.as_str(), "0.1.0" | "0.2.0")
    }
}

/// The installed extension, if any.
pub fn installation() -> Option<Installation> {
    in_txn(|| {
        Spi::get_two::<pg_sys::Oid, String>(
            "SELECT oid, extversion::text FROM pg_extension WHERE extname = 'pg_flink'",
        )
        .ok()
        .and_then(|(oid, v)| Some((oid?, v?)))
    })
    .ok()
    .flatten()
    .map(|(oid, version)| Installation {
        oid: oid.to_u32(),
        version,
    })
}

/// Brings the worker's copy of the catalog up to date. With the 0.2.0 schema only what changed
/// since the last call is read (`flink_internal.worker_changes()`: the names of changed
/// pipelines, or NULL for everything), in the same transaction that consumes the change log,
/// so an error loses nothing; a 0.1.0 schema is read whole. `cache` is None when nothing is
/// known yet (first tick, after an error, a new installation).
pub fn refresh(cache: &mut Option<Snapshot>, legacy: bool) -> Result<(), String> {
    if legacy {
        *cache = Some(snapshot()?);
        return Ok(());
    }
    let full = cache.is_none();
    let (head, rows, changed) = in_txn(move || -> Result<_, String> {
        let changes = Spi::get_one::<Vec<Option<String>>>("SELECT flink_internal.worker_changes()")
            .map_err(|e| e.to_string())?;
        let full = full
            || changes
                .as_ref()
                .is_some_and(|c| c.iter().any(Option::is_none));
        let names: Vec<String> = changes.into_iter().flatten().flatten().collect();
        if !full && names.is_empty() {
            return Ok((None, None, names));
        }
        let head = if full {
            let head = Spi::get_one::<JsonB>("SELECT flink_internal.worker_head()")
                .map_err(|e| e.to_string())?;
            Some(head.map_or(Value::Null, |j| j.0))
        } else {
            None
        };
        let arg: Option<Vec<String>> = (!full).then(|| names.clone());
        let rows = Spi::get_one_with_args::<JsonB>(
            "SELECT flink_internal.worker_pipelines($1)",
            &[arg.into()],
        )
        .map_err(|e| e.to_string())?
        .map(|j| j.0);
        Ok((head, rows, names))
    })
    .and_then(|r| r)
    .map_err(|e| format!("reading the catalog: {e}"))?;
    let rows = pipeline_rows(match rows {
        Some(Value::Array(rows)) => rows,
        Some(_) => return Err("malformed worker_pipelines() answer".into()),
        None => return Ok(()), // nothing changed
    });
    if let Some(head) = head {
        let mut snap = decode_head(head)?;
        snap.pipelines = rows;
        *cache = Some(snap);
        return Ok(());
    }
    let Some(snap) = cache.as_mut() else {
        return Err("no catalog read yet".into());
    };
    for name in &changed {
        snap.pipelines.remove(name);
    }
    snap.pipelines.extend(rows);
    Ok(())
}

/// Decodes pipeline rows; one that does not decode is reported (with the pipeline's name and
/// the field at fault) and left out; the others go on.
fn pipeline_rows(raw: Vec<Value>) -> BTreeMap<String, PipelineRow> {
    let mut pipelines = BTreeMap::new();
    for row in raw {
        let name = row
            .get("pipeline")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        match serde_path_to_error::deserialize::<_, PipelineRow>(row) {
            Ok(r) => {
                pipelines.insert(r.pipeline.clone(), r);
            }
            Err(e) => warning!(
                "pg_flink worker: pipeline \"{name}\": malformed control row ({}: {}); skipped",
                e.path(),
                e.inner()
            ),
        }
    }
    pipelines
}

/// One tick's view of the catalog, read whole from a 0.1.0 schema
/// (`flink_internal.worker_snapshot()`, which 0.2.0 replaced).
pub fn snapshot() -> Result<Snapshot, String> {
    let v = one_json("SELECT flink_internal.worker_snapshot()", vec![])?.unwrap_or(Value::Null);
    decode_head(v)
}

/// The snapshot document: identity, clusters, drops, pipeline names and (if present) rows.
fn decode_head(v: Value) -> Result<Snapshot, String> {
    let raw: RawSnapshot = serde_path_to_error::deserialize(v)
        .map_err(|e| format!("malformed worker snapshot ({}: {})", e.path(), e.inner()))?;
    let database = Database {
        system_identifier: raw.database.system_identifier.parse().map_err(|e| {
            format!(
                "system identifier {:?}: {e}",
                raw.database.system_identifier
            )
        })?,
        oid: raw.database.oid as u32,
        name: raw.database.name,
    };
    Ok(Snapshot {
        database,
        clusters: raw.clusters,
        drops: raw.drops,
        all_pipelines: raw.all_pipelines,
        pipelines: pipeline_rows(raw.pipelines),
    })
}

/// The pipeline's definition and its own datasources, secrets included.
pub fn pipeline_def(pipeline: &str) -> Result<PipelineDef, String> {
    let p = pipeline.to_string();
    in_txn(move || crate::stored::pipeline(&p, true))
        .and_then(|r| r)?
        .ok_or_else(|| format!("pipeline \"{pipeline}\" no longer exists"))
}

/// Records a state change (and an event + NOTIFY when the state or error changed).
pub fn transition(
    job: i64,
    state: JobState,
    jid: Option<&str>,
    detail: Option<&str>,
    error: Option<&str>,
) -> Result<(), String> {
    run(
        "SELECT flink_internal.job_transition($1, $2, $3, $4, $5)",
        vec![
            job.into(),
            state.as_str().to_string().into(),
            jid.map(str::to_string).into(),
            detail.map(cap).into(),
            error.map(cap).into(),
        ],
    )
}

/// Every text stored on a job or event is capped (the full text was logged where it arose).
fn cap(s: &str) -> String {
    crate::core::messages::ellipsis(s, crate::flink::trace::MAX_SHOWN)
}

/// Starts a new job row for the pipeline (consuming a pending restart/savepoint request).
pub fn begin_job(
    pipeline: &str,
    job_name: &str,
    state: JobState,
    jid: Option<&str>,
    savepoint: Option<&str>,
) -> Result<i64, String> {
    let args: Vec<DatumWithOid<'static>> = vec![
        pipeline.to_string().into(),
        job_name.to_string().into(),
        state.as_str().to_string().into(),
        jid.map(str::to_string).into(),
        savepoint.map(str::to_string).into(),
    ];
    in_txn(move || {
        Spi::get_one_with_args::<i64>("SELECT flink_internal.job_begin($1, $2, $3, $4, $5)", &args)
            .map_err(|e| e.to_string())
    })
    .and_then(|r| r)
    .map_err(|e| format!("job_begin: {e}"))?
    .ok_or_else(|| format!("pipeline \"{pipeline}\" no longer exists"))
}

/// Why a restart must not resume from `savepoint` on the cluster at `rest_url` (another Flink
/// major version wrote it), if so. Unknown versions give None. 0.3.0 schema.
pub fn savepoint_mismatch(pipeline: &str, savepoint: &str, rest_url: &str) -> Option<String> {
    let args: Vec<DatumWithOid<'static>> = vec![
        pipeline.to_string().into(),
        savepoint.to_string().into(),
        rest_url.to_string().into(),
    ];
    in_txn(move || {
        crate::stored::optional::<String>(
            "SELECT flink_internal.savepoint_mismatch($1, $2, $3)",
            &args,
        )
        .ok()
        .flatten()
    })
    .ok()
    .flatten()
}

/// A job event that is not a state change. 0.3.0 schema.
pub fn job_note(job: i64, detail: &str) {
    let args: Vec<DatumWithOid<'static>> = vec![job.into(), detail.to_string().into()];
    let _ = in_txn(move || Spi::run_with_args("SELECT flink_internal.job_note($1, $2)", &args));
}

/// The version of the pipeline's definition (for the job name of an adopted job).
pub fn pipeline_version(pipeline: &str) -> Result<i32, String> {
    let p = pipeline.to_string();
    in_txn(move || {
        crate::stored::optional::<i32>(
            "SELECT version FROM flink.pipeline WHERE name = $1",
            &[p.into()],
        )
    })
    .and_then(|r| r)?
    .ok_or_else(|| format!("pipeline \"{pipeline}\" no longer exists"))
}

/// Records when the job's latest checkpoint completed.
pub fn checkpoint(job: i64, completed_ms: i64) -> Result<(), String> {
    run(
        "SELECT flink_internal.job_checkpoint($1, $2)",
        vec![job.into(), completed_ms.into()],
    )
}

/// Records a savepoint taken when stopping the job.
pub fn savepoint(pipeline: &str, job: i64, path: &str) -> Result<(), String> {
    run(
        "INSERT INTO flink.savepoint (pipeline, job_id, pipeline_version, path, trigger) SELECT $1, $2, j.pipeline_version, $3, 'stop' FROM flink.job j WHERE j.id = $2",
        vec![pipeline.to_string().into(), job.into(), path.to_string().into()],
    )
}

/// A stop in progress: its trigger (`sp:<id>`, `done:<path>`, `cancel`, `retry`), attempts,
/// and when the next step is due.
pub fn stop_progress(
    job: i64,
    trigger: &str,
    attempts: i32,
    retry_in_ms: Option<i64>,
) -> Result<(), String> {
    run(
        "SELECT flink_internal.job_stop_progress($1, $2, $3, $4)",
        vec![
            job.into(),
            trigger.to_string().into(),
            attempts.into(),
            retry_in_ms.into(),
        ],
    )
}

/// Details read from Flink: last-modification time, restart count and latest checkpoint, in
/// one transaction that does not wait for its WAL flush (synchronous_commit off): they are
/// read again from Flink if a crash loses them, and at thousands of running jobs a flush per
/// detail was most of a tick's cost.
pub fn details(
    job: i64,
    modified_ms: Option<i64>,
    restarts: Option<i64>,
    checkpoint_ms: Option<i64>,
) -> Result<(), String> {
    let args: Vec<DatumWithOid<'static>> = vec![
        job.into(),
        modified_ms.into(),
        restarts.map(|r| r.clamp(0, i32::MAX as i64) as i32).into(),
    ];
    in_txn(move || -> Result<(), String> {
        Spi::run("SET LOCAL synchronous_commit = off").map_err(|e| e.to_string())?;
        if let Some(ms) = checkpoint_ms {
            Spi::run_with_args(
                "SELECT flink_internal.job_checkpoint($1, $2)",
                &[job.into(), ms.into()],
            )
            .map_err(|e| e.to_string())?;
        }
        Spi::run_with_args("SELECT flink_internal.job_details($1, $2, $3)", &args)
            .map_err(|e| e.to_string())
    })
    .and_then(|r| r)
    .map_err(|e| format!("job_details: {e}"))
}

/// The job row names another database's job: DETACHED, and the pipeline wants nothing.
pub fn detach(job: i64, detail: &str) -> Result<(), String> {
    run(
        "SELECT flink_internal.job_detach($1, $2)",
        vec![job.into(), detail.to_string().into()],
    )
}

/// A dropped pipeline's job is stopped (or none was running).
pub fn drop_done(id: i64, savepoint: Option<&str>, detail: &str) -> Result<(), String> {
    run(
        "SELECT flink_internal.drop_done($1, $2, $3)",
        vec![
            id.into(),
            savepoint.map(str::to_string).into(),
            detail.to_string().into(),
        ],
    )
}

/// A dropped pipeline's stop with savepoint was triggered.
pub fn drop_progress(id: i64, trigger: &str) -> Result<(), String> {
    run(
        "SELECT flink_internal.drop_progress($1, $2)",
        vec![id.into(), trigger.to_string().into()],
    )
}

/// An orphaned job (no pipeline, no drop recorded) was stopped.
pub fn orphan_stopped(
    pipeline: &str,
    job_name: &str,
    jid: &str,
    detail: &str,
) -> Result<(), String> {
    run(
        "SELECT flink_internal.orphan_stopped($1, $2, $3, $4)",
        vec![
            pipeline.to_string().into(),
            job_name.to_string().into(),
            jid.to_string().into(),
            detail.to_string().into(),
        ],
    )
}

/// A cluster dropped with cascade has no job of this database left: remove it.
pub fn cluster_dropped(name: &str) -> Result<(), String> {
    run(
        "SELECT flink_internal.cluster_dropped($1)",
        vec![name.to_string().into()],
    )
}

/// A manual savepoint was triggered (or its trigger cleared, `None`).
pub fn savepoint_progress(job: i64, trigger: Option<&str>) -> Result<(), String> {
    run(
        "SELECT flink_internal.savepoint_progress($1, $2)",
        vec![job.into(), trigger.map(str::to_string).into()],
    )
}

/// A manual savepoint ended: taken (`path`) or failed (`error`); the request is consumed.
pub fn savepoint_done(job: i64, path: Option<&str>, error: Option<&str>) -> Result<(), String> {
    run(
        "SELECT flink_internal.savepoint_done($1, $2, $3)",
        vec![
            job.into(),
            path.map(str::to_string).into(),
            error.map(cap).into(),
        ],
    )
}
