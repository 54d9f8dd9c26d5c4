//! Pipeline params and options as stored: the [`Params`] of each template (parsed with
//! [`Params::parse`], errors naming the params path), the types templates share ([`TableRef`],
//! [`ColumnDecl`], [`Condition`]) and [`PipelineOptions`]. Each template's own params types live
//! in its file under `templates/`.
use super::error::PipelineError;
use super::templates::{
    cep::CepParams, deduplicate::DeduplicateParams, filter_alert::FilterAlertParams,
    interval_join::IntervalJoinParams, lookup_join::LookupJoinParams, sql::SqlParams,
    sync::SyncParams, temporal_join::TemporalJoinParams, top_n::TopNParams,
    window_aggregate::WindowAggregateParams,
};
use super::TEMPLATES;
use crate::datasource::ErrorClass;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnDecl {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

/// A source or sink: a datasource object, with columns (declared, or resolved from the
/// datasource at create time).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    pub datasource: String,
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnDecl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc: Option<bool>,
    /// Only rows for which this Flink SQL boolean expression is true are read (a source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Columns computed from the physical ones (a source): name, Flink SQL expression, type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<Vec<Computed>>,
    /// Where a source's late rows go (rows at or behind the watermark when read), instead of
    /// being dropped: a sink of the source's columns. Needs event_time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<Box<TableRef>>,
    /// Extra connector options (`'key' = 'value'` in WITH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_options: Option<BTreeMap<String, String>>,
}

/// The processing-time column a source gains when it has no event time (or a template always
/// wants one): `proc_time AS PROCTIME()`.
pub const PROC_TIME: &str = "proc_time";

impl TableRef {
    /// The column that orders a source's rows in time: its event time, else [`PROC_TIME`].
    pub fn time_column(&self) -> &str {
        self.event_time.as_deref().unwrap_or(PROC_TIME)
    }
}

/// A computed source column: `CAST((expr) AS type) AS name`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Computed {
    pub name: String,
    pub expr: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub column: String,
    pub op: String,
    #[serde(default)]
    pub value: Option<Value>,
}

/// Default of `match` (conditions combined with AND).
pub(crate) fn match_all() -> String {
    "all".into()
}

#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    WindowAggregate(WindowAggregateParams),
    FilterAlert(FilterAlertParams),
    IntervalJoin(IntervalJoinParams),
    Cep(CepParams),
    Sync(SyncParams),
    Deduplicate(DeduplicateParams),
    TopN(TopNParams),
    LookupJoin(LookupJoinParams),
    TemporalJoin(TemporalJoinParams),
    Sql(SqlParams),
    /// Several templates as one job: (template, params) per branch.
    Branches(Vec<(String, Params)>),
}

/// Pipeline options: Flink job settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PipelineOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flink: Option<BTreeMap<String, Value>>,
    /// Freshness target (an interval): the pipeline is stale while its lag is above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<String>,
    /// fail | skip | dead_letter: what a source record that cannot be decoded does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_bad_record: Option<String>,
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(
    pipeline: &str,
    root: &str,
    v: &Value,
) -> Result<T, PipelineError> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            root.to_string()
        } else {
            format!("{root}.{path}")
        };
        PipelineError::invalid(
            pipeline,
            &at,
            e.into_inner(),
            "See docs/pipelines.md for this template's params.",
        )
    })
}

impl Params {
    pub fn parse(pipeline: &str, template: &str, params: &Value) -> Result<Params, PipelineError> {
        if !params.is_object() {
            return Err(PipelineError::invalid(
                pipeline,
                "params",
                format!(
                    "must be a JSON object, not {}",
                    crate::core::messages::json_type(params)
                ),
                "See docs/pipelines.md.",
            ));
        }
        Ok(match template {
            "window_aggregate" => Params::WindowAggregate(from_json(pipeline, "params", params)?),
            "filter_alert" => Params::FilterAlert(from_json(pipeline, "params", params)?),
            "interval_join" => Params::IntervalJoin(from_json(pipeline, "params", params)?),
            "cep" => Params::Cep(from_json(pipeline, "params", params)?),
            "sync" => Params::Sync(from_json(pipeline, "params", params)?),
            "deduplicate" => Params::Deduplicate(from_json(pipeline, "params", params)?),
            "top_n" => Params::TopN(from_json(pipeline, "params", params)?),
            "lookup_join" => Params::LookupJoin(from_json(pipeline, "params", params)?),
            "temporal_join" => Params::TemporalJoin(from_json(pipeline, "params", params)?),
            "sql" => Params::Sql(from_json(pipeline, "params", params)?),
            "branches" => Params::Branches(super::templates::branches::parse(
                pipeline,
                &from_json(pipeline, "params", params)?,
            )?),
            other => {
                let hint =
                    match crate::core::messages::did_you_mean(other, TEMPLATES.iter().copied()) {
                        Some(d) => {
                            format!("Did you mean \"{d}\"? Templates: {}.", TEMPLATES.join(", "))
                        }
                        None => format!("Templates: {}.", TEMPLATES.join(", ")),
                    };
                return Err(PipelineError {
                    class: ErrorClass::InvalidParameter,
                    message: format!(
                        "pipeline \"{pipeline}\": unknown template \"{}\"",
                        other.chars().take(40).collect::<String>()
                    ),
                    hint,
                });
            }
        })
    }

    pub fn to_json(&self) -> Value {
        let r = match self {
            Params::WindowAggregate(p) => serde_json::to_value(p),
            Params::FilterAlert(p) => serde_json::to_value(p),
            Params::IntervalJoin(p) => serde_json::to_value(p),
            Params::Cep(p) => serde_json::to_value(p),
            Params::Sync(p) => serde_json::to_value(p),
            Params::Deduplicate(p) => serde_json::to_value(p),
            Params::TopN(p) => serde_json::to_value(p),
            Params::LookupJoin(p) => serde_json::to_value(p),
            Params::TemporalJoin(p) => serde_json::to_value(p),
            Params::Sql(p) => serde_json::to_value(p),
            Params::Branches(b) => Ok(serde_json::json!({
                "branches": b
                    .iter()
                    .map(|(t, p)| serde_json::json!({"template": t, "params": p.to_json()}))
                    .collect::<Vec<_>>()
            })),
        };
        r.unwrap_or(Value::Null)
    }

    /// Every table reference with its params path and role, for resolution and dependencies.
    pub fn table_refs_mut(&mut self) -> Vec<(String, Role, &mut TableRef)> {
        match self {
            Params::WindowAggregate(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::FilterAlert(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::IntervalJoin(p) => vec![
                ("params.left".into(), Role::Source, &mut p.left),
                ("params.right".into(), Role::Source, &mut p.right),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::Cep(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::Sync(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::Deduplicate(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::TopN(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::LookupJoin(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.lookup".into(), Role::Source, &mut p.lookup),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::TemporalJoin(p) => vec![
                ("params.source".into(), Role::Source, &mut p.source),
                ("params.versions".into(), Role::Source, &mut p.versions),
                ("params.sink".into(), Role::Sink, &mut p.sink),
            ],
            Params::Sql(_) => vec![],
            Params::Branches(b) => super::templates::branches::table_refs(b),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Sink,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn bad_params_json_names_the_path() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "orders_per_minute",
                Box::new(|p| {
                    p["params"].as_object_mut().unwrap().remove("window");
                }),
                "params: missing field `window`",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["agregates"] = json!([])),
                "params.agregates: unknown field `agregates`",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["group_by"] = json!("city")),
                "params.group_by: invalid type",
            ),
        ];
        assert_errors(cases);
        let e = Params::parse("p", "windowaggregate", &json!({})).unwrap_err();
        assert!(e.hint.starts_with("Did you mean \"window_aggregate\"?"));
    }
}
