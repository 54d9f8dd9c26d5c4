//! The control plane's decisions, as a pure function of (desired state, what pg_flink recorded,
//! what the cluster reports). The worker gathers the inputs, calls [`decide`], and carries out
//! the action; every branch is unit-tested here without a cluster. Slow work (a savepoint, a
//! cancel) is never waited for inside one decision: a stop is a state (`STOPPING`) that later
//! ticks carry on ([`Action::ContinueStop`]), so one pipeline never holds up another.
use super::identity::{Database, Owner};
use super::state::{Desired, JobState};
use crate::flink::OverviewJob;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: job ids and pipeline names are short and not attacker-chosen in a way that matters
/// here (a slow map only slows the tick), and SipHash was a tenth of a tick at 10,000 jobs.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Whether a state name from `/jobs/overview` is terminal (unknown names are not).
pub fn is_terminal_name(state: &str) -> bool {
    JobState::parse(state).is_some_and(JobState::is_globally_terminal)
}

/// A job state reported by Flink; an unknown name (a newer Flink) reads as
/// [`JobState::Reconciling`]: alive, but not yet known to be running.
pub fn flink_state(name: &str) -> JobState {
    JobState::parse(name).unwrap_or(JobState::Reconciling)
}

/// What pg_flink recorded about the pipeline's current job (the newest row of flink.jobs).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked<'a> {
    pub flink_job_id: Option<&'a str>,
    pub job_name: Option<&'a str>,
    /// `job_name` names a job of another database or instance (this one is a restored copy).
    pub foreign: bool,
    pub state: JobState,
    /// Milliseconds since the last failed submission, when the last attempt failed.
    pub failed_ago_ms: Option<u64>,
    pub attempts: u32,
    /// Flink's last-modification time of the job when pg_flink last read its details.
    pub modified_ms: Option<i64>,
    /// The job's details (restart count, checkpoint) are due for a refresh.
    pub details_due: bool,
}

/// What the worker should do for one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing to do.
    Nothing,
    /// Submit the current definition (from a savepoint if one is pending).
    Submit,
    /// A job with this pipeline's identity runs but is not (or no longer) recorded: record it.
    Adopt { jid: String, state: JobState },
    /// The recorded job changed state in the cluster.
    Observe { jid: String, state: JobState },
    /// The recorded job changed in Flink without changing state (a restart, a checkpoint), or
    /// its details are due: read them (restart count, root cause, last checkpoint). `changed`:
    /// Flink reported a change (last-modification moved), not just the timer.
    Refresh { jid: String, changed: bool },
    /// The recorded job is gone from the cluster (JobManager restarted without HA, or the job
    /// was removed): record LOST.
    Lost,
    /// The job row names a job of another database (this one was restored or copied from it):
    /// record DETACHED and stop wanting anything; the job is never touched.
    Detach { job_name: String },
    /// Begin stopping the job, with a savepoint or not.
    Stop { jid: String, savepoint: bool },
    /// A stop is in progress: poll its savepoint, retry, fall back, or record the end once Flink
    /// reports the job ended (`live` is false).
    ContinueStop { jid: Option<String>, live: bool },
}

/// Backoff before a failed submission is tried again: 2 s doubling, at most 60 s.
pub fn backoff_ms(attempts: u32) -> u64 {
    (2_000u64 << attempts.min(5).saturating_sub(1)).min(60_000)
}

/// One tick's `/jobs/overview` of a cluster, indexed once (a tick looks up every pipeline's
/// jobs: scanning the whole list per pipeline made a tick quadratic in the number of jobs).
/// Built without allocating per job: names are matched in place ([`Owner`]).
#[derive(Debug)]
pub struct ClusterIndex<'a> {
    by_jid: FastMap<&'a str, &'a OverviewJob>,
    /// Live (not globally terminal) jobs of this database, grouped by pipeline (in listing
    /// order within a group); `groups` gives each pipeline's range.
    live: Vec<(&'a str, &'a OverviewJob)>,
    groups: FastMap<&'a str, (u32, u32)>,
    owner: Owner,
}

/// The live jobs of one pipeline in a [`ClusterIndex`].
pub type Live<'i, 'a> = &'i [(&'a str, &'a OverviewJob)];

impl<'a> ClusterIndex<'a> {
    pub fn new(jobs: &'a [OverviewJob], db: &Database) -> Self {
        let owner = Owner::new(db);
        let mut by_jid = FastMap::with_capacity_and_hasher(jobs.len(), Default::default());
        // Two passes, one hash lookup per job each: count per pipeline, then place.
        let mut groups: FastMap<&'a str, (u32, u32)> = FastMap::default();
        let mut owned = Vec::with_capacity(jobs.len());
        for j in jobs {
            by_jid.entry(j.jid.as_str()).or_insert(j);
            if is_terminal_name(&j.state) {
                continue;
            }
            if let Some(p) = owner.pipeline_of(&j.name) {
                groups.entry(p).or_insert((0, 0)).1 += 1;
                owned.push((p, j));
            }
        }
        // Each group's range: (start, start) first, its end moving up as the group is filled.
        let mut next = 0u32;
        for g in groups.values_mut() {
            let count = g.1;
            *g = (next, next);
            next += count;
        }
        let mut live: Vec<Option<(&'a str, &'a OverviewJob)>> = vec![None; owned.len()];
        for (p, j) in owned {
            if let Some(g) = groups.get_mut(p) {
                live[g.1 as usize] = Some((p, j));
                g.1 += 1;
            }
        }
        ClusterIndex {
            by_jid,
            live: live.into_iter().flatten().collect(),
            groups,
            owner,
        }
    }

    /// The live jobs in the cluster that belong to `pipeline` of this database.
    pub fn live(&self, pipeline: &str) -> Live<'_, 'a> {
        match self.groups.get(pipeline) {
            Some(&(from, to)) => &self.live[from as usize..to as usize],
            None => &[],
        }
    }

    /// The job with this id, live or ended.
    pub fn job(&self, jid: &str) -> Option<&'a OverviewJob> {
        self.by_jid.get(jid).copied()
    }

    /// Whether any job of this database is live in the cluster.
    pub fn any_live(&self) -> bool {
        !self.live.is_empty()
    }

    /// Live jobs of this database whose pipeline is not in `pipelines` (with that pipeline):
    /// orphans to stop.
    pub fn orphans(&self, pipelines: &HashSet<&str>) -> Vec<(&'a str, &'a OverviewJob)> {
        self.live
            .iter()
            .filter(|(p, _)| !pipelines.contains(p))
            .copied()
            .collect()
    }

    /// Whether a job name is one of this database's (any pipeline).
    pub fn owns(&self, job_name: &str) -> bool {
        self.owner.pipeline_of(job_name).is_some()
    }
}

/// Everything [`decide`] looks at for one pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub desired: Desired,
    pub tracked: Option<&'a Tracked<'a>>,
    /// The cluster's jobs, indexed for this database (which also says which jobs are ours).
    pub cluster: &'a ClusterIndex<'a>,
    pub pipeline: &'a str,
    /// A restart was requested (flink.restart, or start after the last job ended).
    pub upgrade: bool,
    pub stop_with_savepoint: bool,
}

/// Decides the next action for one pipeline.
pub fn decide(input: Input) -> Action {
    let Input {
        desired,
        tracked,
        cluster,
        pipeline,
        upgrade,
        stop_with_savepoint,
    } = input;
    // A job row that names another database's job (a restored copy): not ours.
    if let Some(t) = tracked {
        if t.foreign && t.state != JobState::Detached {
            return Action::Detach {
                job_name: t.job_name.unwrap_or_default().to_string(),
            };
        }
    }
    let tracked = tracked.filter(|t| t.state != JobState::Detached);
    let live = cluster.live(pipeline);
    let tracked_jid = tracked.and_then(|t| t.flink_job_id);
    let tracked_live = tracked_jid
        .as_ref()
        .and_then(|id| live.iter().map(|(_, j)| *j).find(|j| &j.jid == id));
    // A stop in progress is carried on first, whatever is desired now.
    if tracked.is_some_and(|t| t.state == JobState::Stopping) {
        return Action::ContinueStop {
            jid: tracked_jid.map(str::to_string),
            live: tracked_live.is_some(),
        };
    }
    match desired {
        Desired::Running => {
            if let (Some(j), Some(t)) = (tracked_live, tracked) {
                if upgrade && t.state != JobState::StopFailed {
                    return Action::Stop {
                        jid: j.jid.clone(),
                        savepoint: true,
                    };
                }
                let now = flink_state(&j.state);
                if t.state != now && !(t.state == JobState::StopFailed && now == JobState::Running)
                {
                    return Action::Observe {
                        jid: j.jid.clone(),
                        state: now,
                    };
                }
                let changed = t.modified_ms.is_some_and(|m| m != j.last_modification);
                if t.details_due || changed {
                    return Action::Refresh {
                        jid: j.jid.clone(),
                        changed,
                    };
                }
                return Action::Nothing;
            }
            // A live job of this pipeline that we do not track (crash between submit and
            // commit of its row, or tracking lost): adopt it instead of submitting a duplicate.
            if let Some((_, j)) = live.first() {
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
                | JobState::StopFailed
                | JobState::Lost => Action::Submit,
                _ => {
                    let Some(jid) = t.flink_job_id else {
                        return Action::Submit;
                    };
                    match cluster.job(jid) {
                        // The recorded job ended: record that first.
                        Some(j) if t.state != flink_state(&j.state) => Action::Observe {
                            jid: jid.to_string(),
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
            // Savepoint-or-nothing failed: the job runs on until the user decides.
            if tracked.is_some_and(|t| t.state == JobState::StopFailed) {
                return Action::Nothing;
            }
            if let Some(j) = tracked_live.or(live.first().map(|(_, j)| *j)) {
                return Action::Stop {
                    jid: j.jid.clone(),
                    savepoint: stop_with_savepoint,
                };
            }
            if let Some(t) = tracked {
                if let Some(jid) = t.flink_job_id {
                    if let Some(j) = cluster.job(jid) {
                        let now = flink_state(&j.state);
                        if t.state != now && t.state != JobState::Stopped {
                            return Action::Observe {
                                jid: jid.to_string(),
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
mod tests;
