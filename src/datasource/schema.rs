//! Option schemas: the types an option value may have ([`OptType`]), one documented option
//! ([`OptSpec`], built with [`opt`], [`req`], [`def`], [`secret`]), and [`check_value`], which
//! checks and normalises one value against its spec.
//!
//! Nothing here knows about datasources: errors are worded for an `owner` string
//! (`datasource "x"`, `cluster "y"`), so any option table (clusters today, foreign servers and
//! tables later) can use the same types.
use super::catalog::{CatalogError, ErrorClass};
use crate::core::messages::{did_you_mean, json_type};
use serde_json::Value;

/// Maximum length of a single string option.
pub const MAX_VALUE: usize = 4096;

/// The type of an option value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptType {
    Str,
    /// Integer within bounds.
    Int(i64, i64),
    Bool,
    /// One of these strings, case-insensitively (normalised to the listed spelling).
    Enum(&'static [&'static str]),
    /// One of these strings exactly (for values used as given, e.g. foreign-table options).
    Exact(&'static [&'static str]),
    /// `host:port[,host:port...]`.
    HostPorts,
    /// A host name or IP address (no port, no scheme).
    Host,
    /// An http(s) URL.
    Url,
    /// An object of string values (extra client properties).
    StrMap,
}

/// One option of a schema.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub key: &'static str,
    pub ty: OptType,
    pub required: bool,
    /// JSON text of the default, if any.
    pub default: Option<&'static str>,
    pub secret: bool,
    pub doc: &'static str,
}

/// An optional option without default.
pub const fn opt(key: &'static str, ty: OptType, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        ty,
        required: false,
        default: None,
        secret: false,
        doc,
    }
}

/// A required option.
pub const fn req(key: &'static str, ty: OptType, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        ty,
        required: true,
        default: None,
        secret: false,
        doc,
    }
}

/// An optional option with a default (JSON text).
pub const fn def(
    key: &'static str,
    ty: OptType,
    default: &'static str,
    doc: &'static str,
) -> OptSpec {
    OptSpec {
        key,
        ty,
        required: false,
        default: Some(default),
        secret: false,
        doc,
    }
}

/// A secret (a string, stored apart from the options and never echoed).
pub const fn secret(key: &'static str, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        ty: OptType::Str,
        required: false,
        default: None,
        secret: true,
        doc,
    }
}

/// A positive integer (counts, sizes, milliseconds).
pub const POSITIVE: OptType = OptType::Int(1, i64::MAX);

/// `timeout_ms`, shared by every datasource kind and by clusters.
pub const TIMEOUT: OptSpec = def(
    "timeout_ms",
    OptType::Int(100, 600_000),
    "10000",
    "upper bound of connection tests and metadata calls",
);

/// Keys of `spec` that are (or are not) secrets, comma-separated.
pub fn keys(spec: &[OptSpec], secret: bool) -> String {
    spec.iter()
        .filter(|s| s.secret == secret)
        .map(|s| s.key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An invalid option of `owner` (`datasource "x"`, `cluster "y"`).
pub(crate) fn invalid_for(
    owner: &str,
    key: &str,
    what: impl std::fmt::Display,
    hint: impl Into<String>,
) -> CatalogError {
    CatalogError {
        class: ErrorClass::InvalidParameter,
        message: format!("{owner}: option \"{key}\" {what}"),
        hint: hint.into(),
    }
}

pub(crate) fn shorten(s: &str) -> String {
    crate::core::messages::ellipsis(s, 40)
}

/// The option being checked, for error messages.
struct Checked<'a> {
    owner: &'a str,
    spec: &'a OptSpec,
}

impl Checked<'_> {
    fn invalid(&self, what: impl std::fmt::Display, hint: impl Into<String>) -> CatalogError {
        invalid_for(self.owner, self.spec.key, what, hint)
    }
}

/// Checks one option value; errors are worded for `owner` (`datasource "x"`, `cluster "y"`).
/// Returns the normalised value.
pub fn check_value(owner: &str, spec: &OptSpec, v: &Value) -> Result<Value, CatalogError> {
    let at = Checked { owner, spec };
    match spec.ty {
        OptType::Str => want_string(&at, v).map(Value::String),
        OptType::Int(min, max) => check_int(&at, v, min, max),
        OptType::Bool => check_bool(&at, v),
        OptType::Enum(allowed) => check_enum(&at, v, allowed, false),
        OptType::Exact(allowed) => check_enum(&at, v, allowed, true),
        OptType::HostPorts => check_host_ports(&at, v),
        OptType::Host => check_host(&at, v),
        OptType::Url => check_url(&at, v),
        OptType::StrMap => check_str_map(&at, v),
    }
}

/// A non-empty string of at most [`MAX_VALUE`] bytes.
fn want_string(at: &Checked, v: &Value) -> Result<String, CatalogError> {
    match v {
        Value::String(x) if x.trim().is_empty() => {
            Err(at.invalid("must not be empty", format!("Give {}.", at.spec.doc)))
        }
        Value::String(x) if x.len() > MAX_VALUE => Err(at.invalid(
            format!("is longer than {MAX_VALUE} bytes"),
            "Shorten the value.",
        )),
        Value::String(x) => Ok(x.clone()),
        other => Err(at.invalid(
            format!("must be a string, not {}", json_type(other)),
            format!("Give {} as a JSON string.", at.spec.doc),
        )),
    }
}

fn check_int(at: &Checked, v: &Value, min: i64, max: i64) -> Result<Value, CatalogError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        // Accept "5432" too: migrations often build JSON from text.
        Value::String(x) => x.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Value::from(n)),
        Some(n) if max == i64::MAX => Err(at.invalid(
            format!("must be at least {min}, got {n}"),
            format!("Give {}.", at.spec.doc),
        )),
        Some(n) => Err(at.invalid(
            format!("must be between {min} and {max}, got {n}"),
            format!("Give {}.", at.spec.doc),
        )),
        None => Err(at.invalid(
            format!("must be an integer, not {}", json_type(v)),
            format!("Give {} as a number.", at.spec.doc),
        )),
    }
}

fn check_bool(at: &Checked, v: &Value) -> Result<Value, CatalogError> {
    match v {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        other => Err(at.invalid(
            format!("must be true or false, not {}", json_type(other)),
            "Use a JSON boolean.",
        )),
    }
}

/// One of `allowed` (case-insensitively unless `exact`); normalised to the allowed spelling.
fn check_enum(
    at: &Checked,
    v: &Value,
    allowed: &[&str],
    exact: bool,
) -> Result<Value, CatalogError> {
    let x = want_string(at, v)?;
    let same = |a: &&&str| {
        if exact {
            **a == x
        } else {
            a.eq_ignore_ascii_case(&x)
        }
    };
    match allowed.iter().find(same) {
        Some(a) => Ok(Value::String(a.to_string())),
        None => Err(at.invalid(
            format!(
                "must be one of {}, got \"{}\"",
                listed(allowed),
                shorten(&x)
            ),
            match did_you_mean(&x, allowed.iter().copied()) {
                Some(d) if x.chars().count() > 1 => format!("Did you mean \"{d}\"?"),
                _ => format!("Allowed values: {}.", listed(allowed)),
            },
        )),
    }
}

/// Allowed values for a message: as they are when they are words, quoted when punctuation
/// (`',', ';', '\t'`) would otherwise make the list unreadable.
fn listed(allowed: &[&str]) -> String {
    let words = allowed.iter().all(|a| {
        a.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    });
    allowed
        .iter()
        .map(|a| {
            if words {
                a.to_string()
            } else {
                format!("'{}'", a.escape_default())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `host:port[,host:port]`, normalised without spaces.
fn check_host_ports(at: &Checked, v: &Value) -> Result<Value, CatalogError> {
    let x = want_string(at, v)?;
    for part in x.split(',') {
        parse_host_port(part.trim()).map_err(|why| {
            at.invalid(
                format!("has a malformed broker \"{}\": {why}", shorten(part.trim())),
                "Use host:port[,host:port], e.g. 127.0.0.1:9092.",
            )
        })?;
    }
    Ok(Value::String(
        x.split(',').map(str::trim).collect::<Vec<_>>().join(","),
    ))
}

fn check_host(at: &Checked, v: &Value) -> Result<Value, CatalogError> {
    let x = want_string(at, v)?;
    if !valid_host(x.trim()) {
        return Err(at.invalid(
            format!("is not a host name or IP address: \"{}\"", shorten(&x)),
            "Give a host without scheme or port, e.g. 127.0.0.1; the port is a separate option.",
        ));
    }
    Ok(Value::String(x.trim().to_string()))
}

/// An http(s) URL without credentials, normalised.
fn check_url(at: &Checked, v: &Value) -> Result<Value, CatalogError> {
    let x = want_string(at, v)?;
    let u = crate::core::urls::parse_base_url(&x).map_err(|e| {
        at.invalid(
            format!("is not a valid URL: {}", e.0),
            "Use http(s)://host:port, e.g. http://127.0.0.1:9200.",
        )
    })?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(at.invalid(
            "must not contain credentials",
            "Put the user in \"username\" and the password in secrets.",
        ));
    }
    Ok(Value::String(crate::core::urls::redact(&u)))
}

/// An object of string values, none of which looks like a secret.
fn check_str_map(at: &Checked, v: &Value) -> Result<Value, CatalogError> {
    let Value::Object(m) = v else {
        return Err(at.invalid(
            format!("must be a JSON object, not {}", json_type(v)),
            "Give client properties as {\"name\": \"value\"}.",
        ));
    };
    for (k, val) in m {
        if !val.is_string() {
            return Err(at.invalid(
                format!(
                    "entry \"{}\" must be a string, not {}",
                    shorten(k),
                    json_type(val)
                ),
                "Client properties are strings.",
            ));
        }
        let lk = k.to_ascii_lowercase();
        if lk.contains("password") || lk.contains("secret") || lk.contains("jaas") {
            return Err(at.invalid(
                format!("entry \"{}\" looks like a secret", shorten(k)),
                "Secrets go in the secrets argument, never in options.",
            ));
        }
    }
    Ok(v.clone())
}

/// Splits `host:port`.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or("no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !valid_host(host) {
        return Err("bad host".into());
    }
    let port: u16 = port.parse().map_err(|_| "bad port".to_string())?;
    if port == 0 {
        return Err("port 0".into());
    }
    Ok((host.to_string(), port))
}

fn valid_host(h: &str) -> bool {
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// Inserts the default of every non-secret option of `spec` missing from `out`.
pub fn fill_defaults(spec: &[OptSpec], out: &mut serde_json::Map<String, Value>) {
    for s in spec.iter().filter(|s| !s.secret) {
        if let (false, Some(d)) = (out.contains_key(s.key), s.default) {
            if let Ok(v) = serde_json::from_str(d) {
                out.insert(s.key.to_string(), v);
            }
        }
    }
}
