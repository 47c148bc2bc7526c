//! # earthcatalog
//!
//! Turns tens of millions of STAC items listed in an S3 Inventory into a spatially partitioned,
//! Apache-Iceberg-registered GeoParquet catalog, drop-in compatible with the Python
//! `earthcatalog` tool (same warehouse layout, `catalog.db`, schema, hash index and lock).
//!
//! ```text
//! inventory ─▶ fetch ─▶ item ─▶ grid (H3 cells / regions) ─▶ partition (cell × UTC year)
//!           ─▶ geoparquet (one file per group) ─▶ catalog (Iceberg commit under lock)
//!           ─▶ hash_index (ids ingested, updated after the commit)
//! ```
//!
//! Every location is a URL resolved by [`store::Location`]; all I/O goes through `object_store`.
//! Long operations report progress through [`report::Reporter`] and return typed metrics; the
//! library never prints.
#![warn(missing_docs)]

pub mod catalog;
pub mod clock;
pub mod error;
pub mod fault;
pub mod fetch;
pub mod geoparquet;
pub mod grid;
pub mod hash_index;
pub mod inventory;
pub mod item;
pub mod lock;
pub mod maintenance;
pub mod partition;
pub mod pipeline;
pub mod query;
pub mod report;
pub mod store;
pub mod synth;

pub use error::{Error, Result};
