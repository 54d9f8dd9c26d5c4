//! Print: a sink that writes every row to the TaskManager's log (Flink's `print` connector),
//! for trying a rule and watching its output. The object names the print identifier (a prefix
//! on each line). It cannot be read from or described.
use super::schema::OptSpec;
use super::{DatasourceKind, Described, Source, SourceError, SourceErrorKind};
use crate::pipeline::{ConnectorUse, PipelineError};

/// The print kind.
pub struct Print;

impl DatasourceKind for Print {
    const ACCEPTS_UPDATES: bool = true;
    const OPTIONS: &'static [OptSpec] = &[];
    const SINK_ONLY: bool = true;
    const DERIVES_SINK_COLUMNS: bool = true;

    async fn test(_src: &Source) -> Result<String, SourceError> {
        Ok("print: writes rows to the TaskManager log (nothing to connect to)".into())
    }

    async fn describe(
        src: &Source,
        _object: &str,
        _sample_size: usize,
    ) -> Result<Described, SourceError> {
        Err(src.err(
            SourceErrorKind::BadObject,
            "print has no objects to describe",
        ))
    }

    /// Only called for sinks (`SINK_ONLY`).
    fn flink_options(table: &ConnectorUse) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![
            ("connector".into(), "print".into()),
            ("print-identifier".into(), table.object().to_string()),
        ])
    }
}
