//! Command-line layer: clap types, settings resolution, one module per subcommand.
// The command line is where output is written: printing is its job (the library never prints).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod backfill;
mod compact;
mod config;
mod delta;
mod diff;
mod files;
mod gc;
mod generate;
mod index;
mod info;
mod ingest;
mod lock;
mod progress;
mod search;
mod serve;
mod stats;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Exit status for a failed run.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the run finished but some items were not ingested.
pub const EXIT_PARTIAL: u8 = 3;
/// Exit status when the catalog lock is held by someone else.
pub const EXIT_LOCKED: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "earthcatalog",
    version,
    about = "STAC items → H3-partitioned GeoParquet registered in Apache Iceberg"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr (no progress bar).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Unsigned S3 requests, no credential lookup (public buckets); also
    /// EARTHCATALOG_S3_ANONYMOUS=1.
    #[arg(long, global = true)]
    anonymous: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest the STAC items listed in an inventory into the warehouse and catalog.
    Ingest(Box<ingest::IngestArgs>),
    /// Merge each bucket's files into one, dedup by id, replace them in one commit.
    Compact(compact::CompactArgs),
    /// Rebuild the table's file list from what exists in the warehouse (one commit).
    Repair(compact::RepairArgs),
    /// Write a deterministic synthetic ITS_LIVE-like dataset (items + inventory CSV).
    Generate(generate::GenerateArgs),
    /// Write keys-only S3 Inventories of two days and a hash index (daily-loop benchmarks).
    GenerateInventory(generate::GenerateInventoryArgs),
    /// Report what a catalog holds: grid, snapshot, totals, years, buckets, schema.
    Info(info::InfoArgs),
    /// Rows, files and bytes per (cell, year).
    Stats(stats::StatsArgs),
    /// Data files that can hold items of a region and time range (manifest pruning).
    Files(files::FilesArgs),
    /// STAC API item search: bbox/intersects, datetime, ids, collections, CQL2 filter, sortby.
    Search(Box<search::SearchArgs>),
    /// Today's inventory keys the warehouse does not hold yet (pending/delta_<date>.parquet).
    Delta(delta::DeltaArgs),
    /// Keys new or changed between two inventory days, and keys removed (bounded memory).
    Diff(diff::DiffArgs),
    /// Remove the rows of items whose source keys disappeared (one replace commit).
    Gc(gc::GcArgs),
    /// The hash index of ingested ids: stats, verify, rebuild.
    Index(index::IndexArgs),
    /// Inspect (`status`) or clear (`break`) the catalog lock.
    Lock(lock::LockArgs),
    /// Serve the catalog as a read-only STAC API (item search, collections, paging, filter).
    Serve(Box<serve::ServeArgs>),
    /// Scale a backfill out over a job scheduler: plan, map, reduce, commit, status.
    Backfill(backfill::BackfillArgs),
}

/// How long exiting waits for the runtime's remaining tasks.
const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(5);

/// Run the CLI and map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        crate::tune_malloc(4, Some(128 << 10));
    } else {
        crate::tune_malloc(2, None);
    }
    init_tracing(cli.verbose, cli.quiet);
    match earthcatalog::store::S3Options::from_env() {
        Ok(options) => {
            let anonymous = options.anonymous() || cli.anonymous;
            earthcatalog::store::set_s3_options(options.with_anonymous(anonymous));
        }
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(exit_code_for(&err.into()));
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let show_progress = !cli.quiet && std::io::stderr().is_terminal();
    let result = runtime.block_on(async {
        if earthcatalog::fault::armed("cli.stuck_task") {
            // A task that never yields, like sqlx's spinning pool reaper (see
            // `catalog::SQL_POOL_IDLE_TIMEOUT_SECS`): the command must still finish and exit.
            tokio::spawn(async {
                loop {
                    std::hint::spin_loop();
                }
            });
        }
        match cli.command {
            Command::Ingest(args) => ingest::run(*args, show_progress).await,
            Command::Generate(args) => generate::run(args).await,
            Command::GenerateInventory(args) => generate::run_inventory(args).await,
            Command::Compact(args) => compact::run(args, show_progress).await,
            Command::Repair(args) => compact::run_repair(args).await,
            Command::Info(args) => info::run(args).await,
            Command::Stats(args) => stats::run(args).await,
            Command::Files(args) => files::run(args).await,
            Command::Search(args) => search::run(*args).await,
            Command::Delta(args) => delta::run(args, show_progress).await,
            Command::Diff(args) => diff::run(args, show_progress).await,
            Command::Gc(args) => gc::run(args, show_progress).await,
            Command::Index(args) => index::run(args).await,
            Command::Lock(args) => lock::run(args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Backfill(args) => backfill::run(args, show_progress).await,
        }
    });
    // The command is done and everything it wrote is awaited. A task that never yields (a
    // library bug, e.g. sqlx's pool reaper: `catalog::SQL_POOL_IDLE_TIMEOUT_SECS`) would make
    // dropping the runtime wait forever, and the process would hang after finishing its work.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code_for(&err))
        }
    }
}

/// The exit code of a failed command, decided by the error's variant only.
fn exit_code_for(err: &anyhow::Error) -> u8 {
    use earthcatalog::error::Category;
    match err
        .downcast_ref::<earthcatalog::Error>()
        .map(|e| e.category())
    {
        Some(Category::Locked) => EXIT_LOCKED,
        Some(Category::Usage) => EXIT_USAGE,
        Some(_) => EXIT_FAILURE,
        None if err.downcast_ref::<UsageError>().is_some() => EXIT_USAGE,
        None => EXIT_FAILURE,
    }
}

/// A usage error found while resolving settings.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn init_tracing(verbose: u8, quiet: bool) {
    let level = if quiet {
        "error"
    } else {
        match verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EARTHCATALOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
        .try_init();
}

/// Print to stdout, treating a closed pipe as success.
/// The catalog (and optional warehouse) flags of the read-only commands.
#[derive(Debug, clap::Args)]
pub struct ReadTarget {
    /// Catalog database (path or s3://…/catalog.db).
    #[arg(long, default_value = ingest::DEFAULT_CATALOG)]
    pub catalog: String,
    /// Warehouse root (default: derived from the table location).
    #[arg(long)]
    pub warehouse: Option<String>,
}

impl ReadTarget {
    /// Open the warehouse these flags name.
    pub async fn open(&self) -> earthcatalog::Result<earthcatalog::query::Warehouse> {
        earthcatalog::query::Warehouse::open(&self.catalog, self.warehouse.as_deref()).await
    }
}

pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
