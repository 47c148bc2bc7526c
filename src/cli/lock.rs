//! `earthcatalog lock status` and `earthcatalog lock break`: inspect and clear the catalog lock.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::lock::{BreakOutcome, Liveness, LockStatus};
use crate::store::Location;
use clap::{Args, Subcommand};

use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(subcommand)]
    command: LockCommand,
}

#[derive(Debug, Subcommand)]
enum LockCommand {
    /// Who holds the lock, since when, until when, and whether the holder is provably dead.
    Status(StatusArgs),
    /// Delete a lock that is stale or whose holder is provably dead (exit 4 otherwise).
    Break(BreakArgs),
}

/// Which lock: the one beside `--catalog`, or `--lock-key`.
#[derive(Debug, Args)]
struct LockTarget {
    /// Catalog database whose lock (`.lock` beside it) to look at.
    #[arg(long, default_value = super::ingest::DEFAULT_CATALOG)]
    catalog: String,
    /// The lock object itself (overrides --catalog).
    #[arg(long, conflicts_with = "catalog")]
    lock_key: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl LockTarget {
    fn location(&self) -> crate::Result<Location> {
        let url = crate::lock::lock_url(&self.catalog, self.lock_key.as_deref())?;
        Location::parse(&url)
    }
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    target: LockTarget,
}

#[derive(Debug, Args)]
struct BreakArgs {
    #[command(flatten)]
    target: LockTarget,
    /// Also break a fresh lock whose holder may be alive. Only when you know the holder is gone
    /// (e.g. its machine was terminated): a live holder loses the lock, and a Python holder
    /// never notices and keeps writing.
    #[arg(long)]
    force: bool,
}

pub async fn run(args: LockArgs) -> anyhow::Result<u8> {
    match args.command {
        LockCommand::Status(args) => status(args).await,
        LockCommand::Break(args) => break_lock(args).await,
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<u8> {
    let location = args.target.location()?;
    let status = crate::lock::status(&location, &SystemClock).await?;
    if args.target.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&status)?));
    } else {
        super::print_stdout(&render_status(&status));
    }
    Ok(EXIT_OK)
}

async fn break_lock(args: BreakArgs) -> anyhow::Result<u8> {
    let location = args.target.location()?;
    let outcome = crate::lock::break_lock(&location, args.force, Arc::new(SystemClock))
        .await
        .map_err(|e| match e {
            crate::Error::Locked { .. } => anyhow::Error::new(e).context(
                "not breaking the lock: it is fresh and its holder may be alive \
                 (see `earthcatalog lock status`; --force overrides)",
            ),
            other => other.into(),
        })?;
    if args.target.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&outcome)?));
    } else {
        super::print_stdout(&render_break(&outcome));
    }
    Ok(EXIT_OK)
}

fn seconds(s: i64) -> String {
    crate::lock::human_duration(chrono::Duration::seconds(s))
}

fn render_status(s: &LockStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "lock:      {}", s.lock);
    if !s.held {
        let _ = writeln!(out, "state:     free (no lock object)");
        return out;
    }
    let state = match (s.stale, s.expires_in_seconds) {
        (true, Some(left)) => format!(
            "stale for {} (anyone may take it over or break it)",
            seconds(-left)
        ),
        (true, None) => "stale".to_string(),
        (false, Some(left)) => format!("held, fresh for {}", seconds(left)),
        (false, None) => "held".to_string(),
    };
    let _ = writeln!(out, "state:     {state}");
    if let Some(reason) = &s.unreadable {
        let _ = writeln!(out, "payload:   unreadable ({reason})");
    }
    let _ = writeln!(
        out,
        "holder:    {} on {} (pid {})",
        s.owner.as_deref().unwrap_or("unknown"),
        s.hostname.as_deref().unwrap_or("unknown"),
        s.pid.unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "acquired:  {} ({} ago)",
        s.acquired.as_deref().unwrap_or("?"),
        seconds(s.age_seconds.unwrap_or(0))
    );
    if let Some(ttl) = s.ttl_hours {
        let _ = writeln!(
            out,
            "ttl:       {ttl} h ({})",
            seconds((ttl * 3600.0).round() as i64)
        );
    }
    if let Some(expires) = &s.expires {
        let _ = writeln!(out, "expires:   {expires}");
    }
    let process = match s.holder {
        Some(Liveness::Alive) => "alive",
        Some(Liveness::Dead) => "dead",
        _ => "unknown",
    };
    let _ = writeln!(
        out,
        "process:   {process} ({})",
        s.holder_detail.as_deref().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "break:     {}",
        if s.breakable {
            "`earthcatalog lock break` will delete it"
        } else {
            "refused while the lock is fresh and its holder may be alive (wait, or --force)"
        }
    );
    out
}

fn render_break(o: &BreakOutcome) -> String {
    let b = &o.before;
    if !o.broken {
        return format!("no lock to break at {}\n", b.lock);
    }
    format!(
        "broke the catalog lock at {} ({}): it was held by {} on {} (pid {}) since {}\n",
        b.lock,
        o.reason.as_deref().unwrap_or("?"),
        b.owner.as_deref().unwrap_or("unknown"),
        b.hostname.as_deref().unwrap_or("unknown"),
        b.pid.unwrap_or(0),
        b.acquired.as_deref().unwrap_or("?")
    )
}
