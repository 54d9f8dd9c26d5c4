//! Writing Elasticsearch indexes: INSERT, UPDATE and DELETE become bulk API actions
//! (`index`, partial `update` by `_id`, `delete` by `_id`), sent in batches of `batch_size`
//! with the table's `refresh` policy. Rejected documents are counted and the statement fails
//! at the end, naming the first few.
use super::client::{request_failed, Es};
use super::dsl::{self, Field, FieldKind};
use super::{index, source, EsFdwError};
use crate::fdw::value::Val;
use crate::fdw::{int_opt, Modify, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use serde_json::{json, Map, Value};

pub struct EsModify {
    table: TableDef,
    index: String,
    es: Es,
    fields: Vec<(i16, Field)>,
    batch: usize,
    refresh: String,
    lines: String,
    /// _id of each action in `lines`, for error messages.
    ids: Vec<String>,
    sent: u64,
    failed: u64,
    errors: Vec<String>,
}

impl EsModify {
    pub fn new(table: TableDef) -> Result<EsModify, ErrorReport> {
        let src = source(&table)?;
        Ok(EsModify {
            es: Es::new(&src)?,
            index: index(&table)?,
            fields: dsl::fields(&table, None),
            batch: int_opt(&table, "batch_size", 1000).clamp(1, 100_000) as usize,
            refresh: table.opt("refresh").unwrap_or("wait_for").to_string(),
            table,
            lines: String::new(),
            ids: vec![],
            sent: 0,
            failed: 0,
            errors: vec![],
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
        self.lines.push_str(&action.to_string());
        self.lines.push('\n');
        if let Some(d) = doc {
            self.lines.push_str(&d.to_string());
            self.lines.push('\n');
        }
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
        let (st, bytes) = crate::interruptible::run(self.es.call(
            reqwest::Method::POST,
            &["_bulk"],
            &[
                ("refresh", self.refresh.as_str()),
                (
                    "filter_path",
                    "errors,items.*.error,items.*.status,items.*._id",
                ),
            ],
            Some((body, "application/x-ndjson")),
        ))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if st >= 400 {
            return Err(request_failed(
                &self.table,
                &self.index,
                "bulk request",
                st,
                &v,
            ));
        }
        self.sent += ids.len() as u64;
        if v.get("errors").and_then(Value::as_bool) == Some(true) {
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
                if let Some(err) = r.get("error") {
                    self.failed += 1;
                    if self.errors.len() < 3 {
                        let id = r
                            .get("_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| ids.get(i).cloned())
                            .unwrap_or_default();
                        let t = err.get("type").and_then(Value::as_str).unwrap_or("error");
                        let reason = err.get("reason").and_then(Value::as_str).unwrap_or("");
                        self.errors.push(format!("_id \"{id}\": {t}: {reason}"));
                    }
                }
            }
        }
        Ok(())
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
        self.flush()?;
        if self.failed > 0 {
            return Err(EsFdwError::Rejected(format!(
                "foreign table {}: Elasticsearch rejected {} of {} document(s) of index \"{}\": {}",
                self.table.name,
                self.failed,
                self.sent,
                self.index,
                self.errors.join("; ")
            ))
            .into());
        }
        Ok(())
    }
}
