//! Search results as Arrow record batches with the table's own columns: what the Python
//! package's `search_to_arrow` returns and what `search --format geoparquet` writes.
//!
//! Each item goes through the ingest parser ([`parse_item`]) and the file encoder, so a batch
//! holds exactly what a data file of the table would hold for the item (geometry as WKB with the
//! `geoarrow.wkb` extension, `assets`/`links`/`bbox` as JSON text, properties the table has no
//! column for in `properties_overflow`), with `grid_partition` null.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value as Json;

use super::{SearchRequest, Warehouse};
use crate::error::{Error, Result};
use crate::item::{Columns, ItemRow, ParseCounters, parse_item};
use crate::schema::{TableColumn, base_schema, table_columns};

/// Rows per batch of [`Warehouse::search_batches`] unless asked otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 10_000;

/// Turns search results into record batches of one table's columns.
#[derive(Debug)]
pub struct ItemEncoder {
    table: Arc<[TableColumn]>,
    columns: Columns,
    schema: SchemaRef,
    counters: ParseCounters,
}

impl ItemEncoder {
    /// An encoder for the columns of `wh`'s table (the base schema when it has none yet).
    pub fn for_warehouse(wh: &Warehouse) -> Result<Self> {
        let schema = match wh.table() {
            Some(t) => t.metadata().current_schema().as_ref().clone(),
            None => base_schema()?,
        };
        let table: Arc<[TableColumn]> = table_columns(&schema).into();
        let columns = Columns::new(&table);
        // The schema the batches are built with (the files' own, `geo` metadata included).
        let schema = crate::geoparquet::table_schema(&table).1;
        Ok(Self {
            table,
            columns,
            schema,
            counters: ParseCounters::default(),
        })
    }

    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The table's columns.
    pub fn table(&self) -> &[TableColumn] {
        &self.table
    }

    /// The parser's state, for a writer that encodes rows itself.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// One item as a row of the table.
    pub fn row(&mut self, item: &Json) -> Result<ItemRow> {
        let body = serde_json::to_vec(item).map_err(|e| Error::Parse {
            location: "a search result".into(),
            reason: e.to_string(),
        })?;
        self.row_of_json(&body)
    }

    /// One item given as STAC JSON text as a row of the table.
    pub fn row_of_json(&mut self, body: &[u8]) -> Result<ItemRow> {
        let (row, _) =
            parse_item(body, &self.columns, &mut self.counters).map_err(|e| Error::Parse {
                location: "a search result".into(),
                reason: format!("re-encoding it: {e}"),
            })?;
        Ok(row)
    }

    /// Items as one batch.
    pub fn encode(&mut self, items: &[Json]) -> Result<RecordBatch> {
        let rows = items
            .iter()
            .map(|item| self.row(item))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&ItemRow> = rows.iter().collect();
        crate::geoparquet::encode_rows(&refs, &self.columns, &self.table, "search results")
    }
}

impl Warehouse {
    /// [`Warehouse::search`] as record batches of up to `batch_rows` items (at least 1) with
    /// the table's columns; the schema is known before the first batch.
    pub async fn search_batches(
        &self,
        request: &SearchRequest,
        batch_rows: usize,
    ) -> Result<(SchemaRef, BoxStream<'static, Result<RecordBatch>>)> {
        let mut encoder = ItemEncoder::for_warehouse(self)?;
        let schema = encoder.schema();
        // Items straight from the decoded columns to JSON text (no JSON value built) and parsed.
        let request = SearchRequest {
            json_text_members: true,
            ..request.clone()
        };
        let (items, _) = self.search_found(&request).await?;
        let mut body = Vec::new();
        let batches = items
            .chunks(batch_rows.max(1))
            .map(move |chunk| {
                let mut rows = Vec::with_capacity(chunk.len());
                for found in chunk {
                    body.clear();
                    found?.write_json(&mut body, None);
                    rows.push(encoder.row_of_json(&body)?);
                }
                let refs: Vec<&ItemRow> = rows.iter().collect();
                crate::geoparquet::encode_rows(
                    &refs,
                    &encoder.columns,
                    &encoder.table,
                    "search results",
                )
            })
            .boxed();
        Ok((schema, batches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_rows_of_the_table_with_their_ids_and_geometry() {
        let table: Arc<[TableColumn]> = table_columns(&base_schema().unwrap()).into();
        let mut encoder = ItemEncoder {
            columns: Columns::new(&table),
            schema: crate::geoparquet::table_schema(&table).1,
            table,
            counters: ParseCounters::default(),
        };
        let items: Vec<Json> = (0..3)
            .map(|i| {
                serde_json::json!({
                    "type": "Feature", "stac_version": "1.0.0", "id": format!("item-{i}"),
                    "geometry": {"type": "Point", "coordinates": [i as f64, 60.0]},
                    "properties": {"datetime": "2020-01-01T00:00:00Z", "platform": "LC08"},
                    "assets": {}, "links": []
                })
            })
            .collect();
        let batch = encoder.encode(&items).unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), encoder.schema());
        let ids = batch
            .column_by_name("id")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .cloned()
            })
            .unwrap();
        assert_eq!(ids.value(2), "item-2");
        let geometry = batch.column_by_name("geometry").unwrap();
        assert_eq!(geometry.null_count(), 0);
        assert!(encoder.encode(&[serde_json::json!({"no": "id"})]).is_err());
    }
}
