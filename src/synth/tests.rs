use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore};
use serde_json::{Map, Value};

use super::*;

fn generate(seed: u64, count: u64) -> Vec<SynthItem> {
    Synth::new(SynthOptions::new(seed, count)).collect()
}

fn props(item: &SynthItem) -> &Map<String, Value> {
    item.json["properties"]
        .as_object()
        .expect("properties object")
}

fn utc(value: &Value) -> DateTime<Utc> {
    let text = value.as_str().expect("timestamp string");
    assert!(text.ends_with('Z'), "{text} is not UTC");
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339 timestamp")
        .with_timezone(&Utc)
}

fn points(ring: &Value) -> Vec<[f64; 2]> {
    ring.as_array()
        .expect("ring array")
        .iter()
        .map(|p| {
            let p = p.as_array().expect("position");
            assert_eq!(p.len(), 2);
            [p[0].as_f64().expect("lon"), p[1].as_f64().expect("lat")]
        })
        .collect()
}

fn bbox(item: &SynthItem) -> [f64; 4] {
    let b = item.json["bbox"].as_array().expect("bbox array");
    assert_eq!(b.len(), 4);
    [0, 1, 2, 3].map(|i| b[i].as_f64().expect("bbox number"))
}

fn assert_closed(ring: &[[f64; 2]]) {
    assert!(ring.len() >= 4, "ring too short: {ring:?}");
    assert_eq!(ring.first(), ring.last(), "ring not closed: {ring:?}");
}

#[test]
fn same_seed_gives_identical_items() {
    let a = generate(7, 400);
    let b = generate(7, 400);
    assert_eq!(a.len(), 400);
    assert_eq!(a, b);
    let text = |items: &[SynthItem]| -> Vec<String> {
        items
            .iter()
            .map(|i| serde_json::to_string(&i.json).expect("serialise"))
            .collect()
    };
    assert_eq!(text(&a), text(&b));

    // Random access and `nth` agree with iteration.
    let synth = Synth::new(SynthOptions::new(7, 400));
    for i in [0u64, 7, 41, 279, 399] {
        assert_eq!(synth.item_at(i), a[i as usize]);
    }
    let mut iter = Synth::new(SynthOptions::new(7, 400));
    assert_eq!(iter.len(), 400);
    assert_eq!(iter.nth(279).as_ref(), Some(&a[279]));
    assert_eq!(iter.len(), 120);
}

#[test]
fn different_seeds_differ() {
    let ids = |seed| -> BTreeSet<String> {
        generate(seed, 50)
            .iter()
            .map(|i| i.json["id"].as_str().expect("id").to_string())
            .collect()
    };
    let a = ids(1);
    let b = ids(2);
    assert!(a.len() >= 49);
    assert!(a.is_disjoint(&b), "seeds 1 and 2 share ids");
}

#[test]
fn every_kind_appears_at_its_forced_index() {
    let all = generate(42, 300);
    for kind in SpecialKind::ALL {
        let index = kind.forced_index();
        assert!(index < FORCED_WINDOW);
        let item = &all[index as usize];
        assert_eq!(item.special, Some(kind), "item {index}");
        check_kind(&all, item, kind);
    }
    let positions: Vec<u64> = SpecialKind::ALL.iter().map(|k| k.forced_index()).collect();
    assert_eq!(positions[0], 7);
    assert_eq!(positions[16], 279);

    for seed in [0, 1, 99, u64::MAX] {
        let all = generate(seed, 300);
        let kinds: BTreeSet<SpecialKind> = all.iter().filter_map(|i| i.special).collect();
        assert_eq!(kinds.len(), SpecialKind::ALL.len(), "seed {seed}");
        for item in all.iter().filter(|i| i.special.is_some()) {
            let kind = item.special.expect("special");
            check_kind(&all, item, kind);
        }
    }
}

fn check_kind(all: &[SynthItem], item: &SynthItem, kind: SpecialKind) {
    let p = props(item);
    let geometry = &item.json["geometry"];
    match kind {
        SpecialKind::PointGeometry => {
            assert_eq!(geometry["type"], "Point");
            let b = bbox(item);
            assert_eq!((b[0], b[1]), (b[2], b[3]));
            assert_eq!(geometry["coordinates"][0].as_f64(), Some(b[0]));
        }
        SpecialKind::MultiPolygon => {
            assert_eq!(geometry["type"], "MultiPolygon");
            let parts = geometry["coordinates"].as_array().expect("parts");
            assert_eq!(parts.len(), 2);
            for part in parts {
                let ring = points(&part[0]);
                assert_eq!(ring.len(), 5);
                assert_closed(&ring);
            }
        }
        SpecialKind::AntimeridianSplit => {
            assert_eq!(geometry["type"], "MultiPolygon");
            let parts = geometry["coordinates"].as_array().expect("parts");
            assert_eq!(parts.len(), 2);
            let west = points(&parts[0][0]);
            let east = points(&parts[1][0]);
            assert_closed(&west);
            assert_closed(&east);
            assert!(west.iter().all(|p| p[0] > 170.0 && p[0] <= 180.0));
            assert!(east.iter().all(|p| p[0] >= -180.0 && p[0] < -170.0));
            assert!(west.iter().filter(|p| p[0] == 180.0).count() >= 2);
            assert!(east.iter().filter(|p| p[0] == -180.0).count() >= 2);
            let b = bbox(item);
            assert!(b[0] > b[2], "RFC 7946 antimeridian bbox {b:?}");
            assert!(b[1] < -75.0);
        }
        SpecialKind::AntimeridianWrapped => {
            assert_eq!(geometry["type"], "Polygon");
            let ring = points(&geometry["coordinates"][0]);
            assert_eq!(ring.len(), 5);
            assert_closed(&ring);
            assert!(ring.iter().all(|p| (-180.0..=180.0).contains(&p[0])));
            assert!(ring.iter().any(|p| p[0] > 170.0));
            assert!(ring.iter().any(|p| p[0] < -170.0));
        }
        SpecialKind::SouthPoleRing => {
            let ring = points(&geometry["coordinates"][0]);
            assert_closed(&ring);
            assert!(ring.iter().all(|p| p[1] == -88.5));
            assert!(ring.iter().any(|p| p[0] == -180.0));
            assert!(ring.iter().any(|p| p[0] == 180.0));
            assert_eq!(bbox(item), [-180.0, -90.0, 180.0, -88.5]);
        }
        SpecialKind::WideLongitude => {
            let ring = points(&geometry["coordinates"][0]);
            assert_closed(&ring);
            assert_eq!(bbox(item), [-170.0, -80.0, 170.0, -75.0]);
        }
        SpecialKind::NullGeometry => {
            assert!(
                item.json
                    .as_object()
                    .expect("item")
                    .contains_key("geometry")
            );
            assert!(geometry.is_null());
            assert!(item.json.get("bbox").is_none());
        }
        SpecialKind::EmptyPolygon => {
            assert_eq!(
                geometry,
                &serde_json::json!({"type": "Polygon", "coordinates": []})
            );
            assert!(item.json.get("bbox").is_none());
        }
        SpecialKind::MissingDatetime => {
            assert!(!p.contains_key("datetime"));
            assert!(utc(&p["start_datetime"]) < utc(&p["end_datetime"]));
        }
        SpecialKind::NullDatetime => {
            assert!(p["datetime"].is_null());
            assert!(utc(&p["start_datetime"]) < utc(&p["end_datetime"]));
        }
        SpecialKind::DateOnlyDatetime => {
            let text = p["datetime"].as_str().expect("datetime");
            assert_eq!(text.len(), 10);
            assert!(NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok());
        }
        SpecialKind::NaiveDatetime => {
            let text = p["datetime"].as_str().expect("datetime");
            assert!(NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_ok());
            assert!(DateTime::parse_from_rfc3339(text).is_err());
        }
        SpecialKind::OffsetDatetime => {
            let text = p["datetime"].as_str().expect("datetime");
            let local: DateTime<FixedOffset> =
                DateTime::parse_from_rfc3339(text).expect("offset datetime");
            assert_eq!(local.offset().local_minus_utc(), -5 * 3600);
            assert!(text[4..].starts_with("-12-31T22:"), "{text}");
            let utc_year = local.with_timezone(&Utc).year();
            assert_eq!(utc_year, local.year() + 1);
            assert!(utc_year <= 2025);
            let mid = p["mid_datetime"].as_str().expect("mid_datetime");
            assert!(mid.starts_with(&format!("{utc_year}-01-01T03:")), "{mid}");
            let start = utc(&p["start_datetime"]);
            let end = utc(&p["end_datetime"]);
            assert!(start <= local && local <= end);
        }
        SpecialKind::FractionalPercentValid => {
            let v = &p["percent_valid_pixels"];
            assert!(v.is_f64());
            assert_eq!(v.as_f64().expect("number").fract(), 0.5);
        }
        SpecialKind::FractionalDateDt => {
            let v = p["date_dt"].as_f64().expect("number");
            assert!(p["date_dt"].is_f64());
            assert!((v.fract() - 0.000347).abs() < 1e-9, "{v}");
        }
        SpecialKind::UnknownProperties => {
            assert!(p["sat:relative_orbit"].is_u64());
            assert!(p["instruments"].as_array().is_some_and(|a| !a.is_empty()));
            assert!(p["eo:cloud_cover"].is_f64());
            assert_eq!(p["processing:level"], "L2");
        }
        SpecialKind::DuplicateId => {
            let id = &item.json["id"];
            let original = all[..item.index as usize]
                .iter()
                .find(|o| &o.json["id"] == id)
                .expect("an earlier item with the same id");
            assert_eq!(original.special, None);
            assert_ne!(original.key, item.key);
            assert!(item.key.contains("/reprocessed/"));
            let q = props(original);
            assert_eq!(q["created"], p["created"]);
            assert!(utc(&p["updated"]) > utc(&q["updated"]));
            assert_eq!(original.json["geometry"], item.json["geometry"]);
        }
    }
}

const PLATFORMS: [&str; 8] = ["LT05", "LE07", "LC08", "LC09", "S1A", "S1B", "S2A", "S2B"];

#[test]
fn regular_items_have_the_schema_properties() {
    let all = generate(42, 800);
    let regular: Vec<&SynthItem> = all.iter().filter(|i| i.special.is_none()).collect();
    assert!(regular.len() > 700);
    let (mut no_collection, mut pvp_float, mut pvp_int, mut dt_float, mut kerchunk) =
        (0, 0, 0, 0, 0);
    let mut platforms = BTreeSet::new();
    for item in &regular {
        let j = item.json.as_object().expect("item object");
        assert_eq!(j["type"], "Feature");
        assert_eq!(j["stac_version"], "1.0.0");
        assert!(
            j["stac_extensions"]
                .as_array()
                .expect("extensions")
                .iter()
                .all(Value::is_string)
        );
        let id = j["id"].as_str().expect("id");
        assert_eq!(
            item.key.rsplit('/').next(),
            Some(format!("{id}.stac.json").as_str())
        );
        match j.get("collection") {
            None => no_collection += 1,
            Some(c) => assert_eq!(c, "itslive-granules"),
        }
        assert!(j["geometry"].is_object());
        bbox(item);
        let links = j["links"].as_array().expect("links");
        assert_eq!(links[0]["rel"], "self");
        assert!(
            links[0]["href"]
                .as_str()
                .expect("href")
                .ends_with(&item.key)
        );
        let assets = j["assets"].as_object().expect("assets");
        assert!(
            assets["data"]["href"]
                .as_str()
                .expect("href")
                .ends_with(".nc")
        );
        assert!(assets.contains_key("thumbnail"));
        kerchunk += usize::from(assets.contains_key("kerchunk"));

        let p = props(item);
        for key in [
            "datetime",
            "start_datetime",
            "end_datetime",
            "mid_datetime",
            "platform",
            "percent_valid_pixels",
            "date_dt",
            "proj:code",
            "sat:orbit_state",
            "version",
            "scene_1_id",
            "scene_2_id",
            "scene_1_frame",
            "scene_2_frame",
            "latitude",
            "longitude",
            "created",
            "updated",
        ] {
            assert!(p.contains_key(key), "{id} lacks {key}");
        }
        let datetime = utc(&p["datetime"]);
        let start = utc(&p["start_datetime"]);
        let end = utc(&p["end_datetime"]);
        let created = utc(&p["created"]);
        let updated = utc(&p["updated"]);
        assert!(start < datetime && datetime < end, "{id}");
        assert!(end <= created && created <= updated, "{id}");
        assert!(updated.year() <= 2026);
        assert!((1985..=2025).contains(&datetime.year()), "{id}");
        let mid = NaiveDateTime::parse_from_str(
            p["mid_datetime"].as_str().expect("mid"),
            "%Y-%m-%dT%H:%M:%S%.f",
        )
        .expect("naive mid_datetime");
        assert_eq!(mid.and_utc(), datetime);

        let platform = p["platform"].as_str().expect("platform");
        assert!(PLATFORMS.contains(&platform), "{platform}");
        assert!(id.starts_with(platform));
        platforms.insert(platform.to_string());

        let pvp = &p["percent_valid_pixels"];
        let pvp_value = pvp.as_f64().expect("percent_valid_pixels number");
        assert_eq!(pvp_value.fract(), 0.0);
        assert!((1.0..=100.0).contains(&pvp_value));
        assert!(id.ends_with(&format!("_P{:03}", pvp_value as i64)));
        if pvp.is_f64() {
            pvp_float += 1;
        } else {
            assert!(pvp.is_u64());
            pvp_int += 1;
        }
        let dt = &p["date_dt"];
        let dt_value = dt.as_f64().expect("date_dt number");
        assert_eq!(dt_value.fract(), 0.0);
        assert!((5.0..=560.0).contains(&dt_value));
        dt_float += usize::from(dt.is_f64());
        let span = (end - start).num_seconds() as f64 / 86_400.0;
        assert!(
            (span - dt_value).abs() < 0.001,
            "{id}: {span} vs {dt_value}"
        );

        assert!(
            p["proj:code"]
                .as_str()
                .expect("proj:code")
                .starts_with("EPSG:")
        );
        assert!(
            ["ascending", "descending"].contains(&p["sat:orbit_state"].as_str().expect("orbit"))
        );
        assert_eq!(p["version"], "002");
        for key in ["scene_1_id", "scene_2_id", "scene_1_frame", "scene_2_frame"] {
            assert!(!p[key].as_str().expect("scene string").is_empty());
        }
        assert!(id.contains(p["scene_1_id"].as_str().expect("scene_1_id")));
        assert!(p["latitude"].is_f64() && p["longitude"].is_f64());
    }
    let n = regular.len();
    assert!(
        no_collection * 100 > n * 4 && no_collection * 100 < n * 20,
        "{no_collection}/{n}"
    );
    assert!(pvp_float > 0 && pvp_int > 0 && dt_float > 0 && kerchunk > 0);
    assert!(platforms.len() >= 6, "{platforms:?}");
}

#[test]
fn regular_footprints_are_closed_quadrilaterals_of_one_to_three_degrees() {
    for item in generate(3, 1000).iter().filter(|i| i.special.is_none()) {
        let geometry = &item.json["geometry"];
        assert_eq!(geometry["type"], "Polygon");
        let rings = geometry["coordinates"].as_array().expect("rings");
        assert_eq!(rings.len(), 1);
        let ring = points(&rings[0]);
        assert_eq!(ring.len(), 5);
        assert_closed(&ring);
        let b = ring_bbox(&ring);
        assert_eq!(bbox(item), b);
        let lat_span = b[3] - b[1];
        let lon_span = b[2] - b[0];
        assert!(
            (0.8..=3.0).contains(&lat_span),
            "{}: lat span {lat_span}",
            item.key
        );
        // 100–300 km east-west: 1–3 degrees at the equator, more towards the poles.
        let poleward = b[1].abs().max(b[3].abs());
        let east_west_km = lon_span * 111.32 * poleward.to_radians().cos();
        assert!(
            (80.0..=330.0).contains(&east_west_km) && lon_span >= 0.8,
            "{}: lon span {lon_span} ({east_west_km} km)",
            item.key
        );
        // Wider in degrees of longitude than of latitude at these latitudes, as projected scenes are.
        assert!(lon_span > lat_span * 0.9, "{}", item.key);
        assert!(b[0] >= -180.0 && b[2] <= 180.0 && b[1] > -85.0 && b[3] < 85.0);
        let p = props(item);
        let (lat, lon) = (
            p["latitude"].as_f64().expect("lat"),
            p["longitude"].as_f64().expect("lon"),
        );
        assert!(
            lat > b[1] && lat < b[3] && lon > b[0] && lon < b[2],
            "{}",
            item.key
        );
        // Counter-clockwise exterior ring (RFC 7946), i.e. positive shoelace area.
        let area: f64 = ring
            .windows(2)
            .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
            .sum();
        assert!(area > 0.0);
    }
}

#[test]
fn years_are_weighted_to_recent_ones() {
    let years: Vec<i32> = generate(11, 2000)
        .iter()
        .filter(|i| i.special.is_none())
        .map(|i| utc(&props(i)["datetime"]).year())
        .collect();
    assert!(years.iter().all(|y| (1985..=2025).contains(y)));
    let recent = years.iter().filter(|y| **y >= 2015).count();
    assert!(recent * 2 > years.len(), "{recent}/{}", years.len());
    assert!(years.iter().any(|y| *y < 2000));
}

#[test]
fn keys_are_unique_and_follow_the_bucket_layout() {
    let all = generate(42, 2000);
    let keys: HashSet<&str> = all.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys.len(), all.len());
    for item in &all {
        let parts: Vec<&str> = item.key.split('/').collect();
        assert_eq!(parts[0], "velocity_image_pair");
        assert!(
            [
                "landsatOLI",
                "landsatETM",
                "landsatTM",
                "sentinel1",
                "sentinel2"
            ]
            .contains(&parts[1]),
            "{}",
            item.key
        );
        assert_eq!(parts[2], "v02");
        let tile = parts[3].as_bytes();
        assert_eq!(tile.len(), 7, "{}", item.key);
        assert!(matches!(tile[0], b'N' | b'S') && matches!(tile[3], b'E' | b'W'));
        assert!(item.key.ends_with(".stac.json"));
        let expected_depth = if item.special == Some(SpecialKind::DuplicateId) {
            6
        } else {
            5
        };
        assert_eq!(parts.len(), expected_depth, "{}", item.key);
    }
}

#[test]
fn special_fraction_controls_the_share_of_edge_cases() {
    let share = |fraction: f64, count: u64| {
        let options = SynthOptions::new(9, count).with_special_fraction(fraction);
        let special = Synth::new(options).filter(|i| i.special.is_some()).count();
        special as f64 / count as f64
    };
    assert_eq!(share(0.0, 400), 0.0);
    assert_eq!(share(f64::NAN, 100), 0.0);
    let default = share(0.05, 3000);
    assert!((0.035..=0.065).contains(&default), "{default}");
    let half = share(0.5, 2000);
    assert!((0.45..=0.55).contains(&half), "{half}");
    // Everything special: duplicates have no regular source and fall back to another kind.
    let all = Synth::new(SynthOptions::new(9, 400).with_special_fraction(1.0)).collect::<Vec<_>>();
    assert!(all.iter().all(|i| i.special.is_some()));
    assert!(
        all.iter()
            .all(|i| i.special != Some(SpecialKind::DuplicateId))
    );
    // ~25 of each other kind, drawn from every mission and region: all well formed.
    for item in &all {
        check_kind(&all, item, item.special.expect("special"));
    }
}

#[tokio::test]
async fn write_dataset_writes_items_and_inventory() {
    let options = SynthOptions::new(5, 320);
    let items = Location::parse("memory://synth-test/items").expect("items location");
    let inventory =
        Location::parse("memory://synth-test/inventory/inventory.csv").expect("inventory location");
    let summary = write_dataset(&options, &items, "its-live-data", &inventory)
        .await
        .expect("write_dataset");
    let expected: Vec<SynthItem> = Synth::new(options.clone()).collect();
    assert_eq!(summary.items, 320);
    assert_eq!(summary.inventory_rows, 320);
    assert_eq!(
        summary.special_items,
        expected.iter().filter(|i| i.special.is_some()).count() as u64
    );

    let listed: Vec<ObjectMeta> = items
        .store()
        .list(Some(items.prefix()))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(listed.len(), 320);
    assert_eq!(summary.bytes, listed.iter().map(|m| m.size).sum::<u64>());

    let text = inventory.get_bytes().await.expect("inventory");
    let text = std::str::from_utf8(&text).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "bucket,key,size,last_modified_date");
    assert_eq!(lines.len(), 321);
    for (line, item) in lines[1..].iter().zip(&expected) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(fields[0], "its-live-data");
        assert_eq!(fields[1], item.key);
        let stored = items
            .join(&item.key)
            .get_bytes()
            .await
            .expect("item object");
        assert_eq!(fields[2], stored.len().to_string());
        let parsed: Value = serde_json::from_slice(&stored).expect("item JSON");
        assert_eq!(parsed, item.json);
        let modified = DateTime::parse_from_rfc3339(fields[3]).expect("last_modified_date");
        assert!(fields[3].ends_with('Z'));
        if let Some(updated) = props(item).get("updated") {
            assert_eq!(modified.timestamp_millis(), utc(updated).timestamp_millis());
        }
    }
}
