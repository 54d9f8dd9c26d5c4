//! Catalog glue: validation and the network side of test/describe. The table work (upserts,
//! versions, privileges) is SQL in sql/install/20_catalog.sql, which calls these internal functions (schema flink_internal).
use crate::datasource::catalog::{self, CatalogError, ErrorClass};
use crate::datasource::{Source, SourceError, SourceErrorKind};
use crate::flink::{Gateway, HttpLimits, JobManager};
use crate::gucs;
use crate::interruptible::{self, ReportError};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Raises a catalog or pipeline error (`PipelineError` converts into `CatalogError`).
pub(crate) fn raise_catalog(e: impl Into<CatalogError>, funcname: &'static str) -> ! {
    let e: CatalogError = e.into();
    let code = match e.class {
        ErrorClass::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorClass::NullValue => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        ErrorClass::WrongObjectType => PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
        ErrorClass::UndefinedObject => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        ErrorClass::DependentObjects => PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        ErrorClass::DatatypeMismatch => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
    };
    ErrorReport::new(code, e.message, funcname)
        .set_hint(e.hint)
        .report_error()
}

pub(crate) fn raise_source(e: SourceError, funcname: &'static str) -> ! {
    let (code, hint) = match e.kind {
        SourceErrorKind::Unreachable => (
            PgSqlErrorCode::ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            "Check the datasource's options (host, port, URL, user) and that the service is running; flink.test_datasource() tells more.",
        ),
        SourceErrorKind::Timeout => (PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE, "The service is slow or stuck; raise the datasource option timeout_ms or check the service."),
        SourceErrorKind::NotFound => (PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, "Check the object name: schema.table for postgres/mysql, an index for elasticsearch, a topic for kafka."),
        SourceErrorKind::BadObject => (PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "Give the object name without quotes or special characters."),
        SourceErrorKind::Remote => (PgSqlErrorCode::ERRCODE_FDW_ERROR, "The datasource answered with an error; see the message."),
    };
    ErrorReport::new(code, e.message, funcname)
        .set_hint(hint)
        .report_error()
}

fn object(v: Option<JsonB>) -> Map<String, Value> {
    match v {
        Some(JsonB(Value::Object(m))) => m,
        _ => Map::new(),
    }
}

fn source(
    name: &str,
    kind: &str,
    options: Option<JsonB>,
    secrets: Option<JsonB>,
    funcname: &'static str,
) -> Source {
    let kind = catalog::check_kind(name, Some(kind)).unwrap_or_else(|e| raise_catalog(e, funcname));
    Source {
        name: name.to_string(),
        kind,
        options: object(options),
        secrets: object(secrets),
    }
}

#[pg_schema]
mod flink_internal {
    use super::*;

    /// Validates a datasource definition; returns {"options": ..., "secrets": ...} normalised.
    #[pg_extern(immutable, parallel_safe)]
    fn validate_datasource(
        name: Option<&str>,
        kind: Option<&str>,
        options: Option<JsonB>,
        secrets: Option<JsonB>,
    ) -> JsonB {
        const F: &str = "flink.register_datasource";
        let name = catalog::check_name("datasource", name).unwrap_or_else(|e| raise_catalog(e, F));
        let kind = catalog::check_kind(&name, kind).unwrap_or_else(|e| raise_catalog(e, F));
        if options.is_none() {
            raise_catalog(
                CatalogError {
                    class: ErrorClass::NullValue,
                    message: format!("datasource \"{name}\": options must not be null"),
                    hint: format!(
                        "Pass at least the required options of kind {}, e.g. options => '{{...}}'.",
                        kind.as_str()
                    ),
                },
                F,
            );
        }
        let v = catalog::validate(
            &name,
            kind,
            options.as_ref().map(|j| &j.0),
            secrets.as_ref().map(|j| &j.0),
        )
        .unwrap_or_else(|e| raise_catalog(e, F));
        JsonB(json!({"options": v.options, "secrets": v.secrets}))
    }

    /// Validates a cluster definition; returns normalised {"gateway_url", "rest_url", "options"}.
    #[pg_extern(immutable, parallel_safe)]
    fn validate_cluster(
        name: Option<&str>,
        gateway_url: Option<&str>,
        rest_url: Option<&str>,
        options: Option<JsonB>,
    ) -> JsonB {
        const F: &str = "flink.register_cluster";
        let name = catalog::check_name("cluster", name).unwrap_or_else(|e| raise_catalog(e, F));
        let mut urls = Map::new();
        for (key, v) in [("gateway_url", gateway_url), ("rest_url", rest_url)] {
            let u = crate::core::urls::parse_base_url(v.unwrap_or("")).unwrap_or_else(|e| {
                raise_catalog(
                    CatalogError {
                        class: ErrorClass::InvalidParameter,
                        message: format!("cluster \"{name}\": {key} is not a valid URL: {}", e.0),
                        hint: "Use http(s)://host:port, e.g. http://127.0.0.1:8083 for the gateway and http://127.0.0.1:8081 for the JobManager.".into(),
                    },
                    F,
                )
            });
            if !u.username().is_empty() || u.password().is_some() {
                raise_catalog(
                    CatalogError {
                        class: ErrorClass::InvalidParameter,
                        message: format!("cluster \"{name}\": {key} must not contain credentials"),
                        hint: "Flink's REST APIs take no credentials in pg_flink yet; put a proxy in front if you need authentication.".into(),
                    },
                    F,
                );
            }
            urls.insert(key.into(), Value::String(crate::core::urls::redact(&u)));
        }
        let opts =
            crate::datasource::validate_cluster_options(&name, options.as_ref().map(|j| &j.0))
                .unwrap_or_else(|e| raise_catalog(e, F));
        urls.insert("options".into(), Value::Object(opts));
        JsonB(Value::Object(urls))
    }

    /// Connects to a datasource for real; never raises for a connection failure (ok = false).
    #[pg_extern(volatile, parallel_unsafe)]
    fn test_datasource(
        name: &str,
        kind: &str,
        options: Option<JsonB>,
        secrets: Option<JsonB>,
    ) -> TableIterator<
        'static,
        (
            name!(ok, bool),
            name!(latency_ms, f64),
            name!(detail, String),
        ),
    > {
        let src = source(name, kind, options, secrets, "flink.test_datasource");
        let t = Instant::now();
        let r = interruptible::run(async move { src.test().await });
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        TableIterator::once(match r {
            Ok(detail) => (true, ms, detail),
            Err(e) => (false, ms, e.message),
        })
    }

    /// Checks a registered cluster: JobManager and gateway; `flink_version` is the JobManager's
    /// (`detail` names the gateway's too).
    #[pg_extern(volatile, parallel_unsafe)]
    fn test_cluster(
        name: &str,
        gateway_url: &str,
        rest_url: &str,
        timeout_ms: default!(i32, 10000),
    ) -> TableIterator<
        'static,
        (
            name!(ok, bool),
            name!(flink_version, Option<String>),
            name!(latency_ms, f64),
            name!(detail, String),
        ),
    > {
        let t_ms = timeout_ms.max(100) as u64;
        let limits = HttpLimits {
            connect_timeout_ms: t_ms.min(gucs::http_limits().connect_timeout_ms),
            request_timeout_ms: t_ms,
        };
        let (gw, rest) = (gateway_url.to_string(), rest_url.to_string());
        let t = Instant::now();
        let r = interruptible::run(async move {
            let jm = JobManager::new(&rest, limits)?;
            let ov = jm.overview().await?;
            let g = Gateway::new(&gw, limits)?;
            let info = g.info().await?;
            let detail = format!(
                "JobManager {} (Flink {}, {} task manager(s), {}/{} slots free); SQL Gateway {} (Flink {})",
                jm.shown_url(), ov.flink_version, ov.taskmanagers, ov.slots_available, ov.slots_total, g.shown_url(), info.version
            );
            Ok::<_, crate::flink::RestError>((ov.flink_version, detail))
        });
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        TableIterator::once(match r {
            Ok((version, d)) => (true, Some(version), ms, d),
            Err(e) => (false, None, ms, format!("cluster \"{name}\": {e}")),
        })
    }

    /// Columns of an object of a datasource, with Flink types.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn describe_datasource(
        name: &str,
        kind: &str,
        options: Option<JsonB>,
        secrets: Option<JsonB>,
        object: Option<&str>,
        sample_size: default!(i32, 100),
    ) -> TableIterator<
        'static,
        (
            name!(column_name, String),
            name!(source_type, String),
            name!(flink_type, Option<String>),
            name!(nullable, bool),
            name!(sampled, Option<i32>),
        ),
    > {
        const F: &str = "flink.describe_datasource";
        if !(1..=100_000).contains(&sample_size) {
            raise_catalog(
                CatalogError {
                    class: ErrorClass::InvalidParameter,
                    message: format!("datasource \"{name}\": sample_size must be between 1 and 100000, got {sample_size}"),
                    hint: "Kafka topics are described from a sample of that many messages.".into(),
                },
                F,
            );
        }
        let Some(object) = object else {
            raise_catalog(
                CatalogError {
                    class: ErrorClass::NullValue,
                    message: format!("datasource \"{name}\": object must not be null"),
                    hint: "Name a table (schema.table), an index or a topic.".into(),
                },
                F,
            )
        };
        let src = source(name, kind, options, secrets, F);
        let object = object.to_string();
        let d =
            interruptible::run(async move { src.describe(&object, sample_size as usize).await })
                .unwrap_or_else(|e| raise_source(e, F));
        let sampled = d.sampled;
        TableIterator::new(
            d.columns
                .into_iter()
                .map(move |c| (c.name, c.source_type, c.flink_type, c.nullable, sampled)),
        )
    }
}
