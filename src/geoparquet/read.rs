//! Reading data files back into rows, tolerant of every encoding the Python tool wrote:
//! ms/µs/ns timestamps, int32/int64, float metrics, utf8/large_utf8/view/dictionary strings,
//! snappy or zstd, missing optional columns, evolved columns. Columns the table does not know
//! are kept in `properties_overflow`; nothing is dropped.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::item::{Columns, ItemRow, row_from_stored};
use crate::schema::{COVERING_COLUMN, OVERFLOW_COLUMN};

/// Reader options that decode only what reading rows needs: no column, size or encoding
/// statistics and no embedded Arrow schema (the Parquet schema gives the types; [`normalise`]
/// evens out string and binary encodings). A footer of this project's 33-column files is
/// ~10 KB, most of it statistics; measured on `serve`'s point searches (12 small files each),
/// decoding it in full was an eighth of the CPU. Readers that prune row groups by statistics
/// need them: see [`with_statistics`].
pub(crate) fn lean_reader_options() -> ArrowReaderOptions {
    use parquet::file::metadata::ParquetStatisticsPolicy as Policy;
    ArrowReaderOptions::new()
        .with_skip_arrow_metadata(true)
        .with_column_stats_policy(Policy::SkipAll)
        .with_size_stats_policy(Policy::SkipAll)
        .with_encoding_stats_policy(Policy::SkipAll)
}

/// [`lean_reader_options`] with the column statistics kept (for pruning row groups).
pub(crate) fn with_statistics(options: ArrowReaderOptions) -> ArrowReaderOptions {
    options.with_column_stats_policy(parquet::file::metadata::ParquetStatisticsPolicy::KeepAll)
}

/// Decode a whole Parquet file into rows.
pub fn read_file_rows(bytes: Bytes, columns: &Columns, label: &str) -> Result<Vec<ItemRow>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| Error::parquet(label, e))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::parquet(label, e))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::arrow(label, e))?;
        rows.extend(batch_rows(&batch, columns, label)?);
    }
    Ok(rows)
}

/// Cast dictionary, view and large string/binary arrays to plain `Utf8`/`Binary`.
pub(crate) fn normalise(array: &ArrayRef, label: &str) -> Result<ArrayRef> {
    match array.data_type() {
        DataType::Dictionary(_, value) => {
            arrow_cast::cast(array, value).map_err(|e| Error::arrow(label, e))
        }
        DataType::Utf8View | DataType::LargeUtf8 => {
            arrow_cast::cast(array, &DataType::Utf8).map_err(|e| Error::arrow(label, e))
        }
        DataType::BinaryView | DataType::LargeBinary => {
            arrow_cast::cast(array, &DataType::Binary).map_err(|e| Error::arrow(label, e))
        }
        _ => Ok(array.clone()),
    }
}

fn batch_rows(batch: &RecordBatch, columns: &Columns, label: &str) -> Result<Vec<ItemRow>> {
    let schema = batch.schema();
    let mut id_col = None;
    let mut geom_col = None;
    let mut overflow_col = None;
    let mut others: Vec<(String, ArrayRef)> = Vec::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        // The covering is derived from the geometry when the row is written again.
        if field.name() == COVERING_COLUMN {
            continue;
        }
        let array = normalise(array, label)?;
        match field.name().as_str() {
            "id" => id_col = Some(array),
            "geometry" => geom_col = Some(array),
            "grid_partition" => {}
            OVERFLOW_COLUMN => overflow_col = Some(array),
            name => others.push((name.to_string(), array)),
        }
    }
    let Some(id_col) = id_col else {
        return Err(Error::Parse {
            location: label.to_string(),
            reason: "data file has no `id` column".into(),
        });
    };
    let ids = id_col.as_string_opt::<i32>().ok_or_else(|| Error::Parse {
        location: label.to_string(),
        reason: format!("`id` column has type {}", id_col.data_type()),
    })?;
    let geoms = geom_col.as_ref().and_then(|g| g.as_binary_opt::<i32>());
    let overflows = overflow_col.as_ref().and_then(|o| o.as_string_opt::<i32>());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let id = if ids.is_null(i) {
            String::new()
        } else {
            ids.value(i).to_string()
        };
        let wkb = geoms.and_then(|g| (!g.is_null(i)).then(|| g.value(i).to_vec()));
        let overflow = overflows.and_then(|o| (!o.is_null(i)).then(|| o.value(i)));
        let stored: Vec<(String, Json)> = others
            .iter()
            .filter(|(_, a)| !a.is_null(i))
            .map(|(n, a)| (n.clone(), cell_json(a, i)))
            .collect();
        rows.push(row_from_stored(id, wkb, overflow, stored, columns));
    }
    Ok(rows)
}

fn micros(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1000),
    }
}

fn number(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// One cell as JSON (timestamps as RFC 3339 UTC text, `Z`, with as many fractional digits as
/// needed: none, 3, 6 or 9).
pub(crate) fn cell_json(a: &ArrayRef, i: usize) -> Json {
    match a.data_type() {
        DataType::Utf8 => Json::String(a.as_string::<i32>().value(i).to_string()),
        DataType::Boolean => Json::Bool(a.as_boolean().value(i)),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => number(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => number(a.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a
                    .as_primitive::<arrow_array::types::TimestampSecondType>()
                    .value(i),
                TimeUnit::Millisecond => a
                    .as_primitive::<arrow_array::types::TimestampMillisecondType>()
                    .value(i),
                TimeUnit::Microsecond => a
                    .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                    .value(i),
                TimeUnit::Nanosecond => a
                    .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                    .value(i),
            };
            DateTime::from_timestamp_micros(micros(v, unit)).map_or(Json::Null, |d| {
                Json::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            })
        }
        _ => arrow_cast::display::array_value_to_string(a, i)
            .map(Json::String)
            .unwrap_or(Json::Null),
    }
}
