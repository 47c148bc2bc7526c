//! The add-files equivalent: an Iceberg [`DataFile`] built from a Parquet footer.
//!
//! Columns are matched to table fields by name (files written by the Python tool carry no
//! field ids). Record count, file size, per-column sizes, value and null counts and exact
//! lower/upper bounds come from the footer; legacy encodings (int32 longs, millisecond or
//! nanosecond timestamps, float doubles) are converted to the table's types.

use std::collections::{HashMap, HashSet};

use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, PrimitiveType, Schema, Type,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};
use crate::partition::PartitionValue;

/// Build the catalog entry of a Parquet file from its footer.
pub fn data_file_from_footer(
    schema: &Schema,
    spec_id: i32,
    metadata: &ParquetMetaData,
    path: &str,
    size: u64,
    partition: &PartitionValue,
) -> Result<DataFile> {
    let mut column_sizes: HashMap<i32, u64> = HashMap::new();
    let mut value_counts: HashMap<i32, u64> = HashMap::new();
    let mut null_counts: HashMap<i32, u64> = HashMap::new();
    let mut lower: HashMap<i32, Datum> = HashMap::new();
    let mut upper: HashMap<i32, Datum> = HashMap::new();
    let mut nulls_complete: HashMap<i32, bool> = HashMap::new();
    let mut no_lower: HashSet<i32> = HashSet::new();
    let mut no_upper: HashSet<i32> = HashSet::new();

    for rg in metadata.row_groups() {
        for col in rg.columns() {
            let descr = col.column_descr();
            let path_parts = descr.path().parts();
            if path_parts.len() != 1 {
                continue;
            }
            let Some(field) = schema.field_by_name(&path_parts[0]) else {
                continue;
            };
            let Type::Primitive(ty) = field.field_type.as_ref() else {
                continue;
            };
            let id = field.id;
            *column_sizes.entry(id).or_default() += col.compressed_size().max(0) as u64;
            *value_counts.entry(id).or_default() += col.num_values().max(0) as u64;
            let stats = col.statistics();
            match stats.and_then(Statistics::null_count_opt) {
                Some(n) => *null_counts.entry(id).or_default() += n,
                None => {
                    nulls_complete.insert(id, false);
                }
            }
            // A row group whose values are all null has no min/max and bounds nothing.
            let all_null = stats.is_some_and(|s| {
                s.min_bytes_opt().is_none()
                    && s.max_bytes_opt().is_none()
                    && s.null_count_opt() == Some(col.num_values().max(0) as u64)
            });
            if all_null {
                continue;
            }
            let (lo, hi) = match stats {
                Some(stats) => bounds(ty, stats, timestamp_unit(descr.logical_type_ref())),
                None => (None, None),
            };
            merge_bound(&mut lower, &mut no_lower, id, lo, true);
            merge_bound(&mut upper, &mut no_upper, id, hi, false);
        }
    }
    for (id, complete) in nulls_complete {
        if !complete {
            null_counts.remove(&id);
        }
    }
    let mut builder = DataFileBuilder::default();
    builder
        .content(DataContentType::Data)
        .file_path(path.to_string())
        .file_format(DataFileFormat::Parquet)
        .partition(partition.to_struct())
        .partition_spec_id(spec_id)
        .record_count(metadata.file_metadata().num_rows().max(0) as u64)
        .file_size_in_bytes(size)
        .column_sizes(column_sizes)
        .value_counts(value_counts)
        .null_value_counts(null_counts)
        .lower_bounds(lower)
        .upper_bounds(upper)
        .split_offsets(Some(
            metadata
                .row_groups()
                .iter()
                .filter_map(|g| g.file_offset())
                .collect(),
        ));
    builder.build().map_err(|e| Error::Iceberg {
        context: format!("building the data file entry for {path}"),
        source: iceberg::Error::new(iceberg::ErrorKind::DataInvalid, e.to_string()),
    })
}

/// Fold one row group's bound into the file's; a row group without an exact bound poisons the
/// file-level bound (it would be wrong to claim one).
fn merge_bound(
    map: &mut HashMap<i32, Datum>,
    poisoned: &mut HashSet<i32>,
    id: i32,
    v: Option<Datum>,
    lower: bool,
) {
    if poisoned.contains(&id) {
        return;
    }
    match v {
        None => {
            map.remove(&id);
            poisoned.insert(id);
        }
        Some(d) => match map.get(&id) {
            Some(cur) if lower && *cur <= d => {}
            Some(cur) if !lower && *cur >= d => {}
            _ => {
                map.insert(id, d);
            }
        },
    }
}

#[derive(Clone, Copy)]
enum TsUnit {
    Millis,
    Micros,
    Nanos,
}

fn timestamp_unit(lt: Option<&parquet::basic::LogicalType>) -> TsUnit {
    match lt {
        Some(parquet::basic::LogicalType::Timestamp { unit, .. }) => {
            let s = format!("{unit:?}").to_ascii_uppercase();
            if s.contains("MILLIS") {
                TsUnit::Millis
            } else if s.contains("NANOS") {
                TsUnit::Nanos
            } else {
                TsUnit::Micros
            }
        }
        _ => TsUnit::Micros,
    }
}

fn to_micros(v: i64, unit: TsUnit) -> i64 {
    match unit {
        TsUnit::Millis => v.saturating_mul(1000),
        TsUnit::Micros => v,
        TsUnit::Nanos => v.div_euclid(1000),
    }
}

fn bounds(ty: &PrimitiveType, stats: &Statistics, unit: TsUnit) -> (Option<Datum>, Option<Datum>) {
    let exact_lo = stats.min_is_exact();
    let exact_hi = stats.max_is_exact();
    let pick =
        |lo: Option<Datum>, hi: Option<Datum>| (lo.filter(|_| exact_lo), hi.filter(|_| exact_hi));
    match (ty, stats) {
        (PrimitiveType::String, Statistics::ByteArray(s)) => pick(
            s.min_opt()
                .and_then(|b| b.as_utf8().ok())
                .map(Datum::string),
            s.max_opt()
                .and_then(|b| b.as_utf8().ok())
                .map(Datum::string),
        ),
        (PrimitiveType::Long, Statistics::Int64(s)) => pick(
            s.min_opt().map(|v| Datum::long(*v)),
            s.max_opt().map(|v| Datum::long(*v)),
        ),
        (PrimitiveType::Long, Statistics::Int32(s)) => pick(
            s.min_opt().map(|v| Datum::long(*v as i64)),
            s.max_opt().map(|v| Datum::long(*v as i64)),
        ),
        (PrimitiveType::Int, Statistics::Int32(s)) => pick(
            s.min_opt().map(|v| Datum::int(*v)),
            s.max_opt().map(|v| Datum::int(*v)),
        ),
        (PrimitiveType::Double, Statistics::Double(s)) => pick(
            s.min_opt()
                .filter(|v| !v.is_nan())
                .map(|v| Datum::double(*v)),
            s.max_opt()
                .filter(|v| !v.is_nan())
                .map(|v| Datum::double(*v)),
        ),
        (PrimitiveType::Double, Statistics::Float(s)) => pick(
            s.min_opt()
                .filter(|v| !v.is_nan())
                .map(|v| Datum::double(*v as f64)),
            s.max_opt()
                .filter(|v| !v.is_nan())
                .map(|v| Datum::double(*v as f64)),
        ),
        (PrimitiveType::Boolean, Statistics::Boolean(s)) => pick(
            s.min_opt().map(|v| Datum::bool(*v)),
            s.max_opt().map(|v| Datum::bool(*v)),
        ),
        (PrimitiveType::Timestamptz, Statistics::Int64(s)) => pick(
            s.min_opt()
                .map(|v| Datum::timestamptz_micros(to_micros(*v, unit))),
            s.max_opt()
                .map(|v| Datum::timestamptz_micros(to_micros(*v, unit))),
        ),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use iceberg::spec::Literal;
    use std::sync::Arc;

    use arrow_array::{Int32Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
    use iceberg::spec::PrimitiveLiteral;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::schema::base_schema;

    /// A file like the Python tool wrote: no field ids, int32 metric, ms timestamps, two row groups.
    fn legacy_file() -> (Vec<u8>, ParquetMetaData) {
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("grid_partition", DataType::Utf8, true),
            Field::new(
                "datetime",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("percent_valid_pixels", DataType::Int32, true),
            Field::new("not_in_table", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("b"), Some("a"), None])),
                Arc::new(StringArray::from(vec!["c1", "c1", "c1"])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![
                        Some(1_600_000_000_123),
                        None,
                        Some(1_500_000_000_000),
                    ])
                    .with_timezone("UTC"),
                ),
                Arc::new(Int32Array::from(vec![Some(5), Some(90), None])),
                Arc::new(StringArray::from(vec!["x", "y", "z"])),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        let meta = w.close().unwrap();
        (buf, meta)
    }

    #[test]
    fn builds_counts_bounds_and_partition_from_a_legacy_footer() {
        let schema = base_schema().unwrap();
        let (bytes, meta) = legacy_file();
        let part = PartitionValue {
            cell: "c1".into(),
            year: Some(2020),
        };
        let df = data_file_from_footer(
            &schema,
            0,
            &meta,
            "file:///w/x.parquet",
            bytes.len() as u64,
            &part,
        )
        .unwrap();
        assert_eq!(df.record_count(), 3);
        assert_eq!(df.file_size_in_bytes(), bytes.len() as u64);
        assert_eq!(df.split_offsets().map(|s| s.len()), Some(2));
        let id = |n: &str| schema.field_by_name(n).unwrap().id;
        assert_eq!(df.value_counts()[&id("id")], 3);
        assert_eq!(df.null_value_counts()[&id("id")], 1);
        assert_eq!(df.lower_bounds()[&id("id")], Datum::string("a"));
        assert_eq!(df.upper_bounds()[&id("id")], Datum::string("b"));
        // int32 stats become long bounds; ms timestamps become µs
        assert_eq!(
            df.lower_bounds()[&id("percent_valid_pixels")],
            Datum::long(5)
        );
        assert_eq!(
            df.upper_bounds()[&id("percent_valid_pixels")],
            Datum::long(90)
        );
        assert_eq!(
            df.lower_bounds()[&id("datetime")],
            Datum::timestamptz_micros(1_500_000_000_000_000)
        );
        assert_eq!(
            df.upper_bounds()[&id("datetime")],
            Datum::timestamptz_micros(1_600_000_000_123_000)
        );
        // columns outside the table are ignored, partition is (cell, years since 1970)
        assert_eq!(df.column_sizes().len(), 4);
        let fields = df.partition().fields();
        assert_eq!(
            fields[0],
            Some(Literal::Primitive(PrimitiveLiteral::String("c1".into())))
        );
        assert_eq!(
            fields[1],
            Some(Literal::Primitive(PrimitiveLiteral::Int(50)))
        );
        let unknown = PartitionValue {
            cell: "c1".into(),
            year: None,
        };
        assert_eq!(unknown.dir(), "grid_partition=c1/year=unknown");
        assert_eq!(unknown.to_struct().fields()[1], None);
    }
}
