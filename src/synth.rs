//! Deterministic synthetic ITS_LIVE velocity-pair STAC items.
//!
//! [`Synth`] yields items that look like the ITS_LIVE image-pair granules earthcatalog ingests in
//! production: a pair id built from two real-looking scene ids (`…_X_…_G0120V02_P037`), a
//! slightly rotated quadrilateral footprint of a Landsat (~185 km), Sentinel-1 IW (~250 × 170 km)
//! or Sentinel-2 tile (~110 km) scene over a glaciated region, the 18 ITS_LIVE properties of the
//! 28-column table schema, `self`/`parent` links and `data`/`thumbnail` (sometimes `kerchunk`)
//! assets. Keys follow the bucket layout,
//! `velocity_image_pair/<landsatOLI|landsatETM|landsatTM|sentinel1|sentinel2>/v02/<N60W150>/<id>.stac.json`.
//!
//! # Determinism
//!
//! Item `i` is a pure function of `(seed, i)`: every item draws from its own
//! [splitmix64](https://prng.di.unimi.it/splitmix64.c) stream seeded from the pair, so the same
//! options always give byte-identical JSON, and [`Synth::item_at`] builds any item without
//! generating the ones before it. Floating-point coordinates are rounded to 6 decimals.
//!
//! # Regular items
//!
//! * Regions (weights): Alaska 20, Greenland 24, Svalbard 7, Patagonia 10, Himalaya 12,
//!   Antarctic Peninsula 10, Iceland 5, Canadian Arctic 10.
//! * `datetime` (the pair's mid time) in 1985–2025, year weight `(year − 1983)²`; the platform
//!   is one that flew that year (`LT05`, `LE07`, `LC08`, `LC09`, `S1A`, `S1B`, `S2A`, `S2B`).
//! * `collection` is omitted from ~10% of items; `percent_valid_pixels` and `date_dt` are
//!   integers, written as whole floats (`37.0`) in ~10% of items; ~30% have a `kerchunk` asset.
//!
//! # Edge cases
//!
//! A share [`SynthOptions::special_fraction`] of the items are "special": a regular item changed
//! into one of the [`SpecialKind`]s, the inputs that break the Python tool
//! (the inputs that break the Python tool, `docs/decisions.md`). So that every kind is present in any run of at least
//! [`FORCED_WINDOW`] items, kind number `k` (its position in [`SpecialKind::ALL`]) is always item
//! [`SpecialKind::forced_index`] `= 7 + 17·k`:
//!
//! | index | kind | what changes |
//! |---|---|---|
//! | 7 | [`SpecialKind::PointGeometry`] | `Point` at the scene centre |
//! | 24 | [`SpecialKind::MultiPolygon`] | footprint split in two with a no-data gap |
//! | 41 | [`SpecialKind::AntimeridianSplit`] | Ross Ice Shelf scene as an RFC 7946 split `MultiPolygon` (bbox west > east) |
//! | 58 | [`SpecialKind::AntimeridianWrapped`] | the same scene as one ring with wrapped longitudes (179 → −178) |
//! | 75 | [`SpecialKind::SouthPoleRing`] | ring at −88.5° through longitudes −180…180 |
//! | 92 | [`SpecialKind::WideLongitude`] | polygon spanning −170…170 (edges longer than 180°) |
//! | 109 | [`SpecialKind::NullGeometry`] | `geometry: null`, no `bbox` |
//! | 126 | [`SpecialKind::EmptyPolygon`] | `{"type":"Polygon","coordinates":[]}`, no `bbox` |
//! | 143 | [`SpecialKind::MissingDatetime`] | no `datetime` key (start/end present) |
//! | 160 | [`SpecialKind::NullDatetime`] | `datetime: null` (start/end present) |
//! | 177 | [`SpecialKind::DateOnlyDatetime`] | `datetime: "2019-07-01"` |
//! | 194 | [`SpecialKind::NaiveDatetime`] | `datetime: "2019-07-01T12:00:00"` (no zone) |
//! | 211 | [`SpecialKind::OffsetDatetime`] | `datetime: "Y-12-31T22:…-05:00"`, i.e. UTC year Y+1 |
//! | 228 | [`SpecialKind::FractionalPercentValid`] | `percent_valid_pixels: 37.5` |
//! | 245 | [`SpecialKind::FractionalDateDt`] | `date_dt: 16.000347` |
//! | 262 | [`SpecialKind::UnknownProperties`] | `sat:relative_orbit`, `instruments`, `eo:cloud_cover`, `processing:level` |
//! | 279 | [`SpecialKind::DuplicateId`] | an earlier regular item again (same id) under `…/<tile>/reprocessed/<id>.stac.json`, with a later `updated` |
//!
//! Outside those slots an item is special with a probability chosen so that the overall share is
//! `special_fraction` (inside the first [`FORCED_WINDOW`] items the forced slots count towards
//! it), with a kind drawn uniformly. With `special_fraction == 0` no item is special.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Utc};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::store::Location;

mod draft;
mod geom;
pub mod inventory;
mod rng;
#[cfg(test)]
mod tests;

use draft::{Platform, draft, footprint, render, ymd};
use geom::{clip_at_180, ring_bbox, ring_json, rings_bbox, round6, split_with_gap, wrap_lon};
use rng::Rng;

/// Items `0..FORCED_WINDOW` contain every [`SpecialKind`] at its [`SpecialKind::forced_index`].
pub const FORCED_WINDOW: u64 = 300;
const FORCED_FIRST: u64 = 7;
const FORCED_STRIDE: u64 = 17;

/// How many objects [`write_dataset`] writes concurrently.
const PUT_CONCURRENCY: usize = 32;

const STREAM_CONTENT: u64 = 1;
const STREAM_SELECT: u64 = 2;
const STREAM_SPECIAL: u64 = 3;

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// Seed of the whole data set; the same seed gives the same items.
    pub seed: u64,
    /// Number of items.
    pub count: u64,
    /// Share of special ("edge case") items, in `[0, 1]` (default 0.05).
    pub special_fraction: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            count: FORCED_WINDOW,
            special_fraction: 0.05,
        }
    }
}

impl SynthOptions {
    /// `count` items from `seed`, with the default special fraction.
    pub fn new(seed: u64, count: u64) -> Self {
        Self {
            seed,
            count,
            ..Self::default()
        }
    }

    /// Set the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Set the number of items.
    pub fn with_count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    /// Set the share of special items (clamped to `[0, 1]`; NaN means 0).
    pub fn with_special_fraction(mut self, fraction: f64) -> Self {
        self.special_fraction = fraction;
        self
    }
}

/// The edge cases mixed into a synthetic data set (see the module docs for where they appear).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SpecialKind {
    /// `Point` geometry.
    PointGeometry,
    /// A `MultiPolygon` of two parts.
    MultiPolygon,
    /// An antimeridian-crossing footprint split at ±180 as RFC 7946 asks (Python B1).
    AntimeridianSplit,
    /// An antimeridian-crossing footprint as one ring with wrapped longitudes (Python C1).
    AntimeridianWrapped,
    /// A ring around the south pole, longitudes −180…180 at −88.5° (Python B2).
    SouthPoleRing,
    /// A polygon wider than 180° in longitude, −170…170 (Python C2).
    WideLongitude,
    /// `geometry: null` (Python B3).
    NullGeometry,
    /// `{"type": "Polygon", "coordinates": []}` (Python B4).
    EmptyPolygon,
    /// No `datetime` key; `start_datetime`/`end_datetime` present (Python D1).
    MissingDatetime,
    /// `datetime: null`; `start_datetime`/`end_datetime` present (Python D1).
    NullDatetime,
    /// A date without a time, `"2019-07-01"` (Python A3).
    DateOnlyDatetime,
    /// A date-time without a zone, `"2019-07-01T12:00:00"`.
    NaiveDatetime,
    /// A date-time with a UTC offset whose UTC year is the next year (Python A4).
    OffsetDatetime,
    /// `percent_valid_pixels` with a fraction, e.g. `37.5` (Python A1).
    FractionalPercentValid,
    /// `date_dt` with a fraction, e.g. `16.000347` (Python A1).
    FractionalDateDt,
    /// Properties outside the 28-column schema (Python A2).
    UnknownProperties,
    /// The id of an earlier regular item, under another key, with a later `updated` (Python F).
    DuplicateId,
}

impl SpecialKind {
    /// Every kind, in forced-slot order.
    pub const ALL: [SpecialKind; 17] = [
        SpecialKind::PointGeometry,
        SpecialKind::MultiPolygon,
        SpecialKind::AntimeridianSplit,
        SpecialKind::AntimeridianWrapped,
        SpecialKind::SouthPoleRing,
        SpecialKind::WideLongitude,
        SpecialKind::NullGeometry,
        SpecialKind::EmptyPolygon,
        SpecialKind::MissingDatetime,
        SpecialKind::NullDatetime,
        SpecialKind::DateOnlyDatetime,
        SpecialKind::NaiveDatetime,
        SpecialKind::OffsetDatetime,
        SpecialKind::FractionalPercentValid,
        SpecialKind::FractionalDateDt,
        SpecialKind::UnknownProperties,
        SpecialKind::DuplicateId,
    ];

    /// A short snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            SpecialKind::PointGeometry => "point_geometry",
            SpecialKind::MultiPolygon => "multi_polygon",
            SpecialKind::AntimeridianSplit => "antimeridian_split",
            SpecialKind::AntimeridianWrapped => "antimeridian_wrapped",
            SpecialKind::SouthPoleRing => "south_pole_ring",
            SpecialKind::WideLongitude => "wide_longitude",
            SpecialKind::NullGeometry => "null_geometry",
            SpecialKind::EmptyPolygon => "empty_polygon",
            SpecialKind::MissingDatetime => "missing_datetime",
            SpecialKind::NullDatetime => "null_datetime",
            SpecialKind::DateOnlyDatetime => "date_only_datetime",
            SpecialKind::NaiveDatetime => "naive_datetime",
            SpecialKind::OffsetDatetime => "offset_datetime",
            SpecialKind::FractionalPercentValid => "fractional_percent_valid",
            SpecialKind::FractionalDateDt => "fractional_date_dt",
            SpecialKind::UnknownProperties => "unknown_properties",
            SpecialKind::DuplicateId => "duplicate_id",
        }
    }

    /// The index of the item that always has this kind (when `special_fraction > 0`).
    pub fn forced_index(self) -> u64 {
        let position = Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as u64;
        FORCED_FIRST + FORCED_STRIDE * position
    }
}

impl std::fmt::Display for SpecialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One generated item.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthItem {
    /// Position in the data set.
    pub index: u64,
    /// Object key, relative to the items root (`velocity_image_pair/…/<id>.stac.json`).
    pub key: String,
    /// The STAC item.
    pub json: Value,
    /// The edge case this item carries, `None` for a regular item.
    pub special: Option<SpecialKind>,
}

/// What [`write_dataset`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Item objects written.
    pub items: u64,
    /// How many of them are special.
    pub special_items: u64,
    /// Total size of the item objects.
    pub bytes: u64,
    /// Data rows in the inventory (header excluded).
    pub inventory_rows: u64,
}

/// The generator: an iterator over `count` items.
#[derive(Clone, Debug)]
pub struct Synth {
    seed: u64,
    count: u64,
    fraction: f64,
    window_fraction: f64,
    next: u64,
}

impl Synth {
    /// A generator for `options`.
    pub fn new(options: SynthOptions) -> Self {
        let fraction = if options.special_fraction.is_nan() {
            0.0
        } else {
            options.special_fraction.clamp(0.0, 1.0)
        };
        let forced = SpecialKind::ALL.len() as f64;
        let window = FORCED_WINDOW as f64;
        let window_fraction = ((fraction * window - forced) / (window - forced)).clamp(0.0, 1.0);
        Self {
            seed: options.seed,
            count: options.count,
            fraction,
            window_fraction,
            next: 0,
        }
    }

    /// Item `index` (independent of the iterator's position; may exceed `count`).
    pub fn item_at(&self, index: u64) -> SynthItem {
        let special = self.kind_at(index);
        let (key, json) = match special {
            None => render(&draft(self.seed, index)),
            Some(kind) => self.special_item(index, kind),
        };
        SynthItem {
            index,
            key,
            json,
            special,
        }
    }

    /// The special kind of item `index`, `None` for a regular item.
    pub fn kind_at(&self, index: u64) -> Option<SpecialKind> {
        let kind = self.raw_kind_at(index)?;
        if kind == SpecialKind::DuplicateId && self.duplicate_source(index).is_none() {
            return Some(SpecialKind::MultiPolygon);
        }
        Some(kind)
    }

    /// The kind before the duplicate fallback (whether an item is special does not depend on it).
    fn raw_kind_at(&self, index: u64) -> Option<SpecialKind> {
        if self.fraction <= 0.0 {
            return None;
        }
        if (FORCED_FIRST..FORCED_WINDOW).contains(&index)
            && (index - FORCED_FIRST).is_multiple_of(FORCED_STRIDE)
        {
            let k = ((index - FORCED_FIRST) / FORCED_STRIDE) as usize;
            if let Some(kind) = SpecialKind::ALL.get(k) {
                return Some(*kind);
            }
        }
        let p = if index < FORCED_WINDOW {
            self.window_fraction
        } else {
            self.fraction
        };
        let mut rng = Rng::for_item(self.seed, index, STREAM_SELECT);
        if !rng.chance(p) {
            return None;
        }
        Some(rng.pick(&SpecialKind::ALL))
    }

    /// The earlier regular item a [`SpecialKind::DuplicateId`] item at `index` copies.
    fn duplicate_source(&self, index: u64) -> Option<u64> {
        if index == 0 {
            return None;
        }
        let mut rng = Rng::for_item(self.seed, index, STREAM_SPECIAL);
        let start = index - 1 - rng.below(index.min(40));
        (start.saturating_sub(64)..=start)
            .rev()
            .find(|j| self.raw_kind_at(*j).is_none())
    }

    fn special_item(&self, index: u64, kind: SpecialKind) -> (String, Value) {
        let mut rng = Rng::for_item(self.seed, index, STREAM_SPECIAL);
        if kind == SpecialKind::DuplicateId {
            // `kind_at` only returns DuplicateId when a source exists.
            let source = self.duplicate_source(index).unwrap_or(0);
            let mut d = draft(self.seed, source);
            d.subdir = Some("reprocessed");
            d.updated = d.updated.max(d.created) + Duration::days(rng.range_i64(20, 400));
            return render(&d);
        }
        let mut d = draft(self.seed, index);
        match kind {
            SpecialKind::AntimeridianSplit | SpecialKind::AntimeridianWrapped => {
                // Ross Ice Shelf, straddling 180°: the ring keeps unwrapped longitudes (> 180)
                // until the geometry is written below.
                let (lat, lon) = (rng.range_f64(-79.5, -77.0), rng.range_f64(179.0, 179.95));
                d.relocate(lat, lon);
                d.ring = footprint(&mut rng, lat, lon, d.platform.mission());
            }
            SpecialKind::SouthPoleRing => d.relocate(-89.25, 0.0),
            SpecialKind::WideLongitude => d.relocate(-77.5, 0.0),
            SpecialKind::OffsetDatetime => {
                // Late on 31 December local time, i.e. the next year in UTC.
                let year = d.mid().year().min(2024);
                let target = ymd(year + 1, 1, 1)
                    + Duration::hours(3)
                    + Duration::minutes(rng.range_i64(0, 59))
                    + Duration::seconds(rng.range_i64(0, 59));
                d.shift(target - d.mid());
            }
            _ => {}
        }
        let (key, mut item) = render(&d);
        let mid = d.mid();
        match kind {
            SpecialKind::PointGeometry => {
                let (x, y) = (round6(d.lon), round6(d.lat));
                set(
                    &mut item,
                    "geometry",
                    json!({"type": "Point", "coordinates": [x, y]}),
                );
                set(&mut item, "bbox", json!([x, y, x, y]));
            }
            SpecialKind::MultiPolygon => {
                let parts = split_with_gap(&d.ring);
                let bbox = rings_bbox(parts.iter().map(|r| r.as_slice()));
                let coords: Vec<Value> = parts.iter().map(|r| json!([ring_json(r)])).collect();
                set(
                    &mut item,
                    "geometry",
                    json!({"type": "MultiPolygon", "coordinates": coords}),
                );
                set(&mut item, "bbox", json!(bbox));
            }
            SpecialKind::AntimeridianSplit => {
                let west = clip_at_180(&d.ring, false);
                let east: Vec<[f64; 2]> = clip_at_180(&d.ring, true)
                    .iter()
                    .map(|p| [p[0] - 360.0, p[1]])
                    .collect();
                let [w_min_x, w_min_y, _, w_max_y] = ring_bbox(&west);
                let [_, e_min_y, e_max_x, e_max_y] = ring_bbox(&east);
                set(
                    &mut item,
                    "geometry",
                    json!({"type": "MultiPolygon", "coordinates": [[ring_json(&west)], [ring_json(&east)]]}),
                );
                // RFC 7946 §5.2: west edge > east edge when crossing the antimeridian.
                set(
                    &mut item,
                    "bbox",
                    json!([w_min_x, w_min_y.min(e_min_y), e_max_x, w_max_y.max(e_max_y)]),
                );
            }
            SpecialKind::AntimeridianWrapped => {
                let wrapped: Vec<[f64; 2]> =
                    d.ring.iter().map(|p| [wrap_lon(p[0]), p[1]]).collect();
                set(
                    &mut item,
                    "geometry",
                    json!({"type": "Polygon", "coordinates": [ring_json(&wrapped)]}),
                );
                set(&mut item, "bbox", json!(ring_bbox(&wrapped)));
            }
            SpecialKind::SouthPoleRing => {
                let ring: Vec<[f64; 2]> = (0..=8)
                    .map(|i| [-180.0 + 45.0 * f64::from(i), -88.5])
                    .chain(std::iter::once([-180.0, -88.5]))
                    .collect();
                set(
                    &mut item,
                    "geometry",
                    json!({"type": "Polygon", "coordinates": [ring_json(&ring)]}),
                );
                set(&mut item, "bbox", json!([-180.0, -90.0, 180.0, -88.5]));
            }
            SpecialKind::WideLongitude => {
                let ring = [
                    [-170.0, -80.0],
                    [170.0, -80.0],
                    [170.0, -75.0],
                    [-170.0, -75.0],
                    [-170.0, -80.0],
                ];
                set(
                    &mut item,
                    "geometry",
                    json!({"type": "Polygon", "coordinates": [ring_json(&ring)]}),
                );
                set(&mut item, "bbox", json!([-170.0, -80.0, 170.0, -75.0]));
            }
            SpecialKind::NullGeometry => {
                set(&mut item, "geometry", Value::Null);
                remove(&mut item, "bbox");
            }
            SpecialKind::EmptyPolygon => {
                set(
                    &mut item,
                    "geometry",
                    json!({"type": "Polygon", "coordinates": []}),
                );
                remove(&mut item, "bbox");
            }
            SpecialKind::MissingDatetime => {
                if let Some(props) = properties(&mut item) {
                    props.shift_remove("datetime");
                }
            }
            SpecialKind::NullDatetime => set_property(&mut item, "datetime", Value::Null),
            SpecialKind::DateOnlyDatetime => {
                set_property(
                    &mut item,
                    "datetime",
                    json!(mid.format("%Y-%m-%d").to_string()),
                );
            }
            SpecialKind::NaiveDatetime => {
                set_property(
                    &mut item,
                    "datetime",
                    json!(mid.format("%Y-%m-%dT%H:%M:%S").to_string()),
                );
            }
            SpecialKind::OffsetDatetime => {
                let local = mid - Duration::hours(5);
                let text = format!("{}-05:00", local.format("%Y-%m-%dT%H:%M:%S"));
                set_property(&mut item, "datetime", json!(text));
            }
            SpecialKind::FractionalPercentValid => {
                let value = d.percent_valid.clamp(1, 99) as f64 + 0.5;
                set_property(&mut item, "percent_valid_pixels", json!(value));
            }
            SpecialKind::FractionalDateDt => {
                let value = d.date_dt as f64 + 0.000347;
                set_property(&mut item, "date_dt", json!(value));
            }
            SpecialKind::UnknownProperties => {
                let instruments = match d.platform {
                    Platform::Lt05 => json!(["tm"]),
                    Platform::Le07 => json!(["etm+"]),
                    Platform::Lc08 | Platform::Lc09 => json!(["oli", "tirs"]),
                    Platform::S1a | Platform::S1b => json!(["c-sar"]),
                    Platform::S2a | Platform::S2b => json!(["msi"]),
                };
                let cloud = (rng.range_f64(0.0, 60.0) * 2.0).round() / 2.0;
                set_property(
                    &mut item,
                    "sat:relative_orbit",
                    json!(rng.range_i64(1, 175)),
                );
                set_property(&mut item, "instruments", instruments);
                set_property(&mut item, "eo:cloud_cover", json!(cloud));
                set_property(&mut item, "processing:level", json!("L2"));
            }
            SpecialKind::DuplicateId => {}
        }
        (key, item)
    }
}

impl Iterator for Synth {
    type Item = SynthItem;

    fn next(&mut self) -> Option<SynthItem> {
        if self.next >= self.count {
            return None;
        }
        let item = self.item_at(self.next);
        self.next += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.count.saturating_sub(self.next)).unwrap_or(usize::MAX);
        (left, Some(left))
    }

    fn nth(&mut self, n: usize) -> Option<SynthItem> {
        self.next = self.next.saturating_add(n as u64).min(self.count);
        self.next()
    }
}

impl ExactSizeIterator for Synth {}

/// Write the items of `options` as `<items>/<key>` objects (pretty-printed JSON) and an inventory
/// CSV at `inventory` with the header `bucket,key,size,last_modified_date` and one row per item,
/// in item order: `bucket` as given, the key relative to `items`, the object size, and the
/// item's `updated` time as `last_modified_date` (`2023-04-12T08:11:03.123Z`).
///
/// At most 32 puts are in flight; the inventory is streamed, so memory stays bounded.
pub async fn write_dataset(
    options: &SynthOptions,
    items: &Location,
    bucket: &str,
    inventory: &Location,
) -> Result<SynthSummary> {
    let synth = Synth::new(options.clone());
    let mut inv = BufWriter::new(inventory.store().clone(), inventory.prefix().clone());
    let inv_err = |e: std::io::Error| Error::io(inventory.url(), e);
    inv.write_all(b"bucket,key,size,last_modified_date\n")
        .await
        .map_err(inv_err)?;

    let store: Arc<dyn ObjectStore> = items.store().clone();
    let mut puts = futures::stream::iter(synth)
        .map(|item| {
            let store = store.clone();
            let path = items.key(&item.key);
            let url = items.url_of(&item.key);
            async move {
                let body = serde_json::to_vec_pretty(&item.json).map_err(|e| Error::Parse {
                    location: url.clone(),
                    reason: e.to_string(),
                })?;
                let size = body.len() as u64;
                store
                    .put(&path, PutPayload::from(body))
                    .await
                    .map_err(|e| Error::store(url, e))?;
                Ok::<_, Error>((item, size))
            }
        })
        .buffered(PUT_CONCURRENCY);

    let mut summary = SynthSummary::default();
    while let Some(written) = puts.next().await {
        let (item, size) = written?;
        let row = format!(
            "{},{},{},{}\n",
            csv_field(bucket),
            csv_field(&item.key),
            size,
            last_modified(&item.json)
        );
        inv.write_all(row.as_bytes()).await.map_err(inv_err)?;
        summary.items += 1;
        summary.bytes += size;
        summary.inventory_rows += 1;
        if item.special.is_some() {
            summary.special_items += 1;
        }
    }
    inv.shutdown().await.map_err(inv_err)?;
    Ok(summary)
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The item's `updated` (else `created`) as an S3 inventory timestamp.
fn last_modified(item: &Value) -> String {
    let props = item.get("properties");
    let text = ["updated", "created"]
        .iter()
        .find_map(|k| props.and_then(|p| p.get(*k)).and_then(Value::as_str));
    let when = text
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    when.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn set(item: &mut Value, key: &str, value: Value) {
    if let Some(obj) = item.as_object_mut() {
        obj.insert(key.to_string(), value);
    }
}

fn remove(item: &mut Value, key: &str) {
    if let Some(obj) = item.as_object_mut() {
        obj.shift_remove(key);
    }
}

fn properties(item: &mut Value) -> Option<&mut Map<String, Value>> {
    item.get_mut("properties").and_then(Value::as_object_mut)
}

fn set_property(item: &mut Value, key: &str, value: Value) {
    if let Some(props) = properties(item) {
        props.insert(key.to_string(), value);
    }
}
