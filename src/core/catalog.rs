//! Datasource kinds and their option schemas: validation, defaults, secrets.
//!
//! Every kind has a documented schema (docs/datasources.md): required keys, optional keys with
//! defaults and types, and which keys are secrets. `validate` turns user JSON into normalised
//! options (defaults filled in, so re-registering with an explicit default is not a change) and
//! secrets, or a [`CatalogError`] naming the datasource and the key at fault.
use serde_json::{Map, Value};

/// Datasource kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kafka,
    Elasticsearch,
    Postgres,
    Mysql,
}

pub const KINDS: [&str; 4] = ["kafka", "elasticsearch", "postgres", "mysql"];

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "kafka" => Some(Kind::Kafka),
            "elasticsearch" => Some(Kind::Elasticsearch),
            "postgres" => Some(Kind::Postgres),
            "mysql" => Some(Kind::Mysql),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kafka => "kafka",
            Kind::Elasticsearch => "elasticsearch",
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
        }
    }

    pub fn spec(self) -> &'static [OptSpec] {
        match self {
            Kind::Kafka => KAFKA,
            Kind::Elasticsearch => ELASTICSEARCH,
            Kind::Postgres => POSTGRES,
            Kind::Mysql => MYSQL,
        }
    }
}

/// The type of an option value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptType {
    Str,
    /// Integer within bounds.
    Int(i64, i64),
    Bool,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// `host:port[,host:port...]`.
    HostPorts,
    /// A host name or IP address (no port, no scheme).
    Host,
    /// An http(s) URL.
    Url,
    /// An object of string values (extra client properties).
    StrMap,
}

/// One option of a kind.
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

const fn opt(key: &'static str, ty: OptType, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        ty,
        required: false,
        default: None,
        secret: false,
        doc,
    }
}
const fn req(key: &'static str, ty: OptType, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        ty,
        required: true,
        default: None,
        secret: false,
        doc,
    }
}
const fn def(key: &'static str, ty: OptType, default: &'static str, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        ty,
        required: false,
        default: Some(default),
        secret: false,
        doc,
    }
}
const fn secret(key: &'static str, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        ty: OptType::Str,
        required: false,
        default: None,
        secret: true,
        doc,
    }
}

const TIMEOUT: OptSpec = def(
    "timeout_ms",
    OptType::Int(100, 600_000),
    "10000",
    "upper bound of connection tests and metadata calls",
);

static KAFKA: &[OptSpec] = &[
    req(
        "bootstrap_servers",
        OptType::HostPorts,
        "brokers, host:port[,host:port]",
    ),
    def(
        "security_protocol",
        OptType::Enum(&["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
        "\"PLAINTEXT\"",
        "security.protocol",
    ),
    opt(
        "sasl_mechanism",
        OptType::Enum(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        "sasl.mechanism",
    ),
    opt("sasl_username", OptType::Str, "SASL user name"),
    opt(
        "properties",
        OptType::StrMap,
        "extra client properties (non-secret)",
    ),
    TIMEOUT,
    secret("sasl_password", "SASL password"),
];

static ELASTICSEARCH: &[OptSpec] = &[
    req("url", OptType::Url, "http(s)://host:port of the cluster"),
    opt("username", OptType::Str, "basic-auth user"),
    TIMEOUT,
    secret("password", "basic-auth password"),
    secret("api_key", "API key (sent as Authorization: ApiKey)"),
];

static POSTGRES: &[OptSpec] = &[
    req("host", OptType::Host, "server host"),
    def("port", OptType::Int(1, 65535), "5432", "server port"),
    req("database", OptType::Str, "database name"),
    def("user", OptType::Str, "\"postgres\"", "user name"),
    def(
        "schema",
        OptType::Str,
        "\"public\"",
        "default schema of objects",
    ),
    def(
        "sslmode",
        OptType::Enum(&["disable", "prefer"]),
        "\"prefer\"",
        "TLS mode (TLS connections are not supported yet: prefer falls back to plain)",
    ),
    TIMEOUT,
    secret("password", "password"),
];

static MYSQL: &[OptSpec] = &[
    req("host", OptType::Host, "server host"),
    def("port", OptType::Int(1, 65535), "3306", "server port"),
    req("database", OptType::Str, "database name"),
    def("user", OptType::Str, "\"root\"", "user name"),
    TIMEOUT,
    secret("password", "password"),
];

/// What went wrong, as a Postgres error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 22023
    InvalidParameter,
    /// 22004
    NullValue,
    /// 42809
    WrongObjectType,
    /// 42704
    UndefinedObject,
    /// 2BP01
    DependentObjects,
    /// 42804
    DatatypeMismatch,
}

/// A catalog error: message names the object and key; hint says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CatalogError {
    pub class: ErrorClass,
    pub message: String,
    pub hint: String,
}

fn invalid(
    ds: &str,
    key: &str,
    what: impl std::fmt::Display,
    hint: impl Into<String>,
) -> CatalogError {
    invalid_for(&format!("datasource \"{ds}\""), key, what, hint)
}

/// An invalid option of `owner` (`datasource "x"`, `cluster "y"`).
fn invalid_for(
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

/// Maximum length of a catalog name and of a single string option.
pub const MAX_NAME: usize = 63;
pub const MAX_VALUE: usize = 4096;

/// Checks a catalog object name: 1-63 characters, letters, digits, `_`, `-`, `.`, starting with a
/// letter or `_`.
pub fn check_name(what: &str, name: Option<&str>) -> Result<String, CatalogError> {
    let name = name.ok_or_else(|| CatalogError {
        class: ErrorClass::NullValue,
        message: format!("{what} name must not be null"),
        hint: format!("Pass a {what} name such as 'orders_kafka'."),
    })?;
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if name.is_empty() || name.len() > MAX_NAME || !ok_chars || !ok_start {
        return Err(CatalogError {
            class: ErrorClass::InvalidParameter,
            message: format!("invalid {what} name \"{}\"", shorten(name)),
            hint: format!(
                "A {what} name has 1 to {MAX_NAME} characters: letters, digits, '_', '-' or '.', starting with a letter or '_'."
            ),
        });
    }
    Ok(name.to_string())
}

fn shorten(s: &str) -> String {
    crate::core::text::ellipsis(s, 40)
}

/// Parses a kind name.
pub fn check_kind(ds: &str, kind: Option<&str>) -> Result<Kind, CatalogError> {
    let k = kind.unwrap_or("");
    Kind::parse(k).ok_or_else(|| {
        let hint = match did_you_mean(k, KINDS.iter().copied()) {
            Some(s) => format!("Did you mean \"{s}\"? Kinds: {}.", KINDS.join(", ")),
            None => format!("Kinds: {}.", KINDS.join(", ")),
        };
        CatalogError {
            class: ErrorClass::InvalidParameter,
            message: format!("datasource \"{ds}\": unknown kind \"{}\"", shorten(k)),
            hint,
        }
    })
}

/// Options and secrets after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub options: Map<String, Value>,
    pub secrets: Map<String, Value>,
}

/// Validates `options` and `secrets` of datasource `ds` of `kind`.
pub fn validate(
    ds: &str,
    kind: Kind,
    options: Option<&Value>,
    secrets: Option<&Value>,
) -> Result<Validated, CatalogError> {
    let spec = kind.spec();
    let empty = Map::new();
    let opts = match options {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(CatalogError {
                class: ErrorClass::InvalidParameter,
                message: format!(
                    "datasource \"{ds}\": options must be a JSON object, not {}",
                    json_type(other)
                ),
                hint: format!(
                    "Pass options as '{{\"key\": value}}'; keys of kind {}: {}.",
                    kind.as_str(),
                    keys(spec, false)
                ),
            })
        }
    };
    let secs = match secrets {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(CatalogError {
                class: ErrorClass::InvalidParameter,
                message: format!(
                    "datasource \"{ds}\": secrets must be a JSON object, not {}",
                    json_type(other)
                ),
                hint: format!(
                    "Pass secrets as '{{\"key\": \"value\"}}'; secret keys of kind {}: {}.",
                    kind.as_str(),
                    keys(spec, true)
                ),
            })
        }
    };

    let owner = format!("datasource \"{ds}\"");
    let mut out = Map::new();
    for (key, value) in opts {
        let Some(s) = spec.iter().find(|s| s.key == key) else {
            return Err(unknown_key(ds, kind, key, spec, false));
        };
        if s.secret {
            return Err(CatalogError {
                class: ErrorClass::InvalidParameter,
                // The value is a secret: never echo it.
                message: format!(
                    "datasource \"{ds}\": \"{key}\" is a secret and cannot be an option"
                ),
                hint: format!(
                    "Pass it in the secrets argument: secrets => '{{\"{key}\": \"...\"}}'."
                ),
            });
        }
        out.insert(key.clone(), check_value(&owner, s, value)?);
    }
    for s in spec.iter().filter(|s| !s.secret) {
        if out.contains_key(s.key) {
            continue;
        }
        if s.required {
            return Err(invalid(
                ds,
                s.key,
                format!("is required for kind {}", kind.as_str()),
                format!("Add \"{}\" ({}) to the options.", s.key, s.doc),
            ));
        }
        if let Some(d) = s.default {
            if let Ok(v) = serde_json::from_str(d) {
                out.insert(s.key.to_string(), v);
            }
        }
    }

    let mut sec = Map::new();
    for (key, value) in secs {
        let Some(s) = spec.iter().find(|s| s.key == key && s.secret) else {
            return Err(unknown_key(ds, kind, key, spec, true));
        };
        match value {
            Value::String(v) if !v.is_empty() && v.len() <= MAX_VALUE => {
                sec.insert(s.key.to_string(), value.clone());
            }
            // Never echo a secret value, not even a malformed one.
            Value::String(_) => {
                return Err(invalid(
                    ds,
                    key,
                    format!("must be a non-empty string of at most {MAX_VALUE} bytes"),
                    "Check the secret's value.",
                ))
            }
            other => {
                return Err(invalid(
                    ds,
                    key,
                    format!("must be a string, not {}", json_type(other)),
                    "Secrets are strings.",
                ))
            }
        }
    }
    cross_checks(ds, kind, &out, &sec)?;
    Ok(Validated {
        options: out,
        secrets: sec,
    })
}

fn cross_checks(
    ds: &str,
    kind: Kind,
    o: &Map<String, Value>,
    s: &Map<String, Value>,
) -> Result<(), CatalogError> {
    if kind == Kind::Kafka {
        let proto = o
            .get("security_protocol")
            .and_then(Value::as_str)
            .unwrap_or("PLAINTEXT");
        let sasl = proto.starts_with("SASL");
        if sasl
            && (!o.contains_key("sasl_mechanism")
                || !o.contains_key("sasl_username")
                || !s.contains_key("sasl_password"))
        {
            return Err(invalid(
                ds,
                "security_protocol",
                format!("{proto} needs sasl_mechanism, sasl_username and the secret sasl_password"),
                "Add the SASL options, or use security_protocol PLAINTEXT or SSL.",
            ));
        }
        if !sasl && (o.contains_key("sasl_mechanism") || s.contains_key("sasl_password")) {
            return Err(invalid(
                ds,
                "sasl_mechanism",
                format!("is only used with a SASL security_protocol, not {proto}"),
                "Set security_protocol to SASL_PLAINTEXT or SASL_SSL, or drop the SASL settings.",
            ));
        }
    }
    Ok(())
}

fn unknown_key(ds: &str, kind: Kind, key: &str, spec: &[OptSpec], secret: bool) -> CatalogError {
    let shown = shorten(key);
    let what = if secret { "secret" } else { "option" };
    let candidates = spec.iter().filter(|s| s.secret == secret).map(|s| s.key);
    let mut hint = match did_you_mean(key, candidates) {
        Some(s) => format!("Did you mean \"{s}\"? "),
        None => String::new(),
    };
    // A secret given as an option or the other way round.
    if !secret && spec.iter().any(|s| s.secret && s.key == key) {
        hint = format!("\"{key}\" is a secret: pass it in the secrets argument. ");
    } else if secret && spec.iter().any(|s| !s.secret && s.key == key) {
        hint = format!("\"{key}\" is not a secret: pass it in options. ");
    }
    hint.push_str(&format!(
        "{} keys of kind {}: {}.",
        if secret { "Secret" } else { "Option" },
        kind.as_str(),
        keys(spec, secret)
    ));
    CatalogError {
        class: ErrorClass::InvalidParameter,
        message: format!(
            "datasource \"{ds}\": unknown {what} \"{shown}\" for kind {}",
            kind.as_str()
        ),
        hint,
    }
}

fn keys(spec: &[OptSpec], secret: bool) -> String {
    spec.iter()
        .filter(|s| s.secret == secret)
        .map(|s| s.key)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks one option value; errors are worded for `owner` (`datasource "x"`, `cluster "y"`).
fn check_value(owner: &str, s: &OptSpec, v: &Value) -> Result<Value, CatalogError> {
    let key = s.key;
    let want_string = |v: &Value| -> Result<String, CatalogError> {
        match v {
            Value::String(x) if x.trim().is_empty() => Err(invalid_for(
                owner,
                key,
                "must not be empty",
                format!("Give {}.", s.doc),
            )),
            Value::String(x) if x.len() > MAX_VALUE => Err(invalid_for(
                owner,
                key,
                format!("is longer than {MAX_VALUE} bytes"),
                "Shorten the value.",
            )),
            Value::String(x) => Ok(x.clone()),
            other => Err(invalid_for(
                owner,
                key,
                format!("must be a string, not {}", json_type(other)),
                format!("Give {} as a JSON string.", s.doc),
            )),
        }
    };
    match s.ty {
        OptType::Str => want_string(v).map(Value::String),
        OptType::Int(min, max) => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                // Accept "5432" too: migrations often build JSON from text.
                Value::String(x) => x.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if (min..=max).contains(&n) => Ok(Value::from(n)),
                Some(n) => Err(invalid_for(
                    owner,
                    key,
                    format!("must be between {min} and {max}, got {n}"),
                    format!("Give {}.", s.doc),
                )),
                None => Err(invalid_for(
                    owner,
                    key,
                    format!("must be an integer, not {}", json_type(v)),
                    format!("Give {} as a number.", s.doc),
                )),
            }
        }
        OptType::Bool => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            other => Err(invalid_for(
                owner,
                key,
                format!("must be true or false, not {}", json_type(other)),
                "Use a JSON boolean.",
            )),
        },
        OptType::Enum(allowed) => {
            let x = want_string(v)?;
            match allowed.iter().find(|a| a.eq_ignore_ascii_case(&x)) {
                Some(a) => Ok(Value::String(a.to_string())),
                None => Err(invalid_for(
                    owner,
                    key,
                    format!(
                        "must be one of {}, got \"{}\"",
                        allowed.join(", "),
                        shorten(&x)
                    ),
                    match did_you_mean(&x, allowed.iter().copied()) {
                        Some(d) => format!("Did you mean \"{d}\"?"),
                        None => format!("Allowed values: {}.", allowed.join(", ")),
                    },
                )),
            }
        }
        OptType::HostPorts => {
            let x = want_string(v)?;
            for part in x.split(',') {
                parse_host_port(part.trim()).map_err(|why| {
                    invalid_for(
                        owner,
                        key,
                        format!("has a malformed broker \"{}\": {why}", shorten(part.trim())),
                        "Use host:port[,host:port], e.g. 127.0.0.1:9092.",
                    )
                })?;
            }
            Ok(Value::String(
                x.split(',').map(str::trim).collect::<Vec<_>>().join(","),
            ))
        }
        OptType::Host => {
            let x = want_string(v)?;
            if !valid_host(x.trim()) {
                return Err(invalid_for(owner, key, format!("is not a host name or IP address: \"{}\"", shorten(&x)), "Give a host without scheme or port, e.g. 127.0.0.1; the port is a separate option."));
            }
            Ok(Value::String(x.trim().to_string()))
        }
        OptType::Url => {
            let x = want_string(v)?;
            let u = crate::core::urls::parse_base_url(&x).map_err(|e| {
                invalid_for(
                    owner,
                    key,
                    format!("is not a valid URL: {}", e.0),
                    "Use http(s)://host:port, e.g. http://127.0.0.1:9200.",
                )
            })?;
            if !u.username().is_empty() || u.password().is_some() {
                return Err(invalid_for(
                    owner,
                    key,
                    "must not contain credentials",
                    "Put the user in \"username\" and the password in secrets.",
                ));
            }
            Ok(Value::String(crate::core::urls::redact(&u)))
        }
        OptType::StrMap => match v {
            Value::Object(m) => {
                for (k, val) in m {
                    if !val.is_string() {
                        return Err(invalid_for(
                            owner,
                            key,
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
                        return Err(invalid_for(
                            owner,
                            key,
                            format!("entry \"{}\" looks like a secret", shorten(k)),
                            "Secrets go in the secrets argument, never in options.",
                        ));
                    }
                }
                Ok(v.clone())
            }
            other => Err(invalid_for(
                owner,
                key,
                format!("must be a JSON object, not {}", json_type(other)),
                "Give client properties as {\"name\": \"value\"}.",
            )),
        },
    }
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

/// Closest candidate within edit distance 2 (or a case-insensitive match).
pub fn did_you_mean<'a>(input: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(&lower, &c.to_ascii_lowercase());
        if d <= 2.max(input.len() / 4) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(128).collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Options with secrets masked, for display: every secret key present shows as "***".
pub fn masked(options: &Map<String, Value>, secret_keys: &[String]) -> Map<String, Value> {
    let mut m = options.clone();
    for k in secret_keys {
        m.insert(k.clone(), Value::String("***".into()));
    }
    m
}

/// Validates the options of a cluster: `default` (bool), `timeout_ms`, `session_properties`
/// (Flink options set on every gateway session, strings), `description` (text).
pub fn validate_cluster_options(
    name: &str,
    options: Option<&Value>,
) -> Result<Map<String, Value>, CatalogError> {
    static SPEC: &[OptSpec] = &[
        def(
            "default",
            OptType::Bool,
            "false",
            "whether this is the default cluster",
        ),
        TIMEOUT,
        opt(
            "session_properties",
            OptType::StrMap,
            "Flink options set on every SQL Gateway session",
        ),
        opt("description", OptType::Str, "free text"),
    ];
    let m =
        match options {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(CatalogError {
                class: ErrorClass::InvalidParameter,
                message: format!(
                    "cluster \"{name}\": options must be a JSON object, not {}",
                    json_type(other)
                ),
                hint: "Options of a cluster: default, timeout_ms, session_properties, description."
                    .into(),
            }),
        };
    let mut out = Map::new();
    for (k, v) in &m {
        let Some(s) = SPEC.iter().find(|s| s.key == k) else {
            let hint = match did_you_mean(k, SPEC.iter().map(|s| s.key)) {
                Some(d) => format!("Did you mean \"{d}\"? Options of a cluster: default, timeout_ms, session_properties, description."),
                None => "Options of a cluster: default, timeout_ms, session_properties, description.".into(),
            };
            return Err(CatalogError {
                class: ErrorClass::InvalidParameter,
                message: format!("cluster \"{name}\": unknown option \"{}\"", shorten(k)),
                hint,
            });
        };
        let checked = check_value(&format!("cluster \"{name}\""), s, v)?;
        out.insert(k.clone(), checked);
    }
    for s in SPEC {
        if let (false, Some(d)) = (out.contains_key(s.key), s.default) {
            if let Ok(v) = serde_json::from_str(d) {
                out.insert(s.key.to_string(), v);
            }
        }
    }
    Ok(out)
}

/// Replaces every secret value that occurs in `text` with `***` (for error texts that come from
/// client libraries and remote services).
pub fn scrub(text: &str, secrets: &Map<String, Value>) -> String {
    let mut out = text.to_string();
    for v in secrets.values() {
        if let Some(s) = v.as_str() {
            if s.len() >= 3 {
                out = out.replace(s, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(kind: Kind, o: Value, s: Option<Value>) -> CatalogError {
        validate("ds1", kind, Some(&o), s.as_ref()).unwrap_err()
    }

    #[test]
    fn fills_defaults_and_normalises() {
        let v = validate(
            "pg",
            Kind::Postgres,
            Some(&json!({"host": "127.0.0.1", "database": "d", "port": "5433"})),
            Some(&json!({"password": "pw"})),
        )
        .unwrap();
        assert_eq!(v.options["port"], json!(5433));
        assert_eq!(v.options["user"], json!("postgres"));
        assert_eq!(v.options["sslmode"], json!("prefer"));
        assert_eq!(v.options["timeout_ms"], json!(10000));
        assert_eq!(v.secrets["password"], json!("pw"));
        let k = validate(
            "k",
            Kind::Kafka,
            Some(&json!({"bootstrap_servers": " 127.0.0.1:9092 , h2:9093"})),
            None,
        )
        .unwrap();
        assert_eq!(
            k.options["bootstrap_servers"],
            json!("127.0.0.1:9092,h2:9093")
        );
        let e = validate(
            "e",
            Kind::Elasticsearch,
            Some(&json!({"url": "http://127.0.0.1:9200/"})),
            None,
        )
        .unwrap();
        assert_eq!(e.options["url"], json!("http://127.0.0.1:9200"));
    }

    #[test]
    fn explicit_default_equals_implicit() {
        let a = validate(
            "m",
            Kind::Mysql,
            Some(&json!({"host": "h", "database": "d"})),
            None,
        )
        .unwrap();
        let b = validate(
            "m",
            Kind::Mysql,
            Some(&json!({"host": "h", "database": "d", "port": 3306, "user": "root"})),
            None,
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn missing_required_key_names_it() {
        let e = err(Kind::Postgres, json!({"host": "h"}), None);
        assert_eq!(
            e.message,
            "datasource \"ds1\": option \"database\" is required for kind postgres"
        );
        assert_eq!(e.class, ErrorClass::InvalidParameter);
    }

    #[test]
    fn unknown_key_suggests_near_miss() {
        let e = err(Kind::Kafka, json!({"bootstrap_server": "h:1"}), None);
        assert!(e.message.contains("unknown option \"bootstrap_server\""));
        assert!(
            e.hint.starts_with("Did you mean \"bootstrap_servers\"?"),
            "{}",
            e.hint
        );
        let e = err(
            Kind::Postgres,
            json!({"host": "h", "database": "d", "prot": 1}),
            None,
        );
        assert!(e.hint.contains("Did you mean \"port\"?"), "{}", e.hint);
    }

    #[test]
    fn wrong_types_and_ranges() {
        assert!(err(
            Kind::Postgres,
            json!({"host": "h", "database": "d", "port": 70000}),
            None
        )
        .message
        .contains("between 1 and 65535, got 70000"));
        assert!(
            err(Kind::Postgres, json!({"host": "h", "database": 5}), None)
                .message
                .contains("must be a string, not a number")
        );
        assert!(err(
            Kind::Postgres,
            json!({"host": "h:5432", "database": "d"}),
            None
        )
        .message
        .contains("not a host name"));
        assert!(err(
            Kind::Kafka,
            json!({"bootstrap_servers": "nohostport"}),
            None
        )
        .message
        .contains("malformed broker"));
        assert!(err(Kind::Kafka, json!({"bootstrap_servers": "h:0"}), None)
            .message
            .contains("malformed broker"));
        assert!(err(Kind::Elasticsearch, json!({"url": "ftp://x"}), None)
            .message
            .contains("not a valid URL"));
        assert!(err(
            Kind::Postgres,
            json!({"host": "h", "database": "d", "sslmode": "prefe"}),
            None
        )
        .hint
        .contains("Did you mean \"prefer\"?"));
        let e = validate("x", Kind::Kafka, Some(&json!([1])), None).unwrap_err();
        assert!(e
            .message
            .contains("options must be a JSON object, not an array"));
    }

    #[test]
    fn secrets_are_never_echoed() {
        let e = err(
            Kind::Postgres,
            json!({"host": "h", "database": "d", "password": "hunter2"}),
            None,
        );
        assert!(e.message.contains("is a secret"));
        assert!(!format!("{e:?}").contains("hunter2"));
        let e = err(
            Kind::Elasticsearch,
            json!({"url": "http://u:hunter2@h:1"}),
            None,
        );
        assert!(!format!("{e:?}").contains("hunter2"));
        let e = err(
            Kind::Postgres,
            json!({"host": "h", "database": "d"}),
            Some(json!({"pasword": "hunter2"})),
        );
        assert!(e.hint.contains("Did you mean \"password\"?"));
        assert!(!format!("{e:?}").contains("hunter2"));
        let e = err(
            Kind::Postgres,
            json!({"host": "h", "database": "d"}),
            Some(json!({"password": 42})),
        );
        assert!(e.message.contains("must be a string"));
        let e = err(
            Kind::Kafka,
            json!({"bootstrap_servers": "h:1", "properties": {"sasl.jaas.config": "hunter2"}}),
            None,
        );
        assert!(e.message.contains("looks like a secret") && !format!("{e:?}").contains("hunter2"));
    }

    #[test]
    fn kafka_sasl_consistency() {
        let e = err(
            Kind::Kafka,
            json!({"bootstrap_servers": "h:1", "security_protocol": "SASL_SSL"}),
            None,
        );
        assert!(e.message.contains("needs sasl_mechanism"));
        let ok = validate(
            "k",
            Kind::Kafka,
            Some(
                &json!({"bootstrap_servers": "h:1", "security_protocol": "sasl_ssl", "sasl_mechanism": "PLAIN", "sasl_username": "u"}),
            ),
            Some(&json!({"sasl_password": "p"})),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn names_and_kinds() {
        assert!(check_name("datasource", Some("orders_kafka-1.x")).is_ok());
        for bad in ["", "1abc", "a b", "x'); drop table t; --", &"a".repeat(64)] {
            assert!(check_name("datasource", Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            check_name("datasource", None).unwrap_err().class,
            ErrorClass::NullValue
        );
        let e = check_kind("d", Some("kafak")).unwrap_err();
        assert!(e.hint.starts_with("Did you mean \"kafka\"?"));
    }

    #[test]
    fn masking() {
        let m = masked(
            &Map::from_iter([("host".to_string(), json!("h"))]),
            &["password".to_string()],
        );
        assert_eq!(Value::Object(m), json!({"host": "h", "password": "***"}));
    }
}
