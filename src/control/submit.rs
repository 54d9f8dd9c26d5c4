//! What the worker submits for a pipeline: its script rendered in Rust from the pipeline's own
//! datasources (never the whole catalog's secrets), as the typed statement list, plus the secret
//! values to scrub from any error text. Pure: unit-tested without Postgres.
use super::identity::Database;
use crate::core::quote;
use crate::datasource::scrub;
use crate::pipeline::{self, catalog_of, Definition};
use crate::stored::PipelineDef;
use serde_json::{Map, Value};

/// The statements to submit and the secrets to scrub from errors.
pub fn render(
    def: &PipelineDef,
    database: &Database,
) -> Result<(Vec<String>, Map<String, Value>), String> {
    let (cat, secrets) = catalog_of(&def.datasources)?;
    let d = Definition {
        name: &def.name,
        template: &def.template,
        params: &def.params,
        options: &def.options,
        database,
        version: def.version,
        flink_version: def.flink_version.as_deref(),
    };
    let script = pipeline::render_script(&d, &cat).map_err(|e| {
        scrub(
            &format!("the pipeline cannot be rendered: {}", e.message),
            &secrets,
        )
    })?;
    Ok((script.statements(), secrets))
}

/// The statement that makes the next job start from a savepoint: `execution.state-recovery.path`,
/// the key Flink 1.20 introduced and 2.x keeps (`execution.savepoint.path`, its deprecated alias,
/// is what older scripts use).
pub fn restore_from(savepoint: &str) -> String {
    format!(
        "SET 'execution.state-recovery.path' = {}",
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
    fn submits_the_typed_statements_of_only_its_own_datasources() {
        let def = PipelineDef {
            name: "p".into(),
            template: "filter_alert".into(),
            params: json!({"source": {"datasource": "k", "object": "t", "columns": [{"name": "a", "type": "INT"}]},
                           "conditions": [{"column": "a", "op": ">", "value": 1}], "select": ["a"],
                           "sink": {"datasource": "k", "object": "u"}}),
            options: json!({}),
            version: 2,
            datasources: json!({"k": {"kind": "kafka", "options": {"bootstrap_servers": "h:1"},
                                      "secrets": {"sasl_password": "kafka-pw-1"}}}),
            flink_version: None,
        };
        let db = Database {
            system_identifier: 1,
            oid: 2,
            name: "db".into(),
        };
        let (statements, secrets) = render(&def, &db).unwrap();
        assert_eq!(
            statements[0],
            "SET 'pipeline.name' = 'pg_flink/1/2/db/p/v2'"
        );
        assert!(statements.last().unwrap().starts_with("INSERT INTO"));
        assert!(statements.iter().all(|s| !s.trim_end().ends_with(';')));
        assert_eq!(secrets.len(), 1);
    }

    #[test]
    fn savepoint_paths_are_quoted() {
        assert_eq!(
            restore_from("file:///a'b"),
            "SET 'execution.state-recovery.path' = 'file:///a''b'"
        );
    }
}
