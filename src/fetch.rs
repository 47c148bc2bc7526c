//! Fetch STAC item bodies from object storage with retries.
//!
//! Each inventory row `(bucket, key)` is read from `s3://bucket/key`, or from `<items_root>/key`
//! when an items root is configured (local copies, tests, the bundled example). Throttling,
//! 5xx and timeouts are retried with exponential backoff and jitter; 404 and 403 are not.

use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStoreExt;

use crate::error::store_error_retryable;
use crate::store::Location;

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Attempts per item (first try included).
    pub attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub backoff: Duration,
    /// Read every key below this location instead of `s3://<bucket>/`.
    pub items_root: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(250),
            items_root: None,
        }
    }
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
    /// Failed after retries (or a non-retryable error).
    #[error("fetch failed after {attempts} attempt(s): {message}")]
    Failed {
        /// Attempts made.
        attempts: u32,
        /// Last error.
        message: String,
    },
}

/// Fetches item bodies.
#[derive(Debug, Clone)]
pub struct Fetcher {
    options: FetchOptions,
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
        Ok(Self { options, root })
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
                attempts: 0,
                message: e.to_string(),
            }),
        }
    }

    /// Fetch one item body.
    pub async fn fetch(&self, bucket: &str, key: &str) -> Result<Bytes, FetchError> {
        let loc = self.location(bucket, key)?;
        let mut delay = self.options.backoff;
        let attempts = self.options.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let result = match loc.store().get(loc.prefix()).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(b) => return Ok(b),
                Err(object_store::Error::NotFound { .. }) => return Err(FetchError::NotFound),
                Err(e @ object_store::Error::PermissionDenied { .. })
                | Err(e @ object_store::Error::Unauthenticated { .. }) => {
                    return Err(FetchError::Forbidden(e.to_string()));
                }
                Err(e) if !store_error_retryable(&e) => {
                    return Err(FetchError::Failed {
                        attempts: attempt,
                        message: e.to_string(),
                    });
                }
                Err(e) => last = e.to_string(),
            }
            if attempt < attempts {
                let jitter = (jitter_seed(key, attempt) % 1000) as f64 / 1000.0;
                tokio::time::sleep(delay.mul_f64(0.5 + jitter)).await;
                delay = delay.saturating_mul(2);
            }
        }
        Err(FetchError::Failed {
            attempts,
            message: last,
        })
    }
}

fn jitter_seed(key: &str, attempt: u32) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), attempt as u64)
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
            ..Default::default()
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
    fn s3_urls_without_root() {
        let f = Fetcher::new(FetchOptions::default()).unwrap();
        assert_eq!(
            f.url_for("its-live-data", "/v/x.stac.json"),
            "s3://its-live-data/v/x.stac.json"
        );
    }
}
