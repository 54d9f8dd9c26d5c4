//! Pipeline glue: preparing (validate params, resolve columns from datasources, type-check),
//! rendering and validating through the SQL Gateway. Table work is SQL in sql/bootstrap.sql.
use crate::api::catalog::{raise_catalog, raise_source};
use crate::block;
use crate::core::rest::Gateway;
use crate::core::script::split_statements;
use crate::datasource::catalog::{self, CatalogError, ErrorClass};
use crate::datasource::{Kind, Source};
use crate::gucs;
use crate::pipeline::{self, Catalog, ColumnDecl, DatasourceInfo, Definition, Params, Role};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

/// Catalog JSON from SQL: `{name: {kind, options, secrets?}}`. With `secrets`, they are merged
/// into the options (real values); without, the options are used as given (the masked view).
fn catalog_from_json(v: &Value, funcname: &'static str) -> (Catalog, Vec<Source>) {
    let mut cat = Catalog::new();
    let mut sources = Vec::new();
    for (name, d) in v.as_object().into_iter().flatten() {
        let kind = catalog::check_kind(name, d.get("kind").and_then(Value::as_str))
            .unwrap_or_else(|e| raise_catalog(e, funcname));
        let options = d
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let secrets = d
            .get("secrets")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut merged = options.clone();
        for (k, s) in &secrets {
            merged.insert(k.clone(), s.clone());
        }
        cat.insert(
            name.clone(),
            DatasourceInfo {
                kind,
                options: merged,
            },
        );
        sources.push(Source {
            name: name.clone(),
            kind,
            options,
            secrets,
        });
    }
    (cat, sources)
}

fn masked(cat: &Catalog, secret_keys: &[(String, Vec<String>)]) -> Catalog {
    let mut out = cat.clone();
    for (name, keys) in secret_keys {
        if let Some(d) = out.get_mut(name) {
            for k in keys {
                d.options.insert(k.clone(), json!("***"));
            }
        }
    }
    out
}

fn describe_into(src: &Source, object: &str, path: &str, pipeline: &str) -> Vec<ColumnDecl> {
    let s = src.clone();
    let obj = object.to_string();
    let d = block::run(async move { s.describe(&obj, 100).await })
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

/// A stored pipeline as the renderer takes it.
fn definition<'a>(
    name: &'a str,
    template: &'a str,
    params: &'a JsonB,
    options: &'a JsonB,
    database: &'a str,
    version: i32,
) -> Definition<'a> {
    Definition {
        name,
        template,
        params: &params.0,
        options: &options.0,
        database,
        version,
    }
}

#[pg_schema]
mod flink {
    use super::*;

    /// Validates a pipeline definition, fills in columns read from the datasources, and
    /// type-checks it by rendering. Returns {"params": normalised, "datasources": [...]}.
    #[pg_extern(volatile, parallel_unsafe, name = "_pipeline_prepare")]
    fn pipeline_prepare(
        name: Option<&str>,
        template: Option<&str>,
        params: Option<JsonB>,
        options: Option<JsonB>,
        catalog: JsonB,
        database: &str,
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
        let (cat, sources) = catalog_from_json(&catalog.0, F);
        let source_of = |ds: &str| sources.iter().find(|s| s.name == ds);
        let mut p = Params::parse(&name, template, &params).unwrap_or_else(|e| raise_catalog(e, F));

        // Resolve missing columns from the datasources (once, at create time, so rendering
        // stays deterministic and offline).
        for (path, role, t) in p.table_refs_mut() {
            let Some(src) = source_of(&t.datasource) else {
                continue;
            };
            let derive_sink =
                role == Role::Sink && matches!(src.kind, Kind::Kafka | Kind::Elasticsearch);
            // An Elasticsearch source is refused by the renderer with a clear message.
            let es_source = role == Role::Source && src.kind == Kind::Elasticsearch;
            if t.columns.is_none() && !derive_sink && !es_source {
                t.columns = Some(describe_into(src, &t.object, &path, &name));
            }
        }
        if let Params::Sql(sp) = &mut p {
            for r in pipeline::sql_refs(&sp.sql) {
                let Some((ds, obj)) = r.split_once('.') else {
                    continue;
                };
                let Some(src) = source_of(ds) else { continue };
                let entry = sp.tables.entry(r.clone()).or_default();
                if entry.columns.is_none() {
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
        let shown = masked(&cat, &secret_keys);
        let def = Definition {
            name: &name,
            template,
            params: &normalised,
            options: &options,
            database,
            version: 1,
        };
        pipeline::render(&def, &shown).unwrap_or_else(|e| raise_catalog(e, F));
        let datasources = pipeline::referenced_datasources(&mut p);
        JsonB(json!({"params": normalised, "datasources": datasources}))
    }

    /// Renders the script of a stored pipeline with the given catalog (masked or real).
    #[pg_extern(stable, parallel_safe, name = "_pipeline_render")]
    fn pipeline_render(
        name: &str,
        template: &str,
        params: JsonB,
        options: JsonB,
        catalog: JsonB,
        database: &str,
        version: i32,
    ) -> String {
        const F: &str = "flink.render";
        let (cat, _) = catalog_from_json(&catalog.0, F);
        let def = definition(name, template, &params, &options, database, version);
        pipeline::render(&def, &cat).unwrap_or_else(|e| raise_catalog(e, F))
    }

    /// The sink of a stored pipeline for `flink.expose_results`: datasource, kind, object and
    /// the columns with their Postgres types.
    #[pg_extern(stable, parallel_safe, name = "_pipeline_sink")]
    fn pipeline_sink(
        name: &str,
        template: &str,
        params: JsonB,
        options: JsonB,
        catalog: JsonB,
        database: &str,
        version: i32,
    ) -> Option<JsonB> {
        const F: &str = "flink.expose_results";
        let (cat, _) = catalog_from_json(&catalog.0, F);
        let def = definition(name, template, &params, &options, database, version);
        let (sink, cols) = pipeline::sink(&def, &cat).unwrap_or_else(|e| raise_catalog(e, F))?;
        let kind = catalog
            .0
            .get(&sink.datasource)
            .and_then(|d| d.get("kind"))
            .cloned()
            .unwrap_or(Value::Null);
        let columns: Vec<Value> = cols
            .iter()
            .map(|(n, t)| json!({"name": n, "flink_type": t, "pg_type": crate::fdw::value::pg_type_for_flink(t)}))
            .collect();
        Some(JsonB(json!({
            "datasource": sink.datasource,
            "kind": kind,
            "object": sink.object,
            "columns": columns,
        })))
    }

    /// Sends a rendered script to the SQL Gateway: every statement but the INSERT is executed
    /// in a fresh session, the INSERT is EXPLAINed. Never raises for Flink's verdict.
    #[pg_extern(volatile, parallel_unsafe, name = "_pipeline_validate")]
    fn pipeline_validate(
        script: &str,
        gateway_url: Option<&str>,
        params: JsonB,
    ) -> TableIterator<
        'static,
        (
            name!(ok, bool),
            name!(detail, String),
            name!(parameter, Option<String>),
        ),
    > {
        let url = gateway_url
            .map(str::to_string)
            .unwrap_or_else(gucs::gateway_url);
        let limits = gucs::http_limits();
        let wait = gucs::statement_wait();
        let mut stmts = split_statements(script);
        let Some(last) = stmts.pop() else {
            return TableIterator::once((false, "the script is empty".to_string(), None));
        };
        let r = block::run(async move {
            let gw = Gateway::new(&url, limits)?;
            let session = gw.open_session("pg_flink validate", &Map::new()).await?;
            let mut result = Ok(String::new());
            for s in &stmts {
                if let Err(e) = gw.run_statement(&session, s, 10, wait).await {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok() {
                result = gw
                    .run_statement(&session, &format!("EXPLAIN {last}"), 10, wait)
                    .await
                    .map(|r| {
                        r.rows
                            .iter()
                            .filter_map(|row| row.get(0).and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
            }
            let _ = gw.close_session(&session).await;
            result
        });
        TableIterator::once(match r {
            Ok(plan) => (true, plan, None),
            Err(crate::core::rest::RestError::Statement { root_cause, .. }) => {
                let param = quoted_tokens(&root_cause)
                    .iter()
                    .find_map(|t| pipeline::locate(&params.0, t));
                (false, root_cause, param)
            }
            Err(e) => crate::errors::raise_rest(&e, "flink.validate"),
        })
    }
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
