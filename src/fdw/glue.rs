//! The Postgres side of the wrappers: FdwRoutine callbacks shared by every [`Wrapper`].
//!
//! Planning turns WHERE clauses into [`Cond`]s (constants inline, anything else that is
//! stable and free of our columns into `fdw_exprs`), keeps every clause as a local recheck
//! (so results are always what Postgres would compute), and stores the [`Request`] as JSON in
//! `fdw_private`. Execution builds fresh state per run, evaluates `fdw_exprs` at each
//! (re)scan, and frees its state through a reset callback on the query's memory context if
//! the scan ends in an error.
use super::cond::{CmpOp, Cond, Operand, Request, SortKey};
use super::value::{PgType, Val, PG_EPOCH_DAYS, PG_EPOCH_MICROS};
use super::{fdw_error, ColDef, Modify, OptClass, Opts, Scan, Ship, TableDef, Wrapper};
use crate::block::ReportError;
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, FromDatum, IntoDatum, JsonB, PgSqlErrorCode};
use std::ffi::{c_void, CStr, CString};
use std::ptr;

// ----------------------------------------------------------------------------- helpers

unsafe fn list_ptrs(list: *mut pg_sys::List) -> Vec<*mut c_void> {
    if list.is_null() {
        return vec![];
    }
    let n = (*list).length as usize;
    (0..n)
        .map(|i| (*(*list).elements.add(i)).ptr_value)
        .collect()
}

unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

unsafe fn options(list: *mut pg_sys::List) -> Opts {
    let mut out = Opts::new();
    for p in list_ptrs(list) {
        let def = p as *mut pg_sys::DefElem;
        out.insert(cstr((*def).defname), cstr(pg_sys::defGetString(def)));
    }
    out
}

fn pg_type(oid: Oid) -> Option<PgType> {
    use pg_sys::BuiltinOid as B;
    let is = |x: B| x.value() == oid;
    Some(if is(B::BOOLOID) {
        PgType::Bool
    } else if is(B::INT2OID) {
        PgType::Int2
    } else if is(B::INT4OID) {
        PgType::Int4
    } else if is(B::INT8OID) {
        PgType::Int8
    } else if is(B::FLOAT4OID) {
        PgType::Float4
    } else if is(B::FLOAT8OID) {
        PgType::Float8
    } else if is(B::NUMERICOID) {
        PgType::Numeric
    } else if is(B::TEXTOID) || is(B::VARCHAROID) || is(B::BPCHAROID) {
        PgType::Text
    } else if is(B::JSONOID) {
        PgType::Json
    } else if is(B::JSONBOID) {
        PgType::Jsonb
    } else if is(B::TIMESTAMPTZOID) {
        PgType::Timestamptz
    } else if is(B::TIMESTAMPOID) {
        PgType::Timestamp
    } else if is(B::DATEOID) {
        PgType::Date
    } else if is(B::BYTEAOID) {
        PgType::Bytea
    } else if is(B::TEXTARRAYOID) || is(B::VARCHARARRAYOID) {
        PgType::Array(Box::new(PgType::Text))
    } else if is(B::INT2ARRAYOID) {
        PgType::Array(Box::new(PgType::Int2))
    } else if is(B::INT4ARRAYOID) {
        PgType::Array(Box::new(PgType::Int4))
    } else if is(B::INT8ARRAYOID) {
        PgType::Array(Box::new(PgType::Int8))
    } else if is(B::FLOAT4ARRAYOID) {
        PgType::Array(Box::new(PgType::Float4))
    } else if is(B::FLOAT8ARRAYOID) {
        PgType::Array(Box::new(PgType::Float8))
    } else if is(B::BOOLARRAYOID) {
        PgType::Array(Box::new(PgType::Bool))
    } else if is(B::NUMERICARRAYOID) {
        PgType::Array(Box::new(PgType::Numeric))
    } else {
        return None;
    })
}

/// `schema.table` of a relation, for messages.
unsafe fn qualified_name(relid: Oid) -> String {
    format!(
        "{}.{}",
        cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid))),
        cstr(pg_sys::get_rel_name(relid))
    )
}

/// Reads the definition of foreign table `relid` (options, columns, server).
pub(crate) unsafe fn table_def(relid: Oid) -> TableDef {
    let ft = pg_sys::GetForeignTable(relid);
    let mut def = server_def((*ft).serverid);
    def.table_opts = options((*ft).options);
    def.name = qualified_name(relid);
    let rel = pg_sys::relation_open(relid, pg_sys::NoLock as _);
    let desc = (*rel).rd_att;
    for i in 0..(*desc).natts as usize {
        let att = (*desc).attrs.as_ptr().add(i);
        if (*att).attisdropped {
            continue;
        }
        let attnum = (*att).attnum;
        def.columns.push(ColDef {
            name: cstr((*att).attname.data.as_ptr()),
            attnum,
            ty: pg_type((*att).atttypid),
            type_name: cstr(pg_sys::format_type_be((*att).atttypid)),
            type_oid: (*att).atttypid.to_u32(),
            opts: options(pg_sys::GetForeignColumnOptions(relid, attnum)),
        });
    }
    pg_sys::RelationClose(rel);
    def
}

pub(crate) unsafe fn server_def(server_oid: Oid) -> TableDef {
    let srv = pg_sys::GetForeignServer(server_oid);
    let mut def = TableDef {
        server: cstr((*srv).servername),
        server_oid: server_oid.to_u32(),
        server_owner: (*srv).owner.to_u32(),
        server_opts: options((*srv).options),
        ..Default::default()
    };
    // A user mapping is optional (credentials for servers given by URL/brokers).
    let um =
        pgrx::PgTryBuilder::new(|| Some(pg_sys::GetUserMapping(pg_sys::GetUserId(), server_oid)))
            .catch_others(|_| None)
            .execute();
    if let Some(um) = um.filter(|u| !u.is_null()) {
        def.user_opts = options((*um).options);
    }
    def
}

// ------------------------------------------------------------------------- datums

/// Converts a datum of type `oid` to a value (constants, parameters, inserted rows).
pub(crate) unsafe fn datum_to_val(d: Datum, isnull: bool, oid: Oid) -> Val {
    use pg_sys::BuiltinOid as B;
    if isnull {
        return Val::Null;
    }
    let is = |x: B| x.value() == oid;
    if is(B::BOOLOID) {
        Val::Bool(bool::from_datum(d, false).unwrap_or(false))
    } else if is(B::INT2OID) {
        Val::Int(i16::from_datum(d, false).unwrap_or(0) as i64)
    } else if is(B::INT4OID) {
        Val::Int(i32::from_datum(d, false).unwrap_or(0) as i64)
    } else if is(B::INT8OID) {
        Val::Int(i64::from_datum(d, false).unwrap_or(0))
    } else if is(B::FLOAT4OID) {
        Val::Float(f32::from_datum(d, false).unwrap_or(0.0) as f64)
    } else if is(B::FLOAT8OID) {
        Val::Float(f64::from_datum(d, false).unwrap_or(0.0))
    } else if is(B::NUMERICOID) {
        Val::Numeric(
            AnyNumeric::from_datum(d, false)
                .map(|n| n.to_string())
                .unwrap_or_default(),
        )
    } else if is(B::TEXTOID)
        || is(B::VARCHAROID)
        || is(B::BPCHAROID)
        || is(B::NAMEOID)
        || is(B::UNKNOWNOID)
    {
        if is(B::NAMEOID) || is(B::UNKNOWNOID) {
            return Val::Text(output_text(d, oid));
        }
        Val::Text(String::from_datum(d, false).unwrap_or_default())
    } else if is(B::JSONBOID) {
        Val::Json(JsonB::from_datum(d, false).map(|j| j.0).unwrap_or_default())
    } else if is(B::JSONOID) {
        Val::Json(
            pgrx::Json::from_datum(d, false)
                .map(|j| j.0)
                .unwrap_or_default(),
        )
    } else if is(B::TIMESTAMPTZOID) || is(B::TIMESTAMPOID) {
        Val::Ts((d.value() as i64).saturating_add(PG_EPOCH_MICROS))
    } else if is(B::DATEOID) {
        Val::Date((d.value() as i32).saturating_add(PG_EPOCH_DAYS))
    } else if is(B::BYTEAOID) {
        Val::Bytes(Vec::<u8>::from_datum(d, false).unwrap_or_default())
    } else if is(B::TEXTARRAYOID) || is(B::VARCHARARRAYOID) {
        array(d, Val::Text)
    } else if is(B::INT2ARRAYOID) {
        array(d, |i: i16| Val::Int(i as i64))
    } else if is(B::INT4ARRAYOID) {
        array(d, |i: i32| Val::Int(i as i64))
    } else if is(B::INT8ARRAYOID) {
        array(d, Val::Int)
    } else if is(B::FLOAT8ARRAYOID) {
        array(d, Val::Float)
    } else if is(B::FLOAT4ARRAYOID) {
        array(d, |f: f32| Val::Float(f as f64))
    } else if is(B::BOOLARRAYOID) {
        array(d, Val::Bool)
    } else if is(B::TIMESTAMPTZARRAYOID) {
        array(d, |t: pgrx::datum::TimestampWithTimeZone| {
            Val::Ts(i64::from(t).saturating_add(PG_EPOCH_MICROS))
        })
    } else {
        // Anything else (uuid, inet, …) as its text form.
        Val::Text(output_text(d, oid))
    }
}

/// A one-dimensional array datum as `Val::Array` (NULL elements kept).
unsafe fn array<T>(d: Datum, f: impl Fn(T) -> Val) -> Val
where
    for<'arr> T: pgrx::datum::UnboxDatum<As<'arr> = T> + 'arr,
{
    Val::Array(
        Vec::<Option<T>>::from_datum(d, false)
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.map(&f).unwrap_or(Val::Null))
            .collect(),
    )
}

unsafe fn output_text(d: Datum, oid: Oid) -> String {
    let mut func = Oid::INVALID;
    let mut varlena = false;
    pg_sys::getTypeOutputInfo(oid, &mut func, &mut varlena);
    cstr(pg_sys::OidOutputFunctionCall(func, d))
}

/// A `numeric` datum from number text, built by `numeric_in` straight into the current memory
/// context. Text that is not a plain decimal number goes through `AnyNumeric`, which turns a
/// `numeric_in` error into a message instead of an ERROR.
fn numeric_datum(s: &str) -> Result<Option<Datum>, String> {
    let plain = !s.is_empty()
        && s.len() < 40
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'));
    if plain {
        if let Ok(c) = CString::new(s) {
            // SAFETY: numeric_in(cstring, oid, typmod) on a short plain decimal cannot fail;
            // pgrx's FFI boundary would turn an ERROR into a Rust panic anyway.
            let d = unsafe {
                pgrx::direct_function_call_as_datum(
                    pg_sys::numeric_in,
                    &[
                        Some(Datum::from(c.as_ptr())),
                        Some(Datum::from(pg_sys::InvalidOid)),
                        Some(Datum::from(-1i32)),
                    ],
                )
            };
            return Ok(d);
        }
    }
    AnyNumeric::try_from(s)
        .map(|n| n.into_datum())
        .map_err(|e| format!("value {s} is not a number: {e}"))
}

/// Converts a value produced by a wrapper into a datum of the column's type (in the current
/// memory context).
fn val_to_datum(v: Val, ty: &PgType) -> Result<Option<Datum>, String> {
    let wrong = |v: &Val| format!("internal: value {v:?} for a {} column", ty.sql());
    Ok(match (v, ty) {
        (Val::Null, _) => None,
        (Val::Bool(b), PgType::Bool) => b.into_datum(),
        (Val::Int(i), PgType::Int2) => (i as i16).into_datum(),
        (Val::Int(i), PgType::Int4) => (i as i32).into_datum(),
        (Val::Int(i), PgType::Int8) => i.into_datum(),
        (Val::Float(f), PgType::Float4) => (f as f32).into_datum(),
        (Val::Float(f), PgType::Float8) => f.into_datum(),
        (Val::Int(i), PgType::Float8) => (i as f64).into_datum(),
        (Val::Numeric(s), PgType::Numeric) => numeric_datum(&s)?,
        (Val::Text(s), PgType::Text) => s.into_datum(),
        (Val::Json(j), PgType::Jsonb) => JsonB(j).into_datum(),
        (Val::Json(j), PgType::Json) => pgrx::Json(j).into_datum(),
        (Val::Ts(us), PgType::Timestamptz | PgType::Timestamp) => {
            Some(Datum::from(us.saturating_sub(PG_EPOCH_MICROS)))
        }
        (Val::Date(d), PgType::Date) => Some(Datum::from(d.saturating_sub(PG_EPOCH_DAYS))),
        (Val::Bytes(b), PgType::Bytea) => b.into_datum(),
        (Val::Array(items), PgType::Array(elem)) => {
            fn col<T>(items: Vec<Val>, f: impl Fn(Val) -> Option<T>) -> Vec<Option<T>> {
                items.into_iter().map(f).collect()
            }
            match elem.as_ref() {
                PgType::Text => col(items, |v| v.to_text()).into_datum(),
                PgType::Int2 => col(items, |v| v.as_i64().map(|i| i as i16)).into_datum(),
                PgType::Int4 => col(items, |v| v.as_i64().map(|i| i as i32)).into_datum(),
                PgType::Int8 => col(items, |v| v.as_i64()).into_datum(),
                PgType::Float4 => col(items, |v| match v {
                    Val::Float(f) => Some(f as f32),
                    Val::Int(i) => Some(i as f32),
                    _ => None,
                })
                .into_datum(),
                PgType::Float8 => col(items, |v| match v {
                    Val::Float(f) => Some(f),
                    Val::Int(i) => Some(i as f64),
                    _ => None,
                })
                .into_datum(),
                PgType::Bool => col(items, |v| match v {
                    Val::Bool(b) => Some(b),
                    _ => None,
                })
                .into_datum(),
                PgType::Numeric => col(items, |v| {
                    v.to_text()
                        .and_then(|s| AnyNumeric::try_from(s.as_str()).ok())
                })
                .into_datum(),
                other => return Err(format!("arrays of {} are not supported", other.sql())),
            }
        }
        (v, _) => return Err(wrong(&v)),
    })
}

// ---------------------------------------------------------------------- planning

/// Turns WHERE clauses of relation `varno` into conditions; expressions to evaluate at scan
/// start are collected in `exprs` (they become the plan's `fdw_exprs`).
struct PlanCtx {
    varno: u32,
    exprs: Vec<*mut pg_sys::Node>,
}

unsafe fn strip(node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    if !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_RelabelType {
        return (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
    }
    node
}

impl PlanCtx {
    /// Our column, if `node` is a plain Var of this relation.
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
    for ri in list_ptrs((*baserel).baserestrictinfo) {
        let clause = (*(ri as *mut pg_sys::RestrictInfo)).clause as *mut pg_sys::Node;
        let before = ctx.exprs.len();
        match ctx.cond(clause) {
            Some(c) => match planner.ship(&c) {
                Ship::No => {
                    ctx.exprs.truncate(before);
                    all_exact = false;
                }
                s => {
                    all_exact &= s == Ship::Exact;
                    req.conds.push(c);
                }
            },
            None => {
                ctx.exprs.truncate(before);
                all_exact = false;
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
                "Use text, jsonb, a number, boolean, date, timestamp(tz), bytea, or an array of those.",
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
        && (*parse).rowMarks.is_null();
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
    (*baserel).rows = rows.max(1.0);

    let json = serde_json::to_string(&req).unwrap_or_default();
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

#[pg_guard]
unsafe extern "C-unwind" fn get_foreign_rel_size<W: Wrapper>(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    relid: Oid,
) {
    plan_rel::<W>(root, baserel, relid);
}

#[pg_guard]
unsafe extern "C-unwind" fn get_foreign_paths(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _relid: Oid,
) {
    let startup = 100.0;
    let total = startup + (*baserel).rows * 0.05;
    let path = pg_sys::create_foreignscan_path(
        root,
        baserel,
        ptr::null_mut(),
        (*baserel).rows,
        startup,
        total,
        ptr::null_mut(),
        ptr::null_mut(),
        ptr::null_mut(),
        ptr::null_mut(),
    );
    pg_sys::add_path(baserel, path as *mut pg_sys::Path);
}

#[pg_guard]
unsafe extern "C-unwind" fn get_foreign_plan(
    _root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _relid: Oid,
    _best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    scan_clauses: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
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

// ------------------------------------------------------------------------ scanning

struct ScanState {
    table: TableDef,
    req: Request,
    types: Vec<Option<PgType>>,
    exprs: *mut pg_sys::List,
    scan: Option<Box<dyn Scan>>,
    row: Vec<Val>,
    cb: *mut pg_sys::MemoryContextCallback,
}

unsafe extern "C-unwind" fn drop_scan_state(arg: *mut c_void) {
    if !arg.is_null() {
        drop(Box::from_raw(arg as *mut ScanState));
    }
}

unsafe extern "C-unwind" fn drop_modify_state(arg: *mut c_void) {
    if !arg.is_null() {
        drop(Box::from_raw(arg as *mut ModifyState));
    }
}

/// Frees `arg` with `f` when `cxt` is reset/deleted (error paths), unless disarmed first.
unsafe fn arm(
    cxt: pg_sys::MemoryContext,
    f: unsafe extern "C-unwind" fn(*mut c_void),
    arg: *mut c_void,
) -> *mut pg_sys::MemoryContextCallback {
    let cb =
        pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<pg_sys::MemoryContextCallback>())
            as *mut pg_sys::MemoryContextCallback;
    (*cb).func = Some(f);
    (*cb).arg = arg;
    pg_sys::MemoryContextRegisterResetCallback(cxt, cb);
    cb
}

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

#[pg_guard]
unsafe extern "C-unwind" fn begin_foreign_scan<W: Wrapper>(
    node: *mut pg_sys::ForeignScanState,
    eflags: i32,
) {
    let plan = (*node).ss.ps.plan as *mut pg_sys::ForeignScan;
    let private = list_ptrs((*plan).fdw_private);
    let json = private
        .first()
        .map(|s| cstr((*(*s as *mut pg_sys::String)).sval))
        .unwrap_or_default();
    let req: Request = serde_json::from_str(&json).unwrap_or_default();
    let relid = (*(*node).ss.ss_currentRelation).rd_id;
    let table = table_def(relid);
    let types = req
        .wanted
        .iter()
        .map(|a| table.col(*a).and_then(|c| c.ty.clone()))
        .collect();
    let exprs = pg_sys::ExecInitExprList((*plan).fdw_exprs, node as *mut pg_sys::PlanState);
    let explain_only = eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0;
    let row = vec![Val::Null; req.wanted.len()];
    let state = Box::into_raw(Box::new(ScanState {
        table,
        req,
        types,
        exprs,
        scan: None,
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
    let req = if explain_only {
        st.req.clone()
    } else {
        st.req.resolve(&eval_params(node, st.exprs))
    };
    match W::begin_scan(st.table.clone(), req, explain_only) {
        Ok(s) => st.scan = Some(s),
        Err(e) => e.report_error(),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn iterate_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
) -> *mut pg_sys::TupleTableSlot {
    let slot = (*node).ss.ss_ScanTupleSlot;
    pg_sys::ExecClearTuple(slot);
    let st = &mut *((*node).fdw_state as *mut ScanState);
    let Some(scan) = st.scan.as_mut() else {
        return slot;
    };
    // Every slot is Null here: the previous row's values were moved out below.
    match scan.next(&mut st.row) {
        Ok(true) => {}
        Ok(false) => return slot,
        Err(e) => e.report_error(),
    }
    let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
    let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
    let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
    nulls.fill(true);
    let econtext = (*node).ss.ps.ps_ExprContext;
    let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
    for (i, attnum) in st.req.wanted.iter().enumerate() {
        let v = std::mem::replace(&mut st.row[i], Val::Null);
        let idx = *attnum as usize - 1;
        if idx >= natts {
            continue;
        }
        let Some(ty) = &st.types[i] else { continue };
        match val_to_datum(v, ty) {
            Ok(Some(d)) => {
                values[idx] = d;
                nulls[idx] = false;
            }
            Ok(None) => {}
            Err(msg) => {
                pg_sys::MemoryContextSwitchTo(old);
                let col = st
                    .table
                    .col(*attnum)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                fdw_error(
                    PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
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

#[pg_guard]
unsafe extern "C-unwind" fn rescan_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    let st = &mut *((*node).fdw_state as *mut ScanState);
    let req = st.req.resolve(&eval_params(node, st.exprs));
    if let Some(scan) = st.scan.as_mut() {
        if let Err(e) = scan.rescan(&req) {
            e.report_error();
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    let state = (*node).fdw_state as *mut ScanState;
    if state.is_null() {
        return;
    }
    (*(*state).cb).arg = ptr::null_mut();
    (*node).fdw_state = ptr::null_mut();
    drop(Box::from_raw(state));
}

#[pg_guard]
unsafe extern "C-unwind" fn explain_foreign_scan(
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

// --------------------------------------------------------------------- modification

struct ModifyState {
    table: TableDef,
    modify: Option<Box<dyn Modify>>,
    id_attno: i16,
    cb: *mut pg_sys::MemoryContextCallback,
}

#[pg_guard]
unsafe extern "C-unwind" fn add_foreign_update_targets(
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

#[pg_guard]
unsafe extern "C-unwind" fn plan_foreign_modify(
    _root: *mut pg_sys::PlannerInfo,
    _plan: *mut pg_sys::ModifyTable,
    _rtindex: pg_sys::Index,
    _subplan_index: i32,
) -> *mut pg_sys::List {
    ptr::null_mut()
}

#[pg_guard]
unsafe extern "C-unwind" fn begin_foreign_modify<W: Wrapper>(
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
    let state = Box::into_raw(Box::new(ModifyState {
        table: table.clone(),
        modify: None,
        id_attno,
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

unsafe fn modify_state<'a>(rinfo: *mut pg_sys::ResultRelInfo) -> &'a mut ModifyState {
    &mut *((*rinfo).ri_FdwState as *mut ModifyState)
}

/// One row of an INSERT, UPDATE or DELETE handed to the wrapper (which buffers it).
unsafe fn modify_row(
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
    op: pg_sys::CmdType::Type,
) -> *mut pg_sys::TupleTableSlot {
    let st = modify_state(rinfo);
    let id = (op != pg_sys::CmdType::CMD_INSERT).then(|| junk_id(st, plan_slot));
    let row = (op != pg_sys::CmdType::CMD_DELETE).then(|| slot_row(&st.table, slot));
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

#[pg_guard]
unsafe extern "C-unwind" fn exec_foreign_insert(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    modify_row(rinfo, slot, plan_slot, pg_sys::CmdType::CMD_INSERT)
}

#[pg_guard]
unsafe extern "C-unwind" fn exec_foreign_update(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    modify_row(rinfo, slot, plan_slot, pg_sys::CmdType::CMD_UPDATE)
}

#[pg_guard]
unsafe extern "C-unwind" fn exec_foreign_delete(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    modify_row(rinfo, slot, plan_slot, pg_sys::CmdType::CMD_DELETE)
}

#[pg_guard]
unsafe extern "C-unwind" fn end_foreign_modify(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    let state = (*rinfo).ri_FdwState as *mut ModifyState;
    if state.is_null() {
        return;
    }
    (*(*state).cb).arg = ptr::null_mut();
    (*rinfo).ri_FdwState = ptr::null_mut();
    let mut st = Box::from_raw(state);
    let r = st.modify.as_mut().map(|m| m.finish()).unwrap_or(Ok(()));
    drop(st);
    if let Err(e) = r {
        e.report_error();
    }
}

unsafe extern "C-unwind" fn is_updatable<W: Wrapper>(_rel: pg_sys::Relation) -> i32 {
    let mut bits = 1 << pg_sys::CmdType::CMD_INSERT as i32;
    if W::UPDATABLE {
        bits |=
            (1 << pg_sys::CmdType::CMD_UPDATE as i32) | (1 << pg_sys::CmdType::CMD_DELETE as i32);
    }
    bits
}

// ------------------------------------------------------------------------ import

#[pg_guard]
unsafe extern "C-unwind" fn import_foreign_schema<W: Wrapper>(
    stmt: *mut pg_sys::ImportForeignSchemaStmt,
    server_oid: Oid,
) -> *mut pg_sys::List {
    let server = server_def(server_oid);
    let remote = cstr((*stmt).remote_schema);
    let names: Vec<String> = list_ptrs((*stmt).table_list)
        .into_iter()
        .map(|rv| cstr((*(rv as *mut pg_sys::RangeVar)).relname))
        .collect();
    let mode = (*stmt).list_type;
    let keep = |t: &str| match mode {
        pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_LIMIT_TO => names.iter().any(|n| n == t),
        pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_EXCEPT => !names.iter().any(|n| n == t),
        _ => true,
    };
    let tables = match W::import(&server, &remote, &keep) {
        Ok(t) => t,
        Err(e) => e.report_error(),
    };
    let mut out: *mut pg_sys::List = ptr::null_mut();
    for t in tables {
        let ddl = CString::new(super::import_ddl(&server.server, &t)).unwrap_or_default();
        out = pg_sys::lappend(out, pg_sys::pstrdup(ddl.as_ptr()) as *mut c_void);
    }
    out
}

// ----------------------------------------------------------------------- routine

/// The FdwRoutine of wrapper `W`.
pub fn routine<W: Wrapper>() -> supabase_wrappers::FdwRoutine {
    unsafe {
        let mut r = PgBox::<pg_sys::FdwRoutine, pgrx::AllocatedByRust>::alloc_node(
            pg_sys::NodeTag::T_FdwRoutine,
        );
        r.GetForeignRelSize = Some(get_foreign_rel_size::<W>);
        r.GetForeignPaths = Some(get_foreign_paths);
        r.GetForeignPlan = Some(get_foreign_plan);
        r.BeginForeignScan = Some(begin_foreign_scan::<W>);
        r.IterateForeignScan = Some(iterate_foreign_scan);
        r.ReScanForeignScan = Some(rescan_foreign_scan);
        r.EndForeignScan = Some(end_foreign_scan);
        r.ExplainForeignScan = Some(explain_foreign_scan);
        r.AddForeignUpdateTargets = Some(add_foreign_update_targets);
        r.PlanForeignModify = Some(plan_foreign_modify);
        r.BeginForeignModify = Some(begin_foreign_modify::<W>);
        r.ExecForeignInsert = Some(exec_foreign_insert);
        r.ExecForeignUpdate = Some(exec_foreign_update);
        r.ExecForeignDelete = Some(exec_foreign_delete);
        r.EndForeignModify = Some(end_foreign_modify);
        r.IsForeignRelUpdatable = Some(is_updatable::<W>);
        r.ImportForeignSchema = Some(import_foreign_schema::<W>);
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

/// Reads a catalog datasource (with secrets) for a foreign server's `datasource` option.
///
/// The server must be owned by a superuser or a member of flink_admin: only they may turn a
/// datasource's credentials into a server others can use. The read runs as the extension's
/// owner, so users of the server never need (or get) access to the secrets table.
pub fn datasource(
    server: &TableDef,
    name: &str,
) -> Result<crate::datasource::Source, pgrx::pg_sys::panic::ErrorReport> {
    let owner_ok = Spi::get_one_with_args::<bool>(
        "SELECT r.rolsuper OR pg_catalog.pg_has_role(r.oid, 'flink_admin', 'MEMBER') FROM pg_catalog.pg_roles r WHERE r.oid = $1",
        &[Oid::from(server.server_owner).into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !owner_ok {
        return Err(fdw_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "foreign server \"{}\" names datasource \"{name}\" but its owner is not a member of flink_admin",
                server.server
            ),
            "Have a flink_admin member (or a superuser) own the server: ALTER SERVER … OWNER TO ….",
        ));
    }
    let mut uid = Oid::INVALID;
    let mut sec = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut sec);
    }
    let owner: Option<Oid> = Spi::get_one("SELECT c.relowner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'flink' AND c.relname = 'datasource_secret'")
        .ok()
        .flatten();
    let Some(owner) = owner else {
        return Err(fdw_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "pg_flink's catalog is missing (flink.datasource_secret)",
            "CREATE EXTENSION pg_flink in this database.",
        ));
    };
    unsafe {
        pg_sys::SetUserIdAndSecContext(owner, sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
    }
    let row = Spi::get_two_with_args::<String, JsonB>(
        "SELECT d.kind, jsonb_build_object('options', d.options, 'secrets', COALESCE(s.secrets, '{}'))
           FROM flink.datasource d LEFT JOIN flink.datasource_secret s ON s.datasource = d.name WHERE d.name = $1",
        &[name.into()],
    );
    unsafe {
        pg_sys::SetUserIdAndSecContext(uid, sec);
    }
    let (kind, body) = match row {
        Ok((Some(k), Some(b))) => (k, b.0),
        _ => {
            return Err(fdw_error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("datasource \"{name}\" (option datasource of foreign server \"{}\") does not exist", server.server),
                "See flink.datasources for registered datasources, or register it with flink.register_datasource().",
            ))
        }
    };
    let kind = crate::datasource::check_kind(name, Some(&kind)).map_err(|e| {
        fdw_error(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            e.to_string(),
            "Re-register the datasource.",
        )
    })?;
    let obj = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default()
    };
    Ok(crate::datasource::Source {
        name: name.to_string(),
        kind,
        options: obj("options"),
        secrets: obj("secrets"),
    })
}

/// The connection of a table's server: the catalog datasource named by its `datasource`
/// option (which must be of `kind`), else the one `direct` builds from the server's own
/// options (the other option of `rules.server_one_of`); then the table's (or server's)
/// `timeout_ms`.
pub fn server_source(
    t: &TableDef,
    rules: &super::OptionRules,
    kind: crate::datasource::Kind,
    direct: impl FnOnce(&str) -> crate::datasource::Source,
) -> Result<crate::datasource::Source, pgrx::pg_sys::panic::ErrorReport> {
    let (by_name, by_address) = rules.server_one_of;
    let bad = |msg: String| {
        fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
            msg,
            format!(
                "Fix the options of the server (see the {} documentation under docs/).",
                rules.wrapper
            ),
        )
    };
    let mut src = if let Some(ds) = t.server_opts.get(by_name) {
        let s = datasource(t, ds)?;
        if s.kind != kind {
            return Err(bad(format!(
                "foreign server \"{}\": datasource \"{ds}\" is of kind {}, not {}",
                t.server,
                s.kind.as_str(),
                kind.as_str()
            )));
        }
        s
    } else if let Some(address) = t.server_opts.get(by_address) {
        direct(address)
    } else {
        return Err(bad(format!(
            "foreign server \"{}\" needs option {by_name} or {by_address}",
            t.server
        )));
    };
    if let Some(ms) = t.opt("timeout_ms").and_then(|v| v.parse::<i64>().ok()) {
        src.options
            .insert("timeout_ms".into(), serde_json::Value::from(ms));
    }
    Ok(src)
}
