//! HTTP plumbing shared by the Flink REST clients: one reqwest client per endpoint, bounded by
//! [`HttpLimits`], with errors mapped to [`RestError`] (never showing credentials).
use super::trace::{error_trace, flink_error_message, root_cause};
use super::{HttpLimits, RestError, Service};
use crate::core::urls;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) service: Service,
    pub(crate) base: Url,
    pub(crate) http: reqwest::Client,
    limits: HttpLimits,
}

impl Endpoint {
    pub(crate) fn new(
        service: Service,
        base_url: &str,
        limits: HttpLimits,
    ) -> Result<Self, RestError> {
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

    pub(crate) fn shown(&self) -> String {
        urls::redact(&self.base)
    }

    pub(crate) fn transport_error(&self, e: reqwest::Error) -> RestError {
        if e.is_timeout() {
            RestError::Timeout {
                service: self.service,
                url: self.shown(),
                timeout_ms: self.limits.request_timeout_ms,
            }
        } else {
            // reqwest's Display includes the full URL; describe the cause without it.
            let reason = if e.is_connect() {
                format!(
                    "connection failed ({})",
                    crate::core::messages::root_cause(&e)
                )
            } else {
                crate::core::messages::root_cause(&e)
            };
            RestError::Unreachable {
                service: self.service,
                url: self.shown(),
                reason,
            }
        }
    }

    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, RestError> {
        let body = self.send_text(req).await?;
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| self.undecodable(e))
    }

    /// A GET whose successful answer is decoded straight into `T` (no intermediate JSON tree:
    /// `/jobs/overview` of a cluster with thousands of jobs is read every poll).
    pub(crate) async fn get_typed<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
    ) -> Result<T, RestError> {
        let resp = self
            .checked(self.http.get(urls::join(&self.base, path)))
            .await?;
        let body = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        serde_json::from_slice(&body).map_err(|e| self.undecodable(e))
    }

    /// Sends the request; the body of a successful answer, or the decoded error.
    async fn send_text(&self, req: reqwest::RequestBuilder) -> Result<String, RestError> {
        let resp = self.checked(req).await?;
        resp.text().await.map_err(|e| self.transport_error(e))
    }

    /// Sends the request; the answer when it succeeded, else the decoded error.
    async fn checked(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, RestError> {
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.map_err(|e| self.transport_error(e))?;
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
                    .unwrap_or_else(|| crate::core::messages::ellipsis(&body, 300)),
            });
        }
        Ok(resp)
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, RestError> {
        self.send(self.http.get(urls::join(&self.base, path))).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<Value, RestError> {
        self.send(self.http.post(urls::join(&self.base, path)).json(body))
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<Value, RestError> {
        self.send(self.http.delete(urls::join(&self.base, path)))
            .await
    }

    /// An answer that is not what the API documents.
    fn undecodable(&self, e: serde_json::Error) -> RestError {
        RestError::Decode {
            service: self.service,
            url: self.shown(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn decode<T: for<'de> Deserialize<'de>>(&self, v: Value) -> Result<T, RestError> {
        serde_json::from_value(v).map_err(|e| self.undecodable(e))
    }
}
