//! The columnar fast path of a bucket merge: decode every file into Arrow batches conformed to
//! the table's Arrow schema, dedup and sort with index vectors, and write the kept rows with
//! `take` — no per-row objects. It applies when every file stores only table columns with types
//! that widen losslessly (the encodings ingest and the Python tool wrote: ms/µs timestamps,
//! int32/int64, float32/float64, utf8/large_utf8/view/dictionary strings); stored
//! `properties_overflow` values pass through as they are (the row-wise merge keeps them as they
//! are too) when the table has that column. Anything else returns `None` and the caller uses the row-wise
//! merge in `read.rs`, which handles every case (and reports errors). Both paths implement the
//! same rules: keep per id the latest `updated`, then `created`, then newest file; rows without
//! an id are all kept; sort by (platform, datetime, id), nulls first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array, new_null_array};
use arrow_schema::{DataType, Schema, SortOptions, TimeUnit};
use arrow_select::take::take_record_batch;
use bytes::Bytes;

use crate::geoparquet::decode::decode_file_without;
use crate::geoparquet::read::normalise;
use crate::geoparquet::{EncodedFile, GeoParquetWriter, WriterOptions};
use crate::hash_index::{IdHash, hash_id};
use crate::item::Version;
use crate::schema::{ColumnType, TableColumn};

/// Result of a columnar merge: encoded files (relative name chosen by `name_of`), rows before
/// and after dedup.
pub(crate) struct Merged {
    pub files: Vec<(String, EncodedFile)>,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Digests of the ids written.
    pub ids: Vec<IdHash>,
}

/// Merge `inputs` ((rank, url, bytes), oldest rank first) of one bucket, dropping the rows
/// whose id digest is in `exclude`, or say why a file needs the row-wise path.
pub(crate) fn merge(
    inputs: &[(usize, String, Bytes)],
    table: &[TableColumn],
    cell: &str,
    writer: &WriterOptions,
    max_rows: Option<usize>,
    exclude: Option<&HashSet<IdHash>>,
    mut name_of: impl FnMut() -> String,
) -> Result<Merged, String> {
    let (_, schema) = crate::geoparquet::table_schema(table);
    let mut batches = Vec::new();
    let mut ranks: Vec<usize> = Vec::new();
    // `conform` fills grid_partition with the bucket's cell and turns an all-null column of
    // the table into a null array: neither is decoded. A column the table does not know is
    // decoded even when all null (conform sends such files down the row-wise path).
    let omit = |name: &str, all_null: bool| {
        name == "grid_partition" || (all_null && table.iter().any(|c| c.name == name))
    };
    for (rank, url, bytes) in inputs {
        let decoded =
            decode_file_without(bytes, 65_536, &omit).map_err(|e| format!("{url}: {e}"))?;
        for batch in decoded {
            let batch = conform(&batch, table, &schema, cell).map_err(|e| format!("{url}: {e}"))?;
            ranks.extend(std::iter::repeat_n(*rank, batch.num_rows()));
            batches.push(batch);
        }
    }
    // Dedup and sort on the key columns alone; the full rows are gathered once, straight from
    // the decoded batches.
    let keys = key_columns(&batches)?;
    let rows_before = keys.num_rows() as u64;
    let kept = dedup_indices(&keys, &ranks, exclude)?;
    let order = sort_indices(&keys, &kept)?;
    let ids = match keys
        .column_by_name("id")
        .and_then(|a| a.as_string_opt::<i32>())
    {
        Some(a) => kept
            .values()
            .iter()
            .map(|&i| hash_id(a.value(i as usize)))
            .collect(),
        None => Vec::new(),
    };
    drop(keys);
    let sorted = gather(&schema, &batches, &order)?;
    drop(batches);
    let rows_after = sorted.num_rows() as u64;

    let chunk = max_rows.unwrap_or(usize::MAX).max(1);
    let mut files = Vec::new();
    let mut offset = 0;
    while offset < sorted.num_rows() {
        let len = chunk.min(sorted.num_rows() - offset);
        let part = sorted.slice(offset, len);
        let rel = name_of();
        let mut buf = Vec::with_capacity(part.get_array_memory_size() / 2 + 4096);
        let mut w = GeoParquetWriter::try_new_sized(&mut buf, table, writer, &rel, len)
            .map_err(|e| e.to_string())?;
        w.write_batch(&part).map_err(|e| e.to_string())?;
        let metadata = w.finish().map_err(|e| e.to_string())?;
        files.push((
            rel,
            EncodedFile {
                bytes: buf,
                metadata,
                rows: len,
            },
        ));
        offset += len;
    }
    Ok(Merged {
        files,
        rows_before,
        rows_after,
        ids,
    })
}

/// The columns dedup and sort read, concatenated over `batches` (all in the table's schema).
fn key_columns(batches: &[RecordBatch]) -> Result<RecordBatch, String> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    };
    for name in ["id", "updated", "created", "platform", "datetime"] {
        let Ok(i) = first.schema_ref().index_of(name) else {
            continue;
        };
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        arrays.push(arrow_select::concat::concat(&parts).map_err(|e| e.to_string())?);
        fields.push(first.schema_ref().field(i).clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

/// Rows `order` (indices into the concatenation of `batches`) as one batch.
fn gather(
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
    order: &UInt32Array,
) -> Result<RecordBatch, String> {
    if let [only] = batches {
        return take_record_batch(only, order).map_err(|e| e.to_string());
    }
    if batches.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    // Global index → (batch, row).
    let mut starts = Vec::with_capacity(batches.len());
    let mut at = 0usize;
    for b in batches {
        starts.push(at);
        at += b.num_rows();
    }
    let pairs: Vec<(usize, usize)> = order
        .values()
        .iter()
        .map(|&g| {
            let g = g as usize;
            let b = starts.partition_point(|s| *s <= g) - 1;
            (b, g - starts[b])
        })
        .collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    arrow_select::interleave::interleave_record_batch(&refs, &pairs).map_err(|e| e.to_string())
}

/// Is `from` a lossless widening to the table column type `to`?
fn widens(from: &DataType, to: ColumnType) -> bool {
    use DataType::*;
    match (from, to) {
        (Utf8 | LargeUtf8 | Utf8View, ColumnType::String) => true,
        (Dictionary(_, v), ColumnType::String) => {
            matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View)
        }
        (Binary | LargeBinary | BinaryView, ColumnType::Binary) => true,
        (Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32, ColumnType::Long) => true,
        (
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Float32 | Float64,
            ColumnType::Double,
        ) => true,
        (Boolean, ColumnType::Boolean) => true,
        (
            Timestamp(TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond, _),
            ColumnType::TimestampTz,
        ) => true,
        _ => false,
    }
}

/// One decoded batch in the table's Arrow schema, or why it needs the row-wise path.
fn conform(
    batch: &RecordBatch,
    table: &[TableColumn],
    schema: &Arc<Schema>,
    cell: &str,
) -> Result<RecordBatch, String> {
    let n = batch.num_rows();
    let by_name: HashMap<&str, &ArrayRef> = batch
        .schema_ref()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| (f.name().as_str(), a))
        .collect();
    // A column the table does not know would go to properties_overflow: row-wise path.
    if let Some(name) = by_name
        .keys()
        .find(|name| **name != "grid_partition" && !table.iter().any(|c| c.name == **name))
    {
        return Err(format!("column `{name}` is not in the table"));
    }
    let mut arrays = Vec::with_capacity(table.len());
    for (col, field) in table.iter().zip(schema.fields()) {
        let target = field.data_type();
        let array = match (col.name.as_str(), by_name.get(col.name.as_str())) {
            ("grid_partition", _) => Arc::new(StringArray::from(vec![cell; n])) as ArrayRef,
            (_, Some(a)) if col.ty == ColumnType::Bbox && a.data_type() == target => (*a).clone(),
            // Files written before the covering (or by other tools): from the geometries.
            // (The geometry column comes first in the table, so it is conformed already.)
            _ if col.ty == ColumnType::Bbox => {
                let geometry = table.iter().position(|c| c.name == "geometry");
                covering_of(geometry.and_then(|i| arrays.get(i)), target, n)?
            }
            (_, None) => new_null_array(target, n),
            (_, Some(a)) if a.null_count() == a.len() => new_null_array(target, n),
            // Our own files store the table's types: nothing to convert.
            (_, Some(a)) if a.data_type() == target => (*a).clone(),
            (_, Some(a)) => {
                if !widens(a.data_type(), col.ty) {
                    return Err(format!("column `{}` is {}", col.name, a.data_type()));
                }
                let a = normalise(a, &col.name).map_err(|e| e.to_string())?;
                if let DataType::Timestamp(unit, _) = a.data_type() {
                    utc_micros(&a, *unit)?
                } else if a.data_type() == target {
                    a
                } else {
                    arrow_cast::cast(&a, target).map_err(|e| e.to_string())?
                }
            }
        };
        if array.data_type() != target {
            return Err(format!(
                "column `{}` became {} instead of {target}",
                col.name,
                array.data_type()
            ));
        }
        arrays.push(array);
    }
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())
}

/// The covering column for `n` rows from their WKB geometries (null where there is none).
fn covering_of(
    geometry: Option<&ArrayRef>,
    target: &DataType,
    n: usize,
) -> Result<ArrayRef, String> {
    let DataType::Struct(fields) = target else {
        return Err(format!("the covering column is {target}"));
    };
    let mut b = crate::geoparquet::CoveringBuilder::new(fields.clone(), n);
    match geometry {
        None => (0..n).for_each(|_| b.push(None)),
        Some(g) => {
            let wkb = g
                .as_binary_opt::<i32>()
                .ok_or_else(|| format!("column `geometry` is {}", g.data_type()))?;
            for w in wkb.iter() {
                b.push(w.and_then(crate::item::wkb_summary).and_then(|(_, r)| r));
            }
        }
    }
    Ok(b.finish())
}

/// A timestamp column (any zone or none: the values are UTC instants, naive ones taken as UTC)
/// as `timestamp[us, UTC]`.
fn utc_micros(a: &ArrayRef, unit: TimeUnit) -> Result<ArrayRef, String> {
    let factor: i64 = match unit {
        TimeUnit::Second => 1_000_000,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1,
        TimeUnit::Nanosecond => return Err("nanosecond timestamps".into()),
    };
    let raw = arrow_cast::cast(a, &DataType::Int64).map_err(|e| e.to_string())?;
    let raw = raw.as_primitive::<arrow_array::types::Int64Type>();
    let values: arrow_array::TimestampMicrosecondArray = raw
        .try_unary(|v| v.checked_mul(factor).ok_or(()))
        .map_err(|_| "timestamp out of range".to_string())?;
    Ok(Arc::new(values.with_timezone("UTC")))
}

/// Micro-second timestamp column `name` of `batch`, when the table types it as a timestamp.
fn timestamps<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Option<&'a arrow_array::PrimitiveArray<TimestampMicrosecondType>> {
    batch
        .column_by_name(name)
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
}

/// Indices of the rows to keep: per id the newest by [`Version`] (file rank = commit order),
/// first occurrence on ties; every row without an id; none whose id digest is in `exclude`.
fn dedup_indices(
    batch: &RecordBatch,
    ranks: &[usize],
    exclude: Option<&HashSet<IdHash>>,
) -> Result<UInt32Array, String> {
    let ids = batch
        .column_by_name("id")
        .and_then(|a| a.as_string_opt::<i32>())
        .ok_or("no string `id` column")?;
    // The row-wise path writes a missing id as "": leave such buckets to it.
    if ids.null_count() > 0 {
        return Err("rows without id".into());
    }
    let updated = timestamps(batch, "updated");
    let created = timestamps(batch, "created");
    let at = |a: Option<&arrow_array::PrimitiveArray<TimestampMicrosecondType>>, i: usize| {
        a.and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
    };
    let key = |i: usize| Version::new(at(updated, i), at(created, i), ranks[i] as u64);
    let mut best: HashMap<&str, usize> = HashMap::with_capacity(batch.num_rows());
    let mut anonymous = Vec::new();
    for i in 0..batch.num_rows() {
        let id = ids.value(i);
        if exclude.is_some_and(|x| x.contains(&hash_id(id))) {
            continue;
        }
        if id.is_empty() {
            anonymous.push(i as u32);
            continue;
        }
        match best.get(id) {
            Some(&cur) if key(cur) >= key(i) => {}
            _ => {
                best.insert(id, i);
            }
        }
    }
    let mut keep: Vec<u32> = best.into_values().map(|i| i as u32).collect();
    keep.extend(anonymous);
    keep.sort_unstable();
    Ok(UInt32Array::from(keep))
}

/// The rows `kept` of `batch` in sort order (platform, datetime, id), nulls first.
fn sort_indices(batch: &RecordBatch, kept: &UInt32Array) -> Result<UInt32Array, String> {
    let options = Some(SortOptions {
        descending: false,
        nulls_first: true,
    });
    let mut columns = Vec::new();
    for name in ["platform", "datetime", "id"] {
        let Some(a) = batch.column_by_name(name) else {
            continue;
        };
        // Only a typed key sorts (a `platform` that is not a string is not a sort key).
        let typed = match name {
            "datetime" => a.as_primitive_opt::<TimestampMicrosecondType>().is_some(),
            _ => a.as_string_opt::<i32>().is_some(),
        };
        if typed {
            columns.push(arrow_ord::sort::SortColumn {
                values: arrow_select::take::take(a, kept, None).map_err(|e| e.to_string())?,
                options,
            });
        }
    }
    if columns.is_empty() {
        return Ok(kept.clone());
    }
    let order = arrow_ord::sort::lexsort_to_indices(&columns, None).map_err(|e| e.to_string())?;
    arrow_select::take::take(kept, &order, None)
        .map(|a| a.as_primitive::<arrow_array::types::UInt32Type>().clone())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geoparquet::{encode_group, sort_rows};
    use crate::item::{Columns, ItemRow};
    use crate::schema::{OVERFLOW_COLUMN, base_schema, table_columns};
    use arrow_array::{Float32Array, Int32Array, TimestampMillisecondArray};
    use arrow_schema::Field;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn wkb_point(x: f64, y: f64) -> Vec<u8> {
        let mut v = vec![1u8, 1, 0, 0, 0];
        v.extend(x.to_le_bytes());
        v.extend(y.to_le_bytes());
        v
    }

    /// A file the way the Python tool wrote them: ms timestamps without zone, int32 and
    /// float32 metrics, large_utf8 strings, a subset of the columns.
    /// (id, platform, datetime ms, updated ms, percent_valid_pixels)
    type Row<'a> = (&'a str, Option<&'a str>, Option<i64>, Option<i64>, i32);

    fn python_style_file(rows: &[Row]) -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::LargeUtf8, true),
            Field::new("grid_partition", DataType::LargeUtf8, true),
            Field::new("geometry", DataType::LargeBinary, true),
            Field::new("platform", DataType::LargeUtf8, true),
            Field::new(
                "datetime",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new(
                "updated",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("percent_valid_pixels", DataType::Int32, true),
            Field::new("latitude", DataType::Float32, true),
        ]));
        let ids: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let geoms: Vec<Vec<u8>> = rows
            .iter()
            .enumerate()
            .map(|(i, _)| wkb_point(i as f64, -(i as f64)))
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow_array::LargeStringArray::from(ids)),
                Arc::new(arrow_array::LargeStringArray::from(vec!["x"; rows.len()])),
                Arc::new(arrow_array::LargeBinaryArray::from_iter_values(
                    geoms.iter(),
                )),
                Arc::new(arrow_array::LargeStringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(
                    rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                )),
                Arc::new(Float32Array::from(
                    rows.iter().map(|r| r.4 as f32 / 3.0).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        Bytes::from(buf)
    }

    fn decode(file: &EncodedFile) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.bytes.clone()))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    fn row_wise(inputs: &[(usize, String, Bytes)], table: &[TableColumn]) -> EncodedFile {
        let columns = Columns::new(table);
        let mut rows = Vec::new();
        for (rank, url, bytes) in inputs {
            for r in crate::geoparquet::read::read_file_rows(bytes.clone(), &columns, url).unwrap()
            {
                rows.push((*rank, r));
            }
        }
        let kept = super::super::dedup(rows);
        let mut refs: Vec<&ItemRow> = kept.iter().collect();
        sort_rows(&mut refs);
        encode_group(
            &refs,
            "8101bffffffffff",
            &columns,
            table,
            &WriterOptions::default(),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn columnar_merge_equals_the_row_wise_merge() {
        let table = table_columns(&base_schema().unwrap());
        // Overlapping ids across files: `a` newest by updated in file 0, `b` tied on
        // updated (newest file wins), `c` only in file 1, `d` has no updated (file 1 wins
        // by rank), null platform and datetime sort first.
        let f0 = python_style_file(&[
            ("a", Some("S2"), Some(3_000), Some(9_000), 10),
            ("b", Some("S1"), Some(2_000), Some(5_000), 20),
            ("d", None, None, None, 30),
        ]);
        let f1 = python_style_file(&[
            ("a", Some("S2"), Some(3_000), Some(1_000), 11),
            ("b", Some("S1"), Some(2_000), Some(5_000), 21),
            ("c", Some("S1"), Some(1_000), None, 40),
            ("d", None, None, None, 31),
            ("e", Some("L8"), None, Some(7), 50),
        ]);
        let inputs = vec![(0, "f0".to_string(), f0), (1, "f1".to_string(), f1)];
        let merged = merge(
            &inputs,
            &table,
            "8101bffffffffff",
            &WriterOptions::default(),
            None,
            None,
            || "out.parquet".to_string(),
        )
        .expect("the fast path applies to Python-format files");
        assert_eq!((merged.rows_before, merged.rows_after), (8, 5));
        assert_eq!(merged.files.len(), 1);
        let fast = decode(&merged.files[0].1);
        let slow = decode(&row_wise(&inputs, &table));
        assert_eq!(fast.schema(), slow.schema());
        for (i, f) in fast.schema().fields().iter().enumerate() {
            assert_eq!(fast.column(i), slow.column(i), "column {}", f.name());
        }
        let ids: Vec<&str> = fast.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["d", "e", "c", "b", "a"]);
        let pvp = fast
            .column_by_name("percent_valid_pixels")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(pvp.values().to_vec(), vec![31, 50, 40, 21, 10]);
        let geo = &merged.files[0]
            .1
            .metadata
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(
            geo.iter()
                .any(|kv| kv.key == "geo" && kv.value.as_deref().unwrap().contains("\"Point\""))
        );
    }

    #[test]
    fn split_by_max_rows() {
        let table = table_columns(&base_schema().unwrap());
        let f0 = python_style_file(&[
            ("a", Some("S2"), Some(3_000), Some(9_000), 10),
            ("b", Some("S1"), Some(2_000), Some(5_000), 20),
            ("c", Some("S1"), Some(1_000), None, 40),
        ]);
        let mut n = 0;
        let merged = merge(
            &[(0, "f0".to_string(), f0)],
            &table,
            "c",
            &WriterOptions::default(),
            Some(2),
            None,
            || {
                n += 1;
                format!("{n}.parquet")
            },
        )
        .unwrap();
        let sizes: Vec<usize> = merged.files.iter().map(|f| f.1.rows).collect();
        assert_eq!(sizes, [2, 1]);
    }

    #[test]
    fn unknown_columns_and_stored_overflow_take_the_row_wise_path() {
        let table = table_columns(&base_schema().unwrap());
        let file_with = |name: &str, ty: DataType, value: ArrayRef| {
            let schema = Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, true),
                Field::new(name, ty, true),
            ]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec!["a"])), value],
            )
            .unwrap();
            let mut buf = Vec::new();
            let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            vec![(0, "f".to_string(), Bytes::from(buf))]
        };
        let opts = WriterOptions::default();
        let unknown = file_with(
            "new:property",
            DataType::Utf8,
            Arc::new(StringArray::from(vec!["v"])),
        );
        assert!(merge(&unknown, &table, "c", &opts, None, None, || "o".into()).is_err());
        // A float in a long column does not fit: it goes to the overflow column (row-wise).
        let misfit = file_with(
            "percent_valid_pixels",
            DataType::Float64,
            Arc::new(arrow_array::Float64Array::from(vec![37.5])),
        );
        assert!(merge(&misfit, &table, "c", &opts, None, None, || "o".into()).is_err());
        let mut with_overflow = table.clone();
        with_overflow.push(TableColumn {
            name: OVERFLOW_COLUMN.into(),
            field_id: 99,
            ty: ColumnType::String,
        });
        let overflow = file_with(
            OVERFLOW_COLUMN,
            DataType::Utf8,
            Arc::new(StringArray::from(vec![r#"{"x":1}"#])),
        );
        // Stored overflow values need the column in the table (the row-wise path refuses
        // too); with it they pass through as they are, as the row-wise path keeps them.
        assert!(merge(&overflow, &table, "c", &opts, None, None, || "o".into()).is_err());
        let merged = merge(&overflow, &with_overflow, "c", &opts, None, None, || {
            "o".into()
        })
        .unwrap();
        let fast = decode(&merged.files[0].1);
        let slow = decode(&row_wise(&overflow, &with_overflow));
        for name in ["id", OVERFLOW_COLUMN] {
            assert_eq!(
                fast.column_by_name(name),
                slow.column_by_name(name),
                "{name}"
            );
        }
        let kept = fast.column_by_name(OVERFLOW_COLUMN).unwrap();
        assert_eq!(kept.as_string::<i32>().value(0), r#"{"x":1}"#);
    }

    #[test]
    fn widening_rules() {
        assert!(widens(&DataType::Int32, ColumnType::Long));
        assert!(widens(&DataType::LargeUtf8, ColumnType::String));
        assert!(widens(
            &DataType::Timestamp(TimeUnit::Millisecond, None),
            ColumnType::TimestampTz
        ));
        assert!(!widens(
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
            ColumnType::TimestampTz
        ));
        assert!(!widens(&DataType::Float64, ColumnType::Long));
        assert!(!widens(&DataType::UInt64, ColumnType::Long));
        assert!(!widens(&DataType::Int64, ColumnType::String));
    }
}
