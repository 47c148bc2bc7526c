//! The command line: clap types, settings resolution, one module per subcommand.
//!
//! The `earthcatalog` binary is [`main`]; the Python package's `earthcatalog` command calls
//! [`main_from`], and its API runs commands through [`run_captured`] to read their `--json`
//! summaries. This layer is the only one that prints, and the only one that uses `anyhow`.
// The command line is where output is written: printing is its job (the library never prints).
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Items are `pub` to share them between the subcommand modules, not to export them.
#![allow(unreachable_pub)]

mod backfill;
mod compact;
mod config;
mod delta;
mod diff;
mod export;
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

pub use progress::Progress;

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
struct Cli {
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
    /// Write a search's items (or the whole table) as one stac-geoparquet or NDJSON file.
    Export(Box<export::ExportArgs>),
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

/// Run the CLI on the process's arguments and map the outcome to an exit code.
pub fn main() -> ExitCode {
    ExitCode::from(main_from(std::env::args_os()))
}

/// Run the CLI on `args` (the first is the program name) as the `earthcatalog` binary does:
/// output on stdout and stderr, the outcome as an exit code. The Python package's
/// `earthcatalog` command calls this. Usage errors, `--help` and `--version` are printed and
/// returned as an exit code, never exited on.
pub fn main_from<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE);
        }
    };
    if matches!(cli.command, Command::Serve(_)) {
        tune_malloc(4, Some(128 << 10));
    } else {
        tune_malloc(2, None);
    }
    let progress = if !cli.quiet && std::io::stderr().is_terminal() {
        Progress::Bars
    } else {
        Progress::Hidden
    };
    match execute(cli, progress, None) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_code_for(&err)
        }
    }
}

/// A command that failed when run through [`run_captured`].
#[derive(Debug)]
pub struct CommandError {
    /// The library error's kind, when the failure was one (`None`: a usage error of the
    /// command line itself, or another failure).
    pub kind: Option<crate::error::Kind>,
    /// The exit code the binary would have returned.
    pub exit_code: u8,
    /// The message the binary would have printed after `error: `.
    pub message: String,
}

/// Run one command as the binary would, but return what it writes to stdout instead of
/// printing it: a program driving the CLI (the Python package) passes `--json` and reads the
/// summary. `progress` says where progress goes (`--quiet` hides it); `s3` replaces the S3
/// settings read from the environment. Usage errors (including a bad flag) are returned as
/// errors with exit code 2.
pub fn run_captured<I, T>(
    args: I,
    progress: Progress,
    s3: Option<crate::store::S3Options>,
) -> std::result::Result<(u8, String), CommandError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| CommandError {
        kind: Some(crate::error::Kind::InvalidArgument),
        exit_code: EXIT_USAGE,
        message: e.render().to_string().trim_end().to_string(),
    })?;
    let progress = if cli.quiet {
        Progress::Hidden
    } else {
        progress
    };
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let code = execute(cli, progress, Some((out.clone(), s3))).map_err(|err| CommandError {
        kind: err.downcast_ref::<crate::Error>().map(crate::Error::kind),
        exit_code: exit_code_for(&err),
        message: format!("{err:#}"),
    })?;
    let text = match out.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    Ok((code, text))
}

/// Where [`print_stdout`] writes inside [`run_captured`], and the S3 settings it was given.
type Capture = (
    std::sync::Arc<std::sync::Mutex<String>>,
    Option<crate::store::S3Options>,
);

tokio::task_local! {
    static CAPTURED: std::sync::Arc<std::sync::Mutex<String>>;
}

/// Set up logging and S3, run `cli`'s command on a new runtime, and shut the runtime down.
fn execute(cli: Cli, progress: Progress, capture: Option<Capture>) -> anyhow::Result<u8> {
    init_tracing(cli.verbose, cli.quiet);
    let (out, s3) = match capture {
        Some((out, s3)) => (Some(out), s3),
        None => (None, None),
    };
    let options = match s3 {
        Some(options) => options,
        None => crate::store::S3Options::from_env()?,
    };
    let anonymous = options.anonymous() || cli.anonymous;
    crate::store::set_s3_options(options.with_anonymous(anonymous));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let command = async {
        if crate::fault::armed("cli.stuck_task") {
            // A task that never yields, like sqlx's spinning pool reaper (see
            // `catalog::SQL_POOL_IDLE_TIMEOUT_SECS`): the command must still finish and exit.
            tokio::spawn(async {
                loop {
                    std::hint::spin_loop();
                }
            });
        }
        match cli.command {
            Command::Ingest(args) => ingest::run(*args, progress).await,
            Command::Generate(args) => generate::run(args).await,
            Command::GenerateInventory(args) => generate::run_inventory(args).await,
            Command::Compact(args) => compact::run(args, progress).await,
            Command::Repair(args) => compact::run_repair(args).await,
            Command::Info(args) => info::run(args).await,
            Command::Stats(args) => stats::run(args).await,
            Command::Files(args) => files::run(args).await,
            Command::Search(args) => search::run(*args).await,
            Command::Export(args) => export::run(*args).await,
            Command::Delta(args) => delta::run(args, progress).await,
            Command::Diff(args) => diff::run(args, progress).await,
            Command::Gc(args) => gc::run(args, progress).await,
            Command::Index(args) => index::run(args).await,
            Command::Lock(args) => lock::run(args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Backfill(args) => backfill::run(args, progress).await,
        }
    };
    let result = match out {
        Some(out) => runtime.block_on(CAPTURED.scope(out, command)),
        None => runtime.block_on(command),
    };
    // The command is done and everything it wrote is awaited. A task that never yields (a
    // library bug, e.g. sqlx's pool reaper: `catalog::SQL_POOL_IDLE_TIMEOUT_SECS`) would make
    // dropping the runtime wait forever, and the process would hang after finishing its work.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result
}

/// The exit code of a failed command, decided by the error's variant only.
fn exit_code_for(err: &anyhow::Error) -> u8 {
    use crate::error::Category;
    match err.downcast_ref::<crate::Error>().map(|e| e.category()) {
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
    pub async fn open(&self) -> crate::Result<crate::query::Warehouse> {
        crate::query::Warehouse::open(&self.catalog, self.warehouse.as_deref()).await
    }
}

/// Print to stdout (or to [`run_captured`]'s buffer), treating a closed pipe as success.
pub(crate) fn print_stdout(text: &str) {
    use std::io::Write;
    let captured = CAPTURED.try_with(|out| match out.lock() {
        Ok(mut g) => g.push_str(text),
        Err(poisoned) => poisoned.into_inner().push_str(text),
    });
    if captured.is_ok() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// glibc gives each thread that allocates its own arena; with hundreds of short-lived fetch and
/// parse threads that fragments memory badly (measured: 524 MB → 253 MB peak RSS for 100k
/// items at H3 res 1). Two arenas keep peak RSS close to the live data. (mimalloc was tried:
/// no faster here and 372 MB.) `serve` gets more (its request threads allocate and free
/// concurrently and queue on two arena locks: 104 → 173 point searches/s at 8 clients with
/// glibc's default, 16; four keep most of that at a lower peak RSS). Called before any other
/// thread exists.
///
/// `mmap_threshold`: allocations from this size up are mapped on their own and returned to
/// the system when freed. glibc's default starts at 128 KiB and rises to the largest block
/// freed (up to 32 MiB), after which decoded batches and response bodies come from the heap
/// and their memory stays with the process once freed. `serve` sets 128 KiB: over its whole
/// benchmark run peak RSS 317-340 MB with glibc's default, 274-277 MB with 128 KiB (same
/// sitting, A/B). Not lower: each Parquet column chunk decoded creates a zstd decompression
/// context (~95 KB); at 64 KiB every one was an mmap + munmap + page faults, ~75 per
/// `items/{id}` lookup (counted with `perf stat`), and lookups at 8 clients fell from ~300/s
/// to 150-230/s (p50 28 → 32-50 ms). It also keeps up to 32 MiB free at the top of the heap
/// (setting the threshold fixes the trim threshold at 128 KiB otherwise, and lookups then
/// gave memory back and took it again).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc(arenas: i32, mmap_threshold: Option<i32>) {
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
        if let Some(bytes) = mmap_threshold {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc(_arenas: i32, _mmap_threshold: Option<i32>) {}
