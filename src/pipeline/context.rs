//! The rendering context every template works in: [`Ctx`] collects the statements of the
//! script and offers the shared steps — `SET`s from the pipeline options, source and sink
//! tables (`CREATE TEMPORARY TABLE`, columns, event time, keys), column lookup, the sink type
//! check and the final INSERT. Conditions and values are in `conditions.rs`, connector options
//! in `connector.rs`.
use super::connector::check_flink_key;
use super::error::PipelineError;
use super::flinktype::{self, FlinkType};
use super::interval::Interval;
use super::params::{ColumnDecl, PipelineOptions, Role, TableRef, PROC_TIME};
use super::script::{CreateTable, Script, Statement, Watermark};
use super::{Catalog, DatasourceInfo, Definition};
use crate::core::messages::did_you_mean;
use crate::core::quote::ident;
use crate::datasource::ErrorClass;
use serde_json::Value;

/// A column of a rendered table or query.
#[derive(Debug, Clone, PartialEq)]
pub struct Col {
    pub name: String,
    pub ty: FlinkType,
}

/// The script being rendered and what the templates need to render it.
pub(crate) struct Ctx<'a> {
    pub(crate) pipeline: &'a str,
    pub(crate) catalog: &'a Catalog,
    pub(crate) script: Script,
    /// `options.on_bad_record`, and the Kafka JSON sources whose bad records are routed.
    pub(crate) bad_record: super::bad_records::BadRecord,
    pub(crate) raw_sources: Vec<super::bad_records::RawSource>,
    /// Prefix of the table names of the template being rendered (`b0_` for the first branch of
    /// a `branches` pipeline; empty otherwise).
    pub(crate) prefix: String,
    /// Tables already rendered, by what they were rendered from: a branch that declares the
    /// same table reads (or writes) the one already there. (key, name, columns).
    pub(crate) rendered: Vec<(String, String, Vec<Col>)>,
    /// Table names of this template that refer to a table of another: (local, actual).
    pub(crate) aliases: Vec<(String, String)>,
    /// Every sink written with its columns, in order (the first is the pipeline's sink).
    pub(crate) sinks: Vec<(TableRef, Vec<(String, String)>)>,
    /// Sinks of late rows, listed after the others.
    pub(crate) late_sinks: Vec<(TableRef, Vec<(String, String)>)>,
    /// INSERTs that join the job's statement set after the template's own (late rows).
    pub(crate) extra_inserts: Vec<Statement>,
    /// A source asked for processing time gets it even with event time (lookup joins).
    pub(crate) proctime_always: bool,
    /// Why names a JDBC table would need quoted cannot be mapped here (a hint), if so.
    pub(crate) quote_refusal: Option<&'static str>,
    /// `options.flink` turns Flink's source reuse off (late rows need one shared scan).
    pub(crate) source_reuse_off: bool,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(pipeline: &'a str, catalog: &'a Catalog, script: Script) -> Ctx<'a> {
        Ctx {
            pipeline,
            catalog,
            script,
            bad_record: Default::default(),
            raw_sources: Vec::new(),
            prefix: String::new(),
            rendered: Vec::new(),
            aliases: Vec::new(),
            sinks: Vec::new(),
            late_sinks: Vec::new(),
            extra_inserts: Vec::new(),
            proctime_always: false,
            quote_refusal: None,
            source_reuse_off: false,
        }
    }
}

impl Ctx<'_> {
    /// An invalid parameter at `path`.
    pub(crate) fn invalid(
        &self,
        path: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> PipelineError {
        PipelineError::invalid(self.pipeline, path, what, hint)
    }

    /// A type mismatch at `path`.
    pub(crate) fn mismatch(
        &self,
        path: &str,
        what: impl std::fmt::Display,
        hint: impl Into<String>,
    ) -> PipelineError {
        PipelineError::at(
            ErrorClass::DatatypeMismatch,
            self.pipeline,
            path,
            what,
            hint,
        )
    }

    /// An interval param.
    pub(crate) fn interval(&self, path: &str, s: &str) -> Result<Interval, PipelineError> {
        Interval::parse(s).map_err(|e| {
            self.invalid(
                path,
                e,
                "Write intervals like '30 seconds', '5 minutes', '1 hour'.",
            )
        })
    }

    /// The name of this template's table `local` (`source`, `sink`, `left_source`, ...) in the
    /// script: prefixed in a branch, or the table an earlier branch rendered the same way.
    pub(crate) fn tname(&self, local: &str) -> String {
        let name = format!("{}{local}", self.prefix);
        self.aliases
            .iter()
            .find(|(l, _)| l == &name)
            .map(|(_, actual)| actual.clone())
            .unwrap_or(name)
    }

    /// A bound param: an interval that may be zero.
    pub(crate) fn bound(&self, path: &str, s: &str) -> Result<Interval, PipelineError> {
        Interval::parse_bound(s).map_err(|e| {
            self.invalid(
                path,
                e,
                "Write bounds like '0 seconds', '30 seconds', '5 minutes'.",
            )
        })
    }

    /// The `SET` statements: the job name, then the pipeline options.
    pub(crate) fn sets(
        &mut self,
        def: &Definition,
        options: &PipelineOptions,
    ) -> Result<(), PipelineError> {
        let mut sets: Vec<(String, String)> = vec![(
            "pipeline.name".into(),
            def.database.job_name(def.name, def.version),
        )];
        if let Some(p) = options.parallelism {
            if !(1..=1024).contains(&p) {
                return Err(self.invalid(
                    "options.parallelism",
                    format!("must be between 1 and 1024, got {p}"),
                    "Use the number of parallel tasks.",
                ));
            }
            sets.push(("parallelism.default".into(), p.to_string()));
        }
        if let Some(ci) = &options.checkpoint_interval {
            sets.push((
                "execution.checkpointing.interval".into(),
                self.interval("options.checkpoint_interval", ci)?.option(),
            ));
        }
        if let Some(f) = &options.freshness {
            self.interval("options.freshness", f)?;
        }
        if let Some(b) = &options.on_bad_record {
            self.bad_record = super::bad_records::BadRecord::parse(b).ok_or_else(|| {
                self.invalid(
                    "options.on_bad_record",
                    format!(
                        "must be fail, skip or dead_letter, got \"{}\"",
                        b.chars().take(40).collect::<String>()
                    ),
                    "fail: the job fails on a record it cannot decode (Flink's default); skip: such records are left out; dead_letter: they go to the Kafka topic <pipeline>.dead_letters.",
                )
            })?;
        }
        if let Some(m) = &options.checkpoint_mode {
            let m = m.to_ascii_uppercase();
            if m != "EXACTLY_ONCE" && m != "AT_LEAST_ONCE" {
                return Err(self.invalid(
                    "options.checkpoint_mode",
                    format!("must be EXACTLY_ONCE or AT_LEAST_ONCE, got \"{m}\""),
                    "Use EXACTLY_ONCE (default) or AT_LEAST_ONCE.",
                ));
            }
            sets.push(("execution.checkpointing.mode".into(), m));
        }
        if let Some(t) = &options.state_ttl {
            sets.push((
                "table.exec.state.ttl".into(),
                self.interval("options.state_ttl", t)?.option(),
            ));
        }
        if let Some(cluster) = &options.cluster {
            if crate::datasource::check_name("cluster", Some(cluster)).is_err() {
                return Err(self.invalid(
                    "options.cluster",
                    "is not a valid cluster name",
                    "Name a cluster of flink.clusters.",
                ));
            }
        }
        for (k, v) in options.flink.iter().flatten() {
            if !check_flink_key(k) {
                return Err(self.invalid(
                    "options.flink",
                    format!(
                        "\"{}\" is not a Flink option key",
                        k.chars().take(40).collect::<String>()
                    ),
                    "Keys are like 'table.exec.mini-batch.enabled'.",
                ));
            }
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(self.invalid(
                        &format!("options.flink.{k}"),
                        "must be a string, number or boolean",
                        "Flink option values are scalars.",
                    ))
                }
            };
            if k == "table.optimizer.reuse-source-enabled" && v.eq_ignore_ascii_case("false") {
                self.source_reuse_off = true;
            }
            sets.retain(|(key, _)| key != k);
            sets.push((k.clone(), v));
        }
        for (key, value) in sets {
            self.script.push(Statement::Set { key, value });
        }
        Ok(())
    }

    fn datasource(&self, path: &str, name: &str) -> Result<&DatasourceInfo, PipelineError> {
        self.catalog.get(name).ok_or_else(|| {
            PipelineError::at(
                ErrorClass::UndefinedObject,
                self.pipeline,
                &format!("{path}.datasource"),
                format!("datasource \"{name}\" does not exist"),
                "Register it with flink.register_datasource() first; see flink.datasources.",
            )
        })
    }

    /// Declared columns, with their types parsed.
    fn columns(&self, path: &str, cols: &[ColumnDecl]) -> Result<Vec<Col>, PipelineError> {
        if cols.is_empty() {
            return Err(self.invalid(
                &format!("{path}.columns"),
                "must list at least one column",
                "Declare columns as [{\"name\": \"id\", \"type\": \"BIGINT\"}].",
            ));
        }
        let mut out: Vec<Col> = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            check_ident(self.pipeline, &format!("{path}.columns[{i}].name"), &c.name)?;
            let ty = flinktype::parse(flinktype::split_not_null(&c.ty).0).map_err(|e| {
                self.invalid(
                    &format!("{path}.columns[{i}].type"),
                    format!(
                        "\"{}\" is not a Flink type: {e}",
                        c.ty.chars().take(60).collect::<String>()
                    ),
                    "Use Flink SQL types such as BIGINT, DECIMAL(10, 2), STRING, TIMESTAMP(3).",
                )
            })?;
            if out.iter().any(|o| o.name.eq_ignore_ascii_case(&c.name)) {
                return Err(self.invalid(
                    &format!("{path}.columns[{i}].name"),
                    format!("column \"{}\" is declared twice", c.name),
                    "Column names must be unique.",
                ));
            }
            out.push(Col {
                name: c.name.clone(),
                ty,
            });
        }
        Ok(out)
    }

    /// Columns `names` of `cols` (at `path[i]`), in order; the first unknown one fails as in
    /// [`Ctx::find`].
    pub(crate) fn find_each(
        &self,
        path: &str,
        cols: &[Col],
        names: &[String],
    ) -> Result<Vec<Col>, PipelineError> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| self.find(&format!("{path}[{i}]"), cols, n).cloned())
            .collect()
    }

    /// Column `name` of `cols`; the error lists the columns (and a near miss).
    pub(crate) fn find<'c>(
        &self,
        path: &str,
        cols: &'c [Col],
        name: &str,
    ) -> Result<&'c Col, PipelineError> {
        cols.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
            let hint = match did_you_mean(name, names.iter().copied()) {
                Some(d) => format!("Did you mean \"{d}\"? Columns: {}.", names.join(", ")),
                None => format!("Columns: {}.", names.join(", ")),
            };
            self.invalid(
                path,
                format!(
                    "unknown column \"{}\"",
                    name.chars().take(60).collect::<String>()
                ),
                hint,
            )
        })
    }

    /// Renders `CREATE TEMPORARY TABLE` for a source or sink; returns its columns (plus a
    /// processing-time column when `proctime` is asked for).
    pub(crate) fn table(
        &mut self,
        path: &str,
        name: &str,
        t: &TableRef,
        role: Role,
        derived: Option<&[Col]>,
        proctime: bool,
    ) -> Result<Vec<Col>, PipelineError> {
        // Asking for processing time changes nothing on an event-time table.
        let proctime = proctime && (t.event_time.is_none() || self.proctime_always);
        let key = format!(
            "{role:?} {proctime} {} {:?}",
            serde_json::to_string(t).unwrap_or_default(),
            derived
        );
        let local = format!("{}{name}", self.prefix);
        if let Some((_, actual, cols)) = self.rendered.iter().find(|(k, _, _)| k == &key) {
            let (actual, cols) = (actual.clone(), cols.clone());
            self.aliases.push((local, actual));
            return Ok(cols);
        }
        let cols = self.table_once(path, &local, t, role, derived, proctime)?;
        self.rendered.push((key, local, cols.clone()));
        Ok(cols)
    }

    fn table_once(
        &mut self,
        path: &str,
        name: &str,
        t: &TableRef,
        role: Role,
        derived: Option<&[Col]>,
        proctime: bool,
    ) -> Result<Vec<Col>, PipelineError> {
        let ds = self.datasource(path, &t.datasource)?.clone();
        let mut cols = match (&t.columns, derived) {
            (Some(c), _) => self.columns(path, c)?,
            (None, Some(d)) => d.to_vec(),
            (None, None) => {
                return Err(self.invalid(&format!("{path}.columns"), "are not known", "Declare the columns, or let flink.create_pipeline() read them from the datasource."))
            }
        };
        let not_null = |name: &str| {
            t.columns
                .iter()
                .flatten()
                .any(|d| d.name == name && flinktype::split_not_null(&d.ty).1)
        };
        let columns: Vec<(String, String)> = cols
            .iter()
            .map(|c| {
                let ty = c.ty.to_string();
                let ty = if not_null(&c.name) {
                    ty + " NOT NULL"
                } else {
                    ty
                };
                (c.name.clone(), ty)
            })
            .collect();
        let mut watermark = None;
        let mut proctime_column = None;
        if let Some(et) = &t.event_time {
            let c = self.find(&format!("{path}.event_time"), &cols, et)?;
            if !c.ty.is_time_attribute_candidate() {
                return Err(self.mismatch(&format!("{path}.event_time"), format!("column \"{et}\" is {}, an event-time column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3)", c.ty), "Declare the column as TIMESTAMP(3), or use processing time (omit event_time)."));
            }
            let delay = match &t.watermark_delay {
                Some(d) => self.interval(&format!("{path}.watermark_delay"), d)?,
                None => Interval { millis: 0 },
            };
            watermark = Some(Watermark {
                column: et.clone(),
                delay: (delay.millis != 0).then(|| delay.sql()),
            });
        } else if t.watermark_delay.is_some() {
            return Err(self.invalid(
                &format!("{path}.watermark_delay"),
                "needs event_time",
                "Name the event-time column in event_time.",
            ));
        }
        if proctime && (t.event_time.is_none() || self.proctime_always) {
            if cols.iter().any(|c| c.name == PROC_TIME) {
                return Err(self.invalid(
                    &format!("{path}.columns"),
                    "a column named proc_time clashes with the processing-time column",
                    "Rename the column or use event time.",
                ));
            }
            proctime_column = Some(PROC_TIME.to_string());
            cols.push(Col {
                name: PROC_TIME.into(),
                ty: FlinkType::TimestampLtz(3),
            });
        }
        let primary_key = t.primary_key.clone().unwrap_or_default();
        for (i, k) in primary_key.iter().enumerate() {
            self.find(&format!("{path}.primary_key[{i}]"), &cols, k)?;
        }
        let mut with = self.connector(path, &ds, t, role)?;
        // Names Flink's JDBC dialect would fold or misread are quoted in the Flink table; a
        // source view (or the sink's positional INSERT) gives them back their own names.
        let renamed = self.jdbc_names(path, &ds, t, &cols, role)?;
        let flink_name = |n: &str| {
            renamed
                .iter()
                .find(|(from, _)| from == n)
                .map(|(_, to)| to.clone())
                .unwrap_or_else(|| n.to_string())
        };
        let columns = columns
            .into_iter()
            .map(|(n, ty)| (flink_name(&n), ty))
            .collect();
        let watermark = watermark.map(|w| Watermark {
            column: flink_name(&w.column),
            delay: w.delay,
        });
        let primary_key = primary_key.iter().map(|k| flink_name(k)).collect();
        let view = role == Role::Source
            && (t.filter.is_some()
                || t.computed.is_some()
                || t.late.is_some()
                || !renamed.is_empty());
        if role != Role::Source && (t.filter.is_some() || t.computed.is_some() || t.late.is_some())
        {
            let field = match (&t.filter, &t.computed) {
                (Some(_), _) => "filter",
                (None, Some(_)) => "computed",
                _ => "late",
            };
            return Err(self.invalid(
                &format!("{path}.{field}"),
                "applies to sources only",
                "Filter or compute on the source; the sink receives the query's columns.",
            ));
        }
        let physical = if view {
            format!("{name}_table")
        } else {
            name.to_string()
        };
        if role == Role::Source {
            self.bad_records(&physical, &t.datasource, &mut with);
        }
        self.script.push(Statement::CreateTable(CreateTable {
            name: physical.clone(),
            columns,
            watermark,
            proctime: proctime_column,
            primary_key,
            with,
        }));
        if view {
            cols = self.source_view(path, name, &physical, t, cols, &renamed)?;
        }
        Ok(cols)
    }

    /// The single `source` table of a template (with a processing-time column if asked).
    pub(crate) fn source(
        &mut self,
        t: &TableRef,
        proctime: bool,
    ) -> Result<Vec<Col>, PipelineError> {
        self.table("params.source", "source", t, Role::Source, None, proctime)
    }

    /// Creates the sink table (declared/described columns, or the query's own output) and
    /// checks that the query output fits it. Returns the INSERT column order.
    pub(crate) fn sink(
        &mut self,
        path: &str,
        t: &TableRef,
        out: &[Col],
    ) -> Result<Vec<String>, PipelineError> {
        let derived = if t.columns.is_none() { Some(out) } else { None };
        let sink_cols = self.table(path, "sink", t, Role::Sink, derived, false)?;
        let order = self.match_sink(path, &sink_cols, out)?;
        let declared = sink_cols
            .iter()
            .map(|c| (c.name.clone(), c.ty.to_string()))
            .collect();
        self.sinks.push((t.clone(), declared));
        Ok(order)
    }

    /// Checks that the query output `out` fits the sink's columns; returns the INSERT column
    /// order (query column names).
    pub(crate) fn match_sink(
        &self,
        path: &str,
        sink_cols: &[Col],
        out: &[Col],
    ) -> Result<Vec<String>, PipelineError> {
        if sink_cols.len() != out.len() {
            return Err(self.mismatch(
                &format!("{path}.columns"),
                format!("the sink has {} columns but the query produces {} ({})", sink_cols.len(), out.len(), out.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
                "Make the sink's columns match the query output, or omit sink columns for Kafka/Elasticsearch sinks to derive them.",
            ));
        }
        let mut order = Vec::new();
        for s in sink_cols {
            let q = out
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&s.name))
                .ok_or_else(|| {
                    self.mismatch(
                        &format!("{path}.columns"),
                        format!(
                            "sink column \"{}\" has no matching query column (query columns: {})",
                            s.name,
                            out.iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        "Name the query's output columns (as/to) after the sink's columns.",
                    )
                })?;
            if !q.ty.assignable_to(&s.ty) {
                return Err(self.mismatch(
                    &format!("{path}.columns"),
                    format!("query column \"{}\" is {} but sink column \"{}\" is {}", q.name, q.ty, s.name, s.ty),
                    "Flink would reject or truncate this value: widen the sink column or change the query.",
                ));
            }
            order.push(q.name.clone());
        }
        Ok(order)
    }

    /// The INSERT into `sink`. `select` holds (expression, output name), emitted in the sink's
    /// column `order`; `rest` is everything after the select list.
    pub(crate) fn insert(&mut self, order: &[String], select: &[(String, String)], rest: &str) {
        let exprs: Vec<String> = order
            .iter()
            .filter_map(|name| {
                select
                    .iter()
                    .find(|(_, alias)| alias.eq_ignore_ascii_case(name))
            })
            .map(|(expr, alias)| {
                if expr == &ident(alias) {
                    expr.clone()
                } else {
                    format!("{expr} AS {}", ident(alias))
                }
            })
            .collect();
        self.script.push(Statement::Insert {
            sink: self.tname("sink"),
            select: exprs,
            rest: rest.to_string(),
        });
    }
}

/// Identifiers chosen by users (output column names): 1-128 characters, no control characters.
pub(crate) fn check_ident(pipeline: &str, path: &str, s: &str) -> Result<(), PipelineError> {
    if s.is_empty() || s.chars().count() > 128 || s.chars().any(char::is_control) {
        return Err(PipelineError::invalid(
            pipeline,
            path,
            "must be a name of 1-128 printable characters",
            "Use a plain column name.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::datasource::ErrorClass;
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn sink_type_mismatch_names_column_and_both_types() {
        let mut p = example("revenue_cumulate");
        p["params"]["sink"]["columns"][2]["type"] = json!("INT");
        let e = err_of(&p);
        assert_eq!(e.class, ErrorClass::DatatypeMismatch);
        assert!(e.message.contains("params.sink.columns: query column \"revenue\" is DECIMAL(38, 2) but sink column \"revenue\" is INT"), "{}", e.message);
        let mut p = example("revenue_cumulate");
        p["params"]["sink"]["columns"].as_array_mut().unwrap().pop();
        assert!(err_of(&p)
            .message
            .contains("the sink has 3 columns but the query produces 4"));
        let mut p = example("orders_to_pg");
        p["params"]["sink"]["columns"][1]["name"] = json!("amt");
        assert!(err_of(&p)
            .message
            .contains("sink column \"amt\" has no matching query column"));
        let mut p = example("copy_customers");
        p["params"]["sink"]["columns"][1]["type"] = json!("VARCHAR(10)");
        assert!(err_of(&p).message.contains(
            "query column \"full_name\" is STRING but sink column \"full_name\" is VARCHAR(10)"
        ));
    }

    #[test]
    fn bad_tables_and_options_name_the_parameter() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["source"]["datasource"] = json!("nope")),
                "params.source.datasource: datasource \"nope\" does not exist",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["params"]["source"]["columns"][4]["type"] = json!("STRING")),
                "params.source.event_time: column \"ts\" is STRING",
            ),
            (
                "orders_per_minute",
                Box::new(|p| {
                    p["params"]["source"]["columns"][0]["type"] = json!("BIGINT) WITH ('x'='y")
                }),
                "params.source.columns[0].type",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["options"]["parallelism"] = json!(0)),
                "options.parallelism: must be between 1 and 1024",
            ),
            (
                "orders_per_minute",
                Box::new(|p| p["options"]["checkpoint_mode"] = json!("SOMETIMES")),
                "options.checkpoint_mode",
            ),
        ];
        assert_errors(cases);
    }
}
