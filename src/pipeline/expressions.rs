//! User-written Flink SQL expressions in params (a source's `filter` and `computed` columns,
//! aggregate filters, CEP conditions), checked by `core::expr` (one expression that cannot
//! break out of its parentheses) and against the columns they may refer to; Flink's planner
//! (`flink.validate`) judges the rest. Also the source view that applies them, and the names
//! Flink's JDBC dialect needs quoted.
use super::context::{check_ident, Col, Ctx};
use super::error::PipelineError;
use super::flinktype;
use super::params::{Role, TableRef, PROC_TIME};
use super::script::Statement;
use super::DatasourceInfo;
use crate::core::expr::{self, Expr};
use crate::core::messages::did_you_mean;
use crate::core::quote::ident;
use crate::datasource::Kind;

/// PostgreSQL's reserved key words: as column names they must be quoted.
const PG_RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// Whether PostgreSQL reads `name` as written only when it is double-quoted: anything but a
/// lower-case plain identifier, and reserved words. (Flink's Postgres JDBC dialect never
/// quotes, so `dateTime` would become `datetime`.)
pub(crate) fn pg_needs_quoting(name: &str) -> bool {
    let mut chars = name.chars();
    let plain = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '$'));
    !plain || PG_RESERVED.contains(&name)
}

/// `name` as a PostgreSQL quoted identifier.
pub(crate) fn pg_quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Ctx<'_> {
    /// The expression at `path`: one Flink SQL expression whose column references are all in
    /// `cols`, unqualified.
    pub(crate) fn expr(&self, path: &str, text: &str, cols: &[Col]) -> Result<Expr, PipelineError> {
        self.expr_over(
            path,
            text,
            cols,
            &[],
            "Write one Flink SQL expression, e.g. \"status = 403 AND url LIKE '/api/%'\".",
        )
    }

    /// The expression at `path` whose column references are in `cols`, qualified by nothing or
    /// (CEP) by one of the pattern variables `vars`; `hint` shows how one is written.
    pub(crate) fn expr_over(
        &self,
        path: &str,
        text: &str,
        cols: &[Col],
        vars: &[String],
        hint: &str,
    ) -> Result<Expr, PipelineError> {
        let e = expr::check(text)
            .map_err(|e| self.invalid(path, format!("the expression {e}"), hint))?;
        for r in &e.columns {
            match &r.qualifier {
                Some(q) if vars.is_empty() => {
                    return Err(self.invalid(
                        path,
                        format!(
                            "\"{}.{}\" is a qualified name; this expression sees one table",
                            q.chars().take(40).collect::<String>(),
                            r.name.chars().take(60).collect::<String>()
                        ),
                        "Refer to the columns by their names alone.",
                    ))
                }
                Some(q) if !vars.contains(q) => {
                    return Err(self.invalid(
                        path,
                        format!(
                            "\"{}\" is not a pattern variable",
                            q.chars().take(30).collect::<String>()
                        ),
                        format!("Variables: {}.", vars.join(", ")),
                    ))
                }
                _ => {}
            }
            self.find_in_expr(path, cols, &r.name)?;
        }
        Ok(e)
    }

    /// Column `name` referred to by an expression at `path`.
    pub(crate) fn find_in_expr(
        &self,
        path: &str,
        cols: &[Col],
        name: &str,
    ) -> Result<(), PipelineError> {
        if cols.iter().any(|c| c.name == name) {
            return Ok(());
        }
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        let hint = match did_you_mean(name, names.iter().copied()) {
            Some(d) => format!("Did you mean \"{d}\"? Columns: {}.", names.join(", ")),
            None => format!(
                "Columns: {}. Quote other names in backticks only if they are columns.",
                names.join(", ")
            ),
        };
        Err(self.invalid(
            path,
            format!(
                "the expression refers to an unknown column \"{}\"",
                name.chars().take(60).collect::<String>()
            ),
            hint,
        ))
    }

    /// Columns of a JDBC Postgres table whose names Flink must quote: (name, Flink name). A raw
    /// `sql` pipeline refers to its tables' columns itself (and a lookup table is read as it is), so
    /// there they are refused (`quote_refusal`).
    pub(crate) fn jdbc_names(
        &self,
        path: &str,
        ds: &DatasourceInfo,
        t: &TableRef,
        cols: &[Col],
        role: Role,
    ) -> Result<Vec<(String, String)>, PipelineError> {
        if ds.kind != Kind::Postgres || t.cdc == Some(true) {
            return Ok(Vec::new());
        }
        let quoted: Vec<(String, String)> = cols
            .iter()
            .filter(|c| c.name != PROC_TIME && pg_needs_quoting(&c.name))
            .map(|c| (c.name.clone(), pg_quoted(&c.name)))
            .collect();
        if let (Role::Sink, Some((name, _))) = (role, quoted.first()) {
            // The JDBC writer binds each column as a named parameter `:<column>`, which a
            // quoted name cannot be: writing such a column cannot be mapped.
            return Err(self.invalid(
                &format!("{path}.columns"),
                format!("Postgres column \"{name}\" needs quoting, and Flink's JDBC sink can write only columns whose names do not (lower case letters, digits, _)"),
                "Write to a table (or an updatable view) with lower-case column names; sync's mapping can rename the query's columns to them.",
            ));
        }
        if let (Some(hint), Some((name, _))) = (self.quote_refusal, quoted.first()) {
            return Err(self.invalid(
                &format!("{path}.columns"),
                format!("column \"{name}\" needs quoting in PostgreSQL, which Flink's JDBC connector does not do"),
                hint,
            ));
        }
        Ok(quoted)
    }

    /// `CREATE TEMPORARY VIEW name AS SELECT … FROM physical WHERE filter`: the source with its
    /// own column names, its computed columns, and only the rows its filter keeps. Returns the
    /// view's columns.
    pub(crate) fn source_view(
        &mut self,
        path: &str,
        name: &str,
        physical: &str,
        t: &TableRef,
        mut cols: Vec<Col>,
        renamed: &[(String, String)],
    ) -> Result<Vec<Col>, PipelineError> {
        let mut select: Vec<String> = cols
            .iter()
            .map(|c| match renamed.iter().find(|(from, _)| from == &c.name) {
                Some((_, to)) => format!("{} AS {}", ident(to), ident(&c.name)),
                None => ident(&c.name),
            })
            .collect();
        let mut filter = match &t.filter {
            Some(f) => Some(self.expr(&format!("{path}.filter"), f, &cols)?.sql()),
            None => None,
        };
        let physical_cols = cols.clone();
        for (i, c) in t.computed.iter().flatten().enumerate() {
            let at = format!("{path}.computed[{i}]");
            check_ident(self.pipeline, &format!("{at}.name"), &c.name)?;
            if cols.iter().any(|o| o.name.eq_ignore_ascii_case(&c.name)) {
                return Err(self.invalid(
                    &format!("{at}.name"),
                    format!("column \"{}\" is defined twice", c.name),
                    "Give each computed column a name of its own.",
                ));
            }
            let Some(ty) = &c.ty else {
                return Err(self.invalid(
                    &format!("{at}.type"),
                    "is required: the type of the computed value",
                    format!(
                        "Add e.g. \"type\": \"BIGINT\" (or STRING, DOUBLE, DECIMAL(10, 2), TIMESTAMP(3)) to computed column \"{}\".",
                        c.name.chars().take(40).collect::<String>()
                    ),
                ));
            };
            let ty = flinktype::parse(ty).map_err(|e| {
                self.invalid(
                    &format!("{at}.type"),
                    format!(
                        "\"{}\" is not a Flink type: {e}",
                        ty.chars().take(60).collect::<String>()
                    ),
                    "Use Flink SQL types such as BIGINT, DECIMAL(10, 2), STRING, TIMESTAMP(3).",
                )
            })?;
            let e = self.expr(&format!("{at}.expr"), &c.expr, &physical_cols)?;
            if e.has_aggregate {
                return Err(self.invalid(
                    &format!("{at}.expr"),
                    "a computed column cannot aggregate",
                    "Compute per row here; aggregate in the template's aggregates.",
                ));
            }
            select.push(format!("CAST({} AS {ty}) AS {}", e.sql(), ident(&c.name)));
            cols.push(Col {
                name: c.name.clone(),
                ty,
            });
        }
        if let Some(late) = &t.late {
            let Some(et) = &t.event_time else {
                return Err(self.invalid(
                    &format!("{path}.late"),
                    "needs event_time: rows are late by the watermark",
                    "Name the source's event-time column in event_time.",
                ));
            };
            if self.source_reuse_off {
                return Err(self.invalid(
                    &format!("{path}.late"),
                    "needs Flink's source reuse, which options.flink turns off",
                    "On-time and late rows are split by one shared read of the source; remove table.optimizer.reuse-source-enabled = false.",
                ));
            }
            let et = ident(et);
            let and = |cond: String| match &filter {
                Some(f) => format!("{f} AND {cond}"),
                None => cond,
            };
            // On time and late partition the rows exactly: a row is late when its event time
            // is at or behind the watermark as it is read (then a window it belongs to may have
            // fired already, and Flink would drop it).
            let late_rows = and(format!("{et} <= CURRENT_WATERMARK({et})"));
            filter = Some(and(format!(
                "(CURRENT_WATERMARK({et}) IS NULL OR {et} > CURRENT_WATERMARK({et}))"
            )));
            let late_view = format!("{name}_late_rows");
            self.script.push(Statement::CreateView {
                name: late_view.clone(),
                select: select.clone(),
                from: ident(physical),
                filter: Some(late_rows),
            });
            let out: Vec<Col> = cols
                .iter()
                .filter(|c| c.name != PROC_TIME)
                .cloned()
                .collect();
            let derived = if late.columns.is_none() {
                Some(out.as_slice())
            } else {
                None
            };
            let sink_name = format!("{name}_late");
            let sink_cols = self.table(
                &format!("{path}.late"),
                &sink_name.replacen(&self.prefix, "", 1),
                late,
                super::params::Role::Sink,
                derived,
                false,
            )?;
            let order = self.match_sink(&format!("{path}.late"), &sink_cols, &out)?;
            let declared = sink_cols
                .iter()
                .map(|c| (c.name.clone(), c.ty.to_string()))
                .collect();
            self.late_sinks.push(((**late).clone(), declared));
            let picked: Vec<String> = order.iter().map(|n| ident(n)).collect();
            self.extra_inserts.push(Statement::Insert {
                sink: self.tname(&sink_name.replacen(&self.prefix, "", 1)),
                select: picked,
                rest: format!("FROM {}", ident(&late_view)),
            });
        }
        self.script.push(Statement::CreateView {
            name: name.to_string(),
            select,
            from: ident(physical),
            filter,
        });
        Ok(cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_names_that_need_quoting() {
        for n in [
            "dateTime", "Name", "user", "order", "a b", "1st", "é", "x-y",
        ] {
            assert!(pg_needs_quoting(n), "{n}");
        }
        for n in ["id", "date_time", "_x", "a1", "amount$"] {
            assert!(!pg_needs_quoting(n), "{n}");
        }
        assert_eq!(pg_quoted("a\"b"), "\"a\"\"b\"");
    }
}
