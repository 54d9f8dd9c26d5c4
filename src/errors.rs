//! Turning pg_flink's errors into Postgres errors: a SQLSTATE clients can match on, a message
//! that names the object at fault, a detail, and a hint for people.
use crate::flink::RestError;
use crate::interruptible::ReportError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

const MAX_DETAIL: usize = 4_000;

/// The SQLSTATE, hint and detail of a REST failure.
pub fn rest_error_report(e: &RestError, funcname: &'static str) -> ErrorReport {
    rest_error_report_in(e, "", funcname)
}

/// Like [`rest_error_report`], with `context` put before the message (e.g. "statement 2: ").
pub fn rest_error_report_in(e: &RestError, context: &str, funcname: &'static str) -> ErrorReport {
    let (code, hint) = match e {
        RestError::BadUrl { .. } => (
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "Give a URL of the form http://host:port, e.g. http://127.0.0.1:8081.".to_string(),
        ),
        RestError::Unreachable { .. } => (
            PgSqlErrorCode::ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            "Check that the service is running (scripts/stack.sh status) and that host and port are right."
                .to_string(),
        ),
        RestError::Timeout { .. } => (
            PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            "The service is up but slow or stuck; check its log, or raise pg_flink.http_timeout_ms.".to_string(),
        ),
        RestError::Status { .. } => (
            PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            "The service refused the request; its log has the details.".to_string(),
        ),
        RestError::Decode { .. } => (
            PgSqlErrorCode::ERRCODE_PROTOCOL_VIOLATION,
            "Check that the URL points at the right service (JobManager REST on 8081, SQL Gateway on 8083) and that its version is supported (Flink 1.20 or 2.x).".to_string(),
        ),
        RestError::Statement { .. } => (
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
            "Fix the statement named in the message; the detail holds Flink's own trace.".to_string(),
        ),
    };
    let mut report = ErrorReport::new(code, format!("{context}{e}"), funcname).set_hint(hint);
    if let RestError::Statement { trace, .. } = e {
        report = report.set_detail(clip(&crate::flink::cause_chain(trace), MAX_DETAIL));
    }
    report
}

/// Raises a REST failure as an ERROR.
pub fn raise_rest(e: &RestError, funcname: &'static str) -> ! {
    rest_error_report(e, funcname).report_error()
}

/// Raises an ERROR with a SQLSTATE, message and hint.
pub fn raise(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    hint: impl Into<String>,
    funcname: &'static str,
) -> ! {
    ErrorReport::new(code, message, funcname)
        .set_hint(hint)
        .report_error()
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n…", &s[..end])
}
