//! Unit tests of the value layer.
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
