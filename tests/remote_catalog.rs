//! A remote `catalog.db` is replaced only if nobody changed it since we downloaded it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use earthcatalog::Error;
use earthcatalog::catalog::Catalog;
use earthcatalog::grid::GridConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_detects_a_concurrent_writer_instead_of_overwriting_it() {
    let wh = tempfile::tempdir().unwrap();
    let wh = wh.path().to_string_lossy().into_owned();
    let url = "memory://remote-cat/catalog/catalog.db";
    let grid = GridConfig::H3 { resolution: 1 };
    let a = Catalog::open(url, &wh).await.unwrap();
    assert!(a.is_remote());
    a.load_or_create(&grid, "memory://remote-cat/ids.parquet")
        .await
        .unwrap();
    a.upload().await.unwrap();
    // B downloads the same version; A publishes again; B's upload must be refused.
    let b = Catalog::open(url, &wh).await.unwrap();
    assert!(b.load_table().await.unwrap().is_some(), "B sees A's table");
    a.upload().await.unwrap();
    let err = b.upload().await.unwrap_err();
    assert!(matches!(err, Error::CommitConflict { .. }), "{err}");
    // A fresh handle sees A's catalog and can publish on top of it.
    let c = Catalog::open(url, &wh).await.unwrap();
    c.upload().await.unwrap();
    // A first upload never overwrites a catalog that appeared meanwhile.
    let d = Catalog::open("memory://remote-cat/other/catalog.db", &wh)
        .await
        .unwrap();
    let e = Catalog::open("memory://remote-cat/other/catalog.db", &wh)
        .await
        .unwrap();
    d.upload().await.unwrap();
    assert!(matches!(
        e.upload().await.unwrap_err(),
        Error::CommitConflict { .. }
    ));
}
