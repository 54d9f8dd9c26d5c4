//! The rendered script as a typed statement list: [`Script`] (a header comment and
//! [`Statement`]s). `Display` prints the script text exactly as stored and shown
//! (`flink.render`); [`Script::statements`] gives each statement's text for submitting them one
//! by one, without re-splitting the printed script.
use crate::core::quote::{ident, literal};
use std::fmt;

/// What Flink 2.3 INSERTs into a keyed sink end with (see [`Script::on_conflict_deduplicate`]).
pub const ON_CONFLICT_DEDUPLICATE: &str = "\nON CONFLICT DO DEDUPLICATE";

/// A rendered pipeline script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Text of the leading `--` comment line (without `-- `).
    header: String,
    statements: Vec<Statement>,
}

/// One statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `SET 'key' = 'value'`.
    Set { key: String, value: String },
    /// `CREATE TEMPORARY TABLE`.
    CreateTable(CreateTable),
    /// `CREATE TEMPORARY VIEW <name> AS SELECT <select, ...> FROM <from> [WHERE <filter>]`: a
    /// source seen through its filter, computed columns and renamed columns.
    CreateView {
        name: String,
        /// Select-list expressions, already rendered.
        select: Vec<String>,
        /// What is read: a table name (quoted) or a parenthesised query.
        from: String,
        /// A checked boolean expression, already parenthesised.
        filter: Option<String>,
    },
    /// `INSERT INTO <sink> SELECT <select, ...> <rest>`: the job of a template pipeline.
    Insert {
        /// Table written to.
        sink: String,
        /// Select-list expressions, already rendered (`expr AS alias`).
        select: Vec<String>,
        /// Everything after the select list (`FROM ...`, `WHERE ...`, `GROUP BY ...`).
        rest: String,
    },
    /// The INSERT of a `sql` pipeline, as written (table references replaced).
    SqlInsert(String),
    /// Several INSERTs run as one job: `EXECUTE STATEMENT SET BEGIN …; …; END`.
    StatementSet(Vec<Statement>),
}

/// `CREATE TEMPORARY TABLE name (columns, time attribute, key) WITH (options)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub name: String,
    /// Physical columns: (name, Flink type).
    pub columns: Vec<(String, String)>,
    /// Event time: `WATERMARK FOR column AS column [- delay]`.
    pub watermark: Option<Watermark>,
    /// A processing-time column of this name (`name AS PROCTIME()`).
    pub proctime: Option<String>,
    /// `PRIMARY KEY (...) NOT ENFORCED`, when not empty.
    pub primary_key: Vec<String>,
    /// Connector options, in order.
    pub with: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    pub column: String,
    /// How late events may be, as an SQL interval literal; None for no delay.
    pub delay: Option<String>,
}

impl Script {
    pub fn new(header: impl Into<String>) -> Script {
        Script {
            header: header.into(),
            statements: Vec::new(),
        }
    }

    pub fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    /// The typed statements, in order.
    pub fn items(&self) -> &[Statement] {
        &self.statements
    }

    /// Each statement's text, in order, without the terminating `;` and without the header
    /// comment: what the SQL Gateway takes one statement at a time. The last one is the
    /// INSERT (the job).
    pub fn statements(&self) -> Vec<String> {
        self.statements.iter().map(Statement::to_string).collect()
    }

    /// Flink 2.3: the template INSERT into a sink with a primary key ends with
    /// `ON CONFLICT DO DEDUPLICATE` (FLIP-558 refuses it otherwise when the query's upsert key
    /// differs from the key).
    pub fn on_conflict_deduplicate(&mut self) {
        let keyed: Vec<String> = self
            .statements
            .iter()
            .filter_map(|s| match s {
                Statement::CreateTable(t) if !t.primary_key.is_empty() => Some(t.name.clone()),
                _ => None,
            })
            .collect();
        if keyed.is_empty() {
            return;
        }
        for s in self.statements.iter_mut() {
            let inserts: Vec<&mut Statement> = match s {
                Statement::StatementSet(all) => all.iter_mut().collect(),
                other => vec![other],
            };
            for i in inserts {
                if let Statement::Insert { sink, rest, .. } = i {
                    if keyed.contains(sink) {
                        rest.push_str(ON_CONFLICT_DEDUPLICATE);
                    }
                }
            }
        }
    }

    /// Every INSERT of the script, then `extra`, as the job: one INSERT alone, several as one
    /// statement set (the last statement).
    pub fn gather_inserts(&mut self, extra: Vec<Statement>) {
        let mut inserts: Vec<Statement> = Vec::new();
        self.statements.retain(|s| {
            if s.is_insert() {
                inserts.push(s.clone());
                false
            } else {
                true
            }
        });
        inserts.extend(extra);
        match inserts.len() {
            0 => {}
            1 => self.statements.extend(inserts),
            _ => self.statements.push(Statement::StatementSet(inserts)),
        }
    }

    /// Makes the job's INSERT and `extra` one statement set (the last statement).
    pub fn into_statement_set(&mut self, extra: Statement) {
        let pos = self.statements.iter().rposition(Statement::is_insert);
        let set = match pos.map(|i| self.statements.remove(i)) {
            Some(Statement::StatementSet(mut all)) => {
                all.push(extra);
                all
            }
            Some(first) => vec![first, extra],
            None => vec![extra],
        };
        self.statements.push(Statement::StatementSet(set));
    }
}

impl Statement {
    /// Whether this is the job-defining INSERT.
    pub fn is_insert(&self) -> bool {
        matches!(
            self,
            Statement::Insert { .. } | Statement::SqlInsert(_) | Statement::StatementSet(_)
        )
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "-- {}", self.header)?;
        for s in &self.statements {
            writeln!(f, "{s};")?;
        }
        Ok(())
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Set { key, value } => write!(f, "SET {} = {}", literal(key), literal(value)),
            Statement::CreateTable(t) => t.fmt(f),
            Statement::CreateView {
                name,
                select,
                from,
                filter,
            } => {
                write!(
                    f,
                    "CREATE TEMPORARY VIEW {} AS\nSELECT\n  {}\nFROM {}",
                    ident(name),
                    select.join(",\n  "),
                    from
                )?;
                match filter {
                    Some(w) => write!(f, "\nWHERE {w}"),
                    None => Ok(()),
                }
            }
            Statement::Insert { sink, select, rest } => write!(
                f,
                "INSERT INTO {}\nSELECT\n  {}\n{rest}",
                ident(sink),
                select.join(",\n  ")
            ),
            Statement::SqlInsert(sql) => f.write_str(sql),
            Statement::StatementSet(all) => {
                f.write_str("EXECUTE STATEMENT SET\nBEGIN\n")?;
                for s in all {
                    writeln!(f, "{s};")?;
                }
                f.write_str("END")
            }
        }
    }
}

impl fmt::Display for CreateTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: Vec<String> = self
            .columns
            .iter()
            .map(|(name, ty)| format!("  {} {ty}", ident(name)))
            .collect();
        if let Some(w) = &self.watermark {
            let column = ident(&w.column);
            lines.push(match &w.delay {
                Some(delay) => format!("  WATERMARK FOR {column} AS {column} - {delay}"),
                None => format!("  WATERMARK FOR {column} AS {column}"),
            });
        }
        if let Some(name) = &self.proctime {
            lines.push(format!("  {} AS PROCTIME()", ident(name)));
        }
        if !self.primary_key.is_empty() {
            let key: Vec<String> = self.primary_key.iter().map(|k| ident(k)).collect();
            lines.push(format!("  PRIMARY KEY ({}) NOT ENFORCED", key.join(", ")));
        }
        let with: Vec<String> = self
            .with
            .iter()
            .map(|(k, v)| format!("  {} = {}", literal(k), literal(v)))
            .collect();
        write!(
            f,
            "CREATE TEMPORARY TABLE {} (\n{}\n) WITH (\n{}\n)",
            ident(&self.name),
            lines.join(",\n"),
            with.join(",\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::script::split_statements;
    use crate::pipeline::testing::{catalog, definition, examples};
    use crate::pipeline::{render, render_script};

    /// The typed statements are what splitting the printed script gives, except that the
    /// splitter keeps the header comment on the first statement.
    #[test]
    fn statements_match_the_split_script() {
        let cat = catalog(false);
        for p in examples()["pipelines"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let script = render_script(&definition(p), &cat).unwrap();
            assert_eq!(script.to_string(), render(&definition(p), &cat).unwrap());
            let mut split = split_statements(&script.to_string());
            let header = format!("-- {}\n", script.header);
            split[0] = split[0].strip_prefix(&header).unwrap().to_string();
            assert_eq!(script.statements(), split, "{name}");
            let items = script.items();
            assert!(items.last().unwrap().is_insert(), "{name}");
            assert_eq!(items.iter().filter(|s| s.is_insert()).count(), 1, "{name}");
        }
    }

    /// Flink 2.3 (FLIP-558): the INSERT into a sink with a primary key says how upsert-key
    /// conflicts resolve; into a sink without one, and before 2.3, nothing changes.
    #[test]
    fn on_conflict_for_keyed_sinks_from_flink_2_3() {
        let cat = catalog(false);
        for p in examples()["pipelines"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let mut d = definition(p);
            let plain = render(&d, &cat).unwrap();
            d.flink_version = Some("2.2.1");
            assert_eq!(render(&d, &cat).unwrap(), plain, "{name}");
            d.flink_version = Some("2.3.0");
            let v23 = render(&d, &cat).unwrap();
            let keyed = render_script(&definition(p), &cat).unwrap().items().iter().any(|s| {
                matches!(s, Statement::CreateTable(t) if t.name == "sink" && !t.primary_key.is_empty())
            });
            let templated = p["template"] != "sql";
            assert_eq!(
                v23.contains("ON CONFLICT DO DEDUPLICATE"),
                keyed && templated,
                "{name}"
            );
            if keyed && templated {
                assert_eq!(
                    v23.replace("\nON CONFLICT DO DEDUPLICATE", ""),
                    plain,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn display_of_each_statement() {
        let table = CreateTable {
            name: "src".into(),
            columns: vec![
                ("a".into(), "BIGINT".into()),
                ("ts".into(), "TIMESTAMP(3)".into()),
            ],
            watermark: Some(Watermark {
                column: "ts".into(),
                delay: Some("INTERVAL '5' SECOND".into()),
            }),
            proctime: None,
            primary_key: vec!["a".into()],
            with: vec![("connector".into(), "kafka".into())],
        };
        assert_eq!(
            Statement::CreateTable(table).to_string(),
            "CREATE TEMPORARY TABLE `src` (\n  `a` BIGINT,\n  `ts` TIMESTAMP(3),\n  WATERMARK FOR `ts` AS `ts` - INTERVAL '5' SECOND,\n  PRIMARY KEY (`a`) NOT ENFORCED\n) WITH (\n  'connector' = 'kafka'\n)"
        );
        let set = Statement::Set {
            key: "a'b".into(),
            value: "c".into(),
        };
        assert_eq!(set.to_string(), "SET 'a''b' = 'c'");
        let mut script = Script::new("x");
        script.push(set);
        script.push(Statement::SqlInsert("INSERT INTO t SELECT 1".into()));
        assert_eq!(
            script.to_string(),
            "-- x\nSET 'a''b' = 'c';\nINSERT INTO t SELECT 1;\n"
        );
        assert_eq!(
            script.statements(),
            vec!["SET 'a''b' = 'c'", "INSERT INTO t SELECT 1"]
        );
    }
}
