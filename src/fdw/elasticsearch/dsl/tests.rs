//! The translator's original tests (operators, shipping, sorts, documents).
use super::*;
use crate::fdw::cond::{CmpOp, Operand, SortKey};
use crate::fdw::value::Val;
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
        json!({"match_phrase": {"body": {"query": "a b", "zero_terms_query": "all"}}})
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
        // Milliseconds explicit, widened outward (Postgres reads microseconds from `_source`).
        json!({"range": {"ts": {"gte": "2024-05-01T09:59:59.999Z", "format": "strict_date_optional_time||epoch_millis"}}})
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
    // Dates are indexed in milliseconds but read in microseconds: never exact (this used to
    // say Exact for whole milliseconds, which a sub-millisecond `_source` value contradicts).
    assert_eq!(ship(&cmp(5, CmpOp::Ge, Val::Ts(1000))), Ship::Superset);
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
        // The table's query scores (must); pushed conditions filter.
        json!({"bool": {"must": [{"term": {"kind": "a"}}], "filter": [{"term": {"n": 1}}]}})
    );
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
