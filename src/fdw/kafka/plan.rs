//! Pure parts of the Kafka wrapper: which offsets of which partitions a WHERE clause needs,
//! and how a message becomes a row (tolerant decoding).
use crate::fdw::cond::{CmpOp, Cond, Operand};
use crate::fdw::value::{self, JsonFields, PgType, Val};
use crate::fdw::{ColDef, Ship, TableDef};
use serde_json::Value;

/// What a column of a Kafka table holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ColKind {
    Partition,
    Offset,
    Timestamp,
    Key(PgType),
    Headers,
    Error,
    /// The whole value (`_value`, or the only value column of a `text` table).
    Value(PgType),
    /// A field of a JSON value, as JSON-pointer tokens.
    Field(Vec<String>, PgType),
    /// A field of a CSV value (0-based).
    Csv(usize, PgType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
    Csv,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Format {
        match s {
            Some("text") => Format::Text,
            Some("csv") => Format::Csv,
            _ => Format::Json,
        }
    }
}

/// What to do with a message whose value cannot be decoded into its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Affected columns NULL, `_error` says why (default).
    Null,
    /// The scan fails.
    Error,
    /// The message is left out.
    Skip,
}

impl OnError {
    pub fn parse(s: Option<&str>) -> OnError {
        match s {
            Some("error") => OnError::Error,
            Some("skip") => OnError::Skip,
            _ => OnError::Null,
        }
    }
}

/// A JSON pointer (`/a/b`) or dotted path (`a.b`) as tokens.
pub fn path_tokens(path: &str) -> Vec<String> {
    if let Some(p) = path.strip_prefix('/') {
        p.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect()
    } else {
        path.split('.').map(str::to_string).collect()
    }
}

/// The role of every column of `table` (in table order).
pub fn col_kinds(table: &TableDef) -> Vec<(i16, ColKind)> {
    let format = Format::parse(table.opt("format"));
    let value_cols = table
        .columns
        .iter()
        .filter(|c| !c.name.starts_with('_'))
        .count();
    let mut csv_index = 0usize;
    table
        .columns
        .iter()
        .map(|c: &ColDef| {
            let ty = c.ty.clone().unwrap_or(PgType::Text);
            let kind = match c.name.as_str() {
                "_partition" => ColKind::Partition,
                "_offset" => ColKind::Offset,
                "_timestamp" => ColKind::Timestamp,
                "_key" => ColKind::Key(ty),
                "_headers" => ColKind::Headers,
                "_error" => ColKind::Error,
                "_value" => ColKind::Value(ty),
                name => match format {
                    Format::Json => ColKind::Field(
                        path_tokens(c.opts.get("path").map(String::as_str).unwrap_or(name)),
                        ty,
                    ),
                    Format::Text if value_cols == 1 => ColKind::Value(ty),
                    Format::Text => ColKind::Value(ty),
                    Format::Csv => {
                        let i = c
                            .opts
                            .get("index")
                            .and_then(|v| v.parse::<usize>().ok())
                            .map(|i| i.saturating_sub(1))
                            .unwrap_or(csv_index);
                        csv_index += 1;
                        ColKind::Csv(i, ty)
                    }
                },
            };
            (c.attnum, kind)
        })
        .collect()
}

/// Offsets and timestamps a partition must be read between (offsets: `[off_lo, off_hi)`,
/// timestamps in epoch ms: `[ts_lo, ts_hi)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub empty: bool,
    pub off_lo: i64,
    pub off_hi: i64,
    pub ts_lo: Option<i64>,
    pub ts_hi: Option<i64>,
}

impl Bounds {
    pub const ALL: Bounds = Bounds {
        empty: false,
        off_lo: 0,
        off_hi: i64::MAX,
        ts_lo: None,
        ts_hi: None,
    };
    pub const NONE: Bounds = Bounds {
        empty: true,
        off_lo: 0,
        off_hi: 0,
        ts_lo: None,
        ts_hi: None,
    };

    fn and(self, o: Bounds) -> Bounds {
        if self.empty || o.empty {
            return Bounds::NONE;
        }
        let b = Bounds {
            empty: false,
            off_lo: self.off_lo.max(o.off_lo),
            off_hi: self.off_hi.min(o.off_hi),
            ts_lo: max_opt(self.ts_lo, o.ts_lo),
            ts_hi: match (self.ts_hi, o.ts_hi) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };
        if b.off_lo >= b.off_hi || matches!((b.ts_lo, b.ts_hi), (Some(l), Some(h)) if l >= h) {
            Bounds::NONE
        } else {
            b
        }
    }

    /// The smallest bounds holding both (a superset of the union).
    fn or(self, o: Bounds) -> Bounds {
        if self.empty {
            return o;
        }
        if o.empty {
            return self;
        }
        Bounds {
            empty: false,
            off_lo: self.off_lo.min(o.off_lo),
            off_hi: self.off_hi.max(o.off_hi),
            ts_lo: match (self.ts_lo, o.ts_lo) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            },
            ts_hi: match (self.ts_hi, o.ts_hi) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            },
        }
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Attribute numbers of the metadata columns conditions can use.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaCols {
    pub partition: Option<i16>,
    pub offset: Option<i16>,
    pub timestamp: Option<i16>,
}

impl MetaCols {
    pub fn of(table: &TableDef) -> MetaCols {
        let find = |n: &str| table.col_named(n).map(|c| c.attnum);
        MetaCols {
            partition: find("_partition"),
            offset: find("_offset"),
            timestamp: find("_timestamp"),
        }
    }
    fn role(&self, col: i16) -> Option<Meta> {
        if Some(col) == self.partition {
            Some(Meta::Partition)
        } else if Some(col) == self.offset {
            Some(Meta::Offset)
        } else if Some(col) == self.timestamp {
            Some(Meta::Timestamp)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Partition,
    Offset,
    Timestamp,
}

/// Can a condition be turned into partition/offset/timestamp bounds?
pub fn ship(meta: &MetaCols, c: &Cond) -> Ship {
    match c {
        Cond::Cmp { col, op, .. } => match meta.role(*col) {
            None => Ship::No,
            Some(_) if *op == CmpOp::Ne => Ship::Superset,
            Some(Meta::Timestamp) => Ship::Superset,
            Some(_) => Ship::Exact,
        },
        Cond::In { col, negated, .. } => match meta.role(*col) {
            None => Ship::No,
            Some(Meta::Partition) if !negated => Ship::Exact,
            Some(_) => Ship::Superset,
        },
        Cond::IsNull { col, .. } => match meta.role(*col) {
            None => Ship::No,
            Some(_) => Ship::Exact,
        },
        Cond::Like { .. } => Ship::No,
        Cond::And(v) | Cond::Or(v) => {
            let mut worst = Ship::Exact;
            for s in v.iter().map(|c| ship(meta, c)) {
                match s {
                    Ship::No => return Ship::No,
                    Ship::Superset => worst = Ship::Superset,
                    Ship::Exact => {}
                }
            }
            if matches!(c, Cond::Or(_)) {
                Ship::Superset
            } else {
                worst
            }
        }
    }
}

fn val(o: &Operand) -> Option<&Val> {
    match o {
        Operand::Val(Val::Null) | Operand::Param(_) => None,
        Operand::Val(v) => Some(v),
    }
}

/// Bounds a (resolved) condition puts on `partition`.
pub fn bounds(meta: &MetaCols, c: &Cond, partition: i32) -> Bounds {
    match c {
        Cond::And(v) => v
            .iter()
            .fold(Bounds::ALL, |b, c| b.and(bounds(meta, c, partition))),
        Cond::Or(v) => v
            .iter()
            .fold(Bounds::NONE, |b, c| b.or(bounds(meta, c, partition))),
        Cond::IsNull { col, negated } => match meta.role(*col) {
            Some(_) if !negated => Bounds::NONE,
            _ => Bounds::ALL,
        },
        Cond::Like { .. } => Bounds::ALL,
        Cond::In { col, list, negated } => {
            let Some(role) = meta.role(*col) else {
                return Bounds::ALL;
            };
            let items: Vec<i64> = match val(list) {
                Some(Val::Array(a)) => a
                    .iter()
                    .filter_map(|v| {
                        if role == Meta::Timestamp {
                            v.as_epoch_millis()
                        } else {
                            v.as_i64()
                        }
                    })
                    .collect(),
                _ => return if *negated { Bounds::ALL } else { Bounds::NONE },
            };
            match (role, negated) {
                (_, true) => Bounds::ALL,
                (Meta::Partition, false) => {
                    if items.contains(&(partition as i64)) {
                        Bounds::ALL
                    } else {
                        Bounds::NONE
                    }
                }
                (Meta::Offset, false) => match (items.iter().min(), items.iter().max()) {
                    (Some(lo), Some(hi)) => Bounds {
                        off_lo: (*lo).max(0),
                        off_hi: hi.saturating_add(1),
                        ..Bounds::ALL
                    }
                    .and(Bounds::ALL),
                    _ => Bounds::NONE,
                },
                (Meta::Timestamp, false) => match (items.iter().min(), items.iter().max()) {
                    (Some(lo), Some(hi)) => Bounds {
                        ts_lo: Some(*lo),
                        ts_hi: Some(hi.saturating_add(1)),
                        ..Bounds::ALL
                    },
                    _ => Bounds::NONE,
                },
            }
        }
        Cond::Cmp { col, op, arg } => {
            let Some(role) = meta.role(*col) else {
                return Bounds::ALL;
            };
            let Some(v) = val(arg) else {
                // Comparing with NULL matches nothing.
                return if matches!(arg, Operand::Val(Val::Null)) {
                    Bounds::NONE
                } else {
                    Bounds::ALL
                };
            };
            match role {
                Meta::Partition => {
                    let Some(x) = v.as_i64() else {
                        return Bounds::ALL;
                    };
                    let p = partition as i64;
                    let keep = match op {
                        CmpOp::Eq => p == x,
                        CmpOp::Ne => p != x,
                        CmpOp::Lt => p < x,
                        CmpOp::Le => p <= x,
                        CmpOp::Gt => p > x,
                        CmpOp::Ge => p >= x,
                    };
                    if keep {
                        Bounds::ALL
                    } else {
                        Bounds::NONE
                    }
                }
                Meta::Offset => {
                    let Some(x) = v.as_i64() else {
                        return Bounds::ALL;
                    };
                    let b = match op {
                        CmpOp::Eq => Bounds {
                            off_lo: x,
                            off_hi: x.saturating_add(1),
                            ..Bounds::ALL
                        },
                        CmpOp::Ne => Bounds::ALL,
                        CmpOp::Lt => Bounds {
                            off_hi: x,
                            ..Bounds::ALL
                        },
                        CmpOp::Le => Bounds {
                            off_hi: x.saturating_add(1),
                            ..Bounds::ALL
                        },
                        CmpOp::Gt => Bounds {
                            off_lo: x.saturating_add(1),
                            ..Bounds::ALL
                        },
                        CmpOp::Ge => Bounds {
                            off_lo: x,
                            ..Bounds::ALL
                        },
                    };
                    Bounds {
                        off_lo: b.off_lo.max(0),
                        ..b
                    }
                    .and(Bounds::ALL)
                }
                Meta::Timestamp => {
                    // Kafka timestamps are milliseconds; round outward so the bounds are a
                    // superset of what the (microsecond) comparison keeps.
                    let (floor, ceil) = match v {
                        Val::Ts(us) => (us.div_euclid(1000), (us + 999).div_euclid(1000)),
                        other => match other.as_epoch_millis() {
                            Some(ms) => (ms, ms),
                            None => return Bounds::ALL,
                        },
                    };
                    match op {
                        CmpOp::Eq => Bounds {
                            ts_lo: Some(floor),
                            ts_hi: Some(ceil + 1),
                            ..Bounds::ALL
                        },
                        CmpOp::Ne => Bounds::ALL,
                        CmpOp::Lt => Bounds {
                            ts_hi: Some(ceil),
                            ..Bounds::ALL
                        },
                        CmpOp::Le => Bounds {
                            ts_hi: Some(floor + 1),
                            ..Bounds::ALL
                        },
                        CmpOp::Gt | CmpOp::Ge => Bounds {
                            ts_lo: Some(floor),
                            ..Bounds::ALL
                        },
                    }
                }
            }
        }
    }
}

/// Bounds of all (ANDed) conditions for `partition`.
pub fn partition_bounds(meta: &MetaCols, conds: &[Cond], partition: i32) -> Bounds {
    conds
        .iter()
        .fold(Bounds::ALL, |b, c| b.and(bounds(meta, c, partition)))
}

/// A message as the decoder sees it.
pub struct Msg<'a> {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub payload: Option<&'a [u8]>,
}

/// Fills `row` (one slot per entry of `cols`) from `m`. Returns the decoding problem, if
/// any; affected slots are left NULL.
pub fn decode(m: &Msg, cols: &[ColKind], format: Format, row: &mut [Val]) -> Option<String> {
    let mut errors: Vec<String> = vec![];
    let mut err_slot = None;
    let text = |b: &[u8], what: &str, errors: &mut Vec<String>| match std::str::from_utf8(b) {
        Ok(s) => Some(s.to_string()),
        Err(e) => {
            errors.push(format!("{what} is not UTF-8: {e}"));
            None
        }
    };
    // The value is split into its top-level fields once (without building values), and only
    // if a column needs it; each wanted field is then converted straight from its JSON text.
    let needs_json = format == Format::Json && cols.iter().any(|c| matches!(c, ColKind::Field(..)));
    let mut doc: Option<JsonFields> = None;
    if needs_json {
        if let Some(p) = m.payload {
            match serde_json::from_slice::<JsonFields>(p) {
                Ok(o) => doc = Some(o),
                // Valid JSON that is not an object has no fields (NULLs, no error).
                Err(_) => {
                    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(p) {
                        errors.push(format!("value is not JSON: {e}"));
                    }
                }
            }
        }
    }
    let csv: Option<Vec<String>> =
        if format == Format::Csv && cols.iter().any(|c| matches!(c, ColKind::Csv(..))) {
            m.payload
                .and_then(|p| text(p, "value", &mut errors))
                .map(|s| split_csv(&s))
        } else {
            None
        };
    for (i, c) in cols.iter().enumerate() {
        row[i] = match c {
            ColKind::Partition => Val::Int(m.partition as i64),
            ColKind::Offset => Val::Int(m.offset),
            ColKind::Timestamp => m
                .timestamp_ms
                .map(|ms| Val::Ts(ms * 1000))
                .unwrap_or(Val::Null),
            ColKind::Key(ty) => match m.key {
                None => Val::Null,
                Some(k) if *ty == PgType::Bytea => Val::Bytes(k.to_vec()),
                Some(k) => match text(k, "key", &mut errors).map(|s| value::from_text(&s, ty)) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        errors.push(format!("key: {}", e.0));
                        Val::Null
                    }
                    None => Val::Null,
                },
            },
            ColKind::Headers => {
                let mut obj = serde_json::Map::new();
                for (k, v) in &m.headers {
                    obj.insert(
                        k.to_string(),
                        v.map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                            .unwrap_or(Value::Null),
                    );
                }
                Val::Json(Value::Object(obj))
            }
            ColKind::Error => {
                err_slot = Some(i);
                Val::Null
            }
            ColKind::Value(ty) => match m.payload {
                None => Val::Null,
                Some(p) if *ty == PgType::Bytea => Val::Bytes(p.to_vec()),
                Some(p) => match text(p, "value", &mut errors).map(|s| value::from_text(&s, ty)) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        errors.push(format!("value: {}", e.0));
                        Val::Null
                    }
                    None => Val::Null,
                },
            },
            ColKind::Field(path, ty) => {
                match doc.as_ref().and_then(|d| d.convert(path, None, ty)) {
                    None => Val::Null,
                    Some(Ok(x)) => x,
                    Some(Err(e)) => {
                        errors.push(format!("field {}: {}", path.join("."), e.0));
                        Val::Null
                    }
                }
            }
            ColKind::Csv(idx, ty) => match csv.as_ref().and_then(|f| f.get(*idx)) {
                None => Val::Null,
                Some(s) if s.is_empty() && *ty != PgType::Text => Val::Null,
                Some(s) => match value::from_text(s, ty) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(format!("field {}: {}", idx + 1, e.0));
                        Val::Null
                    }
                },
            },
        };
    }
    if errors.is_empty() {
        return None;
    }
    let msg = format!(
        "partition {} offset {}: {}",
        m.partition,
        m.offset,
        errors.join("; ")
    );
    if let Some(i) = err_slot {
        row[i] = Val::Text(msg.clone());
    }
    Some(msg)
}

/// Splits one CSV record (RFC 4180 quoting).
pub fn split_csv(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.trim_end_matches(['\r', '\n']).chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Builds a message value from a row (INSERT): a JSON object of the value columns (nested by
/// their paths), or the text of the value column.
pub fn encode_value(cols: &[(ColKind, Val)], format: Format) -> Option<Vec<u8>> {
    if let Some((_, v)) = cols.iter().find(|(k, _)| matches!(k, ColKind::Value(_))) {
        return match v {
            Val::Null => None,
            Val::Bytes(b) => Some(b.clone()),
            Val::Json(j) => Some(j.to_string().into_bytes()),
            other => other.to_text().map(String::into_bytes),
        };
    }
    match format {
        Format::Csv => {
            let mut fields: Vec<(usize, String)> = cols
                .iter()
                .filter_map(|(k, v)| match k {
                    ColKind::Csv(i, _) => Some((*i, csv_field(&v.to_text().unwrap_or_default()))),
                    _ => None,
                })
                .collect();
            fields.sort_by_key(|(i, _)| *i);
            Some(
                fields
                    .into_iter()
                    .map(|(_, s)| s)
                    .collect::<Vec<_>>()
                    .join(",")
                    .into_bytes(),
            )
        }
        _ => {
            let mut doc = Value::Object(Default::default());
            for (k, v) in cols {
                if let ColKind::Field(path, _) = k {
                    if matches!(v, Val::Null) {
                        continue;
                    }
                    let mut cur = &mut doc;
                    for (i, t) in path.iter().enumerate() {
                        let Value::Object(o) = cur else { break };
                        if i + 1 == path.len() {
                            o.insert(t.clone(), v.to_json());
                            break;
                        }
                        cur = o
                            .entry(t.clone())
                            .or_insert_with(|| Value::Object(Default::default()));
                    }
                }
            }
            Some(doc.to_string().into_bytes())
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Text of pushed conditions for EXPLAIN (`_partition = 1 AND _offset >= 100`).
pub fn describe(table: &TableDef, conds: &[Cond]) -> String {
    fn one(t: &TableDef, c: &Cond) -> String {
        let name = |col: &i16| t.col(*col).map(|c| c.name.clone()).unwrap_or_default();
        match c {
            Cond::Cmp { col, op, arg } => format!(
                "{} {} {}",
                name(col),
                op.sql(),
                crate::fdw::cond::operand_text(arg)
            ),
            Cond::In { col, list, negated } => format!(
                "{} {} {}",
                name(col),
                if *negated { "NOT IN" } else { "IN" },
                crate::fdw::cond::operand_text(list)
            ),
            Cond::IsNull { col, negated } => format!(
                "{} IS {}NULL",
                name(col),
                if *negated { "NOT " } else { "" }
            ),
            Cond::Like { col, pattern } => format!(
                "{} LIKE {}",
                name(col),
                crate::fdw::cond::operand_text(pattern)
            ),
            Cond::And(v) => format!(
                "({})",
                v.iter()
                    .map(|c| one(t, c))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Cond::Or(v) => format!(
                "({})",
                v.iter().map(|c| one(t, c)).collect::<Vec<_>>().join(" OR ")
            ),
        }
    }
    conds
        .iter()
        .map(|c| one(table, c))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::cond::Operand::Val as V;

    const META: MetaCols = MetaCols {
        partition: Some(1),
        offset: Some(2),
        timestamp: Some(3),
    };

    fn cmp(col: i16, op: CmpOp, v: Val) -> Cond {
        Cond::Cmp { col, op, arg: V(v) }
    }

    #[test]
    fn offset_and_partition_bounds() {
        let conds = vec![
            cmp(1, CmpOp::Eq, Val::Int(2)),
            cmp(2, CmpOp::Ge, Val::Int(100)),
            cmp(2, CmpOp::Lt, Val::Int(200)),
        ];
        assert!(partition_bounds(&META, &conds, 0).empty);
        let b = partition_bounds(&META, &conds, 2);
        assert_eq!((b.off_lo, b.off_hi), (100, 200));
        // BETWEEN is two comparisons; = is a one-offset range.
        let b = partition_bounds(&META, &[cmp(2, CmpOp::Eq, Val::Int(7))], 0);
        assert_eq!((b.off_lo, b.off_hi), (7, 8));
        // A contradiction reads nothing.
        assert!(
            partition_bounds(
                &META,
                &[
                    cmp(2, CmpOp::Gt, Val::Int(9)),
                    cmp(2, CmpOp::Lt, Val::Int(5))
                ],
                0
            )
            .empty
        );
        // Comparing with NULL reads nothing.
        assert!(partition_bounds(&META, &[cmp(2, CmpOp::Gt, Val::Null)], 0).empty);
    }

    #[test]
    fn per_partition_combinations_through_or() {
        let c = Cond::Or(vec![
            Cond::And(vec![
                cmp(1, CmpOp::Eq, Val::Int(0)),
                cmp(2, CmpOp::Ge, Val::Int(10)),
            ]),
            Cond::And(vec![
                cmp(1, CmpOp::Eq, Val::Int(1)),
                cmp(2, CmpOp::Lt, Val::Int(5)),
            ]),
        ]);
        let p0 = partition_bounds(&META, std::slice::from_ref(&c), 0);
        let p1 = partition_bounds(&META, std::slice::from_ref(&c), 1);
        let p2 = partition_bounds(&META, std::slice::from_ref(&c), 2);
        assert_eq!((p0.off_lo, p0.off_hi), (10, i64::MAX));
        assert_eq!((p1.off_lo, p1.off_hi), (0, 5));
        assert!(p2.empty);
        assert_eq!(ship(&META, &c), Ship::Superset);
        // IN on partitions.
        let c = Cond::In {
            col: 1,
            list: V(Val::Array(vec![Val::Int(0), Val::Int(2)])),
            negated: false,
        };
        assert!(!bounds(&META, &c, 2).empty && bounds(&META, &c, 1).empty);
        assert_eq!(ship(&META, &c), Ship::Exact);
        // Other columns are not shipped.
        assert_eq!(ship(&META, &cmp(9, CmpOp::Eq, Val::Int(1))), Ship::No);
        assert_eq!(
            ship(
                &META,
                &Cond::Or(vec![
                    cmp(1, CmpOp::Eq, Val::Int(1)),
                    cmp(9, CmpOp::Eq, Val::Int(1))
                ])
            ),
            Ship::No
        );
    }

    #[test]
    fn timestamp_bounds_round_outward() {
        let t = Val::Ts(1_000_500); // 1000.5 ms
        let b = partition_bounds(
            &META,
            &[
                cmp(3, CmpOp::Ge, t.clone()),
                cmp(3, CmpOp::Lt, Val::Ts(2_000_000)),
            ],
            0,
        );
        assert_eq!((b.ts_lo, b.ts_hi), (Some(1000), Some(2000)));
        let b = partition_bounds(&META, &[cmp(3, CmpOp::Le, t)], 0);
        assert_eq!(b.ts_hi, Some(1001));
        assert_eq!(ship(&META, &cmp(3, CmpOp::Ge, Val::Ts(0))), Ship::Superset);
    }

    fn msg(payload: &'static [u8]) -> Msg<'static> {
        Msg {
            partition: 1,
            offset: 42,
            timestamp_ms: Some(1000),
            key: Some(b"k1"),
            headers: vec![("h", Some(b"v"))],
            payload: Some(payload),
        }
    }

    #[test]
    fn decoding_is_tolerant_and_says_why() {
        let cols = vec![
            ColKind::Partition,
            ColKind::Field(vec!["a".into()], PgType::Int4),
            ColKind::Field(vec!["b".into(), "c".into()], PgType::Text),
            ColKind::Error,
            ColKind::Headers,
            ColKind::Key(PgType::Text),
        ];
        let mut row = vec![Val::Null; cols.len()];
        assert_eq!(
            decode(
                &msg(br#"{"a": 5, "b": {"c": "x"}}"#),
                &cols,
                Format::Json,
                &mut row
            ),
            None
        );
        assert_eq!(row[1], Val::Int(5));
        assert_eq!(row[2], Val::Text("x".into()));
        assert_eq!(row[3], Val::Null);
        assert_eq!(row[5], Val::Text("k1".into()));
        let e = decode(&msg(b"not json"), &cols, Format::Json, &mut row).unwrap();
        assert!(
            e.starts_with("partition 1 offset 42: value is not JSON"),
            "{e}"
        );
        assert_eq!(row[0], Val::Int(1));
        assert_eq!(row[1], Val::Null);
        assert_eq!(row[3], Val::Text(e));
        let e = decode(&msg(br#"{"a": "many"}"#), &cols, Format::Json, &mut row).unwrap();
        assert_eq!(
            e,
            "partition 1 offset 42: field a: value \"many\" does not fit type integer"
        );
    }

    #[test]
    fn csv_and_text_values() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\",\n"),
            vec!["a", "b,c", "d\"e", ""]
        );
        let cols = vec![ColKind::Csv(0, PgType::Int8), ColKind::Csv(1, PgType::Text)];
        let mut row = vec![Val::Null; 2];
        assert_eq!(
            decode(&msg(b"7,\"x,y\""), &cols, Format::Csv, &mut row),
            None
        );
        assert_eq!(row, vec![Val::Int(7), Val::Text("x,y".into())]);
        let enc = encode_value(
            &[
                (cols[0].clone(), Val::Int(7)),
                (cols[1].clone(), Val::Text("x,y".into())),
            ],
            Format::Csv,
        );
        assert_eq!(enc.unwrap(), b"7,\"x,y\"");
        let enc = encode_value(
            &[
                (
                    ColKind::Field(vec!["a".into(), "b".into()], PgType::Int4),
                    Val::Int(1),
                ),
                (ColKind::Field(vec!["c".into()], PgType::Text), Val::Null),
            ],
            Format::Json,
        );
        assert_eq!(enc.unwrap(), br#"{"a":{"b":1}}"#);
        assert_eq!(path_tokens("/a~1b/c"), vec!["a/b", "c"]);
        assert_eq!(path_tokens("a.b"), vec!["a", "b"]);
    }
}
