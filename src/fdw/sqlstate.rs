//! The SQLSTATE of a value that does not convert: the code Postgres' own input function
//! raises for the same text (so a client handling `22P02` or `22003` from `COPY` handles ours
//! the same way), chosen from the conversion's message (value.rs and the codecs word them).
use pgrx::PgSqlErrorCode;

/// SQLSTATE for a conversion failure described by `message` (one or several column errors,
/// joined; the first decides).
pub fn of_conversion(message: &str) -> PgSqlErrorCode {
    let m = message.to_ascii_lowercase();
    let first = m.split("; ").next().unwrap_or(&m);
    let time = ["type date", "type timestamp", "type time"]
        .iter()
        .any(|t| first.contains(t));
    if first.contains("date/time field value out of range")
        || first.starts_with("date out of range")
        || first.starts_with("timestamp out of range")
    {
        PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW // 22008, as Postgres' input says
    } else if first.contains("out of range") {
        if time {
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW // 22008
        } else {
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE // 22003
        }
    } else if first.contains("\\u0000") || first.contains("not utf-8") {
        PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER // 22P05
    } else if first.contains("does not fit numeric(") {
        PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE // 22003, as numeric's typmod check
    } else if time {
        PgSqlErrorCode::ERRCODE_INVALID_DATETIME_FORMAT // 22007
    } else {
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION // 22P02
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::value::{from_json_text, PgType};

    fn code(text: &str, ty: PgType) -> PgSqlErrorCode {
        let e = from_json_text(text, &ty).expect_err(text);
        of_conversion(&e.0)
    }

    #[test]
    fn codes_follow_postgres_input_functions() {
        use PgSqlErrorCode::*;
        assert_eq!(
            code("9223372036854775808", PgType::Int8),
            ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            code("3000000000", PgType::Int4),
            ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            code("1e400", PgType::Float8),
            ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            code("1e-400", PgType::Float8),
            ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            code("1e-50", PgType::Float4),
            ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert!(from_json_text("0e-400", &PgType::Float8).is_ok());
        assert!(from_json_text("1e-310", &PgType::Float8).is_ok()); // subnormal, as Postgres
        assert_eq!(
            code("\"x\"", PgType::Int4),
            ERRCODE_INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            code("\"2024-02-30\"", PgType::Date),
            ERRCODE_INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            code("\"soon\"", PgType::Timestamptz),
            ERRCODE_INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            code("\"a\\u0000b\"", PgType::Text),
            ERRCODE_UNTRANSLATABLE_CHARACTER
        );
        assert_eq!(
            of_conversion("value is not JSON: EOF"),
            ERRCODE_INVALID_TEXT_REPRESENTATION
        );
    }
}
