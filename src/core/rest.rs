//! REST clients for the Flink JobManager and the Flink SQL Gateway (API v3, Flink 1.20; v4 in
//! 2.x accepts the same requests).
//!
//! All calls are async, bounded by [`HttpLimits`], and return [`RestError`], whose messages name
//! the service and its URL (never with credentials). Query cancel is the caller's job (see
//! `crate::block`).
use crate::core::urls;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};
use url::Url;

/// Timeouts applied to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout_ms: 2_000,
            request_timeout_ms: 10_000,
        }
    }
}

/// Which remote service a call was made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    JobManager,
    SqlGateway,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::JobManager => "Flink JobManager",
            Service::SqlGateway => "Flink SQL Gateway",
        }
    }
}

/// A failed call to a Flink REST endpoint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestError {
    #[error("invalid {} URL '{url}': {reason}", service.name())]
    BadUrl {
        service: Service,
        url: String,
        reason: String,
    },
    #[error("{} at {url} is unreachable: {reason}", service.name())]
    Unreachable {
        service: Service,
        url: String,
        reason: String,
    },
    #[error("{} at {url} did not answer within {timeout_ms} ms", service.name())]
    Timeout {
        service: Service,
        url: String,
        timeout_ms: u64,
    },
    #[error("{} at {url} answered HTTP {status}: {message}", service.name())]
    Status {
        service: Service,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{} at {url} sent a response pg_flink cannot read: {reason}", service.name())]
    Decode {
        service: Service,
        url: String,
        reason: String,
    },
    #[error("Flink rejected the statement: {root_cause}")]
    Statement { root_cause: String, trace: String },
}

/// Shared HTTP plumbing: one reqwest client, the base URL, error mapping.
#[derive(Debug, Clone)]
struct Endpoint {
    service: Service,
    base: Url,
    http: reqwest::Client,
    limits: HttpLimits,
}

impl Endpoint {
    fn new(service: Service, base_url: &str, limits: HttpLimits) -> Result<Self, RestError> {
        let base = urls::parse_base_url(base_url).map_err(|e| RestError::BadUrl {
            service,
            url: urls::redact_str(base_url),
            reason: e.0,
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(limits.connect_timeout_ms))
            .timeout(Duration::from_millis(limits.request_timeout_ms))
            .no_proxy()
            .user_agent(concat!("pg_flink/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Unreachable {
                service,
                url: urls::redact(&base),
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Endpoint {
            service,
            base,
            http,
            limits,
        })
    }

    fn shown(&self) -> String {
        urls::redact(&self.base)
    }

    fn transport_error(&self, e: reqwest::Error) -> RestError {
        if e.is_timeout() {
            RestError::Timeout {
                service: self.service,
                url: self.shown(),
                timeout_ms: self.limits.request_timeout_ms,
            }
        } else {
            // reqwest's Display includes the full URL; describe the cause without it.
            let reason = if e.is_connect() {
                format!("connection failed ({})", crate::core::text::root_cause(&e))
            } else {
                crate::core::text::root_cause(&e)
            };
            RestError::Unreachable {
                service: self.service,
                url: self.shown(),
                reason,
            }
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, RestError> {
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if self.service == Service::SqlGateway && status.as_u16() >= 500 {
                if let Some(trace) = error_trace(&parsed) {
                    return Err(RestError::Statement {
                        root_cause: root_cause(&trace),
                        trace,
                    });
                }
            }
            return Err(RestError::Status {
                service: self.service,
                url: self.shown(),
                status: status.as_u16(),
                message: flink_error_message(&parsed)
                    .unwrap_or_else(|| crate::core::text::ellipsis(&body, 300)),
            });
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| RestError::Decode {
            service: self.service,
            url: self.shown(),
            reason: e.to_string(),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, RestError> {
        self.send(self.http.get(urls::join(&self.base, path))).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, RestError> {
        self.send(self.http.post(urls::join(&self.base, path)).json(body))
            .await
    }

    async fn delete(&self, path: &str) -> Result<Value, RestError> {
        self.send(self.http.delete(urls::join(&self.base, path)))
            .await
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, v: Value) -> Result<T, RestError> {
        serde_json::from_value(v).map_err(|e| RestError::Decode {
            service: self.service,
            url: self.shown(),
            reason: e.to_string(),
        })
    }
}

/// Flink answers errors as `{"errors": ["message", "trace"...]}`.
fn flink_error_message(v: &Value) -> Option<String> {
    let texts: Vec<&str> = v
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let first = *texts.first()?;
    let cause = root_cause(&texts.join("\n"));
    Some(crate::core::text::ellipsis(
        if cause.trim().is_empty() {
            first
        } else {
            &cause
        },
        300,
    ))
}

/// The exception trace in a gateway error answer, when there is one.
fn error_trace(v: &Value) -> Option<String> {
    let errs = v.get("errors")?.as_array()?;
    let texts: Vec<&str> = errs.iter().filter_map(Value::as_str).collect();
    // The first entry is a generic "Internal server error."; the trace follows.
    let trace = texts.iter().skip(1).copied().collect::<Vec<_>>().join("\n");
    if trace.trim().is_empty() {
        None
    } else {
        Some(trace)
    }
}

/// The messages of a Java exception trace, outermost first, without stack frames: what a
/// person needs to see; the frames stay in the service's log.
pub fn cause_chain(trace: &str) -> String {
    trace
        .lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || is_frame(l)))
        .map(|l| l.trim_start_matches('<').trim_end_matches('>'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A stack frame line (`at a.b(C.java:1)`) or an elided-frames line (`... 3 more`).
fn is_frame(l: &str) -> bool {
    l.starts_with("at ") || (l.starts_with("...") && l.ends_with("more"))
}

/// The most specific message in a Java exception trace: the last `Caused by:` (with its
/// continuation lines, joined by spaces), without the exception class; the first line when
/// there is no cause.
pub fn root_cause(trace: &str) -> String {
    let lines: Vec<&str> = trace.lines().map(str::trim).collect();
    let start = lines.iter().rposition(|l| l.starts_with("Caused by: "));
    let (first, rest) = match start {
        Some(i) => (lines[i].trim_start_matches("Caused by: "), &lines[i + 1..]),
        None => match lines.iter().position(|l| !l.is_empty()) {
            Some(i) => (lines[i], &lines[i + 1..]),
            None => return String::new(),
        },
    };
    let mut msg = strip_exception_class(first).to_string();
    if start.is_some() {
        for l in rest {
            if l.is_empty()
                || l.starts_with("at ")
                || l.starts_with("...")
                || l.starts_with("End of exception")
            {
                break;
            }
            msg.push(' ');
            msg.push_str(l);
        }
    }
    msg.trim_end_matches('>').trim().to_string()
}

fn strip_exception_class(line: &str) -> &str {
    // "org.apache.flink.table.api.ValidationException: Object 'x' not found" → the message.
    if let Some((class, msg)) = line.split_once(": ") {
        let looks_like_class = !class.contains(' ')
            && class.contains('.')
            && class
                .rsplit('.')
                .next()
                .is_some_and(|s| s.ends_with("Exception") || s.ends_with("Error"));
        if looks_like_class {
            return msg.trim();
        }
    }
    line.trim()
}

// ---------------------------------------------------------------------------------------------
// JobManager
// ---------------------------------------------------------------------------------------------

/// Client of the JobManager REST API (port 8081 by default).
#[derive(Debug, Clone)]
pub struct JobManager {
    ep: Endpoint,
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
    pub async fn jobs_overview(&self) -> Result<Vec<crate::core::control::OverviewJob>, RestError> {
        let v = self.ep.get("/jobs/overview").await?;
        let o: crate::core::control::Overview = self.ep.decode(v)?;
        Ok(o.jobs)
    }

    /// `POST /jobs/{id}/stop`: stop with a savepoint; returns the trigger id.
    pub async fn stop_with_savepoint(&self, jid: &str, drain: bool) -> Result<String, RestError> {
        let v = self
            .ep
            .post(
                &format!("/jobs/{jid}/stop"),
                &serde_json::json!({"drain": drain}),
            )
            .await?;
        v.get("request-id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RestError::Decode {
                service: Service::JobManager,
                url: self.ep.shown(),
                reason: "no request-id in the stop answer".into(),
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
        let cause = v
            .pointer("/operation/failure-cause/serialized-throwable")
            .or_else(|| v.pointer("/operation/failure-cause/stack-trace"))
            .and_then(Value::as_str)
            .map(root_cause)
            .unwrap_or_else(|| "the savepoint failed".into());
        Err(RestError::Status {
            service: Service::JobManager,
            url: self.ep.shown(),
            status: 500,
            message: cause,
        })
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
        Ok(text.map(|t| crate::core::text::ellipsis(&root_cause(t), 2000)))
    }
}

// ---------------------------------------------------------------------------------------------
// SQL Gateway
// ---------------------------------------------------------------------------------------------

/// Client of the SQL Gateway REST API.
#[derive(Debug, Clone)]
pub struct Gateway {
    ep: Endpoint,
}

/// `GET /v3/info`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GatewayInfo {
    #[serde(rename = "productName")]
    pub product_name: String,
    pub version: String,
}

/// What one statement returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatementResult {
    /// `SUCCESS` or `SUCCESS_WITH_CONTENT`.
    pub result_kind: String,
    /// The Flink job the statement started (INSERT, SELECT), if any.
    pub job_id: Option<String>,
    pub columns: Vec<String>,
    /// Rows as JSON arrays of field values.
    pub rows: Vec<Value>,
    /// True when fetching stopped at the row limit before the end of the result.
    pub truncated: bool,
}

/// One page of `GET .../result/{token}`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultPage {
    NotReady { next: Option<String> },
    Payload { next: Option<String> },
    Eos,
}

/// Applies one result page to `acc` and says what to do next.
pub fn apply_result_page(v: &Value, acc: &mut StatementResult) -> ResultPage {
    let next = v
        .get("nextResultUri")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(kind) = v.get("resultKind").and_then(Value::as_str) {
        acc.result_kind = kind.to_string();
    }
    if let Some(job) = v.get("jobID").and_then(Value::as_str) {
        acc.job_id = Some(job.to_string());
    }
    if let Some(results) = v.get("results") {
        if acc.columns.is_empty() {
            if let Some(cols) = results.get("columns").and_then(Value::as_array) {
                acc.columns = cols
                    .iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect();
            }
        }
        if let Some(data) = results.get("data").and_then(Value::as_array) {
            for row in data {
                if let Some(fields) = row.get("fields") {
                    acc.rows.push(fields.clone());
                }
            }
        }
    }
    match v.get("resultType").and_then(Value::as_str) {
        Some("NOT_READY") => ResultPage::NotReady { next },
        Some("EOS") => ResultPage::Eos,
        _ if next.is_none() => ResultPage::Eos,
        _ => ResultPage::Payload { next },
    }
}

impl Gateway {
    pub fn new(base_url: &str, limits: HttpLimits) -> Result<Self, RestError> {
        Ok(Gateway {
            ep: Endpoint::new(Service::SqlGateway, base_url, limits)?,
        })
    }

    pub fn shown_url(&self) -> String {
        self.ep.shown()
    }

    pub async fn info(&self) -> Result<GatewayInfo, RestError> {
        let v = self.ep.get("/v3/info").await?;
        self.ep.decode(v)
    }

    /// Opens a session; `properties` are session-level Flink options.
    pub async fn open_session(
        &self,
        name: &str,
        properties: &serde_json::Map<String, Value>,
    ) -> Result<String, RestError> {
        let body = serde_json::json!({ "sessionName": name, "properties": properties });
        let v = self.ep.post("/v3/sessions", &body).await?;
        self.string_field(&v, "sessionHandle")
    }

    pub async fn close_session(&self, session: &str) -> Result<(), RestError> {
        self.ep
            .delete(&format!("/v3/sessions/{session}"))
            .await
            .map(|_| ())
    }

    async fn submit(&self, session: &str, statement: &str) -> Result<String, RestError> {
        let body = serde_json::json!({ "statement": statement });
        let v = self
            .ep
            .post(&format!("/v3/sessions/{session}/statements"), &body)
            .await?;
        self.string_field(&v, "operationHandle")
    }

    async fn close_operation(&self, session: &str, op: &str) -> Result<(), RestError> {
        self.ep
            .delete(&format!("/v3/sessions/{session}/operations/{op}/close"))
            .await
            .map(|_| ())
    }

    /// Runs one statement and collects its result, at most `max_rows` rows. The whole call is
    /// bounded by the request timeout per page and by `deadline` overall.
    pub async fn run_statement(
        &self,
        session: &str,
        statement: &str,
        max_rows: usize,
        deadline: Duration,
    ) -> Result<StatementResult, RestError> {
        let started = Instant::now();
        let op = self.submit(session, statement).await?;
        let mut acc = StatementResult::default();
        let mut path = format!("/v3/sessions/{session}/operations/{op}/result/0?rowFormat=JSON");
        let mut wait = Duration::from_millis(20);
        loop {
            let page = self.ep.get(&path).await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let _ = self.close_operation(session, &op).await;
                    return Err(e);
                }
            };
            match apply_result_page(&page, &mut acc) {
                ResultPage::Eos => break,
                ResultPage::NotReady { next } | ResultPage::Payload { next } => {
                    if acc.rows.len() >= max_rows {
                        acc.rows.truncate(max_rows);
                        acc.truncated = true;
                        break;
                    }
                    if started.elapsed() > deadline {
                        let _ = self.close_operation(session, &op).await;
                        return Err(RestError::Timeout {
                            service: Service::SqlGateway,
                            url: self.ep.shown(),
                            timeout_ms: deadline.as_millis() as u64,
                        });
                    }
                    if let Some(n) = next {
                        path = n;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(100));
                }
            }
        }
        // A statement that produced a job keeps running after its result is closed; closing
        // only releases the gateway's resources.
        let _ = self.close_operation(session, &op).await;
        Ok(acc)
    }

    fn string_field(&self, v: &Value, field: &str) -> Result<String, RestError> {
        v.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RestError::Decode {
                service: Service::SqlGateway,
                url: self.ep.shown(),
                reason: format!("no '{field}' in the answer"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn root_cause_picks_last_caused_by_without_class() {
        let trace = "org.apache.flink.table.gateway.api.utils.SqlGatewayException: Failed to fetchResults.\n\tat x.y(Z.java:1)\nCaused by: org.apache.flink.table.api.SqlParserException: SQL parse failed.\nCaused by: org.apache.flink.table.api.ValidationException: Object 'nope' not found\n\tat a.b";
        assert_eq!(root_cause(trace), "Object 'nope' not found");
    }

    #[test]
    fn root_cause_keeps_continuation_lines() {
        let trace = "x.A: a\nCaused by: java.lang.IllegalArgumentException: Either all or none of:\nusername\npassword\nEnd of exception on server side>";
        assert_eq!(
            root_cause(trace),
            "Either all or none of: username password"
        );
    }

    #[test]
    fn root_cause_without_cause_uses_first_line() {
        assert_eq!(
            root_cause("\n java.lang.IllegalStateException: boom\n\tat x"),
            "boom"
        );
        assert_eq!(
            root_cause("plain message: with colon"),
            "plain message: with colon"
        );
        assert_eq!(root_cause(""), "");
    }

    #[test]
    fn cause_chain_drops_frames() {
        let trace = "<Exception on server side:\nx.A: outer\n\tat a.b(C.java:1)\n\t... 3 more\nCaused by: x.B: inner\n\tat d.e>";
        assert_eq!(
            cause_chain(trace),
            "Exception on server side:\nx.A: outer\nCaused by: x.B: inner"
        );
    }

    #[test]
    fn error_trace_skips_generic_first_entry() {
        let v = json!({"errors": ["Internal server error.", "<Exception on server side:\nCaused by: x.y.FooException: bad>"]});
        assert!(error_trace(&v).unwrap().contains("FooException"));
        assert_eq!(error_trace(&json!({"errors": ["Not found"]})), None);
        assert_eq!(
            flink_error_message(&json!({"errors": ["Not found: /x"]})).unwrap(),
            "Not found: /x"
        );
    }

    #[test]
    fn result_pages_accumulate_rows_and_job_id() {
        let mut acc = StatementResult::default();
        let p1 = json!({"resultType": "NOT_READY", "nextResultUri": "/v3/sessions/s/operations/o/result/0?rowFormat=JSON"});
        assert!(matches!(
            apply_result_page(&p1, &mut acc),
            ResultPage::NotReady { next: Some(_) }
        ));
        let p2 = json!({
            "resultType": "PAYLOAD", "isQueryResult": false, "jobID": "abc123", "resultKind": "SUCCESS_WITH_CONTENT",
            "results": {"columns": [{"name": "job id", "logicalType": {"type": "VARCHAR"}}], "rowFormat": "JSON",
                        "data": [{"kind": "INSERT", "fields": ["abc123"]}]},
            "nextResultUri": "/v3/sessions/s/operations/o/result/1?rowFormat=JSON"});
        assert!(matches!(
            apply_result_page(&p2, &mut acc),
            ResultPage::Payload { .. }
        ));
        let p3 = json!({"resultType": "EOS", "results": {"columns": [], "data": []}});
        assert_eq!(apply_result_page(&p3, &mut acc), ResultPage::Eos);
        assert_eq!(acc.job_id.as_deref(), Some("abc123"));
        assert_eq!(acc.columns, vec!["job id"]);
        assert_eq!(acc.rows, vec![json!(["abc123"])]);
        assert_eq!(acc.result_kind, "SUCCESS_WITH_CONTENT");
    }

    #[test]
    fn bad_url_is_rejected_before_any_request() {
        let e = Gateway::new("ftp://x", HttpLimits::default()).unwrap_err();
        assert!(matches!(
            e,
            RestError::BadUrl {
                service: Service::SqlGateway,
                ..
            }
        ));
        assert!(e.to_string().contains("Flink SQL Gateway"));
    }

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
