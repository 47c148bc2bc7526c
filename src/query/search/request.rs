//! Search requests: the datetime interval, sort keys, fields, the request itself and CQL2
//! filter parsing (refusing what `cql2` cannot evaluate, before anything is read).

use super::*;

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

    pub(super) fn micros(&self) -> (Option<i64>, Option<i64>) {
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
pub(super) fn resolve(obj: &Map<String, Json>, path: &str) -> Vec<String> {
    let segs: Vec<String> = path.split('.').map(str::to_string).collect();
    if obj.contains_key(&segs[0]) || segs[0] == "properties" {
        segs
    } else {
        std::iter::once("properties".to_string())
            .chain(segs)
            .collect()
    }
}

pub(super) fn get_path<'a>(obj: &'a Map<String, Json>, segs: &[String]) -> Option<&'a Json> {
    let (first, rest) = segs.split_first()?;
    let mut v = obj.get(first)?;
    for s in rest {
        v = v.as_object()?.get(s)?;
    }
    Some(v)
}

pub(super) fn set_path(obj: &mut Map<String, Json>, segs: &[String], value: Json) {
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

pub(super) fn remove_path(obj: &mut Map<String, Json>, segs: &[String]) {
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
    /// antimeridian is the two-box MultiPolygon [`crate::query::parse_bbox`] makes.
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
    /// string) for a writer that splices them verbatim ([`crate::query::write_item`]), saving a parse
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
        self.intersects = Some(crate::query::bbox_geometry(minx, miny, maxx, maxy, "bbox")?);
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

    pub(super) fn cap(&self) -> Option<usize> {
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
pub(super) const OTHER_CQL2_OPS: &[&str] =
    &["not", "like", "between", "in", "isNull", "casei", "accenti"];

/// The first operation in `expr` that is not a CQL2 operator (a misspelling or a function).
pub(super) fn unknown_operator(expr: &cql2::Expr) -> Option<String> {
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

pub(super) fn too_deep(arg: &str, depth: usize) -> Error {
    Error::invalid_argument(
        arg,
        format!("the filter nests {depth} levels deep; at most {MAX_FILTER_DEPTH} are accepted"),
    )
}

/// An upper bound of the parse depth of CQL2 text: the deepest parenthesis nesting plus the
/// number of `NOT` keywords and unary minus signs (each a level of the parser's recursion),
/// outside quoted strings and identifiers. `None` when it is small enough not to matter.
pub(super) fn text_nesting(text: &str) -> Option<usize> {
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
pub(super) fn parse_text_on_big_stack(text: &str) -> std::result::Result<cql2::Expr, String> {
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
pub(super) fn expr_depth(expr: &cql2::Expr) -> usize {
    1 + children(expr).map(expr_depth).max().unwrap_or(0)
}

/// The sub-expressions of a CQL2 expression.
pub(super) fn children(expr: &cql2::Expr) -> Box<dyn Iterator<Item = &cql2::Expr> + '_> {
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
