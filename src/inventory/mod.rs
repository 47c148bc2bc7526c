//! Inventory readers: S3 Inventory manifests, CSV, gzip CSV and Parquet → a stream of
//! `(bucket, key, last_modified)` records and of the malformed rows met on the way.
//!
//! ```text
//! read_inventory(location) ──▶ dispatch by suffix
//!     *manifest.json ─▶ manifest.rs ─▶ each files[].key in order ─▶ csv.rs | parquet.rs
//!     *.parquet      ─▶ parquet.rs (batch by batch, projected columns only)
//!     *.gz           ─▶ csv.rs through a gzip decoder
//!     anything else  ─▶ csv.rs
//!         └─▶ Filter: suffix ─▶ since ─▶ limit ─▶ bounded channel ─▶ InventoryStream
//! ```
//!
//! # Design decisions
//!
//! * **Streaming, bounded memory.** No data file is ever read whole. CSV bytes arrive as
//!   `object_store` chunks, are forwarded over a small bounded channel to a blocking thread that
//!   runs the gzip decoder and the `csv` parser, and kept records go to the consumer in batches
//!   over another bounded channel. Parquet is read one record batch at a time, reading only the
//!   `bucket`, `key` and `last_modified_date` columns.
//! * **Filter order.** A row is first checked against the key suffix (case-sensitive, default
//!   `.stac.json`), then against `since` (inclusive: kept when `last_modified >= since`), then
//!   counted against `limit`. Reading stops as soon as `limit` records were kept.
//! * **`since` is fail-open.** A row whose last-modified value is missing (no such column, a
//!   null, or text that is not a timestamp) is kept and counted in
//!   [`InventoryStats::since_unknown`]. Text values are parsed by [`crate::timestamp::parse`]: offsets
//!   are *converted* to UTC (unlike the Python tool, which replaced them), a trailing `Z` is
//!   accepted, naive values are UTC and a date alone is midnight UTC.
//! * **CSV headers.** The first non-empty row is a header iff its first field (trimmed,
//!   lower-cased) is `bucket`; the `key` and `last_modified_date` columns are then located by
//!   name, ignoring case and any non-alphanumeric characters (so `LastModifiedDate` matches
//!   too); a header without a key column is an error. Without a header column 0 is the bucket
//!   and column 1 the key.
//! * **Malformed rows.** A data row without a usable bucket or key (too few fields, a field
//!   that is not UTF-8, an empty or null value) is counted in [`InventoryStats::malformed`] and
//!   comes out of the stream as [`InventoryEntry::Malformed`], naming its file and position
//!   ([`RowPosition`]: the 1-based line of the (decompressed) CSV text, or the 0-based row index
//!   of a Parquet file), so the pipeline can list it in the failures report. Until a file has
//!   shown one usable row, its first malformed rows are held back, so a file that is not an
//!   inventory fails with one error instead of thousands of report lines.
//! * **Not an inventory.** A file whose content cannot be an inventory at all fails the read
//!   with [`Error::InvalidArgument`] for `--inventory` (exit 2), naming the file and what was
//!   wrong, before any of its rows is used: a `.gz` file that is not gzip, CSV data that is
//!   binary (a NUL byte in its first 8 KiB, as git and ripgrep tell text from binary; the
//!   message says when it looks like Parquet or gzip under the wrong name), a file that is not
//!   Parquet, a CSV header or Parquet schema without a key (or bucket) column, an unusable
//!   `manifest.json`, and a non-empty file in which **no** data row is usable. An empty file,
//!   or one with only a header, has no rows and is not an error. Manifests check each data
//!   file on its own.
//! * **URL-encoded keys.** AWS documents the keys in CSV inventory files as URL-encoded, so keys
//!   read from the CSV data files of a `manifest.json` are decoded (`%XX` escapes and `+` for a
//!   space, the form encoding AWS uses). Keys in plain CSV files given directly, and in Parquet
//!   files, are used exactly as written.
//! * **Manifest data files.** See [`manifest`] for where data files are looked up.
//! * **Errors.** A missing inventory file, data damaged after the start of a file (a truncated
//!   gzip stream, a corrupt Parquet page) or a store failure makes the stream yield one
//!   [`Error::Inventory`] (or store/Parquet error) naming the file (exit 1), after which it ends;
//!   entries read before the damage are delivered first.

// `crate::Error` is large (it embeds `iceberg::Error` by value); shrinking it belongs in
// `error.rs` (boxing that source), not in every module returning it.

mod csv;
pub mod manifest;
mod parquet;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::store::Location;

/// The key suffix kept by default.
pub const DEFAULT_SUFFIX: &str = ".stac.json";

/// How many kept records travel together from a reader to the stream (bigger batches mean
/// fewer thread wake-ups: 8,192 cut the kernel's share of a 4 M-key delta from ~14 % to a few).
const BATCH_RECORDS: usize = 8192;

/// How many batches may wait between a reader and the stream (memory bound).
const CHANNEL_BATCHES: usize = 4;

/// One entry of an inventory stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryEntry {
    /// A row with a bucket and a key that passed the suffix, `since` and `limit` filters.
    Record(InventoryRecord),
    /// A data row without a usable bucket or key.
    Malformed(MalformedRow),
}

/// Where a row is in its inventory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPosition {
    /// 1-based line of a CSV file (of the decompressed text for gzip), where the row starts.
    Line(u64),
    /// 0-based row index of a Parquet file.
    Row(u64),
}

impl std::fmt::Display for RowPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowPosition::Line(n) => write!(f, "line {n}"),
            RowPosition::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// A data row of an inventory file that has no usable bucket or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRow {
    /// The file the row is in (for a manifest, the data file).
    pub location: String,
    /// Where the row is in that file.
    pub position: RowPosition,
    /// What is wrong with it, followed by an excerpt of the row.
    pub problem: String,
}

impl MalformedRow {
    /// The row as one string: `<location>#line=<n>` (CSV, 1-based) or `<location>#row=<i>`
    /// (Parquet, 0-based). The failures report puts this in its `key` column.
    pub fn locator(&self) -> String {
        match self.position {
            RowPosition::Line(n) => format!("{}#line={n}", self.location),
            RowPosition::Row(n) => format!("{}#row={n}", self.location),
        }
    }
}

impl std::fmt::Display for MalformedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.location, self.position, self.problem)
    }
}

/// One object listed in an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRecord {
    /// Bucket of the object.
    pub bucket: String,
    /// Key of the object inside the bucket.
    pub key: String,
    /// Object size in bytes, when the inventory has a `size` column.
    pub size: Option<u64>,
    /// Last modification time, when the inventory has a parsable one.
    pub last_modified: Option<DateTime<Utc>>,
}

/// What to keep from an inventory.
#[derive(Clone, Debug)]
pub struct InventoryOptions {
    /// Keep only keys ending with this (case-sensitive). Empty keeps every key.
    pub suffix: String,
    /// Keep only objects modified at or after this instant (fail-open, see the module docs).
    pub since: Option<DateTime<Utc>>,
    /// Stop after this many kept records.
    pub limit: Option<u64>,
}

impl Default for InventoryOptions {
    fn default() -> Self {
        Self {
            suffix: DEFAULT_SUFFIX.to_string(),
            since: None,
            limit: None,
        }
    }
}

impl InventoryOptions {
    /// Keep keys ending with `suffix`.
    pub fn with_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    /// Keep objects modified at or after `since`.
    pub fn with_since(mut self, since: Option<DateTime<Utc>>) -> Self {
        self.since = since;
        self
    }

    /// Stop after `limit` kept records.
    pub fn with_limit(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }
}

/// Counters of an inventory read.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InventoryStats {
    /// Data files opened (1 for a plain file, one per `files[]` entry read for a manifest).
    pub files: u64,
    /// Data rows seen (header rows and blank lines are not rows).
    pub rows: u64,
    /// Records kept and handed to the stream.
    pub kept: u64,
    /// Rows dropped because the key does not end with the suffix.
    pub skipped_suffix: u64,
    /// Rows dropped because they were modified before `since`.
    pub skipped_since: u64,
    /// Rows kept although `since` was given, because their last-modified value was missing,
    /// null or unparsable (fail-open).
    pub since_unknown: u64,
    /// Rows without a usable bucket or key (too few fields, empty, null or not UTF-8); each is
    /// also an [`InventoryEntry::Malformed`].
    pub malformed: u64,
    /// Reading stopped early because `limit` records were kept.
    pub limited: bool,
}

/// Live counters shared between the reader and [`InventoryStream::stats`].
#[derive(Debug, Default)]
struct Counters {
    files: AtomicU64,
    rows: AtomicU64,
    kept: AtomicU64,
    skipped_suffix: AtomicU64,
    skipped_since: AtomicU64,
    since_unknown: AtomicU64,
    malformed: AtomicU64,
    limited: AtomicBool,
}

impl Counters {
    fn snapshot(&self) -> InventoryStats {
        InventoryStats {
            files: self.files.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            kept: self.kept.load(Ordering::Relaxed),
            skipped_suffix: self.skipped_suffix.load(Ordering::Relaxed),
            skipped_since: self.skipped_since.load(Ordering::Relaxed),
            since_unknown: self.since_unknown.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
        }
    }
}

/// Whether a reader should go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The decision for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Keep it and go on.
    Keep,
    /// Keep it; it was the last one allowed by `limit`.
    KeepLast,
    /// Drop it.
    Skip,
}

/// Suffix, since and limit, plus the counters; shared by every reader of one inventory.
#[derive(Debug)]
struct Filter {
    suffix: String,
    since: Option<DateTime<Utc>>,
    limit: Option<u64>,
    counters: Arc<Counters>,
}

impl Filter {
    fn new(options: InventoryOptions, counters: Arc<Counters>) -> Self {
        Self {
            suffix: options.suffix,
            since: options.since,
            limit: options.limit,
            counters,
        }
    }

    /// A data file was opened.
    fn file_opened(&self) {
        self.counters.files.fetch_add(1, Ordering::Relaxed);
    }

    /// A row without a usable bucket or key.
    fn malformed(&self) {
        self.counters.rows.fetch_add(1, Ordering::Relaxed);
        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// True once `limit` records were kept (nothing more may be read).
    fn exhausted(&self) -> bool {
        match self.limit {
            Some(limit) if self.counters.kept.load(Ordering::Relaxed) >= limit => {
                self.counters.limited.store(true, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Decide on one row. `last_modified` is only evaluated when the suffix matches.
    fn admit(
        &self,
        key: &str,
        last_modified: impl FnOnce() -> Option<DateTime<Utc>>,
    ) -> (Admit, Option<DateTime<Utc>>) {
        let c = &self.counters;
        c.rows.fetch_add(1, Ordering::Relaxed);
        if !key.ends_with(self.suffix.as_str()) {
            c.skipped_suffix.fetch_add(1, Ordering::Relaxed);
            return (Admit::Skip, None);
        }
        let lm = last_modified();
        if let Some(since) = self.since {
            match lm {
                Some(t) if t < since => {
                    c.skipped_since.fetch_add(1, Ordering::Relaxed);
                    return (Admit::Skip, lm);
                }
                Some(_) => {}
                None => {
                    c.since_unknown.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let kept = c.kept.fetch_add(1, Ordering::Relaxed) + 1;
        match self.limit {
            Some(limit) if kept >= limit => {
                c.limited.store(true, Ordering::Relaxed);
                (Admit::KeepLast, lm)
            }
            _ => (Admit::Keep, lm),
        }
    }
}

/// Messages from a reader to the stream: a batch of entries, or the error that ended it.
type Message = Result<Vec<InventoryEntry>>;

/// Receives the entries of a reader.
trait Sink {
    /// Take one entry; `Stop` when nobody wants more.
    fn push(&mut self, entry: InventoryEntry) -> Flow;
}

impl Sink for Vec<InventoryEntry> {
    fn push(&mut self, entry: InventoryEntry) -> Flow {
        Vec::push(self, entry);
        Flow::Continue
    }
}

/// How many malformed rows of a file are held back until the file shows a usable row.
const HOLD_MALFORMED: usize = 1024;

/// Usable and malformed rows of one file: decides when its malformed rows are released and
/// whether the file had any usable row at all (see the module docs).
#[derive(Debug)]
struct FileRows {
    location: String,
    usable: u64,
    malformed: u64,
    first: Option<MalformedRow>,
    held: Vec<MalformedRow>,
}

impl FileRows {
    fn new(location: &str) -> Self {
        Self {
            location: location.to_string(),
            usable: 0,
            malformed: 0,
            first: None,
            held: Vec::new(),
        }
    }

    /// A row with a bucket and a key: the file is an inventory, release what was held.
    fn usable(&mut self, sink: &mut impl Sink) -> Flow {
        self.usable += 1;
        for row in self.held.drain(..) {
            if sink.push(InventoryEntry::Malformed(row)) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// A row without a usable bucket or key, at `position`.
    fn malformed(&mut self, position: RowPosition, problem: String, sink: &mut impl Sink) -> Flow {
        let row = MalformedRow {
            location: self.location.clone(),
            position,
            problem,
        };
        self.malformed += 1;
        if self.first.is_none() {
            self.first = Some(row.clone());
        }
        if self.usable == 0 && self.held.len() < HOLD_MALFORMED {
            self.held.push(row);
            Flow::Continue
        } else {
            sink.push(InventoryEntry::Malformed(row))
        }
    }

    /// The file ended: an error when it had data rows and none of them was usable.
    fn finish(self) -> Result<()> {
        match self.first {
            Some(first) if self.usable == 0 => Err(not_an_inventory(
                &self.location,
                format!(
                    "no usable row: all {} data row(s) are malformed (first, {}: {})",
                    self.malformed, first.position, first.problem
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The error for a file whose content cannot be an inventory (bad input, exit 2).
fn not_an_inventory(location: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid_argument(
        "--inventory",
        format!("{location} is not a usable inventory: {what}"),
    )
}

/// A short, escaped excerpt of a row for messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 100;
    let head: String = text.chars().take(MAX).collect();
    if head.len() < text.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// Collects entries and sends them in batches.
#[derive(Debug)]
struct Batcher {
    tx: mpsc::Sender<Message>,
    buf: Vec<InventoryEntry>,
}

impl Batcher {
    fn new(tx: mpsc::Sender<Message>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(BATCH_RECORDS),
        }
    }

    fn full(&self) -> bool {
        self.buf.len() >= BATCH_RECORDS
    }

    /// Send what is buffered from async code; `Stop` when the stream was dropped.
    async fn flush(&mut self) -> Flow {
        if self.buf.is_empty() {
            return Flow::Continue;
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH_RECORDS));
        match self.tx.send(Ok(batch)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    /// Send what is buffered from a blocking thread; `Stop` when the stream was dropped.
    fn blocking_flush(&mut self) -> Flow {
        if self.buf.is_empty() {
            return Flow::Continue;
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH_RECORDS));
        match self.tx.blocking_send(Ok(batch)) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }
}

/// The stream of entries returned by [`read_inventory`]: kept records and malformed rows.
///
/// Reading starts on the first poll, which must happen inside a tokio runtime. After an `Err`
/// the stream ends. Dropping the stream stops the reader.
pub struct InventoryStream {
    location: String,
    state: State,
    buffer: std::vec::IntoIter<InventoryEntry>,
    counters: Arc<Counters>,
}

enum State {
    Pending(InventoryOptions),
    Running {
        rx: mpsc::Receiver<Message>,
        task: JoinHandle<()>,
    },
    Done,
}

impl std::fmt::Debug for InventoryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryStream")
            .field("location", &self.location)
            .field("stats", &self.stats())
            .finish()
    }
}

impl InventoryStream {
    /// The inventory location this stream reads.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A snapshot of the counters so far (final once the stream has ended).
    pub fn stats(&self) -> InventoryStats {
        self.counters.snapshot()
    }

    fn start(&mut self, options: InventoryOptions) -> Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::inventory(
                &self.location,
                "the inventory stream must be polled inside a tokio runtime",
            )
        })?;
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let filter = Arc::new(Filter::new(options, self.counters.clone()));
        let location = self.location.clone();
        let task = handle.spawn(async move {
            if let Err(e) = produce(&location, filter, tx.clone()).await {
                // The receiver may be gone already; nothing else to do then.
                let _ = tx.send(Err(e)).await;
            }
        });
        self.state = State::Running { rx, task };
        Ok(())
    }
}

impl Stream for InventoryStream {
    type Item = Result<InventoryEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.buffer.next() {
                return Poll::Ready(Some(Ok(record)));
            }
            match &mut this.state {
                State::Pending(options) => {
                    let options = options.clone();
                    if let Err(e) = this.start(options) {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                State::Running { rx, .. } => match rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(batch))) => this.buffer = batch.into_iter(),
                    Poll::Ready(Some(Err(e))) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(None) => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                },
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl InventoryStream {
    /// The next batch of entries, as the reader sent them (what [`Stream::poll_next`] would
    /// yield one by one); `None` at the end. For consumers that work on many records at once.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<InventoryEntry>>> {
        std::future::poll_fn(|cx| self.poll_next_batch(cx)).await
    }

    fn poll_next_batch(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Vec<InventoryEntry>>>> {
        loop {
            let buffered: Vec<InventoryEntry> = self.buffer.by_ref().collect();
            if !buffered.is_empty() {
                return Poll::Ready(Some(Ok(buffered)));
            }
            match &mut self.state {
                State::Pending(options) => {
                    let options = options.clone();
                    if let Err(e) = self.start(options) {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                State::Running { rx, .. } => match rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(batch))) => {
                        if !batch.is_empty() {
                            return Poll::Ready(Some(Ok(batch)));
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(None) => {
                        self.state = State::Done;
                        return Poll::Ready(None);
                    }
                },
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl Drop for InventoryStream {
    fn drop(&mut self) {
        if let State::Running { task, .. } = &self.state {
            task.abort();
        }
    }
}

/// The kinds of inventory [`read_inventory`] dispatches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryFormat {
    /// An S3 Inventory `manifest.json`.
    Manifest,
    /// A Parquet file.
    Parquet,
    /// A gzip-compressed CSV file.
    CsvGz,
    /// A plain CSV file.
    Csv,
}

impl InventoryFormat {
    /// The format of `location`, from its name (case-insensitive): ends with `manifest.json` →
    /// manifest, `.parquet` → Parquet, `.gz` → gzip CSV, anything else → CSV.
    pub fn detect(location: &str) -> Self {
        let name = location.trim_end_matches('/').to_ascii_lowercase();
        if name.ends_with("manifest.json") {
            Self::Manifest
        } else if name.ends_with(".parquet") {
            Self::Parquet
        } else if name.ends_with(".gz") {
            Self::CsvGz
        } else {
            Self::Csv
        }
    }
}

/// Open any inventory and stream its kept records and malformed rows.
///
/// The format is chosen by [`InventoryFormat::detect`]. Nothing is read until the stream is
/// first polled; errors (missing file, a file that is not an inventory, corrupt data) come out
/// of the stream.
pub fn read_inventory(location: &str, options: InventoryOptions) -> InventoryStream {
    InventoryStream {
        location: location.to_string(),
        state: State::Pending(options),
        buffer: Vec::new().into_iter(),
        counters: Arc::new(Counters::default()),
    }
}

async fn produce(location: &str, filter: Arc<Filter>, tx: mpsc::Sender<Message>) -> Result<()> {
    if filter.exhausted() {
        return Ok(());
    }
    let format = InventoryFormat::detect(location);
    let loc = parse_location(location).await?;
    match format {
        InventoryFormat::Manifest => manifest::read_manifest(&loc, &filter, &tx).await?,
        InventoryFormat::Parquet => {
            parquet::read_parquet(&loc, &filter, &tx, parquet::BATCH_ROWS).await?
        }
        InventoryFormat::CsvGz | InventoryFormat::Csv => {
            let opts = csv::CsvOptions {
                gzip: format == InventoryFormat::CsvGz,
                columns: csv::Columns::Detect,
                url_decode_keys: false,
            };
            csv::read_csv(&loc, opts, filter.clone(), &tx).await?
        }
    };
    Ok(())
}

/// Resolve `url` off the async worker: for S3 without a configured region, [`Location::parse`]
/// looks the bucket's region up with a blocking call that needs the runtime's I/O driver, which
/// would deadlock a current-thread runtime if done on its only worker.
async fn parse_location(url: &str) -> Result<Location> {
    let owned = url.to_string();
    tokio::task::spawn_blocking(move || Location::parse(&owned))
        .await
        .map_err(|e| Error::inventory(url, format!("resolving the location failed: {e}")))?
        .map_err(|e| Error::inventory(url, e.to_string()))
}

/// Parse a `--since` value: a date (`2024-01-02`, midnight UTC), an RFC 3339 timestamp (offsets
/// are converted to UTC) or a naive date-time (taken as UTC).
pub fn parse_since(s: &str) -> Result<DateTime<Utc>> {
    crate::timestamp::parse_utc(s).ok_or_else(|| {
        Error::invalid_argument(
            "--since",
            format!(
                "{s:?} is not a date (2024-01-02), an RFC 3339 timestamp \
                 (2024-01-02T03:04:05Z, 2024-01-02T05:04:05+02:00) or a UTC date-time \
                 (2024-01-02 03:04:05)"
            ),
        )
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the inventory tests.

    use futures::StreamExt;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    /// A unique `memory://` store name per test.
    pub(crate) fn memory_root(test: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("memory://inv-{test}-{n}")
    }

    /// Write `data` at `url`.
    pub(crate) async fn put(url: &str, data: impl Into<bytes::Bytes>) {
        let loc = Location::parse(url).unwrap();
        loc.store()
            .put(loc.prefix(), PutPayload::from(data.into()))
            .await
            .unwrap();
    }

    /// Gzip `data`.
    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// Read everything; panics on an error. Malformed rows are left out (see
    /// [`collect_entries`]).
    pub(crate) async fn collect(
        location: &str,
        options: InventoryOptions,
    ) -> (Vec<InventoryRecord>, InventoryStats) {
        let (records, _, stats) = collect_entries(location, options).await;
        (records, stats)
    }

    /// Read everything, records and malformed rows apart; panics on an error.
    pub(crate) async fn collect_entries(
        location: &str,
        options: InventoryOptions,
    ) -> (Vec<InventoryRecord>, Vec<MalformedRow>, InventoryStats) {
        let mut stream = read_inventory(location, options);
        let (mut records, mut malformed) = (Vec::new(), Vec::new());
        while let Some(r) = stream.next().await {
            match r.unwrap() {
                InventoryEntry::Record(rec) => records.push(rec),
                InventoryEntry::Malformed(row) => malformed.push(row),
            }
        }
        (records, malformed, stream.stats())
    }

    /// Keeps records, drops malformed rows (reader unit tests).
    impl Sink for Vec<InventoryRecord> {
        fn push(&mut self, entry: InventoryEntry) -> Flow {
            if let InventoryEntry::Record(rec) = entry {
                Vec::push(self, rec);
            }
            Flow::Continue
        }
    }

    /// Read until the first error and return it.
    pub(crate) async fn first_error(location: &str, options: InventoryOptions) -> Error {
        let mut stream = read_inventory(location, options);
        while let Some(r) = stream.next().await {
            if let Err(e) = r {
                assert!(
                    stream.next().await.is_none(),
                    "stream must end after an error"
                );
                return e;
            }
        }
        panic!("no error reading {location}");
    }

    /// All options keep everything.
    pub(crate) fn all() -> InventoryOptions {
        InventoryOptions::default().with_suffix("")
    }

    /// Keys of records.
    pub(crate) fn keys(records: &[InventoryRecord]) -> Vec<&str> {
        records.iter().map(|r| r.key.as_str()).collect()
    }

    /// A UTC instant from RFC 3339.
    pub(crate) fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::test_support::*;
    use super::*;

    #[test]
    fn dispatch_by_suffix() {
        use InventoryFormat::*;
        assert_eq!(InventoryFormat::detect("s3://b/x/manifest.json"), Manifest);
        assert_eq!(InventoryFormat::detect("/x/2024/MANIFEST.JSON"), Manifest);
        assert_eq!(InventoryFormat::detect("/x/inv.parquet"), Parquet);
        assert_eq!(InventoryFormat::detect("/x/inv.csv.gz"), CsvGz);
        assert_eq!(InventoryFormat::detect("/x/inv.gz"), CsvGz);
        assert_eq!(InventoryFormat::detect("/x/inv.csv"), Csv);
        assert_eq!(InventoryFormat::detect("/x/inv.txt"), Csv);
        assert_eq!(InventoryFormat::detect("/x/other.json"), Csv);
    }

    #[test]
    fn parse_since_accepts_the_documented_forms() {
        assert_eq!(
            parse_since("2024-01-02").unwrap(),
            utc("2024-01-02T00:00:00Z")
        );
        assert_eq!(
            parse_since("2024-01-01T01:00:00+02:00").unwrap(),
            utc("2023-12-31T23:00:00Z")
        );
        assert_eq!(
            parse_since("2024-01-02 03:04:05").unwrap(),
            utc("2024-01-02T03:04:05Z")
        );
        let err = parse_since("last tuesday").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }));
        assert!(err.to_string().contains("last tuesday"));
    }

    #[test]
    fn options_default_keeps_stac_json() {
        let o = InventoryOptions::default();
        assert_eq!(o.suffix, ".stac.json");
        assert_eq!(o.since, None);
        assert_eq!(o.limit, None);
        let o = o
            .with_limit(Some(3))
            .with_since(Some(utc("2024-01-01T00:00:00Z")));
        assert_eq!(o.limit, Some(3));
        assert!(o.since.is_some());
    }

    #[tokio::test]
    async fn missing_file_is_an_inventory_error_naming_it() {
        let root = memory_root("missing");
        for name in ["nope.csv", "nope.csv.gz", "nope.parquet", "x/manifest.json"] {
            let url = format!("{root}/{name}");
            let err = first_error(&url, all()).await;
            assert!(matches!(err, Error::Inventory { .. }), "{name}: {err}");
            assert!(err.to_string().contains(&url), "{name}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.csv");
        let err = first_error(path.to_str().unwrap(), all()).await;
        assert!(matches!(err, Error::Inventory { .. }), "{err}");
        assert!(err.to_string().contains("absent.csv"), "{err}");
    }

    #[tokio::test]
    async fn limit_zero_reads_nothing() {
        let root = memory_root("limit0");
        let url = format!("{root}/a.csv");
        put(&url, "b,k.stac.json\n").await;
        let (records, stats) = collect(&url, all().with_limit(Some(0))).await;
        assert!(records.is_empty());
        assert!(stats.limited);
        assert_eq!(stats.files, 0);
    }

    #[tokio::test]
    async fn stats_are_readable_while_streaming() {
        let root = memory_root("live");
        let url = format!("{root}/a.csv");
        let body: String = (0..5000).map(|i| format!("b,k{i}.stac.json\n")).collect();
        put(&url, body).await;
        let mut stream = read_inventory(&url, InventoryOptions::default());
        assert_eq!(stream.stats(), InventoryStats::default());
        let first = stream.next().await.unwrap().unwrap();
        assert!(
            matches!(&first, InventoryEntry::Record(r) if r.key == "k0.stac.json"),
            "{first:?}"
        );
        assert!(stream.stats().kept >= 1);
        let mut n = 1;
        while let Some(r) = stream.next().await {
            r.unwrap();
            n += 1;
        }
        assert_eq!(n, 5000);
        assert_eq!(stream.stats().kept, 5000);
        assert_eq!(stream.stats().files, 1);
    }

    #[tokio::test]
    async fn dropping_the_stream_early_is_fine() {
        let root = memory_root("drop");
        let url = format!("{root}/a.csv");
        let body: String = (0..20_000).map(|i| format!("b,k{i}.stac.json\n")).collect();
        put(&url, body).await;
        let mut stream = read_inventory(&url, InventoryOptions::default());
        assert!(stream.next().await.unwrap().is_ok());
        drop(stream);
        // Reading again after a dropped reader still works.
        let (records, _) = collect(&url, InventoryOptions::default()).await;
        assert_eq!(records.len(), 20_000);
    }

    #[test]
    fn stream_can_move_between_tasks() {
        fn assert_send<T: Send + Unpin + 'static>() {}
        assert_send::<InventoryStream>();
    }

    #[test]
    fn polling_outside_a_runtime_is_an_error_not_a_panic() {
        let mut stream = read_inventory("memory://x/a.csv", all());
        let item = futures::executor::block_on(stream.next());
        assert!(matches!(item, Some(Err(Error::Inventory { .. }))));
        assert!(futures::executor::block_on(stream.next()).is_none());
    }
}
