//! What decoding and encoding a warehouse's rows costs with parquet-rs alone: the floor under
//! `compact` (and the backfill reduce), which decode every input file and encode every output.
//!
//! Reads every `*.parquet` under DIR into memory, then, on one thread and three times each:
//! decodes them all (kept as Arrow batches, like a merge holds a bucket), writes each bucket
//! directory's batches as one file (buckets whose files differ in columns are skipped; zstd 1,
//! page statistics, like `GeoParquetWriter`), and reads the written files back.
//!
//!     cargo run --release --example merge_floor -- DIR
//!     env: DICT=0 (no dictionary encoding), CHUNK=N (write all rows as files of N rows instead
//!          of one per bucket), DECODER=ours (decode with `geoparquet::decode::decode_file`,
//!          as merges do, instead of parquet-rs's `ParquetRecordBatchReaderBuilder`)
//!
//! Used for the "floor" figures of the compaction benchmark in the README.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Instant;

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

#[path = "support/mod.rs"]
mod support;
use support::walk;

type Failure = Box<dyn std::error::Error>;

fn decode(bytes: &Bytes, ours: bool) -> Result<Vec<RecordBatch>, Failure> {
    if ours {
        return Ok(earthcatalog::geoparquet::decode::decode_file(
            bytes, 65_536,
        )?);
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?
        .with_batch_size(65_536)
        .build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

fn encode(batches: &[RecordBatch], dictionary: bool) -> Result<Vec<u8>, Failure> {
    let schema = batches[0].schema();
    let all = arrow_select::concat::concat_batches(&schema, batches)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(dictionary)
        .set_max_row_group_row_count(Some(65_536))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(props))?;
    writer.write(&all)?;
    writer.close()?;
    Ok(buf)
}

fn main() -> Result<(), Failure> {
    let dir = std::env::args().nth(1).ok_or("usage: merge_floor DIR")?;
    let dictionary = std::env::var("DICT").map_or(true, |v| v != "0");
    let chunk: Option<usize> = std::env::var("CHUNK").ok().and_then(|v| v.parse().ok());
    let ours = std::env::var("DECODER").as_deref() == Ok("ours");
    let mut paths = Vec::new();
    walk(std::path::Path::new(&dir), &mut paths)?;
    let mut files = Vec::new();
    for p in &paths {
        let bucket = p
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        files.push((bucket, Bytes::from(std::fs::read(p)?)));
    }
    for _ in 0..3 {
        let started = Instant::now();
        let mut buckets: BTreeMap<&str, Vec<RecordBatch>> = BTreeMap::new();
        let mut rows = 0;
        for (bucket, bytes) in &files {
            for batch in decode(bytes, ours)? {
                rows += batch.num_rows();
                buckets.entry(bucket).or_default().push(batch);
            }
        }
        let read = started.elapsed().as_secs_f64();
        let groups: Vec<Vec<RecordBatch>> = match chunk {
            None => buckets.into_values().collect(),
            Some(n) => {
                let Some(schema) = buckets.values().next().map(|b| b[0].schema()) else {
                    continue;
                };
                let same: Vec<RecordBatch> = buckets
                    .into_values()
                    .flatten()
                    .filter(|b| b.schema() == schema)
                    .collect();
                let all = arrow_select::concat::concat_batches(&schema, &same)?;
                (0..all.num_rows())
                    .step_by(n.max(1))
                    .map(|o| vec![all.slice(o, n.min(all.num_rows() - o))])
                    .collect()
            }
        };
        let started = Instant::now();
        let (mut written, mut out_rows, mut out_bytes) = (Vec::new(), 0, 0);
        for batches in &groups {
            let schema = batches[0].schema();
            if batches.iter().any(|b| b.schema() != schema) {
                continue;
            }
            let buf = encode(batches, dictionary)?;
            out_rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
            out_bytes += buf.len();
            written.push(Bytes::from(buf));
        }
        let write = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for bytes in &written {
            decode(bytes, ours)?;
        }
        let back = started.elapsed().as_secs_f64();
        println!(
            "read {} files, {rows} rows: {read:.2} s ({:.0} rows/s) | write {} files, {out_rows} rows, {out_bytes} bytes: {write:.2} s ({:.0} rows/s) | read back {back:.2} s",
            files.len(),
            rows as f64 / read,
            written.len(),
            out_rows as f64 / write,
        );
    }
    Ok(())
}
