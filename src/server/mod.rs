//! A read-only STAC API server over the warehouse (`earthcatalog serve`).
//!
//! ```text
//! HTTP ─▶ routes (axum: body limit, CORS, gzip, panic → 500 JSON, access log)
//!      ─▶ Api::handle (framework-free: http::Request<Bytes> → http::Response<Bytes>)
//!           concurrency permit (bounded queue, else 503 + Retry-After) ─▶ timeout (504)
//!           ─▶ params (query string / JSON body → SearchRequest, 400 naming the parameter)
//!           ─▶ Snapshot (Arc, swapped by the reloader) ─▶ Warehouse::search
//!           ─▶ pages (token: snapshot + query fingerprint + offset; suspended streams cached)
//!           ─▶ GeoJSON (items as stored, server links) or GeoParquet
//! reloader: every --reload-secs HEAD catalog.db; changed ETag / mtime+size ─▶ open + cache the
//!           new snapshot in the background ─▶ swap (requests in flight keep their Arc)
//! ```
//!
//! Design decisions:
//! * **Snapshots are immutable values.** A [`Snapshot`] is an opened [`Warehouse`] with its
//!   live file list in memory ([`Warehouse::cache_files`]: a point search prunes in memory, no
//!   manifest read) and the collections summarised from the manifests. The server swaps the
//!   `Arc` atomically; a failed reload logs and keeps serving the old one.
//! * **Paging is exact across snapshot changes.** A `next` token pins the snapshot it was
//!   issued for and carries a fingerprint of the query and the number of items already
//!   returned. The search stream is deterministic for a (snapshot, query), so page k is
//!   `skip(offset).take(limit)`; a small LRU of suspended streams keyed by token makes paging
//!   to the end linear, and a miss falls back to skipping (correct, slower). A pinned snapshot
//!   that left the table's history, or whose files were deleted, answers 410 Gone.
//! * **Items as stored**, rehydrated like `earthcatalog search`, except the links `self`,
//!   `root`, `parent` and `collection`, which point at this server (STAC API requires them;
//!   the stored ones with those relations are replaced, every other link is kept).
//! * **Never 500 for bad input**: every parameter is validated into a [`SearchRequest`] before
//!   the warehouse is touched; errors are `400 {"code", "description"}` naming the parameter.

mod api;
mod collections;
mod openapi;
mod paging;
mod params;
mod parquet;
pub mod routes;
mod state;

use std::time::Duration;

pub use api::Api;
pub use state::{LocatorView, Snapshot, SourceVersion};

use crate::query::Warehouse;

#[cfg(doc)]
use crate::query::SearchRequest;

/// Settings of the server (see `earthcatalog serve --help`).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Catalog database (path or URL).
    pub catalog: String,
    /// Warehouse root (default: from the table location).
    pub warehouse: Option<String>,
    /// Public base URL of the API (default: `http://<Host header>`).
    pub public_url: Option<String>,
    /// Items per page when the request gives no `limit`.
    pub default_limit: usize,
    /// Largest page; a larger `limit` is clamped to it (STAC API).
    pub max_limit: usize,
    /// Largest request body in bytes (POST /search).
    pub max_body_bytes: usize,
    /// Most vertices accepted in an `intersects` geometry.
    pub max_vertices: usize,
    /// A request taking longer is answered 504.
    pub request_timeout: Duration,
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// Requests waiting for a slot; beyond that, 503 with `Retry-After`.
    pub max_queued: usize,
    /// How often the catalog is checked for a new snapshot (`None`: never).
    pub reload_every: Option<Duration>,
    /// CORS origins allowed (`*` for any; empty: no CORS headers).
    pub cors_origins: Vec<String>,
    /// With `sortby`, a search matching more items is refused (400): every match is held in
    /// memory to sort. Also bounds the sorted items the page cache keeps (twice this).
    pub max_sort_items: usize,
    /// Suspended result streams kept for paging.
    pub page_cache: usize,
    /// How long a suspended stream is kept.
    pub page_cache_ttl: Duration,
    /// Bytes the suspended streams may hold together (decoded rows read ahead, ids returned);
    /// beyond it the oldest are dropped.
    pub page_cache_bytes: u64,
    /// Memory for decoded small data files kept between searches, in bytes (0: none).
    pub file_cache_bytes: u64,
    /// The collection items stored without one are served under (listed, searchable, and
    /// each such item carries it and the links it implies).
    pub default_collection: String,
}

/// [`ServerOptions::default_collection`] unless set.
pub const DEFAULT_COLLECTION: &str = "no-collection";

impl ServerOptions {
    /// Defaults for the catalog at `catalog`.
    pub fn new(catalog: impl Into<String>) -> Self {
        Self {
            catalog: catalog.into(),
            warehouse: None,
            public_url: None,
            default_limit: 10,
            max_limit: 10_000,
            max_body_bytes: 1 << 20,
            max_vertices: 10_000,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 16,
            max_queued: 512,
            reload_every: Some(Duration::from_secs(30)),
            cors_origins: vec!["*".into()],
            max_sort_items: 10_000,
            page_cache: 96,
            page_cache_ttl: Duration::from_secs(300),
            page_cache_bytes: 32 << 20,
            file_cache_bytes: 64 << 20,
            default_collection: DEFAULT_COLLECTION.to_string(),
        }
    }

    /// Check the settings.
    pub fn validate(&self) -> crate::Result<()> {
        let positive = |v: usize, name: &str| {
            if v == 0 {
                Err(crate::Error::invalid_argument(name, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive(self.default_limit, "--default-limit")?;
        positive(self.max_limit, "--max-limit")?;
        positive(self.max_body_bytes, "--max-body-bytes")?;
        positive(self.max_vertices, "--max-vertices")?;
        positive(self.max_sort_items, "--max-sort-items")?;
        if self.default_collection.trim().is_empty() {
            return Err(crate::Error::invalid_argument(
                "--default-collection",
                "must not be empty",
            ));
        }
        for origin in &self.cors_origins {
            let host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            let ok = origin == "*"
                || host.is_some_and(|h| {
                    !h.is_empty()
                        && !h.contains(['/', ' ', '\t'])
                        && http::HeaderValue::from_str(origin).is_ok()
                });
            if !ok {
                return Err(crate::Error::invalid_argument(
                    "--cors-origin",
                    format!("{origin:?} is not an origin (scheme://host[:port], `*` or `none`)"),
                ));
            }
        }
        positive(self.max_in_flight, "--max-in-flight")?;
        if self.default_limit > self.max_limit {
            return Err(crate::Error::invalid_argument(
                "--default-limit",
                format!(
                    "{} is larger than --max-limit {}",
                    self.default_limit, self.max_limit
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(crate::Error::invalid_argument(
                "--timeout-secs",
                "must be more than 0",
            ));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(crate::Error::invalid_argument(
                "--public-url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        Ok(())
    }
}

/// Open the warehouse of `options` for serving (read-only, file list cached).
async fn open_warehouse(options: &ServerOptions) -> crate::Result<Warehouse> {
    let mut wh = Warehouse::open(&options.catalog, options.warehouse.as_deref()).await?;
    wh.cache_files().await?;
    Ok(wh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_checked() {
        let mut o = ServerOptions::new("c.db");
        for good in ["*", "https://example.org", "http://localhost:8080"] {
            o.cors_origins = vec![good.into()];
            assert!(o.validate().is_ok(), "{good}");
        }
        for bad in [
            "example.org",
            "https://",
            "https://a.org/path",
            "ftp://a.org",
            "https://a b",
        ] {
            o.cors_origins = vec![bad.into()];
            let e = o.validate().unwrap_err().to_string();
            assert!(e.starts_with("--cors-origin"), "{bad}: {e}");
        }
    }
}
