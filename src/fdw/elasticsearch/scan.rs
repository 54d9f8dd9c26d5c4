//! Talking to Elasticsearch: point-in-time + search_after scans and bulk writes.
use super::dsl::{self, Field, FieldKind};
use super::{base_query, index, source, EsFdwError};
use crate::datasource::scrub;
use crate::datasource::Source;
use crate::fdw::cond::Request;
use crate::fdw::value::{JsonFields, PgType, Val};
use crate::fdw::{int_opt, Modify, Scan, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

const KEEP_ALIVE: &str = "2m";

/// A small Elasticsearch client: one connection pool per scan or statement.
#[derive(Clone)]
pub(crate) struct Es {
    http: reqwest::Client,
    base: url::Url,
    /// Credentials and secrets (for scrubbing messages).
    src: Source,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_index", default)]
    index: String,
    #[serde(rename = "_score", default)]
    score: Option<f64>,
    #[serde(rename = "_source", default)]
    source: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    sort: Option<Value>,
}

#[derive(Deserialize)]
struct Hits {
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
struct SearchResponse {
    pit_id: Option<String>,
    hits: Hits,
}

impl Es {
    pub(crate) fn new(src: &Source) -> Result<Es, EsFdwError> {
        let base = crate::core::urls::parse_base_url(src.opt_str("url"))
            .map_err(|e| EsFdwError::Config(format!("elasticsearch url: {e}")))?;
        let timeout = src.timeout();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| EsFdwError::Config(format!("HTTP client: {e}")))?;
        Ok(Es {
            http,
            base,
            src: src.clone(),
            timeout,
        })
    }

    fn url(&self, segs: &[&str]) -> url::Url {
        crate::core::urls::with_segments(&self.base, segs).unwrap_or_else(|| self.base.clone())
    }

    /// One request; (status, body). Network failures and timeouts are errors.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        segs: &[&str],
        query: &[(&str, &str)],
        body: Option<(String, &str)>,
    ) -> Result<(u16, Vec<u8>), EsFdwError> {
        let mut req = self
            .src
            .es_authorize(self.http.request(method, self.url(segs)).query(query));
        if let Some((b, ctype)) = body {
            req = req.header("Content-Type", ctype).body(b);
        }
        let resp = req.send().await.map_err(|e| self.net_err(e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.net_err(e))?;
        Ok((status, bytes.to_vec()))
    }

    fn net_err(&self, e: reqwest::Error) -> EsFdwError {
        let msg = crate::core::text::error_chain(&e);
        let msg = scrub(&msg, &self.src.secrets);
        if e.is_timeout() {
            EsFdwError::Timeout(format!(
                "Elasticsearch at {} did not answer within {} ms (timeout_ms)",
                self.base,
                self.timeout.as_millis()
            ))
        } else {
            EsFdwError::Unreachable(format!(
                "cannot reach Elasticsearch at {}: {msg}",
                self.base
            ))
        }
    }

    pub(crate) async fn json(
        &self,
        method: reqwest::Method,
        segs: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<(u16, Value), EsFdwError> {
        let (st, b) = self
            .call(
                method,
                segs,
                query,
                body.map(|b| (b.to_string(), "application/json")),
            )
            .await?;
        let v = serde_json::from_slice(&b).unwrap_or(Value::Null);
        Ok((st, v))
    }
}

fn reason(v: &Value) -> String {
    let t = v
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let r = v
        .pointer("/error/root_cause/0/reason")
        .or_else(|| v.pointer("/error/reason"))
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{t}: {r}")
}

/// The error for a failed search or bulk request: a missing index, or Elasticsearch's reason.
fn request_failed(
    table: &TableDef,
    index: &str,
    what: &str,
    status: u16,
    body: &Value,
) -> ErrorReport {
    if is_index_missing(body) {
        return EsFdwError::IndexMissing {
            table: table.name.clone(),
            index: index.to_string(),
        }
        .into();
    }
    EsFdwError::Remote(format!(
        "foreign table {}: {what} on index \"{index}\" failed: HTTP {status}: {}",
        table.name,
        reason(body)
    ))
    .into()
}

fn is_index_missing(v: &Value) -> bool {
    v.pointer("/error/type").and_then(Value::as_str) == Some("index_not_found_exception")
}

/// (index, its top-level mapping properties).
pub(crate) type IndexProps = Vec<(String, Map<String, Value>)>;

/// Top-level mapping properties of every index matching `pattern`; None if nothing matches.
fn index_mappings(es: &Es, pattern: &str) -> Result<Option<IndexProps>, ErrorReport> {
    let (st, v) =
        crate::block::run(es.json(reqwest::Method::GET, &[pattern, "_mapping"], &[], None))?;
    if st == 404 || is_index_missing(&v) {
        return Ok(None);
    }
    if st >= 400 {
        return Err(EsFdwError::Remote(format!(
            "reading the mapping of \"{pattern}\": HTTP {st}: {}",
            reason(&v)
        ))
        .into());
    }
    let mut out: IndexProps = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, m)| {
            let props = m
                .pointer("/mappings/properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            (name.clone(), props)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(out))
}

/// Properties of every index matching `pattern` (IMPORT FOREIGN SCHEMA).
pub(crate) fn mappings(src: &Source, pattern: &str) -> Result<IndexProps, ErrorReport> {
    Ok(index_mappings(&Es::new(src)?, pattern)?.unwrap_or_default())
}

/// Flattens properties into dotted field paths → (type, keyword sub-field of text fields).
fn flatten(
    props: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<(String, String, Option<String>)>,
) {
    for (k, f) in props {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let ty = f
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object")
            .to_string();
        let sub = f.get("fields").and_then(Value::as_object).and_then(|subs| {
            subs.iter()
                .find(|(_, s)| s.get("type").and_then(Value::as_str) == Some("keyword"))
                .map(|(n, _)| format!("{path}.{n}"))
        });
        out.push((path.clone(), ty, sub));
        if let Some(p) = f.get("properties").and_then(Value::as_object) {
            flatten(p, &path, out);
        }
    }
}

type Flat = Vec<(String, String, Option<String>)>;
/// A page request running in the background: (HTTP status, body).
type PageRequest = tokio::task::JoinHandle<Result<(u16, Vec<u8>), EsFdwError>>;
type MappingCache =
    std::collections::HashMap<(String, String), (std::time::Instant, std::rc::Rc<Flat>)>;

thread_local! {
    /// Index mappings seen lately by this backend: (url, index) → (when, flattened fields).
    /// Planning uses them to know keyword vs text; scans refresh them.
    static MAPPINGS: std::cell::RefCell<MappingCache> = std::cell::RefCell::new(MappingCache::new());
}
const MAPPING_TTL: Duration = Duration::from_secs(30);

fn load_flat_mapping(
    es: &Es,
    table: &TableDef,
    index: &str,
    cached_ok: bool,
) -> Result<std::rc::Rc<Flat>, ErrorReport> {
    let key = (es.base.to_string(), index.to_string());
    if cached_ok {
        let hit = MAPPINGS.with(|m| {
            m.borrow()
                .get(&key)
                .filter(|(t, _)| t.elapsed() < MAPPING_TTL)
                .map(|(_, f)| f.clone())
        });
        if let Some(f) = hit {
            return Ok(f);
        }
    }
    let Some(props) = index_mappings(es, index)? else {
        return Err(EsFdwError::IndexMissing {
            table: table.name.clone(),
            index: index.to_string(),
        }
        .into());
    };
    let mut flat = vec![];
    for (_, p) in &props {
        flatten(p, "", &mut flat);
    }
    let flat = std::rc::Rc::new(flat);
    MAPPINGS.with(|m| {
        m.borrow_mut()
            .insert(key, (std::time::Instant::now(), flat.clone()))
    });
    Ok(flat)
}

fn fields_with(table: &TableDef, flat: &Flat) -> Vec<(i16, Field)> {
    let lookup = |path: &str| {
        flat.iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, t, s)| (t.clone(), s.clone()))
    };
    dsl::fields(table, Some(&lookup))
}

/// Fields of a table for planning: with the (cached) mapping when Elasticsearch answers,
/// else from column options and types alone.
pub(crate) fn plan_fields(table: &TableDef) -> Vec<(i16, Field)> {
    let flat = source(table).ok().and_then(|src| {
        let es = Es::new(&src).ok()?;
        let idx = index(table).ok()?;
        // Errors (index missing, ES down) surface at scan start, with the right message.
        load_flat_mapping(&es, table, &idx, true).ok()
    });
    match flat {
        Some(f) => fields_with(table, &f),
        None => dsl::fields(table, None),
    }
}

pub struct EsScan {
    table: TableDef,
    index: String,
    es: Es,
    req: Request,
    fields: Vec<(i16, Field)>,
    base: Option<Value>,
    batch: usize,
    null_on_error: bool,
    /// (field path, its dotted parts, type, kind) of each wanted column, in `req.wanted` order.
    wanted: Vec<(String, Vec<String>, Option<PgType>, FieldKind)>,
    body: Value,
    pit: Option<String>,
    search_after: Option<Value>,
    page: std::vec::IntoIter<Hit>,
    /// The next page's request, already running, and its size.
    prefetch: Option<(PageRequest, usize)>,
    done: bool,
    remaining: Option<u64>,
    mapped: bool,
    requests: u64,
    fetched: u64,
    started: bool,
}

impl EsScan {
    pub fn new(table: TableDef, req: Request, explain_only: bool) -> Result<EsScan, ErrorReport> {
        let src = source(&table)?;
        let es = Es::new(&src)?;
        let mut s = EsScan {
            index: index(&table)?,
            base: base_query(&table)?,
            batch: int_opt(&table, "batch_size", 1000).clamp(1, 10_000) as usize,
            null_on_error: table.opt("on_error") == Some("null"),
            fields: dsl::fields(&table, None),
            table,
            es,
            req,
            wanted: vec![],
            body: Value::Null,
            pit: None,
            search_after: None,
            page: Vec::new().into_iter(),
            prefetch: None,
            done: false,
            remaining: None,
            mapped: false,
            requests: 0,
            fetched: 0,
            started: false,
        };
        s.build_body();
        if !explain_only {
            s.start()?;
        }
        Ok(s)
    }

    /// Learns field types from the index mapping (once per scan): exact keyword sub-fields,
    /// text vs keyword.
    fn load_mapping(&mut self) -> Result<(), ErrorReport> {
        if self.mapped {
            return Ok(());
        }
        let flat = load_flat_mapping(&self.es, &self.table, &self.index, false)?;
        self.fields = fields_with(&self.table, &flat);
        self.mapped = true;
        self.build_body();
        Ok(())
    }

    fn build_body(&mut self) {
        self.wanted = self
            .req
            .wanted
            .iter()
            .map(|a| {
                let f = self
                    .fields
                    .iter()
                    .find(|(x, _)| x == a)
                    .map(|(_, f)| f.clone());
                let ty = self.table.col(*a).and_then(|c| c.ty.clone());
                match f {
                    Some(f) => {
                        let tokens = f.path.split('.').map(str::to_string).collect();
                        (f.path, tokens, ty, f.kind)
                    }
                    None => (String::new(), vec![], ty, FieldKind::Other),
                }
            })
            .collect();
        let query = dsl::query(&self.fields, &self.req.conds, self.base.as_ref());
        let mut sort = if self.req.sort.is_empty() {
            Some(vec![])
        } else {
            dsl::sort(&self.fields, &self.req.sort)
        };
        // A sort that cannot be shipped means Postgres sorts: LIMIT must not be shipped either.
        let limit = if sort.is_some() { self.req.limit } else { None };
        let mut keys = sort.take().unwrap_or_default();
        let scores = self.wanted.iter().any(|w| w.3 == FieldKind::Score)
            || keys.iter().any(|k| k.get("_score").is_some());
        keys.push(json!({"_shard_doc": "asc"}));
        let sources: Vec<&str> = self
            .wanted
            .iter()
            .filter(|w| {
                !matches!(w.3, FieldKind::Id | FieldKind::Index | FieldKind::Score)
                    && !w.0.is_empty()
            })
            .map(|w| w.0.as_str())
            .collect();
        let size = match limit {
            Some(l) => (l as usize).clamp(1, self.batch),
            None => self.batch,
        };
        let mut body = json!({
            "size": size,
            "query": query,
            "sort": keys,
            "track_total_hits": false,
        });
        // Source filtering costs Elasticsearch CPU: when the query reads every field column
        // of the table, take the whole `_source` instead.
        let field_columns = self
            .fields
            .iter()
            .filter(|(_, f)| !matches!(f.kind, FieldKind::Id | FieldKind::Index | FieldKind::Score))
            .count();
        body["_source"] = if sources.is_empty() {
            json!(false)
        } else if sources.len() >= field_columns {
            json!(true)
        } else {
            json!(sources)
        };
        if scores {
            body["track_scores"] = json!(true);
        }
        self.remaining = limit;
        self.body = body;
    }

    fn start(&mut self) -> Result<(), ErrorReport> {
        self.cancel_prefetch();
        self.close_pit();
        self.load_mapping()?;
        self.search_after = None;
        self.page = Vec::new().into_iter();
        self.done = self.remaining == Some(0);
        self.requests = 0;
        self.fetched = 0;
        let (st, v) = crate::block::run(self.es.json(
            reqwest::Method::POST,
            &[&self.index, "_pit"],
            &[("keep_alive", KEEP_ALIVE)],
            None,
        ))?;
        if st == 404 || is_index_missing(&v) {
            return Err(EsFdwError::IndexMissing {
                table: self.table.name.clone(),
                index: self.index.clone(),
            }
            .into());
        }
        if st >= 400 {
            return Err(EsFdwError::Remote(format!(
                "index \"{}\": opening a point in time: HTTP {st}: {}",
                self.index,
                reason(&v)
            ))
            .into());
        }
        self.pit = v.get("id").and_then(Value::as_str).map(str::to_string);
        self.started = true;
        Ok(())
    }

    /// Starts the request for the page after `search_after` on the background runtime, so
    /// Elasticsearch works on it while Postgres consumes the current page.
    fn spawn_page(&mut self, size: usize) {
        let mut body = self.body.clone();
        body["pit"] = json!({"id": self.pit, "keep_alive": KEEP_ALIVE});
        if let Some(sa) = &self.search_after {
            body["search_after"] = sa.clone();
        }
        body["size"] = json!(size);
        let es = self.es.clone();
        let fut = async move {
            es.call(
                reqwest::Method::POST,
                &["_search"],
                &[("filter_path", "pit_id,hits.hits._id,hits.hits._index,hits.hits._score,hits.hits._source,hits.hits.sort")],
                Some((body.to_string(), "application/json")),
            )
            .await
        };
        self.prefetch = crate::block::spawn(fut).map(|h| (h, size));
    }

    fn cancel_prefetch(&mut self) {
        if let Some((h, _)) = self.prefetch.take() {
            h.abort();
        }
    }

    fn fetch_page(&mut self) -> Result<(), ErrorReport> {
        if self.prefetch.is_none() {
            let size = match self.remaining {
                Some(r) => (r as usize).clamp(1, self.batch),
                None => self.batch,
            };
            self.spawn_page(size);
        }
        let Some((handle, size)) = self.prefetch.take() else {
            return Err(
                EsFdwError::Remote("cannot start the background I/O runtime".into()).into(),
            );
        };
        let (st, bytes) = crate::block::run(async {
            handle
                .await
                .map_err(|e| EsFdwError::Remote(format!("page request failed: {e}")))?
        })?;
        self.requests += 1;
        if st >= 400 {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(request_failed(&self.table, &self.index, "search", st, &v));
        }
        // filter_path drops empty objects: no hits at all comes back as {"pit_id": …}.
        let resp: SearchResponse = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(_) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                SearchResponse {
                    pit_id: v.get("pit_id").and_then(Value::as_str).map(str::to_string),
                    hits: Hits { hits: vec![] },
                }
            }
        };
        if resp.pit_id.is_some() {
            self.pit = resp.pit_id;
        }
        let n = resp.hits.hits.len();
        self.search_after = resp.hits.hits.last().and_then(|h| h.sort.clone());
        if n < size || self.search_after.is_none() {
            self.done = true;
        }
        // The rows still wanted after this page (LIMIT): the previous page is consumed.
        let left = self.remaining.map(|r| r.saturating_sub(n as u64));
        if !self.done && left != Some(0) {
            let next = left
                .map(|l| (l as usize).clamp(1, self.batch))
                .unwrap_or(self.batch);
            self.spawn_page(next);
        }
        self.page = resp.hits.hits.into_iter();
        Ok(())
    }

    fn close_pit(&mut self) {
        if let Some(id) = self.pit.take() {
            let es = self.es.clone();
            let _ = crate::block::run_cleanup(
                async move {
                    es.json(
                        reqwest::Method::DELETE,
                        &["_pit"],
                        &[],
                        Some(json!({"id": id})),
                    )
                    .await
                },
                Duration::from_secs(1),
            );
        }
    }
}

impl Drop for EsScan {
    fn drop(&mut self) {
        self.cancel_prefetch();
        self.close_pit();
    }
}

impl Scan for EsScan {
    fn next(&mut self, row: &mut [Val]) -> Result<bool, ErrorReport> {
        if self.remaining == Some(0) {
            return Ok(false);
        }
        let hit = loop {
            if let Some(h) = self.page.next() {
                break h;
            }
            if self.done {
                return Ok(false);
            }
            self.fetch_page()?;
        };
        self.fetched += 1;
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        // `_source` stays raw JSON: each wanted field is converted from its text.
        let src: Option<JsonFields> = hit
            .source
            .as_deref()
            .and_then(|r| serde_json::from_str(r.get()).ok());
        for (i, (path, tokens, ty, kind)) in self.wanted.iter().enumerate() {
            row[i] = match kind {
                FieldKind::Id => Val::Text(hit.id.clone()),
                FieldKind::Index => Val::Text(hit.index.clone()),
                FieldKind::Score => hit.score.map(Val::Float).unwrap_or(Val::Null),
                _ => {
                    let Some(ty) = ty else { continue };
                    match src.as_ref().and_then(|s| s.convert(tokens, Some(path), ty)) {
                        None => Val::Null,
                        Some(Ok(x)) => x,
                        Some(Err(_)) if self.null_on_error => Val::Null,
                        Some(Err(e)) => {
                            return Err(EsFdwError::Conversion {
                                table: self.table.name.clone(),
                                index: hit.index.clone(),
                                id: hit.id.clone(),
                                field: path.clone(),
                                message: e.0,
                            }
                            .into())
                        }
                    }
                }
            };
        }
        Ok(true)
    }

    fn rescan(&mut self, req: &Request) -> Result<(), ErrorReport> {
        self.req = req.clone();
        self.build_body();
        self.start()
    }

    fn explain(&mut self, verbose: bool, analyze: bool) -> Vec<(String, String)> {
        let mut out = vec![("Elasticsearch Index".to_string(), self.index.clone())];
        if verbose {
            if !self.mapped {
                // Plain EXPLAIN VERBOSE: read the mapping so the DSL shown is the one sent.
                let _ = self.load_mapping();
            }
            out.push(("Elasticsearch Query".into(), self.body.to_string()));
        }
        if analyze {
            out.push(("Elasticsearch Requests".into(), self.requests.to_string()));
            out.push(("Documents Fetched".into(), self.fetched.to_string()));
        }
        out
    }
}

// ------------------------------------------------------------------------------- bulk

pub struct EsModify {
    table: TableDef,
    index: String,
    es: Es,
    fields: Vec<(i16, Field)>,
    batch: usize,
    refresh: String,
    lines: String,
    /// _id of each action in `lines`, for error messages.
    ids: Vec<String>,
    sent: u64,
    failed: u64,
    errors: Vec<String>,
}

impl EsModify {
    pub fn new(table: TableDef) -> Result<EsModify, ErrorReport> {
        let src = source(&table)?;
        Ok(EsModify {
            es: Es::new(&src)?,
            index: index(&table)?,
            fields: dsl::fields(&table, None),
            batch: int_opt(&table, "batch_size", 1000).clamp(1, 100_000) as usize,
            refresh: table.opt("refresh").unwrap_or("wait_for").to_string(),
            table,
            lines: String::new(),
            ids: vec![],
            sent: 0,
            failed: 0,
            errors: vec![],
        })
    }

    fn doc(&self, row: &[(i16, Val)], keep_nulls: bool) -> (Option<String>, Value) {
        let mut doc = Map::new();
        let mut id = None;
        for (attnum, v) in row {
            let Some((_, f)) = self.fields.iter().find(|(a, _)| a == attnum) else {
                continue;
            };
            match f.kind {
                FieldKind::Id => id = v.to_text(),
                FieldKind::Index | FieldKind::Score => {}
                _ => {
                    if *v == Val::Null && !keep_nulls {
                        continue;
                    }
                    dsl::set_field(&mut doc, &f.path, v.to_json());
                }
            }
        }
        (id, Value::Object(doc))
    }

    fn push(&mut self, action: Value, doc: Option<Value>, id: String) -> Result<(), ErrorReport> {
        self.lines.push_str(&action.to_string());
        self.lines.push('\n');
        if let Some(d) = doc {
            self.lines.push_str(&d.to_string());
            self.lines.push('\n');
        }
        self.ids.push(id);
        if self.ids.len() >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ErrorReport> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let body = std::mem::take(&mut self.lines);
        let ids = std::mem::take(&mut self.ids);
        let (st, bytes) = crate::block::run(self.es.call(
            reqwest::Method::POST,
            &["_bulk"],
            &[
                ("refresh", self.refresh.as_str()),
                (
                    "filter_path",
                    "errors,items.*.error,items.*.status,items.*._id",
                ),
            ],
            Some((body, "application/x-ndjson")),
        ))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if st >= 400 {
            return Err(request_failed(
                &self.table,
                &self.index,
                "bulk request",
                st,
                &v,
            ));
        }
        self.sent += ids.len() as u64;
        if v.get("errors").and_then(Value::as_bool) == Some(true) {
            for (i, item) in v
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some((_, r)) = item.as_object().and_then(|o| o.iter().next()) else {
                    continue;
                };
                if let Some(err) = r.get("error") {
                    self.failed += 1;
                    if self.errors.len() < 3 {
                        let id = r
                            .get("_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| ids.get(i).cloned())
                            .unwrap_or_default();
                        let t = err.get("type").and_then(Value::as_str).unwrap_or("error");
                        let reason = err.get("reason").and_then(Value::as_str).unwrap_or("");
                        self.errors.push(format!("_id \"{id}\": {t}: {reason}"));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Modify for EsModify {
    fn insert(&mut self, row: &[(i16, Val)]) -> Result<(), ErrorReport> {
        let (id, doc) = self.doc(row, false);
        let mut meta = json!({"_index": self.index});
        if let Some(id) = &id {
            meta["_id"] = json!(id);
        }
        self.push(
            json!({"index": meta}),
            Some(doc),
            id.unwrap_or_else(|| "(new)".into()),
        )
    }

    fn update(&mut self, id: &Val, row: &[(i16, Val)]) -> Result<(), ErrorReport> {
        let id = id.to_text().unwrap_or_default();
        let (_, doc) = self.doc(row, true);
        self.push(
            json!({"update": {"_index": self.index, "_id": id}}),
            Some(json!({"doc": doc})),
            id,
        )
    }

    fn delete(&mut self, id: &Val) -> Result<(), ErrorReport> {
        let id = id.to_text().unwrap_or_default();
        self.push(
            json!({"delete": {"_index": self.index, "_id": id}}),
            None,
            id,
        )
    }

    fn finish(&mut self) -> Result<(), ErrorReport> {
        self.flush()?;
        if self.failed > 0 {
            return Err(EsFdwError::Rejected(format!(
                "foreign table {}: Elasticsearch rejected {} of {} document(s) of index \"{}\": {}",
                self.table.name,
                self.failed,
                self.sent,
                self.index,
                self.errors.join("; ")
            ))
            .into());
        }
        Ok(())
    }
}
