//! S3 Inventory `manifest.json`.
//!
//! Fields used: `files[].key` (the data files, read in the listed order), `destinationBucket`
//! (an ARN `arn:aws:s3:::name` or a plain name; when absent the manifest's own bucket),
//! `fileFormat` (`CSV` or `Parquet`; `ORC` is refused with a clear error) and, for CSV,
//! `fileSchema` (for example `Bucket, Key, Size, LastModifiedDate`), which names the columns of
//! the header-less AWS CSV files so `since` works on them. `sourceBucket` is parsed and exposed
//! but not needed. CSV data files are gzip when their key ends with `.gz` (AWS always writes
//! `.csv.gz`), and their keys are URL-decoded (AWS documents them as URL-encoded).
//!
//! # Where data files are read from
//!
//! * Manifest on S3 (`s3://X/…/manifest.json`): `s3://<destinationBucket>/<key>`.
//! * Otherwise the manifest is taken to sit in a copy of the destination bucket, and these
//!   places are tried in order; the first that exists is read, and when none does the error
//!   lists all of them:
//!   1. `memory://<destinationBucket>/<key>` (only for a `memory://` manifest: a memory store
//!      name plays the role of a bucket);
//!   2. `<A>/<key>` for each ancestor directory `A` of the manifest named like the destination
//!      bucket, deepest first (a local mirror such as `/mirror/<bucket>/…/manifest.json`);
//!   3. `<A>/<key>` where `A` is the ancestor directory below which the manifest's own path
//!      repeats the leading directories of the key — AWS writes
//!      `<prefix>/<source>/<config>/<date>/manifest.json` next to
//!      `<prefix>/<source>/<config>/data/<file>`, so a copy of that tree resolves wherever it
//!      was put;
//!   4. `<manifest directory>/<key>` (hand-written manifests with keys relative to themselves).
//!
//! A manifest that cannot be used (invalid JSON, ORC or an unknown `fileFormat`, a `fileSchema`
//! without Bucket and Key, no destination bucket for an S3 manifest) is not an inventory (exit
//! 2, see [`super`]); each data file is checked on its own like a plain inventory file, and
//! malformed rows name the data file.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::csv::{self, Columns, CsvOptions, Layout, find_columns};
use super::{Filter, Flow, Message, not_an_inventory, parquet};
use crate::error::{Error, Result};
use crate::store::Location;

/// The parts of an S3 Inventory `manifest.json` earthcatalog uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The inventoried bucket (informational).
    #[serde(default)]
    pub source_bucket: Option<String>,
    /// Where the data files are, as an ARN or a bucket name.
    #[serde(default)]
    pub destination_bucket: Option<String>,
    /// `CSV`, `Parquet` or `ORC`.
    #[serde(default)]
    pub file_format: Option<String>,
    /// Comma-separated column names of the data files.
    #[serde(default)]
    pub file_schema: Option<String>,
    /// The data files.
    pub files: Vec<ManifestFile>,
}

/// One data file listed in a manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestFile {
    /// Key of the data file in the destination bucket.
    pub key: String,
    /// Size in bytes, when given.
    #[serde(default)]
    pub size: Option<u64>,
}

/// The data file formats of S3 Inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// Gzip CSV without a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Apache ORC (not supported).
    Orc,
}

impl Manifest {
    /// Parse manifest JSON; `location` names it in errors.
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| not_an_inventory(location, format!("invalid manifest.json: {e}")))
    }

    /// The destination bucket name (the part after `:::` of an ARN).
    pub fn destination_bucket_name(&self) -> Option<&str> {
        let dest = self.destination_bucket.as_deref()?.trim();
        let name = match dest.rsplit_once(":::") {
            Some((_, name)) => name,
            None => dest,
        };
        let name = name.trim_matches('/');
        (!name.is_empty()).then_some(name)
    }

    /// The data file format. Without `fileFormat`, guessed from the first data key
    /// (`.parquet` → Parquet, otherwise CSV).
    pub fn format(&self, location: &str) -> Result<ManifestFormat> {
        match self.file_format.as_deref().map(str::trim) {
            Some(f) if f.eq_ignore_ascii_case("csv") => Ok(ManifestFormat::Csv),
            Some(f) if f.eq_ignore_ascii_case("parquet") => Ok(ManifestFormat::Parquet),
            Some(f) if f.eq_ignore_ascii_case("orc") => Ok(ManifestFormat::Orc),
            Some(other) => Err(not_an_inventory(
                location,
                format!("unknown fileFormat {other:?} (expected CSV or Parquet)"),
            )),
            None => {
                let parquet = self
                    .files
                    .first()
                    .is_some_and(|f| f.key.to_ascii_lowercase().ends_with(".parquet"));
                Ok(if parquet {
                    ManifestFormat::Parquet
                } else {
                    ManifestFormat::Csv
                })
            }
        }
    }

    /// Column positions named by `fileSchema` (CSV only); `None` without a schema.
    fn csv_layout(&self, location: &str) -> Result<Option<Layout>> {
        let Some(schema) = self.file_schema.as_deref() else {
            return Ok(None);
        };
        match find_columns(schema.split(',')) {
            super::csv::FoundColumns {
                bucket: Some(bucket),
                key: Some(key),
                last_modified,
                size,
            } => Ok(Some(Layout {
                bucket,
                key,
                last_modified,
                size,
            })),
            _ => Err(not_an_inventory(
                location,
                format!("fileSchema {schema:?} has no Bucket and Key columns"),
            )),
        }
    }
}

/// Read every data file of the manifest at `loc` through `filter` into `tx`.
pub(super) async fn read_manifest(
    loc: &Location,
    filter: &Arc<Filter>,
    tx: &mpsc::Sender<Message>,
) -> Result<Flow> {
    let url = loc.url();
    let bytes = loc
        .get_bytes_opt()
        .await?
        .ok_or_else(|| Error::inventory(url, "manifest not found"))?;
    let manifest = Manifest::parse(&bytes, url)?;
    let format = manifest.format(url)?;
    let columns = match format {
        ManifestFormat::Orc => {
            return Err(not_an_inventory(
                url,
                "ORC inventories are not supported; configure the S3 Inventory to write CSV or \
                 Parquet",
            ));
        }
        ManifestFormat::Csv => match manifest.csv_layout(url)? {
            Some(layout) => Columns::Fixed(layout),
            None => Columns::Detect,
        },
        ManifestFormat::Parquet => Columns::Detect,
    };
    let (scheme, own_bucket) = scheme_and_authority(url);
    let dest = manifest
        .destination_bucket_name()
        .map(str::to_string)
        .or_else(|| (scheme != "file").then(|| own_bucket.to_string()));
    for file in &manifest.files {
        if filter.exhausted() {
            return Ok(Flow::Stop);
        }
        let data = resolve_data_file(loc, dest.as_deref(), &file.key).await?;
        let flow = match format {
            ManifestFormat::Parquet => {
                parquet::read_parquet(&data, filter, tx, parquet::BATCH_ROWS).await?
            }
            _ => {
                let opts = CsvOptions {
                    gzip: file.key.to_ascii_lowercase().ends_with(".gz"),
                    columns,
                    url_decode_keys: true,
                };
                csv::read_csv(&data, opts, filter.clone(), tx).await?
            }
        };
        if flow == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// The data files of the manifest at `loc`, resolved as [`read_manifest`] reads them (see
/// the module docs), in the listed order. Backfill plans record their identity.
pub async fn data_files(loc: &Location) -> Result<Vec<Location>> {
    let url = loc.url();
    let bytes = loc
        .get_bytes_opt()
        .await?
        .ok_or_else(|| Error::inventory(url, "manifest not found"))?;
    let manifest = Manifest::parse(&bytes, url)?;
    let (scheme, own_bucket) = scheme_and_authority(url);
    let dest = manifest
        .destination_bucket_name()
        .map(str::to_string)
        .or_else(|| (scheme != "file").then(|| own_bucket.to_string()));
    let mut out = Vec::with_capacity(manifest.files.len());
    for file in &manifest.files {
        out.push(resolve_data_file(loc, dest.as_deref(), &file.key).await?);
    }
    Ok(out)
}

/// `("s3", "bucket")` for `s3://bucket/…`, `("file", "")` for local files.
fn scheme_and_authority(url: &str) -> (&str, &str) {
    match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest.split('/').next().unwrap_or_default()),
        None => ("file", ""),
    }
}

/// The data file for `key`: the first existing candidate (see the module docs).
async fn resolve_data_file(manifest: &Location, dest: Option<&str>, key: &str) -> Result<Location> {
    // Off the async worker, for the same reason as `parse_location`.
    let candidates = {
        let (m, dest, k) = (manifest.clone(), dest.map(str::to_string), key.to_string());
        tokio::task::spawn_blocking(move || data_file_candidates(&m, dest.as_deref(), &k))
            .await
            .map_err(|e| {
                Error::inventory(manifest.url(), format!("resolving {key:?} failed: {e}"))
            })??
    };
    if let [only] = candidates.as_slice() {
        return Ok(only.clone());
    }
    for candidate in &candidates {
        match candidate.store().head(candidate.prefix()).await {
            Ok(_) => return Ok(candidate.clone()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(candidate.url(), e)),
        }
    }
    let tried: Vec<&str> = candidates.iter().map(Location::url).collect();
    Err(Error::inventory(
        manifest.url(),
        format!(
            "data file {key:?} not found (looked at {})",
            tried.join(", ")
        ),
    ))
}

/// Where the data file `key` may be, most likely first (see the module docs).
pub(super) fn data_file_candidates(
    manifest: &Location,
    dest: Option<&str>,
    key: &str,
) -> Result<Vec<Location>> {
    let key = key.trim_start_matches('/');
    let (scheme, _) = scheme_and_authority(manifest.url());
    let bucket_url = |scheme: &str, bucket: &str| -> Result<Location> {
        Location::parse(&format!("{scheme}://{bucket}/{key}"))
            .map_err(|e| Error::inventory(manifest.url(), e.to_string()))
    };
    if scheme == "s3" || scheme == "s3a" {
        let bucket = dest
            .ok_or_else(|| not_an_inventory(manifest.url(), "manifest has no destinationBucket"))?;
        return Ok(vec![bucket_url("s3", bucket)?]);
    }
    let mut candidates = Vec::new();
    if let (Some(bucket), "memory") = (dest, scheme) {
        candidates.push(bucket_url("memory", bucket)?);
    }
    // ancestors[d] is the directory made of the manifest's first d path segments.
    let mut ancestors = Vec::new();
    let mut current = manifest.clone();
    while let Some((parent, _)) = current.split_last() {
        ancestors.push(parent.clone());
        current = parent;
    }
    ancestors.reverse();
    let segments: Vec<&str> = manifest.prefix().as_ref().split('/').collect();
    let dirs = segments
        .get(..ancestors.len().saturating_sub(1))
        .unwrap_or_default();
    let key_path = object_store::path::Path::from(key);
    let key_segments: Vec<&str> = key_path.as_ref().split('/').collect();
    let key_dirs = key_segments
        .get(..key_segments.len().saturating_sub(1))
        .unwrap_or_default();

    if let Some(bucket) = dest {
        for depth in (1..ancestors.len()).rev() {
            if let (Some(&name), Some(a)) = (dirs.get(depth - 1), ancestors.get(depth))
                && name == bucket
            {
                candidates.push(a.join(key));
            }
        }
    }
    let mut matches: Vec<(usize, usize)> = (0..dirs.len())
        .filter_map(|start| {
            let matched = dirs
                .iter()
                .skip(start)
                .zip(key_dirs)
                .take_while(|(a, b)| a == b)
                .count();
            (matched > 0).then_some((matched, start))
        })
        .collect();
    matches.sort_by(|a, b| b.cmp(a));
    for (_, start) in matches {
        if let Some(a) = ancestors.get(start) {
            candidates.push(a.join(key));
        }
    }
    if let Some(dir) = ancestors.last() {
        candidates.push(dir.join(key));
    }
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.url().to_string()));
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, StringArray};
    use serde_json::json;

    use super::super::parquet::tests::parquet_bytes;
    use super::super::test_support::*;
    use super::super::{InventoryOptions, parse_since};
    use super::*;

    fn manifest_json(dest: &str, format: &str, schema: Option<&str>, keys: &[&str]) -> String {
        let mut m = json!({
            "sourceBucket": "source-bucket",
            "destinationBucket": dest,
            "version": "2016-11-30",
            "creationTimestamp": "1704067200000",
            "fileFormat": format,
            "files": keys
                .iter()
                .map(|k| json!({"key": k, "size": 10, "MD5checksum": "00"}))
                .collect::<Vec<_>>(),
        });
        if let Some(schema) = schema {
            m["fileSchema"] = json!(schema);
        }
        m.to_string()
    }

    fn bucket_name(root: &str) -> &str {
        root.trim_start_matches("memory://")
    }

    #[tokio::test]
    async fn csv_manifest_with_two_gzip_files_and_file_schema() {
        let root = memory_root("mcsv");
        let bucket = bucket_name(&root);
        let schema = "Bucket, Key, Size, LastModifiedDate, ETag";
        let manifest = format!("{root}/inv/source-bucket/daily/2024-02-01T01-00Z/manifest.json");
        let keys_listed = [
            "inv/source-bucket/daily/data/one.csv.gz",
            "inv/source-bucket/daily/data/two.csv.gz",
        ];
        put(
            &manifest,
            manifest_json(
                &format!("arn:aws:s3:::{bucket}"),
                "CSV",
                Some(schema),
                &keys_listed,
            ),
        )
        .await;
        put(
            &format!("{root}/{}", keys_listed[0]),
            gzip(
                b"\"source-bucket\",\"items/a.stac.json\",\"10\",\"2024-01-31T10:00:00.000Z\",\"e\"\n\
                  \"source-bucket\",\"items/old.stac.json\",\"10\",\"2023-01-01T00:00:00.000Z\",\"e\"\n\
                  \"source-bucket\",\"items/a.json\",\"10\",\"2024-01-31T10:00:00.000Z\",\"e\"\n",
            ),
        )
        .await;
        put(
            &format!("{root}/{}", keys_listed[1]),
            gzip(
                b"\"source-bucket\",\"items/with+space%281%29.stac.json\",\"1\",\"2024-01-15T00:00:00.000Z\",\"e\"\n\
                  \"source-bucket\",\"items/cutoff.stac.json\",\"1\",\"2024-01-01T00:00:00.000Z\",\"e\"\n",
            ),
        )
        .await;
        let since = parse_since("2024-01-01").unwrap();
        let (records, stats) = collect(
            &manifest,
            InventoryOptions::default().with_since(Some(since)),
        )
        .await;
        assert_eq!(
            keys(&records),
            [
                "items/a.stac.json",
                "items/with space(1).stac.json",
                "items/cutoff.stac.json"
            ]
        );
        assert!(records.iter().all(|r| r.bucket == "source-bucket"));
        assert_eq!(records[0].last_modified, Some(utc("2024-01-31T10:00:00Z")));
        assert_eq!(stats.files, 2);
        assert_eq!(stats.rows, 5);
        assert_eq!(stats.skipped_since, 1);
        assert_eq!(stats.skipped_suffix, 1);
        assert_eq!(stats.since_unknown, 0);
    }

    #[tokio::test]
    async fn data_files_resolve_like_the_reader() {
        let root = memory_root("mfiles");
        let manifest = format!("{root}/m/manifest.json");
        put(
            &manifest,
            manifest_json(
                bucket_name(&root),
                "CSV",
                None,
                &["d/1.csv.gz", "d/2.csv.gz"],
            ),
        )
        .await;
        put(&format!("{root}/d/1.csv.gz"), gzip(b"b,a.stac.json\n")).await;
        put(&format!("{root}/d/2.csv.gz"), gzip(b"b,c.stac.json\n")).await;
        let loc = Location::parse(&manifest).unwrap();
        let files = data_files(&loc).await.unwrap();
        let urls: Vec<&str> = files.iter().map(Location::url).collect();
        assert_eq!(
            urls,
            [format!("{root}/d/1.csv.gz"), format!("{root}/d/2.csv.gz")]
        );
        // A listed data file that is nowhere is an error naming it.
        put(
            &manifest,
            manifest_json(bucket_name(&root), "CSV", None, &["d/gone.csv.gz"]),
        )
        .await;
        let err = data_files(&loc).await.unwrap_err().to_string();
        assert!(err.contains("gone.csv.gz"), "{err}");
    }

    #[tokio::test]
    async fn limit_across_manifest_files_stops_before_the_next_file() {
        let root = memory_root("mlimit");
        let manifest = format!("{root}/m/manifest.json");
        put(
            &manifest,
            manifest_json(
                bucket_name(&root),
                "CSV",
                None,
                &["d/1.csv.gz", "d/2.csv.gz"],
            ),
        )
        .await;
        put(
            &format!("{root}/d/1.csv.gz"),
            gzip(b"b,a.stac.json\nb,b.stac.json\n"),
        )
        .await;
        put(&format!("{root}/d/2.csv.gz"), gzip(b"b,c.stac.json\n")).await;
        let (records, stats) =
            collect(&manifest, InventoryOptions::default().with_limit(Some(2))).await;
        assert_eq!(keys(&records), ["a.stac.json", "b.stac.json"]);
        assert!(stats.limited);
        assert_eq!(stats.files, 1);
        let (records, stats) =
            collect(&manifest, InventoryOptions::default().with_limit(Some(3))).await;
        assert_eq!(
            keys(&records),
            ["a.stac.json", "b.stac.json", "c.stac.json"]
        );
        assert_eq!(stats.files, 2);
    }

    #[tokio::test]
    async fn parquet_manifest() {
        let root = memory_root("mpq");
        let manifest = format!("{root}/inv/manifest.json");
        let keys_listed = ["inv/data/1.parquet", "inv/data/2.parquet"];
        put(
            &manifest,
            manifest_json(bucket_name(&root), "Parquet", Some("ignored"), &keys_listed),
        )
        .await;
        for (i, key) in keys_listed.iter().enumerate() {
            let k = format!("x%20{i}.stac.json");
            let data = parquet_bytes(
                vec![
                    (
                        "bucket",
                        Arc::new(StringArray::from(vec!["src"])) as ArrayRef,
                    ),
                    ("key", Arc::new(StringArray::from(vec![k.as_str()]))),
                    ("size", Arc::new(StringArray::from(vec!["1"]))),
                ],
                10,
            );
            put(&format!("{root}/{key}"), data).await;
        }
        let (records, stats) = collect(&manifest, InventoryOptions::default()).await;
        assert_eq!(
            keys(&records),
            ["x%200.stac.json", "x%201.stac.json"],
            "Parquet keys are not URL-decoded"
        );
        assert_eq!(stats.files, 2);
    }

    #[tokio::test]
    async fn orc_manifest_is_a_clear_error() {
        let root = memory_root("morc");
        let manifest = format!("{root}/manifest.json");
        put(
            &manifest,
            manifest_json("arn:aws:s3:::x", "ORC", None, &["d/1.orc"]),
        )
        .await;
        let err = first_error(&manifest, all()).await;
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("ORC") && msg.contains(&manifest), "{msg}");
    }

    #[tokio::test]
    async fn invalid_manifest_json_is_an_error() {
        let root = memory_root("mbad");
        let manifest = format!("{root}/manifest.json");
        put(&manifest, "{\"fileFormat\": \"CSV\"").await;
        let err = first_error(&manifest, all()).await;
        assert!(err.to_string().contains("invalid manifest.json"), "{err}");
        put(&manifest, "{\"fileFormat\": \"JSON\", \"files\": []}").await;
        let err = first_error(&manifest, all()).await;
        assert!(err.to_string().contains("JSON"), "{err}");
    }

    #[tokio::test]
    async fn data_files_are_checked_one_by_one_and_name_themselves() {
        let root = memory_root("mdata");
        let manifest = format!("{root}/m/manifest.json");
        put(
            &manifest,
            manifest_json(
                bucket_name(&root),
                "CSV",
                Some("Bucket, Key"),
                &["d/1.csv.gz", "d/2.csv.gz"],
            ),
        )
        .await;
        put(
            &format!("{root}/d/1.csv.gz"),
            gzip(b"\"b\",\"a.stac.json\"\n\"b\"\n\"b\",\"c.stac.json\"\n"),
        )
        .await;
        // The second data file is not gzip.
        put(&format!("{root}/d/2.csv.gz"), &b"b,d.stac.json\n"[..]).await;
        let mut stream = super::super::read_inventory(&manifest, all());
        let mut entries = Vec::new();
        let err = loop {
            match futures::StreamExt::next(&mut stream).await {
                Some(Ok(entry)) => entries.push(entry),
                Some(Err(e)) => break e,
                None => panic!("the second data file must fail"),
            }
        };
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{root}/d/2.csv.gz")) && msg.contains("not gzip data"),
            "{msg}"
        );
        let malformed: Vec<String> = entries
            .iter()
            .filter_map(|e| match e {
                super::super::InventoryEntry::Malformed(m) => Some(m.locator()),
                _ => None,
            })
            .collect();
        assert_eq!(malformed, [format!("{root}/d/1.csv.gz#line=2")]);
        assert_eq!(entries.len(), 3, "{entries:?}");

        // A data file with no usable row fails even after a good one.
        put(&format!("{root}/d/2.csv.gz"), gzip(b"only-one-field\n")).await;
        let err = first_error(&manifest, all()).await;
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{root}/d/2.csv.gz")) && msg.contains("no usable row"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn destination_bucket_is_honoured() {
        let manifest_root = memory_root("msrc");
        let dest_root = memory_root("mdest");
        let manifest = format!("{manifest_root}/inv/manifest.json");
        put(
            &manifest,
            manifest_json(
                &format!("arn:aws:s3:::{}", bucket_name(&dest_root)),
                "CSV",
                None,
                &["inv/data/1.csv.gz"],
            ),
        )
        .await;
        // A decoy next to the manifest must not be read.
        put(
            &format!("{manifest_root}/inv/data/1.csv.gz"),
            gzip(b"b,decoy.stac.json\n"),
        )
        .await;
        put(
            &format!("{dest_root}/inv/data/1.csv.gz"),
            gzip(b"b,real.stac.json\n"),
        )
        .await;
        let (records, _) = collect(&manifest, InventoryOptions::default()).await;
        assert_eq!(keys(&records), ["real.stac.json"]);
    }

    #[tokio::test]
    async fn missing_data_file_lists_where_it_looked() {
        let root = memory_root("mmissing");
        let manifest = format!("{root}/m/manifest.json");
        put(
            &manifest,
            manifest_json("arn:aws:s3:::nowhere-x", "CSV", None, &["d/1.csv.gz"]),
        )
        .await;
        let err = first_error(&manifest, all()).await;
        let msg = err.to_string();
        assert!(msg.contains("memory://nowhere-x/d/1.csv.gz"), "{msg}");
        assert!(msg.contains(&format!("{root}/m/d/1.csv.gz")), "{msg}");
    }

    /// A local copy of an inventory below `base`: manifest.json (destination `arn`, header
    /// `schema`) and one CSV.gz data file listing `k.stac.json`. Returns the manifest path.
    fn local_inventory(
        base: &std::path::Path,
        arn: &str,
        schema: Option<&str>,
    ) -> std::path::PathBuf {
        let manifest = base.join("inv/src/cfg/2024-01-01T00-00Z/manifest.json");
        std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
        std::fs::create_dir_all(base.join("inv/src/cfg/data")).unwrap();
        std::fs::write(
            &manifest,
            manifest_json(arn, "CSV", schema, &["inv/src/cfg/data/a.csv.gz"]),
        )
        .unwrap();
        std::fs::write(
            base.join("inv/src/cfg/data/a.csv.gz"),
            gzip(b"src,k.stac.json\n"),
        )
        .unwrap();
        manifest
    }

    #[tokio::test]
    async fn local_mirror_of_the_destination_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("mirror/dest-bkt");
        let manifest = local_inventory(&base, "arn:aws:s3:::dest-bkt", Some("Bucket, Key"));
        let (records, _) = collect(manifest.to_str().unwrap(), all()).await;
        assert_eq!(keys(&records), ["k.stac.json"]);
    }

    #[tokio::test]
    async fn local_copy_resolved_by_the_key_prefix() {
        let dir = tempfile::tempdir().unwrap();
        // The destination bucket's name appears nowhere in the local path.
        let base = dir.path().join("copy");
        let manifest = local_inventory(&base, "arn:aws:s3:::elsewhere", None);
        let (records, stats) = collect(manifest.to_str().unwrap(), all()).await;
        assert_eq!(keys(&records), ["k.stac.json"]);
        assert_eq!(stats.files, 1);
    }

    #[tokio::test]
    async fn local_manifest_with_keys_relative_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.json");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let doc = json!({"fileFormat": "CSV", "files": [{"key": "data/a.csv"}]});
        std::fs::write(&manifest, doc.to_string()).unwrap();
        std::fs::write(dir.path().join("data/a.csv"), "bucket,key\nb,k.stac.json\n").unwrap();
        let url = format!("file://{}", manifest.display());
        let (records, _) = collect(&url, all()).await;
        assert_eq!(keys(&records), ["k.stac.json"]);
    }

    #[test]
    fn memory_manifest_candidates_in_order() {
        let manifest = Location::parse("memory://cands/inv/a/b/manifest.json").unwrap();
        let c = data_file_candidates(&manifest, Some("dst"), "inv/a/data/x.csv.gz").unwrap();
        let urls: Vec<&str> = c.iter().map(Location::url).collect();
        assert_eq!(
            urls,
            [
                "memory://dst/inv/a/data/x.csv.gz",
                "memory://cands/inv/a/data/x.csv.gz",
                "memory://cands/inv/a/b/inv/a/data/x.csv.gz"
            ]
        );
    }

    #[test]
    fn destination_bucket_names() {
        let m = |dest: Option<&str>| Manifest {
            source_bucket: None,
            destination_bucket: dest.map(str::to_string),
            file_format: None,
            file_schema: None,
            files: vec![],
        };
        assert_eq!(
            m(Some("arn:aws:s3:::my-bkt")).destination_bucket_name(),
            Some("my-bkt")
        );
        assert_eq!(m(Some("plain")).destination_bucket_name(), Some("plain"));
        assert_eq!(m(Some("arn:aws:s3:::")).destination_bucket_name(), None);
        assert_eq!(m(None).destination_bucket_name(), None);
    }

    #[test]
    fn file_schema_locates_columns() {
        let mut m = Manifest::parse(
            br#"{"fileFormat":"CSV","fileSchema":"Bucket, Key, VersionId, IsLatest, Size, LastModifiedDate","files":[]}"#,
            "m",
        )
        .unwrap();
        assert_eq!(
            m.csv_layout("m").unwrap(),
            Some(Layout {
                bucket: 0,
                key: 1,
                last_modified: Some(5),
                size: Some(4),
            })
        );
        m.file_schema = Some("Size, ETag".into());
        assert!(m.csv_layout("m").is_err());
        assert_eq!(m.format("m").unwrap(), ManifestFormat::Csv);
    }
}
