//! Pipeline glue: preparing (validate params, resolve columns from datasources, type-check),
//! rendering and validating through the SQL Gateway. Table work is SQL in sql/install/30_pipelines.sql.
use crate::api::catalog::{raise_catalog, raise_source};
use crate::control::identity::Database;
use crate::datasource::catalog::{self, CatalogError, ErrorClass};
use crate::datasource::Source;
use crate::errors::raise;
use crate::flink::Gateway;
use crate::gucs;
use crate::interruptible;
use crate::pipeline::{self, catalog_of, Catalog, ColumnDecl, Definition, Params, Role, Script};
use crate::stored::{self, PipelineDef};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

/// Catalog JSON `{name: {kind, options, secrets?}}` as the renderer takes it (secrets merged into
/// the options; masked ones stay "***") and as `Source`s (to describe objects).
fn catalog_from_json(v: &Value, funcname: &'static str) -> (Catalog, Vec<Source>) {
    let cat = catalog(v, funcname);
    let sources = v
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, d)| {
            let info = cat.get(name)?;
            let obj = |k: &str| {
                d.get(k)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            Some(Source {
                name: name.clone(),
                kind: info.kind,
                options: obj("options"),
                secrets: obj("secrets"),
            })
        })
        .collect();
    (cat, sources)
}

/// The renderer's catalog of `{name: {kind, options, secrets?}}`.
fn catalog(v: &Value, funcname: &'static str) -> Catalog {
    catalog_of(v).map(|(cat, _)| cat).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e,
            "Check flink.datasources.",
            funcname,
        )
    })
}

/// The SQL Gateway and JobManager URLs of a pipeline's cluster (`options.cluster`, else the
/// default cluster, else `pg_flink.gateway_url` and `pg_flink.rest_url`).
pub(super) fn cluster_urls(p: &PipelineDef) -> (String, String) {
    let cluster = p
        .options
        .get("cluster")
        .and_then(Value::as_str)
        .map(str::to_string);
    let urls = Spi::get_two_with_args::<String, String>(
        "SELECT c.gateway_url, c.rest_url FROM flink.cluster c WHERE c.name = $1 OR ($1 IS NULL AND c.is_default)",
        &[cluster.into()],
    )
    .unwrap_or((None, None));
    (
        urls.0.unwrap_or_else(gucs::gateway_url),
        urls.1.unwrap_or_else(gucs::rest_url),
    )
}

/// A stored pipeline (masked unless `reveal`), or a clear error when it does not exist.
pub(super) fn stored_pipeline(name: &str, reveal: bool, funcname: &'static str) -> PipelineDef {
    match stored::pipeline(name, reveal) {
        Ok(Some(p)) => p,
        Ok(None) => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("pipeline \"{name}\" does not exist"),
            "See SELECT name FROM flink.pipelines.",
            funcname,
        ),
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("pipeline \"{name}\": {e}"),
            "Reading pipelines needs flink_reader; revealing secrets needs flink_admin.",
            funcname,
        ),
    }
}

/// The renderer's view of a stored pipeline, in this database.
fn definition<'a>(p: &'a PipelineDef, database: &'a Database) -> Definition<'a> {
    Definition {
        name: &p.name,
        template: &p.template,
        params: &p.params,
        options: &p.options,
        database,
        version: p.version,
        flink_version: p.flink_version.as_deref(),
    }
}

/// Renders a stored pipeline from its own datasources.
fn render_stored(p: &PipelineDef, funcname: &'static str) -> Script {
    let cat = catalog(&p.datasources, funcname);
    let database = stored::this_database();
    pipeline::render_script(&definition(p, &database), &cat)
        .unwrap_or_else(|e| raise_catalog(e, funcname))
}

fn describe_into(src: &Source, object: &str, path: &str, pipeline: &str) -> Vec<ColumnDecl> {
    let s = src.clone();
    let obj = object.to_string();
    let d = interruptible::run(async move { s.describe(&obj, 100).await })
        .unwrap_or_else(|e| raise_source(e, "flink.create_pipeline"));
    d.columns
        .into_iter()
        .map(|c| match c.flink_type {
            Some(t) => ColumnDecl { name: c.name, ty: t },
            None => raise_catalog(
                CatalogError {
                    class: ErrorClass::DatatypeMismatch,
                    message: format!("pipeline \"{pipeline}\": {path}: column \"{}\" of {object} has type {}, which Flink cannot represent", c.name, c.source_type),
                    hint: format!("Declare the columns you need in {path}.columns."),
                },
                "flink.create_pipeline",
            ),
        })
        .collect()
}

#[pg_schema]
mod flink_internal {
    use super::*;

    /// Validates a pipeline definition, fills in columns read from the datasources, and
    /// type-checks it by rendering once (secrets masked) as version `version`. Returns
    /// {"params": normalised, "datasources": [...], "script_hash": ...}. Called by
    /// flink.create_pipeline (SECURITY DEFINER), which may read the datasources' secrets.
    #[pg_extern(volatile, parallel_unsafe)]
    fn pipeline_prepare(
        name: Option<&str>,
        template: Option<&str>,
        params: Option<JsonB>,
        options: Option<JsonB>,
        version: i32,
    ) -> JsonB {
        const F: &str = "flink.create_pipeline";
        let name = catalog::check_name("pipeline", name).unwrap_or_else(|e| raise_catalog(e, F));
        let template = template.unwrap_or("");
        let Some(JsonB(params)) = params else {
            raise_catalog(
                CatalogError {
                    class: ErrorClass::NullValue,
                    message: format!("pipeline \"{name}\": params must not be null"),
                    hint: "Pass the template's params as a JSON object (docs/pipelines.md).".into(),
                },
                F,
            )
        };
        let options = options.map(|j| j.0).unwrap_or_else(|| json!({}));
        if !options.is_object() {
            raise_catalog(CatalogError { class: ErrorClass::InvalidParameter, message: format!("pipeline \"{name}\": options must be a JSON object"), hint: "Options: parallelism, checkpoint_interval, checkpoint_mode, state_ttl, cluster, flink.".into() }, F);
        }
        // Only the datasources this definition names are read (with their secrets, to describe
        // objects); the script is rendered with the secrets masked.
        let mut p = Params::parse(&name, template, &params).unwrap_or_else(|e| raise_catalog(e, F));
        let named = pipeline::referenced_datasources(&mut p);
        let stored_datasources = stored::datasources(&named).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                e,
                "flink.create_pipeline runs as the extension owner; check its privileges on schema flink.",
                F,
            )
        });
        let (cat, sources) = catalog_from_json(&stored_datasources, F);
        let source_of = |ds: &str| sources.iter().find(|s| s.name == ds);

        // Resolve missing columns from the datasources (once, at create time, so rendering
        // stays deterministic and offline).
        for (path, role, t) in p.table_refs_mut() {
            let Some(src) = source_of(&t.datasource) else {
                continue;
            };
            let derive_sink = role == Role::Sink && src.kind.derives_sink_columns();
            // A sink-only kind as a source is refused by the renderer with a clear message.
            let bad_source = role == Role::Source && src.kind.sink_only();
            let bad_sink = role == Role::Sink && src.kind.source_only();
            if t.columns.is_none() && !derive_sink && !bad_source && !bad_sink {
                t.columns = Some(describe_into(src, &t.object, &path, &name));
            }
        }
        if let Params::Sql(sp) = &mut p {
            let targets = pipeline::templates::sql::insert_targets(&sp.sql);
            for r in pipeline::sql_refs(&sp.sql) {
                let Some((ds, obj)) = r.split_once('.') else {
                    continue;
                };
                let Some(src) = source_of(ds) else { continue };
                // An INSERT's target on a kind that takes the query's columns may not exist
                // yet: its columns are declared (the renderer says so), not described.
                let target = targets.contains(&r) && src.kind.derives_sink_columns();
                let entry = sp.tables.entry(r.clone()).or_default();
                if entry.columns.is_none() && !target && !src.kind.sink_only() {
                    entry.columns = Some(describe_into(
                        src,
                        obj,
                        &format!("params.tables.{r}"),
                        &name,
                    ));
                }
            }
        }
        let normalised = p.to_json();
        let secret_keys: Vec<(String, Vec<String>)> = sources
            .iter()
            .map(|s| (s.name.clone(), s.secrets.keys().cloned().collect()))
            .collect();
        let mut shown = cat.clone();
        for (ds, keys) in &secret_keys {
            if let Some(d) = shown.get_mut(ds) {
                for k in keys {
                    d.options.insert(k.clone(), json!("***"));
                }
            }
        }
        let database = stored::this_database();
        let def = Definition {
            name: &name,
            template,
            params: &normalised,
            options: &options,
            database: &database,
            version,
            // The stored hash is the version-neutral script's.
            flink_version: None,
        };
        let script = pipeline::render(&def, &shown).unwrap_or_else(|e| raise_catalog(e, F));
        JsonB(json!({
            "params": normalised,
            "datasources": named,
            "script_hash": pipeline::script_hash(&script),
        }))
    }
}

#[pg_schema]
mod flink {
    use super::*;

    /// The complete Flink SQL script of a pipeline (SETs, CREATE TEMPORARY TABLEs, INSERT).
    /// Secrets show as *** unless `reveal_secrets` and the caller is flink_admin.
    #[pg_extern(stable, parallel_safe)]
    fn render(name: &str, reveal_secrets: default!(bool, false)) -> String {
        const F: &str = "flink.render";
        if reveal_secrets && !stored::may_reveal() {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("pipeline \"{name}\": only flink_admin may reveal secrets"),
                "Call flink.render(name) without reveal_secrets to see the script with secrets masked.",
                F,
            );
        }
        render_stored(&stored_pipeline(name, reveal_secrets, F), F).to_string()
    }

    /// Every sink of a stored pipeline, in order (the first is `pipeline_sink`'s): a branch's,
    /// a source's late rows, each table a raw SQL pipeline's INSERTs write; as `pipeline_sink`
    /// shows one, plus `sink_no` (1-based).
    #[pg_extern(stable, parallel_safe)]
    fn pipeline_sinks(name: &str) -> SetOfIterator<'static, JsonB> {
        const F: &str = "flink.pipeline_sinks";
        let p = stored_pipeline(name, false, F);
        let cat = catalog(&p.datasources, F);
        let database = stored::this_database();
        let sinks = pipeline::sinks(&definition(&p, &database), &cat)
            .unwrap_or_else(|e| raise_catalog(e, F));
        let rows: Vec<JsonB> = sinks
            .iter()
            .enumerate()
            .map(|(i, (sink, cols))| {
                let mut v = sink_json(&cat, sink, cols);
                v["sink_no"] = json!(i + 1);
                JsonB(v)
            })
            .collect();
        SetOfIterator::new(rows)
    }

    /// The sink of a stored pipeline: datasource, kind, object and the columns with their Flink
    /// and Postgres types (what `flink.expose_results` builds a table from); for a raw SQL
    /// pipeline the first table its INSERTs write, NULL when it writes none it declares.
    #[pg_extern(stable, parallel_safe)]
    fn pipeline_sink(name: &str) -> Option<JsonB> {
        const F: &str = "flink.pipeline_sink";
        let p = stored_pipeline(name, false, F);
        let cat = catalog(&p.datasources, F);
        let database = stored::this_database();
        let (sink, cols) = pipeline::sink(&definition(&p, &database), &cat)
            .unwrap_or_else(|e| raise_catalog(e, F))?;
        Some(JsonB(sink_json(&cat, &sink, &cols)))
    }

    /// Plans the pipeline on the real SQL Gateway: every statement but the INSERT runs in a
    /// fresh session, the INSERT is EXPLAINed. Returns Flink's verdict (never raises for it):
    /// ok and the plan, or Flink's error and the params path it points at. The masked script is
    /// enough for Flink to plan; secrets never travel for validation.
    #[pg_extern(volatile, parallel_unsafe)]
    fn validate(
        name: &str,
    ) -> TableIterator<
        'static,
        (
            name!(ok, bool),
            name!(detail, String),
            name!(parameter, Option<String>),
        ),
    > {
        const F: &str = "flink.validate";
        let p = stored_pipeline(name, false, F);
        let script = render_stored(&p, F);
        let url = cluster_urls(&p).0;
        let params = p.params;
        let limits = gucs::http_limits();
        let wait = gucs::statement_wait();
        let mut stmts = script.statements();
        let Some(last) = stmts.pop() else {
            return TableIterator::once((false, "the script is empty".to_string(), None));
        };
        // Every statement runs but the INSERT, which is EXPLAINed: Flink plans it fully.
        // (A statement set is EXPLAINed as `EXPLAIN STATEMENT SET BEGIN … END`.)
        let last = last.strip_prefix("EXECUTE ").unwrap_or(&last).to_string();
        stmts.push(format!("EXPLAIN {last}"));
        let r = interruptible::run(async move {
            let gw = Gateway::new(&url, limits)?;
            let results = gw
                .run_script("pg_flink validate", &stmts, 10, wait)
                .await
                .map_err(|f| f.error)?;
            Ok(results
                .last()
                .map(|r| {
                    r.rows
                        .iter()
                        .filter_map(|row| row.get(0).and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default())
        });
        TableIterator::once(match r {
            Ok(plan) => (true, plan, None),
            Err(crate::flink::RestError::Statement { root_cause, .. }) => {
                let param = quoted_tokens(&root_cause)
                    .iter()
                    .find_map(|t| pipeline::locate(&params, t));
                (false, root_cause, param)
            }
            Err(e) => crate::errors::raise_rest(&e, F),
        })
    }
}

/// A sink as `flink.pipeline_sink` shows it.
fn sink_json(
    cat: &pipeline::Catalog,
    sink: &pipeline::TableRef,
    cols: &[(String, String)],
) -> Value {
    let kind = cat.get(&sink.datasource).map(|d| d.kind.as_str());
    let columns: Vec<Value> = cols
        .iter()
        .map(|(n, t)| json!({"name": n, "flink_type": t, "pg_type": crate::fdw::value::pg_type_for_declared_flink(t)}))
        .collect();
    json!({
        "datasource": sink.datasource,
        "kind": kind,
        "object": sink.object,
        "columns": columns,
    })
}

/// Tokens quoted in a Flink error message ('x', `x`, "x").
fn quoted_tokens(msg: &str) -> Vec<String> {
    let mut out = Vec::new();
    for q in ['\'', '`', '"'] {
        let parts: Vec<&str> = msg.split(q).collect();
        for (i, p) in parts.iter().enumerate() {
            if i % 2 == 1 && !p.is_empty() && p.len() < 200 {
                out.push(p.to_string());
                // "default_catalog.default_database.x" → x
                if let Some(last) = p.rsplit('.').next() {
                    out.push(last.to_string());
                }
            }
        }
    }
    out
}
