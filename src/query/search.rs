//! Native item search with the STAC API item-search vocabulary.
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

/// A datetime interval; `None` ends are open. An instant is `[t, t]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatetimeInterval {
    /// Inclusive start.
    pub start: Option<DateTime<Utc>>,
    /// Inclusive end.
    pub end: Option<DateTime<Utc>>,
}

impl DatetimeInterval {
    /// Parse the STAC API `datetime` parameter: an instant, `start/end`, `../end`, `start/..`
    /// (an empty side is open too). Bounds are read like [`parse_datetime`] (naive = UTC).
    /// `arg` names the argument in errors.
    pub fn parse(text: &str, arg: &str) -> Result<Self> {
        let text = text.trim();
        let bound = |s: &str| -> Result<Option<DateTime<Utc>>> {
            let s = s.trim();
            if s.is_empty() || s == ".." {
                Ok(None)
            } else {
                parse_datetime(s, arg).map(Some)
            }
        };
        let interval = match text.split_once('/') {
            None => {
                let t = bound(text)?
                    .ok_or_else(|| Error::invalid_argument(arg, "an empty datetime"))?;
                Self {
                    start: Some(t),
                    end: Some(t),
                }
            }
            Some((a, b)) => Self {
                start: bound(a)?,
                end: bound(b)?,
            },
        };
        if interval.start.is_none() && interval.end.is_none() && text.contains('/') {
            return Err(Error::invalid_argument(
                arg,
                format!("{text:?} has two open ends (give at least one bound)"),
            ));
        }
        if let (Some(s), Some(e)) = (interval.start, interval.end)
            && s > e
        {
            return Err(Error::invalid_argument(
                arg,
                format!("the start {s} is after the end {e}"),
            ));
        }
        Ok(interval)
    }

    fn micros(&self) -> (Option<i64>, Option<i64>) {
        (
            self.start.map(|t| t.timestamp_micros()),
            self.end.map(|t| t.timestamp_micros()),
        )
    }
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortBy {
    /// Field: a top-level member or a property (`datetime`, `properties.datetime`, `id`).
    pub field: String,
    /// Descending order.
    pub descending: bool,
}

impl SortBy {
    /// Parse `+datetime,-eo:cloud_cover` (no sign: ascending). `arg` names the argument.
    pub fn parse_list(text: &str, arg: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (field, descending) = if let Some(f) = part.strip_prefix('-') {
                (f, true)
            } else {
                (part.strip_prefix('+').unwrap_or(part), false)
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(Error::invalid_argument(
                    arg,
                    format!("an empty sort field in {text:?}"),
                ));
            }
            out.push(Self {
                field: field.to_string(),
                descending,
            });
        }
        Ok(out)
    }
}

/// STAC API fields extension: which members to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// Only these paths (plus `type`, `stac_version`, `id` and `collection`); empty: everything.
    pub include: Vec<String>,
    /// Remove these paths (a path also included, or with a more specific path included, is
    /// kept).
    pub exclude: Vec<String>,
}

impl Fields {
    /// Parse `id,properties.datetime,-assets` (`+` or no sign: include; `-`: exclude).
    pub fn parse(text: &str) -> Self {
        let mut f = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(p) = part.strip_prefix('-') {
                f.exclude.push(p.to_string());
            } else {
                f.include
                    .push(part.strip_prefix('+').unwrap_or(part).to_string());
            }
        }
        f
    }

    /// Whether no field selection applies.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Apply to an item. Paths are dotted (`properties.platform`); a path whose first segment
    /// is not a top-level member of the item is looked up inside `properties`.
    pub fn apply(&self, item: Json) -> Json {
        if self.is_empty() {
            return item;
        }
        let Json::Object(mut obj) = item else {
            return item;
        };
        if !self.include.is_empty() {
            let mut out = Map::new();
            for key in ["type", "stac_version", "id", "collection"] {
                if let Some(v) = obj.get(key) {
                    out.insert(key.into(), v.clone());
                }
            }
            for path in &self.include {
                let segs = resolve(&obj, path);
                if let Some(v) = get_path(&obj, &segs) {
                    set_path(&mut out, &segs, v.clone());
                }
            }
            obj = out;
        }
        for path in &self.exclude {
            // An included path wins over the same or a less specific exclusion
            // (`-properties,+properties.platform` keeps the platform).
            let prefix = format!("{path}.");
            if self
                .include
                .iter()
                .any(|i| i == path || i.starts_with(&prefix))
            {
                continue;
            }
            let segs = resolve(&obj, path);
            remove_path(&mut obj, &segs);
        }
        Json::Object(obj)
    }
}

/// Split a dotted path; prefix `properties` when the first segment is not top-level.
fn resolve(obj: &Map<String, Json>, path: &str) -> Vec<String> {
    let segs: Vec<String> = path.split('.').map(str::to_string).collect();
    if obj.contains_key(&segs[0]) || segs[0] == "properties" {
        segs
    } else {
        std::iter::once("properties".to_string())
            .chain(segs)
            .collect()
    }
}

fn get_path<'a>(obj: &'a Map<String, Json>, segs: &[String]) -> Option<&'a Json> {
    let (first, rest) = segs.split_first()?;
    let mut v = obj.get(first)?;
    for s in rest {
        v = v.as_object()?.get(s)?;
    }
    Some(v)
}

fn set_path(obj: &mut Map<String, Json>, segs: &[String], value: Json) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        obj.insert(first.clone(), value);
        return;
    }
    let entry = obj
        .entry(first.clone())
        .or_insert_with(|| Json::Object(Map::new()));
    if let Json::Object(m) = entry {
        set_path(m, rest, value);
    }
}

fn remove_path(obj: &mut Map<String, Json>, segs: &[String]) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        obj.shift_remove(first);
    } else if let Some(Json::Object(m)) = obj.get_mut(first) {
        remove_path(m, rest);
    }
}

/// A search: the STAC API item-search parameters.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Items whose footprint intersects this geometry (lon/lat). A bbox crossing the
    /// antimeridian is the two-box MultiPolygon [`super::parse_bbox`] makes.
    pub intersects: Option<Geometry<f64>>,
    /// Items whose datetime (or start/end interval) is in this interval.
    pub datetime: Option<DatetimeInterval>,
    /// Only these ids.
    pub ids: Option<Vec<String>>,
    /// Only these collections.
    pub collections: Option<Vec<String>>,
    /// The collection of items stored without one: they match a collections filter that
    /// names it and are returned with it (`serve` serves them under it). `None`: such items
    /// match no collections filter and are returned as stored.
    pub default_collection: Option<String>,
    /// Residual CQL2 filter (text or JSON, parsed by the caller).
    pub filter: Option<cql2::Expr>,
    /// Sort keys (collects every match before sorting).
    pub sortby: Vec<SortBy>,
    /// With `sortby`: a search matching more items than this is refused
    /// ([`Error::InvalidArgument`] naming `sortby`), as every match is held in memory to sort.
    pub max_sort_items: Option<usize>,
    /// Cap on the number of items (STAC API page size; there are no pages here).
    pub limit: Option<usize>,
    /// Cap on the number of items.
    pub max_items: Option<usize>,
    /// Member selection.
    pub fields: Fields,
    /// Keep `grid_partition` as a property of returned items.
    pub with_grid_partition: bool,
    /// Return `assets`, `links`, `bbox` and `stac_extensions` as their stored JSON text (a
    /// string) for a writer that splices them verbatim ([`super::write_item`]), saving a parse
    /// and a re-serialisation per item. Only honoured without `sortby` and `fields`, and with a
    /// `filter` that does not name those members (they read parsed members); otherwise items
    /// are fully parsed.
    pub json_text_members: bool,
    /// Buckets fetched and decoded at once (default [`READ_CONCURRENCY`]). A server under load
    /// asks for 1: buckets read ahead of a page that is already full are work for nothing
    /// when no next page is asked for, and the other requests keep the cores busy anyway.
    pub read_concurrency: Option<usize>,
    /// Decoded small files kept between searches (a server's; see [`DecodedFiles`]).
    pub decoded_files: Option<Arc<DecodedFiles>>,
}

impl SearchRequest {
    /// A request matching everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Intersect with a bbox (`minx > maxx` crosses the antimeridian).
    pub fn with_bbox(mut self, minx: f64, miny: f64, maxx: f64, maxy: f64) -> Result<Self> {
        self.intersects = Some(super::bbox_geometry(minx, miny, maxx, maxy, "bbox")?);
        Ok(self)
    }

    /// Intersect with a geometry.
    pub fn with_intersects(mut self, geometry: Geometry<f64>) -> Self {
        self.intersects = Some(geometry);
        self
    }

    /// Restrict to a datetime interval.
    pub fn with_datetime(mut self, interval: DatetimeInterval) -> Self {
        self.datetime = Some(interval);
        self
    }

    /// Restrict to ids.
    pub fn with_ids<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.ids = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Restrict to collections.
    pub fn with_collections<S: Into<String>>(
        mut self,
        collections: impl IntoIterator<Item = S>,
    ) -> Self {
        self.collections = Some(collections.into_iter().map(Into::into).collect());
        self
    }

    /// Add a CQL2 filter.
    pub fn with_filter(mut self, filter: cql2::Expr) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Cap the number of items.
    pub fn with_max_items(mut self, n: usize) -> Self {
        self.max_items = Some(n);
        self
    }

    /// Sort the results.
    pub fn with_sortby(mut self, sortby: Vec<SortBy>) -> Self {
        self.sortby = sortby;
        self
    }

    fn cap(&self) -> Option<usize> {
        match (self.limit, self.max_items) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Parse a CQL2 filter given as text or JSON. `lang` is `cql2-text`, `cql2-json` or `None`
/// (JSON when the text starts with `{`). `arg` names the argument in errors.
pub fn parse_filter(text: &str, lang: Option<&str>, arg: &str) -> Result<cql2::Expr> {
    let trimmed = text.trim();
    if trimmed.len() > MAX_FILTER_BYTES {
        return Err(Error::invalid_argument(
            arg,
            format!(
                "the filter is {} bytes; at most {MAX_FILTER_BYTES} are accepted",
                trimmed.len()
            ),
        ));
    }
    let json = match lang {
        Some("cql2-json") => true,
        Some("cql2-text") => false,
        Some(other) => {
            return Err(Error::invalid_argument(
                arg,
                format!("unknown filter language {other:?} (cql2-text or cql2-json)"),
            ));
        }
        None => trimmed.starts_with('{'),
    };
    // The parsers and the evaluator recurse once per nesting level: bound the nesting before
    // parsing (text; serde_json stops JSON at 128 levels by itself) and after (both), so deep
    // input from a command line or a request is an error, not a stack overflow.
    if !json && let Some(depth) = text_nesting(trimmed).filter(|d| *d > MAX_FILTER_DEPTH) {
        return Err(too_deep(arg, depth));
    }
    let parsed = if json {
        cql2::parse_json(trimmed).map_err(|e| e.to_string())
    } else {
        parse_text_on_big_stack(trimmed)
    };
    if let Ok(expr) = &parsed
        && let depth = expr_depth(expr)
        && depth > MAX_FILTER_DEPTH
    {
        return Err(too_deep(arg, depth));
    }
    if let Ok(expr) = &parsed
        && let Some(op) = unknown_operator(expr)
    {
        return Err(Error::invalid_argument(
            arg,
            format!(
                "unknown operator or function {op:?}: CQL2 defines and, or, not, =, <>, <, <=, \
                 >, >=, like, between, in, isNull, casei, accenti, the s_*, t_* and a_* \
                 predicates and + - * / % ^ div, and no function is supported"
            ),
        ));
    }
    parsed.map_err(|e| {
        Error::invalid_argument(
            arg,
            format!(
                "not valid {}: {e}",
                if json { "CQL2 JSON" } else { "CQL2 text" }
            ),
        )
    })
}

/// The operators of CQL2 that `cql2`'s parser accepts but does not define itself: the
/// parser takes any other name as a call of a user-defined function, which the evaluator cannot
/// evaluate (every item would silently fail to match).
const OTHER_CQL2_OPS: &[&str] = &["not", "like", "between", "in", "isNull", "casei", "accenti"];

/// The first operation in `expr` that is not a CQL2 operator (a misspelling or a function).
fn unknown_operator(expr: &cql2::Expr) -> Option<String> {
    use cql2::Expr;
    let known = |op: &str| {
        [
            cql2::BOOLOPS,
            cql2::EQOPS,
            cql2::CMPOPS,
            cql2::SPATIALOPS,
            cql2::TEMPORALOPS,
            cql2::ARITHOPS,
            cql2::ARRAYOPS,
            OTHER_CQL2_OPS,
        ]
        .iter()
        .any(|list| list.iter().any(|k| k.eq_ignore_ascii_case(op)))
    };
    if let Expr::Operation { op, .. } = expr
        && !known(op)
    {
        return Some(op.clone());
    }
    children(expr).find_map(unknown_operator)
}

/// Filters longer than this are refused (a STAC API request body is bounded too).
pub const MAX_FILTER_BYTES: usize = 256 * 1024;
/// Deepest accepted filter nesting (parentheses, NOT chains, nested operations).
pub const MAX_FILTER_DEPTH: usize = 64;

fn too_deep(arg: &str, depth: usize) -> Error {
    Error::invalid_argument(
        arg,
        format!("the filter nests {depth} levels deep; at most {MAX_FILTER_DEPTH} are accepted"),
    )
}

/// An upper bound of the parse depth of CQL2 text: the deepest parenthesis nesting plus the
/// number of `NOT` keywords and unary minus signs (each a level of the parser's recursion),
/// outside quoted strings and identifiers. `None` when it is small enough not to matter.
fn text_nesting(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut prefix_ops) = (0usize, 0usize, 0usize);
    let mut i = 0;
    let mut prev_significant = b'(';
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                // Skip a quoted string or identifier ('' / "" escape themselves).
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b && bytes.get(i + 1) == Some(&b) {
                        i += 2;
                    } else if bytes[i] == b {
                        break;
                    } else {
                        i += 1;
                    }
                }
                prev_significant = b;
            }
            b'(' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                prev_significant = b'(';
            }
            b')' | b']' => {
                depth = depth.saturating_sub(1);
                prev_significant = b')';
            }
            b'-' if matches!(
                prev_significant,
                b'(' | b',' | b'=' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/'
            ) =>
            {
                prefix_ops += 1;
                prev_significant = b'-';
            }
            b if b.is_ascii_whitespace() => {}
            b if b.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                let word = &text[start..i];
                if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") {
                    prev_significant = b'(';
                } else if word.eq_ignore_ascii_case("not") && prev_significant == b'(' {
                    // A prefix NOT (not the infix `NOT IN`, `NOT LIKE`, `IS NOT`).
                    prefix_ops += 1;
                } else {
                    prev_significant = b'a';
                }
                continue;
            }
            other => prev_significant = other,
        }
        i += 1;
    }
    let bound = deepest + prefix_ops;
    (bound > MAX_FILTER_DEPTH).then_some(bound)
}

/// Parse CQL2 text on a thread whose stack fits the input: the text parser recurses once per
/// binary operator of a flat `a OR b OR …` chain (measured: ~700 bytes of stack per term, ~80
/// per byte of text; 6,000 terms overflow a 2 MB stack), which the nesting bound does not limit.
fn parse_text_on_big_stack(text: &str) -> std::result::Result<cql2::Expr, String> {
    let owned = text.to_string();
    let stack = (8 << 20) + 128 * text.len();
    std::thread::Builder::new()
        .name("cql2-parse".into())
        .stack_size(stack)
        .spawn(move || cql2::parse_text(&owned).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot start the parser thread: {e}"))?
        .join()
        .map_err(|_| "the CQL2 parser panicked".to_string())?
}

/// The nesting depth of a parsed expression (bounded by the checks before parsing).
fn expr_depth(expr: &cql2::Expr) -> usize {
    1 + children(expr).map(expr_depth).max().unwrap_or(0)
}

/// The sub-expressions of a CQL2 expression.
fn children(expr: &cql2::Expr) -> Box<dyn Iterator<Item = &cql2::Expr> + '_> {
    use cql2::Expr;
    match expr {
        Expr::Operation { args, .. } => Box::new(args.iter().map(|a| a.as_ref())),
        Expr::Interval { interval } => Box::new(interval.iter().map(|a| a.as_ref())),
        Expr::BBox { bbox } => Box::new(bbox.iter().map(|a| a.as_ref())),
        Expr::Array(items) => Box::new(items.iter().map(|a| a.as_ref())),
        Expr::Timestamp { timestamp } => Box::new(std::iter::once(timestamp.as_ref())),
        Expr::Date { date } => Box::new(std::iter::once(date.as_ref())),
        _ => Box::new(std::iter::empty()),
    }
}

/// Counters of one search (shared with the stream; read them when it is done).
#[derive(Debug, Default)]
pub struct SearchStats {
    /// Candidate files after partition pruning.
    pub files: AtomicU64,
    /// Row groups in candidate files.
    pub row_groups: AtomicU64,
    /// Row groups skipped by their statistics.
    pub row_groups_pruned: AtomicU64,
    /// Rows in the row groups read.
    pub rows_scanned: AtomicU64,
    /// Geometries decoded to test a spatial query (the rows the bbox covering could not rule
    /// out).
    pub geometries_decoded: AtomicU64,
    /// Rows that passed every filter (before dedup).
    pub rows_matched: AtomicU64,
    /// Matching rows dropped because their id was already returned.
    pub duplicates: AtomicU64,
    /// Dropped rows that were a strictly newer version than the returned one (streaming only).
    pub superseded_after_emit: AtomicU64,
    /// Items the CQL2 filter could not be evaluated on (they do not match).
    pub filter_errors: AtomicU64,
    /// Bytes the search's stream holds now: decoded rows it read and has not returned (not
    /// those shared with the decoded-file cache) and its map of returned ids. A server bounds
    /// its suspended page streams by this.
    pub held_bytes: AtomicU64,
}

impl SearchStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, AtomicOrdering::Relaxed);
    }

    fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, AtomicOrdering::Relaxed);
    }

    /// See [`SearchStats::held_bytes`].
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(AtomicOrdering::Relaxed)
    }

    /// A plain snapshot of the counters.
    pub fn snapshot(&self) -> SearchCounts {
        let g = |c: &AtomicU64| c.load(AtomicOrdering::Relaxed);
        SearchCounts {
            files: g(&self.files),
            row_groups: g(&self.row_groups),
            row_groups_pruned: g(&self.row_groups_pruned),
            rows_scanned: g(&self.rows_scanned),
            geometries_decoded: g(&self.geometries_decoded),
            rows_matched: g(&self.rows_matched),
            duplicates: g(&self.duplicates),
            superseded_after_emit: g(&self.superseded_after_emit),
            filter_errors: g(&self.filter_errors),
        }
    }
}

/// A snapshot of [`SearchStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SearchCounts {
    /// See [`SearchStats::files`].
    pub files: u64,
    /// See [`SearchStats::row_groups`].
    pub row_groups: u64,
    /// See [`SearchStats::row_groups_pruned`].
    pub row_groups_pruned: u64,
    /// See [`SearchStats::rows_scanned`].
    pub rows_scanned: u64,
    /// See [`SearchStats::geometries_decoded`].
    pub geometries_decoded: u64,
    /// See [`SearchStats::rows_matched`].
    pub rows_matched: u64,
    /// See [`SearchStats::duplicates`].
    pub duplicates: u64,
    /// See [`SearchStats::superseded_after_emit`].
    pub superseded_after_emit: u64,
    /// See [`SearchStats::filter_errors`].
    pub filter_errors: u64,
}

/// The query geometry as planar parts (unwrapped like footprints) with their bounds.
#[derive(Debug)]
struct QueryShape {
    parts: Vec<(Geometry<f64>, Rect<f64>)>,
}

impl QueryShape {
    fn new(g: &Geometry<f64>) -> Self {
        let fp = Footprint::from_geometry(g);
        let parts = regions::parts(&fp)
            .into_iter()
            .filter_map(|p| p.bounding_rect().map(|r| (p, r)))
            .collect();
        Self { parts }
    }

    fn intersects(&self, item: &Geometry<f64>) -> bool {
        footprint_intersects_parts(item, &self.parts)
    }

    /// Whether an item whose stored geometry lies within `b` (xmin, ymin, xmax, ymax: its
    /// bbox covering, or the union of a row group's) may intersect the query: `false` only
    /// when it certainly does not. A box wider than 180° may hold a ring that crosses the
    /// antimeridian or encloses a pole, whose footprint reaches beyond the box: such a box
    /// says nothing.
    fn may_intersect_box(&self, b: [f64; 4]) -> bool {
        if b.iter().any(|v| v.is_nan()) || b[2] - b[0] > 180.0 {
            return true;
        }
        self.parts.iter().any(|(_, qb)| {
            qb.min().y <= b[3]
                && qb.max().y >= b[1]
                && lon_shifts(b[0], b[2], qb.min().x, qb.max().x, 0.0)
                    .next()
                    .is_some()
        })
    }
}

fn footprint_intersects_parts(item: &Geometry<f64>, query: &[(Geometry<f64>, Rect<f64>)]) -> bool {
    let fp = Footprint::from_geometry(item);
    if fp.is_empty() {
        return false;
    }
    for part in regions::parts(&fp) {
        let Some(ib) = part.bounding_rect() else {
            continue;
        };
        for (q, qb) in query {
            if qb.min().y > ib.max().y || qb.max().y < ib.min().y {
                continue;
            }
            for shift in lon_shifts(ib.min().x, ib.max().x, qb.min().x, qb.max().x, 0.0) {
                let moved = if shift == 0.0 {
                    part.clone()
                } else {
                    part.translate(-shift, 0.0)
                };
                if q.intersects(&moved) {
                    return true;
                }
            }
        }
    }
    false
}

/// Whether an item footprint intersects a query geometry, both read like the partitioners read
/// footprints (antimeridian crossings the short way, pole rings as caps, 360° shifts).
pub fn footprint_intersects(item: &Geometry<f64>, query: &Geometry<f64>) -> bool {
    QueryShape::new(query).intersects(item)
}

/// The union of a row group's bbox covering (min of `xmin`/`ymin`, max of `xmax`/`ymax`),
/// from its column statistics; `None` without the column or its statistics.
fn covering_range(rg: &RowGroupMetaData) -> Option<[f64; 4]> {
    let mut out = [f64::NAN; 4];
    for (i, field) in COVERING_FIELDS.iter().enumerate() {
        let c = rg.columns().iter().find(|c| {
            let parts = c.column_descr().path().parts();
            parts.len() == 2 && parts[0] == COVERING_COLUMN && parts[1] == *field
        })?;
        let Some(Statistics::Float(s)) = c.statistics() else {
            return None;
        };
        // xmin/ymin bound from below, xmax/ymax from above.
        let v = if i < 2 { s.min_opt()? } else { s.max_opt()? };
        out[i] = f64::from(*v);
    }
    Some(out)
}

/// The bbox covering column of a batch, read per row.
struct CoveringBoxes<'a> {
    array: &'a arrow_array::StructArray,
    parts: [&'a arrow_array::Float32Array; 4],
}

impl<'a> CoveringBoxes<'a> {
    fn of(a: &'a ArrayRef) -> Option<Self> {
        let array = a.as_struct_opt()?;
        let part = |i: usize| {
            array
                .column(i)
                .as_primitive_opt::<arrow_array::types::Float32Type>()
        };
        if array.num_columns() != 4 {
            return None;
        }
        Some(Self {
            array,
            parts: [part(0)?, part(1)?, part(2)?, part(3)?],
        })
    }

    /// Row `i`'s box; `None` when it is null (no geometry, or not known).
    fn get(&self, i: usize) -> Option<[f64; 4]> {
        if self.array.is_null(i) || self.parts.iter().any(|p| p.is_null(i)) {
            return None;
        }
        Some(self.parts.map(|p| f64::from(p.value(i))))
    }
}

/// What every candidate row is tested against (shared by the decoding tasks).
#[derive(Debug)]
struct Plan {
    shape: Option<QueryShape>,
    interval: Option<(Option<i64>, Option<i64>)>,
    ids: Option<HashSet<String>>,
    collections: Option<HashSet<String>>,
    /// See [`SearchRequest::default_collection`].
    default_collection: Option<Arc<str>>,
    filter: Option<cql2::Expr>,
    with_grid_partition: bool,
    /// Leave JSON text members unparsed (see `SearchRequest::json_text_members`).
    json_text: bool,
    stats: Arc<SearchStats>,
}

/// Whether a CQL2 filter may read `assets`, `links`, `bbox` or `stac_extensions` (which
/// then must be parsed for it); conservative: any mention of the names counts.
fn mentions_json_members(filter: &cql2::Expr) -> bool {
    filter.to_text().map_or(true, |text| {
        ["assets", "links", "bbox", "stac_extensions"]
            .iter()
            .any(|m| text.contains(m))
    })
}

/// A matching row.
#[derive(Debug)]
struct Hit {
    id: String,
    /// The row's version (its file's commit order included).
    version: Version,
    item: Body,
}

/// Bytes something a search's stream keeps holds, counted in its
/// [`SearchStats::held_bytes`] while it is alive.
#[derive(Debug)]
struct Held {
    bytes: u64,
    stats: Arc<SearchStats>,
}

impl Held {
    fn new(bytes: u64, stats: &Arc<SearchStats>) -> Self {
        SearchStats::add(&stats.held_bytes, bytes);
        Self {
            bytes,
            stats: Arc::clone(stats),
        }
    }

    /// It holds `bytes` now.
    fn set(&mut self, bytes: u64) {
        SearchStats::add(&self.stats.held_bytes, bytes);
        SearchStats::sub(&self.stats.held_bytes, self.bytes);
        self.bytes = bytes;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        SearchStats::sub(&self.stats.held_bytes, self.bytes);
    }
}

/// Decoded rows lazy hits share, counted as held (when they are not the decoded-file cache's).
#[derive(Debug)]
struct HeldBatch {
    items: ItemBatch,
    _held: Held,
}

impl std::ops::Deref for HeldBatch {
    type Target = ItemBatch;
    fn deref(&self) -> &ItemBatch {
        &self.items
    }
}

/// The ids a streaming search returned (xxh3-128 digests, with their packed version), counted
/// as held by the map's capacity.
struct SeenIds {
    map: HashMap<IdHash, PackedVersion>,
    held: Held,
}

impl SeenIds {
    const ENTRY_BYTES: u64 = (std::mem::size_of::<(IdHash, PackedVersion)>() + 1) as u64;

    fn new(stats: &Arc<SearchStats>) -> Self {
        Self {
            map: HashMap::new(),
            held: Held::new(0, stats),
        }
    }

    fn get(&self, key: &IdHash) -> Option<Version> {
        self.map.get(key).map(|&v| v.into())
    }

    fn insert(&mut self, key: IdHash, version: Version) {
        self.map.insert(key, version.into());
        let bytes = self.map.capacity() as u64 * Self::ENTRY_BYTES;
        if bytes != self.held.bytes {
            self.held.set(bytes);
        }
    }
}

/// A hit's item: built, or (without a filter, which needs the item) built only when it is
/// returned — a page of 100 out of a bucket's 300 matches builds 100 items, and the rest wait
/// as the file's decoded columns in a suspended stream.
#[derive(Debug)]
enum Body {
    Built(Json),
    Lazy {
        batch: Arc<HeldBatch>,
        row: usize,
        with_grid_partition: bool,
        json_text: bool,
    },
}

impl Hit {
    fn into_item(self) -> Json {
        self.item.into_json()
    }
}

impl Body {
    fn into_json(self) -> Json {
        match self {
            Body::Built(item) => item,
            Body::Lazy {
                batch,
                row,
                with_grid_partition,
                json_text,
            } => batch.item_with(row, with_grid_partition, json_text),
        }
    }
}

/// One item a search returns: built, or still a row of its file's decoded columns (written
/// straight to JSON text by [`Found::write_json`], or built by [`Found::into_json`]).
#[derive(Debug)]
pub struct Found {
    item: Body,
    /// The member selection still to apply (`None`: none, or already applied).
    fields: Option<Arc<Fields>>,
}

impl Found {
    /// An item already built (and selected).
    pub fn from_json(item: Json) -> Self {
        Self {
            item: Body::Built(item),
            fields: None,
        }
    }

    /// The item as STAC JSON (with the request's `fields` applied).
    pub fn into_json(self) -> Json {
        let item = self.item.into_json();
        match &self.fields {
            Some(f) => f.apply(item),
            None => item,
        }
    }

    /// Append the item as compact JSON to `out`: the bytes [`super::write_item`] writes of
    /// [`Found::into_json`] (after [`super::relink_item`] when `relink` is given).
    pub fn write_json(self, out: &mut Vec<u8>, relink: Option<Relink<'_>>) {
        if self.fields.is_none()
            && let Body::Lazy {
                batch,
                row,
                with_grid_partition,
                json_text,
            } = &self.item
        {
            batch.write_item_json(*row, *with_grid_partition, *json_text, relink, out);
            return;
        }
        write_relinked(self.into_json(), relink, out);
    }
}

fn ts_micros(array: &ArrayRef) -> Option<Vec<Option<i64>>> {
    let DataType::Timestamp(_, tz) = array.data_type() else {
        return None;
    };
    let target = DataType::Timestamp(TimeUnit::Microsecond, tz.clone());
    let cast = arrow_cast::cast(array, &target).ok()?;
    let p = cast.as_primitive_opt::<arrow_array::types::TimestampMicrosecondType>()?;
    Some(
        (0..p.len())
            .map(|i| (!p.is_null(i)).then(|| p.value(i)))
            .collect(),
    )
}

fn to_micros(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1000),
    }
}

impl Plan {
    /// Whether the CQL2 filter is TRUE of an item. NULL (a comparison with a property the item
    /// lacks) is not a match (STAC API filter semantics), and neither is an expression that
    /// cannot be evaluated on this item (e.g. comparing a string property with a number): such
    /// items are counted in [`SearchStats::filter_errors`] and the first reason is logged.
    fn filter_matches(&self, filter: &cql2::Expr, item: &Json, id: &str) -> bool {
        match filter.clone().reduce(Some(item)) {
            Ok(reduced) => reduced.is_true(),
            Err(e) => {
                if self
                    .stats
                    .filter_errors
                    .fetch_add(1, AtomicOrdering::Relaxed)
                    == 0
                {
                    tracing::warn!(
                        %id,
                        error = %e,
                        "the filter cannot be evaluated on an item; such items do not match"
                    );
                }
                false
            }
        }
    }

    /// The columns the row filter reads.
    fn filter_columns(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.ids.is_some() {
            c.push("id");
        }
        if self.collections.is_some() {
            c.push("collection");
        }
        if self.interval.is_some() {
            c.extend(["datetime", "start_datetime", "end_datetime"]);
        }
        if self.shape.is_some() {
            c.extend(["geometry", COVERING_COLUMN]);
        }
        c
    }

    fn has_row_predicate(&self) -> bool {
        !self.filter_columns().is_empty()
    }

    /// Whether a row group can hold a matching row, by its statistics.
    fn row_group_may_match(&self, rg: &RowGroupMetaData, schema: &ArrowSchema) -> bool {
        let column = |name: &str| {
            rg.columns().iter().find(|c| {
                c.column_descr().name() == name && c.column_descr().path().parts().len() == 1
            })
        };
        if let Some((lo, hi)) = self.interval {
            let range = |name: &str| -> ColumnRange {
                let Some(c) = column(name) else {
                    return ColumnRange::ALL_NULL;
                };
                let unit = match schema.field_with_name(name).map(|f| f.data_type()) {
                    Ok(DataType::Timestamp(unit, _)) => *unit,
                    _ => return ColumnRange::UNKNOWN,
                };
                match c.statistics() {
                    Some(Statistics::Int64(s)) => ColumnRange::from_counts(
                        Some(rg.num_rows()),
                        s.null_count_opt().and_then(|n| i64::try_from(n).ok()),
                        s.min_opt().map(|v| to_micros(*v, &unit)),
                        s.max_opt().map(|v| to_micros(*v, &unit)),
                        true,
                    ),
                    _ => ColumnRange::UNKNOWN,
                }
            };
            let extent = TemporalExtent {
                datetime: range("datetime"),
                start: range("start_datetime"),
                end: range("end_datetime"),
            };
            if !(TimeFilter { lo, hi }).may_match(&extent) {
                return false;
            }
        }
        if let Some(shape) = &self.shape
            && let Some(b) = covering_range(rg)
            && !shape.may_intersect_box(b)
        {
            return false;
        }
        if let Some(ids) = &self.ids
            && let Some(c) = column("id")
            && let Some(Statistics::ByteArray(s)) = c.statistics()
            && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
        {
            let (min, max) = (min.data(), max.data());
            if !ids
                .iter()
                .any(|id| id.as_bytes() >= min && id.as_bytes() <= max)
            {
                return false;
            }
        }
        true
    }

    /// Row mask over a batch holding (some of) the filter columns; absent columns are null.
    fn row_mask(&self, batch: &RecordBatch) -> std::result::Result<BooleanArray, ArrowError> {
        let n = batch.num_rows();
        let mut keep = vec![true; n];
        let col = |name: &str| -> Option<ArrayRef> {
            let a = batch.column_by_name(name)?;
            crate::geoparquet::read::normalise(a, "row filter").ok()
        };
        let strings_in = |keep: &mut [bool], name: &str, set: &HashSet<String>| {
            let a = col(name);
            let s = a.as_ref().and_then(|a| a.as_string_opt::<i32>());
            for (i, k) in keep.iter_mut().enumerate() {
                if *k {
                    *k = s.is_some_and(|s| !s.is_null(i) && set.contains(s.value(i)));
                }
            }
        };
        if let Some(ids) = &self.ids {
            strings_in(&mut keep, "id", ids);
        }
        if let Some(set) = &self.collections {
            // Stored without a collection: in the default one, when there is one.
            let null_matches = self
                .default_collection
                .as_deref()
                .is_some_and(|d| set.contains(d));
            let a = col("collection");
            let s = a.as_ref().and_then(|a| a.as_string_opt::<i32>());
            for (i, k) in keep.iter_mut().enumerate() {
                if *k {
                    *k = match s {
                        Some(s) if !s.is_null(i) => set.contains(s.value(i)),
                        _ => null_matches,
                    };
                }
            }
        }
        if let Some((lo, hi)) = self.interval {
            let get = |name: &str| col(name).as_ref().and_then(ts_micros);
            let (dt, s, e) = (get("datetime"), get("start_datetime"), get("end_datetime"));
            let at = |v: &Option<Vec<Option<i64>>>, i: usize| v.as_ref().and_then(|v| v[i]);
            for (i, k) in keep.iter_mut().enumerate() {
                if *k {
                    *k = temporal_match(at(&dt, i), at(&s, i), at(&e, i), lo, hi);
                }
            }
        }
        if let Some(shape) = &self.shape {
            // The covering first: rows whose box misses the query are dropped without
            // decoding their geometry.
            if let Some(cover) = batch.column_by_name(COVERING_COLUMN)
                && let Some(boxes) = CoveringBoxes::of(cover)
            {
                for (i, k) in keep.iter_mut().enumerate() {
                    if *k && let Some(b) = boxes.get(i) {
                        *k = shape.may_intersect_box(b);
                    }
                }
            }
            let a = col("geometry");
            let g = a.as_ref().and_then(|a| a.as_binary_opt::<i32>());
            let mut decoded = 0u64;
            for (i, k) in keep.iter_mut().enumerate() {
                if *k {
                    decoded += 1;
                    *k = g.is_some_and(|g| {
                        !g.is_null(i)
                            && wkb_geometry(g.value(i)).is_some_and(|geom| shape.intersects(&geom))
                    });
                }
            }
            SearchStats::add(&self.stats.geometries_decoded, decoded);
        }
        Ok(BooleanArray::from(keep))
    }

    /// Decode one file: the rows that match, rehydrated and CQL2-filtered. A small file read
    /// whole is kept in `cache` (decoded, every column) for the next search.
    fn read_file(
        self: &Arc<Self>,
        bytes: Bytes,
        label: &str,
        commit: u64,
        cache: Option<&DecodedFiles>,
    ) -> Result<Vec<Hit>> {
        // Statistics are decoded only for files whose row groups they may prune (the file as a
        // whole was pruned by its manifest bounds already).
        let lean = lean_reader_options();
        let mut metadata = ArrowReaderMetadata::load(&bytes, lean.clone())
            .map_err(|e| Error::parquet(label, e))?;
        if metadata.metadata().num_row_groups() > 1
            && (self.interval.is_some() || self.ids.is_some() || self.shape.is_some())
        {
            metadata = ArrowReaderMetadata::load(&bytes, with_statistics(lean))
                .map_err(|e| Error::parquet(label, e))?;
        }
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
        let schema = builder.schema().clone();
        let metadata = builder.metadata().clone();
        let groups = metadata.row_groups();
        SearchStats::add(&self.stats.row_groups, groups.len() as u64);
        let kept: Vec<usize> = (0..groups.len())
            .filter(|&r| self.row_group_may_match(&groups[r], &schema))
            .collect();
        SearchStats::add(
            &self.stats.row_groups_pruned,
            (groups.len() - kept.len()) as u64,
        );
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let whole = kept.len() == groups.len();
        let scanned: usize = kept.iter().map(|&r| groups[r].num_rows() as usize).sum();
        SearchStats::add(&self.stats.rows_scanned, scanned as u64);
        // The decoder allocates every column's buffers for a whole batch before it reads: a
        // batch no larger than the rows read allocates for ~20 rows of a ~20-row file, not
        // 2,048 (peak RSS of the serve bench did not move measurably by this alone).
        builder = builder
            .with_row_groups(kept)
            .with_batch_size(BATCH_ROWS.min(scanned.max(1)));
        // A small scan decodes every column once and masks the rows afterwards. A row filter
        // decodes the filter columns twice and decompresses the other pages to skip rows inside
        // them; that pays only when many rows (pages) can be skipped. On the res-2 bench
        // warehouse (~20 rows per file) both cost the same CPU per point search (A/B); the
        // single pass is what makes a file cacheable. A search by ids wants a row or two of a
        // file: the row filter decodes one column for it, and the file is not worth caching.
        let single_pass = scanned <= SINGLE_PASS_ROWS && self.ids.is_none();
        if self.has_row_predicate() && !single_pass {
            let wanted = self.filter_columns();
            let mut roots: Vec<usize> = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| wanted.contains(&f.name().as_str()))
                .map(|(i, _)| i)
                .collect();
            if roots.is_empty() {
                // None of the filter columns exists: the predicate sees nulls only.
                roots.push(0);
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let plan = Arc::clone(self);
            let predicate = ArrowPredicateFn::new(mask, move |batch| plan.row_mask(&batch));
            builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
        }
        let reader = builder.build().map_err(|e| Error::parquet(label, e))?;
        let mut hits = Vec::new();
        match cache.filter(|_| single_pass && whole) {
            Some(cache) => {
                let batches = reader
                    .map(|b| b.and_then(|b| exact_size(&b)))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::arrow(label, e))?;
                let file = Arc::new(DecodedFile {
                    row_groups: groups.len() as u64,
                    batches,
                });
                cache.insert(label, Arc::clone(&file));
                for batch in &file.batches {
                    self.batch_hits(batch.clone(), true, true, label, commit, &mut hits)?;
                }
            }
            None => {
                for batch in reader {
                    let batch = batch.map_err(|e| Error::arrow(label, e))?;
                    self.batch_hits(batch, single_pass, false, label, commit, &mut hits)?;
                }
            }
        }
        SearchStats::add(&self.stats.rows_matched, hits.len() as u64);
        Ok(hits)
    }

    /// [`Plan::read_file`] for a file found in the cache of decoded files.
    fn read_decoded(&self, file: &DecodedFile, label: &str, commit: u64) -> Result<Vec<Hit>> {
        SearchStats::add(&self.stats.row_groups, file.row_groups);
        let mut hits = Vec::new();
        for batch in &file.batches {
            SearchStats::add(&self.stats.rows_scanned, batch.num_rows() as u64);
            self.batch_hits(batch.clone(), true, true, label, commit, &mut hits)?;
        }
        SearchStats::add(&self.stats.rows_matched, hits.len() as u64);
        Ok(hits)
    }

    /// The matching rows of one decoded batch as hits; `mask` when the row predicate was not
    /// applied by the reader.
    fn batch_hits(
        &self,
        mut batch: RecordBatch,
        mask: bool,
        mut cached: bool,
        label: &str,
        commit: u64,
        hits: &mut Vec<Hit>,
    ) -> Result<()> {
        if mask && self.has_row_predicate() {
            let keep = self.row_mask(&batch).map_err(|e| Error::arrow(label, e))?;
            if keep.true_count() == 0 {
                return Ok(());
            }
            if keep.true_count() < batch.num_rows() {
                batch = arrow_select::filter::filter_record_batch(&batch, &keep)
                    .map_err(|e| Error::arrow(label, e))?;
                cached = false;
            }
        }
        let held = if cached {
            0
        } else {
            batch.get_array_memory_size() as u64
        };
        let items = Arc::new(HeldBatch {
            items: ItemBatch::new(&batch, label)?
                .with_default_collection(self.default_collection.clone()),
            _held: Held::new(held, &self.stats),
        });
        for i in 0..items.len() {
            let Some(id) = items.id(i).map(str::to_string) else {
                continue;
            };
            let Some(filter) = &self.filter else {
                let micros = |name| {
                    let v = items.property(i, name)?;
                    crate::timestamp::parse_micros(v.as_str()?)
                };
                let version = Version::new(micros("updated"), micros("created"), commit);
                let item = Body::Lazy {
                    batch: Arc::clone(&items),
                    row: i,
                    with_grid_partition: self.with_grid_partition,
                    json_text: self.json_text,
                };
                hits.push(Hit { id, version, item });
                continue;
            };
            let item = items.item_with(i, self.with_grid_partition, self.json_text);
            if !self.filter_matches(filter, &item, &id) {
                continue;
            }
            let version = Version::new(
                timestamp_property(&item, "updated"),
                timestamp_property(&item, "created"),
                commit,
            );
            hits.push(Hit {
                id,
                version,
                item: Body::Built(item),
            });
        }
        Ok(())
    }
}

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

/// `batch` in buffers of exactly its size, for the decoded-file cache. The decoder's buffers
/// were sized for a whole batch ([`BATCH_ROWS`]), ~5× the data of a small file (res-2 bench
/// warehouse); with the batch now sized to the rows read they still carry slack: 64 MiB of
/// cache held 502 files with this copy, 376 without (`bench/serve.sh`, point at 8 clients,
/// 93 vs 89 % hits).
fn exact_size(batch: &RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    let all = arrow_array::UInt32Array::from_iter_values(0..batch.num_rows() as u32);
    arrow_select::take::take_record_batch(batch, &all)
}

fn timestamp_property(item: &Json, name: &str) -> Option<i64> {
    let s = item.get("properties")?.get(name)?.as_str()?;
    crate::timestamp::parse_micros(s)
}

/// The sort value of `field` in an item: top-level member, else a property.
fn sort_value<'a>(item: &'a Json, field: &str) -> Option<&'a Json> {
    let field = field.strip_prefix("properties.").map_or(field, |f| f);
    let top = item.get(field).filter(|_| !field.contains('.'));
    top.or_else(|| item.get("properties")?.get(field))
        .filter(|v| !v.is_null())
}

fn compare_json(a: &Json, b: &Json) -> Ordering {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x
            .as_f64()
            .unwrap_or(f64::NAN)
            .total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        (Json::String(x), Json::String(y)) => match (
            crate::timestamp::parse_micros(x),
            crate::timestamp::parse_micros(y),
        ) {
            (Some(tx), Some(ty)) => tx.cmp(&ty),
            _ => x.cmp(y),
        },
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Order two items by the sort keys (missing values last), then by id.
fn compare_items(a: &Json, b: &Json, sortby: &[SortBy]) -> Ordering {
    for key in sortby {
        let ord = match (sort_value(a, &key.field), sort_value(b, &key.field)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let o = compare_json(x, y);
                if key.descending { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let id = |v: &Json| v.get("id").and_then(Json::as_str).map(str::to_string);
    id(a).cmp(&id(b))
}

/// Keep the newest row of each id (first-seen order otherwise kept).
fn newest_per_id(hits: Vec<Hit>) -> Vec<Hit> {
    let mut slot: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    for hit in hits {
        match slot.get(&hit.id) {
            Some(&i) => {
                if newer(&hit, &out[i]) {
                    out[i] = hit;
                }
            }
            None => {
                slot.insert(hit.id.clone(), out.len());
                out.push(hit);
            }
        }
    }
    out
}

/// Whether `a` is a newer version than `b` ([`Version`]).
fn newer(a: &Hit, b: &Hit) -> bool {
    a.version > b.version
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
