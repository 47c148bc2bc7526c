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
//! A taste of the building blocks (the hash index key of an id, an item's cells):
//!
//! ```
//! use earthcatalog::grid::{H3Partitioner, Partitioner};
//! use earthcatalog::hash_index::hash_id;
//!
//! // xxh3-128 (seed 42) of the UTF-8 id, big-endian — the Python tool's hash index key.
//! assert_eq!(hash_id("item-1")[..4], [0x53, 0x1f, 0xdc, 0x24]);
//!
//! let footprint = serde_json::json!({"type": "Point", "coordinates": [0.0, 65.0]});
//! let geometry = earthcatalog::grid::geometry_from_json(&footprint).unwrap();
//! let cells = H3Partitioner::new(2).unwrap().keys(geometry.as_ref());
//! assert_eq!(cells, vec!["82091ffffffffff".to_string()]);
//! ```
//!
//! Every location is a URL resolved by [`store::Location`]; all I/O goes through `object_store`.
//! Long operations report progress through [`report::Reporter`] and return typed metrics; the
//! library never prints.
#![warn(missing_docs)]

pub mod backfill;
pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
pub mod delta;
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
pub mod rewrite;
pub mod schema;
pub mod server;
pub mod store;
pub mod synth;
pub mod timestamp;

pub use error::{Error, Result};
