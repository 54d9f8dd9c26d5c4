//! WHERE conditions as query clauses. Each condition becomes a [`Q`]: no row, every row, a
//! clause matching exactly (or a superset of) the rows where the condition is TRUE, or
//! nothing Elasticsearch can do. The same function answers the planner ([`super::ship_with`])
//! and builds the query, so the two cannot disagree.
use super::{field_of, like_prefix, Field, FieldKind, Num};
use crate::fdw::cond::{placeholder, CmpOp, Cond, Operand};
use crate::fdw::value::{self, PgType, Val};
use crate::fdw::Ship;
use serde_json::{json, Value};

/// What one condition becomes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Q {
    /// No row: the condition is never TRUE.
    None,
    /// Every row, NULLs included.
    All,
    /// A clause matching exactly (`true`) or a superset of (`false`) the rows where the
    /// condition is TRUE.
    Clause(Value, bool),
    /// Not for Elasticsearch: Postgres filters.
    No,
}

impl Q {
    pub(super) fn ship(&self) -> Ship {
        match self {
            Q::None | Q::All | Q::Clause(_, true) => Ship::Exact,
            Q::Clause(_, false) => Ship::Superset,
            Q::No => Ship::No,
        }
    }

    /// The clause to AND into the query (None: nothing to add).
    pub(super) fn into_json(self) -> Option<Value> {
        match self {
            Q::None => Some(json!({"match_none": {}})),
            Q::All | Q::No => None,
            Q::Clause(v, _) => Some(v),
        }
    }

    fn superset(self) -> Q {
        match self {
            Q::Clause(v, _) => Q::Clause(v, false),
            q => q,
        }
    }
}

fn exact(v: Value) -> Q {
    Q::Clause(v, true)
}

/// Every row where the field is not NULL.
fn exists(fd: &Field) -> Q {
    match fd.kind {
        FieldKind::Id | FieldKind::Index => Q::All,
        _ => exact(json!({"exists": {"field": fd.path}})),
    }
}

/// A superset of some non-NULL rows: every non-NULL row, or (for fields never NULL, where
/// that is every row and would read as exact) nothing shipped.
fn some_rows(fd: &Field) -> Q {
    match exists(fd) {
        Q::All => Q::No,
        e => e.superset(),
    }
}

/// `col <> v` from `col = v`: a non-NULL value that is not `v`. Only an exact equality can be
/// excluded; otherwise every non-NULL row is the superset.
fn not_eq(fd: &Field, eq: Q) -> Q {
    match eq {
        Q::None => exists(fd),
        Q::All => Q::None,
        Q::Clause(c, true) => match exists(fd) {
            Q::Clause(e, _) => exact(json!({"bool": {"filter": [e], "must_not": [c]}})),
            _ => exact(json!({"bool": {"must_not": [c]}})),
        },
        Q::Clause(_, false) => some_rows(fd),
        Q::No => Q::No,
    }
}

/// One condition (resolved values; parameters give the plan-time estimate and placeholders).
pub(super) fn build(f: &[(i16, Field)], c: &Cond) -> Q {
    let q = build_one(f, c);
    match c {
        // A document whose value does not convert reads as NULL (`on_error 'null'`) but still
        // matches remotely: a superset at best.
        Cond::Cmp { col, .. }
        | Cond::In { col, .. }
        | Cond::IsNull { col, .. }
        | Cond::Like { col, .. }
            if field_of(f, *col).is_some_and(|fd| fd.lenient) =>
        {
            q.superset()
        }
        _ => q,
    }
}

fn build_one(f: &[(i16, Field)], c: &Cond) -> Q {
    match c {
        Cond::And(v) => {
            let (mut parts, mut all_exact) = (vec![], true);
            for c in v {
                match build(f, c) {
                    Q::None => return Q::None,
                    Q::All => {}
                    // Left out: the rest is still a superset.
                    Q::No => all_exact = false,
                    Q::Clause(j, e) => {
                        all_exact &= e;
                        parts.push(j);
                    }
                }
            }
            match parts.len() {
                0 if all_exact => Q::All,
                0 => Q::No,
                1 => Q::Clause(parts.remove(0), all_exact),
                _ => Q::Clause(json!({"bool": {"filter": parts}}), all_exact),
            }
        }
        Cond::Or(v) => {
            let (mut arms, mut all_exact) = (vec![], true);
            for c in v {
                match build(f, c) {
                    Q::None => {}
                    Q::All => return Q::All,
                    Q::No => return Q::No,
                    Q::Clause(j, e) => {
                        all_exact &= e;
                        arms.push(j);
                    }
                }
            }
            match arms.len() {
                0 => Q::None,
                1 => Q::Clause(arms.remove(0), all_exact),
                _ => Q::Clause(
                    json!({"bool": {"should": arms, "minimum_should_match": 1}}),
                    all_exact,
                ),
            }
        }
        Cond::IsNull { col, negated } => {
            let Some(fd) = field_of(f, *col) else {
                return Q::No;
            };
            match fd.kind {
                FieldKind::Other | FieldKind::Score => Q::No,
                _ if *negated => exists(fd),
                FieldKind::Id | FieldKind::Index => Q::None,
                // A value that does not convert reads as NULL, yet exists.
                _ if fd.lenient => Q::No,
                _ => exact(json!({"bool": {"must_not": [{"exists": {"field": fd.path}}]}})),
            }
        }
        Cond::Like { col, pattern } => {
            let Some(fd) = field_of(f, *col).filter(|fd| fd.kind == FieldKind::Keyword) else {
                return Q::No;
            };
            match pattern {
                Operand::Val(Val::Null) => Q::None,
                Operand::Val(Val::Text(p)) => match like_prefix(p) {
                    Some(prefix) => exact(json!({"prefix": {fd.path.clone(): {"value": prefix}}})),
                    None => Q::No,
                },
                Operand::Val(_) => Q::No,
                Operand::Param(i) => Q::Clause(
                    json!({"prefix": {fd.path.clone(): {"value": format!("{} (prefix)", placeholder(*i))}}}),
                    false,
                ),
            }
        }
        Cond::In { col, list, negated } => {
            let Some(fd) = field_of(f, *col) else {
                return Q::No;
            };
            match list {
                // `= ANY(NULL)` and `<> ALL(NULL)` are NULL.
                Operand::Val(Val::Null) => Q::None,
                Operand::Val(Val::Array(items)) => in_list(fd, items, *negated),
                Operand::Val(_) => Q::No,
                Operand::Param(i) => {
                    // An empty array, or one holding NULL, is decided by the scan's values.
                    let eq = match param_cmp(fd, CmpOp::Eq, *i) {
                        Q::Clause(v, e) => Q::Clause(any_of(vec![v]), e),
                        q => q,
                    };
                    if *negated {
                        not_eq(fd, eq)
                    } else {
                        eq
                    }
                }
            }
        }
        Cond::Cmp { col, op, arg } => {
            let Some(fd) = field_of(f, *col) else {
                return Q::No;
            };
            match arg {
                Operand::Val(Val::Null) => Q::None,
                Operand::Val(v) => cmp(fd, *op, v),
                Operand::Param(i) => param_cmp(fd, *op, *i),
            }
        }
    }
}

/// `col = ANY(items)` or `col <> ALL(items)` (`negated`), items known.
fn in_list(fd: &Field, items: &[Val], negated: bool) -> Q {
    if !matches!(
        fd.kind,
        FieldKind::Keyword
            | FieldKind::Text
            | FieldKind::Number(_)
            | FieldKind::Date { .. }
            | FieldKind::Bool
            | FieldKind::Id
            | FieldKind::Index
    ) {
        return Q::No;
    }
    let has_null = items.contains(&Val::Null);
    let values = items.iter().filter(|v| **v != Val::Null);
    if negated {
        // `x <> ALL('{}')` is TRUE for every row, NULL included; with a NULL element it is
        // never TRUE.
        if has_null {
            return Q::None;
        }
        if items.is_empty() {
            return Q::All;
        }
        let (mut excluded, mut all_exact) = (vec![], true);
        for v in values {
            match cmp(fd, CmpOp::Eq, v) {
                Q::None => {}
                Q::Clause(c, true) => excluded.push(c),
                Q::Clause(_, false) => all_exact = false,
                Q::All => return Q::None,
                Q::No => return Q::No,
            }
        }
        return match excluded.len() {
            0 if all_exact => exists(fd),
            0 => some_rows(fd),
            _ => match not_eq(fd, exact(any_of(excluded))) {
                Q::Clause(c, _) => Q::Clause(c, all_exact),
                q => q,
            },
        };
    }
    let (mut arms, mut all_exact) = (vec![], true);
    for v in values {
        match cmp(fd, CmpOp::Eq, v) {
            Q::None => {}
            Q::All => return Q::All,
            Q::No => return Q::No,
            Q::Clause(c, e) => {
                all_exact &= e;
                arms.push(c);
            }
        }
    }
    if arms.is_empty() {
        return Q::None;
    }
    Q::Clause(any_of(arms), all_exact)
}

/// Clauses ORed, `term`s on one field merged into `terms` (and ids into one `ids`).
fn any_of(arms: Vec<Value>) -> Value {
    let mut out: Vec<Value> = vec![];
    for a in arms {
        let merged = if let Some(t) = a.get("term").and_then(Value::as_object) {
            t.iter().next().and_then(|(path, v)| {
                out.iter_mut().find_map(|o| {
                    o.get_mut("terms")
                        .and_then(|t| t.get_mut(path))
                        .and_then(Value::as_array_mut)
                        .map(|list| list.push(v.clone()))
                })
            })
        } else if let Some(ids) = a.pointer("/ids/values").and_then(Value::as_array) {
            out.iter_mut().find_map(|o| {
                o.pointer_mut("/ids/values")
                    .and_then(Value::as_array_mut)
                    .map(|list| list.extend(ids.iter().cloned()))
            })
        } else {
            None
        };
        if merged.is_none() {
            let a = match a.get("term").and_then(Value::as_object) {
                Some(t) => match t.iter().next() {
                    Some((path, v)) => json!({"terms": {path.clone(): [v.clone()]}}),
                    None => a,
                },
                None => a,
            };
            out.push(a);
        }
    }
    if out.len() == 1 {
        out.remove(0)
    } else {
        json!({"bool": {"should": out, "minimum_should_match": 1}})
    }
}

/// `col op v` with a known, non-NULL value.
fn cmp(fd: &Field, op: CmpOp, v: &Val) -> Q {
    match fd.kind {
        FieldKind::Other | FieldKind::Score | FieldKind::LossyNumber => Q::No,
        FieldKind::Id => match (op, v) {
            // Ids are 1 to 512 bytes: an empty or longer one matches no document.
            (CmpOp::Eq, Val::Text(s)) if s.is_empty() || s.len() > 512 => Q::None,
            (CmpOp::Eq, Val::Text(s)) => exact(json!({"ids": {"values": [s]}})),
            (CmpOp::Ne, Val::Text(_)) => not_eq(fd, cmp(fd, CmpOp::Eq, v)),
            _ => Q::No,
        },
        // `_index` terms also match wildcard patterns (and remote `cluster:index` names):
        // a superset, and never excluded.
        FieldKind::Index => match (op, v) {
            (CmpOp::Eq, Val::Text(s)) => Q::Clause(json!({"term": {"_index": s}}), false),
            (CmpOp::Ne, Val::Text(_)) => not_eq(fd, cmp(fd, CmpOp::Eq, v)),
            _ => Q::No,
        },
        FieldKind::Keyword => match (op, v) {
            (CmpOp::Eq, Val::Text(s)) => exact(json!({"term": {fd.path.clone(): s}})),
            (CmpOp::Ne, Val::Text(_)) => not_eq(fd, cmp(fd, CmpOp::Eq, v)),
            _ => Q::No,
        },
        FieldKind::Text => match (op, v) {
            (CmpOp::Eq, Val::Text(s)) => text_eq(fd, s),
            (CmpOp::Ne, Val::Text(s)) => not_eq(fd, text_eq(fd, s)),
            _ => Q::No,
        },
        FieldKind::Number(Num::Double) => {
            let x = match v {
                Val::Float(x) => *x,
                Val::Int(i) if i.unsigned_abs() <= 1 << 53 => *i as f64,
                // A numeric constant: Postgres would compare as numeric (float8 → numeric keeps
                // 15 digits), which no double range reproduces safely.
                _ => return Q::No,
            };
            double_cmp(fd, op, x)
        }
        FieldKind::Number(n) => {
            let b = match v {
                Val::Int(i) => Bound::Fin(*i as i128, true),
                Val::Numeric(s) => match parse_numeric(s) {
                    Some(b) => b,
                    None => return Q::No,
                },
                _ => return Q::No,
            };
            int_cmp(fd, range_of(n, fd.col.as_ref()), op, b)
        }
        FieldKind::Bool => match v {
            Val::Bool(b) => bool_cmp(fd, op, *b),
            _ => Q::No,
        },
        FieldKind::Date { nanos } => date_cmp(fd, nanos, op, v),
    }
}

/// Text equality: the exact keyword sub-field when the value fits in it (`ignore_above`), else
/// a phrase match (a superset) when the field's analysis allows.
fn text_eq(fd: &Field, s: &str) -> Q {
    let fits = |limit: Option<u64>| limit.is_none_or(|n| s.encode_utf16().count() as u64 <= n);
    match &fd.keyword_sub {
        Some(sub) if fits(fd.sub_ignore_above) => exact(json!({"term": {sub.clone(): s}})),
        // A value analysed into no token (empty, punctuation, stop words) matches everything.
        _ if fd.phrase => Q::Clause(
            json!({"match_phrase": {fd.path.clone(): {"query": s, "zero_terms_query": "all"}}}),
            false,
        ),
        _ => Q::No,
    }
}

/// A constant compared with an integer field: an exact integer (`Fin(floor, true)`), a
/// fraction (`Fin(floor, false)`), or beyond every integer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    NegInf,
    Fin(i128, bool),
    /// +Infinity, and NaN (which Postgres orders above every number).
    PosInf,
}

/// A `numeric` constant's text (plain decimal, NaN, ±Infinity) as a [`Bound`].
fn parse_numeric(s: &str) -> Option<Bound> {
    let s = s.trim();
    match s {
        "NaN" | "Infinity" | "+Infinity" => return Some(Bound::PosInf),
        "-Infinity" => return Some(Bound::NegInf),
        _ => {}
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let whole = frac.bytes().all(|b| b == b'0');
    if int.len() > 30 {
        // Far beyond any field's range.
        return Some(if neg { Bound::NegInf } else { Bound::PosInf });
    }
    let i: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    Some(match (neg, whole) {
        (false, _) => Bound::Fin(i, whole),
        (true, true) => Bound::Fin(-i, true),
        (true, false) => Bound::Fin(-i - 1, false),
    })
}

/// The integers a field can hold that the column can read.
fn range_of(n: Num, col: Option<&PgType>) -> (i128, i128) {
    let (lo, hi) = n.range();
    let (clo, chi) = match col {
        Some(PgType::Int2) => (i16::MIN as i128, i16::MAX as i128),
        Some(PgType::Int4) => (i32::MIN as i128, i32::MAX as i128),
        _ => (i64::MIN as i128, i64::MAX as i128),
    };
    (lo.max(clo), hi.min(chi))
}

fn int_json(i: i128) -> Value {
    match i64::try_from(i) {
        Ok(x) => Value::from(x),
        Err(_) => u64::try_from(i).map(Value::from).unwrap_or(Value::Null),
    }
}

/// An integer field against a constant: out-of-range constants and fractions become the
/// answer Postgres gives (Elasticsearch would refuse them, HTTP 400).
fn int_cmp(fd: &Field, (lo, hi): (i128, i128), op: CmpOp, b: Bound) -> Q {
    let range = |k: &str, v: i128| exact(json!({"range": {fd.path.clone(): {k: int_json(v)}}}));
    // Every value ≤ k / ≥ k.
    let at_most = |k: i128| match k {
        k if k < lo => Q::None,
        k if k >= hi => exists(fd),
        k => range("lte", k),
    };
    let at_least = |k: i128| match k {
        k if k > hi => Q::None,
        k if k <= lo => exists(fd),
        k => range("gte", k),
    };
    match (op, b) {
        (CmpOp::Eq, Bound::Fin(i, true)) if (lo..=hi).contains(&i) => {
            exact(json!({"term": {fd.path.clone(): int_json(i)}}))
        }
        (CmpOp::Eq, _) => Q::None,
        (CmpOp::Ne, _) => not_eq(fd, int_cmp(fd, (lo, hi), CmpOp::Eq, b)),
        // In range: the operator as written.
        (CmpOp::Lt, Bound::Fin(i, true)) if i > lo && i <= hi => range("lt", i),
        (CmpOp::Le, Bound::Fin(i, true)) if i >= lo && i < hi => range("lte", i),
        (CmpOp::Gt, Bound::Fin(i, true)) if i >= lo && i < hi => range("gt", i),
        (CmpOp::Ge, Bound::Fin(i, true)) if i > lo && i <= hi => range("gte", i),
        (CmpOp::Lt | CmpOp::Le, Bound::NegInf) | (CmpOp::Gt | CmpOp::Ge, Bound::PosInf) => Q::None,
        (CmpOp::Lt | CmpOp::Le, Bound::PosInf) | (CmpOp::Gt | CmpOp::Ge, Bound::NegInf) => {
            exists(fd)
        }
        (CmpOp::Lt, Bound::Fin(i, whole)) => at_most(if whole { i - 1 } else { i }),
        (CmpOp::Le, Bound::Fin(i, _)) => at_most(i),
        (CmpOp::Gt, Bound::Fin(i, _)) => at_least(i + 1),
        (CmpOp::Ge, Bound::Fin(i, whole)) => at_least(if whole { i } else { i + 1 }),
    }
}

/// A double field against a float constant. Elasticsearch doubles are finite (it refuses NaN
/// and ±Infinity), Postgres orders NaN above every number (and NaN = NaN), and Lucene tells
/// -0.0 from 0.0 while Postgres does not.
fn double_cmp(fd: &Field, op: CmpOp, x: f64) -> Q {
    let range = |k: &str, v: f64| exact(json!({"range": {fd.path.clone(): {k: v}}}));
    if x.is_nan() || x == f64::INFINITY {
        return match op {
            CmpOp::Eq | CmpOp::Gt | CmpOp::Ge => Q::None,
            CmpOp::Ne | CmpOp::Lt | CmpOp::Le => exists(fd),
        };
    }
    if x == f64::NEG_INFINITY {
        return match op {
            CmpOp::Eq | CmpOp::Lt | CmpOp::Le => Q::None,
            CmpOp::Ne | CmpOp::Gt | CmpOp::Ge => exists(fd),
        };
    }
    if x == 0.0 {
        // Both zeros, as Postgres compares: -0.0 sorts below 0.0 in Lucene.
        return match op {
            CmpOp::Eq => exact(json!({"range": {fd.path.clone(): {"gte": -0.0, "lte": 0.0}}})),
            CmpOp::Ne => not_eq(fd, double_cmp(fd, CmpOp::Eq, x)),
            CmpOp::Lt => range("lt", -0.0),
            CmpOp::Le => range("lte", 0.0),
            CmpOp::Gt => range("gt", 0.0),
            CmpOp::Ge => range("gte", -0.0),
        };
    }
    match op {
        CmpOp::Eq => exact(json!({"term": {fd.path.clone(): x}})),
        CmpOp::Ne => not_eq(fd, double_cmp(fd, CmpOp::Eq, x)),
        CmpOp::Lt => range("lt", x),
        CmpOp::Le => range("lte", x),
        CmpOp::Gt => range("gt", x),
        CmpOp::Ge => range("gte", x),
    }
}

/// Booleans: false < true, as terms (no range queries).
fn bool_cmp(fd: &Field, op: CmpOp, b: bool) -> Q {
    let term = |t: bool| exact(json!({"term": {fd.path.clone(): t}}));
    match (op, b) {
        (CmpOp::Eq, _) => term(b),
        (CmpOp::Ne, _) => not_eq(fd, term(b)),
        (CmpOp::Lt, true) | (CmpOp::Le, false) => term(false),
        (CmpOp::Gt, false) | (CmpOp::Ge, true) => term(true),
        (CmpOp::Lt, false) | (CmpOp::Gt, true) => Q::None,
        (CmpOp::Le, true) | (CmpOp::Ge, false) => exists(fd),
    }
}

const DAY_US: i128 = 86_400_000_000;
/// The last millisecond a `date_nanos` field holds (2262-04-11T23:47:16.854Z).
const NANOS_MAX_MS: i128 = i64::MAX as i128 / 1_000_000;
const DATE_FORMAT: &str = "strict_date_optional_time||epoch_millis";

/// A date or timestamp column against a constant of its own type (`pg/plan.rs` does not ship
/// cross-type comparisons, which depend on the session time zone).
///
/// Elasticsearch indexes `date` at millisecond precision while Postgres reads `_source` at
/// microseconds (rounding nanoseconds, truncating fractional epoch milliseconds): the filter is
/// always a superset, its bounds widened by a millisecond on each side.
fn date_cmp(fd: &Field, nanos: bool, op: CmpOp, v: &Val) -> Q {
    // The microseconds Postgres keeps, as inclusive bounds.
    let (lo, hi): (Option<i128>, Option<i128>) = match (fd.col.as_ref(), v) {
        (Some(PgType::Timestamptz | PgType::Timestamp), Val::Ts(us)) => {
            let c = *us as i128;
            match op {
                CmpOp::Eq => (Some(c), Some(c)),
                CmpOp::Lt => (None, Some(c - 1)),
                CmpOp::Le => (None, Some(c)),
                CmpOp::Gt => (Some(c + 1), None),
                CmpOp::Ge => (Some(c), None),
                CmpOp::Ne => return not_eq(fd, date_cmp(fd, nanos, CmpOp::Eq, v)),
            }
        }
        (Some(PgType::Date), Val::Date(d)) => {
            let (d0, d1) = (*d as i128 * DAY_US, (*d as i128 + 1) * DAY_US);
            match op {
                CmpOp::Eq => (Some(d0), Some(d1 - 1)),
                CmpOp::Lt => (None, Some(d0 - 1)),
                CmpOp::Le => (None, Some(d1 - 1)),
                CmpOp::Gt => (Some(d1), None),
                CmpOp::Ge => (Some(d0), None),
                CmpOp::Ne => return not_eq(fd, date_cmp(fd, nanos, CmpOp::Eq, v)),
            }
        }
        _ => return Q::No,
    };
    let mut lo = lo.map(|us| us.div_euclid(1000) - 1);
    let mut hi = hi.map(|us| us.div_euclid(1000) + 1);
    if nanos {
        // date_nanos holds 1970 to 2262 only; bounds beyond are decided here.
        if lo.is_some_and(|l| l > NANOS_MAX_MS) || hi.is_some_and(|h| h < 0) {
            return Q::None;
        }
        lo = lo.filter(|l| *l > 0);
        hi = hi.filter(|h| *h < NANOS_MAX_MS);
    }
    let mut body = serde_json::Map::new();
    if let Some(l) = lo {
        body.insert("gte".into(), ms_text(l));
    }
    if let Some(h) = hi {
        body.insert("lte".into(), ms_text(h));
    }
    if body.is_empty() {
        return some_rows(fd);
    }
    body.insert("format".into(), json!(DATE_FORMAT));
    Q::Clause(json!({"range": {fd.path.clone(): body}}), false)
}

/// Epoch milliseconds as Elasticsearch reads them exactly: ISO 8601 with explicit milliseconds
/// (without them, `gt`/`lte` would round up to the end of the second) for years 1 to 9999,
/// else epoch milliseconds.
pub(super) fn ms_text(ms: i128) -> Value {
    const MIN: i128 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
    const MAX: i128 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    if !(MIN..=MAX).contains(&ms) {
        return Value::String(ms.to_string());
    }
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let secs = rem / 1000;
    Value::String(format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        value::format_date(days as i32),
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rem % 1000
    ))
}

/// Plan time (and EXPLAIN before the scan starts): the clause's shape with a placeholder, and
/// how well it will likely ship. The scan rebuilds it from the value and asks again.
fn param_cmp(fd: &Field, op: CmpOp, i: usize) -> Q {
    let ph = Value::String(placeholder(i));
    let path = fd.path.clone();
    let bound = |k: &str| json!({"range": {path.clone(): {k: ph.clone()}}});
    let shape = |exactness: bool| match op {
        CmpOp::Eq | CmpOp::Ne => Q::Clause(json!({"term": {path.clone(): ph.clone()}}), exactness),
        CmpOp::Lt => Q::Clause(bound("lt"), exactness),
        CmpOp::Le => Q::Clause(bound("lte"), exactness),
        CmpOp::Gt => Q::Clause(bound("gt"), exactness),
        CmpOp::Ge => Q::Clause(bound("gte"), exactness),
    };
    let eq_or_ne = |q: Q| match op {
        CmpOp::Ne => not_eq(fd, q),
        _ => q,
    };
    match fd.kind {
        FieldKind::Other | FieldKind::Score | FieldKind::LossyNumber => Q::No,
        FieldKind::Id | FieldKind::Keyword | FieldKind::Index
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) =>
        {
            Q::No
        }
        FieldKind::Id => eq_or_ne(exact(json!({"ids": {"values": [ph]}}))),
        FieldKind::Keyword => eq_or_ne(shape(true)),
        FieldKind::Index => eq_or_ne(shape(false)),
        FieldKind::Text => match op {
            CmpOp::Eq | CmpOp::Ne if fd.keyword_sub.is_some() || fd.phrase => {
                // Exact through the keyword sub-field only if the value fits in it.
                let q = match &fd.keyword_sub {
                    Some(sub) => json!({"term": {sub.clone(): ph}}),
                    None => {
                        json!({"match_phrase": {path.clone(): {"query": ph, "zero_terms_query": "all"}}})
                    }
                };
                eq_or_ne(Q::Clause(q, false))
            }
            _ => Q::No,
        },
        // Integers, doubles and booleans answer every value exactly (out-of-range, NaN…).
        FieldKind::Number(_) | FieldKind::Bool => eq_or_ne(shape(true)),
        FieldKind::Date { .. } => eq_or_ne(shape(false)),
    }
}
