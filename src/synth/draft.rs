//! Regular items: the random draw ([`draft`]) and its JSON ([`render`]).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::STREAM_CONTENT;
use super::geom::{ring_bbox, ring_json, round2, round6, wrap_lon};
use super::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mission {
    Landsat,
    Sentinel1,
    Sentinel2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Platform {
    Lt05,
    Le07,
    Lc08,
    Lc09,
    S1a,
    S1b,
    S2a,
    S2b,
}

impl Platform {
    pub(super) fn code(self) -> &'static str {
        match self {
            Platform::Lt05 => "LT05",
            Platform::Le07 => "LE07",
            Platform::Lc08 => "LC08",
            Platform::Lc09 => "LC09",
            Platform::S1a => "S1A",
            Platform::S1b => "S1B",
            Platform::S2a => "S2A",
            Platform::S2b => "S2B",
        }
    }

    pub(super) fn mission(self) -> Mission {
        match self {
            Platform::Lt05 | Platform::Le07 | Platform::Lc08 | Platform::Lc09 => Mission::Landsat,
            Platform::S1a | Platform::S1b => Mission::Sentinel1,
            Platform::S2a | Platform::S2b => Mission::Sentinel2,
        }
    }

    fn folder(self) -> &'static str {
        match self {
            Platform::Lt05 => "landsatTM",
            Platform::Le07 => "landsatETM",
            Platform::Lc08 | Platform::Lc09 => "landsatOLI",
            Platform::S1a | Platform::S1b => "sentinel1",
            Platform::S2a | Platform::S2b => "sentinel2",
        }
    }

    /// Platforms that acquired in `year`, with weights.
    fn flying(year: i32) -> Vec<(Platform, u32)> {
        let mut v = Vec::new();
        if year <= 2011 {
            v.push((Platform::Lt05, 4));
        }
        if (1999..=2022).contains(&year) {
            v.push((Platform::Le07, if year < 2013 { 4 } else { 1 }));
        }
        if year >= 2013 {
            v.push((Platform::Lc08, 4));
        }
        if year >= 2022 {
            v.push((Platform::Lc09, 3));
        }
        if year >= 2015 {
            v.push((Platform::S1a, 3));
        }
        if (2016..=2021).contains(&year) {
            v.push((Platform::S1b, 2));
        }
        if year >= 2016 {
            v.push((Platform::S2a, 3));
        }
        if year >= 2017 {
            v.push((Platform::S2b, 2));
        }
        v
    }

    /// The platform of the second scene of a pair.
    fn partner(self, year: i32, rng: &mut Rng) -> Platform {
        let sibling = match self {
            Platform::Lc08 if year >= 2022 => Some(Platform::Lc09),
            Platform::Lc09 => Some(Platform::Lc08),
            Platform::S1a if (2016..=2021).contains(&year) => Some(Platform::S1b),
            Platform::S1b => Some(Platform::S1a),
            Platform::S2a if year >= 2017 => Some(Platform::S2b),
            Platform::S2b => Some(Platform::S2a),
            _ => None,
        };
        match sibling {
            Some(other) if rng.chance(0.3) => other,
            _ => self,
        }
    }
}

#[derive(Clone, Copy)]
struct Region {
    lat: (f64, f64),
    lon: (f64, f64),
}

/// Glaciated regions (latitude and longitude ranges of scene centres) with weights.
const REGIONS: [(Region, u32); 8] = [
    // Alaska
    (
        Region {
            lat: (59.5, 63.0),
            lon: (-153.0, -139.0),
        },
        20,
    ),
    // Greenland
    (
        Region {
            lat: (61.0, 79.0),
            lon: (-55.0, -22.0),
        },
        24,
    ),
    // Svalbard
    (
        Region {
            lat: (77.0, 79.5),
            lon: (11.0, 24.0),
        },
        7,
    ),
    // Patagonia
    (
        Region {
            lat: (-52.0, -46.5),
            lon: (-74.5, -72.5),
        },
        10,
    ),
    // Himalaya
    (
        Region {
            lat: (27.5, 30.0),
            lon: (80.0, 92.0),
        },
        12,
    ),
    // Antarctic Peninsula
    (
        Region {
            lat: (-70.0, -63.0),
            lon: (-68.0, -58.0),
        },
        10,
    ),
    // Iceland
    (
        Region {
            lat: (63.8, 65.2),
            lon: (-20.0, -15.0),
        },
        5,
    ),
    // Canadian Arctic
    (
        Region {
            lat: (76.0, 81.0),
            lon: (-90.0, -70.0),
        },
        10,
    ),
];

/// Everything that varies between regular items; [`render`] turns it into JSON.
#[derive(Clone, Debug)]
pub(super) struct Draft {
    pub(super) platform: Platform,
    pub(super) platform_2: Platform,
    pub(super) lat: f64,
    pub(super) lon: f64,
    /// Closed ring of 5 points (longitudes may exceed 180 for antimeridian kinds).
    pub(super) ring: Vec<[f64; 2]>,
    pub(super) t1: DateTime<Utc>,
    pub(super) t2: DateTime<Utc>,
    pub(super) date_dt: i64,
    pub(super) percent_valid: i64,
    pub(super) descending: bool,
    /// Landsat path/row, Sentinel-1 relative orbit, Sentinel-2 relative orbit.
    pub(super) track: (u32, u32),
    /// Sentinel-2 MGRS square letters / Sentinel-1 datatake ids and checksums.
    pub(super) codes: [u32; 4],
    /// Processing (Landsat: L1 production; Sentinel-2: product generation) times of both scenes.
    pub(super) processed: [DateTime<Utc>; 2],
    pub(super) created: DateTime<Utc>,
    pub(super) updated: DateTime<Utc>,
    pub(super) collection: bool,
    pub(super) kerchunk: bool,
    pub(super) whole_float_pvp: bool,
    pub(super) whole_float_dt: bool,
    pub(super) subdir: Option<&'static str>,
}

impl Draft {
    pub(super) fn mid(&self) -> DateTime<Utc> {
        self.t1 + (self.t2 - self.t1) / 2
    }

    /// Move the scene centre (the footprint is left alone); Landsat path/row follow.
    pub(super) fn relocate(&mut self, lat: f64, lon: f64) {
        self.lat = lat;
        self.lon = lon;
        if self.platform.mission() == Mission::Landsat {
            self.track = landsat_path_row(lat, lon, self.descending);
        }
    }

    /// Move every time of the item by `delta`.
    pub(super) fn shift(&mut self, delta: Duration) {
        self.t1 += delta;
        self.t2 += delta;
        self.processed = [self.processed[0] + delta, self.processed[1] + delta];
        self.created += delta;
        self.updated += delta;
    }

    fn id(&self) -> String {
        format!(
            "{}_X_{}_G0120V02_P{:03}",
            self.scene_id(0),
            self.scene_id(1),
            self.percent_valid
        )
    }

    fn scene_id(&self, which: usize) -> String {
        let (platform, t) = if which == 0 {
            (self.platform, self.t1)
        } else {
            (self.platform_2, self.t2)
        };
        let processed = self.processed[which.min(1)];
        match platform.mission() {
            Mission::Landsat => format!(
                "{}_L1TP_{:03}{:03}_{}_{}_02_T1",
                platform.code(),
                self.track.0,
                self.track.1,
                t.format("%Y%m%d"),
                processed.format("%Y%m%d")
            ),
            Mission::Sentinel1 => {
                let launch = if platform == Platform::S1b {
                    ymd(2016, 4, 25)
                } else {
                    ymd(2014, 4, 3)
                };
                let absolute = (t - launch).num_seconds().max(0) * 175 / (12 * 86_400) + 1;
                format!(
                    "{}_IW_SLC__1SDV_{}_{}_{:06}_{:06X}_{:04X}",
                    platform.code(),
                    t.format("%Y%m%dT%H%M%S"),
                    (t + Duration::seconds(27)).format("%Y%m%dT%H%M%S"),
                    absolute,
                    self.codes[which * 2] & 0xFF_FFFF,
                    self.codes[which * 2 + 1] & 0xFFFF
                )
            }
            Mission::Sentinel2 => format!(
                "{}_MSIL1C_{}_N{:04}_R{:03}_T{}_{}",
                platform.code(),
                t.format("%Y%m%dT%H%M%S"),
                s2_baseline(t.year()),
                self.track.0,
                self.mgrs_tile(),
                processed.format("%Y%m%dT%H%M%S")
            ),
        }
    }

    fn scene_frame(&self, which: usize) -> String {
        match self.platform.mission() {
            Mission::Landsat => format!("{:03}{:03}", self.track.0, self.track.1),
            Mission::Sentinel1 => format!(
                "{:03}_{:06X}",
                self.track.0,
                self.codes[which * 2] & 0xFF_FFFF
            ),
            Mission::Sentinel2 => format!("T{}", self.mgrs_tile()),
        }
    }

    fn mgrs_tile(&self) -> String {
        const BANDS: &[u8] = b"CDEFGHJKLMNPQRSTUVWX";
        const COLS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
        const ROWS: &[u8] = b"ABCDEFGHJKLMNPQRSTUV";
        let band = (((self.lat + 80.0) / 8.0).floor().clamp(0.0, 19.0)) as usize;
        let col = COLS[self.codes[0] as usize % COLS.len()];
        let row = ROWS[self.codes[1] as usize % ROWS.len()];
        format!(
            "{:02}{}{}{}",
            utm_zone(self.lon),
            char::from(BANDS[band]),
            char::from(col),
            char::from(row)
        )
    }

    fn epsg(&self) -> u32 {
        if self.lat >= 72.0 {
            3413
        } else if self.lat <= -72.0 {
            3031
        } else if self.lat >= 0.0 {
            32600 + utm_zone(self.lon)
        } else {
            32700 + utm_zone(self.lon)
        }
    }
}

/// Approximate WRS-2 path/row of a scene centre (path 1 crosses the equator near −64.6°,
/// paths step 360/233° westwards; row 60 is the equator on the descending, daytime pass).
fn landsat_path_row(lat: f64, lon: f64, descending: bool) -> (u32, u32) {
    let path = ((-64.6 - lon) / (360.0 / 233.0)).rem_euclid(233.0) as u32 + 1;
    let row = (60.0 - lat * 60.0 / 81.0).clamp(1.0, 248.0) as u32;
    let row = if descending { row } else { 248 - row.min(247) };
    (path, row)
}

fn s2_baseline(year: i32) -> u32 {
    match year {
        ..=2016 => 204,
        2017 => 205,
        2018 => 206,
        2019..=2020 => 209,
        2021 => 300,
        2022..=2023 => 400,
        _ => 510,
    }
}

fn utm_zone(lon: f64) -> u32 {
    (((wrap_lon(lon) + 180.0) / 6.0).floor() as i64).clamp(0, 59) as u32 + 1
}

/// The regular item `index` of `seed`, before rendering.
pub(super) fn draft(seed: u64, index: u64) -> Draft {
    let mut rng = Rng::for_item(seed, index, STREAM_CONTENT);

    let region = rng.weighted(&REGIONS);
    let lat = rng.range_f64(region.lat.0, region.lat.1);
    let lon = rng.range_f64(region.lon.0, region.lon.1);

    let years: Vec<(i32, u32)> = (1985..=2025)
        .map(|y| (y, ((y - 1983) * (y - 1983)) as u32))
        .collect();
    let year = rng.weighted(&years);
    let platform = rng.weighted(&Platform::flying(year));
    let platform_2 = platform.partner(year, &mut rng);
    let mission = platform.mission();
    let descending = match mission {
        Mission::Landsat => rng.chance(0.9),
        Mission::Sentinel1 => rng.chance(0.5),
        Mission::Sentinel2 => true,
    };

    // Repeat cycles: Landsat 16 days, Sentinel-1 6/12 days, Sentinel-2 5/10 days; short pairs
    // are the most common.
    let skew = rng.unit() * rng.unit();
    let date_dt = match mission {
        Mission::Landsat => 16 * (1 + (skew * 34.0) as i64),
        Mission::Sentinel1 => 6 * (1 + (skew * 60.0) as i64),
        Mission::Sentinel2 => 5 * (1 + (skew * 80.0) as i64),
    };

    // Mid date in `year` (never past 30 December, so the pair's mid time stays in the year).
    let year_start = ymd(year, 1, 1);
    let days = (ymd(year + 1, 1, 1) - year_start).num_days();
    let doy = rng.range_i64(0, days - 2);
    let local_hours = match (mission, descending) {
        (Mission::Sentinel1, true) => rng.range_f64(5.5, 6.5),
        (Mission::Sentinel1, false) => rng.range_f64(17.5, 18.5),
        (_, true) => rng.range_f64(10.0, 11.0),
        (_, false) => rng.range_f64(21.5, 22.5),
    };
    let utc_seconds = ((local_hours - lon / 15.0).rem_euclid(24.0) * 3600.0) as i64;
    let t1 = year_start
        + Duration::days(doy - date_dt / 2)
        + Duration::seconds(utc_seconds)
        + Duration::microseconds(rng.range_i64(0, 999_999));
    let t2 =
        t1 + Duration::days(date_dt) + Duration::microseconds(rng.range_i64(-2_000_000, 2_000_000));

    let track = match mission {
        Mission::Landsat => landsat_path_row(lat, lon, descending),
        Mission::Sentinel1 | Mission::Sentinel2 => (rng.range_i64(1, 175) as u32, 0),
    };
    let codes = [0; 4].map(|_| rng.next_u64() as u32);

    let processed = [t1, t2].map(|t| match mission {
        Mission::Landsat if t < ymd(2020, 9, 1) => {
            ymd(2020, 9, 1)
                + Duration::days(rng.range_i64(0, 600))
                + Duration::seconds(rng.range_i64(0, 86_399))
        }
        Mission::Landsat => t + Duration::days(rng.range_i64(10, 40)),
        _ => t + Duration::seconds(rng.range_i64(3_600, 20_000)),
    });

    // ITS_LIVE v2 was produced from 2022 on; recent pairs a few weeks after acquisition.
    let campaign = ymd(2022, 1, 1) + Duration::days(rng.range_i64(0, 900));
    let created = (t2 + Duration::days(rng.range_i64(3, 90))).max(campaign)
        + Duration::seconds(rng.range_i64(0, 86_399))
        + Duration::microseconds(rng.range_i64(0, 999_999));
    let cap = ymd(2026, 9, 30);
    let updated = if rng.chance(0.3) {
        let later = created
            + Duration::days(rng.range_i64(1, 500))
            + Duration::seconds(rng.range_i64(0, 86_399));
        if later > cap { created } else { later }
    } else {
        created
    };

    let ring = footprint(&mut rng, lat, lon, mission);
    Draft {
        platform,
        platform_2,
        lat,
        lon,
        ring,
        t1,
        t2,
        date_dt,
        percent_valid: rng.range_i64(1, 100),
        descending,
        track,
        codes,
        processed,
        created,
        updated,
        collection: !rng.chance(0.1),
        kerchunk: rng.chance(0.3),
        whole_float_pvp: rng.chance(0.1),
        whole_float_dt: rng.chance(0.1),
        subdir: None,
    }
}

/// A scene footprint: a rectangle of the mission's size in km, rotated by a few degrees,
/// projected around the centre (a closed, counter-clockwise ring of 5 points).
pub(super) fn footprint(rng: &mut Rng, lat: f64, lon: f64, mission: Mission) -> Vec<[f64; 2]> {
    let (half_w, half_h, max_rot) = match mission {
        Mission::Landsat => (92.5, 90.0, 14.0),
        Mission::Sentinel1 => (125.0, 85.0, 14.0),
        Mission::Sentinel2 => (55.0, 55.0, 4.0),
    };
    let scale = rng.range_f64(0.95, 1.05);
    let (half_w, half_h) = (half_w * scale, half_h * scale);
    let rot = rng.range_f64(-max_rot, max_rot).to_radians();
    let (sin, cos) = rot.sin_cos();
    let corners = [
        (-half_w, -half_h),
        (half_w, -half_h),
        (half_w, half_h),
        (-half_w, half_h),
    ];
    let mut ring: Vec<[f64; 2]> = corners
        .iter()
        .map(|&(x, y)| {
            let (x, y) = (x * cos - y * sin, x * sin + y * cos);
            let clat = lat + y / KM_PER_DEGREE;
            let clon = lon + x / (KM_PER_DEGREE * clat.to_radians().cos());
            [round6(clon), round6(clat)]
        })
        .collect();
    ring.push(ring[0]);
    ring
}

const KM_PER_DEGREE: f64 = 111.32;

fn tile_name(lat: f64, lon: f64) -> String {
    let lat10 = (lat / 10.0).floor() as i64 * 10;
    let lon10 = (wrap_lon(lon) / 10.0).floor() as i64 * 10;
    format!(
        "{}{:02}{}{:03}",
        if lat10 >= 0 { 'N' } else { 'S' },
        lat10.abs(),
        if lon10 >= 0 { 'E' } else { 'W' },
        lon10.abs()
    )
}

fn iso_z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The item JSON and its key.
pub(super) fn render(d: &Draft) -> (String, Value) {
    let id = d.id();
    let dir = format!(
        "velocity_image_pair/{}/v02/{}",
        d.platform.folder(),
        tile_name(d.lat, d.lon)
    );
    let key = match d.subdir {
        Some(sub) => format!("{dir}/{sub}/{id}.stac.json"),
        None => format!("{dir}/{id}.stac.json"),
    };
    let mid = d.mid();
    let http = "https://its-live-data.s3.amazonaws.com";

    let mut props = Map::new();
    props.insert("datetime".into(), json!(iso_z(mid)));
    props.insert("start_datetime".into(), json!(iso_z(d.t1)));
    props.insert("end_datetime".into(), json!(iso_z(d.t2)));
    props.insert(
        "mid_datetime".into(),
        json!(mid.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
    );
    props.insert("platform".into(), json!(d.platform.code()));
    props.insert(
        "percent_valid_pixels".into(),
        if d.whole_float_pvp {
            json!(d.percent_valid as f64)
        } else {
            json!(d.percent_valid)
        },
    );
    props.insert(
        "date_dt".into(),
        if d.whole_float_dt {
            json!(d.date_dt as f64)
        } else {
            json!(d.date_dt)
        },
    );
    props.insert("proj:code".into(), json!(format!("EPSG:{}", d.epsg())));
    props.insert(
        "sat:orbit_state".into(),
        json!(if d.descending {
            "descending"
        } else {
            "ascending"
        }),
    );
    props.insert("version".into(), json!("002"));
    props.insert("scene_1_id".into(), json!(d.scene_id(0)));
    props.insert("scene_2_id".into(), json!(d.scene_id(1)));
    props.insert("scene_1_frame".into(), json!(d.scene_frame(0)));
    props.insert("scene_2_frame".into(), json!(d.scene_frame(1)));
    props.insert("latitude".into(), json!(round2(d.lat)));
    props.insert("longitude".into(), json!(round2(wrap_lon(d.lon))));
    props.insert("created".into(), json!(iso_z(d.created)));
    props.insert("updated".into(), json!(iso_z(d.updated)));

    let mut assets = Map::new();
    assets.insert(
        "data".into(),
        json!({
            "href": format!("s3://its-live-data/{dir}/{id}.nc"),
            "title": "Velocity image pair (NetCDF)",
            "type": "application/netcdf",
            "roles": ["data"],
        }),
    );
    assets.insert(
        "thumbnail".into(),
        json!({
            "href": format!("{http}/{dir}/{id}_thumb.png"),
            "title": "Thumbnail",
            "type": "image/png",
            "roles": ["thumbnail"],
        }),
    );
    if d.kerchunk {
        assets.insert(
            "kerchunk".into(),
            json!({
                "href": format!("s3://its-live-data/{dir}/{id}.kerchunk.json"),
                "type": "application/json",
                "roles": ["index"],
            }),
        );
    }

    let mut item = Map::new();
    item.insert("type".into(), json!("Feature"));
    item.insert("stac_version".into(), json!("1.0.0"));
    item.insert(
        "stac_extensions".into(),
        json!([
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json"
        ]),
    );
    item.insert("id".into(), json!(id));
    if d.collection {
        item.insert("collection".into(), json!("itslive-granules"));
    }
    item.insert("bbox".into(), json!(ring_bbox(&d.ring)));
    item.insert(
        "geometry".into(),
        json!({"type": "Polygon", "coordinates": [ring_json(&d.ring)]}),
    );
    item.insert("properties".into(), Value::Object(props));
    item.insert(
        "links".into(),
        json!([
            {"rel": "self", "href": format!("{http}/{key}"), "type": "application/json"},
            {"rel": "parent", "href": format!("{http}/velocity_image_pair/{}/v02/collection.json", d.platform.folder()), "type": "application/json"},
        ]),
    );
    item.insert("assets".into(), Value::Object(assets));
    (key, Value::Object(item))
}

pub(super) fn ymd(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
