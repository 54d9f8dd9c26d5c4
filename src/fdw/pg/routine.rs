//! The FdwRoutine of a wrapper (what its `*_fdw_handler` SQL function returns) and its
//! option validator (what its `*_fdw_validator` SQL function runs): the two entry points
//! `src/api/fdw.rs` exposes for each [`Wrapper`].
use super::{import, modify, parallel, plan, scan, upper};
use crate::fdw::{OptClass, Wrapper};
use crate::interruptible::ReportError;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;

/// The FdwRoutine of wrapper `W`.
pub fn routine<W: Wrapper>() -> supabase_wrappers::FdwRoutine {
    // SAFETY: alloc_node pallocs a zeroed FdwRoutine in the current memory context and tags
    // it T_FdwRoutine, as the FDW handler protocol requires (Postgres copies it where it keeps
    // it, e.g. GetFdwRoutineForRelation into CacheMemoryContext). Every field gets a callback
    // with exactly the signature Postgres declares for it (the compiler checks the types);
    // into_pg_boxed leaves the memory to Postgres (no Rust-side free).
    unsafe {
        let mut r = PgBox::<pg_sys::FdwRoutine, pgrx::AllocatedByRust>::alloc_node(
            pg_sys::NodeTag::T_FdwRoutine,
        );
        r.GetForeignRelSize = Some(plan::get_foreign_rel_size::<W>);
        r.GetForeignPaths = Some(plan::get_foreign_paths::<W>);
        r.GetForeignPlan = Some(plan::get_foreign_plan);
        r.GetForeignUpperPaths = Some(upper::get_foreign_upper_paths::<W>);
        r.BeginForeignScan = Some(scan::begin_foreign_scan::<W>);
        r.IterateForeignScan = Some(scan::iterate_foreign_scan);
        r.ReScanForeignScan = Some(scan::rescan_foreign_scan);
        r.EndForeignScan = Some(scan::end_foreign_scan);
        r.ExplainForeignScan = Some(scan::explain_foreign_scan);
        r.IsForeignScanParallelSafe = Some(parallel::is_parallel_safe::<W>);
        r.EstimateDSMForeignScan = Some(parallel::estimate_dsm);
        r.InitializeDSMForeignScan = Some(parallel::initialize_dsm);
        r.ReInitializeDSMForeignScan = Some(parallel::reinitialize_dsm);
        r.InitializeWorkerForeignScan = Some(parallel::initialize_worker);
        r.ShutdownForeignScan = Some(parallel::shutdown);
        r.AddForeignUpdateTargets = Some(modify::add_foreign_update_targets);
        r.PlanForeignModify = Some(modify::plan_foreign_modify);
        r.BeginForeignModify = Some(modify::begin_foreign_modify::<W>);
        r.ExecForeignInsert = Some(modify::exec_foreign_insert);
        r.ExecForeignUpdate = Some(modify::exec_foreign_update);
        r.ExecForeignDelete = Some(modify::exec_foreign_delete);
        r.EndForeignModify = Some(modify::end_foreign_modify);
        r.IsForeignRelUpdatable = Some(modify::is_updatable::<W>);
        r.ImportForeignSchema = Some(import::import_foreign_schema::<W>);
        r.into_pg_boxed()
    }
}

/// The validator of wrapper `W` (options as `name=value` strings).
pub fn validate<W: Wrapper>(options: Vec<Option<String>>, catalog: Option<Oid>) {
    let class = match catalog.map(|o| o.to_u32()) {
        Some(x) if x == pg_sys::ForeignServerRelationId.to_u32() => OptClass::Server,
        Some(x) if x == pg_sys::UserMappingRelationId.to_u32() => OptClass::UserMapping,
        Some(x) if x == pg_sys::ForeignTableRelationId.to_u32() => OptClass::Table,
        Some(x) if x == pg_sys::AttributeRelationId.to_u32() => OptClass::Column,
        _ => OptClass::Wrapper,
    };
    let opts: Vec<(String, String)> = options
        .into_iter()
        .flatten()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (s, String::new()),
        })
        .collect();
    if let Err(e) = W::validate(class, &opts) {
        e.report_error();
    }
}
