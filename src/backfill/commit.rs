//! `backfill commit`: register every reduce output in one commit, then clean up.
//!
//! ```text
//! plan.json? (none: nothing staged, a no-op) ─▶ lock ─▶ catalog, table (the plan's)
//!   ─▶ snapshot tagged with the plan id exists? ─▶ already committed: finish the cleanup
//!   ─▶ every map and reduce shard done? (refuse naming the missing ones, or --allow-partial)
//!   ─▶ hash index reconciled ─▶ columns the maps discovered added to the schema
//!   ─▶ buckets the table holds no file of: entries from the outputs' footers
//!      buckets it does: compaction's merge of its files + the outputs (outputs rank newest)
//!   ─▶ ONE snapshot: `append`, or `replace` (removed = the merged buckets' old files)
//!   ─▶ upload catalog ─▶ hash index += ids of the added files (stamped)
//!   ─▶ delete replaced files, unregistered backfill_<plan>_* outputs
//!   ─▶ reports (<warehouse>/_reports/backfill_<plan>_{summary.json,failures.csv})
//!   ─▶ delete the staging prefix (plan.json last)
//! ```
//!
//! A crash before the commit leaves the table as it was (written merge outputs are
//! `compacted_*` leftovers that compaction removes); a crash after it is finished by the next
//! `commit`, which finds the tagged snapshot. Once the staging prefix is gone, `commit` is a
//! no-op.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use iceberg::spec::{DataFile, SchemaRef};
use iceberg::table::Table;
use serde::Serialize;

use super::map::MapDone;
use super::reduce::{ReduceDone, ReducedFile, finished, list, map_markers};
use super::{DEFAULT_TARGET_FILE_SIZE, Plan, PlannedColumn, Staging, list_below};
use crate::catalog::datafile::FileStats;
use crate::catalog::prune::Pruner;
use crate::catalog::replace::NewFile;
use crate::catalog::{Catalog, OpenMode};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::geoparquet::WriterOptions;
use crate::hash_index::{self, Reconciled};
use crate::lock::{LockOptions, RenewingLock};
use crate::partition::PartitionValue;
use crate::report::Reporter;
use crate::rewrite::{Bucket, MergeContext, canonical, merge_bounded, merge_bucket};
use crate::schema::table_columns;
use crate::store::Location;

/// Snapshot property naming the backfill plan a commit registered.
pub const PROP_BACKFILL_PLAN: &str = "earthcatalog.backfill-plan";

/// Footers read at once.
const FOOTER_READS: usize = 64;

/// Everything `commit` needs (the catalog, warehouse and options come from the plan).
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Staging prefix.
    pub staging: String,
    /// Commit the shards that are done even if some are not (and say which are not).
    pub allow_partial: bool,
    /// Take the catalog lock.
    pub lock: bool,
    /// Lock object; default `.lock` beside the catalog.
    pub lock_location: Option<String>,
    /// Lock owner string.
    pub owner: String,
    /// Lock TTL in hours.
    pub lock_ttl_hours: f64,
    /// Buckets merged with the table's existing files at once.
    pub parallelism: usize,
    /// Writer settings of merged files.
    pub writer: WriterOptions,
    /// Where the summary and failures reports go (default `<warehouse>/_reports`).
    pub report_dir: Option<String>,
}

impl Default for CommitOptions {
    fn default() -> Self {
        Self {
            staging: String::new(),
            allow_partial: false,
            lock: true,
            lock_location: None,
            owner: "earthcatalog-backfill-commit".into(),
            lock_ttl_hours: crate::lock::DEFAULT_TTL_HOURS,
            parallelism: 4,
            writer: WriterOptions::default(),
            report_dir: None,
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommitMetrics {
    /// `committed`, `already_committed` (finished the cleanup of an earlier commit) or
    /// `nothing_staged` (no plan: a no-op).
    pub outcome: String,
    /// The plan.
    pub plan_id: Option<String>,
    /// Some shards were not done and were left out (`--allow-partial`).
    pub partial: bool,
    /// Map shards not done (their keys are not in the table).
    pub missing_map_shards: Vec<usize>,
    /// Reduce shards not done (their buckets are not in the table).
    pub missing_reduce_shards: Vec<usize>,
    /// Keys planned.
    pub keys: u64,
    /// Keys left out at plan time because the hash index held their id.
    pub skipped_known: u64,
    /// Items written by the map shards.
    pub items: u64,
    /// Keys not ingested: fetch and parse failures and malformed inventory rows.
    pub failed: u64,
    /// Failures by kind.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Buckets registered.
    pub buckets: u64,
    /// Buckets the table had no file of (outputs added as they are).
    pub buckets_added: u64,
    /// Buckets merged with the table's files of the same bucket.
    pub buckets_merged: u64,
    /// Files added.
    pub files_added: u64,
    /// Table files replaced by the merges.
    pub files_replaced: u64,
    /// Rows in the added files.
    pub rows: u64,
    /// Bytes of the added files.
    pub bytes: u64,
    /// Footers read for outputs whose reduce marker has no statistics (older markers).
    pub footers_read: u64,
    /// Columns added to the table schema.
    pub columns_added: Vec<String>,
    /// `append` or `replace`.
    pub operation: Option<String>,
    /// Snapshot after the commit.
    pub snapshot_id: Option<i64>,
    /// What bringing the hash index up to the catalog took.
    pub index_reconciled: Option<Reconciled>,
    /// Ids added to the hash index.
    pub hash_index_added: Option<u64>,
    /// Hash index rows after.
    pub hash_index_total: Option<u64>,
    /// Replaced table files and unregistered backfill outputs deleted.
    pub files_deleted: u64,
    /// Staging objects deleted.
    pub staging_deleted: u64,
    /// Non-fatal problems.
    pub warnings: Vec<String>,
    /// Failures report (plan's malformed rows and every map shard's failures).
    pub failures_report: Option<String>,
    /// Summary report.
    pub summary_report: Option<String>,
    /// Seconds per phase.
    pub timings: BTreeMap<String, f64>,
    /// Wall time.
    pub elapsed_secs: f64,
}

/// Commit a backfill (see the module docs).
pub async fn commit(options: &CommitOptions, reporter: &dyn Reporter) -> Result<CommitMetrics> {
    commit_with_clock(options, reporter, Arc::new(SystemClock)).await
}

/// [`commit`] with an injected clock (lock expiry).
pub async fn commit_with_clock(
    options: &CommitOptions,
    reporter: &dyn Reporter,
    clock: Arc<dyn Clock>,
) -> Result<CommitMetrics> {
    let started = Instant::now();
    let staging = Staging::parse(&options.staging)?;
    let plan = match staging.read_plan().await {
        Ok(plan) => plan,
        Err(Error::NotFound { .. }) => {
            return Ok(CommitMetrics {
                outcome: "nothing_staged".into(),
                elapsed_secs: started.elapsed().as_secs_f64(),
                ..Default::default()
            });
        }
        Err(e) => return Err(e),
    };
    let lock = crate::lock::acquire_for_catalog(
        options.lock,
        &plan.catalog,
        options.lock_location.as_deref(),
        LockOptions::new(options.owner.clone()).with_ttl_hours(options.lock_ttl_hours),
        clock,
    )
    .await?;
    let result = Committer {
        options,
        staging: &staging,
        plan: &plan,
        lock: lock.as_ref(),
        reporter,
        started,
        m: CommitMetrics {
            plan_id: Some(plan.plan_id.clone()),
            keys: plan.keys,
            skipped_known: plan.skipped_known,
            ..Default::default()
        },
    }
    .run()
    .await;
    crate::lock::release_after(lock, result).await
}

/// `commit.json`: what the commit replaces, written before it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CommitRecord {
    /// Canonical URLs of the table files the commit removes.
    replaced: Vec<String>,
}

/// A live table file of a bucket the backfill writes.
struct LiveFile {
    /// Canonical URL.
    url: String,
    /// The path as registered (what a replace removes).
    registered: String,
    sequence: i64,
    bytes: u64,
    rows: u64,
}

/// A merged bucket: the new files (entry, size) and the registered paths they replace.
type MergedJob = (Vec<(DataFile, u64)>, Vec<String>);

/// A reduce output added as it is: its catalog entry is built from its statistics when the
/// manifest that lists it is written.
struct Output {
    url: String,
    bytes: u64,
    key: PartitionValue,
    stats: FileStats,
    schema: SchemaRef,
    spec_id: i32,
}

/// A file the commit adds.
enum Added {
    /// A reduce output of a bucket the table had no file of.
    Output(Output),
    /// A file of a merged bucket (entry, size).
    Merged(Box<DataFile>, u64),
}

impl Added {
    fn rows(&self) -> Result<u64> {
        match self {
            Added::Output(o) => o.stats.record_count(),
            Added::Merged(df, _) => Ok(df.record_count()),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Added::Output(o) => o.bytes,
            Added::Merged(_, size) => *size,
        }
    }
}

impl NewFile for Added {
    fn path(&self) -> &str {
        match self {
            Added::Output(o) => &o.url,
            Added::Merged(df, _) => df.file_path(),
        }
    }

    fn into_data_file(self) -> Result<DataFile> {
        match self {
            Added::Output(o) => o
                .stats
                .data_file(&o.schema, o.spec_id, &o.url, o.bytes, &o.key),
            Added::Merged(df, _) => Ok(*df),
        }
    }
}

struct Committer<'a> {
    options: &'a CommitOptions,
    staging: &'a Staging,
    plan: &'a Plan,
    lock: Option<&'a RenewingLock>,
    reporter: &'a dyn Reporter,
    started: Instant,
    m: CommitMetrics,
}

impl Committer<'_> {
    fn lap(&mut self, phase: &str, since: &mut Instant) {
        self.m
            .timings
            .insert(phase.to_string(), since.elapsed().as_secs_f64());
        *since = Instant::now();
    }

    async fn run(mut self) -> Result<CommitMetrics> {
        let plan = self.plan;
        let mut t = Instant::now();
        let catalog =
            Catalog::open_with(&plan.catalog, &plan.warehouse, OpenMode::MustExist).await?;
        let table = catalog.load_table().await?.ok_or_else(|| Error::NotFound {
            what: format!("table {} in catalog", catalog.ident()),
            location: plan.catalog.clone(),
            hint: format!("; backfill plan {} was made for it", plan.plan_id),
        })?;
        if table.metadata().uuid().to_string() != plan.table_uuid {
            return Err(Error::Refused {
                action: format!("commit backfill plan {}", plan.plan_id),
                reason: format!(
                    "the plan was made for table {} but {} now holds table {}",
                    plan.table_uuid,
                    plan.catalog,
                    table.metadata().uuid()
                ),
            });
        }
        let maps = map_markers(self.staging, plan).await?;
        self.count_items(&maps);
        let committed = table.metadata().snapshots().find(|s| {
            s.summary().additional_properties.get(PROP_BACKFILL_PLAN) == Some(&plan.plan_id)
        });
        self.lap("markers", &mut t);
        let table = match committed {
            Some(snapshot) => {
                // An earlier commit registered everything and stopped before its cleanup.
                self.m.outcome = "already_committed".into();
                self.m.snapshot_id = Some(snapshot.snapshot_id());
                if plan.update_hash_index {
                    let loc = Location::parse(&plan.hash_index)?;
                    self.m.index_reconciled = Some(hash_index::reconcile(&table, &loc).await?);
                }
                self.delete_replaced(&table).await?;
                table
            }
            None => self.register(&catalog, table, &maps, &mut t).await?,
        };
        // Outputs no committed file is: merged away, or of killed reduce attempts.
        let deleted = self.delete_unregistered_outputs(&table).await?;
        self.m.files_deleted += deleted;
        self.lap("cleanup", &mut t);
        self.write_reports(&maps).await?;
        crate::fault::check("backfill.commit.before_staging_delete")?;
        self.m.staging_deleted = delete_staging(self.staging).await?;
        self.lap("staging", &mut t);
        self.m.elapsed_secs = self.started.elapsed().as_secs_f64();
        Ok(self.m)
    }

    fn count_items(&mut self, maps: &BTreeMap<usize, MapDone>) {
        self.m.failed = self.plan.malformed;
        if self.plan.malformed > 0 {
            self.m
                .failures_by_reason
                .insert("inventory: malformed row".into(), self.plan.malformed);
        }
        for done in maps.values() {
            self.m.items += done.items;
            self.m.failed += done.failed;
            for (k, n) in &done.failures_by_reason {
                *self.m.failures_by_reason.entry(k.clone()).or_default() += n;
            }
        }
    }

    /// Everything up to and including the one commit, upload and index update.
    async fn register(
        &mut self,
        catalog: &Catalog,
        table: Table,
        maps: &BTreeMap<usize, MapDone>,
        t: &mut Instant,
    ) -> Result<Table> {
        let plan = self.plan;
        let mut reduces = self.complete(maps).await?;
        self.lap("reduce_markers", t);
        if plan.update_hash_index {
            let loc = Location::parse(&plan.hash_index)?;
            self.m.index_reconciled = Some(hash_index::reconcile(&table, &loc).await?);
            self.lap("index_reconcile", t);
        }
        let table = self.add_columns(catalog, table, &reduces).await?;
        let warehouse = catalog.warehouse().clone();

        // The table's live files of the buckets the backfill writes.
        let mut outputs: BTreeMap<PartitionValue, Vec<ReducedFile>> = BTreeMap::new();
        for done in reduces.values_mut() {
            for f in std::mem::take(&mut done.files) {
                outputs.entry(f.key()).or_default().push(f);
            }
        }
        let live = crate::catalog::live::scan(&table, &Pruner::default())
            .await?
            .files;
        let mut existing: HashMap<PartitionValue, Vec<LiveFile>> = HashMap::new();
        for f in &live {
            let url = canonical(&f.path);
            let key = crate::partition::partition_of_path(&url).unwrap_or_else(|| PartitionValue {
                cell: f
                    .cell
                    .clone()
                    .unwrap_or_else(|| crate::grid::NONE_KEY.to_string()),
                year: f.year,
            });
            if outputs.contains_key(&key) {
                existing.entry(key).or_default().push(LiveFile {
                    url,
                    registered: f.path.clone(),
                    sequence: f.sequence_number.unwrap_or(0),
                    bytes: f.bytes,
                    rows: f.rows,
                });
            }
        }
        self.lap("scan", t);
        self.m.buckets = outputs.len() as u64;
        let (to_merge, to_add): (Vec<_>, Vec<_>) = outputs
            .into_iter()
            .partition(|(key, _)| existing.contains_key(key));
        self.m.buckets_added = to_add.len() as u64;
        self.m.buckets_merged = to_merge.len() as u64;

        self.reporter.phase(
            "footers",
            Some(to_add.iter().map(|b| b.1.len() as u64).sum()),
        );
        let mut added = self.entries_of(&table, to_add).await?;
        self.reporter.finish_phase();
        self.lap("footers", t);

        let mut removed = Vec::new();
        if !to_merge.is_empty() {
            let first = reduces.values().next();
            let ctx = MergeContext::of(
                &table,
                &warehouse,
                self.options.writer.clone(),
                first.and_then(|d| d.max_rows_per_file),
            )
            .await?
            .with_output(
                "compacted",
                Some(first.map_or(DEFAULT_TARGET_FILE_SIZE, |d| d.target_file_size)),
            );
            self.reporter.phase("merge", Some(to_merge.len() as u64));
            let jobs: Vec<(Bucket, Vec<String>)> = to_merge
                .into_iter()
                .map(|(key, outs)| {
                    let old = existing.remove(&key).unwrap_or_default();
                    let registered = old.iter().map(|o| o.registered.clone()).collect();
                    let mut files: Vec<(String, i64, u64, u64)> = old
                        .into_iter()
                        .map(|o| (o.url, o.sequence, o.bytes, o.rows))
                        .collect();
                    // The backfill's rows are the newest version on ties.
                    files.extend(outs.into_iter().map(|f| (f.url, i64::MAX, f.bytes, f.rows)));
                    (Bucket { key, files }, registered)
                })
                .collect();
            let merged: Vec<Result<MergedJob>> = merge_bounded(
                jobs,
                |(bucket, _)| bucket.files.len(),
                self.options.parallelism,
                |(bucket, registered)| {
                    let ctx = ctx.clone();
                    async move {
                        let mb = merge_bucket(&bucket, &ctx, None).await.map_err(|e| {
                            Error::Inconsistent(format!(
                                "merging bucket {} with the table's files: {e}",
                                bucket.key.dir()
                            ))
                        })?;
                        Ok((mb.files, registered))
                    }
                },
                || self.reporter.advance(1),
            )
            .await;
            self.reporter.finish_phase();
            for r in merged {
                let (files, old) = r?;
                added.extend(
                    files
                        .into_iter()
                        .map(|(df, size)| Added::Merged(Box::new(df), size)),
                );
                removed.extend(old);
            }
            self.lap("merge", t);
        }

        // What the commit replaces, for a crash between the commit and the deletes.
        let replaced: Vec<String> = removed.iter().map(|p| canonical(p)).collect();
        super::put_json(
            &self.staging.commit_record(),
            &CommitRecord {
                replaced: replaced.clone(),
            },
        )
        .await?;
        if let Some(lock) = self.lock {
            lock.verify().await?;
        }
        self.m.files_added = added.len() as u64;
        self.m.files_replaced = removed.len() as u64;
        for a in &added {
            self.m.rows += a.rows()?;
            self.m.bytes += a.bytes();
        }
        let files: Vec<(String, u64)> = added
            .iter()
            .map(|a| (a.path().to_string(), a.bytes()))
            .collect();
        let props = HashMap::from([
            ("earthcatalog.operation".to_string(), "backfill".to_string()),
            (PROP_BACKFILL_PLAN.to_string(), plan.plan_id.clone()),
        ]);
        self.reporter.message(&format!(
            "committing: +{} -{} files",
            added.len(),
            removed.len()
        ));
        let table = if added.is_empty() && removed.is_empty() {
            table
        } else {
            self.m.operation = Some(
                if removed.is_empty() {
                    "append"
                } else {
                    "replace"
                }
                .into(),
            );
            catalog
                .replace_files(&table, &removed, added, props)
                .await?
        };
        catalog.upload().await?;
        self.m.outcome = "committed".into();
        self.m.snapshot_id = table.metadata().current_snapshot_id();
        self.lap("commit", t);
        crate::fault::check("backfill.commit.after_commit")?;

        if plan.update_hash_index && !files.is_empty() {
            let loc = Location::parse(&plan.hash_index)?;
            let stamp = hash_index::IndexStamp::of(&table);
            let update = async {
                let ids = reduced_ids(&reduces, &files).await?;
                hash_index::merge_into_index(&loc, ids, stamp.as_ref()).await
            };
            match update.await {
                Ok((added, total)) => {
                    self.m.hash_index_added = Some(added);
                    self.m.hash_index_total = Some(total);
                }
                // The next run that uses the index reconciles it from the catalog.
                Err(e) => self.m.warnings.push(format!(
                    "hash index {} not updated after the commit: {e}",
                    loc.url()
                )),
            }
            self.lap("index", t);
        }
        crate::rewrite::delete_all(&replaced).await?;
        self.m.files_deleted += replaced.len() as u64;
        Ok(table)
    }

    /// The reduce markers, after checking that every shard is done (or `--allow-partial`).
    async fn complete(
        &mut self,
        maps: &BTreeMap<usize, MapDone>,
    ) -> Result<BTreeMap<usize, ReduceDone>> {
        let plan = self.plan;
        let mut reduces = BTreeMap::new();
        for j in 0..plan.reduce_shards {
            if let Some(done) = finished(self.staging, plan, j).await? {
                reduces.insert(j, done);
            }
        }
        let missing_maps: Vec<usize> = (0..plan.map_shards)
            .filter(|i| !maps.contains_key(i))
            .collect();
        let missing_reduces: Vec<usize> = (0..plan.reduce_shards)
            .filter(|j| !reduces.contains_key(j))
            .collect();
        // A reduce that ran without some map shard left their rows of its buckets out.
        let short: Vec<String> = reduces
            .values()
            .filter(|d| !d.missing_maps.is_empty())
            .map(|d| {
                format!(
                    "reduce shard {} ran without map shard(s) {}",
                    d.shard,
                    list(&d.missing_maps)
                )
            })
            .collect();
        let mut problems = Vec::new();
        if !missing_maps.is_empty() {
            problems.push(format!(
                "map shard(s) {} of {} not done",
                list(&missing_maps),
                plan.map_shards
            ));
        }
        if !missing_reduces.is_empty() {
            problems.push(format!(
                "reduce shard(s) {} of {} not done",
                list(&missing_reduces),
                plan.reduce_shards
            ));
        }
        problems.extend(short);
        if !problems.is_empty() {
            if !self.options.allow_partial {
                return Err(Error::Refused {
                    action: format!("commit backfill plan {}", plan.plan_id),
                    reason: format!(
                        "{}; run them (`earthcatalog backfill status --staging {}` lists every \
                         shard), or pass --allow-partial to commit what is done",
                        problems.join("; "),
                        self.staging.root().url()
                    ),
                });
            }
            self.m.partial = true;
            let mut missing: Vec<usize> = missing_maps;
            for d in reduces.values() {
                missing.extend(&d.missing_maps);
            }
            missing.sort_unstable();
            missing.dedup();
            self.m.missing_map_shards = missing;
            self.m.missing_reduce_shards = missing_reduces;
            self.m.warnings.push(format!(
                "partial commit: {}; their keys are not in the table (plan again with --mode \
                 new to fetch them)",
                problems.join("; ")
            ));
        }
        Ok(reduces)
    }

    /// Add the columns the maps discovered, checking that the ids the reduce outputs carry are
    /// the ones the table assigns.
    async fn add_columns(
        &mut self,
        catalog: &Catalog,
        table: Table,
        reduces: &BTreeMap<usize, ReduceDone>,
    ) -> Result<Table> {
        let Some(first) = reduces.values().next() else {
            return Ok(table);
        };
        if let Some(other) = reduces.values().find(|d| d.columns != first.columns) {
            return Err(Error::Inconsistent(format!(
                "reduce shards {} and {} wrote different columns (a reduce ran on other map \
                 outputs)",
                first.shard, other.shard
            )));
        }
        let refuse = |what: String| Error::Refused {
            action: format!("commit backfill plan {}", self.plan.plan_id),
            reason: format!(
                "{what}: the table's schema changed since the plan, and the reduce outputs \
                 carry other column ids; plan the backfill again"
            ),
        };
        let current: HashMap<String, PlannedColumn> =
            table_columns(table.metadata().current_schema())
                .iter()
                .map(|c| (c.name.clone(), PlannedColumn::of(c)))
                .collect();
        let mut new = Vec::new();
        for c in &first.columns {
            match current.get(&c.name) {
                Some(have) if have == c => {}
                Some(have) => {
                    return Err(refuse(format!(
                        "column {} is {} (id {}) in the table but {} (id {}) in the outputs",
                        c.name, have.ty, have.field_id, c.ty, c.field_id
                    )));
                }
                None => new.push(c.clone()),
            }
        }
        if new.is_empty() {
            return Ok(table);
        }
        let last = table.metadata().last_column_id();
        if new.first().is_some_and(|c| c.field_id != last + 1) {
            return Err(refuse(format!(
                "new column {} has id {} in the outputs but would get {}",
                new[0].name,
                new[0].field_id,
                last + 1
            )));
        }
        let wanted = new
            .iter()
            .map(|c| Ok((c.name.clone(), super::parse_type(&c.ty)?)))
            .collect::<Result<Vec<_>>>()?;
        self.reporter.message(&format!(
            "adding {} column(s) to the table schema",
            new.len()
        ));
        let table = catalog.add_columns(&table, &wanted).await?;
        let after: HashMap<String, i32> = table_columns(table.metadata().current_schema())
            .into_iter()
            .map(|c| (c.name, c.field_id))
            .collect();
        if let Some(c) = new.iter().find(|c| after.get(&c.name) != Some(&c.field_id)) {
            return Err(Error::Inconsistent(format!(
                "column {} got id {:?} in the table, but the backfill outputs carry id {}",
                c.name,
                after.get(&c.name),
                c.field_id
            )));
        }
        self.m.columns_added = new.into_iter().map(|c| c.name).collect();
        Ok(table)
    }

    /// The outputs of buckets added as they are, each with its catalog statistics: from its
    /// reduce marker, or — for markers written before reduce recorded them — its footer.
    async fn entries_of(
        &mut self,
        table: &Table,
        buckets: Vec<(PartitionValue, Vec<ReducedFile>)>,
    ) -> Result<Vec<Added>> {
        let schema = table.metadata().current_schema().clone();
        let spec_id = table.metadata().default_partition_spec_id();
        let output = |key: &PartitionValue, f: ReducedFile, stats: FileStats| {
            Added::Output(Output {
                url: f.url,
                bytes: f.bytes,
                key: key.clone(),
                stats,
                schema: schema.clone(),
                spec_id,
            })
        };
        let mut added = Vec::new();
        let mut unread = Vec::new();
        for (key, files) in buckets {
            for mut f in files {
                match f.stats.take() {
                    Some(stats) => {
                        added.push(output(&key, f, stats));
                        self.reporter.advance(1);
                    }
                    None => unread.push((key.clone(), f)),
                }
            }
        }
        self.m.footers_read = unread.len() as u64;
        let read: Vec<Result<Added>> = futures::stream::iter(unread)
            .map(|(key, f)| {
                let schema = schema.clone();
                async move {
                    let loc = Location::parse(&f.url)?;
                    let meta = crate::rewrite::scan::read_footer(&loc, f.bytes).await?;
                    let stats = FileStats::from_footer(&schema, &meta)?;
                    Ok((key, f, stats))
                }
            })
            .buffer_unordered(FOOTER_READS)
            .inspect(|_| self.reporter.advance(1))
            .map(|r| r.map(|(key, f, stats)| output(&key, f, stats)))
            .collect()
            .await;
        for r in read {
            added.push(r?);
        }
        Ok(added)
    }

    /// After a crash between the commit and its deletes: delete the files the commit
    /// replaced (recorded before it), unless a later commit registered them again.
    async fn delete_replaced(&mut self, table: &Table) -> Result<()> {
        let Some(record) = super::read_json::<CommitRecord>(&self.staging.commit_record()).await?
        else {
            return Ok(());
        };
        let live: HashSet<String> = crate::catalog::live::scan(table, &Pruner::default())
            .await?
            .files
            .iter()
            .map(|f| canonical(&f.path))
            .collect();
        let gone: Vec<String> = record
            .replaced
            .into_iter()
            .filter(|u| !live.contains(u))
            .collect();
        crate::rewrite::delete_all(&gone).await?;
        self.m.files_deleted += gone.len() as u64;
        Ok(())
    }

    /// Delete the warehouse files named `backfill_<plan>_*` that the table does not hold.
    async fn delete_unregistered_outputs(&mut self, table: &Table) -> Result<u64> {
        let warehouse = Location::parse(&self.plan.warehouse)?;
        let prefix = format!("{}_", self.plan.output_prefix());
        let live: HashSet<String> = crate::catalog::live::scan(table, &Pruner::default())
            .await?
            .files
            .iter()
            .map(|f| canonical(&f.path))
            .collect();
        let stale: Vec<String> = crate::rewrite::scan::list_warehouse(&warehouse)
            .await?
            .into_iter()
            .filter(|f| f.name.starts_with(&prefix) && !live.contains(&f.url))
            .map(|f| f.url)
            .collect();
        crate::rewrite::delete_all(&stale).await?;
        Ok(stale.len() as u64)
    }

    /// The summary and the failures report (plan's malformed rows, then each map shard's).
    async fn write_reports(&mut self, maps: &BTreeMap<usize, MapDone>) -> Result<()> {
        let dir = match &self.options.report_dir {
            Some(d) => Location::parse(d)?,
            None => Location::parse(&self.plan.warehouse)?.join("_reports"),
        };
        let name = format!("backfill_{}", self.plan.plan_id);
        // The plan's report exists only when the inventory had malformed rows; a map shard's
        // is named by its marker, so a missing one is reported (its failures stay counted).
        let mut sources = vec![(None, self.staging.plan_failures())];
        for done in maps.values() {
            if let Some(url) = &done.failures_report {
                sources.push((Some(done), Location::parse(url)?));
            }
        }
        let mut csv: Vec<u8> = Vec::new();
        for (done, src) in sources {
            let Some(bytes) = src.get_bytes_opt().await? else {
                if let Some(done) = done {
                    self.m.warnings.push(format!(
                        "map shard {}: its failures report {} is gone; its {} failed items are \
                         counted but not listed",
                        done.shard,
                        src.url(),
                        done.failed
                    ));
                }
                continue;
            };
            // Every report starts with the same header line: keep the first one only.
            let body = if csv.is_empty() {
                &bytes[..]
            } else {
                match bytes.iter().position(|b| *b == b'\n') {
                    Some(i) => &bytes[i + 1..],
                    None => &[][..],
                }
            };
            csv.extend_from_slice(body);
        }
        if !csv.is_empty() {
            let loc = dir.join(&format!("{name}_failures.csv"));
            loc.put_bytes(csv.into()).await?;
            self.m.failures_report = Some(loc.url().to_string());
        }
        let loc = dir.join(&format!("{name}_summary.json"));
        self.m.summary_report = Some(loc.url().to_string());
        self.m.elapsed_secs = self.started.elapsed().as_secs_f64();
        super::put_json(&loc, &self.m).await
    }
}

/// The ids the backfill added: what the reduce shards recorded (the merged buckets' other ids
/// are in the index already: it was reconciled before the commit), else read from the files.
async fn reduced_ids(
    reduces: &BTreeMap<usize, ReduceDone>,
    files: &[(String, u64)],
) -> Result<Vec<hash_index::IdHash>> {
    if reduces.values().any(|d| d.ids.is_none()) {
        return hash_index::ids_of_files(files).await;
    }
    let mut ids = Vec::new();
    for url in reduces.values().filter_map(|d| d.ids.as_deref()) {
        let loc = Location::parse(url)?;
        let bytes = loc.get_bytes().await?;
        if bytes.len() % 16 != 0 {
            return Err(Error::Inconsistent(format!(
                "{url} holds {} bytes, not a whole number of 16-byte id digests",
                bytes.len()
            )));
        }
        ids.extend(bytes.chunks_exact(16).map(|c| {
            let mut h = [0u8; 16];
            h.copy_from_slice(c);
            h
        }));
    }
    Ok(ids)
}

/// Delete everything under the staging prefix, `plan.json` last (so a crash part-way leaves
/// a plan that the next commit finishes). Returns how many objects were deleted.
async fn delete_staging(staging: &Staging) -> Result<u64> {
    let plan = staging.plan();
    let rest: Vec<_> = list_below(staging.root())
        .await?
        .into_iter()
        .map(|m| m.location)
        .filter(|k| k != plan.prefix())
        .collect();
    let n = super::delete_keys(staging.root(), rest).await?;
    let last = super::delete_keys(staging.root(), vec![plan.prefix().clone()]).await?;
    Ok(n + last)
}
