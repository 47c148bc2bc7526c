//! Framework-free request handling: `http::Request<Bytes>` in, `http::Response<Bytes>` out.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value as Json, json};
use tokio::sync::Semaphore;

use super::collections::CollectionSummary;
use super::paging::{PageCache, Suspended, Token};
use super::params::{self, Format, Limits, SearchParams};
use super::state::{self, CollectionMemo, Current, Snapshot};
use super::{ServerOptions, openapi};
use crate::error::{Error, Result};
use crate::query::escape_markup;
use crate::query::{DecodedFiles, Found, Relink, SearchRequest, Warehouse, relink_item};

/// GeoJSON media type.
const GEOJSON: &str = "application/geo+json";
/// JSON media type.
const JSON: &str = "application/json";
/// stac-geoparquet media type.
const PARQUET: &str = "application/vnd.apache.parquet";
/// The OpenAPI media type of `/api`.
const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";
/// The queryables relation.
const REL_QUERYABLES: &str = "http://www.opengis.net/def/rel/ogc/1.0/queryables";
/// Older snapshots kept open for paging tokens that pin them.
const PINNED_SNAPSHOTS: usize = 4;

/// The conformance classes this server passes (checked by `stac-api-validator` in
/// `tests/serve_validator.rs`).
pub(crate) const CONFORMANCE: &[&str] = &[
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-operators",
];

/// An error response: `{"code": ..., "description": ...}`.
#[derive(Debug, Clone)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", description)
    }

    fn gone(description: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Gone", description)
    }

    fn unavailable(description: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                description,
            )
        }
    }

    pub(super) fn response(&self) -> Response<Bytes> {
        let body = json!({"code": self.code, "description": self.description});
        let mut r = respond(self.status, JSON, body.to_string().into());
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match &e {
            Error::InvalidArgument { .. } | Error::Geometry { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                e.to_string(),
            ),
            Error::NotFound { .. } => Self::not_found(e.to_string()),
            Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            } => Self::gone(format!(
                "{e}: the catalog changed (files were compacted or removed) since the snapshot \
                 this request reads; retry it (a paged search: restart it without a token)"
            )),
            _ if e.is_retryable() => Self::unavailable(e.to_string()),
            _ => {
                tracing::error!(error = %e, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    e.to_string(),
                )
            }
        }
    }
}

type Reply = std::result::Result<Response<Bytes>, ApiError>;

fn respond(status: StatusCode, content_type: &str, body: Bytes) -> Response<Bytes> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply(content_type: &str, body: &Json) -> Reply {
    Ok(respond(
        StatusCode::OK,
        content_type,
        body.to_string().into(),
    ))
}

/// A path segment, percent-encoded (RFC 3986 unreserved characters kept).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decode a path segment (`None` when it is not UTF-8).
fn decode_segment(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// What a page request needs to build its links.
struct PageContext {
    base: String,
    /// Path of the endpoint (`/search` or `/collections/{id}/items`).
    path: String,
    /// The request's query string (GET).
    query: Option<String>,
    method: Method,
    format: Format,
}

/// A warehouse to search: the served snapshot, or an older one a token pins.
enum Source {
    Current(Arc<Snapshot>),
    Pinned(Arc<Warehouse>),
}

impl Source {
    fn warehouse(&self) -> &Warehouse {
        match self {
            Source::Current(s) => &s.warehouse,
            Source::Pinned(w) => w,
        }
    }
}

/// The STAC API over one catalog (see the module docs of [`crate::server`]).
pub struct Api {
    options: ServerOptions,
    limits: Limits,
    current: Current,
    memo: CollectionMemo,
    pages: Mutex<PageCache>,
    pinned: Mutex<Vec<(i64, Instant, Arc<Warehouse>)>>,
    permits: Semaphore,
    outstanding: AtomicUsize,
    /// The machine's cores (for [`Api::read_concurrency`]).
    cores: usize,
    reload: tokio::sync::Mutex<()>,
    last_reload_error: Mutex<Option<String>>,
    /// Pages served from a suspended stream / recomputed by skipping (a cache miss).
    pages_resumed: AtomicUsize,
    pages_recomputed: AtomicUsize,
    /// Decoded small files shared by every search (`None` when configured to 0 bytes).
    decoded: Option<Arc<DecodedFiles>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("catalog", &self.options.catalog)
            .field("snapshot", &self.snapshot().snapshot_id())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Api {
    /// Open the catalog and load its current snapshot.
    pub async fn open(options: ServerOptions) -> Result<Self> {
        options.validate()?;
        let memo = CollectionMemo::default();
        let first = state::load(&options, &memo).await?;
        Ok(Self {
            limits: Limits {
                default_limit: options.default_limit,
                max_limit: options.max_limit,
                max_vertices: options.max_vertices,
                max_sort_items: options.max_sort_items,
            },
            current: Current::new(first),
            memo,
            pages: Mutex::new(PageCache::new(
                options.page_cache,
                options.page_cache_ttl,
                options.max_sort_items.saturating_mul(2),
                options.page_cache_bytes,
            )),
            pinned: Mutex::new(Vec::new()),
            permits: Semaphore::new(options.max_in_flight),
            outstanding: AtomicUsize::new(0),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            reload: tokio::sync::Mutex::new(()),
            last_reload_error: Mutex::new(None),
            pages_resumed: AtomicUsize::new(0),
            pages_recomputed: AtomicUsize::new(0),
            decoded: (options.file_cache_bytes > 0)
                .then(|| Arc::new(DecodedFiles::new(options.file_cache_bytes))),
            options,
        })
    }

    /// The settings.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.get()
    }

    /// Check the catalog's version and, when it changed, load the new snapshot and swap it in
    /// (requests in flight keep the old one). Returns whether it swapped. A failure leaves the
    /// served snapshot as it was.
    pub async fn reload_if_changed(&self) -> Result<bool> {
        let _one_at_a_time = self.reload.lock().await;
        let current = self.current.get();
        let result = async {
            let now = state::head_version(&self.options.catalog).await?;
            // A rebuilt id locator (`index locate` does not touch the catalog) is a change too.
            let locator_now = state::locator_version(&current.warehouse).await;
            if now == current.version && locator_now == current.locator_version {
                return Ok(false);
            }
            let next = state::load(&self.options, &self.memo).await?;
            tracing::info!(
                catalog = %self.options.catalog,
                from = ?current.snapshot_id(),
                to = ?next.snapshot_id(),
                files = next.warehouse.cached_files().map_or(0, |f| f.len()),
                "serving a new snapshot"
            );
            self.current.set(Arc::new(next));
            Ok(true)
        }
        .await;
        *lock(&self.last_reload_error) = result.as_ref().err().map(|e: &Error| e.to_string());
        result
    }

    /// Check for a new snapshot every `options.reload_every` until dropped (spawn it).
    pub async fn reload_loop(self: Arc<Self>) {
        let Some(every) = self.options.reload_every else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = self.reload_if_changed().await {
                tracing::warn!(
                    catalog = %self.options.catalog,
                    error = %e,
                    "reloading the catalog failed; still serving the previous snapshot"
                );
            }
        }
    }

    /// Answer one request. Never panics on bad input; errors are JSON.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        if req.uri().path() == "/_health" {
            return self.health();
        }
        if req.body().len() > self.options.max_body_bytes {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!(
                    "body: {} bytes; at most {} are accepted",
                    req.body().len(),
                    self.options.max_body_bytes
                ),
            )
            .response();
        }
        // Back-pressure: wait for a slot while the queue is short; shed load beyond it.
        let waiting = self.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
        let _outstanding = Outstanding(&self.outstanding);
        if waiting > self.options.max_in_flight + self.options.max_queued {
            return ApiError::unavailable("the server is busy; retry shortly").response();
        }
        let deadline = self.options.request_timeout;
        let work = async {
            let Ok(_permit) = self.permits.acquire().await else {
                return ApiError::unavailable("the server is shutting down").response();
            };
            match self.route(req).await {
                Ok(r) => r,
                Err(e) => e.response(),
            }
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(r) => r,
            Err(_) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!(
                    "the request took longer than {} s; narrow the search (bbox, datetime, \
                     collections) or lower the limit",
                    deadline.as_secs_f64()
                ),
            )
            .response(),
        }
    }

    fn health(&self) -> Response<Bytes> {
        let s = self.snapshot();
        let body = json!({
            "status": "ok",
            "catalog": self.options.catalog,
            "snapshot_id": s.snapshot_id(),
            "files": s.warehouse.cached_files().map_or(0, |f| f.len()),
            "collections": s.collections.len(),
            "last_reload_error": *lock(&self.last_reload_error),
            "pages_resumed": self.pages_resumed.load(Ordering::Relaxed),
            "pages_recomputed": self.pages_recomputed.load(Ordering::Relaxed),
            "id_locator": s.locator.is_some(),
            "file_cache": self.decoded.as_ref().map(|c| c.stats()),
        });
        respond(StatusCode::OK, JSON, body.to_string().into())
    }

    fn base_url(&self, req: &Request<Bytes>) -> String {
        if let Some(url) = &self.options.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    async fn route(&self, req: Request<Bytes>) -> Reply {
        let base = self.base_url(&req);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut segments: Vec<String> = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            segments.push(decode_segment(raw).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValue",
                    format!("path: {path:?} is not UTF-8 after percent-decoding"),
                )
            })?);
        }
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let get = method == Method::GET || method == Method::HEAD;
        let allow = |allowed: &str| -> Reply {
            let mut r = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not allowed on {path} (allowed: {allowed})"),
            )
            .response();
            if let Ok(v) = HeaderValue::from_str(allowed) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            Ok(r)
        };
        let snap = self.snapshot();
        match (seg.as_slice(), get) {
            // A browser asking for HTML gets a page with the coverage map; API clients JSON.
            ([], true) if wants_html(&req) => self.landing_html(&base, &snap).await,
            ([], true) => json_reply(JSON, &self.landing(&base, &snap)),
            (["conformance"], true) => json_reply(JSON, &json!({"conformsTo": CONFORMANCE})),
            (["api"], true) => json_reply(
                OPENAPI,
                &openapi::document(&base, self.options.default_limit, self.options.max_limit),
            ),
            (["api.html"], true) => Ok(respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                openapi::html(&escape_markup(&base)).into(),
            )),
            (["collections"], true) => json_reply(JSON, &self.collections(&base, &snap)),
            (["collections", cid], true) => {
                let c = known_collection(&snap, cid)?;
                json_reply(JSON, &collection_json(&base, c))
            }
            (["collections", cid, "queryables"], true) => {
                known_collection(&snap, cid)?;
                let id = format!("{base}/collections/{}/queryables", encode_segment(cid));
                json_reply("application/schema+json", &queryables(&snap, &id))
            }
            (["queryables"], true) => json_reply(
                "application/schema+json",
                &queryables(&snap, &format!("{base}/queryables")),
            ),
            (["collections", cid, "items"], true) => {
                known_collection(&snap, cid)?;
                let query = req.uri().query().map(str::to_string);
                let params = params::from_query(query.as_deref(), self.limits, Some(cid))?;
                let ctx = PageContext {
                    format: response_format(&req, params.format),
                    base,
                    path: format!("/collections/{}/items", encode_segment(cid)),
                    query,
                    method: Method::GET,
                };
                self.page(snap, params, ctx).await
            }
            (["collections", cid, "items", id], true) => {
                known_collection(&snap, cid)?;
                self.item(&base, snap, cid, id).await
            }
            (["search"], _) if get || method == Method::POST => {
                if crate::fault::check("server.search").is_err() {
                    panic!("injected panic at server.search");
                }
                let query = req.uri().query().map(str::to_string);
                let params = if get {
                    params::from_query(query.as_deref(), self.limits, None)?
                } else {
                    let mut params = params::from_body(req.body(), self.limits)?;
                    // The response format of a POST comes from `?f=` or the Accept header.
                    params.format = params::format_of_query(query.as_deref())?;
                    params
                };
                let ctx = PageContext {
                    format: response_format(&req, params.format),
                    base,
                    path: "/search".into(),
                    query,
                    method: if get { Method::GET } else { Method::POST },
                };
                self.page(snap, params, ctx).await
            }
            (["search"], false) => allow("GET, POST"),
            ([] | ["conformance" | "api" | "api.html" | "collections" | "queryables"], false)
            | (["collections", _] | ["collections", _, "items" | "queryables"], false)
            | (["collections", _, "items", _], false) => allow("GET"),
            _ => Err(ApiError::not_found(format!("no resource at {path}"))),
        }
    }

    /// The landing page for a browser: what the catalog holds, its coverage map, and the
    /// links of the JSON landing page.
    async fn landing_html(&self, base: &str, snap: &Snapshot) -> Reply {
        let stats = snap.warehouse.stats().await?;
        let title = format!("earthcatalog: {}", self.options.catalog);
        let (svg, summary) = crate::query::coverage_svg(
            &stats,
            &crate::query::MapOptions {
                year: None,
                title: title.clone(),
            },
        );
        let e = |t: &str| escape_markup(t);
        let mut html = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\
             <style>body{{font-family:sans-serif;margin:1.5em;max-width:1440px}}\
             svg{{width:100%;height:auto}}td,th{{padding:0 1em 0 0;text-align:left}}</style>\
             </head><body>\n<h1>{}</h1>\n<p>A STAC API over {} rows in {} cells (snapshot \
             {}). JSON clients get the STAC landing page at this address; \
             <a href=\"{base}/api.html\">API documentation</a>, \
             <a href=\"{base}/search\">search</a>, \
             <a href=\"{base}/collections\">collections</a>.</p>\n",
            e(&title),
            e(&title),
            summary.rows + summary.rows_not_drawn,
            summary.cells,
            snap.snapshot_id()
                .map_or_else(|| "none".to_string(), |s| s.to_string()),
        );
        html.push_str(&svg);
        html.push_str("<h2>Collections</h2>\n<table><tr><th>id</th><th>files</th></tr>\n");
        for c in &snap.collections {
            let href = format!("{base}/collections/{}", encode_segment(&c.id));
            html.push_str(&format!(
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td></tr>\n",
                e(&href),
                e(&c.id),
                c.files
            ));
        }
        html.push_str("</table>\n</body></html>\n");
        let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", html.into());
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        Ok(r)
    }

    fn landing(&self, base: &str, snap: &Snapshot) -> Json {
        let mut links = vec![
            json!({"rel": "self", "type": JSON, "href": format!("{base}/")}),
            json!({"rel": "root", "type": JSON, "href": format!("{base}/")}),
            json!({"rel": "conformance", "type": JSON, "href": format!("{base}/conformance")}),
            json!({"rel": "data", "type": JSON, "href": format!("{base}/collections")}),
            json!({"rel": "search", "type": GEOJSON, "href": format!("{base}/search"), "method": "GET"}),
            json!({"rel": "search", "type": GEOJSON, "href": format!("{base}/search"), "method": "POST"}),
            json!({"rel": "service-desc", "type": OPENAPI, "href": format!("{base}/api")}),
            json!({"rel": "service-doc", "type": "text/html", "href": format!("{base}/api.html")}),
            json!({"rel": REL_QUERYABLES, "type": "application/schema+json", "href": format!("{base}/queryables")}),
        ];
        for c in &snap.collections {
            links.push(json!({"rel": "child", "type": JSON, "title": c.id,
                "href": format!("{base}/collections/{}", encode_segment(&c.id))}));
        }
        json!({
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "earthcatalog",
            "title": "earthcatalog",
            "description": format!(
                "STAC API over the earthcatalog warehouse of {} (snapshot {})",
                self.options.catalog,
                snap.snapshot_id().map_or_else(|| "none".to_string(), |s| s.to_string())
            ),
            "conformsTo": CONFORMANCE,
            "links": links,
        })
    }

    fn collections(&self, base: &str, snap: &Snapshot) -> Json {
        json!({
            "collections": snap.collections.iter().map(|c| collection_json(base, c)).collect::<Vec<_>>(),
            "links": [
                {"rel": "self", "type": JSON, "href": format!("{base}/collections")},
                {"rel": "root", "type": JSON, "href": format!("{base}/")},
                {"rel": "parent", "type": JSON, "href": format!("{base}/")},
            ],
        })
    }

    /// The warehouse a token's snapshot reads.
    async fn source(
        &self,
        snap: Arc<Snapshot>,
        pinned: Option<i64>,
    ) -> std::result::Result<Source, ApiError> {
        let Some(id) = pinned.filter(|id| Some(*id) != snap.snapshot_id()) else {
            return Ok(Source::Current(snap));
        };
        if let Some((_, used, wh)) = lock(&self.pinned).iter_mut().find(|(s, ..)| *s == id) {
            *used = Instant::now();
            return Ok(Source::Pinned(Arc::clone(wh)));
        }
        let mut wh = snap.warehouse.at_snapshot(id).map_err(|_| {
            ApiError::gone(format!(
                "token: snapshot {id} this search was paging through is no longer in the \
                 catalog's history; restart the search without a token"
            ))
        })?;
        wh.cache_files().await?;
        let wh = Arc::new(wh);
        let mut pinned = lock(&self.pinned);
        if pinned.len() >= PINNED_SNAPSHOTS
            && let Some(oldest) = pinned
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, used, _))| *used)
                .map(|(i, _)| i)
        {
            pinned.swap_remove(oldest);
        }
        pinned.push((id, Instant::now(), Arc::clone(&wh)));
        Ok(Source::Pinned(wh))
    }

    /// Buckets a search reads at once: [`crate::query::READ_CONCURRENCY`] while the requests
    /// being answered leave cores idle, 1 once they do not (then read-ahead only adds work
    /// that is thrown away when no next page is asked for). Measured on point searches at 8
    /// clients on 2 cores: 9 % less CPU per request with 1 than with 4.
    fn read_concurrency(&self) -> usize {
        let busy = self.outstanding.load(Ordering::Relaxed);
        if busy > self.cores {
            1
        } else {
            crate::query::READ_CONCURRENCY
        }
    }

    /// One page of a search.
    async fn page(&self, snap: Arc<Snapshot>, params: SearchParams, ctx: PageContext) -> Reply {
        let fields = &params.request.fields;
        if ctx.format == Format::Parquet
            && fields.exclude.iter().any(|p| p == "id")
            && !fields.include.iter().any(|p| p == "id")
        {
            return Err(Error::invalid_argument(
                "fields",
                "a GeoParquet page always carries `id`: do not exclude it",
            )
            .into());
        }
        let token = match &params.token {
            Some(t) => Some(Token::decode(t, params.fingerprint)?),
            None => None,
        };
        let snapshot_id = token.map_or_else(|| snap.snapshot_id(), |t| t.s);
        let offset = token.map_or(0, |t| t.o);
        let resume = Token::new(snapshot_id, params.fingerprint, offset);
        let cached = lock(&self.pages).take(&resume, Instant::now());
        let (mut stream, held): (Pin<Box<Suspended>>, _) = match cached {
            Some(paged) => {
                self.pages_resumed.fetch_add(1, Ordering::Relaxed);
                paged
            }
            None => {
                if offset > 0 {
                    self.pages_recomputed.fetch_add(1, Ordering::Relaxed);
                }
                let source = self.source(snap, snapshot_id).await?;
                let request = SearchRequest {
                    json_text_members: true,
                    read_concurrency: Some(self.read_concurrency()),
                    decoded_files: self.decoded.clone(),
                    default_collection: Some(self.options.default_collection.clone()),
                    ..params.request.clone()
                };
                let (found, stats) = source.warehouse().search_found(&request).await?;
                let mut s = Box::pin(found.peekable());
                // A cache miss: skip what earlier pages returned (the order is deterministic).
                let mut skipped = 0u64;
                while skipped < offset {
                    match s.next().await {
                        Some(item) => {
                            item?;
                            skipped += 1;
                        }
                        None => break,
                    }
                }
                (s, stats)
            }
        };
        // GeoJSON items are written into the body as they arrive (memory: the body, not the
        // parsed items); GeoParquet needs the page's items together.
        let decorate = params.request.fields.is_empty();
        let mut sink = match ctx.format {
            Format::GeoJson => Sink::GeoJson(GeoJsonPage::start()),
            Format::Parquet => Sink::Parquet(Vec::with_capacity(params.limit.min(1024))),
        };
        let mut n = 0usize;
        while n < params.limit {
            match stream.next().await {
                Some(item) => {
                    let item = item?;
                    match &mut sink {
                        Sink::GeoJson(page) => {
                            let relink = |stored, id: Option<&str>, c: Option<&str>| {
                                server_links(stored, id, c, &ctx.base)
                            };
                            page.push(item, decorate.then_some(&relink as Relink<'_>));
                        }
                        Sink::Parquet(items) => items.push(item.into_json()),
                    }
                    n += 1;
                }
                None => break,
            }
        }
        let more = stream.as_mut().peek().await.is_some();
        let returned = offset + n as u64;
        let next = more.then(|| Token::new(snapshot_id, params.fingerprint, returned));
        if let Some(t) = &next {
            lock(&self.pages).put(t, (stream, held), Instant::now());
        }
        let matched = (!more).then_some(returned);
        // The page before: the same number of items back (the first page when fewer).
        let prev = (offset > 0).then(|| {
            Token::new(
                snapshot_id,
                params.fingerprint,
                offset.saturating_sub(params.limit as u64),
            )
        });
        match sink {
            Sink::Parquet(items) => self.parquet_page(&ctx, items, next).await,
            Sink::GeoJson(page) => page.finish(&ctx, next, prev, matched),
        }
    }

    async fn parquet_page(
        &self,
        ctx: &PageContext,
        items: Vec<Json>,
        next: Option<Token>,
    ) -> Reply {
        let snap = self.snapshot();
        let body =
            tokio::task::spawn_blocking(move || super::parquet::encode(&snap.warehouse, &items))
                .await
                .map_err(|e| Error::task("encoding GeoParquet", e))??;
        let mut r = respond(StatusCode::OK, PARQUET, body.into());
        if let Some(t) = next {
            let header_value = if ctx.method == Method::GET {
                format!("<{}>; rel=\"next\"", next_href(ctx, &t))
            } else {
                t.encode()
            };
            let name = if ctx.method == Method::GET {
                header::LINK
            } else {
                header::HeaderName::from_static("next-token")
            };
            if let Ok(v) = HeaderValue::from_str(&header_value) {
                r.headers_mut().insert(name, v);
            }
        }
        Ok(r)
    }

    async fn item(&self, base: &str, snap: Arc<Snapshot>, cid: &str, id: &str) -> Reply {
        let not_found = || ApiError::not_found(format!("item {id:?} is not in collection {cid:?}"));
        let located = match &snap.locator {
            // A locator rewritten since this snapshot was loaded cannot be read at the
            // offsets of its old footer: scan instead until the reload picks the new one up.
            Some(view) => match view.buckets(id).await {
                Ok(buckets) => Some(buckets),
                Err(e) => {
                    tracing::warn!(error = %e, "id locator lookup failed; scanning every file");
                    None
                }
            },
            None => None,
        };
        if let (Some(buckets), Some(files)) = (located, snap.warehouse.cached_files()) {
            // The buckets that hold the id, then only their files.
            let wanted: Vec<crate::query::FileEntry> = files
                .entries()
                .iter()
                .filter(|(e, _)| buckets.contains(&(e.file.cell.clone(), e.file.year)))
                .map(|(e, _)| e.file.clone())
                .collect();
            let default = Some(self.options.default_collection.as_str());
            let Some(item) = crate::query::read_item(&wanted, id, Some(cid), default, true).await?
            else {
                return Err(not_found());
            };
            return item_reply(item, base, id);
        }
        let request = SearchRequest::new()
            .with_ids([id])
            .with_collections([cid])
            .with_max_items(1);
        let request = SearchRequest {
            json_text_members: true,
            decoded_files: self.decoded.clone(),
            default_collection: Some(self.options.default_collection.clone()),
            ..request
        };
        let mut items = snap.warehouse.search(&request).await?;
        let Some(item) = items.next().await else {
            return Err(not_found());
        };
        item_reply(item?, base, id)
    }
}

/// One item as a GeoJSON response, with the server's links.
fn item_reply(mut item: Json, base: &str, id: &str) -> Reply {
    decorate_item(&mut item, base);
    let mut body = Vec::new();
    crate::query::write_item(&mut body, &item).map_err(|e| Error::Parse {
        location: format!("item {id}"),
        reason: e.to_string(),
    })?;
    Ok(respond(StatusCode::OK, GEOJSON, body.into()))
}

/// Decrements the outstanding-request count when dropped.
struct Outstanding<'a>(&'a AtomicUsize);

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the client asks for HTML (a browser's `Accept: text/html,…`), not JSON.
fn wants_html(req: &Request<Bytes>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn response_format(req: &Request<Bytes>, asked: Option<Format>) -> Format {
    asked.unwrap_or_else(|| {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .unwrap_or("");
        if accept.contains(PARQUET) {
            Format::Parquet
        } else {
            Format::GeoJson
        }
    })
}

fn known_collection<'a>(
    snap: &'a Snapshot,
    cid: &str,
) -> std::result::Result<&'a CollectionSummary, ApiError> {
    snap.collection(cid)
        .ok_or_else(|| ApiError::not_found(format!("collection {cid:?} does not exist")))
}

fn rfc3339(micros: Option<i64>) -> Json {
    micros
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map_or(Json::Null, |t| {
            Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
}

fn collection_json(base: &str, c: &CollectionSummary) -> Json {
    let href = format!("{base}/collections/{}", encode_segment(&c.id));
    json!({
        "type": "Collection",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": c.id,
        "title": c.id,
        "description": format!("Items of collection {} in this earthcatalog warehouse ({} files).", c.id, c.files),
        "license": "various",
        "extent": {
            "spatial": {"bbox": [c.bbox]},
            "temporal": {"interval": [[rfc3339(c.start), rfc3339(c.end)]]},
        },
        "links": [
            {"rel": "self", "type": JSON, "href": href},
            {"rel": "root", "type": JSON, "href": format!("{base}/")},
            {"rel": "parent", "type": JSON, "href": format!("{base}/")},
            {"rel": "items", "type": GEOJSON, "href": format!("{href}/items")},
            {"rel": REL_QUERYABLES, "type": "application/schema+json", "href": format!("{href}/queryables")},
        ],
    })
}

/// Columns that are not item properties a filter can name.
const NOT_QUERYABLE: [&str; 8] = [
    "grid_partition",
    "assets",
    "links",
    "bbox",
    "stac_extensions",
    "type",
    "stac_version",
    crate::schema::OVERFLOW_COLUMN,
];

/// JSON Schema of the filterable properties, from the table's current schema (evolved columns
/// included).
fn queryables(snap: &Snapshot, id: &str) -> Json {
    let mut props = serde_json::Map::new();
    props.insert("id".into(), json!({"title": "Item id", "type": "string"}));
    props.insert(
        "collection".into(),
        json!({"title": "Collection id", "type": "string"}),
    );
    props.insert(
        "geometry".into(),
        // Inline, not a `$ref` to geojson.org: clients (STAC Browser) resolve references,
        // and a server may be used where that host cannot be reached.
        json!({
            "title": "Footprint",
            "description": "A GeoJSON geometry (RFC 7946)",
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": [
                "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                "MultiPolygon", "GeometryCollection"
            ]}},
        }),
    );
    props.insert(
        "datetime".into(),
        json!({"title": "Acquisition time", "type": "string", "format": "date-time"}),
    );
    if let Some(table) = snap.warehouse.table() {
        for f in table.metadata().current_schema().as_struct().fields() {
            let name = f.name.as_str();
            if NOT_QUERYABLE.contains(&name) || props.contains_key(name) {
                continue;
            }
            let ty = f.field_type.to_string();
            let schema = match ty.as_str() {
                "long" | "int" => json!({"type": "integer"}),
                "double" | "float" => json!({"type": "number"}),
                "boolean" => json!({"type": "boolean"}),
                t if t.starts_with("timestamp") => json!({"type": "string", "format": "date-time"}),
                "string" => json!({"type": "string"}),
                _ => continue,
            };
            props.insert(name.to_string(), schema);
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": id,
        "type": "object",
        "title": "Queryables",
        "properties": props,
        "additionalProperties": true,
    })
}

/// Replace the links `self`, `root`, `parent` and `collection` of an item with this server's.
fn decorate_item(item: &mut Json, base: &str) {
    relink_item(item, &|stored, id, c| server_links(stored, id, c, base));
}

/// An item's links as this server gives them: the stored ones but `self`, `root`, `parent` and
/// `collection`, then the server's.
fn server_links(
    stored: Vec<Json>,
    id: Option<&str>,
    collection: Option<&str>,
    base: &str,
) -> Vec<Json> {
    let mut links: Vec<Json> = stored
        .into_iter()
        .filter(|l| {
            !matches!(
                l.get("rel").and_then(Json::as_str),
                Some("self" | "root" | "parent" | "collection")
            )
        })
        .collect();
    let root = format!("{base}/");
    match (collection, id) {
        (Some(c), Some(i)) => {
            let chref = format!("{base}/collections/{}", encode_segment(c));
            links.push(json!({"rel": "self", "type": GEOJSON, "href": format!("{chref}/items/{}", encode_segment(i))}));
            links.push(json!({"rel": "parent", "type": JSON, "href": chref}));
            links.push(json!({"rel": "collection", "type": JSON, "href": chref}));
        }
        _ => links.push(json!({"rel": "parent", "type": JSON, "href": root})),
    }
    links.push(json!({"rel": "root", "type": JSON, "href": root}));
    links
}

/// The href of the next page of a GET request.
fn next_href(ctx: &PageContext, token: &Token) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(ctx.query.as_deref().unwrap_or("").as_bytes()) {
        if k != "token" {
            ser.append_pair(&k, &v);
        }
    }
    ser.append_pair("token", &token.encode());
    format!("{}{}?{}", ctx.base, ctx.path, ser.finish())
}

/// Where a page's items go.
enum Sink {
    GeoJson(GeoJsonPage),
    Parquet(Vec<Json>),
}

/// A FeatureCollection written item by item.
struct GeoJsonPage {
    out: Vec<u8>,
    n: usize,
}

impl GeoJsonPage {
    fn start() -> Self {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(b"{\"type\":\"FeatureCollection\",\"features\":[");
        Self { out, n: 0 }
    }

    fn push(&mut self, item: Found, relink: Option<Relink<'_>>) {
        if self.n > 0 {
            self.out.push(b',');
        }
        item.write_json(&mut self.out, relink);
        self.n += 1;
    }

    fn finish(
        mut self,
        ctx: &PageContext,
        next: Option<Token>,
        prev: Option<Token>,
        matched: Option<u64>,
    ) -> Reply {
        let self_href = match &ctx.query {
            Some(q) if ctx.method == Method::GET && !q.is_empty() => {
                format!("{}{}?{q}", ctx.base, ctx.path)
            }
            _ => format!("{}{}", ctx.base, ctx.path),
        };
        let mut links = vec![
            json!({"rel": "self", "type": GEOJSON, "href": self_href}),
            json!({"rel": "root", "type": JSON, "href": format!("{}/", ctx.base)}),
        ];
        let page_link = |rel: &str, t: &Token| {
            if ctx.method == Method::GET {
                json!({"rel": rel, "type": GEOJSON, "method": "GET", "href": next_href(ctx, t)})
            } else {
                json!({"rel": rel, "type": GEOJSON, "method": "POST",
                       "href": format!("{}{}", ctx.base, ctx.path),
                       "body": {"token": t.encode()}, "merge": true})
            }
        };
        if let Some(t) = &next {
            links.push(page_link("next", t));
        }
        if let Some(t) = &prev {
            links.push(page_link("prev", t));
        }
        self.out.extend_from_slice(b"],\"links\":");
        self.out
            .extend_from_slice(Json::Array(links).to_string().as_bytes());
        if let Some(m) = matched {
            self.out
                .extend_from_slice(format!(",\"numberMatched\":{m}").as_bytes());
        }
        self.out
            .extend_from_slice(format!(",\"numberReturned\":{}}}", self.n).as_bytes());
        // The buffer grew by doubling: up to twice the page (a 1,000-item page is ~2.3 MB) would
        // stay allocated until the response is sent.
        self.out.shrink_to_fit();
        Ok(respond(StatusCode::OK, GEOJSON, self.out.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        for s in ["a b/c%", "LC08_L1TP_2020", "é"] {
            assert_eq!(decode_segment(&encode_segment(s)).as_deref(), Some(s));
        }
        assert_eq!(decode_segment("%ff"), None);
        assert_eq!(decode_segment("%zz").as_deref(), Some("%zz"));
    }

    #[test]
    fn item_links_point_at_the_server() {
        let mut item = json!({"id": "a b", "collection": "c", "links":
            "[{\"rel\":\"self\",\"href\":\"s3://x\"},{\"rel\":\"license\",\"href\":\"l\"}]"});
        decorate_item(&mut item, "http://h");
        let links = item["links"].as_array().unwrap();
        let rels: Vec<&str> = links.iter().map(|l| l["rel"].as_str().unwrap()).collect();
        assert_eq!(rels, ["license", "self", "parent", "collection", "root"]);
        assert_eq!(links[1]["href"], "http://h/collections/c/items/a%20b");
    }
}
