//! Index mappings as the wrapper uses them: flattened to dotted field paths with their types
//! (and the keyword sub-field of text fields), cached per backend for [`MAPPING_TTL`] so that
//! planning can tell keyword from text without a request per query, and turned into the
//! [`Field`]s of a table ([`plan_fields`] for planning, [`load_flat_mapping`] for scans).
use super::client::{index_mappings, Es};
use super::dsl::{self, Field};
use super::{index, source, EsFdwError};
use crate::fdw::TableDef;
use pgrx::pg_sys::panic::ErrorReport;
use serde_json::{Map, Value};
use std::time::Duration;

/// Flattens properties into dotted field paths → (type, keyword sub-field of text fields).
fn flatten(
    props: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<(String, String, Option<String>)>,
) {
    for (k, f) in props {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let ty = f
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object")
            .to_string();
        let sub = f.get("fields").and_then(Value::as_object).and_then(|subs| {
            subs.iter()
                .find(|(_, s)| s.get("type").and_then(Value::as_str) == Some("keyword"))
                .map(|(n, _)| format!("{path}.{n}"))
        });
        out.push((path.clone(), ty, sub));
        if let Some(p) = f.get("properties").and_then(Value::as_object) {
            flatten(p, &path, out);
        }
    }
}

pub(super) type Flat = Vec<(String, String, Option<String>)>;
type MappingCache =
    std::collections::HashMap<(String, String), (std::time::Instant, std::rc::Rc<Flat>)>;

thread_local! {
    /// Index mappings seen lately by this backend: (url, index) → (when, flattened fields).
    /// Planning uses them to know keyword vs text; scans refresh them.
    static MAPPINGS: std::cell::RefCell<MappingCache> = std::cell::RefCell::new(MappingCache::new());
}
const MAPPING_TTL: Duration = Duration::from_secs(30);

/// The flattened mapping of `index`: from the backend's cache if `cached_ok` and fresh, else
/// read from Elasticsearch (and cached).
pub(super) fn load_flat_mapping(
    es: &Es,
    table: &TableDef,
    index: &str,
    cached_ok: bool,
) -> Result<std::rc::Rc<Flat>, ErrorReport> {
    let key = (es.base.to_string(), index.to_string());
    if cached_ok {
        let hit = MAPPINGS.with(|m| {
            m.borrow()
                .get(&key)
                .filter(|(t, _)| t.elapsed() < MAPPING_TTL)
                .map(|(_, f)| f.clone())
        });
        if let Some(f) = hit {
            return Ok(f);
        }
    }
    let Some(props) = index_mappings(es, index)? else {
        return Err(EsFdwError::IndexMissing {
            table: table.name.clone(),
            index: index.to_string(),
        }
        .into());
    };
    let mut flat = vec![];
    for (_, p) in &props {
        flatten(p, "", &mut flat);
    }
    let flat = std::rc::Rc::new(flat);
    MAPPINGS.with(|m| {
        m.borrow_mut()
            .insert(key, (std::time::Instant::now(), flat.clone()))
    });
    Ok(flat)
}

/// The table's fields, typed by the flattened mapping.
pub(super) fn fields_with(table: &TableDef, flat: &Flat) -> Vec<(i16, Field)> {
    let lookup = |path: &str| {
        flat.iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, t, s)| (t.clone(), s.clone()))
    };
    dsl::fields(table, Some(&lookup))
}

/// Fields of a table for planning: with the (cached) mapping when Elasticsearch answers,
/// else from column options and types alone.
pub(crate) fn plan_fields(table: &TableDef) -> Vec<(i16, Field)> {
    let flat = source(table).ok().and_then(|src| {
        let es = Es::new(&src).ok()?;
        let idx = index(table).ok()?;
        // Errors (index missing, ES down) surface at scan start, with the right message.
        load_flat_mapping(&es, table, &idx, true).ok()
    });
    match flat {
        Some(f) => fields_with(table, &f),
        None => dsl::fields(table, None),
    }
}
