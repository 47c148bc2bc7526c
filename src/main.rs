//! The `earthcatalog` command line. See `earthcatalog --help`.
//!
//! Exit codes: 0 success; 1 failure; 2 usage or configuration error (bad flag, bad input
//! argument, grid conflict); 3 finished but some items failed (see the failures report);
//! 4 the catalog is locked by someone else.

mod cli;

/// mimalloc: the ingest and compaction hot paths allocate and free many short-lived buffers
/// (zstd contexts per column chunk, Arrow builders) across many threads, where glibc malloc
/// spends a third of the time and fragments.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}


