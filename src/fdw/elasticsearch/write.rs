//! Writing Elasticsearch indexes: INSERT, UPDATE and DELETE become bulk API actions
//! (`index`, partial `update` by `_id`, `delete` by `_id`).
//!
//! By default (`transactional 'true'`) the actions are buffered for the whole Postgres
//! transaction (`txn.rs`) and sent at COMMIT; ROLLBACK (or ROLLBACK TO SAVEPOINT) discards
//! them. With `transactional 'false'` they are sent during the statement in batches of
//! `batch_size` with the table's `refresh` policy, and rejected documents make the statement
//! fail at its end, naming the first few.
use super::client::{request_failed, Es};
use super::dsl::{self, Field, FieldKind};
use super::{index, source, txn, EsFdwError};
use crate::fdw::value::Val;
use crate::fdw::{int_opt, Modify, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use serde_json::{json, Map, Value};

/// Per-document errors named in a message.
const MAX_NAMED_ERRORS: usize = 3;

/// Default bound of a transaction's buffered actions (`max_buffered_bytes`).
pub(super) const DEFAULT_MAX_BUFFERED: i64 = 64 * 1024 * 1024;

pub struct EsModify {
    table: TableDef,
    index: String,
    es: Es,
    fields: Vec<(i16, Field)>,
    batch: usize,
    refresh: String,
    /// Buffered for the transaction (None: sent during the statement).
    txn_limit: Option<usize>,
    lines: String,
    /// _id of each action in `lines`, for error messages.
    ids: Vec<String>,
    outcome: BulkOutcome,
}

/// What bulk requests did: actions sent, rejected, and the first rejections decoded.
#[derive(Debug, Default, PartialEq)]
pub(super) struct BulkOutcome {
    pub(super) sent: u64,
    pub(super) failed: u64,
    pub(super) errors: Vec<String>,
}

/// Is the table (else its server) transactional? (default true)
fn transactional(table: &TableDef) -> bool {
    !matches!(table.opt("transactional"), Some("false" | "off"))
}

impl EsModify {
    pub fn new(table: TableDef) -> Result<EsModify, ErrorReport> {
        let src = source(&table)?;
        let txn_limit = transactional(&table)
            .then(|| int_opt(&table, "max_buffered_bytes", DEFAULT_MAX_BUFFERED) as usize);
        Ok(EsModify {
            es: Es::new(&src)?,
            index: index(&table)?,
            fields: dsl::fields(&table, None),
            batch: int_opt(&table, "batch_size", 1000).clamp(1, 100_000) as usize,
            refresh: table.opt("refresh").unwrap_or("wait_for").to_string(),
            txn_limit,
            table,
            lines: String::new(),
            ids: vec![],
            outcome: BulkOutcome::default(),
        })
    }

    fn doc(&self, row: &[(i16, Val)], keep_nulls: bool) -> (Option<String>, Value) {
        let mut doc = Map::new();
        let mut id = None;
        for (attnum, v) in row {
            let Some((_, f)) = self.fields.iter().find(|(a, _)| a == attnum) else {
                continue;
            };
            match f.kind {
                FieldKind::Id => id = v.to_text(),
                FieldKind::Index | FieldKind::Score => {}
                _ => {
                    if *v == Val::Null && !keep_nulls {
                        continue;
                    }
                    dsl::set_field(&mut doc, &f.path, v.to_json());
                }
            }
        }
        (id, Value::Object(doc))
    }

    fn push(&mut self, action: Value, doc: Option<Value>, id: String) -> Result<(), ErrorReport> {
        let mut body = action.to_string();
        body.push('\n');
        if let Some(d) = doc {
            body.push_str(&d.to_string());
            body.push('\n');
        }
        if let Some(limit) = self.txn_limit {
            let target = txn::Target {
                table: &self.table,
                index: &self.index,
                es: &self.es,
                refresh: &self.refresh,
                batch: self.batch,
                limit,
            };
            return txn::buffer(&target, body, id);
        }
        self.lines.push_str(&body);
        self.ids.push(id);
        if self.ids.len() >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ErrorReport> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let body = std::mem::take(&mut self.lines);
        let ids = std::mem::take(&mut self.ids);
        send_bulk(
            &self.es,
            &self.table,
            &self.index,
            &self.refresh,
            body,
            &ids,
            &mut self.outcome,
        )
    }
}

/// Sends one bulk request of `ids.len()` actions (`body`, NDJSON) and adds what happened to
/// `out`. A request Elasticsearch refuses as a whole (or a network failure) is an error.
pub(super) fn send_bulk(
    es: &Es,
    table: &TableDef,
    index: &str,
    refresh: &str,
    body: String,
    ids: &[String],
    out: &mut BulkOutcome,
) -> Result<(), ErrorReport> {
    let (st, bytes) = crate::interruptible::run(es.call(
        reqwest::Method::POST,
        &["_bulk"],
        &[
            ("refresh", refresh),
            (
                "filter_path",
                "errors,items.*.error,items.*.status,items.*._id",
            ),
        ],
        Some((body, "application/x-ndjson")),
    ))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if st >= 400 {
        return Err(request_failed(table, index, "bulk request", st, &v));
    }
    decode_bulk(&v, ids, out);
    Ok(())
}

/// Counts the actions of a bulk answer `v` (for the `ids` sent) and decodes the first
/// rejections as `_id "x": type: reason`.
pub(super) fn decode_bulk(v: &Value, ids: &[String], out: &mut BulkOutcome) {
    out.sent += ids.len() as u64;
    if v.get("errors").and_then(Value::as_bool) != Some(true) {
        return;
    }
    for (i, item) in v
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some((_, r)) = item.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let Some(err) = r.get("error") else {
            continue;
        };
        out.failed += 1;
        if out.errors.len() < MAX_NAMED_ERRORS {
            let id = r
                .get("_id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| ids.get(i).cloned())
                .unwrap_or_default();
            let t = err.get("type").and_then(Value::as_str).unwrap_or("error");
            let reason = err.get("reason").and_then(Value::as_str).unwrap_or("");
            let cause = err
                .pointer("/caused_by/reason")
                .and_then(Value::as_str)
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            out.errors
                .push(format!("_id \"{id}\": {t}: {reason}{cause}"));
        }
    }
}

impl Modify for EsModify {
    fn insert(&mut self, row: &[(i16, Val)]) -> Result<(), ErrorReport> {
        let (id, doc) = self.doc(row, false);
        let mut meta = json!({"_index": self.index});
        if let Some(id) = &id {
            meta["_id"] = json!(id);
        }
        self.push(
            json!({"index": meta}),
            Some(doc),
            id.unwrap_or_else(|| "(new)".into()),
        )
    }

    fn update(&mut self, id: &Val, row: &[(i16, Val)]) -> Result<(), ErrorReport> {
        let id = id.to_text().unwrap_or_default();
        let (_, doc) = self.doc(row, true);
        self.push(
            json!({"update": {"_index": self.index, "_id": id}}),
            Some(json!({"doc": doc})),
            id,
        )
    }

    fn delete(&mut self, id: &Val) -> Result<(), ErrorReport> {
        let id = id.to_text().unwrap_or_default();
        self.push(
            json!({"delete": {"_index": self.index, "_id": id}}),
            None,
            id,
        )
    }

    fn finish(&mut self) -> Result<(), ErrorReport> {
        // Transactional: nothing to send before COMMIT.
        self.flush()?;
        let o = &self.outcome;
        if o.failed > 0 {
            return Err(EsFdwError::Rejected(format!(
                "foreign table {}: Elasticsearch rejected {} of {} document(s) of index \"{}\": {}",
                self.table.name,
                o.failed,
                o.sent,
                self.index,
                o.errors.join("; ")
            ))
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_answers_name_the_first_rejections() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let v = json!({"errors": true, "items": [
            {"index": {"_id": "a", "status": 201}},
            {"index": {"_id": "b", "status": 400, "error": {"type": "document_parsing_exception",
                "reason": "[1:6] failed to parse field [n] of type [long]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"x\""}}}},
            {"update": {"status": 404, "error": {"type": "document_missing_exception", "reason": "[c]: document missing"}}},
            {"delete": {"_id": "d", "status": 400, "error": {"type": "t"}}},
            {"index": {"_id": "e", "status": 400, "error": {"type": "t", "reason": "r"}}}
        ]});
        let mut out = BulkOutcome::default();
        decode_bulk(&v, &ids, &mut out);
        assert_eq!(out.sent, 5);
        assert_eq!(out.failed, 4);
        assert_eq!(
            out.errors,
            vec![
                "_id \"b\": document_parsing_exception: [1:6] failed to parse field [n] of type [long] (For input string: \"x\")",
                "_id \"c\": document_missing_exception: [c]: document missing",
                "_id \"d\": t: ",
            ]
        );
        let mut ok = BulkOutcome::default();
        decode_bulk(&json!({"errors": false}), &ids, &mut ok);
        decode_bulk(&Value::Null, &ids[..1], &mut ok);
        assert_eq!((ok.sent, ok.failed, ok.errors.len()), (6, 0, 0));
    }
}
