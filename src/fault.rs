//! Fault injection for crash-safety tests.
//!
//! Set `EARTHCATALOG_FAULT=<point>` to make the named point fail. With
//! `EARTHCATALOG_FAULT_MODE=abort` the process aborts there instead (no destructors, no
//! cleanup — the same effect on storage as `kill -9`). With `EARTHCATALOG_FAULT_ONCE=<path>`
//! only the first process to reach the point fails (it creates `<path>`; later ones find it and
//! go on): one task of many fails once, as a transient fault would. Unset, a check costs one env
//! lookup.

use crate::error::{Error, Result};

/// Fail (or abort) when `point` is the configured fault point.
pub fn check(point: &str) -> Result<()> {
    match std::env::var("EARTHCATALOG_FAULT") {
        Ok(p) if p == point && first_time() => {
            if std::env::var("EARTHCATALOG_FAULT_MODE").as_deref() == Ok("abort") {
                std::process::abort();
            }
            Err(Error::InjectedFault(point.to_string()))
        }
        _ => Ok(()),
    }
}

/// Whether this is the fault's first firing: always without `EARTHCATALOG_FAULT_ONCE`, else
/// whether this call created its marker file.
fn first_time() -> bool {
    match std::env::var_os("EARTHCATALOG_FAULT_ONCE") {
        None => true,
        Some(path) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .is_ok(),
    }
}

/// Whether `point` is the configured fault point (for faults that are not errors).
pub fn armed(point: &str) -> bool {
    std::env::var("EARTHCATALOG_FAULT").is_ok_and(|p| p == point)
}
