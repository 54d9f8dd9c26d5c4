//! Kafka INSERTs inside the Postgres transaction: one transactional producer per backend and
//! connection (server + user), kept across transactions (`init_transactions` is slow), with at
//! most one Kafka transaction open, begun by the first INSERT of a Postgres transaction and
//! reused by its later statements.
//!
//! The Postgres glue (`fdw::pg::xact`) calls [`hook`]: at pre-commit every open Kafka
//! transaction is committed (a failure aborts the Postgres commit), at abort every open one
//! is aborted. A subtransaction that wrote and then rolled back dooms the transaction (a
//! produced message cannot be withdrawn from a Kafka transaction): its COMMIT fails and the
//! whole Kafka transaction is aborted.
//!
//! `transactional.id` is `pg_flink/<system identifier>/<database oid>/<server oid>/<user oid>/
//! <backend pid>`: unique among the live backends of every cluster sharing the brokers, stable
//! for the life of a backend, and reused by a later backend with the same pid, whose
//! `init_transactions` then fences a zombie producer and aborts what it left open.
use super::write::{DeliveryCtx, Producer};
use super::KafkaFdwError;
use crate::datasource::Source;
use crate::fdw::pg::xact;
use crate::fdw::txn::{SubMarks, XactEvent};
use crate::fdw::{fdw_error, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer as _};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// A backend's transactional producer for one connection.
pub(super) struct TxnProducer {
    /// `transactional.id`.
    id: String,
    /// Every configuration setting (a changed server rebuilds the producer between
    /// transactions).
    config_key: String,
    pub(super) p: Producer,
    timeout: Duration,
    state: RefCell<TxnState>,
}

#[derive(Default)]
struct TxnState {
    /// A Kafka transaction is open (begun in this Postgres transaction).
    open: bool,
    /// Subtransactions that produced messages; a rolled-back one dooms the transaction.
    marks: SubMarks,
    /// The first table and topic written in this transaction (for messages).
    first: Option<(String, String)>,
}

thread_local! {
    static PRODUCERS: RefCell<Vec<Rc<TxnProducer>>> = const { RefCell::new(Vec::new()) };
}

/// How long Kafka keeps a transaction open before the broker aborts it (librdkafka's
/// `transaction.timeout.ms`, which the broker caps at `transaction.max.timeout.ms`); raised to
/// `timeout_ms` when that is longer (librdkafka wants it at least `message.timeout.ms`).
const TXN_TIMEOUT_MS: u64 = 60_000;

/// The `transactional.id` of this backend for a table's connection.
pub(super) fn transactional_id(table: &TableDef) -> String {
    let (db, user) = xact::database_and_user();
    format!(
        "pg_flink/{}/{db}/{}/{user}/{}",
        xact::system_identifier(),
        table.server_oid,
        xact::backend_pid()
    )
}

/// The producer of `table`'s connection with a Kafka transaction open, for an INSERT.
pub(super) fn producer(
    table: &TableDef,
    src: &Source,
    mut cfg: rdkafka::ClientConfig,
) -> Result<Rc<TxnProducer>, ErrorReport> {
    xact::enlist("Kafka", 1, hook);
    let id = transactional_id(table);
    // librdkafka refuses a message.timeout.ms above transaction.timeout.ms.
    let msg_ms: u64 = cfg
        .get("message.timeout.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let txn_ms = msg_ms.max(TXN_TIMEOUT_MS);
    cfg.set("transactional.id", &id)
        .set("transaction.timeout.ms", txn_ms.to_string());
    let config_key = super::pool::key(&cfg);
    let found = PRODUCERS.with(|ps| {
        let mut ps = ps.borrow_mut();
        let i = ps.iter().position(|p| p.id == id)?;
        let open = ps[i].state.borrow().open;
        if open || ps[i].config_key == config_key {
            Some(ps[i].clone())
        } else {
            // The server changed since: build a new producer (which fences the old one).
            ps.swap_remove(i);
            None
        }
    });
    let tp = match found {
        Some(p) => p,
        None => {
            let tp = Rc::new(create(table, src, cfg, id, config_key)?);
            PRODUCERS.with(|ps| ps.borrow_mut().push(tp.clone()));
            tp
        }
    };
    let mut st = tp.state.borrow_mut();
    if !st.open {
        tp.p.inner.begin_transaction().map_err(|e| {
            forget(&tp.id);
            txn_error(table, "begin a Kafka transaction", &e)
        })?;
        st.open = true;
        st.marks.clear();
        st.first = None;
    }
    drop(st);
    Ok(tp)
}

/// Notes that `table` produced to `topic` in the current subtransaction.
pub(super) fn wrote(tp: &TxnProducer, table: &str, topic: &str) {
    let mut st = tp.state.borrow_mut();
    st.marks.mark(xact::current_sub());
    if st.first.is_none() {
        st.first = Some((table.to_string(), topic.to_string()));
    }
}

fn create(
    table: &TableDef,
    src: &Source,
    cfg: rdkafka::ClientConfig,
    id: String,
    config_key: String,
) -> Result<TxnProducer, ErrorReport> {
    let ctx = DeliveryCtx::default();
    let inner: BaseProducer<DeliveryCtx> = cfg
        .create_with_context(ctx.clone())
        .map_err(|e| KafkaFdwError::Config(format!("Kafka producer: {e}")))?;
    // Finds the transaction coordinator, fences older producers with this id and aborts what
    // they left open; bounded by timeout_ms (not interruptible: librdkafka blocks).
    let timeout = src.timeout().max(Duration::from_secs(10));
    inner
        .init_transactions(timeout)
        .map_err(|e| txn_error(table, "initialise the transactional producer", &e))?;
    Ok(TxnProducer {
        id,
        config_key,
        p: Producer { inner, ctx },
        timeout,
        state: RefCell::new(TxnState::default()),
    })
}

/// Drops the producer with `transactional.id` `id` (after a fatal error, or an abort that
/// failed): the next INSERT builds a new one, whose `init_transactions` fences this one.
fn forget(id: &str) {
    PRODUCERS.with(|ps| {
        if let Ok(mut ps) = ps.try_borrow_mut() {
            ps.retain(|p| p.id != id);
        }
    });
}

fn txn_error(table: &TableDef, what: &str, e: &KafkaError) -> ErrorReport {
    let hint = if matches!(e, KafkaError::Transaction(r) if r.code() == rdkafka::types::RDKafkaErrorCode::TransactionCoordinatorFenced || r.code() == rdkafka::types::RDKafkaErrorCode::InvalidProducerEpoch)
    {
        "Another producer took over this backend's transactional.id; retry the transaction."
    } else {
        "Kafka transactions need brokers with transaction.state.log.replication.factor and transaction.state.log.min.isr at most the number of brokers; or set the table/server option transactional 'false' to produce without a transaction."
    };
    fdw_error(
        PgSqlErrorCode::ERRCODE_FDW_ERROR,
        format!(
            "foreign table {}: cannot {what} (transactional.id \"{}\"): {e}",
            table.name,
            transactional_id(table)
        ),
        hint,
    )
}

fn open_producers() -> Vec<Rc<TxnProducer>> {
    PRODUCERS.with(|ps| {
        ps.try_borrow()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p.state.try_borrow().map(|s| s.open).unwrap_or(false))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// The transaction hook (see the module doc).
pub(super) fn hook(ev: XactEvent) -> Result<(), ErrorReport> {
    match ev {
        XactEvent::PreCommit => {
            for tp in open_producers() {
                commit(&tp)?;
            }
        }
        XactEvent::PrePrepare => {
            if let Some(tp) = open_producers().first() {
                let what = describe(tp);
                return Err(xact::prepare_refused(&what));
            }
        }
        XactEvent::Abort => {
            for tp in open_producers() {
                abort(&tp);
            }
        }
        XactEvent::SubCommit { sub, parent } => {
            for tp in open_producers() {
                if let Ok(mut st) = tp.state.try_borrow_mut() {
                    st.marks.commit_sub(sub, parent);
                }
            }
        }
        XactEvent::SubAbort { sub, .. } => {
            for tp in open_producers() {
                if let Ok(mut st) = tp.state.try_borrow_mut() {
                    st.marks.abort_sub(sub);
                }
            }
        }
    }
    Ok(())
}

fn describe(tp: &TxnProducer) -> String {
    match tp.state.try_borrow().ok().and_then(|s| s.first.clone()) {
        Some((table, topic)) => format!("Kafka foreign table {table} (topic \"{topic}\")"),
        None => "a Kafka foreign table".into(),
    }
}

/// Commits the open Kafka transaction of `tp`; an error leaves it open for the abort that
/// follows (or forgets the producer when it is no longer usable).
fn commit(tp: &TxnProducer) -> Result<(), ErrorReport> {
    let doomed = tp.state.borrow().marks.doomed();
    if doomed {
        return Err(fdw_error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "cannot commit: {} produced messages in a subtransaction that was rolled back; the whole Kafka transaction is aborted",
                describe(tp)
            ),
            "Messages produced to Kafka cannot be withdrawn by ROLLBACK TO SAVEPOINT (or an exception block that caught an error after an INSERT). Retry the transaction without rolling back past INSERTs into Kafka tables.",
        ));
    }
    match tp.p.inner.commit_transaction(tp.timeout) {
        Ok(()) => {
            let mut st = tp.state.borrow_mut();
            st.open = false;
            st.marks.clear();
            st.first = None;
            Ok(())
        }
        Err(e) => {
            if let KafkaError::Transaction(r) = &e {
                if r.is_fatal() {
                    forget(&tp.id);
                }
            }
            Err(fdw_error(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "cannot commit the Kafka transaction of {} (transactional.id \"{}\"): {e}",
                    describe(tp),
                    tp.id
                ),
                "The Postgres transaction is rolled back and the Kafka transaction aborted: no message of it is visible to read_committed consumers. Check the brokers and retry.",
            ))
        }
    }
}

/// Aborts the open Kafka transaction of `tp` (never raises: runs after the abort point).
fn abort(tp: &TxnProducer) {
    let r = tp.p.inner.abort_transaction(tp.timeout);
    if let Ok(mut st) = tp.state.try_borrow_mut() {
        st.open = false;
        st.marks.clear();
        st.first = None;
    }
    if let Err(e) = r {
        // The producer is dropped: the next one with this transactional.id fences it and
        // aborts what is left (or the broker does, after transaction.timeout.ms).
        pgrx::warning!(
            "pg_flink: cannot abort the Kafka transaction of transactional.id \"{}\": {e}; the producer is closed and the broker aborts the transaction at the latest after {TXN_TIMEOUT_MS} ms",
            tp.id
        );
        forget(&tp.id);
    }
}
