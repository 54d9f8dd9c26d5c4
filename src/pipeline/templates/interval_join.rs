//! Template `interval_join`: rows of two sources joined on keys where the right row's event
//! time lies within bounds around the left row's, written to a sink.
use crate::core::quote::ident;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::joins::{key_conditions, side_select};
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
    /// Whether a right row exactly `before` earlier is excluded (`>` instead of `>=`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_before: bool,
    /// Whether a right row exactly `after` later is excluded (`<` instead of `<=`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_after: bool,
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
    let t_right_source = ident(&cx.tname("right_source"));
    let t_left_source = ident(&cx.tname("left_source"));
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
    let mut conds = key_conditions(cx, &p.on, &l, &r)?;
    let before = cx.bound("params.within.before", &p.within.before)?;
    let after = cx.bound("params.within.after", &p.within.after)?;
    let ltc = cx.find("params.left.event_time", &l, lt)?.ty.clone();
    let rtc = cx.find("params.right.event_time", &r, rt)?.ty.clone();
    if ltc != rtc {
        return Err(cx.mismatch(
            "params.right.event_time",
            format!("left time column is {ltc}, right is {rtc}"),
            "Both sides' event-time columns must have the same type.",
        ));
    }
    let (lo, hi) = (
        if p.within.strict_before { ">" } else { ">=" },
        if p.within.strict_after { "<" } else { "<=" },
    );
    let (rtq, ltq) = (ident(rt), ident(lt));
    conds.push(if lo == ">=" && hi == "<=" {
        format!(
            "r.{rtq} BETWEEN l.{ltq} - {} AND l.{ltq} + {}",
            before.sql(),
            after.sql()
        )
    } else {
        format!(
            "r.{rtq} {lo} l.{ltq} - {}\n  AND r.{rtq} {hi} l.{ltq} + {}",
            before.sql(),
            after.sql()
        )
    });
    let (out, select) = side_select(cx, &p.select, (&l, &p.left), (&r, &p.right))?;
    let order = cx.sink("params.sink", &p.sink, &out)?;
    cx.insert(
        &order,
        &select,
        &format!(
            "FROM {t_left_source} l, {t_right_source} r\nWHERE {}",
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
