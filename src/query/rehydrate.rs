//! Stored rows back to STAC item JSON.
//!
//! A row of a data file becomes the item it was ingested from:
//!
//! ```text
//! type, stac_version, stac_extensions (parsed), id, collection, geometry (GeoJSON from the WKB),
//! bbox (parsed), properties { every other column, properties_overflow merged in }, links, assets
//! ```
//!
//! Normalisations (the item is equal to its source up to these):
//! * Numbers go through `f64`/`i64`: `37.0` stored in a `long` column comes back as `37`, and
//!   coordinates are written by the GeoJSON encoder (`10` may come back as `10.0`).
//! * Timestamps come back as RFC 3339 UTC with `Z` and the fractional digits needed (none, 3, 6
//!   or 9): offsets are converted, date-only and naive values gain a time and `Z`.
//! * Null properties are not stored, so they do not come back; an empty `properties` object is
//!   still written.
//! * `properties_overflow` is merged into `properties`. Ingest also keeps unknown *top-level*
//!   keys in that column, so they come back inside `properties`.
//! * String columns holding JSON text of an array or object (new properties whose values were
//!   arrays/objects are stored that way) are parsed back; a genuine string property whose text is
//!   a JSON array or object would be parsed too.
//! * `grid_partition` is dropped unless asked for (then it is a property).

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use serde_json::{Map, Value as Json};

use crate::error::Result;
use crate::geoparquet::read::{cell_json, normalise};
use crate::schema::OVERFLOW_COLUMN;

/// Top-level item members stored as JSON text, parsed back on the way out.
const JSON_TOP_LEVEL: [&str; 4] = ["stac_extensions", "bbox", "links", "assets"];
/// Top-level item members stored as plain text.
const TEXT_TOP_LEVEL: [&str; 3] = ["type", "stac_version", "collection"];

/// The columns of one record batch, normalised once, ready to rebuild items row by row.
#[derive(Debug)]
pub struct ItemBatch {
    id: Option<ArrayRef>,
    geometry: Option<ArrayRef>,
    grid_partition: Option<ArrayRef>,
    overflow: Option<ArrayRef>,
    top: Vec<(String, ArrayRef)>,
    properties: Vec<(String, ArrayRef)>,
    rows: usize,
}

impl ItemBatch {
    /// Prepare a batch read from a data file (any column subset; missing columns are absent
    /// members). `label` names the file in errors.
    pub fn new(batch: &RecordBatch, label: &str) -> Result<Self> {
        let schema = batch.schema();
        let mut out = Self {
            id: None,
            geometry: None,
            grid_partition: None,
            overflow: None,
            top: Vec::new(),
            properties: Vec::new(),
            rows: batch.num_rows(),
        };
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let array = normalise(array, label)?;
            let name = field.name().as_str();
            match name {
                "id" => out.id = Some(array),
                "geometry" => out.geometry = Some(array),
                "grid_partition" => out.grid_partition = Some(array),
                OVERFLOW_COLUMN => out.overflow = Some(array),
                n if JSON_TOP_LEVEL.contains(&n) || TEXT_TOP_LEVEL.contains(&n) => {
                    out.top.push((n.to_string(), array))
                }
                n => out.properties.push((n.to_string(), array)),
            }
        }
        Ok(out)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The item id of row `i` (`None` when null or there is no id column).
    pub fn id(&self, i: usize) -> Option<&str> {
        let ids = self.id.as_ref()?.as_string_opt::<i32>()?;
        (!ids.is_null(i)).then(|| ids.value(i))
    }

    /// The item of row `i` as STAC JSON (see the module docs for the normalisations).
    pub fn item(&self, i: usize, with_grid_partition: bool) -> Json {
        self.item_with(i, with_grid_partition, false)
    }

    /// [`ItemBatch::item`], with `assets`, `links`, `bbox` and `stac_extensions` left as their
    /// stored JSON text (a string) when `json_text` is set: for writers that splice the text
    /// into their output with [`write_item`] instead of parsing and re-serialising it.
    pub fn item_with(&self, i: usize, with_grid_partition: bool, json_text: bool) -> Json {
        let top = |name: &str| -> Option<Json> {
            let (_, a) = self.top.iter().find(|(n, _)| n == name)?;
            if a.is_null(i) {
                return None;
            }
            let v = cell_json(a, i);
            Some(if JSON_TOP_LEVEL.contains(&name) && !json_text {
                parse_json_text(v)
            } else {
                v
            })
        };
        let mut item = Map::new();
        item.insert(
            "type".into(),
            top("type").unwrap_or_else(|| Json::String("Feature".into())),
        );
        for name in ["stac_version", "stac_extensions"] {
            if let Some(v) = top(name) {
                item.insert(name.into(), v);
            }
        }
        let id = self
            .id(i)
            .map_or(Json::Null, |s| Json::String(s.to_string()));
        item.insert("id".into(), id);
        if let Some(v) = top("collection") {
            item.insert("collection".into(), v);
        }
        let geometry = self
            .geometry
            .as_ref()
            .and_then(|g| g.as_binary_opt::<i32>())
            .and_then(|g| (!g.is_null(i)).then(|| wkb_to_geojson(g.value(i))))
            .flatten()
            .unwrap_or(Json::Null);
        item.insert("geometry".into(), geometry);
        if let Some(v) = top("bbox") {
            item.insert("bbox".into(), v);
        }
        let mut properties = Map::new();
        for (name, a) in &self.properties {
            if a.is_null(i) {
                continue;
            }
            properties.insert(name.clone(), property_cell(a, i));
        }
        if let Some(o) = self
            .overflow
            .as_ref()
            .and_then(|o| o.as_string_opt::<i32>())
            && !o.is_null(i)
        {
            match serde_json::from_str::<Json>(o.value(i)) {
                Ok(Json::Object(m)) => properties.extend(m),
                _ => {
                    properties.insert(OVERFLOW_COLUMN.into(), Json::String(o.value(i).into()));
                }
            }
        }
        if with_grid_partition
            && let Some(g) = self
                .grid_partition
                .as_ref()
                .and_then(|g| g.as_string_opt::<i32>())
            && !g.is_null(i)
        {
            properties.insert("grid_partition".into(), Json::String(g.value(i).into()));
        }
        item.insert("properties".into(), Json::Object(properties));
        for name in ["links", "assets"] {
            if let Some(v) = top(name) {
                item.insert(name.into(), v);
            }
        }
        Json::Object(item)
    }
}

impl ItemBatch {
    /// Property `name` of row `i` exactly as [`ItemBatch::item`] gives it (a stored overflow
    /// value wins over a column, as there), without building the item.
    pub fn property(&self, i: usize, name: &str) -> Option<Json> {
        if let Some(o) = self
            .overflow
            .as_ref()
            .and_then(|o| o.as_string_opt::<i32>())
            && !o.is_null(i)
            && let Ok(Json::Object(mut m)) = serde_json::from_str::<Json>(o.value(i))
            && let Some(v) = m.remove(name)
        {
            return Some(v);
        }
        let (_, a) = self.properties.iter().find(|(n, _)| n == name)?;
        (!a.is_null(i)).then(|| property_cell(a, i))
    }
}

/// A property column's value at row `i` (string columns may hold JSON text).
fn property_cell(a: &ArrayRef, i: usize) -> Json {
    let v = cell_json(a, i);
    if a.data_type() == &DataType::Utf8 {
        parse_json_text(v)
    } else {
        v
    }
}

/// Row `i` of a record batch read from a data file, as STAC item JSON. Prefer [`ItemBatch`]
/// when converting many rows of one batch.
pub fn item_json(batch: &RecordBatch, i: usize, with_grid_partition: bool) -> Result<Json> {
    Ok(ItemBatch::new(batch, "record batch")?.item(i, with_grid_partition))
}

/// Write an item as compact JSON. A top-level `assets`, `links`, `bbox` or `stac_extensions`
/// member holding JSON text of an array or object (see [`ItemBatch::item_with`]) is written
/// as that JSON, verbatim; the same member holding any other string is written as a string —
/// exactly what parsing it first would have produced.
pub fn write_item<W: std::io::Write>(out: &mut W, item: &Json) -> std::io::Result<()> {
    let Json::Object(map) = item else {
        return serde_json::to_writer(out, item).map_err(std::io::Error::from);
    };
    out.write_all(b"{")?;
    for (n, (key, value)) in map.iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b":")?;
        match value {
            Json::String(text) if JSON_TOP_LEVEL.contains(&key.as_str()) && is_json_text(text) => {
                out.write_all(text.as_bytes())?
            }
            _ => serde_json::to_writer(&mut *out, value)?,
        }
    }
    out.write_all(b"}")
}

/// Text that [`parse_json_text`] turns into an array or object.
fn is_json_text(s: &str) -> bool {
    is_container_text(s) && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// Text that may hold a JSON array or object.
fn is_container_text(s: &str) -> bool {
    s.starts_with('[') || s.starts_with('{')
}

/// JSON text of an array or object → the value; anything else unchanged.
fn parse_json_text(v: Json) -> Json {
    match &v {
        Json::String(s) if is_container_text(s) => serde_json::from_str(s).unwrap_or(v),
        _ => v,
    }
}

/// A WKB blob as a GeoJSON geometry object (`None` when it cannot be decoded).
pub fn wkb_to_geojson(buf: &[u8]) -> Option<Json> {
    let g = wkb_geometry(buf)?;
    serde_json::to_value(geojson::Geometry::from(&g)).ok()
}

/// A WKB blob as a `geo` geometry (`None` when it cannot be decoded).
pub fn wkb_geometry(buf: &[u8]) -> Option<geo_types::Geometry<f64>> {
    use geo_traits::to_geo::ToGeoGeometry;
    wkb::reader::read_wkb(buf).ok()?.try_to_geometry()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_item_splices_only_json_text_members() {
        let item = serde_json::json!({
            "type": "Feature",
            "assets": "{\"a\": {\"href\": \"x\"}}",
            "links": "[broken",
            "bbox": "not json",
            "collection": "{\"kept\": \"as a string\"}",
        });
        let mut out = Vec::new();
        write_item(&mut out, &item).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type":"Feature","assets":{"a": {"href": "x"}},"links":"[broken","bbox":"not json","collection":"{\"kept\": \"as a string\"}"}"#
        );
        // Anything but an object is written as is.
        let mut out = Vec::new();
        write_item(&mut out, &serde_json::json!([1, "a"])).unwrap();
        assert_eq!(out, br#"[1,"a"]"#);
    }
}
