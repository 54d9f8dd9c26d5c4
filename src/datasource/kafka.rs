//! Kafka: option schema and SASL cross-checks, the librdkafka client configs shared with the
//! Kafka FDW, topic listing, connection test, describing a topic by sampling JSON messages
//! ([`JsonInference`]), and the Flink `kafka` / `upsert-kafka` connector options.
use super::catalog::invalid;
use super::schema::{def, opt, req, secret, OptSpec, OptType, TIMEOUT};
use super::{
    CatalogError, Column, DatasourceKind, Described, Source, SourceError, SourceErrorKind,
};
use crate::pipeline::{ConnectorUse, PipelineError, Role};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// The Kafka kind.
pub struct Kafka;

impl DatasourceKind for Kafka {
    const ACCEPTS_UPDATES: bool = true;
    const DERIVES_SINK_COLUMNS: bool = true;
    const OPTIONS: &'static [OptSpec] = &[
        req(
            "bootstrap_servers",
            OptType::HostPorts,
            "brokers, host:port[,host:port]",
        ),
        def(
            "security_protocol",
            OptType::Enum(&["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
            "\"PLAINTEXT\"",
            "security.protocol",
        ),
        opt(
            "sasl_mechanism",
            OptType::Enum(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
            "sasl.mechanism",
        ),
        opt("sasl_username", OptType::Str, "SASL user name"),
        opt(
            "properties",
            OptType::StrMap,
            "extra client properties (non-secret)",
        ),
        TIMEOUT,
        secret("sasl_password", "SASL password"),
    ];

    fn cross_check(
        ds: &str,
        options: &Map<String, Value>,
        secrets: &Map<String, Value>,
    ) -> Result<(), CatalogError> {
        let proto = options
            .get("security_protocol")
            .and_then(Value::as_str)
            .unwrap_or("PLAINTEXT");
        let sasl = proto.starts_with("SASL");
        if sasl
            && (!options.contains_key("sasl_mechanism")
                || !options.contains_key("sasl_username")
                || !secrets.contains_key("sasl_password"))
        {
            return Err(invalid(
                ds,
                "security_protocol",
                format!("{proto} needs sasl_mechanism, sasl_username and the secret sasl_password"),
                "Add the SASL options, or use security_protocol PLAINTEXT or SSL.",
            ));
        }
        if !sasl
            && (options.contains_key("sasl_mechanism") || secrets.contains_key("sasl_password"))
        {
            return Err(invalid(
                ds,
                "sasl_mechanism",
                format!("is only used with a SASL security_protocol, not {proto}"),
                "Set security_protocol to SASL_PLAINTEXT or SASL_SSL, or drop the SASL settings.",
            ));
        }
        Ok(())
    }

    async fn test(src: &Source) -> Result<String, SourceError> {
        let (brokers, topics) = src.kafka_topics().await?;
        let shown: Vec<&str> = topics.iter().take(20).map(String::as_str).collect();
        Ok(format!(
            "{} broker(s), {} topic(s){}{}",
            brokers,
            topics.len(),
            if shown.is_empty() { "" } else { ": " },
            shown.join(", ") + if topics.len() > 20 { ", …" } else { "" }
        ))
    }

    async fn describe(
        src: &Source,
        topic: &str,
        sample_size: usize,
    ) -> Result<Described, SourceError> {
        let mut cfg = src.kafka_config();
        // A partition may end with offsets that hold no message (transaction markers): the
        // end-of-partition event says it was read to the end.
        cfg.set("enable.partition.eof", "true");
        let me = src.clone();
        let topic = topic.to_string();
        src.blocking(move || {
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
                let mut done_parts: Vec<i32> = Vec::new();
                while read < sample_size && done_parts.len() < highs.len() && (read as i64) < remaining {
                    if Instant::now() >= deadline {
                        break;
                    }
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(m)) => {
                            read += 1;
                            if let Some(Ok(v)) = m.payload().map(serde_json::from_slice::<Value>) {
                                inf.add(&v);
                            }
                            let p = m.partition();
                            if highs.iter().any(|&(hp, hi)| hp == p && m.offset() + 1 >= hi) && !done_parts.contains(&p) {
                                done_parts.push(p);
                            }
                        }
                        Some(Err(rdkafka::error::KafkaError::PartitionEOF(p)))
                            if highs.iter().any(|&(hp, _)| hp == p) && !done_parts.contains(&p) =>
                        {
                            done_parts.push(p);
                        }
                        Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
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

    fn flink_options(table: &ConnectorUse) -> Result<Vec<(String, String)>, PipelineError> {
        let topic = table.object();
        if !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || topic.len() > 249
        {
            return Err(table.invalid(
                "object",
                format!("\"{topic}\" is not a valid topic name"),
                "Topic names use letters, digits, '.', '_' and '-'.",
            ));
        }
        let mut with: Vec<(String, String)> = Vec::new();
        if table.role == Role::Sink && table.keyed() {
            with.push(("connector".into(), "upsert-kafka".into()));
            with.push(("key.format".into(), "json".into()));
            with.push(("value.format".into(), "json".into()));
        } else {
            with.push(("connector".into(), "kafka".into()));
            with.push(("format".into(), "json".into()));
        }
        with.push(("topic".into(), topic.into()));
        with.push((
            "properties.bootstrap.servers".into(),
            table.option("bootstrap_servers").unwrap_or_default(),
        ));
        if table.role == Role::Source {
            with.push((
                "properties.group.id".into(),
                format!("pg_flink.{}", table.pipeline),
            ));
            with.push(("scan.startup.mode".into(), "earliest-offset".into()));
            // Messages of aborted Kafka transactions (a rolled-back INSERT into a Kafka
            // foreign table, a replay in a rolled-back transaction, a failed exactly-once
            // writer) are never read.
            with.push(("properties.isolation.level".into(), "read_committed".into()));
        }
        let proto = table
            .option("security_protocol")
            .unwrap_or_else(|| "PLAINTEXT".into());
        if proto != "PLAINTEXT" {
            with.push(("properties.security.protocol".into(), proto.clone()));
        }
        if proto.starts_with("SASL") {
            let mech = table
                .option("sasl_mechanism")
                .unwrap_or_else(|| "PLAIN".into());
            let module = if mech == "PLAIN" {
                "org.apache.kafka.common.security.plain.PlainLoginModule"
            } else {
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            };
            let jaas_escape = |s: String| s.replace('\\', "\\\\").replace('"', "\\\"");
            with.push(("properties.sasl.mechanism".into(), mech));
            with.push((
                "properties.sasl.jaas.config".into(),
                format!(
                    "{module} required username=\"{}\" password=\"{}\";",
                    jaas_escape(table.option("sasl_username").unwrap_or_default()),
                    jaas_escape(table.option("sasl_password").unwrap_or_default())
                ),
            ));
        }
        if let Some(Value::Object(extra)) = table.options.get("properties") {
            for (k, v) in extra {
                if let Some(v) = v.as_str() {
                    with.push((format!("properties.{k}"), v.to_string()));
                }
            }
        }
        Ok(with)
    }
}

/// librdkafka configurations of a Kafka datasource (used by the catalog client and the FDW).
impl Source {
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
        // assign() needs a group.id (librdkafka's consumer group handle), though nothing
        // joins the group or commits to it. Closing such a consumer costs ~100 ms, which is
        // why scans keep theirs in a per-backend pool (fdw/kafka/pool.rs).
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
}

// Type mapping: documented in docs/type-mapping.md; keep the two in step.

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
    use crate::datasource::{CatalogError, Kind};
    use serde_json::json;

    fn err(kind: Kind, o: Value, s: Option<Value>) -> CatalogError {
        crate::datasource::validate("ds1", kind, Some(&o), s.as_ref()).unwrap_err()
    }

    #[test]
    fn kafka_sasl_consistency() {
        let e = err(
            Kind::Kafka,
            json!({"bootstrap_servers": "h:1", "security_protocol": "SASL_SSL"}),
            None,
        );
        assert!(e.message.contains("needs sasl_mechanism"));
        let ok = crate::datasource::validate(
            "k",
            Kind::Kafka,
            Some(
                &json!({"bootstrap_servers": "h:1", "security_protocol": "sasl_ssl", "sasl_mechanism": "PLAIN", "sasl_username": "u"}),
            ),
            Some(&json!({"sasl_password": "p"})),
        );
        assert!(ok.is_ok(), "{ok:?}");
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
