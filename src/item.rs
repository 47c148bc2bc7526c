//! STAC item JSON → a compact, typed row.
//!
//! Parsing keeps the item's own JSON for `assets`, `links`, `stac_extensions` and `bbox`
//! (re-serialised compactly, key order kept), converts timestamps to UTC microseconds and maps
//! every property onto a table column by name. Properties the table does not know yet become
//! new columns (typed by value); values that do not fit their column are kept verbatim in the
//! `properties_overflow` JSON column. Nothing is dropped.
//!
//! A footprint with a coordinate that cannot be on the globe — a longitude outside
//! [-180, 180], a latitude outside [-90, 90], or a value that is not finite — is rejected
//! ([`ItemError::InvalidGeometry`] naming the coordinate, counted in
//! [`ParseCounters::invalid_coordinates`]): such an item cannot be placed on the grid honestly.
//! Antimeridian footprints written within [-180, 180] (wrapped rings, RFC 7946 split
//! MultiPolygons) and polar rings are valid; see [`crate::grid`] for how they are read.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use crate::schema::{ColumnType, OVERFLOW_COLUMN, TableColumn};

/// A typed cell value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (or JSON text).
    Str(String),
    /// Integer.
    Long(i64),
    /// Float.
    Double(f64),
    /// Boolean.
    Bool(bool),
    /// UTC microseconds.
    Timestamp(i64),
}

/// Why an item could not be parsed (it is reported, never silently dropped).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ItemError {
    /// Body is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Body is JSON but not an object.
    #[error("item is not a JSON object")]
    NotAnObject,
    /// No usable `id`.
    #[error("item has no string id")]
    MissingId,
    /// `geometry` is present but malformed.
    #[error("invalid geometry: {0}")]
    InvalidGeometry(String),
    /// `properties` is present but not an object.
    #[error("properties is not an object")]
    BadProperties,
}

/// How an item's `datetime` was interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatetimeKind {
    /// RFC 3339 with offset (converted to UTC).
    Exact,
    /// Date only, taken as midnight UTC.
    DateOnly,
    /// Naive date-time, taken as UTC.
    Naive,
    /// Absent or null.
    Missing,
    /// Present but unparsable (kept in `properties_overflow`).
    Unparsable,
}

/// The version of a stored row of an item, ordered oldest to newest by the one rule every
/// reader applies (compaction's row and columnar merges, search): the latest `updated` wins,
/// then the latest `created`, then the row of the file committed later. A missing timestamp is
/// older than any present one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// `properties.updated`, UTC microseconds.
    pub updated: Option<i64>,
    /// `properties.created`, UTC microseconds.
    pub created: Option<i64>,
    /// Commit order of the file holding the row: higher = committed later.
    pub commit: u64,
}

impl Version {
    /// A row's version from its timestamps and its file's commit order.
    pub fn new(updated: Option<i64>, created: Option<i64>, commit: u64) -> Self {
        Self {
            updated,
            created,
            commit,
        }
    }
}

/// A [`Version`] in 20 bytes (4-byte aligned), for maps that hold one per item: a search's
/// dedup keeps one per id it returned, and a suspended page stream keeps that map (with a
/// 16-byte id digest an entry is 36 bytes instead of 56). A missing timestamp is stored as
/// `i64::MIN`, which no parsed timestamp reaches (years 0–9999); commit orders above
/// `u32::MAX` saturate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(4))]
pub struct PackedVersion {
    updated: i64,
    created: i64,
    commit: u32,
}

impl From<Version> for PackedVersion {
    fn from(v: Version) -> Self {
        Self {
            updated: v.updated.unwrap_or(i64::MIN),
            created: v.created.unwrap_or(i64::MIN),
            commit: u32::try_from(v.commit).unwrap_or(u32::MAX),
        }
    }
}

impl From<PackedVersion> for Version {
    fn from(p: PackedVersion) -> Self {
        let opt = |v: i64| (v != i64::MIN).then_some(v);
        let (updated, created, commit) = (p.updated, p.created, p.commit);
        Version::new(opt(updated), opt(created), u64::from(commit))
    }
}

/// Geometry kinds for GeoParquet `geometry_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GeometryKind {
    /// Point.
    Point,
    /// LineString.
    LineString,
    /// Polygon.
    Polygon,
    /// MultiPoint.
    MultiPoint,
    /// MultiLineString.
    MultiLineString,
    /// MultiPolygon.
    MultiPolygon,
    /// GeometryCollection.
    GeometryCollection,
}

impl GeometryKind {
    /// The GeoParquet name.
    pub fn name(self) -> &'static str {
        match self {
            GeometryKind::Point => "Point",
            GeometryKind::LineString => "LineString",
            GeometryKind::Polygon => "Polygon",
            GeometryKind::MultiPoint => "MultiPoint",
            GeometryKind::MultiLineString => "MultiLineString",
            GeometryKind::MultiPolygon => "MultiPolygon",
            GeometryKind::GeometryCollection => "GeometryCollection",
        }
    }

    fn of(g: &geo_types::Geometry<f64>) -> Option<Self> {
        use geo_types::Geometry as G;
        Some(match g {
            G::Point(_) => GeometryKind::Point,
            G::LineString(_) | G::Line(_) => GeometryKind::LineString,
            G::Polygon(_) | G::Rect(_) | G::Triangle(_) => GeometryKind::Polygon,
            G::MultiPoint(_) => GeometryKind::MultiPoint,
            G::MultiLineString(_) => GeometryKind::MultiLineString,
            G::MultiPolygon(_) => GeometryKind::MultiPolygon,
            G::GeometryCollection(_) => GeometryKind::GeometryCollection,
        })
    }
}

/// One item, ready to be written (shared by all the cells it fans out to).
#[derive(Debug, Clone)]
pub struct ItemRow {
    /// STAC id.
    pub id: String,
    /// WKB of the footprint.
    pub geometry_wkb: Option<Vec<u8>>,
    /// Kind of the footprint.
    pub geometry_kind: Option<GeometryKind>,
    /// 2D bounds of the footprint (xmin, ymin, xmax, ymax).
    pub bounds: Option<[f64; 4]>,
    /// `datetime` in UTC microseconds.
    pub datetime: Option<i64>,
    /// `platform` (sort key).
    pub platform: Option<String>,
    /// `updated` in UTC microseconds (dedup key).
    pub updated: Option<i64>,
    /// `created` in UTC microseconds (dedup key).
    pub created: Option<i64>,
    /// Column values by [`Columns`] index (sorted by index).
    pub values: Vec<(usize, Value)>,
    /// JSON object text of values that did not fit their columns.
    pub overflow: Option<String>,
    /// How `datetime` was read.
    pub datetime_kind: DatetimeKind,
    /// `start_datetime` and `end_datetime` in UTC microseconds, when the item has both.
    pub interval: Option<(i64, i64)>,
}

impl ItemRow {
    /// The item's year partition: the UTC calendar year of `datetime`, else of the midpoint of
    /// its `start_datetime`/`end_datetime` interval (ITS_LIVE's convention, so readers that
    /// prune by the `year=` path find interval-only items); `None` (`year=unknown`) for an item
    /// with no usable time.
    pub fn year(&self) -> Option<i32> {
        use chrono::Datelike;
        self.datetime
            .or_else(|| self.interval.map(|(s, e)| midpoint(s, e)))
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .map(|d| d.year())
    }

    /// Approximate heap size, for memory accounting.
    pub fn heap_size(&self) -> usize {
        let vals: usize = self
            .values
            .iter()
            .map(|(_, v)| match v {
                Value::Str(s) => s.len() + 32,
                _ => 32,
            })
            .sum();
        self.id.len()
            + self.geometry_wkb.as_ref().map_or(0, Vec::len)
            + self.overflow.as_ref().map_or(0, String::len)
            + vals
            + 160
    }
}

/// The instant halfway between `start` and `end` (µs), without overflow.
fn midpoint(start: i64, end: i64) -> i64 {
    ((i128::from(start) + i128::from(end)) / 2) as i64
}

/// Counters of interesting conversions made while parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParseCounters {
    /// Items whose `datetime` was date-only.
    pub datetime_date_only: u64,
    /// Items whose `datetime` was naive.
    pub datetime_naive: u64,
    /// Items with no `datetime`.
    pub datetime_missing: u64,
    /// Items whose `datetime` could not be parsed.
    pub datetime_unparsable: u64,
    /// Values kept in `properties_overflow`.
    pub overflow_values: u64,
    /// Items with a null or empty geometry.
    pub null_geometry: u64,
    /// Items rejected because a footprint coordinate is out of range or not finite.
    pub invalid_coordinates: u64,
}

struct ColumnsInner {
    names: Vec<String>,
    types: Vec<ColumnType>,
    by_name: HashMap<String, usize>,
    known: usize,
}

/// The columns items are mapped onto: the table's columns plus columns discovered while parsing.
pub struct Columns {
    inner: RwLock<ColumnsInner>,
}

impl std::fmt::Debug for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Columns").finish_non_exhaustive()
    }
}

/// Top-level item keys with their own columns (everything else at top level goes to overflow).
const TOP_LEVEL: [&str; 7] = [
    "type",
    "stac_version",
    "stac_extensions",
    "collection",
    "bbox",
    "links",
    "assets",
];

/// Column names that a property may never claim.
/// `year` is the partition field name (and the hive directory key), so no column may take it.
const RESERVED: [&str; 5] = ["id", "geometry", "grid_partition", "year", OVERFLOW_COLUMN];

impl Columns {
    /// Start from the table's columns.
    pub fn new(table: &[TableColumn]) -> Self {
        let mut inner = ColumnsInner {
            names: Vec::new(),
            types: Vec::new(),
            by_name: HashMap::new(),
            known: 0,
        };
        for c in table {
            inner.by_name.insert(c.name.clone(), inner.names.len());
            inner.names.push(c.name.clone());
            inner.types.push(c.ty);
        }
        inner.known = inner.names.len();
        Self {
            inner: RwLock::new(inner),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ColumnsInner> {
        match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ColumnsInner> {
        match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Index of a column by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.read().by_name.get(name).copied()
    }

    /// Index and type of an existing column.
    pub fn existing(&self, name: &str) -> Option<(usize, ColumnType)> {
        let g = self.read();
        g.by_name.get(name).map(|&i| (i, g.types[i]))
    }

    /// Name of a column by index.
    pub fn name_of(&self, idx: usize) -> Option<String> {
        self.read().names.get(idx).cloned()
    }

    /// Columns discovered since the last [`Columns::mark_known`], with their types, and the
    /// mark to pass to `mark_known` once exactly these columns exist in the table.
    pub fn pending(&self) -> (Vec<(String, ColumnType)>, usize) {
        let g = self.read();
        let cols = (g.known..g.names.len())
            .map(|i| (g.names[i].clone(), g.types[i]))
            .collect();
        (cols, g.names.len())
    }

    /// Record that the columns before `upto` (from [`Columns::pending`]) exist in the table.
    /// Columns discovered meanwhile stay pending.
    pub fn mark_known(&self, upto: usize) {
        let mut g = self.write();
        g.known = g.known.max(upto.min(g.names.len()));
    }

    fn column_for(&self, name: &str, value: &Json) -> Option<(usize, ColumnType)> {
        {
            let g = self.read();
            if let Some(&i) = g.by_name.get(name) {
                return Some((i, g.types[i]));
            }
        }
        if name.is_empty() || name.contains('.') || name.len() > 255 {
            return None;
        }
        let ty = match value {
            Json::Null => return None,
            Json::Bool(_) => ColumnType::Boolean,
            Json::Number(n) if n.is_i64() => ColumnType::Long,
            Json::Number(_) => ColumnType::Double,
            Json::String(_) | Json::Array(_) | Json::Object(_) => ColumnType::String,
        };
        let mut g = self.write();
        if let Some(&i) = g.by_name.get(name) {
            return Some((i, g.types[i]));
        }
        let i = g.names.len();
        g.names.push(name.to_string());
        g.types.push(ty);
        g.by_name.insert(name.to_string(), i);
        Some((i, ty))
    }

    /// Ensure the overflow column exists; returns its index.
    fn overflow_index(&self) -> usize {
        if let Some(i) = self.index_of(OVERFLOW_COLUMN) {
            return i;
        }
        let mut g = self.write();
        if let Some(&i) = g.by_name.get(OVERFLOW_COLUMN) {
            return i;
        }
        let i = g.names.len();
        g.names.push(OVERFLOW_COLUMN.to_string());
        g.types.push(ColumnType::String);
        g.by_name.insert(OVERFLOW_COLUMN.to_string(), i);
        i
    }
}

/// Parse an item body into a row and its footprint.
pub fn parse_item(
    body: &[u8],
    columns: &Columns,
    counters: &mut ParseCounters,
) -> Result<(ItemRow, Option<geo_types::Geometry<f64>>), ItemError> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| ItemError::InvalidJson(e.to_string()))?;
    let Json::Object(mut obj) = json else {
        return Err(ItemError::NotAnObject);
    };
    let id = match obj.remove("id") {
        Some(Json::String(s)) if !s.trim().is_empty() => s,
        _ => return Err(ItemError::MissingId),
    };
    let geometry_json = obj.remove("geometry").unwrap_or(Json::Null);
    let geometry = crate::grid::geometry_from_json(&geometry_json)
        .map_err(|e| ItemError::InvalidGeometry(e.to_string()))?;
    if let Some(problem) = geometry.as_ref().and_then(invalid_coordinate) {
        counters.invalid_coordinates += 1;
        return Err(ItemError::InvalidGeometry(problem));
    }
    let (geometry_wkb, geometry_kind, bounds) = match &geometry {
        Some(g) => {
            let mut buf = Vec::new();
            wkb::writer::write_geometry(&mut buf, g, &wkb::writer::WriteOptions::default())
                .map_err(|e| ItemError::InvalidGeometry(e.to_string()))?;
            let bounds = geo::BoundingRect::bounding_rect(g)
                .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]);
            (Some(buf), GeometryKind::of(g), bounds)
        }
        None => {
            counters.null_geometry += 1;
            (None, None, None)
        }
    };
    let properties = match obj.remove("properties") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m,
        Some(_) => return Err(ItemError::BadProperties),
    };

    let mut values: Vec<(usize, Value)> = Vec::with_capacity(properties.len() + TOP_LEVEL.len());
    let mut overflow = Map::new();

    for (key, value) in obj {
        if TOP_LEVEL.contains(&key.as_str()) {
            if value.is_null() {
                continue;
            }
            match columns.column_for(&key, &value) {
                Some((idx, ColumnType::String)) => values.push((idx, Value::Str(json_text(value)))),
                _ => {
                    overflow.insert(key, value);
                }
            }
        } else {
            overflow.insert(key, value);
        }
    }

    let mut keys = RowKeys::default();
    for (key, value) in properties {
        if RESERVED.contains(&key.as_str()) || TOP_LEVEL.contains(&key.as_str()) {
            if !value.is_null() {
                overflow.insert(key, value);
            }
            continue;
        }
        assign_property(
            key,
            value,
            columns,
            true,
            &mut values,
            &mut overflow,
            &mut keys,
        );
    }
    let RowKeys {
        datetime,
        start,
        end,
        datetime_kind,
        platform,
        updated,
        created,
    } = keys;
    match datetime_kind {
        DatetimeKind::DateOnly => counters.datetime_date_only += 1,
        DatetimeKind::Naive => counters.datetime_naive += 1,
        DatetimeKind::Missing => counters.datetime_missing += 1,
        DatetimeKind::Unparsable => counters.datetime_unparsable += 1,
        DatetimeKind::Exact => {}
    }
    let overflow = if overflow.is_empty() {
        None
    } else {
        counters.overflow_values += overflow.len() as u64;
        columns.overflow_index();
        Some(Json::Object(overflow).to_string())
    };
    values.sort_by_key(|(i, _)| *i);
    Ok((
        ItemRow {
            id,
            geometry_wkb,
            geometry_kind,
            bounds,
            datetime,
            platform,
            updated,
            created,
            values,
            overflow,
            datetime_kind,
            interval: start.zip(end),
        },
        geometry,
    ))
}

/// The first coordinate of `geometry` that is not on the globe, described: non-finite, or a
/// longitude outside [-180, 180], or a latitude outside [-90, 90] (bounds included).
fn invalid_coordinate(geometry: &geo_types::Geometry<f64>) -> Option<String> {
    use geo::CoordsIter;
    geometry.coords_iter().find_map(|c| {
        let problem = if !c.x.is_finite() {
            format!("longitude {} is not a finite number", c.x)
        } else if !c.y.is_finite() {
            format!("latitude {} is not a finite number", c.y)
        } else if !(-180.0..=180.0).contains(&c.x) {
            format!("longitude {} is outside [-180, 180]", c.x)
        } else if !(-90.0..=90.0).contains(&c.y) {
            format!("latitude {} is outside [-90, 90]", c.y)
        } else {
            return None;
        };
        Some(format!("coordinate [{}, {}]: {problem}", c.x, c.y))
    })
}

/// Sort and dedup keys picked up while assigning properties.
#[derive(Debug)]
struct RowKeys {
    datetime: Option<i64>,
    start: Option<i64>,
    end: Option<i64>,
    datetime_kind: DatetimeKind,
    platform: Option<String>,
    updated: Option<i64>,
    created: Option<i64>,
}

impl Default for RowKeys {
    fn default() -> Self {
        Self {
            datetime: None,
            start: None,
            end: None,
            datetime_kind: DatetimeKind::Missing,
            platform: None,
            updated: None,
            created: None,
        }
    }
}

/// Put one property value into its column, or into `overflow` when it does not fit (or when
/// the column is unknown and `create` is false).
fn assign_property(
    key: String,
    value: Json,
    columns: &Columns,
    create: bool,
    values: &mut Vec<(usize, Value)>,
    overflow: &mut Map<String, Json>,
    keys: &mut RowKeys,
) {
    if value.is_null() {
        return;
    }
    let column = if create {
        columns.column_for(&key, &value)
    } else {
        columns.existing(&key)
    };
    let Some((idx, ty)) = column else {
        overflow.insert(key, value);
        return;
    };
    match convert(ty, &value) {
        Some((v, kind)) => {
            match (key.as_str(), &v) {
                ("datetime", Value::Timestamp(t)) => {
                    keys.datetime = Some(*t);
                    keys.datetime_kind = kind;
                }
                ("start_datetime", Value::Timestamp(t)) => keys.start = Some(*t),
                ("end_datetime", Value::Timestamp(t)) => keys.end = Some(*t),
                ("updated", Value::Timestamp(t)) => keys.updated = Some(*t),
                ("created", Value::Timestamp(t)) => keys.created = Some(*t),
                ("platform", Value::Str(s)) => keys.platform = Some(s.clone()),
                _ => {}
            }
            values.push((idx, v));
        }
        None => {
            if key == "datetime" {
                keys.datetime_kind = DatetimeKind::Unparsable;
            }
            overflow.insert(key, value);
        }
    }
}

/// Rebuild a row from values stored in a data file (compaction, repair): `stored` holds
/// (column name, value as JSON; timestamps as RFC 3339 text). Columns the table does not know
/// and values that do not fit go to `properties_overflow`, merged with the stored overflow.
pub fn row_from_stored(
    id: String,
    geometry_wkb: Option<Vec<u8>>,
    stored_overflow: Option<&str>,
    stored: Vec<(String, Json)>,
    columns: &Columns,
) -> ItemRow {
    let mut overflow = match stored_overflow.map(serde_json::from_str::<Json>) {
        Some(Ok(Json::Object(m))) => m,
        Some(_) => {
            let mut m = Map::new();
            if let Some(raw) = stored_overflow {
                m.insert(OVERFLOW_COLUMN.to_string(), Json::String(raw.to_string()));
            }
            m
        }
        None => Map::new(),
    };
    let mut values = Vec::with_capacity(stored.len());
    let mut keys = RowKeys::default();
    for (name, value) in stored {
        if TOP_LEVEL.contains(&name.as_str()) {
            match (columns.existing(&name), value) {
                (_, Json::Null) => {}
                (Some((idx, ColumnType::String)), Json::String(s)) => {
                    values.push((idx, Value::Str(s)))
                }
                (_, v) => {
                    overflow.insert(name, v);
                }
            }
            continue;
        }
        assign_property(
            name,
            value,
            columns,
            false,
            &mut values,
            &mut overflow,
            &mut keys,
        );
    }
    values.sort_by_key(|(i, _)| *i);
    let (geometry_kind, bounds) = geometry_wkb
        .as_deref()
        .and_then(wkb_summary)
        .map_or((None, None), |(k, b)| (Some(k), b));
    ItemRow {
        id,
        geometry_wkb,
        geometry_kind,
        bounds,
        datetime: keys.datetime,
        platform: keys.platform,
        updated: keys.updated,
        created: keys.created,
        values,
        overflow: (!overflow.is_empty()).then(|| Json::Object(overflow).to_string()),
        datetime_kind: keys.datetime_kind,
        interval: keys.start.zip(keys.end),
    }
}

/// Geometry kind and 2D bounds of a WKB blob (`None` when it cannot be read).
pub fn wkb_summary(buf: &[u8]) -> Option<(GeometryKind, Option<[f64; 4]>)> {
    use geo_traits::to_geo::ToGeoGeometry;
    let wkb = wkb::reader::read_wkb(buf).ok()?;
    let g: geo_types::Geometry<f64> = wkb.try_to_geometry()?;
    let kind = GeometryKind::of(&g)?;
    let bounds =
        geo::BoundingRect::bounding_rect(&g).map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]);
    Some((kind, bounds))
}

fn json_text(value: Json) -> String {
    match value {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

/// Convert a JSON value to a column type; `None` when it does not fit.
fn convert(ty: ColumnType, value: &Json) -> Option<(Value, DatetimeKind)> {
    let exact = DatetimeKind::Exact;
    match ty {
        ColumnType::String => match value {
            Json::String(s) => Some((Value::Str(s.clone()), exact)),
            Json::Array(_) | Json::Object(_) => Some((Value::Str(value.to_string()), exact)),
            _ => None,
        },
        ColumnType::Long => {
            let n = value.as_number()?;
            if let Some(i) = n.as_i64() {
                return Some((Value::Long(i), exact));
            }
            let f = n.as_f64()?;
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
                Some((Value::Long(f as i64), exact))
            } else {
                None
            }
        }
        ColumnType::Double => value.as_f64().map(|f| (Value::Double(f), exact)),
        ColumnType::Boolean => value.as_bool().map(|b| (Value::Bool(b), exact)),
        ColumnType::TimestampTz => {
            let parsed = crate::timestamp::parse(value.as_str()?)?;
            Some((Value::Timestamp(parsed.micros()), parsed.precision.into()))
        }
        // Binary is the geometry; the covering is derived from it.
        ColumnType::Binary | ColumnType::Bbox => None,
    }
}

impl From<crate::timestamp::Precision> for DatetimeKind {
    fn from(p: crate::timestamp::Precision) -> Self {
        use crate::timestamp::Precision;
        match p {
            Precision::Exact => DatetimeKind::Exact,
            Precision::Naive => DatetimeKind::Naive,
            Precision::DateOnly => DatetimeKind::DateOnly,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_item_without_datetime_takes_the_year_of_its_intervals_midpoint() {
        let table = crate::schema::table_columns(&crate::schema::base_schema().unwrap());
        let columns = Columns::new(&table);
        let mut counters = ParseCounters::default();
        let mut item = |props: &str| {
            let body = format!(
                r#"{{"type":"Feature","id":"a","geometry":{{"type":"Point","coordinates":[0,0]}},"properties":{props}}}"#
            );
            parse_item(body.as_bytes(), &columns, &mut counters)
                .unwrap()
                .0
        };
        // 2019-10-01 .. 2020-06-01: the midpoint is in February 2020.
        let pair = item(
            r#"{"start_datetime":"2019-10-01T00:00:00Z","end_datetime":"2020-06-01T00:00:00Z"}"#,
        );
        assert_eq!(pair.datetime, None);
        assert_eq!(pair.year(), Some(2020));
        // A datetime wins over the interval.
        let both = item(
            r#"{"datetime":"2019-12-31T23:00:00Z","start_datetime":"2019-10-01T00:00:00Z","end_datetime":"2020-06-01T00:00:00Z"}"#,
        );
        assert_eq!(both.year(), Some(2019));
        // One end alone, or nothing: no usable time.
        assert_eq!(
            item(r#"{"start_datetime":"2019-10-01T00:00:00Z"}"#).year(),
            None
        );
        assert_eq!(item("{}").year(), None);
        assert_eq!(midpoint(i64::MAX, i64::MAX), i64::MAX);
    }

    use super::*;
    use crate::schema::{base_schema, table_columns};

    #[test]
    fn packed_versions_round_trip_and_keep_their_order() {
        assert_eq!(std::mem::size_of::<PackedVersion>(), 20);
        let versions = [
            Version::new(None, None, 0),
            Version::new(None, Some(5), 3),
            Version::new(Some(-7), None, 1),
            Version::new(Some(1_600_000_000_000_000), Some(2), 9),
            Version::new(Some(1_600_000_000_000_000), Some(2), 10),
        ];
        for a in versions {
            assert_eq!(Version::from(PackedVersion::from(a)), a);
            for b in versions {
                let (pa, pb) = (PackedVersion::from(a), PackedVersion::from(b));
                assert_eq!(Version::from(pa).cmp(&Version::from(pb)), a.cmp(&b));
            }
        }
        let far = Version::new(Some(1), None, u64::MAX);
        assert_eq!(
            Version::from(PackedVersion::from(far)).commit,
            u64::from(u32::MAX)
        );
    }

    fn columns() -> Columns {
        Columns::new(&table_columns(&base_schema().unwrap()))
    }

    fn item(props: Json) -> Vec<u8> {
        serde_json::json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "x1",
            "geometry": {"type": "Point", "coordinates": [10.0, 60.0]},
            "bbox": [10.0, 60.0, 10.0, 60.0],
            "properties": props,
            "links": [{"rel": "self", "href": "h"}],
            "assets": {"b": {"href": "2"}, "a": {"href": "1", "roles": ["data"]}}
        })
        .to_string()
        .into_bytes()
    }

    fn value_of<'a>(row: &'a ItemRow, cols: &Columns, name: &str) -> Option<&'a Value> {
        let idx = cols.index_of(name)?;
        row.values.iter().find(|(i, _)| *i == idx).map(|(_, v)| v)
    }

    #[test]
    fn parses_core_fields_and_keeps_json_text_verbatim() {
        let cols = columns();
        let mut c = ParseCounters::default();
        let body = item(
            serde_json::json!({"datetime": "2019-07-14T10:22:41.684455Z", "platform": "LC08", "percent_valid_pixels": 37.0}),
        );
        let (row, geom) = parse_item(&body, &cols, &mut c).unwrap();
        assert_eq!(row.id, "x1");
        assert!(geom.is_some());
        assert_eq!(row.datetime, Some(1_563_099_761_684_455));
        assert_eq!(row.year(), Some(2019));
        assert_eq!(row.platform.as_deref(), Some("LC08"));
        assert_eq!(
            value_of(&row, &cols, "percent_valid_pixels"),
            Some(&Value::Long(37))
        );
        assert_eq!(
            value_of(&row, &cols, "assets"),
            Some(&Value::Str(
                r#"{"b":{"href":"2"},"a":{"href":"1","roles":["data"]}}"#.into()
            ))
        );
        assert_eq!(
            value_of(&row, &cols, "bbox"),
            Some(&Value::Str("[10.0,60.0,10.0,60.0]".into()))
        );
        assert!(row.overflow.is_none());
        assert_eq!(row.geometry_kind, Some(GeometryKind::Point));
    }

    #[test]
    fn offsets_convert_to_utc_year() {
        let cols = columns();
        let mut c = ParseCounters::default();
        let body = item(serde_json::json!({"datetime": "2019-12-31T22:00:00-05:00"}));
        let (row, _) = parse_item(&body, &cols, &mut c).unwrap();
        assert_eq!(row.year(), Some(2020));
    }

    #[test]
    fn date_only_and_naive_are_utc_and_counted() {
        let cols = columns();
        let mut c = ParseCounters::default();
        let (a, _) = parse_item(
            &item(serde_json::json!({"datetime": "2019-07-01"})),
            &cols,
            &mut c,
        )
        .unwrap();
        let (b, _) = parse_item(
            &item(serde_json::json!({"datetime": "2019-07-01T12:00:00"})),
            &cols,
            &mut c,
        )
        .unwrap();
        assert_eq!(a.datetime_kind, DatetimeKind::DateOnly);
        assert_eq!(b.datetime_kind, DatetimeKind::Naive);
        assert_eq!(
            b.datetime.unwrap() - a.datetime.unwrap(),
            12 * 3600 * 1_000_000
        );
        assert_eq!((c.datetime_date_only, c.datetime_naive), (1, 1));
    }

    #[test]
    fn fractional_long_goes_to_overflow_and_unknowns_become_columns() {
        let cols = columns();
        let mut c = ParseCounters::default();
        let body = item(serde_json::json!({
            "datetime": "2020-01-01T00:00:00Z", "percent_valid_pixels": 37.5,
            "sat:relative_orbit": 42, "instruments": ["oli", "tirs"], "eo:cloud_cover": 12.5
        }));
        let (row, _) = parse_item(&body, &cols, &mut c).unwrap();
        assert_eq!(value_of(&row, &cols, "percent_valid_pixels"), None);
        let over: Json = serde_json::from_str(row.overflow.as_deref().unwrap()).unwrap();
        assert_eq!(over["percent_valid_pixels"], 37.5);
        assert_eq!(
            value_of(&row, &cols, "sat:relative_orbit"),
            Some(&Value::Long(42))
        );
        assert_eq!(
            value_of(&row, &cols, "instruments"),
            Some(&Value::Str(r#"["oli","tirs"]"#.into()))
        );
        assert_eq!(
            value_of(&row, &cols, "eo:cloud_cover"),
            Some(&Value::Double(12.5))
        );
        let (pending, upto) = cols.pending();
        let pending: Vec<String> = pending.into_iter().map(|(n, _)| n).collect();
        assert!(pending.contains(&"sat:relative_orbit".to_string()));
        assert!(pending.contains(&OVERFLOW_COLUMN.to_string()));
        assert_eq!(c.overflow_values, 1);
        // A column discovered after `pending` was read stays pending after `mark_known`.
        cols.column_for("late", &Json::Bool(true));
        cols.mark_known(upto);
        assert_eq!(
            cols.pending().0,
            vec![("late".to_string(), ColumnType::Boolean)]
        );
    }

    #[test]
    fn bad_items_are_errors_not_panics() {
        let cols = columns();
        let mut c = ParseCounters::default();
        assert!(matches!(
            parse_item(b"{", &cols, &mut c),
            Err(ItemError::InvalidJson(_))
        ));
        assert_eq!(
            parse_item(b"[1]", &cols, &mut c).unwrap_err(),
            ItemError::NotAnObject
        );
        assert_eq!(
            parse_item(b"{\"id\": 5}", &cols, &mut c).unwrap_err(),
            ItemError::MissingId
        );
        let (row, g) = parse_item(b"{\"id\": \"n\", \"geometry\": null}", &cols, &mut c).unwrap();
        assert!(g.is_none() && row.geometry_wkb.is_none());
        assert_eq!(row.datetime_kind, DatetimeKind::Missing);
    }

    fn with_geometry(geometry: Json) -> Vec<u8> {
        serde_json::json!({"id": "g", "geometry": geometry, "properties": {}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn out_of_range_coordinates_are_invalid_geometry_naming_the_coordinate() {
        let cols = columns();
        let cases = [
            (
                serde_json::json!({"type": "Point", "coordinates": [10.0, 95.0]}),
                "coordinate [10, 95]: latitude 95 is outside [-90, 90]",
            ),
            (
                serde_json::json!({"type": "Point", "coordinates": [500.0, 10.0]}),
                "coordinate [500, 10]: longitude 500 is outside [-180, 180]",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": [[
                    [179.0, -78.0], [181.5, -78.0], [181.5, -77.0], [179.0, -77.0], [179.0, -78.0]
                ]]}),
                "longitude 181.5 is outside [-180, 180]",
            ),
            (
                serde_json::json!({"type": "MultiPolygon", "coordinates": [
                    [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]],
                    [[[0.0, -90.5], [1.0, 0.0], [1.0, 1.0], [0.0, -90.5]]]
                ]}),
                "latitude -90.5 is outside [-90, 90]",
            ),
            (
                serde_json::json!({"type": "GeometryCollection", "geometries": [
                    {"type": "LineString", "coordinates": [[0.0, 0.0], [-180.25, 0.0]]}
                ]}),
                "longitude -180.25 is outside [-180, 180]",
            ),
        ];
        for (geometry, expected) in cases {
            let mut c = ParseCounters::default();
            let err = parse_item(&with_geometry(geometry.clone()), &cols, &mut c).unwrap_err();
            match &err {
                ItemError::InvalidGeometry(reason) => {
                    assert!(reason.contains(expected), "{geometry}: {reason}")
                }
                other => panic!("{geometry}: {other:?}"),
            }
            assert_eq!(c.invalid_coordinates, 1, "{geometry}");
        }
    }

    #[test]
    fn non_finite_coordinates_are_invalid() {
        use geo_types::{Geometry, Point, point};
        for (g, expected) in [
            (Geometry::Point(Point::new(f64::NAN, 0.0)), "longitude NaN"),
            (
                Geometry::Point(point!(x: 0.0, y: f64::INFINITY)),
                "latitude inf",
            ),
            (
                Geometry::Point(point!(x: f64::NEG_INFINITY, y: 0.0)),
                "longitude -inf",
            ),
        ] {
            let reason = invalid_coordinate(&g).unwrap();
            assert!(reason.contains(expected), "{reason}");
            assert!(reason.contains("not a finite number"), "{reason}");
        }
        // JSON cannot spell them: an overflowing number is invalid JSON, not a coordinate.
        let mut c = ParseCounters::default();
        let body = br#"{"id": "g", "geometry": {"type": "Point", "coordinates": [1e999, 0]}}"#;
        assert!(matches!(
            parse_item(body, &columns(), &mut c),
            Err(ItemError::InvalidJson(_))
        ));
    }

    #[test]
    fn boundary_and_antimeridian_coordinates_stay_valid() {
        let cols = columns();
        for geometry in [
            // Bounds are included.
            serde_json::json!({"type": "Point", "coordinates": [180.0, 90.0]}),
            serde_json::json!({"type": "Point", "coordinates": [-180.0, -90.0]}),
            // A ring crossing the antimeridian with wrapped longitudes (an input that breaks the Python tool).
            serde_json::json!({"type": "Polygon", "coordinates": [[
                [179.0, -78.0], [-178.0, -78.0], [-178.0, -77.0], [179.0, -77.0], [179.0, -78.0]
            ]]}),
            // RFC 7946 split at ±180 (B1) and a ring around the south pole (B2).
            serde_json::json!({"type": "MultiPolygon", "coordinates": [
                [[[179.0, -78.0], [180.0, -78.0], [180.0, -77.0], [179.0, -77.0], [179.0, -78.0]]],
                [[[-180.0, -78.0], [-178.0, -78.0], [-178.0, -77.0], [-180.0, -77.0], [-180.0, -78.0]]]
            ]}),
            serde_json::json!({"type": "Polygon", "coordinates": [[
                [-180.0, -88.5], [-90.0, -88.5], [0.0, -88.5], [90.0, -88.5], [180.0, -88.5], [-180.0, -88.5]
            ]]}),
            // Elevation is not a latitude.
            serde_json::json!({"type": "Point", "coordinates": [10.0, 60.0, 4000.0]}),
        ] {
            let mut c = ParseCounters::default();
            let (row, g) = parse_item(&with_geometry(geometry.clone()), &cols, &mut c)
                .unwrap_or_else(|e| panic!("{geometry}: {e}"));
            assert!(g.is_some() && row.geometry_wkb.is_some(), "{geometry}");
            assert_eq!(c.invalid_coordinates, 0);
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Json> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
            "[a-z0-9:T.+-]{0,30}".prop_map(Json::String),
            Just(Json::String("2019-12-31T22:00:00-05:00".into())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("id".to_string()),
                        Just("geometry".to_string()),
                        Just("properties".to_string()),
                        Just("datetime".to_string()),
                        Just("type".to_string()),
                        Just("coordinates".to_string()),
                        Just("assets".to_string()),
                        Just("percent_valid_pixels".to_string()),
                        "[a-z:.]{1,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_json(v in arb_json(), bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let cols = columns();
            let mut c = ParseCounters::default();
            let _ = parse_item(v.to_string().as_bytes(), &cols, &mut c);
            let _ = parse_item(&bytes, &cols, &mut c);
            // A well-formed id always parses, whatever else the item holds.
            let mut obj = match v { Json::Object(m) => m, _ => Map::new() };
            obj.insert("id".into(), Json::String("x".into()));
            obj.remove("geometry");
            if let Ok((row, _)) = parse_item(Json::Object(obj).to_string().as_bytes(), &cols, &mut c) {
                proptest::prop_assert_eq!(row.id, "x");
            }
        }
    }
}
