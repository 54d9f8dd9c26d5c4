//! The states of the control plane as types: what a user asks for ([`Desired`]) and the state of
//! a job as pg_flink records it ([`JobState`]: Flink's own job states plus the states only
//! pg_flink knows). `flink.job.state` has a CHECK constraint listing exactly [`JobState::ALL`]
//! (sql/install/control.sql; a unit test keeps the two in step).
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the user asked for (`flink.start` / `flink.stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Stopped,
}

/// A job's state: Flink's `JobStatus` values (1.20 and 2.x) and pg_flink's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    // pg_flink's own states.
    /// The worker is submitting the job (the row exists before the gateway is called).
    Submitting,
    /// The submission failed; retried with backoff.
    SubmitFailed,
    /// The worker is stopping the job (savepoint or cancel in progress).
    Stopping,
    /// A stop that had to take a savepoint could not: the job runs on (see last_error).
    StopFailed,
    /// pg_flink stopped the job (with or without a savepoint) and Flink reports it ended.
    Stopped,
    /// The job vanished from the JobManager.
    Lost,
    /// The job row names another database's job (a restored or copied database): not ours.
    Detached,
    // Flink's JobStatus.
    Initializing,
    Created,
    Running,
    Failing,
    Failed,
    Cancelling,
    Canceled,
    Finished,
    Restarting,
    Suspended,
    Reconciling,
}

impl JobState {
    /// Every state, in the order of the SQL CHECK constraint.
    pub const ALL: [JobState; 18] = [
        JobState::Submitting,
        JobState::SubmitFailed,
        JobState::Stopping,
        JobState::StopFailed,
        JobState::Stopped,
        JobState::Lost,
        JobState::Detached,
        JobState::Initializing,
        JobState::Created,
        JobState::Running,
        JobState::Failing,
        JobState::Failed,
        JobState::Cancelling,
        JobState::Canceled,
        JobState::Finished,
        JobState::Restarting,
        JobState::Suspended,
        JobState::Reconciling,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Submitting => "SUBMITTING",
            JobState::SubmitFailed => "SUBMIT_FAILED",
            JobState::Stopping => "STOPPING",
            JobState::StopFailed => "STOP_FAILED",
            JobState::Stopped => "STOPPED",
            JobState::Lost => "LOST",
            JobState::Detached => "DETACHED",
            JobState::Initializing => "INITIALIZING",
            JobState::Created => "CREATED",
            JobState::Running => "RUNNING",
            JobState::Failing => "FAILING",
            JobState::Failed => "FAILED",
            JobState::Cancelling => "CANCELLING",
            JobState::Canceled => "CANCELED",
            JobState::Finished => "FINISHED",
            JobState::Restarting => "RESTARTING",
            JobState::Suspended => "SUSPENDED",
            JobState::Reconciling => "RECONCILING",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// Flink job states that will not change any more.
    pub fn is_globally_terminal(self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Canceled | JobState::Finished
        )
    }

    /// States after which pg_flink's job row is closed (`ended_at` set): nothing runs.
    pub fn is_ended(self) -> bool {
        self.is_globally_terminal()
            || matches!(
                self,
                JobState::Stopped | JobState::Lost | JobState::SubmitFailed | JobState::Detached
            )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<JobState>(&json).unwrap(), s);
        }
        assert_eq!(JobState::parse("running"), None);
        assert!(serde_json::from_str::<JobState>("\"BOGUS\"").is_err());
    }

    #[test]
    fn the_sql_check_constraint_lists_every_state() {
        let sql = include_str!("../../sql/install/40_control.sql");
        let list: Vec<String> = JobState::ALL
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let check = format!("CHECK (state IN ({}))", list.join(", "));
        assert!(sql.contains(&check), "expected {check} in control.sql");
    }
}
