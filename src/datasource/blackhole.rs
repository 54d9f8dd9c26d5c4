//! Blackhole: a sink that discards every row (Flink's `blackhole` connector), for trying a rule
//! without a real sink or measuring a pipeline's throughput. No options, no client; it cannot
//! be read from or described.
use super::schema::OptSpec;
use super::{DatasourceKind, Described, Source, SourceError, SourceErrorKind};
use crate::pipeline::{ConnectorUse, PipelineError};

/// The blackhole kind.
pub struct Blackhole;

impl DatasourceKind for Blackhole {
    const ACCEPTS_UPDATES: bool = true;
    const OPTIONS: &'static [OptSpec] = &[];
    const SINK_ONLY: bool = true;
    const DERIVES_SINK_COLUMNS: bool = true;

    async fn test(_src: &Source) -> Result<String, SourceError> {
        Ok("blackhole: discards every row (nothing to connect to)".into())
    }

    async fn describe(
        src: &Source,
        _object: &str,
        _sample_size: usize,
    ) -> Result<Described, SourceError> {
        Err(src.err(
            SourceErrorKind::BadObject,
            "a blackhole has no objects to describe",
        ))
    }

    /// Only called for sinks (`SINK_ONLY`).
    fn flink_options(_table: &ConnectorUse) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![("connector".into(), "blackhole".into())])
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::{assert_errors, Mutation};
    use serde_json::json;

    #[test]
    fn a_blackhole_is_a_sink_only() {
        let cases: Vec<(&str, Mutation, &str)> = vec![(
            "big_orders_dry_run",
            Box::new(|p| p["params"]["source"]["datasource"] = json!("blackhole_local")),
            "params.source.datasource: datasource \"blackhole_local\" is blackhole, which can only be a sink",
        )];
        assert_errors(cases);
    }
}
