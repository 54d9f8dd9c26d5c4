//! Sampling a running job's metrics over the JobManager REST API: Kafka lag (records and
//! seconds), records in/out per second, backpressure, checkpoints, restarts, dead letters.
//!
//! Flink names operator metrics after the operator (`Source__orders[1].pendingRecords`,
//! `sink[3]__Writer.numRecordsInPerSecond`), so the ids to ask for are picked once per job from
//! each vertex's metric listing ([`MetricPlan::select`]); later rounds ask for those ids only,
//! aggregated over subtasks (`agg=sum,max`): one request per vertex, one for checkpoints, one for
//! the restart count.
use super::jobmanager::JobManager;
use super::RestError;
use serde_json::Value;

/// What one round measured of one job; None where Flink did not report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSample {
    /// Records of the Kafka sources' partitions not read yet (sum).
    pub lag_records: Option<i64>,
    /// How far behind (event time) the records the sources emit are: Flink's
    /// `currentEmitEventTimeLag`; 0 when nothing is pending and the sources are idle.
    pub lag_seconds: Option<f64>,
    pub records_in_per_second: Option<f64>,
    pub records_out_per_second: Option<f64>,
    /// The busiest vertex's back-pressured share of time, 0..1.
    pub backpressure: Option<f64>,
    pub checkpoints_completed: Option<i64>,
    pub checkpoints_failed: Option<i64>,
    pub last_checkpoint_ms: Option<i64>,
    pub restarts: Option<i64>,
    /// Records the job wrote to its dead-letter topic (since the job started).
    pub dead_letters: Option<i64>,
    /// How long the least idle source subtask has emitted nothing (ms).
    pub idle_ms: Option<f64>,
}

/// The metric ids to ask one vertex for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VertexPlan {
    pub id: String,
    pending: Vec<String>,
    emit_lag: Vec<String>,
    idle: Vec<String>,
    records_in: Vec<String>,
    records_out: Vec<String>,
    dead_letters: Vec<String>,
}

/// The metric ids of a job, per vertex (picked once per job).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricPlan {
    pub vertices: Vec<VertexPlan>,
}

const BACKPRESSURE: &str = "backPressuredTimeMsPerSecond";

/// A source that emitted nothing for this long (ms) is idle.
const IDLE_MS: f64 = 1000.0;

/// The operator part of an operator metric id (`Source__orders[1]` of
/// `Source__orders[1].pendingRecords`) and the metric name.
fn split(id: &str) -> Option<(&str, &str)> {
    let dot = id.rfind('.')?;
    Some((&id[..dot], &id[dot + 1..]))
}

impl VertexPlan {
    /// Picks the ids of one vertex's metric listing. `dead_letter_sink`: the name of the table
    /// the job writes dead letters to (its writer counts them and is not an output).
    pub fn select(id: &str, ids: &[String], dead_letter_sink: Option<&str>) -> VertexPlan {
        let mut plan = VertexPlan {
            id: id.to_string(),
            ..Default::default()
        };
        for m in ids {
            let Some((op, name)) = split(m) else {
                continue;
            };
            // Only the operator's own metrics (`op.name`), not nested groups (`op.Kafka….x`).
            if op.contains('.') {
                continue;
            }
            let source = op.starts_with("Source__");
            let writer = op.ends_with("__Writer") || op.starts_with("Sink__");
            let dead = dead_letter_sink.is_some_and(|d| {
                op.starts_with(&format!("{d}["))
                    || op.starts_with(&format!("Sink__{d}"))
                    || op.starts_with(&format!("{d}__"))
            });
            match name {
                "pendingRecords" if source => plan.pending.push(m.clone()),
                "currentEmitEventTimeLag" if source => plan.emit_lag.push(m.clone()),
                "sourceIdleTime" if source => plan.idle.push(m.clone()),
                "numRecordsOutPerSecond" if source => plan.records_in.push(m.clone()),
                "numRecordsIn" if writer && dead => plan.dead_letters.push(m.clone()),
                "numRecordsInPerSecond" if writer && !dead => plan.records_out.push(m.clone()),
                _ => {}
            }
        }
        plan
    }

    /// Whether any operator metric was picked (right after a job starts, its operators may not
    /// have registered theirs yet).
    pub fn picked(&self) -> bool {
        [
            &self.pending,
            &self.emit_lag,
            &self.records_in,
            &self.records_out,
            &self.dead_letters,
        ]
        .iter()
        .any(|l| !l.is_empty())
    }

    fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = [
            &self.pending,
            &self.emit_lag,
            &self.idle,
            &self.records_in,
            &self.records_out,
            &self.dead_letters,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        ids.push(BACKPRESSURE);
        ids
    }
}

/// One metric aggregated over subtasks: (id, sum, max, min).
type Aggregate = (String, Option<f64>, Option<f64>, Option<f64>);

/// `[{id, sum, max, min}]`.
fn aggregates(v: &Value) -> Vec<Aggregate> {
    let num = |x: Option<&Value>| {
        x.and_then(|x| {
            x.as_f64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|f: &f64| f.is_finite())
    };
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_string();
            Some((id, num(m.get("sum")), num(m.get("max")), num(m.get("min"))))
        })
        .collect()
}

fn add<T: std::ops::Add<Output = T>>(acc: &mut Option<T>, x: T) {
    *acc = Some(match acc.take() {
        Some(a) => a + x,
        None => x,
    });
}

impl JobSample {
    /// Folds one vertex's aggregated metrics into the sample.
    pub fn add_vertex(&mut self, plan: &VertexPlan, v: &Value) {
        let mut emit_lag_ms: Option<f64> = None;
        for (id, sum, max, min) in aggregates(v) {
            let is = |list: &Vec<String>| list.contains(&id);
            if id == BACKPRESSURE {
                if let Some(m) = max {
                    let share = (m / 1000.0).clamp(0.0, 1.0);
                    self.backpressure = Some(self.backpressure.map_or(share, |b| b.max(share)));
                }
            } else if is(&plan.pending) {
                if let Some(s) = sum {
                    add(&mut self.lag_records, s.max(0.0) as i64);
                }
            } else if is(&plan.idle) {
                // The least idle subtask: a source is idle only when all of it is.
                if let Some(m) = min {
                    self.idle_ms = Some(self.idle_ms.map_or(m, |i| i.min(m)));
                }
            } else if is(&plan.emit_lag) {
                if let Some(m) = max {
                    emit_lag_ms = Some(emit_lag_ms.map_or(m, |x| x.max(m)));
                }
            } else if is(&plan.records_in) {
                if let Some(s) = sum {
                    add(&mut self.records_in_per_second, s);
                }
            } else if is(&plan.records_out) {
                if let Some(s) = sum {
                    add(&mut self.records_out_per_second, s);
                }
            } else if is(&plan.dead_letters) {
                if let Some(s) = sum {
                    add(&mut self.dead_letters, s as i64);
                }
            }
        }
        if let Some(ms) = emit_lag_ms {
            let secs = (ms / 1000.0).max(0.0);
            self.lag_seconds = Some(self.lag_seconds.map_or(secs, |l| l.max(secs)));
        }
    }

    /// Caught up — nothing pending and the sources idle for a second — is a lag of 0 s,
    /// whatever the age of the last record emitted (the gauge keeps it while idle). Records
    /// already fetched into the sources' buffers are not pending, so without idleness the
    /// emitted records' age is the lag.
    fn settle(&mut self) {
        if self.lag_records == Some(0) && self.idle_ms.is_some_and(|ms| ms >= IDLE_MS) {
            self.lag_seconds = Some(0.0);
        }
    }
}

fn query(ids: &[&str]) -> String {
    let list: Vec<String> = ids
        .iter()
        .map(|i| url::form_urlencoded::byte_serialize(i.as_bytes()).collect())
        .collect();
    list.join(",")
}

impl JobManager {
    /// The metric ids of every vertex of a running job (one listing per vertex).
    pub async fn metric_plan(
        &self,
        jid: &str,
        dead_letter_sink: Option<&str>,
    ) -> Result<MetricPlan, RestError> {
        let job = self.ep.get(&format!("/jobs/{jid}")).await?;
        let mut plan = MetricPlan::default();
        let ids: Vec<String> = job
            .get("vertices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        for vid in ids {
            let listing = self
                .ep
                .get(&format!("/jobs/{jid}/vertices/{vid}/subtasks/metrics"))
                .await?;
            let names: Vec<String> = listing
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
                .collect();
            plan.vertices
                .push(VertexPlan::select(&vid, &names, dead_letter_sink));
        }
        Ok(plan)
    }

    /// One sample of a running job, by its plan.
    pub async fn sample(&self, jid: &str, plan: &MetricPlan) -> Result<JobSample, RestError> {
        let mut s = JobSample::default();
        // A vertex whose tasks are not running (a job restarting) has no metrics to give; the
        // job-level ones below still do.
        for v in &plan.vertices {
            let got = self
                .ep
                .get(&format!(
                    "/jobs/{jid}/vertices/{}/subtasks/metrics?get={}&agg=sum,max,min",
                    v.id,
                    query(&v.ids())
                ))
                .await;
            if let Ok(got) = got {
                s.add_vertex(v, &got);
            }
        }
        s.settle();
        let job = self
            .ep
            .get(&format!("/jobs/{jid}/metrics?get={JOB_METRICS}"))
            .await?;
        s.add_job_metrics(&job);
        // Checkpoints from the checkpoint statistics, which are current (the metrics the
        // JobManager serves are refreshed only every 10 s); only the fields needed are decoded.
        let cp: Checkpoints = self
            .ep
            .get_typed(&format!("/jobs/{jid}/checkpoints"))
            .await?;
        s.checkpoints_completed = Some(cp.counts.completed);
        s.checkpoints_failed = Some(cp.counts.failed);
        s.last_checkpoint_ms = cp
            .latest
            .and_then(|l| l.completed)
            .map(|c| c.latest_ack_timestamp)
            .filter(|t| *t > 0);
        Ok(s)
    }
}

/// The parts of `GET /jobs/{id}/checkpoints` a sample uses.
#[derive(serde::Deserialize)]
struct Checkpoints {
    counts: CheckpointCounts,
    latest: Option<LatestCheckpoints>,
}

#[derive(serde::Deserialize)]
struct CheckpointCounts {
    completed: i64,
    failed: i64,
}

#[derive(serde::Deserialize)]
struct LatestCheckpoints {
    completed: Option<CompletedCheckpoint>,
}

#[derive(serde::Deserialize)]
struct CompletedCheckpoint {
    latest_ack_timestamp: i64,
}

/// The job-level metrics of one request.
const JOB_METRICS: &str = "numRestarts";

impl JobSample {
    /// `GET /jobs/{id}/metrics?get=…`: `[{"id", "value"}]`, values as strings.
    pub fn add_job_metrics(&mut self, v: &Value) {
        for m in v.as_array().into_iter().flatten() {
            let value = m.get("value").and_then(|x| {
                x.as_i64()
                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            });
            match m.get("id").and_then(Value::as_str) {
                Some("numRestarts") => self.restarts = value,
                Some("numberOfCompletedCheckpoints") => self.checkpoints_completed = value,
                Some("numberOfFailedCheckpoints") => self.checkpoints_failed = value,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_source_sink_and_dead_letter_metrics_of_a_listing() {
        // As Flink 1.20 lists them for a Kafka source chained to a Kafka sink and a dead-letter sink.
        let listing = ids(&[
            "Source__source[4].pendingRecords",
            "Source__source[4].currentEmitEventTimeLag",
            "Source__source[4].numRecordsOutPerSecond",
            "Source__source[4].KafkaSourceReader.KafkaConsumer.records-lag-max",
            "Source__source[4].KafkaSourceReader.topic.t.partition.0.currentOffset",
            "sink[6]__Writer.numRecordsInPerSecond",
            "sink[6]__Committer.numRecordsInPerSecond",
            "dead_letters[9]__Writer.numRecordsIn",
            "dead_letters[9]__Writer.numRecordsInPerSecond",
            "Calc[5].numRecordsInPerSecond",
            "backPressuredTimeMsPerSecond",
            "numRecordsInPerSecond",
        ]);
        let p = VertexPlan::select("v1", &listing, Some("dead_letters"));
        assert_eq!(p.pending, ids(&["Source__source[4].pendingRecords"]));
        assert_eq!(
            p.emit_lag,
            ids(&["Source__source[4].currentEmitEventTimeLag"])
        );
        assert_eq!(
            p.records_in,
            ids(&["Source__source[4].numRecordsOutPerSecond"])
        );
        assert_eq!(
            p.records_out,
            ids(&["sink[6]__Writer.numRecordsInPerSecond"])
        );
        assert_eq!(
            p.dead_letters,
            ids(&["dead_letters[9]__Writer.numRecordsIn"])
        );
        // Without a dead-letter sink its writer is an ordinary output.
        let q = VertexPlan::select("v1", &listing, None);
        assert!(q.dead_letters.is_empty());
        assert_eq!(q.records_out.len(), 2);
        assert!(p.ids().contains(&BACKPRESSURE));
        assert!(p.picked());
        assert!(!VertexPlan::select("v2", &ids(&["numRecordsIn"]), None).picked());
    }

    #[test]
    fn folds_aggregates_over_vertices() {
        let listing = ids(&[
            "Source__a[1].pendingRecords",
            "Source__a[1].currentEmitEventTimeLag",
            "Source__a[1].numRecordsOutPerSecond",
        ]);
        let p = VertexPlan::select("v", &listing, None);
        let mut s = JobSample::default();
        s.add_vertex(
            &p,
            &json!([
                {"id": "Source__a[1].pendingRecords", "sum": 1200.0, "max": 700.0},
                {"id": "Source__a[1].currentEmitEventTimeLag", "sum": 9000.0, "max": "4500"},
                {"id": "Source__a[1].numRecordsOutPerSecond", "sum": 33.5, "max": 20.0},
                {"id": "backPressuredTimeMsPerSecond", "sum": 900.0, "max": 640.0}
            ]),
        );
        let other = VertexPlan {
            id: "w".into(),
            ..Default::default()
        };
        s.add_vertex(
            &other,
            &json!([{"id": "backPressuredTimeMsPerSecond", "max": 200.0}]),
        );
        s.settle();
        assert_eq!(s.lag_records, Some(1200));
        assert_eq!(s.lag_seconds, Some(4.5));
        assert_eq!(s.records_in_per_second, Some(33.5));
        assert_eq!(s.backpressure, Some(0.64));
        assert_eq!(s.records_out_per_second, None);
    }

    #[test]
    fn lag_is_the_emitted_records_age_until_the_sources_are_caught_up_and_idle() {
        let p = VertexPlan::select(
            "v",
            &ids(&[
                "Source__a[1].pendingRecords",
                "Source__a[1].currentEmitEventTimeLag",
                "Source__a[1].sourceIdleTime",
            ]),
            None,
        );
        let sample = |pending: f64, idle_min: f64| {
            let mut s = JobSample::default();
            s.add_vertex(
                &p,
                &json!([
                    {"id": "Source__a[1].pendingRecords", "sum": pending, "max": pending},
                    {"id": "Source__a[1].currentEmitEventTimeLag", "max": 29000.0, "min": 10.0},
                    {"id": "Source__a[1].sourceIdleTime", "min": idle_min, "max": 90000.0}
                ]),
            );
            s.settle();
            (s.lag_records, s.lag_seconds)
        };
        // Draining a backlog already fetched (nothing pending, but busy): 29 s behind.
        assert_eq!(sample(0.0, 3.0), (Some(0), Some(29.0)));
        // Records pending: behind, however idle one subtask is.
        assert_eq!(sample(500.0, 5000.0), (Some(500), Some(29.0)));
        // Nothing pending and every subtask idle for a second: caught up.
        assert_eq!(sample(0.0, 1500.0), (Some(0), Some(0.0)));
        // Without the metrics, nothing is known.
        let mut none = JobSample::default();
        none.settle();
        assert_eq!(none.lag_seconds, None);
        // Garbage from the network is ignored, not a panic.
        let mut g = JobSample::default();
        g.add_vertex(&p, &json!({"unexpected": true}));
        g.add_vertex(
            &p,
            &json!([{"id": 5}, {"sum": 1}, {"id": "Source__a[1].pendingRecords", "sum": "NaN"}]),
        );
        assert_eq!(g, JobSample::default());
    }

    #[test]
    fn job_metrics_give_restarts_and_checkpoint_counts() {
        let mut s = JobSample::default();
        s.add_job_metrics(&json!([
            {"id": "numRestarts", "value": "3"},
            {"id": "numberOfCompletedCheckpoints", "value": "12"},
            {"id": "numberOfFailedCheckpoints", "value": 1},
            {"id": "other", "value": "x"}
        ]));
        assert_eq!(
            (s.restarts, s.checkpoints_completed, s.checkpoints_failed),
            (Some(3), Some(12), Some(1))
        );
        s.add_job_metrics(&json!({"errors": ["x"]}));
        assert_eq!(s.restarts, Some(3));
    }

    #[test]
    fn the_checkpoint_statistics_decode_to_what_a_sample_needs() {
        let v: Checkpoints = serde_json::from_value(json!({
            "counts": {"restored": 0, "total": 9, "in_progress": 0, "completed": 7, "failed": 2},
            "summary": {"state_size": {"min": 0}},
            "latest": {"completed": {"id": 7, "latest_ack_timestamp": 1796043005810i64}, "savepoint": null, "failed": null},
            "history": []
        }))
        .unwrap();
        assert_eq!((v.counts.completed, v.counts.failed), (7, 2));
        assert_eq!(
            v.latest.unwrap().completed.unwrap().latest_ack_timestamp,
            1796043005810
        );
        let none: Checkpoints = serde_json::from_value(json!({
            "counts": {"completed": 0, "failed": 0}, "latest": {"completed": null}
        }))
        .unwrap();
        assert!(none.latest.unwrap().completed.is_none());
    }

    #[test]
    fn metric_ids_are_url_encoded() {
        assert_eq!(
            query(&["Source__a[1].pendingRecords", "x y"]),
            "Source__a%5B1%5D.pendingRecords,x+y"
        );
    }
}
