//! Template `sql`: one INSERT written by the user, with `{{datasource.object}}` table
//! references that become generated tables.
use crate::core::quote::ident;
use crate::datasource::Kind;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::params::{ColumnDecl, Role, TableRef};
use crate::pipeline::script::Statement;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Renders the tables and the INSERT of a sql pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &SqlParams) -> Result<(), PipelineError> {
    cx.quote_refusal = Some(
        "Use a template pipeline (it maps such names), or a view with lower-case column names.",
    );
    let stmts = crate::core::script::split_statements(&p.sql);
    let not_insert = stmts
        .iter()
        .position(|s| !code_of(s).to_ascii_uppercase().starts_with("INSERT"));
    if stmts.is_empty() || stmts.len() > 20 || not_insert.is_some() {
        let which = match not_insert {
            Some(i) => format!("statement {} is not an INSERT", i + 1),
            None => format!("has {} statements", stmts.len()),
        };
        return Err(cx.invalid(
            "params.sql",
            format!("must be 1 to 20 INSERT statements; {which}"),
            "Write INSERT INTO {{sink_ds.object}} SELECT ... FROM {{source_ds.object}}; several INSERTs run as one job (a statement set); tables are created for you.",
        ));
    }
    let refs = sql_refs(&p.sql);
    if refs.is_empty() {
        return Err(cx.invalid(
            "params.sql",
            "references no table",
            "Reference tables as {{datasource.object}}.",
        ));
    }
    let mut sql = stmts.clone();
    let targets = insert_targets(&p.sql);
    for r in &refs {
        let Some((ds, obj)) = split_ref(r) else {
            return Err(cx.invalid(
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
            filter: None,
            computed: None,
            late: None,
            connector_options: spec.connector_options,
        };
        // Sink-only kinds (Elasticsearch, blackhole) can only be written to, a Kafka table with
        // a primary key is an upsert-kafka sink, and a table an INSERT writes is a sink; other
        // tables are sources.
        let kind = cx.catalog.get(ds).map(|d| d.kind);
        let keyed = t.primary_key.as_ref().is_some_and(|k| !k.is_empty());
        let role = match kind {
            Some(k) if k.sink_only() => Role::Sink,
            Some(Kind::Kafka) if keyed => Role::Sink,
            _ if targets.contains(r) => Role::Sink,
            _ => Role::Source,
        };
        if targets.contains(r) && t.columns.is_none() {
            return Err(cx.invalid(
                &format!("params.tables.{r}.columns"),
                "are not known: the INSERT writes this table",
                "Declare the columns of each table an INSERT writes (they are what flink.expose_results shows).",
            ));
        }
        let cols = cx.table(
            &format!("params.tables.{r}"),
            &table_name,
            &t,
            role,
            None,
            false,
        )?;
        if targets.contains(r) {
            let decl = cols
                .iter()
                .map(|c| (c.name.clone(), c.ty.to_string()))
                .collect();
            cx.sinks.push((t.clone(), decl));
        }
        for s in sql.iter_mut() {
            *s = s.replace(&format!("{{{{{r}}}}}"), &ident(&table_name));
        }
    }
    for k in p.tables.keys() {
        if !refs.contains(k) {
            return Err(cx.invalid(
                &format!("params.tables.{k}"),
                "is not referenced in params.sql",
                "Remove it or use {{...}} in the SQL.",
            ));
        }
    }
    for s in sql {
        cx.script.push(Statement::SqlInsert(s));
    }
    Ok(())
}

/// A statement's code: leading comments and blank lines skipped.
fn code_of(s: &str) -> &str {
    let mut rest = s.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    rest
}

/// The references an INSERT writes: `INSERT INTO {{ds.object}}` (in order, each once).
pub fn insert_targets(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stmt in crate::core::script::split_statements(sql) {
        let code = code_of(&stmt);
        let words: Vec<&str> = code.splitn(3, char::is_whitespace).collect();
        if let [insert, into, rest] = words.as_slice() {
            if insert.eq_ignore_ascii_case("insert") && into.eq_ignore_ascii_case("into") {
                if let Some(r) = sql_refs(rest.trim_start()).first() {
                    if rest.trim_start().starts_with("{{") && !out.contains(r) {
                        out.push(r.clone());
                    }
                }
            }
        }
    }
    out
}

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

/// `datasource.object` as its two parts.
pub(crate) fn split_ref(r: &str) -> Option<(&str, &str)> {
    let (ds, obj) = r.split_once('.')?;
    if ds.is_empty() || obj.is_empty() {
        None
    } else {
        Some((ds, obj))
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("sql");
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "raw_top_cities",
                Box::new(|p| {
                    p["params"]["sql"] =
                        json!("DROP TABLE x; INSERT INTO {{kafka_local.a}} SELECT 1")
                }),
                "params.sql: must be 1 to 20 INSERT statements; statement 1 is not an INSERT",
            ),
            (
                "raw_top_cities",
                Box::new(|p| p["params"]["sql"] = json!("INSERT INTO {{nodot}} SELECT 1")),
                "is not a datasource.object reference",
            ),
        ];
        assert_errors(cases);
    }
}
