//! Aggregates over data files: per-bucket statistics and the catalog report.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::live::FileEntry;

/// Highest field id of the base schema; columns above it were added by schema evolution.
pub const BASE_FIELD_IDS: i32 = 28;

/// Statistics of one (cell, year) bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketStats {
    /// Cell / region key (empty when the file has no cell partition value).
    pub cell: String,
    /// UTC year; `None` for items without datetime (`year=unknown`).
    pub year: Option<i32>,
    /// Rows (after fan-out).
    pub rows: u64,
    /// Data files.
    pub files: u64,
    /// Bytes in data files.
    pub bytes: u64,
}

/// Rows and files of one year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct YearRows {
    /// UTC year; `None` for `year=unknown`.
    pub year: Option<i32>,
    /// Rows.
    pub rows: u64,
    /// Data files.
    pub files: u64,
}

/// One top-level column of the table schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaField {
    /// Iceberg field id.
    pub id: i32,
    /// Column name.
    pub name: String,
    /// Iceberg type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Added by schema evolution (id above the 28 base fields).
    pub evolved: bool,
}

/// The current snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// Snapshot id.
    pub id: i64,
    /// Commit time.
    pub timestamp: Option<DateTime<Utc>>,
    /// Operation (`append`, `replace`, …).
    pub operation: String,
}

/// Everything `earthcatalog info` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogInfo {
    /// The catalog database.
    pub catalog: String,
    /// The warehouse root (given, or derived from the table location).
    pub warehouse: Option<String>,
    /// Whether the table exists.
    pub table_exists: bool,
    /// Table location.
    pub table_location: Option<String>,
    /// Grid type (`h3` unless the table says otherwise).
    pub grid_type: String,
    /// H3 resolution (1 unless the table says otherwise); `None` for other grids.
    pub grid_resolution: Option<u8>,
    /// Boundaries of a GeoJSON grid.
    pub grid_boundaries_path: Option<String>,
    /// Region id field of a GeoJSON grid.
    pub grid_id_field: Option<String>,
    /// Current snapshot, if any.
    pub snapshot: Option<SnapshotInfo>,
    /// Snapshots in the table history.
    pub snapshot_count: usize,
    /// Data manifests of the current snapshot.
    pub manifest_count: usize,
    /// Live data files.
    pub files: u64,
    /// Rows (one per item and cell).
    pub rows: u64,
    /// Bytes in data files.
    pub bytes: u64,
    /// Distinct cells.
    pub distinct_cells: u64,
    /// Smallest and largest known year.
    pub year_range: Option<(i32, i32)>,
    /// Rows and files per year, ascending, `year=unknown` first.
    pub years: Vec<YearRows>,
    /// The largest buckets by rows.
    pub top_buckets: Vec<BucketStats>,
    /// Buckets with more than one file (compaction would merge them).
    pub compaction_candidates: u64,
    /// Files in those buckets.
    pub compaction_candidate_files: u64,
    /// Hash index location (table property, else the default beside the warehouse).
    pub hash_index_path: Option<String>,
    /// Ids in the hash index; `None` when there is no index.
    pub hash_index_rows: Option<u64>,
    /// Why the hash index could not be read, if it could not.
    pub hash_index_error: Option<String>,
    /// Current schema, in field order.
    pub schema: Vec<SchemaField>,
}

/// Per-(cell, year) statistics sorted by (cell, year), `year=unknown` first within a cell.
pub fn bucket_stats(files: &[FileEntry]) -> Vec<BucketStats> {
    let mut map: BTreeMap<(String, Option<i32>), BucketStats> = BTreeMap::new();
    for f in files {
        let cell = f.cell.clone().unwrap_or_default();
        let b = map
            .entry((cell.clone(), f.year))
            .or_insert_with(|| BucketStats {
                cell,
                year: f.year,
                rows: 0,
                files: 0,
                bytes: 0,
            });
        b.rows += f.rows;
        b.files += 1;
        b.bytes += f.bytes;
    }
    map.into_values().collect()
}

/// Totals of a file list: `(files, rows, bytes, distinct cells, years, year range)`.
pub(crate) struct Totals {
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub distinct_cells: u64,
    pub years: Vec<YearRows>,
    pub year_range: Option<(i32, i32)>,
    pub compaction_candidates: u64,
    pub compaction_candidate_files: u64,
}

pub(crate) fn totals(files: &[FileEntry], buckets: &[BucketStats]) -> Totals {
    let mut years: BTreeMap<Option<i32>, YearRows> = BTreeMap::new();
    for f in files {
        let y = years.entry(f.year).or_insert(YearRows {
            year: f.year,
            rows: 0,
            files: 0,
        });
        y.rows += f.rows;
        y.files += 1;
    }
    let known: Vec<i32> = years.keys().filter_map(|y| *y).collect();
    let cells: BTreeSet<&str> = buckets.iter().map(|b| b.cell.as_str()).collect();
    let candidates: Vec<&BucketStats> = buckets.iter().filter(|b| b.files > 1).collect();
    Totals {
        files: files.len() as u64,
        rows: files.iter().map(|f| f.rows).sum(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        distinct_cells: cells.len() as u64,
        year_range: known.first().zip(known.last()).map(|(a, b)| (*a, *b)),
        years: years.into_values().collect(),
        compaction_candidates: candidates.len() as u64,
        compaction_candidate_files: candidates.iter().map(|b| b.files).sum(),
    }
}

/// The `n` largest buckets by rows (ties by cell, then year).
pub fn top_buckets(buckets: &[BucketStats], n: usize) -> Vec<BucketStats> {
    let mut v = buckets.to_vec();
    v.sort_by(|a, b| {
        b.rows
            .cmp(&a.rows)
            .then_with(|| a.cell.cmp(&b.cell))
            .then_with(|| a.year.cmp(&b.year))
    });
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, cell: &str, year: Option<i32>, rows: u64) -> FileEntry {
        FileEntry {
            sequence_number: None,
            snapshot_id: 1,
            path: path.into(),
            cell: Some(cell.into()),
            year,
            rows,
            bytes: rows * 10,
        }
    }

    #[test]
    fn stats_group_by_cell_and_year_with_null_years() {
        let files = vec![
            file("a", "c2", Some(2020), 5),
            file("b", "c1", None, 2),
            file("c", "c1", Some(2019), 3),
            file("d", "c1", Some(2019), 4),
        ];
        let s = bucket_stats(&files);
        assert_eq!(
            s.iter()
                .map(|b| (b.cell.as_str(), b.year))
                .collect::<Vec<_>>(),
            vec![("c1", None), ("c1", Some(2019)), ("c2", Some(2020))]
        );
        assert_eq!((s[1].rows, s[1].files, s[1].bytes), (7, 2, 70));
        let t = totals(&files, &s);
        assert_eq!(
            (t.files, t.rows, t.bytes, t.distinct_cells),
            (4, 14, 140, 2)
        );
        assert_eq!(t.year_range, Some((2019, 2020)));
        assert_eq!(
            t.years[0],
            YearRows {
                year: None,
                rows: 2,
                files: 1
            }
        );
        assert_eq!(
            (t.compaction_candidates, t.compaction_candidate_files),
            (1, 2)
        );
        let top = top_buckets(&s, 2);
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].cell.as_str(), top[0].year), ("c1", Some(2019)));
    }

    #[test]
    fn empty_input_gives_empty_totals() {
        let t = totals(&[], &[]);
        assert_eq!((t.files, t.rows, t.distinct_cells), (0, 0, 0));
        assert_eq!(t.year_range, None);
        assert!(bucket_stats(&[]).is_empty());
    }
}
