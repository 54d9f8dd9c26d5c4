//! Reading Kafka topics: a scan is a bounded snapshot. At start it resolves, per partition,
//! the offsets to read (`[start, end)`: the WHERE bounds of [`plan`], offsets-for-times for
//! timestamp bounds, and the high watermark at that moment) and assigns those partitions to a
//! consumer (no group join, no commits); it then decodes messages with [`codec`] until every
//! range is done, failing if no message arrives within `timeout_ms`.
//!
//! In a parallel scan (`pg/parallel.rs`) the leader resolves the ranges once ([`Scan::units`]:
//! the snapshot, split into work units by [`sizing::split_units`]) and every participant reads
//! the units it claims, one partition range at a time ([`Scan::start_unit`]).
use super::batch::Batch;
use super::codec::{self, ColKind, Format, Msg, OnError};
use super::plan::{self, Bounds, MetaCols};
use super::pool;
use super::sizing;
use super::{decode_error, source, topic, KafkaFdwError};
use crate::datasource::Source;
use crate::fdw::cond::{Cond, Request};
use crate::fdw::value::Val;
use crate::fdw::{int_opt, ParallelStats, Scan, TableDef, Unit};
use pgrx::pg_sys::panic::ErrorReport;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How long one wait for messages (or for producer events) lasts before looking at interrupts.
pub(super) const POLL: Duration = Duration::from_millis(100);

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
    /// The consumer's configuration as a [`pool`] key: it goes back to the pool at the end.
    pool_key: String,
    ranges: Vec<Range>,
    open: usize,
    last_progress: Instant,
    fetched: u64,
    skipped: u64,
    started: bool,
    /// Set once the scan takes part in a parallel execution.
    parallel: Option<Parallel>,
}

/// A participant's side of a parallel scan.
#[derive(Default)]
struct Parallel {
    /// The ranges of the snapshot and their work units (the leader's; empty in a worker).
    snapshot: Vec<Range>,
    units: usize,
    /// Messages fetched and skipped over every unit this participant read.
    fetched: u64,
    skipped: u64,
    /// Every participant's work, given to the leader at the end.
    stats: Option<ParallelStats>,
}

fn unreachable(src: &Source, e: impl std::fmt::Display) -> KafkaFdwError {
    KafkaFdwError::Unreachable(format!(
        "cannot reach Kafka at {}: {e}",
        src.opt_str("bootstrap_servers")
    ))
}

/// Topic names of the cluster (no internal `__` topics), sorted.
pub(crate) fn list_topics(src: &Source) -> Result<Vec<String>, ErrorReport> {
    crate::interruptible::run(src.kafka_topics())
        .map(|(_, topics)| topics)
        .map_err(|e| KafkaFdwError::Unreachable(e.message).into())
}

/// Everything the start of a scan learns from the brokers.
struct Started {
    consumer: BaseConsumer,
    ranges: Vec<Range>,
}

impl KafkaScan {
    /// A scan of `table` for the planned `req`; nothing is asked of the brokers until
    /// [`Scan::start`] (or a plain EXPLAIN VERBOSE, see [`Scan::explain`]).
    pub fn new(table: TableDef, req: Request) -> Result<KafkaScan, ErrorReport> {
        let src = source(&table)?;
        let topic = topic(&table)?;
        let kinds = codec::col_kinds(&table);
        let on_error = OnError::parse(table.opt("on_error"));
        // Whether a message is bad must not depend on the columns a query reads: with
        // on_error skip/error (count(*) and SELECT * see the same rows), and whenever `_error`
        // is read (it says why the message does not decode, whatever else is selected), every
        // column is decoded.
        let reads_error = req
            .wanted
            .iter()
            .any(|a| kinds.iter().any(|(n, k)| n == a && *k == ColKind::Error));
        let decoded: Vec<i16> = if on_error == OnError::Null && !reads_error {
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
        Ok(KafkaScan {
            buf: vec![Val::Null; decoded.len()],
            out,
            format: Format::of(&table),
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
            pool_key: String::new(),
            ranges: vec![],
            open: 0,
            last_progress: Instant::now(),
            fetched: 0,
            skipped: 0,
            started: false,
            parallel: None,
        })
    }

    /// A consumer for this scan: the open one, an idle one of the backend built the same way,
    /// or None (the caller creates one from `cfg`).
    fn take_consumer(&mut self, cfg: &rdkafka::ClientConfig) -> Option<BaseConsumer> {
        self.batch = None;
        self.pool_key = pool::key(cfg);
        self.consumer.take().or_else(|| pool::take(&self.pool_key))
    }

    /// Counts of the read that just ended go to the parallel totals.
    fn bank_counts(&mut self) {
        if let Some(p) = self.parallel.as_mut() {
            p.fetched += std::mem::take(&mut self.fetched);
            p.skipped += std::mem::take(&mut self.skipped);
        }
    }

    /// Resolves per-partition ranges of `self.req` (metadata, watermarks, offsets-for-times)
    /// and assigns the partitions to read. Runs off the backend thread so Ctrl-C stays
    /// responsive.
    fn open(&mut self) -> Result<(), ErrorReport> {
        let started = self.resolve(true)?;
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

    /// The ranges of `self.req` (and the consumer that asked), assigned if `assign`.
    fn resolve(&mut self, assign: bool) -> Result<Started, ErrorReport> {
        let cfg = consumer_config(&self.src, &self.table);
        // A rescan reuses the consumer, and a new scan takes an idle one of the backend's if
        // it was built the same way (a new one costs threads, a connection and metadata): the
        // new assignment replaces the old, and librdkafka drops messages fetched for it.
        let existing = self.take_consumer(&cfg);
        let src = self.src.clone();
        let topic = self.topic.clone();
        let conds = self.req.conds.clone();
        let meta = MetaCols::of(&self.table);
        let table_name = self.table.name.clone();
        let started = crate::interruptible::run(self.src.blocking(move || {
            Ok(start_blocking(
                &src,
                cfg,
                existing,
                &topic,
                &table_name,
                &conds,
                &meta,
                assign,
            ))
        }));
        match started {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(KafkaFdwError::Timeout(e.message).into()),
        }
    }
}

/// The configuration of a scan's consumer (also the [`pool`] key planning uses, so the
/// consumer that asked for the watermarks at plan time is the one the scan reuses).
pub(super) fn consumer_config(src: &Source, table: &TableDef) -> rdkafka::ClientConfig {
    let mut cfg = src.kafka_config();
    // End-of-partition events tell where a partition's snapshot ends even when its last
    // offsets hold no message (transaction markers; see `next`). Scans read committed
    // messages only, up to the last stable offset at start.
    cfg.set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // The broker holds a fetch at the end of the log this long; a scan never waits for
        // new messages (it stops at the watermark), and a stale long-poll fetch of a
        // reused consumer delays the first fetch of its next assignment.
        .set("fetch.wait.max.ms", "5")
        .set("queued.max.messages.kbytes", "16384")
        // librdkafka postpones a partition's next fetch by this much once its queue is
        // over the thresholds (default 1000 ms): a consumer that also runs the executor
        // between messages hits that often, so keep the pause short.
        .set("fetch.queue.backoff.ms", "5")
        .set(
            "fetch.message.max.bytes",
            (int_opt(table, "batch_size", 1_048_576)).to_string(),
        );
    cfg
}

#[allow(clippy::too_many_arguments)]
fn start_blocking(
    src: &Source,
    cfg: rdkafka::ClientConfig,
    existing: Option<BaseConsumer>,
    topic: &str,
    table: &str,
    conds: &[crate::fdw::cond::Cond],
    meta: &MetaCols,
    assign: bool,
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
        if !done && assign {
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
    if !assign {
        // A parallel scan's leader: participants assign the units they claim.
    } else if tpl.count() > 0 {
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

impl Drop for KafkaScan {
    fn drop(&mut self) {
        // The batch holds a reference to the consumer's queue: release it first.
        self.batch = None;
        if let Some(c) = self.consumer.take() {
            // SAFETY: reads a backend global Postgres sets once when a process starts
            // (-1 outside parallel workers); this runs on the backend's thread.
            let worker = unsafe { pgrx::pg_sys::ParallelWorkerNumber } >= 0;
            if worker {
                // A parallel worker runs one plan and exits: nothing would reuse the consumer,
                // so close it now rather than at process exit.
                drop(c);
            } else {
                pool::give(std::mem::take(&mut self.pool_key), c);
            }
        }
    }
}

impl Scan for KafkaScan {
    fn start(&mut self, req: &Request) -> Result<(), ErrorReport> {
        self.req = req.clone();
        self.open()
    }

    fn units(&mut self, req: &Request, participants: usize) -> Result<Vec<Unit>, ErrorReport> {
        self.req = req.clone();
        let started = self.resolve(false)?;
        self.consumer = Some(started.consumer);
        let ranges: Vec<(i32, i64, i64)> = started
            .ranges
            .iter()
            .map(|r| (r.partition, r.start, r.end))
            .collect();
        let units = sizing::split_units(&ranges, participants);
        // EXPLAIN shows the snapshot; what this participant reads is set per unit.
        let p = self.parallel.get_or_insert_with(Parallel::default);
        p.snapshot = started.ranges;
        p.units = units.len();
        self.ranges.clear();
        self.open = 0;
        Ok(units)
    }

    fn start_unit(&mut self, req: &Request, unit: &Unit) -> Result<(), ErrorReport> {
        self.bank_counts();
        self.parallel.get_or_insert_with(Parallel::default);
        self.req = req.clone();
        let cfg = consumer_config(&self.src, &self.table);
        let consumer = match self.take_consumer(&cfg) {
            Some(c) => c,
            // Creating a client starts its threads; the brokers are contacted by the fetches.
            None => cfg
                .create::<BaseConsumer>()
                .map_err(|e| KafkaFdwError::Config(format!("Kafka client: {e}")))?,
        };
        let mut tpl = TopicPartitionList::new();
        let assigned = tpl
            .add_partition_offset(&self.topic, unit.part, Offset::Offset(unit.start))
            .and_then(|_| consumer.assign(&tpl));
        self.batch = Some(Batch::new(&consumer));
        self.consumer = Some(consumer);
        assigned.map_err(|e| {
            KafkaFdwError::Remote(format!(
                "foreign table {}: cannot assign topic \"{}\" partition {} at offset {}: {e}",
                self.table.name, self.topic, unit.part, unit.start
            ))
        })?;
        let done = unit.start >= unit.end;
        let range = Range {
            partition: unit.part,
            start: unit.start,
            end: unit.end.max(unit.start),
            done,
        };
        self.ranges = vec![range];
        self.open = usize::from(!done);
        self.last_progress = Instant::now();
        Ok(())
    }

    fn fetched(&self) -> u64 {
        self.fetched + self.parallel.as_ref().map_or(0, |p| p.fetched)
    }

    fn parallel_stats(&mut self, stats: ParallelStats) {
        if let Some(p) = self.parallel.as_mut() {
            p.stats = Some(stats);
        }
    }

    fn next(&mut self, row: &mut [Val]) -> Result<bool, ErrorReport> {
        loop {
            if self.open == 0 {
                return Ok(false);
            }
            let Some(batch) = self.batch.as_mut() else {
                return Ok(false);
            };
            let m = batch.next();
            // A partition ends where the consumer reached the end of the snapshot, whether or
            // not a message sits at `end - 1` (transaction markers and aborted transactions'
            // messages take offsets a read_committed consumer never sees).
            for (p, off) in batch.eofs.drain(..) {
                if let Some(r) = self.ranges.iter_mut().find(|r| r.partition == p) {
                    if !r.done && off >= r.end {
                        r.done = true;
                        self.open -= 1;
                    }
                }
            }
            if self.open == 0 {
                return Ok(false);
            }
            let Some(m) = m else {
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
            if r.done || o < r.start {
                continue;
            }
            if o >= r.end {
                // Past the end: the offsets before it carried no message.
                r.done = true;
                self.open -= 1;
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
            if let Some(err) = codec::decode(
                &msg,
                &self.cols,
                self.format,
                &mut self.buf,
                &crate::fdw::pg::input::text_input,
            ) {
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

    fn explain(&mut self, verbose: bool, analyze: bool) -> Vec<(String, String)> {
        let mut out = vec![("Kafka Topic".to_string(), self.topic.clone())];
        if !self.req.conds.is_empty() {
            out.push((
                "Kafka Filter".into(),
                plan::describe(&self.table, &self.req.conds),
            ));
        }
        let has_params = self.req.conds.iter().any(Cond::has_params);
        if verbose && !analyze && !self.started && !has_params && self.parallel.is_none() {
            // Plain EXPLAIN VERBOSE: ask the brokers which ranges the scan would read.
            if let Err(e) = self.open() {
                out.push((
                    "Partition Ranges".into(),
                    format!("(not resolved: {})", e.message()),
                ));
            }
        }
        // A parallel scan shows the snapshot the leader resolved for every participant.
        let shown = match &self.parallel {
            Some(p) => Some(&p.snapshot),
            None => self.started.then_some(&self.ranges),
        };
        if let Some(shown) = shown {
            let ranges: Vec<String> = shown
                .iter()
                .filter(|r| r.end > r.start)
                .map(|r| format!("{}:[{},{})", r.partition, r.start, r.end))
                .collect();
            let skipped_parts = shown.iter().filter(|r| r.end <= r.start).count();
            let total: i64 = shown.iter().map(|r| r.end - r.start).sum();
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
        if let Some(p) = &self.parallel {
            out.extend(parallel_lines(p, self.fetched(), self.skipped, analyze));
            return out;
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

/// EXPLAIN lines of a parallel scan's leader: the work units and, with ANALYZE, the messages
/// every participant fetched ("Messages Fetched" is their sum, as for a serial scan; the
/// workers' counts reach the leader when the parallel part ends, see `pg/parallel.rs`).
fn parallel_lines(
    p: &Parallel,
    leader_fetched: u64,
    open_skipped: u64,
    analyze: bool,
) -> Vec<(String, String)> {
    let mut out = vec![("Work Units".to_string(), p.units.to_string())];
    if !analyze {
        return out;
    }
    match &p.stats {
        Some(st) => {
            let workers: u64 = st.workers.iter().map(|w| w.1).sum();
            out.push((
                "Messages Fetched".into(),
                (st.leader_fetched + workers).to_string(),
            ));
            out.push((
                "Messages Fetched By Leader".into(),
                format!("{} ({} units)", st.leader_fetched, st.leader_units),
            ));
            if !st.workers.is_empty() {
                let per: Vec<String> = st
                    .workers
                    .iter()
                    .map(|(units, fetched)| format!("{fetched} ({units} units)"))
                    .collect();
                out.push(("Messages Fetched By Workers".into(), per.join(", ")));
            }
        }
        // The workers' counts never reached the leader (the parallel part did not end).
        None => out.push((
            "Messages Fetched By Leader".into(),
            leader_fetched.to_string(),
        )),
    }
    let skipped = p.skipped + open_skipped;
    if skipped > 0 {
        out.push((
            "Messages Skipped By Leader (on_error skip)".into(),
            skipped.to_string(),
        ));
    }
    out
}
