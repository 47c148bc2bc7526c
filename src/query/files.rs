//! A snapshot's live file list held in memory, pruned without reading manifests.
//!
//! A server answers many searches of one snapshot; reading the manifest list and manifests for
//! each would cost more than the search itself on small queries. [`SnapshotFiles`] keeps every
//! live file with its temporal extent (and the statistics of extra columns) indexed by cell, and
//! prunes it with the same rules as [`crate::catalog::live::scan`]: cell membership, then
//! [`Pruner::retain_time`] over the files of those cells (so the widening of missing interval
//! bounds sees the same files).

use std::collections::HashMap;

use super::{FileEntry, Scan, StatEntry};
use crate::catalog::prune::{Pruner, TemporalExtent};

/// Every live file of one snapshot, indexed by cell.
#[derive(Debug, Default)]
pub struct SnapshotFiles {
    entries: Vec<(StatEntry, TemporalExtent)>,
    by_cell: HashMap<Option<String>, Vec<usize>>,
    manifests: usize,
}

impl SnapshotFiles {
    /// From the entries [`crate::catalog::live::live_entries`] returned.
    pub fn new(entries: Vec<(StatEntry, TemporalExtent)>, manifests: usize) -> Self {
        let mut by_cell: HashMap<Option<String>, Vec<usize>> = HashMap::new();
        for (i, (e, _)) in entries.iter().enumerate() {
            by_cell.entry(e.file.cell.clone()).or_default().push(i);
        }
        Self {
            entries,
            by_cell,
            manifests,
        }
    }

    /// Every live file with its temporal extent (before any widening) and extra statistics.
    pub fn entries(&self) -> &[(StatEntry, TemporalExtent)] {
        &self.entries
    }

    /// Number of live files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the snapshot has no live file.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The files `pruner` keeps, sorted by path (what a manifest scan returns).
    pub fn scan(&self, pruner: &Pruner) -> Scan {
        if pruner.is_empty() {
            return Scan::default();
        }
        let files = self
            .picked(pruner)
            .into_iter()
            .map(|i| self.file(i as usize).clone())
            .collect();
        Scan {
            files,
            manifests: self.manifests,
            manifests_pruned: 0,
        }
    }

    /// [`SnapshotFiles::scan`] as indices into [`SnapshotFiles::entries`] (see
    /// [`SnapshotFiles::file`]), sorted by path.
    pub(crate) fn picked(&self, pruner: &Pruner) -> Vec<u32> {
        if pruner.is_empty() {
            return Vec::new();
        }
        let picked: Vec<usize> = match &pruner.cells {
            Some(cells) => {
                let mut v: Vec<usize> = cells
                    .iter()
                    .filter_map(|c| self.by_cell.get(&Some(c.clone())))
                    .chain(self.by_cell.get(&None))
                    .flatten()
                    .copied()
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            None => (0..self.entries.len()).collect(),
        };
        let mut kept: Vec<(usize, TemporalExtent)> =
            picked.iter().map(|&i| (i, self.entries[i].1)).collect();
        pruner.retain_time(&mut kept);
        let mut kept: Vec<u32> = kept.into_iter().map(|(i, _)| i as u32).collect();
        kept.sort_by(|&a, &b| self.file(a as usize).path.cmp(&self.file(b as usize).path));
        kept
    }

    /// Live file `i` (an index [`SnapshotFiles::picked`] returned).
    pub(crate) fn file(&self, i: usize) -> &FileEntry {
        &self.entries[i].0.file
    }
}
