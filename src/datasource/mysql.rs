//! MySQL: option schema, the client (connection test, describing a table from
//! `information_schema`), the mapping of MySQL types to Flink types, and the Flink `jdbc`
//! connector options.
use super::schema::{def, req, secret, OptSpec, OptType, TIMEOUT};
use super::{Column, DatasourceKind, Described, Source, SourceError, SourceErrorKind};
use crate::pipeline::{ConnectorUse, PipelineError};

/// The MySQL kind.
pub struct Mysql;

impl DatasourceKind for Mysql {
    const ACCEPTS_UPDATES: bool = true;
    const OPTIONS: &'static [OptSpec] = &[
        req("host", OptType::Host, "server host"),
        def("port", OptType::Int(1, 65535), "3306", "server port"),
        req("database", OptType::Str, "database name"),
        def("user", OptType::Str, "\"root\"", "user name"),
        TIMEOUT,
        secret("password", "password"),
    ];

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
        Ok(vec![
            ("connector".into(), "jdbc".into()),
            (
                "url".into(),
                format!(
                    "jdbc:mysql://{}:{}/{}",
                    table.option("host").unwrap_or_default(),
                    table.option_int("port", 3306),
                    table.option("database").unwrap_or_default()
                ),
            ),
            ("table-name".into(), table.object().into()),
            ("username".into(), table.option("user").unwrap_or_default()),
            (
                "password".into(),
                table.option("password").unwrap_or_default(),
            ),
        ])
    }
}

async fn connect(src: &Source) -> Result<mysql_async::Conn, SourceError> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(src.opt_str("host").to_string())
        .tcp_port(src.opt_int("port", 3306) as u16)
        .user(Some(src.opt_str("user").to_string()))
        .pass(src.secret("password").map(str::to_string))
        .db_name(Some(src.opt_str("database").to_string()))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.map_err(|e| {
        src.err(
            SourceErrorKind::Unreachable,
            format!(
                "cannot connect to {}:{}: {e}",
                src.opt_str("host"),
                src.opt_int("port", 3306)
            ),
        )
    })
}

/// `select 1` and the server version.
async fn select_one(src: &Source) -> Result<String, SourceError> {
    use mysql_async::prelude::Queryable;
    let mut c = connect(src).await?;
    let row: Option<(i64, String)> = c
        .query_first("select 1, version()")
        .await
        .map_err(|e| src.err(SourceErrorKind::Remote, e))?;
    let _ = c.disconnect().await;
    let (one, version) =
        row.ok_or_else(|| src.err(SourceErrorKind::Remote, "select 1 returned no row"))?;
    Ok(format!("select 1 returned {one}; server {version}"))
}

async fn describe_table(src: &Source, object: &str) -> Result<Described, SourceError> {
    use mysql_async::prelude::Queryable;
    let (schema, table) = match object.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => (src.opt_str("database").to_string(), object.to_string()),
    };
    let mut c = connect(src).await?;
    type Row = (
        String,
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        String,
    );
    let rows: Vec<Row> = c
        .exec(
            "select column_name, data_type, column_type, character_maximum_length, numeric_precision, numeric_scale, \
             datetime_precision, is_nullable from information_schema.columns where table_schema = ? and table_name = ? \
             order by ordinal_position",
            (schema.clone(), table.clone()),
        )
        .await
        .map_err(|e| src.err(SourceErrorKind::Remote, e))?;
    let _ = c.disconnect().await;
    if rows.is_empty() {
        return Err(src.err(SourceErrorKind::NotFound, format!("table `{schema}`.`{table}` does not exist or has no columns visible to user \"{}\"", src.opt_str("user"))));
    }
    let columns = rows
        .into_iter()
        .map(|(name, data_type, column_type, cl, np, ns, dp, nullable)| {
            let mc = MyColumn {
                data_type,
                column_type: column_type.clone(),
                char_max_length: cl,
                numeric_precision: np,
                numeric_scale: ns,
                datetime_precision: dp,
            };
            Column {
                name,
                source_type: column_type,
                flink_type: flink_type(&mc),
                nullable: nullable == "YES",
            }
        })
        .collect();
    Ok(Described {
        columns,
        sampled: None,
    })
}

// Type mapping: documented in docs/type-mapping.md; keep the two in step.

/// MySQL column from `information_schema.columns`.
#[derive(Debug, Clone, Default)]
pub struct MyColumn {
    pub data_type: String,
    /// e.g. `tinyint(1)`, `int(10) unsigned`, `decimal(10,2)`.
    pub column_type: String,
    pub char_max_length: Option<i64>,
    pub numeric_precision: Option<i64>,
    pub numeric_scale: Option<i64>,
    pub datetime_precision: Option<i64>,
}

/// Flink type of a MySQL column; None when Flink has no faithful type.
pub fn flink_type(c: &MyColumn) -> Option<String> {
    let ct = c.column_type.to_ascii_lowercase();
    let unsigned = ct.contains("unsigned");
    let p = c.datetime_precision.unwrap_or(0).clamp(0, 9);
    Some(match c.data_type.to_ascii_lowercase().as_str() {
        "tinyint" if ct.starts_with("tinyint(1)") => "BOOLEAN".into(),
        "tinyint" if unsigned => "SMALLINT".into(),
        "tinyint" => "TINYINT".into(),
        "smallint" if unsigned => "INT".into(),
        "smallint" => "SMALLINT".into(),
        "mediumint" => "INT".into(),
        "int" | "integer" if unsigned => "BIGINT".into(),
        "int" | "integer" => "INT".into(),
        "bigint" if unsigned => "DECIMAL(20, 0)".into(),
        "bigint" => "BIGINT".into(),
        "decimal" | "numeric" => {
            format!(
                "DECIMAL({}, {})",
                c.numeric_precision.unwrap_or(10).min(38),
                c.numeric_scale.unwrap_or(0)
            )
        }
        "float" => "FLOAT".into(),
        "double" | "real" => "DOUBLE".into(),
        "bit" if c.numeric_precision == Some(1) => "BOOLEAN".into(),
        "varchar" => format!("VARCHAR({})", c.char_max_length.unwrap_or(255)),
        "char" => format!("CHAR({})", c.char_max_length.unwrap_or(1)),
        "tinytext" | "text" | "mediumtext" | "longtext" | "json" | "enum" | "set" => {
            "STRING".into()
        }
        "date" => "DATE".into(),
        "datetime" | "timestamp" => format!("TIMESTAMP({p})"),
        "time" => format!("TIME({})", p.min(3)),
        "year" => "INT".into(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => "BYTES".into(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_types() {
        let c = |dt: &str, ct: &str| MyColumn {
            data_type: dt.into(),
            column_type: ct.into(),
            ..Default::default()
        };
        assert_eq!(flink_type(&c("tinyint", "tinyint(1)")).unwrap(), "BOOLEAN");
        assert_eq!(flink_type(&c("int", "int(11)")).unwrap(), "INT");
        assert_eq!(flink_type(&c("int", "int(10) unsigned")).unwrap(), "BIGINT");
        assert_eq!(
            flink_type(&c("bigint", "bigint(20) unsigned")).unwrap(),
            "DECIMAL(20, 0)"
        );
        let d = MyColumn {
            numeric_precision: Some(12),
            numeric_scale: Some(4),
            ..c("decimal", "decimal(12,4)")
        };
        assert_eq!(flink_type(&d).unwrap(), "DECIMAL(12, 4)");
        let v = MyColumn {
            char_max_length: Some(64),
            ..c("varchar", "varchar(64)")
        };
        assert_eq!(flink_type(&v).unwrap(), "VARCHAR(64)");
        let dt = MyColumn {
            datetime_precision: Some(3),
            ..c("datetime", "datetime(3)")
        };
        assert_eq!(flink_type(&dt).unwrap(), "TIMESTAMP(3)");
        assert_eq!(flink_type(&c("json", "json")).unwrap(), "STRING");
        assert_eq!(flink_type(&c("geometry", "geometry")), None);
    }
}
