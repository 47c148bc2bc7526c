//! Partitions: the (cell, UTC year) key of a file, its place in the warehouse's hive layout,
//! and the grouping of one chunk's fanned-out rows by it.
//!
//! Two layouts exist (docs/decisions.md, "Layouts"), and every reader accepts both:
//! * [`Layout::GridPartition`] — `grid_partition=<cell>/year=<yyyy>/` (the Python tool 0.6.1,
//!   the default for a new table);
//! * [`Layout::GridLevelTile`] — `grid=<type>/level=<res>/tile=<cell>/year=<yyyy>/` (newer
//!   production warehouses; the `itslive` client globs
//!   `grid=h3/level=1/tile={hex}/year={Y}/**/*.parquet`).
//!
//! A table records its layout in the property [`PROP_LAYOUT`]; a table without it is a
//! `grid_partition` table. Writers (ingest, compaction, gc) place every new file by the table's
//! layout; a new table chooses it (`ingest --layout`).

use std::collections::{BTreeMap, HashSet};

use iceberg::spec::{Literal, Struct};

use crate::error::{Error, Result};
use crate::grid::GridConfig;
use crate::item::ItemRow;

/// The table property naming the warehouse layout.
pub const PROP_LAYOUT: &str = "earthcatalog.layout";

/// How a warehouse places its files (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// `grid_partition=<cell>/year=<yyyy>/`.
    #[default]
    #[serde(rename = "grid_partition")]
    GridPartition,
    /// `grid=<type>/level=<res>/tile=<cell>/year=<yyyy>/`.
    #[serde(rename = "grid/level/tile")]
    GridLevelTile,
}

impl Layout {
    /// The property value.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::GridPartition => "grid_partition",
            Layout::GridLevelTile => "grid/level/tile",
        }
    }

    /// Parse a property or flag value (`grid_partition`, `grid/level/tile`, or the short
    /// forms `v1`, `v2`, `grid-level-tile`).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "grid_partition" | "grid-partition" | "v1" => Ok(Layout::GridPartition),
            "grid/level/tile" | "grid-level-tile" | "v2" => Ok(Layout::GridLevelTile),
            other => Err(Error::invalid_argument(
                "layout",
                format!("{other:?} is not a layout (grid_partition or grid/level/tile)"),
            )),
        }
    }

    /// The layout a table records (`grid_partition` when it records none).
    pub fn of_properties(props: &std::collections::HashMap<String, String>) -> Result<Self> {
        props
            .get(PROP_LAYOUT)
            .map_or(Ok(Layout::GridPartition), |v| Self::parse(v))
    }
}

/// Where a table's files go: its layout and, for `grid/level/tile`, the grid's type and level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    layout: Layout,
    grid_type: String,
    level: String,
}

impl Placement {
    /// The placement of a table with this layout and grid.
    pub fn new(layout: Layout, grid: &GridConfig) -> Self {
        let level = match grid {
            GridConfig::H3 { resolution } => resolution.to_string(),
            GridConfig::GeoJson { .. } => "0".to_string(),
        };
        Self {
            layout,
            grid_type: grid.grid_type().to_string(),
            level,
        }
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The directory of a partition, relative to the warehouse root.
    pub fn dir(&self, p: &PartitionValue) -> String {
        let year = p.year.map_or("unknown".to_string(), |y| y.to_string());
        match self.layout {
            Layout::GridPartition => format!("grid_partition={}/year={year}", p.cell),
            Layout::GridLevelTile => format!(
                "grid={}/level={}/tile={}/year={year}",
                self.grid_type, self.level, p.cell
            ),
        }
    }
}

impl Default for Placement {
    fn default() -> Self {
        Self::new(Layout::GridPartition, &GridConfig::H3 { resolution: 1 })
    }
}

/// Whether a warehouse path segment starts a partition directory of either layout.
pub fn is_partition_dir(segment: &str) -> bool {
    segment.starts_with("grid_partition=") || segment.starts_with("grid=")
}

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

    /// The `grid_partition=<cell>/year=<yyyy|unknown>` directory: a label in reports (files
    /// are placed by the table's [`Placement`]).
    pub fn dir(&self) -> String {
        Placement::default().dir(self)
    }
}

/// The partition encoded in a hive path of either layout:
/// `…/grid_partition=<cell>/year=<yyyy|unknown|None>/<file>` or
/// `…/grid=<type>/level=<res>/tile=<cell>/year=<yyyy|…>/[…/]<file>`.
pub fn partition_of_path(path: &str) -> Option<PartitionValue> {
    let segments: Vec<&str> = path.split('/').collect();
    let (_file, dirs) = segments.split_last()?;
    // The innermost `year=` directory, and the cell just above it.
    let at = dirs.iter().rposition(|s| s.starts_with("year="))?;
    let year = dirs[at].strip_prefix("year=")?;
    let above = *dirs.get(at.checked_sub(1)?)?;
    let cell = if let Some(cell) = above.strip_prefix("grid_partition=") {
        // The legacy layout keeps its files directly below the year.
        if at + 1 != dirs.len() {
            return None;
        }
        cell
    } else {
        let cell = above.strip_prefix("tile=")?;
        let level = dirs.get(at.checked_sub(2)?)?;
        let grid = dirs.get(at.checked_sub(3)?)?;
        if !level.starts_with("level=") || !grid.starts_with("grid=") {
            return None;
        }
        cell
    };
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
    fn both_layouts_place_and_parse_the_same_partition() {
        let p = PartitionValue {
            cell: "8113bffffffffff".into(),
            year: Some(2019),
        };
        let h3 = GridConfig::H3 { resolution: 1 };
        let v2 = Placement::new(Layout::GridLevelTile, &h3);
        assert_eq!(v2.dir(&p), "grid=h3/level=1/tile=8113bffffffffff/year=2019");
        assert_eq!(
            Placement::new(Layout::GridPartition, &h3).dir(&p),
            "grid_partition=8113bffffffffff/year=2019"
        );
        for dir in [v2.dir(&p), p.dir()] {
            assert_eq!(
                partition_of_path(&format!("wh/{dir}/part_1.parquet")),
                Some(p.clone())
            );
        }
        // Files deeper below the year (the itslive client globs `year=Y/**`).
        assert_eq!(
            partition_of_path("grid=h3/level=1/tile=8113bffffffffff/year=2019/x/y.parquet"),
            Some(p.clone())
        );
        let none = PartitionValue {
            cell: "__none__".into(),
            year: None,
        };
        assert_eq!(
            partition_of_path(&format!("{}/a.parquet", v2.dir(&none))),
            Some(none)
        );
        assert!(partition_of_path("tile=x/year=2019/a.parquet").is_none());
        assert!(partition_of_path("grid_partition=x/year=2019/sub/a.parquet").is_none());
        assert_eq!(Layout::parse("v2").unwrap(), Layout::GridLevelTile);
        assert!(Layout::parse("flat").is_err());
    }

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
