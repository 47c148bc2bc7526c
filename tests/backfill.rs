//! `earthcatalog backfill plan|map|reduce|commit|status`: the contract each job scheduler
//! relies on (its index variable, retries of the same index, a stage starting after every task
//! of the previous one), killed workers, the end state against `ingest` + `compact`, and the
//! commit's refusals, merges and crash recovery.
//!
//! The S3 scenario talks to the moto server only through child processes (given the endpoint in
//! their environment) and raw HTTP from the test itself, so no test in this binary changes the
//! process environment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A small deterministic PRNG (xorshift64*), seeded per run and printed, so a failing order can
/// be replayed with `BACKFILL_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn from_env() -> Self {
        let seed = std::env::var("BACKFILL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("BACKFILL_TEST_SEED={seed}");
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// One request to the S3 server; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let len = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .unwrap();
            if len == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + len]);
            rest = &rest[line_end + 4 + len..];
        }
        body = out;
    }
    (status, body)
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every key under `prefix` of `bucket`.
fn s3_keys(port: u16, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/{bucket}?list-type=2&prefix={}", encode(prefix));
        if let Some(t) = &token {
            path.push_str(&format!("&continuation-token={}", encode(t)));
        }
        let (status, body) = http(port, "GET", &path, b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let text = String::from_utf8_lossy(&body).to_string();
        for part in text.split("<Key>").skip(1) {
            keys.push(part.split("</Key>").next().unwrap().to_string());
        }
        token = text
            .split("<NextContinuationToken>")
            .nth(1)
            .map(|t| t.split('<').next().unwrap().to_string());
        if !text.contains("<IsTruncated>true</IsTruncated>") {
            return keys;
        }
    }
}

/// Objects written by the signed clients are private: read and write them signed (boto3).
fn boto3(port: u16, code: &str) -> String {
    python(&format!(
        r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:{port}", aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
{code}
"#
    ))
}

fn s3_get(port: u16, bucket: &str, key: &str, to: &Path) {
    boto3(
        port,
        &format!(
            "s3.download_file({bucket:?}, {key:?}, {:?})",
            to.to_string_lossy()
        ),
    );
}

fn s3_get_json(port: u16, bucket: &str, key: &str) -> serde_json::Value {
    let out = boto3(
        port,
        &format!(
            "sys.stdout.write(s3.get_object(Bucket={bucket:?}, Key={key:?})['Body'].read().decode())"
        ),
    );
    serde_json::from_str(&out).unwrap()
}

fn s3_append(port: u16, bucket: &str, key: &str, line: &str) {
    boto3(
        port,
        &format!(
            "b = s3.get_object(Bucket={bucket:?}, Key={key:?})['Body'].read()\n\
             s3.put_object(Bucket={bucket:?}, Key={key:?}, Body=b + {line:?}.encode())"
        ),
    );
}

fn code_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// How a scheduler hands a task its index.
#[derive(Debug, Clone, Copy)]
enum Scheduler {
    Kubernetes,
    Batch,
    Slurm,
    GitHub,
}

impl Scheduler {
    const ALL: [Scheduler; 4] = [
        Scheduler::Kubernetes,
        Scheduler::Batch,
        Scheduler::Slurm,
        Scheduler::GitHub,
    ];

    /// Give `cmd` shard `i` the way this scheduler does (Slurm arrays here run 1..=N, with
    /// `EARTHCATALOG_SHARD_BASE=1`).
    fn index(self, cmd: &mut Command, i: usize) {
        for v in [
            "JOB_COMPLETION_INDEX",
            "AWS_BATCH_JOB_ARRAY_INDEX",
            "SLURM_ARRAY_TASK_ID",
            "SLURM_ARRAY_TASK_MIN",
            "EARTHCATALOG_SHARD_BASE",
        ] {
            cmd.env_remove(v);
        }
        match self {
            Scheduler::Kubernetes => {
                cmd.env("JOB_COMPLETION_INDEX", i.to_string());
            }
            Scheduler::Batch => {
                cmd.env("AWS_BATCH_JOB_ARRAY_INDEX", i.to_string());
            }
            Scheduler::Slurm => {
                // A 1-based array says so; Slurm's own minimum (here the first index of the
                // array) is not an offset.
                cmd.env("SLURM_ARRAY_TASK_ID", (i + 1).to_string())
                    .env("SLURM_ARRAY_TASK_MIN", "1")
                    .env("EARTHCATALOG_SHARD_BASE", "1");
            }
            Scheduler::GitHub => {
                cmd.args(["--shard", &i.to_string()]);
            }
        }
    }
}

/// (id, cell, year) rows and per-bucket row and file counts of a table, read by PyIceberg.
#[derive(Debug, Default, PartialEq)]
struct TableRows {
    rows: BTreeSet<(String, String, String)>,
    row_count: usize,
    per_bucket: BTreeMap<(String, String), u64>,
    files_per_bucket: BTreeMap<(String, String), u64>,
}

fn pyiceberg_rows(db: &str, warehouse: &str, s3: Option<&str>) -> TableRows {
    let props = match s3 {
        Some(endpoint) => format!(
            r#"**{{"s3.endpoint": "{endpoint}", "s3.access-key-id": "testing", "s3.secret-access-key": "testing", "s3.region": "us-east-1"}}"#
        ),
        None => String::new(),
    };
    let out = python(&format!(
        r#"
import json
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="{warehouse}", {props})
t = cat.load_table("earthcatalog.stac_items")
a = t.scan(selected_fields=("id", "grid_partition", "datetime")).to_arrow()
rows = [[i, c, str(d.year) if d is not None else "unknown"] for i, c, d in zip(a["id"].to_pylist(), a["grid_partition"].to_pylist(), a["datetime"].to_pylist())]
files = {{}}
for task in t.scan().plan_files():
    p = task.file.partition
    key = p[0] + "/" + (str(1970 + p[1]) if p[1] is not None else "unknown")
    files[key] = files.get(key, 0) + 1
print(json.dumps({{"rows": rows, "files": files}}))
"#
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let mut t = TableRows::default();
    for r in v["rows"].as_array().unwrap() {
        let (id, cell, year) = (
            r[0].as_str().unwrap().to_string(),
            r[1].as_str().unwrap().to_string(),
            r[2].as_str().unwrap().to_string(),
        );
        *t.per_bucket
            .entry((cell.clone(), year.clone()))
            .or_default() += 1;
        t.rows.insert((id, cell, year));
        t.row_count += 1;
    }
    for (k, n) in v["files"].as_object().unwrap() {
        let (cell, year) = k.split_once('/').unwrap();
        t.files_per_bucket
            .insert((cell.to_string(), year.to_string()), n.as_u64().unwrap());
    }
    t
}

/// `ingest` + `compact --threshold 1` of `inventory` into a fresh local warehouse: the
/// reference end state.
fn ingest_and_compact(
    dir: &Path,
    inventory: &str,
    items_root: &str,
    env: &[(&str, String)],
) -> TableRows {
    let wh = dir.join("ref-wh").to_string_lossy().into_owned();
    let db = dir.join("ref.db").to_string_lossy().into_owned();
    let mut c = cli();
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    code_ok(&run(c.args([
        "ingest",
        "--json",
        "--resolution",
        "1",
        "--inventory",
        inventory,
        "--items-root",
        items_root,
        "--warehouse",
        &wh,
        "--catalog",
        &db,
    ])));
    code_ok(&run(cli().args([
        "compact",
        "--json",
        "--threshold",
        "1",
        "--warehouse",
        &wh,
        "--catalog",
        &db,
    ])));
    pyiceberg_rows(&db, &format!("file://{wh}"), None)
}

/// Spawn `cmd` and SIGKILL it once `ready` says so (polled every few ms), or let it finish.
/// Returns whether it was killed before it exited by itself.
fn kill_when(mut cmd: Command, mut ready: impl FnMut() -> bool) -> bool {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            use std::os::unix::process::ExitStatusExt;
            return status.signal() == Some(9);
        }
        assert!(
            Instant::now() < deadline,
            "worker neither finished nor got ready"
        );
        std::thread::sleep(Duration::from_millis(3));
    }
}

#[test]
fn s3_backfill_with_killed_workers_equals_ingest_and_compact() {
    const N: u64 = 480;
    let mut rng = Rng::from_env();
    let moto = Moto::start();
    moto.create_bucket("its-live-data");
    moto.create_bucket("work");
    let port = moto.port;
    let env = moto.env();
    let with_env = || {
        let mut c = cli();
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    };
    let local = Dataset::synth(N, 7).await_blocking();
    // The same items on S3 (same seed and count: the same ids).
    code_ok(&run(with_env().args([
        "generate",
        "--out",
        "s3://its-live-data/synth",
        "--count",
        &N.to_string(),
        "--seed",
        "7",
    ])));
    let inventory = "s3://its-live-data/synth/inventory.csv";
    let items_root = "s3://its-live-data/synth/items";
    let staging = "s3://work/staging";
    let (wh, db) = ("s3://work/wh", "s3://work/catalog/catalog.db");

    let plan_run = |shards: &str, extra: &[&str]| {
        let mut c = with_env();
        c.args([
            "backfill",
            "plan",
            "--json",
            "--inventory",
            inventory,
            "--staging",
            staging,
            "--warehouse",
            wh,
            "--catalog",
            db,
            "--resolution",
            "1",
            "--map-shards",
            shards,
            "--reduce-shards",
            "3",
        ])
        .args(extra);
        run(&mut c)
    };
    // The items root is recorded in the plan: the map tasks below get only the staging URL.
    let out = plan_run("8", &["--items-root", items_root]);
    let plan = json_summary(&out, 0);
    assert_eq!(plan["keys"], N);
    assert_eq!(plan["map_shards"], 8);
    let shard_keys: u64 = plan["shard_keys_max"].as_u64().unwrap();
    assert!(shard_keys <= N / 8 + 1, "{plan}");
    // The same plan again (a recipe re-run after a failure) resumes it: exit 0, same plan id.
    let resumed = json_summary(&plan_run("8", &[]), 0);
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["plan_id"], plan["plan_id"]);
    // Another plan on the same prefix is refused (exit 2), naming what differs.
    let other = plan_run("4", &[]);
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("already holds another plan")
            && stderr(&other).contains("--map-shards is 8 in the plan, 4 here"),
        "{}",
        stderr(&other)
    );

    let map = |i: usize, sched: Scheduler| {
        let mut c = with_env();
        c.args([
            "backfill",
            "map",
            "--json",
            "--staging",
            staging,
            "--chunk-items",
            "4",
            "--concurrency",
            "2",
        ]);
        sched.index(&mut c, i);
        c
    };
    // A stage starts only after every task of the previous one: reduce refuses before.
    let early = run(with_env().args(["backfill", "reduce", "--staging", staging, "--shard", "0"]));
    assert_eq!(early.status.code(), Some(2), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("map shard(s) 0, 1, 2, 3, 4, 5, 6, 7 of 8 are not done"),
        "{}",
        stderr(&early)
    );

    // Map tasks in random order, each given its index the way one of the schedulers does;
    // two of them are SIGKILLed at random points and re-run.
    let mut order: Vec<usize> = (0..8).collect();
    rng.shuffle(&mut order);
    let killed: BTreeSet<usize> = order[..2].iter().copied().collect();
    rng.shuffle(&mut order);
    let parts = |i: usize| {
        s3_keys(port, "work", &format!("staging/map/{i}/"))
            .iter()
            .filter(|k| k.ends_with(".parquet"))
            .count()
    };
    for &i in &order {
        let sched = Scheduler::ALL[rng.below(4) as usize];
        if killed.contains(&i) {
            // Kill once the attempt has started and written a random number of part files
            // (0: right after its marker appeared).
            let after = rng.below(12) as usize;
            eprintln!("map {i}: kill after {after} part files ({sched:?})");
            let was_killed = kill_when(map(i, sched), || {
                let keys = s3_keys(port, "work", &format!("staging/map/{i}/"));
                keys.iter().any(|k| k.ends_with("_attempt.json"))
                    && keys.iter().filter(|k| k.ends_with(".parquet")).count() >= after
            });
            assert!(was_killed, "map {i} finished before it could be killed");
            assert!(
                !s3_keys(port, "work", &format!("staging/map/{i}/"))
                    .iter()
                    .any(|k| k.ends_with("done.json")),
                "a killed map left no done marker"
            );
            // Status: with a zero stale limit the silent attempt is reported failed.
            let st = run(with_env().args([
                "backfill",
                "status",
                "--json",
                "--stale-after-secs",
                "0",
                "--staging",
                staging,
            ]));
            let st = json_summary(&st, 0);
            let failed: Vec<u64> = st["map"]["failed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["shard"].as_u64().unwrap())
                .collect();
            assert!(failed.contains(&(i as u64)), "{st}");
        }
        let out = run(&mut map(i, sched));
        let m = json_summary(&out, 0);
        assert_eq!(m["already_done"], false, "map {i}: {m}");
        assert_eq!(m["shard"], i);
        assert_eq!(m["failed"], 0, "{m}");
    }
    // A retried task whose shard is done exits 0 at once and writes nothing.
    for sched in Scheduler::ALL {
        let i = order[0];
        let before = s3_keys(port, "work", &format!("staging/map/{i}/"));
        let m = json_summary(&run(&mut map(i, sched)), 0);
        assert_eq!(m["already_done"], true, "{m}");
        assert_eq!(m["shard"], i, "{sched:?}: {m}");
        assert_eq!(s3_keys(port, "work", &format!("staging/map/{i}/")), before);
    }
    // The killed attempts' parts are still there but no marker names them.
    for &i in &killed {
        let done = s3_get_json(port, "work", &format!("staging/map/{i}/done.json"));
        let attempt = done["attempt"].as_str().unwrap();
        let named: BTreeSet<String> = done["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["url"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("s3://work/")
                    .to_string()
            })
            .collect();
        assert!(named.iter().all(|k| k.contains(attempt)));
        assert!(parts(i) >= named.len());
    }
    let st = json_summary(
        &run(with_env().args(["backfill", "status", "--json", "--staging", staging])),
        0,
    );
    assert_eq!(st["ready_to_reduce"], true, "{st}");
    assert_eq!(st["map"]["items"], N, "{st}");

    // Commit before the reduce stage refuses and names the missing shards.
    let early = run(with_env().args(["backfill", "commit", "--staging", staging]));
    assert_eq!(early.status.code(), Some(2), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("reduce shard(s) 0, 1, 2 of 3 not done"),
        "{}",
        stderr(&early)
    );

    // Reduce: shard 1 fails once after writing its outputs (they stay unregistered), then
    // succeeds; the others run under AWS Batch's variable.
    let reduce = |j: usize| {
        let mut c = with_env();
        c.args([
            "backfill",
            "reduce",
            "--json",
            "--staging",
            staging,
            "--of",
            "3",
        ]);
        Scheduler::Batch.index(&mut c, j);
        c
    };
    let failed = run(reduce(1).env("EARTHCATALOG_FAULT", "backfill.reduce.before_done"));
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let orphans = s3_keys(port, "work", "wh/")
        .into_iter()
        .filter(|k| k.contains("/backfill_"))
        .count();
    assert!(orphans > 0);
    let st = json_summary(
        &run(with_env().args(["backfill", "status", "--json", "--staging", staging])),
        0,
    );
    assert!(
        st["reduce"]["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("injected fault"),
        "{st}"
    );
    let mut rows_in = 0;
    for j in 0..3 {
        let r = json_summary(&run(&mut reduce(j)), 0);
        assert_eq!(r["already_done"], false);
        rows_in += r["rows_in"].as_u64().unwrap();
    }
    // Only outputs named in a done marker count: the killed attempts' part files are not read.
    let marked: u64 = (0..8)
        .map(|i| {
            s3_get_json(port, "work", &format!("staging/map/{i}/done.json"))["rows"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(rows_in, marked);

    let out = run(with_env().args(["backfill", "commit", "--json", "--staging", staging]));
    let c = json_summary(&out, 0);
    assert_eq!(c["outcome"], "committed", "{c}");
    assert_eq!(c["operation"], "append");
    assert_eq!(c["items"], N);
    assert!(
        c["files_deleted"].as_u64().unwrap() >= orphans as u64,
        "{c}"
    );
    // Staging is empty; a second commit is a no-op.
    assert!(s3_keys(port, "work", "staging/").is_empty());
    let c2 = json_summary(
        &run(with_env().args(["backfill", "commit", "--json", "--staging", staging])),
        0,
    );
    assert_eq!(c2["outcome"], "nothing_staged");
    // Every warehouse data file is registered: no orphan of the failed reduce is left.
    let data_files = s3_keys(port, "work", "wh/grid_partition=");
    assert_eq!(data_files.len() as u64, c["files_added"].as_u64().unwrap());
    assert_eq!(s3_keys(port, "work", "catalog/.lock"), Vec::<String>::new());

    // PyIceberg reads the table: exactly the inventory's distinct ids, one row per
    // (id, cell, year), one file per bucket.
    let tmp = tempfile::tempdir().unwrap();
    let local_db = tmp.path().join("catalog.db");
    s3_get(port, "work", "catalog/catalog.db", &local_db);
    let got = pyiceberg_rows(local_db.to_str().unwrap(), wh, Some(&moto.endpoint()));
    let ids: BTreeSet<String> = got.rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(ids, local.item_ids());
    assert_eq!(
        got.row_count,
        got.rows.len(),
        "one version per id and bucket"
    );
    assert!(
        got.files_per_bucket.values().all(|n| *n == 1),
        "{:?}",
        got.files_per_bucket
    );
    assert_eq!(c["hash_index_total"].as_u64().unwrap(), ids.len() as u64);

    // The same inventory through ingest + compact: the same rows, bucket by bucket.
    let reference = ingest_and_compact(tmp.path(), inventory, items_root, &env);
    assert_eq!(got.rows, reference.rows);
    assert_eq!(got.per_bucket, reference.per_bucket);

    // A changed inventory is refused by map (exit 2), naming the inventory.
    let out = run(with_env().args([
        "backfill",
        "plan",
        "--json",
        "--inventory",
        inventory,
        "--staging",
        "s3://work/staging2",
        "--warehouse",
        wh,
        "--catalog",
        db,
        "--mode",
        "all",
        "--map-shards",
        "2",
    ]));
    json_summary(&out, 0);
    s3_append(
        port,
        "its-live-data",
        "synth/inventory.csv",
        "its-live-data,late/arrival.stac.json\n",
    );
    let out = run(with_env().args([
        "backfill",
        "map",
        "--staging",
        "s3://work/staging2",
        "--shard",
        "0",
        "--items-root",
        items_root,
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "inventory s3://its-live-data/synth/inventory.csv changed since it was planned"
        ),
        "{err}"
    );
    assert!(
        !s3_keys(port, "work", "staging2/map/0/")
            .iter()
            .any(|k| k.ends_with("done.json"))
    );
}

/// Blocking construction of a dataset from a synchronous test.
trait Blocking {
    fn await_blocking(self) -> Dataset;
}

impl<F: std::future::Future<Output = Dataset>> Blocking for F {
    fn await_blocking(self) -> Dataset {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self)
    }
}

/// Run every stage locally: plan, all maps, all reduces (shard flags), then commit.
fn local_stages(
    d: &Dataset,
    staging: &str,
    extra_plan: &[&str],
    maps: usize,
    reduces: usize,
) -> serde_json::Value {
    let mut plan = cli();
    plan.args([
        "backfill",
        "plan",
        "--json",
        "--inventory",
        &d.inventory(),
        "--staging",
        staging,
        "--warehouse",
        &d.path("warehouse"),
        "--catalog",
        &d.path("catalog.db"),
        "--map-shards",
        &maps.to_string(),
        "--reduce-shards",
        &reduces.to_string(),
    ])
    .args(extra_plan);
    let plan = json_summary(&run(&mut plan), 0);
    for i in 0..maps {
        json_summary(
            &run(cli().args([
                "backfill",
                "map",
                "--json",
                "--staging",
                staging,
                "--shard",
                &i.to_string(),
                "--items-root",
                &d.items_root(),
            ])),
            0,
        );
    }
    for j in 0..reduces {
        json_summary(
            &run(cli().args([
                "backfill",
                "reduce",
                "--json",
                "--staging",
                staging,
                "--shard",
                &j.to_string(),
            ])),
            0,
        );
    }
    plan
}

/// `backfill commit --json --no-lock` of a local staging prefix, plus `extra` flags.
fn local_commit(staging: &str, extra: &[&str]) -> Output {
    run(cli()
        .args([
            "backfill",
            "commit",
            "--json",
            "--no-lock",
            "--staging",
            staging,
        ])
        .args(extra))
}

fn local_rows(d: &Dataset) -> TableRows {
    pyiceberg_rows(
        &d.path("catalog.db"),
        &format!("file://{}", d.path("warehouse")),
        None,
    )
}

#[tokio::test]
async fn commit_merges_into_the_tables_buckets_and_finishes_after_a_crash() {
    let d = Dataset::synth(300, 11).await;
    let all: Vec<String> = std::fs::read_to_string(d.inventory())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // The table already holds the first half (one ingest).
    let half = d.path("half.csv");
    std::fs::write(&half, all[..all.len() / 2].join("\n") + "\n").unwrap();
    code_ok(&run(cli().args([
        "ingest",
        "--inventory",
        &half,
        "--items-root",
        &d.items_root(),
        "--warehouse",
        &d.path("warehouse"),
        "--catalog",
        &d.path("catalog.db"),
        "--resolution",
        "1",
        "--no-lock",
    ])));
    // The backfill of everything, with one key that does not exist.
    let mut inv = all.join("\n") + "\n";
    inv.push_str("its-live-data,missing/gone.stac.json\n");
    std::fs::write(d.inventory(), &inv).unwrap();
    let staging = d.path("staging");
    let plan = local_stages(&d, &staging, &["--mode", "all", "--no-lock"], 3, 2);
    // Every key of the inventory (its header line aside) plus the missing one.
    assert_eq!(plan["keys"].as_u64().unwrap(), all.len() as u64);
    // Kill the commit right after the catalog commit (abort = no cleanup at all).
    let crashed = run(cli()
        .args(["backfill", "commit", "--staging", &staging, "--no-lock"])
        .env("EARTHCATALOG_FAULT", "backfill.commit.after_commit")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert_ne!(crashed.status.code(), Some(0));
    assert!(Path::new(&staging).join("plan.json").exists());
    // The next commit finds the tagged snapshot and only finishes the job.
    let out = local_commit(&staging, &[]);
    let c = json_summary(&out, 3);
    assert_eq!(c["outcome"], "already_committed", "{c}");
    assert_eq!(c["failed"], 1);
    assert_eq!(c["failures_by_reason"]["fetch: not found"], 1);
    let report = std::fs::read_to_string(
        c["failures_report"]
            .as_str()
            .unwrap()
            .trim_start_matches("file://"),
    )
    .unwrap();
    assert!(report.starts_with("bucket,key,reason\n"), "{report}");
    assert!(report.contains("missing/gone.stac.json"), "{report}");
    assert_eq!(report.lines().count(), 2, "{report}");
    assert!(!Path::new(&staging).exists() || walk(Path::new(&staging)).is_empty());
    // One snapshot for the backfill: a replace that merged the ingested buckets.
    let info = json_summary(
        &run(cli().args(["info", "--json", "--catalog", &d.path("catalog.db")])),
        0,
    );
    assert_eq!(info["snapshot"]["operation"], "replace", "{info}");
    let got = local_rows(&d);
    assert!(
        got.files_per_bucket.values().all(|n| *n == 1),
        "{:?}",
        got.files_per_bucket
    );
    let ids: BTreeSet<String> = got.rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(ids, d.item_ids());
    assert_eq!(got.row_count, got.rows.len());
    // The hash index agrees with the table after the recovery.
    let v = json_summary(
        &run(cli().args([
            "index",
            "verify",
            "--json",
            "--catalog",
            &d.path("catalog.db"),
        ])),
        0,
    );
    assert_eq!(v["missing_from_index"], 0, "{v}");
    assert_eq!(v["not_in_table"], 0, "{v}");
    // No file outside the table: replaced files and merged-away outputs were deleted.
    let on_disk = data_files(Path::new(&d.path("warehouse"))).len() as u64;
    assert_eq!(on_disk, got.files_per_bucket.values().sum::<u64>());
    // Equal to ingest + compact of the same keys.
    std::fs::write(d.inventory(), all.join("\n") + "\n").unwrap();
    let reference = ingest_and_compact(d.dir.path(), &d.inventory(), &d.items_root(), &[]);
    assert_eq!(got.rows, reference.rows);
    assert_eq!(got.per_bucket, reference.per_bucket);
}

#[tokio::test]
async fn a_map_failures_report_that_is_gone_is_a_warning_naming_the_shard() {
    let d = Dataset::synth(60, 13).await;
    let mut inv = std::fs::read_to_string(d.inventory()).unwrap();
    inv.push_str("its-live-data,missing/gone.stac.json\n");
    std::fs::write(d.inventory(), &inv).unwrap();
    let staging = d.path("staging");
    local_stages(&d, &staging, &["--no-lock"], 1, 1);
    // The map shard's failures report disappears before the commit.
    let reports: Vec<PathBuf> = walk(Path::new(&staging))
        .into_iter()
        .filter(|p| p.ends_with("failures.csv") && p.to_string_lossy().contains("/map/"))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    std::fs::remove_file(&reports[0]).unwrap();
    let c = json_summary(&local_commit(&staging, &[]), 3);
    // Still counted, not listed, and said so.
    assert_eq!(c["failed"], 1, "{c}");
    let warnings = c["warnings"].to_string();
    assert!(
        warnings.contains("map shard 0: its failures report")
            && warnings.contains("is gone; its 1 failed items are counted but not listed"),
        "{c}"
    );
}

#[tokio::test]
async fn partial_commit_names_what_is_missing_and_mode_new_picks_it_up() {
    let d = Dataset::synth(200, 5).await;
    let staging = d.path("staging");
    let plan = json_summary(
        &run(cli().args([
            "backfill",
            "plan",
            "--json",
            "--no-lock",
            "--inventory",
            &d.inventory(),
            "--staging",
            &staging,
            "--warehouse",
            &d.path("warehouse"),
            "--catalog",
            &d.path("catalog.db"),
            "--resolution",
            "1",
            "--map-shards",
            "4",
            "--reduce-shards",
            "2",
        ])),
        0,
    );
    assert_eq!(plan["keys"], 200);
    for i in [0, 2] {
        code_ok(&run(cli().args([
            "backfill",
            "map",
            "--staging",
            &staging,
            "--shard",
            &i.to_string(),
            "--items-root",
            &d.items_root(),
        ])));
    }
    // No index at all: a usage error naming --shard and every scheduler variable.
    let out = run(cli()
        .args([
            "backfill",
            "map",
            "--staging",
            &staging,
            "--items-root",
            &d.items_root(),
        ])
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID"));
    assert_eq!(out.status.code(), Some(2));
    for name in [
        "--shard",
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
        "SLURM_ARRAY_TASK_ID",
    ] {
        assert!(stderr(&out).contains(name), "{}", stderr(&out));
    }
    // An index the plan does not have.
    let out = run(cli()
        .args([
            "backfill",
            "map",
            "--staging",
            &staging,
            "--items-root",
            &d.items_root(),
        ])
        .env("JOB_COMPLETION_INDEX", "4"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("0..=3"), "{}", stderr(&out));

    let reduce = |j: &str, partial: bool| {
        let mut c = cli();
        c.args([
            "backfill",
            "reduce",
            "--json",
            "--staging",
            &staging,
            "--shard",
            j,
        ]);
        if partial {
            c.arg("--allow-partial");
        }
        run(&mut c)
    };
    let out = reduce("0", false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("map shard(s) 1, 3 of 4 are not done"),
        "{}",
        stderr(&out)
    );
    for j in ["0", "1"] {
        let r = json_summary(&reduce(j, true), 0);
        assert_eq!(r["missing_maps"], serde_json::json!([1, 3]));
    }
    let out = run(cli().args(["backfill", "commit", "--staging", &staging, "--no-lock"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("map shard(s) 1, 3 of 4 not done"), "{err}");
    assert!(err.contains("--allow-partial"), "{err}");
    let c = json_summary(&local_commit(&staging, &["--allow-partial"]), 3);
    assert_eq!(c["partial"], true);
    assert_eq!(c["missing_map_shards"], serde_json::json!([1, 3]));
    assert_eq!(c["items"], 100);
    let committed: BTreeSet<String> = local_rows(&d).rows.into_iter().map(|r| r.0).collect();
    assert!(committed.len() < d.item_ids().len());

    // A new plan in mode new leaves out what the index holds: exactly the missing half.
    let staging2 = d.path("staging2");
    let plan = local_stages(&d, &staging2, &["--no-lock"], 2, 1);
    assert_eq!(plan["keys"], 100, "{plan}");
    assert_eq!(plan["skipped_known"], 100, "{plan}");
    let c = json_summary(&local_commit(&staging2, &[]), 0);
    assert_eq!(c["outcome"], "committed");
    let ids: BTreeSet<String> = local_rows(&d).rows.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, d.item_ids());
}

#[tokio::test]
async fn grid_level_tile_layout_and_a_target_size_split() {
    let d = Dataset::synth(150, 9).await;
    let staging = d.path("staging");
    json_summary(
        &run(cli().args([
            "backfill",
            "plan",
            "--json",
            "--no-lock",
            "--inventory",
            &d.inventory(),
            "--staging",
            &staging,
            "--warehouse",
            &d.path("warehouse"),
            "--catalog",
            &d.path("catalog.db"),
            "--resolution",
            "1",
            "--layout",
            "grid/level/tile",
            "--map-shards",
            "2",
            "--reduce-shards",
            "1",
        ])),
        0,
    );
    for i in ["0", "1"] {
        code_ok(&run(cli().args([
            "backfill",
            "map",
            "--staging",
            &staging,
            "--shard",
            i,
            "--items-root",
            &d.items_root(),
        ])));
    }
    // A tiny target size: every output holds about one row.
    let r = json_summary(
        &run(cli().args([
            "backfill",
            "reduce",
            "--json",
            "--staging",
            &staging,
            "--shard",
            "0",
            "--target-file-size",
            "1",
        ])),
        0,
    );
    let files = r["files"].as_array().unwrap();
    assert!(files.len() as u64 > r["buckets"].as_u64().unwrap(), "{r}");
    // The outputs' statistics stay in the marker, out of the report.
    assert!(files.iter().all(|f| f.get("stats").is_none()), "{r}");
    assert!(files.iter().all(|f| {
        f["url"]
            .as_str()
            .unwrap()
            .contains("/grid=h3/level=1/tile=")
    }));
    let c = json_summary(&local_commit(&staging, &[]), 0);
    assert_eq!(c["files_added"].as_u64(), Some(files.len() as u64));
    let got = local_rows(&d);
    let ids: BTreeSet<String> = got.rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(ids, d.item_ids());
    // Every warehouse file is registered and follows the table's layout.
    let mut per_dir: HashMap<String, usize> = HashMap::new();
    for f in walk(Path::new(&d.path("warehouse"))) {
        let p = f.to_string_lossy().to_string();
        if p.ends_with(".parquet") && !p.contains("/metadata/") {
            assert!(p.contains("/grid=h3/level=1/tile="), "{p}");
            *per_dir.entry(p).or_default() += 1;
        }
    }
    assert_eq!(per_dir.len(), files.len());
}

/// Every live entry of the table is the one its file's footer gives; returns how many.
async fn entries_match_footers(d: &Dataset) -> usize {
    use earthcatalog::catalog::datafile::data_file_from_footer;
    use earthcatalog::catalog::{Catalog, OpenMode};
    use earthcatalog::store::Location;
    let cat = Catalog::open_with(
        &d.path("catalog.db"),
        &d.path("warehouse"),
        OpenMode::MustExist,
    )
    .await
    .unwrap();
    let table = cat.load_table().await.unwrap().unwrap();
    let schema = table.metadata().current_schema().clone();
    let spec_id = table.metadata().default_partition_spec_id();
    let files = cat.current_files(&table).await.unwrap();
    for f in &files {
        let df = &f.data_file;
        let (path, size) = (df.file_path(), df.file_size_in_bytes());
        let meta = earthcatalog::rewrite::scan::read_footer(&Location::parse(path).unwrap(), size)
            .await
            .unwrap();
        let key = earthcatalog::partition::partition_of_path(path).unwrap();
        let want = data_file_from_footer(&schema, spec_id, &meta, path, size, &key).unwrap();
        assert_eq!(df, &want, "{path}");
    }
    // The snapshot summary counts every added file and row.
    let summary = &table.metadata().current_snapshot().unwrap().summary();
    let prop = |k: &str| summary.additional_properties[k].parse::<u64>().unwrap();
    let rows: u64 = files.iter().map(|f| f.data_file.record_count()).sum();
    assert_eq!(prop("added-data-files"), files.len() as u64);
    assert_eq!(prop("total-data-files"), files.len() as u64);
    assert_eq!(prop("added-records"), rows);
    assert_eq!(prop("total-records"), rows);
    files.len()
}

#[tokio::test]
async fn commit_builds_entries_from_the_markers_and_reads_footers_only_for_old_ones() {
    for old_markers in [false, true] {
        let d = Dataset::synth(120, 21).await;
        let staging = d.path("staging");
        local_stages(&d, &staging, &["--no-lock", "--resolution", "1"], 2, 2);
        // Reduce records each output's statistics; markers from before it did have none.
        let mut outputs = 0;
        for j in 0..2 {
            let marker = Path::new(&staging).join(format!("reduce/{j}/done.json"));
            let mut done: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
            for f in done["files"].as_array_mut().unwrap() {
                assert!(f["stats"].is_string(), "{f}");
                outputs += 1;
                if old_markers {
                    f.as_object_mut().unwrap().remove("stats");
                }
            }
            std::fs::write(&marker, serde_json::to_vec(&done).unwrap()).unwrap();
        }
        assert!(outputs > 1);
        let out = local_commit(&staging, &[]);
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
        let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(c["outcome"], "committed", "{c}");
        assert_eq!(c["files_added"].as_u64(), Some(outputs), "{c}");
        let footers = if old_markers { outputs } else { 0 };
        assert_eq!(c["footers_read"].as_u64(), Some(footers), "{c}");
        // The same entries either way: the ones the footers give.
        assert_eq!(entries_match_footers(&d).await as u64, outputs);
        let got = local_rows(&d);
        let ids: BTreeSet<String> = got.rows.iter().map(|r| r.0.clone()).collect();
        assert_eq!(ids, d.item_ids());
    }
}

/// Every `earthcatalog backfill <stage>` command line in `deploy/`: (file, stage, flags).
fn recipe_commands() -> Vec<(String, String, Vec<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut out = Vec::new();
    for file in walk(&root) {
        let text = std::fs::read_to_string(&file).unwrap().replace("\\\n", " ");
        let name = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for line in text.lines() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            // Slurm's submit script hands the stage to its job script (`"$JOB" map ...`).
            let Some((at, len)) = ["earthcatalog backfill ", "\"$JOB\" "]
                .iter()
                .find_map(|p| line.find(p).map(|at| (at, p.len())))
            else {
                continue;
            };
            let mut words = line[at + len..].split_whitespace();
            let stage = words
                .next()
                .unwrap()
                .trim_matches(|c| c == '"' || c == '\'' || c == ')');
            // The Slurm job script passes the stage as "$STAGE".
            if stage.starts_with('$') {
                continue;
            }
            let flags = words
                .filter(|w| w.starts_with("--"))
                .map(|w| w.split('=').next().unwrap().to_string())
                .collect();
            out.push((name.clone(), stage.to_string(), flags));
        }
    }
    out
}

#[test]
fn deploy_recipes_use_real_flags_and_agree_on_shard_counts() {
    let commands = recipe_commands();
    for file in [
        "kubernetes/backfill.yaml",
        "aws-batch/submit.sh",
        "slurm/submit.sh",
        "github-actions/backfill.yml",
    ] {
        let stages: BTreeSet<&str> = commands
            .iter()
            .filter(|c| c.0 == file)
            .map(|c| c.1.as_str())
            .collect();
        let expected = BTreeSet::from(["plan", "map", "reduce", "commit"]);
        assert_eq!(stages, expected, "{file}");
    }
    let mut help: HashMap<String, String> = HashMap::new();
    for (file, stage, flags) in &commands {
        let text = help.entry(stage.clone()).or_insert_with(|| {
            let out = run(cli().args(["backfill", stage, "--help"]));
            code_ok(&out);
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        for flag in flags {
            assert!(
                text.contains(flag.as_str()),
                "{file}: `backfill {stage}` has no {flag}"
            );
        }
        // Only GitHub Actions hands the index as a flag; the others set a variable.
        if stage == "map" || stage == "reduce" {
            assert_eq!(
                flags.contains(&"--shard".to_string()),
                file.starts_with("github-actions"),
                "{file}: {stage} {flags:?}"
            );
        }
    }
    // Shard counts of the plan agree with the tasks each recipe starts.
    let read = |f: &str| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(f))
            .unwrap()
    };
    let k8s = read("kubernetes/backfill.yaml");
    let docs = python(&format!(
        "import json, yaml\nprint(json.dumps(list(yaml.safe_load_all({k8s:?}))))"
    ));
    let docs: Vec<serde_json::Value> = serde_json::from_str(docs.trim()).unwrap();
    let jobs: Vec<&serde_json::Value> = docs.iter().filter(|j| j["kind"] == "Job").collect();
    let job = |name: &str| jobs.iter().find(|j| j["metadata"]["name"] == name).unwrap();
    // The plan reads its shard counts from the ConfigMap, which must equal the completions.
    let config = &docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap()["data"];
    let plan_cmd = job("earthcatalog-plan")["spec"]["template"]["spec"]["containers"][0]["command"]
        [2]
    .as_str()
    .unwrap()
    .to_string();
    assert!(plan_cmd.contains("--map-shards \"$MAP_SHARDS\" --reduce-shards \"$REDUCE_SHARDS\""));
    let count = |v: &serde_json::Value| v.as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(
        job("earthcatalog-map")["spec"]["completions"]
            .as_u64()
            .unwrap(),
        count(&config["MAP_SHARDS"])
    );
    assert_eq!(
        job("earthcatalog-reduce")["spec"]["completions"]
            .as_u64()
            .unwrap(),
        count(&config["REDUCE_SHARDS"])
    );
    for j in ["earthcatalog-map", "earthcatalog-reduce"] {
        assert_eq!(job(j)["spec"]["completionMode"], "Indexed", "{j}");
    }
    // GitHub Actions: the legs are the plan job's list of indexes, made from the same inputs
    // the plan is given.
    let gh = read("github-actions/backfill.yml");
    assert!(gh.contains(
        "--map-shards \"${{ inputs.map_shards }}\" --reduce-shards \"${{ inputs.reduce_shards }}\""
    ));
    assert!(
        gh.contains(
            "echo \"map=$(jq -cn --argjson n \"${{ inputs.map_shards }}\" '[range($n)]')\""
        )
    );
    assert!(gh.contains(
        "echo \"reduce=$(jq -cn --argjson n \"${{ inputs.reduce_shards }}\" '[range($n)]')\""
    ));
    assert!(gh.contains("matrix: {shard: \"${{ fromJSON(needs.plan.outputs.map) }}\"}"));
    assert!(gh.contains("matrix: {shard: \"${{ fromJSON(needs.plan.outputs.reduce) }}\"}"));
    // Batch and Slurm size their arrays from the same N and M they plan with.
    let batch = read("aws-batch/submit.sh");
    assert!(batch.contains("--map-shards \"$N\" --reduce-shards \"$M\""));
    assert!(
        batch.contains("\"$N\" earthcatalog backfill map")
            && batch.contains("\"$M\" earthcatalog backfill reduce")
    );
    let slurm = read("slurm/submit.sh");
    assert!(slurm.contains("--map-shards \"$N\" --reduce-shards \"$M\""));
    assert!(slurm.contains("--array=0-$((N - 1))") && slurm.contains("--array=0-$((M - 1))"));
    assert_eq!(slurm.matches("--dependency=afterok:$").count(), 3);
}

/// A single-node Slurm started by `tests/slurm/start.sh` for one test, stopped when dropped.
struct Slurm {
    dir: std::path::PathBuf,
    conf: String,
}

impl Slurm {
    /// Start it under `dir`; `None` (with the reason printed) when Slurm cannot be installed.
    fn start(dir: &Path) -> Option<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/start.sh");
        let out = Command::new("bash").arg(script).arg(dir).output().unwrap();
        match out.status.code() {
            Some(0) => Some(Self {
                dir: dir.to_path_buf(),
                conf: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            }),
            Some(3) => {
                println!(
                    "SKIPPED: Slurm cannot be installed here: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            _ => panic!(
                "Slurm did not start: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Wait (bounded) until none of `jobs` is queued or running any more.
    fn wait_gone(&self, jobs: &[String]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
        loop {
            let out = self
                .command("squeue")
                .args(["-h", "-o", "%i %T %r"])
                .output()
                .unwrap();
            let queue = String::from_utf8_lossy(&out.stdout).into_owned();
            let left: Vec<&str> = queue
                .lines()
                .filter(|l| jobs.iter().any(|j| l.starts_with(j.as_str())))
                .collect();
            if left.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "jobs still queued after 240 s:\n{queue}"
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    /// A job's state (`scontrol show job`; finished jobs stay listed for minutes).
    fn states(&self, job: &str) -> String {
        let out = self
            .command("scontrol")
            .args(["show", "job", job])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("JobState="))
            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/stop.sh");
        let _ = Command::new("bash").arg(script).arg(&self.dir).status();
    }
}

/// `deploy/slurm/submit.sh` on a real single-node Slurm, unchanged, with items on a local path:
/// a map task that fails once is retried inside its task; with retries off, the failed task
/// cancels the later stages and re-running `submit.sh` recovers. Both end as `ingest` +
/// `compact`.
#[test]
fn slurm_runs_the_recipe_and_recovers_a_failed_map_task() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(slurm) = Slurm::start(&tmp.path().join("slurm")) else {
        return;
    };
    let data = tmp.path().join("data");
    code_ok(&run(cli().args([
        "generate",
        "--out",
        data.to_str().unwrap(),
        "--count",
        "240",
        "--seed",
        "5",
    ])));
    let inventory = data.join("inventory.csv").to_string_lossy().into_owned();
    let items = data.join("items").to_string_lossy().into_owned();
    let reference = ingest_and_compact(tmp.path(), &inventory, &items, &[]);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_earthcatalog"))
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let submit = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm/submit.sh");
    // Run submit.sh for `name`, with a map fault that fires once; the job ids it printed.
    let submit_run = |name: &str, retries: &str, fault: &str| -> Vec<String> {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = slurm
            .command("bash")
            .arg(&submit)
            .args([
                &inventory,
                dir.join("wh").to_str().unwrap(),
                dir.join("catalog.db").to_str().unwrap(),
                "4",
                "2",
            ])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("STAGING", dir.join("staging"))
            .env("ITEMS_ROOT", &items)
            .env("CPUS", "1")
            .env("MEM", "500M")
            .env("RETRIES", retries)
            .env("RETRY_DELAY", "0")
            .env("EARTHCATALOG_FAULT", fault)
            .env("EARTHCATALOG_FAULT_ONCE", dir.join("fault-fired"))
            .output()
            .unwrap();
        code_ok(&out);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .collect::<Vec<_>>()
            .chunks(2)
            .filter_map(|p| p.get(1).map(|s| s.to_string()))
            .collect()
    };
    let rows_of = |name: &str| recipe_rows(&tmp.path().join(name));

    // Retries on: the failed map task runs its stage again and the chain completes.
    let jobs = submit_run("retried", "1", "backfill.map.before_done");
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    slurm.wait_gone(&jobs);
    assert!(
        tmp.path().join("retried/fault-fired").exists(),
        "the fault never fired"
    );
    assert_eq!(slurm.states(&jobs[3]), "COMPLETED", "commit");
    assert_eq!(rows_of("retried"), reference);

    // Retries off, map shard 2 fails: the failed task cancels reduce and commit (they do not
    // wait forever) ...
    let jobs = submit_run("recovered", "0", "backfill.map.before_done.2");
    slurm.wait_gone(&jobs);
    assert!(
        slurm.states(&jobs[1]).contains("FAILED"),
        "map: {}",
        slurm.states(&jobs[1])
    );
    assert!(
        slurm.states(&jobs[3]).contains("CANCELLED"),
        "commit: {}",
        slurm.states(&jobs[3])
    );
    // `status` says the run stopped and how to resume it ...
    let status = run(cli().args([
        "backfill",
        "status",
        "--staging",
        tmp.path().join("recovered/staging").to_str().unwrap(),
    ]));
    code_ok(&status);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains("recover: run the recipe again") && text.contains("deploy/slurm/submit.sh"),
        "{text}"
    );
    // A resubmission of the failed index alone (`sbatch --array=I`) runs shard I ...
    let status_json = |dir: &str| -> serde_json::Value {
        let out = run(cli().args([
            "backfill",
            "status",
            "--json",
            "--staging",
            tmp.path().join(dir).join("staging").to_str().unwrap(),
        ]));
        code_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = status_json("recovered");
    let failed = before["map"]["failed"][0]["shard"].as_u64().unwrap();
    assert_eq!(failed, 2, "{before}");
    assert!(
        !before["map"]["done"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_u64() == Some(failed)),
        "{before}"
    );
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm/backfill.sbatch");
    let out = slurm
        .command("sbatch")
        .args([
            "--parsable",
            "--wait",
            "--export=ALL",
            "--cpus-per-task=1",
            "--mem=500M",
        ])
        .arg(format!("--array={failed}"))
        .arg(&job)
        .arg("map")
        .current_dir(tmp.path().join("recovered"))
        .env("PATH", &path)
        .env("STAGING", tmp.path().join("recovered/staging"))
        .output()
        .unwrap();
    code_ok(&out);
    let after = status_json("recovered");
    assert!(
        after["map"]["done"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_u64() == Some(failed)),
        "shard {failed} is not done after `sbatch --array={failed}`: {after}"
    );
    // ... and the documented recovery, submit.sh again, finishes the same plan.
    let again = submit_run("recovered", "0", "backfill.map.before_done.2");
    slurm.wait_gone(&again);
    assert_eq!(
        slurm.states(&again[3]),
        "COMPLETED",
        "commit after the recovery"
    );
    assert_eq!(rows_of("recovered"), reference);
}

/// `deploy/aws-batch/submit.sh` against a stand-in `aws` that records each call: the jobs are
/// chained on the whole arrays, and every container override is JSON holding the stage's
/// command line (flags included) and the resources.
#[test]
fn batch_submit_builds_each_jobs_command_and_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("aws");
    let log = tmp.path().join("calls");
    std::fs::write(
        &fake,
        format!(
            "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" >> {log}\necho ---- >> {log}\necho job-$RANDOM\n",
            log = log.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/aws-batch/submit.sh");
    let out = Command::new("bash")
        .arg(script)
        .args([
            "q",
            "s3://b/inv/manifest.json",
            "s3://b/staging",
            "s3://b/wh",
            "s3://b/c.db",
            "4",
            "2",
        ])
        .env(
            "PATH",
            format!(
                "{}:{}",
                tmp.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("VCPUS", "4")
        .env("ITEMS_ROOT", "s3://b/items")
        .output()
        .unwrap();
    code_ok(&out);
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<Vec<&str>> = calls
        .split("----\n")
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.lines().collect())
        .collect();
    assert_eq!(calls.len(), 4);
    let overrides = |call: &Vec<&str>| -> serde_json::Value {
        let i = call
            .iter()
            .position(|a| *a == "--container-overrides")
            .unwrap();
        serde_json::from_str(call[i + 1]).unwrap()
    };
    let plan = overrides(&calls[0]);
    let command: Vec<&str> = plan["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&command[..3], ["earthcatalog", "backfill", "plan"]);
    assert!(
        command
            .windows(2)
            .any(|w| w == ["--items-root", "s3://b/items"])
    );
    assert_eq!(plan["resourceRequirements"][0]["value"], "4");
    let map = overrides(&calls[1]);
    assert_eq!(map["command"][2], "map");
    assert!(
        calls[1]
            .windows(2)
            .any(|w| w == ["--array-properties", "size=4"])
    );
    assert!(
        calls[2]
            .windows(2)
            .any(|w| w[0] == "--depends-on" && w[1].starts_with("jobId=job-"))
    );
    assert_eq!(overrides(&calls[3])["command"][2], "commit");
}

/// The environment that makes the first map task to finish fail once (a transient fault):
/// `dir/fault-fired` records that it fired.
fn map_fault_once(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("EARTHCATALOG_FAULT", "backfill.map.before_done".to_string()),
        (
            "EARTHCATALOG_FAULT_ONCE",
            dir.join("fault-fired").display().to_string(),
        ),
    ]
}

/// The rows of the table a recipe wrote into `dir` (`catalog.db`, warehouse `wh`).
fn recipe_rows(dir: &Path) -> TableRows {
    pyiceberg_rows(
        dir.join("catalog.db").to_str().unwrap(),
        &format!("file://{}", dir.join("wh").display()),
        None,
    )
}

/// Generated items for a recipe test and the `ingest` + `compact` table they must give:
/// (inventory path, items root, reference rows).
fn recipe_data(dir: &Path) -> (String, String, TableRows) {
    let data = dir.join("data");
    code_ok(&run(cli().args([
        "generate",
        "--out",
        data.to_str().unwrap(),
        "--count",
        "240",
        "--seed",
        "5",
    ])));
    let inventory = data.join("inventory.csv").to_string_lossy().into_owned();
    let items = data.join("items").to_string_lossy().into_owned();
    let reference = ingest_and_compact(dir, &inventory, &items, &[]);
    (inventory, items, reference)
}

/// `PATH` with the binary under test first, after `extra` directories.
fn path_with_binary(extra: &[&Path]) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_earthcatalog"))
        .parent()
        .unwrap();
    let mut dirs: Vec<String> = extra.iter().map(|d| d.display().to_string()).collect();
    dirs.push(bin.display().to_string());
    dirs.push(std::env::var("PATH").unwrap_or_default());
    dirs.join(":")
}

/// `text` with each (from, to) replaced; each `from` must occur (the recipe still has it).
fn edit_recipe(text: &str, edits: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in edits {
        assert!(out.contains(from), "the recipe no longer has {from:?}");
        out = out.replace(from, to);
    }
    out
}

/// `deploy/kubernetes/run.sh` applying `backfill.yaml` (only its ConfigMap pointed at local
/// paths) through a stand-in kubectl that runs each Job's pods here as Kubernetes would
/// (`tests/kubernetes/kubectl`: completion indexes, backoffLimitPerIndex, podFailurePolicy):
/// a map pod that fails once is retried by its index's backoff; an index whose every pod
/// fails fails the Job and stops run.sh; running run.sh again, the documented recovery, skips
/// the completed plan, recreates the failed Job and finishes. Both tables equal
/// `ingest` + `compact`.
#[test]
fn kubernetes_recipe_retries_a_pod_and_recovers_a_failed_job() {
    let tmp = tempfile::tempdir().unwrap();
    let (inventory, items, reference) = recipe_data(tmp.path());
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubernetes");
    let path = path_with_binary(&[&fake]);
    let manifest = std::fs::read_to_string(deploy.join("backfill.yaml")).unwrap();
    let setup = |name: &str| -> std::path::PathBuf {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let text = edit_recipe(
            &manifest,
            &[
                (
                    "STAGING: s3://my-bucket/backfill/2026-01",
                    format!("STAGING: {}", dir.join("staging").display()),
                ),
                (
                    "INVENTORY: s3://my-inventory/its-live-data/daily/2026-01-01T01-00Z/manifest.json",
                    format!("INVENTORY: {inventory}"),
                ),
                (
                    "WAREHOUSE: s3://my-bucket/warehouse",
                    format!("WAREHOUSE: {}", dir.join("wh").display()),
                ),
                (
                    "CATALOG: s3://my-bucket/catalog.db",
                    format!("CATALOG: {}", dir.join("catalog.db").display()),
                ),
                ("ITEMS_ROOT: \"\"", format!("ITEMS_ROOT: {items}")),
            ],
        );
        std::fs::write(dir.join("backfill.yaml"), text).unwrap();
        dir
    };
    let run_sh = |dir: &Path, env: &[(&str, String)]| -> Output {
        let mut c = Command::new("bash");
        c.arg(deploy.join("run.sh"))
            .arg(dir.join("backfill.yaml"))
            .env("PATH", &path)
            .env("FAKE_KUBE_STATE", dir.join("kube"))
            .env("POLL", "0")
            .env_remove("EARTHCATALOG_FAULT")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        run_within(&mut c, std::time::Duration::from_secs(600))
    };
    let calls = |dir: &Path| std::fs::read_to_string(dir.join("kube/calls")).unwrap();

    // A map pod fails once (the binary's own fault): its index runs again, the run completes.
    let dir = setup("retried");
    let out = run_sh(&dir, &map_fault_once(&dir));
    code_ok(&out);
    assert!(dir.join("fault-fired").exists(), "the fault never fired");
    assert_eq!(
        calls(&dir)
            .lines()
            .filter(|l| l.starts_with("pod earthcatalog-map/") && l.ends_with("exit 1"))
            .count(),
        1,
        "{}",
        calls(&dir)
    );
    assert_eq!(recipe_rows(&dir), reference);

    // Every pod of map index 3 fails: the map Job fails, run.sh stops and names it ...
    let dir = setup("recovered");
    let out = run_sh(&dir, &[("FAKE_KUBE_LOST", "earthcatalog-map/3".into())]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("job earthcatalog-map failed") && stderr(&out).contains("run.sh"),
        "{}",
        stderr(&out)
    );
    assert!(!calls(&dir).contains("earthcatalog.io/stage=reduce"));
    // ... `status` names the shard and the recovery ...
    let status = run(cli().args([
        "backfill",
        "status",
        "--staging",
        dir.join("staging").to_str().unwrap(),
    ]));
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains("deploy/kubernetes/run.sh") && text.contains("for I in 3 4 5"),
        "{text}"
    );
    // ... and run.sh again finishes the same plan.
    let out = run_sh(&dir, &[]);
    code_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("earthcatalog-plan: complete, skipped"),
        "{stdout}"
    );
    assert!(calls(&dir).contains("delete job earthcatalog-map"));
    assert_eq!(recipe_rows(&dir), reference);
}

/// `deploy/github-actions/backfill.yml` run by `tests/github-actions/run_workflow.py` (jobs in
/// `needs` order, matrix legs from the plan job's outputs, every `run` step in bash; only the
/// workflow's WAREHOUSE and CATALOG pointed at local paths): a map leg that fails once is
/// retried inside its step; a leg whose step fails for good (retries off) fails the map job
/// and skips reduce and commit; "Re-run failed jobs", the documented recovery, runs that leg
/// and the later jobs. Both tables equal `ingest` + `compact`.
#[test]
fn github_actions_recipe_retries_a_leg_and_recovers_with_rerun_failed_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let (inventory, items, reference) = recipe_data(tmp.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workflow =
        std::fs::read_to_string(root.join("deploy/github-actions/backfill.yml")).unwrap();
    let runner = root.join("tests/github-actions/run_workflow.py");
    let path = path_with_binary(&[]);
    let setup = |name: &str, retries: &str| -> std::path::PathBuf {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let text = edit_recipe(
            &workflow,
            &[
                (
                    "WAREHOUSE: s3://my-bucket/warehouse",
                    format!("WAREHOUSE: {}", dir.join("wh").display()),
                ),
                (
                    "CATALOG: s3://my-bucket/catalog.db",
                    format!("CATALOG: {}", dir.join("catalog.db").display()),
                ),
                ("RETRY_DELAY: \"30\"", "RETRY_DELAY: \"0\"".to_string()),
                ("RETRIES: \"2\"", format!("RETRIES: \"{retries}\"")),
            ],
        );
        std::fs::write(dir.join("backfill.yml"), text).unwrap();
        dir
    };
    let dispatch = |dir: &Path, extra: &[&str], env: &[(&str, String)]| -> Output {
        let mut c = Command::new("python3");
        c.arg(&runner)
            .arg(dir.join("backfill.yml"))
            .arg(dir)
            .args(extra)
            .arg(format!("inventory={inventory}"))
            .arg(format!("staging={}", dir.join("staging").display()))
            .arg(format!("items_root={items}"))
            .arg("map_shards=4")
            .arg("reduce_shards=2")
            .env("PATH", &path)
            .env_remove("EARTHCATALOG_FAULT")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        run_within(&mut c, std::time::Duration::from_secs(600))
    };

    // The step's retry loop absorbs a failure.
    let dir = setup("retried", "2");
    let out = dispatch(&dir, &[], &map_fault_once(&dir));
    code_ok(&out);
    assert!(dir.join("fault-fired").exists(), "the fault never fired");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.matches("map {\"shard\"").count(), 4, "{stdout}");
    assert!(!stdout.contains("failure"), "{stdout}");
    assert_eq!(recipe_rows(&dir), reference);

    // Retries off: one leg fails, reduce and commit are skipped ...
    let dir = setup("recovered", "0");
    let env = map_fault_once(&dir);
    let out = dispatch(&dir, &[], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.matches(": failure").count(), 1, "{stdout}");
    assert!(
        stdout.contains("reduce: skipped") && stdout.contains("commit: skipped"),
        "{stdout}"
    );
    // ... and "Re-run failed jobs" runs only that leg, then reduce and commit.
    let out = dispatch(&dir, &["--rerun-failed"], &env);
    code_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.matches("map {\"shard\"").count(), 1, "{stdout}");
    assert!(!stdout.contains("plan {}"), "{stdout}");
    assert_eq!(recipe_rows(&dir), reference);
}

/// `deploy/aws-batch/submit.sh` with `job-definition.yaml` through a stand-in `aws` that runs
/// each job here as AWS Batch would (`tests/aws-batch/aws`: array children, the definition's
/// retryStrategy and evaluateOnExit, a dependent job failing when its dependency failed): a
/// map child that fails once is retried; a child whose every attempt fails fails the map
/// array, and with it reduce and commit; running submit.sh again with the same arguments, the
/// documented recovery, resumes the plan and finishes. Both tables equal `ingest` + `compact`.
#[test]
fn aws_batch_recipe_retries_a_child_and_recovers_by_submitting_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (inventory, items, reference) = recipe_data(tmp.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fake = root.join("tests/aws-batch");
    let path = path_with_binary(&[&fake]);
    let submit = |dir: &Path, env: &[(&str, String)]| -> Output {
        let mut c = Command::new("bash");
        c.arg(root.join("deploy/aws-batch/submit.sh"))
            .args([
                "queue",
                &inventory,
                dir.join("staging").to_str().unwrap(),
                dir.join("wh").to_str().unwrap(),
                dir.join("catalog.db").to_str().unwrap(),
                "4",
                "2",
            ])
            .env("PATH", &path)
            .env("ITEMS_ROOT", &items)
            .env(
                "FAKE_BATCH_DEFINITION",
                root.join("deploy/aws-batch/job-definition.yaml"),
            )
            .env("FAKE_BATCH_STATE", dir.join("batch"))
            .env_remove("EARTHCATALOG_FAULT")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        run_within(&mut c, std::time::Duration::from_secs(600))
    };
    let calls = |dir: &Path| std::fs::read_to_string(dir.join("batch/calls")).unwrap();

    // A map child fails once (the binary's own fault): retryStrategy runs it again.
    let dir = tmp.path().join("retried");
    let out = submit(&dir, &map_fault_once(&dir));
    code_ok(&out);
    assert!(
        dir.join("fault-fired").exists(),
        "the fault never fired: {}",
        calls(&dir)
    );
    let log = calls(&dir);
    assert!(log.contains("attempt 2 exit 0"), "{log}");
    assert!(log.contains("job backfill-commit SUCCEEDED"), "{log}");
    assert_eq!(recipe_rows(&dir), reference);

    // Every attempt of map child 1 fails: map, reduce and commit fail ...
    let dir = tmp.path().join("recovered");
    let out = submit(&dir, &[("FAKE_BATCH_LOST", "backfill-map/1".into())]);
    code_ok(&out);
    let log = calls(&dir);
    assert!(
        log.contains("job backfill-map FAILED")
            && log.contains("job backfill-commit failed: Dependent Job failed"),
        "{log}"
    );
    // ... and submit.sh again with the same arguments finishes the same plan.
    let out = submit(&dir, &[]);
    code_ok(&out);
    let log = calls(&dir);
    assert!(log.ends_with("job backfill-commit SUCCEEDED\n"), "{log}");
    assert_eq!(recipe_rows(&dir), reference);
}
