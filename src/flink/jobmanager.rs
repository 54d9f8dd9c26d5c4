//! Client of the Flink JobManager REST API (port 8081 by default): cluster overview, the jobs
//! of the cluster, stop with savepoint, cancel, checkpoints and root exceptions.
use super::http::Endpoint;
use super::trace::decode;
use super::{HttpLimits, RestError, Service};
use crate::core::urls;
use serde::Deserialize;
use serde_json::Value;

/// A job as `GET /jobs/overview` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OverviewJob {
    pub jid: String,
    pub name: String,
    /// Flink's state name; the known ones are not allocated (a tick reads every job).
    #[serde(deserialize_with = "state_name")]
    pub state: std::borrow::Cow<'static, str>,
    #[serde(rename = "start-time", default)]
    pub start_time: i64,
    #[serde(rename = "end-time", default)]
    pub end_time: i64,
    /// When the job last changed (a restart changes it without changing `state`).
    #[serde(rename = "last-modification", default)]
    pub last_modification: i64,
}

/// Flink's job state names (JobStatus), shared instead of allocated per job.
const STATES: [&str; 11] = [
    "INITIALIZING",
    "CREATED",
    "RUNNING",
    "FAILING",
    "FAILED",
    "CANCELLING",
    "CANCELED",
    "FINISHED",
    "RESTARTING",
    "SUSPENDED",
    "RECONCILING",
];

fn state_name<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::borrow::Cow<'static, str>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = std::borrow::Cow<'static, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a job state name")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(match STATES.iter().find(|s| **s == v) {
                Some(s) => std::borrow::Cow::Borrowed(*s),
                None => std::borrow::Cow::Owned(v.to_string()),
            })
        }
    }
    d.deserialize_str(V)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Overview {
    jobs: Vec<OverviewJob>,
}

/// Client of the JobManager REST API (port 8081 by default).
#[derive(Debug, Clone)]
pub struct JobManager {
    pub(super) ep: Endpoint,
}

/// `GET /overview`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClusterOverview {
    #[serde(rename = "flink-version")]
    pub flink_version: String,
    pub taskmanagers: i64,
    #[serde(rename = "slots-total")]
    pub slots_total: i64,
    #[serde(rename = "slots-available")]
    pub slots_available: i64,
    #[serde(rename = "jobs-running")]
    pub jobs_running: i64,
}

impl JobManager {
    pub fn new(base_url: &str, limits: HttpLimits) -> Result<Self, RestError> {
        Ok(JobManager {
            ep: Endpoint::new(Service::JobManager, base_url, limits)?,
        })
    }

    pub fn shown_url(&self) -> String {
        self.ep.shown()
    }

    pub async fn overview(&self) -> Result<ClusterOverview, RestError> {
        let v = self.ep.get("/overview").await?;
        self.ep.decode(v)
    }

    /// `GET /jobs/overview`: every job of the cluster in one request.
    pub async fn jobs_overview(&self) -> Result<Vec<OverviewJob>, RestError> {
        let o: Overview = self.ep.get_typed("/jobs/overview").await?;
        Ok(o.jobs)
    }

    /// `POST /jobs/{id}/savepoints` without cancelling the job (a manual savepoint into the
    /// cluster's default savepoint directory); returns the trigger id.
    pub async fn trigger_savepoint(&self, jid: &str) -> Result<String, RestError> {
        let body = serde_json::json!({"cancel-job": false});
        self.trigger(&format!("/jobs/{jid}/savepoints"), &body, "savepoint")
            .await
    }

    /// `POST /jobs/{id}/stop`: stop with a savepoint; returns the trigger id.
    pub async fn stop_with_savepoint(&self, jid: &str, drain: bool) -> Result<String, RestError> {
        let body = serde_json::json!({"drain": drain});
        self.trigger(&format!("/jobs/{jid}/stop"), &body, "stop")
            .await
    }

    /// POSTs an asynchronous operation; its trigger id (`request-id`).
    async fn trigger(&self, path: &str, body: &Value, what: &str) -> Result<String, RestError> {
        let v = self.ep.post(path, body).await?;
        v.get("request-id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RestError::Decode {
                service: Service::JobManager,
                url: self.ep.shown(),
                reason: format!("no request-id in the {what} answer"),
            })
    }

    /// `GET /jobs/{id}/savepoints/{trigger}`: Ok(Some(location)) when done, Ok(None) while in
    /// progress.
    pub async fn savepoint_status(
        &self,
        jid: &str,
        trigger: &str,
    ) -> Result<Option<String>, RestError> {
        let v = self
            .ep
            .get(&format!("/jobs/{jid}/savepoints/{trigger}"))
            .await?;
        if v.pointer("/status/id").and_then(Value::as_str) != Some("COMPLETED") {
            return Ok(None);
        }
        if let Some(loc) = v.pointer("/operation/location").and_then(Value::as_str) {
            return Ok(Some(loc.to_string()));
        }
        // The stack trace, never the serialised throwable (a base64 blob of tens of KB).
        let cause = v
            .pointer("/operation/failure-cause/stack-trace")
            .and_then(Value::as_str)
            .map(decode)
            .unwrap_or_else(|| "the savepoint failed (Flink gave no reason)".into());
        Err(RestError::Status {
            service: Service::JobManager,
            url: self.ep.shown(),
            status: 500,
            message: cause,
        })
    }

    /// Flink's own restart count of a job (`numRestarts`), if the JobManager reports it.
    pub async fn restarts(&self, jid: &str) -> Result<Option<i64>, RestError> {
        let v = self
            .ep
            .get(&format!("/jobs/{jid}/metrics?get=numRestarts"))
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .find(|m| m.get("id").and_then(Value::as_str) == Some("numRestarts"))
            .and_then(|m| m.get("value"))
            .and_then(|x| {
                x.as_i64()
                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            }))
    }

    /// `PATCH /jobs/{id}?mode=cancel`.
    pub async fn cancel(&self, jid: &str) -> Result<(), RestError> {
        let url = urls::join(&self.ep.base, &format!("/jobs/{jid}?mode=cancel"));
        self.ep.send(self.ep.http.patch(url)).await.map(|_| ())
    }

    /// When the job's latest checkpoint completed (epoch ms), from `GET /jobs/{id}/checkpoints`.
    pub async fn latest_checkpoint_ms(&self, jid: &str) -> Result<Option<i64>, RestError> {
        let v = self.ep.get(&format!("/jobs/{jid}/checkpoints")).await?;
        Ok(v.pointer("/latest/completed/latest_ack_timestamp")
            .and_then(Value::as_i64)
            .filter(|t| *t > 0))
    }

    /// The root exception of a job (`GET /jobs/{id}/exceptions`), if any.
    pub async fn root_exception(&self, jid: &str) -> Result<Option<String>, RestError> {
        let v = self.ep.get(&format!("/jobs/{jid}/exceptions")).await?;
        let text = v
            .pointer("/exceptionHistory/entries/0/stacktrace")
            .or_else(|| v.get("root-exception"))
            .and_then(Value::as_str);
        Ok(text.map(decode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn errors_never_show_credentials() {
        let jm = JobManager::new("http://user:pw123@127.0.0.1:1", HttpLimits::default()).unwrap();
        assert_eq!(jm.shown_url(), "http://127.0.0.1:1");
    }

    #[test]
    fn unreachable_port_is_reported_fast() {
        // Port 1 on loopback is closed: a refused connection, well inside the connect timeout.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let jm = JobManager::new(
            "http://127.0.0.1:1",
            HttpLimits {
                connect_timeout_ms: 500,
                request_timeout_ms: 1000,
            },
        )
        .unwrap();
        let t = Instant::now();
        let e = rt.block_on(jm.overview()).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        match e {
            RestError::Unreachable { url, reason, .. } => {
                assert_eq!(url, "http://127.0.0.1:1");
                assert!(reason.contains("connection failed"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
