//! Maintenance: compaction and repair.
pub mod read;
