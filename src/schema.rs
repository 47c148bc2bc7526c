//! The table contract: the 28-field schema with stable ids, the partition spec, the name mapping,
//! and the Arrow schema that data files are written with.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use iceberg::spec::{
    NestedField, PrimitiveType, Schema, StructType, Transform, Type, UnboundPartitionSpec,
};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use crate::error::{Error, Result};

/// The GeoParquet 1.1 bbox covering column: a struct of `xmin`, `ymin`, `xmax`, `ymax`
/// (float32, each rounded outward) holding every row's geometry bounds, declared as the
/// `covering` of `geometry` in the `geo` metadata. Readers skip row groups by its statistics
/// and rows by its values without decoding geometries. (`bbox` is taken: the item's own bbox
/// as JSON text.)
pub const COVERING_COLUMN: &str = "geometry_bbox";
/// The covering struct's fields, in order.
pub const COVERING_FIELDS: [&str; 4] = ["xmin", "ymin", "xmax", "ymax"];

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
    /// The bbox covering struct ([`COVERING_COLUMN`]): four float32 fields whose field ids
    /// follow the struct's own (`id + 1 ..= id + 4`, as a schema update assigns them).
    Bbox,
}

impl ColumnType {
    /// The Iceberg type.
    pub fn iceberg(self) -> Type {
        if self == ColumnType::Bbox {
            // Ids are placeholders: a schema update assigns fresh ones, the struct's first.
            let fields = COVERING_FIELDS
                .iter()
                .map(|f| {
                    Arc::new(NestedField::optional(
                        0,
                        *f,
                        Type::Primitive(PrimitiveType::Float),
                    ))
                })
                .collect();
            return Type::Struct(StructType::new(fields));
        }
        Type::Primitive(match self {
            ColumnType::String => PrimitiveType::String,
            ColumnType::Long => PrimitiveType::Long,
            ColumnType::Double => PrimitiveType::Double,
            ColumnType::Boolean => PrimitiveType::Boolean,
            ColumnType::TimestampTz => PrimitiveType::Timestamptz,
            ColumnType::Binary => PrimitiveType::Binary,
            ColumnType::Bbox => unreachable!("handled above"),
        })
    }

    /// Map an Iceberg type onto the nearest column type we can write (the covering struct is
    /// recognised by [`table_columns`], which sees its field ids).
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
            ColumnType::Bbox => DataType::Struct(covering_fields(None)),
        }
    }
}

/// The covering struct's Arrow fields; with the struct's field id, each carries its own
/// (`id + 1 ..= id + 4`).
pub fn covering_fields(struct_id: Option<i32>) -> arrow_schema::Fields {
    COVERING_FIELDS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let field = Field::new(*name, DataType::Float32, true);
            match struct_id {
                Some(id) => field.with_metadata(HashMap::from([(
                    PARQUET_FIELD_ID_META_KEY.to_string(),
                    (id + 1 + i as i32).to_string(),
                )])),
                None => field,
            }
        })
        .collect()
}

/// Whether an Iceberg field is the covering as we write it: named [`COVERING_COLUMN`], a
/// struct of the four float fields with ids following the struct's.
fn is_covering(field: &NestedField) -> bool {
    let Type::Struct(st) = field.field_type.as_ref() else {
        return false;
    };
    field.name == COVERING_COLUMN
        && st.fields().len() == 4
        && st
            .fields()
            .iter()
            .zip(COVERING_FIELDS)
            .enumerate()
            .all(|(i, (f, name))| {
                f.name == name
                    && f.id == field.id + 1 + i as i32
                    && matches!(*f.field_type, Type::Primitive(PrimitiveType::Float))
            })
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

/// The schema a new table starts with: the base fields, then the bbox covering (id 29, its
/// fields 30–33).
pub fn new_table_schema() -> Result<Schema> {
    let mut fields: Vec<Arc<NestedField>> = base_schema()?.as_struct().fields().to_vec();
    fields.push(Arc::new(field(
        BASE_COLUMNS.len() as i32 + 1,
        COVERING_COLUMN,
        ColumnType::Bbox,
    )));
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()
        .map_err(|e| Error::iceberg("building the schema of a new table", e))
}

/// An optional field of type `ty` with id `id` (the covering's fields take the next four).
pub fn field(id: i32, name: &str, ty: ColumnType) -> NestedField {
    if ty != ColumnType::Bbox {
        return NestedField::optional(id, name, ty.iceberg());
    }
    let fields = COVERING_FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Arc::new(NestedField::optional(
                id + 1 + i as i32,
                *f,
                Type::Primitive(PrimitiveType::Float),
            ))
        })
        .collect();
    NestedField::optional(id, name, Type::Struct(StructType::new(fields)))
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

/// `schema.name-mapping.default` for a schema: one entry per field, nested fields under
/// their struct.
pub fn name_mapping(schema: &Schema) -> String {
    fn entries(fields: &[Arc<NestedField>]) -> Vec<serde_json::Value> {
        fields
            .iter()
            .map(|f| match f.field_type.as_ref() {
                Type::Struct(st) => serde_json::json!({
                    "field-id": f.id, "names": [f.name], "fields": entries(st.fields())
                }),
                _ => serde_json::json!({"field-id": f.id, "names": [f.name]}),
            })
            .collect()
    }
    serde_json::Value::Array(entries(schema.as_struct().fields())).to_string()
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
            let ty = if is_covering(f) {
                Some(ColumnType::Bbox)
            } else {
                ColumnType::from_iceberg(&f.field_type)
            };
            ty.map(|ty| TableColumn {
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
            let ty = match c.ty {
                ColumnType::Bbox => DataType::Struct(covering_fields(Some(c.field_id))),
                ty => ty.arrow(),
            };
            Field::new(&c.name, ty, true).with_metadata(meta)
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

    /// A new table has the covering at 29 with its fields at 30–33; `table_columns` knows it
    /// only in that shape; data files carry every id; the name mapping lists the fields.
    #[test]
    fn the_covering_is_a_struct_with_ids_after_its_own() {
        let s = new_table_schema().unwrap();
        let cov = s.field_by_name(COVERING_COLUMN).unwrap();
        assert_eq!(cov.id, 29);
        for (i, f) in COVERING_FIELDS.iter().enumerate() {
            let name = format!("{COVERING_COLUMN}.{f}");
            assert_eq!(s.field_by_name(&name).unwrap().id, 30 + i as i32, "{name}");
        }
        let cols = table_columns(&s);
        let c = cols.iter().find(|c| c.name == COVERING_COLUMN).unwrap();
        assert_eq!((c.field_id, c.ty), (29, ColumnType::Bbox));
        let a = arrow_schema(&cols);
        let DataType::Struct(children) = a.field_with_name(COVERING_COLUMN).unwrap().data_type()
        else {
            panic!("not a struct");
        };
        let ids: Vec<&str> = children
            .iter()
            .map(|f| f.metadata()[PARQUET_FIELD_ID_META_KEY].as_str())
            .collect();
        assert_eq!(ids, ["30", "31", "32", "33"]);
        assert!(children.iter().all(|f| f.data_type() == &DataType::Float32));
        let m: serde_json::Value = serde_json::from_str(&name_mapping(&s)).unwrap();
        assert_eq!(m[28]["names"][0], COVERING_COLUMN);
        assert_eq!(m[28]["fields"][3]["field-id"], 33);
        // A struct of that name in another shape is not ours: we do not write it.
        let other = Schema::builder()
            .with_fields(vec![Arc::new(NestedField::optional(
                1,
                COVERING_COLUMN,
                Type::Struct(StructType::new(vec![Arc::new(NestedField::optional(
                    7,
                    "xmin",
                    Type::Primitive(PrimitiveType::Double),
                ))])),
            ))])
            .build()
            .unwrap();
        assert!(table_columns(&other).is_empty());
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
