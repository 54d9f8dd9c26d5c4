//! Index mappings as the wrapper uses them: flattened to dotted field paths with their types
//! (the keyword sub-field of text fields, and whether the index holds values unlike
//! `_source`), cached per backend for [`MAPPING_TTL`] so that planning can tell keyword from
//! text without a request per query, and turned into the
//! [`Field`]s of a table ([`plan_fields`] for planning, [`load_flat_mapping`] for scans).
use super::client::{index_mappings, Es};
use super::dsl::{self, Field, MappedField};
use super::{index, source, EsFdwError};
use crate::fdw::TableDef;
use pgrx::pg_sys::panic::ErrorReport;
use serde_json::{Map, Value};
use std::time::Duration;

/// Does the mapping index values differently from how `_source` holds them (so that a query
/// on the field does not compare what Postgres reads)?
fn altered(f: &Value) -> bool {
    let has = |k: &str| f.get(k).is_some_and(|v| !v.is_null());
    let is = |k: &str, v: &str| f.get(k).and_then(Value::as_str) == Some(v);
    // Booleans may be written as strings in a mapping.
    let flag = |k: &str, v: bool| {
        f.get(k)
            .is_some_and(|x| x.as_bool() == Some(v) || x.as_str() == Some(&v.to_string()))
    };
    has("ignore_above")
        || has("normalizer")
        || has("null_value")
        || flag("ignore_malformed", true)
        || flag("index", false)
        || flag("doc_values", false)
        || has("search_analyzer")
        || is("index_options", "docs")
        || is("index_options", "freqs")
        // Values computed at index time are not in `_source`.
        || has("script")
        // A date format other than the default may read `_source` unlike Postgres does
        // (`yyyy-dd-MM`, `epoch_second`…).
        || f.get("format").is_some_and(|x| {
            !matches!(
                x.as_str(),
                Some(
                    "strict_date_optional_time||epoch_millis"
                        | "strict_date_optional_time_nanos||epoch_millis"
                        | "date_optional_time||epoch_millis"
                )
            )
        })
}

/// What the mapping says about one field (see [`MappedField`]).
fn mapped(path: &str, f: &Value) -> MappedField {
    let ty = match f.get("type").and_then(Value::as_str) {
        // Not searchable (or only through doc values, unlike what `exists` assumes).
        Some(_) if f.get("index").is_some_and(|x| x == false || x == "false") => "not indexed",
        Some(t) => t,
        None => "object",
    }
    .to_string();
    // An exact keyword sub-field: no normalizer, indexed; its ignore_above bounds its use.
    let keyword_sub = f.get("fields").and_then(Value::as_object).and_then(|subs| {
        subs.iter()
            .find(|(_, s)| {
                s.get("type").and_then(Value::as_str) == Some("keyword") && {
                    let mut plain = (*s).clone();
                    if let Some(o) = plain.as_object_mut() {
                        o.remove("ignore_above");
                    }
                    !altered(&plain)
                }
            })
            .map(|(n, s)| {
                (
                    format!("{path}.{n}"),
                    s.get("ignore_above").and_then(Value::as_u64),
                )
            })
    });
    MappedField {
        ty,
        keyword_sub,
        altered: altered(f),
    }
}

/// Flattens properties into dotted field paths and what the mapping says about each;
/// `copy_to` targets are collected in `copied`.
fn flatten(props: &Map<String, Value>, prefix: &str, out: &mut Flat, copied: &mut Vec<String>) {
    for (k, f) in props {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.push((path.clone(), mapped(&path, f)));
        match f.get("copy_to") {
            Some(Value::String(t)) => copied.push(t.clone()),
            Some(Value::Array(ts)) => {
                copied.extend(ts.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
        if let Some(p) = f.get("properties").and_then(Value::as_object) {
            flatten(p, &path, out, copied);
        }
    }
}

/// The flattened fields of an index's properties. A `copy_to` target is indexed with values
/// its `_source` does not hold: typed so that nothing about it is shipped.
fn flatten_index(props: &Map<String, Value>, out: &mut Flat) {
    let mut copied = vec![];
    let start = out.len();
    flatten(props, "", out, &mut copied);
    for (path, m) in out[start..].iter_mut() {
        if copied.contains(path) {
            m.ty = "copy_to target".into();
            m.keyword_sub = None;
        }
    }
}

pub(super) type Flat = Vec<(String, MappedField)>;
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
        flatten_index(p, &mut flat);
    }
    let flat = std::rc::Rc::new(flat);
    MAPPINGS.with(|m| {
        m.borrow_mut()
            .insert(key, (std::time::Instant::now(), flat.clone()))
    });
    Ok(flat)
}

/// The table's fields, typed by the flattened mapping. A path mapped differently by the
/// indexes of a pattern or alias is typed by none of them.
pub(super) fn fields_with(table: &TableDef, flat: &Flat) -> Vec<(i16, Field)> {
    let lookup = |path: &str| {
        let mut found = flat.iter().filter(|(p, _)| p == path).map(|(_, m)| m);
        let first = found.next()?.clone();
        if found.all(|m| *m == first) {
            Some(first)
        } else {
            Some(MappedField {
                ty: "conflicting types".into(),
                ..Default::default()
            })
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::value::PgType;
    use crate::fdw::ColDef;
    use dsl::FieldKind;
    use serde_json::json;

    fn flat(props: Value) -> Flat {
        let mut out = vec![];
        if let Some(p) = props.as_object() {
            flatten_index(p, &mut out);
        }
        out
    }

    fn get<'a>(f: &'a Flat, path: &str) -> &'a MappedField {
        &f.iter().find(|(p, _)| p == path).unwrap().1
    }

    #[test]
    fn mappings_say_where_the_index_differs_from_source() {
        let f = flat(json!({
            // Elasticsearch's default dynamic mapping of a string.
            "name": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
            "lower": {"type": "text", "fields": {"lc": {"type": "keyword", "normalizer": "lowercase"}}},
            "code": {"type": "keyword", "ignore_above": 20},
            "plain": {"type": "keyword", "copy_to": ["all"]},
            "all": {"type": "text"},
            "n": {"type": "long", "null_value": 0},
            "hidden": {"type": "keyword", "index": false},
            "ts": {"type": "date", "ignore_malformed": true},
            "sec": {"type": "date", "format": "epoch_second"},
            "iso": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
            "obj": {"properties": {"k": {"type": "keyword"}}}
        }));
        assert_eq!(
            get(&f, "name"),
            &MappedField {
                ty: "text".into(),
                keyword_sub: Some(("name.keyword".into(), Some(256))),
                altered: false
            }
        );
        assert_eq!(get(&f, "lower").keyword_sub, None);
        assert!(get(&f, "code").altered && get(&f, "n").altered && get(&f, "ts").altered);
        assert!(!get(&f, "plain").altered && !get(&f, "obj.k").altered);
        assert!(get(&f, "sec").altered && !get(&f, "iso").altered);
        assert_eq!(get(&f, "all").ty, "copy_to target");
        assert_eq!(get(&f, "hidden").ty, "not indexed");
    }

    #[test]
    fn a_field_mapped_differently_by_two_indexes_is_left_to_postgres() {
        let mut f = flat(json!({"k": {"type": "keyword"}, "n": {"type": "long"}}));
        f.extend(flat(json!({"k": {"type": "text"}, "n": {"type": "long"}})));
        let col = |name: &str, attnum, ty| ColDef {
            name: String::from(name),
            attnum,
            ty: Some(ty),
            type_name: String::new(),
            type_oid: 0,
            typmod: -1,
            opts: Default::default(),
        };
        let table = TableDef {
            columns: vec![col("k", 1, PgType::Text), col("n", 2, PgType::Int8)],
            ..Default::default()
        };
        let kinds: Vec<FieldKind> = fields_with(&table, &f)
            .into_iter()
            .map(|(_, x)| x.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![FieldKind::Other, FieldKind::Number(dsl::Num::Long)]
        );
    }
}
