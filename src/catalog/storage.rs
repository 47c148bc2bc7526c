//! Iceberg `FileIO` over `object_store`: a small [`Storage`] implementation so that Iceberg
//! metadata, manifests and manifest lists use the same stores (local, S3, memory) as every other
//! byte earthcatalog touches. No opendal.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::store::Location;

fn to_iceberg(path: &str, e: impl std::fmt::Display) -> iceberg::Error {
    iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("{path}: {e}"))
}

fn resolve(path: &str) -> iceberg::Result<Location> {
    Location::parse(path).map_err(|e| to_iceberg(path, e))
}

/// Iceberg storage backed by `object_store`; paths are full URLs understood by [`Location`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStoreStorage;

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStoreStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let loc = resolve(path)?;
        match loc.store().head(loc.prefix()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(to_iceberg(path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let loc = resolve(path)?;
        let meta = loc
            .store()
            .head(loc.prefix())
            .await
            .map_err(|e| to_iceberg(path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let loc = resolve(path)?;
        loc.get_bytes().await.map_err(|e| to_iceberg(path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let loc = resolve(path)?;
        Ok(Box::new(ObjectRead {
            store: loc.store().clone(),
            key: loc.prefix().clone(),
            path: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let loc = resolve(path)?;
        loc.put_bytes(bs).await.map_err(|e| to_iceberg(path, e))
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let loc = resolve(path)?;
        Ok(Box::new(ObjectWrite {
            loc,
            buf: Vec::new(),
            closed: false,
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let loc = resolve(path)?;
        match loc.store().delete(loc.prefix()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(to_iceberg(path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let loc = resolve(path)?;
        let mut listing = loc.store().list(Some(loc.prefix()));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| to_iceberg(path, e))?;
            match loc.store().delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(to_iceberg(path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Builds [`ObjectStoreStorage`] for the SQL catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStoreStorageFactory;

#[typetag::serde]
impl StorageFactory for ObjectStoreStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStoreStorage))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    key: object_store::path::Path,
    path: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store
            .get_range(&self.key, range)
            .await
            .map_err(|e| to_iceberg(&self.path, e))
    }
}

struct ObjectWrite {
    loc: Location,
    buf: Vec<u8>,
    closed: bool,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        if self.closed {
            return Err(to_iceberg(self.loc.url(), "write after close"));
        }
        self.buf.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let data = std::mem::take(&mut self.buf);
        self.loc
            .store()
            .put(self.loc.prefix(), PutPayload::from(data))
            .await
            .map_err(|e| to_iceberg(self.loc.url(), e))?;
        Ok(())
    }
}
