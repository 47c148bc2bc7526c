//! A lower bound on what any merge of a warehouse's files into one zstd GeoParquet file per
//! bucket costs, whatever its decoder and encoder: only the work the file format itself makes
//! unavoidable, each part done the cheapest way, on one thread.
//!
//! Copies DIR to SCRATCH (not timed), then, bucket (directory) by bucket as a merge goes,
//! times in process CPU seconds:
//! - `read`: the bucket's files, `std::fs::read` (no object store, no runtime);
//! - `footers`: parsing each file's footer (parquet-rs, page-encoding and size statistics
//!   skipped, as merges parse them);
//! - `decompress`: every page header of every column chunk parsed and every zstd page
//!   decompressed with one reused context (the bytes any decoder must look at);
//! - `compress`: per column, the decompressed pages of all the bucket's files concatenated
//!   and compressed at zstd level 1 with one reused context (about the bytes the merged file's
//!   column chunk holds: the same values and levels, before dictionary encoding);
//! - `write`: one file of the compressed bytes; `delete`: the bucket's input files.
//!
//! With `STORE=object_store`, reads, writes and deletes go instead through `object_store`'s
//! `LocalFileSystem` on a tokio runtime (two workers, 32 requests in flight), as `compact`
//! does them. `ROUNDS=N` repeats it in one process (default 1: a fresh process, as a run is).
//!
//! No sorting, no dedup, no Arrow arrays, no page encoding, no statistics, no catalog commit.
//! The sum is what `compact` (or `backfill reduce`) would cost if everything else were free:
//! rows ÷ that sum bounds its rows per CPU-second on this machine.
//!
//!     cargo run --release --example merge_bound -- DIR SCRATCH
//!
//! Used for the "bound" figures of the compaction benchmark in the README.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::column::page::PageReader;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::serialized_reader::SerializedPageReader;

#[path = "support/mod.rs"]
mod support;
use support::walk;

type Failure = Box<dyn std::error::Error>;

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

/// The footer, parsed as merges parse it.
fn footer(bytes: &Bytes) -> Result<ParquetMetaData, Failure> {
    Ok(earthcatalog::geoparquet::decode::parse_footer(bytes)?)
}

/// Every page of `meta`'s file decompressed, appended per column to `columns`.
fn decompress(
    bytes: &Bytes,
    meta: &ParquetMetaData,
    dctx: &mut zstd::bulk::Decompressor<'static>,
    columns: &mut Vec<Vec<u8>>,
) -> Result<usize, Failure> {
    let mut rows = 0;
    for rg in meta.row_groups() {
        rows += usize::try_from(rg.num_rows())?;
        if columns.len() < rg.num_columns() {
            columns.resize_with(rg.num_columns(), Vec::new);
        }
        for (i, column) in rg.columns().iter().enumerate() {
            let zstd = matches!(column.compression(), Compression::ZSTD(_));
            let raw = column
                .clone()
                .into_builder()
                .set_compression(Compression::UNCOMPRESSED)
                .build()?;
            let mut pages = SerializedPageReader::new(
                std::sync::Arc::new(bytes.clone()),
                &raw,
                usize::try_from(rg.num_rows())?,
                None,
            )?;
            // Whole pages are decompressed: the warehouse's pages are v1 (no uncompressed
            // level prefix).
            while let Some(page) = pages.get_next_page()? {
                let buf = page.buffer();
                if zstd && !buf.is_empty() {
                    // The frame records its size; a guess for one that does not.
                    let size = zstd::zstd_safe::get_frame_content_size(buf)
                        .ok()
                        .flatten()
                        .map_or(buf.len() * 8, |s| s as usize);
                    columns[i].extend_from_slice(&dctx.decompress(buf, size)?);
                } else {
                    columns[i].extend_from_slice(buf);
                }
            }
        }
    }
    Ok(rows)
}

/// This process's CPU seconds so far, all threads (`CLOCK_PROCESS_CPUTIME_ID`).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// `f`'s process CPU seconds.
fn cpu<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<(T, f64), Failure> {
    let before = cpu_seconds();
    let value = f()?;
    Ok((value, cpu_seconds() - before))
}

/// Every file of `paths`, through `object_store`, 32 requests in flight.
fn store_read(rt: &tokio::runtime::Runtime, paths: &[PathBuf]) -> Result<Vec<Bytes>, Failure> {
    use futures::{StreamExt, TryStreamExt};
    let store = object_store::local::LocalFileSystem::new();
    rt.block_on(
        futures::stream::iter(paths)
            .map(|p| {
                let store = &store;
                async move {
                    use object_store::ObjectStoreExt;
                    let path = object_store::path::Path::from_absolute_path(p)?;
                    Ok::<_, Failure>(store.get(&path).await?.bytes().await?)
                }
            })
            .buffered(32)
            .try_collect(),
    )
}

/// Each of `files` written (`Some`) or deleted (`None`) through `object_store`, 32 in flight.
fn store_write(
    rt: &tokio::runtime::Runtime,
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
) -> Result<(), Failure> {
    use futures::{StreamExt, TryStreamExt};
    let store = object_store::local::LocalFileSystem::new();
    rt.block_on(
        futures::stream::iter(files)
            .map(|(p, data)| {
                let store = &store;
                async move {
                    use object_store::ObjectStoreExt;
                    let path = object_store::path::Path::from_absolute_path(&p)?;
                    match data {
                        Some(data) => drop(store.put(&path, data.into()).await?),
                        None => store.delete(&path).await?,
                    }
                    Ok::<_, Failure>(())
                }
            })
            .buffer_unordered(32)
            .try_collect(),
    )
}

/// [`store_read`] on this thread, outside any runtime.
fn store_read_inline(paths: &[PathBuf]) -> Result<Vec<Bytes>, Failure> {
    use object_store::ObjectStoreExt;
    let store = object_store::local::LocalFileSystem::new();
    let read = |p: &PathBuf| {
        let path = object_store::path::Path::from_absolute_path(p)?;
        futures::executor::block_on(async { Ok(store.get(&path).await?.bytes().await?) })
    };
    paths.iter().map(read).collect()
}

/// [`store_write`] on this thread, outside any runtime.
fn store_write_inline(files: Vec<(PathBuf, Option<Vec<u8>>)>) -> Result<(), Failure> {
    use object_store::ObjectStoreExt;
    let store = object_store::local::LocalFileSystem::new();
    for (p, data) in files {
        let path = object_store::path::Path::from_absolute_path(&p)?;
        futures::executor::block_on(async {
            match data {
                Some(data) => drop(store.put(&path, data.into()).await?),
                None => store.delete(&path).await?,
            }
            Ok::<_, Failure>(())
        })?;
    }
    Ok(())
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(scratch)) = (args.next(), args.next()) else {
        return Err("usage: merge_bound DIR SCRATCH".into());
    };
    let scratch = PathBuf::from(scratch);
    let rt = match std::env::var("STORE").as_deref() {
        Ok("object_store") => Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
        ),
        _ => None,
    };
    // `LocalFileSystem` runs its blocking calls inline when no tokio runtime is entered.
    let inline = std::env::var("STORE").as_deref() == Ok("inline");
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..rounds {
        let _ = std::fs::remove_dir_all(&scratch);
        let copy = scratch.join("in");
        let out = scratch.join("out");
        copy_tree(Path::new(&dir), &copy)?;
        std::fs::create_dir_all(&out)?;
        let mut paths = Vec::new();
        walk(&copy, &mut paths)?;
        let mut buckets: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for p in paths {
            let bucket = p.parent().map(Path::to_path_buf).unwrap_or_default();
            buckets.entry(bucket).or_default().push(p);
        }

        let mut dctx = zstd::bulk::Decompressor::new()?;
        let mut cctx = zstd::bulk::Compressor::new(1)?;
        let [
            mut read,
            mut footers,
            mut decompressed,
            mut compressed,
            mut written,
            mut deleted,
        ] = [0.0; 6];
        let (mut files, mut rows, mut raw, mut out_bytes) = (0, 0, 0, 0);
        let started = cpu_seconds();
        for (n, inputs) in buckets.values().enumerate() {
            files += inputs.len();
            let (bytes, t) = cpu(|| match &rt {
                Some(rt) => store_read(rt, inputs),
                None if inline => store_read_inline(inputs),
                None => Ok((inputs.iter())
                    .map(|p| std::fs::read(p).map(Bytes::from))
                    .collect::<Result<_, _>>()?),
            })?;
            read += t;
            let (metas, t) = cpu(|| bytes.iter().map(footer).collect::<Result<Vec<_>, _>>())?;
            footers += t;
            let (columns, t) = cpu(|| {
                let mut columns = Vec::new();
                for (bytes, meta) in bytes.iter().zip(&metas) {
                    rows += decompress(bytes, meta, &mut dctx, &mut columns)?;
                }
                Ok(columns)
            })?;
            decompressed += t;
            raw += columns.iter().map(Vec::len).sum::<usize>();
            let (file, t) = cpu(|| {
                let mut file = Vec::new();
                for column in &columns {
                    file.extend_from_slice(&cctx.compress(column)?);
                }
                Ok(file)
            })?;
            compressed += t;
            out_bytes += file.len();
            let path = out.join(format!("{n}.parquet"));
            written += cpu(|| match &rt {
                Some(rt) => store_write(rt, vec![(path, Some(file))]),
                None if inline => store_write_inline(vec![(path, Some(file))]),
                None => Ok(std::fs::write(&path, &file)?),
            })?
            .1;
            deleted += cpu(|| match &rt {
                Some(rt) => store_write(rt, inputs.iter().map(|p| (p.clone(), None)).collect()),
                None if inline => {
                    store_write_inline(inputs.iter().map(|p| (p.clone(), None)).collect())
                }
                None => inputs.iter().try_for_each(|p| Ok(std::fs::remove_file(p)?)),
            })?
            .1;
        }
        let total = cpu_seconds() - started;
        let sum = read + footers + decompressed + compressed + written + deleted;
        println!(
            "{files} files, {rows} rows, {} buckets, {raw} bytes decompressed, {out_bytes} \
             compressed | CPU s: read {read:.2} footers {footers:.2} decompress \
             {decompressed:.2} compress {compressed:.2} write {written:.2} delete {deleted:.2} | \
             sum {sum:.2} (process {total:.2}): at most {:.0} rows per CPU-second",
            buckets.len(),
            rows as f64 / sum,
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
