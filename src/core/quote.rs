//! The one quoting module for generated Flink SQL. Every identifier and literal that reaches a
//! Flink SQL script goes through these functions.

/// A Flink SQL identifier in backticks; a backtick inside is doubled.
pub fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// A Flink SQL string literal in single quotes; a quote inside is doubled.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("x'); DROP TABLE t; --"), "'x''); DROP TABLE t; --'");
    }

    #[test]
    fn quoted_values_stay_one_token() {
        // A quoted value never splits a script into more statements.
        for v in [
            "a;b",
            "x'); DROP TABLE t; --",
            "`;`",
            "'';''",
            "--;",
            "/*;*/",
        ] {
            let script = format!("SELECT {} AS {} FROM t", literal(v), ident(v));
            assert_eq!(
                crate::core::script::split_statements(&script).len(),
                1,
                "{script}"
            );
        }
    }
}
