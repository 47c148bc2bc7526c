//! The catalog lock: a lease object beside the catalog, built from conditional writes.
//!
//! Parts: `payload` (the object's JSON), `lease` (acquire, renew, verify, release, stale
//! takeover), `guard` (the `flock` around local check-then-writes), `renewal` (the
//! background heartbeat), `admin` (status and break); here the options and the helpers
//! commands use.
//!
//! Every command that changes the catalog (ingest, compact, repair) holds this lock from before
//! it downloads `catalog.db` until after it has uploaded it again. The object and its payload are
//! the Python tool's, so the two tools exclude each other:
//!
//! ```json
//! {"owner": "incremental", "pid": 4242, "hostname": "runner-1", "acquired": "2026-11-25T08:30:00.123456+00:00", "ttl_hours": 0.25}
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
//! * **Heartbeat.** [`CatalogLock::renew`] rewrites the payload with a fresh `acquired`, again
//!   conditionally on the version we wrote last. [`CatalogLock::spawn_renewal`] does this in the
//!   background every TTL / [`RENEWALS_PER_TTL`] (see [`CatalogLock::renewal_interval`]). A
//!   renewal that finds the object replaced or deleted yields [`Error::LockLost`] and stops the
//!   heartbeat; a renewal that fails for another reason (a store outage, a timeout) is retried at
//!   the next beat, and the heartbeat gives up only once the lease has run out.
//! * **Verification before commit.** [`CatalogLock::verify`] succeeds only while the object is
//!   still the one we wrote (same ETag, or same owner/pid/hostname/acquired) *and* it is not stale
//!   by our clock. [`RenewingLock::verify`] also fails once the heartbeat has failed, and renews
//!   first when half the lease is spent, so a commit always starts with at least half a TTL of
//!   lease left. Callers verify right before committing; a run that lost its lock stops instead of
//!   overwriting someone else's catalog.
//! * **Careful release.** [`CatalogLock::release`] deletes the object only if it is still ours;
//!   a lock that someone else took over is left in place, and releasing a lock that is already
//!   gone succeeds.
//! * **Operator tools.** [`status`] describes the lock (holder, age, expiry, stale, whether the
//!   holder is provably dead); [`break_lock`] removes a stale lock or one whose holder is provably
//!   dead — conditionally on the version it judged, never a lock that changed in between.
//! * **Injected time.** Ages and `acquired` come from a [`Clock`], so tests advance a
//!   [`TestClock`](crate::clock::TestClock) instead of sleeping.
//!
//! # The TTL and the heartbeat
//!
//! The default lease is [`DEFAULT_TTL`], 15 minutes, written as `"ttl_hours": 0.25` (the Python
//! tool reads it with `timedelta(hours=…)`, which takes fractional hours; whole hours are still
//! written as integers). The holder renews every 3 minutes (TTL / 5), so:
//!
//! * a live holder always has at least 12 minutes of lease left, and rides out four consecutive
//!   failed renewals (each bounded by [`DEFAULT_OP_TIMEOUT`], one minute) — a store outage, a
//!   paused VM or clock skew between hosts of up to ~10 minutes — before anyone may take over;
//! * a killed holder (`kill -9`, OOM, a lost spot instance) frees the lock at most 15 minutes
//!   after its last renewal, instead of the Python tool's 12 hours. An operator who knows better
//!   can act sooner with `earthcatalog lock break` (see [`break_lock`]).
//!
//! Staleness always uses the *holder's* `ttl_hours`, so a lock the Python tool writes (12 h, no
//! heartbeat) is still respected for its full 12 hours.
//!
//! # Bounded waits
//!
//! Nothing in this module waits without a bound:
//!
//! * [`CatalogLock::acquire`] makes at most [`MAX_ATTEMPTS`] rounds of create/read/replace; each
//!   store request is bounded by the store client (on S3, `object_store`'s 30 s request timeout
//!   and 3 minute retry budget), and on the local file system the guard below by
//!   [`LockOptions::guard_timeout`].
//! * Each renewal attempt is bounded by [`LockOptions::op_timeout`]. A write abandoned by a
//!   timeout may still have landed; the next attempt reads the object back and adopts that write
//!   if it did (so a slow store never turns into a false "lock lost").
//! * [`RenewingLock::verify`], [`RenewingLock::release`] and friends wait at most for one renewal
//!   attempt in flight.
//! * The local guard (`flock`) is polled up to [`LockOptions::guard_timeout`] (30 s) and then
//!   fails with an error naming the guard file, instead of waiting forever behind a stopped
//!   process.
//!
//! # Limits (what is *not* guaranteed)
//!
//! * The lock is a lease: a holder that stops renewing (crash, `kill -9`, dropped without
//!   [`release`](CatalogLock::release)) keeps others out until its TTL has passed, and a holder
//!   that stays paused past its TTL without renewing can be taken over; it finds out at its next
//!   [`verify`](CatalogLock::verify)/[`renew`](CatalogLock::renew). The window between a
//!   successful `verify` and the commit that follows it is not covered (it starts with at least
//!   half a TTL of lease, see above).
//! * On S3 (and `memory://`) release is read-compare-delete, because `object_store` offers no
//!   conditional delete: if our lock became stale *and* was taken over between that read and the
//!   delete, the new holder's lock is deleted. This needs our own lock to be stale, which renewal
//!   prevents. (On the local file system release runs under the guard below and has no window.)
//! * Stale detection trusts the clocks of the writer and the reader to agree within minutes.
//! * "Provably dead" means: the payload names this machine's host name and no process with its
//!   pid exists here. Two machines (or containers sharing the host's UTS namespace but not its
//!   PID namespace) with the same host name defeat that test; run `lock break` where the holder
//!   ran.
//! * A Python holder overrides a stale lock by delete-then-create, which is not atomic, and
//!   releases without checking ownership; the guarantees above hold among earthcatalog (Rust)
//!   processes. Both tools still exclude each other through the create-only PUT.
//!
//! # Local file system
//!
//! `LocalFileSystem` supports create-only PUT (a hard link, atomic) but not `PutMode::Update`.
//! There, every check-then-write — takeover, renewal, release, break — runs under an exclusive OS
//! file lock (`flock`) on a small companion file `<lock file>.guard` (created on first use and
//! left in place; deleting a lock file that others may be waiting on would break the exclusion).
//! Under the guard the object is read again, compared with the version that was judged (same
//! ETag — inode/mtime/size — and same bytes) and only then overwritten by an atomic `rename(2)`
//! or deleted. Plain acquirers need no guard: their create-only PUT cannot succeed while the
//! object exists, and it only disappears by a guarded release. The kernel drops the guard when
//! its holder dies, so a crash never wedges it. The guard covers processes on one host (and on
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
use serde::Serialize;
use tokio::sync::{Mutex, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::Location;

mod admin;
mod guard;
mod lease;
mod payload;
mod renewal;

use admin::*;
pub use admin::{BreakOutcome, Liveness, LockStatus, break_lock, status};
use guard::*;
pub use lease::CatalogLock;
use lease::*;
use payload::*;
pub use payload::{LockPayload, hostname, human_duration, read_lock};
pub use renewal::{RenewalStatus, RenewingLock};

/// Default lease length: 15 minutes (see the module docs for why).
pub const DEFAULT_TTL: StdDuration = StdDuration::from_secs(15 * 60);

/// [`DEFAULT_TTL`] in the payload's unit, hours.
pub const DEFAULT_TTL_HOURS: f64 = 0.25;

/// The shortest lease [`CatalogLock::acquire`] accepts.
pub const MIN_TTL: StdDuration = StdDuration::from_secs(60);

/// The heartbeat renews this many times per TTL (every 3 minutes for the default 15).
pub const RENEWALS_PER_TTL: u32 = 5;

/// Default bound on one renewal attempt.
pub const DEFAULT_OP_TIMEOUT: StdDuration = StdDuration::from_secs(60);

/// Default bound on waiting for the local guard file lock.
pub const DEFAULT_GUARD_TIMEOUT: StdDuration = StdDuration::from_secs(30);

/// How often [`CatalogLock::acquire`] re-tries when the lock object changes under it.
pub const MAX_ATTEMPTS: usize = 5;

/// Owner name written by [`break_lock`] for the instant between its takeover and its delete.
pub const BREAK_OWNER: &str = "earthcatalog-lock-break";

/// Who takes the lock, for how long, and how long its operations may wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// Free-form owner name written into the payload (`incremental`, `backfill-v2`, `compact`, …).
    pub owner: String,
    /// Lease length: others may take the lock over this long after `acquired` (default 15 min).
    pub ttl: StdDuration,
    /// Bound on one renewal attempt (default 60 s, never more than the renewal interval).
    pub op_timeout: StdDuration,
    /// Bound on waiting for the local file system guard (default 30 s).
    pub guard_timeout: StdDuration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            owner: "earthcatalog".to_string(),
            ttl: DEFAULT_TTL,
            op_timeout: DEFAULT_OP_TIMEOUT,
            guard_timeout: DEFAULT_GUARD_TIMEOUT,
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

    /// Set the lease length.
    pub fn with_ttl(mut self, ttl: StdDuration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Set the lease length in hours, fractions allowed (the payload's unit). A value that is not
    /// a finite positive number is rejected by [`CatalogLock::acquire`].
    pub fn with_ttl_hours(mut self, hours: f64) -> Self {
        self.ttl = StdDuration::try_from_secs_f64(hours * 3600.0).unwrap_or(StdDuration::ZERO);
        self
    }

    /// Set the bound on one renewal attempt.
    pub fn with_op_timeout(mut self, timeout: StdDuration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Set the bound on waiting for the local guard.
    pub fn with_guard_timeout(mut self, timeout: StdDuration) -> Self {
        self.guard_timeout = timeout;
        self
    }

    /// The lease in hours, as written to the payload.
    pub fn ttl_hours(&self) -> f64 {
        self.ttl.as_secs_f64() / 3600.0
    }

    fn chrono_ttl(&self) -> Duration {
        Duration::from_std(self.ttl).unwrap_or(Duration::MAX)
    }

    /// TTL / [`RENEWALS_PER_TTL`].
    fn renewal_interval(&self) -> StdDuration {
        self.ttl / RENEWALS_PER_TTL
    }

    /// The bound on one renewal attempt: `op_timeout`, but never longer than the interval.
    fn attempt_timeout(&self) -> StdDuration {
        self.op_timeout.min(self.renewal_interval())
    }
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
    let url = lock_url(catalog, explicit)?;
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

/// The lock object for `catalog`: `explicit` when given, else `.lock` beside the catalog.
pub fn lock_url(catalog: &str, explicit: Option<&str>) -> Result<String> {
    match explicit {
        Some(l) => Ok(l.to_string()),
        None => default_lock_url(catalog),
    }
}

/// The default lock object for a catalog: `.lock` beside `catalog.db` (the Python tool's key).
pub fn default_lock_url(catalog: &str) -> Result<String> {
    let cat = Location::parse(catalog)?;
    let (dir, _) = cat.split_last().ok_or_else(|| Error::InvalidLocation {
        location: catalog.to_string(),
        reason: "cannot place a lock beside it; name the lock object instead".to_string(),
    })?;
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

    fn payload(owner: &str, host: &str, pid: i64, acquired: DateTime<Utc>, ttl: f64) -> String {
        LockPayload {
            owner: owner.to_string(),
            pid,
            hostname: host.to_string(),
            acquired,
            ttl_hours: Some(ttl),
        }
        .to_json()
    }

    /// Write a lock object as another process (or the Python tool) on another host would.
    async fn plant(location: &Location, owner: &str, acquired: DateTime<Utc>, ttl: f64) {
        let p = payload(owner, "elsewhere", 999_999, acquired, ttl);
        location.put_bytes(Bytes::from(p)).await.unwrap();
    }

    /// The pid of a process that has exited (and been reaped) on this host.
    fn dead_pid() -> i64 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        i64::from(pid)
    }

    const MIN: fn(i64) -> Duration = Duration::minutes;

    /// `work`'s output, failing the test (instead of hanging it) after 10 s.
    async fn within<T>(work: impl std::future::Future<Output = T>) -> T {
        match tokio::time::timeout(StdDuration::from_secs(10), work).await {
            Ok(out) => out,
            Err(_) => panic!("not done within 10 s: the wait is not bounded"),
        }
    }

    #[test]
    fn payload_json_matches_python_json_dumps() {
        let mut p = LockPayload {
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
        // Fractional hours as Python's json.dumps writes floats (repr, shortest round trip).
        for (ttl, text) in [
            (0.25, "0.25"),
            (1.0 / 6.0, "0.16666666666666666"),
            (1.5, "1.5"),
        ] {
            p.ttl_hours = Some(ttl);
            let json = p.to_json();
            assert!(
                json.ends_with(&format!(r#""ttl_hours": {text}}}"#)),
                "{json}"
            );
            assert_eq!(LockPayload::parse(json.as_bytes()).unwrap(), p);
        }
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
    fn fractional_ttls_are_exact_to_the_microsecond() {
        let ttl = |hours: f64| {
            LockPayload {
                owner: "x".into(),
                pid: 1,
                hostname: "h".into(),
                acquired: start(),
                ttl_hours: Some(hours),
            }
            .ttl()
        };
        assert_eq!(ttl(0.25), Some(MIN(15)));
        // 1/6 h is 599.99999999999 s in binary floating point: rounds to 10 min, as Python's
        // timedelta(hours=…) does, instead of truncating to 599.999 s.
        assert_eq!(ttl(1.0 / 6.0), Some(MIN(10)));
        assert_eq!(ttl(12.0), Some(Duration::hours(12)));
        assert_eq!(ttl(0.000001), Some(Duration::microseconds(3600)));
        assert_eq!(ttl(f64::NAN), None);
        assert_eq!(
            LockOptions::new("x").with_ttl_hours(0.25).ttl,
            StdDuration::from_secs(900)
        );
        assert_eq!(LockOptions::new("x").with_ttl_hours(0.25).ttl_hours(), 0.25);
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
            LockOptions::new("incremental").with_ttl_hours(6.0),
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
    async fn default_ttl_is_fifteen_minutes_renewed_every_three() {
        let loc = mem("default-ttl");
        let lock = CatalogLock::acquire(&loc, LockOptions::new("x"), clock())
            .await
            .unwrap();
        assert_eq!(payload_at(&loc).await["ttl_hours"], 0.25);
        assert_eq!(lock.renewal_interval(), StdDuration::from_secs(180));
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn second_owner_is_locked_out_naming_the_holder() {
        for loc in [mem("second"), local(&tempfile::tempdir().unwrap())] {
            let c = clock();
            let first = CatalogLock::acquire(&loc, LockOptions::new("backfill-v2"), c.clone())
                .await
                .unwrap();
            c.advance(MIN(2));
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
                    assert_eq!(remaining, "13m 00s");
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
            // A Python holder's 12 h lease is respected in full.
            plant(&loc, "python", start(), 12.0).await;
            c.advance(Duration::hours(11) + MIN(59));
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
    async fn staleness_uses_the_holders_own_fractional_ttl() {
        let loc = mem("holder-ttl");
        let c = clock();
        plant(&loc, "short", start(), 0.25).await;
        c.advance(MIN(15) - Duration::microseconds(1));
        // Not truncated to whole hours (0) or to milliseconds: still fresh 1 µs before the end.
        assert!(matches!(
            CatalogLock::acquire(
                &loc,
                LockOptions::new("rust").with_ttl_hours(12.0),
                c.clone()
            )
            .await,
            Err(Error::Locked { .. })
        ));
        c.advance(Duration::microseconds(1));
        // Our TTL of 12 h does not matter: the holder said 15 min.
        let lock = CatalogLock::acquire(
            &loc,
            LockOptions::new("rust").with_ttl_hours(12.0),
            c.clone(),
        )
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
        let err = CatalogLock::acquire(
            &loc,
            LockOptions::new("rust").with_ttl_hours(6.0),
            c.clone(),
        )
        .await
        .unwrap_err();
        assert!(matches!(&err, Error::Locked { remaining, .. } if remaining == "1h 00m 00s"));
        c.advance(Duration::hours(1));
        CatalogLock::acquire(
            &loc,
            LockOptions::new("rust").with_ttl_hours(6.0),
            c.clone(),
        )
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
            plant(&loc, "theirs", c.now(), 12.0).await;
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
            c.advance(MIN(14));
            lock.renew().await.unwrap();
            assert_eq!(payload_at(&loc).await["acquired"], format_acquired(c.now()));
            assert_eq!(lock.payload().acquired, c.now());
            lock.verify().await.unwrap();
            // 16 min after the first acquire, but only 2 min after the renewal: still fresh.
            c.advance(MIN(2));
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
            c.advance(MIN(16));
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
        c.advance(MIN(20));
        assert!(lock.verify().await.is_err());
        lock.renew().await.unwrap();
        lock.verify().await.unwrap();
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn lock_needs_an_object_key_and_a_sane_ttl() {
        let root = Location::parse("memory://lock-root").unwrap();
        assert!(matches!(
            CatalogLock::acquire(&root, LockOptions::new("x"), clock()).await,
            Err(Error::InvalidLocation { .. })
        ));
        for options in [
            LockOptions::new("x").with_ttl_hours(0.0),
            LockOptions::new("x").with_ttl_hours(-1.0),
            LockOptions::new("x").with_ttl_hours(f64::NAN),
            LockOptions::new("x").with_ttl(StdDuration::from_secs(30)),
            LockOptions::new("x").with_op_timeout(StdDuration::ZERO),
        ] {
            let err = CatalogLock::acquire(&mem("ttl0"), options, clock())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        }
        assert!(mem("ttl0").get_bytes_opt().await.unwrap().is_none());
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
        now.advance(MIN(16));
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
                plant(&loc, "crashed", start(), 12.0).await;
                c.advance(Duration::hours(13));
                let winners = race(&loc, c, 8).await;
                assert_single_holder(&loc, winners).await;
            }
        }
        assert_eq!(files_in(&dir.path().join("catalog")), [".lock.guard"]);
    }

    /// Channel-driven ticks for `spawn_renewal_on`.
    fn ticks(rx: tokio::sync::mpsc::Receiver<()>) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
        )
    }

    /// `lock` renewed in the background whenever the test sends on the returned channel.
    fn by_hand(lock: CatalogLock) -> (RenewingLock, tokio::sync::mpsc::Sender<()>) {
        let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
        (lock.spawn_renewal_on(ticks(rx)), tx)
    }

    /// A lock "bg" on `loc` whose renewal ticks when the test sends on the returned channel.
    async fn renewing_by_hand(
        loc: &Location,
        c: &Arc<TestClock>,
    ) -> (RenewingLock, tokio::sync::mpsc::Sender<()>) {
        let lock = CatalogLock::acquire(loc, LockOptions::new("bg"), c.clone())
            .await
            .unwrap();
        by_hand(lock)
    }

    /// Send one tick and wait until the renewal task has reported on it.
    async fn beat(
        tx: &tokio::sync::mpsc::Sender<()>,
        status: &mut watch::Receiver<RenewalStatus>,
        want: impl Fn(&RenewalStatus) -> bool,
    ) {
        status.mark_unchanged();
        tx.send(()).await.unwrap();
        status.changed().await.unwrap();
        let now = status.borrow().clone();
        assert!(want(&now), "renewal status {now:?}");
    }

    #[tokio::test]
    async fn heartbeat_keeps_a_live_holder_fresh_and_a_killed_one_frees_within_a_ttl() {
        let loc = mem("heartbeat");
        let c = clock();
        let (renewing, tx) = renewing_by_hand(&loc, &c).await;
        let mut status = renewing.status();
        let every = Duration::from_std(LockOptions::default().renewal_interval()).unwrap();
        // Two hours of beats every 3 minutes: never stale for anyone else.
        for n in 1..=40u64 {
            c.advance(every);
            beat(&tx, &mut status, |s| {
                *s == RenewalStatus::Active { renewals: n }
            })
            .await;
            assert_eq!(payload_at(&loc).await["acquired"], format_acquired(c.now()));
            assert!(matches!(
                CatalogLock::acquire(&loc, LockOptions::new("other"), c.clone()).await,
                Err(Error::Locked { .. })
            ));
        }
        renewing.verify().await.unwrap();
        // The holder is killed: no more beats, no release.
        drop(tx);
        drop(renewing);
        c.advance(MIN(15) - Duration::seconds(1));
        assert!(matches!(
            CatalogLock::acquire(&loc, LockOptions::new("other"), c.clone()).await,
            Err(Error::Locked { .. })
        ));
        c.advance(Duration::seconds(1));
        let next = CatalogLock::acquire(&loc, LockOptions::new("other"), c.clone())
            .await
            .unwrap();
        next.release().await.unwrap();
    }

    #[tokio::test]
    async fn background_renewal_reports_a_lost_lock() {
        let loc = mem("background-lost");
        let c = clock();
        let (renewing, tx) = renewing_by_hand(&loc, &c).await;
        plant(&loc, "intruder", c.now(), 12.0).await;
        let mut status = renewing.status();
        beat(&tx, &mut status, |s| {
            matches!(s, RenewalStatus::Failed { .. })
        })
        .await;
        assert!(matches!(
            renewing.verify().await,
            Err(Error::LockLost { .. })
        ));
        renewing.release().await.unwrap();
        assert_eq!(payload_at(&loc).await["owner"], "intruder");
    }

    #[tokio::test]
    async fn verify_renews_when_half_the_lease_is_spent() {
        let loc = mem("verify-renews");
        let c = clock();
        let (renewing, _tx) = renewing_by_hand(&loc, &c).await;
        c.advance(MIN(7));
        renewing.verify().await.unwrap();
        assert_eq!(
            renewing.payload().await.acquired,
            start(),
            "7 of 15 min: no renewal"
        );
        c.advance(MIN(1));
        renewing.verify().await.unwrap();
        assert_eq!(renewing.payload().await.acquired, c.now());
        assert_eq!(payload_at(&loc).await["acquired"], format_acquired(c.now()));
        renewing.release().await.unwrap();
    }

    /// An in-memory store whose puts can fail, hang, land-then-fail, or be preceded by another
    /// writer's change.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: object_store::memory::InMemory,
        fault: std::sync::Mutex<Fault>,
        /// Written (as another writer would) just before the next conditional update.
        interpose: std::sync::Mutex<Option<Bytes>>,
    }

    #[derive(Debug, Default, Clone, Copy, PartialEq)]
    enum Fault {
        #[default]
        None,
        Fail,
        Hang,
        LandThenFail,
        LandThenHang,
    }

    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Flaky")
        }
    }

    impl Flaky {
        fn set(&self, fault: Fault) {
            *self.fault.lock().unwrap() = fault;
        }
    }

    fn outage(what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "Flaky",
            source: what.to_string().into(),
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Flaky {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            if matches!(opts.mode, PutMode::Update(_)) {
                let other = self.interpose.lock().unwrap().take();
                if let Some(other) = other {
                    self.inner.put(location, other.into()).await?;
                }
            }
            let fault = *self.fault.lock().unwrap();
            match fault {
                Fault::None => self.inner.put_opts(location, payload, opts).await,
                Fault::Fail => Err(outage("injected outage")),
                Fault::Hang => futures::future::pending().await,
                Fault::LandThenFail => {
                    self.inner.put_opts(location, payload, opts).await?;
                    Err(outage("response lost after the write"))
                }
                Fault::LandThenHang => {
                    self.inner.put_opts(location, payload, opts).await?;
                    futures::future::pending().await
                }
            }
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    fn flaky_lock(store: &Arc<Flaky>, options: LockOptions, c: &Arc<TestClock>) -> CatalogLock {
        CatalogLock::on_store(
            store.clone(),
            Path::from("catalog/.lock"),
            "flaky://catalog/.lock".to_string(),
            None,
            options,
            c.clone(),
        )
    }

    async fn flaky_payload(store: &Flaky) -> serde_json::Value {
        let got = store.inner.get(&Path::from("catalog/.lock")).await.unwrap();
        serde_json::from_slice(&got.bytes().await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn an_acquire_whose_write_landed_despite_an_error_holds_the_lock() {
        let store = Arc::new(Flaky::default());
        let c = clock();
        store.set(Fault::LandThenFail);
        let lock = flaky_lock(&store, LockOptions::new("lucky"), &c)
            .take()
            .await
            .unwrap();
        store.set(Fault::None);
        lock.verify().await.unwrap();
        lock.release().await.unwrap();
        assert!(
            store
                .inner
                .head(&Path::from("catalog/.lock"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_hung_renewal_is_bounded_and_a_write_that_landed_is_adopted() {
        let store = Arc::new(Flaky::default());
        let c = clock();
        let options = LockOptions::new("slow-store").with_op_timeout(StdDuration::from_millis(50));
        let mut lock = flaky_lock(&store, options, &c).take().await.unwrap();
        // A renewal that never answers fails within its bound instead of hanging.
        store.set(Fault::Hang);
        c.advance(MIN(3));
        let err = within(lock.renew_bounded()).await.unwrap_err();
        assert!(err.to_string().contains("took longer than"), "{err}");
        assert!(err.is_retryable());
        // One that lands but whose answer never comes: the next attempt finds our write in
        // place and adopts it instead of calling the lock lost.
        store.set(Fault::LandThenHang);
        c.advance(MIN(3));
        within(lock.renew_bounded()).await.unwrap_err();
        let landed = c.now();
        assert_eq!(
            flaky_payload(&store).await["acquired"],
            format_acquired(landed)
        );
        lock.verify().await.unwrap();
        store.set(Fault::None);
        c.advance(MIN(3));
        lock.renew_bounded().await.unwrap();
        assert_eq!(
            flaky_payload(&store).await["acquired"],
            format_acquired(c.now())
        );
        lock.verify().await.unwrap();
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn failed_renewals_are_retried_until_the_lease_runs_out() {
        let store = Arc::new(Flaky::default());
        let c = clock();
        let lock = flaky_lock(&store, LockOptions::new("patient"), &c)
            .take()
            .await
            .unwrap();
        let (renewing, tx) = by_hand(lock);
        let mut status = renewing.status();
        // A store outage: the beat fails, the lock is kept and the next beat succeeds.
        store.set(Fault::Fail);
        c.advance(MIN(3));
        beat(&tx, &mut status, |s| {
            matches!(s, RenewalStatus::Retrying { renewals: 0, failures: 1, error } if error.contains("injected outage"))
        })
        .await;
        renewing.verify().await.unwrap();
        store.set(Fault::None);
        c.advance(MIN(3));
        beat(&tx, &mut status, |s| {
            *s == RenewalStatus::Active { renewals: 1 }
        })
        .await;
        // An outage for a whole TTL: the heartbeat gives up and commits stop.
        store.set(Fault::Fail);
        for failures in 1..=4 {
            c.advance(MIN(3));
            beat(
                &tx,
                &mut status,
                |s| matches!(s, RenewalStatus::Retrying { failures: f, .. } if *f == failures),
            )
            .await;
        }
        c.advance(MIN(3));
        beat(
            &tx,
            &mut status,
            |s| matches!(s, RenewalStatus::Failed { reason } if reason.contains("lease ran out")),
        )
        .await;
        store.set(Fault::None);
        let err = renewing.verify().await.unwrap_err();
        assert!(matches!(err, Error::LockLost { .. }), "{err}");
        renewing.release().await.unwrap();
    }

    #[tokio::test]
    async fn a_held_guard_is_waited_for_with_a_bound_naming_the_guard() {
        let dir = tempfile::tempdir().unwrap();
        let loc = local(&dir);
        let c = clock();
        plant(&loc, "crashed", start(), 0.25).await;
        c.advance(MIN(16));
        // Another process (here: another open file description) holds the guard and is stuck.
        let guard_path = dir.path().join("catalog/.lock.guard");
        let held = std::fs::File::create(&guard_path).unwrap();
        held.lock().unwrap();
        let options = LockOptions::new("waiter").with_guard_timeout(StdDuration::from_millis(100));
        let err = within(CatalogLock::acquire(&loc, options.clone(), c.clone()))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(".lock.guard") && text.contains("more than"),
            "{text}"
        );
        assert!(err.is_retryable());
        assert_eq!(payload_at(&loc).await["owner"], "crashed");
        drop(held);
        CatalogLock::acquire(&loc, options, c.clone())
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn status_describes_the_lock_and_its_holder() {
        let loc = mem("status");
        let c = clock();
        let s = status(&loc, c.as_ref()).await.unwrap();
        assert_eq!(s, LockStatus::none(loc.url()));
        assert!(!s.held && !s.breakable && s.holder.is_none());

        // Ours (alive, on this host), fresh.
        let lock = CatalogLock::acquire(&loc, LockOptions::new("ingest"), c.clone())
            .await
            .unwrap();
        c.advance(MIN(4));
        let s = status(&loc, c.as_ref()).await.unwrap();
        assert!(s.held);
        assert_eq!(s.owner.as_deref(), Some("ingest"));
        assert_eq!(s.hostname.as_deref(), Some(hostname()));
        assert_eq!(s.pid, Some(i64::from(std::process::id())));
        assert_eq!(
            s.acquired.as_deref(),
            Some("2026-11-25T08:30:00.123456+00:00")
        );
        assert_eq!(s.age_seconds, Some(240));
        assert_eq!(s.ttl_hours, Some(0.25));
        assert_eq!(
            s.expires.as_deref(),
            Some("2026-11-25T08:45:00.123456+00:00")
        );
        assert_eq!(s.expires_in_seconds, Some(660));
        assert!(!s.stale);
        assert_eq!(s.holder, Some(Liveness::Alive));
        assert!(!s.holder_dead && !s.breakable);
        lock.release().await.unwrap();

        // Another host: liveness unknown; stale after its own 12 h.
        plant(&loc, "backfill-v2", c.now(), 12.0).await;
        let s = status(&loc, c.as_ref()).await.unwrap();
        assert_eq!(s.holder, Some(Liveness::Unknown));
        assert!(s.holder_detail.as_deref().unwrap().contains("elsewhere"));
        assert!(!s.breakable);
        c.advance(Duration::hours(12));
        let s = status(&loc, c.as_ref()).await.unwrap();
        assert!(s.stale && s.breakable && s.expires_in_seconds == Some(0));

        // This host, a pid that no longer exists: provably dead, breakable while fresh.
        let pid = dead_pid();
        loc.put_bytes(payload("incremental", hostname(), pid, c.now(), 0.25).into())
            .await
            .unwrap();
        let s = status(&loc, c.as_ref()).await.unwrap();
        assert_eq!(s.holder, Some(Liveness::Dead), "{:?}", s.holder_detail);
        assert!(s.holder_dead && s.breakable && !s.stale);
        assert!(
            s.holder_detail
                .unwrap()
                .contains(&format!("no process {pid}"))
        );

        // Unreadable: reported, aged from the object's time with the default TTL.
        loc.put_bytes(Bytes::from_static(b"{oops")).await.unwrap();
        let s = status(&loc, &crate::clock::SystemClock).await.unwrap();
        assert!(s.held && s.unreadable.is_some() && !s.stale);
        assert_eq!(s.holder, Some(Liveness::Unknown));
        assert_eq!(s.ttl_hours, Some(DEFAULT_TTL_HOURS));
    }

    #[tokio::test]
    async fn break_refuses_a_live_fresh_lock_and_deletes_a_stale_or_dead_one() {
        for loc in [mem("break"), local(&tempfile::tempdir().unwrap())] {
            let c = clock();
            // No lock: nothing to do.
            let out = break_lock(&loc, false, c.clone()).await.unwrap();
            assert!(!out.broken && out.reason.is_none());

            // A fresh lock whose holder may be alive: refused, naming the holder, untouched.
            plant(&loc, "backfill-v2", c.now(), 0.25).await;
            c.advance(MIN(5));
            let err = break_lock(&loc, false, c.clone()).await.unwrap_err();
            match &err {
                Error::Locked {
                    owner,
                    hostname,
                    remaining,
                    ..
                } => {
                    assert_eq!(owner, "backfill-v2");
                    assert_eq!(hostname, "elsewhere");
                    assert_eq!(remaining, "10m 00s");
                }
                other => panic!("expected Locked, got {other:?}"),
            }
            assert_eq!(payload_at(&loc).await["owner"], "backfill-v2");

            // Stale: broken.
            c.advance(MIN(10));
            let out = break_lock(&loc, false, c.clone()).await.unwrap();
            assert!(out.broken);
            assert_eq!(out.reason.as_deref(), Some("stale"));
            assert_eq!(out.before.owner.as_deref(), Some("backfill-v2"));
            assert!(loc.get_bytes_opt().await.unwrap().is_none());

            // Fresh but its holder is provably dead: broken.
            loc.put_bytes(payload("incremental", hostname(), dead_pid(), c.now(), 0.25).into())
                .await
                .unwrap();
            let out = break_lock(&loc, false, c.clone()).await.unwrap();
            assert_eq!(out.reason.as_deref(), Some("holder-dead"));
            assert!(loc.get_bytes_opt().await.unwrap().is_none());

            // Fresh and alive (this very process): only --force breaks it.
            let ours = CatalogLock::acquire(&loc, LockOptions::new("alive"), c.clone())
                .await
                .unwrap();
            assert!(matches!(
                break_lock(&loc, false, c.clone()).await,
                Err(Error::Locked { owner, .. }) if owner == "alive"
            ));
            let out = break_lock(&loc, true, c.clone()).await.unwrap();
            assert_eq!(out.reason.as_deref(), Some("forced"));
            assert!(loc.get_bytes_opt().await.unwrap().is_none());
            // The force-broken holder finds out before its next commit.
            assert!(matches!(ours.verify().await, Err(Error::LockLost { .. })));
        }
    }

    #[tokio::test]
    async fn break_never_deletes_a_lock_that_changed_after_it_was_judged() {
        let store = Arc::new(Flaky::default());
        let c = clock();
        let key = Path::from("catalog/.lock");
        let stale = payload("crashed", "elsewhere", 1, start(), 0.25);
        store
            .inner
            .put(&key, Bytes::from(stale).into())
            .await
            .unwrap();
        c.advance(MIN(20));
        // Between the judgement and the break, the lock is taken over by a live holder.
        let renewed = payload("rescuer", "elsewhere", 2, c.now(), 0.25);
        *store.interpose.lock().unwrap() = Some(Bytes::from(renewed));
        let breaker = flaky_lock(&store, LockOptions::new(BREAK_OWNER), &c);
        let err = break_with(breaker, false).await.unwrap_err();
        assert!(
            matches!(&err, Error::Locked { owner, .. } if owner == "rescuer"),
            "{err}"
        );
        assert_eq!(flaky_payload(&store).await["owner"], "rescuer");
    }
}
