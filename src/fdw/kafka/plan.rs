//! Kafka scan planning (pure): which offsets and timestamps of which partitions a WHERE clause
//! needs ([`Bounds`] per partition from `_partition`, `_offset` and `_timestamp` conditions),
//! how exactly those conditions ship ([`ship`]), and their text for EXPLAIN ([`describe`]).
use crate::fdw::cond::{CmpOp, Cond, Operand};
use crate::fdw::value::Val;
use crate::fdw::{Ship, TableDef};

/// Offsets and timestamps a partition must be read between (offsets: `[off_lo, off_hi)`,
/// timestamps in epoch ms: `[ts_lo, ts_hi)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub empty: bool,
    pub off_lo: i64,
    pub off_hi: i64,
    pub ts_lo: Option<i64>,
    pub ts_hi: Option<i64>,
}

impl Bounds {
    pub const ALL: Bounds = Bounds {
        empty: false,
        off_lo: 0,
        off_hi: i64::MAX,
        ts_lo: None,
        ts_hi: None,
    };
    pub const NONE: Bounds = Bounds {
        empty: true,
        off_lo: 0,
        off_hi: 0,
        ts_lo: None,
        ts_hi: None,
    };

    fn and(self, o: Bounds) -> Bounds {
        if self.empty || o.empty {
            return Bounds::NONE;
        }
        let b = Bounds {
            empty: false,
            off_lo: self.off_lo.max(o.off_lo),
            off_hi: self.off_hi.min(o.off_hi),
            ts_lo: max_opt(self.ts_lo, o.ts_lo),
            ts_hi: match (self.ts_hi, o.ts_hi) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };
        if b.off_lo >= b.off_hi || matches!((b.ts_lo, b.ts_hi), (Some(l), Some(h)) if l >= h) {
            Bounds::NONE
        } else {
            b
        }
    }

    /// The smallest bounds holding both (a superset of the union).
    fn or(self, o: Bounds) -> Bounds {
        if self.empty {
            return o;
        }
        if o.empty {
            return self;
        }
        Bounds {
            empty: false,
            off_lo: self.off_lo.min(o.off_lo),
            off_hi: self.off_hi.max(o.off_hi),
            ts_lo: match (self.ts_lo, o.ts_lo) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            },
            ts_hi: match (self.ts_hi, o.ts_hi) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            },
        }
    }
}

/// Timestamp bounds as Kafka can look them up. A scan never returns a `_timestamp` before the
/// epoch (a message without a timestamp, or with a negative one, has `_timestamp` NULL: see
/// `batch.rs`), and offsets-for-times cannot look up a negative time (negative values mean
/// "latest"/"earliest"). So a lower bound at or before the epoch bounds nothing, and an upper
/// bound at or before it (`_timestamp < '1960-01-01'`) leaves nothing to read.
fn from_epoch(b: Bounds) -> Bounds {
    if b.empty || matches!(b.ts_hi, Some(h) if h <= 0) {
        return Bounds::NONE;
    }
    Bounds {
        ts_lo: b.ts_lo.filter(|l| *l > 0),
        ..b
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Attribute numbers of the metadata columns conditions can use.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaCols {
    pub partition: Option<i16>,
    pub offset: Option<i16>,
    pub timestamp: Option<i16>,
}

impl MetaCols {
    pub fn of(table: &TableDef) -> MetaCols {
        let find = |n: &str| table.col_named(n).map(|c| c.attnum);
        MetaCols {
            partition: find("_partition"),
            offset: find("_offset"),
            timestamp: find("_timestamp"),
        }
    }
    fn role(&self, col: i16) -> Option<Meta> {
        if Some(col) == self.partition {
            Some(Meta::Partition)
        } else if Some(col) == self.offset {
            Some(Meta::Offset)
        } else if Some(col) == self.timestamp {
            Some(Meta::Timestamp)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Partition,
    Offset,
    Timestamp,
}

/// Can a condition be turned into partition/offset/timestamp bounds?
pub fn ship(meta: &MetaCols, c: &Cond) -> Ship {
    match c {
        Cond::Cmp { col, op, .. } => match meta.role(*col) {
            None => Ship::No,
            Some(_) if *op == CmpOp::Ne => Ship::Superset,
            Some(Meta::Timestamp) => Ship::Superset,
            Some(_) => Ship::Exact,
        },
        Cond::In { col, negated, .. } => match meta.role(*col) {
            None => Ship::No,
            Some(Meta::Partition) if !negated => Ship::Exact,
            Some(_) => Ship::Superset,
        },
        Cond::IsNull { col, .. } => match meta.role(*col) {
            None => Ship::No,
            Some(_) => Ship::Exact,
        },
        Cond::Like { .. } => Ship::No,
        Cond::And(v) | Cond::Or(v) => {
            let mut worst = Ship::Exact;
            for s in v.iter().map(|c| ship(meta, c)) {
                match s {
                    Ship::No => return Ship::No,
                    Ship::Superset => worst = Ship::Superset,
                    Ship::Exact => {}
                }
            }
            if matches!(c, Cond::Or(_)) {
                Ship::Superset
            } else {
                worst
            }
        }
    }
}

fn val(o: &Operand) -> Option<&Val> {
    match o {
        Operand::Val(Val::Null) | Operand::Param(_) => None,
        Operand::Val(v) => Some(v),
    }
}

/// Bounds a (resolved) condition puts on `partition`.
pub fn bounds(meta: &MetaCols, c: &Cond, partition: i32) -> Bounds {
    match c {
        Cond::And(v) => v
            .iter()
            .fold(Bounds::ALL, |b, c| b.and(bounds(meta, c, partition))),
        Cond::Or(v) => v
            .iter()
            .fold(Bounds::NONE, |b, c| b.or(bounds(meta, c, partition))),
        Cond::IsNull { col, negated } => match meta.role(*col) {
            Some(_) if !negated => Bounds::NONE,
            _ => Bounds::ALL,
        },
        Cond::Like { .. } => Bounds::ALL,
        Cond::In { col, list, negated } => {
            let Some(role) = meta.role(*col) else {
                return Bounds::ALL;
            };
            let items: Vec<i64> = match val(list) {
                Some(Val::Array(a)) => a
                    .iter()
                    .filter_map(|v| {
                        if role == Meta::Timestamp {
                            v.as_epoch_millis()
                        } else {
                            v.as_i64()
                        }
                    })
                    .collect(),
                _ => return if *negated { Bounds::ALL } else { Bounds::NONE },
            };
            match (role, negated) {
                (_, true) => Bounds::ALL,
                (Meta::Partition, false) => {
                    if items.contains(&(partition as i64)) {
                        Bounds::ALL
                    } else {
                        Bounds::NONE
                    }
                }
                (Meta::Offset, false) => match (items.iter().min(), items.iter().max()) {
                    (Some(lo), Some(hi)) => Bounds {
                        off_lo: (*lo).max(0),
                        off_hi: hi.saturating_add(1),
                        ..Bounds::ALL
                    }
                    .and(Bounds::ALL),
                    _ => Bounds::NONE,
                },
                (Meta::Timestamp, false) => match (items.iter().min(), items.iter().max()) {
                    (Some(lo), Some(hi)) => from_epoch(Bounds {
                        ts_lo: Some(*lo),
                        ts_hi: Some(hi.saturating_add(1)),
                        ..Bounds::ALL
                    }),
                    _ => Bounds::NONE,
                },
            }
        }
        Cond::Cmp { col, op, arg } => {
            let Some(role) = meta.role(*col) else {
                return Bounds::ALL;
            };
            let Some(v) = val(arg) else {
                // Comparing with NULL matches nothing.
                return if matches!(arg, Operand::Val(Val::Null)) {
                    Bounds::NONE
                } else {
                    Bounds::ALL
                };
            };
            match role {
                Meta::Partition => {
                    let Some(x) = v.as_i64() else {
                        return Bounds::ALL;
                    };
                    let p = partition as i64;
                    let keep = match op {
                        CmpOp::Eq => p == x,
                        CmpOp::Ne => p != x,
                        CmpOp::Lt => p < x,
                        CmpOp::Le => p <= x,
                        CmpOp::Gt => p > x,
                        CmpOp::Ge => p >= x,
                    };
                    if keep {
                        Bounds::ALL
                    } else {
                        Bounds::NONE
                    }
                }
                Meta::Offset => {
                    let Some(x) = v.as_i64() else {
                        return Bounds::ALL;
                    };
                    let b = match op {
                        CmpOp::Eq => Bounds {
                            off_lo: x,
                            off_hi: x.saturating_add(1),
                            ..Bounds::ALL
                        },
                        CmpOp::Ne => Bounds::ALL,
                        CmpOp::Lt => Bounds {
                            off_hi: x,
                            ..Bounds::ALL
                        },
                        CmpOp::Le => Bounds {
                            off_hi: x.saturating_add(1),
                            ..Bounds::ALL
                        },
                        CmpOp::Gt => Bounds {
                            off_lo: x.saturating_add(1),
                            ..Bounds::ALL
                        },
                        CmpOp::Ge => Bounds {
                            off_lo: x,
                            ..Bounds::ALL
                        },
                    };
                    Bounds {
                        off_lo: b.off_lo.max(0),
                        ..b
                    }
                    .and(Bounds::ALL)
                }
                Meta::Timestamp => {
                    // Kafka timestamps are milliseconds; round outward so the bounds are a
                    // superset of what the (microsecond) comparison keeps. Saturating:
                    // 'infinity' is i64::MAX microseconds.
                    let (floor, ceil) = match v {
                        Val::Ts(us) => (
                            us.div_euclid(1000),
                            us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0),
                        ),
                        other => match other.as_epoch_millis() {
                            Some(ms) => (ms, ms),
                            None => return Bounds::ALL,
                        },
                    };
                    from_epoch(match op {
                        CmpOp::Eq => Bounds {
                            ts_lo: Some(floor),
                            ts_hi: Some(ceil.saturating_add(1)),
                            ..Bounds::ALL
                        },
                        CmpOp::Ne => Bounds::ALL,
                        CmpOp::Lt => Bounds {
                            ts_hi: Some(ceil),
                            ..Bounds::ALL
                        },
                        CmpOp::Le => Bounds {
                            ts_hi: Some(floor.saturating_add(1)),
                            ..Bounds::ALL
                        },
                        CmpOp::Gt | CmpOp::Ge => Bounds {
                            ts_lo: Some(floor),
                            ..Bounds::ALL
                        },
                    })
                }
            }
        }
    }
}

/// Bounds of all (ANDed) conditions for `partition`.
pub fn partition_bounds(meta: &MetaCols, conds: &[Cond], partition: i32) -> Bounds {
    conds
        .iter()
        .fold(Bounds::ALL, |b, c| b.and(bounds(meta, c, partition)))
}

/// Text of pushed conditions for EXPLAIN (`_partition = 1 AND _offset >= 100`).
pub fn describe(table: &TableDef, conds: &[Cond]) -> String {
    fn one(t: &TableDef, c: &Cond) -> String {
        let name = |col: &i16| t.col(*col).map(|c| c.name.clone()).unwrap_or_default();
        match c {
            Cond::Cmp { col, op, arg } => format!(
                "{} {} {}",
                name(col),
                op.sql(),
                crate::fdw::cond::operand_text(arg)
            ),
            Cond::In { col, list, negated } => format!(
                "{} {} {}",
                name(col),
                if *negated { "NOT IN" } else { "IN" },
                crate::fdw::cond::operand_text(list)
            ),
            Cond::IsNull { col, negated } => format!(
                "{} IS {}NULL",
                name(col),
                if *negated { "NOT " } else { "" }
            ),
            Cond::Like { col, pattern } => format!(
                "{} LIKE {}",
                name(col),
                crate::fdw::cond::operand_text(pattern)
            ),
            Cond::And(v) => format!(
                "({})",
                v.iter()
                    .map(|c| one(t, c))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Cond::Or(v) => format!(
                "({})",
                v.iter().map(|c| one(t, c)).collect::<Vec<_>>().join(" OR ")
            ),
        }
    }
    conds
        .iter()
        .map(|c| one(table, c))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdw::cond::Operand::Val as V;

    const META: MetaCols = MetaCols {
        partition: Some(1),
        offset: Some(2),
        timestamp: Some(3),
    };

    fn cmp(col: i16, op: CmpOp, v: Val) -> Cond {
        Cond::Cmp { col, op, arg: V(v) }
    }

    #[test]
    fn offset_and_partition_bounds() {
        let conds = vec![
            cmp(1, CmpOp::Eq, Val::Int(2)),
            cmp(2, CmpOp::Ge, Val::Int(100)),
            cmp(2, CmpOp::Lt, Val::Int(200)),
        ];
        assert!(partition_bounds(&META, &conds, 0).empty);
        let b = partition_bounds(&META, &conds, 2);
        assert_eq!((b.off_lo, b.off_hi), (100, 200));
        // BETWEEN is two comparisons; = is a one-offset range.
        let b = partition_bounds(&META, &[cmp(2, CmpOp::Eq, Val::Int(7))], 0);
        assert_eq!((b.off_lo, b.off_hi), (7, 8));
        // A contradiction reads nothing.
        assert!(
            partition_bounds(
                &META,
                &[
                    cmp(2, CmpOp::Gt, Val::Int(9)),
                    cmp(2, CmpOp::Lt, Val::Int(5))
                ],
                0
            )
            .empty
        );
        // Comparing with NULL reads nothing.
        assert!(partition_bounds(&META, &[cmp(2, CmpOp::Gt, Val::Null)], 0).empty);
    }

    #[test]
    fn per_partition_combinations_through_or() {
        let c = Cond::Or(vec![
            Cond::And(vec![
                cmp(1, CmpOp::Eq, Val::Int(0)),
                cmp(2, CmpOp::Ge, Val::Int(10)),
            ]),
            Cond::And(vec![
                cmp(1, CmpOp::Eq, Val::Int(1)),
                cmp(2, CmpOp::Lt, Val::Int(5)),
            ]),
        ]);
        let p0 = partition_bounds(&META, std::slice::from_ref(&c), 0);
        let p1 = partition_bounds(&META, std::slice::from_ref(&c), 1);
        let p2 = partition_bounds(&META, std::slice::from_ref(&c), 2);
        assert_eq!((p0.off_lo, p0.off_hi), (10, i64::MAX));
        assert_eq!((p1.off_lo, p1.off_hi), (0, 5));
        assert!(p2.empty);
        assert_eq!(ship(&META, &c), Ship::Superset);
        // IN on partitions.
        let c = Cond::In {
            col: 1,
            list: V(Val::Array(vec![Val::Int(0), Val::Int(2)])),
            negated: false,
        };
        assert!(!bounds(&META, &c, 2).empty && bounds(&META, &c, 1).empty);
        assert_eq!(ship(&META, &c), Ship::Exact);
        // Other columns are not shipped.
        assert_eq!(ship(&META, &cmp(9, CmpOp::Eq, Val::Int(1))), Ship::No);
        assert_eq!(
            ship(
                &META,
                &Cond::Or(vec![
                    cmp(1, CmpOp::Eq, Val::Int(1)),
                    cmp(9, CmpOp::Eq, Val::Int(1))
                ])
            ),
            Ship::No
        );
    }

    #[test]
    fn timestamp_bounds_round_outward() {
        let t = Val::Ts(1_000_500); // 1000.5 ms
        let b = partition_bounds(
            &META,
            &[
                cmp(3, CmpOp::Ge, t.clone()),
                cmp(3, CmpOp::Lt, Val::Ts(2_000_000)),
            ],
            0,
        );
        assert_eq!((b.ts_lo, b.ts_hi), (Some(1000), Some(2000)));
        let b = partition_bounds(&META, &[cmp(3, CmpOp::Le, t)], 0);
        assert_eq!(b.ts_hi, Some(1001));
        assert_eq!(ship(&META, &cmp(3, CmpOp::Ge, Val::Ts(0))), Ship::Superset);
    }

    #[test]
    fn timestamps_before_the_epoch_bound_nothing_or_everything() {
        let ts = |s: &str| Val::Ts(crate::fdw::value::parse_datetime(s).unwrap());
        let b1960 = ts("1960-01-01T00:00:00Z");
        // Nothing is before the epoch (or at it, for <): an empty range, no lookup.
        for op in [CmpOp::Lt, CmpOp::Le, CmpOp::Eq] {
            assert!(
                partition_bounds(&META, &[cmp(3, op, b1960.clone())], 0).empty,
                "{op:?}"
            );
        }
        assert!(partition_bounds(&META, &[cmp(3, CmpOp::Lt, Val::Ts(0))], 0).empty);
        // At the epoch itself, <= keeps timestamp 0.
        let b = partition_bounds(&META, &[cmp(3, CmpOp::Le, Val::Ts(0))], 0);
        assert_eq!((b.empty, b.ts_lo, b.ts_hi), (false, None, Some(1)));
        // A lower bound before (or at) the epoch bounds nothing: every message matches.
        for op in [CmpOp::Gt, CmpOp::Ge] {
            for v in [b1960.clone(), Val::Ts(0), Val::Ts(i64::MIN)] {
                assert_eq!(
                    partition_bounds(&META, &[cmp(3, op, v.clone())], 0),
                    Bounds::ALL,
                    "{op:?} {v:?}"
                );
            }
        }
        // Mixed with a later bound, only the later one is looked up; never a negative time.
        let b = partition_bounds(
            &META,
            &[
                cmp(3, CmpOp::Gt, b1960.clone()),
                cmp(3, CmpOp::Lt, Val::Ts(5_000_000)),
            ],
            0,
        );
        assert_eq!((b.ts_lo, b.ts_hi), (None, Some(5000)));
        let c = Cond::In {
            col: 3,
            list: V(Val::Array(vec![b1960.clone(), Val::Ts(2_000_000)])),
            negated: false,
        };
        assert_eq!(
            (bounds(&META, &c, 0).ts_lo, bounds(&META, &c, 0).ts_hi),
            (None, Some(2001))
        );
        let c = Cond::In {
            col: 3,
            list: V(Val::Array(vec![b1960.clone()])),
            negated: false,
        };
        assert!(bounds(&META, &c, 0).empty);
        // OR with a pre-epoch branch keeps the other branch only.
        let c = Cond::Or(vec![
            cmp(3, CmpOp::Lt, b1960),
            cmp(2, CmpOp::Lt, Val::Int(4)),
        ]);
        let b = bounds(&META, &c, 0);
        assert_eq!((b.off_lo, b.off_hi, b.ts_lo, b.ts_hi), (0, 4, None, None));
    }

    #[test]
    fn infinite_timestamps_do_not_overflow() {
        let inf = Val::Ts(i64::MAX);
        for op in [CmpOp::Lt, CmpOp::Le] {
            let b = partition_bounds(&META, &[cmp(3, op, inf.clone())], 0);
            assert!(
                !b.empty && b.ts_lo.is_none() && b.ts_hi.unwrap() > 0,
                "{op:?}"
            );
        }
        for op in [CmpOp::Eq, CmpOp::Gt] {
            let b = partition_bounds(&META, &[cmp(3, op, inf.clone())], 0);
            assert!(!b.empty && b.ts_lo == Some(i64::MAX / 1000), "{op:?}");
        }
        assert!(partition_bounds(&META, &[cmp(3, CmpOp::Lt, Val::Ts(i64::MIN))], 0).empty);
    }

    #[test]
    fn parameters_bound_nothing_until_resolved() {
        // Planned with parameters (an initplan, a nested-loop value, $1): no bound at all, so
        // a scan started before they are known could only read more, never fewer, messages.
        let planned = vec![
            Cond::Cmp {
                col: 2,
                op: CmpOp::Eq,
                arg: Operand::Param(0),
            },
            Cond::Cmp {
                col: 1,
                op: CmpOp::Eq,
                arg: Operand::Param(1),
            },
        ];
        assert_eq!(partition_bounds(&META, &planned, 1), Bounds::ALL);
        let resolved: Vec<Cond> = planned
            .iter()
            .map(|c| c.resolve(&[Val::Int(1), Val::Int(0)]))
            .collect();
        let b = partition_bounds(&META, &resolved, 0);
        assert_eq!((b.empty, b.off_lo, b.off_hi), (false, 1, 2));
        assert!(partition_bounds(&META, &resolved, 1).empty);
        // Every operator against a resolved value, as (SELECT 1) gives it.
        let one = |op| partition_bounds(&META, &[cmp(2, op, Val::Int(1))], 0);
        assert_eq!((one(CmpOp::Lt).off_lo, one(CmpOp::Lt).off_hi), (0, 1));
        assert_eq!((one(CmpOp::Le).off_lo, one(CmpOp::Le).off_hi), (0, 2));
        assert_eq!(
            (one(CmpOp::Gt).off_lo, one(CmpOp::Gt).off_hi),
            (2, i64::MAX)
        );
        assert_eq!(
            (one(CmpOp::Ge).off_lo, one(CmpOp::Ge).off_hi),
            (1, i64::MAX)
        );
        assert_eq!(one(CmpOp::Ne), Bounds::ALL);
        // A parameter that turns out NULL matches nothing.
        let null = Cond::Cmp {
            col: 2,
            op: CmpOp::Eq,
            arg: Operand::Param(0),
        }
        .resolve(&[Val::Null]);
        assert!(bounds(&META, &null, 0).empty);
    }
}
