//! The query side of pruning: the cells a query geometry touches, computed by the same
//! [`Partitioner`] as ingest (so an item whose footprint intersects the query always shares a
//! cell with it), and the Python tool's SQL fragment for them. The file filter itself is
//! [`crate::catalog::prune::Pruner`].

use std::collections::BTreeSet;

use geo_types::Geometry;

use crate::grid::{NONE_KEY, Partitioner};

/// The cells a query geometry touches, by the ingest partitioner. `__none__` (the key of items
/// without geometry) is never a query cell.
pub fn cells_for_geometry(
    partitioner: &dyn Partitioner,
    geometry: &Geometry<f64>,
) -> BTreeSet<String> {
    partitioner
        .keys(Some(geometry))
        .into_iter()
        .filter(|k| k != NONE_KEY)
        .collect()
}

/// `grid_partition IN ('a', 'b')`, or `grid_partition IN (NULL)` (matches nothing) for no cells.
pub fn cell_list_sql<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = cells
        .into_iter()
        .map(|c| format!("'{}'", c.as_ref().replace('\'', "''")))
        .collect();
    if quoted.is_empty() {
        "grid_partition IN (NULL)".to_string()
    } else {
        format!("grid_partition IN ({})", quoted.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_fragment_and_null_guard() {
        assert_eq!(
            cell_list_sql(["82754ffffffffff", "8275e7fffffffff"]),
            "grid_partition IN ('82754ffffffffff', '8275e7fffffffff')"
        );
        assert_eq!(
            cell_list_sql(Vec::<String>::new()),
            "grid_partition IN (NULL)"
        );
        assert_eq!(cell_list_sql(["o'brien"]), "grid_partition IN ('o''brien')");
    }
}
