//! The lease: acquiring, renewing, verifying and releasing the lock object with conditional
//! writes, and taking over a stale one.

use super::*;

/// A held catalog lock. Dropping it without [`release`](Self::release) leaves the object in
/// place until it becomes stale (exactly like a crash).
#[derive(Debug)]
pub struct CatalogLock {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) key: Path,
    pub(super) url: String,
    pub(super) options: LockOptions,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) payload: LockPayload,
    pub(super) bytes: Bytes,
    pub(super) version: UpdateVersion,
    /// Local file system only: the file whose OS lock serialises check-then-replace.
    pub(super) guard: Option<std::path::PathBuf>,
    /// A payload we tried to write whose outcome is unknown (the attempt timed out or failed
    /// after the request was sent): if the object holds exactly these bytes, it is ours.
    pub(super) in_doubt: Option<Bytes>,
}

/// The object currently at the key, as read.
pub(super) struct Observed {
    pub(super) bytes: Bytes,
    pub(super) version: UpdateVersion,
    pub(super) last_modified: DateTime<Utc>,
}

/// What a conditional replacement did.
pub(super) enum Replace {
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
        check_options(&options)?;
        let lock = Self::unheld(location, options, clock)?;
        lock.take().await
    }

    /// A lock object handle for `location` that holds nothing yet.
    pub(super) fn unheld(
        location: &Location,
        options: LockOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if location.prefix().as_ref().is_empty() {
            return Err(Error::InvalidLocation {
                location: location.url().to_string(),
                reason: "the lock needs an object key, not a bucket or store root".to_string(),
            });
        }
        Ok(Self::on_store(
            location.store().clone(),
            location.prefix().clone(),
            location.url().to_string(),
            guard_path(location)?,
            options,
            clock,
        ))
    }

    pub(super) fn on_store(
        store: Arc<dyn ObjectStore>,
        key: Path,
        url: String,
        guard: Option<std::path::PathBuf>,
        options: LockOptions,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let payload =
            LockPayload::for_this_process(&options.owner, options.ttl_hours(), clock.now());
        Self {
            store,
            key,
            url,
            bytes: Bytes::from(payload.to_json()),
            payload,
            options,
            clock,
            version: UpdateVersion {
                e_tag: None,
                version: None,
            },
            guard,
            in_doubt: None,
        }
    }

    /// The acquire loop (see [`acquire`](Self::acquire)).
    pub(super) async fn take(mut self) -> Result<Self> {
        for _ in 0..MAX_ATTEMPTS {
            self.set_payload(self.clock.now());
            let created = match self.create().await {
                Ok(created) => created,
                // The create may have landed before the error (e.g. a response lost in transit).
                Err(e) => return self.adopt_landed(e).await,
            };
            if let Some(put) = created {
                self.version = self.version_of(put).await?;
                return Ok(self);
            }
            let Some(held) = self.read().await? else {
                // Released between our PUT and our GET: create again.
                continue;
            };
            if held.bytes == self.bytes {
                // Our own create, retried by the store client after it had landed.
                self.version = held.version;
                return Ok(self);
            }
            let holder = LockPayload::parse(&held.bytes).ok();
            let (acquired, ttl) =
                effective_lease(holder.as_ref(), &held, self.options.chrono_ttl());
            let age = self.clock.now() - acquired;
            // A holder that ran on this host and whose process is gone (a killed run) cannot
            // renew: its lock is taken over at once instead of blocking for the rest of its
            // lease (the same rule as `lock break`).
            let dead = holder
                .as_ref()
                .is_some_and(|h| liveness(h).0 == Liveness::Dead);
            if age < ttl && !dead {
                return Err(locked_error(&self.url, holder, acquired, ttl - age));
            }
            tracing::warn!(
                lock = %self.url,
                holder = holder.as_ref().map_or("unknown", |h| h.owner.as_str()),
                host = holder.as_ref().map_or("unknown", |h| h.hostname.as_str()),
                since = %format_acquired(acquired),
                reason = if dead { "its process is gone" } else { "stale" },
                "taking over a catalog lock"
            );
            self.set_payload(self.clock.now());
            match self.replace(&held, &self.bytes.clone()).await {
                Ok(Replace::Done(put)) => {
                    self.version = self.version_of(put).await?;
                    return Ok(self);
                }
                // Someone else took it over, renewed it or released it: look again.
                Ok(Replace::Changed) => continue,
                Err(e) => return self.adopt_landed(e).await,
            }
        }
        Err(Error::LockLost {
            key: self.url,
            reason: format!(
                "the lock object kept changing during {MAX_ATTEMPTS} attempts to acquire it; try again"
            ),
        })
    }

    /// After a failed write of our payload: if the object holds exactly our bytes, the write
    /// landed and the lock is ours; otherwise the original error stands.
    pub(super) async fn adopt_landed(mut self, err: Error) -> Result<Self> {
        match self.read().await {
            Ok(Some(held)) if held.bytes == self.bytes => {
                tracing::debug!(lock = %self.url, error = %err, "our lock write landed despite an error");
                self.version = held.version;
                Ok(self)
            }
            _ => Err(err),
        }
    }

    /// Rewrite the payload with a fresh `acquired`, conditionally on the version we wrote last,
    /// so that a long run never becomes stale. [`Error::LockLost`] when someone else replaced or
    /// deleted the lock (nothing is written then).
    ///
    /// Cancel-safe: if this future is dropped mid-write (a timeout), the write is remembered as
    /// in doubt and the next call adopts it when it landed.
    pub async fn renew(&mut self) -> Result<()> {
        self.reconcile().await?;
        let mut next = self.payload.clone();
        next.acquired = self.clock.now();
        let bytes = Bytes::from(next.to_json());
        let expected = Observed {
            bytes: self.bytes.clone(),
            version: self.version.clone(),
            last_modified: self.payload.acquired,
        };
        self.in_doubt = Some(bytes.clone());
        match self.replace(&expected, &bytes).await {
            Ok(Replace::Done(put)) => {
                self.in_doubt = None;
                self.payload = next;
                self.bytes = bytes;
                self.version = self.version_of(put).await?;
                tracing::debug!(lock = %self.url, "renewed the catalog lock");
                Ok(())
            }
            Ok(Replace::Changed) => {
                self.in_doubt = None;
                Err(self.lost().await)
            }
            // The write may or may not have landed: `in_doubt` stays for the next attempt.
            Err(e) => Err(e),
        }
    }

    /// [`renew`](Self::renew), bounded by the options' attempt timeout.
    pub(super) async fn renew_bounded(&mut self) -> Result<()> {
        let limit = self.options.attempt_timeout();
        match tokio::time::timeout(limit, self.renew()).await {
            Ok(result) => result,
            Err(_) => Err(Error::io(
                &self.url,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("renewing the catalog lock took longer than {limit:?}"),
                ),
            )),
        }
    }

    /// Settle a write left in doubt by an interrupted renewal: if the object holds exactly those
    /// bytes, that write landed and becomes our current payload and version.
    pub(super) async fn reconcile(&mut self) -> Result<()> {
        let Some(pending) = self.in_doubt.clone() else {
            return Ok(());
        };
        let current = self.read().await?;
        self.in_doubt = None;
        if let Some(current) = current
            && current.bytes == pending
            && let Ok(payload) = LockPayload::parse(&pending)
        {
            tracing::debug!(lock = %self.url, "an interrupted renewal had landed; adopting it");
            self.payload = payload;
            self.bytes = pending;
            self.version = current.version;
        }
        Ok(())
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
        if self.is_expired() {
            return Err(self.lost_because(&format!(
                "our lock is stale (acquired {}, ttl {}) and may be taken over at any moment; renew it",
                format_acquired(self.payload.acquired),
                human_duration(self.options.chrono_ttl())
            )));
        }
        Ok(())
    }

    /// Delete the lock object if it is still ours. A lock that is gone is fine; a lock that
    /// someone else holds now is left in place (and logged).
    pub async fn release(self) -> Result<()> {
        self.release_ref().await
    }

    pub(super) async fn release_ref(&self) -> Result<()> {
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
    /// [`renewal_interval`](Self::renewal_interval) for the right value).
    pub fn spawn_renewal(self, every: StdDuration) -> RenewingLock {
        let ticks = futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some(((), ()))
        });
        self.spawn_renewal_on(ticks)
    }

    /// Keep the lock fresh in the background, renewing once per item of `ticks` (a schedule of
    /// your own; tests feed a channel). Renewal stops when `ticks` ends, the lock is lost, the
    /// lease runs out without a successful renewal, or [`RenewingLock::release`] is called.
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
            let mut failures = 0u64;
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
                // Not cancelled by a stop request: a renewal attempt always runs to its bound.
                let mut lock = task_lock.lock().await;
                let result = lock.renew_bounded().await;
                let status = match result {
                    Ok(()) => {
                        renewals += 1;
                        failures = 0;
                        RenewalStatus::Active { renewals }
                    }
                    Err(e @ Error::LockLost { .. }) => RenewalStatus::Failed {
                        reason: e.to_string(),
                    },
                    Err(e) if lock.is_expired() => RenewalStatus::Failed {
                        reason: format!(
                            "the lease ran out ({} since the last renewal) without a successful renewal; last error: {e}",
                            human_duration(lock.clock.now() - lock.payload.acquired)
                        ),
                    },
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(lock = %lock.url, error = %e, failures, "catalog lock renewal failed; retrying at the next beat");
                        RenewalStatus::Retrying {
                            renewals,
                            failures,
                            error: e.to_string(),
                        }
                    }
                };
                drop(lock);
                let failed = matches!(status, RenewalStatus::Failed { .. });
                if let RenewalStatus::Failed { reason } = &status {
                    tracing::error!(error = %reason, "catalog lock renewal failed; the run will stop before its next commit");
                }
                status_tx.send_replace(status);
                if failed {
                    return;
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

    /// TTL / [`RENEWALS_PER_TTL`]: 3 minutes for the default 15-minute TTL.
    pub fn renewal_interval(&self) -> StdDuration {
        self.options.renewal_interval()
    }

    /// The payload we wrote last.
    pub fn payload(&self) -> &LockPayload {
        &self.payload
    }

    /// The lock object's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long ago we last wrote the lock (by our clock).
    pub(super) fn age(&self) -> Duration {
        self.clock.now() - self.payload.acquired
    }

    /// Whether our own lease has run out (others may take the lock over).
    pub(super) fn is_expired(&self) -> bool {
        self.age() >= self.options.chrono_ttl()
    }

    pub(super) fn set_payload(&mut self, acquired: DateTime<Utc>) {
        self.payload.acquired = acquired;
        self.bytes = Bytes::from(self.payload.to_json());
    }

    /// Create-only PUT of our payload; `None` when the object already exists.
    pub(super) async fn create(&self) -> Result<Option<PutResult>> {
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
    pub(super) async fn read(&self) -> Result<Option<Observed>> {
        read_at(self.store.as_ref(), &self.key, &self.url).await
    }

    /// The version of what we just wrote; asks the store when the PUT did not say.
    pub(super) async fn version_of(&self, put: PutResult) -> Result<UpdateVersion> {
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

    pub(super) fn is_ours(&self, held: &Observed) -> bool {
        if self.version.e_tag.is_some() && held.version.e_tag == self.version.e_tag {
            return true;
        }
        if self.in_doubt.as_ref() == Some(&held.bytes) {
            return true;
        }
        LockPayload::parse(&held.bytes).is_ok_and(|p| p.same_holder(&self.payload))
    }

    /// Replace `expected` (what is at the key, as read) with `bytes`, atomically.
    pub(super) async fn replace(&self, expected: &Observed, bytes: &Bytes) -> Result<Replace> {
        if self.guard.is_some() {
            return self.replace_guarded(expected, bytes).await;
        }
        let opts = PutOptions {
            mode: PutMode::Update(expected.version.clone()),
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key, PutPayload::from(bytes.clone()), opts)
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
    pub(super) async fn replace_guarded(
        &self,
        expected: &Observed,
        bytes: &Bytes,
    ) -> Result<Replace> {
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
            .put(&self.key, PutPayload::from(bytes.clone()))
            .await
            .map_err(|e| Error::store(&self.url, e))?;
        Ok(Replace::Done(put))
    }

    /// On the local file system, take the guard: an exclusive OS file lock (`flock`) on
    /// `<lock file>.guard`, released when the returned file is dropped, or by the kernel when the
    /// process dies. Waits at most `guard_timeout`. `None` on other stores.
    pub(super) async fn lock_guard(&self) -> Result<Option<std::fs::File>> {
        let Some(path) = self.guard.clone() else {
            return Ok(None);
        };
        let limit = self.options.guard_timeout;
        let url = self.url.clone();
        let task = tokio::task::spawn_blocking(move || take_guard(&path, limit, &url).map(Some));
        match task.await {
            Ok(result) => result,
            Err(e) => Err(Error::task(format!("locking the guard of {}", self.url), e)),
        }
    }

    /// A `LockLost` error describing who holds the lock now.
    pub(super) async fn lost(&self) -> Error {
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

    pub(super) fn lost_because(&self, reason: &str) -> Error {
        Error::LockLost {
            key: self.url.clone(),
            reason: reason.to_string(),
        }
    }
}

pub(super) fn check_options(options: &LockOptions) -> Result<()> {
    if options.ttl < MIN_TTL {
        return Err(Error::invalid_argument(
            "lock ttl",
            format!(
                "must be at least {MIN_TTL:?} (the heartbeat renews every ttl/{RENEWALS_PER_TTL}), got {:?}",
                options.ttl
            ),
        ));
    }
    if options.op_timeout.is_zero() || options.guard_timeout.is_zero() {
        return Err(Error::invalid_argument(
            "lock timeouts",
            "the renewal and guard timeouts must be positive",
        ));
    }
    Ok(())
}

/// When the holder acquired the lock and how long its lease is: its own `ttl_hours`, else
/// `default_ttl`. An unreadable payload counts from the object's modification time.
pub(super) fn effective_lease(
    holder: Option<&LockPayload>,
    held: &Observed,
    default_ttl: Duration,
) -> (DateTime<Utc>, Duration) {
    match holder {
        Some(h) => (h.acquired, h.ttl().unwrap_or(default_ttl)),
        None => (held.last_modified, default_ttl),
    }
}

pub(super) fn locked_error(
    url: &str,
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
        key: url.to_string(),
        owner: holder.owner,
        hostname: holder.hostname,
        pid: holder.pid,
        acquired: format_acquired(acquired),
        remaining: human_duration(left),
    }
}

pub(super) async fn read_at(
    store: &dyn ObjectStore,
    key: &Path,
    url: &str,
) -> Result<Option<Observed>> {
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
