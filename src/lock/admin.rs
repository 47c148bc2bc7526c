//! For operators: the lock's status (holder, age, expiry, whether the holder is provably
//! dead) and breaking a stale or dead holder's lock.

use super::*;

/// Whether the process holding a lock is running, as far as this machine can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// The payload names this host and a process with its pid exists here.
    Alive,
    /// The payload names this host and no process with its pid exists here.
    Dead,
    /// The holder ran elsewhere (or the payload is unreadable): this machine cannot tell.
    Unknown,
}

/// What [`status`] finds at a lock location (`earthcatalog lock status --json` prints this).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockStatus {
    /// The lock object's URL.
    pub lock: String,
    /// Whether a lock object exists.
    pub held: bool,
    /// The holder's owner name.
    pub owner: Option<String>,
    /// The holder's host name.
    pub hostname: Option<String>,
    /// The holder's process id.
    pub pid: Option<i64>,
    /// When the holder acquired or last renewed the lock (ISO-8601 UTC); for an unreadable
    /// payload, the object's modification time.
    pub acquired: Option<String>,
    /// Seconds since `acquired`.
    pub age_seconds: Option<i64>,
    /// The lease in hours: the holder's own `ttl_hours`, else this tool's default.
    pub ttl_hours: Option<f64>,
    /// When the lock becomes stale (`acquired + ttl`).
    pub expires: Option<String>,
    /// Seconds until then (zero or negative once stale).
    pub expires_in_seconds: Option<i64>,
    /// Whether the lease has run out (anyone may take the lock over or break it).
    pub stale: bool,
    /// Whether the holder's process is running (`null` when there is no lock).
    pub holder: Option<Liveness>,
    /// How `holder` was decided.
    pub holder_detail: Option<String>,
    /// Whether the holder is provably dead (same host name as this machine, no such pid).
    pub holder_dead: bool,
    /// Whether `earthcatalog lock break` would delete it (stale or holder provably dead).
    pub breakable: bool,
    /// Why the payload could not be read, when it could not.
    pub unreadable: Option<String>,
}

impl LockStatus {
    pub(super) fn none(url: &str) -> Self {
        Self {
            lock: url.to_string(),
            held: false,
            owner: None,
            hostname: None,
            pid: None,
            acquired: None,
            age_seconds: None,
            ttl_hours: None,
            expires: None,
            expires_in_seconds: None,
            stale: false,
            holder: None,
            holder_detail: None,
            holder_dead: false,
            breakable: false,
            unreadable: None,
        }
    }

    pub(super) fn of(url: &str, held: &Observed, now: DateTime<Utc>) -> Self {
        let parsed = LockPayload::parse(&held.bytes);
        let holder = parsed.as_ref().ok();
        let default_ttl = Duration::from_std(DEFAULT_TTL).unwrap_or(Duration::MAX);
        let (acquired, ttl) = effective_lease(holder, held, default_ttl);
        let age = now - acquired;
        let stale = age >= ttl;
        let expires = acquired.checked_add_signed(ttl);
        let (liveness, detail) = match holder {
            Some(h) => liveness(h),
            None => (
                Liveness::Unknown,
                "the payload is unreadable; no holder to check".to_string(),
            ),
        };
        let dead = liveness == Liveness::Dead;
        Self {
            lock: url.to_string(),
            held: true,
            owner: holder.map(|h| h.owner.clone()),
            hostname: holder.map(|h| h.hostname.clone()),
            pid: holder.map(|h| h.pid),
            acquired: Some(format_acquired(acquired)),
            age_seconds: Some(age.num_seconds()),
            ttl_hours: Some(
                holder
                    .and_then(|h| h.ttl_hours.filter(|t| t.is_finite()))
                    .unwrap_or(DEFAULT_TTL_HOURS),
            ),
            expires: expires.map(format_acquired),
            expires_in_seconds: expires.map(|e| (e - now).num_seconds()),
            stale,
            holder: Some(liveness),
            holder_detail: Some(detail),
            holder_dead: dead,
            breakable: stale || dead,
            unreadable: parsed.err(),
        }
    }

    /// The refusal for a lock that may not be broken: [`Error::Locked`] naming the holder.
    pub(super) fn refusal(&self) -> Error {
        let left = self.expires_in_seconds.unwrap_or(0);
        Error::Locked {
            key: self.lock.clone(),
            owner: self.owner.clone().unwrap_or_else(|| "unknown".to_string()),
            hostname: self
                .hostname
                .clone()
                .unwrap_or_else(|| "unknown".to_string()),
            pid: self.pid.unwrap_or(0),
            acquired: self.acquired.clone().unwrap_or_default(),
            remaining: human_duration(Duration::seconds(left)),
        }
    }
}

/// Describe the lock at `location` (nothing is written).
pub async fn status(location: &Location, clock: &dyn Clock) -> Result<LockStatus> {
    let url = location.url();
    if location.prefix().as_ref().is_empty() {
        return Err(Error::InvalidLocation {
            location: url.to_string(),
            reason: "the lock needs an object key, not a bucket or store root".to_string(),
        });
    }
    Ok(
        match read_at(location.store().as_ref(), location.prefix(), url).await? {
            None => LockStatus::none(url),
            Some(held) => LockStatus::of(url, &held, clock.now()),
        },
    )
}

/// What [`break_lock`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakOutcome {
    /// Whether a lock was deleted.
    pub broken: bool,
    /// Why it could be deleted: `stale`, `holder-dead` or `forced`; `None` when nothing was.
    pub reason: Option<String>,
    /// The lock as judged before breaking it.
    pub before: LockStatus,
}

/// Delete the lock at `location` if it is stale or its holder is provably dead (see
/// [`LockStatus`]), or unconditionally with `force`. Never deletes a lock that changed after it
/// was judged: the lock is first taken over conditionally on the version that was judged (as a
/// stale takeover does), then our own takeover is released. A lock that may not be broken, or
/// that changed in between, yields [`Error::Locked`] naming its holder. No lock is not an error.
pub async fn break_lock(
    location: &Location,
    force: bool,
    clock: Arc<dyn Clock>,
) -> Result<BreakOutcome> {
    break_with(
        CatalogLock::unheld(location, LockOptions::new(BREAK_OWNER), clock)?,
        force,
    )
    .await
}

/// [`break_lock`] through `breaker`, a handle on the lock object that holds nothing yet.
pub(super) async fn break_with(mut breaker: CatalogLock, force: bool) -> Result<BreakOutcome> {
    let url = breaker.url.clone();
    let Some(held) = breaker.read().await? else {
        return Ok(BreakOutcome {
            broken: false,
            reason: None,
            before: LockStatus::none(&url),
        });
    };
    let before = LockStatus::of(&url, &held, breaker.clock.now());
    let reason = if before.stale {
        "stale"
    } else if before.holder_dead {
        "holder-dead"
    } else if force {
        "forced"
    } else {
        return Err(before.refusal());
    };
    if reason == "forced" {
        tracing::warn!(
            lock = %before.lock,
            owner = before.owner.as_deref().unwrap_or("unknown"),
            host = before.hostname.as_deref().unwrap_or("unknown"),
            pid = before.pid.unwrap_or(0),
            acquired = before.acquired.as_deref().unwrap_or(""),
            "force-breaking a catalog lock that is neither stale nor held by a provably dead process"
        );
    } else {
        tracing::info!(lock = %before.lock, reason, "breaking the catalog lock");
    }
    breaker.set_payload(breaker.clock.now());
    let bytes = breaker.bytes.clone();
    match breaker.replace(&held, &bytes).await? {
        Replace::Done(put) => {
            breaker.version = breaker.version_of(put).await?;
            breaker.release_ref().await?;
            Ok(BreakOutcome {
                broken: true,
                reason: Some(reason.to_string()),
                before,
            })
        }
        Replace::Changed => match breaker.read().await? {
            None => Ok(BreakOutcome {
                broken: false,
                reason: None,
                before,
            }),
            Some(now_held) => Err(LockStatus::of(&url, &now_held, breaker.clock.now()).refusal()),
        },
    }
}

/// Whether the holder named by `payload` is running here (see [`Liveness`]).
pub(super) fn liveness(payload: &LockPayload) -> (Liveness, String) {
    let here = hostname();
    if payload.hostname != here {
        return (
            Liveness::Unknown,
            format!(
                "held on host {:?}, this is {here:?}: cannot check its process",
                payload.hostname
            ),
        );
    }
    let Ok(pid) = i32::try_from(payload.pid) else {
        return (
            Liveness::Unknown,
            format!("pid {} is not a process id", payload.pid),
        );
    };
    if pid <= 0 {
        return (Liveness::Unknown, format!("pid {pid} is not a process id"));
    }
    match process_exists(pid) {
        Some(true) => (
            Liveness::Alive,
            format!("process {pid} is running on this host"),
        ),
        Some(false) => (
            Liveness::Dead,
            format!("no process {pid} on this host ({here})"),
        ),
        None => (
            Liveness::Unknown,
            format!("cannot check process {pid} on this platform"),
        ),
    }
}

/// Whether a process with `pid` (> 0) exists; `None` when that cannot be told.
#[cfg(unix)]
pub(super) fn process_exists(pid: i32) -> Option<bool> {
    // SAFETY: signal 0 sends nothing; `kill` only checks that `pid` exists and may be
    // signalled. `pid` is positive, so it never addresses a process group.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc == 0 {
        return Some(true);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => Some(false),
        // It exists but belongs to another user.
        Some(libc::EPERM) => Some(true),
        _ => None,
    }
}

#[cfg(not(unix))]
pub(super) fn process_exists(_pid: i32) -> Option<bool> {
    None
}
