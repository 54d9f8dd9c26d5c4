//! Splitting a Flink SQL script into statements.
//!
//! Flink's SQL Gateway executes one statement per request, so a script is cut at top-level
//! semicolons. Semicolons inside string literals ('...' with '' escapes), quoted identifiers
//! (`...` with `` escapes), double-quoted strings, `--` line comments and `/* */` block comments
//! do not split. Comment-only and empty statements are dropped. A statement set
//! (`EXECUTE STATEMENT SET BEGIN …; …; END`) is one statement.

/// Splits `script` into trimmed statements without their terminating semicolons.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut set: Option<String> = None;
    for s in split_at_semicolons(script) {
        match set.take() {
            Some(mut open) => {
                open.push_str(";\n");
                open.push_str(&s);
                if code_words(&s) == "END" {
                    out.push(open);
                } else {
                    set = Some(open);
                }
            }
            None if code_words(&s).starts_with("EXECUTE STATEMENT SET") => set = Some(s),
            None => out.push(s),
        }
    }
    // An unterminated statement set is passed on as written (Flink names the error).
    out.extend(set);
    out
}

/// The first few words of a statement's code (comments skipped), upper-cased, one space apart.
fn code_words(stmt: &str) -> String {
    let mut code = String::new();
    for line in stmt.lines() {
        let line = line.trim();
        if !line.starts_with("--") {
            code.push_str(line);
            code.push(' ');
        }
        if code.len() > 64 {
            break;
        }
    }
    code.split_whitespace()
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_at_semicolons(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has_code = false;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '`' | '"' => {
                has_code = true;
                cur.push(c);
                // Quoted run; a doubled quote is an escaped quote.
                while let Some(q) = chars.next() {
                    cur.push(q);
                    if q == c {
                        if chars.peek() == Some(&c) {
                            cur.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                // Line comment: kept in the statement text, never splits.
                cur.push(c);
                for l in chars.by_ref() {
                    cur.push(l);
                    if l == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                cur.push(c);
                if let Some(star) = chars.next() {
                    cur.push(star);
                }
                let mut prev = '\0';
                for b in chars.by_ref() {
                    cur.push(b);
                    if prev == '*' && b == '/' {
                        break;
                    }
                    prev = b;
                }
            }
            ';' => {
                if has_code {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                has_code = false;
            }
            _ => {
                if !c.is_whitespace() {
                    has_code = true;
                }
                cur.push(c);
            }
        }
    }
    if has_code {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_set_is_one_statement() {
        let s = split_statements(
            "SET 'a' = 'b';\n-- job\nexecute statement set\nBEGIN\nINSERT INTO x SELECT 1;\nINSERT INTO y SELECT ';';\nEND;\nSELECT 2;",
        );
        assert_eq!(
            s,
            vec![
                "SET 'a' = 'b'",
                "-- job\nexecute statement set\nBEGIN\nINSERT INTO x SELECT 1;\nINSERT INTO y SELECT ';';\nEND",
                "SELECT 2"
            ]
        );
        // Unterminated: passed on whole, not cut.
        assert_eq!(
            split_statements("EXECUTE STATEMENT SET BEGIN INSERT INTO x SELECT 1;"),
            vec!["EXECUTE STATEMENT SET BEGIN INSERT INTO x SELECT 1"]
        );
    }

    #[test]
    fn splits_on_top_level_semicolons() {
        let s = split_statements("SET 'a' = 'b';\nSELECT 1 ;  \n\n");
        assert_eq!(s, vec!["SET 'a' = 'b'", "SELECT 1"]);
    }

    #[test]
    fn keeps_semicolons_in_quotes_and_comments() {
        let s = split_statements(
            "INSERT INTO `t;x` SELECT 'a;''b' -- c;d\n FROM s /* e;f */; SELECT \"g;h\"",
        );
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].starts_with("INSERT INTO `t;x` SELECT 'a;''b' -- c;d"));
        assert!(s[0].ends_with("/* e;f */"));
        assert_eq!(s[1], "SELECT \"g;h\"");
    }

    #[test]
    fn drops_comment_only_and_empty_statements() {
        assert!(split_statements(";;  ; -- only a comment\n").is_empty());
        assert_eq!(
            split_statements("/* x */ ; SHOW TABLES"),
            vec!["SHOW TABLES"]
        );
    }

    #[test]
    fn unterminated_quote_stays_one_statement() {
        let s = split_statements("SELECT 'abc; SELECT 2");
        assert_eq!(s, vec!["SELECT 'abc; SELECT 2"]);
    }

    #[test]
    fn escaped_backtick() {
        let s = split_statements("CREATE TABLE `a``;b` (x INT); SHOW TABLES");
        assert_eq!(s, vec!["CREATE TABLE `a``;b` (x INT)", "SHOW TABLES"]);
    }
}
