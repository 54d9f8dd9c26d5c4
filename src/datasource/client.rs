//! The client handle of a datasource ([`Source`]: name, kind, options, secrets) and what all
//! kinds share: option accessors, errors scrubbed of secrets, timeouts, and the `test` /
//! `describe` entry points, which dispatch to the kind's file. Calls are async, bounded by the
//! datasource's `timeout_ms`; errors never carry secret values.
use super::{scrub, DatasourceKind, Kind};
use serde_json::{Map, Value};
use std::time::Duration;

/// A datasource as stored in the catalog.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub kind: Kind,
    pub options: Map<String, Value>,
    pub secrets: Map<String, Value>,
}

/// Why a call to a datasource failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// Could not connect (refused, DNS, authentication).
    Unreachable,
    /// No answer within timeout_ms.
    Timeout,
    /// The object (table, index, topic) does not exist.
    NotFound,
    /// The object name is malformed.
    BadObject,
    /// The service answered with an error.
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub kind: SourceErrorKind,
    pub message: String,
}

/// One column of a described object.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub source_type: String,
    /// None when Flink has no faithful type for the source type.
    pub flink_type: Option<String>,
    pub nullable: bool,
}

/// Result of a describe call.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub columns: Vec<Column>,
    /// Kafka: how many messages were sampled (and parsed as JSON objects).
    pub sampled: Option<i32>,
}

impl Source {
    pub(crate) fn opt_str(&self, k: &str) -> &str {
        self.options.get(k).and_then(Value::as_str).unwrap_or("")
    }
    pub(crate) fn opt_int(&self, k: &str, default: i64) -> i64 {
        self.options
            .get(k)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    }
    pub(crate) fn secret(&self, k: &str) -> Option<&str> {
        self.secrets.get(k).and_then(Value::as_str)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.opt_int("timeout_ms", 10_000).max(100) as u64)
    }

    pub(crate) fn err(&self, kind: SourceErrorKind, msg: impl std::fmt::Display) -> SourceError {
        SourceError {
            kind,
            message: scrub(
                &format!(
                    "datasource \"{}\" ({}): {msg}",
                    self.name,
                    self.kind.as_str()
                ),
                &self.secrets,
            ),
        }
    }

    pub(crate) fn timeout_err(&self) -> SourceError {
        self.err(
            SourceErrorKind::Timeout,
            format!(
                "no answer within {} ms (option timeout_ms)",
                self.timeout().as_millis()
            ),
        )
    }

    /// Runs `fut` bounded by timeout_ms.
    pub(crate) async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout(), fut).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_err()),
        }
    }

    /// Connects for real and returns a one-line description of what was found.
    pub async fn test(&self) -> Result<String, SourceError> {
        dispatch!(self.kind, K => K::test(self).await)
    }

    /// Columns of `object` (table, index, topic) with their Flink types.
    pub async fn describe(
        &self,
        object: &str,
        sample_size: usize,
    ) -> Result<Described, SourceError> {
        if object.trim().is_empty() || object.len() > 255 || object.chars().any(|c| c.is_control())
        {
            return Err(self.err(
                SourceErrorKind::BadObject,
                "object name must be 1-255 printable characters",
            ));
        }
        dispatch!(self.kind, K => K::describe(self, object, sample_size).await)
    }

    /// Runs blocking work (librdkafka calls) off the backend's thread, so the caller can still
    /// react to query cancel; the work itself is bounded by timeout_ms.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(
            self.timeout() + Duration::from_secs(2),
            tokio::task::spawn_blocking(f),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(self.err(SourceErrorKind::Remote, format!("internal error: {e}"))),
            Err(_) => Err(self.timeout_err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src(kind: Kind, options: Value, secrets: Value) -> Source {
        Source {
            name: "s1".into(),
            kind,
            options: options.as_object().unwrap().clone(),
            secrets: secrets.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn errors_are_scrubbed_of_secrets() {
        let s = src(
            Kind::Postgres,
            json!({"host": "h"}),
            json!({"password": "hunter2"}),
        );
        let e = s.err(SourceErrorKind::Remote, "auth failed for password hunter2");
        assert_eq!(
            e.message,
            "datasource \"s1\" (postgres): auth failed for password ***"
        );
    }

    #[test]
    fn bad_object_names_are_refused_before_connecting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let s = src(
            Kind::Elasticsearch,
            json!({"url": "http://127.0.0.1:1"}),
            json!({}),
        );
        assert_eq!(
            rt.block_on(s.describe("", 10)).unwrap_err().kind,
            SourceErrorKind::BadObject
        );
        assert_eq!(
            rt.block_on(s.describe("a/../_all", 10)).unwrap_err().kind,
            SourceErrorKind::BadObject
        );
    }
}
