//! Aggregations pushed to Elasticsearch: `count(*)`, `count(col)`, `min`/`max`/`sum` and
//! `GROUP BY` columns or `date_trunc` buckets become one search with `size: 0` — a composite
//! aggregation paged to the end with `after_key` when there are keys — instead of every
//! document crossing the network.
//!
//! Only what Elasticsearch computes exactly as Postgres would is pushed ([`exact`]): the WHERE
//! clauses must all be exact (the planner checks), group keys are keyword, integer or boolean
//! fields whose index equals `_source` (no normalizer, `ignore_above`, …) or `date_trunc` of a
//! date field, `min`/`max` read integer or double fields (whose values a double holds exactly),
//! `sum` integer fields of at most 32 bits (exact in a double up to 2^53: checked for every
//! group). Fields holding arrays in a column declared as a scalar are counted per element by
//! Elasticsearch: declare such fields as array columns (never aggregated remotely).
use super::client::{reason, request_failed, Es};
use super::dsl::{self, Field, FieldKind, Num};
use super::mapping::{fields_with, load_flat_mapping};
use super::{base_query, index, source, EsFdwError};
use crate::fdw::agg::{AggFn, AggRequest, GroupKey, Output};
use crate::fdw::cond::{Cond, Request};
use crate::fdw::value::{PgType, Val};
use crate::fdw::{Scan, Ship, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use serde_json::{json, Map, Value};

/// Buckets per composite page.
const PAGE: usize = 1000;
/// Integers a double holds exactly.
const EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

fn field(f: &[(i16, Field)], col: i16) -> Option<&Field> {
    f.iter().find(|(a, _)| *a == col).map(|(_, x)| x)
}

/// Is `col IS NOT NULL` exact remotely (the field's index says exactly where it has a value)?
fn exists_exact(f: &[(i16, Field)], col: i16) -> bool {
    dsl::ship_with(f, &Cond::IsNull { col, negated: true }) == Ship::Exact
}

/// Can Elasticsearch compute `agg` exactly as Postgres would, given the fields?
pub fn exact(f: &[(i16, Field)], agg: &AggRequest) -> bool {
    let keys_ok = agg.keys.iter().all(|k| {
        let Some(fd) = field(f, k.col()) else {
            return false;
        };
        if !exists_exact(f, k.col()) {
            return false;
        }
        match k {
            GroupKey::Col(_) => matches!(
                (&fd.kind, &fd.col),
                (FieldKind::Keyword, Some(PgType::Text))
                    | (FieldKind::Bool, Some(PgType::Bool))
                    | (
                        FieldKind::Number(Num::Byte | Num::Short | Num::Integer | Num::Long),
                        Some(PgType::Int2 | PgType::Int4 | PgType::Int8)
                    )
            ),
            GroupKey::Trunc { .. } => matches!(
                (&fd.kind, &fd.col),
                (
                    FieldKind::Date { .. },
                    Some(PgType::Timestamp | PgType::Timestamptz)
                )
            ),
        }
    });
    let aggs_ok = agg.aggs.iter().all(|a| {
        let Some(col) = a.col() else {
            return true;
        };
        let Some(fd) = field(f, col) else {
            return false;
        };
        if !exists_exact(f, col) {
            return false;
        }
        match a {
            AggFn::CountStar | AggFn::Count(_) => true,
            AggFn::Min(_) | AggFn::Max(_) => matches!(
                (&fd.kind, &fd.col),
                (
                    FieldKind::Number(Num::Byte | Num::Short | Num::Integer),
                    Some(PgType::Int2 | PgType::Int4 | PgType::Int8)
                ) | (FieldKind::Number(Num::Double), Some(PgType::Float8))
            ),
            AggFn::Sum(_) => matches!(
                (&fd.kind, &fd.col),
                (
                    FieldKind::Number(Num::Byte | Num::Short | Num::Integer),
                    Some(PgType::Int2 | PgType::Int4)
                )
            ),
        }
    });
    keys_ok && aggs_ok
}

/// The sub-aggregations computing `aggs` in a bucket (`a<i>`, and `n<i>`: the count of rows
/// where the column has a value, for NULL results and the exactness check of sums).
fn metrics(f: &[(i16, Field)], aggs: &[AggFn]) -> Map<String, Value> {
    let mut m = Map::new();
    for (i, a) in aggs.iter().enumerate() {
        let Some(col) = a.col() else { continue };
        let Some(fd) = field(f, col) else { continue };
        let exists = json!({"filter": {"exists": {"field": fd.path}}});
        match a {
            AggFn::CountStar => {}
            AggFn::Count(_) => {
                m.insert(format!("a{i}"), exists);
            }
            AggFn::Min(_) | AggFn::Max(_) | AggFn::Sum(_) => {
                let op = match a {
                    AggFn::Min(_) => "min",
                    AggFn::Max(_) => "max",
                    _ => "sum",
                };
                m.insert(format!("a{i}"), json!({op: {"field": fd.path}}));
                m.insert(format!("n{i}"), exists);
                if op == "sum" {
                    // Bounds of the values, for the exactness check of the sum (see row()).
                    m.insert(format!("lo{i}"), json!({"min": {"field": fd.path}}));
                    m.insert(format!("hi{i}"), json!({"max": {"field": fd.path}}));
                }
            }
        }
    }
    m
}

/// The search body: `size: 0`, the query, and either the metrics at the top (no keys; the
/// row count is `hits.total`) or a composite aggregation after `after`.
pub fn body(
    f: &[(i16, Field)],
    agg: &AggRequest,
    query: Value,
    zone: &str,
    after: Option<&Value>,
) -> Value {
    let aggs = metrics(f, &agg.aggs);
    if agg.keys.is_empty() {
        return json!({"size": 0, "track_total_hits": true, "query": query, "aggs": aggs});
    }
    let sources: Vec<Value> = agg
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let path = field(f, k.col())
                .map(|x| x.path.clone())
                .unwrap_or_default();
            let src = match k {
                GroupKey::Col(_) => json!({"terms": {"field": path, "missing_bucket": true}}),
                GroupKey::Trunc { col, unit } => {
                    let tz = match field(f, *col).and_then(|x| x.col.clone()) {
                        Some(PgType::Timestamptz) => zone,
                        _ => "UTC",
                    };
                    json!({"date_histogram": {"field": path, "calendar_interval": unit.name(),
                        "time_zone": tz, "missing_bucket": true}})
                }
            };
            json!({format!("k{i}"): src})
        })
        .collect();
    let mut composite = json!({"size": PAGE, "sources": sources});
    if let Some(a) = after {
        composite["after"] = a.clone();
    }
    json!({"size": 0, "track_total_hits": false, "query": query,
        "aggs": {"g": {"composite": composite, "aggs": aggs}}})
}

/// One value of a bucket key, typed like the column.
fn key_val(v: &Value, ty: &PgType, trunc: bool) -> Result<Val, String> {
    if v.is_null() {
        return Ok(Val::Null);
    }
    let bad = || format!("unexpected bucket key {v}");
    Ok(match (ty, trunc) {
        (PgType::Timestamp | PgType::Timestamptz, true) => Val::Ts(
            v.as_i64()
                .ok_or_else(bad)?
                .checked_mul(1000)
                .ok_or_else(bad)?,
        ),
        (PgType::Text, _) => Val::Text(v.as_str().ok_or_else(bad)?.to_string()),
        (PgType::Bool, _) => match v {
            Value::Bool(b) => Val::Bool(*b),
            _ => Val::Bool(v.as_i64().ok_or_else(bad)? != 0),
        },
        (PgType::Int2 | PgType::Int4 | PgType::Int8, _) => Val::Int(v.as_i64().ok_or_else(bad)?),
        _ => return Err(bad()),
    })
}

/// The row of one bucket (or of the top level without keys), in output order.
pub fn row(
    agg: &AggRequest,
    f: &[(i16, Field)],
    doc_count: i64,
    keys: Option<&Value>,
    metrics: &Value,
) -> Result<Vec<Val>, String> {
    let count = |name: &str| {
        metrics
            .get(name)
            .and_then(|m| m.get("doc_count"))
            .and_then(Value::as_i64)
    };
    let mut out = Vec::with_capacity(agg.outputs.len());
    for (o, ty) in &agg.outputs {
        out.push(match o {
            Output::Key(i) => {
                let k = keys.and_then(|k| k.get(format!("k{i}"))).unwrap_or(&Value::Null);
                key_val(k, ty, matches!(agg.keys.get(*i), Some(GroupKey::Trunc { .. })))?
            }
            Output::Agg(i) => match agg.aggs.get(*i) {
                Some(AggFn::CountStar) => Val::Int(doc_count),
                Some(AggFn::Count(_)) => Val::Int(count(&format!("a{i}")).unwrap_or(0)),
                Some(a @ (AggFn::Min(c) | AggFn::Max(c) | AggFn::Sum(c))) => {
                    let n = count(&format!("n{i}")).unwrap_or(0);
                    let v = metrics
                        .get(format!("a{i}"))
                        .and_then(|m| m.get("value"))
                        .and_then(Value::as_f64);
                    match v {
                        _ if n == 0 => Val::Null,
                        None => Val::Null,
                        Some(x) if !x.is_finite() => Val::Null,
                        Some(x) => {
                            let float = matches!(field(f, *c).and_then(|x| x.col.clone()), Some(PgType::Float8));
                            if let AggFn::Sum(_) = a {
                                // n integers of magnitude at most `bound`: every partial sum
                                // (in any order) is exact in a double while n * bound <= 2^53.
                                let at = |k: &str| {
                                    metrics.get(format!("{k}{i}")).and_then(|m| m.get("value")).and_then(Value::as_f64)
                                };
                                let bound = match (at("lo"), at("hi")) {
                                    (Some(lo), Some(hi)) => lo.abs().max(hi.abs()),
                                    _ => 2_147_483_648.0,
                                };
                                if (n as f64) * bound > EXACT_DOUBLE || x.fract() != 0.0 {
                                    return Err(format!(
                                        "sum over {n} values may not be exact in Elasticsearch's double arithmetic"
                                    ));
                                }
                            }
                            if float {
                                Val::Float(x)
                            } else {
                                Val::Int(x as i64)
                            }
                        }
                    }
                }
                None => Val::Null,
            },
        });
    }
    Ok(out)
}

/// A scan computing an [`AggRequest`] in Elasticsearch: all result rows are read at start
/// (one request without keys; composite pages of [`PAGE`] buckets otherwise) and handed out.
pub struct EsAggScan {
    table: TableDef,
    index: String,
    es: Es,
    req: Request,
    agg: AggRequest,
    fields: Vec<(i16, Field)>,
    base: Option<Value>,
    body: Value,
    rows: std::vec::IntoIter<Vec<Val>>,
    requests: u64,
    buckets: u64,
}

impl EsAggScan {
    pub fn new(table: TableDef, req: Request, agg: AggRequest) -> Result<EsAggScan, ErrorReport> {
        let src = source(&table)?;
        let es = Es::new(&src)?;
        let fields = dsl::fields(&table, None);
        let base = base_query(&table)?;
        let query = dsl::query(&fields, &req.conds, base.as_ref());
        // What EXPLAIN shows before the scan starts: the session's zone as of now.
        let zone = session_zone().unwrap_or_else(|| "<session TimeZone>".into());
        let body = body(&fields, &agg, query, &zone, None);
        Ok(EsAggScan {
            index: index(&table)?,
            table,
            es,
            req,
            agg,
            fields,
            base,
            body,
            rows: Vec::new().into_iter(),
            requests: 0,
            buckets: 0,
        })
    }

    fn fail(&self, what: String) -> ErrorReport {
        EsFdwError::Remote(format!(
            "foreign table {}: aggregation on index \"{}\": {what}",
            self.table.name, self.index
        ))
        .into()
    }
}

/// The session's TimeZone as Elasticsearch takes it (an IANA name), or None.
fn session_zone() -> Option<String> {
    // SAFETY: GetConfigOptionByName with missing_ok = false either returns a palloc'd,
    // NUL-terminated copy of the setting's value or raises an ERROR; TimeZone always exists.
    let z = unsafe {
        let p =
            pgrx::pg_sys::GetConfigOptionByName(c"TimeZone".as_ptr(), std::ptr::null_mut(), false);
        if p.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    // Region/City names, UTC and Etc/… zones mean the same in Java; POSIX-style and
    // abbreviations (whose offsets Postgres reads with the opposite sign) are refused.
    let ok = z.split('/').all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
    }) && z.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && (z.contains('/') || z == "UTC" || z == "GMT");
    ok.then_some(z)
}

impl Scan for EsAggScan {
    fn start(&mut self, req: &Request) -> Result<(), ErrorReport> {
        self.req = req.clone();
        let flat = load_flat_mapping(&self.es, &self.table, &self.index, false)?;
        self.fields = fields_with(&self.table, &flat);
        // The planner decided on what it knew then; the mapping may have changed since.
        let conds_exact = self
            .req
            .conds
            .iter()
            .all(|c: &Cond| dsl::ship_with(&self.fields, c) == Ship::Exact);
        if !conds_exact || !exact(&self.fields, &self.agg) {
            return Err(self.fail(
                "the index mapping changed since the query was planned; run it again".into(),
            ));
        }
        let zone = if self.agg.keys.iter().any(|k| {
            matches!(k, GroupKey::Trunc { col, .. }
                if matches!(field(&self.fields, *col).and_then(|f| f.col.clone()), Some(PgType::Timestamptz)))
        }) {
            session_zone().ok_or_else(|| {
                ErrorReport::from(EsFdwError::Config(format!(
                    "foreign table {}: date_trunc on a timestamptz column is computed by Elasticsearch in the session TimeZone, which must be an IANA zone name (like Europe/Oslo or UTC)",
                    self.table.name
                )))
            })?
        } else {
            "UTC".to_string()
        };
        let query = dsl::query(&self.fields, &self.req.conds, self.base.as_ref());
        let mut rows = vec![];
        let mut after: Option<Value> = None;
        self.requests = 0;
        self.buckets = 0;
        loop {
            let body = body(
                &self.fields,
                &self.agg,
                query.clone(),
                &zone,
                after.as_ref(),
            );
            self.body = body.clone();
            let (st, v) = crate::interruptible::run(self.es.json(
                reqwest::Method::POST,
                &[&self.index, "_search"],
                &[],
                Some(body),
            ))?;
            self.requests += 1;
            if st >= 400 {
                return Err(request_failed(
                    &self.table,
                    &self.index,
                    "aggregation",
                    st,
                    &v,
                ));
            }
            if v.get("timed_out").and_then(Value::as_bool) == Some(true)
                || v.pointer("/_shards/failed")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    > 0
            {
                return Err(self.fail(format!("not every shard answered: {}", reason(&v))));
            }
            let aggs = v.get("aggregations").cloned().unwrap_or(Value::Null);
            if self.agg.keys.is_empty() {
                let total = v
                    .pointer("/hits/total/value")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                rows.push(
                    row(&self.agg, &self.fields, total, None, &aggs).map_err(|e| self.fail(e))?,
                );
                break;
            }
            let buckets = aggs
                .pointer("/g/buckets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for b in &buckets {
                let dc = b.get("doc_count").and_then(Value::as_i64).unwrap_or(0);
                rows.push(
                    row(&self.agg, &self.fields, dc, b.get("key"), b).map_err(|e| self.fail(e))?,
                );
            }
            self.buckets += buckets.len() as u64;
            after = aggs.pointer("/g/after_key").cloned();
            if buckets.len() < PAGE || after.is_none() {
                break;
            }
            pgrx::check_for_interrupts!();
        }
        self.rows = rows.into_iter();
        Ok(())
    }

    fn next(&mut self, row: &mut [Val]) -> Result<bool, ErrorReport> {
        match self.rows.next() {
            Some(r) => {
                for (slot, v) in row.iter_mut().zip(r) {
                    *slot = v;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn explain(&mut self, verbose: bool, analyze: bool) -> Vec<(String, String)> {
        let mut out = vec![("Elasticsearch Index".to_string(), self.index.clone())];
        if verbose {
            out.push(("Elasticsearch Aggregation".into(), self.body.to_string()));
        }
        if analyze {
            out.push(("Elasticsearch Requests".into(), self.requests.to_string()));
            out.push(("Buckets Fetched".into(), self.buckets.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::agg::TruncUnit;
    use crate::fdw::{ColDef, Opts};

    fn table() -> TableDef {
        let col = |name: &str, attnum: i16, ty: PgType, es: &str| ColDef {
            name: name.into(),
            attnum,
            ty: Some(ty),
            type_name: String::new(),
            type_oid: 0,
            typmod: -1,
            opts: Opts::from([("es_type".to_string(), es.to_string())]),
        };
        TableDef {
            name: "public.t".into(),
            columns: vec![
                col("city", 1, PgType::Text, "keyword"),
                col("n", 2, PgType::Int4, "integer"),
                col("big", 3, PgType::Int8, "long"),
                col("d", 4, PgType::Float8, "double"),
                col("ts", 5, PgType::Timestamptz, "date"),
                col("body", 6, PgType::Text, "text"),
                col("ok", 7, PgType::Bool, "boolean"),
            ],
            ..Default::default()
        }
    }

    fn req(keys: Vec<GroupKey>, aggs: Vec<AggFn>) -> AggRequest {
        let mut outputs: Vec<(Output, PgType)> = (0..keys.len())
            .map(|i| (Output::Key(i), PgType::Text))
            .collect();
        outputs.extend((0..aggs.len()).map(|i| (Output::Agg(i), PgType::Int8)));
        AggRequest {
            relid: 1,
            keys,
            aggs,
            outputs,
        }
    }

    #[test]
    fn only_exact_aggregations_are_pushed() {
        let f = dsl::fields(&table(), None);
        use AggFn::*;
        assert!(exact(
            &f,
            &req(vec![], vec![CountStar, Count(6), Min(2), Max(4), Sum(2)])
        ));
        assert!(exact(
            &f,
            &req(
                vec![GroupKey::Col(1), GroupKey::Col(7), GroupKey::Col(3)],
                vec![CountStar]
            )
        ));
        let hour = GroupKey::Trunc {
            col: 5,
            unit: TruncUnit::Hour,
        };
        assert!(exact(&f, &req(vec![hour], vec![CountStar])));
        // Analysed text cannot be a key; long min/max/sum and double sums lose precision.
        assert!(!exact(&f, &req(vec![GroupKey::Col(6)], vec![CountStar])));
        assert!(!exact(&f, &req(vec![], vec![Min(3)])));
        assert!(!exact(&f, &req(vec![], vec![Sum(3)])));
        assert!(!exact(&f, &req(vec![], vec![Sum(4)])));
        // Raw dates are not keys (milliseconds in the index, microseconds in _source).
        assert!(!exact(&f, &req(vec![GroupKey::Col(5)], vec![CountStar])));
    }

    #[test]
    fn bodies_and_rows() {
        let f = dsl::fields(&table(), None);
        let a = req(vec![], vec![AggFn::CountStar, AggFn::Sum(2), AggFn::Max(4)]);
        let b = body(&f, &a, json!({"match_all": {}}), "UTC", None);
        assert_eq!(b["size"], json!(0));
        assert_eq!(b["track_total_hits"], json!(true));
        assert_eq!(b["aggs"]["a1"], json!({"sum": {"field": "n"}}));
        assert_eq!(
            b["aggs"]["n2"],
            json!({"filter": {"exists": {"field": "d"}}})
        );
        let m = json!({"a1": {"value": 42.0}, "n1": {"doc_count": 3}, "a2": {"value": null}, "n2": {"doc_count": 0}});
        let mut a = a;
        a.outputs[2].1 = PgType::Float8;
        assert_eq!(
            row(&a, &f, 7, None, &m).unwrap(),
            vec![Val::Int(7), Val::Int(42), Val::Null]
        );
        // A sum with no value is NULL, as in Postgres.
        let m = json!({"a1": {"value": 0.0}, "n1": {"doc_count": 0}, "a2": {"value": 1.5}, "n2": {"doc_count": 1}});
        assert_eq!(
            row(&a, &f, 0, None, &m).unwrap(),
            vec![Val::Int(0), Val::Null, Val::Float(1.5)]
        );
        // Composite: keys in order, the missing bucket is NULL, pages continue after after_key.
        let hour = GroupKey::Trunc {
            col: 5,
            unit: TruncUnit::Hour,
        };
        let mut g = req(vec![GroupKey::Col(1), hour], vec![AggFn::CountStar]);
        g.outputs[1].1 = PgType::Timestamptz;
        let b = body(
            &f,
            &g,
            json!({"match_all": {}}),
            "Europe/Oslo",
            Some(&json!({"k0": "x"})),
        );
        let src = &b["aggs"]["g"]["composite"];
        assert_eq!(src["after"], json!({"k0": "x"}));
        assert_eq!(
            src["sources"][1]["k1"]["date_histogram"]["time_zone"],
            json!("Europe/Oslo")
        );
        assert_eq!(
            src["sources"][1]["k1"]["date_histogram"]["calendar_interval"],
            json!("hour")
        );
        let r = row(
            &g,
            &f,
            5,
            Some(&json!({"k0": null, "k1": 1714557600000i64})),
            &json!({}),
        )
        .unwrap();
        assert_eq!(
            r,
            vec![Val::Null, Val::Ts(1_714_557_600_000_000), Val::Int(5)]
        );
    }

    #[test]
    fn sums_that_may_not_be_exact_are_errors() {
        let f = dsl::fields(&table(), None);
        let a = req(vec![], vec![AggFn::Sum(2)]);
        let m = json!({"a0": {"value": 1.0}, "n0": {"doc_count": 5_000_000}});
        assert!(row(&a, &f, 5_000_000, None, &m).is_err());
        // Small values: exact however many.
        let m = json!({"a0": {"value": 5e6}, "n0": {"doc_count": 5_000_000},
            "lo0": {"value": -1.0}, "hi0": {"value": 1.0}});
        assert_eq!(
            row(&a, &f, 5_000_000, None, &m).unwrap(),
            vec![Val::Int(5_000_000)]
        );
    }
}
