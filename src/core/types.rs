//! Mapping source types (Postgres, MySQL, Elasticsearch, JSON samples from Kafka) to Flink SQL
//! types. The table is documented in docs/type-mapping.md; keep the two in step.
use serde_json::{Map, Value};

/// One column of a described object.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub source_type: String,
    /// None when Flink has no faithful type for the source type.
    pub flink_type: Option<String>,
    pub nullable: bool,
}

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

pub fn pg_to_flink(c: &PgColumn) -> Option<String> {
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
pub fn pg_display(c: &PgColumn) -> String {
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

pub fn mysql_to_flink(c: &MyColumn) -> Option<String> {
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

/// Columns of an Elasticsearch mapping (`properties` object). Objects become ROW types,
/// `nested` fields ARRAY<ROW>; every ES field is nullable (and may hold arrays, which Flink's
/// connector reads as the declared scalar type only for single values).
pub fn es_columns(properties: &Map<String, Value>) -> Vec<Column> {
    let mut out: Vec<Column> = properties
        .iter()
        .map(|(name, field)| {
            let (source_type, flink_type) = es_field(field, 0);
            Column {
                name: name.clone(),
                source_type,
                flink_type,
                nullable: true,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn es_field(field: &Value, depth: usize) -> (String, Option<String>) {
    let ty = field.get("type").and_then(Value::as_str);
    let props = field.get("properties").and_then(Value::as_object);
    match (ty, props) {
        (None | Some("object"), Some(p)) => ("object".into(), es_row(p, depth)),
        (Some("nested"), Some(p)) => (
            "nested".into(),
            es_row(p, depth).map(|r| format!("ARRAY<{r}>")),
        ),
        (Some(t), _) => (t.to_string(), es_scalar(t).map(str::to_string)),
        (None, None) => ("object".into(), None),
    }
}

fn es_row(p: &Map<String, Value>, depth: usize) -> Option<String> {
    if depth >= 8 || p.is_empty() {
        return None;
    }
    let mut keys: Vec<&String> = p.keys().collect();
    keys.sort();
    let mut fields = Vec::new();
    for k in keys {
        let (_, t) = es_field(&p[k], depth + 1);
        fields.push(format!("{} {}", crate::core::quote::ident(k), t?));
    }
    Some(format!("ROW<{}>", fields.join(", ")))
}

fn es_scalar(t: &str) -> Option<&'static str> {
    Some(match t {
        "keyword" | "text" | "constant_keyword" | "wildcard" | "match_only_text" | "ip"
        | "version" => "STRING",
        "long" => "BIGINT",
        "unsigned_long" => "DECIMAL(20, 0)",
        "integer" => "INT",
        "short" => "SMALLINT",
        "byte" => "TINYINT",
        "double" | "scaled_float" => "DOUBLE",
        "float" | "half_float" => "FLOAT",
        "boolean" => "BOOLEAN",
        "date" => "TIMESTAMP(3)",
        "date_nanos" => "TIMESTAMP(9)",
        "binary" => "BYTES",
        _ => return None,
    })
}

/// Type inference over JSON documents (Kafka samples).
#[derive(Debug, Clone, Default)]
pub struct JsonInference {
    docs: usize,
    fields: Vec<(String, FieldStats)>,
}

#[derive(Debug, Clone, Default)]
struct FieldStats {
    seen: usize,
    nulls: usize,
    bools: usize,
    ints: usize,
    floats: usize,
    strings: usize,
    timestamps: usize,
    objects: usize,
    arrays: usize,
}

impl JsonInference {
    /// Adds one sampled document; returns false (and ignores it) if it is not a JSON object.
    pub fn add(&mut self, doc: &Value) -> bool {
        let Some(obj) = doc.as_object() else {
            return false;
        };
        self.docs += 1;
        for (k, v) in obj {
            let idx = match self.fields.iter().position(|(n, _)| n == k) {
                Some(i) => i,
                None => {
                    self.fields.push((k.clone(), FieldStats::default()));
                    self.fields.len() - 1
                }
            };
            let f = &mut self.fields[idx].1;
            f.seen += 1;
            match v {
                Value::Null => f.nulls += 1,
                Value::Bool(_) => f.bools += 1,
                Value::Number(n) if n.is_i64() || n.is_u64() => f.ints += 1,
                Value::Number(_) => f.floats += 1,
                Value::String(s) if looks_like_timestamp(s) => f.timestamps += 1,
                Value::String(_) => f.strings += 1,
                Value::Object(_) => f.objects += 1,
                Value::Array(_) => f.arrays += 1,
            }
        }
        true
    }

    pub fn docs(&self) -> usize {
        self.docs
    }

    /// Columns in first-seen order.
    pub fn columns(&self) -> Vec<Column> {
        self.fields
            .iter()
            .map(|(name, f)| {
                let non_null = f.seen - f.nulls;
                let kinds = [
                    f.bools,
                    f.ints,
                    f.floats,
                    f.strings,
                    f.timestamps,
                    f.objects,
                    f.arrays,
                ]
                .iter()
                .filter(|&&c| c > 0)
                .count();
                let (src, flink) = if non_null == 0 {
                    ("null", "STRING")
                } else if kinds == 1 && f.bools > 0 {
                    ("boolean", "BOOLEAN")
                } else if kinds == 1 && f.ints > 0 {
                    ("integer", "BIGINT")
                } else if (f.ints > 0 || f.floats > 0) && f.ints + f.floats == non_null {
                    ("number", "DOUBLE")
                } else if kinds == 1 && f.timestamps > 0 {
                    ("string (ISO-8601 timestamp)", "TIMESTAMP(3)")
                } else if f.strings + f.timestamps == non_null {
                    ("string", "STRING")
                } else if kinds == 1 && f.objects > 0 {
                    // Nested objects are kept as JSON text; declare a ROW by hand if needed.
                    ("object", "STRING")
                } else if kinds == 1 && f.arrays > 0 {
                    ("array", "STRING")
                } else {
                    ("mixed", "STRING")
                };
                Column {
                    name: name.clone(),
                    source_type: format!("json {src}"),
                    flink_type: Some(flink.to_string()),
                    nullable: f.nulls > 0 || f.seen < self.docs,
                }
            })
            .collect()
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    // 2024-01-31T12:34:56[.fff][Z|+hh:mm] or with a space.
    let b = s.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && b[16] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pg(dt: &str, udt: &str) -> PgColumn {
        PgColumn {
            data_type: dt.into(),
            udt_name: udt.into(),
            ..Default::default()
        }
    }

    #[test]
    fn postgres_types() {
        assert_eq!(pg_to_flink(&pg("smallint", "int2")).unwrap(), "SMALLINT");
        assert_eq!(pg_to_flink(&pg("integer", "int4")).unwrap(), "INT");
        assert_eq!(pg_to_flink(&pg("bigint", "int8")).unwrap(), "BIGINT");
        let n = PgColumn {
            numeric_precision: Some(10),
            numeric_scale: Some(2),
            ..pg("numeric", "numeric")
        };
        assert_eq!(pg_to_flink(&n).unwrap(), "DECIMAL(10, 2)");
        assert_eq!(pg_display(&n), "numeric(10,2)");
        assert_eq!(
            pg_to_flink(&pg("numeric", "numeric")).unwrap(),
            "DECIMAL(38, 18)"
        );
        let v = PgColumn {
            char_max_length: Some(20),
            ..pg("character varying", "varchar")
        };
        assert_eq!(pg_to_flink(&v).unwrap(), "VARCHAR(20)");
        assert_eq!(pg_to_flink(&pg("text", "text")).unwrap(), "STRING");
        assert_eq!(pg_to_flink(&pg("boolean", "bool")).unwrap(), "BOOLEAN");
        let ts = PgColumn {
            datetime_precision: Some(6),
            ..pg("timestamp without time zone", "timestamp")
        };
        assert_eq!(pg_to_flink(&ts).unwrap(), "TIMESTAMP(6)");
        let tz = PgColumn {
            datetime_precision: Some(3),
            ..pg("timestamp with time zone", "timestamptz")
        };
        assert_eq!(pg_to_flink(&tz).unwrap(), "TIMESTAMP(3)");
        assert_eq!(pg_to_flink(&pg("date", "date")).unwrap(), "DATE");
        assert_eq!(pg_to_flink(&pg("jsonb", "jsonb")).unwrap(), "STRING");
        assert_eq!(pg_to_flink(&pg("bytea", "bytea")).unwrap(), "BYTES");
        assert_eq!(pg_to_flink(&pg("ARRAY", "_int4")).unwrap(), "ARRAY<INT>");
        assert_eq!(pg_to_flink(&pg("ARRAY", "_text")).unwrap(), "ARRAY<STRING>");
        assert_eq!(pg_display(&pg("ARRAY", "_text")), "text[]");
        assert_eq!(pg_to_flink(&pg("interval", "interval")), None);
    }

    #[test]
    fn mysql_types() {
        let c = |dt: &str, ct: &str| MyColumn {
            data_type: dt.into(),
            column_type: ct.into(),
            ..Default::default()
        };
        assert_eq!(
            mysql_to_flink(&c("tinyint", "tinyint(1)")).unwrap(),
            "BOOLEAN"
        );
        assert_eq!(mysql_to_flink(&c("int", "int(11)")).unwrap(), "INT");
        assert_eq!(
            mysql_to_flink(&c("int", "int(10) unsigned")).unwrap(),
            "BIGINT"
        );
        assert_eq!(
            mysql_to_flink(&c("bigint", "bigint(20) unsigned")).unwrap(),
            "DECIMAL(20, 0)"
        );
        let d = MyColumn {
            numeric_precision: Some(12),
            numeric_scale: Some(4),
            ..c("decimal", "decimal(12,4)")
        };
        assert_eq!(mysql_to_flink(&d).unwrap(), "DECIMAL(12, 4)");
        let v = MyColumn {
            char_max_length: Some(64),
            ..c("varchar", "varchar(64)")
        };
        assert_eq!(mysql_to_flink(&v).unwrap(), "VARCHAR(64)");
        let dt = MyColumn {
            datetime_precision: Some(3),
            ..c("datetime", "datetime(3)")
        };
        assert_eq!(mysql_to_flink(&dt).unwrap(), "TIMESTAMP(3)");
        assert_eq!(mysql_to_flink(&c("json", "json")).unwrap(), "STRING");
        assert_eq!(mysql_to_flink(&c("geometry", "geometry")), None);
    }

    #[test]
    fn elasticsearch_mapping() {
        let props = json!({
            "name": {"type": "keyword"}, "body": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "n": {"type": "long"}, "price": {"type": "double"}, "at": {"type": "date"}, "ok": {"type": "boolean"},
            "user": {"properties": {"id": {"type": "integer"}, "geo": {"properties": {"lat": {"type": "float"}}}}},
            "tags": {"type": "nested", "properties": {"k": {"type": "keyword"}}}
        });
        let cols = es_columns(props.as_object().unwrap());
        let get = |n: &str| {
            cols.iter()
                .find(|c| c.name == n)
                .unwrap()
                .flink_type
                .clone()
                .unwrap()
        };
        assert_eq!(get("name"), "STRING");
        assert_eq!(get("body"), "STRING");
        assert_eq!(get("n"), "BIGINT");
        assert_eq!(get("price"), "DOUBLE");
        assert_eq!(get("at"), "TIMESTAMP(3)");
        assert_eq!(get("ok"), "BOOLEAN");
        assert_eq!(get("user"), "ROW<`geo` ROW<`lat` FLOAT>, `id` INT>");
        assert_eq!(get("tags"), "ARRAY<ROW<`k` STRING>>");
        assert!(cols.iter().all(|c| c.nullable));
    }

    #[test]
    fn json_inference() {
        let mut inf = JsonInference::default();
        assert!(inf.add(&json!({"id": 1, "amount": 2, "city": "Lisbon", "at": "2024-01-01T10:00:00Z", "ok": true})));
        assert!(inf.add(&json!({"id": 2, "amount": 2.5, "city": null, "at": "2024-01-01 10:00:01", "ok": false, "extra": {"a": 1}})));
        assert!(!inf.add(&json!([1, 2])));
        assert_eq!(inf.docs(), 2);
        let cols = inf.columns();
        let get = |n: &str| cols.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(get("id").flink_type.unwrap(), "BIGINT");
        assert!(!get("id").nullable);
        assert_eq!(get("amount").flink_type.unwrap(), "DOUBLE");
        assert_eq!(get("city").flink_type.unwrap(), "STRING");
        assert!(get("city").nullable);
        assert_eq!(get("at").flink_type.unwrap(), "TIMESTAMP(3)");
        assert_eq!(get("ok").flink_type.unwrap(), "BOOLEAN");
        assert!(get("extra").nullable);
        assert_eq!(cols[0].name, "id");
    }
}
