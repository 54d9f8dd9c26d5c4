//! Webhook delivery of alert events: one bounded HTTP POST of the event's JSON payload.
//! Errors say what happened (status, or the transport failure) without the headers, which may
//! hold secrets.
use crate::flink::HttpLimits;
use serde_json::Value;
use std::time::Duration;

/// Longest part of a receiver's answer kept in an error.
const BODY_SHOWN: usize = 200;

/// POSTs `payload` to `url` with `headers`; Ok on any 2xx answer.
pub async fn post(
    url: &str,
    headers: &Value,
    payload: &Value,
    limits: HttpLimits,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(limits.connect_timeout_ms))
        .timeout(Duration::from_millis(limits.request_timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("no HTTP client: {e}"))?;
    let mut req = client.post(url).json(payload);
    for (k, v) in headers.as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            req = req.header(k.as_str(), v);
        }
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} ms", limits.request_timeout_ms)
        } else if e.is_connect() {
            "connection failed".to_string()
        } else if e.is_builder() {
            "the request could not be built (check the header names and values)".to_string()
        } else {
            "the request failed".to_string()
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let shown: String = body.chars().take(BODY_SHOWN).collect();
    Err(format!("HTTP {}: {}", status.as_u16(), shown.trim()))
}
