//! Listing the live data files of the current snapshot from the manifest list and manifests.

use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, Literal, Manifest, ManifestContentType, ManifestFile, ManifestStatus,
    PartitionSpec, PrimitiveLiteral, Transform,
};
use iceberg::table::Table;

use super::prune::{Pruner, is_cell_field};
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

/// The live data files of one manifest that `pruner` keeps: through the projection reader
/// (`catalog::avro`), or the `iceberg` crate's reader when that one declines the file.
async fn manifest_entries(
    m: &ManifestFile,
    io: &FileIO,
    spec: Option<&PartitionSpec>,
    pruner: &Pruner,
) -> Result<Vec<FileEntry>> {
    let read_err = |e| Error::iceberg(format!("reading manifest {}", m.manifest_path), e);
    let bytes = io
        .new_input(&m.manifest_path)
        .map_err(read_err)?
        .read()
        .await
        .map_err(read_err)?;
    let fast = match spec {
        Some(spec) => avro::read_manifest_entries(&bytes).map(|e| (e, positions(spec))),
        None => Err("partition spec not in the table metadata".to_string()),
    };
    let mut out = Vec::new();
    match fast {
        Ok((entries, (cell_pos, year_pos))) => {
            for e in entries {
                if e.status == 2 || e.content != 0 {
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
                if !pruner.matches(cell.as_deref(), year) {
                    continue;
                }
                // Sequence-number inheritance as in the Iceberg spec (and iceberg-rust).
                let sequence_number = e
                    .sequence_number
                    .or((e.status == 1 || m.sequence_number == 0).then_some(m.sequence_number));
                out.push(FileEntry {
                    path: e.file_path,
                    cell,
                    year,
                    rows: u64::try_from(e.record_count).unwrap_or(0),
                    bytes: u64::try_from(e.file_size_in_bytes).unwrap_or(0),
                    sequence_number,
                });
            }
        }
        Err(why) => {
            tracing::debug!(manifest = %m.manifest_path, %why, "generic manifest reader");
            let manifest = Manifest::parse_avro(&bytes).map_err(read_err)?;
            let (cell_pos, year_pos) = positions(manifest.metadata().partition_spec());
            for entry in manifest.entries() {
                if entry.status() == ManifestStatus::Deleted
                    || entry.content_type() != DataContentType::Data
                {
                    continue;
                }
                let file = entry.data_file();
                let partition = file.partition().fields();
                let value = |pos: Option<usize>| {
                    pos.and_then(|p| partition.get(p)).and_then(Option::as_ref)
                };
                let cell = match value(cell_pos) {
                    Some(Literal::Primitive(PrimitiveLiteral::String(s))) => Some(s.clone()),
                    _ => None,
                };
                let year = match value(year_pos) {
                    Some(Literal::Primitive(PrimitiveLiteral::Int(y))) => Some(y + 1970),
                    Some(Literal::Primitive(PrimitiveLiteral::Long(y))) => {
                        i32::try_from(*y).ok().map(|y| y + 1970)
                    }
                    _ => None,
                };
                if !pruner.matches(cell.as_deref(), year) {
                    continue;
                }
                let sequence_number = entry.sequence_number().or((entry.status()
                    == ManifestStatus::Added
                    || m.sequence_number == 0)
                    .then_some(m.sequence_number));
                out.push(FileEntry {
                    path: file.file_path().to_string(),
                    cell,
                    year,
                    rows: file.record_count(),
                    bytes: file.file_size_in_bytes(),
                    sequence_number,
                });
            }
        }
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
    let file_io = table.file_io().clone();
    let per_manifest: Vec<Vec<FileEntry>> = futures::stream::iter(wanted)
        .map(|m| {
            let io = file_io.clone();
            let spec = metadata.partition_spec_by_id(m.partition_spec_id).cloned();
            async move { manifest_entries(&m, &io, spec.as_deref(), pruner).await }
        })
        .buffer_unordered(MANIFEST_CONCURRENCY)
        .try_collect()
        .await?;
    out.files = per_manifest.into_iter().flatten().collect();
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
