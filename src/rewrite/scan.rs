//! Listing the warehouse: Parquet data files under `grid_partition=<cell>/year=<yyyy>/` or
//! `grid=<type>/level=<res>/tile=<cell>/year=<yyyy>/` (see [`crate::partition`]).
//!
//! Every file-name variant the Python tool wrote is accepted (`part_NNNNNN.parquet`,
//! `part_NNNNNN_<hex>.parquet`, `compacted_<hex>.parquet`, anything else ending `.parquet`);
//! non-Parquet objects, our temporaries and the Iceberg metadata tree are ignored.
//!
//! [`list_staging`] finds what `object_store`'s local file system leaves behind when a process
//! dies inside a put: `<name>.parquet#<n>` staging files. `object_store` deliberately hides
//! them (it neither lists nor deletes such names), so they are found and removed with
//! `std::fs`, the one place maintenance touches the local file system directly.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
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
    /// When the object was last written.
    pub last_modified: DateTime<Utc>,
}

/// Every data file in the warehouse, sorted by URL (one entry per file held).
pub async fn list_warehouse(warehouse: &Location) -> Result<Vec<WarehouseFile>> {
    let mut out = Vec::new();
    for_each_warehouse_file(warehouse, |f| out.push(f)).await?;
    out.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(out)
}

/// Hand `each` every data file in the warehouse as the listing streams in (in the store's
/// order); returns how many there were.
pub async fn for_each_warehouse_file(
    warehouse: &Location,
    mut each: impl FnMut(WarehouseFile),
) -> Result<usize> {
    let store = warehouse.store().clone();
    let prefix = warehouse.prefix().clone();
    let base = prefix.as_ref().len();
    let mut count = 0;
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
        count += 1;
        each(WarehouseFile {
            url: warehouse.url_of(rel),
            name: name.to_string(),
            size: meta.size,
            partition,
            last_modified: meta.last_modified,
        });
    }
    Ok(count)
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

/// A local staging file `<name>.parquet#<n>` of an interrupted put.
#[derive(Debug, Clone)]
pub struct StagingFile {
    /// Its URL (`file:///…/<name>.parquet#<n>`), for reports.
    pub url: String,
    /// Its local path.
    pub path: PathBuf,
    /// Its modification time.
    pub last_modified: DateTime<Utc>,
}

/// Whether `name` is a local staging file of a Parquet file: `<name>.parquet#<digits>`.
pub fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((base, n)) => {
            base.ends_with(".parquet") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Staging files in the partition folders (`grid_partition=…/year=…/`) of a local warehouse;
/// empty for any other store (object stores write objects whole).
pub async fn list_staging(warehouse: &Location) -> Result<Vec<StagingFile>> {
    if !warehouse.is_local() {
        return Ok(Vec::new());
    }
    let root = PathBuf::from(format!("/{}", warehouse.prefix().as_ref()));
    let base = warehouse.clone();
    tokio::task::spawn_blocking(move || staging_below(&root, &base))
        .await
        .map_err(|e| Error::task(format!("listing staging files in {}", warehouse.url()), e))?
}

fn staging_below(root: &std::path::Path, warehouse: &Location) -> Result<Vec<StagingFile>> {
    // Entries of `dir` whose names satisfy `keep`; a missing folder has none.
    let entries = |dir: &std::path::Path, keep: &dyn Fn(&str) -> bool| -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            if let Some(name) = entry.file_name().to_str().filter(|n| keep(n)) {
                names.push(name.to_string());
            }
        }
        Ok(names)
    };
    // The partition folders of both layouts: `grid_partition=…/year=…` and
    // `grid=…/level=…/tile=…/year=…`; staging files sit in a `year=` folder.
    let mut out = Vec::new();
    let mut stack: Vec<(std::path::PathBuf, String, usize)> =
        entries(root, &|n| crate::partition::is_partition_dir(n))?
            .into_iter()
            .map(|n| (root.join(&n), n, 1))
            .collect();
    while let Some((dir, rel, depth)) = stack.pop() {
        let is_year = rel
            .rsplit('/')
            .next()
            .is_some_and(|s| s.starts_with("year="));
        if is_year {
            for name in entries(&dir, &is_staging_name)? {
                let path = dir.join(&name);
                let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
                if !meta.is_file() {
                    continue;
                }
                let modified = meta.modified().map_err(|e| Error::io(&path, e))?;
                out.push(StagingFile {
                    url: warehouse.url_of(&format!("{rel}/{name}")),
                    path,
                    last_modified: DateTime::<Utc>::from(modified),
                });
            }
        } else if depth < 4 {
            let next = |n: &str| {
                ["year=", "level=", "tile="]
                    .iter()
                    .any(|p| n.starts_with(p))
            };
            for name in entries(&dir, &next)? {
                stack.push((dir.join(&name), format!("{rel}/{name}"), depth + 1));
            }
        }
    }
    out.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_parquet_names_with_a_numeric_suffix() {
        assert!(is_staging_name("part_000001_0a1b2c3d.parquet#1"));
        assert!(is_staging_name("compacted_0a1b2c3d.parquet#12"));
        assert!(!is_staging_name("part_000001_0a1b2c3d.parquet"));
        assert!(!is_staging_name("part.parquet#"));
        assert!(!is_staging_name("part.parquet#1a"));
        assert!(!is_staging_name("notes.txt#1"));
    }

    #[tokio::test]
    async fn finds_staging_files_only_in_partition_folders() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("grid_partition=8001fffffffffff/year=2020");
        std::fs::create_dir_all(&bucket).unwrap();
        std::fs::write(bucket.join("part_000000_00000001.parquet#1"), b"x").unwrap();
        std::fs::write(bucket.join("part_000000_00000001.parquet"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("_reports")).unwrap();
        std::fs::write(dir.path().join("_reports/a.parquet#1"), b"x").unwrap();
        let wh = Location::parse(dir.path().to_str().unwrap()).unwrap();
        let found = list_staging(&wh).await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .url
                .ends_with("year=2020/part_000000_00000001.parquet#1")
        );
        assert!(found[0].path.exists());
        // object_store itself does not see the staging file.
        let listed = list_warehouse(&wh).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].name.ends_with(".parquet"));
    }
}
