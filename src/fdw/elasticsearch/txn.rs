//! Elasticsearch writes inside the Postgres transaction: the bulk actions of every statement
//! are buffered per backend (one buffer per server, user, index and refresh policy, each
//! action tagged with its subtransaction) and sent at pre-commit, in the order they were
//! made, in bulk requests of `batch_size` actions. ROLLBACK sends nothing; ROLLBACK TO
//! SAVEPOINT drops exactly the actions of the rolled-back subtransactions.
//!
//! Elasticsearch has no transactions and a bulk request is not atomic: when a request at
//! commit is refused or has rejected documents, the other actions of that request and every
//! earlier request were applied, the later requests are not sent, and the Postgres
//! transaction rolls back. The error's detail says how many actions were applied.
use super::client::Es;
use super::write::{send_bulk, BulkOutcome};
use super::EsFdwError;
use crate::fdw::pg::xact;
use crate::fdw::txn::{SubTagged, XactEvent};
use crate::fdw::{fdw_error, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;

/// Where a statement's actions go (borrowed from its `EsModify`).
pub(super) struct Target<'a> {
    pub(super) table: &'a TableDef,
    pub(super) index: &'a str,
    pub(super) es: &'a Es,
    pub(super) refresh: &'a str,
    pub(super) batch: usize,
    /// `max_buffered_bytes` of the table (for every buffer of the transaction together).
    pub(super) limit: usize,
}

struct Action {
    /// The action line and its document line (NDJSON).
    body: String,
    id: String,
}

/// The buffered actions for one index of one connection.
struct Pending {
    key: String,
    /// The first table that wrote here (for messages).
    table: TableDef,
    index: String,
    es: Es,
    refresh: String,
    batch: usize,
    actions: SubTagged<Action>,
}

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

/// Buffers one action (`body`, for document `id`) until COMMIT.
pub(super) fn buffer(t: &Target<'_>, body: String, id: String) -> Result<(), ErrorReport> {
    xact::enlist("Elasticsearch", 0, hook);
    let (_, user) = xact::database_and_user();
    let key = format!("{}/{user}/{}/{}", t.table.server_oid, t.refresh, t.index);
    let size = body.len() + id.len() + std::mem::size_of::<Action>();
    let sub = xact::current_sub();
    PENDING.with(|p| {
        let mut p = p.try_borrow_mut().map_err(|_| busy(t.table))?;
        let total: usize = p.iter().map(|b| b.actions.bytes()).sum();
        if total.saturating_add(size) > t.limit {
            return Err(too_big(t, total));
        }
        let i = match p.iter().position(|b| b.key == key) {
            Some(i) => i,
            None => {
                p.push(Pending {
                    key,
                    table: t.table.clone(),
                    index: t.index.to_string(),
                    es: t.es.clone(),
                    refresh: t.refresh.to_string(),
                    batch: t.batch,
                    actions: SubTagged::default(),
                });
                p.len() - 1
            }
        };
        p[i].actions.push(sub, size, Action { body, id });
        Ok(())
    })
}

fn busy(table: &TableDef) -> ErrorReport {
    fdw_error(
        PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
        format!(
            "foreign table {}: the transaction's Elasticsearch buffer is in use",
            table.name
        ),
        "A write to an Elasticsearch table ran while the buffer was being sent; retry the transaction.",
    )
}

fn too_big(t: &Target<'_>, total: usize) -> ErrorReport {
    fdw_error(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!(
            "foreign table {}: the transaction's buffered Elasticsearch writes would exceed max_buffered_bytes ({} bytes; {total} buffered)",
            t.table.name, t.limit
        ),
        "Writes to Elasticsearch tables are kept in memory until COMMIT. Commit in smaller transactions, raise the table or server option max_buffered_bytes, or set transactional 'false' to send each statement's writes as it runs (then ROLLBACK does not undo them).",
    )
}

/// The transaction hook (see the module doc).
pub(super) fn hook(ev: XactEvent) -> Result<(), ErrorReport> {
    match ev {
        XactEvent::PreCommit => {
            // Taken first: whatever happens below, nothing is left for the abort that follows
            // an error.
            let pending = PENDING.with(|p| {
                p.try_borrow_mut()
                    .map(|mut p| std::mem::take(&mut *p))
                    .unwrap_or_default()
            });
            for mut b in pending {
                commit(&mut b)?;
            }
        }
        XactEvent::PrePrepare => {
            let first = PENDING.with(|p| {
                p.try_borrow().ok().and_then(|p| {
                    p.iter()
                        .find(|b| !b.actions.is_empty())
                        .map(|b| (b.table.name.clone(), b.index.clone()))
                })
            });
            if let Some((table, index)) = first {
                return Err(xact::prepare_refused(&format!(
                    "Elasticsearch foreign table {table} (index \"{index}\")"
                )));
            }
        }
        XactEvent::Abort => PENDING.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.clear();
            }
        }),
        XactEvent::SubCommit { sub, parent } => PENDING.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                for b in p.iter_mut() {
                    b.actions.commit_sub(sub, parent);
                }
            }
        }),
        XactEvent::SubAbort { sub, .. } => PENDING.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                for b in p.iter_mut() {
                    b.actions.abort_sub(sub);
                }
                p.retain(|b| !b.actions.is_empty());
            }
        }),
    }
    Ok(())
}

/// Sends one buffer in bulk requests of `batch` actions; stops at the first request that
/// fails or has a rejected document.
fn commit(b: &mut Pending) -> Result<(), ErrorReport> {
    let actions = b.actions.take_all();
    let total = actions.len();
    let mut applied = 0usize;
    for chunk in actions.chunks(b.batch.max(1)) {
        let body: String = chunk.iter().map(|a| a.body.as_str()).collect();
        let ids: Vec<String> = chunk.iter().map(|a| a.id.clone()).collect();
        let mut out = BulkOutcome::default();
        let left = total - applied - chunk.len();
        if let Err(e) = send_bulk(&b.es, &b.table, &b.index, &b.refresh, body, &ids, &mut out) {
            let detail = format!(
                "COMMIT failed and the Postgres transaction is rolled back. Elasticsearch has no transactions: {applied} of the {total} buffered action(s) for index \"{}\" were applied by earlier bulk requests, the outcome of the failed request ({} action(s)) is unknown, and {left} were not sent.",
                b.index,
                chunk.len()
            );
            return Err(e.set_detail(detail));
        }
        if out.failed > 0 {
            let e: ErrorReport = EsFdwError::Rejected(format!(
                "cannot commit: Elasticsearch rejected {} of the {total} buffered action(s) for foreign table {} (index \"{}\"): {}",
                out.failed,
                b.table.name,
                b.index,
                out.errors.join("; ")
            ))
            .into();
            let detail = format!(
                "The Postgres transaction is rolled back. Elasticsearch bulk requests are not atomic: {} action(s) were applied ({applied} by earlier requests, {} by the request with the rejected ones) and {left} were not sent.",
                applied + chunk.len().saturating_sub(out.failed as usize),
                chunk.len().saturating_sub(out.failed as usize)
            );
            return Err(e
                .set_detail(detail)
                .set_hint("Fix the rejected documents (often a value the index mapping refuses) and retry the transaction; the applied actions stay in the index."));
        }
        applied += chunk.len();
    }
    Ok(())
}
