//! Flink SQL data types of pipeline tables: a strict parser (user-declared types never reach
//! SQL unparsed), the canonical rendering, and assignability (what Flink would accept without
//! rejecting or silently truncating).
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlinkType {
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal(u32, u32),
    /// CHAR(n)
    Char(u32),
    /// VARCHAR(n); STRING is VARCHAR(2147483647).
    Varchar(u32),
    Bytes,
    Date,
    Time(u32),
    Timestamp(u32),
    TimestampLtz(u32),
    Array(Box<FlinkType>),
    Map(Box<FlinkType>, Box<FlinkType>),
    Row(Vec<(String, FlinkType)>),
}

pub const STRING_LEN: u32 = 2_147_483_647;

impl fmt::Display for FlinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FlinkType::*;
        match self {
            Boolean => write!(f, "BOOLEAN"),
            TinyInt => write!(f, "TINYINT"),
            SmallInt => write!(f, "SMALLINT"),
            Int => write!(f, "INT"),
            BigInt => write!(f, "BIGINT"),
            Float => write!(f, "FLOAT"),
            Double => write!(f, "DOUBLE"),
            Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            Char(n) => write!(f, "CHAR({n})"),
            Varchar(n) if *n == STRING_LEN => write!(f, "STRING"),
            Varchar(n) => write!(f, "VARCHAR({n})"),
            Bytes => write!(f, "BYTES"),
            Date => write!(f, "DATE"),
            Time(p) => write!(f, "TIME({p})"),
            Timestamp(p) => write!(f, "TIMESTAMP({p})"),
            TimestampLtz(p) => write!(f, "TIMESTAMP_LTZ({p})"),
            Array(t) => write!(f, "ARRAY<{t}>"),
            Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            Row(fields) => {
                write!(f, "ROW<")?;
                for (i, (n, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{} {t}", crate::core::quote::ident(n))?;
                }
                write!(f, ">")
            }
        }
    }
}

impl FlinkType {
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            FlinkType::TinyInt | FlinkType::SmallInt | FlinkType::Int | FlinkType::BigInt
        )
    }
    pub fn is_numeric(&self) -> bool {
        self.is_integer()
            || matches!(
                self,
                FlinkType::Float | FlinkType::Double | FlinkType::Decimal(..)
            )
    }
    pub fn is_string(&self) -> bool {
        matches!(self, FlinkType::Char(_) | FlinkType::Varchar(_))
    }
    pub fn is_time_attribute_candidate(&self) -> bool {
        matches!(self, FlinkType::Timestamp(3) | FlinkType::TimestampLtz(3))
    }
    pub fn is_temporal(&self) -> bool {
        matches!(
            self,
            FlinkType::Date
                | FlinkType::Time(_)
                | FlinkType::Timestamp(_)
                | FlinkType::TimestampLtz(_)
        )
    }

    fn int_digits(&self) -> Option<u32> {
        Some(match self {
            FlinkType::TinyInt => 3,
            FlinkType::SmallInt => 5,
            FlinkType::Int => 10,
            FlinkType::BigInt => 19,
            _ => return None,
        })
    }

    fn int_rank(&self) -> Option<u8> {
        Some(match self {
            FlinkType::TinyInt => 1,
            FlinkType::SmallInt => 2,
            FlinkType::Int => 3,
            FlinkType::BigInt => 4,
            _ => return None,
        })
    }

    /// Whether a value of type `self` can be written into a column of type `to` without Flink
    /// rejecting it or silently losing data (narrowing, truncation, scale loss).
    pub fn assignable_to(&self, to: &FlinkType) -> bool {
        use FlinkType::*;
        if self == to {
            return true;
        }
        match (self, to) {
            (a, b) if a.int_rank().is_some() && b.int_rank().is_some() => {
                a.int_rank() <= b.int_rank()
            }
            (a, Decimal(p, s)) if a.is_integer() => {
                a.int_digits().is_some_and(|d| p.saturating_sub(*s) >= d)
            }
            (a, Float | Double) if a.is_integer() => true,
            (Float, Double) => true,
            (Decimal(p1, s1), Decimal(p2, s2)) => {
                s2 >= s1 && p2.saturating_sub(*s2) >= p1.saturating_sub(*s1)
            }
            (Decimal(..), Double) => true,
            (Char(n) | Varchar(n), Varchar(m)) => n <= m,
            (Char(n), Char(m)) => n == m,
            (Timestamp(p), Timestamp(q))
            | (TimestampLtz(p), TimestampLtz(q))
            | (Time(p), Time(q)) => p <= q,
            (Array(a), Array(b)) => a.assignable_to(b),
            (Map(k1, v1), Map(k2, v2)) => k1.assignable_to(k2) && v1.assignable_to(v2),
            (Row(a), Row(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|((_, x), (_, y))| x.assignable_to(y))
            }
            _ => false,
        }
    }

    /// Type of SUM over this type (Flink keeps integer types, widens DECIMAL precision to 38).
    pub fn sum_type(&self) -> Option<FlinkType> {
        match self {
            t if t.is_integer() => Some(t.clone()),
            FlinkType::Float | FlinkType::Double => Some(self.clone()),
            FlinkType::Decimal(_, s) => Some(FlinkType::Decimal(38, *s)),
            _ => None,
        }
    }

    /// Type of AVG over this type (Flink keeps the argument's type; DECIMAL gets scale ≥ 6).
    pub fn avg_type(&self) -> Option<FlinkType> {
        match self {
            t if t.is_integer() || matches!(t, FlinkType::Float | FlinkType::Double) => {
                Some(t.clone())
            }
            FlinkType::Decimal(_, s) => Some(FlinkType::Decimal(38, (*s).max(6))),
            _ => None,
        }
    }
}

/// Parses a type as users write it: `BIGINT`, `decimal(10,2)`, `VARCHAR(20)`, `STRING`,
/// `TIMESTAMP(3)`, `TIMESTAMP_LTZ(3)`, `ARRAY<INT>`, `MAP<STRING, INT>`, `ROW<a INT, b STRING>`.
/// A declared column type's nullability suffix: `BIGINT NOT NULL` → ("BIGINT", true);
/// `BIGINT NULL` or `BIGINT` → ("BIGINT", false).
pub fn split_not_null(s: &str) -> (&str, bool) {
    /// `t` without its last word when that word is `word` (and something precedes it).
    fn strip_word<'a>(t: &'a str, word: &str) -> Option<&'a str> {
        let t = t.trim_end();
        let cut = t.rfind(char::is_whitespace)?;
        t[cut..]
            .trim()
            .eq_ignore_ascii_case(word)
            .then(|| t[..cut].trim_end())
    }
    let t = s.trim_end();
    match strip_word(t, "null") {
        Some(rest) => match strip_word(rest, "not") {
            Some(ty) if !ty.is_empty() => (ty, true),
            _ => (rest, false),
        },
        None => (t, false),
    }
}

pub fn parse(s: &str) -> Result<FlinkType, String> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    let t = p.ty(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected text after the type at position {}",
            p.i + 1
        ));
    }
    Ok(t)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn word(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_uppercase()
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.i < self.s.len() && self.s[self.i] == c {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect_char(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at position {}",
                c as char,
                self.i + 1
            ))
        }
    }
    fn number(&mut self) -> Result<u32, String> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("expected a number at position {}", start + 1))
    }
    fn args(&mut self) -> Result<Vec<u32>, String> {
        let mut v = Vec::new();
        if self.eat(b'(') {
            v.push(self.number()?);
            while self.eat(b',') {
                v.push(self.number()?);
            }
            self.expect_char(b')')?;
        }
        Ok(v)
    }
    fn ident(&mut self) -> Result<String, String> {
        self.ws();
        if self.eat(b'`') {
            let mut out = Vec::new();
            loop {
                if self.i >= self.s.len() {
                    return Err("unterminated `identifier`".into());
                }
                let c = self.s[self.i];
                self.i += 1;
                if c == b'`' {
                    if self.i < self.s.len() && self.s[self.i] == b'`' {
                        out.push(b'`');
                        self.i += 1;
                    } else {
                        break;
                    }
                } else {
                    out.push(c);
                }
            }
            return String::from_utf8(out).map_err(|_| "identifier is not UTF-8".into());
        }
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a field name at position {}", start + 1));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).to_string())
    }
    fn ty(&mut self, depth: usize) -> Result<FlinkType, String> {
        use FlinkType::*;
        if depth > 16 {
            return Err("type nested too deeply".into());
        }
        let w = self.word();
        let t = match w.as_str() {
            "BOOLEAN" | "BOOL" => Boolean,
            "TINYINT" => TinyInt,
            "SMALLINT" => SmallInt,
            "INT" | "INTEGER" => Int,
            "BIGINT" => BigInt,
            "FLOAT" | "REAL" => Float,
            "DOUBLE" => {
                // DOUBLE PRECISION
                let save = self.i;
                if self.word() != "PRECISION" {
                    self.i = save;
                }
                Double
            }
            "DECIMAL" | "DEC" | "NUMERIC" => match self.args()?.as_slice() {
                [] => Decimal(10, 0),
                [p] => Decimal(*p, 0),
                [p, s] => Decimal(*p, *s),
                _ => return Err("DECIMAL takes (precision, scale)".into()),
            },
            "CHAR" => Char(self.one_arg(1)?),
            "VARCHAR" => Varchar(self.one_arg(1)?),
            "STRING" => Varchar(STRING_LEN),
            "BYTES" => Bytes,
            "DATE" => Date,
            "TIME" => Time(self.one_arg(0)?),
            "TIMESTAMP" => Timestamp(self.one_arg(6)?),
            "TIMESTAMP_LTZ" => TimestampLtz(self.one_arg(6)?),
            "ARRAY" => {
                self.expect_char(b'<')?;
                let e = self.ty(depth + 1)?;
                self.expect_char(b'>')?;
                Array(Box::new(e))
            }
            "MAP" => {
                self.expect_char(b'<')?;
                let k = self.ty(depth + 1)?;
                self.expect_char(b',')?;
                let v = self.ty(depth + 1)?;
                self.expect_char(b'>')?;
                Map(Box::new(k), Box::new(v))
            }
            "ROW" => {
                self.expect_char(b'<')?;
                let mut fields = Vec::new();
                loop {
                    let n = self.ident()?;
                    let t = self.ty(depth + 1)?;
                    fields.push((n, t));
                    if !self.eat(b',') {
                        break;
                    }
                }
                self.expect_char(b'>')?;
                Row(fields)
            }
            "" => return Err("empty type".into()),
            other => return Err(format!("unknown type {other}")),
        };
        if let Decimal(p, s) = t {
            if !(1..=38).contains(&p) || s > p {
                return Err(format!(
                    "DECIMAL({p}, {s}) is out of range: precision 1-38, scale 0-precision"
                ));
            }
        }
        if let Char(n) | Varchar(n) = t {
            if n == 0 {
                return Err("length must be at least 1".into());
            }
        }
        if let Time(p) | Timestamp(p) | TimestampLtz(p) = t {
            if p > 9 {
                return Err(format!("precision {p} is out of range 0-9"));
            }
        }
        Ok(t)
    }
    fn one_arg(&mut self, default: u32) -> Result<u32, String> {
        match self.args()?.as_slice() {
            [] => Ok(default),
            [n] => Ok(*n),
            _ => Err("takes one argument".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_canonically() {
        for (input, out) in [
            ("bigint", "BIGINT"),
            ("decimal(10,2)", "DECIMAL(10, 2)"),
            ("string", "STRING"),
            ("varchar(20)", "VARCHAR(20)"),
            ("timestamp(3)", "TIMESTAMP(3)"),
            ("TIMESTAMP_LTZ(3)", "TIMESTAMP_LTZ(3)"),
            ("ARRAY<int>", "ARRAY<INT>"),
            ("map<string, bigint>", "MAP<STRING, BIGINT>"),
            ("ROW<a INT, `b c` STRING>", "ROW<`a` INT, `b c` STRING>"),
            ("double precision", "DOUBLE"),
        ] {
            assert_eq!(parse(input).unwrap().to_string(), out, "{input}");
        }
    }

    #[test]
    fn not_null_suffixes() {
        assert_eq!(split_not_null("BIGINT NOT NULL"), ("BIGINT", true));
        assert_eq!(
            split_not_null("DECIMAL(10, 2)  not   null "),
            ("DECIMAL(10, 2)", true)
        );
        assert_eq!(split_not_null("STRING NULL"), ("STRING", false));
        assert_eq!(split_not_null("STRING"), ("STRING", false));
        assert_eq!(split_not_null("NULL"), ("NULL", false));
        assert!(parse(split_not_null("NOT NULL").0).is_err());
    }

    #[test]
    fn rejects_garbage_and_injection() {
        for bad in [
            "",
            "FOO",
            "INT) WITH ('connector'='x",
            "DECIMAL(50,2)",
            "VARCHAR(0)",
            "INT; DROP",
            "ARRAY<INT",
            "TIMESTAMP(12)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn assignability() {
        let t = |s: &str| parse(s).unwrap();
        assert!(t("INT").assignable_to(&t("BIGINT")));
        assert!(!t("BIGINT").assignable_to(&t("INT")));
        assert!(t("INT").assignable_to(&t("DECIMAL(12, 2)")));
        assert!(!t("BIGINT").assignable_to(&t("DECIMAL(12, 2)")));
        assert!(t("DECIMAL(10, 2)").assignable_to(&t("DECIMAL(38, 2)")));
        assert!(!t("DECIMAL(10, 2)").assignable_to(&t("DECIMAL(10, 0)")));
        assert!(t("VARCHAR(10)").assignable_to(&t("STRING")));
        assert!(!t("STRING").assignable_to(&t("VARCHAR(10)")));
        assert!(t("TIMESTAMP(3)").assignable_to(&t("TIMESTAMP(6)")));
        assert!(!t("TIMESTAMP(6)").assignable_to(&t("TIMESTAMP(3)")));
        assert!(!t("STRING").assignable_to(&t("BIGINT")));
        assert!(!t("TIMESTAMP(3)").assignable_to(&t("TIMESTAMP_LTZ(3)")));
        assert!(t("BIGINT").assignable_to(&t("DOUBLE")));
    }

    #[test]
    fn aggregate_types() {
        assert_eq!(FlinkType::Int.sum_type(), Some(FlinkType::Int));
        assert_eq!(
            FlinkType::Decimal(10, 2).sum_type(),
            Some(FlinkType::Decimal(38, 2))
        );
        assert_eq!(FlinkType::Varchar(STRING_LEN).sum_type(), None);
    }
}
