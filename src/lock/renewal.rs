//! A held lock renewed in the background for as long as a run lasts.

use super::*;

/// How background renewal is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalStatus {
    /// Renewing; `renewals` have succeeded so far, the last attempt among them.
    Active {
        /// Successful renewals so far.
        renewals: u64,
    },
    /// The last `failures` attempts failed (store error or timeout) but the lease has not run
    /// out; the next beat tries again.
    Retrying {
        /// Successful renewals so far.
        renewals: u64,
        /// Consecutive failed attempts.
        failures: u64,
        /// The last attempt's error.
        error: String,
    },
    /// The lock was lost, or the lease ran out without a successful renewal; renewal has
    /// stopped and [`RenewingLock::verify`] fails.
    Failed {
        /// What happened.
        reason: String,
    },
}

/// A [`CatalogLock`] renewed by a background task (see [`CatalogLock::spawn_renewal`]).
#[derive(Debug)]
pub struct RenewingLock {
    pub(super) lock: Arc<Mutex<CatalogLock>>,
    pub(super) stop: Option<oneshot::Sender<()>>,
    pub(super) task: JoinHandle<()>,
    pub(super) status: watch::Receiver<RenewalStatus>,
}

impl RenewingLock {
    /// Watch the renewal status (e.g. `wait_for` a renewal count, or check for failure).
    pub fn status(&self) -> watch::Receiver<RenewalStatus> {
        self.status.clone()
    }

    /// Call right before a commit: fails when background renewal has failed, otherwise
    /// [`CatalogLock::verify`]; then, when half the lease is spent (renewals have been
    /// failing), renews so that the commit starts with at least half a TTL of lease.
    pub async fn verify(&self) -> Result<()> {
        let mut lock = self.lock.lock().await;
        if let RenewalStatus::Failed { reason } = &*self.status.borrow() {
            return Err(lock.lost_because(&format!("background renewal failed: {reason}")));
        }
        lock.verify().await?;
        if lock.age() >= lock.options.chrono_ttl() / 2 {
            lock.renew_bounded().await?;
        }
        Ok(())
    }

    /// Renew now, in addition to the schedule.
    pub async fn renew_now(&self) -> Result<()> {
        self.lock.lock().await.renew_bounded().await
    }

    /// The payload written last.
    pub async fn payload(&self) -> LockPayload {
        self.lock.lock().await.payload.clone()
    }

    /// Stop renewing (waiting for a renewal attempt in flight to finish, at most its bound) and
    /// release the lock.
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
