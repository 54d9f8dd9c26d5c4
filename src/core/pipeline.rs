//! Pipelines: stored rules (a template + params + options) rendered into a complete Flink SQL
//! script. Rendering is pure and deterministic: the same definition and catalog give the
//! byte-identical script. Every identifier and literal goes through `core::quote`; every type
//! through `core::flinktype`; every interval through [`Interval`].
use crate::core::catalog::{CatalogError, ErrorClass, Kind};
use crate::core::flinktype::{self, FlinkType};
use crate::core::quote::{ident, literal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const TEMPLATES: [&str; 6] = [
    "window_aggregate",
    "filter_alert",
    "interval_join",
    "cep",
    "sync",
    "sql",
];

// ------------------------------------------------------------------------------------------
// errors
// ------------------------------------------------------------------------------------------

fn perr(
    class: ErrorClass,
    pipeline: &str,
    path: &str,
    what: impl std::fmt::Display,
    hint: impl Into<String>,
) -> CatalogError {
    CatalogError {
        class,
        message: format!("pipeline \"{pipeline}\": {path}: {what}"),
        hint: hint.into(),
    }
}

fn bad(
    pipeline: &str,
    path: &str,
    what: impl std::fmt::Display,
    hint: impl Into<String>,
) -> CatalogError {
    perr(ErrorClass::InvalidParameter, pipeline, path, what, hint)
}

// ------------------------------------------------------------------------------------------
// intervals
// ------------------------------------------------------------------------------------------

/// A positive duration written as "5 seconds", "1 minute", "500 ms", "2h".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub millis: u64,
}

impl Interval {
    pub fn parse(s: &str) -> Result<Interval, String> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("\"{s}\" is not an interval like '5 seconds'"))?;
        let mult = match unit.trim() {
            "ms" | "millisecond" | "milliseconds" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" in \"{s}\" (ms, seconds, minutes, hours, days)"
                ))
            }
        };
        if n == 0 || n > 1_000_000 {
            return Err(format!("\"{s}\" must be between 1 and 1000000 units"));
        }
        Ok(Interval { millis: n * mult })
    }

    /// `INTERVAL '5' SECOND` in the largest unit that divides the duration.
    pub fn sql(&self) -> String {
        let m = self.millis;
        for (unit, size) in [
            ("DAY", 86_400_000),
            ("HOUR", 3_600_000),
            ("MINUTE", 60_000),
            ("SECOND", 1_000),
        ] {
            if m.is_multiple_of(size) {
                return format!("INTERVAL '{}' {unit}", m / size);
            }
        }
        format!("INTERVAL '{}.{:03}' SECOND", m / 1000, m % 1000)
    }

    /// Flink duration option value: "5000 ms".
    pub fn option(&self) -> String {
        format!("{} ms", self.millis)
    }
}

// ------------------------------------------------------------------------------------------
// params model
// ------------------------------------------------------------------------------------------

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
    /// Extra connector options (`'key' = 'value'` in WITH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub slide: Option<String>,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub gap: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    #[serde(rename = "fn")]
    pub func: String,
    #[serde(default)]
    pub column: Option<String>,
    #[serde(rename = "as")]
    pub alias: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub column: String,
    pub op: String,
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Constant {
    #[serde(rename = "as")]
    pub alias: String,
    pub value: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowAggregateParams {
    pub source: TableRef,
    pub window: Window,
    #[serde(default)]
    pub group_by: Vec<String>,
    pub aggregates: Vec<Aggregate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub having: Option<Condition>,
    pub sink: TableRef,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterAlertParams {
    pub source: TableRef,
    #[serde(default = "all")]
    pub r#match: String,
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    #[serde(default)]
    pub enrich: Vec<Constant>,
    pub sink: TableRef,
}

fn all() -> String {
    "all".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JoinKey {
    pub left: String,
    pub right: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SideColumn {
    pub side: String,
    pub column: String,
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// How long before the left row's time a right row may be.
    pub before: String,
    /// How long after the left row's time a right row may be.
    pub after: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IntervalJoinParams {
    pub left: TableRef,
    pub right: TableRef,
    pub on: Vec<JoinKey>,
    pub within: Bounds,
    pub select: Vec<SideColumn>,
    pub sink: TableRef,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternVar {
    pub var: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantifier: Option<String>,
    #[serde(default = "all")]
    pub r#match: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    #[serde(rename = "as")]
    pub alias: String,
    pub var: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// first, last, count (default last)
    #[serde(rename = "fn", default, skip_serializing_if = "Option::is_none")]
    pub func: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CepParams {
    pub source: TableRef,
    #[serde(default)]
    pub partition_by: Vec<String>,
    pub pattern: Vec<PatternVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    pub measures: Vec<Measure>,
    pub sink: TableRef,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncParams {
    pub source: TableRef,
    pub sink: TableRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Vec<Mapping>>,
}

/// `tables` keys are `datasource.object` references used as `{{datasource.object}}` in `sql`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SqlParams {
    pub sql: String,
    #[serde(default)]
    pub tables: BTreeMap<String, SqlTable>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SqlTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnDecl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    WindowAggregate(WindowAggregateParams),
    FilterAlert(FilterAlertParams),
    IntervalJoin(IntervalJoinParams),
    Cep(CepParams),
    Sync(SyncParams),
    Sql(SqlParams),
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
}

fn from_json<T: for<'de> Deserialize<'de>>(
    pipeline: &str,
    root: &str,
    v: &Value,
) -> Result<T, CatalogError> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            root.to_string()
        } else {
            format!("{root}.{path}")
        };
        bad(
            pipeline,
            &at,
            e.into_inner(),
            "See docs/pipelines.md for this template's params.",
        )
    })
}

impl Params {
    pub fn parse(pipeline: &str, template: &str, params: &Value) -> Result<Params, CatalogError> {
        if !params.is_object() {
            return Err(bad(
                pipeline,
                "params",
                format!(
                    "must be a JSON object, not {}",
                    crate::core::catalog::json_type(params)
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
            "sql" => Params::Sql(from_json(pipeline, "params", params)?),
            other => {
                let hint =
                    match crate::core::catalog::did_you_mean(other, TEMPLATES.iter().copied()) {
                        Some(d) => {
                            format!("Did you mean \"{d}\"? Templates: {}.", TEMPLATES.join(", "))
                        }
                        None => format!("Templates: {}.", TEMPLATES.join(", ")),
                    };
                return Err(CatalogError {
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
            Params::Sql(p) => serde_json::to_value(p),
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
            Params::Sql(_) => vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Sink,
}

/// A catalog entry as the renderer sees it: options merged with secrets (real values, or
/// "***" when rendering for display).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasourceInfo {
    pub kind: Kind,
    pub options: Map<String, Value>,
}

pub type Catalog = BTreeMap<String, DatasourceInfo>;

/// `{{datasource.object}}` references in a `sql` template, in order of first use.
pub fn sql_refs(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        let r = after[..j].trim().to_string();
        if !out.contains(&r) {
            out.push(r);
        }
        rest = &after[j + 2..];
    }
    out
}

fn split_ref(r: &str) -> Option<(&str, &str)> {
    let (ds, obj) = r.split_once('.')?;
    if ds.is_empty() || obj.is_empty() {
        None
    } else {
        Some((ds, obj))
    }
}

// ------------------------------------------------------------------------------------------
// rendering
// ------------------------------------------------------------------------------------------

/// A pipeline as stored.
#[derive(Debug, Clone)]
pub struct Definition<'a> {
    pub name: &'a str,
    pub template: &'a str,
    pub params: &'a Value,
    pub options: &'a Value,
    pub database: &'a str,
    pub version: i32,
}

/// A column of a rendered table or query.
#[derive(Debug, Clone, PartialEq)]
pub struct Col {
    pub name: String,
    pub ty: FlinkType,
}

struct Ctx<'a> {
    pipeline: &'a str,
    catalog: &'a Catalog,
    out: String,
    /// The sink's columns (name, Flink type), once rendered.
    sink_cols: Vec<(String, String)>,
}

/// Renders the whole script. Errors name the pipeline and the params path at fault.
pub fn render(def: &Definition, catalog: &Catalog) -> Result<String, CatalogError> {
    render_full(def, catalog).map(|(script, _)| script)
}

/// A pipeline's sink and its columns as (name, Flink type).
pub type SinkInfo = (TableRef, Vec<(String, String)>);

/// The sink of a pipeline: (datasource, object, columns as (name, Flink type)); None for raw
/// SQL pipelines, whose sink is inside the statement.
pub fn sink(def: &Definition, catalog: &Catalog) -> Result<Option<SinkInfo>, CatalogError> {
    let params = Params::parse(def.name, def.template, def.params)?;
    let sink = match &params {
        Params::WindowAggregate(p) => p.sink.clone(),
        Params::FilterAlert(p) => p.sink.clone(),
        Params::IntervalJoin(p) => p.sink.clone(),
        Params::Cep(p) => p.sink.clone(),
        Params::Sync(p) => p.sink.clone(),
        Params::Sql(_) => return Ok(None),
    };
    let (_, cols) = render_full(def, catalog)?;
    Ok(Some((sink, cols)))
}

fn render_full(
    def: &Definition,
    catalog: &Catalog,
) -> Result<(String, Vec<(String, String)>), CatalogError> {
    let params = Params::parse(def.name, def.template, def.params)?;
    let opts: PipelineOptions = if def.options.is_null() {
        PipelineOptions::default()
    } else {
        from_json(def.name, "options", def.options)?
    };
    let mut cx = Ctx {
        pipeline: def.name,
        catalog,
        out: String::new(),
        sink_cols: Vec::new(),
    };
    let _ = writeln!(
        cx.out,
        "-- generated by pg_flink: template {}, pipeline version {}",
        def.template, def.version
    );
    cx.sets(def, &opts)?;
    match &params {
        Params::WindowAggregate(p) => cx.window_aggregate(p)?,
        Params::FilterAlert(p) => cx.filter_alert(p)?,
        Params::IntervalJoin(p) => cx.interval_join(p)?,
        Params::Cep(p) => cx.cep(p)?,
        Params::Sync(p) => cx.sync(p)?,
        Params::Sql(p) => cx.sql(p)?,
    }
    Ok((cx.out, cx.sink_cols))
}

/// The Flink job name of a pipeline version: how the control plane recognises its jobs.
pub fn job_name(database: &str, pipeline: &str, version: i32) -> String {
    format!("pg_flink/{database}/{pipeline}/v{version}")
}

fn check_flink_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 200
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl Ctx<'_> {
    fn bad(
        &self,
        path: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> CatalogError {
        bad(self.pipeline, path, what, hint)
    }

    fn mismatch(
        &self,
        path: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> CatalogError {
        perr(
            ErrorClass::DatatypeMismatch,
            self.pipeline,
            path,
            what,
            hint,
        )
    }

    fn interval(&self, path: &str, s: &str) -> Result<Interval, CatalogError> {
        Interval::parse(s).map_err(|e| {
            self.bad(
                path,
                e,
                "Write intervals like '30 seconds', '5 minutes', '1 hour'.",
            )
        })
    }

    fn sets(&mut self, def: &Definition, o: &PipelineOptions) -> Result<(), CatalogError> {
        let mut sets: Vec<(String, String)> = vec![(
            "pipeline.name".into(),
            job_name(def.database, def.name, def.version),
        )];
        if let Some(p) = o.parallelism {
            if !(1..=1024).contains(&p) {
                return Err(self.bad(
                    "options.parallelism",
                    format!("must be between 1 and 1024, got {p}"),
                    "Use the number of parallel tasks.",
                ));
            }
            sets.push(("parallelism.default".into(), p.to_string()));
        }
        if let Some(ci) = &o.checkpoint_interval {
            sets.push((
                "execution.checkpointing.interval".into(),
                self.interval("options.checkpoint_interval", ci)?.option(),
            ));
        }
        if let Some(m) = &o.checkpoint_mode {
            let m = m.to_ascii_uppercase();
            if m != "EXACTLY_ONCE" && m != "AT_LEAST_ONCE" {
                return Err(self.bad(
                    "options.checkpoint_mode",
                    format!("must be EXACTLY_ONCE or AT_LEAST_ONCE, got \"{m}\""),
                    "Use EXACTLY_ONCE (default) or AT_LEAST_ONCE.",
                ));
            }
            sets.push(("execution.checkpointing.mode".into(), m));
        }
        if let Some(t) = &o.state_ttl {
            sets.push((
                "table.exec.state.ttl".into(),
                self.interval("options.state_ttl", t)?.option(),
            ));
        }
        if let Some(cluster) = &o.cluster {
            if crate::core::catalog::check_name("cluster", Some(cluster)).is_err() {
                return Err(self.bad(
                    "options.cluster",
                    "is not a valid cluster name",
                    "Name a cluster of flink.clusters.",
                ));
            }
        }
        for (k, v) in o.flink.iter().flatten() {
            if !check_flink_key(k) {
                return Err(self.bad(
                    "options.flink",
                    format!(
                        "\"{}\" is not a Flink option key",
                        k.chars().take(40).collect::<String>()
                    ),
                    "Keys are like 'table.exec.mini-batch.enabled'.",
                ));
            }
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(self.bad(
                        &format!("options.flink.{k}"),
                        "must be a string, number or boolean",
                        "Flink option values are scalars.",
                    ))
                }
            };
            sets.retain(|(key, _)| key != k);
            sets.push((k.clone(), v));
        }
        for (k, v) in sets {
            let _ = writeln!(self.out, "SET {} = {};", literal(&k), literal(&v));
        }
        Ok(())
    }

    fn datasource(&self, path: &str, name: &str) -> Result<&DatasourceInfo, CatalogError> {
        self.catalog.get(name).ok_or_else(|| {
            perr(
                ErrorClass::UndefinedObject,
                self.pipeline,
                &format!("{path}.datasource"),
                format!("datasource \"{name}\" does not exist"),
                "Register it with flink.register_datasource() first; see flink.datasources.",
            )
        })
    }

    fn columns(&self, path: &str, cols: &[ColumnDecl]) -> Result<Vec<Col>, CatalogError> {
        if cols.is_empty() {
            return Err(self.bad(
                &format!("{path}.columns"),
                "must list at least one column",
                "Declare columns as [{\"name\": \"id\", \"type\": \"BIGINT\"}].",
            ));
        }
        let mut out: Vec<Col> = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            check_ident(self.pipeline, &format!("{path}.columns[{i}].name"), &c.name)?;
            let ty = flinktype::parse(&c.ty).map_err(|e| {
                self.bad(
                    &format!("{path}.columns[{i}].type"),
                    format!(
                        "\"{}\" is not a Flink type: {e}",
                        c.ty.chars().take(60).collect::<String>()
                    ),
                    "Use Flink SQL types such as BIGINT, DECIMAL(10, 2), STRING, TIMESTAMP(3).",
                )
            })?;
            if out.iter().any(|o| o.name.eq_ignore_ascii_case(&c.name)) {
                return Err(self.bad(
                    &format!("{path}.columns[{i}].name"),
                    format!("column \"{}\" is declared twice", c.name),
                    "Column names must be unique.",
                ));
            }
            out.push(Col {
                name: c.name.clone(),
                ty,
            });
        }
        Ok(out)
    }

    fn find<'c>(&self, path: &str, cols: &'c [Col], name: &str) -> Result<&'c Col, CatalogError> {
        cols.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
            let hint = match crate::core::catalog::did_you_mean(name, names.iter().copied()) {
                Some(d) => format!("Did you mean \"{d}\"? Columns: {}.", names.join(", ")),
                None => format!("Columns: {}.", names.join(", ")),
            };
            self.bad(
                path,
                format!(
                    "unknown column \"{}\"",
                    name.chars().take(60).collect::<String>()
                ),
                hint,
            )
        })
    }

    /// Renders `CREATE TEMPORARY TABLE` for a source or sink; returns its columns (plus a
    /// processing-time column when `proctime` is asked for).
    fn table(
        &mut self,
        path: &str,
        name: &str,
        t: &TableRef,
        role: Role,
        derived: Option<&[Col]>,
        proctime: bool,
    ) -> Result<Vec<Col>, CatalogError> {
        let ds = self.datasource(path, &t.datasource)?.clone();
        let mut cols = match (&t.columns, derived) {
            (Some(c), _) => self.columns(path, c)?,
            (None, Some(d)) => d.to_vec(),
            (None, None) => {
                return Err(self.bad(&format!("{path}.columns"), "are not known", "Declare the columns, or let flink.create_pipeline() read them from the datasource."))
            }
        };
        let mut lines: Vec<String> = cols
            .iter()
            .map(|c| format!("  {} {}", ident(&c.name), c.ty))
            .collect();
        if let Some(et) = &t.event_time {
            let c = self.find(&format!("{path}.event_time"), &cols, et)?;
            if !c.ty.is_time_attribute_candidate() {
                return Err(self.mismatch(&format!("{path}.event_time"), format!("column \"{et}\" is {}, an event-time column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3)", c.ty), "Declare the column as TIMESTAMP(3), or use processing time (omit event_time)."));
            }
            let delay = match &t.watermark_delay {
                Some(d) => self.interval(&format!("{path}.watermark_delay"), d)?,
                None => Interval { millis: 0 },
            };
            let wm = if delay.millis == 0 {
                ident(et)
            } else {
                format!("{} - {}", ident(et), delay.sql())
            };
            lines.push(format!("  WATERMARK FOR {} AS {wm}", ident(et)));
        } else if t.watermark_delay.is_some() {
            return Err(self.bad(
                &format!("{path}.watermark_delay"),
                "needs event_time",
                "Name the event-time column in event_time.",
            ));
        } else if proctime {
            if cols.iter().any(|c| c.name == "proc_time") {
                return Err(self.bad(
                    &format!("{path}.columns"),
                    "a column named proc_time clashes with the processing-time column",
                    "Rename the column or use event time.",
                ));
            }
            lines.push("  `proc_time` AS PROCTIME()".into());
            cols.push(Col {
                name: "proc_time".into(),
                ty: FlinkType::TimestampLtz(3),
            });
        }
        if let Some(pk) = &t.primary_key {
            for (i, k) in pk.iter().enumerate() {
                self.find(&format!("{path}.primary_key[{i}]"), &cols, k)?;
            }
            if !pk.is_empty() {
                lines.push(format!(
                    "  PRIMARY KEY ({}) NOT ENFORCED",
                    pk.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let with = self.connector(path, &ds, t, role)?;
        let _ = writeln!(
            self.out,
            "CREATE TEMPORARY TABLE {} (\n{}\n) WITH (",
            ident(name),
            lines.join(",\n")
        );
        let with_lines: Vec<String> = with
            .iter()
            .map(|(k, v)| format!("  {} = {}", literal(k), literal(v)))
            .collect();
        let _ = writeln!(self.out, "{}\n);", with_lines.join(",\n"));
        Ok(cols)
    }

    /// The single `source` table of a template (with a processing-time column if asked).
    fn source(&mut self, t: &TableRef, proctime: bool) -> Result<Vec<Col>, CatalogError> {
        self.table("params.source", "source", t, Role::Source, None, proctime)
    }

    fn connector(
        &self,
        path: &str,
        ds: &DatasourceInfo,
        t: &TableRef,
        role: Role,
    ) -> Result<Vec<(String, String)>, CatalogError> {
        let o = |k: &str| {
            ds.options
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let n = |k: &str, d: i64| ds.options.get(k).and_then(Value::as_i64).unwrap_or(d);
        let obj = t.object.as_str();
        let obj_path = format!("{path}.object");
        if obj.is_empty() || obj.len() > 255 || obj.chars().any(char::is_control) {
            return Err(self.bad(
                &obj_path,
                "must be 1-255 printable characters",
                "Name a topic, index or table.",
            ));
        }
        let cdc = t.cdc.unwrap_or(false);
        if cdc && !(ds.kind == Kind::Postgres && role == Role::Source) {
            return Err(self.bad(
                &format!("{path}.cdc"),
                "change data capture needs a postgres source",
                "Set cdc only on a postgres source.",
            ));
        }
        let has_pk = t.primary_key.as_ref().is_some_and(|p| !p.is_empty());
        let mut w: Vec<(String, String)> = Vec::new();
        match ds.kind {
            Kind::Kafka => {
                if !obj
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    || obj.len() > 249
                {
                    return Err(self.bad(
                        &obj_path,
                        format!("\"{obj}\" is not a valid topic name"),
                        "Topic names use letters, digits, '.', '_' and '-'.",
                    ));
                }
                if role == Role::Sink && has_pk {
                    w.push(("connector".into(), "upsert-kafka".into()));
                    w.push(("key.format".into(), "json".into()));
                    w.push(("value.format".into(), "json".into()));
                } else {
                    w.push(("connector".into(), "kafka".into()));
                    w.push(("format".into(), "json".into()));
                }
                w.push(("topic".into(), obj.into()));
                w.push((
                    "properties.bootstrap.servers".into(),
                    o("bootstrap_servers").unwrap_or_default(),
                ));
                if role == Role::Source {
                    w.push((
                        "properties.group.id".into(),
                        format!("pg_flink.{}", self.pipeline),
                    ));
                    w.push(("scan.startup.mode".into(), "earliest-offset".into()));
                }
                let proto = o("security_protocol").unwrap_or_else(|| "PLAINTEXT".into());
                if proto != "PLAINTEXT" {
                    w.push(("properties.security.protocol".into(), proto.clone()));
                }
                if proto.starts_with("SASL") {
                    let mech = o("sasl_mechanism").unwrap_or_else(|| "PLAIN".into());
                    let module = if mech == "PLAIN" {
                        "org.apache.kafka.common.security.plain.PlainLoginModule"
                    } else {
                        "org.apache.kafka.common.security.scram.ScramLoginModule"
                    };
                    let jaas = |s: String| s.replace('\\', "\\\\").replace('"', "\\\"");
                    w.push(("properties.sasl.mechanism".into(), mech));
                    w.push((
                        "properties.sasl.jaas.config".into(),
                        format!(
                            "{module} required username=\"{}\" password=\"{}\";",
                            jaas(o("sasl_username").unwrap_or_default()),
                            jaas(o("sasl_password").unwrap_or_default())
                        ),
                    ));
                }
                if let Some(Value::Object(extra)) = ds.options.get("properties") {
                    for (k, v) in extra {
                        if let Some(v) = v.as_str() {
                            w.push((format!("properties.{k}"), v.to_string()));
                        }
                    }
                }
            }
            Kind::Elasticsearch => {
                if role == Role::Source {
                    return Err(perr(ErrorClass::WrongObjectType, self.pipeline, &format!("{path}.datasource"), format!("datasource \"{}\" is elasticsearch, which can only be a sink", t.datasource), "Flink has no Elasticsearch source connector: read from Kafka or Postgres instead."));
                }
                if obj.contains(['/', '?', '#', ' ', '\\', '"', ',', '*']) {
                    return Err(self.bad(
                        &obj_path,
                        format!("\"{obj}\" is not a valid index name"),
                        "Index names are lowercase, without / ? # , * or spaces.",
                    ));
                }
                w.push(("connector".into(), "elasticsearch-7".into()));
                w.push(("hosts".into(), o("url").unwrap_or_default()));
                w.push(("index".into(), obj.into()));
                if let Some(u) = o("username") {
                    w.push(("username".into(), u));
                    w.push(("password".into(), o("password").unwrap_or_default()));
                }
            }
            Kind::Postgres => {
                let (schema, tbl) = match obj.split_once('.') {
                    Some((s, t)) => (s.to_string(), t.to_string()),
                    None => (
                        o("schema").unwrap_or_else(|| "public".into()),
                        obj.to_string(),
                    ),
                };
                if cdc {
                    if !has_pk {
                        return Err(self.bad(&format!("{path}.primary_key"), "is required with cdc", "Name the table's primary key columns so updates and deletes can be applied."));
                    }
                    let slot: String = format!("pg_flink_{}", self.pipeline)
                        .to_ascii_lowercase()
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .take(63)
                        .collect();
                    w.push(("connector".into(), "postgres-cdc".into()));
                    w.push(("hostname".into(), o("host").unwrap_or_default()));
                    w.push(("port".into(), n("port", 5432).to_string()));
                    w.push(("username".into(), o("user").unwrap_or_default()));
                    w.push(("password".into(), o("password").unwrap_or_default()));
                    w.push(("database-name".into(), o("database").unwrap_or_default()));
                    w.push(("schema-name".into(), schema));
                    w.push(("table-name".into(), tbl));
                    w.push(("slot.name".into(), slot));
                    w.push(("decoding.plugin.name".into(), "pgoutput".into()));
                } else {
                    w.push(("connector".into(), "jdbc".into()));
                    w.push((
                        "url".into(),
                        format!(
                            "jdbc:postgresql://{}:{}/{}",
                            o("host").unwrap_or_default(),
                            n("port", 5432),
                            o("database").unwrap_or_default()
                        ),
                    ));
                    w.push(("table-name".into(), format!("{schema}.{tbl}")));
                    w.push(("username".into(), o("user").unwrap_or_default()));
                    w.push(("password".into(), o("password").unwrap_or_default()));
                }
            }
            Kind::Mysql => {
                w.push(("connector".into(), "jdbc".into()));
                w.push((
                    "url".into(),
                    format!(
                        "jdbc:mysql://{}:{}/{}",
                        o("host").unwrap_or_default(),
                        n("port", 3306),
                        o("database").unwrap_or_default()
                    ),
                ));
                w.push(("table-name".into(), obj.into()));
                w.push(("username".into(), o("user").unwrap_or_default()));
                w.push(("password".into(), o("password").unwrap_or_default()));
            }
        }
        for (k, v) in t.connector_options.iter().flatten() {
            if !check_flink_key(k) {
                return Err(self.bad(
                    &format!("{path}.connector_options"),
                    format!(
                        "\"{}\" is not a connector option key",
                        k.chars().take(40).collect::<String>()
                    ),
                    "Keys are like 'scan.startup.mode'.",
                ));
            }
            w.retain(|(key, _)| key != k);
            w.push((k.clone(), v.clone()));
        }
        Ok(w)
    }

    /// Creates the sink table (declared/described columns, or the query's own output) and
    /// checks that the query output fits it. Returns the INSERT column order.
    fn sink(&mut self, path: &str, t: &TableRef, out: &[Col]) -> Result<Vec<String>, CatalogError> {
        let derived = if t.columns.is_none() { Some(out) } else { None };
        let sink_cols = self.table(path, "sink", t, Role::Sink, derived, false)?;
        if sink_cols.len() != out.len() {
            return Err(self.mismatch(
                &format!("{path}.columns"),
                format!("the sink has {} columns but the query produces {} ({})", sink_cols.len(), out.len(), out.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
                "Make the sink's columns match the query output, or omit sink columns for Kafka/Elasticsearch sinks to derive them.",
            ));
        }
        self.sink_cols = sink_cols
            .iter()
            .map(|c| (c.name.clone(), c.ty.to_string()))
            .collect();
        let mut order = Vec::new();
        for s in &sink_cols {
            let q = out
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&s.name))
                .ok_or_else(|| {
                    self.mismatch(
                        &format!("{path}.columns"),
                        format!(
                            "sink column \"{}\" has no matching query column (query columns: {})",
                            s.name,
                            out.iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        "Name the query's output columns (as/to) after the sink's columns.",
                    )
                })?;
            if !q.ty.assignable_to(&s.ty) {
                return Err(self.mismatch(
                    &format!("{path}.columns"),
                    format!("query column \"{}\" is {} but sink column \"{}\" is {}", q.name, q.ty, s.name, s.ty),
                    "Flink would reject or truncate this value: widen the sink column or change the query.",
                ));
            }
            order.push(q.name.clone());
        }
        Ok(order)
    }

    fn insert(&mut self, order: &[String], select: &[(String, String)], rest: &str) {
        // select: (expression, output name); emitted in the sink's column order.
        let exprs: Vec<String> = order
            .iter()
            .filter_map(|n| select.iter().find(|(_, a)| a.eq_ignore_ascii_case(n)))
            .map(|(e, a)| {
                if e == &ident(a) {
                    e.clone()
                } else {
                    format!("{e} AS {}", ident(a))
                }
            })
            .collect();
        let _ = writeln!(
            self.out,
            "INSERT INTO `sink`\nSELECT\n  {}\n{rest};",
            exprs.join(",\n  ")
        );
    }

    fn value_sql(&self, path: &str, col: &Col, v: &Value) -> Result<String, CatalogError> {
        let wrong = |what: &str| {
            self.mismatch(path, format!("value {} does not fit column \"{}\" of type {} ({what})", short_json(v), col.name, col.ty), "Give a value of the column's type: a JSON number for numbers, a string for text and times, true/false for booleans.")
        };
        match (&col.ty, v) {
            (t, Value::Number(n)) if t.is_numeric() => {
                if t.is_integer() && !(n.is_i64() || n.is_u64()) {
                    return Err(wrong("not an integer"));
                }
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(wrong("not finite"));
                }
                Ok(n.to_string())
            }
            (t, Value::String(s)) if t.is_string() => Ok(literal(s)),
            (FlinkType::Boolean, Value::Bool(b)) => {
                Ok(if *b { "TRUE".into() } else { "FALSE".into() })
            }
            (FlinkType::Date, Value::String(s)) if is_date(s) => Ok(format!("DATE {}", literal(s))),
            (FlinkType::Timestamp(_) | FlinkType::TimestampLtz(_), Value::String(s))
                if is_timestamp(s) =>
            {
                let norm = s.trim_end_matches('Z').replacen('T', " ", 1);
                Ok(format!("TIMESTAMP {}", literal(&norm)))
            }
            _ => Err(wrong("wrong JSON type")),
        }
    }

    /// A boolean expression for one structured condition. `prefix` qualifies the column (for
    /// MATCH_RECOGNIZE variables).
    fn condition(
        &self,
        path: &str,
        cols: &[Col],
        c: &Condition,
        prefix: Option<&str>,
    ) -> Result<String, CatalogError> {
        let col = self.find(&format!("{path}.column"), cols, &c.column)?;
        let lhs = match prefix {
            Some(p) => format!("{p}.{}", ident(&col.name)),
            None => ident(&col.name),
        };
        self.condition_on(path, col, lhs, c)
    }

    /// A condition on `lhs`, an expression of `col`'s type.
    fn condition_on(
        &self,
        path: &str,
        col: &Col,
        lhs: String,
        c: &Condition,
    ) -> Result<String, CatalogError> {
        let vpath = format!("{path}.value");
        let need = |present: bool| -> Result<&Value, CatalogError> {
            match (&c.value, present) {
                (Some(v), true) => Ok(v),
                _ => Err(self.bad(
                    &vpath,
                    format!("operator \"{}\" needs a value", c.op),
                    "Add \"value\".",
                )),
            }
        };
        Ok(match c.op.to_ascii_lowercase().as_str() {
            op @ ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") => {
                let op = if op == "!=" { "<>" } else { op };
                format!("{lhs} {op} {}", self.value_sql(&vpath, col, need(true)?)?)
            }
            op @ ("in" | "not_in") => {
                let Value::Array(items) = need(true)? else {
                    return Err(self.bad(
                        &vpath,
                        format!("operator \"{op}\" needs a JSON array"),
                        "Give a list, e.g. [\"DE\", \"FR\"].",
                    ));
                };
                if items.is_empty() || items.len() > 1000 {
                    return Err(self.bad(
                        &vpath,
                        "must have 1 to 1000 items",
                        "Give a non-empty list.",
                    ));
                }
                let vals: Result<Vec<String>, _> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.value_sql(&format!("{vpath}[{i}]"), col, v))
                    .collect();
                format!(
                    "{lhs} {} ({})",
                    if op == "in" { "IN" } else { "NOT IN" },
                    vals?.join(", ")
                )
            }
            "between" => {
                let Value::Array(items) = need(true)? else {
                    return Err(self.bad(
                        &vpath,
                        "operator \"between\" needs [low, high]",
                        "Give two values.",
                    ));
                };
                if items.len() != 2 {
                    return Err(self.bad(
                        &vpath,
                        "operator \"between\" needs exactly [low, high]",
                        "Give two values.",
                    ));
                }
                format!(
                    "{lhs} BETWEEN {} AND {}",
                    self.value_sql(&format!("{vpath}[0]"), col, &items[0])?,
                    self.value_sql(&format!("{vpath}[1]"), col, &items[1])?
                )
            }
            "like" => {
                if !col.ty.is_string() {
                    return Err(self.mismatch(
                        &format!("{path}.op"),
                        format!(
                            "\"like\" needs a text column, \"{}\" is {}",
                            col.name, col.ty
                        ),
                        "Use like on STRING/VARCHAR columns.",
                    ));
                }
                format!("{lhs} LIKE {}", self.value_sql(&vpath, col, need(true)?)?)
            }
            "is_null" => format!("{lhs} IS NULL"),
            "is_not_null" => format!("{lhs} IS NOT NULL"),
            other => return Err(self.bad(
                &format!("{path}.op"),
                format!(
                    "unknown operator \"{}\"",
                    other.chars().take(20).collect::<String>()
                ),
                "Operators: =, <>, <, <=, >, >=, in, not_in, between, like, is_null, is_not_null.",
            )),
        })
    }

    fn conditions(
        &self,
        path: &str,
        cols: &[Col],
        conds: &[Condition],
        mode: &str,
        prefix: Option<&str>,
    ) -> Result<String, CatalogError> {
        if conds.is_empty() {
            return Err(self.bad(
                path,
                "must have at least one condition",
                "Add conditions like {\"column\": \"amount\", \"op\": \">\", \"value\": 100}.",
            ));
        }
        let joiner = match mode {
            "all" => " AND ",
            "any" => " OR ",
            other => {
                return Err(self.bad(
                    &path.replace("conditions", "match"),
                    format!(
                        "must be \"all\" or \"any\", got \"{}\"",
                        other.chars().take(20).collect::<String>()
                    ),
                    "Use all (AND) or any (OR).",
                ))
            }
        };
        let parts: Result<Vec<String>, _> = conds
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.condition(&format!("{path}[{i}]"), cols, c, prefix)
                    .map(|s| format!("({s})"))
            })
            .collect();
        Ok(parts?.join(joiner))
    }

    // ---------------------------------------------------------------- templates

    /// The step (`slide` of HOP, `step` of CUMULATE) and size of a window; size must be a
    /// multiple of the step.
    fn window_step(
        &self,
        p: &WindowAggregateParams,
        step: &Option<String>,
        name: &str,
    ) -> Result<(Interval, Interval), CatalogError> {
        let required = |f: &Option<String>, field: &str| -> Result<Interval, CatalogError> {
            match f {
                Some(s) => self.interval(&format!("params.window.{field}"), s),
                None => Err(self.bad(
                    &format!("params.window.{field}"),
                    format!("is required for a {} window", p.window.kind),
                    "See docs/pipelines.md for window types.",
                )),
            }
        };
        let (st, sz) = (required(step, name)?, required(&p.window.size, "size")?);
        if sz.millis % st.millis != 0 {
            let example = if name == "slide" {
                "E.g. size '10 minutes' with slide '1 minute'."
            } else {
                "E.g. size '1 hour' with step '10 minutes'."
            };
            return Err(self.bad(
                "params.window.size",
                format!("must be a multiple of {name}"),
                example,
            ));
        }
        Ok((st, sz))
    }

    fn window_aggregate(&mut self, p: &WindowAggregateParams) -> Result<(), CatalogError> {
        let src = self.source(&p.source, true)?;
        let time_col = p
            .source
            .event_time
            .clone()
            .unwrap_or_else(|| "proc_time".into());
        let size = |cx: &Self, f: &Option<String>, name: &str| -> Result<Interval, CatalogError> {
            match f {
                Some(s) => cx.interval(&format!("params.window.{name}"), s),
                None => Err(cx.bad(
                    &format!("params.window.{name}"),
                    format!("is required for a {} window", p.window.kind),
                    "See docs/pipelines.md for window types.",
                )),
            }
        };
        let mut keys = Vec::new();
        for (i, k) in p.group_by.iter().enumerate() {
            keys.push(
                self.find(&format!("params.group_by[{i}]"), &src, k)?
                    .clone(),
            );
        }
        let tvf = match p.window.kind.to_ascii_lowercase().as_str() {
            "tumble" => format!(
                "TUMBLE(TABLE `source`, DESCRIPTOR({}), {})",
                ident(&time_col),
                size(self, &p.window.size, "size")?.sql()
            ),
            "hop" => {
                let (sl, sz) = self.window_step(p, &p.window.slide, "slide")?;
                format!(
                    "HOP(TABLE `source`, DESCRIPTOR({}), {}, {})",
                    ident(&time_col),
                    sl.sql(),
                    sz.sql()
                )
            }
            "cumulate" => {
                let (st, sz) = self.window_step(p, &p.window.step, "step")?;
                format!(
                    "CUMULATE(TABLE `source`, DESCRIPTOR({}), {}, {})",
                    ident(&time_col),
                    st.sql(),
                    sz.sql()
                )
            }
            "session" => {
                let gap = size(self, &p.window.gap, "gap")?;
                let part = if keys.is_empty() {
                    String::new()
                } else {
                    format!(
                        " PARTITION BY {}",
                        keys.iter()
                            .map(|k| ident(&k.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                format!(
                    "SESSION(TABLE `source`{part}, DESCRIPTOR({}), {})",
                    ident(&time_col),
                    gap.sql()
                )
            }
            other => {
                return Err(self.bad(
                    "params.window.type",
                    format!(
                        "unknown window type \"{}\"",
                        other.chars().take(20).collect::<String>()
                    ),
                    "Window types: tumble, hop, cumulate, session.",
                ))
            }
        };
        if p.aggregates.is_empty() {
            return Err(self.bad(
                "params.aggregates",
                "must have at least one aggregate",
                "E.g. [{\"fn\": \"count\", \"as\": \"orders\"}].",
            ));
        }
        let mut out = vec![
            Col {
                name: "window_start".into(),
                ty: FlinkType::Timestamp(3),
            },
            Col {
                name: "window_end".into(),
                ty: FlinkType::Timestamp(3),
            },
        ];
        let mut select: Vec<(String, String)> = vec![
            ("`window_start`".into(), "window_start".into()),
            ("`window_end`".into(), "window_end".into()),
        ];
        for k in &keys {
            out.push(k.clone());
            select.push((ident(&k.name), k.name.clone()));
        }
        let mut agg_exprs: Vec<(String, Col)> = Vec::new();
        for (i, a) in p.aggregates.iter().enumerate() {
            let path = format!("params.aggregates[{i}]");
            check_ident(self.pipeline, &format!("{path}.as"), &a.alias)?;
            if out.iter().any(|c| c.name.eq_ignore_ascii_case(&a.alias)) {
                return Err(self.bad(
                    &format!("{path}.as"),
                    format!("output column \"{}\" is defined twice", a.alias),
                    "Give every aggregate a distinct name.",
                ));
            }
            let func = a.func.to_ascii_lowercase();
            if !["count", "count_distinct", "sum", "avg", "min", "max"].contains(&func.as_str()) {
                return Err(self.bad(
                    &format!("{path}.fn"),
                    format!(
                        "unknown aggregate \"{}\"",
                        a.func.chars().take(20).collect::<String>()
                    ),
                    "Aggregates: count, count_distinct, sum, avg, min, max.",
                ));
            }
            let arg = match (&a.column, func.as_str()) {
                (None, "count") => None,
                (None, _) => {
                    return Err(self.bad(
                        &format!("{path}.column"),
                        format!("\"{func}\" needs a column"),
                        "Name the column to aggregate.",
                    ))
                }
                (Some(c), _) => Some(self.find(&format!("{path}.column"), &src, c)?.clone()),
            };
            let (expr, ty) = match (func.as_str(), &arg) {
                ("count", None) => ("COUNT(*)".to_string(), FlinkType::BigInt),
                ("count", Some(c)) => (format!("COUNT({})", ident(&c.name)), FlinkType::BigInt),
                ("count_distinct", Some(c)) => (
                    format!("COUNT(DISTINCT {})", ident(&c.name)),
                    FlinkType::BigInt,
                ),
                ("sum" | "avg", Some(c)) => {
                    let ty = if func == "sum" {
                        c.ty.sum_type()
                    } else {
                        c.ty.avg_type()
                    };
                    let ty = ty.ok_or_else(|| {
                        self.mismatch(
                            &format!("{path}.column"),
                            format!(
                                "\"{func}\" needs a numeric column, \"{}\" is {}",
                                c.name, c.ty
                            ),
                            "Aggregate a numeric column.",
                        )
                    })?;
                    (
                        format!("{}({})", func.to_ascii_uppercase(), ident(&c.name)),
                        ty,
                    )
                }
                ("min" | "max", Some(c)) => (
                    format!("{}({})", func.to_ascii_uppercase(), ident(&c.name)),
                    c.ty.clone(),
                ),
                _ => {
                    return Err(self.bad(
                        &format!("{path}.fn"),
                        format!(
                            "unknown aggregate \"{}\"",
                            a.func.chars().take(20).collect::<String>()
                        ),
                        "Aggregates: count, count_distinct, sum, avg, min, max.",
                    ))
                }
            };
            let col = Col {
                name: a.alias.clone(),
                ty,
            };
            out.push(col.clone());
            select.push((expr.clone(), a.alias.clone()));
            agg_exprs.push((expr, col));
        }
        let mut having = String::new();
        if let Some(h) = &p.having {
            // HAVING cannot use output aliases: compare the aggregate expression itself.
            let Some((expr, col)) = agg_exprs.iter().find(|(_, c)| c.name == h.column) else {
                let names: Vec<&str> = agg_exprs.iter().map(|(_, c)| c.name.as_str()).collect();
                return Err(self.bad(
                    "params.having.column",
                    format!("\"{}\" is not an aggregate of this pipeline", h.column),
                    format!("HAVING compares an aggregate: {}.", names.join(", ")),
                ));
            };
            having = format!(
                "\nHAVING {}",
                self.condition_on("params.having", col, expr.clone(), h)?
            );
        }
        let order = self.sink("params.sink", &p.sink, &out)?;
        let mut group = vec!["`window_start`".to_string(), "`window_end`".to_string()];
        group.extend(keys.iter().map(|k| ident(&k.name)));
        let rest = format!(
            "FROM TABLE(\n  {tvf})\nGROUP BY {}{having}",
            group.join(", ")
        );
        self.insert(&order, &select, &rest);
        Ok(())
    }

    fn filter_alert(&mut self, p: &FilterAlertParams) -> Result<(), CatalogError> {
        let src = self.source(&p.source, false)?;
        let cond = self.conditions(
            "params.conditions",
            &src,
            &p.conditions,
            &p.r#match.to_ascii_lowercase(),
            None,
        )?;
        let mut out = Vec::new();
        let mut select = Vec::new();
        match &p.select {
            Some(list) => {
                for (i, c) in list.iter().enumerate() {
                    let col = self.find(&format!("params.select[{i}]"), &src, c)?.clone();
                    select.push((ident(&col.name), col.name.clone()));
                    out.push(col);
                }
            }
            None => {
                for c in &src {
                    select.push((ident(&c.name), c.name.clone()));
                    out.push(c.clone());
                }
            }
        }
        for (i, e) in p.enrich.iter().enumerate() {
            let path = format!("params.enrich[{i}]");
            check_ident(self.pipeline, &format!("{path}.as"), &e.alias)?;
            if out.iter().any(|c| c.name.eq_ignore_ascii_case(&e.alias)) {
                return Err(self.bad(
                    &format!("{path}.as"),
                    format!("output column \"{}\" is defined twice", e.alias),
                    "Use a distinct name.",
                ));
            }
            let (expr, ty) = match &e.value {
                Value::String(s) => (
                    format!("CAST({} AS STRING)", literal(s)),
                    FlinkType::Varchar(flinktype::STRING_LEN),
                ),
                Value::Bool(b) => (
                    (if *b { "TRUE" } else { "FALSE" }).to_string(),
                    FlinkType::Boolean,
                ),
                Value::Number(n) if n.is_i64() => {
                    (format!("CAST({n} AS BIGINT)"), FlinkType::BigInt)
                }
                Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {
                    (format!("CAST({n} AS DOUBLE)"), FlinkType::Double)
                }
                other => {
                    return Err(self.bad(
                        &format!("{path}.value"),
                        format!("{} cannot be a constant column", short_json(other)),
                        "Use a string, number or boolean.",
                    ))
                }
            };
            select.push((expr, e.alias.clone()));
            out.push(Col {
                name: e.alias.clone(),
                ty,
            });
        }
        let order = self.sink("params.sink", &p.sink, &out)?;
        self.insert(&order, &select, &format!("FROM `source`\nWHERE {cond}"));
        Ok(())
    }

    fn interval_join(&mut self, p: &IntervalJoinParams) -> Result<(), CatalogError> {
        let l = self.table(
            "params.left",
            "left_source",
            &p.left,
            Role::Source,
            None,
            false,
        )?;
        let r = self.table(
            "params.right",
            "right_source",
            &p.right,
            Role::Source,
            None,
            false,
        )?;
        let (Some(lt), Some(rt)) = (&p.left.event_time, &p.right.event_time) else {
            return Err(self.bad(
                if p.left.event_time.is_none() {
                    "params.left.event_time"
                } else {
                    "params.right.event_time"
                },
                "is required for an interval join",
                "Name each side's event-time column (TIMESTAMP(3)).",
            ));
        };
        if p.on.is_empty() {
            return Err(self.bad(
                "params.on",
                "must have at least one key pair",
                "E.g. [{\"left\": \"order_id\", \"right\": \"order_id\"}].",
            ));
        }
        let mut conds = Vec::new();
        for (i, k) in p.on.iter().enumerate() {
            let a = self.find(&format!("params.on[{i}].left"), &l, &k.left)?;
            let b = self.find(&format!("params.on[{i}].right"), &r, &k.right)?;
            if !(a.ty.assignable_to(&b.ty) || b.ty.assignable_to(&a.ty)) {
                return Err(self.mismatch(&format!("params.on[{i}]"), format!("join keys do not have comparable types: left \"{}\" is {}, right \"{}\" is {}", a.name, a.ty, b.name, b.ty), "Join on columns of the same type family."));
            }
            conds.push(format!("l.{} = r.{}", ident(&a.name), ident(&b.name)));
        }
        let before = self.interval("params.within.before", &p.within.before)?;
        let after = self.interval("params.within.after", &p.within.after)?;
        let ltc = self.find("params.left.event_time", &l, lt)?.ty.clone();
        let rtc = self.find("params.right.event_time", &r, rt)?.ty.clone();
        if ltc != rtc {
            return Err(self.mismatch(
                "params.right.event_time",
                format!("left time column is {ltc}, right is {rtc}"),
                "Both sides' event-time columns must have the same type.",
            ));
        }
        conds.push(format!(
            "r.{rt} BETWEEN l.{lt} - {} AND l.{lt} + {}",
            before.sql(),
            after.sql(),
            rt = ident(rt),
            lt = ident(lt)
        ));
        if p.select.is_empty() {
            return Err(self.bad(
                "params.select",
                "must list at least one column",
                "E.g. [{\"side\": \"left\", \"column\": \"order_id\"}].",
            ));
        }
        let mut out: Vec<Col> = Vec::new();
        let mut select = Vec::new();
        for (i, s) in p.select.iter().enumerate() {
            let path = format!("params.select[{i}]");
            let (cols, q) = match s.side.as_str() {
                "left" => (&l, "l"),
                "right" => (&r, "r"),
                other => {
                    return Err(self.bad(
                        &format!("{path}.side"),
                        format!(
                            "must be \"left\" or \"right\", got \"{}\"",
                            other.chars().take(20).collect::<String>()
                        ),
                        "Say which side the column comes from.",
                    ))
                }
            };
            let c = self
                .find(&format!("{path}.column"), cols, &s.column)?
                .clone();
            let alias = s.alias.clone().unwrap_or_else(|| c.name.clone());
            check_ident(self.pipeline, &format!("{path}.as"), &alias)?;
            if out.iter().any(|o| o.name.eq_ignore_ascii_case(&alias)) {
                return Err(self.bad(
                    &format!("{path}.as"),
                    format!("output column \"{alias}\" is defined twice"),
                    "Give it a distinct name with \"as\".",
                ));
            }
            select.push((format!("{q}.{}", ident(&c.name)), alias.clone()));
            out.push(Col {
                name: alias,
                ty: c.ty,
            });
        }
        let order = self.sink("params.sink", &p.sink, &out)?;
        self.insert(
            &order,
            &select,
            &format!(
                "FROM `left_source` l, `right_source` r\nWHERE {}",
                conds.join("\n  AND ")
            ),
        );
        Ok(())
    }

    fn cep(&mut self, p: &CepParams) -> Result<(), CatalogError> {
        let src = self.source(&p.source, true)?;
        let time_col = p
            .source
            .event_time
            .clone()
            .unwrap_or_else(|| "proc_time".into());
        let mut keys = Vec::new();
        for (i, k) in p.partition_by.iter().enumerate() {
            keys.push(
                self.find(&format!("params.partition_by[{i}]"), &src, k)?
                    .clone(),
            );
        }
        if p.pattern.is_empty() {
            return Err(self.bad(
                "params.pattern",
                "must have at least one variable",
                "E.g. [{\"var\": \"FAIL\", \"quantifier\": \"{3,}\", \"conditions\": [...]}].",
            ));
        }
        let mut pattern = Vec::new();
        let mut defines = Vec::new();
        let mut vars: Vec<String> = Vec::new();
        for (i, v) in p.pattern.iter().enumerate() {
            let path = format!("params.pattern[{i}]");
            let ok_var = v.var.len() <= 30
                && v.var.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && v.var
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !ok_var {
                return Err(self.bad(&format!("{path}.var"), format!("\"{}\" is not a pattern variable", v.var.chars().take(30).collect::<String>()), "Pattern variables are upper case letters, digits and '_', starting with a letter (e.g. FAIL)."));
            }
            if vars.contains(&v.var) {
                return Err(self.bad(
                    &format!("{path}.var"),
                    format!("variable {} is defined twice", v.var),
                    "Use distinct variable names.",
                ));
            }
            vars.push(v.var.clone());
            let q = match v.quantifier.as_deref() {
                None | Some("") => String::new(),
                Some(q) if quantifier_ok(q) => q.to_string(),
                Some(q) => return Err(self.bad(&format!("{path}.quantifier"), format!("\"{}\" is not a quantifier", q.chars().take(20).collect::<String>()), "Quantifiers: +, *, ?, {n}, {n,}, {n,m} (optionally followed by ? for reluctant).")),
            };
            pattern.push(format!("{}{q}", v.var));
            let cond = self.conditions(
                &format!("{path}.conditions"),
                &src,
                &v.conditions,
                &v.r#match.to_ascii_lowercase(),
                Some(&v.var),
            )?;
            defines.push(format!("    {} AS {cond}", v.var));
        }
        if p.measures.is_empty() {
            return Err(self.bad(
                "params.measures",
                "must have at least one measure",
                "E.g. [{\"as\": \"fails\", \"var\": \"FAIL\", \"fn\": \"count\"}].",
            ));
        }
        let mut out: Vec<Col> = keys.clone();
        let mut measures = Vec::new();
        for (i, m) in p.measures.iter().enumerate() {
            let path = format!("params.measures[{i}]");
            check_ident(self.pipeline, &format!("{path}.as"), &m.alias)?;
            if !vars.contains(&m.var) {
                return Err(self.bad(
                    &format!("{path}.var"),
                    format!(
                        "unknown pattern variable \"{}\"",
                        m.var.chars().take(30).collect::<String>()
                    ),
                    format!("Variables: {}.", vars.join(", ")),
                ));
            }
            if out.iter().any(|c| c.name.eq_ignore_ascii_case(&m.alias)) {
                return Err(self.bad(
                    &format!("{path}.as"),
                    format!("output column \"{}\" is defined twice", m.alias),
                    "Use a distinct name.",
                ));
            }
            let func = m
                .func
                .clone()
                .unwrap_or_else(|| "last".into())
                .to_ascii_lowercase();
            let (expr, ty) = match (func.as_str(), &m.column) {
                // Flink has no COUNT(VAR.*): every matched row has the time column.
                ("count", None) => (
                    format!("COUNT({}.{})", m.var, ident(&time_col)),
                    FlinkType::BigInt,
                ),
                ("count", Some(c)) => {
                    let col = self.find(&format!("{path}.column"), &src, c)?;
                    (
                        format!("COUNT({}.{})", m.var, ident(&col.name)),
                        FlinkType::BigInt,
                    )
                }
                ("first" | "last", Some(c)) => {
                    let col = self.find(&format!("{path}.column"), &src, c)?;
                    let ty = if col.name == time_col && col.name == "proc_time" {
                        FlinkType::TimestampLtz(3)
                    } else {
                        col.ty.clone()
                    };
                    (
                        format!(
                            "{}({}.{})",
                            func.to_ascii_uppercase(),
                            m.var,
                            ident(&col.name)
                        ),
                        ty,
                    )
                }
                ("first" | "last", None) => {
                    return Err(self.bad(
                        &format!("{path}.column"),
                        format!("\"{func}\" needs a column"),
                        "Name the column to take from the matched rows.",
                    ))
                }
                _ => {
                    return Err(self.bad(
                        &format!("{path}.fn"),
                        format!(
                            "unknown measure function \"{}\"",
                            func.chars().take(20).collect::<String>()
                        ),
                        "Measure functions: first, last, count.",
                    ))
                }
            };
            measures.push(format!("    {expr} AS {}", ident(&m.alias)));
            out.push(Col {
                name: m.alias.clone(),
                ty,
            });
        }
        let within = match &p.within {
            Some(w) => format!(" WITHIN {}", self.interval("params.within", w)?.sql()),
            None => String::new(),
        };
        let select: Vec<(String, String)> = out
            .iter()
            .map(|c| (ident(&c.name), c.name.clone()))
            .collect();
        let order = self.sink("params.sink", &p.sink, &out)?;
        let part = if keys.is_empty() {
            String::new()
        } else {
            format!(
                "  PARTITION BY {}\n",
                keys.iter()
                    .map(|k| ident(&k.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let rest = format!(
            "FROM `source`\n  MATCH_RECOGNIZE (\n{part}  ORDER BY {}\n  MEASURES\n{}\n  ONE ROW PER MATCH\n  AFTER MATCH SKIP PAST LAST ROW\n  PATTERN ({}){within}\n  DEFINE\n{}\n  )",
            ident(&time_col),
            measures.join(",\n"),
            pattern.join(" "),
            defines.join(",\n")
        );
        self.insert(&order, &select, &rest);
        Ok(())
    }

    fn sync(&mut self, p: &SyncParams) -> Result<(), CatalogError> {
        let src = self.source(&p.source, false)?;
        let mut out = Vec::new();
        let mut select = Vec::new();
        match &p.mapping {
            Some(m) => {
                if m.is_empty() {
                    return Err(self.bad(
                        "params.mapping",
                        "must not be empty",
                        "Omit mapping to copy every column as is.",
                    ));
                }
                for (i, mp) in m.iter().enumerate() {
                    let c = self
                        .find(&format!("params.mapping[{i}].from"), &src, &mp.from)?
                        .clone();
                    check_ident(self.pipeline, &format!("params.mapping[{i}].to"), &mp.to)?;
                    if out
                        .iter()
                        .any(|o: &Col| o.name.eq_ignore_ascii_case(&mp.to))
                    {
                        return Err(self.bad(
                            &format!("params.mapping[{i}].to"),
                            format!("column \"{}\" is mapped twice", mp.to),
                            "Map every sink column once.",
                        ));
                    }
                    select.push((ident(&c.name), mp.to.clone()));
                    out.push(Col {
                        name: mp.to.clone(),
                        ty: c.ty,
                    });
                }
            }
            None => {
                for c in &src {
                    select.push((ident(&c.name), c.name.clone()));
                    out.push(c.clone());
                }
            }
        }
        if p.source.cdc == Some(true) && p.sink.primary_key.as_ref().is_none_or(|k| k.is_empty()) {
            return Err(self.bad(
                "params.sink.primary_key",
                "is required when the source is cdc",
                "Updates and deletes are applied by key: name the sink's primary key.",
            ));
        }
        let order = self.sink("params.sink", &p.sink, &out)?;
        self.insert(&order, &select, "FROM `source`");
        Ok(())
    }

    fn sql(&mut self, p: &SqlParams) -> Result<(), CatalogError> {
        let stmts = crate::core::script::split_statements(&p.sql);
        if stmts.len() != 1
            || !stmts[0]
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("INSERT")
        {
            return Err(self.bad("params.sql", "must be exactly one INSERT statement", "Write one INSERT INTO {{sink_ds.object}} SELECT ... FROM {{source_ds.object}}; tables are created for you."));
        }
        let refs = sql_refs(&p.sql);
        if refs.is_empty() {
            return Err(self.bad(
                "params.sql",
                "references no table",
                "Reference tables as {{datasource.object}}.",
            ));
        }
        let mut sql = stmts[0].clone();
        for r in &refs {
            let Some((ds, obj)) = split_ref(r) else {
                return Err(self.bad(
                    "params.sql",
                    format!("\"{{{{{r}}}}}\" is not a datasource.object reference"),
                    "Write {{datasource.object}}, e.g. {{orders_kafka.orders}}.",
                ));
            };
            let table_name: String = r
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let spec = p.tables.get(r).cloned().unwrap_or_default();
            let t = TableRef {
                datasource: ds.to_string(),
                object: obj.to_string(),
                columns: spec.columns,
                event_time: spec.event_time,
                watermark_delay: spec.watermark_delay,
                primary_key: spec.primary_key,
                cdc: None,
                connector_options: spec.connector_options,
            };
            // Elasticsearch can only be written to, and a Kafka table with a primary key is an
            // upsert-kafka sink; other tables are declared as sources (the SQL may still write
            // to JDBC ones).
            let kind = self.catalog.get(ds).map(|d| d.kind);
            let keyed = t.primary_key.as_ref().is_some_and(|k| !k.is_empty());
            let role = match kind {
                Some(Kind::Elasticsearch) => Role::Sink,
                Some(Kind::Kafka) if keyed => Role::Sink,
                _ => Role::Source,
            };
            self.table(
                &format!("params.tables.{r}"),
                &table_name,
                &t,
                role,
                None,
                false,
            )?;
            sql = sql.replace(&format!("{{{{{r}}}}}"), &ident(&table_name));
        }
        for k in p.tables.keys() {
            if !refs.contains(k) {
                return Err(self.bad(
                    &format!("params.tables.{k}"),
                    "is not referenced in params.sql",
                    "Remove it or use {{...}} in the SQL.",
                ));
            }
        }
        let _ = writeln!(self.out, "{sql};");
        Ok(())
    }
}

fn quantifier_ok(q: &str) -> bool {
    let q = q.strip_suffix('?').filter(|r| !r.is_empty()).unwrap_or(q);
    match q {
        "+" | "*" | "?" => true,
        _ => {
            let Some(inner) = q.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
                return false;
            };
            let parts: Vec<&str> = inner.split(',').collect();
            let num =
                |s: &str| !s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit());
            match parts.as_slice() {
                [n] => num(n),
                [n, ""] => num(n),
                [n, m] => num(n) && num(m) && n.parse::<u32>().ok() <= m.parse::<u32>().ok(),
                _ => false,
            }
        }
    }
}

/// Identifiers chosen by users (output column names): 1-128 characters, no control characters.
fn check_ident(pipeline: &str, path: &str, s: &str) -> Result<(), CatalogError> {
    if s.is_empty() || s.chars().count() > 128 || s.chars().any(char::is_control) {
        return Err(bad(
            pipeline,
            path,
            "must be a name of 1-128 printable characters",
            "Use a plain column name.",
        ));
    }
    Ok(())
}

fn short_json(v: &Value) -> String {
    crate::core::text::ellipsis(&v.to_string(), 40)
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn is_timestamp(s: &str) -> bool {
    let t = s.trim_end_matches('Z');
    let b = t.as_bytes();
    if b.len() < 19 || !is_date(&t[..10]) || !(b[10] == b'T' || b[10] == b' ') {
        return false;
    }
    let time = &t[11..];
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let hb = hms.as_bytes();
    hb.len() == 8
        && hb[2] == b':'
        && hb[5] == b':'
        && hb
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
        && frac.len() <= 9
        && frac.chars().all(|c| c.is_ascii_digit())
}

/// SHA-256 of the script, hex.
pub fn script_hash(script: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(script.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Datasource names a pipeline uses.
pub fn referenced_datasources(params: &mut Params) -> Vec<String> {
    let mut out: Vec<String> = match params {
        Params::Sql(p) => sql_refs(&p.sql)
            .iter()
            .filter_map(|r| split_ref(r).map(|(d, _)| d.to_string()))
            .collect(),
        other => other
            .table_refs_mut()
            .into_iter()
            .map(|(_, _, t)| t.datasource.clone())
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

/// Where in `params` a value (a column or object name quoted in a Flink error) appears, as a
/// params path, to point users at the parameter responsible.
pub fn locate(params: &Value, needle: &str) -> Option<String> {
    fn walk(v: &Value, path: &str, needle: &str) -> Option<String> {
        match v {
            Value::String(s) if s == needle => Some(path.to_string()),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(x, &format!("{path}[{i}]"), needle)),
            Value::Object(m) => m
                .iter()
                .find_map(|(k, x)| walk(x, &format!("{path}.{k}"), needle)),
            _ => None,
        }
    }
    walk(params, "params", needle)
}

#[cfg(test)]
mod tests;
