//! Running async network work from a Postgres backend.
//!
//! A backend is single-threaded and must stay responsive to query cancel (Ctrl-C),
//! `statement_timeout` and termination. [`run`] drives a future on a per-backend
//! current-thread Tokio runtime and, every few milliseconds, looks at Postgres'
//! `InterruptPending` flag; when it is set the future is dropped (closing its sockets) and
//! `CHECK_FOR_INTERRUPTS()` raises the cancel error outside the runtime. Every request also has
//! its own timeout (see `pg_flink.http_timeout_ms`), so nothing can hang a backend.
use pgrx::pg_sys;
use std::cell::OnceCell;
use std::future::Future;
use std::time::Duration;

thread_local! {
    static RUNTIME: OnceCell<Result<tokio::runtime::Runtime, String>> = const { OnceCell::new() };
}

const INTERRUPT_POLL: Duration = Duration::from_millis(20);

fn interrupt_pending() -> bool {
    // SAFETY: InterruptPending is a sig_atomic_t set by signal handlers; a volatile read of it
    // is exactly what CHECK_FOR_INTERRUPTS does.
    unsafe { std::ptr::read_volatile(&raw const pg_sys::InterruptPending) != 0 }
}

/// Runs `fut` to completion unless the query is cancelled, in which case the usual Postgres
/// cancel error is raised (and `fut` is dropped first).
pub fn run<F: Future>(fut: F) -> F::Output {
    RUNTIME.with(|cell| {
        let rt = match cell.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        }) {
            Ok(rt) => rt,
            Err(e) => pgrx::pg_sys::panic::ErrorReport::new(
                pgrx::PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
                format!("pg_flink cannot start its network runtime: {e}"),
                "pg_flink::interruptible::run",
            )
            .set_hint("Check the server's resource limits (open files, threads).")
            .report_error(),
        };
        let mut fut = Box::pin(fut);
        loop {
            let done = rt.block_on(async {
                tokio::select! {
                    out = &mut fut => Some(out),
                    _ = wait_for_interrupt() => None,
                }
            });
            match done {
                Some(out) => return out,
                None => {
                    let _enter = rt.enter();
                    // Raises (and unwinds, dropping `fut` inside the runtime context) on cancel,
                    // timeout or termination; returns when the interrupt was benign.
                    pgrx::check_for_interrupts!();
                }
            }
        }
    })
}

async fn wait_for_interrupt() {
    loop {
        if interrupt_pending() {
            return;
        }
        tokio::time::sleep(INTERRUPT_POLL).await;
    }
}

/// `ErrorReport::report(ERROR)` never returns; this spells that out for the type checker.
pub trait ReportError {
    fn report_error(self) -> !;
}

impl ReportError for pgrx::pg_sys::panic::ErrorReport {
    fn report_error(self) -> ! {
        self.report(pgrx::PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }
}

/// Runs `fut` for at most `limit` without looking at interrupts and without raising: for
/// best-effort cleanup while a query is being torn down (closing an Elasticsearch point in
/// time after a cancel). Returns None on timeout or if no runtime is usable here.
pub fn run_cleanup<F: Future>(fut: F, limit: Duration) -> Option<F::Output> {
    RUNTIME.with(|cell| {
        let rt = cell.get()?.as_ref().ok()?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return None; // inside the runtime already (unwinding from a cancel): skip
        }
        rt.block_on(async { tokio::time::timeout(limit, fut).await.ok() })
    })
}

/// A small multi-threaded runtime for work that should progress while the backend does
/// something else (an Elasticsearch scan fetches its next page while Postgres consumes the
/// current one). Its tasks never touch Postgres; results are awaited with [`run`].
pub fn spawn<F>(fut: F) -> Option<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static BACKGROUND: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    let rt = BACKGROUND.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pg_flink-io")
            .enable_all()
            .build()
            .ok()
    });
    rt.as_ref().map(|rt| rt.spawn(fut))
}
