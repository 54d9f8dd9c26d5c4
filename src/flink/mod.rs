//! REST clients for the Flink JobManager and the Flink SQL Gateway (API v3, Flink 1.20; v4 in
//! 2.x accepts the same requests).
//!
//! All calls are async, bounded by [`HttpLimits`], and return [`RestError`], whose messages name
//! the service and its URL (never with credentials). Query cancel is the caller's job (see
//! `crate::interruptible`).
//!
//! - [`http`]: the shared HTTP endpoint (timeouts, error mapping);
//! - [`trace`]: decoding Flink's error answers and Java exception traces to a root cause;
//! - [`jobmanager`]: the JobManager client;
//! - [`metrics`]: sampling a running job's metrics (lag, throughput, backpressure, checkpoints);
//! - [`gateway`]: the SQL Gateway client, with [`Gateway::run_script`].
pub mod gateway;
mod http;
pub mod jobmanager;
pub mod metrics;
pub mod trace;

pub use gateway::{Gateway, GatewayInfo, ScriptError, StatementResult, Stop};
pub use jobmanager::{ClusterOverview, JobManager, OverviewJob};
pub use trace::{cause_chain, root_cause};

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
