//! `repair` on a catalog that lost its table while the warehouse still holds one (a truncated
//! or replaced `catalog.db`): rebuild the table from the warehouse.
//!
//! ```text
//! newest *.metadata.json (grid, schema, properties) ── or ── --resolution (H3 grid, base schema)
//!   → every data file's footer: its columns (name, field id, type) join the schema
//!   → scratch catalog: create table + register every file (one commit)
//!   → the real catalog registers the finished metadata file (one row) → upload
//! ```
//!
//! The grid is never guessed: without table metadata the user names the H3 resolution (checked
//! against the warehouse's cells). Field ids are kept, because our files carry them and
//! id-based readers (PyIceberg) resolve columns by them: a new table numbers its fields 1..=n,
//! so a schema whose ids have gaps is refused rather than renumbered. The table is built in a
//! scratch catalog and only its finished metadata file is registered, so the real catalog goes
//! from "no table" to "every file registered" in one step: a crash in between leaves it
//! without a table (and `repair` can run again), never with an empty table over a full
//! warehouse.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use iceberg::spec::{NestedFieldRef, Schema, TableMetadata};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::file::metadata::ParquetMetaData;

use super::{BucketFailure, RebuiltTable, RepairMetrics, RepairOptions};
use crate::catalog::datafile::data_file_from_footer;
use crate::catalog::{
    Catalog, METADATA_DIRS, OpenMode, grid_from_properties, grid_properties, metadata_files,
};
use crate::error::{Error, Result};
use crate::grid::GridConfig;
use crate::lock::RenewingLock;
use crate::rewrite::scan::{WarehouseFile, list_warehouse, read_footer};
use crate::schema::{BASE_COLUMNS, ColumnType, PROP_NAME_MAPPING};
use crate::store::Location;

/// Footers read concurrently.
const FOOTER_CONCURRENCY: usize = 16;

/// Rebuild the table (see the module docs).
pub(super) async fn rebuild(
    catalog: &Catalog,
    options: &RepairOptions,
    lock: Option<&RenewingLock>,
) -> Result<RepairMetrics> {
    let warehouse = catalog.warehouse().clone();
    let origin = origin(catalog, options).await?;
    let listing = list_warehouse(&warehouse).await?;
    if origin.metadata.is_none()
        && let GridConfig::H3 { resolution } = origin.grid
    {
        check_cells(&listing, resolution)?;
    }
    let mut metrics = RepairMetrics {
        dry_run: options.dry_run,
        ..Default::default()
    };

    // Pass 1: every file's columns join the schema; a file that contradicts it is skipped.
    let footers: Vec<(WarehouseFile, Result<Vec<FooterColumn>>)> = futures::stream::iter(listing)
        .map(|f| async move {
            let r = async {
                let meta = read_footer(&Location::parse(&f.url)?, f.size).await?;
                footer_columns(&meta, &f.url)
            }
            .await;
            (f, r)
        })
        .buffer_unordered(FOOTER_CONCURRENCY)
        .collect()
        .await;
    let mut plan = SchemaPlan::new(&origin.schema);
    let mut files = Vec::new();
    let mut sorted = footers;
    sorted.sort_by(|a, b| a.0.url.cmp(&b.0.url));
    for (f, r) in sorted {
        match r.and_then(|cols| plan.add_file(&cols)) {
            Ok(()) => files.push(f),
            Err(e) => metrics.skipped.push(BucketFailure {
                bucket: f.url,
                reason: e.to_string(),
            }),
        }
    }
    let schema = plan.schema()?;
    let mut rebuilt = RebuiltTable {
        grid: match &origin.grid {
            GridConfig::H3 { resolution } => format!("h3:{resolution}"),
            GridConfig::GeoJson {
                boundaries_path, ..
            } => format!("geojson:{boundaries_path}"),
        },
        source: match &origin.metadata {
            Some(url) => format!("table metadata {url}"),
            None => "--resolution".to_string(),
        },
        extra_columns: schema
            .as_struct()
            .fields()
            .iter()
            .filter(|f| !BASE_COLUMNS.iter().any(|(n, _)| *n == f.name))
            .map(|f| f.name.clone())
            .collect(),
        metadata_location: None,
    };
    if options.dry_run {
        metrics.added = files.into_iter().map(|f| f.url).collect();
        metrics.rebuilt = Some(rebuilt);
        return Ok(metrics);
    }

    // The table is built in a scratch catalog over the same warehouse...
    let scratch_dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let scratch_db = scratch_dir.path().join("catalog.db");
    let scratch = Catalog::open_with(
        &scratch_db.to_string_lossy(),
        warehouse.url(),
        OpenMode::Create,
    )
    .await?;
    let table = scratch
        .create_table(schema.clone(), origin.properties)
        .await?;
    // A new table numbers nested fields (the covering's) after every top-level field; the
    // files carry the ids the old table gave them.
    let table = if table.metadata().current_schema().as_ref() == &schema {
        table
    } else {
        scratch.set_exact_schema(&table, schema.clone()).await?
    };
    let created = table.metadata().current_schema().clone();
    for f in schema.as_struct().fields() {
        if created.field_by_name(&f.name).map(|c| c.id) != Some(f.id) {
            return Err(Error::Inconsistent(format!(
                "rebuilding table {}: column {} got a new field id; nothing was registered",
                catalog.ident(),
                f.name
            )));
        }
    }
    // Pass 2: one data file per footer.
    let spec_id = table.metadata().default_partition_spec_id();
    let data: Vec<(String, Result<iceberg::spec::DataFile>)> = futures::stream::iter(files)
        .map(|f| {
            let schema = created.clone();
            async move {
                let r = async {
                    let meta = read_footer(&Location::parse(&f.url)?, f.size).await?;
                    data_file_from_footer(&schema, spec_id, &meta, &f.url, f.size, &f.partition)
                }
                .await;
                (f.url, r)
            }
        })
        .buffer_unordered(FOOTER_CONCURRENCY)
        .collect()
        .await;
    let mut added = Vec::new();
    for (url, r) in data {
        match r {
            Ok(df) => {
                metrics.added.push(url);
                added.push(df);
            }
            Err(e) => metrics.skipped.push(BucketFailure {
                bucket: url,
                reason: e.to_string(),
            }),
        }
    }
    metrics.added.sort();
    let props = HashMap::from([
        ("earthcatalog.operation".to_string(), "repair".to_string()),
        ("earthcatalog.repair".to_string(), "rebuild".to_string()),
    ]);
    let table = if added.is_empty() {
        table
    } else {
        scratch.replace_files(&table, &[], added, props).await?
    };
    let location = table.metadata_location().ok_or_else(|| {
        Error::Inconsistent(format!(
            "rebuilt table {} has no metadata location",
            catalog.ident()
        ))
    })?;
    // ...and the real catalog takes it in one step.
    crate::fault::check("repair.before_register")?;
    if let Some(lock) = lock {
        lock.verify().await?;
    }
    let table = catalog.register_table(location).await?;
    catalog.upload().await?;
    rebuilt.metadata_location = Some(location.to_string());
    metrics.rebuilt = Some(rebuilt);
    metrics.snapshot_id = table.metadata().current_snapshot_id();
    Ok(metrics)
}

/// Where the rebuilt table's grid, schema and properties come from.
struct Origin {
    /// The metadata file they came from (`None`: `--resolution`).
    metadata: Option<String>,
    grid: GridConfig,
    schema: Schema,
    properties: HashMap<String, String>,
}

/// The newest readable table metadata file, else the `--resolution` the user gave; never a
/// guess.
async fn origin(catalog: &Catalog, options: &RepairOptions) -> Result<Origin> {
    let warehouse = catalog.warehouse();
    let mut unreadable = Vec::new();
    let mut found = None;
    for m in metadata_files(warehouse).await? {
        match read_metadata(&m.url).await {
            Ok(md) => {
                found = Some((m.url, md));
                break;
            }
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    let default_index = crate::hash_index::default_index_path(warehouse.url());
    if let Some((url, md)) = found {
        let grid = grid_from_properties(md.properties())?;
        if let Some(r) = options.resolution
            && grid != (GridConfig::H3 { resolution: r })
        {
            return Err(Error::invalid_argument(
                "--resolution",
                format!(
                    "the table metadata {url} records the grid {grid:?}; drop the flag (the \
                     recorded grid wins)"
                ),
            ));
        }
        let mut properties = md.properties().clone();
        properties.remove(PROP_NAME_MAPPING);
        for (k, v) in grid_properties(&grid, &default_index) {
            properties.entry(k).or_insert(v);
        }
        return Ok(Origin {
            metadata: Some(url),
            grid,
            schema: md.current_schema().as_ref().clone(),
            properties,
        });
    }
    let Some(resolution) = options.resolution else {
        let why = if unreadable.is_empty() {
            format!(
                "no table metadata ({}/*.metadata.json) records it",
                METADATA_DIRS
                    .iter()
                    .map(|d| warehouse.url_of(d))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        } else {
            format!(
                "no table metadata file could be read ({})",
                unreadable.join("; ")
            )
        };
        return Err(Error::Refused {
            action: format!(
                "rebuild table {} in catalog {} without knowing its grid",
                catalog.ident(),
                catalog.url()
            ),
            reason: format!(
                "{why}; pass --resolution N, the H3 resolution the warehouse was ingested with"
            ),
        });
    };
    if resolution > 15 {
        return Err(Error::invalid_argument(
            "--resolution",
            format!("{resolution} is out of range 0..=15"),
        ));
    }
    let grid = GridConfig::H3 { resolution };
    Ok(Origin {
        metadata: None,
        properties: grid_properties(&grid, &default_index),
        grid,
        schema: crate::schema::base_schema()?,
    })
}

async fn read_metadata(url: &str) -> Result<TableMetadata> {
    let bytes = Location::parse(url)?.get_bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
        location: url.to_string(),
        reason: e.to_string(),
    })
}

/// The `--resolution` must be the resolution of the warehouse's H3 cells.
fn check_cells(listing: &[WarehouseFile], resolution: u8) -> Result<()> {
    for f in listing {
        let Ok(cell) = f.partition.cell.parse::<h3o::CellIndex>() else {
            continue;
        };
        let found = u8::from(cell.resolution());
        if found != resolution {
            return Err(Error::invalid_argument(
                "--resolution",
                format!(
                    "the warehouse's cells are H3 resolution {found} (e.g. {}), not \
                     {resolution}",
                    f.url
                ),
            ));
        }
        return Ok(());
    }
    Ok(())
}

/// A column of a data file: name, Iceberg field id (when the file carries one) and type.
#[derive(Debug, Clone, PartialEq)]
struct FooterColumn {
    name: String,
    id: Option<i32>,
    ty: ColumnType,
}

/// The top-level columns of a Parquet file that a table column can hold.
fn footer_columns(meta: &ParquetMetaData, url: &str) -> Result<Vec<FooterColumn>> {
    let fm = meta.file_metadata();
    let arrow = parquet::arrow::parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
        .map_err(|e| Error::parquet(url, e))?;
    Ok(arrow
        .fields()
        .iter()
        .filter_map(|f| {
            Some(FooterColumn {
                name: f.name().clone(),
                id: f
                    .metadata()
                    .get(PARQUET_FIELD_ID_META_KEY)
                    .and_then(|v| v.parse().ok()),
                ty: column_type(f.data_type())?,
            })
        })
        .collect())
}

/// The table column type of an Arrow type (nested types have none: they stay in the file).
fn column_type(dt: &arrow_schema::DataType) -> Option<ColumnType> {
    use arrow_schema::DataType as D;
    Some(match dt {
        D::Utf8 | D::LargeUtf8 | D::Utf8View => ColumnType::String,
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 => {
            ColumnType::Long
        }
        D::Float16 | D::Float32 | D::Float64 => ColumnType::Double,
        D::Boolean => ColumnType::Boolean,
        D::Timestamp(..) => ColumnType::TimestampTz,
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => ColumnType::Binary,
        D::Struct(fields)
            if fields.len() == 4
                && fields
                    .iter()
                    .zip(crate::schema::COVERING_FIELDS)
                    .all(|(f, name)| f.name() == name && f.data_type() == &D::Float32) =>
        {
            ColumnType::Bbox
        }
        _ => return None,
    })
}

/// The schema being assembled: the origin's fields plus the columns files bring.
struct SchemaPlan {
    by_id: BTreeMap<i32, NestedFieldRef>,
    by_name: HashMap<String, i32>,
    /// Columns without a field id, in the order first seen (numbered after every id).
    unnumbered: Vec<(String, ColumnType)>,
}

impl SchemaPlan {
    fn new(schema: &Schema) -> Self {
        let by_id: BTreeMap<i32, NestedFieldRef> = schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.id, f.clone()))
            .collect();
        let by_name = by_id.iter().map(|(id, f)| (f.name.clone(), *id)).collect();
        Self {
            by_id,
            by_name,
            unnumbered: Vec::new(),
        }
    }

    /// Add a file's columns, or explain why the file contradicts the schema (then nothing of
    /// it is added).
    fn add_file(&mut self, columns: &[FooterColumn]) -> Result<()> {
        let mut new: Vec<&FooterColumn> = Vec::new();
        for c in columns {
            match (self.by_name.get(&c.name), c.id) {
                (Some(known), Some(id)) if *known != id => {
                    return Err(Error::Inconsistent(format!(
                        "column {} has field id {id} in this file but {known} in the table",
                        c.name
                    )));
                }
                (Some(_), _) => {}
                (None, Some(id)) => {
                    let other = self.by_id.get(&id).map(|f| f.name.clone()).or_else(|| {
                        new.iter()
                            .find(|n| n.id == Some(id) && n.name != c.name)
                            .map(|n| n.name.clone())
                    });
                    if let Some(other) = other {
                        return Err(Error::Inconsistent(format!(
                            "field id {id} is column {} in this file but {other} in the table",
                            c.name
                        )));
                    }
                    new.push(c);
                }
                (None, None) => new.push(c),
            }
        }
        for c in new {
            match c.id {
                Some(id) => {
                    self.by_id.insert(
                        id,
                        std::sync::Arc::new(crate::schema::field(id, &c.name, c.ty)),
                    );
                    self.by_name.insert(c.name.clone(), id);
                }
                None => {
                    if !self.unnumbered.iter().any(|(n, _)| n == &c.name) {
                        self.unnumbered.push((c.name.clone(), c.ty));
                    }
                }
            }
        }
        Ok(())
    }

    /// The highest field id in use, nested fields included.
    fn highest_id(&self) -> i32 {
        self.by_id
            .values()
            .map(|f| match f.field_type.as_ref() {
                iceberg::spec::Type::Struct(st) => st
                    .fields()
                    .iter()
                    .map(|c| c.id)
                    .max()
                    .unwrap_or(f.id)
                    .max(f.id),
                _ => f.id,
            })
            .max()
            .unwrap_or(0)
    }

    /// The schema: fields in id order; ids must run 1..=n (a new table numbers them so).
    fn schema(mut self) -> Result<Schema> {
        for (name, ty) in std::mem::take(&mut self.unnumbered) {
            if self.by_name.contains_key(&name) {
                continue;
            }
            let id = self.highest_id() + 1;
            self.by_id
                .insert(id, std::sync::Arc::new(crate::schema::field(id, &name, ty)));
            self.by_name.insert(name, id);
        }
        // Every id in use, the covering's fields included.
        let mut ids: std::collections::BTreeSet<i32> = self.by_id.keys().copied().collect();
        for f in self.by_id.values() {
            if let iceberg::spec::Type::Struct(st) = f.field_type.as_ref() {
                ids.extend(st.fields().iter().map(|c| c.id));
            }
        }
        let last = ids.last().copied().unwrap_or(0);
        let missing: Vec<i32> = (1..=last).filter(|id| !ids.contains(id)).collect();
        if !missing.is_empty() {
            return Err(Error::Refused {
                action: "rebuild the table".into(),
                reason: format!(
                    "the columns' field ids (from the table metadata and the files' footers) \
                     skip {missing:?}; a new table would renumber them and no longer match the \
                     files"
                ),
            });
        }
        let fields: Vec<NestedFieldRef> = self.by_id.into_values().collect();
        Schema::builder()
            .with_schema_id(0)
            .with_fields(fields)
            .build()
            .map_err(|e| Error::iceberg("building the rebuilt table's schema", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, id: Option<i32>, ty: ColumnType) -> FooterColumn {
        FooterColumn {
            name: name.into(),
            id,
            ty,
        }
    }

    #[test]
    fn file_columns_join_the_schema_with_their_ids() {
        let mut plan = SchemaPlan::new(&crate::schema::base_schema().unwrap());
        plan.add_file(&[
            col("id", Some(1), ColumnType::String),
            col("eo:cloud_cover", Some(29), ColumnType::Double),
        ])
        .unwrap();
        plan.add_file(&[col("instruments", Some(30), ColumnType::String)])
            .unwrap();
        // A Python-tool file without ids: known names match, new names are numbered last.
        plan.add_file(&[
            col("id", None, ColumnType::String),
            col("legacy", None, ColumnType::Long),
        ])
        .unwrap();
        let s = plan.schema().unwrap();
        assert_eq!(s.field_by_name("eo:cloud_cover").unwrap().id, 29);
        assert_eq!(s.field_by_name("instruments").unwrap().id, 30);
        assert_eq!(s.field_by_name("legacy").unwrap().id, 31);
        assert_eq!(s.as_struct().fields().len(), 31);
    }

    #[test]
    fn a_file_that_contradicts_the_ids_is_refused_whole() {
        let mut plan = SchemaPlan::new(&crate::schema::base_schema().unwrap());
        let err = plan
            .add_file(&[
                col("brand_new", Some(29), ColumnType::String),
                col("platform", Some(6), ColumnType::String),
            ])
            .unwrap_err();
        assert!(err.to_string().contains("platform"), "{err}");
        let err = plan
            .add_file(&[col("other", Some(3), ColumnType::String)])
            .unwrap_err();
        assert!(err.to_string().contains("geometry"), "{err}");
        // Nothing of the refused files was added.
        assert_eq!(plan.schema().unwrap().as_struct().fields().len(), 28);
    }

    #[test]
    fn gaps_in_the_ids_are_refused_not_renumbered() {
        let mut plan = SchemaPlan::new(&crate::schema::base_schema().unwrap());
        plan.add_file(&[col("late", Some(31), ColumnType::String)])
            .unwrap();
        let err = plan.schema().unwrap_err();
        assert!(matches!(err, Error::Refused { .. }));
        assert!(err.to_string().contains("[29, 30]"), "{err}");
    }

    #[test]
    fn arrow_types_map_to_table_columns() {
        use arrow_schema::{DataType as D, TimeUnit};
        assert_eq!(column_type(&D::LargeUtf8), Some(ColumnType::String));
        assert_eq!(column_type(&D::Int32), Some(ColumnType::Long));
        assert_eq!(
            column_type(&D::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))),
            Some(ColumnType::TimestampTz)
        );
        assert_eq!(column_type(&D::Binary), Some(ColumnType::Binary));
        assert_eq!(column_type(&D::Null), None);
    }
}
