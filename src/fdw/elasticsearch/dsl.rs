//! Pure translation of WHERE / ORDER BY into Elasticsearch query DSL, and of `_source`
//! documents back into column values.
//!
//! Every translated filter matches a superset of what Postgres keeps (Postgres rechecks every
//! clause), and is *exact* where Elasticsearch compares like Postgres does: then LIMIT can be
//! shipped too. Text is the delicate part: analysed `text` fields only support phrase matches
//! (a superset of equality), and keyword ranges/sorts compare bytes, which equals Postgres'
//! order only under the C collation (`pg/plan.rs` checks collations for sorts; ranges on text are
//! not shipped).
use crate::fdw::cond::{placeholder, CmpOp, Cond, Operand, SortKey};
use crate::fdw::value::{self, PgType, Val};
use crate::fdw::{Ship, TableDef};
use serde_json::{json, Map, Value};

/// How Elasticsearch indexes a field, as far as filtering is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Keyword,
    /// Analysed text; `keyword_sub` names an exact sub-field (`name.keyword`) if mapped.
    Text,
    /// long, integer, short, byte, double, unsigned_long: exact comparisons.
    Number,
    /// float, half_float, scaled_float: indexed with less precision than `_source` holds.
    LossyNumber,
    Date,
    Bool,
    Id,
    Index,
    Score,
    Other,
}

impl FieldKind {
    pub fn from_es(t: &str) -> FieldKind {
        match t {
            "keyword" | "constant_keyword" | "wildcard" | "ip" | "version" => FieldKind::Keyword,
            "text" | "match_only_text" => FieldKind::Text,
            "long" | "integer" | "short" | "byte" | "double" | "unsigned_long" => FieldKind::Number,
            "float" | "half_float" | "scaled_float" => FieldKind::LossyNumber,
            "date" | "date_nanos" => FieldKind::Date,
            "boolean" => FieldKind::Bool,
            _ => FieldKind::Other,
        }
    }

    /// Best guess from the Postgres column type when the mapping is not known (plan time).
    fn guess(ty: Option<&PgType>) -> FieldKind {
        match ty {
            Some(PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Float8 | PgType::Numeric) => {
                FieldKind::Number
            }
            Some(PgType::Float4) => FieldKind::LossyNumber,
            Some(PgType::Bool) => FieldKind::Bool,
            Some(PgType::Timestamptz | PgType::Timestamp | PgType::Date) => FieldKind::Date,
            // Could be keyword (exact) or text (phrase): assume the weaker.
            Some(PgType::Text) => FieldKind::Text,
            _ => FieldKind::Other,
        }
    }
}

/// Field path → (mapping type, keyword sub-field), from an index mapping.
pub type MappingLookup<'a> = &'a dyn Fn(&str) -> Option<(String, Option<String>)>;

/// A column as an Elasticsearch field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub path: String,
    pub kind: FieldKind,
    /// For text fields: an exact keyword sub-field, e.g. `name.keyword`.
    pub keyword_sub: Option<String>,
}

/// Field of every column: `_id`/`_score`/`_index` are metadata; others map by the `field`
/// option or the column name; `es_type` (set by IMPORT FOREIGN SCHEMA) or the index mapping
/// (`mapping`: field path → (type, keyword sub-field)) tells how it is indexed.
pub fn fields(table: &TableDef, mapping: Option<MappingLookup<'_>>) -> Vec<(i16, Field)> {
    table
        .columns
        .iter()
        .map(|c| {
            let f = match c.name.as_str() {
                "_id" => Field {
                    path: "_id".into(),
                    kind: FieldKind::Id,
                    keyword_sub: None,
                },
                "_index" => Field {
                    path: "_index".into(),
                    kind: FieldKind::Index,
                    keyword_sub: None,
                },
                "_score" => Field {
                    path: "_score".into(),
                    kind: FieldKind::Score,
                    keyword_sub: None,
                },
                name => {
                    let path = c
                        .opts
                        .get("field")
                        .cloned()
                        .unwrap_or_else(|| name.to_string());
                    let from_map = mapping.and_then(|m| m(&path));
                    let (mut kind, keyword_sub) = match (&from_map, c.opts.get("es_type")) {
                        (Some((t, sub)), _) => (FieldKind::from_es(t), sub.clone()),
                        (None, Some(t)) => (FieldKind::from_es(t), None),
                        (None, None) => (FieldKind::guess(c.ty.as_ref()), None),
                    };
                    // A date or time column over a string field (Flink's JSON writes
                    // `2024-05-01 10:00:00`, which Elasticsearch maps as text): a condition
                    // would compare our ISO-8601 text with theirs as strings. Postgres filters.
                    if matches!(kind, FieldKind::Text | FieldKind::Keyword)
                        && matches!(
                            c.ty,
                            Some(
                                PgType::Timestamp
                                    | PgType::Timestamptz
                                    | PgType::Date
                                    | PgType::Time
                            )
                        )
                    {
                        kind = FieldKind::Other;
                    }
                    Field {
                        path,
                        kind,
                        keyword_sub,
                    }
                }
            };
            (c.attnum, f)
        })
        .collect()
}

fn field_of(fields: &[(i16, Field)], col: i16) -> Option<&Field> {
    fields.iter().find(|(a, _)| *a == col).map(|(_, f)| f)
}

/// A LIKE pattern that is a plain prefix (`abc%`), as the prefix.
pub fn like_prefix(p: &str) -> Option<&str> {
    let body = p.strip_suffix('%')?;
    (!body.is_empty() && !body.contains(['%', '_', '\\'])).then_some(body)
}

/// Plan time: how well a condition goes remote, given the columns as fields (from column
/// options, Postgres types and, when Elasticsearch answered, the index mapping).
pub fn ship_with(f: &[(i16, Field)], c: &Cond) -> Ship {
    let kind = |col: &i16| {
        field_of(f, *col)
            .map(|x| x.kind)
            .unwrap_or(FieldKind::Other)
    };
    let is_param = |o: &Operand| matches!(o, Operand::Param(_));
    match c {
        Cond::Cmp { col, op, arg } => match (kind(col), op) {
            (FieldKind::Other | FieldKind::Score | FieldKind::LossyNumber, _) => Ship::No,
            (FieldKind::Text, CmpOp::Eq) => Ship::Superset,
            (
                FieldKind::Text | FieldKind::Keyword | FieldKind::Id | FieldKind::Index,
                CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge,
            ) => Ship::No,
            (FieldKind::Text, CmpOp::Ne) => Ship::No,
            (FieldKind::Date, _) if is_param(arg) || !whole_ms(arg) => Ship::Superset,
            _ => Ship::Exact,
        },
        Cond::In { col, negated, .. } => match kind(col) {
            FieldKind::Other | FieldKind::Score | FieldKind::LossyNumber => Ship::No,
            FieldKind::Text if *negated => Ship::No,
            FieldKind::Text | FieldKind::Date => Ship::Superset,
            _ => Ship::Exact,
        },
        Cond::IsNull { col, .. } => match kind(col) {
            FieldKind::Other | FieldKind::Score => Ship::No,
            _ => Ship::Exact,
        },
        Cond::Like { col, pattern } => match (kind(col), pattern) {
            (FieldKind::Keyword, Operand::Val(Val::Text(p))) if like_prefix(p).is_some() => {
                Ship::Exact
            }
            (FieldKind::Keyword, Operand::Param(_)) => Ship::Superset,
            _ => Ship::No,
        },
        Cond::And(v) | Cond::Or(v) => {
            let mut worst = Ship::Exact;
            for s in v.iter().map(|c| ship_with(f, c)) {
                match s {
                    Ship::No => return Ship::No,
                    Ship::Superset => worst = Ship::Superset,
                    Ship::Exact => {}
                }
            }
            worst
        }
    }
}

fn whole_ms(o: &Operand) -> bool {
    match o {
        Operand::Val(Val::Ts(us)) => us % 1000 == 0,
        Operand::Val(_) => true,
        Operand::Param(_) => false,
    }
}

/// A value as Elasticsearch takes it in a query; `None` for SQL NULL (matches nothing).
fn es_value(o: &Operand) -> Option<Value> {
    match o {
        Operand::Param(i) => Some(Value::String(placeholder(*i))),
        Operand::Val(Val::Null) => None,
        Operand::Val(v) => Some(v.to_json()),
    }
}

const MATCH_ALL: fn() -> Value = || json!({"match_all": {}});
const MATCH_NONE: fn() -> Value = || json!({"match_none": {}});

/// One condition as a query clause (resolved values; placeholders for EXPLAIN).
fn clause(f: &[(i16, Field)], c: &Cond) -> Value {
    match c {
        Cond::And(v) => {
            json!({"bool": {"filter": v.iter().map(|c| clause(f, c)).collect::<Vec<_>>()}})
        }
        Cond::Or(v) => {
            let arms: Vec<Value> = v.iter().map(|c| clause(f, c)).collect();
            if arms.iter().any(|a| a.get("match_all").is_some()) {
                return MATCH_ALL();
            }
            json!({"bool": {"should": arms, "minimum_should_match": 1}})
        }
        Cond::IsNull { col, negated } => {
            let Some(fd) = field_of(f, *col) else {
                return MATCH_ALL();
            };
            match fd.kind {
                FieldKind::Id | FieldKind::Index => {
                    if *negated {
                        MATCH_ALL()
                    } else {
                        MATCH_NONE()
                    }
                }
                FieldKind::Other | FieldKind::Score => MATCH_ALL(),
                _ => {
                    let exists = json!({"exists": {"field": fd.path}});
                    if *negated {
                        exists
                    } else {
                        json!({"bool": {"must_not": [exists]}})
                    }
                }
            }
        }
        Cond::Like { col, pattern } => {
            let Some(fd) = field_of(f, *col) else {
                return MATCH_ALL();
            };
            match (fd.kind, pattern) {
                (FieldKind::Keyword, Operand::Val(Val::Text(p))) => match like_prefix(p) {
                    Some(prefix) => json!({"prefix": {fd.path.clone(): {"value": prefix}}}),
                    None => MATCH_ALL(),
                },
                (FieldKind::Keyword, Operand::Param(i)) => {
                    json!({"prefix": {fd.path.clone(): {"value": format!("{} (prefix)", placeholder(*i))}}})
                }
                _ => MATCH_ALL(),
            }
        }
        Cond::In { col, list, negated } => {
            let Some(fd) = field_of(f, *col) else {
                return MATCH_ALL();
            };
            let items: Vec<Value> = match list {
                Operand::Val(Val::Array(a)) => a
                    .iter()
                    .filter(|v| **v != Val::Null)
                    .map(Val::to_json)
                    .collect(),
                Operand::Val(_) => vec![],
                Operand::Param(i) => vec![Value::String(placeholder(*i))],
            };
            let positive = match fd.kind {
                FieldKind::Other | FieldKind::Score | FieldKind::LossyNumber => return MATCH_ALL(),
                FieldKind::Id => json!({"ids": {"values": items}}),
                FieldKind::Text => match &fd.keyword_sub {
                    Some(sub) => json!({"terms": {sub.clone(): items}}),
                    None => {
                        if *negated {
                            return MATCH_ALL();
                        }
                        let arms: Vec<Value> = items
                            .iter()
                            .map(|v| json!({"match_phrase": {fd.path.clone(): v}}))
                            .collect();
                        json!({"bool": {"should": arms, "minimum_should_match": 1}})
                    }
                },
                FieldKind::Date => {
                    let arms: Vec<Value> = items
                        .iter()
                        .map(|v| date_range(&fd.path, CmpOp::Eq, v))
                        .collect();
                    json!({"bool": {"should": arms, "minimum_should_match": 1}})
                }
                _ => json!({"terms": {fd.path.clone(): items}}),
            };
            if *negated {
                json!({"bool": {"filter": [{"exists": {"field": fd.path}}], "must_not": [positive]}})
            } else {
                positive
            }
        }
        Cond::Cmp { col, op, arg } => {
            let Some(fd) = field_of(f, *col) else {
                return MATCH_ALL();
            };
            let Some(v) = es_value(arg) else {
                return MATCH_NONE();
            };
            let eq = match fd.kind {
                FieldKind::Other | FieldKind::Score | FieldKind::LossyNumber => return MATCH_ALL(),
                FieldKind::Id => {
                    return match op {
                        CmpOp::Eq => json!({"ids": {"values": [v]}}),
                        CmpOp::Ne => json!({"bool": {"must_not": [{"ids": {"values": [v]}}]}}),
                        _ => MATCH_ALL(),
                    }
                }
                FieldKind::Text => match (&fd.keyword_sub, op) {
                    (Some(sub), CmpOp::Eq) => json!({"term": {sub.clone(): v}}),
                    (None, CmpOp::Eq) => json!({"match_phrase": {fd.path.clone(): v}}),
                    _ => return MATCH_ALL(),
                },
                FieldKind::Keyword | FieldKind::Index => match op {
                    CmpOp::Eq | CmpOp::Ne => json!({"term": {fd.path.clone(): v}}),
                    _ => return MATCH_ALL(),
                },
                FieldKind::Date => {
                    if *op == CmpOp::Ne {
                        date_range(&fd.path, CmpOp::Eq, &v)
                    } else {
                        return date_range(&fd.path, *op, &v);
                    }
                }
                FieldKind::Number | FieldKind::Bool => match op {
                    CmpOp::Eq | CmpOp::Ne => json!({"term": {fd.path.clone(): v}}),
                    CmpOp::Lt => json!({"range": {fd.path.clone(): {"lt": v}}}),
                    CmpOp::Le => json!({"range": {fd.path.clone(): {"lte": v}}}),
                    CmpOp::Gt => json!({"range": {fd.path.clone(): {"gt": v}}}),
                    CmpOp::Ge => json!({"range": {fd.path.clone(): {"gte": v}}}),
                },
            };
            if *op == CmpOp::Ne {
                // <> never matches NULL in SQL: the field must exist.
                json!({"bool": {"filter": [{"exists": {"field": fd.path}}], "must_not": [eq]}})
            } else {
                eq
            }
        }
    }
}

/// Dates compare at millisecond precision in Elasticsearch: bounds are rounded outward so the
/// remote filter never drops a row Postgres would keep.
fn date_range(path: &str, op: CmpOp, v: &Value) -> Value {
    let (floor, ceil) = match v.as_str().and_then(value::parse_datetime) {
        Some(us) => (
            Value::String(value::format_ts(us.div_euclid(1000) * 1000)),
            Value::String(value::format_ts((us + 999).div_euclid(1000) * 1000)),
        ),
        None => (v.clone(), v.clone()),
    };
    let fmt = "strict_date_optional_time||epoch_millis";
    let body = match op {
        CmpOp::Eq => json!({"gte": floor, "lte": ceil, "format": fmt}),
        CmpOp::Lt => json!({"lt": ceil, "format": fmt}),
        CmpOp::Le => json!({"lte": ceil, "format": fmt}),
        CmpOp::Gt => json!({"gt": floor, "format": fmt}),
        CmpOp::Ge => json!({"gte": floor, "format": fmt}),
        CmpOp::Ne => return MATCH_ALL(),
    };
    json!({"range": {path: body}})
}

/// The `query` of a search: the table's base query ANDed with the shipped conditions.
pub fn query(f: &[(i16, Field)], conds: &[Cond], base: Option<&Value>) -> Value {
    let mut filters: Vec<Value> = base.cloned().into_iter().collect();
    for c in conds {
        let q = clause(f, c);
        if q.get("match_all").is_none() {
            filters.push(q);
        }
    }
    match filters.len() {
        0 => MATCH_ALL(),
        1 => filters.pop().unwrap_or_else(MATCH_ALL),
        _ => json!({"bool": {"filter": filters}}),
    }
}

/// The `sort` of a search, or None when a key cannot be sorted remotely (Postgres sorts).
/// `_shard_doc` breaks ties, which point-in-time paging needs.
pub fn sort(f: &[(i16, Field)], keys: &[SortKey]) -> Option<Vec<Value>> {
    let mut out = vec![];
    for k in keys {
        let fd = field_of(f, k.col)?;
        let path = match fd.kind {
            FieldKind::Keyword
            | FieldKind::Number
            | FieldKind::LossyNumber
            | FieldKind::Date
            | FieldKind::Bool
            | FieldKind::Index => fd.path.clone(),
            FieldKind::Text => fd.keyword_sub.clone()?,
            FieldKind::Score => "_score".into(),
            FieldKind::Id | FieldKind::Other => return None,
        };
        let order = if k.desc { "desc" } else { "asc" };
        if path == "_score" {
            out.push(json!({"_score": {"order": order}}));
        } else {
            out.push(json!({path: {"order": order, "missing": if k.nulls_first { "_first" } else { "_last" }}}));
        }
    }
    Some(out)
}

/// Can the remote side sort by this column exactly as Postgres does (text needs the C
/// collation, which `pg/plan.rs` checks)?
pub fn sort_exact(f: &[(i16, Field)], attnum: i16) -> bool {
    matches!(
        field_of(f, attnum).map(|x| x.kind),
        Some(FieldKind::Keyword | FieldKind::Number | FieldKind::Date | FieldKind::Bool)
    )
}

/// Writes `v` at dotted `path` of `doc`, creating objects on the way.
pub fn set_field(doc: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let entry = doc
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(o) = entry {
                set_field(o, rest, v);
            }
        }
    }
}

/// The Postgres type for an Elasticsearch field type (IMPORT FOREIGN SCHEMA).
pub fn pg_type_for_es(t: &str) -> &'static str {
    match t {
        "keyword" | "text" | "constant_keyword" | "wildcard" | "match_only_text" | "ip"
        | "version" => "text",
        "long" => "bigint",
        "unsigned_long" => "numeric",
        "integer" => "integer",
        "short" | "byte" => "smallint",
        "double" => "double precision",
        "float" | "half_float" => "real",
        "scaled_float" => "numeric",
        "boolean" => "boolean",
        "date" | "date_nanos" => "timestamptz",
        "binary" => "text",
        _ => "jsonb",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::{ColDef, Opts};
    use Operand::Val as V;

    fn table() -> TableDef {
        let col = |n: &str, a: i16, ty: PgType, es: Option<&str>| ColDef {
            name: n.into(),
            attnum: a,
            ty: Some(ty),
            type_name: String::new(),
            type_oid: 0,
            typmod: -1,
            opts: es
                .map(|t| Opts::from([("es_type".to_string(), t.to_string())]))
                .unwrap_or_default(),
        };
        TableDef {
            name: "public.t".into(),
            columns: vec![
                col("_id", 1, PgType::Text, None),
                col("city", 2, PgType::Text, Some("keyword")),
                col("body", 3, PgType::Text, Some("text")),
                col("n", 4, PgType::Int8, Some("long")),
                col("ts", 5, PgType::Timestamptz, Some("date")),
                col("price", 6, PgType::Float4, Some("scaled_float")),
                ColDef {
                    name: "zip".into(),
                    attnum: 7,
                    ty: Some(PgType::Text),
                    type_name: String::new(),
                    type_oid: 0,
                    typmod: -1,
                    opts: Opts::from([
                        ("field".to_string(), "addr.zip".to_string()),
                        ("es_type".to_string(), "keyword".to_string()),
                    ]),
                },
            ],
            ..Default::default()
        }
    }

    fn q(c: Cond) -> Value {
        let t = table();
        query(&fields(&t, None), &[c], None)
    }

    #[test]
    fn every_operator_becomes_the_right_query() {
        let cmp = |col, op, v| Cond::Cmp { col, op, arg: V(v) };
        assert_eq!(
            q(cmp(2, CmpOp::Eq, Val::Text("Oslo".into()))),
            json!({"term": {"city": "Oslo"}})
        );
        assert_eq!(
            q(cmp(7, CmpOp::Eq, Val::Text("0150".into()))),
            json!({"term": {"addr.zip": "0150"}})
        );
        assert_eq!(
            q(cmp(3, CmpOp::Eq, Val::Text("a b".into()))),
            json!({"match_phrase": {"body": "a b"}})
        );
        assert_eq!(
            q(cmp(4, CmpOp::Ge, Val::Int(5))),
            json!({"range": {"n": {"gte": 5}}})
        );
        assert_eq!(
            q(cmp(4, CmpOp::Lt, Val::Int(5))),
            json!({"range": {"n": {"lt": 5}}})
        );
        assert_eq!(
            q(cmp(4, CmpOp::Ne, Val::Int(5))),
            json!({"bool": {"filter": [{"exists": {"field": "n"}}], "must_not": [{"term": {"n": 5}}]}})
        );
        assert_eq!(
            q(cmp(1, CmpOp::Eq, Val::Text("x".into()))),
            json!({"ids": {"values": ["x"]}})
        );
        assert_eq!(
            q(Cond::In {
                col: 2,
                list: V(Val::Array(vec![
                    Val::Text("a".into()),
                    Val::Text("b".into())
                ])),
                negated: false
            }),
            json!({"terms": {"city": ["a", "b"]}})
        );
        assert_eq!(
            q(Cond::IsNull {
                col: 4,
                negated: false
            }),
            json!({"bool": {"must_not": [{"exists": {"field": "n"}}]}})
        );
        assert_eq!(
            q(Cond::IsNull {
                col: 4,
                negated: true
            }),
            json!({"exists": {"field": "n"}})
        );
        assert_eq!(
            q(Cond::Like {
                col: 2,
                pattern: V(Val::Text("Os%".into()))
            }),
            json!({"prefix": {"city": {"value": "Os"}}})
        );
        assert_eq!(
            q(Cond::Like {
                col: 2,
                pattern: V(Val::Text("%s%".into()))
            }),
            json!({"match_all": {}})
        );
        assert_eq!(
            q(cmp(5, CmpOp::Ge, Val::Ts(1_714_557_600_000_500))),
            json!({"range": {"ts": {"gte": "2024-05-01T10:00:00Z", "format": "strict_date_optional_time||epoch_millis"}}})
        );
        assert_eq!(q(cmp(4, CmpOp::Eq, Val::Null)), json!({"match_none": {}}));
        // Lossy numbers are left to Postgres.
        assert_eq!(
            q(cmp(6, CmpOp::Eq, Val::Float(1.5))),
            json!({"match_all": {}})
        );
        let or = Cond::Or(vec![
            cmp(4, CmpOp::Eq, Val::Int(1)),
            cmp(2, CmpOp::Eq, Val::Text("x".into())),
        ]);
        assert_eq!(
            q(or),
            json!({"bool": {"should": [{"term": {"n": 1}}, {"term": {"city": "x"}}], "minimum_should_match": 1}})
        );
    }

    #[test]
    fn shipping_is_exact_only_where_elasticsearch_compares_like_postgres() {
        let f = fields(&table(), None);
        let ship = |c: &Cond| ship_with(&f, c);
        let cmp = |col, op, v| Cond::Cmp { col, op, arg: V(v) };
        assert_eq!(ship(&cmp(2, CmpOp::Eq, Val::Text("x".into()))), Ship::Exact);
        assert_eq!(
            ship(&cmp(3, CmpOp::Eq, Val::Text("x".into()))),
            Ship::Superset
        );
        assert_eq!(ship(&cmp(2, CmpOp::Gt, Val::Text("x".into()))), Ship::No);
        assert_eq!(ship(&cmp(6, CmpOp::Eq, Val::Float(1.0))), Ship::No);
        assert_eq!(ship(&cmp(5, CmpOp::Ge, Val::Ts(1000))), Ship::Exact);
        assert_eq!(ship(&cmp(5, CmpOp::Ge, Val::Ts(1001))), Ship::Superset);
        assert_eq!(
            ship(&Cond::Like {
                col: 2,
                pattern: V(Val::Text("a_%".into()))
            }),
            Ship::No
        );
    }

    #[test]
    fn sorts_and_base_query() {
        let t = table();
        let f = fields(&t, None);
        let k = |col, desc| SortKey {
            col,
            desc,
            nulls_first: desc,
        };
        assert_eq!(
            sort(&f, &[k(4, true), k(2, false)]).unwrap(),
            vec![
                json!({"n": {"order": "desc", "missing": "_first"}}),
                json!({"city": {"order": "asc", "missing": "_last"}})
            ]
        );
        assert_eq!(sort(&f, &[k(3, false)]), None);
        let base = json!({"term": {"kind": "a"}});
        assert_eq!(
            query(
                &f,
                &[Cond::Cmp {
                    col: 4,
                    op: CmpOp::Eq,
                    arg: V(Val::Int(1))
                }],
                Some(&base)
            ),
            json!({"bool": {"filter": [{"term": {"kind": "a"}}, {"term": {"n": 1}}]}})
        );
    }

    #[test]
    fn dates_over_string_fields_stay_in_postgres() {
        // Flink's JSON writes TIMESTAMP as `2024-05-01 10:00:00`: Elasticsearch maps it as
        // text (keyword sub-field). Comparing our ISO-8601 text with it would miss rows.
        let mut t = table();
        t.columns.push(ColDef {
            name: "window_start".into(),
            attnum: 8,
            ty: Some(PgType::Timestamp),
            type_name: String::new(),
            type_oid: 0,
            typmod: -1,
            opts: Opts::default(),
        });
        let mapping = |p: &str| {
            (p == "window_start")
                .then(|| ("text".to_string(), Some("window_start.keyword".to_string())))
        };
        let f = fields(&t, Some(&mapping));
        let c = Cond::Cmp {
            col: 8,
            op: CmpOp::Eq,
            arg: V(Val::Ts(1_714_557_600_000_000)),
        };
        assert_eq!(ship_with(&f, &c), Ship::No);
        // Mapped as a date (ISO-8601 text), it ships as a range.
        let mapping = |p: &str| (p == "window_start").then(|| ("date".to_string(), None));
        let f = fields(&t, Some(&mapping));
        assert_ne!(ship_with(&f, &c), Ship::No);
    }

    #[test]
    fn documents_by_dotted_paths() {
        let doc = r#"{"a": {"b": {"c": 1}}, "x.y": 2}"#;
        let f: crate::fdw::value::JsonFields = serde_json::from_str(doc).unwrap();
        let get = |p: &str| {
            let t: Vec<String> = p.split('.').map(str::to_string).collect();
            f.convert(&t, Some(p), &PgType::Int8)
        };
        assert_eq!(get("a.b.c"), Some(Ok(Val::Int(1))));
        assert_eq!(get("x.y"), Some(Ok(Val::Int(2))));
        assert_eq!(get("a.z"), None);
        let mut out = Map::new();
        set_field(&mut out, "a.b", json!(1));
        set_field(&mut out, "a.c", json!(2));
        assert_eq!(Value::Object(out), json!({"a": {"b": 1, "c": 2}}));
    }
}
