//! CSV and gzip CSV inventory files.
//!
//! The object's bytes arrive as `object_store` chunks on the async side and are forwarded over a
//! small bounded channel to a blocking thread, where a [`std::io::Read`] adapter feeds the gzip
//! decoder (for `.gz`) and the `csv` parser. Kept records go back in batches over the bounded
//! output channel. At no point is more than a few chunks and a few batches held in memory.
//!
//! Before parsing, the first [`SNIFF_BYTES`] are checked: a `.gz` file must start with the
//! gzip magic bytes, and the (decompressed) text must not contain a NUL byte — CSV inventories
//! are text, and a NUL is how git and ripgrep recognise binary data.

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::sync::mpsc;

use super::{
    Admit, Batcher, FileRows, Filter, Flow, InventoryEntry, InventoryRecord, Message, RowPosition,
    Sink, excerpt, not_an_inventory,
};
use crate::error::{Error, Result};
use crate::store::Location;

/// How many object-store chunks may wait for the parser.
const CHUNK_QUEUE: usize = 4;

/// How many bytes at the start of a file are checked for gzip magic and binary content.
const SNIFF_BYTES: usize = 8192;

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How to read one CSV file.
#[derive(Debug, Clone, Copy)]
pub(super) struct CsvOptions {
    /// The file is gzip-compressed (possibly several concatenated members).
    pub(super) gzip: bool,
    /// Where the bucket, key and last-modified columns are.
    pub(super) columns: Columns,
    /// Percent-decode keys (AWS CSV inventory data files).
    pub(super) url_decode_keys: bool,
}

/// Column positions: detected from an optional header row, or fixed by a manifest's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Columns {
    /// A header row is recognised by its first field `bucket`; otherwise [`Layout::DEFAULT`].
    Detect,
    /// No header row; these positions.
    Fixed(Layout),
}

/// Positions of the columns we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) bucket: usize,
    pub(super) key: usize,
    pub(super) last_modified: Option<usize>,
    pub(super) size: Option<usize>,
}

impl Layout {
    /// Bucket in column 0, key in column 1, no last-modified column.
    pub(super) const DEFAULT: Layout = Layout {
        bucket: 0,
        key: 1,
        last_modified: None,
        size: None,
    };
}

/// Positions of `bucket`, `key` and `last_modified_date` among column `names`, compared without
/// case and ignoring non-alphanumeric characters (`LastModifiedDate` = `last_modified_date`).
pub(super) fn find_columns<'a>(names: impl IntoIterator<Item = &'a str>) -> FoundColumns {
    let (mut bucket, mut key, mut lm, mut size) = (None, None, None, None);
    for (i, name) in names.into_iter().enumerate() {
        let norm: String = name
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        let slot = match norm.as_str() {
            "bucket" => &mut bucket,
            "key" => &mut key,
            "lastmodifieddate" => &mut lm,
            "size" => &mut size,
            _ => continue,
        };
        slot.get_or_insert(i);
    }
    FoundColumns {
        bucket,
        key,
        last_modified: lm,
        size,
    }
}

/// Positions [`find_columns`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct FoundColumns {
    pub(super) bucket: Option<usize>,
    pub(super) key: Option<usize>,
    pub(super) last_modified: Option<usize>,
    pub(super) size: Option<usize>,
}

/// Read one CSV (or gzip CSV) file at `loc` through `filter` into `tx`.
pub(super) async fn read_csv(
    loc: &Location,
    opts: CsvOptions,
    filter: Arc<Filter>,
    tx: &mpsc::Sender<Message>,
) -> Result<Flow> {
    let url = loc.url().to_string();
    let got = match loc.store().get(loc.prefix()).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Error::inventory(url, "file not found"));
        }
        Err(e) => return Err(Error::store(url, e)),
    };
    filter.file_opened();
    let mut chunks = got.into_stream();
    let (chunk_tx, chunk_rx) = mpsc::channel(CHUNK_QUEUE);
    let failure: Arc<Mutex<Option<object_store::Error>>> = Arc::default();
    let parser = tokio::task::spawn_blocking({
        let failure = failure.clone();
        let url = url.clone();
        let mut sink = ChannelSink(Batcher::new(tx.clone()));
        move || {
            let reader = ChunkReader {
                rx: chunk_rx,
                current: Bytes::new(),
                failure,
            };
            let result = parse(reader, opts, &filter, &mut sink, &url);
            // Records read before an error are still delivered, ahead of the error.
            let flushed = sink.0.blocking_flush();
            result.map(|flow| {
                if flushed == Flow::Stop {
                    Flow::Stop
                } else {
                    flow
                }
            })
        }
    });
    while let Some(chunk) = chunks.next().await {
        let failed = chunk.is_err();
        if chunk_tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(chunk_tx);
    let result = parser
        .await
        .map_err(|e| Error::inventory(&url, format!("CSV reader stopped: {e}")))?;
    match result {
        Err(e) => match lock(&failure).take() {
            Some(store_error) => Err(Error::store(url, store_error)),
            None => Err(e),
        },
        ok => ok,
    }
}

/// Sends batches over the stream's channel from the blocking thread.
struct ChannelSink(Batcher);

impl Sink for ChannelSink {
    fn push(&mut self, entry: InventoryEntry) -> Flow {
        self.0.buf.push(entry);
        if self.0.full() {
            self.0.blocking_flush()
        } else {
            Flow::Continue
        }
    }
}

/// Parse CSV bytes from `reader` (blocking). Never panics, whatever the bytes.
///
/// Entries go to `sink`: kept records, and malformed rows (with their line) once the file has
/// shown a usable row. A file that cannot be an inventory is an error (see the module docs).
pub(super) fn parse<R: Read>(
    mut reader: R,
    opts: CsvOptions,
    filter: &Filter,
    sink: &mut impl Sink,
    url: &str,
) -> Result<Flow> {
    let what = if opts.gzip { "gzip CSV" } else { "CSV" };
    let read_error =
        |e: std::io::Error| Error::inventory(url, format!("cannot read {what} data: {e}"));
    let raw_head = read_head(&mut reader, SNIFF_BYTES).map_err(read_error)?;
    let reader: Box<dyn Read> = if opts.gzip {
        if raw_head.is_empty() {
            return Ok(Flow::Continue);
        }
        if !raw_head.starts_with(&GZIP_MAGIC) {
            return Err(not_an_inventory(
                url,
                format!(
                    "not gzip data (it does not start with the gzip magic bytes 1f 8b){}",
                    looks_like(&raw_head)
                ),
            ));
        }
        let mut decoder = MultiGzDecoder::new(Cursor::new(raw_head).chain(reader));
        let head = read_head(&mut decoder, SNIFF_BYTES).map_err(read_error)?;
        check_text(&head, url, "gzip data whose content is")?;
        Box::new(Cursor::new(head).chain(decoder))
    } else {
        check_text(&raw_head, url, "")?;
        Box::new(Cursor::new(raw_head).chain(reader))
    };
    let mut csv = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(Tail::new(reader));
    let mut layout = match opts.columns {
        Columns::Fixed(layout) => Some(layout),
        Columns::Detect => None,
    };
    let mut rows = FileRows::new(url);
    let mut record = ::csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return rows.finish().map(|()| Flow::Continue),
            Err(e) => {
                return Err(Error::inventory(
                    url,
                    format!("cannot read {what} data: {e}"),
                ));
            }
        }
        if record.iter().all(|f| clean(f).is_empty()) {
            continue;
        }
        let layout = match layout {
            Some(layout) => layout,
            None => {
                let (detected, is_header) = detect_header(&record, url)?;
                layout = Some(detected);
                if is_header {
                    continue;
                }
                detected
            }
        };
        let (bucket, key) = match fields(&record, layout, opts.url_decode_keys) {
            Ok(found) => found,
            Err(problem) => {
                filter.malformed();
                let line = start_line(&csv, &record);
                let problem = format!("{problem}: {}", excerpt(&row_text(&record)));
                if rows.malformed(RowPosition::Line(line), problem, sink) == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                continue;
            }
        };
        if rows.usable(sink) == Flow::Stop {
            return Ok(Flow::Stop);
        }
        let (admit, last_modified) = filter.admit(&key, || {
            layout
                .last_modified
                .and_then(|i| record.get(i))
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(crate::timestamp::parse_utc)
        });
        if admit == Admit::Skip {
            continue;
        }
        let size = layout
            .size
            .and_then(|i| record.get(i))
            .and_then(|f| std::str::from_utf8(clean(f)).ok())
            .and_then(|f| f.parse::<u64>().ok());
        let flow = sink.push(InventoryEntry::Record(InventoryRecord {
            bucket: bucket.to_string(),
            key: key.into_owned(),
            size,
            last_modified,
        }));
        if admit == Admit::KeepLast || flow == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
}

/// The 1-based line on which the `record` just read starts.
///
/// The `csv` crate's own record position points at the start of any blank lines it skipped
/// before the record, so the line is computed backwards from the reader's position after the
/// record: minus the newlines inside its fields, minus its terminator when that was a `\n`
/// (a `\r\n` terminator stops at the `\r`; the last record may have none).
fn start_line<R: Read>(csv: &::csv::Reader<Tail<R>>, record: &::csv::ByteRecord) -> u64 {
    let after = csv.position();
    let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
    let terminator = after
        .byte()
        .checked_sub(1)
        .and_then(|last| csv.get_ref().byte_at(last))
        .is_some_and(|b| b == b'\n');
    after
        .line()
        .saturating_sub(inside + u64::from(terminator))
        .max(1)
}

/// How many of the last bytes read a [`Tail`] remembers; more than the `csv` reader's buffer
/// (8 KiB), which is how far it reads ahead of what it has parsed.
const TAIL_BYTES: usize = 64 * 1024;

/// A reader that remembers the last [`TAIL_BYTES`] bytes it read, by offset.
struct Tail<R> {
    inner: R,
    ring: Vec<u8>,
    read: u64,
}

impl<R> Tail<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            ring: vec![0; TAIL_BYTES],
            read: 0,
        }
    }

    /// The byte at `offset` from the start, if it was read recently enough to be remembered.
    fn byte_at(&self, offset: u64) -> Option<u8> {
        let recent = offset < self.read && self.read - offset <= TAIL_BYTES as u64;
        recent
            .then(|| {
                self.ring
                    .get((offset % TAIL_BYTES as u64) as usize)
                    .copied()
            })
            .flatten()
    }
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf.iter().take(n).enumerate() {
            let at = ((self.read + i as u64) % TAIL_BYTES as u64) as usize;
            if let Some(slot) = self.ring.get_mut(at) {
                *slot = b;
            }
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// The bucket and key of a data row, or what is wrong with them.
fn fields(
    record: &::csv::ByteRecord,
    layout: Layout,
    url_decode_keys: bool,
) -> std::result::Result<(&str, Cow<'_, str>), String> {
    let (Some(bucket), Some(key)) = (record.get(layout.bucket), record.get(layout.key)) else {
        return Err(format!(
            "{} field(s), need a bucket (column {}) and a key (column {})",
            record.len(),
            layout.bucket + 1,
            layout.key + 1
        ));
    };
    let bucket = std::str::from_utf8(clean(bucket)).map_err(|_| "bucket is not UTF-8")?;
    let key = if url_decode_keys {
        url_decode(key)
            .map(Cow::Owned)
            .ok_or("key is not UTF-8 after URL-decoding")?
    } else {
        Cow::Borrowed(std::str::from_utf8(key).map_err(|_| "key is not UTF-8")?)
    };
    if key.is_empty() {
        return Err("empty key".to_string());
    }
    if bucket.is_empty() {
        return Err("empty bucket".to_string());
    }
    Ok((bucket, key))
}

/// A row's fields joined by commas (lossy UTF-8), for messages.
fn row_text(record: &::csv::ByteRecord) -> String {
    let fields: Vec<Cow<'_, str>> = record.iter().map(String::from_utf8_lossy).collect();
    fields.join(",")
}

/// Up to `n` bytes from the start of `reader` (fewer only at the end of the data).
fn read_head(reader: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// An error when `head`, the start of the CSV text, is binary (contains a NUL byte).
fn check_text(head: &[u8], url: &str, prefix: &str) -> Result<()> {
    match head.iter().position(|&b| b == 0) {
        None => Ok(()),
        Some(offset) => {
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix} ")
            };
            Err(not_an_inventory(
                url,
                format!(
                    "{prefix}binary data, not CSV text (a NUL byte at offset {offset}){}",
                    looks_like(head)
                ),
            ))
        }
    }
}

/// A hint naming the format the bytes of a misnamed file look like, or "".
fn looks_like(head: &[u8]) -> &'static str {
    if head.starts_with(b"PAR1") {
        "; it looks like a Parquet file: Parquet inventories must be named *.parquet"
    } else if head.starts_with(&GZIP_MAGIC) {
        "; it looks like gzip data: gzip CSV inventories must be named *.gz"
    } else if head.starts_with(b"ORC") {
        "; it looks like an ORC file, which is not supported (use CSV or Parquet)"
    } else if !head.contains(&0) && std::str::from_utf8(head).is_ok() {
        "; it looks like plain text: a plain CSV inventory must not be named *.gz"
    } else {
        ""
    }
}

/// The layout implied by the first non-empty row, and whether that row is a header. A header
/// without a key column is an error.
fn detect_header(record: &::csv::ByteRecord, url: &str) -> Result<(Layout, bool)> {
    let first = record.get(0).map(clean).unwrap_or_default();
    if !first.eq_ignore_ascii_case(b"bucket") {
        return Ok((Layout::DEFAULT, false));
    }
    let names: Vec<Cow<'_, str>> = record
        .iter()
        .map(|f| String::from_utf8_lossy(clean(f)))
        .collect();
    let found = find_columns(names.iter().map(|n| n.as_ref()));
    let Some(key) = found.key else {
        return Err(not_an_inventory(
            url,
            format!(
                "the header row has no key column (columns: {})",
                names.join(", ")
            ),
        ));
    };
    let layout = Layout {
        bucket: 0,
        key,
        last_modified: found.last_modified,
        size: found.size,
    };
    Ok((layout, true))
}

/// A field without a UTF-8 byte-order mark and surrounding ASCII whitespace.
fn clean(field: &[u8]) -> &[u8] {
    let field = field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field);
    field.trim_ascii()
}

/// Decode `%XX` escapes and `+` (space), as AWS writes keys in CSV inventories. Invalid escapes
/// are kept literally; `None` when the result is not UTF-8.
pub(super) fn url_decode(field: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = field.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                let lo = field.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    // Two hex digits always fit in a byte.
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A blocking [`Read`] over object-store chunks arriving on a channel.
struct ChunkReader {
    rx: mpsc::Receiver<object_store::Result<Bytes>>,
    current: Bytes,
    failure: Arc<Mutex<Option<object_store::Error>>>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    let message = e.to_string();
                    *lock(&self.failure) = Some(e);
                    return Err(std::io::Error::other(message));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(&chunk);
        }
        Ok(n)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::test_support::*;
    use super::super::{Counters, HOLD_MALFORMED, InventoryOptions};
    use super::*;

    fn filter(options: InventoryOptions) -> Filter {
        Filter::new(options, Arc::new(Counters::default()))
    }

    fn parse_bytes(
        data: &[u8],
        opts: CsvOptions,
        options: InventoryOptions,
    ) -> Vec<InventoryRecord> {
        let f = filter(options);
        let mut out = Vec::new();
        parse(data, opts, &f, &mut out, "test.csv").unwrap();
        out
    }

    const PLAIN: CsvOptions = CsvOptions {
        gzip: false,
        columns: Columns::Detect,
        url_decode_keys: false,
    };

    #[tokio::test]
    async fn csv_without_header() {
        let url = format!("{}/inv.csv", memory_root("nohdr"));
        put(&url, "b1,a/one.stac.json\nb2,a/two.stac.json,extra\n").await;
        let (records, stats) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(
            records,
            vec![
                InventoryRecord {
                    bucket: "b1".into(),
                    key: "a/one.stac.json".into(),
                    size: None,
                    last_modified: None
                },
                InventoryRecord {
                    bucket: "b2".into(),
                    key: "a/two.stac.json".into(),
                    size: None,
                    last_modified: None
                },
            ]
        );
        assert_eq!(stats.files, 1);
        assert_eq!(stats.rows, 2);
        assert_eq!(stats.kept, 2);
    }

    #[tokio::test]
    async fn csv_with_header_and_last_modified_column() {
        let url = format!("{}/inv.csv", memory_root("hdr"));
        put(
            &url,
            "Bucket,size,Key,LAST_MODIFIED_DATE\n\
             b,10,x.stac.json,2024-01-02T00:00:00Z\n\
             b,11,y.stac.json,not a date\n",
        )
        .await;
        let (records, stats) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(keys(&records), ["x.stac.json", "y.stac.json"]);
        assert_eq!(records[0].bucket, "b");
        assert_eq!(records[0].last_modified, Some(utc("2024-01-02T00:00:00Z")));
        assert_eq!(records[1].last_modified, None);
        assert_eq!(stats.rows, 2, "the header is not a row");
    }

    #[tokio::test]
    async fn csv_gz_with_and_without_header() {
        let root = memory_root("gz");
        let with = format!("{root}/with.csv.gz");
        let without = format!("{root}/without.gz");
        put(&with, gzip(b"bucket,key\nb,k1.stac.json\nb,k2.stac.json\n")).await;
        put(&without, gzip(b"b,k1.stac.json\nb,k2.stac.json\n")).await;
        for url in [with, without] {
            let (records, stats) = collect(&url, InventoryOptions::default()).await;
            assert_eq!(keys(&records), ["k1.stac.json", "k2.stac.json"], "{url}");
            assert_eq!(stats.rows, 2, "{url}");
        }
    }

    #[tokio::test]
    async fn concatenated_gzip_members_are_all_read() {
        let url = format!("{}/multi.csv.gz", memory_root("multigz"));
        let mut data = gzip(b"b,k1.stac.json\n");
        data.extend(gzip(b"b,k2.stac.json\n"));
        put(&url, data).await;
        let (records, _) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(keys(&records), ["k1.stac.json", "k2.stac.json"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_csv_files_from_a_tempdir() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("inv.csv.gz");
        std::fs::write(&small, gzip(b"\n\nbucket,key\n\nb,k.stac.json\n")).unwrap();
        let (records, _) = collect(small.to_str().unwrap(), InventoryOptions::default()).await;
        assert_eq!(keys(&records), ["k.stac.json"]);
        // Many object-store chunks, plain and gzip.
        let body: String = (0..30_000)
            .map(|i| format!("b,dir/k{i}.stac.json\n"))
            .collect();
        let plain = dir.path().join("big.csv");
        let gz = dir.path().join("big.csv.gz");
        std::fs::write(&plain, &body).unwrap();
        std::fs::write(&gz, gzip(body.as_bytes())).unwrap();
        for path in [plain, gz] {
            let (records, stats) =
                collect(path.to_str().unwrap(), InventoryOptions::default()).await;
            assert_eq!(records.len(), 30_000);
            assert_eq!(records[29_999].key, "dir/k29999.stac.json");
            assert_eq!(stats.rows, 30_000);
        }
    }

    #[test]
    fn blank_lines_are_skipped_everywhere() {
        let data = b"\n\r\n  \nbucket,key\n\nb,k1.stac.json\r\n\r\n \t \nb,k2.stac.json\n\n";
        let f = filter(InventoryOptions::default());
        let mut out = Vec::new();
        parse(&data[..], PLAIN, &f, &mut out, "t").unwrap();
        assert_eq!(keys(&out), ["k1.stac.json", "k2.stac.json"]);
        let stats = f.counters.snapshot();
        assert_eq!(stats.rows, 2);
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn fully_quoted_fields() {
        let data = b"\"bucket\",\"key\",\"last_modified_date\"\n\
                     \"b\",\"a,b/c \"\"d\"\".stac.json\",\"2024-01-01T00:00:00Z\"\n\
                     \"b\",\"plain.stac.json\",\"\"\n";
        let out = parse_bytes(data, PLAIN, InventoryOptions::default());
        assert_eq!(keys(&out), ["a,b/c \"d\".stac.json", "plain.stac.json"]);
        assert_eq!(out[0].last_modified, Some(utc("2024-01-01T00:00:00Z")));
        assert_eq!(out[1].last_modified, None);
        let headerless = parse_bytes(
            b"\"b\",\"k.stac.json\"\n",
            PLAIN,
            InventoryOptions::default(),
        );
        assert_eq!(keys(&headerless), ["k.stac.json"]);
        assert_eq!(headerless[0].bucket, "b");
    }

    #[test]
    fn header_with_bom_is_detected() {
        let out = parse_bytes(
            b"\xEF\xBB\xBFbucket,key\nb,k.stac.json\n",
            PLAIN,
            InventoryOptions::default(),
        );
        assert_eq!(keys(&out), ["k.stac.json"]);
    }

    #[test]
    fn short_rows_are_malformed_not_errors() {
        let data = b"b,k1.stac.json\nlonely\nb,\n,k2.stac.json\nb,k3.stac.json\n";
        let f = filter(InventoryOptions::default());
        let mut out = Vec::new();
        parse(&data[..], PLAIN, &f, &mut out, "t").unwrap();
        assert_eq!(keys(&out), ["k1.stac.json", "k3.stac.json"]);
        let stats = f.counters.snapshot();
        assert_eq!(stats.malformed, 3);
        assert_eq!(stats.rows, 5);
        assert_eq!(stats.kept, 2);
    }

    #[test]
    fn non_utf8_keys_are_malformed() {
        let f = filter(InventoryOptions::default().with_suffix(""));
        let mut out = Vec::new();
        parse(&b"b,\xFF\xFE\nb,ok\n"[..], PLAIN, &f, &mut out, "t").unwrap();
        assert_eq!(keys(&out), ["ok"]);
        assert_eq!(f.counters.snapshot().malformed, 1);
    }

    #[test]
    fn suffix_filter_is_case_sensitive() {
        let data = b"b,a.stac.json\nb,b.STAC.JSON\nb,c.json\nb,d.stac.json.bak\n";
        let f = filter(InventoryOptions::default());
        let mut out = Vec::new();
        parse(&data[..], PLAIN, &f, &mut out, "t").unwrap();
        assert_eq!(keys(&out), ["a.stac.json"]);
        assert_eq!(f.counters.snapshot().skipped_suffix, 3);
        let other = parse_bytes(
            data,
            PLAIN,
            InventoryOptions::default().with_suffix(".json"),
        );
        assert_eq!(keys(&other), ["a.stac.json", "c.json"]);
    }

    #[test]
    fn since_is_inclusive_converts_offsets_and_fails_open() {
        let data = b"bucket,key,last_modified_date\n\
                     b,exact.stac.json,2024-01-01T00:00:00Z\n\
                     b,older.stac.json,2023-12-31T23:59:59Z\n\
                     b,newer.stac.json,2024-06-01\n\
                     b,offset-old.stac.json,2024-01-01T01:00:00+02:00\n\
                     b,offset-new.stac.json,2024-01-01T01:00:00-02:00\n\
                     b,naive.stac.json,2024-01-01 00:00:00\n\
                     b,garbage.stac.json,soon\n\
                     b,empty.stac.json,\n\
                     b,missing.stac.json\n\
                     b,skipped.txt,2020-01-01\n";
        let since = parse_since_for_test("2024-01-01T00:00:00Z");
        let f = filter(InventoryOptions::default().with_since(Some(since)));
        let mut out = Vec::new();
        parse(&data[..], PLAIN, &f, &mut out, "t").unwrap();
        assert_eq!(
            keys(&out),
            [
                "exact.stac.json",
                "newer.stac.json",
                "offset-new.stac.json",
                "naive.stac.json",
                "garbage.stac.json",
                "empty.stac.json",
                "missing.stac.json"
            ]
        );
        assert_eq!(out[2].last_modified, Some(utc("2024-01-01T03:00:00Z")));
        let stats = f.counters.snapshot();
        assert_eq!(stats.skipped_since, 2);
        assert_eq!(stats.since_unknown, 3);
        assert_eq!(stats.skipped_suffix, 1);
        assert_eq!(stats.kept, 7);
        assert_eq!(stats.rows, 10);
    }

    fn parse_since_for_test(s: &str) -> chrono::DateTime<chrono::Utc> {
        super::super::parse_since(s).unwrap()
    }

    #[test]
    fn since_without_header_keeps_everything_and_counts_it() {
        let data = b"b,k1.stac.json,2000-01-01\nb,k2.stac.json\n";
        let since = parse_since_for_test("2024-01-01");
        let f = filter(InventoryOptions::default().with_since(Some(since)));
        let mut out: Vec<InventoryRecord> = Vec::new();
        parse(&data[..], PLAIN, &f, &mut out, "t").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(f.counters.snapshot().since_unknown, 2);
    }

    #[test]
    fn fixed_columns_from_a_schema_skip_header_detection() {
        let layout = Layout {
            bucket: 0,
            key: 1,
            last_modified: Some(3),
            size: None,
        };
        let opts = CsvOptions {
            columns: Columns::Fixed(layout),
            ..PLAIN
        };
        let data = b"bucket,old.stac.json,1,2020-01-01T00:00:00.000Z\n\
                     bucket,new.stac.json,1,2024-05-01T00:00:00.000Z\n";
        let since = parse_since_for_test("2024-01-01");
        let out = parse_bytes(
            data,
            opts,
            InventoryOptions::default().with_since(Some(since)),
        );
        assert_eq!(keys(&out), ["new.stac.json"]);
        assert_eq!(out[0].bucket, "bucket");
    }

    #[test]
    fn url_decoding_of_aws_keys() {
        assert_eq!(
            url_decode(b"a/b%20c+d%2Be.stac.json").unwrap(),
            "a/b c d+e.stac.json"
        );
        assert_eq!(url_decode(b"caf%C3%A9").unwrap(), "café");
        assert_eq!(url_decode(b"100%").unwrap(), "100%");
        assert_eq!(url_decode(b"%zz%4").unwrap(), "%zz%4");
        assert_eq!(url_decode(b"%FF"), None);
        let opts = CsvOptions {
            url_decode_keys: true,
            ..PLAIN
        };
        let out = parse_bytes(b"b,x%3Ay.stac.json\n", opts, InventoryOptions::default());
        assert_eq!(keys(&out), ["x:y.stac.json"]);
        let raw = parse_bytes(b"b,x%3Ay.stac.json\n", PLAIN, InventoryOptions::default());
        assert_eq!(
            keys(&raw),
            ["x%3Ay.stac.json"],
            "plain CSV keys are used as written"
        );
    }

    #[tokio::test]
    async fn limit_stops_reading_early() {
        let url = format!("{}/big.csv", memory_root("limit"));
        let body: String = (0..100_000)
            .map(|i| {
                if i % 2 == 0 {
                    format!("b,k{i}.stac.json\n")
                } else {
                    format!("b,k{i}.txt\n")
                }
            })
            .collect();
        put(&url, body).await;
        let (records, stats) = collect(&url, InventoryOptions::default().with_limit(Some(3))).await;
        assert_eq!(
            keys(&records),
            ["k0.stac.json", "k2.stac.json", "k4.stac.json"]
        );
        assert_eq!(stats.kept, 3);
        assert!(stats.limited);
        assert_eq!(stats.rows, 5, "nothing after the last kept row is read");
        let (_, unlimited) = collect(&url, InventoryOptions::default()).await;
        assert!(!unlimited.limited);
        assert_eq!(unlimited.kept, 50_000);
    }

    #[tokio::test]
    async fn corrupt_gzip_is_an_error_naming_the_file() {
        let root = memory_root("badgz");
        let garbage = format!("{root}/garbage.csv.gz");
        put(&garbage, &b"this is not gzip at all\n"[..]).await;
        let err = first_error(&garbage, all()).await;
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains(&garbage), "{err}");

        // Damage after a valid gzip header is a read failure, not bad input.
        let mut damaged = gzip(b"b,k.stac.json\n");
        damaged.truncate(10);
        damaged.extend_from_slice(&[0xff; 32]);
        let damaged_url = format!("{root}/damaged.csv.gz");
        put(&damaged_url, damaged).await;
        let err = first_error(&damaged_url, all()).await;
        assert!(matches!(err, Error::Inventory { .. }), "{err}");
        assert!(err.to_string().contains(&damaged_url), "{err}");

        // A truncated file delivers the rows before the damage, then the error.
        let truncated = format!("{root}/truncated.csv.gz");
        let body: String = (0..50_000).map(|i| format!("b,k{i}.stac.json\n")).collect();
        let full = gzip(body.as_bytes());
        put(&truncated, full[..full.len() / 2].to_vec()).await;
        let mut stream = super::super::read_inventory(&truncated, all());
        let mut ok = 0;
        let mut err = None;
        while let Some(r) = stream.next().await {
            match r {
                Ok(_) => ok += 1,
                Err(e) => err = Some(e),
            }
        }
        let err = err.expect("truncated gzip must fail");
        assert!(err.to_string().contains("truncated.csv.gz"), "{err}");
        assert!(ok > 0 && ok < 50_000, "{ok}");
    }

    #[tokio::test]
    async fn empty_file_yields_nothing() {
        let url = format!("{}/empty.csv", memory_root("emptycsv"));
        put(&url, Vec::<u8>::new()).await;
        let (records, stats) = collect(&url, all()).await;
        assert!(records.is_empty());
        assert_eq!(stats.files, 1);
        assert_eq!(stats.rows, 0);
    }

    /// The error of parsing `data` as a whole file.
    fn parse_error(data: &[u8], opts: CsvOptions) -> Error {
        let f = filter(all());
        let mut out: Vec<InventoryEntry> = Vec::new();
        let err = parse(data, opts, &f, &mut out, "mem://inv").unwrap_err();
        assert!(
            out.is_empty(),
            "nothing may come out of a rejected file: {out:?}"
        );
        err
    }

    const GZ: CsvOptions = CsvOptions {
        gzip: true,
        columns: Columns::Detect,
        url_decode_keys: false,
    };

    #[test]
    fn binary_data_is_not_an_inventory() {
        // Random bytes (fixed seed): a NUL byte somewhere in the first 8 KiB.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let err = parse_error(&random, PLAIN);
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("--inventory") && msg.contains("mem://inv"),
            "{msg}"
        );
        assert!(msg.contains("binary data, not CSV text"), "{msg}");

        // A Parquet or gzip file under a CSV name says what it looks like.
        let parquet = b"PAR1\x15\x00\x15\x1c\x00 rest of a parquet file";
        let msg = parse_error(parquet, PLAIN).to_string();
        assert!(msg.contains("looks like a Parquet file"), "{msg}");
        let msg = parse_error(&gzip(b"b,k.stac.json\n"), PLAIN).to_string();
        assert!(msg.contains("looks like gzip"), "{msg}");

        // Gzip whose content is binary.
        let msg = parse_error(&gzip(&random), GZ).to_string();
        assert!(
            msg.contains("gzip data whose content is binary data"),
            "{msg}"
        );
    }

    #[test]
    fn gz_that_is_not_gzip_is_not_an_inventory() {
        let err = parse_error(b"bucket,key\nb,k.stac.json\n", GZ);
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("not gzip data"), "{msg}");
        assert!(msg.contains("looks like plain text"), "{msg}");
        let msg = parse_error(b"\x00\x01\x02binary", GZ).to_string();
        assert!(
            msg.contains("not gzip data") && !msg.contains("plain text"),
            "{msg}"
        );
        // An empty .gz is an empty inventory.
        let f = filter(all());
        let mut out: Vec<InventoryEntry> = Vec::new();
        assert_eq!(
            parse(&b""[..], GZ, &f, &mut out, "t").unwrap(),
            Flow::Continue
        );
        assert!(out.is_empty());
    }

    #[test]
    fn header_without_key_column_is_not_an_inventory() {
        let err = parse_error(b"Bucket,Size,ETag\nb,10,e\nb,11,f\n", PLAIN);
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("no key column"), "{msg}");
        assert!(msg.contains("Bucket, Size, ETag"), "{msg}");
    }

    #[test]
    fn no_usable_row_is_not_an_inventory() {
        // One column: keys only, no bucket.
        let err = parse_error(b"a.stac.json\nb.stac.json\n\nc.stac.json\n", PLAIN);
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("no usable row: all 3 data row(s) are malformed"),
            "{msg}"
        );
        assert!(msg.contains("first, line 1: 1 field(s)"), "{msg}");
        // Up to the hold-back limit, malformed rows of a rejected file never come out; beyond
        // it they do (memory stays bounded), and the file is still rejected at its end.
        let body: String = (0..1000).map(|i| format!("x{i}\n")).collect();
        let msg = parse_error(body.as_bytes(), PLAIN).to_string();
        assert!(msg.contains("all 1000 data row(s)"), "{msg}");
        let body: String = (0..3000).map(|i| format!("x{i}\n")).collect();
        let f = filter(all());
        let mut out: Vec<InventoryEntry> = Vec::new();
        let err = parse(body.as_bytes(), PLAIN, &f, &mut out, "t").unwrap_err();
        assert!(err.to_string().contains("all 3000 data row(s)"), "{err}");
        assert_eq!(out.len(), 3000 - HOLD_MALFORMED);
        // Header only, blank lines only, nothing at all: no rows, not an error.
        for empty in [&b"bucket,key\n"[..], b"\n\n  \n", b""] {
            let f = filter(all());
            let mut out: Vec<InventoryEntry> = Vec::new();
            parse(empty, PLAIN, &f, &mut out, "t").unwrap();
            assert!(out.is_empty());
        }
    }

    #[test]
    fn malformed_rows_come_out_with_their_line() {
        let data = b"bucket,key\n\
                     lonely\n\
                     b,k1.stac.json\n\
                     \n\
                     b,\n\
                     \"b\",\"two\nlines.stac.json\"\n\
                     ,k2.stac.json\n\
                     b,\xFF\n\
                     b,k3.stac.json\n";
        let f = filter(InventoryOptions::default());
        let mut out: Vec<InventoryEntry> = Vec::new();
        parse(&data[..], PLAIN, &f, &mut out, "mem://inv.csv").unwrap();
        let malformed: Vec<(String, String)> = out
            .iter()
            .filter_map(|e| match e {
                InventoryEntry::Malformed(m) => Some((m.locator(), m.problem.clone())),
                _ => None,
            })
            .collect();
        let lines: Vec<&str> = malformed.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "mem://inv.csv#line=2",
                "mem://inv.csv#line=5",
                "mem://inv.csv#line=8",
                "mem://inv.csv#line=9"
            ],
            "{malformed:?}"
        );
        assert!(
            malformed[0].1.starts_with(
                "1 field(s), need a bucket (column 1) and a key (column 2): \"lonely\""
            ),
            "{malformed:?}"
        );
        assert_eq!(malformed[1].1, "empty key: \"b,\"");
        assert_eq!(malformed[2].1, "empty bucket: \",k2.stac.json\"");
        assert!(
            malformed[3].1.starts_with("key is not UTF-8"),
            "{malformed:?}"
        );
        let stats = f.counters.snapshot();
        assert_eq!(stats.malformed, 4);
        assert_eq!(stats.kept, 3);
        let kept: Vec<&str> = out
            .iter()
            .filter_map(|e| match e {
                InventoryEntry::Record(r) => Some(r.key.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kept,
            ["k1.stac.json", "two\nlines.stac.json", "k3.stac.json"]
        );
    }

    /// The locators of the malformed rows of `data`.
    fn malformed_lines(data: &[u8]) -> Vec<u64> {
        let f = filter(all());
        let mut out: Vec<InventoryEntry> = Vec::new();
        parse(data, PLAIN, &f, &mut out, "t").unwrap();
        out.iter()
            .filter_map(|e| match e {
                InventoryEntry::Malformed(m) => match m.position {
                    RowPosition::Line(n) => Some(n),
                    RowPosition::Row(_) => None,
                },
                _ => None,
            })
            .collect()
    }

    #[test]
    fn line_numbers_count_blank_lines_crlf_and_quoted_newlines() {
        assert_eq!(malformed_lines(b"b,k\n\n\nbad\n\n\nb,k\nbad"), [4, 8]);
        assert_eq!(
            malformed_lines(b"b,k\r\n\r\n\r\nbad\r\n\"q\r\nq\"\r\nbad\r\n\r\n  \r\nbad"),
            [4, 5, 7, 10]
        );
        assert_eq!(
            malformed_lines(b"\n\nb,\"multi\n\nline\"\n\n\"only\none\"\n\nb,\n"),
            [7, 10]
        );
        // Lines far apart, beyond the parser's read-ahead.
        let mut big: String = (0..20_000).map(|i| format!("b,k{i}\n\n")).collect();
        big.push_str("bad\n");
        assert_eq!(malformed_lines(big.as_bytes()), [40_001]);
    }

    #[test]
    fn malformed_rows_before_the_first_usable_row_are_all_released() {
        // More than the hold-back limit, then one good row.
        let mut body: String = (0..1500).map(|i| format!("x{i}\n")).collect();
        body.push_str("b,k.stac.json\n");
        let f = filter(InventoryOptions::default());
        let mut out: Vec<InventoryEntry> = Vec::new();
        parse(body.as_bytes(), PLAIN, &f, &mut out, "t").unwrap();
        let mut lines: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                InventoryEntry::Malformed(m) => match m.position {
                    RowPosition::Line(n) => Some(n),
                    RowPosition::Row(_) => None,
                },
                _ => None,
            })
            .collect();
        lines.sort_unstable();
        assert_eq!(lines, (1..=1500).collect::<Vec<u64>>());
        assert_eq!(out.len(), 1501);
    }

    #[test]
    fn gzip_lines_count_decompressed_text() {
        let data = gzip(b"b,k1.stac.json\nbad\nb,k2.stac.json\n");
        let f = filter(InventoryOptions::default());
        let mut out: Vec<InventoryEntry> = Vec::new();
        parse(&data[..], GZ, &f, &mut out, "t.gz").unwrap();
        assert!(
            out.contains(&InventoryEntry::Malformed(crate::inventory::MalformedRow {
                location: "t.gz".into(),
                position: RowPosition::Line(2),
                problem: "1 field(s), need a bucket (column 1) and a key (column 2): \"bad\""
                    .into(),
            })),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn malformed_rows_through_the_stream() {
        let url = format!("{}/mixed.csv", memory_root("mixed"));
        put(&url, "b,good.stac.json\nbad row\nb,other.stac.json\n").await;
        let (records, malformed, stats) = collect_entries(&url, InventoryOptions::default()).await;
        assert_eq!(keys(&records), ["good.stac.json", "other.stac.json"]);
        assert_eq!(malformed.len(), 1);
        assert_eq!(malformed[0].locator(), format!("{url}#line=2"));
        assert_eq!(stats.malformed, 1);
    }

    #[test]
    fn find_columns_normalises_names() {
        let f = find_columns(["Bucket", " Key", "Size", "LastModifiedDate"]);
        assert_eq!(
            (f.bucket, f.key, f.last_modified, f.size),
            (Some(0), Some(1), Some(3), Some(2))
        );
        let f = find_columns(["size", "KEY"]);
        assert_eq!(
            (f.bucket, f.key, f.last_modified, f.size),
            (None, Some(1), None, Some(0))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            gzip_it in any::<bool>(),
            fixed in any::<bool>(),
            decode in any::<bool>(),
        ) {
            let opts = CsvOptions {
                gzip: gzip_it,
                columns: if fixed {
                    Columns::Fixed(Layout { bucket: 5, key: 0, last_modified: Some(usize::MAX), size: None })
                } else {
                    Columns::Detect
                },
                url_decode_keys: decode,
            };
            let f = filter(InventoryOptions::default().with_suffix("").with_since(Some(utc("2024-01-01T00:00:00Z"))));
            let mut out: Vec<InventoryRecord> = Vec::new();
            let _ = parse(&data[..], opts, &f, &mut out, "fuzz");
            let _ = parse(&gzip(&data)[..], CsvOptions { gzip: true, ..opts }, &f, &mut out, "fuzz");
        }

        #[test]
        fn random_lines_never_panic_and_count_every_row(
            lines in proptest::collection::vec("[a-z,\"%+ \\t\\r0-9:TZ.-]{0,40}", 0..40),
        ) {
            let data = lines.join("\n");
            let f = filter(InventoryOptions::default().with_suffix("").with_since(Some(utc("2024-01-01T00:00:00Z"))));
            let mut out: Vec<InventoryRecord> = Vec::new();
            let opts = CsvOptions { url_decode_keys: true, ..PLAIN };
            if parse(data.as_bytes(), opts, &f, &mut out, "fuzz").is_ok() {
                let s = f.counters.snapshot();
                prop_assert_eq!(s.kept as usize, out.len());
                prop_assert_eq!(s.rows, s.kept + s.malformed + s.skipped_suffix + s.skipped_since);
            }
        }
    }
}
