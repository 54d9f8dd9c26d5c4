//! `flink.preview()`: what a stored pipeline's query produces against the data present, from
//! psql, without its sink and without a lasting job (Dinky's "preview").
//!
//! The script is rendered exactly as the worker submits it (real secrets: it reads real data),
//! so the caller must be able to read the secrets (`flink_admin`, like `flink.start`). The
//! statements come from `pipeline::preview::plan`: the pipeline's tables and SETs (less its job
//! name, parallelism and checkpointing), then its query as a SELECT, run in one SQL Gateway
//! session of the pipeline's cluster. Rows are collected until `max_rows` or `timeout`.
//!
//! Ending the job. Observed on Flink 1.20.3 with curl: closing the operation of a streaming
//! SELECT cancels its job (CANCELED within a second), and so does closing the session while
//! the SELECT runs. The gateway close is therefore the normal way the job ends; the JobManager
//! check after it (`/jobs/overview`, by job id or by the call's unique job name, cancelled if
//! still live, waited for until it is terminal) makes sure of it even when the gateway's close
//! failed or a Flink version behaves otherwise. A cancelled query or `statement_timeout` drops
//! the gateway calls mid-way; the [`Leftovers`] guard then does the same cleanup while the
//! error unwinds.
use crate::api::pipeline::{cluster_urls, stored_pipeline};
use crate::control::decide::is_terminal_name;
use crate::control::identity::Database;
use crate::datasource::scrub;
use crate::errors::{raise, rest_error_report_in};
use crate::flink::{Gateway, JobManager, RestError, Stop};
use crate::gucs;
use crate::interruptible::{self, ReportError};
use crate::pipeline::preview::{self, PreviewPlan};
use crate::pipeline::{self, catalog_of, Definition};
use crate::stored;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

const F: &str = "flink.preview";
const MAX_ROWS: i32 = 10_000;
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the preview waits for its job to be gone after closing the session.
const JOB_END_WAIT: Duration = Duration::from_secs(10);
/// How long the cleanup after a cancelled preview may take.
const CANCEL_CLEANUP: Duration = Duration::from_secs(5);

/// Secrets scrubbed from a Flink error (a connector may echo its options).
fn scrubbed(e: RestError, secrets: &Map<String, Value>) -> RestError {
    match e {
        RestError::Statement { root_cause, trace } => RestError::Statement {
            root_cause: scrub(&root_cause, secrets),
            trace: scrub(&trace, secrets),
        },
        RestError::Status {
            service,
            url,
            status,
            message,
        } => RestError::Status {
            service,
            url,
            status,
            message: scrub(&message, secrets),
        },
        other => other,
    }
}

/// Ends what one preview started: closes its gateway session (which cancels a running SELECT's
/// job), then makes sure on the JobManager that no job of the preview (by id, or by the call's
/// unique name when the id never came back) is left: cancels a live one and waits until it is
/// terminal. Err says why that could not be made sure.
async fn end_preview(
    gw: Gateway,
    jm: Result<JobManager, RestError>,
    session: String,
    job_name: String,
    job_id: Option<String>,
) -> Result<(), String> {
    let _ = gw.close_session(&session).await;
    let jm = jm.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut cancelled: Vec<String> = Vec::new();
    // Without a job id the job may still be on its way in: look once more after a second.
    let mut look_again = job_id.is_none();
    loop {
        let jobs = jm.jobs_overview().await.map_err(|e| e.to_string())?;
        let live: Vec<_> = jobs
            .iter()
            .filter(|j| job_id.as_deref() == Some(j.jid.as_str()) || j.name == job_name)
            .filter(|j| !is_terminal_name(&j.state))
            .collect();
        if live.is_empty() {
            if !look_again {
                return Ok(());
            }
            look_again = false;
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if started.elapsed() > JOB_END_WAIT {
            let j = live[0];
            return Err(format!(
                "Flink job {} (\"{}\") is still {} after {} s",
                j.jid,
                j.name,
                j.state,
                JOB_END_WAIT.as_secs()
            ));
        }
        for j in live {
            if j.state != "CANCELLING" && !cancelled.contains(&j.jid) {
                jm.cancel(&j.jid).await.map_err(|e| e.to_string())?;
                cancelled.push(j.jid.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateway session of one preview while it runs. Dropped armed (the query was cancelled
/// or timed out while a gateway call ran, and the error is unwinding), it ends the preview as
/// [`end_preview`] does, best effort and bounded.
struct Leftovers {
    gw: Gateway,
    rest_url: String,
    limits: crate::flink::HttpLimits,
    session: String,
    job_name: String,
    armed: bool,
}

impl Leftovers {
    fn end(&self, job_id: Option<String>) -> impl std::future::Future<Output = Result<(), String>> {
        end_preview(
            self.gw.clone(),
            JobManager::new(&self.rest_url, self.limits),
            self.session.clone(),
            self.job_name.clone(),
            job_id,
        )
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if self.armed {
            let _ = interruptible::run_cleanup(self.end(None), CANCEL_CLEANUP);
        }
    }
}

/// Checks the arguments; the timeout as a Duration.
fn checked_arguments(name: &str, max_rows: i32, timeout: &Interval) -> Duration {
    if !(1..=MAX_ROWS).contains(&max_rows) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("pipeline \"{name}\": max_rows must be between 1 and {MAX_ROWS}, got {max_rows}"),
            "A preview shows a sample; pass max_rows => 20, or look at the pipeline's results with flink.expose_results.",
            F,
        );
    }
    let micros = timeout.as_micros();
    if micros <= 0 || micros > MAX_TIMEOUT.as_micros() as i128 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "pipeline \"{name}\": timeout must be more than 0 and at most 10 minutes, got {} s",
                micros as f64 / 1e6
            ),
            "Pass e.g. timeout => '30 seconds'. Event-time windows need rows past their end (plus the watermark delay) before they show.",
            F,
        );
    }
    Duration::from_micros(micros as u64)
}

/// What the query returned and whether the time limit stopped it.
struct Collected {
    columns: Vec<String>,
    rows: Vec<Value>,
    kinds: Vec<String>,
    job_id: Option<String>,
    stop: Stop,
}

/// A failed preview statement: which (None: the query) and the error.
type Failed = (Option<usize>, RestError);

async fn run_preview(
    gw: &Gateway,
    session: &str,
    plan: &PreviewPlan,
    max_rows: usize,
    timeout: Duration,
    wait: Duration,
) -> Result<Collected, Failed> {
    for (i, st) in plan.setup.iter().enumerate() {
        gw.run_statement(session, st, 10, wait)
            .await
            .map_err(|e| (Some(i + 1), e))?;
    }
    let (r, stop) = gw
        .collect(session, &plan.query, max_rows, timeout)
        .await
        .map_err(|e| (None, e))?;
    Ok(Collected {
        columns: r.columns,
        rows: r.rows,
        kinds: r.kinds,
        job_id: r.job_id,
        stop,
    })
}

#[pg_schema]
mod flink {
    use super::*;

    /// Runs a stored pipeline's query (not its INSERT) on its cluster against the data present
    /// and returns up to `max_rows` result rows as JSON objects, collecting for at most
    /// `timeout`; the preview's Flink job is cancelled before it returns. See docs/sql.md.
    #[pg_extern(volatile, parallel_unsafe)]
    fn preview(
        pipeline: &str,
        max_rows: default!(i32, 20),
        timeout: default!(Interval, "'10 seconds'"),
    ) -> SetOfIterator<'static, JsonB> {
        let name = pipeline;
        let limit = checked_arguments(name, max_rows, &timeout);
        if !stored::may_reveal() {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("pipeline \"{name}\": previewing needs flink_admin"),
                "A preview reads the pipeline's datasources with their secrets, as flink.start does; ask for flink_admin.",
                F,
            );
        }
        let p = stored_pipeline(name, true, F);
        let (cat, secrets) = catalog_of(&p.datasources).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("pipeline \"{name}\": {e}"),
                "Check flink.datasources.",
                F,
            )
        });
        let database: Database = stored::this_database();
        let def = Definition {
            name: &p.name,
            template: &p.template,
            params: &p.params,
            options: &p.options,
            database: &database,
            version: p.version,
            flink_version: p.flink_version.as_deref(),
        };
        let script = pipeline::render_script(&def, &cat).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                scrub(&format!("pipeline \"{name}\": {}", e.message), &secrets),
                "Check the pipeline with flink.render(name) and flink.validate(name).",
                F,
            )
        });
        let tag = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let job_name = preview::job_name(&database.name, &p.name, &tag);
        let plan = preview::plan(&script, &job_name).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("pipeline \"{name}\": {}", e.message),
                e.hint,
                F,
            )
        });
        let (gateway_url, rest_url) = cluster_urls(&p);
        let limits = gucs::http_limits();
        let wait = gucs::statement_wait();
        let gw =
            Gateway::new(&gateway_url, limits).unwrap_or_else(|e| crate::errors::raise_rest(&e, F));
        let session = interruptible::run(gw.open_session("pg_flink preview", &plan.session))
            .unwrap_or_else(|e| crate::errors::raise_rest(&e, F));
        let mut leftovers = Leftovers {
            gw: gw.clone(),
            rest_url,
            limits,
            session: session.clone(),
            job_name,
            armed: true,
        };
        let out = interruptible::run(run_preview(
            &gw,
            &session,
            &plan,
            max_rows as usize,
            limit,
            wait,
        ));
        let job_id = out.as_ref().ok().and_then(|c| c.job_id.clone());
        let ended = interruptible::run(leftovers.end(job_id));
        leftovers.armed = false;
        if let Err(why) = ended {
            pgrx::warning!(
                "pipeline \"{name}\": could not make sure the preview's Flink job ended: {}",
                scrub(&why, &secrets)
            );
        }
        let c = match out {
            Ok(c) => c,
            Err((statement, e)) => {
                let context = match statement {
                    Some(n) => format!(
                        "pipeline \"{name}\": statement {n} of the preview (a SET or CREATE TEMPORARY TABLE of the pipeline) failed: "
                    ),
                    None => format!("pipeline \"{name}\": the preview query failed: "),
                };
                rest_error_report_in(&scrubbed(e, &secrets), &context, F).report_error()
            }
        };
        if c.stop == Stop::Deadline {
            pgrx::notice!(
                "pipeline \"{name}\": the preview stopped at its time limit ({} ms) with {} row{}",
                limit.as_millis(),
                c.rows.len(),
                if c.rows.len() == 1 { "" } else { "s" }
            );
        }
        let rows: Vec<JsonB> = c
            .rows
            .iter()
            .zip(c.kinds.iter())
            .map(|(fields, kind)| JsonB(preview::row_object(&c.columns, kind, fields)))
            .collect();
        SetOfIterator::new(rows)
    }
}
