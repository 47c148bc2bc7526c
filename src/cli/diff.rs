//! `earthcatalog diff`: keys new or changed between two inventory days, and keys removed.

use crate::delta::diff::{DiffMetrics, DiffOptions, run_diff};
use crate::inventory::InventoryOptions;
use clap::Args;

use super::progress::{BarReporter, Progress};
use super::{EXIT_OK, UsageError};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Today's inventory (manifest.json, CSV, CSV.gz or Parquet; path or s3://…).
    #[arg(long)]
    current: String,
    /// The previous day's inventory (any format).
    #[arg(long)]
    previous: String,
    /// Where the new and changed keys go (a delta file: bucket, key, id_hash; ingest it with
    /// `--mode all`).
    #[arg(long)]
    out: String,
    /// Where the removed keys go (same columns; for `gc --removed`).
    #[arg(long)]
    removed: Option<String>,
    /// Memory bound, e.g. `1GB`, `512MB` (sizes the spill partitions).
    #[arg(long, default_value = "1GB")]
    max_memory: String,
    /// Directory for spill files (default: the system temporary directory).
    #[arg(long)]
    temp_dir: Option<std::path::PathBuf>,
    /// Keep keys ending with this suffix.
    #[arg(long, default_value = crate::inventory::DEFAULT_SUFFIX)]
    suffix: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `1GB`, `512MB`, `64KiB`, `1000` (bytes).
pub fn parse_bytes(text: &str, arg: &str) -> Result<u64, UsageError> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| UsageError(format!("{arg} {text:?}: expected e.g. 1GB or 512MB")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(UsageError(format!(
                "{arg} {text:?}: unknown unit {other:?} (B, KB, MB, GB, TB)"
            )));
        }
    };
    if !(n.is_finite() && n > 0.0) {
        return Err(UsageError(format!("{arg} {text:?}: must be positive")));
    }
    Ok((n * mult as f64) as u64)
}

pub async fn run(args: DiffArgs, progress: Progress) -> anyhow::Result<u8> {
    let options = DiffOptions {
        current: args.current.clone(),
        previous: args.previous.clone(),
        out: args.out.clone(),
        removed: args.removed.clone(),
        max_memory: parse_bytes(&args.max_memory, "--max-memory")?,
        temp_dir: args.temp_dir.clone(),
        inventory_options: InventoryOptions::default().with_suffix(args.suffix.clone()),
    };
    let reporter = BarReporter::new(&progress);
    let m = run_diff(&options, &reporter).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        super::print_stdout(&summary(&m));
    }
    Ok(EXIT_OK)
}

fn summary(m: &DiffMetrics) -> String {
    format!(
        "Diff\n  previous keys: {}\n  current keys:  {}\n  added:         {}\n  changed:       {}\n  unchanged:     {}\n  removed:       {}\n  repeated keys: {}\n  new+changed → {}\n{}  partitions:    {} ({} bytes spilled)\n  elapsed:       {:.1}s\n",
        m.previous_keys,
        m.current_keys,
        m.added,
        m.changed,
        m.unchanged,
        m.removed,
        m.duplicates,
        m.out,
        m.removed_out
            .as_ref()
            .map(|r| format!("  removed → {r}\n"))
            .unwrap_or_default(),
        m.partitions,
        m.spilled_bytes,
        m.elapsed_secs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("1GB", "x").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512 MB", "x").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5g", "x").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("1000", "x").unwrap(), 1000);
        assert!(parse_bytes("lots", "x").is_err());
        assert!(parse_bytes("1XB", "x").is_err());
        assert!(parse_bytes("0", "x").is_err());
    }
}
