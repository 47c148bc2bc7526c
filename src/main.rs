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
///
/// `mmap_threshold`: allocations from this size up are mapped on their own and returned to
/// the system when freed. glibc's default starts at 128 KiB and rises to the largest block
/// freed (up to 32 MiB), after which decoded batches and response bodies come from the heap
/// and their memory stays with the process once freed. `serve` sets 128 KiB: over its whole
/// benchmark run peak RSS 317-340 MB with glibc's default, 274-277 MB with 128 KiB (same
/// sitting, A/B). Not lower: each Parquet column chunk decoded creates a zstd decompression
/// context (~95 KB); at 64 KiB every one was an mmap + munmap + page faults, ~75 per
/// `items/{id}` lookup (counted with `perf stat`), and lookups at 8 clients fell from ~300/s
/// to 150-230/s (p50 28 → 32-50 ms). It also keeps up to 32 MiB free at the top of the heap
/// (setting the threshold fixes the trim threshold at 128 KiB otherwise, and lookups then
/// gave memory back and took it again).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn tune_malloc(arenas: i32, mmap_threshold: Option<i32>) {
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
        if let Some(bytes) = mmap_threshold {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn tune_malloc(_arenas: i32, _mmap_threshold: Option<i32>) {}
