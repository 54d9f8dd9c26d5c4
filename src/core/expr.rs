//! User-written Flink SQL expressions: the one audited place that decides whether a string from
//! pipeline params (a source filter, a computed column, an aggregate's FILTER condition, a CEP
//! condition) may be pasted into generated SQL.
//!
//! Expressions are Flink SQL, not a language of ours, so this is a lexer-level check, not a
//! parser: Flink's planner stays the judge of meaning (types, functions, unknown columns) when a
//! pipeline is validated. What this module proves is that the text is *one* expression that
//! cannot break out of the parentheses the renderer always puts around it ([`Expr::sql`]), and it
//! reports the column references so the renderer can check them against the source's columns.
//!
//! The text is lexed like Flink (and like [`crate::core::script::split_statements`]): `'...'`
//! strings with `''` escapes (a word glued before one, as in `X'0F'`, `N'..'`, `_UTF16'..'` or
//! `U&'..'`, is a prefix), `` `...` `` identifiers with ``` `` ``` escapes, `"..."` with `""`
//! escapes (string-like: must be closed, never a column), numbers, operators, `( ) [ ] , .`.
//! Refused, each with a 1-based character position:
//! - empty text, more than 4000 characters, control characters other than tab, CR and LF,
//!   characters outside this lexical structure (`?` parameter markers, `{`, `:`, non-ASCII
//!   outside quotes: quote such identifiers with backticks);
//! - `;`, `--`, `/*` and `*/` outside quotes, unterminated quotes, empty quoted identifiers,
//!   unbalanced or crossed `(` `)` `[` `]`, a `,` outside parentheses;
//! - `SELECT`, `VALUES` and `WITH` at any depth (no subqueries; `WITH`/`WITHOUT` are allowed
//!   right after `TIME`/`TIMESTAMP`/`TIMESTAMP(p)` and before `WRAPPER`, `ARRAY`, `CONDITIONAL`,
//!   `UNCONDITIONAL`), statement words (`INSERT`, `EXECUTE`, `CREATE`, `DROP`, `ALTER`,
//!   `DELETE`, `UPDATE`, `MERGE`, `TRUNCATE`) at any depth;
//! - query clause words (`FROM`, `WHERE`, `AS`, `OVER`, `UNION`, ...) outside parentheses, except
//!   `IS [NOT] DISTINCT FROM`; inside parentheses they are function syntax
//!   (`EXTRACT(HOUR FROM ts)`, `CAST(x AS INT)`);
//! - an `END` that closes no `CASE` at its depth, a `CASE` without its `END`;
//! - references of more than two parts (`t.c.f`): write `qualifier.column`.
//!
//! Words followed by `(` are function calls (aggregates set [`Expr::has_aggregate`]); keywords,
//! type names and words followed by a string literal (`TIMESTAMP '...'`, `KEY 'k'`) are not
//! columns; `q.c` is a column with a qualifier; a word after `.` behind anything else (`f(x).a`)
//! is a field name, not a column. A backticked identifier is a column unless it is called.

use std::fmt;

const MAX_CHARS: usize = 4000;

/// A column reference found in an expression: `price`, `` `my col` ``, `A.price` (qualifier "A").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub qualifier: Option<String>,
    pub name: String,
}

/// An expression that passed the check.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The expression text, trimmed (otherwise exactly as written).
    pub text: String,
    /// Column references in order of first appearance, each once.
    pub columns: Vec<ColumnRef>,
    /// Whether an aggregate function call (COUNT, SUM, ...) appears at any depth.
    pub has_aggregate: bool,
}

impl Expr {
    /// `(` + text + `)`: how every checked expression is embedded in generated SQL.
    pub fn sql(&self) -> String {
        format!("({})", self.text)
    }
}

/// Why a string is not one expression. `at` is a 1-based character position in the input.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprError {
    Empty,
    TooLong { chars: usize },
    ControlCharacter { at: usize },
    UnexpectedCharacter { ch: char, at: usize },
    ParameterMarker { at: usize },
    Semicolon { at: usize },
    Comment { at: usize },
    UnterminatedString { at: usize },
    UnterminatedIdentifier { at: usize },
    EmptyIdentifier { at: usize },
    Unbalanced { ch: char, at: usize },
    Unclosed { ch: char, at: usize },
    Comma { at: usize },
    Subquery { word: String, at: usize },
    Statement { word: String, at: usize },
    Keyword { word: String, at: usize },
    MisplacedWith { word: String, at: usize },
    EndWithoutCase { at: usize },
    CaseWithoutEnd { at: usize },
    LongReference { at: usize },
}

impl fmt::Display for ExprError {
    #[rustfmt::skip]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ExprError::*;
        match self {
            Empty => write!(f, "is empty"),
            TooLong { chars } => write!(f, "is longer than {MAX_CHARS} characters ({chars})"),
            ControlCharacter { at } => write!(f, "has a control character at character {at}"),
            UnexpectedCharacter { ch, at } => write!(f, "has an unexpected character '{ch}' at character {at} (quote identifiers with backticks)"),
            ParameterMarker { at } => write!(f, "has a parameter marker '?' at character {at}"),
            Semicolon { at } => write!(f, "has a ';' at character {at}: an expression cannot end a statement"),
            Comment { at } => write!(f, "has a comment at character {at} (-- or /*)"),
            UnterminatedString { at } => write!(f, "has an unterminated string starting at character {at}"),
            UnterminatedIdentifier { at } => write!(f, "has an unterminated quoted identifier starting at character {at}"),
            EmptyIdentifier { at } => write!(f, "has an empty quoted identifier at character {at}"),
            Unbalanced { ch, at } => write!(f, "has an unbalanced '{ch}' at character {at}"),
            Unclosed { ch, at } => write!(f, "has an unclosed '{ch}' at character {at}"),
            Comma { at } => write!(f, "has a ',' at character {at} outside parentheses: write one expression"),
            Subquery { word, at } => write!(f, "has a subquery ({word} at character {at}): expressions cannot contain queries"),
            Statement { word, at } => write!(f, "has the statement keyword {word} at character {at}: expressions cannot run statements"),
            Keyword { word, at } => write!(f, "has the keyword {word} at character {at} outside parentheses"),
            MisplacedWith { word, at } => write!(f, "has {word} at character {at} outside a TIME or TIMESTAMP type"),
            EndWithoutCase { at } => write!(f, "has an END at character {at} without a CASE"),
            CaseWithoutEnd { at } => write!(f, "has a CASE at character {at} without an END"),
            LongReference { at } => write!(f, "has a reference of more than two parts at character {at}: write qualifier.column"),
        }
    }
}

impl std::error::Error for ExprError {}

/// Aggregate functions (a call sets `has_aggregate`).
const AGGREGATES: &str =
    "COUNT SUM AVG MIN MAX STDDEV_POP STDDEV_SAMP VAR_POP VAR_SAMP COLLECT LISTAGG \
    FIRST_VALUE LAST_VALUE ARRAY_AGG JSON_OBJECTAGG JSON_ARRAYAGG";
/// Query starts: refused at any depth.
const QUERY: &str = "SELECT VALUES WITH";
/// Statement words: refused at any depth.
const STATEMENT: &str = "INSERT EXECUTE CREATE DROP ALTER DELETE UPDATE MERGE TRUNCATE";
/// Query clause words: refused outside parentheses, function syntax inside.
const CLAUSE: &str =
    "FROM WHERE GROUP ORDER HAVING UNION INTERSECT EXCEPT MINUS LIMIT OFFSET FETCH AS \
    WINDOW OVER JOIN ON INTO SET BEGIN";
/// Keywords and type names: never columns.
const KEYWORDS: &str = "AND OR NOT IS NULL TRUE FALSE UNKNOWN CASE WHEN THEN ELSE END IN BETWEEN \
    SYMMETRIC ASYMMETRIC LIKE SIMILAR TO ESCAPE DISTINCT CAST TRY_CAST INTERVAL YEAR \
    YEARS MONTH MONTHS DAY DAYS HOUR HOURS MINUTE MINUTES SECOND SECONDS MILLISECOND \
    MICROSECOND NANOSECOND WEEK QUARTER DOW DOY EPOCH CENTURY DECADE MILLENNIUM \
    LEADING TRAILING BOTH FOR POSITION PLACING CURRENT_DATE CURRENT_TIME \
    CURRENT_TIMESTAMP LOCALTIME LOCALTIMESTAMP CURRENT_ROW_TIMESTAMP NOW \
    CURRENT_USER SESSION_USER CHAR CHARACTER VARYING VARCHAR STRING BOOLEAN BOOL \
    BINARY VARBINARY BYTES DECIMAL DEC NUMERIC TINYINT SMALLINT INT INTEGER BIGINT \
    FLOAT REAL DOUBLE PRECISION DATE TIME TIMESTAMP TIMESTAMP_LTZ WITHOUT LOCAL ZONE \
    ARRAY MAP MULTISET ROW RAW VARIANT ALL ANY SOME EXISTS FILTER WITHIN BY \
    PARTITION ROWS RANGE PRECEDING FOLLOWING UNBOUNDED CURRENT ASC DESC NULLS \
    UESCAPE RUNNING FINAL RETURNING DEFAULT EMPTY ERROR ABSENT VALUE WRAPPER \
    CONDITIONAL UNCONDITIONAL JSON OBJECT SCALAR";
/// Words before which `WITH`/`WITHOUT` is JSON function syntax (`WITH CONDITIONAL ARRAY WRAPPER`).
const WITH_BEFORE: &str = "WRAPPER ARRAY CONDITIONAL UNCONDITIONAL";

/// Whether `list` (words separated by spaces) holds the upper-cased word `u`.
fn listed(list: &str, u: &str) -> bool {
    list.split_ascii_whitespace().any(|w| w == u)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Ident(String),
    Str,
    Num,
    Op,
    Dot,
    Open(char),
    Close(char),
    Comma,
}

struct Token {
    tok: Tok,
    at: usize,
}

/// Checks that `s` is one Flink SQL expression (see the module docs for the rules).
pub fn check(s: &str) -> Result<Expr, ExprError> {
    let text = s.trim_matches(is_space);
    if text.is_empty() {
        return Err(ExprError::Empty);
    }
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        return Err(ExprError::TooLong { chars });
    }
    let cs: Vec<char> = s.chars().collect();
    if let Some(i) = cs.iter().position(|&c| c.is_control() && !is_space(c)) {
        return Err(ExprError::ControlCharacter { at: i + 1 });
    }
    let tokens = lex(&cs)?;
    let (columns, has_aggregate) = Scan::default().run(&tokens)?;
    Ok(Expr {
        text: text.to_string(),
        columns,
        has_aggregate,
    })
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// The body of the quoted run opening at `cs[i]` (doubled quotes unescaped) and the index after it.
fn quoted(cs: &[char], i: usize) -> Option<(String, usize)> {
    let q = cs[i];
    let mut body = String::new();
    let mut j = i + 1;
    while j < cs.len() {
        if cs[j] == q {
            if cs.get(j + 1) == Some(&q) {
                body.push(q);
                j += 2;
                continue;
            }
            return Some((body, j + 1));
        }
        body.push(cs[j]);
        j += 1;
    }
    None
}

fn lex(cs: &[char]) -> Result<Vec<Token>, ExprError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        let at = i + 1;
        let next = cs.get(i + 1).copied();
        let (tok, len) = match c {
            _ if is_space(c) => {
                i += 1;
                continue;
            }
            '\'' | '"' | '`' => {
                let (body, end) = quoted(cs, i).ok_or(if c == '`' {
                    ExprError::UnterminatedIdentifier { at }
                } else {
                    ExprError::UnterminatedString { at }
                })?;
                let tok = match c {
                    '`' if body.is_empty() => return Err(ExprError::EmptyIdentifier { at }),
                    '`' => Tok::Ident(body),
                    _ => Tok::Str,
                };
                (tok, end - i)
            }
            _ if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < cs.len() && is_word_char(cs[j]) {
                    j += 1;
                }
                let word: String = cs[i..j].iter().collect();
                // U&'...': the `&` belongs to the string prefix.
                let amp = word.eq_ignore_ascii_case("U")
                    && cs.get(j) == Some(&'&')
                    && cs.get(j + 1) == Some(&'\'');
                (Tok::Word(word), j - i + usize::from(amp))
            }
            _ if c.is_ascii_digit() || (c == '.' && next.is_some_and(|d| d.is_ascii_digit())) => {
                let digits = |mut j: usize| {
                    while j < cs.len() && cs[j].is_ascii_digit() {
                        j += 1;
                    }
                    j
                };
                let mut j = digits(i);
                if cs.get(j) == Some(&'.') {
                    j = digits(j + 1);
                }
                if matches!(cs.get(j), Some('e' | 'E')) {
                    let k = j + 1 + usize::from(matches!(cs.get(j + 1), Some('+' | '-')));
                    if cs.get(k).is_some_and(|d| d.is_ascii_digit()) {
                        j = digits(k);
                    }
                }
                (Tok::Num, j - i)
            }
            ';' => return Err(ExprError::Semicolon { at }),
            '?' => return Err(ExprError::ParameterMarker { at }),
            '-' if next == Some('-') => return Err(ExprError::Comment { at }),
            '/' | '*' if next == Some(if c == '/' { '*' } else { '/' }) => {
                return Err(ExprError::Comment { at })
            }
            '.' => (Tok::Dot, 1),
            '(' | '[' => (Tok::Open(c), 1),
            ')' | ']' => (Tok::Close(c), 1),
            ',' => (Tok::Comma, 1),
            '+' | '-' | '*' | '/' | '%' | '=' | '<' | '>' => (Tok::Op, 1),
            '!' if next == Some('=') => (Tok::Op, 2),
            '|' if next == Some('|') => (Tok::Op, 2),
            _ => return Err(ExprError::UnexpectedCharacter { ch: c, at }),
        };
        out.push(Token { tok, at });
        i += len;
    }
    Ok(out)
}

#[derive(Default)]
struct Scan {
    /// Open `(`/`[`: the character, its position, whether it is a TIME(p)/TIMESTAMP(p) precision.
    stack: Vec<(char, usize, bool)>,
    /// Open CASEs: the depth they were opened at, their position.
    cases: Vec<(usize, usize)>,
    columns: Vec<ColumnRef>,
    has_aggregate: bool,
}

fn upper_word(t: Option<&Tok>) -> Option<String> {
    match t {
        Some(Tok::Word(w)) => Some(w.to_ascii_uppercase()),
        _ => None,
    }
}

impl Scan {
    fn run(mut self, toks: &[Token]) -> Result<(Vec<ColumnRef>, bool), ExprError> {
        let mut after_precision = false;
        for (i, t) in toks.iter().enumerate() {
            let at = t.at;
            let prev = i.checked_sub(1).map(|p| &toks[p].tok);
            let mut closed_precision = false;
            match &t.tok {
                Tok::Open(c) => {
                    let precision = *c == '('
                        && matches!(upper_word(prev).as_deref(), Some("TIME" | "TIMESTAMP"));
                    self.stack.push((*c, at, precision));
                }
                Tok::Close(c) => {
                    let want = if *c == ')' { '(' } else { '[' };
                    match self.stack.pop() {
                        Some((o, _, precision)) if o == want => closed_precision = precision,
                        _ => return Err(ExprError::Unbalanced { ch: *c, at }),
                    }
                    if let Some(&(depth, at)) = self.cases.last() {
                        if depth > self.stack.len() {
                            return Err(ExprError::CaseWithoutEnd { at });
                        }
                    }
                }
                Tok::Comma if self.stack.is_empty() => return Err(ExprError::Comma { at }),
                // A word after `.`: part of a reference (taken below) or a field name.
                Tok::Word(_) | Tok::Ident(_) if prev == Some(&Tok::Dot) => {}
                Tok::Word(_) | Tok::Ident(_) => {
                    if let Tok::Word(w) = &t.tok {
                        let next = toks.get(i + 1).map(|n| &n.tok);
                        self.word(w, at, prev, after_precision, next)?;
                    }
                    self.reference(toks, i)?;
                }
                _ => {}
            }
            after_precision = closed_precision;
        }
        if let Some(&(ch, at, _)) = self.stack.first() {
            return Err(ExprError::Unclosed { ch, at });
        }
        if let Some(&(_, at)) = self.cases.first() {
            return Err(ExprError::CaseWithoutEnd { at });
        }
        Ok((self.columns, self.has_aggregate))
    }

    /// The rules for a word that is not after a `.`: refused words, CASE/END.
    fn word(
        &mut self,
        w: &str,
        at: usize,
        prev: Option<&Tok>,
        after_precision: bool,
        next: Option<&Tok>,
    ) -> Result<(), ExprError> {
        let u = w.to_ascii_uppercase();
        let word = || u.clone();
        if u == "WITH" || u == "WITHOUT" {
            let typed = after_precision
                || matches!(upper_word(prev).as_deref(), Some("TIME" | "TIMESTAMP"))
                || upper_word(next).is_some_and(|n| listed(WITH_BEFORE, &n));
            if !typed && u == "WITH" {
                return Err(ExprError::Subquery { word: word(), at });
            }
            if !typed {
                return Err(ExprError::MisplacedWith { word: word(), at });
            }
        } else if listed(QUERY, &u) {
            return Err(ExprError::Subquery { word: word(), at });
        }
        if listed(STATEMENT, &u) {
            return Err(ExprError::Statement { word: word(), at });
        }
        let distinct_from = u == "FROM" && upper_word(prev).as_deref() == Some("DISTINCT");
        if self.stack.is_empty() && listed(CLAUSE, &u) && !distinct_from {
            return Err(ExprError::Keyword { word: word(), at });
        }
        if u == "CASE" {
            self.cases.push((self.stack.len(), at));
        } else if u == "END" {
            match self.cases.last() {
                Some(&(depth, _)) if depth == self.stack.len() => {
                    self.cases.pop();
                }
                _ => return Err(ExprError::EndWithoutCase { at }),
            }
        }
        Ok(())
    }

    /// A reference starting at `toks[i]`: `w`, `` `w` ``, `q.w`, or a (qualified) function call.
    fn reference(&mut self, toks: &[Token], i: usize) -> Result<(), ExprError> {
        let mut parts = vec![i];
        let mut j = i + 1;
        while toks.get(j).map(|t| &t.tok) == Some(&Tok::Dot) && name_of(toks, j + 1).is_some() {
            parts.push(j + 1);
            j += 2;
        }
        let next = toks.get(j).map(|t| &t.tok);
        if next == Some(&Tok::Open('(')) {
            if parts.len() == 1 {
                let u = upper_word(Some(&toks[i].tok));
                self.has_aggregate |= u.is_some_and(|u| listed(AGGREGATES, &u));
            }
            return Ok(());
        }
        let column = match (&toks[i].tok, parts.len()) {
            (Tok::Word(w), 1) => {
                let u = w.to_ascii_uppercase();
                let keyword = [KEYWORDS, CLAUSE, QUERY].iter().any(|l| listed(l, &u));
                // A word before a string literal is a typed literal or a prefix (`X'0F'`).
                (!keyword && next != Some(&Tok::Str)).then(|| ColumnRef {
                    qualifier: None,
                    name: w.clone(),
                })
            }
            (_, 1) => name_of(toks, i).map(|name| ColumnRef {
                qualifier: None,
                name,
            }),
            (_, 2) => name_of(toks, parts[1]).map(|name| ColumnRef {
                qualifier: name_of(toks, i),
                name,
            }),
            _ => return Err(ExprError::LongReference { at: toks[i].at }),
        };
        if let Some(c) = column {
            if !self.columns.contains(&c) {
                self.columns.push(c);
            }
        }
        Ok(())
    }
}

fn name_of(toks: &[Token], k: usize) -> Option<String> {
    match &toks.get(k)?.tok {
        Tok::Word(w) | Tok::Ident(w) => Some(w.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::script::split_statements;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn col(q: Option<&str>, n: &str) -> ColumnRef {
        ColumnRef {
            qualifier: q.map(str::to_string),
            name: n.to_string(),
        }
    }

    #[rustfmt::skip]
    #[test]
    fn accepted_expressions_and_their_columns() {
        type Cols<'a> = &'a [(Option<&'a str>, &'a str)];
        let cases: &[(&str, Cols, bool)] = &[
            ("status = 403 AND url LIKE '/api/%'", &[(None, "status"), (None, "url")], false),
            ("MOD(auction, 123)", &[(None, "auction")], false),
            ("DATE_FORMAT(ts, 'yyyy-MM-dd')", &[(None, "ts")], false),
            ("0.908 * price", &[(None, "price")], false),
            ("PRICE_DOWN.price < LAST(PRICE_DOWN.price, 1)", &[(Some("PRICE_DOWN"), "price")], false),
            ("A.amount > PREV(A.amount)", &[(Some("A"), "amount")], false),
            ("CASE WHEN a > 1 THEN 'x' ELSE 'y' END", &[(None, "a")], false),
            ("ts >= TIMESTAMP '2024-01-01 00:00:00'", &[(None, "ts")], false),
            ("x IS NOT DISTINCT FROM y", &[(None, "x"), (None, "y")], false),
            ("CAST(price AS DECIMAL(10, 2)) * 0.908", &[(None, "price")], false),
            ("`weird name` + 1", &[(None, "weird name")], false),
            ("INTERVAL '5' MINUTE", &[], false),
            ("CAST(ts AS TIMESTAMP(3) WITH LOCAL TIME ZONE)", &[(None, "ts")], false),
            ("CAST(t AS TIME WITHOUT TIME ZONE)", &[(None, "t")], false),
            ("s LIKE 'a;b--c/*'", &[(None, "s")], false),
            ("COUNT(DISTINCT user_id)", &[(None, "user_id")], true),
            ("A.price < LAST(A.price, 1)", &[(Some("A"), "price")], false),
            ("JSON_VALUE(payload, '$.a')", &[(None, "payload")], false),
            ("JSON_QUERY(p, '$.a' WITH CONDITIONAL ARRAY WRAPPER)", &[(None, "p")], false),
            ("arr[1] > 0", &[(None, "arr")], false),
            ("EXTRACT(HOUR FROM ts) + .5 + 1e3 + 1.5E-2", &[(None, "ts")], false),
            ("TRIM(BOTH 'x' FROM s) || SUBSTRING(s FROM 1 FOR 2)", &[(None, "s")], false),
            ("`a``b`.`c` = \"dq\"\"x\"", &[(Some("a`b"), "c")], false),
            ("X'0F' = b AND U&'\\0041' = N'x' AND _UTF16'y' <> c", &[(None, "b"), (None, "c")], false),
            ("sum(amount) * 2 > AVG(x)", &[(None, "amount"), (None, "x")], true),
            ("CASE WHEN (CASE b WHEN 1 THEN 2 END) = 2 THEN f(x).field END", &[(None, "b"), (None, "x")], false),
            ("  a != b\n", &[(None, "a"), (None, "b")], false),
            ("JSON_OBJECT(KEY 'k' VALUE v) IS JSON", &[(None, "v")], false),
        ];
        for (text, cols, agg) in cases {
            let e = check(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
            let want: Vec<ColumnRef> = cols.iter().map(|(q, n)| col(*q, n)).collect();
            assert_eq!(e.columns, want, "{text}");
            assert_eq!(e.has_aggregate, *agg, "{text}");
            assert_eq!(e.text, text.trim(), "{text}");
            assert_eq!(e.sql(), format!("({})", text.trim()));
        }
    }

    #[rustfmt::skip]
    #[test]
    fn refused_expressions_say_why() {
        let long = "a+".repeat(2500);
        let cases: &[(&str, &str)] = &[
            ("1); DROP TABLE t; --", "has a ';' at character 3: an expression cannot end a statement"),
            ("a) OR (1=1", "has an unbalanced ')' at character 2"),
            ("a -- comment", "has a comment at character 3 (-- or /*)"),
            ("a /* x */", "has a comment at character 3"),
            ("a */ b", "has a comment at character 3"),
            (
                "(SELECT 1)",
                "has a subquery (SELECT at character 2): expressions cannot contain queries"),
            ("x IN (VALUES (1))", "has a subquery (VALUES at character 7)"),
            ("WITH t AS (x) y", "has a subquery (WITH at character 1)"),
            (
                "a, b",
                "has a ',' at character 2 outside parentheses: write one expression"),
            ("x FROM t", "has the keyword FROM at character 3 outside parentheses"),
            (
                "'unterminated",
                "has an unterminated string starting at character 1"),
            ("a = \"x", "has an unterminated string starting at character 5"),
            (
                "`unterminated",
                "has an unterminated quoted identifier starting at character 1"),
            ("`` = 1", "has an empty quoted identifier at character 1"),
            ("((a)", "has an unclosed '(' at character 1"),
            ("a))", "has an unbalanced ')' at character 2"),
            ("(a]", "has an unbalanced ']' at character 3"),
            ("1 UNION SELECT 2", "has the keyword UNION at character 3 outside parentheses"),
            ("", "is empty"),
            (" \n\t", "is empty"),
            (&long, "is longer than 4000 characters"),
            ("a\0b", "has a control character at character 2"),
            ("END", "has an END at character 1 without a CASE"),
            (
                "CASE WHEN a THEN 1",
                "has a CASE at character 1 without an END"),
            ("(CASE WHEN a THEN 1) END", "has a CASE at character 2 without an END"),
            (
                "price AS p",
                "has the keyword AS at character 7 outside parentheses"),
            ("COUNT(*) OVER (PARTITION BY k)", "has the keyword OVER at character 10"),
            ("f(DROP)", "has the statement keyword DROP at character 3"),
            ("a = ?", "has a parameter marker '?' at character 5"),
            ("a | b", "has an unexpected character '|' at character 3"),
            ("a = é", "has an unexpected character 'é' at character 5"),
            (
                "x WITHOUT y",
                "has WITHOUT at character 3 outside a TIME or TIMESTAMP type"),
            ("t.c.f > 1", "has a reference of more than two parts at character 1"),
        ];
        for (text, want) in cases {
            match check(text) {
                Ok(e) => panic!("{text:?} accepted: {e:?}"),
                Err(err) => assert!(err.to_string().contains(want), "{text:?}: {err} (want {want})"),
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // property tests (fixed seeds: every run checks the same cases; on failure proptest prints
    // the minimal failing input, which the fixed seed reproduces)
    // ------------------------------------------------------------------------------------------

    /// An independent scanner: each `(` outside quotes (by byte offset) mapped to its `)`.
    /// Errors on a comment or `;` outside quotes, unbalanced parentheses or an open quote.
    fn paren_pairs(stmt: &str) -> Result<HashMap<usize, usize>, String> {
        let b = stmt.as_bytes();
        let (mut pairs, mut open, mut quote) = (HashMap::new(), Vec::new(), None::<u8>);
        let mut k = 0;
        while k < b.len() {
            let c = b[k];
            match quote {
                Some(q) if c == q && b.get(k + 1) == Some(&q) => k += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match (c, b.get(k + 1).copied()) {
                    (b'\'' | b'`' | b'"', _) => quote = Some(c),
                    (b'-', Some(b'-')) | (b'/', Some(b'*')) => {
                        return Err(format!("comment at {k}"))
                    }
                    (b';', _) => return Err(format!("';' at {k}")),
                    (b'(', _) => open.push(k),
                    (b')', _) => {
                        let o = open.pop().ok_or(format!("unbalanced ')' at {k}"))?;
                        pairs.insert(o, k);
                    }
                    _ => {}
                },
            }
            k += 1;
        }
        match (quote, open.is_empty()) {
            (None, true) => Ok(pairs),
            _ => Err("open quote or '('".into()),
        }
    }

    fn assert_contained(e: &Expr) -> Result<(), TestCaseError> {
        let sql = e.sql();
        let (pre, mid) = ("INSERT INTO `sink` SELECT ", " AS `x` FROM `source` WHERE ");
        let stmt = format!("{pre}{sql} AS `x` FROM `source` WHERE {sql}");
        prop_assert_eq!(split_statements(&stmt).len(), 1, "{}", stmt);
        let pairs = paren_pairs(&stmt).map_err(|m| TestCaseError::fail(format!("{m}: {stmt}")))?;
        let open2 = pre.len() + sql.len() + mid.len();
        prop_assert_eq!(
            pairs.get(&pre.len()),
            Some(&(pre.len() + sql.len() - 1)),
            "{}",
            stmt
        );
        prop_assert_eq!(
            pairs.get(&open2),
            Some(&(open2 + sql.len() - 1)),
            "{}",
            stmt
        );
        Ok(())
    }

    fn tricky_mix() -> impl Strategy<Value = String> {
        let pieces: Vec<&str> =
            "'|`|\"|(|)|;|,|-|/|*| FROM | SELECT | END | CASE |a|b.c|1| |\n|''|``|--|\
            /*|*/|[|]|f(| DISTINCT | WITH |TIMESTAMP| AS | WHEN | THEN |=|é|\\"
                .split('|')
                .collect();
        prop::collection::vec(prop::sample::select(pieces), 0..24).prop_map(|v| v.concat())
    }

    fn any_chars() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..48).prop_map(String::from_iter)
    }

    type Gen = (String, Vec<ColumnRef>, bool);

    fn merge(parts: Vec<Gen>, text: String, agg: bool) -> Gen {
        let mut cols: Vec<ColumnRef> = Vec::new();
        let mut any_agg = agg;
        for (_, cs, a) in parts {
            any_agg |= a;
            for c in cs {
                if !cols.contains(&c) {
                    cols.push(c);
                }
            }
        }
        (text, cols, any_agg)
    }

    fn valid_expr() -> impl Strategy<Value = Gen> {
        let literal = prop_oneof!["[^\\p{Cc}]{0,10}", "[a-z;'\"`/*() -]{0,12}"];
        let leaf = prop_oneof![
            "col_[a-z0-9]{1,6}".prop_map(|n| (n.clone(), vec![col(None, &n)], false)),
            "[^\\p{Cc}]{1,8}".prop_map(|n| (
                format!("`{}`", n.replace('`', "``")),
                vec![col(None, &n)],
                false
            )),
            ("P_[A-Z]{1,3}", "col_[a-z]{1,4}").prop_map(|(q, n)| (
                format!("{q}.{n}"),
                vec![col(Some(&q), &n)],
                false
            )),
            "[0-9]{1,5}(\\.[0-9]{1,3})?".prop_map(|n| (n, vec![], false)),
            literal.prop_map(|s| (format!("'{}'", s.replace('\'', "''")), vec![], false)),
        ];
        leaf.prop_recursive(4, 32, 3, |inner| {
            let ops = prop::sample::select(vec![
                "+", "-", "*", "/", "%", "=", "<>", ">=", "AND", "OR", "||",
            ]);
            let funcs = prop::sample::select(vec!["UPPER", "COALESCE", "my_fn", "SUM", "count"]);
            prop_oneof![
                (inner.clone(), ops, inner.clone()).prop_map(|(a, op, b)| {
                    let t = format!("{} {op} {}", a.0, b.0);
                    merge(vec![a, b], t, false)
                }),
                (funcs, prop::collection::vec(inner.clone(), 1..4)).prop_map(|(f, args)| {
                    let t = format!(
                        "{f}({})",
                        args.iter()
                            .map(|a| a.0.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    merge(args, t, matches!(f, "SUM" | "count"))
                }),
                (inner.clone(), inner.clone(), inner.clone()).prop_map(|(a, b, c)| {
                    let t = format!("CASE WHEN {} THEN {} ELSE {} END", a.0, b.0, c.0);
                    merge(vec![a, b, c], t, false)
                }),
                inner.clone().prop_map(|a| {
                    let t = format!("CAST({} AS DECIMAL(10, 2))", a.0);
                    merge(vec![a], t, false)
                }),
                inner.prop_map(|a| {
                    let t = format!("({})", a.0);
                    merge(vec![a], t, false)
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0xe4_9c4e),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever is accepted stays inside its parentheses in one statement.
        #[test]
        fn accepted_expressions_never_break_out(
            s in prop_oneof![any_chars(), any::<String>(), tricky_mix(), tricky_mix(), tricky_mix()],
            g in valid_expr(),
            junk in tricky_mix(),
            cut in any::<prop::sample::Index>(),
        ) {
            // A valid expression with junk spliced in at a char boundary.
            let at = g.0.char_indices().map(|(k, _)| k).nth(cut.index(g.0.chars().count().max(1))).unwrap_or(0);
            let spliced = format!("{}{junk}{}", &g.0[..at], &g.0[at..]);
            for text in [&s, &spliced] {
                if let Ok(e) = check(text) {
                    assert_contained(&e)?;
                }
            }
        }

        /// Generated valid expressions are accepted with exactly their columns.
        #[test]
        fn generated_expressions_are_accepted((text, cols, agg) in valid_expr()) {
            let e = check(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {err}")))?;
            prop_assert_eq!(&e.columns, &cols, "{}", text);
            prop_assert_eq!(e.has_aggregate, agg, "{}", text);
            assert_contained(&e)?;
        }

        /// `check` never panics, on any unicode.
        #[test]
        fn check_never_panics(s in prop_oneof![any_chars(), any::<String>(), "\\PC{0,64}", tricky_mix()]) {
            let _ = check(&s).map(|e| e.sql()).map_err(|e| e.to_string());
        }
    }
}
