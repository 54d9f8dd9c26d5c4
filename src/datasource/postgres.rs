//! PostgreSQL: option schema, the client (connection test, describing a table from
//! `information_schema`), the mapping of Postgres types to Flink types, and the Flink `jdbc` and
//! `postgres-cdc` connector options.
use super::schema::{def, req, secret, OptSpec, OptType, TIMEOUT};
use super::{Column, DatasourceKind, Described, Source, SourceError, SourceErrorKind};
use crate::pipeline::{ConnectorUse, PipelineError, Role};

/// The Postgres kind.
pub struct Postgres;

impl DatasourceKind for Postgres {
    const ACCEPTS_UPDATES: bool = true;
    const OPTIONS: &'static [OptSpec] = &[
        req("host", OptType::Host, "server host"),
        def("port", OptType::Int(1, 65535), "5432", "server port"),
        req("database", OptType::Str, "database name"),
        def("user", OptType::Str, "\"postgres\"", "user name"),
        def(
            "schema",
            OptType::Str,
            "\"public\"",
            "default schema of objects",
        ),
        def(
            "sslmode",
            OptType::Enum(&["disable", "prefer"]),
            "\"prefer\"",
            "TLS mode (TLS connections are not supported yet: prefer falls back to plain)",
        ),
        TIMEOUT,
        secret("password", "password"),
    ];

    const CDC_SOURCE: bool = true;

    async fn test(src: &Source) -> Result<String, SourceError> {
        src.bounded(select_one(src)).await
    }

    async fn describe(
        src: &Source,
        object: &str,
        _sample_size: usize,
    ) -> Result<Described, SourceError> {
        src.bounded(describe_table(src, object)).await
    }

    fn flink_options(table: &ConnectorUse) -> Result<Vec<(String, String)>, PipelineError> {
        let object = table.object();
        let (schema, name) = match object.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => (
                table.option("schema").unwrap_or_else(|| "public".into()),
                object.to_string(),
            ),
        };
        let host = table.option("host").unwrap_or_default();
        let port = table.option_int("port", 5432);
        let database = table.option("database").unwrap_or_default();
        let user = table.option("user").unwrap_or_default();
        let password = table.option("password").unwrap_or_default();
        if !table.cdc() {
            // stringtype=unspecified: a STRING reaches a jsonb, uuid, inet or enum column as
            // text Postgres converts, instead of a varchar it refuses.
            return Ok(vec![
                ("connector".into(), "jdbc".into()),
                (
                    "url".into(),
                    format!("jdbc:postgresql://{host}:{port}/{database}?stringtype=unspecified"),
                ),
                ("table-name".into(), jdbc_table_name(table, &schema, &name)),
                ("username".into(), user),
                ("password".into(), password),
            ]);
        }
        if !table.keyed() {
            return Err(table.invalid(
                "primary_key",
                "is required with cdc",
                "Name the table's primary key columns so updates and deletes can be applied.",
            ));
        }
        let slot: String = format!("pg_flink_{}", table.pipeline)
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(63)
            .collect();
        Ok(vec![
            ("connector".into(), "postgres-cdc".into()),
            // Updates and deletes by the primary key: no REPLICA IDENTITY FULL needed.
            ("changelog-mode".into(), "upsert".into()),
            ("hostname".into(), host),
            ("port".into(), port.to_string()),
            ("username".into(), user),
            ("password".into(), password),
            ("database-name".into(), database),
            ("schema-name".into(), schema),
            ("table-name".into(), name),
            ("slot.name".into(), slot),
            ("decoding.plugin.name".into(), "pgoutput".into()),
        ])
    }
}

/// The JDBC `table-name` of a Postgres table. Read (a source or a lookup), its STRING columns
/// are read as `text`: Flink's JDBC reader casts what the driver returns to a Java String,
/// and the driver returns objects, not strings, for json, jsonb, uuid, inet and the like.
fn jdbc_table_name(table: &ConnectorUse, schema: &str, name: &str) -> String {
    let plain = format!("{schema}.{name}");
    let Some(cols) = &table.table.columns else {
        return plain;
    };
    let strings = |ty: &str| {
        crate::pipeline::flinktype::parse(crate::pipeline::flinktype::split_not_null(ty).0)
            .is_ok_and(|t| t.is_string())
    };
    if table.role != Role::Source || !cols.iter().any(|c| strings(&c.ty)) {
        return plain;
    }
    let select: Vec<String> = cols
        .iter()
        .map(|c| {
            let q = crate::pipeline::pg_quoted(&c.name);
            if strings(&c.ty) {
                // CAST, not `::`: Flink's lookup statements are parsed for `:name` parameters.
                format!("CAST({q} AS text) AS {q}")
            } else {
                q
            }
        })
        .collect();
    format!(
        "(SELECT {} FROM {plain}) AS pg_flink_read",
        select.join(", ")
    )
}

async fn connect(src: &Source) -> Result<tokio_postgres::Client, SourceError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(src.opt_str("host"))
        .port(src.opt_int("port", 5432) as u16)
        .dbname(src.opt_str("database"))
        .user(src.opt_str("user"))
        .application_name("pg_flink")
        .connect_timeout(src.timeout())
        .ssl_mode(match src.opt_str("sslmode") {
            "disable" => tokio_postgres::config::SslMode::Disable,
            _ => tokio_postgres::config::SslMode::Prefer,
        });
    if let Some(pw) = src.secret("password") {
        cfg.password(pw);
    }
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| {
        src.err(
            SourceErrorKind::Unreachable,
            format!(
                "cannot connect to {}:{}: {}",
                src.opt_str("host"),
                src.opt_int("port", 5432),
                error_text(&e)
            ),
        )
    })?;
    tokio::spawn(conn);
    Ok(client)
}

/// `select 1` and the server version.
async fn select_one(src: &Source) -> Result<String, SourceError> {
    let c = connect(src).await?;
    let row = c
        .query_one("select 1, current_setting('server_version')", &[])
        .await
        .map_err(|e| src.err(SourceErrorKind::Remote, error_text(&e)))?;
    let one: i32 = row.get(0);
    let version: String = row.get(1);
    Ok(format!("select 1 returned {one}; PostgreSQL {version}"))
}

async fn describe_table(src: &Source, object: &str) -> Result<Described, SourceError> {
    let (schema, table) = match object.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => (src.opt_str("schema").to_string(), object.to_string()),
    };
    let c = connect(src).await?;
    let rows = c
        .query(
            "select column_name::text, data_type::text, udt_name::text, character_maximum_length::int4, \
             numeric_precision::int4, numeric_scale::int4, datetime_precision::int4, is_nullable = 'YES' \
             from information_schema.columns where table_schema = $1 and table_name = $2 order by ordinal_position",
            &[&schema, &table],
        )
        .await
        .map_err(|e| src.err(SourceErrorKind::Remote, error_text(&e)))?;
    if rows.is_empty() {
        return Err(src.err(SourceErrorKind::NotFound, format!("table \"{schema}\".\"{table}\" does not exist or has no columns visible to user \"{}\"", src.opt_str("user"))));
    }
    let columns = rows
        .iter()
        .map(|r| {
            let pc = PgColumn {
                data_type: r.get(1),
                udt_name: r.get(2),
                char_max_length: r.get(3),
                numeric_precision: r.get(4),
                numeric_scale: r.get(5),
                datetime_precision: r.get(6),
            };
            Column {
                name: r.get(0),
                source_type: display_type(&pc),
                flink_type: flink_type(&pc),
                nullable: r.get(7),
            }
        })
        .collect();
    Ok(Described {
        columns,
        sampled: None,
    })
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => crate::core::messages::error_chain(e),
    }
}

// Type mapping: documented in docs/type-mapping.md; keep the two in step.

/// Postgres column from `information_schema.columns` (+ `pg_attribute` for array elements).
#[derive(Debug, Clone, Default)]
pub struct PgColumn {
    pub data_type: String,
    pub udt_name: String,
    pub char_max_length: Option<i32>,
    pub numeric_precision: Option<i32>,
    pub numeric_scale: Option<i32>,
    pub datetime_precision: Option<i32>,
}

/// Flink type of a Postgres base type named by `udt_name` (`int4`, `varchar`, ...).
fn pg_base(udt: &str, c: &PgColumn) -> Option<String> {
    let p = c.datetime_precision.unwrap_or(6).clamp(0, 9);
    Some(match udt {
        "int2" => "SMALLINT".into(),
        "int4" => "INT".into(),
        "int8" => "BIGINT".into(),
        "float4" => "FLOAT".into(),
        "float8" => "DOUBLE".into(),
        "numeric" => match (c.numeric_precision, c.numeric_scale) {
            (Some(pr), Some(s)) if pr <= 38 => format!("DECIMAL({pr}, {s})"),
            // Unconstrained numeric: Flink's JDBC connector reads it as DECIMAL(38, 18).
            _ => "DECIMAL(38, 18)".into(),
        },
        "bool" => "BOOLEAN".into(),
        "text" | "name" | "citext" => "STRING".into(),
        "varchar" => match c.char_max_length {
            Some(n) => format!("VARCHAR({n})"),
            None => "STRING".into(),
        },
        "bpchar" => format!("CHAR({})", c.char_max_length.unwrap_or(1)),
        "timestamp" => format!("TIMESTAMP({p})"),
        // Flink's JDBC Postgres dialect rejects TIMESTAMP_LTZ ("Unsupported type"); it reads
        // timestamptz values as TIMESTAMP in the JVM's time zone.
        "timestamptz" => format!("TIMESTAMP({p})"),
        "date" => "DATE".into(),
        "time" => format!("TIME({})", p.min(3)),
        "json" | "jsonb" | "uuid" | "inet" | "cidr" | "macaddr" | "xml" => "STRING".into(),
        "bytea" => "BYTES".into(),
        _ => return None,
    })
}

/// Flink type of a Postgres column; None when Flink has no faithful type.
pub fn flink_type(c: &PgColumn) -> Option<String> {
    if c.data_type == "ARRAY" {
        let elem = c.udt_name.strip_prefix('_')?;
        // Element typmods are not in information_schema: arrays of varchar/numeric map to
        // their unbounded forms.
        let e = PgColumn {
            data_type: String::new(),
            udt_name: elem.into(),
            ..Default::default()
        };
        let inner = match elem {
            "varchar" | "bpchar" => "STRING".to_string(),
            _ => pg_base(elem, &e)?,
        };
        return Some(format!("ARRAY<{inner}>"));
    }
    if c.data_type == "USER-DEFINED" {
        // Enums and domains over text read fine as strings through JDBC.
        return Some("STRING".into());
    }
    pg_base(&c.udt_name, c)
}

/// Human-readable Postgres type (`numeric(10,2)`, `varchar(20)`, `int4[]`).
pub fn display_type(c: &PgColumn) -> String {
    if c.data_type == "ARRAY" {
        return format!("{}[]", c.udt_name.trim_start_matches('_'));
    }
    match (
        c.udt_name.as_str(),
        c.char_max_length,
        c.numeric_precision,
        c.numeric_scale,
    ) {
        ("varchar" | "bpchar", Some(n), _, _) => format!("{}({n})", c.udt_name),
        ("numeric", _, Some(p), Some(s)) => format!("numeric({p},{s})"),
        _ => c.udt_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasource::Kind;
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    fn src(kind: Kind, options: Value, secrets: Value) -> Source {
        Source {
            name: "s1".into(),
            kind,
            options: options.as_object().unwrap().clone(),
            secrets: secrets.as_object().unwrap().clone(),
        }
    }

    fn pg(dt: &str, udt: &str) -> PgColumn {
        PgColumn {
            data_type: dt.into(),
            udt_name: udt.into(),
            ..Default::default()
        }
    }

    #[test]
    fn postgres_types() {
        assert_eq!(flink_type(&pg("smallint", "int2")).unwrap(), "SMALLINT");
        assert_eq!(flink_type(&pg("integer", "int4")).unwrap(), "INT");
        assert_eq!(flink_type(&pg("bigint", "int8")).unwrap(), "BIGINT");
        let n = PgColumn {
            numeric_precision: Some(10),
            numeric_scale: Some(2),
            ..pg("numeric", "numeric")
        };
        assert_eq!(flink_type(&n).unwrap(), "DECIMAL(10, 2)");
        assert_eq!(display_type(&n), "numeric(10,2)");
        assert_eq!(
            flink_type(&pg("numeric", "numeric")).unwrap(),
            "DECIMAL(38, 18)"
        );
        let v = PgColumn {
            char_max_length: Some(20),
            ..pg("character varying", "varchar")
        };
        assert_eq!(flink_type(&v).unwrap(), "VARCHAR(20)");
        assert_eq!(flink_type(&pg("text", "text")).unwrap(), "STRING");
        assert_eq!(flink_type(&pg("boolean", "bool")).unwrap(), "BOOLEAN");
        let ts = PgColumn {
            datetime_precision: Some(6),
            ..pg("timestamp without time zone", "timestamp")
        };
        assert_eq!(flink_type(&ts).unwrap(), "TIMESTAMP(6)");
        let tz = PgColumn {
            datetime_precision: Some(3),
            ..pg("timestamp with time zone", "timestamptz")
        };
        assert_eq!(flink_type(&tz).unwrap(), "TIMESTAMP(3)");
        assert_eq!(flink_type(&pg("date", "date")).unwrap(), "DATE");
        assert_eq!(flink_type(&pg("jsonb", "jsonb")).unwrap(), "STRING");
        assert_eq!(flink_type(&pg("bytea", "bytea")).unwrap(), "BYTES");
        assert_eq!(flink_type(&pg("ARRAY", "_int4")).unwrap(), "ARRAY<INT>");
        assert_eq!(flink_type(&pg("ARRAY", "_text")).unwrap(), "ARRAY<STRING>");
        assert_eq!(display_type(&pg("ARRAY", "_text")), "text[]");
        assert_eq!(flink_type(&pg("interval", "interval")), None);
    }

    #[test]
    fn refused_postgres_port_fails_fast() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let s = src(
            Kind::Postgres,
            json!({"host": "127.0.0.1", "port": 1, "database": "d", "user": "u", "timeout_ms": 2000}),
            json!({}),
        );
        let t = Instant::now();
        let e = rt.block_on(s.test()).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(e.kind, SourceErrorKind::Unreachable);
        assert!(
            e.message.contains("cannot connect to 127.0.0.1:1"),
            "{}",
            e.message
        );
    }
}
