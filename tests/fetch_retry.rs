//! Fetch retries against a flaky S3-compatible endpoint on 127.0.0.1: 503s are retried until
//! the item arrives, 404s are not retried and are reported.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;

/// A tiny HTTP server: GET /<bucket>/<key> → 503 for the first `fail` requests of each key,
/// then the body; unknown keys → 404. Counts requests per path.
fn flaky_server(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_items_are_retried_and_missing_ones_reported_once() {
    let ds = Dataset::synth(5, 71).await;
    let items = walk(&ds.dir.path().join("items"));
    let mut objects = HashMap::new();
    let mut inventory = String::from("bucket,key\n");
    for f in &items {
        let key = f
            .strip_prefix(ds.dir.path().join("items"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        objects.insert(format!("/flaky/{key}"), std::fs::read(f).unwrap());
        inventory.push_str(&format!("flaky,{key}\n"));
    }
    inventory.push_str("flaky,missing/none.stac.json\n");
    let inv = ds.path("flaky.csv");
    std::fs::write(&inv, inventory).unwrap();
    let (port, counts) = flaky_server(objects, 2);
    let out = run(cli()
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .args([
            "ingest",
            "--json",
            "--no-lock",
            "--resolution",
            "1",
            "--inventory",
            &inv,
        ])
        .args(["--warehouse", &ds.path("wh"), "--catalog", &ds.path("c.db")]));
    let m = json_summary(&out, 3);
    assert_eq!(m["items"], 5, "every throttled item arrives after retries");
    assert_eq!(m["failed"], 1);
    let counts = counts.lock().unwrap();
    assert_eq!(
        counts["/flaky/missing/none.stac.json"], 1,
        "404 is not retried"
    );
    for (path, n) in counts.iter().filter(|(p, _)| !p.contains("missing")) {
        assert_eq!(*n, 3, "{path}: two 503s then success");
    }
}
