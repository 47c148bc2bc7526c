//! Listing the live data files of the current snapshot from the manifest list and manifests.

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{
    DataContentType, Literal, ManifestContentType, PartitionSpec, PrimitiveLiteral, Transform,
};
use iceberg::table::Table;

use super::prune::{Pruner, is_cell_field};
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
    let manifests: Vec<_> = futures::stream::iter(wanted)
        .map(|m| {
            let io = file_io.clone();
            async move {
                m.load_manifest(&io)
                    .await
                    .map_err(|e| Error::iceberg(format!("reading manifest {}", m.manifest_path), e))
            }
        })
        .buffer_unordered(MANIFEST_CONCURRENCY)
        .try_collect()
        .await?;
    for manifest in manifests {
        let (cell_pos, year_pos) = positions(manifest.metadata().partition_spec());
        for entry in manifest.entries() {
            if !entry.is_alive() || entry.content_type() != DataContentType::Data {
                continue;
            }
            let file = entry.data_file();
            let partition = file.partition().fields();
            let value =
                |pos: Option<usize>| pos.and_then(|p| partition.get(p)).and_then(Option::as_ref);
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
            out.files.push(FileEntry {
                path: file.file_path().to_string(),
                cell,
                year,
                rows: file.record_count(),
                bytes: file.file_size_in_bytes(),
                sequence_number: entry.sequence_number(),
            });
        }
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
