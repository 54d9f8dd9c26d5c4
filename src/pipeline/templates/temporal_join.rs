//! Template `temporal_join`: each row of a stream joined with the version of another table that
//! was valid at the row's event time (`JOIN … FOR SYSTEM_TIME AS OF l.event_time`), e.g. orders
//! with the currency rate of their moment. The versions come from an append-only stream of
//! changes (each key's rows over time): the template makes it a versioned view (the latest row
//! per key by event time); a table with a primary key (cdc) is versioned already.
use super::interval_join::{JoinKey, SideColumn};
use super::lookup_join::join_kind;
use crate::core::quote::ident;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::joins::{key_conditions, side_select};
use crate::pipeline::params::{Role, TableRef};
use crate::pipeline::script::Statement;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemporalJoinParams {
    /// The stream (`left`), with event time.
    pub source: TableRef,
    /// The versions (`right`), with event time: each key's rows over time.
    pub versions: TableRef,
    /// Source column = versions key column; the versions' key is these right columns.
    pub on: Vec<JoinKey>,
    pub select: Vec<SideColumn>,
    /// `inner` (default) or `left` (rows before any version are kept, with NULLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    pub sink: TableRef,
}

/// Renders the tables and the INSERT of a temporal_join pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &TemporalJoinParams) -> Result<(), PipelineError> {
    let join = join_kind(cx, p.join.as_deref())?;
    for (path, t) in [
        ("params.source", &p.source),
        ("params.versions", &p.versions),
    ] {
        if t.event_time.is_none() {
            return Err(cx.invalid(
                &format!("{path}.event_time"),
                "is required for a temporal join",
                "Name the event-time column (TIMESTAMP(3)) of both the stream and the versions.",
            ));
        }
    }
    let l = cx.source(&p.source, false)?;
    let r = cx.table(
        "params.versions",
        "versions",
        &p.versions,
        Role::Source,
        None,
        false,
    )?;
    let (t_source, t_versions) = (cx.tname("source"), cx.tname("versions"));
    let conds = key_conditions(cx, &p.on, &l, &r)?;
    let keyed = p
        .versions
        .primary_key
        .as_ref()
        .is_some_and(|k| !k.is_empty())
        || p.versions.cdc == Some(true);
    let versioned = if keyed {
        t_versions
    } else {
        // Flink recognises the latest row per key by event time as a versioned view.
        let name = format!("{t_versions}_versioned");
        let mut rownum = "rownum".to_string();
        while r.iter().any(|c| c.name.eq_ignore_ascii_case(&rownum)) {
            rownum.push('_');
        }
        let key: Vec<String> = p.on.iter().map(|k| ident(&k.right)).collect();
        let et = ident(p.versions.event_time.as_deref().unwrap_or_default());
        cx.script.push(Statement::CreateView {
            name: name.clone(),
            select: r.iter().map(|c| ident(&c.name)).collect(),
            from: format!(
                "(\n  SELECT *,\n    ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {et} DESC) AS {rn}\n  FROM {})",
                key.join(", "),
                ident(&t_versions),
                rn = ident(&rownum)
            ),
            filter: Some(format!("{} = 1", ident(&rownum))),
        });
        name
    };
    let (out, select) = side_select(cx, &p.select, (&l, &p.source), (&r, &p.versions))?;
    let order = cx.sink("params.sink", &p.sink, &out)?;
    let et = ident(p.source.event_time.as_deref().unwrap_or_default());
    cx.insert(
        &order,
        &select,
        &format!(
            "FROM {} AS l\n{join} {} FOR SYSTEM_TIME AS OF l.{et} AS r\n  ON {}",
            ident(&t_source),
            ident(&versioned),
            conds.join("\n  AND ")
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("temporal_join");
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "orders_in_euros",
                Box::new(|p| {
                    p["params"]["versions"]
                        .as_object_mut()
                        .unwrap()
                        .remove("event_time");
                }),
                "params.versions.event_time: is required for a temporal join",
            ),
            (
                "orders_in_euros",
                Box::new(|p| p["params"]["select"][1]["side"] = json!("middle")),
                "params.select[1].side: must be \"left\" or \"right\"",
            ),
        ];
        assert_errors(cases);
    }
}
