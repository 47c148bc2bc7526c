//! What the examples share (`#[path = "support/mod.rs"] mod support;`; a directory without a
//! `main.rs` is not an example of its own).

use std::path::{Path, PathBuf};

/// Every `*.parquet` file below `dir`, appended to `out`.
pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}
