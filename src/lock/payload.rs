//! The lock object's payload (the Python tool's JSON) and reading it.

use super::*;

/// The lock object's JSON payload (the Python tool's fields).
#[derive(Debug, Clone, PartialEq)]
pub struct LockPayload {
    /// Owner name.
    pub owner: String,
    /// Process id of the holder.
    pub pid: i64,
    /// Host name of the holder.
    pub hostname: String,
    /// When the lock was acquired or last renewed.
    pub acquired: DateTime<Utc>,
    /// Lease length in hours; `None` when the payload has none (the reader's TTL applies).
    pub ttl_hours: Option<f64>,
}

impl LockPayload {
    /// A payload for this process.
    pub fn for_this_process(owner: &str, ttl_hours: f64, acquired: DateTime<Utc>) -> Self {
        Self {
            owner: owner.to_string(),
            pid: i64::from(std::process::id()),
            hostname: hostname().to_string(),
            acquired,
            ttl_hours: Some(ttl_hours),
        }
    }

    /// Serialise exactly as Python's `json.dumps` does (`", "`/`": "` separators, ASCII only),
    /// with `acquired` as ISO-8601 UTC with microseconds and a `+00:00` offset. A whole-hour TTL
    /// is written as an integer (`12`), a fractional one as Python's `repr` would (`0.25`).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        out.push_str("{\"owner\": ");
        push_json_str(&mut out, &self.owner);
        out.push_str(&format!(", \"pid\": {}, \"hostname\": ", self.pid));
        push_json_str(&mut out, &self.hostname);
        out.push_str(", \"acquired\": ");
        push_json_str(&mut out, &format_acquired(self.acquired));
        if let Some(ttl) = self.ttl_hours {
            if ttl.fract() == 0.0 && ttl.abs() < 1e15 {
                out.push_str(&format!(", \"ttl_hours\": {}", ttl as i64));
            } else {
                out.push_str(&format!(", \"ttl_hours\": {ttl:?}"));
            }
        }
        out.push('}');
        out
    }

    /// Parse a payload written by this crate or by the Python tool (`acquired` with or without
    /// microseconds, with `+00:00`, `Z` or no offset — the latter read as UTC).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or_else(|| "not a JSON object".to_string())?;
        let text = |name: &str| obj.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let acquired = text("acquired").ok_or_else(|| "no \"acquired\" field".to_string())?;
        let acquired = crate::timestamp::parse_utc(&acquired)
            .ok_or_else(|| format!("cannot parse \"acquired\" {acquired:?}"))?;
        Ok(Self {
            owner: text("owner").unwrap_or_else(|| "unknown".to_string()),
            pid: obj
                .get("pid")
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
                .unwrap_or(0),
            hostname: text("hostname").unwrap_or_else(|| "unknown".to_string()),
            acquired,
            ttl_hours: obj.get("ttl_hours").and_then(|v| v.as_f64()),
        })
    }

    /// Whether two payloads name the same holder and acquisition (the "is it still ours" test).
    pub(super) fn same_holder(&self, other: &Self) -> bool {
        self.owner == other.owner
            && self.pid == other.pid
            && self.hostname == other.hostname
            && self.acquired == other.acquired
    }

    /// The lease this payload declares, to the microsecond (never truncated to whole hours or
    /// milliseconds); `None` when it declares none or a non-finite one.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl_hours
            .filter(|t| t.is_finite())
            .map(|t| Duration::microseconds((t * 3_600_000_000.0).round() as i64))
    }
}

/// Read the lock object at `location`, `None` when there is none.
pub async fn read_lock(location: &Location) -> Result<Option<LockPayload>> {
    match location.get_bytes_opt().await? {
        None => Ok(None),
        Some(bytes) => LockPayload::parse(&bytes)
            .map(Some)
            .map_err(|reason| Error::Parse {
                location: location.url().to_string(),
                reason,
            }),
    }
}

/// `2026-11-25T08:30:00.123456+00:00`, as Python's `datetime.now(timezone.utc).isoformat()`.
pub(super) fn format_acquired(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// `3h 05m 09s` (or `0s` for anything not positive).
pub fn human_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A JSON string literal as Python's `json.dumps` writes it (`ensure_ascii=True`).
pub(super) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown`), as
/// written into our payloads and compared by [`status`].
pub fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::env::var("HOSTNAME")
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "unknown".to_string())
    })
}
