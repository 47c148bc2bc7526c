//! Collections and their extents, from the snapshot's manifests.
//!
//! * **Which collections**: a file whose manifest bounds of `collection` are equal holds only
//!   that value (Iceberg's truncated string bounds differ when truncated, so equal bounds are
//!   exact); a file with no non-null value holds none; any other file's `collection` column is
//!   read once (dictionary pages, a few range reads) and remembered by path across reloads —
//!   data files never change.
//! * **Spatial extent**: the union of the bounding boxes of the H3 cells of the collection's
//!   files. Every item footprint lies within the cells it touches, so this covers every item
//!   (it may be larger by up to a cell). Files of other grids (GeoJSON regions, items without
//!   geometry) make it the whole world.
//! * **Temporal extent**: the smallest `datetime`/`start_datetime` and the largest
//!   `datetime`/`end_datetime` bound of its files' manifest statistics (open when unknown).

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::cast::AsArray;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use super::state::CollectionMemo;
use crate::catalog::avro::ColumnStats;
use crate::error::{Error, Result};
use crate::query::SnapshotFiles;
use crate::store::Location;

/// Files whose `collection` column is read at once.
const READ_CONCURRENCY: usize = 16;

/// One collection of the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSummary {
    /// The collection id.
    pub id: String,
    /// `[minx, miny, maxx, maxy]`.
    pub bbox: [f64; 4],
    /// Earliest time bound, µs (`None`: open).
    pub start: Option<i64>,
    /// Latest time bound, µs (`None`: open).
    pub end: Option<i64>,
    /// Live files holding items of it.
    pub files: usize,
}

/// What a file's manifest statistics say about its collections (`None` in the list: items
/// stored without one).
fn collections_from_stats(stats: Option<&ColumnStats>) -> Option<Vec<Option<String>>> {
    let s = stats?;
    let nulls = s.nulls?;
    if s.values == Some(nulls) {
        return Some(vec![None]).filter(|_| nulls > 0).or(Some(Vec::new()));
    }
    match (&s.lower, &s.upper) {
        (Some(lo), Some(hi)) if lo == hi => {
            let mut out = vec![Some(String::from_utf8(lo.clone()).ok()?)];
            if nulls > 0 {
                out.push(None);
            }
            Some(out)
        }
        _ => None,
    }
}

/// The distinct values of a file's `collection` column (`None`: rows without one).
async fn read_collections(path: &str, size: u64) -> Result<Vec<Option<String>>> {
    let loc = Location::parse(path)?;
    let mut reader = ParquetObjectReader::new(loc.store().clone(), loc.prefix().clone());
    if size > 0 {
        reader = reader.with_file_size(size);
    }
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| Error::parquet(path, e))?;
    let Ok(column) = builder.schema().index_of("collection") else {
        return Ok(vec![None]);
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let mut stream = builder
        .with_projection(mask)
        .build()
        .map_err(|e| Error::parquet(path, e))?;
    let mut out = BTreeSet::new();
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| Error::parquet(path, e))?
    {
        let col = crate::geoparquet::read::normalise(batch.column(0), path)?;
        match col.as_string_opt::<i32>() {
            Some(s) => out.extend(s.iter().map(|v| v.map(str::to_string))),
            None => {
                out.insert(None);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The bounding box of a partition key: an H3 cell's, else the whole world.
fn cell_bbox(cell: Option<&str>) -> [f64; 4] {
    const WORLD: [f64; 4] = [-180.0, -90.0, 180.0, 90.0];
    let Some(cell) = cell.and_then(|c| c.parse::<h3o::CellIndex>().ok()) else {
        return WORLD;
    };
    let boundary = cell.boundary();
    let (mut minx, mut miny, mut maxx, mut maxy) = (180.0f64, 90.0f64, -180.0f64, -90.0f64);
    for v in boundary.iter() {
        minx = minx.min(v.lng());
        maxx = maxx.max(v.lng());
        miny = miny.min(v.lat());
        maxy = maxy.max(v.lat());
    }
    if maxx - minx > 180.0 {
        // Crosses the antimeridian or holds a pole: every longitude, up to the pole.
        let centre = h3o::LatLng::from(cell).lat();
        return if centre > 0.0 {
            [-180.0, miny, 180.0, 90.0]
        } else {
            [-180.0, -90.0, 180.0, maxy]
        };
    }
    [minx, miny, maxx, maxy]
}

fn lock(
    m: &CollectionMemo,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Vec<Option<String>>>> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Summarise the collections of a snapshot's files (see the module docs); items stored
/// without a collection count as `default`'s.
pub(crate) async fn summarize(
    files: &SnapshotFiles,
    memo: &CollectionMemo,
    default: &str,
) -> Result<Vec<CollectionSummary>> {
    // Files whose collections the statistics do not tell and that were never read.
    let unknown: Vec<(String, u64)> = {
        let known = lock(memo);
        files
            .entries()
            .iter()
            .filter(|(e, _)| {
                collections_from_stats(e.stats.first()).is_none()
                    && !known.contains_key(&e.file.path)
            })
            .map(|(e, _)| (e.file.path.clone(), e.file.bytes))
            .collect()
    };
    let read: Vec<(String, Vec<Option<String>>)> = futures::stream::iter(unknown)
        .map(|(path, size)| async move {
            let c = read_collections(&path, size).await?;
            Ok::<_, Error>((path, c))
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let known = {
        let mut m = lock(memo);
        m.extend(read);
        m.clone()
    };
    let mut out: BTreeMap<String, CollectionSummary> = BTreeMap::new();
    for (entry, extent) in files.entries() {
        let ids = collections_from_stats(entry.stats.first())
            .or_else(|| known.get(&entry.file.path).cloned())
            .unwrap_or_default();
        if ids.is_empty() {
            continue;
        }
        let bbox = cell_bbox(entry.file.cell.as_deref());
        let lo = [extent.datetime.min, extent.start.min]
            .into_iter()
            .flatten()
            .min();
        let hi = [extent.datetime.max, extent.end.max]
            .into_iter()
            .flatten()
            .max();
        for id in ids {
            let id = id.unwrap_or_else(|| default.to_string());
            let c = out.entry(id.clone()).or_insert_with(|| CollectionSummary {
                id,
                bbox,
                start: lo,
                end: hi,
                files: 0,
            });
            c.files += 1;
            c.bbox = [
                c.bbox[0].min(bbox[0]),
                c.bbox[1].min(bbox[1]),
                c.bbox[2].max(bbox[2]),
                c.bbox[3].max(bbox[3]),
            ];
            // An unknown bound on any file leaves that side open.
            c.start = match (c.start, lo) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            };
            c.end = match (c.end, hi) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_bounds_name_the_only_collection() {
        let s = |lo: &str, hi: &str, values, nulls| ColumnStats {
            values: Some(values),
            nulls: Some(nulls),
            lower: Some(lo.as_bytes().to_vec()),
            upper: Some(hi.as_bytes().to_vec()),
        };
        assert_eq!(
            collections_from_stats(Some(&s("a", "a", 3, 1))),
            Some(vec![Some("a".to_string()), None])
        );
        assert_eq!(
            collections_from_stats(Some(&s("a", "a", 3, 0))),
            Some(vec![Some("a".to_string())])
        );
        assert_eq!(collections_from_stats(Some(&s("a", "b", 3, 0))), None);
        let all_null = ColumnStats {
            values: Some(2),
            nulls: Some(2),
            lower: None,
            upper: None,
        };
        assert_eq!(collections_from_stats(Some(&all_null)), Some(vec![None]));
        assert_eq!(collections_from_stats(None), None);
    }

    #[test]
    fn cell_boxes_cover_the_cell() {
        let b = cell_bbox(Some("82091ffffffffff"));
        assert!(
            b[0] < 0.5 && b[2] > -0.5 && b[1] < 65.0 && b[3] > 65.0,
            "{b:?}"
        );
        assert_eq!(cell_bbox(Some("__none__")), [-180.0, -90.0, 180.0, 90.0]);
        assert_eq!(cell_bbox(None), [-180.0, -90.0, 180.0, 90.0]);
    }
}
