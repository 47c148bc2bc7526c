//! The `earthcatalog` command line. See `earthcatalog --help`.
//!
//! Exit codes: 0 success; 1 failure; 2 usage or configuration error (bad flag, bad input
//! argument, grid conflict); 3 finished but some items failed (see the failures report);
//! 4 the catalog is locked by someone else.

// The binary's modules are private: `pub` there only shares items between them.
#![allow(unreachable_pub)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

/// glibc gives each thread that allocates its own arena; with hundreds of short-lived fetch and
/// parse threads that fragments memory badly (measured: 524 MB → 253 MB peak RSS for 100k
/// items at H3 res 1). Two arenas keep peak RSS close to the live data. (mimalloc was tried:
/// no faster here and 372 MB.) `serve` gets more (its request threads allocate and free
/// concurrently and queue on two arena locks: 104 → 173 point searches/s at 8 clients with
/// glibc's default, 16; four keep most of that at a lower peak RSS). Called before any other
/// thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn limit_malloc_arenas(arenas: i32) {
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn limit_malloc_arenas(_arenas: i32) {}
