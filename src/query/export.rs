//! `export`: the items of a search (or of the whole table) as stac-geoparquet or NDJSON.
//!
//! ```text
//! NDJSON:          search ─▶ one item JSON per line ─▶ object store (multipart upload)
//! stac-geoparquet: search ─▶ flatten ─▶ schema inference   (pass 1: nothing is kept but the
//!                                                           schema and the collections seen)
//!                  search ─▶ flatten ─▶ Arrow (CHUNK items at a time, that schema)
//!                        ─▶ Parquet row groups ─▶ object store      (pass 2)
//! ```
//!
//! The stac-geoparquet layout (stac-utils' spec, version 1.0.0): an item's `properties` become
//! top-level columns; `assets` a struct of asset structs, `links` a list of structs,
//! `stac_extensions` a list of strings, `bbox` a struct `xmin`, `ymin`, `xmax`, `ymax` (declared
//! as the geometry's covering), `geometry` WKB (`geoarrow.wkb`); `datetime`, `start_datetime`,
//! `end_datetime`, `created` and `updated` are `timestamp[us, UTC]`. The file's metadata has
//! the `geo` entry and a `stac-geoparquet` entry with the version and the collections of the
//! items (id, extent from the items). Columns come from every item of the result (the first
//! pass), so an item's member is never dropped for want of a column; a property that holds
//! numbers in some items and text in others is written as text (its JSON text for numbers).
//! Memory is one chunk of items plus the inferred schema, whatever the result size; the search
//! runs twice on one snapshot, so both passes see the same items.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::BinaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::StreamExt;
use parquet::arrow::async_writer::{AsyncArrowWriter, ParquetObjectWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value as Json, json};

use super::{SearchRequest, Warehouse};
use crate::error::{Error, Result};
use crate::geoparquet::{bbox_union, geo_metadata};
use crate::store::Location;

/// Items per Arrow batch (and Parquet row group) of a stac-geoparquet export.
pub const CHUNK_ITEMS: usize = 8192;

/// Properties written as `timestamp[us, UTC]` (when every value is a timestamp).
const TIMESTAMP_COLUMNS: [&str; 5] = [
    "datetime",
    "start_datetime",
    "end_datetime",
    "created",
    "updated",
];

/// Item members that stay top-level columns (a property of one of these names is an error).
const TOP_LEVEL: [&str; 9] = [
    "type",
    "stac_version",
    "stac_extensions",
    "id",
    "geometry",
    "bbox",
    "links",
    "assets",
    "collection",
];

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// stac-geoparquet (see the module docs).
    StacGeoparquet,
    /// Newline-delimited item JSON, as `search` returns items.
    Ndjson,
}

impl ExportFormat {
    /// The name used on the command line and in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::StacGeoparquet => "stac-geoparquet",
            ExportFormat::Ndjson => "ndjson",
        }
    }
}

/// Where and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Output file (path or URL).
    pub out: String,
    /// The format.
    pub format: ExportFormat,
    /// Items per batch and row group ([`CHUNK_ITEMS`]).
    pub chunk_items: usize,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ExportMetrics {
    /// The output URL.
    pub out: String,
    /// The format name.
    pub format: String,
    /// Items written.
    pub items: u64,
    /// Columns of a stac-geoparquet file (0 for NDJSON).
    pub columns: usize,
    /// Collections of the items (stac-geoparquet metadata).
    pub collections: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
    /// Wall time.
    pub elapsed_secs: f64,
}

impl Warehouse {
    /// Write the items `request` finds to `options.out` (see the module docs).
    pub async fn export(
        &self,
        request: &SearchRequest,
        options: &ExportOptions,
    ) -> Result<ExportMetrics> {
        let started = Instant::now();
        let out = Location::parse(&options.out)?;
        let mut metrics = match options.format {
            ExportFormat::Ndjson => self.export_ndjson(request, &out).await?,
            ExportFormat::StacGeoparquet => {
                self.export_geoparquet(request, &out, options.chunk_items.max(1))
                    .await?
            }
        };
        metrics.out = out.url().to_string();
        metrics.format = options.format.as_str().to_string();
        metrics.bytes = {
            use object_store::ObjectStoreExt as _;
            let meta = out
                .store()
                .head(out.prefix())
                .await
                .map_err(|e| Error::store(out.url(), e))?;
            meta.size
        };
        metrics.elapsed_secs = started.elapsed().as_secs_f64();
        Ok(metrics)
    }

    async fn export_ndjson(
        &self,
        request: &SearchRequest,
        out: &Location,
    ) -> Result<ExportMetrics> {
        use tokio::io::AsyncWriteExt;
        let mut sink =
            object_store::buffered::BufWriter::new(out.store().clone(), out.prefix().clone());
        let mut items = self.search(request).await?;
        let mut n = 0u64;
        let mut line = Vec::with_capacity(4096);
        while let Some(item) = items.next().await {
            line.clear();
            super::write_item(&mut line, &item?).map_err(|e| Error::Parse {
                location: out.url().to_string(),
                reason: e.to_string(),
            })?;
            line.push(b'\n');
            sink.write_all(&line)
                .await
                .map_err(|e| Error::io(out.url(), e))?;
            n += 1;
        }
        sink.shutdown().await.map_err(|e| Error::io(out.url(), e))?;
        Ok(ExportMetrics {
            items: n,
            ..Default::default()
        })
    }

    async fn export_geoparquet(
        &self,
        request: &SearchRequest,
        out: &Location,
        chunk: usize,
    ) -> Result<ExportMetrics> {
        // Pass 1: the schema of every item, and the collections' extents.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Json>(256);
        let infer = tokio::task::spawn_blocking(move || {
            let values = std::iter::from_fn(move || rx.blocking_recv().map(Ok));
            arrow_json::reader::infer_json_schema_from_iterator(values)
        });
        let mut collections = Extents::default();
        let mut items = self.search(request).await?;
        let mut found: Result<()> = Ok(());
        while let Some(item) = items.next().await {
            let flat = item.and_then(|i| {
                collections.add(&i);
                flatten(i).map(|(flat, _)| flat)
            });
            match flat {
                Ok(flat) => {
                    if tx.send(flat).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    found = Err(e);
                    break;
                }
            }
        }
        drop(tx);
        drop(items);
        let inferred = infer
            .await
            .map_err(|e| Error::task("inferring the export schema", e))?;
        found?;
        let inferred = inferred.map_err(|e| Error::arrow("inferring the export schema", e))?;
        let json_schema = Arc::new(with_timestamps(&inferred));
        let schema = Arc::new(file_schema(&json_schema));

        // Pass 2: the rows.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
            .set_max_row_group_row_count(Some(chunk))
            .set_created_by(format!("earthcatalog {}", env!("CARGO_PKG_VERSION")))
            .build();
        let sink = ParquetObjectWriter::new(out.store().clone(), out.prefix().clone());
        let mut writer = AsyncArrowWriter::try_new(sink, schema.clone(), Some(props))
            .map_err(|e| Error::parquet(out.url(), e))?;
        let mut items = self.search(request).await?;
        let mut batch_items: Vec<Json> = Vec::with_capacity(chunk);
        let mut n = 0u64;
        let mut geometry_types = std::collections::BTreeSet::new();
        let mut bounds: Option<[f64; 4]> = None;
        let mut done = false;
        while !done {
            match items.next().await {
                Some(item) => {
                    let item = item?;
                    if let Some(t) = item["geometry"]["type"].as_str() {
                        geometry_types.insert(t.to_string());
                    }
                    if let Some(b) = item_bbox(&item) {
                        bounds = Some(bbox_union(bounds, b));
                    }
                    batch_items.push(item);
                }
                None => done = true,
            }
            if batch_items.len() == chunk || (done && !batch_items.is_empty()) {
                let batch = encode(std::mem::take(&mut batch_items), &json_schema, &schema)?;
                n += batch.num_rows() as u64;
                writer
                    .write(&batch)
                    .await
                    .map_err(|e| Error::parquet(out.url(), e))?;
            }
        }
        let covering = json_schema.field_with_name("bbox").is_ok();
        writer.append_key_value_metadata(KeyValue::new(
            "geo".to_string(),
            geo_metadata(
                geometry_types.iter().map(String::as_str),
                bounds,
                covering.then_some("bbox"),
            ),
        ));
        writer.append_key_value_metadata(KeyValue::new(
            "stac-geoparquet".to_string(),
            json!({"version": "1.0.0", "collections": collections.to_json()}).to_string(),
        ));
        writer
            .close()
            .await
            .map_err(|e| Error::parquet(out.url(), e))?;
        Ok(ExportMetrics {
            items: n,
            columns: schema.fields().len(),
            collections: collections.ids(),
            ..Default::default()
        })
    }
}

/// An item as a stac-geoparquet row (properties lifted to the top level, `bbox` a struct),
/// and its geometry (GeoJSON) apart.
fn flatten(item: Json) -> Result<(Json, Json)> {
    let Json::Object(mut obj) = item else {
        return Err(Error::Inconsistent(
            "a search returned a non-object item".into(),
        ));
    };
    let geometry = obj.remove("geometry").unwrap_or(Json::Null);
    if let Some(bbox) = obj.remove("bbox")
        && let Some(b) = bbox_struct(&bbox)
    {
        obj.insert("bbox".into(), b);
    }
    if let Some(Json::Object(props)) = obj.remove("properties") {
        for (k, v) in props {
            if TOP_LEVEL.contains(&k.as_str()) {
                let id = obj.get("id").and_then(Json::as_str).unwrap_or("?");
                return Err(Error::Parse {
                    location: format!("item {id}"),
                    reason: format!(
                        "property {k:?} has the name of an item member: stac-geoparquet has \
                         one column for both (export as ndjson instead)"
                    ),
                });
            }
            obj.insert(k, v);
        }
    }
    Ok((Json::Object(obj), geometry))
}

/// A STAC bbox (4 or 6 numbers) as the stac-geoparquet struct.
fn bbox_struct(bbox: &Json) -> Option<Json> {
    let v: Vec<f64> = bbox
        .as_array()?
        .iter()
        .map(Json::as_f64)
        .collect::<Option<_>>()?;
    Some(match v.as_slice() {
        [x0, y0, x1, y1] => json!({"xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}),
        [x0, y0, z0, x1, y1, z1] => {
            json!({"xmin": x0, "ymin": y0, "zmin": z0, "xmax": x1, "ymax": y1, "zmax": z1})
        }
        _ => return None,
    })
}

/// An item's 2D bbox, from its `bbox` member.
fn item_bbox(item: &Json) -> Option<[f64; 4]> {
    let v: Vec<f64> = item["bbox"]
        .as_array()?
        .iter()
        .map(Json::as_f64)
        .collect::<Option<_>>()?;
    match v.as_slice() {
        [x0, y0, x1, y1] | [x0, y0, _, x1, y1, _] => Some([*x0, *y0, *x1, *y1]),
        _ => None,
    }
}

/// The inferred schema with the timestamp properties as `timestamp[us, UTC]` and the bbox
/// struct's fields as doubles.
fn with_timestamps(inferred: &Schema) -> Schema {
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            let name = f.name().as_str();
            match f.data_type() {
                // Decoded without a zone (the instant in UTC), then labelled UTC: arrow-json
                // parses zone names only with chrono-tz, which nothing else here needs.
                DataType::Utf8 if TIMESTAMP_COLUMNS.contains(&name) => {
                    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, None), true)
                }
                DataType::Struct(parts) if name == "bbox" => {
                    let parts: Vec<Field> = parts
                        .iter()
                        .map(|p| Field::new(p.name(), DataType::Float64, true))
                        .collect();
                    Field::new(name, DataType::Struct(parts.into()), true)
                }
                _ => f.as_ref().clone(),
            }
        })
        .collect();
    Schema::new(fields)
}

/// The file's schema: the JSON columns (timestamps in UTC), then `geometry` as WKB.
fn file_schema(json_schema: &Schema) -> Schema {
    let mut fields: Vec<Field> = json_schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, None) => Field::new(
                f.name(),
                DataType::Timestamp(*unit, Some("UTC".into())),
                true,
            ),
            _ => f.as_ref().clone(),
        })
        .collect();
    fields.push(
        Field::new("geometry", DataType::Binary, true).with_metadata(
            [
                (
                    "ARROW:extension:name".to_string(),
                    "geoarrow.wkb".to_string(),
                ),
                ("ARROW:extension:metadata".to_string(), "{}".to_string()),
            ]
            .into(),
        ),
    );
    Schema::new(fields)
}

/// One chunk of items as a record batch of `schema`.
fn encode(items: Vec<Json>, json_schema: &SchemaRef, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut geometries = BinaryBuilder::new();
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let (row, geometry) = flatten(item)?;
        let id = row
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or("?")
            .to_string();
        let bad = |e: String| Error::Parse {
            location: format!("item {id}"),
            reason: e,
        };
        match crate::grid::geometry_from_json(&geometry).map_err(|e| bad(e.to_string()))? {
            Some(g) => {
                let mut wkb = Vec::new();
                wkb::writer::write_geometry(&mut wkb, &g, &wkb::writer::WriteOptions::default())
                    .map_err(|e| bad(e.to_string()))?;
                geometries.append_value(wkb);
            }
            None => geometries.append_null(),
        }
        rows.push(row);
    }
    let mut decoder = arrow_json::ReaderBuilder::new(json_schema.clone())
        .with_coerce_primitive(true)
        .with_strict_mode(true)
        .build_decoder()
        .map_err(|e| Error::arrow("export", e))?;
    decoder
        .serialize(&rows)
        .map_err(|e| Error::arrow("export", e))?;
    let batch = decoder
        .flush()
        .map_err(|e| Error::arrow("export", e))?
        .unwrap_or_else(|| RecordBatch::new_empty(json_schema.clone()));
    let mut columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, None) => Arc::new(
                c.as_primitive::<TimestampMicrosecondType>()
                    .clone()
                    .with_timezone("UTC"),
            ) as ArrayRef,
            _ => c.clone(),
        })
        .collect();
    columns.push(Arc::new(geometries.finish()));
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow("export", e))
}

/// The collections of the exported items, each with the extent of its items.
#[derive(Debug, Default)]
struct Extents {
    by_id: BTreeMap<String, Extent>,
}

/// One collection's extent: bbox (NaN until an item has one), earliest and latest time (µs).
#[derive(Debug)]
struct Extent {
    bbox: [f64; 4],
    start: Option<i64>,
    end: Option<i64>,
}

impl Extents {
    fn add(&mut self, item: &Json) {
        let Some(id) = item["collection"].as_str() else {
            return;
        };
        let time = |name: &str| {
            item["properties"][name]
                .as_str()
                .and_then(crate::timestamp::parse_micros)
        };
        let lo = time("start_datetime").or_else(|| time("datetime"));
        let hi = time("end_datetime").or_else(|| time("datetime"));
        let b = item_bbox(item);
        let e = self.by_id.entry(id.to_string()).or_insert(Extent {
            bbox: b.unwrap_or([f64::NAN; 4]),
            start: lo,
            end: hi,
        });
        if let Some(b) = b {
            e.bbox = if e.bbox[0].is_nan() {
                b
            } else {
                bbox_union(Some(e.bbox), b)
            };
        }
        e.start = match (e.start, lo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        e.end = match (e.end, hi) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn ids(&self) -> Vec<String> {
        self.by_id.keys().cloned().collect()
    }

    /// Minimal STAC collections (id, description, licence, extent).
    fn to_json(&self) -> Json {
        let time = |t: Option<i64>| {
            t.and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
                .unwrap_or(Json::Null)
        };
        let mut out = Map::new();
        for (id, e) in &self.by_id {
            let bbox = if e.bbox[0].is_nan() {
                [-180.0, -90.0, 180.0, 90.0]
            } else {
                e.bbox
            };
            let (lo, hi) = (&e.start, &e.end);
            out.insert(
                id.clone(),
                json!({
                    "type": "Collection", "stac_version": "1.0.0", "id": id,
                    "description": format!("Items of collection {id} exported by earthcatalog"),
                    "license": "other",
                    "extent": {
                        "spatial": {"bbox": [bbox]},
                        "temporal": {"interval": [[time(*lo), time(*hi)]]},
                    },
                    "links": [],
                }),
            );
        }
        Json::Object(out)
    }
}
