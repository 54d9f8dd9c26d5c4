//! Carrying out one [`Action`] for one pipeline: submit (render in Rust from the pipeline's own
//! datasources and run the script through the SQL Gateway), adopt, observe, refresh details,
//! record a lost or detached job, and stop — a stop is a state machine carried across ticks
//! (trigger a savepoint, poll it, retry with backoff, fall back to cancel, and record STOPPED
//! only once Flink reports the job ended), so no call here waits for Flink to finish anything.
//! Every state change goes through [`store`].
use super::decide::{flink_state, Action, Tracked};
use super::state::JobState;
use super::store::{self, PipelineRow};
use super::worker::Worker;
use crate::flink::trace::decode;
use crate::flink::{JobManager, RestError};
use crate::gucs;
use pgrx::prelude::*;

/// `stop_trigger` values: a savepoint trigger in progress, a savepoint taken (waiting for the
/// job to end), a cancel sent, a savepoint to retry when due.
const SAVEPOINT: &str = "sp:";
const DONE: &str = "done:";
const CANCEL: &str = "cancel";
const RETRY: &str = "retry";

/// How long one savepoint attempt may take before it counts as failed.
const SAVEPOINT_DEADLINE_MS: i64 = 60_000;

/// Backoff before savepoint attempt `n + 1`: 2 s doubling, at most 30 s.
fn savepoint_backoff_ms(attempts: i32) -> i64 {
    (2_000i64 << attempts.clamp(1, 5).saturating_sub(1)).min(30_000)
}

impl Worker<'_> {
    pub(super) fn act(
        &self,
        it: &PipelineRow,
        tracked: Option<&Tracked>,
        action: Action,
    ) -> Result<(), String> {
        match action {
            Action::Nothing => Ok(()),
            Action::Submit => {
                // A restart resumes from the savepoint its stop took; a start from the one asked for.
                let restart_from = it
                    .restart_requested
                    .then(|| it.job.as_ref().and_then(|j| j.savepoint.clone()))
                    .flatten();
                // A restart that moves the pipeline to a cluster of another Flink major version
                // starts fresh (flink.start refuses such a savepoint unless allowed).
                let (restart_from, note) = match (&restart_from, &it.rest_url) {
                    (Some(sp), Some(rest)) if it.from_savepoint.is_none() && self.observes => {
                        match store::savepoint_mismatch(&it.pipeline, sp, rest) {
                            Some(why) => (None, Some(why)),
                            None => (restart_from, None),
                        }
                    }
                    _ => (restart_from, None),
                };
                self.submit(
                    it,
                    it.from_savepoint.clone().or(restart_from).as_deref(),
                    note.as_deref(),
                )
            }
            Action::Adopt { jid, state } => match (tracked, &it.job) {
                (Some(t), Some(job))
                    if t.flink_job_id.is_none() && t.state == JobState::Submitting =>
                {
                    store::transition(
                        job.id,
                        state,
                        Some(&jid),
                        Some(&format!("adopted running Flink job {jid}")),
                        None,
                    )
                }
                _ => self
                    .begin(&it.pipeline, state, Some(&jid), None)
                    .map(|_| ()),
            },
            Action::Observe { jid, state } => {
                let id = it.job.as_ref().ok_or("no job row")?.id;
                self.record_checkpoint(it, id, &jid);
                // Why a job failed or is restarting: Flink's root exception, fetched on change.
                let error = if matches!(state, JobState::Failed | JobState::Restarting) {
                    self.root_exception(it, &jid)
                } else {
                    None
                };
                store::transition(id, state, Some(&jid), None, error.as_deref())?;
                self.refresh(it, id, &jid, error.is_none())
            }
            Action::Refresh { jid, .. } => {
                let id = it.job.as_ref().ok_or("no job row")?.id;
                self.refresh(it, id, &jid, true)
            }
            Action::Lost => {
                let id = it.job.as_ref().ok_or("no job row")?.id;
                store::transition(
                    id,
                    JobState::Lost,
                    None,
                    Some("the job is no longer known to the JobManager"),
                    None,
                )
            }
            Action::Detach { job_name } => {
                let id = it.job.as_ref().ok_or("no job row")?.id;
                store::detach(
                    id,
                    &format!(
                        "job {job_name} belongs to another database or Postgres instance (this database was restored or copied from it); pg_flink leaves it alone. flink.start() here submits a job of this database's own."
                    ),
                )
            }
            Action::Stop { jid, savepoint } => self.begin_stop(it, &jid, savepoint),
            Action::ContinueStop { jid, live } => self.continue_stop(it, jid.as_deref(), live),
        }
    }

    /// A new job row named for the pipeline's current version.
    fn begin(
        &self,
        pipeline: &str,
        state: JobState,
        jid: Option<&str>,
        savepoint: Option<&str>,
    ) -> Result<i64, String> {
        let version = store::pipeline_version(pipeline)?;
        store::begin_job(
            pipeline,
            &self.database.job_name(pipeline, version),
            state,
            jid,
            savepoint,
        )
    }

    fn jobmanager(&self, it: &PipelineRow) -> Result<&JobManager, String> {
        self.jm(it.rest_url.as_deref().ok_or("no cluster")?)
    }

    /// The latest completed checkpoint (when a job changes state, and before it is stopped).
    fn record_checkpoint(&self, it: &PipelineRow, id: i64, jid: &str) {
        let Ok(jm) = self.jobmanager(it) else {
            return;
        };
        if let Ok(Some(ms)) = self.rt.block_on(jm.latest_checkpoint_ms(jid)) {
            let _ = store::checkpoint(id, ms);
        }
    }

    /// Flink's restart count and last checkpoint; a restart also records Flink's root cause
    /// (unless the caller just did).
    fn refresh(
        &self,
        it: &PipelineRow,
        id: i64,
        jid: &str,
        with_cause: bool,
    ) -> Result<(), String> {
        let jm = self.jobmanager(it)?;
        let restarts = self.rt.block_on(jm.restarts(jid)).ok().flatten();
        let modified = self
            .overview_job(it.rest_url.as_deref(), jid)
            .map(|j| j.last_modification);
        let restarted = restarts.is_some_and(|r| r > 0)
            && it
                .job
                .as_ref()
                .is_some_and(|j| j.flink_modified_ms() != modified);
        let checkpoint = self
            .rt
            .block_on(jm.latest_checkpoint_ms(jid))
            .ok()
            .flatten();
        // Unchanged details are not written again (thousands of running jobs, a few re-read
        // every tick); the worker's copy notes the read either way.
        let read = store::Details {
            restarts,
            checkpoint_ms: checkpoint,
        };
        let job = it.job.as_ref().filter(|j| j.id == id);
        if !job.is_some_and(|j| j.details_unchanged(modified, read)) {
            store::details(id, modified, restarts, checkpoint)?;
        }
        if let Some(job) = job {
            job.details_read(modified, read);
        }
        if restarted && with_cause {
            if let (Some(cause), Some(job)) = (self.root_exception(it, jid), &it.job) {
                store::transition(id, job.state, None, None, Some(&cause))?;
            }
        }
        Ok(())
    }

    fn root_exception(&self, it: &PipelineRow, jid: &str) -> Option<String> {
        let jm = self.jobmanager(it).ok()?;
        self.rt.block_on(jm.root_exception(jid)).ok().flatten()
    }

    /// Begins a stop: STOPPING, then a savepoint trigger (or a cancel) recorded on the job row.
    fn begin_stop(&self, it: &PipelineRow, jid: &str, savepoint: bool) -> Result<(), String> {
        // The job row to update: ours, or a fresh one for an untracked (adopted) job.
        let id = match &it.job {
            Some(job) if job.flink_job_id.as_deref() == Some(jid) => job.id,
            _ => self.begin(&it.pipeline, JobState::Running, Some(jid), None)?,
        };
        self.record_checkpoint(it, id, jid);
        store::transition(
            id,
            JobState::Stopping,
            Some(jid),
            Some(if savepoint {
                "stop with savepoint"
            } else {
                "cancel"
            }),
            None,
        )?;
        if savepoint {
            self.trigger_savepoint(it, id, jid, 0)
        } else {
            self.cancel(it, id, jid)
        }
    }

    /// Asks Flink to stop the job with a savepoint (attempt `done + 1`).
    fn trigger_savepoint(
        &self,
        it: &PipelineRow,
        id: i64,
        jid: &str,
        done: i32,
    ) -> Result<(), String> {
        let jm = self.jobmanager(it)?;
        match self.rt.block_on(jm.stop_with_savepoint(jid, it.drain)) {
            Ok(trigger) => store::stop_progress(
                id,
                &format!("{SAVEPOINT}{trigger}"),
                done + 1,
                Some(SAVEPOINT_DEADLINE_MS),
            ),
            Err(e) => self.savepoint_failed(it, id, jid, done + 1, &e),
        }
    }

    /// Sends a cancel; STOPPED is recorded once Flink reports the job ended.
    fn cancel(&self, it: &PipelineRow, id: i64, jid: &str) -> Result<(), String> {
        let jm = self.jobmanager(it)?;
        let attempts = it.job.as_ref().map_or(0, |j| j.stop_attempts);
        match self.rt.block_on(jm.cancel(jid)) {
            Ok(()) => store::stop_progress(id, CANCEL, attempts, Some(10_000)),
            Err(e) => {
                let why = remote_error("cancel failed", &e);
                store::transition(id, JobState::Stopping, None, None, Some(&why))?;
                store::stop_progress(id, CANCEL, attempts, Some(5_000))
            }
        }
    }

    /// A savepoint attempt failed: retry with backoff, then cancel (or STOP_FAILED when the
    /// user asked for savepoint-or-nothing, or for a restart, which needs the savepoint).
    fn savepoint_failed(
        &self,
        it: &PipelineRow,
        id: i64,
        jid: &str,
        attempts: i32,
        e: &RestError,
    ) -> Result<(), String> {
        let max = gucs::savepoint_retries();
        let why = remote_error(&format!("savepoint attempt {attempts} of {max} failed"), e);
        if attempts < max {
            store::transition(id, JobState::Stopping, None, None, Some(&why))?;
            return store::stop_progress(id, RETRY, attempts, Some(savepoint_backoff_ms(attempts)));
        }
        if it.savepoint_required || it.restart_requested {
            return store::transition(
                id,
                JobState::StopFailed,
                Some(jid),
                Some("no savepoint could be taken; the job keeps running"),
                Some(&why),
            );
        }
        store::transition(
            id,
            JobState::Stopping,
            None,
            Some("no savepoint could be taken; cancelling the job"),
            Some(&why),
        )?;
        self.cancel(it, id, jid)
    }

    /// One step of a stop in progress.
    fn continue_stop(&self, it: &PipelineRow, jid: Option<&str>, live: bool) -> Result<(), String> {
        let job = it.job.as_ref().ok_or("no job row")?;
        let trigger = job.stop_trigger.clone().unwrap_or_default();
        let Some(jid) = jid else {
            return store::transition(job.id, JobState::Stopped, None, Some("no job"), None);
        };
        if !live {
            // Flink reports the job ended (or no longer knows it): the stop is done.
            let detail = match trigger.strip_prefix(DONE) {
                Some(path) => format!("savepoint {path}"),
                None => match trigger.strip_prefix(SAVEPOINT) {
                    Some(t) => match self.savepoint_path(it, jid, t) {
                        Some(path) => {
                            store::savepoint(&it.pipeline, job.id, &path)?;
                            format!("savepoint {path}")
                        }
                        None => "the job ended before its savepoint completed".into(),
                    },
                    None => "cancelled".into(),
                },
            };
            return store::transition(job.id, JobState::Stopped, None, Some(&detail), None);
        }
        if let Some(t) = trigger.strip_prefix(SAVEPOINT) {
            let jm = self.jobmanager(it)?;
            return match self.rt.block_on(jm.savepoint_status(jid, t)) {
                Ok(Some(path)) => {
                    store::savepoint(&it.pipeline, job.id, &path)?;
                    store::stop_progress(job.id, &format!("{DONE}{path}"), job.stop_attempts, None)
                }
                // A job Flink keeps restarting cannot take a savepoint (not all of its tasks
                // run): count the attempt as failed rather than wait for it.
                Ok(None)
                    if self
                        .overview_job(it.rest_url.as_deref(), jid)
                        .is_some_and(|j| {
                            matches!(
                                flink_state(&j.state),
                                JobState::Restarting
                                    | JobState::Failing
                                    | JobState::Created
                                    | JobState::Initializing
                            )
                        }) =>
                {
                    let why = RestError::Status {
                        service: crate::flink::Service::JobManager,
                        url: it.rest_url.clone().unwrap_or_default(),
                        status: 409,
                        message: "the job is restarting: not all of its tasks run, so no savepoint can complete".into(),
                    };
                    self.savepoint_failed(it, job.id, jid, job.stop_attempts, &why)
                }
                Ok(None) if job.stop_due() => {
                    let why = RestError::Timeout {
                        service: crate::flink::Service::JobManager,
                        url: it.rest_url.clone().unwrap_or_default(),
                        timeout_ms: SAVEPOINT_DEADLINE_MS as u64,
                    };
                    self.savepoint_failed(it, job.id, jid, job.stop_attempts, &why)
                }
                Ok(None) => Ok(()),
                Err(e) => self.savepoint_failed(it, job.id, jid, job.stop_attempts, &e),
            };
        }
        if !job.stop_due() {
            return Ok(());
        }
        match trigger.as_str() {
            RETRY => self.trigger_savepoint(it, job.id, jid, job.stop_attempts),
            CANCEL => self.cancel(it, job.id, jid),
            // A stop interrupted before its first trigger was recorded (a crash).
            "" => self.trigger_savepoint(it, job.id, jid, job.stop_attempts),
            _ => Ok(()),
        }
    }

    fn savepoint_path(&self, it: &PipelineRow, jid: &str, trigger: &str) -> Option<String> {
        let jm = self.jobmanager(it).ok()?;
        self.rt
            .block_on(jm.savepoint_status(jid, trigger))
            .ok()
            .flatten()
    }

    /// Renders the pipeline from its own datasources and submits it in one gateway session.
    fn submit(
        &self,
        it: &PipelineRow,
        savepoint: Option<&str>,
        note: Option<&str>,
    ) -> Result<(), String> {
        let gw_url = it.gateway_url.as_deref().ok_or("no cluster")?;
        let id = self.begin(&it.pipeline, JobState::Submitting, None, savepoint)?;
        if let Some(note) = note.filter(|_| self.observes) {
            store::job_note(id, note);
        }
        let submit_failed =
            |why: &str| store::transition(id, JobState::SubmitFailed, None, None, Some(why));
        let rendered = store::pipeline_def(&it.pipeline)
            .and_then(|def| super::submit::render(&def, self.database));
        let (mut statements, secrets) = match rendered {
            Ok(r) => r,
            Err(e) => return submit_failed(&e),
        };
        if let Some(sp) = savepoint {
            statements.insert(0, super::submit::restore_from(sp));
        }
        // Settings are read here: Postgres state is off limits on the background thread.
        let (gw_url, pipeline) = (gw_url.to_string(), it.pipeline.clone());
        let (limits, wait) = (gucs::http_limits(), gucs::statement_wait());
        let call = async move {
            let gw = crate::flink::Gateway::new(&gw_url, limits)?;
            let results = gw
                .run_script(
                    &format!("pg_flink submit {pipeline}"),
                    &statements,
                    10,
                    wait,
                )
                .await
                .map_err(|f| f.error)?;
            Ok(results.into_iter().rev().find_map(|r| r.job_id))
        };
        // The gateway call (seconds) runs in the background; a later tick records its end.
        if let Some(bg) = &self.memory.background {
            let handle = bg.spawn(call);
            self.memory.submissions.borrow_mut().insert(
                it.pipeline.clone(),
                super::worker::Submission {
                    job_id: id,
                    handle,
                    secrets,
                },
            );
            return Ok(());
        }
        let result = self.rt.block_on(call);
        submitted(id, result, &secrets)
    }

    /// A manual savepoint (flink.savepoint): trigger it, then poll it in later ticks; record the
    /// path (or why it failed). Only a RUNNING job the pipeline wants running takes one.
    pub(super) fn manual_savepoint(&self, it: &PipelineRow, tracked: Option<&Tracked>) {
        let Some(job) = &it.job else { return };
        if !it.savepoint_requested && job.savepoint_trigger.is_none() {
            return;
        }
        let end = |path: Option<&str>, error: Option<&str>| {
            if let Err(e) = store::savepoint_done(job.id, path, error) {
                warning!("pg_flink worker: pipeline \"{}\": {e}", it.pipeline);
            }
        };
        let running = it.desired == super::state::Desired::Running
            && tracked.is_some_and(|t| t.state == JobState::Running);
        let (Some(jid), true) = (job.flink_job_id.as_deref(), running) else {
            if job.state.is_ended() || it.desired != super::state::Desired::Running {
                end(None, Some("the job is not running any more"));
            }
            return; // starting or restarting: try when it runs
        };
        let Ok(jm) = self.jobmanager(it) else { return };
        match &job.savepoint_trigger {
            None => match self.rt.block_on(jm.trigger_savepoint(jid)) {
                Ok(trigger) => {
                    if let Err(e) = store::savepoint_progress(job.id, Some(&trigger)) {
                        warning!("pg_flink worker: pipeline \"{}\": {e}", it.pipeline);
                    }
                }
                Err(e) => end(None, Some(&remote_error("savepoint trigger failed", &e))),
            },
            Some(trigger) => match self.rt.block_on(jm.savepoint_status(jid, trigger)) {
                Ok(Some(path)) => end(Some(&path), None),
                Ok(None)
                    if job
                        .savepoint_trigger_ago_ms()
                        .is_some_and(|ms| ms > MANUAL_SAVEPOINT_DEADLINE_MS) =>
                {
                    end(
                        None,
                        Some(&format!(
                            "the savepoint did not complete within {} s",
                            MANUAL_SAVEPOINT_DEADLINE_MS / 1000
                        )),
                    )
                }
                Ok(None) => {}
                Err(e) => end(None, Some(&remote_error("savepoint failed", &e))),
            },
        }
    }
}

/// Records the submissions that ended since the last tick. Called before the catalog is read,
/// so the tick decides on rows that already say how the submission ended.
pub(super) fn finish_submissions(rt: &tokio::runtime::Runtime, memory: &super::worker::Memory) {
    let done: Vec<String> = memory
        .submissions
        .borrow()
        .iter()
        .filter(|(_, s)| s.handle.is_finished())
        .map(|(p, _)| p.clone())
        .collect();
    for pipeline in &done {
        let Some(s) = memory.submissions.borrow_mut().remove(pipeline) else {
            continue;
        };
        let result = match rt.block_on(s.handle) {
            Ok(r) => r,
            Err(e) => Err(RestError::Decode {
                service: crate::flink::Service::SqlGateway,
                url: String::new(),
                reason: format!("the submission task ended abnormally: {e}"),
            }),
        };
        if let Err(e) = submitted(s.job_id, result, &s.secrets) {
            warning!("pg_flink worker: pipeline \"{pipeline}\": {e}");
        }
    }
}

/// How long a manual savepoint may take before it is recorded as failed.
const MANUAL_SAVEPOINT_DEADLINE_MS: i64 = 600_000;

/// Records how a submission ended.
fn submitted(
    id: i64,
    result: Result<Option<String>, RestError>,
    secrets: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let submit_failed =
        |why: &str| store::transition(id, JobState::SubmitFailed, None, None, Some(why));
    match result {
        Ok(Some(jid)) => store::transition(
            id,
            JobState::Created,
            Some(&jid),
            Some(&format!("submitted as Flink job {jid}")),
            None,
        ),
        Ok(None) => submit_failed("the gateway returned no job id"),
        Err(e) => submit_failed(&crate::datasource::scrub(&e.to_string(), secrets)),
    }
}

/// A remote failure as stored and shown: decoded and capped; the whole text is logged once.
pub(super) fn remote_error(context: &str, e: &RestError) -> String {
    let full = e.to_string();
    let shown = format!("{context}: {}", decode(&full));
    if full.len() > shown.len() {
        pgrx::log!("pg_flink worker: {context}: {full}");
    }
    shown
}
