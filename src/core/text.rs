//! Small text helpers shared by error messages.

/// At most `max` characters of `s`, with "…" appended when it was cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

/// An error with its causes, "outer: inner: root" (a cause whose text the previous one
/// already contains is left out).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    let mut parts = vec![cur.to_string()];
    while let Some(n) = cur.source() {
        cur = n;
        let s = cur.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// The innermost cause of an error.
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn shortening_and_chains() {
        assert_eq!(ellipsis("héllo", 5), "héllo");
        assert_eq!(ellipsis("héllo!", 5), "héllo…");
        let e = E(
            "request failed: connection refused",
            Some(Box::new(E(
                "connection refused",
                Some(Box::new(E("os error 111", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "request failed: connection refused: os error 111"
        );
        assert_eq!(root_cause(&e), "os error 111");
    }
}
