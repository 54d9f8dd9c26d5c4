//! Test helpers shared by the pipeline tests: the documented examples
//! (tests/pipelines/examples.json) and their catalog, rendering an example, the golden-script
//! check of a template's examples (tests/golden/<name>.sql), table-driven error cases, and the
//! statement [`shape`] the injection property tests compare.
use super::*;
use crate::datasource::{self, Kind};
use serde_json::json;

const EXAMPLES: &str = include_str!("../../tests/pipelines/examples.json");

pub fn examples() -> Value {
    serde_json::from_str(EXAMPLES).unwrap()
}

/// The examples' catalog; secrets real (`reveal`) or masked.
pub fn catalog(reveal: bool) -> Catalog {
    let ex = examples();
    let mut c = Catalog::new();
    for (name, d) in ex["catalog"].as_object().unwrap() {
        let kind = Kind::parse(d["kind"].as_str().unwrap()).unwrap();
        let v = datasource::validate(name, kind, Some(&d["options"]), d.get("secrets")).unwrap();
        let mut options = v.options;
        for (k, s) in v.secrets {
            options.insert(k, if reveal { s } else { json!("***") });
        }
        c.insert(name.clone(), DatasourceInfo { kind, options });
    }
    c
}

/// The database the golden scripts are rendered for: a fixed instance, oid 16384, pg_flink_test.
pub static TEST_DB: std::sync::LazyLock<crate::control::identity::Database> =
    std::sync::LazyLock::new(|| crate::control::identity::Database {
        system_identifier: 7_300_000_000_000_000_001,
        oid: 16384,
        name: "pg_flink_test".into(),
    });

/// The definition of example pipeline `p` (database [`TEST_DB`], version 1).
pub fn definition(p: &Value) -> Definition<'_> {
    Definition {
        flink_version: None,
        name: p["name"].as_str().unwrap(),
        template: p["template"].as_str().unwrap(),
        params: &p["params"],
        options: &p["options"],
        database: &TEST_DB,
        version: 1,
    }
}

pub fn render_example(p: &Value, cat: &Catalog) -> Result<String, PipelineError> {
    render(&definition(p), cat)
}

/// The example pipeline called `name`.
pub fn example(name: &str) -> Value {
    examples()["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
        .clone()
}

/// The error of rendering `p` (with masked secrets).
pub fn err_of(p: &Value) -> PipelineError {
    render_example(p, &catalog(false)).unwrap_err()
}

/// Renders every example of `template` and compares it with its golden file; rendering is
/// deterministic and masked secrets stay masked. `UPDATE_GOLDEN=1` rewrites the files.
pub fn check_golden(template: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let cat = catalog(false);
    let mut seen = 0;
    for p in examples()["pipelines"].as_array().unwrap() {
        if p["template"] != template {
            continue;
        }
        seen += 1;
        let name = p["name"].as_str().unwrap();
        let script = render_example(p, &cat).unwrap_or_else(|e| panic!("{name}: {e} ({})", e.hint));
        let file = dir.join(format!("{name}.sql"));
        if update {
            std::fs::write(&file, &script).unwrap();
        }
        let want = std::fs::read_to_string(&file)
            .unwrap_or_else(|_| panic!("missing golden file {file:?}; run with UPDATE_GOLDEN=1"));
        assert_eq!(
            script, want,
            "{name}: rendered script differs from {file:?}"
        );
        // Deterministic: the same definition renders byte-identically.
        assert_eq!(render_example(p, &cat).unwrap(), script);
        // Masked for display.
        assert!(!script.contains("example-pw"), "{name}");
    }
    assert!(seen > 0, "template {template} has no example");
}

/// Changes an example pipeline.
pub type Mutation = Box<dyn Fn(&mut Value)>;

/// For each (example, change, expected message part): rendering the changed example fails with
/// a message containing the part, and a hint.
pub fn assert_errors(cases: Vec<(&str, Mutation, &str)>) {
    for (name, mutate, want) in cases {
        let mut p = example(name);
        mutate(&mut p);
        let e = err_of(&p);
        assert!(
            e.message.contains(want),
            "{name}: expected {want:?} in {:?}",
            e.message
        );
        assert!(!e.hint.is_empty());
    }
}

/// The script with every quoted token ('...', `...`) and comment replaced by a placeholder: the
/// statement "shape". An injected value that escaped its quotes would change it.
pub fn shape(script: &str) -> String {
    let mut out = String::new();
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '`' => {
                while let Some(q) = chars.next() {
                    if q == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push(if c == '\'' { 'S' } else { 'I' });
            }
            '-' if chars.peek() == Some(&'-') => {
                for l in chars.by_ref() {
                    if l == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}
