//! The catalog's own rules: object names, kind names, validating a datasource's options and
//! secrets against its kind's schema (defaults filled in, so re-registering with an explicit
//! default is not a change), masking and scrubbing secrets, and the [`CatalogError`] every
//! validation returns (message names the object and key at fault; hint says what to do).
use super::schema::{check_value, fill_defaults, invalid_for, keys, shorten, OptSpec, MAX_VALUE};
use super::{Kind, KINDS};
use crate::core::messages::{did_you_mean, json_type};
use serde_json::{Map, Value};

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

/// An invalid option of datasource `ds`.
pub(crate) fn invalid(
    ds: &str,
    key: &str,
    what: impl std::fmt::Display,
    hint: impl Into<String>,
) -> CatalogError {
    invalid_for(&format!("datasource \"{ds}\""), key, what, hint)
}

/// Maximum length of a catalog name.
pub const MAX_NAME: usize = 63;

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
    if let Some(s) = spec
        .iter()
        .find(|s| !s.secret && s.required && !out.contains_key(s.key))
    {
        return Err(invalid(
            ds,
            s.key,
            format!("is required for kind {}", kind.as_str()),
            format!("Add \"{}\" ({}) to the options.", s.key, s.doc),
        ));
    }
    fill_defaults(spec, &mut out);

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
    kind.cross_check(ds, &out, &sec)?;
    Ok(Validated {
        options: out,
        secrets: sec,
    })
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
    let known = keys(spec, secret);
    if known.is_empty() {
        hint.push_str(&format!(
            "Kind {} takes no {what}s: pass '{{}}'.",
            kind.as_str()
        ));
    } else {
        hint.push_str(&format!(
            "{} keys of kind {}: {known}.",
            if secret { "Secret" } else { "Option" },
            kind.as_str(),
        ));
    }
    CatalogError {
        class: ErrorClass::InvalidParameter,
        message: format!(
            "datasource \"{ds}\": unknown {what} \"{shown}\" for kind {}",
            kind.as_str()
        ),
        hint,
    }
}

/// Options with secrets masked, for display: every secret key present shows as "***".
pub fn masked(options: &Map<String, Value>, secret_keys: &[String]) -> Map<String, Value> {
    let mut m = options.clone();
    for k in secret_keys {
        m.insert(k.clone(), Value::String("***".into()));
    }
    m
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
    use crate::datasource::Kind;
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
