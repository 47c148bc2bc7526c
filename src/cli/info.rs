//! `earthcatalog info`: what a catalog holds.

use std::fmt::Write as _;

use crate::query::CatalogInfo;
use clap::Args;

use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    target: super::ReadTarget,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write a coverage map to this file (path or URL): an SVG of the H3 cells coloured
    /// by the rows they hold, over a land outline.
    #[arg(long)]
    map: Option<String>,
    /// Draw only this UTC year's rows on the map.
    #[arg(long, requires = "map")]
    map_year: Option<i32>,
}

pub async fn run(args: InfoArgs) -> anyhow::Result<u8> {
    let wh = args.target.open().await?;
    let info = wh.info().await?;
    if let Some(out) = &args.map {
        let options = crate::query::MapOptions {
            year: args.map_year,
            title: format!("earthcatalog coverage: {}", args.target.catalog),
        };
        let (svg, summary) = crate::query::coverage_svg(&wh.stats().await?, &options);
        let loc = crate::store::Location::parse(out)?;
        loc.put_bytes(svg.into()).await?;
        eprintln!(
            "coverage map: {} cells, {} rows written to {}",
            summary.cells,
            summary.rows,
            loc.url()
        );
    }
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&info)?));
    } else {
        super::print_stdout(&render(&info));
    }
    Ok(EXIT_OK)
}

/// Thousands separators: 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Human bytes: 1536 → "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn year_label(year: Option<i32>) -> String {
    year.map_or_else(|| "unknown".to_string(), |y| y.to_string())
}

fn render(info: &CatalogInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "catalog:     {}", info.catalog);
    let _ = writeln!(
        s,
        "warehouse:   {}",
        info.warehouse.as_deref().unwrap_or("(unknown)")
    );
    if !info.table_exists {
        let _ = writeln!(
            s,
            "table:       earthcatalog.stac_items does not exist yet (empty catalog)"
        );
        return s;
    }
    let _ = writeln!(
        s,
        "table:       {}",
        info.table_location.as_deref().unwrap_or("")
    );
    match (info.grid_type.as_str(), info.grid_resolution) {
        ("h3", Some(r)) => {
            let _ = writeln!(s, "grid:        h3, resolution {r}");
        }
        (t, _) => {
            let _ = writeln!(
                s,
                "grid:        {t}, boundaries {}, id field {}",
                info.grid_boundaries_path.as_deref().unwrap_or("?"),
                info.grid_id_field.as_deref().unwrap_or("?")
            );
        }
    }
    match &info.snapshot {
        Some(snap) => {
            let when = snap
                .timestamp
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "?".into());
            let _ = writeln!(
                s,
                "snapshot:    {} at {when} ({}); {} snapshot(s), {} manifest(s)",
                snap.id, snap.operation, info.snapshot_count, info.manifest_count
            );
        }
        None => {
            let _ = writeln!(s, "snapshot:    none (no data committed yet)");
        }
    }
    let hash = match (
        &info.hash_index_path,
        info.hash_index_rows,
        &info.hash_index_error,
    ) {
        (None, _, _) => "(none configured)".to_string(),
        (Some(p), Some(n), _) => format!("{p} ({} ids)", thousands(n)),
        (Some(p), None, Some(e)) => format!("{p} (unreadable: {e})"),
        (Some(p), None, None) => format!("{p} (not written yet)"),
    };
    let _ = writeln!(s, "hash index:  {hash}");

    let _ = writeln!(s, "\ntotals");
    let _ = writeln!(s, "  rows:      {}", thousands(info.rows));
    let _ = writeln!(
        s,
        "  files:     {} ({})",
        thousands(info.files),
        human_bytes(info.bytes)
    );
    if info.files > 0 {
        let _ = writeln!(
            s,
            "  rows/file: {:.1}",
            info.rows as f64 / info.files as f64
        );
    }
    let _ = writeln!(s, "  cells:     {}", thousands(info.distinct_cells));
    let _ = writeln!(
        s,
        "  years:     {}",
        info.year_range
            .map(|(a, b)| format!("{a}–{b}"))
            .unwrap_or_else(|| "none".into())
    );

    if !info.years.is_empty() {
        let _ = writeln!(s, "\nrows per year");
        let max = info.years.iter().map(|y| y.rows).max().unwrap_or(0).max(1);
        for y in &info.years {
            let bar = "█".repeat(((y.rows as f64 / max as f64) * 40.0).ceil() as usize);
            let _ = writeln!(
                s,
                "  {:>7} {:>12} {:>6} files  {bar}",
                year_label(y.year),
                thousands(y.rows),
                y.files
            );
        }
    }
    if !info.top_buckets.is_empty() {
        let _ = writeln!(
            s,
            "\ntop {} buckets by rows\n  {:<16} {:>7} {:>12} {:>6} {:>10}",
            info.top_buckets.len(),
            "cell",
            "year",
            "rows",
            "files",
            "bytes"
        );
        for b in &info.top_buckets {
            let _ = writeln!(
                s,
                "  {:<16} {:>7} {:>12} {:>6} {:>10}",
                b.cell,
                year_label(b.year),
                thousands(b.rows),
                b.files,
                human_bytes(b.bytes)
            );
        }
    }
    let _ = writeln!(
        s,
        "\ncompaction candidates: {} bucket(s) with more than one file ({} files)",
        info.compaction_candidates, info.compaction_candidate_files
    );
    let evolved = info.schema.iter().filter(|f| f.evolved).count();
    let _ = writeln!(
        s,
        "\nschema: {} columns ({evolved} added by evolution, marked *)",
        info.schema.len()
    );
    for f in &info.schema {
        let _ = writeln!(
            s,
            "  {:>3}{} {:<22} {}",
            f.id,
            if f.evolved { "*" } else { " " },
            f.name,
            f.ty
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(year_label(None), "unknown");
    }
}
