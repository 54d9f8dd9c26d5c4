//! Drops never orphan a job. After the per-pipeline decisions of a tick, the worker:
//! - finishes the stops of dropped pipelines (`flink.pipeline_drop` rows, written by
//!   `flink.drop_pipeline` in the user's transaction, so a rolled-back drop stops nothing);
//! - stops any other live job that carries this database's identity but whose pipeline no longer
//!   exists (an orphan: e.g. a drop that happened while the worker was down);
//! - removes clusters dropped with `cascade => true` once none of this database's jobs runs there.
//!
//! [`stop_all_jobs`] is the last resort used after `DROP EXTENSION` (by the database's worker)
//! and after `DROP DATABASE` (by the launcher): it cancels every live job of the database in the
//! clusters it last used.
use super::decide::is_terminal_name;
use super::identity::JobName;
use super::registry::Entry;
use super::store::{self, DropRow, Snapshot};
use super::worker::Worker;
use crate::flink::{JobManager, OverviewJob};
use crate::gucs;
use pgrx::prelude::*;

impl Worker<'_> {
    pub(super) fn cleanup(&self, snap: &Snapshot) {
        for drop in &snap.drops {
            if let Err(e) = self.finish_drop(snap, drop) {
                warning!(
                    "pg_flink worker: dropped pipeline \"{}\": {e}",
                    drop.pipeline
                );
            }
        }
        let dropped: Vec<&str> = snap.drops.iter().map(|d| d.pipeline.as_str()).collect();
        let pipelines: std::collections::HashSet<&str> =
            snap.all_pipelines.iter().map(String::as_str).collect();
        let mut seen = std::collections::BTreeSet::new();
        for c in &snap.clusters {
            let Some(index) = self.index.get(&c.rest_url) else {
                continue;
            };
            for (pipeline, job) in index.orphans(&pipelines) {
                // Dropped pipelines' jobs are finished above (with their savepoint choice).
                if dropped.contains(&pipeline) || !orphan_for_long(&job.jid, &mut seen) {
                    continue;
                }
                let detail = self.cancel_in(&c.rest_url, &job.jid);
                let _ = store::orphan_stopped(pipeline, &job.name, &job.jid, &detail);
            }
            if c.dropping {
                let ours = index.any_live();
                let stopping = snap.pipelines.values().any(|p| {
                    p.rest_url.as_deref() == Some(&c.rest_url)
                        && p.job.as_ref().is_some_and(|j| !j.state.is_ended())
                });
                if !ours && !stopping {
                    let _ = store::cluster_dropped(&c.name);
                }
            }
        }
        ORPHANS.with(|o| o.borrow_mut().retain(|jid, _| seen.contains(jid)));
    }

    /// The live jobs of a dropped pipeline, in every cluster of this database.
    fn dropped_jobs(&self, snap: &Snapshot, pipeline: &str) -> Vec<(String, OverviewJob)> {
        let mut out = Vec::new();
        for c in &snap.clusters {
            if let Some(index) = self.index.get(&c.rest_url) {
                for (_, j) in index.live(pipeline) {
                    out.push((c.rest_url.clone(), (*j).clone()));
                }
            }
        }
        out
    }

    fn finish_drop(&self, snap: &Snapshot, drop: &DropRow) -> Result<(), String> {
        if drop.recreated {
            return store::drop_done(
                drop.id,
                None,
                "a pipeline of the same name was created again; its job is reconciled with the new definition",
            );
        }
        // Every cluster must answer before the drop can be called done.
        if snap
            .clusters
            .iter()
            .any(|c| !matches!(self.overviews.get(&c.rest_url), Some(Ok(_))))
        {
            return Ok(());
        }
        let live = self.dropped_jobs(snap, &drop.pipeline);
        let trigger = drop.stop_trigger.as_deref();
        let Some((rest, job)) = live.first() else {
            // Nothing (or nothing more) runs: record the savepoint the stop took, if any (the
            // job may have ended before the trigger was polled: ask Flink now).
            let path = match trigger {
                Some(t) if t.starts_with("done:") => t.strip_prefix("done:").map(str::to_string),
                Some(t) if t.starts_with("sp:") => self.savepoint_of(snap, &t[3..]),
                _ => None,
            };
            let detail = match (&path, trigger) {
                (Some(p), _) => format!("stopped with savepoint {p}"),
                (None, Some(_)) => "stopped".to_string(),
                (None, None) => "no job was running".to_string(),
            };
            return store::drop_done(drop.id, path.as_deref(), &detail);
        };
        let jm = self.jm(rest)?;
        if drop.with_savepoint {
            match trigger {
                None => match self.rt.block_on(jm.stop_with_savepoint(&job.jid, false)) {
                    Ok(t) => return store::drop_progress(drop.id, &format!("sp:{}:{t}", job.jid)),
                    Err(e) => {
                        let why = super::actions::remote_error("savepoint failed", &e);
                        let detail = self.cancel_in(rest, &job.jid);
                        return store::drop_progress(drop.id, &format!("cancel: {why}; {detail}"));
                    }
                },
                Some(t) if t.starts_with("sp:") => {
                    let (jid, trig) = t[3..].split_once(':').unwrap_or(("", ""));
                    return match self.rt.block_on(jm.savepoint_status(jid, trig)) {
                        Ok(Some(path)) => store::drop_progress(drop.id, &format!("done:{path}")),
                        Ok(None) => Ok(()),
                        Err(e) => {
                            let why = super::actions::remote_error("savepoint failed", &e);
                            let detail = self.cancel_in(rest, &job.jid);
                            store::drop_progress(drop.id, &format!("cancel: {why}; {detail}"))
                        }
                    };
                }
                // Savepoint taken or cancel sent: wait for Flink to end the job.
                Some(_) => return Ok(()),
            }
        }
        if trigger.is_none() {
            let detail = self.cancel_in(rest, &job.jid);
            return store::drop_progress(drop.id, &format!("cancel: {detail}"));
        }
        Ok(())
    }

    /// The path of a completed stop-with-savepoint (`<jid>:<trigger>`), asked of every cluster.
    fn savepoint_of(&self, snap: &Snapshot, jid_trigger: &str) -> Option<String> {
        let (jid, trigger) = jid_trigger.split_once(':')?;
        snap.clusters.iter().find_map(|c| {
            let jm = self.jm(&c.rest_url).ok()?;
            self.rt
                .block_on(jm.savepoint_status(jid, trigger))
                .ok()
                .flatten()
        })
    }

    /// Cancels a job; the text to record.
    fn cancel_in(&self, rest: &str, jid: &str) -> String {
        match self.jm(rest) {
            Ok(jm) => match self.rt.block_on(jm.cancel(jid)) {
                Ok(()) => format!("cancelled Flink job {jid}"),
                Err(e) => {
                    super::actions::remote_error(&format!("cancel of Flink job {jid} failed"), &e)
                }
            },
            Err(e) => e,
        }
    }
}

/// How long a job must stay an orphan before it is stopped: a restore that is not a single
/// transaction (`pg_restore --clean`) briefly has job rows without their pipelines.
pub(super) const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

thread_local! {
    /// Orphaned jobs and when they were first seen so.
    static ORPHANS: std::cell::RefCell<std::collections::BTreeMap<String, std::time::Instant>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// Whether the job has been an orphan for [`ORPHAN_GRACE`]; records it as seen this tick.
fn orphan_for_long(jid: &str, seen: &mut std::collections::BTreeSet<String>) -> bool {
    seen.insert(jid.to_string());
    ORPHANS.with(|o| {
        let mut o = o.borrow_mut();
        let since = o
            .entry(jid.to_string())
            .or_insert_with(std::time::Instant::now);
        since.elapsed() >= ORPHAN_GRACE
    })
}

/// Cancels every live job of a database (by `owns`) in the clusters its entry lists. Used when
/// nothing in Postgres can want them any more: after DROP EXTENSION and DROP DATABASE.
pub fn stop_all_jobs(
    rt: &tokio::runtime::Runtime,
    entry: &Entry,
    owns: impl Fn(&JobName) -> bool,
) -> usize {
    let mut stopped = 0;
    for rest in &entry.clusters {
        let Ok(jm) = JobManager::new(rest, gucs::http_limits()) else {
            continue;
        };
        let Ok(jobs) = rt.block_on(jm.jobs_overview()) else {
            warning!(
                "pg_flink: database \"{}\" is gone but the JobManager at {rest} cannot be reached; its jobs there were not stopped",
                entry.name
            );
            continue;
        };
        for j in jobs {
            if is_terminal_name(&j.state) || !JobName::parse(&j.name).is_some_and(|n| owns(&n)) {
                continue;
            }
            match rt.block_on(jm.cancel(&j.jid)) {
                Ok(()) => {
                    stopped += 1;
                    log!(
                        "pg_flink: cancelled Flink job {} ({}) of database \"{}\", whose pg_flink is gone",
                        j.jid,
                        j.name,
                        entry.name
                    );
                }
                Err(e) => warning!("pg_flink: cancel of Flink job {} failed: {e}", j.jid),
            }
        }
    }
    stopped
}
