//! Elasticsearch: option schema, the HTTP client (credentials shared with the Elasticsearch
//! FDW), connection test, describing an index from its mapping (mapping types to Flink types),
//! and the Flink `elasticsearch-7` sink connector options.
use super::schema::{opt, req, secret, OptSpec, OptType, TIMEOUT};
use super::{Column, DatasourceKind, Described, Source, SourceError, SourceErrorKind};
use crate::pipeline::{ConnectorUse, PipelineError};
use serde_json::{Map, Value};

/// The Elasticsearch kind.
pub struct Elasticsearch;

impl DatasourceKind for Elasticsearch {
    const ACCEPTS_UPDATES: bool = true;
    const SINK_ONLY: bool = true;
    const DERIVES_SINK_COLUMNS: bool = true;
    const OPTIONS: &'static [OptSpec] = &[
        req("url", OptType::Url, "http(s)://host:port of the cluster"),
        opt("username", OptType::Str, "basic-auth user"),
        TIMEOUT,
        secret("password", "basic-auth password"),
        secret("api_key", "API key (sent as Authorization: ApiKey)"),
    ];

    async fn test(src: &Source) -> Result<String, SourceError> {
        src.bounded(test_cluster(src)).await
    }

    async fn describe(
        src: &Source,
        index: &str,
        _sample_size: usize,
    ) -> Result<Described, SourceError> {
        src.bounded(describe_index(src, index)).await
    }

    fn flink_options(table: &ConnectorUse) -> Result<Vec<(String, String)>, PipelineError> {
        // Never a source (SINK_ONLY): Kind::flink_options refuses that before calling here.
        let index = table.object();
        if index.contains(['/', '?', '#', ' ', '\\', '"', ',', '*']) {
            return Err(table.invalid(
                "object",
                format!("\"{index}\" is not a valid index name"),
                "Index names are lowercase, without / ? # , * or spaces.",
            ));
        }
        let mut with: Vec<(String, String)> = vec![
            ("connector".into(), "elasticsearch-7".into()),
            ("hosts".into(), table.option("url").unwrap_or_default()),
            ("index".into(), index.into()),
        ];
        if let Some(user) = table.option("username") {
            with.push(("username".into(), user));
            with.push((
                "password".into(),
                table.option("password").unwrap_or_default(),
            ));
        }
        Ok(with)
    }
}

impl Source {
    /// Adds the datasource's Elasticsearch credentials: the API key, else basic auth.
    pub(crate) fn es_authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(key) = self.secret("api_key") {
            req.header("Authorization", format!("ApiKey {key}"))
        } else if !self.opt_str("username").is_empty() {
            req.basic_auth(self.opt_str("username"), self.secret("password"))
        } else {
            req
        }
    }
}

fn request(src: &Source, path_segments: &[&str]) -> Result<reqwest::RequestBuilder, SourceError> {
    let base = crate::core::urls::parse_base_url(src.opt_str("url"))
        .map_err(|e| src.err(SourceErrorKind::Unreachable, e))?;
    let url = crate::core::urls::with_segments(&base, path_segments)
        .ok_or_else(|| src.err(SourceErrorKind::Unreachable, "url cannot take a path"))?;
    let http = reqwest::Client::builder()
        .connect_timeout(src.timeout())
        .timeout(src.timeout())
        .no_proxy()
        .build()
        .map_err(|e| src.err(SourceErrorKind::Unreachable, e))?;
    Ok(src.es_authorize(http.get(url)))
}

async fn get(src: &Source, segs: &[&str]) -> Result<(u16, Value), SourceError> {
    let resp = request(src, segs)?.send().await.map_err(|e| {
        if e.is_timeout() {
            src.timeout_err()
        } else {
            src.err(
                SourceErrorKind::Unreachable,
                format!(
                    "cannot reach {}: {}",
                    src.opt_str("url"),
                    crate::core::messages::error_chain(&e)
                ),
            )
        }
    })?;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.map_err(|e| {
        src.err(
            SourceErrorKind::Remote,
            format!(
                "unreadable answer: {}",
                crate::core::messages::error_chain(&e)
            ),
        )
    })?;
    Ok((status, v))
}

/// Version, cluster health and node count.
async fn test_cluster(src: &Source) -> Result<String, SourceError> {
    let (st, root_doc) = get(src, &[]).await?;
    if st == 401 || st == 403 {
        return Err(src.err(
            SourceErrorKind::Unreachable,
            format!("authentication failed (HTTP {st})"),
        ));
    }
    let version = root_doc
        .pointer("/version/number")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let (_, health) = get(src, &["_cluster", "health"]).await?;
    let status = health.get("status").and_then(Value::as_str).unwrap_or("?");
    let nodes = health
        .get("number_of_nodes")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Ok(format!(
        "Elasticsearch {version}, cluster health {status}, {nodes} node(s)"
    ))
}

async fn describe_index(src: &Source, index: &str) -> Result<Described, SourceError> {
    if index.contains(['/', '?', '#', ' ', '\\']) {
        return Err(src.err(
            SourceErrorKind::BadObject,
            format!("\"{index}\" is not a valid index name"),
        ));
    }
    let (st, v) = get(src, &[index, "_mapping"]).await?;
    if st == 404 {
        return Err(src.err(
            SourceErrorKind::NotFound,
            format!("index \"{index}\" does not exist"),
        ));
    }
    if st >= 400 {
        let reason = v
            .pointer("/error/reason")
            .and_then(Value::as_str)
            .unwrap_or("error");
        return Err(src.err(SourceErrorKind::Remote, format!("HTTP {st}: {reason}")));
    }
    // A pattern or alias may resolve to several indexes: merge their properties (first
    // index in name order wins on conflicts).
    let mut props = Map::new();
    let mut names: Vec<&String> = v
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    names.sort();
    for index_name in names {
        if let Some(p) = v[index_name.as_str()]
            .pointer("/mappings/properties")
            .and_then(Value::as_object)
        {
            for (k, f) in p {
                props.entry(k.clone()).or_insert_with(|| f.clone());
            }
        }
    }
    if props.is_empty() {
        return Err(src.err(
            SourceErrorKind::NotFound,
            format!("index \"{index}\" has no mapped fields"),
        ));
    }
    Ok(Described {
        columns: columns(&props),
        sampled: None,
    })
}

// Type mapping: documented in docs/type-mapping.md; keep the two in step.

/// Columns of an Elasticsearch mapping (`properties` object). Objects become ROW types,
/// `nested` fields ARRAY<ROW>; every ES field is nullable (and may hold arrays, which Flink's
/// connector reads as the declared scalar type only for single values).
pub fn columns(properties: &Map<String, Value>) -> Vec<Column> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn elasticsearch_mapping() {
        let props = json!({
            "name": {"type": "keyword"}, "body": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "n": {"type": "long"}, "price": {"type": "double"}, "at": {"type": "date"}, "ok": {"type": "boolean"},
            "user": {"properties": {"id": {"type": "integer"}, "geo": {"properties": {"lat": {"type": "float"}}}}},
            "tags": {"type": "nested", "properties": {"k": {"type": "keyword"}}}
        });
        let cols = columns(props.as_object().unwrap());
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
}
