//! Previewing a pipeline (`flink.preview`): the statements that show what a stored pipeline's
//! query produces against the data present, without its sink and without a lasting job. Pure:
//! built from the rendered [`Script`] (the same one the worker submits), unit-tested here.
//!
//! The preview runs, in one SQL Gateway session: the script's `SET`s (less the ones below) and
//! every `CREATE TEMPORARY TABLE` as rendered (so sources read with the pipeline's own options:
//! `scan.startup.mode`, consumer group, credentials), then the job's query as a `SELECT`.
//! Left out or replaced:
//! - `pipeline.name`: the preview job is named [`job_name`], never `pg_flink/…`, so no worker
//!   takes it for a pipeline's job;
//! - `parallelism.default`, `table.exec.resource.default-parallelism`: 1 (a preview takes one
//!   slot);
//! - `execution.checkpointing.*`: no checkpoints, hence no Kafka offsets committed for the
//!   pipeline's consumer group and no checkpoint files;
//! - `execution.state-recovery.path`, `execution.savepoint.path`: a preview never restores
//!   the pipeline's state.
use super::script::{Script, Statement, ON_CONFLICT_DEDUPLICATE};
use serde_json::{Map, Value};

/// The statements of one preview.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewPlan {
    /// Session properties to open the gateway session with.
    pub session: Map<String, Value>,
    /// Statements run before the query, in order (SETs kept, CREATE TEMPORARY TABLEs).
    pub setup: Vec<String>,
    /// The job's query as a SELECT.
    pub query: String,
}

/// Why a script cannot be previewed: message and hint (SQLSTATE 0A000).
#[derive(Debug, Clone, PartialEq)]
pub struct NotPreviewable {
    pub message: String,
    pub hint: String,
}

/// The preview job's Flink name: `pg_flink preview/<tag>/<database>/<pipeline>`. Never starts
/// with `pg_flink/`, the prefix of pipeline jobs (`control::identity`); `tag` makes one call's
/// job findable by name when its id never came back.
pub fn job_name(database: &str, pipeline: &str, tag: &str) -> String {
    format!("pg_flink preview/{tag}/{database}/{pipeline}")
}

/// Whether a `SET` of the script is left out of the preview (see the module comment).
fn dropped_set(key: &str) -> bool {
    matches!(
        key,
        "pipeline.name"
            | "parallelism.default"
            | "table.exec.resource.default-parallelism"
            | "execution.state-recovery.path"
            | "execution.savepoint.path"
    ) || key.starts_with("execution.checkpointing.")
}

/// The preview of `script`, whose job is named `job_name`.
pub fn plan(script: &Script, job_name: &str) -> Result<PreviewPlan, NotPreviewable> {
    let mut session = Map::new();
    for (k, v) in [
        ("execution.runtime-mode", "streaming"),
        ("pipeline.name", job_name),
        ("parallelism.default", "1"),
        ("table.exec.resource.default-parallelism", "1"),
    ] {
        session.insert(k.to_string(), Value::String(v.to_string()));
    }
    let mut setup = Vec::new();
    let mut query = None;
    for s in script.items() {
        match s {
            Statement::Set { key, .. } if dropped_set(key) => {}
            Statement::Set { .. } | Statement::CreateTable(_) | Statement::CreateView { .. } => {
                setup.push(s.to_string())
            }
            job => query = Some(query_of(job)?),
        }
    }
    let query = query.ok_or_else(|| NotPreviewable {
        message: "the script has no INSERT to preview".into(),
        hint: "Check the pipeline with flink.render(name).".into(),
    })?;
    Ok(PreviewPlan {
        session,
        setup,
        query,
    })
}

/// The query of the job statement: a template INSERT's select list and rest; of a statement
/// set, its INSERT into `sink` (the pipeline's output; others write dead letters and the like),
/// else its first; a `sql` pipeline's INSERT without its `INSERT INTO <table> [(<columns>)]`.
fn query_of(job: &Statement) -> Result<String, NotPreviewable> {
    match job {
        Statement::Insert { select, rest, .. } => {
            let rest = rest.strip_suffix(ON_CONFLICT_DEDUPLICATE).unwrap_or(rest);
            Ok(format!("SELECT\n  {}\n{rest}", select.join(",\n  ")))
        }
        Statement::SqlInsert(sql) => insert_query(sql).map(str::to_string).ok_or_else(|| NotPreviewable {
            message: "its SQL is not of the form INSERT INTO <table> [(<columns>)] <query>, which preview takes apart".into(),
            hint: "Write the sql pipeline as INSERT INTO {{datasource.object}} SELECT … (or WITH … SELECT, VALUES), or run the query with flink.execute_sql.".into(),
        }),
        Statement::StatementSet(all) => {
            let main = all
                .iter()
                .find(|s| matches!(s, Statement::Insert { sink, .. } if sink == "sink"))
                .or_else(|| all.first());
            match main {
                Some(s @ (Statement::Insert { .. } | Statement::SqlInsert(_))) => query_of(s),
                _ => Err(NotPreviewable {
                    message: "its statement set has no INSERT to preview".into(),
                    hint: "Check the pipeline with flink.render(name).".into(),
                }),
            }
        }
        Statement::Set { .. } | Statement::CreateTable(_) | Statement::CreateView { .. } => {
            Err(NotPreviewable {
                message: "the script has no INSERT to preview".into(),
                hint: "Check the pipeline with flink.render(name).".into(),
            })
        }
    }
}

/// Skips whitespace and `--`/`/* */` comments.
fn skip_blank(s: &str) -> &str {
    let mut s = s;
    loop {
        let t = s.trim_start();
        if let Some(r) = t.strip_prefix("--") {
            s = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = t.strip_prefix("/*") {
            match r.split_once("*/") {
                Some((_, after)) => s = after,
                None => return "",
            }
        } else {
            return t;
        }
    }
}

/// `s` without the leading keyword `kw` (any case, followed by a non-word character).
fn keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let head = s.get(..kw.len())?;
    let rest = &s[kw.len()..];
    let word_ends = !rest
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
    (head.eq_ignore_ascii_case(kw) && word_ends).then_some(rest)
}

/// `s` without one identifier part: `` `quoted` `` (`` `` `` escapes a backtick) or a plain
/// word.
fn identifier_part(s: &str) -> Option<&str> {
    if let Some(r) = s.strip_prefix('`') {
        let mut chars = r.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if chars.peek().map(|(_, n)| *n) == Some('`') {
                    chars.next();
                } else {
                    return Some(&r[i + 1..]);
                }
            }
        }
        return None;
    }
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '$'))
        .map_or(s.len(), |(i, _)| i);
    (end > 0).then(|| &s[end..])
}

/// Whether `s` starts a query: SELECT, WITH, VALUES or a parenthesised query.
fn starts_query(s: &str) -> bool {
    ["SELECT", "WITH", "VALUES"]
        .iter()
        .any(|k| keyword(s, k).is_some())
        || s.strip_prefix('(')
            .is_some_and(|r| starts_query(skip_blank(r)))
}

/// The query of `INSERT INTO <table> [(<columns>)] <query>` (a `sql` pipeline's statement after
/// its table references were replaced), or None for any other form (INSERT OVERWRITE, a
/// PARTITION clause, a statement that is not an INSERT).
pub fn insert_query(sql: &str) -> Option<&str> {
    let s = skip_blank(keyword(skip_blank(sql), "INSERT")?);
    let mut s = skip_blank(keyword(s, "INTO")?);
    // catalog.database.table, any part quoted
    loop {
        s = identifier_part(s)?;
        let t = skip_blank(s);
        match t.strip_prefix('.') {
            Some(r) => s = skip_blank(r),
            None => {
                s = t;
                break;
            }
        }
    }
    if s.starts_with('(') && !starts_query(s) {
        // A column list: plain or quoted names and commas up to the closing parenthesis.
        let mut r = skip_blank(&s[1..]);
        loop {
            r = skip_blank(identifier_part(r)?);
            if let Some(after) = r.strip_prefix(',') {
                r = skip_blank(after);
            } else {
                s = skip_blank(r.strip_prefix(')')?);
                break;
            }
        }
    }
    starts_query(s).then_some(s)
}

/// One result row as a JSON object of column name → value; a changelog row other than an
/// insert also carries `"$op"`: `-U`, `+U` or `-D` (Flink's short row kinds).
pub fn row_object(columns: &[String], kind: &str, fields: &Value) -> Value {
    let mut obj = Map::new();
    let values = fields.as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, name) in columns.iter().enumerate() {
        obj.insert(name.clone(), values.get(i).cloned().unwrap_or(Value::Null));
    }
    let op = match kind {
        "UPDATE_BEFORE" => Some("-U"),
        "UPDATE_AFTER" => Some("+U"),
        "DELETE" => Some("-D"),
        _ => None,
    };
    if let Some(op) = op {
        obj.insert("$op".into(), Value::String(op.into()));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::testing::{catalog, definition, examples};
    use crate::pipeline::{render_script, Statement};
    use serde_json::json;

    fn plan_of(name: &str) -> PreviewPlan {
        let cat = catalog(true);
        let ex = examples();
        let p = ex["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        plan(&render_script(&definition(p), &cat).unwrap(), "pv").unwrap()
    }

    /// Every example can be previewed: its tables as rendered, its query as a SELECT, none of
    /// the left-out SETs, no INSERT.
    #[test]
    fn every_example_has_a_preview() {
        let cat = catalog(true);
        for p in examples()["pipelines"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let script = render_script(&definition(p), &cat).unwrap();
            let pv = plan(&script, "pg_flink preview/x/db/p").unwrap();
            assert_eq!(pv.session["pipeline.name"], "pg_flink preview/x/db/p");
            assert_eq!(pv.session["execution.runtime-mode"], "streaming");
            assert_eq!(pv.session["parallelism.default"], "1");
            assert_eq!(pv.session["table.exec.resource.default-parallelism"], "1");
            let creates = script
                .items()
                .iter()
                .filter(|s| matches!(s, Statement::CreateTable(_)))
                .count();
            assert_eq!(
                pv.setup
                    .iter()
                    .filter(|s| s.starts_with("CREATE TEMPORARY TABLE"))
                    .count(),
                creates,
                "{name}"
            );
            for s in &pv.setup {
                assert!(!s.contains("pipeline.name"), "{name}: {s}");
                assert!(!s.contains("execution.checkpointing"), "{name}: {s}");
                assert!(!s.contains("parallelism.default"), "{name}: {s}");
            }
            let upper = pv.query.to_ascii_uppercase();
            assert!(
                upper.starts_with("SELECT") || upper.starts_with("WITH"),
                "{name}: {}",
                pv.query
            );
            assert!(!upper.contains("INSERT INTO"), "{name}: {}", pv.query);
        }
    }

    #[test]
    fn template_insert_becomes_its_select() {
        let pv = plan_of("orders_per_minute");
        assert_eq!(
            pv.setup.first().map(String::as_str),
            Some("SET 'table.exec.state.ttl' = '3600000 ms'")
        );
        assert_eq!(
            pv.query,
            "SELECT\n  `window_start`,\n  `window_end`,\n  `city`,\n  COUNT(*) AS `orders`,\n  SUM(`amount`) AS `revenue`,\n  COUNT(DISTINCT `user_id`) AS `buyers`\nFROM TABLE(\n  TUMBLE(TABLE `source`, DESCRIPTOR(`ts`), INTERVAL '1' MINUTE))\nGROUP BY `window_start`, `window_end`, `city`"
        );
    }

    /// Of a statement set (dead letters) the INSERT into `sink` is previewed.
    #[test]
    fn statement_set_previews_the_sink_insert() {
        let pv = plan_of("big_orders_dead_letters");
        assert!(pv.query.starts_with("SELECT\n  `order_id`"), "{}", pv.query);
        assert!(!pv.query.contains("dead_letters"));
        assert!(pv
            .setup
            .iter()
            .any(|s| s.contains("`pg_flink_dead_letters`")));
    }

    /// Flink 2.3's conflict clause belongs to the INSERT only.
    #[test]
    fn on_conflict_is_not_part_of_the_query() {
        let mut script = Script::new("x");
        script.push(Statement::Insert {
            sink: "sink".into(),
            select: vec!["`a`".into()],
            rest: format!("FROM `source`{ON_CONFLICT_DEDUPLICATE}"),
        });
        assert_eq!(
            plan(&script, "j").unwrap().query,
            "SELECT\n  `a`\nFROM `source`"
        );
    }

    #[test]
    fn raw_sql_insert_is_taken_apart() {
        let pv = plan_of("raw_top_cities");
        assert_eq!(
            pv.query,
            "SELECT city, SUM(amount) AS total FROM `kafka_local_orders` WHERE amount > 0 GROUP BY city"
        );
        let ok = [
            ("INSERT INTO t SELECT 1", "SELECT 1"),
            ("  insert   into `a``b` select 1", "select 1"),
            (
                "-- c\nINSERT /* x */ INTO cat.db.`t` (a, `b`) WITH q AS (SELECT 1) SELECT * FROM q",
                "WITH q AS (SELECT 1) SELECT * FROM q",
            ),
            ("INSERT INTO t (SELECT 1)", "(SELECT 1)"),
            ("INSERT INTO t(a) VALUES (1)", "VALUES (1)"),
            ("INSERT INTO t\n( ( SELECT 1 ) )", "( ( SELECT 1 ) )"),
        ];
        for (sql, query) in ok {
            assert_eq!(insert_query(sql), Some(query), "{sql}");
        }
        let refused = [
            "INSERT OVERWRITE t SELECT 1",
            "INSERT INTO t PARTITION (d='x') SELECT 1",
            "INSERT INTO SELECT 1",
            "INSERT INTO t",
            "INSERT INTO `t SELECT 1",
            "INSERT INTO t (a, SELECT 1",
            "INSERTINTO t SELECT 1",
            "SELECT 1",
            "INSERT INTO t SELECTED",
            "",
            "/* never closed",
        ];
        for sql in refused {
            assert_eq!(insert_query(sql), None, "{sql}");
        }
        let mut script = Script::new("x");
        script.push(Statement::SqlInsert("INSERT OVERWRITE t SELECT 1".into()));
        let e = plan(&script, "j").unwrap_err();
        assert!(e.message.contains("INSERT INTO <table>"), "{}", e.message);
    }

    #[test]
    fn rows_are_objects_with_changelog_kinds() {
        let cols = vec!["k".to_string(), "n".to_string()];
        assert_eq!(
            row_object(&cols, "INSERT", &json!([1, 2.50])),
            json!({"k": 1, "n": 2.50})
        );
        assert_eq!(
            row_object(&cols, "UPDATE_BEFORE", &json!([1, 2])),
            json!({"k": 1, "n": 2, "$op": "-U"})
        );
        assert_eq!(
            row_object(&cols, "UPDATE_AFTER", &json!([1])),
            json!({"k": 1, "n": null, "$op": "+U"})
        );
        assert_eq!(
            row_object(&cols, "DELETE", &json!("bad")),
            json!({"k": null, "n": null, "$op": "-D"})
        );
    }

    #[test]
    fn job_names_are_never_pipeline_job_names() {
        let n = job_name("db", "p", "123-4");
        assert_eq!(n, "pg_flink preview/123-4/db/p");
        assert!(!n.starts_with("pg_flink/"));
    }

    #[test]
    fn a_script_without_insert_is_refused() {
        let mut script = Script::new("x");
        script.push(Statement::Set {
            key: "a".into(),
            value: "b".into(),
        });
        assert!(plan(&script, "j").is_err());
    }
}
