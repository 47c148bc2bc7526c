//! Query inputs: geometries given as GeoJSON, WKT, a bbox or a point, and datetime bounds.
//!
//! Every error is an [`Error::Geometry`] or [`Error::InvalidArgument`] that names the argument
//! the text came from (e.g. `--intersects`), so a CLI can report it as a usage error.

use chrono::{DateTime, Utc};
use geo::CoordsIter;
use geo_types::{Geometry, MultiPoint, MultiPolygon, Point, Polygon, Rect, coord};

use crate::error::{Error, Result};

fn geometry_error(arg: &str, reason: impl Into<String>) -> Error {
    Error::Geometry {
        context: arg.to_string(),
        reason: reason.into(),
    }
}

/// Parse a query geometry: GeoJSON (a geometry, a Feature or a FeatureCollection, whose
/// geometries are combined) when the text starts with `{`, WKT otherwise. Coordinates must be
/// longitude/latitude. `arg` names the argument in errors.
pub fn parse_geometry(text: &str, arg: &str) -> Result<Geometry<f64>> {
    let text = text.trim();
    let geometry = if text.starts_with('{') {
        parse_geojson(text).map_err(|e| geometry_error(arg, format!("not valid GeoJSON: {e}")))?
    } else {
        parse_wkt(text).map_err(|e| geometry_error(arg, format!("not valid WKT: {e}")))?
    };
    validate_lon_lat(&geometry, arg)?;
    validate_shape(&geometry, arg)?;
    Ok(geometry)
}

/// Every line has at least 2 positions and every polygon ring at least 4 (RFC 7946 §3.1.4 and
/// §3.1.6; a ring is closed when read, so an open ring of 3 distinct positions is accepted): a
/// degenerate region matches nothing, and a caller who sent one made a mistake worth hearing.
fn validate_shape(g: &Geometry<f64>, arg: &str) -> Result<()> {
    let ring = |r: &geo_types::LineString<f64>, what: &str| -> Result<()> {
        let n = r.0.len();
        if n < 4 {
            return Err(geometry_error(
                arg,
                format!("{what} has {n} positions; a polygon ring needs at least 4 (closed)"),
            ));
        }
        Ok(())
    };
    let polygon = |p: &Polygon<f64>, label: &str| -> Result<()> {
        ring(p.exterior(), &format!("the exterior ring of {label}"))?;
        for (i, hole) in p.interiors().iter().enumerate() {
            ring(hole, &format!("hole {} of {label}", i + 1))?;
        }
        Ok(())
    };
    let line = |l: &geo_types::LineString<f64>, label: &str| -> Result<()> {
        if l.0.len() < 2 {
            return Err(geometry_error(
                arg,
                format!(
                    "{label} has {} position(s); a line needs at least 2",
                    l.0.len()
                ),
            ));
        }
        Ok(())
    };
    match g {
        Geometry::Polygon(p) => polygon(p, "the polygon"),
        Geometry::MultiPolygon(mp) => {
            mp.0.iter().enumerate().try_for_each(|(i, p)| {
                polygon(p, &format!("polygon {} of the MultiPolygon", i + 1))
            })
        }
        Geometry::LineString(l) => line(l, "the LineString"),
        Geometry::MultiLineString(ml) => {
            ml.0.iter()
                .enumerate()
                .try_for_each(|(i, l)| line(l, &format!("line {} of the MultiLineString", i + 1)))
        }
        Geometry::GeometryCollection(gc) => gc.0.iter().try_for_each(|g| validate_shape(g, arg)),
        _ => Ok(()),
    }
}

/// Deepest parenthesis nesting accepted in WKT (a MultiPolygon needs 3; collections add one
/// per level): the reader recurses once per level.
const MAX_WKT_DEPTH: usize = 16;

/// Parse WKT (`POINT`, `LINESTRING`, `POLYGON`, the `MULTI` forms and `GEOMETRYCOLLECTION`,
/// `Z`/`M` ordinates dropped) with the `wkt` crate.
pub fn parse_wkt(text: &str) -> std::result::Result<Geometry<f64>, String> {
    use wkt::TryFromWkt;
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'(' => {
                depth += 1;
                if depth > MAX_WKT_DEPTH {
                    return Err(format!("nested deeper than {MAX_WKT_DEPTH} levels"));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if text.trim().is_empty() {
        return Err("empty text".into());
    }
    Geometry::<f64>::try_from_wkt_str(text).map_err(|e| e.to_string())
}

fn parse_geojson(text: &str) -> std::result::Result<Geometry<f64>, String> {
    let gj: geojson::GeoJson = text.parse().map_err(|e: geojson::Error| e.to_string())?;
    let convert = |g: geojson::Geometry| -> std::result::Result<Geometry<f64>, String> {
        Geometry::<f64>::try_from(g).map_err(|e| e.to_string())
    };
    match gj {
        geojson::GeoJson::Geometry(g) => convert(g),
        geojson::GeoJson::Feature(f) => f
            .geometry
            .ok_or_else(|| "the Feature has no geometry".to_string())
            .and_then(convert),
        geojson::GeoJson::FeatureCollection(fc) => {
            let parts = fc
                .features
                .into_iter()
                .filter_map(|f| f.geometry)
                .map(convert)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if parts.is_empty() {
                return Err("the FeatureCollection has no geometries".into());
            }
            Ok(Geometry::GeometryCollection(parts.into_iter().collect()))
        }
    }
}

/// Every coordinate finite, longitude in [-180, 180], latitude in [-90, 90], and at least one.
fn validate_lon_lat(g: &Geometry<f64>, arg: &str) -> Result<()> {
    if g.coords_count() == 0 {
        return Err(geometry_error(arg, "the geometry is empty"));
    }
    for c in g.coords_iter() {
        if !(c.x.is_finite() && c.y.is_finite()) {
            return Err(geometry_error(arg, "coordinates must be finite numbers"));
        }
        if !(-180.0..=180.0).contains(&c.x) || !(-90.0..=90.0).contains(&c.y) {
            return Err(geometry_error(
                arg,
                format!(
                    "coordinate ({}, {}) is outside longitude [-180, 180] / latitude [-90, 90] \
                     (coordinates are lon lat)",
                    c.x, c.y
                ),
            ));
        }
    }
    Ok(())
}

fn numbers(text: &str, arg: &str) -> Result<Vec<f64>> {
    text.split(',')
        .map(|s| {
            let s = s.trim();
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| geometry_error(arg, format!("{s:?} is not a number")))
        })
        .collect()
}

/// Parse `minx,miny,maxx,maxy` (or the 6-number 3D form `minx,miny,minz,maxx,maxy,maxz`).
/// A box with `minx > maxx` crosses the antimeridian and becomes a MultiPolygon of two boxes.
pub fn parse_bbox(text: &str, arg: &str) -> Result<Geometry<f64>> {
    let v = numbers(text, arg)?;
    let (minx, miny, maxx, maxy) = match v.as_slice() {
        [a, b, c, d] => (*a, *b, *c, *d),
        [a, b, _, d, e, _] => (*a, *b, *d, *e),
        _ => {
            return Err(geometry_error(
                arg,
                format!(
                    "expected 4 numbers minx,miny,maxx,maxy (or 6 for a 3D box), found {}",
                    v.len()
                ),
            ));
        }
    };
    if miny > maxy {
        return Err(geometry_error(
            arg,
            format!("miny {miny} is greater than maxy {maxy}"),
        ));
    }
    bbox_geometry(minx, miny, maxx, maxy, arg)
}

/// The geometry of a bbox; `minx > maxx` means the box crosses the antimeridian.
pub fn bbox_geometry(
    minx: f64,
    miny: f64,
    maxx: f64,
    maxy: f64,
    arg: &str,
) -> Result<Geometry<f64>> {
    // Check the corners first: the pieces below are counted from the box's width.
    validate_lon_lat(
        &Geometry::MultiPoint(MultiPoint::new(vec![
            Point::new(minx, miny),
            Point::new(maxx, maxy),
        ])),
        arg,
    )?;
    let rect = |x0: f64, x1: f64| -> Polygon<f64> {
        Rect::new(coord! { x: x0, y: miny }, coord! { x: x1, y: maxy }).to_polygon()
    };
    let spans = if minx > maxx {
        vec![(minx, 180.0), (-180.0, maxx)]
    } else {
        vec![(minx, maxx)]
    };
    // An edge longer than 180° of longitude reads as crossing the antimeridian (the grid's
    // rule for footprints), so wide boxes — up to the whole world — are cut into pieces of at
    // most 90°.
    let mut rects = Vec::new();
    for (x0, x1) in spans {
        let pieces = ((x1 - x0) / 90.0).ceil().max(1.0) as usize;
        let step = (x1 - x0) / pieces as f64;
        for k in 0..pieces {
            let a = x0 + step * k as f64;
            let b = if k + 1 == pieces { x1 } else { a + step };
            rects.push(rect(a, b));
        }
    }
    let g = if rects.len() == 1 {
        Geometry::Polygon(rects.remove(0))
    } else {
        Geometry::MultiPolygon(MultiPolygon::new(rects))
    };
    validate_lon_lat(&g, arg)?;
    Ok(g)
}

/// Parse `lon,lat`.
pub fn parse_point(text: &str, arg: &str) -> Result<Geometry<f64>> {
    let v = numbers(text, arg)?;
    let [lon, lat] = v.as_slice() else {
        return Err(geometry_error(
            arg,
            format!("expected lon,lat, found {} numbers", v.len()),
        ));
    };
    let g = Geometry::Point(Point::new(*lon, *lat));
    validate_lon_lat(&g, arg)?;
    Ok(g)
}

/// Parse a datetime bound like the Python tool: an ISO date (midnight UTC), an RFC 3339
/// timestamp (offsets converted to UTC) or a naive date-time (taken as UTC).
pub fn parse_datetime(text: &str, arg: &str) -> Result<DateTime<Utc>> {
    crate::timestamp::parse_utc(text).ok_or_else(|| {
        Error::invalid_argument(
            arg,
            format!(
                "{text:?} is not a date or datetime (expected e.g. 2024-01-02, \
                 2024-01-02T03:04:05Z or 2024-01-02T05:04:05+02:00; naive times are UTC)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn degenerate_rings_and_lines_are_refused_naming_the_part() {
        for (text, says) in [
            (
                r#"{"type":"Polygon","coordinates":[[[0,0],[1,1]]]}"#,
                "exterior ring of the polygon has 3 positions",
            ),
            (
                r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[5,5],[6,6],[5,5]]]]}"#,
                "polygon 2 of the MultiPolygon",
            ),
            (
                r#"{"type":"Polygon","coordinates":[[[0,0],[4,0],[4,4],[0,0]],[[1,1],[2,2],[1,1]]]}"#,
                "hole 1",
            ),
            ("LINESTRING(0 0)", "a line needs at least 2"),
        ] {
            let err = parse_geometry(text, "intersects").unwrap_err();
            assert!(matches!(err, Error::Geometry { .. }), "{err}");
            assert!(err.to_string().contains(says), "{text}: {err}");
            assert!(err.to_string().contains("intersects"), "{err}");
        }
        // An open ring of three distinct positions is closed when read.
        parse_geometry(
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}"#,
            "g",
        )
        .unwrap();
        parse_geometry("POLYGON((0 0, 1 0, 1 1, 0 0))", "g").unwrap();
    }

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn wkt_reads_every_supported_type() {
        let p = parse_wkt("POINT (10 20)").unwrap();
        assert_eq!(p, Geometry::Point(Point::new(10.0, 20.0)));
        assert_eq!(
            parse_wkt("linestring(0 0, 1 1, 2 0)")
                .unwrap()
                .coords_count(),
            3
        );
        let Geometry::Polygon(poly) =
            parse_wkt("POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 2))").unwrap()
        else {
            panic!("not a polygon")
        };
        assert_eq!(poly.interiors().len(), 1);
        let Geometry::MultiPolygon(mp) =
            parse_wkt("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))").unwrap()
        else {
            panic!("not a multipolygon")
        };
        assert_eq!(mp.0.len(), 2);
        assert_eq!(
            parse_wkt("MULTIPOINT ((1 2), (3 4))").unwrap(),
            parse_wkt("MULTIPOINT (1 2, 3 4)").unwrap()
        );
        let gc = parse_wkt("GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))").unwrap();
        assert_eq!(gc.coords_count(), 3);
        let z = parse_wkt("POINT Z (1.5 -2e1 300)").unwrap();
        assert_eq!(z, Geometry::Point(Point::new(1.5, -20.0)));
    }

    #[test]
    fn wkt_errors_and_deep_nesting() {
        for bad in [
            "POLYGON ((0 0, 1 0, 1 1",
            "POINT (1)",
            "CIRCLE (1 2)",
            "",
            "POINT (1 2; 3)",
        ] {
            assert!(parse_wkt(bad).is_err(), "{bad:?}");
        }
        let deep = format!(
            "{}POINT (1 2){}",
            "GEOMETRYCOLLECTION (".repeat(5000),
            ")".repeat(5000)
        );
        assert!(parse_wkt(&deep).unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn geojson_and_wkt_give_the_same_polygon() {
        let gj = parse_geometry(
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}"#,
            "--intersects",
        )
        .unwrap();
        let wkt = parse_geometry("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", "--intersects").unwrap();
        assert_eq!(gj, wkt);
        let feature = parse_geometry(
            r#"{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[5,6]}}"#,
            "--intersects",
        )
        .unwrap();
        assert_eq!(feature, Geometry::Point(Point::new(5.0, 6.0)));
    }

    #[test]
    fn errors_name_the_argument() {
        for bad in [
            "{\"type\":\"Polygon\"",
            "POLYGON((0 0, 1 0",
            "POINT (200 0)",
            "POINT EMPTY",
        ] {
            let e = parse_geometry(bad, "--intersects").unwrap_err();
            assert!(matches!(e, Error::Geometry { .. }), "{e}");
            assert!(e.to_string().contains("--intersects"), "{e}");
        }
        let e = parse_bbox("1,2,3", "--bbox").unwrap_err();
        assert!(e.to_string().contains("--bbox") && e.to_string().contains("4 numbers"));
        assert!(parse_bbox("0,10,1,5", "--bbox").is_err());
        assert!(parse_bbox("0,a,1,5", "--bbox").is_err());
        assert!(parse_point("1", "--point").is_err());
        assert!(parse_point("10,95", "--point").is_err());
        let e = parse_datetime("yesterday", "--start").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("--start"));
    }

    #[test]
    fn antimeridian_bbox_is_two_boxes() {
        let g = parse_bbox("170,-10,-170,10", "--bbox").unwrap();
        let Geometry::MultiPolygon(mp) = g else {
            panic!("expected a MultiPolygon")
        };
        assert_eq!(mp.0.len(), 2);
        use geo::BoundingRect;
        let a = mp.0[0].bounding_rect().unwrap();
        let b = mp.0[1].bounding_rect().unwrap();
        assert_eq!((a.min().x, a.max().x), (170.0, 180.0));
        assert_eq!((b.min().x, b.max().x), (-180.0, -170.0));
        assert!(matches!(
            parse_bbox("-10,-10,10,10", "--bbox").unwrap(),
            Geometry::Polygon(_)
        ));
        assert!(matches!(
            parse_bbox("-10,-10,0,10,10,5", "--bbox").unwrap(),
            Geometry::Polygon(_)
        ));
    }

    #[test]
    fn a_huge_bbox_is_refused_before_it_is_cut_into_pieces() {
        // Would be ~2e10 pieces if the width were trusted.
        let err = parse_bbox("-1e12,0,1e12,1", "bbox")
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside longitude"), "{err}");
        let err = bbox_geometry(-1e12, 0.0, 1e12, 1.0, "bbox").unwrap_err();
        assert!(err.to_string().contains("bbox"), "{err}");
    }

    #[test]
    fn datetimes_are_utc() {
        let d = parse_datetime("2020-03-04", "--start").unwrap();
        assert_eq!(d, Utc.with_ymd_and_hms(2020, 3, 4, 0, 0, 0).unwrap());
        let naive = parse_datetime("2020-03-04T05:06:07", "--start").unwrap();
        assert_eq!(naive, Utc.with_ymd_and_hms(2020, 3, 4, 5, 6, 7).unwrap());
        let off = parse_datetime("2020-12-31T22:00:00-05:00", "--end").unwrap();
        assert_eq!(off, Utc.with_ymd_and_hms(2021, 1, 1, 3, 0, 0).unwrap());
    }
}
