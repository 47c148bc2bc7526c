//! The `earthcatalog` command line. See `earthcatalog --help`.
//!
//! Exit codes: 0 success; 1 failure; 2 usage or configuration error (bad flag, bad input
//! argument, grid conflict); 3 finished but some items failed (see the failures report);
//! 4 the catalog is locked by someone else.

fn main() -> std::process::ExitCode {
    earthcatalog::cli::main()
}
