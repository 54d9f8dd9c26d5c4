//! Template `window_aggregate`: aggregates (count, sum, avg, ...) per window (tumble, hop,
//! cumulate, session) and group, with an optional HAVING, written to a sink.
use crate::core::quote::ident;
use crate::pipeline::context::{check_ident, Col, Ctx};
use crate::pipeline::error::PipelineError;
use crate::pipeline::flinktype::FlinkType;
use crate::pipeline::interval::Interval;
use crate::pipeline::params::{Condition, TableRef};
use serde::{Deserialize, Serialize};

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
    /// The output name of the window start (default `window_start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_as: Option<String>,
    /// The output name of the window end (default `window_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_as: Option<String>,
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
    /// Only rows for which this boolean expression is true are aggregated (`FILTER (WHERE …)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Round the result to this many decimal places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    /// Cast the result to this Flink type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub cast: Option<String>,
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

/// The interval `params.window.<field>`, which this window type requires.
fn window_interval(
    cx: &Ctx,
    w: &Window,
    value: &Option<String>,
    field: &str,
) -> Result<Interval, PipelineError> {
    match value {
        Some(s) => cx.interval(&format!("params.window.{field}"), s),
        None => Err(cx.invalid(
            &format!("params.window.{field}"),
            format!("is required for a {} window", w.kind),
            "See docs/pipelines.md for window types.",
        )),
    }
}

/// The step (`slide` of HOP, `step` of CUMULATE) and size of a window; size must be a
/// multiple of the step.
fn window_step(
    cx: &Ctx,
    w: &Window,
    step: &Option<String>,
    name: &str,
) -> Result<(Interval, Interval), PipelineError> {
    let (st, sz) = (
        window_interval(cx, w, step, name)?,
        window_interval(cx, w, &w.size, "size")?,
    );
    if sz.millis % st.millis != 0 {
        let example = if name == "slide" {
            "E.g. size '10 minutes' with slide '1 minute'."
        } else {
            "E.g. size '1 hour' with step '10 minutes'."
        };
        return Err(cx.invalid(
            "params.window.size",
            format!("must be a multiple of {name}"),
            example,
        ));
    }
    Ok((st, sz))
}

/// The windowing table function over `table` (a quoted name) for window `w` on `time_col`; a
/// session window is partitioned by `keys`. Shared with top_n's windowed Top-N.
pub(crate) fn window_tvf(
    cx: &Ctx,
    w: &Window,
    table: &str,
    time_col: &str,
    keys: &[Col],
) -> Result<String, PipelineError> {
    Ok(match w.kind.to_ascii_lowercase().as_str() {
        "tumble" => format!(
            "TUMBLE(TABLE {table}, DESCRIPTOR({}), {})",
            ident(time_col),
            window_interval(cx, w, &w.size, "size")?.sql()
        ),
        "hop" => {
            let (sl, sz) = window_step(cx, w, &w.slide, "slide")?;
            format!(
                "HOP(TABLE {table}, DESCRIPTOR({}), {}, {})",
                ident(time_col),
                sl.sql(),
                sz.sql()
            )
        }
        "cumulate" => {
            let (st, sz) = window_step(cx, w, &w.step, "step")?;
            format!(
                "CUMULATE(TABLE {table}, DESCRIPTOR({}), {}, {})",
                ident(time_col),
                st.sql(),
                sz.sql()
            )
        }
        "session" => {
            let gap = window_interval(cx, w, &w.gap, "gap")?;
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
                "SESSION(TABLE {table}{part}, DESCRIPTOR({}), {})",
                ident(time_col),
                gap.sql()
            )
        }
        other => {
            return Err(cx.invalid(
                "params.window.type",
                format!(
                    "unknown window type \"{}\"",
                    other.chars().take(20).collect::<String>()
                ),
                "Window types: tumble, hop, cumulate, session.",
            ))
        }
    })
}

/// Renders the tables and the INSERT of a window_aggregate pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &WindowAggregateParams) -> Result<(), PipelineError> {
    let src = cx.source(&p.source, true)?;
    let t_source = ident(&cx.tname("source"));
    let time_col = p.source.time_column();
    let keys = cx.find_each("params.group_by", &src, &p.group_by)?;
    let tvf = window_tvf(cx, &p.window, &t_source, time_col, &keys)?;
    if p.aggregates.is_empty() {
        return Err(cx.invalid(
            "params.aggregates",
            "must have at least one aggregate",
            "E.g. [{\"fn\": \"count\", \"as\": \"orders\"}].",
        ));
    }
    let (start_as, end_as) = (
        p.window.start_as.as_deref().unwrap_or("window_start"),
        p.window.end_as.as_deref().unwrap_or("window_end"),
    );
    check_ident(cx.pipeline, "params.window.start_as", start_as)?;
    check_ident(cx.pipeline, "params.window.end_as", end_as)?;
    if start_as.eq_ignore_ascii_case(end_as) {
        return Err(cx.invalid(
            "params.window.end_as",
            format!("output column \"{end_as}\" is defined twice"),
            "Give the window start and end distinct names.",
        ));
    }
    let mut out = vec![
        Col {
            name: start_as.into(),
            ty: FlinkType::Timestamp(3),
        },
        Col {
            name: end_as.into(),
            ty: FlinkType::Timestamp(3),
        },
    ];
    let mut select: Vec<(String, String)> = vec![
        ("`window_start`".into(), start_as.into()),
        ("`window_end`".into(), end_as.into()),
    ];
    for k in &keys {
        out.push(k.clone());
        select.push((ident(&k.name), k.name.clone()));
    }
    let mut agg_exprs: Vec<(String, Col)> = Vec::new();
    for (i, a) in p.aggregates.iter().enumerate() {
        let path = format!("params.aggregates[{i}]");
        check_ident(cx.pipeline, &format!("{path}.as"), &a.alias)?;
        if out.iter().any(|c| c.name.eq_ignore_ascii_case(&a.alias)) {
            return Err(cx.invalid(
                &format!("{path}.as"),
                format!("output column \"{}\" is defined twice", a.alias),
                "Give every aggregate a distinct name.",
            ));
        }
        let func = a.func.to_ascii_lowercase();
        if !["count", "count_distinct", "sum", "avg", "min", "max"].contains(&func.as_str()) {
            return Err(cx.invalid(
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
                return Err(cx.invalid(
                    &format!("{path}.column"),
                    format!("\"{func}\" needs a column"),
                    "Name the column to aggregate.",
                ))
            }
            (Some(c), _) => Some(cx.find(&format!("{path}.column"), &src, c)?.clone()),
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
                    cx.mismatch(
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
                return Err(cx.invalid(
                    &format!("{path}.fn"),
                    format!(
                        "unknown aggregate \"{}\"",
                        a.func.chars().take(20).collect::<String>()
                    ),
                    "Aggregates: count, count_distinct, sum, avg, min, max.",
                ))
            }
        };
        let expr = match &a.filter {
            Some(f) => {
                let cond = cx.expr(&format!("{path}.filter"), f, &src)?;
                if cond.has_aggregate {
                    return Err(cx.invalid(
                        &format!("{path}.filter"),
                        "an aggregate's filter cannot aggregate",
                        "Filter on the row's columns, e.g. \"status = 403\".",
                    ));
                }
                format!("{expr} FILTER (WHERE {})", cond.sql())
            }
            None => expr,
        };
        let raw = Col {
            name: a.alias.clone(),
            ty,
        };
        let (shown, col) = output(cx, &path, a, &expr, &raw)?;
        out.push(col.clone());
        select.push((shown, a.alias.clone()));
        agg_exprs.push((expr, raw));
    }
    let mut having = String::new();
    if let Some(h) = &p.having {
        // HAVING cannot use output aliases: compare the aggregate expression itcx.
        let Some((expr, col)) = agg_exprs.iter().find(|(_, c)| c.name == h.column) else {
            let names: Vec<&str> = agg_exprs.iter().map(|(_, c)| c.name.as_str()).collect();
            return Err(cx.invalid(
                "params.having.column",
                format!("\"{}\" is not an aggregate of this pipeline", h.column),
                format!("HAVING compares an aggregate: {}.", names.join(", ")),
            ));
        };
        having = format!(
            "\nHAVING {}",
            cx.condition_on("params.having", col, expr.clone(), h)?
        );
    }
    let order = cx.sink("params.sink", &p.sink, &out)?;
    // Window columns may reach the sink under other names; grouping uses their own.
    let mut group = vec!["`window_start`".to_string(), "`window_end`".to_string()];
    group.extend(keys.iter().map(|k| ident(&k.name)));
    let rest = format!(
        "FROM TABLE(\n  {tvf})\nGROUP BY {}{having}",
        group.join(", ")
    );
    cx.insert(&order, &select, &rest);
    Ok(())
}

/// An aggregate's output: its expression rounded (`round`) and cast (`type`) as asked, and the
/// output column's type.
fn output(
    cx: &Ctx,
    path: &str,
    a: &Aggregate,
    expr: &str,
    raw: &Col,
) -> Result<(String, Col), PipelineError> {
    let mut shown = expr.to_string();
    let mut ty = raw.ty.clone();
    if let Some(n) = a.round {
        if !raw.ty.is_numeric() || n > 18 {
            return Err(cx.invalid(
                &format!("{path}.round"),
                format!(
                    "rounds a numeric result to 0-18 places; \"{}\" is {}",
                    raw.name, raw.ty
                ),
                "Round numeric aggregates (sum, avg, min, max) only.",
            ));
        }
        shown = format!("ROUND({shown}, {n})");
        if let FlinkType::Decimal(p, s) = raw.ty {
            // Flink widens ROUND's decimal result; the declared scale is what is meant.
            ty = FlinkType::Decimal(p, s.min(n));
            shown = format!("CAST({shown} AS {ty})");
        }
    }
    if let Some(t) = &a.cast {
        ty = crate::pipeline::flinktype::parse(t).map_err(|e| {
            cx.invalid(
                &format!("{path}.type"),
                format!(
                    "\"{}\" is not a Flink type: {e}",
                    t.chars().take(60).collect::<String>()
                ),
                "Use Flink SQL types such as BIGINT, DECIMAL(10, 2), STRING.",
            )
        })?;
        shown = format!("CAST({shown} AS {ty})");
    }
    Ok((
        shown,
        Col {
            name: raw.name.clone(),
            ty,
        },
    ))
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("window_aggregate");
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["aggregates"][1]["column"] = json!("amout")),
                "params.aggregates[1].column: unknown column \"amout\"",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["aggregates"][0]["fn"] = json!("median")),
                "params.aggregates[0].fn: unknown aggregate \"median\"",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["window"]["size"] = json!("1 fortnight")),
                "params.window.size: unknown unit",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["window"]["type"] = json!("sliding")),
                "params.window.type: unknown window type",
            ),
            (
                "orders_per_minute_with_late",
                Box::new(|p| {
                    p["options"] = json!({"flink": {"table.optimizer.reuse-source-enabled": false}})
                }),
                "params.source.late: needs Flink's source reuse",
            ),
            (
                "api_errors_per_minute",
                Box::new(|p| {
                    p["params"]["source"]["computed"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("type");
                }),
                "params.source.computed[0].type: is required",
            ),
            (
                "api_errors_per_minute",
                Box::new(|p| p["params"]["aggregates"][1]["filter"] = json!("stauts = 403")),
                "params.aggregates[1].filter: the expression refers to an unknown column \"stauts\"",
            ),
            (
                "api_errors_per_minute",
                Box::new(|p| p["params"]["source"]["filter"] = json!("1) OR (1 = 1")),
                "params.source.filter: the expression has an unbalanced ')'",
            ),
        ];
        assert_errors(cases);
    }
}
