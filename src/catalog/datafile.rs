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

use super::avro::{Cursor, put_bytes, put_long};
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
    Metrics::from_footer(schema, metadata).data_file(spec_id, path, size, partition)
}

/// What the catalog records of a file besides its path, size and partition: what a footer
/// says (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
struct Metrics {
    record_count: u64,
    column_sizes: HashMap<i32, u64>,
    value_counts: HashMap<i32, u64>,
    null_counts: HashMap<i32, u64>,
    lower: HashMap<i32, Datum>,
    upper: HashMap<i32, Datum>,
    split_offsets: Vec<i64>,
}

impl Metrics {
    fn from_footer(schema: &Schema, metadata: &ParquetMetaData) -> Self {
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
                // Top-level columns, and the leaves of structs (the covering's `xmin`…) by
                // their full name.
                let Some(field) = schema.field_by_name(&descr.path().string()) else {
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
        Self {
            record_count: metadata.file_metadata().num_rows().max(0) as u64,
            column_sizes,
            value_counts,
            null_counts,
            lower,
            upper,
            split_offsets: metadata
                .row_groups()
                .iter()
                .filter_map(|g| g.file_offset())
                .collect(),
        }
    }

    /// What [`Self::data_file`] put into `df`.
    fn of(df: &DataFile) -> Self {
        Self {
            record_count: df.record_count(),
            column_sizes: df.column_sizes().clone(),
            value_counts: df.value_counts().clone(),
            null_counts: df.null_value_counts().clone(),
            lower: df.lower_bounds().clone(),
            upper: df.upper_bounds().clone(),
            split_offsets: df.split_offsets().map(<[i64]>::to_vec).unwrap_or_default(),
        }
    }

    /// The catalog entry of the file at `path`.
    fn data_file(
        self,
        spec_id: i32,
        path: &str,
        size: u64,
        partition: &PartitionValue,
    ) -> Result<DataFile> {
        let mut builder = DataFileBuilder::default();
        builder
            .content(DataContentType::Data)
            .file_path(path.to_string())
            .file_format(DataFileFormat::Parquet)
            .partition(partition.to_struct())
            .partition_spec_id(spec_id)
            .record_count(self.record_count)
            .file_size_in_bytes(size)
            .column_sizes(self.column_sizes)
            .value_counts(self.value_counts)
            .null_value_counts(self.null_counts)
            .lower_bounds(self.lower)
            .upper_bounds(self.upper)
            .split_offsets(Some(self.split_offsets));
        builder.build().map_err(|e| Error::Iceberg {
            context: format!("building the data file entry for {path}"),
            source: iceberg::Error::new(iceberg::ErrorKind::DataInvalid, e.to_string()),
        })
    }
}

/// A file's catalog statistics (record count, column sizes, value and null counts, bounds,
/// row-group offsets: everything of its entry but the path, size and partition), as
/// [`data_file_from_footer`] derives them, in a compact form: a backfill reduce records them
/// for each output in its done marker so that commit builds the entries without reading the
/// footers again. In JSON: a base64 string.
///
/// The bytes (Avro varints; "bytes" = length, then the bytes): `1` (format), record count,
/// split-offset count and offsets, column count, then per column in field-id order: field
/// id, flags (1 size, 2 value count, 4 null count, 8 lower bound, 16 upper bound, 32 upper
/// bound = lower bound), the flagged counts, the flagged bounds as bytes in Iceberg's
/// single-value serialisation. Bounds become values again with the table schema's types.
#[derive(Clone, PartialEq, Eq)]
pub struct FileStats(Box<[u8]>);

const STATS_FORMAT: i64 = 1;

impl FileStats {
    /// The statistics of a Parquet file, from its footer.
    pub fn from_footer(schema: &Schema, metadata: &ParquetMetaData) -> Result<Self> {
        Self::encode(&Metrics::from_footer(schema, metadata))
    }

    /// The statistics an entry built by [`data_file_from_footer`] (or [`Self::data_file`])
    /// carries.
    pub fn of(df: &DataFile) -> Result<Self> {
        Self::encode(&Metrics::of(df))
    }

    /// The catalog entry of the file at `path` with these statistics: the entry
    /// [`data_file_from_footer`] builds from the file's footer. `schema` gives the bounds'
    /// types (a bound of a field it does not have is left out).
    pub fn data_file(
        &self,
        schema: &Schema,
        spec_id: i32,
        path: &str,
        size: u64,
        partition: &PartitionValue,
    ) -> Result<DataFile> {
        self.decode(schema)
            .map_err(|why| Error::Inconsistent(format!("statistics of {path}: {why}")))?
            .data_file(spec_id, path, size, partition)
    }

    /// Rows of the file.
    pub fn record_count(&self) -> Result<u64> {
        let mut c = Cursor::new(&self.0);
        check_format(&mut c)
            .and_then(|()| count(&mut c))
            .map_err(|why| Error::Inconsistent(format!("file statistics: {why}")))
    }

    fn encode(m: &Metrics) -> Result<Self> {
        let mut ids: Vec<i32> = m
            .column_sizes
            .keys()
            .chain(m.value_counts.keys())
            .chain(m.null_counts.keys())
            .chain(m.lower.keys())
            .chain(m.upper.keys())
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let long = |v: u64| {
            i64::try_from(v)
                .map_err(|_| Error::Inconsistent(format!("file statistic {v} out of range")))
        };
        let bytes = |d: &Datum| {
            d.to_bytes()
                .map_err(|e| Error::iceberg("serialising a column bound", e))
        };
        let mut buf = Vec::with_capacity(16 + ids.len() * 24);
        put_long(&mut buf, STATS_FORMAT);
        put_long(&mut buf, long(m.record_count)?);
        put_long(&mut buf, m.split_offsets.len() as i64);
        for o in &m.split_offsets {
            put_long(&mut buf, *o);
        }
        put_long(&mut buf, ids.len() as i64);
        for id in ids {
            let (size, values, nulls) = (
                m.column_sizes.get(&id),
                m.value_counts.get(&id),
                m.null_counts.get(&id),
            );
            let lower = m.lower.get(&id).map(bytes).transpose()?;
            let upper = m.upper.get(&id).map(bytes).transpose()?;
            let same = lower.is_some() && lower == upper;
            let flags = i64::from(size.is_some())
                | i64::from(values.is_some()) << 1
                | i64::from(nulls.is_some()) << 2
                | i64::from(lower.is_some()) << 3
                | i64::from(upper.is_some() && !same) << 4
                | i64::from(same) << 5;
            put_long(&mut buf, i64::from(id));
            put_long(&mut buf, flags);
            for v in [size, values, nulls].into_iter().flatten() {
                put_long(&mut buf, long(*v)?);
            }
            if let Some(b) = &lower {
                put_bytes(&mut buf, b);
            }
            if let (Some(b), false) = (&upper, same) {
                put_bytes(&mut buf, b);
            }
        }
        Ok(Self(buf.into_boxed_slice()))
    }

    fn decode(&self, schema: &Schema) -> std::result::Result<Metrics, String> {
        let mut c = Cursor::new(&self.0);
        check_format(&mut c)?;
        let mut m = Metrics {
            record_count: count(&mut c)?,
            ..Metrics::default()
        };
        let n = length(&mut c)?;
        m.split_offsets = (0..n)
            .map(|_| c.long())
            .collect::<std::result::Result<_, _>>()?;
        let columns = length(&mut c)?;
        // At most one entry per column in each map (and no more columns than bytes).
        let n = columns.min(self.0.len());
        for map in [&mut m.column_sizes, &mut m.value_counts, &mut m.null_counts] {
            map.reserve(n);
        }
        m.lower.reserve(n);
        m.upper.reserve(n);
        for _ in 0..columns {
            let id = i32::try_from(c.long()?).map_err(|_| "a field id out of range")?;
            let flags = c.long()?;
            for (bit, map) in [
                (1, &mut m.column_sizes),
                (2, &mut m.value_counts),
                (4, &mut m.null_counts),
            ] {
                if flags & bit != 0 {
                    map.insert(id, count(&mut c)?);
                }
            }
            let ty = schema
                .field_by_id(id)
                .and_then(|f| f.field_type.as_primitive_type().cloned());
            let datum = |c: &mut Cursor| -> std::result::Result<Option<Datum>, String> {
                let b = c.bytes()?;
                ty.clone()
                    .map(|ty| Datum::try_from_bytes(b, ty))
                    .transpose()
                    .map_err(|e| format!("bound of field {id}: {e}"))
            };
            let lower = if flags & 8 != 0 { datum(&mut c)? } else { None };
            let upper = if flags & 16 != 0 {
                datum(&mut c)?
            } else if flags & 32 != 0 {
                lower.clone()
            } else {
                None
            };
            if let Some(d) = lower {
                m.lower.insert(id, d);
            }
            if let Some(d) = upper {
                m.upper.insert(id, d);
            }
        }
        if !c.at_end() {
            return Err("trailing bytes".into());
        }
        Ok(m)
    }
}

fn check_format(c: &mut Cursor) -> std::result::Result<(), String> {
    match c.long()? {
        STATS_FORMAT => Ok(()),
        other => Err(format!("unknown format {other}")),
    }
}

fn count(c: &mut Cursor) -> std::result::Result<u64, String> {
    u64::try_from(c.long()?).map_err(|_| "a negative count".into())
}

fn length(c: &mut Cursor) -> std::result::Result<usize, String> {
    usize::try_from(c.long()?).map_err(|_| "a negative length".into())
}

impl std::fmt::Debug for FileStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileStats({} bytes)", self.0.len())
    }
}

impl serde::Serialize for FileStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for FileStats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use base64::Engine;
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s.as_bytes())
            .map(|b| Self(b.into_boxed_slice()))
            .map_err(serde::de::Error::custom)
    }
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
        (PrimitiveType::Float, Statistics::Float(s)) => pick(
            s.min_opt()
                .filter(|v| !v.is_nan())
                .map(|v| Datum::float(*v)),
            s.max_opt()
                .filter(|v| !v.is_nan())
                .map(|v| Datum::float(*v)),
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

    #[test]
    fn statistics_give_the_footers_entry() {
        let schema = base_schema().unwrap();
        let (bytes, meta) = legacy_file();
        let part = PartitionValue {
            cell: "c1".into(),
            year: None,
        };
        let (path, size) = ("s3://b/w/x.parquet", bytes.len() as u64);
        let from_footer = data_file_from_footer(&schema, 3, &meta, path, size, &part).unwrap();
        let stats = FileStats::from_footer(&schema, &meta).unwrap();
        assert_eq!(stats.record_count().unwrap(), 3);
        assert_eq!(
            stats.data_file(&schema, 3, path, size, &part).unwrap(),
            from_footer
        );
        // What reduce records from the entry it built is the same, and survives JSON.
        let of = FileStats::of(&from_footer).unwrap();
        assert_eq!(of, stats);
        let json = serde_json::to_string(&of).unwrap();
        let back: FileStats = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.data_file(&schema, 3, path, size, &part).unwrap(),
            from_footer
        );
        // A schema without a field leaves its bounds out (its counts stay).
        let id = schema.field_by_name("id").unwrap().id;
        let fewer = iceberg::spec::Schema::builder()
            .with_fields(
                schema
                    .as_struct()
                    .fields()
                    .iter()
                    .filter(|f| f.id != id)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .build()
            .unwrap();
        let df = stats.data_file(&fewer, 3, path, size, &part).unwrap();
        assert!(!df.lower_bounds().contains_key(&id));
        assert_eq!(df.value_counts()[&id], 3);
        // Damaged statistics are an error naming the file, not a panic.
        let cut = FileStats(stats.0[..stats.0.len() - 1].into());
        let err = cut.data_file(&schema, 3, path, size, &part).unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
        assert!(FileStats(Box::new([9])).record_count().is_err());
        assert!(serde_json::from_str::<FileStats>("\"not base64!\"").is_err());
    }
}
