//! indicatif progress bars behind the library's `Reporter` trait.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::Reporter;

/// Draws a bar (or spinner when the total is unknown) on stderr.
pub struct BarReporter {
    bar: ProgressBar,
}

impl BarReporter {
    /// A reporter that draws only when `enabled`.
    pub fn new(enabled: bool) -> Self {
        let bar = ProgressBar::hidden();
        if enabled {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        Self { bar }
    }
}

impl Reporter for BarReporter {
    fn phase(&self, name: &str, total: Option<u64>) {
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
        self.bar.inc(n);
    }

    fn message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }

    fn finish_phase(&self) {
        self.bar.finish_and_clear();
    }
}
