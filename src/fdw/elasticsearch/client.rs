//! The Elasticsearch HTTP client the scans, writes, planning and IMPORT share: one connection
//! pool per scan or statement, credentials from the server's [`Source`], timeouts from
//! `timeout_ms`, secrets scrubbed from network errors. Also the error helpers for failed
//! requests and the reading of index mappings.
use super::EsFdwError;
use crate::datasource::scrub;
use crate::datasource::Source;
use crate::fdw::TableDef;
use pgrx::pg_sys::panic::ErrorReport;
use serde_json::{Map, Value};
use std::time::Duration;

/// A small Elasticsearch client: one connection pool per scan or statement.
#[derive(Clone)]
pub(crate) struct Es {
    http: reqwest::Client,
    pub(super) base: url::Url,
    /// Credentials and secrets (for scrubbing messages).
    src: Source,
    timeout: Duration,
}

impl Es {
    pub(crate) fn new(src: &Source) -> Result<Es, EsFdwError> {
        let base = crate::core::urls::parse_base_url(src.opt_str("url"))
            .map_err(|e| EsFdwError::Config(format!("elasticsearch url: {e}")))?;
        let timeout = src.timeout();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| EsFdwError::Config(format!("HTTP client: {e}")))?;
        Ok(Es {
            http,
            base,
            src: src.clone(),
            timeout,
        })
    }

    fn url(&self, segs: &[&str]) -> url::Url {
        crate::core::urls::with_segments(&self.base, segs).unwrap_or_else(|| self.base.clone())
    }

    /// One request; (status, body). Network failures and timeouts are errors.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        segs: &[&str],
        query: &[(&str, &str)],
        body: Option<(String, &str)>,
    ) -> Result<(u16, Vec<u8>), EsFdwError> {
        let mut req = self
            .src
            .es_authorize(self.http.request(method, self.url(segs)).query(query));
        if let Some((b, ctype)) = body {
            req = req.header("Content-Type", ctype).body(b);
        }
        let resp = req.send().await.map_err(|e| self.net_err(e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.net_err(e))?;
        Ok((status, bytes.to_vec()))
    }

    fn net_err(&self, e: reqwest::Error) -> EsFdwError {
        let msg = crate::core::messages::error_chain(&e);
        let msg = scrub(&msg, &self.src.secrets);
        if e.is_timeout() {
            EsFdwError::Timeout(format!(
                "Elasticsearch at {} did not answer within {} ms (timeout_ms)",
                self.base,
                self.timeout.as_millis()
            ))
        } else {
            EsFdwError::Unreachable(format!(
                "cannot reach Elasticsearch at {}: {msg}",
                self.base
            ))
        }
    }

    pub(crate) async fn json(
        &self,
        method: reqwest::Method,
        segs: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<(u16, Value), EsFdwError> {
        let (st, b) = self
            .call(
                method,
                segs,
                query,
                body.map(|b| (b.to_string(), "application/json")),
            )
            .await?;
        let v = serde_json::from_slice(&b).unwrap_or(Value::Null);
        Ok((st, v))
    }
}

/// Elasticsearch's error type and reason from an error response body.
pub(super) fn reason(v: &Value) -> String {
    let t = v
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let r = v
        .pointer("/error/root_cause/0/reason")
        .or_else(|| v.pointer("/error/reason"))
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{t}: {r}")
}

/// The error for a failed search or bulk request: a missing index, or Elasticsearch's reason.
pub(super) fn request_failed(
    table: &TableDef,
    index: &str,
    what: &str,
    status: u16,
    body: &Value,
) -> ErrorReport {
    if is_index_missing(body) {
        return EsFdwError::IndexMissing {
            table: table.name.clone(),
            index: index.to_string(),
        }
        .into();
    }
    EsFdwError::Remote(format!(
        "foreign table {}: {what} on index \"{index}\" failed: HTTP {status}: {}",
        table.name,
        reason(body)
    ))
    .into()
}

/// Is this error response an `index_not_found_exception`?
pub(super) fn is_index_missing(v: &Value) -> bool {
    v.pointer("/error/type").and_then(Value::as_str) == Some("index_not_found_exception")
}

/// (index, its top-level mapping properties).
pub(crate) type IndexProps = Vec<(String, Map<String, Value>)>;

/// Top-level mapping properties of every index matching `pattern`; None if nothing matches.
pub(super) fn index_mappings(es: &Es, pattern: &str) -> Result<Option<IndexProps>, ErrorReport> {
    let (st, v) = crate::interruptible::run(es.json(
        reqwest::Method::GET,
        &[pattern, "_mapping"],
        &[],
        None,
    ))?;
    if st == 404 || is_index_missing(&v) {
        return Ok(None);
    }
    if st >= 400 {
        return Err(EsFdwError::Remote(format!(
            "reading the mapping of \"{pattern}\": HTTP {st}: {}",
            reason(&v)
        ))
        .into());
    }
    let mut out: IndexProps = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, m)| {
            let props = m
                .pointer("/mappings/properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            (name.clone(), props)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(out))
}

/// Properties of every index matching `pattern` (IMPORT FOREIGN SCHEMA).
pub(crate) fn mappings(src: &Source, pattern: &str) -> Result<IndexProps, ErrorReport> {
    Ok(index_mappings(&Es::new(src)?, pattern)?.unwrap_or_default())
}
