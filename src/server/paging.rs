//! `next` tokens and the cache of suspended result streams.
//!
//! A token is base64url (no padding) of `{"v":1,"s":<snapshot id or null>,"q":"<fingerprint>",
//! "o":<items already returned>}`. It is opaque to clients and validated on the way in: a token
//! that does not decode, has another version, or belongs to another query is a 400 naming
//! `token`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::stream::{BoxStream, Peekable};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::query::{Found, SearchStats};

/// Longest token accepted (a real one is well under 200 bytes).
const MAX_TOKEN_BYTES: usize = 1024;

/// A decoded paging token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Token {
    /// Format version.
    v: u8,
    /// The snapshot the search reads.
    pub(super) s: Option<i64>,
    /// Fingerprint of the query (hex of xxh3-64).
    #[serde(with = "hex_u64")]
    pub(super) q: u64,
    /// Items already returned.
    pub(super) o: u64,
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

impl Token {
    pub(super) fn new(snapshot: Option<i64>, fingerprint: u64, offset: u64) -> Self {
        Self {
            v: 1,
            s: snapshot,
            q: fingerprint,
            o: offset,
        }
    }

    /// The token text.
    pub(super) fn encode(&self) -> String {
        // Serialising this struct cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decode and check a token given for a query with `fingerprint`.
    pub(super) fn decode(text: &str, fingerprint: u64) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid_argument(
                "token",
                format!(
                    "{why}; use the `next` link of the previous page, or start again without a token"
                ),
            )
        };
        if text.len() > MAX_TOKEN_BYTES {
            return Err(bad("the token is too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| bad("not a token this server issued (not base64url)"))?;
        let token: Token =
            serde_json::from_slice(&bytes).map_err(|_| bad("not a token this server issued"))?;
        if token.v != 1 {
            return Err(bad(&format!("token version {} is not supported", token.v)));
        }
        if token.q != fingerprint {
            return Err(bad(
                "the token belongs to a different query (the parameters other than limit and \
                 token must stay the same while paging)",
            ));
        }
        Ok(token)
    }
}

/// A result stream suspended after the items already returned (a peek tells whether more
/// follow).
pub(super) type Suspended = Peekable<BoxStream<'static, Result<Found>>>;

/// Where a suspended stream resumes: (snapshot, fingerprint, offset).
type Key = (Option<i64>, u64, u64);

/// A suspended stream with its search's counters (which say the bytes it holds).
pub(super) type Paged = (Pin<Box<Suspended>>, Arc<SearchStats>);

/// A bounded cache of suspended streams, evicted by age and, when full, oldest first. A
/// sorted search's stream holds its remaining items (its size hint says how many): those are
/// bounded in total by `held_budget`, oldest evicted first. An unsorted stream holds the
/// decoded rows it read ahead and the ids it returned ([`SearchStats::held_bytes`]): those are
/// bounded in total by `bytes_budget`, oldest evicted first (measured on the serve bench:
/// region searches abandoned after their first page held ~0.9 MB each, 96 of them ~85 MB).
/// Several clients walking the same query hold the same tokens: each keeps its own stream
/// (measured with 64 clients paging one query, one stream per token made most pages a
/// recomputation).
pub(super) struct PageCache {
    capacity: usize,
    ttl: Duration,
    held_budget: usize,
    bytes_budget: u64,
    /// (resume point, stored at, items held, stream); a few hundred at most, scanned.
    entries: Vec<(Key, Instant, usize, Paged)>,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("capacity", &self.capacity)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl PageCache {
    pub(super) fn new(
        capacity: usize,
        ttl: Duration,
        held_budget: usize,
        bytes_budget: u64,
    ) -> Self {
        Self {
            capacity,
            ttl,
            held_budget,
            bytes_budget,
            entries: Vec::new(),
        }
    }

    fn held(&self) -> usize {
        self.entries.iter().map(|(_, _, h, _)| h).sum()
    }

    fn held_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|(_, _, _, (_, stats))| stats.held_bytes())
            .sum()
    }

    /// Take a stream that resumes at `token` (it is removed: one reader at a time).
    pub(super) fn take(&mut self, token: &Token, now: Instant) -> Option<Paged> {
        self.evict(now);
        let key = (token.s, token.q, token.o);
        let i = self.entries.iter().position(|(k, ..)| *k == key)?;
        Some(self.entries.swap_remove(i).3)
    }

    /// Keep a stream that resumes at `token`.
    pub(super) fn put(&mut self, token: &Token, paged: Paged, now: Instant) {
        // Items already materialised in the stream (a sorted result); 0 for a lazy one.
        let held = futures::Stream::size_hint(&paged.0).0;
        let bytes = paged.1.held_bytes();
        if self.capacity == 0 || held > self.held_budget || bytes > self.bytes_budget {
            return;
        }
        self.evict(now);
        while self.entries.len() >= self.capacity
            || self.held() + held > self.held_budget
            || self.held_bytes() + bytes > self.bytes_budget
        {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t, _, _))| *t)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    drop(self.entries.swap_remove(i));
                }
                None => break,
            }
        }
        self.entries
            .push(((token.s, token.q, token.o), now, held, paged));
    }

    fn evict(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.entries
            .retain(|(_, t, _, _)| now.saturating_duration_since(*t) < ttl);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::Value as Json;

    #[test]
    fn tokens_round_trip_and_bad_ones_name_the_parameter() {
        let t = Token::new(Some(42), 0xdead_beef, 30);
        let text = t.encode();
        assert_eq!(Token::decode(&text, 0xdead_beef).unwrap(), t);
        for bad in ["", "!!!", "bm90IGpzb24", &"A".repeat(2000)] {
            let e = Token::decode(bad, 1).unwrap_err();
            assert!(e.to_string().starts_with("token:"), "{bad}: {e}");
        }
        let e = Token::decode(&text, 7).unwrap_err();
        assert!(e.to_string().contains("different query"), "{e}");
        let v2 = URL_SAFE_NO_PAD.encode(br#"{"v":2,"s":null,"q":"00","o":0}"#);
        assert!(
            Token::decode(&v2, 0)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
    }

    fn stream() -> Paged {
        (
            Box::pin(futures::stream::empty().boxed().peekable()),
            Arc::default(),
        )
    }

    /// A stream whose search holds `bytes`.
    fn holding(bytes: u64) -> Paged {
        let (s, stats) = stream();
        stats
            .held_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        (s, stats)
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_by_age() {
        let now = Instant::now();
        let mut c = PageCache::new(2, Duration::from_secs(10), 100, 1 << 20);
        let t = |o| Token::new(None, 1, o);
        c.put(&t(1), stream(), now);
        c.put(&t(2), stream(), now + Duration::from_secs(1));
        c.put(&t(3), stream(), now + Duration::from_secs(2));
        assert_eq!(c.len(), 2);
        // The oldest went first.
        assert!(c.take(&t(1), now + Duration::from_secs(2)).is_none());
        assert!(c.take(&t(2), now + Duration::from_secs(2)).is_some());
        // Taken means gone; expired means gone.
        assert!(c.take(&t(2), now + Duration::from_secs(2)).is_none());
        assert!(c.take(&t(3), now + Duration::from_secs(13)).is_none());
    }

    fn sorted(n: usize) -> Paged {
        let items = (0..n).map(|i| Ok(Found::from_json(Json::from(i))));
        (
            Box::pin(
                futures::stream::iter(items.collect::<Vec<_>>())
                    .boxed()
                    .peekable(),
            ),
            Arc::default(),
        )
    }

    #[test]
    fn bytes_held_by_suspended_streams_are_bounded() {
        let now = Instant::now();
        let mut c = PageCache::new(8, Duration::from_secs(10), 100, 1000);
        let t = |o| Token::new(None, 1, o);
        let at = |s| now + Duration::from_secs(s);
        c.put(&t(1), holding(400), at(0));
        c.put(&t(2), holding(400), at(1));
        assert_eq!(c.held_bytes(), 800);
        // 800 + 400 > 1000: the oldest makes room.
        c.put(&t(3), holding(400), at(2));
        assert_eq!(c.held_bytes(), 800);
        assert!(c.take(&t(1), at(2)).is_none());
        // Larger than the whole budget: not kept at all.
        c.put(&t(4), holding(1001), at(3));
        assert!(c.take(&t(4), at(3)).is_none());
        assert!(c.take(&t(2), at(3)).is_some());
        assert!(c.take(&t(3), at(3)).is_some());
        // What a stream holds is read when it is stored: one that grew since counts anew.
        let (s, stats) = holding(100);
        c.put(&t(5), (s, Arc::clone(&stats)), at(4));
        stats
            .held_bytes
            .store(900, std::sync::atomic::Ordering::Relaxed);
        c.put(&t(6), holding(200), at(5));
        assert!(c.take(&t(5), at(5)).is_none());
        assert!(c.take(&t(6), at(5)).is_some());
    }

    #[test]
    fn clients_walking_the_same_query_keep_a_stream_each() {
        let now = Instant::now();
        let mut c = PageCache::new(8, Duration::from_secs(10), 100, 1 << 20);
        let t = Token::new(None, 1, 100);
        c.put(&t, stream(), now);
        c.put(&t, stream(), now);
        assert_eq!(c.len(), 2);
        assert!(c.take(&t, now).is_some());
        assert!(c.take(&t, now).is_some());
        assert!(c.take(&t, now).is_none());
    }

    #[test]
    fn materialised_items_held_by_the_cache_are_bounded() {
        let now = Instant::now();
        let mut c = PageCache::new(8, Duration::from_secs(10), 100, 1 << 20);
        let t = |o| Token::new(None, 1, o);
        c.put(&t(1), sorted(60), now);
        c.put(&t(2), stream(), now + Duration::from_secs(1));
        // 60 + 60 > 100: the oldest sorted result makes room.
        c.put(&t(3), sorted(60), now + Duration::from_secs(2));
        assert_eq!(c.held(), 60);
        assert!(c.take(&t(1), now + Duration::from_secs(2)).is_none());
        assert!(c.take(&t(2), now + Duration::from_secs(2)).is_some());
        // Larger than the whole budget: not kept at all.
        c.put(&t(4), sorted(101), now + Duration::from_secs(3));
        assert!(c.take(&t(4), now + Duration::from_secs(3)).is_none());
        assert!(c.take(&t(3), now + Duration::from_secs(3)).is_some());
    }
}
