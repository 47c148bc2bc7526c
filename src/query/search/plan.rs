//! What every candidate row is tested against, and reading one file: row groups skipped by
//! statistics, the row filter (covering, footprint, time, ids, collections), rehydration and
//! CQL2; the counters of a search.

use super::*;

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
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, AtomicOrdering::Relaxed);
    }

    pub(super) fn sub(counter: &AtomicU64, n: u64) {
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
pub(super) struct QueryShape {
    pub(super) parts: Vec<(Geometry<f64>, Rect<f64>)>,
}

impl QueryShape {
    pub(super) fn new(g: &Geometry<f64>) -> Self {
        let fp = Footprint::from_geometry(g);
        let parts = regions::parts(&fp)
            .into_iter()
            .filter_map(|p| p.bounding_rect().map(|r| (p, r)))
            .collect();
        Self { parts }
    }

    pub(super) fn intersects(&self, item: &Geometry<f64>) -> bool {
        footprint_intersects_parts(item, &self.parts)
    }

    /// Whether an item whose stored geometry lies within `b` (xmin, ymin, xmax, ymax: its
    /// bbox covering, or the union of a row group's) may intersect the query: `false` only
    /// when it certainly does not. A box wider than 180° may hold a ring that crosses the
    /// antimeridian or encloses a pole, whose footprint reaches beyond the box: such a box
    /// says nothing.
    pub(super) fn may_intersect_box(&self, b: [f64; 4]) -> bool {
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

pub(super) fn footprint_intersects_parts(
    item: &Geometry<f64>,
    query: &[(Geometry<f64>, Rect<f64>)],
) -> bool {
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
pub(super) fn covering_range(rg: &RowGroupMetaData) -> Option<[f64; 4]> {
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
pub(super) struct CoveringBoxes<'a> {
    pub(super) array: &'a arrow_array::StructArray,
    pub(super) parts: [&'a arrow_array::Float32Array; 4],
}

impl<'a> CoveringBoxes<'a> {
    pub(super) fn of(a: &'a ArrayRef) -> Option<Self> {
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
    pub(super) fn get(&self, i: usize) -> Option<[f64; 4]> {
        if self.array.is_null(i) || self.parts.iter().any(|p| p.is_null(i)) {
            return None;
        }
        Some(self.parts.map(|p| f64::from(p.value(i))))
    }
}

/// What every candidate row is tested against (shared by the decoding tasks).
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) shape: Option<QueryShape>,
    pub(super) interval: Option<(Option<i64>, Option<i64>)>,
    pub(super) ids: Option<HashSet<String>>,
    pub(super) collections: Option<HashSet<String>>,
    /// See [`SearchRequest::default_collection`].
    pub(super) default_collection: Option<Arc<str>>,
    pub(super) filter: Option<cql2::Expr>,
    pub(super) with_grid_partition: bool,
    /// Leave JSON text members unparsed (see `SearchRequest::json_text_members`).
    pub(super) json_text: bool,
    pub(super) stats: Arc<SearchStats>,
}

/// Whether a CQL2 filter may read `assets`, `links`, `bbox` or `stac_extensions` (which
/// then must be parsed for it); conservative: any mention of the names counts.
pub(super) fn mentions_json_members(filter: &cql2::Expr) -> bool {
    filter.to_text().map_or(true, |text| {
        ["assets", "links", "bbox", "stac_extensions"]
            .iter()
            .any(|m| text.contains(m))
    })
}

pub(super) fn ts_micros(array: &ArrayRef) -> Option<Vec<Option<i64>>> {
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

pub(super) fn to_micros(v: i64, unit: &TimeUnit) -> i64 {
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
    pub(super) fn filter_matches(&self, filter: &cql2::Expr, item: &Json, id: &str) -> bool {
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
    pub(super) fn filter_columns(&self) -> Vec<&'static str> {
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

    pub(super) fn has_row_predicate(&self) -> bool {
        !self.filter_columns().is_empty()
    }

    /// Whether a row group can hold a matching row, by its statistics.
    pub(super) fn row_group_may_match(&self, rg: &RowGroupMetaData, schema: &ArrowSchema) -> bool {
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
    pub(super) fn row_mask(
        &self,
        batch: &RecordBatch,
    ) -> std::result::Result<BooleanArray, ArrowError> {
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
    pub(super) fn read_file(
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
    pub(super) fn read_decoded(
        &self,
        file: &DecodedFile,
        label: &str,
        commit: u64,
    ) -> Result<Vec<Hit>> {
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
    pub(super) fn batch_hits(
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
