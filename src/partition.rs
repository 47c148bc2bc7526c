//! Partitions: the (cell, UTC year) key of a file, its place in the warehouse's hive layout,
//! and the grouping of one chunk's fanned-out rows by it.

use std::collections::{BTreeMap, HashSet};

use iceberg::spec::{Literal, Struct};

use crate::item::ItemRow;

/// The partition tuple of a file: (grid_partition, years since 1970 or null).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionValue {
    /// The cell / region key.
    pub cell: String,
    /// The UTC calendar year; `None` for `year=unknown`.
    pub year: Option<i32>,
}

impl PartitionValue {
    /// Iceberg partition struct (year transform = years since 1970).
    pub fn to_struct(&self) -> Struct {
        Struct::from_iter([
            Some(Literal::string(&self.cell)),
            self.year.map(|y| Literal::int(y - 1970)),
        ])
    }

    /// The hive directory `grid_partition=<cell>/year=<yyyy|unknown>`.
    pub fn dir(&self) -> String {
        match self.year {
            Some(y) => format!("grid_partition={}/year={y}", self.cell),
            None => format!("grid_partition={}/year=unknown", self.cell),
        }
    }
}

/// The partition encoded in a hive path `…/grid_partition=<cell>/year=<yyyy|unknown|None>/<file>`.
pub fn partition_of_path(path: &str) -> Option<PartitionValue> {
    let mut parts = path.rsplit('/');
    let _file = parts.next()?;
    let year = parts.next()?.strip_prefix("year=")?;
    let cell = parts.next()?.strip_prefix("grid_partition=")?;
    if cell.is_empty() {
        return None;
    }
    let year = match year {
        "unknown" | "None" | "null" | "" => None,
        y => Some(y.parse::<i32>().ok()?),
    };
    Some(PartitionValue {
        cell: cell.to_string(),
        year,
    })
}

/// One chunk's items and the groups they fan out to. Each item is stored once; groups hold
/// indices, so fan-out costs a few bytes per extra cell.
#[derive(Debug, Default)]
pub struct Groups {
    rows: Vec<ItemRow>,
    groups: BTreeMap<PartitionValue, Vec<u32>>,
    fanout_rows: u64,
    bytes: usize,
}

impl Groups {
    /// Empty groups.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an item under each of its partition keys.
    pub fn add(&mut self, row: ItemRow, cells: Vec<String>) {
        let idx = self.rows.len() as u32;
        let year = row.year();
        self.bytes += row.heap_size() + cells.len() * 24;
        for cell in cells {
            self.groups
                .entry(PartitionValue { cell, year })
                .or_default()
                .push(idx);
            self.fanout_rows += 1;
        }
        self.rows.push(row);
    }

    /// Items held.
    pub fn items(&self) -> usize {
        self.rows.len()
    }

    /// Rows after fan-out.
    pub fn rows(&self) -> u64 {
        self.fanout_rows
    }

    /// Approximate memory held, in bytes.
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The groups in key order, each with its rows.
    pub fn iter(&self) -> impl Iterator<Item = (&PartitionValue, Vec<&ItemRow>)> {
        self.groups
            .iter()
            .map(|(k, idxs)| (k, idxs.iter().map(|i| &self.rows[*i as usize]).collect()))
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Distinct ids held.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        let mut seen = HashSet::new();
        self.rows
            .iter()
            .map(|r| r.id.as_str())
            .filter(move |id| seen.insert(*id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hive_paths_of_every_naming_scheme() {
        let p =
            partition_of_path("wh/grid_partition=8113bffffffffff/year=2019/part_000003.parquet")
                .unwrap();
        assert_eq!((p.cell.as_str(), p.year), ("8113bffffffffff", Some(2019)));
        let p =
            partition_of_path("grid_partition=__none__/year=unknown/part_000000_ab12cd34.parquet")
                .unwrap();
        assert_eq!((p.cell.as_str(), p.year), ("__none__", None));
        let p = partition_of_path("grid_partition=x/year=None/compacted_1.parquet").unwrap();
        assert_eq!(p.year, None);
        assert!(partition_of_path("earthcatalog/stac_items/metadata/snap.avro").is_none());
        assert!(partition_of_path("grid_partition=x/year=20x9/a.parquet").is_none());
    }
    use crate::item::{Columns, ParseCounters, parse_item};
    use crate::schema::{base_schema, table_columns};

    #[test]
    fn groups_by_cell_and_utc_year() {
        let cols = Columns::new(&table_columns(&base_schema().unwrap()));
        let mut c = ParseCounters::default();
        let mut g = Groups::new();
        for (id, dt) in [
            ("a", "2019-12-31T22:00:00-05:00"),
            ("b", "2019-06-01T00:00:00Z"),
        ] {
            let body =
                format!(r#"{{"id":"{id}","geometry":null,"properties":{{"datetime":"{dt}"}}}}"#);
            let (row, _) = parse_item(body.as_bytes(), &cols, &mut c).unwrap();
            g.add(row, vec!["c1".into(), "c2".into()]);
        }
        let (row, _) = parse_item(br#"{"id":"n","geometry":null}"#, &cols, &mut c).unwrap();
        g.add(row, vec!["c1".into()]);
        assert_eq!(g.items(), 3);
        assert_eq!(g.rows(), 5);
        let keys: Vec<String> = g.iter().map(|(k, _)| k.dir()).collect();
        assert_eq!(
            keys,
            vec![
                "grid_partition=c1/year=unknown",
                "grid_partition=c1/year=2019",
                "grid_partition=c1/year=2020",
                "grid_partition=c2/year=2019",
                "grid_partition=c2/year=2020"
            ]
        );
        assert_eq!(g.ids().count(), 3);
    }
}
