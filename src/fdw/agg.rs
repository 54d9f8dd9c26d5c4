//! Pure description of an aggregation pushed to the remote side (GROUP BY keys, aggregates and
//! the output columns in the scan's target-list order). The Postgres glue (`pg/upper.rs`)
//! builds it from the planner's grouping target, asks the wrapper's [`Planner`] whether it is
//! exact remotely, and stores it in the plan inside the [`Request`](super::cond::Request).
use crate::fdw::value::PgType;
use serde::{Deserialize, Serialize};

/// A GROUP BY key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GroupKey {
    /// A column, as is.
    Col(i16),
    /// `date_trunc('<unit>', col)` of a timestamp / timestamptz column (timestamptz truncates
    /// in the session TimeZone, read when the scan starts).
    Trunc { col: i16, unit: TruncUnit },
}

impl GroupKey {
    pub fn col(&self) -> i16 {
        match self {
            GroupKey::Col(c) | GroupKey::Trunc { col: c, .. } => *c,
        }
    }
}

/// The `date_trunc` units that are calendar intervals on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TruncUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl TruncUnit {
    pub fn from_pg(unit: &str) -> Option<TruncUnit> {
        Some(match unit.to_ascii_lowercase().as_str() {
            "second" | "seconds" => TruncUnit::Second,
            "minute" | "minutes" => TruncUnit::Minute,
            "hour" | "hours" => TruncUnit::Hour,
            "day" | "days" => TruncUnit::Day,
            "week" | "weeks" => TruncUnit::Week,
            "month" | "months" => TruncUnit::Month,
            "quarter" => TruncUnit::Quarter,
            "year" | "years" => TruncUnit::Year,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            TruncUnit::Second => "second",
            TruncUnit::Minute => "minute",
            TruncUnit::Hour => "hour",
            TruncUnit::Day => "day",
            TruncUnit::Week => "week",
            TruncUnit::Month => "month",
            TruncUnit::Quarter => "quarter",
            TruncUnit::Year => "year",
        }
    }
}

/// An aggregate function over the rows of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AggFn {
    CountStar,
    /// `count(col)`: rows where the column is not NULL.
    Count(i16),
    Min(i16),
    Max(i16),
    Sum(i16),
}

impl AggFn {
    pub fn col(&self) -> Option<i16> {
        match self {
            AggFn::CountStar => None,
            AggFn::Count(c) | AggFn::Min(c) | AggFn::Max(c) | AggFn::Sum(c) => Some(*c),
        }
    }
}

/// One output column of the aggregate scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Output {
    /// The value of group key n.
    Key(usize),
    /// The value of aggregate n.
    Agg(usize),
}

/// What an aggregate scan computes: one row per group (one row in all without keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggRequest {
    /// The foreign table (an upper-relation scan has no scan relation of its own).
    pub relid: u32,
    pub keys: Vec<GroupKey>,
    pub aggs: Vec<AggFn>,
    /// The scan's columns, in target-list order, with their Postgres types.
    pub outputs: Vec<(Output, PgType)>,
}

impl AggRequest {
    /// The output for an aggregate, adding it if new.
    pub fn agg(&mut self, f: AggFn) -> usize {
        match self.aggs.iter().position(|a| *a == f) {
            Some(i) => i,
            None => {
                self.aggs.push(f);
                self.aggs.len() - 1
            }
        }
    }
    /// The index of a group key, adding it if new.
    pub fn key(&mut self, k: GroupKey) -> usize {
        match self.keys.iter().position(|a| *a == k) {
            Some(i) => i,
            None => {
                self.keys.push(k);
                self.keys.len() - 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_dedup() {
        assert_eq!(TruncUnit::from_pg("Hour"), Some(TruncUnit::Hour));
        assert_eq!(TruncUnit::from_pg("decade"), None);
        assert_eq!(TruncUnit::from_pg("milliseconds"), None);
        let mut a = AggRequest {
            relid: 1,
            keys: vec![],
            aggs: vec![],
            outputs: vec![],
        };
        assert_eq!(a.agg(AggFn::CountStar), 0);
        assert_eq!(a.agg(AggFn::Count(2)), 1);
        assert_eq!(a.agg(AggFn::CountStar), 0);
        assert_eq!(a.key(GroupKey::Col(3)), 0);
        assert_eq!(a.key(GroupKey::Col(3)), 0);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<AggRequest>(&json).unwrap(), a);
    }
}
