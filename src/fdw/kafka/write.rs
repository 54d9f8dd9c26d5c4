//! Writing Kafka topics (INSERT): each row becomes one message (key, partition, timestamp and
//! headers from the metadata columns, the value encoded by [`codec::encode_value`]), produced
//! with `acks=all`; the statement ends by waiting for every delivery confirmation and fails
//! if any message was refused or not confirmed within `timeout_ms`.
//!
//! By default (`transactional 'true'`) the messages go into the Kafka transaction of the
//! Postgres transaction (`txn.rs`): confirmed at the end of the statement, visible to
//! `read_committed` consumers only once Postgres commits. With `transactional 'false'` each
//! statement has its own plain producer and its messages are visible once confirmed.
use super::codec::{self, ColKind, Format};
use super::scan::POLL;
use super::{source, topic, txn, KafkaFdwError};
use crate::datasource::Source;
use crate::fdw::value::Val;
use crate::fdw::{Modify, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Message};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(super) struct Delivery {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Clone, Default)]
pub(super) struct DeliveryCtx(Arc<Delivery>);

impl DeliveryCtx {
    /// Starts counting for a new statement (a transactional producer outlives statements;
    /// the previous statement waited for its deliveries).
    fn reset(&self) {
        self.0.ok.store(0, Ordering::Relaxed);
        self.0.failed.store(0, Ordering::Relaxed);
        if let Ok(mut f) = self.0.first_error.lock() {
            *f = None;
        }
    }
}

/// A producer and its delivery counters.
pub(super) struct Producer {
    pub(super) inner: BaseProducer<DeliveryCtx>,
    pub(super) ctx: DeliveryCtx,
}

/// A statement's own producer, or the backend's transactional one.
enum Mode {
    Plain(Producer),
    Txn(Rc<txn::TxnProducer>),
}

impl ClientContext for DeliveryCtx {}

impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => {
                self.0.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = self.0.first_error.lock() {
                    f.get_or_insert_with(|| format!("partition {}: {e}", m.partition()));
                }
            }
        }
    }
}

pub struct KafkaModify {
    table: TableDef,
    topic: String,
    src: Source,
    format: Format,
    kinds: Vec<(i16, ColKind)>,
    mode: Mode,
    sent: u64,
}

/// Is the table (else its server) transactional? (default true)
pub(super) fn transactional(table: &TableDef) -> bool {
    !matches!(table.opt("transactional"), Some("false" | "off"))
}

impl KafkaModify {
    pub fn new(table: TableDef) -> Result<KafkaModify, ErrorReport> {
        let src = source(&table)?;
        let topic = topic(&table)?;
        let mut cfg = src.kafka_client_config();
        cfg.set(
            "message.timeout.ms",
            src.timeout().as_millis().max(1000).to_string(),
        )
        .set("linger.ms", "5")
        .set("acks", "all");
        let mode = if transactional(&table) {
            let tp = txn::producer(&table, &src, cfg)?;
            tp.p.ctx.reset();
            Mode::Txn(tp)
        } else {
            let ctx = DeliveryCtx::default();
            let inner: BaseProducer<DeliveryCtx> = cfg
                .create_with_context(ctx.clone())
                .map_err(|e| KafkaFdwError::Config(format!("Kafka producer: {e}")))?;
            Mode::Plain(Producer { inner, ctx })
        };
        Ok(KafkaModify {
            format: Format::of(&table),
            kinds: codec::col_kinds(&table),
            table,
            topic,
            src,
            mode,
            sent: 0,
        })
    }

    fn producer(&self) -> &Producer {
        match &self.mode {
            Mode::Plain(p) => p,
            Mode::Txn(tp) => &tp.p,
        }
    }
}

impl Modify for KafkaModify {
    fn insert(&mut self, row: &[(i16, Val)]) -> Result<(), ErrorReport> {
        let mut key: Option<Vec<u8>> = None;
        let mut partition: Option<i32> = None;
        let mut ts: Option<i64> = None;
        let mut headers = OwnedHeaders::new();
        let mut values: Vec<(ColKind, Val)> = vec![];
        for (attnum, v) in row {
            let Some((_, kind)) = self.kinds.iter().find(|(a, _)| a == attnum) else {
                continue;
            };
            match kind {
                ColKind::Key(_) => {
                    key = match v {
                        Val::Null => None,
                        Val::Bytes(b) => Some(b.clone()),
                        other => other.to_text().map(String::into_bytes),
                    }
                }
                ColKind::Partition => partition = v.as_i64().map(|p| p as i32),
                ColKind::Timestamp => ts = v.as_epoch_millis(),
                ColKind::Headers => {
                    if let Val::Json(serde_json::Value::Object(o)) = v {
                        for (k, hv) in o {
                            let text = match hv {
                                serde_json::Value::Null => None,
                                serde_json::Value::String(s) => Some(s.clone()),
                                other => Some(other.to_string()),
                            };
                            headers = headers.insert(Header {
                                key: k,
                                value: text.as_deref(),
                            });
                        }
                    }
                }
                ColKind::Offset | ColKind::Error => {}
                other => values.push((other.clone(), v.clone())),
            }
        }
        let payload = codec::encode_value(&values, self.format);
        let mut rec: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(&self.topic).headers(headers);
        if let Some(k) = key.as_deref() {
            rec = rec.key(k);
        }
        if let Some(p) = payload.as_deref() {
            rec = rec.payload(p);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        if let Some(t) = ts {
            rec = rec.timestamp(t);
        }
        let deadline = Instant::now() + self.src.timeout();
        if let Mode::Txn(tp) = &self.mode {
            // Before sending: a message of a statement that fails half-way is still in the
            // transaction.
            txn::wrote(tp, &self.table.name, &self.topic);
        }
        let producer = &self.producer().inner;
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    rec = r;
                    producer.poll(POLL);
                    pgrx::check_for_interrupts!();
                    if Instant::now() > deadline {
                        return Err(KafkaFdwError::Timeout(format!(
                            "foreign table {}: the producer queue stayed full for {} ms (timeout_ms)",
                            self.table.name,
                            self.src.timeout().as_millis()
                        ))
                        .into());
                    }
                }
                Err((e, _)) => {
                    let part = partition
                        .map(|p| format!(" partition {p}"))
                        .unwrap_or_default();
                    return Err(KafkaFdwError::Delivery(format!(
                        "foreign table {}: cannot produce to topic \"{}\"{part}: {e}",
                        self.table.name, self.topic
                    ))
                    .into());
                }
            }
        }
        producer.poll(Duration::ZERO);
        self.sent += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ErrorReport> {
        let deadline = Instant::now() + self.src.timeout() + Duration::from_secs(1);
        let p = self.producer();
        while p.inner.in_flight_count() > 0 {
            p.inner.poll(POLL);
            pgrx::check_for_interrupts!();
            if Instant::now() > deadline {
                break;
            }
        }
        let d = &p.ctx.0;
        let ok = d.ok.load(Ordering::Relaxed);
        let failed = d.failed.load(Ordering::Relaxed);
        let pending = self.sent.saturating_sub(ok + failed);
        if failed > 0 || pending > 0 {
            let first = d
                .first_error
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_else(|| "no confirmation".into());
            return Err(KafkaFdwError::Delivery(format!(
                "foreign table {}: {} of {} message(s) to topic \"{}\" were not confirmed ({failed} failed, {pending} unconfirmed after {} ms); first error: {first}",
                self.table.name,
                failed + pending,
                self.sent,
                self.topic,
                self.src.timeout().as_millis()
            ))
            .into());
        }
        Ok(())
    }
}
