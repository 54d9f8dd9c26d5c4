//! Stored pipelines and datasources read with SPI, for every path that renders: the SQL API
//! (as the caller, so privileges decide what is visible) and the worker. Only the datasources a
//! pipeline references are read; secrets only when asked for, and only a caller who may read
//! `flink.datasource_secret` can ask successfully.
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::Deserialize;
use serde_json::Value;

/// A stored pipeline with its own datasources: `datasources` is
/// `{name: {kind, options, secrets?}}` (secret options masked as "***" unless revealed).
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineDef {
    pub name: String,
    pub template: String,
    pub params: Value,
    pub options: Value,
    pub version: i32,
    pub datasources: Value,
    /// The Flink version of the pipeline's cluster, as the worker recorded it (None: not known,
    /// or a schema before 0.3.0).
    #[serde(default)]
    pub flink_version: Option<String>,
}

/// Masked: readable by flink_reader (views only).
const PIPELINE_MASKED: &str = "SELECT jsonb_build_object('name', p.name, 'template', p.template, 'params', p.params,
    'options', p.options, 'version', p.version, 'flink_version', (SELECT to_jsonb(c) ->> 'flink_version' FROM flink.clusters c WHERE c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default) ORDER BY c.name = p.options->>'cluster' DESC LIMIT 1),
    'datasources', COALESCE((SELECT jsonb_object_agg(m.name, jsonb_build_object('kind', m.kind, 'options', m.options))
                             FROM flink.datasources m WHERE m.name = ANY (p.datasources)), '{}'))
  FROM flink.pipelines p WHERE p.name = $1";

/// Revealed: needs SELECT on the tables (flink_admin, the worker).
const PIPELINE_REVEALED: &str = "SELECT jsonb_build_object('name', p.name, 'template', p.template, 'params', p.params,
    'options', p.options, 'version', p.version, 'flink_version', (SELECT to_jsonb(c) ->> 'flink_version' FROM flink.clusters c WHERE c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default) ORDER BY c.name = p.options->>'cluster' DESC LIMIT 1),
    'datasources', COALESCE((SELECT jsonb_object_agg(d.name, jsonb_build_object('kind', d.kind, 'options', d.options,
                                      'secrets', COALESCE(s.secrets, '{}')))
                             FROM flink.pipeline_datasource pd
                             JOIN flink.datasource d ON d.name = pd.datasource
                             LEFT JOIN flink.datasource_secret s ON s.datasource = d.name
                             WHERE pd.pipeline = p.name), '{}'))
  FROM flink.pipeline p WHERE p.name = $1";

/// Named datasources with their secrets (for create_pipeline, which runs as the extension owner).
const DATASOURCES_REVEALED: &str = "SELECT COALESCE(jsonb_object_agg(d.name, jsonb_build_object('kind', d.kind, 'options', d.options,
                                      'secrets', COALESCE(s.secrets, '{}'))), '{}')
  FROM flink.datasource d LEFT JOIN flink.datasource_secret s ON s.datasource = d.name
  WHERE d.name = ANY ($1)";

/// The first column of the first row, or None when there is no row (or it is NULL).
pub fn optional<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>, String> {
    match Spi::get_one_with_args::<T>(query, args) {
        Ok(v) => Ok(v),
        Err(pgrx::spi::SpiError::InvalidPosition) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The pipeline, or None when it does not exist. Errors are Postgres' (e.g. permission denied).
pub fn pipeline(name: &str, reveal: bool) -> Result<Option<PipelineDef>, String> {
    let query = if reveal {
        PIPELINE_REVEALED
    } else {
        PIPELINE_MASKED
    };
    let v = optional::<JsonB>(query, &[name.to_string().into()])?;
    match v {
        None => Ok(None),
        Some(JsonB(v)) => serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
            format!(
                "malformed pipeline \"{name}\" ({}: {})",
                e.path(),
                e.inner()
            )
        }),
    }
}

/// `{name: {kind, options, secrets}}` of the named datasources that exist.
pub fn datasources(names: &[String]) -> Result<Value, String> {
    Spi::get_one_with_args::<JsonB>(DATASOURCES_REVEALED, &[names.to_vec().into()])
        .map(|v| v.map(|j| j.0).unwrap_or(Value::Null))
        .map_err(|e| e.to_string())
}

/// Whether the caller may read secrets (flink_admin members and superusers).
pub fn may_reveal() -> bool {
    Spi::get_one::<bool>("SELECT has_table_privilege('flink.datasource_secret', 'SELECT')")
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// This instance and database (for job names).
pub fn this_database() -> crate::control::identity::Database {
    let name = Spi::get_one::<String>("SELECT current_database()::text")
        .ok()
        .flatten()
        .unwrap_or_default();
    crate::control::identity::Database {
        system_identifier: crate::control::worker::system_identifier(),
        // SAFETY: MyDatabaseId is set when the backend connects and never changes afterwards.
        oid: unsafe { pgrx::pg_sys::MyDatabaseId }.to_u32(),
        name,
    }
}
