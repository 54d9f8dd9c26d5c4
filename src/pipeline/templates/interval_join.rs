//! Template `interval_join`: rows of two sources joined on keys where the right row's event
//! time lies within bounds around the left row's, written to a sink.
use crate::core::quote::ident;
use crate::pipeline::context::{check_ident, Col, Ctx};
use crate::pipeline::error::PipelineError;
use crate::pipeline::params::{Role, TableRef};
use serde::{Deserialize, Serialize};

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

/// Renders the tables and the INSERT of a interval_join pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &IntervalJoinParams) -> Result<(), PipelineError> {
    let l = cx.table(
        "params.left",
        "left_source",
        &p.left,
        Role::Source,
        None,
        false,
    )?;
    let r = cx.table(
        "params.right",
        "right_source",
        &p.right,
        Role::Source,
        None,
        false,
    )?;
    let (Some(lt), Some(rt)) = (&p.left.event_time, &p.right.event_time) else {
        return Err(cx.invalid(
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
        return Err(cx.invalid(
            "params.on",
            "must have at least one key pair",
            "E.g. [{\"left\": \"order_id\", \"right\": \"order_id\"}].",
        ));
    }
    let mut conds = Vec::new();
    for (i, k) in p.on.iter().enumerate() {
        let a = cx.find(&format!("params.on[{i}].left"), &l, &k.left)?;
        let b = cx.find(&format!("params.on[{i}].right"), &r, &k.right)?;
        if !(a.ty.assignable_to(&b.ty) || b.ty.assignable_to(&a.ty)) {
            return Err(cx.mismatch(
                &format!("params.on[{i}]"),
                format!(
                    "join keys do not have comparable types: left \"{}\" is {}, right \"{}\" is {}",
                    a.name, a.ty, b.name, b.ty
                ),
                "Join on columns of the same type family.",
            ));
        }
        conds.push(format!("l.{} = r.{}", ident(&a.name), ident(&b.name)));
    }
    let before = cx.interval("params.within.before", &p.within.before)?;
    let after = cx.interval("params.within.after", &p.within.after)?;
    let ltc = cx.find("params.left.event_time", &l, lt)?.ty.clone();
    let rtc = cx.find("params.right.event_time", &r, rt)?.ty.clone();
    if ltc != rtc {
        return Err(cx.mismatch(
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
        return Err(cx.invalid(
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
                return Err(cx.invalid(
                    &format!("{path}.side"),
                    format!(
                        "must be \"left\" or \"right\", got \"{}\"",
                        other.chars().take(20).collect::<String>()
                    ),
                    "Say which side the column comes from.",
                ))
            }
        };
        let c = cx.find(&format!("{path}.column"), cols, &s.column)?.clone();
        let alias = s.alias.clone().unwrap_or_else(|| c.name.clone());
        check_ident(cx.pipeline, &format!("{path}.as"), &alias)?;
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&alias)) {
            return Err(cx.invalid(
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
    let order = cx.sink("params.sink", &p.sink, &out)?;
    cx.insert(
        &order,
        &select,
        &format!(
            "FROM `left_source` l, `right_source` r\nWHERE {}",
            conds.join("\n  AND ")
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::datasource::ErrorClass;
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("interval_join");
    }

    #[test]
    fn join_key_types_must_be_comparable() {
        let mut p = example("orders_with_payments");
        p["params"]["right"]["columns"][0]["type"] = json!("STRING");
        let e = err_of(&p);
        assert_eq!(e.class, ErrorClass::DatatypeMismatch);
        assert!(e.message.contains("params.on[0]: join keys do not have comparable types: left \"order_id\" is BIGINT, right \"order_id\" is STRING"), "{}", e.message);
    }
}
