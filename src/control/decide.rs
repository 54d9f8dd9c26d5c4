//! The control plane's decisions, as a pure function of (desired state, what pg_flink recorded,
//! what the cluster reports). The worker gathers the inputs, calls [`decide`], and carries out
//! the action; every branch is unit-tested here without a cluster.
use super::state::{Desired, JobState};
use crate::flink::OverviewJob;

/// Whether a state name from `/jobs/overview` is terminal (unknown names are not).
pub fn is_terminal_name(state: &str) -> bool {
    JobState::parse(state).is_some_and(JobState::is_globally_terminal)
}

/// A job state reported by Flink; an unknown name (a newer Flink) reads as [`JobState::Reconciling`]:
/// alive, but not yet known to be running.
pub fn flink_state(name: &str) -> JobState {
    JobState::parse(name).unwrap_or(JobState::Reconciling)
}

/// What pg_flink recorded about the pipeline's current job (the newest row of flink.jobs).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub flink_job_id: Option<String>,
    pub state: JobState,
    /// Milliseconds since the last failed submission, when the last attempt failed.
    pub failed_ago_ms: Option<u64>,
    pub attempts: u32,
}

/// What the worker should do for one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing to do.
    Nothing,
    /// Submit the current definition (from `savepoint` if set).
    Submit,
    /// A job with this pipeline's identity runs but is not (or no longer) recorded: record it.
    Adopt { jid: String, state: JobState },
    /// The recorded job changed state in the cluster.
    Observe { jid: String, state: JobState },
    /// The recorded job is gone from the cluster (JobManager restarted without HA, or the job
    /// was removed): record LOST.
    Lost,
    /// Stop the running job, with a savepoint or not.
    Stop { jid: String, savepoint: bool },
    /// A running job must give way to a new version (restart / needs_restart): stop it with a
    /// savepoint, then submit from it.
    Upgrade { jid: String },
}

/// Backoff before a failed submission is tried again: 2 s doubling, at most 60 s.
pub fn backoff_ms(attempts: u32) -> u64 {
    (2_000u64 << attempts.min(5).saturating_sub(1)).min(60_000)
}

/// The jobs in the cluster that carry the pipeline's identity `job_name` and still run.
pub fn live_jobs<'a>(cluster: &'a [OverviewJob], job_name_prefix: &str) -> Vec<&'a OverviewJob> {
    cluster
        .iter()
        .filter(|j| {
            !is_terminal_name(&j.state)
                && (j.name == job_name_prefix
                    || j.name.starts_with(&format!("{job_name_prefix}/v")))
        })
        .collect()
}

/// Decides the next action for one pipeline.
///
/// `identity` is `pg_flink/<db>/<pipeline>` (job names add `/v<version>`); `upgrade` is true when
/// a restart was requested (flink.restart, or start after the last job ended).
pub fn decide(
    desired: Desired,
    tracked: Option<&Tracked>,
    cluster: &[OverviewJob],
    identity: &str,
    upgrade: bool,
    stop_with_savepoint: bool,
) -> Action {
    let live = live_jobs(cluster, identity);
    let tracked_jid = tracked.and_then(|t| t.flink_job_id.clone());
    let tracked_live = tracked_jid
        .as_ref()
        .and_then(|id| live.iter().find(|j| &j.jid == id));
    match desired {
        Desired::Running => {
            if let Some(j) = tracked_live {
                if upgrade {
                    return Action::Upgrade { jid: j.jid.clone() };
                }
                if tracked.is_some_and(|t| t.state != flink_state(&j.state)) {
                    return Action::Observe {
                        jid: j.jid.clone(),
                        state: flink_state(&j.state),
                    };
                }
                return Action::Nothing;
            }
            // A live job of this pipeline that we do not track (crash between submit and
            // commit of its row, or tracking lost): adopt it instead of submitting a duplicate.
            if let Some(j) = live.first() {
                return Action::Adopt {
                    jid: j.jid.clone(),
                    state: flink_state(&j.state),
                };
            }
            let Some(t) = tracked else {
                return Action::Submit;
            };
            match t.state {
                // A failed submission: retry with backoff.
                JobState::SubmitFailed
                    if t.failed_ago_ms
                        .is_some_and(|ago| ago < backoff_ms(t.attempts)) =>
                {
                    Action::Nothing
                }
                // A submission whose outcome was never recorded (crash), no live job with our
                // identity (checked above), a deliberate stop, or a lost job: submit.
                JobState::SubmitFailed
                | JobState::Submitting
                | JobState::Stopped
                | JobState::Lost => Action::Submit,
                _ => {
                    let Some(jid) = &t.flink_job_id else {
                        return Action::Submit;
                    };
                    match cluster.iter().find(|j| &j.jid == jid) {
                        // The recorded job ended: record that first.
                        Some(j) if t.state != flink_state(&j.state) => Action::Observe {
                            jid: jid.clone(),
                            state: flink_state(&j.state),
                        },
                        // Ended (FAILED/FINISHED/CANCELED): no resubmission loop; a restart
                        // (or start after the failure) asks for a new job.
                        Some(_) if upgrade => Action::Submit,
                        Some(_) => Action::Nothing,
                        None if !t.state.is_globally_terminal() => Action::Lost,
                        None if upgrade => Action::Submit,
                        None => Action::Nothing,
                    }
                }
            }
        }
        Desired::Stopped => {
            if let Some(j) = tracked_live.or(live.first()) {
                return Action::Stop {
                    jid: j.jid.clone(),
                    savepoint: stop_with_savepoint,
                };
            }
            if let Some(t) = tracked {
                if let Some(jid) = &t.flink_job_id {
                    if let Some(j) = cluster.iter().find(|j| &j.jid == jid) {
                        let now = flink_state(&j.state);
                        if t.state != now && t.state != JobState::Stopped {
                            return Action::Observe {
                                jid: jid.clone(),
                                state: now,
                            };
                        }
                    }
                }
            }
            Action::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "pg_flink/db/p";

    fn job(jid: &str, version: i32, state: &str) -> OverviewJob {
        OverviewJob {
            jid: jid.into(),
            name: format!("{ID}/v{version}"),
            state: state.into(),
            start_time: 0,
            end_time: 0,
        }
    }

    fn tracked(jid: Option<&str>, state: &str) -> Tracked {
        Tracked {
            flink_job_id: jid.map(str::to_string),
            state: JobState::parse(state).unwrap(),
            failed_ago_ms: None,
            attempts: 0,
        }
    }

    #[test]
    fn first_start_submits() {
        assert_eq!(
            decide(Desired::Running, None, &[], ID, false, true),
            Action::Submit
        );
    }

    #[test]
    fn running_job_is_left_alone_and_state_changes_are_observed() {
        let c = [job("a", 1, "RUNNING")];
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "RUNNING")),
                &c,
                ID,
                false,
                true
            ),
            Action::Nothing
        );
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "CREATED")),
                &c,
                ID,
                false,
                true
            ),
            Action::Observe {
                jid: "a".into(),
                state: JobState::Running
            }
        );
    }

    #[test]
    fn untracked_live_job_is_adopted_never_duplicated() {
        // Crash after submit, before the job id was committed.
        let c = [job("x", 1, "RUNNING")];
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(None, "SUBMITTING")),
                &c,
                ID,
                false,
                true
            ),
            Action::Adopt {
                jid: "x".into(),
                state: JobState::Running
            }
        );
        assert_eq!(
            decide(Desired::Running, None, &c, ID, false, true),
            Action::Adopt {
                jid: "x".into(),
                state: JobState::Running
            }
        );
        // Another pipeline's job is not ours.
        let other = [OverviewJob {
            jid: "o".into(),
            name: "pg_flink/db/p2/v1".into(),
            state: "RUNNING".into(),
            start_time: 0,
            end_time: 0,
        }];
        assert_eq!(
            decide(Desired::Running, None, &other, ID, false, true),
            Action::Submit
        );
    }

    #[test]
    fn vanished_job_is_lost_then_resubmitted() {
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "RUNNING")),
                &[],
                ID,
                false,
                true
            ),
            Action::Lost
        );
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "LOST")),
                &[],
                ID,
                false,
                true
            ),
            Action::Submit
        );
    }

    #[test]
    fn failed_job_is_recorded_and_not_resubmitted_in_a_loop() {
        let c = [job("a", 1, "FAILED")];
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "RUNNING")),
                &c,
                ID,
                false,
                true
            ),
            Action::Observe {
                jid: "a".into(),
                state: JobState::Failed
            }
        );
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "FAILED")),
                &c,
                ID,
                false,
                true
            ),
            Action::Nothing
        );
        // A restart (upgrade) resubmits.
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "FAILED")),
                &c,
                ID,
                true,
                true
            ),
            Action::Submit
        );
    }

    #[test]
    fn failed_submission_backs_off() {
        let mut t = tracked(None, "SUBMIT_FAILED");
        t.attempts = 1;
        t.failed_ago_ms = Some(500);
        assert_eq!(
            decide(Desired::Running, Some(&t), &[], ID, false, true),
            Action::Nothing
        );
        t.failed_ago_ms = Some(2_500);
        assert_eq!(
            decide(Desired::Running, Some(&t), &[], ID, false, true),
            Action::Submit
        );
        assert_eq!(backoff_ms(1), 2_000);
        assert_eq!(backoff_ms(3), 8_000);
        assert_eq!(backoff_ms(30), 32_000);
    }

    #[test]
    fn interrupted_submission_is_retried_only_without_a_live_job() {
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(None, "SUBMITTING")),
                &[],
                ID,
                false,
                true
            ),
            Action::Submit
        );
    }

    #[test]
    fn start_after_a_stop_submits_again() {
        let c = [job("a", 1, "FINISHED")];
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "STOPPED")),
                &c,
                ID,
                false,
                true
            ),
            Action::Submit
        );
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "STOPPED")),
                &[],
                ID,
                false,
                true
            ),
            Action::Submit
        );
    }

    #[test]
    fn stop_and_upgrade() {
        let c = [job("a", 1, "RUNNING")];
        assert_eq!(
            decide(
                Desired::Stopped,
                Some(&tracked(Some("a"), "RUNNING")),
                &c,
                ID,
                false,
                true
            ),
            Action::Stop {
                jid: "a".into(),
                savepoint: true
            }
        );
        assert_eq!(
            decide(Desired::Stopped, None, &c, ID, false, false),
            Action::Stop {
                jid: "a".into(),
                savepoint: false
            }
        );
        assert_eq!(
            decide(
                Desired::Stopped,
                Some(&tracked(Some("a"), "STOPPED")),
                &[job("a", 1, "FINISHED")],
                ID,
                false,
                true
            ),
            Action::Nothing
        );
        assert_eq!(
            decide(
                Desired::Running,
                Some(&tracked(Some("a"), "RUNNING")),
                &c,
                ID,
                true,
                true
            ),
            Action::Upgrade { jid: "a".into() }
        );
    }
}
