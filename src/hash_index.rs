//! The hash index: which STAC ids the warehouse already holds.
//!
//! One Parquet file with one column, `id_hash` (`fixed_size_binary(16)`), holding the xxh3-128
//! digest (seed 42, big-endian canonical form) of every ingested item id, one row per distinct
//! id, sorted ascending bytewise, zstd-compressed — byte-compatible with the Python tool. Its
//! default place is `{warehouse}_id_hashes.parquet` beside the warehouse
//! ([`default_index_path`]).
//!
//! Design decisions:
//! * **Streaming merge.** The production index has ~40 M rows (640 MB of digests).
//!   [`merge_into_index`] never loads it: it reads the old file one record batch at a time,
//!   merges it with the (sorted, deduplicated) new digests and writes the result as it goes, so
//!   memory is O(new) plus one batch. [`read_index`], used for membership tests, does load the
//!   whole index into a sorted `Vec` (O(n) memory, 16 bytes per id) — binary search on it is the
//!   fastest membership test there is, and a delta run needs all of it anyway.
//! * **Replace, don't patch.** The merged file is written to `<index>.tmp-<uuid>` (a name that
//!   does not end in `.parquet`, so nothing mistakes it for data) and then renamed over the
//!   index: readers see the old file or the new one, never a half-written one (on S3 the rename is
//!   a server-side copy, which replaces the object atomically). A failed merge leaves the old
//!   index untouched.
//! * **Single writer.** The index is updated only after a successful catalog commit, by the
//!   process holding the catalog lock ([`crate::lock`]); two concurrent merges would lose ids.
//! * **Stamped.** Every index we write records, in its Parquet key-value metadata, the table
//!   (uuid) and the snapshot whose ids it holds ([`IndexStamp`]; the Python tool ignores the
//!   entries). A run reconciles the index with the catalog before trusting it
//!   ([`reconcile`]): a crash between a commit and the index update leaves the stamp behind,
//!   and the missing ids are added from the files those snapshots added; a gap that may have
//!   removed ids (gc, repair, foreign operations), an unstamped or unreadable index, or one of
//!   another table is rebuilt from the live files' `id` columns ([`rebuild`]). So an id the
//!   catalog holds is never re-ingested because the index missed it, and an id it does not hold
//!   is never skipped because the index has it.
//! * **Lenient reading.** Python-written files are accepted with `id_hash` typed
//!   `fixed_size_binary(16)`, `binary` or `large_binary` (each value 16 bytes), snappy or zstd;
//!   null rows are skipped. An unsorted old index (never written by either tool, but possible by
//!   hand) is detected during the merge and handled by a slower in-memory merge.
//! * **CPU off the runtime.** Sorting the new digests and post-processing a loaded index run on
//!   the blocking pool; Parquet encoding/decoding happens one batch (~1 MiB) per await point.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::async_writer::{AsyncArrowWriter, ParquetObjectWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use iceberg::spec::Operation;
use iceberg::table::Table;
use parquet::file::metadata::KeyValue;

use crate::catalog::prune::Pruner;
use crate::error::{Error, Result};
use crate::store::Location;

/// A 16-byte id digest.
pub type IdHash = [u8; 16];

/// The index's only column.
pub const ID_HASH_COLUMN: &str = "id_hash";

/// The xxh3-128 seed the Python tool uses.
pub const HASH_SEED: u64 = 42;

/// Rows per record batch read or written.
const BATCH_ROWS: usize = 64 * 1024;

/// Rows per row group (pyarrow's default).
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Key-value metadata key of the table uuid the index belongs to.
pub const META_TABLE_UUID: &str = "earthcatalog.table-uuid";
/// Key-value metadata key of the snapshot whose ids the index holds.
pub const META_SNAPSHOT_ID: &str = "earthcatalog.snapshot-id";

/// Data files whose ids are read at once while rebuilding.
const REBUILD_CONCURRENCY: usize = 16;

/// Which catalog state an index reflects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexStamp {
    /// The table's uuid.
    pub table_uuid: String,
    /// The snapshot whose ids the index holds.
    pub snapshot_id: i64,
}

impl IndexStamp {
    /// The stamp of a table's current snapshot (`None` for a table without snapshots).
    pub fn of(table: &Table) -> Option<Self> {
        let md = table.metadata();
        md.current_snapshot_id().map(|snapshot_id| Self {
            table_uuid: md.uuid().to_string(),
            snapshot_id,
        })
    }

    fn key_values(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new(META_TABLE_UUID.to_string(), self.table_uuid.clone()),
            KeyValue::new(META_SNAPSHOT_ID.to_string(), self.snapshot_id.to_string()),
        ]
    }

    fn from_key_values(kv: Option<&Vec<KeyValue>>) -> Option<Self> {
        let get = |k: &str| {
            kv?.iter()
                .find(|e| e.key == k)
                .and_then(|e| e.value.clone())
        };
        Some(Self {
            table_uuid: get(META_TABLE_UUID)?,
            snapshot_id: get(META_SNAPSHOT_ID)?.parse().ok()?,
        })
    }
}

/// What the index file's footer says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexInfo {
    /// Rows (distinct ids).
    pub rows: u64,
    /// Object size in bytes.
    pub bytes: u64,
    /// The catalog state it reflects, when stamped.
    pub stamp: Option<IndexStamp>,
}

/// The digest of one item id: xxh3-128 with seed 42 of its UTF-8 bytes, big-endian.
pub fn hash_id(id: &str) -> IdHash {
    xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), HASH_SEED).to_be_bytes()
}

/// The item id an inventory key stands for before it is fetched: the key's basename minus
/// `suffix` (the Python tool's convention; after fetching, the item's own `id` is indexed).
pub fn key_item_id<'a>(key: &'a str, suffix: &str) -> &'a str {
    let base = key.rsplit('/').next().unwrap_or(key);
    base.strip_suffix(suffix).unwrap_or(base)
}

/// The ids an index holds, loaded for membership tests: the sorted digests (16 bytes per id)
/// and a table of where each 20-bit prefix starts (4 MiB). The digests are uniform, so a probe
/// searches a run of ~n / 2^20 digests (~40 at 43 M ids) instead of the whole array, whose first
/// ~20 binary-search steps are cache misses (see the daily-loop benchmark in docs/benchmarks.md).
#[derive(Debug, Clone, Default)]
pub struct KnownIds {
    hashes: Vec<IdHash>,
    starts: Vec<u32>,
}

/// Bits of the prefix table of [`KnownIds`].
const PREFIX_BITS: u32 = 20;

fn prefix(h: &IdHash) -> usize {
    (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) >> (32 - PREFIX_BITS)) as usize
}

impl KnownIds {
    /// Load the index at `location` (empty when there is none).
    pub async fn load(location: &Location) -> Result<Self> {
        let hashes = read_index(location).await?;
        Ok(Self::from_sorted(hashes))
    }

    /// From sorted, deduplicated digests.
    pub fn from_sorted(hashes: Vec<IdHash>) -> Self {
        let mut starts = vec![0u32; (1usize << PREFIX_BITS) + 1];
        if u32::try_from(hashes.len()).is_err() {
            // More than 4 G ids: fall back to the plain binary search.
            return Self {
                hashes,
                starts: Vec::new(),
            };
        }
        let mut at = 0usize;
        for (p, start) in starts.iter_mut().enumerate() {
            while at < hashes.len() && prefix(&hashes[at]) < p {
                at += 1;
            }
            *start = at as u32;
        }
        Self { hashes, starts }
    }

    /// Whether the index holds this digest.
    pub fn contains(&self, hash: &IdHash) -> bool {
        if self.starts.is_empty() {
            return self.hashes.binary_search(hash).is_ok();
        }
        let p = prefix(hash);
        let (lo, hi) = (self.starts[p] as usize, self.starts[p + 1] as usize);
        self.hashes[lo..hi].binary_search(hash).is_ok()
    }

    /// Membership of many digests at once, `out[i]` for `hashes[i]`: the probes' memory is
    /// requested ahead (prefetch) in groups, so their cache misses overlap instead of queueing
    /// one after another (the index is far larger than the caches at production size).
    pub fn contains_batch(&self, hashes: &[IdHash], out: &mut Vec<bool>) {
        out.clear();
        out.reserve(hashes.len());
        if self.starts.is_empty() {
            out.extend(hashes.iter().map(|h| self.contains(h)));
            return;
        }
        const GROUP: usize = 32;
        let mut ranges = [(0usize, 0usize); GROUP];
        for group in hashes.chunks(GROUP) {
            for (slot, h) in ranges.iter_mut().zip(group) {
                let p = prefix(h);
                *slot = (self.starts[p] as usize, self.starts[p + 1] as usize);
                if slot.0 < self.hashes.len() {
                    prefetch(&self.hashes[slot.0]);
                }
            }
            for (&(lo, hi), h) in ranges.iter().zip(group) {
                out.push(self.hashes[lo..hi].binary_search(h).is_ok());
            }
        }
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Ask the CPU to bring `value`'s cache line in (a hint; no effect on results).
#[inline]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetching is a hint that never faults; the pointer comes from a reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// `{warehouse without trailing slash}_id_hashes.parquet`, the Python tool's default.
pub fn default_index_path(warehouse_url: &str) -> String {
    format!("{}_id_hashes.parquet", warehouse_url.trim_end_matches('/'))
}

/// Number of rows in the index, from the Parquet footer only (a few range reads); `None` when
/// there is no index.
pub async fn index_len(location: &Location) -> Result<Option<u64>> {
    Ok(index_info(location).await?.map(|i| i.rows))
}

/// Rows, size and stamp of the index, from its footer; `None` when there is no index.
pub async fn index_info(location: &Location) -> Result<Option<IndexInfo>> {
    let Some((builder, bytes)) = open_sized(location).await? else {
        return Ok(None);
    };
    let fm = builder.metadata().file_metadata();
    Ok(Some(IndexInfo {
        rows: u64::try_from(fm.num_rows()).unwrap_or(0),
        bytes,
        stamp: IndexStamp::from_key_values(fm.key_value_metadata()),
    }))
}

/// Load the whole index as a sorted, deduplicated `Vec` (O(n) memory: 16 bytes per id); empty
/// when there is no index. Use `binary_search` for membership.
pub async fn read_index(location: &Location) -> Result<Vec<IdHash>> {
    let Some((rows, stream)) = open_stream(location).await? else {
        return Ok(Vec::new());
    };
    let mut all = Vec::with_capacity(usize::try_from(rows).unwrap_or(0));
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.try_next().await? {
        all.extend_from_slice(&chunk);
    }
    sort_dedup(all, location.url()).await
}

/// Write `hashes` (any order, duplicates allowed) as the whole index, replacing any existing
/// one, stamped with `stamp`. Returns the number of rows written.
pub async fn write_index(
    location: &Location,
    hashes: Vec<IdHash>,
    stamp: Option<&IndexStamp>,
) -> Result<u64> {
    let hashes = sort_dedup(hashes, location.url()).await?;
    let empty = futures::stream::empty();
    match merge_write(location, empty, &hashes, Change::Add, stamp).await? {
        Merged::Done { total, .. } => Ok(total),
        Merged::Unsorted => unreachable_unsorted(location),
    }
}

/// Add `new` digests (any order, duplicates allowed) to the index, creating it if missing, and
/// stamp it with `stamp`. Returns `(added, total)`: how many of `new` were not in the index
/// yet, and the row count of the resulting index. Streams the existing index (see the module
/// docs). An empty `new` without a stamp leaves the index untouched (and does not create it).
pub async fn merge_into_index(
    location: &Location,
    new: Vec<IdHash>,
    stamp: Option<&IndexStamp>,
) -> Result<(u64, u64)> {
    let new = sort_dedup(new, location.url()).await?;
    if new.is_empty() && stamp.is_none() {
        return Ok((0, index_len(location).await?.unwrap_or(0)));
    }
    let (added, total) = change(location, &new, Change::Add, stamp).await?;
    Ok((added, total))
}

/// Remove `gone` digests from the index (ids whose items left the catalog) and stamp it.
/// Returns `(removed, total)`.
pub async fn remove_from_index(
    location: &Location,
    gone: Vec<IdHash>,
    stamp: Option<&IndexStamp>,
) -> Result<(u64, u64)> {
    let gone = sort_dedup(gone, location.url()).await?;
    change(location, &gone, Change::Remove, stamp).await
}

/// Stream-merge `set` into (or out of) the index.
async fn change(
    location: &Location,
    set: &[IdHash],
    how: Change,
    stamp: Option<&IndexStamp>,
) -> Result<(u64, u64)> {
    let Some((_, old)) = open_stream(location).await? else {
        let empty = futures::stream::empty();
        return match merge_write(location, empty, set, how, stamp).await? {
            Merged::Done { added, total } => Ok((added, total)),
            Merged::Unsorted => unreachable_unsorted(location),
        };
    };
    match merge_write(location, old, set, how, stamp).await? {
        Merged::Done { added, total } => Ok((added, total)),
        Merged::Unsorted => {
            tracing::warn!(
                index = %location.url(),
                "the hash index is not sorted; merging it in memory"
            );
            let old = read_index(location).await?;
            let old = futures::stream::iter([Ok(old)]);
            match merge_write(location, old, set, how, stamp).await? {
                Merged::Done { added, total } => Ok((added, total)),
                Merged::Unsorted => unreachable_unsorted(location),
            }
        }
    }
}

fn unreachable_unsorted<T>(location: &Location) -> Result<T> {
    Err(Error::Parse {
        location: location.url().to_string(),
        reason: "hash index input unexpectedly unsorted".to_string(),
    })
}

/// Whether [`merge_write`] adds its set to the index or removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Add,
    Remove,
}

/// What [`merge_write`] did.
enum Merged {
    /// The index was replaced; `added` counts the digests of the set that changed the index
    /// (added, or removed).
    Done { added: u64, total: u64 },
    /// The old index turned out not to be sorted; nothing was changed.
    Unsorted,
}

/// Merge the sorted `old` chunks with sorted, deduplicated `new` (added, or removed, as `how`
/// says) into a temporary object stamped with `stamp`, then move it over the index.
async fn merge_write<S>(
    location: &Location,
    old: S,
    new: &[IdHash],
    how: Change,
    stamp: Option<&IndexStamp>,
) -> Result<Merged>
where
    S: Stream<Item = Result<Vec<IdHash>>>,
{
    let mut old = std::pin::pin!(old);
    let tmp = Path::from(format!(
        "{}.tmp-{}",
        location.prefix().as_ref(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut writer = IndexWriter::create(location, tmp.clone(), stamp)?;
    let mut ni = 0usize;
    let mut added = 0u64;
    let mut last_old: Option<IdHash> = None;
    loop {
        let chunk = match old.next().await {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                writer.abort().await;
                return Err(e);
            }
        };
        for v in chunk {
            if last_old.is_some_and(|l| v < l) {
                writer.abort().await;
                return Ok(Merged::Unsorted);
            }
            last_old = Some(v);
            while ni < new.len() && new[ni] < v {
                if how == Change::Add {
                    writer.push(new[ni]);
                    added += 1;
                }
                ni += 1;
            }
            if ni < new.len() && new[ni] == v {
                ni += 1;
                if how == Change::Remove {
                    added += 1;
                    continue;
                }
            }
            writer.push(v);
        }
        if let Err(e) = writer.drain(false).await {
            writer.abort().await;
            return Err(e);
        }
    }
    let rest = if how == Change::Add { &new[ni..] } else { &[] };
    for chunk in rest.chunks(BATCH_ROWS) {
        for &v in chunk {
            writer.push(v);
            added += 1;
        }
        if let Err(e) = writer.drain(false).await {
            writer.abort().await;
            return Err(e);
        }
    }
    let total = match writer.finish().await {
        Ok(total) => total,
        Err(e) => {
            let _ = location.store().delete(&tmp).await;
            return Err(e);
        }
    };
    if let Err(e) = location.store().rename(&tmp, location.prefix()).await {
        let _ = location.store().delete(&tmp).await;
        return Err(Error::store(location.url(), e));
    }
    Ok(Merged::Done { added, total })
}

/// A Parquet writer of sorted digests that drops consecutive duplicates.
struct IndexWriter {
    inner: AsyncArrowWriter<ParquetObjectWriter>,
    schema: SchemaRef,
    buf: Vec<IdHash>,
    last: Option<IdHash>,
    rows: u64,
    url: String,
}

impl IndexWriter {
    fn create(location: &Location, key: Path, stamp: Option<&IndexStamp>) -> Result<Self> {
        let schema = index_schema();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_dictionary_enabled(false)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(stamp.map(IndexStamp::key_values))
            .build();
        let url = location.url().to_string();
        let sink = ParquetObjectWriter::new(location.store().clone(), key);
        let inner = AsyncArrowWriter::try_new(sink, schema.clone(), Some(props))
            .map_err(|e| Error::parquet(&url, e))?;
        Ok(Self {
            inner,
            schema,
            buf: Vec::with_capacity(BATCH_ROWS),
            last: None,
            rows: 0,
            url,
        })
    }

    fn push(&mut self, v: IdHash) {
        if self.last != Some(v) {
            self.buf.push(v);
            self.last = Some(v);
            self.rows += 1;
        }
    }

    /// Write buffered digests in batches; keep a partial batch unless `all`.
    async fn drain(&mut self, all: bool) -> Result<()> {
        let full = if all {
            self.buf.len()
        } else {
            self.buf.len() / BATCH_ROWS * BATCH_ROWS
        };
        for chunk in self.buf[..full].chunks(BATCH_ROWS) {
            let batch = hashes_batch(&self.schema, chunk, &self.url)?;
            self.inner
                .write(&batch)
                .await
                .map_err(|e| Error::parquet(&self.url, e))?;
        }
        self.buf.drain(..full);
        Ok(())
    }

    async fn finish(mut self) -> Result<u64> {
        self.drain(true).await?;
        self.inner
            .close()
            .await
            .map_err(|e| Error::parquet(&self.url, e))?;
        Ok(self.rows)
    }

    /// Give up: abort the upload (nothing becomes visible at the temporary key).
    async fn abort(self) {
        let mut upload = self.inner.into_inner().into_inner();
        if let Err(e) = upload.abort().await {
            tracing::warn!(index = %self.url, error = %e, "cannot abort a hash index upload");
        }
    }
}

fn index_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        ID_HASH_COLUMN,
        DataType::FixedSizeBinary(16),
        true,
    )]))
}

fn hashes_batch(schema: &SchemaRef, hashes: &[IdHash], url: &str) -> Result<RecordBatch> {
    let values = arrow_buffer::Buffer::from(hashes.concat());
    let array = FixedSizeBinaryArray::try_new(16, values, None)
        .map_err(|e| Error::arrow(format!("hash index {url}"), e))?;
    RecordBatch::try_new(schema.clone(), vec![Arc::new(array) as ArrayRef])
        .map_err(|e| Error::arrow(format!("hash index {url}"), e))
}

/// Open the index for reading; `None` when it does not exist.
async fn open(
    location: &Location,
) -> Result<Option<ParquetRecordBatchStreamBuilder<ParquetObjectReader>>> {
    Ok(open_sized(location).await?.map(|(b, _)| b))
}

/// [`open`], with the object's size.
async fn open_sized(
    location: &Location,
) -> Result<Option<(ParquetRecordBatchStreamBuilder<ParquetObjectReader>, u64)>> {
    let meta = match location.store().head(location.prefix()).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store(location.url(), e)),
    };
    let reader = ParquetObjectReader::new(location.store().clone(), location.prefix().clone())
        .with_file_size(meta.size);
    match ParquetRecordBatchStreamBuilder::new(reader).await {
        Ok(builder) => Ok(Some((builder, meta.size))),
        // Deleted between the HEAD and the footer read.
        Err(ParquetError::External(e))
            if matches!(
                e.downcast_ref::<object_store::Error>(),
                Some(object_store::Error::NotFound { .. })
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::parquet(location.url(), e)),
    }
}

/// The index's row count (from the footer) and its digests, one `Vec` per record batch, in file
/// order; `None` when there is no index.
async fn open_stream(
    location: &Location,
) -> Result<Option<(u64, impl Stream<Item = Result<Vec<IdHash>>> + use<>)>> {
    let Some(builder) = open(location).await? else {
        return Ok(None);
    };
    let url = location.url().to_string();
    let column = builder
        .schema()
        .index_of(ID_HASH_COLUMN)
        .map_err(|_| Error::Parse {
            location: url.clone(),
            reason: format!("the hash index has no {ID_HASH_COLUMN:?} column"),
        })?;
    let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let stream = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| Error::parquet(&url, e))?;
    let stream = stream.map(move |batch| {
        let batch = batch.map_err(|e| Error::parquet(&url, e))?;
        let mut out = Vec::with_capacity(batch.num_rows());
        extend_hashes(batch.column(0), &mut out, &url)?;
        Ok(out)
    });
    Ok(Some((rows, stream)))
}

/// Append the non-null digests of an `id_hash` column (fixed-size or variable binary).
fn extend_hashes(col: &ArrayRef, out: &mut Vec<IdHash>, url: &str) -> Result<()> {
    let bad = |reason: String| Error::Parse {
        location: url.to_string(),
        reason,
    };
    let mut push = |v: &[u8]| -> Result<()> {
        let h: IdHash = v.try_into().map_err(|_| {
            bad(format!(
                "{ID_HASH_COLUMN} value of {} bytes (expected 16)",
                v.len()
            ))
        })?;
        out.push(h);
        Ok(())
    };
    match col.data_type() {
        DataType::FixedSizeBinary(16) => col
            .as_fixed_size_binary()
            .iter()
            .flatten()
            .try_for_each(&mut push),
        DataType::Binary => col
            .as_binary::<i32>()
            .iter()
            .flatten()
            .try_for_each(&mut push),
        DataType::LargeBinary => col
            .as_binary::<i64>()
            .iter()
            .flatten()
            .try_for_each(&mut push),
        DataType::BinaryView => col
            .as_binary_view()
            .iter()
            .flatten()
            .try_for_each(&mut push),
        other => Err(bad(format!(
            "{ID_HASH_COLUMN} has type {other} (expected fixed_size_binary(16) or binary)"
        ))),
    }
}

/// Sort and deduplicate, on the blocking pool when it is big.
async fn sort_dedup(mut v: Vec<IdHash>, url: &str) -> Result<Vec<IdHash>> {
    fn work(mut v: Vec<IdHash>) -> Vec<IdHash> {
        if !v.is_sorted() {
            v.sort_unstable();
        }
        v.dedup();
        v
    }
    if v.len() <= BATCH_ROWS {
        v = work(v);
        return Ok(v);
    }
    tokio::task::spawn_blocking(move || work(v))
        .await
        .map_err(|e| Error::task(format!("sorting digests for {url}"), e))
}

/// What [`reconcile`] did to bring the index up to the catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Reconciled {
    /// The index already reflected the current snapshot (or the table has none and there is
    /// no index).
    Current,
    /// Snapshots committed after the index's stamp only added files: their ids were added.
    Extended {
        /// Snapshots the index was behind by.
        snapshots: usize,
        /// Ids added.
        added: u64,
        /// Rows after.
        total: u64,
    },
    /// The index was rebuilt from the live files' `id` columns.
    Rebuilt {
        /// Why.
        reason: String,
        /// Rows after.
        total: u64,
    },
}

/// Bring the index at `location` up to `table`'s current snapshot (see the module docs). The
/// caller holds the catalog lock.
pub async fn reconcile(table: &Table, location: &Location) -> Result<Reconciled> {
    let current = IndexStamp::of(table);
    let info = match index_info(location).await {
        Ok(info) => info,
        Err(e) => {
            return rebuild_because(table, location, format!("the index cannot be read: {e}"))
                .await;
        }
    };
    let Some(current) = current else {
        // No snapshot: nothing is registered, whatever an index says.
        return match info {
            Some(i) if i.rows > 0 => {
                rebuild_because(table, location, "the table has no snapshot".into()).await
            }
            _ => Ok(Reconciled::Current),
        };
    };
    let Some(info) = info else {
        return rebuild_because(table, location, "there is no index yet".into()).await;
    };
    let Some(stamp) = info.stamp else {
        return rebuild_because(
            table,
            location,
            "the index does not record which snapshot it reflects (written by the Python tool \
             or an older earthcatalog)"
                .into(),
        )
        .await;
    };
    if stamp.table_uuid != current.table_uuid {
        return rebuild_because(
            table,
            location,
            format!("the index belongs to table {}", stamp.table_uuid),
        )
        .await;
    }
    if stamp.snapshot_id == current.snapshot_id {
        return Ok(Reconciled::Current);
    }
    // The snapshots after the stamp, newest first, down to the stamped one.
    let md = table.metadata();
    let mut gap = std::collections::HashSet::new();
    let mut at = Some(current.snapshot_id);
    loop {
        let Some(id) = at else {
            return rebuild_because(
                table,
                location,
                format!(
                    "the index reflects snapshot {} which is not in the table's history",
                    stamp.snapshot_id
                ),
            )
            .await;
        };
        if id == stamp.snapshot_id {
            break;
        }
        let Some(snapshot) = md.snapshot_by_id(id) else {
            return rebuild_because(
                table,
                location,
                format!("snapshot {id} of the table's history is missing"),
            )
            .await;
        };
        let summary = snapshot.summary();
        let by = summary
            .additional_properties
            .get("earthcatalog.operation")
            .map(String::as_str);
        let keeps_ids = match summary.operation {
            Operation::Append => true,
            // Compaction keeps one row per id, and a backfill commit merges its rows into
            // the table's: no id leaves the table.
            Operation::Replace => matches!(by, Some("compact" | "backfill")),
            _ => false,
        };
        if !keeps_ids {
            return rebuild_because(
                table,
                location,
                format!(
                    "snapshot {id} ({}{}) may have removed ids",
                    summary.operation.as_str(),
                    by.map(|b| format!(", {b}")).unwrap_or_default()
                ),
            )
            .await;
        }
        gap.insert(id);
        at = snapshot.parent_snapshot_id();
    }
    // Ids of the live files those snapshots added (compaction outputs included: they hold the
    // ids of the files they replaced).
    let files = crate::catalog::live::scan(table, &Pruner::default())
        .await?
        .files;
    let added: Vec<(String, u64)> = files
        .into_iter()
        .filter(|f| gap.contains(&f.snapshot_id))
        .map(|f| (f.path, f.bytes))
        .collect();
    let ids = ids_of_files(&added).await?;
    let (n, total) = merge_into_index(location, ids, Some(&current)).await?;
    Ok(Reconciled::Extended {
        snapshots: gap.len(),
        added: n,
        total,
    })
}

async fn rebuild_because(table: &Table, location: &Location, reason: String) -> Result<Reconciled> {
    tracing::info!(index = %location.url(), %reason, "rebuilding the hash index");
    let total = rebuild(table, location).await?;
    Ok(Reconciled::Rebuilt { reason, total })
}

/// Rebuild the index from the `id` columns of the table's live files (read with range requests,
/// nothing else of the files), stamped with the current snapshot. Returns the row count. Memory:
/// 16 bytes per stored row (ids of every cell) until they are deduplicated.
pub async fn rebuild(table: &Table, location: &Location) -> Result<u64> {
    let files: Vec<(String, u64)> = crate::catalog::live::scan(table, &Pruner::default())
        .await?
        .files
        .into_iter()
        .map(|f| (f.path, f.bytes))
        .collect();
    let ids = ids_of_files(&files).await?;
    write_index(location, ids, IndexStamp::of(table).as_ref()).await
}

/// The digests of every id in the given data files (path, size), unsorted.
pub async fn ids_of_files(files: &[(String, u64)]) -> Result<Vec<IdHash>> {
    let per_file: Vec<Vec<IdHash>> = futures::stream::iter(files.iter().cloned())
        .map(|(path, size)| async move { file_ids(&path, size).await })
        .buffer_unordered(REBUILD_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(per_file.concat())
}

/// Data files up to this size are read with one GET and decoded in memory; larger ones
/// (compacted files) through ranged reads of the footer and the `id` column only. Measured on
/// 39,253 res-2 files / 999,338 rows: 13.0 s with ranged reads of every file (two or three
/// blocking-pool hops per file, and the statistics and Arrow schema of all 33 columns
/// decoded), 6.3-7.7 s with this (half the CPU time).
const WHOLE_FILE_BYTES: u64 = 2 << 20;

/// The digests of the `id` column of one data file (`size`: its length when known, else 0).
pub(crate) async fn file_ids(path: &str, size: u64) -> Result<Vec<IdHash>> {
    let loc = Location::parse(path)?;
    let no_id = || Error::Inconsistent(format!("data file {path} has no `id` column"));
    let mut out = Vec::new();
    let mut add = |batch: RecordBatch| -> Result<()> {
        let strings = arrow_cast::cast(batch.column(0), &DataType::Utf8)
            .map_err(|e| Error::arrow(format!("the id column of {path}"), e))?;
        out.extend(strings.as_string::<i32>().iter().flatten().map(hash_id));
        Ok(())
    };
    if size > 0 && size <= WHOLE_FILE_BYTES {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let bytes = loc.get_bytes().await?;
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            bytes,
            crate::geoparquet::read::lean_reader_options(),
        )
        .map_err(|e| Error::parquet(path, e))?;
        let column = builder.schema().index_of("id").map_err(|_| no_id())?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| Error::parquet(path, e))?;
        for batch in reader {
            add(batch.map_err(|e| Error::arrow(format!("reading {path}"), e))?)?;
        }
        return Ok(out);
    }
    let mut reader = ParquetObjectReader::new(loc.store().clone(), loc.prefix().clone());
    if size > 0 {
        reader = reader.with_file_size(size);
    }
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(
        reader,
        crate::geoparquet::read::lean_reader_options(),
    )
    .await
    .map_err(|e| Error::parquet(path, e))?;
    let column = builder.schema().index_of("id").map_err(|_| no_id())?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| Error::parquet(path, e))?;
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| Error::parquet(path, e))?
    {
        add(batch)?;
    }
    Ok(out)
}

/// How the index and the table's ids differ ([`verify`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// Distinct ids in the table's live files.
    pub table_ids: u64,
    /// Rows of the index.
    pub index_ids: u64,
    /// Ids in the table that the index lacks (they would be fetched again).
    pub missing_from_index: u64,
    /// Digests in the index that no live row has (such items would be skipped).
    pub not_in_table: u64,
    /// Up to [`VERIFY_SAMPLE`] ids missing from the index.
    pub sample_missing: Vec<String>,
    /// Up to [`VERIFY_SAMPLE`] digests (hex) in the index but not the table.
    pub sample_extra: Vec<String>,
    /// The index's stamp.
    pub stamp: Option<IndexStamp>,
    /// The table's current snapshot.
    pub current_snapshot: Option<i64>,
}

/// Examples listed by [`verify`].
pub const VERIFY_SAMPLE: usize = 10;

/// Compare the index with the ids of the table's live files (read like [`rebuild`]).
pub async fn verify(table: &Table, location: &Location) -> Result<Verification> {
    let files = crate::catalog::live::scan(table, &Pruner::default())
        .await?
        .files;
    let mut by_hash: Vec<(IdHash, String)> = Vec::new();
    let per_file: Vec<Vec<(IdHash, String)>> = futures::stream::iter(files)
        .map(|f| async move { file_id_pairs(&f.path, f.bytes).await })
        .buffer_unordered(REBUILD_CONCURRENCY)
        .try_collect()
        .await?;
    for v in per_file {
        by_hash.extend(v);
    }
    by_hash.sort_unstable_by_key(|a| a.0);
    by_hash.dedup_by(|a, b| a.0 == b.0);
    let index = read_index(location).await?;
    let info = index_info(location).await?;
    let mut v = Verification {
        table_ids: by_hash.len() as u64,
        index_ids: index.len() as u64,
        stamp: info.and_then(|i| i.stamp),
        current_snapshot: table.metadata().current_snapshot_id(),
        ..Default::default()
    };
    let (mut i, mut j) = (0, 0);
    while i < by_hash.len() || j < index.len() {
        let ord = match (by_hash.get(i), index.get(j)) {
            (Some(a), Some(b)) => a.0.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                v.missing_from_index += 1;
                if v.sample_missing.len() < VERIFY_SAMPLE {
                    v.sample_missing.push(by_hash[i].1.clone());
                }
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                v.not_in_table += 1;
                if v.sample_extra.len() < VERIFY_SAMPLE {
                    v.sample_extra
                        .push(index[j].iter().map(|b| format!("{b:02x}")).collect());
                }
                j += 1;
            }
        }
    }
    Ok(v)
}

/// (digest, id) of every id in one data file.
async fn file_id_pairs(path: &str, size: u64) -> Result<Vec<(IdHash, String)>> {
    // Small enough for a verification pass: the ids are kept only until deduplicated.
    let loc = Location::parse(path)?;
    let bytes = loc.get_bytes().await?;
    let _ = size;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| Error::parquet(path, e))?;
    let column = reader
        .schema()
        .index_of("id")
        .map_err(|_| Error::Inconsistent(format!("data file {path} has no `id` column")))?;
    let mask = ProjectionMask::roots(reader.parquet_schema(), [column]);
    let reader = reader
        .with_projection(mask)
        .build()
        .map_err(|e| Error::parquet(path, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::arrow(path, e))?;
        let strings = arrow_cast::cast(batch.column(0), &DataType::Utf8)
            .map_err(|e| Error::arrow(format!("the id column of {path}"), e))?;
        for id in strings.as_string::<i32>().iter().flatten() {
            out.push((hash_id(id), id.to_string()));
        }
    }
    Ok(out)
}

/// The schema of a delta file (and of the Python tool's inventory cache).
pub fn delta_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("id_hash", DataType::FixedSizeBinary(16), true),
    ]))
}

/// One batch of delta rows.
pub fn delta_batch(rows: &[(String, String, IdHash)], url: &str) -> Result<RecordBatch> {
    let buckets = StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()));
    let keys = StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()));
    let values = arrow_buffer::Buffer::from(rows.iter().flat_map(|r| r.2).collect::<Vec<u8>>());
    let hashes = FixedSizeBinaryArray::try_new(16, values, None)
        .map_err(|e| Error::arrow(format!("delta {url}"), e))?;
    RecordBatch::try_new(
        delta_schema(),
        vec![
            Arc::new(buckets) as ArrayRef,
            Arc::new(keys) as ArrayRef,
            Arc::new(hashes) as ArrayRef,
        ],
    )
    .map_err(|e| Error::arrow(format!("delta {url}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::ArrowWriter;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn hex(h: &IdHash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mem(name: &str) -> Location {
        Location::parse(&format!(
            "memory://hash-index-{name}/warehouse_id_hashes.parquet"
        ))
        .unwrap()
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<IdHash> {
        range.map(|i| hash_id(&format!("item-{i}"))).collect()
    }

    /// The file's `(schema type, compression, rows, values)` read with the sync reader.
    async fn inspect(location: &Location) -> (DataType, Compression, usize, Vec<IdHash>) {
        let bytes = location.get_bytes().await.unwrap();
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let compression = reader.metadata().row_group(0).column(0).compression();
        let rows = reader.metadata().file_metadata().num_rows() as usize;
        let batches = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes, 1024)
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap();
        let dt = batches[0].schema().field(0).data_type().clone();
        let mut values = Vec::new();
        for b in &batches {
            extend_hashes(b.column(0), &mut values, "test").unwrap();
        }
        (dt, compression, rows, values)
    }

    #[test]
    fn golden_digests_match_python() {
        for (id, want) in [
            ("item-1", "531fdc248680ebb5a14d3481f4a2b986"),
            ("item-2", "555a18723a77626cbd739c0343edb952"),
            ("a", "28df5945863b24b74c437dd47f0716f4"),
            ("", "16c20acd33f7af2f3c1d09e9fe249164"),
        ] {
            assert_eq!(hex(&hash_id(id)), want, "{id:?}");
        }
        assert_ne!(hash_id("item-1"), hash_id("item-2"));
    }

    #[test]
    fn key_ids_are_basenames_without_the_suffix() {
        assert_eq!(key_item_id("a/b/X_1.stac.json", ".stac.json"), "X_1");
        assert_eq!(key_item_id("X_1.stac.json", ".stac.json"), "X_1");
        assert_eq!(key_item_id("a/b/c.json", ".stac.json"), "c.json");
        let known = KnownIds::from_sorted({
            let mut v = ids(0..10);
            v.sort_unstable();
            v
        });
        assert!(known.contains(&hash_id("item-3")));
        assert!(!known.contains(&hash_id("item-30")));
        // The prefix table agrees with a plain search everywhere, edges included.
        let mut many = ids(0..20_000);
        many.sort_unstable();
        let known = KnownIds::from_sorted(many.clone());
        for h in &many {
            assert!(known.contains(h));
        }
        for i in 20_000..30_000 {
            assert!(!known.contains(&hash_id(&format!("item-{i}"))));
        }
        assert!(!known.contains(&[0u8; 16]));
        assert!(!known.contains(&[0xffu8; 16]));
        let probes: Vec<IdHash> = (0..30_000).map(|i| hash_id(&format!("item-{i}"))).collect();
        let mut got = Vec::new();
        known.contains_batch(&probes, &mut got);
        let want: Vec<bool> = probes.iter().map(|h| known.contains(h)).collect();
        assert_eq!(got, want);
        assert_eq!(got.iter().filter(|b| **b).count(), 20_000);
        assert!(!KnownIds::default().contains(&[0u8; 16]));
    }

    #[test]
    fn default_path_sits_beside_the_warehouse() {
        assert_eq!(
            default_index_path("s3://bucket/stac/warehouse/"),
            "s3://bucket/stac/warehouse_id_hashes.parquet"
        );
        assert_eq!(default_index_path("/tmp/wh"), "/tmp/wh_id_hashes.parquet");
    }

    #[tokio::test]
    async fn missing_index_reads_empty() {
        let loc = mem("missing");
        assert!(read_index(&loc).await.unwrap().is_empty());
        assert_eq!(index_len(&loc).await.unwrap(), None);
        // An empty merge is a no-op and does not create the index.
        assert_eq!(merge_into_index(&loc, vec![], None).await.unwrap(), (0, 0));
        assert!(loc.get_bytes_opt().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn merge_creates_a_sorted_zstd_index() {
        let loc = mem("create");
        let mut new = ids(0..100);
        new.extend(ids(0..10)); // duplicates count once
        new.reverse();
        assert_eq!(merge_into_index(&loc, new, None).await.unwrap(), (100, 100));
        let (dt, compression, rows, values) = inspect(&loc).await;
        assert_eq!(dt, DataType::FixedSizeBinary(16));
        assert!(
            matches!(compression, Compression::ZSTD(_)),
            "{compression:?}"
        );
        assert_eq!(rows, 100);
        let mut want = ids(0..100);
        want.sort();
        assert_eq!(values, want);
        assert_eq!(index_len(&loc).await.unwrap(), Some(100));
        assert_eq!(read_index(&loc).await.unwrap(), want);
        // Nothing but the index is left in the store.
        assert_only_the_index_is_stored(&loc).await;
    }

    /// Nothing but the index object is left in the store (no temporaries).
    async fn assert_only_the_index_is_stored(loc: &Location) {
        let keys: Vec<_> = loc
            .store()
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(keys, ["warehouse_id_hashes.parquet"]);
    }

    #[tokio::test]
    async fn merge_counts_only_new_ids() {
        let loc = mem("counts");
        assert_eq!(
            merge_into_index(&loc, ids(0..3), None).await.unwrap(),
            (3, 3)
        );
        assert_eq!(
            merge_into_index(&loc, ids(2..5), None).await.unwrap(),
            (2, 5)
        );
        assert_eq!(
            merge_into_index(&loc, ids(0..5), None).await.unwrap(),
            (0, 5)
        );
        assert_eq!(merge_into_index(&loc, vec![], None).await.unwrap(), (0, 5));
        let mut want = ids(0..5);
        want.sort();
        assert_eq!(read_index(&loc).await.unwrap(), want);
    }

    #[tokio::test]
    async fn streaming_merge_over_many_batches_equals_a_set_union() {
        let dir = tempfile::tempdir().unwrap();
        let local =
            Location::parse(dir.path().join("wh_id_hashes.parquet").to_str().unwrap()).unwrap();
        for loc in [mem("big"), local] {
            let n = 3 * BATCH_ROWS + 123;
            assert_eq!(
                merge_into_index(&loc, ids(0..n), None).await.unwrap(),
                (n as u64, n as u64)
            );
            // Interleaved: half already present, half new, spread over every old batch.
            let new: Vec<IdHash> = ids(n / 2..n + n / 2);
            let (added, total) = merge_into_index(&loc, new, None).await.unwrap();
            assert_eq!(added, (n / 2) as u64);
            assert_eq!(total, (n + n / 2) as u64);
            let mut want = ids(0..n + n / 2);
            want.sort();
            let got = read_index(&loc).await.unwrap();
            assert_eq!(got.len(), want.len());
            assert!(got == want);
            let (_, _, rows, _) = inspect(&loc).await;
            assert_eq!(rows, n + n / 2);
            assert_eq!(index_len(&loc).await.unwrap(), Some((n + n / 2) as u64));
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["wh_id_hashes.parquet"]);
    }

    /// A file as pyarrow would write it with `pa.binary()` (variable length), snappy.
    fn python_style_file(hashes: &[IdHash], field_type: DataType) -> bytes::Bytes {
        let schema = Arc::new(Schema::new(vec![Field::new(
            ID_HASH_COLUMN,
            field_type.clone(),
            true,
        )]));
        let values: Vec<Option<&[u8]>> = hashes
            .iter()
            .map(|h| Some(&h[..]))
            .chain([None]) // a null row is skipped
            .collect();
        let array: ArrayRef = match field_type {
            DataType::Binary => Arc::new(arrow_array::BinaryArray::from_opt_vec(values)),
            DataType::LargeBinary => Arc::new(arrow_array::LargeBinaryArray::from_opt_vec(values)),
            _ => unreachable!(),
        };
        let batch = RecordBatch::try_new(schema.clone(), vec![array]).unwrap();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        buf.into()
    }

    #[tokio::test]
    async fn reads_and_merges_python_binary_files() {
        for (name, dt) in [
            ("binary", DataType::Binary),
            ("large", DataType::LargeBinary),
        ] {
            let loc = mem(name);
            let mut old = ids(0..50);
            old.sort();
            loc.put_bytes(python_style_file(&old, dt)).await.unwrap();
            assert_eq!(read_index(&loc).await.unwrap(), old);
            assert_eq!(index_len(&loc).await.unwrap(), Some(51));
            assert_eq!(
                merge_into_index(&loc, ids(40..60), None).await.unwrap(),
                (10, 60)
            );
            let (dt, compression, rows, values) = inspect(&loc).await;
            assert_eq!(dt, DataType::FixedSizeBinary(16));
            assert!(matches!(compression, Compression::ZSTD(_)));
            assert_eq!(rows, 60);
            let mut want = ids(0..60);
            want.sort();
            assert_eq!(values, want);
        }
    }

    #[tokio::test]
    async fn unsorted_old_index_is_merged_in_memory() {
        let loc = mem("unsorted");
        let old = ids(0..BATCH_ROWS + 10); // hash order, not sorted
        assert!(!old.is_sorted());
        loc.put_bytes(python_style_file(&old, DataType::Binary))
            .await
            .unwrap();
        let (added, total) = merge_into_index(&loc, ids(5..BATCH_ROWS + 20), None)
            .await
            .unwrap();
        assert_eq!((added, total), (10, (BATCH_ROWS + 20) as u64));
        let mut want = ids(0..BATCH_ROWS + 20);
        want.sort();
        assert!(read_index(&loc).await.unwrap() == want);
    }

    #[tokio::test]
    async fn wrong_width_values_are_rejected() {
        let loc = mem("wrong-width");
        let schema = Arc::new(Schema::new(vec![Field::new(
            ID_HASH_COLUMN,
            DataType::Binary,
            true,
        )]));
        let array: ArrayRef = Arc::new(arrow_array::BinaryArray::from_vec(vec![b"short"]));
        let batch = RecordBatch::try_new(schema.clone(), vec![array]).unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        loc.put_bytes(buf.into()).await.unwrap();
        let err = read_index(&loc).await.unwrap_err();
        assert!(err.to_string().contains("5 bytes"), "{err}");
        // A failed merge leaves the old index as it was.
        let before = loc.get_bytes().await.unwrap();
        assert!(merge_into_index(&loc, ids(0..3), None).await.is_err());
        assert_eq!(loc.get_bytes().await.unwrap(), before);
        assert_only_the_index_is_stored(&loc).await;
    }

    #[tokio::test]
    async fn write_index_replaces_the_whole_index() {
        let loc = mem("write");
        assert_eq!(write_index(&loc, ids(0..10), None).await.unwrap(), 10);
        assert_eq!(write_index(&loc, ids(5..8), None).await.unwrap(), 3);
        let mut want = ids(5..8);
        want.sort();
        assert_eq!(read_index(&loc).await.unwrap(), want);
    }

    #[tokio::test]
    async fn stamps_are_written_read_and_removal_is_exact() {
        let loc = mem("stamp");
        let stamp = IndexStamp {
            table_uuid: "4f1e".into(),
            snapshot_id: 42,
        };
        merge_into_index(&loc, ids(0..1000), Some(&stamp))
            .await
            .unwrap();
        let info = index_info(&loc).await.unwrap().unwrap();
        assert_eq!((info.rows, info.stamp.as_ref()), (1000, Some(&stamp)));
        // An empty change with a stamp still moves the stamp.
        let later = IndexStamp {
            snapshot_id: 43,
            ..stamp.clone()
        };
        merge_into_index(&loc, Vec::new(), Some(&later))
            .await
            .unwrap();
        assert_eq!(index_info(&loc).await.unwrap().unwrap().stamp, Some(later));
        // Removing ids (some absent) keeps the rest, sorted.
        let mut gone = ids(100..200);
        gone.extend(ids(5000..5010));
        let (removed, total) = remove_from_index(&loc, gone, None).await.unwrap();
        assert_eq!((removed, total), (100, 900));
        let mut want: Vec<IdHash> = ids(0..100).into_iter().chain(ids(200..1000)).collect();
        want.sort_unstable();
        assert_eq!(read_index(&loc).await.unwrap(), want);
        assert_eq!(index_info(&loc).await.unwrap().unwrap().stamp, None);
        assert_only_the_index_is_stored(&loc).await;
    }
}
