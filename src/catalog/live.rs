//! Listing the live data files of the current snapshot from the manifest list and manifests.

use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{ManifestContentType, ManifestFile, PartitionSpec, Transform};
use iceberg::table::Table;

use super::prune::{Pruner, TIME_COLUMNS, TemporalExtent, entry_extent, is_cell_field};
use crate::catalog::avro::{self, PartitionDatum};
use crate::error::{Error, Result};

/// Manifests read concurrently.
const MANIFEST_CONCURRENCY: usize = 16;

/// One live data file and its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path as registered in the catalog (e.g. `file:///…` or `s3://…`).
    pub path: String,
    /// The `grid_partition` value; `None` when the file has none.
    pub cell: Option<String>,
    /// The UTC year; `None` for `year=unknown`.
    pub year: Option<i32>,
    /// Record count.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Data sequence number (commit order; higher = committed later), when known.
    pub sequence_number: Option<i64>,
    /// The snapshot that added the file.
    pub snapshot_id: i64,
}

/// What a scan read.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Matching files, sorted by path.
    pub files: Vec<FileEntry>,
    /// Data manifests in the snapshot.
    pub manifests: usize,
    /// Data manifests skipped by their partition summaries.
    pub manifests_pruned: usize,
}

/// Positions of the cell and year fields in a spec's partition tuple.
fn positions(spec: &PartitionSpec) -> (Option<usize>, Option<usize>) {
    let fields = spec.fields();
    let cell = fields
        .iter()
        .position(|f| is_cell_field(&f.name, &f.transform));
    let year = fields.iter().position(|f| f.transform == Transform::Year);
    (cell, year)
}

/// The live data files of one manifest in `pruner`'s cells, with their temporal extents when
/// `read_time` (then `stat_fields` starts with the [`TIME_COLUMNS`] ids) and the statistics of
/// the fields after those.
async fn manifest_entries(
    m: &ManifestFile,
    io: &FileIO,
    spec: &PartitionSpec,
    pruner: &Pruner,
    stat_fields: &[i32],
    read_time: bool,
) -> Result<Vec<(StatEntry, TemporalExtent)>> {
    let (cell_pos, year_pos) = positions(spec);
    let mut out = Vec::new();
    for e in avro::manifest_entries(m, io, stat_fields).await? {
        if !e.is_live_data() {
            continue;
        }
        let value = |pos: Option<usize>| pos.and_then(|p| e.partition.get(p));
        let cell = match value(cell_pos) {
            Some(PartitionDatum::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let year = match value(year_pos) {
            Some(PartitionDatum::Long(y)) => i32::try_from(*y).ok().map(|y| y + 1970),
            _ => None,
        };
        if !pruner.matches_cell(cell.as_deref()) {
            continue;
        }
        let extent = if read_time {
            entry_extent(&e, year)
        } else {
            TemporalExtent::UNKNOWN
        };
        let stats = e
            .stats
            .get(TIME_COLUMNS.len()..)
            .unwrap_or_default()
            .to_vec();
        let sequence_number = e.sequence_number_in(m);
        let snapshot_id = e.snapshot_id_in(m);
        out.push((
            StatEntry {
                file: FileEntry {
                    path: e.file_path,
                    cell,
                    year,
                    rows: u64::try_from(e.record_count).unwrap_or(0),
                    bytes: u64::try_from(e.file_size_in_bytes).unwrap_or(0),
                    sequence_number,
                    snapshot_id,
                },
                stats,
            },
            extent,
        ));
    }
    Ok(out)
}

/// The live data files of the table's current snapshot that `pruner` keeps.
pub async fn scan(table: &Table, pruner: &Pruner) -> Result<Scan> {
    scan_at(table, None, pruner).await
}

/// The live data files of snapshot `snapshot_id` (the current one when `None`) that `pruner`
/// keeps. A snapshot the table's metadata does not list (expired, or of another table) is
/// [`Error::NotFound`] naming it.
pub async fn scan_at(table: &Table, snapshot_id: Option<i64>, pruner: &Pruner) -> Result<Scan> {
    let read_time = pruner.time.is_some();
    let mut entries = Vec::new();
    let (manifests, manifests_pruned) =
        entries_at(table, snapshot_id, pruner, read_time, &[], |e, extent| {
            entries.push((e.file, extent));
        })
        .await?;
    pruner.retain_time(&mut entries);
    let mut files: Vec<FileEntry> = entries.into_iter().map(|(f, _)| f).collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Scan {
        files,
        manifests,
        manifests_pruned,
    })
}

/// A live data file with the statistics of extra columns asked of [`live_entries`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatEntry {
    /// The file.
    pub file: FileEntry,
    /// Statistics of the extra columns, in request order (unknown when the manifest has none).
    pub stats: Vec<crate::catalog::avro::ColumnStats>,
}

/// Every live data file of snapshot `snapshot_id` (the current one when `None`) with its
/// temporal extent (statistics of the [`TIME_COLUMNS`] read) and the statistics of the
/// columns `extra` (by name; a column the schema lacks has none). Returns the entries and the
/// number of data manifests. For callers that keep the file list in memory and prune it
/// themselves ([`Pruner::matches_cell`], [`Pruner::retain_time`]).
pub async fn live_entries(
    table: &Table,
    snapshot_id: Option<i64>,
    extra: &[&str],
) -> Result<(Vec<(StatEntry, TemporalExtent)>, usize)> {
    let mut entries = Vec::new();
    let (manifests, _) = entries_at(
        table,
        snapshot_id,
        &Pruner::default(),
        true,
        extra,
        |e, extent| entries.push((e, extent)),
    )
    .await?;
    Ok((entries, manifests))
}

/// Hand `each` every live data file of the table's current snapshot, manifest by manifest as
/// they are read, in no particular order: for callers that keep less than a [`FileEntry`] per
/// file (their memory then follows the manifests in flight, not the table's file count).
pub async fn for_each_live_file(table: &Table, mut each: impl FnMut(FileEntry)) -> Result<()> {
    let all = Pruner::default();
    entries_at(table, None, &all, false, &[], |e, _| each(e.file)).await?;
    Ok(())
}

/// The snapshot `snapshot_id` of the table (the current one when `None`; `Ok(None)` for a
/// table without snapshots).
fn snapshot_of(
    table: &Table,
    snapshot_id: Option<i64>,
) -> Result<Option<&iceberg::spec::SnapshotRef>> {
    let metadata = table.metadata();
    match snapshot_id {
        None => Ok(metadata.current_snapshot()),
        Some(id) => match metadata.snapshot_by_id(id) {
            Some(s) => Ok(Some(s)),
            None => Err(Error::NotFound {
                what: "snapshot".into(),
                location: id.to_string(),
                hint: format!(
                    " in table {} (expired, or never part of its history)",
                    metadata.uuid()
                ),
            }),
        },
    }
}

/// The live entries of a snapshot in `pruner`'s cells (manifests pruned by their partition
/// summaries), with temporal extents when `read_time`, and the statistics of `extra` columns,
/// handed to `each` manifest by manifest as they are read. Returns (data manifests, manifests
/// pruned).
async fn entries_at(
    table: &Table,
    snapshot_id: Option<i64>,
    pruner: &Pruner,
    read_time: bool,
    extra: &[&str],
    mut each: impl FnMut(StatEntry, TemporalExtent),
) -> Result<(usize, usize)> {
    let metadata = table.metadata();
    let Some(snapshot) = snapshot_of(table, snapshot_id)? else {
        return Ok((0, 0));
    };
    let list = crate::catalog::replace::manifest_files(table, snapshot).await?;
    let (mut manifests, mut pruned) = (0, 0);
    let mut wanted = Vec::new();
    for manifest in list {
        if manifest.content != ManifestContentType::Data {
            continue;
        }
        manifests += 1;
        let keep = match metadata.partition_spec_by_id(manifest.partition_spec_id) {
            Some(spec) => pruner.may_match_manifest(spec, manifest.partitions.as_deref()),
            None => true,
        };
        if keep {
            wanted.push(manifest);
        } else {
            pruned += 1;
        }
    }
    // Statistics of the temporal columns (then the extra ones), by the current schema's field
    // ids (a column the schema lacks has no statistics: unknown).
    let schema = metadata.current_schema();
    let id_of = |name: &str| schema.field_by_name(name).map_or(-1, |f| f.id);
    let mut stat_fields: Vec<i32> = Vec::new();
    if read_time || !extra.is_empty() {
        stat_fields.extend(TIME_COLUMNS.iter().map(|n| id_of(n)));
    }
    stat_fields.extend(extra.iter().map(|n| id_of(n)));
    let stat_fields = &stat_fields;
    let file_io = table.file_io().clone();
    let mut per_manifest = futures::stream::iter(wanted)
        .map(|m| {
            let io = file_io.clone();
            let spec = metadata.partition_spec_by_id(m.partition_spec_id).cloned();
            async move {
                let spec = spec.ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "manifest {} uses partition spec {}, which the table metadata lacks",
                        m.manifest_path, m.partition_spec_id
                    ))
                })?;
                manifest_entries(&m, &io, &spec, pruner, stat_fields, read_time).await
            }
        })
        .buffer_unordered(MANIFEST_CONCURRENCY);
    while let Some(entries) = per_manifest.try_next().await? {
        for (e, extent) in entries {
            each(e, extent);
        }
    }
    Ok((manifests, pruned))
}
