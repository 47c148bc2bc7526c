//! Shared test harness: temp warehouses, synthetic datasets, the CLI binary, a real S3 API
//! server (moto) on 127.0.0.1 and Python interop helpers.
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use earthcatalog::fetch::FetchOptions;
use earthcatalog::grid::GridConfig;
use earthcatalog::pipeline::IngestOptions;
use earthcatalog::store::Location;
use earthcatalog::synth::{SynthOptions, write_dataset};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A dataset written to a temp dir: items under `items/`, inventory at `inventory.csv`.
pub struct Dataset {
    pub dir: tempfile::TempDir,
    pub count: u64,
}

impl Dataset {
    pub async fn synth(count: u64, seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Location::parse(dir.path().to_str().unwrap()).unwrap();
        write_dataset(
            &SynthOptions::new(seed, count),
            &root.join("items"),
            "its-live-data",
            &root.join("inventory.csv"),
        )
        .await
        .unwrap();
        Self { dir, count }
    }

    pub fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }

    pub fn inventory(&self) -> String {
        self.path("inventory.csv")
    }

    pub fn items_root(&self) -> String {
        self.path("items")
    }

    /// Ingest options for a local warehouse and catalog inside this dataset's dir.
    pub fn options(&self, resolution: u8) -> IngestOptions {
        IngestOptions {
            inventory: self.inventory(),
            warehouse: self.path("warehouse"),
            catalog: self.path("catalog.db"),
            grid: Some(GridConfig::H3 { resolution }),
            fetch: FetchOptions {
                items_root: Some(self.items_root()),
            },
            lock: false,
            ..IngestOptions::default()
        }
    }

    /// `earthcatalog ingest` on this dataset's inventory, items, warehouse and catalog;
    /// callers add their own flags.
    pub fn ingest_cmd(&self) -> Command {
        let mut c = cli();
        c.arg("ingest")
            .args([
                "--inventory",
                &self.inventory(),
                "--items-root",
                &self.items_root(),
            ])
            .args([
                "--warehouse",
                &self.path("warehouse"),
                "--catalog",
                &self.path("catalog.db"),
            ]);
        c
    }

    /// Every id in the synthetic inventory, read back from the item files.
    pub fn item_ids(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for entry in walk(&self.dir.path().join("items")) {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
            ids.insert(v["id"].as_str().unwrap().to_string());
        }
        ids
    }
}

/// All files below `dir`, recursively, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Parquet data files below a local warehouse.
pub fn data_files(warehouse: &Path) -> Vec<PathBuf> {
    walk(warehouse)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && p.to_string_lossy().contains("grid_partition=")
        })
        .collect()
}

/// (id, grid_partition, datetime µs) of one stored row.
pub type StoredRow = (String, String, Option<i64>);

/// Every row of a Parquet file, plus its key-value metadata.
pub fn read_rows(path: &Path) -> (Vec<StoredRow>, Vec<(String, String)>) {
    let file = std::fs::File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|k| (k.key, k.value.unwrap_or_default()))
        .collect();
    let mut rows = Vec::new();
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
        let cells = batch
            .column_by_name("grid_partition")
            .unwrap()
            .as_string::<i32>();
        let dt = batch
            .column_by_name("datetime")
            .unwrap()
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            rows.push((
                ids.value(i).to_string(),
                cells.value(i).to_string(),
                (!dt.is_null(i)).then(|| dt.value(i)),
            ));
        }
    }
    (rows, kv)
}

/// The CLI binary.
pub fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_earthcatalog"));
    c.env_remove("EARTHCATALOG_FAULT").env("NO_COLOR", "1");
    c
}

/// Longest a CLI run may take in a test before it is killed and the test fails (a hang must
/// fail the suite with the command line and where it hung, not stall CI).
const CLI_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Every thread's stack of the hung process `pid` (gdb, when installed), for the failure
/// message: a hang seen once in CI must say where it was.
fn thread_stacks(pid: u32) -> String {
    match Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(no stacks: gdb: {e})"),
    }
}

pub fn run(cmd: &mut Command) -> Output {
    run_within(cmd, CLI_TIMEOUT)
}

/// [`run`] with its own time limit.
pub fn run_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run earthcatalog");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for earthcatalog") {
            break status;
        }
        if started.elapsed() > limit {
            let stacks = thread_stacks(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!(
                "earthcatalog timed out after {limit:?}: {cmd:?}\n--- its stderr ---\n{stderr}\n--- its threads ---\n{stacks}"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The `--json` summary a CLI run printed, after checking its exit code (stderr shown when
/// the code differs).
pub fn json_summary(out: &Output, code: i32) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Run a Python snippet; panics with its output when it fails.
pub fn python(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Python lines that create namespace `earthcatalog` and table `stac_items` with PyIceberg the
/// way the Python tool does (28 optional fields, identity(grid_partition) + year(datetime)),
/// leaving the table in `t` and the catalog in `cat`.
pub fn pyiceberg_create_table(db: &str, warehouse: &str, properties: &str) -> String {
    use earthcatalog::schema::{BASE_COLUMNS, ColumnType};
    let fields: Vec<String> = BASE_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let t = match ty {
                ColumnType::String => "StringType()",
                ColumnType::Long => "LongType()",
                ColumnType::Double => "DoubleType()",
                ColumnType::TimestampTz => "TimestamptzType()",
                ColumnType::Binary => "BinaryType()",
                ColumnType::Boolean => "BooleanType()",
                ColumnType::Bbox => unreachable!("not a base column"),
            };
            format!("NestedField({}, {name:?}, {t}, required=False)", i + 1)
        })
        .collect();
    format!(
        r#"
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import *
from pyiceberg.partitioning import PartitionSpec, PartitionField
from pyiceberg.transforms import IdentityTransform, YearTransform
cat = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{warehouse}")
cat.create_namespace("earthcatalog")
spec = PartitionSpec(PartitionField(2, 100, IdentityTransform(), "grid_partition"), PartitionField(4, 101, YearTransform(), "year"))
t = cat.create_table("earthcatalog.stac_items", schema=Schema({fields}), partition_spec=spec, properties={properties})
"#,
        fields = fields.join(", ")
    )
}

/// A moto S3 server on 127.0.0.1, stopped on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server not found: pip install 'moto[server]' (see .ci/run)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for processes that talk to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    pub fn create_bucket(&self, name: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "create bucket {name}: {resp}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny S3-compatible HTTP server on 127.0.0.1 serving `objects` (path `/<bucket>/<key>`):
/// GET answers 503 for the first `fail` requests of each key, then the body; keys below
/// `denied/` answer 403; unknown keys 404. Counts requests per path. Returns (port, counts).
pub fn s3_stub(
    objects: HashMap<String, Vec<u8>>,
    fail: usize,
) -> (u16, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let objects = objects.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let n = {
                        let mut c = seen.lock().unwrap();
                        let e = c.entry(path.clone()).or_default();
                        *e += 1;
                        *e
                    };
                    let (status, body): (&str, Vec<u8>) = match objects.get(&path) {
                        _ if path.contains("/denied/") => (
                            "403 Forbidden",
                            b"<Error><Code>AccessDenied</Code></Error>".to_vec(),
                        ),
                        Some(_) if n <= fail => (
                            "503 Service Unavailable",
                            b"<Error><Code>SlowDown</Code></Error>".to_vec(),
                        ),
                        Some(b) => ("200 OK", b.clone()),
                        None => (
                            "404 Not Found",
                            b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
                        ),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"e\"\r\nLast-Modified: Wed, 25 Nov 2026 08:00:00 GMT\r\n\r\n",
                        body.len()
                    );
                    if stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(&body))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, counts)
}

/// An `earthcatalog serve` process on 127.0.0.1 (a free port), killed on drop.
pub struct ServeProcess {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    logs: Arc<Mutex<String>>,
}

impl ServeProcess {
    /// Start serving `catalog` with extra flags and environment; waits (bounded) until it
    /// listens.
    pub fn start(catalog: &str, extra: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = cli();
        cmd.args(["serve", "--catalog", catalog, "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start earthcatalog serve");
        let stderr = child.stderr.take().unwrap();
        let logs: Arc<Mutex<String>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find(" on http://") {
                    let _ = tx.send(line[i + 4..].trim().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => Self {
                child,
                reader: Some(reader),
                base,
                logs,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "earthcatalog serve did not start:\n{}",
                    logs.lock().unwrap()
                );
            }
        }
    }

    /// What the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path` (with its query string).
    pub fn get(&self, path: &str) -> HttpResponse {
        http_request(&self.base, "GET", path, &[], b"")
    }

    /// POST a JSON body to `path`.
    pub fn post(&self, path: &str, body: &str) -> HttpResponse {
        http_request(
            &self.base,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    /// Send SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process by its id.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Every line it wrote is in the logs once the reader saw end of file.
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read by [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (`Connection: close`) to `base` (`http://host:port`).
pub fn http_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 2 + size + 2..];
        }
        body = out;
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Write the synthetic dataset `synth` under `dir/<data>` and ingest it at H3 res 2 into the
/// catalog `dir/catalog.db` with warehouse `dir/warehouse` (one snapshot per call; calls with
/// different `data` names add to the same table). Returns the catalog path.
pub async fn ingest_synthetic(dir: &Path, data: &str, synth: &SynthOptions) -> String {
    let data = Location::parse(dir.join(data).to_str().unwrap()).unwrap();
    write_dataset(
        synth,
        &data.join("items"),
        "its-live-data",
        &data.join("inventory.csv"),
    )
    .await
    .unwrap();
    let catalog = dir.join("catalog.db").to_str().unwrap().to_string();
    earthcatalog::pipeline::ingest(
        &IngestOptions {
            inventory: data.url_of("inventory.csv"),
            warehouse: dir.join("warehouse").to_str().unwrap().to_string(),
            catalog: catalog.clone(),
            fetch: FetchOptions {
                items_root: Some(data.url_of("items")),
            },
            lock: false,
            grid: Some(GridConfig::H3 { resolution: 2 }),
            ..Default::default()
        },
        &earthcatalog::report::NoReporter,
    )
    .await
    .unwrap();
    catalog
}

/// The item ids of a STAC API page (a FeatureCollection).
pub fn page_ids(page: &serde_json::Value) -> Vec<String> {
    page["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// The `next` link of a STAC API page, with `base` stripped (a path and query).
pub fn next_link(page: &serde_json::Value, base: &str) -> Option<String> {
    page["links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == "next")
        .map(|l| {
            l["href"]
                .as_str()
                .unwrap()
                .trim_start_matches(base)
                .to_string()
        })
}
