//! The table contract: the 28-field schema with stable ids, the partition spec, the name mapping,
//! and the Arrow schema that data files are written with.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use crate::error::{Error, Result};

/// Catalog name used in `catalog.db` (PyIceberg `SqlCatalog("earthcatalog")`).
pub const CATALOG_NAME: &str = "earthcatalog";
/// Namespace of the table.
pub const NAMESPACE: &str = "earthcatalog";
/// Table name.
pub const TABLE_NAME: &str = "stac_items";
/// Column that holds property values that did not fit their column (JSON object text).
pub const OVERFLOW_COLUMN: &str = "properties_overflow";
/// Table property: grid type (`h3` or `geojson`).
pub const PROP_GRID_TYPE: &str = "earthcatalog.grid.type";
/// Table property: H3 resolution (string int).
pub const PROP_GRID_RESOLUTION: &str = "earthcatalog.grid.resolution";
/// Table property: boundaries file for the GeoJSON grid.
pub const PROP_GRID_BOUNDARIES: &str = "earthcatalog.grid.boundaries_path";
/// Table property: id field of the GeoJSON grid.
pub const PROP_GRID_ID_FIELD: &str = "earthcatalog.grid.id_field";
/// Table property: hash index location.
pub const PROP_HASH_INDEX: &str = "earthcatalog.hash_index_path";
/// Iceberg's name-mapping property.
pub const PROP_NAME_MAPPING: &str = "schema.name-mapping.default";

/// The base columns, in field-id order 1..=28 (reference §2.5).
pub const BASE_COLUMNS: [(&str, ColumnType); 28] = [
    ("id", ColumnType::String),
    ("grid_partition", ColumnType::String),
    ("geometry", ColumnType::Binary),
    ("datetime", ColumnType::TimestampTz),
    ("platform", ColumnType::String),
    ("percent_valid_pixels", ColumnType::Long),
    ("date_dt", ColumnType::Long),
    ("proj:code", ColumnType::String),
    ("assets", ColumnType::String),
    ("links", ColumnType::String),
    ("stac_version", ColumnType::String),
    ("type", ColumnType::String),
    ("start_datetime", ColumnType::TimestampTz),
    ("version", ColumnType::String),
    ("sat:orbit_state", ColumnType::String),
    ("scene_1_id", ColumnType::String),
    ("scene_2_id", ColumnType::String),
    ("scene_1_frame", ColumnType::String),
    ("scene_2_frame", ColumnType::String),
    ("mid_datetime", ColumnType::String),
    ("created", ColumnType::TimestampTz),
    ("updated", ColumnType::TimestampTz),
    ("end_datetime", ColumnType::TimestampTz),
    ("stac_extensions", ColumnType::String),
    ("collection", ColumnType::String),
    ("latitude", ColumnType::Double),
    ("longitude", ColumnType::Double),
    ("bbox", ColumnType::String),
];

/// Column types earthcatalog writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// UTF-8 text (also JSON text).
    String,
    /// 64-bit integer.
    Long,
    /// 64-bit float.
    Double,
    /// Boolean.
    Boolean,
    /// Timestamp with time zone, microseconds UTC.
    TimestampTz,
    /// Bytes (WKB geometry).
    Binary,
}

impl ColumnType {
    /// The Iceberg type.
    pub fn iceberg(self) -> Type {
        Type::Primitive(match self {
            ColumnType::String => PrimitiveType::String,
            ColumnType::Long => PrimitiveType::Long,
            ColumnType::Double => PrimitiveType::Double,
            ColumnType::Boolean => PrimitiveType::Boolean,
            ColumnType::TimestampTz => PrimitiveType::Timestamptz,
            ColumnType::Binary => PrimitiveType::Binary,
        })
    }

    /// Map an Iceberg type onto the nearest column type we can write.
    pub fn from_iceberg(ty: &Type) -> Option<Self> {
        match ty {
            Type::Primitive(p) => Some(match p {
                PrimitiveType::String | PrimitiveType::Uuid => ColumnType::String,
                PrimitiveType::Long | PrimitiveType::Int => ColumnType::Long,
                PrimitiveType::Double | PrimitiveType::Float => ColumnType::Double,
                PrimitiveType::Boolean => ColumnType::Boolean,
                PrimitiveType::Timestamptz
                | PrimitiveType::Timestamp
                | PrimitiveType::TimestamptzNs
                | PrimitiveType::TimestampNs => ColumnType::TimestampTz,
                PrimitiveType::Binary | PrimitiveType::Fixed(_) => ColumnType::Binary,
                _ => return None,
            }),
            _ => None,
        }
    }

    /// The Arrow type files are written with.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Long => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ColumnType::Binary => DataType::Binary,
        }
    }
}

/// The 28-field base schema with ids 1..=28, all optional.
pub fn base_schema() -> Result<Schema> {
    let fields = BASE_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| Arc::new(NestedField::optional(i as i32 + 1, *name, ty.iceberg())))
        .collect::<Vec<_>>();
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()
        .map_err(|e| Error::iceberg("building the base schema", e))
}

/// identity(grid_partition) → `grid_partition`, year(datetime) → `year`.
pub fn partition_spec() -> Result<UnboundPartitionSpec> {
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(2, "grid_partition", Transform::Identity)
        .and_then(|b| b.add_partition_field(4, "year", Transform::Year))
        .map(|b| b.build())
        .map_err(|e| Error::iceberg("building the partition spec", e))
}

/// `schema.name-mapping.default` for a schema: one entry per top-level field.
pub fn name_mapping(schema: &Schema) -> String {
    let entries: Vec<serde_json::Value> = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| serde_json::json!({"field-id": f.id, "names": [f.name]}))
        .collect();
    serde_json::Value::Array(entries).to_string()
}

/// One writable column of the table: name, field id and type.
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumn {
    /// Column name.
    pub name: String,
    /// Iceberg field id.
    pub field_id: i32,
    /// Type written.
    pub ty: ColumnType,
}

/// The writable columns of a table schema, in schema order. Columns of types we cannot write
/// (nested types) are skipped; they stay null in our files.
pub fn table_columns(schema: &Schema) -> Vec<TableColumn> {
    schema
        .as_struct()
        .fields()
        .iter()
        .filter_map(|f| {
            ColumnType::from_iceberg(&f.field_type).map(|ty| TableColumn {
                name: f.name.clone(),
                field_id: f.id,
                ty,
            })
        })
        .collect()
}

/// Arrow schema for data files: every writable table column, nullable, with
/// `PARQUET:field_id` metadata and the `geoarrow.wkb` extension on `geometry`.
pub fn arrow_schema(columns: &[TableColumn]) -> ArrowSchema {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            let mut meta = HashMap::from([(
                PARQUET_FIELD_ID_META_KEY.to_string(),
                c.field_id.to_string(),
            )]);
            if c.name == "geometry" {
                meta.insert("ARROW:extension:name".into(), "geoarrow.wkb".into());
                meta.insert("ARROW:extension:metadata".into(), "{}".into());
            }
            Field::new(&c.name, c.ty.arrow(), true).with_metadata(meta)
        })
        .collect();
    ArrowSchema::new(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_schema_has_28_optional_fields_with_stable_ids() {
        let s = base_schema().unwrap();
        let fields = s.as_struct().fields();
        assert_eq!(fields.len(), 28);
        assert_eq!(s.field_by_name("proj:code").unwrap().id, 8);
        assert_eq!(s.field_by_name("sat:orbit_state").unwrap().id, 15);
        assert_eq!(
            s.field_by_name("mid_datetime")
                .unwrap()
                .field_type
                .to_string(),
            "string"
        );
        assert_eq!(s.field_by_name("bbox").unwrap().id, 28);
        assert!(fields.iter().all(|f| !f.required));
    }

    #[test]
    fn name_mapping_lists_every_field() {
        let s = base_schema().unwrap();
        let m: serde_json::Value = serde_json::from_str(&name_mapping(&s)).unwrap();
        assert_eq!(m.as_array().unwrap().len(), 28);
        assert_eq!(m[7]["field-id"], 8);
        assert_eq!(m[7]["names"][0], "proj:code");
    }

    #[test]
    fn arrow_schema_carries_field_ids_and_geoarrow() {
        let s = base_schema().unwrap();
        let a = arrow_schema(&table_columns(&s));
        let g = a.field_with_name("geometry").unwrap();
        assert_eq!(g.metadata()["ARROW:extension:name"], "geoarrow.wkb");
        assert_eq!(g.metadata()[PARQUET_FIELD_ID_META_KEY], "3");
        assert_eq!(
            a.field_with_name("datetime").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }
}
