//! [`PipelineError`]: why a pipeline cannot be rendered. The message names the pipeline and the
//! params path at fault (`pipeline "p": params.sink.columns: ...`); the class says which
//! SQLSTATE it becomes (the same classes as catalog errors, see `api::catalog::raise_catalog`).
use crate::datasource::{CatalogError, ErrorClass};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PipelineError {
    pub class: ErrorClass,
    pub message: String,
    pub hint: String,
}

impl PipelineError {
    /// An error of `class` at params path `path` of `pipeline`.
    pub(crate) fn at(
        class: ErrorClass,
        pipeline: &str,
        path: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> PipelineError {
        PipelineError {
            class,
            message: format!("pipeline \"{pipeline}\": {path}: {what}"),
            hint: hint.into(),
        }
    }

    /// An invalid parameter at `path` of `pipeline`.
    pub(crate) fn invalid(
        pipeline: &str,
        path: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> PipelineError {
        PipelineError::at(ErrorClass::InvalidParameter, pipeline, path, what, hint)
    }
}

/// The SQL glue raises pipeline and catalog errors the same way.
impl From<PipelineError> for CatalogError {
    fn from(e: PipelineError) -> CatalogError {
        CatalogError {
            class: e.class,
            message: e.message,
            hint: e.hint,
        }
    }
}
