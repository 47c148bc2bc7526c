//! Spatial grids: footprint → partition keys. (temporary stub, replaced by the grid branch)
#![allow(missing_docs)]
use crate::error::{Error, Result};

pub const NONE_KEY: &str = "__none__";

pub trait Partitioner: Send + Sync + std::fmt::Debug {
    fn keys(&self, geometry: Option<&geo_types::Geometry<f64>>) -> Vec<String>;
    fn grid(&self) -> &GridConfig;
}

#[derive(Debug, Clone, PartialEq)]
pub enum GridConfig {
    H3 {
        resolution: u8,
    },
    GeoJson {
        boundaries_path: String,
        id_field: String,
    },
}

impl GridConfig {
    pub fn grid_type(&self) -> &'static str {
        match self {
            GridConfig::H3 { .. } => "h3",
            GridConfig::GeoJson { .. } => "geojson",
        }
    }
}

#[derive(Debug)]
pub struct H3Partitioner {
    grid: GridConfig,
    res: h3o::Resolution,
}

impl H3Partitioner {
    pub fn new(resolution: u8) -> Result<Self> {
        let res =
            h3o::Resolution::try_from(resolution).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            grid: GridConfig::H3 { resolution },
            res,
        })
    }
}

impl Partitioner for H3Partitioner {
    fn keys(&self, geometry: Option<&geo_types::Geometry<f64>>) -> Vec<String> {
        use geo::CoordsIter;
        let Some(g) = geometry else {
            return vec![NONE_KEY.to_string()];
        };
        let mut out: Vec<String> = g
            .coords_iter()
            .filter_map(|c| h3o::LatLng::new(c.y, c.x).ok())
            .map(|ll| ll.to_cell(self.res).to_string())
            .collect();
        out.sort();
        out.dedup();
        if out.is_empty() {
            out.push(NONE_KEY.to_string());
        }
        out
    }
    fn grid(&self) -> &GridConfig {
        &self.grid
    }
}

pub fn geometry_from_json(value: &serde_json::Value) -> Result<Option<geo_types::Geometry<f64>>> {
    if value.is_null() {
        return Ok(None);
    }
    let g = serde_json::from_value::<geojson::Geometry>(value.clone()).map_err(|e| {
        Error::Geometry {
            context: "item".into(),
            reason: e.to_string(),
        }
    })?;
    let g: geo_types::Geometry<f64> =
        g.try_into().map_err(|e: geojson::Error| Error::Geometry {
            context: "item".into(),
            reason: e.to_string(),
        })?;
    use geo::CoordsIter;
    if g.coords_count() == 0 {
        return Ok(None);
    }
    Ok(Some(g))
}

#[derive(Debug)]
pub struct RegionPartitioner {
    grid: GridConfig,
}

impl RegionPartitioner {
    pub fn from_geojson(_bytes: &[u8], boundaries_path: &str, id_field: &str) -> Result<Self> {
        Ok(Self {
            grid: GridConfig::GeoJson {
                boundaries_path: boundaries_path.into(),
                id_field: id_field.into(),
            },
        })
    }
}

impl Partitioner for RegionPartitioner {
    fn keys(&self, _geometry: Option<&geo_types::Geometry<f64>>) -> Vec<String> {
        vec![NONE_KEY.to_string()]
    }
    fn grid(&self) -> &GridConfig {
        &self.grid
    }
}
