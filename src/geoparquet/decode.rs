//! Whole-file decoding of many small Parquet files into Arrow batches, for merges (compaction
//! and the backfill reduce) that read every row of thousands of files of a few dozen rows.
//!
//! It is parquet-rs's own record-batch reader ([`ParquetRecordBatchReader::try_new_with_row_groups`]),
//! fed in two ways that cut the per-file and per-column-chunk costs that dominate such files:
//!
//! - the Arrow schema and the Dremel levels of a file are derived once per distinct Parquet
//!   schema (and embedded `ARROW:schema`) and thread, not once per file;
//! - zstd pages are decompressed with one decompression context per thread. parquet-rs 58
//!   builds a zstd compression *and* a decompression context for every column chunk it reads
//!   (`ZSTDCodec::new`), and copies every decompressed page once more. Column chunks are
//!   handed to its page reader as uncompressed and their pages are decompressed here instead.
//!
//! Measured (`examples/merge_floor.rs`, the production-shaped warehouse of `bench/compact.sh`:
//! 9,021 files, 184,789 rows, 33 column chunks each, one thread, alternated with
//! `ParquetRecordBatchReaderBuilder`): decoding them 2.9–4.8 s → 2.2–2.9 s; the 1,669 bucket
//! files written from them 1.2–1.7 s → 0.8–0.9 s.

use std::cell::RefCell;
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, RowGroups};
use parquet::arrow::{FieldLevels, ProjectionMask, parquet_to_arrow_field_levels};
use parquet::basic::Compression;
use parquet::column::page::{Page, PageIterator, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{
    ParquetMetaData, ParquetMetaDataOptions, ParquetMetaDataReader, ParquetStatisticsPolicy,
    RowGroupMetaData,
};
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::schema::types::TypePtr;

/// The key under which Arrow writers embed their schema in a Parquet footer.
const ARROW_SCHEMA_KEY: &str = "ARROW:schema";

/// Schemas (with the sets of columns left out) kept per thread (a stream of ever-new ones
/// starts over).
const MAX_SCHEMAS: usize = 64;

/// Field levels by (embedded Arrow schema, Parquet root schema, leaves left out).
type Schemas = Vec<(Option<String>, TypePtr, Vec<usize>, Arc<FieldLevels>)>;

thread_local! {
    /// The schemas this thread has decoded files of; a merge meets one or two.
    static SCHEMAS: RefCell<Schemas> = const { RefCell::new(Vec::new()) };
}

/// Every row of the Parquet file `bytes`, as batches of at most `batch_size` rows, in the
/// file's own Arrow schema (as parquet-rs's `ParquetRecordBatchReaderBuilder` gives).
pub fn decode_file(bytes: &Bytes, batch_size: usize) -> Result<Vec<RecordBatch>> {
    decode_file_without(bytes, batch_size, &|_, _| false)
}

/// [`decode_file`], leaving out the top-level primitive columns for which `omit(name,
/// all_null)` holds — `all_null`: the file's statistics record as many nulls as rows in every
/// row group. A caller that replaces a column's values anyway, or turns an all-null column
/// into its own null array, need not decode it: a merge of the production-shaped warehouse
/// (33 columns, six of them `grid_partition` or all null) decodes 18 % fewer column chunks.
/// Every column is kept when all of them would go.
pub fn decode_file_without(
    bytes: &Bytes,
    batch_size: usize,
    omit: &dyn Fn(&str, bool) -> bool,
) -> Result<Vec<RecordBatch>> {
    let metadata = parse_footer(bytes)?;
    let left_out = omitted(&metadata, omit);
    let levels = levels(&metadata, left_out)?;
    let groups = FileRowGroups {
        bytes: Arc::new(bytes.clone()),
        metadata,
    };
    // The record readers reserve a whole batch per column: never more than the file holds
    // (as parquet-rs's builder does).
    let batch_size = batch_size.min(groups.num_rows()).max(1);
    let reader =
        ParquetRecordBatchReader::try_new_with_row_groups(&levels, &groups, batch_size, None)?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(ParquetError::from)
}

/// The footer of the Parquet file `bytes`, as a merge reads it: page encoding and size
/// statistics are neither parsed nor kept (nothing in a merge reads them, and decoding them
/// allocates per column chunk: size statistics hold level histograms).
pub fn parse_footer(bytes: &Bytes) -> Result<ParquetMetaData> {
    let options = ParquetMetaDataOptions::new()
        .with_encoding_stats_policy(ParquetStatisticsPolicy::SkipAll)
        .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll);
    ParquetMetaDataReader::new()
        .with_metadata_options(Some(options))
        .parse_and_finish(bytes)
}

/// The leaves of top-level primitive columns `omit` leaves out (none when it would leave out
/// every column).
fn omitted(metadata: &ParquetMetaData, omit: &dyn Fn(&str, bool) -> bool) -> Vec<usize> {
    let descr = metadata.file_metadata().schema_descr();
    let groups = metadata.row_groups();
    let left_out: Vec<usize> = (0..descr.num_columns())
        .filter(|&i| {
            let column = descr.column(i);
            // A top-level column that is not repeated (a legacy repeated primitive's empty
            // lists count as nulls too).
            let [name] = column.path().parts() else {
                return false;
            };
            if column.max_rep_level() > 0 {
                return false;
            }
            let all_null = groups.iter().all(|rg| {
                let rows = u64::try_from(rg.num_rows()).ok();
                rg.columns()
                    .get(i)
                    .and_then(|c| c.statistics())
                    .and_then(|s| s.null_count_opt())
                    .is_some_and(|n| Some(n) == rows)
            });
            omit(name, all_null)
        })
        .collect();
    if left_out.len() == descr.num_columns() {
        return Vec::new();
    }
    left_out
}

/// The field levels of the file of `metadata` without the leaves `left_out`, from this
/// thread's schemas or derived.
fn levels(metadata: &ParquetMetaData, left_out: Vec<usize>) -> Result<Arc<FieldLevels>> {
    let file = metadata.file_metadata();
    // The last entry with a value, as parquet-rs reads the key-value metadata.
    let embedded = file.key_value_metadata().and_then(|kv| {
        kv.iter()
            .rev()
            .filter(|e| e.key == ARROW_SCHEMA_KEY)
            .find_map(|e| e.value.as_deref())
    });
    let root = file.schema_descr().root_schema_ptr();
    let known = SCHEMAS.with_borrow(|schemas| {
        schemas
            .iter()
            .find(|(e, r, o, _)| e.as_deref() == embedded && **r == *root && *o == left_out)
            .map(|(.., levels)| levels.clone())
    });
    if let Some(levels) = known {
        return Ok(levels);
    }
    let schema =
        parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let mask = if left_out.is_empty() {
        ProjectionMask::all()
    } else {
        let descr = file.schema_descr();
        ProjectionMask::leaves(
            descr,
            (0..descr.num_columns()).filter(|i| !left_out.contains(i)),
        )
    };
    let levels = Arc::new(parquet_to_arrow_field_levels(
        file.schema_descr(),
        mask,
        Some(schema.fields()),
    )?);
    SCHEMAS.with_borrow_mut(|schemas| {
        if schemas.len() >= MAX_SCHEMAS {
            schemas.clear();
        }
        schemas.push((embedded.map(str::to_string), root, left_out, levels.clone()));
    });
    Ok(levels)
}

/// All row groups of one file held in memory.
struct FileRowGroups {
    bytes: Arc<Bytes>,
    metadata: ParquetMetaData,
}

impl RowGroups for FileRowGroups {
    fn num_rows(&self) -> usize {
        self.metadata
            .row_groups()
            .iter()
            .map(|rg| usize::try_from(rg.num_rows()).unwrap_or(0))
            .fold(0, usize::saturating_add)
    }

    fn column_chunks(&self, i: usize) -> Result<Box<dyn PageIterator>> {
        let readers: Vec<_> = (self.metadata.row_groups().iter())
            .map(|rg| column_pages(&self.bytes, rg, i))
            .collect();
        Ok(Box::new(Chunks(readers.into_iter())))
    }

    fn row_groups(&self) -> Box<dyn Iterator<Item = &RowGroupMetaData> + '_> {
        Box::new(self.metadata.row_groups().iter())
    }

    fn metadata(&self) -> &ParquetMetaData {
        &self.metadata
    }
}

/// The page reader of column `i` of row group `rg`: zstd chunks are read as uncompressed and
/// their pages decompressed by [`ZstdPages`]; other codecs stay with parquet-rs.
fn column_pages(
    bytes: &Arc<Bytes>,
    rg: &RowGroupMetaData,
    i: usize,
) -> Result<Box<dyn PageReader>> {
    if i >= rg.num_columns() {
        return Err(ParquetError::General(format!(
            "column {i} is not in a row group of {} columns",
            rg.num_columns()
        )));
    }
    let column = rg.column(i);
    let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
    if matches!(column.compression(), Compression::ZSTD(_)) {
        let raw = column
            .clone()
            .into_builder()
            .set_compression(Compression::UNCOMPRESSED)
            .build()?;
        let inner = SerializedPageReader::new(bytes.clone(), &raw, rows, None)?;
        // parquet-rs sizes a page by its header's uncompressed size, an i32.
        let limit =
            usize::try_from(column.uncompressed_size().clamp(0, i64::from(i32::MAX))).unwrap_or(0);
        Ok(Box::new(ZstdPages { inner, limit }))
    } else {
        Ok(Box::new(SerializedPageReader::new(
            bytes.clone(),
            column,
            rows,
            None,
        )?))
    }
}

struct Chunks(std::vec::IntoIter<Result<Box<dyn PageReader>>>);

impl Iterator for Chunks {
    type Item = Result<Box<dyn PageReader>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl PageIterator for Chunks {}

/// The pages of a zstd column chunk, read undecompressed, decompressed with this thread's
/// context.
struct ZstdPages {
    inner: SerializedPageReader<Bytes>,
    /// The most bytes one page may decompress to.
    limit: usize,
}

impl Iterator for ZstdPages {
    type Item = Result<Page>;
    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for ZstdPages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        let Some(mut page) = self.inner.get_next_page()? else {
            return Ok(None);
        };
        match &mut page {
            Page::DataPage { buf, .. } | Page::DictionaryPage { buf, .. } => {
                *buf = decompress(buf, 0, self.limit)?;
            }
            Page::DataPageV2 {
                buf,
                def_levels_byte_len,
                rep_levels_byte_len,
                is_compressed,
                ..
            } => {
                if *is_compressed {
                    let levels = *def_levels_byte_len as usize + *rep_levels_byte_len as usize;
                    *buf = decompress(buf, levels, self.limit)?;
                    *is_compressed = false;
                }
            }
        }
        Ok(Some(page))
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.inner.skip_next_page()
    }

    fn at_record_boundary(&mut self) -> Result<bool> {
        self.inner.at_record_boundary()
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused for every page.
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `buf[..keep]` as it is followed by the zstd frame(s) `buf[keep..]` decompressed to at most
/// `limit` bytes (the file's own claim, the column chunk's uncompressed size, bounds what a
/// page may allocate). An empty frame (a page of no non-null values may have none)
/// decompresses to nothing.
fn decompress(buf: &Bytes, keep: usize, limit: usize) -> Result<Bytes> {
    if keep > buf.len() {
        return Err(ParquetError::General(format!(
            "page levels of {keep} bytes in a page of {} bytes",
            buf.len()
        )));
    }
    let (head, frame) = buf.split_at(keep);
    if frame.is_empty() {
        return Ok(buf.clone());
    }
    let too_big = |size: u64| {
        ParquetError::General(format!(
            "a zstd page of {size} bytes decompressed, more than its column chunk's \
             {limit} bytes"
        ))
    };
    // One-shot into a buffer of the size the frame records; a frame that records none (a
    // streaming writer), or pages of several frames, are streamed (bounded by `limit`).
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(frame) {
        let size = usize::try_from(size)
            .ok()
            .filter(|&n| n <= limit)
            .ok_or_else(|| too_big(size))?;
        let mut out = std::io::Cursor::new(Vec::with_capacity(head.len() + size));
        out.get_mut().extend_from_slice(head);
        out.set_position(head.len() as u64);
        let done = ZSTD.with(|cell| -> Result<usize> {
            let mut cell = cell.borrow_mut();
            let decompressor = match cell.as_mut() {
                Some(d) => d,
                None => cell.insert(zstd::bulk::Decompressor::new().map_err(zstd_error)?),
            };
            decompressor
                .decompress_to_buffer(frame, &mut out)
                .map_err(zstd_error)
        });
        if let Ok(written) = done
            && written == size
        {
            return Ok(Bytes::from(out.into_inner()));
        }
    }
    let mut out = head.to_vec();
    let decoder = zstd::stream::read::Decoder::with_buffer(frame).map_err(zstd_error)?;
    let read = std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, limit as u64 + 1),
        &mut out,
    )
    .map_err(zstd_error)?;
    if read > limit {
        return Err(too_big(read as u64));
    }
    Ok(Bytes::from(out))
}

fn zstd_error(e: std::io::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, BinaryArray, Int32Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::ZstdLevel;
    use parquet::file::properties::{WriterProperties, WriterVersion};

    /// `rows` rows of a string, a binary, a timestamp (UTC) and an int column, with nulls,
    /// repeated values (dictionary pages) and one value long enough to compress.
    fn batch(rows: usize, seed: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("geometry", DataType::Binary, true),
            Field::new(
                "datetime",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("n", DataType::Int32, true),
        ]));
        let ids: StringArray = (0..rows)
            .map(|i| (i % 7 != 3).then(|| format!("item-{seed}-{i}-{}", "x".repeat(i % 50))))
            .collect();
        let geoms: BinaryArray = (0..rows)
            .map(|i| (i % 5 != 0).then(|| vec![(i % 3) as u8; 21]))
            .collect();
        let times: TimestampMicrosecondArray = (0..rows)
            .map(|i| (i % 4 != 1).then_some(1_600_000_000_000_000 + (i as i64) * 1_000))
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC");
        let ns: Int32Array = (0..rows).map(|i| Some((i % 9) as i32)).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ids),
            Arc::new(geoms),
            Arc::new(times),
            Arc::new(ns),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn write(batch: &RecordBatch, props: WriterProperties) -> Bytes {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        Bytes::from(buf)
    }

    fn stock(bytes: &Bytes, batch_size: usize) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .with_batch_size(batch_size)
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
    }

    fn zstd() -> Compression {
        Compression::ZSTD(ZstdLevel::try_new(1).unwrap())
    }

    #[test]
    fn columns_are_left_out_by_name_or_when_every_row_group_holds_only_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("cell", DataType::Utf8, true),
            Field::new("empty", DataType::Int32, true),
            Field::new("late", DataType::Int32, true),
        ]));
        let group = |late: Option<i32>| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(StringArray::from(vec!["x", "x", "x"])),
                Arc::new(Int32Array::from(vec![None, None, None])),
                Arc::new(Int32Array::from(vec![None, late, None])),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        };
        // Two row groups: `late` holds a value only in the second.
        let mut buf = Vec::new();
        let props = WriterProperties::builder()
            .set_compression(zstd())
            .set_max_row_group_row_count(Some(3))
            .build();
        let mut w = ArrowWriter::try_new(&mut buf, schema.clone(), Some(props)).unwrap();
        w.write(&group(None)).unwrap();
        w.write(&group(Some(7))).unwrap();
        w.close().unwrap();
        let bytes = Bytes::from(buf);
        let names = |batches: &[RecordBatch]| -> Vec<String> {
            batches[0]
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        let omit = |name: &str, all_null: bool| name == "cell" || all_null;
        let got = decode_file_without(&bytes, 100, &omit).unwrap();
        assert_eq!(names(&got), ["id", "late"]);
        assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 6);
        let full = stock(&bytes, 100);
        assert_eq!(
            got[0].column(1).null_count(),
            5,
            "`late`: one value in six rows"
        );
        assert_eq!(
            got[0].column(0).as_ref(),
            full[0].column(0).as_ref(),
            "the kept columns decode as in full"
        );
        // Nothing to leave out, and everything: all columns decoded.
        assert_eq!(
            decode_file_without(&bytes, 100, &|_, _| false).unwrap(),
            full
        );
        assert_eq!(
            decode_file_without(&bytes, 100, &|_, _| true).unwrap(),
            full
        );
        // A file whose one all-null column has values in another file: each its own schema.
        let got = decode_file_without(&bytes, 100, &|name, all_null| name == "late" && all_null);
        assert_eq!(names(&got.unwrap()), ["id", "cell", "empty", "late"]);
    }

    #[test]
    fn a_repeated_column_of_empty_lists_is_not_left_out() {
        use parquet::data_type::{ByteArray, ByteArrayType};
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        // A legacy top-level repeated primitive: three rows of empty lists, which the
        // statistics count as three nulls.
        let schema = Arc::new(
            parse_message_type(
                "message m { required binary id (UTF8); repeated binary tags (UTF8); }",
            )
            .unwrap(),
        );
        let mut buf = Vec::new();
        let mut w = SerializedFileWriter::new(&mut buf, schema, Default::default()).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let ids: Vec<ByteArray> = ["a", "b", "c"].into_iter().map(ByteArray::from).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&ids, None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&[], Some(&[0, 0, 0]), Some(&[0, 0, 0]))
            .unwrap();
        col.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();
        let bytes = Bytes::from(buf);
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        let stats = meta.row_group(0).column(1).statistics().unwrap();
        assert_eq!(
            stats.null_count_opt(),
            Some(3),
            "empty lists count as nulls"
        );
        let got = decode_file_without(&bytes, 100, &|_, all_null| all_null).unwrap();
        assert_eq!(got[0].num_columns(), 2, "the repeated column is decoded");
    }

    #[test]
    fn decodes_what_parquet_rs_decodes_for_every_page_kind_and_codec() {
        let data = batch(3_000, 1);
        let kinds = [
            (
                "zstd v1 + dictionary",
                WriterProperties::builder().set_compression(zstd()),
            ),
            (
                "zstd v1 plain",
                WriterProperties::builder()
                    .set_compression(zstd())
                    .set_dictionary_enabled(false),
            ),
            (
                "zstd v2 pages",
                WriterProperties::builder()
                    .set_compression(zstd())
                    .set_writer_version(WriterVersion::PARQUET_2_0),
            ),
            (
                "zstd, several pages and row groups",
                WriterProperties::builder()
                    .set_compression(zstd())
                    .set_data_page_row_count_limit(100)
                    .set_write_batch_size(100)
                    .set_max_row_group_row_count(Some(1_000)),
            ),
            (
                "snappy",
                WriterProperties::builder().set_compression(Compression::SNAPPY),
            ),
            (
                "uncompressed",
                WriterProperties::builder().set_compression(Compression::UNCOMPRESSED),
            ),
        ];
        SCHEMAS.with_borrow_mut(Vec::clear);
        for (kind, props) in kinds {
            let bytes = write(&data, props.build());
            for batch_size in [65_536, 1_000, 7] {
                let ours = decode_file(&bytes, batch_size).unwrap();
                assert_eq!(
                    ours,
                    stock(&bytes, batch_size),
                    "{kind}, batches of {batch_size}"
                );
                let rows: usize = ours.iter().map(RecordBatch::num_rows).sum();
                assert_eq!(rows, 3_000, "{kind}");
            }
        }
        // The v2 and v1 files share one Parquet schema: one entry.
        assert_eq!(SCHEMAS.with_borrow(Vec::len), 1);
    }

    #[test]
    fn files_of_different_schemas_each_get_their_own() {
        let a = batch(10, 1);
        let b = a.project(&[0, 3]).unwrap();
        let props = || WriterProperties::builder().set_compression(zstd()).build();
        let (fa, fb) = (write(&a, props()), write(&b, props()));
        SCHEMAS.with_borrow_mut(Vec::clear);
        for _ in 0..2 {
            assert_eq!(decode_file(&fa, 100).unwrap(), stock(&fa, 100));
            assert_eq!(decode_file(&fb, 100).unwrap(), stock(&fb, 100));
        }
        assert_eq!(SCHEMAS.with_borrow(Vec::len), 2);
        // Same Parquet schema, a different embedded Arrow schema (no time zone): its own entry,
        // and the timestamps come back as that file wrote them.
        let naive = arrow_cast::cast(
            a.column(2),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )
        .unwrap();
        let schema = Schema::new(vec![
            a.schema().field(0).clone(),
            a.schema().field(1).clone(),
            Field::new(
                "datetime",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            a.schema().field(3).clone(),
        ]);
        let c = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                a.column(0).clone(),
                a.column(1).clone(),
                naive,
                a.column(3).clone(),
            ],
        )
        .unwrap();
        let fc = write(&c, props());
        assert_eq!(decode_file(&fc, 100).unwrap(), stock(&fc, 100));
        assert_eq!(decode_file(&fa, 100).unwrap(), stock(&fa, 100));
    }

    #[test]
    fn a_damaged_page_is_an_error_not_a_panic() {
        let bytes = write(
            &batch(2_000, 2),
            WriterProperties::builder()
                .set_compression(zstd())
                .set_dictionary_enabled(false)
                .build(),
        );
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        let (start, len) = metadata.row_group(0).column(0).byte_range();
        let mut damaged = bytes.to_vec();
        // Overwrite the middle of the first column chunk (its page's zstd frame).
        let middle = (start + len / 2) as usize;
        damaged[middle..middle + 16].fill(0xA5);
        let damaged = Bytes::from(damaged);
        assert!(decode_file(&damaged, 1_000).is_err());
        // Not Parquet at all.
        assert!(decode_file(&Bytes::from_static(b"not parquet"), 10).is_err());
    }

    #[test]
    fn frames_with_and_without_a_recorded_size_decompress() {
        let page: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let sized = zstd::bulk::compress(&page, 1).unwrap();
        let mut streamed = Vec::new();
        {
            // A streaming encoder without a pledged size writes no content size.
            let mut encoder = zstd::stream::write::Encoder::new(&mut streamed, 1).unwrap();
            std::io::Write::write_all(&mut encoder, &page).unwrap();
            encoder.finish().unwrap();
        }
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed)
                .ok()
                .flatten(),
            None
        );
        let limit = page.len();
        for frame in [sized.clone(), streamed.clone()] {
            assert_eq!(
                decompress(&Bytes::from(frame.clone()), 0, limit).unwrap(),
                page
            );
            // Levels kept in front (v2 pages).
            let mut v2 = b"LEVELS".to_vec();
            v2.extend_from_slice(&frame);
            let out = decompress(&Bytes::from(v2), 6, limit).unwrap();
            assert_eq!(&out[..6], b"LEVELS");
            assert_eq!(&out[6..], &page[..]);
            // More than the column chunk holds: refused, whether the frame says so or not.
            let err = decompress(&Bytes::from(frame), 0, limit - 1).unwrap_err();
            assert!(
                err.to_string().contains("more than its column chunk"),
                "{err}"
            );
        }
        // A page of two frames (valid zstd; the first frame's size is not the page's).
        let mut two = sized.clone();
        two.extend_from_slice(&sized);
        let out = decompress(&Bytes::from(two), 0, 2 * limit).unwrap();
        assert_eq!(out.len(), 2 * page.len());
        assert_eq!(&out[page.len()..], &page[..]);
        // Frames of 64 MiB for a column chunk of 1 MiB: refused before allocating (recorded
        // size) or once past the limit (streamed).
        let zeros = vec![0u8; 64 << 20];
        let mut bomb_streamed = Vec::new();
        {
            let mut encoder = zstd::stream::write::Encoder::new(&mut bomb_streamed, 19).unwrap();
            std::io::Write::write_all(&mut encoder, &zeros).unwrap();
            encoder.finish().unwrap();
        }
        for bomb in [zstd::bulk::compress(&zeros, 19).unwrap(), bomb_streamed] {
            assert!(bomb.len() < 1 << 20);
            let err = decompress(&Bytes::from(bomb), 0, 1 << 20).unwrap_err();
            assert!(
                err.to_string().contains("more than its column chunk"),
                "{err}"
            );
        }
        // A truncated frame.
        let mut cut = sized.clone();
        cut.truncate(sized.len() / 2);
        assert!(decompress(&Bytes::from(cut), 0, limit).is_err());
        assert!(decompress(&Bytes::from_static(b"ab"), 3, 10).is_err());
        assert_eq!(
            decompress(&Bytes::from_static(b"ab"), 2, 10).unwrap(),
            &b"ab"[..]
        );
    }
}
