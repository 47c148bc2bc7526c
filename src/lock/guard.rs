//! The file-system guard: an exclusive `flock` on `<lock file>.guard` around every
//! check-then-write on a local lock file.

use super::*;

/// Take the exclusive `flock` on `path` (creating it and its directory when missing), polling
/// for at most `limit`.
pub(super) fn take_guard(
    path: &std::path::Path,
    limit: StdDuration,
    lock_url: &str,
) -> Result<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
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
    .map_err(|e| Error::io(path, e))?;
    let started = std::time::Instant::now();
    let mut pause = StdDuration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        if started.elapsed() >= limit {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "another process has held this guard of the catalog lock {lock_url} for more than {limit:?} (is it stopped or hung?)"
                    ),
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(StdDuration::from_millis(100));
    }
}

/// `<lock file>.guard` for a lock on the local file system, `None` elsewhere.
pub(super) fn guard_path(location: &Location) -> Result<Option<std::path::PathBuf>> {
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
