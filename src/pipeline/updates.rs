//! Queries whose results update rows (deduplication keeping the last row, regular Top-N): their
//! sink must apply updates by key. [`keyed_sink`] checks the sink's kind and gives it a primary
//! key (the declared one, or the result's key) — so Flink's runtime changelog error becomes a
//! create-time error that names the sink and says which would work.
use super::context::{Col, Ctx};
use super::error::PipelineError;
use super::params::TableRef;

/// `sink` made fit for an updating result: `why` says why the result updates (for the error),
/// `fix` how to avoid updates. Keys the sink by `keys` unless it declares a primary key.
pub(crate) fn keyed_sink(
    cx: &Ctx,
    sink: &TableRef,
    keys: &[Col],
    out: &[Col],
    why: &str,
    fix: &str,
) -> Result<TableRef, PipelineError> {
    let mut sink = sink.clone();
    // An unknown datasource is reported by the sink table itself.
    if let Some(ds) = cx.catalog.get(&sink.datasource) {
        if !ds.kind.accepts_updates() {
            return Err(cx.invalid(
                "params.sink",
                format!("a {} sink is append-only, but {why}", ds.kind.as_str()),
                format!("{fix}, or write to a sink that applies updates by key (Kafka, Elasticsearch, Postgres, MySQL)."),
            ));
        }
    }
    if sink.primary_key.as_ref().is_some_and(|k| !k.is_empty()) {
        return Ok(sink);
    }
    let mut pk = Vec::new();
    for k in keys {
        if !out.iter().any(|c| c.name == k.name) {
            return Err(cx.invalid(
                "params.select",
                format!("must include key column \"{}\": {why}, by key", k.name),
                "Add the key columns to select (they become the sink's primary key), or set params.sink.primary_key.",
            ));
        }
        // Declared sink columns may differ in case from the query's.
        let name = sink
            .columns
            .iter()
            .flatten()
            .find(|c| c.name.eq_ignore_ascii_case(&k.name))
            .map_or_else(|| k.name.clone(), |c| c.name.clone());
        pk.push(name);
    }
    sink.primary_key = Some(pk);
    Ok(sink)
}
