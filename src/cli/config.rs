//! The YAML config file (same sections as the Python tool: `catalog`, `grid`, `ingest`).
//! Unknown keys are errors. Command-line flags override the file.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub catalog: CatalogSection,
    #[serde(default)]
    pub grid: GridSection,
    #[serde(default)]
    pub ingest: IngestSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSection {
    pub db_path: Option<String>,
    pub warehouse: Option<String>,
    pub hash_index_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSection {
    #[serde(rename = "type")]
    pub grid_type: Option<String>,
    pub resolution: Option<u8>,
    pub boundaries_path: Option<String>,
    pub id_field: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    pub chunk_size: Option<usize>,
    pub max_workers: Option<usize>,
    pub batch_add_files: Option<bool>,
    pub concurrency: Option<usize>,
    pub commit_every: Option<usize>,
    pub items_root: Option<String>,
    pub since: Option<String>,
}

impl ConfigFile {
    /// Read and parse a config file.
    pub async fn load(path: &str) -> anyhow::Result<Self> {
        let bytes = crate::store::Location::parse(path)?.get_bytes().await?;
        let cfg: ConfigFile = serde_yaml::from_slice(&bytes)
            .map_err(|e| super::UsageError(format!("config file {path}: {e}")))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python_style_config_and_rejects_unknown_keys() {
        let cfg: ConfigFile = serde_yaml::from_str(
            "catalog:\n  db_path: /tmp/c.db\n  warehouse: /tmp/wh\ngrid:\n  type: h3\n  resolution: 2\ningest:\n  chunk_size: 500\n  max_workers: 16\n  batch_add_files: true\n",
        )
        .unwrap();
        assert_eq!(cfg.grid.resolution, Some(2));
        assert_eq!(cfg.catalog.db_path.as_deref(), Some("/tmp/c.db"));
        assert!(serde_yaml::from_str::<ConfigFile>("grid:\n  resolutoin: 2\n").is_err());
        assert!(
            serde_yaml::from_str::<ConfigFile>("")
                .map(|c| c.grid.resolution.is_none())
                .unwrap_or(true)
        );
    }
}
