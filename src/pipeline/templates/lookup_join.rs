//! Template `lookup_join`: each row of a stream enriched with the matching row of a Postgres or
//! MySQL table, looked up by key when the row arrives (`JOIN … FOR SYSTEM_TIME AS OF
//! proc_time`, Flink's JDBC lookup source), optionally through a cache; written to a sink.
use super::interval_join::{JoinKey, SideColumn};
use crate::core::quote::ident;
use crate::datasource::Kind;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::joins::{key_conditions, side_select};
use crate::pipeline::params::{Role, TableRef};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LookupCache {
    /// Rows kept (the least recently used go first).
    pub max_rows: u64,
    /// How long a cached row is used before it is looked up again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Whether "no such row" is cached too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_missing: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LookupJoinParams {
    /// The stream (`left` in `on` and `select`).
    pub source: TableRef,
    /// The Postgres or MySQL table looked up (`right`).
    pub lookup: TableRef,
    pub on: Vec<JoinKey>,
    pub select: Vec<SideColumn>,
    /// `inner` (rows without a match are dropped; default) or `left` (kept, with NULLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<LookupCache>,
    pub sink: TableRef,
}

/// `JOIN` or `LEFT JOIN` from params `join`.
pub(crate) fn join_kind(cx: &Ctx, join: Option<&str>) -> Result<&'static str, PipelineError> {
    match join.map(str::to_ascii_lowercase).as_deref() {
        None | Some("inner") => Ok("JOIN"),
        Some("left") => Ok("LEFT JOIN"),
        Some(other) => Err(cx.invalid(
            "params.join",
            format!(
                "must be \"inner\" or \"left\", not \"{}\"",
                other.chars().take(20).collect::<String>()
            ),
            "inner drops rows without a match; left keeps them with NULLs.",
        )),
    }
}

/// Renders the tables and the INSERT of a lookup_join pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &LookupJoinParams) -> Result<(), PipelineError> {
    let join = join_kind(cx, p.join.as_deref())?;
    // An unknown datasource is reported by the table itself.
    if let Some(ds) = cx.catalog.get(&p.lookup.datasource) {
        if !matches!(ds.kind, Kind::Postgres | Kind::Mysql) || p.lookup.cdc == Some(true) {
            return Err(cx.invalid(
                "params.lookup.datasource",
                format!(
                    "datasource \"{}\" is {}; lookups read a Postgres or MySQL table by key (without cdc)",
                    p.lookup.datasource,
                    ds.kind.as_str()
                ),
                "Look up from a postgres or mysql datasource; to join two streams use interval_join or temporal_join.",
            ));
        }
    }
    cx.proctime_always = true;
    let l = cx.source(&p.source, true);
    cx.proctime_always = false;
    let l = l?;
    let mut lookup = p.lookup.clone();
    if let Some(c) = &p.cache {
        if c.max_rows == 0 || c.max_rows > 100_000_000 {
            return Err(cx.invalid(
                "params.cache.max_rows",
                format!("must be between 1 and 100000000, not {}", c.max_rows),
                "E.g. 10000; omit cache to look every row up.",
            ));
        }
        let opts = lookup
            .connector_options
            .get_or_insert_with(Default::default);
        opts.insert("lookup.cache".into(), "PARTIAL".into());
        opts.insert(
            "lookup.partial-cache.max-rows".into(),
            c.max_rows.to_string(),
        );
        if let Some(ttl) = &c.ttl {
            opts.insert(
                "lookup.partial-cache.expire-after-write".into(),
                cx.interval("params.cache.ttl", ttl)?.option(),
            );
        }
        opts.insert(
            "lookup.partial-cache.cache-missing-key".into(),
            c.cache_missing.unwrap_or(true).to_string(),
        );
    }
    cx.quote_refusal = Some("A lookup table is read by key as it is: look up from a view whose column names are lower case.");
    let r = cx.table(
        "params.lookup",
        "lookup",
        &lookup,
        Role::Source,
        None,
        false,
    );
    cx.quote_refusal = None;
    let r = r?;
    let (t_source, t_lookup) = (ident(&cx.tname("source")), ident(&cx.tname("lookup")));
    let conds = key_conditions(cx, &p.on, &l, &r)?;
    let (out, select) = side_select(cx, &p.select, (&l, &p.source), (&r, &p.lookup))?;
    let order = cx.sink("params.sink", &p.sink, &out)?;
    cx.insert(
        &order,
        &select,
        &format!(
            "FROM {t_source} AS l\n{join} {t_lookup} FOR SYSTEM_TIME AS OF l.`proc_time` AS r\n  ON {}",
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
        check_golden("lookup_join");
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "orders_with_customers",
                Box::new(|p| p["params"]["lookup"]["datasource"] = json!("kafka_local")),
                "params.lookup.datasource: datasource \"kafka_local\" is kafka; lookups read a Postgres or MySQL table",
            ),
            (
                "orders_with_customers",
                Box::new(|p| p["params"]["join"] = json!("outer")),
                "params.join: must be \"inner\" or \"left\"",
            ),
            (
                "orders_with_customers",
                Box::new(|p| p["params"]["lookup"]["columns"][1]["name"] = json!("fullName")),
                "needs quoting in PostgreSQL",
            ),
            (
                "orders_with_customers",
                Box::new(|p| p["params"]["on"][0]["right"] = json!("nope")),
                "params.on[0].right: unknown column \"nope\"",
            ),
        ];
        assert_errors(cases);
    }
}
