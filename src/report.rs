//! Progress reporting: the library calls a [`Reporter`]; the CLI draws progress bars with it.

/// Receives progress events from long operations. All methods default to doing nothing.
pub trait Reporter: Send + Sync {
    /// A phase started; `total` is known for some phases.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `n` more units of the current phase are done.
    fn advance(&self, _n: u64) {}
    /// A free-form status message (e.g. "committing 120 files").
    fn message(&self, _msg: &str) {}
    /// The current phase is finished.
    fn finish_phase(&self) {}
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;

impl Reporter for NoReporter {}
