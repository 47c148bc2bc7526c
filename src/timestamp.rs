//! The one lenient timestamp parser: STAC item times, inventory `last_modified_date` values,
//! `--since`/`--datetime` arguments and the lock's `acquired` field all go through [`parse`].
//!
//! Accepted: RFC 3339 / ISO 8601 with `T` or a space, with or without fractional seconds and
//! seconds, with a `Z`, a `±hh:mm`/`±hhmm`/`±hh` offset (converted to UTC) or a ` UTC` suffix
//! ([`Precision::Exact`]); the same without any zone, taken as UTC ([`Precision::Naive`]); and a
//! date alone, midnight UTC ([`Precision::DateOnly`]).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// How completely a parsed text specified its instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// A date-time with a zone (`Z`, an offset or `UTC`).
    Exact,
    /// A date-time without a zone, taken as UTC.
    Naive,
    /// A date alone, taken as midnight UTC.
    DateOnly,
}

/// A parsed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The instant, in UTC.
    pub time: DateTime<Utc>,
    /// How it was written.
    pub precision: Precision,
}

impl Parsed {
    /// Microseconds since the Unix epoch.
    pub fn micros(&self) -> i64 {
        self.time.timestamp_micros()
    }
}

/// Texts longer than this are not timestamps (and are not worth trying all formats on).
const MAX_LEN: usize = 64;

/// Parse a timestamp leniently (see the module docs); `None` when it is not one.
pub fn parse(text: &str) -> Option<Parsed> {
    let s = text.trim();
    if s.is_empty() || s.len() > MAX_LEN {
        return None;
    }
    let exact = |time: DateTime<Utc>| {
        Some(Parsed {
            time,
            precision: Precision::Exact,
        })
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return exact(t.with_timezone(&Utc));
    }
    const OFFSET_FORMATS: [&str; 6] = [
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M%#z",
        "%Y-%m-%d %H:%M%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
        "%Y-%m-%dT%H:%M:%S%.f %#z",
    ];
    for format in OFFSET_FORMATS {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return exact(t.with_timezone(&Utc));
        }
    }
    let zoned = s
        .strip_suffix(" UTC")
        .or_else(|| s.strip_suffix('Z'))
        .or_else(|| s.strip_suffix('z'));
    let (naive, precision) = match zoned {
        Some(rest) => (rest.trim_end(), Precision::Exact),
        None => (s, Precision::Naive),
    };
    const NAIVE_FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    for format in NAIVE_FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(Parsed {
                time: t.and_utc(),
                precision,
            });
        }
    }
    let date = NaiveDate::parse_from_str(naive, "%Y-%m-%d").ok()?;
    Some(Parsed {
        time: date.and_hms_opt(0, 0, 0)?.and_utc(),
        precision: Precision::DateOnly,
    })
}

/// [`parse`], keeping only the instant.
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    parse(text).map(|p| p.time)
}

/// [`parse`], as UTC microseconds.
pub fn parse_micros(text: &str) -> Option<i64> {
    parse(text).map(|p| p.micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn zones_are_converted_and_classified() {
        let cases = [
            ("2024-01-01T01:00:00+02:00", at(2023, 12, 31, 23, 0, 0)),
            ("2024-01-01T01:00:00+0200", at(2023, 12, 31, 23, 0, 0)),
            ("2024-01-01 01:00:00-01:30", at(2024, 1, 1, 2, 30, 0)),
            ("2024-01-02 03:04:05 UTC", at(2024, 1, 2, 3, 4, 5)),
            ("2024-01-02T03:04Z", at(2024, 1, 2, 3, 4, 0)),
            ("2019-12-31T22:00:00-05:00", at(2020, 1, 1, 3, 0, 0)),
        ];
        for (text, want) in cases {
            let p = parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!((p.time, p.precision), (want, Precision::Exact), "{text}");
        }
        let p = parse(" 2024-01-02T03:04:05.123456Z ").unwrap();
        assert_eq!(p.micros() % 1_000_000, 123_456);
    }

    #[test]
    fn naive_and_date_only_are_utc() {
        let p = parse("2024-01-02T03:04:05").unwrap();
        assert_eq!(
            (p.time, p.precision),
            (at(2024, 1, 2, 3, 4, 5), Precision::Naive)
        );
        let p = parse("2024-01-02 03:04:05.5").unwrap();
        assert_eq!(p.precision, Precision::Naive);
        assert_eq!(p.micros() % 1_000_000, 500_000);
        let p = parse("2019-07-01").unwrap();
        assert_eq!(
            (p.time, p.precision),
            (at(2019, 7, 1, 0, 0, 0), Precision::DateOnly)
        );
        // Python's isoformat() of an aware UTC time, as the lock writes it.
        assert_eq!(
            parse_utc("2026-11-25T08:30:00.123456+00:00").unwrap(),
            at(2026, 11, 25, 8, 30, 0) + chrono::Duration::microseconds(123_456)
        );
    }

    #[test]
    fn garbage_is_not_a_timestamp() {
        for s in [
            "",
            "soon",
            "2024-13-01",
            "2024-01-02T25:00:00Z",
            "1700000000",
            &"9".repeat(200),
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }
}
