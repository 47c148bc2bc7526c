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
use crate::schema::{COVERING_COLUMN, OVERFLOW_COLUMN};

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
    /// Two property columns share a name (the item keeps the last one's value).
    repeated_property: bool,
    rows: usize,
    /// The collection of items stored without one (see [`ItemBatch::with_default_collection`]).
    default_collection: Option<std::sync::Arc<str>>,
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
            repeated_property: false,
            rows: batch.num_rows(),
            default_collection: None,
        };
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            // The covering repeats the geometry's bounds; an item does not carry it.
            if field.name() == COVERING_COLUMN {
                continue;
            }
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
        let mut names: Vec<&str> = out.properties.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        out.repeated_property = names.windows(2).any(|w| w[0] == w[1]);
        Ok(out)
    }

    /// Give items stored without a `collection` this one (member and links), as a server
    /// that serves them under a default collection does.
    pub fn with_default_collection(mut self, collection: Option<std::sync::Arc<str>>) -> Self {
        self.default_collection = collection;
        self
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

    /// The non-null cell of top-level member `name` at row `i`.
    fn top_cell(&self, name: &str, i: usize) -> Option<&ArrayRef> {
        let (_, a) = self.top.iter().find(|(n, _)| n == name)?;
        (!a.is_null(i)).then_some(a)
    }

    /// The WKB footprint of row `i`.
    fn wkb(&self, i: usize) -> Option<&[u8]> {
        let g = self.geometry.as_ref()?.as_binary_opt::<i32>()?;
        (!g.is_null(i)).then(|| g.value(i))
    }

    /// The `properties_overflow` text of row `i`.
    fn overflow(&self, i: usize) -> Option<&str> {
        let o = self.overflow.as_ref()?.as_string_opt::<i32>()?;
        (!o.is_null(i)).then(|| o.value(i))
    }

    /// The `grid_partition` of row `i` when it is asked for.
    fn grid_partition(&self, i: usize, wanted: bool) -> Option<&str> {
        let g = self.grid_partition.as_ref()?.as_string_opt::<i32>()?;
        (wanted && !g.is_null(i)).then(|| g.value(i))
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
            let v = cell_json(self.top_cell(name, i)?, i);
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
        match (top("collection"), &self.default_collection) {
            (Some(v), _) => {
                item.insert("collection".into(), v);
            }
            (None, Some(d)) => {
                item.insert("collection".into(), Json::String(d.to_string()));
            }
            (None, None) => {}
        }
        let geometry = self.wkb(i).and_then(wkb_to_geojson).unwrap_or(Json::Null);
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
        if let Some(o) = self.overflow(i) {
            match serde_json::from_str::<Json>(o) {
                Ok(Json::Object(m)) => properties.extend(m),
                _ => {
                    properties.insert(OVERFLOW_COLUMN.into(), Json::String(o.into()));
                }
            }
        }
        if let Some(g) = self.grid_partition(i, with_grid_partition) {
            properties.insert("grid_partition".into(), Json::String(g.into()));
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
        if let Some(o) = self.overflow(i)
            && let Ok(Json::Object(mut m)) = serde_json::from_str::<Json>(o)
            && let Some(v) = m.remove(name)
        {
            return Some(v);
        }
        let (_, a) = self.properties.iter().find(|(n, _)| n == name)?;
        (!a.is_null(i)).then(|| property_cell(a, i))
    }
}

/// Rewrites an item's `links` from what it stores: given the stored links (empty when there are
/// none or they are not a JSON array), the item's id and its collection, the links to write.
pub type Relink<'a> = &'a (dyn Fn(Vec<Json>, Option<&str>, Option<&str>) -> Vec<Json> + Sync);

/// Replace an item's `links` by what `relink` makes of them; the new `links` is the last member.
/// [`ItemBatch::write_item_json`] writes the same bytes without building the item.
pub fn relink_item(item: &mut Json, relink: Relink<'_>) {
    let Json::Object(obj) = item else {
        return;
    };
    let stored = stored_links(obj.remove("links"));
    let links = relink(
        stored,
        obj.get("id").and_then(Json::as_str),
        obj.get("collection").and_then(Json::as_str),
    );
    obj.insert("links".into(), Json::Array(links));
}

/// [`relink_item`] (when `relink` is given), then [`write_item`] into `out`.
pub(super) fn write_relinked(mut item: Json, relink: Option<Relink<'_>>, out: &mut Vec<u8>) {
    if let Some(relink) = relink {
        relink_item(&mut item, relink);
    }
    // Writing into a Vec cannot fail.
    let _ = write_item(out, &item);
}

/// The stored `links` member as a list: parsed when it is JSON text, empty when absent or not
/// an array.
fn stored_links(v: Option<Json>) -> Vec<Json> {
    let v = match v {
        Some(Json::String(text)) => serde_json::from_str::<Json>(&text).unwrap_or(Json::Null),
        Some(v) => v,
        None => Json::Null,
    };
    match v {
        Json::Array(v) => v,
        _ => Vec::new(),
    }
}

impl ItemBatch {
    /// Write row `i` as compact item JSON, byte for byte what [`write_item`] writes of
    /// [`ItemBatch::item_with`] (then [`relink_item`] when `relink` is given), without building
    /// the item: values go from the columns straight to `out`. Measured on `serve`'s point
    /// searches, building and dropping the `serde_json` tree was a fifth of the CPU.
    pub fn write_item_json(
        &self,
        i: usize,
        with_grid_partition: bool,
        json_text: bool,
        relink: Option<Relink<'_>>,
        out: &mut Vec<u8>,
    ) {
        if self.repeated_property || self.overflow(i).is_some() {
            // Overflow members (or a second column of the same name) replace column properties
            // in place: build the item.
            write_relinked(
                self.item_with(i, with_grid_partition, json_text),
                relink,
                out,
            );
            return;
        }
        let top = |name: &str| self.top_cell(name, i);
        out.push(b'{');
        key(out, "type", true);
        match top("type") {
            Some(a) => member(out, a, i, false, json_text),
            None => out.extend_from_slice(b"\"Feature\""),
        }
        for name in ["stac_version", "stac_extensions"] {
            if let Some(a) = top(name) {
                key(out, name, false);
                member(out, a, i, name == "stac_extensions", json_text);
            }
        }
        key(out, "id", false);
        let id = self.id(i);
        match id {
            Some(s) => json_str(out, s),
            None => out.extend_from_slice(b"null"),
        }
        let collection = top("collection");
        match (collection, &self.default_collection) {
            (Some(a), _) => {
                key(out, "collection", false);
                member(out, a, i, false, json_text);
            }
            (None, Some(d)) => {
                key(out, "collection", false);
                json_str(out, d);
            }
            (None, None) => {}
        }
        key(out, "geometry", false);
        let geometry = self.wkb(i).and_then(wkb_geometry);
        let start = out.len();
        let written = geometry.is_some_and(|g| {
            serde_json::to_writer(&mut *out, &geojson::Geometry::from(&g)).is_ok()
        });
        if !written {
            out.truncate(start);
            out.extend_from_slice(b"null");
        }
        if let Some(a) = top("bbox") {
            key(out, "bbox", false);
            member(out, a, i, true, json_text);
        }
        key(out, "properties", false);
        out.push(b'{');
        let mut first = true;
        for (name, a) in &self.properties {
            if a.is_null(i) {
                continue;
            }
            key(out, name, first);
            first = false;
            if a.data_type() == &DataType::Utf8 {
                text_or_json(out, a.as_string::<i32>().value(i));
            } else {
                value(out, &cell_json(a, i));
            }
        }
        if let Some(g) = self.grid_partition(i, with_grid_partition) {
            key(out, "grid_partition", first);
            json_str(out, g);
        }
        out.push(b'}');
        match relink {
            None => {
                for name in ["links", "assets"] {
                    if let Some(a) = top(name) {
                        key(out, name, false);
                        member(out, a, i, true, json_text);
                    }
                }
            }
            Some(relink) => {
                if let Some(a) = top("assets") {
                    key(out, "assets", false);
                    member(out, a, i, true, json_text);
                }
                let stored = top("links").map(|a| {
                    let v = cell_json(a, i);
                    if json_text { v } else { parse_json_text(v) }
                });
                // The collection as the item holds it (a non-text column as its JSON value).
                let other = collection
                    .filter(|a| a.data_type() != &DataType::Utf8)
                    .map(|a| cell_json(a, i));
                let collection = match collection.and_then(|a| a.as_string_opt::<i32>()) {
                    Some(c) => Some(c.value(i)),
                    None if collection.is_none() => self.default_collection.as_deref(),
                    None => other.as_ref().and_then(Json::as_str),
                };
                let links = relink(stored_links(stored), id, collection);
                key(out, "links", false);
                value(out, &Json::Array(links));
            }
        }
        out.push(b'}');
    }
}

/// `"name":`, after a comma unless `first`.
fn key(out: &mut Vec<u8>, name: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    json_str(out, name);
    out.push(b':');
}

/// A JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JSON value.
fn value(out: &mut Vec<u8>, v: &Json) {
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// A text cell the way [`parse_json_text`] reads it: JSON text of an array or object as that
/// value (re-serialised), anything else as a string.
fn text_or_json(out: &mut Vec<u8>, s: &str) {
    match is_container_text(s)
        .then(|| serde_json::from_str::<Json>(s).ok())
        .flatten()
    {
        Some(v) => value(out, &v),
        None => json_str(out, s),
    }
}

/// A top-level member's cell: `json` members (stored as JSON text) are spliced verbatim when
/// `json_text` (as [`write_item`] does) or parsed as [`ItemBatch::item_with`] does otherwise.
fn member(out: &mut Vec<u8>, a: &ArrayRef, i: usize, json: bool, json_text: bool) {
    if a.data_type() == &DataType::Utf8 {
        let s = a.as_string::<i32>().value(i);
        match (json, json_text) {
            (true, true) if is_json_text(s) => out.extend_from_slice(s.as_bytes()),
            (true, false) => text_or_json(out, s),
            _ => json_str(out, s),
        }
        return;
    }
    match cell_json(a, i) {
        Json::String(s) if json && json_text && is_json_text(&s) => {
            out.extend_from_slice(s.as_bytes())
        }
        v if json && !json_text => value(out, &parse_json_text(v)),
        v => value(out, &v),
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

    fn wkb(g: &geo_types::Geometry<f64>) -> Vec<u8> {
        let mut buf = Vec::new();
        wkb::writer::write_geometry(&mut buf, g, &wkb::writer::WriteOptions::default()).unwrap();
        buf
    }

    fn relink(stored: Vec<Json>, id: Option<&str>, c: Option<&str>) -> Vec<Json> {
        let mut v: Vec<Json> = stored
            .into_iter()
            .filter(|l| l.get("rel").and_then(Json::as_str) != Some("self"))
            .collect();
        v.push(serde_json::json!({"rel": "self", "href": format!("{c:?}/{id:?}")}));
        v
    }

    /// Every row, every option: the direct writer's bytes are those of the built item.
    fn assert_writes_as_built(batch: &RecordBatch) {
        let items = ItemBatch::new(batch, "test").unwrap();
        for i in 0..items.len() {
            for gp in [false, true] {
                for json_text in [false, true] {
                    for with_relink in [false, true] {
                        let r: Option<Relink<'_>> = with_relink.then_some(&relink as Relink<'_>);
                        let mut item = items.item_with(i, gp, json_text);
                        if let Some(r) = r {
                            relink_item(&mut item, r);
                        }
                        let mut want = Vec::new();
                        write_item(&mut want, &item).unwrap();
                        let mut got = Vec::new();
                        items.write_item_json(i, gp, json_text, r, &mut got);
                        assert_eq!(
                            String::from_utf8(got).unwrap(),
                            String::from_utf8(want).unwrap(),
                            "row {i}, grid_partition {gp}, json_text {json_text}, relink {with_relink}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn written_items_are_the_built_items_byte_for_byte() {
        use arrow_array::builder::TimestampMicrosecondBuilder;
        use arrow_array::{BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray};
        use std::sync::Arc;
        let point = wkb(&geo_types::Geometry::Point(geo_types::Point::new(
            10.0, -3.5,
        )));
        let poly = wkb(&geo_types::Geometry::Polygon(geo_types::Polygon::new(
            geo_types::LineString::from(vec![(0.0, 0.0), (1.5, 0.0), (1.5, 1.0), (0.0, 0.0)]),
            vec![],
        )));
        let s = |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
        let mut ts = TimestampMicrosecondBuilder::new();
        ts.append_value(1_600_000_000_123_456);
        ts.append_null();
        ts.append_value(0);
        ts.append_value(-1);
        let ts = Arc::new(ts.finish().with_timezone("UTC")) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "type",
                s(&[Some("Feature"), None, Some("Feature"), Some("x\"y")]),
            ),
            (
                "stac_version",
                s(&[Some("1.0.0"), Some("1.1.0"), None, Some("1.0.0")]),
            ),
            (
                "stac_extensions",
                s(&[Some("[\"a\", \"b\"]"), Some("[broken"), None, Some("{}")]),
            ),
            ("id", s(&[Some("a"), Some("b\u{e9}\n"), None, Some("d")])),
            (
                "collection",
                s(&[Some("c1"), None, Some("c/2"), Some("{\"x\": 1}")]),
            ),
            (
                "geometry",
                Arc::new(BinaryArray::from(vec![
                    Some(point.as_slice()),
                    Some(poly.as_slice()),
                    None,
                    Some(b"not wkb".as_slice()),
                ])),
            ),
            (
                "bbox",
                s(&[
                    Some("[10.0, -3.5, 10.0, -3.5]"),
                    None,
                    Some("not json"),
                    Some("[1,2,3,4]"),
                ]),
            ),
            ("datetime", ts),
            (
                "platform",
                s(&[
                    Some("S1A"),
                    Some("[1, 2]"),
                    Some("{\"k\": [true, null]}"),
                    None,
                ]),
            ),
            (
                "note",
                s(&[
                    Some("[broken"),
                    Some(""),
                    Some("plain \"quoted\""),
                    Some("{}"),
                ]),
            ),
            (
                "cloud",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(f64::NAN),
                    None,
                    Some(-0.25),
                ])),
            ),
            (
                "count",
                Arc::new(Int64Array::from(vec![
                    Some(37),
                    None,
                    Some(-1),
                    Some(i64::MAX),
                ])),
            ),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                ])),
            ),
            (
                "grid_partition",
                s(&[Some("8a2a"), None, Some("x"), Some("y")]),
            ),
            (
                OVERFLOW_COLUMN,
                s(&[
                    None,
                    Some("{\"platform\": \"over\", \"new\": 1}"),
                    Some("not an object"),
                    None,
                ]),
            ),
            (
                "links",
                s(&[
                    Some(
                        "[{\"rel\": \"self\", \"href\": \"s3://x\"}, {\"rel\":\"license\",\"href\":\"l\"}]",
                    ),
                    Some("{}"),
                    None,
                    Some("[broken"),
                ]),
            ),
            (
                "assets",
                s(&[
                    Some("{\"data\": {\"href\": \"s3://x.nc\", \"roles\": [\"data\"]}}"),
                    None,
                    Some("[]"),
                    Some("nope"),
                ]),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns.clone()).unwrap();
        assert_writes_as_built(&batch);
        // Without an overflow column, and with a property repeated.
        let no_overflow: Vec<_> = columns
            .iter()
            .filter(|(n, _)| *n != OVERFLOW_COLUMN)
            .cloned()
            .collect();
        assert_writes_as_built(&RecordBatch::try_from_iter(no_overflow.clone()).unwrap());
        let mut repeated = no_overflow;
        repeated.push(("platform", s(&[Some("again"), None, Some("x"), Some("y")])));
        let schema = arrow_schema::Schema::new(
            repeated
                .iter()
                .map(|(n, a)| arrow_schema::Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            repeated.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        assert_writes_as_built(&batch);
    }
}
