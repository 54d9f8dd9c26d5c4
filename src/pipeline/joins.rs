//! What the join templates (`interval_join`, `lookup_join`, `temporal_join`) share: key pairs
//! (`on`), the select list of columns from either side (`select`), and the one-time-attribute
//! rule of an INSERT.
use super::context::{check_ident, Col, Ctx};
use super::error::PipelineError;
use super::params::TableRef;
use crate::core::quote::ident;
use crate::pipeline::templates::interval_join::{JoinKey, SideColumn};

/// Output columns and the select list ((expression, output name)).
pub(crate) type Selection = (Vec<Col>, Vec<(String, String)>);

/// `l.a = r.b AND …` for the key pairs, with their types checked comparable.
pub(crate) fn key_conditions(
    cx: &Ctx,
    on: &[JoinKey],
    l: &[Col],
    r: &[Col],
) -> Result<Vec<String>, PipelineError> {
    if on.is_empty() {
        return Err(cx.invalid(
            "params.on",
            "must have at least one key pair",
            "E.g. [{\"left\": \"order_id\", \"right\": \"order_id\"}].",
        ));
    }
    let mut conds = Vec::new();
    for (i, k) in on.iter().enumerate() {
        let a = cx.find(&format!("params.on[{i}].left"), l, &k.left)?;
        let b = cx.find(&format!("params.on[{i}].right"), r, &k.right)?;
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
    Ok(conds)
}

/// The output columns and select list of `select` (columns of side `left` (`l`) or `right`
/// (`r`)). An INSERT may carry one time attribute: each side's event-time column selected after
/// the first time attribute is cast to a plain timestamp.
pub(crate) fn side_select(
    cx: &Ctx,
    select: &[SideColumn],
    (l, left): (&[Col], &TableRef),
    (r, right): (&[Col], &TableRef),
) -> Result<Selection, PipelineError> {
    if select.is_empty() {
        return Err(cx.invalid(
            "params.select",
            "must list at least one column",
            "E.g. [{\"side\": \"left\", \"column\": \"order_id\"}].",
        ));
    }
    let mut out: Vec<Col> = Vec::new();
    let mut exprs = Vec::new();
    let mut rowtimes = 0;
    for (i, s) in select.iter().enumerate() {
        let path = format!("params.select[{i}]");
        let (cols, q, t) = match s.side.as_str() {
            "left" => (l, "l", left),
            "right" => (r, "r", right),
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
        // (A processing-time column is materialised by Flink itself.)
        let time_attribute = t.event_time.as_deref() == Some(c.name.as_str());
        let expr = format!("{q}.{}", ident(&c.name));
        let expr = if time_attribute && rowtimes > 0 {
            format!("CAST({expr} AS {})", c.ty)
        } else {
            expr
        };
        if time_attribute {
            rowtimes += 1;
        }
        exprs.push((expr, alias.clone()));
        out.push(Col {
            name: alias,
            ty: c.ty,
        });
    }
    Ok((out, exprs))
}
