//! Scan callbacks: BeginForeignScan, IterateForeignScan, ReScanForeignScan, EndForeignScan
//! and ExplainForeignScan.
//!
//! Each execution builds its own [`ScanState`] from the plan (the JSON [`Request`] in
//! `fdw_private`, the parameter expressions in `fdw_exprs`), so cached plans and re-executed
//! prepared statements never share state. The state is a `Box` owned by
//! `ForeignScanState.fdw_state`; EndForeignScan frees it, and a reset callback on the
//! executor's query memory context (`es_query_cxt`) frees it instead if the statement ends
//! in an error before EndForeignScan runs.
//!
//! Parameters (`fdw_exprs`) are evaluated, and the remote scan started ([`Scan::start`]), at
//! the first IterateForeignScan of an execution and at the first one after every
//! ReScanForeignScan; never in BeginForeignScan. At BeginForeignScan the PARAM_EXEC values of
//! initplans (`WHERE kw LIKE (SELECT ...) || '%'`) and of a nested loop's outer row are not
//! set yet: the executor zero-fills them, so evaluating there read a zero Datum (wrong
//! bounds, or a NULL pointer dereferenced for a text value). By the time a row is asked for,
//! initplans run on demand (ExecEvalParamExec) and a nested loop or SubPlan has stored the
//! outer values and called ReScan. ReScan only marks the scan for a restart (as postgres_fdw
//! does), so the values are read at the next row, when they are valid whatever the caller.
//! EXPLAIN without ANALYZE never iterates: it shows the planned request, parameters as
//! placeholders.
//!
//! A parallel-aware scan (a Parallel Foreign Scan) reads the work units it claims from the
//! shared memory instead (see [`super::parallel`]), once the DSM callbacks attached it; until
//! then (a Gather that runs without workers, e.g. in a cursor) it is a serial scan.
use super::datum::{datum_to_val, val_to_datum};
use super::parallel::Participant;
use super::table_def::table_def;
use super::util::{arm, cstr, list_ptrs};
use crate::fdw::cond::Request;
use crate::fdw::value::{PgType, Val};
use crate::fdw::{fdw_error, Scan, TableDef, Wrapper};
use crate::interruptible::ReportError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_void, CString};
use std::ptr;

/// One execution of a foreign scan, owned by `ForeignScanState.fdw_state`.
pub(super) struct ScanState {
    pub(super) table: TableDef,
    pub(super) req: Request,
    /// Type and typmod of each wanted column (None: a type the wrappers do not fill).
    types: Vec<Option<(PgType, i32)>>,
    /// The scan-slot position of each value of `row` (attnum - 1 for a row scan).
    slots: Vec<usize>,
    /// `ExprState`s of the plan's `fdw_exprs`, in the executor's query memory context.
    exprs: *mut pg_sys::List,
    pub(super) scan: Option<Box<dyn Scan>>,
    /// This process's part in a parallel scan, once the DSM callbacks attached it.
    pub(super) par: Option<Participant>,
    /// Has `scan` been started with this execution's current parameter values? False after
    /// BeginForeignScan and after every ReScanForeignScan: the next Iterate starts it.
    started: bool,
    row: Vec<Val>,
    /// The reset callback that frees this state on error paths (disarmed by EndForeignScan).
    cb: *mut pg_sys::MemoryContextCallback,
}

/// Reset callback of `es_query_cxt` (armed by BeginForeignScan): frees the state if
/// EndForeignScan did not run, i.e. the statement failed.
///
/// # Safety
/// `arg` is NULL (disarmed) or the `Box::into_raw` of a `ScanState` that nothing else frees.
unsafe extern "C-unwind" fn drop_scan_state(arg: *mut c_void) {
    if !arg.is_null() {
        drop(Box::from_raw(arg as *mut ScanState));
    }
}

/// The values of the parameter expressions, evaluated in the per-tuple memory of the scan's
/// expression context (values are copied into Rust, so that memory may be reset after).
///
/// # Safety
/// `node` is the ForeignScanState being executed and `exprs` the `ExprState` list initialised
/// for it by `ExecInitExprList` (see [`begin_foreign_scan`]). Every PARAM_EXEC the expressions
/// read must be set or computable by the time of the call: true inside IterateForeignScan,
/// never in BeginForeignScan (see the module doc).
unsafe fn eval_params(node: *mut pg_sys::ForeignScanState, exprs: *mut pg_sys::List) -> Vec<Val> {
    let econtext = (*node).ss.ps.ps_ExprContext;
    let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
    let mut out = vec![];
    for e in list_ptrs(exprs) {
        let state = e as *mut pg_sys::ExprState;
        let mut isnull = false;
        let d = pg_sys::ExecEvalExpr(state, econtext, &mut isnull);
        let oid = pg_sys::exprType((*state).expr as *const pg_sys::Node);
        out.push(datum_to_val(d, isnull, oid));
    }
    pg_sys::MemoryContextSwitchTo(old);
    out
}

/// BeginForeignScan: decodes the plan's request, reads the table definition, prepares the
/// parameter expressions and the wrapper's scan. Nothing is evaluated and nothing remote is
/// opened here (see the module doc): the first IterateForeignScan does that.
///
/// # Safety
/// Called by Postgres only, with the arguments of `BeginForeignScan_function`: `node` is a
/// ForeignScanState for a ForeignScan planned by [`super::plan`], with its relation open.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn begin_foreign_scan<W: Wrapper>(
    node: *mut pg_sys::ForeignScanState,
    _eflags: i32,
) {
    let plan = (*node).ss.ps.plan as *mut pg_sys::ForeignScan;
    let private = list_ptrs((*plan).fdw_private);
    let json = private
        .first()
        .map(|s| cstr((*(*s as *mut pg_sys::String)).sval))
        .unwrap_or_default();
    let req: Request = serde_json::from_str(&json).unwrap_or_default();
    // An aggregate scan (upper.rs) has no scan relation: its request names the table, and its
    // tuples are the aggregation's outputs in order. A row scan fills the wanted columns.
    let (table, types, slots): (_, Vec<_>, Vec<usize>) = match &req.agg {
        Some(agg) => (
            table_def(pg_sys::Oid::from(agg.relid)),
            agg.outputs
                .iter()
                .map(|(_, t)| Some((t.clone(), -1)))
                .collect(),
            (0..agg.outputs.len()).collect(),
        ),
        None => {
            let table = table_def((*(*node).ss.ss_currentRelation).rd_id);
            let types = req
                .wanted
                .iter()
                .map(|a| {
                    table
                        .col(*a)
                        .and_then(|c| c.ty.clone().map(|t| (t, c.typmod)))
                })
                .collect();
            let slots = req
                .wanted
                .iter()
                .map(|a| (*a as usize).wrapping_sub(1))
                .collect();
            (table, types, slots)
        }
    };
    // Compiling the expressions reads no parameter value (EXPLAIN-only runs do it too).
    let exprs = pg_sys::ExecInitExprList((*plan).fdw_exprs, node as *mut pg_sys::PlanState);
    let row = vec![Val::Null; slots.len()];
    let state = Box::into_raw(Box::new(ScanState {
        table,
        req,
        types,
        slots,
        exprs,
        scan: None,
        par: None,
        started: false,
        row,
        cb: ptr::null_mut(),
    }));
    (*state).cb = arm(
        (*(*node).ss.ps.state).es_query_cxt,
        drop_scan_state,
        state as *mut c_void,
    );
    (*node).fdw_state = state as *mut c_void;
    let st = &mut *state;
    // The planned request, parameters unresolved: what EXPLAIN without ANALYZE shows.
    match W::begin_scan(st.table.clone(), st.req.clone()) {
        Ok(s) => st.scan = Some(s),
        Err(e) => e.report_error(),
    }
}

/// IterateForeignScan: the next row as a virtual tuple in the scan slot (empty slot: done).
///
/// # Safety
/// Called by Postgres only, with the arguments of `IterateForeignScan_function`, after
/// [`begin_foreign_scan`] returned for `node` (so `fdw_state` is a live `ScanState`).
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn iterate_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
) -> *mut pg_sys::TupleTableSlot {
    let slot = (*node).ss.ss_ScanTupleSlot;
    pg_sys::ExecClearTuple(slot);
    // Pointer validity: Postgres calls Iterate only after BeginForeignScan returned, which
    // stored a live ScanState in fdw_state; EndForeignScan (the only other freer) runs after.
    let st = &mut *((*node).fdw_state as *mut ScanState);
    let Some(scan) = st.scan.as_mut() else {
        return slot;
    };
    // Every slot of `st.row` is Null here: the previous row's values were moved out below.
    let more = if let Some(par) = st.par.as_mut().filter(|p| p.attached()) {
        // A parallel scan: the rows of the units this process claims (no parameters).
        par.next(scan.as_mut(), &st.req, &mut st.row)
    } else {
        if !st.started {
            // First row of this execution or of this rescan: the parameters are valid now (an
            // initplan runs on demand inside ExecEvalExpr; a nested loop or SubPlan stored its
            // outer values before ReScan). Evaluate them and open the remote scan. `st.exprs`
            // is the list BeginForeignScan initialised for this node, as eval_params requires.
            let req = st.req.resolve(&eval_params(node, st.exprs));
            if let Err(e) = scan.start(&req) {
                e.report_error();
            }
            st.started = true;
        }
        scan.next(&mut st.row)
    };
    match more {
        Ok(true) => {}
        Ok(false) => return slot,
        Err(e) => e.report_error(),
    }
    let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
    // The scan slot was made for the relation's descriptor: tts_values and tts_isnull hold
    // `natts` entries each. Datums built below live in the per-tuple memory, which the
    // executor resets before the next row (after the row has been used or copied).
    let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
    let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
    nulls.fill(true);
    let econtext = (*node).ss.ps.ps_ExprContext;
    let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
    for (i, &idx) in st.slots.iter().enumerate() {
        let v = std::mem::replace(&mut st.row[i], Val::Null);
        if idx >= natts {
            continue;
        }
        let Some((ty, typmod)) = &st.types[i] else {
            continue;
        };
        match val_to_datum(v, ty, *typmod) {
            Ok(Some(d)) => {
                values[idx] = d;
                nulls[idx] = false;
            }
            Ok(None) => {}
            Err(msg) => {
                pg_sys::MemoryContextSwitchTo(old);
                let col = match st.req.agg {
                    Some(_) => format!("output {}", i + 1),
                    None => st
                        .req
                        .wanted
                        .get(i)
                        .and_then(|a| st.table.col(*a))
                        .map(|c| c.name.clone())
                        .unwrap_or_default(),
                };
                fdw_error(
                    crate::fdw::sqlstate::of_conversion(&msg),
                    format!("foreign table {}, column \"{col}\": {msg}", st.table.name),
                    "Declare the column with a type that fits the data (text and jsonb take anything).",
                )
                .report_error();
            }
        }
    }
    pg_sys::MemoryContextSwitchTo(old);
    pg_sys::ExecStoreVirtualTuple(slot);
    slot
}

/// ReScanForeignScan: the next IterateForeignScan re-evaluates the parameters and restarts
/// the remote scan (a new snapshot), as at the first row.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ReScanForeignScan_function`, after
/// [`begin_foreign_scan`] returned for `node`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn rescan_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    // Pointer validity: as in Iterate, fdw_state is the live ScanState BeginForeignScan stored.
    let st = &mut *((*node).fdw_state as *mut ScanState);
    st.started = false;
    if let Some(par) = st.par.as_mut() {
        // The leader's ReInitializeDSM resets the shared unit counter.
        par.rescan();
    }
}

/// EndForeignScan: disarms the reset callback and frees the state (closing the remote scan).
///
/// # Safety
/// Called by Postgres only, with the arguments of `EndForeignScan_function`; `fdw_state` is
/// NULL or the `ScanState` [`begin_foreign_scan`] stored.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn end_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    let state = (*node).fdw_state as *mut ScanState;
    if state.is_null() {
        return;
    }
    // Disarm the reset callback first (its struct lives in es_query_cxt, still alive here),
    // so the state is freed exactly once.
    (*(*state).cb).arg = ptr::null_mut();
    (*node).fdw_state = ptr::null_mut();
    drop(Box::from_raw(state));
}

/// The live `ScanState` of `node`, if BeginForeignScan stored one (the parallel callbacks'
/// way in).
///
/// # Safety
/// `node` is a ForeignScanState of one of our wrappers, between [`begin_foreign_scan`] and
/// [`end_foreign_scan`]; the reference must not outlive the callback it is taken in.
pub(super) unsafe fn state<'a>(node: *mut pg_sys::ForeignScanState) -> Option<&'a mut ScanState> {
    ((*node).fdw_state as *mut ScanState).as_mut()
}

/// ExplainForeignScan: the wrapper's EXPLAIN lines as text properties.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ExplainForeignScan_function`, between
/// [`begin_foreign_scan`] and [`end_foreign_scan`].
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn explain_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
    es: *mut pg_sys::ExplainState,
) {
    let state = (*node).fdw_state as *mut ScanState;
    if state.is_null() {
        return;
    }
    let st = &mut *state;
    let Some(scan) = st.scan.as_mut() else { return };
    for (label, value) in scan.explain((*es).verbose, (*es).analyze) {
        let l = CString::new(label).unwrap_or_default();
        let v = CString::new(value).unwrap_or_default();
        pg_sys::ExplainPropertyText(l.as_ptr(), v.as_ptr(), es);
    }
}
