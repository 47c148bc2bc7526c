//! A page of items as stac-geoparquet: the table's own columns, written like the warehouse's
//! files (`earthcatalog search --format geoparquet` does the same for a whole search).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::geoparquet::{GeoParquetWriter, WriterOptions};
use crate::item::{Columns, ItemRow, ParseCounters, parse_item};
use crate::query::Warehouse;
use crate::schema::{base_schema, table_columns};

/// A `Write` sink whose bytes stay reachable after the writer that owns it is consumed.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut v) => v.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encode `items` (rehydrated STAC JSON) as one GeoParquet file in memory.
pub(super) fn encode(wh: &Warehouse, items: &[Json]) -> Result<Vec<u8>> {
    let schema = match wh.table() {
        Some(t) => t.metadata().current_schema().as_ref().clone(),
        None => base_schema()?,
    };
    let table = table_columns(&schema);
    let columns = Columns::new(&table);
    let sink = Shared::default();
    let mut writer =
        GeoParquetWriter::try_new(sink.clone(), &table, &WriterOptions::default(), "response")?;
    let mut counters = ParseCounters::default();
    let mut rows: Vec<ItemRow> = Vec::with_capacity(items.len());
    for item in items {
        let mut body = Vec::new();
        crate::query::write_item(&mut body, item).map_err(|e| Error::Parse {
            location: "a search result".into(),
            reason: e.to_string(),
        })?;
        let (row, _) = parse_item(&body, &columns, &mut counters).map_err(|e| Error::Parse {
            location: "a search result".into(),
            reason: format!("re-encoding it as GeoParquet: {e}"),
        })?;
        rows.push(row);
    }
    if !rows.is_empty() {
        let refs: Vec<&ItemRow> = rows.iter().collect();
        writer.write(&refs, None, &columns)?;
    }
    writer.finish()?;
    let bytes = match sink.0.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    Ok(bytes)
}
