//! Decoded small data files kept between searches: a server answering many searches over the
//! same places reads the same few files again and again, and for the small files a spatially
//! partitioned warehouse is made of (tens of rows each) the fixed cost of a read — fetch, footer,
//! a decoder and a zstd context per column — is most of a search's CPU. Files are immutable
//! (each path is written once), so a path is a key for ever; entries are evicted by size
//! (TinyLFU, `moka`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;

/// One file decoded whole: every column of its `row_groups` row groups.
#[derive(Debug)]
pub(crate) struct DecodedFile {
    pub row_groups: u64,
    pub batches: Vec<RecordBatch>,
}

/// Decoded files, bounded by their Arrow memory size.
pub struct DecodedFiles {
    files: moka::sync::Cache<String, Arc<DecodedFile>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What a [`DecodedFiles`] holds and has served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that decoded the file.
    pub misses: u64,
    /// Files held.
    pub files: u64,
    /// Their Arrow memory size.
    pub bytes: u64,
}

impl std::fmt::Debug for DecodedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedFiles")
            .field("stats", &self.stats())
            .finish()
    }
}

impl DecodedFiles {
    /// A cache of at most `max_bytes` of decoded batches.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            files: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_path: &String, file: &Arc<DecodedFile>| {
                    let bytes: usize = file.batches.iter().map(|b| b.get_array_memory_size()).sum();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The decoded file at `path`, counted as a hit or a miss.
    pub(crate) fn get(&self, path: &str) -> Option<Arc<DecodedFile>> {
        let found = self.files.get(path);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keep the decoded file at `path`.
    pub(crate) fn insert(&self, path: &str, file: Arc<DecodedFile>) {
        self.files.insert(path.to_string(), file);
    }

    /// Counters and current size.
    pub fn stats(&self) -> CacheStats {
        self.files.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            files: self.files.entry_count(),
            bytes: self.files.weighted_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, StringArray};

    fn batch(rows: usize) -> Arc<DecodedFile> {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(100); rows]));
        let b = RecordBatch::try_from_iter([("id", a)]).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(DecodedFile {
            row_groups: 1,
            batches: vec![b],
        })
    }

    #[test]
    fn holds_what_fits_and_counts_hits_and_misses() {
        let size: usize = batch(100)
            .batches
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum();
        let cache = DecodedFiles::new(size as u64 * 3);
        assert!(cache.get("a").is_none());
        cache.insert("a", batch(100));
        assert_eq!(cache.get("a").map(|f| f.batches[0].num_rows()), Some(100));
        for name in ["b", "c", "d", "e", "f"] {
            cache.insert(name, batch(100));
        }
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
        assert!(stats.bytes <= size as u64 * 3, "{stats:?}");
        assert!((1..=3).contains(&stats.files), "{stats:?}");
        // Larger than the whole cache: not kept (once moka's pending work has run).
        cache.insert("big", batch(1000));
        cache.stats();
        assert!(cache.get("big").is_none());
    }
}
