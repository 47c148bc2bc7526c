//! The id locator: which (cell, year) buckets hold an item id, so `items/{id}` reads one
//! bucket's files instead of every file (43 M items are ~100 k files: a scan takes minutes).
//!
//! ```text
//! <warehouse>_id_locator.parquet   beside the hash index (<warehouse>_id_hashes.parquet)
//!   id_hash  fixed_size_binary(16)  xxh3-128 of the id (the hash index's digest), sorted
//!   cell     utf8 (nullable)        grid_partition of a bucket holding the id
//!   year     int32 (nullable)       year partition of that bucket (null: year=unknown)
//!   one row per (id, bucket); row groups of ROW_GROUP_ROWS rows with min/max statistics;
//!   key-value metadata: the table uuid and snapshot it reflects (like the hash index's stamp)
//! lookup: footer (cached) ─▶ the row group whose [min, max] holds the digest ─▶ its buckets
//!         ─▶ the live files of those buckets ─▶ row groups pruned by `id` statistics
//!         ─▶ row filter id = X ─▶ the newest version (the search's version rule)
//! ```
//!
//! Design decisions:
//! * **Why a locator, not Parquet bloom filters or id bounds in manifests.** Data files are
//!   written in arrival order, so per-file `id` min/max ranges overlap almost entirely and prune
//!   nothing; bloom filters would still cost one footer + filter read per file (100 k reads at
//!   43 M items). The locator is one sorted file: a lookup reads one row group (the footer is
//!   cached), whatever the table size.
//! * **Valid across compaction.** Compaction rewrites a bucket's files into one file of the same
//!   bucket, so an id never changes bucket; only ingest (new ids, or an item whose footprint or
//!   year changed), gc and repair change the mapping. A stale entry only costs reading a bucket
//!   that no longer holds the id (the answer is still right); a missing entry would hide an
//!   item, so readers add the ids of files committed after the stamp ([`IdLocator::stamp`]).
//! * **Built, not patched.** `earthcatalog index locate` rebuilds it from the live files' `id`
//!   columns (memory: ~24 bytes per (id, bucket) row while sorting) and writes it in one
//!   upload (atomic on S3 and on local disks: readers see the old file or the new one).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use iceberg::table::Table;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter,
};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::async_writer::{AsyncArrowWriter, ParquetObjectWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::Statistics;
use serde_json::Value as Json;

use super::FileEntry;
use super::rehydrate::ItemBatch;
use crate::catalog::prune::Pruner;
use crate::error::{Error, Result};
use crate::hash_index::{IdHash, IndexStamp, META_SNAPSHOT_ID, META_TABLE_UUID, hash_id};
use crate::item::Version;
use crate::store::Location;

/// Rows per row group: one lookup reads one group (~16 k digests, ~300 KB).
pub const ROW_GROUP_ROWS: usize = 16 * 1024;
/// Files whose `id` column is read at once while building.
const READ_CONCURRENCY: usize = 16;
/// Rows per written record batch.
const BATCH_ROWS: usize = 64 * 1024;

/// A bucket: (cell, year).
pub type Bucket = (Option<String>, Option<i32>);

/// `{warehouse}_id_locator.parquet`, beside the hash index.
pub fn default_locator_path(warehouse_url: &str) -> String {
    format!("{}_id_locator.parquet", warehouse_url.trim_end_matches('/'))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id_hash", DataType::FixedSizeBinary(16), false),
        Field::new("cell", DataType::Utf8, true),
        Field::new("year", DataType::Int32, true),
    ]))
}

/// What [`build_locator`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocatorStats {
    /// Where.
    pub path: String,
    /// (id, bucket) rows.
    pub rows: u64,
    /// Distinct buckets.
    pub buckets: usize,
    /// Live files read.
    pub files: usize,
    /// The catalog state it reflects.
    pub stamp: Option<IndexStamp>,
}

/// The (digest, bucket) pairs of some live files.
pub async fn id_buckets(files: &[FileEntry]) -> Result<Vec<(IdHash, Bucket)>> {
    let per_file: Vec<(Bucket, Vec<IdHash>)> = futures::stream::iter(files.iter().cloned())
        .map(|f| async move {
            let ids = crate::hash_index::file_ids(&f.path, f.bytes).await?;
            Ok::<_, Error>(((f.cell, f.year), ids))
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(per_file
        .into_iter()
        .flat_map(|(b, ids)| ids.into_iter().map(move |h| (h, b.clone())))
        .collect())
}

/// Rebuild the locator at `location` from the live files of the table's current snapshot.
pub async fn build_locator(table: &Table, location: &Location) -> Result<LocatorStats> {
    let files = crate::catalog::live::scan(table, &Pruner::default())
        .await?
        .files;
    let stamp = IndexStamp::of(table);
    // Buckets as small integers while sorting (24 bytes per row).
    let mut bucket_ids: HashMap<Bucket, u32> = HashMap::new();
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut rows: Vec<(IdHash, u32)> = Vec::new();
    let per_file = futures::stream::iter(files.iter().cloned())
        .map(|f| async move {
            let ids = crate::hash_index::file_ids(&f.path, f.bytes).await?;
            Ok::<_, Error>(((f.cell, f.year), ids))
        })
        .buffer_unordered(READ_CONCURRENCY);
    let mut per_file = std::pin::pin!(per_file);
    while let Some(next) = per_file.next().await {
        let (bucket, ids) = next?;
        let b = *bucket_ids.entry(bucket.clone()).or_insert_with(|| {
            buckets.push(bucket);
            (buckets.len() - 1) as u32
        });
        rows.extend(ids.into_iter().map(|h| (h, b)));
    }
    let url = location.url().to_string();
    let rows = tokio::task::spawn_blocking(move || {
        rows.sort_unstable();
        rows.dedup();
        rows
    })
    .await
    .map_err(|e| Error::task(format!("sorting the id locator {url}"), e))?;
    let kv = stamp.as_ref().map(|s| {
        vec![
            KeyValue::new(META_TABLE_UUID.to_string(), s.table_uuid.clone()),
            KeyValue::new(META_SNAPSHOT_ID.to_string(), s.snapshot_id.to_string()),
        ]
    });
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(kv)
        .build();
    let schema = schema();
    let sink = ParquetObjectWriter::new(location.store().clone(), location.prefix().clone());
    let mut writer = AsyncArrowWriter::try_new(sink, schema.clone(), Some(props))
        .map_err(|e| Error::parquet(&url, e))?;
    for chunk in rows.chunks(BATCH_ROWS) {
        let hashes: Vec<u8> = chunk.iter().flat_map(|(h, _)| h.iter().copied()).collect();
        let hashes = FixedSizeBinaryArray::try_new(16, hashes.into(), None)
            .map_err(|e| Error::arrow(format!("id locator {url}"), e))?;
        let cells: StringArray = chunk
            .iter()
            .map(|(_, b)| buckets[*b as usize].0.as_deref())
            .collect();
        let years: Int32Array = chunk.iter().map(|(_, b)| buckets[*b as usize].1).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(hashes) as ArrayRef,
                Arc::new(cells) as ArrayRef,
                Arc::new(years) as ArrayRef,
            ],
        )
        .map_err(|e| Error::arrow(format!("id locator {url}"), e))?;
        writer
            .write(&batch)
            .await
            .map_err(|e| Error::parquet(&url, e))?;
    }
    writer.close().await.map_err(|e| Error::parquet(&url, e))?;
    Ok(LocatorStats {
        path: url,
        rows: rows.len() as u64,
        buckets: buckets.len(),
        files: files.len(),
        stamp,
    })
}

/// An opened locator: its footer in memory, row groups read on demand.
#[derive(Debug)]
pub struct IdLocator {
    location: Location,
    size: u64,
    metadata: ArrowReaderMetadata,
    /// (min, max) digest of each row group, in file order (sorted).
    ranges: Vec<(IdHash, IdHash)>,
    stamp: Option<IndexStamp>,
}

fn digest(bytes: &[u8]) -> Option<IdHash> {
    bytes.try_into().ok()
}

impl IdLocator {
    /// Open the locator at `location` (footer only); `None` when there is none.
    pub async fn open(location: &Location) -> Result<Option<Self>> {
        use object_store::ObjectStoreExt as _;
        let url = location.url();
        let size = match location.store().head(location.prefix()).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::store(url, e)),
        };
        let mut reader =
            ParquetObjectReader::new(location.store().clone(), location.prefix().clone())
                .with_file_size(size);
        let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| Error::parquet(url, e))?;
        let md = metadata.metadata();
        let kv = md.file_metadata().key_value_metadata();
        let get = |k: &str| {
            kv?.iter()
                .find(|e| e.key == k)
                .and_then(|e| e.value.clone())
        };
        let stamp = match (get(META_TABLE_UUID), get(META_SNAPSHOT_ID)) {
            (Some(table_uuid), Some(id)) => id.parse().ok().map(|snapshot_id| IndexStamp {
                table_uuid,
                snapshot_id,
            }),
            _ => None,
        };
        let mut ranges = Vec::with_capacity(md.num_row_groups());
        for rg in md.row_groups() {
            let range = match rg.column(0).statistics() {
                Some(Statistics::FixedLenByteArray(s)) => s
                    .min_opt()
                    .zip(s.max_opt())
                    .and_then(|(lo, hi)| Some((digest(lo.data())?, digest(hi.data())?))),
                _ => None,
            };
            ranges.push(range.ok_or_else(|| {
                Error::Inconsistent(format!(
                    "id locator {url}: a row group has no id_hash statistics (rebuild it with \
                     `earthcatalog index locate`)"
                ))
            })?);
        }
        Ok(Some(Self {
            location: location.clone(),
            size,
            metadata,
            ranges,
            stamp,
        }))
    }

    /// The catalog state the locator reflects.
    pub fn stamp(&self) -> Option<&IndexStamp> {
        self.stamp.as_ref()
    }

    /// The buckets that held `id` when the locator was built (reads the row groups whose
    /// digest range holds it: one, unless the digest sits on a boundary).
    pub async fn buckets(&self, id: &str) -> Result<Vec<Bucket>> {
        let h = hash_id(id);
        let groups: Vec<usize> = self
            .ranges
            .iter()
            .enumerate()
            .filter(|(_, (lo, hi))| *lo <= h && h <= *hi)
            .map(|(i, _)| i)
            .collect();
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let url = self.location.url();
        let reader = ParquetObjectReader::new(
            self.location.store().clone(),
            self.location.prefix().clone(),
        )
        .with_file_size(self.size);
        let mut stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.metadata.clone())
                .with_row_groups(groups)
                .build()
                .map_err(|e| Error::parquet(url, e))?;
        let mut out = BTreeSet::new();
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(|e| Error::parquet(url, e))?
        {
            let bad = || Error::Inconsistent(format!("id locator {url}: unexpected column types"));
            let hashes = batch.column(0).as_fixed_size_binary_opt().ok_or_else(bad)?;
            let cells = batch.column(1).as_string_opt::<i32>().ok_or_else(bad)?;
            let years = batch
                .column(2)
                .as_primitive_opt::<arrow_array::types::Int32Type>()
                .ok_or_else(bad)?;
            for i in 0..batch.num_rows() {
                if hashes.value(i) == h {
                    let cell = (!cells.is_null(i)).then(|| cells.value(i).to_string());
                    let year = (!years.is_null(i)).then(|| years.value(i));
                    out.insert((cell, year));
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// The newest version of item `id` in `files` (rows read with row-group pruning on `id`
/// statistics and a row filter on `id`), as STAC JSON like [`super::Warehouse::search`]
/// returns it (`json_text`: `assets`/`links`/... left as stored JSON text). Versions are
/// ordered like the search orders them (`updated`, `created`, then commit order). With
/// `collection`, only versions in that collection count (as a search by ids and collection);
/// items stored without one are in `default_collection` (see
/// [`super::SearchRequest::default_collection`]).
pub async fn read_item(
    files: &[FileEntry],
    id: &str,
    collection: Option<&str>,
    default_collection: Option<&str>,
    json_text: bool,
) -> Result<Option<Json>> {
    // Commit order: later data sequence number (then path) is newer.
    let mut ordered: Vec<FileEntry> = files.to_vec();
    ordered.sort_by(|a, b| {
        a.sequence_number
            .cmp(&b.sequence_number)
            .then_with(|| a.path.cmp(&b.path))
    });
    let found: Vec<Vec<(Version, Json)>> = futures::stream::iter(ordered.into_iter().enumerate())
        .map(|(commit, f)| {
            let id = id.to_string();
            let default = default_collection.map(std::sync::Arc::<str>::from);
            async move { read_rows(&f, &id, commit as u64, json_text, default).await }
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter(|(_, item)| collection.is_none_or(|c| item["collection"].as_str() == Some(c)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, item)| item))
}

async fn read_rows(
    f: &FileEntry,
    id: &str,
    commit: u64,
    json_text: bool,
    default_collection: Option<std::sync::Arc<str>>,
) -> Result<Vec<(Version, Json)>> {
    let path = f.path.as_str();
    let loc = Location::parse(path)?;
    let mut reader = ParquetObjectReader::new(loc.store().clone(), loc.prefix().clone());
    if f.bytes > 0 {
        reader = reader.with_file_size(f.bytes);
    }
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| Error::parquet(path, e))?;
    let Ok(column) = builder.schema().index_of("id") else {
        return Ok(Vec::new());
    };
    let groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| match rg.column(column).statistics() {
            Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(lo), Some(hi)) => lo.data() <= id.as_bytes() && id.as_bytes() <= hi.data(),
                _ => true,
            },
            _ => true,
        })
        .map(|(i, _)| i)
        .collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let wanted = id.to_string();
    let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let ids = arrow_cast::cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        Ok((0..ids.len())
            .map(|i| Some(!ids.is_null(i) && ids.value(i) == wanted))
            .collect())
    });
    let mut stream = builder
        .with_row_groups(groups)
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .build()
        .map_err(|e| Error::parquet(path, e))?;
    let mut out = Vec::new();
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| Error::parquet(path, e))?
    {
        let items =
            ItemBatch::new(&batch, path)?.with_default_collection(default_collection.clone());
        for i in 0..items.len() {
            let item = items.item_with(i, false, json_text);
            let ts = |name: &str| {
                item.get("properties")?
                    .get(name)?
                    .as_str()
                    .and_then(crate::timestamp::parse_micros)
            };
            let version = Version::new(ts("updated"), ts("created"), commit);
            out.push((version, item));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locator_sits_beside_the_hash_index() {
        assert_eq!(
            default_locator_path("s3://b/catalog/warehouse/"),
            "s3://b/catalog/warehouse_id_locator.parquet"
        );
    }
}
