//! Template `top_n`: the first `n` rows per key by an order (`ROW_NUMBER() OVER (PARTITION BY
//! key ORDER BY …)` kept at `<= n`), written to a sink. Without a window the ranking is
//! continuous: rows move in and out of the top as data arrives, so the result updates and the
//! sink is keyed by the partition key and the rank. With a window (tumble, hop, cumulate) each
//! window's top `n` is final when the window closes: append-only.
use super::window_aggregate::Window;
use crate::core::quote::ident;
use crate::pipeline::context::{check_ident, Col, Ctx};
use crate::pipeline::error::PipelineError;
use crate::pipeline::flinktype::FlinkType;
use crate::pipeline::params::TableRef;
use crate::pipeline::updates::keyed_sink;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrderKey {
    pub column: String,
    /// Largest first (default true: "top" usually means the largest).
    #[serde(default = "yes")]
    pub desc: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopNParams {
    pub source: TableRef,
    /// One top per distinct value of these columns (none: one top overall).
    #[serde(default)]
    pub partition_by: Vec<String>,
    pub order_by: Vec<OrderKey>,
    pub n: u32,
    /// A top per window instead of a continuously updated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Source columns written (default: every source column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// The output name of the rank (1 = first); default `rank_no`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_as: Option<String>,
    pub sink: TableRef,
}

/// Renders the tables and the INSERT of a top_n pipeline.
pub(crate) fn render(cx: &mut Ctx, p: &TopNParams) -> Result<(), PipelineError> {
    if p.n == 0 || p.n > 10_000 {
        return Err(cx.invalid(
            "params.n",
            format!("must be between 1 and 10000, not {}", p.n),
            "E.g. 3 for the top three per key.",
        ));
    }
    if p.source.cdc == Some(true) {
        return Err(cx.invalid(
            "params.source.cdc",
            "Top-N here ranks an append-only stream, and a cdc source has updates and deletes",
            "Read the table without cdc.",
        ));
    }
    let windowed = p.window.is_some();
    let mut src = cx.source(&p.source, windowed)?;
    let t_source = ident(&cx.tname("source"));
    if windowed && p.source.event_time.is_none() {
        src.pop(); // the processing-time column orders windows, it is not written
    }
    let keys = cx.find_each("params.partition_by", &src, &p.partition_by)?;
    if p.order_by.is_empty() {
        return Err(cx.invalid(
            "params.order_by",
            "must list at least one column",
            "E.g. [{\"column\": \"amount\", \"desc\": true}].",
        ));
    }
    let mut order = Vec::new();
    for (i, o) in p.order_by.iter().enumerate() {
        let c = cx.find(&format!("params.order_by[{i}].column"), &src, &o.column)?;
        order.push(format!(
            "{} {}",
            ident(&c.name),
            if o.desc { "DESC" } else { "ASC" }
        ));
    }
    let rank = p.rank_as.clone().unwrap_or_else(|| "rank_no".into());
    check_ident(cx.pipeline, "params.rank_as", &rank)?;
    let mut out: Vec<Col> = Vec::new();
    if windowed {
        for w in ["window_start", "window_end"] {
            out.push(Col {
                name: w.into(),
                ty: FlinkType::Timestamp(3),
            });
        }
    }
    let picked = match &p.select {
        Some(list) if list.is_empty() => {
            return Err(cx.invalid(
                "params.select",
                "must not be empty",
                "Omit select to write every source column.",
            ))
        }
        Some(list) => {
            let mut v = Vec::new();
            for (i, n) in list.iter().enumerate() {
                v.push(cx.find(&format!("params.select[{i}]"), &src, n)?.clone());
            }
            v
        }
        None => src.clone(),
    };
    for c in picked {
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&c.name)) {
            return Err(cx.invalid(
                "params.select",
                format!("column \"{}\" is written twice", c.name),
                "Name every column once (window_start and window_end are written for a window).",
            ));
        }
        out.push(c);
    }
    if out.iter().any(|o| o.name.eq_ignore_ascii_case(&rank)) {
        return Err(cx.invalid(
            "params.rank_as",
            format!("output column \"{rank}\" clashes with a source column"),
            "Name the rank column differently with rank_as.",
        ));
    }
    let rank_col = Col {
        name: rank.clone(),
        ty: FlinkType::BigInt,
    };
    out.push(rank_col.clone());
    let select: Vec<(String, String)> = out
        .iter()
        .map(|c| (ident(&c.name), c.name.clone()))
        .collect();
    let (from, mut partition) = match &p.window {
        Some(w) => {
            let tvf = window_tvf(cx, w, &p.source, &t_source)?;
            (
                format!("TABLE(\n    {tvf})"),
                vec!["`window_start`".to_string(), "`window_end`".to_string()],
            )
        }
        None => (t_source.clone(), Vec::new()),
    };
    partition.extend(keys.iter().map(|k| ident(&k.name)));
    let sink = if windowed {
        p.sink.clone()
    } else {
        // The continuous top updates rows: one row per (key, rank), replaced as the top changes.
        let mut key = keys.clone();
        key.push(rank_col);
        keyed_sink(
            cx,
            &p.sink,
            &key,
            &out,
            "a continuous Top-N updates rows as the top changes",
            "Rank per window (\"window\": {\"type\": \"tumble\", \"size\": \"1 minute\"}) for final, append-only results",
        )?
    };
    let cols = cx.sink("params.sink", &sink, &out)?;
    let over = if partition.is_empty() {
        format!("ORDER BY {}", order.join(", "))
    } else {
        format!(
            "PARTITION BY {} ORDER BY {}",
            partition.join(", "),
            order.join(", ")
        )
    };
    let rest = format!(
        "FROM (\n  SELECT *,\n    ROW_NUMBER() OVER ({over}) AS {rank}\n  FROM {from})\nWHERE {rank} <= {}",
        p.n,
        rank = ident(&rank),
    );
    cx.insert(&cols, &select, &rest);
    Ok(())
}

/// The window table function of a windowed Top-N: tumble, hop or cumulate (window_aggregate's).
fn window_tvf(
    cx: &Ctx,
    w: &Window,
    source: &TableRef,
    table: &str,
) -> Result<String, PipelineError> {
    let kind = w.kind.to_ascii_lowercase();
    if !matches!(kind.as_str(), "tumble" | "hop" | "cumulate") {
        return Err(cx.invalid(
            "params.window.type",
            format!(
                "\"{}\" is not a window type for Top-N",
                kind.chars().take(20).collect::<String>()
            ),
            "Window types for Top-N: tumble, hop, cumulate.",
        ));
    }
    super::window_aggregate::window_tvf(cx, w, table, source.time_column(), &[])
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("top_n");
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "top_products_per_category",
                Box::new(|p| p["params"]["n"] = json!(0)),
                "params.n: must be between 1 and 10000",
            ),
            (
                "top_products_per_category",
                Box::new(|p| p["params"]["order_by"][0]["column"] = json!("amout")),
                "params.order_by[0].column: unknown column \"amout\"",
            ),
            (
                "top_products_per_category",
                Box::new(|p| {
                    p["params"]["sink"] = json!({"datasource": "mysql_local", "object": "t",
                        "columns": [{"name": "category", "type": "STRING"}]});
                    p["params"]["select"] = json!(["product"]);
                }),
                "params.select: must include key column \"category\"",
            ),
        ];
        assert_errors(cases);
    }
}
