//! Postgres column types for Flink SQL types (IMPORT FOREIGN SCHEMA and pipeline results).

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
