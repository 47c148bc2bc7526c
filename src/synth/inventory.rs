//! Keys-only S3 Inventories at production scale, for the daily-loop benchmarks: two "days" of
//! ITS_LIVE-like `.stac.json` keys (the second with a fraction of keys added, changed and
//! removed), each as an AWS `manifest.json` with gzipped CSV (or Parquet) shards, and a hash
//! index holding the ids of the first day.
//!
//! Keys are a pure function of their number (no item bodies are written), so 43 M keys cost
//! a few bytes of state; shards are written on all cores.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::error::{Error, Result};
use crate::hash_index::{IdHash, hash_id, write_index};
use crate::store::Location;

/// Shard file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardFormat {
    /// Header-less, fully quoted CSV, gzip (what AWS writes for `CSV`).
    CsvGz,
    /// Parquet with `bucket`, `key`, `size`, `last_modified_date` (AWS `Parquet`).
    Parquet,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct InventoryGen {
    /// Keys of day 1.
    pub keys: u64,
    /// Data files per day.
    pub shards: u32,
    /// Share of keys added, of keys changed (size and date) and of keys removed on day 2.
    pub churn: f64,
    /// Data file format.
    pub format: ShardFormat,
    /// Bucket named in the rows.
    pub bucket: String,
}

/// What was written.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InventoryGenSummary {
    /// `manifest.json` of day 1.
    pub day1: String,
    /// `manifest.json` of day 2.
    pub day2: String,
    /// The hash index of day 1's ids.
    pub index: String,
    /// Keys of day 1.
    pub keys_day1: u64,
    /// Keys of day 2.
    pub keys_day2: u64,
    /// Keys added on day 2.
    pub added: u64,
    /// Keys whose size and date changed on day 2.
    pub changed: u64,
    /// Keys removed on day 2.
    pub removed: u64,
}

const PLATFORMS: [(&str, &str); 6] = [
    ("landsatOLI", "LC08"),
    ("landsatOLI", "LC09"),
    ("landsatETM", "LE07"),
    ("sentinel2", "S2A"),
    ("sentinel1", "S1A"),
    ("sentinel2", "S2B"),
];

/// The id of key number `i` (unique for every `i` below 2^40).
pub fn key_id(i: u64) -> String {
    let (_, code) = PLATFORMS[(i % 6) as usize];
    let path = i % 233;
    let row = (i / 233) % 248;
    let day = i / (233 * 248);
    let d1 = 20_130_101 + (day % 9000);
    let d2 = d1 + 16 + (i % 7);
    format!(
        "{code}_L1TP_{path:03}{row:03}_{d1}_{:08}_02_T1_X_{code}_L1TP_{path:03}{row:03}_{d2}_{:08}_02_T1_G0120V02_P{:03}",
        d1 + 3,
        d2 + 5,
        i % 100
    )
}

/// The key of key number `i`.
pub fn key_of(i: u64) -> String {
    let (folder, _) = PLATFORMS[(i % 6) as usize];
    let lat = 10 * ((i / 7) % 9) as i64 - 40;
    let lon = 10 * ((i / 63) % 36) as i64 - 180;
    format!(
        "velocity_image_pair/{folder}/v02/{}{:02}{}{:03}/{}.stac.json",
        if lat >= 0 { 'N' } else { 'S' },
        lat.abs(),
        if lon >= 0 { 'E' } else { 'W' },
        lon.abs(),
        key_id(i)
    )
}

/// Which keys a day lists: day 1 lists `0..keys`; day 2 drops every key with `i % m == 1`,
/// changes those with `i % m == 2` and adds `keys..keys + keys / m` (m = 1 / churn).
struct Day {
    second: bool,
    keys: u64,
    every: u64,
}

impl Day {
    fn rows(&self) -> impl Iterator<Item = (u64, bool)> + '_ {
        let added = if self.second {
            self.keys / self.every
        } else {
            0
        };
        (0..self.keys + added).filter_map(move |i| {
            let listed = !(self.second && i < self.keys && i % self.every == 1);
            let changed = self.second && i < self.keys && i % self.every == 2;
            listed.then_some((i, changed))
        })
    }
}

fn size_of(i: u64, changed: bool) -> i64 {
    4000 + (i % 1500) as i64 + if changed { 17 } else { 0 }
}

fn modified_of(i: u64, changed: bool) -> String {
    if changed {
        "2026-11-24T06:00:00.000Z".to_string()
    } else {
        format!("2024-{:02}-{:02}T12:00:00.000Z", 1 + i % 12, 1 + i % 28)
    }
}

/// Write both days and the index under `out` (see the module docs).
pub async fn write_inventories(spec: &InventoryGen, out: &Location) -> Result<InventoryGenSummary> {
    let every = (1.0 / spec.churn.max(1e-9)).round().max(3.0) as u64;
    let mut summary = InventoryGenSummary::default();
    for second in [false, true] {
        let day = Arc::new(Day {
            second,
            keys: spec.keys,
            every,
        });
        let name = if second { "day2" } else { "day1" };
        let dir = out.join(name);
        let rows: Vec<(u64, bool)> = day.rows().collect();
        let n = rows.len() as u64;
        let shards = spec.shards.max(1) as usize;
        let per = rows.len().div_ceil(shards).max(1);
        let rows = Arc::new(rows);
        let mut files = Vec::new();
        let mut tasks = Vec::new();
        for s in 0..shards {
            let (lo, hi) = ((s * per).min(rows.len()), ((s + 1) * per).min(rows.len()));
            let ext = match spec.format {
                ShardFormat::CsvGz => "csv.gz",
                ShardFormat::Parquet => "parquet",
            };
            let key = format!("data/{name}-{s:05}.{ext}");
            files.push(key.clone());
            let (rows, bucket, format) = (rows.clone(), spec.bucket.clone(), spec.format);
            let loc = dir.join(&key);
            tasks.push(tokio::task::spawn_blocking(move || {
                encode_shard(&rows[lo..hi], &bucket, format).map(|bytes| (loc, bytes))
            }));
        }
        for t in tasks {
            let (loc, bytes) = t.await.map_err(|e| Error::task("writing a shard", e))??;
            loc.put_bytes(bytes.into()).await?;
        }
        let manifest = serde_json::json!({
            "sourceBucket": spec.bucket,
            "destinationBucket": format!("arn:aws:s3:::{}", spec.bucket),
            "version": "2016-11-30",
            "fileFormat": match spec.format { ShardFormat::CsvGz => "CSV", ShardFormat::Parquet => "Parquet" },
            "fileSchema": "Bucket, Key, Size, LastModifiedDate",
            "files": files.iter().map(|k| serde_json::json!({"key": k})).collect::<Vec<_>>(),
        });
        let mloc = dir.join("manifest.json");
        mloc.put_bytes(manifest.to_string().into()).await?;
        if second {
            summary.day2 = mloc.url().to_string();
            summary.keys_day2 = n;
            summary.added = spec.keys / every;
            summary.removed = (0..spec.keys).filter(|i| i % every == 1).count() as u64;
            summary.changed = (0..spec.keys).filter(|i| i % every == 2).count() as u64;
        } else {
            summary.day1 = mloc.url().to_string();
            summary.keys_day1 = n;
        }
    }
    let keys = spec.keys;
    let hashes: Vec<IdHash> =
        tokio::task::spawn_blocking(move || (0..keys).map(|i| hash_id(&key_id(i))).collect())
            .await
            .map_err(|e| Error::task("hashing ids", e))?;
    let index = out.join("index.parquet");
    write_index(&index, hashes, None).await?;
    summary.index = index.url().to_string();
    Ok(summary)
}

fn encode_shard(rows: &[(u64, bool)], bucket: &str, format: ShardFormat) -> Result<Vec<u8>> {
    match format {
        ShardFormat::CsvGz => {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            let mut line = String::new();
            for &(i, changed) in rows {
                line.clear();
                use std::fmt::Write as _;
                let _ = writeln!(
                    line,
                    "\"{bucket}\",\"{}\",\"{}\",\"{}\"",
                    key_of(i),
                    size_of(i, changed),
                    modified_of(i, changed)
                );
                gz.write_all(line.as_bytes())
                    .map_err(|e| Error::io("gzip shard", e))?;
            }
            gz.finish().map_err(|e| Error::io("gzip shard", e))
        }
        ShardFormat::Parquet => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("bucket", DataType::Utf8, false),
                Field::new("key", DataType::Utf8, false),
                Field::new("size", DataType::Int64, false),
                Field::new("last_modified_date", DataType::Utf8, false),
            ]));
            let mut buf = Vec::new();
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema.clone(), None)
                .map_err(|e| Error::parquet("inventory shard", e))?;
            for chunk in rows.chunks(64 * 1024) {
                let cols: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from_iter_values(chunk.iter().map(|_| bucket))),
                    Arc::new(StringArray::from_iter_values(
                        chunk.iter().map(|&(i, _)| key_of(i)),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        chunk.iter().map(|&(i, c)| size_of(i, c)),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        chunk.iter().map(|&(i, c)| modified_of(i, c)),
                    )),
                ];
                let batch = RecordBatch::try_new(schema.clone(), cols)
                    .map_err(|e| Error::arrow("inventory shard", e))?;
                w.write(&batch)
                    .map_err(|e| Error::parquet("inventory shard", e))?;
            }
            w.close()
                .map_err(|e| Error::parquet("inventory shard", e))?;
            Ok(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_stac_json() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            assert!(seen.insert(key_id(i)), "{i}");
        }
        assert!(key_of(5).ends_with(".stac.json"));
        assert!(key_of(5).contains(&key_id(5)));
    }

    #[tokio::test]
    async fn two_days_differ_by_the_churn() {
        let out = Location::parse("memory://synth-inventory/out").unwrap();
        let spec = InventoryGen {
            keys: 10_000,
            shards: 3,
            churn: 0.01,
            format: ShardFormat::CsvGz,
            bucket: "its-live-data".into(),
        };
        let s = write_inventories(&spec, &out).await.unwrap();
        assert_eq!((s.added, s.removed, s.changed), (100, 100, 100));
        assert_eq!(s.keys_day2, 10_000);
        let idx = crate::hash_index::index_len(&Location::parse(&s.index).unwrap())
            .await
            .unwrap();
        assert_eq!(idx, Some(10_000));
    }
}
