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
//! S3 configuration comes from the usual AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`,
//! `AWS_REGION`/`AWS_DEFAULT_REGION`). Without credentials requests are anonymous (unsigned).
//! Without a region and without a custom endpoint the bucket's region is looked up once.
//! Nothing about buckets or regions is hard-coded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

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
        let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
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

/// Read the objects at `urls` concurrently, in order.
pub async fn get_all<'a>(urls: impl IntoIterator<Item = &'a str>) -> Result<Vec<bytes::Bytes>> {
    futures::future::try_join_all(
        urls.into_iter()
            .map(|url| async move { Location::parse(url)?.get_bytes().await }),
    )
    .await
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

fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    static S3: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let map = S3.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(store) = map.get(bucket) {
        return Ok(store.clone());
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let has_creds = env_set("AWS_ACCESS_KEY_ID")
        || env_set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || env_set("AWS_PROFILE");
    if !has_creds {
        builder = builder.with_skip_signature(true);
    }
    let has_region = env_set("AWS_REGION") || env_set("AWS_DEFAULT_REGION");
    let has_endpoint = env_set("AWS_ENDPOINT_URL") || env_set("AWS_ENDPOINT");
    if !has_region && !has_endpoint {
        if let Some(region) = resolve_region(bucket) {
            builder = builder.with_region(region);
        }
    } else if let Some(region) = std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()) {
        builder = builder.with_region(region);
    }
    let store: Arc<dyn ObjectStore> =
        Arc::new(builder.build().map_err(|e| Error::InvalidLocation {
            location: format!("s3://{bucket}"),
            reason: e.to_string(),
        })?);
    map.insert(bucket.to_string(), store.clone());
    Ok(store)
}

/// Look the bucket's region up (one unauthenticated HEAD); `None` when that fails. Runs on its
/// own thread and runtime so it is safe to call from any context, async or not.
fn resolve_region(bucket: &str) -> Option<String> {
    let bucket = bucket.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(object_store::aws::resolve_bucket_region(
            &bucket,
            &object_store::ClientOptions::default(),
        ))
        .ok()
    })
    .join()
    .ok()
    .flatten()
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

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
