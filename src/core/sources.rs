//! Talking to datasources: connection tests and metadata discovery for Kafka, Elasticsearch,
//! Postgres and MySQL. Async, bounded by the datasource's `timeout_ms`; errors never carry
//! secret values (they are scrubbed).
use crate::core::catalog::{scrub, Kind};
use crate::core::types::{self, Column, JsonInference, MyColumn, PgColumn};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// A datasource as stored in the catalog.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub kind: Kind,
    pub options: Map<String, Value>,
    pub secrets: Map<String, Value>,
}

/// Why a call to a datasource failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// Could not connect (refused, DNS, authentication).
    Unreachable,
    /// No answer within timeout_ms.
    Timeout,
    /// The object (table, index, topic) does not exist.
    NotFound,
    /// The object name is malformed.
    BadObject,
    /// The service answered with an error.
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub kind: SourceErrorKind,
    pub message: String,
}

/// Result of a describe call.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub columns: Vec<Column>,
    /// Kafka: how many messages were sampled (and parsed as JSON objects).
    pub sampled: Option<i32>,
}

impl Source {
    pub(crate) fn opt_str(&self, k: &str) -> &str {
        self.options.get(k).and_then(Value::as_str).unwrap_or("")
    }
    fn opt_int(&self, k: &str, default: i64) -> i64 {
        self.options
            .get(k)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    }
    fn secret(&self, k: &str) -> Option<&str> {
        self.secrets.get(k).and_then(Value::as_str)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.opt_int("timeout_ms", 10_000).max(100) as u64)
    }

    pub(crate) fn err(&self, kind: SourceErrorKind, msg: impl std::fmt::Display) -> SourceError {
        SourceError {
            kind,
            message: scrub(
                &format!(
                    "datasource \"{}\" ({}): {msg}",
                    self.name,
                    self.kind.as_str()
                ),
                &self.secrets,
            ),
        }
    }

    fn timeout_err(&self) -> SourceError {
        self.err(
            SourceErrorKind::Timeout,
            format!(
                "no answer within {} ms (option timeout_ms)",
                self.timeout().as_millis()
            ),
        )
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout(), fut).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_err()),
        }
    }

    /// Connects for real and returns a one-line description of what was found.
    pub async fn test(&self) -> Result<String, SourceError> {
        match self.kind {
            Kind::Postgres => self.bounded(self.pg_test()).await,
            Kind::Mysql => self.bounded(self.my_test()).await,
            Kind::Elasticsearch => self.bounded(self.es_test()).await,
            Kind::Kafka => self.kafka_test().await,
        }
    }

    /// Columns of `object` (table, index, topic) with their Flink types.
    pub async fn describe(
        &self,
        object: &str,
        sample_size: usize,
    ) -> Result<Described, SourceError> {
        if object.trim().is_empty() || object.len() > 255 || object.chars().any(|c| c.is_control())
        {
            return Err(self.err(
                SourceErrorKind::BadObject,
                "object name must be 1-255 printable characters",
            ));
        }
        match self.kind {
            Kind::Postgres => self.bounded(self.pg_describe(object)).await,
            Kind::Mysql => self.bounded(self.my_describe(object)).await,
            Kind::Elasticsearch => self.bounded(self.es_describe(object)).await,
            Kind::Kafka => self.kafka_describe(object, sample_size).await,
        }
    }

    // ---------------------------------------------------------------- Postgres

    async fn pg_connect(&self) -> Result<tokio_postgres::Client, SourceError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(self.opt_str("host"))
            .port(self.opt_int("port", 5432) as u16)
            .dbname(self.opt_str("database"))
            .user(self.opt_str("user"))
            .application_name("pg_flink")
            .connect_timeout(self.timeout())
            .ssl_mode(match self.opt_str("sslmode") {
                "disable" => tokio_postgres::config::SslMode::Disable,
                _ => tokio_postgres::config::SslMode::Prefer,
            });
        if let Some(pw) = self.secret("password") {
            cfg.password(pw);
        }
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| {
            self.err(
                SourceErrorKind::Unreachable,
                format!(
                    "cannot connect to {}:{}: {}",
                    self.opt_str("host"),
                    self.opt_int("port", 5432),
                    pg_err(&e)
                ),
            )
        })?;
        tokio::spawn(conn);
        Ok(client)
    }

    async fn pg_test(&self) -> Result<String, SourceError> {
        let c = self.pg_connect().await?;
        let row = c
            .query_one("select 1, current_setting('server_version')", &[])
            .await
            .map_err(|e| self.err(SourceErrorKind::Remote, pg_err(&e)))?;
        let one: i32 = row.get(0);
        let version: String = row.get(1);
        Ok(format!("select 1 returned {one}; PostgreSQL {version}"))
    }

    async fn pg_describe(&self, object: &str) -> Result<Described, SourceError> {
        let (schema, table) = match object.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => (self.opt_str("schema").to_string(), object.to_string()),
        };
        let c = self.pg_connect().await?;
        let rows = c
            .query(
                "select column_name::text, data_type::text, udt_name::text, character_maximum_length::int4, \
                 numeric_precision::int4, numeric_scale::int4, datetime_precision::int4, is_nullable = 'YES' \
                 from information_schema.columns where table_schema = $1 and table_name = $2 order by ordinal_position",
                &[&schema, &table],
            )
            .await
            .map_err(|e| self.err(SourceErrorKind::Remote, pg_err(&e)))?;
        if rows.is_empty() {
            return Err(self.err(SourceErrorKind::NotFound, format!("table \"{schema}\".\"{table}\" does not exist or has no columns visible to user \"{}\"", self.opt_str("user"))));
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
                    source_type: types::pg_display(&pc),
                    flink_type: types::pg_to_flink(&pc),
                    nullable: r.get(7),
                }
            })
            .collect();
        Ok(Described {
            columns,
            sampled: None,
        })
    }

    // ---------------------------------------------------------------- MySQL

    async fn my_connect(&self) -> Result<mysql_async::Conn, SourceError> {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.opt_str("host").to_string())
            .tcp_port(self.opt_int("port", 3306) as u16)
            .user(Some(self.opt_str("user").to_string()))
            .pass(self.secret("password").map(str::to_string))
            .db_name(Some(self.opt_str("database").to_string()))
            .prefer_socket(false);
        mysql_async::Conn::new(opts).await.map_err(|e| {
            self.err(
                SourceErrorKind::Unreachable,
                format!(
                    "cannot connect to {}:{}: {e}",
                    self.opt_str("host"),
                    self.opt_int("port", 3306)
                ),
            )
        })
    }

    async fn my_test(&self) -> Result<String, SourceError> {
        use mysql_async::prelude::Queryable;
        let mut c = self.my_connect().await?;
        let row: Option<(i64, String)> = c
            .query_first("select 1, version()")
            .await
            .map_err(|e| self.err(SourceErrorKind::Remote, e))?;
        let _ = c.disconnect().await;
        let (one, version) =
            row.ok_or_else(|| self.err(SourceErrorKind::Remote, "select 1 returned no row"))?;
        Ok(format!("select 1 returned {one}; server {version}"))
    }

    async fn my_describe(&self, object: &str) -> Result<Described, SourceError> {
        use mysql_async::prelude::Queryable;
        let (schema, table) = match object.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => (self.opt_str("database").to_string(), object.to_string()),
        };
        let mut c = self.my_connect().await?;
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
            .map_err(|e| self.err(SourceErrorKind::Remote, e))?;
        let _ = c.disconnect().await;
        if rows.is_empty() {
            return Err(self.err(SourceErrorKind::NotFound, format!("table `{schema}`.`{table}` does not exist or has no columns visible to user \"{}\"", self.opt_str("user"))));
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
                    flink_type: types::mysql_to_flink(&mc),
                    nullable: nullable == "YES",
                }
            })
            .collect();
        Ok(Described {
            columns,
            sampled: None,
        })
    }

    // ---------------------------------------------------------------- Elasticsearch

    fn es_request(&self, path_segments: &[&str]) -> Result<reqwest::RequestBuilder, SourceError> {
        let base = crate::core::urls::parse_base_url(self.opt_str("url"))
            .map_err(|e| self.err(SourceErrorKind::Unreachable, e))?;
        let url = crate::core::urls::with_segments(&base, path_segments)
            .ok_or_else(|| self.err(SourceErrorKind::Unreachable, "url cannot take a path"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(self.timeout())
            .timeout(self.timeout())
            .no_proxy()
            .build()
            .map_err(|e| self.err(SourceErrorKind::Unreachable, e))?;
        Ok(self.es_authorize(http.get(url)))
    }

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

    async fn es_get(&self, segs: &[&str]) -> Result<(u16, Value), SourceError> {
        let resp = self.es_request(segs)?.send().await.map_err(|e| {
            if e.is_timeout() {
                self.timeout_err()
            } else {
                self.err(
                    SourceErrorKind::Unreachable,
                    format!(
                        "cannot reach {}: {}",
                        self.opt_str("url"),
                        crate::core::text::error_chain(&e)
                    ),
                )
            }
        })?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.map_err(|e| {
            self.err(
                SourceErrorKind::Remote,
                format!("unreadable answer: {}", crate::core::text::error_chain(&e)),
            )
        })?;
        Ok((status, v))
    }

    async fn es_test(&self) -> Result<String, SourceError> {
        let (st, root_doc) = self.es_get(&[]).await?;
        if st == 401 || st == 403 {
            return Err(self.err(
                SourceErrorKind::Unreachable,
                format!("authentication failed (HTTP {st})"),
            ));
        }
        let version = root_doc
            .pointer("/version/number")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let (_, health) = self.es_get(&["_cluster", "health"]).await?;
        let status = health.get("status").and_then(Value::as_str).unwrap_or("?");
        let nodes = health
            .get("number_of_nodes")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        Ok(format!(
            "Elasticsearch {version}, cluster health {status}, {nodes} node(s)"
        ))
    }

    async fn es_describe(&self, index: &str) -> Result<Described, SourceError> {
        if index.contains(['/', '?', '#', ' ', '\\']) {
            return Err(self.err(
                SourceErrorKind::BadObject,
                format!("\"{index}\" is not a valid index name"),
            ));
        }
        let (st, v) = self.es_get(&[index, "_mapping"]).await?;
        if st == 404 {
            return Err(self.err(
                SourceErrorKind::NotFound,
                format!("index \"{index}\" does not exist"),
            ));
        }
        if st >= 400 {
            let reason = v
                .pointer("/error/reason")
                .and_then(Value::as_str)
                .unwrap_or("error");
            return Err(self.err(SourceErrorKind::Remote, format!("HTTP {st}: {reason}")));
        }
        // A pattern or alias may resolve to several indexes: merge their properties (first
        // index in name order wins on conflicts).
        let mut props = Map::new();
        let mut names: Vec<&String> = v
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        names.sort();
        for n in names {
            if let Some(p) = v[n.as_str()]
                .pointer("/mappings/properties")
                .and_then(Value::as_object)
            {
                for (k, f) in p {
                    props.entry(k.clone()).or_insert_with(|| f.clone());
                }
            }
        }
        if props.is_empty() {
            return Err(self.err(
                SourceErrorKind::NotFound,
                format!("index \"{index}\" has no mapped fields"),
            ));
        }
        Ok(Described {
            columns: types::es_columns(&props),
            sampled: None,
        })
    }

    // ---------------------------------------------------------------- Kafka

    /// Connection settings shared by consumers and producers (brokers, security, timeouts,
    /// SASL, and the datasource's extra `properties`, which win).
    pub(crate) fn kafka_client_config(&self) -> rdkafka::ClientConfig {
        let mut c = self.kafka_base_config();
        self.kafka_properties(&mut c);
        c
    }

    /// A consumer that reads by assignment only: no group join, no offset commits.
    pub(crate) fn kafka_config(&self) -> rdkafka::ClientConfig {
        let mut c = self.kafka_base_config();
        c.set("group.id", "pg_flink-metadata")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        self.kafka_properties(&mut c);
        c
    }

    fn kafka_base_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", self.opt_str("bootstrap_servers"))
            .set("security.protocol", self.opt_str("security_protocol"))
            .set(
                "socket.timeout.ms",
                self.timeout().as_millis().max(10).to_string(),
            )
            .set(
                "socket.connection.setup.timeout.ms",
                self.timeout().as_millis().max(1000).to_string(),
            )
            .set("log_level", "3");
        if let Some(m) = self.options.get("sasl_mechanism").and_then(Value::as_str) {
            c.set("sasl.mechanism", m);
        }
        if let Some(u) = self.options.get("sasl_username").and_then(Value::as_str) {
            c.set("sasl.username", u);
        }
        if let Some(p) = self.secret("sasl_password") {
            c.set("sasl.password", p);
        }
        c
    }

    fn kafka_properties(&self, c: &mut rdkafka::ClientConfig) {
        if let Some(extra) = self.options.get("properties").and_then(Value::as_object) {
            for (k, v) in extra {
                if let Some(v) = v.as_str() {
                    c.set(k, v);
                }
            }
        }
    }

    /// Broker count and topic names (internal `__` topics left out), sorted.
    pub(crate) async fn kafka_topics(&self) -> Result<(usize, Vec<String>), SourceError> {
        let cfg = self.kafka_config();
        let me = self.clone();
        self.blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = cfg
                .create()
                .map_err(|e| me.err(SourceErrorKind::Unreachable, e))?;
            let md = consumer.fetch_metadata(None, me.timeout()).map_err(|e| {
                me.err(
                    SourceErrorKind::Unreachable,
                    format!(
                        "metadata request to {} failed: {e}",
                        me.opt_str("bootstrap_servers")
                    ),
                )
            })?;
            let mut topics: Vec<String> = md
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .filter(|n| !n.starts_with("__"))
                .collect();
            topics.sort();
            Ok((md.brokers().len(), topics))
        })
        .await
    }

    /// Runs blocking librdkafka work off the backend's thread, so the caller can still react
    /// to query cancel; the work itself is bounded by timeout_ms.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(
            self.timeout() + Duration::from_secs(2),
            tokio::task::spawn_blocking(f),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(self.err(SourceErrorKind::Remote, format!("internal error: {e}"))),
            Err(_) => Err(self.timeout_err()),
        }
    }

    async fn kafka_test(&self) -> Result<String, SourceError> {
        let (brokers, topics) = self.kafka_topics().await?;
        let shown: Vec<&str> = topics.iter().take(20).map(String::as_str).collect();
        Ok(format!(
            "{} broker(s), {} topic(s){}{}",
            brokers,
            topics.len(),
            if shown.is_empty() { "" } else { ": " },
            shown.join(", ") + if topics.len() > 20 { ", …" } else { "" }
        ))
    }

    async fn kafka_describe(
        &self,
        topic: &str,
        sample_size: usize,
    ) -> Result<Described, SourceError> {
        let cfg = self.kafka_config();
        let me = self.clone();
        let topic = topic.to_string();
        self.blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            use rdkafka::{Message, Offset, TopicPartitionList};
            let deadline = Instant::now() + me.timeout();
            let consumer: BaseConsumer = cfg.create().map_err(|e| me.err(SourceErrorKind::Unreachable, e))?;
            let md = consumer
                .fetch_metadata(Some(&topic), me.timeout())
                .map_err(|e| me.err(SourceErrorKind::Unreachable, format!("metadata request failed: {e}")))?;
            let t = md.topics().iter().find(|t| t.name() == topic);
            let Some(t) = t.filter(|t| t.error().is_none() && !t.partitions().is_empty()) else {
                return Err(me.err(SourceErrorKind::NotFound, format!("topic \"{topic}\" does not exist")));
            };
            // Bounded snapshot: each partition from its low to its high watermark at start.
            let mut tpl = TopicPartitionList::new();
            let mut remaining = 0i64;
            let mut highs = Vec::new();
            for p in t.partitions() {
                let left = deadline.saturating_duration_since(Instant::now());
                let (lo, hi) = consumer
                    .fetch_watermarks(&topic, p.id(), left.max(Duration::from_millis(100)))
                    .map_err(|e| me.err(SourceErrorKind::Remote, format!("watermarks of partition {}: {e}", p.id())))?;
                if hi > lo {
                    tpl.add_partition_offset(&topic, p.id(), Offset::Offset(lo)).map_err(|e| me.err(SourceErrorKind::Remote, e))?;
                    remaining += hi - lo;
                    highs.push((p.id(), hi));
                }
            }
            let mut inf = JsonInference::default();
            let mut read = 0usize;
            if remaining > 0 {
                consumer.assign(&tpl).map_err(|e| me.err(SourceErrorKind::Remote, e))?;
                let mut done_parts = 0usize;
                while read < sample_size && done_parts < highs.len() && (read as i64) < remaining {
                    if Instant::now() >= deadline {
                        break;
                    }
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(m)) => {
                            read += 1;
                            if let Some(Ok(v)) = m.payload().map(serde_json::from_slice::<Value>) {
                                inf.add(&v);
                            }
                            if highs.iter().any(|&(p, hi)| p == m.partition() && m.offset() + 1 >= hi) {
                                done_parts += 1;
                            }
                        }
                        Some(Err(e)) => return Err(me.err(SourceErrorKind::Remote, e)),
                        None => {}
                    }
                }
            }
            if inf.docs() == 0 {
                return Err(me.err(
                    SourceErrorKind::NotFound,
                    format!("topic \"{topic}\" has no JSON object messages to sample ({read} message(s) read)"),
                ));
            }
            Ok(Described { columns: inf.columns(), sampled: Some(inf.docs() as i32) })
        })
        .await
    }
}

fn pg_err(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => crate::core::text::error_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src(kind: Kind, options: Value, secrets: Value) -> Source {
        Source {
            name: "s1".into(),
            kind,
            options: options.as_object().unwrap().clone(),
            secrets: secrets.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn errors_are_scrubbed_of_secrets() {
        let s = src(
            Kind::Postgres,
            json!({"host": "h"}),
            json!({"password": "hunter2"}),
        );
        let e = s.err(SourceErrorKind::Remote, "auth failed for password hunter2");
        assert_eq!(
            e.message,
            "datasource \"s1\" (postgres): auth failed for password ***"
        );
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

    #[test]
    fn bad_object_names_are_refused_before_connecting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let s = src(
            Kind::Elasticsearch,
            json!({"url": "http://127.0.0.1:1"}),
            json!({}),
        );
        assert_eq!(
            rt.block_on(s.describe("", 10)).unwrap_err().kind,
            SourceErrorKind::BadObject
        );
        assert_eq!(
            rt.block_on(s.describe("a/../_all", 10)).unwrap_err().kind,
            SourceErrorKind::BadObject
        );
    }
}
