//! Every `pg_flink.*` setting lives here, with its description, bounds and context.
//!
//! Documented in `docs/gucs.md`; keep the two in step.
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Default JobManager REST endpoint, used when a function is given no explicit URL.
pub static REST_URL: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"http://127.0.0.1:8081"));
/// Default SQL Gateway REST endpoint.
pub static GATEWAY_URL: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"http://127.0.0.1:8083"));
/// Upper bound of one HTTP request (connect + send + receive), in milliseconds.
pub static HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Upper bound of waiting for one SQL Gateway statement's result, in milliseconds.
pub static STATEMENT_WAIT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
/// Upper bound of establishing a TCP connection, in milliseconds.
pub static CONNECT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(2_000);

pub const DEFAULT_REST_URL: &str = "http://127.0.0.1:8081";
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:8083";

/// Optional allow-list of databases the workers serve (empty: every database with pg_flink).
pub static WORKER_DATABASES: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(None);
/// Savepoint attempts of one stop before it falls back (to cancel, or STOP_FAILED).
pub static SAVEPOINT_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(3);
/// A job restarted by Flink within this window is not healthy (milliseconds).
pub static HEALTH_WINDOW_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
/// How often a running job's details (restart count, last checkpoint) are re-read (ms).
pub static DETAILS_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// At most this many jobs' details are re-read per tick on the timer.
pub static DETAILS_PER_TICK: GucSetting<i32> = GucSetting::<i32>::new(8);
/// How often the launcher looks for new and dropped databases (ms).
pub static LAUNCHER_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(2_000);
/// How often running pipelines' metrics are sampled (ms); 0 turns sampling off.
pub static METRICS_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// How long metrics history is kept (minutes).
pub static METRICS_RETENTION_MIN: GucSetting<i32> = GucSetting::<i32>::new(1_440);
/// Webhook delivery attempts of one alert event.
pub static WEBHOOK_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(5);
/// Allow resuming from a savepoint written by another Flink major version (per session).
pub static RESTORE_ACROSS_VERSIONS: GucSetting<bool> = GucSetting::<bool>::new(false);
/// How often the worker polls Flink, in milliseconds.
pub static POLL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);

static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Registers all settings. Called once from `_PG_init`, whether or not the library is preloaded.
pub fn init() {
    // SAFETY: reading a postmaster-set global flag during library load.
    let preloading = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(preloading, Ordering::Relaxed);

    define_string(
        c"pg_flink.rest_url",
        c"Default Flink JobManager REST URL.",
        c"Used by functions that are given no cluster or URL, e.g. flink.health().",
        &REST_URL,
    );
    define_string(
        c"pg_flink.gateway_url",
        c"Default Flink SQL Gateway REST URL.",
        c"Used by functions that are given no cluster or URL, e.g. flink.health().",
        &GATEWAY_URL,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.http_timeout_ms",
        c"Upper bound, in milliseconds, of one HTTP request to Flink.",
        c"A request that takes longer fails with SQLSTATE 08006; statement_timeout and query cancel also apply.",
        &HTTP_TIMEOUT_MS,
        100,
        600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.statement_wait_ms",
        c"Upper bound, in milliseconds, of waiting for the result of one SQL Gateway statement.",
        c"Covers all result pages of the statement; each page request is also bounded by pg_flink.http_timeout_ms.",
        &STATEMENT_WAIT_MS,
        100,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"pg_flink.worker_databases",
        c"Optional allow-list of databases the pg_flink workers serve (comma-separated).",
        c"Empty (the default): every database where pg_flink is installed gets a worker, started by the launcher without a restart.",
        &WORKER_DATABASES,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_flink.savepoint_retries",
        c"Savepoint attempts of one stop before it falls back.",
        c"Attempts are spaced by a doubling backoff; then the job is cancelled, or left running as STOP_FAILED with flink.stop(savepoint_required => true).",
        &SAVEPOINT_RETRIES,
        1,
        100,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_flink.health_window_ms",
        c"A job that Flink restarted within this window is not healthy, in milliseconds.",
        c"Also the least checkpoint age that makes a checkpointing job unhealthy (see flink.pipeline_status).",
        &HEALTH_WINDOW_MS,
        1_000,
        86_400_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.details_interval_ms",
        c"How often the worker re-reads a running job's restart count and last checkpoint, in milliseconds.",
        c"Details are also read at once whenever Flink reports that the job changed.",
        &DETAILS_INTERVAL_MS,
        1_000,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.details_per_tick",
        c"At most this many running jobs have their details re-read per poll because pg_flink.details_interval_ms passed.",
        c"Keeps a poll's cost flat with thousands of running jobs (each read is a few REST calls); the longest-unread jobs go next poll. Reads caused by a change Flink reports are not limited.",
        &DETAILS_PER_TICK,
        1,
        100_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pg_flink.restore_across_versions",
        c"Allow flink.start(pipeline, from_savepoint) to resume from a savepoint written by another Flink major version than the pipeline's cluster runs.",
        c"Off: such a start is refused (SQLSTATE 55000); Flink does not guarantee state compatibility across major versions. Set it for one transaction with SET LOCAL.",
        &RESTORE_ACROSS_VERSIONS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_flink.metrics_interval_ms",
        c"How often the worker samples the metrics of every running pipeline (lag, throughput, backpressure, checkpoints, restarts), in milliseconds; 0 turns sampling and alerts off.",
        c"Each round asks each job's JobManager a few REST calls (concurrently, off the reconcile loop), writes flink.pipeline_metrics, then evaluates the alert rules.",
        &METRICS_INTERVAL_MS,
        0,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.metrics_retention_min",
        c"How long flink.pipeline_metrics_history keeps samples, in minutes.",
        c"The worker deletes older samples after every metrics round.",
        &METRICS_RETENTION_MIN,
        1,
        525_600,
        GucContext::Sighup,
        GucFlags::UNIT_MIN,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.webhook_attempts",
        c"Delivery attempts of one alert event to its webhook before it is marked failed.",
        c"Retries back off 1, 2, 4, 8 … seconds; each attempt is bounded by pg_flink.http_timeout_ms.",
        &WEBHOOK_ATTEMPTS,
        1,
        20,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_flink.launcher_interval_ms",
        c"How often the pg_flink launcher looks for new and dropped databases, in milliseconds.",
        c"CREATE EXTENSION and flink.start also start a database's worker at once.",
        &LAUNCHER_INTERVAL_MS,
        200,
        600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.poll_interval_ms",
        c"How often the pg_flink worker polls the Flink clusters, in milliseconds.",
        c"The worker is also woken at once when a transaction that changed a desired state commits.",
        &POLL_INTERVAL_MS,
        100,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_flink.connect_timeout_ms",
        c"Upper bound, in milliseconds, of opening a TCP connection to Flink.",
        c"A service that does not accept the connection in time is reported as unreachable.",
        &CONNECT_TIMEOUT_MS,
        50,
        60_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
}

fn define_string(
    name: &'static CStr,
    short: &'static CStr,
    long: &'static CStr,
    setting: &'static GucSetting<Option<std::ffi::CString>>,
) {
    GucRegistry::define_string_guc(
        name,
        short,
        long,
        setting,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// True when the library was loaded through `shared_preload_libraries`.
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// Raises a clear error when a feature that needs preloading (the background worker) is used
/// without it.
pub fn require_preloaded(feature: &str) {
    if !preloaded() {
        pgrx::pg_sys::panic::ErrorReport::new(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{feature} needs pg_flink in shared_preload_libraries"),
            "pg_flink::gucs::require_preloaded",
        )
        .set_hint(
            "Add pg_flink to shared_preload_libraries in postgresql.conf (ALTER SYSTEM SET shared_preload_libraries = 'pg_flink') and restart PostgreSQL.",
        )
        .report(pgrx::PgLogLevel::ERROR);
    }
}

fn string_setting(setting: &GucSetting<Option<std::ffi::CString>>, fallback: &str) -> String {
    setting
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

pub fn rest_url() -> String {
    string_setting(&REST_URL, DEFAULT_REST_URL)
}

pub fn gateway_url() -> String {
    string_setting(&GATEWAY_URL, DEFAULT_GATEWAY_URL)
}

/// HTTP limits as the core clients take them.
pub fn http_limits() -> crate::flink::HttpLimits {
    crate::flink::HttpLimits {
        connect_timeout_ms: CONNECT_TIMEOUT_MS.get().max(1) as u64,
        request_timeout_ms: HTTP_TIMEOUT_MS.get().max(1) as u64,
    }
}

/// Overall wait for one gateway statement.
pub fn statement_wait() -> std::time::Duration {
    std::time::Duration::from_millis(STATEMENT_WAIT_MS.get().max(1) as u64)
}

/// The databases listed in `pg_flink.worker_databases`.
pub fn worker_databases() -> Vec<String> {
    WORKER_DATABASES
        .get()
        .and_then(|s| s.into_string().ok())
        .unwrap_or_default()
        .split(',')
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

pub fn poll_interval() -> std::time::Duration {
    std::time::Duration::from_millis(POLL_INTERVAL_MS.get().max(100) as u64)
}

/// Savepoint attempts of one stop.
pub fn savepoint_retries() -> i32 {
    SAVEPOINT_RETRIES.get()
}

/// Milliseconds between refreshes of a running job's details.
pub fn details_interval_ms() -> i64 {
    DETAILS_INTERVAL_MS.get() as i64
}

/// Timer-driven detail reads per tick.
pub fn details_per_tick() -> u32 {
    DETAILS_PER_TICK.get().max(1) as u32
}

/// How often metrics are sampled (None: sampling is off).
pub fn metrics_interval() -> Option<std::time::Duration> {
    let ms = METRICS_INTERVAL_MS.get();
    (ms > 0).then(|| std::time::Duration::from_millis(ms.max(500) as u64))
}

/// Metrics history retention, in minutes.
pub fn metrics_retention_min() -> i32 {
    METRICS_RETENTION_MIN.get().max(1)
}

/// Webhook delivery attempts per alert event.
pub fn webhook_attempts() -> i32 {
    WEBHOOK_ATTEMPTS.get().max(1)
}

/// How often the launcher scans the databases.
pub fn launcher_interval() -> std::time::Duration {
    std::time::Duration::from_millis(LAUNCHER_INTERVAL_MS.get().max(200) as u64)
}

/// Whether a database may have a worker (the optional allow-list).
pub fn database_allowed(name: &str) -> bool {
    let list = worker_databases();
    list.is_empty() || list.iter().any(|d| d == name)
}
