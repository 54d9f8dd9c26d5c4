//! Pure value layer shared by the foreign-data wrappers: the Postgres column types they
//! support, a value type that crosses the planner/executor boundary (serialisable, no
//! pointers), and conversions between JSON documents and typed values. No pgrx here.
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The Postgres type for a Flink SQL type inferred from samples or mappings (IMPORT FOREIGN
/// SCHEMA): scalars map one to one, structured types become jsonb. An inferred `TIMESTAMP(3)`
/// stands for ISO-8601 strings or Elasticsearch dates, which carry (or mean) UTC: timestamptz.
/// For the declared type of a pipeline's output, use [`pg_type_for_declared_flink`].
pub fn pg_type_for_flink(flink: &str) -> String {
    let f = flink.trim().to_ascii_uppercase();
    let base = f.split(['(', '<', ' ']).next().unwrap_or("");
    match base {
        "BOOLEAN" => "boolean",
        "TINYINT" | "SMALLINT" => "smallint",
        "INT" | "INTEGER" => "integer",
        "BIGINT" => "bigint",
        "FLOAT" => "real",
        "DOUBLE" => "double precision",
        "DECIMAL" | "NUMERIC" => "numeric",
        "TIMESTAMP" | "TIMESTAMP_LTZ" => "timestamptz",
        "DATE" => "date",
        "BYTES" | "VARBINARY" | "BINARY" => "bytea",
        "ROW" | "MAP" | "ARRAY" | "MULTISET" => "jsonb",
        _ => "text",
    }
    .to_string()
}

/// The Postgres column type that holds exactly what Flink writes for a value of the declared
/// Flink type `flink` (a pipeline's sink column, what `flink.expose_results` builds), spelled
/// as Postgres' `format_type` spells it, so that it compares equal to the type of an existing
/// column:
///
/// - `TIMESTAMP(p)` / `TIMESTAMP(p) WITHOUT TIME ZONE` (a wall-clock time, no zone) →
///   `timestamp without time zone`; `TIMESTAMP_LTZ(p)` / `TIMESTAMP(p) WITH LOCAL TIME ZONE`
///   (an instant) → `timestamp with time zone`; `TIME(p)` → `time without time zone`;
/// - `DECIMAL(p, s)` → `numeric(p,s)` (`DECIMAL` alone is Flink's `DECIMAL(10, 0)`, `DECIMAL(p)`
///   is `DECIMAL(p, 0)`);
/// - `CHAR(n)`, `VARCHAR(n)`, `STRING` → `text` (Flink pads nothing it writes as JSON);
/// - `ROW`, `MAP`, `ARRAY`, `MULTISET` → `jsonb`; an unknown type → `text`.
///
/// `NOT NULL` / `NULL` suffixes are ignored (the results table is a view of what was written).
pub fn pg_type_for_declared_flink(flink: &str) -> String {
    let f = flink.trim().to_ascii_uppercase();
    // Structured types first: their parameters may hold anything (`ROW<a TIMESTAMP(3)>`).
    let base_end = f
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(f.len());
    let base = &f[..base_end];
    let mut rest = f[base_end..].trim_start();
    let mut args: Vec<u32> = Vec::new();
    let mut args_ok = true;
    if let Some(inner) = rest.strip_prefix('(') {
        match inner.split_once(')') {
            Some((a, after)) => {
                for x in a.split(',') {
                    match x.trim().parse::<u32>() {
                        Ok(n) => args.push(n),
                        Err(_) => args_ok = false,
                    }
                }
                rest = after.trim_start();
            }
            None => args_ok = false,
        }
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let words: &[&str] = match words.as_slice() {
        [w @ .., "NOT", "NULL"] | [w @ .., "NULL"] => w,
        w => w,
    };
    let with_zone = matches!(
        words,
        ["WITH", "LOCAL", "TIME", "ZONE"] | ["WITH", "TIME", "ZONE"]
    );
    match base {
        "BOOLEAN" | "BOOL" => "boolean".into(),
        "TINYINT" | "SMALLINT" => "smallint".into(),
        "INT" | "INTEGER" => "integer".into(),
        "BIGINT" => "bigint".into(),
        "FLOAT" | "REAL" => "real".into(),
        "DOUBLE" => "double precision".into(),
        "DECIMAL" | "DEC" | "NUMERIC" => match (args_ok, args.as_slice()) {
            (true, []) => "numeric(10,0)".into(),
            (true, [p]) if (1..=1000).contains(p) => format!("numeric({p},0)"),
            (true, [p, s]) if (1..=1000).contains(p) && s <= p => format!("numeric({p},{s})"),
            _ => "numeric".into(),
        },
        "TIMESTAMP" if with_zone => "timestamp with time zone".into(),
        "TIMESTAMP" => "timestamp without time zone".into(),
        "TIMESTAMP_LTZ" => "timestamp with time zone".into(),
        "TIME" => "time without time zone".into(),
        "DATE" => "date".into(),
        "BYTES" | "VARBINARY" | "BINARY" => "bytea".into(),
        "ROW" | "MAP" | "ARRAY" | "MULTISET" => "jsonb".into(),
        _ => "text".into(),
    }
}

/// Precision and scale of a `numeric` typmod (`atttypmod`), None for an unconstrained one
/// (Postgres' `numeric_typmod_precision`/`_scale`: the scale is an 11-bit signed field).
pub fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    const VARHDRSZ: i32 = 4;
    if typmod < VARHDRSZ {
        return None;
    }
    let t = typmod - VARHDRSZ;
    Some(((t >> 16) & 0xffff, ((t & 0x7ff) ^ 1024) - 1024))
}

/// Whether number text `s` fits `numeric(precision, scale)` as Postgres' typmod coercion
/// decides: the value is rounded (half away from zero) to `scale` fraction digits, and must
/// then be less than 10^(precision - scale) in absolute value; NaN fits, infinities do not.
/// Text that is not a number is left for the conversion to refuse (Ok).
pub fn check_numeric_fits(s: &str, precision: i32, scale: i32) -> Result<(), Mismatch> {
    let ty = format!("numeric({precision},{scale})");
    let t = s.trim();
    let unsigned = t.trim_start_matches(['+', '-']);
    let lower = unsigned.to_ascii_lowercase();
    if lower == "nan" {
        return Ok(());
    }
    if lower == "inf" || lower == "infinity" {
        return Err(Mismatch(format!(
            "value {t} does not fit type {ty}: it cannot hold an infinite value"
        )));
    }
    // digits × 10^exp
    let (mantissa, exp) = match unsigned.find(['e', 'E']) {
        Some(i) => match unsigned[i + 1..].parse::<i64>() {
            Ok(e) => (&unsigned[..i], e),
            Err(_) => return Ok(()),
        },
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Ok(());
    }
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let mut exp = exp - frac.len() as i64;
    // Round to `scale` fraction digits: drop the digits below 10^-scale.
    let drop = -(scale as i64) - exp;
    if drop > 0 {
        let n = digits.len() as i64;
        if drop > n {
            digits.clear();
        } else {
            let keep = (n - drop) as usize;
            let up = digits[keep] >= 5;
            digits.truncate(keep);
            if up {
                let mut i = digits.len();
                loop {
                    if i == 0 {
                        digits.insert(0, 1);
                        break;
                    }
                    i -= 1;
                    if digits[i] == 9 {
                        digits[i] = 0;
                    } else {
                        digits[i] += 1;
                        break;
                    }
                }
            }
        }
        exp = -(scale as i64);
    }
    let first = digits.iter().position(|d| *d != 0);
    let Some(first) = first else {
        return Ok(()); // zero fits any numeric
    };
    // value < 10^(significant digits + exp), and ≥ 10^(that - 1).
    let magnitude = (digits.len() - first) as i64 + exp;
    let max = precision as i64 - scale as i64;
    if magnitude > max {
        return Err(Mismatch(format!(
            "value {t} does not fit type {ty}: it must round to an absolute value less than 10^{max}"
        )));
    }
    Ok(())
}

/// Rounds microseconds (Postgres' epoch for timestamps, midnight for times) to the precision
/// of a `timestamp(p)`/`time(p)` typmod as Postgres' input does (half away from zero); any
/// typmod outside 0..6 leaves the value as is.
pub fn round_to_typmod(us: i64, typmod: i32) -> i64 {
    if !(0..6).contains(&typmod) {
        return us;
    }
    let scale = 10i64.pow((6 - typmod) as u32);
    let offset = scale / 2;
    if us >= 0 {
        us.saturating_add(offset) / scale * scale
    } else {
        -((us.saturating_neg().saturating_add(offset)) / scale * scale)
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses ISO 8601 dates and date-times as Elasticsearch's `strict_date_optional_time` writes
/// them: `2024-05-01`, `2024-05-01T10:00`, `2024-05-01T10:00:00.123Z`, `…+02:00`, `…+0200`,
/// with a space allowed instead of `T`. No zone means UTC. Returns microseconds since 1970.
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut us = days_from_civil(y, mo as u32, d as u32) * 86_400_000_000;
    let mut i = 10;
    if i < b.len() && (b[i] == b'T' || b[i] == b' ') {
        i += 1;
        let (h, mi) = (num(i, 2)?, num(i + 3, 2)?);
        if b.get(i + 2) != Some(&b':') || h > 24 || mi > 59 {
            return None;
        }
        us += (h * 3600 + mi * 60) * 1_000_000;
        i += 5;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1, 2)?;
            if sec > 60 {
                return None;
            }
            us += sec * 1_000_000;
            i += 3;
            if matches!(b.get(i), Some(b'.') | Some(b',')) {
                i += 1;
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let frac = &s[start..i];
                if frac.is_empty() {
                    return None;
                }
                // Microseconds, rounded half away from zero as Postgres rounds input.
                let mut digits: String = frac.chars().take(6).collect();
                while digits.len() < 6 {
                    digits.push('0');
                }
                let round_up = frac.as_bytes().get(6).is_some_and(|c| *c >= b'5');
                us += digits.parse::<i64>().ok()? + i64::from(round_up);
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(&sign) if sign == b'+' || sign == b'-' => {
                let rest = &s[i + 1..];
                let (oh, om) = match rest.len() {
                    5 if rest.as_bytes()[2] == b':' => (num(i + 1, 2)?, num(i + 4, 2)?),
                    4 => (num(i + 1, 2)?, num(i + 3, 2)?),
                    2 => (num(i + 1, 2)?, 0),
                    _ => return None,
                };
                let off = (oh * 3600 + om * 60) * 1_000_000;
                us += if sign == b'+' { -off } else { off };
            }
            _ => return None,
        }
    } else if i != b.len() {
        return None;
    }
    Some(us)
}

/// `2024-05-01T10:00:00.123456Z` (fraction only when non-zero, millisecond precision when it
/// suffices).
pub fn format_ts(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let rem = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac == 0 {
        format!("{base}Z")
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}Z", frac / 1000)
    } else {
        format!("{base}.{frac:06}Z")
    }
}

pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses a time of day as Flink writes `TIME` in JSON (`10:00:00`, `10:00:00.123`) or as
/// Postgres takes it (`10:00`, up to `24:00:00`). Fractions beyond microseconds round half away
/// from zero. Returns microseconds since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize| -> Option<i64> {
        let part = s.get(from..from + 2)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.get(2) != Some(&b':') {
        return None;
    }
    let (h, mi) = (num(0)?, num(3)?);
    let mut us = 0i64;
    let mut i = 5;
    if b.get(i) == Some(&b':') {
        let sec = num(i + 1)?;
        if sec > 60 {
            return None;
        }
        us += sec * 1_000_000;
        i += 3;
        if matches!(b.get(i), Some(b'.') | Some(b',')) {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &s[start..i];
            if frac.is_empty() {
                return None;
            }
            let mut digits: String = frac.chars().take(6).collect();
            while digits.len() < 6 {
                digits.push('0');
            }
            let round_up = frac.as_bytes().get(6).is_some_and(|c| *c >= b'5');
            us += digits.parse::<i64>().ok()? + i64::from(round_up);
        }
    }
    if i != b.len() || h > 24 || mi > 59 {
        return None;
    }
    us += (h * 3600 + mi * 60) * 1_000_000;
    (us <= 86_400_000_000).then_some(us)
}

/// `10:00:00`, `10:00:00.123` or `10:00:00.123456` (as Flink's JSON format writes `TIME`).
pub fn format_time(us: i64) -> String {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        base
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}", frac / 1000)
    } else {
        format!("{base}.{frac:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_postgres_would_refuse_are_errors_not_silently_changed() {
        let big = serde_json::from_str::<Value>("9223372036854775808").unwrap();
        assert!(from_json(&big, &PgType::Int8).is_err());
        assert!(from_json_text("9223372036854775808", &PgType::Int8).is_err());
        assert!(from_json_text("1e19", &PgType::Int8).is_err());
        assert_eq!(
            from_json_text("1e3", &PgType::Int8).unwrap(),
            Val::Int(1000)
        );
        assert!(from_json_text("1e400", &PgType::Float8).is_err());
        assert!(from_json_text("1e39", &PgType::Float4).is_err());
        assert_eq!(
            from_json_text("1e38", &PgType::Float4).unwrap(),
            Val::Float(1e38)
        );
        assert!(
            matches!(from_json_text("\"Infinity\"", &PgType::Float8), Ok(Val::Float(f)) if f.is_infinite())
        );
        assert!(from_json_text("\"2024-02-30\"", &PgType::Date).is_err());
        assert!(from_json_text("\"2023-02-29\"", &PgType::Date).is_err());
        assert!(from_json_text("\"2024-02-29\"", &PgType::Date).is_ok());
        assert!(from_json_text("\"2024-04-31T00:00:00Z\"", &PgType::Timestamptz).is_err());
        assert!(from_json_text("\"a\\u0000b\"", &PgType::Text).is_err());
    }

    #[test]
    fn dates_in_every_shape_elasticsearch_writes() {
        let base = 1_714_557_600_000_000i64; // 2024-05-01T10:00:00Z
        assert_eq!(parse_datetime("2024-05-01T10:00:00Z"), Some(base));
        assert_eq!(
            parse_datetime("2024-05-01T10:00:00.5Z"),
            Some(base + 500_000)
        );
        // Beyond microseconds Postgres rounds (half away from zero); so do we.
        assert_eq!(
            parse_datetime("2024-05-01T10:00:00.123456789Z"),
            Some(base + 123_457)
        );
        assert_eq!(
            parse_datetime("2024-05-01T10:00:00.1234564Z"),
            Some(base + 123_456)
        );
        assert_eq!(parse_datetime("2024-05-01T12:00:00+02:00"), Some(base));
        assert_eq!(parse_datetime("2024-05-01T08:00:00-0200"), Some(base));
        assert_eq!(parse_datetime("2024-05-01 10:00"), Some(base));
        assert_eq!(parse_datetime("2024-05-01"), Some(base - 36_000_000_000));
        assert_eq!(parse_datetime("1969-12-31T23:59:59Z"), Some(-1_000_000));
        for bad in [
            "",
            "2024-5-01",
            "2024-13-01",
            "2024-05-01T25:00",
            "2024-05-01Tx",
            "2024-05-01T10:00:00Q",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert_eq!(
            from_json(&json!(1714557600000i64), &PgType::Timestamptz),
            Ok(Val::Ts(base))
        );
        assert_eq!(
            from_json(&json!("1714557600000"), &PgType::Timestamptz),
            Ok(Val::Ts(base))
        );
        assert_eq!(
            from_json(&json!("2024-05-01T10:00:00Z"), &PgType::Date),
            Ok(Val::Date(19844))
        );
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        for us in [
            0i64,
            1_714_557_600_123_000,
            1_714_557_600_123_456,
            -86_400_000_001,
            253_402_300_799_000_000,
        ] {
            assert_eq!(
                parse_datetime(&format_ts(us)),
                Some(us),
                "{}",
                format_ts(us)
            );
        }
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_date(19844), "2024-05-01");
    }

    #[test]
    fn numbers_fit_or_name_the_problem() {
        assert_eq!(from_json(&json!(7), &PgType::Int2), Ok(Val::Int(7)));
        assert_eq!(from_json(&json!("7"), &PgType::Int8), Ok(Val::Int(7)));
        assert_eq!(from_json(&json!(7.0), &PgType::Int4), Ok(Val::Int(7)));
        assert_eq!(
            from_json(&json!(70000), &PgType::Int2).unwrap_err().0,
            "value 70000 is out of range for type smallint"
        );
        assert_eq!(
            from_json(&json!("abc"), &PgType::Int4).unwrap_err().0,
            "value \"abc\" does not fit type integer"
        );
        assert_eq!(
            from_json(&json!(1.5), &PgType::Numeric),
            Ok(Val::Numeric("1.5".into()))
        );
        assert!(from_json(&json!({"a": 1}), &PgType::Float8).is_err());
        assert_eq!(
            from_json(&json!("true"), &PgType::Bool),
            Ok(Val::Bool(true))
        );
    }

    #[test]
    fn objects_and_arrays() {
        assert_eq!(
            from_json(&json!({"a": 1}), &PgType::Text),
            Ok(Val::Text("{\"a\":1}".into()))
        );
        assert_eq!(
            from_json(&json!([1, 2]), &PgType::Array(Box::new(PgType::Int8))),
            Ok(Val::Array(vec![Val::Int(1), Val::Int(2)]))
        );
        assert_eq!(
            from_json(&json!("x"), &PgType::Array(Box::new(PgType::Text))),
            Ok(Val::Array(vec![Val::Text("x".into())]))
        );
        assert_eq!(from_json(&json!(null), &PgType::Int4), Ok(Val::Null));
    }

    #[test]
    fn json_text_fast_paths_agree_with_values() {
        let cases = [
            (r#""abc""#, PgType::Text),
            (r#""a\"b""#, PgType::Text),
            ("12", PgType::Int8),
            ("12", PgType::Int2),
            ("99999", PgType::Int2),
            ("-1.5", PgType::Float8),
            ("1e3", PgType::Int8),
            ("1.25", PgType::Numeric),
            ("true", PgType::Bool),
            ("null", PgType::Int4),
            (r#"{"a":1}"#, PgType::Jsonb),
            (r#""2024-05-01T10:00:00Z""#, PgType::Timestamptz),
            (r#""1714557600000""#, PgType::Timestamptz),
            (r#""not a date""#, PgType::Timestamptz),
            ("[1,2]", PgType::Array(Box::new(PgType::Int4))),
            (r#""x""#, PgType::Int4),
        ];
        for (t, ty) in cases {
            let v: Value = serde_json::from_str(t).unwrap();
            assert_eq!(from_json_text(t, &ty), from_json(&v, &ty), "{t} as {ty:?}");
        }
    }

    #[test]
    fn declared_flink_types_map_to_exact_postgres_types() {
        for (flink, pg) in [
            // Zone-less timestamps stay zone-less (a TimeZone setting must not shift them).
            ("TIMESTAMP(3)", "timestamp without time zone"),
            ("TIMESTAMP", "timestamp without time zone"),
            ("timestamp(9)", "timestamp without time zone"),
            (
                "TIMESTAMP(3) WITHOUT TIME ZONE",
                "timestamp without time zone",
            ),
            ("TIMESTAMP(3) NOT NULL", "timestamp without time zone"),
            (
                "TIMESTAMP(3) WITHOUT TIME ZONE NOT NULL",
                "timestamp without time zone",
            ),
            // Instants.
            ("TIMESTAMP_LTZ(3)", "timestamp with time zone"),
            ("TIMESTAMP_LTZ(3) NOT NULL", "timestamp with time zone"),
            (
                "TIMESTAMP(3) WITH LOCAL TIME ZONE",
                "timestamp with time zone",
            ),
            ("timestamp with local time zone", "timestamp with time zone"),
            ("TIME", "time without time zone"),
            ("TIME(3)", "time without time zone"),
            ("TIME(0) WITHOUT TIME ZONE", "time without time zone"),
            // Precision and scale kept; Flink's defaults spelled out.
            ("DECIMAL(10, 2)", "numeric(10,2)"),
            ("DECIMAL(38, 2)", "numeric(38,2)"),
            ("decimal(10,2) not null", "numeric(10,2)"),
            ("DECIMAL", "numeric(10,0)"),
            ("DECIMAL(5)", "numeric(5,0)"),
            ("NUMERIC(12, 4)", "numeric(12,4)"),
            ("DEC(3, 1)", "numeric(3,1)"),
            ("DECIMAL(x, 2)", "numeric"),
            ("DECIMAL(2, 5)", "numeric"),
            ("CHAR(3)", "text"),
            ("VARCHAR(20)", "text"),
            ("STRING", "text"),
            ("STRING NOT NULL", "text"),
            ("BOOLEAN", "boolean"),
            ("TINYINT", "smallint"),
            ("SMALLINT", "smallint"),
            ("INT", "integer"),
            ("INTEGER NOT NULL", "integer"),
            ("BIGINT", "bigint"),
            ("FLOAT", "real"),
            ("DOUBLE", "double precision"),
            ("DOUBLE PRECISION", "double precision"),
            ("DATE", "date"),
            ("BYTES", "bytea"),
            ("VARBINARY(10)", "bytea"),
            ("ARRAY<INT>", "jsonb"),
            ("ROW<`a` TIMESTAMP(3)>", "jsonb"),
            ("MAP<STRING, BIGINT>", "jsonb"),
            ("INTERVAL DAY", "text"),
        ] {
            assert_eq!(pg_type_for_declared_flink(flink), pg, "{flink}");
        }
        // Inferred types (IMPORT FOREIGN SCHEMA) keep their meaning: ISO strings are instants.
        assert_eq!(pg_type_for_flink("TIMESTAMP(3)"), "timestamptz");
    }

    #[test]
    fn what_flink_writes_for_a_timestamp_is_read_as_written() {
        // 2024-05-01 10:00:00 as a wall-clock time: the same microseconds as UTC 10:00, so
        // the datum (no zone applied) reads back as 10:00 whatever the session's TimeZone.
        let base = 1_714_557_600_000_000i64;
        for written in [
            "\"2024-05-01 10:00:00\"", // json.timestamp-format.standard = SQL (default)
            "\"2024-05-01T10:00:00\"", // ISO-8601
            "\"2024-05-01 10:00:00Z\"", // TIMESTAMP_LTZ, SQL
            "\"2024-05-01T10:00:00Z\"", // TIMESTAMP_LTZ, ISO-8601
        ] {
            assert_eq!(
                from_json_text(written, &PgType::Timestamp),
                Ok(Val::Ts(base)),
                "{written}"
            );
            assert_eq!(
                from_json_text(written, &PgType::Timestamptz),
                Ok(Val::Ts(base)),
                "{written}"
            );
        }
        assert_eq!(
            from_json_text("\"2024-05-01 10:00:00.123\"", &PgType::Timestamp),
            Ok(Val::Ts(base + 123_000))
        );
        // TIMESTAMP(9): nanoseconds round to microseconds as Postgres' input does.
        assert_eq!(
            from_json_text("\"2024-05-01 10:00:00.123456789\"", &PgType::Timestamp),
            Ok(Val::Ts(base + 123_457))
        );
        assert_eq!(
            from_text("2024-05-01 10:00:00", &PgType::Timestamp),
            Ok(Val::Ts(base))
        );
        // timestamp(p) columns round to p digits, half away from zero (Postgres' epoch).
        let pg = base - PG_EPOCH_MICROS + 123_456;
        assert_eq!(round_to_typmod(pg, 3), pg - 456);
        assert_eq!(round_to_typmod(pg + 43, 3), pg - 456);
        assert_eq!(round_to_typmod(pg + 44, 3), pg + 544);
        assert_eq!(round_to_typmod(pg + 44, 4), pg - 56 + 100);
        assert_eq!(round_to_typmod(pg, 0), pg - 123_456);
        assert_eq!(round_to_typmod(pg, -1), pg);
        assert_eq!(round_to_typmod(pg, 6), pg);
        assert_eq!(round_to_typmod(-1_500_000, 0), -2_000_000);
        assert_eq!(round_to_typmod(-1_499_999, 0), -1_000_000);
    }

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time("10:00:00"), Some(36_000_000_000));
        assert_eq!(parse_time("10:00"), Some(36_000_000_000));
        assert_eq!(parse_time("10:00:00.123"), Some(36_000_123_000));
        assert_eq!(parse_time("23:59:59.9999999"), Some(86_400_000_000));
        assert_eq!(parse_time("24:00:00"), Some(86_400_000_000));
        for bad in [
            "",
            "10",
            "25:00",
            "24:00:01",
            "10:60",
            "10:00:00.",
            "10:00:00Z",
            "1:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(
            from_json_text("\"10:00:00.5\"", &PgType::Time),
            Ok(Val::Time(36_000_500_000))
        );
        assert!(from_json_text("36000", &PgType::Time).is_err());
        for us in [0, 36_000_123_000, 36_000_123_456, 86_399_999_999] {
            assert_eq!(
                parse_time(&format_time(us)),
                Some(us),
                "{}",
                format_time(us)
            );
        }
        assert_eq!(Val::Time(36_000_000_000).to_json(), json!("10:00:00"));
    }

    #[test]
    fn numerics_fit_their_typmod_as_postgres_decides() {
        const VARHDRSZ: i32 = 4;
        let typmod = |p: i32, s: i32| ((p << 16) | (s & 0x7ff)) + VARHDRSZ;
        assert_eq!(numeric_typmod(typmod(10, 2)), Some((10, 2)));
        assert_eq!(numeric_typmod(typmod(5, -2)), Some((5, -2)));
        assert_eq!(numeric_typmod(-1), None);
        let fits = |v: &str, p, s| check_numeric_fits(v, p, s).is_ok();
        assert!(fits("12345678.99", 10, 2));
        assert!(fits("-12345678.99", 10, 2));
        // More fraction digits round (Postgres stores 12345678.99 → ok, 99999999.995 → 10^8).
        assert!(fits("12345678.994", 10, 2));
        assert!(!fits("99999999.995", 10, 2));
        assert!(fits("99999999.994999", 10, 2));
        assert!(!fits("123456789", 10, 2));
        assert!(!fits("123456789.1", 10, 2));
        assert!(fits("1.5e3", 10, 2));
        assert!(!fits("1e8", 10, 2));
        assert!(fits("9.9999999E7", 10, 2));
        assert!(fits("0.001", 3, 2));
        assert!(fits("0", 1, 0));
        assert!(fits("0.4", 1, 0));
        assert!(!fits("9.5", 1, 0));
        assert!(fits("NaN", 10, 2));
        assert!(!fits("Infinity", 10, 2));
        assert!(!fits("-inf", 10, 2));
        // numeric(3,5): less than 10^-2.
        assert!(fits("0.00999", 3, 5));
        assert!(fits("0.009994", 3, 5));
        assert!(!fits("0.009995", 3, 5));
        assert!(!fits("0.01", 3, 5));
        // Negative scale: numeric(3,-2) rounds to hundreds, less than 10^5.
        assert!(fits("99949", 3, -2));
        assert!(!fits("99950", 3, -2));
        // Not a number: left for the conversion to refuse.
        assert!(fits("abc", 10, 2));
        assert_eq!(
            check_numeric_fits("123456789", 10, 2).unwrap_err().0,
            "value 123456789 does not fit type numeric(10,2): it must round to an absolute value less than 10^8"
        );
    }

    #[test]
    fn non_finite_floats_survive_a_plan() {
        for f in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.1,
            f64::MIN_POSITIVE,
        ] {
            let json = serde_json::to_string(&Val::Float(f)).unwrap();
            match serde_json::from_str::<Val>(&json).unwrap() {
                Val::Float(g) => assert_eq!(g.to_bits(), f.to_bits(), "{json}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn values_back_to_json() {
        assert_eq!(Val::Ts(0).to_json(), json!("1970-01-01T00:00:00Z"));
        // Numbers keep their digits (serde_json arbitrary_precision): 1.50 stays 1.50.
        assert_eq!(Val::Numeric("1.50".into()).to_json().to_string(), "1.50");
        assert_eq!(
            Val::Numeric("123456789012345678901234567890".into())
                .to_json()
                .to_string(),
            "123456789012345678901234567890"
        );
        assert_eq!(Val::Float(f64::NAN).to_json(), Value::Null);
        assert_eq!(
            Val::Json(json!({"a": [1]})).to_text().unwrap(),
            "{\"a\":[1]}"
        );
    }
}
