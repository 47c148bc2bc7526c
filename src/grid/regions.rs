//! Partitioning by the regions of a GeoJSON FeatureCollection.
//!
//! Regions are indexed by bounding box in an R-tree; a footprint's keys are the ids of the
//! regions whose bounding box it meets *and* whose geometry it intersects exactly (planar
//! lon/lat, boundaries included, as shapely's `intersects` in the Python tool). The footprint
//! is read like the H3 partitioner reads it ([`crate::grid`]): a part crossing the antimeridian
//! is unwrapped and compared with the regions under longitude shifts of 360°, so a wrapped
//! footprint meets the regions on both sides of ±180° rather than everything in between.

use std::collections::BTreeSet;

use geo::{BoundingRect, Intersects, Translate};
use geo_types::{Geometry, LineString, Point, Polygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde_json::Value;

use super::{Footprint, GridConfig, Partitioner, geometry_from_json, lon_shifts, none_keys};
use crate::error::{Error, Result};

/// One region: its key and geometry.
#[derive(Debug)]
struct Region {
    id: String,
    geometry: Geometry<f64>,
}

/// Partitions footprints by the GeoJSON regions they intersect (keys: the regions' ids).
#[derive(Debug)]
pub struct RegionPartitioner {
    grid: GridConfig,
    regions: Vec<Region>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl RegionPartitioner {
    /// Reads a FeatureCollection (or a single Feature). Each feature's key is its `id_field`
    /// property as a string: strings as is, numbers as written (`5`, `5.5`), booleans as
    /// `True`/`False` (Python's `str`). Features with a null or empty geometry are skipped.
    /// `boundaries_path` names the file in errors and in [`Partitioner::grid`].
    ///
    /// # Errors
    ///
    /// [`Error::Parse`] if the bytes are not a FeatureCollection, a feature lacks the id
    /// property (or it is null, an array or an object), or no feature has a geometry;
    /// [`Error::Geometry`] for a malformed feature geometry.
    pub fn from_geojson(bytes: &[u8], boundaries_path: &str, id_field: &str) -> Result<Self> {
        let parse_error = |reason: String| Error::Parse {
            location: boundaries_path.to_owned(),
            reason,
        };
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| parse_error(e.to_string()))?;
        let features = match doc.get("type").and_then(Value::as_str) {
            Some("FeatureCollection") => doc
                .get("features")
                .and_then(Value::as_array)
                .map(|f| f.iter().collect::<Vec<_>>())
                .ok_or_else(|| parse_error("FeatureCollection without a features array".into()))?,
            Some("Feature") => vec![&doc],
            _ => return Err(parse_error("expected a GeoJSON FeatureCollection".into())),
        };
        let mut regions = Vec::new();
        let mut boxes = Vec::new();
        for (i, feature) in features.into_iter().enumerate() {
            let id = feature
                .get("properties")
                .and_then(|p| p.get(id_field))
                .and_then(id_string)
                .ok_or_else(|| {
                    parse_error(format!(
                        "feature {i} has no usable {id_field:?} property (string or number)"
                    ))
                })?;
            let geometry = geometry_from_json(feature.get("geometry").unwrap_or(&Value::Null))
                .map_err(|e| Error::Geometry {
                    context: format!("{boundaries_path}, feature {i} ({id_field} = {id})"),
                    reason: e.to_string(),
                })?;
            let Some(geometry) = geometry else {
                continue;
            };
            let Some(bbox) = geometry.bounding_rect() else {
                continue;
            };
            boxes.push(GeomWithData::new(
                Rectangle::from_corners(bbox.min().into(), bbox.max().into()),
                regions.len(),
            ));
            regions.push(Region { id, geometry });
        }
        if regions.is_empty() {
            return Err(parse_error("no feature has a geometry".into()));
        }
        Ok(Self {
            grid: GridConfig::GeoJson {
                boundaries_path: boundaries_path.to_owned(),
                id_field: id_field.to_owned(),
            },
            regions,
            tree: RTree::bulk_load(boxes),
        })
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether there are no regions (never true for a successfully built partitioner).
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        _ => None,
    }
}

/// The footprint's parts as planar geometries (unwrapped longitudes).
pub(crate) fn parts(footprint: &Footprint) -> Vec<Geometry<f64>> {
    let coords =
        |pts: &[[f64; 2]]| LineString::from(pts.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>());
    let mut parts = Vec::new();
    parts.extend(
        footprint
            .points
            .iter()
            .map(|p| Geometry::Point(Point::new(p[0], p[1]))),
    );
    parts.extend(
        footprint
            .lines
            .iter()
            .map(|l| Geometry::LineString(coords(l))),
    );
    parts.extend(footprint.polygons.iter().filter_map(|rings| {
        let (exterior, holes) = rings.split_first()?;
        Some(Geometry::Polygon(Polygon::new(
            coords(exterior),
            holes.iter().map(|h| coords(h)).collect(),
        )))
    }));
    parts
}

impl Partitioner for RegionPartitioner {
    fn keys(&self, geometry: Option<&Geometry<f64>>) -> Vec<String> {
        let Some(geometry) = geometry else {
            return none_keys();
        };
        let footprint = Footprint::from_geometry(geometry);
        if footprint.is_empty() {
            return none_keys();
        }
        let world = self.tree.root().envelope();
        let mut ids = BTreeSet::new();
        for part in parts(&footprint) {
            let Some(bbox) = part.bounding_rect() else {
                continue;
            };
            let (lo, hi) = (bbox.min(), bbox.max());
            for shift in lon_shifts(lo.x, hi.x, world.lower()[0], world.upper()[0], 0.0) {
                let envelope = AABB::from_corners([lo.x - shift, lo.y], [hi.x - shift, hi.y]);
                let shifted = part.translate(-shift, 0.0);
                for candidate in self.tree.locate_in_envelope_intersecting(&envelope) {
                    let region = &self.regions[candidate.data];
                    if region.geometry.intersects(&shifted) {
                        ids.insert(region.id.as_str());
                    }
                }
            }
        }
        if ids.is_empty() {
            return none_keys();
        }
        ids.into_iter().map(str::to_owned).collect()
    }

    fn grid(&self) -> &GridConfig {
        &self.grid
    }
}

#[cfg(test)]
mod tests {
    use geo_types::{MultiPolygon, polygon};
    use serde_json::json;

    use super::*;
    use crate::grid::NONE_KEY;

    fn boxes() -> Vec<u8> {
        let square = |x0: f64, y0: f64, x1: f64, y1: f64| json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]});
        serde_json::to_vec(&json!({
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": {"code": 1, "name": "one"}, "geometry": square(0.0, 0.0, 10.0, 10.0)},
                {"type": "Feature", "properties": {"code": "b"}, "geometry": square(10.0, 0.0, 20.0, 10.0)},
                {"type": "Feature", "properties": {"code": 3.5}, "geometry": square(170.0, -10.0, 180.0, 10.0)},
                {"type": "Feature", "properties": {"code": "skipped"}, "geometry": null},
            ]
        }))
        .unwrap()
    }

    fn partitioner() -> RegionPartitioner {
        RegionPartitioner::from_geojson(&boxes(), "regions.geojson", "code").unwrap()
    }

    fn keys(p: &RegionPartitioner, g: Geometry<f64>) -> Vec<String> {
        p.keys(Some(&g))
    }

    #[test]
    fn keys_are_the_intersecting_regions() {
        let p = partitioner();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p.grid(),
            &GridConfig::GeoJson {
                boundaries_path: "regions.geojson".into(),
                id_field: "code".into()
            }
        );
        let inside = polygon![(x: 1.0, y: 1.0), (x: 2.0, y: 1.0), (x: 2.0, y: 2.0)];
        assert_eq!(keys(&p, inside.into()), vec!["1"]);
        let straddling = polygon![(x: 9.0, y: 1.0), (x: 11.0, y: 1.0), (x: 11.0, y: 2.0)];
        assert_eq!(keys(&p, straddling.into()), vec!["1", "b"]);
        assert_eq!(keys(&p, Point::new(175.0, 0.0).into()), vec!["3.5"]);
        // On the shared edge: both (boundaries included).
        assert_eq!(keys(&p, Point::new(10.0, 5.0).into()), vec!["1", "b"]);
        let far = polygon![(x: 50.0, y: 50.0), (x: 51.0, y: 50.0), (x: 51.0, y: 51.0)];
        assert_eq!(keys(&p, far.into()), vec![NONE_KEY]);
        assert_eq!(p.keys(None), vec![NONE_KEY]);
        let invalid = Point::new(f64::NAN, 0.0);
        assert_eq!(keys(&p, invalid.into()), vec![NONE_KEY]);
        let line = LineString::from(vec![(5.0, 5.0), (15.0, 5.0)]);
        assert_eq!(keys(&p, line.into()), vec!["1", "b"]);
    }

    #[test]
    fn antimeridian_footprints_meet_regions_on_both_sides() {
        let p = partitioner();
        // Wrapped ring 179 → -179: touches region 3.5 only, not everything between.
        let wrapped = polygon![(x: 179.0, y: 0.0), (x: -179.0, y: 0.0), (x: -179.0, y: 1.0), (x: 179.0, y: 1.0)];
        assert_eq!(keys(&p, wrapped.into()), vec!["3.5"]);
        // Only the part beyond -180 → still touches region 3.5 at the 180° edge.
        let west = polygon![(x: -180.0, y: 0.0), (x: -179.0, y: 0.0), (x: -179.0, y: 1.0), (x: -180.0, y: 1.0)];
        assert_eq!(keys(&p, west.into()), vec!["3.5"]);
        let split = MultiPolygon(vec![
            polygon![(x: 179.0, y: 0.0), (x: 180.0, y: 0.0), (x: 180.0, y: 1.0), (x: 179.0, y: 1.0)],
            polygon![(x: -180.0, y: 0.0), (x: -179.0, y: 0.0), (x: -179.0, y: 1.0), (x: -180.0, y: 1.0)],
        ]);
        assert_eq!(keys(&p, split.into()), vec!["3.5"]);
    }

    #[test]
    fn bad_boundaries_are_errors() {
        let bad =
            |bytes: &[u8], field: &str| RegionPartitioner::from_geojson(bytes, "x.geojson", field);
        assert!(matches!(bad(b"not json", "code"), Err(Error::Parse { .. })));
        assert!(matches!(
            bad(br#"{"type": "Point", "coordinates": [0, 0]}"#, "code"),
            Err(Error::Parse { .. })
        ));
        assert!(matches!(bad(&boxes(), "missing"), Err(Error::Parse { .. })));
        assert!(matches!(
            bad(br#"{"type": "FeatureCollection", "features": []}"#, "code"),
            Err(Error::Parse { .. })
        ));
        let malformed = br#"{"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"code": 1}, "geometry": {"type": "Polygon", "coordinates": [[[0]]]}}]}"#;
        assert!(matches!(
            bad(malformed, "code"),
            Err(Error::Geometry { .. })
        ));
        let single = br#"{"type": "Feature", "properties": {"code": true},
            "geometry": {"type": "Point", "coordinates": [1, 2]}}"#;
        let p = bad(single, "code").unwrap();
        assert_eq!(p.keys(Some(&Point::new(1.0, 2.0).into())), vec!["True"]);
    }
}
