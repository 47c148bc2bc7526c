//! The daily delta: which inventory keys the warehouse does not hold yet.
//!
//! ```text
//! inventory (manifest.json / CSV / CSV.gz / Parquet) ─▶ keep *.stac.json
//!   ─▶ id = basename minus the suffix ─▶ xxh3-128 ─▶ probe the hash index (sorted, in memory)
//!   ─▶ new rows ┐
//! earlier pending deltas ─▶ rows the index still lacks ┴▶ pending/delta_<YYYY-MM-DD>.parquet
//! ```
//!
//! The file is the Python tool's (`daily_delta.py`, reference §2.9, §3.8): columns `bucket`
//! (string), `key` (string), `id_hash` (`fixed_size_binary(16)`), zstd, under
//! `<prefix>/pending/`; `run_backfill --delta` and our `ingest` read it like any Parquet
//! inventory. Differences, on purpose (docs/decisions.md):
//! * rows of earlier pending deltas are re-checked against the index (the Python tool carries
//!   them over even when they have been ingested since);
//! * a delta is written even when it is empty, so the next step finds it;
//! * duplicate ids keep their first row (the Python tool keeps the last row's values at the
//!   first row's position).
//!
//! Memory: the index (16 bytes per id) plus the digests of the new rows; the inventory and the
//! output stream. A delta for today that already exists is reported and left alone unless
//! forced (like the Python tool's "tier 1").

pub mod diff;

use std::collections::HashSet;
use std::time::Instant;

use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::async_writer::{AsyncArrowWriter, ParquetObjectWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::hash_index::{IdHash, KnownIds, hash_id, key_item_id};
pub use crate::hash_index::{delta_batch, delta_schema};
use crate::inventory::{InventoryEntry, InventoryOptions, InventoryStats, read_inventory};
use crate::report::Reporter;
use crate::store::Location;

/// Rows per written batch.
const BATCH_ROWS: usize = 64 * 1024;

/// What a delta run needs.
#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// Today's inventory (any supported format).
    pub inventory: String,
    /// The hash index of the warehouse.
    pub hash_index: String,
    /// The delta prefix (`<prefix>/pending/delta_<date>.parquet`).
    pub prefix: String,
    /// The date in the file name.
    pub date: NaiveDate,
    /// Inventory filters (suffix, since, limit).
    pub inventory_options: InventoryOptions,
    /// Count only; write and delete nothing.
    pub dry_run: bool,
    /// Recompute even when today's delta exists.
    pub force: bool,
}

/// What a delta run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeltaMetrics {
    /// The date of the delta.
    pub date: String,
    /// Where it is (or would be) written.
    pub delta: String,
    /// Today's delta existed and was left alone (nothing else was done).
    pub existing: bool,
    /// Inventory counters.
    pub inventory: InventoryStats,
    /// Rows of the hash index.
    pub index_ids: u64,
    /// Inventory keys whose id the index holds.
    pub skipped_known: u64,
    /// Inventory keys repeating an id already taken.
    pub duplicates: u64,
    /// New rows from today's inventory.
    pub new_items: u64,
    /// Earlier pending deltas merged (and deleted).
    pub previous_deltas: Vec<String>,
    /// Rows carried over from earlier deltas.
    pub carried_over: u64,
    /// Rows of earlier deltas dropped because the index holds them now.
    pub previous_now_known: u64,
    /// Rows of the written delta.
    pub total: u64,
    /// Nothing was written or deleted.
    pub dry_run: bool,
    /// Wall time.
    pub elapsed_secs: f64,
}

/// `<prefix>/pending/delta_<date>.parquet`.
pub fn delta_url(prefix: &str, date: NaiveDate) -> String {
    format!(
        "{}/pending/delta_{}.parquet",
        prefix.trim_end_matches('/'),
        date.format("%Y-%m-%d")
    )
}

/// Compute today's delta (see the module docs).
pub async fn run_delta(options: &DeltaOptions, reporter: &dyn Reporter) -> Result<DeltaMetrics> {
    let started = Instant::now();
    let out_url = delta_url(&options.prefix, options.date);
    let out = Location::parse(&out_url)?;
    let mut m = DeltaMetrics {
        date: options.date.format("%Y-%m-%d").to_string(),
        delta: out.url().to_string(),
        dry_run: options.dry_run,
        ..Default::default()
    };
    if !options.force
        && let Some(rows) = delta_rows(&out).await?
    {
        m.existing = true;
        m.total = rows;
        m.elapsed_secs = started.elapsed().as_secs_f64();
        return Ok(m);
    }
    reporter.phase("loading the hash index", None);
    let known = KnownIds::load(&Location::parse(&options.hash_index)?).await?;
    m.index_ids = known.len() as u64;
    reporter.finish_phase();

    let writer = match options.dry_run {
        true => None,
        false => Some(DeltaWriter::create(&out)?),
    };
    let mut sink = Sink {
        writer,
        seen: HashSet::new(),
        rows: Vec::with_capacity(BATCH_ROWS),
    };
    let outcome: Result<()> = async {
        reporter.phase("inventory", options.inventory_options.limit);
        let mut inventory = read_inventory(&options.inventory, options.inventory_options.clone());
        let suffix = &options.inventory_options.suffix;
        let (mut hashes, mut held) = (Vec::new(), Vec::new());
        while let Some(batch) = inventory.next_batch().await {
            // Malformed rows are counted in the inventory stats.
            let records: Vec<_> = batch?
                .into_iter()
                .filter_map(|e| match e {
                    InventoryEntry::Record(rec) => Some(rec),
                    InventoryEntry::Malformed(_) => None,
                })
                .collect();
            reporter.advance(records.len() as u64);
            hashes.clear();
            hashes.extend(records.iter().map(|r| hash_id(key_item_id(&r.key, suffix))));
            known.contains_batch(&hashes, &mut held);
            for ((rec, hash), known) in records.into_iter().zip(&hashes).zip(&held) {
                if *known {
                    m.skipped_known += 1;
                } else if sink.push(rec.bucket, rec.key, *hash).await? {
                    m.new_items += 1;
                } else {
                    m.duplicates += 1;
                }
            }
        }
        m.inventory = inventory.stats();
        reporter.finish_phase();

        // Earlier pending deltas: carry over what the index still lacks.
        for prev in pending_deltas(&options.prefix).await? {
            if prev.url() == out.url() {
                continue;
            }
            let rows = read_delta(&prev).await?;
            for (bucket, key, hash) in rows {
                if known.contains(&hash) {
                    m.previous_now_known += 1;
                } else if sink.push(bucket, key, hash).await? {
                    m.carried_over += 1;
                }
            }
            m.previous_deltas.push(prev.url().to_string());
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        if let Some(w) = sink.writer.take() {
            w.abort().await;
        }
        return Err(e);
    }
    m.total = m.new_items + m.carried_over;
    if let Some(w) = sink.writer.take() {
        let pending = std::mem::take(&mut sink.rows);
        w.finish(pending, &out).await?;
        // Only now that today's delta holds their rows are the earlier ones deleted.
        for prev in &m.previous_deltas {
            let loc = Location::parse(prev)?;
            match loc.store().delete(loc.prefix()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(prev, e)),
            }
        }
    }
    m.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(m)
}

/// Rows waiting to be written, and the digests taken so far.
struct Sink {
    writer: Option<DeltaWriter>,
    seen: HashSet<IdHash>,
    rows: Vec<(String, String, IdHash)>,
}

impl Sink {
    /// Take a row unless its id is taken already; `false` for a repeat.
    async fn push(&mut self, bucket: String, key: String, hash: IdHash) -> Result<bool> {
        if !self.seen.insert(hash) {
            return Ok(false);
        }
        if let Some(w) = &mut self.writer {
            self.rows.push((bucket, key, hash));
            if self.rows.len() >= BATCH_ROWS {
                let rows = std::mem::take(&mut self.rows);
                w.write(&rows).await?;
            }
        }
        Ok(true)
    }
}

/// Streams a delta to a temporary object, then moves it into place.
struct DeltaWriter {
    inner: AsyncArrowWriter<ParquetObjectWriter>,
    tmp: Path,
    url: String,
}

impl DeltaWriter {
    fn create(out: &Location) -> Result<Self> {
        let tmp = Path::from(format!(
            "{}.tmp-{}",
            out.prefix().as_ref(),
            uuid::Uuid::new_v4().simple()
        ));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let sink = ParquetObjectWriter::new(out.store().clone(), tmp.clone());
        let inner = AsyncArrowWriter::try_new(sink, delta_schema(), Some(props))
            .map_err(|e| Error::parquet(out.url(), e))?;
        Ok(Self {
            inner,
            tmp,
            url: out.url().to_string(),
        })
    }

    async fn write(&mut self, rows: &[(String, String, IdHash)]) -> Result<()> {
        let batch = delta_batch(rows, &self.url)?;
        self.inner
            .write(&batch)
            .await
            .map_err(|e| Error::parquet(&self.url, e))
    }

    async fn finish(mut self, rest: Vec<(String, String, IdHash)>, out: &Location) -> Result<()> {
        if !rest.is_empty() {
            self.write(&rest).await?;
        }
        self.inner
            .close()
            .await
            .map_err(|e| Error::parquet(&self.url, e))?;
        crate::fault::check("delta.before_rename")?;
        if let Err(e) = out.store().rename(&self.tmp, out.prefix()).await {
            let _ = out.store().delete(&self.tmp).await;
            return Err(Error::store(&self.url, e));
        }
        Ok(())
    }

    async fn abort(self) {
        let mut upload = self.inner.into_inner().into_inner();
        let _ = upload.abort().await;
    }
}

/// Rows of an existing delta (from its footer); `None` when there is none.
async fn delta_rows(loc: &Location) -> Result<Option<u64>> {
    match loc.store().head(loc.prefix()).await {
        Ok(meta) => {
            let reader = parquet::arrow::async_reader::ParquetObjectReader::new(
                loc.store().clone(),
                loc.prefix().clone(),
            )
            .with_file_size(meta.size);
            let builder =
                parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder::new(reader)
                    .await
                    .map_err(|e| Error::parquet(loc.url(), e))?;
            Ok(Some(
                u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0),
            ))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(loc.url(), e)),
    }
}

/// The pending deltas under `<prefix>/pending/` (`delta_*.parquet`), sorted by name.
pub async fn pending_deltas(prefix: &str) -> Result<Vec<Location>> {
    let dir = Location::parse(&format!("{}/pending", prefix.trim_end_matches('/')))?;
    let mut listing = dir.store().list(Some(dir.prefix()));
    let mut names = Vec::new();
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| Error::store(dir.url(), e))?
    {
        let Some(name) = meta.location.filename() else {
            continue;
        };
        if name.starts_with("delta_") && name.ends_with(".parquet") {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(&n)).collect())
}

/// Every (bucket, key, id_hash) row of a delta file; a missing or malformed `id_hash` is
/// recomputed from the key.
pub async fn read_delta(loc: &Location) -> Result<Vec<(String, String, IdHash)>> {
    let mut out = Vec::new();
    let mut records = read_inventory(loc.url(), InventoryOptions::default().with_suffix(""));
    while let Some(entry) = records.try_next().await? {
        let InventoryEntry::Record(rec) = entry else {
            continue;
        };
        let hash = hash_id(key_item_id(&rec.key, crate::inventory::DEFAULT_SUFFIX));
        out.push((rec.bucket, rec.key, hash));
    }
    Ok(out)
}

/// Stream helper used by the tests and the benchmark: every row of a delta.
pub async fn delta_keys(url: &str) -> Result<Vec<(String, String)>> {
    let loc = Location::parse(url)?;
    Ok(read_delta(&loc)
        .await?
        .into_iter()
        .map(|(b, k, _)| (b, k))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::NoReporter;

    async fn write_csv(loc: &str, rows: &[(&str, &str)]) {
        let text: String = rows.iter().map(|(b, k)| format!("{b},{k}\n")).collect();
        Location::parse(loc)
            .unwrap()
            .put_bytes(text.into())
            .await
            .unwrap();
    }

    fn opts(name: &str, date: &str) -> DeltaOptions {
        DeltaOptions {
            inventory: format!("memory://delta-{name}/inv.csv"),
            hash_index: format!("memory://delta-{name}/index.parquet"),
            prefix: format!("memory://delta-{name}/delta"),
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            inventory_options: InventoryOptions::default(),
            dry_run: false,
            force: false,
        }
    }

    #[tokio::test]
    async fn new_keys_are_written_and_earlier_deltas_rechecked() {
        let o = opts("a", "2026-11-24");
        let idx = Location::parse(&o.hash_index).unwrap();
        crate::hash_index::write_index(&idx, vec![hash_id("old")], None)
            .await
            .unwrap();
        write_csv(
            &o.inventory,
            &[
                ("b", "x/old.stac.json"),
                ("b", "x/new1.stac.json"),
                ("b", "y/new1.stac.json"),
                ("b", "x/new2.stac.json"),
                ("b", "x/skip.json"),
            ],
        )
        .await;
        let m = run_delta(&o, &NoReporter).await.unwrap();
        assert_eq!(
            (m.skipped_known, m.new_items, m.duplicates, m.total),
            (1, 2, 1, 2)
        );
        let rows = delta_keys(&m.delta).await.unwrap();
        assert_eq!(
            rows,
            vec![
                ("b".to_string(), "x/new1.stac.json".to_string()),
                ("b".to_string(), "x/new2.stac.json".to_string())
            ]
        );
        // The next day: new1 was ingested meanwhile; new2 is carried over, new3 is new.
        crate::hash_index::merge_into_index(&idx, vec![hash_id("new1")], None)
            .await
            .unwrap();
        write_csv(&o.inventory, &[("b", "x/new3.stac.json")]).await;
        let next = DeltaOptions {
            date: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            ..o.clone()
        };
        let m2 = run_delta(&next, &NoReporter).await.unwrap();
        assert_eq!(
            (
                m2.new_items,
                m2.carried_over,
                m2.previous_now_known,
                m2.total
            ),
            (1, 1, 1, 2)
        );
        assert_eq!(pending_deltas(&o.prefix).await.unwrap().len(), 1);
        // Running again the same day leaves the existing delta alone.
        let again = run_delta(&next, &NoReporter).await.unwrap();
        assert!(again.existing);
        assert_eq!(again.total, 2);
    }

    #[tokio::test]
    async fn dry_runs_write_nothing_and_empty_deltas_exist() {
        let o = opts("b", "2026-11-24");
        write_csv(&o.inventory, &[("b", "a.stac.json")]).await;
        let dry = DeltaOptions {
            dry_run: true,
            ..o.clone()
        };
        let m = run_delta(&dry, &NoReporter).await.unwrap();
        assert_eq!(m.new_items, 1);
        assert!(pending_deltas(&o.prefix).await.unwrap().is_empty());
        write_csv(&o.inventory, &[("b", "a.json")]).await;
        let m = run_delta(&o, &NoReporter).await.unwrap();
        assert_eq!(m.total, 0);
        assert_eq!(
            delta_rows(&Location::parse(&m.delta).unwrap())
                .await
                .unwrap(),
            Some(0)
        );
    }
}
