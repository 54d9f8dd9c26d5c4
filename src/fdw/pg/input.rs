//! Text converted by the column type's own input function, under the session's settings
//! (DateStyle, TimeZone, …): what `COPY` or a cast from text would make of it. The Kafka
//! wrapper converts `text`/`csv` messages and keys this way, so `01-01-2015` or
//! `Thu Jan 01 01:31:00 2015` read as Postgres reads them. An input function's ERROR becomes
//! a conversion failure of that value (for `on_error` and `_error`), with Postgres' message.
use super::datum::datum_to_val;
use crate::fdw::value::{self, Mismatch, PgType, Val};
use pgrx::pg_sys::{self, panic::CaughtError, Oid};
use pgrx::PgTryBuilder;
use std::ffi::CString;

/// The type OID of a scalar column type (arrays and byte strings: None).
fn oid_of(ty: &PgType) -> Option<Oid> {
    Some(match ty {
        PgType::Bool => pg_sys::BOOLOID,
        PgType::Int2 => pg_sys::INT2OID,
        PgType::Int4 => pg_sys::INT4OID,
        PgType::Int8 => pg_sys::INT8OID,
        PgType::Float4 => pg_sys::FLOAT4OID,
        PgType::Float8 => pg_sys::FLOAT8OID,
        PgType::Numeric => pg_sys::NUMERICOID,
        PgType::Json => pg_sys::JSONOID,
        PgType::Jsonb => pg_sys::JSONBOID,
        PgType::Timestamptz => pg_sys::TIMESTAMPTZOID,
        PgType::Timestamp => pg_sys::TIMESTAMPOID,
        PgType::Date => pg_sys::DATEOID,
        PgType::Time => pg_sys::TIMEOID,
        _ => return None,
    })
}

/// `s` as a value of `ty`, converted by the type's input function (text stays as is, arrays
/// and bytea use the wrapper's own conversion).
pub fn text_input(s: &str, ty: &PgType) -> Result<Val, Mismatch> {
    let Some(oid) = oid_of(ty) else {
        return value::from_text(s, ty);
    };
    let Ok(c) = CString::new(s) else {
        return Err(Mismatch(format!(
            "value contains a NUL byte, which type {} cannot hold",
            ty.sql()
        )));
    };
    PgTryBuilder::new(|| {
        // SAFETY: getTypeInputInfo fills the two out-parameters for a valid type OID (the
        // builtin OIDs above) or raises an ERROR, which the PgTryBuilder catches.
        // OidInputFunctionCall gets a NUL-terminated string that outlives the call and the
        // OIDs getTypeInputInfo returned; its result is a datum of type `oid` in the current
        // memory context, converted to a Rust value at once (datum_to_val copies it).
        unsafe {
            let mut func = pg_sys::InvalidOid;
            let mut ioparam = pg_sys::InvalidOid;
            pg_sys::getTypeInputInfo(oid, &mut func, &mut ioparam);
            let d = pg_sys::OidInputFunctionCall(func, c.as_ptr() as *mut _, ioparam, -1);
            Ok(datum_to_val(d, false, oid))
        }
    })
    .catch_others(|e| {
        let msg = match &e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r.message().to_string(),
            CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
        };
        Err(Mismatch(msg))
    })
    .execute()
}
