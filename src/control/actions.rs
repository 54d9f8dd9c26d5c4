//! Carrying out one [`Action`] for one pipeline: submit (render in Rust from the pipeline's own
//! datasources and run the script through the SQL Gateway), adopt, observe, record a lost job,
//! stop (with a savepoint or cancel) and upgrade. Network calls happen outside transactions and
//! are bounded by timeouts; every state change goes through [`store`].
use super::decide::{Action, Tracked};
use super::identity::job_name;
use super::state::JobState;
use super::store::{self, PipelineRow};
use super::worker::{stopping, Worker};
use crate::flink::{JobManager, RestError};
use crate::gucs;
use std::time::{Duration, Instant};

impl Worker<'_> {
    pub(super) fn act(
        &self,
        it: &PipelineRow,
        tracked: Option<&Tracked>,
        action: Action,
    ) -> Result<(), String> {
        match action {
            Action::Nothing => Ok(()),
            Action::Submit => self.submit(it, it.from_savepoint.as_deref()),
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
                store::transition(id, state, Some(&jid), None, error.as_deref())
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
            Action::Stop { jid, savepoint } => self.stop(it, &jid, savepoint).map(|_| ()),
            Action::Upgrade { jid } => {
                let path = self.stop(it, &jid, true)?;
                self.submit(it, path.as_deref())
            }
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
            &job_name(self.database, pipeline, version),
            state,
            jid,
            savepoint,
        )
    }

    fn jobmanager(&self, it: &PipelineRow) -> Result<JobManager, String> {
        let rest = it.rest_url.as_deref().ok_or("no cluster")?;
        JobManager::new(rest, gucs::http_limits()).map_err(|e| e.to_string())
    }

    /// Details are fetched on change only: the latest completed checkpoint when a job changes
    /// state (and before it is stopped).
    fn record_checkpoint(&self, it: &PipelineRow, id: i64, jid: &str) {
        let Ok(jm) = self.jobmanager(it) else {
            return;
        };
        if let Ok(Some(ms)) = self.rt.block_on(jm.latest_checkpoint_ms(jid)) {
            let _ = store::checkpoint(id, ms);
        }
    }

    fn root_exception(&self, it: &PipelineRow, jid: &str) -> Option<String> {
        let jm = self.jobmanager(it).ok()?;
        self.rt.block_on(jm.root_exception(jid)).ok().flatten()
    }

    /// Stops a job; returns the savepoint path when one was taken.
    fn stop(&self, it: &PipelineRow, jid: &str, savepoint: bool) -> Result<Option<String>, String> {
        let jm = self.jobmanager(it)?;
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
        if !savepoint {
            return match self.rt.block_on(jm.cancel(jid)) {
                Ok(()) => store::transition(id, JobState::Stopped, None, Some("cancelled"), None)
                    .map(|_| None),
                Err(e) => {
                    stop_failed(id, &format!("cancel failed: {e}"))?;
                    Err(e.to_string())
                }
            };
        }
        let trigger = match self.rt.block_on(jm.stop_with_savepoint(jid, it.drain)) {
            Ok(t) => t,
            Err(e) => {
                stop_failed(id, &format!("stop with savepoint failed: {e}"))?;
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
                    store::savepoint(&it.pipeline, id, &path)?;
                    store::transition(
                        id,
                        JobState::Stopped,
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
                    stop_failed(id, "stop with savepoint did not complete within 60 s")?;
                    return Err("savepoint timeout".into());
                }
                Err(e) => {
                    stop_failed(id, &format!("savepoint failed: {e}"))?;
                    return Err(e.to_string());
                }
            }
        }
    }

    /// Renders the pipeline from its own datasources and submits it in one gateway session.
    fn submit(&self, it: &PipelineRow, savepoint: Option<&str>) -> Result<(), String> {
        let gw_url = it.gateway_url.as_deref().ok_or("no cluster")?;
        let id = self.begin(&it.pipeline, JobState::Submitting, None, savepoint)?;
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
        let result: Result<Option<String>, RestError> = self.rt.block_on(async {
            let gw = crate::flink::Gateway::new(gw_url, gucs::http_limits())?;
            let results = gw
                .run_script(
                    &format!("pg_flink submit {}", it.pipeline),
                    &statements,
                    10,
                    gucs::statement_wait(),
                )
                .await
                .map_err(|f| f.error)?;
            Ok(results.into_iter().rev().find_map(|r| r.job_id))
        });
        match result {
            Ok(Some(jid)) => store::transition(
                id,
                JobState::Created,
                Some(&jid),
                Some(&format!("submitted as Flink job {jid}")),
                None,
            ),
            Ok(None) => submit_failed("the gateway returned no job id"),
            Err(e) => submit_failed(&crate::datasource::scrub(&e.to_string(), &secrets)),
        }
    }
}

/// A stop that did not happen: the job runs on, with the reason recorded.
fn stop_failed(id: i64, why: &str) -> Result<(), String> {
    store::transition(id, JobState::Running, None, None, Some(why))
}
