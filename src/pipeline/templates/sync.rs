//! Template `sync`: a source copied to a sink, all columns or a renaming mapping; with a CDC
//! source, updates and deletes are applied by the sink's key.
use crate::core::quote::ident;
use crate::pipeline::context::{check_ident, Col, Ctx};
use crate::pipeline::error::PipelineError;
use crate::pipeline::params::TableRef;
use serde::{Deserialize, Serialize};

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

/// Renders the tables and the INSERT of a sync pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &SyncParams) -> Result<(), PipelineError> {
    let src = cx.source(&p.source, false)?;
    let mut out = Vec::new();
    let mut select = Vec::new();
    match &p.mapping {
        Some(m) => {
            if m.is_empty() {
                return Err(cx.invalid(
                    "params.mapping",
                    "must not be empty",
                    "Omit mapping to copy every column as is.",
                ));
            }
            for (i, mp) in m.iter().enumerate() {
                let c = cx
                    .find(&format!("params.mapping[{i}].from"), &src, &mp.from)?
                    .clone();
                check_ident(cx.pipeline, &format!("params.mapping[{i}].to"), &mp.to)?;
                if out
                    .iter()
                    .any(|o: &Col| o.name.eq_ignore_ascii_case(&mp.to))
                {
                    return Err(cx.invalid(
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
        return Err(cx.invalid(
            "params.sink.primary_key",
            "is required when the source is cdc",
            "Updates and deletes are applied by key: name the sink's primary key.",
        ));
    }
    let order = cx.sink("params.sink", &p.sink, &out)?;
    let from = format!("FROM {}", ident(&cx.tname("source")));
    cx.insert(&order, &select, &from);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::check_golden;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("sync");
    }
}
