//! Pure value layer shared by the foreign-data wrappers: the Postgres column types they
//! support, a value type that crosses the planner/executor boundary (serialisable, no
//! pointers), and conversions between JSON documents and typed values. No pgrx here.
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod flink_types;
mod numeric;
mod time;
pub use flink_types::{pg_type_for_declared_flink, pg_type_for_flink};
pub use numeric::{check_numeric_fits, numeric_typmod, round_to_typmod};
pub use time::*;

/// Microseconds between 1970-01-01 and 2000-01-01 (Postgres' epoch).
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
pub const PG_EPOCH_DAYS: i32 = 10_957;

/// A column type the wrappers can fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Json,
    Jsonb,
    Timestamptz,
    Timestamp,
    Date,
    /// `time` (without time zone): microseconds since midnight.
    Time,
    Bytea,
    Array(Box<PgType>),
}

impl PgType {
    pub fn sql(&self) -> String {
        match self {
            PgType::Bool => "boolean".into(),
            PgType::Int2 => "smallint".into(),
            PgType::Int4 => "integer".into(),
            PgType::Int8 => "bigint".into(),
            PgType::Float4 => "real".into(),
            PgType::Float8 => "double precision".into(),
            PgType::Numeric => "numeric".into(),
            PgType::Text => "text".into(),
            PgType::Json => "json".into(),
            PgType::Jsonb => "jsonb".into(),
            PgType::Timestamptz => "timestamptz".into(),
            PgType::Timestamp => "timestamp".into(),
            PgType::Date => "date".into(),
            PgType::Time => "time".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Array(e) => format!("{}[]", e.sql()),
        }
    }
}

/// A typed value. Timestamps are microseconds since the Unix epoch (UTC; for `timestamp`
/// without time zone, the wall-clock time read as if it were UTC), dates days since it, times
/// of day microseconds since midnight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    /// Stored in plans by its bits: JSON has no NaN or ±Infinity, and a plan must carry them.
    Float(#[serde(with = "f64_bits")] f64),
    Numeric(String),
    Text(String),
    Json(Value),
    Ts(i64),
    Date(i32),
    Time(i64),
    Bytes(Vec<u8>),
    Array(Vec<Val>),
}

/// Serde for f64 as its IEEE bits (exact, and NaN/±Infinity included).
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

impl Val {
    /// The value as JSON, the way Elasticsearch and JSON Kafka messages take it.
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Val::Numeric(s) => serde_json::from_str::<serde_json::Number>(s)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(s.clone())),
            Val::Text(s) => Value::String(s.clone()),
            Val::Json(v) => v.clone(),
            Val::Ts(us) => Value::String(format_ts(*us)),
            Val::Date(d) => Value::String(format_date(*d)),
            Val::Time(us) => Value::String(format_time(*us)),
            Val::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            Val::Array(a) => Value::Array(a.iter().map(Val::to_json).collect()),
        }
    }

    /// The value as plain text (Kafka keys, `text` format values, header values).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Text(s) | Val::Numeric(s) => Some(s.clone()),
            Val::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            other => Some(match other.to_json() {
                Value::String(s) => s,
                v => v.to_string(),
            }),
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(*f as i64),
            Val::Numeric(s) | Val::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Milliseconds since the Unix epoch, for timestamp comparisons.
    pub fn as_epoch_millis(&self) -> Option<i64> {
        match self {
            Val::Ts(us) => Some(us.div_euclid(1000)),
            Val::Date(d) => Some(*d as i64 * 86_400_000),
            Val::Int(i) => Some(*i),
            Val::Text(s) => parse_datetime(s).map(|us| us.div_euclid(1000)),
            _ => None,
        }
    }
}

/// Why a JSON value did not fit its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

fn mismatch(v: &Value, ty: &PgType) -> Mismatch {
    let shown = crate::core::messages::ellipsis(&v.to_string(), 57);
    Mismatch(format!("value {shown} does not fit type {}", ty.sql()))
}

/// Converts a JSON value (from a document or message) to a value of column type `ty`.
/// Strings holding numbers or booleans are accepted for numeric/boolean columns (Elasticsearch
/// and many producers send them that way); dates accept ISO 8601 and epoch milliseconds.
pub fn from_json(v: &Value, ty: &PgType) -> Result<Val, Mismatch> {
    if v.is_null() {
        return Ok(Val::Null);
    }
    let bad = || mismatch(v, ty);
    Ok(match ty {
        PgType::Bool => match v {
            Value::Bool(b) => Val::Bool(*b),
            Value::String(s) if s == "true" => Val::Bool(true),
            Value::String(s) if s == "false" => Val::Bool(false),
            _ => return Err(bad()),
        },
        PgType::Int2 | PgType::Int4 | PgType::Int8 => {
            let i = match v {
                // A float is taken only when it is a whole number inside i64's range (`as`
                // would saturate 1e19 to i64::MAX); larger integers are out of range.
                Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
                    return Err(Mismatch(format!(
                        "value {n} is out of range for type {}",
                        ty.sql()
                    )))
                }
                Value::Number(n) => n.as_i64().or_else(|| {
                    let range = -(2f64.powi(63))..2f64.powi(63);
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && range.contains(f))
                        .map(|f| f as i64)
                }),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(bad)?;
            let (lo, hi) = match ty {
                PgType::Int2 => (i16::MIN as i64, i16::MAX as i64),
                PgType::Int4 => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if i < lo || i > hi {
                return Err(Mismatch(format!(
                    "value {i} is out of range for type {}",
                    ty.sql()
                )));
            }
            Val::Int(i)
        }
        PgType::Float4 | PgType::Float8 => {
            let f = match v {
                // as_f64 refuses what overflows; parsed, it is ±inf and refused below as out
                // of range (like 1e-400, which would read as 0), as Postgres' input does.
                Value::Number(n) => {
                    let t = n.to_string();
                    if underflows(&t, ty) {
                        return Err(Mismatch(format!(
                            "value is out of range for type {}",
                            ty.sql()
                        )));
                    }
                    n.as_f64()
                        .or_else(|| t.parse::<f64>().ok())
                        .ok_or_else(bad)?
                }
                // Postgres' own input accepts NaN and ±Infinity spelled out.
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| bad())?,
                _ => return Err(bad()),
            };
            float_in_range(f, ty, matches!(v, Value::String(_)))?
        }
        PgType::Numeric => match v {
            Value::Number(n) => Val::Numeric(n.to_string()),
            Value::String(s) if s.trim().parse::<f64>().is_ok() => Val::Numeric(s.trim().into()),
            _ => return Err(bad()),
        },
        PgType::Text => match v {
            // Postgres text cannot hold NUL (its input refuses \u0000 too).
            Value::String(s) if s.contains('\0') => {
                return Err(Mismatch(
                    "value contains \\u0000, which text cannot hold".to_string(),
                ))
            }
            Value::String(s) => Val::Text(s.clone()),
            other => Val::Text(other.to_string()),
        },
        PgType::Json | PgType::Jsonb => Val::Json(v.clone()),
        PgType::Timestamptz | PgType::Timestamp => match v {
            Value::Number(n) => Val::Ts(
                n.as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .ok_or_else(bad)?
                    .checked_mul(1000)
                    .ok_or_else(bad)?,
            ),
            Value::String(s) => Val::Ts(match s.trim().parse::<i64>() {
                Ok(ms) => ms.checked_mul(1000).ok_or_else(bad)?,
                Err(_) => parse_datetime(s).ok_or_else(bad)?,
            }),
            _ => return Err(bad()),
        },
        PgType::Date => match v {
            Value::Number(n) => Val::Date(
                (n.as_i64().ok_or_else(bad)?.div_euclid(86_400_000))
                    .try_into()
                    .map_err(|_| bad())?,
            ),
            Value::String(s) => {
                let us = parse_datetime(s).ok_or_else(bad)?;
                Val::Date(
                    us.div_euclid(86_400_000_000)
                        .try_into()
                        .map_err(|_| bad())?,
                )
            }
            _ => return Err(bad()),
        },
        PgType::Time => match v {
            Value::String(s) => Val::Time(parse_time(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        PgType::Bytea => match v {
            Value::String(s) => Val::Bytes(s.as_bytes().to_vec()),
            other => Val::Bytes(other.to_string().into_bytes()),
        },
        PgType::Array(elem) => match v {
            Value::Array(items) => Val::Array(
                items
                    .iter()
                    .map(|i| from_json(i, elem))
                    .collect::<Result<_, _>>()?,
            ),
            // A single value where an array column is declared: Elasticsearch does not
            // distinguish a field from an array of one.
            single => Val::Array(vec![from_json(single, elem)?]),
        },
    })
}

/// Does the number `t` (JSON text) read as zero in `ty` though it is not zero? Postgres'
/// float input refuses that as out of range (`1e-400` for double, `1e-50` for real).
fn underflows(t: &str, ty: &PgType) -> bool {
    let mantissa = t.split(['e', 'E']).next().unwrap_or(t);
    if !mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return false;
    }
    match t.parse::<f64>() {
        Ok(f) if *ty == PgType::Float4 => (f as f32) == 0.0,
        Ok(f) => f == 0.0,
        Err(_) => false,
    }
}

/// A float that fits `ty` as Postgres' input would take it: a JSON number must be finite (JSON
/// has no infinities; 1e400 overflows) and, for `real`, within its range.
fn float_in_range(f: f64, ty: &PgType, spelled: bool) -> Result<Val, Mismatch> {
    let too_big = if f.is_finite() {
        *ty == PgType::Float4 && f.abs() > f32::MAX as f64
    } else {
        !spelled
    };
    if too_big {
        return Err(Mismatch(format!(
            "value is out of range for type {}",
            ty.sql()
        )));
    }
    Ok(Val::Float(f))
}

/// Converts the JSON text of one value (a field of a message) to column type `ty`, without
/// building a `serde_json::Value` for the common scalar cases. Same results as [`from_json`].
pub fn from_json_text(t: &str, ty: &PgType) -> Result<Val, Mismatch> {
    let b = t.as_bytes();
    let number = matches!(b.first(), Some(b'-' | b'0'..=b'9'));
    let fast = match (ty, b.first()) {
        (_, Some(b'n')) if t == "null" => Some(Val::Null),
        (PgType::Text, Some(b'"')) if !t.contains('\\') && t.len() >= 2 => {
            Some(Val::Text(t[1..t.len() - 1].to_string()))
        }
        (PgType::Int8, _) if number => t.parse::<i64>().ok().map(Val::Int),
        // Finite and in range only; anything else takes the slow path and its error.
        (PgType::Float8, _) if number => t
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && !underflows(t, ty))
            .map(Val::Float),
        (PgType::Float4, _) if number => t
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() <= f32::MAX as f64 && !underflows(t, ty))
            .map(Val::Float),
        (PgType::Numeric, _) if number => Some(Val::Numeric(t.to_string())),
        (PgType::Timestamptz | PgType::Timestamp, Some(b'"'))
            if !t.contains('\\') && t.len() >= 2 =>
        {
            let inner = &t[1..t.len() - 1];
            match inner.parse::<i64>() {
                Ok(ms) => ms.checked_mul(1000).map(Val::Ts),
                Err(_) => parse_datetime(inner).map(Val::Ts),
            }
        }
        (PgType::Bool, Some(b't')) if t == "true" => Some(Val::Bool(true)),
        (PgType::Bool, Some(b'f')) if t == "false" => Some(Val::Bool(false)),
        _ => None,
    };
    match fast {
        Some(v) => Ok(v),
        None => {
            let v: Value =
                serde_json::from_str(t).map_err(|e| Mismatch(format!("not JSON: {e}")))?;
            from_json(&v, ty)
        }
    }
}

/// Converts text (a `text`-format message, a CSV field, a key) to column type `ty`.
pub fn from_text(s: &str, ty: &PgType) -> Result<Val, Mismatch> {
    match ty {
        PgType::Text => Ok(Val::Text(s.to_string())),
        PgType::Bytea => Ok(Val::Bytes(s.as_bytes().to_vec())),
        PgType::Json | PgType::Jsonb | PgType::Array(_) => {
            let v: Value = serde_json::from_str(s)
                .map_err(|e| Mismatch(format!("not valid JSON for type {}: {e}", ty.sql())))?;
            from_json(&v, ty)
        }
        _ => from_json(&Value::String(s.to_string()), ty),
    }
}

/// The top-level fields of a JSON object as (key, raw JSON text), borrowed from the document:
/// fields are converted straight from their text ([`from_json_text`]) without building a
/// `Value` tree (Kafka message values, Elasticsearch `_source`).
pub struct JsonFields<'a>(Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'a> JsonFields<'a> {
    /// The field at `path`: its raw text for a top-level field, or the parsed value of a
    /// nested one (`Err` carries the value, not an error). None when absent.
    pub fn field(&self, path: &[String]) -> Option<Result<&'a serde_json::value::RawValue, Value>> {
        let (first, rest) = path.split_first()?;
        let raw = self.0.iter().rev().find(|(k, _)| k == first)?.1;
        if rest.is_empty() {
            return Some(Ok(raw));
        }
        let mut cur: Value = serde_json::from_str(raw.get()).ok()?;
        for t in rest {
            cur = match cur {
                Value::Object(mut o) => o.remove(t)?,
                Value::Array(mut a) => {
                    let i = t.parse::<usize>().ok().filter(|i| *i < a.len())?;
                    a.swap_remove(i)
                }
                _ => return None,
            };
        }
        Some(Err(cur))
    }

    /// A dotted path (`a.b.c`): a literal key of that name first (Elasticsearch allows dots in
    /// keys), then nested objects.
    pub fn dotted(
        &self,
        path: &str,
        tokens: &[String],
    ) -> Option<Result<&'a serde_json::value::RawValue, Value>> {
        if tokens.len() > 1 {
            if let Some((_, raw)) = self.0.iter().rev().find(|(k, _)| k == path) {
                return Some(Ok(raw));
            }
        }
        self.field(tokens)
    }

    /// Converts the field at `path` to `ty`; None when absent.
    pub fn convert(
        &self,
        path: &[String],
        dotted: Option<&str>,
        ty: &PgType,
    ) -> Option<Result<Val, Mismatch>> {
        let f = match dotted {
            Some(d) => self.dotted(d, path),
            None => self.field(path),
        }?;
        Some(match f {
            Ok(raw) => from_json_text(raw.get(), ty),
            Err(v) => from_json(&v, ty),
        })
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for JsonFields<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key<'a>(std::borrow::Cow<'a, str>);
        impl<'de: 'a, 'a> serde::Deserialize<'de> for Key<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Key<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                        Ok(Key(std::borrow::Cow::Borrowed(v)))
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                        Ok(Key(std::borrow::Cow::Owned(v.to_string())))
                    }
                }
                d.deserialize_str(V)
            }
        }
        struct M<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for M<'a> {
            type Value = JsonFields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonFields<'a>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) =
                    map.next_entry::<Key<'de>, &'de serde_json::value::RawValue>()?
                {
                    out.push((k.0, v));
                }
                Ok(JsonFields(out))
            }
        }
        d.deserialize_map(M(std::marker::PhantomData))
    }
}

// ------------------------------------------------------------------------------ dates

#[cfg(test)]
mod tests;
