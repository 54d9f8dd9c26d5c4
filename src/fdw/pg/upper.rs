//! Aggregate pushdown (GetForeignUpperPaths): a `GROUP BY` / aggregate query over one foreign
//! table whose WHERE clauses are all shipped exactly becomes one remote aggregation when the
//! wrapper computes every key and aggregate exactly ([`Planner::aggregate`]). The planner then
//! has a ForeignScan on the grouped relation (no scan relation: `scanrelid` 0) whose columns
//! are the grouping target's expressions; the request travels in the plan like a scan's, with
//! [`AggRequest`] set.
//!
//! HAVING stays a qual Postgres evaluates on the scan's rows (the aggregates it needs are
//! computed remotely too). Not pushed (Postgres aggregates the rows as before): grouping sets, DISTINCT /
//! ORDER BY / FILTER inside aggregates, expressions other than plain columns and
//! `date_trunc('<unit>', column)`, parameters in the WHERE clauses, and anything the wrapper
//! does not call exact.
use super::datum::pg_type;
use super::table_def::table_def;
use super::util::{cstr, list_ptrs};
use crate::fdw::agg::{AggFn, AggRequest, GroupKey, Output, TruncUnit};
use crate::fdw::cond::Request;
use crate::fdw::Wrapper;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_void, CString};
use std::ptr;

/// A column of relation `varno` (a plain Var of this query level), as its attribute number.
unsafe fn column(node: *mut pg_sys::Node, varno: u32) -> Option<i16> {
    let node = super::plan::strip(node);
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
        return None;
    }
    let v = node as *mut pg_sys::Var;
    let deterministic = (*v).varcollid == pg_sys::InvalidOid
        || pg_sys::get_collation_isdeterministic((*v).varcollid);
    ((*v).varno as u32 == varno && (*v).varlevelsup == 0 && (*v).varattno >= 1 && deterministic)
        .then_some((*v).varattno)
}

/// A GROUP BY expression as a key: a column, or `date_trunc('<unit>', column)`.
unsafe fn group_key(node: *mut pg_sys::Node, varno: u32) -> Option<GroupKey> {
    if let Some(c) = column(node, varno) {
        return Some(GroupKey::Col(c));
    }
    if (*node).type_ != pg_sys::NodeTag::T_FuncExpr {
        return None;
    }
    let f = node as *mut pg_sys::FuncExpr;
    let args = list_ptrs((*f).args);
    if args.len() != 2
        || pg_sys::get_func_namespace((*f).funcid)
            != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE)
        || cstr(pg_sys::get_func_name((*f).funcid)) != "date_trunc"
    {
        return None;
    }
    let unit = args[0] as *mut pg_sys::Node;
    if (*unit).type_ != pg_sys::NodeTag::T_Const {
        return None;
    }
    let k = unit as *mut pg_sys::Const;
    if (*k).constisnull || (*k).consttype != pg_sys::TEXTOID {
        return None;
    }
    let unit = String::from_datum((*k).constvalue, false)?;
    let col = column(args[1] as *mut pg_sys::Node, varno)?;
    Some(GroupKey::Trunc {
        col,
        unit: TruncUnit::from_pg(&unit)?,
    })
}

/// An aggregate call as an [`AggFn`]: count(*), count/min/max/sum of a column, plain (no
/// DISTINCT, ORDER BY, FILTER, not an ordered-set or outer-level aggregate).
unsafe fn agg_fn(a: *mut pg_sys::Aggref, varno: u32) -> Option<AggFn> {
    if !(*a).aggdistinct.is_null()
        || !(*a).aggorder.is_null()
        || !(*a).aggfilter.is_null()
        || !(*a).aggdirectargs.is_null()
        || (*a).agglevelsup != 0
        || (*a).aggkind != b'n' as std::ffi::c_char
        || (*a).aggsplit != pg_sys::AggSplit::AGGSPLIT_SIMPLE
        || pg_sys::get_func_namespace((*a).aggfnoid)
            != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE)
    {
        return None;
    }
    let name = cstr(pg_sys::get_func_name((*a).aggfnoid));
    if (*a).aggstar {
        return (name == "count").then_some(AggFn::CountStar);
    }
    let args = list_ptrs((*a).args);
    if args.len() != 1 {
        return None;
    }
    let te = args[0] as *mut pg_sys::TargetEntry;
    let col = column((*te).expr as *mut pg_sys::Node, varno)?;
    Some(match name.as_str() {
        "count" => AggFn::Count(col),
        "min" => AggFn::Min(col),
        "max" => AggFn::Max(col),
        "sum" => AggFn::Sum(col),
        _ => return None,
    })
}

/// The Vars and aggregates HAVING reads that are not expressions of the grouping target
/// `exprs` (a Var there is a column that is no group key: the caller gives up). Deterministic,
/// so the plan (`upper_plan`) finds the same list as the path did.
unsafe fn having_extras(
    root: *mut pg_sys::PlannerInfo,
    exprs: &[*mut c_void],
) -> Vec<*mut pg_sys::Node> {
    let having = (*(*root).parse).havingQual;
    if having.is_null() {
        return vec![];
    }
    let mut out: Vec<*mut pg_sys::Node> = vec![];
    let found = pg_sys::pull_var_clause(having, pg_sys::PVC_INCLUDE_AGGREGATES as i32);
    for n in list_ptrs(found) {
        let n = n as *mut pg_sys::Node;
        let same = |e: *const c_void| pg_sys::equal(e, n as *const c_void);
        let known = exprs.iter().any(|e| same(*e as *const c_void))
            || out.iter().any(|e| same(*e as *const c_void));
        if !known {
            out.push(n);
        }
    }
    out
}

/// GetForeignUpperPaths: adds a remote-aggregation path to the grouped relation when the
/// whole aggregation can be computed exactly by the wrapper (see the module doc).
///
/// # Safety
/// Called by Postgres only, with the arguments of `GetForeignUpperPaths_function`: a valid
/// PlannerInfo and relations of the current planning, in the planner's memory context.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn get_foreign_upper_paths<W: Wrapper>(
    root: *mut pg_sys::PlannerInfo,
    stage: pg_sys::UpperRelationKind::Type,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    _extra: *mut c_void,
) {
    if stage != pg_sys::UpperRelationKind::UPPERREL_GROUP_AGG
        || (*input_rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
        || !(*output_rel).fdw_private.is_null()
    {
        return;
    }
    let parse = (*root).parse;
    if !(*parse).groupingSets.is_null() {
        return;
    }
    // The scan's planned request (plan.rs put it first in the base relation's fdw_private).
    let private = list_ptrs((*input_rel).fdw_private as *mut pg_sys::List);
    let Some(first) = private.first() else {
        return;
    };
    let json = cstr((*(*first as *mut pg_sys::String)).sval);
    let Ok(mut req) = serde_json::from_str::<Request>(&json) else {
        return;
    };
    if !req.all_exact || req.conds.iter().any(|c| c.has_params()) {
        return;
    }
    let varno = (*input_rel).relid;
    let rte = *(*root).simple_rte_array.add(varno as usize);
    let relid = (*rte).relid;
    let table = table_def(relid);
    let target = (*output_rel).reltarget;
    let exprs = list_ptrs((*target).exprs);
    let mut agg = AggRequest {
        relid: relid.to_u32(),
        keys: vec![],
        aggs: vec![],
        outputs: vec![],
    };
    for (i, e) in exprs.iter().enumerate() {
        let node = *e as *mut pg_sys::Node;
        let sgref = if (*target).sortgrouprefs.is_null() {
            0
        } else {
            *(*target).sortgrouprefs.add(i)
        };
        let is_key = sgref != 0
            && !pg_sys::get_sortgroupref_clause_noerr(sgref, (*parse).groupClause).is_null();
        let Some(ty) = pg_type(pg_sys::exprType(node)) else {
            return;
        };
        let out = if is_key {
            let Some(k) = group_key(node, varno) else {
                return;
            };
            Output::Key(agg.key(k))
        } else if (*node).type_ == pg_sys::NodeTag::T_Aggref {
            let Some(f) = agg_fn(node as *mut pg_sys::Aggref, varno) else {
                return;
            };
            Output::Agg(agg.agg(f))
        } else {
            return;
        };
        agg.outputs.push((out, ty));
    }
    // HAVING stays a qual Postgres evaluates on the scan's rows: the aggregates it reads
    // that the target does not are computed too (extra outputs), and its columns must be
    // group keys of the target.
    for node in having_extras(root, &exprs) {
        let Some(ty) = pg_type(pg_sys::exprType(node)) else {
            return;
        };
        if (*node).type_ != pg_sys::NodeTag::T_Aggref {
            return;
        }
        let Some(f) = agg_fn(node as *mut pg_sys::Aggref, varno) else {
            return;
        };
        let i = agg.agg(f);
        agg.outputs.push((Output::Agg(i), ty));
    }
    if !W::planner(&table).aggregate(&agg) {
        return;
    }
    let rows = if agg.keys.is_empty() { 1.0 } else { 200.0 };
    req.agg = Some(agg);
    req.limit = None;
    req.sort.clear();
    let Ok(json) = serde_json::to_string(&req) else {
        return;
    };
    let Ok(json) = CString::new(json) else {
        return;
    };
    let mut fdw_private: *mut pg_sys::List = ptr::null_mut();
    fdw_private = pg_sys::lappend(
        fdw_private,
        pg_sys::makeString(pg_sys::pstrdup(json.as_ptr())) as *mut c_void,
    );
    // A remote aggregation sends buckets, not rows: far cheaper than any local plan.
    let startup = 25.0;
    let path = pg_sys::create_foreign_upper_path(
        root,
        output_rel,
        target,
        rows,
        startup,
        startup + rows * 0.01,
        ptr::null_mut(),
        ptr::null_mut(),
        fdw_private,
    );
    pg_sys::add_path(output_rel, path as *mut pg_sys::Path);
}

/// GetForeignPlan for a grouped relation: a ForeignScan without scan relation whose tuples
/// are the grouping target's expressions (`fdw_scan_tlist`), in the order of
/// [`AggRequest::outputs`].
///
/// # Safety
/// `foreignrel` is an upper relation for which [`get_foreign_upper_paths`] made `best_path`
/// (its `fdw_private` holds the request); called from GetForeignPlan.
pub(super) unsafe fn upper_plan(
    root: *mut pg_sys::PlannerInfo,
    best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    let target = (*best_path).path.pathtarget;
    let mut exprs = list_ptrs((*target).exprs);
    // The aggregates only HAVING reads follow the target's expressions, as in the request.
    exprs.extend(
        having_extras(root, &exprs)
            .into_iter()
            .map(|n| n as *mut c_void),
    );
    let having = (*(*root).parse).havingQual;
    let quals = if having.is_null() {
        ptr::null_mut()
    } else {
        pg_sys::copyObjectImpl(having as *const c_void) as *mut pg_sys::List
    };
    let mut scan_tlist: *mut pg_sys::List = ptr::null_mut();
    for (i, e) in exprs.into_iter().enumerate() {
        let te = pg_sys::makeTargetEntry(
            pg_sys::copyObjectImpl(e as *const c_void) as *mut pg_sys::Expr,
            (i + 1) as pg_sys::AttrNumber,
            ptr::null_mut(),
            false,
        );
        scan_tlist = pg_sys::lappend(scan_tlist, te as *mut c_void);
    }
    pg_sys::make_foreignscan(
        tlist,
        quals,
        0,
        ptr::null_mut(),
        (*best_path).fdw_private,
        scan_tlist,
        ptr::null_mut(),
        outer_plan,
    )
}
