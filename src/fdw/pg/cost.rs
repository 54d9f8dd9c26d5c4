//! Row estimates and paths: `baserel->rows` from the wrapper's estimate (the brokers'
//! watermarks for Kafka) or a flat guess, the costs of [`Wrapper::costs`], and, for wrappers
//! whose scans can be shared ([`Wrapper::PARALLEL`]), a partial path (a Parallel Foreign
//! Scan under a Gather) with a worker count from Postgres' own rule for table sizes.
//!
//! All pointers are planner nodes of the current planning callback (see `plan.rs`).
use super::util::{cstr, list_ptrs};
use crate::fdw::cond::{CmpOp, Cond, Request};
use crate::fdw::{Planner, Wrapper};
use pgrx::pg_sys;
use std::ffi::c_void;
use std::ptr;

/// For the worker count, a partial path counts this many messages as one heap page: Postgres
/// considers a parallel scan from `min_parallel_table_scan_size` (default 8MB = 1024 pages,
/// so about 100k messages) and adds a worker each time the size triples.
pub const ROWS_PER_PAGE: f64 = 100.0;

/// The generic guess without an estimate: the LIMIT, else 1000, at most 10 with an `=`.
pub fn guess_rows(req: &Request) -> f64 {
    let mut rows = match req.limit {
        Some(l) => l as f64,
        None => 1000.0,
    };
    if req
        .conds
        .iter()
        .any(|c| matches!(c, Cond::Cmp { op: CmpOp::Eq, .. }))
    {
        rows = rows.min(10.0);
    }
    rows.max(1.0)
}

/// Sets `baserel->rows` (and `tuples`, what the scan fetches): the planner's estimate of the
/// rows `req` fetches times the selectivity of the clauses that stay local (`local`: not
/// shipped), capped by the LIMIT; or [`guess_rows`] when the wrapper cannot tell.
///
/// # Safety
/// In GetForeignRelSize: `root` and `baserel` are its arguments; `local` holds
/// RestrictInfos of `baserel->baserestrictinfo`.
pub(super) unsafe fn set_rows(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    planner: &dyn Planner,
    req: &Request,
    local: &[*mut c_void],
) {
    let Some(fetched) = planner.estimate_rows(req).filter(|r| r.is_finite()) else {
        (*baserel).rows = guess_rows(req);
        (*baserel).tuples = (*baserel).rows;
        return;
    };
    let mut list: *mut pg_sys::List = ptr::null_mut();
    for ri in local {
        list = pg_sys::lappend(list, *ri);
    }
    let sel = if list.is_null() {
        1.0
    } else {
        pg_sys::clauselist_selectivity(
            root,
            list,
            (*baserel).relid as i32,
            pg_sys::JoinType::JOIN_INNER,
            ptr::null_mut(),
        )
    };
    let mut rows = fetched.max(0.0) * sel;
    if let Some(l) = req.limit {
        rows = rows.min(l as f64);
    }
    (*baserel).tuples = fetched.max(1.0).round();
    (*baserel).rows = rows.max(1.0).round();
}

/// The request `plan_rel` stored in `baserel->fdw_private` (None if unreadable).
///
/// # Safety
/// `baserel->fdw_private` is NULL or the list `plan_rel` built ([String json, List exprs]).
unsafe fn planned_request(baserel: *mut pg_sys::RelOptInfo) -> Option<Request> {
    let private = list_ptrs((*baserel).fdw_private as *mut pg_sys::List);
    let json = private.first().copied()? as *mut pg_sys::String;
    serde_json::from_str(&cstr((*json).sval)).ok()
}

/// Postgres' `get_parallel_divisor`: the share of the rows each participant handles.
///
/// # Safety
/// Reads the `parallel_leader_participation` GUC: call on the backend's thread.
unsafe fn parallel_divisor(workers: i32) -> f64 {
    let mut d = workers as f64;
    if pg_sys::parallel_leader_participation {
        let leader = 1.0 - 0.3 * workers as f64;
        if leader > 0.0 {
            d += leader;
        }
    }
    d.max(1.0)
}

/// GetForeignPaths: one complete path; and a partial one when the scan can be shared.
///
/// The complete path is never parallel-safe: run inside a worker (e.g. as the inner side of
/// a join under a Gather) every worker would read the whole table with its own snapshot.
/// The partial path needs a request without parameters (the leader resolves the snapshot
/// once, before any worker starts) and without a shipped LIMIT (stopping early is per
/// participant), and a table big enough for `compute_parallel_worker`.
///
/// # Safety
/// Called by Postgres only, with the arguments of `GetForeignPaths_function`, after
/// GetForeignRelSize set `baserel->rows` and `fdw_private`.
pub(super) unsafe fn add_paths<W: Wrapper>(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
) {
    let req = planned_request(baserel);
    let cols = req.as_ref().map_or(0, |r| r.wanted.len());
    let rows = (*baserel).rows;
    // What the scan fetches (before local filters): the work, whoever does it.
    let fetched = (*baserel).tuples.max(rows);
    let (startup, per_row) = W::costs(fetched, cols);
    let path = pg_sys::create_foreignscan_path(
        root,
        baserel,
        ptr::null_mut(),
        rows,
        startup,
        startup + fetched * per_row,
        ptr::null_mut(),
        ptr::null_mut(),
        ptr::null_mut(),
        ptr::null_mut(),
    );
    (*path).path.parallel_safe = false;
    pg_sys::add_path(baserel, path as *mut pg_sys::Path);

    let Some(req) = req else { return };
    if !W::PARALLEL
        || !(*baserel).consider_parallel
        || req.limit.is_some()
        || req.conds.iter().any(Cond::has_params)
    {
        return;
    }
    let workers = pg_sys::compute_parallel_worker(
        baserel,
        fetched / ROWS_PER_PAGE,
        -1.0,
        pg_sys::max_parallel_workers_per_gather,
    );
    if workers <= 0 {
        return;
    }
    let divisor = parallel_divisor(workers);
    let partial = pg_sys::create_foreignscan_path(
        root,
        baserel,
        ptr::null_mut(),
        (rows / divisor).max(1.0).round(),
        startup,
        startup + fetched * per_row / divisor,
        ptr::null_mut(),
        ptr::null_mut(),
        ptr::null_mut(),
        ptr::null_mut(),
    );
    (*partial).path.parallel_aware = true;
    (*partial).path.parallel_safe = true;
    (*partial).path.parallel_workers = workers;
    pg_sys::add_partial_path(baserel, partial as *mut pg_sys::Path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::cond::Operand;
    use crate::fdw::value::Val;

    #[test]
    fn the_guess_without_an_estimate_is_unchanged() {
        let mut req = Request::default();
        assert_eq!(guess_rows(&req), 1000.0);
        req.limit = Some(5);
        assert_eq!(guess_rows(&req), 5.0);
        req.limit = None;
        req.conds.push(Cond::Cmp {
            col: 1,
            op: CmpOp::Eq,
            arg: Operand::Val(Val::Int(1)),
        });
        assert_eq!(guess_rows(&req), 10.0);
    }
}
