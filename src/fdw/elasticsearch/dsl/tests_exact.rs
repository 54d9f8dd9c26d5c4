//! Exactness: what randomised comparisons with a plain Postgres table found, one test per
//! finding (arrays, out-of-range integers, empty ids, NaN/±Infinity, ±0, numeric constants,
//! date precision, sort sentinels, `ignore_above`, parameters, cross-type dates).
use super::*;
use crate::fdw::cond::{CmpOp, Operand, SortKey};
use crate::fdw::value::Val;
use crate::fdw::{ColDef, Opts};
use Operand::Val as V;

fn col(name: &str, attnum: i16, ty: PgType) -> ColDef {
    ColDef {
        name: name.into(),
        attnum,
        ty: Some(ty),
        type_name: String::new(),
        type_oid: 0,
        typmod: -1,
        opts: Opts::new(),
    }
}

fn arr(t: PgType) -> PgType {
    PgType::Array(Box::new(t))
}

/// Columns 1…18 over an index mapping (the mapping, not `es_type`, decides).
fn fields_() -> Vec<(i16, Field)> {
    let mut bp = col("code", 18, PgType::Text);
    bp.type_oid = 1042;
    let table = TableDef {
        name: "public.t".into(),
        columns: vec![
            col("_id", 1, PgType::Text),
            col("tags", 2, arr(PgType::Text)),
            col("nums", 3, arr(PgType::Int4)),
            col("i4", 4, PgType::Int4),
            col("i2", 5, PgType::Int2),
            col("i8", 6, PgType::Int8),
            col("f8", 7, PgType::Float8),
            col("ts", 8, PgType::Timestamptz),
            col("tsn", 9, PgType::Timestamptz),
            col("day", 10, PgType::Date),
            col("body", 11, PgType::Text),
            col("kw", 12, PgType::Text),
            col("city", 13, PgType::Text),
            col("ul", 14, PgType::Int8),
            col("b", 15, PgType::Bool),
            col("num", 16, PgType::Numeric),
            col("nrm", 17, PgType::Text),
            bp,
        ],
        ..Default::default()
    };
    let lookup = |path: &str| {
        let (ty, sub, altered) = match path {
            "tags" | "city" | "code" => ("keyword", None, false),
            "nums" | "i4" => ("integer", None, false),
            "i2" => ("byte", None, false),
            "i8" | "num" => ("long", None, false),
            "f8" => ("double", None, false),
            "ts" | "day" => ("date", None, false),
            "tsn" => ("date_nanos", None, false),
            "body" => ("text", Some(("body.kw".to_string(), Some(10))), false),
            // ignore_above / normalizer: the index does not hold what `_source` does.
            "kw" | "nrm" => ("keyword", None, true),
            "ul" => ("unsigned_long", None, false),
            "b" => ("boolean", None, false),
            _ => return None,
        };
        Some(MappedField {
            ty: ty.into(),
            keyword_sub: sub,
            altered,
        })
    };
    fields(&table, Some(&lookup))
}

fn cmp(col: i16, op: CmpOp, v: Val) -> Cond {
    Cond::Cmp { col, op, arg: V(v) }
}

fn in_(col: i16, items: Vec<Val>, negated: bool) -> Cond {
    Cond::In {
        col,
        list: V(Val::Array(items)),
        negated,
    }
}

/// The query and how it ships.
fn q(c: Cond) -> (Value, Ship) {
    let f = fields_();
    (query(&f, std::slice::from_ref(&c), None), ship_with(&f, &c))
}

fn none() -> (Value, Ship) {
    (json!({"match_none": {}}), Ship::Exact)
}

fn all() -> (Value, Ship) {
    (json!({"match_all": {}}), Ship::Exact)
}

fn exists(path: &str) -> (Value, Ship) {
    (json!({"exists": {"field": path}}), Ship::Exact)
}

fn range(path: &str, op: &str, v: Value) -> (Value, Ship) {
    (json!({"range": {path: {op: v}}}), Ship::Exact)
}

#[test]
fn array_columns_are_never_filtered_or_sorted_remotely() {
    let f = fields_();
    for c in [
        cmp(2, CmpOp::Eq, Val::Array(vec![])),
        cmp(3, CmpOp::Ne, Val::Array(vec![Val::Int(1)])),
        in_(3, vec![Val::Int(1)], true),
        Cond::IsNull {
            col: 2,
            negated: false,
        },
        Cond::IsNull {
            col: 3,
            negated: true,
        },
    ] {
        assert_eq!(ship_with(&f, &c), Ship::No, "{c:?}");
        assert_eq!(query(&f, &[c], None), json!({"match_all": {}}));
    }
    let key = SortKey {
        col: 2,
        desc: false,
        nulls_first: false,
    };
    assert!(!sort_exact(&f, 2) && !sort_exact(&f, 3));
    assert_eq!(sort(&f, &[key]), None);
}

#[test]
fn any_and_all_over_empty_or_null_arrays() {
    // = ANY('{}') and = ANY('{NULL}') are never TRUE.
    assert_eq!(q(in_(4, vec![], false)), none());
    assert_eq!(q(in_(4, vec![Val::Null], false)), none());
    assert_eq!(
        q(in_(4, vec![Val::Int(1), Val::Null], false)).0,
        json!({"terms": {"i4": [1]}})
    );
    // <> ALL('{}') is TRUE for every row, NULLs included (no `exists`).
    assert_eq!(q(in_(4, vec![], true)), all());
    // <> ALL with a NULL element is never TRUE.
    assert_eq!(q(in_(4, vec![Val::Int(1), Val::Null], true)), none());
    assert_eq!(
        q(in_(4, vec![Val::Int(1), Val::Int(2)], true)),
        (
            json!({"bool": {"filter": [{"exists": {"field": "i4"}}], "must_not": [{"terms": {"i4": [1, 2]}}]}}),
            Ship::Exact
        )
    );
    // Out-of-range elements can match nothing: dropped (no HTTP 400).
    assert_eq!(
        q(in_(4, vec![Val::Int(3_000_000_000), Val::Int(1)], false)),
        (json!({"terms": {"i4": [1]}}), Ship::Exact)
    );
    assert_eq!(q(in_(4, vec![Val::Int(3_000_000_000)], true)), exists("i4"));
    // = ANY(NULL::int[]) is NULL.
    let c = Cond::In {
        col: 4,
        list: V(Val::Null),
        negated: true,
    };
    assert_eq!(q(c), none());
}

#[test]
fn integers_outside_the_field_range_get_the_postgres_answer() {
    let big = || Val::Int(3_000_000_000);
    assert_eq!(q(cmp(4, CmpOp::Eq, big())), none());
    assert_eq!(q(cmp(4, CmpOp::Ne, big())), exists("i4"));
    assert_eq!(q(cmp(4, CmpOp::Lt, big())), exists("i4"));
    assert_eq!(q(cmp(4, CmpOp::Le, big())), exists("i4"));
    assert_eq!(q(cmp(4, CmpOp::Gt, big())), none());
    assert_eq!(q(cmp(4, CmpOp::Ge, Val::Int(-3_000_000_000))), exists("i4"));
    assert_eq!(q(cmp(4, CmpOp::Lt, Val::Int(-3_000_000_000))), none());
    // A byte field under a smallint column: the field's range decides.
    assert_eq!(q(cmp(5, CmpOp::Eq, Val::Int(200))), none());
    assert_eq!(q(cmp(5, CmpOp::Gt, Val::Int(127))), none());
    assert_eq!(q(cmp(5, CmpOp::Ge, Val::Int(-128))), exists("i2"));
    assert_eq!(
        q(cmp(5, CmpOp::Lt, Val::Int(100))),
        range("i2", "lt", json!(100))
    );
    // unsigned_long holds no negative values; long its whole range.
    assert_eq!(q(cmp(14, CmpOp::Lt, Val::Int(0))), none());
    assert_eq!(q(cmp(14, CmpOp::Ge, Val::Int(0))), exists("ul"));
    assert_eq!(q(cmp(14, CmpOp::Eq, Val::Int(-1))), none());
    assert_eq!(
        q(cmp(6, CmpOp::Eq, Val::Int(i64::MAX))).0,
        json!({"term": {"i8": i64::MAX}})
    );
    assert_eq!(q(cmp(6, CmpOp::Gt, Val::Int(i64::MAX))), none());
    assert_eq!(q(cmp(6, CmpOp::Lt, Val::Int(i64::MIN))), none());
    assert_eq!(q(cmp(6, CmpOp::Le, Val::Int(i64::MAX))), exists("i8"));
}

#[test]
fn numeric_constants_against_integer_fields() {
    let n = |s: &str| Val::Numeric(s.into());
    assert_eq!(q(cmp(4, CmpOp::Eq, n("1.5"))), none());
    assert_eq!(q(cmp(4, CmpOp::Ne, n("1.5"))), exists("i4"));
    assert_eq!(
        q(cmp(4, CmpOp::Eq, n("2.000"))).0,
        json!({"term": {"i4": 2}})
    );
    assert_eq!(q(cmp(4, CmpOp::Lt, n("1.5"))), range("i4", "lte", json!(1)));
    assert_eq!(q(cmp(4, CmpOp::Le, n("1.5"))), range("i4", "lte", json!(1)));
    assert_eq!(q(cmp(4, CmpOp::Gt, n("1.5"))), range("i4", "gte", json!(2)));
    assert_eq!(q(cmp(4, CmpOp::Ge, n("1.5"))), range("i4", "gte", json!(2)));
    assert_eq!(
        q(cmp(4, CmpOp::Ge, n("-1.5"))),
        range("i4", "gte", json!(-1))
    );
    assert_eq!(
        q(cmp(4, CmpOp::Le, n("-1.5"))),
        range("i4", "lte", json!(-2))
    );
    assert_eq!(
        q(cmp(4, CmpOp::Lt, n("-0.5"))),
        range("i4", "lte", json!(-1))
    );
    assert_eq!(q(cmp(4, CmpOp::Gt, n("1e3"))).1, Ship::No);
    // numeric NaN sorts above every number; ±Infinity and huge values are beyond the field.
    assert_eq!(q(cmp(4, CmpOp::Lt, n("NaN"))), exists("i4"));
    assert_eq!(q(cmp(4, CmpOp::Eq, n("NaN"))), none());
    assert_eq!(q(cmp(4, CmpOp::Gt, n("-Infinity"))), exists("i4"));
    assert_eq!(
        q(cmp(4, CmpOp::Ge, n("99999999999999999999999999999999999"))),
        none()
    );
    // A numeric column over an integer field may hold a coerced fraction: only NULL tests.
    assert_eq!(q(cmp(16, CmpOp::Eq, n("1"))).1, Ship::No);
    assert_eq!(
        q(Cond::IsNull {
            col: 16,
            negated: true
        }),
        exists("num")
    );
}

#[test]
fn empty_ids_match_nothing() {
    let t = |s: &str| Val::Text(s.into());
    assert_eq!(q(cmp(1, CmpOp::Eq, t(""))), none());
    assert_eq!(q(cmp(1, CmpOp::Ne, t(""))), all());
    assert_eq!(q(cmp(1, CmpOp::Eq, t(&"x".repeat(513)))), none());
    assert_eq!(
        q(in_(1, vec![t(""), t("a"), t("b")], false)),
        (json!({"ids": {"values": ["a", "b"]}}), Ship::Exact)
    );
    assert_eq!(
        q(in_(1, vec![t(""), t("a")], true)),
        (
            json!({"bool": {"must_not": [{"ids": {"values": ["a"]}}]}}),
            Ship::Exact
        )
    );
    assert_eq!(q(in_(1, vec![t("")], false)), none());
    assert_eq!(q(in_(1, vec![t("")], true)), all());
}

#[test]
fn nan_and_infinities_are_decided_not_sent() {
    const INF: f64 = f64::INFINITY;
    const NAN: f64 = f64::NAN;
    let f = Val::Float;
    assert_eq!(q(cmp(7, CmpOp::Lt, f(INF))), exists("f8"));
    assert_eq!(q(cmp(7, CmpOp::Le, f(NAN))), exists("f8"));
    assert_eq!(q(cmp(7, CmpOp::Lt, f(NAN))), exists("f8"));
    assert_eq!(q(cmp(7, CmpOp::Eq, f(NAN))), none());
    assert_eq!(q(cmp(7, CmpOp::Ne, f(NAN))), exists("f8"));
    assert_eq!(q(cmp(7, CmpOp::Gt, f(NAN))), none());
    assert_eq!(q(cmp(7, CmpOp::Ge, f(INF))), none());
    assert_eq!(q(cmp(7, CmpOp::Eq, f(INF))), none());
    assert_eq!(q(cmp(7, CmpOp::Lt, f(-INF))), none());
    assert_eq!(q(cmp(7, CmpOp::Le, f(-INF))), none());
    assert_eq!(q(cmp(7, CmpOp::Gt, f(-INF))), exists("f8"));
    assert_eq!(q(cmp(7, CmpOp::Ne, f(-INF))), exists("f8"));
    assert_eq!(
        q(in_(7, vec![f(NAN), f(1.5)], false)).0,
        json!({"terms": {"f8": [1.5]}})
    );
    // No non-finite number ever reaches the JSON (it would serialise as null).
    let c = in_(7, vec![f(NAN), f(INF), f(-INF)], true);
    assert_eq!(q(c), exists("f8"));
}

#[test]
fn both_zeros_compare_equal() {
    for z in [0.0, -0.0] {
        let (v, s) = q(cmp(7, CmpOp::Eq, Val::Float(z)));
        assert_eq!(s, Ship::Exact);
        assert_eq!(v.to_string(), r#"{"range":{"f8":{"gte":-0.0,"lte":0.0}}}"#);
        let text = |op| q(cmp(7, op, Val::Float(z))).0.to_string();
        assert_eq!(text(CmpOp::Ge), r#"{"range":{"f8":{"gte":-0.0}}}"#);
        assert_eq!(text(CmpOp::Lt), r#"{"range":{"f8":{"lt":-0.0}}}"#);
        assert_eq!(text(CmpOp::Le), r#"{"range":{"f8":{"lte":0.0}}}"#);
        assert_eq!(text(CmpOp::Gt), r#"{"range":{"f8":{"gt":0.0}}}"#);
        assert_eq!(
            text(CmpOp::Ne),
            r#"{"bool":{"filter":[{"exists":{"field":"f8"}}],"must_not":[{"range":{"f8":{"gte":-0.0,"lte":0.0}}}]}}"#
        );
    }
    assert_eq!(
        q(cmp(7, CmpOp::Eq, Val::Float(1.5))).0,
        json!({"term": {"f8": 1.5}})
    );
}

#[test]
fn numeric_constants_against_doubles_stay_in_postgres() {
    // float8 = numeric would compare as numeric (float8 → numeric keeps 15 digits): no double
    // range reproduces that safely.
    let c = cmp(7, CmpOp::Eq, Val::Numeric("0.1".into()));
    assert_eq!(q(c).1, Ship::No);
    // Integers a double holds exactly are fine; larger ones are not sent.
    assert_eq!(
        q(cmp(7, CmpOp::Gt, Val::Int(3))).0,
        json!({"range": {"f8": {"gt": 3.0}}})
    );
    assert_eq!(q(cmp(7, CmpOp::Gt, Val::Int((1 << 53) + 1))).1, Ship::No);
}

#[test]
fn date_bounds_carry_milliseconds_and_round_outward() {
    let base = 1_714_557_600_000_000i64; // 2024-05-01T10:00:00Z
    let r = |op, us: i64| q(cmp(8, op, Val::Ts(us)));
    let fmt = "strict_date_optional_time||epoch_millis";
    let one = |k: &str, v: &str| {
        (
            json!({"range": {"ts": {k: v, "format": fmt}}}),
            Ship::Superset,
        )
    };
    assert_eq!(r(CmpOp::Gt, base), one("gte", "2024-05-01T09:59:59.999Z"));
    assert_eq!(r(CmpOp::Le, base), one("lte", "2024-05-01T10:00:00.001Z"));
    assert_eq!(r(CmpOp::Lt, base), one("lte", "2024-05-01T10:00:00.000Z"));
    assert_eq!(r(CmpOp::Ge, base), one("gte", "2024-05-01T09:59:59.999Z"));
    assert_eq!(
        r(CmpOp::Le, base + 500),
        one("lte", "2024-05-01T10:00:00.001Z")
    );
    assert_eq!(
        r(CmpOp::Gt, base + 999),
        one("gte", "2024-05-01T10:00:00.000Z")
    );
    assert_eq!(
        r(CmpOp::Eq, base + 1500),
        (
            json!({"range": {"ts": {"gte": "2024-05-01T10:00:00.000Z", "lte": "2024-05-01T10:00:00.002Z", "format": fmt}}}),
            Ship::Superset
        )
    );
    // <> cannot exclude a millisecond that holds other microseconds.
    assert_eq!(
        r(CmpOp::Ne, base),
        (json!({"exists": {"field": "ts"}}), Ship::Superset)
    );
    // Beyond year 9999: epoch milliseconds.
    let far = 253_402_300_800_000_000i64; // 10000-01-01
    assert_eq!(
        r(CmpOp::Ge, far).0,
        json!({"range": {"ts": {"gte": "9999-12-31T23:59:59.999Z", "format": fmt}}})
    );
    assert_eq!(
        r(CmpOp::Ge, far + 1000).0,
        json!({"range": {"ts": {"gte": "253402300800000", "format": fmt}}})
    );
    // A date column: the whole UTC day, widened.
    let d = q(cmp(10, CmpOp::Eq, Val::Date(19846))); // 2024-05-03
    assert_eq!(
        d.0,
        json!({"range": {"day": {"gte": "2024-05-02T23:59:59.999Z", "lte": "2024-05-04T00:00:00.000Z", "format": fmt}}})
    );
    // date_nanos holds 1970 to 2262 only.
    let y1960 = -315_619_200_000_000i64;
    assert_eq!(q(cmp(9, CmpOp::Lt, Val::Ts(y1960))), none());
    assert_eq!(
        q(cmp(9, CmpOp::Ge, Val::Ts(y1960))),
        (json!({"exists": {"field": "tsn"}}), Ship::Superset)
    );
    assert_eq!(q(cmp(9, CmpOp::Gt, Val::Ts(far * 30))), none());
}

#[test]
fn cross_type_dates_are_not_shipped() {
    // pg/plan.rs refuses them; the translator does too if one slips through.
    assert_eq!(q(cmp(8, CmpOp::Ne, Val::Date(19846))).1, Ship::No);
    assert_eq!(q(cmp(10, CmpOp::Eq, Val::Ts(0))).1, Ship::No);
}

#[test]
fn long_sorts_fetch_the_ties_of_their_null_sentinel() {
    let f = fields_();
    let k = |col, desc| SortKey {
        col,
        desc,
        nulls_first: desc,
    };
    for c in [4, 5, 6, 7, 8, 9, 13, 15] {
        assert!(sort_exact(&f, c), "{c}");
    }
    // unsigned_long, text, keyword with ignore_above, numeric over long: Postgres sorts.
    for c in [11, 12, 14, 16, 17] {
        assert!(!sort_exact(&f, c), "{c}");
        assert_eq!(sort(&f, &[k(c, false)]), None);
    }
    let keys = [k(6, true), k(13, false)];
    let sd = json!(7); // _shard_doc
                       // i64::MAX ties with NULL (Long.MAX): rows sharing it are fetched past LIMIT.
    let b = [json!(i64::MAX), json!("x"), sd.clone()];
    assert_eq!(tie_prefix(&f, &keys, &b), 1);
    assert!(ties(&b, &[json!(i64::MAX), json!("a"), json!(1)], 1));
    assert!(!ties(&b, &[json!(i64::MAX - 1), json!("x"), json!(1)], 1));
    assert_eq!(
        tie_prefix(&f, &keys, &[json!(5), json!("x"), sd.clone()]),
        0
    );
    // Milliseconds tie in `date`; -0.0 ties with 0.0 in doubles.
    assert_eq!(
        tie_prefix(
            &f,
            &[k(13, false), k(8, false)],
            &[json!("a"), json!(1), sd.clone()]
        ),
        2
    );
    assert_eq!(
        tie_prefix(
            &f,
            &[k(7, false), k(13, false)],
            &[json!(-0.0), json!("a"), sd.clone()]
        ),
        1
    );
    assert_eq!(
        tie_prefix(
            &f,
            &[k(7, false), k(13, false)],
            &[json!(2.5), json!("a"), sd]
        ),
        0
    );
    assert!(ties(&[json!(-0.0)], &[json!(0.0)], 1));
    assert!(!ties(&[json!(1)], &[], 1));
}

#[test]
fn keyword_sub_fields_only_hold_values_up_to_ignore_above() {
    let t = |s: &str| Val::Text(s.into());
    assert_eq!(
        q(cmp(11, CmpOp::Eq, t("short"))),
        (json!({"term": {"body.kw": "short"}}), Ship::Exact)
    );
    assert_eq!(
        q(cmp(11, CmpOp::Eq, t("longer than ten"))),
        (
            json!({"match_phrase": {"body": {"query": "longer than ten", "zero_terms_query": "all"}}}),
            Ship::Superset
        )
    );
    // Elasticsearch counts UTF-16 units: 5 emoji are 10, 6 are 12.
    assert_eq!(q(cmp(11, CmpOp::Eq, t(&"😀".repeat(5)))).1, Ship::Exact);
    assert_eq!(q(cmp(11, CmpOp::Eq, t(&"😀".repeat(6)))).1, Ship::Superset);
    // <> excludes through the sub-field only what it holds.
    assert_eq!(
        q(cmp(11, CmpOp::Ne, t("short"))),
        (
            json!({"bool": {"filter": [{"exists": {"field": "body"}}], "must_not": [{"term": {"body.kw": "short"}}]}}),
            Ship::Exact
        )
    );
    assert_eq!(
        q(cmp(11, CmpOp::Ne, t("longer than ten"))),
        (json!({"exists": {"field": "body"}}), Ship::Superset)
    );
    assert_eq!(
        q(in_(11, vec![t("a"), t("longer than ten")], false)).1,
        Ship::Superset
    );
    // A keyword field with ignore_above (or a normalizer) does not hold every value: nothing
    // ships, not even IS NULL.
    for c in [12, 17] {
        for cond in [
            cmp(c, CmpOp::Eq, t("a")),
            cmp(c, CmpOp::Ne, t("a")),
            Cond::IsNull {
                col: c,
                negated: false,
            },
            Cond::Like {
                col: c,
                pattern: V(t("a%")),
            },
        ] {
            assert_eq!(q(cond).1, Ship::No);
        }
    }
    // char(n) compares ignoring trailing blanks.
    assert_eq!(q(cmp(18, CmpOp::Eq, t("a"))).1, Ship::No);
    assert_eq!(q(cmp(13, CmpOp::Eq, t("a"))).1, Ship::Exact);
}

#[test]
fn parameters_are_decided_by_their_values_at_scan_time() {
    let f = fields_();
    let p = |col, op| Cond::Cmp {
        col,
        op,
        arg: Operand::Param(0),
    };
    // Plan time: an estimate (the scan asks again with the value and drops LIMIT if needed).
    assert_eq!(ship_with(&f, &p(4, CmpOp::Eq)), Ship::Exact);
    assert_eq!(ship_with(&f, &p(7, CmpOp::Lt)), Ship::Exact);
    assert_eq!(ship_with(&f, &p(11, CmpOp::Eq)), Ship::Superset);
    assert_eq!(ship_with(&f, &p(8, CmpOp::Ge)), Ship::Superset);
    assert_eq!(ship_with(&f, &p(13, CmpOp::Lt)), Ship::No);
    assert_eq!(
        query(&f, &[p(4, CmpOp::Eq)], None),
        json!({"term": {"i4": "$param1"}})
    );
    let at = |c: Cond, v: Val| {
        let r = c.resolve(&[v]);
        (query(&f, std::slice::from_ref(&r), None), ship_with(&f, &r))
    };
    assert_eq!(at(p(4, CmpOp::Eq), Val::Int(3_000_000_000)), none());
    assert_eq!(at(p(4, CmpOp::Ne), Val::Int(3_000_000_000)), exists("i4"));
    assert_eq!(at(p(7, CmpOp::Gt), Val::Float(f64::NAN)), none());
    assert_eq!(at(p(7, CmpOp::Le), Val::Float(f64::NAN)), exists("f8"));
    assert_eq!(at(p(1, CmpOp::Eq), Val::Text(String::new())), none());
    assert_eq!(at(p(11, CmpOp::Eq), Val::Text("x".into())).1, Ship::Exact);
    assert_eq!(
        at(p(11, CmpOp::Eq), Val::Text("longer than ten".into())).1,
        Ship::Superset
    );
    assert_eq!(at(p(4, CmpOp::Eq), Val::Null), none());
    // A value of an unexpected type is left to Postgres.
    assert_eq!(at(p(4, CmpOp::Eq), Val::Float(1.5)).1, Ship::No);
    let any = |negated| Cond::In {
        col: 4,
        list: Operand::Param(0),
        negated,
    };
    assert_eq!(at(any(true), Val::Array(vec![])), all());
    assert_eq!(at(any(false), Val::Array(vec![])), none());
    assert_eq!(at(any(true), Val::Array(vec![Val::Null])), none());
}

#[test]
fn booleans_compare_as_false_before_true() {
    let b = |op, v| q(cmp(15, op, Val::Bool(v)));
    let term = |v: bool| (json!({"term": {"b": v}}), Ship::Exact);
    assert_eq!(b(CmpOp::Lt, true), term(false));
    assert_eq!(b(CmpOp::Ge, true), term(true));
    assert_eq!(b(CmpOp::Lt, false), none());
    assert_eq!(b(CmpOp::Le, true), exists("b"));
    assert_eq!(b(CmpOp::Gt, false), term(true));
}

#[test]
fn or_and_and_keep_the_weakest_exactness() {
    let f = fields_();
    // An arm Postgres must filter makes the whole OR local; an AND keeps the rest.
    let or = Cond::Or(vec![
        cmp(4, CmpOp::Eq, Val::Int(1)),
        cmp(13, CmpOp::Gt, Val::Text("a".into())),
    ]);
    assert_eq!(ship_with(&f, &or), Ship::No);
    let and = Cond::And(vec![
        cmp(4, CmpOp::Eq, Val::Int(1)),
        cmp(13, CmpOp::Gt, Val::Text("a".into())),
    ]);
    assert_eq!(ship_with(&f, &and), Ship::Superset);
    assert_eq!(query(&f, &[and], None), json!({"term": {"i4": 1}}));
    // An arm that matches nothing drops out; one that matches all rows wins.
    let or = Cond::Or(vec![
        cmp(4, CmpOp::Eq, Val::Int(3_000_000_000)),
        cmp(4, CmpOp::Eq, Val::Int(2)),
    ]);
    assert_eq!(q(or), (json!({"term": {"i4": 2}}), Ship::Exact));
    let or = Cond::Or(vec![in_(4, vec![], true), cmp(4, CmpOp::Eq, Val::Int(2))]);
    assert_eq!(q(or), all());
}

#[test]
fn is_null_stays_local_when_unconvertible_values_read_as_null() {
    let mut t = TableDef {
        columns: vec![col("n", 1, PgType::Int8)],
        ..Default::default()
    };
    t.table_opts.insert("on_error".into(), "null".into());
    let f = fields(&t, None);
    let is_null = |negated| Cond::IsNull { col: 1, negated };
    assert_eq!(ship_with(&f, &is_null(false)), Ship::No);
    // Other conditions stay supersets: Postgres drops what did not convert.
    assert_eq!(ship_with(&f, &is_null(true)), Ship::Superset);
    assert_eq!(
        ship_with(&f, &cmp(1, CmpOp::Eq, Val::Int(5))),
        Ship::Superset
    );
    assert_eq!(ship_with(&f, &cmp(1, CmpOp::Eq, Val::Null)), Ship::Exact);
    assert!(!sort_exact(&f, 1));
    assert_eq!(
        ship_with(
            &fields(
                &TableDef {
                    columns: vec![col("n", 1, PgType::Int8)],
                    ..Default::default()
                },
                None
            ),
            &is_null(false)
        ),
        Ship::Exact
    );
}

#[test]
fn nested_doubles_ship_like_top_level_ones() {
    // A nested value is read through serde_json's Value: with the float_roundtrip feature its
    // float parsing is exact, so the value Postgres sees is the one Elasticsearch indexed.
    let mut c = col("x", 1, PgType::Float8);
    c.opts.insert("field".into(), "a.b".into());
    c.opts.insert("es_type".into(), "double".into());
    let t = TableDef {
        columns: vec![c],
        ..Default::default()
    };
    let f = fields(&t, None);
    assert_eq!(f[0].1.kind, FieldKind::Number(Num::Double));
    assert_ne!(ship_with(&f, &cmp(1, CmpOp::Eq, Val::Float(0.5))), Ship::No);
    let v: Value = serde_json::from_str("0.0010698585149948765").unwrap_or_default();
    assert_eq!(v.as_f64(), "0.0010698585149948765".parse::<f64>().ok());
}

#[test]
fn index_names_are_patterns_remotely() {
    let t = TableDef {
        columns: vec![col("_index", 1, PgType::Text)],
        ..Default::default()
    };
    let f = fields(&t, None);
    let c = |op| cmp(1, op, Val::Text("it_*".into()));
    // `_index: it_*` matches every index named so; Postgres compares the text.
    assert_eq!(ship_with(&f, &c(CmpOp::Eq)), Ship::Superset);
    assert_eq!(ship_with(&f, &c(CmpOp::Ne)), Ship::No);
    assert_eq!(
        ship_with(&f, &in_(1, vec![Val::Text("a".into())], true)),
        Ship::No
    );
    assert_eq!(
        ship_with(
            &f,
            &Cond::IsNull {
                col: 1,
                negated: false
            }
        ),
        Ship::Exact
    );
}

#[test]
fn dates_over_string_fields_stay_in_postgres() {
    // Flink's JSON writes TIMESTAMP as `2024-05-01 10:00:00`: Elasticsearch maps it as text
    // (keyword sub-field). Comparing our ISO-8601 text with it would miss rows.
    let t = TableDef {
        columns: vec![col("window_start", 1, PgType::Timestamp)],
        ..Default::default()
    };
    let c = cmp(1, CmpOp::Eq, Val::Ts(1_714_557_600_000_000));
    for ty in ["text", "keyword"] {
        let mut t = t.clone();
        t.columns[0].opts.insert("es_type".into(), ty.into());
        assert_eq!(ship_with(&fields(&t, None), &c), Ship::No, "{ty}");
    }
    let mut t = t.clone();
    t.columns[0].opts.insert("es_type".into(), "date".into());
    assert_ne!(ship_with(&fields(&t, None), &c), Ship::No);
}
