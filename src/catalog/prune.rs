//! Partition pruning: which live data files can hold rows of a region and time range, from
//! the manifest list (per-manifest partition summaries) and the manifests only.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Utc};
use iceberg::spec::{FieldSummary, PartitionSpec, Transform};

/// A partition filter on (cell, year).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruner {
    /// Allowed cells; `None`: any cell.
    pub cells: Option<BTreeSet<String>>,
    /// Smallest allowed year (inclusive); `None`: unbounded.
    pub min_year: Option<i32>,
    /// Largest allowed year (inclusive); `None`: unbounded.
    pub max_year: Option<i32>,
}

impl Pruner {
    /// A filter for cells and the UTC years of `[start, end]`.
    pub fn new(
        cells: Option<BTreeSet<String>>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            cells,
            min_year: start.map(|s| s.year()),
            max_year: end.map(|e| e.year()),
        }
    }

    /// Whether nothing can match (an empty cell set or an empty year range).
    pub fn is_empty(&self) -> bool {
        self.cells.as_ref().is_some_and(BTreeSet::is_empty)
            || matches!((self.min_year, self.max_year), (Some(a), Some(b)) if a > b)
    }

    /// Whether a file with this partition can hold matching rows. `cell == None` (no cell
    /// partition value) is kept; a null year is kept (its rows are filtered on read).
    pub fn matches(&self, cell: Option<&str>, year: Option<i32>) -> bool {
        if let (Some(cells), Some(cell)) = (&self.cells, cell)
            && !cells.contains(cell)
        {
            return false;
        }
        match year {
            None => true,
            Some(y) => {
                self.min_year.is_none_or(|lo| y >= lo) && self.max_year.is_none_or(|hi| y <= hi)
            }
        }
    }

    /// Whether a manifest whose partition summaries are `summaries` (one per field of `spec`)
    /// can hold a matching file. Missing or undecodable summaries keep the manifest.
    pub fn may_match_manifest(
        &self,
        spec: &PartitionSpec,
        summaries: Option<&[FieldSummary]>,
    ) -> bool {
        let Some(summaries) = summaries else {
            return true;
        };
        for (field, summary) in spec.fields().iter().zip(summaries) {
            if is_cell_field(field.name.as_str(), &field.transform) {
                if let Some(cells) = &self.cells
                    && !summary.contains_null
                {
                    let lo = summary
                        .lower_bound
                        .as_deref()
                        .and_then(|b| std::str::from_utf8(b).ok());
                    let hi = summary
                        .upper_bound
                        .as_deref()
                        .and_then(|b| std::str::from_utf8(b).ok());
                    if let (Some(lo), Some(hi)) = (lo, hi)
                        && !cells.iter().any(|c| c.as_str() >= lo && c.as_str() <= hi)
                    {
                        return false;
                    }
                }
            } else if field.transform == Transform::Year && !summary.contains_null {
                let lo = summary.lower_bound.as_deref().and_then(|b| decode_int(b));
                let hi = summary.upper_bound.as_deref().and_then(|b| decode_int(b));
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    let (lo, hi) = (lo + 1970, hi + 1970);
                    if self.min_year.is_some_and(|m| hi < m)
                        || self.max_year.is_some_and(|m| lo > m)
                    {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// The cell partition field: identity on `grid_partition`.
pub(crate) fn is_cell_field(name: &str, transform: &Transform) -> bool {
    name == "grid_partition" && *transform == Transform::Identity
}

/// Iceberg single-value serialisation of an int: 4 bytes little-endian.
fn decode_int(b: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn set(cells: &[&str]) -> Option<BTreeSet<String>> {
        Some(cells.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn years_bound_files_but_null_years_stay() {
        let start = Utc.with_ymd_and_hms(2019, 6, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap();
        let p = Pruner::new(set(&["a", "b"]), Some(start), Some(end));
        assert!(p.matches(Some("a"), Some(2019)));
        assert!(p.matches(Some("b"), Some(2021)));
        assert!(!p.matches(Some("a"), Some(2018)));
        assert!(!p.matches(Some("a"), Some(2022)));
        assert!(p.matches(Some("a"), None), "null-year files are candidates");
        assert!(!p.matches(Some("c"), Some(2020)));
        assert!(!p.matches(Some("c"), None));
        let open = Pruner::new(None, Some(start), None);
        assert!(open.matches(Some("zzz"), Some(2030)));
        assert!(!open.matches(Some("zzz"), Some(2018)));
    }

    #[test]
    fn empty_cell_set_matches_nothing() {
        let p = Pruner::new(set(&[]), None, None);
        assert!(p.is_empty());
        let start = Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        assert!(Pruner::new(None, Some(start), Some(end)).is_empty());
        assert!(!Pruner::default().is_empty());
    }

    #[test]
    fn manifest_summaries_prune() {
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
        assert!(!Pruner::new(None, year(2019), None).may_match_manifest(&spec, Some(&summaries)));
        assert!(
            Pruner::new(None, year(2016), year(2016)).may_match_manifest(&spec, Some(&summaries))
        );
        let with_null = vec![
            summaries[0].clone(),
            summary(&45i32.to_le_bytes(), &48i32.to_le_bytes(), true),
        ];
        assert!(Pruner::new(None, year(2019), None).may_match_manifest(&spec, Some(&with_null)));
        assert!(Pruner::new(set(&["x"]), None, None).may_match_manifest(&spec, None));
    }
}
