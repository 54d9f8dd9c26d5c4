//! Planning callbacks (GetForeignRelSize, GetForeignPaths, GetForeignPlan) and the
//! extraction of WHERE clauses into [`Cond`]s.
//!
//! [`PlanCtx`] turns each `baserestrictinfo` clause into a condition the wrapper's
//! [`Planner`](crate::fdw::Planner) may ship: constants inline, anything else that is stable
//! and free of our columns becomes a parameter (an entry of the plan's `fdw_exprs`, evaluated
//! at scan time). Every clause also stays a local qual, so Postgres rechecks what the remote
//! side filtered. ORDER BY keys and LIMIT are shipped only when the remote side can apply
//! them exactly. The result, a JSON [`Request`] and the parameter expressions, travels in
//! `baserel->fdw_private` and then in the ForeignScan's `fdw_private`/`fdw_exprs`.
//!
//! All pointers here are planner nodes handed over by Postgres for the duration of one
//! callback, allocated in the planner's memory context; nothing is kept across callbacks
//! except through `fdw_private`.
use super::datum::datum_to_val;
use super::table_def::table_def;
use super::util::{cstr, list_ptrs};
use crate::fdw::cond::{CmpOp, Cond, Operand, Request, SortKey};
use crate::fdw::value::{PgType, Val};
use crate::fdw::{fdw_error, Ship, Wrapper};
use crate::interruptible::ReportError;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use pgrx::{FromDatum, PgSqlErrorCode};
use std::ffi::{c_void, CString};
use std::ptr;

/// Turns WHERE clauses of relation `varno` into conditions; expressions to evaluate at scan
/// start are collected in `exprs` (they become the plan's `fdw_exprs`).
struct PlanCtx {
    varno: u32,
    exprs: Vec<*mut pg_sys::Node>,
}

/// `node` without a binary-compatible cast (`RelabelType`) on top, e.g. `varchar_col::text`.
///
/// # Safety
/// `node` is NULL or points to a valid expression node.
pub(super) unsafe fn strip(node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    if !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_RelabelType {
        return (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
    }
    node
}

/// Can a comparison of our column (type `col`) with an operand of type `other`, under
/// collation `coll`, be shipped? Not when Postgres converts between date, timestamp and
/// timestamptz to compare (through the session TimeZone, or to midnight): the wrapper's values
/// carry no zone. Not under a nondeterministic collation either: it makes strings equal that
/// are not byte for byte.
///
/// # Safety
/// Reads the syscache (collation lookup): call during planning, in a transaction.
unsafe fn comparable(col: Oid, other: Oid, coll: Oid) -> bool {
    use pg_sys::BuiltinOid as B;
    let time = |o: Oid| {
        [B::DATEOID, B::TIMESTAMPOID, B::TIMESTAMPTZOID]
            .iter()
            .any(|t| t.value() == o)
    };
    let same_time = !(time(col) || time(other)) || col == other;
    same_time && (coll == Oid::INVALID || pg_sys::get_collation_isdeterministic(coll))
}

impl PlanCtx {
    /// Our column, if `node` is a plain Var of this relation.
    ///
    /// # Safety
    /// `node` is NULL or points to a valid expression node.
    unsafe fn our_col(&self, node: *mut pg_sys::Node) -> Option<i16> {
        let node = strip(node);
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let v = node as *mut pg_sys::Var;
        ((*v).varno as u32 == self.varno && (*v).varlevelsup == 0 && (*v).varattno >= 1)
            .then_some((*v).varattno)
    }

    /// A constant, or an expression evaluated at scan start (parameters, stable functions,
    /// outer references); never one that reads our row or is volatile.
    ///
    /// # Safety
    /// `node` is NULL or points to a valid expression node that lives as long as the plan
    /// being built (it is kept, unchanged, in `exprs`: a clause of `baserestrictinfo`).
    unsafe fn operand(&mut self, node: *mut pg_sys::Node) -> Option<Operand> {
        let node = strip(node);
        if node.is_null() {
            return None;
        }
        if (*node).type_ == pg_sys::NodeTag::T_Const {
            let c = node as *mut pg_sys::Const;
            return Some(Operand::Val(datum_to_val(
                (*c).constvalue,
                (*c).constisnull,
                (*c).consttype,
            )));
        }
        if pg_sys::contain_var_clause(node) || pg_sys::contain_volatile_functions(node) {
            return None;
        }
        self.exprs.push(node);
        Some(Operand::Param(self.exprs.len() - 1))
    }

    /// The condition a clause expresses on our columns, if it is one we understand.
    ///
    /// # Safety
    /// As for [`PlanCtx::operand`]: `node` is NULL or a valid clause of the relation being
    /// planned, alive for the rest of planning.
    unsafe fn cond(&mut self, node: *mut pg_sys::Node) -> Option<Cond> {
        if node.is_null() {
            return None;
        }
        match (*node).type_ {
            pg_sys::NodeTag::T_OpExpr => {
                let e = node as *mut pg_sys::OpExpr;
                let args = list_ptrs((*e).args);
                if args.len() != 2 {
                    return None;
                }
                let name = cstr(pg_sys::get_opname((*e).opno));
                let (l, r) = (args[0] as *mut pg_sys::Node, args[1] as *mut pg_sys::Node);
                let (col, other, commuted) = match (self.our_col(l), self.our_col(r)) {
                    (Some(c), None) => (c, r, false),
                    (None, Some(c)) => (c, l, true),
                    _ => return None,
                };
                let col_node = if commuted { r } else { l };
                if !comparable(
                    pg_sys::exprType(strip(col_node)),
                    pg_sys::exprType(strip(other)),
                    (*e).inputcollid,
                ) {
                    return None;
                }
                if name == "~~" && !commuted {
                    let pattern = self.operand(other)?;
                    return Some(Cond::Like { col, pattern });
                }
                let op = CmpOp::from_pg(&name)?;
                let arg = self.operand(other)?;
                Some(Cond::Cmp {
                    col,
                    op: if commuted { op.commuted() } else { op },
                    arg,
                })
            }
            pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                let e = node as *mut pg_sys::ScalarArrayOpExpr;
                let args = list_ptrs((*e).args);
                if args.len() != 2 {
                    return None;
                }
                let name = cstr(pg_sys::get_opname((*e).opno));
                let negated = match (name.as_str(), (*e).useOr) {
                    ("=", true) => false,
                    ("<>", false) => true,
                    _ => return None,
                };
                let col = self.our_col(args[0] as _)?;
                let elem = pg_sys::get_element_type(pg_sys::exprType(strip(args[1] as _)));
                if !comparable(
                    pg_sys::exprType(strip(args[0] as _)),
                    elem,
                    (*e).inputcollid,
                ) {
                    return None;
                }
                let list = self.operand(args[1] as _)?;
                Some(Cond::In { col, list, negated })
            }
            pg_sys::NodeTag::T_NullTest => {
                let e = node as *mut pg_sys::NullTest;
                let col = self.our_col((*e).arg as _)?;
                Some(Cond::IsNull {
                    col,
                    negated: (*e).nulltesttype == pg_sys::NullTestType::IS_NOT_NULL,
                })
            }
            pg_sys::NodeTag::T_BoolExpr => {
                let e = node as *mut pg_sys::BoolExpr;
                let args = list_ptrs((*e).args);
                match (*e).boolop {
                    pg_sys::BoolExprType::AND_EXPR => Some(Cond::And(
                        args.into_iter()
                            .map(|a| self.cond(a as _))
                            .collect::<Option<_>>()?,
                    )),
                    pg_sys::BoolExprType::OR_EXPR => Some(Cond::Or(
                        args.into_iter()
                            .map(|a| self.cond(a as _))
                            .collect::<Option<_>>()?,
                    )),
                    _ => {
                        let col = self.our_col(*args.first()? as _)?;
                        Some(Cond::Cmp {
                            col,
                            op: CmpOp::Eq,
                            arg: Operand::Val(Val::Bool(false)),
                        })
                    }
                }
            }
            pg_sys::NodeTag::T_Var => {
                let col = self.our_col(node)?;
                Some(Cond::Cmp {
                    col,
                    op: CmpOp::Eq,
                    arg: Operand::Val(Val::Bool(true)),
                })
            }
            _ => None,
        }
    }
}

/// Serialised planning result kept in `baserel->fdw_private` between callbacks:
/// [String(json request), List(exprs)].
///
/// # Safety
/// `root` and `baserel` are the PlannerInfo and RelOptInfo of GetForeignRelSize for foreign
/// table `relid` (valid, in the planner's memory context, `reltarget` set). Must run in that
/// callback: the lists it builds are palloc'd in the current (planner) memory context.
unsafe fn plan_rel<W: Wrapper>(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    relid: Oid,
) {
    let table = table_def(relid);
    let mut ctx = PlanCtx {
        varno: (*baserel).relid,
        exprs: vec![],
    };
    let planner = W::planner(&table);
    let mut req = Request::default();
    let mut all_exact = true;
    // Clauses only Postgres evaluates (for the row estimate).
    let mut local = vec![];
    for ri in list_ptrs((*baserel).baserestrictinfo) {
        let clause = (*(ri as *mut pg_sys::RestrictInfo)).clause as *mut pg_sys::Node;
        let before = ctx.exprs.len();
        match ctx.cond(clause) {
            Some(c) => match planner.ship(&c) {
                Ship::No => {
                    ctx.exprs.truncate(before);
                    all_exact = false;
                    local.push(ri);
                }
                s => {
                    all_exact &= s == Ship::Exact;
                    req.conds.push(c);
                }
            },
            None => {
                ctx.exprs.truncate(before);
                all_exact = false;
                local.push(ri);
            }
        }
    }

    // Columns the query reads (target list and local quals).
    let mut attrs: *mut pg_sys::Bitmapset = ptr::null_mut();
    pg_sys::pull_varattnos(
        (*(*baserel).reltarget).exprs as _,
        (*baserel).relid,
        &mut attrs,
    );
    for ri in list_ptrs((*baserel).baserestrictinfo) {
        pg_sys::pull_varattnos(
            (*(ri as *mut pg_sys::RestrictInfo)).clause as _,
            (*baserel).relid,
            &mut attrs,
        );
    }
    let mut whole_row = false;
    let mut x = -1;
    loop {
        x = pg_sys::bms_next_member(attrs, x);
        if x < 0 {
            break;
        }
        let attnum = x + pg_sys::FirstLowInvalidHeapAttributeNumber;
        if attnum == 0 {
            whole_row = true;
        } else if attnum > 0 {
            req.wanted.push(attnum as i16);
        }
    }
    if whole_row {
        req.wanted = table.columns.iter().map(|c| c.attnum).collect();
    }
    for attnum in &req.wanted {
        if let Some(c) = table.col(*attnum).filter(|c| c.ty.is_none()) {
            fdw_error(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                format!(
                    "column \"{}\" of foreign table {} has type {}, which the {} wrapper cannot fill",
                    c.name,
                    table.name,
                    c.type_name,
                    W::LABEL
                ),
                "Use text, jsonb, a number, boolean, date, time, timestamp(tz), bytea, or an array of those.",
            )
            .report_error();
        }
    }

    // ORDER BY on our columns only.
    let parse = (*root).parse;
    let mut sort_exact = true;
    for pk in list_ptrs((*root).query_pathkeys) {
        let pk = pk as *mut pg_sys::PathKey;
        let ec = (*pk).pk_eclass;
        let mut found = None;
        for em in list_ptrs((*ec).ec_members) {
            let em = em as *mut pg_sys::EquivalenceMember;
            if pg_sys::bms_equal((*em).em_relids, (*baserel).relids) {
                if let Some(col) = ctx.our_col((*em).em_expr as _) {
                    found = Some(col);
                    break;
                }
            }
        }
        let Some(col) = found else {
            req.sort.clear();
            sort_exact = false;
            break;
        };
        let c = table.col(col);
        let collation_c =
            (*ec).ec_collation == pg_sys::C_COLLATION_OID || (*ec).ec_collation.to_u32() == 951;
        let exact = c.is_some_and(|c| planner.sort_exact(c))
            && (collation_c || !matches!(c.and_then(|c| c.ty.clone()), Some(PgType::Text)));
        sort_exact &= exact;
        req.sort.push(SortKey {
            col,
            desc: (*pk).pk_strategy as u32 == pg_sys::BTGreaterStrategyNumber,
            nulls_first: (*pk).pk_nulls_first,
        });
    }

    // LIMIT only when stopping early remotely cannot change the answer.
    let single =
        pg_sys::bms_membership((*root).all_baserels) == pg_sys::BMS_Membership::BMS_SINGLETON;
    let plain = (*parse).groupClause.is_null()
        && !(*parse).hasAggs
        && !(*parse).hasWindowFuncs
        && !(*parse).hasTargetSRFs
        && (*parse).distinctClause.is_null()
        && (*parse).setOperations.is_null()
        && (*parse).havingQual.is_null()
        && (*parse).rowMarks.is_null()
        // FETCH FIRST n ROWS WITH TIES returns more than n rows: the remote side cannot stop
        // at n.
        && (*parse).limitOption != pg_sys::LimitOption::LIMIT_OPTION_WITH_TIES;
    if single && plain && all_exact && sort_exact {
        let konst = |n: *mut pg_sys::Node| -> Option<Option<i64>> {
            if n.is_null() {
                return Some(None);
            }
            if (*n).type_ != pg_sys::NodeTag::T_Const {
                return None;
            }
            let c = n as *mut pg_sys::Const;
            if (*c).constisnull {
                return Some(None);
            }
            Some(i64::from_datum((*c).constvalue, false))
        };
        if let (Some(Some(count)), Some(offset)) =
            (konst((*parse).limitCount), konst((*parse).limitOffset))
        {
            req.limit = Some((count.max(0) + offset.unwrap_or(0).max(0)) as u64);
        }
    }

    req.all_exact = all_exact;
    super::cost::set_rows(root, baserel, planner.as_ref(), &req, &local);

    // A request that cannot be written (it cannot happen: values serialise exactly, see
    // value::f64_bits) falls back to reading every column with nothing pushed down, which is
    // always correct, rather than to an empty request.
    let json = serde_json::to_string(&req).unwrap_or_else(|_| {
        let all = Request {
            wanted: table.columns.iter().map(|c| c.attnum).collect(),
            ..Default::default()
        };
        serde_json::to_string(&all).unwrap_or_default()
    });
    let json = CString::new(json).unwrap_or_default();
    let mut exprs: *mut pg_sys::List = ptr::null_mut();
    for e in ctx.exprs {
        exprs = pg_sys::lappend(exprs, e as *mut c_void);
    }
    let mut private: *mut pg_sys::List = ptr::null_mut();
    private = pg_sys::lappend(
        private,
        pg_sys::makeString(pg_sys::pstrdup(json.as_ptr())) as *mut c_void,
    );
    private = pg_sys::lappend(private, exprs as *mut c_void);
    (*baserel).fdw_private = private as *mut c_void;
}

/// GetForeignRelSize: plans the scan (see [`plan_rel`]) and sets the row estimate.
///
/// # Safety
/// Called by Postgres only, with the arguments of `GetForeignRelSize_function`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn get_foreign_rel_size<W: Wrapper>(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    relid: Oid,
) {
    plan_rel::<W>(root, baserel, relid);
}

/// GetForeignPaths: one unparameterised path, and a partial one for parallel scans (see
/// [`super::cost::add_paths`]).
///
/// # Safety
/// Called by Postgres only, with the arguments of `GetForeignPaths_function`, after
/// [`get_foreign_rel_size`] set `baserel->rows`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn get_foreign_paths<W: Wrapper>(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _relid: Oid,
) {
    super::cost::add_paths::<W>(root, baserel);
}

/// GetForeignPlan: moves the JSON request into the plan's `fdw_private` and the parameter
/// expressions into `fdw_exprs`; every clause stays a local qual.
///
/// # Safety
/// Called by Postgres only, with the arguments of `GetForeignPlan_function`, for a relation
/// whose `fdw_private` [`get_foreign_rel_size`] filled.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn get_foreign_plan(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _relid: Oid,
    best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    scan_clauses: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    if (*baserel).reloptkind == pg_sys::RelOptKind::RELOPT_UPPER_REL {
        // A remote aggregation (upper.rs made the path).
        return super::upper::upper_plan(root, best_path, tlist, outer_plan);
    }
    let private = list_ptrs((*baserel).fdw_private as *mut pg_sys::List);
    let json = private.first().copied().unwrap_or(ptr::null_mut());
    let exprs = private.get(1).copied().unwrap_or(ptr::null_mut()) as *mut pg_sys::List;
    let mut fdw_private: *mut pg_sys::List = ptr::null_mut();
    fdw_private = pg_sys::lappend(fdw_private, json);
    // Every clause stays a local qual: Postgres rechecks what the remote side filtered.
    let local = pg_sys::extract_actual_clauses(scan_clauses, false);
    pg_sys::make_foreignscan(
        tlist,
        local,
        (*baserel).relid,
        exprs,
        fdw_private,
        ptr::null_mut(),
        ptr::null_mut(),
        outer_plan,
    )
}
