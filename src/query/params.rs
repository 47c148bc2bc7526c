//! Search parameters as a command line or a binding receives them (text and lists), turned into
//! a [`SearchRequest`] by one rule. Errors name each parameter with the caller's spelling.

use super::{
    DatetimeInterval, Fields, SearchRequest, SortBy, parse_bbox, parse_filter, parse_geometry,
    parse_point,
};
use crate::error::{Error, Result};

/// How the caller spells parameter names (in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgStyle {
    /// Command-line flags: `--filter-lang`.
    Flags,
    /// Keyword arguments: `filter_lang`.
    Keywords,
}

/// The parameters of an item search, unparsed.
#[derive(Debug, Clone, Default)]
pub struct SearchParams {
    /// GeoJSON (geometry, Feature or FeatureCollection) or WKT.
    pub intersects: Option<String>,
    /// `minx,miny,maxx,maxy` (or the 6-number form); `minx > maxx` crosses the antimeridian.
    pub bbox: Option<String>,
    /// `lon,lat`.
    pub point: Option<String>,
    /// An instant or an interval `start/end` (`..` or empty for an open end).
    pub datetime: Option<String>,
    /// Only these ids (blank entries ignored).
    pub ids: Vec<String>,
    /// Only these collections (blank entries ignored).
    pub collections: Vec<String>,
    /// CQL2 text or JSON.
    pub filter: Option<String>,
    /// `cql2-text` or `cql2-json` (default: JSON when the filter starts with `{`).
    pub filter_lang: Option<String>,
    /// Sort keys, e.g. `+datetime,-percent_valid_pixels`.
    pub sortby: Option<String>,
    /// Cap on the number of items (page size of a STAC API).
    pub limit: Option<usize>,
    /// Cap on the number of items.
    pub max_items: Option<usize>,
    /// Member selection, e.g. `id,properties.datetime` or `-assets`.
    pub fields: Option<String>,
    /// Keep `grid_partition` as a property of returned items.
    pub with_grid_partition: bool,
}

impl SearchParams {
    /// The request; each error names its parameter the way `style` spells it.
    pub fn request(&self, style: ArgStyle) -> Result<SearchRequest> {
        let name = |n: &str| match style {
            ArgStyle::Flags => format!("--{}", n.replace('_', "-")),
            ArgStyle::Keywords => n.to_string(),
        };
        let regions = [
            self.intersects.is_some(),
            self.bbox.is_some(),
            self.point.is_some(),
        ];
        if regions.iter().filter(|r| **r).count() > 1 {
            return Err(Error::invalid_argument(
                name("intersects"),
                format!(
                    "give one of {}, {} and {}",
                    name("intersects"),
                    name("bbox"),
                    name("point")
                ),
            ));
        }
        let mut req = SearchRequest::new();
        if let Some(text) = &self.intersects {
            req.intersects = Some(parse_geometry(text, &name("intersects"))?);
        } else if let Some(b) = &self.bbox {
            req.intersects = Some(parse_bbox(b, &name("bbox"))?);
        } else if let Some(p) = &self.point {
            req.intersects = Some(parse_point(p, &name("point"))?);
        }
        if let Some(d) = &self.datetime {
            req.datetime = Some(DatetimeInterval::parse(d, &name("datetime"))?);
        }
        let list = |v: &[String]| -> Option<Vec<String>> {
            let v: Vec<String> = v
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            (!v.is_empty()).then_some(v)
        };
        req.ids = list(&self.ids);
        req.collections = list(&self.collections);
        match (&self.filter, &self.filter_lang) {
            (Some(f), lang) => {
                req.filter = Some(parse_filter(f, lang.as_deref(), &name("filter"))?);
            }
            (None, Some(_)) => {
                return Err(Error::invalid_argument(
                    name("filter_lang"),
                    format!("needs {}", name("filter")),
                ));
            }
            (None, None) => {}
        }
        if let Some(s) = &self.sortby {
            req.sortby = SortBy::parse_list(s, &name("sortby"))?;
        }
        req.limit = self.limit;
        req.max_items = self.max_items;
        if let Some(f) = &self.fields {
            req.fields = Fields::parse(f);
        }
        req.with_grid_partition = self.with_grid_partition;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_a_request_and_errors_use_the_callers_names() {
        let p = SearchParams {
            bbox: Some("-50,60,-40,70".into()),
            datetime: Some("2020-01-01/..".into()),
            ids: vec![" a ".into(), "".into()],
            filter: Some("platform = 'LC08'".into()),
            sortby: Some("-datetime".into()),
            max_items: Some(3),
            ..SearchParams::default()
        };
        let req = p.request(ArgStyle::Flags).unwrap();
        assert!(req.intersects.is_some() && req.datetime.is_some() && req.filter.is_some());
        assert_eq!(req.ids, Some(vec!["a".to_string()]));
        assert_eq!(req.max_items, Some(3));
        let bad = SearchParams {
            filter_lang: Some("cql2-text".into()),
            ..SearchParams::default()
        };
        let cli = bad.request(ArgStyle::Flags).unwrap_err().to_string();
        assert!(
            cli.contains("--filter-lang") && cli.contains("--filter"),
            "{cli}"
        );
        let py = bad.request(ArgStyle::Keywords).unwrap_err().to_string();
        assert!(py.starts_with("filter_lang"), "{py}");
        let two = SearchParams {
            bbox: Some("0,0,1,1".into()),
            point: Some("0,0".into()),
            ..SearchParams::default()
        };
        assert!(two.request(ArgStyle::Keywords).is_err());
    }
}
