//! CSV and gzip CSV inventory files.
//!
//! The object's bytes arrive as `object_store` chunks on the async side and are forwarded over a
//! small bounded channel to a blocking thread, where a [`std::io::Read`] adapter feeds the gzip
//! decoder (for `.gz`) and the `csv` parser. Kept records go back in batches over the bounded
//! output channel. At no point is more than a few chunks and a few batches held in memory.

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::sync::mpsc;

use super::{Admit, Batcher, Filter, Flow, InventoryRecord, Message};
use crate::error::{Error, Result};
use crate::store::Location;

/// How many object-store chunks may wait for the parser.
const CHUNK_QUEUE: usize = 4;

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
}

impl Layout {
    /// Bucket in column 0, key in column 1, no last-modified column.
    pub(super) const DEFAULT: Layout = Layout {
        bucket: 0,
        key: 1,
        last_modified: None,
    };
}

/// Positions of `bucket`, `key` and `last_modified_date` among column `names`, compared without
/// case and ignoring non-alphanumeric characters (`LastModifiedDate` = `last_modified_date`).
pub(super) fn find_columns<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> (Option<usize>, Option<usize>, Option<usize>) {
    let (mut bucket, mut key, mut lm) = (None, None, None);
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
            _ => continue,
        };
        slot.get_or_insert(i);
    }
    (bucket, key, lm)
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

/// Receives kept records.
pub(super) trait Sink {
    /// Take one record; `Stop` when nobody wants more.
    fn push(&mut self, record: InventoryRecord) -> Flow;
}

impl Sink for Vec<InventoryRecord> {
    fn push(&mut self, record: InventoryRecord) -> Flow {
        Vec::push(self, record);
        Flow::Continue
    }
}

/// Sends batches over the stream's channel from the blocking thread.
struct ChannelSink(Batcher);

impl Sink for ChannelSink {
    fn push(&mut self, record: InventoryRecord) -> Flow {
        self.0.buf.push(record);
        if self.0.full() {
            self.0.blocking_flush()
        } else {
            Flow::Continue
        }
    }
}

/// Parse CSV bytes from `reader` (blocking). Never panics, whatever the bytes.
pub(super) fn parse<R: Read>(
    reader: R,
    opts: CsvOptions,
    filter: &Filter,
    sink: &mut impl Sink,
    url: &str,
) -> Result<Flow> {
    let reader: Box<dyn Read> = if opts.gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut csv = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut layout = match opts.columns {
        Columns::Fixed(layout) => Some(layout),
        Columns::Detect => None,
    };
    let mut record = ::csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(Flow::Continue),
            Err(e) => {
                let what = if opts.gzip { "gzip CSV" } else { "CSV" };
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
                let (detected, is_header) = detect_header(&record);
                layout = Some(detected);
                if is_header {
                    continue;
                }
                detected
            }
        };
        let (Some(bucket), Some(key)) = (record.get(layout.bucket), record.get(layout.key)) else {
            filter.malformed();
            continue;
        };
        let Ok(bucket) = std::str::from_utf8(clean(bucket)) else {
            filter.malformed();
            continue;
        };
        let key = if opts.url_decode_keys {
            url_decode(key).map(Cow::Owned)
        } else {
            std::str::from_utf8(key).ok().map(Cow::Borrowed)
        };
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            filter.malformed();
            continue;
        };
        if bucket.is_empty() {
            filter.malformed();
            continue;
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
        let flow = sink.push(InventoryRecord {
            bucket: bucket.to_string(),
            key: key.into_owned(),
            last_modified,
        });
        if admit == Admit::KeepLast || flow == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
}

/// The layout implied by the first non-empty row, and whether that row is a header.
fn detect_header(record: &::csv::ByteRecord) -> (Layout, bool) {
    let first = record.get(0).map(clean).unwrap_or_default();
    if !first.eq_ignore_ascii_case(b"bucket") {
        return (Layout::DEFAULT, false);
    }
    let names: Vec<Cow<'_, str>> = record
        .iter()
        .map(|f| String::from_utf8_lossy(clean(f)))
        .collect();
    let (_, key, last_modified) = find_columns(names.iter().map(|n| n.as_ref()));
    let layout = Layout {
        bucket: 0,
        key: key.unwrap_or(1),
        last_modified,
    };
    (layout, true)
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
    use super::super::{Counters, InventoryOptions};
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
                    last_modified: None
                },
                InventoryRecord {
                    bucket: "b2".into(),
                    key: "a/two.stac.json".into(),
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
        let mut out = Vec::new();
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
        assert!(matches!(err, Error::Inventory { .. }), "{err}");
        assert!(err.to_string().contains(&garbage), "{err}");

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

    #[test]
    fn find_columns_normalises_names() {
        assert_eq!(
            find_columns(["Bucket", " Key", "Size", "LastModifiedDate"]),
            (Some(0), Some(1), Some(3))
        );
        assert_eq!(find_columns(["size", "KEY"]), (None, Some(1), None));
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
                    Columns::Fixed(Layout { bucket: 5, key: 0, last_modified: Some(usize::MAX) })
                } else {
                    Columns::Detect
                },
                url_decode_keys: decode,
            };
            let f = filter(InventoryOptions::default().with_suffix("").with_since(Some(utc("2024-01-01T00:00:00Z"))));
            let mut out = Vec::new();
            let _ = parse(&data[..], opts, &f, &mut out, "fuzz");
            let _ = parse(&gzip(&data)[..], CsvOptions { gzip: true, ..opts }, &f, &mut out, "fuzz");
        }

        #[test]
        fn random_lines_never_panic_and_count_every_row(
            lines in proptest::collection::vec("[a-z,\"%+ \\t\\r0-9:TZ.-]{0,40}", 0..40),
        ) {
            let data = lines.join("\n");
            let f = filter(InventoryOptions::default().with_suffix("").with_since(Some(utc("2024-01-01T00:00:00Z"))));
            let mut out = Vec::new();
            let opts = CsvOptions { url_decode_keys: true, ..PLAIN };
            if parse(data.as_bytes(), opts, &f, &mut out, "fuzz").is_ok() {
                let s = f.counters.snapshot();
                prop_assert_eq!(s.kept as usize, out.len());
                prop_assert_eq!(s.rows, s.kept + s.malformed + s.skipped_suffix + s.skipped_since);
            }
        }
    }
}
