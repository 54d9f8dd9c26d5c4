//! Idle consumers kept by the backend between scans, so a query does not pay for a new
//! librdkafka client (its threads, the bootstrap connection and metadata: tens of
//! milliseconds) each time. A consumer is keyed by its whole configuration, so a scan only
//! reuses a client built exactly as it would build one; it comes back unassigned (librdkafka
//! drops what it had fetched), and is closed after [`IDLE_FOR`] unused.
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// How long an idle consumer is kept.
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Idle consumers kept per backend (a join of several Kafka tables returns several at once).
const MAX_IDLE: usize = 4;

struct Idle {
    key: String,
    since: Instant,
    consumer: BaseConsumer,
}

thread_local! {
    static IDLE: RefCell<Vec<Idle>> = const { RefCell::new(Vec::new()) };
}

/// The pool key of a configuration: every setting, sorted (secrets stay in memory only).
pub(super) fn key(cfg: &rdkafka::ClientConfig) -> String {
    let mut kv: Vec<_> = cfg.config_map().iter().collect();
    kv.sort();
    kv.iter()
        .map(|(k, v)| format!("{k}={v}\u{1}"))
        .collect::<String>()
}

/// An idle consumer built with the configuration `key`, if one is kept.
pub(super) fn take(key: &str) -> Option<BaseConsumer> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        expire(&mut idle);
        let i = idle.iter().position(|c| c.key == key)?;
        Some(idle.swap_remove(i).consumer)
    })
}

/// Keeps `consumer` for a later scan (unassigned first); the oldest goes when the pool is full.
pub(super) fn give(key: String, consumer: BaseConsumer) {
    if consumer.unassign().is_err() {
        return; // dropped: it is in a state we do not want to reuse
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        expire(&mut idle);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            key,
            since: Instant::now(),
            consumer,
        });
    })
}

fn expire(idle: &mut Vec<Idle>) {
    idle.retain(|c| c.since.elapsed() < IDLE_FOR);
}
