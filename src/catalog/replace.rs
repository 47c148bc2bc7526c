//! File-level maintenance on the table: list the live data files, list every file any
//! retained snapshot references, and replace files in one `replace` snapshot.
//!
//! iceberg-rust 0.10.1 has no rewrite/overwrite action and its commit types are crate-private,
//! so [`Catalog::replace_files`] builds the snapshot with the crate's public writers (manifests,
//! manifest list, snapshot, metadata builder), writes the next metadata file and swaps the
//! metadata pointer in `iceberg_tables` with the same compare-and-swap the SQL catalog uses.
//! Schema, partition specs, sort orders, properties, refs and all earlier snapshots are kept.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use futures::{StreamExt, TryStreamExt};
use iceberg::MetadataLocation;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, MAIN_BRANCH, Manifest, ManifestContentType,
    ManifestFile, ManifestListWriter, Operation, Snapshot, SnapshotRef, SnapshotSummaryCollector,
    Summary, TableMetadata, TableProperties,
};
use iceberg::table::Table;
use sqlx::Connection;

use super::avro::write::{Entry, ManifestEncoder};
use super::{Catalog, sqlite_uri};
use crate::error::{Error, Result};
use crate::schema::CATALOG_NAME;

/// Most data files written into one new manifest.
const MANIFEST_ENTRIES: usize = 256;

/// How many manifests are read concurrently.
const MANIFEST_READ_CONCURRENCY: usize = 8;

/// New manifests built and written at once (each holds its entries until it is written).
const MANIFEST_WRITES: usize = 16;

/// A file a commit adds: its path up front, its catalog entry only when the manifest that
/// lists it is written, so that a commit of many files never holds every entry at once.
pub trait NewFile: Send + 'static {
    /// Where the file is (the entry's path).
    fn path(&self) -> &str;
    /// The catalog entry.
    fn into_data_file(self) -> Result<DataFile>;
}

impl NewFile for DataFile {
    fn path(&self) -> &str {
        self.file_path()
    }

    fn into_data_file(self) -> Result<DataFile> {
        Ok(self)
    }
}

/// A manifest being written: its list entry and entries once done.
/// A manifest write: the manifest, the entries it adds or removes (for the snapshot summary)
/// and their partition spec.
type ManifestTask =
    tokio::task::JoinHandle<Result<(ManifestFile, Vec<Entry>, iceberg::spec::PartitionSpecRef)>>;

/// A live data file of the current snapshot with its tracking information.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentFile {
    /// The catalog entry (path, partition, counts, bounds).
    pub data_file: DataFile,
    /// Data sequence number of the file (inherited from the manifest when not written).
    pub sequence_number: Option<i64>,
    /// Snapshot that added the file.
    pub snapshot_id: Option<i64>,
}

/// A data manifest of the current snapshot with its loaded entries.
struct LoadedManifest<'a> {
    file: ManifestFile,
    /// Every entry, decoded: for manifests a commit rewrites (or all, when asked).
    manifest: Option<Manifest>,
    /// Live data entries (path, records, bytes) of a data manifest read with [`Decode::Live`]
    /// whose paths the commit names (removed or added): not every live path, which a
    /// compaction of 100k files would hold all at once.
    live: Vec<(&'a str, u64, u64)>,
    /// Its live data files, records and bytes ([`Decode::Live`]).
    totals: LiveTotals,
}

/// How to read data manifests.
#[derive(Clone, Copy)]
enum Decode {
    /// Not at all (an append only carries manifests over).
    Nothing,
    /// Every one decoded in full.
    All,
    /// Every one read with the projection reader for its live counts and the live entries
    /// of the paths a commit names (a replace decodes the ones it rewrites in the task that
    /// rewrites them).
    Live,
}

/// Live files, records and bytes of the table before a commit.
#[derive(Debug, Default, Clone, Copy)]
struct LiveTotals {
    files: u64,
    records: u64,
    size: u64,
}

impl LiveTotals {
    fn add(&mut self, other: LiveTotals) {
        self.files += other.files;
        self.records += other.records;
        self.size += other.size;
    }
}

/// What one commit writes under: its snapshot id and sequence number, the names of its files,
/// and the schema and spec of new manifests.
struct CommitTarget {
    snapshot_id: i64,
    sequence_number: i64,
    commit_uuid: uuid::Uuid,
    meta_dir: String,
    schema: iceberg::spec::SchemaRef,
    spec: iceberg::spec::PartitionSpecRef,
    counter: u32,
}

impl CommitTarget {
    fn next_manifest_path(&mut self) -> String {
        self.counter += 1;
        format!(
            "{}/{}-m{}.avro",
            self.meta_dir,
            self.commit_uuid,
            self.counter - 1
        )
    }
}

/// The manifests a commit wrote, what it carries over, and its counts.
#[derive(Default)]
struct Changes {
    snapshot_id: i64,
    sequence_number: i64,
    list_path: String,
    new_manifests: Vec<ManifestFile>,
    carried: Vec<ManifestFile>,
    summary: HashMap<String, String>,
    added_count: u64,
    added_records: u64,
    added_size: u64,
    removed_count: u64,
    removed_records: u64,
    removed_size: u64,
}

impl Catalog {
    /// Every live (added or existing) data file of the table's current snapshot.
    /// An empty table yields an empty list.
    pub async fn current_files(&self, table: &Table) -> Result<Vec<CurrentFile>> {
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(Vec::new());
        };
        let manifests = self
            .load_manifests(table, snapshot, Decode::All, &HashSet::new())
            .await?;
        let mut out = Vec::new();
        for m in &manifests {
            let Some(manifest) = &m.manifest else {
                continue;
            };
            for entry in manifest.entries() {
                if entry.is_alive() && entry.content_type() == DataContentType::Data {
                    out.push(CurrentFile {
                        data_file: entry.data_file().clone(),
                        sequence_number: entry.sequence_number(),
                        snapshot_id: entry.snapshot_id(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Paths of every data file referenced by any snapshot still in the table metadata
    /// (live, existing or deleted entries). A file under the warehouse that is not in this
    /// set was never committed; one that is in it but not live was replaced or deleted. Only
    /// the paths `keep` accepts are kept (callers ask about a few paths of a large history).
    pub async fn historical_paths(
        &self,
        table: &Table,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<HashSet<String>> {
        let file_io = table.file_io().clone();
        let mut by_path: HashMap<String, ManifestFile> = HashMap::new();
        for snapshot in table.metadata().snapshots() {
            let list = manifest_files(table, snapshot).await?;
            for mf in list {
                if mf.content == ManifestContentType::Data {
                    by_path.entry(mf.manifest_path.clone()).or_insert(mf);
                }
            }
        }
        let paths: Vec<Vec<String>> = futures::stream::iter(by_path.into_values())
            .map(|mf| {
                let file_io = file_io.clone();
                async move {
                    Ok::<_, Error>(
                        super::avro::manifest_entries(&mf, &file_io, &[])
                            .await?
                            .into_iter()
                            .filter(|e| e.content == 0 && keep(&e.file_path))
                            .map(|e| e.file_path)
                            .collect(),
                    )
                }
            })
            .buffer_unordered(MANIFEST_READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(paths.into_iter().flatten().collect())
    }

    /// Append data files in one snapshot (operation `append`), with the new entries written
    /// into manifests clustered by cell so readers can skip most manifests. Existing manifests
    /// are carried over without being read. A compare-and-swap commit like [`Self::replace_files`].
    pub async fn append_files(
        &self,
        table: &Table,
        added: Vec<DataFile>,
        snapshot_properties: HashMap<String, String>,
    ) -> Result<Table> {
        self.replace_files(table, &[], added, snapshot_properties)
            .await
    }

    /// Replace data files in one commit: one new `replace` snapshot on `main` whose parent is
    /// the current snapshot, in which every path of `removed` is deleted and every file of
    /// `added` is added. Manifests without removed files are carried over unchanged; the
    /// others are rewritten with the removed entries marked deleted and the rest existing
    /// (original sequence numbers and snapshot ids kept).
    ///
    /// Every removed path must be a live data file of `table`'s current snapshot
    /// ([`Error::NotLive`] otherwise, before anything is written), and every added path new
    /// to it; an added entry that is not a data file of the table's spec fails the commit
    /// when its manifest is written (before the commit: nothing changes). The commit is a
    /// compare-and-swap on `table`'s metadata location: if the catalog moved on since
    /// `table` was loaded the result is [`Error::CommitConflict`] and the table is unchanged.
    /// Returns the reloaded table.
    ///
    /// With nothing removed this is an append (operation `append`): existing manifests are
    /// carried over without being read and totals come from the previous snapshot summary.
    pub async fn replace_files<F: NewFile>(
        &self,
        table: &Table,
        removed: &[String],
        added: Vec<F>,
        snapshot_properties: HashMap<String, String>,
    ) -> Result<Table> {
        let metadata = table.metadata();
        if metadata.format_version() != FormatVersion::V2 {
            return Err(Error::Refused {
                action: format!("replace files in {}", self.ident),
                reason: format!(
                    "replacing files needs an Iceberg format v2 table; it is {}",
                    metadata.format_version()
                ),
            });
        }
        let removed_set: HashSet<&str> = removed.iter().map(String::as_str).collect();
        if removed_set.is_empty() && added.is_empty() {
            return Err(Error::Inconsistent(format!(
                "nothing to replace on {}: no files removed or added",
                self.ident
            )));
        }
        let current_location = table
            .metadata_location_result()
            .map_err(|e| Error::iceberg(self.ctx("reading the metadata location"), e))?
            .to_string();
        let current = metadata.current_snapshot().cloned();
        // An append only needs the manifest list: every existing manifest is carried over.
        let append = removed_set.is_empty();
        // The paths of added files, to find them among the live ones (they must be new).
        let added_paths: Vec<String> = if append {
            Vec::new()
        } else {
            added.iter().map(|f| f.path().to_string()).collect()
        };
        let manifests = match &current {
            Some(snapshot) => {
                let decode = if append {
                    Decode::Nothing
                } else {
                    Decode::Live
                };
                let named: HashSet<&str> = removed_set
                    .iter()
                    .copied()
                    .chain(added_paths.iter().map(String::as_str))
                    .collect();
                self.load_manifests(table, snapshot, decode, &named).await?
            }
            None => Vec::new(),
        };
        // Validate before writing anything.
        let totals = self.validate(table, &manifests, &removed_set, &added, append)?;

        let target = CommitTarget {
            snapshot_id: new_snapshot_id(metadata),
            sequence_number: metadata.next_sequence_number(),
            commit_uuid: uuid::Uuid::new_v4(),
            meta_dir: format!("{}/metadata", metadata.location()),
            schema: metadata.current_schema().clone(),
            spec: metadata.default_partition_spec().clone(),
            counter: 0,
        };
        let file_io = table.file_io();
        let mut written: Vec<String> = Vec::new();
        let result: Result<String> = async {
            let changes = self
                .write_manifests(table, target, &manifests, &removed_set, added, &mut written)
                .await?;
            self.write_snapshot(
                table,
                &current_location,
                changes,
                totals,
                snapshot_properties,
                append,
                &mut written,
            )
            .await
        }
        .await;
        let new_location = match result {
            Ok(l) => l,
            Err(e) => {
                cleanup(file_io, &written).await;
                return Err(e);
            }
        };

        if let Err(e) = crate::fault::check("catalog.before_commit") {
            cleanup(file_io, &written).await;
            return Err(e);
        }
        if let Err(e) = self.swap_metadata(&current_location, &new_location).await {
            // Only a refused swap is known not to have happened; after any other SQL error
            // the new metadata may be live, so its files stay.
            if matches!(e, Error::CommitConflict { .. }) {
                cleanup(file_io, &written).await;
            }
            return Err(e);
        }
        crate::fault::check("catalog.after_commit")?;
        self.load_table().await?.ok_or_else(|| {
            Error::Inconsistent(format!("table {} disappeared after a commit", self.ident))
        })
    }

    /// Make `schema` the table's current schema with its field ids as they are (a schema
    /// update would assign fresh ones). For a rebuilt table, whose files carry the ids of
    /// the table they were written for: creating a table numbers nested fields after every
    /// top-level one, which differs from the ids a column added later got.
    pub async fn set_exact_schema(
        &self,
        table: &Table,
        schema: iceberg::spec::Schema,
    ) -> Result<Table> {
        let ctx = |what: &str| format!("{what} for the schema of {}", self.ident);
        let current_location = table
            .metadata_location_result()
            .map_err(|e| Error::iceberg(ctx("reading the metadata location"), e))?
            .to_string();
        let new_metadata = table
            .metadata()
            .clone()
            .into_builder(Some(current_location.clone()))
            .add_schema(schema)
            .and_then(|b| b.set_current_schema(-1))
            .and_then(|b| b.build())
            .map_err(|e| Error::iceberg(ctx("building table metadata"), e))?
            .metadata;
        let location = MetadataLocation::from_str(&current_location)
            .map_err(|e| Error::iceberg(ctx("parsing the metadata location"), e))?
            .with_next_version()
            .with_new_metadata(&new_metadata);
        new_metadata
            .write_to(table.file_io(), &location)
            .await
            .map_err(|e| Error::iceberg(ctx("writing table metadata"), e))?;
        crate::fault::check("catalog.before_commit")?;
        self.swap_metadata(&current_location, &location.to_string())
            .await?;
        self.load_table().await?.ok_or_else(|| {
            Error::Inconsistent(format!("table {} disappeared after a commit", self.ident))
        })
    }

    /// `what` for replace on this table (error context).
    fn ctx(&self, what: &str) -> String {
        format!("{what} for replace on {}", self.ident)
    }

    /// Check a replace before anything is written: every removed file is live, every added
    /// file is not in the table yet (and added once). Returns the live totals before the
    /// commit.
    fn validate<F: NewFile>(
        &self,
        table: &Table,
        manifests: &[LoadedManifest<'_>],
        removed_set: &HashSet<&str>,
        added: &[F],
        append: bool,
    ) -> Result<LiveTotals> {
        let metadata = table.metadata();
        let mut live_paths: HashSet<&str> = HashSet::new();
        let mut totals = LiveTotals::default();
        if append {
            let total = |key: &str| {
                metadata
                    .current_snapshot()
                    .and_then(|s| s.summary().additional_properties.get(key))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            totals.files = total("total-data-files");
            totals.records = total("total-records");
            totals.size = total("total-files-size");
        }
        for m in manifests {
            live_paths.extend(m.live.iter().map(|(path, ..)| *path));
            totals.add(m.totals);
        }
        let mut missing: Vec<&str> = removed_set
            .iter()
            .copied()
            .filter(|p| !live_paths.contains(p))
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            return Err(Error::NotLive {
                table: self.ident.to_string(),
                paths: missing.into_iter().map(str::to_string).collect(),
            });
        }
        let mut added_paths: HashSet<&str> = HashSet::with_capacity(added.len());
        for f in added {
            if live_paths.contains(f.path()) || !added_paths.insert(f.path()) {
                return Err(Error::Refused {
                    action: format!("add {} to {}", f.path(), self.ident),
                    reason: "the file is already in the table".into(),
                });
            }
        }
        Ok(totals)
    }

    /// Write the manifests of a replace: the added files (sorted by path, at most
    /// [`MANIFEST_ENTRIES`] per manifest) and, for each manifest with a removed live file, a
    /// rewrite marking it deleted; the other manifests carry over. Every path written is
    /// pushed to `written` (for cleanup on failure). At most [`MANIFEST_WRITES`] manifests
    /// are in memory at once: added files become entries in the task that writes them.
    #[allow(clippy::too_many_arguments)]
    async fn write_manifests<F: NewFile>(
        &self,
        table: &Table,
        mut target: CommitTarget,
        manifests: &[LoadedManifest<'_>],
        removed_set: &HashSet<&str>,
        added: Vec<F>,
        written: &mut Vec<String>,
    ) -> Result<Changes> {
        let metadata = table.metadata();
        let file_io = table.file_io();
        let mut writes = ManifestWrites {
            tasks: Default::default(),
            failed: None,
            summary: SnapshotSummaryCollector::default(),
            schema: target.schema.clone(),
        };
        writes.summary.set_partition_summary_limit(
            metadata
                .properties()
                .get(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT_DEFAULT),
        );
        let mut changes = Changes {
            snapshot_id: target.snapshot_id,
            sequence_number: target.sequence_number,
            list_path: format!(
                "{}/snap-{}-0-{}.avro",
                target.meta_dir, target.snapshot_id, target.commit_uuid
            ),
            ..Changes::default()
        };
        // One encoder per partition spec (the table schema is the current one throughout).
        let mut encoders: HashMap<i32, ManifestEncoder> = HashMap::new();
        // Added files are sorted by path (<partition dirs>/…) and split into manifests of at
        // most MANIFEST_ENTRIES entries, so each manifest covers a narrow range of cells and
        // readers skip most manifests by their partition summaries.
        let mut added = added;
        added.sort_by(|a, b| a.path().cmp(b.path()));
        changes.added_count = added.len() as u64;
        if !added.is_empty() {
            let spec = target.spec.clone();
            let enc = encoder_for(&mut encoders, &target.schema, &spec).await?;
            let arity = metadata.default_partition_type().fields().len();
            let mut pending = added.into_iter();
            loop {
                let chunk: Vec<F> = pending.by_ref().take(MANIFEST_ENTRIES).collect();
                if chunk.is_empty() || writes.failed.is_some() {
                    break;
                }
                let (enc, file_io, spec) = (enc.clone(), file_io.clone(), spec.clone());
                let (snapshot_id, sequence_number) = (target.snapshot_id, target.sequence_number);
                let ident = self.ident.to_string();
                let path = target.next_manifest_path();
                written.push(path.clone());
                let task = tokio::spawn(async move {
                    let mut entries = Vec::with_capacity(chunk.len());
                    for f in chunk {
                        let file = f.into_data_file()?;
                        check_new(&ident, arity, &file)?;
                        entries.push(Entry::Added {
                            file,
                            sequence_number,
                        });
                    }
                    let m = enc.write(&file_io, &path, snapshot_id, &entries).await?;
                    Ok((m, entries, spec))
                });
                writes.push(task, &mut changes).await;
            }
        }
        for m in manifests {
            if writes.failed.is_some() {
                break;
            }
            // A manifest with a removed live file is rewritten; the others carry over. It is
            // decoded in the task that rewrites it, so at most MANIFEST_WRITES decoded
            // manifests are in memory (a compaction removing 100k files held them all: 1.3 GB).
            let removed: HashSet<String> = m
                .live
                .iter()
                .filter(|(p, ..)| removed_set.contains(p))
                .map(|(p, ..)| p.to_string())
                .collect();
            if removed.is_empty() {
                changes.carried.push(m.file.clone());
                continue;
            }
            let m_spec = metadata
                .partition_spec_by_id(m.file.partition_spec_id)
                .cloned()
                .ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "manifest {} uses unknown partition spec {}",
                        m.file.manifest_path, m.file.partition_spec_id
                    ))
                })?;
            let enc = encoder_for(&mut encoders, &target.schema, &m_spec).await?;
            let (file_io, old) = (file_io.clone(), m.file.clone());
            let snapshot_id = target.snapshot_id;
            let path = target.next_manifest_path();
            written.push(path.clone());
            let task = tokio::spawn(async move {
                let (m, deleted) = enc
                    .rewrite(&file_io, &old, &path, snapshot_id, &removed)
                    .await?;
                // The removed entries go to the snapshot summary.
                Ok((m, deleted, m_spec))
            });
            writes.push(task, &mut changes).await;
        }
        // Every task is awaited before an error returns, so none writes after cleanup.
        changes.summary = writes.finish(&mut changes).await?;
        Ok(changes)
    }

    /// Write the manifest list, the snapshot (`append` without removed files, else `replace`)
    /// and the next table metadata file; returns its location. Paths go to `written`.
    #[allow(clippy::too_many_arguments)]
    async fn write_snapshot(
        &self,
        table: &Table,
        current_location: &str,
        changes: Changes,
        totals: LiveTotals,
        snapshot_properties: HashMap<String, String>,
        append: bool,
        written: &mut Vec<String>,
    ) -> Result<String> {
        let metadata = table.metadata();
        let file_io = table.file_io();
        let current = metadata.current_snapshot();
        let list_path = changes.list_path.clone();
        let list_out = file_io
            .new_output(&list_path)
            .map_err(|e| Error::iceberg(self.ctx("creating the manifest list"), e))?
            .writer()
            .await
            .map_err(|e| Error::iceberg(self.ctx("opening the manifest list"), e))?;
        let mut list = ManifestListWriter::v2(
            list_out,
            changes.snapshot_id,
            current.map(|s| s.snapshot_id()),
            changes.sequence_number,
        );
        written.push(list_path.clone());
        list.add_manifests(changes.new_manifests.into_iter().chain(changes.carried))
            .map_err(|e| Error::iceberg(self.ctx("listing manifests"), e))?;
        list.close()
            .await
            .map_err(|e| Error::iceberg(self.ctx("writing the manifest list"), e))?;

        let mut props = snapshot_properties;
        props.extend(changes.summary);
        let previous = current.map(|s| s.summary());
        let carry = |key: &str| {
            previous
                .and_then(|s| s.additional_properties.get(key))
                .cloned()
                .unwrap_or_else(|| "0".to_string())
        };
        for (key, value) in [
            ("added-data-files", changes.added_count.to_string()),
            ("deleted-data-files", changes.removed_count.to_string()),
            ("added-records", changes.added_records.to_string()),
            ("deleted-records", changes.removed_records.to_string()),
            ("added-files-size", changes.added_size.to_string()),
            ("removed-files-size", changes.removed_size.to_string()),
            (
                "total-data-files",
                (totals.files - changes.removed_count + changes.added_count).to_string(),
            ),
            (
                "total-records",
                (totals.records - changes.removed_records + changes.added_records).to_string(),
            ),
            (
                "total-files-size",
                (totals.size - changes.removed_size + changes.added_size).to_string(),
            ),
            ("total-delete-files", carry("total-delete-files")),
            ("total-position-deletes", carry("total-position-deletes")),
            ("total-equality-deletes", carry("total-equality-deletes")),
        ] {
            props.insert(key.to_string(), value);
        }
        let snapshot = Snapshot::builder()
            .with_snapshot_id(changes.snapshot_id)
            .with_parent_snapshot_id(current.map(|s| s.snapshot_id()))
            .with_sequence_number(changes.sequence_number)
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
            .with_manifest_list(list_path)
            .with_summary(Summary {
                operation: if append {
                    Operation::Append
                } else {
                    Operation::Replace
                },
                additional_properties: props,
            })
            .with_schema_id(metadata.current_schema_id())
            .build();
        let new_metadata = metadata
            .clone()
            .into_builder(Some(current_location.to_string()))
            .set_branch_snapshot(snapshot, MAIN_BRANCH)
            .and_then(|b| b.build())
            .map_err(|e| Error::iceberg(self.ctx("building table metadata"), e))?
            .metadata;
        let location = MetadataLocation::from_str(current_location)
            .map_err(|e| Error::iceberg(self.ctx("parsing the metadata location"), e))?
            .with_next_version()
            .with_new_metadata(&new_metadata);
        let location_str = location.to_string();
        written.push(location_str.clone());
        new_metadata
            .write_to(file_io, &location)
            .await
            .map_err(|e| Error::iceberg(self.ctx("writing table metadata"), e))?;
        Ok(location_str)
    }

    /// Point the table at `new` if it still points at `current` (one SQL statement on its
    /// own connection, so it never waits on the catalog's single pooled connection).
    async fn swap_metadata(&self, current: &str, new: &str) -> Result<()> {
        let sql_err = |e| Error::Sql {
            location: self.db_path.display().to_string(),
            source: e,
        };
        let mut conn = sqlx::SqliteConnection::connect(&sqlite_uri(&self.db_path))
            .await
            .map_err(sql_err)?;
        let result = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
        )
        .bind(new)
        .bind(current)
        .bind(CATALOG_NAME)
        .bind(self.ident.namespace().join("."))
        .bind(self.ident.name())
        .bind(current)
        .execute(&mut conn)
        .await
        .map_err(sql_err);
        let closed = conn.close().await.map_err(sql_err);
        let result = result?;
        closed?;
        match result.rows_affected() {
            1 => Ok(()),
            0 => Err(Error::CommitConflict {
                table: self.ident.to_string(),
            }),
            n => Err(Error::Inconsistent(format!(
                "catalog {} has {n} rows for table {}",
                self.db_path.display(),
                self.ident
            ))),
        }
    }

    /// The manifests of `snapshot`, data manifests decoded as `decode` says.
    async fn load_manifests<'a>(
        &self,
        table: &Table,
        snapshot: &SnapshotRef,
        decode: Decode,
        named: &HashSet<&'a str>,
    ) -> Result<Vec<LoadedManifest<'a>>> {
        let list = manifest_files(table, snapshot).await?;
        let file_io = table.file_io().clone();
        let full = |file: &ManifestFile| {
            // Decoding is CPU work: on its own task, so manifests decode in parallel.
            let (f, io) = (file.clone(), file_io.clone());
            async move {
                tokio::spawn(async move { load_manifest(&f, &io).await })
                    .await
                    .map_err(|e| Error::task("reading a manifest", e))?
            }
        };
        futures::stream::iter(list)
            .map(|file| {
                let file_io = file_io.clone();
                async move {
                    if file.content != ManifestContentType::Data
                        || matches!(decode, Decode::Nothing)
                    {
                        return Ok(LoadedManifest {
                            file,
                            manifest: None,
                            live: Vec::new(),
                            totals: LiveTotals::default(),
                        });
                    }
                    if matches!(decode, Decode::Live) {
                        let (mut live, mut totals) = (Vec::new(), LiveTotals::default());
                        let entries = super::avro::manifest_entries(&file, &file_io, &[]).await?;
                        for e in entries.into_iter().filter(|e| e.status != 2) {
                            let n = |v: i64| u64::try_from(v).unwrap_or(0);
                            let (records, size) = (n(e.record_count), n(e.file_size_in_bytes));
                            totals.add(LiveTotals {
                                files: 1,
                                records,
                                size,
                            });
                            // The set's own copy of the path: no second copy of it.
                            if let Some(path) = named.get(e.file_path.as_str()) {
                                live.push((*path, records, size));
                            }
                        }
                        // Rewritten manifests are decoded by the task that rewrites them
                        // (write_manifests), not held here.
                        return Ok(LoadedManifest {
                            file,
                            manifest: None,
                            live,
                            totals,
                        });
                    }
                    Ok::<_, Error>(LoadedManifest {
                        manifest: Some(full(&file).await?),
                        file,
                        live: Vec::new(),
                        totals: LiveTotals::default(),
                    })
                }
            })
            .buffered(MANIFEST_READ_CONCURRENCY)
            .try_collect()
            .await
    }
}

/// Manifest writes in flight, taken in the order they were started (the manifest list's),
/// and the snapshot summary of the files they add.
struct ManifestWrites {
    tasks: std::collections::VecDeque<ManifestTask>,
    /// The first failure: no write starts after it.
    failed: Option<Error>,
    summary: SnapshotSummaryCollector,
    schema: iceberg::spec::SchemaRef,
}

impl ManifestWrites {
    /// Start `task`, then wait for the oldest while [`MANIFEST_WRITES`] are in flight.
    async fn push(&mut self, task: ManifestTask, changes: &mut Changes) {
        self.tasks.push_back(task);
        while self.tasks.len() >= MANIFEST_WRITES {
            self.take_one(changes).await;
        }
    }

    /// Wait for the oldest write: its manifest joins the new ones, its added files the
    /// summary and counts.
    async fn take_one(&mut self, changes: &mut Changes) {
        let Some(task) = self.tasks.pop_front() else {
            return;
        };
        match task.await {
            Ok(Ok((file, entries, spec))) => {
                for e in &entries {
                    match e {
                        Entry::Added { file, .. } => {
                            self.summary
                                .add_file(file, self.schema.clone(), spec.clone());
                            changes.added_records += file.record_count();
                            changes.added_size += file.file_size_in_bytes();
                        }
                        Entry::Deleted { file, .. } => {
                            self.summary
                                .remove_file(file, self.schema.clone(), spec.clone());
                            changes.removed_count += 1;
                            changes.removed_records += file.record_count();
                            changes.removed_size += file.file_size_in_bytes();
                        }
                        Entry::Existing { .. } => {}
                    }
                }
                changes.new_manifests.push(file);
            }
            Ok(Err(e)) => {
                self.failed.get_or_insert(e);
            }
            Err(e) => {
                self.failed
                    .get_or_insert(Error::task("writing a manifest", e));
            }
        }
    }

    /// Wait for every write; the first failure, if any, else the summary.
    async fn finish(mut self, changes: &mut Changes) -> Result<HashMap<String, String>> {
        while !self.tasks.is_empty() {
            self.take_one(changes).await;
        }
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.summary.build()),
        }
    }
}

/// The encoder of manifests of `spec` (made once per commit and spec).
async fn encoder_for(
    encoders: &mut HashMap<i32, ManifestEncoder>,
    schema: &iceberg::spec::SchemaRef,
    spec: &iceberg::spec::PartitionSpecRef,
) -> Result<ManifestEncoder> {
    if let Some(e) = encoders.get(&spec.spec_id()) {
        return Ok(e.clone());
    }
    let e = ManifestEncoder::new(schema.clone(), spec.clone()).await?;
    encoders.insert(spec.spec_id(), e.clone());
    Ok(e)
}

/// An added entry must be a data file with the table spec's partition tuple.
fn check_new(ident: &str, arity: usize, f: &DataFile) -> Result<()> {
    if f.content_type() != DataContentType::Data {
        return Err(Error::Inconsistent(format!(
            "cannot add {} to {ident}: only data files can be added",
            f.file_path()
        )));
    }
    if f.partition().fields().len() != arity {
        return Err(Error::Inconsistent(format!(
            "cannot add {} to {ident}: its partition tuple does not match the table's spec",
            f.file_path()
        )));
    }
    Ok(())
}

/// The manifests listed by `snapshot`'s manifest list.
pub async fn manifest_files(table: &Table, snapshot: &SnapshotRef) -> Result<Vec<ManifestFile>> {
    table
        .manifest_list_reader(snapshot)
        .load()
        .await
        .map(|list| list.consume_entries().into_iter().collect())
        .map_err(|e| {
            Error::iceberg(
                format!("reading manifest list {}", snapshot.manifest_list()),
                e,
            )
        })
}

async fn load_manifest(file: &ManifestFile, file_io: &FileIO) -> Result<Manifest> {
    file.load_manifest(file_io)
        .await
        .map_err(|e| Error::iceberg(format!("reading manifest {}", file.manifest_path), e))
}

/// A positive snapshot id not used by the table.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) & (i64::MAX as u64)) as i64;
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Best-effort removal of files written for a commit that did not happen.
async fn cleanup(file_io: &FileIO, paths: &[String]) {
    for p in paths {
        if let Err(e) = file_io.delete(p).await {
            tracing::debug!("could not remove {p} after a failed replace: {e}");
        }
    }
}
