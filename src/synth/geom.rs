//! Small lon/lat geometry helpers for the generator.

use serde_json::{Value, json};

pub(super) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(super) fn wrap_lon(lon: f64) -> f64 {
    let wrapped = (lon + 180.0).rem_euclid(360.0) - 180.0;
    if wrapped == -180.0 && lon > 0.0 {
        180.0
    } else {
        round6(wrapped)
    }
}

pub(super) fn ring_json(ring: &[[f64; 2]]) -> Value {
    Value::Array(ring.iter().map(|p| json!([p[0], p[1]])).collect())
}

pub(super) fn ring_bbox(ring: &[[f64; 2]]) -> [f64; 4] {
    rings_bbox(std::iter::once(ring))
}

pub(super) fn rings_bbox<'a>(rings: impl Iterator<Item = &'a [[f64; 2]]>) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for p in rings.flatten() {
        b = [
            b[0].min(p[0]),
            b[1].min(p[1]),
            b[2].max(p[0]),
            b[3].max(p[1]),
        ];
    }
    b
}

/// Two quadrilaterals covering 45% of the footprint each, with a gap in the middle.
pub(super) fn split_with_gap(ring: &[[f64; 2]]) -> [Vec<[f64; 2]>; 2] {
    let c = |i: usize| ring.get(i).copied().unwrap_or([0.0, 0.0]);
    let lerp = |a: [f64; 2], b: [f64; 2], t: f64| {
        [
            round6(a[0] + (b[0] - a[0]) * t),
            round6(a[1] + (b[1] - a[1]) * t),
        ]
    };
    let (c0, c1, c2, c3) = (c(0), c(1), c(2), c(3));
    let left = vec![c0, lerp(c0, c1, 0.45), lerp(c3, c2, 0.45), c3, c0];
    let right = vec![
        lerp(c0, c1, 0.55),
        c1,
        c2,
        lerp(c3, c2, 0.55),
        lerp(c0, c1, 0.55),
    ];
    [left, right]
}

/// Sutherland–Hodgman clip of a closed ring against the meridian 180 (unwrapped longitudes):
/// the part with `lon >= 180` when `east`, else the part with `lon <= 180`. Returns a closed ring.
pub(super) fn clip_at_180(ring: &[[f64; 2]], east: bool) -> Vec<[f64; 2]> {
    let inside = |p: [f64; 2]| if east { p[0] >= 180.0 } else { p[0] <= 180.0 };
    let cross = |a: [f64; 2], b: [f64; 2]| {
        let t = (180.0 - a[0]) / (b[0] - a[0]);
        [180.0, round6(a[1] + t * (b[1] - a[1]))]
    };
    let open = &ring[..ring.len().saturating_sub(1)];
    let mut out = Vec::with_capacity(open.len() + 2);
    for (i, &a) in open.iter().enumerate() {
        let b = open[(i + 1) % open.len()];
        match (inside(a), inside(b)) {
            (true, true) => out.push(b),
            (true, false) => out.push(cross(a, b)),
            (false, true) => {
                out.push(cross(a, b));
                out.push(b);
            }
            (false, false) => {}
        }
    }
    if let Some(first) = out.first().copied() {
        out.push(first);
    }
    out
}
