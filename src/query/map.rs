//! A coverage map: the H3 cells of a table coloured by the rows they hold, over Natural
//! Earth's 1:110m land outline (public domain; `land_110m.txt` beside this file, made by
//! `scripts/land-outline.py`), as SVG in plate carrée (x = longitude, y = −latitude).
//!
//! Cells are coloured on a log scale from the fewest to the most rows. A cell across the
//! antimeridian is drawn on both sides. Keys that are not H3 cells (a GeoJSON grid's region
//! ids, rows without geometry) are counted in the caption, not drawn.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::BucketStats;

/// The land outline: one ring per line of `lon,lat` pairs.
const LAND: &str = include_str!("land_110m.txt");

/// Colours from the fewest rows to the most (viridis).
const RAMP: [(u8, u8, u8); 5] = [
    (68, 1, 84),
    (59, 82, 139),
    (33, 145, 140),
    (94, 201, 98),
    (253, 231, 37),
];

/// What a map shows.
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    /// Only this UTC year's rows (`None`: all).
    pub year: Option<i32>,
    /// A title drawn in the top-left corner.
    pub title: String,
}

/// What was drawn.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MapSummary {
    /// H3 cells drawn.
    pub cells: usize,
    /// Rows in them.
    pub rows: u64,
    /// Rows under keys that are not H3 cells (not drawn).
    pub rows_not_drawn: u64,
    /// The most rows in one cell.
    pub max_rows: u64,
}

/// The coverage map of `stats` as an SVG document.
pub fn coverage_svg(stats: &[BucketStats], options: &MapOptions) -> (String, MapSummary) {
    let mut per_cell: BTreeMap<&str, u64> = BTreeMap::new();
    for b in stats {
        if options.year.is_none() || b.year == options.year {
            *per_cell.entry(b.cell.as_str()).or_default() += b.rows;
        }
    }
    let mut summary = MapSummary::default();
    let mut cells: Vec<(Vec<(f64, f64)>, u64)> = Vec::new();
    for (key, rows) in per_cell {
        match key.parse::<h3o::CellIndex>() {
            Ok(cell) => {
                let ring: Vec<(f64, f64)> =
                    cell.boundary().iter().map(|v| (v.lng(), v.lat())).collect();
                cells.push((ring, rows));
                summary.cells += 1;
                summary.rows += rows;
                summary.max_rows = summary.max_rows.max(rows);
            }
            Err(_) => summary.rows_not_drawn += rows,
        }
    }
    let min_rows = cells.iter().map(|c| c.1).min().unwrap_or(1).max(1);
    let mut svg = String::with_capacity(LAND.len() * 2 + cells.len() * 200);
    svg.push_str(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"-180 -90 360 200\" \
         width=\"1440\" height=\"800\" font-family=\"sans-serif\">\n\
         <rect x=\"-180\" y=\"-90\" width=\"360\" height=\"200\" fill=\"#ffffff\"/>\n\
         <rect x=\"-180\" y=\"-90\" width=\"360\" height=\"180\" fill=\"#f4f8fb\"/>\n\
         <path fill=\"#dcdcdc\" stroke=\"#b4b4b4\" stroke-width=\"0.15\" d=\"",
    );
    for line in LAND.lines() {
        // Rings across the antimeridian are unwrapped (no jump of more than 180°) and drawn
        // again one turn over where they reach past ±180°.
        let mut ring: Vec<(f64, f64)> = Vec::new();
        for pair in line.split_whitespace() {
            let Some((lon, lat)) = pair.split_once(',') else {
                continue;
            };
            let (Ok(mut lon), Ok(lat)) = (lon.parse::<f64>(), lat.parse::<f64>()) else {
                continue;
            };
            if let Some((prev, _)) = ring.last() {
                while lon - prev > 180.0 {
                    lon -= 360.0;
                }
                while prev - lon > 180.0 {
                    lon += 360.0;
                }
            }
            ring.push((lon, lat));
        }
        let (lo, hi) = ring.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
            (lo.min(*x), hi.max(*x))
        });
        let mut shifts = vec![0.0];
        if hi > 180.0 {
            shifts.push(-360.0);
        }
        if lo < -180.0 {
            shifts.push(360.0);
        }
        for shift in shifts {
            for (i, (lon, lat)) in ring.iter().enumerate() {
                let _ = write!(
                    svg,
                    "{}{} {}",
                    if i == 0 { "M" } else { "L" },
                    round1(lon + shift),
                    round1(-lat)
                );
            }
            svg.push('Z');
        }
    }
    svg.push_str("\"/>\n<g stroke=\"#ffffff\" stroke-width=\"0.05\" fill-opacity=\"0.85\">\n");
    for (ring, rows) in &cells {
        let colour = colour(*rows, min_rows, summary.max_rows);
        // A ring across the antimeridian is drawn east of it (negative longitudes + 360°) and
        // again one turn west.
        let crosses = crosses(ring);
        let shifts: &[f64] = if crosses { &[0.0, -360.0] } else { &[0.0] };
        for shift in shifts {
            let _ = write!(svg, "<path fill=\"{colour}\" d=\"");
            for (i, (lon, lat)) in ring.iter().enumerate() {
                let lon = if crosses && *lon < 0.0 {
                    lon + 360.0
                } else {
                    *lon
                };
                let _ = write!(
                    svg,
                    "{}{:.3} {:.3}",
                    if i == 0 { "M" } else { "L" },
                    lon + *shift,
                    -lat
                );
            }
            let _ = writeln!(svg, "Z\"><title>{rows} rows</title></path>");
        }
    }
    svg.push_str("</g>\n");
    let year = options
        .year
        .map_or_else(|| "all years".to_string(), |y| y.to_string());
    let _ = writeln!(
        svg,
        "<text x=\"-178\" y=\"96\" font-size=\"4\" fill=\"#333\">{}</text>\n\
         <text x=\"-178\" y=\"101\" font-size=\"3\" fill=\"#333\">{} cells, {} rows ({year}); \
         colour: rows per cell, log scale {} … {}{}</text>",
        escape_markup(&options.title),
        summary.cells,
        summary.rows,
        min_rows,
        summary.max_rows,
        if summary.rows_not_drawn > 0 {
            format!("; {} rows without a cell not drawn", summary.rows_not_drawn)
        } else {
            String::new()
        }
    );
    for (i, (r, g, b)) in RAMP.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"104\" width=\"6\" height=\"2\" fill=\"rgb({r},{g},{b})\"/>",
            -178 + 6 * i as i32
        );
    }
    svg.push_str("</svg>\n");
    (svg, summary)
}

/// A coordinate to 0.1° (the outline's precision), without trailing zeros.
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Whether a ring's longitudes span more than 180° (it crosses the antimeridian).
fn crosses(ring: &[(f64, f64)]) -> bool {
    let (lo, hi) = ring.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(*x), hi.max(*x))
    });
    hi - lo > 180.0
}

/// The ramp colour of `rows` on a log scale between `min` and `max`.
fn colour(rows: u64, min: u64, max: u64) -> String {
    let (lo, hi) = ((min as f64).ln(), (max.max(min) as f64).ln());
    let t = if hi > lo {
        (((rows.max(1) as f64).ln() - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let pos = t * (RAMP.len() - 1) as f64;
    let i = (pos.floor() as usize).min(RAMP.len() - 2);
    let f = pos - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (RAMP[i], RAMP[i + 1]);
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// Text for SVG/HTML content.
pub fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(cell: &str, year: Option<i32>, rows: u64) -> BucketStats {
        BucketStats {
            cell: cell.to_string(),
            year,
            rows,
            files: 1,
            bytes: 1,
        }
    }

    #[test]
    fn cells_are_drawn_by_rows_and_years_filter_them() {
        let stats = [
            bucket("8001fffffffffff", Some(2020), 10),
            bucket("8001fffffffffff", Some(2021), 90),
            bucket("8003fffffffffff", Some(2021), 1),
            bucket("region-7", Some(2021), 5),
        ];
        let (svg, s) = coverage_svg(&stats, &MapOptions::default());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            (s.cells, s.rows, s.max_rows, s.rows_not_drawn),
            (2, 101, 100, 5)
        );
        assert!(svg.contains("<title>100 rows</title>") && svg.contains("#fde725"));
        let (_, s) = coverage_svg(
            &stats,
            &MapOptions {
                year: Some(2020),
                ..Default::default()
            },
        );
        assert_eq!((s.cells, s.rows), (1, 10));
        // The land outline is there (Antarctica's first ring).
        assert!(svg.contains("M-59.6 80"));
    }

    #[test]
    fn the_colour_ramp_runs_from_fewest_to_most() {
        assert_eq!(colour(1, 1, 1000), "#440154");
        assert_eq!(colour(1000, 1, 1000), "#fde725");
        assert_eq!(colour(5, 5, 5), "#fde725");
        assert!(crosses(&[(179.0, 0.0), (-179.0, 0.0)]));
        assert!(!crosses(&[(10.0, 0.0), (12.0, 0.0)]));
        assert_eq!(round1(-12.5499), -12.5);
    }
}
