//! The add-files equivalent: an Iceberg [`DataFile`] built from a Parquet footer.
//!
//! Columns are matched to table fields by name (files written by the Python tool carry no
//! field ids). Record count, file size, per-column sizes, value and null counts and exact
//! lower/upper bounds come from the footer; legacy encodings (int32 longs, millisecond or
//! nanosecond timestamps, float doubles) are converted to the table's types.

use std::collections::{HashMap, HashSet};

use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, PrimitiveType,
    Schema, Struct, Type,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};

/// The partition tuple of a file: (grid_partition, years since 1970 or null).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionValue {
    /// The cell / region key.
    pub cell: String,
    /// The UTC calendar year; `None` for `year=unknown`.
    pub year: Option<i32>,
}

impl PartitionValue {
    /// Iceberg partition struct (year transform = years since 1970).
    pub fn to_struct(&self) -> Struct {
        Struct::from_iter([
            Some(Literal::string(&self.cell)),
            self.year.map(|y| Literal::int(y - 1970)),
        ])
    }

    /// The hive directory `grid_partition=<cell>/year=<yyyy|unknown>`.
    pub fn dir(&self) -> String {
        match self.year {
            Some(y) => format!("grid_partition={}/year={y}", self.cell),
            None => format!("grid_partition={}/year=unknown", self.cell),
        }
    }
}

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
