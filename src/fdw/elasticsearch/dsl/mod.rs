//! Pure translation of WHERE / ORDER BY into Elasticsearch query DSL, and of `_source`
//! documents back into column values.
//!
//! Every translated filter matches a superset of what Postgres keeps (Postgres rechecks every
//! clause), and is *exact* only where Elasticsearch provably compares like Postgres does: then
//! LIMIT can be shipped too. Anything else is not shipped. The delicate parts:
//!
//! - a column is filtered remotely only when its Postgres type and the field's mapping agree
//!   (`integer` column on an integer field, `double precision` on `double`, text on keyword…);
//!   arrays, `char(n)`, lossy or coerced numbers and fields whose indexed values differ from
//!   `_source` (`ignore_above`, `normalizer`, `null_value`, `ignore_malformed`, `index: false`)
//!   are left to Postgres;
//! - constants Elasticsearch cannot take (integers outside the field's range, NaN, ±Infinity,
//!   empty ids) become the answer Postgres would give (no row, every non-NULL row…);
//! - analysed `text` fields only support phrase matches (a superset of equality), and keyword
//!   ranges/sorts compare bytes, which equals Postgres' order only under the C collation
//!   (`pg/plan.rs` checks collations for sorts; ranges on text are not shipped);
//! - dates are indexed at millisecond precision while Postgres reads microseconds from
//!   `_source`: date filters are supersets with bounds widened outward.
//!
//! [`filter`] builds WHERE clauses, [`sort`](self::sort) ORDER BY keys (and the ties a scan
//! must fetch past a shipped LIMIT).
mod filter;
mod sort;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_exact;

pub use sort::{sort, sort_exact, sort_keys_exact, tie_prefix, ties};

use crate::fdw::cond::Cond;
use crate::fdw::value::PgType;
use crate::fdw::{Ship, TableDef};
use serde_json::{json, Map, Value};

/// Numeric field types Elasticsearch compares exactly (integers and `double`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    Byte,
    Short,
    Integer,
    Long,
    UnsignedLong,
    Double,
}

impl Num {
    /// The values the field can hold (integers only).
    fn range(self) -> (i128, i128) {
        match self {
            Num::Byte => (i8::MIN as i128, i8::MAX as i128),
            Num::Short => (i16::MIN as i128, i16::MAX as i128),
            Num::Integer => (i32::MIN as i128, i32::MAX as i128),
            Num::Long => (i64::MIN as i128, i64::MAX as i128),
            Num::UnsignedLong => (0, u64::MAX as i128),
            // Not used for doubles (they go through `filter::double_cmp`).
            Num::Double => (i64::MIN as i128, i64::MAX as i128),
        }
    }
}

/// How Elasticsearch indexes a field, as far as filtering is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Keyword,
    /// Analysed text; `keyword_sub` names an exact sub-field (`name.keyword`) if mapped.
    Text,
    /// long, integer, short, byte, unsigned_long, double over a column of a matching type:
    /// exact comparisons.
    Number(Num),
    /// A number Elasticsearch indexes unlike Postgres reads it (float, half_float,
    /// scaled_float; coerced fractions; a type mismatch): only IS [NOT] NULL ships.
    LossyNumber,
    /// `date` (milliseconds) or `date_nanos` (`nanos`).
    Date {
        nanos: bool,
    },
    Bool,
    Id,
    Index,
    Score,
    Other,
}

impl FieldKind {
    pub fn from_es(t: &str) -> FieldKind {
        match t {
            // Only plain keywords compare and sort like text under the C collation: `ip`
            // matches CIDR ranges and other spellings, `version` sorts by semver, a
            // `constant_keyword` exists even where `_source` lacks it, `wildcard` is
            // approximate.
            "keyword" => FieldKind::Keyword,
            "text" | "match_only_text" => FieldKind::Text,
            "long" => FieldKind::Number(Num::Long),
            "integer" => FieldKind::Number(Num::Integer),
            "short" => FieldKind::Number(Num::Short),
            "byte" => FieldKind::Number(Num::Byte),
            "unsigned_long" => FieldKind::Number(Num::UnsignedLong),
            "double" => FieldKind::Number(Num::Double),
            "float" | "half_float" | "scaled_float" => FieldKind::LossyNumber,
            "date" => FieldKind::Date { nanos: false },
            "date_nanos" => FieldKind::Date { nanos: true },
            "boolean" => FieldKind::Bool,
            _ => FieldKind::Other,
        }
    }

    /// Best guess from the Postgres column type when the mapping is not known (plan time).
    fn guess(ty: Option<&PgType>) -> FieldKind {
        match ty {
            Some(PgType::Int2) => FieldKind::Number(Num::Short),
            Some(PgType::Int4) => FieldKind::Number(Num::Integer),
            Some(PgType::Int8) => FieldKind::Number(Num::Long),
            Some(PgType::Float8) => FieldKind::Number(Num::Double),
            Some(PgType::Numeric | PgType::Float4) => FieldKind::LossyNumber,
            Some(PgType::Bool) => FieldKind::Bool,
            Some(PgType::Timestamptz | PgType::Timestamp | PgType::Date) => {
                FieldKind::Date { nanos: false }
            }
            // Could be keyword (exact) or text (phrase): assume the weaker.
            Some(PgType::Text) => FieldKind::Text,
            _ => FieldKind::Other,
        }
    }

    /// The kind as far as a column of type `ty` can use it: Elasticsearch compares like
    /// Postgres only when the column reads the field's values unchanged.
    fn for_column(self, ty: Option<&PgType>, type_oid: u32) -> FieldKind {
        use FieldKind as K;
        match (self, ty) {
            // bpchar compares ignoring trailing blanks: Elasticsearch does not.
            (K::Keyword | K::Text, Some(PgType::Text)) if type_oid != BPCHAR_OID => self,
            (K::Number(n), Some(PgType::Int2 | PgType::Int4 | PgType::Int8))
                if n != Num::Double =>
            {
                self
            }
            (K::Number(Num::Double), Some(PgType::Float8)) => self,
            // Integer fields coerce 1.5 to 1 (so a numeric/float column may differ), a double
            // holds integers above 2^53 inexactly, float/half_float/scaled_float are lossy.
            (
                K::Number(_) | K::LossyNumber,
                Some(
                    PgType::Int2
                    | PgType::Int4
                    | PgType::Int8
                    | PgType::Float4
                    | PgType::Float8
                    | PgType::Numeric,
                ),
            ) => K::LossyNumber,
            (K::Date { .. }, Some(PgType::Timestamptz | PgType::Timestamp | PgType::Date)) => self,
            (K::Bool, Some(PgType::Bool)) => self,
            _ => K::Other,
        }
    }
}

/// `pg_type.oid` of `bpchar` (`char(n)`).
const BPCHAR_OID: u32 = 1042;

/// What an index mapping says about one field (see `mapping.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedField {
    /// The mapping type (`keyword`, `long`, …).
    pub ty: String,
    /// For text fields: an exact keyword sub-field (`name.keyword`) and its `ignore_above`
    /// (in UTF-16 code units, as Elasticsearch counts).
    pub keyword_sub: Option<(String, Option<u64>)>,
    /// The indexed values may differ from `_source`: `ignore_above`, `normalizer`,
    /// `null_value`, `ignore_malformed`, `index: false`, or, for text, a `search_analyzer` or
    /// `index_options` without positions (phrase matching is then no superset of equality).
    pub altered: bool,
}

/// Field path → what the index mapping says about it.
pub type MappingLookup<'a> = &'a dyn Fn(&str) -> Option<MappedField>;

/// A column as an Elasticsearch field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub path: String,
    pub kind: FieldKind,
    /// For text fields: an exact keyword sub-field, e.g. `name.keyword`.
    pub keyword_sub: Option<String>,
    /// `ignore_above` of the keyword sub-field: longer strings are not in it.
    pub sub_ignore_above: Option<u64>,
    /// For text fields: a phrase match is a superset of equality.
    pub phrase: bool,
    /// The column's Postgres type.
    pub col: Option<PgType>,
    /// A value that does not fit the column reads as NULL (`on_error 'null'`): IS NULL is
    /// then true where the field exists.
    pub lenient: bool,
}

impl Field {
    fn meta(path: &str, kind: FieldKind, col: Option<PgType>) -> Field {
        Field {
            path: path.into(),
            kind,
            keyword_sub: None,
            sub_ignore_above: None,
            phrase: false,
            col,
            lenient: false,
        }
    }
}

/// Field of every column: `_id`/`_score`/`_index` are metadata; others map by the `field`
/// option or the column name; the index mapping (`mapping`), else `es_type` (set by IMPORT
/// FOREIGN SCHEMA), else the column type tells how it is indexed.
pub fn fields(table: &TableDef, mapping: Option<MappingLookup<'_>>) -> Vec<(i16, Field)> {
    let lenient = table.opt("on_error") == Some("null");
    table
        .columns
        .iter()
        .map(|c| {
            let f = match c.name.as_str() {
                "_id" => Field::meta("_id", FieldKind::Id, c.ty.clone()),
                "_index" => Field::meta("_index", FieldKind::Index, c.ty.clone()),
                "_score" => Field::meta("_score", FieldKind::Score, c.ty.clone()),
                name => {
                    let path = c
                        .opts
                        .get("field")
                        .cloned()
                        .unwrap_or_else(|| name.to_string());
                    let from_map = mapping.and_then(|m| m(&path));
                    let (kind, sub) = match (&from_map, c.opts.get("es_type")) {
                        (Some(m), _) => {
                            let k = FieldKind::from_es(&m.ty);
                            // Keyword, number, date and boolean fields whose indexed values may
                            // differ from `_source` compare unlike Postgres.
                            let k = if m.altered && k != FieldKind::Text {
                                FieldKind::Other
                            } else {
                                k
                            };
                            (k, m.keyword_sub.clone())
                        }
                        (None, Some(t)) => (FieldKind::from_es(t), None),
                        (None, None) => (FieldKind::guess(c.ty.as_ref()), None),
                    };
                    // Nested values are read through serde_json's `Value`; its float parsing
                    // is exact (the `float_roundtrip` feature), so nested doubles ship too.
                    let kind = kind.for_column(c.ty.as_ref(), c.type_oid);
                    let (keyword_sub, sub_ignore_above) = match sub {
                        Some((s, ia)) if kind == FieldKind::Text => (Some(s), ia),
                        _ => (None, None),
                    };
                    Field {
                        path,
                        kind,
                        keyword_sub,
                        sub_ignore_above,
                        phrase: kind == FieldKind::Text && !from_map.is_some_and(|m| m.altered),
                        col: c.ty.clone(),
                        lenient,
                    }
                }
            };
            (c.attnum, f)
        })
        .collect()
}

fn field_of(fields: &[(i16, Field)], col: i16) -> Option<&Field> {
    fields.iter().find(|(a, _)| *a == col).map(|(_, f)| f)
}

/// A LIKE pattern that is a plain prefix (`abc%`), as the prefix.
pub fn like_prefix(p: &str) -> Option<&str> {
    let body = p.strip_suffix('%')?;
    (!body.is_empty() && !body.contains(['%', '_', '\\'])).then_some(body)
}

/// How well a condition goes remote, given the columns as fields (from column options,
/// Postgres types and, when Elasticsearch answered, the index mapping). With parameters it is
/// the plan-time estimate; the scan asks again with the values (and keeps LIMIT remote only if
/// the answer is still [`Ship::Exact`]).
pub fn ship_with(f: &[(i16, Field)], c: &Cond) -> Ship {
    filter::build(f, c).ship()
}

/// The `query` of a search: the table's base query ANDed with the shipped conditions.
pub fn query(f: &[(i16, Field)], conds: &[Cond], base: Option<&Value>) -> Value {
    let mut filters: Vec<Value> = vec![];
    for c in conds {
        if let Some(q) = filter::build(f, c).into_json() {
            filters.push(q);
        }
    }
    // The table's own query scores (`_score`); the pushed conditions only filter.
    match (base, filters.len()) {
        (None, 0) => json!({"match_all": {}}),
        (None, 1) => filters.pop().unwrap_or_else(|| json!({"match_all": {}})),
        (None, _) => json!({"bool": {"filter": filters}}),
        (Some(b), 0) => b.clone(),
        (Some(b), _) => json!({"bool": {"must": [b], "filter": filters}}),
    }
}

/// Writes `v` at dotted `path` of `doc`, creating objects on the way.
pub fn set_field(doc: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let entry = doc
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(o) = entry {
                set_field(o, rest, v);
            }
        }
    }
}

/// The Postgres type for an Elasticsearch field type (IMPORT FOREIGN SCHEMA).
pub fn pg_type_for_es(t: &str) -> &'static str {
    match t {
        "keyword" | "text" | "constant_keyword" | "wildcard" | "match_only_text" | "ip"
        | "version" => "text",
        "long" => "bigint",
        "unsigned_long" => "numeric",
        "integer" => "integer",
        "short" | "byte" => "smallint",
        "double" => "double precision",
        "float" | "half_float" => "real",
        "scaled_float" => "numeric",
        "boolean" => "boolean",
        "date" | "date_nanos" => "timestamptz",
        "binary" => "text",
        _ => "jsonb",
    }
}
