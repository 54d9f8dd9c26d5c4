//! How big a Kafka scan is: the planner's row estimate from the partitions' watermarks, and
//! the work units a parallel scan shares out.
//!
//! At plan time [`watermarks`] asks the brokers for every partition's low and high watermark
//! (one metadata request and two offset lookups for all partitions), bounded by
//! [`PLAN_WAIT`] (or `timeout_ms` if shorter), and keeps the answer (or the failure) per
//! backend for [`FRESH`], so a statement naming a topic several times, or planned again
//! right away, asks once. Brokers that do not answer leave the estimate to the generic guess:
//! planning never fails or waits long because Kafka is down. [`estimate`] and
//! [`split_units`] are pure.
use super::plan::{self, MetaCols};
use super::scan::consumer_config;
use super::{pool, source, topic};
use crate::fdw::cond::{CmpOp, Cond, Operand};
use crate::fdw::{TableDef, Unit};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest planning waits for the brokers.
const PLAN_WAIT: Duration = Duration::from_millis(1000);
/// How long an answer (or a failure) is reused.
const FRESH: Duration = Duration::from_secs(5);
/// A unit of a parallel scan holds at most this many messages...
pub const MAX_CHUNK: i64 = 65_536;
/// ...and at least this many (a new assignment costs a fetch round trip), unless its
/// partition range is shorter.
pub const MIN_CHUNK: i64 = 4_096;
/// Units per participant a scan aims for, so a participant that is slow (or starts late)
/// leaves work to the others.
const UNITS_PER_PARTICIPANT: i64 = 4;

/// `(partition, low, high)` watermarks of a topic, sorted by partition.
pub type Marks = Vec<(i32, i64, i64)>;

struct Cached {
    at: Instant,
    marks: Option<Marks>,
}

thread_local! {
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

/// The watermarks of `table`'s topic, if the brokers tell within [`PLAN_WAIT`] (cached
/// [`FRESH`]). Never fails: None is "unknown".
pub(super) fn watermarks(table: &TableDef) -> Option<Marks> {
    let src = source(table).ok()?;
    let topic = topic(table).ok()?;
    let cfg = consumer_config(&src, table);
    let key = pool::key(&cfg);
    let cache_key = format!("{key}\u{2}{topic}");
    let hit = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|_, v| v.at.elapsed() < FRESH);
        c.get(&cache_key).map(|v| v.marks.clone())
    });
    if let Some(marks) = hit {
        return marks;
    }
    let wait = src.timeout().min(PLAN_WAIT);
    // The consumer the scan will take from the pool (same configuration): its connection
    // and metadata serve both.
    let existing = pool::take(&key);
    let asked = crate::interruptible::run(src.blocking(move || {
        let consumer = match existing {
            Some(c) => c,
            None => match cfg.create::<BaseConsumer>() {
                Ok(c) => c,
                Err(_) => return Ok((None, None)),
            },
        };
        let marks = ask(&consumer, &topic, Instant::now() + wait);
        Ok((Some(consumer), marks))
    }));
    let marks = match asked {
        Ok((consumer, marks)) => {
            if let Some(c) = consumer {
                pool::give(key, c);
            }
            marks
        }
        Err(_) => None,
    };
    CACHE.with(|c| {
        c.borrow_mut().insert(
            cache_key,
            Cached {
                at: Instant::now(),
                marks: marks.clone(),
            },
        )
    });
    marks
}

/// Metadata, then the earliest and latest offsets of every partition in one lookup each
/// (offsets-for-times with Kafka's "earliest"/"latest" markers), all before `deadline`.
fn ask(consumer: &BaseConsumer, topic: &str, deadline: Instant) -> Option<Marks> {
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        (!d.is_zero()).then_some(d)
    };
    let md = consumer.fetch_metadata(Some(topic), left()?).ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    let mut parts: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    parts.sort();
    let lookup = |at: Offset| -> Option<Vec<i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            tpl.add_partition_offset(topic, *p, at).ok()?;
        }
        let res = consumer.offsets_for_times(tpl, left()?).ok()?;
        parts
            .iter()
            .map(|p| match res.find_partition(topic, *p)?.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            })
            .collect()
    };
    let lows = lookup(Offset::Beginning)?;
    let highs = lookup(Offset::End)?;
    Some(
        parts
            .iter()
            .zip(lows.iter().zip(&highs))
            .map(|(p, (l, h))| (*p, *l, (*h).max(*l)))
            .collect(),
    )
}

/// A bound on `_timestamp` keeps this fraction of a partition's messages (a guess: Kafka
/// cannot say without an offsets-for-times lookup per value).
const TIMESTAMP_SIDE: f64 = 1.0 / 3.0;
/// A condition whose value is only known at scan time (a parameter) keeps this fraction.
const PARAM_FRACTION: f64 = 1.0 / 3.0;

/// Messages a scan with `conds` (parameters unresolved) reads from partitions with watermarks
/// `marks`: per partition the conditions keep, its messages within the offset bounds, times
/// a fraction per timestamp bound; conditions on parameters: `_offset = $1` one message per
/// partition, `_partition = $1` one partition, others [`PARAM_FRACTION`].
pub fn estimate(meta: &MetaCols, conds: &[Cond], marks: &[(i32, i64, i64)]) -> f64 {
    let mut parts = 0usize;
    let mut rows = 0.0;
    for (p, low, high) in marks {
        let b = plan::partition_bounds(meta, conds, *p);
        if b.empty {
            continue;
        }
        let n = ((*high).min(b.off_hi) - (*low).max(b.off_lo)).max(0) as f64;
        let ts = [b.ts_lo, b.ts_hi].iter().filter(|t| t.is_some()).count() as i32;
        rows += n * TIMESTAMP_SIDE.powi(ts);
        parts += 1;
    }
    let param_eq = |c: &Cond, col: Option<i16>| matches!(c, Cond::Cmp { col: x, op: CmpOp::Eq, arg: Operand::Param(_) } if Some(*x) == col);
    for c in conds.iter().filter(|c| c.has_params()) {
        if param_eq(c, meta.offset) {
            rows = rows.min(parts as f64);
        } else if param_eq(c, meta.partition) {
            rows /= parts.max(1) as f64;
        } else {
            rows *= PARAM_FRACTION;
        }
    }
    rows
}

/// Work units of a parallel scan over the `(partition, start, end)` ranges of a snapshot:
/// every message of the ranges in exactly one unit, in chunks of about a quarter of a
/// participant's share (within [`MIN_CHUNK`]..=[`MAX_CHUNK`]), so even one partition is
/// shared out.
pub fn split_units(ranges: &[(i32, i64, i64)], participants: usize) -> Vec<Unit> {
    let total: i64 = ranges
        .iter()
        .map(|(_, s, e)| e.saturating_sub(*s).max(0))
        .fold(0i64, i64::saturating_add);
    let aim = (participants.max(1) as i64).saturating_mul(UNITS_PER_PARTICIPANT);
    let chunk = (total / aim).clamp(MIN_CHUNK, MAX_CHUNK);
    let mut out = vec![];
    for &(part, start, end) in ranges {
        let mut s = start;
        while s < end {
            let e = s.saturating_add(chunk).min(end);
            out.push(Unit {
                part,
                start: s,
                end: e,
            });
            s = e;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::value::Val;

    const META: MetaCols = MetaCols {
        partition: Some(1),
        offset: Some(2),
        timestamp: Some(3),
    };

    fn cmp(col: i16, op: CmpOp, arg: Operand) -> Cond {
        Cond::Cmp { col, op, arg }
    }

    #[test]
    fn units_cover_every_message_once() {
        let ranges = [(0, 0, 20_000), (1, 5, 20_005), (2, 0, 0), (3, 7, 3)];
        for participants in [1, 2, 3, 8, 100] {
            let units = split_units(&ranges, participants);
            for (part, start, end) in ranges {
                let mut mine: Vec<Unit> =
                    units.iter().copied().filter(|u| u.part == part).collect();
                mine.sort_by_key(|u| u.start);
                if start >= end {
                    assert!(mine.is_empty());
                    continue;
                }
                // Contiguous, non-overlapping, exactly [start, end).
                assert_eq!(mine.first().map(|u| u.start), Some(start));
                assert_eq!(mine.last().map(|u| u.end), Some(end));
                for w in mine.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                assert!(mine
                    .iter()
                    .all(|u| u.start < u.end && u.end - u.start <= MAX_CHUNK));
            }
        }
    }

    #[test]
    fn units_share_out_one_partition() {
        // 60k messages, 2 workers + leader: 12 units of 5000.
        let units = split_units(&[(0, 0, 60_000)], 3);
        assert_eq!(units.len(), 12);
        assert!(units.iter().all(|u| u.end - u.start == 5000));
        // Small ranges stay whole; huge ones are cut at MAX_CHUNK.
        assert_eq!(split_units(&[(0, 10, 100)], 4).len(), 1);
        assert_eq!(split_units(&[(0, 0, 10 * MAX_CHUNK)], 1).len(), 10);
        assert_eq!(split_units(&[(0, 0, 3 * MIN_CHUNK + 1)], 4).len(), 4);
        // No overflow at the extremes.
        assert_eq!(split_units(&[(0, i64::MAX - 5, i64::MAX)], 2).len(), 1);
    }

    #[test]
    fn estimates_follow_watermarks_and_bounds() {
        let marks = [(0, 0, 100), (1, 10, 110), (2, 50, 50)];
        assert_eq!(estimate(&META, &[], &marks), 200.0);
        let v = |i: i64| Operand::Val(Val::Int(i));
        // _partition = 0 AND _offset < 100 -> 100; _offset < 50 -> 50 + 40.
        let c = [cmp(1, CmpOp::Eq, v(0)), cmp(2, CmpOp::Lt, v(100))];
        assert_eq!(estimate(&META, &c, &marks), 100.0);
        assert_eq!(estimate(&META, &[cmp(2, CmpOp::Lt, v(50))], &marks), 90.0);
        // Offsets beyond the high watermark read nothing.
        assert_eq!(estimate(&META, &[cmp(2, CmpOp::Ge, v(500))], &marks), 0.0);
        // Timestamps: a fraction per bound.
        let ts = |op| cmp(3, op, Operand::Val(Val::Ts(1_700_000_000_000_000)));
        assert!((estimate(&META, &[ts(CmpOp::Ge)], &marks) - 200.0 / 3.0).abs() < 1e-9);
        let both = [ts(CmpOp::Ge), ts(CmpOp::Lt)];
        assert!(estimate(&META, &both, &marks) < 200.0 / 3.0);
        // Parameters: one message per partition, one partition, or a fraction.
        let p = Operand::Param(0);
        assert_eq!(
            estimate(&META, &[cmp(2, CmpOp::Eq, p.clone())], &marks),
            3.0
        );
        assert!(
            (estimate(&META, &[cmp(1, CmpOp::Eq, p.clone())], &marks) - 200.0 / 3.0).abs() < 1e-9
        );
        assert!((estimate(&META, &[cmp(2, CmpOp::Ge, p)], &marks) - 200.0 / 3.0).abs() < 1e-9);
    }
}
