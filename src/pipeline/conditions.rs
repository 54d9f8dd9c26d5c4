//! Structured conditions of templates (`{"column", "op", "value"}`) rendered as Flink SQL
//! boolean expressions, and JSON values rendered as literals of a column's type.
use super::context::{Col, Ctx};
use super::error::PipelineError;
use super::flinktype::FlinkType;
use super::params::Condition;
use crate::core::quote::{ident, literal};
use serde_json::Value;

impl Ctx<'_> {
    /// A literal for JSON value `v` compared with (or assigned to) column `col`.
    pub(crate) fn value_sql(
        &self,
        path: &str,
        col: &Col,
        v: &Value,
    ) -> Result<String, PipelineError> {
        let does_not_fit = |what: &str| {
            self.mismatch(path, format!("value {} does not fit column \"{}\" of type {} ({what})", short_json(v), col.name, col.ty), "Give a value of the column's type: a JSON number for numbers, a string for text and times, true/false for booleans.")
        };
        match (&col.ty, v) {
            (t, Value::Number(n)) if t.is_numeric() => {
                if t.is_integer() && !(n.is_i64() || n.is_u64()) {
                    return Err(does_not_fit("not an integer"));
                }
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(does_not_fit("not finite"));
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
            _ => Err(does_not_fit("wrong JSON type")),
        }
    }

    /// A boolean expression for one structured condition. `prefix` qualifies the column (for
    /// MATCH_RECOGNIZE variables).
    pub(crate) fn condition(
        &self,
        path: &str,
        cols: &[Col],
        c: &Condition,
        prefix: Option<&str>,
    ) -> Result<String, PipelineError> {
        let col = self.find(&format!("{path}.column"), cols, &c.column)?;
        let lhs = match prefix {
            Some(p) => format!("{p}.{}", ident(&col.name)),
            None => ident(&col.name),
        };
        self.condition_on(path, col, lhs, c)
    }

    /// A condition on `lhs`, an expression of `col`'s type.
    pub(crate) fn condition_on(
        &self,
        path: &str,
        col: &Col,
        lhs: String,
        c: &Condition,
    ) -> Result<String, PipelineError> {
        let vpath = format!("{path}.value");
        let required_value = |present: bool| -> Result<&Value, PipelineError> {
            match (&c.value, present) {
                (Some(v), true) => Ok(v),
                _ => Err(self.invalid(
                    &vpath,
                    format!("operator \"{}\" needs a value", c.op),
                    "Add \"value\".",
                )),
            }
        };
        Ok(match c.op.to_ascii_lowercase().as_str() {
            op @ ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") => {
                let op = if op == "!=" { "<>" } else { op };
                format!(
                    "{lhs} {op} {}",
                    self.value_sql(&vpath, col, required_value(true)?)?
                )
            }
            op @ ("in" | "not_in") => {
                let Value::Array(items) = required_value(true)? else {
                    return Err(self.invalid(
                        &vpath,
                        format!("operator \"{op}\" needs a JSON array"),
                        "Give a list, e.g. [\"DE\", \"FR\"].",
                    ));
                };
                if items.is_empty() || items.len() > 1000 {
                    return Err(self.invalid(
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
                let Value::Array(items) = required_value(true)? else {
                    return Err(self.invalid(
                        &vpath,
                        "operator \"between\" needs [low, high]",
                        "Give two values.",
                    ));
                };
                if items.len() != 2 {
                    return Err(self.invalid(
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
                format!(
                    "{lhs} LIKE {}",
                    self.value_sql(&vpath, col, required_value(true)?)?
                )
            }
            "is_null" => format!("{lhs} IS NULL"),
            "is_not_null" => format!("{lhs} IS NOT NULL"),
            other => return Err(self.invalid(
                &format!("{path}.op"),
                format!(
                    "unknown operator \"{}\"",
                    other.chars().take(20).collect::<String>()
                ),
                "Operators: =, <>, <, <=, >, >=, in, not_in, between, like, is_null, is_not_null.",
            )),
        })
    }

    /// Conditions combined by `mode` (`all`: AND, `any`: OR), each in parentheses.
    pub(crate) fn conditions(
        &self,
        path: &str,
        cols: &[Col],
        conds: &[Condition],
        mode: &str,
        prefix: Option<&str>,
    ) -> Result<String, PipelineError> {
        if conds.is_empty() {
            return Err(self.invalid(
                path,
                "must have at least one condition",
                "Add conditions like {\"column\": \"amount\", \"op\": \">\", \"value\": 100}.",
            ));
        }
        let joiner = match mode {
            "all" => " AND ",
            "any" => " OR ",
            other => {
                return Err(self.invalid(
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
}

/// A JSON value shortened for messages.
pub(crate) fn short_json(v: &Value) -> String {
    crate::core::messages::ellipsis(&v.to_string(), 40)
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

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn bad_conditions_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
        ("big_orders", Box::new(|p| p["params"]["conditions"][0]["value"] = json!("lots")), "params.conditions[0].value: value \"lots\" does not fit column \"amount\" of type DECIMAL(10, 2)"),
        ("big_orders", Box::new(|p| p["params"]["conditions"][0]["op"] = json!("~")), "params.conditions[0].op: unknown operator"),
        ("big_orders", Box::new(|p| p["params"]["match"] = json!("most")), "params.match: must be \"all\" or \"any\""),
        ];
        assert_errors(cases);
    }
}
