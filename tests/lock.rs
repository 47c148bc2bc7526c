//! The catalog lock from the outside: `earthcatalog lock status|break` on locks left by killed
//! runs, live holders, stale and Python-written locks; a run whose lock is taken over stops
//! before committing; a SQLite lock held by another connection makes `info` fail within its
//! bound instead of hanging.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use earthcatalog::catalog::Catalog;
use earthcatalog::lock::LockPayload;
use earthcatalog::report::Reporter;

fn lock_cmd(ds: &Dataset, action: &str) -> std::process::Command {
    let mut c = cli();
    c.args(["lock", action, "--catalog", &ds.path("catalog.db")]);
    c
}

fn lock_json(ds: &Dataset, action: &str, extra: &[&str], code: i32) -> serde_json::Value {
    json_summary(&run(lock_cmd(ds, action).args(extra).arg("--json")), code)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Write a lock payload at the dataset's default lock key.
fn plant(ds: &Dataset, payload: &LockPayload) {
    std::fs::write(ds.path(".lock"), payload.to_json()).unwrap();
}

fn payload(owner: &str, host: &str, pid: i64, age: chrono::Duration, ttl: f64) -> LockPayload {
    LockPayload {
        owner: owner.to_string(),
        pid,
        hostname: host.to_string(),
        acquired: chrono::Utc::now() - age,
        ttl_hours: Some(ttl),
    }
}

async fn snapshots(ds: &Dataset) -> usize {
    let cat = Catalog::open(&ds.path("catalog.db"), &ds.path("warehouse"))
        .await
        .unwrap();
    cat.load_table()
        .await
        .unwrap()
        .map_or(0, |t| t.metadata().snapshots().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_is_reported_dead_and_its_lock_broken_without_waiting_for_the_ttl() {
    let ds = Dataset::synth(40, 61).await;
    // kill -9 while holding the lock, right before the commit.
    let killed = run(ds
        .ingest_cmd()
        .env("EARTHCATALOG_FAULT", "catalog.before_commit")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!killed.status.success());
    assert!(std::path::Path::new(&ds.path(".lock")).exists());

    let s = lock_json(&ds, "status", &[], 0);
    assert_eq!(s["held"], true);
    assert_eq!(s["owner"], "earthcatalog-ingest");
    assert_eq!(s["hostname"], earthcatalog::lock::hostname());
    assert_eq!(s["ttl_hours"], 0.25);
    assert_eq!(s["stale"], false);
    assert_eq!(s["holder"], "dead", "{s}");
    assert_eq!(s["holder_dead"], true);
    assert_eq!(s["breakable"], true);
    let left = s["expires_in_seconds"].as_i64().unwrap();
    assert!(
        (0..=900).contains(&left),
        "expires within one 15-minute TTL: {left}"
    );
    let text = run(&mut lock_cmd(&ds, "status"));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("process:   dead") && text.contains("will delete it"),
        "{text}"
    );

    // It may be broken at once, and the next run goes through.
    let b = lock_json(&ds, "break", &[], 0);
    assert_eq!(b["broken"], true);
    assert_eq!(b["reason"], "holder-dead");
    assert_eq!(b["before"]["pid"], s["pid"]);
    assert!(!std::path::Path::new(&ds.path(".lock")).exists());
    let ok = run(&mut ds.ingest_cmd());
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(lock_json(&ds, "status", &[], 0)["held"], false);
    // Killed again (everything fetched again, so there is a commit to die in): the next run on
    // this host takes the dead holder's lock over by itself.
    let killed = run(ds
        .ingest_cmd()
        .args(["--mode", "all"])
        .env("EARTHCATALOG_FAULT", "catalog.before_commit")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!killed.status.success());
    assert_eq!(lock_json(&ds, "status", &[], 0)["holder"], "dead");
    let ok = run(ds.ingest_cmd().arg("-v"));
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(
        stderr(&ok).contains("its process is gone"),
        "{}",
        stderr(&ok)
    );
    // Nothing left to break is not an error.
    assert_eq!(lock_json(&ds, "break", &[], 0)["broken"], false);
}

#[tokio::test]
async fn break_refuses_a_fresh_lock_whose_holder_may_be_alive_unless_forced() {
    let ds = Dataset::synth(5, 62).await;
    let other_host = payload(
        "backfill-v2",
        "py-host",
        4242,
        chrono::Duration::minutes(2),
        0.25,
    );
    plant(&ds, &other_host);
    let s = lock_json(&ds, "status", &[], 0);
    assert_eq!(s["holder"], "unknown");
    assert_eq!(s["breakable"], false);
    assert!(
        s["holder_detail"].as_str().unwrap().contains("py-host"),
        "{s}"
    );

    let refused = run(&mut lock_cmd(&ds, "break"));
    assert_eq!(refused.status.code(), Some(4));
    let err = stderr(&refused);
    assert!(
        err.contains("not breaking") && err.contains("backfill-v2") && err.contains("py-host"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(ds.path(".lock")).unwrap(),
        other_host.to_json(),
        "a refused break leaves the lock untouched"
    );

    // A live holder on this host (this test process) is refused too.
    let alive = payload(
        "compact",
        earthcatalog::lock::hostname(),
        i64::from(std::process::id()),
        chrono::Duration::zero(),
        0.25,
    );
    plant(&ds, &alive);
    assert_eq!(lock_json(&ds, "status", &[], 0)["holder"], "alive");
    assert_eq!(run(&mut lock_cmd(&ds, "break")).status.code(), Some(4));

    // --force breaks it, loudly.
    let forced = run(lock_cmd(&ds, "break").args(["--force", "--json"]));
    let out = json_summary(&forced, 0);
    assert_eq!(out["reason"], "forced");
    assert_eq!(out["before"]["owner"], "compact");
    assert!(
        stderr(&forced).contains("force-breaking"),
        "{}",
        stderr(&forced)
    );
    assert!(!std::path::Path::new(&ds.path(".lock")).exists());
}

#[tokio::test]
async fn a_stale_lock_is_broken_and_lock_key_names_the_object() {
    let ds = Dataset::synth(5, 63).await;
    let key = ds.path("locks/custom.lock");
    std::fs::create_dir_all(ds.path("locks")).unwrap();
    let stale = payload(
        "incremental",
        "gone-host",
        7,
        chrono::Duration::minutes(16),
        0.25,
    );
    std::fs::write(&key, stale.to_json()).unwrap();
    let s = json_summary(
        &run(cli().args(["lock", "status", "--lock-key", &key, "--json"])),
        0,
    );
    assert_eq!(s["stale"], true);
    assert!(s["expires_in_seconds"].as_i64().unwrap() <= -60, "{s}");
    let b = json_summary(
        &run(cli().args(["lock", "break", "--lock-key", &key, "--json"])),
        0,
    );
    assert_eq!(b["reason"], "stale");
    assert!(!std::path::Path::new(&key).exists());
}

#[tokio::test]
async fn a_lock_left_by_an_exited_python_tool_is_provably_dead() {
    let ds = Dataset::synth(5, 64).await;
    let root = ds.dir.path().display();
    // The Python tool takes the lock and exits without releasing it (12 h TTL, no heartbeat).
    python(&format!(
        r#"
from obstore.store import LocalStore
from earthcatalog.lock import S3Lock
S3Lock(owner="incremental", store=LocalStore("{root}"), key=".lock").acquire()
"#
    ));
    let s = lock_json(&ds, "status", &[], 0);
    assert_eq!(s["owner"], "incremental");
    assert_eq!(s["ttl_hours"], 12.0);
    assert_eq!(s["stale"], false);
    assert_eq!(s["holder"], "dead", "{s}");
    assert_eq!(lock_json(&ds, "break", &[], 0)["reason"], "holder-dead");
}

/// A reporter that, at the first item, makes another process take the lock over (as a stale
/// takeover or a forced break would).
struct TakeOver {
    lock: String,
    done: AtomicBool,
}

impl Reporter for TakeOver {
    fn advance(&self, _n: u64) {
        if !self.done.swap(true, Ordering::SeqCst) {
            let thief = payload("thief", "elsewhere", 1, chrono::Duration::zero(), 0.25);
            std::fs::write(&self.lock, thief.to_json()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lock_stops_before_committing() {
    let ds = Dataset::synth(30, 65).await;
    let mut options = ds.options(2);
    options.lock = true;
    let reporter = TakeOver {
        lock: ds.path(".lock"),
        done: AtomicBool::new(false),
    };
    let err = earthcatalog::pipeline::ingest_with_clock(
        &options,
        &reporter,
        Arc::new(earthcatalog::clock::SystemClock),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, earthcatalog::Error::LockLost { reason, .. } if reason.contains("thief")),
        "{err}"
    );
    assert_eq!(snapshots(&ds).await, 0, "nothing was committed");
    assert!(
        !std::path::Path::new(&ds.path("warehouse_id_hashes.parquet")).exists(),
        "the hash index was not updated"
    );
    let left: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ds.path(".lock")).unwrap()).unwrap();
    assert_eq!(
        left["owner"], "thief",
        "the new holder's lock is left alone"
    );
}

/// A dataset of `items` synthetic items ingested in-process, and its catalog's path.
async fn ingested(items: u64, seed: u64) -> (Dataset, String) {
    let ds = Dataset::synth(items, seed).await;
    earthcatalog::pipeline::ingest(&ds.options(2), &earthcatalog::report::NoReporter)
        .await
        .unwrap();
    let db = ds.path("catalog.db");
    (ds, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_fails_within_its_bound_while_another_connection_holds_an_exclusive_sqlite_lock() {
    use sqlx::Connection;
    let (_ds, db) = ingested(20, 66).await;
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{db}"))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();

    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let db = db.clone();
        move || run(cli().args(["info", "--catalog", &db, "--json"]))
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&db) && err.contains("locked"), "{err}");
    assert!(
        took < Duration::from_secs(30),
        "info waited {took:?} on a locked catalog"
    );

    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    let ok = run(cli().args(["info", "--catalog", &db, "--json"]));
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

/// A runtime task that never yields (sqlx's pool reaper can spin: see
/// `catalog::SQL_POOL_IDLE_TIMEOUT_SECS`) must not keep a finished command from exiting: the
/// fault point spawns one, and `info` still answers and exits with 0 (the runtime's shutdown
/// is bounded). Without the bound the process never exits and this fails after two minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_never_yields_does_not_keep_a_finished_command_alive() {
    let (_ds, db) = ingested(5, 68).await;
    let out = tokio::task::spawn_blocking(move || {
        run_within(
            cli()
                .args(["info", "--catalog", &db, "--json"])
                .env("EARTHCATALOG_FAULT", "cli.stuck_task"),
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    let info = json_summary(&out, 0);
    assert!(info["files"].as_u64().unwrap_or(0) > 0, "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_break_work_on_s3_with_a_conditional_takeover() {
    let moto = Moto::start();
    moto.create_bucket("lock-bucket");
    let ds = Dataset::synth(10, 67).await;
    let catalog = "s3://lock-bucket/cat/catalog.db";
    let lock_cmd = |action: &str| {
        let mut c = cli();
        c.envs(moto.env())
            .args(["lock", action, "--catalog", catalog, "--json"]);
        c
    };
    let ingest = || {
        let mut c = cli();
        c.envs(moto.env()).args([
            "ingest",
            "--inventory",
            &ds.inventory(),
            "--items-root",
            &ds.items_root(),
            "--warehouse",
            &ds.path("warehouse"),
            "--catalog",
            catalog,
        ]);
        c
    };
    // An ingest with its catalog (and so its lock) on S3 is killed while holding the lock.
    let killed = run(ingest()
        .env("EARTHCATALOG_FAULT", "catalog.before_commit")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!killed.status.success());
    let s = json_summary(&run(&mut lock_cmd("status")), 0);
    assert_eq!(s["lock"], "s3://lock-bucket/cat/.lock");
    assert_eq!(s["held"], true, "{}", stderr(&killed));
    assert_eq!(s["holder"], "dead", "{s}");
    let b = json_summary(&run(&mut lock_cmd("break")), 0);
    assert_eq!(b["reason"], "holder-dead");
    assert_eq!(
        json_summary(&run(&mut lock_cmd("status")), 0)["held"],
        false
    );
    let ok = run(&mut ingest());
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}
