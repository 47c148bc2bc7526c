//! Matches and their resolution: a hit and the batch it holds, ids already returned, the
//! newest version per id, and the sort of `sortby`.

use super::*;

/// A matching row.
#[derive(Debug)]
pub(super) struct Hit {
    pub(super) id: String,
    /// The row's version (its file's commit order included).
    pub(super) version: Version,
    pub(super) item: Body,
}

/// Bytes something a search's stream keeps holds, counted in its
/// [`SearchStats::held_bytes`] while it is alive.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) bytes: u64,
    pub(super) stats: Arc<SearchStats>,
}

impl Held {
    pub(super) fn new(bytes: u64, stats: &Arc<SearchStats>) -> Self {
        SearchStats::add(&stats.held_bytes, bytes);
        Self {
            bytes,
            stats: Arc::clone(stats),
        }
    }

    /// It holds `bytes` now.
    pub(super) fn set(&mut self, bytes: u64) {
        SearchStats::add(&self.stats.held_bytes, bytes);
        SearchStats::sub(&self.stats.held_bytes, self.bytes);
        self.bytes = bytes;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        SearchStats::sub(&self.stats.held_bytes, self.bytes);
    }
}

/// Decoded rows lazy hits share, counted as held (when they are not the decoded-file cache's).
#[derive(Debug)]
pub(super) struct HeldBatch {
    pub(super) items: ItemBatch,
    pub(super) _held: Held,
}

impl std::ops::Deref for HeldBatch {
    type Target = ItemBatch;
    fn deref(&self) -> &ItemBatch {
        &self.items
    }
}

/// The ids a streaming search returned (xxh3-128 digests, with their packed version), counted
/// as held by the map's capacity.
pub(super) struct SeenIds {
    pub(super) map: HashMap<IdHash, PackedVersion>,
    pub(super) held: Held,
}

impl SeenIds {
    pub(super) const ENTRY_BYTES: u64 = (std::mem::size_of::<(IdHash, PackedVersion)>() + 1) as u64;

    pub(super) fn new(stats: &Arc<SearchStats>) -> Self {
        Self {
            map: HashMap::new(),
            held: Held::new(0, stats),
        }
    }

    pub(super) fn get(&self, key: &IdHash) -> Option<Version> {
        self.map.get(key).map(|&v| v.into())
    }

    pub(super) fn insert(&mut self, key: IdHash, version: Version) {
        self.map.insert(key, version.into());
        let bytes = self.map.capacity() as u64 * Self::ENTRY_BYTES;
        if bytes != self.held.bytes {
            self.held.set(bytes);
        }
    }
}

/// A hit's item: built, or (without a filter, which needs the item) built only when it is
/// returned — a page of 100 out of a bucket's 300 matches builds 100 items, and the rest wait
/// as the file's decoded columns in a suspended stream.
#[derive(Debug)]
pub(super) enum Body {
    Built(Json),
    Lazy {
        batch: Arc<HeldBatch>,
        row: usize,
        with_grid_partition: bool,
        json_text: bool,
    },
}

impl Hit {
    pub(super) fn into_item(self) -> Json {
        self.item.into_json()
    }
}

impl Body {
    pub(super) fn into_json(self) -> Json {
        match self {
            Body::Built(item) => item,
            Body::Lazy {
                batch,
                row,
                with_grid_partition,
                json_text,
            } => batch.item_with(row, with_grid_partition, json_text),
        }
    }
}

/// One item a search returns: built, or still a row of its file's decoded columns (written
/// straight to JSON text by [`Found::write_json`], or built by [`Found::into_json`]).
#[derive(Debug)]
pub struct Found {
    pub(super) item: Body,
    /// The member selection still to apply (`None`: none, or already applied).
    pub(super) fields: Option<Arc<Fields>>,
}

impl Found {
    /// An item already built (and selected).
    pub fn from_json(item: Json) -> Self {
        Self {
            item: Body::Built(item),
            fields: None,
        }
    }

    /// The item as STAC JSON (with the request's `fields` applied).
    pub fn into_json(self) -> Json {
        let item = self.item.into_json();
        match &self.fields {
            Some(f) => f.apply(item),
            None => item,
        }
    }

    /// Append the item as compact JSON to `out`: the bytes [`crate::query::write_item`] writes of
    /// [`Found::into_json`] (after [`crate::query::relink_item`] when `relink` is given).
    pub fn write_json(self, out: &mut Vec<u8>, relink: Option<Relink<'_>>) {
        if self.fields.is_none()
            && let Body::Lazy {
                batch,
                row,
                with_grid_partition,
                json_text,
            } = &self.item
        {
            batch.write_item_json(*row, *with_grid_partition, *json_text, relink, out);
            return;
        }
        write_relinked(self.into_json(), relink, out);
    }
}

/// `batch` in buffers of exactly its size, for the decoded-file cache. The decoder's buffers
/// were sized for a whole batch ([`BATCH_ROWS`]), ~5× the data of a small file (res-2 bench
/// warehouse); with the batch now sized to the rows read they still carry slack: 64 MiB of
/// cache held 502 files with this copy, 376 without (`bench/serve.sh`, point at 8 clients,
/// 93 vs 89 % hits).
pub(super) fn exact_size(batch: &RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    let all = arrow_array::UInt32Array::from_iter_values(0..batch.num_rows() as u32);
    arrow_select::take::take_record_batch(batch, &all)
}

pub(super) fn timestamp_property(item: &Json, name: &str) -> Option<i64> {
    let s = item.get("properties")?.get(name)?.as_str()?;
    crate::timestamp::parse_micros(s)
}

/// The sort value of `field` in an item: top-level member, else a property.
pub(super) fn sort_value<'a>(item: &'a Json, field: &str) -> Option<&'a Json> {
    let field = field.strip_prefix("properties.").map_or(field, |f| f);
    let top = item.get(field).filter(|_| !field.contains('.'));
    top.or_else(|| item.get("properties")?.get(field))
        .filter(|v| !v.is_null())
}

pub(super) fn compare_json(a: &Json, b: &Json) -> Ordering {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x
            .as_f64()
            .unwrap_or(f64::NAN)
            .total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        (Json::String(x), Json::String(y)) => match (
            crate::timestamp::parse_micros(x),
            crate::timestamp::parse_micros(y),
        ) {
            (Some(tx), Some(ty)) => tx.cmp(&ty),
            _ => x.cmp(y),
        },
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Order two items by the sort keys (missing values last), then by id.
pub(super) fn compare_items(a: &Json, b: &Json, sortby: &[SortBy]) -> Ordering {
    for key in sortby {
        let ord = match (sort_value(a, &key.field), sort_value(b, &key.field)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let o = compare_json(x, y);
                if key.descending { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let id = |v: &Json| v.get("id").and_then(Json::as_str).map(str::to_string);
    id(a).cmp(&id(b))
}

/// Keep the newest row of each id (first-seen order otherwise kept).
pub(super) fn newest_per_id(hits: Vec<Hit>) -> Vec<Hit> {
    let mut slot: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    for hit in hits {
        match slot.get(&hit.id) {
            Some(&i) => {
                if newer(&hit, &out[i]) {
                    out[i] = hit;
                }
            }
            None => {
                slot.insert(hit.id.clone(), out.len());
                out.push(hit);
            }
        }
    }
    out
}

/// Whether `a` is a newer version than `b` ([`Version`]).
pub(super) fn newer(a: &Hit, b: &Hit) -> bool {
    a.version > b.version
}
