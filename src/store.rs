//! Locations → `object_store` handles.
//!
//! Every byte earthcatalog reads or writes goes through [`object_store`]. A location is a URL:
//!
//! | form | store |
//! |---|---|
//! | `/abs/path`, `rel/path`, `file:///abs/path` | [`LocalFileSystem`] rooted at `/` |
//! | `s3://bucket/prefix` | [`AmazonS3`](object_store::aws::AmazonS3) for `bucket` |
//! | `memory://name/prefix` | a process-wide [`InMemory`] store per `name` (tests) |
//!
//! S3 settings come from the usual AWS environment variables (`AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `AWS_REGION`/`AWS_DEFAULT_REGION`, ...). Requests are signed with the
//! credentials of the AWS default chain (environment keys, a shared profile, web identity,
//! container credentials, the EC2 instance metadata service; see [`credentials`]). They go out
//! unsigned only when [`S3Options::with_anonymous`] (the CLI's `--anonymous`,
//! `EARTHCATALOG_S3_ANONYMOUS=1`, `AWS_SKIP_SIGNATURE=true`) asks for it, or when no credential
//! source exists at all (logged at info level). Without a region and without a custom endpoint
//! the bucket's region is looked up once. Nothing about buckets or regions is hard-coded.
//!
//! Retries of throttling, 5xx, timeouts and dropped connections happen in one place: the
//! `object_store` client of every S3 store, configured by [`S3Options`] (a bounded number of
//! retries with exponential backoff and jitter within a bounded total time). Nothing above the
//! store retries a request again.

pub mod credentials;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};

use crate::error::{Error, Result};

/// A resolved location: a store plus a key prefix inside it, and the canonical URL.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location").field("url", &self.url).finish()
    }
}

impl Location {
    /// Resolve a location string (see the module docs for the accepted forms).
    pub fn parse(location: &str) -> Result<Self> {
        let (scheme, rest) = split_scheme(location);
        match scheme {
            Some("s3") | Some("s3a") => {
                let (bucket, prefix) = split_authority(rest);
                if bucket.is_empty() {
                    return Err(invalid(location, "missing bucket name"));
                }
                let store = s3_store(bucket)?;
                let prefix = Path::parse(prefix.trim_matches('/'))
                    .map_err(|e| invalid(location, &e.to_string()))?;
                Ok(Self::with_store(store, prefix, format!("s3://{bucket}")))
            }
            Some("memory") => {
                let (name, prefix) = split_authority(rest);
                let store = memory_store(name);
                let prefix = Path::parse(prefix.trim_matches('/'))
                    .map_err(|e| invalid(location, &e.to_string()))?;
                Ok(Self::with_store(store, prefix, format!("memory://{name}")))
            }
            Some("file") => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.strip_prefix("localhost").unwrap_or(path);
                Self::local(path, location)
            }
            Some(other) if other.len() > 1 => Err(invalid(
                location,
                &format!("unsupported scheme {other:?} (use a path, file://, s3:// or memory://)"),
            )),
            _ => Self::local(location, location),
        }
    }

    fn local(path: &str, original: &str) -> Result<Self> {
        if path.is_empty() {
            return Err(invalid(original, "empty path"));
        }
        let abs = lexically_normal(&std::path::absolute(path).map_err(|e| Error::io(path, e))?);
        let prefix =
            Path::from_absolute_path(&abs).map_err(|e| invalid(original, &e.to_string()))?;
        Ok(Self::with_store(
            local_store(),
            prefix,
            "file://".to_string(),
        ))
    }

    fn with_store(store: Arc<dyn ObjectStore>, prefix: Path, base: String) -> Self {
        let url = if prefix.as_ref().is_empty() {
            base
        } else if base == "file://" {
            format!("file:///{}", prefix.as_ref())
        } else {
            format!("{base}/{}", prefix.as_ref())
        };
        Self { store, prefix, url }
    }

    /// The object store behind this location.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix inside the store (no leading or trailing slash).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The canonical URL (`file:///…`, `s3://bucket/…`, `memory://name/…`), no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this location is on the local file system.
    pub fn is_local(&self) -> bool {
        self.url.starts_with("file://")
    }

    /// The key of `relative` (a `/`-separated path) below this location.
    pub fn key(&self, relative: &str) -> Path {
        let mut parts: Vec<&str> = Vec::new();
        if !self.prefix.as_ref().is_empty() {
            parts.push(self.prefix.as_ref());
        }
        let rel = relative.trim_matches('/');
        if !rel.is_empty() {
            parts.push(rel);
        }
        Path::from(parts.join("/"))
    }

    /// The full URL of `relative` below this location.
    pub fn url_of(&self, relative: &str) -> String {
        let rel = relative.trim_matches('/');
        if rel.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{rel}", self.url)
        }
    }

    /// A location for a sub-path.
    pub fn join(&self, relative: &str) -> Self {
        Self {
            store: self.store.clone(),
            prefix: self.key(relative),
            url: self.url_of(relative),
        }
    }

    /// The parent location and the last path segment (e.g. catalog dir + `catalog.db`).
    pub fn split_last(&self) -> Option<(Location, String)> {
        let parts: Vec<&str> = self.prefix.as_ref().split('/').collect();
        let (last, head) = parts.split_last()?;
        if last.is_empty() {
            return None;
        }
        let head = head.join("/");
        let url = self.url.strip_suffix(&format!("/{last}"))?.to_string();
        Some((
            Location {
                store: self.store.clone(),
                prefix: Path::from(head),
                url,
            },
            (*last).to_string(),
        ))
    }

    /// Read the whole object at this location's own key.
    pub async fn get_bytes(&self) -> Result<bytes::Bytes> {
        let res = self
            .store
            .get(&self.prefix)
            .await
            .map_err(|e| Error::store(&self.url, e))?;
        res.bytes().await.map_err(|e| Error::store(&self.url, e))
    }

    /// Read the object at this location's own key whose length the caller knows (`size`, e.g.
    /// a data file's size in the catalog; 0 = unknown, read it whole): one ranged request,
    /// which on a local store is one blocking-pool round trip instead of two (open and stat,
    /// then read). A shorter object is an error naming it; a longer one reads as its first
    /// `size` bytes (a Parquet file then fails its footer check).
    pub async fn get_sized(&self, size: u64) -> Result<bytes::Bytes> {
        if size == 0 {
            return self.get_bytes().await;
        }
        let parts = self
            .store
            .get_ranges(&self.prefix, std::slice::from_ref(&(0..size)))
            .await
            .map_err(|e| Error::store(&self.url, e))?;
        parts.into_iter().next().ok_or_else(|| {
            Error::Inconsistent(format!("reading {}: the store returned no bytes", self.url))
        })
    }

    /// Read the whole object at this location's own key, `None` when it does not exist.
    pub async fn get_bytes_opt(&self) -> Result<Option<bytes::Bytes>> {
        match self.store.get(&self.prefix).await {
            Ok(res) => Ok(Some(
                res.bytes().await.map_err(|e| Error::store(&self.url, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(&self.url, e)),
        }
    }

    /// Write the object at this location's own key (overwrite allowed).
    pub async fn put_bytes(&self, data: bytes::Bytes) -> Result<()> {
        self.store
            .put(&self.prefix, PutPayload::from(data))
            .await
            .map_err(|e| Error::store(&self.url, e))?;
        Ok(())
    }
}

/// Reads a compaction merge keeps in flight ([`get_all`]). Unbounded, a bucket of 579 files
/// had as many, each a blocking-pool thread on a local warehouse: 262 threads.
pub const MERGE_READS_IN_FLIGHT: usize = 32;

/// Read the objects at `files` (URL, known size or 0: [`Location::get_sized`]), at most
/// `in_flight` at a time, in order.
pub async fn get_all<'a>(
    files: impl IntoIterator<Item = (&'a str, u64)>,
    in_flight: usize,
) -> Result<Vec<bytes::Bytes>> {
    use futures::{StreamExt, TryStreamExt};
    let files: Vec<(String, u64)> = files.into_iter().map(|(u, n)| (u.to_string(), n)).collect();
    futures::stream::iter(files)
        .map(|(url, size)| async move { Location::parse(&url)?.get_sized(size).await })
        .buffered(in_flight.max(1))
        .try_collect()
        .await
}

/// Whether `location` names a local file ([`LocalFileSystem`]): a path, a `file:` URL, or a
/// one-letter "scheme" (a drive letter), as [`Location::parse`] reads them.
pub fn is_local(location: &str) -> bool {
    match split_scheme(location).0 {
        None | Some("file") => true,
        Some(other) => other.len() == 1,
    }
}

/// Run `work` on a thread outside the tokio runtime ([`LocalThreads`]) and await its result;
/// a panic in `work` becomes [`Error::Task`] of `context`.
///
/// Why: [`LocalFileSystem`] hands every call to tokio's blocking pool when it runs inside a
/// runtime (a futex wake and a thread switch each way, per read, write and delete) and does
/// the file I/O in place when it does not. Measured with `examples/merge_bound.rs` on the
/// production-shaped warehouse of `bench/compact.sh` (9,021 reads, 1,669 writes, 9,021
/// deletes, one bucket at a time): 1.5–1.6 CPU-seconds through the runtime, 0.7 in place
/// (plain `std::fs`: 0.4). Merges of local files and their deletes run here, through the same
/// `object_store` calls (driven by `futures::executor::block_on`, which needs no runtime).
pub async fn off_runtime<T: Send + 'static>(
    context: String,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = futures::channel::oneshot::channel();
    let what = context.clone();
    LocalThreads::get()
        .run(Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|payload| Err(Error::panicked(what, payload)));
            // The receiver is gone only when the awaiting task was dropped.
            Box::new(move || drop(tx.send(out)))
        }))
        .map_err(|reason| Error::Task {
            context: context.clone(),
            reason,
        })?;
    rx.await.map_err(|_| Error::Task {
        context,
        reason: "its thread ended without a result".to_string(),
    })?
}

/// A job of [`LocalThreads`]: it does its work and returns what delivers the result, run
/// once its thread counts itself idle again (so that the caller's next job finds it idle).
type LocalJob = Box<dyn FnOnce() -> Box<dyn FnOnce() + Send> + Send>;

/// The threads of [`off_runtime`]: plain threads, started when a job finds none idle and kept
/// (as many as jobs ever ran at once: the merges in flight), so that what a merge caches per
/// thread (decoded schemas, zstd contexts) outlives one bucket. A thread per job measured no
/// gain: each bucket rebuilt those caches.
struct LocalThreads {
    jobs: std::sync::mpsc::Sender<LocalJob>,
    queue: Arc<Mutex<std::sync::mpsc::Receiver<LocalJob>>>,
    /// Threads waiting for a job, not yet claimed by a queued one.
    idle: Arc<std::sync::atomic::AtomicUsize>,
}

impl LocalThreads {
    fn get() -> &'static LocalThreads {
        static THREADS: OnceLock<LocalThreads> = OnceLock::new();
        THREADS.get_or_init(LocalThreads::new)
    }

    fn new() -> LocalThreads {
        let (jobs, queue) = std::sync::mpsc::channel();
        LocalThreads {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            idle: Arc::default(),
        }
    }

    /// Queue `job`, claiming an idle thread for it or starting one: there are always at
    /// least as many threads free or about to be as jobs queued.
    fn run(&self, job: LocalJob) -> std::result::Result<(), String> {
        use std::sync::atomic::Ordering::SeqCst;
        let claimed = (self.idle)
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !claimed {
            let (queue, idle) = (self.queue.clone(), self.idle.clone());
            std::thread::Builder::new()
                .name("earthcatalog-local".to_string())
                .spawn(move || {
                    loop {
                        // One thread waits in `recv` at a time, the others on the lock
                        // (never poisoned: nothing panics while holding it).
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = next else { return };
                        let deliver = job();
                        idle.fetch_add(1, SeqCst);
                        deliver();
                    }
                })
                .map_err(|e| format!("no thread could be started: {e}"))?;
        }
        (self.jobs.send(job)).map_err(|_| "the local threads are gone".to_string())
    }
}

/// Write `data` at `key` only if nothing exists there yet; returns `false` when it already existed.
/// Falls back to a plain put on stores without conditional puts.
pub async fn put_if_absent(
    store: &dyn ObjectStore,
    key: &Path,
    data: bytes::Bytes,
) -> Result<bool> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store
        .put_opts(key, PutPayload::from(data.clone()), opts)
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(object_store::Error::NotImplemented { .. }) => {
            store
                .put(key, PutPayload::from(data))
                .await
                .map_err(|e| Error::store(key.as_ref(), e))?;
            Ok(true)
        }
        Err(e) => Err(Error::store(key.as_ref(), e)),
    }
}

fn invalid(location: &str, reason: &str) -> Error {
    Error::InvalidLocation {
        location: location.to_string(),
        reason: reason.to_string(),
    }
}

fn split_scheme(s: &str) -> (Option<&str>, &str) {
    match s.find("://") {
        Some(i) if s[..i].chars().all(|c| c.is_ascii_alphanumeric()) => {
            (Some(&s[..i]), &s[i + 3..])
        }
        _ => match s.strip_prefix("file:") {
            Some(rest) => (Some("file"), rest),
            None => (None, s),
        },
    }
}

fn split_authority(rest: &str) -> (&str, &str) {
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    }
}

fn local_store() -> Arc<dyn ObjectStore> {
    static LOCAL: OnceLock<Arc<dyn ObjectStore>> = OnceLock::new();
    LOCAL
        .get_or_init(|| Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)))
        .clone()
}

fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static MEMORY: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let map = MEMORY.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

/// Process-wide settings of the S3 stores: whether requests are signed, and the one retry
/// layer (`object_store`'s [`RetryConfig`]).
///
/// | environment variable | meaning | default |
/// |---|---|---|
/// | `EARTHCATALOG_S3_ANONYMOUS`, `AWS_SKIP_SIGNATURE` | unsigned requests (`1`/`true`) | signed |
/// | `EARTHCATALOG_S3_MAX_RETRIES` | retries of one request | 10 |
/// | `EARTHCATALOG_S3_RETRY_TIMEOUT_SECS` | no retry starts later than this after the first try | 60 |
/// | `EARTHCATALOG_S3_BACKOFF_MS` | first backoff; doubles (with jitter) up to 15 s | 100 |
#[derive(Debug, Clone, PartialEq)]
pub struct S3Options {
    anonymous: bool,
    max_retries: usize,
    retry_timeout: Duration,
    initial_backoff: Duration,
    /// `object_store` settings given by the caller; they win over the environment.
    config: Vec<(AmazonS3ConfigKey, String)>,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            anonymous: false,
            max_retries: 10,
            retry_timeout: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            config: Vec::new(),
        }
    }
}

impl S3Options {
    /// The defaults, overridden by the environment variables in the table above; a value that
    /// does not parse is an error naming the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let bad = |name: &str, value: &str, want: &str| {
            Error::Config(format!("{name}={value:?}: expected {want}"))
        };
        let flag = |name: &str| -> Result<bool> {
            match get(name) {
                None => Ok(false),
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" | "y" => Ok(true),
                    "0" | "false" | "no" | "off" | "n" => Ok(false),
                    _ => Err(bad(name, &v, "true or false")),
                },
            }
        };
        let mut options = Self {
            anonymous: flag("EARTHCATALOG_S3_ANONYMOUS")? | flag("AWS_SKIP_SIGNATURE")?,
            ..Self::default()
        };
        if let Some(v) = get("EARTHCATALOG_S3_MAX_RETRIES") {
            options.max_retries = v
                .parse()
                .map_err(|_| bad("EARTHCATALOG_S3_MAX_RETRIES", &v, "a whole number"))?;
        }
        if let Some(v) = get("EARTHCATALOG_S3_RETRY_TIMEOUT_SECS") {
            options.retry_timeout = v
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| bad("EARTHCATALOG_S3_RETRY_TIMEOUT_SECS", &v, "seconds (>= 0)"))?;
        }
        if let Some(v) = get("EARTHCATALOG_S3_BACKOFF_MS") {
            options.initial_backoff = v
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| bad("EARTHCATALOG_S3_BACKOFF_MS", &v, "milliseconds"))?;
        }
        Ok(options)
    }

    /// One `object_store` S3 setting by its name (`region`, `endpoint`, `access_key_id`,
    /// `secret_access_key`, `session_token`, `allow_http`, `skip_signature`, ... with or
    /// without the `aws_` prefix: the keys of `AmazonS3ConfigKey`, as obstore's `S3Store`
    /// takes them), winning over the environment; `anonymous` is [`S3Options::with_anonymous`].
    /// A key it does not know is [`Error::InvalidArgument`] naming `arg` and the key.
    pub fn with_setting(mut self, arg: &str, key: &str, value: &str) -> Result<Self> {
        let lower = key.trim().to_ascii_lowercase();
        let flag = || match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(Error::invalid_argument(
                arg,
                format!("{key}={value:?}: expected true or false"),
            )),
        };
        if matches!(
            lower.as_str(),
            "anonymous" | "skip_signature" | "aws_skip_signature"
        ) {
            self.anonymous = flag()?;
            return Ok(self);
        }
        let name = if lower == "allow_http" {
            "aws_allow_http".to_string()
        } else {
            lower
        };
        let parsed: AmazonS3ConfigKey = name.parse().map_err(|_| {
            Error::invalid_argument(
                arg,
                format!(
                    "unknown S3 setting {key:?} (object_store's S3 keys, e.g. region, endpoint, \
                     access_key_id, secret_access_key, session_token, allow_http, anonymous)"
                ),
            )
        })?;
        self.config.retain(|(k, _)| *k != parsed);
        self.config.push((parsed, value.to_string()));
        Ok(self)
    }

    /// Whether the settings name a region or an endpoint (then the bucket's region is not
    /// looked up).
    fn names(&self, key: &AmazonS3ConfigKey) -> bool {
        self.config.iter().any(|(k, _)| k == key)
    }

    /// Send unsigned requests (public buckets) instead of looking for credentials.
    pub fn with_anonymous(mut self, anonymous: bool) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// Retries of one request (0: none).
    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// No retry starts later than this after a request's first try.
    pub fn with_retry_timeout(mut self, retry_timeout: Duration) -> Self {
        self.retry_timeout = retry_timeout;
        self
    }

    /// The first backoff; it doubles (with jitter) up to 15 s.
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Whether requests go out unsigned.
    pub fn anonymous(&self) -> bool {
        self.anonymous
    }

    /// The `object_store` retry configuration these options describe.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: self.initial_backoff,
                ..BackoffConfig::default()
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

static S3_OPTIONS: Mutex<Option<S3Options>> = Mutex::new(None);
static S3_STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Use `options` for every S3 store opened from now on (stores opened before are forgotten).
/// Without a call, the options come from [`S3Options::from_env`].
pub fn set_s3_options(options: S3Options) {
    *lock(&S3_OPTIONS) = Some(options);
    if let Some(stores) = S3_STORES.get() {
        lock(stores).clear();
    }
}

fn s3_options() -> Result<S3Options> {
    let mut current = lock(&S3_OPTIONS);
    if let Some(options) = current.as_ref() {
        return Ok(options.clone());
    }
    let options = S3Options::from_env()?;
    *current = Some(options.clone());
    Ok(options)
}

/// The process's credential source, resolved once (see [`credentials`]). Runs on its own thread
/// and runtime so it is safe to call from any context, async or not.
fn credential_source() -> Result<credentials::Source> {
    static SOURCE: Mutex<Option<credentials::Source>> = Mutex::new(None);
    let mut cached = lock(&SOURCE);
    if let Some(source) = cached.as_ref() {
        return Ok(source.clone());
    }
    let resolved = on_own_runtime(async {
        credentials::resolve(&|name: &str| std::env::var(name).ok()).await
    })
    .map_err(|reason| Error::Task {
        context: "resolving S3 credentials".into(),
        reason,
    })??;
    match &resolved {
        credentials::Source::None => tracing::info!(
            "no AWS credentials found (environment, profile, web identity, container, instance \
             metadata): S3 requests are unsigned"
        ),
        source => tracing::debug!(%source, "S3 requests are signed"),
    }
    *cached = Some(resolved.clone());
    Ok(resolved)
}

fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let map = S3_STORES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = lock(map);
    if let Some(store) = map.get(bucket) {
        return Ok(store.clone());
    }
    let options = s3_options()?;
    let source = if options.anonymous || options.names(&AmazonS3ConfigKey::AccessKeyId) {
        static ONCE: OnceLock<()> = OnceLock::new();
        ONCE.get_or_init(|| tracing::info!("anonymous access requested: S3 requests are unsigned"));
        None
    } else {
        Some(credential_source()?)
    };
    let mut builder = s3_builder(bucket, &options, source.as_ref());
    let has_region = env_set("AWS_REGION")
        || env_set("AWS_DEFAULT_REGION")
        || options.names(&AmazonS3ConfigKey::Region);
    let has_endpoint = env_set("AWS_ENDPOINT_URL")
        || env_set("AWS_ENDPOINT")
        || options.names(&AmazonS3ConfigKey::Endpoint);
    if !has_region && !has_endpoint {
        if let Some(region) = resolve_region(bucket) {
            builder = builder.with_region(region);
        }
    } else if let Some(region) = std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()) {
        builder = builder.with_region(region);
    }
    for (key, value) in &options.config {
        builder = builder.with_config(*key, value);
    }
    let store: Arc<dyn ObjectStore> =
        Arc::new(builder.build().map_err(|e| Error::InvalidLocation {
            location: format!("s3://{bucket}"),
            reason: e.to_string(),
        })?);
    map.insert(bucket.to_string(), store.clone());
    Ok(store)
}

/// The builder of bucket `bucket`'s store: `object_store`'s environment configuration, the
/// retry layer of `options`, and the credentials of `source` (`None`: anonymous, or keys given
/// in `options`' settings, which the caller applies).
fn s3_builder(
    bucket: &str,
    options: &S3Options,
    source: Option<&credentials::Source>,
) -> AmazonS3Builder {
    let builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(options.retry_config());
    match source {
        None if options.names(&AmazonS3ConfigKey::AccessKeyId) && !options.anonymous => builder,
        None | Some(credentials::Source::None) => builder.with_skip_signature(true),
        Some(source) => match source.provider() {
            Some(provider) => builder.with_credentials(provider),
            // Web identity, container and instance credentials: `from_env` chose the same
            // source.
            None => builder,
        },
    }
}

/// Run `fut` to completion on a new thread with its own runtime; `Err` when that thread could
/// not run it (no runtime, a panic).
fn on_own_runtime<F>(fut: F) -> std::result::Result<F::Output, String>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        Ok(rt.block_on(fut))
    })
    .join()
    .map_err(|_| "the thread panicked".to_string())?
}

/// Look the bucket's region up (one unauthenticated HEAD); `None` when that fails.
fn resolve_region(bucket: &str) -> Option<String> {
    let bucket = bucket.to_string();
    on_own_runtime(async move {
        object_store::aws::resolve_bucket_region(&bucket, &object_store::ClientOptions::default())
            .await
            .ok()
    })
    .ok()
    .flatten()
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// `a/./b/../c` → `a/c` without touching the file system (object store paths cannot hold `.`
/// or `..` segments; the path may not exist yet, so it cannot be canonicalized).
fn lexically_normal(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_paths_with_dot_segments_are_normalized() {
        let a = Location::parse("/tmp/x/../y/./z").unwrap();
        assert_eq!(a.url(), "file:///tmp/y/z");
        let b = Location::parse("/../tmp").unwrap();
        assert_eq!(b.url(), "file:///tmp");
    }

    use super::*;

    #[tokio::test]
    async fn off_runtime_work_runs_outside_the_runtime_with_local_io_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/a/b.bin", dir.path().display());
        let (outside, bytes) = off_runtime("test".to_string(), move || {
            // LocalFileSystem would hand this to the blocking pool inside a runtime.
            let outside = tokio::runtime::Handle::try_current().is_err();
            let loc = Location::parse(&url)?;
            futures::executor::block_on(async {
                loc.put_bytes(bytes::Bytes::from_static(b"xyz")).await?;
                Ok((outside, loc.get_bytes().await?))
            })
        })
        .await
        .unwrap();
        assert!(outside, "the work ran inside the tokio runtime");
        assert_eq!(&bytes[..], b"xyz");
    }

    #[tokio::test]
    async fn off_runtime_turns_a_panic_into_a_task_error() {
        let err = off_runtime("merging cell=x/year=2020".to_string(), || -> Result<()> {
            panic!("boom")
        })
        .await
        .unwrap_err();
        let Error::Task { context, reason } = err else {
            panic!("not a task error: {err}");
        };
        assert_eq!(context, "merging cell=x/year=2020");
        assert_eq!(reason, "panicked: boom");
        // The thread survives it.
        assert_eq!(off_runtime("next".to_string(), || Ok(7)).await.unwrap(), 7);
    }

    #[test]
    fn local_threads_are_reused_and_started_only_when_none_is_idle() {
        use std::sync::atomic::Ordering::SeqCst;
        let threads = LocalThreads::new();
        let ran_on = |threads: &LocalThreads| {
            let (tx, rx) = std::sync::mpsc::channel();
            let job: LocalJob = Box::new(move || {
                let id = std::thread::current().id();
                Box::new(move || tx.send(id).unwrap())
            });
            threads.run(job).unwrap();
            // A job no thread takes fails the test rather than hanging it.
            rx.recv_timeout(std::time::Duration::from_secs(30))
                .expect("the job never ran")
        };
        let first = ran_on(&threads);
        // The result comes only once its thread is idle again: the next job finds it.
        assert_eq!(threads.idle.load(SeqCst), 1);
        assert_eq!(
            ran_on(&threads),
            first,
            "a thread per job: per-thread caches lost"
        );
        // Two jobs at once need two threads: the first blocks until the second has run.
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let done = done_tx.clone();
        threads
            .run(Box::new(move || {
                go_rx.recv().unwrap();
                let id = std::thread::current().id();
                Box::new(move || done.send(id).unwrap())
            }))
            .unwrap();
        threads
            .run(Box::new(move || {
                go_tx.send(()).unwrap();
                let id = std::thread::current().id();
                Box::new(move || done_tx.send(id).unwrap())
            }))
            .unwrap();
        let wait = || done_rx.recv_timeout(std::time::Duration::from_secs(30));
        let (a, b) = (
            wait().expect("a job never ran"),
            wait().expect("a job never ran"),
        );
        assert_ne!(a, b);
    }

    #[test]
    fn local_locations_are_told_from_remote_ones() {
        assert!(is_local("/tmp/x.parquet"));
        assert!(is_local("rel/x.parquet"));
        assert!(is_local("file:///tmp/x.parquet"));
        assert!(is_local("c://x.parquet"));
        assert!(Location::parse("c://x.parquet").unwrap().is_local());
        assert!(!is_local("s3://bucket/x.parquet"));
        assert!(!is_local("memory://t/x.parquet"));
    }

    #[test]
    fn parses_local_paths_and_file_urls() {
        let a = Location::parse("/tmp/wh").unwrap();
        assert_eq!(a.url(), "file:///tmp/wh");
        assert_eq!(a.key("x/y.parquet").as_ref(), "tmp/wh/x/y.parquet");
        let b = Location::parse("file:///tmp/wh/").unwrap();
        assert_eq!(b.url(), "file:///tmp/wh");
        assert!(b.is_local());
        let (dir, name) = Location::parse("/tmp/cat/catalog.db")
            .unwrap()
            .split_last()
            .unwrap();
        assert_eq!(dir.url(), "file:///tmp/cat");
        assert_eq!(name, "catalog.db");
    }

    #[test]
    fn memory_locations_share_a_store_per_name() {
        let a = Location::parse("memory://t1/a").unwrap();
        let b = Location::parse("memory://t1/b").unwrap();
        assert!(Arc::ptr_eq(a.store(), b.store()));
        assert_eq!(a.url_of("k"), "memory://t1/a/k");
        assert_eq!(b.key("k").as_ref(), "b/k");
    }

    #[tokio::test]
    async fn sized_reads_take_the_known_length_and_fail_naming_a_shorter_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        std::fs::write(&path, b"0123456789").unwrap();
        let loc = Location::parse(path.to_str().unwrap()).unwrap();
        assert_eq!(loc.get_sized(10).await.unwrap().as_ref(), b"0123456789");
        assert_eq!(loc.get_sized(0).await.unwrap().as_ref(), b"0123456789");
        assert_eq!(loc.get_sized(4).await.unwrap().as_ref(), b"0123");
        let err = loc.get_sized(11).await.unwrap_err();
        assert!(err.to_string().contains("f.parquet"), "{err}");
        let urls = [loc.url().to_string(), loc.url().to_string()];
        let got = get_all(urls.iter().map(|u| (u.as_str(), 10)), 1)
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        let mem = Location::parse("memory://sized/f").unwrap();
        mem.put_bytes(bytes::Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(mem.get_sized(3).await.unwrap().as_ref(), b"abc");
    }

    #[test]
    fn rejects_unknown_schemes_and_empty_buckets() {
        assert!(matches!(
            Location::parse("gs://x/y"),
            Err(Error::InvalidLocation { .. })
        ));
        assert!(matches!(
            Location::parse("s3:///y"),
            Err(Error::InvalidLocation { .. })
        ));
    }

    #[test]
    fn s3_options_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            S3Options::from_lookup(env(&[])).unwrap(),
            S3Options::default()
        );
        let o = S3Options::from_lookup(env(&[
            ("EARTHCATALOG_S3_MAX_RETRIES", "3"),
            ("EARTHCATALOG_S3_RETRY_TIMEOUT_SECS", "2.5"),
            ("EARTHCATALOG_S3_BACKOFF_MS", "20"),
        ]))
        .unwrap();
        let retry = o.retry_config();
        assert_eq!(retry.max_retries, 3);
        assert_eq!(retry.retry_timeout, Duration::from_millis(2500));
        assert_eq!(retry.backoff.init_backoff, Duration::from_millis(20));
        assert!(!o.anonymous());
        for pairs in [
            &[("EARTHCATALOG_S3_ANONYMOUS", "1")][..],
            &[("AWS_SKIP_SIGNATURE", "true")][..],
        ] {
            assert!(S3Options::from_lookup(env(pairs)).unwrap().anonymous());
        }
        for (name, value) in [
            ("EARTHCATALOG_S3_MAX_RETRIES", "-1"),
            ("EARTHCATALOG_S3_RETRY_TIMEOUT_SECS", "soon"),
            ("EARTHCATALOG_S3_BACKOFF_MS", "1.5"),
            ("EARTHCATALOG_S3_ANONYMOUS", "maybe"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([(name, value)]));
            let err = S3Options::from_lookup(env(pairs)).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn caller_settings_are_object_store_keys_and_unknown_ones_are_named() {
        let o = S3Options::default()
            .with_setting("storage_options", "region", "eu-west-1")
            .unwrap()
            .with_setting("storage_options", "aws_endpoint", "http://127.0.0.1:5000")
            .unwrap()
            .with_setting("storage_options", "allow_http", "true")
            .unwrap()
            .with_setting("storage_options", "anonymous", "true")
            .unwrap()
            .with_setting("storage_options", "region", "us-west-2")
            .unwrap();
        assert!(o.anonymous());
        assert!(o.names(&AmazonS3ConfigKey::Region));
        assert!(o.names(&AmazonS3ConfigKey::Endpoint));
        // The later value of a key replaces the earlier one.
        let regions: Vec<&str> = o
            .config
            .iter()
            .filter(|(k, _)| *k == AmazonS3ConfigKey::Region)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(regions, ["us-west-2"]);
        let built = s3_builder("b", &o, None);
        assert_eq!(
            built
                .get_config_value(&AmazonS3ConfigKey::SkipSignature)
                .as_deref(),
            Some("true")
        );
        for (key, value) in [("regoin", "x"), ("anonymous", "maybe")] {
            let err = S3Options::default()
                .with_setting("storage_options", key, value)
                .unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
            assert!(err.to_string().contains("storage_options"), "{err}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn s3_stores_and_locations_show_no_keys_in_debug() {
        let source = credentials::Source::Environment(Arc::new(object_store::aws::AwsCredential {
            key_id: "AKIADEBUGKEYID".into(),
            secret_key: "DEBUGSECRET".into(),
            token: Some("DEBUGTOKEN".into()),
        }));
        let store: Arc<dyn ObjectStore> = Arc::new(
            s3_builder("b", &S3Options::default(), Some(&source))
                .with_region("us-east-1")
                .build()
                .unwrap(),
        );
        let location = Location::with_store(store.clone(), Path::from("p"), "s3://b".into());
        for text in [
            format!("{store:?}"),
            format!("{location:?}"),
            format!("{source:?}"),
        ] {
            for secret in ["AKIADEBUGKEYID", "DEBUGSECRET", "DEBUGTOKEN"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }

    #[tokio::test]
    async fn put_if_absent_refuses_second_writer() {
        let loc = Location::parse("memory://t2").unwrap();
        let key = loc.key("lock");
        assert!(
            put_if_absent(loc.store().as_ref(), &key, "a".into())
                .await
                .unwrap()
        );
        assert!(
            !put_if_absent(loc.store().as_ref(), &key, "b".into())
                .await
                .unwrap()
        );
        assert_eq!(loc.join("lock").get_bytes().await.unwrap(), "a");
    }
}
