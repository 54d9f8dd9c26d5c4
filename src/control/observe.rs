//! Metrics rounds, alert evaluation, webhook delivery and the clusters' Flink versions, run by
//! the worker after each reconcile pass (0.3.0 schema).
//!
//! A round samples every running job at once ([`crate::flink::metrics`]) on the background
//! runtime, so a slow JobManager never holds up reconciling; the worker's own thread records
//! the results in one transaction (`flink_internal.record_metrics`, then
//! `flink_internal.evaluate_alerts`) on the first tick after they are in. Webhook POSTs run the
//! same way: queued by the alert evaluation, sent in the background, their outcome recorded
//! (with retries and backoff) by the worker.
use super::state::JobState;
use super::store::{self, Snapshot};
use super::worker::Memory;
use crate::flink::metrics::{JobSample, MetricPlan};
use crate::flink::{HttpLimits, JobManager};
use crate::gucs;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The table a pipeline's job writes its dead letters to: its writer's record count is the
/// dead-letter count.
const DEAD_LETTER_SINK: &str = crate::pipeline::bad_records::SINK_TABLE;

/// How long a job's metric plan is kept when it picked nothing (operators register their
/// metrics a moment after the job starts).
const EMPTY_PLAN_TTL: Duration = Duration::from_secs(5);

/// Concurrent REST calls of one round.
const ROUND_CONCURRENCY: usize = 8;

/// One job to sample.
#[derive(Debug, Clone)]
struct Target {
    pipeline: String,
    job_id: i64,
    jid: String,
    rest: String,
}

type Sampled = Vec<(Target, Result<JobSample, String>)>;
/// Outcomes of webhook POSTs, by alert event id.
type Delivered = Vec<(i64, Result<(), String>)>;
/// Per Flink job id: its metric plan and when it was made.
type Plans = BTreeMap<String, (Arc<MetricPlan>, Instant)>;

/// What the worker keeps between ticks for observation.
#[derive(Default)]
pub struct Observer {
    last_round: Option<Instant>,
    round: Option<JoinHandle<(Sampled, Plans)>>,
    /// Metric plans by Flink job id (moved into a round while it runs).
    plans: Plans,
    webhooks: Option<JoinHandle<Delivered>>,
    /// The last error logged (the same one is not logged every round).
    last_error: Option<String>,
    /// The webhook queue was read empty and nothing made an alert event since: it is not read
    /// again on every poll.
    webhooks_idle: bool,
    /// Each cluster's Flink version as last recorded, and when the versions were last asked.
    versions: BTreeMap<String, String>,
    versions_asked: Option<Instant>,
    asking: Option<JoinHandle<Vec<(String, String)>>>,
}

/// How often each cluster's Flink version is asked again (GET /overview).
const VERSION_INTERVAL: Duration = Duration::from_secs(60);
/// How soon a cluster whose version is not known yet is asked again.
const NEW_CLUSTER_RETRY: Duration = Duration::from_secs(3);

/// Every cluster's Flink version (clusters that do not answer are left out).
async fn versions_of(urls: Vec<String>, limits: HttpLimits) -> Vec<(String, String)> {
    let mut asks = tokio::task::JoinSet::new();
    for url in urls {
        if let Ok(jm) = JobManager::new(&url, limits) {
            asks.spawn(async move { (url, jm.overview().await.map(|o| o.flink_version)) });
        }
    }
    let mut out = Vec::new();
    while let Some(done) = asks.join_next().await {
        if let Ok((url, Ok(v))) = done {
            out.push((url, v));
        }
    }
    out
}

/// The output of the task in `slot` once it has finished (without a background runtime it
/// finished when it was spawned); the slot is then empty.
fn finished<T>(
    slot: &mut Option<JoinHandle<T>>,
    memory: &Memory,
    rt: &tokio::runtime::Runtime,
) -> Option<T> {
    if !slot
        .as_ref()
        .is_some_and(|h| h.is_finished() || memory.background.is_none())
    {
        return None;
    }
    rt.block_on(slot.take()?).ok()
}

/// Runs `fut` on the background runtime, or (without one) to completion right here.
fn spawn<T: Send + 'static>(
    memory: &Memory,
    rt: &tokio::runtime::Runtime,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> JoinHandle<T> {
    match &memory.background {
        Some(bg) => bg.spawn(fut),
        None => {
            let out = rt.block_on(fut);
            rt.spawn(async move { out })
        }
    }
}

/// The jobs to sample this round: running and restarting jobs.
fn targets(snap: &Snapshot) -> Vec<Target> {
    snap.pipelines
        .values()
        .filter_map(|p| {
            let job = p.job.as_ref()?;
            // A crash-looping job is RESTARTING most of the time: its restart count is what
            // the restarting alert needs.
            if !matches!(job.state, JobState::Running | JobState::Restarting) {
                return None;
            }
            Some(Target {
                pipeline: p.pipeline.clone(),
                job_id: job.id,
                jid: job.flink_job_id.clone()?,
                rest: p.rest_url.clone()?,
            })
        })
        .collect()
}

async fn sample_all(
    targets: Vec<Target>,
    mut plans: Plans,
    limits: HttpLimits,
) -> (Sampled, Plans) {
    let gate = Arc::new(tokio::sync::Semaphore::new(ROUND_CONCURRENCY));
    let mut clients: BTreeMap<String, JobManager> = BTreeMap::new();
    let mut asks = tokio::task::JoinSet::new();
    let mut out = Vec::with_capacity(targets.len());
    let keep: std::collections::BTreeSet<String> = targets.iter().map(|t| t.jid.clone()).collect();
    for t in targets {
        let jm = match clients.get(&t.rest) {
            Some(jm) => jm.clone(),
            None => match JobManager::new(&t.rest, limits) {
                Ok(jm) => {
                    clients.insert(t.rest.clone(), jm.clone());
                    jm
                }
                Err(e) => {
                    out.push((t, Err(e.to_string())));
                    continue;
                }
            },
        };
        let plan = plans
            .get(&t.jid)
            .filter(|(p, at)| {
                p.vertices.iter().any(|v| v.picked()) || at.elapsed() < EMPTY_PLAN_TTL
            })
            .map(|(p, at)| (p.clone(), *at));
        let gate = gate.clone();
        asks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let (plan, at) = match plan {
                Some(p) => p,
                None => match jm.metric_plan(&t.jid, Some(DEAD_LETTER_SINK)).await {
                    Ok(p) => (Arc::new(p), Instant::now()),
                    Err(e) => return (t, Err(e.to_string()), None),
                },
            };
            let got = jm.sample(&t.jid, &plan).await.map_err(|e| e.to_string());
            (t, got, Some((plan, at)))
        });
    }
    while let Some(done) = asks.join_next().await {
        if let Ok((t, got, kept)) = done {
            if let Some(k) = kept {
                plans.insert(t.jid.clone(), k);
            }
            out.push((t, got));
        }
    }
    plans.retain(|jid, _| keep.contains(jid));
    (out, plans)
}

fn sample_json(t: &Target, s: &JobSample) -> serde_json::Value {
    serde_json::json!({
        "pipeline": t.pipeline, "job_id": t.job_id, "flink_job_id": t.jid,
        "lag_records": s.lag_records, "lag_seconds": s.lag_seconds,
        "records_in": s.records_in_per_second, "records_out": s.records_out_per_second,
        "backpressure": s.backpressure, "checkpoints_completed": s.checkpoints_completed,
        "checkpoints_failed": s.checkpoints_failed, "last_checkpoint_ms": s.last_checkpoint_ms,
        "restarts": s.restarts, "dead_letters": s.dead_letters,
    })
}

/// Whether any webhook delivery is still pending (a retry waiting for its time).
fn webhooks_pending() -> bool {
    store::in_txn(|| {
        Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM flink.alert_event e JOIN flink.alert_rule r ON r.name = e.rule \
             WHERE e.webhook_status = 'pending' AND r.webhook_url IS NOT NULL)",
        )
        .ok()
        .flatten()
        .unwrap_or(true)
    })
    .unwrap_or(true)
}

/// Records a finished round, evaluates the alert rules; true when alert events were made.
fn record(sampled: &Sampled) -> Result<bool, String> {
    let samples: Vec<serde_json::Value> = sampled
        .iter()
        .filter_map(|(t, r)| r.as_ref().ok().map(|s| sample_json(t, s)))
        .collect();
    let retention = format!("{} minutes", gucs::metrics_retention_min());
    let args: Vec<DatumWithOid<'static>> = vec![
        pgrx::JsonB(serde_json::Value::Array(samples)).into(),
        retention.into(),
    ];
    let recorded = store::in_txn(move || -> Result<(), String> {
        Spi::run("SET LOCAL synchronous_commit = off").map_err(|e| e.to_string())?;
        Spi::run_with_args(
            "SELECT flink_internal.record_metrics($1, $2::interval)",
            &args,
        )
        .map_err(|e| e.to_string())
    })
    .and_then(|r| r)
    .map_err(|e| format!("recording metrics: {e}"));
    // Alerts are evaluated on their own: a failing rule never costs the metrics.
    let evaluated = store::in_txn(|| {
        Spi::get_one::<i32>("SELECT flink_internal.evaluate_alerts()").map_err(|e| e.to_string())
    })
    .and_then(|r| r)
    .map_err(|e| format!("evaluating alerts: {e}"));
    recorded.and(evaluated.map(|n| n.unwrap_or(0) > 0))
}

impl Observer {
    /// One step: record what finished, start what is due.
    pub fn step(memory: &Memory, rt: &tokio::runtime::Runtime, snap: &Snapshot) {
        let mut me = memory.observer.borrow_mut();
        me.record_versions(memory, rt, snap);
        let Some(interval) = gucs::metrics_interval() else {
            return;
        };
        if let Some((sampled, plans)) = finished(&mut me.round, memory, rt) {
            me.plans = plans;
            match record(&sampled) {
                Err(e) if store::briefly_busy() => {
                    debug1!("pg_flink worker: {e}; DDL in progress, this round is dropped");
                }
                Err(e) if me.last_error.as_ref() != Some(&e) => {
                    warning!("pg_flink worker: {e}; logged again only if it changes");
                    me.last_error = Some(e);
                }
                Err(_) => {}
                Ok(events) => {
                    me.last_error = None;
                    if events {
                        me.webhooks_idle = false;
                    }
                }
            }
        }
        let due = me.last_round.is_none_or(|t| t.elapsed() >= interval);
        if me.round.is_none() && due {
            me.last_round = Some(Instant::now());
            let plans = std::mem::take(&mut me.plans);
            let fut = sample_all(targets(snap), plans, gucs::http_limits());
            me.round = Some(spawn(memory, rt, fut));
        }
        me.deliver(memory, rt);
    }

    /// Records the clusters' Flink versions (when they changed), asking again every minute.
    fn record_versions(&mut self, memory: &Memory, rt: &tokio::runtime::Runtime, snap: &Snapshot) {
        for (url, v) in finished(&mut self.asking, memory, rt).unwrap_or_default() {
            if self.versions.get(&url) == Some(&v) {
                continue;
            }
            let args: Vec<DatumWithOid<'static>> = vec![url.clone().into(), v.clone().into()];
            let done = store::in_txn(move || {
                Spi::run_with_args("SELECT flink_internal.cluster_version($1, $2)", &args)
                    .map_err(|e| e.to_string())
            })
            .and_then(|r| r);
            if done.is_ok() {
                self.versions.insert(url, v);
            }
        }
        // Every minute, and within seconds of a cluster being registered.
        let unknown = snap
            .clusters
            .iter()
            .any(|c| !self.versions.contains_key(&c.rest_url));
        let due = self.versions_asked.is_none_or(|t| {
            t.elapsed() >= VERSION_INTERVAL || (unknown && t.elapsed() >= NEW_CLUSTER_RETRY)
        });
        if self.asking.is_none() && due {
            self.versions_asked = Some(Instant::now());
            let urls = snap.clusters.iter().map(|c| c.rest_url.clone()).collect();
            self.asking = Some(spawn(memory, rt, versions_of(urls, gucs::http_limits())));
        }
    }

    /// Records finished webhook POSTs and starts the ones due.
    fn deliver(&mut self, memory: &Memory, rt: &tokio::runtime::Runtime) {
        let attempts = gucs::webhook_attempts();
        if let Some(done) = finished(&mut self.webhooks, memory, rt) {
            let _ = store::in_txn(move || {
                for (id, r) in &done {
                    let err = r.as_ref().err().cloned();
                    let _ = Spi::run_with_args(
                        "SELECT flink_internal.webhook_result($1, $2, $3, $4)",
                        &[(*id).into(), r.is_ok().into(), err.into(), attempts.into()],
                    );
                }
            });
        }
        if self.webhooks.is_some() {
            return;
        }
        // Read after the worker starts, after alert events were made, and while deliveries are
        // pending (retries back off); not on every poll of an idle queue.
        if self.webhooks_idle {
            return;
        }
        let due = store::in_txn(
            || -> Vec<(i64, String, serde_json::Value, serde_json::Value)> {
                Spi::connect(|c| {
                    let rows = c.select(
                        "SELECT id, url, headers, payload FROM flink_internal.webhooks_due(32)",
                        None,
                        &[],
                    )?;
                    let mut out = Vec::new();
                    for r in rows {
                        let id: Option<i64> = r.get(1)?;
                        let url: Option<String> = r.get(2)?;
                        let headers: Option<pgrx::JsonB> = r.get(3)?;
                        let payload: Option<pgrx::JsonB> = r.get(4)?;
                        if let (Some(id), Some(url), Some(h), Some(p)) = (id, url, headers, payload)
                        {
                            out.push((id, url, h.0, p.0));
                        }
                    }
                    Ok::<_, pgrx::spi::SpiError>(out)
                })
                .unwrap_or_default()
            },
        )
        .unwrap_or_default();
        if due.is_empty() {
            // Nothing due now; deliveries waiting for a retry keep the queue read.
            self.webhooks_idle = !webhooks_pending();
            return;
        }
        let limits = gucs::http_limits();
        self.webhooks = Some(spawn(memory, rt, async move {
            let mut out = Vec::with_capacity(due.len());
            for (id, url, headers, payload) in due {
                out.push((
                    id,
                    super::webhook::post(&url, &headers, &payload, limits).await,
                ));
            }
            out
        }));
    }
}
