//! The `WITH (...)` options of a pipeline table: the checks every kind shares (object name,
//! change data capture), the kind's own connector options (built in the kind's file under
//! `src/datasource/`, from a [`ConnectorUse`]), then the table's `connector_options` overrides.
use super::context::Ctx;
use super::error::PipelineError;
use super::params::{Role, TableRef};
use super::DatasourceInfo;
use crate::datasource::ErrorClass;
use serde_json::{Map, Value};

/// A pipeline table on a datasource, as a kind's connector builder sees it.
pub struct ConnectorUse<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// Params path of the table (`params.source`, `params.tables.x.y`).
    pub path: &'a str,
    pub table: &'a TableRef,
    pub role: Role,
    /// The datasource's options, merged with its secrets.
    pub options: &'a Map<String, Value>,
}

impl ConnectorUse<'_> {
    /// The topic, index or table name.
    pub fn object(&self) -> &str {
        &self.table.object
    }

    /// A string option (or secret) of the datasource.
    pub fn option(&self, key: &str) -> Option<String> {
        self.options
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// An integer option of the datasource, or `default`.
    pub fn option_int(&self, key: &str, default: i64) -> i64 {
        self.options
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    }

    /// Whether the table declares a (non-empty) primary key.
    pub fn keyed(&self) -> bool {
        self.table
            .primary_key
            .as_ref()
            .is_some_and(|p| !p.is_empty())
    }

    /// Whether the table asks for change data capture.
    pub fn cdc(&self) -> bool {
        self.table.cdc.unwrap_or(false)
    }

    /// An invalid parameter at `field` of the table (`object`, `primary_key`).
    pub fn invalid(
        &self,
        field: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> PipelineError {
        PipelineError::invalid(self.pipeline, &format!("{}.{field}", self.path), what, hint)
    }

    /// An error of `class` at `field` of the table.
    pub fn error(
        &self,
        class: ErrorClass,
        field: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> PipelineError {
        PipelineError::at(
            class,
            self.pipeline,
            &format!("{}.{field}", self.path),
            what,
            hint,
        )
    }
}

/// Flink option keys (`table.exec.mini-batch.enabled`, `scan.startup.mode`).
pub(crate) fn check_flink_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 200
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl Ctx<'_> {
    /// The connector options of table `t` (at params `path`) on datasource `ds`.
    pub(crate) fn connector(
        &self,
        path: &str,
        ds: &DatasourceInfo,
        t: &TableRef,
        role: Role,
    ) -> Result<Vec<(String, String)>, PipelineError> {
        let table = ConnectorUse {
            pipeline: self.pipeline,
            path,
            table: t,
            role,
            options: &ds.options,
        };
        let object = table.object();
        if object.is_empty() || object.len() > 255 || object.chars().any(char::is_control) {
            return Err(table.invalid(
                "object",
                "must be 1-255 printable characters",
                "Name a topic, index or table.",
            ));
        }
        if table.cdc() && !(ds.kind.cdc_source() && role == Role::Source) {
            return Err(table.invalid(
                "cdc",
                "change data capture needs a postgres source",
                "Set cdc only on a postgres source.",
            ));
        }
        let mut with = ds.kind.flink_options(&table)?;
        for (k, v) in t.connector_options.iter().flatten() {
            if !check_flink_key(k) {
                return Err(table.invalid(
                    "connector_options",
                    format!(
                        "\"{}\" is not a connector option key",
                        k.chars().take(40).collect::<String>()
                    ),
                    "Keys are like 'scan.startup.mode'.",
                ));
            }
            with.retain(|(key, _)| key != k);
            with.push((k.clone(), v.clone()));
        }
        Ok(with)
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::script_hash;
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn revealed_script_holds_real_secrets() {
        let ex = examples();
        let p = ex["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "copy_customers")
            .unwrap();
        let real = render_example(p, &catalog(true)).unwrap();
        let shown = render_example(p, &catalog(false)).unwrap();
        assert!(real.contains("'password' = 'example-pw'"));
        assert!(shown.contains("'password' = '***'"));
        assert_ne!(script_hash(&real), script_hash(&shown));
    }

    #[test]
    fn bad_connectors_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
        ("big_orders", Box::new(|p| p["params"]["source"]["datasource"] = json!("es_local")), "params.source.datasource: datasource \"es_local\" is elasticsearch, which can only be a sink"),
        ("customers_cdc_to_es", Box::new(|p| { p["params"]["source"].as_object_mut().unwrap().remove("primary_key"); }), "params.source.primary_key: is required with cdc"),
        ("orders_to_es", Box::new(|p| p["params"]["source"]["cdc"] = json!(true)), "params.source.cdc: change data capture needs a postgres source"),
        ];
        assert_errors(cases);
    }
}
