//! Parquet inventory files.
//!
//! Read with [`ParquetRecordBatchStreamBuilder`] over a [`ParquetObjectReader`], one record batch
//! at a time, projecting only `bucket`, `key` (both required, exact names) and the optional
//! `last_modified_date`. Bucket and key may be any string type (`Utf8`, `LargeUtf8`,
//! `Utf8View`, dictionary-encoded strings). `last_modified_date` may be a string (parsed like
//! CSV values), a timestamp of any unit with or without a time zone (naive values are UTC), or a
//! date; any other type counts as unknown (fail-open).
//!
//! A file that is not Parquet, or has no `bucket` or `key` column, is not an inventory (see the
//! module docs of [`super`]); a row with a null or empty bucket or key is malformed and is
//! reported with its 0-based row index in the file.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use tokio::sync::mpsc;

use super::{
    Admit, Batcher, FileRows, Filter, Flow, InventoryEntry, InventoryRecord, Message, RowPosition,
    excerpt, not_an_inventory,
};
use crate::error::{Error, Result};
use crate::store::Location;

/// Rows per record batch read from a Parquet inventory.
pub(super) const BATCH_ROWS: usize = 8192;

/// Read one Parquet file at `loc` through `filter` into `tx`, `batch_rows` rows at a time.
pub(super) async fn read_parquet(
    loc: &Location,
    filter: &Filter,
    tx: &mpsc::Sender<Message>,
    batch_rows: usize,
) -> Result<Flow> {
    let url = loc.url();
    let meta = match loc.store().head(loc.prefix()).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Error::inventory(url, "file not found"));
        }
        Err(e) => return Err(Error::store(url, e)),
    };
    filter.file_opened();
    let reader = ParquetObjectReader::new(loc.store().clone(), loc.prefix().clone())
        .with_file_size(meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| match e {
            // The store failed: not the file's fault.
            e if store_failure(&e) => Error::parquet(url, e),
            e => not_an_inventory(url, format!("not a readable Parquet file ({e})")),
        })?;
    let schema = builder.schema().clone();
    let bucket = required_column(&schema, "bucket", url)?;
    let key = required_column(&schema, "key", url)?;
    let last_modified = schema.index_of("last_modified_date").ok();
    let size = schema.index_of("size").ok();
    let roots = [bucket, key].into_iter().chain(last_modified).chain(size);
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|e| Error::parquet(url, e))?;
    let mut batcher = Batcher::new(tx.clone());
    let mut rows = FileRows::new(url);
    let mut first_row = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| Error::parquet(url, e))?;
        let flow = filter_batch(&batch, first_row, url, filter, &mut rows, &mut batcher.buf)?;
        first_row += batch.num_rows() as u64;
        if batcher.flush().await == Flow::Stop || flow == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    rows.finish()?;
    Ok(Flow::Continue)
}

/// Whether a Parquet error comes from the object store rather than from the file's bytes.
fn store_failure(e: &parquet::errors::ParquetError) -> bool {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            inner.downcast_ref::<object_store::Error>().is_some()
        }
        _ => false,
    }
}

fn required_column(schema: &Schema, name: &str, url: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        not_an_inventory(
            url,
            format!(
                "the Parquet schema has no `{name}` column (columns: {})",
                columns.join(", ")
            ),
        )
    })
}

/// Run the filter over one batch whose first row is row `first_row` of the file, appending
/// kept records and malformed rows to `out`.
fn filter_batch(
    batch: &RecordBatch,
    first_row: u64,
    url: &str,
    filter: &Filter,
    file_rows: &mut FileRows,
    out: &mut Vec<InventoryEntry>,
) -> Result<Flow> {
    let bucket = strings(batch.column_by_name("bucket"), url, "bucket")?;
    let key = strings(batch.column_by_name("key"), url, "key")?;
    let last_modified = LastModified::new(batch.column_by_name("last_modified_date"));
    let sizes = batch
        .column_by_name("size")
        .and_then(|c| arrow_cast::cast(c, &arrow_schema::DataType::UInt64).ok());
    let sizes = sizes.as_ref().and_then(|c| {
        c.as_any()
            .downcast_ref::<arrow_array::UInt64Array>()
            .cloned()
    });
    let rows = batch.num_rows().min(bucket.len()).min(key.len());
    for i in 0..rows {
        let b = (!bucket.is_null(i)).then(|| bucket.value(i));
        let k = (!key.is_null(i)).then(|| key.value(i));
        let (b, k) = match (b, k) {
            (Some(b), Some(k)) if !b.is_empty() && !k.is_empty() => (b, k),
            (b, k) => {
                filter.malformed();
                let problem = match (b, k) {
                    (_, None) => "null key",
                    (None, _) => "null bucket",
                    (_, Some("")) => "empty key",
                    _ => "empty bucket",
                };
                let problem = format!(
                    "{problem}: bucket {}, key {}",
                    b.map_or("null".to_string(), excerpt),
                    k.map_or("null".to_string(), excerpt)
                );
                let position = RowPosition::Row(first_row + i as u64);
                file_rows.malformed(position, problem, out);
                continue;
            }
        };
        file_rows.usable(out);
        let (admit, lm) = filter.admit(k, || last_modified.at(i));
        if admit == Admit::Skip {
            continue;
        }
        let size = sizes
            .as_ref()
            .and_then(|s| (!s.is_null(i)).then(|| s.value(i)));
        out.push(InventoryEntry::Record(InventoryRecord {
            bucket: b.to_string(),
            key: k.to_string(),
            size,
            last_modified: lm,
        }));
        if admit == Admit::KeepLast {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// A string column as `Utf8`, casting other string-like types.
fn strings(column: Option<&ArrayRef>, url: &str, name: &str) -> Result<StringArray> {
    let column = column
        .ok_or_else(|| Error::inventory(url, format!("Parquet batch has no `{name}` column")))?;
    let cast;
    let column = if column.data_type() == &DataType::Utf8 {
        column
    } else {
        cast = arrow_cast::cast(column, &DataType::Utf8)
            .map_err(|e| Error::arrow(format!("{url} column `{name}`"), e))?;
        &cast
    };
    column
        .as_string_opt::<i32>()
        .cloned()
        .ok_or_else(|| Error::inventory(url, format!("column `{name}` is not a string column")))
}

/// The `last_modified_date` column of one batch, in whatever type it came.
enum LastModified {
    Unknown,
    Text(StringArray),
    Seconds(PrimitiveArray<TimestampSecondType>),
    Millis(PrimitiveArray<TimestampMillisecondType>),
    Micros(PrimitiveArray<TimestampMicrosecondType>),
    Nanos(PrimitiveArray<TimestampNanosecondType>),
    Days(PrimitiveArray<Date32Type>),
    DateMillis(PrimitiveArray<Date64Type>),
}

impl LastModified {
    fn new(column: Option<&ArrayRef>) -> Self {
        let Some(column) = column else {
            return Self::Unknown;
        };
        let found = match column.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                column.as_primitive_opt().cloned().map(Self::Seconds)
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                column.as_primitive_opt().cloned().map(Self::Millis)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                column.as_primitive_opt().cloned().map(Self::Micros)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                column.as_primitive_opt().cloned().map(Self::Nanos)
            }
            DataType::Date32 => column.as_primitive_opt().cloned().map(Self::Days),
            DataType::Date64 => column.as_primitive_opt().cloned().map(Self::DateMillis),
            DataType::Utf8 => column.as_string_opt::<i32>().cloned().map(Self::Text),
            DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                arrow_cast::cast(column, &DataType::Utf8)
                    .ok()
                    .and_then(|c| c.as_string_opt::<i32>().cloned())
                    .map(Self::Text)
            }
            _ => None,
        };
        found.unwrap_or(Self::Unknown)
    }

    fn at(&self, i: usize) -> Option<DateTime<Utc>> {
        fn value<T: arrow_array::ArrowPrimitiveType>(
            a: &PrimitiveArray<T>,
            i: usize,
        ) -> Option<T::Native> {
            (i < a.len() && a.is_valid(i)).then(|| a.value(i))
        }
        match self {
            Self::Unknown => None,
            Self::Text(a) => (i < a.len() && a.is_valid(i))
                .then(|| a.value(i))
                .and_then(crate::timestamp::parse_utc),
            Self::Seconds(a) => value(a, i).and_then(|v| DateTime::from_timestamp(v, 0)),
            Self::Millis(a) => value(a, i).and_then(DateTime::from_timestamp_millis),
            Self::Micros(a) => value(a, i).and_then(DateTime::from_timestamp_micros),
            Self::Nanos(a) => value(a, i).map(DateTime::from_timestamp_nanos),
            Self::Days(a) => {
                value(a, i).and_then(|d| DateTime::from_timestamp(i64::from(d) * 86_400, 0))
            }
            Self::DateMillis(a) => value(a, i).and_then(DateTime::from_timestamp_millis),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, TimestampMillisecondArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::super::test_support::*;
    use super::super::{Counters, InventoryOptions, read_inventory};
    use super::*;

    /// Parquet bytes of `columns`, with row groups of at most `row_group` rows.
    pub(crate) fn parquet_bytes(columns: Vec<(&str, ArrayRef)>, row_group: usize) -> Vec<u8> {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(row_group))
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        out
    }

    fn text(values: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn text_opt(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[tokio::test]
    async fn parquet_string_last_modified_and_since() {
        let url = format!("{}/inv.parquet", memory_root("pqstr"));
        let data = parquet_bytes(
            vec![
                ("bucket", text(&["b", "b", "b", "b", "b"])),
                (
                    "key",
                    text(&[
                        "exact.stac.json",
                        "old.stac.json",
                        "null.stac.json",
                        "offset.stac.json",
                        "other.txt",
                    ]),
                ),
                (
                    "last_modified_date",
                    text_opt(&[
                        Some("2024-01-01T00:00:00Z"),
                        Some("2023-12-31T23:59:59.999Z"),
                        None,
                        Some("2024-01-01T01:00:00+02:00"),
                        Some("2030-01-01"),
                    ]),
                ),
            ],
            1024,
        );
        put(&url, data).await;
        let since = utc("2024-01-01T00:00:00Z");
        let (records, stats) =
            collect(&url, InventoryOptions::default().with_since(Some(since))).await;
        assert_eq!(keys(&records), ["exact.stac.json", "null.stac.json"]);
        assert_eq!(records[0].last_modified, Some(since));
        assert_eq!(records[1].last_modified, None);
        assert_eq!(
            stats.skipped_since, 2,
            "old and offset-converted 2023-12-31T23:00Z"
        );
        assert_eq!(stats.since_unknown, 1);
        assert_eq!(stats.skipped_suffix, 1);
        let (everything, _) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(everything.len(), 4, "since None keeps all");
    }

    #[tokio::test]
    async fn parquet_timestamp_millis_utc_and_extra_columns() {
        let url = format!("{}/inv.parquet", memory_root("pqts"));
        let t = |s: &str| utc(s).timestamp_millis();
        let ts = TimestampMillisecondArray::from(vec![
            Some(t("2024-01-01T00:00:00Z")),
            Some(t("2023-06-01T00:00:00Z")),
            None,
            Some(t("2024-03-01T12:00:00.250Z")),
        ])
        .with_timezone("UTC");
        let data = parquet_bytes(
            vec![
                (
                    "size",
                    Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
                ),
                (
                    "key",
                    text(&["a.stac.json", "b.stac.json", "c.stac.json", "d.stac.json"]),
                ),
                ("storage_class", text(&["STANDARD"; 4])),
                ("last_modified_date", Arc::new(ts) as ArrayRef),
                ("bucket", text(&["b1", "b2", "b3", "b4"])),
            ],
            2,
        );
        put(&url, data).await;
        let since = utc("2024-01-01T00:00:00Z");
        let (records, stats) =
            collect(&url, InventoryOptions::default().with_since(Some(since))).await;
        assert_eq!(
            keys(&records),
            ["a.stac.json", "c.stac.json", "d.stac.json"]
        );
        assert_eq!(records[0].bucket, "b1");
        assert_eq!(records[2].bucket, "b4");
        assert_eq!(
            records[2].last_modified,
            Some(utc("2024-03-01T12:00:00.250Z"))
        );
        assert_eq!(stats.skipped_since, 1);
        assert_eq!(stats.since_unknown, 1);
    }

    #[tokio::test]
    async fn parquet_naive_timestamps_are_utc() {
        let url = format!("{}/inv.parquet", memory_root("pqnaive"));
        let ts =
            TimestampMillisecondArray::from(vec![utc("2024-01-01T00:00:00Z").timestamp_millis()]);
        let data = parquet_bytes(
            vec![
                ("bucket", text(&["b"])),
                ("key", text(&["a.stac.json"])),
                ("last_modified_date", Arc::new(ts) as ArrayRef),
            ],
            10,
        );
        put(&url, data).await;
        let (records, _) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(records[0].last_modified, Some(utc("2024-01-01T00:00:00Z")));
    }

    #[tokio::test]
    async fn parquet_250_rows_in_small_batches_keep_order() {
        let loc = Location::parse(&format!("{}/inv.parquet", memory_root("pq250"))).unwrap();
        let keys_in: Vec<String> = (0..250).map(|i| format!("k{i:03}.stac.json")).collect();
        let key_refs: Vec<&str> = keys_in.iter().map(String::as_str).collect();
        let data = parquet_bytes(
            vec![("bucket", text(&["b"; 250])), ("key", text(&key_refs))],
            64,
        );
        put(loc.url(), data).await;
        let counters = Arc::new(Counters::default());
        let filter = Filter::new(InventoryOptions::default(), counters.clone());
        let (tx, mut rx) = mpsc::channel(100);
        let flow = read_parquet(&loc, &filter, &tx, 100).await.unwrap();
        drop(tx);
        assert_eq!(flow, Flow::Continue);
        let mut got = Vec::new();
        let mut batches = 0;
        while let Some(batch) = rx.recv().await {
            let batch = batch.unwrap();
            assert!(batch.len() <= 100);
            batches += 1;
            got.extend(batch.into_iter().map(|e| match e {
                InventoryEntry::Record(r) => r.key,
                other => panic!("{other:?}"),
            }));
        }
        assert_eq!(got, keys_in);
        assert!(batches >= 3, "{batches} batches");
        assert_eq!(counters.snapshot().rows, 250);
        // The same through the public stream.
        let (records, stats) = collect(loc.url(), InventoryOptions::default()).await;
        assert_eq!(keys(&records), key_refs);
        assert_eq!(stats.kept, 250);
    }

    #[tokio::test]
    async fn parquet_limit_stops_early() {
        let url = format!("{}/inv.parquet", memory_root("pqlimit"));
        let keys_in: Vec<String> = (0..1000).map(|i| format!("k{i}.stac.json")).collect();
        let key_refs: Vec<&str> = keys_in.iter().map(String::as_str).collect();
        put(
            &url,
            parquet_bytes(
                vec![("bucket", text(&["b"; 1000])), ("key", text(&key_refs))],
                100,
            ),
        )
        .await;
        let (records, stats) = collect(&url, InventoryOptions::default().with_limit(Some(5))).await;
        assert_eq!(keys(&records), key_refs[..5]);
        assert!(stats.limited);
        assert_eq!(stats.rows, 5);
    }

    #[tokio::test]
    async fn empty_parquet_yields_nothing() {
        let url = format!("{}/empty.parquet", memory_root("pqempty"));
        put(
            &url,
            parquet_bytes(vec![("bucket", text(&[])), ("key", text(&[]))], 10),
        )
        .await;
        let (records, stats) = collect(&url, all()).await;
        assert!(records.is_empty());
        assert_eq!(stats.files, 1);
        assert_eq!(stats.rows, 0);
    }

    #[tokio::test]
    async fn missing_key_column_is_a_clear_error() {
        let url = format!("{}/nokey.parquet", memory_root("pqnokey"));
        put(
            &url,
            parquet_bytes(vec![("bucket", text(&["b"])), ("Key", text(&["k"]))], 10),
        )
        .await;
        let err = first_error(&url, all()).await;
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&url) && msg.contains("`key`"), "{msg}");
    }

    #[tokio::test]
    async fn corrupt_parquet_is_an_error_naming_the_file() {
        let url = format!("{}/bad.parquet", memory_root("pqbad"));
        put(&url, &b"PAR1 definitely not parquet"[..]).await;
        let mut stream = read_inventory(&url, all());
        let err = stream.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains(&url), "{err}");
        assert!(stream.next().await.is_none());
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(
            err.to_string().contains("not a readable Parquet file"),
            "{err}"
        );
        // CSV text under a Parquet name.
        put(&url, &b"bucket,key\nb,k.stac.json\n"[..]).await;
        let err = first_error(&url, all()).await;
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    }

    #[test]
    fn only_store_failures_are_not_the_files_fault() {
        use parquet::errors::ParquetError;
        let store = object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        };
        assert!(store_failure(&ParquetError::External(Box::new(store))));
        let io = std::io::Error::other("bad thrift");
        assert!(!store_failure(&ParquetError::External(Box::new(io))));
        assert!(!store_failure(&ParquetError::General(
            "Corrupt footer".into()
        )));
    }

    #[tokio::test]
    async fn missing_bucket_column_is_a_clear_error() {
        let url = format!("{}/nobucket.parquet", memory_root("pqnobucket"));
        put(
            &url,
            parquet_bytes(vec![("key", text(&["k.stac.json"]))], 10),
        )
        .await;
        let err = first_error(&url, all()).await;
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("no `bucket` column (columns: key)"), "{msg}");
    }

    #[tokio::test]
    async fn malformed_rows_carry_their_row_index_across_batches() {
        let url = format!("{}/mixed.parquet", memory_root("pqmixed"));
        let mut buckets = vec![Some("b"); 10];
        let mut keys_in: Vec<Option<String>> =
            (0..10).map(|i| Some(format!("k{i}.stac.json"))).collect();
        keys_in[1] = None;
        keys_in[7] = Some(String::new());
        buckets[8] = None;
        let keys_ref: Vec<Option<&str>> = keys_in.iter().map(|k| k.as_deref()).collect();
        put(
            &url,
            parquet_bytes(
                vec![("bucket", text_opt(&buckets)), ("key", text_opt(&keys_ref))],
                3,
            ),
        )
        .await;
        let loc = Location::parse(&url).unwrap();
        let counters = Arc::new(Counters::default());
        let filter = Filter::new(InventoryOptions::default(), counters.clone());
        let (tx, mut rx) = mpsc::channel(100);
        read_parquet(&loc, &filter, &tx, 4).await.unwrap();
        drop(tx);
        let mut malformed = Vec::new();
        let mut kept = 0;
        while let Some(batch) = rx.recv().await {
            for entry in batch.unwrap() {
                match entry {
                    InventoryEntry::Malformed(m) => malformed.push((m.locator(), m.problem)),
                    InventoryEntry::Record(_) => kept += 1,
                }
            }
        }
        assert_eq!(kept, 7);
        assert_eq!(
            malformed,
            [
                (
                    format!("{url}#row=1"),
                    "null key: bucket \"b\", key null".to_string()
                ),
                (
                    format!("{url}#row=7"),
                    "empty key: bucket \"b\", key \"\"".to_string()
                ),
                (
                    format!("{url}#row=8"),
                    "null bucket: bucket null, key \"k8.stac.json\"".to_string()
                ),
            ]
        );
        assert_eq!(counters.snapshot().malformed, 3);
    }

    #[tokio::test]
    async fn parquet_without_a_usable_row_is_not_an_inventory() {
        let url = format!("{}/nulls-only.parquet", memory_root("pqnullsonly"));
        put(
            &url,
            parquet_bytes(
                vec![
                    ("bucket", text_opt(&[None, Some("b")])),
                    ("key", text_opt(&[Some("k"), None])),
                ],
                10,
            ),
        )
        .await;
        let err = first_error(&url, all()).await;
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(
                "no usable row: all 2 data row(s) are malformed (first, row 0: null bucket"
            ),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn large_and_view_strings_and_date_columns() {
        use arrow_array::{Date32Array, LargeStringArray, StringViewArray};
        let url = format!("{}/types.parquet", memory_root("pqtypes"));
        let data = parquet_bytes(
            vec![
                (
                    "bucket",
                    Arc::new(LargeStringArray::from(vec!["b", "b"])) as ArrayRef,
                ),
                (
                    "key",
                    Arc::new(StringViewArray::from(vec!["x.stac.json", "y.stac.json"])),
                ),
                (
                    "last_modified_date",
                    Arc::new(Date32Array::from(vec![Some(19723), None])),
                ),
            ],
            10,
        );
        put(&url, data).await;
        let (records, _) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(keys(&records), ["x.stac.json", "y.stac.json"]);
        assert_eq!(records[0].last_modified, Some(utc("2024-01-01T00:00:00Z")));
        assert_eq!(records[1].last_modified, None);
    }

    #[tokio::test]
    async fn null_bucket_or_key_is_malformed() {
        let url = format!("{}/nulls.parquet", memory_root("pqnull"));
        let data = parquet_bytes(
            vec![
                ("bucket", text_opt(&[Some("b"), None, Some("b")])),
                (
                    "key",
                    text_opt(&[None, Some("x.stac.json"), Some("y.stac.json")]),
                ),
            ],
            10,
        );
        put(&url, data).await;
        let (records, stats) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(keys(&records), ["y.stac.json"]);
        assert_eq!(stats.malformed, 2);
        assert_eq!(stats.rows, 3);
    }
}
