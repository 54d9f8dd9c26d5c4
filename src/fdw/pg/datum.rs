//! Conversions between Postgres datums and the wrappers' [`Val`]: which column types the
//! wrappers fill ([`pg_type`]), datums of constants, parameters and written rows into values
//! ([`datum_to_val`]), and values the wrappers produce into datums of the column's type
//! ([`val_to_datum`], allocated in the current memory context).
use super::util::cstr;
use crate::fdw::value::{
    check_numeric_fits, numeric_typmod, round_to_typmod, PgType, Val, PG_EPOCH_DAYS,
    PG_EPOCH_MICROS,
};
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{AnyNumeric, FromDatum, IntoDatum, JsonB};
use std::ffi::CString;

/// The type the wrappers fill for a column of type `oid` (None: not supported).
pub(super) fn pg_type(oid: Oid) -> Option<PgType> {
    use pg_sys::BuiltinOid as B;
    let is = |x: B| x.value() == oid;
    Some(if is(B::BOOLOID) {
        PgType::Bool
    } else if is(B::INT2OID) {
        PgType::Int2
    } else if is(B::INT4OID) {
        PgType::Int4
    } else if is(B::INT8OID) {
        PgType::Int8
    } else if is(B::FLOAT4OID) {
        PgType::Float4
    } else if is(B::FLOAT8OID) {
        PgType::Float8
    } else if is(B::NUMERICOID) {
        PgType::Numeric
    } else if is(B::TEXTOID) || is(B::VARCHAROID) || is(B::BPCHAROID) {
        PgType::Text
    } else if is(B::JSONOID) {
        PgType::Json
    } else if is(B::JSONBOID) {
        PgType::Jsonb
    } else if is(B::TIMESTAMPTZOID) {
        PgType::Timestamptz
    } else if is(B::TIMESTAMPOID) {
        PgType::Timestamp
    } else if is(B::DATEOID) {
        PgType::Date
    } else if is(B::TIMEOID) {
        PgType::Time
    } else if is(B::BYTEAOID) {
        PgType::Bytea
    } else if is(B::TEXTARRAYOID) || is(B::VARCHARARRAYOID) {
        PgType::Array(Box::new(PgType::Text))
    } else if is(B::INT2ARRAYOID) {
        PgType::Array(Box::new(PgType::Int2))
    } else if is(B::INT4ARRAYOID) {
        PgType::Array(Box::new(PgType::Int4))
    } else if is(B::INT8ARRAYOID) {
        PgType::Array(Box::new(PgType::Int8))
    } else if is(B::FLOAT4ARRAYOID) {
        PgType::Array(Box::new(PgType::Float4))
    } else if is(B::FLOAT8ARRAYOID) {
        PgType::Array(Box::new(PgType::Float8))
    } else if is(B::BOOLARRAYOID) {
        PgType::Array(Box::new(PgType::Bool))
    } else if is(B::NUMERICARRAYOID) {
        PgType::Array(Box::new(PgType::Numeric))
    } else {
        return None;
    })
}

/// Converts a datum of type `oid` to a value (constants, parameters, inserted rows).
///
/// # Safety
/// Unless `isnull`, `d` is a valid datum of type `oid` (by-reference types: it points to a
/// detoastable value that stays alive during the call, e.g. in the slot, Const node or
/// per-tuple memory it came from). The result owns its data; nothing points into `d`.
pub(super) unsafe fn datum_to_val(d: Datum, isnull: bool, oid: Oid) -> Val {
    use pg_sys::BuiltinOid as B;
    if isnull {
        return Val::Null;
    }
    let is = |x: B| x.value() == oid;
    if is(B::BOOLOID) {
        Val::Bool(bool::from_datum(d, false).unwrap_or(false))
    } else if is(B::INT2OID) {
        Val::Int(i16::from_datum(d, false).unwrap_or(0) as i64)
    } else if is(B::INT4OID) {
        Val::Int(i32::from_datum(d, false).unwrap_or(0) as i64)
    } else if is(B::INT8OID) {
        Val::Int(i64::from_datum(d, false).unwrap_or(0))
    } else if is(B::FLOAT4OID) {
        Val::Float(f32::from_datum(d, false).unwrap_or(0.0) as f64)
    } else if is(B::FLOAT8OID) {
        Val::Float(f64::from_datum(d, false).unwrap_or(0.0))
    } else if is(B::NUMERICOID) {
        Val::Numeric(
            AnyNumeric::from_datum(d, false)
                .map(|n| n.to_string())
                .unwrap_or_default(),
        )
    } else if is(B::TEXTOID)
        || is(B::VARCHAROID)
        || is(B::BPCHAROID)
        || is(B::NAMEOID)
        || is(B::UNKNOWNOID)
    {
        if is(B::NAMEOID) || is(B::UNKNOWNOID) {
            return Val::Text(output_text(d, oid));
        }
        Val::Text(String::from_datum(d, false).unwrap_or_default())
    } else if is(B::JSONBOID) {
        Val::Json(JsonB::from_datum(d, false).map(|j| j.0).unwrap_or_default())
    } else if is(B::JSONOID) {
        Val::Json(
            pgrx::Json::from_datum(d, false)
                .map(|j| j.0)
                .unwrap_or_default(),
        )
    } else if is(B::TIMESTAMPTZOID) || is(B::TIMESTAMPOID) {
        Val::Ts((d.value() as i64).saturating_add(PG_EPOCH_MICROS))
    } else if is(B::DATEOID) {
        Val::Date((d.value() as i32).saturating_add(PG_EPOCH_DAYS))
    } else if is(B::TIMEOID) {
        Val::Time(d.value() as i64)
    } else if is(B::BYTEAOID) {
        Val::Bytes(Vec::<u8>::from_datum(d, false).unwrap_or_default())
    } else if is(B::TEXTARRAYOID) || is(B::VARCHARARRAYOID) {
        array(d, Val::Text)
    } else if is(B::INT2ARRAYOID) {
        array(d, |i: i16| Val::Int(i as i64))
    } else if is(B::INT4ARRAYOID) {
        array(d, |i: i32| Val::Int(i as i64))
    } else if is(B::INT8ARRAYOID) {
        array(d, Val::Int)
    } else if is(B::FLOAT8ARRAYOID) {
        array(d, Val::Float)
    } else if is(B::FLOAT4ARRAYOID) {
        array(d, |f: f32| Val::Float(f as f64))
    } else if is(B::BOOLARRAYOID) {
        array(d, Val::Bool)
    } else if is(B::TIMESTAMPTZARRAYOID) {
        array(d, |t: pgrx::datum::TimestampWithTimeZone| {
            Val::Ts(i64::from(t).saturating_add(PG_EPOCH_MICROS))
        })
    } else {
        // Anything else (uuid, inet, …) as its text form.
        Val::Text(output_text(d, oid))
    }
}

/// A one-dimensional array datum as `Val::Array` (NULL elements kept).
///
/// # Safety
/// `d` is a valid, non-NULL array datum whose element type is the one `T` unboxes.
unsafe fn array<T>(d: Datum, f: impl Fn(T) -> Val) -> Val
where
    for<'arr> T: pgrx::datum::UnboxDatum<As<'arr> = T> + 'arr,
{
    Val::Array(
        Vec::<Option<T>>::from_datum(d, false)
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.map(&f).unwrap_or(Val::Null))
            .collect(),
    )
}

/// The text form of a datum through its type's output function.
///
/// # Safety
/// `d` is a valid, non-NULL datum of type `oid`.
unsafe fn output_text(d: Datum, oid: Oid) -> String {
    let mut func = Oid::INVALID;
    let mut varlena = false;
    pg_sys::getTypeOutputInfo(oid, &mut func, &mut varlena);
    cstr(pg_sys::OidOutputFunctionCall(func, d))
}

/// A `numeric` datum from number text, built by `numeric_in` straight into the current memory
/// context with the column's typmod (`numeric(p,s)`: rounded to `s` digits, as Postgres'
/// input does; -1: as written). A value the typmod cannot hold is refused with a message
/// before `numeric_in` is called (which would raise "numeric field overflow"). Text that is
/// not a plain decimal number goes through `AnyNumeric` first, which turns a `numeric_in`
/// error into a message instead of an ERROR.
fn numeric_datum(s: &str, typmod: i32) -> Result<Option<Datum>, String> {
    if let Some((precision, scale)) = numeric_typmod(typmod) {
        check_numeric_fits(s, precision, scale).map_err(|m| m.0)?;
    }
    let plain = !s.is_empty()
        && s.len() < 40
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'));
    let text = if plain {
        s.to_string()
    } else {
        let n = AnyNumeric::try_from(s).map_err(|e| format!("value {s} is not a number: {e}"))?;
        if typmod < 0 {
            return Ok(n.into_datum());
        }
        // numeric_out's text: plain decimal, NaN (which any typmod takes); an infinity was
        // refused above.
        n.to_string()
    };
    let c = CString::new(text).map_err(|_| format!("value {s} is not a number"))?;
    // SAFETY: numeric_in(cstring, oid, typmod) gets the arguments its fmgr signature declares;
    // `c` outlives the call, and the result is a new Numeric palloc'd in the current memory
    // context (nothing points into `c`). `c` is a valid number (plain decimal text, or
    // numeric_out's text) and the typmod check above passed, so it cannot fail; pgrx's FFI
    // boundary would turn an ERROR into a Rust panic anyway.
    let d = unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::numeric_in,
            &[
                Some(Datum::from(c.as_ptr())),
                Some(Datum::from(pg_sys::InvalidOid)),
                Some(Datum::from(typmod)),
            ],
        )
    };
    Ok(d)
}

/// Converts a value produced by a wrapper into a datum of the column's type (in the current
/// memory context), applying the column's typmod (`atttypmod`, -1 for none) as Postgres'
/// input would: `numeric(p,s)` rounds to `s` digits and refuses what does not fit,
/// `timestamp(p)`/`timestamptz(p)`/`time(p)` round to `p` fraction digits. (A foreign scan's
/// rows are not coerced by Postgres: what the wrapper builds is what queries see.)
pub(super) fn val_to_datum(v: Val, ty: &PgType, typmod: i32) -> Result<Option<Datum>, String> {
    let wrong = |v: &Val| format!("internal: value {v:?} for a {} column", ty.sql());
    Ok(match (v, ty) {
        (Val::Null, _) => None,
        (Val::Bool(b), PgType::Bool) => b.into_datum(),
        (Val::Int(i), PgType::Int2) => (i as i16).into_datum(),
        (Val::Int(i), PgType::Int4) => (i as i32).into_datum(),
        (Val::Int(i), PgType::Int8) => i.into_datum(),
        (Val::Float(f), PgType::Float4) => (f as f32).into_datum(),
        (Val::Float(f), PgType::Float8) => f.into_datum(),
        (Val::Int(i), PgType::Float8) => (i as f64).into_datum(),
        (Val::Numeric(s), PgType::Numeric) => numeric_datum(&s, typmod)?,
        (Val::Text(s), PgType::Text) => s.into_datum(),
        (Val::Json(j), PgType::Jsonb) => JsonB(j).into_datum(),
        (Val::Json(j), PgType::Json) => pgrx::Json(j).into_datum(),
        (Val::Ts(us), PgType::Timestamptz | PgType::Timestamp) => Some(Datum::from(
            round_to_typmod(us.saturating_sub(PG_EPOCH_MICROS), typmod),
        )),
        (Val::Time(us), PgType::Time) => Some(Datum::from(round_to_typmod(us, typmod))),
        (Val::Date(d), PgType::Date) => Some(Datum::from(d.saturating_sub(PG_EPOCH_DAYS))),
        (Val::Bytes(b), PgType::Bytea) => b.into_datum(),
        (Val::Array(items), PgType::Array(elem)) => {
            fn col<T>(items: Vec<Val>, f: impl Fn(Val) -> Option<T>) -> Vec<Option<T>> {
                items.into_iter().map(f).collect()
            }
            match elem.as_ref() {
                PgType::Text => col(items, |v| v.to_text()).into_datum(),
                PgType::Int2 => col(items, |v| v.as_i64().map(|i| i as i16)).into_datum(),
                PgType::Int4 => col(items, |v| v.as_i64().map(|i| i as i32)).into_datum(),
                PgType::Int8 => col(items, |v| v.as_i64()).into_datum(),
                PgType::Float4 => col(items, |v| match v {
                    Val::Float(f) => Some(f as f32),
                    Val::Int(i) => Some(i as f32),
                    _ => None,
                })
                .into_datum(),
                PgType::Float8 => col(items, |v| match v {
                    Val::Float(f) => Some(f),
                    Val::Int(i) => Some(i as f64),
                    _ => None,
                })
                .into_datum(),
                PgType::Bool => col(items, |v| match v {
                    Val::Bool(b) => Some(b),
                    _ => None,
                })
                .into_datum(),
                PgType::Numeric => col(items, |v| {
                    v.to_text()
                        .and_then(|s| AnyNumeric::try_from(s.as_str()).ok())
                })
                .into_datum(),
                other => return Err(format!("arrays of {} are not supported", other.sql())),
            }
        }
        (v, _) => return Err(wrong(&v)),
    })
}
