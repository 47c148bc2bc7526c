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
//! * **Lenient reading.** Python-written files are accepted with `id_hash` typed
//!   `fixed_size_binary(16)`, `binary` or `large_binary` (each value 16 bytes), snappy or zstd;
//!   null rows are skipped. An unsorted old index (never written by either tool, but possible by
//!   hand) is detected during the merge and handled by a slower in-memory merge.
//! * **CPU off the runtime.** Sorting the new digests and post-processing a loaded index run on
//!   the blocking pool; Parquet encoding/decoding happens one batch (~1 MiB) per await point.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch};
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

/// The digest of one item id: xxh3-128 with seed 42 of its UTF-8 bytes, big-endian.
pub fn hash_id(id: &str) -> IdHash {
    xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), HASH_SEED).to_be_bytes()
}

/// `{warehouse without trailing slash}_id_hashes.parquet`, the Python tool's default.
pub fn default_index_path(warehouse_url: &str) -> String {
    format!("{}_id_hashes.parquet", warehouse_url.trim_end_matches('/'))
}

/// Number of rows in the index, from the Parquet footer only (a few range reads); `None` when
/// there is no index.
pub async fn index_len(location: &Location) -> Result<Option<u64>> {
    let Some(builder) = open(location).await? else {
        return Ok(None);
    };
    let rows = builder.metadata().file_metadata().num_rows();
    Ok(Some(u64::try_from(rows).unwrap_or(0)))
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
/// one. Returns the number of rows written.
pub async fn write_index(location: &Location, hashes: Vec<IdHash>) -> Result<u64> {
    let hashes = sort_dedup(hashes, location.url()).await?;
    let empty = futures::stream::empty();
    match merge_write(location, empty, &hashes).await? {
        Merged::Done { total, .. } => Ok(total),
        Merged::Unsorted => unreachable_unsorted(location),
    }
}

/// Add `new` digests (any order, duplicates allowed) to the index, creating it if missing.
/// Returns `(added, total)`: how many of `new` were not in the index yet, and the row count of
/// the resulting index. Streams the existing index (see the module docs); an empty `new` leaves
/// the index untouched (and does not create it).
pub async fn merge_into_index(location: &Location, new: Vec<IdHash>) -> Result<(u64, u64)> {
    let new = sort_dedup(new, location.url()).await?;
    if new.is_empty() {
        return Ok((0, index_len(location).await?.unwrap_or(0)));
    }
    let Some((_, old)) = open_stream(location).await? else {
        let empty = futures::stream::empty();
        return match merge_write(location, empty, &new).await? {
            Merged::Done { added, total } => Ok((added, total)),
            Merged::Unsorted => unreachable_unsorted(location),
        };
    };
    match merge_write(location, old, &new).await? {
        Merged::Done { added, total } => Ok((added, total)),
        Merged::Unsorted => {
            tracing::warn!(
                index = %location.url(),
                "the hash index is not sorted; merging it in memory"
            );
            let old = read_index(location).await?;
            let old = futures::stream::iter([Ok(old)]);
            match merge_write(location, old, &new).await? {
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

/// What [`merge_write`] did.
enum Merged {
    /// The index was replaced.
    Done { added: u64, total: u64 },
    /// The old index turned out not to be sorted; nothing was changed.
    Unsorted,
}

/// Merge the sorted `old` chunks with sorted, deduplicated `new` into a temporary object, then
/// move it over the index.
async fn merge_write<S>(location: &Location, old: S, new: &[IdHash]) -> Result<Merged>
where
    S: Stream<Item = Result<Vec<IdHash>>>,
{
    let mut old = std::pin::pin!(old);
    let tmp = Path::from(format!(
        "{}.tmp-{}",
        location.prefix().as_ref(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut writer = IndexWriter::create(location, tmp.clone())?;
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
                writer.push(new[ni]);
                added += 1;
                ni += 1;
            }
            if ni < new.len() && new[ni] == v {
                ni += 1;
            }
            writer.push(v);
        }
        if let Err(e) = writer.drain(false).await {
            writer.abort().await;
            return Err(e);
        }
    }
    for chunk in new[ni..].chunks(BATCH_ROWS) {
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
    fn create(location: &Location, key: Path) -> Result<Self> {
        let schema = index_schema();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_dictionary_enabled(false)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
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
    let meta = match location.store().head(location.prefix()).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store(location.url(), e)),
    };
    let reader = ParquetObjectReader::new(location.store().clone(), location.prefix().clone())
        .with_file_size(meta.size);
    match ParquetRecordBatchStreamBuilder::new(reader).await {
        Ok(builder) => Ok(Some(builder)),
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
    match tokio::task::spawn_blocking(move || work(v)).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io(url, std::io::Error::other(e))),
    }
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
        assert_eq!(merge_into_index(&loc, vec![]).await.unwrap(), (0, 0));
        assert!(loc.get_bytes_opt().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn merge_creates_a_sorted_zstd_index() {
        let loc = mem("create");
        let mut new = ids(0..100);
        new.extend(ids(0..10)); // duplicates count once
        new.reverse();
        assert_eq!(merge_into_index(&loc, new).await.unwrap(), (100, 100));
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
        assert_eq!(merge_into_index(&loc, ids(0..3)).await.unwrap(), (3, 3));
        assert_eq!(merge_into_index(&loc, ids(2..5)).await.unwrap(), (2, 5));
        assert_eq!(merge_into_index(&loc, ids(0..5)).await.unwrap(), (0, 5));
        assert_eq!(merge_into_index(&loc, vec![]).await.unwrap(), (0, 5));
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
                merge_into_index(&loc, ids(0..n)).await.unwrap(),
                (n as u64, n as u64)
            );
            // Interleaved: half already present, half new, spread over every old batch.
            let new: Vec<IdHash> = ids(n / 2..n + n / 2);
            let (added, total) = merge_into_index(&loc, new).await.unwrap();
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
            assert_eq!(merge_into_index(&loc, ids(40..60)).await.unwrap(), (10, 60));
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
        let (added, total) = merge_into_index(&loc, ids(5..BATCH_ROWS + 20))
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
        assert!(merge_into_index(&loc, ids(0..3)).await.is_err());
        assert_eq!(loc.get_bytes().await.unwrap(), before);
        assert_only_the_index_is_stored(&loc).await;
    }

    #[tokio::test]
    async fn write_index_replaces_the_whole_index() {
        let loc = mem("write");
        assert_eq!(write_index(&loc, ids(0..10)).await.unwrap(), 10);
        assert_eq!(write_index(&loc, ids(5..8)).await.unwrap(), 3);
        let mut want = ids(5..8);
        want.sort();
        assert_eq!(read_index(&loc).await.unwrap(), want);
    }
}
