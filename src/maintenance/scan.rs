//! Listing the warehouse: Parquet data files under `grid_partition=<cell>/year=<yyyy>/`.
//!
//! Every file-name variant the Python tool wrote is accepted (`part_NNNNNN.parquet`,
//! `part_NNNNNN_<hex>.parquet`, `compacted_<hex>.parquet`, anything else ending `.parquet`);
//! non-Parquet objects, our temporaries and the Iceberg metadata tree are ignored.

use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Error, Result};
use crate::partition::{PartitionValue, partition_of_path};
use crate::store::Location;

/// A data file found in the warehouse.
#[derive(Debug, Clone)]
pub struct WarehouseFile {
    /// Canonical URL.
    pub url: String,
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Partition from the hive path.
    pub partition: PartitionValue,
}

/// Every data file in the warehouse (streamed listing; the result holds one entry per file).
pub async fn list_warehouse(warehouse: &Location) -> Result<Vec<WarehouseFile>> {
    let store = warehouse.store().clone();
    let prefix = warehouse.prefix().clone();
    let base = prefix.as_ref().len();
    let mut out = Vec::new();
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| Error::store(warehouse.url(), e))?
    {
        let key = meta.location.as_ref();
        let rel = key[base..].trim_start_matches('/');
        let Some(name) = rel.rsplit('/').next() else {
            continue;
        };
        if !name.ends_with(".parquet") || rel.starts_with("earthcatalog/") {
            continue;
        }
        let Some(partition) = partition_of_path(rel) else {
            continue;
        };
        out.push(WarehouseFile {
            url: warehouse.url_of(rel),
            name: name.to_string(),
            size: meta.size,
            partition,
        });
    }
    out.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(out)
}

/// Read a Parquet footer with range requests.
pub async fn read_footer(loc: &Location, size: u64) -> Result<ParquetMetaData> {
    let mut reader =
        ParquetObjectReader::new(loc.store().clone(), loc.prefix().clone()).with_file_size(size);
    let meta = reader
        .get_metadata(None)
        .await
        .map_err(|e| Error::parquet(loc.url(), e))?;
    Ok(ParquetMetaData::clone(&meta))
}
