//! `earthcatalog index stats|verify|rebuild`: the hash index of ingested ids.

use std::sync::Arc;

use crate::hash_index::{self, Verification};
use crate::lock::LockOptions;
use crate::store::Location;
use clap::{Args, Subcommand};

use super::{EXIT_OK, EXIT_PARTIAL, UsageError};

#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Rows, size and the snapshot the index reflects, against the table's current snapshot.
    Stats(IndexTarget),
    /// Ids in the table but not the index and vice versa (counts and a sample). Exit 3 when
    /// they differ.
    Verify(IndexTarget),
    /// Rebuild the index from the `id` column of the table's live files (under the lock).
    Rebuild(RebuildArgs),
    /// Build the id locator (id → buckets, for `serve`'s items/{id}) from the live files.
    Locate(LocateArgs),
}

#[derive(Debug, Args)]
struct LocateArgs {
    #[command(flatten)]
    target: super::ReadTarget,
    /// Where to write it (default: `<warehouse>_id_locator.parquet`).
    #[arg(long)]
    output: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct IndexTarget {
    #[command(flatten)]
    target: super::ReadTarget,
    /// The hash index (default: the table property, else `<warehouse>_id_hashes.parquet`).
    #[arg(long)]
    hash_index: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RebuildArgs {
    #[command(flatten)]
    index: IndexTarget,
    /// Do not take the catalog lock.
    #[arg(long)]
    no_lock: bool,
    /// Lock object (default: .lock beside the catalog).
    #[arg(long)]
    lock_key: Option<String>,
}

impl IndexTarget {
    async fn open(&self) -> anyhow::Result<(crate::query::Warehouse, Location)> {
        let wh = self.target.open().await?;
        let path = match &self.hash_index {
            Some(p) => p.clone(),
            None => wh
                .hash_index_path()
                .ok_or_else(|| UsageError("no hash index known: give --hash-index".into()))?,
        };
        let loc = Location::parse(&path)?;
        Ok((wh, loc))
    }
}

pub async fn run(args: IndexArgs) -> anyhow::Result<u8> {
    match args.command {
        IndexCommand::Stats(t) => stats(t).await,
        IndexCommand::Verify(t) => verify(t).await,
        IndexCommand::Rebuild(r) => rebuild(r).await,
        IndexCommand::Locate(l) => locate(l).await,
    }
}

async fn locate(args: LocateArgs) -> anyhow::Result<u8> {
    let wh = args.target.open().await?;
    let table = wh
        .table()
        .ok_or_else(|| UsageError("the catalog has no table: nothing to locate".into()))?;
    let path = match &args.output {
        Some(p) => p.clone(),
        None => wh
            .locator_path()
            .ok_or_else(|| UsageError("no warehouse known: give --output".into()))?,
    };
    let stats = crate::query::build_locator(table, &Location::parse(&path)?).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&stats)?));
    } else {
        super::print_stdout(&format!(
            "id locator {}: {} rows ({} buckets, {} files), snapshot {}\n",
            stats.path,
            stats.rows,
            stats.buckets,
            stats.files,
            stats
                .stamp
                .as_ref()
                .map_or_else(|| "none".to_string(), |s| s.snapshot_id.to_string())
        ));
    }
    Ok(EXIT_OK)
}

async fn stats(t: IndexTarget) -> anyhow::Result<u8> {
    let (wh, loc) = t.open().await?;
    let info = hash_index::index_info(&loc).await?;
    let current = wh.table().and_then(hash_index::IndexStamp::of);
    let is_current = match (&info, &current) {
        (Some(i), Some(c)) => i.stamp.as_ref() == Some(c),
        (None, None) => true,
        _ => false,
    };
    if t.json {
        let v = serde_json::json!({
            "hash_index": loc.url(),
            "exists": info.is_some(),
            "rows": info.as_ref().map(|i| i.rows),
            "bytes": info.as_ref().map(|i| i.bytes),
            "stamp": info.as_ref().and_then(|i| i.stamp.clone()),
            "table_snapshot": current.as_ref().map(|c| c.snapshot_id),
            "current": is_current,
        });
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&v)?));
        return Ok(EXIT_OK);
    }
    let mut s = format!("Hash index {}\n", loc.url());
    match &info {
        None => s.push_str("  does not exist\n"),
        Some(i) => {
            s.push_str(&format!(
                "  rows:     {}\n  bytes:    {}\n",
                i.rows, i.bytes
            ));
            match &i.stamp {
                Some(st) => s.push_str(&format!(
                    "  reflects: snapshot {} of table {}\n",
                    st.snapshot_id, st.table_uuid
                )),
                None => s.push_str(
                    "  reflects: unknown (no stamp: Python tool or older earthcatalog)\n",
                ),
            }
        }
    }
    if let Some(c) = &current {
        s.push_str(&format!("  table:    snapshot {}\n", c.snapshot_id));
    }
    s.push_str(if is_current {
        "  up to date\n"
    } else {
        "  behind or unknown: the next ingest reconciles it (or run `earthcatalog index rebuild`)\n"
    });
    super::print_stdout(&s);
    Ok(EXIT_OK)
}

async fn verify(t: IndexTarget) -> anyhow::Result<u8> {
    let (wh, loc) = t.open().await?;
    let Some(table) = wh.table() else {
        return Err(UsageError("the catalog has no table".into()).into());
    };
    let v = hash_index::verify(table, &loc).await?;
    if t.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    } else {
        super::print_stdout(&verification_text(&v, loc.url()));
    }
    Ok(if v.missing_from_index == 0 && v.not_in_table == 0 {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}

fn verification_text(v: &Verification, url: &str) -> String {
    let mut s = format!(
        "Hash index {url}\n  table ids:          {}\n  index ids:          {}\n  missing from index: {}\n  not in table:       {}\n",
        v.table_ids, v.index_ids, v.missing_from_index, v.not_in_table
    );
    for id in &v.sample_missing {
        s.push_str(&format!("    missing: {id}\n"));
    }
    for h in &v.sample_extra {
        s.push_str(&format!("    extra digest: {h}\n"));
    }
    s
}

async fn rebuild(r: RebuildArgs) -> anyhow::Result<u8> {
    let (wh, loc) = r.index.open().await?;
    let Some(table) = wh.table() else {
        return Err(UsageError("the catalog has no table".into()).into());
    };
    let lock = crate::lock::acquire_for_catalog(
        !r.no_lock,
        &r.index.target.catalog,
        r.lock_key.as_deref(),
        LockOptions::new("earthcatalog-index-rebuild"),
        Arc::new(crate::clock::SystemClock),
    )
    .await?;
    let started = std::time::Instant::now();
    let result = hash_index::rebuild(table, &loc).await;
    let rows = crate::lock::release_after(lock, result).await?;
    let secs = started.elapsed().as_secs_f64();
    if r.index.json {
        let v = serde_json::json!({"hash_index": loc.url(), "rows": rows, "elapsed_secs": secs});
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    } else {
        super::print_stdout(&format!(
            "rebuilt {} from the table's live files: {rows} ids in {secs:.1}s\n",
            loc.url()
        ));
    }
    Ok(EXIT_OK)
}
