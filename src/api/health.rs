//! `flink.health()`: proof of wiring from inside Postgres to the Flink cluster and its SQL
//! Gateway, over HTTP from the backend.
use crate::errors::raise_rest;
use crate::flink::{Gateway, JobManager, RestError};
use crate::gucs;
use crate::interruptible;
use pgrx::prelude::*;
use std::time::Instant;

type HealthRow = (String, String, String, f64, String);

/// Checks the JobManager REST API and the SQL Gateway (including a session round trip) and
/// returns one row per service. Fails with a SQLSTATE error naming the service and URL when one
/// is down.
#[pg_schema]
mod flink {
    use super::*;

    #[pg_extern(volatile, parallel_unsafe)]
    fn health(
        rest_url: default!(Option<&str>, "NULL"),
        gateway_url: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (
            name!(service, String),
            name!(url, String),
            name!(version, String),
            name!(latency_ms, f64),
            name!(detail, String),
        ),
    > {
        let rest = rest_url.map(str::to_string).unwrap_or_else(gucs::rest_url);
        let gw = gateway_url
            .map(str::to_string)
            .unwrap_or_else(gucs::gateway_url);
        let limits = gucs::http_limits();
        let wait = gucs::statement_wait();
        let rows = interruptible::run(async move { check_all(&rest, &gw, limits, wait).await });
        match rows {
            Ok(rows) => TableIterator::new(rows),
            Err(e) => raise_rest(&e, "flink.health"),
        }
    }
}

async fn check_all(
    rest: &str,
    gw_url: &str,
    limits: crate::flink::HttpLimits,
    wait: std::time::Duration,
) -> Result<Vec<HealthRow>, RestError> {
    let mut rows = Vec::with_capacity(3);

    let jm = JobManager::new(rest, limits)?;
    let t = Instant::now();
    let ov = jm.overview().await?;
    rows.push((
        "jobmanager".to_string(),
        jm.shown_url(),
        ov.flink_version.clone(),
        ms(t),
        format!(
            "taskmanagers={} slots_total={} slots_available={} jobs_running={}",
            ov.taskmanagers, ov.slots_total, ov.slots_available, ov.jobs_running
        ),
    ));

    let gw = Gateway::new(gw_url, limits)?;
    let t = Instant::now();
    let info = gw.info().await?;
    rows.push((
        "sql_gateway".to_string(),
        gw.shown_url(),
        info.version.clone(),
        ms(t),
        info.product_name,
    ));

    // A real round trip: open a session, run a statement that needs no job, read its result,
    // close the session.
    let t = Instant::now();
    let session = gw
        .open_session("pg_flink health check", &Default::default())
        .await?;
    let result = gw
        .run_statement(&session, "SHOW CURRENT CATALOG", 10, wait)
        .await;
    let closed = gw.close_session(&session).await;
    let result = result?;
    closed?;
    let catalog = result
        .rows
        .first()
        .and_then(|r| r.get(0))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    rows.push((
        "sql_gateway_session".to_string(),
        gw.shown_url(),
        info.version,
        ms(t),
        format!("SHOW CURRENT CATALOG returned '{catalog}'"),
    ));
    Ok(rows)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
