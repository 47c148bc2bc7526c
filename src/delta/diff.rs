//! Two inventory days → the keys that are new or changed (size or last-modified date differ)
//! and the keys that disappeared, with bounded memory.
//!
//! ```text
//! previous ─▶ identity = xxh3-128(bucket, key) ─▶ P zstd spill files ┐ (both days read
//! current  ─▶ identity = xxh3-128(bucket, key) ─▶ P zstd spill files ┤  at the same time)
//!   per partition (on every core): previous (identity → size, date) into a map, stream
//!   current against it
//!     ─▶ new/changed rows ─▶ NEW  (bucket, key, id_hash: a delta, ingestible with --mode all)
//!     ─▶ what is left of the map, keys read back from the spill ─▶ GONE (same columns)
//! ```
//!
//! Memory is bounded by `max_memory`: the partition count is chosen so one partition's maps (a
//! 128-bit identity of each object with its size and date — no key strings) fit in a quarter
//! of it even for 100 M keys a day; the spill writers take ~0.6 MB each. Spill files live in a
//! temporary directory (`earthcatalog-diff-<pid>-…` under `temp_dir`) removed at the end; one
//! left by a killed run is removed by the next run. Outputs are written to temporary objects and
//! moved into place, so a killed run leaves no partial output and a re-run converges.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;

use super::DeltaWriter;
use crate::error::{Error, Result};
use crate::hash_index::{IdHash, hash_id, key_item_id};
use crate::inventory::{InventoryEntry, InventoryOptions, InventoryStats, read_inventory};
use crate::report::Reporter;
use crate::store::Location;

/// Bytes a key costs in a partition's maps (identity, size, date, hash-table slack), for
/// sizing partitions.
const BYTES_PER_KEY: u64 = 64;
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
    /// Keys listed twice in one day (the first listing counts).
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

/// The partition count for a memory bound (see the module docs).
pub fn partitions_for(max_memory: u64) -> usize {
    let per_partition = (max_memory / 4).max(1 << 20);
    let wanted = (SIZED_FOR_KEYS * BYTES_PER_KEY).div_ceil(per_partition);
    (wanted.clamp(16, 4096) as usize).next_power_of_two()
}

/// What reading one day gave.
struct Spilled {
    stats: InventoryStats,
    keys: u64,
    bytes: u64,
    /// Bucket names by the number spilled records carry.
    buckets: Vec<String>,
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
    reporter.phase("reading both inventories", None);
    let (previous, current) = futures::try_join!(
        spill_side(
            &options.previous,
            &options.inventory_options,
            spill.path(),
            "previous",
            parts,
            reporter
        ),
        spill_side(
            &options.current,
            &options.inventory_options,
            spill.path(),
            "current",
            parts,
            reporter
        ),
    )?;
    reporter.finish_phase();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        spilled_bytes = previous.bytes + current.bytes,
        "both days spilled"
    );
    crate::fault::check("diff.after_spill")?;
    m.spilled_bytes = previous.bytes + current.bytes;
    (m.previous_keys, m.current_keys) = (previous.keys, current.keys);
    let tables = Arc::new((previous.buckets, current.buckets));
    (m.previous_inventory, m.current_inventory) = (previous.stats, current.stats);

    let out = Location::parse(&options.out)?;
    let removed_loc = options
        .removed
        .as_deref()
        .map(Location::parse)
        .transpose()?;
    let mut out_w = DeltaWriter::create(&out)?;
    let mut gone_w = removed_loc.as_ref().map(DeltaWriter::create).transpose()?;
    reporter.phase("comparing partitions", Some(parts as u64));
    let result: Result<()> = async {
        let dir = spill.path().to_path_buf();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut next = 0usize;
        let mut running = futures::stream::FuturesOrdered::new();
        loop {
            while running.len() < workers && next < parts {
                let (dir, tables, p) = (dir.clone(), tables.clone(), next);
                running.push_back(tokio::task::spawn_blocking(move || {
                    compare_partition(&dir, p, &tables.0, &tables.1)
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
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "partitions compared"
    );
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

/// The identity of a listed object: a 128-bit digest of its bucket and key (collisions are out
/// of reach: ~2^-128 per pair).
fn identity(bucket: &str, key: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(bucket.as_bytes());
    h.update(&[0xff]);
    h.update(key.as_bytes());
    h.digest128()
}

/// Stream one inventory into `parts` spill files.
async fn spill_side(
    url: &str,
    filters: &InventoryOptions,
    dir: &Path,
    side: &str,
    parts: usize,
    reporter: &dyn Reporter,
) -> Result<Spilled> {
    let mut writers = Vec::with_capacity(parts);
    for p in 0..parts {
        let path = spill_path(dir, side, p);
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        // A negative ("fast") level: spills are read once or twice and thrown away.
        let mut enc = zstd::stream::Encoder::new(BufWriter::with_capacity(64 * 1024, file), -5)
            .map_err(|e| Error::io(&path, e))?;
        // A small window keeps each of the many open encoders at ~0.5 MB.
        enc.window_log(17).map_err(|e| Error::io(&path, e))?;
        writers.push((path, enc));
    }
    let mut buckets: Vec<String> = Vec::new();
    let mut keys = 0u64;
    let mut stream = read_inventory(url, filters.clone());
    let mut buf = Vec::with_capacity(256);
    while let Some(batch) = stream.next_batch().await {
        let batch = batch?;
        reporter.advance(batch.len() as u64);
        for entry in batch {
            let InventoryEntry::Record(rec) = entry else {
                continue;
            };
            keys += 1;
            // Buckets repeat: almost always the last one.
            let bucket = match buckets.iter().rposition(|b| *b == rec.bucket) {
                Some(b) => b,
                None => {
                    buckets.push(rec.bucket.clone());
                    buckets.len() - 1
                }
            };
            let id = identity(&rec.bucket, &rec.key);
            let p = ((id >> 64) as u64 % parts as u64) as usize;
            buf.clear();
            encode(
                &Spill {
                    identity: id,
                    bucket: bucket as u32,
                    key: rec.key.as_bytes(),
                    size: rec.size,
                    modified: rec.last_modified.map(|t| t.timestamp_micros()),
                },
                &mut buf,
            );
            let (path, w) = &mut writers[p];
            w.write_all(&buf).map_err(|e| Error::io(&*path, e))?;
        }
    }
    let stats = stream.stats();
    let mut bytes = 0;
    for (path, w) in writers {
        let mut inner = w.finish().map_err(|e| Error::io(&path, e))?;
        inner.flush().map_err(|e| Error::io(&path, e))?;
        drop(inner);
        bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    Ok(Spilled {
        stats,
        keys,
        bytes,
        buckets,
    })
}

/// One spilled record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spill<'a> {
    identity: u128,
    bucket: u32,
    key: &'a [u8],
    size: Option<u64>,
    modified: Option<i64>,
}

/// `u128 identity | u32 bucket | u64 size+1 (0 = none) | i64 modified (MIN = none) |
/// u32 key length | key`, little-endian: the fixed part first, so a reader that does not need
/// the key skips it without copying.
fn encode(l: &Spill<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&l.identity.to_le_bytes());
    out.extend_from_slice(&l.bucket.to_le_bytes());
    out.extend_from_slice(&l.size.map_or(0, |s| s.saturating_add(1)).to_le_bytes());
    out.extend_from_slice(&l.modified.unwrap_or(i64::MIN).to_le_bytes());
    out.extend_from_slice(&(l.key.len() as u32).to_le_bytes());
    out.extend_from_slice(l.key);
}

/// Bytes of the fixed part of a spilled record.
const HEAD: usize = 16 + 4 + 8 + 8 + 4;

/// One spilled record read into reusable buffers (no allocation per record).
#[derive(Debug, Default)]
struct Raw {
    identity: u128,
    bucket: u32,
    key: Vec<u8>,
    key_len: usize,
    size: Option<u64>,
    modified: Option<i64>,
}

impl Raw {
    /// The delta row of this record: (bucket, key, id digest).
    fn row(&self, buckets: &[String]) -> Result<Row> {
        let key = String::from_utf8(self.key.clone())
            .map_err(|e| Error::Inconsistent(format!("a spilled key is not UTF-8: {e}")))?;
        let hash = hash_id(key_item_id(&key, crate::inventory::DEFAULT_SUFFIX));
        let bucket = buckets
            .get(self.bucket as usize)
            .cloned()
            .unwrap_or_default();
        Ok((bucket, key, hash))
    }
}

/// Read the fixed part of the next spilled record into `raw`; `false` at the end. The key
/// follows: [`read_key`] or [`skip_key`] must come next.
fn decode_head(r: &mut impl BufRead, raw: &mut Raw, path: &Path) -> Result<bool> {
    let mut head = [0u8; HEAD];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    let word = |at: usize| -> [u8; 4] { [head[at], head[at + 1], head[at + 2], head[at + 3]] };
    let long = |at: usize| -> [u8; 8] {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        b
    };
    let mut ident = [0u8; 16];
    ident.copy_from_slice(&head[..16]);
    raw.identity = u128::from_le_bytes(ident);
    raw.bucket = u32::from_le_bytes(word(16));
    raw.size = u64::from_le_bytes(long(20)).checked_sub(1);
    raw.modified = Some(i64::from_le_bytes(long(28))).filter(|&m| m != i64::MIN);
    raw.key_len = u32::from_le_bytes(word(36)) as usize;
    Ok(true)
}

/// Read the key of the record whose head was just read.
fn read_key(r: &mut impl BufRead, raw: &mut Raw, path: &Path) -> Result<()> {
    raw.key.resize(raw.key_len, 0);
    r.read_exact(&mut raw.key).map_err(|e| Error::io(path, e))
}

/// Skip the key of the record whose head was just read.
fn skip_key(r: &mut impl BufRead, raw: &Raw, path: &Path) -> Result<()> {
    let mut left = raw.key_len;
    while left > 0 {
        let n = r
            .fill_buf()
            .map_err(|e| Error::io(path, e))?
            .len()
            .min(left);
        if n == 0 {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated spill"),
            ));
        }
        r.consume(n);
        left -= n;
    }
    Ok(())
}

/// Read the next whole spilled record into `raw`; `false` at the end.
#[cfg(test)]
fn decode_into(r: &mut impl BufRead, raw: &mut Raw, path: &Path) -> Result<bool> {
    if !decode_head(r, raw, path)? {
        return Ok(false);
    }
    read_key(r, raw, path)?;
    Ok(true)
}

/// A hasher for keys that are digests already: their low 64 bits.
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u128` keys are hashed; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type DigestMap<V> = HashMap<u128, V, std::hash::BuildHasherDefault<DigestHasher>>;
type DigestSet = std::collections::HashSet<u128, std::hash::BuildHasherDefault<DigestHasher>>;

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

/// Compare one partition: the previous day's (size, date) by identity in a map, the current
/// day streamed against it (an entry seen is marked, so a key listed twice is counted once); the
/// keys of what is left unmarked (removed) come from a second read of the previous day's spill.
/// Keys are copied out of the spill only for the rows that are output.
fn compare_partition(
    dir: &Path,
    p: usize,
    previous_buckets: &[String],
    current_buckets: &[String],
) -> Result<PartitionDiff> {
    let mut out = PartitionDiff {
        new: Vec::new(),
        gone: Vec::new(),
        added: 0,
        changed: 0,
        unchanged: 0,
        duplicates: 0,
    };
    let prev_path = spill_path(dir, "previous", p);
    // identity → (size, date, seen in the current day)
    let mut previous: DigestMap<(Option<u64>, Option<i64>, bool)> = DigestMap::default();
    let mut raw = Raw::default();
    let mut r = open_spill(&prev_path)?;
    while decode_head(&mut r, &mut raw, &prev_path)? {
        skip_key(&mut r, &raw, &prev_path)?;
        if previous
            .insert(raw.identity, (raw.size, raw.modified, false))
            .is_some()
        {
            out.duplicates += 1;
        }
    }
    drop(r);
    let cur_path = spill_path(dir, "current", p);
    let mut r = open_spill(&cur_path)?;
    // Keys only in the current day (few): to count one listed twice once.
    let mut added = DigestSet::default();
    while decode_head(&mut r, &mut raw, &cur_path)? {
        let output = match previous.get_mut(&raw.identity) {
            Some((_, _, true)) => {
                out.duplicates += 1;
                false
            }
            Some((size, modified, seen)) => {
                *seen = true;
                let changed = *size != raw.size || *modified != raw.modified;
                if changed {
                    out.changed += 1;
                } else {
                    out.unchanged += 1;
                }
                changed
            }
            None if added.insert(raw.identity) => {
                out.added += 1;
                true
            }
            None => {
                out.duplicates += 1;
                false
            }
        };
        if output {
            read_key(&mut r, &mut raw, &cur_path)?;
            out.new.push(raw.row(current_buckets)?);
        } else {
            skip_key(&mut r, &raw, &cur_path)?;
        }
    }
    drop(r);
    let mut gone: DigestSet = previous
        .into_iter()
        .filter(|(_, (_, _, seen))| !seen)
        .map(|(id, _)| id)
        .collect();
    if !gone.is_empty() {
        let mut r = open_spill(&prev_path)?;
        while decode_head(&mut r, &mut raw, &prev_path)? {
            if gone.remove(&raw.identity) {
                read_key(&mut r, &mut raw, &prev_path)?;
                out.gone.push(raw.row(previous_buckets)?);
            } else {
                skip_key(&mut r, &raw, &prev_path)?;
            }
        }
        out.gone.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    }
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
        let l = Spill {
            identity: identity("b", "a/b.stac.json"),
            bucket: 3,
            key: b"a/b.stac.json",
            size: Some(0),
            modified: None,
        };
        let mut buf = Vec::new();
        encode(&l, &mut buf);
        let mut r = std::io::Cursor::new(buf);
        let mut raw = Raw::default();
        assert!(decode_into(&mut r, &mut raw, Path::new("x")).unwrap());
        assert_eq!(
            (
                raw.identity,
                raw.bucket,
                raw.key.as_slice(),
                raw.size,
                raw.modified
            ),
            (l.identity, 3, l.key, Some(0), None)
        );
        assert!(!decode_into(&mut r, &mut raw, Path::new("x")).unwrap());
        assert_ne!(identity("b", "ak"), identity("ba", "k"));
    }

    #[test]
    fn partitions_shrink_with_more_memory() {
        assert_eq!(partitions_for(1 << 30), 32);
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
