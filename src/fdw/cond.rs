//! Pure description of what a scan asks for: the WHERE conditions the planner could express
//! on our columns, ORDER BY keys and LIMIT. It is built at plan time, stored as JSON in the plan
//! (so cached and re-executed plans carry it safely), and resolved against the parameter
//! values at each (re)scan.
use crate::fdw::value::Val;
use serde::{Deserialize, Serialize};

/// A value known at plan time, or a parameter/expression evaluated at scan start (the first
/// row of each (re)scan, when initplan and outer-row values are set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Operand {
    Val(Val),
    /// Index into the scan's `fdw_exprs` (prepared-statement parameters, `now()`, outer
    /// references of a correlated subquery…).
    Param(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn from_pg(name: &str) -> Option<CmpOp> {
        Some(match name {
            "=" => CmpOp::Eq,
            "<>" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }
    /// `5 < col` is `col > 5`.
    pub fn commuted(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            o => o,
        }
    }
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A condition on the columns of one foreign table (columns by attribute number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cond {
    Cmp {
        col: i16,
        op: CmpOp,
        arg: Operand,
    },
    /// `col = ANY(array)` (`IN`), or `col <> ALL(array)` (`NOT IN`) when `negated`.
    In {
        col: i16,
        list: Operand,
        negated: bool,
    },
    IsNull {
        col: i16,
        negated: bool,
    },
    /// `col LIKE pattern`.
    Like {
        col: i16,
        pattern: Operand,
    },
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

impl Cond {
    /// The same condition with every parameter replaced by its value.
    pub fn resolve(&self, params: &[Val]) -> Cond {
        let r = |o: &Operand| match o {
            Operand::Param(i) => Operand::Val(params.get(*i).cloned().unwrap_or(Val::Null)),
            v => v.clone(),
        };
        match self {
            Cond::Cmp { col, op, arg } => Cond::Cmp {
                col: *col,
                op: *op,
                arg: r(arg),
            },
            Cond::In { col, list, negated } => Cond::In {
                col: *col,
                list: r(list),
                negated: *negated,
            },
            Cond::IsNull { .. } => self.clone(),
            Cond::Like { col, pattern } => Cond::Like {
                col: *col,
                pattern: r(pattern),
            },
            Cond::And(v) => Cond::And(v.iter().map(|c| c.resolve(params)).collect()),
            Cond::Or(v) => Cond::Or(v.iter().map(|c| c.resolve(params)).collect()),
        }
    }

    /// Does the condition still hold a parameter (not resolved yet)?
    pub fn has_params(&self) -> bool {
        let p = |o: &Operand| matches!(o, Operand::Param(_));
        match self {
            Cond::Cmp { arg, .. } => p(arg),
            Cond::In { list, .. } => p(list),
            Cond::Like { pattern, .. } => p(pattern),
            Cond::IsNull { .. } => false,
            Cond::And(v) | Cond::Or(v) => v.iter().any(Cond::has_params),
        }
    }
}

/// An ORDER BY key on one of our columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKey {
    pub col: i16,
    pub desc: bool,
    pub nulls_first: bool,
}

/// What the planner hands to a wrapper, stored in the plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// ANDed conditions, each one a whole WHERE clause Postgres will recheck anyway.
    pub conds: Vec<Cond>,
    /// Columns the query reads (attribute numbers); others may be left NULL.
    pub wanted: Vec<i16>,
    pub sort: Vec<SortKey>,
    /// Rows the query needs at most (LIMIT + OFFSET), only when it is safe to stop early
    /// remotely: one table, every clause shipped exactly, ORDER BY (if any) shipped too.
    pub limit: Option<u64>,
    /// Every WHERE clause of the table is in `conds` and shipped exactly (so the remote side
    /// alone decides which rows count: what an aggregate pushdown needs).
    #[serde(default)]
    pub all_exact: bool,
    /// An aggregation computed remotely instead of rows (an upper-relation scan).
    #[serde(default)]
    pub agg: Option<crate::fdw::agg::AggRequest>,
}

impl Request {
    pub fn resolve(&self, params: &[Val]) -> Request {
        Request {
            conds: self.conds.iter().map(|c| c.resolve(params)).collect(),
            ..self.clone()
        }
    }
}

/// How EXPLAIN names a parameter whose value is not known yet.
pub fn placeholder(i: usize) -> String {
    format!("$param{}", i + 1)
}

/// Renders a parameter or value for EXPLAIN when it is not known yet (`$1`-like).
pub fn operand_text(o: &Operand) -> String {
    match o {
        Operand::Param(i) => placeholder(*i),
        Operand::Val(v) => v.to_json().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_resolved_everywhere() {
        let c = Cond::Or(vec![
            Cond::Cmp {
                col: 1,
                op: CmpOp::Ge,
                arg: Operand::Param(0),
            },
            Cond::And(vec![Cond::Like {
                col: 2,
                pattern: Operand::Param(1),
            }]),
        ]);
        let r = c.resolve(&[Val::Int(5), Val::Text("a%".into())]);
        assert_eq!(
            r,
            Cond::Or(vec![
                Cond::Cmp {
                    col: 1,
                    op: CmpOp::Ge,
                    arg: Operand::Val(Val::Int(5))
                },
                Cond::And(vec![Cond::Like {
                    col: 2,
                    pattern: Operand::Val(Val::Text("a%".into()))
                }]),
            ])
        );
        assert!(c.has_params() && !r.has_params());
        // A request survives the trip through the plan (JSON) unchanged.
        let req = Request {
            conds: vec![c],
            wanted: vec![1, 2],
            limit: Some(3),
            ..Default::default()
        };
        let back: Request = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn commuting_flips_inequalities() {
        assert_eq!(CmpOp::from_pg("<").unwrap().commuted(), CmpOp::Gt);
        assert_eq!(CmpOp::Eq.commuted(), CmpOp::Eq);
        assert_eq!(CmpOp::from_pg("~~"), None);
    }
}
