//! Request parameters (GET query strings and POST bodies) → a validated [`SearchRequest`].
//!
//! Every error is an [`Error::InvalidArgument`] or [`Error::Geometry`] naming the parameter, so
//! the API answers 400 with it. Unknown parameters are ignored (STAC API); a parameter given
//! twice in a query string is an error (which one was meant is a guess).

use std::collections::HashMap;

use geo::CoordsIter;
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::query::{
    DatetimeInterval, Fields, SearchRequest, SortBy, parse_bbox, parse_filter, parse_geometry,
};

/// The response format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// `application/geo+json`.
    GeoJson,
    /// stac-geoparquet (`application/vnd.apache.parquet`).
    Parquet,
}

/// Limits the parameters are checked against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) default_limit: usize,
    pub(super) max_limit: usize,
    pub(super) max_vertices: usize,
    pub(super) max_sort_items: usize,
}

/// A validated search.
#[derive(Debug, Clone)]
pub(super) struct SearchParams {
    /// The search (no `limit`: the page size is [`SearchParams::limit`]).
    pub(super) request: SearchRequest,
    /// Page size (clamped to the maximum).
    pub(super) limit: usize,
    /// The paging token, if any (checked against the fingerprint later).
    pub(super) token: Option<String>,
    /// Hash of everything but `limit` and `token`.
    pub(super) fingerprint: u64,
    /// Response format from `f` (the Accept header is read by the caller).
    pub(super) format: Option<Format>,
}

/// Parse a query string (`None`: no parameters). `collection` is the collection of an
/// `/collections/{id}/items` request (its `collections` parameter is then ignored).
pub(super) fn from_query(
    query: Option<&str>,
    limits: Limits,
    collection: Option<&str>,
) -> Result<SearchParams> {
    let mut pairs: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if pairs.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::invalid_argument(
                k.to_string(),
                "given more than once (give it once; lists are comma-separated)",
            ));
        }
    }
    let get = |k: &str| pairs.get(k).map(String::as_str);
    let mut req = SearchRequest::new();
    let bbox = get("bbox").filter(|s| !s.trim().is_empty());
    let intersects = get("intersects").filter(|s| !s.trim().is_empty());
    region(&mut req, bbox, intersects, limits)?;
    if let Some(d) = get("datetime").filter(|s| !s.trim().is_empty()) {
        req.datetime = Some(datetime(d)?);
    }
    req.ids = list(get("ids"));
    req.collections = match collection {
        Some(c) => Some(vec![c.to_string()]),
        None => list(get("collections")),
    };
    if let Some(f) = get("filter").filter(|s| !s.trim().is_empty()) {
        filter_crs(get("filter-crs"))?;
        let lang = get("filter-lang").unwrap_or("cql2-text");
        req.filter = Some(parse_filter(f, Some(lang), "filter")?);
    } else {
        // A lone filter-lang is harmless; check it anyway so a typo is reported.
        if let Some(lang) = get("filter-lang") {
            check_lang(lang)?;
        }
    }
    if let Some(s) = get("sortby").filter(|s| !s.trim().is_empty()) {
        req.sortby = SortBy::parse_list(s, "sortby")?;
    }
    if let Some(f) = get("fields") {
        req.fields = Fields::parse(f);
    }
    let limit = limit_value(get("limit").map(|s| Json::String(s.to_string())), limits)?;
    let format = match get("f") {
        None => None,
        Some(f) => Some(format_value(f)?),
    };
    Ok(SearchParams {
        fingerprint: fingerprint(&req),
        request: SearchRequest {
            max_sort_items: Some(limits.max_sort_items),
            ..req
        },
        limit,
        token: get("token").filter(|t| !t.is_empty()).map(str::to_string),
        format,
    })
}

/// Parse a POST /search body (a JSON object).
pub(super) fn from_body(body: &[u8], limits: Limits) -> Result<SearchParams> {
    let json: Json = if body.iter().all(u8::is_ascii_whitespace) {
        Json::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Error::invalid_argument("body", format!("not a JSON object: {e}")))?
    };
    let Json::Object(obj) = json else {
        return Err(Error::invalid_argument("body", "must be a JSON object"));
    };
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let mut req = SearchRequest::new();
    let bbox = match get("bbox") {
        None => None,
        Some(Json::Array(a)) => {
            let nums: Option<Vec<String>> = a
                .iter()
                .map(|v| v.as_f64().map(|f| f.to_string()))
                .collect();
            Some(nums.map(|n| n.join(",")).ok_or_else(|| {
                Error::invalid_argument("bbox", "expected an array of 4 or 6 numbers")
            })?)
        }
        Some(_) => {
            return Err(Error::invalid_argument(
                "bbox",
                "expected an array of 4 or 6 numbers",
            ));
        }
    };
    let intersects = match get("intersects") {
        None => None,
        Some(v @ Json::Object(_)) => Some(v.to_string()),
        Some(_) => {
            return Err(Error::invalid_argument(
                "intersects",
                "expected a GeoJSON geometry object",
            ));
        }
    };
    region(&mut req, bbox.as_deref(), intersects.as_deref(), limits)?;
    if let Some(d) = get("datetime") {
        let text = d
            .as_str()
            .ok_or_else(|| Error::invalid_argument("datetime", "expected a string"))?;
        if !text.trim().is_empty() {
            req.datetime = Some(datetime(text)?);
        }
    }
    req.ids = string_list(get("ids"), "ids")?;
    req.collections = string_list(get("collections"), "collections")?;
    if obj.get("fields").is_some_and(Json::is_null) {
        return Err(Error::invalid_argument(
            "fields",
            "null is not a fields object (give {\"include\": [...], \"exclude\": [...]} or leave it out)",
        ));
    }
    if let Some(f) = get("filter") {
        match get("filter-crs") {
            None => {}
            Some(Json::String(crs)) => filter_crs(Some(crs))?,
            Some(other) => {
                return Err(Error::invalid_argument(
                    "filter-crs",
                    format!("{other} is not a CRS URI (a string)"),
                ));
            }
        }
        let lang = match get("filter-lang") {
            None => None,
            Some(Json::String(s)) => Some(s.as_str()),
            Some(_) => return Err(Error::invalid_argument("filter-lang", "expected a string")),
        };
        req.filter = Some(match f {
            Json::String(text) => parse_filter(text, Some(lang.unwrap_or("cql2-text")), "filter")?,
            Json::Object(_) => {
                parse_filter(&f.to_string(), Some(lang.unwrap_or("cql2-json")), "filter")?
            }
            _ => {
                return Err(Error::invalid_argument(
                    "filter",
                    "expected a CQL2 JSON object or CQL2 text",
                ));
            }
        });
    }
    req.sortby = match get("sortby") {
        None => Vec::new(),
        Some(Json::String(s)) if s.trim().is_empty() => Vec::new(),
        Some(Json::String(s)) => SortBy::parse_list(s, "sortby")?,
        Some(Json::Array(keys)) => keys.iter().map(sort_key).collect::<Result<Vec<_>>>()?,
        Some(_) => {
            return Err(Error::invalid_argument(
                "sortby",
                "expected an array of {\"field\", \"direction\"} objects",
            ));
        }
    };
    req.fields = match get("fields") {
        None => Fields::default(),
        Some(Json::String(s)) => Fields::parse(s),
        Some(Json::Object(f)) => {
            let include = string_list(f.get("include").filter(|v| !v.is_null()), "fields.include")?;
            let exclude = string_list(f.get("exclude").filter(|v| !v.is_null()), "fields.exclude")?
                .unwrap_or_default();
            // An `include` given as null or [] means the default set (fields extension).
            let include = match (f.contains_key("include"), include) {
                (_, Some(i)) => i,
                (true, None) => DEFAULT_FIELDS
                    .iter()
                    .filter(|f| !exclude.iter().any(|e| e == *f))
                    .map(|s| s.to_string())
                    .collect(),
                (false, None) => Vec::new(),
            };
            Fields { include, exclude }
        }
        Some(_) => {
            return Err(Error::invalid_argument(
                "fields",
                "expected {\"include\": [...], \"exclude\": [...]}",
            ));
        }
    };
    let limit = limit_value(get("limit").cloned(), limits)?;
    let token = match get("token") {
        None => None,
        Some(Json::String(t)) if t.is_empty() => None,
        Some(Json::String(t)) => Some(t.clone()),
        Some(_) => return Err(Error::invalid_argument("token", "expected a string")),
    };
    Ok(SearchParams {
        fingerprint: fingerprint(&req),
        request: SearchRequest {
            max_sort_items: Some(limits.max_sort_items),
            ..req
        },
        limit,
        token,
        format: None,
    })
}

/// The fields extension's default set (an explicit empty `include`).
const DEFAULT_FIELDS: [&str; 8] = [
    "type",
    "stac_version",
    "id",
    "geometry",
    "bbox",
    "links",
    "assets",
    "properties.datetime",
];

/// The `datetime` parameter: like [`DatetimeInterval::parse`], but every bound must be an
/// RFC 3339 date-time with a time zone (the STAC API rule; the command line is more lenient).
fn datetime(text: &str) -> Result<DatetimeInterval> {
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() > 2 {
        return Err(Error::invalid_argument(
            "datetime",
            format!("{text:?} has more than one '/' (give an instant or start/end)"),
        ));
    }
    for part in &parts {
        let p = part.trim();
        if p.is_empty() || p == ".." {
            continue;
        }
        let rfc3339 = p.len() >= 20
            && p.as_bytes()[4] == b'-'
            && matches!(p.as_bytes()[10], b'T' | b't')
            && chrono::DateTime::parse_from_rfc3339(p).is_ok();
        if !rfc3339 {
            return Err(Error::invalid_argument(
                "datetime",
                format!(
                    "{p:?} is not an RFC 3339 date-time (e.g. 2020-01-31T12:00:00Z; a time zone is required)"
                ),
            ));
        }
    }
    DatetimeInterval::parse(text, "datetime")
}

/// Set the search region from `bbox` or `intersects` (not both).
fn region(
    req: &mut SearchRequest,
    bbox: Option<&str>,
    intersects: Option<&str>,
    limits: Limits,
) -> Result<()> {
    match (bbox, intersects) {
        (Some(_), Some(_)) => Err(Error::invalid_argument(
            "bbox",
            "bbox and intersects cannot both be given",
        )),
        (Some(b), None) => {
            req.intersects = Some(parse_bbox(b, "bbox")?);
            Ok(())
        }
        (None, Some(g)) => {
            if !g.trim_start().starts_with('{') {
                return Err(Error::invalid_argument(
                    "intersects",
                    "expected a GeoJSON geometry object",
                ));
            }
            // Bound the work before parsing: a vertex is at least 4 bytes of JSON ("[0,0]").
            if g.len() > limits.max_vertices.saturating_mul(64).max(4096) {
                return Err(too_many_vertices(None, limits));
            }
            let geometry = parse_geometry(g, "intersects")?;
            let n = geometry.coords_count();
            if n > limits.max_vertices {
                return Err(too_many_vertices(Some(n), limits));
            }
            req.intersects = Some(geometry);
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

fn too_many_vertices(n: Option<usize>, limits: Limits) -> Error {
    Error::invalid_argument(
        "intersects",
        format!(
            "the geometry has {} vertices; at most {} are accepted (simplify it, or search by bbox)",
            n.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            limits.max_vertices
        ),
    )
}

fn check_lang(lang: &str) -> Result<()> {
    match lang {
        "cql2-text" | "cql2-json" => Ok(()),
        other => Err(Error::invalid_argument(
            "filter-lang",
            format!("{other:?} is not supported (cql2-text or cql2-json)"),
        )),
    }
}

fn filter_crs(crs: Option<&str>) -> Result<()> {
    match crs {
        None
        | Some("http://www.opengis.net/def/crs/OGC/1.3/CRS84")
        | Some("http://www.opengis.net/def/crs/EPSG/0/4326") => Ok(()),
        Some(other) => Err(Error::invalid_argument(
            "filter-crs",
            format!(
                "{other:?} is not supported (only http://www.opengis.net/def/crs/OGC/1.3/CRS84)"
            ),
        )),
    }
}

/// A comma-separated list (empty: not given).
fn list(text: Option<&str>) -> Option<Vec<String>> {
    let v: Vec<String> = text?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!v.is_empty()).then_some(v)
}

/// A JSON array of strings (empty: not given).
fn string_list(v: Option<&Json>, name: &str) -> Result<Option<Vec<String>>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let items = match v {
        Json::Array(items) => items,
        // Lenient: a comma-separated string (some clients send one).
        Json::String(s) => return Ok(list(Some(s))),
        _ => {
            return Err(Error::invalid_argument(
                name,
                "expected an array of strings",
            ));
        }
    };
    let out: Option<Vec<String>> = items
        .iter()
        .map(|i| i.as_str().map(str::to_string))
        .collect();
    let out = out.ok_or_else(|| Error::invalid_argument(name, "expected an array of strings"))?;
    Ok((!out.is_empty()).then_some(out))
}

fn sort_key(v: &Json) -> Result<SortBy> {
    let bad = || {
        Error::invalid_argument(
            "sortby",
            format!("{v} is not a {{\"field\": ..., \"direction\": \"asc\"|\"desc\"}} object"),
        )
    };
    let field = v.get("field").and_then(Json::as_str).ok_or_else(bad)?;
    if field.trim().is_empty() {
        return Err(bad());
    }
    let descending = match v.get("direction").and_then(|d| d.as_str()) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(bad()),
    };
    Ok(SortBy {
        field: field.trim().to_string(),
        descending,
    })
}

/// `limit`: an integer ≥ 1 (absent: the default); above the maximum it is clamped (STAC API).
fn limit_value(v: Option<Json>, limits: Limits) -> Result<usize> {
    let n = match v {
        None => return Ok(limits.default_limit),
        Some(Json::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0)
                .map(|_| i64::MAX)
        }),
        Some(Json::String(s)) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                // A huge integer is still an integer: clamp it.
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(i64::MAX)
            })
        }
        Some(_) => None,
    };
    match n {
        Some(n) if n >= 1 => Ok(usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(limits.max_limit)),
        Some(n) => Err(Error::invalid_argument(
            "limit",
            format!(
                "{n} is not allowed; give an integer from 1 to {}",
                limits.max_limit
            ),
        )),
        None => Err(Error::invalid_argument(
            "limit",
            format!(
                "not an integer; give an integer from 1 to {}",
                limits.max_limit
            ),
        )),
    }
}

/// The `f` parameter of a query string (a POST's response format), if given.
pub(super) fn format_of_query(query: Option<&str>) -> Result<Option<Format>> {
    let Some(query) = query else {
        return Ok(None);
    };
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "f" {
            return format_value(&v).map(Some);
        }
    }
    Ok(None)
}

fn format_value(f: &str) -> Result<Format> {
    match f {
        "json" | "geojson" => Ok(Format::GeoJson),
        "parquet" | "geoparquet" => Ok(Format::Parquet),
        other => Err(Error::invalid_argument(
            "f",
            format!("{other:?} is not a format (geojson or parquet)"),
        )),
    }
}

/// A hash of the whole search except page size and token.
fn fingerprint(req: &SearchRequest) -> u64 {
    let filter = req
        .filter
        .as_ref()
        .map(|f| serde_json::to_string(f).unwrap_or_default());
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        req.intersects, req.datetime, req.ids, req.collections, filter, req.sortby, req.fields
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        default_limit: 10,
        max_limit: 100,
        max_vertices: 20,
        max_sort_items: 50,
    };

    fn err(query: &str) -> String {
        from_query(Some(query), LIMITS, None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn query_strings_become_requests() {
        let p = from_query(
            Some("bbox=-150,60,-144,63&datetime=2018-01-01T00:00:00Z/..&ids=a,b&collections=c&limit=500&sortby=-properties.datetime&fields=id,-assets&filter=platform%3D%27LC08%27"),
            LIMITS,
            None,
        )
        .unwrap();
        assert!(p.request.intersects.is_some());
        assert!(p.request.datetime.unwrap().end.is_none());
        assert_eq!(
            p.request.ids.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(p.limit, 100, "clamped");
        assert!(p.request.sortby[0].descending);
        assert_eq!(p.request.fields.exclude, vec!["assets".to_string()]);
        assert!(p.request.filter.is_some());
        // limit and token do not change the fingerprint; anything else does.
        let a = from_query(Some("bbox=0,0,1,1&limit=5"), LIMITS, None).unwrap();
        let b = from_query(Some("bbox=0,0,1,1&limit=7&token=x"), LIMITS, None).unwrap();
        let c = from_query(Some("bbox=0,0,1,2"), LIMITS, None).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_eq!(b.token.as_deref(), Some("x"));
        // The items endpoint's collection wins.
        let i = from_query(Some("collections=x"), LIMITS, Some("c")).unwrap();
        assert_eq!(i.request.collections, Some(vec!["c".to_string()]));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (q, name) in [
            ("bbox=[100.0, 0.0, 105.0, 1.0]", "bbox"),
            ("bbox=100,1,105,0", "bbox"),
            ("bbox=0,0,1", "bbox"),
            ("bbox=0,0,1,1&intersects=%7B%7D", "bbox"),
            ("intersects=POINT(0 0)", "intersects"),
            ("datetime=2021-13-01", "datetime"),
            ("datetime=1985-04-12", "datetime"),
            ("datetime=1985-12-12T23:20:50.52", "datetime"),
            ("datetime=1937-01-01T12:00:27.87%2B0100", "datetime"),
            ("datetime=1985-04-12T23:20:50,52Z", "datetime"),
            ("datetime=1990-12-31T23:59:61Z", "datetime"),
            (
                "datetime=/1984-04-12T23:20:50.52Z/1985-04-12T23:20:50.52Z",
                "datetime",
            ),
            ("datetime=../..", "datetime"),
            ("limit=0", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("filter=a%20%3E%3E%3E%201", "filter"),
            ("filter=a=1&filter-lang=sql", "filter"),
            ("filter=a=1&filter-crs=EPSG:3857", "filter-crs"),
            ("sortby=a,,b", "sortby"),
            ("f=xml", "f"),
            ("limit=1&limit=2", "limit"),
        ] {
            let e = err(q);
            assert!(e.contains(name), "{q}: {e}");
        }
        let ring: Vec<String> = (0..30)
            .map(|i| format!("[{}, 0]", i as f64 / 10.0))
            .collect();
        let g = format!(
            r#"{{"type":"LineString","coordinates":[{}]}}"#,
            ring.join(",")
        );
        let q = format!(
            "intersects={}",
            url::form_urlencoded::byte_serialize(g.as_bytes()).collect::<String>()
        );
        let e = err(&q);
        assert!(e.contains("intersects") && e.contains("30 vertices"), "{e}");
    }

    #[test]
    fn post_bodies_become_requests() {
        let p = from_body(
            br#"{"bbox":[100.0,0.0,0.0,105.0,1.0,1.0],"limit":2,"collections":["c"],
                "filter":{"op":"=","args":[{"property":"platform"},"LC08"]},
                "sortby":[{"field":"properties.datetime","direction":"desc"}],
                "fields":{"include":["id"],"exclude":null},"token":"t"}"#,
            LIMITS,
        )
        .unwrap();
        assert!(p.request.intersects.is_some() && p.request.filter.is_some());
        assert_eq!(p.limit, 2);
        assert!(p.request.sortby[0].descending);
        assert_eq!(p.request.fields.include, vec!["id".to_string()]);
        assert_eq!(p.token.as_deref(), Some("t"));
        assert_eq!(from_body(b"", LIMITS).unwrap().limit, 10);
        for (body, name) in [
            (r#"{"bbox":"100.0, 0.0, 105.0, 1.0"}"#, "bbox"),
            (r#"{"bbox":[0,0,0,1,1]}"#, "bbox"),
            (r#"{"bbox":[100.0,1.0,105.0,0.0]}"#, "bbox"),
            (r#"{"limit":-1}"#, "limit"),
            (r#"{"limit":"x"}"#, "limit"),
            (r#"{"ids":5}"#, "ids"),
            (r#"{"fields":null}"#, "fields"),
            (r#"{"datetime":"1985-04-12"}"#, "datetime"),
            (r#"{"datetime":5}"#, "datetime"),
            (r#"{"sortby":[{"field":"a","direction":"up"}]}"#, "sortby"),
            (r#"{"filter":7}"#, "filter"),
            (r#"{"intersects":"POINT(0 0)"}"#, "intersects"),
            ("[1]", "body"),
            ("{", "body"),
        ] {
            let e = from_body(body.as_bytes(), LIMITS).unwrap_err().to_string();
            assert!(e.contains(name), "{body}: {e}");
        }
    }
}
