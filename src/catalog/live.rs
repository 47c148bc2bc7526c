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
/// the pruner has a time filter (statistics of `time_fields` read).
async fn manifest_entries(
    m: &ManifestFile,
    io: &FileIO,
    spec: &PartitionSpec,
    pruner: &Pruner,
    time_fields: &[i32],
) -> Result<Vec<(FileEntry, TemporalExtent)>> {
    let (cell_pos, year_pos) = positions(spec);
    let mut out = Vec::new();
    for e in avro::manifest_entries(m, io, time_fields).await? {
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
        let extent = if time_fields.is_empty() {
            TemporalExtent::UNKNOWN
        } else {
            entry_extent(&e, year)
        };
        let sequence_number = e.sequence_number_in(m);
        let snapshot_id = e.snapshot_id_in(m);
        out.push((
            FileEntry {
                path: e.file_path,
                cell,
                year,
                rows: u64::try_from(e.record_count).unwrap_or(0),
                bytes: u64::try_from(e.file_size_in_bytes).unwrap_or(0),
                sequence_number,
                snapshot_id,
            },
            extent,
        ));
    }
    Ok(out)
}

/// The live data files of the table's current snapshot that `pruner` keeps.
pub async fn scan(table: &Table, pruner: &Pruner) -> Result<Scan> {
    let metadata = table.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(Scan::default());
    };
    let list = crate::catalog::replace::manifest_files(table, snapshot).await?;
    let mut out = Scan::default();
    let mut wanted = Vec::new();
    for manifest in list {
        if manifest.content != ManifestContentType::Data {
            continue;
        }
        out.manifests += 1;
        let keep = match metadata.partition_spec_by_id(manifest.partition_spec_id) {
            Some(spec) => pruner.may_match_manifest(spec, manifest.partitions.as_deref()),
            None => true,
        };
        if keep {
            wanted.push(manifest);
        } else {
            out.manifests_pruned += 1;
        }
    }
    // Statistics of the temporal columns, by the current schema's field ids (a column the
    // schema lacks has no statistics: unknown).
    let time_fields: Vec<i32> = match pruner.time {
        Some(_) => {
            let schema = metadata.current_schema();
            TIME_COLUMNS
                .iter()
                .map(|name| schema.field_by_name(name).map_or(-1, |f| f.id))
                .collect()
        }
        None => Vec::new(),
    };
    let time_fields = &time_fields;
    let file_io = table.file_io().clone();
    let per_manifest: Vec<Vec<(FileEntry, TemporalExtent)>> = futures::stream::iter(wanted)
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
                manifest_entries(&m, &io, &spec, pruner, time_fields).await
            }
        })
        .buffer_unordered(MANIFEST_CONCURRENCY)
        .try_collect()
        .await?;
    let mut entries: Vec<(FileEntry, TemporalExtent)> =
        per_manifest.into_iter().flatten().collect();
    pruner.retain_time(&mut entries);
    out.files = entries.into_iter().map(|(f, _)| f).collect();
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
