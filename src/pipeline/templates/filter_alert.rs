//! Template `filter_alert`: rows of a source that match conditions (all or any), optionally a
//! subset of columns plus constant columns, written to a sink.
use crate::core::quote::{ident, literal};
use crate::pipeline::conditions::short_json;
use crate::pipeline::context::{check_ident, Col, Ctx};
use crate::pipeline::error::PipelineError;
use crate::pipeline::flinktype::{self, FlinkType};
use crate::pipeline::params::{match_all, Condition, TableRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Constant {
    #[serde(rename = "as")]
    pub alias: String,
    pub value: Value,
}

/// A selected column: its name, or `{"column": …, "as": …}` to write it under another name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Selected {
    Name(String),
    Renamed {
        column: String,
        #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
        alias: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterAlertParams {
    pub source: TableRef,
    #[serde(default = "match_all")]
    pub r#match: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// A Flink SQL boolean expression, ANDed with the conditions.
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<Selected>>,
    #[serde(default)]
    pub enrich: Vec<Constant>,
    pub sink: TableRef,
}

/// Renders the tables and the INSERT of a filter_alert pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &FilterAlertParams) -> Result<(), PipelineError> {
    let src = cx.source(&p.source, false)?;
    let t_source = ident(&cx.tname("source"));
    let mut parts = Vec::new();
    if !p.conditions.is_empty() || p.expr.is_none() {
        parts.push(cx.conditions(
            "params.conditions",
            &src,
            &p.conditions,
            &p.r#match.to_ascii_lowercase(),
            None,
        )?);
    }
    if let Some(w) = &p.expr {
        let e = cx.expr("params.where", w, &src)?;
        if e.has_aggregate {
            return Err(cx.invalid(
                "params.where",
                "a row filter cannot aggregate",
                "Compare the row's columns; aggregate with window_aggregate.",
            ));
        }
        parts.push(e.sql());
    }
    let cond = match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("({}) AND {}", parts[0], parts[1]),
    };
    let mut out = Vec::new();
    let mut select = Vec::new();
    match &p.select {
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                let (name, alias, path) = match c {
                    Selected::Name(n) => (n, None, format!("params.select[{i}]")),
                    Selected::Renamed { column, alias } => {
                        (column, alias.as_ref(), format!("params.select[{i}].column"))
                    }
                };
                let col = cx.find(&path, &src, name)?.clone();
                let alias = alias.cloned().unwrap_or_else(|| col.name.clone());
                check_ident(cx.pipeline, &format!("params.select[{i}].as"), &alias)?;
                if out
                    .iter()
                    .any(|o: &Col| o.name.eq_ignore_ascii_case(&alias))
                {
                    return Err(cx.invalid(
                        &format!("params.select[{i}]"),
                        format!("output column \"{alias}\" is defined twice"),
                        "Give it a distinct name with \"as\".",
                    ));
                }
                select.push((ident(&col.name), alias.clone()));
                out.push(Col {
                    name: alias,
                    ty: col.ty,
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
    for (i, e) in p.enrich.iter().enumerate() {
        let path = format!("params.enrich[{i}]");
        check_ident(cx.pipeline, &format!("{path}.as"), &e.alias)?;
        if out.iter().any(|c| c.name.eq_ignore_ascii_case(&e.alias)) {
            return Err(cx.invalid(
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
            Value::Number(n) if n.is_i64() => (format!("CAST({n} AS BIGINT)"), FlinkType::BigInt),
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {
                (format!("CAST({n} AS DOUBLE)"), FlinkType::Double)
            }
            other => {
                return Err(cx.invalid(
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
    let order = cx.sink("params.sink", &p.sink, &out)?;
    cx.insert(&order, &select, &format!("FROM {t_source}\nWHERE {cond}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::core::script::split_statements;
    use crate::pipeline::testing::{catalog, check_golden, render_example, shape};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("filter_alert");
    }

    // ------------------------------------------------------------------------------------------
    // property test: no value escapes its position
    // ------------------------------------------------------------------------------------------

    fn fuzz_pipeline(name: &str, col: &str, value: &str, topic_suffix: &str, alias: &str) -> Value {
        json!({
            "name": name,
            "template": "filter_alert",
            "params": {
                "source": {"datasource": "kafka_local", "object": format!("t{topic_suffix}"),
                           "columns": [{"name": col, "type": "STRING"}, {"name": "n", "type": "BIGINT"}]},
                "conditions": [{"column": col, "op": "=", "value": value}, {"column": col, "op": "in", "value": [value, "x"]}],
                "enrich": [{"as": alias, "value": value}],
                "sink": {"datasource": "kafka_local", "object": "alerts"}
            },
            "options": {"flink": {"pipeline.comment": value}}
        })
    }

    proptest! {
        // Fixed seed and budget: CI runs the same 512 cases every time.
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_f11c),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn no_param_value_escapes_its_position(
            col in "[^\\p{Cc}]{1,24}",
            value in "[^\\x00]{0,40}",
            alias in "[^\\p{Cc}]{1,24}",
            name in "[^\\p{Cc}]{1,24}",
        ) {
            prop_assume!(!col.eq_ignore_ascii_case("n") && !col.eq_ignore_ascii_case(&alias) && !alias.eq_ignore_ascii_case("n"));
            let cat = catalog(false);
            let benign = render_example(&fuzz_pipeline("p", "c", "v", "", "a"), &cat).unwrap();
            let fuzzed = render_example(&fuzz_pipeline(&name, &col, &value, "", &alias), &cat).unwrap();
            prop_assert_eq!(shape(&fuzzed), shape(&benign));
            prop_assert_eq!(split_statements(&fuzzed).len(), split_statements(&benign).len());
        }
    }
}
