//! The Iceberg catalog: a PyIceberg-compatible SQLite SQL catalog (`catalog.db`) that may live
//! locally or on object storage.
//!
//! A remote `catalog.db` is downloaded to a temporary file when opened and uploaded with
//! [`Catalog::upload`]; callers hold the catalog lock for the whole download → mutate → upload
//! sequence. Every change is one Iceberg commit (new metadata file + compare-and-swap of the
//! metadata pointer in `iceberg_tables`), so a crash leaves the table before or after a commit.
//!
//! # Waits on `catalog.db`
//!
//! Another connection (a concurrent earthcatalog or PyIceberg process, an `sqlite3` shell) can
//! hold a SQLite lock on a local `catalog.db`. Every wait for it is bounded, and the error names
//! the catalog file:
//!
//! * our own connections here (schema preparation, WAL checkpoint) wait at most
//!   [`SQLITE_BUSY_TIMEOUT`] per statement, then fail with `database is locked`;
//! * the commit's compare-and-swap (`replace`) and the iceberg-catalog-sql pool (one
//!   connection) use sqlx's defaults — the pool's cannot be changed through its properties: the
//!   same 5 s busy timeout per statement, and 30 s to acquire the pooled connection.
//!
//! Readers (`info`, `search`, …) are only blocked while a writer holds the exclusive lock, which
//! SQLite takes just for the moment of a commit; a connection that keeps `BEGIN EXCLUSIVE` open
//! makes them fail after the timeout instead of hanging.

pub mod avro;
pub mod datafile;
pub mod live;
pub mod prune;
pub mod replace;
pub mod storage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog as _, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use sqlx::Connection;

use crate::error::{Error, Result};
use crate::grid::GridConfig;
use crate::partition::{Layout, PROP_LAYOUT};
use crate::schema::{
    CATALOG_NAME, COVERING_COLUMN, ColumnType, NAMESPACE, PROP_GRID_BOUNDARIES, PROP_GRID_ID_FIELD,
    PROP_GRID_RESOLUTION, PROP_GRID_TYPE, PROP_HASH_INDEX, PROP_NAME_MAPPING, TABLE_NAME,
};
use crate::store::Location;
pub use replace::CurrentFile;

/// Whether opening a catalog may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Start an empty catalog when none exists (ingest only).
    Create,
    /// The catalog must exist: a missing one is [`Error::NotFound`] naming it, and nothing is
    /// created (compact, repair and every read-only command).
    MustExist,
}

/// Warehouse-relative folders that hold the table's metadata JSON files: ours
/// (`<warehouse>/<namespace>/<table>`, the SQL catalog's default location) and PyIceberg's
/// default (`<warehouse>/<namespace>.db/<table>`).
pub const METADATA_DIRS: [&str; 2] = [
    "earthcatalog/stac_items/metadata",
    "earthcatalog.db/stac_items/metadata",
];

/// An open catalog database.
pub struct Catalog {
    /// The catalog location as given (for messages).
    url: String,
    db_path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    remote: Option<Location>,
    /// Version of the remote `catalog.db` we downloaded (or last uploaded); uploads are
    /// conditional on it so a concurrent writer is detected, never overwritten.
    remote_version: std::sync::Mutex<Option<object_store::UpdateVersion>>,
    sql: SqlCatalog,
    warehouse: Location,
    ident: TableIdent,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("db_path", &self.db_path)
            .field("remote", &self.remote)
            .field("warehouse", &self.warehouse)
            .finish()
    }
}

impl Catalog {
    /// Open the catalog at `catalog` for the warehouse at `warehouse`, starting an empty one
    /// when none exists (the same as [`Catalog::open_with`] and [`OpenMode::Create`]; only
    /// ingest creates catalogs, so read-only and maintenance code uses
    /// [`OpenMode::MustExist`]).
    pub async fn open(catalog: &str, warehouse: &str) -> Result<Self> {
        Self::open_with(catalog, warehouse, OpenMode::Create).await
    }

    /// Open the catalog at `catalog` for the warehouse at `warehouse`.
    ///
    /// A catalog on object storage is downloaded first. A missing catalog starts empty under
    /// [`OpenMode::Create`]; under [`OpenMode::MustExist`] it is [`Error::NotFound`] and
    /// nothing is created (no file, no directory, no object).
    pub async fn open_with(catalog: &str, warehouse: &str, mode: OpenMode) -> Result<Self> {
        let loc = Location::parse(catalog)?;
        let warehouse = Location::parse(warehouse)?;
        let mut remote_version = None;
        let (db_path, tmp, remote) = if loc.is_local() {
            let path = PathBuf::from(format!("/{}", loc.prefix().as_ref()));
            match mode {
                OpenMode::Create => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                    }
                }
                OpenMode::MustExist => require_catalog(catalog).await?,
            }
            (path, None, None)
        } else {
            let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
            let path = tmp.path().join("catalog.db");
            use object_store::ObjectStoreExt;
            match loc.store().get(loc.prefix()).await {
                Ok(res) => {
                    remote_version = Some(object_store::UpdateVersion {
                        e_tag: res.meta.e_tag.clone(),
                        version: res.meta.version.clone(),
                    });
                    let bytes = res.bytes().await.map_err(|e| Error::store(loc.url(), e))?;
                    std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
                }
                Err(object_store::Error::NotFound { .. }) if mode == OpenMode::Create => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(catalog_not_found(catalog));
                }
                Err(e) => return Err(Error::store(loc.url(), e)),
            }
            (path, Some(tmp), Some(loc))
        };
        prepare_database(&db_path).await?;
        let props = sql_catalog_props(&db_path, &warehouse);
        let sql = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(storage::ObjectStoreStorageFactory))
            .load(CATALOG_NAME, props)
            .await
            .map_err(|e| Error::iceberg(format!("opening catalog {catalog}"), e))?;
        let ident = TableIdent::new(
            NamespaceIdent::new(NAMESPACE.to_string()),
            TABLE_NAME.to_string(),
        );
        Ok(Self {
            url: catalog.to_string(),
            db_path,
            _tmp: tmp,
            remote,
            remote_version: std::sync::Mutex::new(remote_version),
            sql,
            warehouse,
            ident,
        })
    }

    /// The catalog location as given to [`Catalog::open_with`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The warehouse location.
    pub fn warehouse(&self) -> &Location {
        &self.warehouse
    }

    /// The local SQLite file (a temporary copy for remote catalogs).
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The version (ETag / object version) of the remote `catalog.db` as downloaded or last
    /// uploaded; `None` for a local catalog or a remote one that did not exist yet.
    pub fn remote_version(&self) -> Option<object_store::UpdateVersion> {
        match self.remote_version.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether the catalog lives on object storage.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The table identifier `earthcatalog.stac_items`.
    pub fn ident(&self) -> &TableIdent {
        &self.ident
    }

    /// Load the table if it exists.
    pub async fn load_table(&self) -> Result<Option<Table>> {
        let exists = self
            .sql
            .table_exists(&self.ident)
            .await
            .map_err(|e| Error::iceberg(format!("checking table {}", self.ident), e))?;
        if !exists {
            return Ok(None);
        }
        self.sql
            .load_table(&self.ident)
            .await
            .map(Some)
            .map_err(|e| Error::iceberg(format!("loading table {}", self.ident), e))
    }

    /// Load the table, creating namespace and table when missing. Grid and hash-index
    /// properties are written on create and added when missing; an existing grid that
    /// contradicts `grid` is an error. A new table gets the default layout.
    pub async fn load_or_create(&self, grid: &GridConfig, hash_index: &str) -> Result<Table> {
        self.load_or_create_with(grid, hash_index, None).await
    }

    /// [`Catalog::load_or_create`] with a layout for a new table (`None`: the default). An
    /// existing table keeps its layout: the property, else the layout its files follow (then
    /// recorded); asking for another one is an error.
    pub async fn load_or_create_with(
        &self,
        grid: &GridConfig,
        hash_index: &str,
        layout: Option<Layout>,
    ) -> Result<Table> {
        let mut wanted = grid_properties(grid, hash_index);
        if let Some(table) = self.load_table().await? {
            check_grid(table.metadata().properties(), grid)?;
            let current = match table.metadata().properties().get(PROP_LAYOUT) {
                Some(v) => Layout::parse(v)?,
                None => live_layout(&table).await?,
            };
            if let Some(asked) = layout
                && asked != current
            {
                return Err(Error::Config(format!(
                    "the table's layout is {} but this run asks for {}; drop --layout (an \
                     existing table keeps its layout) or use a new catalog",
                    current.as_str(),
                    asked.as_str()
                )));
            }
            wanted.insert(PROP_LAYOUT.to_string(), current.as_str().to_string());
            let props = table.metadata().properties().clone();
            let missing: Vec<(String, String)> = wanted
                .into_iter()
                .filter(|(k, _)| !props.contains_key(k))
                .collect();
            let mut table = table;
            // Rewrite the name mapping when it is missing or stale (e.g. a run killed between
            // a schema commit and its mapping commit).
            let mapping = crate::schema::name_mapping(table.metadata().current_schema());
            let stale = props.get(PROP_NAME_MAPPING) != Some(&mapping);
            if stale || !missing.is_empty() {
                let mut action = Transaction::new(&table).update_table_properties();
                for (k, v) in missing {
                    action = action.set(k, v);
                }
                if stale {
                    action = action.set(PROP_NAME_MAPPING.to_string(), mapping);
                }
                table = self.commit(action.apply(Transaction::new(&table))).await?;
            }
            return self.with_covering(table).await;
        }
        self.refuse_to_orphan().await?;
        wanted.insert(
            PROP_LAYOUT.to_string(),
            layout.unwrap_or_default().as_str().to_string(),
        );
        // With the covering from the start: no schema commit before the table's first upload.
        self.create_table(crate::schema::new_table_schema()?, wanted)
            .await
    }

    /// The table with the bbox covering column ([`COVERING_COLUMN`]), added (one schema
    /// commit) when the table has no column of that name: every writer calls this before it
    /// writes files, so the files it writes carry the covering. A column of that name in
    /// another shape is left alone (our files then leave it null).
    pub async fn with_covering(&self, table: Table) -> Result<Table> {
        let schema = table.metadata().current_schema();
        if schema.as_struct().field_by_name(COVERING_COLUMN).is_some() {
            return Ok(table);
        }
        self.add_columns(&table, &[(COVERING_COLUMN.to_string(), ColumnType::Bbox)])
            .await
    }

    /// Refuse to start a new table while the warehouse already holds an earlier table's
    /// metadata or data files: the new table would leave every one of them unregistered.
    async fn refuse_to_orphan(&self) -> Result<()> {
        let Some(found) = existing_table_evidence(&self.warehouse).await? else {
            return Ok(());
        };
        Err(Error::Refused {
            action: format!("create a new table {} in catalog {}", self.ident, self.url),
            reason: format!(
                "the catalog has no table, but the warehouse {} already holds {found}; a new \
                 table would leave every existing file unregistered. Rebuild the table from the \
                 warehouse first: earthcatalog repair --catalog {} --warehouse {}",
                self.warehouse.url(),
                self.url,
                self.warehouse.url()
            ),
        })
    }

    /// Create namespace (when missing) and table with `schema`, the default partition spec and
    /// `properties` plus the schema's name mapping. The schema's field ids are kept when they
    /// run 1..=n in field order (Iceberg renumbers a new table's fields that way).
    pub async fn create_table(
        &self,
        schema: iceberg::spec::Schema,
        mut properties: HashMap<String, String>,
    ) -> Result<Table> {
        self.ensure_namespace().await?;
        properties.insert(
            PROP_NAME_MAPPING.to_string(),
            crate::schema::name_mapping(&schema),
        );
        let creation = TableCreation::builder()
            .name(TABLE_NAME.to_string())
            .schema(schema)
            .partition_spec(crate::schema::partition_spec()?)
            .properties(properties)
            .build();
        let ns = NamespaceIdent::new(NAMESPACE.to_string());
        self.sql
            .create_table(&ns, creation)
            .await
            .map_err(|e| Error::iceberg(format!("creating table {}", self.ident), e))
    }

    /// Register an existing metadata file as the table (one row in `iceberg_tables`; the
    /// table must not exist yet).
    pub async fn register_table(&self, metadata_location: &str) -> Result<Table> {
        self.ensure_namespace().await?;
        self.sql
            .register_table(&self.ident, metadata_location.to_string())
            .await
            .map_err(|e| {
                Error::iceberg(
                    format!("registering {metadata_location} as table {}", self.ident),
                    e,
                )
            })
    }

    async fn ensure_namespace(&self) -> Result<()> {
        let ns = NamespaceIdent::new(NAMESPACE.to_string());
        let ns_exists = self
            .sql
            .namespace_exists(&ns)
            .await
            .map_err(|e| Error::iceberg("checking namespace earthcatalog", e))?;
        if !ns_exists {
            self.sql
                .create_namespace(&ns, HashMap::new())
                .await
                .map_err(|e| Error::iceberg("creating namespace earthcatalog", e))?;
        }
        Ok(())
    }

    /// Add optional columns (one schema commit plus a name-mapping update).
    pub async fn add_columns(
        &self,
        table: &Table,
        columns: &[(String, ColumnType)],
    ) -> Result<Table> {
        if columns.is_empty() {
            return Ok(table.clone());
        }
        let tx = Transaction::new(table);
        let mut action = tx.update_schema();
        for (name, ty) in columns {
            action = action.add_column(iceberg::transaction::AddColumn::optional(
                name,
                ty.iceberg(),
            ));
        }
        let table = self.commit(action.apply(Transaction::new(table))).await?;
        let mapping = crate::schema::name_mapping(table.metadata().current_schema());
        let action = Transaction::new(&table)
            .update_table_properties()
            .set(PROP_NAME_MAPPING.to_string(), mapping);
        self.commit(action.apply(Transaction::new(&table))).await
    }

    /// Append data files in one snapshot (see [`Catalog::append_files`]).
    pub async fn append(
        &self,
        table: &Table,
        files: Vec<DataFile>,
        snapshot_properties: HashMap<String, String>,
    ) -> Result<Table> {
        self.append_files(table, files, snapshot_properties).await
    }

    async fn commit(&self, tx: iceberg::Result<Transaction>) -> Result<Table> {
        crate::fault::check("catalog.before_commit")?;
        let tx =
            tx.map_err(|e| Error::iceberg(format!("preparing commit on {}", self.ident), e))?;
        let table = tx.commit(&self.sql).await.map_err(|e| {
            if e.kind() == iceberg::ErrorKind::CatalogCommitConflicts {
                Error::CommitConflict {
                    table: self.ident.to_string(),
                }
            } else {
                Error::iceberg(format!("committing to {}", self.ident), e)
            }
        })?;
        crate::fault::check("catalog.after_commit")?;
        Ok(table)
    }

    /// Upload a remote catalog (no-op for a local one). The caller holds the lock.
    pub async fn upload(&self) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        checkpoint(&self.db_path).await?;
        let bytes = std::fs::read(&self.db_path).map_err(|e| Error::io(&self.db_path, e))?;
        crate::fault::check("catalog.before_upload")?;
        let expected = match self.remote_version.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mode = match expected {
            Some(v) => object_store::PutMode::Update(v),
            None => object_store::PutMode::Create,
        };
        let opts = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        let put = remote
            .store()
            .put_opts(remote.prefix(), bytes.into(), opts)
            .await;
        match put {
            Ok(res) => {
                let v = object_store::UpdateVersion {
                    e_tag: res.e_tag,
                    version: res.version,
                };
                match self.remote_version.lock() {
                    Ok(mut g) => *g = Some(v),
                    Err(p) => *p.into_inner() = Some(v),
                }
                Ok(())
            }
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Err(Error::CommitConflict {
                table: format!(
                    "{} ({} changed since it was downloaded)",
                    self.ident,
                    remote.url()
                ),
            }),
            Err(e) => Err(Error::store(remote.url(), e)),
        }
    }
}

/// Fail with [`Error::NotFound`] unless a catalog exists at `catalog`. Checks only: nothing
/// is created.
pub async fn require_catalog(catalog: &str) -> Result<()> {
    use object_store::ObjectStoreExt;
    let loc = Location::parse(catalog)?;
    match loc.store().head(loc.prefix()).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => Err(catalog_not_found(catalog)),
        Err(e) => Err(Error::store(loc.url(), e)),
    }
}

fn catalog_not_found(catalog: &str) -> Error {
    Error::NotFound {
        what: "catalog".into(),
        location: catalog.to_string(),
        hint: "; only `earthcatalog ingest` creates a catalog (check the path)".into(),
    }
}

/// The first sign that `warehouse` already holds a table: a metadata JSON file under one of
/// [`METADATA_DIRS`] or a data file under `grid_partition=<cell>/year=<yyyy>/`, described for
/// a message; `None` for a new (or empty) warehouse. Stops listing at the first hit.
pub async fn existing_table_evidence(warehouse: &Location) -> Result<Option<String>> {
    use futures::TryStreamExt;
    let store = warehouse.store();
    let not_found = |e: &object_store::Error| matches!(e, object_store::Error::NotFound { .. });
    for dir in METADATA_DIRS {
        let mut listing = store.list(Some(&warehouse.key(dir)));
        loop {
            match listing.try_next().await {
                Ok(Some(meta)) if meta.location.as_ref().ends_with(".metadata.json") => {
                    return Ok(Some(format!(
                        "table metadata {}",
                        object_url(warehouse, &meta.location)
                    )));
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) if not_found(&e) => break,
                Err(e) => return Err(Error::store(warehouse.url_of(dir), e)),
            }
        }
    }
    let top = match store.list_with_delimiter(Some(warehouse.prefix())).await {
        Ok(top) => top,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(Error::store(warehouse.url(), e)),
    };
    for dir in top.common_prefixes {
        if !dir
            .filename()
            .is_some_and(crate::partition::is_partition_dir)
        {
            continue;
        }
        let mut listing = store.list(Some(&dir));
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| Error::store(object_url(warehouse, &dir), e))?
        {
            let key = meta.location.as_ref();
            if key.ends_with(".parquet") && crate::partition::partition_of_path(key).is_some() {
                return Ok(Some(format!(
                    "data file {}",
                    object_url(warehouse, &meta.location)
                )));
            }
        }
    }
    Ok(None)
}

/// A table metadata JSON file found in the warehouse.
#[derive(Debug, Clone)]
pub struct MetadataFile {
    /// Its URL.
    pub url: String,
    /// When it was written.
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// Every `*.metadata.json` under [`METADATA_DIRS`], newest first (by write time, then name).
pub async fn metadata_files(warehouse: &Location) -> Result<Vec<MetadataFile>> {
    use futures::TryStreamExt;
    let mut out = Vec::new();
    for dir in METADATA_DIRS {
        let mut listing = warehouse.store().list(Some(&warehouse.key(dir)));
        loop {
            match listing.try_next().await {
                Ok(Some(meta)) => {
                    if meta.location.as_ref().ends_with(".metadata.json") {
                        out.push(MetadataFile {
                            url: object_url(warehouse, &meta.location),
                            last_modified: meta.last_modified,
                        });
                    }
                }
                Ok(None) | Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(Error::store(warehouse.url_of(dir), e)),
            }
        }
    }
    out.sort_by(|a, b| (b.last_modified, &b.url).cmp(&(a.last_modified, &a.url)));
    Ok(out)
}

/// The URL of an object key of the warehouse's store.
fn object_url(warehouse: &Location, key: &object_store::path::Path) -> String {
    let base = warehouse.prefix().as_ref();
    let rel = key.as_ref().strip_prefix(base).unwrap_or(key.as_ref());
    warehouse.url_of(rel)
}

/// Table properties describing the grid and the hash index.
pub fn grid_properties(grid: &GridConfig, hash_index: &str) -> HashMap<String, String> {
    let mut p = HashMap::new();
    p.insert(PROP_GRID_TYPE.to_string(), grid.grid_type().to_string());
    match grid {
        GridConfig::H3 { resolution } => {
            p.insert(PROP_GRID_RESOLUTION.to_string(), resolution.to_string());
        }
        GridConfig::GeoJson {
            boundaries_path,
            id_field,
        } => {
            p.insert(PROP_GRID_BOUNDARIES.to_string(), boundaries_path.clone());
            p.insert(PROP_GRID_ID_FIELD.to_string(), id_field.clone());
        }
    }
    p.insert(PROP_HASH_INDEX.to_string(), hash_index.to_string());
    p
}

/// The layout the live files of a table follow (`grid_partition` when it has none, or when
/// they are in no hive layout at all).
pub async fn live_layout(table: &Table) -> Result<Layout> {
    let files = live::scan(table, &prune::Pruner::default()).await?.files;
    let v2 = files.iter().any(|f| {
        f.path
            .split('/')
            .any(|s| s.starts_with("tile=") || s.starts_with("grid="))
    });
    Ok(if v2 {
        Layout::GridLevelTile
    } else {
        Layout::GridPartition
    })
}

/// The layout a table records, else the one its files follow.
pub async fn table_layout(table: &Table) -> Result<Layout> {
    match table.metadata().properties().get(PROP_LAYOUT) {
        Some(v) => Layout::parse(v),
        None => live_layout(table).await,
    }
}

/// The grid recorded in table properties (Python defaults: type h3, resolution 1).
pub fn grid_from_properties(props: &HashMap<String, String>) -> Result<GridConfig> {
    match props
        .get(PROP_GRID_TYPE)
        .map(String::as_str)
        .unwrap_or("h3")
    {
        "h3" => {
            let res = props
                .get(PROP_GRID_RESOLUTION)
                .map(|r| {
                    r.trim().parse::<u8>().map_err(|_| {
                        Error::Config(format!(
                            "table property {PROP_GRID_RESOLUTION}={r:?} is not a resolution"
                        ))
                    })
                })
                .transpose()?
                .unwrap_or(1);
            Ok(GridConfig::H3 { resolution: res })
        }
        "geojson" => Ok(GridConfig::GeoJson {
            boundaries_path: props.get(PROP_GRID_BOUNDARIES).cloned().ok_or_else(|| {
                Error::Config(format!("geojson grid without {PROP_GRID_BOUNDARIES}"))
            })?,
            id_field: props
                .get(PROP_GRID_ID_FIELD)
                .cloned()
                .unwrap_or_else(|| "id".into()),
        }),
        other => Err(Error::Config(format!(
            "unknown grid type {other:?} in table properties"
        ))),
    }
}

fn check_grid(props: &HashMap<String, String>, grid: &GridConfig) -> Result<()> {
    if !props.contains_key(PROP_GRID_TYPE) && !props.contains_key(PROP_GRID_RESOLUTION) {
        return Ok(());
    }
    let existing = grid_from_properties(props)?;
    if &existing != grid {
        return Err(Error::Config(format!(
            "the table's grid is {existing:?} but this run asks for {grid:?}; \
             drop the conflicting flag (the existing grid wins) or use a new catalog"
        )));
    }
    Ok(())
}

/// How long one statement on our own connections waits for another connection's lock on
/// `catalog.db` before it fails (SQLITE_BUSY, "database is locked"); see the module docs.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection settings for our own connections to the catalog file.
fn connect_options(path: &Path) -> sqlx::sqlite::SqliteConnectOptions {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
}

fn sqlite_uri(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Run `work` on a fresh connection to the SQLite file, then close it.
async fn with_sqlite<F>(path: &Path, work: F) -> Result<()>
where
    F: for<'c> FnOnce(
        &'c mut sqlx::SqliteConnection,
    ) -> futures::future::BoxFuture<'c, std::result::Result<(), sqlx::Error>>,
{
    let sql_err = |e| Error::Sql {
        location: path.display().to_string(),
        source: e,
    };
    let mut conn = sqlx::SqliteConnection::connect_with(&connect_options(path))
        .await
        .map_err(sql_err)?;
    work(&mut conn).await.map_err(sql_err)?;
    conn.close().await.map_err(sql_err)
}

/// Make a database created by PyIceberg usable by iceberg-rust: PyIceberg's `iceberg_tables`
/// has no `iceberg_type` column; add it (nullable, ignored by PyIceberg).
async fn prepare_database(path: &Path) -> Result<()> {
    with_sqlite(path, |conn| {
        Box::pin(async move {
            let cols: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM pragma_table_info('iceberg_tables')")
                    .fetch_all(&mut *conn)
                    .await?;
            if !cols.is_empty() && !cols.iter().any(|(n,)| n == "iceberg_type") {
                sqlx::query("ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)")
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    })
    .await
}

/// Fold any WAL content back into the main file before it is copied.
async fn checkpoint(path: &Path) -> Result<()> {
    with_sqlite(path, |conn| {
        Box::pin(async move {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
    })
    .await
}

/// Seconds an idle SQLite connection is kept (`pool.idle-timeout`; iceberg-catalog-sql's
/// default is 10).
///
/// sqlx 0.8's pool runs a reaper every `min(idle timeout, max lifetime = 30 min)` that sweeps
/// `0..num_idle()` without yielding, and `num_idle` can transiently wrap below zero when a
/// connection is released while another task takes it (sqlx issue 3645, fixed upstream by sqlx
/// PR 4289, not in the 0.8 line iceberg-catalog-sql uses). A sweep that reads the wrapped count
/// spins forever in one poll: 100 % of a core, and the runtime can then never shut down. Seen
/// here in a `compaction_merges_dedups_keeps_newest_and_commits_once` test process that spun for
/// 14 minutes with a worker thread in `sqlx_core::pool::inner::spawn_maintenance_tasks` and the
/// main thread in the runtime's shutdown (gdb); the one CI hang (a CLI `compact` that never
/// exited) had the same shape. A day's idle timeout leaves only the
/// 30-minute lifetime sweep and the one when the reaper task first runs: our operations open
/// the catalog, commit and close it within minutes, so a sweep rarely runs while connections
/// move. Rarely is not never: the first sweep has raced (the
/// `tests/maintenance.rs` binary, 14 minutes), so the build now patches sqlx-core to bound the
/// sweep by the pool size (`vendor/sqlx-core/PATCHED.md`). `cli::main` also bounds the
/// runtime's shutdown.
pub const SQL_POOL_IDLE_TIMEOUT_SECS: u64 = 24 * 60 * 60;

/// The iceberg-catalog-sql properties of the SQLite catalog at `db_path`.
fn sql_catalog_props(db_path: &std::path::Path, warehouse: &Location) -> HashMap<String, String> {
    HashMap::from([
        ("uri".to_string(), sqlite_uri(db_path)),
        ("warehouse".to_string(), warehouse.url().to_string()),
        ("sql_bind_style".to_string(), "QMark".to_string()),
        ("pool.max-connections".to_string(), "1".to_string()),
        (
            "pool.idle-timeout".to_string(),
            SQL_POOL_IDLE_TIMEOUT_SECS.to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    /// The reaper that can spin (see [`SQL_POOL_IDLE_TIMEOUT_SECS`]) must not run every 10 s.
    #[test]
    fn the_sql_pool_keeps_idle_connections_for_a_day() {
        let wh = Location::parse("memory://props/wh").unwrap();
        let props = sql_catalog_props(std::path::Path::new("/tmp/c.db"), &wh);
        let idle: u64 = props["pool.idle-timeout"].parse().unwrap();
        assert!(idle >= 30 * 60, "{idle}");
        assert_eq!(props["pool.max-connections"], "1");
    }

    use super::*;

    async fn put(url: &str) {
        Location::parse(url)
            .unwrap()
            .put_bytes(bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
    }

    async fn objects(url: &str) -> usize {
        use futures::TryStreamExt;
        let loc = Location::parse(url).unwrap();
        let all: Vec<_> = loc.store().list(None).try_collect().await.unwrap();
        all.len()
    }

    #[tokio::test]
    async fn must_exist_creates_nothing() {
        let err = Catalog::open_with(
            "memory://open-mode/cat/catalog.db",
            "memory://open-mode/wh",
            OpenMode::MustExist,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("memory://open-mode/cat/catalog.db")
        );
        assert_eq!(objects("memory://open-mode").await, 0);

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing/catalog.db");
        let err = Catalog::open_with(db.to_str().unwrap(), "/tmp/wh", OpenMode::MustExist)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(!dir.path().join("missing").exists(), "no directory created");

        // Create mode starts one; MustExist then opens it.
        let db = db.to_str().unwrap();
        Catalog::open_with(db, "/tmp/wh", OpenMode::Create)
            .await
            .unwrap();
        Catalog::open_with(db, "/tmp/wh", OpenMode::MustExist)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn evidence_of_a_table_is_its_metadata_or_a_hive_data_file() {
        let evidence = |wh: &'static str| async move {
            existing_table_evidence(&Location::parse(wh).unwrap())
                .await
                .unwrap()
        };
        assert_eq!(evidence("memory://evidence/a").await, None);
        // Reports, stray objects and Parquet files outside cell/year folders are no table.
        put("memory://evidence/a/_reports/ingest_x_summary.json").await;
        put("memory://evidence/a/grid_partition=x/notes.parquet").await;
        put("memory://evidence/a/grid_partition=x/year=2020/notes.txt").await;
        assert_eq!(evidence("memory://evidence/a").await, None);
        put("memory://evidence/a/grid_partition=x/year=2020/part_000000_0000abcd.parquet").await;
        let found = evidence("memory://evidence/a").await.unwrap();
        assert!(found.starts_with("data file memory://evidence/a/grid_partition=x/year=2020/"));

        put("memory://evidence/b/earthcatalog/stac_items/metadata/snap-1.avro").await;
        assert_eq!(evidence("memory://evidence/b").await, None);
        put("memory://evidence/b/earthcatalog/stac_items/metadata/00000-u.metadata.json").await;
        let found = evidence("memory://evidence/b").await.unwrap();
        assert_eq!(
            found,
            "table metadata memory://evidence/b/earthcatalog/stac_items/metadata/00000-u.metadata.json"
        );
        // PyIceberg's default table location counts as well.
        put("memory://evidence/c/earthcatalog.db/stac_items/metadata/00001-v.metadata.json").await;
        assert!(evidence("memory://evidence/c").await.is_some());
    }

    #[tokio::test]
    async fn a_new_table_over_a_full_warehouse_is_refused() {
        put("memory://orphan/wh/grid_partition=x/year=unknown/part_000000_00000001.parquet").await;
        let cat = Catalog::open_with(
            "memory://orphan/catalog.db",
            "memory://orphan/wh",
            OpenMode::Create,
        )
        .await
        .unwrap();
        let grid = GridConfig::H3 { resolution: 1 };
        let err = cat.load_or_create(&grid, "ids.parquet").await.unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("earthcatalog repair"), "{msg}");
        assert!(msg.contains("part_000000_00000001.parquet"), "{msg}");
        assert!(
            cat.load_table().await.unwrap().is_none(),
            "no table created"
        );

        // An empty warehouse gets its table.
        let fresh = Catalog::open_with(
            "memory://orphan/fresh/catalog.db",
            "memory://orphan/fresh-wh",
            OpenMode::Create,
        )
        .await
        .unwrap();
        fresh.load_or_create(&grid, "ids.parquet").await.unwrap();
    }
}
