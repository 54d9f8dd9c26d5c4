//! Modification callbacks: AddForeignUpdateTargets, PlanForeignModify, BeginForeignModify,
//! ExecForeignInsert/Update/Delete, EndForeignModify and IsForeignRelUpdatable.
//!
//! Rows are handed to the wrapper's [`Modify`](crate::fdw::Modify), which buffers and sends
//! them in batches; EndForeignModify flushes and reports delivery errors. What is sent may
//! still belong to the Postgres transaction: the wrappers enlist transaction hooks
//! ([`super::xact`]) that commit or discard it with the transaction. UPDATE and DELETE
//! address rows by an `_id` column, carried as a junk column of the subplan. As for scans,
//! the [`ModifyState`] is a `Box` owned by `ResultRelInfo.ri_FdwState`, freed by
//! EndForeignModify or, if the statement fails first, by a reset callback on `es_query_cxt`.
use super::datum::datum_to_val;
use super::table_def::{qualified_name, table_def};
use super::util::{arm, cstr};
use crate::fdw::value::Val;
use crate::fdw::{fdw_error, Modify, TableDef, Wrapper};
use crate::interruptible::ReportError;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::c_void;
use std::ptr;

/// One INSERT/UPDATE/DELETE on a foreign table, owned by `ResultRelInfo.ri_FdwState`.
struct ModifyState {
    table: TableDef,
    modify: Option<Box<dyn Modify>>,
    /// Attribute number of the `_id` junk column in the subplan's output (UPDATE/DELETE).
    id_attno: i16,
    /// UPDATE: the columns its SET assigns. Only they are sent: the other columns of the new
    /// row are whatever the scan read (perhaps not all of them, perhaps another column over
    /// the same field), and writing them back would overwrite fields nobody changed.
    updated: Vec<i16>,
    /// The reset callback that frees this state on error paths (disarmed by EndForeignModify).
    cb: *mut pg_sys::MemoryContextCallback,
}

/// Reset callback of `es_query_cxt` (armed by BeginForeignModify): frees the state if
/// EndForeignModify did not run, i.e. the statement failed.
///
/// # Safety
/// `arg` is NULL (disarmed) or the `Box::into_raw` of a `ModifyState` that nothing else frees.
unsafe extern "C-unwind" fn drop_modify_state(arg: *mut c_void) {
    if !arg.is_null() {
        drop(Box::from_raw(arg as *mut ModifyState));
    }
}

/// AddForeignUpdateTargets: adds the `_id` column as the row identity of UPDATE/DELETE (an
/// ERROR if the table has none).
///
/// # Safety
/// Called by Postgres only, with the arguments of `AddForeignUpdateTargets_function`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn add_foreign_update_targets(
    root: *mut pg_sys::PlannerInfo,
    rtindex: pg_sys::Index,
    _rte: *mut pg_sys::RangeTblEntry,
    rel: pg_sys::Relation,
) {
    let desc = (*rel).rd_att;
    for i in 0..(*desc).natts as usize {
        let att = (*desc).attrs.as_ptr().add(i);
        if !(*att).attisdropped && cstr((*att).attname.data.as_ptr()) == "_id" {
            let var = pg_sys::makeVar(
                rtindex as _,
                (*att).attnum,
                (*att).atttypid,
                (*att).atttypmod,
                (*att).attcollation,
                0,
            );
            pg_sys::add_row_identity_var(root, var, rtindex, c"_id".as_ptr());
            return;
        }
    }
    let relid = (*rel).rd_id;
    fdw_error(
        PgSqlErrorCode::ERRCODE_FDW_COLUMN_NAME_NOT_FOUND,
        format!(
            "foreign table {} has no column \"_id\"; UPDATE and DELETE address documents by _id",
            qualified_name(relid)
        ),
        "Add a text column named _id (IMPORT FOREIGN SCHEMA creates one).",
    )
    .report_error();
}

/// PlanForeignModify: nothing to plan (the table definition is read at execution).
#[pg_guard]
pub(super) extern "C-unwind" fn plan_foreign_modify(
    _root: *mut pg_sys::PlannerInfo,
    _plan: *mut pg_sys::ModifyTable,
    _rtindex: pg_sys::Index,
    _subplan_index: i32,
) -> *mut pg_sys::List {
    ptr::null_mut()
}

/// BeginForeignModify: finds the `_id` junk column (UPDATE/DELETE) and opens the wrapper's
/// modification; nothing under EXPLAIN without ANALYZE.
///
/// # Safety
/// Called by Postgres only, with the arguments of `BeginForeignModify_function`: for UPDATE
/// and DELETE, `mtstate->ps.lefttree` is the initialised subplan producing the junk `_id`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn begin_foreign_modify<W: Wrapper>(
    mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
    _private: *mut pg_sys::List,
    _subplan_index: i32,
    eflags: i32,
) {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
        return;
    }
    let relid = (*(*rinfo).ri_RelationDesc).rd_id;
    let table = table_def(relid);
    let mut id_attno = 0;
    let op = (*mtstate).operation;
    if op == pg_sys::CmdType::CMD_UPDATE || op == pg_sys::CmdType::CMD_DELETE {
        let sub = (*mtstate).ps.lefttree;
        id_attno = pg_sys::ExecFindJunkAttributeInTlist((*(*sub).plan).targetlist, c"_id".as_ptr());
    }
    let mut updated = vec![];
    if op == pg_sys::CmdType::CMD_UPDATE {
        let cols = pg_sys::ExecGetUpdatedCols(rinfo, (*mtstate).ps.state);
        let mut x = -1;
        loop {
            x = pg_sys::bms_next_member(cols, x);
            if x < 0 {
                break;
            }
            updated.push((x + pg_sys::FirstLowInvalidHeapAttributeNumber) as i16);
        }
    }
    let state = Box::into_raw(Box::new(ModifyState {
        table: table.clone(),
        modify: None,
        id_attno,
        updated,
        cb: ptr::null_mut(),
    }));
    (*state).cb = arm(
        (*(*mtstate).ps.state).es_query_cxt,
        drop_modify_state,
        state as *mut c_void,
    );
    (*rinfo).ri_FdwState = state as *mut c_void;
    match W::begin_modify(table) {
        Ok(m) => (*state).modify = Some(m),
        Err(e) => e.report_error(),
    }
}

/// The row in `slot` as (attnum, value) for every (non-dropped) column of the table.
///
/// # Safety
/// `slot` is a valid slot whose descriptor is the foreign table's (the slot of
/// ExecForeignInsert/Update), so every column's `attnum - 1` is in bounds.
unsafe fn slot_row(table: &TableDef, slot: *mut pg_sys::TupleTableSlot) -> Vec<(i16, Val)> {
    let desc = (*slot).tts_tupleDescriptor;
    let natts = (*desc).natts;
    pg_sys::slot_getsomeattrs(slot, natts);
    let mut out = vec![];
    for c in &table.columns {
        let i = c.attnum as usize - 1;
        let att = (*desc).attrs.as_ptr().add(i);
        let d = *(*slot).tts_values.add(i);
        let isnull = *(*slot).tts_isnull.add(i);
        out.push((c.attnum, datum_to_val(d, isnull, (*att).atttypid)));
    }
    out
}

/// The `_id` of the row being updated/deleted, from the subplan's junk column.
///
/// # Safety
/// `plan_slot` is the subplan slot of ExecForeignUpdate/Delete and `st.id_attno` the junk
/// column [`begin_foreign_modify`] found in that subplan's target list.
unsafe fn junk_id(st: &ModifyState, plan_slot: *mut pg_sys::TupleTableSlot) -> Val {
    let mut isnull = false;
    let d = pg_sys::slot_getattr(plan_slot, st.id_attno as i32, &mut isnull);
    let oid = st
        .table
        .col_named("_id")
        .map(|c| Oid::from(c.type_oid))
        .unwrap_or(pg_sys::TEXTOID);
    datum_to_val(d, isnull, oid)
}

/// The state [`begin_foreign_modify`] stored in `rinfo`.
///
/// # Safety
/// `rinfo->ri_FdwState` is a live `ModifyState` (BeginForeignModify ran without EXPLAIN-only,
/// EndForeignModify did not yet), and no other reference to it exists for `'a`.
unsafe fn modify_state<'a>(rinfo: *mut pg_sys::ResultRelInfo) -> &'a mut ModifyState {
    &mut *((*rinfo).ri_FdwState as *mut ModifyState)
}

/// One row of an INSERT, UPDATE or DELETE handed to the wrapper (which buffers it).
///
/// # Safety
/// The arguments of ExecForeignInsert/Update/Delete for the same `op`, after
/// [`begin_foreign_modify`] (see [`modify_state`], [`slot_row`], [`junk_id`]).
unsafe fn modify_row(
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
    op: pg_sys::CmdType::Type,
) -> *mut pg_sys::TupleTableSlot {
    let st = modify_state(rinfo);
    let id = (op != pg_sys::CmdType::CMD_INSERT).then(|| junk_id(st, plan_slot));
    let mut row = (op != pg_sys::CmdType::CMD_DELETE).then(|| slot_row(&st.table, slot));
    if op == pg_sys::CmdType::CMD_UPDATE {
        if let Some(r) = row.as_mut() {
            r.retain(|(a, _)| st.updated.contains(a));
        }
    }
    if let Some(m) = st.modify.as_mut() {
        let r = match (id, row) {
            (None, Some(row)) => m.insert(&row),
            (Some(id), Some(row)) => m.update(&id, &row),
            (Some(id), None) => m.delete(&id),
            (None, None) => Ok(()),
        };
        if let Err(e) = r {
            e.report_error();
        }
    }
    slot
}

/// ExecForeignInsert.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ExecForeignInsert_function`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn exec_foreign_insert(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    modify_row(rinfo, slot, plan_slot, pg_sys::CmdType::CMD_INSERT)
}

/// ExecForeignUpdate.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ExecForeignUpdate_function`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn exec_foreign_update(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    modify_row(rinfo, slot, plan_slot, pg_sys::CmdType::CMD_UPDATE)
}

/// ExecForeignDelete.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ExecForeignDelete_function`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn exec_foreign_delete(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    modify_row(rinfo, slot, plan_slot, pg_sys::CmdType::CMD_DELETE)
}

/// EndForeignModify: disarms the reset callback, frees the state after flushing the last
/// batch, then reports a delivery error if any.
///
/// # Safety
/// Called by Postgres only, with the arguments of `EndForeignModify_function`;
/// `ri_FdwState` is NULL or the `ModifyState` [`begin_foreign_modify`] stored.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn end_foreign_modify(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    let state = (*rinfo).ri_FdwState as *mut ModifyState;
    if state.is_null() {
        return;
    }
    // Disarm the reset callback first (its struct lives in es_query_cxt, still alive here),
    // so the state is freed exactly once, here, even if finish() fails.
    (*(*state).cb).arg = ptr::null_mut();
    (*rinfo).ri_FdwState = ptr::null_mut();
    let mut st = Box::from_raw(state);
    let r = st.modify.as_mut().map(|m| m.finish()).unwrap_or(Ok(()));
    drop(st);
    if let Err(e) = r {
        e.report_error();
    }
}

/// IsForeignRelUpdatable: INSERT always, UPDATE and DELETE if the wrapper supports them.
pub(super) extern "C-unwind" fn is_updatable<W: Wrapper>(_rel: pg_sys::Relation) -> i32 {
    let mut bits = 1 << pg_sys::CmdType::CMD_INSERT as i32;
    if W::UPDATABLE {
        bits |=
            (1 << pg_sys::CmdType::CMD_UPDATE as i32) | (1 << pg_sys::CmdType::CMD_DELETE as i32);
    }
    bits
}
