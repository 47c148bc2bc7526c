//! Fetch STAC item bodies from object storage.
//!
//! Each inventory row `(bucket, key)` is read from `s3://bucket/key`, or from `<items_root>/key`
//! when an items root is configured (local copies, tests, the bundled example). Throttling, 5xx,
//! timeouts and dropped connections are retried by the store's own client, the one retry layer
//! (see [`crate::store::S3Options`]); this module only classifies the final outcome by the
//! `object_store` error variant: not found, access denied, or failed.

use bytes::Bytes;
use object_store::ObjectStoreExt;

use crate::store::Location;

/// Fetch settings.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Read every key below this location instead of `s3://<bucket>/`.
    pub items_root: Option<String>,
}

/// Why an item could not be fetched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// The object does not exist.
    #[error("not found")]
    NotFound,
    /// Access denied.
    #[error("access denied: {0}")]
    Forbidden(String),
    /// Any other failure, after the store's retries.
    #[error("fetch failed: {message}")]
    Failed {
        /// The store's error.
        message: String,
    },
}

impl From<object_store::Error> for FetchError {
    /// Classify by variant: `NotFound` → not found, `PermissionDenied`/`Unauthenticated` →
    /// access denied, anything else → failed.
    fn from(err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => FetchError::NotFound,
            e @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }) => FetchError::Forbidden(e.to_string()),
            e => FetchError::Failed {
                message: e.to_string(),
            },
        }
    }
}

/// Fetches item bodies.
#[derive(Debug, Clone)]
pub struct Fetcher {
    root: Option<Location>,
}

impl Fetcher {
    /// Build a fetcher; the items root (if any) is resolved now.
    pub fn new(options: FetchOptions) -> crate::Result<Self> {
        let root = options
            .items_root
            .as_deref()
            .map(Location::parse)
            .transpose()?;
        Ok(Self { root })
    }

    /// The URL an inventory row is read from.
    pub fn url_for(&self, bucket: &str, key: &str) -> String {
        match &self.root {
            Some(root) => root.url_of(key),
            None => format!("s3://{bucket}/{}", key.trim_start_matches('/')),
        }
    }

    fn location(&self, bucket: &str, key: &str) -> Result<Location, FetchError> {
        match &self.root {
            Some(root) => Ok(root.join(key)),
            None => Location::parse(&self.url_for(bucket, key)).map_err(|e| FetchError::Failed {
                message: e.to_string(),
            }),
        }
    }

    /// Fetch one item body (one request; the store retries transient failures).
    pub async fn fetch(&self, bucket: &str, key: &str) -> Result<Bytes, FetchError> {
        let loc = self.location(bucket, key)?;
        let body = loc.store().get(loc.prefix()).await?;
        Ok(body.bytes().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fetches_from_items_root_and_reports_missing() {
        let root = Location::parse("memory://fetch-test/items").unwrap();
        root.join("a/x.stac.json")
            .put_bytes(Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let f = Fetcher::new(FetchOptions {
            items_root: Some("memory://fetch-test/items".into()),
        })
        .unwrap();
        assert_eq!(
            f.url_for("b", "a/x.stac.json"),
            "memory://fetch-test/items/a/x.stac.json"
        );
        assert_eq!(
            f.fetch("b", "a/x.stac.json").await.unwrap(),
            Bytes::from_static(b"{}")
        );
        assert_eq!(
            f.fetch("b", "a/missing.stac.json").await.unwrap_err(),
            FetchError::NotFound
        );
    }

    #[test]
    fn errors_are_classified_by_variant() {
        let source = || -> Box<dyn std::error::Error + Send + Sync> { "boom".into() };
        let path = "k".to_string();
        assert_eq!(
            FetchError::from(object_store::Error::NotFound {
                path: path.clone(),
                source: source()
            }),
            FetchError::NotFound
        );
        for denied in [
            object_store::Error::PermissionDenied {
                path: path.clone(),
                source: source(),
            },
            object_store::Error::Unauthenticated {
                path: path.clone(),
                source: source(),
            },
        ] {
            assert!(matches!(FetchError::from(denied), FetchError::Forbidden(_)));
        }
        // A message that mentions 403 or 404 is still just a failure: only variants count.
        let generic = object_store::Error::Generic {
            store: "S3",
            source: "status 403 Forbidden / 404".into(),
        };
        assert!(matches!(
            FetchError::from(generic),
            FetchError::Failed { .. }
        ));
    }

    #[test]
    fn s3_urls_without_root() {
        let f = Fetcher::new(FetchOptions::default()).unwrap();
        assert_eq!(
            f.url_for("its-live-data", "/v/x.stac.json"),
            "s3://its-live-data/v/x.stac.json"
        );
    }
}
