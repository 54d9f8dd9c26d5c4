//! Property tests across templates (fixed seeds, 512 cases each): user-chosen names and values
//! never change a script's shape, and user-written expressions appear only where they are put,
//! whole, inside their parentheses — or are refused.
use crate::core::script::split_statements;
use crate::pipeline::testing::{catalog, render_example, shape};
use proptest::prelude::*;
use serde_json::{json, Value};

fn config(seed: u64) -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn cols(c: &str) -> Value {
    json!([{"name": c, "type": "STRING"}, {"name": "n", "type": "BIGINT"},
           {"name": "ts", "type": "TIMESTAMP(3)"}])
}

/// A pipeline of each new template (and the expression-bearing parts of the old ones) whose
/// names come from `c` (a column), `a` (an output name), `o` (an object) and `v` (a value).
fn pipelines(c: &str, a: &str, o: &str, v: &str) -> Vec<Value> {
    let src = json!({"datasource": "kafka_local", "object": format!("in{o}"), "columns": cols(c),
                     "event_time": "ts"});
    let sink = json!({"datasource": "kafka_local", "object": format!("out{o}")});
    vec![
        json!({"name": "t", "template": "top_n", "params": {
            "source": src, "partition_by": [c], "order_by": [{"column": "n"}], "n": 3,
            "rank_as": a, "sink": sink}, "options": {}}),
        json!({"name": "t", "template": "top_n", "params": {
            "source": src, "partition_by": [c], "order_by": [{"column": "n"}], "n": 2,
            "window": {"type": "tumble", "size": "1 minute"}, "rank_as": a, "sink": sink},
            "options": {}}),
        json!({"name": "l", "template": "lookup_join", "params": {
            "source": src,
            "lookup": {"datasource": "mysql_local", "object": format!("dim{o}"), "columns": cols(c)},
            "on": [{"left": c, "right": c}],
            "select": [{"side": "left", "column": "n"}, {"side": "right", "column": c, "as": a}],
            "cache": {"max_rows": 10, "ttl": "1 minute"}, "sink": sink}, "options": {}}),
        json!({"name": "j", "template": "temporal_join", "params": {
            "source": src,
            "versions": {"datasource": "kafka_local", "object": format!("v{o}"), "columns": cols(c),
                         "event_time": "ts"},
            "on": [{"left": c, "right": c}],
            "select": [{"side": "left", "column": "ts"}, {"side": "right", "column": "n", "as": a}],
            "sink": sink}, "options": {}}),
        json!({"name": "b", "template": "branches", "params": {"branches": [
            {"template": "filter_alert", "params": {"source": src,
                "conditions": [{"column": c, "op": "=", "value": v}],
                "enrich": [{"as": a, "value": v}], "sink": sink}},
            {"template": "deduplicate", "params": {"source": src, "key": [c], "order_by": "event_time",
                "sink": sink}}]},
            "options": {}}),
        json!({"name": "w", "template": "window_aggregate", "params": {
            "source": json!({"datasource": "kafka_local", "object": format!("in{o}"),
                "columns": cols(c), "event_time": "ts",
                "late": {"datasource": "kafka_local", "object": format!("late{o}")}}),
            "window": {"type": "tumble", "size": "1 minute", "start_as": a},
            "group_by": [c], "aggregates": [{"fn": "sum", "column": "n", "as": "s", "round": 1}],
            "sink": sink}, "options": {}}),
    ]
}

/// Breakout attempts and near-misses: quotes, comments, statement ends, clause words.
fn tricky() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("'".to_string()),
            Just("`".to_string()),
            Just("\"".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just(";".to_string()),
            Just(",".to_string()),
            Just("--".to_string()),
            Just("/*".to_string()),
            Just("*/".to_string()),
            Just(" FROM ".to_string()),
            Just(" SELECT ".to_string()),
            Just(" END ".to_string()),
            Just(" CASE WHEN ".to_string()),
            Just(" x ".to_string()),
            Just(" y ".to_string()),
            Just(" 1 ".to_string()),
            Just(" = ".to_string()),
            Just(" AND ".to_string()),
            Just("\n".to_string()),
            "[a-z]{1,3}",
        ],
        1..12,
    )
    .prop_map(|v| v.concat())
}

/// Valid expressions over columns x (BIGINT) and y (STRING).
fn valid() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_string()),
        Just("`y`".to_string()),
        (0i64..1000).prop_map(|n| n.to_string()),
        "[a-z;'\\-/* ]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) = ({b})")),
            inner.clone().prop_map(|a| format!("COALESCE({a}, 0)")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("CASE WHEN {a} IS NULL THEN {b} ELSE x END")),
            inner.prop_map(|a| format!("CAST({a} AS STRING)")),
        ]
    })
}

/// A window_aggregate and a filter_alert using `e` as source filter, computed column, aggregate
/// filter and row filter.
fn with_expr(e: &str) -> Vec<Value> {
    let src = json!({"datasource": "kafka_local", "object": "in",
        "columns": [{"name": "x", "type": "BIGINT"}, {"name": "y", "type": "STRING"},
                    {"name": "ts", "type": "TIMESTAMP(3)"}],
        "event_time": "ts", "filter": e,
        "computed": [{"name": "z", "expr": e, "type": "STRING"}]});
    let sink = json!({"datasource": "kafka_local", "object": "out"});
    vec![
        json!({"name": "e", "template": "window_aggregate", "params": {
            "source": src, "window": {"type": "tumble", "size": "1 minute"},
            "aggregates": [{"fn": "count", "as": "c", "filter": e}], "sink": sink},
            "options": {}}),
        json!({"name": "f", "template": "filter_alert", "params": {
            "source": src, "where": e, "sink": sink}, "options": {}}),
    ]
}

proptest! {
    #![proptest_config(config(0x7e3_f1ee))]

    /// Names and values chosen by users never change the shape of any new template's script
    /// (what is code, what is quoted) nor its number of statements.
    #[test]
    fn names_and_values_never_change_a_scripts_shape(
        c in "[^\\p{Cc}]{1,20}",
        a in "[^\\p{Cc}]{1,20}",
        o in "[A-Za-z0-9_.\\-]{0,12}",
        v in "[^\\x00]{0,30}",
    ) {
        prop_assume!(!["n", "ts", "proc_time", "s", "window_end", "window_start", "rank_no", "rownum"]
            .iter().any(|r| c.eq_ignore_ascii_case(r) || a.eq_ignore_ascii_case(r)));
        prop_assume!(!c.eq_ignore_ascii_case(&a));
        let cat = catalog(false);
        for (fuzzed, benign) in pipelines(&c, &a, &o, &v).iter().zip(pipelines("c", "a", "", "v")) {
            let good = render_example(&benign, &cat).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let s = render_example(fuzzed, &cat).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(shape(&s), shape(&good), "{}", benign["template"]);
            prop_assert_eq!(split_statements(&s).len(), split_statements(&good).len());
        }
    }
}

proptest! {
    #![proptest_config(config(0xe4_b1e5))]

    /// An accepted expression appears only where it is put, whole: replacing it by the plain
    /// expression `x` gives exactly the script written with `x`. Anything else is refused with
    /// an error naming the parameter.
    #[test]
    fn expressions_stay_where_they_are_put(e in prop_oneof![tricky(), valid()]) {
        let cat = catalog(false);
        for (fuzzed, benign) in with_expr(&e).iter().zip(with_expr("x")) {
            let good = render_example(&benign, &cat).map_err(|e| TestCaseError::fail(e.to_string()))?;
            match render_example(fuzzed, &cat) {
                Ok(s) => {
                    let trimmed = e.trim();
                    prop_assume!(trimmed != "x" && !good.contains(trimmed));
                    prop_assert_eq!(s.replace(trimmed, "x"), good.clone());
                    prop_assert_eq!(split_statements(&s).len(), split_statements(&good).len());
                }
                Err(err) => prop_assert!(err.message.contains(": params."), "{}", err.message),
            }
        }
    }

    /// Every generated valid expression is accepted.
    #[test]
    fn valid_expressions_are_accepted(e in valid()) {
        let cat = catalog(false);
        for p in with_expr(&e) {
            prop_assert!(render_example(&p, &cat).is_ok(), "{e}");
        }
    }
}
