//! Spatial grids: footprint → partition keys.
//!
//! A [`Partitioner`] maps an item's footprint (a `geo_types` geometry in WGS84 lon/lat degrees)
//! to the sorted, deduplicated list of partition keys whose area the footprint touches. Two
//! implementations exist, chosen by [`GridConfig`]:
//!
//! * [`H3Partitioner`] (`grid_type = "h3"`): keys are H3 cells (15 lowercase hex digits) at one
//!   resolution. The cover is *exact* — every cell whose hexagon intersects the footprint and
//!   nothing else, up to a small documented tolerance. See [`h3`] for the algorithm and its
//!   guarantees.
//! * [`RegionPartitioner`] (`grid_type = "geojson"`, see [`regions`]): keys are the `id_field`
//!   property of every region of a GeoJSON FeatureCollection whose geometry intersects the
//!   footprint.
//!
//! A footprint with no usable geometry (JSON `null`, empty coordinates, or only invalid
//! coordinates) maps to the single key [`NONE_KEY`], as does a footprint that touches no region.
//!
//! # How footprints are read
//!
//! Both partitioners interpret a footprint the same way:
//!
//! * Edges are straight lines in lon/lat (RFC 7946 §3.1.1, and what the Python tool did).
//! * **Invalid coordinates** (non-finite, or |lat| > 90°) are dropped; a geometry left with no
//!   valid coordinate counts as empty. Longitudes outside ±180° are wrapped. (Ingest never gets
//!   here with such a footprint: [`crate::item::parse_item`] rejects the item first.)
//! * **Antimeridian.** Consecutive vertices whose longitudes differ by more than 180° are joined
//!   the *short* way across ±180° (as H3 itself does): each ring or line is "unwrapped" so that
//!   consecutive longitudes differ by at most 180°, e.g. `179 → -178` becomes `179 → 182`.
//!   Footprints are therefore assumed to be less than 180° wide; a polygon genuinely wider than
//!   that (e.g. −170…170 written with a single long edge) is read as the narrow sliver across the
//!   antimeridian. RFC 7946 split MultiPolygons (parts meeting at ±180°) need no special case:
//!   the cover of a union is the union of the covers.
//! * **Poles.** A ring whose unwrapped longitudes advance by a full ±360° encloses a pole. It is
//!   read as the polar cap on the side of the pole nearest to the ring (the hemisphere of its
//!   mean latitude; for a ring exactly on the equator, the RFC 7946 orientation decides:
//!   eastward = north). In lon/lat the cap is closed along the pole line, so it becomes an
//!   ordinary planar polygon spanning 360° of longitude.
//! * Polygon holes are respected. MultiPolygon, MultiLineString, MultiPoint and
//!   GeometryCollection are the union of their parts.

// `crate::Error` is large (it wraps iceberg's error); boxing it is a crate-wide decision.

pub mod h3;
pub mod regions;

use std::sync::Arc;

use geo_types::{Coord, Geometry, GeometryCollection, LineString, MultiLineString, MultiPoint};
use geo_types::{MultiPolygon, Point, Polygon};
use serde_json::Value;

pub use self::h3::H3Partitioner;
pub use self::regions::RegionPartitioner;
use crate::error::{Error, Result};

/// Partition key of items without a usable footprint (or outside every region).
pub const NONE_KEY: &str = "__none__";

/// Maps a footprint to partition keys.
pub trait Partitioner: Send + Sync + std::fmt::Debug {
    /// Every key whose area intersects the footprint, sorted, deduplicated. `None`/empty
    /// geometry → `vec![NONE_KEY]`.
    fn keys(&self, geometry: Option<&Geometry<f64>>) -> Vec<String>;

    /// Grid description for table properties.
    fn grid(&self) -> &GridConfig;
}

/// Which spatial grid a catalog is partitioned by (stored in the table properties).
#[derive(Debug, Clone, PartialEq)]
pub enum GridConfig {
    /// H3 cells at one resolution (0..=15).
    H3 {
        /// The H3 resolution.
        resolution: u8,
    },
    /// Regions read from a GeoJSON FeatureCollection.
    GeoJson {
        /// Where the boundaries file lives (as configured; recorded in table properties).
        boundaries_path: String,
        /// The feature property whose value is the partition key.
        id_field: String,
    },
}

impl GridConfig {
    /// The grid type as written to table properties: `"h3"` or `"geojson"`.
    pub fn grid_type(&self) -> &'static str {
        match self {
            GridConfig::H3 { .. } => "h3",
            GridConfig::GeoJson { .. } => "geojson",
        }
    }

    /// Builds the partitioner this configuration describes.
    ///
    /// `boundaries` is the content of the boundaries file; it is required for
    /// [`GridConfig::GeoJson`] and ignored for [`GridConfig::H3`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid resolution or missing boundaries, and the errors of
    /// [`RegionPartitioner::from_geojson`].
    pub fn partitioner(&self, boundaries: Option<&[u8]>) -> Result<Arc<dyn Partitioner>> {
        match self {
            GridConfig::H3 { resolution } => Ok(Arc::new(H3Partitioner::new(*resolution)?)),
            GridConfig::GeoJson {
                boundaries_path,
                id_field,
            } => {
                let bytes = boundaries.ok_or_else(|| {
                    Error::Config(format!(
                        "grid type geojson needs the boundaries file {boundaries_path}"
                    ))
                })?;
                Ok(Arc::new(RegionPartitioner::from_geojson(
                    bytes,
                    boundaries_path,
                    id_field,
                )?))
            }
        }
    }
}

impl GridConfig {
    /// Build the partitioner, reading the boundaries file (GeoJSON grid) from its location.
    pub async fn load_partitioner(&self) -> Result<Arc<dyn Partitioner>> {
        match self {
            GridConfig::H3 { .. } => self.partitioner(None),
            GridConfig::GeoJson {
                boundaries_path, ..
            } => {
                let bytes = crate::store::Location::parse(boundaries_path)?
                    .get_bytes()
                    .await?;
                self.partitioner(Some(&bytes))
            }
        }
    }
}

/// The single-key answer for footprints without usable geometry.
fn none_keys() -> Vec<String> {
    vec![NONE_KEY.to_owned()]
}

// -------------------------------------------------------------------------------------------
// GeoJSON geometry → geo-types
// -------------------------------------------------------------------------------------------

/// Nesting limit for GeometryCollections (serde_json itself stops at 128 levels).
const MAX_COLLECTION_DEPTH: usize = 32;

/// Convert a GeoJSON geometry JSON value into geo-types (all 7 types + GeometryCollection),
/// `Ok(None)` for JSON null or empty coordinates; `Err(Error::Geometry)` for malformed input.
/// Never panics.
///
/// Positions need at least two numbers (extra ones, e.g. elevation, are ignored). Empty members
/// of multi-geometries and collections are dropped, and empty holes are ignored; a geometry
/// with nothing left is empty. Coordinate *values* are not checked here (a latitude of 100 is
/// returned as is); partitioners skip invalid coordinates.
pub fn geometry_from_json(value: &Value) -> Result<Option<Geometry<f64>>> {
    parse_geometry(value, 0)
}

fn geometry_error(reason: impl Into<String>) -> Error {
    Error::Geometry {
        context: "GeoJSON geometry".to_owned(),
        reason: reason.into(),
    }
}

fn parse_geometry(value: &Value, depth: usize) -> Result<Option<Geometry<f64>>> {
    let obj = match value {
        Value::Null => return Ok(None),
        Value::Object(obj) => obj,
        other => {
            return Err(geometry_error(format!(
                "expected an object or null, found {}",
                json_kind(other)
            )));
        }
    };
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| geometry_error("missing or non-string \"type\""))?;
    if kind == "GeometryCollection" {
        if depth >= MAX_COLLECTION_DEPTH {
            return Err(geometry_error("GeometryCollections nested too deeply"));
        }
        let members = obj
            .get("geometries")
            .and_then(Value::as_array)
            .ok_or_else(|| geometry_error("GeometryCollection without a \"geometries\" array"))?;
        let mut parts = Vec::with_capacity(members.len());
        for member in members {
            if let Some(geometry) = parse_geometry(member, depth + 1)? {
                parts.push(geometry);
            }
        }
        return Ok(
            (!parts.is_empty()).then_some(Geometry::GeometryCollection(GeometryCollection(parts)))
        );
    }
    let coords = obj
        .get("coordinates")
        .ok_or_else(|| geometry_error(format!("{kind} without \"coordinates\"")))?;
    if coords.is_null() {
        return Ok(None);
    }
    let geometry = match kind {
        "Point" => {
            if array(coords, "Point coordinates")?.is_empty() {
                None
            } else {
                Some(Geometry::Point(Point(position(coords)?)))
            }
        }
        "MultiPoint" => {
            let points = positions(coords)?;
            (!points.is_empty())
                .then(|| Geometry::MultiPoint(MultiPoint(points.into_iter().map(Point).collect())))
        }
        "LineString" => {
            let line = positions(coords)?;
            (!line.is_empty()).then_some(Geometry::LineString(LineString(line)))
        }
        "MultiLineString" => {
            let mut lines = Vec::new();
            for line in array(coords, "MultiLineString coordinates")? {
                let line = positions(line)?;
                if !line.is_empty() {
                    lines.push(LineString(line));
                }
            }
            (!lines.is_empty()).then_some(Geometry::MultiLineString(MultiLineString(lines)))
        }
        "Polygon" => polygon(coords)?.map(Geometry::Polygon),
        "MultiPolygon" => {
            let mut polygons = Vec::new();
            for rings in array(coords, "MultiPolygon coordinates")? {
                if let Some(p) = polygon(rings)? {
                    polygons.push(p);
                }
            }
            (!polygons.is_empty()).then_some(Geometry::MultiPolygon(MultiPolygon(polygons)))
        }
        other => {
            return Err(geometry_error(format!(
                "unsupported geometry type {other:?}"
            )));
        }
    };
    Ok(geometry)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn array<'a>(value: &'a Value, what: &str) -> Result<&'a Vec<Value>> {
    value.as_array().ok_or_else(|| {
        geometry_error(format!(
            "{what}: expected an array, found {}",
            json_kind(value)
        ))
    })
}

fn position(value: &Value) -> Result<Coord<f64>> {
    let items = array(value, "position")?;
    match items.as_slice() {
        [x, y, ..] => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => Ok(Coord { x, y }),
            _ => Err(geometry_error("position with non-numeric coordinates")),
        },
        _ => Err(geometry_error(format!(
            "position needs at least 2 numbers, found {}",
            items.len()
        ))),
    }
}

fn positions(value: &Value) -> Result<Vec<Coord<f64>>> {
    array(value, "coordinate list")?
        .iter()
        .map(position)
        .collect()
}

fn polygon(value: &Value) -> Result<Option<Polygon<f64>>> {
    let mut rings = Vec::new();
    for ring in array(value, "Polygon coordinates")? {
        rings.push(positions(ring)?);
    }
    let mut rings = rings.into_iter();
    let Some(exterior) = rings.next().filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let holes = rings
        .filter(|r| !r.is_empty())
        .map(LineString)
        .collect::<Vec<_>>();
    Ok(Some(Polygon::new(LineString(exterior), holes)))
}

// -------------------------------------------------------------------------------------------
// Footprint normalisation (shared by both partitioners)
// -------------------------------------------------------------------------------------------

/// A point `[lon, lat]` in degrees.
pub(crate) type LonLat = [f64; 2];

/// A footprint read as planar lon/lat shapes, ready to be covered (see the module docs).
///
/// Lines and polygon rings are *unwrapped*: consecutive longitudes differ by at most 180°, so
/// a shape crossing the antimeridian has longitudes beyond ±180° (always starting within
/// ±180°). Consumers compare it with other shapes under shifts of a multiple of 360°.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Footprint {
    /// Points, longitude within ±180°.
    pub(crate) points: Vec<LonLat>,
    /// Unwrapped polylines with at least one vertex.
    pub(crate) lines: Vec<Vec<LonLat>>,
    /// Polygons: closed unwrapped rings, exterior first. Pole-enclosing rings are closed along
    /// the pole line. Each ring has at least two vertices (first == last).
    pub(crate) polygons: Vec<Vec<Vec<LonLat>>>,
}

impl Footprint {
    /// Reads a geometry, dropping invalid coordinates.
    pub(crate) fn from_geometry(geometry: &Geometry<f64>) -> Self {
        let mut footprint = Footprint::default();
        footprint.add(geometry);
        footprint
    }

    /// Whether nothing usable is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.points.is_empty() && self.lines.is_empty() && self.polygons.is_empty()
    }

    fn add(&mut self, geometry: &Geometry<f64>) {
        match geometry {
            Geometry::Point(p) => self.add_point(p.0),
            Geometry::MultiPoint(mp) => mp.iter().for_each(|p| self.add_point(p.0)),
            Geometry::Line(l) => self.add_line(&[l.start, l.end]),
            Geometry::LineString(ls) => self.add_line(&ls.0),
            Geometry::MultiLineString(mls) => mls.iter().for_each(|ls| self.add_line(&ls.0)),
            Geometry::Polygon(p) => self.add_polygon(p),
            Geometry::MultiPolygon(mp) => mp.iter().for_each(|p| self.add_polygon(p)),
            Geometry::Rect(r) => self.add_polygon(&r.to_polygon()),
            Geometry::Triangle(t) => self.add_polygon(&t.to_polygon()),
            Geometry::GeometryCollection(gc) => gc.iter().for_each(|g| self.add(g)),
        }
    }

    fn add_point(&mut self, c: Coord<f64>) {
        if let Some(p) = valid(c) {
            self.points.push(p);
        }
    }

    fn add_line(&mut self, coords: &[Coord<f64>]) {
        let pts = coords.iter().filter_map(|c| valid(*c)).collect::<Vec<_>>();
        if !pts.is_empty() {
            self.lines.push(unwrap(&pts));
        }
    }

    fn add_polygon(&mut self, polygon: &Polygon<f64>) {
        let Some(exterior) = ring(&polygon.exterior().0) else {
            return;
        };
        let centre = bbox_centre_x(&exterior);
        let mut rings = vec![exterior];
        for hole in polygon.interiors() {
            if let Some(mut hole) = ring(&hole.0) {
                // Put the hole in the exterior's longitude frame.
                let k = ((centre - bbox_centre_x(&hole)) / 360.0).round();
                if k != 0.0 {
                    hole.iter_mut().for_each(|p| p[0] += 360.0 * k);
                }
                rings.push(hole);
            }
        }
        self.polygons.push(rings);
    }
}

/// A valid coordinate as `[lon, lat]` with the longitude wrapped into ±180°, or `None`.
pub(crate) fn valid(c: Coord<f64>) -> Option<LonLat> {
    if !c.x.is_finite() || !c.y.is_finite() || c.y.abs() > 90.0 {
        return None;
    }
    Some([wrap_lon(c.x), c.y])
}

/// Wraps a finite longitude into [-180, 180] (values already inside are kept as is).
pub(crate) fn wrap_lon(lon: f64) -> f64 {
    if (-180.0..=180.0).contains(&lon) {
        lon
    } else {
        (lon + 180.0).rem_euclid(360.0) - 180.0
    }
}

/// Unwraps longitudes so that consecutive ones differ by at most 180°.
fn unwrap(pts: &[LonLat]) -> Vec<LonLat> {
    let mut out: Vec<LonLat> = Vec::with_capacity(pts.len() + 4);
    for &[lon, lat] in pts {
        let x = match out.last() {
            None => lon,
            Some(prev) => prev[0] + short_delta(wrap_lon(prev[0]), lon),
        };
        out.push([x, lat]);
    }
    out
}

/// The longitude step from `from` to `to` (both within ±180°) the short way round.
fn short_delta(from: f64, to: f64) -> f64 {
    let d = to - from;
    if d > 180.0 {
        d - 360.0
    } else if d < -180.0 {
        d + 360.0
    } else {
        d
    }
}

/// Reads one polygon ring: valid coordinates only, closed, unwrapped, and closed along the
/// pole line when it encloses a pole.
fn ring(coords: &[Coord<f64>]) -> Option<Vec<LonLat>> {
    let mut pts = coords.iter().filter_map(|c| valid(*c)).collect::<Vec<_>>();
    let first = *pts.first()?;
    if pts.last() != Some(&first) || pts.len() == 1 {
        pts.push(first);
    }
    let mut ring = unwrap(&pts);
    let start = ring[0];
    let end = ring[ring.len() - 1];
    let turn = end[0] - start[0];
    if turn.abs() > 180.0 {
        // Encloses a pole: close along the pole line nearest to the ring.
        let n = (ring.len() - 1) as f64;
        let mean_lat = ring[..ring.len() - 1].iter().map(|p| p[1]).sum::<f64>() / n;
        let pole = if mean_lat < -1e-9 || (mean_lat.abs() <= 1e-9 && turn < 0.0) {
            -90.0
        } else {
            90.0
        };
        ring.push([end[0], pole]);
        ring.push([start[0], pole]);
        ring.push(start);
    } else {
        // Exactly closed despite rounding in the unwrapping.
        let last = ring.len() - 1;
        ring[last] = start;
    }
    Some(ring)
}

fn bbox_centre_x(pts: &[LonLat]) -> f64 {
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p[0]), hi.max(p[0]))
        });
    (lo + hi) / 2.0
}

/// Axis-aligned bounds `[min_lon, min_lat, max_lon, max_lat]` of some points.
pub(crate) fn bounds(pts: &[LonLat]) -> [f64; 4] {
    pts.iter().fold(
        [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ],
        |b, p| {
            [
                b[0].min(p[0]),
                b[1].min(p[1]),
                b[2].max(p[0]),
                b[3].max(p[1]),
            ]
        },
    )
}

/// Whether a closed ring contains a point (crossing number; points on the boundary may go
/// either way).
pub(crate) fn ring_contains(ring: &[LonLat], p: LonLat) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// The multiples of 360° `k` (as `k * 360`) such that `[lo, hi] - k*360` overlaps
/// `[other_lo, other_hi]` (both widened by `pad`). At most 8 shifts are returned.
pub(crate) fn lon_shifts(
    lo: f64,
    hi: f64,
    other_lo: f64,
    other_hi: f64,
    pad: f64,
) -> impl Iterator<Item = f64> {
    let first = ((lo - other_hi - pad) / 360.0).ceil();
    let last = ((hi - other_lo + pad) / 360.0).floor();
    let count = if first.is_finite() && last.is_finite() && last >= first {
        // Bounded: both ranges are at most a few turns wide.
        ((last - first) as usize + 1).min(8)
    } else {
        0
    };
    (0..count).map(move |i| (first + i as f64) * 360.0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn null_and_empty_geometries_are_none() {
        assert_eq!(geometry_from_json(&Value::Null).unwrap(), None);
        for v in [
            json!({"type": "Polygon", "coordinates": []}),
            json!({"type": "Polygon", "coordinates": [[]]}),
            json!({"type": "Point", "coordinates": []}),
            json!({"type": "MultiPolygon", "coordinates": [[], [[]]]}),
            json!({"type": "LineString", "coordinates": []}),
            json!({"type": "MultiPoint", "coordinates": []}),
            json!({"type": "MultiLineString", "coordinates": [[]]}),
            json!({"type": "GeometryCollection", "geometries": []}),
            json!({"type": "GeometryCollection", "geometries": [null]}),
            json!({"type": "Point", "coordinates": null}),
        ] {
            assert_eq!(geometry_from_json(&v).unwrap(), None, "{v}");
        }
    }

    #[test]
    fn malformed_geometries_are_errors() {
        for v in [
            json!(5),
            json!("Point"),
            json!([1, 2]),
            json!({"coordinates": [1, 2]}),
            json!({"type": "Point"}),
            json!({"type": "Point", "coordinates": [1]}),
            json!({"type": "Point", "coordinates": ["a", 2]}),
            json!({"type": "Point", "coordinates": 3}),
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1]]]}),
            json!({"type": "Polygon", "coordinates": [0, 1]}),
            json!({"type": "Circle", "coordinates": [0, 1]}),
            json!({"type": "Feature", "geometry": null}),
            json!({"type": "GeometryCollection"}),
            json!({"type": "GeometryCollection", "geometries": [{"type": "Point"}]}),
        ] {
            let err = geometry_from_json(&v).unwrap_err();
            assert!(matches!(err, Error::Geometry { .. }), "{v}: {err}");
        }
    }

    #[test]
    fn all_types_parse() {
        let g = geometry_from_json(&json!({"type": "Point", "coordinates": [1.5, 2, 3]}))
            .unwrap()
            .unwrap();
        assert_eq!(g, Geometry::Point(Point::new(1.5, 2.0)));
        let g = geometry_from_json(&json!({
            "type": "Polygon",
            "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]], [], [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]]
        }))
        .unwrap()
        .unwrap();
        let Geometry::Polygon(p) = g else {
            panic!("not a polygon")
        };
        assert_eq!(p.exterior().0.len(), 4);
        assert_eq!(p.interiors().len(), 1);
        assert!(p.interiors()[0].is_closed());
        let g = geometry_from_json(&json!({
            "type": "GeometryCollection",
            "geometries": [
                {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
                {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], []]},
                {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
                {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [0, 0]}]}
            ]
        }))
        .unwrap()
        .unwrap();
        let Geometry::GeometryCollection(gc) = g else {
            panic!("not a collection")
        };
        assert_eq!(gc.0.len(), 5);
    }

    #[test]
    fn footprint_unwraps_antimeridian_rings() {
        let poly = Polygon::new(
            LineString::from(vec![
                (179.0, -78.0),
                (-178.0, -78.0),
                (-178.0, -77.0),
                (179.0, -77.0),
            ]),
            vec![],
        );
        let fp = Footprint::from_geometry(&Geometry::Polygon(poly));
        assert_eq!(
            fp.polygons,
            vec![vec![vec![
                [179.0, -78.0],
                [182.0, -78.0],
                [182.0, -77.0],
                [179.0, -77.0],
                [179.0, -78.0]
            ]]]
        );
    }

    #[test]
    fn footprint_closes_pole_rings_along_the_pole() {
        let poly = Polygon::new(
            LineString::from(vec![
                (-180.0, -88.5),
                (-90.0, -88.5),
                (0.0, -88.5),
                (90.0, -88.5),
                (180.0, -88.5),
            ]),
            vec![],
        );
        let fp = Footprint::from_geometry(&Geometry::Polygon(poly));
        let ring = &fp.polygons[0][0];
        assert_eq!(ring[0], [-180.0, -88.5]);
        assert!(ring.contains(&[180.0, -90.0]) && ring.contains(&[-180.0, -90.0]));
        assert!(ring_contains(ring, [0.0, -89.9]));
        assert!(!ring_contains(ring, [0.0, -88.0]));
    }

    #[test]
    fn footprint_drops_invalid_coordinates() {
        let g = Geometry::MultiPoint(MultiPoint(vec![
            Point::new(f64::NAN, 0.0),
            Point::new(0.0, 91.0),
            Point::new(f64::INFINITY, 0.0),
        ]));
        assert!(Footprint::from_geometry(&g).is_empty());
        let g = Geometry::Point(Point::new(540.0, 10.0));
        assert_eq!(Footprint::from_geometry(&g).points, vec![[-180.0, 10.0]]);
    }

    #[test]
    fn shifts_cover_overlaps() {
        let s: Vec<f64> = lon_shifts(179.0, 182.0, -180.0, -170.0, 0.0).collect();
        assert_eq!(s, vec![360.0]);
        let s: Vec<f64> = lon_shifts(-180.0, 180.0, -180.0, 180.0, 0.0).collect();
        assert_eq!(s, vec![-360.0, 0.0, 360.0]);
        assert_eq!(lon_shifts(0.0, 1.0, 5.0, 6.0, 0.0).count(), 0);
    }

    #[test]
    fn grid_config_types() {
        assert_eq!(GridConfig::H3 { resolution: 1 }.grid_type(), "h3");
        let g = GridConfig::GeoJson {
            boundaries_path: "b.geojson".into(),
            id_field: "id".into(),
        };
        assert_eq!(g.grid_type(), "geojson");
        assert!(matches!(g.partitioner(None), Err(Error::Config(_))));
        let p = GridConfig::H3 { resolution: 2 }.partitioner(None).unwrap();
        assert_eq!(p.grid(), &GridConfig::H3 { resolution: 2 });
    }
}
