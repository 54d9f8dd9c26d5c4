//! Datagen: a source of generated rows (Flink's `datagen` connector), for trying a rule without
//! real data. Columns are declared in the pipeline; each column's generator is set with the
//! table's `connector_options` (`fields.<column>.kind` = `random` | `sequence`, `.min`, `.max`,
//! `.start`, `.end`, `.length`, `.null-rate`). It cannot be written to or described.
use super::schema::{def, opt, OptSpec, OptType};
use super::{DatasourceKind, Described, Source, SourceError, SourceErrorKind};
use crate::pipeline::{ConnectorUse, PipelineError};

/// The datagen kind.
pub struct Datagen;

impl DatasourceKind for Datagen {
    const OPTIONS: &'static [OptSpec] = &[
        def(
            "rows_per_second",
            OptType::Int(1, 1_000_000),
            "100",
            "rows generated per second",
        ),
        opt(
            "number_of_rows",
            OptType::Int(1, 1_000_000_000),
            "stop after this many rows (a bounded source); unbounded when unset",
        ),
    ];
    const SOURCE_ONLY: bool = true;

    async fn test(_src: &Source) -> Result<String, SourceError> {
        Ok("datagen: generates rows in Flink (nothing to connect to)".into())
    }

    async fn describe(
        src: &Source,
        _object: &str,
        _sample_size: usize,
    ) -> Result<Described, SourceError> {
        Err(src.err(
            SourceErrorKind::BadObject,
            "datagen has no objects to describe: declare the columns in the pipeline",
        ))
    }

    /// Only called for sources (`SOURCE_ONLY`).
    fn flink_options(table: &ConnectorUse) -> Result<Vec<(String, String)>, PipelineError> {
        let mut with = vec![
            ("connector".into(), "datagen".into()),
            (
                "rows-per-second".into(),
                table.option_int("rows_per_second", 100).to_string(),
            ),
        ];
        let rows = table.option_int("number_of_rows", 0);
        if rows > 0 {
            with.push(("number-of-rows".into(), rows.to_string()));
        }
        Ok(with)
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::{assert_errors, Mutation};
    use serde_json::json;

    #[test]
    fn a_bounded_datagen_says_how_many_rows() {
        let cat = crate::pipeline::testing::catalog(false);
        let mut p = crate::pipeline::testing::example("generated_orders_to_print");
        let s = crate::pipeline::testing::render_example(&p, &cat).unwrap();
        assert!(!s.contains("number-of-rows"), "{s}");
        let mut cat = cat;
        if let Some(d) = cat.get_mut("datagen_local") {
            d.options.insert("number_of_rows".into(), json!(10));
        }
        p["name"] = json!("bounded");
        let s = crate::pipeline::testing::render_example(&p, &cat).unwrap();
        assert!(s.contains("'number-of-rows' = '10'"), "{s}");
    }

    #[test]
    fn datagen_is_a_source_only() {
        let cases: Vec<(&str, Mutation, &str)> = vec![(
            "big_orders_dry_run",
            Box::new(|p| p["params"]["sink"]["datasource"] = json!("datagen_local")),
            "params.sink.datasource: datasource \"datagen_local\" is datagen, which can only be a source",
        )];
        assert_errors(cases);
    }
}
