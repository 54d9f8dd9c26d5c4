//! Decoding what Flink sends back when something fails: the `{"errors": [...]}` answer of its
//! REST APIs and the Java exception traces inside it. Users see the root cause, never a trace.
use serde_json::Value;

/// Flink answers errors as `{"errors": ["message", "trace"...]}`.
pub(crate) fn flink_error_message(v: &Value) -> Option<String> {
    let texts: Vec<&str> = v
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let first = *texts.first()?;
    let cause = decode(&texts.join("\n"));
    Some(crate::core::messages::ellipsis(
        if cause.trim().is_empty() {
            first
        } else {
            &cause
        },
        300,
    ))
}

/// The exception trace in a gateway error answer, when there is one.
pub(crate) fn error_trace(v: &Value) -> Option<String> {
    let errs = v.get("errors")?.as_array()?;
    let texts: Vec<&str> = errs.iter().filter_map(Value::as_str).collect();
    // The first entry is a generic "Internal server error."; the trace follows.
    let trace = texts.iter().skip(1).copied().collect::<Vec<_>>().join("\n");
    if trace.trim().is_empty() {
        None
    } else {
        Some(trace)
    }
}

/// At most this many characters of an error text are stored or shown; the whole text goes to
/// the server log once.
pub const MAX_SHOWN: usize = 2000;

/// A remote error text as people should see it: the root cause of a Java trace, without
/// serialised blobs (long runs with no white space, e.g. base64 Java serialisation), without
/// Flink's `[CIRCULAR REFERENCE: …]` markers, capped at [`MAX_SHOWN`] characters.
pub fn decode(text: &str) -> String {
    let cleaned: Vec<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("[CIRCULAR REFERENCE"))
        .map(|l| {
            l.split(' ')
                .map(|w| if w.len() > 200 { "<blob>" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let cleaned = cleaned.join("\n");
    let cause = root_cause(&cleaned);
    let shown = if cause.trim().is_empty() || cause == "<blob>" {
        cleaned.trim().to_string()
    } else {
        cause
    };
    crate::core::messages::ellipsis(&shown, MAX_SHOWN)
}

/// The messages of a Java exception trace, outermost first, without stack frames: what a
/// person needs to see; the frames stay in the service's log.
pub fn cause_chain(trace: &str) -> String {
    trace
        .lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || is_frame(l)))
        .map(|l| l.trim_start_matches('<').trim_end_matches('>'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A stack frame line (`at a.b(C.java:1)`) or an elided-frames line (`... 3 more`).
fn is_frame(l: &str) -> bool {
    l.starts_with("at ") || (l.starts_with("...") && l.ends_with("more"))
}

/// The most specific message in a Java exception trace: the last `Caused by:` (with its
/// continuation lines, joined by spaces), without the exception class; the first line when
/// there is no cause.
pub fn root_cause(trace: &str) -> String {
    let lines: Vec<&str> = trace.lines().map(str::trim).collect();
    let start = lines.iter().rposition(|l| l.starts_with("Caused by: "));
    let (first, rest) = match start {
        Some(i) => (lines[i].trim_start_matches("Caused by: "), &lines[i + 1..]),
        None => match lines.iter().position(|l| !l.is_empty()) {
            Some(i) => (lines[i], &lines[i + 1..]),
            None => return String::new(),
        },
    };
    let mut msg = strip_exception_class(first).to_string();
    if start.is_some() {
        for l in rest {
            if l.is_empty()
                || l.starts_with("at ")
                || l.starts_with("...")
                || l.starts_with("End of exception")
            {
                break;
            }
            msg.push(' ');
            msg.push_str(l);
        }
    }
    msg.trim_end_matches('>').trim().to_string()
}

fn strip_exception_class(line: &str) -> &str {
    // "org.apache.flink.table.api.ValidationException: Object 'x' not found" → the message.
    if let Some((class, msg)) = line.split_once(": ") {
        let looks_like_class = !class.contains(' ')
            && class.contains('.')
            && class
                .rsplit('.')
                .next()
                .is_some_and(|s| s.ends_with("Exception") || s.ends_with("Error"));
        if looks_like_class {
            return msg.trim();
        }
    }
    line.trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decode_drops_blobs_and_circular_references_and_caps() {
        let blob = "rO0AB".repeat(10_000);
        let text = format!("java.util.concurrent.CompletionException: x\n[CIRCULAR REFERENCE: java.lang.Exception: y]\nCaused by: org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint triggering task Source of job 1 is not being executed at the moment. Aborting checkpoint. Failure reason: Not all required tasks are currently running.\n{blob}");
        let d = decode(&text);
        assert!(d.starts_with("Checkpoint triggering task"), "{d}");
        assert!(
            !d.contains("CIRCULAR") && !d.contains("rO0AB") && d.len() <= MAX_SHOWN,
            "{d}"
        );
        assert!(decode(&"y".repeat(5000)).chars().count() <= MAX_SHOWN);
        assert_eq!(decode("plain"), "plain");
    }

    #[test]
    fn root_cause_picks_last_caused_by_without_class() {
        let trace = "org.apache.flink.table.gateway.api.utils.SqlGatewayException: Failed to fetchResults.\n\tat x.y(Z.java:1)\nCaused by: org.apache.flink.table.api.SqlParserException: SQL parse failed.\nCaused by: org.apache.flink.table.api.ValidationException: Object 'nope' not found\n\tat a.b";
        assert_eq!(root_cause(trace), "Object 'nope' not found");
    }

    #[test]
    fn root_cause_keeps_continuation_lines() {
        let trace = "x.A: a\nCaused by: java.lang.IllegalArgumentException: Either all or none of:\nusername\npassword\nEnd of exception on server side>";
        assert_eq!(
            root_cause(trace),
            "Either all or none of: username password"
        );
    }

    #[test]
    fn root_cause_without_cause_uses_first_line() {
        assert_eq!(
            root_cause("\n java.lang.IllegalStateException: boom\n\tat x"),
            "boom"
        );
        assert_eq!(
            root_cause("plain message: with colon"),
            "plain message: with colon"
        );
        assert_eq!(root_cause(""), "");
    }

    #[test]
    fn cause_chain_drops_frames() {
        let trace = "<Exception on server side:\nx.A: outer\n\tat a.b(C.java:1)\n\t... 3 more\nCaused by: x.B: inner\n\tat d.e>";
        assert_eq!(
            cause_chain(trace),
            "Exception on server side:\nx.A: outer\nCaused by: x.B: inner"
        );
    }

    #[test]
    fn error_trace_skips_generic_first_entry() {
        let v = json!({"errors": ["Internal server error.", "<Exception on server side:\nCaused by: x.y.FooException: bad>"]});
        assert!(error_trace(&v).unwrap().contains("FooException"));
        assert_eq!(error_trace(&json!({"errors": ["Not found"]})), None);
        assert_eq!(
            flink_error_message(&json!({"errors": ["Not found: /x"]})).unwrap(),
            "Not found: /x"
        );
    }
}
