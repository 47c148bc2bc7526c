//! Native item search with the STAC API item-search vocabulary.
//!
//! Parts: `request` (what is asked: interval, sort keys, fields, CQL2 parsing), `plan`
//! (what every row is tested against, and reading one file), `resolve` (hits, versions per
//! id, sort), and here the files and buckets a search visits and the entry points.
//!
//! ```text
//! request ─▶ cells (ingest partitioner) × years ─▶ Pruner ─▶ live files (manifests only)
//!   buckets, newest commit first ─▶ fetch (≤ READ_CONCURRENCY buckets at once) ─▶ blocking decode:
//!     row groups skipped by Parquet statistics (datetime, start/end_datetime, id)
//!     row filter on the filter columns only (id, collection, datetime, start/end, geometry)
//!     surviving rows decoded in full ─▶ rehydrated item JSON ─▶ residual CQL2
//!   ─▶ dedup by id ─▶ fields ─▶ stream (or collect + sort for sortby)
//! ```
//!
//! Semantics:
//! * **Geometry**: an item matches when its footprint intersects the query geometry. Both are
//!   read like the partitioners read footprints ([`crate::grid`]): a ring whose longitudes jump by
//!   more than 180° crosses the antimeridian the short way, pole-enclosing rings are polar caps,
//!   and shapes are compared under shifts of 360°. Items without geometry never match a spatial
//!   query.
//! * **Datetime**: `[start, end]`, either end open. An item matches when its temporal extent
//!   intersects it: `[start_datetime, end_datetime]` when it has both, else the instant
//!   `datetime` (STAC API item search; [`temporal_match`] has the whole rule). Files are pruned by
//!   the manifests' bounds of the three columns and row groups by their Parquet statistics with
//!   the same rule ([`crate::catalog::prune`]), never by the `year` partition alone.
//! * **ids / collections**: membership; an item without a collection matches a collections
//!   filter only through [`SearchRequest::default_collection`].
//! * **filter**: CQL2 evaluated with [`cql2::Expr::matches`] on the rehydrated item (bare names
//!   resolve at top level, then inside `properties`); NULL is not a match.
//! * **Each item once.** An item spanning several cells is stored once per cell; a `HashSet`-like
//!   map of returned ids drops its other rows. Versions: files are grouped by bucket (cell, year)
//!   and a bucket's files are read together, keeping per id the newest matching row by the
//!   decisions rule (latest `updated`, then `created`, then the most recently committed file,
//!   i.e. the higher data sequence number). Since the versions of an item share its cells, this
//!   resolves them before anything is returned. Buckets are visited newest commit first. Only
//!   when versions sit in *different* buckets (the footprint or year changed) can streaming
//!   return an older one first; it cannot be taken back, so the newer row is counted in
//!   [`SearchStats::superseded_after_emit`] and logged. With `sortby` (results are collected
//!   anyway) the rule is applied across all buckets. A newer version that does not match the
//!   query does not hide an older one that does; `compact` removes superseded versions.
//! * **limit / max_items**: both cap the number of items (the smaller wins). The native search
//!   has no pages.
//! * **Memory**: bounded by `READ_CONCURRENCY` buckets in flight (one file's bytes at a time per
//!   bucket, plus the bucket's matching items) and the map of returned ids. `sortby` collects every matching item before sorting:
//!   memory grows with the result size.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{ArrowError, DataType, Schema as ArrowSchema, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use geo::{BoundingRect, Intersects, Translate};
use geo_types::{Geometry, Rect};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowFilter,
};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;
use serde_json::{Map, Value as Json};

use super::cache::{DecodedFile, DecodedFiles};
use super::rehydrate::{ItemBatch, Relink, wkb_geometry, write_relinked};
use super::{FileEntry, SnapshotFiles, Warehouse, parse_datetime};
use crate::catalog::prune::{ColumnRange, Pruner, TemporalExtent, TimeFilter, temporal_match};
use crate::error::{Error, Result};
use crate::geoparquet::read::{lean_reader_options, with_statistics};
use crate::grid::{Footprint, lon_shifts, regions};
use crate::hash_index::{IdHash, hash_id};
use crate::item::{PackedVersion, Version};
use crate::schema::{COVERING_COLUMN, COVERING_FIELDS};
use crate::store::get_all;

/// Data files fetched and decoded at once.
pub const READ_CONCURRENCY: usize = 4;
/// Rows per decoded batch.
const BATCH_ROWS: usize = 2048;

/// Files whose kept row groups hold at most this many rows are read in one pass (every column,
/// rows masked after decoding) instead of through a Parquet row filter.
const SINGLE_PASS_ROWS: usize = 1024;

mod plan;
mod request;
mod resolve;

use plan::*;
pub use plan::{SearchCounts, SearchStats, footprint_intersects};
pub use request::{
    DatetimeInterval, Fields, MAX_FILTER_BYTES, MAX_FILTER_DEPTH, SearchRequest, SortBy,
    parse_filter,
};
pub use resolve::Found;
use resolve::*;

/// The files a search reads: its own list, or indices into the snapshot's file list a server
/// holds in memory (then a suspended page stream keeps 4 bytes per file still to read, not a
/// copy of its path: ~1.6 MB for a whole-warehouse query of 10k files).
pub(crate) enum SearchFiles {
    Owned(Vec<FileEntry>),
    Shared(Arc<SnapshotFiles>, Vec<u32>),
}

impl SearchFiles {
    fn len(&self) -> usize {
        match self {
            SearchFiles::Owned(v) => v.len(),
            SearchFiles::Shared(_, v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> &FileEntry {
        match self {
            SearchFiles::Owned(v) => &v[i],
            SearchFiles::Shared(all, v) => all.file(v[i] as usize),
        }
    }

    /// Later data sequence number first, then the greater path.
    fn sort_newest_first(&mut self) {
        let newer = |a: &FileEntry, b: &FileEntry| {
            b.sequence_number
                .cmp(&a.sequence_number)
                .then_with(|| b.path.cmp(&a.path))
        };
        match self {
            SearchFiles::Owned(v) => v.sort_by(newer),
            SearchFiles::Shared(all, v) => {
                v.sort_by(|&a, &b| newer(all.file(a as usize), all.file(b as usize)))
            }
        }
    }
}

/// A search's files (newest first) grouped into buckets (cell, year) in order of each bucket's
/// newest file. A file's commit rank is derived from its position: the newest gets the highest.
struct Buckets {
    files: SearchFiles,
    /// Positions in `files`, bucket after bucket.
    grouped: Vec<u32>,
    /// Where each bucket ends in `grouped`.
    ends: Vec<u32>,
}

impl Buckets {
    fn new(files: SearchFiles) -> Self {
        let mut slot_of: HashMap<(Option<&str>, Option<i32>), u32> = HashMap::new();
        let slots: Vec<u32> = (0..files.len())
            .map(|i| {
                let f = files.get(i);
                let next = slot_of.len() as u32;
                *slot_of.entry((f.cell.as_deref(), f.year)).or_insert(next)
            })
            .collect();
        let mut ends = vec![0u32; slot_of.len()];
        drop(slot_of);
        for &s in &slots {
            ends[s as usize] += 1;
        }
        let mut at = 0;
        for end in ends.iter_mut() {
            at += *end;
            *end = at;
        }
        // Stable: within a bucket, newest first.
        let mut grouped: Vec<u32> = (0..files.len() as u32).collect();
        grouped.sort_by_key(|&i| slots[i as usize]);
        Self {
            files,
            grouped,
            ends,
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// (commit rank, path) of the files of bucket `b`.
    fn files(&self, b: usize) -> impl Iterator<Item = (u64, &str)> {
        let start = if b == 0 { 0 } else { self.ends[b - 1] as usize };
        let newest = self.files.len() as u64;
        self.grouped[start..self.ends[b] as usize]
            .iter()
            .map(move |&i| {
                (
                    newest - u64::from(i),
                    self.files.get(i as usize).path.as_str(),
                )
            })
    }
}

impl Warehouse {
    /// Search the warehouse; items stream out as STAC JSON (see the module docs).
    pub async fn search(
        &self,
        request: &SearchRequest,
    ) -> Result<BoxStream<'static, Result<Json>>> {
        Ok(self.search_with_stats(request).await?.0)
    }

    /// [`Warehouse::search`] plus counters that fill in as the stream is consumed.
    pub async fn search_with_stats(
        &self,
        request: &SearchRequest,
    ) -> Result<(BoxStream<'static, Result<Json>>, Arc<SearchStats>)> {
        let (found, stats) = self.search_found(request).await?;
        Ok((found.map(|f| f.map(Found::into_json)).boxed(), stats))
    }

    /// [`Warehouse::search_with_stats`], the items as [`Found`]: for writers of JSON text, which
    /// save building each item.
    pub async fn search_found(
        &self,
        request: &SearchRequest,
    ) -> Result<(BoxStream<'static, Result<Found>>, Arc<SearchStats>)> {
        let stats = Arc::new(SearchStats::default());
        let cap = request.cap();
        if cap == Some(0) {
            return Ok((stream::empty().boxed(), stats));
        }
        let cells = match &request.intersects {
            Some(g) => Some(self.cells_for_geometry(g).await?),
            None => None,
        };
        let interval = request.datetime.unwrap_or_default();
        let pruner = Pruner::new(cells, interval.start, interval.end);
        let mut files = self.search_files(&pruner).await?;
        // Newest commit first, so the first row of an id is its most recent commit's.
        files.sort_newest_first();
        SearchStats::add(&stats.files, files.len() as u64);
        let plan = Arc::new(Plan {
            shape: request.intersects.as_ref().map(QueryShape::new),
            interval: request.datetime.map(|d| d.micros()),
            ids: request.ids.as_ref().map(|v| v.iter().cloned().collect()),
            collections: request
                .collections
                .as_ref()
                .map(|v| v.iter().cloned().collect()),
            default_collection: request.default_collection.as_deref().map(Arc::from),
            filter: request.filter.clone(),
            with_grid_partition: request.with_grid_partition,
            json_text: request.json_text_members
                && request
                    .filter
                    .as_ref()
                    .is_none_or(|f| !mentions_json_members(f))
                && request.sortby.is_empty()
                && request.fields.is_empty(),
            stats: Arc::clone(&stats),
        });
        // Buckets (cell, year) in order of their newest file; the versions of an item live in
        // the same buckets, so merging a bucket's files resolves them before anything is
        // returned.
        let buckets = Arc::new(Buckets::new(files));
        let cache = request.decoded_files.clone();
        let hits = stream::iter(0..buckets.len())
            .map(move |b| {
                let plan = Arc::clone(&plan);
                let cache = cache.clone();
                let buckets = Arc::clone(&buckets);
                async move {
                    // Fetch the bucket's files that are not decoded already together, then
                    // decode them in one blocking task.
                    let decoded: Vec<_> = buckets
                        .files(b)
                        .map(|(_, path)| cache.as_ref().and_then(|c| c.get(path)))
                        .collect();
                    let missing = buckets
                        .files(b)
                        .zip(&decoded)
                        .filter(|(_, d)| d.is_none())
                        .map(|((_, path), _)| (path, 0));
                    // A page's files at once.
                    let mut bytes = get_all(missing, usize::MAX).await?.into_iter();
                    tokio::task::spawn_blocking(move || {
                        let mut merged: Vec<Hit> = Vec::new();
                        for ((commit, path), decoded) in buckets.files(b).zip(decoded) {
                            match decoded {
                                Some(file) => {
                                    merged.extend(plan.read_decoded(&file, path, commit)?)
                                }
                                None => {
                                    // get_all answers every path it is given, in order.
                                    let bytes = bytes.next().unwrap_or_default();
                                    merged.extend(plan.read_file(
                                        bytes,
                                        path,
                                        commit,
                                        cache.as_deref(),
                                    )?)
                                }
                            }
                        }
                        // A file may hold several versions too (one ingest chunk).
                        Ok::<_, Error>(newest_per_id(merged))
                    })
                    .await
                    .map_err(|e| Error::task("decoding a bucket", e))?
                }
            })
            .buffered(request.read_concurrency.unwrap_or(READ_CONCURRENCY).max(1));
        let fields = request.fields.clone();
        if !request.sortby.is_empty() {
            let sortby = request.sortby.clone();
            let mut best: HashMap<String, Hit> = HashMap::new();
            let mut hits = hits;
            while let Some(batch) = hits.next().await {
                for hit in batch? {
                    match best.get(&hit.id) {
                        Some(old) => {
                            SearchStats::add(&stats.duplicates, 1);
                            if newer(&hit, old) {
                                best.insert(hit.id.clone(), hit);
                            }
                        }
                        None => {
                            best.insert(hit.id.clone(), hit);
                            if let Some(n) = request.max_sort_items.filter(|n| best.len() > *n) {
                                return Err(Error::invalid_argument(
                                    "sortby",
                                    format!(
                                        "the search matches more than {n} items, too many to \
                                         sort; narrow it (bbox, datetime, filter) or drop sortby"
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            let mut items: Vec<Json> = best.into_values().map(Hit::into_item).collect();
            items.sort_by(|a, b| compare_items(a, b, &sortby));
            if let Some(n) = cap {
                items.truncate(n);
            }
            let out = items.into_iter().map(move |i| {
                Ok(Found {
                    item: Body::Built(fields.apply(i)),
                    fields: None,
                })
            });
            return Ok((stream::iter(out).boxed(), stats));
        }
        let dedup_stats = Arc::clone(&stats);
        // Ids returned so far, by their xxh3-128 digest (the hash index's), with their packed
        // version: a suspended page stream keeps this map, and 36 bytes per id instead of the
        // id string (~100 bytes with its allocation) and a full `Version` is most of what a
        // stream holds after 10k items (64 clients paging: ~53 → ~35 MB, heaptrack).
        let mut seen = SeenIds::new(&stats);
        let items = hits.flat_map(move |batch| {
            let out: Vec<Result<Hit>> = match batch {
                Err(e) => vec![Err(e)],
                Ok(batch) => {
                    let mut out = Vec::new();
                    for hit in batch {
                        let key = hash_id(&hit.id);
                        if let Some(old) = seen.get(&key) {
                            SearchStats::add(&dedup_stats.duplicates, 1);
                            if hit.version > old {
                                SearchStats::add(&dedup_stats.superseded_after_emit, 1);
                                tracing::warn!(
                                    id = %hit.id,
                                    "a newer version of an item already returned was found in an \
                                     older file; run `compact` to drop superseded versions"
                                );
                            }
                            continue;
                        }
                        seen.insert(key, hit.version);
                        out.push(Ok(hit));
                    }
                    out
                }
            };
            stream::iter(out)
        });
        // Items are built (or written) as they are pulled.
        let fields = (!fields.is_empty()).then(|| Arc::new(fields));
        let items = items.map(move |hit| {
            hit.map(|h| Found {
                item: h.item,
                fields: fields.clone(),
            })
        });
        let items = match cap {
            Some(n) => items.take(n).boxed(),
            None => items.boxed(),
        };
        Ok((items, stats))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_operators_and_functions_are_refused_by_name() {
        for (text, op) in [
            (r#"{"op":"frobnicate","args":[1,2]}"#, "frobnicate"),
            (
                r#"{"op":"and","args":[{"op":"=","args":[{"property":"a"},1]},{"op":"sqrt","args":[4]}]}"#,
                "sqrt",
            ),
            ("platform = 'LC08' AND frobnicate(1, 2)", "frobnicate"),
        ] {
            let err = parse_filter(text, None, "filter").unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
            assert!(err.to_string().contains(op), "{err}");
        }
        for ok in [
            "platform = 'LC08' AND percent_valid_pixels BETWEEN 10 AND 90",
            "S_INTERSECTS(geometry, POINT(0 0)) OR T_INTERSECTS(datetime, INTERVAL('2020-01-01', '2021-01-01'))",
            "casei(platform) LIKE 'lc%' AND NOT (x IN (1, 2)) AND y IS NULL AND A_CONTAINS(z, ('a'))",
            r#"{"op":"<>","args":[{"property":"a"},{"op":"+","args":[1,2]}]}"#,
        ] {
            parse_filter(ok, None, "filter").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn datetime_parameter_forms() {
        let t = |y, m, d| Some(Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap());
        let i = DatetimeInterval::parse("2020-01-01/2021-01-01", "--datetime").unwrap();
        assert_eq!((i.start, i.end), (t(2020, 1, 1), t(2021, 1, 1)));
        let i = DatetimeInterval::parse("../2021-01-01", "--datetime").unwrap();
        assert_eq!((i.start, i.end), (None, t(2021, 1, 1)));
        let i = DatetimeInterval::parse("2020-01-01T00:00:00Z/..", "--datetime").unwrap();
        assert_eq!((i.start, i.end), (t(2020, 1, 1), None));
        let i = DatetimeInterval::parse("2020-01-01/", "--datetime").unwrap();
        assert_eq!((i.start, i.end), (t(2020, 1, 1), None));
        let i = DatetimeInterval::parse("2020-01-01", "--datetime").unwrap();
        assert_eq!((i.start, i.end), (t(2020, 1, 1), t(2020, 1, 1)));
        for bad in [
            "../..",
            "2021-01-01/2020-01-01",
            "soon",
            "2020-01-01/later",
            "",
        ] {
            let e = DatetimeInterval::parse(bad, "--datetime").unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("--datetime"), "{e}");
        }
    }

    #[test]
    fn fields_include_exclude() {
        let item = serde_json::json!({
            "type": "Feature", "id": "a", "geometry": null, "bbox": [0, 0, 1, 1],
            "properties": {"datetime": "x", "platform": "LC08", "n": 1},
            "assets": {"a": {}}, "links": []
        });
        let f = Fields::parse("properties.platform,bbox");
        assert_eq!(
            f.apply(item.clone()),
            serde_json::json!({"type": "Feature", "id": "a", "bbox": [0, 0, 1, 1],
                "properties": {"platform": "LC08"}})
        );
        let with_ids = serde_json::json!({"type": "Feature", "stac_version": "1.0.0", "id": "a",
            "collection": "c", "geometry": null, "properties": {"platform": "LC08", "n": 1}});
        assert_eq!(
            Fields::parse("-properties,+properties.platform").apply(with_ids),
            serde_json::json!({"type": "Feature", "stac_version": "1.0.0", "id": "a",
                "collection": "c", "properties": {"platform": "LC08"}})
        );
        let f = Fields::parse("-assets,-links,-n");
        let out = f.apply(item.clone());
        assert!(out.get("assets").is_none() && out.get("links").is_none());
        assert!(out["properties"].get("n").is_none());
        assert_eq!(out["properties"]["platform"], "LC08");
        assert_eq!(Fields::parse("").apply(item.clone()), item);
    }

    #[test]
    fn sortby_and_filter_parsing() {
        let s = SortBy::parse_list("+datetime,-eo:cloud_cover,id", "--sortby").unwrap();
        assert_eq!(s.len(), 3);
        assert!(!s[0].descending && s[1].descending && !s[2].descending);
        assert_eq!(s[1].field, "eo:cloud_cover");
        assert!(SortBy::parse_list("a,,b", "--sortby").is_err());
        parse_filter(
            "percent_valid_pixels > 50 AND platform IN ('LC08','S2A')",
            None,
            "--filter",
        )
        .unwrap();
        parse_filter(
            r#"{"op":"=","args":[{"property":"platform"},"LC08"]}"#,
            None,
            "--filter",
        )
        .unwrap();
        let e = parse_filter("percent_valid_pixels >>> 5", None, "--filter").unwrap_err();
        assert!(e.to_string().contains("--filter"), "{e}");
        assert!(parse_filter("{", Some("cql2-json"), "--filter").is_err());
        assert!(parse_filter("a = 1", Some("sql"), "--filter").is_err());
    }

    #[test]
    fn deep_filters_are_refused_before_they_overflow_the_stack() {
        let parens = format!("{}a = 1{}", "(".repeat(1500), ")".repeat(1500));
        let nots = format!("{}a = 1", "NOT ".repeat(600));
        let json = format!(
            "{}{{\"op\":\"=\",\"args\":[{{\"property\":\"a\"}},1]}}{}",
            "{\"op\":\"not\",\"args\":[".repeat(600),
            "]}".repeat(600)
        );
        let minus = format!("a = {}1", "-".repeat(600));
        for (name, text) in [
            ("parens", parens),
            ("nots", nots),
            ("json", json),
            ("minus", minus),
        ] {
            let e = parse_filter(&text, None, "--filter").unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{name}: {e}");
            assert!(e.to_string().contains("--filter"), "{name}: {e}");
        }
        // Infix NOT and ordinary nesting stay fine.
        let many = (0..80)
            .map(|i| format!("p{i} NOT IN ('x') AND q{i} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        parse_filter(&many, None, "--filter").unwrap();
        parse_filter("NOT (a = 1 AND NOT (b = 2 OR NOT c = 3))", None, "--filter").unwrap();
        // A long flat chain (the parser recurses per operator) parses on its own stack.
        let flat = "a = 1 OR ".repeat(MAX_FILTER_BYTES / 10) + "a = 1";
        assert!(flat.len() < MAX_FILTER_BYTES);
        parse_filter(&flat, None, "--filter").unwrap();
        let big = "a = 1 OR ".repeat(MAX_FILTER_BYTES / 8) + "a = 1";
        assert!(parse_filter(&big, None, "--filter").is_err());
    }

    #[test]
    fn timestamps_sort_by_time_not_text() {
        let a = serde_json::json!({"id": "a", "properties": {"datetime": "2020-01-01T00:00:41Z"}});
        let b =
            serde_json::json!({"id": "b", "properties": {"datetime": "2020-01-01T00:00:41.5Z"}});
        let key = [SortBy {
            field: "datetime".into(),
            descending: false,
        }];
        assert_eq!(compare_items(&a, &b, &key), Ordering::Less);
        let c = serde_json::json!({"id": "c", "properties": {}});
        assert_eq!(compare_items(&c, &a, &key), Ordering::Greater);
    }

    #[test]
    fn antimeridian_footprints_intersect_across_the_line() {
        let q = super::super::parse_bbox("170,-10,-170,10", "--bbox").unwrap();
        // A ring written with wrapped longitudes (179 → -179) is the narrow sliver.
        use geo_types::polygon;
        let wrapped = polygon![
            (x: 179.0, y: 0.0), (x: -179.0, y: 0.0), (x: -179.0, y: 1.0), (x: 179.0, y: 1.0)
        ];
        assert!(footprint_intersects(&wrapped.clone().into(), &q));
        let far = super::super::parse_bbox("0,-10,10,10", "--bbox").unwrap();
        assert!(!footprint_intersects(&wrapped.into(), &far));
    }

    /// A covering box rules an item out only when its footprint cannot reach the query: a box
    /// wider than 180° (a ring stored across the antimeridian, or around a pole) says nothing.
    #[test]
    fn covering_boxes_rule_out_only_what_cannot_match() {
        use geo_types::polygon;
        let shape =
            |bbox: &str| QueryShape::new(&super::super::parse_bbox(bbox, "--bbox").unwrap());
        // Just east of the antimeridian: the wrapped ring above reaches it, its stored box
        // (-179.5 … 179.5) does not contain it.
        let east = shape("-179.8,0.2,-179.6,0.8");
        let wrapped: Geometry<f64> = polygon![
            (x: 179.5, y: 0.0), (x: -179.5, y: 0.0), (x: -179.5, y: 1.0), (x: 179.5, y: 1.0)
        ]
        .into();
        assert!(east.intersects(&wrapped));
        assert!(east.may_intersect_box([-179.5, 0.0, 179.5, 1.0]));
        // Narrow boxes are compared across 360° shifts and ruled out when apart.
        assert!(east.may_intersect_box([180.1, 0.0, 180.3, 1.0]));
        assert!(!east.may_intersect_box([10.0, 0.0, 11.0, 1.0]));
        assert!(!east.may_intersect_box([-179.8, 2.0, -179.6, 3.0]));
        // The query crossing the line itself.
        let across = shape("170,-10,-170,10");
        assert!(across.may_intersect_box([175.0, 0.0, 176.0, 1.0]));
        assert!(across.may_intersect_box([-176.0, 0.0, -175.0, 1.0]));
        assert!(!across.may_intersect_box([0.0, 0.0, 1.0, 1.0]));
        // Unknown bounds say nothing.
        assert!(east.may_intersect_box([f64::NAN, 0.0, 1.0, 1.0]));
    }
}
