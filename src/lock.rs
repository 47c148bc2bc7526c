//! The catalog lock: a lease object beside the catalog, built from conditional writes.
//!
//! Every command that changes the catalog (ingest, compact, rebuild) holds this lock from before it
//! downloads `catalog.db` until after it has uploaded it again. The object and its payload are the
//! Python tool's, so the two tools exclude each other:
//!
//! ```json
//! {"owner": "incremental", "pid": 4242, "hostname": "runner-1", "acquired": "2026-11-25T08:30:00.123456+00:00", "ttl_hours": 12}
//! ```
//!
//! # Guarantees
//!
//! * **Exclusive acquire.** [`CatalogLock::acquire`] creates the object with a create-only PUT
//!   (`PutMode::Create`, `If-None-Match: *` on S3). Of any number of concurrent acquirers exactly
//!   one creates it; the others read the holder's payload and fail with [`Error::Locked`] naming
//!   the owner, host, pid, acquisition time and the time left until the lock becomes stale.
//! * **Atomic stale takeover.** A lock whose age (`now - acquired`) is at least its own
//!   `ttl_hours` (ours when the payload has none) is stale. It is replaced *conditionally on the
//!   version that was judged stale* (`PutMode::Update` with its ETag/version, `If-Match` on S3),
//!   never by delete-then-create, so of many processes that find the same stale lock exactly one
//!   takes it over and a lock that was renewed or replaced in the meantime is left alone.
//! * **Renewal.** [`CatalogLock::renew`] rewrites the payload with a fresh `acquired`, again
//!   conditionally on the version we wrote last, so a long run never goes stale while it is alive.
//!   [`CatalogLock::spawn_renewal`] does this in the background. A failed renewal means someone
//!   else replaced or deleted the lock and yields [`Error::LockLost`].
//! * **Verification before commit.** [`CatalogLock::verify`] succeeds only while the object is
//!   still the one we wrote (same ETag, or same owner/pid/hostname/acquired) *and* it is not stale by
//!   our clock. Callers verify right before committing; a run that lost its lock stops instead of
//!   overwriting someone else's catalog.
//! * **Careful release.** [`CatalogLock::release`] deletes the object only if it is still ours;
//!   a lock that someone else took over is left in place, and releasing a lock that is already
//!   gone succeeds.
//! * **Injected time.** Ages and `acquired` come from a [`Clock`], so tests advance a
//!   [`TestClock`](crate::clock::TestClock) instead of sleeping.
//!
//! # Limits (what is *not* guaranteed)
//!
//! * The lock is a lease: a holder that stops renewing (crash, `kill -9`, dropped without
//!   [`release`](CatalogLock::release)) keeps others out until its TTL has passed, and a holder
//!   that stays paused past its TTL without renewing can be taken over; it finds out at its next
//!   [`verify`](CatalogLock::verify)/[`renew`](CatalogLock::renew). The window between a
//!   successful `verify` and the commit that follows it is not covered.
//! * On S3 (and `memory://`) release is read-compare-delete, because `object_store` offers no
//!   conditional delete: if our lock became stale *and* was taken over between that read and the
//!   delete, the new holder's lock is deleted. This needs our own lock to be stale, which renewal
//!   prevents. (On the local file system release runs under the guard below and has no window.)
//! * Stale detection trusts the clocks of the writer and the reader to agree within minutes.
//! * A Python holder overrides a stale lock by delete-then-create, which is not atomic, and
//!   releases without checking ownership; the guarantees above hold among earthcatalog (Rust)
//!   processes. Both tools still exclude each other through the create-only PUT.
//!
//! # Local file system
//!
//! `LocalFileSystem` supports create-only PUT (a hard link, atomic) but not `PutMode::Update`.
//! There, every check-then-write — takeover, renewal, release — runs under an exclusive OS file
//! lock (`flock`) on a small companion file `<lock file>.guard` (created on first use and left in
//! place; deleting a lock file that others may be waiting on would break the exclusion). Under the
//! guard the object is read again, compared with the version that was judged (same ETag —
//! inode/mtime/size — and same bytes) and only then overwritten by an atomic `rename(2)` or
//! deleted. Plain acquirers need no guard: their create-only PUT cannot succeed while the object
//! exists, and it only disappears by a guarded release. The kernel drops the guard when its
//! holder dies, so a crash never wedges it. The guard covers processes on one host (and on
//! network file systems whose `flock` is coherent, such as NFSv4).

use std::sync::{Arc, OnceLock};
use std::time::Duration as StdDuration;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, UpdateVersion,
};
use tokio::sync::{Mutex, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::Location;

/// Default lease length, as in the Python tool.
pub const DEFAULT_TTL_HOURS: i64 = 12;

/// How often [`CatalogLock::acquire`] re-tries when the lock object changes under it.
const MAX_ATTEMPTS: usize = 5;

/// Who takes the lock and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// Free-form owner name written into the payload (`incremental`, `backfill-v2`, `compact`, …).
    pub owner: String,
    /// Hours after `acquired` at which others may take the lock over (default 12).
    pub ttl_hours: i64,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            owner: "earthcatalog".to_string(),
            ttl_hours: DEFAULT_TTL_HOURS,
        }
    }
}

impl LockOptions {
    /// Options for `owner` with the default TTL.
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            ..Self::default()
        }
    }

    /// Set the lease length in hours.
    pub fn with_ttl_hours(mut self, ttl_hours: i64) -> Self {
        self.ttl_hours = ttl_hours;
        self
    }
}

/// The lock object's JSON payload (the Python tool's fields).
#[derive(Debug, Clone, PartialEq)]
pub struct LockPayload {
    /// Owner name.
    pub owner: String,
    /// Process id of the holder.
    pub pid: i64,
    /// Host name of the holder.
    pub hostname: String,
    /// When the lock was acquired or last renewed.
    pub acquired: DateTime<Utc>,
    /// Lease length in hours; `None` when the payload has none (the reader's TTL applies).
    pub ttl_hours: Option<f64>,
}

impl LockPayload {
    /// A payload for this process.
    pub fn for_this_process(owner: &str, ttl_hours: i64, acquired: DateTime<Utc>) -> Self {
        Self {
            owner: owner.to_string(),
            pid: i64::from(std::process::id()),
            hostname: hostname().to_string(),
            acquired,
            ttl_hours: Some(ttl_hours as f64),
        }
    }

    /// Serialise exactly as Python's `json.dumps` does (`", "`/`": "` separators, ASCII only),
    /// with `acquired` as ISO-8601 UTC with microseconds and a `+00:00` offset.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        out.push_str("{\"owner\": ");
        push_json_str(&mut out, &self.owner);
        out.push_str(&format!(", \"pid\": {}, \"hostname\": ", self.pid));
        push_json_str(&mut out, &self.hostname);
        out.push_str(", \"acquired\": ");
        push_json_str(&mut out, &format_acquired(self.acquired));
        if let Some(ttl) = self.ttl_hours {
            if ttl.fract() == 0.0 && ttl.abs() < 1e15 {
                out.push_str(&format!(", \"ttl_hours\": {}", ttl as i64));
            } else {
                out.push_str(&format!(", \"ttl_hours\": {ttl:?}"));
            }
        }
        out.push('}');
        out
    }

    /// Parse a payload written by this crate or by the Python tool (`acquired` with or without
    /// microseconds, with `+00:00`, `Z` or no offset — the latter read as UTC).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or_else(|| "not a JSON object".to_string())?;
        let text = |name: &str| obj.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let acquired = text("acquired").ok_or_else(|| "no \"acquired\" field".to_string())?;
        let acquired = crate::timestamp::parse_utc(&acquired)
            .ok_or_else(|| format!("cannot parse \"acquired\" {acquired:?}"))?;
        Ok(Self {
            owner: text("owner").unwrap_or_else(|| "unknown".to_string()),
            pid: obj
                .get("pid")
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
                .unwrap_or(0),
            hostname: text("hostname").unwrap_or_else(|| "unknown".to_string()),
            acquired,
            ttl_hours: obj.get("ttl_hours").and_then(|v| v.as_f64()),
        })
    }

    /// Whether two payloads name the same holder and acquisition (the "is it still ours" test).
    fn same_holder(&self, other: &Self) -> bool {
        self.owner == other.owner
            && self.pid == other.pid
            && self.hostname == other.hostname
            && self.acquired == other.acquired
    }
}

/// Read the lock object at `location`, `None` when there is none.
pub async fn read_lock(location: &Location) -> Result<Option<LockPayload>> {
    match location.get_bytes_opt().await? {
        None => Ok(None),
        Some(bytes) => LockPayload::parse(&bytes)
            .map(Some)
            .map_err(|reason| Error::Parse {
                location: location.url().to_string(),
                reason,
            }),
    }
}

/// A held catalog lock. Dropping it without [`release`](Self::release) leaves the object in
/// place until it becomes stale (exactly like a crash).
#[derive(Debug)]
pub struct CatalogLock {
    store: Arc<dyn ObjectStore>,
    key: Path,
    url: String,
    options: LockOptions,
    clock: Arc<dyn Clock>,
    payload: LockPayload,
    bytes: Bytes,
    version: UpdateVersion,
    /// Local file system only: the file whose OS lock serialises check-then-replace.
    guard: Option<std::path::PathBuf>,
}

/// The object currently at the key, as read.
struct Observed {
    bytes: Bytes,
    version: UpdateVersion,
    last_modified: DateTime<Utc>,
}

/// What a conditional replacement did.
enum Replace {
    /// Our payload is in place, with this version.
    Done(PutResult),
    /// The object was no longer the one we expected; nothing of ours was written.
    Changed,
}

impl CatalogLock {
    /// Take the lock at `location` (the lock object itself, e.g. `s3://bucket/catalog/.lock`).
    ///
    /// Creates the object with a create-only PUT. If it exists, reads it: a stale lock is taken
    /// over atomically (see the module docs); a fresh one yields [`Error::Locked`]. If the object
    /// vanishes between our PUT and our read, the create is tried again.
    pub async fn acquire(
        location: &Location,
        options: LockOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if options.ttl_hours <= 0 {
            return Err(Error::Config(format!(
                "lock ttl_hours must be positive, got {}",
                options.ttl_hours
            )));
        }
        if location.prefix().as_ref().is_empty() {
            return Err(Error::InvalidLocation {
                location: location.url().to_string(),
                reason: "the lock needs an object key, not a bucket or store root".to_string(),
            });
        }
        let payload = LockPayload::for_this_process(&options.owner, options.ttl_hours, clock.now());
        let mut lock = Self {
            store: location.store().clone(),
            key: location.prefix().clone(),
            url: location.url().to_string(),
            bytes: Bytes::from(payload.to_json()),
            payload,
            options,
            clock,
            version: UpdateVersion {
                e_tag: None,
                version: None,
            },
            guard: guard_path(location)?,
        };
        for _ in 0..MAX_ATTEMPTS {
            lock.set_payload(lock.clock.now());
            if let Some(put) = lock.create().await? {
                lock.version = lock.version_of(put).await?;
                return Ok(lock);
            }
            let Some(held) = lock.read().await? else {
                // Released between our PUT and our GET: create again.
                continue;
            };
            let holder = LockPayload::parse(&held.bytes).ok();
            let (acquired, ttl) = lock.judge(holder.as_ref(), &held);
            let age = lock.clock.now() - acquired;
            if age < ttl {
                return Err(lock.locked(holder, acquired, ttl - age));
            }
            tracing::warn!(
                lock = %lock.url,
                holder = holder.as_ref().map_or("unknown", |h| h.owner.as_str()),
                host = holder.as_ref().map_or("unknown", |h| h.hostname.as_str()),
                since = %format_acquired(acquired),
                "taking over a stale catalog lock"
            );
            lock.set_payload(lock.clock.now());
            match lock.replace(&held).await? {
                Replace::Done(put) => {
                    lock.version = lock.version_of(put).await?;
                    return Ok(lock);
                }
                // Someone else took it over, renewed it or released it: look again.
                Replace::Changed => continue,
            }
        }
        Err(Error::LockLost {
            key: lock.url,
            reason: format!(
                "the lock object kept changing during {MAX_ATTEMPTS} attempts to acquire it; try again"
            ),
        })
    }

    /// Rewrite the payload with a fresh `acquired`, conditionally on the version we wrote last,
    /// so that a long run never becomes stale. [`Error::LockLost`] when someone else replaced or
    /// deleted the lock (nothing is written then).
    pub async fn renew(&mut self) -> Result<()> {
        let expected = Observed {
            bytes: self.bytes.clone(),
            version: self.version.clone(),
            last_modified: self.payload.acquired,
        };
        let previous = (self.payload.clone(), self.bytes.clone());
        self.set_payload(self.clock.now());
        match self.replace(&expected).await {
            Ok(Replace::Done(put)) => {
                self.version = self.version_of(put).await?;
                tracing::debug!(lock = %self.url, "renewed the catalog lock");
                Ok(())
            }
            Ok(Replace::Changed) => {
                (self.payload, self.bytes) = previous;
                Err(self.lost().await)
            }
            Err(e) => {
                (self.payload, self.bytes) = previous;
                Err(e)
            }
        }
    }

    /// Check that the lock object is still ours and not stale by our clock. Call this right
    /// before committing. An expired-but-untouched lock can be rescued with
    /// [`renew`](Self::renew).
    pub async fn verify(&self) -> Result<()> {
        let Some(held) = self.read().await? else {
            return Err(self.lost_because("the lock object was deleted"));
        };
        if !self.is_ours(&held) {
            return Err(self.lost().await);
        }
        let age = self.clock.now() - self.payload.acquired;
        let ttl = Duration::hours(self.options.ttl_hours);
        if age >= ttl {
            return Err(self.lost_because(&format!(
                "our lock is stale (acquired {}, ttl {} h) and may be taken over at any moment; renew it",
                format_acquired(self.payload.acquired),
                self.options.ttl_hours
            )));
        }
        Ok(())
    }

    /// Delete the lock object if it is still ours. A lock that is gone is fine; a lock that
    /// someone else holds now is left in place (and logged).
    pub async fn release(self) -> Result<()> {
        self.release_ref().await
    }

    async fn release_ref(&self) -> Result<()> {
        let _guard = self.lock_guard().await?;
        let Some(held) = self.read().await? else {
            return Ok(());
        };
        if !self.is_ours(&held) {
            tracing::warn!(
                lock = %self.url,
                "not releasing the catalog lock: someone else holds it now"
            );
            return Ok(());
        }
        match self.store.delete(&self.key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(&self.url, e)),
        }
    }

    /// Keep the lock fresh in the background, renewing every `every` (see
    /// [`renewal_interval`](Self::renewal_interval) for a sensible value).
    pub fn spawn_renewal(self, every: StdDuration) -> RenewingLock {
        let ticks = futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some(((), ()))
        });
        self.spawn_renewal_on(ticks)
    }

    /// Keep the lock fresh in the background, renewing once per item of `ticks` (a schedule of
    /// your own; tests feed a channel). Renewal stops when `ticks` ends, the lock is lost, or
    /// [`RenewingLock::release`] is called.
    pub fn spawn_renewal_on<S>(self, ticks: S) -> RenewingLock
    where
        S: Stream<Item = ()> + Send + 'static,
    {
        let lock = Arc::new(Mutex::new(self));
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let (status_tx, status_rx) = watch::channel(RenewalStatus::Active { renewals: 0 });
        let task_lock = lock.clone();
        let task = tokio::spawn(async move {
            let mut ticks = std::pin::pin!(ticks);
            let mut renewals = 0u64;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop_rx => return,
                    tick = ticks.next() => {
                        if tick.is_none() {
                            return;
                        }
                    }
                }
                // Not cancelled by a stop request: a renewal always runs to completion.
                let result = task_lock.lock().await.renew().await;
                match result {
                    Ok(()) => {
                        renewals += 1;
                        status_tx.send_replace(RenewalStatus::Active { renewals });
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "catalog lock renewal failed");
                        status_tx.send_replace(RenewalStatus::Failed {
                            reason: e.to_string(),
                        });
                        return;
                    }
                }
            }
        });
        RenewingLock {
            lock,
            stop: Some(stop_tx),
            task,
            status: status_rx,
        }
    }

    /// A quarter of the TTL (three hours for the default twelve): a good renewal period.
    pub fn renewal_interval(&self) -> StdDuration {
        StdDuration::from_secs((self.options.ttl_hours.max(1) as u64) * 3600 / 4)
    }

    /// The payload we wrote last.
    pub fn payload(&self) -> &LockPayload {
        &self.payload
    }

    /// The lock object's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn set_payload(&mut self, acquired: DateTime<Utc>) {
        self.payload.acquired = acquired;
        self.bytes = Bytes::from(self.payload.to_json());
    }

    /// Create-only PUT of our payload; `None` when the object already exists.
    async fn create(&self) -> Result<Option<PutResult>> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key, PutPayload::from(self.bytes.clone()), opts)
            .await
        {
            Ok(put) => Ok(Some(put)),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(Error::store(&self.url, e)),
        }
    }

    /// Read the object at the key, `None` when it does not exist.
    async fn read(&self) -> Result<Option<Observed>> {
        read_at(self.store.as_ref(), &self.key, &self.url).await
    }

    /// The version of what we just wrote; asks the store when the PUT did not say.
    async fn version_of(&self, put: PutResult) -> Result<UpdateVersion> {
        if put.e_tag.is_some() || put.version.is_some() {
            return Ok(put.into());
        }
        match self.store.head(&self.key).await {
            Ok(meta) => Ok(UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            }),
            Err(object_store::Error::NotFound { .. }) => {
                Err(self.lost_because("the lock object vanished right after we wrote it"))
            }
            Err(e) => Err(Error::store(&self.url, e)),
        }
    }

    /// When the holder acquired the lock and how long its lease is. An unreadable payload
    /// counts from the object's modification time with our TTL.
    fn judge(&self, holder: Option<&LockPayload>, held: &Observed) -> (DateTime<Utc>, Duration) {
        let ours = Duration::hours(self.options.ttl_hours);
        match holder {
            Some(h) => {
                let ttl = h
                    .ttl_hours
                    .filter(|t| t.is_finite())
                    .map_or(ours, |t| Duration::milliseconds((t * 3_600_000.0) as i64));
                (h.acquired, ttl)
            }
            None => (held.last_modified, ours),
        }
    }

    fn is_ours(&self, held: &Observed) -> bool {
        if self.version.e_tag.is_some() && held.version.e_tag == self.version.e_tag {
            return true;
        }
        LockPayload::parse(&held.bytes).is_ok_and(|p| p.same_holder(&self.payload))
    }

    /// Replace `expected` (what is at the key, as read) with our payload, atomically.
    async fn replace(&self, expected: &Observed) -> Result<Replace> {
        if self.guard.is_some() {
            return self.replace_guarded(expected).await;
        }
        let opts = PutOptions {
            mode: PutMode::Update(expected.version.clone()),
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key, PutPayload::from(self.bytes.clone()), opts)
            .await
        {
            Ok(put) => Ok(Replace::Done(put)),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Ok(Replace::Changed),
            Err(e) => Err(Error::store(&self.url, e)),
        }
    }

    /// Conditional replacement on the local file system (see the module docs): under the guard,
    /// check that the object is still `expected`, then overwrite it (an atomic `rename(2)`).
    async fn replace_guarded(&self, expected: &Observed) -> Result<Replace> {
        let _guard = self.lock_guard().await?;
        let Some(current) = self.read().await? else {
            return Ok(Replace::Changed);
        };
        let unchanged = current.bytes == expected.bytes
            && (expected.version.e_tag.is_none()
                || current.version.e_tag == expected.version.e_tag);
        if !unchanged {
            return Ok(Replace::Changed);
        }
        let put = self
            .store
            .put(&self.key, PutPayload::from(self.bytes.clone()))
            .await
            .map_err(|e| Error::store(&self.url, e))?;
        Ok(Replace::Done(put))
    }

    /// On the local file system, take the guard: an exclusive OS file lock (`flock`) on
    /// `<lock file>.guard`, released when the returned file is dropped, or by the kernel when the
    /// process dies. `None` on other stores.
    async fn lock_guard(&self) -> Result<Option<std::fs::File>> {
        let Some(path) = self.guard.clone() else {
            return Ok(None);
        };
        let task = tokio::task::spawn_blocking(move || {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
            };
            let file = match open() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                    }
                    open()
                }
                other => other,
            }
            .map_err(|e| Error::io(&path, e))?;
            file.lock().map_err(|e| Error::io(&path, e))?;
            Ok(Some(file))
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::io(&self.url, std::io::Error::other(e))),
        }
    }

    fn locked(
        &self,
        holder: Option<LockPayload>,
        acquired: DateTime<Utc>,
        left: Duration,
    ) -> Error {
        let holder = holder.unwrap_or(LockPayload {
            owner: "unknown".to_string(),
            pid: 0,
            hostname: "unknown".to_string(),
            acquired,
            ttl_hours: None,
        });
        Error::Locked {
            key: self.url.clone(),
            owner: holder.owner,
            hostname: holder.hostname,
            pid: holder.pid,
            acquired: format_acquired(acquired),
            remaining: human_duration(left),
        }
    }

    /// A `LockLost` error describing who holds the lock now.
    async fn lost(&self) -> Error {
        let reason = match self.read().await {
            Ok(None) => "the lock object was deleted".to_string(),
            Ok(Some(held)) => match LockPayload::parse(&held.bytes) {
                Ok(h) => format!(
                    "it is now held by {} on {} (pid {}) since {}",
                    h.owner,
                    h.hostname,
                    h.pid,
                    format_acquired(h.acquired)
                ),
                Err(_) => "it was replaced by an unreadable payload".to_string(),
            },
            Err(e) => format!("it changed, and reading it again failed: {e}"),
        };
        self.lost_because(&reason)
    }

    fn lost_because(&self, reason: &str) -> Error {
        Error::LockLost {
            key: self.url.clone(),
            reason: reason.to_string(),
        }
    }
}

/// How background renewal is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalStatus {
    /// Renewing; `renewals` have succeeded so far.
    Active {
        /// Successful renewals so far.
        renewals: u64,
    },
    /// A renewal failed (the lock was lost or the store failed); renewal has stopped.
    Failed {
        /// The error of the failed renewal.
        reason: String,
    },
}

/// A [`CatalogLock`] renewed by a background task (see [`CatalogLock::spawn_renewal`]).
#[derive(Debug)]
pub struct RenewingLock {
    lock: Arc<Mutex<CatalogLock>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    status: watch::Receiver<RenewalStatus>,
}

impl RenewingLock {
    /// Watch the renewal status (e.g. `wait_for` a renewal count, or check for failure).
    pub fn status(&self) -> watch::Receiver<RenewalStatus> {
        self.status.clone()
    }

    /// [`CatalogLock::verify`], failing early when background renewal has already failed.
    pub async fn verify(&self) -> Result<()> {
        let lock = self.lock.lock().await;
        if let RenewalStatus::Failed { reason } = &*self.status.borrow() {
            return Err(lock.lost_because(&format!("background renewal failed: {reason}")));
        }
        lock.verify().await
    }

    /// Renew now, in addition to the schedule.
    pub async fn renew_now(&self) -> Result<()> {
        self.lock.lock().await.renew().await
    }

    /// The payload written last.
    pub async fn payload(&self) -> LockPayload {
        self.lock.lock().await.payload.clone()
    }

    /// Stop renewing (waiting for a renewal in flight to finish) and release the lock.
    pub async fn release(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            tracing::warn!(error = %e, "catalog lock renewal task ended abnormally");
        }
        self.lock.lock().await.release_ref().await
    }
}

/// `<lock file>.guard` for a lock on the local file system, `None` elsewhere.
fn guard_path(location: &Location) -> Result<Option<std::path::PathBuf>> {
    if !location.is_local() {
        return Ok(None);
    }
    let invalid = |reason: String| Error::InvalidLocation {
        location: location.url().to_string(),
        reason,
    };
    let url = url::Url::parse(location.url()).map_err(|e| invalid(e.to_string()))?;
    let path = url
        .to_file_path()
        .map_err(|()| invalid("not a local file path".to_string()))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".guard");
    Ok(Some(path.with_file_name(name)))
}

async fn read_at(store: &dyn ObjectStore, key: &Path, url: &str) -> Result<Option<Observed>> {
    match store.get(key).await {
        Ok(res) => {
            let version = UpdateVersion {
                e_tag: res.meta.e_tag.clone(),
                version: res.meta.version.clone(),
            };
            let last_modified = res.meta.last_modified;
            match res.bytes().await {
                Ok(bytes) => Ok(Some(Observed {
                    bytes,
                    version,
                    last_modified,
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(Error::store(url, e)),
            }
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(url, e)),
    }
}

/// `2026-11-25T08:30:00.123456+00:00`, as Python's `datetime.now(timezone.utc).isoformat()`.
fn format_acquired(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// `3h 05m 09s` (or `0s` for anything not positive).
fn human_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A JSON string literal as Python's `json.dumps` writes it (`ensure_ascii=True`).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown`).
fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::env::var("HOSTNAME")
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "unknown".to_string())
    })
}

/// Take the lock for `catalog` — at `explicit`, else `.lock` beside it — and keep it renewed
/// in the background. `None` when `wanted` is false.
pub async fn acquire_for_catalog(
    wanted: bool,
    catalog: &str,
    explicit: Option<&str>,
    options: LockOptions,
    clock: Arc<dyn Clock>,
) -> Result<Option<RenewingLock>> {
    if !wanted {
        return Ok(None);
    }
    let url = match explicit {
        Some(l) => l.to_string(),
        None => default_lock_url(catalog)?,
    };
    let lock = CatalogLock::acquire(&Location::parse(&url)?, options, clock).await?;
    let every = lock.renewal_interval();
    Ok(Some(lock.spawn_renewal(every)))
}

/// Release `lock` (if any) once the work produced `result`. A failed release is reported only
/// when the work itself succeeded (the work's own error matters more).
pub async fn release_after<T>(lock: Option<RenewingLock>, result: Result<T>) -> Result<T> {
    if let Some(lock) = lock {
        let released = lock.release().await;
        if let (Ok(_), Err(e)) = (&result, released) {
            return Err(e);
        }
    }
    result
}

/// The default lock object for a catalog: `.lock` beside `catalog.db` (the Python tool's key).
pub fn default_lock_url(catalog: &str) -> Result<String> {
    let cat = Location::parse(catalog)?;
    let (dir, _) = cat
        .split_last()
        .ok_or_else(|| Error::Config(format!("cannot place a lock beside catalog {catalog}")))?;
    Ok(dir.url_of(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TestClock;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T08:30:00.123456Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn clock() -> Arc<TestClock> {
        Arc::new(TestClock::new(start()))
    }

    fn mem(name: &str) -> Location {
        Location::parse(&format!("memory://lock-{name}/catalog/.lock")).unwrap()
    }

    fn local(dir: &tempfile::TempDir) -> Location {
        Location::parse(dir.path().join("catalog/.lock").to_str().unwrap()).unwrap()
    }

    async fn payload_at(location: &Location) -> serde_json::Value {
        serde_json::from_slice(&location.get_bytes().await.unwrap()).unwrap()
    }

    fn files_in(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Write a lock object as another process (or the Python tool) would.
    async fn plant(location: &Location, owner: &str, acquired: DateTime<Utc>, ttl: i64) {
        let p = LockPayload {
            owner: owner.to_string(),
            pid: 999_999,
            hostname: "elsewhere".to_string(),
            acquired,
            ttl_hours: Some(ttl as f64),
        };
        location.put_bytes(Bytes::from(p.to_json())).await.unwrap();
    }

    #[test]
    fn payload_json_matches_python_json_dumps() {
        let p = LockPayload {
            owner: "incremental".to_string(),
            pid: 123,
            hostname: "host-1".to_string(),
            acquired: start(),
            ttl_hours: Some(12.0),
        };
        assert_eq!(
            p.to_json(),
            r#"{"owner": "incremental", "pid": 123, "hostname": "host-1", "acquired": "2026-11-25T08:30:00.123456+00:00", "ttl_hours": 12}"#
        );
        assert_eq!(LockPayload::parse(p.to_json().as_bytes()).unwrap(), p);
        let mut s = String::new();
        push_json_str(&mut s, "é\"\\\n😀");
        assert_eq!(s, r#""\u00e9\"\\\n\ud83d\ude00""#);
    }

    #[test]
    fn parses_python_written_timestamps() {
        let whole = start() - Duration::microseconds(123_456);
        for (text, want) in [
            ("2026-11-25T08:30:00.123456+00:00", start()),
            ("2026-11-25T08:30:00+00:00", whole),
            ("2026-11-25T08:30:00.123456Z", start()),
            ("2026-11-25T08:30:00Z", whole),
            ("2026-11-25T08:30:00.123456", start()),
            ("2026-11-25T09:30:00.123456+01:00", start()),
        ] {
            let json = format!(
                r#"{{"owner": "x", "pid": 1, "hostname": "h", "acquired": "{text}", "ttl_hours": 6}}"#
            );
            let p = LockPayload::parse(json.as_bytes()).unwrap();
            assert_eq!(p.acquired, want, "{text}");
            assert_eq!(p.ttl_hours, Some(6.0));
        }
        assert!(LockPayload::parse(b"{\"owner\": \"x\"}").is_err());
        assert!(LockPayload::parse(b"garbage").is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(
            human_duration(Duration::seconds(3 * 3600 + 5 * 60 + 9)),
            "3h 05m 09s"
        );
        assert_eq!(human_duration(Duration::seconds(61)), "1m 01s");
        assert_eq!(human_duration(Duration::seconds(-5)), "0s");
    }

    #[tokio::test]
    async fn acquire_writes_the_payload_and_release_deletes_it() {
        let loc = mem("payload");
        let lock = CatalogLock::acquire(
            &loc,
            LockOptions::new("incremental").with_ttl_hours(6),
            clock(),
        )
        .await
        .unwrap();
        let v = payload_at(&loc).await;
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["owner", "pid", "hostname", "acquired", "ttl_hours"]);
        assert_eq!(v["owner"], "incremental");
        assert_eq!(v["pid"], i64::from(std::process::id()));
        assert_eq!(v["hostname"], hostname());
        assert_eq!(v["acquired"], "2026-11-25T08:30:00.123456+00:00");
        assert_eq!(v["ttl_hours"], 6);
        lock.verify().await.unwrap();
        lock.release().await.unwrap();
        assert!(loc.get_bytes_opt().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn default_ttl_is_twelve_hours() {
        let loc = mem("default-ttl");
        let lock = CatalogLock::acquire(&loc, LockOptions::new("x"), clock())
            .await
            .unwrap();
        assert_eq!(payload_at(&loc).await["ttl_hours"], 12);
        assert_eq!(lock.renewal_interval(), StdDuration::from_secs(3 * 3600));
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn second_owner_is_locked_out_naming_the_holder() {
        for loc in [mem("second"), local(&tempfile::tempdir().unwrap())] {
            let c = clock();
            let first = CatalogLock::acquire(&loc, LockOptions::new("backfill-v2"), c.clone())
                .await
                .unwrap();
            c.advance(Duration::hours(2));
            let err = CatalogLock::acquire(&loc, LockOptions::new("compact"), c.clone())
                .await
                .unwrap_err();
            match &err {
                Error::Locked {
                    owner,
                    hostname: host,
                    pid,
                    acquired,
                    remaining,
                    key,
                } => {
                    assert_eq!(owner, "backfill-v2");
                    assert_eq!(host, hostname());
                    assert_eq!(*pid, i64::from(std::process::id()));
                    assert_eq!(acquired, "2026-11-25T08:30:00.123456+00:00");
                    assert_eq!(remaining, "10h 00m 00s");
                    assert_eq!(key, loc.url());
                }
                other => panic!("expected Locked, got {other:?}"),
            }
            assert!(err.to_string().contains("backfill-v2"));
            assert_eq!(payload_at(&loc).await["owner"], "backfill-v2");
            first.release().await.unwrap();
        }
    }

    #[tokio::test]
    async fn fresh_lock_blocks_and_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        for loc in [mem("stale"), local(&dir)] {
            let c = clock();
            plant(&loc, "python", start(), 12).await;
            c.advance(Duration::hours(11) + Duration::minutes(59));
            let err = CatalogLock::acquire(&loc, LockOptions::new("rust"), c.clone())
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Locked { owner, .. } if owner == "python"),
                "{err}"
            );
            c.advance(Duration::hours(1));
            let lock = CatalogLock::acquire(&loc, LockOptions::new("rust"), c.clone())
                .await
                .unwrap();
            let v = payload_at(&loc).await;
            assert_eq!(v["owner"], "rust");
            assert_eq!(v["acquired"], format_acquired(c.now()));
            lock.verify().await.unwrap();
            lock.release().await.unwrap();
            assert!(loc.get_bytes_opt().await.unwrap().is_none());
        }
        // Only the guard is left behind on the local file system.
        assert_eq!(files_in(&dir.path().join("catalog")), [".lock.guard"]);
    }

    #[tokio::test]
    async fn staleness_uses_the_holders_own_ttl() {
        let loc = mem("holder-ttl");
        let c = clock();
        plant(&loc, "short", start(), 1).await;
        c.advance(Duration::hours(2));
        // Our TTL of 12 h does not matter: the holder said 1 h.
        let lock = CatalogLock::acquire(&loc, LockOptions::new("rust"), c.clone())
            .await
            .unwrap();
        lock.release().await.unwrap();
        // A payload without ttl_hours falls back to ours.
        loc.put_bytes(Bytes::from(format!(
            r#"{{"owner": "old", "pid": 1, "hostname": "h", "acquired": "{}"}}"#,
            format_acquired(c.now())
        )))
        .await
        .unwrap();
        c.advance(Duration::hours(5));
        let err = CatalogLock::acquire(&loc, LockOptions::new("rust").with_ttl_hours(6), c.clone())
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Locked { remaining, .. } if remaining == "1h 00m 00s"));
        c.advance(Duration::hours(1));
        CatalogLock::acquire(&loc, LockOptions::new("rust").with_ttl_hours(6), c.clone())
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn release_leaves_a_lock_that_is_no_longer_ours() {
        for loc in [mem("release-theirs"), local(&tempfile::tempdir().unwrap())] {
            let c = clock();
            let lock = CatalogLock::acquire(&loc, LockOptions::new("mine"), c.clone())
                .await
                .unwrap();
            plant(&loc, "theirs", c.now(), 12).await;
            assert!(matches!(lock.verify().await, Err(Error::LockLost { .. })));
            lock.release().await.unwrap();
            assert_eq!(payload_at(&loc).await["owner"], "theirs");
        }
    }

    #[tokio::test]
    async fn releasing_a_missing_lock_is_ok() {
        let loc = mem("release-missing");
        let lock = CatalogLock::acquire(&loc, LockOptions::new("mine"), clock())
            .await
            .unwrap();
        loc.store().delete(loc.prefix()).await.unwrap();
        let err = lock.verify().await.unwrap_err();
        assert!(err.to_string().contains("deleted"), "{err}");
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn renew_refreshes_acquired_and_keeps_the_lock_fresh() {
        for loc in [mem("renew"), local(&tempfile::tempdir().unwrap())] {
            let c = clock();
            let mut lock = CatalogLock::acquire(&loc, LockOptions::new("long-run"), c.clone())
                .await
                .unwrap();
            c.advance(Duration::hours(11));
            lock.renew().await.unwrap();
            assert_eq!(payload_at(&loc).await["acquired"], format_acquired(c.now()));
            assert_eq!(lock.payload().acquired, c.now());
            lock.verify().await.unwrap();
            // 13 h after the first acquire, but only 2 h after the renewal: still fresh.
            c.advance(Duration::hours(2));
            let err = CatalogLock::acquire(&loc, LockOptions::new("other"), c.clone())
                .await
                .unwrap_err();
            assert!(matches!(&err, Error::Locked { owner, .. } if owner == "long-run"));
            lock.renew().await.unwrap();
            lock.verify().await.unwrap();
            lock.release().await.unwrap();
            assert!(loc.get_bytes_opt().await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn renew_and_verify_detect_a_lost_lock() {
        for loc in [mem("lost"), local(&tempfile::tempdir().unwrap())] {
            let c = clock();
            let mut lock = CatalogLock::acquire(&loc, LockOptions::new("slow"), c.clone())
                .await
                .unwrap();
            c.advance(Duration::hours(13));
            // Our own lock is stale now: verify refuses although nobody took it yet.
            let err = lock.verify().await.unwrap_err();
            assert!(err.to_string().contains("stale"), "{err}");
            let thief = CatalogLock::acquire(&loc, LockOptions::new("thief"), c.clone())
                .await
                .unwrap();
            let err = lock.verify().await.unwrap_err();
            assert!(
                matches!(&err, Error::LockLost { reason, .. } if reason.contains("thief")),
                "{err}"
            );
            let err = lock.renew().await.unwrap_err();
            assert!(matches!(err, Error::LockLost { .. }), "{err}");
            // The failed renewal wrote nothing.
            assert_eq!(payload_at(&loc).await["owner"], "thief");
            thief.verify().await.unwrap();
            lock.release().await.unwrap();
            assert_eq!(payload_at(&loc).await["owner"], "thief");
            thief.release().await.unwrap();
        }
    }

    #[tokio::test]
    async fn expired_but_untouched_lock_can_be_renewed() {
        let loc = mem("rescue");
        let c = clock();
        let mut lock = CatalogLock::acquire(&loc, LockOptions::new("slow"), c.clone())
            .await
            .unwrap();
        c.advance(Duration::hours(20));
        assert!(lock.verify().await.is_err());
        lock.renew().await.unwrap();
        lock.verify().await.unwrap();
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn lock_needs_an_object_key_and_a_positive_ttl() {
        let root = Location::parse("memory://lock-root").unwrap();
        assert!(matches!(
            CatalogLock::acquire(&root, LockOptions::new("x"), clock()).await,
            Err(Error::InvalidLocation { .. })
        ));
        assert!(matches!(
            CatalogLock::acquire(
                &mem("ttl0"),
                LockOptions::new("x").with_ttl_hours(0),
                clock()
            )
            .await,
            Err(Error::Config(_))
        ));
    }

    #[tokio::test]
    async fn unreadable_payload_ages_from_the_object_time() {
        let loc = mem("garbage");
        loc.put_bytes(Bytes::from_static(b"not json"))
            .await
            .unwrap();
        // The object was just written (real time); with a clock at real time it is fresh.
        let now = Arc::new(TestClock::new(Utc::now()));
        let err = CatalogLock::acquire(&loc, LockOptions::new("x"), now.clone())
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Locked { owner, .. } if owner == "unknown"));
        now.advance(Duration::hours(13));
        CatalogLock::acquire(&loc, LockOptions::new("x"), now)
            .await
            .unwrap();
    }

    /// Run `n` acquirers at once; return the owners whose acquire succeeded and the locks.
    async fn race(loc: &Location, c: Arc<TestClock>, n: usize) -> Vec<CatalogLock> {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let loc = loc.clone();
                let c: Arc<dyn Clock> = c.clone();
                tokio::spawn(async move {
                    CatalogLock::acquire(&loc, LockOptions::new(format!("racer-{i}")), c).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(lock) => winners.push(lock),
                Err(Error::Locked { .. }) | Err(Error::LockLost { .. }) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        winners
    }

    async fn assert_single_holder(loc: &Location, winners: Vec<CatalogLock>) {
        let owners: Vec<_> = winners.iter().map(|w| w.payload().owner.clone()).collect();
        assert_eq!(owners.len(), 1, "acquire winners {owners:?}");
        let mut verified = Vec::new();
        for w in &winners {
            if w.verify().await.is_ok() {
                verified.push(w.payload().owner.clone());
            }
        }
        assert_eq!(verified, owners);
        assert_eq!(payload_at(loc).await["owner"], verified[0].as_str());
        for w in winners {
            w.release().await.unwrap();
        }
        assert!(loc.get_bytes_opt().await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_acquirers_have_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        for loc in [mem("race"), local(&dir)] {
            for _ in 0..5 {
                let winners = race(&loc, clock(), 8).await;
                assert_single_holder(&loc, winners).await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_stale_takeovers_have_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        for loc in [mem("race-stale"), local(&dir)] {
            for _ in 0..5 {
                let c = clock();
                plant(&loc, "crashed", start(), 12).await;
                c.advance(Duration::hours(13));
                let winners = race(&loc, c, 8).await;
                assert_single_holder(&loc, winners).await;
            }
        }
        assert_eq!(files_in(&dir.path().join("catalog")), [".lock.guard"]);
    }

    /// A lock "bg" on `loc` whose renewal ticks when the test sends on the returned channel.
    async fn renewing_by_hand(
        loc: &Location,
        c: &Arc<TestClock>,
    ) -> (RenewingLock, tokio::sync::mpsc::Sender<()>) {
        let lock = CatalogLock::acquire(loc, LockOptions::new("bg"), c.clone())
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
        let ticks =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
            );
        (lock.spawn_renewal_on(ticks), tx)
    }

    #[tokio::test]
    async fn background_renewal_keeps_the_lock_fresh() {
        let loc = mem("background");
        let c = clock();
        let (renewing, tx) = renewing_by_hand(&loc, &c).await;
        let mut status = renewing.status();
        for n in 1..=3u64 {
            c.advance(Duration::hours(10));
            tx.send(()).await.unwrap();
            status
                .wait_for(|s| *s == RenewalStatus::Active { renewals: n })
                .await
                .unwrap();
            assert_eq!(payload_at(&loc).await["acquired"], format_acquired(c.now()));
            renewing.verify().await.unwrap();
        }
        // 30 h after the acquire, the lock is still fresh for others.
        assert!(matches!(
            CatalogLock::acquire(&loc, LockOptions::new("other"), c.clone()).await,
            Err(Error::Locked { .. })
        ));
        renewing.release().await.unwrap();
        assert!(loc.get_bytes_opt().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn background_renewal_reports_a_lost_lock() {
        let loc = mem("background-lost");
        let c = clock();
        let (renewing, tx) = renewing_by_hand(&loc, &c).await;
        plant(&loc, "intruder", c.now(), 12).await;
        tx.send(()).await.unwrap();
        let mut status = renewing.status();
        status
            .wait_for(|s| matches!(s, RenewalStatus::Failed { .. }))
            .await
            .unwrap();
        assert!(matches!(
            renewing.verify().await,
            Err(Error::LockLost { .. })
        ));
        renewing.release().await.unwrap();
        assert_eq!(payload_at(&loc).await["owner"], "intruder");
    }
}
