//! Reading (bounded snapshots) and writing (produce + confirm) Kafka topics.
use super::plan::{self, Bounds, ColKind, Format, MetaCols, Msg, OnError};
use super::{decode_error, source, topic, KafkaFdwError};
use crate::datasource::Source;
use crate::fdw::cond::{Cond, Request};
use crate::fdw::value::Val;
use crate::fdw::{int_opt, Modify, Scan, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

/// The offsets of one partition a scan reads: `[start, end)`.
#[derive(Debug, Clone)]
struct Range {
    partition: i32,
    start: i64,
    end: i64,
    done: bool,
}

pub struct KafkaScan {
    table: TableDef,
    topic: String,
    src: Source,
    req: Request,
    /// Columns decoded per message (the wanted ones, or all of them in skip/error mode).
    cols: Vec<ColKind>,
    buf: Vec<Val>,
    /// For each wanted column, its position in `cols`.
    out: Vec<usize>,
    format: Format,
    on_error: OnError,
    timeout: Duration,
    wants_headers: bool,
    /// Declared before `consumer`: it holds a reference to the consumer's queue and must be
    /// dropped first.
    batch: Option<Batch>,
    consumer: Option<BaseConsumer>,
    ranges: Vec<Range>,
    open: usize,
    last_progress: Instant,
    fetched: u64,
    skipped: u64,
    started: bool,
}

fn unreachable(src: &Source, e: impl std::fmt::Display) -> KafkaFdwError {
    KafkaFdwError::Unreachable(format!(
        "cannot reach Kafka at {}: {e}",
        src.opt_str("bootstrap_servers")
    ))
}

/// Topic names of the cluster (no internal `__` topics), sorted.
pub(crate) fn list_topics(src: &Source) -> Result<Vec<String>, ErrorReport> {
    crate::block::run(src.kafka_topics())
        .map(|(_, topics)| topics)
        .map_err(|e| KafkaFdwError::Unreachable(e.message).into())
}

/// Everything the start of a scan learns from the brokers.
struct Started {
    consumer: BaseConsumer,
    ranges: Vec<Range>,
}

impl KafkaScan {
    pub fn new(
        table: TableDef,
        req: Request,
        explain_only: bool,
    ) -> Result<KafkaScan, ErrorReport> {
        let src = source(&table)?;
        let topic = topic(&table)?;
        let kinds = plan::col_kinds(&table);
        let on_error = OnError::parse(table.opt("on_error"));
        // With on_error skip/error, whether a message is bad must not depend on the columns a
        // query reads (count(*) and SELECT * see the same rows): decode every column then.
        let decoded: Vec<i16> = if on_error == OnError::Null {
            req.wanted.clone()
        } else {
            kinds.iter().map(|(a, _)| *a).collect()
        };
        let cols: Vec<ColKind> = decoded
            .iter()
            .map(|a| {
                kinds
                    .iter()
                    .find(|(n, _)| n == a)
                    .map(|(_, k)| k.clone())
                    .unwrap_or(ColKind::Error)
            })
            .collect();
        let cols_have_headers = cols.contains(&ColKind::Headers);
        let out: Vec<usize> = req
            .wanted
            .iter()
            .map(|a| decoded.iter().position(|d| d == a).unwrap_or(0))
            .collect();
        let mut s = KafkaScan {
            buf: vec![Val::Null; decoded.len()],
            out,
            format: Format::parse(table.opt("format")),
            on_error,
            timeout: src.timeout(),
            wants_headers: cols_have_headers,
            batch: None,
            table,
            topic,
            src,
            req,
            cols,
            consumer: None,
            ranges: vec![],
            open: 0,
            last_progress: Instant::now(),
            fetched: 0,
            skipped: 0,
            started: false,
        };
        if !explain_only {
            s.start()?;
        }
        Ok(s)
    }

    /// Resolves per-partition ranges (metadata, watermarks, offsets-for-times) and assigns
    /// the partitions to read. Runs off the backend thread so Ctrl-C stays responsive.
    fn start(&mut self) -> Result<(), ErrorReport> {
        self.batch = None;
        // A rescan reuses the consumer (a new one costs a connection, and closing one ~100 ms):
        // the new assignment replaces the old, and librdkafka drops messages fetched for it.
        let existing = self.consumer.take();
        let mut cfg = self.src.kafka_config();
        cfg.set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50")
            .set("queued.max.messages.kbytes", "16384")
            // librdkafka postpones a partition's next fetch by this much once its queue is
            // over the thresholds (default 1000 ms): a consumer that also runs the executor
            // between messages hits that often, so keep the pause short.
            .set("fetch.queue.backoff.ms", "5")
            .set(
                "fetch.message.max.bytes",
                (int_opt(&self.table, "batch_size", 1_048_576)).to_string(),
            );
        let src = self.src.clone();
        let topic = self.topic.clone();
        let conds = self.req.conds.clone();
        let meta = MetaCols::of(&self.table);
        let table_name = self.table.name.clone();
        let started = crate::block::run(self.src.blocking(move || {
            Ok(start_blocking(
                &src,
                cfg,
                existing,
                &topic,
                &table_name,
                &conds,
                &meta,
            ))
        }));
        let started = match started {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(KafkaFdwError::Timeout(e.message).into()),
        };
        self.open = started.ranges.iter().filter(|r| !r.done).count();
        self.ranges = started.ranges;
        self.batch = Some(Batch::new(&started.consumer));
        self.consumer = Some(started.consumer);
        self.last_progress = Instant::now();
        self.fetched = 0;
        self.skipped = 0;
        self.started = true;
        Ok(())
    }
}

fn start_blocking(
    src: &Source,
    cfg: rdkafka::ClientConfig,
    existing: Option<BaseConsumer>,
    topic: &str,
    table: &str,
    conds: &[crate::fdw::cond::Cond],
    meta: &MetaCols,
) -> Result<Started, KafkaFdwError> {
    let deadline = Instant::now() + src.timeout();
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100))
    };
    let consumer: BaseConsumer = match existing {
        Some(c) => c,
        None => cfg
            .create()
            .map_err(|e| KafkaFdwError::Config(format!("Kafka client: {e}")))?,
    };
    // Every partition needs a leader, or its watermarks (and so the snapshot) would be wrong:
    // right after a broker restart some have none for a moment; wait for them within timeout_ms.
    let parts: Vec<i32> = loop {
        let md = consumer
            .fetch_metadata(Some(topic), left())
            .map_err(|e| unreachable(src, e))?;
        let t = md.topics().iter().find(|t| t.name() == topic);
        let Some(t) = t.filter(|t| t.error().is_none() && !t.partitions().is_empty()) else {
            return Err(KafkaFdwError::TopicMissing {
                table: table.to_string(),
                topic: topic.to_string(),
            });
        };
        let leaderless: Vec<String> = t
            .partitions()
            .iter()
            .filter(|p| p.leader() < 0 || p.error().is_some())
            .map(|p| p.id().to_string())
            .collect();
        if leaderless.is_empty() {
            let mut parts: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            parts.sort();
            break parts;
        }
        if Instant::now() >= deadline {
            return Err(KafkaFdwError::Unreachable(format!(
                "topic \"{topic}\" partition(s) {} have no leader (brokers starting or down) after {} ms (timeout_ms)",
                leaderless.join(", "),
                src.timeout().as_millis()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut ranges = vec![];
    let mut wanted: Vec<(i32, Bounds)> = vec![];
    for p in parts {
        let b = plan::partition_bounds(meta, conds, p);
        if !b.empty {
            wanted.push((p, b));
        }
    }
    // Offsets for timestamp bounds, one request per bound side.
    let by_time =
        |pick: &dyn Fn(&Bounds) -> Option<i64>| -> Result<Vec<Option<i64>>, KafkaFdwError> {
            let mut tpl = TopicPartitionList::new();
            for (p, b) in &wanted {
                if let Some(ms) = pick(b) {
                    tpl.add_partition_offset(topic, *p, Offset::Offset(ms))
                        .map_err(|e| KafkaFdwError::Remote(e.to_string()))?;
                }
            }
            if tpl.count() == 0 {
                return Ok(vec![None; wanted.len()]);
            }
            let res = consumer
                .offsets_for_times(tpl, left())
                .map_err(|e| unreachable(src, e))?;
            Ok(wanted
                .iter()
                .map(|(p, b)| {
                    pick(b)?;
                    match res.find_partition(topic, *p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        // No message at or after the timestamp.
                        _ => Some(i64::MAX),
                    }
                })
                .collect())
        };
    let lo_t = by_time(&|b| b.ts_lo)?;
    let hi_t = by_time(&|b| b.ts_hi)?;
    let mut tpl = TopicPartitionList::new();
    for (i, (p, b)) in wanted.iter().enumerate() {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, left())
            .map_err(|e| unreachable(src, e))?;
        let start = low.max(b.off_lo).max(lo_t[i].unwrap_or(0));
        let end = high.min(b.off_hi).min(hi_t[i].unwrap_or(i64::MAX));
        let done = start >= end;
        if !done {
            tpl.add_partition_offset(topic, *p, Offset::Offset(start))
                .map_err(|e| KafkaFdwError::Remote(e.to_string()))?;
        }
        ranges.push(Range {
            partition: *p,
            start,
            end: end.max(start),
            done,
        });
    }
    if tpl.count() > 0 {
        consumer
            .assign(&tpl)
            .map_err(|e| KafkaFdwError::Remote(e.to_string()))?;
    } else {
        consumer
            .unassign()
            .map_err(|e| KafkaFdwError::Remote(e.to_string()))?;
    }
    Ok(Started { consumer, ranges })
}

/// Messages taken from the consumer's queue in batches (`rd_kafka_consume_batch_queue`): one
/// queue lock per batch instead of one per message, which is what keeps `count(*)` close to a
/// bare consumer.
struct Batch {
    queue: *mut rdsys::rd_kafka_queue_t,
    msgs: Vec<*mut rdsys::rd_kafka_message_t>,
    pos: usize,
    filled_at: Instant,
    last_error: Option<String>,
}

const BATCH: usize = 1000;

/// One message of a batch; destroyed (returned to librdkafka) when dropped.
struct RawMsg(*mut rdsys::rd_kafka_message_t);

impl RawMsg {
    fn m(&self) -> &rdsys::rd_kafka_message_t {
        // SAFETY: a non-null message handed out by rd_kafka_consume_batch_queue, owned here.
        unsafe { &*self.0 }
    }
    fn partition(&self) -> i32 {
        self.m().partition
    }
    fn offset(&self) -> i64 {
        self.m().offset
    }
    fn bytes(p: *mut std::ffi::c_void, len: usize) -> Option<&'static [u8]> {
        // SAFETY: librdkafka guarantees `len` readable bytes at `p` while the message lives;
        // callers only use the slice while `self` is alive (the 'static is local to next()).
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
    fn payload(&self) -> Option<&[u8]> {
        Self::bytes(self.m().payload, self.m().len)
    }
    fn key(&self) -> Option<&[u8]> {
        Self::bytes(self.m().key, self.m().key_len)
    }
    fn timestamp_ms(&self) -> Option<i64> {
        let mut ty = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: valid message.
        let ts = unsafe { rdsys::rd_kafka_message_timestamp(self.0, &mut ty) };
        (ts >= 0).then_some(ts)
    }
    fn headers(&self) -> Vec<(&str, Option<&[u8]>)> {
        let mut out = vec![];
        let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: valid message; headers stay owned by it.
        unsafe {
            if rdsys::rd_kafka_message_headers(self.0, &mut hdrs)
                != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                return out;
            }
            let mut i = 0;
            loop {
                let mut name: *const std::ffi::c_char = std::ptr::null();
                let mut val: *const std::ffi::c_void = std::ptr::null();
                let mut size = 0usize;
                if rdsys::rd_kafka_header_get_all(hdrs, i, &mut name, &mut val, &mut size)
                    != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    break;
                }
                let key = std::ffi::CStr::from_ptr(name).to_str().unwrap_or("");
                out.push((key, Self::bytes(val as *mut _, size)));
                i += 1;
            }
        }
        out
    }
}

impl Drop for RawMsg {
    fn drop(&mut self) {
        // SAFETY: each message is destroyed exactly once.
        unsafe { rdsys::rd_kafka_message_destroy(self.0) }
    }
}

impl Batch {
    fn new(consumer: &BaseConsumer) -> Batch {
        // SAFETY: the consumer outlives the batch (field order in KafkaScan, reset in start()).
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        Batch {
            queue,
            msgs: Vec::with_capacity(BATCH),
            pos: 0,
            filled_at: Instant::now(),
            last_error: None,
        }
    }

    /// The next buffered message that is not an error event.
    fn next(&mut self) -> Option<RawMsg> {
        while self.pos < self.msgs.len() {
            let m = RawMsg(self.msgs[self.pos]);
            self.pos += 1;
            if m.m().err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                // Transport trouble is retried by librdkafka; remember it for the timeout message.
                // SAFETY: rd_kafka_err2str returns a static string.
                self.last_error = Some(
                    unsafe { std::ffi::CStr::from_ptr(rdsys::rd_kafka_err2str(m.m().err)) }
                        .to_string_lossy()
                        .into_owned(),
                );
                continue;
            }
            return Some(m);
        }
        None
    }

    /// Waits up to `wait` for messages; returns how many arrived.
    fn fill(&mut self, wait: Duration) -> usize {
        if self.queue.is_null() {
            return 0;
        }
        self.msgs.clear();
        self.msgs.resize(BATCH, std::ptr::null_mut());
        self.pos = 0;
        // SAFETY: the buffer holds BATCH pointers; librdkafka writes at most that many.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue,
                wait.as_millis() as i32,
                self.msgs.as_mut_ptr(),
                BATCH,
            )
        };
        let n = n.max(0) as usize;
        self.msgs.truncate(n);
        if n > 0 {
            self.filled_at = Instant::now();
        }
        n
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        while self.next().is_some() {}
        if !self.queue.is_null() {
            // SAFETY: the reference taken in new().
            unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
        }
    }
}

impl Scan for KafkaScan {
    fn next(&mut self, row: &mut [Val]) -> Result<bool, ErrorReport> {
        loop {
            if self.open == 0 {
                return Ok(false);
            }
            let Some(batch) = self.batch.as_mut() else {
                return Ok(false);
            };
            let Some(m) = batch.next() else {
                // Nothing buffered: take up to BATCH messages in one go (one queue lock).
                let got = batch.fill(POLL);
                pgrx::check_for_interrupts!();
                if got == 0 && self.last_progress.elapsed() > self.timeout {
                    let open: Vec<String> = self
                        .ranges
                        .iter()
                        .filter(|r| !r.done)
                        .map(|r| r.partition.to_string())
                        .collect();
                    return Err(KafkaFdwError::Timeout(format!(
                        "foreign table {}: no message from topic \"{}\" partition(s) {} within {} ms (timeout_ms){}",
                        self.table.name,
                        self.topic,
                        open.join(", "),
                        self.timeout.as_millis(),
                        batch.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
                    ))
                    .into());
                }
                continue;
            };
            let p = m.partition();
            let o = m.offset();
            let Some(r) = self.ranges.iter_mut().find(|r| r.partition == p) else {
                continue;
            };
            if r.done || o >= r.end || o < r.start {
                continue;
            }
            self.last_progress = batch.filled_at;
            self.fetched += 1;
            if o + 1 >= r.end {
                r.done = true;
                self.open -= 1;
            }
            if self.cols.is_empty() {
                return Ok(true);
            }
            let msg = Msg {
                partition: p,
                offset: o,
                timestamp_ms: m.timestamp_ms(),
                key: m.key(),
                headers: if self.wants_headers {
                    m.headers()
                } else {
                    vec![]
                },
                payload: m.payload(),
            };
            if let Some(err) = plan::decode(&msg, &self.cols, self.format, &mut self.buf) {
                match self.on_error {
                    OnError::Null => {}
                    OnError::Skip => {
                        self.skipped += 1;
                        continue;
                    }
                    OnError::Error => {
                        return Err(decode_error(&self.table, &self.topic, p, o, err))
                    }
                }
            }
            for (slot, &i) in row.iter_mut().zip(&self.out) {
                *slot = std::mem::replace(&mut self.buf[i], Val::Null);
            }
            return Ok(true);
        }
    }

    fn rescan(&mut self, req: &Request) -> Result<(), ErrorReport> {
        self.req = req.clone();
        self.start()
    }

    fn explain(&mut self, verbose: bool, analyze: bool) -> Vec<(String, String)> {
        let mut out = vec![("Kafka Topic".to_string(), self.topic.clone())];
        if !self.req.conds.is_empty() {
            out.push((
                "Kafka Filter".into(),
                plan::describe(&self.table, &self.req.conds),
            ));
        }
        let has_params = self.req.conds.iter().any(Cond::has_params);
        if verbose && !self.started && !has_params {
            // Plain EXPLAIN VERBOSE: ask the brokers which ranges the scan would read.
            if let Err(e) = self.start() {
                out.push((
                    "Partition Ranges".into(),
                    format!("(not resolved: {})", e.message()),
                ));
            }
        }
        if self.started {
            let ranges: Vec<String> = self
                .ranges
                .iter()
                .filter(|r| r.end > r.start)
                .map(|r| format!("{}:[{},{})", r.partition, r.start, r.end))
                .collect();
            let skipped_parts = self.ranges.iter().filter(|r| r.end <= r.start).count();
            let total: i64 = self.ranges.iter().map(|r| r.end - r.start).sum();
            if verbose || analyze {
                out.push((
                    "Partition Ranges".into(),
                    if ranges.is_empty() {
                        "none".into()
                    } else {
                        ranges.join(" ")
                    },
                ));
                out.push(("Messages In Ranges".into(), total.to_string()));
                if skipped_parts > 0 {
                    out.push(("Partitions Skipped".into(), skipped_parts.to_string()));
                }
            }
        }
        if analyze {
            out.push(("Messages Fetched".into(), self.fetched.to_string()));
            if self.skipped > 0 {
                out.push((
                    "Messages Skipped (on_error skip)".into(),
                    self.skipped.to_string(),
                ));
            }
        }
        out
    }
}

// ----------------------------------------------------------------------------- produce

#[derive(Default)]
struct Delivery {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Clone, Default)]
struct DeliveryCtx(Arc<Delivery>);

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
    producer: BaseProducer<DeliveryCtx>,
    ctx: DeliveryCtx,
    sent: u64,
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
        let ctx = DeliveryCtx::default();
        let producer: BaseProducer<DeliveryCtx> = cfg
            .create_with_context(ctx.clone())
            .map_err(|e| KafkaFdwError::Config(format!("Kafka producer: {e}")))?;
        Ok(KafkaModify {
            format: Format::parse(table.opt("format")),
            kinds: plan::col_kinds(&table),
            table,
            topic,
            src,
            producer,
            ctx,
            sent: 0,
        })
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
        let payload = plan::encode_value(&values, self.format);
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
        loop {
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    rec = r;
                    self.producer.poll(POLL);
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
                    return Err(KafkaFdwError::Delivery(format!(
                        "foreign table {}: cannot produce to topic \"{}\": {e}",
                        self.table.name, self.topic
                    ))
                    .into())
                }
            }
        }
        self.sent += 1;
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ErrorReport> {
        let deadline = Instant::now() + self.src.timeout() + Duration::from_secs(1);
        while self.producer.in_flight_count() > 0 {
            self.producer.poll(POLL);
            pgrx::check_for_interrupts!();
            if Instant::now() > deadline {
                break;
            }
        }
        let d = &self.ctx.0;
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
