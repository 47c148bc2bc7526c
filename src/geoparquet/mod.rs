//! GeoParquet 1.1 writer for one (cell, year) group.
//!
//! Record batches are built by hand from [`ItemRow`]s with the table's Arrow schema (field ids
//! on every column, `geoarrow.wkb` on `geometry`), compressed with zstd, statistics on, and a
//! `geo` metadata entry that is true for the file: version 1.1.0, primary column `geometry`,
//! WKB encoding, the geometry types present, the file's bbox and, when the table has the
//! [`COVERING_COLUMN`] (every table we write to gets it), the bbox covering.

pub mod decode;
pub mod read;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBufferBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};
use crate::item::{Columns, GeometryKind, ItemRow, Value};
use crate::schema::{COVERING_COLUMN, ColumnType, OVERFLOW_COLUMN, TableColumn, arrow_schema};

/// Options for written files.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// zstd level (1–22).
    pub zstd_level: i32,
    /// Maximum rows per row group.
    pub row_group_rows: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            zstd_level: 1,
            row_group_rows: 65_536,
        }
    }
}

/// Files of fewer rows are written without dictionary encoding. Each column chunk of a
/// dictionary-encoded file carries a dictionary page besides its data page, which small files
/// pay for without gaining: the production-shaped warehouse's rows (184,789) written as 1,669
/// bucket files took 2.1–2.9 s and 78.3 MB with dictionaries, 1.5–2.6 s and 73.8 MB without;
/// as files of 10,000 rows 49.7 vs 48.8 MB; of 30,000 rows 47.5 vs 48.5 MB, and one file of
/// 65,536-row groups 46.2 vs 48.4 MB (read back ~10 % faster with dictionaries). Measured with
/// parquet-rs alone, one thread, zstd 1 (`examples/merge_floor.rs`).
///
/// Such files are also written without page-level statistics (no column index): their column
/// chunks hold one or a few pages, so a page index repeats the chunk statistics (which stay:
/// the catalog's bounds come from them), and nothing here reads it. The production-shaped
/// compaction's 1,522 outputs: 70.97 MB with page statistics, 67.75 MB without.
pub const DICTIONARY_MIN_ROWS: usize = 16_384;

/// An encoded file and its footer.
pub struct EncodedFile {
    /// The Parquet bytes.
    pub bytes: Vec<u8>,
    /// The footer (statistics for the catalog).
    pub metadata: ParquetMetaData,
    /// Rows written.
    pub rows: usize,
}

enum Builder {
    Str(StringBuilder),
    Long(Int64Builder),
    Double(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Bin(BinaryBuilder),
    Bbox(Box<CoveringBuilder>),
}

/// Builds the covering struct column from rows' bounds.
pub(crate) struct CoveringBuilder {
    fields: arrow_schema::Fields,
    parts: [Float32Builder; 4],
    valid: NullBufferBuilder,
}

impl CoveringBuilder {
    /// A builder for `n` rows of a struct with these fields (the table's, with field ids).
    pub(crate) fn new(fields: arrow_schema::Fields, n: usize) -> Self {
        Self {
            fields,
            parts: std::array::from_fn(|_| Float32Builder::with_capacity(n)),
            valid: NullBufferBuilder::new(n),
        }
    }

    /// Append one row's bounds (null without a geometry).
    pub(crate) fn push(&mut self, bounds: Option<[f64; 4]>) {
        match bounds {
            Some(b) => {
                for (part, v) in self.parts.iter_mut().zip(covering_values(b)) {
                    part.append_value(v);
                }
                self.valid.append_non_null();
            }
            None => {
                // A null struct row still has a (null) value in each child.
                self.parts.iter_mut().for_each(|p| p.append_null());
                self.valid.append_null();
            }
        }
    }

    pub(crate) fn finish(mut self) -> ArrayRef {
        let arrays: Vec<ArrayRef> = self
            .parts
            .iter_mut()
            .map(|p| Arc::new(p.finish()) as ArrayRef)
            .collect();
        Arc::new(StructArray::new(self.fields, arrays, self.valid.finish()))
    }
}

/// Bounds as float32 rounded outward, so the covering always contains the geometry.
pub fn covering_values(b: [f64; 4]) -> [f32; 4] {
    let down = |v: f64| {
        let f = v as f32;
        if f as f64 > v { f.next_down() } else { f }
    };
    let up = |v: f64| {
        let f = v as f32;
        if (f as f64) < v { f.next_up() } else { f }
    };
    [down(b[0]), down(b[1]), up(b[2]), up(b[3])]
}

impl Builder {
    fn new(ty: ColumnType, field: &arrow_schema::Field, n: usize) -> Self {
        match ty {
            ColumnType::Bbox => Builder::Bbox(Box::new(CoveringBuilder::new(
                match field.data_type() {
                    arrow_schema::DataType::Struct(f) => f.clone(),
                    _ => crate::schema::covering_fields(None),
                },
                n,
            ))),
            ColumnType::String => Builder::Str(StringBuilder::with_capacity(n, n * 16)),
            ColumnType::Long => Builder::Long(Int64Builder::with_capacity(n)),
            ColumnType::Double => Builder::Double(Float64Builder::with_capacity(n)),
            ColumnType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(n)),
            ColumnType::TimestampTz => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"))
            }
            ColumnType::Binary => Builder::Bin(BinaryBuilder::with_capacity(n, n * 128)),
        }
    }

    fn push(&mut self, v: Option<&Value>) {
        match (self, v) {
            (Builder::Str(b), Some(Value::Str(s))) => b.append_value(s),
            (Builder::Long(b), Some(Value::Long(i))) => b.append_value(*i),
            (Builder::Double(b), Some(Value::Double(f))) => b.append_value(*f),
            (Builder::Double(b), Some(Value::Long(i))) => b.append_value(*i as f64),
            (Builder::Bool(b), Some(Value::Bool(x))) => b.append_value(*x),
            (Builder::Ts(b), Some(Value::Timestamp(t))) => b.append_value(*t),
            (b, _) => b.push_null(),
        }
    }

    fn push_null(&mut self) {
        match self {
            Builder::Str(b) => b.append_null(),
            Builder::Long(b) => b.append_null(),
            Builder::Double(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::Bin(b) => b.append_null(),
            Builder::Bbox(b) => b.push(None),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Str(mut b) => Arc::new(b.finish()),
            Builder::Long(mut b) => Arc::new(b.finish()),
            Builder::Double(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Ts(mut b) => Arc::new(b.finish()),
            Builder::Bin(mut b) => Arc::new(b.finish()),
            Builder::Bbox(b) => b.finish(),
        }
    }
}

enum Source {
    Id,
    Cell,
    Geometry,
    Covering,
    Overflow,
    Value(usize),
    Nothing,
}

/// Sort rows the way files are ordered: platform, then datetime (nulls first, like the Python tool).
pub fn sort_rows(rows: &mut [&ItemRow]) {
    rows.sort_by(|a, b| {
        (a.platform.as_deref(), a.datetime, a.id.as_str()).cmp(&(
            b.platform.as_deref(),
            b.datetime,
            b.id.as_str(),
        ))
    });
}

/// Encode `rows` (already sorted) of one `cell` as a GeoParquet file with the table's columns.
pub fn encode_group(
    rows: &[&ItemRow],
    cell: &str,
    columns: &Columns,
    table: &[TableColumn],
    options: &WriterOptions,
    label: &str,
) -> Result<EncodedFile> {
    let mut buf = Vec::with_capacity(rows.len() * 512);
    let mut writer = GeoParquetWriter::try_new_sized(&mut buf, table, options, label, rows.len())?;
    writer.write(rows, Some(cell), columns)?;
    let metadata = writer.finish()?;
    Ok(EncodedFile {
        bytes: buf,
        metadata,
        rows: rows.len(),
    })
}

/// A GeoParquet writer that takes rows in batches (one row group per call at most
/// `row_group_rows`) and writes the `geo` metadata for everything written when finished.
pub struct GeoParquetWriter<W: std::io::Write + Send> {
    writer: ArrowWriter<W>,
    schema: Arc<arrow_schema::Schema>,
    table: Arc<[TableColumn]>,
    kinds: BTreeSet<GeometryKind>,
    bbox: Option<[f64; 4]>,
    label: String,
}

thread_local! {
    /// The table and Arrow schema this thread last wrote a file of: a merge writes hundreds of
    /// files of one table, each of which built the schema (33 fields with their field-id
    /// metadata) and copied the column list, ~1.5 % of a compaction's instructions
    /// (`bench/compact_instructions.sh`).
    static LAST_SCHEMA: std::cell::RefCell<Option<TableSchema>> =
        const { std::cell::RefCell::new(None) };
}

pub(crate) type TableSchema = (Arc<[TableColumn]>, Arc<arrow_schema::Schema>);

/// `table` and its Arrow schema, shared with the previous file of the same table.
pub(crate) fn table_schema(table: &[TableColumn]) -> TableSchema {
    LAST_SCHEMA.with_borrow_mut(|last| match last {
        Some((t, s)) if **t == *table => (t.clone(), s.clone()),
        _ => last
            .insert((Arc::from(table), Arc::new(file_schema(table))))
            .clone(),
    })
}

/// The Arrow schema files are written with: the table's columns, and a `geo` entry in the
/// schema's own metadata. Parquet readers built on Arrow (pyarrow, hence geopandas and
/// pyarrow datasets) take a file's schema metadata from the stored Arrow schema, which is
/// written before any row: this entry says what is known then (WKB, the covering, no
/// geometry types or bbox yet). The file's `geo` key, written at the end, has everything.
fn file_schema(table: &[TableColumn]) -> arrow_schema::Schema {
    let geo = geo_metadata([], None, covering_of(table));
    arrow_schema(table).with_metadata(std::collections::HashMap::from([("geo".to_string(), geo)]))
}

impl<W: std::io::Write + Send> GeoParquetWriter<W> {
    /// Start a file with the table's columns (row count not known in advance: dictionary
    /// encoding on, Parquet's default).
    pub fn try_new(
        sink: W,
        table: &[TableColumn],
        options: &WriterOptions,
        label: &str,
    ) -> Result<Self> {
        Self::with_dictionary(sink, table, options, label, true)
    }

    /// Start a file that will hold `rows` rows: dictionary encoding only from
    /// [`DICTIONARY_MIN_ROWS`] rows up.
    pub fn try_new_sized(
        sink: W,
        table: &[TableColumn],
        options: &WriterOptions,
        label: &str,
        rows: usize,
    ) -> Result<Self> {
        Self::with_dictionary(sink, table, options, label, rows >= DICTIONARY_MIN_ROWS)
    }

    fn with_dictionary(
        sink: W,
        table: &[TableColumn],
        options: &WriterOptions,
        label: &str,
        dictionary: bool,
    ) -> Result<Self> {
        let (table, schema) = table_schema(table);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(options.zstd_level).unwrap_or_default(),
            ))
            .set_statistics_enabled(if dictionary {
                EnabledStatistics::Page
            } else {
                EnabledStatistics::Chunk
            })
            .set_dictionary_enabled(dictionary)
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .set_created_by(format!("earthcatalog {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(props))
            .map_err(|e| Error::parquet(label, e))?;
        Ok(Self {
            writer,
            schema,
            table,
            kinds: BTreeSet::new(),
            bbox: None,
            label: label.to_string(),
        })
    }

    /// Append rows; `cell` fills `grid_partition` (null when `None`).
    pub fn write(
        &mut self,
        rows: &[&ItemRow],
        cell: Option<&str>,
        columns: &Columns,
    ) -> Result<()> {
        let batch = build_batch(
            rows,
            cell,
            columns,
            &self.table,
            self.schema.clone(),
            &mut self.kinds,
            &mut self.bbox,
            &self.label,
        )?;
        self.writer
            .write(&batch)
            .map_err(|e| Error::parquet(&self.label, e))
    }

    /// Append a record batch that already has the file schema (the table's Arrow schema):
    /// the compaction fast path. Geometry types and bbox come from the WKB column.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(geoms) = batch
            .column_by_name("geometry")
            .and_then(|g| g.as_binary_opt::<i32>())
        {
            for wkb in geoms.iter().flatten() {
                if let Some((kind, bounds)) = crate::item::wkb_summary(wkb) {
                    self.kinds.insert(kind);
                    if let Some(r) = bounds {
                        self.bbox = Some(bbox_union(self.bbox, r));
                    }
                }
            }
        }
        self.writer
            .write(batch)
            .map_err(|e| Error::parquet(&self.label, e))
    }

    /// Add the `geo` metadata and close the file.
    pub fn finish(mut self) -> Result<ParquetMetaData> {
        let types = self.kinds.iter().map(|k| k.name());
        let geo = geo_metadata(types, self.bbox, covering_of(&self.table));
        self.writer
            .append_key_value_metadata(KeyValue::new("geo".to_string(), geo));
        self.writer
            .close()
            .map_err(|e| Error::parquet(&self.label, e))
    }
}

/// Rows as one record batch with the columns of `table` (the Arrow schema of
/// [`arrow_schema`](crate::schema::arrow_schema)), `grid_partition` null: search results in the
/// table's own form. `label` names the batch in errors.
pub fn encode_rows(
    rows: &[&ItemRow],
    columns: &Columns,
    table: &[TableColumn],
    label: &str,
) -> Result<RecordBatch> {
    let (_, schema) = table_schema(table);
    build_batch(
        rows,
        None,
        columns,
        table,
        schema,
        &mut BTreeSet::new(),
        &mut None,
        label,
    )
}

#[allow(clippy::too_many_arguments)]
fn build_batch(
    rows: &[&ItemRow],
    cell: Option<&str>,
    columns: &Columns,
    table: &[TableColumn],
    schema: Arc<arrow_schema::Schema>,
    kinds: &mut BTreeSet<GeometryKind>,
    bbox: &mut Option<[f64; 4]>,
    label: &str,
) -> Result<RecordBatch> {
    let sources: Vec<Source> = table
        .iter()
        .map(|c| match c.name.as_str() {
            "id" => Source::Id,
            "grid_partition" => Source::Cell,
            "geometry" => Source::Geometry,
            _ if c.ty == ColumnType::Bbox => Source::Covering,
            OVERFLOW_COLUMN => Source::Overflow,
            name => columns
                .index_of(name)
                .map_or(Source::Nothing, Source::Value),
        })
        .collect();
    let max_idx = sources
        .iter()
        .filter_map(|s| match s {
            Source::Value(i) => Some(*i),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut pos_of_idx: Vec<Option<usize>> = vec![None; max_idx + 1];
    for (p, s) in sources.iter().enumerate() {
        if let Source::Value(i) = s {
            pos_of_idx[*i] = Some(p);
        }
    }

    let n = rows.len();
    let mut builders: Vec<Builder> = table
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| Builder::new(c.ty, f, n))
        .collect();
    let mut slots: Vec<Option<&Value>> = vec![None; table.len()];
    for row in rows {
        slots.iter_mut().for_each(|s| *s = None);
        for (idx, v) in &row.values {
            if let Some(Some(p)) = pos_of_idx.get(*idx) {
                slots[*p] = Some(v);
            }
        }
        for (p, b) in builders.iter_mut().enumerate() {
            match (&sources[p], b) {
                (Source::Id, Builder::Str(b)) => b.append_value(&row.id),
                (Source::Cell, Builder::Str(b)) => match cell {
                    Some(c) => b.append_value(c),
                    None => b.append_null(),
                },
                (Source::Geometry, Builder::Bin(b)) => match &row.geometry_wkb {
                    Some(w) => b.append_value(w),
                    None => b.append_null(),
                },
                (Source::Covering, Builder::Bbox(b)) => b.push(row.bounds),
                (Source::Overflow, Builder::Str(b)) => match &row.overflow {
                    Some(o) => b.append_value(o),
                    None => b.append_null(),
                },
                (Source::Value(_), b) => b.push(slots[p]),
                (_, b) => b.push_null(),
            }
        }
        if let Some(k) = row.geometry_kind {
            kinds.insert(k);
        }
        if let Some(r) = row.bounds {
            *bbox = Some(bbox_union(*bbox, r));
        }
    }
    let arrays: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
    RecordBatch::try_new(schema, arrays).map_err(|e| Error::arrow(label, e))
}

/// The covering column of a table's files, when the table has one.
fn covering_of(table: &[TableColumn]) -> Option<&'static str> {
    table
        .iter()
        .any(|c| c.ty == ColumnType::Bbox)
        .then_some(COVERING_COLUMN)
}

/// The box holding `bbox` (none yet: nothing) and `r`.
pub(crate) fn bbox_union(bbox: Option<[f64; 4]>, r: [f64; 4]) -> [f64; 4] {
    match bbox {
        None => r,
        Some(b) => [
            b[0].min(r[0]),
            b[1].min(r[1]),
            b[2].max(r[2]),
            b[3].max(r[3]),
        ],
    }
}

/// The GeoParquet 1.1 `geo` metadata JSON for a file: WKB `geometry` with these geometry
/// types and bbox, and with `covering`, the struct column declared as its bbox covering.
pub fn geo_metadata<'a>(
    types: impl IntoIterator<Item = &'a str>,
    bbox: Option<[f64; 4]>,
    covering: Option<&str>,
) -> String {
    let mut col = serde_json::json!({
        "encoding": "WKB",
        "geometry_types": types.into_iter().collect::<Vec<_>>(),
    });
    if let Some(b) = bbox {
        col["bbox"] = serde_json::json!(b);
    }
    if let Some(column) = covering {
        let path = |f: &str| serde_json::json!([column, f]);
        col["covering"] = serde_json::json!({"bbox": {
            "xmin": path("xmin"), "ymin": path("ymin"), "xmax": path("xmax"), "ymax": path("ymax"),
        }});
    }
    serde_json::json!({
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": col},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{ParseCounters, parse_item};
    use crate::schema::{base_schema, table_columns};
    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn writes_sorted_geoparquet_with_true_geo_metadata() {
        let table = table_columns(&base_schema().unwrap());
        let cols = Columns::new(&table);
        let mut c = ParseCounters::default();
        let items = [
            (r#"{"id":"b","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"platform":"S2A","datetime":"2020-01-02T00:00:00Z"}}"#),
            (r#"{"id":"a","geometry":{"type":"Polygon","coordinates":[[[0,0],[3,0],[3,3],[0,0]]]},"properties":{"platform":"LC08","datetime":"2020-05-02T00:00:00.123456Z"}}"#),
            (r#"{"id":"c","geometry":null,"properties":{"datetime":"2020-03-02T00:00:00Z"}}"#),
        ];
        let parsed: Vec<ItemRow> = items
            .iter()
            .map(|s| parse_item(s.as_bytes(), &cols, &mut c).unwrap().0)
            .collect();
        let mut rows: Vec<&ItemRow> = parsed.iter().collect();
        sort_rows(&mut rows);
        let f = encode_group(
            &rows,
            "8001fffffffffff",
            &cols,
            &table,
            &WriterOptions::default(),
            "t",
        )
        .unwrap();
        assert_eq!(f.rows, 3);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(f.bytes)).unwrap();
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .clone();
        let geo = kv
            .iter()
            .find(|k| k.key == "geo")
            .unwrap()
            .value
            .clone()
            .unwrap();
        let geo: serde_json::Value = serde_json::from_str(&geo).unwrap();
        assert_eq!(geo["primary_column"], "geometry");
        assert_eq!(
            geo["columns"]["geometry"]["geometry_types"],
            serde_json::json!(["Point", "Polygon"])
        );
        assert_eq!(
            geo["columns"]["geometry"]["bbox"],
            serde_json::json!([0.0, 0.0, 3.0, 3.0])
        );
        let col = reader.metadata().row_group(0).column(0);
        assert!(matches!(col.compression(), Compression::ZSTD(_)));
        assert!(col.statistics().is_some());
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        let ids: Vec<&str> = batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap())
            .collect();
        assert_eq!(ids, vec!["c", "a", "b"]);
        let dt = batch.column_by_name("datetime").unwrap();
        assert_eq!(dt.data_type(), &ColumnType::TimestampTz.arrow());
        let ts = dt.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(ts.value(1) % 1_000_000, 123_456);
        let cells = batch
            .column_by_name("grid_partition")
            .unwrap()
            .as_string::<i32>();
        assert!(cells.iter().all(|c| c == Some("8001fffffffffff")));
    }

    /// The covering holds each row's bounds rounded outward to float32, null without a
    /// geometry, and the `geo` metadata declares it.
    #[test]
    fn files_carry_a_bbox_covering_that_contains_each_geometry() {
        let table = table_columns(&crate::schema::new_table_schema().unwrap());
        let cols = Columns::new(&table);
        let mut c = ParseCounters::default();
        let items = [
            r#"{"id":"a","geometry":{"type":"Polygon","coordinates":[[[0.1,0.2],[3.3,0.2],[3.3,3.7],[0.1,0.2]]]},"properties":{"datetime":"2020-05-02T00:00:00Z"}}"#,
            r#"{"id":"b","geometry":null,"properties":{"datetime":"2020-03-02T00:00:00Z"}}"#,
        ];
        let parsed: Vec<ItemRow> = items
            .iter()
            .map(|s| parse_item(s.as_bytes(), &cols, &mut c).unwrap().0)
            .collect();
        let rows: Vec<&ItemRow> = parsed.iter().collect();
        let f = encode_group(
            &rows,
            "8001fffffffffff",
            &cols,
            &table,
            &WriterOptions::default(),
            "t",
        )
        .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(f.bytes)).unwrap();
        let geo = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .find(|k| k.key == "geo")
            .unwrap()
            .value
            .clone()
            .unwrap();
        let geo: serde_json::Value = serde_json::from_str(&geo).unwrap();
        assert_eq!(
            geo["columns"]["geometry"]["covering"]["bbox"]["xmax"],
            serde_json::json!([COVERING_COLUMN, "xmax"])
        );
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        let cover = batch.column_by_name(COVERING_COLUMN).unwrap().as_struct();
        let part = |i: usize, row: usize| {
            cover
                .column(i)
                .as_primitive::<arrow_array::types::Float32Type>()
                .value(row) as f64
        };
        let ids = batch.column(0).as_string::<i32>();
        let a = (0..2).find(|&r| ids.value(r) == "a").unwrap();
        let b = 1 - a;
        assert!(part(0, a) <= 0.1 && part(1, a) <= 0.2 && part(2, a) >= 3.3 && part(3, a) >= 3.7);
        assert!((part(0, a) - 0.1).abs() < 1e-6 && (part(3, a) - 3.7).abs() < 1e-6);
        assert!(arrow_array::Array::is_null(cover, b));
    }

    #[test]
    fn covering_values_round_outward() {
        for v in [0.1, -0.1, 179.99999999, -33.333333333, 1e-40, 61.000000001] {
            let [x0, y0, x1, y1] = covering_values([v, v, v, v]);
            assert!((x0 as f64) <= v && (y0 as f64) <= v, "{v}");
            assert!((x1 as f64) >= v && (y1 as f64) >= v, "{v}");
        }
        assert_eq!(covering_values([1.0, 2.0, 3.0, 4.0]), [1.0, 2.0, 3.0, 4.0]);
    }

    /// The schema a thread shares between files is the schema of the table it is asked to
    /// write: a table that gained a column (evolution), then the old one again, on one thread.
    #[test]
    fn each_file_has_the_columns_of_its_own_table() {
        let old = table_columns(&base_schema().unwrap());
        let mut evolved = old.clone();
        evolved.push(TableColumn {
            name: "eo:cloud_cover".into(),
            field_id: 99,
            ty: ColumnType::Double,
        });
        let columns_of = |table: &[TableColumn]| {
            let mut buf = Vec::new();
            let w =
                GeoParquetWriter::try_new(&mut buf, table, &WriterOptions::default(), "t").unwrap();
            w.finish().unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf)).unwrap();
            let names: Vec<String> = (reader.schema().fields().iter())
                .map(|f| f.name().clone())
                .collect();
            names
        };
        let names = |table: &[TableColumn]| -> Vec<String> {
            table.iter().map(|c| c.name.clone()).collect()
        };
        for table in [&old, &evolved, &old, &evolved] {
            assert_eq!(columns_of(table), names(table));
            assert_eq!(table_schema(table).1.fields(), arrow_schema(table).fields());
        }
    }

    /// Small files are plain-encoded (no dictionary page per column chunk); files from
    /// `DICTIONARY_MIN_ROWS` rows up, and files of unknown size, keep dictionaries.
    #[test]
    fn only_large_files_get_dictionary_pages() {
        let table = table_columns(&base_schema().unwrap());
        let cols = Columns::new(&table);
        let mut c = ParseCounters::default();
        let parsed: Vec<ItemRow> = (0..DICTIONARY_MIN_ROWS)
            .map(|i| {
                let json = format!(
                    r#"{{"id":"i{i}","geometry":{{"type":"Point","coordinates":[1,2]}},"properties":{{"platform":"S2A","datetime":"2020-01-02T00:00:00Z"}}}}"#
                );
                parse_item(json.as_bytes(), &cols, &mut c).unwrap().0
            })
            .collect();
        let rows: Vec<&ItemRow> = parsed.iter().collect();
        let platform = table.iter().position(|c| c.name == "platform").unwrap();
        let dictionary_pages = |bytes: Vec<u8>| {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
            reader
                .metadata()
                .row_group(0)
                .column(platform)
                .dictionary_page_offset()
                .is_some()
        };
        let options = WriterOptions::default();
        let encode = |rows: &[&ItemRow]| {
            encode_group(rows, "8001fffffffffff", &cols, &table, &options, "t")
                .unwrap()
                .bytes
        };
        assert!(!dictionary_pages(encode(&rows[..100])));
        assert!(!dictionary_pages(encode(&rows[..DICTIONARY_MIN_ROWS - 1])));
        assert!(dictionary_pages(encode(&rows)));
        // A writer that is not told the size keeps Parquet's default.
        let mut buf = Vec::new();
        let mut w = GeoParquetWriter::try_new(&mut buf, &table, &options, "t").unwrap();
        w.write(&rows[..100], Some("8001fffffffffff"), &cols)
            .unwrap();
        w.finish().unwrap();
        assert!(dictionary_pages(buf));
    }
}
