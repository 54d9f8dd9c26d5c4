//! Flink clusters in the catalog: the schema of a cluster's options and their validation
//! (the URLs are checked by the SQL glue in `api::catalog`).
use super::catalog::{CatalogError, ErrorClass};
use super::schema::{check_value, def, fill_defaults, opt, shorten, OptSpec, OptType, TIMEOUT};
use crate::core::messages::{did_you_mean, json_type};
use serde_json::{Map, Value};

/// Validates the options of a cluster: `default` (bool), `timeout_ms`, `session_properties`
/// (Flink options set on every gateway session, strings), `description` (text).
pub fn validate_cluster_options(
    name: &str,
    options: Option<&Value>,
) -> Result<Map<String, Value>, CatalogError> {
    static SPEC: &[OptSpec] = &[
        def(
            "default",
            OptType::Bool,
            "false",
            "whether this is the default cluster",
        ),
        TIMEOUT,
        opt(
            "session_properties",
            OptType::StrMap,
            "Flink options set on every SQL Gateway session",
        ),
        opt("description", OptType::Str, "free text"),
    ];
    let m =
        match options {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(CatalogError {
                class: ErrorClass::InvalidParameter,
                message: format!(
                    "cluster \"{name}\": options must be a JSON object, not {}",
                    json_type(other)
                ),
                hint: "Options of a cluster: default, timeout_ms, session_properties, description."
                    .into(),
            }),
        };
    let mut out = Map::new();
    for (k, v) in &m {
        let Some(s) = SPEC.iter().find(|s| s.key == k) else {
            let hint = match did_you_mean(k, SPEC.iter().map(|s| s.key)) {
                Some(d) => format!("Did you mean \"{d}\"? Options of a cluster: default, timeout_ms, session_properties, description."),
                None => "Options of a cluster: default, timeout_ms, session_properties, description.".into(),
            };
            return Err(CatalogError {
                class: ErrorClass::InvalidParameter,
                message: format!("cluster \"{name}\": unknown option \"{}\"", shorten(k)),
                hint,
            });
        };
        let checked = check_value(&format!("cluster \"{name}\""), s, v)?;
        out.insert(k.clone(), checked);
    }
    fill_defaults(SPEC, &mut out);
    Ok(out)
}
