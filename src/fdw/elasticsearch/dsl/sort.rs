//! ORDER BY keys as an Elasticsearch `sort`, and the ties a scan must fetch past a shipped
//! LIMIT.
//!
//! Postgres sorts the rows again, so a remote sort only matters with LIMIT: the first N rows
//! in Elasticsearch's order must be the first N in Postgres' order. Elasticsearch orders like
//! Postgres *up to ties* on these keys:
//!
//! - keyword (bytes: the C collation, which `pg/plan.rs` checks), integer and boolean fields
//!   compare exactly; missing values sort with `missing: _first/_last` like NULLS FIRST/LAST;
//! - `long` (and `date_nanos`) sort a missing value as Long.MIN/MAX, so NULL ties with a real
//!   i64::MIN/MAX (integers are hedged the same way at their extremes);
//! - `date` is sorted by milliseconds while Postgres reads microseconds: one millisecond is one
//!   tie;
//! - `double` cannot hold NaN or ±Infinity in Elasticsearch (its missing sentinels ±Infinity
//!   never tie with a value), but Lucene orders -0.0 before 0.0 where Postgres sees equals,
//!   which matters when more keys follow.
//!
//! Each of these ties is one contiguous run in Elasticsearch's order, and beyond it the orders
//! agree; so the scan fetches, past the N-th row, every row tied with it ([`tie_prefix`],
//! [`ties`]) and Postgres picks among them.
//!
//! Not exact, never with LIMIT: text (the keyword sub-field misses values above
//! `ignore_above`), `unsigned_long` (its sentinel values are not documented), lossy numbers,
//! `_score`, `_id`, arrays, and fields whose index differs from `_source`.
use super::{field_of, Field, FieldKind, Num};
use crate::fdw::cond::SortKey;
use serde_json::{json, Value};

/// Can the remote side sort by this column like Postgres does, up to the ties the scan
/// fetches (text also needs the C collation, which `pg/plan.rs` checks)?
pub fn sort_exact(f: &[(i16, Field)], attnum: i16) -> bool {
    // With `on_error 'null'`, a value that does not convert is NULL here but sorted by value
    // remotely.
    match field_of(f, attnum).filter(|x| !x.lenient).map(|x| x.kind) {
        Some(FieldKind::Number(n)) => n != Num::UnsignedLong,
        Some(FieldKind::Keyword | FieldKind::Date { .. } | FieldKind::Bool) => true,
        _ => false,
    }
}

/// Every key sorts exactly (see [`sort_exact`]).
pub fn sort_keys_exact(f: &[(i16, Field)], keys: &[SortKey]) -> bool {
    keys.iter().all(|k| sort_exact(f, k.col))
}

/// The `sort` of a search, or None when the keys cannot be sorted remotely exactly (then
/// Postgres sorts everything and LIMIT stays local). `_shard_doc` (added by the scan) breaks
/// ties, which point-in-time paging needs.
pub fn sort(f: &[(i16, Field)], keys: &[SortKey]) -> Option<Vec<Value>> {
    if !sort_keys_exact(f, keys) {
        return None;
    }
    let mut out = vec![];
    for k in keys {
        let fd = field_of(f, k.col)?;
        let order = if k.desc { "desc" } else { "asc" };
        let missing = if k.nulls_first { "_first" } else { "_last" };
        out.push(json!({fd.path.clone(): {"order": order, "missing": missing}}));
    }
    Some(out)
}

/// Past the LIMIT-th row (whose `sort` values are `boundary`), how many leading sort values a
/// following row must share with it to be fetched too (0: none). See the module doc.
pub fn tie_prefix(f: &[(i16, Field)], keys: &[SortKey], boundary: &[Value]) -> usize {
    let mut n = 0;
    for (j, (k, v)) in keys.iter().zip(boundary).enumerate() {
        let Some(fd) = field_of(f, k.col) else {
            return keys.len();
        };
        let extreme = || {
            v.as_i64().is_some_and(|i| {
                [i64::MIN, i64::MAX, i32::MIN as i64, i32::MAX as i64].contains(&i)
            }) || v.as_u64().is_some_and(|u| u > i64::MAX as u64)
                || !v.is_number()
        };
        let risky = match fd.kind {
            FieldKind::Date { nanos: false } => true,
            FieldKind::Date { nanos: true } | FieldKind::Number(Num::Long) => extreme(),
            FieldKind::Number(Num::Double) => v.as_f64().is_none_or(|x| x == 0.0),
            FieldKind::Number(_) | FieldKind::Bool => extreme() && !v.is_boolean(),
            FieldKind::Keyword => false,
            // Not sorted remotely exactly (see `sort`): fetch every tie to be safe.
            _ => true,
        };
        if risky {
            n = j + 1;
        }
    }
    n
}

/// Do two rows' `sort` values agree on the first `n` keys? Numbers compare by value (so -0.0
/// ties with 0.0).
pub fn ties(a: &[Value], b: &[Value], n: usize) -> bool {
    if a.len() < n || b.len() < n {
        return false;
    }
    a.iter().zip(b).take(n).all(|(x, y)| match (x, y) {
        (Value::Number(p), Value::Number(q)) => match (p.as_i64(), q.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (p.as_u64(), q.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => p.as_f64() == q.as_f64(),
            },
        },
        _ => x == y,
    })
}
