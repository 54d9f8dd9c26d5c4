//! Reading Elasticsearch indexes: a scan opens a point in time and pages through it with
//! `search_after` (bounded memory whatever the result size, no deep from/size, no scroll),
//! prefetching the next page while Postgres consumes the current one. The request body is
//! the query DSL [`dsl`] builds from the pushed WHERE / ORDER BY / LIMIT, typed by the index
//! mapping ([`mapping`](super::mapping)).
use super::client::{is_index_missing, reason, request_failed, Es};
use super::dsl::{self, Field, FieldKind};
use super::mapping::{fields_with, load_flat_mapping};
use super::{base_query, index, source, EsFdwError};
use crate::fdw::cond::Request;
use crate::fdw::value::{JsonFields, PgType, Val};
use crate::fdw::{int_opt, Scan, Ship, TableDef};
use pgrx::pg_sys::panic::ErrorReport;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The first page of a scan without a `batch_size` option, and the largest page.
const FIRST_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;
const FILTER_PATH: &str =
    "pit_id,hits.hits._id,hits.hits._index,hits.hits._score,hits.hits._source,hits.hits.sort";

/// How long Elasticsearch keeps a point in time between page requests.
const KEEP_ALIVE: &str = "2m";

/// One hit of a search page (only the fields the `filter_path` keeps).
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

/// A page request running in the background: (HTTP status, body).
type PageRequest = tokio::task::JoinHandle<Result<(u16, Vec<u8>), EsFdwError>>;

pub struct EsScan {
    table: TableDef,
    index: String,
    es: Es,
    req: Request,
    fields: Vec<(i16, Field)>,
    base: Option<Value>,
    batch: usize,
    /// No `batch_size` option: pages start at [`FIRST_PAGE`] documents and double while
    /// they come back full, up to [`MAX_PAGE`] (few requests for big scans, little waste
    /// for small ones).
    adaptive: bool,
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
    /// Past LIMIT: the `sort` values of the last row within it and how many of them a row
    /// must share to be a tie Postgres may still pick (see [`dsl::tie_prefix`]).
    boundary: Option<(Vec<Value>, usize)>,
    /// Ask one row more than LIMIT (the sort may have ties to fetch past it).
    peek: bool,
    mapped: bool,
    requests: u64,
    fetched: u64,
    started: bool,
}

impl EsScan {
    /// A scan of `table` for the planned `req` (its body built without the mapping); nothing
    /// is sent to Elasticsearch until [`Scan::start`] (or a plain EXPLAIN VERBOSE).
    pub fn new(table: TableDef, req: Request) -> Result<EsScan, ErrorReport> {
        let src = source(&table)?;
        let es = Es::new(&src)?;
        let mut s = EsScan {
            index: index(&table)?,
            base: base_query(&table)?,
            batch: int_opt(&table, "batch_size", FIRST_PAGE as i64).clamp(1, MAX_PAGE as i64)
                as usize,
            adaptive: table.opt("batch_size").is_none(),
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
            boundary: None,
            peek: false,
            mapped: false,
            requests: 0,
            fetched: 0,
            started: false,
        };
        s.build_body();
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
        // Nor when a condition is no longer exact now that the mapping (and the parameter
        // values, after `start`) are known: the planner decided on what it knew then.
        let exact = self
            .req
            .conds
            .iter()
            .all(|c| c.has_params() || dsl::ship_with(&self.fields, c) == Ship::Exact);
        let limit = if sort.is_some() && exact {
            self.req.limit
        } else {
            None
        };
        self.peek = self.req.sort.iter().any(|k| {
            self.fields.iter().any(|(a, f)| {
                *a == k.col && !matches!(f.kind, FieldKind::Keyword | FieldKind::Bool)
            })
        });
        let mut keys = sort.take().unwrap_or_default();
        // Pushed conditions are filters and do not score: only the table's `query` option
        // does. Tracking scores costs Elasticsearch about 3x on a full scan, so it is asked
        // for only when that query exists and `_score` is read or sorted by.
        let scores = self.base.is_some()
            && (self.wanted.iter().any(|w| w.3 == FieldKind::Score)
                || keys.iter().any(|k| k.get("_score").is_some()));
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

    /// Opens a point in time for the body of `self.req` (closing the previous one).
    fn open(&mut self) -> Result<(), ErrorReport> {
        self.cancel_prefetch();
        self.close_pit();
        self.load_mapping()?;
        self.search_after = None;
        self.page = Vec::new().into_iter();
        self.done = self.remaining == Some(0);
        self.boundary = None;
        self.requests = 0;
        self.fetched = 0;
        if self.remaining.is_none() && self.probe()? {
            return Ok(());
        }
        let (st, v) = crate::interruptible::run(self.es.json(
            reqwest::Method::POST,
            &[&self.index, "_pit"],
            &[("keep_alive", KEEP_ALIVE)],
            None,
        ))?;
        self.index_missing(st, &v)?;
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

    /// The error for a response saying the index does not exist.
    fn index_missing(&self, status: u16, body: &Value) -> Result<(), ErrorReport> {
        if status == 404 || is_index_missing(body) {
            return Err(EsFdwError::IndexMissing {
                table: self.table.name.clone(),
                index: self.index.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// A scan without LIMIT first asks for one page without a point in time: when the whole
    /// result fits in it (a selective query), that is the scan — one request, no point in
    /// time to open and close. Otherwise the page is dropped and the scan pages through a
    /// point in time from the start (returns false).
    fn probe(&mut self) -> Result<bool, ErrorReport> {
        let size = self.batch;
        let mut body = self.body.clone();
        body["size"] = json!(size);
        // `_shard_doc` (the tie-breaker) exists only in a point in time; one page needs none.
        if let Some(keys) = body.get_mut("sort").and_then(Value::as_array_mut) {
            keys.retain(|k| k.get("_shard_doc").is_none());
        }
        let es = self.es.clone();
        let index = self.index.clone();
        let (st, bytes) = crate::interruptible::run(async move {
            es.call(
                reqwest::Method::POST,
                &[&index, "_search"],
                &[("filter_path", FILTER_PATH)],
                Some((body.to_string(), "application/json")),
            )
            .await
        })?;
        self.requests += 1;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.index_missing(st, &v)?;
        if st >= 400 {
            return Err(request_failed(&self.table, &self.index, "search", st, &v));
        }
        // filter_path drops an empty hit list: no `hits` at all is no hit.
        let hits = match v.get("hits") {
            None => vec![],
            Some(h) => {
                serde_json::from_value::<Hits>(h.clone())
                    .map_err(|e| EsFdwError::Remote(format!("unexpected search response: {e}")))?
                    .hits
            }
        };
        if hits.len() >= size {
            return Ok(false);
        }
        self.page = hits.into_iter();
        self.done = true;
        self.started = true;
        Ok(true)
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
                &[("filter_path", FILTER_PATH)],
                Some((body.to_string(), "application/json")),
            )
            .await
        };
        self.prefetch = crate::interruptible::spawn(fut).map(|h| (h, size));
    }

    fn cancel_prefetch(&mut self) {
        if let Some((h, _)) = self.prefetch.take() {
            h.abort();
        }
    }

    /// Documents to ask for when `left` rows are still wanted (None: all): one more with
    /// `peek`, and a whole batch when only ties past LIMIT are left.
    fn page_size(&self, left: Option<u64>) -> usize {
        match left {
            Some(0) | None => self.batch,
            Some(r) => (r as usize + usize::from(self.peek)).clamp(1, self.batch),
        }
    }

    fn fetch_page(&mut self) -> Result<(), ErrorReport> {
        if self.prefetch.is_none() {
            self.spawn_page(self.page_size(self.remaining));
        }
        let Some((handle, size)) = self.prefetch.take() else {
            return Err(
                EsFdwError::Remote("cannot start the background I/O runtime".into()).into(),
            );
        };
        let (st, bytes) = crate::interruptible::run(async {
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
        } else if self.adaptive && self.remaining.is_none() {
            self.batch = (self.batch * 2).min(MAX_PAGE);
        }
        // The rows still wanted after this page (LIMIT): the previous page is consumed.
        let left = self.remaining.map(|r| r.saturating_sub(n as u64));
        if !self.done && left != Some(0) {
            self.spawn_page(self.page_size(left));
        }
        self.page = resp.hits.hits.into_iter();
        Ok(())
    }

    fn close_pit(&mut self) {
        if let Some(id) = self.pit.take() {
            let es = self.es.clone();
            let _ = crate::interruptible::run_cleanup(
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
    fn start(&mut self, req: &Request) -> Result<(), ErrorReport> {
        self.req = req.clone();
        self.build_body();
        self.open()
    }

    fn next(&mut self, row: &mut [Val]) -> Result<bool, ErrorReport> {
        if self.remaining == Some(0) && self.boundary.is_none() {
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
        let sort_values = hit.sort.as_ref().and_then(Value::as_array);
        match self.remaining {
            Some(0) => {
                // Past LIMIT: only rows tied with the last one within it.
                let tied = match (&self.boundary, sort_values) {
                    (Some((b, n)), Some(s)) => dsl::ties(b, s, *n),
                    _ => false,
                };
                if !tied {
                    self.boundary = None;
                    self.done = true;
                    self.page = Vec::new().into_iter();
                    self.cancel_prefetch();
                    return Ok(false);
                }
            }
            Some(r) => {
                self.remaining = Some(r - 1);
                if r == 1 {
                    self.boundary = sort_values.and_then(|s| {
                        let n = dsl::tie_prefix(&self.fields, &self.req.sort, s);
                        (n > 0).then(|| (s.clone(), n))
                    });
                }
            }
            None => {}
        }
        self.fetched += 1;
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
