//! Template `cep`: a pattern of conditions over a source's rows (MATCH_RECOGNIZE), one output
//! row of measures per match, written to a sink.
use crate::core::quote::ident;
use crate::pipeline::context::{check_ident, Col, Ctx};
use crate::pipeline::error::PipelineError;
use crate::pipeline::flinktype::FlinkType;
use crate::pipeline::params::{match_all, Condition, TableRef, PROC_TIME};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternVar {
    pub var: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantifier: Option<String>,
    #[serde(default = "match_all")]
    pub r#match: String,
    /// Conditions on the row (none, and no `where`: the variable matches any row).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// A Flink SQL boolean expression, ANDed with the conditions; it may refer to earlier rows
    /// (`PREV(price)`, `LAST(DOWN.price, 1)`, `FIRST(UP.price)`, `AVG(DOWN.price)`).
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    #[serde(rename = "as")]
    pub alias: String,
    pub var: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// first, last, count, sum, avg, min, max (default last)
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
    /// Where the next match starts: past_last_row (default), to_next_row, "to_first VAR",
    /// "to_last VAR".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_match: Option<String>,
    pub sink: TableRef,
}

/// Renders the tables and the INSERT of a cep pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &CepParams) -> Result<(), PipelineError> {
    let src = cx.source(&p.source, true)?;
    let t_source = ident(&cx.tname("source"));
    let time_col = p.source.time_column();
    let keys = cx.find_each("params.partition_by", &src, &p.partition_by)?;
    if p.pattern.is_empty() {
        return Err(cx.invalid(
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
            return Err(cx.invalid(&format!("{path}.var"), format!("\"{}\" is not a pattern variable", v.var.chars().take(30).collect::<String>()), "Pattern variables are upper case letters, digits and '_', starting with a letter (e.g. FAIL)."));
        }
        if RESERVED.contains(&v.var.as_str()) {
            return Err(cx.invalid(
                &format!("{path}.var"),
                format!("{} is a reserved word of Flink SQL", v.var),
                "Name the variable otherwise, e.g. HIGH, DOWN, FAIL1.",
            ));
        }
        if vars.contains(&v.var) {
            return Err(cx.invalid(
                &format!("{path}.var"),
                format!("variable {} is defined twice", v.var),
                "Use distinct variable names.",
            ));
        }
        vars.push(v.var.clone());
        let q = match v.quantifier.as_deref() {
            None | Some("") => String::new(),
            Some(q) if quantifier_ok(q) => q.to_string(),
            Some(q) => return Err(cx.invalid(
                &format!("{path}.quantifier"),
                format!(
                    "\"{}\" is not a quantifier",
                    q.chars().take(20).collect::<String>()
                ),
                "Quantifiers: +, *, ?, {n}, {n,}, {n,m} (optionally followed by ? for reluctant).",
            )),
        };
        pattern.push(format!("{}{q}", v.var));
        let mut parts = Vec::new();
        if !v.conditions.is_empty() {
            parts.push(cx.conditions(
                &format!("{path}.conditions"),
                &src,
                &v.conditions,
                &v.r#match.to_ascii_lowercase(),
                Some(&v.var),
            )?);
        }
        if let Some(w) = &v.expr {
            let all: Vec<String> = p.pattern.iter().map(|v| v.var.clone()).collect();
            let e = cx.expr_over(
                &format!("{path}.where"),
                w,
                &src,
                &all,
                "Write one Flink SQL condition, e.g. \"price < LAST(DOWN.price, 1)\".",
            )?;
            parts.push(e.sql());
        }
        let cond = match parts.as_slice() {
            [] => continue, // an undefined variable matches every row
            [one] => one.clone(),
            _ => format!("({}) AND {}", parts[0], parts[1]),
        };
        defines.push(format!("    {} AS {cond}", v.var));
    }
    if defines.is_empty() {
        // MATCH_RECOGNIZE needs one definition: a variable that matches every row.
        defines.push(format!("    {} AS TRUE", vars[0]));
    }
    if p.measures.is_empty() {
        return Err(cx.invalid(
            "params.measures",
            "must have at least one measure",
            "E.g. [{\"as\": \"fails\", \"var\": \"FAIL\", \"fn\": \"count\"}].",
        ));
    }
    let mut out: Vec<Col> = keys.clone();
    let mut measures = Vec::new();
    for (i, m) in p.measures.iter().enumerate() {
        let path = format!("params.measures[{i}]");
        check_ident(cx.pipeline, &format!("{path}.as"), &m.alias)?;
        if !vars.contains(&m.var) {
            return Err(cx.invalid(
                &format!("{path}.var"),
                format!(
                    "unknown pattern variable \"{}\"",
                    m.var.chars().take(30).collect::<String>()
                ),
                format!("Variables: {}.", vars.join(", ")),
            ));
        }
        if out.iter().any(|c| c.name.eq_ignore_ascii_case(&m.alias)) {
            return Err(cx.invalid(
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
                format!("COUNT({}.{})", m.var, ident(time_col)),
                FlinkType::BigInt,
            ),
            ("count", Some(c)) => {
                let col = cx.find(&format!("{path}.column"), &src, c)?;
                (
                    format!("COUNT({}.{})", m.var, ident(&col.name)),
                    FlinkType::BigInt,
                )
            }
            ("first" | "last", Some(c)) => {
                let col = cx.find(&format!("{path}.column"), &src, c)?;
                let ty = if col.name == time_col && col.name == PROC_TIME {
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
            ("sum" | "avg" | "min" | "max", Some(c)) => {
                let col = cx.find(&format!("{path}.column"), &src, c)?;
                let ty = match func.as_str() {
                    "sum" => col.ty.sum_type(),
                    "avg" => col.ty.avg_type(),
                    _ => Some(col.ty.clone()),
                };
                let ty = ty.ok_or_else(|| {
                    cx.mismatch(
                        &format!("{path}.column"),
                        format!(
                            "\"{func}\" needs a numeric column, \"{}\" is {}",
                            col.name, col.ty
                        ),
                        "Aggregate a numeric column.",
                    )
                })?;
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
            ("first" | "last" | "sum" | "avg" | "min" | "max", None) => {
                return Err(cx.invalid(
                    &format!("{path}.column"),
                    format!("\"{func}\" needs a column"),
                    "Name the column to take from the matched rows.",
                ))
            }
            _ => {
                return Err(cx.invalid(
                    &format!("{path}.fn"),
                    format!(
                        "unknown measure function \"{}\"",
                        func.chars().take(20).collect::<String>()
                    ),
                    "Measure functions: first, last, count, sum, avg, min, max.",
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
        Some(w) => format!(" WITHIN {}", cx.interval("params.within", w)?.sql()),
        None => String::new(),
    };
    let select: Vec<(String, String)> = out
        .iter()
        .map(|c| (ident(&c.name), c.name.clone()))
        .collect();
    let order = cx.sink("params.sink", &p.sink, &out)?;
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
    let skip = after_match(cx, p.after_match.as_deref(), &vars)?;
    let rest = format!(
        "FROM {t_source}\n  MATCH_RECOGNIZE (\n{part}  ORDER BY {}\n  MEASURES\n{}\n  ONE ROW PER MATCH\n  AFTER MATCH SKIP {skip}\n  PATTERN ({}){within}\n  DEFINE\n{}\n  )",
        ident(time_col),
        measures.join(",\n"),
        pattern.join(" "),
        defines.join(",\n")
    );
    cx.insert(&order, &select, &rest);
    Ok(())
}

/// Reserved words of Flink SQL that cannot name a pattern variable unquoted.
const RESERVED: &[&str] = &[
    "ALL",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "AT",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "CLASSIFIER",
    "CURRENT",
    "DEFINE",
    "DESC",
    "DISTINCT",
    "ELSE",
    "END",
    "EVERY",
    "EXISTS",
    "FALSE",
    "FINAL",
    "FIRST",
    "FOR",
    "FROM",
    "GROUP",
    "HAVING",
    "IN",
    "INTERVAL",
    "IS",
    "LAST",
    "LIKE",
    "MATCH",
    "MATCH_NUMBER",
    "MEASURES",
    "NEXT",
    "NOT",
    "NULL",
    "OF",
    "ON",
    "ONE",
    "OR",
    "ORDER",
    "OVER",
    "PAST",
    "PATTERN",
    "PER",
    "PERMUTE",
    "PREV",
    "ROW",
    "ROWS",
    "RUNNING",
    "SELECT",
    "SKIP",
    "START",
    "SUBSET",
    "THEN",
    "TO",
    "TRUE",
    "UNKNOWN",
    "VALUE",
    "WHEN",
    "WHERE",
    "WITH",
    "WITHIN",
];

/// `AFTER MATCH SKIP …`: where the next match may start.
fn after_match(cx: &Ctx, v: Option<&str>, vars: &[String]) -> Result<String, PipelineError> {
    let words: Vec<String> = v
        .unwrap_or("past_last_row")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let var_ok = |name: &str| vars.iter().any(|v| v == name);
    match words.as_slice() {
        [w] if w.eq_ignore_ascii_case("past_last_row") => return Ok("PAST LAST ROW".into()),
        [w] if w.eq_ignore_ascii_case("to_next_row") => return Ok("TO NEXT ROW".into()),
        [w, var] if w.eq_ignore_ascii_case("to_first") && var_ok(var) => {
            return Ok(format!("TO FIRST {var}"))
        }
        [w, var] if w.eq_ignore_ascii_case("to_last") && var_ok(var) => {
            return Ok(format!("TO LAST {var}"))
        }
        _ => {}
    }
    Err(cx.invalid(
        "params.after_match",
        format!(
            "\"{}\" is not an AFTER MATCH choice",
            v.unwrap_or_default().chars().take(40).collect::<String>()
        ),
        format!(
            "Use past_last_row, to_next_row, \"to_first VAR\" or \"to_last VAR\" (variables: {}).",
            vars.join(", ")
        ),
    ))
}

/// A MATCH_RECOGNIZE quantifier: +, *, ?, {n}, {n,}, {n,m}, optionally reluctant (?).
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

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("cep");
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "login_brute_force",
                Box::new(|p| p["params"]["pattern"][0]["quantifier"] = json!("{3,x}")),
                "params.pattern[0].quantifier",
            ),
            (
                "login_brute_force",
                Box::new(|p| p["params"]["pattern"][0]["var"] = json!("fail; DROP")),
                "params.pattern[0].var",
            ),
            (
                "login_brute_force",
                Box::new(|p| p["params"]["pattern"][1]["var"] = json!("START")),
                "params.pattern[1].var: START is a reserved word of Flink SQL",
            ),
            (
                "login_brute_force",
                Box::new(|p| p["params"]["measures"][0]["var"] = json!("NOPE")),
                "params.measures[0].var: unknown pattern variable",
            ),
        ];
        assert_errors(cases);
    }
}
