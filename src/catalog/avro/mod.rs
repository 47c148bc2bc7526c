//! A projection reader for Iceberg manifest files: decodes the Avro object container and keeps
//! only what file listing needs (entry status, sequence number, data file content, path,
//! partition tuple, record count and size, and the column statistics of the few fields a
//! caller asks for — the datetime columns for temporal pruning), skipping everything else
//! byte for byte without building values. The generic Avro → serde route of the `iceberg` crate spends most
//! of a query's pruning time on those statistics; this reader is an order of magnitude faster.
//!
//! Codecs `null` and `deflate` (what iceberg-rust and PyIceberg write) are read; anything
//! else — another codec, a schema this reader does not understand, a truncated file — is
//! an `Err` with the reason, and callers fall back to the `iceberg` crate's reader.
//!
//! The writer, which encodes data manifests straight to Avro, is `write`.

pub(crate) mod write;

use std::collections::HashMap;
use std::io::Read;

use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, Literal, Manifest, ManifestFile, ManifestStatus, PrimitiveLiteral,
};
use serde_json::Value as Json;

use crate::error::{Error, Result};

/// One partition value, as far as listing needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionDatum {
    /// Null.
    Null,
    /// int or long.
    Long(i64),
    /// string.
    Str(String),
    /// Any other type (not used for pruning).
    Other,
}

/// The statistics of one column of a data file, as the manifest records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnStats {
    /// Values including nulls (`None`: not recorded).
    pub values: Option<i64>,
    /// Nulls (`None`: not recorded).
    pub nulls: Option<i64>,
    /// Lower bound, Iceberg single-value serialisation.
    pub lower: Option<Vec<u8>>,
    /// Upper bound, Iceberg single-value serialisation.
    pub upper: Option<Vec<u8>>,
}

/// One manifest entry, projected.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryLite {
    /// 0 existing, 1 added, 2 deleted.
    pub status: i32,
    /// Data sequence number stored in the entry (`None` = inherited from the manifest).
    pub sequence_number: Option<i64>,
    /// Snapshot that added (or deleted) the file, as stored (`None` = inherited).
    pub snapshot_id: Option<i64>,
    /// File sequence number stored in the entry (`None` = inherited from the manifest).
    pub file_sequence_number: Option<i64>,
    /// 0 data, 1 position deletes, 2 equality deletes (0 in v1 manifests).
    pub content: i32,
    /// The data file path.
    pub file_path: String,
    /// Partition tuple in spec order.
    pub partition: Vec<PartitionDatum>,
    /// Rows.
    pub record_count: i64,
    /// Bytes.
    pub file_size_in_bytes: i64,
    /// Whether the entry records value counts for any column (then a column without a count is
    /// not in the file: all null).
    pub has_value_counts: bool,
    /// Statistics of the requested field ids, in request order.
    pub stats: Vec<ColumnStats>,
}

impl EntryLite {
    /// A live (added or existing) data file.
    pub fn is_live_data(&self) -> bool {
        self.status != 2 && self.content == 0
    }

    /// The snapshot that added the file, inherited from the manifest `file` (its
    /// `added_snapshot_id`) when the entry has none, as the Iceberg spec says.
    pub fn snapshot_id_in(&self, file: &ManifestFile) -> i64 {
        self.snapshot_id.unwrap_or(file.added_snapshot_id)
    }

    /// The data sequence number, inherited from the manifest `file` as the Iceberg spec (and
    /// iceberg-rust) do when the entry has none.
    pub fn sequence_number_in(&self, file: &ManifestFile) -> Option<i64> {
        self.sequence_number.or(self.inherited(file))
    }

    /// The file sequence number, inherited from the manifest `file` by the same rule.
    pub fn file_sequence_number_in(&self, file: &ManifestFile) -> Option<i64> {
        self.file_sequence_number.or(self.inherited(file))
    }

    fn inherited(&self, file: &ManifestFile) -> Option<i64> {
        inherited_sequence_number(self.status == 1, file)
    }
}

/// The sequence number an entry without one takes from its manifest `file`: the manifest's own,
/// for an added entry or a manifest of the first sequence number (the Iceberg spec, as
/// iceberg-rust's reader applies it).
pub(super) fn inherited_sequence_number(added: bool, file: &ManifestFile) -> Option<i64> {
    (added || file.sequence_number == 0).then_some(file.sequence_number)
}

/// The bytes of the manifest `file`.
pub(super) async fn manifest_bytes(file: &ManifestFile, io: &FileIO) -> Result<bytes::Bytes> {
    io.new_input(&file.manifest_path)
        .map_err(|e| read_error(file, e))?
        .read()
        .await
        .map_err(|e| read_error(file, e))
}

/// A failure reading or decoding the manifest `file`.
pub(super) fn read_error(file: &ManifestFile, e: iceberg::Error) -> Error {
    Error::iceberg(format!("reading manifest {}", file.manifest_path), e)
}

/// Every entry of the manifest `file`, with the statistics of the field ids `stats_fields`:
/// through [`read_manifest_entries`], or — when that declines the file — iceberg-rust's generic
/// reader, converted to the same form.
pub async fn manifest_entries(
    file: &ManifestFile,
    io: &FileIO,
    stats_fields: &[i32],
) -> Result<Vec<EntryLite>> {
    let bytes = manifest_bytes(file, io).await?;
    match read_manifest_entries(&bytes, stats_fields) {
        Ok(entries) => Ok(entries),
        Err(why) => {
            tracing::debug!(manifest = %file.manifest_path, %why, "generic manifest reader");
            let manifest = Manifest::parse_avro(&bytes).map_err(|e| read_error(file, e))?;
            Ok(manifest
                .entries()
                .iter()
                .map(|e| lite(e, stats_fields))
                .collect())
        }
    }
}

/// An entry decoded by iceberg-rust, projected (its sequence number as stored, not inherited).
fn lite(e: &iceberg::spec::ManifestEntry, stats_fields: &[i32]) -> EntryLite {
    let df = e.data_file();
    let datum = |v: &Option<Literal>| match v {
        None => PartitionDatum::Null,
        Some(Literal::Primitive(PrimitiveLiteral::String(s))) => PartitionDatum::Str(s.clone()),
        Some(Literal::Primitive(PrimitiveLiteral::Int(i))) => PartitionDatum::Long(i64::from(*i)),
        Some(Literal::Primitive(PrimitiveLiteral::Long(i))) => PartitionDatum::Long(*i),
        Some(_) => PartitionDatum::Other,
    };
    EntryLite {
        status: match e.status() {
            ManifestStatus::Existing => 0,
            ManifestStatus::Added => 1,
            ManifestStatus::Deleted => 2,
        },
        sequence_number: e.sequence_number(),
        snapshot_id: e.snapshot_id(),
        file_sequence_number: e.file_sequence_number,
        content: match e.content_type() {
            DataContentType::Data => 0,
            DataContentType::PositionDeletes => 1,
            DataContentType::EqualityDeletes => 2,
        },
        file_path: df.file_path().to_string(),
        partition: df.partition().fields().iter().map(datum).collect(),
        record_count: i64::try_from(df.record_count()).unwrap_or(i64::MAX),
        file_size_in_bytes: i64::try_from(df.file_size_in_bytes()).unwrap_or(i64::MAX),
        has_value_counts: !df.value_counts().is_empty(),
        stats: stats_fields
            .iter()
            .map(|id| ColumnStats {
                values: df.value_counts().get(id).map(|&n| n as i64),
                nulls: df.null_value_counts().get(id).map(|&n| n as i64),
                lower: df
                    .lower_bounds()
                    .get(id)
                    .and_then(|d| d.to_bytes().ok())
                    .map(|b| b.to_vec()),
                upper: df
                    .upper_bounds()
                    .get(id)
                    .and_then(|d| d.to_bytes().ok())
                    .map(|b| b.to_vec()),
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
pub(super) enum Schema {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum,
    Array(Box<Schema>),
    Map(Box<Schema>),
    Union(Vec<Schema>),
    Record(Vec<(String, Schema)>),
}

pub(super) type R<T> = std::result::Result<T, String>;

pub(super) fn parse_schema(v: &Json, names: &mut HashMap<String, Schema>) -> R<Schema> {
    match v {
        Json::String(name) => by_name(name, names),
        Json::Array(branches) => Ok(Schema::Union(
            branches
                .iter()
                .map(|b| parse_schema(b, names))
                .collect::<R<_>>()?,
        )),
        Json::Object(o) => {
            let ty = o.get("type").ok_or("Avro schema object without `type`")?;
            let Json::String(ty) = ty else {
                return parse_schema(ty, names);
            };
            let schema = match ty.as_str() {
                "record" | "error" => {
                    let fields = o
                        .get("fields")
                        .and_then(Json::as_array)
                        .ok_or("record without fields")?;
                    let mut out = Vec::with_capacity(fields.len());
                    for f in fields {
                        let name = f
                            .get("name")
                            .and_then(Json::as_str)
                            .ok_or("field without name")?;
                        let t = f.get("type").ok_or("field without type")?;
                        out.push((name.to_string(), parse_schema(t, names)?));
                    }
                    Schema::Record(out)
                }
                "enum" => Schema::Enum,
                "array" => Schema::Array(Box::new(parse_schema(
                    o.get("items").ok_or("array without items")?,
                    names,
                )?)),
                "map" => Schema::Map(Box::new(parse_schema(
                    o.get("values").ok_or("map without values")?,
                    names,
                )?)),
                "fixed" => Schema::Fixed(
                    o.get("size")
                        .and_then(Json::as_u64)
                        .ok_or("fixed without size")? as usize,
                ),
                other => by_name(other, names)?,
            };
            if matches!(ty.as_str(), "record" | "error" | "enum" | "fixed")
                && let Some(name) = o.get("name").and_then(Json::as_str)
            {
                names.insert(name.to_string(), schema.clone());
                if let Some(ns) = o.get("namespace").and_then(Json::as_str) {
                    names.insert(format!("{ns}.{name}"), schema.clone());
                }
            }
            Ok(schema)
        }
        _ => Err("malformed Avro schema".into()),
    }
}

/// A primitive type or a named type defined earlier in the schema.
fn by_name(name: &str, names: &HashMap<String, Schema>) -> R<Schema> {
    primitive(name)
        .or_else(|| names.get(name).cloned())
        .ok_or_else(|| format!("unknown Avro type `{name}`"))
}

fn primitive(name: &str) -> Option<Schema> {
    Some(match name {
        "null" => Schema::Null,
        "boolean" => Schema::Boolean,
        "int" => Schema::Int,
        "long" => Schema::Long,
        "float" => Schema::Float,
        "double" => Schema::Double,
        "bytes" => Schema::Bytes,
        "string" => Schema::String,
        _ => return None,
    })
}

/// Append `v` as an Avro `int`/`long` (zigzag varint).
pub(super) fn put_long(buf: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Append `b` as Avro `bytes`/`string` (length, then the bytes).
pub(super) fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_long(buf, b.len() as i64);
    buf.extend_from_slice(b);
}

/// A reader of Avro binary data.
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Everything was read.
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn long(&mut self) -> R<i64> {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self.buf.get(self.pos).ok_or("truncated Avro data")?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err("Avro varint too long".into());
            }
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    pub(super) fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or("Avro length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("truncated Avro data")?;
        self.pos = end;
        Ok(s)
    }

    pub(super) fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| "negative Avro length")?;
        self.take(n)
    }

    fn string(&mut self) -> R<String> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_string)
            .map_err(|_| "invalid UTF-8 in Avro string".into())
    }

    /// Walk the blocks of an array or map, calling `item` once per element.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count.checked_neg().ok_or("Avro block count out of range")?;
                self.long()?; // block size in bytes
            }
            // Every element of a manifest's arrays and maps takes at least one byte: a larger
            // count is corrupt data (and must not spin through billions of empty elements).
            if count as u64 > (self.buf.len() - self.pos) as u64 {
                return Err("Avro block count exceeds the data".into());
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    fn skip(&mut self, s: &Schema) -> R<()> {
        match s {
            Schema::Null => Ok(()),
            Schema::Boolean => self.take(1).map(drop),
            Schema::Int | Schema::Long | Schema::Enum => self.long().map(drop),
            Schema::Float => self.take(4).map(drop),
            Schema::Double => self.take(8).map(drop),
            Schema::Bytes | Schema::String => self.bytes().map(drop),
            Schema::Fixed(n) => self.take(*n).map(drop),
            Schema::Array(items) => self.blocks(|c| c.skip(items)),
            Schema::Map(values) => self.blocks(|c| {
                c.bytes()?;
                c.skip(values)
            }),
            Schema::Union(branches) => {
                let b = self.branch(branches)?;
                self.skip(b)
            }
            Schema::Record(fields) => fields.iter().try_for_each(|(_, f)| self.skip(f)),
        }
    }

    fn branch<'s>(&mut self, branches: &'s [Schema]) -> R<&'s Schema> {
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| branches.get(i))
            .ok_or_else(|| format!("Avro union branch {i} out of range"))
    }

    /// A scalar: null, int/long, or string (through unions); other types are skipped.
    fn datum(&mut self, s: &Schema) -> R<PartitionDatum> {
        Ok(match s {
            Schema::Null => PartitionDatum::Null,
            Schema::Int | Schema::Long => PartitionDatum::Long(self.long()?),
            Schema::String => PartitionDatum::Str(self.string()?),
            Schema::Union(branches) => {
                let b = self.branch(branches)?;
                return self.datum(b);
            }
            other => {
                self.skip(other)?;
                PartitionDatum::Other
            }
        })
    }

    fn opt_long(&mut self, s: &Schema) -> R<Option<i64>> {
        Ok(match self.datum(s)? {
            PartitionDatum::Long(v) => Some(v),
            _ => None,
        })
    }

    /// An Iceberg int-keyed map (an Avro array of `{key: int, value: …}` records, possibly
    /// inside a `["null", …]` union): `value` is called with each key and the value's schema,
    /// and must consume the value.
    fn int_map(
        &mut self,
        s: &Schema,
        mut value: impl FnMut(&mut Self, i64, &Schema) -> R<()>,
    ) -> R<()> {
        match s {
            Schema::Union(branches) => {
                let b = self.branch(branches)?;
                self.int_map(b, value)
            }
            Schema::Null => Ok(()),
            Schema::Array(items) => {
                let Schema::Record(kv) = items.as_ref() else {
                    return self.skip(s);
                };
                let (key_at, value_at) = (
                    kv.iter().position(|(n, _)| n == "key"),
                    kv.iter().position(|(n, _)| n == "value"),
                );
                let (Some(key_at), Some(value_at)) = (key_at, value_at) else {
                    return self.skip(s);
                };
                self.blocks(|c| {
                    let mut key = None;
                    for (i, (_, fs)) in kv.iter().enumerate() {
                        if i == key_at {
                            key = c.opt_long(fs)?;
                        } else if i == value_at {
                            match key {
                                Some(k) => value(c, k, fs)?,
                                None => return Err("map value before its key".into()),
                            }
                        } else {
                            c.skip(fs)?;
                        }
                    }
                    Ok(())
                })
            }
            other => self.skip(other),
        }
    }

    /// Bytes (through unions); `None` for null, other types skipped.
    fn opt_bytes(&mut self, s: &Schema) -> R<Option<Vec<u8>>> {
        match s {
            Schema::Union(branches) => {
                let b = self.branch(branches)?;
                self.opt_bytes(b)
            }
            Schema::Bytes | Schema::String => Ok(Some(self.bytes()?.to_vec())),
            Schema::Fixed(n) => Ok(Some(self.take(*n)?.to_vec())),
            other => self.skip(other).map(|_| None),
        }
    }
}

/// The slot of field `key` among the requested statistics fields.
fn slot(stats_fields: &[i32], key: i64) -> Option<usize> {
    stats_fields.iter().position(|&f| i64::from(f) == key)
}

fn read_data_file(
    c: &mut Cursor,
    fields: &[(String, Schema)],
    stats_fields: &[i32],
    e: &mut EntryLite,
) -> R<()> {
    for (name, s) in fields {
        match name.as_str() {
            "content" => e.content = c.opt_long(s)?.unwrap_or(0) as i32,
            "file_path" => match c.datum(s)? {
                PartitionDatum::Str(p) => e.file_path = p,
                _ => return Err("data_file.file_path is not a string".into()),
            },
            "partition" => match s {
                Schema::Record(parts) => {
                    e.partition = parts.iter().map(|(_, p)| c.datum(p)).collect::<R<_>>()?;
                }
                _ => return Err("data_file.partition is not a record".into()),
            },
            "record_count" => e.record_count = c.opt_long(s)?.ok_or("no record_count")?,
            "file_size_in_bytes" => {
                e.file_size_in_bytes = c.opt_long(s)?.ok_or("no file_size_in_bytes")?
            }
            "value_counts" => c.int_map(s, |c, key, vs| {
                e.has_value_counts = true;
                let v = c.opt_long(vs)?;
                if let Some(i) = slot(stats_fields, key) {
                    e.stats[i].values = v;
                }
                Ok(())
            })?,
            "null_value_counts" => c.int_map(s, |c, key, vs| {
                let v = c.opt_long(vs)?;
                if let Some(i) = slot(stats_fields, key) {
                    e.stats[i].nulls = v;
                }
                Ok(())
            })?,
            "lower_bounds" | "upper_bounds" if !stats_fields.is_empty() => {
                let lower = name == "lower_bounds";
                c.int_map(s, |c, key, vs| match slot(stats_fields, key) {
                    Some(i) => {
                        let v = c.opt_bytes(vs)?;
                        if lower {
                            e.stats[i].lower = v;
                        } else {
                            e.stats[i].upper = v;
                        }
                        Ok(())
                    }
                    None => c.skip(vs),
                })?
            }
            _ => c.skip(s)?,
        }
    }
    Ok(())
}

/// One entry, projected, and where its `data_file` record lies in the block.
fn read_entry(
    c: &mut Cursor,
    fields: &[(String, Schema)],
    stats_fields: &[i32],
) -> R<(EntryLite, std::ops::Range<usize>)> {
    let mut e = EntryLite {
        status: -1,
        sequence_number: None,
        snapshot_id: None,
        file_sequence_number: None,
        content: 0,
        file_path: String::new(),
        partition: Vec::new(),
        record_count: 0,
        file_size_in_bytes: 0,
        has_value_counts: false,
        stats: vec![ColumnStats::default(); stats_fields.len()],
    };
    let mut data_file = 0..0;
    for (name, s) in fields {
        match (name.as_str(), s) {
            ("status", _) => e.status = c.opt_long(s)?.ok_or("no status")? as i32,
            ("sequence_number", _) => e.sequence_number = c.opt_long(s)?,
            ("file_sequence_number", _) => e.file_sequence_number = c.opt_long(s)?,
            ("snapshot_id", _) => e.snapshot_id = c.opt_long(s)?,
            ("data_file", Schema::Record(df)) => {
                let start = c.pos;
                read_data_file(c, df, stats_fields, &mut e)?;
                data_file = start..c.pos;
            }
            ("data_file", _) => return Err("data_file is not a record".into()),
            _ => c.skip(s)?,
        }
    }
    if e.status < 0 || e.file_path.is_empty() {
        return Err("manifest entry without status or file path".into());
    }
    Ok((e, data_file))
}

/// The header of an Avro object container file: its metadata and sync marker.
pub(super) struct Header<'a> {
    /// File metadata (`avro.schema`, `avro.codec`, the writer's own keys).
    pub(super) meta: HashMap<String, &'a [u8]>,
    /// The 16-byte sync marker that ends the header and every block.
    pub(super) sync: &'a [u8],
    /// Bytes up to and including the sync marker: where the first block starts.
    pub(super) len: usize,
}

impl<'a> Header<'a> {
    pub(super) fn parse(file: &'a [u8]) -> R<Self> {
        let mut c = Cursor { buf: file, pos: 0 };
        if c.take(4)? != b"Obj\x01" {
            return Err("not an Avro object container file".into());
        }
        let mut meta: HashMap<String, &[u8]> = HashMap::new();
        c.blocks(|c| {
            let k = c.string()?;
            let v = c.bytes()?;
            meta.insert(k, v);
            Ok(())
        })?;
        let sync = c.take(16)?;
        Ok(Self {
            meta,
            sync,
            len: c.pos,
        })
    }

    /// The writer's schema.
    pub(super) fn schema(&self) -> R<Schema> {
        parse_schema(&self.schema_json()?, &mut HashMap::new())
    }

    /// The writer's schema as JSON.
    pub(super) fn schema_json(&self) -> R<Json> {
        serde_json::from_slice(self.meta.get("avro.schema").ok_or("no schema")?)
            .map_err(|e| format!("Avro schema: {e}"))
    }

    /// The codec (`null` when the file names none).
    pub(super) fn codec(&self) -> String {
        self.meta
            .get("avro.codec")
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_else(|| "null".into())
    }
}

/// Every entry of a manifest file (live and deleted), projected, with the statistics of the
/// field ids `stats_fields`.
pub fn read_manifest_entries(file: &[u8], stats_fields: &[i32]) -> R<Vec<EntryLite>> {
    let header = Header::parse(file)?;
    let Schema::Record(fields) = header.schema()? else {
        return Err("manifest schema is not a record".into());
    };
    let mut entries = Vec::new();
    for_each_block(file, &header, |block, count| {
        for _ in 0..count {
            entries.push(read_entry(block, &fields, stats_fields)?.0);
        }
        Ok(())
    })?;
    Ok(entries)
}

/// Every entry of a manifest file, projected (no statistics), with the bytes of its
/// `data_file` record exactly as written: for a rewrite that copies those bytes into a
/// manifest whose `data_file` schema is `data_file_schema` (the JSON of that field's type).
///
/// Declines (`Err`) a file whose `data_file` type is not that JSON value, or whose other entry
/// fields define named types (the copied bytes must mean the same under the new schema).
pub(super) fn for_each_entry_with_data_file(
    file: &[u8],
    data_file_schema: &Json,
    mut entry: impl FnMut(EntryLite, &[u8]) -> R<()>,
) -> R<()> {
    let header = Header::parse(file)?;
    let json = header.schema_json()?;
    let top = json
        .get("fields")
        .and_then(Json::as_array)
        .ok_or("manifest schema is not a record")?;
    for f in top {
        let ty = f.get("type").ok_or("field without type")?;
        if f.get("name").and_then(Json::as_str) == Some("data_file") {
            if ty != data_file_schema {
                return Err("the manifest's data_file schema differs from the new one".into());
            }
        } else if !defines_no_names(ty) {
            return Err("a manifest entry field defines a named type".into());
        }
    }
    let Schema::Record(fields) = parse_schema(&json, &mut HashMap::new())? else {
        return Err("manifest schema is not a record".into());
    };
    if !fields.iter().any(|(n, _)| n == "data_file") {
        return Err("manifest schema has no data_file".into());
    }
    for_each_block(file, &header, |block, count| {
        for _ in 0..count {
            let (e, span) = read_entry(block, &fields, &[])?;
            entry(e, &block.buf[span])?;
        }
        Ok(())
    })
}

/// A type given by primitive names only (a name or a union of names).
fn defines_no_names(ty: &Json) -> bool {
    match ty {
        Json::String(_) => true,
        Json::Array(branches) => branches.iter().all(Json::is_string),
        _ => false,
    }
}

/// Every data block of an Avro object container file (after `header`): `each` gets a cursor
/// over the block's (inflated) data and its object count.
fn for_each_block(
    file: &[u8],
    header: &Header,
    mut each: impl FnMut(&mut Cursor, i64) -> R<()>,
) -> R<()> {
    let (sync, codec) = (header.sync, header.codec());
    let mut c = Cursor {
        buf: file,
        pos: header.len,
    };
    let mut inflated = Vec::new();
    while c.pos < file.len() {
        let count = c.long()?;
        let size = usize::try_from(c.long()?).map_err(|_| "negative Avro block size")?;
        let raw = c.take(size)?;
        if c.take(16)? != sync {
            return Err("Avro sync marker mismatch".into());
        }
        let data: &[u8] = match codec.as_str() {
            "null" => raw,
            "deflate" => {
                inflated.clear();
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut inflated)
                    .map_err(|e| format!("deflate: {e}"))?;
                &inflated
            }
            other => return Err(format!("Avro codec `{other}` not supported here")),
        };
        each(&mut Cursor { buf: data, pos: 0 }, count)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints() {
        let mut c = Cursor {
            buf: &[0x00, 0x01, 0x02, 0x7f, 0x80, 0x01, 0xac, 0x02],
            pos: 0,
        };
        let got: Vec<i64> = (0..5).map(|_| c.long().unwrap()).collect();
        assert_eq!(got, [0, -1, 1, -64, 64]);
        assert_eq!(c.long().unwrap(), 150);
        assert!(c.long().is_err());
        let mut buf = Vec::new();
        for v in [0, -1, 1, -64, 64, 150, i64::MIN, i64::MAX] {
            put_long(&mut buf, v);
        }
        assert_eq!(&buf[..8], [0x00, 0x01, 0x02, 0x7f, 0x80, 0x01, 0xac, 0x02]);
        let mut c = Cursor { buf: &buf, pos: 0 };
        let got: Vec<i64> = (0..8).map(|_| c.long().unwrap()).collect();
        assert_eq!(got, [0, -1, 1, -64, 64, 150, i64::MIN, i64::MAX]);
        assert_eq!(c.pos, buf.len());
    }

    #[test]
    fn named_types_resolve() {
        let s: Json = serde_json::json!({"type": "record", "name": "a", "fields": [
            {"name": "x", "type": {"type": "fixed", "name": "f16", "size": 16}},
            {"name": "y", "type": ["null", "f16"]}
        ]});
        let Schema::Record(f) = parse_schema(&s, &mut HashMap::new()).unwrap() else {
            panic!("record expected")
        };
        assert!(matches!(&f[1].1, Schema::Union(b) if matches!(b[1], Schema::Fixed(16))));
        assert!(parse_schema(&serde_json::json!("nope"), &mut HashMap::new()).is_err());
    }

    #[test]
    fn a_corrupt_block_count_is_an_error_not_a_long_loop() {
        // An array of nulls claiming 2^40 elements in a 3-byte buffer.
        let mut buf = Vec::new();
        let mut v: u64 = (1u64 << 40) << 1; // zigzag of 2^40
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
        let mut c = Cursor { buf: &buf, pos: 0 };
        assert!(c.skip(&Schema::Array(Box::new(Schema::Null))).is_err());
    }

    #[test]
    fn rejects_non_avro_and_truncated_input() {
        assert!(read_manifest_entries(b"PAR1....", &[]).is_err());
        assert!(read_manifest_entries(b"Obj\x01\x02", &[]).is_err());
    }
}
