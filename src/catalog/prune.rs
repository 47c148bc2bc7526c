//! Pruning: which live data files can hold rows of a region and time range, from the manifest
//! list (per-manifest partition summaries) and the manifests only — and the one temporal rule
//! that file, row-group and row filters all apply.
//!
//! **Temporal semantics** (STAC API item search, `docs/decisions.md`): an item's temporal extent is
//! `[start_datetime, end_datetime]` when it has both, else the instant `datetime`; an item with
//! neither but one of the interval ends has the open interval on that side; an item with no time
//! at all never matches a datetime query. It matches a query interval `[lo, hi]` (either end
//! open) when the two intersect ([`temporal_match`]).
//!
//! ITS_LIVE image pairs span up to ~1.5 years across year boundaries, so the `year` partition
//! (the year of `datetime`) alone cannot prune. A file may match when the column bounds the
//! manifests carry for `datetime`, `start_datetime` and `end_datetime` allow one of the cases of
//! the rule ([`TimeFilter::may_match`]). Where a file's manifest entry lacks those statistics,
//! the year partition bounds `datetime`, and `start_datetime`/`end_datetime` are taken within the
//! largest reach (`datetime − start_datetime`, `end_datetime − datetime`) observed in the files
//! that have statistics; with no such file the bounds stay open. Pruning may keep extra files,
//! never drop one holding a match.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use iceberg::spec::{FieldSummary, PartitionSpec, Transform};

use crate::catalog::avro::{ColumnStats, EntryLite};

/// The timestamp columns of the temporal rule, in [`TemporalExtent`] order.
pub const TIME_COLUMNS: [&str; 3] = ["datetime", "start_datetime", "end_datetime"];

/// Whether an item's temporal extent intersects `[lo, hi]` (µs; `None` ends are open).
pub fn temporal_match(
    datetime: Option<i64>,
    start_datetime: Option<i64>,
    end_datetime: Option<i64>,
    lo: Option<i64>,
    hi: Option<i64>,
) -> bool {
    let starts_by_hi = |s: i64| hi.is_none_or(|h| s <= h);
    let ends_after_lo = |e: i64| lo.is_none_or(|l| e >= l);
    match (start_datetime, end_datetime, datetime) {
        (Some(s), Some(e), _) => starts_by_hi(s) && ends_after_lo(e),
        (_, _, Some(t)) => starts_by_hi(t) && ends_after_lo(t),
        (Some(s), None, None) => starts_by_hi(s),
        (None, Some(e), None) => ends_after_lo(e),
        (None, None, None) => false,
    }
}

/// What a file or row group says about one timestamp column. Unknown facts are conservative:
/// "may have a value", "may have a null", open bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnRange {
    /// Some row may have a value.
    pub any_value: bool,
    /// Some row may be null.
    pub any_null: bool,
    /// Smallest value, µs (`None`: unknown).
    pub min: Option<i64>,
    /// Largest value, µs (`None`: unknown).
    pub max: Option<i64>,
}

impl ColumnRange {
    /// Nothing known.
    pub const UNKNOWN: Self = Self {
        any_value: true,
        any_null: true,
        min: None,
        max: None,
    };
    /// Every row null (e.g. the column is not in the file).
    pub const ALL_NULL: Self = Self {
        any_value: false,
        any_null: true,
        min: None,
        max: None,
    };

    /// From value/null counts and bounds; `in_file` says whether a column without counts may
    /// still be in the file (`false` when the file records counts for other columns).
    pub fn from_counts(
        values: Option<i64>,
        nulls: Option<i64>,
        min: Option<i64>,
        max: Option<i64>,
        in_file: bool,
    ) -> Self {
        match (values, nulls) {
            (None, _) if !in_file => Self::ALL_NULL,
            (Some(v), Some(n)) => Self {
                any_value: v > n,
                any_null: n > 0,
                min,
                max,
            },
            (_, Some(n)) => Self {
                any_value: true,
                any_null: n > 0,
                min,
                max,
            },
            _ => Self {
                min,
                max,
                ..Self::UNKNOWN
            },
        }
    }

    /// Whether both bounds are known (or there is no value to bound).
    fn bounded(&self) -> bool {
        !self.any_value || (self.min.is_some() && self.max.is_some())
    }
}

/// The three columns of the temporal rule for one file or row group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporalExtent {
    /// `datetime`.
    pub datetime: ColumnRange,
    /// `start_datetime`.
    pub start: ColumnRange,
    /// `end_datetime`.
    pub end: ColumnRange,
}

impl TemporalExtent {
    /// Nothing known.
    pub const UNKNOWN: Self = Self {
        datetime: ColumnRange::UNKNOWN,
        start: ColumnRange::UNKNOWN,
        end: ColumnRange::UNKNOWN,
    };

    /// An upper bound of how far an item's interval reaches from its `datetime` in these rows
    /// (`None` when the statistics do not bound it).
    fn reach(&self) -> Option<i64> {
        let (d, s, e) = (&self.datetime, &self.start, &self.end);
        if !d.any_value || d.any_null {
            return None;
        }
        let back = match (s.any_value, d.max, s.min) {
            (false, ..) => 0,
            (true, Some(dmax), Some(smin)) => dmax.saturating_sub(smin).max(0),
            _ => return None,
        };
        let ahead = match (e.any_value, e.max, d.min) {
            (false, ..) => 0,
            (true, Some(emax), Some(dmin)) => emax.saturating_sub(dmin).max(0),
            _ => return None,
        };
        Some(back.max(ahead))
    }
}

/// A query interval `[lo, hi]` in UTC µs (either end open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeFilter {
    /// Inclusive start.
    pub lo: Option<i64>,
    /// Inclusive end.
    pub hi: Option<i64>,
}

impl TimeFilter {
    /// From optional bounds.
    pub fn new(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Self {
        Self {
            lo: start.map(|t| t.timestamp_micros()),
            hi: end.map(|t| t.timestamp_micros()),
        }
    }

    /// Whether the interval is empty (start after end).
    pub fn is_empty(&self) -> bool {
        matches!((self.lo, self.hi), (Some(a), Some(b)) if a > b)
    }

    /// Whether rows with these column ranges may hold an item matching the interval (the four
    /// cases of [`temporal_match`], each with the bounds it needs).
    pub fn may_match(&self, x: &TemporalExtent) -> bool {
        let starts_by_hi = |min: Option<i64>| self.hi.is_none_or(|h| min.is_none_or(|m| m <= h));
        let ends_after_lo = |max: Option<i64>| self.lo.is_none_or(|l| max.is_none_or(|m| m >= l));
        let (d, s, e) = (&x.datetime, &x.start, &x.end);
        let interval = s.any_value && e.any_value && starts_by_hi(s.min) && ends_after_lo(e.max);
        let instant = d.any_value
            && (s.any_null || e.any_null)
            && starts_by_hi(d.min)
            && ends_after_lo(d.max);
        let open_end = s.any_value && e.any_null && d.any_null && starts_by_hi(s.min);
        let open_start = e.any_value && s.any_null && d.any_null && ends_after_lo(e.max);
        interval || instant || open_end || open_start
    }
}

/// µs of the first instant of `year` (UTC); saturates outside chrono's range.
fn year_start(year: i32) -> i64 {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .single()
        .map_or(if year < 1970 { i64::MIN } else { i64::MAX }, |t| {
            t.timestamp_micros()
        })
}

/// Decode an Iceberg timestamp bound (8 bytes little-endian µs).
fn micros(bound: Option<&Vec<u8>>) -> Option<i64> {
    Some(i64::from_le_bytes(bound?.as_slice().try_into().ok()?))
}

/// The temporal extent of a manifest entry whose statistics were read for the
/// [`TIME_COLUMNS`] field ids (in that order), narrowed by its year partition.
pub fn entry_extent(entry: &EntryLite, year: Option<i32>) -> TemporalExtent {
    let range = |i: usize| -> ColumnRange {
        match entry.stats.get(i) {
            Some(ColumnStats {
                values,
                nulls,
                lower,
                upper,
            }) => ColumnRange::from_counts(
                *values,
                *nulls,
                micros(lower.as_ref()),
                micros(upper.as_ref()),
                !entry.has_value_counts,
            ),
            None => ColumnRange::UNKNOWN,
        }
    };
    let mut x = TemporalExtent {
        datetime: range(0),
        start: range(1),
        end: range(2),
    };
    if let Some(y) = year {
        // The year partition is the year of every row's datetime; a row without one is in the
        // year of its interval's midpoint and has both interval ends, which the rule reads
        // instead (`TimeFilter::may_match`'s interval case ignores `datetime`).
        let (lo, hi) = (
            year_start(y),
            year_start(y.saturating_add(1)).saturating_sub(1),
        );
        let d = &mut x.datetime;
        d.any_value = true;
        d.any_null = false;
        d.min = Some(d.min.map_or(lo, |m| m.max(lo)));
        d.max = Some(d.max.map_or(hi, |m| m.min(hi)));
    }
    x
}

/// Fill the unknown `start_datetime`/`end_datetime` bounds of `x` from its datetime bounds and
/// `reach` (see the module docs).
fn widen(x: &mut TemporalExtent, reach: i64) {
    if let (Some(dmin), Some(dmax)) = (x.datetime.min, x.datetime.max) {
        if x.start.any_value && x.start.min.is_none() {
            x.start.min = Some(dmin.saturating_sub(reach));
        }
        if x.end.any_value && x.end.max.is_none() {
            x.end.max = Some(dmax.saturating_add(reach));
        }
    }
}

/// A filter on (cell, time) for live data files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruner {
    /// Allowed cells; `None`: any cell.
    pub cells: Option<BTreeSet<String>>,
    /// Time interval; `None`: any time.
    pub time: Option<TimeFilter>,
}

impl Pruner {
    /// A filter for cells and the interval `[start, end]` (a time filter only when a bound is
    /// given).
    pub fn new(
        cells: Option<BTreeSet<String>>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            cells,
            time: (start.is_some() || end.is_some()).then(|| TimeFilter::new(start, end)),
        }
    }

    /// Whether nothing can match (an empty cell set or an empty interval).
    pub fn is_empty(&self) -> bool {
        self.cells.as_ref().is_some_and(BTreeSet::is_empty)
            || self.time.is_some_and(|t| t.is_empty())
    }

    /// Whether a file of partition `cell` may match (`None`: no cell value, kept).
    pub fn matches_cell(&self, cell: Option<&str>) -> bool {
        match (&self.cells, cell) {
            (Some(cells), Some(cell)) => cells.contains(cell),
            _ => true,
        }
    }

    /// Keep the entries (with their years) whose time may match, see the module docs.
    pub fn retain_time<T>(&self, entries: &mut Vec<(T, TemporalExtent)>) {
        let Some(time) = self.time else {
            return;
        };
        if entries
            .iter()
            .any(|(_, x)| !x.start.bounded() || !x.end.bounded())
        {
            let reach = entries.iter().filter_map(|(_, x)| x.reach()).max();
            if let Some(reach) = reach {
                for (_, x) in entries.iter_mut() {
                    widen(x, reach);
                }
            }
        }
        entries.retain(|(_, x)| time.may_match(x));
    }

    /// Whether a manifest whose partition summaries are `summaries` (one per field of `spec`)
    /// can hold a matching file: by its cell range only (the year partition cannot prune
    /// intervals). Missing or undecodable summaries keep the manifest.
    pub fn may_match_manifest(
        &self,
        spec: &PartitionSpec,
        summaries: Option<&[FieldSummary]>,
    ) -> bool {
        let (Some(summaries), Some(cells)) = (summaries, &self.cells) else {
            return true;
        };
        for (field, summary) in spec.fields().iter().zip(summaries) {
            if !is_cell_field(field.name.as_str(), &field.transform) || summary.contains_null {
                continue;
            }
            if let (Some(lo), Some(hi)) = (
                utf8(summary.lower_bound.as_deref()),
                utf8(summary.upper_bound.as_deref()),
            ) && !cells.iter().any(|c| c.as_str() >= lo && c.as_str() <= hi)
            {
                return false;
            }
        }
        true
    }
}

/// A string partition bound.
fn utf8(bound: Option<&Vec<u8>>) -> Option<&str> {
    bound.and_then(|b| std::str::from_utf8(b).ok())
}

/// The cell partition field: identity on `grid_partition`.
pub(crate) fn is_cell_field(name: &str, transform: &Transform) -> bool {
    name == "grid_partition" && *transform == Transform::Identity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cells: &[&str]) -> Option<BTreeSet<String>> {
        Some(cells.iter().map(|s| s.to_string()).collect())
    }

    fn t(y: i32, m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn the_rule_prefers_the_interval_and_falls_back_to_the_instant() {
        let (lo, hi) = (Some(t(2015, 1, 1)), Some(t(2020, 12, 31)));
        // The two ITS_LIVE pairs: datetime outside, interval overlapping.
        assert!(temporal_match(
            Some(t(2021, 1, 14)),
            Some(t(2020, 11, 27)),
            Some(t(2021, 3, 3)),
            lo,
            hi
        ));
        assert!(temporal_match(
            Some(t(2014, 11, 19)),
            Some(t(2014, 8, 27)),
            Some(t(2015, 2, 11)),
            lo,
            hi
        ));
        // datetime inside, interval outside: the interval wins.
        assert!(!temporal_match(
            Some(t(2016, 1, 1)),
            Some(t(2010, 1, 1)),
            Some(t(2011, 1, 1)),
            lo,
            hi
        ));
        // Only datetime; half an interval with a datetime is the instant.
        assert!(temporal_match(Some(t(2016, 1, 1)), None, None, lo, hi));
        assert!(!temporal_match(
            Some(t(2022, 1, 1)),
            Some(t(2016, 1, 1)),
            None,
            lo,
            hi
        ));
        // Open-ended item intervals without datetime.
        assert!(temporal_match(None, Some(t(2019, 1, 1)), None, lo, hi));
        assert!(!temporal_match(None, Some(t(2021, 6, 1)), None, lo, hi));
        assert!(temporal_match(None, None, Some(t(2015, 6, 1)), lo, hi));
        // No time at all never matches; open query ends.
        assert!(!temporal_match(None, None, None, None, None));
        assert!(temporal_match(Some(t(1990, 1, 1)), None, None, None, hi));
        assert!(!temporal_match(Some(t(1990, 1, 1)), None, None, lo, None));
    }

    #[test]
    fn file_ranges_keep_every_case_of_the_rule() {
        let f = TimeFilter {
            lo: Some(t(2015, 1, 1)),
            hi: Some(t(2015, 12, 31)),
        };
        let r = |min: i64, max: i64| ColumnRange {
            any_value: true,
            any_null: false,
            min: Some(min),
            max: Some(max),
        };
        // A 2014 file whose intervals reach into 2015 matches; one that ends in 2014 does not.
        let reaching = TemporalExtent {
            datetime: r(t(2014, 1, 1), t(2014, 12, 1)),
            start: r(t(2013, 6, 1), t(2014, 10, 1)),
            end: r(t(2014, 3, 1), t(2015, 2, 11)),
        };
        assert!(f.may_match(&reaching));
        let ending = TemporalExtent {
            end: r(t(2014, 3, 1), t(2014, 12, 31)),
            ..reaching
        };
        assert!(!f.may_match(&ending));
        // Rows with only datetime: the datetime range decides.
        let instants = TemporalExtent {
            datetime: r(t(2015, 3, 1), t(2015, 4, 1)),
            start: ColumnRange::ALL_NULL,
            end: ColumnRange::ALL_NULL,
        };
        assert!(f.may_match(&instants));
        // Nothing known keeps the file; no time at all drops it.
        assert!(f.may_match(&TemporalExtent::UNKNOWN));
        let timeless = TemporalExtent {
            datetime: ColumnRange::ALL_NULL,
            start: ColumnRange::ALL_NULL,
            end: ColumnRange::ALL_NULL,
        };
        assert!(!f.may_match(&timeless));
    }

    #[test]
    fn files_without_statistics_are_widened_by_the_observed_reach() {
        let f = Pruner::new(
            None,
            Utc.timestamp_micros(t(2016, 6, 1)).single(),
            Utc.timestamp_micros(t(2016, 7, 1)).single(),
        );
        let with_stats = |y: i32| {
            let mut x = TemporalExtent::UNKNOWN;
            x.datetime = ColumnRange {
                any_value: true,
                any_null: false,
                min: Some(t(y, 3, 1)),
                max: Some(t(y, 9, 1)),
            };
            x.start = ColumnRange {
                min: Some(t(y - 1, 3, 1)),
                max: Some(t(y, 9, 1)),
                ..x.datetime
            };
            x.end = ColumnRange {
                min: Some(t(y, 3, 1)),
                max: Some(t(y + 1, 3, 1)),
                ..x.datetime
            };
            x
        };
        let bare = |y: i32| {
            let mut x = TemporalExtent::UNKNOWN;
            x.datetime = ColumnRange {
                any_value: true,
                any_null: false,
                min: Some(t(y, 1, 1)),
                max: Some(t(y + 1, 1, 1) - 1),
            };
            x
        };
        // A statistics-less 2017 file can reach back to mid-2016 (observed reach ~1.5 years);
        // a 2019 one cannot.
        let mut v = vec![
            ("a", with_stats(2010)),
            ("b", bare(2017)),
            ("c", bare(2019)),
        ];
        f.retain_time(&mut v);
        assert_eq!(v.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["b"]);
        // Without any file to observe, nothing is dropped for lack of statistics.
        let mut v = vec![("b", bare(2017)), ("c", bare(2019))];
        f.retain_time(&mut v);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn year_partitions_bound_datetime_and_counts_mean_all_null() {
        let entry = EntryLite {
            status: 1,
            sequence_number: None,
            snapshot_id: None,
            file_sequence_number: None,
            content: 0,
            file_path: "x".into(),
            partition: vec![],
            record_count: 3,
            file_size_in_bytes: 1,
            has_value_counts: true,
            stats: vec![ColumnStats::default(); 3],
        };
        let x = entry_extent(&entry, Some(2020));
        assert_eq!(x.datetime.min, Some(t(2020, 1, 1)));
        assert_eq!(x.datetime.max, Some(t(2021, 1, 1) - 1));
        assert_eq!(
            x.start,
            ColumnRange::ALL_NULL,
            "no count: the column is not in the file"
        );
        let bare = EntryLite {
            has_value_counts: false,
            ..entry
        };
        assert_eq!(entry_extent(&bare, None), TemporalExtent::UNKNOWN);
    }

    #[test]
    fn empty_cell_set_or_interval_matches_nothing() {
        let p = Pruner::new(set(&[]), None, None);
        assert!(p.is_empty());
        let start = Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        assert!(Pruner::new(None, Some(start), Some(end)).is_empty());
        assert!(!Pruner::default().is_empty());
        assert!(Pruner::new(set(&["a"]), None, None).matches_cell(Some("a")));
        assert!(!Pruner::new(set(&["a"]), None, None).matches_cell(Some("b")));
    }

    #[test]
    fn manifest_summaries_prune_by_cell_only() {
        let schema = crate::schema::base_schema().unwrap();
        let spec = crate::schema::partition_spec()
            .unwrap()
            .bind(std::sync::Arc::new(schema))
            .unwrap();
        let summary = |lo: &[u8], hi: &[u8], null: bool| FieldSummary {
            contains_null: null,
            contains_nan: None,
            lower_bound: Some(lo.to_vec().into()),
            upper_bound: Some(hi.to_vec().into()),
        };
        let summaries = vec![
            summary(b"8200", b"8250", false),
            summary(
                &(2015 - 1970i32).to_le_bytes(),
                &(2018 - 1970i32).to_le_bytes(),
                false,
            ),
        ];
        let year = |y| Some(Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap());
        assert!(
            Pruner::new(set(&["8210"]), None, None).may_match_manifest(&spec, Some(&summaries))
        );
        assert!(
            !Pruner::new(set(&["8300"]), None, None).may_match_manifest(&spec, Some(&summaries))
        );
        // Years never prune a manifest: its files' intervals may reach other years.
        assert!(Pruner::new(None, year(2019), None).may_match_manifest(&spec, Some(&summaries)));
        assert!(Pruner::new(set(&["x"]), None, None).may_match_manifest(&spec, None));
    }
}
