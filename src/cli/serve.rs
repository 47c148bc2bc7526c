//! `earthcatalog serve`: a read-only STAC API over the warehouse.

use std::sync::Arc;
use std::time::Duration;

use crate::server::{Api, ServerOptions, routes};
use clap::Args;

use super::{EXIT_OK, UsageError};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    target: super::ReadTarget,
    /// Address to listen on (port 0: any free port; the address is logged).
    #[arg(long, default_value = "127.0.0.1:7822")]
    bind: String,
    /// Public base URL used in links (default: http://<Host header>).
    #[arg(long)]
    public_url: Option<String>,
    /// Items per page when a request gives no limit.
    #[arg(long, default_value_t = 10)]
    default_limit: usize,
    /// Largest page; larger limits are clamped to it.
    #[arg(long, default_value_t = 10_000)]
    max_limit: usize,
    /// Largest request body (POST /search), in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Most vertices accepted in an intersects geometry.
    #[arg(long, default_value_t = 10_000)]
    max_vertices: usize,
    /// With sortby, refuse (400) a search matching more items than this: every match is held
    /// in memory to be sorted.
    #[arg(long, default_value_t = 10_000)]
    max_sort_items: usize,
    /// Per-request time limit in seconds (then 504).
    #[arg(long, default_value_t = 30.0)]
    timeout_secs: f64,
    /// Requests handled at once (more wait in the queue: a 2-core machine gains nothing from
    /// running more searches at once, and each holds its page in memory).
    #[arg(long, default_value_t = 16)]
    max_in_flight: usize,
    /// Requests waiting for a slot before new ones get 503 + Retry-After.
    #[arg(long, default_value_t = 512)]
    max_queued: usize,
    /// Result streams kept suspended between pages (oldest dropped first; a page whose stream
    /// was dropped is recomputed, skipping what earlier pages returned). Keep it above the
    /// number of clients paging at once. A walk abandoned before its end stays until it is
    /// the oldest, 5 minutes old, or pushed out by --page-cache-mb.
    #[arg(long, default_value_t = 96)]
    page_cache: usize,
    /// Memory, in MiB, the suspended result streams may hold together (oldest dropped first):
    /// the decoded rows a stream read ahead of its page and the ids it returned (~0.6 MB
    /// after 10k items). 32 kept every page of 64 clients paging resumed in the bench.
    #[arg(long, default_value_t = 32)]
    page_cache_mb: u64,
    /// Memory, in MiB, for small data files kept decoded between searches (0: none). Files
    /// never change, so repeated searches over the same places skip fetching and decoding
    /// them; the least useful are dropped first.
    #[arg(long, default_value_t = 64)]
    file_cache_mb: u64,
    /// The collection that items stored without one are served under: it is listed with the
    /// others, `collections=` and `/collections/{id}/items` find them by it, and each such item
    /// carries it (with its `self`, `parent` and `collection` links).
    #[arg(long, default_value = crate::server::DEFAULT_COLLECTION)]
    default_collection: String,
    /// Check the catalog for a new snapshot every N seconds (0: never).
    #[arg(long, default_value_t = 30.0)]
    reload_secs: f64,
    /// Allowed CORS origin (repeat; `*` for any, `none` for no CORS headers).
    #[arg(long, default_values_t = vec!["*".to_string()])]
    cors_origin: Vec<String>,
}

fn seconds(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| UsageError(format!("{flag}: {v} is not a number of seconds")).into())
}

pub async fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let mut options = ServerOptions::new(args.target.catalog.clone());
    options.warehouse = args.target.warehouse.clone();
    options.public_url = args.public_url.clone();
    options.default_limit = args.default_limit;
    options.max_limit = args.max_limit;
    options.max_body_bytes = args.max_body_bytes;
    options.max_vertices = args.max_vertices;
    options.max_sort_items = args.max_sort_items;
    options.request_timeout = seconds(args.timeout_secs, "--timeout-secs")?;
    options.max_in_flight = args.max_in_flight;
    options.max_queued = args.max_queued;
    options.page_cache = args.page_cache;
    options.page_cache_bytes = args.page_cache_mb.saturating_mul(1 << 20);
    options.file_cache_bytes = args.file_cache_mb.saturating_mul(1 << 20);
    options.default_collection = args.default_collection.clone();
    let reload = seconds(args.reload_secs, "--reload-secs")?;
    options.reload_every = (!reload.is_zero()).then_some(reload);
    options.cors_origins = args
        .cors_origin
        .iter()
        .filter(|o| o.as_str() != "none")
        .cloned()
        .collect();
    options.validate()?;
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|e| UsageError(format!("--bind {}: {e}", args.bind)))?;
    let api = Arc::new(Api::open(options).await?);
    let addr = listener.local_addr()?;
    let snap = api.snapshot();
    eprintln!(
        "earthcatalog serving {} (snapshot {}, {} collections) on http://{addr}",
        args.target.catalog,
        snap.snapshot_id()
            .map_or_else(|| "none".to_string(), |s| s.to_string()),
        snap.collections.len()
    );
    drop(snap);
    routes::serve(api, listener, routes::shutdown_signal()).await?;
    eprintln!("earthcatalog serve stopped (requests in flight finished)");
    Ok(EXIT_OK)
}
