//! URL hygiene for service endpoints: parse, require http(s) and a host, and render without
//! credentials so that a URL can be shown in errors and logs.
use url::Url;

/// Why an endpoint URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(pub String);

/// Parses a base URL of an HTTP service (`http://host:port[/prefix]`).
pub fn parse_base_url(raw: &str) -> Result<Url, BadUrl> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(BadUrl("the URL is empty".into()));
    }
    let url = Url::parse(trimmed).map_err(|e| BadUrl(format!("not a URL ({e})")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(BadUrl(format!(
                "scheme '{other}' is not supported, use http:// or https://"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(BadUrl("the URL has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(BadUrl(
            "a base URL takes no query string or fragment".into(),
        ));
    }
    Ok(url)
}

/// The URL as it may be shown to users: user name and password removed.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.as_str().trim_end_matches('/').to_string()
}

/// Redacts a raw string that may or may not parse as a URL.
pub fn redact_str(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        // Only URLs with a host are echoed; "user:secret@..." without one parses as a path.
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => redact(&u),
        // Unparseable input is not echoed verbatim: it might hold a secret.
        _ => "<unparseable URL>".to_string(),
    }
}

/// Joins a path (starting with `/`) onto a base URL, keeping any base path prefix.
pub fn join(base: &Url, path: &str) -> String {
    let b = base.as_str().trim_end_matches('/');
    format!("{b}{path}")
}

/// `base` with `segs` appended as path segments (each one percent-encoded); None for a URL
/// that cannot take a path (never for one from [`parse_base_url`]).
pub fn with_segments(base: &Url, segs: &[&str]) -> Option<Url> {
    let mut url = base.clone();
    {
        let mut path = url.path_segments_mut().ok()?;
        path.pop_if_empty();
        for s in segs {
            path.push(s);
        }
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https() {
        assert_eq!(
            parse_base_url(" http://127.0.0.1:8081 ").unwrap().port(),
            Some(8081)
        );
        assert!(parse_base_url("https://flink.example:443/prefix").is_ok());
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        assert!(parse_base_url("").unwrap_err().0.contains("empty"));
        assert!(parse_base_url("ftp://x")
            .unwrap_err()
            .0
            .contains("scheme 'ftp'"));
        assert!(parse_base_url("127.0.0.1:8081").is_err());
        assert!(parse_base_url("http://h:1/?a=b")
            .unwrap_err()
            .0
            .contains("query"));
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn redaction_removes_credentials() {
        let u = parse_base_url("http://admin:s3cr3t@127.0.0.1:8083/").unwrap();
        let shown = redact(&u);
        assert_eq!(shown, "http://127.0.0.1:8083");
        assert!(!shown.contains("s3cr3t"));
        assert!(!redact_str("http://u:topsecret@h:1").contains("topsecret"));
        assert_eq!(redact_str("u:topsecret@@@"), "<unparseable URL>");
    }

    #[test]
    fn join_keeps_prefix() {
        let u = parse_base_url("http://h:1/flink/").unwrap();
        assert_eq!(join(&u, "/v3/info"), "http://h:1/flink/v3/info");
        let u = parse_base_url("http://h:1").unwrap();
        assert_eq!(join(&u, "/config"), "http://h:1/config");
    }
}
