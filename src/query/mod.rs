//! Query and inspect a warehouse: catalog report, per-bucket statistics, file pruning and
//! native item search ([`Warehouse::search`], see `search.rs` for its semantics).
//!
//! ```text
//! geometry ─▶ cells (the ingest Partitioner of the table's grid) ┐
//! start/end ─▶ UTC years ─────────────────────────────────────────┴▶ Pruner
//! catalog.db ─▶ table ─▶ current snapshot ─▶ manifest list (partition summaries prune manifests)
//!            ─▶ manifests (partition tuples prune files) ─▶ data file paths
//! ```
//!
//! Design decisions:
//! * **Same cells as ingest.** The query geometry goes through the partitioner built from the
//!   table's grid properties (Python defaults `h3`/1 when absent), so a file holding an item
//!   whose footprint touches the query region always shares a cell with the query.
//! * **Manifests only.** Pruning reads the manifest list and manifests, never data files.
//! * **Null years are candidates.** Files in `year=unknown` are kept when a date range is given
//!   (their rows are filtered by datetime when read); stats and info report them as a `null`
//!   year instead of crashing (`docs/decisions.md`, inputs that break the Python tool).
//! * **Read-only.** Opening never creates a catalog: a missing local `catalog.db` is an error.

mod batches;
mod cache;
mod export;
mod files;
mod input;
mod locate;
mod map;
mod params;
mod prune;
mod rehydrate;
mod search;
mod summary;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use geo_types::Geometry;
use iceberg::table::Table;

pub use crate::catalog::live::{FileEntry, Scan, StatEntry};
pub use crate::catalog::prune::{Pruner, TimeFilter, temporal_match};
pub use batches::{DEFAULT_BATCH_ROWS, ItemEncoder};
pub use cache::{CacheStats, DecodedFiles};
pub use export::{CHUNK_ITEMS, ExportFormat, ExportMetrics, ExportOptions};
pub use files::SnapshotFiles;
pub use input::{
    bbox_geometry, parse_bbox, parse_datetime, parse_geometry, parse_point, parse_wkt,
};
pub use locate::{
    Bucket, IdLocator, LocatorStats, ROW_GROUP_ROWS, build_locator, default_locator_path,
    id_buckets, read_item,
};
pub use map::{MapOptions, MapSummary, coverage_svg, escape_markup};
pub use params::{ArgStyle, SearchParams};
pub use prune::{cell_list_sql, cells_for_geometry};
pub use rehydrate::{
    ItemBatch, Relink, item_json, relink_item, wkb_geometry, wkb_to_geojson, write_item,
};
pub use search::{
    DatetimeInterval, Fields, Found, MAX_FILTER_BYTES, MAX_FILTER_DEPTH, READ_CONCURRENCY,
    SearchCounts, SearchRequest, SearchStats, SortBy, footprint_intersects, parse_filter,
};
pub use summary::{
    BASE_FIELD_IDS, BucketStats, CatalogInfo, SchemaField, SnapshotInfo, YearRows, bucket_stats,
    top_buckets,
};

use crate::catalog::{Catalog, grid_from_properties};
use crate::error::{Error, Result};
use crate::grid::{GridConfig, Partitioner};
use crate::schema::{
    NAMESPACE, PROP_GRID_BOUNDARIES, PROP_GRID_ID_FIELD, PROP_HASH_INDEX, TABLE_NAME,
};
use crate::store::Location;

/// Buckets listed in [`CatalogInfo::top_buckets`].
pub const TOP_BUCKETS: usize = 15;

/// A read-only handle on a catalog and its warehouse, reading the table's current snapshot or
/// one pinned with [`Warehouse::at_snapshot`].
#[derive(Clone)]
pub struct Warehouse {
    catalog_url: String,
    catalog: Arc<Catalog>,
    table: Option<Table>,
    warehouse: Option<String>,
    grid: GridConfig,
    /// The snapshot read; `None`: the table's current one.
    pinned: Option<i64>,
    /// The grid's partitioner, built once.
    partitioner: Arc<tokio::sync::OnceCell<Arc<dyn Partitioner>>>,
    /// The snapshot's live files held in memory ([`Warehouse::cache_files`]).
    files: Option<Arc<SnapshotFiles>>,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("catalog", &self.catalog_url)
            .field("warehouse", &self.warehouse)
            .field("grid", &self.grid)
            .field("table_exists", &self.table.is_some())
            .field("pinned", &self.pinned)
            .field("files_cached", &self.files.is_some())
            .finish()
    }
}

impl Warehouse {
    /// Open the catalog at `catalog` read-only. `warehouse` defaults to the table location
    /// without its `/earthcatalog/stac_items` suffix.
    pub async fn open(catalog: &str, warehouse: Option<&str>) -> Result<Self> {
        let loc = Location::parse(catalog)?;
        if loc.is_local() {
            let path = std::path::PathBuf::from(format!("/{}", loc.prefix().as_ref()));
            if !path.is_file() {
                return Err(Error::NotFound {
                    what: "catalog".into(),
                    location: catalog.to_string(),
                    hint: format!(" (no file at {})", path.display()),
                });
            }
        } else {
            use object_store::ObjectStoreExt as _;
            match loc.store().head(loc.prefix()).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(Error::NotFound {
                        what: "catalog".into(),
                        location: catalog.to_string(),
                        hint: String::new(),
                    });
                }
                Err(e) => return Err(Error::store(loc.url(), e)),
            }
        }
        // The warehouse only matters to a catalog when it creates tables; reading needs none.
        let placeholder = match warehouse {
            Some(w) => w.to_string(),
            None => loc
                .split_last()
                .map(|(dir, _)| dir.url().to_string())
                .unwrap_or_else(|| loc.url().to_string()),
        };
        let cat = Catalog::open(catalog, &placeholder).await?;
        let table = cat.load_table().await?;
        let grid = match &table {
            Some(t) => grid_from_properties(t.metadata().properties())?,
            None => GridConfig::H3 { resolution: 1 },
        };
        let warehouse = match (warehouse, &table) {
            (Some(w), _) => Some(Location::parse(w)?.url().to_string()),
            (None, Some(t)) => Some(warehouse_from_table_location(t.metadata().location())),
            (None, None) => None,
        };
        Ok(Self {
            catalog_url: catalog.to_string(),
            catalog: Arc::new(cat),
            table,
            warehouse,
            grid,
            pinned: None,
            partitioner: Arc::default(),
            files: None,
        })
    }

    /// The same warehouse reading snapshot `snapshot_id` of the table (from its metadata
    /// history) instead of the current one. A snapshot the table does not list (expired by
    /// maintenance, or of another table) is [`Error::NotFound`]. The in-memory file list of
    /// [`Warehouse::cache_files`] is not carried over.
    pub fn at_snapshot(&self, snapshot_id: i64) -> Result<Self> {
        let known = self
            .table
            .as_ref()
            .is_some_and(|t| t.metadata().snapshot_by_id(snapshot_id).is_some());
        if !known {
            return Err(Error::NotFound {
                what: "snapshot".into(),
                location: snapshot_id.to_string(),
                hint: format!(" in the table of catalog {}", self.catalog_url),
            });
        }
        let mut out = self.clone();
        out.pinned = Some(snapshot_id);
        out.files = None;
        Ok(out)
    }

    /// The snapshot this handle reads: the pinned one, else the table's current one (`None`
    /// for a missing table or one without snapshots).
    pub fn snapshot_id(&self) -> Option<i64> {
        self.pinned.or_else(|| {
            self.table
                .as_ref()
                .and_then(|t| t.metadata().current_snapshot_id())
        })
    }

    /// Read the snapshot's live file list (with temporal extents and `collection` bounds)
    /// once and keep it in memory: later [`Warehouse::scan`]s and searches prune it without
    /// reading manifests (a server answering many queries of one snapshot). Memory: a few
    /// hundred bytes per live file.
    pub async fn cache_files(&mut self) -> Result<()> {
        let Some(table) = &self.table else {
            self.files = Some(Arc::new(SnapshotFiles::default()));
            return Ok(());
        };
        let (entries, manifests) =
            crate::catalog::live::live_entries(table, self.pinned, &["collection"]).await?;
        self.files = Some(Arc::new(SnapshotFiles::new(entries, manifests)));
        Ok(())
    }

    /// The in-memory file list, when [`Warehouse::cache_files`] loaded it.
    pub fn cached_files(&self) -> Option<&Arc<SnapshotFiles>> {
        self.files.as_ref()
    }

    /// The version (ETag / object version) of a remote `catalog.db` as downloaded; `None` for
    /// a local catalog.
    pub fn catalog_version(&self) -> Option<object_store::UpdateVersion> {
        self.catalog.remote_version()
    }

    /// The catalog location as given to [`Warehouse::open`].
    pub fn catalog_url(&self) -> &str {
        &self.catalog_url
    }

    /// The table, if it exists.
    pub fn table(&self) -> Option<&Table> {
        self.table.as_ref()
    }

    /// The grid recorded in the table (h3/1 when absent).
    pub fn grid(&self) -> &GridConfig {
        &self.grid
    }

    /// The warehouse root, if known.
    pub fn warehouse(&self) -> Option<&str> {
        self.warehouse.as_deref()
    }

    /// The hash index of this catalog: the table property, else `<warehouse>_id_hashes.parquet`.
    pub fn hash_index_path(&self) -> Option<String> {
        self.table
            .as_ref()
            .and_then(|t| t.metadata().properties().get(PROP_HASH_INDEX).cloned())
            .or_else(|| {
                self.warehouse
                    .as_deref()
                    .map(crate::hash_index::default_index_path)
            })
    }

    /// The id locator of this catalog: `<warehouse>_id_locator.parquet`, beside the hash index
    /// (see [`IdLocator`]).
    pub fn locator_path(&self) -> Option<String> {
        self.warehouse.as_deref().map(default_locator_path)
    }

    /// The partitioner ingest used for this table (built once per handle).
    pub async fn partitioner(&self) -> Result<Arc<dyn Partitioner>> {
        self.partitioner
            .get_or_try_init(|| self.grid.load_partitioner())
            .await
            .cloned()
    }

    /// The cells (partition keys) a query geometry touches.
    pub async fn cells_for_geometry(&self, geometry: &Geometry<f64>) -> Result<BTreeSet<String>> {
        let partitioner = self.partitioner().await?;
        Ok(cells_for_geometry(partitioner.as_ref(), geometry))
    }

    /// The live data files of the snapshot read (see [`Warehouse::snapshot_id`]) that
    /// `pruner` keeps; from memory after [`Warehouse::cache_files`].
    pub async fn scan(&self, pruner: &Pruner) -> Result<Scan> {
        match (&self.table, &self.files) {
            (Some(_), _) if pruner.is_empty() => Ok(Scan::default()),
            (Some(_), Some(files)) => Ok(files.scan(pruner)),
            (Some(t), None) => crate::catalog::live::scan_at(t, self.pinned, pruner).await,
            (None, _) => Ok(Scan::default()),
        }
    }

    /// [`Warehouse::scan`] for a search: a server's searches index the snapshot's file list
    /// held in memory instead of copying it (a suspended page stream keeps the files it has
    /// still to read).
    pub(crate) async fn search_files(&self, pruner: &Pruner) -> Result<search::SearchFiles> {
        match (&self.table, &self.files) {
            (Some(_), Some(files)) => Ok(search::SearchFiles::Shared(
                Arc::clone(files),
                files.picked(pruner),
            )),
            _ => Ok(search::SearchFiles::Owned(self.scan(pruner).await?.files)),
        }
    }

    /// Statistics per (cell, year), sorted by (cell, year); null years come first in a cell.
    pub async fn stats(&self) -> Result<Vec<BucketStats>> {
        let scan = self.scan(&Pruner::default()).await?;
        Ok(bucket_stats(&scan.files))
    }

    /// Data files that can hold items intersecting `geometry` (any when `None`) with a datetime
    /// in `[start, end]` (open ends when `None`), from the manifests only. Files whose year is
    /// unknown are kept. Paths are as registered, sorted.
    pub async fn file_paths(
        &self,
        geometry: Option<&Geometry<f64>>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>> {
        let cells = match geometry {
            Some(g) => Some(self.cells_for_geometry(g).await?),
            None => None,
        };
        let scan = self.scan(&Pruner::new(cells, start, end)).await?;
        Ok(scan.files.into_iter().map(|f| f.path).collect())
    }

    /// The catalog report.
    pub async fn info(&self) -> Result<CatalogInfo> {
        let (grid_type, grid_resolution, boundaries, id_field) = match &self.grid {
            GridConfig::H3 { resolution } => ("h3".to_string(), Some(*resolution), None, None),
            GridConfig::GeoJson {
                boundaries_path,
                id_field,
            } => (
                "geojson".to_string(),
                None,
                Some(boundaries_path.clone()),
                Some(id_field.clone()),
            ),
        };
        let mut info = CatalogInfo {
            catalog: self.catalog_url.clone(),
            warehouse: self.warehouse.clone(),
            table_exists: self.table.is_some(),
            table_location: None,
            grid_type,
            grid_resolution,
            grid_boundaries_path: boundaries,
            grid_id_field: id_field,
            snapshot: None,
            snapshot_count: 0,
            manifest_count: 0,
            files: 0,
            rows: 0,
            bytes: 0,
            distinct_cells: 0,
            year_range: None,
            years: Vec::new(),
            top_buckets: Vec::new(),
            compaction_candidates: 0,
            compaction_candidate_files: 0,
            hash_index_path: None,
            hash_index_rows: None,
            hash_index_error: None,
            schema: Vec::new(),
        };
        let Some(table) = &self.table else {
            return Ok(info);
        };
        let md = table.metadata();
        let props = md.properties();
        // Keep what the table says even for grids we could not build a partitioner for.
        if info.grid_boundaries_path.is_none() {
            info.grid_boundaries_path = props.get(PROP_GRID_BOUNDARIES).cloned();
        }
        if info.grid_id_field.is_none() {
            info.grid_id_field = props.get(PROP_GRID_ID_FIELD).cloned();
        }
        info.table_location = Some(md.location().to_string());
        info.snapshot_count = md.snapshots().len();
        info.snapshot = md.current_snapshot().map(|s| SnapshotInfo {
            id: s.snapshot_id(),
            timestamp: s.timestamp().ok(),
            operation: s.summary().operation.as_str().to_string(),
        });
        info.schema = md
            .current_schema()
            .as_struct()
            .fields()
            .iter()
            .map(|f| SchemaField {
                id: f.id,
                name: f.name.clone(),
                ty: type_text(&f.field_type),
                evolved: f.id > BASE_FIELD_IDS,
            })
            .collect();

        let scan = self.scan(&Pruner::default()).await?;
        let buckets = bucket_stats(&scan.files);
        let t = summary::totals(&scan.files, &buckets);
        info.manifest_count = scan.manifests;
        info.files = t.files;
        info.rows = t.rows;
        info.bytes = t.bytes;
        info.distinct_cells = t.distinct_cells;
        info.year_range = t.year_range;
        info.years = t.years;
        info.compaction_candidates = t.compaction_candidates;
        info.compaction_candidate_files = t.compaction_candidate_files;
        info.top_buckets = top_buckets(&buckets, TOP_BUCKETS);

        info.hash_index_path = self.hash_index_path();
        if let Some(path) = &info.hash_index_path {
            let len = match Location::parse(path) {
                Ok(loc) => crate::hash_index::index_len(&loc).await,
                Err(e) => Err(e),
            };
            match len {
                Ok(rows) => info.hash_index_rows = rows,
                Err(e) => info.hash_index_error = Some(e.to_string()),
            }
        }
        Ok(info)
    }
}

/// `<warehouse>/earthcatalog/stac_items` → `<warehouse>`; other locations are returned as is.
pub fn warehouse_from_table_location(location: &str) -> String {
    let location = location.trim_end_matches('/');
    let suffix = format!("/{NAMESPACE}/{TABLE_NAME}");
    location
        .strip_suffix(&suffix)
        .unwrap_or(location)
        .to_string()
}

/// A field type as `info` shows it: primitives by name, structs with their fields
/// (`struct<xmin: float, …>`).
fn type_text(ty: &iceberg::spec::Type) -> String {
    match ty {
        iceberg::spec::Type::Struct(st) => {
            let fields: Vec<String> = st
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name, type_text(&f.field_type)))
                .collect();
            format!("struct<{}>", fields.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warehouse_is_derived_from_the_table_location() {
        assert_eq!(
            warehouse_from_table_location("s3://b/catalog/warehouse/earthcatalog/stac_items/"),
            "s3://b/catalog/warehouse"
        );
        assert_eq!(
            warehouse_from_table_location("file:///tmp/wh/earthcatalog/stac_items"),
            "file:///tmp/wh"
        );
        assert_eq!(warehouse_from_table_location("/x/y"), "/x/y");
    }

    #[tokio::test]
    async fn a_missing_local_catalog_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope/catalog.db");
        let err = Warehouse::open(path.to_str().unwrap(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(!path.exists());
        let err = Warehouse::open("memory://query-missing/catalog.db", None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
}
