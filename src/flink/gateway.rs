//! Client of the Flink SQL Gateway REST API (v3; v4 in Flink 2.x accepts the same requests):
//! sessions, statements and their paged results, and [`Gateway::run_script`], the one loop that
//! runs a list of statements in one session (used by `flink.execute_sql`, `flink.validate` and
//! the worker's submissions).
use super::http::Endpoint;
use super::{HttpLimits, RestError, Service};
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

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
    /// Each row's changelog kind as the gateway names it (`INSERT`, `UPDATE_BEFORE`,
    /// `UPDATE_AFTER`, `DELETE`), parallel to `rows`.
    pub kinds: Vec<String>,
    /// True when fetching stopped at the row limit before the end of the result.
    pub truncated: bool,
}

/// Why [`Gateway::run_script`] stopped: the failing statement (1-based; None when the session
/// could not be opened) and the error.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    pub statement: Option<usize>,
    pub error: RestError,
}

/// Why fetching a statement's result stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The result ended.
    Eos,
    /// `max_rows` rows were collected before the end.
    RowLimit,
    /// The deadline passed before the end or the row limit.
    Deadline,
}

/// One page of `GET .../result/{token}`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultPage {
    NotReady { next: Option<String> },
    Payload { next: Option<String> },
    Eos,
}

const JSON_ROWS: &str = "rowFormat=JSON";
const TEXT_ROWS: &str = "rowFormat=PLAIN_TEXT";

/// The gateway's answer when a result holds a type it cannot write as JSON (seen on Flink 2.3.0
/// for VARIANT): `500 {"errors": ["Internal server error. Could not map response to JSON."]}`.
/// The same page can then be read with `rowFormat=PLAIN_TEXT` (every field as its text).
fn json_unmappable(e: &RestError) -> bool {
    matches!(e, RestError::Status { status, message, .. }
        if *status >= 500 && message.contains("Could not map response to JSON"))
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
                    let kind = row.get("kind").and_then(Value::as_str).unwrap_or("INSERT");
                    acc.kinds.push(kind.to_string());
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

    /// Closes an operation. Closing the operation of a streaming SELECT (or the session that
    /// holds it) cancels its Flink job (seen on Flink 1.20.3); closing that of an INSERT does not.
    pub async fn close_operation(&self, session: &str, op: &str) -> Result<(), RestError> {
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
        match self.collect(session, statement, max_rows, deadline).await? {
            (_, Stop::Deadline) => Err(RestError::Timeout {
                service: Service::SqlGateway,
                url: self.ep.shown(),
                timeout_ms: deadline.as_millis() as u64,
            }),
            (acc, _) => Ok(acc),
        }
    }

    /// Runs one statement and collects its result until it ends, `max_rows` rows were read or
    /// `deadline` passed, whichever comes first; what was read by then is returned with the
    /// reason it stopped (a deadline is not an error here). The operation is closed in every
    /// case.
    pub async fn collect(
        &self,
        session: &str,
        statement: &str,
        max_rows: usize,
        deadline: Duration,
    ) -> Result<(StatementResult, Stop), RestError> {
        let started = Instant::now();
        let op = self.submit(session, statement).await?;
        let mut acc = StatementResult::default();
        let mut path = format!("/v3/sessions/{session}/operations/{op}/result/0?{JSON_ROWS}");
        let mut wait = Duration::from_millis(20);
        let stop = loop {
            let fetched = match self.ep.get(&path).await {
                // A page the gateway cannot serialise as JSON (Flink 2.3: a VARIANT column) is
                // fetched again as plain text; later pages follow in that format.
                Err(e) if json_unmappable(&e) && path.contains(JSON_ROWS) => {
                    path = path.replace(JSON_ROWS, TEXT_ROWS);
                    self.ep.get(&path).await
                }
                r => r,
            };
            let page = match fetched {
                Ok(p) => p,
                Err(e) => {
                    let _ = self.close_operation(session, &op).await;
                    return Err(e);
                }
            };
            match apply_result_page(&page, &mut acc) {
                ResultPage::Eos => break Stop::Eos,
                ResultPage::NotReady { next } | ResultPage::Payload { next } => {
                    if acc.rows.len() >= max_rows {
                        acc.rows.truncate(max_rows);
                        acc.kinds.truncate(max_rows);
                        acc.truncated = true;
                        break Stop::RowLimit;
                    }
                    if started.elapsed() > deadline {
                        break Stop::Deadline;
                    }
                    if let Some(n) = next {
                        path = n;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(100));
                }
            }
        };
        // An INSERT's job keeps running after its result is closed; closing only releases the
        // gateway's resources. A SELECT's job is cancelled by the close.
        let _ = self.close_operation(session, &op).await;
        Ok((acc, stop))
    }

    /// Runs `statements` in order in one new session named `label`, each with at most
    /// `max_rows` rows collected and `wait` to finish; stops at the first failure. The session
    /// is closed in every case. The one statement loop of pg_flink: `flink.execute_sql`,
    /// `flink.validate` and the worker's submissions all use it.
    pub async fn run_script(
        &self,
        label: &str,
        statements: &[String],
        max_rows: usize,
        wait: Duration,
    ) -> Result<Vec<StatementResult>, ScriptError> {
        let session = self
            .open_session(label, &serde_json::Map::new())
            .await
            .map_err(|error| ScriptError {
                statement: None,
                error,
            })?;
        let mut results = Vec::with_capacity(statements.len());
        let mut failure = None;
        for (i, st) in statements.iter().enumerate() {
            match self.run_statement(&session, st, max_rows, wait).await {
                Ok(r) => results.push(r),
                Err(error) => {
                    failure = Some(ScriptError {
                        statement: Some(i + 1),
                        error,
                    });
                    break;
                }
            }
        }
        let _ = self.close_session(&session).await;
        match failure {
            Some(f) => Err(f),
            None => Ok(results),
        }
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
    fn a_page_the_gateway_cannot_write_as_json_is_read_again_as_text() {
        // Flink 2.3.0's answer to `rowFormat=JSON` for a VARIANT column.
        let answer = json!({"errors": ["Internal server error. Could not map response to JSON."]});
        let status = |status, message: String| RestError::Status {
            service: Service::SqlGateway,
            url: "http://127.0.0.1:8093".into(),
            status,
            message,
        };
        let message = crate::flink::trace::flink_error_message(&answer).unwrap_or_default();
        assert!(json_unmappable(&status(500, message.clone())));
        assert!(!json_unmappable(&status(404, message)));
        assert!(!json_unmappable(&status(
            500,
            "Internal server error.".into()
        )));
        // The page read as text: fields are the values' text.
        let mut acc = StatementResult::default();
        let page = json!({"resultType": "PAYLOAD", "resultKind": "SUCCESS_WITH_CONTENT",
            "results": {"columns": [{"name": "v", "logicalType": {"type": "VARIANT"}}], "rowFormat": "PLAIN_TEXT",
                        "data": [{"kind": "INSERT", "fields": ["{\"a\":1}"]}]},
            "nextResultUri": "/v4/sessions/s/operations/o/result/1?rowFormat=PLAIN_TEXT"});
        assert!(matches!(
            apply_result_page(&page, &mut acc),
            ResultPage::Payload { .. }
        ));
        assert_eq!(acc.rows, vec![json!(["{\"a\":1}"])]);
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
        assert_eq!(acc.kinds, vec!["INSERT"]);
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
}
