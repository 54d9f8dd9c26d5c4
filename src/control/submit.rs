//! What the worker submits for a pipeline: its script rendered in Rust from the pipeline's own
//! datasources (never the whole catalog's secrets), as a list of statements, plus the secret
//! values to scrub from any error text. Pure: unit-tested without Postgres.
use crate::core::catalog::{self, Kind};
use crate::core::pipeline::{self, Catalog, DatasourceInfo, Definition};
use crate::core::quote;
use crate::stored::PipelineDef;
use serde_json::{Map, Value};

/// `{name: {kind, options, secrets?}}` → the renderer's catalog (secrets merged into the
/// options) and every secret value keyed `datasource.option` (to scrub error texts).
pub fn catalog_of(datasources: &Value) -> Result<(Catalog, Map<String, Value>), String> {
    let mut cat = Catalog::new();
    let mut secrets = Map::new();
    for (name, d) in datasources.as_object().into_iter().flatten() {
        let kind: Kind = catalog::check_kind(name, d.get("kind").and_then(Value::as_str))
            .map_err(|e| e.message)?;
        let mut options = d
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, s) in d
            .get("secrets")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            options.insert(k.clone(), s.clone());
            secrets.insert(format!("{name}.{k}"), s.clone());
        }
        cat.insert(name.clone(), DatasourceInfo { kind, options });
    }
    Ok((cat, secrets))
}

/// The statements to submit and the secrets to scrub from errors.
pub fn render(
    def: &PipelineDef,
    database: &str,
) -> Result<(Vec<String>, Map<String, Value>), String> {
    let (cat, secrets) = catalog_of(&def.datasources)?;
    let d = Definition {
        name: &def.name,
        template: &def.template,
        params: &def.params,
        options: &def.options,
        database,
        version: def.version,
    };
    let script = pipeline::render(&d, &cat).map_err(|e| {
        catalog::scrub(
            &format!("the pipeline cannot be rendered: {}", e.message),
            &secrets,
        )
    })?;
    Ok((crate::core::script::split_statements(&script), secrets))
}

/// The statement that makes the next job start from a savepoint.
pub fn restore_from(savepoint: &str) -> String {
    format!(
        "SET 'execution.savepoint.path' = {}",
        quote::literal(savepoint)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalog_merges_secrets_and_lists_them_for_scrubbing() {
        let (cat, secrets) = catalog_of(&json!({
            "pg": {"kind": "postgres", "options": {"host": "h"}, "secrets": {"password": "s3cret"}}
        }))
        .unwrap();
        assert_eq!(cat["pg"].options["password"], json!("s3cret"));
        assert_eq!(secrets["pg.password"], json!("s3cret"));
        assert!(catalog_of(&json!({"x": {"kind": "nope"}})).is_err());
    }

    #[test]
    fn savepoint_paths_are_quoted() {
        assert_eq!(
            restore_from("file:///a'b"),
            "SET 'execution.savepoint.path' = 'file:///a''b'"
        );
    }
}
