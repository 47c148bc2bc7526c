//! Two inventory days → the keys that are new or changed (size or last-modified date differ)
//! and the keys that disappeared, with bounded memory.
//!
//! ```text
//! previous ─▶ hash(bucket, key) mod P ─▶ P zstd spill files ┐
//! current  ─▶ hash(bucket, key) mod P ─▶ P zstd spill files ┤
//!   per partition (on every core): previous into a map, stream current against it
//!     ─▶ new/changed rows ─▶ NEW  (bucket, key, id_hash: a delta, ingestible with --mode all)
//!     ─▶ what is left of the map ─▶ GONE (the same columns, for `gc --removed`)
//! ```
//!
//! Memory is bounded by `max_memory`: the partition count is chosen so one partition's map of
//! the previous day fits in a quarter of it even for 100 M keys a day, and only one side's
//! spill writers are open at a time (~0.6 MB each). Spill files live in a temporary directory
//! (`earthcatalog-diff-<pid>-…` under `temp_dir`) removed at the end; one left by a killed run
//! is removed by the next run. Outputs are written to temporary objects and moved into place,
//! so a killed run leaves no partial output and a re-run converges.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::TryStreamExt;

use super::DeltaWriter;
use crate::error::{Error, Result};
use crate::hash_index::{IdHash, hash_id, key_item_id};
use crate::inventory::{InventoryEntry, InventoryOptions, InventoryStats, read_inventory};
use crate::report::Reporter;
use crate::store::Location;

/// Bytes a key costs in a partition's map, for sizing partitions.
const BYTES_PER_KEY: u64 = 200;
/// Keys per day the partition count is sized for.
const SIZED_FOR_KEYS: u64 = 100_000_000;
/// Rows handed to an output writer at once.
const OUT_BATCH: usize = 16 * 1024;

/// What a diff needs.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Today's inventory.
    pub current: String,
    /// The previous day's inventory.
    pub previous: String,
    /// Where the new and changed keys go (a delta file).
    pub out: String,
    /// Where the removed keys go (same columns), if wanted.
    pub removed: Option<String>,
    /// Memory bound in bytes (sizes the partitions).
    pub max_memory: u64,
    /// Where spill files go (default: the system temporary directory).
    pub temp_dir: Option<PathBuf>,
    /// Inventory filters (suffix).
    pub inventory_options: InventoryOptions,
}

/// What a diff found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiffMetrics {
    /// Keys of the current day (after the suffix filter).
    pub current_keys: u64,
    /// Keys of the previous day.
    pub previous_keys: u64,
    /// Keys only in the current day.
    pub added: u64,
    /// Keys in both with a different size or last-modified date.
    pub changed: u64,
    /// Keys in both, the same.
    pub unchanged: u64,
    /// Keys only in the previous day.
    pub removed: u64,
    /// Keys listed twice in one day (the later listing counts).
    pub duplicates: u64,
    /// Spill partitions.
    pub partitions: usize,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
    /// Inventory counters of the current day.
    pub current_inventory: InventoryStats,
    /// Inventory counters of the previous day.
    pub previous_inventory: InventoryStats,
    /// The new-or-changed output.
    pub out: String,
    /// The removed output, if written.
    pub removed_out: Option<String>,
    /// Wall time.
    pub elapsed_secs: f64,
}

/// One listed object, as spilled.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    bucket: u32,
    key: String,
    size: Option<u64>,
    modified: Option<i64>,
}

/// The partition count for a memory bound (see the module docs).
pub fn partitions_for(max_memory: u64) -> usize {
    let per_partition = (max_memory / 4).max(1 << 20);
    let wanted = (SIZED_FOR_KEYS * BYTES_PER_KEY).div_ceil(per_partition);
    (wanted.clamp(16, 4096) as usize).next_power_of_two()
}

/// Compare two inventories (see the module docs).
pub async fn run_diff(options: &DiffOptions, reporter: &dyn Reporter) -> Result<DiffMetrics> {
    let started = Instant::now();
    let parts = partitions_for(options.max_memory);
    let base = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    remove_stale_spills(&base);
    let spill = tempfile::Builder::new()
        .prefix(&format!("earthcatalog-diff-{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|e| Error::io(&base, e))?;
    let mut m = DiffMetrics {
        partitions: parts,
        ..Default::default()
    };
    let mut buckets: Vec<String> = Vec::new();
    for (side, url) in [
        ("previous", &options.previous),
        ("current", &options.current),
    ] {
        reporter.phase(&format!("reading the {side} inventory"), None);
        let (stats, keys, bytes) = spill_side(
            url,
            &options.inventory_options,
            spill.path(),
            side,
            parts,
            &mut buckets,
            reporter,
        )
        .await?;
        reporter.finish_phase();
        m.spilled_bytes += bytes;
        if side == "previous" {
            m.previous_inventory = stats;
            m.previous_keys = keys;
        } else {
            m.current_inventory = stats;
            m.current_keys = keys;
        }
        crate::fault::check(&format!("diff.after_spill_{side}"))?;
    }

    let out = Location::parse(&options.out)?;
    let removed_loc = options
        .removed
        .as_deref()
        .map(Location::parse)
        .transpose()?;
    let mut out_w = DeltaWriter::create(&out)?;
    let mut gone_w = removed_loc.as_ref().map(DeltaWriter::create).transpose()?;
    let buckets = std::sync::Arc::new(buckets);
    reporter.phase("comparing partitions", Some(parts as u64));
    let result: Result<()> = async {
        let dir = spill.path().to_path_buf();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut next = 0usize;
        let mut running = futures::stream::FuturesOrdered::new();
        loop {
            while running.len() < workers && next < parts {
                let (dir, buckets, p) = (dir.clone(), buckets.clone(), next);
                running.push_back(tokio::task::spawn_blocking(move || {
                    compare_partition(&dir, p, &buckets)
                }));
                next += 1;
            }
            let Some(done) = running
                .try_next()
                .await
                .map_err(|e| Error::task("comparing a partition", e))?
            else {
                break;
            };
            let part = done?;
            reporter.advance(1);
            m.added += part.added;
            m.changed += part.changed;
            m.unchanged += part.unchanged;
            m.duplicates += part.duplicates;
            m.removed += part.gone.len() as u64;
            for rows in part.new.chunks(OUT_BATCH) {
                out_w.write(rows).await?;
            }
            if let Some(w) = &mut gone_w {
                for rows in part.gone.chunks(OUT_BATCH) {
                    w.write(rows).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    reporter.finish_phase();
    if let Err(e) = result {
        out_w.abort().await;
        if let Some(w) = gone_w {
            w.abort().await;
        }
        return Err(e);
    }
    crate::fault::check("diff.before_outputs")?;
    out_w.finish(Vec::new(), &out).await?;
    m.out = out.url().to_string();
    if let (Some(w), Some(loc)) = (gone_w, &removed_loc) {
        w.finish(Vec::new(), loc).await?;
        m.removed_out = Some(loc.url().to_string());
    }
    drop(spill);
    m.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(m)
}

/// Remove spill directories of runs whose process is gone (a killed diff).
fn remove_stale_spills(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("earthcatalog-diff-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn spill_path(dir: &Path, side: &str, p: usize) -> PathBuf {
    dir.join(format!("{side}-{p:05}.zst"))
}

/// Stream one inventory into `parts` spill files; returns its stats, keys and spilled bytes.
async fn spill_side(
    url: &str,
    filters: &InventoryOptions,
    dir: &Path,
    side: &str,
    parts: usize,
    buckets: &mut Vec<String>,
    reporter: &dyn Reporter,
) -> Result<(InventoryStats, u64, u64)> {
    let mut writers = Vec::with_capacity(parts);
    for p in 0..parts {
        let path = spill_path(dir, side, p);
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut enc = zstd::stream::Encoder::new(BufWriter::with_capacity(64 * 1024, file), 1)
            .map_err(|e| Error::io(&path, e))?;
        // A small window keeps each of the many open encoders at ~0.5 MB.
        enc.window_log(17).map_err(|e| Error::io(&path, e))?;
        writers.push((path, enc));
    }
    let mut bucket_ids: HashMap<String, u32> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| (b.clone(), i as u32))
        .collect();
    let mut keys = 0u64;
    let mut stream = read_inventory(url, filters.clone());
    let mut buf = Vec::with_capacity(256);
    while let Some(entry) = stream.try_next().await? {
        let InventoryEntry::Record(rec) = entry else {
            continue;
        };
        keys += 1;
        if keys.is_multiple_of(4096) {
            reporter.advance(4096);
        }
        let bucket = match bucket_ids.get(&rec.bucket) {
            Some(&b) => b,
            None => {
                let b = buckets.len() as u32;
                buckets.push(rec.bucket.clone());
                bucket_ids.insert(rec.bucket.clone(), b);
                b
            }
        };
        let p = partition_of(bucket, &rec.key, parts);
        buf.clear();
        encode(
            &Listed {
                bucket,
                key: rec.key,
                size: rec.size,
                modified: rec.last_modified.map(|t| t.timestamp_micros()),
            },
            &mut buf,
        );
        let (path, w) = &mut writers[p];
        w.write_all(&buf).map_err(|e| Error::io(&*path, e))?;
    }
    let stats = stream.stats();
    let mut bytes = 0;
    for (path, w) in writers {
        let mut inner = w.finish().map_err(|e| Error::io(&path, e))?;
        inner.flush().map_err(|e| Error::io(&path, e))?;
        drop(inner);
        bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    Ok((stats, keys, bytes))
}

fn partition_of(bucket: u32, key: &str, parts: usize) -> usize {
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), u64::from(bucket));
    (h % parts as u64) as usize
}

/// `u32 bucket | u32 key length | key | u64 size+1 (0 = none) | i64 modified (MIN = none)`.
fn encode(l: &Listed, out: &mut Vec<u8>) {
    out.extend_from_slice(&l.bucket.to_le_bytes());
    out.extend_from_slice(&(l.key.len() as u32).to_le_bytes());
    out.extend_from_slice(l.key.as_bytes());
    out.extend_from_slice(&l.size.map_or(0, |s| s.saturating_add(1)).to_le_bytes());
    out.extend_from_slice(&l.modified.unwrap_or(i64::MIN).to_le_bytes());
}

/// Read the next spilled record; `None` at the end.
fn decode(r: &mut impl BufRead, path: &Path) -> Result<Option<Listed>> {
    let mut word = [0u8; 4];
    match r.read_exact(&mut word) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    }
    let bucket = u32::from_le_bytes(word);
    r.read_exact(&mut word).map_err(|e| Error::io(path, e))?;
    let len = u32::from_le_bytes(word) as usize;
    let mut key = vec![0u8; len];
    r.read_exact(&mut key).map_err(|e| Error::io(path, e))?;
    let mut long = [0u8; 8];
    r.read_exact(&mut long).map_err(|e| Error::io(path, e))?;
    let size = u64::from_le_bytes(long).checked_sub(1);
    r.read_exact(&mut long).map_err(|e| Error::io(path, e))?;
    let modified = Some(i64::from_le_bytes(long)).filter(|&m| m != i64::MIN);
    let key = String::from_utf8(key).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        )
    })?;
    Ok(Some(Listed {
        bucket,
        key,
        size,
        modified,
    }))
}

/// Rows of a delta file: (bucket, key, id digest).
type Row = (String, String, IdHash);

/// What one partition found.
struct PartitionDiff {
    new: Vec<Row>,
    gone: Vec<Row>,
    added: u64,
    changed: u64,
    unchanged: u64,
    duplicates: u64,
}

fn open_spill(
    path: &Path,
) -> Result<BufReader<zstd::stream::Decoder<'static, BufReader<std::fs::File>>>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let dec = zstd::stream::Decoder::new(file).map_err(|e| Error::io(path, e))?;
    Ok(BufReader::with_capacity(64 * 1024, dec))
}

fn row(buckets: &[String], l: Listed) -> Row {
    let hash = hash_id(key_item_id(&l.key, crate::inventory::DEFAULT_SUFFIX));
    let bucket = buckets.get(l.bucket as usize).cloned().unwrap_or_default();
    (bucket, l.key, hash)
}

fn compare_partition(dir: &Path, p: usize, buckets: &[String]) -> Result<PartitionDiff> {
    let mut out = PartitionDiff {
        new: Vec::new(),
        gone: Vec::new(),
        added: 0,
        changed: 0,
        unchanged: 0,
        duplicates: 0,
    };
    let prev_path = spill_path(dir, "previous", p);
    let mut previous: HashMap<(u32, String), (Option<u64>, Option<i64>)> = HashMap::new();
    let mut r = open_spill(&prev_path)?;
    while let Some(l) = decode(&mut r, &prev_path)? {
        if previous
            .insert((l.bucket, l.key), (l.size, l.modified))
            .is_some()
        {
            out.duplicates += 1;
        }
    }
    drop(r);
    let cur_path = spill_path(dir, "current", p);
    let mut r = open_spill(&cur_path)?;
    let mut seen: std::collections::HashSet<(u32, String)> = std::collections::HashSet::new();
    while let Some(l) = decode(&mut r, &cur_path)? {
        let id = (l.bucket, l.key.clone());
        if !seen.insert(id.clone()) {
            out.duplicates += 1;
            continue;
        }
        match previous.remove(&id) {
            None => {
                out.added += 1;
                out.new.push(row(buckets, l));
            }
            Some((size, modified)) if size != l.size || modified != l.modified => {
                out.changed += 1;
                out.new.push(row(buckets, l));
            }
            Some(_) => out.unchanged += 1,
        }
    }
    let mut gone: Vec<Row> = previous
        .into_iter()
        .map(|((bucket, key), (size, modified))| {
            row(
                buckets,
                Listed {
                    bucket,
                    key,
                    size,
                    modified,
                },
            )
        })
        .collect();
    gone.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out.gone = gone;
    // The spill files of this partition are not needed again.
    let _ = std::fs::remove_file(&prev_path);
    let _ = std::fs::remove_file(&cur_path);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::NoReporter;

    #[test]
    fn spill_records_round_trip() {
        let l = Listed {
            bucket: 3,
            key: "a/b.stac.json".into(),
            size: Some(0),
            modified: None,
        };
        let mut buf = Vec::new();
        encode(&l, &mut buf);
        let mut r = std::io::Cursor::new(buf);
        assert_eq!(decode(&mut r, Path::new("x")).unwrap(), Some(l));
        assert_eq!(decode(&mut r, Path::new("x")).unwrap(), None);
    }

    #[test]
    fn partitions_shrink_with_more_memory() {
        assert_eq!(partitions_for(1 << 30), 128);
        assert!(partitions_for(8 << 30) < partitions_for(1 << 30));
        assert_eq!(partitions_for(1 << 20), 4096);
        assert_eq!(partitions_for(u64::MAX), 16);
    }

    #[tokio::test]
    async fn added_changed_and_removed_keys() {
        let prev = "memory://diff-a/prev.csv";
        let cur = "memory://diff-a/cur.csv";
        let put = |url: &str, text: &str| {
            let (url, text) = (url.to_string(), text.to_string());
            async move {
                Location::parse(&url)
                    .unwrap()
                    .put_bytes(text.into())
                    .await
                    .unwrap()
            }
        };
        put(
            prev,
            "bucket,key,size,last_modified_date\nb,k/same.stac.json,10,2024-01-01T00:00:00Z\nb,k/resized.stac.json,10,2024-01-01T00:00:00Z\nb,k/touched.stac.json,10,2024-01-01T00:00:00Z\nb,k/gone.stac.json,10,2024-01-01T00:00:00Z\n",
        )
        .await;
        put(
            cur,
            "bucket,key,size,last_modified_date\nb,k/same.stac.json,10,2024-01-01T00:00:00Z\nb,k/resized.stac.json,11,2024-01-01T00:00:00Z\nb,k/touched.stac.json,10,2024-02-01T00:00:00Z\nb,k/new.stac.json,10,2024-01-01T00:00:00Z\nb,k/other.json,1,2024-01-01T00:00:00Z\n",
        )
        .await;
        let o = DiffOptions {
            current: cur.into(),
            previous: prev.into(),
            out: "memory://diff-a/new.parquet".into(),
            removed: Some("memory://diff-a/gone.parquet".into()),
            max_memory: 1 << 30,
            temp_dir: None,
            inventory_options: InventoryOptions::default(),
        };
        let m = run_diff(&o, &NoReporter).await.unwrap();
        assert_eq!(
            (m.added, m.changed, m.unchanged, m.removed),
            (1, 2, 1, 1),
            "{m:?}"
        );
        let mut new: Vec<String> = super::super::delta_keys(&o.out)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        new.sort();
        assert_eq!(
            new,
            [
                "k/new.stac.json",
                "k/resized.stac.json",
                "k/touched.stac.json"
            ]
        );
        let gone = super::super::delta_keys(o.removed.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(
            gone,
            vec![("b".to_string(), "k/gone.stac.json".to_string())]
        );
    }
}
