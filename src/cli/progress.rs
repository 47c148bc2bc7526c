//! indicatif progress bars behind the library's `Reporter` trait, or the caller's reporter.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::Reporter;

/// Where a command's progress goes.
#[derive(Clone, Default)]
pub enum Progress {
    /// Nowhere.
    #[default]
    Hidden,
    /// Bars on stderr.
    Bars,
    /// A reporter of the caller's (the Python package's notebook bars).
    To(Arc<dyn Reporter>),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Hidden => "Hidden",
            Progress::Bars => "Bars",
            Progress::To(_) => "To(reporter)",
        })
    }
}

/// Draws a bar (or spinner when the total is unknown) on stderr, or hands every event to the
/// caller's reporter.
pub struct BarReporter {
    bar: ProgressBar,
    forward: Option<Arc<dyn Reporter>>,
}

impl BarReporter {
    /// A reporter for `progress`.
    pub fn new(progress: &Progress) -> Self {
        let bar = ProgressBar::hidden();
        let mut forward = None;
        match progress {
            Progress::Hidden => {}
            Progress::Bars => bar.set_draw_target(ProgressDrawTarget::stderr()),
            Progress::To(reporter) => forward = Some(reporter.clone()),
        }
        Self { bar, forward }
    }
}

impl Reporter for BarReporter {
    fn phase(&self, name: &str, total: Option<u64>) {
        if let Some(r) = &self.forward {
            return r.phase(name, total);
        }
        match total {
            Some(t) => {
                self.bar.set_length(t);
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} items {per_sec} eta {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            None => self.bar.set_style(
                ProgressStyle::with_template("{prefix} {spinner} {pos} items {per_sec} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
        self.bar.set_prefix(name.to_string());
        self.bar.set_position(0);
    }

    fn advance(&self, n: u64) {
        match &self.forward {
            Some(r) => r.advance(n),
            None => self.bar.inc(n),
        }
    }

    fn message(&self, msg: &str) {
        match &self.forward {
            Some(r) => r.message(msg),
            None => self.bar.set_message(msg.to_string()),
        }
    }

    fn finish_phase(&self) {
        match &self.forward {
            Some(r) => r.finish_phase(),
            None => self.bar.finish_and_clear(),
        }
    }
}
